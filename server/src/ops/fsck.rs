//! `exhibitd fsck`: chunks on disk against the metadata that refers to them.

use std::collections::HashSet;
use std::path::Path;

use exhibit_proto::ChunkId;
use serde::Serialize;

use crate::chunks::ChunkStore;
use crate::error::ServerError;
use crate::meta::MetaStore;

/// What fsck found.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// Chunks the metadata refers to.
    pub referenced: usize,
    /// Chunks on disk.
    pub stored: usize,
    /// Referenced but absent: evidence is missing.
    pub missing: Vec<String>,
    /// On disk but unreferenced (left by a crash between write and commit).
    pub orphans: Vec<String>,
    /// Present but not hashing to their id (only with `read_data`).
    pub corrupt: Vec<String>,
}

impl Report {
    /// Whether nothing is missing or corrupt.
    pub fn healthy(&self) -> bool {
        self.missing.is_empty() && self.corrupt.is_empty()
    }
}

/// Check a data directory (server stopped).
pub fn fsck(data: &Path, read_data: bool) -> Result<Report, ServerError> {
    // The data directory's config says where metadata (redb or
    // PostgreSQL) and chunks (disk or S3) live.
    let settings = crate::config::Settings::of_data_dir(data)?;
    let store = crate::meta::open_configured(&settings.config.metadata, data)?;
    let chunks = crate::chunks::open(&settings)?;
    check(store.as_ref(), chunks.as_ref(), read_data)
}

/// On start: delete chunk files no metadata refers to (written before a
/// crash, never acknowledged), and raise an alert for every referenced
/// chunk that is missing.
pub fn repair(state: &crate::state::State) -> Result<Report, ServerError> {
    let mut r = check(state.meta.as_ref(), state.chunks.as_ref(), false)?;
    // With several nodes, another may have expired a transfer (its chunks
    // dereferenced, then deleted) between the two listings above: a chunk
    // is missing only if it is still referenced and still not stored.
    if !r.missing.is_empty() {
        let now_referenced: HashSet<ChunkId> = state.meta.read()?.chunk_refs()?.into_iter().map(|(id, _)| id).collect();
        r.missing.retain(|id| {
            id.parse::<ChunkId>().is_ok_and(|c| now_referenced.contains(&c) && !state.chunks.has(&c).unwrap_or(false))
        });
    }
    // Only on the local disk, which belongs to this data directory alone. A
    // bucket may be shared by mistake (a restored copy starts with the same
    // config): there, deleting what this metadata does not know could
    // destroy another server's evidence, so orphans are only reported.
    let own_store = state.settings.config.storage.backend == crate::config::StorageBackend::Disk;
    if own_store {
        for id in &r.orphans {
            if let Ok(id) = id.parse::<ChunkId>() {
                state.delete_chunk(&id)?;
            }
        }
    }
    if !r.orphans.is_empty() {
        tracing::warn!(
            orphans = r.orphans.len(),
            removed = own_store,
            "unreferenced chunks (left by a crash, or another server's if the bucket is shared)"
        );
    }
    if !r.missing.is_empty() {
        let now = state.clock.now();
        let msg = format!(
            "STORAGE: {} referenced chunks are missing (first {}); evidence cannot be fetched until restored from backup",
            r.missing.len(),
            r.missing[0]
        );
        tracing::error!("{msg}");
        crate::app::alerts::storage_alert(state, &msg, &format!("missing:{}", r.missing[0]), now)?;
    }
    Ok(r)
}

/// Check a running server's store.
pub fn fsck_state(state: &crate::state::State, read_data: bool) -> Result<Report, ServerError> {
    check(state.meta.as_ref(), state.chunks.as_ref(), read_data)
}

fn check(store: &dyn MetaStore, chunks: &dyn ChunkStore, read_data: bool) -> Result<Report, ServerError> {
    let referenced: HashSet<ChunkId> = store.read()?.chunk_refs()?.into_iter().map(|(id, _)| id).collect();
    let stored: HashSet<ChunkId> = chunks.list()?.into_iter().collect();
    let mut r = Report { referenced: referenced.len(), stored: stored.len(), ..Report::default() };
    r.missing = referenced.difference(&stored).map(ToString::to_string).collect();
    r.orphans = stored.difference(&referenced).map(ToString::to_string).collect();
    if read_data {
        for id in referenced.intersection(&stored) {
            if ChunkId::of(&chunks.get(id)?) != *id {
                r.corrupt.push(id.to_string());
            }
        }
    }
    r.missing.sort();
    r.orphans.sort();
    r.corrupt.sort();
    Ok(r)
}
