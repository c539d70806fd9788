//! The audit log: appending (the hash chain and signed checkpoints are
//! made here, whatever the backend), reading it in pages, proofs that a
//! held checkpoint is extended, and checking the whole chain.

use exhibit_proto::audit::{AuditBody, AuditEntry, Checkpoint, SignedCheckpoint};
use exhibit_proto::UserId;

use crate::core::records::Ev;
use crate::error::ServerError;
use crate::meta::Tx;
use crate::state::State;

/// A checkpoint is signed and stored every this many entries.
pub const CHECKPOINT_EVERY: u64 = 256;

/// Append an entry inside `tx`; returns its seq.
pub fn append(s: &State, tx: &mut dyn Tx, ev: Ev) -> Result<u64, ServerError> {
    append_signed(s.keys.log(), tx, ev)
}

/// [`append`], with the key that signs checkpoints given.
pub fn append_signed(key: &ed25519_dalek::SigningKey, tx: &mut dyn Tx, ev: Ev) -> Result<u64, ServerError> {
    let (seq, prev) = match tx.audit_last()? {
        Some(e) => (e.body.seq, e.hash),
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
    tx.append_audit(&e)?;
    super::tree::append(tx, &e)?;
    if seq.is_multiple_of(CHECKPOINT_EVERY) {
        let cp = Checkpoint { seq, head: e.hash, time: e.body.time }.sign(key);
        tx.put_checkpoint(seq, &cp)?;
    }
    Ok(seq)
}

/// Append one entry in its own transaction (reads and other actions with
/// no other write).
pub fn record(s: &State, ev: Ev) -> Result<u64, ServerError> {
    super::write(s, |tx| append(s, tx, ev))
}

/// An admin read something: audited.
pub fn admin_read(s: &State, me: &UserId, what: &str, now: u64) -> Result<(), ServerError> {
    record(s, Ev::new(now, me, "admin-read", me).details(format!("read {what}"))).map(drop)
}

/// (seq, hash) of the last entry.
pub fn head(s: &State) -> Result<(u64, [u8; 32]), ServerError> {
    Ok(s.meta.read()?.audit_last()?.map_or((0, [0; 32]), |e| (e.body.seq, e.hash)))
}

/// Entries from `from` (inclusive), at most `limit`, the stored
/// checkpoints among them, and a signed head.
pub fn entries(
    s: &State,
    from: u64,
    limit: usize,
    now: u64,
) -> Result<(Vec<AuditEntry>, Vec<SignedCheckpoint>, SignedCheckpoint), ServerError> {
    let r = s.meta.read()?;
    let entries = r.audit_entries(from, limit)?;
    let checkpoints = match (entries.first(), entries.last()) {
        (Some(a), Some(b)) => r.checkpoints(a.body.seq, b.body.seq)?,
        _ => vec![],
    };
    let (seq, head) = r.audit_last()?.map_or((0, [0; 32]), |e| (e.body.seq, e.hash));
    Ok((entries, checkpoints, Checkpoint { seq, head, time: now }.sign(s.keys.log())))
}

/// A signed checkpoint at the head and the body hashes of the entries after
/// `since` leading to it (at most `limit`; the checkpoint is then at the
/// last of them).
pub fn proof(
    s: &State,
    since: Option<u64>,
    limit: usize,
    now: u64,
) -> Result<(Vec<[u8; 32]>, SignedCheckpoint), ServerError> {
    let r = s.meta.read()?;
    let (head_seq, head) = r.audit_last()?.map_or((0, [0; 32]), |e| (e.body.seq, e.hash));
    let (hashes, seq, hash) = match since {
        Some(n) if n < head_seq => {
            let entries = r.audit_entries(n + 1, limit)?;
            match entries.last() {
                Some(last) => {
                    let (seq, hash) = (last.body.seq, last.hash);
                    (entries.iter().map(|e| e.body.hash()).collect(), seq, hash)
                }
                None => (vec![], n, r.audit_entry(n)?.map_or([0; 32], |e| e.hash)),
            }
        }
        _ => (vec![], head_seq, head),
    };
    Ok((hashes, Checkpoint { seq, head: hash, time: now }.sign(s.keys.log())))
}

/// Recompute the whole chain from the store and check every signed
/// checkpoint against the authority key. `Ok(summary)` or `Err(first
/// problem)`.
pub fn verify(s: &State) -> Result<String, String> {
    const PAGE: usize = 1000;
    let authority = s.keys.ca();
    // The log grows while we read it (by our own reads, too): check up to
    // the head as it was when we began.
    let head = head(s).map_err(|e| e.to_string())?;
    let mut at = (0u64, [0u8; 32]);
    let mut checkpoints = 0usize;
    let mut tree = exhibit_proto::tlog::Frontier::default();
    while at.0 < head.0 {
        let (mut entries, cps, _) = entries(s, at.0 + 1, PAGE, 0).map_err(|e| e.to_string())?;
        entries.retain(|e| e.body.seq <= head.0);
        if entries.is_empty() {
            break;
        }
        at = exhibit_proto::audit::verify_chain(at, &entries).map_err(|e| format!("entry {}: {}", e.seq, e.reason))?;
        entries.iter().for_each(|e| tree.push(exhibit_proto::tlog::entry_leaf(e)));
        for cp in &cps {
            let c = cp.verify(&authority).map_err(|e| format!("checkpoint signature: {e}"))?;
            let Some(e) = entries.iter().find(|e| e.body.seq == c.seq) else { continue };
            if e.hash != c.head {
                return Err(format!("entry {} differs from the checkpoint signed when it was written", c.seq));
            }
            checkpoints += 1;
        }
    }
    if at != head {
        return Err(format!("the chain ends at entry {} but the log's last entry is {}", at.0, head.0));
    }
    // The Merkle tree the signed tree heads come from covers these very
    // entries: recomputed from them, its root is the stored one.
    let stored = {
        let r = s.meta.read().map_err(|e| e.to_string())?;
        let size = super::tree::size(&*r).map_err(|e| e.to_string())?;
        if size < at.0 {
            return Err(format!("the audit tree covers {size} entries, the log {}", at.0));
        }
        super::tree::root(&*r, at.0).map_err(|e| e.to_string())?
    };
    if stored != tree.root() {
        return Err(format!(
            "the audit tree over {} entries differs from the entries themselves (an entry was changed after it was logged)",
            at.0
        ));
    }
    Ok(format!(
        "{} entries, {checkpoints} signed checkpoints, chain intact, tree root {}, head {}",
        at.0,
        hex::encode(stored),
        hex::encode(at.1)
    ))
}
