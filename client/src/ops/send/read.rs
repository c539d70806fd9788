//! The reading end of a send: the files named, expanded and checked, and
//! read into chunks (small files packed) for the sealing and uploading
//! stage, hashing each file on the way.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use exhibit_proto::aligned::{AlignedBuf, Pool};
use exhibit_proto::details::{self, Place};
use exhibit_proto::{seal, treehash};

use crate::error::ClientError;
use crate::journal::send::{Journal, JournalItem};

/// A file to send, as the journal records it.
pub(super) type Source = JournalItem;

fn rel_name(p: &Path) -> Result<String, ClientError> {
    p.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .ok_or_else(|| ClientError::Usage(format!("{}: name is not valid UTF-8", p.display())))
}

/// Expand files and folders into items with relative paths. Folders keep
/// their own name as the first component. Symlinks are refused.
pub(super) fn collect(paths: &[PathBuf]) -> Result<(Vec<PathBuf>, Vec<Source>), ClientError> {
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

pub(super) struct Job {
    /// Its place among the transfer's content chunks.
    pub chunk: usize,
    /// The plaintext, where `layout` puts it.
    pub buf: AlignedBuf,
    pub layout: seal::ChunkLayout,
    /// Already on the server: only its plaintext is hashed.
    pub held: bool,
    /// A large file's chunk whose file hash is assembled from its chunks':
    /// the item, and the chunk's place in that file's BLAKE3 tree.
    pub tree: Option<(usize, treehash::Place)>,
}

/// What the reader must do.
#[derive(Clone, Debug)]
pub(super) struct ReadPlan {
    /// The folders `sources` are read from.
    pub roots: Arc<Vec<PathBuf>>,
    pub sources: Arc<Vec<Source>>,
    /// Where each item goes (small files packed).
    pub places: Arc<Vec<Place>>,
    /// How many content chunks the items make.
    pub chunks: usize,
    pub chunk: u32,
    /// Whole-file hashes a journal already has.
    pub hashes: HashMap<usize, [u8; 32]>,
    /// Content chunks already on the server, with the plaintext treehash
    /// of a large file's chunk where the journal has it.
    pub held: HashMap<usize, Option<[u8; 32]>>,
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
pub(super) fn read_items(
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

pub(super) fn mtime(p: &Path) -> Result<i64, ClientError> {
    use std::os::unix::fs::MetadataExt;
    Ok(std::fs::metadata(p).map_err(ClientError::io(format!("reading {}", p.display())))?.mtime())
}

impl ReadPlan {
    pub fn new(
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
    pub fn tree_of<'t>(
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
    pub fn files_done_at(&self) -> Vec<u64> {
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
