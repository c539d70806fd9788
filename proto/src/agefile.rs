//! The age v1 file format (<https://age-encryption.org/v1>), written into and
//! read from caller-owned buffers.
//!
//! The `age` crate's stream copies every byte three times on the way in and
//! three on the way out, allocates per 64 KiB segment, and its
//! ChaCha20-Poly1305 ran at 1.46 GiB/s here against aws-lc's 2.3 GiB/s.
//! Chunks are encrypted and decrypted at the rate the network moves them, so
//! this module does the framing itself with aws-lc's primitives and leaves
//! what belongs to a recipient type to the `age` crate: X25519 wrapping and
//! unwrapping of the file key (`age::Recipient`, `age::Identity`). Output is
//! an ordinary age file: the tests read each side with the other.
//!
//! Construction (from the spec): a random 16-byte file key; each recipient
//! stanza wraps it; the header is MACed with HMAC-SHA256 under
//! HKDF-SHA256(file key, salt "", "header"); the payload is a random 16-byte
//! nonce and then the plaintext in 64 KiB segments, each sealed with
//! ChaCha20-Poly1305 under HKDF-SHA256(file key, nonce, "payload") with the
//! nonce `counter (11 bytes, big-endian) || last (1 byte)`.

use age::secrecy::ExposeSecret;
use age::x25519;
use age_core::format::{FileKey, Stanza};
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};
use aws_lc_rs::{hkdf, hmac};
use base64::Engine;

use crate::error::AgeError;

const INTRO: &[u8] = b"age-encryption.org/v1\n";
const SEGMENT: usize = 64 << 10;
const TAG: usize = 16;
const NONCE: usize = 16;
/// Base64 columns of a stanza body line.
const COLUMNS: usize = 64;
/// More stanzas than this is not a file exhibit wrote (each costs an X25519
/// agreement to try).
const MAX_STANZAS: usize = crate::limits::MAX_RECIPIENTS + 8;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD_NO_PAD;

/// Why a file could not be made or opened; the caller adds what it was.
pub(crate) type Fail = AgeError;

/// Segments for `plain_len` bytes: an empty plaintext is one empty segment.
fn segments(plain_len: usize) -> usize {
    plain_len.div_ceil(SEGMENT).max(1)
}

fn stream_nonce(counter: usize, last: bool) -> Nonce {
    let mut n = [0u8; 12];
    n[3..11].copy_from_slice(&(counter as u64).to_be_bytes());
    n[11] = u8::from(last);
    Nonce::assume_unique_for_key(n)
}

fn header_key(file_key: &FileKey) -> Result<hmac::Key, Fail> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]).extract(file_key.expose_secret());
    let okm = prk.expand(&[b"header"], hmac::HMAC_SHA256).map_err(|_| AgeError::Crypto("header key"))?;
    Ok(hmac::Key::from(okm))
}

fn payload_key(file_key: &FileKey, nonce: &[u8]) -> Result<LessSafeKey, Fail> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, nonce).extract(file_key.expose_secret());
    let okm = prk.expand(&[b"payload"], &CHACHA20_POLY1305).map_err(|_| AgeError::Crypto("payload key"))?;
    Ok(LessSafeKey::new(UnboundKey::from(okm)))
}

/// Encrypt `plain` to `recipients` into `out`; the file's length, or why not
/// (including an `out` too small for it).
pub(crate) fn encrypt_into(plain: &[u8], recipients: &[x25519::Recipient], out: &mut [u8]) -> Result<usize, Fail> {
    let (file_key, header) = new_header(recipients)?;
    let total = header.len() + payload_len(plain.len());
    let have = out.len();
    let out = out.get_mut(..total).ok_or(AgeError::BufferTooSmall { need: total, have })?;
    let (head, payload) = out.split_at_mut(header.len());
    head.copy_from_slice(&header);
    for (slot, seg) in plain_slots(payload, plain.len()).zip(plain.chunks(SEGMENT)) {
        slot.copy_from_slice(seg);
    }
    seal_payload(&file_key, payload, plain.len(), &mut |_| {}, &mut |_| {})?;
    Ok(total)
}

