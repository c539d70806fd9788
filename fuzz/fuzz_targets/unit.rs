//! A unit as the server sends it: the record decoded and bound-checked
//! (as `SignedUnit::verify` does once the signature holds), a key decoded
//! and checked against it.
#![no_main]
use exhibit_proto::unit::{self, SignedUnitKey, Unit};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (a, b) = data.split_at(data.len() / 2);
    let record = exhibit_proto::sign::decode::<Unit>(a, "unit").ok().filter(|u| u.check().is_ok());
    let key = SignedUnitKey { bytes: b.to_vec(), signature: vec![0; 64] };
    if let (Some(u), Ok(k)) = (record, key.decode_unverified()) {
        let _ = u.has_member(&k.by);
        let maker = exhibit_proto::DirectoryEntry {
            user: k.by.clone(),
            display_name: String::new(),
            org: u.org.to_string(),
            role: exhibit_proto::Role::Caseworker,
            age_recipient: k.age_recipient.clone(),
            signing_key: [7; 32],
            enrolled_at: 0,
            revoked_at: None,
            more_roles: vec![],
        };
        let _ = unit::check_key(&u, &key, &maker);
    }
});
