//! Chunk storage: ciphertext chunks by id.
//!
//! The store is behind a small trait so an object store can replace the
//! local disk. Every implementation must make a chunk durable before `put`
//! returns, and must never expose a partly written chunk under its id.

use std::io::Write;
use std::path::{Path, PathBuf};

use exhibit_proto::ChunkId;

use crate::error::ServerError;
use crate::fsutil::sync_dir;

/// Where chunks live. Methods block; call them from a blocking task.
pub trait ChunkStore: Send + Sync + std::fmt::Debug + 'static {
    /// Store `bytes` under `id` durably. The caller has checked the hash.
    fn put(&self, id: &ChunkId, bytes: &[u8]) -> Result<(), ServerError>;
    /// Read a chunk.
    fn get(&self, id: &ChunkId) -> Result<Vec<u8>, ServerError>;
    /// Whether a chunk is present.
    fn has(&self, id: &ChunkId) -> Result<bool, ServerError>;
    /// Delete a chunk (no error if absent).
    fn delete(&self, id: &ChunkId) -> Result<(), ServerError>;
    /// Every stored chunk id.
    fn list(&self) -> Result<Vec<ChunkId>, ServerError>;
}

/// Chunks as files: `chunks/ab/cd/<id>`, written to a temp file, fsynced,
/// renamed, and the directory fsynced.
#[derive(Debug)]
pub struct DiskChunks {
    root: PathBuf,
}

impl DiskChunks {
    /// Open (creating) the chunk directory.
    pub fn open(root: &Path) -> Result<Self, ServerError> {
        std::fs::create_dir_all(root.join("tmp")).map_err(ServerError::io(format!("creating {}", root.display())))?;
        Ok(DiskChunks { root: root.to_owned() })
    }

    /// The file a chunk lives in.
    pub fn path_of(&self, id: &ChunkId) -> PathBuf {
        let hex = id.to_string();
        self.root.join(&hex[..2]).join(&hex[2..4]).join(hex)
    }

    /// Remove temp files left by a crash.
    pub fn clean_tmp(&self) -> Result<usize, ServerError> {
        let dir = self.root.join("tmp");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).map_err(ServerError::io("listing chunk temp dir"))? {
            let e = e.map_err(ServerError::io("listing chunk temp dir"))?;
            std::fs::remove_file(e.path()).map_err(ServerError::io("removing stale temp chunk"))?;
            n += 1;
        }
        Ok(n)
    }
}

impl ChunkStore for DiskChunks {
    fn put(&self, id: &ChunkId, bytes: &[u8]) -> Result<(), ServerError> {
        let dest = self.path_of(id);
        if dest.exists() {
            return Ok(());
        }
        let parent = dest.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(parent).map_err(ServerError::io("creating chunk dir"))?;
        let tmp = self.root.join("tmp").join(format!("{id}.{}", rand::random::<u64>()));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create_new(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()
        };
        if let Err(e) = write() {
            let _ = std::fs::remove_file(&tmp);
            return Err(ServerError::Io { context: "writing chunk".into(), source: e });
        }
        std::fs::rename(&tmp, &dest).map_err(ServerError::io("renaming chunk into place"))?;
        sync_dir(parent)
    }

    fn get(&self, id: &ChunkId) -> Result<Vec<u8>, ServerError> {
        std::fs::read(self.path_of(id)).map_err(ServerError::io(format!("reading chunk {id}")))
    }

    fn has(&self, id: &ChunkId) -> Result<bool, ServerError> {
        Ok(self.path_of(id).exists())
    }

    fn delete(&self, id: &ChunkId) -> Result<(), ServerError> {
        match std::fs::remove_file(self.path_of(id)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(ServerError::Io { context: format!("deleting chunk {id}"), source: e })
            }
            _ => Ok(()),
        }
    }

    fn list(&self) -> Result<Vec<ChunkId>, ServerError> {
        let mut out = vec![];
        let rd = |p: &Path| std::fs::read_dir(p).map_err(ServerError::io(format!("listing {}", p.display())));
        for a in rd(&self.root)? {
            let a = a.map_err(ServerError::io("listing chunks"))?.path();
            if !a.is_dir() || a.file_name().is_some_and(|n| n == "tmp") {
                continue;
            }
            for b in rd(&a)? {
                for c in rd(&b.map_err(ServerError::io("listing chunks"))?.path())? {
                    let name = c.map_err(ServerError::io("listing chunks"))?.file_name();
                    if let Some(id) = name.to_str().and_then(|s| s.parse::<ChunkId>().ok()) {
                        out.push(id);
                    }
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_delete_list() {
        let dir = tempfile::tempdir().unwrap();
        let s = DiskChunks::open(dir.path()).unwrap();
        let id = ChunkId::of(b"abc");
        assert!(!s.has(&id).unwrap());
        s.put(&id, b"abc").unwrap();
        s.put(&id, b"abc").unwrap();
        assert_eq!(s.get(&id).unwrap(), b"abc");
        assert_eq!(s.list().unwrap(), vec![id]);
        s.delete(&id).unwrap();
        s.delete(&id).unwrap();
        assert!(s.get(&id).is_err());
        assert_eq!(s.clean_tmp().unwrap(), 0);
    }
}