/// The room [`encrypt_in_place`] needs before the payload for the header
/// of a file to `recipients` recipients (an X25519 stanza is 98 bytes).
pub(crate) fn header_room(recipients: usize) -> usize {
    INTRO.len() + 128 * recipients + 64
}

/// The bytes from the nonce to the end for `plain_len` bytes of plaintext.
pub(crate) fn payload_len(plain_len: usize) -> usize {
    NONCE + plain_len + TAG * segments(plain_len)
}

/// The slots of a payload (nonce, then segments each followed by its tag)
/// that hold the plaintext: `plain_len` bytes in 64 KiB segments.
pub(crate) fn plain_slots(payload: &mut [u8], plain_len: usize) -> impl Iterator<Item = &mut [u8]> {
    payload
        .get_mut(NONCE..)
        .unwrap_or_default()
        .chunks_mut(SEGMENT + TAG)
        .enumerate()
        .map(move |(i, s)| {
            let len = plain_len.saturating_sub(i * SEGMENT).min(SEGMENT).min(s.len());
            &mut s[..len]
        })
        .take(plain_len.div_ceil(SEGMENT))
}

/// Encrypt a plaintext already in place: `buf[room..]` is a payload of
/// `plain_len` bytes whose [`plain_slots`] hold the plaintext. The header
/// is written just before `room` (which must be at least
/// [`header_room`]), then the nonce, and each segment is sealed where it
/// lies. `on_plain` sees each plaintext segment before it is sealed and
/// `on_sealed` the file's bytes in order (header, nonce, then each sealed
/// segment), while they are in cache: hashing them there costs no second
/// pass through memory. Where in `buf` the file is.
pub(crate) fn encrypt_in_place(
    buf: &mut [u8],
    room: usize,
    plain_len: usize,
    recipients: &[x25519::Recipient],
    on_plain: &mut dyn FnMut(&[u8]),
    on_sealed: &mut dyn FnMut(&[u8]),
) -> Result<std::ops::Range<usize>, Fail> {
    let (file_key, header) = new_header(recipients)?;
    let end = room + payload_len(plain_len);
    let start = room.checked_sub(header.len()).ok_or(AgeError::BufferTooSmall { need: header.len(), have: room })?;
    let have = buf.len();
    let file = buf.get_mut(start..end).ok_or(AgeError::BufferTooSmall { need: end, have })?;
    let (head, payload) = file.split_at_mut(header.len());
    head.copy_from_slice(&header);
    on_sealed(head);
    seal_payload(&file_key, payload, plain_len, on_plain, on_sealed)?;
    Ok(start..end)
}

/// A fresh file key and the header wrapping it to `recipients`.
fn new_header(recipients: &[x25519::Recipient]) -> Result<(FileKey, Vec<u8>), Fail> {
    // No stanza would be a file nobody can open.
    if recipients.is_empty() {
        return Err(AgeError::NoRecipients);
    }
    let file_key = FileKey::try_init_with_mut(|k| aws_lc_rs::rand::fill(k)).map_err(|_| AgeError::NoRandomness)?;
    let mut header = Vec::with_capacity(header_room(recipients.len()));
    header.extend_from_slice(INTRO);
    for r in recipients {
        let (stanzas, _labels) =
            age::Recipient::wrap_file_key(r, &file_key).map_err(|e| AgeError::Wrap(e.to_string()))?;
        for s in stanzas {
            write_stanza(&mut header, &s);
        }
    }
    header.extend_from_slice(b"---");
    let mac = hmac::sign(&header_key(&file_key)?, &header);
    header.push(b' ');
    header.extend_from_slice(B64.encode(mac.as_ref()).as_bytes());
    header.push(b'\n');
    Ok((file_key, header))
}

