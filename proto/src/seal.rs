//! Sealing and opening chunks and details with age (feature `seal`).
//!
//! Every chunk is its own age file, encrypted to every recipient and the
//! sender. Opening takes a [`VerifiedManifest`]: nothing is decrypted before
//! the sender's signature has been checked.

use age::x25519;

use crate::agefile;
use crate::error::ProtoError;
use crate::ids::ChunkId;
use crate::manifest::{SealedDetails, VerifiedManifest};
use crate::sign;

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
    let mut out = vec![0u8; usize::try_from(max).map_err(|_| ProtoError::Encrypt("too large".into()))?];
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

/// Check and open chunk `index` of item `item` into `out`, which must be
/// exactly as long as the chunk's plaintext: the bytes must hash to the
/// manifest's id, have its length, decrypt with `identity`, and fill `out`
/// exactly.
pub fn open_chunk_into(
    m: &VerifiedManifest,
    item: usize,
    index: usize,
    cipher: &[u8],
    identity: &x25519::Identity,
    out: &mut [u8],
) -> Result<(), ProtoError> {
    let want =
        m.manifest().items.get(item).and_then(|i| i.chunks.get(index)).ok_or(ProtoError::Malformed {
            what: "chunk reference",
            reason: format!("no chunk {index} in item {item}"),
        })?;
    let got = ChunkId::of(cipher);
    if got != want.id {
        return Err(ProtoError::ChunkHashMismatch { item, index, expected: want.id, got });
    }
    if cipher.len() as u64 != u64::from(want.len) {
        return Err(ProtoError::ChunkLength { item, index, expected: want.len.into(), got: cipher.len() as u64 });
    }
    let n = decrypt_into(cipher, identity, &format!("chunk {index} of item {item}"), out)?;
    if n != out.len() {
        return Err(ProtoError::ChunkLength { item, index, expected: out.len() as u64, got: n as u64 });
    }
    Ok(())
}

/// Decrypt into `out`; the plaintext's length if it is shorter, an error if
/// it is longer. `what` names the file in the error.
pub fn decrypt_into(
    cipher: &[u8],
    identity: &x25519::Identity,
    what: &str,
    out: &mut [u8],
) -> Result<usize, ProtoError> {
    agefile::decrypt_into(cipher, identity, out).map_err(|reason| ProtoError::Decrypt { what: what.to_owned(), reason })
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
}
