//! Directory look-ups, verified against the pinned authority, and
//! trust-on-first-use pinning of each user's key fingerprint.

use exhibit_proto::directory::{DirectoryEntry, SignedEntry};
use exhibit_proto::frame::{Request, Response};
use exhibit_proto::UserId;

use crate::error::ClientError;
use crate::home::{Home, Profile};
use crate::session::{unexpected, Conn};

/// Directory entries matching `query`, each verified against the authority.
/// An entry that fails verification is an error, not silently dropped: it
/// means the server is lying.
pub async fn list(conn: &Conn, p: &Profile, query: Option<String>) -> Result<Vec<DirectoryEntry>, ClientError> {
    match conn.request(&Request::Directory { query }).await? {
        Response::Directory { entries } => {
            entries.iter().map(|e| e.verify(&p.authority).map_err(ClientError::from)).collect()
        }
        r => Err(unexpected(&r)),
    }
}

/// `exhibit directory`: entries matching `query`, verified, each with
/// the fingerprint pinned for its user here, if any.
pub async fn search(home: &Home, query: Option<String>) -> Result<Vec<Listed>, ClientError> {
    let p = home.load()?;
    let conn = crate::ops::heads::open(&p).await?;
    let entries = list(&conn, &p, query).await;
    let orgs = crate::ops::orgs::Orgs::fetch(&conn, &p).await;
    conn.close();
    let (entries, orgs) = (entries?, orgs?);
    let pins = home.pins()?;
    Ok(entries
        .into_iter()
        .map(|e| {
            let pin = pins.get(e.user.as_str()).cloned();
            let org = orgs.of(&e).cloned();
            Listed { entry: e, pin, org }
        })
        .collect())
}

/// A directory entry as `exhibit directory` shows it.
#[derive(Clone, Debug)]
pub struct Listed {
    /// The entry, verified.
    pub entry: DirectoryEntry,
    /// The fingerprint pinned for the user here, if any.
    pub pin: Option<String>,
    /// Their organisation's record, if it has one (verified).
    pub org: Option<exhibit_proto::org::Org>,
}

/// Turn the user's own arrival notices on or off on the server.
pub async fn set_notices(home: &Home, on: bool) -> Result<(), ClientError> {
    let p = home.load()?;
    let conn = crate::ops::heads::open(&p).await?;
    let r = conn.request(&exhibit_proto::frame::Request::SetNotices { arrivals: on }).await;
    conn.close();
    match r? {
        exhibit_proto::frame::Response::Done => Ok(()),
        other => Err(ClientError::Stream(format!("unexpected reply to SetNotices: {other:?}"))),
    }
}

/// `exhibit whoami`: our own entry, checked against the server's view of
/// us, when our certificate expires, and the way the connection went.
pub async fn whoami(home: &Home) -> Result<(Profile, u64, crate::session::Route), ClientError> {
    let p = home.load()?;
    let conn = crate::ops::heads::open(&p).await?;
    let route = conn.route().clone();
    let server_view = conn.request(&Request::WhoAmI).await?;
    conn.close();
    let mut p = p;
    if let Response::WhoAmI { entry } = server_view {
        if entry != p.entry {
            p = refresh_own(home, p, &entry)?;
        }
    }
    let expires = crate::home::cert_expiry(&p.tls_cert)?;
    Ok((p, expires, route))
}

/// The server holds a different entry for us: if the authority signed it
/// and it has our keys (an admin changed our organisation or roles), keep
/// it; anything else is refused.
pub(crate) fn refresh_own(home: &Home, mut p: Profile, entry: &SignedEntry) -> Result<Profile, ClientError> {
    let new = entry
        .verify(&p.authority)
        .map_err(|e| ClientError::Verify(format!("the server's entry for you is not the authority's: {e}")))?;
    if new.user != p.me.user || new.fingerprint() != p.me.fingerprint() {
        return Err(ClientError::Verify("the server's entry for you differs from your own (other keys)".into()));
    }
    home.set_entry(entry)?;
    p.entry = entry.clone();
    p.me = new;
    Ok(p)
}

