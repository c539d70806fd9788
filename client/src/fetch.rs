//! `exhibit fetch`: download chunks in parallel, verify and decrypt each,
//! write at offset into temp files beside the destination, verify every
//! item's whole-plaintext hash, and only then move the files into place and
//! send the signed receipt.

use std::fs::File;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use exhibit_proto::aligned::{Pool, ALIGN};
use exhibit_proto::details::Placed;
use exhibit_proto::frame::{Request, Response};
use exhibit_proto::{limits, seal, treehash, AcceptedReceipt, Receipt, SignedManifest, TransferId, VerifiedManifest};
use futures_util::StreamExt;
use serde::Serialize;

use crate::conn::{unexpected, Conn};
use crate::details::{ItemRef, Items, RelStr};
use crate::directory;
use crate::error::ClientError;
use crate::home::{Home, Profile};
use crate::progress::Progress;
use crate::send::{now, IN_FLIGHT};

/// What to fetch and where.
#[derive(Clone, Debug)]
pub struct FetchOptions {
    /// Transfer id.
    pub transfer: TransferId,
    /// Output directory (created if missing).
    pub out: PathBuf,
    /// Show a progress bar.
    pub progress: bool,
}

/// One item written.
#[derive(Clone, Debug, Serialize)]
pub struct FetchedItem {
    /// Relative path.
    pub path: String,
    /// Where it was written.
    pub written_to: PathBuf,
    /// Bytes.
    pub size: u64,
    /// BLAKE3 of the plaintext (verified).
    pub blake3: String,
}

/// What a fetch did.
#[derive(Clone, Debug, Serialize)]
pub struct FetchOutcome {
    /// Transfer id.
    pub transfer: TransferId,
    /// Sender.
    pub sender: String,
    /// Sender's key fingerprint.
    pub sender_fingerprint: String,
    /// Case reference.
    pub case_ref: Option<String>,
    /// Sender's note.
    pub note: Option<String>,
    /// How many files were written.
    pub item_count: usize,
    /// Their plaintext bytes.
    pub bytes: u64,
    /// Each file written, for transfers of up to [`LIST_UP_TO`] files;
    /// past that empty, and the files are listed in `items_file`.
    pub items: Vec<FetchedItem>,
    /// The item list kept beside the receipt (BLAKE3 and path of each
    /// file, `b3sum` format).
    pub items_file: PathBuf,
    /// The receipt the server accepted (none when the sender fetches their
    /// own transfer).
    pub receipt: Option<AcceptedReceipt>,
    /// Chunks downloaded by this run (fewer than all when continuing).
    pub chunks_fetched: usize,
}

/// Up to this many files a fetch's outcome lists each (a device extract's
/// million would be a quarter of a gigabyte of it).
pub const LIST_UP_TO: usize = 10_000;

/// The first line of a fetch journal.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct FetchHeader {
    /// Transfer.
    pub transfer: TransferId,
    /// Output directory (canonical).
    pub out: PathBuf,
    /// Temp file tag.
    pub tag: u64,
    /// Journal format: 2 records content chunks by their place in the
    /// manifest; an earlier exhibit's journal (0) is not continued.
    #[serde(default)]
    pub version: u16,
}

/// The fetch journal format this build writes.
const FETCH_JOURNAL_VERSION: u16 = 2;

/// One line of a fetch journal: JSON and a newline.
fn journal_line(v: &impl Serialize) -> Result<Vec<u8>, ClientError> {
    let mut line = serde_json::to_vec(v).map_err(|e| ClientError::Config(e.to_string()))?;
    line.push(b'\n');
    Ok(line)
}

/// (Re)write a fetch journal: its header and the chunks done.
fn write_fetch_journal(
    path: &Path,
    h: &FetchHeader,
    done: &std::collections::HashSet<usize>,
) -> Result<(), ClientError> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(ClientError::io(format!("creating {}", d.display())))?;
    }
    let mut text = journal_line(h)?;
    for d in done {
        text.extend(journal_line(d)?);
    }
    std::fs::write(path, text).map_err(ClientError::io(format!("writing {}", path.display())))
}

/// Header and chunks done of a fetch journal (a torn last line ignored).
pub fn read_fetch_journal(path: &Path) -> Option<(FetchHeader, std::collections::HashSet<usize>)> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.split_inclusive('\n').filter(|l| l.ends_with('\n'));
    let header: FetchHeader = serde_json::from_str(lines.next()?).ok()?;
    if header.version != FETCH_JOURNAL_VERSION {
        return None;
    }
    let done = lines.filter_map(|l| serde_json::from_str::<usize>(l).ok()).collect();
    Some((header, done))
}

/// Unfinished fetches: (transfer, output directory).
pub fn pending(home: &Home) -> Vec<(TransferId, PathBuf)> {
    let Ok(rd) = std::fs::read_dir(home.dir().join("journal")) else { return vec![] };
    let mut out: Vec<_> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "fetch"))
        .filter_map(|p| read_fetch_journal(&p).map(|(h, _)| (h.transfer, h.out)))
        .collect();
    out.sort();
    out
}

