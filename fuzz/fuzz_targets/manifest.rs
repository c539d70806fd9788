//! Manifest parsing and verification, sealed-details checks.
#![no_main]
use exhibit_proto::directory::{DirectoryEntry, Role};
use exhibit_proto::manifest::SealedDetails;
use exhibit_proto::{SignedManifest, UserId};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (sig, bytes) = data.split_at(data.len().min(64));
    let signed = SignedManifest { bytes: bytes.to_vec(), signature: sig.to_vec() };
    if let Ok(m) = signed.decode_unverified() {
        let _ = m.chunk_count();
        let _ = m.ciphertext_len();
        if let Ok(d) = exhibit_proto::sign::decode::<SealedDetails>(bytes, "details") {
            let _ = d.check(&m);
        }
    }
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let sender = DirectoryEntry {
        user: UserId::new("alice").unwrap(),
        display_name: String::new(),
        org: String::new(),
        role: Role::EvidenceUnit,
        age_recipient: String::new(),
        signing_key: key.verifying_key().to_bytes(),
        enrolled_at: 0,
        revoked_at: None,
    };
    let _ = signed.verify(&sender);
});
