//! The manifest: what a transfer holds, as the server may see it, plus the
//! sealed details only the recipients can open.

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

use crate::directory::DirectoryEntry;
use crate::error::ProtoError;
use crate::ids::{ChunkId, TransferId, UserId};
use crate::labels::PolicySummary;
use crate::limits::{self, max_sealed_len};
use crate::path::{self, RelPath};
use crate::sign;
use crate::tlog::SignedTreeHead;

/// Manifest format version this build writes: as version 4, and the
/// sender's latest signed tree head of the server's audit log (gossip: a
/// recipient whose own head the sender's does not agree with has been
/// shown another log).
pub const MANIFEST_VERSION: u16 = 5;
/// The fourth format, still read: as version 3, and a forward names the
/// transfer its material came from ([`DerivedFrom`]).
pub const MANIFEST_V4: u16 = 4;
/// The third format, still read: as version 2, with each item's labels
/// sealed in the details, a labels summary the server holds the
/// disclosure rules to, and the approvers it is also sealed to.
pub const MANIFEST_V3: u16 = 3;
/// The second format, still read: file boundaries sealed, small files
/// packed into shared chunks, sealed details stored as chunks (see the
/// `details` module); no labels.
pub const MANIFEST_V2: u16 = 2;
/// The first manifest format, still read: one entry per file, sealed
/// details inline.
pub const MANIFEST_V1: u16 = 1;

/// Most bytes a signed tree head in a manifest takes (it needs about 120).
const MAX_HEAD: usize = 256;

/// Whether manifests of `version` carry labels (version 3 on).
pub fn labelled(version: u16) -> bool {
    version >= MANIFEST_V3
}

/// At most this many ranges of items in a [`DerivedFrom`].
pub const MAX_DERIVED_RANGES: usize = 4096;

/// Where a forwarded transfer's material came from: a transfer its sender
/// received, the manifest they verified, and which of its items.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DerivedFrom {
    /// The transfer forwarded.
    pub transfer: TransferId,
    /// BLAKE3 of its signed manifest.
    pub manifest_hash: [u8; 32],
    /// Its items carried, by index in its sealed details: ranges
    /// `(first, count)`, ascending, not overlapping.
    pub items: Vec<(u32, u32)>,
    /// Items carried as a redacted version (a different file, made from
    /// the item at this index), ascending.
    pub redacted: Vec<u32>,
}

impl DerivedFrom {
    /// Its items, from a sorted list of indices.
    pub fn ranges(indices: &[u32]) -> Vec<(u32, u32)> {
        let mut out: Vec<(u32, u32)> = vec![];
        for &i in indices {
            match out.last_mut() {
                Some((first, count)) if *first + *count == i => *count += 1,
                _ => out.push((i, 1)),
            }
        }
        out
    }

    /// Whether it carries item `i`.
    pub fn carries(&self, i: u32) -> bool {
        self.items.iter().any(|&(first, count)| i >= first && i - first < count)
    }

    /// How many items it carries.
    pub fn count(&self) -> u64 {
        self.items.iter().map(|&(_, c)| u64::from(c)).sum()
    }

    /// Bounded and ordered, every redacted item among those carried.
    pub fn check_bounds(&self) -> Result<(), ProtoError> {
        let bad = |reason: &str| ProtoError::Malformed { what: "derived-from", reason: reason.into() };
        too_large("derived item ranges", self.items.len(), MAX_DERIVED_RANGES)?;
        too_large("redacted items", self.redacted.len(), limits::MAX_ITEMS)?;
        if self.items.is_empty() {
            return Err(bad("no items"));
        }
        let mut next = 0u64;
        for &(first, count) in &self.items {
            if count == 0 || u64::from(first) < next {
                return Err(bad("item ranges empty, overlapping or out of order"));
            }
            next = u64::from(first) + u64::from(count);
        }
        if self.redacted.windows(2).any(|w| w[0] >= w[1]) || !self.redacted.iter().all(|&i| self.carries(i)) {
            return Err(bad("redacted items out of order or not carried"));
        }
        Ok(())
    }
}

