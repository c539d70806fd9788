//! Organisations: who a user works for and what kind of body that is. The
//! kind decides what may be disclosed to its users: police and CPS are
//! internal; defence, probation, court and others are external, and
//! receive only what the disclosure rules allow, with a second person's
//! approval. An organisation is a record signed by the deployment's
//! authority, like a directory entry, so a client can check a kind it is
//! shown.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::error::ProtoError;
use crate::sign;

/// What kind of body an organisation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum OrgKind {
    /// A police force (evidence units).
    Police,
    /// The Crown Prosecution Service (an area, a unit).
    Cps,
    /// A defence firm.
    Defence,
    /// The probation service.
    Probation,
    /// A court.
    Court,
    /// Anyone else.
    Other,
}

impl OrgKind {
    /// Every kind, in the order help texts list them.
    pub const ALL: [OrgKind; 6] =
        [OrgKind::Police, OrgKind::Cps, OrgKind::Defence, OrgKind::Probation, OrgKind::Court, OrgKind::Other];

    /// The kind's name on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            OrgKind::Police => "police",
            OrgKind::Cps => "cps",
            OrgKind::Defence => "defence",
            OrgKind::Probation => "probation",
            OrgKind::Court => "court",
            OrgKind::Other => "other",
        }
    }

    /// Outside police and CPS: disclosure rules and approval apply.
    pub fn is_external(self) -> bool {
        !matches!(self, OrgKind::Police | OrgKind::Cps)
    }
}

impl fmt::Display for OrgKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OrgKind {
    type Err = ProtoError;
    fn from_str(s: &str) -> Result<Self, ProtoError> {
        OrgKind::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| ProtoError::InvalidId {
            what: "organisation kind",
            got: s.chars().take(40).collect(),
            reason: "expected police, cps, defence, probation, court or other",
        })
    }
}

/// An organisation id: the same characters as a user id (`a-z 0-9 . _ -`,
/// 1 to 64, starting with a letter or digit), e.g. `met-police`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OrgId(String);

impl OrgId {
    /// Parse an organisation id.
    pub fn new(s: &str) -> Result<Self, ProtoError> {
        crate::ids::check_name_id("organisation id", s)?;
        Ok(OrgId(s.to_owned()))
    }

    /// An id made from a free-text name ("CPS London" → `cps-london`), for
    /// organisations that were only a name before they were records.
    pub fn from_name(name: &str) -> OrgId {
        let mut s = String::new();
        for c in name.chars().flat_map(char::to_lowercase) {
            if c.is_ascii_alphanumeric() {
                s.push(c);
            } else if !s.is_empty() && !s.ends_with('-') {
                s.push('-');
            }
        }
        let mut s: String = s.trim_end_matches('-').chars().take(64).collect();
        while s.ends_with('-') {
            s.pop();
        }
        if s.is_empty() {
            s = format!("org-{}", &hex::encode(blake3::hash(name.as_bytes()).as_bytes())[..12]);
        }
        OrgId(s)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for OrgId {
    type Error = ProtoError;
    fn try_from(s: String) -> Result<Self, ProtoError> {
        OrgId::new(&s)
    }
}

impl From<OrgId> for String {
    fn from(o: OrgId) -> String {
        o.0
    }
}

impl FromStr for OrgId {
    type Err = ProtoError;
    fn from_str(s: &str) -> Result<Self, ProtoError> {
        OrgId::new(s)
    }
}

impl fmt::Display for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An organisation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Org {
    /// Id, as user entries name it.
    pub id: OrgId,
    /// Name shown to people.
    pub name: String,
    /// Kind.
    pub kind: OrgKind,
}

impl Org {
    /// Sign this record with the authority key.
    pub fn sign(&self, authority: &SigningKey) -> SignedOrg {
        let bytes = sign::encode(self);
        let signature = sign::sign(authority, sign::DOMAIN_ORG, &bytes);
        SignedOrg { bytes, signature }
    }

    /// "CPS London (cps)".
    pub fn label(&self) -> String {
        format!("{} ({})", self.name, self.kind)
    }
}

/// An organisation record as the authority signed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedOrg {
    /// Canonical encoding of an [`Org`].
    #[serde(with = "crate::b64")]
    pub bytes: Vec<u8>,
    /// Authority signature.
    #[serde(with = "crate::b64")]
    pub signature: Vec<u8>,
}

impl SignedOrg {
    /// Check the authority's signature and decode the record.
    pub fn verify(&self, authority: &VerifyingKey) -> Result<Org, ProtoError> {
        sign::verify(authority, sign::DOMAIN_ORG, &self.bytes, &self.signature, "organisation record")?;
        sign::decode(&self.bytes, "organisation record")
    }

    /// Decode without checking (for the server that signed it).
    pub fn decode_unchecked(&self) -> Result<Org, ProtoError> {
        sign::decode(&self.bytes, "organisation record")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_split_internal_from_external() {
        let external: Vec<_> = OrgKind::ALL.into_iter().filter(|k| k.is_external()).collect();
        assert_eq!(external, [OrgKind::Defence, OrgKind::Probation, OrgKind::Court, OrgKind::Other]);
        for k in OrgKind::ALL {
            assert_eq!(k.as_str().parse::<OrgKind>().unwrap(), k);
        }
        assert!("solicitor".parse::<OrgKind>().is_err());
    }

    #[test]
    fn ids_from_names_are_valid_ids() {
        assert_eq!(OrgId::from_name("CPS London").as_str(), "cps-london");
        assert_eq!(OrgId::from_name("  Met. Police -- Digital  ").as_str(), "met-police-digital");
        let odd = OrgId::from_name("   ");
        assert!(OrgId::new(odd.as_str()).is_ok());
        assert!(OrgId::new(OrgId::from_name(&"x".repeat(300)).as_str()).is_ok());
        assert!(OrgId::new("Bad Id").is_err());
    }

    #[test]
    fn a_kind_cannot_be_changed_under_the_signature() {
        let auth = SigningKey::from_bytes(&rand::random());
        let org = Org { id: OrgId::new("smith-law").unwrap(), name: "Smith Law".into(), kind: OrgKind::Defence };
        let s = org.sign(&auth);
        assert_eq!(s.verify(&auth.verifying_key()).unwrap(), org);
        let mut cps = org.clone();
        cps.kind = OrgKind::Cps;
        let forged = SignedOrg { bytes: sign::encode(&cps), signature: s.signature };
        assert!(forged.verify(&auth.verifying_key()).is_err());
    }
}
