//! The embedded metadata backend: redb, one file, one writer at a time.
//! Every write transaction commits with immediate durability (fsync)
//! before the request that caused it is answered.
//!
//! Records are postcard-encoded (`exhibit_proto::sign::encode`); keys are
//! byte strings laid out so that each listing is one range scan.

use std::path::Path;

use exhibit_proto::audit::{AuditEntry, SignedCheckpoint};

use exhibit_proto::case::CaseInfo;
use exhibit_proto::org::OrgId;
use exhibit_proto::{AcceptedReceipt, ChunkId, SignedManifest, TransferId, UserId};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::{de::DeserializeOwned, Serialize};

use crate::core::records::{
    AlertRecord, CodeRecord, DashboardLogin, OrgRecord, TransferRecord, UnitRecord, UserRecord,
};
use crate::error::ServerError;
use crate::meta::{Mailbox, MetaStore, Read, Result, Tx};

mod error;
mod migrate;
mod upgrade;
mod write;
pub use error::OpenError;
use migrate::migrate;

type Bytes = TableDefinition<'static, &'static [u8], &'static [u8]>;

/// user id → [`UserRecord`].
const USERS: Bytes = TableDefinition::new("users");
/// BLAKE3(client certificate DER) → user id.
const CERTS: Bytes = TableDefinition::new("certs");
/// BLAKE3(enrolment code) → [`CodeRecord`].
const CODES: Bytes = TableDefinition::new("codes");
/// transfer id → [`TransferRecord`].
const TRANSFERS: Bytes = TableDefinition::new("transfers");
/// transfer id → [`SignedManifest`], once sealed. Kept apart from the
/// record, which every chunk fetched rewrites.
const MANIFESTS: Bytes = TableDefinition::new("manifests");
/// transfer id ‖ chunk id → ciphertext length (u32 BE).
const TRANSFER_CHUNKS: Bytes = TableDefinition::new("transfer_chunks");
/// transfer id ‖ chunk id ‖ recipient → () : chunks a recipient fetched.
const FETCHED: Bytes = TableDefinition::new("fetched");
/// recipient ‖ 0 ‖ transfer id → ().
const INBOX: Bytes = TableDefinition::new("inbox");
/// sender ‖ 0 ‖ transfer id → ().
const OUTBOX: Bytes = TableDefinition::new("outbox");
/// approver ‖ transfer id → (): transfers sealed also to an approver.
const APPROVALS: Bytes = TableDefinition::new("approvals");
/// organisation id → OrgRecord.
const ORGS: Bytes = TableDefinition::new("orgs");
/// Case reference → CaseInfo (its roster changes as signed).
const CASES: Bytes = TableDefinition::new("cases");
/// unit id → UnitRecord.
const UNITS: Bytes = TableDefinition::new("units");
/// transfer id ‖ recipient → [`AcceptedReceipt`].
const RECEIPTS: Bytes = TableDefinition::new("receipts");
/// due time (u64 BE) ‖ transfer id → [`Due`]: the scheduler reads only
/// what is due.
const DEADLINES: Bytes = TableDefinition::new("deadlines");
/// chunk id → reference count (u64 BE).
const CHUNK_REFS: Bytes = TableDefinition::new("chunk_refs");
/// alert id (u64 BE) → [`AlertRecord`].
const ALERTS: Bytes = TableDefinition::new("alerts");
/// dedup key (transfer ‖ kind ‖ level, …) → alert id.
const ALERT_KEYS: Bytes = TableDefinition::new("alert_keys");
/// alert id ‖ notifier name → (): deliveries still to make.
const PENDING: Bytes = TableDefinition::new("pending_deliveries");
/// BLAKE3(renewed certificate) → BLAKE3(the certificate it replaces), until
/// the renewed one is first used.
const RENEWALS: Bytes = TableDefinition::new("renewals");
/// name → value: counters, usage, the schema.
const META: Bytes = TableDefinition::new("meta");
/// seq (u64 BE) → [`AuditEntry`]: the hash-chained audit log.
const AUDIT: Bytes = TableDefinition::new("audit");
/// subject ‖ 0 ‖ seq → (): entries about one transfer or user.
const AUDIT_SUBJECT: Bytes = TableDefinition::new("audit_subject");
/// seq (u64 BE) → [`SignedCheckpoint`].
const AUDIT_CHECKPOINTS: Bytes = TableDefinition::new("audit_checkpoints");
/// level (u8) ‖ index (u64 BE) → hash: the audit tree's complete
/// subtrees (level 0: leaf hashes).
const AUDIT_TREE: Bytes = TableDefinition::new("audit_tree");

