//! The audit log's Merkle tree (`exhibit_proto::tlog`, RFC 9162 with
//! SHA-256) kept in the store as complete subtrees: grown by every entry
//! in the entry's own transaction, built over the entries of a log older
//! than the tree as the server starts, and read for signed tree heads and
//! proofs (O(log n) node reads each, never a rescan).

use ed25519_dalek::SigningKey;
use exhibit_proto::audit::AuditEntry;
use exhibit_proto::tlog::{self, Hash, Proof, SignedTreeHead, TreeHead};

use crate::error::ServerError;
use crate::meta::{MetaStore, Read, Tx};

/// The counter holding how many entries the tree covers.
pub const TREE_SIZE: &str = "audit-tree-size";

/// Entries read per page (and, at start, per transaction) when the tree
/// is built over older entries.
const BUILD_PAGE: u64 = 10_000;

/// Reads stored subtrees; a missing one is a damaged store.
fn nodes<R: Read + ?Sized>(r: &R) -> impl FnMut(u8, u64) -> Result<Hash, ServerError> + '_ {
    move |level, index| {
        r.tree_node(level, index)?
            .ok_or_else(|| ServerError::Store(format!("audit tree: subtree ({level}, {index}) missing")))
    }
}

/// How many entries the tree covers.
pub fn size<R: Read + ?Sized>(r: &R) -> Result<u64, ServerError> {
    Ok(r.counter(TREE_SIZE)?.unwrap_or(0))
}

/// Add leaf number `size` (from 0).
fn push(tx: &mut dyn Tx, size: u64, leaf: Hash) -> Result<(), ServerError> {
    let add = tlog::appended(size, leaf, &mut nodes(&*tx))?;
    for (level, index, hash) in add {
        tx.put_tree_node(level, index, &hash)?;
    }
    Ok(())
}

/// Make the tree cover exactly entries `1..=to`, keeping what it holds of
/// `1..=from` (a tree longer than the log is cut back: the store lost
/// entries, and every client that saw more will say so).
fn build(tx: &mut dyn Tx, from: u64, to: u64) -> Result<(), ServerError> {
    let mut at = from;
    while at < to {
        let entries = tx.audit_entries(at + 1, (to - at).min(BUILD_PAGE) as usize)?;
        if entries.is_empty() {
            return Err(ServerError::Store(format!("audit entry {} missing", at + 1)));
        }
        for e in entries.iter().take_while(|e| e.body.seq <= to) {
            if e.body.seq != at + 1 {
                return Err(ServerError::Store(format!("audit entry {} missing", at + 1)));
            }
            push(tx, at, tlog::entry_leaf(e))?;
            at += 1;
        }
    }
    tx.set_counter(TREE_SIZE, to)
}

/// Add entry `e` (just appended in `tx`) to the tree, catching the tree up
/// with the entries before it first if it is behind.
pub fn append(tx: &mut dyn Tx, e: &AuditEntry) -> Result<(), ServerError> {
    let before = e.body.seq.saturating_sub(1);
    let size = size(&*tx)?;
    if size != before {
        build(tx, size.min(before), before)?;
    }
    push(tx, before, tlog::entry_leaf(e))?;
    tx.set_counter(TREE_SIZE, before + 1)
}

/// At start: bring the tree to the log's last entry, one page per
/// transaction (a log older than the tree gets its tree here; the old
/// chain and checkpoints stay as they were). Returns (leaves before,
/// leaves now).
pub fn catch_up(meta: &dyn MetaStore) -> Result<(u64, u64), ServerError> {
    let first = size(&*meta.read()?)?;
    loop {
        let mut tx = meta.write()?;
        let last = tx.audit_last()?.map_or(0, |e| e.body.seq);
        let size = size(&*tx)?;
        if size == last {
            return Ok((first, size));
        }
        if size > last {
            tracing::warn!(tree = size, log = last, "the audit tree covers more entries than the log holds: entries were lost or removed; clients that saw the longer log will report a fork");
        }
        let from = size.min(last);
        build(tx.as_mut(), from, last.min(from + BUILD_PAGE))?;
        tx.commit()?;
    }
}

/// The root of the tree's first `size` leaves.
pub fn root<R: Read + ?Sized>(r: &R, size: u64) -> Result<Hash, ServerError> {
    tlog::range_root(0, size, &mut nodes(r))
}

/// The tree head now, signed with `key`.
pub fn head<R: Read + ?Sized>(r: &R, key: &SigningKey, now: u64) -> Result<(TreeHead, SignedTreeHead), ServerError> {
    let size = size(r)?;
    let head = TreeHead { size, root: root(r, size)?, time: now };
    let signed = head.sign(key);
    Ok((head, signed))
}

/// `entry` with its inclusion proof in the tree head now, signed with
/// `key`: what a receipt bundle or a keys check carries.
pub fn proven<R: Read + ?Sized>(
    r: &R,
    key: &SigningKey,
    entry: AuditEntry,
    now: u64,
) -> Result<tlog::EntryProof, ServerError> {
    let (head, signed) = head(r, key, now)?;
    let proof = inclusion(r, entry.body.seq, head.size)?;
    Ok(tlog::EntryProof { entry, head: signed, proof })
}

