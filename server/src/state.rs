//! What every action needs: the metadata and chunk stores, the
//! authority, the clock, the memory budgets and the open connections.

use std::sync::Arc;

use crate::authority::Keys;
use crate::budget;
use crate::chunks::{self, ChunkStore};
use crate::clock::Clock;
use crate::config::Settings;
use crate::conns;
use crate::error::ServerError;
use crate::meta::group::GroupCommit;
use crate::meta::MetaStore;
use crate::tls;

/// Idle chunk buffers kept for reuse (a fresh buffer per chunk costs a page
/// fault per 4 KiB).
const BUFFER_POOL: usize = 64 << 20;

/// Everything a request handler needs.
#[derive(Debug)]
pub struct State {
    /// Configuration.
    pub settings: Settings,
    /// Metadata.
    pub meta: Arc<dyn MetaStore>,
    /// Per-chunk metadata writes, committed together when they arrive
    /// together.
    pub commits: GroupCommit,
    /// Chunks.
    pub chunks: Arc<dyn ChunkStore>,
    /// The authority (when online) and the log key.
    pub keys: Keys,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Wakes the notifier when an alert is raised.
    pub notify: tokio::sync::Notify,
    /// Duration of the last alert scan, microseconds.
    pub last_scan_micros: std::sync::atomic::AtomicU64,
    /// Open connections by user (revocation closes them).
    pub conns: conns::Connections,
    /// Chunk deletions, held back while a backup copies chunks.
    pub deletes: chunks::DeleteGate,
    /// The admin dashboard's URL (`https://host:port`), once it listens.
    pub dashboard_url: std::sync::OnceLock<String>,
    /// Chunk buffers, reused across uploads and downloads.
    pub buffers: Arc<chunks::Pool>,
    /// Chunk bytes in memory for downloads at once, across every
    /// connection.
    pub download_memory: budget::Budget,
    /// Chunk bytes held for uploads at once (offered chunks wait past it).
    pub upload_memory: budget::Budget,
    /// Connections without a user's certificate (they may only enrol),
    /// `[enrolment] max_connections` at once.
    pub anonymous: Arc<tokio::sync::Semaphore>,
    /// Check each chunk read for a fetch against its id (off only for the
    /// benchmark's baseline, `EXHIBITD_UNCHECKED_READS=1`, and for tests
    /// showing that the recipient's own checks still catch what the
    /// server lets through).
    pub check_reads: std::sync::atomic::AtomicBool,
    /// Those connections by source address (`max_connections_per_source`).
    pub strangers: std::sync::Mutex<crate::core::strangers::Held>,
    /// Wrong enrolment codes by source address, and recent refusals.
    pub enrol_guard: std::sync::Mutex<crate::core::strangers::Guard>,
}

impl State {
    /// Services over a metadata store, chunk store and authority.
    pub fn new(
        settings: Settings,
        meta: Arc<dyn MetaStore>,
        chunks: Arc<dyn ChunkStore>,
        keys: Keys,
        clock: Arc<dyn Clock>,
    ) -> Self {
        State {
            meta,
            // The benchmark's baseline only: one commit per chunk.
            commits: match std::env::var_os("EXHIBITD_SERIAL_COMMITS") {
                Some(v) if v == "1" => GroupCommit::serial(),
                _ => GroupCommit::default(),
            },
            chunks,
            keys,
            clock,
            notify: tokio::sync::Notify::new(),
            last_scan_micros: Default::default(),
            conns: Default::default(),
            deletes: Default::default(),
            dashboard_url: Default::default(),
            buffers: Arc::new(chunks::Pool::new(BUFFER_POOL)),
            download_memory: budget::Budget::new(settings.download_memory),
            upload_memory: budget::Budget::new(settings.upload_memory),
            anonymous: Arc::new(tokio::sync::Semaphore::new(settings.config.enrolment.max_connections)),
            strangers: Default::default(),
            enrol_guard: Default::default(),
            // The benchmark's baseline only: chunks served as read, as the
            // server did before it checked them.
            check_reads: std::env::var_os("EXHIBITD_UNCHECKED_READS").is_none_or(|v| v != "1").into(),
            settings,
        }
    }

    /// The handshake's revocation check: whether a client certificate
    /// belongs to a revoked user. A certificate the store does not know, or
    /// a store error, passes here; every request checks again.
    pub(crate) fn revoked_check(self: &Arc<Self>) -> tls::Revoked {
        let state = Arc::downgrade(self);
        Arc::new(move |cert_hash: &[u8; 32]| {
            state.upgrade().is_some_and(|s| {
                let user = s.meta.read().and_then(|r| crate::meta::user_by_cert(r.as_ref(), cert_hash));
                matches!(user, Ok(Some(u)) if u.revoked_at.is_some())
            })
        })
    }

    /// Delete a chunk no metadata refers to any more (deferred while a
    /// backup runs).
    pub fn delete_chunk(&self, id: &exhibit_proto::ChunkId) -> Result<(), ServerError> {
        self.deletes.delete(self.chunks.as_ref(), id)
    }
}

/// Run a blocking store or disk operation off the async threads.
pub async fn blocking<R, F>(state: &Arc<State>, f: F) -> Result<R, ServerError>
where
    R: Send + 'static,
    F: FnOnce(&State) -> Result<R, ServerError> + Send + 'static,
{
    let s = state.clone();
    tokio::task::spawn_blocking(move || f(&s)).await.map_err(|e| ServerError::Stream(format!("worker failed: {e}")))?
}
