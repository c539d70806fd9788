//! Metadata in redb: users, enrolment codes, transfers, the deadline index,
//! receipts and chunk reference counts.
//!
//! Every write is one redb transaction committed with immediate durability
//! (fsync) before the request that caused it is answered.

use std::path::Path;

use exhibit_proto::audit::{AuditBody, AuditEntry, Checkpoint, SignedCheckpoint};
use exhibit_proto::directory::{Role, SignedEntry};
use exhibit_proto::frame::{
    AlertAck, AlertInfo, Delivery, DeliveryState, RecipientState, TransferInfo, TransferState, UserInfo,
};
use exhibit_proto::{AcceptedReceipt, ChunkId, Manifest, SignedManifest, TransferId, UserId};
use redb::{Database, ReadableTable, TableDefinition, WriteTransaction};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::error::ServerError;

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
/// record, which every chunk fetched rewrites: a phone extract's manifest
/// runs to megabytes.
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
/// dedup key (transfer ‖ kind ‖ level, …) → alert id: one alert per cause.
const ALERT_KEYS: Bytes = TableDefinition::new("alert_keys");
/// alert id ‖ notifier name → [`Delivery`]: deliveries still to make.
const PENDING: Bytes = TableDefinition::new("pending_deliveries");
/// BLAKE3(renewed certificate) → BLAKE3(the certificate it replaces), until
/// the renewed one is first used.
const RENEWALS: Bytes = TableDefinition::new("renewals");
/// name → value: counters and the scheduler's last completed scan.
const META: Bytes = TableDefinition::new("meta");
/// seq (u64 BE) → [`AuditEntry`]: the hash-chained audit log.
const AUDIT: Bytes = TableDefinition::new("audit");
/// subject ‖ 0 ‖ seq → (): entries about one transfer or user.
const AUDIT_SUBJECT: Bytes = TableDefinition::new("audit_subject");
/// seq (u64 BE) → [`SignedCheckpoint`], every [`CHECKPOINT_EVERY`] entries.
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

/// A checkpoint is signed and stored every this many entries.
pub const CHECKPOINT_EVERY: u64 = 256;

/// An action to append to the audit log.
#[derive(Clone, Debug)]
pub struct Ev {
    /// Server time.
    pub time: u64,
    /// Who.
    pub actor: String,
    /// What.
    pub action: &'static str,
    /// To what.
    pub subject: String,
    /// Particulars.
    pub details: String,
}

impl Ev {
    /// An event.
    pub fn new(time: u64, actor: impl ToString, action: &'static str, subject: impl ToString) -> Self {
        Ev { time, actor: actor.to_string(), action, subject: subject.to_string(), details: String::new() }
    }

    /// With particulars.
    pub fn details(mut self, d: impl Into<String>) -> Self {
        self.details = d.into();
        self
    }
}

/// Body hashes of a run of audit entries, and the (seq, hash) of its last.
pub type BodyHashes = (Vec<[u8; 32]>, u64, [u8; 32]);

/// The audit tables, opened in a write transaction.
pub(crate) struct AuditTx<'t> {
    log: Tbl<'t>,
    by_subject: Tbl<'t>,
    checkpoints: Tbl<'t>,
    key: Option<&'t ed25519_dalek::SigningKey>,
}

impl<'t> AuditTx<'t> {
    pub(crate) fn open(
        tx: &'t WriteTransaction,
        key: Option<&'t ed25519_dalek::SigningKey>,
    ) -> Result<Self, ServerError> {
        Ok(AuditTx {
            log: tx.open_table(AUDIT)?,
            by_subject: tx.open_table(AUDIT_SUBJECT)?,
            checkpoints: tx.open_table(AUDIT_CHECKPOINTS)?,
            key,
        })
    }

    /// Append an entry; returns its seq.
    pub(crate) fn append(&mut self, ev: Ev) -> Result<u64, ServerError> {
        let (seq, prev) = match self.log.last()? {
            Some((_, v)) => {
                let e: AuditEntry = dec(v.value(), "audit entry")?;
                (e.body.seq, e.hash)
            }
            None => (0, [0u8; 32]),
        };
        let body = AuditBody {
            seq: seq + 1,
            time: ev.time,
            actor: ev.actor,
            action: ev.action.to_owned(),
            subject: ev.subject,
            details: ev.details,
        };
        let e = AuditEntry::new(body, prev);
        let seq = e.body.seq;
        self.log.insert(seq.to_be_bytes().as_slice(), enc(&e).as_slice())?;
        self.by_subject
            .insert(cat(&[e.body.subject.as_bytes(), &[0], &seq.to_be_bytes()]).as_slice(), [].as_slice())?;
        if seq % CHECKPOINT_EVERY == 0 {
            if let Some(k) = self.key {
                let cp = Checkpoint { seq, head: e.hash, time: e.body.time }.sign(k);
                self.checkpoints.insert(seq.to_be_bytes().as_slice(), enc(&cp).as_slice())?;
            }
        }
        Ok(seq)
    }
}

/// What a deadline-index entry asks the scheduler to check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Due {
    /// Acknowledged by everyone yet? If not, alert at this level.
    Overdue(u8),
    /// Sealed yet? If not, the upload has stalled.
    Stalled,
    /// Retention is over: delete the chunks, keep the rest.
    Expire,
}

/// An alert as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AlertRecord {
    /// What the client sees (deliveries filled from [`PENDING`] too).
    pub info: AlertInfo,
    /// E-mail addresses of the people responsible.
    pub emails: Vec<String>,
}

/// A user as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UserRecord {
    /// Id.
    pub user: UserId,
    /// Name.
    pub display_name: String,
    /// Organisation.
    pub org: String,
    /// Role.
    pub role: Role,
    /// E-mail address for alerts.
    pub email: Option<String>,
    /// Enrolled at.
    pub enrolled_at: Option<u64>,
    /// Revoked at.
    pub revoked_at: Option<u64>,
    /// The signed directory entry, once enrolled.
    pub entry: Option<SignedEntry>,
    /// BLAKE3 of the client certificate, once enrolled.
    pub cert_hash: Option<[u8; 32]>,
}

impl UserRecord {
    /// As admins see it.
    pub fn info(&self) -> UserInfo {
        UserInfo {
            user: self.user.clone(),
            display_name: self.display_name.clone(),
            org: self.org.clone(),
            role: self.role,
            email: self.email.clone(),
            enrolled_at: self.enrolled_at,
            revoked_at: self.revoked_at,
        }
    }
}

/// A one-time enrolment code.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CodeRecord {
    /// Whose.
    pub user: UserId,
    /// Until when.
    pub expires_at: u64,
}

/// One recipient of a transfer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecipientRecord {
    /// Who.
    pub user: UserId,
    /// State.
    pub state: DeliveryState,
    /// When it got there.
    pub at: Option<u64>,
    /// Distinct chunks fetched.
    pub fetched: u32,
}

/// A transfer as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TransferRecord {
    /// Id.
    pub transfer: TransferId,
    /// Sender.
    pub sender: UserId,
    /// Recipients.
    pub recipients: Vec<RecipientRecord>,
    /// State.
    pub state: TransferState,
    /// Created.
    pub created_at: u64,
    /// Sealed.
    pub sealed_at: Option<u64>,
    /// Deadline.
    pub deadline: Option<u64>,
    /// Case reference (from the manifest).
    pub case_ref: Option<String>,
    /// Items.
    pub items: u32,
    /// Ciphertext bytes.
    pub bytes: u64,
    /// Chunks.
    pub chunks: u32,
    /// When it was revoked or expired.
    pub ended_at: Option<u64>,
}