/// One chunk of an item, as stored: its id and ciphertext length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    /// BLAKE3 of the ciphertext.
    pub id: ChunkId,
    /// Ciphertext length in bytes.
    pub len: u32,
}

/// One item (file), as the server sees it: only its chunks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestItem {
    /// Chunks in order.
    pub chunks: Vec<ChunkRef>,
}

/// The manifest of a transfer. Visible to the server; holds no file names.
///
/// Version 2 (written now) lists the content chunks in order and the
/// chunks that hold the sealed details; which file is where, and how many
/// there are, is sealed. Version 1 (still read) listed each file's chunks
/// and carried the sealed details inline. In memory both have `chunks`: a
/// version 1 manifest's are its items' chunks in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// Format version.
    pub version: u16,
    /// Transfer id.
    pub transfer: TransferId,
    /// Who sent it.
    pub sender: UserId,
    /// Who it is for.
    pub recipients: Vec<UserId>,
    /// When the sender made it (unix seconds, sender's clock).
    pub created_at: u64,
    /// How long the recipients have to acknowledge it, in seconds; `None`
    /// takes the server's default.
    pub ack_within_secs: Option<u64>,
    /// Optional case reference.
    pub case_ref: Option<String>,
    /// Every content chunk, in order (version 1: its items' chunks).
    pub chunks: Vec<ChunkRef>,
    /// Version 2: the chunks holding the sealed details, in order.
    pub details_parts: Vec<ChunkRef>,
    /// Version 1 only: items in order.
    pub items: Vec<ManifestItem>,
    /// Version 1 only: sealed details, an age file holding a [`SealedDetails`].
    pub details: Vec<u8>,
    /// Version 3: the labels summary (`None` before: unlabelled).
    pub policy: Option<PolicySummary>,
    /// Version 3: disclosure approvers it is also sealed to (they may read
    /// it to approve it; they are not recipients).
    pub approvers: Vec<UserId>,
    /// Version 4: the transfer a forward's material came from.
    pub derived_from: Option<DerivedFrom>,
    /// Version 5: the sender's latest signed tree head of the audit log.
    pub log_head: Option<SignedTreeHead>,
}

/// How version 2 is encoded and signed. Versions 3 and 4 append fields
/// to it: postcard writes a nested struct's fields in place, so each later
/// version is the earlier one's bytes followed by its own fields.
#[derive(Serialize, Deserialize)]
struct WireV2 {
    version: u16,
    transfer: TransferId,
    sender: UserId,
    recipients: Vec<UserId>,
    created_at: u64,
    ack_within_secs: Option<u64>,
    case_ref: Option<String>,
    chunks: Vec<ChunkRef>,
    details_parts: Vec<ChunkRef>,
}

/// How version 3 is encoded and signed: version 2, then the labels
/// summary and approvers.
#[derive(Serialize, Deserialize)]
struct WireV3 {
    v2: WireV2,
    policy: PolicySummary,
    approvers: Vec<UserId>,
}

/// How version 4 is encoded and signed: version 3, then where a forward
/// came from.
#[derive(Serialize, Deserialize)]
struct WireV4 {
    v3: WireV3,
    derived_from: Option<DerivedFrom>,
}

/// How version 5 is encoded and signed: version 4, then the sender's tree
/// head.
#[derive(Serialize, Deserialize)]
struct WireV5 {
    v4: WireV4,
    log_head: Option<SignedTreeHead>,
}

