//! `exhibit send`: read → cut → encrypt → hash → upload, a bounded pipeline
//! with several chunks in flight, then seal with a signed manifest.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use exhibit_proto::aligned::{AlignedBuf, Pool};
use exhibit_proto::frame::{Request, Response};
use exhibit_proto::manifest::{ChunkRef, ItemDetails, ManifestItem, SealedDetails, MANIFEST_VERSION};
use exhibit_proto::{limits, seal, treehash, ChunkId, Manifest, TransferId, UserId};
use futures_util::StreamExt;
use serde::Serialize;

use crate::conn::{unexpected, Conn};
use crate::directory::{self, Pin};
use crate::error::ClientError;
use crate::home::Home;
use crate::journal::{Header, Journal, JournalItem};
use crate::progress::Progress;
use exhibit_net::Lent;

/// Chunks encrypting or uploading at once.
pub const IN_FLIGHT: usize = 8;

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

/// A file to send.
#[derive(Clone, Debug)]
struct Source {
    path: PathBuf,
    rel: String,
    size: u64,
}

fn rel_name(p: &Path) -> Result<String, ClientError> {
    p.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .ok_or_else(|| ClientError::Usage(format!("{}: name is not valid UTF-8", p.display())))
}

/// Expand files and folders into items with relative paths. Folders keep
/// their own name as the first component. Symlinks are refused.
fn collect(paths: &[PathBuf]) -> Result<Vec<Source>, ClientError> {
    let mut out = vec![];
    for p in paths {
        let meta = std::fs::symlink_metadata(p).map_err(ClientError::io(format!("reading {}", p.display())))?;
        let name = rel_name(p)?;
        walk(p, name, meta, &mut out)?;
    }
    let names: Vec<&str> = out.iter().map(|s| s.rel.as_str()).collect();
    exhibit_proto::path::check_set(names).map_err(|e| ClientError::Usage(format!("cannot send: {e}")))?;
    if out.is_empty() {
        return Err(ClientError::Usage("nothing to send: the folders are empty".into()));
    }
    Ok(out)
}

fn walk(p: &Path, rel: String, meta: std::fs::Metadata, out: &mut Vec<Source>) -> Result<(), ClientError> {
    let ft = meta.file_type();
    if ft.is_symlink() {
        return Err(ClientError::Usage(format!("{} is a symbolic link; send its target instead", p.display())));
    }
    if ft.is_file() {
        out.push(Source { path: p.to_owned(), rel, size: meta.len() });
        return Ok(());
    }
    if !ft.is_dir() {
        return Err(ClientError::Usage(format!("{} is not a regular file or folder", p.display())));
    }
    let mut entries: Vec<_> = std::fs::read_dir(p)
        .map_err(ClientError::io(format!("listing {}", p.display())))?
        .collect::<Result<_, _>>()
        .map_err(ClientError::io(format!("listing {}", p.display())))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let child = e.path();
        let meta =
            std::fs::symlink_metadata(&child).map_err(ClientError::io(format!("reading {}", child.display())))?;
        walk(&child, format!("{rel}/{}", rel_name(&child)?), meta, out)?;
    }
    Ok(())
}

struct Job {
    item: usize,
    index: usize,
    /// The plaintext, where `layout` puts it.
    buf: AlignedBuf,
    layout: seal::ChunkLayout,
    /// Already on the server: only its plaintext is hashed.
    held: bool,
    /// Its place in the file's BLAKE3 tree, when the file's hash is
    /// assembled from its chunks'.
    tree: Option<treehash::Place>,
}

/// Idle chunk buffers kept for reuse by a send or a fetch (enough for the
/// chunks in flight at the default chunk size).
pub(crate) const POOL_BYTES: usize = 64 << 20;

/// What the reader must do for one item.
#[derive(Clone, Debug)]
struct ReadPlan {
    source: Source,
    /// The whole-file hash, if a journal already has it.
    hash: Option<[u8; 32]>,
    /// Chunks already on the server, with their plaintext treehash where
    /// the journal has it.
    held: HashMap<usize, Option<[u8; 32]>>,
}

