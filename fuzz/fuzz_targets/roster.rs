//! A case as the server sends it: roster changes decoded, their text
//! checked and folded into the roster, as `exhibit case roster` does.
#![no_main]
use exhibit_proto::case::{self, CaseInfo, SignedRosterChange};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]).verifying_key();
    let signed = SignedRosterChange { bytes: data.to_vec(), signature: vec![0; 64] };
    if let Ok(c) = signed.decode_unverified() {
        let _ = c.check_text();
        let _ = case::roster(std::slice::from_ref(&c));
    }
    let _ = signed.verify(&key);
    if let Ok(info) = exhibit_proto::sign::decode::<CaseInfo>(data, "case") {
        let changes: Vec<_> = info.changes.iter().filter_map(|c| c.decode_unverified().ok()).collect();
        let _ = case::roster(&changes);
    }
});
