//! Sealing and opening chunks and details with age (feature `seal`).
//!
//! Every chunk is its own age file, encrypted to every recipient and the
//! sender. Opening takes a [`VerifiedManifest`]: nothing is decrypted before
//! the sender's signature has been checked.

use age::x25519;

use crate::agefile;
use crate::error::{AgeError, ProtoError};
use crate::ids::ChunkId;
use crate::manifest::{SealedDetails, VerifiedManifest};
use crate::sign;
use crate::treehash;

/// Parse age recipients (`age1…`).
pub fn parse_recipients(rs: &[&str]) -> Result<Vec<x25519::Recipient>, ProtoError> {
    rs.iter()
        .map(|r| {
            r.parse::<x25519::Recipient>()
                .map_err(|e| ProtoError::Malformed { what: "age recipient", reason: e.to_string() })
        })
        .collect()
}

/// Encrypt `plain` to every recipient.
pub fn encrypt(plain: &[u8], recipients: &[x25519::Recipient]) -> Result<Vec<u8>, ProtoError> {
    let max = crate::limits::max_sealed_len(plain.len() as u32, recipients.len());
    let len = usize::try_from(max).map_err(|_| ProtoError::TooLarge {
        what: "sealed file",
        got: max,
        max: usize::MAX as u64,
    })?;
    let mut out = vec![0u8; len];
    let n = encrypt_into(plain, recipients, &mut out)?;
    out.truncate(n);
    Ok(out)
}

/// [`encrypt`] into `out`, which must hold
/// [`max_sealed_len`](crate::limits::max_sealed_len) bytes; returns the
/// sealed length.
pub fn encrypt_into(plain: &[u8], recipients: &[x25519::Recipient], out: &mut [u8]) -> Result<usize, ProtoError> {
    agefile::encrypt_into(plain, recipients, out).map_err(ProtoError::Encrypt)
}

/// Where a chunk's plaintext goes in a buffer so that [`seal_chunk`] seals
/// it where it lies: read it into [`slots`](ChunkLayout::slots) and the
/// plaintext is never copied.
#[derive(Clone, Copy, Debug)]
pub struct ChunkLayout {
    room: usize,
    plain_len: usize,
}

impl ChunkLayout {
    /// For `plain_len` bytes sealed to `recipients` recipients.
    pub fn new(plain_len: usize, recipients: usize) -> Self {
        ChunkLayout { room: agefile::header_room(recipients), plain_len }
    }

    /// The plaintext's length.
    pub fn plain_len(&self) -> usize {
        self.plain_len
    }

    /// How long the buffer must be.
    pub fn buf_len(&self) -> usize {
        self.room + agefile::payload_len(self.plain_len)
    }

    /// The plaintext's places in `buf`, in order: 64 KiB each, the last
    /// shorter.
    pub fn slots<'a>(&self, buf: &'a mut [u8]) -> impl Iterator<Item = &'a mut [u8]> {
        agefile::plain_slots(buf.get_mut(self.room..).unwrap_or_default(), self.plain_len)
    }

    /// Copy `plain` (of the layout's length) into its places in `buf`,
    /// for plaintext that was not read there directly.
    pub fn fill(&self, buf: &mut [u8], plain: &[u8]) {
        let mut rest = plain;
        for slot in self.slots(buf) {
            let (now, later) = rest.split_at(slot.len().min(rest.len()));
            slot[..now.len()].copy_from_slice(now);
            rest = later;
        }
    }
}

/// A chunk sealed by [`seal_chunk`].
#[derive(Debug)]
pub struct SealedChunk {
    /// Where in the buffer the sealed chunk is.
    pub range: std::ops::Range<usize>,
    /// BLAKE3 of the sealed bytes: its address.
    pub id: ChunkId,
    /// Its plaintext's [`treehash`] chunk hash, when asked for.
    pub plain_hash: Option<[u8; 32]>,
}

/// Seal a chunk whose plaintext is in `buf` as `layout` places it, in place,
/// to every recipient; hash the ciphertext for its id and (when `tree`
/// gives its place in the file) the plaintext for the file's hash, segment
/// by segment as each is sealed, while the bytes are in cache.
pub fn seal_chunk(
    buf: &mut [u8],
    layout: ChunkLayout,
    recipients: &[x25519::Recipient],
    tree: Option<treehash::Place>,
) -> Result<SealedChunk, ProtoError> {
    let mut plain_hash = tree.map(treehash::ChunkHasher::new);
    let mut id = blake3::Hasher::new();
    let range = agefile::encrypt_in_place(
        buf,
        layout.room,
        layout.plain_len,
        recipients,
        &mut |p| {
            if let Some(h) = plain_hash.as_mut() {
                h.update(p);
            }
        },
        &mut |c| {
            id.update(c);
        },
    )
    .map_err(ProtoError::Encrypt)?;
    Ok(SealedChunk { range, id: ChunkId(*id.finalize().as_bytes()), plain_hash: plain_hash.map(|h| h.finalize()) })
}

