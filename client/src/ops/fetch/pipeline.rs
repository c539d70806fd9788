//! The fetch's pipeline stages that run on blocking threads: each content
//! chunk opened and written where its items wait, as it arrives; then the
//! large files' whole hashes checked.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use exhibit_proto::aligned::{AlignedBuf, Pool};
use exhibit_proto::details::Placed;
use exhibit_proto::{seal, treehash, VerifiedManifest};

use super::staging::{check_temp, sync_filesystem, temp_error, write_at, write_small, FileId, TempPaths};
use crate::error::ClientError;
use crate::journal::fetch::journal_line;
use crate::ops::details::Items;

/// What one content chunk holds, for the fetch: a large item's chunk, or a
/// pack of small items.
#[derive(Clone, Debug)]
pub(super) enum Piece {
    /// Chunk `index` of item `item`, written at `offset` of its temp file.
    Part { item: usize, index: usize, offset: u64, plain_len: u32, chunk_len: u32 },
    /// Items `items`, each at its offset in the pack (a fetch of some
    /// items may skip others in it), `plain_len` bytes in all.
    Pack { items: std::ops::Range<usize>, plain_len: u64 },
}

/// Each content chunk's piece, from the checked items' places.
pub(super) fn pieces(items: &Items, chunks: usize) -> Vec<Option<Piece>> {
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
    // Packs of which only some items are fetched are opened whole.
    for (k, piece) in out.iter_mut().enumerate() {
        if let (Some(Piece::Pack { plain_len, .. }), Some(whole)) = (piece, items.pack_len(k)) {
            *plain_len = whole;
        }
    }
    out
}

/// What opening one chunk did: a large file's chunk hash (item, index,
/// hash) where the tree is kept, the small files written (item, identity),
/// plaintext bytes, and the large item the chunk was part of.
pub(super) type Opened = (Option<(usize, usize, [u8; 32])>, Vec<(usize, FileId)>, u64, Option<usize>);

/// Everything the chunks of one fetch are opened and written with.
pub(super) struct Opener {
    pub vm: Arc<VerifiedManifest>,
    pub identity: Arc<age::x25519::Identity>,
    pub items: Arc<Items>,
    /// The large files' temp files.
    pub files: Arc<HashMap<usize, FileId>>,
    pub paths: Arc<TempPaths>,
    /// Ciphertext and plaintext of the chunks in flight, reused.
    pub buffers: Arc<Pool>,
    /// The fetch journal, appended to as each chunk is written.
    pub journal: Arc<Mutex<File>>,
    /// Chunks written, across reconnections.
    pub fetched: Arc<AtomicUsize>,
    /// Large files' hashes are assembled from their chunks' subtrees.
    pub by_tree: bool,
}

impl Opener {
    /// Check, decrypt and write content chunk `k` (`piece` says what it
    /// holds), then journal it.
    pub fn open(&self, k: usize, piece: Piece, cipher: AlignedBuf) -> Result<Opened, ClientError> {
        let Opener { vm, identity, items, files, paths, buffers, journal, fetched, by_tree } = self;
        let (hash, made, n, part_of) = match piece {
            Piece::Part { item, index, offset, plain_len, chunk_len } => {
                let mut buf = buffers.take(plain_len as usize);
                let plain = &mut buf[..plain_len as usize];
                let size = items.get(item).size;
                let tree = by_tree.then_some(treehash::Place { index: index as u64, chunk_len, total: size });
                let hash = seal::open_chunk_into(vm, k, &cipher, identity, plain, tree)?;
                let id = *files.get(&item).ok_or_else(|| ClientError::Stream(format!("item {item}: no temp file")))?;
                write_at(&paths.part(item), id, plain, offset, chunk_len).map_err(temp_error("writing temp file"))?;
                buffers.give(buf);
                (hash.map(|h| (item, index, h)), vec![], u64::from(plain_len), Some(item))
            }
            Piece::Pack { items: range, plain_len } => {
                let mut buf = buffers.take(plain_len as usize);
                let plain = &mut buf[..plain_len as usize];
                seal::open_chunk_into(vm, k, &cipher, identity, plain, None)?;
                let mut made = vec![];
                for i in range {
                    let it = items.get(i);
                    let Placed::Packed { offset, .. } = it.placed else { continue };
                    let bytes = usize::try_from(offset)
                        .ok()
                        .and_then(|at| plain.get(at..at.checked_add(usize::try_from(it.size).ok()?)?))
                        .ok_or_else(|| ClientError::Verify(format!("{}: outside its pack", it.path.as_str())))?;
                    if blake3::hash(bytes).as_bytes() != &it.blake3 {
                        return Err(ClientError::Verify(format!(
                            "{}: BLAKE3 differs from the sender's",
                            it.path.as_str()
                        )));
                    }
                    let id = write_small(&paths.of(i, it), bytes).map_err(ClientError::io("writing temp file"))?;
                    made.push((i, id));
                }
                buffers.give(buf);
                // Progress counts the files written, not what was skipped.
                let written = made.iter().map(|&(i, _)| items.get(i).size).sum();
                (None, made, written, None)
            }
        };
        buffers.give(cipher);
        let line = journal_line(&k)?;
        let mut j = journal.lock().map_err(|_| ClientError::Stream("journal lock".into()))?;
        std::io::Write::write_all(&mut *j, &line).map_err(ClientError::io("writing fetch journal"))?;
        // Counted where it is written: a chunk finished after
        // its attempt was abandoned still counts, once.
        fetched.fetch_add(1, Ordering::Relaxed);
        Ok((hash, made, n, part_of))
    }
}

/// Check each large file's whole BLAKE3 against the sender's: from the
/// chunks' subtree `hashes` when `by_tree`, else by reading the file again;
/// either way after everything written is on disk (one syncfs for all).
pub(super) fn check_whole_files(
    out: &Path,
    items: &Items,
    paths: &TempPaths,
    ids: &[FileId],
    by_tree: bool,
    hashes: &HashMap<usize, Vec<[u8; 32]>>,
) -> Result<(), ClientError> {
    sync_filesystem(out)?;
    for (i, it) in items.iter().enumerate() {
        let Placed::Chunks { chunk_len, .. } = it.placed else { continue };
        let t = &paths.part(i);
        let f = File::open(t).map_err(ClientError::io("reopening temp file"))?;
        check_temp(&f, t, ids[i]).map_err(temp_error("reopening temp file"))?;
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
}
