//! Domain-separated Ed25519 signing over canonical bytes.
//!
//! Every signed structure is encoded once with postcard (a fixed, canonical
//! encoding for our types) and the signature covers
//! `domain || 0x00 || BLAKE3(bytes)`, so a signature made for one purpose can
//! never be replayed as another.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

use crate::error::ProtoError;

/// Domain of directory entries signed by the authority.
pub const DOMAIN_ENTRY: &str = "exhibit/directory-entry/v1";
/// Domain of manifests signed by the sender.
pub const DOMAIN_MANIFEST: &str = "exhibit/manifest/v1";
/// Domain of receipts signed by the recipient.
pub const DOMAIN_RECEIPT: &str = "exhibit/receipt/v1";
/// Domain of the server's countersignature on an accepted receipt.
pub const DOMAIN_ACCEPT: &str = "exhibit/receipt-accept/v1";
/// Domain of organisation records signed by the authority.
pub const DOMAIN_ORG: &str = "exhibit/organisation/v1";
/// Domain of a disclosure approver's approval of a transfer.
pub const DOMAIN_APPROVAL: &str = "exhibit/disclosure-approval/v1";

fn message(domain: &str, bytes: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(domain.len() + 33);
    m.extend_from_slice(domain.as_bytes());
    m.push(0);
    m.extend_from_slice(blake3::hash(bytes).as_bytes());
    m
}

/// Sign `bytes` for `domain`.
pub fn sign(key: &SigningKey, domain: &str, bytes: &[u8]) -> Vec<u8> {
    key.sign(&message(domain, bytes)).to_bytes().to_vec()
}

/// Verify a signature made by [`sign`].
pub fn verify(
    key: &VerifyingKey,
    domain: &str,
    bytes: &[u8],
    sig: &[u8],
    what: &'static str,
) -> Result<(), ProtoError> {
    let sig: [u8; 64] = sig.try_into().map_err(|_| ProtoError::BadSignature { what })?;
    key.verify(&message(domain, bytes), &Signature::from_bytes(&sig)).map_err(|_| ProtoError::BadSignature { what })
}

/// Parse a 32-byte Ed25519 public key.
pub fn verifying_key(bytes: &[u8; 32], what: &'static str) -> Result<VerifyingKey, ProtoError> {
    VerifyingKey::from_bytes(bytes).map_err(|e| ProtoError::malformed(what, e))
}

/// Encode a value canonically (postcard).
pub fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // postcard only fails on a writer error or an unsupported serde feature;
    // our types use neither, and `to_allocvec` writes to a Vec.
    postcard::to_allocvec(value).unwrap_or_default()
}

/// The format version a versioned structure's canonical bytes start with.
pub fn version(bytes: &[u8], what: &'static str) -> Result<u16, ProtoError> {
    postcard::take_from_bytes::<u16>(bytes).map(|(v, _)| v).map_err(|e| ProtoError::malformed(what, e))
}

/// Decode a value, requiring that every byte is used.
pub fn decode<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8], what: &'static str) -> Result<T, ProtoError> {
    let (value, rest) = postcard::take_from_bytes(bytes).map_err(|e| ProtoError::malformed(what, e))?;
    if !rest.is_empty() {
        return Err(ProtoError::Malformed { what, reason: format!("{} trailing bytes", rest.len()) });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_separate() {
        let k = SigningKey::from_bytes(&rand::random());
        let s = sign(&k, DOMAIN_RECEIPT, b"x");
        assert!(verify(&k.verifying_key(), DOMAIN_RECEIPT, b"x", &s, "t").is_ok());
        assert!(verify(&k.verifying_key(), DOMAIN_MANIFEST, b"x", &s, "t").is_err());
        assert!(verify(&k.verifying_key(), DOMAIN_RECEIPT, b"y", &s, "t").is_err());
        assert!(verify(&k.verifying_key(), DOMAIN_RECEIPT, b"x", &s[..63], "t").is_err());
    }
}