impl TransferRecord {
    /// Whether `user` is a recipient.
    pub fn is_recipient(&self, user: &UserId) -> bool {
        self.recipients.iter().any(|r| &r.user == user)
    }

    /// As listings show it.
    pub fn info(&self) -> TransferInfo {
        TransferInfo {
            transfer: self.transfer,
            sender: self.sender.clone(),
            recipients: self
                .recipients
                .iter()
                .map(|r| RecipientState { user: r.user.clone(), state: r.state, at: r.at })
                .collect(),
            state: self.state,
            created_at: self.created_at,
            sealed_at: self.sealed_at,
            deadline: self.deadline,
            case_ref: self.case_ref.clone(),
            items: self.items,
            bytes: self.bytes,
            ended_at: self.ended_at,
        }
    }
}

fn enc<T: Serialize>(v: &T) -> Vec<u8> {
    exhibit_proto::sign::encode(v)
}

fn dec<T: DeserializeOwned>(b: &[u8], what: &'static str) -> Result<T, ServerError> {
    exhibit_proto::sign::decode(b, what).map_err(|e| ServerError::Store(format!("corrupt record: {e}")))
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// What sealing did, for the caller to finish outside the transaction.
#[derive(Debug)]
pub struct Sealed {
    /// The transfer as now stored.
    pub record: TransferRecord,
    /// Chunks uploaded but not in the manifest whose last reference went.
    pub unreferenced: Vec<ChunkId>,
}

/// The metadata store.
#[derive(Debug)]
pub struct Store {
    db: Database,
    signer: Option<ed25519_dalek::SigningKey>,
}

impl Store {
    /// Open or create the database and its tables.
    pub fn open(path: &Path) -> Result<Store, ServerError> {
        let db = Database::create(path)?;
        let tx = db.begin_write()?;
        for t in TABLES {
            tx.open_table(t)?;
        }
        migrate(&tx)?;
        tx.commit()?;
        Ok(Store { db, signer: None })
    }

    /// The key that signs audit checkpoints.
    pub fn set_signer(&mut self, key: ed25519_dalek::SigningKey) {
        self.signer = Some(key);
    }

    pub(crate) fn audit_tx<'t>(&'t self, tx: &'t WriteTransaction) -> Result<AuditTx<'t>, ServerError> {
        AuditTx::open(tx, self.signer.as_ref())
    }

    /// Append one entry in its own transaction (reads and other actions
    /// with no other write).
    pub fn audit(&self, ev: Ev) -> Result<u64, ServerError> {
        self.write(|tx| self.audit_tx(tx)?.append(ev))
    }

    /// Entries from `from` (inclusive), at most `limit`, and the stored
    /// checkpoints among them.
    pub fn audit_entries(
        &self,
        from: u64,
        limit: usize,
    ) -> Result<(Vec<AuditEntry>, Vec<SignedCheckpoint>), ServerError> {
        let tx = self.db.begin_read()?;
        let log = tx.open_table(AUDIT)?;
        let mut entries = vec![];
        for row in log.range(from.to_be_bytes().as_slice()..)?.take(limit) {
            entries.push(dec::<AuditEntry>(row?.1.value(), "audit entry")?);
        }
        let cps = tx.open_table(AUDIT_CHECKPOINTS)?;
        let mut checkpoints = vec![];
        if let (Some(a), Some(b)) = (entries.first(), entries.last()) {
            let (lo, hi) = (a.body.seq.to_be_bytes(), b.body.seq.to_be_bytes());
            for row in cps.range(lo.as_slice()..=hi.as_slice())? {
                checkpoints.push(dec(row?.1.value(), "checkpoint")?);
            }
        }
        Ok((entries, checkpoints))
    }

    /// (seq, hash) of the last entry.
    pub fn audit_head(&self) -> Result<(u64, [u8; 32]), ServerError> {
        let tx = self.db.begin_read()?;
        let log = tx.open_table(AUDIT)?;
        let last = log.last()?;
        match last {
            Some((_, v)) => {
                let e: AuditEntry = dec(v.value(), "audit entry")?;
                Ok((e.body.seq, e.hash))
            }
            None => Ok((0, [0; 32])),
        }
    }

    /// Body hashes of entries `since+1 ..= since+limit`, and the (seq,
    /// stored hash) of the last one.
    pub fn audit_body_hashes(&self, since: u64, limit: usize) -> Result<BodyHashes, ServerError> {
        let tx = self.db.begin_read()?;
        let log = tx.open_table(AUDIT)?;
        let mut out = vec![];
        let (mut seq, mut hash) = (since, [0u8; 32]);
        for row in log.range((since + 1).to_be_bytes().as_slice()..)?.take(limit) {
            let e: AuditEntry = dec(row?.1.value(), "audit entry")?;
            out.push(e.body.hash());
            (seq, hash) = (e.body.seq, e.hash);
        }
        if out.is_empty() {
            if let Some(v) = log.get(since.to_be_bytes().as_slice())? {
                hash = dec::<AuditEntry>(v.value(), "audit entry")?.hash;
            }
        }
        Ok((out, seq, hash))
    }

    /// Entries about `subject`, in order.
    pub fn audit_subject(&self, subject: &str) -> Result<Vec<AuditEntry>, ServerError> {
        let tx = self.db.begin_read()?;
        let idx = tx.open_table(AUDIT_SUBJECT)?;
        let log = tx.open_table(AUDIT)?;
        let start = cat(&[subject.as_bytes(), &[0]]);
        let end = cat(&[subject.as_bytes(), &[1]]);
        let mut out = vec![];
        for row in idx.range(start.as_slice()..end.as_slice())? {
            let (k, _) = row?;
            if let Some(v) = log.get(&k.value()[start.len()..])? {
                out.push(dec(v.value(), "audit entry")?);
            }
        }
        Ok(out)
    }

    fn get<T: DeserializeOwned>(&self, table: Bytes, key: &[u8], what: &'static str) -> Result<Option<T>, ServerError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(table)?;
        let v = t.get(key)?;
        v.map(|v| dec(v.value(), what)).transpose()
    }

    /// Run `f` in one write transaction and commit it durably.
    pub(crate) fn write<R>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<R, ServerError>,
    ) -> Result<R, ServerError> {
        let tx = self.db.begin_write()?;
        let r = f(&tx)?;
        tx.commit()?;
        Ok(r)
    }

    /// Create a pending user with an enrolment code.
    pub fn add_user(
        &self,
        rec: &UserRecord,
        code_hash: [u8; 32],
        code: &CodeRecord,
        ev: Ev,
    ) -> Result<(), ServerError> {
        self.write(|tx| {
            self.audit_tx(tx)?.append(ev)?;
            let mut users = tx.open_table(USERS)?;
            let existing = users.get(rec.user.as_str().as_bytes())?.map(|v| dec::<UserRecord>(v.value(), "user"));
            if let Some(old) = existing.transpose()? {
                if old.enrolled_at.is_some() || old.revoked_at.is_some() {
                    return Err(ServerError::Conflict(format!("user {} already exists", rec.user)));
                }
                // Not enrolled yet: a new code replaces the old one.
                let mut codes = tx.open_table(CODES)?;
                let mut stale = vec![];
                for row in codes.iter()? {
                    let (k, v) = row?;
                    if dec::<CodeRecord>(v.value(), "code")?.user == rec.user {
                        stale.push(k.value().to_vec());
                    }
                }
                for k in stale {
                    codes.remove(k.as_slice())?;
                }
            }
            users.insert(rec.user.as_str().as_bytes(), enc(rec).as_slice())?;
            tx.open_table(CODES)?.insert(code_hash.as_slice(), enc(code).as_slice())?;
            Ok(())
        })
    }

    /// A user.
    pub fn user(&self, user: &UserId) -> Result<Option<UserRecord>, ServerError> {
        self.get(USERS, user.as_str().as_bytes(), "user")
    }

    /// The user a client certificate was issued to.
    pub fn user_by_cert(&self, cert_hash: &[u8; 32]) -> Result<Option<UserRecord>, ServerError> {
        let tx = self.db.begin_read()?;
        let Some(id) = tx.open_table(CERTS)?.get(cert_hash.as_slice())?.map(|v| v.value().to_vec()) else {
            return Ok(None);
        };
        let users = tx.open_table(USERS)?;
        let v = users.get(id.as_slice())?;
        v.map(|v| dec(v.value(), "user")).transpose()
    }

    /// Accept a renewed certificate for `user`: it works at once, beside
    /// the one it replaces (`old`), until it is first used.
    pub fn renew_cert(&self, user: &UserId, old: [u8; 32], new: [u8; 32], now: u64) -> Result<(), ServerError> {
        if old == new {
            return Err(ServerError::Conflict("the renewed certificate is the current one".into()));
        }
        self.write(|tx| {
            let mut certs = tx.open_table(CERTS)?;
            // The presented certificate may have been retired a moment ago.
            if certs.get(old.as_slice())?.is_none_or(|v| v.value() != user.as_str().as_bytes()) {
                return Err(ServerError::Unauthenticated("this certificate has been replaced".into()));
            }
            certs.insert(new.as_slice(), user.as_str().as_bytes())?;
            drop(certs);
            tx.open_table(RENEWALS)?.insert(new.as_slice(), old.as_slice())?;
            self.audit_tx(tx)?.append(
                Ev::new(now, user, "renew", user).details(format!("certificate {} issued", &hex::encode(new)[..16])),
            )?;
            Ok(())
        })
    }

    /// First use of a renewed certificate `h`: retire the one it replaced
    /// (and any other renewal of it never used). Returns whether `h` was a
    /// pending renewal. Cheap when it is not: one read.
    pub fn complete_renewal(&self, h: &[u8; 32], now: u64) -> Result<bool, ServerError> {
        {
            let tx = self.db.begin_read()?;
            if tx.open_table(RENEWALS)?.get(h.as_slice())?.is_none() {
                return Ok(false);
            }
        }
        self.write(|tx| {
            let mut renewals = tx.open_table(RENEWALS)?;
            let Some(old) = renewals.get(h.as_slice())?.map(|v| v.value().to_vec()) else {
                return Ok(false);
            };
            let mut siblings = vec![];
            for row in renewals.iter()? {
                let (k, v) = row?;
                if v.value() == old.as_slice() {
                    siblings.push(k.value().to_vec());
                }
            }
            let mut certs = tx.open_table(CERTS)?;
            for k in &siblings {
                renewals.remove(k.as_slice())?;
                if k.as_slice() != h.as_slice() {
                    certs.remove(k.as_slice())?;
                }
            }
            certs.remove(old.as_slice())?;
            let Some(user) = certs.get(h.as_slice())?.map(|v| v.value().to_vec()) else {
                return Ok(false);
            };
            let mut users = tx.open_table(USERS)?;
            let mut rec: UserRecord = match users.get(user.as_slice())? {
                Some(v) => dec(v.value(), "user")?,
                None => return Ok(false),
            };
            rec.cert_hash = Some(*h);
            users.insert(user.as_slice(), enc(&rec).as_slice())?;
            self.audit_tx(tx)?.append(
                Ev::new(now, &rec.user, "renew", &rec.user)
                    .details(format!("certificate {} in use; the one it replaced retired", &hex::encode(h)[..16])),
            )?;
            Ok(true)
        })
    }

    /// Every user.
    pub fn users(&self) -> Result<Vec<UserRecord>, ServerError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(USERS)?;
        let mut out = vec![];
        for row in t.iter()? {
            out.push(dec(row?.1.value(), "user")?);
        }
        Ok(out)
    }

    /// Redeem an enrolment code: `enrol` turns the pending user into an
    /// enrolled one (and issues the certificate); the code is consumed in the
    /// same transaction.
    pub fn redeem_code(
        &self,
        code_hash: [u8; 32],
        now: u64,
        enrol: impl FnOnce(UserRecord) -> Result<UserRecord, ServerError>,
    ) -> Result<UserRecord, ServerError> {
        self.write(|tx| {
            let mut codes = tx.open_table(CODES)?;
            let code: CodeRecord = match codes.get(code_hash.as_slice())? {
                Some(v) => dec(v.value(), "code")?,
                None => return Err(ServerError::Unauthenticated("unknown or already used enrolment code".into())),
            };
            if now >= code.expires_at {
                return Err(ServerError::Unauthenticated("enrolment code expired; ask an admin for a new one".into()));
            }
            codes.remove(code_hash.as_slice())?;
            let mut users = tx.open_table(USERS)?;
            let rec: UserRecord = match users.get(code.user.as_str().as_bytes())? {
                Some(v) => dec(v.value(), "user")?,
                None => return Err(ServerError::NotFound(format!("user {}", code.user))),
            };
            if rec.enrolled_at.is_some() || rec.revoked_at.is_some() {
                return Err(ServerError::Conflict(format!("user {} is already enrolled or revoked", rec.user)));
            }
            let rec = enrol(rec)?;
            let fp = rec.entry.as_ref().and_then(|e| e.verify_unchecked_fingerprint());
            self.audit_tx(tx)?.append(Ev::new(now, &rec.user, "enrol", &rec.user).details(format!(
                "role {}, key fingerprint {}",
                rec.role,
                fp.unwrap_or_default()
            )))?;
            users.insert(rec.user.as_str().as_bytes(), enc(&rec).as_slice())?;
            if let Some(h) = rec.cert_hash {
                tx.open_table(CERTS)?.insert(h.as_slice(), rec.user.as_str().as_bytes())?;
            }
            Ok(rec)
        })
    }

    /// Record a new transfer (state uploading); `stall_check` is when to
    /// alert if it is still not sealed.
    pub fn create_transfer(&self, rec: &TransferRecord, stall_check: u64) -> Result<(), ServerError> {
        self.write(|tx| {
            let to: Vec<&str> = rec.recipients.iter().map(|r| r.user.as_str()).collect();
            self.audit_tx(tx)?.append(
                Ev::new(rec.created_at, &rec.sender, "create", rec.transfer).details(format!("to {}", to.join(", "))),
            )?;
            tx.open_table(DEADLINES)?.insert(
                cat(&[&stall_check.to_be_bytes(), rec.transfer.as_bytes()]).as_slice(),
                enc(&Due::Stalled).as_slice(),
            )?;
            let mut t = tx.open_table(TRANSFERS)?;
            if t.get(rec.transfer.as_bytes().as_slice())?.is_some() {
                return Err(ServerError::Conflict(format!("transfer {} already exists", rec.transfer)));
            }
            t.insert(rec.transfer.as_bytes().as_slice(), enc(rec).as_slice())?;
            let key = cat(&[rec.sender.as_str().as_bytes(), &[0], rec.transfer.as_bytes()]);
            tx.open_table(OUTBOX)?.insert(key.as_slice(), [].as_slice())?;
            Ok(())
        })
    }

    /// A transfer.
    pub fn transfer(&self, id: &TransferId) -> Result<Option<TransferRecord>, ServerError> {
        self.get(TRANSFERS, id.as_bytes(), "transfer")
    }

    /// A sealed transfer's signed manifest.
    pub fn manifest(&self, id: &TransferId) -> Result<Option<SignedManifest>, ServerError> {
        self.get(MANIFESTS, id.as_bytes(), "manifest")
    }

    /// How many bytes a transfer's stored manifest takes (a little more
    /// than the manifest itself), without reading it out.
    pub fn manifest_len(&self, id: &TransferId) -> Result<Option<usize>, ServerError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(MANIFESTS)?;
        let len = t.get(id.as_bytes().as_slice())?.map(|v| v.value().len());
        Ok(len)
    }

    /// Note that a chunk (already durable in the chunk store) belongs to a
    /// transfer.
    pub fn add_chunk(
        &self,
        transfer: &TransferId,
        id: &ChunkId,
        len: u32,
        max_transfer: u64,
        quota: Option<u64>,
    ) -> Result<(), ServerError> {
        self.write(|tx| {
            // Re-checked inside the transaction: a seal may have committed
            // while this chunk was arriving.
            let mut transfers = tx.open_table(TRANSFERS)?;
            let rec = transfers
                .get(transfer.as_bytes().as_slice())?
                .map(|v| dec::<TransferRecord>(v.value(), "transfer"))
                .transpose()?;
            let mut rec = match rec {
                Some(r) if r.state == TransferState::Uploading => r,
                _ => return Err(ServerError::Conflict(format!("transfer {transfer} is no longer uploading"))),
            };
            let key = cat(&[transfer.as_bytes(), id.as_bytes()]);
            let mut tc = tx.open_table(TRANSFER_CHUNKS)?;
            if tc.get(key.as_slice())?.is_none() {
                let used = match quota {
                    Some(_) => read_u64(&tx.open_table(META)?, usage_key(&rec.sender).as_bytes())?,
                    None => 0,
                };
                check_limits(rec.bytes, used, len, max_transfer, quota)?;
                tc.insert(key.as_slice(), len.to_be_bytes().as_slice())?;
                bump_ref(tx, id, 1)?;
                rec.bytes += u64::from(len);
                transfers.insert(transfer.as_bytes().as_slice(), enc(&rec).as_slice())?;
                add_usage(tx, &rec.sender, i64::from(len))?;
            }
            Ok(())
        })
    }

    /// How many transfers refer to a chunk.
    pub fn chunk_ref(&self, id: &ChunkId) -> Result<u64, ServerError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(CHUNK_REFS)?;
        let v = t.get(id.as_bytes().as_slice())?;
        Ok(v.and_then(|v| v.value().try_into().ok().map(u64::from_be_bytes)).unwrap_or(0))
    }

    /// The length of a chunk of a transfer, if it belongs to it.
    pub fn transfer_chunk(&self, transfer: &TransferId, id: &ChunkId) -> Result<Option<u32>, ServerError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(TRANSFER_CHUNKS)?;
        let key = cat(&[transfer.as_bytes(), id.as_bytes()]);
        let v = t.get(key.as_slice())?;
        Ok(v.and_then(|v| v.value().try_into().ok().map(u32::from_be_bytes)))
    }

    /// Chunk ids stored for a transfer.
    pub fn transfer_chunk_ids(&self, transfer: &TransferId) -> Result<Vec<ChunkId>, ServerError> {
        let tx = self.db.begin_read()?;
        chunk_ids_of(&tx.open_table(TRANSFER_CHUNKS)?, transfer)
    }

    /// Bytes of ciphertext `user` has stored.
    pub fn usage(&self, user: &UserId) -> Result<u64, ServerError> {
        let tx = self.db.begin_read()?;
        read_u64(&tx.open_table(META)?, usage_key(user).as_bytes())
    }

    /// Seal a transfer: every manifest chunk must be stored with its length;
    /// chunks uploaded but not listed are dropped.
    pub fn seal(
        &self,
        manifest: &SignedManifest,
        m: &Manifest,
        now: u64,
        deadline: u64,
    ) -> Result<Sealed, ServerError> {
        let transfer = &m.transfer;
        let chunks: Vec<(ChunkId, u32)> = m.all_chunks().map(|c| (c.id, c.len)).collect();
        let chunks = chunks.as_slice();
        // Version 2 manifests seal how many files there are: 0 here.
        let items = m.item_count().unwrap_or(0) as u32;
        let case_ref = m.case_ref.clone();
        self.write(|tx| {
            let mut transfers = tx.open_table(TRANSFERS)?;
            let mut rec: TransferRecord = match transfers.get(transfer.as_bytes().as_slice())? {
                Some(v) => dec(v.value(), "transfer")?,
                None => return Err(ServerError::NotFound(format!("transfer {transfer}"))),
            };
            if rec.state != TransferState::Uploading {
                return Err(ServerError::Conflict(format!("transfer {transfer} is already sealed")));
            }
            let mut tc = tx.open_table(TRANSFER_CHUNKS)?;
            let mut listed = std::collections::HashSet::new();
            for (id, len) in chunks {
                let key = cat(&[transfer.as_bytes(), id.as_bytes()]);
                let stored = tc.get(key.as_slice())?.and_then(|v| v.value().try_into().ok().map(u32::from_be_bytes));
                match stored {
                    Some(l) if l == *len => {}
                    Some(l) => {
                        return Err(ServerError::BadRequest(format!(
                            "chunk {id}: manifest says {len} bytes, {l} were uploaded"
                        )))
                    }
                    None => return Err(ServerError::Conflict(format!("chunk {id} has not been uploaded"))),
                }
                listed.insert(*id);
            }
            let stray: Vec<ChunkId> =
                chunk_ids_of(&tc, transfer)?.into_iter().filter(|id| !listed.contains(id)).collect();
            let mut unreferenced = vec![];
            for id in stray {
                tc.remove(cat(&[transfer.as_bytes(), id.as_bytes()]).as_slice())?;
                if bump_ref(tx, &id, -1)? == 0 {
                    unreferenced.push(id);
                }
            }
            rec.state = TransferState::Sealed;
            rec.sealed_at = Some(now);
            rec.deadline = Some(deadline);
            tx.open_table(MANIFESTS)?.insert(transfer.as_bytes().as_slice(), enc(manifest).as_slice())?;
            rec.case_ref = case_ref;
            rec.items = items;
            rec.chunks = chunks.len() as u32;
            let uploaded = rec.bytes;
            rec.bytes = chunks.iter().map(|c| u64::from(c.1)).sum();
            add_usage(tx, &rec.sender, rec.bytes as i64 - uploaded as i64)?;
            for r in &mut rec.recipients {
                r.state = DeliveryState::Sealed;
                r.at = Some(now);
            }
            transfers.insert(transfer.as_bytes().as_slice(), enc(&rec).as_slice())?;
            let mut audit = self.audit_tx(tx)?;
            audit.append(Ev::new(now, &rec.sender, "upload-complete", transfer).details(format!(
                "{} chunks, {} bytes of ciphertext, each verified on arrival",
                rec.chunks, rec.bytes
            )))?;
            let items = match m.item_count() {
                Some(n) => format!("{n} items"),
                None => "items sealed".to_owned(),
            };
            audit.append(Ev::new(now, &rec.sender, "seal", transfer).details(format!(
                "manifest {}, {items}, case {}, deadline {deadline}",
                hex::encode(manifest.hash()),
                rec.case_ref.as_deref().unwrap_or("-")
            )))?;
            drop(audit);
            let mut inbox = tx.open_table(INBOX)?;
            for r in &rec.recipients {
                inbox
                    .insert(cat(&[r.user.as_str().as_bytes(), &[0], transfer.as_bytes()]).as_slice(), [].as_slice())?;
            }
            tx.open_table(DEADLINES)?.insert(
                cat(&[&deadline.to_be_bytes(), transfer.as_bytes()]).as_slice(),
                enc(&Due::Overdue(0)).as_slice(),
            )?;
            Ok(Sealed { record: rec, unreferenced })
        })
    }

    /// Record that `recipient` fetched a chunk; when they have every chunk
    /// (or the transfer has none), they become delivered.
    pub fn record_fetch(
        &self,
        transfer: &TransferId,
        recipient: &UserId,
        chunk: Option<&ChunkId>,
        now: u64,
    ) -> Result<(), ServerError> {
        self.write(|tx| {
            let mut transfers = tx.open_table(TRANSFERS)?;
            let mut rec: TransferRecord = match transfers.get(transfer.as_bytes().as_slice())? {
                Some(v) => dec(v.value(), "transfer")?,
                None => return Ok(()),
            };
            let total = rec.chunks;
            let Some(r) = rec.recipients.iter_mut().find(|r| &r.user == recipient) else { return Ok(()) };
            if let Some(id) = chunk {
                let key = cat(&[transfer.as_bytes(), id.as_bytes(), recipient.as_str().as_bytes()]);
                if tx.open_table(FETCHED)?.insert(key.as_slice(), [].as_slice())?.is_none() {
                    r.fetched += 1;
                }
            }
            if r.fetched >= total && r.state == DeliveryState::Sealed {
                r.state = DeliveryState::Delivered;
                r.at = Some(now);
                self.audit_tx(tx)?.append(
                    Ev::new(now, recipient, "fetch", transfer).details(format!("all {total} chunks downloaded")),
                )?;
            }
            transfers.insert(transfer.as_bytes().as_slice(), enc(&rec).as_slice())?;
            Ok(())
        })
    }

    /// Store an accepted receipt and mark the recipient acknowledged. A
    /// second receipt from the same recipient returns the first.
    pub fn accept_receipt(
        &self,
        transfer: &TransferId,
        recipient: &UserId,
        accepted: &AcceptedReceipt,
        retain: Option<u64>,
    ) -> Result<AcceptedReceipt, ServerError> {
        self.write(|tx| {
            let key = cat(&[transfer.as_bytes(), recipient.as_str().as_bytes()]);
            let mut receipts = tx.open_table(RECEIPTS)?;
            if let Some(v) = receipts.get(key.as_slice())? {
                return dec(v.value(), "receipt");
            }
            receipts.insert(key.as_slice(), enc(accepted).as_slice())?;
            let mut transfers = tx.open_table(TRANSFERS)?;
            let mut rec: TransferRecord = match transfers.get(transfer.as_bytes().as_slice())? {
                Some(v) => dec(v.value(), "transfer")?,
                None => return Err(ServerError::NotFound(format!("transfer {transfer}"))),
            };
            if let Some(r) = rec.recipients.iter_mut().find(|r| &r.user == recipient) {
                r.state = DeliveryState::Acknowledged;
                r.at = Some(accepted.accepted_at);
            }
            transfers.insert(transfer.as_bytes().as_slice(), enc(&rec).as_slice())?;
            let now = accepted.accepted_at;
            self.audit_tx(tx)?.append(Ev::new(now, recipient, "receipt-accepted", transfer).details(format!(
                "receipt signed by {recipient}, countersigned at {now}; signature {}",
                hex::encode(&accepted.receipt.signature)
            )))?;
            let all = rec.recipients.iter().all(|r| r.state == DeliveryState::Acknowledged);
            if let (true, Some(days)) = (all, retain) {
                let at = now.saturating_add(days);
                tx.open_table(DEADLINES)?
                    .insert(cat(&[&at.to_be_bytes(), transfer.as_bytes()]).as_slice(), enc(&Due::Expire).as_slice())?;
            }
            Ok(accepted.clone())
        })
    }

    /// Revoke a transfer on its sender's word. Returns the recipients who
    /// had already fetched it.
    pub fn revoke_transfer(
        &self,
        transfer: &TransferId,
        by: &UserId,
        now: u64,
        expire_at: Option<u64>,
    ) -> Result<Vec<RecipientRecord>, ServerError> {
        self.write(|tx| {
            let mut transfers = tx.open_table(TRANSFERS)?;
            let mut rec: TransferRecord = match transfers.get(transfer.as_bytes().as_slice())? {
                Some(v) => dec(v.value(), "transfer")?,
                None => return Err(ServerError::NotFound(format!("transfer {transfer}"))),
            };
            if &rec.sender != by {
                return Err(ServerError::NotFound(format!("transfer {transfer}")));
            }
            match rec.state {
                TransferState::Uploading | TransferState::Sealed => {}
                TransferState::Revoked => return Err(ServerError::Conflict("already revoked".into())),
                TransferState::Expired => return Err(ServerError::Conflict("already expired".into())),
            }
            if rec.recipients.iter().all(|r| r.state == DeliveryState::Acknowledged) {
                return Err(ServerError::Conflict(
                    "every recipient has already acknowledged it; there is nothing left to revoke".into(),
                ));
            }
            let already: Vec<RecipientRecord> = rec
                .recipients
                .iter()
                .filter(|r| matches!(r.state, DeliveryState::Delivered | DeliveryState::Acknowledged))
                .cloned()
                .collect();
            rec.state = TransferState::Revoked;
            rec.ended_at = Some(now);
            transfers.insert(transfer.as_bytes().as_slice(), enc(&rec).as_slice())?;
            let fetched: Vec<String> =
                already.iter().map(|r| format!("{} ({} at {})", r.user, r.state.as_str(), r.at.unwrap_or(0))).collect();
            self.audit_tx(tx)?.append(Ev::new(now, by, "revoke", transfer).details(if fetched.is_empty() {
                "revoked before any recipient fetched it".to_owned()
            } else {
                format!("revoked; already fetched by {}", fetched.join(", "))
            }))?;
            if let Some(at) = expire_at {
                tx.open_table(DEADLINES)?
                    .insert(cat(&[&at.to_be_bytes(), transfer.as_bytes()]).as_slice(), enc(&Due::Expire).as_slice())?;
            }
            Ok(already)
        })
    }

    /// A stored receipt.
    pub fn receipt(&self, transfer: &TransferId, recipient: &UserId) -> Result<Option<AcceptedReceipt>, ServerError> {
        self.get(RECEIPTS, &cat(&[transfer.as_bytes(), recipient.as_str().as_bytes()]), "receipt")
    }

    fn listing(&self, table: Bytes, user: &UserId) -> Result<Vec<TransferRecord>, ServerError> {
        let tx = self.db.begin_read()?;
        let idx = tx.open_table(table)?;
        let transfers = tx.open_table(TRANSFERS)?;
        let start = cat(&[user.as_str().as_bytes(), &[0]]);
        let end = cat(&[user.as_str().as_bytes(), &[1]]);
        let mut out = vec![];
        for row in idx.range(start.as_slice()..end.as_slice())? {
            let (k, _) = row?;
            if let Some(v) = transfers.get(&k.value()[start.len()..])? {
                out.push(dec(v.value(), "transfer")?);
            }
        }
        Ok(out)
    }

    /// Transfers addressed to `user` (sealed ones only).
    pub fn inbox(&self, user: &UserId) -> Result<Vec<TransferRecord>, ServerError> {
        self.listing(INBOX, user)
    }

    /// Transfers sent by `user`.
    pub fn outbox(&self, user: &UserId) -> Result<Vec<TransferRecord>, ServerError> {
        self.listing(OUTBOX, user)
    }

    /// Every chunk reference count, for fsck.
    pub fn chunk_refs(&self) -> Result<Vec<(ChunkId, u64)>, ServerError> {
        chunk_refs_in(&self.db.begin_read()?)
    }

    /// Copy the whole store as of one read transaction into a new database
    /// at `dest` (writers go on meanwhile). Returns the chunks that
    /// snapshot refers to.
    pub fn snapshot_to(&self, dest: &Path) -> Result<Vec<ChunkId>, ServerError> {
        let rtx = self.db.begin_read()?;
        let out = Database::create(dest)?;
        let wtx = out.begin_write()?;
        for t in TABLES {
            let src = rtx.open_table(t)?;
            let mut dst = wtx.open_table(t)?;
            for row in src.iter()? {
                let (k, v) = row?;
                dst.insert(k.value(), v.value())?;
            }
        }
        wtx.commit()?;
        Ok(chunk_refs_in(&rtx)?.into_iter().map(|(id, _)| id).collect())
    }
}