impl WireV2 {
    /// The manifest, with what later versions add.
    fn manifest(
        self,
        policy: Option<PolicySummary>,
        approvers: Vec<UserId>,
        derived_from: Option<DerivedFrom>,
    ) -> Manifest {
        Manifest {
            version: self.version,
            transfer: self.transfer,
            sender: self.sender,
            recipients: self.recipients,
            created_at: self.created_at,
            ack_within_secs: self.ack_within_secs,
            case_ref: self.case_ref,
            chunks: self.chunks,
            details_parts: self.details_parts,
            items: vec![],
            details: vec![],
            policy,
            approvers,
            derived_from,
            log_head: None,
        }
    }
}

/// How version 1 was encoded and signed.
#[derive(Serialize, Deserialize)]
struct WireV1 {
    version: u16,
    transfer: TransferId,
    sender: UserId,
    recipients: Vec<UserId>,
    created_at: u64,
    ack_within_secs: Option<u64>,
    case_ref: Option<String>,
    items: Vec<ManifestItem>,
    #[serde(with = "crate::b64")]
    details: Vec<u8>,
}

impl Manifest {
    /// The canonical bytes that are signed: the wire form of its version.
    pub fn to_bytes(&self) -> Vec<u8> {
        let m = self.clone();
        match m.version {
            MANIFEST_V1 => sign::encode(&WireV1 {
                version: m.version,
                transfer: m.transfer,
                sender: m.sender,
                recipients: m.recipients,
                created_at: m.created_at,
                ack_within_secs: m.ack_within_secs,
                case_ref: m.case_ref,
                items: m.items,
                details: m.details,
            }),
            version => {
                let v2 = WireV2 {
                    version,
                    transfer: m.transfer,
                    sender: m.sender,
                    recipients: m.recipients,
                    created_at: m.created_at,
                    ack_within_secs: m.ack_within_secs,
                    case_ref: m.case_ref,
                    chunks: m.chunks,
                    details_parts: m.details_parts,
                };
                if version == MANIFEST_V2 {
                    return sign::encode(&v2);
                }
                let v3 = WireV3 { v2, policy: m.policy.unwrap_or_default(), approvers: m.approvers };
                if version == MANIFEST_V3 {
                    return sign::encode(&v3);
                }
                let v4 = WireV4 { v3, derived_from: m.derived_from };
                if version == MANIFEST_V4 {
                    return sign::encode(&v4);
                }
                sign::encode(&WireV5 { v4, log_head: m.log_head })
            }
        }
    }

    /// Decode canonical bytes of either version (not bound-checked).
    pub fn from_bytes(bytes: &[u8]) -> Result<Manifest, ProtoError> {
        match sign::version(bytes, "manifest")? {
            MANIFEST_V1 => {
                let w: WireV1 = sign::decode(bytes, "manifest")?;
                Ok(Manifest {
                    chunks: w.items.iter().flat_map(|i| i.chunks.iter().copied()).collect(),
                    details_parts: vec![],
                    version: w.version,
                    transfer: w.transfer,
                    sender: w.sender,
                    recipients: w.recipients,
                    created_at: w.created_at,
                    ack_within_secs: w.ack_within_secs,
                    case_ref: w.case_ref,
                    items: w.items,
                    details: w.details,
                    policy: None,
                    approvers: vec![],
                    derived_from: None,
                    log_head: None,
                })
            }
            MANIFEST_V2 => Ok(sign::decode::<WireV2>(bytes, "manifest")?.manifest(None, vec![], None)),
            MANIFEST_V3 => {
                let w: WireV3 = sign::decode(bytes, "manifest")?;
                Ok(w.v2.manifest(Some(w.policy), w.approvers, None))
            }
            MANIFEST_V4 => {
                let w: WireV4 = sign::decode(bytes, "manifest")?;
                Ok(w.v3.v2.manifest(Some(w.v3.policy), w.v3.approvers, w.derived_from))
            }
            MANIFEST_VERSION => {
                let w: WireV5 = sign::decode(bytes, "manifest")?;
                let v4 = w.v4;
                let m = v4.v3.v2.manifest(Some(v4.v3.policy), v4.v3.approvers, v4.derived_from);
                Ok(Manifest { log_head: w.log_head, ..m })
            }
            got => Err(ProtoError::Version { what: "manifest", got }),
        }
    }

