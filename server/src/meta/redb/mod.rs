//! The embedded metadata backend: redb, one file, one writer at a time.
//! Every write transaction commits with immediate durability (fsync)
//! before the request that caused it is answered.
//!
//! Records are postcard-encoded (`exhibit_proto::sign::encode`); keys are
//! byte strings laid out so that each listing is one range scan.

use std::path::Path;

use exhibit_proto::audit::{AuditEntry, SignedCheckpoint};

use exhibit_proto::{AcceptedReceipt, ChunkId, SignedManifest, TransferId, UserId};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::{de::DeserializeOwned, Serialize};

use crate::core::records::{AlertRecord, CodeRecord, Due, TransferRecord, UserRecord};
use crate::error::ServerError;
use crate::meta::{Mailbox, MetaStore, Read, Result, Tx};

mod error;
mod migrate;
mod upgrade;
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

/// Every table: created on open, copied by a snapshot.
const TABLES: [Bytes; 20] = [
    USERS,
    CERTS,
    CODES,
    TRANSFERS,
    MANIFESTS,
    TRANSFER_CHUNKS,
    FETCHED,
    INBOX,
    OUTBOX,
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
}

impl Tx for View<WriteTransaction> {
    fn put_user(&mut self, rec: &UserRecord) -> Result<()> {
        self.0.t(USERS)?.insert(rec.user.as_str().as_bytes(), enc(rec).as_slice())?;
        Ok(())
    }

    fn put_cert(&mut self, cert: &[u8; 32], user: &UserId) -> Result<()> {
        self.0.t(CERTS)?.insert(cert.as_slice(), user.as_str().as_bytes())?;
        Ok(())
    }

    fn remove_cert(&mut self, cert: &[u8; 32]) -> Result<()> {
        self.0.t(CERTS)?.remove(cert.as_slice())?;
        Ok(())
    }

    fn put_code(&mut self, hash: &[u8; 32], code: &CodeRecord) -> Result<()> {
        self.0.t(CODES)?.insert(hash.as_slice(), enc(code).as_slice())?;
        Ok(())
    }

    fn remove_code(&mut self, hash: &[u8; 32]) -> Result<()> {
        self.0.t(CODES)?.remove(hash.as_slice())?;
        Ok(())
    }

    fn put_renewal(&mut self, new: &[u8; 32], old: &[u8; 32]) -> Result<()> {
        self.0.t(RENEWALS)?.insert(new.as_slice(), old.as_slice())?;
        Ok(())
    }

    fn remove_renewal(&mut self, new: &[u8; 32]) -> Result<()> {
        self.0.t(RENEWALS)?.remove(new.as_slice())?;
        Ok(())
    }

    fn insert_transfer(&mut self, rec: &TransferRecord) -> Result<()> {
        let mut t = self.0.t(TRANSFERS)?;
        if t.get(rec.transfer.as_bytes().as_slice())?.is_some() {
            return Err(ServerError::Conflict(format!("transfer {} already exists", rec.transfer)));
        }
        t.insert(rec.transfer.as_bytes().as_slice(), enc(rec).as_slice())?;
        Ok(())
    }

    fn put_transfer(&mut self, rec: &TransferRecord) -> Result<()> {
        self.0.t(TRANSFERS)?.insert(rec.transfer.as_bytes().as_slice(), enc(rec).as_slice())?;
        Ok(())
    }

    fn add_to_mailbox(&mut self, which: Mailbox, user: &UserId, transfer: &TransferId) -> Result<()> {
        let key = cat(&[user.as_str().as_bytes(), &[0], transfer.as_bytes()]);
        self.0.t(mailbox_table(which))?.insert(key.as_slice(), [].as_slice())?;
        Ok(())
    }

    fn put_manifest(&mut self, id: &TransferId, manifest: &SignedManifest) -> Result<()> {
        self.0.t(MANIFESTS)?.insert(id.as_bytes().as_slice(), enc(manifest).as_slice())?;
        Ok(())
    }

    fn add_transfer_chunk(&mut self, transfer: &TransferId, id: &ChunkId, len: u32) -> Result<bool> {
        let key = cat(&[transfer.as_bytes(), id.as_bytes()]);
        let old = self.0.t(TRANSFER_CHUNKS)?.insert(key.as_slice(), len.to_be_bytes().as_slice())?.is_some();
        Ok(!old)
    }

    fn remove_transfer_chunk(&mut self, transfer: &TransferId, id: &ChunkId) -> Result<()> {
        self.0.t(TRANSFER_CHUNKS)?.remove(cat(&[transfer.as_bytes(), id.as_bytes()]).as_slice())?;
        Ok(())
    }