/// The layout of the tables this build reads and writes.
const SCHEMA: u64 = 2;
/// Where [`SCHEMA`] is kept in [`META`].
const SCHEMA_KEY: &[u8] = b"schema";

/// Bring a store written by an earlier build up to [`SCHEMA`], in the
/// transaction that opens it. Schema 1 (no key) kept each transfer's
/// manifest inside its record.
fn migrate(tx: &WriteTransaction) -> Result<(), ServerError> {
    let mut meta = tx.open_table(META)?;
    let found = match meta.get(SCHEMA_KEY)? {
        Some(v) => u64::from_be_bytes(v.value().try_into().map_err(|_| ServerError::Store("bad schema".into()))?),
        None => 1,
    };
    if found > SCHEMA {
        return Err(ServerError::Store(format!(
            "metadata has schema {found}, written by a newer exhibitd; this one reads schema {SCHEMA}"
        )));
    }
    if found == 1 {
        let mut transfers = tx.open_table(TRANSFERS)?;
        let mut manifests = tx.open_table(MANIFESTS)?;
        // Keys first (16 bytes each), then one record at a time: the
        // manifests together may not fit in memory.
        let keys: Vec<Vec<u8>> =
            transfers.iter()?.map(|r| r.map(|(k, _)| k.value().to_vec())).collect::<Result<_, _>>()?;
        for key in keys {
            let Some(v) = transfers.get(key.as_slice())?.map(|v| v.value().to_vec()) else { continue };
            let (rec, manifest) = dec::<legacy::TransferRecordV1>(&v, "transfer (schema 1)")?.split();
            if let Some(m) = manifest {
                manifests.insert(key.as_slice(), enc(&m).as_slice())?;
            }
            transfers.insert(key.as_slice(), enc(&rec).as_slice())?;
        }
    }
    if found != SCHEMA {
        meta.insert(SCHEMA_KEY, SCHEMA.to_be_bytes().as_slice())?;
    }
    Ok(())
}

