//! `exhibit send`: read → cut → encrypt → hash → upload, a bounded pipeline
//! with several chunks in flight, then seal with a signed manifest.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use exhibit_proto::aligned::{AlignedBuf, Pool};
use exhibit_proto::details::{self, ItemRecord, Place};
use exhibit_proto::frame::{Request, Response};
use exhibit_proto::manifest::{ChunkRef, MANIFEST_VERSION};
use exhibit_proto::{limits, seal, treehash, ChunkId, Manifest, TransferId, UserId};
use futures_util::StreamExt;
use serde::Serialize;

use crate::error::ClientError;
use crate::home::Home;
use crate::journal::send::{Header, Journal, JournalItem};
use crate::ops::directory::{self, Pin};
use crate::progress::Progress;
use crate::session::retry::{self, Reconnects};
use crate::session::{unexpected, Conn, POOL_BYTES};
use exhibit_net::Lent;

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

/// A file to send, as the journal records it.
type Source = JournalItem;

fn rel_name(p: &Path) -> Result<String, ClientError> {
    p.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .ok_or_else(|| ClientError::Usage(format!("{}: name is not valid UTF-8", p.display())))
}

/// Expand files and folders into items with relative paths. Folders keep
/// their own name as the first component. Symlinks are refused.
fn collect(paths: &[PathBuf]) -> Result<(Vec<PathBuf>, Vec<Source>), ClientError> {
    let (mut roots, mut out) = (vec![], vec![]);
    for p in paths {
        let meta = std::fs::symlink_metadata(p).map_err(ClientError::io(format!("reading {}", p.display())))?;
        let name = rel_name(p)?;
        roots.push(p.parent().map(Path::to_owned).unwrap_or_default());
        walk(p, (roots.len() - 1) as u32, name, meta, &mut out)?;
    }
    // Path order: what sits together in a folder is packed together, and
    // the recipient checks the order instead of holding every path.
    out.sort_by(|a, b| exhibit_proto::path::component_cmp(&a.rel, &b.rel));
    out.shrink_to_fit();
    exhibit_proto::path::check_ordered(out.iter().map(|s| s.rel.as_str()))
        .map_err(|e| ClientError::Usage(format!("cannot send: {e}")))?;
    if out.is_empty() {
        return Err(ClientError::Usage("nothing to send: the folders are empty".into()));
    }
    Ok((roots, out))
}

fn walk(p: &Path, root: u32, rel: String, meta: std::fs::Metadata, out: &mut Vec<Source>) -> Result<(), ClientError> {
    let ft = meta.file_type();
    if ft.is_symlink() {
        return Err(ClientError::Usage(format!("{} is a symbolic link; send its target instead", p.display())));
    }
    if ft.is_file() {
        use std::os::unix::fs::MetadataExt;
        out.push(Source { root, rel, size: meta.len(), mtime: meta.mtime() });
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
        walk(&child, root, format!("{rel}/{}", rel_name(&child)?), meta, out)?;
    }
    Ok(())
}

struct Job {
    /// Its place among the transfer's content chunks.
    chunk: usize,
    /// The plaintext, where `layout` puts it.
    buf: AlignedBuf,
    layout: seal::ChunkLayout,
    /// Already on the server: only its plaintext is hashed.
    held: bool,
    /// A large file's chunk whose file hash is assembled from its chunks':
    /// the item, and the chunk's place in that file's BLAKE3 tree.
    tree: Option<(usize, treehash::Place)>,
}

/// What the reader must do.
#[derive(Clone, Debug)]
struct ReadPlan {
    /// The folders `sources` are read from.
    roots: Arc<Vec<PathBuf>>,
    sources: Arc<Vec<Source>>,
    /// Where each item goes (small files packed).
    places: Arc<Vec<Place>>,
    /// How many content chunks the items make.
    chunks: usize,
    chunk: u32,
    /// Whole-file hashes a journal already has.
    hashes: HashMap<usize, [u8; 32]>,
    /// Content chunks already on the server, with the plaintext treehash
    /// of a large file's chunk where the journal has it.
    held: HashMap<usize, Option<[u8; 32]>>,
}

/// A pack being filled with small files.
struct Pack {
    chunk: usize,
    bytes: Vec<u8>,
}

