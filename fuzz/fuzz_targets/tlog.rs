//! Tree heads and proofs as a server sends them (`Response::TreeHead`),
//! and proofs checked at any sizes: decoding is bounded, checking never
//! panics, and nothing made up verifies. Witnesses' cosigned heads
//! (`Response::CosignedHeads`) likewise.
#![no_main]
use exhibit_proto::tlog::{self, CosignedHead, Proof, SignedTreeHead};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let authority = ed25519_dalek::SigningKey::from_bytes(&[9; 32]).verifying_key();
    if let Ok((head, proof)) = exhibit_proto::sign::decode::<(SignedTreeHead, Proof)>(data, "tree head") {
        let _ = head.verify(&authority);
        assert!(proof.hashes().len() <= tlog::MAX_PROOF);
    }
    if let Ok(heads) = exhibit_proto::sign::decode::<Vec<CosignedHead>>(data, "cosigned heads") {
        let witness = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
        for h in &heads {
            assert!(h.verify(&authority, &witness).is_err(), "a made-up cosigned head verified");
        }
    }
    if let Ok((m, n, r1, r2, proof)) = exhibit_proto::sign::decode::<(u64, u64, [u8; 32], [u8; 32], Proof)>(data, "p") {
        let _ = tlog::verify_consistency(m, &r1, n, &r2, proof.hashes());
        let _ = tlog::verify_inclusion(&r2, n, m, &r1, proof.hashes());
    }
});