/// Records as earlier schemas stored them.
mod legacy {
    use super::*;

    /// A transfer as schema 1 stored it: the manifest inside.
    #[derive(Serialize, Deserialize)]
    pub(super) struct TransferRecordV1 {
        pub transfer: TransferId,
        pub sender: UserId,
        pub recipients: Vec<RecipientRecord>,
        pub state: TransferState,
        pub created_at: u64,
        pub sealed_at: Option<u64>,
        pub deadline: Option<u64>,
        pub manifest: Option<SignedManifest>,
        pub case_ref: Option<String>,
        pub items: u32,
        pub bytes: u64,
        pub chunks: u32,
        pub ended_at: Option<u64>,
    }

    impl TransferRecordV1 {
        pub(super) fn split(self) -> (TransferRecord, Option<SignedManifest>) {
            let rec = TransferRecord {
                transfer: self.transfer,
                sender: self.sender,
                recipients: self.recipients,
                state: self.state,
                created_at: self.created_at,
                sealed_at: self.sealed_at,
                deadline: self.deadline,
                case_ref: self.case_ref,
                items: self.items,
                bytes: self.bytes,
                chunks: self.chunks,
                ended_at: self.ended_at,
            };
            (rec, self.manifest)
        }
    }
}

fn chunk_refs_in(tx: &redb::ReadTransaction) -> Result<Vec<(ChunkId, u64)>, ServerError> {
    let t = tx.open_table(CHUNK_REFS)?;
    let mut out = vec![];
    for row in t.iter()? {
        let (k, v) = row?;
        let id = ChunkId(k.value().try_into().map_err(|_| ServerError::Store("bad chunk ref key".into()))?);
        let n = u64::from_be_bytes(v.value().try_into().map_err(|_| ServerError::Store("bad chunk ref".into()))?);
        out.push((id, n));
    }
    Ok(out)
}

