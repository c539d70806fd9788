//! A witness's cosignature of a signed tree head: a second organisation,
//! holding its own Ed25519 key, has checked that the head extends every
//! head it cosigned before (by consistency proofs from the log) and says
//! so. A client that trusts the witness (its key configured out of band,
//! never learned from the log's server) takes a head the witness cosigned
//! as final: the log cannot later show anyone a history without it
//! without the witness refusing.
//!
//! The signature covers, in [`DOMAIN_COSIGN`], the canonical bytes of
//! (witness name, cosigning time, the head's canonical bytes): the same
//! bytes the log signed, so a cosignature is of one head of one log.

use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::{SignedTreeHead, TreeHead};
use crate::error::ProtoError;
use crate::sign;

/// Domain of a witness's cosignature of a tree head.
pub const DOMAIN_COSIGN: &str = "exhibit/tree-head-cosign/v1";
/// Longest witness name, in characters.
pub const MAX_WITNESS_NAME: usize = 64;

/// What the witness signs.
#[derive(Serialize)]
struct Body<'a> {
    witness: &'a str,
    time: u64,
    head: &'a [u8],
}

/// A witness's cosignature of one signed tree head.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cosignature {
    /// The witness's name, as it calls itself (a label: a verifier
    /// knows the witness by its key).
    pub witness: String,
    /// The witness's Ed25519 public key (32 bytes), to find which of the
    /// configured keys to verify with.
    #[serde(with = "crate::b64")]
    pub key: Vec<u8>,
    /// When the witness cosigned (unix seconds, its clock).
    pub time: u64,
    /// Signature over the body in [`DOMAIN_COSIGN`].
    #[serde(with = "crate::b64")]
    pub signature: Vec<u8>,
}

/// A signed tree head with one witness's cosignature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CosignedHead {
    /// The head, signed by the log.
    pub head: SignedTreeHead,
    /// The witness's cosignature of it.
    pub cosignature: Cosignature,
}

impl Cosignature {
    /// Cosign `head` as witness `witness` with `key` at `time`.
    pub fn sign(key: &SigningKey, witness: &str, head: &SignedTreeHead, time: u64) -> Cosignature {
        let body = sign::encode(&Body { witness, time, head: &head.bytes });
        Cosignature {
            witness: witness.to_owned(),
            key: key.verifying_key().to_bytes().to_vec(),
            time,
            signature: sign::sign(key, DOMAIN_COSIGN, &body),
        }
    }

    /// Whether this cosignature was made by `key` (the one a verifier
    /// has configured for the witness).
    pub fn by(&self, key: &VerifyingKey) -> bool {
        self.key.as_slice() == key.as_bytes()
    }

    /// Check that `key` cosigned `head` (the log's signature on it is
    /// checked apart, by [`CosignedHead::verify`]).
    pub fn verify(&self, key: &VerifyingKey, head: &SignedTreeHead) -> Result<(), ProtoError> {
        if !self.by(key) {
            return Err(ProtoError::Mismatch {
                what: "cosignature key",
                expected: key_text(key),
                got: base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &self.key),
            });
        }
        if self.witness.chars().count() > MAX_WITNESS_NAME {
            return Err(ProtoError::TooLarge {
                what: "witness name",
                got: self.witness.chars().count() as u64,
                max: MAX_WITNESS_NAME as u64,
            });
        }
        let body = sign::encode(&Body { witness: &self.witness, time: self.time, head: &head.bytes });
        sign::verify(key, DOMAIN_COSIGN, &body, &self.signature, "cosignature")
    }
}

impl CosignedHead {
    /// Check the log's signature (`log`) and the witness's (`witness`);
    /// the head, if both hold.
    pub fn verify(&self, log: &VerifyingKey, witness: &VerifyingKey) -> Result<TreeHead, ProtoError> {
        let head = self.head.verify(log)?;
        self.cosignature.verify(witness, &self.head)?;
        Ok(head)
    }
}

/// A witness key as written in configuration: standard base64 of its 32
/// bytes.
pub fn key_text(key: &VerifyingKey) -> String {
    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, key.as_bytes())
}

/// Parse a witness key written by [`key_text`].
pub fn parse_key(text: &str) -> Result<VerifyingKey, ProtoError> {
    let bad = |reason: String| ProtoError::Malformed { what: "witness key", reason };
    let bytes = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, text.trim().as_bytes())
        .map_err(|e| bad(e.to_string()))?;
    let bytes: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| bad(format!("{} bytes, not 32", b.len())))?;
    sign::verifying_key(&bytes, "witness key")
}

