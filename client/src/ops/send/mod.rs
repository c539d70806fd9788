//! `exhibit send`: read → cut → encrypt → hash → upload, a bounded pipeline
//! with several chunks in flight, then seal with a signed manifest.

mod read;
mod upload;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use exhibit_proto::frame::{Request, Response};
use exhibit_proto::manifest::ChunkRef;
use exhibit_proto::text::{self, Field};
use exhibit_proto::{limits, seal, ChunkId, ProtoError, TransferId, UserId};
use serde::Serialize;

use self::read::{collect, mtime, ReadPlan};
use self::upload::upload;
use crate::error::ClientError;
use crate::home::{Home, Profile};
use crate::journal::send::{Header, Journal};
use crate::ops::directory::{self, Pin};
use crate::session::retry::{self, Reconnects};
use crate::session::{unexpected, Conn};

// Where the send's tuning has always been found.
pub use crate::session::IN_FLIGHT;

/// What to send.
#[derive(Clone, Debug)]
pub struct SendOptions {
    /// Files and folders.
    pub paths: Vec<PathBuf>,
    /// Recipients.
    pub to: Vec<UserId>,
    /// Case reference.
    pub case_ref: Option<String>,
    /// Note to the recipients (sealed).
    pub note: Option<String>,
    /// Acknowledge-within, seconds (server default if `None`).
    pub ack_within_secs: Option<u64>,
    /// Plaintext chunk size.
    pub chunk_size: u32,
    /// Also encrypt to ourselves, so we can read our own outbox.
    pub include_self: bool,
    /// Show a progress bar.
    pub progress: bool,
}

impl SendOptions {
    /// Defaults for sending `paths` to `to`.
    pub fn new(paths: Vec<PathBuf>, to: Vec<UserId>) -> Self {
        SendOptions {
            paths,
            to,
            case_ref: None,
            note: None,
            ack_within_secs: None,
            chunk_size: limits::DEFAULT_CHUNK_SIZE,
            include_self: true,
            progress: false,
        }
    }
}

/// A recipient as shown to the sender.
#[derive(Clone, Debug, Serialize)]
pub struct RecipientShown {
    /// User id.
    pub user: String,
    /// Name.
    pub display_name: String,
    /// Organisation.
    pub org: String,
    /// Key fingerprint.
    pub fingerprint: String,
    /// First time this key was seen (now pinned).
    pub newly_pinned: bool,
}

/// What was sent.
#[derive(Clone, Debug, Serialize)]
pub struct SendOutcome {
    /// Transfer id.
    pub transfer: TransferId,
    /// Items.
    pub items: usize,
    /// Plaintext bytes.
    pub bytes: u64,
    /// Recipients, verified and pinned.
    pub recipients: Vec<RecipientShown>,
    /// Acknowledge-by deadline (server time).
    pub deadline: u64,
    /// Chunks this run uploaded (fewer than all when resuming).
    pub chunks_sent: usize,
    /// Times the connection was lost and re-established.
    pub reconnects: u32,
}

/// Resolve recipients: verified against the authority, checked against pins.
async fn recipients(
    conn: &Conn,
    home: &Home,
    p: &Profile,
    to: &[UserId],
    include_self: bool,
) -> Result<(Vec<RecipientShown>, Vec<age::x25519::Recipient>), ClientError> {
    let mut entries = vec![];
    let mut shown = vec![];
    for u in to {
        let e = directory::lookup(conn, p, u).await?;
        let pin = directory::check_pin(home, &e)?;
        shown.push(RecipientShown {
            user: e.user.to_string(),
            display_name: e.display_name.clone(),
            org: e.org.clone(),
            fingerprint: e.fingerprint(),
            newly_pinned: pin == Pin::New,
        });
        entries.push(e);
    }
    let mut keys: Vec<&str> = entries.iter().map(|e| e.age_recipient.as_str()).collect();
    if include_self && !to.contains(&p.me.user) {
        keys.push(p.me.age_recipient.as_str());
    }
    Ok((shown, seal::parse_recipients(&keys)?))
}

