//! The audit log seen from a client: every client keeps the latest signed
//! checkpoint it saw and checks, on its next contact, that the server's log
//! still extends it; admins can download and recompute the whole chain.

use exhibit_proto::audit::{self, AuditEntry, Checkpoint};
use exhibit_proto::frame::{Request, Response};
use serde::{Deserialize, Serialize};

use crate::error::ClientError;
use crate::home::{Home, Profile};
use crate::session::{unexpected, Conn};

const CHECKPOINT_FILE: &str = "audit-checkpoint.json";

/// The checkpoint a client holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// Entries covered.
    pub seq: u64,
    /// Hash of entry `seq`, hex.
    pub head: String,
}

fn load(home: &Home) -> Result<Option<(u64, [u8; 32])>, ClientError> {
    let p = home.dir().join(CHECKPOINT_FILE);
    let bytes = match std::fs::read(&p) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ClientError::Io { context: format!("reading {}", p.display()), source: e }),
    };
    let held: Held =
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Config(format!("{}: {e}", p.display())))?;
    let mut head = [0u8; 32];
    hex::decode_to_slice(&held.head, &mut head)
        .map_err(|_| ClientError::Config(format!("{}: bad hash", p.display())))?;
    Ok(Some((held.seq, head)))
}

fn save(home: &Home, seq: u64, head: &[u8; 32]) -> Result<(), ClientError> {
    // Several commands may run at once: never move the held checkpoint back.
    if load(home)?.is_some_and(|(held, _)| held > seq) {
        return Ok(());
    }
    let held = Held { seq, head: hex::encode(head) };
    let bytes = serde_json::to_vec_pretty(&held).map_err(|e| ClientError::Config(e.to_string()))?;
    let p = home.dir().join(CHECKPOINT_FILE);
    let tmp = home.dir().join(format!(".{CHECKPOINT_FILE}.{:016x}.tmp", rand::random::<u64>()));
    crate::home::write_private(&tmp, &bytes)?;
    std::fs::rename(&tmp, &p).map_err(ClientError::io(format!("writing {}", p.display())))
}

async fn proof(
    conn: &Conn,
    since: Option<u64>,
) -> Result<(exhibit_proto::audit::SignedCheckpoint, Vec<[u8; 32]>), ClientError> {
    match conn.request(&Request::AuditProof { since }).await? {
        Response::AuditProof { checkpoint, body_hashes } => Ok((checkpoint, body_hashes)),
        r => Err(unexpected(&r)),
    }
}

/// Check, on a contact, that the server's log extends what this client
/// saw before: the signed tree head by a consistency proof
/// ([`crate::ops::heads::check`]), and the hash chain's checkpoint (the
/// log's history before it had a tree). Returns the chain's new (seq,
/// head).
pub async fn check(conn: &Conn, home: &Home, p: &Profile) -> Result<(u64, [u8; 32]), ClientError> {
    crate::ops::heads::check(conn, p).await?;
    crate::ops::keylog::check_own(conn, home, p).await?;
    check_chain(conn, home, p).await
}

/// The hash chain's part of [`check`].
async fn check_chain(conn: &Conn, home: &Home, p: &Profile) -> Result<(u64, [u8; 32]), ClientError> {
    let Some(mut held) = load(home)? else {
        let (cp, _) = proof(conn, None).await?;
        let c = cp.verify(&p.log)?;
        save(home, c.seq, &c.head)?;
        return Ok((c.seq, c.head));
    };
    loop {
        let (cp, hashes) = proof(conn, Some(held.0)).await?;
        let c: Checkpoint = cp.verify(&p.log)?;
        if c.seq < held.0 {
            return Err(ClientError::AuditRewritten(format!(
                "the server's log has {} entries, but it showed this client {} before (truncated)",
                c.seq, held.0
            )));
        }
        let extended = audit::extend(held, &hashes);
        if extended != (c.seq, c.head) {
            return Err(ClientError::AuditRewritten(format!(
                "the log at entry {} does not extend the checkpoint this client holds at entry {} (rewritten)",
                c.seq, held.0
            )));
        }
        let done = extended.0 == held.0 || hashes.is_empty();
        held = extended;
        save(home, held.0, &held.1)?;
        if done {
            return Ok(held);
        }
    }
}

