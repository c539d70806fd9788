//! Delivery receipts: signed by the recipient, countersigned by the server
//! with its own time, verifiable offline with only the CA certificate.

use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::approval::SignedApproval;
use crate::directory::{DirectoryEntry, SignedEntry};
use crate::error::ProtoError;
use crate::ids::{TransferId, UserId};
use crate::manifest::SignedManifest;
use crate::sign;
use crate::subset::Subset;
use crate::unit::SignedUnit;

/// Receipt format version this build writes for some of a transfer's
/// items: version 3, then which items ([`Subset`]).
pub const RECEIPT_V4: u16 = 4;
/// Receipt format version this build writes for all of a transfer's items:
/// as version 2, and the recipient's latest signed tree head of the
/// server's audit log (gossip: a sender whose own head does not agree with
/// it has been shown another log), and the unit a member acknowledged for,
/// if they did.
pub const RECEIPT_VERSION: u16 = 3;
/// The second format, still read: one commitment to the items' hashes
/// ([`crate::merkle`]) instead of the list.
pub const RECEIPT_V2: u16 = 2;
/// The first receipt format, still read: every item's hash listed.
pub const RECEIPT_V1: u16 = 1;
/// `format` field of an exported receipt bundle.
pub const BUNDLE_FORMAT: &str = "exhibit-receipt-bundle/v1";

/// What the recipient attests: this transfer, this manifest, these
/// plaintext hashes, received intact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// Format version.
    pub version: u16,
    /// Transfer id.
    pub transfer: TransferId,
    /// BLAKE3 of the signed manifest bytes.
    pub manifest_hash: [u8; 32],
    /// Who received it.
    pub recipient: UserId,
    /// When (recipient's clock, unix seconds).
    pub received_at: u64,
    /// How many items were received.
    pub item_count: u64,
    /// [`crate::merkle`] root of each item's verified plaintext BLAKE3, in
    /// the sealed details' order.
    pub items_root: [u8; 32],
    /// Version 1 only: each item's verified plaintext BLAKE3 (in version 2
    /// the list is kept beside the receipt and checked against the root).
    pub items: Vec<[u8; 32]>,
    /// Version 3: the recipient's latest signed tree head of the audit log.
    pub log_head: Option<crate::tlog::SignedTreeHead>,
    /// Version 3: the unit the transfer was addressed to, for which
    /// `recipient`, a member, received it.
    pub unit: Option<UserId>,
    /// Version 4: the items received, when not all of them were (then
    /// `item_count` and `items_root` are of those items alone).
    pub subset: Option<Subset>,
}

/// Version 4: version 3, then which items.
#[derive(Serialize, Deserialize)]
struct WireV4 {
    v3: WireV3,
    subset: Subset,
}

/// Version 3: version 2, then the recipient's tree head and the unit.
#[derive(Serialize, Deserialize)]
struct WireV3 {
    v2: WireV2,
    log_head: Option<crate::tlog::SignedTreeHead>,
    unit: Option<UserId>,
}

#[derive(Serialize, Deserialize)]
struct WireV2 {
    version: u16,
    transfer: TransferId,
    manifest_hash: [u8; 32],
    recipient: UserId,
    received_at: u64,
    item_count: u64,
    items_root: [u8; 32],
}

#[derive(Serialize, Deserialize)]
struct WireV1 {
    version: u16,
    transfer: TransferId,
    manifest_hash: [u8; 32],
    recipient: UserId,
    received_at: u64,
    items: Vec<[u8; 32]>,
}

impl WireV2 {
    fn receipt(self, log_head: Option<crate::tlog::SignedTreeHead>, unit: Option<UserId>) -> Receipt {
        Receipt {
            version: self.version,
            transfer: self.transfer,
            manifest_hash: self.manifest_hash,
            recipient: self.recipient,
            received_at: self.received_at,
            item_count: self.item_count,
            items_root: self.items_root,
            items: vec![],
            log_head,
            unit,
            subset: None,
        }
    }
}

