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
    /// Approves (or refuses) what their organisation discloses to an
    /// external organisation; never their own sends.
    DisclosureApprover,
}

impl Role {
    /// The role's name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::EvidenceUnit => "evidence-unit",
            Role::Caseworker => "caseworker",
            Role::Admin => "admin",
            Role::DisclosureApprover => "disclosure-approver",
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
            "disclosure-approver" => Ok(Role::DisclosureApprover),
            _ => Err(ProtoError::InvalidId {
                what: "role",
                got: s.chars().take(40).collect(),
                reason: "expected evidence-unit, caseworker, admin or disclosure-approver",
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
    /// Organisation: the id of its signed record (before organisations
    /// were records, a free-text name).
    pub org: String,
    /// Role (the first; see `more_roles`).
    pub role: Role,
    /// age X25519 recipient (`age1…`) evidence for this user is sealed to.
    pub age_recipient: String,
    /// Ed25519 key that signs this user's manifests and receipts.
    pub signing_key: [u8; 32],
    /// When the user enrolled (unix seconds).
    pub enrolled_at: u64,
    /// When the user was revoked, if they were.
    pub revoked_at: Option<u64>,
    /// Roles held besides `role` (entries signed before users could hold
    /// several have none).
    pub more_roles: Vec<Role>,
}

/// An entry as it was signed before users could hold several roles.
#[derive(Deserialize)]
struct EntryV1 {
    user: UserId,
    display_name: String,
    org: String,
    role: Role,
    age_recipient: String,
    signing_key: [u8; 32],
    enrolled_at: u64,
    revoked_at: Option<u64>,
}

/// Decode an entry of either form: the current one, or the first (which
/// is the current one without its last field, so neither reads as the
/// other).
fn decode_entry(bytes: &[u8]) -> Result<DirectoryEntry, ProtoError> {
    const WHAT: &str = "directory entry";
    match sign::decode::<DirectoryEntry>(bytes, WHAT) {
        Ok(e) => Ok(e),
        Err(new) => match sign::decode::<EntryV1>(bytes, WHAT) {
            Ok(e) => Ok(DirectoryEntry {
                user: e.user,
                display_name: e.display_name,
                org: e.org,
                role: e.role,
                age_recipient: e.age_recipient,
                signing_key: e.signing_key,
                enrolled_at: e.enrolled_at,
                revoked_at: e.revoked_at,
                more_roles: vec![],
            }),
            Err(_) => Err(new),
        },
    }
}

impl DirectoryEntry {
    /// Every role the user holds.
    pub fn roles(&self) -> impl Iterator<Item = Role> + '_ {
        std::iter::once(self.role).chain(self.more_roles.iter().copied())
    }

    /// Whether the user holds `role`.
    pub fn has_role(&self, role: Role) -> bool {
        self.roles().any(|r| r == role)
    }

    /// The roles as shown: `caseworker, disclosure-approver`.
    pub fn roles_shown(&self) -> String {
        self.roles().map(Role::as_str).collect::<Vec<_>>().join(", ")
    }

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

/// How the audit entry of an enrolment names the keys it put in a user's
/// name: these words, then [`DirectoryEntry::fingerprint`].
pub const KEY_FINGERPRINT: &str = "key fingerprint ";

/// The key fingerprint an audit entry's details name, if they name one.
pub fn fingerprint_named(details: &str) -> Option<&str> {
    let rest = details.split(KEY_FINGERPRINT).nth(1)?;
    rest.split([',', ';', ' ']).next().filter(|fp| !fp.is_empty())
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
        decode_entry(&self.bytes).ok().map(|e| e.fingerprint())
    }

    /// Check the authority's signature and decode the entry.
    pub fn verify(&self, authority: &VerifyingKey) -> Result<DirectoryEntry, ProtoError> {
        sign::verify(authority, sign::DOMAIN_ENTRY, &self.bytes, &self.signature, "directory entry")?;
        decode_entry(&self.bytes)
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
            more_roles: vec![],
        }
    }

    #[test]
    fn entries_signed_before_several_roles_still_verify() {
        #[derive(Serialize)]
        struct Old<'a> {
            user: &'a UserId,
            display_name: &'a str,
            org: &'a str,
            role: Role,
            age_recipient: &'a str,
            signing_key: [u8; 32],
            enrolled_at: u64,
            revoked_at: Option<u64>,
        }
        let auth = SigningKey::from_bytes(&rand::random());
        let e = entry("bob");
        let bytes = sign::encode(&Old {
            user: &e.user,
            display_name: &e.display_name,
            org: &e.org,
            role: e.role,
            age_recipient: &e.age_recipient,
            signing_key: e.signing_key,
            enrolled_at: e.enrolled_at,
            revoked_at: e.revoked_at,
        });
        let signature = sign::sign(&auth, sign::DOMAIN_ENTRY, &bytes);
        assert_eq!(SignedEntry { bytes, signature }.verify(&auth.verifying_key()).unwrap(), e);
        let mut two = entry("carol");
        two.more_roles = vec![Role::DisclosureApprover];
        let got = two.sign(&auth).verify(&auth.verifying_key()).unwrap();
        assert!(got.has_role(Role::DisclosureApprover) && got.has_role(Role::Caseworker));
        assert!(!got.has_role(Role::Admin));
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
    fn an_enrolment_names_its_keys_fingerprint() {
        let fp = entry("bob").fingerprint();
        let details = format!("role caseworker, {KEY_FINGERPRINT}{fp}");
        assert_eq!(fingerprint_named(&details), Some(fp.as_str()));
        assert_eq!(fingerprint_named(&format!("{details}; more")), Some(fp.as_str()));
        assert_eq!(fingerprint_named("role caseworker, key fingerprint "), None);
        assert_eq!(fingerprint_named("certificate 1a2b issued"), None);
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
