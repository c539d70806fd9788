//! The metadata store: a trait that says what is kept (users, codes,
//! certificates, transfers and their chunks, receipts, the deadline index,
//! alerts, counters, the audit log) and nothing of how. Rules, permissions
//! and the wording of audit entries live in `core` and `app`; a backend
//! only stores, finds and pages. `conformance` is the suite every backend
//! passes; `redb` is the embedded default.
//!
//! A write is one transaction: everything an action changes commits
//! together, durably, before the request is answered, or nothing does
//! (dropping a [`Tx`] without [`Tx::commit`] rolls it back).

use std::path::Path;

use exhibit_proto::audit::{AuditEntry, SignedCheckpoint};
use exhibit_proto::{AcceptedReceipt, ChunkId, SignedManifest, TransferId, UserId};

use exhibit_proto::case::CaseInfo;
use exhibit_proto::org::OrgId;

use crate::core::records::{
    AlertRecord, CodeRecord, DashboardLogin, Due, OrgRecord, TransferRecord, UnitRecord, UserRecord,
};
use crate::error::ServerError;

#[doc(hidden)]
pub mod conformance;
pub mod group;
pub mod postgres;
pub mod redb;

/// The metadata file's name in a data directory (the embedded backend).
pub const META_FILE: &str = "meta.redb";

/// Open the embedded metadata store at `path`, creating or migrating it.
pub fn open(path: &Path) -> Result<std::sync::Arc<dyn MetaStore>> {
    Ok(std::sync::Arc::new(self::redb::RedbMeta::open(path)?))
}

/// Open the store the configuration names: redb in `data`, or
/// PostgreSQL.
pub fn open_configured(meta: &crate::config::MetadataConfig, data: &Path) -> Result<std::sync::Arc<dyn MetaStore>> {
    use crate::config::MetadataBackend;
    match (meta.backend, meta.url.as_deref()) {
        (MetadataBackend::Redb, _) => open(&data.join(META_FILE)),
        (MetadataBackend::Postgres, Some(url)) => Ok(std::sync::Arc::new(self::postgres::PgMeta::open(url)?)),
        (MetadataBackend::Postgres, None) => {
            Err(ServerError::Setup("config: metadata.url is required when metadata.backend = \"postgres\"".into()))
        }
    }
}

/// The user a client certificate (by BLAKE3 of its DER) was issued to.
pub fn user_by_cert(r: &dyn Read, cert: &[u8; 32]) -> Result<Option<UserRecord>> {
    match r.cert_user(cert)? {
        Some(id) => r.user(&id),
        None => Ok(None),
    }
}

/// Result of a store operation.
pub type Result<T> = std::result::Result<T, ServerError>;

/// Which per-user index of transfers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mailbox {
    /// Sealed transfers addressed to the user.
    Inbox,
    /// Transfers the user sent.
    Outbox,
    /// Transfers sealed also to the user, as a disclosure approver.
    Approvals,
}

/// What a node hears of revocations made through the store by any node
/// (see [`MetaStore::revocations`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Heard {
    /// This user's revocation committed.
    Revoked(UserId),
    /// Revocations may have gone unheard (the node was not listening):
    /// check every user it holds connections of.
    Resync,
}

/// Called with what is heard, on an async thread: it must not block.
pub type OnHeard = std::sync::Arc<dyn Fn(Heard) + Send + Sync>;

/// A task to spawn; it runs until aborted.
pub type Watcher = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// A metadata backend.
pub trait MetaStore: Send + Sync + std::fmt::Debug {
    /// A consistent view for reading.
    fn read(&self) -> Result<Box<dyn Read + '_>>;
    /// A write transaction.
    fn write(&self) -> Result<Box<dyn Tx + '_>>;
    /// Copy everything, as of one consistent view, into a new embedded
    /// store at `dest` (writers go on meanwhile). Returns the chunks that
    /// copy refers to.
    fn snapshot_to(&self, dest: &Path) -> Result<Vec<ChunkId>>;
    /// For a store several nodes share: a task that hands `on` every
    /// revocation any node commits ([`Tx::announce_revoked`]), so this node
    /// closes the user's connections too. `None` for a store one node
    /// holds (redb): the node that revokes closes them itself. Never what
    /// correctness rests on: every request re-reads the caller's record.
    fn revocations(&self, _on: OnHeard) -> Option<Watcher> {
        None
    }
}