    /// Every chunk the transfer stores: content, then sealed details.
    pub fn all_chunks(&self) -> impl Iterator<Item = &ChunkRef> {
        self.chunks.iter().chain(&self.details_parts)
    }

    /// How many files it holds, where the server may know (version 1).
    pub fn item_count(&self) -> Option<usize> {
        (self.version == MANIFEST_V1).then_some(self.items.len())
    }
    /// Check every bound, so a decoded manifest is safe to walk.
    pub fn check_bounds(&self) -> Result<(), ProtoError> {
        match self.version {
            MANIFEST_V1 => {
                too_large("items", self.items.len(), limits::MAX_ITEMS)?;
                if self.items.is_empty() {
                    return Err(ProtoError::Malformed { what: "manifest", reason: "no items".into() });
                }
                if !self.details_parts.is_empty() {
                    return Err(ProtoError::Malformed {
                        what: "manifest",
                        reason: "version 1 with details parts".into(),
                    });
                }
            }
            MANIFEST_V2 | MANIFEST_V3 | MANIFEST_V4 | MANIFEST_VERSION => {
                if self.details_parts.is_empty() {
                    return Err(ProtoError::Malformed { what: "manifest", reason: "no sealed details".into() });
                }
                too_large("details parts", self.details_parts.len(), limits::MAX_DETAILS_PARTS)?;
                if !self.items.is_empty() || !self.details.is_empty() {
                    return Err(ProtoError::Malformed { what: "manifest", reason: "version 2 with items".into() });
                }
                let max = max_sealed_len(limits::DETAILS_PART as u32, self.sealed_to());
                if let Some(c) = self.details_parts.iter().find(|c| u64::from(c.len) > max) {
                    return Err(ProtoError::TooLarge { what: "details part", got: c.len.into(), max });
                }
            }
            got => return Err(ProtoError::Version { what: "manifest", got }),
        }
        too_large("recipients", self.recipients.len() + self.approvers.len(), limits::MAX_RECIPIENTS)?;
        if let Some(h) = &self.log_head {
            too_large("tree head", h.bytes.len() + h.signature.len(), MAX_HEAD)?;
        }
        if self.approvers.iter().any(|a| self.recipients.contains(a) || *a == self.sender) {
            return Err(ProtoError::Malformed {
                what: "manifest",
                reason: "an approver is also its sender or a recipient".into(),
            });
        }
        if self.recipients.is_empty() {
            return Err(ProtoError::Malformed { what: "manifest", reason: "no recipients".into() });
        }
        let mut r = self.recipients.clone();
        r.sort();
        r.dedup();
        if r.len() != self.recipients.len() {
            return Err(ProtoError::Malformed { what: "manifest", reason: "a recipient appears twice".into() });
        }
        if let Some(d) = &self.derived_from {
            d.check_bounds()?;
        }
        if let Some(d) = &self.derived_from {
            d.check_bounds()?;
        }
        too_large("chunks", self.chunk_count(), limits::MAX_CHUNKS)?;
        too_large("case reference", self.case_ref.as_ref().map_or(0, String::len), limits::MAX_TEXT)?;
        let max = max_sealed_len(limits::MAX_CHUNK_SIZE, self.sealed_to());
        let mut ids = std::collections::HashSet::new();
        for c in self.all_chunks() {
            if u64::from(c.len) > max {
                return Err(ProtoError::TooLarge { what: "chunk", got: c.len.into(), max });
            }
            if !ids.insert(c.id) {
                return Err(ProtoError::Malformed { what: "manifest", reason: format!("chunk {} listed twice", c.id) });
            }
        }
        Ok(())
    }