/// Read items and hand their chunks to the encrypt/upload stage through a
/// bounded channel. A chunk is read to be sent, or, when the server holds
/// it but the item's hash is still to be made, to be hashed:
/// - an item whose hash is known is read only where chunks are missing;
/// - otherwise, when the chunk length is a power of two, the stage hashes
///   each chunk as it seals it (`tree` marks its place) and the file's hash
///   is assembled from the chunks'; held chunks whose hash the journal has
///   are not read at all;
/// - otherwise this stage reads the whole item in order and hashes it.
///
/// Each item's hash, where this stage made or knew it.
fn read_items(
    plans: &[ReadPlan],
    chunk: u32,
    recipients: usize,
    tx: tokio::sync::mpsc::Sender<Job>,
    journal: &std::sync::Mutex<Journal>,
    pool: &Pool,
) -> Result<Vec<Option<[u8; 32]>>, ClientError> {
    use std::os::unix::fs::FileExt;
    let mut sums = vec![];
    for (item, plan) in plans.iter().enumerate() {
        let s = &plan.source;
        let f = std::fs::File::open(&s.path).map_err(ClientError::io(format!("reading {}", s.path.display())))?;
        let count = exhibit_proto::manifest::chunk_count(s.size, chunk) as usize;
        let changed =
            |e| ClientError::Io { context: format!("{}: file changed while being sent", s.path.display()), source: e };
        let by_tree = plan.hash.is_none() && treehash::supported(chunk);
        let mut in_order = (plan.hash.is_none() && !by_tree).then(blake3::Hasher::new);
        for index in 0..count {
            let held = plan.held.get(&index);
            let wanted = match held {
                None => true,
                Some(known) => in_order.is_some() || (by_tree && known.is_none()),
            };
            if !wanted {
                continue;
            }
            let mut off = index as u64 * u64::from(chunk);
            let layout = seal::ChunkLayout::new((s.size - off).min(u64::from(chunk)) as usize, recipients);
            let mut buf = pool.take(layout.buf_len());
            for slot in layout.slots(&mut buf) {
                f.read_exact_at(slot, off).map_err(changed)?;
                off += slot.len() as u64;
                if let Some(h) = in_order.as_mut() {
                    h.update(slot);
                }
            }
            if held.is_some() && !by_tree {
                pool.give(buf);
                continue;
            }
            let tree = by_tree.then_some(treehash::Place { index: index as u64, chunk_len: chunk, total: s.size });
            if tx.blocking_send(Job { item, index, buf, layout, held: held.is_some(), tree }).is_err() {
                // The upload stage failed; its error is the one to report.
                return Ok(sums);
            }
        }
        if plan.hash.is_none() && f.read_at(&mut [0u8; 1], s.size).map_err(changed)? != 0 {
            return Err(ClientError::Usage(format!("{}: file grew while being sent", s.path.display())));
        }
        let sum = match (plan.hash, in_order) {
            (Some(h), _) => Some(h),
            (None, Some(h)) => {
                let h = *h.finalize().as_bytes();
                journal.lock().map_err(|_| ClientError::Stream("journal lock".into()))?.hash(item, h)?;
                Some(h)
            }
            (None, None) => None,
        };
        sums.push(sum);
    }
    Ok(sums)
}

fn mtime(p: &Path) -> Result<i64, ClientError> {
    use std::os::unix::fs::MetadataExt;
    Ok(std::fs::metadata(p).map_err(ClientError::io(format!("reading {}", p.display())))?.mtime())
}

/// Resolve recipients: verified against the authority, checked against pins.
async fn recipients(
    conn: &Conn,
    home: &Home,
    p: &crate::home::Profile,
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
    let p = home.load()?;
    let sources = collect(&opts.paths)?;
    let conn = Conn::open(&p).await?;
    crate::audit::check(&conn, home, &p).await?;
    let mut to = opts.to.clone();
    to.sort();
    to.dedup();
    let (shown, keys) = recipients(&conn, home, &p, &to, opts.include_self).await?;

    let transfer = TransferId::random();
    let header = Header {
        transfer,
        to: to.clone(),
        case_ref: opts.case_ref.clone(),
        note: opts.note.clone(),
        ack_within_secs: opts.ack_within_secs,
        chunk_size: opts.chunk_size,
        include_self: opts.include_self,
        items: sources
            .iter()
            .map(|s| Ok(JournalItem { path: s.path.clone(), rel: s.rel.clone(), size: s.size, mtime: mtime(&s.path)? }))
            .collect::<Result<_, ClientError>>()?,
    };
    let journal = Journal::create(home, &header)?;
    match conn.request(&Request::CreateTransfer { transfer, recipients: to.clone() }).await? {
        Response::Created => {}
        r => return Err(unexpected(&r)),
    }
    let plans = sources.into_iter().map(|source| ReadPlan { source, hash: None, held: HashMap::new() }).collect();
    let sent = AtomicUsize::new(0);
    let jpath = journal.path().to_owned();
    let first = upload(&conn, &p, header, plans, HashMap::new(), journal, keys, shown, opts.progress, &sent).await;
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
    let mut reconnects = 0;
    while retryable(&err) && reconnects < RECONNECTS {
        reconnects += 1;
        wait_to_reconnect(reconnects, &err, opts.progress).await;
        match resume_counting(home, &jpath, opts.progress, &sent).await {
            Ok(mut out) => {
                out.chunks_sent = sent.load(Ordering::Relaxed);
                out.reconnects = reconnects;
                return Ok(out);
            }
            Err(e) => err = e,
        }
    }
    if retryable(&err) {
        return Err(ClientError::Interrupted(format!("{err}; run `exhibit resume` to continue")));
    }
    Err(err)
}

