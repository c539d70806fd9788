//! The audit log's hash chain and signed checkpoints.
//!
//! Entry `n` has hash `BLAKE3("exhibit/audit/v1\0" ‖ n ‖ hash(n−1) ‖
//! BLAKE3(body))`, with hash(0) = 0³². A checkpoint {seq, head, time} is
//! signed by the authority. Anyone holding a checkpoint can check that a
//! later one extends it from the body hashes in between; admins can
//! recompute the whole chain from the entries.

use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::error::ProtoError;
use crate::sign;

/// Domain of checkpoints signed by the authority.
pub const DOMAIN_CHECKPOINT: &str = "exhibit/audit-checkpoint/v1";

/// What happened, as stored and hashed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditBody {
    /// Position in the log, from 1.
    pub seq: u64,
    /// Server time.
    pub time: u64,
    /// Who did it (user id, or `exhibitd`).
    pub actor: String,
    /// What (e.g. `seal`, `fetch`, `receipt-accepted`).
    pub action: String,
    /// What it was done to (transfer id, user id, alert id).
    pub subject: String,
    /// Particulars.
    pub details: String,
}

impl AuditBody {
    /// BLAKE3 of the canonical body.
    pub fn hash(&self) -> [u8; 32] {
        *blake3::hash(&sign::encode(self)).as_bytes()
    }
}

/// An entry with its chain hashes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// The body.
    pub body: AuditBody,
    /// Hash of the entry before (zeros for the first).
    pub prev_hash: [u8; 32],
    /// This entry's hash.
    pub hash: [u8; 32],
}

/// Chain one entry onto `prev`.
pub fn link(seq: u64, prev: &[u8; 32], body_hash: &[u8; 32]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(b"exhibit/audit/v1\0");
    h.update(&seq.to_be_bytes());
    h.update(prev);
    h.update(body_hash);
    *h.finalize().as_bytes()
}

impl AuditEntry {
    /// Make the entry that follows `prev`.
    pub fn new(body: AuditBody, prev_hash: [u8; 32]) -> Self {
        let hash = link(body.seq, &prev_hash, &body.hash());
        AuditEntry { body, prev_hash, hash }
    }
}

/// Where the first broken entry is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit log broken at entry {seq}: {reason}")]
pub struct ChainError {
    /// Sequence number of the first bad entry.
    pub seq: u64,
    /// What is wrong.
    pub reason: String,
}

/// Verify consecutive entries starting after (`seq`, `hash`). Returns the
/// new (seq, hash).
pub fn verify_chain(start: (u64, [u8; 32]), entries: &[AuditEntry]) -> Result<(u64, [u8; 32]), ChainError> {
    let (mut seq, mut hash) = start;
    for e in entries {
        let want = seq + 1;
        if e.body.seq != want {
            return Err(ChainError { seq: want, reason: format!("found entry {} where {want} should be", e.body.seq) });
        }
        if e.prev_hash != hash {
            return Err(ChainError { seq: want, reason: "does not link to the entry before".into() });
        }
        if link(want, &hash, &e.body.hash()) != e.hash {
            return Err(ChainError { seq: want, reason: "content does not match its hash".into() });
        }
        seq = want;
        hash = e.hash;
    }
    Ok((seq, hash))
}

/// Extend (`seq`, `hash`) by body hashes of the entries that follow.
pub fn extend(start: (u64, [u8; 32]), body_hashes: &[[u8; 32]]) -> (u64, [u8; 32]) {
    body_hashes.iter().fold(start, |(seq, prev), b| (seq + 1, link(seq + 1, &prev, b)))
}

/// The log's head at a moment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Number of entries.
    pub seq: u64,
    /// Hash of entry `seq` (zeros if none).
    pub head: [u8; 32],
    /// Server time of signing.
    pub time: u64,
}

/// A checkpoint signed by the authority.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedCheckpoint {
    /// Canonical encoding of the [`Checkpoint`].
    #[serde(with = "crate::b64")]
    pub bytes: Vec<u8>,
    /// Authority signature.
    #[serde(with = "crate::b64")]
    pub signature: Vec<u8>,
}

impl Checkpoint {
    /// Sign with the authority key.
    pub fn sign(&self, key: &SigningKey) -> SignedCheckpoint {
        let bytes = sign::encode(self);
        let signature = sign::sign(key, DOMAIN_CHECKPOINT, &bytes);
        SignedCheckpoint { bytes, signature }
    }
}

impl SignedCheckpoint {
    /// Check the signature and decode.
    pub fn verify(&self, authority: &VerifyingKey) -> Result<Checkpoint, ProtoError> {
        sign::verify(authority, DOMAIN_CHECKPOINT, &self.bytes, &self.signature, "audit checkpoint")?;
        sign::decode(&self.bytes, "audit checkpoint")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u64) -> Vec<AuditEntry> {
        let mut prev = [0u8; 32];
        (1..=n)
            .map(|seq| {
                let body = AuditBody {
                    seq,
                    time: seq * 10,
                    actor: "alice".into(),
                    action: "seal".into(),
                    subject: format!("t{seq}"),
                    details: String::new(),
                };
                let e = AuditEntry::new(body, prev);
                prev = e.hash;
                e
            })
            .collect()
    }

    #[test]
    fn any_change_breaks_the_chain_at_that_entry() {
        let c = chain(6);
        assert!(verify_chain((0, [0; 32]), &c).is_ok());
        let mut edited = c.clone();
        edited[3].body.details = "x".into();
        assert_eq!(verify_chain((0, [0; 32]), &edited).unwrap_err().seq, 4);
        let mut deleted = c.clone();
        deleted.remove(2);
        assert_eq!(verify_chain((0, [0; 32]), &deleted).unwrap_err().seq, 3);
        let mut swapped = c.clone();
        swapped.swap(1, 2);
        assert_eq!(verify_chain((0, [0; 32]), &swapped).unwrap_err().seq, 2);
    }

    #[test]
    fn extend_matches_chain_and_checkpoints_verify() {
        let c = chain(5);
        let bodies: Vec<_> = c[2..].iter().map(|e| e.body.hash()).collect();
        assert_eq!(extend((2, c[1].hash), &bodies), (5, c[4].hash));
        let k = SigningKey::from_bytes(&rand::random());
        let cp = Checkpoint { seq: 5, head: c[4].hash, time: 1 }.sign(&k);
        assert_eq!(cp.verify(&k.verifying_key()).unwrap().seq, 5);
        let other = SigningKey::from_bytes(&rand::random());
        assert!(cp.verify(&other.verifying_key()).is_err());
    }
}