/// Read items and hand their chunks to the encrypt/upload stage through a
/// bounded channel, in content-chunk order.
///
/// Small files are read whole into the pack they share, and hashed there;
/// a pack the server already holds is read only for the hashes. A large
/// file's chunk is read to be sent, or, when the server holds it but the
/// file's hash is still to be made, to be hashed:
/// - a file whose hash is known is read only where chunks are missing;
/// - otherwise, when the chunk length is a power of two, the stage hashes
///   each chunk as it seals it (`tree` marks its place) and the file's hash
///   is assembled from the chunks'; held chunks whose hash the journal has
///   are not read at all;
/// - otherwise this stage reads the whole file in order and hashes it.
///
/// Returns each item's hash, where this stage made or knew it.
fn read_items(
    plan: &ReadPlan,
    recipients: usize,
    tx: tokio::sync::mpsc::Sender<Job>,
    journal: &std::sync::Mutex<Journal>,
    pool: &Pool,
) -> Result<Vec<Option<[u8; 32]>>, ClientError> {
    use std::io::Read;
    use std::os::unix::fs::FileExt;
    let chunk = plan.chunk;
    let mut sums: Vec<Option<[u8; 32]>> = vec![None; plan.sources.len()];
    let mut pack: Option<Pack> = None;
    // Hands a full pack on; false once the upload stage has stopped.
    let flush = |pack: Option<Pack>| -> bool {
        let Some(Pack { chunk, bytes }) = pack else { return true };
        if plan.held.contains_key(&chunk) {
            return true;
        }
        let layout = seal::ChunkLayout::new(bytes.len(), recipients);
        let mut buf = pool.take(layout.buf_len());
        layout.fill(&mut buf, &bytes);
        tx.blocking_send(Job { chunk, buf, layout, held: false, tree: None }).is_ok()
    };
    for (item, s) in plan.sources.iter().enumerate() {
        let path = s.path(&plan.roots);
        let changed =
            |e| ClientError::Io { context: format!("{}: file changed while being sent", path.display()), source: e };
        let grew = || ClientError::Usage(format!("{}: file grew while being sent", path.display()));
        let first = match plan.places[item] {
            Place::Packed { chunk: k, .. } => {
                let k = k as usize;
                if pack.as_ref().map(|p| p.chunk) != Some(k) {
                    if !flush(pack.take()) {
                        return Ok(sums);
                    }
                    pack = Some(Pack { chunk: k, bytes: Vec::with_capacity(chunk as usize) });
                }
                let Some(p) = pack.as_mut() else { continue };
                let start = p.bytes.len();
                p.bytes.resize(start + s.size as usize, 0);
                let mut f =
                    std::fs::File::open(&path).map_err(ClientError::io(format!("reading {}", path.display())))?;
                f.read_exact(&mut p.bytes[start..]).map_err(changed)?;
                if f.read(&mut [0u8; 1]).map_err(changed)? != 0 {
                    return Err(grew());
                }
                sums[item] = Some(*blake3::hash(&p.bytes[start..]).as_bytes());
                continue;
            }
            Place::Chunks { first } => first as usize,
        };
        if !flush(pack.take()) {
            return Ok(sums);
        }
        let known = plan.hashes.get(&item).copied();
        let f = std::fs::File::open(&path).map_err(ClientError::io(format!("reading {}", path.display())))?;
        let count = exhibit_proto::manifest::chunk_count(s.size, chunk) as usize;
        let by_tree = known.is_none() && treehash::supported(chunk);
        let mut in_order = (known.is_none() && !by_tree).then(blake3::Hasher::new);
        for index in 0..count {
            let held = plan.held.get(&(first + index));
            let wanted = match held {
                None => true,
                Some(journaled) => in_order.is_some() || (by_tree && journaled.is_none()),
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
            let tree =
                by_tree.then_some((item, treehash::Place { index: index as u64, chunk_len: chunk, total: s.size }));
            if tx.blocking_send(Job { chunk: first + index, buf, layout, held: held.is_some(), tree }).is_err() {
                // The upload stage failed; its error is the one to report.
                return Ok(sums);
            }
        }
        if known.is_none() && f.read_at(&mut [0u8; 1], s.size).map_err(changed)? != 0 {
            return Err(grew());
        }
        sums[item] = match (known, in_order) {
            (Some(h), _) => Some(h),
            (None, Some(h)) => {
                let h = *h.finalize().as_bytes();
                journal.lock().map_err(|_| ClientError::Stream("journal lock".into()))?.hash(item, h)?;
                Some(h)
            }
            (None, None) => None,
        };
    }
    flush(pack.take());
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

impl ReadPlan {
    fn new(
        roots: Vec<PathBuf>,
        sources: Vec<Source>,
        chunk: u32,
        hashes: HashMap<usize, [u8; 32]>,
        held: HashMap<usize, Option<[u8; 32]>>,
    ) -> Self {
        let (places, chunks) = details::layout(sources.iter().map(|s| s.size), chunk);
        let (roots, sources, places) = (Arc::new(roots), Arc::new(sources), Arc::new(places));
        ReadPlan { roots, sources, places, chunks: chunks as usize, chunk, hashes, held }
    }

    /// The chunk hashes of large file `item` (hashed by tree), from the
    /// journal where it has them.
    fn tree_of<'t>(
        &self,
        tree: &'t mut HashMap<usize, Vec<Option<[u8; 32]>>>,
        item: usize,
    ) -> &'t mut Vec<Option<[u8; 32]>> {
        tree.entry(item).or_insert_with(|| {
            let n = exhibit_proto::manifest::chunk_count(self.sources[item].size, self.chunk) as usize;
            let Place::Chunks { first } = self.places[item] else { return vec![] };
            (0..n).map(|j| self.held.get(&(first as usize + j)).copied().flatten()).collect()
        })
    }

    /// How many files each content chunk finishes (a pack's, or a large
    /// file's last chunk), and last the empty files outside any pack.
    fn files_done_at(&self) -> Vec<u64> {
        let mut at = vec![0u64; self.chunks + 1];
        let n = at.len() - 1;
        for (s, place) in self.sources.iter().zip(self.places.iter()) {
            let k = match *place {
                Place::Packed { chunk, .. } => chunk as usize,
                Place::Chunks { first } => match exhibit_proto::manifest::chunk_count(s.size, self.chunk) {
                    0 => n,
                    count => first as usize + count as usize - 1,
                },
            };
            at[k] += 1;
        }
        at
    }
}