    fn add_chunk_ref(&mut self, id: &ChunkId, delta: i64) -> Result<u64> {
        let mut refs = self.0.t(CHUNK_REFS)?;
        let old = refs.get(id.as_bytes().as_slice())?.and_then(|v| be64(v.value())).unwrap_or(0);
        let new = old.saturating_add_signed(delta);
        if new == 0 {
            refs.remove(id.as_bytes().as_slice())?;
        } else {
            refs.insert(id.as_bytes().as_slice(), new.to_be_bytes().as_slice())?;
        }
        Ok(new)
    }

    fn mark_fetched(&mut self, transfer: &TransferId, id: &ChunkId, recipient: &UserId) -> Result<bool> {
        let key = cat(&[transfer.as_bytes(), id.as_bytes(), recipient.as_str().as_bytes()]);
        let old = self.0.t(FETCHED)?.insert(key.as_slice(), [].as_slice())?.is_some();
        Ok(!old)
    }

    fn put_receipt(&mut self, transfer: &TransferId, recipient: &UserId, receipt: &AcceptedReceipt) -> Result<()> {
        let key = cat(&[transfer.as_bytes(), recipient.as_str().as_bytes()]);
        self.0.t(RECEIPTS)?.insert(key.as_slice(), enc(receipt).as_slice())?;
        Ok(())
    }

    fn add_usage(&mut self, user: &UserId, delta: i64) -> Result<()> {
        let key = usage_key(user);
        let new = self.counter(&key)?.unwrap_or(0).saturating_add_signed(delta);
        self.set_counter(&key, new)
    }

    fn schedule(&mut self, at: u64, transfer: &TransferId, due: Due) -> Result<()> {
        let key = cat(&[&at.to_be_bytes(), transfer.as_bytes()]);
        self.0.t(DEADLINES)?.insert(key.as_slice(), enc(&due).as_slice())?;
        Ok(())
    }

    fn take_due(&mut self, now: u64, limit: usize) -> Result<Vec<(u64, TransferId, Due)>> {
        let mut deadlines = self.0.t(DEADLINES)?;
        let end = cat(&[&now.to_be_bytes(), &[0xff; 16]]);
        let mut due = vec![];
        for row in deadlines.range(..=end.as_slice())?.take(limit) {
            let (k, v) = row?;
            due.push((k.value().to_vec(), dec::<Due>(v.value(), "deadline entry")?));
        }
        let bad = || ServerError::Store("bad deadline key".into());
        let mut out = vec![];
        for (k, d) in due {
            deadlines.remove(k.as_slice())?;
            let at = k.get(..8).and_then(be64).ok_or_else(bad)?;
            let id = TransferId(k.get(8..24).and_then(|b| b.try_into().ok()).ok_or_else(bad)?);
            out.push((at, id, d));
        }
        Ok(out)
    }

    fn put_alert(&mut self, rec: &AlertRecord) -> Result<()> {
        self.0.t(ALERTS)?.insert(rec.info.id.to_be_bytes().as_slice(), enc(rec).as_slice())?;
        Ok(())
    }

    fn put_alert_key(&mut self, key: &[u8], id: u64) -> Result<()> {
        self.0.t(ALERT_KEYS)?.insert(key, id.to_be_bytes().as_slice())?;
        Ok(())
    }

    fn add_pending(&mut self, id: u64, notifier: &str) -> Result<()> {
        self.0.t(PENDING)?.insert(cat(&[&id.to_be_bytes(), notifier.as_bytes()]).as_slice(), [].as_slice())?;
        Ok(())
    }

    fn remove_pending(&mut self, id: u64, notifier: &str) -> Result<()> {
        self.0.t(PENDING)?.remove(cat(&[&id.to_be_bytes(), notifier.as_bytes()]).as_slice())?;
        Ok(())
    }

    fn set_counter(&mut self, name: &str, value: u64) -> Result<()> {
        self.0.t(META)?.insert(name.as_bytes(), value.to_be_bytes().as_slice())?;
        Ok(())
    }

    fn append_audit(&mut self, e: &AuditEntry) -> Result<()> {
        let seq = e.body.seq;
        self.0.t(AUDIT)?.insert(seq.to_be_bytes().as_slice(), enc(e).as_slice())?;
        let key = cat(&[e.body.subject.as_bytes(), &[0], &seq.to_be_bytes()]);
        self.0.t(AUDIT_SUBJECT)?.insert(key.as_slice(), [].as_slice())?;
        Ok(())
    }

    fn put_checkpoint(&mut self, seq: u64, cp: &SignedCheckpoint) -> Result<()> {
        self.0.t(AUDIT_CHECKPOINTS)?.insert(seq.to_be_bytes().as_slice(), enc(cp).as_slice())?;
        Ok(())
    }