/// BLAKE3(dashboard session cookie) → [`DashboardLogin`].
const DASHBOARD_SESSIONS: Bytes = TableDefinition::new("dashboard_sessions");
/// BLAKE3(one-time dashboard login code) → [`DashboardLogin`].
const DASHBOARD_LINKS: Bytes = TableDefinition::new("dashboard_links");

/// Witness public key → the latest `CosignedHead` it sent.
const WITNESS_HEADS: Bytes = TableDefinition::new("witness_heads");

/// Every table: created on open, copied by a snapshot.
const TABLES: [Bytes; 28] = [
    USERS,
    CERTS,
    CODES,
    TRANSFERS,
    MANIFESTS,
    TRANSFER_CHUNKS,
    FETCHED,
    INBOX,
    OUTBOX,
    APPROVALS,
    ORGS,
    CASES,
    UNITS,
    RECEIPTS,
    DEADLINES,
    CHUNK_REFS,
    ALERTS,
    ALERT_KEYS,
    PENDING,
    META,
    AUDIT,
    AUDIT_SUBJECT,
    AUDIT_CHECKPOINTS,
    RENEWALS,
    AUDIT_TREE,
    DASHBOARD_SESSIONS,
    DASHBOARD_LINKS,
    WITNESS_HEADS,
];

macro_rules! store_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for ServerError {
            fn from(e: $t) -> Self {
                ServerError::Store(e.to_string())
            }
        }
    )*};
}
store_errors!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

fn enc<T: Serialize>(v: &T) -> Vec<u8> {
    exhibit_proto::sign::encode(v)
}

