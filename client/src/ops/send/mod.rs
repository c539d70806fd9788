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
use exhibit_proto::{limits, seal, ChunkId, DirectoryEntry, ProtoError, TransferId, UserId};
use serde::Serialize;

use self::read::{collect, mtime, ReadPlan};
use self::upload::upload;
use crate::error::ClientError;
use crate::home::{Home, Profile};
use crate::journal::send::{Header, Journal};
use crate::labels::LabelPlan;
use crate::ops::directory::{self, Pin};
use crate::ops::orgs::Orgs;
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
    /// Each item's labels.
    pub labels: LabelPlan,
    /// How a first send to an organisation is confirmed.
    pub confirm: Confirm,
    /// Recipients' access ends this long after release (server default
    /// for external recipients if `None`).
    pub expires_secs: Option<u64>,
    /// What it forwards (set by `exhibit forward`).
    pub derived_from: Option<exhibit_proto::manifest::DerivedFrom>,
}

/// How the sender confirms a first send to an organisation (after seeing
/// each recipient's name, organisation, kind and fingerprint).
#[derive(Clone, Copy, Debug)]
pub enum Confirm {
    /// Confirmed already (`--yes`, or a page that asked).
    Yes,
    /// Ask: the question, answered true to go on.
    Ask(fn(&str) -> bool),
    /// No one to ask: refuse a first send to an organisation.
    Refuse,
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
            labels: LabelPlan::default(),
            confirm: Confirm::Yes,
            expires_secs: None,
            derived_from: None,
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
    /// Organisation (its name, or its id if it has no record).
    pub org: String,
    /// The organisation's kind (`police`, `cps`, `defence`, …; `unknown`
    /// without a record).
    pub org_kind: String,
    /// Key fingerprint.
    pub fingerprint: String,
    /// First time this key was seen (now pinned).
    pub newly_pinned: bool,
    /// Outside police and CPS: disclosure rules and approval apply.
    pub external: bool,
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
    /// Disclosure approvers it waits for (empty: released at once).
    pub approvers: Vec<String>,
}

/// Resolved recipients: as shown, their entries, and the keys to seal to.
struct Resolved {
    shown: Vec<RecipientShown>,
    entries: Vec<DirectoryEntry>,
    orgs: Orgs,
}

/// Resolve recipients: verified against the authority, checked against
/// pins, with their organisations.
async fn recipients(conn: &Conn, home: &Home, p: &Profile, to: &[UserId]) -> Result<Resolved, ClientError> {
    let orgs = Orgs::fetch(conn, p).await?;
    let units = crate::ops::units::named(conn, home, p, to).await?;
    let mut entries = vec![];
    let mut shown = vec![];
    for u in to {
        // A unit is addressed as a user is, by its current key (checked
        // against the member who made it, and pinned by epoch).
        let (e, pin) = match units.iter().find(|v| &v.unit.unit == u) {
            Some(v) => (v.as_entry()?, Pin::Known),
            None => {
                let e = directory::lookup(conn, p, u).await?;
                let pin = crate::ops::keylog::check_pin(conn, home, p, &e).await?;
                (e, pin)
            }
        };
        let org = orgs.of(&e);
        shown.push(RecipientShown {
            user: e.user.to_string(),
            display_name: e.display_name.clone(),
            org: org.map_or_else(|| e.org.clone(), |o| o.name.clone()),
            org_kind: org.map_or("unknown", |o| o.kind.as_str()).to_owned(),
            fingerprint: e.fingerprint(),
            newly_pinned: pin == Pin::New,
            external: orgs.is_external(&e),
        });
        entries.push(e);
    }
    Ok(Resolved { shown, entries, orgs })
}

/// The keys a send is sealed to: recipients, approvers and (if asked) the
/// sender.
fn keys_of(
    p: &Profile,
    entries: &[DirectoryEntry],
    approvers: &[DirectoryEntry],
    include_self: bool,
) -> Result<Vec<age::x25519::Recipient>, ClientError> {
    let mut keys: Vec<&str> = entries.iter().chain(approvers).map(|e| e.age_recipient.as_str()).collect();
    if include_self && !entries.iter().any(|e| e.user == p.me.user) {
        keys.push(p.me.age_recipient.as_str());
    }
    Ok(seal::parse_recipients(&keys)?)
}

