//! The audit log as a Merkle tree: RFC 9162 (RFC 6962) exactly, with
//! SHA-256, so any transparency-log tool can check its proofs. Leaf `i` is
//! the canonical bytes of audit entry `i + 1` (body and chain hashes), so
//! a tree head also commits to the hash chain the log kept before it had
//! a tree. Leaf hash `SHA-256(0x00 ‖ entry)`, node `SHA-256(0x01 ‖ l ‖ r)`.
//!
//! The server keeps the hash of every complete subtree (level, index):
//! [`appended`] says which to store as a leaf is added, and [`prove`]
//! builds inclusion and consistency proofs from them in O(log n) reads.
//! A [`SignedTreeHead`] (size, root, time) is signed by the log's key;
//! a client that holds one checks the next with [`check_extends`].

use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::audit::AuditEntry;
use crate::error::ProtoError;
use crate::sign;

pub mod cosign;
mod proof;
pub mod prove;
#[cfg(test)]
mod tests;

pub use cosign::{Cosignature, CosignedHead, DOMAIN_COSIGN};
pub use proof::{Proof, MAX_PROOF};
pub use prove::{appended, consistency, inclusion, range_root};

/// Domain of tree heads signed by the log's key.
pub const DOMAIN_TREE_HEAD: &str = "exhibit/tree-head/v1";

/// A 32-byte tree hash.
pub type Hash = [u8; 32];