/// What `admin audit verify` found.
#[derive(Debug, Serialize)]
pub struct VerifyReport {
    /// Entries checked.
    pub entries: u64,
    /// Signed checkpoints checked.
    pub checkpoints: usize,
    /// Head hash (hex).
    pub head: String,
    /// The Merkle tree's root over the entries checked, recomputed from
    /// them and proven a prefix of the server's signed tree head (hex).
    pub tree_root: String,
    /// Tree heads from other users (`--from-heads`), each proven a prefix
    /// of the log.
    pub other_heads: Vec<OtherHead>,
}

/// A tree head another user held, checked.
#[derive(Debug, Serialize)]
pub struct OtherHead {
    /// The file it came from.
    pub file: std::path::PathBuf,
    /// Entries in the log it signs.
    pub size: u64,
    /// When the server signed it.
    pub time: u64,
}

/// Download the whole log and recompute it: the chain, every stored
/// checkpoint's signature and position, the signed head, that the log
/// extends the checkpoint this client holds, and its Merkle tree: the
/// root recomputed from the entries is proven a prefix of the server's
/// signed tree head, which must extend the head this client holds.
pub async fn verify(home: &Home, from_heads: &[std::path::PathBuf]) -> Result<VerifyReport, ClientError> {
    // Read first: a file that cannot be read is said before the download.
    let mut others = vec![];
    for f in from_heads {
        let text = std::fs::read(f).map_err(ClientError::io(format!("reading {}", f.display())))?;
        let h: crate::ops::heads::HeldHead = serde_json::from_slice(&text).map_err(|e| {
            ClientError::Usage(format!(
                "{}: not a tree head (`exhibit audit heads --json` prints one): {e}",
                f.display()
            ))
        })?;
        others.push((f.clone(), h.signed));
    }
    let p = home.load()?;
    let conn = Conn::open(&p).await?;
    crate::ops::heads::check(&conn, &p).await?;
    let held = load(home)?;
    let mut tree = exhibit_proto::tlog::Frontier::default();
    let (mut at, mut checkpoints, mut from) = ((0u64, [0u8; 32]), 0usize, 1u64);
    let mut hashes_at_held = None;
    let mut target: Option<(exhibit_proto::audit::Checkpoint, Option<[u8; 32]>)> = None;
    loop {
        let (entries, cps, head) = match conn.request(&Request::AuditEntries { from_seq: from, limit: 1000 }).await? {
            Response::AuditEntries { entries, checkpoints, head } => (entries, checkpoints, head),
            r => return Err(unexpected(&r)),
        };
        // The head signed when verification began: the log keeps growing
        // (by our own reads, too) while we read it.
        let (goal, goal_hash) = match &mut target {
            Some(t) => t,
            None => target.insert((head.verify(&p.log)?, None)),
        };
        let chain = |e: audit::ChainError| ClientError::AuditRewritten(e.to_string());
        let mut seen = std::collections::HashMap::new();
        let mut cursor = at;
        for e in &entries {
            cursor = audit::verify_chain(cursor, std::slice::from_ref(e)).map_err(chain)?;
            if e.body.seq <= goal.seq {
                tree.push(exhibit_proto::tlog::entry_leaf(e));
            }
            seen.insert(e.body.seq, e.hash);
            if held.is_some_and(|h| h.0 == e.body.seq) {
                hashes_at_held = Some(e.hash);
            }
            if e.body.seq == goal.seq {
                *goal_hash = Some(e.hash);
            }
        }
        for cp in &cps {
            let c = cp.verify(&p.log)?;
            if seen.get(&c.seq) != Some(&c.head) {
                return Err(ClientError::AuditRewritten(format!(
                    "entry {} differs from the checkpoint the server signed when it was written",
                    c.seq
                )));
            }
            checkpoints += 1;
        }
        at = cursor;
        if entries.is_empty() || at.0 >= goal.seq {
            break;
        }
        from = at.0 + 1;
    }
    if let Some((goal, hash)) = &target {
        if at.0 < goal.seq || (goal.seq > 0 && *hash != Some(goal.head)) {
            return Err(ClientError::AuditRewritten(format!("entry {} differs from the signed head", goal.seq)));
        }
    }
    if let Some((seq, hash)) = held {
        if seq > at.0 {
            return Err(ClientError::AuditRewritten(format!(
                "log has {} entries; this client saw {seq} before (truncated)",
                at.0
            )));
        }
        if seq > 0 && hashes_at_held != Some(hash) {
            return Err(ClientError::AuditRewritten(format!(
                "entry {seq} differs from the checkpoint this client holds (rewritten)"
            )));
        }
    }
    // The tree over exactly the entries checked is a prefix of the tree
    // the server signs heads of.
    let checked = target.as_ref().map_or(0, |(goal, _)| goal.seq);
    let root = tree.root();
    let (signed, proof) = crate::ops::heads::fetch(&conn, Some(checked)).await?;
    let now = signed.verify(&p.log)?;
    exhibit_proto::tlog::verify_consistency(checked, &root, now.size, &now.root, proof.hashes()).map_err(|e| {
        ClientError::AuditRewritten(format!("the entries do not make the tree the server signs heads of: {e}"))
    })?;
    let mut other_heads = vec![];
    for (file, signed) in &others {
        let h = signed.verify(&p.log).map_err(|e| {
            ClientError::Verify(format!(
                "{}: the tree head is not signed by this deployment's log key: {e}",
                file.display()
            ))
        })?;
        let rewritten = |why: String| ClientError::AuditRewritten(format!("{}: {why}", file.display()));
        if h.size > now.size {
            return Err(rewritten(format!(
                "a user held a head of {} entries, and the log now has {}: it was rolled back",
                h.size, now.size
            )));
        }
        let proof = match h.size == 0 || h.size == now.size {
            true => exhibit_proto::tlog::Proof::default(),
            false => match conn.request(&Request::TreeProof { from: h.size, to: now.size }).await? {
                Response::TreeProof { proof } => proof,
                r => return Err(unexpected(&r)),
            },
        };
        exhibit_proto::tlog::verify_consistency(h.size, &h.root, now.size, &now.root, proof.hashes()).map_err(|e| {
            rewritten(format!("the head a user held is not a prefix of this log (forked or rewritten): {e}"))
        })?;
        other_heads.push(OtherHead { file: file.clone(), size: h.size, time: h.time });
    }
    save(home, at.0, &at.1)?;
    conn.close();
    Ok(VerifyReport { entries: at.0, checkpoints, head: hex::encode(at.1), tree_root: hex::encode(root), other_heads })
}

/// Entries from `since` on.
pub async fn export(home: &Home, since: u64) -> Result<Vec<AuditEntry>, ClientError> {
    let p = home.load()?;
    let conn = crate::ops::heads::open(&p).await?;
    let mut out = vec![];
    let mut from = since.max(1);
    let mut end = u64::MAX;
    while from <= end {
        let (entries, head) = match conn.request(&Request::AuditEntries { from_seq: from, limit: 1000 }).await? {
            Response::AuditEntries { entries, head, .. } => (entries, head),
            r => return Err(unexpected(&r)),
        };
        if end == u64::MAX {
            end = head.verify(&p.log)?.seq;
        }
        let Some(last) = entries.last() else { break };
        from = last.body.seq + 1;
        out.extend(entries);
    }
    conn.close();
    Ok(out)
}