/// Decrypt a plaintext of at most `max_plain` bytes.
fn decrypt(cipher: &[u8], identity: &x25519::Identity, what: &str, max_plain: usize) -> Result<Vec<u8>, ProtoError> {
    // age's plaintext is shorter than its ciphertext.
    let mut out = vec![0u8; max_plain.min(cipher.len())];
    let n = decrypt_into(cipher, identity, what, &mut out)?;
    out.truncate(n);
    Ok(out)
}

/// Seal the details to the manifest's recipients and sender.
pub fn seal_details(details: &SealedDetails, recipients: &[x25519::Recipient]) -> Result<Vec<u8>, ProtoError> {
    encrypt(&sign::encode(details), recipients)
}

/// Open and check the sealed details of a verified manifest.
pub fn open_details(m: &VerifiedManifest, identity: &x25519::Identity) -> Result<SealedDetails, ProtoError> {
    let plain = decrypt(&m.manifest().details, identity, "sealed details", crate::limits::MAX_MANIFEST)?;
    let d: SealedDetails = sign::decode(&plain, "sealed details")?;
    d.check(m.manifest())?;
    Ok(d)
}

/// Open sealed-details part `index` of a verified version 2 manifest: its
/// bytes must hash to the manifest's id and decrypt with `identity` to at
/// most [`crate::details::PART_LEN`] bytes.
pub fn open_part(
    m: &VerifiedManifest,
    index: usize,
    cipher: &[u8],
    identity: &x25519::Identity,
) -> Result<Vec<u8>, ProtoError> {
    let want = m
        .manifest()
        .details_parts
        .get(index)
        .ok_or(ProtoError::Malformed { what: "details part reference", reason: format!("no details part {index}") })?;
    let got = ChunkId::of(cipher);
    if got != want.id {
        return Err(ProtoError::ChunkHashMismatch { index, expected: want.id.to_string(), got: got.to_string() });
    }
    decrypt(cipher, identity, "sealed details", crate::details::PART_LEN)
}

/// Check and open content chunk `index` (of the manifest's `chunks`) into `out`, which must be
/// exactly as long as the chunk's plaintext: the bytes must hash to the
/// manifest's id, have its length, decrypt with `identity`, and fill `out`
/// exactly. When `tree` gives the chunk's place in the file, its
/// plaintext's [`treehash`] chunk hash is returned. Both hashes are taken
/// segment by segment as each is opened, while the bytes are in cache; on
/// any failure `out` is zeroed, and the error is the first of those checks
/// that fails. Opening before the id is
/// known costs a server that sends wrong bytes at most a bounded number of
/// X25519 attempts and one decryption, of a chunk no longer than the
/// signed manifest allows, before they are refused.
pub fn open_chunk_into(
    m: &VerifiedManifest,
    index: usize,
    cipher: &[u8],
    identity: &x25519::Identity,
    out: &mut [u8],
    tree: Option<treehash::Place>,
) -> Result<Option<[u8; 32]>, ProtoError> {
    let want = m
        .manifest()
        .chunks
        .get(index)
        .ok_or(ProtoError::Malformed { what: "chunk reference", reason: format!("no chunk {index}") })?;
    let mut id = blake3::Hasher::new();
    let mut plain = tree.map(treehash::ChunkHasher::new);
    let opened = agefile::decrypt_watched(
        cipher,
        identity,
        out,
        &mut |c| {
            id.update(c);
        },
        &mut |p| {
            if let Some(h) = plain.as_mut() {
                h.update(p);
            }
        },
    );
    match opened {
        Ok(n) if n == out.len() && cipher.len() as u64 == u64::from(want.len) && id.finalize() == want.id.0 => {
            return Ok(plain.map(|h| h.finalize()));
        }
        _ => out.fill(0),
    }
    let got = ChunkId::of(cipher);
    if got != want.id {
        return Err(ProtoError::ChunkHashMismatch { index, expected: want.id.to_string(), got: got.to_string() });
    }
    if cipher.len() as u64 != u64::from(want.len) {
        return Err(ProtoError::ChunkLength { index, expected: want.len.into(), got: cipher.len() as u64 });
    }
    let n = opened.map_err(opening(format!("chunk {index}")))?;
    Err(ProtoError::ChunkLength { index, expected: out.len() as u64, got: n as u64 })
}