    /// How many keys its chunks may be sealed to: recipients, approvers
    /// and the sender.
    pub fn sealed_to(&self) -> usize {
        self.recipients.len() + self.approvers.len() + 1
    }

    /// Total number of chunks stored (content and sealed details).
    pub fn chunk_count(&self) -> usize {
        self.chunks.len() + self.details_parts.len()
    }

    /// Total ciphertext bytes stored.
    pub fn ciphertext_len(&self) -> u64 {
        self.all_chunks().map(|c| u64::from(c.len)).sum()
    }

    /// Sign with the sender's key.
    pub fn sign(&self, key: &SigningKey) -> SignedManifest {
        let bytes = self.to_bytes();
        let signature = sign::sign(key, sign::DOMAIN_MANIFEST, &bytes);
        SignedManifest { bytes, signature }
    }
}

fn too_large(what: &'static str, got: usize, max: usize) -> Result<(), ProtoError> {
    if got > max {
        return Err(ProtoError::TooLarge { what, got: got as u64, max: max as u64 });
    }
    Ok(())
}

/// A manifest as its sender signed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedManifest {
    /// Canonical encoding of the [`Manifest`].
    #[serde(with = "crate::b64")]
    pub bytes: Vec<u8>,
    /// Sender's signature.
    #[serde(with = "crate::b64")]
    pub signature: Vec<u8>,
}

impl SignedManifest {
    /// BLAKE3 of the canonical bytes: what receipts refer to.
    pub fn hash(&self) -> [u8; 32] {
        *blake3::hash(&self.bytes).as_bytes()
    }

    /// Decode and bound-check without checking the signature. Use only to
    /// find out who the sender claims to be; then call [`Self::verify`].
    pub fn decode_unverified(&self) -> Result<Manifest, ProtoError> {
        if self.bytes.len() > limits::MAX_MANIFEST {
            return Err(ProtoError::TooLarge {
                what: "manifest",
                got: self.bytes.len() as u64,
                max: limits::MAX_MANIFEST as u64,
            });
        }
        let m = Manifest::from_bytes(&self.bytes)?;
        m.check_bounds()?;
        Ok(m)
    }

    /// Check the signature against the sender's (already verified) directory
    /// entry.
    pub fn verify(&self, sender: &DirectoryEntry) -> Result<VerifiedManifest, ProtoError> {
        let m = self.decode_unverified()?;
        if m.sender != sender.user {
            return Err(ProtoError::Mismatch {
                what: "manifest sender",
                expected: sender.user.to_string(),
                got: m.sender.to_string(),
            });
        }
        sign::verify(&sender.verifying_key()?, sign::DOMAIN_MANIFEST, &self.bytes, &self.signature, "manifest")?;
        Ok(VerifiedManifest { manifest: m, hash: self.hash(), signed: self.clone() })
    }
}

/// A manifest whose sender signature has been checked. Only this opens
/// sealed details and chunks.
#[derive(Clone, Debug)]
pub struct VerifiedManifest {
    manifest: Manifest,
    hash: [u8; 32],
    signed: SignedManifest,
}

impl VerifiedManifest {
    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
    /// Its hash.
    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }
    /// The signed form.
    pub fn signed(&self) -> &SignedManifest {
        &self.signed
    }
}

/// What only the recipients see of one item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemDetails {
    /// Relative path, `/` separated.
    pub path: String,
    /// Plaintext size.
    pub size: u64,
    /// BLAKE3 of the whole plaintext.
    pub blake3: [u8; 32],
    /// Plaintext length of every chunk but the last.
    pub chunk_plain_len: u32,
    /// Exhibit reference (e.g. "JS/1").
    pub exhibit_ref: Option<String>,
    /// Description.
    pub description: Option<String>,
}

/// The sealed part of a manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedDetails {
    /// One entry per manifest item, same order.
    pub items: Vec<ItemDetails>,
    /// Free-text note from the sender.
    pub note: Option<String>,
}