impl Store {
    /// Insert sealed transfers in one transaction, with their deadline and
    /// inbox/outbox entries (bulk import; the benchmark fills a store with it).
    pub fn import_sealed(&self, recs: impl IntoIterator<Item = TransferRecord>) -> Result<usize, ServerError> {
        self.write(|tx| {
            let mut transfers = tx.open_table(TRANSFERS)?;
            let mut deadlines = tx.open_table(DEADLINES)?;
            let mut inbox = tx.open_table(INBOX)?;
            let mut outbox = tx.open_table(OUTBOX)?;
            let mut n = 0;
            for rec in recs {
                let id = rec.transfer.as_bytes();
                transfers.insert(id.as_slice(), enc(&rec).as_slice())?;
                if let Some(d) = rec.deadline {
                    deadlines.insert(cat(&[&d.to_be_bytes(), id]).as_slice(), enc(&Due::Overdue(0)).as_slice())?;
                }
                outbox.insert(cat(&[rec.sender.as_str().as_bytes(), &[0], id]).as_slice(), [].as_slice())?;
                for r in &rec.recipients {
                    inbox.insert(cat(&[r.user.as_str().as_bytes(), &[0], id]).as_slice(), [].as_slice())?;
                }
                n += 1;
            }
            Ok(n)
        })
    }