/// Fill the nonce of `payload` ([`payload_len`] of `plain_len`, plaintext
/// in its slots) and seal each segment in place, its tag after it.
fn seal_payload(
    file_key: &FileKey,
    payload: &mut [u8],
    plain_len: usize,
    on_plain: &mut dyn FnMut(&[u8]),
    on_sealed: &mut dyn FnMut(&[u8]),
) -> Result<(), Fail> {
    let (nonce, segs) = payload.split_at_mut(NONCE);
    aws_lc_rs::rand::fill(nonce).map_err(|_| AgeError::NoRandomness)?;
    let key = payload_key(file_key, nonce)?;
    on_sealed(nonce);
    let n = segments(plain_len);
    for (i, ct) in segs.chunks_mut(SEGMENT + TAG).enumerate() {
        let (body, tag) = ct.split_at_mut(ct.len() - TAG);
        on_plain(body);
        let t = key
            .seal_in_place_separate_tag(stream_nonce(i, i + 1 == n), Aad::empty(), body)
            .map_err(|_| AgeError::Crypto("sealing a segment"))?;
        tag.copy_from_slice(t.as_ref());
        on_sealed(ct);
    }
    Ok(())
}

/// A stanza as the spec writes it: `-> tag args…`, then the body in base64
/// lines of 64 columns, the last one shorter (so possibly empty).
fn write_stanza(h: &mut Vec<u8>, s: &Stanza) {
    h.extend_from_slice(b"-> ");
    h.extend_from_slice(s.tag.as_bytes());
    for a in &s.args {
        h.push(b' ');
        h.extend_from_slice(a.as_bytes());
    }
    h.push(b'\n');
    let body = B64.encode(&s.body);
    for line in body.as_bytes().chunks(COLUMNS) {
        h.extend_from_slice(line);
        h.push(b'\n');
    }
    if body.len().is_multiple_of(COLUMNS) {
        h.push(b'\n');
    }
}

/// A parsed header: its stanzas, the bytes its MAC covers, the MAC, and
/// where the payload starts.
struct Header<'a> {
    stanzas: Vec<Stanza>,
    macced: &'a [u8],
    mac: Vec<u8>,
    len: usize,
}

/// One line, without its `\n`, and the rest after it.
fn line(b: &[u8]) -> Result<(&[u8], &[u8]), Fail> {
    let end = b.iter().position(|&c| c == b'\n').ok_or_else(|| bad_header("header line without an end"))?;
    Ok((&b[..end], &b[end + 1..]))
}

fn bad_header(reason: impl ToString) -> AgeError {
    AgeError::BadHeader { reason: reason.to_string() }
}

/// Parse a header exactly as the spec writes one; anything else is refused.
fn parse_header(file: &[u8]) -> Result<Header<'_>, Fail> {
    let mut rest = file.strip_prefix(INTRO).ok_or(AgeError::Unsupported)?;
    let mut stanzas = vec![];
    loop {
        let (l, after) = line(rest)?;
        if let Some(mac) = l.strip_prefix(b"--- ") {
            let macced = &file[..file.len() - rest.len() + 3];
            let mac = B64.decode(mac).map_err(|e| bad_header(format!("header MAC: {e}")))?;
            return Ok(Header { stanzas, macced, mac, len: file.len() - after.len() });
        }
        let words = l.strip_prefix(b"-> ").ok_or_else(|| bad_header("malformed header line"))?;
        let mut args = vec![];
        for w in words.split(|&c| c == b' ') {
            if w.is_empty() || !w.iter().all(|c| (33..=126).contains(c)) {
                return Err(bad_header("malformed stanza"));
            }
            args.push(String::from_utf8_lossy(w).into_owned());
        }
        if stanzas.len() == MAX_STANZAS {
            return Err(bad_header("too many stanzas"));
        }
        rest = after;
        let mut body = vec![];
        loop {
            let (l, after) = line(rest)?;
            rest = after;
            if l.len() > COLUMNS {
                return Err(bad_header("stanza body line too long"));
            }
            body.extend_from_slice(l);
            if l.len() < COLUMNS {
                break;
            }
        }
        let body = B64.decode(&body).map_err(|e| bad_header(format!("stanza body: {e}")))?;
        let tag = args.remove(0);
        stanzas.push(Stanza { tag, args, body });
    }
}