impl Receipt {
    /// A receipt for items whose verified hashes, in order, made `root`.
    pub fn new(
        transfer: TransferId,
        manifest_hash: [u8; 32],
        recipient: UserId,
        received_at: u64,
        root: &crate::merkle::Root,
    ) -> Self {
        Receipt {
            version: RECEIPT_VERSION,
            transfer,
            manifest_hash,
            recipient,
            received_at,
            item_count: root.count(),
            items_root: root.finish(),
            items: vec![],
            log_head: None,
            unit: None,
            subset: None,
        }
    }

    /// The same, for only some of the transfer's items: `root` is of
    /// those, and `subset` says which. `None` is all of them.
    pub fn of_items(self, subset: Option<Subset>) -> Self {
        let version = match subset {
            Some(_) => RECEIPT_V4,
            None => self.version,
        };
        Receipt { version, subset, ..self }
    }

    /// "all 120 items" or "3 of 120 items".
    pub fn describe_items(&self) -> String {
        match &self.subset {
            Some(s) => s.describe(),
            None if self.item_count == 1 => "the one item".into(),
            None => format!("all {} items", self.item_count),
        }
    }

    /// The same, received by a member for `unit`.
    pub fn for_unit(mut self, unit: Option<UserId>) -> Self {
        self.unit = unit;
        self
    }

    /// The same receipt carrying the recipient's latest tree head.
    pub fn with_log_head(self, head: Option<crate::tlog::SignedTreeHead>) -> Self {
        Receipt { log_head: head, ..self }
    }

    /// The canonical bytes that are signed.
    pub fn to_bytes(&self) -> Vec<u8> {
        let r = self.clone();
        match r.version {
            RECEIPT_V1 => sign::encode(&WireV1 {
                version: r.version,
                transfer: r.transfer,
                manifest_hash: r.manifest_hash,
                recipient: r.recipient,
                received_at: r.received_at,
                items: r.items,
            }),
            version => {
                let v2 = WireV2 {
                    version,
                    transfer: r.transfer,
                    manifest_hash: r.manifest_hash,
                    recipient: r.recipient,
                    received_at: r.received_at,
                    item_count: r.item_count,
                    items_root: r.items_root,
                };
                if version == RECEIPT_V2 {
                    return sign::encode(&v2);
                }
                let v3 = WireV3 { v2, log_head: r.log_head, unit: r.unit };
                match r.subset {
                    Some(subset) if version == RECEIPT_V4 => sign::encode(&WireV4 { v3, subset }),
                    _ => sign::encode(&v3),
                }
            }
        }
    }

    /// Decode signed bytes of either version.
    pub fn from_bytes(bytes: &[u8]) -> Result<Receipt, ProtoError> {
        match sign::version(bytes, "receipt")? {
            RECEIPT_V1 => {
                let w: WireV1 = sign::decode(bytes, "receipt")?;
                Ok(Receipt {
                    version: w.version,
                    transfer: w.transfer,
                    manifest_hash: w.manifest_hash,
                    recipient: w.recipient,
                    received_at: w.received_at,
                    item_count: w.items.len() as u64,
                    items_root: crate::merkle::root(&w.items),
                    items: w.items,
                    log_head: None,
                    unit: None,
                    subset: None,
                })
            }
            RECEIPT_V2 => Ok(sign::decode::<WireV2>(bytes, "receipt")?.receipt(None, None)),
            RECEIPT_VERSION => {
                let w: WireV3 = sign::decode(bytes, "receipt")?;
                Ok(w.v2.receipt(w.log_head, w.unit))
            }
            RECEIPT_V4 => {
                let w: WireV4 = sign::decode(bytes, "receipt")?;
                w.subset.check(w.v3.v2.item_count)?;
                let mut r = w.v3.v2.receipt(w.v3.log_head, w.v3.unit);
                r.subset = Some(w.subset);
                Ok(r)
            }
            got => Err(ProtoError::Version { what: "receipt", got }),
        }
    }

    /// Whether `list` is the list of item hashes this receipt attests.
    pub fn check_items(&self, list: &[[u8; 32]]) -> Result<(), ProtoError> {
        if list.len() as u64 != self.item_count {
            return Err(ProtoError::Mismatch {
                what: "receipt item count",
                expected: self.item_count.to_string(),
                got: list.len().to_string(),
            });
        }
        let root = crate::merkle::root(list);
        if root != self.items_root {
            return Err(ProtoError::Mismatch {
                what: "receipt items root",
                expected: hex::encode(self.items_root),
                got: hex::encode(root),
            });
        }
        Ok(())
    }