    /// Every transfer (admin listings).
    pub fn transfers(&self) -> Result<Vec<TransferRecord>, ServerError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(TRANSFERS)?;
        let mut out = vec![];
        for row in t.iter()? {
            out.push(dec(row?.1.value(), "transfer")?);
        }
        Ok(out)
    }

    /// Alerts, newest first; open (unacknowledged) ones only unless `all`.
    pub fn alerts(&self, all: bool) -> Result<Vec<AlertRecord>, ServerError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(ALERTS)?;
        let mut out = vec![];
        for row in t.iter()?.rev() {
            let a: AlertRecord = dec(row?.1.value(), "alert")?;
            if all || a.info.ack.is_none() {
                out.push(a);
            }
        }
        Ok(out)
    }

    /// One alert.
    pub fn alert(&self, id: u64) -> Result<Option<AlertRecord>, ServerError> {
        self.get(ALERTS, &id.to_be_bytes(), "alert")
    }

    /// Acknowledge an alert.
    pub fn ack_alert(&self, id: u64, ack: AlertAck) -> Result<AlertRecord, ServerError> {
        self.write(|tx| {
            let mut t = tx.open_table(ALERTS)?;
            let mut a: AlertRecord = match t.get(id.to_be_bytes().as_slice())? {
                Some(v) => dec(v.value(), "alert")?,
                None => return Err(ServerError::NotFound(format!("alert {id}"))),
            };
            if let Some(prev) = &a.info.ack {
                return Err(ServerError::Conflict(format!("alert {id} was acknowledged by {} already", prev.by)));
            }
            self.audit_tx(tx)?.append(
                Ev::new(ack.at, &ack.by, "alert-ack", a.info.transfer.map_or(format!("alert-{id}"), |t| t.to_string()))
                    .details(format!("alert {id}: {}", ack.note)),
            )?;
            a.info.ack = Some(ack);
            t.insert(id.to_be_bytes().as_slice(), enc(&a).as_slice())?;
            Ok(a)
        })
    }

    /// Undelivered (alert id, notifier) pairs.
    pub fn pending_deliveries(&self) -> Result<Vec<(u64, String)>, ServerError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(PENDING)?;
        let mut out = vec![];
        for row in t.iter()? {
            let (k, _) = row?;
            let k = k.value();
            let id = u64::from_be_bytes(k[..8].try_into().map_err(|_| ServerError::Store("bad pending key".into()))?);
            out.push((id, String::from_utf8_lossy(&k[8..]).into_owned()));
        }
        Ok(out)
    }

    /// Record one delivery attempt: delivered, or failed with a retry time.
    pub fn record_delivery(
        &self,
        id: u64,
        notifier: &str,
        now: u64,
        result: Result<(), String>,
        retry_at: u64,
    ) -> Result<(), ServerError> {
        self.write(|tx| {
            let mut t = tx.open_table(ALERTS)?;
            let mut a: AlertRecord = match t.get(id.to_be_bytes().as_slice())? {
                Some(v) => dec(v.value(), "alert")?,
                None => return Ok(()),
            };
            let key = cat(&[&id.to_be_bytes(), notifier.as_bytes()]);
            if let Some(d) = a.info.deliveries.iter_mut().find(|d| d.notifier == notifier) {
                d.attempts += 1;
                match result {
                    Ok(()) => {
                        d.delivered_at = Some(now);
                        d.next_attempt_at = None;
                        d.last_error = None;
                        tx.open_table(PENDING)?.remove(key.as_slice())?;
                    }
                    Err(e) => {
                        d.last_error = Some(e);
                        d.next_attempt_at = Some(retry_at);
                    }
                }
            }
            t.insert(id.to_be_bytes().as_slice(), enc(&a).as_slice())?;
            Ok(())
        })
    }

    /// A number kept in the meta table.
    pub fn meta_u64(&self, name: &str) -> Result<Option<u64>, ServerError> {
        let tx = self.db.begin_read()?;
        let t = tx.open_table(META)?;
        let v = t.get(name.as_bytes())?;
        Ok(v.and_then(|v| v.value().try_into().ok().map(u64::from_be_bytes)))
    }

    /// Set a number in the meta table.
    pub fn set_meta_u64(&self, name: &str, v: u64) -> Result<(), ServerError> {
        self.write(|tx| {
            tx.open_table(META)?.insert(name.as_bytes(), v.to_be_bytes().as_slice())?;
            Ok(())
        })
    }
}