/// Seal each sealed-details part and store it as a chunk of the transfer,
/// several at once; their references, in order.
async fn store_parts(
    conn: &Conn,
    transfer: TransferId,
    recipients: &Arc<Vec<age::x25519::Recipient>>,
    parts: Vec<Vec<u8>>,
) -> Result<Vec<ChunkRef>, ClientError> {
    let puts = parts.into_iter().map(|plain| {
        let (conn, recipients) = (conn.clone(), recipients.clone());
        async move {
            let cipher = tokio::task::spawn_blocking(move || seal::encrypt(&plain, &recipients))
                .await
                .map_err(|e| ClientError::Stream(format!("encrypt worker: {e}")))??;
            let c = ChunkRef { id: ChunkId::of(&cipher), len: cipher.len() as u32 };
            conn.put_chunk(transfer, c.id, cipher).await?;
            Ok::<_, ClientError>(c)
        }
    });
    futures_util::future::try_join_all(puts).await
}

#[allow(clippy::too_many_arguments)]
async fn upload(
    conn: &Conn,
    p: &crate::home::Profile,
    h: Header,
    plan: ReadPlan,
    done: HashMap<usize, ChunkRef>,
    journal: Journal,
    keys: Vec<age::x25519::Recipient>,
    shown: Vec<RecipientShown>,
    show_progress: bool,
    sent: &AtomicUsize,
) -> Result<SendOutcome, ClientError> {
    let transfer = h.transfer;
    let recipients = Arc::new(keys);
    let journal = Arc::new(std::sync::Mutex::new(journal));
    let total: u64 = plan.sources.iter().map(|s| s.size).sum();
    let done_at = plan.files_done_at();
    let progress = Progress::new(show_progress, total, "sending").with_files(plan.sources.len() as u64);
    // Empty files have no chunk to wait for.
    progress.files_done(done_at.last().copied().unwrap_or(0));
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Job>(2);
    let pool = Arc::new(Pool::new(POOL_BYTES));
    let reader = {
        let plan = plan.clone();
        let recipients = recipients.len();
        let (journal, pool) = (journal.clone(), pool.clone());
        tokio::task::spawn_blocking(move || read_items(&plan, recipients, tx, &journal, &pool))
    };
    let jobs = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let mut uploads = jobs
        .map(|job| {
            let conn = conn.clone();
            let (recipients, pool) = (recipients.clone(), pool.clone());
            async move {
                let Job { chunk, mut buf, layout, held, tree } = job;
                let plain_len = layout.plain_len() as u64;
                let (item, place) = (tree.map(|t| t.0), tree.map(|t| t.1));
                let (sealed, hash) = tokio::task::spawn_blocking(move || {
                    if held {
                        let hash = place.map(|place| {
                            let mut h = treehash::ChunkHasher::new(place);
                            layout.slots(&mut buf).for_each(|s| h.update(s));
                            h.finalize()
                        });
                        pool.give(buf);
                        return Ok((None, hash));
                    }
                    let s = seal::seal_chunk(&mut buf, layout, &recipients, place)?;
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
                let tree = item.zip(place).zip(hash).map(|((i, pl), h)| (i, pl.index as usize, h));
                Ok::<_, ClientError>((chunk, stored, tree, plain_len))
            }
        })
        .buffer_unordered(IN_FLIGHT);
    let mut chunks: Vec<Option<ChunkRef>> = vec![None; plan.chunks];
    for (k, c) in &done {
        if let Some(slot) = chunks.get_mut(*k) {
            *slot = Some(*c);
        }
    }
    // Chunk plaintext hashes of the large files hashed by tree: from the
    // journal for chunks already held, from the stage for the rest.
    let mut tree: HashMap<usize, Vec<Option<[u8; 32]>>> = HashMap::new();
    while let Some(r) = uploads.next().await {
        let (k, stored, hashed, n) = r?;
        let plain = hashed.map(|(_, _, hash)| hash);
        if let Some((item, index, hash)) = hashed {
            if let Some(slot) = plan.tree_of(&mut tree, item).get_mut(index) {
                *slot = Some(hash);
            }
        }
        let mut j = journal.lock().map_err(|_| ClientError::Stream("journal lock".into()))?;
        match (stored, chunks[k]) {
            (Some(c), _) => {
                sent.fetch_add(1, Ordering::Relaxed);
                j.chunk(k, c, plain)?;
                chunks[k] = Some(c);
                progress.inc(n);
                progress.files_done(done_at[k]);
            }
            // Held, and hashed only now: recorded so that another resume
            // need not read it again.
            (None, Some(c)) => j.chunk(k, c, plain)?,
            (None, None) => return Err(ClientError::Stream("a held chunk is not in the journal".into())),
        }
    }
    drop(uploads);
    let sums = reader.await.map_err(|e| ClientError::Stream(format!("reader: {e}")))??;
    progress.finish();
    let chunks: Vec<ChunkRef> = chunks
        .into_iter()
        .collect::<Option<_>>()
        .ok_or_else(|| ClientError::Stream("a chunk was not uploaded".into()))?;

    // The sealed details, each file's record written as it is made, in
    // parts stored as chunks a few at a time: never all in memory at once.
    let head = details::Head { items: sums.len() as u64, chunk_len: h.chunk_size, note: h.note.clone() };
    let mut w = details::Writer::new(&head);
    let (mut parts, mut pending) = (vec![], vec![]);
    for (item, known) in sums.into_iter().enumerate() {
        let s = &plan.sources[item];
        let blake3 = match known {
            Some(h) => h,
            None => {
                let sum = plan
                    .tree_of(&mut tree, item)
                    .iter()
                    .copied()
                    .collect::<Option<Vec<_>>>()
                    .and_then(|t| treehash::file_hash(&t, h.chunk_size, s.size))
                    .ok_or_else(|| ClientError::Stream(format!("item {item}: chunk hashes missing")))?;
                journal.lock().map_err(|_| ClientError::Stream("journal lock".into()))?.hash(item, sum)?;
                sum
            }
        };
        let place = plan.places[item];
        let r = ItemRecord { path: s.rel.clone(), size: s.size, blake3, place, exhibit_ref: None, description: None };
        pending.extend(w.push(&r));
        if pending.len() >= IN_FLIGHT {
            parts.extend(store_parts(conn, transfer, &recipients, std::mem::take(&mut pending)).await?);
        }
    }
    pending.push(w.finish());
    parts.extend(store_parts(conn, transfer, &recipients, pending).await?);

    let manifest = Manifest {
        version: MANIFEST_VERSION,
        transfer,
        sender: p.me.user.clone(),
        recipients: h.to.clone(),
        created_at: crate::session::now(),
        ack_within_secs: h.ack_within_secs,
        case_ref: h.case_ref.clone(),
        chunks,
        details_parts: parts,
        items: vec![],
        details: vec![],
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
        items: plan.sources.len(),
        bytes: total,
        recipients: shown,
        deadline,
        chunks_sent: sent.load(Ordering::Relaxed),
        reconnects: 0,
    })
}