/// Get and verify a transfer's manifest: the sender's entry against the
/// authority and the pins, the signature against the sender's key.
pub async fn verified_manifest(
    conn: &Conn,
    home: &Home,
    p: &Profile,
    transfer: TransferId,
) -> Result<(VerifiedManifest, exhibit_proto::DirectoryEntry), ClientError> {
    let len = |r: &Response| match r {
        Response::Manifest { manifest_len, .. } => Some(*manifest_len),
        _ => None,
    };
    let (head, bytes) = conn.request_body(&Request::GetManifest { transfer }, len, limits::MAX_MANIFEST).await?;
    let Response::Manifest { signature, sender, .. } = head else { return Err(unexpected(&head)) };
    let sender = directory::verify_pinned(home, p, &sender)?;
    let vm = SignedManifest { bytes, signature }.verify(&sender)?;
    if vm.manifest().transfer != transfer {
        return Err(ClientError::Verify(format!(
            "server sent the manifest of {} for {transfer}",
            vm.manifest().transfer
        )));
    }
    Ok((vm, sender))
}

/// Temp files, and the staging folder small files are written into, that
/// are removed unless the fetch completes (or is to be continued).
struct Temps(Vec<PathBuf>, Option<PathBuf>);

impl Temps {
    /// Keep everything, for a later run to continue.
    fn keep(&mut self) {
        self.0.clear();
        self.1 = None;
    }
}

impl Drop for Temps {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
        if let Some(d) = &self.1 {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// The staging folder of a fetch in `out`: made here, the user's alone
/// (0700), or left by an interrupted run of the same fetch and still ours.
/// Small files are written into it at their relative paths, so that the
/// finished tree moves into place with one rename per top-level name.
/// Returns it, its identity, and the owner this user's files get in `out`.
fn staging_dir(out: &Path, transfer: TransferId, tag: u64) -> Result<(PathBuf, FileId, u32), ClientError> {
    let d = out.join(format!(".exhibit-{transfer}-{tag:016x}"));
    match std::fs::DirBuilder::new().mode(0o700).create(&d) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(ClientError::io(format!("creating {}", d.display()))(e)),
    }
    let m = std::fs::symlink_metadata(&d).map_err(ClientError::io(format!("reading {}", d.display())))?;
    let uid = owner_in(out)?;
    if !m.is_dir() || m.uid() != uid || m.mode() & 0o077 != 0 {
        return Err(ClientError::Usage(format!(
            "{} is not a folder of this user's alone; remove it and fetch again",
            d.display()
        )));
    }
    Ok((d, file_id(&m), uid))
}

/// Create the parent directories of `rel` under `out`, refusing to pass
/// through anything that is not a real directory (a planted symlink must
/// not lead outside `out`).
///
/// `made` holds the folders (relative) already checked or made by this
/// fetch, so many files in one folder check it once.
fn safe_parent(out: &Path, rel: RelStr, made: &mut std::collections::HashSet<String>) -> Result<PathBuf, ClientError> {
    let comps: Vec<&str> = rel.components().collect();
    let mut dir = out.to_owned();
    let mut sofar = String::new();
    for c in &comps[..comps.len() - 1] {
        dir.push(c);
        sofar.push_str(c);
        sofar.push('/');
        if made.contains(&sofar) {
            continue;
        }
        made.insert(sofar.clone());
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(ClientError::Verify(format!("{} exists and is not a directory", dir.display())));
            }
            Err(_) => std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&dir)
                .map_err(ClientError::io(format!("creating {}", dir.display())))?,
        }
    }
    Ok(dir.join(comps[comps.len() - 1]))
}

fn dest_of(out: &Path, rel: RelStr) -> PathBuf {
    rel.components().fold(out.to_owned(), |p, c| p.join(c))
}

/// Which file a temp file is (device, inode): the one this fetch created
/// or checked. Plaintext is never written into a file swapped in under its
/// name, nor is such a file moved into place.
type FileId = (u64, u64);

/// No file's identity (no file has inode 0).
const NO_FILE: FileId = (0, 0);

fn file_id(m: &std::fs::Metadata) -> FileId {
    (m.dev(), m.ino())
}

/// A temp file found not to be the one this fetch made or checked.
#[derive(Debug)]
struct Replaced(PathBuf);

impl std::fmt::Display for Replaced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} was replaced during the fetch", self.0.display())
    }
}

impl std::error::Error for Replaced {}

/// Whether the file at `path` is still the one `id` names.
fn check_temp(f: &File, path: &Path, id: FileId) -> std::io::Result<()> {
    match file_id(&f.metadata()?) == id {
        true => Ok(()),
        false => Err(std::io::Error::other(Replaced(path.to_owned()))),
    }
}