type Tbl<'t> = redb::Table<'t, &'static [u8], &'static [u8]>;

/// The tables the alert scheduler works on, opened once per transaction.
pub(crate) struct AlertTx<'t> {
    tx: &'t WriteTransaction,
    /// The audit log, for every alert raised and action taken.
    pub(crate) audit: AuditTx<'t>,
    transfers: Tbl<'t>,
    users: Tbl<'t>,
    inbox: Tbl<'t>,
    deadlines: Tbl<'t>,
    alerts: Tbl<'t>,
    keys: Tbl<'t>,
    pending: Tbl<'t>,
    meta: Tbl<'t>,
}

impl<'t> AlertTx<'t> {
    /// Open the tables in `tx`.
    pub(crate) fn open(store: &'t Store, tx: &'t WriteTransaction) -> Result<Self, ServerError> {
        Ok(AlertTx {
            tx,
            audit: store.audit_tx(tx)?,
            transfers: tx.open_table(TRANSFERS)?,
            users: tx.open_table(USERS)?,
            inbox: tx.open_table(INBOX)?,
            deadlines: tx.open_table(DEADLINES)?,
            alerts: tx.open_table(ALERTS)?,
            keys: tx.open_table(ALERT_KEYS)?,
            pending: tx.open_table(PENDING)?,
            meta: tx.open_table(META)?,
        })
    }

