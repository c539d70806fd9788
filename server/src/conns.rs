//! Open connections by user, on either transport, so that revoking a user
//! closes what they have open at once instead of at their next request
//! (on every node: each hears of a revocation made through another).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use exhibit_net::Connection;
use exhibit_proto::UserId;

/// Application close code (a QUIC close, or over TCP a GOAWAY): the user
/// was revoked.
pub const CLOSE_REVOKED: u32 = exhibit_proto::frame::CLOSE_REVOKED;
/// Application close code: too many connections of its kind at once.
pub const CLOSE_BUSY: u32 = 3;

/// Live connections of enrolled users.
#[derive(Debug, Default)]
pub struct Connections {
    by_user: Mutex<HashMap<UserId, HashMap<usize, Connection>>>,
    /// Registration ids (QUIC's and TCP's own ids could meet).
    next: AtomicUsize,
}

/// Removes its connection from the registry when dropped.
#[derive(Debug)]
pub struct Registered<'a> {
    conns: &'a Connections,
    user: UserId,
    id: usize,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        let mut map = self.conns.lock();
        if let Some(c) = map.get_mut(&self.user) {
            c.remove(&self.id);
            if c.is_empty() {
                map.remove(&self.user);
            }
        }
    }
}

impl Connections {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, HashMap<usize, Connection>>> {
        // A panic while holding this lock leaves the map consistent (every
        // operation is a single insert or remove), so poisoning is ignored.
        self.by_user.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Note that `conn` belongs to `user` until the guard is dropped.
    pub fn register(&self, user: &UserId, conn: &Connection) -> Registered<'_> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().entry(user.clone()).or_default().insert(id, conn.clone());
        Registered { conns: self, user: user.clone(), id }
    }

    /// Close every connection of `user`, telling the peer why. Returns how
    /// many were closed.
    pub fn close_user(&self, user: &UserId, reason: &str) -> usize {
        let Some(conns) = self.lock().remove(user) else {
            return 0;
        };
        for c in conns.values() {
            c.close(CLOSE_REVOKED, reason.as_bytes());
        }
        conns.len()
    }

    /// The users with connections open.
    pub fn users(&self) -> Vec<UserId> {
        self.lock().keys().cloned().collect()
    }

    /// How many connections `user` has open.
    pub fn count_of(&self, user: &UserId) -> usize {
        self.lock().get(user).map_or(0, HashMap::len)
    }
}