/// Open the temp file at `path` for writing (with `flags` besides), if it
/// is still the file `id` names.
fn open_temp(path: &Path, id: FileId, flags: i32) -> std::io::Result<File> {
    let f = std::fs::OpenOptions::new().write(true).custom_flags(flags | libc::O_NOFOLLOW).open(path)?;
    check_temp(&f, path, id)?;
    Ok(f)
}

/// An IO error on a temp file as the fetch reports it: a replaced file is
/// a failed verification, not an interruption to resume.
fn temp_error(what: &'static str) -> impl Fn(std::io::Error) -> ClientError {
    move |e| match e.get_ref().and_then(|r| r.downcast_ref::<Replaced>()) {
        Some(r) => ClientError::Verify(r.to_string()),
        None => ClientError::io(what)(e),
    }
}

/// The owner this user's files get in `dir`, as its filesystem reports it
/// (a network share may map every file to one owner): read off a file made
/// there for the purpose.
fn owner_in(dir: &Path) -> Result<u32, ClientError> {
    let probe = dir.join(format!(".exhibit-owner-{:016x}", rand::random::<u64>()));
    let f = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&probe)
        .map_err(ClientError::io(format!("creating {}", probe.display())))?;
    let uid = f.metadata().map(|m| m.uid());
    let _ = std::fs::remove_file(&probe);
    uid.map_err(ClientError::io(format!("reading {}", probe.display())))
}

/// Chunk lengths written with direct IO are multiples of this: the largest
/// common page size, so no page is shared by two chunks written at once
/// (one direct, one buffered: the kernel would then keep a stale page).
const DIRECT_CHUNK_MULTIPLE: u32 = 64 << 10;

/// Write `bytes` (one chunk of `chunk_len`-byte chunks) at `offset` of the
/// file at `path`. The whole blocks go with O_DIRECT when the chunk length
/// allows and the buffer is block-aligned, so the plaintext is not copied
/// through the page cache and written back at the final fsync; the rest (a
/// short last chunk) is written buffered, after. Where direct IO fails for
/// any reason the chunk is written buffered, which reports real errors.
fn write_at(path: &Path, id: FileId, bytes: &[u8], offset: u64, chunk_len: u32) -> std::io::Result<()> {
    let aligned = chunk_len % DIRECT_CHUNK_MULTIPLE == 0
        && offset % u64::from(DIRECT_CHUNK_MULTIPLE) == 0
        && bytes.as_ptr().align_offset(ALIGN) == 0;
    let whole = if aligned { bytes.len() / ALIGN * ALIGN } else { 0 };
    let direct =
        || -> std::io::Result<()> { open_temp(path, id, libc::O_DIRECT)?.write_all_at(&bytes[..whole], offset) };
    let done = if whole > 0 && direct().is_ok() { whole } else { 0 };
    if done < bytes.len() {
        open_temp(path, id, 0)?.write_all_at(&bytes[done..], offset + done as u64)?;
    }
    Ok(())
}

/// Download, verify, decrypt and write a transfer, then send the receipt.
/// A dropped connection is re-established and the fetch continues from
/// its journal, a few times, backing off.
pub async fn fetch(home: &Home, opts: FetchOptions) -> Result<FetchOutcome, ClientError> {
    let fetched = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut attempt = 0;
    loop {
        match fetch_once(home, opts.clone(), fetched.clone()).await {
            Ok(mut out) => {
                out.chunks_fetched = fetched.load(std::sync::atomic::Ordering::Relaxed);
                return Ok(out);
            }
            Err(e @ (ClientError::Stream(_) | ClientError::Connect { .. })) if attempt < crate::send::RECONNECTS => {
                attempt += 1;
                crate::send::wait_to_reconnect(attempt, &e, false).await;
            }
            Err(e @ (ClientError::Stream(_) | ClientError::Connect { .. })) => {
                return Err(ClientError::Interrupted(format!(
                    "{e}; what arrived is kept: run `exhibit resume` or fetch again to continue"
                )))
            }
            Err(e) => return Err(e),
        }
    }
}

/// What one content chunk holds, for the fetch: a large item's chunk, or a
/// pack of small items.
#[derive(Clone, Debug)]
enum Piece {
    /// Chunk `index` of item `item`, written at `offset` of its temp file.
    Part { item: usize, index: usize, offset: u64, plain_len: u32, chunk_len: u32 },
    /// Items `items`, one after another from the pack's start.
    Pack { items: std::ops::Range<usize>, plain_len: u64 },
}

/// Each content chunk's piece, from the checked items' places.
fn pieces(items: &Items, chunks: usize) -> Vec<Option<Piece>> {
    let mut out: Vec<Option<Piece>> = vec![None; chunks];
    for (i, it) in items.iter().enumerate() {
        match it.placed {
            Placed::Chunks { first, count, chunk_len } => {
                for index in 0..count {
                    let offset = index as u64 * u64::from(chunk_len);
                    out[first + index] = Some(Piece::Part {
                        item: i,
                        index,
                        offset,
                        plain_len: it.placed.plain_len(it.size, index),
                        chunk_len,
                    });
                }
            }
            Placed::Packed { chunk, .. } => match &mut out[chunk] {
                Some(Piece::Pack { items, plain_len }) => {
                    items.end = i + 1;
                    *plain_len += it.size;
                }
                slot => *slot = Some(Piece::Pack { items: i..i + 1, plain_len: it.size }),
            },
        }
    }
    out
}

