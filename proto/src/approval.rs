//! A disclosure approver's signed approval of a transfer to an external
//! organisation: the approver signs the manifest's hash, the recipients and
//! the labels summary, so the approval cannot be moved to other content,
//! other recipients or other labels.

use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::directory::{DirectoryEntry, Role, SignedEntry};
use crate::error::ProtoError;
use crate::ids::{TransferId, UserId};
use crate::labels::PolicySummary;
use crate::manifest::Manifest;
use crate::sign;

/// What an approver approves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// The transfer.
    pub transfer: TransferId,
    /// BLAKE3 of its signed manifest.
    pub manifest_hash: [u8; 32],
    /// Its recipients, sorted.
    pub recipients: Vec<UserId>,
    /// Its labels summary, as the manifest carries it.
    pub policy: PolicySummary,
    /// Who approves.
    pub approver: UserId,
    /// When (approver's clock, unix seconds).
    pub approved_at: u64,
}

impl Approval {
    /// An approval of `m` (whose signed form hashes to `manifest_hash`).
    pub fn of(m: &Manifest, manifest_hash: [u8; 32], approver: UserId, now: u64) -> Approval {
        let mut recipients = m.recipients.clone();
        recipients.sort();
        Approval {
            transfer: m.transfer,
            manifest_hash,
            recipients,
            policy: m.policy.unwrap_or_default(),
            approver,
            approved_at: now,
        }
    }

    /// Sign with the approver's key.
    pub fn sign(&self, key: &SigningKey) -> SignedApproval {
        let bytes = sign::encode(self);
        let signature = sign::sign(key, sign::DOMAIN_APPROVAL, &bytes);
        SignedApproval { bytes, signature }
    }

    /// Does it approve exactly this manifest?
    pub fn covers(&self, m: &Manifest, manifest_hash: &[u8; 32]) -> Result<(), ProtoError> {
        let mut recipients = m.recipients.clone();
        recipients.sort();
        let bad = |reason: &str| ProtoError::Malformed { what: "approval", reason: reason.into() };
        if self.transfer != m.transfer {
            return Err(bad("it approves another transfer"));
        }
        if &self.manifest_hash != manifest_hash {
            return Err(bad("it approves other content (manifest hash differs)"));
        }
        if self.recipients != recipients {
            return Err(bad("it approves other recipients"));
        }
        if self.policy != m.policy.unwrap_or_default() {
            return Err(bad("it approves other labels"));
        }
        Ok(())
    }
}

/// An approval as its approver signed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedApproval {
    /// Canonical encoding of an [`Approval`].
    #[serde(with = "crate::b64")]
    pub bytes: Vec<u8>,
    /// The approver's signature.
    #[serde(with = "crate::b64")]
    pub signature: Vec<u8>,
}

impl SignedApproval {
    /// Decode without checking the signature (to find the approver).
    pub fn decode_unverified(&self) -> Result<Approval, ProtoError> {
        sign::decode(&self.bytes, "approval")
    }

    /// Check the approver's signature and decode.
    pub fn verify(&self, approver: &VerifyingKey) -> Result<Approval, ProtoError> {
        sign::verify(approver, sign::DOMAIN_APPROVAL, &self.bytes, &self.signature, "approval")?;
        self.decode_unverified()
    }
}

