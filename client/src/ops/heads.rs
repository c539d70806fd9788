//! The audit log's signed tree head this client holds, per deployment (in
//! its key directory), and the check made on every contact: the server's
//! new head must extend it by a consistency proof. A server that rolled
//! its log back, rewrote an entry or shows this client another log than
//! before fails the check; the client then refuses to go on and writes a
//! fork report (both signed heads) beside its keys. The held head is kept
//! as it was, so every later contact refuses too.

use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;
use exhibit_proto::frame::{ErrorCode, Request, Response};
use exhibit_proto::tlog::{self, Proof, SignedTreeHead, TreeHead};
use exhibit_proto::TransferId;
use serde::Serialize;

use crate::error::ClientError;
use crate::home::{Home, Profile};
use crate::ops::witness::{self, FinalHead};
use crate::session::{now, unexpected, Conn};

/// The held head, in the key directory.
pub const HEAD_FILE: &str = "tree-head.json";

/// A signed tree head as kept and reported.
pub use exhibit_proto::tlog::HeldHead;

/// Evidence of a fork: the head this client held, the one the server
/// showed next, the proof it gave, and what is wrong.
#[derive(Debug, Serialize)]
pub struct ForkReport {
    /// What this file is.
    pub kind: &'static str,
    /// When the client found it (unix seconds).
    pub detected_at: u64,
    /// The server's address.
    pub server: String,
    /// This client's user.
    pub user: String,
    /// What the check found.
    pub reason: String,
    /// The head held, signed by the server earlier.
    pub held: HeldHead,
    /// Who showed the other head: the server, or the manifest or receipt
    /// of another party that carried it.
    pub presented_by: String,
    /// The other head, signed by the server.
    pub presented: HeldHead,
    /// The consistency proof it gave (hex).
    pub proof: Vec<String>,
}

/// The head held in key directory `dir`, checked against the authority
/// key.
pub fn held(dir: &Path, authority: &VerifyingKey) -> Result<Option<(TreeHead, SignedTreeHead)>, ClientError> {
    let p = dir.join(HEAD_FILE);
    let bytes = match std::fs::read(&p) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ClientError::Io { context: format!("reading {}", p.display()), source: e }),
    };
    let h: HeldHead =
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Config(format!("{}: {e}", p.display())))?;
    let head = h.signed.verify(authority)?;
    Ok(Some((head, h.signed)))
}

/// The held head as stored, unchecked (for `exhibit audit heads`).
pub fn stored(home: &Home) -> Result<Option<HeldHead>, ClientError> {
    let p = home.dir().join(HEAD_FILE);
    match std::fs::read(&p) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| ClientError::Config(format!("{}: {e}", p.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ClientError::Io { context: format!("reading {}", p.display()), source: e }),
    }
}

pub(crate) fn write_json(dir: &Path, name: &str, value: &impl Serialize) -> Result<PathBuf, ClientError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| ClientError::Config(e.to_string()))?;
    let p = dir.join(name);
    let tmp = dir.join(format!(".{name}.{:016x}.tmp", rand::random::<u64>()));
    crate::home::write_private(&tmp, &bytes)?;
    std::fs::rename(&tmp, &p).map_err(ClientError::io(format!("writing {}", p.display())))?;
    Ok(p)
}

/// The server's head now and the proof from `since` to it.
pub async fn fetch(conn: &Conn, since: Option<u64>) -> Result<(SignedTreeHead, Proof), ClientError> {
    match conn.request(&Request::TreeHead { since }).await? {
        Response::TreeHead { head, proof } => Ok((head, proof)),
        r => Err(unexpected(&r)),
    }
}

/// Connect as `p`, the server's tree head checked first: every contact
/// begins with it (commands that also check the chain's checkpoint do
/// both through `ops::audit::check`).
pub async fn open(p: &Profile) -> Result<Conn, ClientError> {
    let conn = Conn::open(p).await?;
    if let Err(e) = check(&conn, p).await {
        conn.close();
        return Err(e);
    }
    Ok(conn)
}

/// What a contact found: the head held before (if any) and the new one.
#[derive(Debug)]
pub struct Checked {
    /// The head held before this contact.
    pub before: Option<TreeHead>,
    /// The head held now (none from a server too old to sign heads, met
    /// before this client held one).
    pub now: Option<TreeHead>,
    /// The latest head a witness this client trusts has cosigned (none
    /// when no witness is trusted, or none has cosigned yet).
    pub final_head: Option<FinalHead>,
}

