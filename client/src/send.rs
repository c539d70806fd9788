//! `exhibit send`: read → cut → encrypt → hash → upload, a bounded pipeline
//! with several chunks in flight, then seal with a signed manifest.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use exhibit_proto::frame::{Request, Response};
use exhibit_proto::manifest::{ChunkRef, ItemDetails, ManifestItem, SealedDetails, MANIFEST_VERSION};
use exhibit_proto::{limits, seal, ChunkId, Manifest, TransferId, UserId};
use futures_util::StreamExt;
use serde::Serialize;

use crate::conn::{unexpected, Conn};
use crate::directory::{self, Pin};
use crate::error::ClientError;
use crate::home::Home;
use crate::progress::Progress;

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
    plain: Vec<u8>,
}

/// Read every item in order, chunk by chunk, hashing the whole plaintext as
/// it goes; hand chunks to the encrypt/upload stage through a bounded
/// channel. Returns each item's BLAKE3.
fn read_items(
    sources: &[Source],
    chunk: u32,
    tx: tokio::sync::mpsc::Sender<Job>,
) -> Result<Vec<[u8; 32]>, ClientError> {
    let mut sums = vec![];
    for (item, s) in sources.iter().enumerate() {
        let ctx = || format!("reading {}", s.path.display());
        let mut f = std::fs::File::open(&s.path).map_err(ClientError::io(ctx()))?;
        let mut hasher = blake3::Hasher::new();
        let mut left = s.size;
        let mut index = 0;
        while left > 0 {
            let n = left.min(u64::from(chunk)) as usize;
            let mut plain = vec![0u8; n];
            f.read_exact(&mut plain).map_err(|e| ClientError::Io {
                context: format!("{}: file changed while being sent", s.path.display()),
                source: e,
            })?;
            hasher.update(&plain);
            left -= n as u64;
            if tx.blocking_send(Job { item, index, plain }).is_err() {
                // The upload stage failed; its error is the one to report.
                return Ok(sums);
            }
            index += 1;
        }
        let mut probe = [0u8; 1];
        if f.read(&mut probe).map_err(ClientError::io(ctx()))? != 0 {
            return Err(ClientError::Usage(format!("{}: file grew while being sent", s.path.display())));
        }
        sums.push(*hasher.finalize().as_bytes());
    }
    Ok(sums)
}

/// Send files to recipients. Returns once the server has sealed the transfer.
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

    // Recipients: verified against the authority, checked against pins.
    let mut to = opts.to.clone();
    to.sort();
    to.dedup();
    let mut entries = vec![];
    let mut shown = vec![];
    for u in &to {
        let e = directory::lookup(&conn, &p, u).await?;
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
    if opts.include_self && !to.contains(&p.me.user) {
        keys.push(p.me.age_recipient.as_str());
    }
    let recipients = Arc::new(seal::parse_recipients(&keys)?);

    let transfer = TransferId::random();
    match conn.request(&Request::CreateTransfer { transfer, recipients: to.clone() }).await? {
        Response::Created => {}
        r => return Err(unexpected(&r)),
    }

    let total: u64 = sources.iter().map(|s| s.size).sum();
    let progress = Progress::new(opts.progress, total, "sending");
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Job>(2);
    let reader = {
        let sources = sources.clone();
        let chunk = opts.chunk_size;
        tokio::task::spawn_blocking(move || read_items(&sources, chunk, tx))
    };
    let jobs = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let mut uploads = jobs
        .map(|job| {
            let conn = conn.clone();
            let recipients = recipients.clone();
            async move {
                let plain_len = job.plain.len() as u64;
                let (cipher, id) = tokio::task::spawn_blocking(move || {
                    let c = seal::encrypt(&job.plain, &recipients)?;
                    let id = ChunkId::of(&c);
                    Ok::<_, ClientError>((c, id))
                })
                .await
                .map_err(|e| ClientError::Stream(format!("encrypt worker: {e}")))??;
                let len = cipher.len() as u32;
                conn.put_chunk(transfer, id, cipher).await?;
                Ok::<_, ClientError>((job.item, job.index, ChunkRef { id, len }, plain_len))
            }
        })
        .buffer_unordered(IN_FLIGHT);
    let mut chunks: Vec<Vec<Option<ChunkRef>>> = sources
        .iter()
        .map(|s| vec![None; exhibit_proto::manifest::chunk_count(s.size, opts.chunk_size) as usize])
        .collect();
    while let Some(r) = uploads.next().await {
        let (item, index, c, n) = r?;
        chunks[item][index] = Some(c);
        progress.inc(n);
    }
    drop(uploads);
    let sums = reader.await.map_err(|e| ClientError::Stream(format!("reader: {e}")))??;
    progress.finish();

    let items: Vec<ManifestItem> = chunks
        .into_iter()
        .map(|cs| cs.into_iter().collect::<Option<Vec<_>>>().map(|chunks| ManifestItem { chunks }))
        .collect::<Option<_>>()
        .ok_or_else(|| ClientError::Stream("a chunk was not uploaded".into()))?;
    let details = SealedDetails {
        items: sources
            .iter()
            .zip(&sums)
            .map(|(s, h)| ItemDetails {
                path: s.rel.clone(),
                size: s.size,
                blake3: *h,
                chunk_plain_len: opts.chunk_size,
                exhibit_ref: None,
                description: None,
            })
            .collect(),
        note: opts.note.clone(),
    };
    let manifest = Manifest {
        version: MANIFEST_VERSION,
        transfer,
        sender: p.me.user.clone(),
        recipients: to,
        created_at: now(),
        ack_within_secs: opts.ack_within_secs,
        case_ref: opts.case_ref.clone(),
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
    Ok(SendOutcome { transfer, items: sources.len(), bytes: total, recipients: shown, deadline })
}

/// Wall-clock time for fields the client states about itself.
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}
