//! Receipt bundles as read from a file, verified against an authority.
#![no_main]
use exhibit_proto::ReceiptBundle;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let authority = ed25519_dalek::SigningKey::from_bytes(&[9; 32]).verifying_key();
    if let Ok(b) = serde_json::from_slice::<ReceiptBundle>(data) {
        let _ = b.verify(&authority);
    }
    let _ = exhibit_proto::cert::ed25519_key_from_pem(data);
    let _ = exhibit_proto::cert::ed25519_key_from_der(data);
});
