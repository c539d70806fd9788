//! Who may do what: decided by the server from the client certificate.

use exhibit_client::conn::Conn;
use exhibit_client::listing;
use exhibit_proto::directory::Role;
use exhibit_proto::frame::{ErrorCode, Request};
use exhibit_proto::ChunkId;

use crate::fixture::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn third_user_can_neither_list_nor_fetch() {
    let f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let carol = f.user("carol", Role::Caseworker).await;
    let src = f.path("src");
    std::fs::write(src.join("a.bin"), bytes(5000, 1)).unwrap();
    let t = send_paths(&alice, vec![src.join("a.bin")], &["bob"], 1024).await;

    assert!(listing::fetch_list(&carol, true).await.unwrap().is_empty());
    assert!(listing::fetch_list(&carol, false).await.unwrap().is_empty());
    let out = f.path("carol-out");
    let err = fetch_to(&carol, t, &out).await.unwrap_err();
    assert_eq!(err.server_code(), Some(ErrorCode::NotFound), "{err}");
    assert!(err.to_string().contains("not found or not yours"), "{err}");
    assert!(tree(&out).is_empty());

    // Even knowing a real chunk id does not help.
    let chunk = f.chunk_files()[0].file_name().unwrap().to_str().unwrap().parse::<ChunkId>().unwrap();
    let conn = Conn::open(&carol.load().unwrap()).await.unwrap();
    let pool = exhibit_proto::aligned::Pool::new(0);
    let err = conn.get_chunk(t, chunk, 1 << 20, &pool).await.unwrap_err();
    assert_eq!(err.server_code(), Some(ErrorCode::NotFound));
    let err = conn.request(&Request::GetReceipt { transfer: t, recipient: uid("bob") }).await.unwrap_err();
    assert_eq!(err.server_code(), Some(ErrorCode::NotFound));

    // The addressee still can.
    fetch_to(&bob, t, &f.path("bob-out")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_without_certificate_is_refused() {
    let f = Fixture::start().await;
    let ca = exhibit_client::home::pem_body(&std::fs::read(&f.ca).unwrap()).unwrap();
    for req in [Request::Inbox, Request::Directory { query: None }, Request::AdminListUsers] {
        let conn = Conn::connect(&f.addr, &ca, None).await.unwrap();
        let err = conn.request(&req).await.unwrap_err();
        assert_eq!(err.server_code(), Some(ErrorCode::Unauthenticated), "{req:?}: {err}");
    }
    // One request per connection without a certificate: a second is
    // refused as soon as the first is answered, saying why.
    let conn = Conn::connect(&f.addr, &ca, None).await.unwrap();
    assert!(conn.request(&Request::Inbox).await.is_err());
    let second = tokio::time::timeout(std::time::Duration::from_secs(10), conn.request(&Request::Inbox)).await;
    let err = second.expect("a second request waited").unwrap_err();
    assert!(err.to_string().contains("one request per connection"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_with_certificate_from_another_ca_is_refused() {
    let f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    // A whole other authority, with a client certificate for "alice".
    let other_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let mut ca_params = rcgen::CertificateParams::default();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    // Its certificate is never shown to anyone: only its name and key sign.
    let other_ca = rcgen::Issuer::new(ca_params, other_key);
    let client_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let mut p = rcgen::CertificateParams::default();
    p.distinguished_name.push(rcgen::DnType::CommonName, "alice");
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = p.signed_by(&client_key, &other_ca).unwrap();
    let ca = exhibit_client::home::pem_body(&std::fs::read(&f.ca).unwrap()).unwrap();
    let refused = async {
        let conn = Conn::connect(&f.addr, &ca, Some((cert.der(), &client_key.serialize_der()))).await?;
        conn.request(&Request::Inbox).await
    };
    let result = tokio::time::timeout(std::time::Duration::from_secs(20), refused).await.expect("no hang");
    assert!(result.is_err(), "foreign certificate accepted: {result:?}");
    // The server keeps serving its own users.
    listing::fetch_list(&alice, true).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolment_codes_are_one_time_and_admin_only() {
    let f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let err = exhibit_client::admin::add_user(&alice, uid("eve"), "Eve".into(), "cps-se".into(), &[Role::Admin], None)
        .await
        .unwrap_err();
    assert_eq!(err.server_code(), Some(ErrorCode::Forbidden));
    let (code, _) = exhibit_client::admin::add_user(
        &f.admin,
        uid("dave"),
        "Dave".into(),
        "cps-se".into(),
        &[Role::Caseworker],
        None,
    )
    .await
    .unwrap();
    let pem = std::fs::read(&f.ca).unwrap();
    exhibit_client::enrol::enrol(&exhibit_client::Home::new(f.path("dave1")), &f.addr, &code, &pem).await.unwrap();
    let err = exhibit_client::enrol::enrol(&exhibit_client::Home::new(f.path("dave2")), &f.addr, &code, &pem)
        .await
        .unwrap_err();
    assert_eq!(err.server_code(), Some(ErrorCode::Unauthenticated), "{err}");
    // A pending user's code can be reissued; the old one stops working.
    let (old, _) =
        exhibit_client::admin::add_user(&f.admin, uid("erin"), "E".into(), "cps-se".into(), &[Role::Caseworker], None)
            .await
            .unwrap();
    let (new, _) =
        exhibit_client::admin::add_user(&f.admin, uid("erin"), "E".into(), "cps-se".into(), &[Role::Caseworker], None)
            .await
            .unwrap();
    let err = exhibit_client::enrol::enrol(&exhibit_client::Home::new(f.path("erin1")), &f.addr, &old, &pem)
        .await
        .unwrap_err();
    assert_eq!(err.server_code(), Some(ErrorCode::Unauthenticated), "{err}");
    exhibit_client::enrol::enrol(&exhibit_client::Home::new(f.path("erin2")), &f.addr, &new, &pem).await.unwrap();
    // An enrolled user cannot be added again.
    let err =
        exhibit_client::admin::add_user(&f.admin, uid("erin"), "E".into(), "cps-se".into(), &[Role::Caseworker], None)
            .await
            .unwrap_err();
    assert_eq!(err.server_code(), Some(ErrorCode::Conflict));
    let users = exhibit_client::admin::list_users(&f.admin).await.unwrap();
    assert_eq!(users.iter().filter(|u| u.enrolled_at.is_some()).count(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_recipient_key_is_refused_until_trusted() {
    let f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    f.user("bob", Role::Caseworker).await;
    let src = f.path("src");
    std::fs::write(src.join("a.bin"), bytes(10, 1)).unwrap();
    send_paths(&alice, vec![src.join("a.bin")], &["bob"], 1024).await;
    let real = alice.pins().unwrap()["bob"].clone();

    // As if the directory now served another key for bob: the pin differs.
    let mut pins = alice.pins().unwrap();
    pins.insert("bob".into(), "0000:0000:0000:0000:0000:0000:0000:0000".into());
    alice.save_pins(&pins).unwrap();
    let o = exhibit_client::send::SendOptions::new(vec![src.join("a.bin")], vec![uid("bob")]);
    let err = exhibit_client::send::send(&alice, o.clone()).await.unwrap_err();
    assert!(matches!(err, exhibit_client::ClientError::KeyChanged { .. }), "{err}");
    assert_eq!(listing::fetch_list(&alice, false).await.unwrap().len(), 1, "a transfer was created anyway");

    exhibit_client::directory::trust(&alice, &uid("bob"), &real).unwrap();
    exhibit_client::send::send(&alice, o).await.unwrap();
    assert_eq!(listing::fetch_list(&alice, false).await.unwrap().len(), 2);
}
