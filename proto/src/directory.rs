//! Directory entries: who a user is and which keys evidence for them is
//! sealed to, signed by the deployment's authority.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::error::ProtoError;
use crate::ids::UserId;
use crate::sign;

/// What a user may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// Police evidence unit: sends evidence.
    EvidenceUnit,
    /// CPS caseworker: receives evidence.
    Caseworker,
    /// Enrols and revokes users, watches transfers; reads only what is
    /// addressed to them.
    Admin,
}

impl Role {
    /// The role's name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::EvidenceUnit => "evidence-unit",
            Role::Caseworker => "caseworker",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = ProtoError;
    fn from_str(s: &str) -> Result<Self, ProtoError> {
        match s {
            "evidence-unit" => Ok(Role::EvidenceUnit),
            "caseworker" => Ok(Role::Caseworker),
            "admin" => Ok(Role::Admin),
            _ => Err(ProtoError::InvalidId {
                what: "role",
                got: s.chars().take(40).collect(),
                reason: "expected evidence-unit, caseworker or admin",
            }),
        }
    }
}

/// One user's public identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryEntry {
    /// The user id.
    pub user: UserId,
    /// Name shown to people.
    pub display_name: String,
    /// Organisation (force, CPS area).
    pub org: String,
    /// Role.
    pub role: Role,
    /// age X25519 recipient (`age1…`) evidence for this user is sealed to.
    pub age_recipient: String,
    /// Ed25519 key that signs this user's manifests and receipts.
    pub signing_key: [u8; 32],
    /// When the user enrolled (unix seconds).
    pub enrolled_at: u64,
    /// When the user was revoked, if they were.
    pub revoked_at: Option<u64>,
}

impl DirectoryEntry {
    /// A short fingerprint of the entry's keys, for people to compare.
    pub fn fingerprint(&self) -> String {
        let mut h = blake3::Hasher::new();
        h.update(b"exhibit/fingerprint/v1\0");
        h.update(self.age_recipient.as_bytes());
        h.update(b"\0");
        h.update(&self.signing_key);
        let hex = hex::encode(&h.finalize().as_bytes()[..16]);
        hex.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join(":")
    }

    /// The signing key as a verifying key.
    pub fn verifying_key(&self) -> Result<VerifyingKey, ProtoError> {
        sign::verifying_key(&self.signing_key, "signing key")
    }

    /// Sign this entry with the authority key.
    pub fn sign(&self, authority: &SigningKey) -> SignedEntry {
        let bytes = sign::encode(self);
        let signature = sign::sign(authority, sign::DOMAIN_ENTRY, &bytes);
        SignedEntry { bytes, signature }
    }
}

/// A directory entry as the authority signed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedEntry {
    /// Canonical encoding of a [`DirectoryEntry`].
    #[serde(with = "crate::b64")]
    pub bytes: Vec<u8>,
    /// Authority signature.
    #[serde(with = "crate::b64")]
    pub signature: Vec<u8>,
}

impl SignedEntry {
    /// The fingerprint of the entry's keys without checking the signature
    /// (for logs written by the server that signed it).
    pub fn verify_unchecked_fingerprint(&self) -> Option<String> {
        sign::decode::<DirectoryEntry>(&self.bytes, "directory entry").ok().map(|e| e.fingerprint())
    }

    /// Check the authority's signature and decode the entry.
    pub fn verify(&self, authority: &VerifyingKey) -> Result<DirectoryEntry, ProtoError> {
        sign::verify(authority, sign::DOMAIN_ENTRY, &self.bytes, &self.signature, "directory entry")?;
        sign::decode(&self.bytes, "directory entry")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn entry(user: &str) -> DirectoryEntry {
        DirectoryEntry {
            user: UserId::new(user).unwrap(),
            display_name: "A".into(),
            org: "Force".into(),
            role: Role::Caseworker,
            age_recipient: "age1xyz".into(),
            signing_key: [7; 32],
            enrolled_at: 1,
            revoked_at: None,
        }
    }

    #[test]
    fn signed_entry_verifies_only_under_its_authority() {
        let auth = SigningKey::from_bytes(&rand::random());
        let other = SigningKey::from_bytes(&rand::random());
        let e = entry("bob");
        let s = e.sign(&auth);
        assert_eq!(s.verify(&auth.verifying_key()).unwrap(), e);
        assert!(s.verify(&other.verifying_key()).is_err());
        let mut swapped = entry("bob");
        swapped.age_recipient = "age1evil".into();
        let forged = SignedEntry { bytes: sign::encode(&swapped), signature: s.signature.clone() };
        assert!(forged.verify(&auth.verifying_key()).is_err());
    }

    #[test]
    fn fingerprint_tracks_keys() {
        let a = entry("bob");
        let mut b = a.clone();
        b.signing_key = [8; 32];
        assert_ne!(a.fingerprint(), b.fingerprint());
        b.display_name = "changed".into();
        b.signing_key = a.signing_key;
        assert_eq!(a.fingerprint(), b.fingerprint());
    }
}