/// Reads; every page is in key order and starts after `after`.
pub trait Read {
    /// A user.
    fn user(&self, id: &UserId) -> Result<Option<UserRecord>>;
    /// The user a client certificate (by BLAKE3 of its DER) belongs to.
    fn cert_user(&self, cert: &[u8; 32]) -> Result<Option<UserId>>;
    /// Users in id order, after `after`, at most `limit`.
    fn users(&self, after: Option<&UserId>, limit: usize) -> Result<Vec<UserRecord>>;
    /// An organisation.
    fn org(&self, id: &OrgId) -> Result<Option<OrgRecord>>;
    /// Every organisation, in id order (a deployment has tens to a few
    /// thousand).
    fn orgs(&self) -> Result<Vec<OrgRecord>>;
    /// A case, by its exact reference.
    fn case(&self, case: &str) -> Result<Option<CaseInfo>>;
    /// A unit mailbox.
    fn unit(&self, id: &UserId) -> Result<Option<UnitRecord>>;
    /// Every unit, in id order (a deployment has tens to a few thousand).
    fn units(&self) -> Result<Vec<UnitRecord>>;
    /// An enrolment code by its hash.
    fn code(&self, hash: &[u8; 32]) -> Result<Option<CodeRecord>>;
    /// Hashes of the codes issued to `user`.
    fn codes_of(&self, user: &UserId) -> Result<Vec<[u8; 32]>>;
    /// A dashboard session by BLAKE3 of its cookie, expired or not (the
    /// caller compares `expires_at` with its clock).
    fn dashboard_session(&self, hash: &[u8; 32]) -> Result<Option<DashboardLogin>>;
    /// The latest head each witness cosigned, in the order of their keys
    /// (every witness ever stored: the caller keeps the configured ones).
    fn cosigned_heads(&self) -> Result<Vec<exhibit_proto::tlog::CosignedHead>>;
    /// The certificate a renewed one (`new`) replaces, while it is unused.
    fn renewal(&self, new: &[u8; 32]) -> Result<Option<[u8; 32]>>;
    /// Every pending renewal of the certificate `old`.
    fn renewals_of(&self, old: &[u8; 32]) -> Result<Vec<[u8; 32]>>;

    /// A transfer.
    fn transfer(&self, id: &TransferId) -> Result<Option<TransferRecord>>;
    /// Transfers in id order, after `after`, at most `limit`.
    fn transfers(&self, after: Option<&TransferId>, limit: usize) -> Result<Vec<TransferRecord>>;
    /// A user's inbox or outbox, in transfer id order, after `after`.
    fn mailbox(
        &self,
        which: Mailbox,
        user: &UserId,
        after: Option<&TransferId>,
        limit: usize,
    ) -> Result<Vec<TransferRecord>>;
    /// A sealed transfer's signed manifest.
    fn manifest(&self, id: &TransferId) -> Result<Option<SignedManifest>>;
    /// How many bytes the stored manifest takes, without reading it out.
    fn manifest_len(&self, id: &TransferId) -> Result<Option<usize>>;
    /// A chunk's ciphertext length, if it belongs to the transfer.
    fn transfer_chunk(&self, transfer: &TransferId, id: &ChunkId) -> Result<Option<u32>>;
    /// The chunks stored for a transfer, in chunk id order.
    fn transfer_chunks(&self, transfer: &TransferId) -> Result<Vec<(ChunkId, u32)>>;
    /// How many transfers refer to a chunk.
    fn chunk_ref(&self, id: &ChunkId) -> Result<u64>;
    /// Every referenced chunk and its count.
    fn chunk_refs(&self) -> Result<Vec<(ChunkId, u64)>>;
    /// Referenced chunks with ids from `from` on (inclusive), in id order,
    /// at most `limit`: the scrub reads the store a page at a time.
    fn chunk_refs_from(&self, from: &ChunkId, limit: usize) -> Result<Vec<(ChunkId, u64)>> {
        let mut all: Vec<_> = self.chunk_refs()?.into_iter().filter(|(id, _)| id >= from).collect();
        all.sort();
        all.truncate(limit);
        Ok(all)
    }
    /// A recipient's accepted receipt.
    fn receipt(&self, transfer: &TransferId, recipient: &UserId) -> Result<Option<AcceptedReceipt>>;
    /// Ciphertext bytes a user has stored.
    fn usage(&self, user: &UserId) -> Result<u64>;

