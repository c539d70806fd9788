//! The local journal of an unfinished send: an append-only file per
//! transfer in `$EXHIBIT_HOME/journal/`, so `exhibit resume` can continue
//! after a crash or a dropped connection, re-sending only chunks the server
//! lacks and re-reading only what it must.
//!
//! Line 1 is the header; each later line records one uploaded chunk or one
//! item's finished whole-file hash. A torn last line (a crash mid-write) is
//! ignored.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use exhibit_proto::manifest::ChunkRef;
use exhibit_proto::{ChunkId, TransferId, UserId};
use serde::{Deserialize, Serialize};

use crate::error::ClientError;
use crate::home::Home;
use crate::labels::LabelPlan;

use super::dir;

/// One file of the send, as it was when the send started.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JournalItem {
    /// The folder it is read from, as an index into [`Header::roots`].
    pub root: u32,
    /// Relative path sent (and read, below its root folder).
    pub rel: String,
    /// Size.
    pub size: u64,
    /// Modification time (seconds), to notice a changed file.
    pub mtime: i64,
}

impl JournalItem {
    /// Where it is read from.
    pub fn path(&self, roots: &[PathBuf]) -> PathBuf {
        roots.get(self.root as usize).map_or_else(PathBuf::new, |r| r.join(&self.rel))
    }
}

/// What the send was.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Header {
    /// Transfer id.
    pub transfer: TransferId,
    /// Recipients.
    pub to: Vec<UserId>,
    /// Case reference.
    pub case_ref: Option<String>,
    /// Note.
    pub note: Option<String>,
    /// Acknowledge-within.
    pub ack_within_secs: Option<u64>,
    /// Chunk size.
    pub chunk_size: u32,
    /// Encrypted to the sender too.
    pub include_self: bool,
    /// The folders the items are read from: each named path's parent
    /// (a path is held once per folder named, not once per file).
    pub roots: Vec<PathBuf>,
    /// Items, in the order sent (component order of `rel`).
    pub items: Vec<JournalItem>,
    /// Journal format: 2 keys chunks by their place among the transfer's
    /// content chunks (small files packed); 0, an earlier exhibit's
    /// journal, keyed them by file.
    #[serde(default)]
    pub version: u16,
    /// Each item's labels.
    #[serde(default)]
    pub labels: LabelPlan,
    /// Disclosure approvers it is also sealed to (external recipients).
    #[serde(default)]
    pub approvers: Vec<UserId>,
    /// Recipients' access ends this long after release.
    #[serde(default)]
    pub expires_secs: Option<u64>,
    /// What it forwards, of a transfer the sender received.
    #[serde(default)]
    pub derived_from: Option<exhibit_proto::manifest::DerivedFrom>,
}

/// The journal format this build writes.
pub const JOURNAL_VERSION: u16 = 2;

#[derive(Serialize, Deserialize)]
enum Line {
    Chunk {
        /// Its place among the transfer's content chunks.
        chunk: usize,
        id: ChunkId,
        len: u32,
        /// The chunk's plaintext treehash, where the file's hash is
        /// assembled from its chunks': a resume then need not read it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        plain: Option<[u8; 32]>,
    },
    Hash {
        item: usize,
        blake3: [u8; 32],
    },
}

/// A journal being written.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: std::fs::File,
}

/// A journal read back.
#[derive(Debug)]
pub struct Recovered {
    /// The header.
    pub header: Header,
    /// Content chunks uploaded: place → chunk.
    pub chunks: HashMap<usize, ChunkRef>,
    /// Finished item hashes.
    pub hashes: HashMap<usize, [u8; 32]>,
    /// Plaintext treehashes of uploaded chunks of large files: place → hash.
    pub plain: HashMap<usize, [u8; 32]>,
    /// The file.
    pub path: PathBuf,
}

impl Journal {
    /// Start a journal for a new send.
    pub fn create(home: &Home, header: &Header) -> Result<Journal, ClientError> {
        let d = dir(home);
        crate::home::private_dir(&d)?;
        let path = d.join(format!("{}.send", header.transfer));
        let mut file = crate::home::append_private(&path, true)?;
        // Written as it is encoded: a million files' header is never one
        // buffer in memory.
        let mut w = std::io::BufWriter::new(&mut file);
        serde_json::to_writer(&mut w, header).map_err(|e| ClientError::Config(e.to_string()))?;
        w.write_all(b"\n").map_err(ClientError::io("writing journal"))?;
        w.flush().map_err(ClientError::io("writing journal"))?;
        drop(w);
        file.sync_all().map_err(ClientError::io("writing journal"))?;
        Ok(Journal { path, file })
    }