/// The disclosure rules, before anything is uploaded: to a recipient
/// outside police and CPS, every item must be scheduled, not unused
/// sensitive, not unredacted and without victim details, and a disclosure
/// approver of the sender's organisation (not the sender) must exist; it
/// is also sealed to them. Returns the approvers' entries (verified and
/// pinned), empty when every recipient is internal.
async fn disclosure(
    conn: &Conn,
    home: &Home,
    p: &Profile,
    r: &Resolved,
    labels: &LabelPlan,
    paths: &[&str],
    case: Option<&str>,
) -> Result<Vec<DirectoryEntry>, ClientError> {
    let Some(first) = r.entries.iter().find(|e| r.orgs.is_external(e)) else {
        return Ok(vec![]);
    };
    let to = format!("{} of {}", first.user, r.orgs.describe(first));
    for path in paths {
        let l = labels.of(path);
        if let Some(why) = l.external_refusal() {
            return Err(ClientError::Disclosure(format!(
                "item {path} ({}) cannot go to {to}: {why}; nothing was uploaded",
                l.describe()
            )));
        }
    }
    check_roster(conn, p, r, case).await?;
    let me = directory::own(conn, home, p).await?;
    let mine = &me.org;
    let mut approvers: Vec<DirectoryEntry> = directory::list(conn, p, Some(mine.clone()))
        .await?
        .into_iter()
        .filter(|e| {
            &e.org == mine
                && e.user != me.user
                && e.revoked_at.is_none()
                && e.has_role(exhibit_proto::directory::Role::DisclosureApprover)
        })
        .collect();
    if approvers.is_empty() {
        return Err(ClientError::Disclosure(format!(
            "a disclosure to {to} needs a second person's approval, and your organisation ({mine}) has no \
             disclosure approver but you; ask an admin to give someone the disclosure-approver role; nothing was uploaded"
        )));
    }
    approvers.sort_by(|a, b| a.user.cmp(&b.user));
    approvers.truncate(limits::MAX_RECIPIENTS.saturating_sub(r.entries.len()).min(16));
    for a in &approvers {
        // An approver can read what they approve: their keys are checked
        // as a recipient's are.
        crate::ops::keylog::check_pin(conn, home, p, a).await?;
    }
    Ok(approvers)
}

/// Every external recipient's organisation is on the roster of the case
/// the send names (checked here, before upload, and again by the server).
async fn check_roster(conn: &Conn, p: &Profile, r: &Resolved, case: Option<&str>) -> Result<(), ClientError> {
    let outside: Vec<&DirectoryEntry> = r.entries.iter().filter(|e| r.orgs.is_external(e)).collect();
    let Some(first) = outside.first() else { return Ok(()) };
    let Some(case) = case else {
        return Err(ClientError::Disclosure(format!(
            "{} ({}) is outside police and CPS: name the case with --case, and its roster must list {}; \
             nothing was uploaded",
            first.user,
            r.orgs.describe(first),
            first.org
        )));
    };
    let roster = match crate::ops::cases::roster_on(conn, p, case).await {
        Ok(r) => r,
        Err(e) if e.server_code() == Some(exhibit_proto::frame::ErrorCode::NotFound) => {
            return Err(ClientError::Disclosure(format!(
                "case {case} has no roster yet, so nothing of it may go to {}; a CPS caseworker or disclosure \
                 approver opens it and adds {} (exhibit case open {case}; exhibit case allow {case} --org {}); \
                 nothing was uploaded",
                r.orgs.describe(first),
                first.org,
                first.org
            )))
        }
        Err(e) => return Err(e),
    };
    if let Some(e) = outside.iter().find(|e| !roster.lists(&e.org)) {
        return Err(ClientError::Disclosure(format!(
            "{} ({}) is not on the roster of case {case}; a caseworker or disclosure approver of {} (which keeps \
             the case) can add it: exhibit case allow {case} --org {}; nothing was uploaded",
            e.user,
            r.orgs.describe(e),
            roster.owner_name,
            e.org
        )));
    }
    Ok(())
}