/// Check that the server's log extends the head this client holds (in
/// its key directory), then hold the new one. A head that does not: the
/// fork report is written and [`ClientError::LogForked`] returned. Made
/// on every contact, and again after a state-changing request (a seal, a
/// receipt), so the head held covers this client's own last action.
pub async fn check(conn: &Conn, p: &Profile) -> Result<Checked, ClientError> {
    let held = held(&p.dir, &p.log)?;
    let (signed, proof) = match fetch(conn, held.as_ref().map(|(h, _)| h.size)).await {
        // An exhibitd from before tree heads does not know the request.
        // Only a client that never held a head lets that pass: one that
        // did has been shown this server signs them.
        Err(ClientError::Server { code: ErrorCode::BadRequest, message }) if held.is_none() => {
            tracing::warn!(%message, "the server signs no tree heads (an older exhibitd): its audit log is checked by the chain's checkpoint only");
            return Ok(Checked { before: None, now: None, final_head: None });
        }
        other => other?,
    };
    let new = signed.verify(&p.log)?;
    if let Some((h, hs)) = &held {
        if let Err(e) = tlog::check_extends(h, &new, proof.hashes()) {
            return Err(fork(p, (h, hs), ("the server", &new, &signed), &proof, e.to_string())?);
        }
    }
    // Several commands may run at once: never replace a larger head (nor
    // rewrite an equal one).
    let on_disk = self::held(&p.dir, &p.log)?;
    if on_disk.as_ref().is_none_or(|(h, _)| h.size < new.size) {
        write_json(&p.dir, HEAD_FILE, &HeldHead::new(&new, &signed))?;
    }
    let final_head = cosigned(conn, p).await?;
    Ok(Checked { before: held.map(|(h, _)| h), now: Some(new), final_head })
}

/// With witnesses trusted (`exhibit audit witness add`): the heads the
/// server says they cosigned, each checked (the log's signature, the
/// cosignature by a key this client trusts, and consistency with the head
/// held, by [`meet`]), and the latest kept as final. A cosignature by a
/// key not trusted here is ignored; one that does not verify is ignored
/// with a warning. A cosigned head the held head does not extend, or that
/// does not extend it, is a fork: the report is written and
/// [`ClientError::LogForked`] returned. No witness trusted: no request.
pub async fn cosigned(conn: &Conn, p: &Profile) -> Result<Option<FinalHead>, ClientError> {
    let trusted = witness::trusted(&p.dir)?;
    if trusted.is_empty() {
        return Ok(None);
    }
    let mut best = witness::final_in(&p.dir, &p.log)?;
    let heads = match conn.request(&Request::CosignedHeads).await {
        Ok(Response::CosignedHeads { heads }) => heads,
        Ok(r) => return Err(unexpected(&r)),
        Err(ClientError::Server { code: ErrorCode::BadRequest, message }) => {
            tracing::warn!(%message, "the server keeps no cosigned heads (an older exhibitd): no new head is final");
            return Ok(best.map(|(_, f)| f));
        }
        Err(e) => return Err(e),
    };
    let mut changed = false;
    // One head per trusted witness: a server repeating one is not asked
    // for a proof each time.
    let mut seen = vec![];
    for h in &heads {
        let Some((name, key)) = trusted.iter().find(|(_, k)| h.cosignature.by(k)) else { continue };
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        let head = match h.verify(&p.log, key) {
            Ok(head) => head,
            Err(e) => {
                tracing::warn!(witness = %name, error = %e, "a cosigned head that does not check was not accepted");
                continue;
            }
        };
        meet(conn, p, &h.head, &format!("the head cosigned by witness {name}")).await?;
        let same = best.as_ref().is_some_and(|(b, _)| b.size == head.size && b.root == head.root);
        let larger = best.as_ref().is_some_and(|(b, _)| b.size >= head.size);
        if let Some((_, f)) = best.as_mut().filter(|_| same) {
            // Another witness cosigned the same head.
            if !f.witnesses.contains(name) {
                f.witnesses.push(name.clone());
                f.cosignatures.push(h.cosignature.clone());
                changed = true;
            }
        } else if !larger {
            let mut f = FinalHead::new(&head, &h.head);
            f.witnesses.push(name.clone());
            f.cosignatures.push(h.cosignature.clone());
            best = Some((head, f));
            changed = true;
        }
    }
    if let Some((b, f)) = best.as_ref().filter(|_| changed) {
        // Several commands may run at once: never replace a larger one.
        let on_disk = witness::final_in(&p.dir, &p.log)?;
        if on_disk.as_ref().is_none_or(|(h, _)| h.size <= b.size) {
            witness::write_json(&p.dir, witness::FINAL_FILE, f)?;
        }
    }
    Ok(best.map(|(_, f)| f))
}