    /// An alert.
    fn alert(&self, id: u64) -> Result<Option<AlertRecord>>;
    /// Alerts newest first, with ids below `before`, at most `limit`
    /// (open ones only unless `all`).
    fn alerts(&self, before: Option<u64>, all: bool, limit: usize) -> Result<Vec<AlertRecord>>;
    /// The alert raised under a dedup key.
    fn alert_key(&self, key: &[u8]) -> Result<Option<u64>>;
    /// Deliveries still to make: (alert id, notifier).
    fn pending_deliveries(&self) -> Result<Vec<(u64, String)>>;
    /// A named counter.
    fn counter(&self, name: &str) -> Result<Option<u64>>;

    /// The last audit entry.
    fn audit_last(&self) -> Result<Option<AuditEntry>>;
    /// Audit entry `seq`.
    fn audit_entry(&self, seq: u64) -> Result<Option<AuditEntry>>;
    /// Audit entries from `from` (inclusive), at most `limit`.
    fn audit_entries(&self, from: u64, limit: usize) -> Result<Vec<AuditEntry>>;
    /// Stored checkpoints with `lo <= seq <= hi`.
    fn checkpoints(&self, lo: u64, hi: u64) -> Result<Vec<SignedCheckpoint>>;
    /// Entries about `subject` with seq after `after`, at most `limit`.
    fn audit_about(&self, subject: &str, after: u64, limit: usize) -> Result<Vec<AuditEntry>>;
    /// The audit tree's stored complete subtree at (`level`, `index`): the
    /// root over leaves `[index·2^level, (index+1)·2^level)`
    /// (`exhibit_proto::tlog`).
    fn tree_node(&self, level: u8, index: u64) -> Result<Option<[u8; 32]>>;
}

/// A write transaction: reads see its own writes.
pub trait Tx: Read {
    /// Store a user (new or changed).
    fn put_user(&mut self, rec: &UserRecord) -> Result<()>;
    /// Store an organisation (new or changed).
    fn put_org(&mut self, rec: &OrgRecord) -> Result<()>;
    /// Store a case (new, or its roster changed).
    fn put_case(&mut self, case: &CaseInfo) -> Result<()>;
    /// Store a unit (new or changed).
    fn put_unit(&mut self, rec: &UnitRecord) -> Result<()>;
    /// Map a certificate to its user.
    fn put_cert(&mut self, cert: &[u8; 32], user: &UserId) -> Result<()>;
    /// Forget a certificate.
    fn remove_cert(&mut self, cert: &[u8; 32]) -> Result<()>;
    /// Store an enrolment code under its hash.
    fn put_code(&mut self, hash: &[u8; 32], code: &CodeRecord) -> Result<()>;
    /// Consume a code.
    fn remove_code(&mut self, hash: &[u8; 32]) -> Result<()>;
    /// Store a dashboard session under BLAKE3 of its cookie.
    fn put_dashboard_session(&mut self, hash: &[u8; 32], login: &DashboardLogin) -> Result<()>;
    /// End a dashboard session (logout).
    fn remove_dashboard_session(&mut self, hash: &[u8; 32]) -> Result<()>;
    /// Store a one-time dashboard login link under BLAKE3 of its code.
    fn put_dashboard_link(&mut self, hash: &[u8; 32], login: &DashboardLogin) -> Result<()>;
    /// Remove a one-time link and return what it was, expired or not: of
    /// two transactions taking one link, on any nodes, only the first to
    /// commit finds it.
    fn take_dashboard_link(&mut self, hash: &[u8; 32]) -> Result<Option<DashboardLogin>>;
    /// Remove every dashboard session and link that expired at or before
    /// `now`; returns how many.
    fn sweep_dashboard(&mut self, now: u64) -> Result<usize>;
    /// Store the latest head cosigned by the witness with public key
    /// `witness`, replacing the one it cosigned before.
    fn put_cosigned_head(&mut self, witness: &[u8; 32], head: &exhibit_proto::tlog::CosignedHead) -> Result<()>;
    /// Note a renewed certificate and the one it replaces.
    fn put_renewal(&mut self, new: &[u8; 32], old: &[u8; 32]) -> Result<()>;
    /// Forget a renewal.
    fn remove_renewal(&mut self, new: &[u8; 32]) -> Result<()>;