/// Decrypt an age file with `identity` into `out`: the plaintext's length,
/// or why not (including a plaintext longer than `out`).
pub(crate) fn decrypt_into(file: &[u8], identity: &x25519::Identity, out: &mut [u8]) -> Result<usize, Fail> {
    decrypt_watched(file, identity, out, &mut |_| {}, &mut |_| {})
}

/// [`decrypt_into`], showing `on_sealed` the file's bytes in order (header
/// and nonce, then each segment before it is opened) and `on_plain` each
/// segment's plaintext once it has authenticated, while both are in cache.
/// On an error they may not have seen the whole file.
pub(crate) fn decrypt_watched(
    file: &[u8],
    identity: &x25519::Identity,
    out: &mut [u8],
    on_sealed: &mut dyn FnMut(&[u8]),
    on_plain: &mut dyn FnMut(&[u8]),
) -> Result<usize, Fail> {
    let h = parse_header(file)?;
    let file_key = match age::Identity::unwrap_stanzas(identity, &h.stanzas) {
        Some(Ok(k)) => k,
        // A stanza of our type that is not well formed.
        Some(Err(e)) => return Err(bad_header(e)),
        None => return Err(AgeError::NoMatchingKeys),
    };
    hmac::verify(&header_key(&file_key)?, h.macced, &h.mac).map_err(|_| AgeError::InvalidHeaderMac)?;
    let payload = &file[h.len..];
    if payload.len() < NONCE + TAG {
        return Err(AgeError::Truncated);
    }
    let (nonce, sealed) = payload.split_at(NONCE);
    let n = sealed.len().div_ceil(SEGMENT + TAG);
    let last = sealed.len() - (n - 1) * (SEGMENT + TAG);
    if last < TAG {
        return Err(AgeError::Truncated);
    }
    // Only a file's one and only segment may be empty.
    if last == TAG && n > 1 {
        return Err(AgeError::Truncated);
    }
    let plain_len = sealed.len() - n * TAG;
    let room = out.len();
    let out = out.get_mut(..plain_len).ok_or(AgeError::PlaintextTooLong { room, got: plain_len })?;
    let key = payload_key(&file_key, nonce)?;
    on_sealed(&file[..h.len + NONCE]);
    open_segments(&key, sealed, out, on_sealed, on_plain).inspect_err(|_| {
        // Nothing unauthenticated is left behind for a careless caller.
        out.fill(0);
    })?;
    Ok(plain_len)
}