impl SealedDetails {
    /// Check the details against the manifest they came in: same item count,
    /// safe distinct paths, chunk counts and lengths that add up. Returns the
    /// checked paths in item order.
    pub fn check(&self, m: &Manifest) -> Result<Vec<RelPath>, ProtoError> {
        if m.version != MANIFEST_V1 {
            return Err(ProtoError::Version { what: "inline sealed details", got: m.version });
        }
        if self.items.len() != m.items.len() {
            return Err(ProtoError::Mismatch {
                what: "sealed details item count",
                expected: m.items.len().to_string(),
                got: self.items.len().to_string(),
            });
        }
        too_large("note", self.note.as_ref().map_or(0, String::len), limits::MAX_TEXT)?;
        let paths = path::check_set(self.items.iter().map(|d| d.path.as_str()))?;
        let sealed_to = m.recipients.len() + 1;
        for (i, (d, item)) in self.items.iter().zip(&m.items).enumerate() {
            too_large("exhibit reference", d.exhibit_ref.as_ref().map_or(0, String::len), limits::MAX_TEXT)?;
            too_large("description", d.description.as_ref().map_or(0, String::len), limits::MAX_TEXT)?;
            if !(limits::MIN_CHUNK_SIZE..=limits::MAX_CHUNK_SIZE).contains(&d.chunk_plain_len) {
                return Err(ProtoError::Malformed {
                    what: "sealed details",
                    reason: format!("item {i}: chunk size {} out of range", d.chunk_plain_len),
                });
            }
            let want = chunk_count(d.size, d.chunk_plain_len);
            if want != item.chunks.len() as u64 {
                return Err(ProtoError::Mismatch {
                    what: "chunk count",
                    expected: want.to_string(),
                    got: item.chunks.len().to_string(),
                });
            }
            for (k, c) in item.chunks.iter().enumerate() {
                let plain = d.plain_len(k);
                let (got, max) = (u64::from(c.len), max_sealed_len(plain, sealed_to));
                if got < u64::from(plain) || got > max {
                    return Err(ProtoError::ChunkLength { index: k, expected: u64::from(plain), got });
                }
            }
        }
        Ok(paths)
    }
}

impl ItemDetails {
    /// Plaintext length of chunk `index`.
    pub fn plain_len(&self, index: usize) -> u32 {
        let start = index as u64 * u64::from(self.chunk_plain_len);
        self.size.saturating_sub(start).min(u64::from(self.chunk_plain_len)) as u32
    }
}