    /// Store a new transfer; a conflict if the id is taken.
    fn insert_transfer(&mut self, rec: &TransferRecord) -> Result<()>;
    /// Store a changed transfer.
    fn put_transfer(&mut self, rec: &TransferRecord) -> Result<()>;
    /// Add a transfer to a user's inbox or outbox.
    fn add_to_mailbox(&mut self, which: Mailbox, user: &UserId, transfer: &TransferId) -> Result<()>;
    /// Store a transfer's signed manifest.
    fn put_manifest(&mut self, id: &TransferId, manifest: &SignedManifest) -> Result<()>;
    /// Note a chunk of a transfer; false if it was noted already.
    fn add_transfer_chunk(&mut self, transfer: &TransferId, id: &ChunkId, len: u32) -> Result<bool>;
    /// Drop a chunk from a transfer.
    fn remove_transfer_chunk(&mut self, transfer: &TransferId, id: &ChunkId) -> Result<()>;
    /// Change a chunk's reference count; returns the new count (0: gone).
    fn add_chunk_ref(&mut self, id: &ChunkId, delta: i64) -> Result<u64>;
    /// Note that a recipient fetched a chunk; false if they had before.
    fn mark_fetched(&mut self, transfer: &TransferId, id: &ChunkId, recipient: &UserId) -> Result<bool>;
    /// Store an accepted receipt.
    fn put_receipt(&mut self, transfer: &TransferId, recipient: &UserId, receipt: &AcceptedReceipt) -> Result<()>;
    /// Change a user's stored bytes.
    fn add_usage(&mut self, user: &UserId, delta: i64) -> Result<()>;

    /// Add an entry to the deadline index.
    fn schedule(&mut self, at: u64, transfer: &TransferId, due: Due) -> Result<()>;
    /// Take up to `limit` entries due at or before `now` off the index,
    /// earliest first.
    fn take_due(&mut self, now: u64, limit: usize) -> Result<Vec<(u64, TransferId, Due)>>;

    /// Store an alert (new or changed).
    fn put_alert(&mut self, rec: &AlertRecord) -> Result<()>;
    /// Note the alert raised under a dedup key.
    fn put_alert_key(&mut self, key: &[u8], id: u64) -> Result<()>;
    /// Note a delivery still to make.
    fn add_pending(&mut self, id: u64, notifier: &str) -> Result<()>;
    /// A delivery is made.
    fn remove_pending(&mut self, id: u64, notifier: &str) -> Result<()>;
    /// Set a named counter.
    fn set_counter(&mut self, name: &str, value: u64) -> Result<()>;

    /// Append an audit entry (its seq follows the last one's).
    fn append_audit(&mut self, entry: &AuditEntry) -> Result<()>;
    /// Store the signed checkpoint at `seq`.
    fn put_checkpoint(&mut self, seq: u64, cp: &SignedCheckpoint) -> Result<()>;
    /// Store (or replace) the audit tree's complete subtree at (`level`,
    /// `index`).
    fn put_tree_node(&mut self, level: u8, index: u64, hash: &[u8; 32]) -> Result<()>;

    /// Tell every node sharing the store that `user` is revoked, once (and
    /// only if) this transaction commits. A store one node holds has
    /// nobody to tell.
    fn announce_revoked(&mut self, _user: &UserId) -> Result<()> {
        Ok(())
    }

    /// Make every change durable, or none.
    fn commit(self: Box<Self>) -> Result<()>;
}
