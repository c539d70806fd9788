//! How many bytes of chunks the server holds in memory at once: one budget
//! for downloads, one for uploads.
//!
//! A download holds its chunk's length from before the chunk is read from
//! storage until quinn has had it acknowledged; a manifest sent in a reply
//! (manifest, receipt, custody) likewise, when over
//! [`exhibit_proto::limits::EAGER_CHUNK`]. An upload holds its chunk's
//! length from before the client may send it ([`exhibit_proto::frame::Request::OfferChunk`])
//! until it is on disk. Past the budget a request waits its turn (first
//! come, first served), so the server's memory stays flat however many
//! transfers run at once. One user, over all their connections, may hold
//! at most half of a budget.
//! A peer that stops taking a response or a go-ahead, or stops sending a
//! body, is cut off by a timeout; one that vanishes keeps what quinn has not had acknowledged
//! until its connection times out, when the requests it still has waiting
//! end too ([`Share::close`]). However many connections a user opens,
//! together they hold at most half, so one user stalling cannot keep
//! everyone else waiting.
//!
//! An upload waits before its bytes are sent, never after: bytes the server
//! has not read fill the connection's QUIC window, and a request waiting on
//! them would stall the other uploads of its connection, the very ones that
//! would free the memory it waits for. Bodies of at most
//! [`exhibit_proto::limits::EAGER_CHUNK`] are sent unannounced and not
//! counted (at most that much per stream). Larger ones from clients that
//! predate the offer (`exhibit/1`), and large manifests, are unannounced
//! too: they are held before they are read, their bytes meanwhile bounded
//! by the connection's QUIC window. Under `exhibit/2` a large chunk that
//! is not offered is refused.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use exhibit_proto::UserId;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ServerError;

/// Budgets count in KiB, so that a `u32` request covers any chunk.
const UNIT: u64 = 1024;

/// A server-wide memory budget.
#[derive(Debug)]
pub struct Budget {
    all: Arc<Semaphore>,
    units: u32,
    granted: AtomicU64,
    /// Each user's half, shared by their connections while any is open.
    halves: Mutex<HashMap<UserId, Weak<Semaphore>>>,
}

/// One connection's share of a [`Budget`]: its user's half (or its own,
/// for a connection without a user), and whether the connection is open.
#[derive(Debug)]
pub struct Share {
    sem: Arc<Semaphore>,
    units: u32,
    open: tokio::sync::watch::Sender<bool>,
}

impl Share {
    /// The connection has ended: requests still waiting give up. (A
    /// request waiting would keep the connection, and with it the chunks
    /// quinn holds unacknowledged, alive for ever.)
    pub fn close(&self) {
        self.open.send_replace(false);
    }
}

/// A connection's shares of the download and upload budgets.
#[derive(Debug)]
pub struct Shares {
    pub download: Share,
    pub upload: Share,
}

impl Shares {
    /// The connection has ended: see [`Share::close`].
    pub fn close(&self) {
        self.download.close();
        self.upload.close();
    }
}

/// Bytes held against a connection's share and the server's budget, until
/// dropped.
#[derive(Debug)]
pub struct Held {
    _share: OwnedSemaphorePermit,
    _all: OwnedSemaphorePermit,
}

fn units_of(bytes: u64) -> u32 {
    u32::try_from(bytes.div_ceil(UNIT)).unwrap_or(u32::MAX)
}

impl Budget {
    /// A budget of `bytes` (at least 1 KiB).
    pub fn new(bytes: u64) -> Self {
        let units = units_of(bytes).max(1);
        Budget {
            all: Arc::new(Semaphore::new(units as usize)),
            units,
            granted: AtomicU64::new(0),
            halves: Mutex::default(),
        }
    }

    /// A new connection's share: its user's half of the budget, shared
    /// with the user's other connections (a connection without a user has
    /// a half of its own).
    pub fn share(&self, user: Option<&UserId>) -> Share {
        let units = self.units.div_ceil(2);
        let fresh = || Arc::new(Semaphore::new(units as usize));
        let sem = match (user, self.halves.lock()) {
            (Some(u), Ok(mut halves)) => {
                halves.retain(|_, half| half.strong_count() > 0);
                match halves.get(u).and_then(Weak::upgrade) {
                    Some(half) => half,
                    None => {
                        let half = fresh();
                        halves.insert(u.clone(), Arc::downgrade(&half));
                        half
                    }
                }
            }
            _ => fresh(),
        };
        Share { sem, units, open: tokio::sync::watch::Sender::new(true) }
    }

    /// Hold `len` bytes for a request on a connection with `share`, waiting
    /// until they are free. A request larger than the share waits for all
    /// of it and then runs alone on its connection.
    /// Fails once the share is closed.
    pub async fn hold(&self, share: &Share, len: u64) -> Result<Held, ServerError> {
        let want = units_of(len).clamp(1, share.units);
        let closed = || ServerError::Stream("connection closed while waiting for memory".into());
        let mut open = share.open.subscribe();
        let hold = async {
            let mine = share.sem.clone().acquire_many_owned(want).await.map_err(|_| closed())?;
            let all = self.all.clone().acquire_many_owned(want).await.map_err(|_| closed())?;
            self.granted.fetch_add(1, Ordering::Relaxed);
            Ok(Held { _share: mine, _all: all })
        };
        tokio::select! {
            held = hold => held,
            _ = open.wait_for(|open| !*open) => Err(closed()),
        }
    }