/// Number of chunks of a `size`-byte item cut at `chunk` bytes (0 for an
/// empty item).
pub fn chunk_count(size: u64, chunk: u32) -> u64 {
    size.div_ceil(u64::from(chunk.max(1)))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::directory::Role;

    pub(crate) fn entry(key: &SigningKey, user: &str) -> DirectoryEntry {
        DirectoryEntry {
            user: UserId::new(user).unwrap(),
            display_name: user.into(),
            org: "o".into(),
            role: Role::EvidenceUnit,
            age_recipient: "age1".into(),
            signing_key: key.verifying_key().to_bytes(),
            enrolled_at: 0,
            revoked_at: None,
            more_roles: vec![],
        }
    }

    /// A version 1 manifest of one one-chunk item.
    pub(crate) fn manifest() -> Manifest {
        let items = vec![ManifestItem { chunks: vec![ChunkRef { id: ChunkId([2; 32]), len: 1300 }] }];
        Manifest {
            version: MANIFEST_V1,
            transfer: TransferId([1; 16]),
            sender: UserId::new("alice").unwrap(),
            recipients: vec![UserId::new("bob").unwrap()],
            created_at: 10,
            ack_within_secs: Some(3600),
            case_ref: Some("CASE-1".into()),
            chunks: items[0].chunks.clone(),
            details_parts: vec![],
            items,
            details: vec![1, 2, 3],
            policy: None,
            approvers: vec![],
            derived_from: None,
            log_head: None,
        }
    }

    /// The same transfer as version 3: labelled, with an approver.
    pub(crate) fn manifest_v3() -> Manifest {
        Manifest {
            version: MANIFEST_V3,
            policy: Some(PolicySummary::of([&crate::labels::Labels::default()])),
            approvers: vec![UserId::new("carol").unwrap()],
            ..manifest_v2()
        }
    }

    /// The same transfer as version 2: one content chunk, one details part.
    pub(crate) fn manifest_v2() -> Manifest {
        Manifest {
            version: MANIFEST_V2,
            details_parts: vec![ChunkRef { id: ChunkId([3; 32]), len: 900 }],
            items: vec![],
            details: vec![],
            ..manifest()
        }
    }

    /// A forward (version 4) of items 0 to 2 and 5, item 1 redacted.
    pub(crate) fn manifest_v4() -> Manifest {
        Manifest {
            version: MANIFEST_V4,
            derived_from: Some(DerivedFrom {
                transfer: TransferId([5; 16]),
                manifest_hash: [6; 32],
                items: DerivedFrom::ranges(&[0, 1, 2, 5]),
                redacted: vec![1],
            }),
            ..manifest_v3()
        }
    }

    /// Version 5: the forward, with the sender's tree head.
    pub(crate) fn manifest_v5() -> Manifest {
        let key = SigningKey::from_bytes(&[4; 32]);
        let head = crate::tlog::TreeHead { size: 9, root: [8; 32], time: 7 }.sign(&key);
        Manifest { version: MANIFEST_VERSION, log_head: Some(head), ..manifest_v4() }
    }

    #[test]
    fn later_versions_are_the_earlier_bytes_with_fields_appended() {
        // As the builds that wrote them encoded each version, field by
        // field: signatures over stored manifests still verify.
        let m5 = manifest_v5();
        let v4 = manifest_v4().to_bytes();
        // The version is one byte (a postcard varint below 128).
        assert_eq!(m5.to_bytes(), [&[5u8][..], &v4[1..], &sign::encode(&m5.log_head)].concat());
        let m = manifest_v4();
        let v2 = (m.version, m.transfer, &m.sender, &m.recipients, m.created_at, m.ack_within_secs, &m.case_ref);
        let flat_v4 =
            sign::encode(&(v2, &m.chunks, &m.details_parts, m.policy.unwrap(), &m.approvers, &m.derived_from));
        assert_eq!(m.to_bytes(), flat_v4);
        let m3 = manifest_v3();
        let v2 = (m3.version, m3.transfer, &m3.sender, &m3.recipients, m3.created_at, m3.ack_within_secs, &m3.case_ref);
        assert_eq!(
            m3.to_bytes(),
            sign::encode(&(v2, &m3.chunks, &m3.details_parts, m3.policy.unwrap(), &m3.approvers))
        );
        let m2 = manifest_v2();
        let v2 = (m2.version, m2.transfer, &m2.sender, &m2.recipients, m2.created_at, m2.ack_within_secs, &m2.case_ref);
        assert_eq!(m2.to_bytes(), sign::encode(&(v2, &m2.chunks, &m2.details_parts)));
    }

    #[test]
    fn derived_from_is_bounded_and_ordered() {
        let d = manifest_v4().derived_from.unwrap();
        assert_eq!(d.items, vec![(0, 3), (5, 1)]);
        assert!(d.carries(2) && d.carries(5) && !d.carries(3) && !d.carries(6));
        assert_eq!(d.count(), 4);
        d.check_bounds().unwrap();
        for bad in [
            DerivedFrom { items: vec![], ..d.clone() },
            DerivedFrom { items: vec![(5, 1), (0, 3)], ..d.clone() },
            DerivedFrom { items: vec![(0, 3), (2, 1)], ..d.clone() },
            DerivedFrom { items: vec![(0, 0)], redacted: vec![], ..d.clone() },
            DerivedFrom { redacted: vec![3], ..d.clone() },
            DerivedFrom { redacted: vec![1, 1], ..d.clone() },
        ] {
            assert!(bad.check_bounds().is_err(), "{bad:?}");
        }
        let mut m = manifest_v4();
        m.derived_from = Some(DerivedFrom { redacted: vec![4], ..d });
        assert!(Manifest::from_bytes(&m.to_bytes()).unwrap().check_bounds().is_err());
    }

    #[test]
    fn both_versions_round_trip_and_v1_bytes_are_unchanged() {
        for m in [manifest(), manifest_v2(), manifest_v3(), manifest_v4(), manifest_v5()] {
            let bytes = m.to_bytes();
            assert_eq!(Manifest::from_bytes(&bytes).unwrap(), m);
            m.check_bounds().unwrap();
        }
        // Version 1 bytes are the struct's fields in order, as the first
        // release encoded them: signatures over them still verify.
        let v1 = manifest();
        let legacy = sign::encode(&WireV1 {
            version: 1,
            transfer: v1.transfer,
            sender: v1.sender.clone(),
            recipients: v1.recipients.clone(),
            created_at: v1.created_at,
            ack_within_secs: v1.ack_within_secs,
            case_ref: v1.case_ref.clone(),
            items: v1.items.clone(),
            details: v1.details.clone(),
        });
        assert_eq!(v1.to_bytes(), legacy);
        let mut bad = manifest_v2();
        bad.details_parts.clear();
        assert!(bad.check_bounds().is_err(), "a version 2 manifest without details");
        let mut bad = manifest_v2();
        bad.items = manifest().items;
        assert!(bad.check_bounds().is_err(), "a version 2 manifest with items");
        let mut bytes = manifest_v2().to_bytes();
        bytes[0] = 9;
        assert!(matches!(Manifest::from_bytes(&bytes), Err(ProtoError::Version { got: 9, .. })));
    }

    #[test]
    fn signature_binds_sender_and_content() {
        let k = SigningKey::from_bytes(&rand::random());
        let s = manifest().sign(&k);
        assert!(s.verify(&entry(&k, "alice")).is_ok());
        assert!(s.verify(&entry(&k, "mallory")).is_err(), "wrong sender accepted");
        let other = SigningKey::from_bytes(&rand::random());
        assert!(s.verify(&entry(&other, "alice")).is_err(), "wrong key accepted");
        let mut tampered = s.clone();
        let n = tampered.bytes.len();
        tampered.bytes[n - 1] ^= 1;
        assert!(tampered.verify(&entry(&k, "alice")).is_err(), "tampered bytes accepted");
    }

    #[test]
    fn bounds() {
        let mut m = manifest();
        m.recipients.push(m.recipients[0].clone());
        assert!(m.check_bounds().is_err());
        let mut m = manifest();
        m.chunks[0].len = u32::MAX;
        assert!(m.check_bounds().is_err());
        assert!(SignedManifest { bytes: vec![0xff; 10], signature: vec![] }.decode_unverified().is_err());
    }

    #[test]
    fn details_must_add_up() {
        let m = manifest();
        let d = |size| SealedDetails {
            items: vec![ItemDetails {
                path: "a".into(),
                size,
                blake3: [0; 32],
                chunk_plain_len: 1024,
                exhibit_ref: None,
                description: None,
            }],
            note: None,
        };
        assert!(d(1000).check(&m).is_ok());
        assert!(d(1025).check(&m).is_err(), "two chunks expected, one listed");
        assert!(d(0).check(&m).is_err());
    }

    #[test]
    fn chunk_arithmetic() {
        assert_eq!(chunk_count(0, 4), 0);
        assert_eq!(chunk_count(1, 4), 1);
        assert_eq!(chunk_count(4, 4), 1);
        assert_eq!(chunk_count(5, 4), 2);
    }
}