/// Log the lost connection and wait before attempt `attempt` (backing off
/// from 1 s to 16 s).
pub(crate) async fn wait_to_reconnect(attempt: u32, err: &ClientError, tell_user: bool) {
    let wait = Duration::from_millis(500 << attempt.min(5));
    tracing::warn!(error = %err, "connection lost; reconnecting in {} ms", wait.as_millis());
    if tell_user {
        eprintln!("connection lost ({err}); reconnecting in {}s", wait.as_secs_f32());
    }
    tokio::time::sleep(wait).await;
}

/// Reconnection attempts within one send or fetch.
pub const RECONNECTS: u32 = 5;

/// Whether an error is worth reconnecting for.
fn retryable(e: &ClientError) -> bool {
    match e {
        ClientError::Stream(_) | ClientError::Connect { .. } => true,
        ClientError::Server { code, .. } => *code == exhibit_proto::frame::ErrorCode::Internal,
        _ => false,
    }
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
    let r = crate::journal::recover(journal_path)?;
    let p = home.load()?;
    let conn = Conn::open(&p).await?;
    crate::audit::check(&conn, home, &p).await?;
    let h = r.header.clone();
    for it in &h.items {
        let size =
            std::fs::metadata(&it.path).map_err(ClientError::io(format!("reading {}", it.path.display())))?.len();
        if size != it.size || mtime(&it.path)? != it.mtime {
            return Err(ClientError::Usage(format!(
                "{} changed since the send started; delete {} and send again",
                it.path.display(),
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
    let mut done = HashMap::new();
    for ((item, index), c) in &r.chunks {
        if held.contains(&c.id) {
            done.insert((*item, *index), *c);
        }
    }
    let plans = h
        .items
        .iter()
        .enumerate()
        .map(|(i, it)| ReadPlan {
            source: Source { path: it.path.clone(), rel: it.rel.clone(), size: it.size },
            hash: r.hashes.get(&i).copied(),
            held: done
                .keys()
                .filter(|(item, _)| *item == i)
                .map(|&(_, k)| (k, r.plain.get(&(i, k)).copied()))
                .collect(),
        })
        .collect();
    let journal = Journal::reopen(&r)?;
    let r = upload(&conn, &p, h, plans, done, journal, keys, shown, progress, sent).await;
    conn.close();
    r
}

#[allow(clippy::too_many_arguments)]
async fn upload(
    conn: &Conn,
    p: &crate::home::Profile,
    h: Header,
    plans: Vec<ReadPlan>,
    done: HashMap<(usize, usize), ChunkRef>,
    journal: Journal,
    keys: Vec<age::x25519::Recipient>,
    shown: Vec<RecipientShown>,
    show_progress: bool,
    sent: &AtomicUsize,
) -> Result<SendOutcome, ClientError> {
    let transfer = h.transfer;
    let recipients = Arc::new(keys);
    let journal = Arc::new(std::sync::Mutex::new(journal));
    let total: u64 = plans.iter().map(|s| s.source.size).sum();
    let progress = Progress::new(show_progress, total, "sending");
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Job>(2);
    let pool = Arc::new(Pool::new(POOL_BYTES));
    let reader = {
        let plans = plans.clone();
        let (chunk, recipients) = (h.chunk_size, recipients.len());
        let (journal, pool) = (journal.clone(), pool.clone());
        tokio::task::spawn_blocking(move || read_items(&plans, chunk, recipients, tx, &journal, &pool))
    };
    let jobs = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let mut uploads = jobs
        .map(|job| {
            let conn = conn.clone();
            let (recipients, pool) = (recipients.clone(), pool.clone());
            async move {
                let Job { item, index, mut buf, layout, held, tree } = job;
                let plain_len = layout.plain_len() as u64;
                let (sealed, hash) = tokio::task::spawn_blocking(move || {
                    if held {
                        let hash = tree.map(|place| {
                            let mut h = treehash::ChunkHasher::new(place);
                            layout.slots(&mut buf).for_each(|s| h.update(s));
                            h.finalize()
                        });
                        pool.give(buf);
                        return Ok((None, hash));
                    }
                    let s = seal::seal_chunk(&mut buf, layout, &recipients, tree)?;
                    Ok::<_, ClientError>((Some((Lent::bytes(buf, pool).slice(s.range), s.id)), s.plain_hash))
                })
                .await
                .map_err(|e| ClientError::Stream(format!("encrypt worker: {e}")))??;
                let stored = match sealed {
                    Some((cipher, id)) => {
                        let len = cipher.len() as u32;
                        conn.put_chunk(transfer, id, cipher).await?;
                        Some(ChunkRef { id, len })
                    }
                    None => None,
                };
                Ok::<_, ClientError>((item, index, stored, hash, plain_len))
            }
        })
        .buffer_unordered(IN_FLIGHT);
    let mut chunks: Vec<Vec<Option<ChunkRef>>> = plans
        .iter()
        .map(|s| vec![None; exhibit_proto::manifest::chunk_count(s.source.size, h.chunk_size) as usize])
        .collect();
    for ((item, index), c) in &done {
        if let Some(slot) = chunks.get_mut(*item).and_then(|v| v.get_mut(*index)) {
            *slot = Some(*c);
        }
    }
    // Chunk plaintext hashes of the items hashed by tree: from the
    // journal for chunks already held, from the stage for the rest.
    let mut tree: Vec<Vec<Option<[u8; 32]>>> = plans
        .iter()
        .zip(&chunks)
        .map(|(p, c)| (0..c.len()).map(|k| p.held.get(&k).copied().flatten()).collect())
        .collect();
    while let Some(r) = uploads.next().await {
        let (item, index, stored, hash, n) = r?;
        tree[item][index] = hash.or(tree[item][index]);
        let mut j = journal.lock().map_err(|_| ClientError::Stream("journal lock".into()))?;
        match (stored, chunks[item][index]) {
            (Some(c), _) => {
                sent.fetch_add(1, Ordering::Relaxed);
                j.chunk(item, index, c, hash)?;
                chunks[item][index] = Some(c);
                progress.inc(n);
            }
            // Held, and hashed only now: recorded so that another resume
            // need not read it again.
            (None, Some(c)) => j.chunk(item, index, c, hash)?,
            (None, None) => return Err(ClientError::Stream("a held chunk is not in the journal".into())),
        }
    }
    drop(uploads);
    let sums = reader.await.map_err(|e| ClientError::Stream(format!("reader: {e}")))??;
    progress.finish();
    let sums = sums
        .into_iter()
        .enumerate()
        .map(|(item, known)| match known {
            Some(h) => Ok(h),
            None => {
                let size = plans[item].source.size;
                let sum = tree[item]
                    .iter()
                    .copied()
                    .collect::<Option<Vec<_>>>()
                    .and_then(|t| treehash::file_hash(&t, h.chunk_size, size))
                    .ok_or_else(|| ClientError::Stream(format!("item {item}: chunk hashes missing")))?;
                journal.lock().map_err(|_| ClientError::Stream("journal lock".into()))?.hash(item, sum)?;
                Ok(sum)
            }
        })
        .collect::<Result<Vec<_>, ClientError>>()?;

    let items: Vec<ManifestItem> = chunks
        .into_iter()
        .map(|cs| cs.into_iter().collect::<Option<Vec<_>>>().map(|chunks| ManifestItem { chunks }))
        .collect::<Option<_>>()
        .ok_or_else(|| ClientError::Stream("a chunk was not uploaded".into()))?;
    let details = SealedDetails {
        items: plans
            .iter()
            .zip(&sums)
            .map(|(s, hash)| ItemDetails {
                path: s.source.rel.clone(),
                size: s.source.size,
                blake3: *hash,
                chunk_plain_len: h.chunk_size,
                exhibit_ref: None,
                description: None,
            })
            .collect(),
        note: h.note.clone(),
    };
    let manifest = Manifest {
        version: MANIFEST_VERSION,
        transfer,
        sender: p.me.user.clone(),
        recipients: h.to.clone(),
        created_at: now(),
        ack_within_secs: h.ack_within_secs,
        case_ref: h.case_ref.clone(),
        items,
        details: seal::seal_details(&details, &recipients)?,
    };
    let signed = manifest.sign(&p.signing);
    let req = Request::Seal { signature: signed.signature.clone(), manifest_len: signed.bytes.len() as u32 };
    let deadline = match conn.request_with_body(&req, &signed.bytes).await? {
        Response::Sealed { deadline, .. } => deadline,
        r => return Err(unexpected(&r)),
    };
    conn.close();
    let journal = Arc::try_unwrap(journal)
        .map_err(|_| ClientError::Stream("journal still in use".into()))?
        .into_inner()
        .map_err(|_| ClientError::Stream("journal lock".into()))?;
    journal.finish()?;
    Ok(SendOutcome {
        transfer,
        items: plans.len(),
        bytes: total,
        recipients: shown,
        deadline,
        chunks_sent: sent.load(Ordering::Relaxed),
        reconnects: 0,
    })
}

/// Wall-clock time for fields the client states about itself.
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}