    /// Sign with the recipient's key.
    pub fn sign(&self, key: &SigningKey) -> SignedReceipt {
        let bytes = self.to_bytes();
        let signature = sign::sign(key, sign::DOMAIN_RECEIPT, &bytes);
        SignedReceipt { bytes, signature }
    }
}

/// A receipt as its recipient signed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedReceipt {
    /// Canonical encoding of the [`Receipt`].
    #[serde(with = "crate::b64")]
    pub bytes: Vec<u8>,
    /// Recipient's signature.
    #[serde(with = "crate::b64")]
    pub signature: Vec<u8>,
}

impl SignedReceipt {
    /// The items it covers when they are some of the transfer's, as its
    /// bytes say (the signature unchecked: for a receipt already verified,
    /// or only to describe it).
    pub fn subset(&self) -> Option<Subset> {
        Receipt::from_bytes(&self.bytes).ok().and_then(|r| r.subset)
    }

    /// Check the signature against the recipient's directory entry.
    pub fn verify(&self, recipient: &DirectoryEntry) -> Result<Receipt, ProtoError> {
        let r = Receipt::from_bytes(&self.bytes)?;
        if r.recipient != recipient.user {
            return Err(ProtoError::Mismatch {
                what: "receipt recipient",
                expected: recipient.user.to_string(),
                got: r.recipient.to_string(),
            });
        }
        sign::verify(&recipient.verifying_key()?, sign::DOMAIN_RECEIPT, &self.bytes, &self.signature, "receipt")?;
        Ok(r)
    }

    fn hash(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        h.update(&(self.bytes.len() as u64).to_be_bytes());
        h.update(&self.bytes);
        h.update(&self.signature);
        *h.finalize().as_bytes()
    }
}

#[derive(Serialize)]
struct Acceptance {
    receipt: [u8; 32],
    accepted_at: u64,
}

/// A receipt the server verified and countersigned with its own time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptedReceipt {
    /// The recipient's signed receipt.
    pub receipt: SignedReceipt,
    /// Server time of acceptance (unix seconds).
    pub accepted_at: u64,
    /// Authority signature over the receipt and `accepted_at`.
    #[serde(with = "crate::b64")]
    pub server_signature: Vec<u8>,
}

impl AcceptedReceipt {
    /// Countersign a receipt (server side, after verifying it).
    pub fn accept(receipt: SignedReceipt, now: u64, authority: &SigningKey) -> Self {
        let a = sign::encode(&Acceptance { receipt: receipt.hash(), accepted_at: now });
        let server_signature = sign::sign(authority, sign::DOMAIN_ACCEPT, &a);
        AcceptedReceipt { receipt, accepted_at: now, server_signature }
    }

    /// Check the countersignature.
    pub fn verify_acceptance(&self, authority: &VerifyingKey) -> Result<(), ProtoError> {
        let a = sign::encode(&Acceptance { receipt: self.receipt.hash(), accepted_at: self.accepted_at });
        sign::verify(authority, sign::DOMAIN_ACCEPT, &a, &self.server_signature, "receipt countersignature")
    }
}

/// What a verified receipt bundle proves, in readable form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptSummary {
    /// Transfer id (hex).
    pub transfer: String,
    /// Case reference.
    pub case_ref: Option<String>,
    /// Sender user id.
    pub sender: String,
    /// Sender key fingerprint.
    pub sender_fingerprint: String,
    /// Recipient user id.
    pub recipient: String,
    /// Recipient key fingerprint.
    pub recipient_fingerprint: String,
    /// Manifest hash (hex).
    pub manifest_hash: String,
    /// Recipient's time of receipt (unix seconds).
    pub received_at: u64,
    /// Server's time of acceptance (unix seconds).
    pub accepted_at: u64,
    /// Version 1 receipts: plaintext BLAKE3 of each item (hex).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<String>,
    /// Version 2 receipts: how many items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_count: Option<u64>,
    /// A receipt for some of the items (`exhibit fetch --items`): how many
    /// the transfer has; `item_count` were received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items_of: Option<u64>,
    /// Version 2 receipts: the root over the items' hashes (hex), which the
    /// item list kept beside the bundle must give.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items_root: Option<String>,
    /// Who approved the disclosure (transfers to an external organisation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    /// The approver's key fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approver_fingerprint: Option<String>,
    /// When they approved it (approver's clock, unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_at: Option<u64>,
    /// Where the receipt's acceptance is in the audit log, proven in a
    /// signed tree head (bundles that carry the proof).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_log: Option<LogPlace>,
    /// The unit the transfer was addressed to, which the recipient, a
    /// member, received it for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_unit: Option<String>,
}