    /// [`Budget::hold`] for a body sent unannounced: one of at most
    /// [`exhibit_proto::limits::EAGER_CHUNK`] is not counted (`None`).
    pub async fn hold_large(&self, share: &Share, len: u64) -> Result<Option<Held>, ServerError> {
        match len > u64::from(exhibit_proto::limits::EAGER_CHUNK) {
            true => self.hold(share, len).await.map(Some),
            false => Ok(None),
        }
    }

    /// Bytes not held at the moment.
    pub fn free(&self) -> u64 {
        self.all.available_permits() as u64 * UNIT
    }

    /// How many holds have been granted since the server started.
    pub fn granted(&self) -> u64 {
        self.granted.load(Ordering::Relaxed)
    }

    /// The whole budget, bytes.
    pub fn total(&self) -> u64 {
        u64::from(self.units) * UNIT
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Whether `f` finishes within a short while (it is waiting otherwise).
    async fn done<F: std::future::Future>(f: F) -> Option<F::Output> {
        tokio::time::timeout(Duration::from_millis(50), f).await.ok()
    }

    #[tokio::test]
    async fn holds_wait_past_the_budget_and_go_on_when_it_is_freed() {
        let b = Budget::new(8 << 20);
        let (s1, s2, s3) = (b.share(None), b.share(None), b.share(None));
        let first = done(b.hold(&s1, 3 << 20)).await.expect("within the budget");
        let second = done(b.hold(&s2, 4 << 20)).await.expect("within the budget");
        assert_eq!(b.free(), 1 << 20);
        let mut third = Box::pin(b.hold(&s3, 2 << 20));
        assert!(done(&mut third).await.is_none(), "a hold past the budget went ahead");
        drop(first);
        let third = done(&mut third).await.expect("freed bytes were not handed on").unwrap();
        assert_eq!(b.free(), 2 << 20);
        drop((second, third));
        assert_eq!(b.free(), b.total());
    }

    #[tokio::test]
    async fn one_user_holds_at_most_half_over_all_their_connections() {
        let b = Budget::new(8 << 20);
        let (alice, bob) = (UserId::new("alice").unwrap(), UserId::new("bob").unwrap());
        let (a1, a2, b1) = (b.share(Some(&alice)), b.share(Some(&alice)), b.share(Some(&bob)));
        let _first = done(b.hold(&a1, 3 << 20)).await.expect("within alice's half").unwrap();
        let mut second = Box::pin(b.hold(&a2, 2 << 20));
        assert!(done(&mut second).await.is_none(), "alice's second connection went past her half");
        let _bobs = done(b.hold(&b1, 4 << 20)).await.expect("bob was kept waiting by alice").unwrap();
        // Her half outlives one connection while another is open, and is
        // forgotten once none is.
        drop(a1);
        drop(_first);
        done(&mut second).await.expect("alice's freed half was not handed on").unwrap();
        drop(second);
        drop(a2);
        assert!(
            b.halves.lock().unwrap().get(&alice).and_then(Weak::upgrade).is_none(),
            "a half kept with no connection"
        );
        let a3 = b.share(Some(&alice));
        assert!(done(b.hold(&a3, 4 << 20)).await.is_some(), "a new connection did not get a whole half");
    }

    #[tokio::test]
    async fn one_connection_holds_at_most_half() {
        let b = Budget::new(8 << 20);
        let (mine, other) = (b.share(None), b.share(None));
        let _held = done(b.hold(&mine, 4 << 20)).await.expect("half the budget").unwrap();
        assert!(done(b.hold(&mine, 1024)).await.is_none(), "a connection went past its half");
        let _theirs = done(b.hold(&other, 4 << 20)).await.expect("another connection was kept waiting").unwrap();
        assert_eq!(b.free(), 0);
    }

    #[tokio::test]
    async fn a_chunk_larger_than_a_share_still_goes_through_alone() {
        let b = Budget::new(64 << 10);
        let s = b.share(None);
        let held = done(b.hold(&s, 4 << 20)).await.expect("an oversized hold never went ahead").unwrap();
        assert_eq!(b.free(), 32 << 10);
        assert!(done(b.hold(&s, 1)).await.is_none());
        drop(held);
        assert!(done(b.hold(&s, 1)).await.is_some());
    }

    #[tokio::test]
    async fn closing_a_share_ends_the_waits_on_it() {
        let b = Budget::new(8 << 20);
        let (s1, s2) = (b.share(None), b.share(None));
        let _theirs = b.hold(&s2, 4 << 20).await.unwrap();
        let _first = b.hold(&s1, 3 << 20).await.unwrap();
        // One waits for its share, one for the budget.
        let mut on_share = Box::pin(b.hold(&s1, 2 << 20));
        assert!(done(&mut on_share).await.is_none());
        let s3 = b.share(None);
        let mut on_budget = Box::pin(b.hold(&s3, 2 << 20));
        assert!(done(&mut on_budget).await.is_none());
        s1.close();
        assert!(done(&mut on_share).await.expect("still waiting after close").is_err());
        assert!(done(b.hold(&s1, 1)).await.expect("a closed share made a request wait").is_err());
        s3.close();
        assert!(done(&mut on_budget).await.expect("still waiting after close").is_err());
    }
}