/// Whether a temp file left by an interrupted fetch is still this user's
/// alone: a regular file of `len` bytes, ours, with no other name. Its
/// identity if so.
fn still_ours(t: &Path, len: u64, mine: u32) -> Option<FileId> {
    let m = std::fs::symlink_metadata(t).ok()?;
    (m.is_file() && m.len() == len && m.uid() == mine && m.nlink() == 1).then(|| file_id(&m))
}

/// Write a small item's bytes to a temp file of its own, made here (a file
/// already at that name, left by an interrupted attempt, is replaced).
fn write_small(t: &Path, bytes: &[u8]) -> std::io::Result<FileId> {
    use std::io::Write;
    if let Some(d) = t.parent() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(d)?;
    }
    let create =
        || std::fs::OpenOptions::new().create_new(true).write(true).mode(0o600).custom_flags(libc::O_NOFOLLOW).open(t);
    let mut f = match create() {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::remove_file(t)?;
            create()?
        }
        r => r?,
    };
    f.write_all(bytes)?;
    Ok(file_id(&f.metadata()?))
}

/// Where a fetch keeps each file until it is verified: a large file in a
/// temp file of its own beside the staging folder, a small one at its
/// relative path inside the staging folder. Computed, not stored: a
/// million files need no million paths held.
#[derive(Debug)]
struct TempPaths {
    out: PathBuf,
    staging: PathBuf,
    transfer: TransferId,
    tag: u64,
}

impl TempPaths {
    /// The temp file of large item `i`.
    fn part(&self, i: usize) -> PathBuf {
        self.out.join(format!(".exhibit-{}-{:016x}-{i}.part", self.transfer, self.tag))
    }

    /// Where item `i` waits.
    fn of(&self, i: usize, it: ItemRef) -> PathBuf {
        match it.placed {
            Placed::Packed { .. } => dest_of(&self.staging, it.path),
            Placed::Chunks { .. } => self.part(i),
        }
    }
}

/// Make everything written to the filesystem holding `dir` durable: one
/// `syncfs` for all of a fetch's files instead of an fsync for each.
fn sync_filesystem(dir: &Path) -> Result<(), ClientError> {
    let d = File::open(dir).map_err(ClientError::io(format!("opening {}", dir.display())))?;
    rustix::fs::syncfs(&d).map_err(|e| ClientError::io(format!("syncing {}", dir.display()))(e.into()))
}