fn dec<T: DeserializeOwned>(b: &[u8], what: &'static str) -> Result<T> {
    exhibit_proto::sign::decode(b, what).map_err(|e| ServerError::Store(format!("corrupt record: {e}")))
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn be64(v: &[u8]) -> Option<u64> {
    v.try_into().ok().map(u64::from_be_bytes)
}

/// The key of the audit tree's node (`level`, `index`).
fn tree_key(level: u8, index: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = level;
    k[1..].copy_from_slice(&index.to_be_bytes());
    k
}

fn hash32(v: &[u8], what: &str) -> Result<[u8; 32]> {
    v.try_into().map_err(|_| ServerError::Store(format!("bad {what}")))
}

/// The metadata in one redb file.
#[derive(Debug)]
pub struct RedbMeta {
    db: Database,
}

impl RedbMeta {
    /// Open or create the database and its tables, migrating an older
    /// layout in the same transaction. A file written by redb 2 is first
    /// upgraded to the file format this redb reads (see `upgrade`).
    pub fn open(path: &Path) -> std::result::Result<RedbMeta, OpenError> {
        let db = match Database::create(path) {
            Err(redb::DatabaseError::UpgradeRequired(found)) => {
                upgrade::from_redb2(path, found)?;
                Database::create(path)
            }
            other => other,
        }
        .map_err(|e| open_error(path, e))?;
        let tx = db.begin_write().map_err(ServerError::from)?;
        for t in TABLES {
            tx.open_table(t).map_err(ServerError::from)?;
        }
        migrate(&tx)?;
        tx.commit().map_err(ServerError::from)?;
        Ok(RedbMeta { db })
    }
}

/// Rows of one table, given to [`RedbMeta::create_from`].
pub type Rows = Vec<(Vec<u8>, Vec<u8>)>;

/// Takes the rows of one table, by name.
pub type Sink<'a> = dyn FnMut(&str, Rows) -> Result<()> + 'a;

impl RedbMeta {
    /// Create a store at `dest` holding the rows `fill` gives, table by
    /// table name, in one transaction: another backend whose tables hold
    /// what redb's hold (records of the current schema) copies itself
    /// into a file this way.
    pub fn create_from(dest: &Path, fill: &mut dyn FnMut(&mut Sink<'_>) -> Result<()>) -> Result<()> {
        let out = RedbMeta::open(dest)?;
        let wtx = out.db.begin_write()?;
        fill(&mut |name: &str, rows: Rows| {
            let def = TABLES
                .into_iter()
                .find(|t| redb::TableHandle::name(t) == name)
                .ok_or_else(|| ServerError::Store(format!("no table {name}")))?;
            let mut t = wtx.open_table(def)?;
            for (k, v) in rows {
                t.insert(k.as_slice(), v.as_slice())?;
            }
            Ok(())
        })?;
        wtx.commit()?;
        Ok(())
    }
}

/// What a refusal to open means for us.
fn open_error(path: &Path, e: redb::DatabaseError) -> OpenError {
    let path = path.to_owned();
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen | redb::DatabaseError::LockProtocolMismatch => {
            OpenError::InUse { path }
        }
        redb::DatabaseError::Storage(redb::StorageError::Corrupted(detail)) => match upgrade::format_of(&path) {
            Some(found) if found > upgrade::FORMAT => {
                OpenError::NewerFormat { path, found, supported: upgrade::FORMAT }
            }
            _ => OpenError::Corrupt { path, detail },
        },
        redb::DatabaseError::Storage(redb::StorageError::Io(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
            OpenError::Corrupt { path, detail: e.to_string() }
        }
        // A second upgrade request: the file changed under us.
        redb::DatabaseError::UpgradeRequired(found) => {
            OpenError::Upgrade { path, found, detail: "still in the old format after the upgrade".into() }
        }
        e => OpenError::Store(e.into()),
    }
}

impl MetaStore for RedbMeta {
    fn read(&self) -> Result<Box<dyn Read + '_>> {
        Ok(Box::new(View(self.db.begin_read()?)))
    }

    fn write(&self) -> Result<Box<dyn Tx + '_>> {
        Ok(Box::new(View(self.db.begin_write()?)))
    }

    fn snapshot_to(&self, dest: &Path) -> Result<Vec<ChunkId>> {
        let rtx = View(self.db.begin_read()?);
        let out = Database::create(dest)?;
        let wtx = out.begin_write()?;
        for t in TABLES {
            let src = rtx.0.open_table(t)?;
            let mut dst = wtx.open_table(t)?;
            for row in src.iter()? {
                let (k, v) = row?;
                dst.insert(k.value(), v.value())?;
            }
        }
        wtx.commit()?;
        Ok(rtx.chunk_refs()?.into_iter().map(|(id, _)| id).collect())
    }
}

/// Where tables come from: a read or a write transaction.
trait Source {
    type T<'a>: ReadableTable<&'static [u8], &'static [u8]>
    where
        Self: 'a;
    fn t(&self, def: Bytes) -> Result<Self::T<'_>>;
}

impl Source for redb::ReadTransaction {
    type T<'a> = redb::ReadOnlyTable<&'static [u8], &'static [u8]>;
    fn t(&self, def: Bytes) -> Result<Self::T<'_>> {
        Ok(self.open_table(def)?)
    }
}

impl Source for WriteTransaction {
    type T<'a> = redb::Table<'a, &'static [u8], &'static [u8]>;
    fn t(&self, def: Bytes) -> Result<Self::T<'_>> {
        Ok(self.open_table(def)?)
    }
}

/// A transaction seen through the trait.
struct View<S>(S);

impl<S: Source> View<S> {
    fn get<T: DeserializeOwned>(&self, table: Bytes, key: &[u8], what: &'static str) -> Result<Option<T>> {
        let t = self.0.t(table)?;
        let v = t.get(key)?;
        v.map(|v| dec(v.value(), what)).transpose()
    }

    /// Records of `table` with keys in `start..end` after `after`, at most `limit`.
    fn scan<T: DeserializeOwned>(
        &self,
        table: Bytes,
        after: Option<&[u8]>,
        limit: usize,
        what: &'static str,
    ) -> Result<Vec<T>> {
        let t = self.0.t(table)?;
        let mut out = vec![];
        let rows = match after {
            Some(a) => t.range((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded))?,
            None => t.range(..)?,
        };
        for row in rows.take(limit) {
            out.push(dec(row?.1.value(), what)?);
        }
        Ok(out)
    }