/// Send files to recipients. Returns once the server has sealed the
/// transfer. A journal kept meanwhile lets `exhibit resume` finish it if
/// this is interrupted.
pub async fn send(home: &Home, opts: SendOptions) -> Result<SendOutcome, ClientError> {
    if !(limits::MIN_CHUNK_SIZE..=limits::MAX_CHUNK_SIZE).contains(&opts.chunk_size) {
        return Err(ClientError::Usage(format!(
            "chunk size must be between {} and {} bytes",
            limits::MIN_CHUNK_SIZE,
            limits::MAX_CHUNK_SIZE
        )));
    }
    if opts.to.is_empty() {
        return Err(ClientError::Usage("name at least one recipient with --to".into()));
    }
    for (what, t) in [("case reference", &opts.case_ref), ("note", &opts.note)] {
        if t.as_ref().is_some_and(|t| t.len() > limits::MAX_TEXT) {
            return Err(ClientError::Usage(format!("{what} is longer than {} bytes", limits::MAX_TEXT)));
        }
    }
    // The text rule before anything is read or uploaded: the case reference
    // is shown to every party and in court reports, the note to recipients.
    text::check_opt(Field::CaseRef, opts.case_ref.as_deref()).map_err(ProtoError::from)?;
    text::check_opt(Field::Note, opts.note.as_deref()).map_err(ProtoError::from)?;
    let p = home.load()?;
    let (roots, sources) = collect(&opts.paths)?;
    let conn = Conn::open(&p).await?;
    crate::ops::audit::check(&conn, home, &p).await?;
    let mut to = opts.to.clone();
    to.sort();
    to.dedup();
    let (shown, keys) = recipients(&conn, home, &p, &to, opts.include_self).await?;

    let transfer = TransferId::random();
    let mut header = Header {
        transfer,
        to: to.clone(),
        case_ref: opts.case_ref.clone(),
        note: opts.note.clone(),
        ack_within_secs: opts.ack_within_secs,
        chunk_size: opts.chunk_size,
        include_self: opts.include_self,
        roots,
        items: sources,
        version: crate::journal::send::JOURNAL_VERSION,
    };
    let journal = Journal::create(home, &header)?;
    // One list of the files, held by the reader from here on.
    let sources = std::mem::take(&mut header.items);
    match conn.request(&Request::CreateTransfer { transfer, recipients: to.clone() }).await? {
        Response::Created => {}
        r => return Err(unexpected(&r)),
    }
    let roots = std::mem::take(&mut header.roots);
    let plan = ReadPlan::new(roots, sources, header.chunk_size, HashMap::new(), HashMap::new());
    let sent = AtomicUsize::new(0);
    let jpath = journal.path().to_owned();
    let first = upload(&conn, &p, header, plan, HashMap::new(), journal, keys, shown, opts.progress, &sent).await;
    conn.close();
    let mut err = match first {
        Ok(mut out) => {
            out.chunks_sent = sent.load(Ordering::Relaxed);
            return Ok(out);
        }
        Err(e) => e,
    };
    // A dropped connection or a restarting server: reconnect and continue
    // from the journal, a few times, backing off.
    let mut reconnects = Reconnects::new(retry::connection_lost_or_server_fault, opts.progress);
    while reconnects.again(&err).await {
        match resume_counting(home, &jpath, opts.progress, &sent).await {
            Ok(mut out) => {
                out.chunks_sent = sent.load(Ordering::Relaxed);
                out.reconnects = reconnects.made();
                return Ok(out);
            }
            Err(e) => err = e,
        }
    }
    Err(reconnects.give_up(err, "run `exhibit resume` to continue"))
}

/// Continue an interrupted send from its journal: only chunks the server
/// does not hold are sent again, and only items whose hash was not finished
/// are read whole again.
pub async fn resume(home: &Home, journal_path: &Path, progress: bool) -> Result<SendOutcome, ClientError> {
    let sent = AtomicUsize::new(0);
    let mut out = resume_counting(home, journal_path, progress, &sent).await?;
    out.chunks_sent = sent.load(Ordering::Relaxed);
    Ok(out)
}

async fn resume_counting(
    home: &Home,
    journal_path: &Path,
    progress: bool,
    sent: &AtomicUsize,
) -> Result<SendOutcome, ClientError> {
    let r = crate::journal::send::recover(journal_path)?;
    let p = home.load()?;
    let conn = Conn::open(&p).await?;
    crate::ops::audit::check(&conn, home, &p).await?;
    let journal = Journal::reopen(&r)?;
    let (mut h, hashes, plain, journaled) = (r.header, r.hashes, r.plain, r.chunks);
    for it in &h.items {
        let path = it.path(&h.roots);
        let size = std::fs::metadata(&path).map_err(ClientError::io(format!("reading {}", path.display())))?.len();
        if size != it.size || mtime(&path)? != it.mtime {
            return Err(ClientError::Usage(format!(
                "{} changed since the send started; delete {} and send again",
                path.display(),
                journal_path.display()
            )));
        }
    }
    let (shown, keys) = recipients(&conn, home, &p, &h.to, h.include_self).await?;
    // Which chunks does the server hold?
    let len = |resp: &Response| match resp {
        Response::ChunkList { count } => count.checked_mul(32),
        _ => None,
    };
    let held: std::collections::HashSet<ChunkId> = match conn
        .request_body(&Request::TransferChunks { transfer: h.transfer }, len, limits::MAX_CHUNKS * 32)
        .await
    {
        Ok((_, body)) => body.chunks_exact(32).filter_map(|c| c.try_into().ok()).map(ChunkId).collect(),
        Err(e) if e.server_code() == Some(exhibit_proto::frame::ErrorCode::NotFound) => {
            // The transfer never reached the server: start it now.
            match conn.request(&Request::CreateTransfer { transfer: h.transfer, recipients: h.to.clone() }).await? {
                Response::Created => Default::default(),
                r => return Err(unexpected(&r)),
            }
        }
        Err(e) => return Err(e),
    };
    let done: HashMap<usize, ChunkRef> = journaled.into_iter().filter(|(_, c)| held.contains(&c.id)).collect();
    let (sources, roots) = (std::mem::take(&mut h.items), std::mem::take(&mut h.roots));
    let held = done.keys().map(|k| (*k, plain.get(k).copied())).collect();
    let plan = ReadPlan::new(roots, sources, h.chunk_size, hashes, held);
    let r = upload(&conn, &p, h, plan, done, journal, keys, shown, progress, sent).await;
    conn.close();
    r
}
