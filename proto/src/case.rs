//! Cases and their rosters: which organisations outside police and CPS may
//! receive material of a case (the defence firm on record for a defendant,
//! probation). A case is known by its reference (URN) and kept by one CPS
//! organisation; every change to its roster is signed by the person who
//! made it, so the roster can be checked without trusting the server.

use std::collections::BTreeMap;

use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::directory::DirectoryEntry;
use crate::error::ProtoError;
use crate::ids::UserId;
use crate::org::OrgId;
use crate::sign;
use crate::text::{self, Field};

/// Domain of a roster change signed by the user who made it.
pub const DOMAIN_ROSTER: &str = "exhibit/case-roster-change/v1";

/// At most this many changes are kept on one case's roster.
pub const MAX_ROSTER_CHANGES: usize = 1024;

/// A case reference as it may be used to name a case: the text rule for
/// case references, not empty, at most 100 bytes.
pub fn check_case_ref(s: &str) -> Result<(), ProtoError> {
    if s.trim().is_empty() || s.len() > 100 || s.trim() != s {
        return Err(ProtoError::InvalidId {
            what: "case reference",
            got: s.chars().take(40).collect(),
            reason: "1 to 100 bytes, without leading or trailing spaces",
        });
    }
    text::check(Field::CaseRef, s).map_err(ProtoError::from)
}

/// One change to a case's roster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterChange {
    /// The case reference.
    pub case: String,
    /// The organisation allowed or no longer allowed.
    pub org: OrgId,
    /// `true`: may receive material of the case; `false`: no longer.
    pub allow: bool,
    /// Why (e.g. "defence for defendant 2").
    pub note: Option<String>,
    /// Who made the change.
    pub by: UserId,
    /// When (their clock, unix seconds).
    pub at: u64,
}

impl RosterChange {
    /// Sign with the key of the user who makes it.
    pub fn sign(&self, key: &SigningKey) -> SignedRosterChange {
        let bytes = sign::encode(self);
        let signature = sign::sign(key, DOMAIN_ROSTER, &bytes);
        SignedRosterChange { bytes, signature }
    }

    /// Its shown text keeps the text rule.
    pub fn check_text(&self) -> Result<(), ProtoError> {
        check_case_ref(&self.case)?;
        if let Some(n) = &self.note {
            if n.len() > 200 {
                return Err(ProtoError::TooLarge { what: "roster note", got: n.len() as u64, max: 200 });
            }
            text::check(Field::RosterNote, n).map_err(ProtoError::from)?;
        }
        Ok(())
    }
}

/// A roster change as its author signed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedRosterChange {
    /// Canonical encoding of a [`RosterChange`].
    #[serde(with = "crate::b64")]
    pub bytes: Vec<u8>,
    /// The author's signature.
    #[serde(with = "crate::b64")]
    pub signature: Vec<u8>,
}

impl SignedRosterChange {
    /// Decode without checking the signature (to find its author).
    pub fn decode_unverified(&self) -> Result<RosterChange, ProtoError> {
        sign::decode(&self.bytes, "roster change")
    }

    /// Check the author's signature and decode.
    pub fn verify(&self, author: &VerifyingKey) -> Result<RosterChange, ProtoError> {
        sign::verify(author, DOMAIN_ROSTER, &self.bytes, &self.signature, "roster change")?;
        self.decode_unverified()
    }

    /// Check it against its author's (authority-verified) entry: signed
    /// by them, naming them.
    pub fn verify_by(&self, author: &DirectoryEntry) -> Result<RosterChange, ProtoError> {
        let c = self.verify(&author.verifying_key()?)?;
        if c.by != author.user {
            return Err(ProtoError::Malformed {
                what: "roster change",
                reason: format!("signed by {} but names {}", author.user, c.by),
            });
        }
        Ok(c)
    }
}

/// A case: its reference, the CPS organisation that keeps it, and every
/// change to its roster in the order they were made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseInfo {
    /// The case reference (URN).
    pub case: String,
    /// The organisation that keeps its roster.
    pub owner: OrgId,
    /// Who opened it.
    pub opened_by: UserId,
    /// When (server time).
    pub opened_at: u64,
    /// Every roster change, oldest first, as signed.
    pub changes: Vec<SignedRosterChange>,
}

impl CaseInfo {
    /// The roster as its stored changes leave it, their signatures not
    /// checked again (for the server, which checked each as it came).
    pub fn roster_as_stored(&self) -> Result<Vec<RosterEntry>, ProtoError> {
        let changes: Vec<RosterChange> =
            self.changes.iter().map(SignedRosterChange::decode_unverified).collect::<Result<_, _>>()?;
        Ok(roster(&changes))
    }
}

/// One organisation on a roster as it stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RosterEntry {
    /// The organisation.
    pub org: OrgId,
    /// The note of the change that allowed it.
    pub note: Option<String>,
    /// Who allowed it.
    pub by: UserId,
    /// When.
    pub at: u64,
}

/// The organisations a sequence of (decoded) changes leaves allowed, by id.
pub fn roster(changes: &[RosterChange]) -> Vec<RosterEntry> {
    let mut now: BTreeMap<&OrgId, &RosterChange> = BTreeMap::new();
    for c in changes {
        if c.allow {
            now.insert(&c.org, c);
        } else {
            now.remove(&c.org);
        }
    }
    now.into_values()
        .map(|c| RosterEntry { org: c.org.clone(), note: c.note.clone(), by: c.by.clone(), at: c.at })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(org: &str, allow: bool) -> RosterChange {
        RosterChange {
            case: "01YY1234524".into(),
            org: OrgId::new(org).unwrap(),
            allow,
            note: Some("defence for defendant 2".into()),
            by: UserId::new("carol").unwrap(),
            at: 10,
        }
    }

    #[test]
    fn the_roster_is_the_last_word_on_each_organisation() {
        let r = roster(&[change("smith-law", true), change("jones-law", true), change("smith-law", false)]);
        assert_eq!(r.iter().map(|e| e.org.as_str()).collect::<Vec<_>>(), ["jones-law"]);
        let r = roster(&[change("smith-law", false), change("smith-law", true)]);
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn a_change_is_bound_to_its_author_and_its_words() {
        let k = SigningKey::from_bytes(&[3; 32]);
        let other = SigningKey::from_bytes(&[4; 32]);
        let s = change("smith-law", true).sign(&k);
        assert_eq!(s.verify(&k.verifying_key()).unwrap().org.as_str(), "smith-law");
        assert!(s.verify(&other.verifying_key()).is_err());
        let mut forged = s.clone();
        forged.bytes = sign::encode(&change("jones-law", true));
        assert!(forged.verify(&k.verifying_key()).is_err());
    }

    #[test]
    fn case_references_keep_the_text_rule() {
        assert!(check_case_ref("01YY1234524").is_ok());
        assert!(check_case_ref("").is_err());
        assert!(check_case_ref(" OP-1").is_err());
        assert!(check_case_ref("OP\u{1b}[31m").is_err());
        let mut c = change("smith-law", true);
        c.note = Some("x\u{202e}y".into());
        assert!(c.check_text().is_err());
    }
}