/// Check an approval of manifest `m` (hash `manifest_hash`) from `sender`:
/// the approver's entry is the authority's, they hold the approver role
/// in the sender's organisation, are not the sender, are one of the
/// approvers the manifest names, signed it, and it covers exactly this
/// manifest. Returns the approval and the approver's entry.
pub fn check(
    signed: &SignedApproval,
    approver_entry: &SignedEntry,
    sender: &DirectoryEntry,
    m: &Manifest,
    manifest_hash: &[u8; 32],
    authority: &VerifyingKey,
) -> Result<(Approval, DirectoryEntry), ProtoError> {
    let approver = approver_entry.verify(authority)?;
    let bad = |reason: String| ProtoError::Malformed { what: "approval", reason };
    if approver.user == sender.user || approver.user == m.sender {
        return Err(bad(format!("{} approved their own disclosure", approver.user)));
    }
    if !approver.has_role(Role::DisclosureApprover) {
        return Err(bad(format!("{} is not a disclosure approver", approver.user)));
    }
    if approver.org != sender.org {
        return Err(bad(format!(
            "{} is in organisation {}, not the sender's ({})",
            approver.user, approver.org, sender.org
        )));
    }
    if !m.approvers.contains(&approver.user) {
        return Err(bad(format!("{} is not one of the approvers the sender named", approver.user)));
    }
    let a = signed.verify(&approver.verifying_key()?)?;
    if a.approver != approver.user {
        return Err(bad("signed by a different user than it names".into()));
    }
    if approver.revoked_at.is_some_and(|r| r <= a.approved_at) {
        return Err(bad(format!("{} had been revoked when it was signed", approver.user)));
    }
    a.covers(m, manifest_hash)?;
    Ok((a, approver))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::tests::manifest_v3;

    fn person(user: &str, org: &str, roles: &[Role], key: &SigningKey) -> DirectoryEntry {
        DirectoryEntry {
            user: UserId::new(user).unwrap(),
            display_name: user.into(),
            org: org.into(),
            role: roles[0],
            age_recipient: "age1".into(),
            signing_key: key.verifying_key().to_bytes(),
            enrolled_at: 1,
            revoked_at: None,
            more_roles: roles[1..].to_vec(),
        }
    }

    #[test]
    fn only_a_second_person_of_the_senders_org_with_the_role_approves_this_manifest() {
        let auth = SigningKey::from_bytes(&rand::random());
        let (ka, kc, kd) = (
            SigningKey::from_bytes(&rand::random()),
            SigningKey::from_bytes(&rand::random()),
            SigningKey::from_bytes(&rand::random()),
        );
        let m = manifest_v3();
        let hash = [9; 32];
        let sender = person("alice", "cps-london", &[Role::Caseworker, Role::DisclosureApprover], &ka);
        let carol = person("carol", "cps-london", &[Role::Caseworker, Role::DisclosureApprover], &kc);
        let a = Approval::of(&m, hash, carol.user.clone(), 5);
        let ok = check(&a.sign(&kc), &carol.sign(&auth), &sender, &m, &hash, &auth.verifying_key());
        assert_eq!(ok.unwrap().1.user.as_str(), "carol");
        // Signed by someone else's key.
        assert!(check(&a.sign(&kd), &carol.sign(&auth), &sender, &m, &hash, &auth.verifying_key()).is_err());
        // Another manifest (content changed after approval).
        assert!(check(&a.sign(&kc), &carol.sign(&auth), &sender, &m, &[8; 32], &auth.verifying_key()).is_err());
        // Other labels.
        let mut relabelled = m.clone();
        relabelled.policy = Some(PolicySummary::default());
        assert!(check(&a.sign(&kc), &carol.sign(&auth), &sender, &relabelled, &hash, &auth.verifying_key()).is_err());
        // Another organisation's approver.
        let mut away = carol.clone();
        away.org = "cps-wales".into();
        let e = check(&a.sign(&kc), &away.sign(&auth), &sender, &m, &hash, &auth.verifying_key()).unwrap_err();
        assert!(e.to_string().contains("not the sender's"), "{e}");
        // A caseworker without the role.
        let mut plain = carol.clone();
        plain.more_roles.clear();
        assert!(check(&a.sign(&kc), &plain.sign(&auth), &sender, &m, &hash, &auth.verifying_key()).is_err());
        // The sender approving their own.
        let own = Approval::of(&m, hash, sender.user.clone(), 5);
        assert!(check(&own.sign(&ka), &sender.sign(&auth), &sender, &m, &hash, &auth.verifying_key()).is_err());
        // An entry the authority did not sign.
        assert!(check(&a.sign(&kc), &carol.sign(&kd), &sender, &m, &hash, &auth.verifying_key()).is_err());
    }
}
