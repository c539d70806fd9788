//! Writes: the `Tx` half of the redb backend.

use exhibit_proto::audit::{AuditEntry, SignedCheckpoint};
use exhibit_proto::{AcceptedReceipt, ChunkId, SignedManifest, TransferId, UserId};
use redb::WriteTransaction;

use super::*;
use crate::core::records::{
    AlertRecord, CodeRecord, DashboardLogin, Due, OrgRecord, TransferRecord, UnitRecord, UserRecord,
};
use crate::error::ServerError;
use crate::meta::{Mailbox, Read, Result, Tx};

impl Tx for View<WriteTransaction> {
    fn put_user(&mut self, rec: &UserRecord) -> Result<()> {
        self.0.t(USERS)?.insert(rec.user.as_str().as_bytes(), enc(rec).as_slice())?;
        Ok(())
    }

    fn put_org(&mut self, rec: &OrgRecord) -> Result<()> {
        self.0.t(ORGS)?.insert(rec.org.id.as_str().as_bytes(), enc(rec).as_slice())?;
        Ok(())
    }

    fn put_case(&mut self, case: &CaseInfo) -> Result<()> {
        self.0.t(CASES)?.insert(case.case.as_bytes(), enc(case).as_slice())?;
        Ok(())
    }

    fn put_unit(&mut self, rec: &UnitRecord) -> Result<()> {
        self.0.t(UNITS)?.insert(rec.unit.unit.as_str().as_bytes(), enc(rec).as_slice())?;
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

    fn put_dashboard_session(&mut self, hash: &[u8; 32], login: &DashboardLogin) -> Result<()> {
        self.0.t(DASHBOARD_SESSIONS)?.insert(hash.as_slice(), enc(login).as_slice())?;
        Ok(())
    }

    fn remove_dashboard_session(&mut self, hash: &[u8; 32]) -> Result<()> {
        self.0.t(DASHBOARD_SESSIONS)?.remove(hash.as_slice())?;
        Ok(())
    }

    fn put_dashboard_link(&mut self, hash: &[u8; 32], login: &DashboardLogin) -> Result<()> {
        self.0.t(DASHBOARD_LINKS)?.insert(hash.as_slice(), enc(login).as_slice())?;
        Ok(())
    }

    fn take_dashboard_link(&mut self, hash: &[u8; 32]) -> Result<Option<DashboardLogin>> {
        // redb has one writer at a time: the remove and its answer are one
        // step for every other transaction.
        let old = self.0.t(DASHBOARD_LINKS)?.remove(hash.as_slice())?.map(|v| v.value().to_vec());
        old.map(|v| dec(&v, "dashboard link")).transpose()
    }

    fn sweep_dashboard(&mut self, now: u64) -> Result<usize> {
        let mut gone = 0;
        for table in [DASHBOARD_SESSIONS, DASHBOARD_LINKS] {
            let mut t = self.0.t(table)?;
            let mut expired = vec![];
            // A small table: the logins of the last few hours.
            for row in t.iter()? {
                let (k, v) = row?;
                if dec::<DashboardLogin>(v.value(), "dashboard login")?.expires_at <= now {
                    expired.push(k.value().to_vec());
                }
            }
            for k in &expired {
                t.remove(k.as_slice())?;
            }
            gone += expired.len();
        }
        Ok(gone)
    }

    fn put_cosigned_head(&mut self, witness: &[u8; 32], head: &exhibit_proto::tlog::CosignedHead) -> Result<()> {
        self.0.t(WITNESS_HEADS)?.insert(witness.as_slice(), enc(head).as_slice())?;
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

    fn put_tree_node(&mut self, level: u8, index: u64, hash: &[u8; 32]) -> Result<()> {
        self.0.t(AUDIT_TREE)?.insert(tree_key(level, index).as_slice(), hash.as_slice())?;
        Ok(())
    }

    fn commit(self: Box<Self>) -> Result<()> {
        self.0.commit()?;
        Ok(())
    }
}
