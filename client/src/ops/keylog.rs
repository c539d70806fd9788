//! Keys in the audit log: a user's enrolment entry names their keys'
//! fingerprint, so keys the server publishes in someone's name are keys
//! the log shows to everyone. Each client checks its own at every contact
//! (the directory's entry for it, and the latest keys the log puts in its
//! name, must be the keys it made), and a first-time sender checks the
//! recipient's: the keys it is about to seal to must be the ones the log
//! holds for them, proven in a head consistent with its own.

use exhibit_proto::directory::{DirectoryEntry, SignedEntry};
use exhibit_proto::frame::{ErrorCode, Request, Response};
use exhibit_proto::tlog::EntryProof;
use exhibit_proto::UserId;
use serde::Serialize;

use crate::error::ClientError;
use crate::home::{Home, Profile};
use crate::ops::directory::{self, Pin};
use crate::session::{now, unexpected, Conn};

/// What the log holds for a user's keys.
#[derive(Debug)]
pub enum Logged {
    /// The latest entry naming their keys, proven, and its fingerprint.
    Keys(String, Box<EntryProof>),
    /// No entry names keys of theirs.
    Missing,
    /// The server is older than this check.
    Unsupported,
}

/// The latest keys the audit log puts in `user`'s name: the entry proven
/// in a head signed by the authority and consistent with the one held.
pub async fn logged(conn: &Conn, p: &Profile, user: &UserId) -> Result<Logged, ClientError> {
    let log = match conn.request(&Request::KeyEntry { user: user.clone() }).await {
        Ok(Response::KeyEntry { log }) => log,
        Ok(r) => return Err(unexpected(&r)),
        Err(ClientError::Server { code: ErrorCode::NotFound, .. }) => return Ok(Logged::Missing),
        // An exhibitd from before this check does not know the request.
        // Only a client that never held a tree head lets that pass: one
        // that did has been shown this server has the log to prove it.
        Err(ClientError::Server { code: ErrorCode::BadRequest, message })
            if crate::ops::heads::held(&p.dir, &p.log)?.is_none() =>
        {
            tracing::warn!(%message, "the server cannot show which keys its log holds (an older exhibitd)");
            return Ok(Logged::Unsupported);
        }
        Err(e) => return Err(e),
    };
    log.verify(&p.log)?;
    if log.entry.body.subject != user.as_str() {
        return Err(ClientError::Verify(format!(
            "asked for {user}'s keys, the server gave an entry about {}",
            log.entry.body.subject
        )));
    }
    crate::ops::heads::meet(conn, p, &log.head, &format!("the proof of {user}'s keys")).await?;
    match exhibit_proto::directory::fingerprint_named(&log.entry.body.details) {
        Some(fp) => Ok(Logged::Keys(fp.to_owned(), Box::new(log))),
        None => Err(ClientError::Verify(format!("the log's entry {} names no keys", log.entry.body.seq))),
    }
}

/// What a client writes when it finds keys in someone's name that are not
/// theirs: both sides of it, signed.
#[derive(Serialize)]
struct KeyReport<'a> {
    kind: &'static str,
    detected_at: u64,
    server: &'a str,
    reported_by: &'a str,
    keys_of: &'a str,
    reason: &'a str,
    /// The directory entry the server gave, signed by the authority.
    #[serde(skip_serializing_if = "Option::is_none")]
    directory_entry: Option<&'a SignedEntry>,
    /// The log's latest entry naming keys of theirs, with its proof.
    #[serde(skip_serializing_if = "Option::is_none")]
    log_entry: Option<&'a EntryProof>,
}

fn substituted(
    p: &Profile,
    user: &UserId,
    reason: String,
    entry: Option<&SignedEntry>,
    log: Option<&EntryProof>,
) -> Result<ClientError, ClientError> {
    let at = now();
    let report = KeyReport {
        kind: "exhibit substituted keys report",
        detected_at: at,
        server: &p.config.server,
        reported_by: p.me.user.as_str(),
        keys_of: user.as_str(),
        reason: &reason,
        directory_entry: entry,
        log_entry: log,
    };
    let name = format!("key-report-{at}-{:08x}.json", rand::random::<u32>());
    let path = crate::ops::heads::write_json(&p.dir, &name, &report)?;
    tracing::error!(report = %path.display(), %user, "keys in a user's name that are not theirs");
    Ok(ClientError::KeysSubstituted { reason, report: path })
}

/// This client's own check, at every contact: the directory's entry for
/// it holds its keys, and so does the latest entry of the log that puts
/// keys in its name. Anything else is reported (and written down) at once.
pub async fn check_own(conn: &Conn, home: &Home, p: &Profile) -> Result<(), ClientError> {
    let me = &p.me.user;
    let entry = match conn.request(&Request::WhoAmI).await? {
        Response::WhoAmI { entry } => entry,
        r => return Err(unexpected(&r)),
    };
    if entry != p.entry {
        let theirs = entry.verify(&p.authority)?;
        if theirs.user != *me || theirs.fingerprint() != p.me.fingerprint() {
            let why = format!(
                "the directory gives keys {} for you, and yours are {}: someone else can now read what is sent to you",
                theirs.fingerprint(),
                p.me.fingerprint()
            );
            return Err(substituted(p, me, why, Some(&entry), None)?);
        }
        // Only the organisation or roles changed: kept.
        crate::ops::directory::refresh_own(home, p.clone(), &entry)?;
    }
    match logged(conn, p, me).await? {
        Logged::Keys(fp, _) if fp == p.me.fingerprint() => Ok(()),
        Logged::Keys(fp, log) => {
            let why = format!(
                "the audit log's latest keys in your name are {fp} (entry {}), and yours are {}: someone was enrolled as you",
                log.entry.body.seq,
                p.me.fingerprint()
            );
            Err(substituted(p, me, why, Some(&entry), Some(&log))?)
        }
        Logged::Missing => {
            let why = "the audit log names no keys of yours, though you are enrolled: your enrolment is not in the log the server shows".to_owned();
            Err(substituted(p, me, why, Some(&entry), None)?)
        }
        Logged::Unsupported => Ok(()),
    }
}

/// [`directory::check_pin`] for keys about to be sealed to: seen for the
/// first time, they must be the ones the log holds before they are pinned.
pub async fn check_pin(conn: &Conn, home: &Home, p: &Profile, to: &DirectoryEntry) -> Result<Pin, ClientError> {
    if !home.pins()?.contains_key(to.user.as_str()) {
        check_first_send(conn, p, to).await?;
    }
    directory::check_pin(home, to)
}

/// Before a first send to `to` (keys not yet pinned): the keys about to be
/// sealed to must be the ones the log holds for them. Refused otherwise,
/// before anything is uploaded.
async fn check_first_send(conn: &Conn, p: &Profile, to: &DirectoryEntry) -> Result<(), ClientError> {
    match logged(conn, p, &to.user).await? {
        Logged::Keys(fp, _) if fp == to.fingerprint() => Ok(()),
        Logged::Keys(fp, log) => {
            let why = format!(
                "the directory gives keys {} for {}, but the audit log's latest keys in their name are {fp} (entry {}); nothing was sent",
                to.fingerprint(),
                to.user,
                log.entry.body.seq
            );
            Err(substituted(p, &to.user, why, None, Some(&log))?)
        }
        Logged::Missing => Err(ClientError::Verify(format!(
            "the audit log names no keys of {}: their keys {} cannot be checked against it, so nothing was sent; ask an admin",
            to.user,
            to.fingerprint()
        ))),
        Logged::Unsupported => Ok(()),
    }
}
