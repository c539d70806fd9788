//! Unit mailboxes: a CPS unit or a police evidence unit that evidence is
//! addressed to as a whole. Any current member fetches and acknowledges.
//!
//! Three signed things make a unit, each signed by whoever is answerable
//! for it:
//! - the [`Unit`] record (organisation, name, members, key epoch), signed
//!   by the authority as admins change it;
//! - the unit's age key for an epoch ([`UnitKey`]): made by a member's
//!   client and signed by that member, never by the server or an admin;
//! - the key's private half wrapped (age-encrypted) to each member
//!   ([`WrappedKey`]); a client that unwraps one checks that it opens to
//!   the recipient the member signed.
//!
//! A unit's id shares the name space of user ids (the server refuses a
//! unit named like a user and the reverse), so a transfer's recipient list
//! names units and users alike.

use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::directory::DirectoryEntry;
use crate::error::ProtoError;
use crate::ids::UserId;
use crate::org::OrgId;
use crate::sign;

/// Domain of unit records signed by the authority.
pub const DOMAIN_UNIT: &str = "exhibit/unit/v1";
/// Domain of a unit key signed by the member who made it.
pub const DOMAIN_UNIT_KEY: &str = "exhibit/unit-key/v1";
/// At most this many members in a unit.
pub const MAX_MEMBERS: usize = 256;
/// A wrapped key is an age file of one identity string: well under this.
pub const MAX_WRAPPED: usize = 4096;

/// When a transfer to a unit counts as acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AckRule {
    /// When one member has acknowledged it (the default).
    One,
    /// When every current member has.
    All,
}

impl AckRule {
    /// As shown and typed: `one`, `all`.
    pub fn as_str(self) -> &'static str {
        match self {
            AckRule::One => "one",
            AckRule::All => "all",
        }
    }
}

impl std::str::FromStr for AckRule {
    type Err = ProtoError;
    fn from_str(s: &str) -> Result<Self, ProtoError> {
        match s {
            "one" => Ok(AckRule::One),
            "all" => Ok(AckRule::All),
            _ => Err(ProtoError::InvalidId {
                what: "acknowledgement rule",
                got: s.chars().take(20).collect(),
                reason: "expected one or all",
            }),
        }
    }
}

/// A unit as the authority signed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unit {
    /// Its id (the name space of user ids).
    pub unit: UserId,
    /// The organisation it belongs to; its members are that
    /// organisation's users.
    pub org: OrgId,
    /// Name shown to people.
    pub name: String,
    /// Current members, in id order.
    pub members: Vec<UserId>,
    /// When a transfer to it counts as acknowledged.
    pub ack: AckRule,
    /// The key epoch transfers are sealed to now: it goes up each time a
    /// member leaves, and the first current member to connect makes that
    /// epoch's key.
    pub epoch: u32,
    /// Where overdue alerts for it also go.
    pub email: Option<String>,
    /// When the record was last changed (server time).
    pub changed_at: u64,
}

impl Unit {
    /// Whether `user` is a current member.
    pub fn has_member(&self, user: &UserId) -> bool {
        self.members.binary_search(user).is_ok()
    }

    /// Sign with the authority key.
    pub fn sign(&self, authority: &SigningKey) -> SignedUnit {
        let bytes = sign::encode(self);
        let signature = sign::sign(authority, DOMAIN_UNIT, &bytes);
        SignedUnit { bytes, signature }
    }

    /// Check the record's own bounds (a decoded record is safe to walk).
    pub fn check(&self) -> Result<(), ProtoError> {
        if self.members.len() > MAX_MEMBERS {
            return Err(ProtoError::TooLarge {
                what: "unit members",
                got: self.members.len() as u64,
                max: MAX_MEMBERS as u64,
            });
        }
        if self.members.windows(2).any(|w| w[0] >= w[1]) {
            return Err(ProtoError::Malformed { what: "unit", reason: "members not in order or repeated".into() });
        }
        Ok(())
    }
}

/// A unit record and the authority's signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedUnit {
    /// Canonical encoding of a [`Unit`].
    #[serde(with = "crate::b64")]
    pub bytes: Vec<u8>,
    /// Authority signature.
    #[serde(with = "crate::b64")]
    pub signature: Vec<u8>,
}

impl SignedUnit {
    /// Check the authority's signature and decode the record.
    pub fn verify(&self, authority: &VerifyingKey) -> Result<Unit, ProtoError> {
        sign::verify(authority, DOMAIN_UNIT, &self.bytes, &self.signature, "unit record")?;
        let u: Unit = sign::decode(&self.bytes, "unit record")?;
        u.check()?;
        Ok(u)
    }
}

/// A unit's public key for one epoch, as the member who made it signed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitKey {
    /// The unit.
    pub unit: UserId,
    /// The epoch it is for.
    pub epoch: u32,
    /// age X25519 recipient (`age1…`) transfers to the unit are sealed to.
    pub age_recipient: String,
    /// The member who made it.
    pub by: UserId,
    /// When (their clock).
    pub at: u64,
}

impl UnitKey {
    /// Sign with the maker's key.
    pub fn sign(&self, key: &SigningKey) -> SignedUnitKey {
        let bytes = sign::encode(self);
        let signature = sign::sign(key, DOMAIN_UNIT_KEY, &bytes);
        SignedUnitKey { bytes, signature }
    }
}