async fn fetch_once(
    home: &Home,
    opts: FetchOptions,
    fetched: Arc<std::sync::atomic::AtomicUsize>,
) -> Result<FetchOutcome, ClientError> {
    let p = home.load()?;
    let conn = Conn::open(&p).await?;
    crate::audit::check(&conn, home, &p).await?;
    let (vm, sender) = verified_manifest(&conn, home, &p, opts.transfer).await?;
    let m = vm.manifest();
    let is_recipient = m.recipients.contains(&p.me.user);
    if !is_recipient && m.sender != p.me.user {
        return Err(ClientError::Verify("this transfer is not addressed to you".into()));
    }
    let started = std::time::Instant::now();
    let opened = crate::details::open(&conn, &vm, &p.age).await.map_err(|e| match e {
        // Tampered, or not what the sender signed: refused like a chunk.
        ClientError::Proto(e) => ClientError::refused(e),
        e => e,
    })?;
    let items = Arc::new(opened.items);
    tracing::debug!(items = items.len(), ms = started.elapsed().as_millis() as u64, "sealed details opened");

    // Folders and files made here are the user's alone (0700, 0600): the
    // plaintext is evidence, and often of the most private kind.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&opts.out)
        .map_err(ClientError::io(format!("creating {}", opts.out.display())))?;
    let out = opts.out.canonicalize().map_err(ClientError::io(format!("resolving {}", opts.out.display())))?;
    for it in items.iter() {
        let dest = dest_of(&out, it.path);
        if std::fs::symlink_metadata(&dest).is_ok() {
            return Err(ClientError::Usage(format!("{} already exists; choose another -o", dest.display())));
        }
    }

    // Temp files are created here and reopened per chunk, so a folder of
    // thousands of files never holds thousands of descriptors.
    // An earlier, interrupted fetch of this transfer into this directory
    // is continued: its temp files and the chunks its journal records.
    let jpath = home.dir().join("journal").join(format!("{}.fetch", opts.transfer));
    let header = |tag| FetchHeader { transfer: opts.transfer, out: out.clone(), tag, version: FETCH_JOURNAL_VERSION };
    let (tag, mut done) = match read_fetch_journal(&jpath) {
        Some((h, done)) if h.out == out => (h.tag, done),
        // The folder an interrupted fetch was writing to (by its resolved
        // path, as `exhibit resume` names it) now resolves elsewhere: a
        // link was put in its way. Plaintext does not follow it.
        Some((h, _)) if opts.out == h.out => {
            return Err(ClientError::Usage(format!(
                "{} now leads to {}: not following it; check the folder, or fetch again with another -o",
                h.out.display(),
                out.display()
            )))
        }
        _ => {
            let (tag, done) = (rand::random(), Default::default());
            write_fetch_journal(&jpath, &header(tag), &done)?;
            (tag, done)
        }
    };
    let (staging, staging_id, mine) = staging_dir(&out, opts.transfer, tag)?;
    // A large file's temp file sits beside the staging folder until it is
    // verified; a small one is written straight into the staging tree.
    let paths = Arc::new(TempPaths { out: out.clone(), staging: staging.clone(), transfer: opts.transfer, tag });
    let large = |(i, it): (usize, ItemRef)| matches!(it.placed, Placed::Chunks { .. }).then_some(i);
    let mut temps =
        Temps(items.iter().enumerate().filter_map(large).map(|i| paths.part(i)).collect(), Some(staging.clone()));
    // Each file's identity once made; (0, 0), no file's, until then (one
    // vector of 16 bytes a file: a million files are held).
    let mut ids: Vec<FileId> = vec![NO_FILE; items.len()];
    let journaled = done.len();
    let pieces = pieces(&items, m.chunks.len());
    for (i, it) in items.iter().enumerate() {
        let t = &paths.of(i, it);
        if let Placed::Packed { chunk, .. } = it.placed {
            // Written whole when its pack arrived; still there, and ours?
            if done.contains(&chunk) {
                match still_ours(t, it.size, mine) {
                    Some(id) => ids[i] = id,
                    None => drop(done.remove(&chunk)),
                }
            }
            continue;
        }
        let Placed::Chunks { first, count, .. } = it.placed else { continue };
        match std::fs::symlink_metadata(t) {
            // Never written through: plaintext must not follow a planted link.
            Ok(m) if !m.is_file() => {
                return Err(ClientError::Usage(format!(
                    "{} is not a regular file; remove it and fetch again",
                    t.display()
                )))
            }
            Ok(m) if m.len() == it.size => {}
            // Gone (the output folder deleted, say) or of another length
            // since the interrupted fetch: it does not hold what the
            // journal says, so its chunks are fetched again.
            _ => done.retain(|k| !(first..first + count).contains(k)),
        }
        let made =
            std::fs::OpenOptions::new().create_new(true).write(true).mode(0o600).custom_flags(libc::O_NOFOLLOW).open(t);
        let f = match made {
            // Made here: ours alone.
            Ok(f) => f,
            // Left by an interrupted fetch: trusted only while it is still
            // ours alone. A file someone else owns, or that is linked under
            // another name too, can be read or changed behind our back.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(t)
                    .map_err(ClientError::io(format!("opening {}", t.display())))?;
                let m = f.metadata().map_err(ClientError::io(format!("reading {}", t.display())))?;
                if m.uid() != mine || m.nlink() != 1 {
                    // What earlier items fetched stays for a later run.
                    temps.keep();
                    return Err(ClientError::Usage(format!(
                        "{} is not this user's alone (another owner, or linked elsewhere); remove it and fetch again",
                        t.display()
                    )));
                }
                if m.mode() & 0o077 != 0 {
                    // Left by a version that made temp files readable by others.
                    f.set_permissions(std::fs::Permissions::from_mode(0o600))
                        .map_err(ClientError::io(format!("restricting {}", t.display())))?;
                }
                f
            }
            Err(e) => return Err(ClientError::io(format!("creating {}", t.display()))(e)),
        };
        let meta = f.metadata().map_err(ClientError::io(format!("reading {}", t.display())))?;
        ids[i] = file_id(&meta);
        f.set_len(it.size).map_err(ClientError::io("allocating temp file"))?;
    }
    // The journal keeps only what is still on disk, so that a retry after
    // this attempt does not trust the dropped chunks again.
    if done.len() != journaled {
        write_fetch_journal(&jpath, &header(tag), &done)?;
    }
    let journal = Arc::new(std::sync::Mutex::new(
        std::fs::OpenOptions::new()
            .append(true)
            .open(&jpath)
            .map_err(ClientError::io(format!("opening {}", jpath.display())))?,
    ));
    // The large files' temp files, made above.
    let files: Arc<std::collections::HashMap<usize, FileId>> =
        Arc::new(items.iter().enumerate().filter_map(large).map(|i| (i, ids[i])).collect());
    let vm = Arc::new(vm);
    let identity = Arc::new(p.age.clone());

    let total: u64 = items.iter().map(|d| d.size).sum();
    let progress = Progress::new(opts.progress, total, "fetching").with_files(items.len() as u64);
    // A large file counts as done when the last of its chunks still to
    // come is written; files a continued fetch already has, at once.
    let mut left: std::collections::HashMap<usize, usize> = items
        .iter()
        .enumerate()
        .filter_map(|(i, it)| match it.placed {
            Placed::Chunks { first, count, .. } => {
                Some((i, (first..first + count).filter(|k| !done.contains(k)).count()))
            }
            Placed::Packed { chunk, .. } => done.contains(&chunk).then_some((i, 0)),
        })
        .collect();
    left.retain(|_, n| {
        *n > 0 || {
            progress.files_done(1);
            false
        }
    });
    let jobs: Vec<(usize, Piece)> = pieces
        .into_iter()
        .enumerate()
        .filter(|(k, _)| !done.contains(k))
        .filter_map(|(k, piece)| piece.map(|p| (k, p)))
        .collect();
    let transfer = opts.transfer;
    // Each chunk's BLAKE3 subtree hash is taken as it is decrypted, so the
    // large files' whole hashes need no second read. A continued fetch, or
    // a chunk length the tree cannot be split at, reads the files again.
    // A small file is hashed whole where its pack is opened.
    let by_tree = done.is_empty()
        && items.iter().all(|d| match d.placed {
            Placed::Chunks { chunk_len, .. } => treehash::supported(chunk_len),
            Placed::Packed { .. } => true,
        });
    // Ciphertext and plaintext of the chunks in flight, reused.
    let buffers = Arc::new(Pool::new(crate::send::POOL_BYTES));
    let mut downloads = futures_util::stream::iter(jobs)
        .map(|(k, piece)| {
            let (conn, vm, files, identity, items, paths) =
                (conn.clone(), vm.clone(), files.clone(), identity.clone(), items.clone(), paths.clone());
            let (journal, fetched, buffers) = (journal.clone(), fetched.clone(), buffers.clone());
            async move {
                let c = vm.manifest().chunks[k];
                let cipher = conn.get_chunk(transfer, c.id, c.len as usize, &buffers).await?;
                tokio::task::spawn_blocking(move || {
                    let (hash, made, n, part_of) = match piece {
                        Piece::Part { item, index, offset, plain_len, chunk_len } => {
                            let mut buf = buffers.take(plain_len as usize);
                            let plain = &mut buf[..plain_len as usize];
                            let size = items.get(item).size;
                            let tree =
                                by_tree.then_some(treehash::Place { index: index as u64, chunk_len, total: size });
                            let hash = seal::open_chunk_into(&vm, k, &cipher, &identity, plain, tree)?;
                            let id = *files
                                .get(&item)
                                .ok_or_else(|| ClientError::Stream(format!("item {item}: no temp file")))?;
                            write_at(&paths.part(item), id, plain, offset, chunk_len)
                                .map_err(temp_error("writing temp file"))?;
                            buffers.give(buf);
                            (hash.map(|h| (item, index, h)), vec![], u64::from(plain_len), Some(item))
                        }
                        Piece::Pack { items: range, plain_len } => {
                            let mut buf = buffers.take(plain_len as usize);
                            let plain = &mut buf[..plain_len as usize];
                            seal::open_chunk_into(&vm, k, &cipher, &identity, plain, None)?;
                            let mut made = vec![];
                            let mut at = 0usize;
                            for i in range {
                                let it = items.get(i);
                                let bytes = &plain[at..at + it.size as usize];
                                at += it.size as usize;
                                if blake3::hash(bytes).as_bytes() != &it.blake3 {
                                    return Err(ClientError::Verify(format!(
                                        "{}: BLAKE3 differs from the sender's",
                                        it.path.as_str()
                                    )));
                                }
                                let id = write_small(&paths.of(i, it), bytes)
                                    .map_err(ClientError::io("writing temp file"))?;
                                made.push((i, id));
                            }
                            buffers.give(buf);
                            (None, made, plain_len, None)
                        }
                    };
                    buffers.give(cipher);
                    let line = journal_line(&k)?;
                    let mut j = journal.lock().map_err(|_| ClientError::Stream("journal lock".into()))?;
                    std::io::Write::write_all(&mut *j, &line).map_err(ClientError::io("writing fetch journal"))?;
                    // Counted where it is written: a chunk finished after
                    // its attempt was abandoned still counts, once.
                    fetched.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    Ok::<_, ClientError>((hash, made, n, part_of))
                })
                .await
                .map_err(|e| ClientError::Stream(format!("decrypt worker: {e}")))?
            }
        })
        .buffer_unordered(IN_FLIGHT);
    let mut hashes: std::collections::HashMap<usize, Vec<[u8; 32]>> = Default::default();
    while let Some(r) = downloads.next().await {
        match r {
            Ok((hash, made, n, part_of)) => {
                if let Some((item, index, h)) = hash {
                    let Placed::Chunks { count, .. } = items.get(item).placed else { continue };
                    hashes.entry(item).or_insert_with(|| vec![[0u8; 32]; count])[index] = h;
                }
                progress.files_done(made.len() as u64);
                for (i, id) in made {
                    ids[i] = id;
                }
                if let Some(rest) = part_of.and_then(|item| left.get_mut(&item)) {
                    *rest -= 1;
                    if *rest == 0 {
                        progress.files_done(1);
                    }
                }
                progress.inc(n)
            }
            Err(ClientError::Proto(e)) => {
                // Tampered or wrong: nothing of it is kept.
                let _ = std::fs::remove_file(&jpath);
                return Err(ClientError::refused(e));
            }
            Err(e @ ClientError::Verify(_)) => {
                // A temp file swapped for another, or a small file whose
                // hash differs: nothing of it is kept.
                let _ = std::fs::remove_file(&jpath);
                return Err(e);
            }
            Err(e) => {
                // Interrupted: keep what arrived for `exhibit resume`.
                temps.keep();
                if matches!(e, ClientError::Stream(_) | ClientError::Connect { .. }) {
                    return Err(e);
                }
                return Err(ClientError::Interrupted(format!(
                    "{e}; what arrived is kept: run `exhibit resume` or fetch again to continue"
                )));
            }
        }
    }
    drop(downloads);
    progress.finish();
    tracing::debug!(ms = started.elapsed().as_millis() as u64, "chunks fetched and written");

    // Whole-item hashes of the large files: from the chunks' subtree
    // hashes, or by reading the files again; either way after everything
    // written is on disk (one syncfs for all files).
    if ids.contains(&NO_FILE) {
        return Err(ClientError::Stream("an item was not written".into()));
    }
    let ids = Arc::new(ids);
    let temp_ids = ids.clone();
    let (check_items, check_paths) = (items.clone(), paths.clone());
    let synced = out.clone();
    tokio::task::spawn_blocking(move || {
        sync_filesystem(&synced)?;
        for (i, it) in check_items.iter().enumerate() {
            let Placed::Chunks { chunk_len, .. } = it.placed else { continue };
            let t = &check_paths.part(i);
            let f = File::open(t).map_err(ClientError::io("reopening temp file"))?;
            check_temp(&f, t, temp_ids[i]).map_err(temp_error("reopening temp file"))?;
            let got = match by_tree {
                true if it.size > 0 => hashes.get(&i).and_then(|h| treehash::file_hash(h, chunk_len, it.size)),
                _ => {
                    let mut h = blake3::Hasher::new();
                    h.update_reader(&f).map_err(ClientError::io("hashing temp file"))?;
                    Some(*h.finalize().as_bytes())
                }
            };
            if got.as_ref() != Some(&it.blake3) {
                return Err(ClientError::Verify(format!(
                    "{}: whole-file BLAKE3 differs from the sender's",
                    it.path.as_str()
                )));
            }
        }
        Ok(())
    })
    .await
    .map_err(|e| ClientError::Stream(format!("hash worker: {e}")))?
    .inspect_err(|_| {
        let _ = std::fs::remove_file(&jpath);
    })?;

    // Every destination is checked before anything is moved, so a clash
    // leaves nothing half-delivered.
    for it in items.iter() {
        let dest = dest_of(&out, it.path);
        if std::fs::symlink_metadata(&dest).is_ok() {
            return Err(ClientError::Usage(format!("{} appeared while fetching; not overwritten", dest.display())));
        }
    }
    let moved = {
        let (items, paths, jpath) = (items.clone(), paths.clone(), jpath.clone());
        tokio::task::spawn_blocking(move || move_into_place(&paths, staging_id, &items, &ids, &jpath))
            .await
            .map_err(|e| ClientError::Stream(format!("move worker: {e}")))?
    };
    moved?;
    // What is left of the staging folder is empty folders.
    let _ = std::fs::remove_dir_all(&staging);
    tracing::debug!(ms = started.elapsed().as_millis() as u64, "synced, checked and moved into place");
    temps.keep();
    // The renames, durable before the receipt says the files arrived.
    sync_filesystem(&out)?;
    tracing::debug!(ms = started.elapsed().as_millis() as u64, "moves synced");
    let _ = std::fs::remove_file(&jpath);

    let items_file = crate::receipt::keep_items(home, transfer, &items)?;
    let receipt = if is_recipient {
        let mut root = exhibit_proto::merkle::Root::new();
        items.hashes().iter().for_each(|h| root.push(h));
        let r = Receipt::new(transfer, vm.hash(), p.me.user.clone(), now(), &root);
        let signed = r.sign(&p.signing);
        match conn.request(&Request::SubmitReceipt { receipt: signed.clone() }).await? {
            Response::ReceiptAccepted { receipt } => {
                receipt.verify_acceptance(&p.authority)?;
                if receipt.receipt != signed {
                    // An earlier receipt of ours was already on record: it
                    // must be ours, for this transfer and these files.
                    let earlier = receipt.receipt.verify(&p.me)?;
                    if earlier.transfer != transfer
                        || earlier.manifest_hash != vm.hash()
                        || earlier.check_items(items.hashes()).is_err()
                    {
                        return Err(ClientError::Verify(
                            "the server answered with a receipt for something else".into(),
                        ));
                    }
                }
                Some(receipt)
            }
            r => return Err(unexpected(&r)),
        }
    } else {
        None
    };
    conn.close();
    let listed = match items.len() <= LIST_UP_TO {
        true => items
            .iter()
            .map(|it| FetchedItem {
                path: it.path.as_str().to_owned(),
                written_to: dest_of(&out, it.path),
                size: it.size,
                blake3: hex::encode(it.blake3),
            })
            .collect(),
        false => vec![],
    };
    Ok(FetchOutcome {
        // Filled in by `fetch`, which counts across reconnections.
        chunks_fetched: 0,
        transfer,
        sender: sender.user.to_string(),
        sender_fingerprint: sender.fingerprint(),
        case_ref: vm.manifest().case_ref.clone(),
        note: opened.head.note.clone(),
        item_count: items.len(),
        bytes: total,
        items: listed,
        items_file,
        receipt,
    })
}