/// A first send to an organisation is confirmed (the recipients were
/// shown), and so is every disclosure approver a send is also sealed to
/// the first time (by user and key: an approver can read what they
/// approve). What was confirmed is remembered.
fn confirm_first(home: &Home, r: &Resolved, approvers: &[DirectoryEntry], how: Confirm) -> Result<(), ClientError> {
    let mut known = home.confirmed_orgs()?;
    let approver_key = |a: &DirectoryEntry| format!("approver {} {}", a.user, a.fingerprint());
    let new: Vec<&RecipientShown> =
        r.shown.iter().zip(&r.entries).filter(|(_, e)| !known.contains(&e.org)).map(|(s, _)| s).collect();
    let new_approvers: Vec<&DirectoryEntry> = approvers.iter().filter(|a| !known.contains(&approver_key(a))).collect();
    if new.is_empty() && new_approvers.is_empty() {
        return Ok(());
    }
    let mut question = String::new();
    if !new.is_empty() {
        let list: Vec<String> = new
            .iter()
            .map(|s| format!("  {} ({}), {} ({}), key {}", s.display_name, s.user, s.org, s.org_kind, s.fingerprint))
            .collect();
        question += &format!(
            "This is your first send to {}:\n{}\n",
            if new.len() == 1 { "this organisation" } else { "these organisations" },
            list.join("\n")
        );
    }
    if !new_approvers.is_empty() {
        let list: Vec<String> = new_approvers
            .iter()
            .map(|a| format!("  {} ({}), key {}", a.display_name, a.user, a.fingerprint()))
            .collect();
        question += &format!(
            "It is also sealed to these disclosure approvers of your organisation, who can read it to approve it:\n{}\n",
            list.join("\n")
        );
    }
    question += "Send?";
    match how {
        Confirm::Yes => {}
        Confirm::Ask(ask) if ask(&question) => {}
        Confirm::Ask(_) => return Err(ClientError::Usage("not confirmed; nothing was uploaded".into())),
        Confirm::Refuse => {
            return Err(ClientError::Usage(format!(
                "{question}\nconfirm a first send to an organisation, or to a new approver, on a terminal or with --yes; nothing was uploaded"
            )))
        }
    }
    known.extend(r.entries.iter().map(|e| e.org.clone()));
    known.extend(approvers.iter().map(approver_key));
    home.save_confirmed_orgs(&known)
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
    let resolved = recipients(&conn, home, &p, &to).await?;
    let paths: Vec<&str> = sources.iter().map(|s| s.rel.as_str()).collect();
    let unknown = opts.labels.unknown(paths.iter().copied());
    if let Some(u) = unknown.first() {
        return Err(ClientError::Usage(format!(
            "the labels file names {u}, which is not among the items sent ({} such); nothing was uploaded",
            unknown.len()
        )));
    }
    let approvers = disclosure(&conn, home, &p, &resolved, &opts.labels, &paths, opts.case_ref.as_deref()).await?;
    confirm_first(home, &resolved, &approvers, opts.confirm)?;
    let (sets, _) = opts.labels.sets(paths.iter().copied());
    if sets.len() > exhibit_proto::details::MAX_LABEL_SETS {
        return Err(ClientError::Usage(format!(
            "the items carry {} different sets of labels; at most {} per send",
            sets.len(),
            exhibit_proto::details::MAX_LABEL_SETS
        )));
    }
    let policy = exhibit_proto::labels::PolicySummary::of(&sets);
    drop(paths);
    let keys = keys_of(&p, &resolved.entries, &approvers, opts.include_self)?;
    let shown = resolved.shown;
    let approver_ids: Vec<UserId> = approvers.iter().map(|a| a.user.clone()).collect();

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
        labels: opts.labels.clone(),
        approvers: approver_ids.clone(),
        expires_secs: opts.expires_secs,
        derived_from: opts.derived_from.clone(),
    };
    let journal = Journal::create(home, &header)?;
    // One list of the files, held by the reader from here on.
    let sources = std::mem::take(&mut header.items);
    let create = Request::CreateTransfer {
        transfer,
        recipients: to.clone(),
        policy: Some(policy),
        approvers: approver_ids,
        case: opts.case_ref.clone(),
        expires_secs: opts.expires_secs,
        derived_from: opts.derived_from.clone(),
        ack_within_secs: opts.ack_within_secs,
    };
    if let Err(e) = conn.request(&create).await.and_then(|r| match r {
        Response::Created => Ok(()),
        r => Err(unexpected(&r)),
    }) {
        // Refused before any chunk: the journal has nothing to resume.
        let _ = std::fs::remove_file(journal.path());
        return Err(e);
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
    let resolved = recipients(&conn, home, &p, &h.to).await?;
    let mut approvers = vec![];
    for a in &h.approvers {
        let e = directory::lookup(&conn, &p, a).await?;
        directory::check_pin(home, &e)?;
        approvers.push(e);
    }
    let keys = keys_of(&p, &resolved.entries, &approvers, h.include_self)?;
    let shown = resolved.shown;
    let policy = h.labels.summary(h.items.iter().map(|i| i.rel.as_str()));
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
            let create = Request::CreateTransfer {
                transfer: h.transfer,
                recipients: h.to.clone(),
                policy: Some(policy),
                approvers: h.approvers.clone(),
                case: h.case_ref.clone(),
                expires_secs: h.expires_secs,
                derived_from: h.derived_from.clone(),
                ack_within_secs: h.ack_within_secs,
            };
            match conn.request(&create).await? {
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