/// Decrypt into `out`; the plaintext's length if it is shorter, an error if
/// it is longer. `what` names the file in the error.
pub fn decrypt_into(
    cipher: &[u8],
    identity: &x25519::Identity,
    what: &str,
    out: &mut [u8],
) -> Result<usize, ProtoError> {
    agefile::decrypt_into(cipher, identity, out).map_err(opening(what.to_owned()))
}

/// The error for an age file `what` that did not open: addressed to
/// someone else, or not what was sealed.
fn opening(what: String) -> impl FnOnce(AgeError) -> ProtoError {
    move |reason| match reason {
        AgeError::NoMatchingKeys => ProtoError::NotAddressed { what },
        reason => ProtoError::Decrypt { what, reason },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_recipients_decrypt_and_tamper_is_caught() {
        let a = x25519::Identity::generate();
        let b = x25519::Identity::generate();
        let eve = x25519::Identity::generate();
        let c = encrypt(b"evidence", &[a.to_public(), b.to_public()]).unwrap();
        assert_eq!(decrypt(&c, &a, "t", 8).unwrap(), b"evidence");
        assert_eq!(decrypt(&c, &b, "t", 8).unwrap(), b"evidence");
        assert!(decrypt(&c, &eve, "t", 8).is_err());
        assert!(decrypt(&c, &a, "t", 7).is_err(), "over-long plaintext accepted");
        let mut t = c.clone();
        let n = t.len();
        t[n - 3] ^= 1;
        assert!(decrypt(&t, &a, "t", 8).is_err());
        assert!(decrypt(&[], &a, "t", 8).is_err());
    }

    #[test]
    fn decrypt_into_reports_short_and_refuses_long() {
        let a = x25519::Identity::generate();
        let plain: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let c = encrypt(&plain, &[a.to_public()]).unwrap();
        let mut exact = vec![0u8; plain.len()];
        assert_eq!(decrypt_into(&c, &a, "t", &mut exact).unwrap(), plain.len());
        assert_eq!(exact, plain);
        let mut long = vec![0u8; plain.len() + 1];
        assert_eq!(decrypt_into(&c, &a, "t", &mut long).unwrap(), plain.len());
        let mut short = vec![0u8; plain.len() - 1];
        assert!(decrypt_into(&c, &a, "t", &mut short).is_err(), "over-long plaintext accepted");
        assert!(decrypt_into(&c, &a, "t", &mut []).is_err(), "plaintext where none was declared");
    }

    #[test]
    fn encrypt_into_opens_and_refuses_a_short_buffer() {
        let a = x25519::Identity::generate();
        let plain: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let mut out = vec![0u8; crate::limits::max_sealed_len(plain.len() as u32, 1) as usize];
        let n = encrypt_into(&plain, &[a.to_public()], &mut out).unwrap();
        assert_eq!(decrypt(&out[..n], &a, "t", plain.len()).unwrap(), plain);
        assert!(encrypt_into(&plain, &[a.to_public()], &mut out[..plain.len()]).is_err(), "overflow not reported");
    }

    #[test]
    fn sealed_len_bound_holds() {
        let rs: Vec<_> = (0..5).map(|_| x25519::Identity::generate().to_public()).collect();
        // The grease stanza is random: try many times per size.
        for n in [0usize, 1, 65535, 65536, 65537, 300_000] {
            for _ in 0..50 {
                let c = encrypt(&vec![0u8; n], &rs[..1 + n % 5]).unwrap();
                let max = crate::limits::max_sealed_len(n as u32, 1 + n % 5);
                assert!(c.len() as u64 <= max, "{n}: {} > {max}", c.len());
            }
        }
    }
    /// Plaintext placed as `layout` says, sealed in place to `rs`.
    fn sealed_in_place(
        plain: &[u8],
        rs: &[x25519::Recipient],
        tree: Option<treehash::Place>,
    ) -> (Vec<u8>, SealedChunk) {
        let layout = ChunkLayout::new(plain.len(), rs.len());
        let mut buf = vec![0xAA; layout.buf_len()];
        assert_eq!(layout.slots(&mut buf).map(|s| s.len()).sum::<usize>(), plain.len(), "slots do not hold it");
        layout.fill(&mut buf, plain);
        let s = seal_chunk(&mut buf, layout, rs, tree).unwrap();
        (buf, s)
    }

    #[test]
    fn a_chunk_sealed_in_place_opens_and_carries_both_hashes() {
        let ids: Vec<_> = (0..3).map(|_| x25519::Identity::generate()).collect();
        let rs: Vec<_> = ids.iter().map(|i| i.to_public()).collect();
        let chunk = 4u32 << 20;
        let total = 3 * u64::from(chunk) + 7;
        for n in [1usize, 65535, 65536, 65537, 3 * 65536 + 5, chunk as usize] {
            let plain: Vec<u8> = (0..n).map(|i| (i * 7 + n) as u8).collect();
            let place = treehash::Place { index: 1, chunk_len: chunk, total };
            let (buf, s) = sealed_in_place(&plain, &rs[..1 + n % 3], Some(place));
            let file = &buf[s.range.clone()];
            assert_eq!(s.id, ChunkId::of(file), "{n}: id is not the hash of the sealed bytes");
            assert_eq!(s.plain_hash, Some(treehash::chunk_hash(&plain, place)), "{n}");
            assert_eq!(decrypt(file, &ids[0], "t", n).unwrap(), plain, "{n}");
            assert_eq!(sealed_in_place(&plain, &rs[..1], None).1.plain_hash, None);
        }
    }

    #[test]
    fn sealing_in_place_refuses_a_short_buffer_or_too_little_room() {
        let rs: Vec<_> = (0..3).map(|_| x25519::Identity::generate().to_public()).collect();
        let layout = ChunkLayout::new(70_000, 3);
        let mut short = vec![0u8; layout.buf_len() - 1];
        assert!(seal_chunk(&mut short, layout, &rs, None).is_err(), "short buffer accepted");
        // Room for one recipient's header, sealed to three.
        let small = ChunkLayout::new(70_000, 1);
        let mut buf = vec![0u8; small.buf_len()];
        assert!(seal_chunk(&mut buf, small, &rs, None).is_err(), "header written over the plaintext");
    }

    #[test]
    fn open_chunk_into_checks_the_id_even_of_a_file_that_opens() {
        use crate::manifest::tests::{entry, manifest};
        use crate::manifest::{ChunkRef, ManifestItem};
        let bob = x25519::Identity::generate();
        let rs = [bob.to_public()];
        let plain = vec![5u8; 100_000];
        let (ours, theirs) = (encrypt(&plain, &rs).unwrap(), encrypt(&plain, &rs).unwrap());
        assert_eq!(ours.len(), theirs.len());
        let key = ed25519_dalek::SigningKey::from_bytes(&rand::random());
        // The manifest's test transfer from alice, naming this one chunk.
        let mut m = manifest();
        m.items = vec![ManifestItem { chunks: vec![ChunkRef { id: ChunkId::of(&ours), len: ours.len() as u32 }] }];
        m.chunks = m.items[0].chunks.clone();
        let vm = m.sign(&key).verify(&entry(&key, "alice")).unwrap();
        let tree = Some(treehash::Place { index: 0, chunk_len: 1 << 20, total: plain.len() as u64 });
        let mut out = vec![0u8; plain.len()];
        let h = open_chunk_into(&vm, 0, &ours, &bob, &mut out, tree).unwrap();
        assert_eq!((out.as_slice(), h), (plain.as_slice(), Some(*blake3::hash(&plain).as_bytes())));

        // Another valid file of the same plaintext and length: it opens, but
        // it is not the chunk the sender signed for.
        let err = open_chunk_into(&vm, 0, &theirs, &bob, &mut out, tree).unwrap_err();
        assert!(matches!(err, ProtoError::ChunkHashMismatch { .. }), "{err}");
        assert!(out.iter().all(|&b| b == 0), "plaintext of a refused chunk left in the buffer");
        let err = open_chunk_into(&vm, 0, &ours[..ours.len() - 1], &bob, &mut out, tree).unwrap_err();
        assert!(matches!(err, ProtoError::ChunkHashMismatch { .. }), "{err}");
        let err = open_chunk_into(&vm, 0, &ours, &x25519::Identity::generate(), &mut out, tree).unwrap_err();
        assert!(matches!(err, ProtoError::NotAddressed { .. }), "{err}");
        let mut long = vec![0u8; plain.len() + 1];
        let err = open_chunk_into(&vm, 0, &ours, &bob, &mut long, tree).unwrap_err();
        assert!(matches!(err, ProtoError::ChunkLength { .. }), "{err}");
        assert!(long.iter().all(|&b| b == 0), "plaintext of a refused chunk left in the buffer");
        assert!(open_chunk_into(&vm, 1, &ours, &bob, &mut out, tree).is_err(), "a chunk the manifest lacks");
    }
}