    fn commit(self: Box<Self>) -> Result<()> {
        self.0.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::migrate::{legacy, SCHEMA_KEY};
    use super::*;
    use crate::core::records::RecipientRecord;
    use exhibit_proto::frame::DeliveryState;
    use exhibit_proto::frame::TransferState;

    #[test]
    fn the_redb_backend_passes_conformance() {
        let dir = tempfile::tempdir().unwrap();
        let mut n = 0;
        let scratch = tempfile::tempdir().unwrap();
        crate::meta::conformance::run(
            &mut || {
                n += 1;
                Box::new(RedbMeta::open(&dir.path().join(format!("m{n}.redb"))).unwrap())
            },
            scratch.path(),
        )
        .unwrap();
    }

    /// Writes go to one database and reads come from another: the suite
    /// must notice.
    #[derive(Debug)]
    struct Split(RedbMeta, RedbMeta);

    impl MetaStore for Split {
        fn read(&self) -> Result<Box<dyn Read + '_>> {
            self.1.read()
        }
        fn write(&self) -> Result<Box<dyn Tx + '_>> {
            self.0.write()
        }
        fn snapshot_to(&self, dest: &Path) -> Result<Vec<ChunkId>> {
            self.0.snapshot_to(dest)
        }
    }

    #[test]
    fn a_backend_that_loses_writes_fails_conformance() {
        let dir = tempfile::tempdir().unwrap();
        let mut n = 0;
        let mut make = || -> Box<dyn MetaStore> {
            n += 2;
            let open = |i: i32| RedbMeta::open(&dir.path().join(format!("s{i}.redb"))).unwrap();
            Box::new(Split(open(n), open(n + 1)))
        };
        let e = crate::meta::conformance::run(&mut make, dir.path()).unwrap_err();
        assert!(e.starts_with("metadata conformance: "), "{e}");
    }
    fn v1(id: TransferId, manifest: Option<SignedManifest>) -> legacy::TransferRecordV1 {
        let bob = UserId::new("bob").unwrap();
        legacy::TransferRecordV1 {
            transfer: id,
            sender: UserId::new("alice").unwrap(),
            recipients: vec![RecipientRecord { user: bob, state: DeliveryState::Sealed, at: Some(7), fetched: 2 }],
            state: if manifest.is_some() { TransferState::Sealed } else { TransferState::Uploading },
            created_at: 5,
            sealed_at: manifest.as_ref().map(|_| 6),
            deadline: Some(9),
            manifest,
            case_ref: Some("OP-1".into()),
            items: 3,
            bytes: 4000,
            chunks: 4,
            ended_at: None,
        }
    }

    #[test]
    fn a_schema_1_store_is_migrated_once_keeping_every_record_and_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.redb");
        let (sealed, uploading) = (TransferId::random(), TransferId::random());
        let m = SignedManifest { bytes: vec![1; 5000], signature: vec![2; 64] };
        {
            let db = Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            let mut t = tx.open_table(TRANSFERS).unwrap();
            t.insert(sealed.as_bytes().as_slice(), enc(&v1(sealed, Some(m.clone()))).as_slice()).unwrap();
            t.insert(uploading.as_bytes().as_slice(), enc(&v1(uploading, None)).as_slice()).unwrap();
            drop(t);
            tx.commit().unwrap();
        }
        // Opened twice: the second open must not read the new records as
        // schema 1 again.
        for _ in 0..2 {
            let store = RedbMeta::open(&path).unwrap();
            let r = store.read().unwrap();
            for (id, manifest) in [(sealed, Some(&m)), (uploading, None)] {
                let rec = r.transfer(&id).unwrap().unwrap();
                let (want, _) = v1(id, manifest.cloned()).split();
                assert_eq!(enc(&rec), enc(&want), "record of {id} changed");
                assert_eq!(r.manifest(&id).unwrap().as_ref(), manifest);
            }
        }
        let db = Database::create(&path).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(META).unwrap().insert(SCHEMA_KEY, 3u64.to_be_bytes().as_slice()).unwrap();
        tx.commit().unwrap();
        drop(db);
        let Err(e) = RedbMeta::open(&path) else { panic!("a newer schema was opened") };
        assert!(matches!(e, OpenError::NewerSchema { found: 3, supported: 2 }), "{e:?}");
        assert!(ServerError::from(e).to_string().contains("newer exhibitd"));
    }

    /// A file as the redb 2.6.4 release writes it (file format v2), with
    /// one user and the schema number.
    fn redb2_file(path: &Path) {
        const T: redb2::TableDefinition<&[u8], &[u8]> = redb2::TableDefinition::new("users");
        const M: redb2::TableDefinition<&[u8], &[u8]> = redb2::TableDefinition::new("meta");
        let db = redb2::Database::create(path).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(T).unwrap().insert(b"alice".as_slice(), enc(&user("alice")).as_slice()).unwrap();
        tx.open_table(M).unwrap().insert(SCHEMA_KEY, 2u64.to_be_bytes().as_slice()).unwrap();
        tx.commit().unwrap();
        drop(db);
        assert_eq!(upgrade::format_of(path), Some(2));
    }

    fn user(id: &str) -> UserRecord {
        UserRecord {
            user: UserId::new(id).unwrap(),
            display_name: id.to_uppercase(),
            org: "Org".into(),
            role: exhibit_proto::directory::Role::Caseworker,
            email: None,
            enrolled_at: Some(1),
            revoked_at: None,
            entry: None,
            cert_hash: None,
        }
    }

    fn inode(path: &Path) -> u64 {
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(path).unwrap())
    }

    fn has_alice(store: &RedbMeta) -> bool {
        store.read().unwrap().user(&UserId::new("alice").unwrap()).unwrap().is_some()
    }

    #[test]
    fn a_redb_2_file_is_upgraded_once_keeping_its_records_and_the_original() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.redb");
        redb2_file(&path);
        let original = std::fs::read(&path).unwrap();

        let store = RedbMeta::open(&path).unwrap();
        assert!(has_alice(&store));
        drop(store);
        assert_eq!(upgrade::format_of(&path), Some(upgrade::FORMAT));
        let backup = upgrade::backup_of(&path);
        assert_eq!(std::fs::read(&backup).unwrap(), original, "the file as it was is kept");
        assert!(!dir.path().join("meta.redb.upgrading").exists());

        // The second open finds nothing to upgrade: the file is not replaced.
        let upgraded = inode(&path);
        let store = RedbMeta::open(&path).unwrap();
        assert!(has_alice(&store));
        assert_eq!(inode(&path), upgraded);
        assert_eq!(std::fs::read(&backup).unwrap(), original);
    }

    #[test]
    fn an_upgrade_interrupted_before_the_rename_is_done_again_from_the_untouched_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.redb");
        redb2_file(&path);
        // What a crash after the copy and the second name leaves.
        std::fs::write(dir.path().join("meta.redb.upgrading"), b"half a copy").unwrap();
        std::fs::hard_link(&path, upgrade::backup_of(&path)).unwrap();

        let store = RedbMeta::open(&path).unwrap();
        assert!(has_alice(&store));
        assert_eq!(upgrade::format_of(&path), Some(upgrade::FORMAT));
        assert_eq!(upgrade::format_of(&upgrade::backup_of(&path)), Some(2));
        assert!(!dir.path().join("meta.redb.upgrading").exists());
    }

    #[test]
    fn another_file_where_the_original_would_be_kept_stops_the_upgrade_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.redb");
        redb2_file(&path);
        let original = std::fs::read(&path).unwrap();
        std::fs::write(upgrade::backup_of(&path), b"an earlier upgrade's original").unwrap();

        let e = RedbMeta::open(&path).unwrap_err();
        assert!(matches!(e, OpenError::BackupInTheWay { .. }), "{e:?}");
        assert_eq!(std::fs::read(&path).unwrap(), original);
        assert!(!dir.path().join("meta.redb.upgrading").exists());
    }

    #[test]
    fn a_file_the_old_release_has_open_is_refused_as_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.redb");
        redb2_file(&path);
        let old = redb2::Database::open(&path).unwrap();
        let e = RedbMeta::open(&path).unwrap_err();
        assert!(matches!(e, OpenError::InUse { .. }), "{e:?}");
        drop(old);
        assert_eq!(upgrade::format_of(&path), Some(2));
        // And the other way round: ours open, a second open is refused.
        let store = RedbMeta::open(&path).unwrap();
        let e = RedbMeta::open(&path).unwrap_err();
        assert!(matches!(e, OpenError::InUse { .. }), "{e:?}");
        drop(store);
    }

    #[test]
    fn a_newer_file_format_and_a_file_that_is_not_redb_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.redb");
        drop(RedbMeta::open(&path).unwrap());
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[64] = upgrade::FORMAT + 1;
        bytes[64 + 128] = upgrade::FORMAT + 1;
        std::fs::write(&path, &bytes).unwrap();
        let e = RedbMeta::open(&path).unwrap_err();
        assert!(matches!(e, OpenError::NewerFormat { found: 4, supported: 3, .. }), "{e:?}");
        assert!(ServerError::from(e).to_string().contains("use a newer exhibitd"));

        let junk = dir.path().join("junk.redb");
        std::fs::write(&junk, vec![7u8; 8192]).unwrap();
        let e = RedbMeta::open(&junk).unwrap_err();
        assert!(matches!(e, OpenError::Corrupt { .. }), "{e:?}");
    }
}