/// The consistency proof from the tree of `from` entries to that of `to`
/// (empty unless `0 < from < to`).
pub fn consistency<R: Read + ?Sized>(r: &R, from: u64, to: u64) -> Result<Proof, ServerError> {
    let hashes = tlog::consistency(from, to, &mut nodes(r))?;
    Proof::new(hashes).ok_or_else(|| ServerError::Store("audit tree: consistency proof over its bound".into()))
}

/// The inclusion proof of entry `seq` (from 1) in the tree of `size`
/// entries.
pub fn inclusion<R: Read + ?Sized>(r: &R, seq: u64, size: u64) -> Result<Proof, ServerError> {
    let hashes = tlog::inclusion(seq.saturating_sub(1), size, &mut nodes(r))?;
    Proof::new(hashes).ok_or_else(|| ServerError::Store("audit tree: inclusion proof over its bound".into()))
}

/// The consistency proof from the tree of `from` entries to that of `to`,
/// both within the log as it is now.
pub fn proof_between(meta: &dyn MetaStore, from: u64, to: u64) -> Result<Proof, ServerError> {
    let r = meta.read()?;
    let size = size(&*r)?;
    if from > to || to > size {
        return Err(ServerError::BadRequest(format!(
            "no consistency proof from {from} to {to} entries: the log has {size}"
        )));
    }
    consistency(&*r, from, to)
}

/// A signed head and the consistency proof to it from the tree of
/// `since` entries (what a client holds), in one consistent view.
pub fn head_since(
    meta: &dyn MetaStore,
    key: &SigningKey,
    since: Option<u64>,
    now: u64,
) -> Result<(SignedTreeHead, Proof), ServerError> {
    let r = meta.read()?;
    let (head, signed) = head(&*r, key, now)?;
    let proof = match since {
        Some(from) => consistency(&*r, from, head.size)?,
        None => Proof::default(),
    };
    Ok((signed, proof))
}

#[cfg(test)]
mod tests {
    use exhibit_proto::audit::{AuditBody, AuditEntry};
    use exhibit_proto::tlog::{self, Frontier};

    use super::*;

    fn entry(seq: u64, prev: [u8; 32], what: &str) -> AuditEntry {
        let body = AuditBody {
            seq,
            time: seq,
            actor: "alice".into(),
            action: what.into(),
            subject: "t".into(),
            details: String::new(),
        };
        AuditEntry::new(body, prev)
    }

    /// Entries `from..=to` appended as a build before the tree did (no
    /// tree nodes), or with them.
    fn log(meta: &dyn MetaStore, from: u64, to: u64, what: &str, with_tree: bool) -> Vec<AuditEntry> {
        let mut tx = meta.write().unwrap();
        let mut prev = tx.audit_last().unwrap().map_or([0; 32], |e| e.hash);
        let mut out = vec![];
        for seq in from..=to {
            let e = entry(seq, prev, what);
            prev = e.hash;
            tx.append_audit(&e).unwrap();
            if with_tree {
                append(tx.as_mut(), &e).unwrap();
            }
            out.push(e);
        }
        tx.commit().unwrap();
        out
    }

    fn root_of(entries: &[AuditEntry]) -> Hash {
        let mut f = Frontier::default();
        entries.iter().for_each(|e| f.push(tlog::entry_leaf(e)));
        f.root()
    }

    #[test]
    fn an_old_log_gets_its_tree_at_start_and_grows_it_consistently() {
        let dir = tempfile::tempdir().unwrap();
        let meta = crate::meta::open(&dir.path().join("meta.redb")).unwrap();
        let old = log(meta.as_ref(), 1, 23_456, "old", false);
        assert_eq!(size(&*meta.read().unwrap()).unwrap(), 0);
        assert_eq!(catch_up(meta.as_ref()).unwrap(), (0, 23_456));
        assert_eq!(catch_up(meta.as_ref()).unwrap(), (23_456, 23_456), "built once");
        let r = meta.read().unwrap();
        let held = root(&*r, 23_456).unwrap();
        assert_eq!(held, root_of(&old));
        drop(r);
        let mut all = old;
        all.extend(log(meta.as_ref(), 23_457, 23_500, "new", true));
        let r = meta.read().unwrap();
        assert_eq!(root(&*r, 23_500).unwrap(), root_of(&all));
        let p = consistency(&*r, 23_456, 23_500).unwrap();
        assert_eq!(tlog::verify_consistency(23_456, &held, 23_500, &root_of(&all), p.hashes()), Ok(()));
        let i = inclusion(&*r, 777, 23_500).unwrap();
        assert_eq!(
            tlog::verify_inclusion(&root_of(&all), 23_500, 776, &tlog::entry_leaf(&all[776]), i.hashes()),
            Ok(())
        );
    }

    #[test]
    fn an_append_catches_a_tree_that_is_behind_up_first() {
        let dir = tempfile::tempdir().unwrap();
        let meta = crate::meta::open(&dir.path().join("meta.redb")).unwrap();
        let mut all = log(meta.as_ref(), 1, 10, "old", false);
        all.extend(log(meta.as_ref(), 11, 12, "new", true));
        assert_eq!(root(&*meta.read().unwrap(), 12).unwrap(), root_of(&all));
    }
}
