//! Manifest parsing and verification, sealed-details checks, and the
//! records that travel beside a manifest: approvals, organisations.
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
        more_roles: vec![],
    };
    if let Ok(vm) = signed.verify(&sender) {
        // An approval of it, from the same bytes: decoded and held to the
        // manifest (every check runs; the signature fails last).
        let approver = exhibit_proto::directory::SignedEntry { bytes: bytes.to_vec(), signature: sig.to_vec() };
        let a = exhibit_proto::approval::SignedApproval { bytes: bytes.to_vec(), signature: sig.to_vec() };
        let _ = exhibit_proto::approval::check(&a, &approver, &sender, vm.manifest(), &vm.hash(), &key.verifying_key());
    }
    // Organisation records and approvals decoded from untrusted bytes.
    let _ = exhibit_proto::org::SignedOrg { bytes: bytes.to_vec(), signature: sig.to_vec() }.decode_unchecked();
    let _ = exhibit_proto::approval::SignedApproval { bytes: bytes.to_vec(), signature: sig.to_vec() }.decode_unverified();
});