/// Check a witness name: 1 to [`MAX_WITNESS_NAME`] characters, letters,
/// digits, `-`, `_` and `.`.
pub fn check_name(name: &str) -> Result<(), ProtoError> {
    let bad = |reason| ProtoError::InvalidId { what: "witness name", got: name.to_owned(), reason };
    if name.is_empty() || name.chars().count() > MAX_WITNESS_NAME {
        return Err(bad("1 to 64 characters"));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        return Err(bad("letters, digits, '-', '_' and '.' only"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(size: u64, key: &SigningKey) -> SignedTreeHead {
        TreeHead { size, root: [size as u8; 32], time: 1000 + size }.sign(key)
    }

    #[test]
    fn a_cosignature_is_of_one_head_by_one_key() {
        let log = SigningKey::from_bytes(&[1; 32]);
        let w = SigningKey::from_bytes(&[2; 32]);
        let other = SigningKey::from_bytes(&[3; 32]);
        let (h5, h6) = (head(5, &log), head(6, &log));
        let c = Cosignature::sign(&w, "cps-witness", &h5, 77);
        let ch = CosignedHead { head: h5.clone(), cosignature: c.clone() };
        assert_eq!(ch.verify(&log.verifying_key(), &w.verifying_key()).unwrap().size, 5);
        assert!(c.by(&w.verifying_key()) && !c.by(&other.verifying_key()));
        // Over another head.
        assert!(c.verify(&w.verifying_key(), &h6).is_err());
        // By another key: named, or claimed.
        assert!(c.verify(&other.verifying_key(), &h5).is_err());
        let mut claimed = c.clone();
        claimed.key = other.verifying_key().to_bytes().to_vec();
        assert!(claimed.verify(&other.verifying_key(), &h5).is_err());
        // The name and time are signed.
        let mut renamed = c.clone();
        renamed.witness = "someone-else".into();
        assert!(renamed.verify(&w.verifying_key(), &h5).is_err());
        let mut later = c.clone();
        later.time += 1;
        assert!(later.verify(&w.verifying_key(), &h5).is_err());
        // The log's own signature is not a cosignature (domains apart),
        // nor is a cosignature the log's signature.
        let forged = Cosignature { signature: h5.signature.clone(), ..c.clone() };
        assert!(forged.verify(&w.verifying_key(), &h5).is_err());
        let not_log = SignedTreeHead { bytes: h5.bytes.clone(), signature: c.signature.clone() };
        assert!(not_log.verify(&w.verifying_key()).is_err());
        // A head the log did not sign, cosigned: refused as a whole.
        let stray = head(5, &other);
        let ch = CosignedHead { cosignature: Cosignature::sign(&w, "cps-witness", &stray, 77), head: stray };
        assert!(ch.verify(&log.verifying_key(), &w.verifying_key()).is_err());
    }

    #[test]
    fn keys_and_names_round_trip_and_bound() {
        let w = SigningKey::from_bytes(&[2; 32]).verifying_key();
        assert_eq!(parse_key(&key_text(&w)).unwrap(), w);
        assert_eq!(parse_key(&format!(" {}\n", key_text(&w))).unwrap(), w);
        assert!(parse_key("AAAA").is_err());
        assert!(parse_key("not base64!").is_err());
        assert!(check_name("cps-witness.1").is_ok());
        assert!(check_name("").is_err() && check_name("a b").is_err() && check_name(&"a".repeat(65)).is_err());
        let c =
            Cosignature::sign(&SigningKey::from_bytes(&[2; 32]), "w", &head(1, &SigningKey::from_bytes(&[1; 32])), 1);
        let bytes = sign::encode(&c);
        assert_eq!(sign::decode::<Cosignature>(&bytes, "c").unwrap(), c);
        let head = head(1, &SigningKey::from_bytes(&[1; 32]));
        let one = crate::frame::encode(&crate::frame::Response::CosignedHeads {
            heads: vec![CosignedHead { head, cosignature: c.clone() }],
        })
        .unwrap();
        let none = crate::frame::encode(&crate::frame::Response::CosignedHeads { heads: vec![] }).unwrap();
        // What a client pays per trusted witness at every contact.
        assert!(bytes.len() <= 101 + MAX_WITNESS_NAME && one.len() - none.len() <= 202 + MAX_WITNESS_NAME + 8);
        eprintln!(
            "cosignature {} bytes; CosignedHeads frame {} bytes empty, +{} per witness",
            bytes.len(),
            none.len(),
            one.len() - none.len()
        );
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<Cosignature>(&json).unwrap(), c);
    }
}