    /// Records of `records` named by the keys of an index after `prefix`.
    fn indexed<T: DeserializeOwned>(
        &self,
        index: Bytes,
        records: Bytes,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
        what: &'static str,
    ) -> Result<Vec<T>> {
        let idx = self.0.t(index)?;
        let recs = self.0.t(records)?;
        let start = match after {
            Some(a) => std::ops::Bound::Excluded(cat(&[prefix, a])),
            None => std::ops::Bound::Included(prefix.to_vec()),
        };
        let mut end = prefix.to_vec();
        // Prefixes end in 0: the next byte up bounds them.
        if let Some(last) = end.last_mut() {
            *last += 1;
        }
        let mut out = vec![];
        let range = (start.as_ref().map(Vec::as_slice), std::ops::Bound::Excluded(end.as_slice()));
        for row in idx.range(range)? {
            if out.len() >= limit {
                break;
            }
            let (k, _) = row?;
            if let Some(v) = recs.get(&k.value()[prefix.len()..])? {
                out.push(dec(v.value(), what)?);
            }
        }
        Ok(out)
    }
}

fn mailbox_table(which: Mailbox) -> Bytes {
    match which {
        Mailbox::Inbox => INBOX,
        Mailbox::Outbox => OUTBOX,
        Mailbox::Approvals => APPROVALS,
    }
}

fn usage_key(user: &UserId) -> String {
    format!("usage:{user}")
}

impl<S: Source> Read for View<S> {
    fn user(&self, id: &UserId) -> Result<Option<UserRecord>> {
        self.get(USERS, id.as_str().as_bytes(), "user")
    }

    fn cert_user(&self, cert: &[u8; 32]) -> Result<Option<UserId>> {
        let t = self.0.t(CERTS)?;
        let v = t.get(cert.as_slice())?;
        v.map(|v| {
            let s = std::str::from_utf8(v.value()).map_err(|_| ServerError::Store("bad certificate owner".into()))?;
            UserId::new(s).map_err(|e| ServerError::Store(format!("bad certificate owner: {e}")))
        })
        .transpose()
    }

    fn users(&self, after: Option<&UserId>, limit: usize) -> Result<Vec<UserRecord>> {
        self.scan(USERS, after.map(|u| u.as_str().as_bytes()), limit, "user")
    }

    fn org(&self, id: &OrgId) -> Result<Option<OrgRecord>> {
        self.get(ORGS, id.as_str().as_bytes(), "organisation")
    }

    fn orgs(&self) -> Result<Vec<OrgRecord>> {
        self.scan(ORGS, None, usize::MAX, "organisation")
    }

    fn case(&self, case: &str) -> Result<Option<CaseInfo>> {
        self.get(CASES, case.as_bytes(), "case")
    }

    fn unit(&self, id: &UserId) -> Result<Option<UnitRecord>> {
        self.get(UNITS, id.as_str().as_bytes(), "unit")
    }

    fn units(&self) -> Result<Vec<UnitRecord>> {
        self.scan(UNITS, None, usize::MAX, "unit")
    }

    fn code(&self, hash: &[u8; 32]) -> Result<Option<CodeRecord>> {
        self.get(CODES, hash, "code")
    }

    fn codes_of(&self, user: &UserId) -> Result<Vec<[u8; 32]>> {
        let t = self.0.t(CODES)?;
        let mut out = vec![];
        for row in t.iter()? {
            let (k, v) = row?;
            if dec::<CodeRecord>(v.value(), "code")?.user == *user {
                out.push(hash32(k.value(), "code key")?);
            }
        }
        Ok(out)
    }

    fn dashboard_session(&self, hash: &[u8; 32]) -> Result<Option<DashboardLogin>> {
        self.get(DASHBOARD_SESSIONS, hash, "dashboard session")
    }

    fn cosigned_heads(&self) -> Result<Vec<exhibit_proto::tlog::CosignedHead>> {
        self.scan(WITNESS_HEADS, None, usize::MAX, "cosigned head")
    }