/// Check a tree head met in another party's evidence (a manifest's
/// sender, a receipt's recipient) against the one this client holds: one
/// must extend the other, by a proof the server gives. A server that
/// showed the two parties different logs cannot give one: the fork report
/// is written and [`ClientError::LogForked`] returned.
pub async fn meet(conn: &Conn, p: &Profile, theirs: &SignedTreeHead, whose: &str) -> Result<(), ClientError> {
    let other = theirs
        .verify(&p.log)
        .map_err(|e| ClientError::Verify(format!("the tree head in {whose} is not the server's: {e}")))?;
    let Some((mine, mine_signed)) = held(&p.dir, &p.log)? else { return Ok(()) };
    let (small, large) = if other.size <= mine.size { (&other, &mine) } else { (&mine, &other) };
    let proof = if small.size == 0 || small.size == large.size {
        Proof::default()
    } else {
        match conn.request(&Request::TreeProof { from: small.size, to: large.size }).await {
            Ok(Response::TreeProof { proof }) => proof,
            Ok(r) => return Err(unexpected(&r)),
            // The other party saw a longer log than the server now holds.
            Err(ClientError::Server { code: ErrorCode::BadRequest, message }) if large.size == other.size => {
                let reason = format!(
                    "{whose} carries a log of {} entries that the server cannot prove (rolled back?): {message}",
                    other.size
                );
                return Err(fork(p, (&mine, &mine_signed), (whose, &other, theirs), &Proof::default(), reason)?);
            }
            Err(e) => return Err(e),
        }
    };
    match tlog::verify_consistency(small.size, &small.root, large.size, &large.root, proof.hashes()) {
        Ok(()) => Ok(()),
        Err(e) => {
            let reason = format!("the log in {whose} and the one this client saw disagree: {e}");
            Err(fork(p, (&mine, &mine_signed), (whose, &other, theirs), &proof, reason)?)
        }
    }
}

/// The tree heads a transfer's manifest and receipts carry, with whose
/// they are.
pub fn in_evidence(
    transfer: TransferId,
    vm: Option<&exhibit_proto::VerifiedManifest>,
    receipts: &[exhibit_proto::AcceptedReceipt],
) -> Vec<(String, exhibit_proto::tlog::SignedTreeHead)> {
    let mut met = vec![];
    if let Some((m, h)) = vm.and_then(|vm| vm.manifest().log_head.as_ref().map(|h| (vm.manifest(), h))) {
        met.push((format!("the manifest of {transfer} from {}", m.sender), h.clone()));
    }
    for a in receipts {
        if let Ok(exhibit_proto::Receipt { recipient, log_head: Some(h), .. }) =
            exhibit_proto::Receipt::from_bytes(&a.receipt.bytes)
        {
            met.push((format!("the receipt of {transfer} from {recipient}"), h));
        }
    }
    met
}

/// The audit entry that accepted `recipient`'s receipt for `transfer`,
/// proven in a signed tree head that is checked against the one held (a
/// receipt bundle carries it). `None` from a server too old to give it.
pub async fn receipt_entry(
    conn: &Conn,
    p: &Profile,
    transfer: TransferId,
    recipient: &exhibit_proto::UserId,
) -> Result<Option<tlog::EntryProof>, ClientError> {
    let log = match conn.request(&Request::ReceiptEntry { transfer, recipient: recipient.clone() }).await {
        Ok(Response::ReceiptEntry { log }) => log,
        Ok(r) => return Err(unexpected(&r)),
        Err(ClientError::Server { code: ErrorCode::BadRequest, .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    log.verify(&p.log)?;
    meet(conn, p, &log.head, &format!("the proof of {recipient}'s receipt for {transfer}")).await?;
    Ok(Some(log))
}

/// The heads met in the evidence checked, and each receipt's acceptance
/// entry with its inclusion proof (for the bundles), by recipient.
pub async fn check_evidence(
    conn: &Conn,
    p: &Profile,
    transfer: TransferId,
    met: &[(String, exhibit_proto::tlog::SignedTreeHead)],
    receipts: &[exhibit_proto::AcceptedReceipt],
) -> Result<Vec<(exhibit_proto::UserId, exhibit_proto::tlog::EntryProof)>, ClientError> {
    for (whose, head) in met {
        meet(conn, p, head, whose).await?;
    }
    let mut out = vec![];
    for a in receipts {
        let recipient = exhibit_proto::Receipt::from_bytes(&a.receipt.bytes)?.recipient;
        if let Some(log) = receipt_entry(conn, p, transfer, &recipient).await? {
            out.push((recipient, log));
        }
    }
    Ok(out)
}

/// Write the fork report and make the error that names it.
fn fork(
    p: &Profile,
    held: (&TreeHead, &SignedTreeHead),
    new: (&str, &TreeHead, &SignedTreeHead),
    proof: &Proof,
    why: String,
) -> Result<ClientError, ClientError> {
    let at = now();
    let report = ForkReport {
        kind: "exhibit audit log fork report",
        detected_at: at,
        server: p.config.server.clone(),
        user: p.me.user.to_string(),
        reason: why.clone(),
        held: HeldHead::new(held.0, held.1),
        presented_by: new.0.to_owned(),
        presented: HeldHead::new(new.1, new.2),
        proof: proof.hashes().iter().map(hex::encode).collect(),
    };
    let name = format!("fork-report-{at}-{:08x}.json", rand::random::<u32>());
    let path = write_json(&p.dir, &name, &report)?;
    tracing::error!(report = %path.display(), "the server's audit log does not extend the one it showed this client before");
    Ok(ClientError::LogForked { reason: why, report: path })
}