/// The root of the empty tree: SHA-256 of nothing.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The leaf hash of some bytes.
pub fn leaf(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// An inner node over two subtrees.
pub fn node(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The leaf hash of an audit entry: its canonical bytes, chain hashes
/// included.
pub fn entry_leaf(e: &AuditEntry) -> Hash {
    leaf(&sign::encode(e))
}

/// Largest power of two strictly below `n` (n > 1): where RFC 9162 splits.
pub(crate) fn split(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// A root fed one leaf hash at a time, in memory logarithmic in the count.
#[derive(Clone, Debug, Default)]
pub struct Frontier {
    /// Complete subtrees, largest first: (leaf count, hash).
    stack: Vec<(u64, Hash)>,
    count: u64,
}

impl Frontier {
    /// Append the next leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        self.count += 1;
        self.stack.push((1, leaf));
        while let [.., (a, l), (b, r)] = self.stack[..] {
            if a != b {
                break;
            }
            self.stack.truncate(self.stack.len() - 2);
            self.stack.push((a + b, node(&l, &r)));
        }
    }

    /// Leaves pushed.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The root of the leaves pushed so far.
    pub fn root(&self) -> Hash {
        let mut s = self.stack.iter().rev();
        let Some(&(_, mut acc)) = s.next() else { return empty_root() };
        for (_, left) in s {
            acc = node(left, &acc);
        }
        acc
    }
}

/// Why a proof or a tree head was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The new head has fewer entries than the one held: entries dropped.
    #[error("the log has {got} entries, but this client saw {held} before (rolled back)")]
    Shrunk { held: u64, got: u64 },
    /// A head of the same size with another root: an entry was rewritten.
    #[error("the log's {size} entries hash to {got}, but to {held} when this client saw them (rewritten)")]
    RootDiffers { size: u64, held: String, got: String },
    /// The consistency proof does not lead from the held head to the new.
    #[error("the log at {to} entries does not extend the one this client saw at {from} (rewritten or forked)")]
    Inconsistent { from: u64, to: u64 },
    /// An inclusion proof does not put the entry in the tree.
    #[error("entry {index} is not in the log of {size} entries by this proof")]
    NotIncluded { index: u64, size: u64 },
}

/// Whether `leaf` is leaf `index` of the tree of `size` leaves with
/// `root`, by its inclusion proof (RFC 9162, 2.1.3.2).
pub fn verify_inclusion(root: &Hash, size: u64, index: u64, leaf: &Hash, proof: &[Hash]) -> Result<(), ProofError> {
    let fail = ProofError::NotIncluded { index, size };
    if index >= size {
        return Err(fail);
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return Err(fail);
        }
        if f & 1 == 1 || f == s {
            r = node(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s == 0 && &r == root {
        Ok(())
    } else {
        Err(fail)
    }
}

/// Whether the tree of `size2` leaves with `root2` extends the tree of
/// `size1` leaves with `root1`, by the consistency proof (RFC 9162,
/// 2.1.4.2). Equal sizes need equal roots and an empty proof; every tree
/// extends the empty one.
pub fn verify_consistency(
    size1: u64,
    root1: &Hash,
    size2: u64,
    root2: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    let fail = ProofError::Inconsistent { from: size1, to: size2 };
    if size2 < size1 {
        return Err(ProofError::Shrunk { held: size1, got: size2 });
    }
    if size1 == size2 {
        if root1 != root2 {
            return Err(ProofError::RootDiffers { size: size1, held: hex::encode(root1), got: hex::encode(root2) });
        }
        return if proof.is_empty() { Ok(()) } else { Err(fail) };
    }
    if size1 == 0 {
        return if proof.is_empty() { Ok(()) } else { Err(fail) };
    }
    let mut path = proof.iter();
    let first = if size1.is_power_of_two() { *root1 } else { *path.next().ok_or(fail.clone())? };
    let (mut f, mut s) = (size1 - 1, size2 - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (first, first);
    for c in path {
        if s == 0 {
            return Err(fail);
        }
        if f & 1 == 1 || f == s {
            fr = node(c, &fr);
            sr = node(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if &fr == root1 && &sr == root2 && s == 0 {
        Ok(())
    } else {
        Err(fail)
    }
}

/// The log at a moment: how many entries, their tree's root, and when the
/// server said so.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeHead {
    /// Number of entries (leaves).
    pub size: u64,
    /// The tree's root.
    pub root: Hash,
    /// Server time of signing (unix seconds).
    pub time: u64,
}

/// A tree head signed by the log's key (the authority key, for now).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTreeHead {
    /// Canonical encoding of the [`TreeHead`].
    #[serde(with = "crate::b64")]
    pub bytes: Vec<u8>,
    /// Signature over `bytes` in [`DOMAIN_TREE_HEAD`].
    #[serde(with = "crate::b64")]
    pub signature: Vec<u8>,
}

/// A signed tree head as kept in a file and shown in a report: what it
/// says (the root in hex), beside the bytes and signature that prove the
/// log said it. Clients hold one per deployment; a witness holds the one
/// it cosigned last.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldHead {
    /// Entries in the log.
    pub size: u64,
    /// The tree's root, hex.
    pub root: String,
    /// When the log signed it (unix seconds).
    pub time: u64,
    /// The head as the log signed it.
    pub signed: SignedTreeHead,
}

impl HeldHead {
    /// `signed`, which says `head`.
    pub fn new(head: &TreeHead, signed: &SignedTreeHead) -> HeldHead {
        HeldHead { size: head.size, root: hex::encode(head.root), time: head.time, signed: signed.clone() }
    }
}

impl TreeHead {
    /// Sign with the log's key.
    pub fn sign(&self, key: &SigningKey) -> SignedTreeHead {
        let bytes = sign::encode(self);
        let signature = sign::sign(key, DOMAIN_TREE_HEAD, &bytes);
        SignedTreeHead { bytes, signature }
    }
}

impl SignedTreeHead {
    /// Check the signature and decode.
    pub fn verify(&self, key: &VerifyingKey) -> Result<TreeHead, ProtoError> {
        sign::verify(key, DOMAIN_TREE_HEAD, &self.bytes, &self.signature, "tree head")?;
        sign::decode(&self.bytes, "tree head")
    }
}

/// Whether `new` extends `held` (what a client checks on every contact):
/// never fewer entries, the same root at the same size, otherwise a
/// consistency proof from one to the other.
pub fn check_extends(held: &TreeHead, new: &TreeHead, proof: &[Hash]) -> Result<(), ProofError> {
    verify_consistency(held.size, &held.root, new.size, &new.root, proof)
}

/// An audit entry with its inclusion proof in a signed tree head: carried
/// by a receipt bundle, so an offline check with the CA sees the receipt's
/// acceptance is in the log every client checks heads of.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryProof {
    /// The entry, as logged (body and chain hashes).
    pub entry: AuditEntry,
    /// The head it is proven in.
    pub head: SignedTreeHead,
    /// The inclusion proof of leaf `entry.body.seq - 1` in that head's tree.
    pub proof: Proof,
}

impl EntryProof {
    /// Check the head's signature and that the entry is in its tree; the
    /// head, if so.
    pub fn verify(&self, key: &VerifyingKey) -> Result<TreeHead, ProtoError> {
        let head = self.head.verify(key)?;
        let seq = self.entry.body.seq;
        let bad = |reason: String| ProtoError::Malformed { what: "audit entry proof", reason };
        if self.entry.hash != crate::audit::link(seq, &self.entry.prev_hash, &self.entry.body.hash()) {
            return Err(bad(format!("entry {seq} does not match its own hash")));
        }
        let index = seq.checked_sub(1).ok_or_else(|| bad("entry 0".into()))?;
        verify_inclusion(&head.root, head.size, index, &entry_leaf(&self.entry), self.proof.hashes())
            .map_err(|e| bad(e.to_string()))?;
        Ok(head)
    }
}