/// A receipt's acceptance entry in the audit log and the signed tree head
/// that holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogPlace {
    /// The entry's number.
    pub entry: u64,
    /// Entries in the signed tree head it is proven in.
    pub tree_size: u64,
    /// That head's root (hex).
    pub tree_root: String,
    /// When the server signed that head (unix seconds).
    pub signed_at: u64,
}

/// Everything needed to verify a receipt offline with only the CA
/// certificate: the signed manifest, both parties' signed directory entries
/// and the accepted receipt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptBundle {
    /// Always [`BUNDLE_FORMAT`].
    pub format: String,
    /// Readable statement of what the signatures prove; checked on verify.
    pub summary: ReceiptSummary,
    /// The sender-signed manifest.
    pub manifest: SignedManifest,
    /// The sender's entry, signed by the authority.
    pub sender_entry: SignedEntry,
    /// The recipient's entry, signed by the authority.
    pub recipient_entry: SignedEntry,
    /// The receipt with the server's countersignature.
    pub receipt: AcceptedReceipt,
    /// The approval that released the transfer, and the approver's entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<(SignedApproval, SignedEntry)>,
    /// The receipt's acceptance entry in the audit log, with its inclusion
    /// proof in a signed tree head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<crate::tlog::EntryProof>,
    /// A receipt for a unit: the unit's record, signed by the authority,
    /// listing the recipient as a member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<SignedUnit>,
    /// With the authority offline: its certificate of the key that
    /// countersigned the receipt and signed the log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_key: Option<crate::offline::LogKeyCert>,
}

impl ReceiptBundle {
    /// Assemble a bundle; fails if the parts do not verify together.
    /// `log_key` is the authority's certificate of the key that
    /// countersigned the receipt, when that is not the authority's own.
    #[allow(clippy::too_many_arguments)] // each part of the bundle, as it is kept
    pub fn new(
        manifest: SignedManifest,
        sender_entry: SignedEntry,
        recipient_entry: SignedEntry,
        receipt: AcceptedReceipt,
        approval: Option<(SignedApproval, SignedEntry)>,
        unit: Option<SignedUnit>,
        log_key: Option<crate::offline::LogKeyCert>,
        authority: &VerifyingKey,
    ) -> Result<Self, ProtoError> {
        let placeholder = ReceiptSummary {
            transfer: String::new(),
            case_ref: None,
            sender: String::new(),
            sender_fingerprint: String::new(),
            recipient: String::new(),
            recipient_fingerprint: String::new(),
            manifest_hash: String::new(),
            received_at: 0,
            accepted_at: 0,
            items: vec![],
            item_count: None,
            items_of: None,
            items_root: None,
            approved_by: None,
            approver_fingerprint: None,
            approved_at: None,
            in_log: None,
            for_unit: None,
        };
        let mut b = ReceiptBundle {
            format: BUNDLE_FORMAT.into(),
            summary: placeholder,
            manifest,
            sender_entry,
            recipient_entry,
            receipt,
            approval,
            log: None,
            unit,
            log_key,
        };
        b.summary = b.check(authority)?;
        Ok(b)
    }

    /// The bundle with the receipt's acceptance entry and its inclusion
    /// proof; fails if they do not verify with the rest.
    pub fn with_log(mut self, log: crate::tlog::EntryProof, authority: &VerifyingKey) -> Result<Self, ProtoError> {
        self.log = Some(log);
        self.summary = self.check(authority)?;
        Ok(self)
    }