/// Move every verified file into place. Large files' temp files join the
/// small files in the staging tree; then each top-level name that is not in
/// `out` yet moves there whole (one rename for a folder of any size), and
/// the rest file by file into the folders already there (made on the way,
/// never through a link). A rename never replaces what is there, and every
/// file is checked to be the one this fetch wrote before and after.
/// Returns where each landed.
fn move_into_place(
    paths: &TempPaths,
    staging_id: FileId,
    items: &Items,
    ids: &[FileId],
    jpath: &Path,
) -> Result<(), ClientError> {
    let (out, staging) = (&paths.out, &paths.staging);
    let is = |path: &Path, id: FileId| std::fs::symlink_metadata(path).map(|m| file_id(&m)).ok() == Some(id);
    for (i, it) in items.iter().enumerate() {
        if let Placed::Chunks { .. } = it.placed {
            let part = paths.part(i);
            if !is(&part, ids[i]) {
                return Err(ClientError::Verify(Replaced(part).to_string()));
            }
            let to = dest_of(staging, it.path);
            if let Some(d) = to.parent() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(d)
                    .map_err(ClientError::io(format!("creating {}", d.display())))?;
            }
            rename_new(&part, &to)?;
        }
    }
    if !is(staging, staging_id) {
        return Err(ClientError::Verify(Replaced(staging.clone()).to_string()));
    }
    let mut made = std::collections::HashSet::new();
    let mut i = 0;
    while i < items.len() {
        // Items are in component order: a top-level name's are together.
        let top = items.get(i).path.components().next().unwrap_or_default().to_owned();
        let end =
            i + (i..items.len()).take_while(|&j| items.get(j).path.components().next() == Some(top.as_str())).count();
        let whole = match std::fs::symlink_metadata(out.join(&top)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                rename_new(&staging.join(&top), &out.join(&top)).is_ok()
            }
            _ => false,
        };
        if !whole {
            for it in (i..end).map(|j| items.get(j)) {
                let dest = safe_parent(out, it.path, &mut made).inspect_err(|_| {
                    // Not worth resuming: the destination itself is unsafe.
                    let _ = std::fs::remove_file(jpath);
                })?;
                rename_new(&dest_of(staging, it.path), &dest)?;
            }
        }
        i = end;
    }
    // Checked where they landed: a swap on the way is caught before
    // anything is receipted.
    for (it, id) in items.iter().zip(ids) {
        let dest = dest_of(out, it.path);
        if !is(&dest, *id) {
            return Err(ClientError::Verify(format!("{} was replaced as it was moved into place", dest.display())));
        }
    }
    Ok(())
}

/// Rename `from` to `to`, never over anything at `to` (checked by the
/// rename itself where the filesystem can, so nothing slips in between).
fn rename_new(from: &Path, to: &Path) -> Result<(), ClientError> {
    use rustix::{fs, io::Errno};
    let moved = match fs::renameat_with(fs::CWD, from, fs::CWD, to, fs::RenameFlags::NOREPLACE) {
        // A filesystem without it (some network shares): check, then move.
        Err(Errno::INVAL | Errno::NOSYS) => match std::fs::symlink_metadata(to) {
            Ok(_) => Err(Errno::EXIST),
            Err(_) => std::fs::rename(from, to).map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::IO)),
        },
        r => r,
    };
    match moved {
        Ok(()) => Ok(()),
        Err(Errno::EXIST) => {
            Err(ClientError::Usage(format!("{} appeared while fetching; not overwritten", to.display())))
        }
        Err(e) => Err(ClientError::io(format!("moving into {}", to.display()))(e.into())),
    }
}