/// Open the STREAM segments of `sealed` into `out`, which is exactly as
/// long as their plaintext.
fn open_segments(
    key: &LessSafeKey,
    sealed: &[u8],
    out: &mut [u8],
    on_sealed: &mut dyn FnMut(&[u8]),
    on_plain: &mut dyn FnMut(&[u8]),
) -> Result<(), Fail> {
    let n = sealed.len().div_ceil(SEGMENT + TAG);
    for (i, (ct, pt)) in
        sealed.chunks(SEGMENT + TAG).zip(out.chunks_mut(SEGMENT).chain(std::iter::once(&mut [][..]))).enumerate()
    {
        on_sealed(ct);
        let (body, tag) = ct.split_at(ct.len() - TAG);
        let pt = &mut pt[..body.len()];
        key.open_separate_gather(stream_nonce(i, i + 1 == n), Aad::empty(), body, tag, pt)
            .map_err(|_| AgeError::InvalidMac { segment: i })?;
        on_plain(pt);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    /// Sizes around every segment edge, and a whole default chunk.
    const SIZES: [usize; 9] = [0, 1, 15, 65535, 65536, 65537, 131072, 200_000, (4 << 20) + 3];

    fn plain(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    fn ours(p: &[u8], rs: &[x25519::Recipient]) -> Vec<u8> {
        let mut out = vec![0u8; crate::limits::max_sealed_len(p.len() as u32, rs.len()) as usize];
        let n = encrypt_into(p, rs, &mut out).unwrap();
        out.truncate(n);
        out
    }

    fn open(c: &[u8], id: &x25519::Identity, room: usize) -> Result<Vec<u8>, Fail> {
        let mut out = vec![0u8; room];
        let n = decrypt_into(c, id, &mut out)?;
        out.truncate(n);
        Ok(out)
    }

    fn by_age_crate(p: &[u8], rs: &[x25519::Recipient]) -> Vec<u8> {
        let e = age::Encryptor::with_recipients(rs.iter().map(|r| r as &dyn age::Recipient)).unwrap();
        let mut out = vec![];
        let mut w = e.wrap_output(&mut out).unwrap();
        w.write_all(p).unwrap();
        w.finish().unwrap();
        out
    }

    fn with_age_crate(c: &[u8], id: &x25519::Identity) -> Result<Vec<u8>, String> {
        let d = age::Decryptor::new_buffered(c).map_err(|e| e.to_string())?;
        let mut r = d.decrypt(std::iter::once(id as &dyn age::Identity)).map_err(|e| e.to_string())?;
        let mut out = vec![];
        r.read_to_end(&mut out).map_err(|e| e.to_string())?;
        Ok(out)
    }

    #[test]
    fn the_age_crate_reads_ours_and_we_read_its() {
        let ids: Vec<_> = (0..3).map(|_| x25519::Identity::generate()).collect();
        let rs: Vec<_> = ids.iter().map(|i| i.to_public()).collect();
        for n in SIZES {
            let p = plain(n);
            let c = ours(&p, &rs);
            assert!(c.len() as u64 <= crate::limits::max_sealed_len(n as u32, 3), "{n}");
            let theirs = by_age_crate(&p, &rs);
            for id in &ids {
                assert_eq!(with_age_crate(&c, id).unwrap(), p, "age crate reading ours, {n} bytes");
                assert_eq!(open(&c, id, n).unwrap(), p, "ours, {n} bytes");
                assert_eq!(open(&theirs, id, n).unwrap(), p, "the age crate's, {n} bytes");
            }
        }
    }

    #[test]
    fn a_stranger_or_a_small_buffer_is_refused() {
        let a = x25519::Identity::generate();
        let c = ours(&plain(70_000), &[a.to_public()]);
        let eve = x25519::Identity::generate();
        assert_eq!(open(&c, &eve, 70_000).unwrap_err(), AgeError::NoMatchingKeys);
        assert_eq!(open(&c, &a, 69_999).unwrap_err(), AgeError::PlaintextTooLong { room: 69_999, got: 70_000 });
        assert_eq!(open(&c, &a, 70_001).unwrap().len(), 70_000);
        let mut small = vec![0u8; c.len() - 1];
        assert!(encrypt_into(&plain(70_000), &[a.to_public()], &mut small).is_err());
        assert_eq!(encrypt_into(b"x", &[], &mut vec![0u8; 1024]).unwrap_err(), AgeError::NoRecipients);
    }

    /// A file that fails in its second segment leaves no plaintext of the
    /// first behind in the caller's buffer.
    #[test]
    fn a_failed_open_leaves_the_buffer_zeroed() {
        let a = x25519::Identity::generate();
        let p = vec![0xAA; SEGMENT + 10];
        let mut c = ours(&p, &[a.to_public()]);
        let n = c.len();
        c[n - 1] ^= 1;
        let mut out = vec![0x55; p.len()];
        assert_eq!(decrypt_into(&c, &a, &mut out).unwrap_err(), AgeError::InvalidMac { segment: 1 });
        assert!(out.iter().all(|&b| b == 0), "plaintext left behind");
    }

    /// Every single-byte change anywhere, every truncation at a segment edge
    /// and an appended byte are refused, by us and by the age crate alike.
    #[test]
    fn tampering_anywhere_is_refused() {
        let a = x25519::Identity::generate();
        let p = plain(2 * SEGMENT + 100);
        let c = ours(&p, &[a.to_public()]);
        let header = parse_header(&c).unwrap().len;
        let mut cases: Vec<Vec<u8>> = vec![];
        // Every header byte, the nonce, and bytes through the segments.
        let positions = (0..header + NONCE).chain((header + NONCE..c.len()).step_by(4099)).chain([c.len() - 1]);
        for i in positions {
            let mut t = c.clone();
            t[i] ^= 0x20;
            cases.push(t);
        }
        for cut in [header, header + NONCE, header + NONCE + SEGMENT + TAG, c.len() - 1, c.len() - TAG] {
            cases.push(c[..cut].to_vec());
        }
        let mut longer = c.clone();
        longer.push(0);
        cases.push(longer);
        // Two whole segments swapped.
        let mut swapped = c.clone();
        let s = header + NONCE;
        swapped[s..s + 2 * (SEGMENT + TAG)].rotate_left(SEGMENT + TAG);
        cases.push(swapped);
        for (k, t) in cases.iter().enumerate() {
            assert!(open(t, &a, p.len()).is_err(), "case {k} accepted");
            assert!(with_age_crate(t, &a).is_err(), "case {k}: the age crate accepts it, so the test is wrong");
        }
    }

    /// The last segment's flag is what stops a file cut at a segment edge
    /// from reading as complete.
    #[test]
    fn a_file_cut_after_a_full_segment_is_refused() {
        let a = x25519::Identity::generate();
        let c = ours(&plain(3 * SEGMENT), &[a.to_public()]);
        let cut = c.len() - (SEGMENT + TAG);
        assert_eq!(open(&c[..cut], &a, 3 * SEGMENT).unwrap_err(), AgeError::InvalidMac { segment: 1 });
    }

    #[test]
    fn garbage_is_refused_without_panicking() {
        let a = x25519::Identity::generate();
        let c = ours(&plain(1000), &[a.to_public()]);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..3000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut t = c.clone();
            let len = (x as usize) % (c.len() + 1);
            t.truncate(len);
            if !t.is_empty() {
                let i = (x >> 20) as usize % t.len();
                t[i] = (x >> 40) as u8;
            }
            let _ = open(&t, &a, 1000);
        }
        for bad in
            [&b""[..], b"age-encryption.org/v1\n", b"age-encryption.org/v1\n---\n", b"age-encryption.org/v1\n-> \n"]
        {
            assert!(open(bad, &a, 10).is_err());
        }
    }

    /// A file for someone else says so; a file for us with one byte
    /// changed or cut short says it was altered, never "not for you".
    #[test]
    fn not_addressed_is_told_apart_from_tampered() {
        let (a, eve) = (x25519::Identity::generate(), x25519::Identity::generate());
        let c = ours(&plain(70_000), &[a.to_public()]);
        assert_eq!(open(&c, &eve, 70_000).unwrap_err(), AgeError::NoMatchingKeys);
        let header = parse_header(&c).unwrap().len;
        let mut flipped = c.clone();
        flipped[header + NONCE + 10] ^= 1;
        assert_eq!(open(&flipped, &a, 70_000).unwrap_err(), AgeError::InvalidMac { segment: 0 });
        let mut mac = c.clone();
        mac[header - 3] ^= 1;
        assert!(matches!(open(&mac, &a, 70_000).unwrap_err(), AgeError::InvalidHeaderMac | AgeError::BadHeader { .. }));
        assert_eq!(open(&c[..header + NONCE + 4], &a, 70_000).unwrap_err(), AgeError::Truncated);
        assert_eq!(open(b"age-encryption.org/v2\n", &a, 10).unwrap_err(), AgeError::Unsupported);
    }
}
