//! Receipt bundles as read from a file, verified against an authority;
//! and receipts' own bytes decoded (every version, a v4's item subset
//! checked), which the bundle's signatures would otherwise keep from the
//! decoder. Also the offline authority's files (a log key's certificate,
//! an enrolment request and approval) and the certificate an approval
//! carries, checked against the authority.
#![no_main]
use exhibit_proto::ReceiptBundle;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let authority = ed25519_dalek::SigningKey::from_bytes(&[9; 32]).verifying_key();
    if let Ok(b) = serde_json::from_slice::<ReceiptBundle>(data) {
        let _ = b.verify(&authority);
    }
    if let Ok(r) = exhibit_proto::Receipt::from_bytes(data) {
        if let Some(s) = &r.subset {
            // A decoded subset is canonical: its count is the receipt's.
            assert_eq!(s.count(), r.item_count);
        }
    }
    let _ = exhibit_proto::cert::ed25519_key_from_pem(data);
    let _ = exhibit_proto::cert::ed25519_key_from_der(data);
    let _ = exhibit_proto::cert::issued_name(data, &authority);
    if let Ok(c) = serde_json::from_slice::<exhibit_proto::offline::LogKeyCert>(data) {
        let _ = c.verify(&authority);
    }
    if let Ok(a) = exhibit_proto::offline::EnrolmentApproval::from_json(data) {
        let _ = a.entry.verify(&authority);
    }
    let _ = exhibit_proto::offline::EnrolmentRequest::from_json(data);
});