    /// Reopen a recovered journal to append to it.
    pub fn reopen(r: &Recovered) -> Result<Journal, ClientError> {
        let file = crate::home::append_private(&r.path, false)?;
        Ok(Journal { path: r.path.clone(), file })
    }

    fn append(&mut self, l: &Line) -> Result<(), ClientError> {
        let mut line = serde_json::to_vec(l).map_err(|e| ClientError::Config(e.to_string()))?;
        line.push(b'\n');
        // No fsync per line: a line lost to a power cut only means that
        // chunk is sent again (resume also asks the server what it holds).
        self.file.write_all(&line).map_err(ClientError::io("writing journal"))
    }

    /// Where the journal is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Record an uploaded chunk (after the server said it is stored), with
    /// its plaintext's treehash if it was taken.
    pub fn chunk(&mut self, chunk: usize, c: ChunkRef, plain: Option<[u8; 32]>) -> Result<(), ClientError> {
        self.append(&Line::Chunk { chunk, id: c.id, len: c.len, plain })
    }

    /// Record an item's whole-file hash.
    pub fn hash(&mut self, item: usize, blake3: [u8; 32]) -> Result<(), ClientError> {
        self.append(&Line::Hash { item, blake3 })
    }

    /// The send is sealed: forget it.
    pub fn finish(self) -> Result<(), ClientError> {
        std::fs::remove_file(&self.path).map_err(ClientError::io(format!("removing {}", self.path.display())))
    }
}

/// Every unfinished send's journal.
pub fn pending(home: &Home) -> Result<Vec<PathBuf>, ClientError> {
    let d = dir(home);
    let rd = match std::fs::read_dir(&d) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(ClientError::Io { context: format!("listing {}", d.display()), source: e }),
    };
    let mut out: Vec<PathBuf> =
        rd.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "send")).collect();
    out.sort();
    Ok(out)
}

/// Read a journal back.
pub fn recover(path: &Path) -> Result<Recovered, ClientError> {
    let text = std::fs::read_to_string(path).map_err(ClientError::io(format!("reading {}", path.display())))?;
    let mut lines = text.split_inclusive('\n');
    let bad = |why: &str| ClientError::Config(format!("{}: {why}", path.display()));
    let header: Header = lines
        .next()
        .filter(|l| l.ends_with('\n'))
        .and_then(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| bad("no readable header"))?;
    if header.version != JOURNAL_VERSION {
        return Err(bad("this send was started by an earlier version of exhibit; delete the file and send again"));
    }
    let mut chunks = HashMap::new();
    let mut hashes = HashMap::new();
    let mut plain = HashMap::new();
    for l in lines {
        if !l.ends_with('\n') {
            break; // torn by a crash
        }
        match serde_json::from_str::<Line>(l) {
            Ok(Line::Chunk { chunk, id, len, plain: p }) => {
                chunks.insert(chunk, ChunkRef { id, len });
                if let Some(p) = p {
                    plain.insert(chunk, p);
                }
            }
            Ok(Line::Hash { item, blake3 }) => {
                hashes.insert(item, blake3);
            }
            Err(_) => return Err(bad("unreadable line")),
        }
    }
    Ok(Recovered { header, chunks, hashes, plain, path: path.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_lines_with_and_without_a_plaintext_hash_are_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.send");
        let header = Header {
            transfer: TransferId([3; 16]),
            to: vec![UserId::new("bob").unwrap()],
            case_ref: None,
            note: None,
            ack_within_secs: None,
            chunk_size: 4096,
            include_self: true,
            roots: vec![],
            items: vec![],
            version: JOURNAL_VERSION,
            labels: Default::default(),
            approvers: vec![],
            expires_secs: None,
            derived_from: None,
        };
        let mut text = serde_json::to_string(&header).unwrap() + "\n";
        // A line without the hash is what an older exhibit wrote.
        let old = Line::Chunk { chunk: 0, id: ChunkId([1; 32]), len: 9, plain: None };
        let new = Line::Chunk { chunk: 1, id: ChunkId([2; 32]), len: 9, plain: Some([7; 32]) };
        for l in [&old, &new] {
            text += &(serde_json::to_string(l).unwrap() + "\n");
        }
        assert!(!text.contains("plain\":null"), "an absent hash is written");
        std::fs::write(&path, text).unwrap();
        let r = recover(&path).unwrap();
        assert_eq!(r.chunks.len(), 2);
        assert_eq!(r.plain, HashMap::from([(1, [7; 32])]));
        // An earlier exhibit's journal (no version) is refused, not misread.
        let old_header = serde_json::to_string(&header).unwrap().replace(",\"version\":2", "");
        std::fs::write(&path, old_header + "\n").unwrap();
        assert!(recover(&path).unwrap_err().to_string().contains("earlier version"));
    }
}