    /// Verify every signature and that the summary says what they prove.
    pub fn verify(&self, authority: &VerifyingKey) -> Result<ReceiptSummary, ProtoError> {
        if self.format != BUNDLE_FORMAT {
            return Err(ProtoError::Mismatch {
                what: "bundle format",
                expected: BUNDLE_FORMAT.into(),
                got: self.format.chars().take(80).collect(),
            });
        }
        let s = self.check(authority)?;
        if s != self.summary {
            return Err(ProtoError::Mismatch {
                what: "receipt summary",
                expected: format!("{s:?}"),
                got: format!("{:?}", self.summary),
            });
        }
        Ok(s)
    }

    /// Check the list of item hashes kept beside the bundle against what
    /// the receipt signs (after [`Self::verify`]).
    pub fn check_items(&self, list: &[[u8; 32]]) -> Result<(), ProtoError> {
        Receipt::from_bytes(&self.receipt.receipt.bytes)?.check_items(list)
    }

    fn check(&self, authority: &VerifyingKey) -> Result<ReceiptSummary, ProtoError> {
        let sender = self.sender_entry.verify(authority)?;
        let recipient = self.recipient_entry.verify(authority)?;
        let manifest = self.manifest.verify(&sender)?;
        let m = manifest.manifest();
        let r = self.receipt.receipt.verify(&recipient)?;
        let log_key = crate::offline::log_key(authority, self.log_key.as_ref())?;
        self.receipt.verify_acceptance(&log_key)?;
        if r.manifest_hash != manifest.hash() {
            return Err(ProtoError::Mismatch {
                what: "receipt manifest hash",
                expected: hex::encode(manifest.hash()),
                got: hex::encode(r.manifest_hash),
            });
        }
        if r.transfer != m.transfer {
            return Err(ProtoError::Mismatch {
                what: "receipt transfer",
                expected: m.transfer.to_string(),
                got: r.transfer.to_string(),
            });
        }
        let addressee = r.unit.as_ref().unwrap_or(&r.recipient);
        if !m.recipients.contains(addressee) {
            return Err(ProtoError::Mismatch {
                what: "receipt recipient",
                expected: "one of the manifest's recipients".into(),
                got: addressee.to_string(),
            });
        }
        if let Some(u) = &r.unit {
            let Some(record) = &self.unit else {
                return Err(ProtoError::Malformed {
                    what: "receipt bundle",
                    reason: format!("the receipt is for unit {u} and the bundle holds no record of it"),
                });
            };
            let record = record.verify(authority)?;
            if &record.unit != u || !record.has_member(&r.recipient) {
                return Err(ProtoError::Mismatch {
                    what: "unit record",
                    expected: format!("unit {u} listing {}", r.recipient),
                    got: format!("unit {} with members {:?}", record.unit, record.members),
                });
            }
        }
        if let Some(n) = m.item_count() {
            let of = r.subset.as_ref().map_or(r.item_count, |s| s.of);
            if of != n as u64 {
                return Err(ProtoError::Mismatch {
                    what: "receipt item count",
                    expected: n.to_string(),
                    got: of.to_string(),
                });
            }
        }
        let approval = match &self.approval {
            Some((a, entry)) => Some(crate::approval::check(a, entry, &sender, m, &manifest.hash(), authority)?),
            None if !m.approvers.is_empty() => {
                return Err(ProtoError::Malformed {
                    what: "receipt bundle",
                    reason: "the transfer needed an approval and the bundle holds none".into(),
                })
            }
            None => None,
        };
        let v2 = r.version != RECEIPT_V1;
        let in_log = match &self.log {
            Some(l) => Some(self.check_log(l, &r, &log_key)?),
            None => None,
        };
        Ok(ReceiptSummary {
            approved_by: approval.as_ref().map(|(a, _)| a.approver.to_string()),
            approver_fingerprint: approval.as_ref().map(|(_, e)| e.fingerprint()),
            approved_at: approval.as_ref().map(|(a, _)| a.approved_at),
            transfer: m.transfer.to_string(),
            case_ref: m.case_ref.clone(),
            sender: sender.user.to_string(),
            sender_fingerprint: sender.fingerprint(),
            recipient: recipient.user.to_string(),
            recipient_fingerprint: recipient.fingerprint(),
            manifest_hash: hex::encode(manifest.hash()),
            received_at: r.received_at,
            accepted_at: self.receipt.accepted_at,
            items: r.items.iter().map(hex::encode).collect(),
            item_count: v2.then_some(r.item_count),
            items_of: r.subset.as_ref().map(|s| s.of),
            items_root: v2.then(|| hex::encode(r.items_root)),
            in_log,
            for_unit: r.unit.as_ref().map(ToString::to_string),
        })
    }