    /// Raise an alert unless one with the same `key` exists. Returns the
    /// new alert's id.
    pub(crate) fn raise(
        &mut self,
        key: &[u8],
        mut rec: AlertRecord,
        notifiers: &[&str],
    ) -> Result<Option<u64>, ServerError> {
        if self.keys.get(key)?.is_some() {
            return Ok(None);
        }
        let id = self
            .meta
            .get(b"next_alert_id".as_slice())?
            .and_then(|v| v.value().try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(1);
        self.meta.insert(b"next_alert_id".as_slice(), (id + 1).to_be_bytes().as_slice())?;
        rec.info.id = id;
        rec.info.deliveries = notifiers
            .iter()
            .map(|n| Delivery {
                notifier: (*n).to_owned(),
                attempts: 0,
                delivered_at: None,
                last_error: None,
                next_attempt_at: Some(rec.info.raised_at),
            })
            .collect();
        for n in notifiers {
            self.pending.insert(cat(&[&id.to_be_bytes(), n.as_bytes()]).as_slice(), [].as_slice())?;
        }
        self.alerts.insert(id.to_be_bytes().as_slice(), enc(&rec).as_slice())?;
        self.keys.insert(key, id.to_be_bytes().as_slice())?;
        let subject = rec.info.transfer.map_or(format!("alert-{id}"), |t| t.to_string());
        self.audit.append(
            Ev::new(rec.info.raised_at, "exhibitd", "alert", subject)
                .details(format!("alert {id}: {}", rec.info.message)),
        )?;
        Ok(Some(id))
    }

    /// Take up to `limit` due entries (time ≤ `now`) off the deadline index.
    pub(crate) fn take_due(&mut self, now: u64, limit: usize) -> Result<Vec<(u64, TransferId, Due)>, ServerError> {
        let end = cat(&[&now.to_be_bytes(), &[0xff; 16]]);
        let mut due = vec![];
        for row in self.deadlines.range(..=end.as_slice())?.take(limit) {
            let (k, v) = row?;
            due.push((k.value().to_vec(), dec::<Due>(v.value(), "deadline entry")?));
        }
        let bad = || ServerError::Store("bad deadline key".into());
        let mut out = vec![];
        for (k, d) in due {
            self.deadlines.remove(k.as_slice())?;
            let at = u64::from_be_bytes(k.get(..8).and_then(|b| b.try_into().ok()).ok_or_else(bad)?);
            let id = TransferId(k.get(8..24).and_then(|b| b.try_into().ok()).ok_or_else(bad)?);
            out.push((at, id, d));
        }
        Ok(out)
    }

    /// Retention is over: drop the transfer's chunk references (returning
    /// chunks no transfer uses any more) and mark it expired. Manifest,
    /// receipts and audit stay.
    pub(crate) fn expire(&mut self, transfer: &TransferId, now: u64) -> Result<Vec<ChunkId>, ServerError> {
        let mut rec = match self.transfer(transfer)? {
            Some(r) => r,
            None => return Ok(vec![]),
        };
        let mut tc = self.tx.open_table(TRANSFER_CHUNKS)?;
        let ids = chunk_ids_of(&tc, transfer)?;
        let mut gone = vec![];
        for id in &ids {
            tc.remove(cat(&[transfer.as_bytes(), id.as_bytes()]).as_slice())?;
            if bump_ref(self.tx, id, -1)? == 0 {
                gone.push(*id);
            }
        }
        rec.state = TransferState::Expired;
        rec.ended_at = Some(now);
        self.transfers.insert(transfer.as_bytes().as_slice(), enc(&rec).as_slice())?;
        bump_usage(&mut self.meta, &rec.sender, -(rec.bytes as i64))?;
        self.audit.append(
            Ev::new(now, "exhibitd", "expire", transfer)
                .details(format!("retention over: {} chunks deleted; manifest, receipts and audit kept", ids.len())),
        )?;
        Ok(gone)
    }

    /// Add an entry to the deadline index.
    pub(crate) fn schedule(&mut self, at: u64, transfer: &TransferId, due: Due) -> Result<(), ServerError> {
        self.deadlines.insert(cat(&[&at.to_be_bytes(), transfer.as_bytes()]).as_slice(), enc(&due).as_slice())?;
        Ok(())
    }

    /// A transfer.
    pub(crate) fn transfer(&self, id: &TransferId) -> Result<Option<TransferRecord>, ServerError> {
        let v = self.transfers.get(id.as_bytes().as_slice())?;
        v.map(|v| dec(v.value(), "transfer")).transpose()
    }

    /// A user.
    pub(crate) fn user(&self, id: &UserId) -> Result<Option<UserRecord>, ServerError> {
        let v = self.users.get(id.as_str().as_bytes())?;
        v.map(|v| dec(v.value(), "user")).transpose()
    }

    /// Store a user.
    pub(crate) fn put_user(&mut self, rec: &UserRecord) -> Result<(), ServerError> {
        self.users.insert(rec.user.as_str().as_bytes(), enc(rec).as_slice())?;
        Ok(())
    }

    /// Set a meta number.
    pub(crate) fn set_meta(&mut self, name: &str, v: u64) -> Result<(), ServerError> {
        self.meta.insert(name.as_bytes(), v.to_be_bytes().as_slice())?;
        Ok(())
    }

    /// Transfers addressed to `user`.
    pub(crate) fn inbox(&self, user: &UserId) -> Result<Vec<TransferRecord>, ServerError> {
        let start = cat(&[user.as_str().as_bytes(), &[0]]);
        let end = cat(&[user.as_str().as_bytes(), &[1]]);
        let mut out = vec![];
        for row in self.inbox.range(start.as_slice()..end.as_slice())? {
            let (k, _) = row?;
            if let Some(v) = self.transfers.get(&k.value()[start.len()..])? {
                out.push(dec(v.value(), "transfer")?);
            }
        }
        Ok(out)
    }
}

/// Would `len` more bytes take a transfer past `max_transfer`, or its
/// sender (who has `used` stored) past `quota`? Checked before a chunk is
/// read and again inside the transaction that records it.
pub fn check_limits(
    transfer_bytes: u64,
    used: u64,
    len: u32,
    max_transfer: u64,
    quota: Option<u64>,
) -> Result<(), ServerError> {
    let too_large = |what, got, max| ServerError::Proto(exhibit_proto::ProtoError::TooLarge { what, got, max });
    let after = transfer_bytes + u64::from(len);
    if after > max_transfer {
        return Err(too_large("transfer (max_transfer_size)", after, max_transfer));
    }
    if let Some(q) = quota {
        if used + u64::from(len) > q {
            return Err(too_large("your stored evidence (user_quota)", used + u64::from(len), q));
        }
    }
    Ok(())
}

/// The ids of a transfer's chunks (keys transfer ‖ chunk id).
fn chunk_ids_of(
    t: &impl ReadableTable<&'static [u8], &'static [u8]>,
    transfer: &TransferId,
) -> Result<Vec<ChunkId>, ServerError> {
    let end = cat(&[transfer.as_bytes(), &[0xff; 33]]);
    let mut out = vec![];
    for row in t.range(transfer.as_bytes().as_slice()..end.as_slice())? {
        let (k, _) = row?;
        out.push(ChunkId(k.value()[16..].try_into().map_err(|_| ServerError::Store("bad chunk key".into()))?));
    }
    Ok(out)
}

/// A u64 in the meta table (0 if absent).
fn read_u64(meta: &impl ReadableTable<&'static [u8], &'static [u8]>, key: &[u8]) -> Result<u64, ServerError> {
    let v = meta.get(key)?;
    Ok(v.and_then(|v| v.value().try_into().ok().map(u64::from_be_bytes)).unwrap_or(0))
}

fn usage_key(user: &UserId) -> String {
    format!("usage:{user}")
}

/// Change a user's stored-bytes count in an open meta table.
fn bump_usage(meta: &mut Tbl, user: &UserId, delta: i64) -> Result<(), ServerError> {
    let key = usage_key(user);
    let new = read_u64(meta, key.as_bytes())?.saturating_add_signed(delta);
    meta.insert(key.as_bytes(), new.to_be_bytes().as_slice())?;
    Ok(())
}

/// Change a user's stored-bytes count.
fn add_usage(tx: &WriteTransaction, user: &UserId, delta: i64) -> Result<(), ServerError> {
    bump_usage(&mut tx.open_table(META)?, user, delta)
}

fn bump_ref(tx: &WriteTransaction, id: &ChunkId, delta: i64) -> Result<u64, ServerError> {
    let mut refs = tx.open_table(CHUNK_REFS)?;
    let old = refs
        .get(id.as_bytes().as_slice())?
        .and_then(|v| v.value().try_into().ok().map(u64::from_be_bytes))
        .unwrap_or(0);
    let new = old.saturating_add_signed(delta);
    if new == 0 {
        refs.remove(id.as_bytes().as_slice())?;
    } else {
        refs.insert(id.as_bytes().as_slice(), new.to_be_bytes().as_slice())?;
    }
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;

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
            let store = Store::open(&path).unwrap();
            for (id, manifest) in [(sealed, Some(&m)), (uploading, None)] {
                let rec = store.transfer(&id).unwrap().unwrap();
                let (want, _) = v1(id, manifest.cloned()).split();
                assert_eq!(enc(&rec), enc(&want), "record of {id} changed");
                assert_eq!(store.manifest(&id).unwrap().as_ref(), manifest);
            }
        }
        let db = Database::create(&path).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(META).unwrap().insert(SCHEMA_KEY, 3u64.to_be_bytes().as_slice()).unwrap();
        tx.commit().unwrap();
        drop(db);
        let Err(e) = Store::open(&path) else { panic!("a newer schema was opened") };
        assert!(e.to_string().contains("newer exhibitd"), "{e}");
    }
}
