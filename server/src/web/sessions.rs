//! Dashboard logins in the metadata store, so that every node of a
//! deployment sharing it knows them and a restart keeps them: sessions
//! (the cookie) and one-time login links (the code in the URL). Only
//! BLAKE3 of each secret is stored; a session's CSRF token is derived from
//! its cookie, so it is not stored either. Expiry is the server clock's,
//! checked on every lookup; expired rows are swept whenever a session or a
//! link is made, so the tables hold at most the last few hours' logins.

use exhibit_proto::UserId;

use crate::core::records::DashboardLogin;
use crate::error::ServerError;
use crate::state::State;

/// Domain of the CSRF token derived from a session's cookie.
const CSRF_CONTEXT: &str = "exhibit 2026 dashboard csrf v1";

/// A logged-in session: its cookie, CSRF token and who it acts as.
#[derive(Debug)]
pub(super) struct Session {
    /// The cookie's value.
    pub sid: String,
    /// The token every POST form must carry.
    pub csrf: String,
    /// Who actions are recorded as.
    pub actor: UserId,
}

/// A new random secret: 128 bits, hex.
pub(super) fn random_hex() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// The key a secret is stored under.
fn key(secret: &str) -> [u8; 32] {
    *blake3::hash(secret.as_bytes()).as_bytes()
}

/// The CSRF token of the session whose cookie is `sid`.
fn csrf_of(sid: &str) -> String {
    hex::encode(blake3::derive_key(CSRF_CONTEXT, sid.as_bytes()))
}

/// Store a one-time link for `actor` until `expires_at`; returns its code.
pub(super) fn new_link(state: &State, actor: UserId, now: u64, expires_at: u64) -> Result<String, ServerError> {
    let code = random_hex();
    let mut tx = state.meta.write()?;
    tx.sweep_dashboard(now)?;
    tx.put_dashboard_link(&key(&code), &DashboardLogin { actor, expires_at })?;
    tx.commit()?;
    Ok(code)
}

/// Use up a one-time link: who it was made for, if it existed and had not
/// expired. Used or not, it is gone.
pub(super) fn take_link(state: &State, code: &str, now: u64) -> Result<Option<UserId>, ServerError> {
    let mut tx = state.meta.write()?;
    let found = tx.take_dashboard_link(&key(code))?;
    tx.commit()?;
    Ok(found.filter(|l| l.expires_at > now).map(|l| l.actor))
}

/// Start a session for `actor` until `expires_at`.
pub(super) fn new_session(state: &State, actor: UserId, now: u64, expires_at: u64) -> Result<Session, ServerError> {
    let sid = random_hex();
    let mut tx = state.meta.write()?;
    tx.sweep_dashboard(now)?;
    tx.put_dashboard_session(&key(&sid), &DashboardLogin { actor: actor.clone(), expires_at })?;
    tx.commit()?;
    Ok(Session { csrf: csrf_of(&sid), sid, actor })
}

/// The session whose cookie is `sid`, if it exists and has not expired.
pub(super) fn find(state: &State, sid: &str, now: u64) -> Result<Option<Session>, ServerError> {
    let found = state.meta.read()?.dashboard_session(&key(sid))?;
    Ok(found.filter(|l| l.expires_at > now).map(|l| Session {
        sid: sid.to_owned(),
        csrf: csrf_of(sid),
        actor: l.actor,
    }))
}

/// End the session whose cookie is `sid`, on every node.
pub(super) fn end(state: &State, sid: &str) -> Result<(), ServerError> {
    let mut tx = state.meta.write()?;
    tx.remove_dashboard_session(&key(sid))?;
    tx.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csrf_token_is_not_the_stored_key_nor_the_cookie() {
        let sid = "00112233445566778899aabbccddeeff";
        assert_ne!(csrf_of(sid), hex::encode(key(sid)));
        assert_ne!(csrf_of(sid), sid);
        assert_eq!(csrf_of(sid), csrf_of(sid));
        assert_ne!(csrf_of(sid), csrf_of("00112233445566778899aabbccddeefe"));
    }
}