    /// The log entry is this receipt's acceptance (its transfer, its
    /// recipient, its signature) and is in the signed tree head.
    fn check_log(
        &self,
        l: &crate::tlog::EntryProof,
        r: &Receipt,
        log_key: &VerifyingKey,
    ) -> Result<LogPlace, ProtoError> {
        let head = l.verify(log_key)?;
        let b = &l.entry.body;
        let signature = format!("signature {}", hex::encode(&self.receipt.receipt.signature));
        if b.action != "receipt-accepted"
            || b.subject != r.transfer.to_string()
            || b.actor != r.recipient.as_str()
            || !b.details.contains(&signature)
        {
            return Err(ProtoError::Mismatch {
                what: "audit entry in the bundle",
                expected: format!("the acceptance of {}'s receipt for {}", r.recipient, r.transfer),
                got: format!("entry {}: {} by {} on {}", b.seq, b.action, b.actor, b.subject),
            });
        }
        Ok(LogPlace { entry: b.seq, tree_size: head.size, tree_root: hex::encode(head.root), signed_at: head.time })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_3_is_version_2_with_the_head_appended_and_every_version_round_trips() {
        let mut root = crate::merkle::Root::new();
        root.push(&[1; 32]);
        let r3 = Receipt::new(TransferId([1; 16]), [2; 32], UserId::new("bob").unwrap(), 5, &root);
        let r2 = Receipt { version: RECEIPT_V2, ..r3.clone() };
        let head = crate::tlog::TreeHead { size: 3, root: [9; 32], time: 1 }.sign(&SigningKey::from_bytes(&[4; 32]));
        let r3 = r3.with_log_head(Some(head.clone()));
        for r in [&r2, &r3] {
            assert_eq!(&Receipt::from_bytes(&r.to_bytes()).unwrap(), r);
        }
        // The version is one byte (a postcard varint below 128).
        let b2 = r2.to_bytes();
        assert_eq!(
            r3.to_bytes(),
            [&[3u8][..], &b2[1..], &sign::encode(&Some(head)), &sign::encode(&None::<UserId>)].concat()
        );
        let r3u = r3.clone().for_unit(Some(UserId::new("mags").unwrap()));
        assert_eq!(Receipt::from_bytes(&r3u.to_bytes()).unwrap(), r3u);
        // Version 4 is version 3 with the subset appended, and only a
        // receipt for some of the items is written as version 4.
        assert_eq!(r3u.clone().of_items(None), r3u);
        let subset = Subset::of_chosen(5, [3]);
        let r4 = r3u.clone().of_items(subset.clone());
        assert_eq!(r4.version, RECEIPT_V4);
        assert_eq!(Receipt::from_bytes(&r4.to_bytes()).unwrap(), r4);
        assert_eq!(r4.to_bytes(), [&[4u8][..], &r3u.to_bytes()[1..], &sign::encode(&subset.unwrap())].concat());
        assert_eq!(r4.describe_items(), "1 of 5 items");
        assert_eq!(r3u.describe_items(), "the one item");
    }

    #[test]
    fn a_version_4_receipt_whose_subset_does_not_add_up_does_not_decode() {
        let mut root = crate::merkle::Root::new();
        root.push(&[1; 32]);
        let r = Receipt::new(TransferId([1; 16]), [2; 32], UserId::new("bob").unwrap(), 5, &root);
        // One item received, but the ranges say two; and a "subset" of all.
        for subset in [Subset { of: 5, ranges: vec![(0, 2)] }, Subset { of: 1, ranges: vec![(0, 1)] }] {
            let bad = Receipt { version: RECEIPT_V4, subset: Some(subset), ..r.clone() };
            let e = Receipt::from_bytes(&bad.to_bytes()).unwrap_err();
            assert!(e.to_string().contains("subset"), "{e}");
        }
    }
}
