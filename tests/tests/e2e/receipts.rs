//! Receipts: signed by the recipient, checked and countersigned by the
//! server, verifiable offline.

use exhibit_client::conn::Conn;
use exhibit_client::{listing, receipt};
use exhibit_proto::directory::Role;
use exhibit_proto::frame::{DeliveryState, ErrorCode, Request, Response};
use exhibit_proto::Receipt;

use crate::fixture::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipt_with_wrong_signature_or_manifest_is_rejected() {
    let f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let carol = f.user("carol", Role::Caseworker).await;
    let src = f.path("src");
    std::fs::write(src.join("a.bin"), bytes(100, 1)).unwrap();
    let t = send_paths(&alice, vec![src.join("a.bin")], &["bob"], 1024).await;

    let bp = bob.load().unwrap();
    let conn = Conn::open(&bp).await.unwrap();
    let len = |r: &Response| match r {
        Response::Manifest { manifest_len, .. } => Some(*manifest_len),
        _ => None,
    };
    let (_, manifest) = conn.request_body(&Request::GetManifest { transfer: t }, len, 1 << 24).await.unwrap();
    let mut items = exhibit_proto::merkle::Root::new();
    items.push(blake3::hash(&bytes(100, 1)).as_bytes());
    let good = Receipt::new(t, *blake3::hash(&manifest).as_bytes(), uid("bob"), 1, &items);

    // Signed by a key that is not bob's.
    let stranger = ed25519_dalek::SigningKey::from_bytes(&rand::random());
    let err = conn.request(&Request::SubmitReceipt { receipt: good.sign(&stranger) }).await.unwrap_err();
    assert_eq!(err.server_code(), Some(ErrorCode::BadSignature), "{err}");

    // Bob's key, but a different manifest.
    let mut wrong = good.clone();
    wrong.manifest_hash[0] ^= 1;
    let err = conn.request(&Request::SubmitReceipt { receipt: wrong.sign(&bp.signing) }).await.unwrap_err();
    assert_eq!(err.server_code(), Some(ErrorCode::BadRequest), "{err}");

    // Carol submitting a receipt that claims to be bob's.
    let cp = carol.load().unwrap();
    let cconn = Conn::open(&cp).await.unwrap();
    let err = cconn.request(&Request::SubmitReceipt { receipt: good.sign(&cp.signing) }).await.unwrap_err();
    assert_eq!(err.server_code(), Some(ErrorCode::BadRequest), "{err}");

    let outbox = listing::fetch_list(&alice, false).await.unwrap();
    assert_ne!(outbox[0].recipients[0].state, DeliveryState::Acknowledged, "a bad receipt acknowledged");

    // The genuine one is accepted and countersigned.
    match conn.request(&Request::SubmitReceipt { receipt: good.sign(&bp.signing) }).await.unwrap() {
        Response::ReceiptAccepted { receipt } => receipt.verify_acceptance(&bp.authority).unwrap(),
        r => panic!("{r:?}"),
    }
    let outbox = listing::fetch_list(&alice, false).await.unwrap();
    assert_eq!(outbox[0].recipients[0].state, DeliveryState::Acknowledged);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exported_receipt_verifies_offline_and_any_edit_fails() {
    let f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let src = f.path("src");
    std::fs::write(src.join("a.bin"), bytes(3000, 1)).unwrap();
    let t = send_paths(&alice, vec![src.join("a.bin")], &["bob"], 1024).await;
    fetch_to(&bob, t, &f.path("out")).await.unwrap();

    // The sender exports bob's receipt; verification needs only the CA file.
    let b = receipt::bundle(&alice, t, None).await.unwrap();
    let file = f.path("r").join("receipt.json");
    receipt::write(&b, &file).unwrap();
    let s = receipt::verify_file(&file, &f.ca).unwrap();
    assert_eq!(s.recipient, "bob");
    assert_eq!(s.sender, "alice");
    assert_eq!(s.transfer, t.to_string());
    // The receipt signs one root over the items' hashes; the list is a
    // file of its own beside the bundle, checked against the root.
    let item = *blake3::hash(&bytes(3000, 1)).as_bytes();
    assert!(s.items.is_empty());
    assert_eq!(s.item_count, Some(1));
    assert_eq!(s.items_root, Some(blake3::Hash::from(exhibit_proto::merkle::root(&[item])).to_hex().to_string()));
    let list = receipt::item_list(&alice, &b).await.unwrap().expect("the sender can read the item list");
    assert_eq!(list, format!("{}  a.bin\n", blake3::Hash::from(item).to_hex()));
    // Bob kept the same list when he fetched.
    assert_eq!(receipt::item_list(&bob, &b).await.unwrap().unwrap(), list);
    let (_, checked) = receipt::verify_with_items(&file, &f.ca, None).unwrap();
    assert_eq!(checked, None, "no list beside the bundle yet");
    std::fs::write(receipt::items_file_of(&file), &list).unwrap();
    let (_, checked) = receipt::verify_with_items(&file, &f.ca, None).unwrap();
    assert_eq!(checked, Some(1));
    let wrong =
        list.replacen(&blake3::Hash::from(item).to_hex()[..2], if list.starts_with("00") { "11" } else { "00" }, 1);
    std::fs::write(receipt::items_file_of(&file), &wrong).unwrap();
    let err = receipt::verify_with_items(&file, &f.ca, None).unwrap_err();
    assert!(err.to_string().contains("items root"), "{err}");
    std::fs::write(receipt::items_file_of(&file), format!("{list}{list}")).unwrap();
    let err = receipt::verify_with_items(&file, &f.ca, None).unwrap_err();
    assert!(err.to_string().contains("item count"), "{err}");
    std::fs::remove_file(receipt::items_file_of(&file)).unwrap();

    let original: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let edits: Vec<(&str, Box<Edit>)> = vec![
        ("summary recipient", Box::new(|v| v["summary"]["recipient"] = "carol".into())),
        ("summary accepted_at", Box::new(|v| v["summary"]["accepted_at"] = 1.into())),
        ("server time", Box::new(|v| v["receipt"]["accepted_at"] = 1.into())),
        ("receipt signature", Box::new(|v| flip_b64(&mut v["receipt"]["receipt"]["signature"]))),
        ("receipt bytes", Box::new(|v| flip_b64(&mut v["receipt"]["receipt"]["bytes"]))),
        ("server signature", Box::new(|v| flip_b64(&mut v["receipt"]["server_signature"]))),
        ("manifest bytes", Box::new(|v| flip_b64(&mut v["manifest"]["bytes"]))),
        ("recipient entry", Box::new(|v| flip_b64(&mut v["recipient_entry"]["bytes"]))),
        (
            "entries swapped",
            Box::new(|v| {
                let s = v["sender_entry"].clone();
                v["sender_entry"] = v["recipient_entry"].clone();
                v["recipient_entry"] = s;
            }),
        ),
    ];
    for (what, edit) in edits {
        let mut v = original.clone();
        edit(&mut v);
        std::fs::write(&file, serde_json::to_vec(&v).unwrap()).unwrap();
        assert!(receipt::verify_file(&file, &f.ca).is_err(), "edit to {what} not detected");
    }

    // Another deployment's CA does not vouch for it.
    std::fs::write(&file, serde_json::to_vec(&original).unwrap()).unwrap();
    let other = tempfile::tempdir().unwrap();
    let o =
        exhibit_server::init(other.path(), "127.0.0.1:0".parse().unwrap(), "x", &exhibit_server::SystemClock).unwrap();
    assert!(receipt::verify_file(&file, &o.ca).is_err());
    assert!(receipt::verify_file(&file, &f.ca).is_ok());
}

type Edit = dyn Fn(&mut serde_json::Value);

fn flip_b64(v: &mut serde_json::Value) {
    use base64::Engine as _;
    let e = base64::engine::general_purpose::STANDARD;
    let mut raw = e.decode(v.as_str().unwrap()).unwrap();
    let n = raw.len();
    raw[n / 2] ^= 1;
    *v = e.encode(raw).into();
}