/// Our own entry as the directory now has it (organisation and roles may
/// have changed since enrolment), checked against our keys and kept.
pub async fn own(conn: &Conn, home: &Home, p: &Profile) -> Result<DirectoryEntry, ClientError> {
    match conn.request(&Request::WhoAmI).await? {
        Response::WhoAmI { entry } if entry == p.entry => Ok(p.me.clone()),
        Response::WhoAmI { entry } => Ok(refresh_own(home, p.clone(), &entry)?.me),
        r => Err(unexpected(&r)),
    }
}

/// Look up exactly `user`, who must not be revoked. Not found, the error
/// suggests the ids nearest to what was typed.
pub async fn lookup(conn: &Conn, p: &Profile, user: &UserId) -> Result<DirectoryEntry, ClientError> {
    let found = list(conn, p, Some(user.to_string())).await?.into_iter().find(|e| &e.user == user);
    match found {
        Some(e) => match e.revoked_at {
            None => Ok(e),
            Some(at) => Err(ClientError::Server {
                code: exhibit_proto::frame::ErrorCode::Forbidden,
                message: format!(
                    "{user} ({}) was revoked on {}: they can no longer receive anything; ask an admin who handles their work now",
                    e.display_name,
                    crate::human::format_time(at)
                ),
            }),
        },
        None => {
            let all = list(conn, p, None).await.unwrap_or_default();
            let near = nearest(user.as_str(), all.iter().map(|e| e.user.as_str()));
            let hint = match near.as_slice() {
                [] => String::new(),
                some => format!("; did you mean {}?", some.join(" or ")),
            };
            Err(ClientError::Server {
                code: exhibit_proto::frame::ErrorCode::NotFound,
                message: format!("no enrolled user {user}{hint} (`exhibit directory` lists them)"),
            })
        }
    }
}

/// Up to three ids near `typed`: those it is part of (`priya` for
/// `priya.khan`), or within two edits of it (`bbo` for `bob`).
fn nearest<'a>(typed: &str, ids: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut near: Vec<(usize, &str)> = ids
        .filter_map(|id| match id.contains(typed) {
            true => Some((0, id)),
            false => Some(edits(typed, id)).filter(|d| *d <= 2).map(|d| (d, id)),
        })
        .collect();
    near.sort();
    near.into_iter().take(3).map(|(_, id)| id).collect()
}

/// Levenshtein distance (ids are at most 64 characters).
fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let here = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(here + 1);
            prev = here;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    #[test]
    fn near_misses_are_suggested_and_strangers_are_not() {
        let ids = ["priya.khan", "bob", "bobby.tables", "carol"];
        assert_eq!(super::nearest("priya", ids.into_iter()), ["priya.khan"]);
        assert_eq!(super::nearest("bbo", ids.into_iter()), ["bob"]);
        assert_eq!(super::nearest("bob", ids.into_iter()), ["bob", "bobby.tables"]);
        assert!(super::nearest("zed", ids.into_iter()).is_empty());
        assert_eq!(super::edits("kitten", "sitting"), 3);
    }
}

/// Whether a pin was new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pin {
    /// Matched an earlier pin.
    Known,
    /// First seen: now pinned.
    New,
}

/// Check `entry` against the fingerprint pinned for its user, pinning it if
/// this is the first time. A changed key is refused.
pub fn check_pin(home: &Home, entry: &DirectoryEntry) -> Result<Pin, ClientError> {
    let mut pins = home.pins()?;
    let fp = entry.fingerprint();
    match pins.get(entry.user.as_str()) {
        Some(p) if *p == fp => Ok(Pin::Known),
        Some(p) => Err(ClientError::KeyChanged { user: entry.user.to_string(), pinned: p.clone(), now: fp }),
        None => {
            pins.insert(entry.user.to_string(), fp);
            home.save_pins(&pins)?;
            Ok(Pin::New)
        }
    }
}

/// Accept a new fingerprint for `user` after checking it out of band.
pub fn trust(home: &Home, user: &UserId, fingerprint: &str) -> Result<(), ClientError> {
    let mut pins = home.pins()?;
    pins.insert(user.to_string(), fingerprint.trim().to_owned());
    home.save_pins(&pins)
}

/// Verify an entry that arrived with a manifest and check its pin.
pub fn verify_pinned(home: &Home, p: &Profile, e: &SignedEntry) -> Result<DirectoryEntry, ClientError> {
    let entry = e.verify(&p.authority)?;
    if entry.user != p.me.user {
        check_pin(home, &entry)?;
    }
    Ok(entry)
}