    fn renewal(&self, new: &[u8; 32]) -> Result<Option<[u8; 32]>> {
        let t = self.0.t(RENEWALS)?;
        let v = t.get(new.as_slice())?;
        v.map(|v| hash32(v.value(), "renewal")).transpose()
    }

    fn renewals_of(&self, old: &[u8; 32]) -> Result<Vec<[u8; 32]>> {
        let t = self.0.t(RENEWALS)?;
        let mut out = vec![];
        for row in t.iter()? {
            let (k, v) = row?;
            if v.value() == old.as_slice() {
                out.push(hash32(k.value(), "renewal key")?);
            }
        }
        Ok(out)
    }

    fn transfer(&self, id: &TransferId) -> Result<Option<TransferRecord>> {
        self.get(TRANSFERS, id.as_bytes(), "transfer")
    }

    fn transfers(&self, after: Option<&TransferId>, limit: usize) -> Result<Vec<TransferRecord>> {
        self.scan(TRANSFERS, after.map(|t| t.as_bytes().as_slice()), limit, "transfer")
    }

    fn mailbox(
        &self,
        which: Mailbox,
        user: &UserId,
        after: Option<&TransferId>,
        limit: usize,
    ) -> Result<Vec<TransferRecord>> {
        let prefix = cat(&[user.as_str().as_bytes(), &[0]]);
        let after = after.map(|t| t.as_bytes().as_slice());
        self.indexed(mailbox_table(which), TRANSFERS, &prefix, after, limit, "transfer")
    }

    fn manifest(&self, id: &TransferId) -> Result<Option<SignedManifest>> {
        self.get(MANIFESTS, id.as_bytes(), "manifest")
    }

    fn manifest_len(&self, id: &TransferId) -> Result<Option<usize>> {
        let t = self.0.t(MANIFESTS)?;
        let len = t.get(id.as_bytes().as_slice())?.map(|v| v.value().len());
        Ok(len)
    }

    fn transfer_chunk(&self, transfer: &TransferId, id: &ChunkId) -> Result<Option<u32>> {
        let t = self.0.t(TRANSFER_CHUNKS)?;
        let v = t.get(cat(&[transfer.as_bytes(), id.as_bytes()]).as_slice())?;
        Ok(v.and_then(|v| v.value().try_into().ok().map(u32::from_be_bytes)))
    }

    fn transfer_chunks(&self, transfer: &TransferId) -> Result<Vec<(ChunkId, u32)>> {
        let t = self.0.t(TRANSFER_CHUNKS)?;
        let end = cat(&[transfer.as_bytes(), &[0xff; 33]]);
        let mut out = vec![];
        for row in t.range(transfer.as_bytes().as_slice()..end.as_slice())? {
            let (k, v) = row?;
            let id = ChunkId(hash32(&k.value()[16..], "chunk key")?);
            let len =
                v.value().try_into().map(u32::from_be_bytes).map_err(|_| ServerError::Store("bad length".into()))?;
            out.push((id, len));
        }
        Ok(out)
    }

    fn chunk_ref(&self, id: &ChunkId) -> Result<u64> {
        let t = self.0.t(CHUNK_REFS)?;
        let v = t.get(id.as_bytes().as_slice())?;
        Ok(v.and_then(|v| be64(v.value())).unwrap_or(0))
    }

    fn chunk_refs(&self) -> Result<Vec<(ChunkId, u64)>> {
        let t = self.0.t(CHUNK_REFS)?;
        let mut out = vec![];
        for row in t.iter()? {
            let (k, v) = row?;
            let n = be64(v.value()).ok_or_else(|| ServerError::Store("bad chunk ref".into()))?;
            out.push((ChunkId(hash32(k.value(), "chunk ref key")?), n));
        }
        Ok(out)
    }

    fn chunk_refs_from(&self, from: &ChunkId, limit: usize) -> Result<Vec<(ChunkId, u64)>> {
        let t = self.0.t(CHUNK_REFS)?;
        let mut out = vec![];
        for row in t.range(from.as_bytes().as_slice()..)?.take(limit) {
            let (k, v) = row?;
            let n = be64(v.value()).ok_or_else(|| ServerError::Store("bad chunk ref".into()))?;
            out.push((ChunkId(hash32(k.value(), "chunk ref key")?), n));
        }
        Ok(out)
    }