/// A unit key and its maker's signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedUnitKey {
    /// Canonical encoding of a [`UnitKey`].
    #[serde(with = "crate::b64")]
    pub bytes: Vec<u8>,
    /// The maker's signature.
    #[serde(with = "crate::b64")]
    pub signature: Vec<u8>,
}

impl SignedUnitKey {
    /// Decode without checking the signature (to find who to check it by).
    pub fn decode_unverified(&self) -> Result<UnitKey, ProtoError> {
        sign::decode(&self.bytes, "unit key")
    }

    /// Check the signature against the maker's (verified) entry.
    pub fn verify(&self, maker: &DirectoryEntry) -> Result<UnitKey, ProtoError> {
        let k = self.decode_unverified()?;
        if k.by != maker.user {
            return Err(ProtoError::Mismatch {
                what: "unit key maker",
                expected: maker.user.to_string(),
                got: k.by.to_string(),
            });
        }
        sign::verify(&maker.verifying_key()?, DOMAIN_UNIT_KEY, &self.bytes, &self.signature, "unit key")?;
        Ok(k)
    }
}

/// A unit key's private half, age-encrypted to one member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedKey {
    /// The epoch of the key.
    pub epoch: u32,
    /// The member it is wrapped to.
    pub member: UserId,
    /// The member who wrapped it.
    pub by: UserId,
    /// An age file (to the member's recipient) holding the identity string.
    #[serde(with = "crate::b64")]
    pub blob: Vec<u8>,
}

/// Check a unit key against its record: for this unit, for its current
/// epoch or an earlier one, the current one's made by a current member, and its signature good under the maker's
/// entry (`maker`, verified against the authority by the caller).
pub fn check_key(unit: &Unit, key: &SignedUnitKey, maker: &DirectoryEntry) -> Result<UnitKey, ProtoError> {
    let k = key.verify(maker)?;
    if k.unit != unit.unit {
        return Err(ProtoError::Mismatch {
            what: "unit key's unit",
            expected: unit.unit.to_string(),
            got: k.unit.to_string(),
        });
    }
    // A member who leaves moves the epoch on, so whoever made the current
    // epoch's key is still a member.
    if k.epoch > unit.epoch || (k.epoch == unit.epoch && !unit.has_member(&k.by)) {
        return Err(ProtoError::Malformed {
            what: "unit key",
            reason: format!("made by {} for epoch {}, who is not a member at epoch {}", k.by, k.epoch, unit.epoch),
        });
    }
    Ok(k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::Role;

    fn entry(user: &str, key: &SigningKey) -> DirectoryEntry {
        DirectoryEntry {
            user: UserId::new(user).unwrap(),
            display_name: user.into(),
            org: "cps-se".into(),
            role: Role::Caseworker,
            age_recipient: "age1xyz".into(),
            signing_key: key.verifying_key().to_bytes(),
            enrolled_at: 1,
            revoked_at: None,
            more_roles: vec![],
        }
    }

    fn unit() -> Unit {
        Unit {
            unit: UserId::new("mags").unwrap(),
            org: OrgId::new("cps-se").unwrap(),
            name: "Magistrates' unit".into(),
            members: vec![UserId::new("ann").unwrap(), UserId::new("bob").unwrap()],
            ack: AckRule::One,
            epoch: 1,
            email: None,
            changed_at: 5,
        }
    }

    #[test]
    fn a_record_verifies_only_under_its_authority_and_unchanged() {
        let auth = SigningKey::from_bytes(&rand::random());
        let u = unit();
        let s = u.sign(&auth);
        assert_eq!(s.verify(&auth.verifying_key()).unwrap(), u);
        assert!(s.verify(&SigningKey::from_bytes(&rand::random()).verifying_key()).is_err());
        let mut more = u.clone();
        more.members.push(UserId::new("eve").unwrap());
        let forged = SignedUnit { bytes: sign::encode(&more), signature: s.signature.clone() };
        assert!(forged.verify(&auth.verifying_key()).is_err());
        let mut unordered = u.clone();
        unordered.members.reverse();
        assert!(unordered.sign(&auth).verify(&auth.verifying_key()).is_err());
        assert!(u.has_member(&UserId::new("bob").unwrap()) && !u.has_member(&UserId::new("eve").unwrap()));
    }

    #[test]
    fn a_key_holds_only_under_its_makers_signature_and_unit() {
        let ann_key = SigningKey::from_bytes(&rand::random());
        let ann = entry("ann", &ann_key);
        let k = UnitKey {
            unit: UserId::new("mags").unwrap(),
            epoch: 1,
            age_recipient: "age1abc".into(),
            by: ann.user.clone(),
            at: 9,
        };
        let s = k.sign(&ann_key);
        assert_eq!(check_key(&unit(), &s, &ann).unwrap(), k);
        // Someone else's signature, or a claim to be someone else.
        let bob_key = SigningKey::from_bytes(&rand::random());
        assert!(check_key(&unit(), &k.sign(&bob_key), &ann).is_err());
        assert!(check_key(&unit(), &s, &entry("bob", &bob_key)).is_err());
        // A swapped recipient under the old signature.
        let mut swapped = k.clone();
        swapped.age_recipient = "age1evil".into();
        let forged = SignedUnitKey { bytes: sign::encode(&swapped), signature: s.signature.clone() };
        assert!(check_key(&unit(), &forged, &ann).is_err());
        let mut other = unit();
        other.unit = UserId::new("crown").unwrap();
        assert!(check_key(&other, &s, &ann).is_err());
    }
}