    fn receipt(&self, transfer: &TransferId, recipient: &UserId) -> Result<Option<AcceptedReceipt>> {
        self.get(RECEIPTS, &cat(&[transfer.as_bytes(), recipient.as_str().as_bytes()]), "receipt")
    }

    fn usage(&self, user: &UserId) -> Result<u64> {
        Ok(self.counter(&usage_key(user))?.unwrap_or(0))
    }

    fn alert(&self, id: u64) -> Result<Option<AlertRecord>> {
        self.get(ALERTS, &id.to_be_bytes(), "alert")
    }

    fn alerts(&self, before: Option<u64>, all: bool, limit: usize) -> Result<Vec<AlertRecord>> {
        let t = self.0.t(ALERTS)?;
        let end = before.unwrap_or(u64::MAX).to_be_bytes();
        let mut out = vec![];
        for row in t.range(..end.as_slice())?.rev() {
            if out.len() >= limit {
                break;
            }
            let a: AlertRecord = dec(row?.1.value(), "alert")?;
            if all || a.info.ack.is_none() {
                out.push(a);
            }
        }
        Ok(out)
    }

    fn alert_key(&self, key: &[u8]) -> Result<Option<u64>> {
        let t = self.0.t(ALERT_KEYS)?;
        let v = t.get(key)?;
        Ok(v.and_then(|v| be64(v.value())))
    }

    fn pending_deliveries(&self) -> Result<Vec<(u64, String)>> {
        let t = self.0.t(PENDING)?;
        let mut out = vec![];
        for row in t.iter()? {
            let (k, _) = row?;
            let k = k.value();
            let id = k.get(..8).and_then(be64).ok_or_else(|| ServerError::Store("bad pending key".into()))?;
            out.push((id, String::from_utf8_lossy(&k[8..]).into_owned()));
        }
        Ok(out)
    }

    fn counter(&self, name: &str) -> Result<Option<u64>> {
        let t = self.0.t(META)?;
        let v = t.get(name.as_bytes())?;
        Ok(v.and_then(|v| be64(v.value())))
    }

    fn audit_last(&self) -> Result<Option<AuditEntry>> {
        let t = self.0.t(AUDIT)?;
        let last = t.last()?;
        last.map(|(_, v)| dec(v.value(), "audit entry")).transpose()
    }

    fn audit_entry(&self, seq: u64) -> Result<Option<AuditEntry>> {
        self.get(AUDIT, &seq.to_be_bytes(), "audit entry")
    }

    fn audit_entries(&self, from: u64, limit: usize) -> Result<Vec<AuditEntry>> {
        let t = self.0.t(AUDIT)?;
        let mut out = vec![];
        for row in t.range(from.to_be_bytes().as_slice()..)?.take(limit) {
            out.push(dec(row?.1.value(), "audit entry")?);
        }
        Ok(out)
    }

    fn checkpoints(&self, lo: u64, hi: u64) -> Result<Vec<SignedCheckpoint>> {
        let t = self.0.t(AUDIT_CHECKPOINTS)?;
        let mut out = vec![];
        if lo <= hi {
            for row in t.range(lo.to_be_bytes().as_slice()..=hi.to_be_bytes().as_slice())? {
                out.push(dec(row?.1.value(), "checkpoint")?);
            }
        }
        Ok(out)
    }

    fn audit_about(&self, subject: &str, after: u64, limit: usize) -> Result<Vec<AuditEntry>> {
        let prefix = cat(&[subject.as_bytes(), &[0]]);
        self.indexed(AUDIT_SUBJECT, AUDIT, &prefix, Some(&after.to_be_bytes()), limit, "audit entry")
    }

    fn tree_node(&self, level: u8, index: u64) -> Result<Option<[u8; 32]>> {
        let t = self.0.t(AUDIT_TREE)?;
        let v = t.get(tree_key(level, index).as_slice())?;
        v.map(|v| hash32(v.value(), "audit tree node")).transpose()
    }
}

#[cfg(test)]
mod tests;
