//! Users and keys over time: revocation, certificate renewal, server
//! certificate rotation, backup and restore.

use std::time::Duration;

use exhibit_client::admin;
use exhibit_client::conn::Conn;
use exhibit_client::reach::Choice;
use exhibit_proto::directory::Role;
use exhibit_proto::frame::Request;

use crate::fixture::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_user_closes_their_open_connections_and_refuses_the_next() {
    revoking_closes_and_refuses(Choice::Quic).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_user_closes_their_open_connections_and_refuses_the_next_over_tcp() {
    revoking_closes_and_refuses(Choice::Tcp).await
}

async fn revoking_closes_and_refuses(transport: Choice) {
    let f = Fixture::over(transport).await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let bob_conn = Conn::open(&bob.load().unwrap()).await.unwrap();
    let alice_conn = Conn::open(&alice.load().unwrap()).await.unwrap();
    assert_eq!(bob_conn.connection().transport(), transport_of(transport));
    bob_conn.request(&Request::WhoAmI).await.unwrap();
    alice_conn.request(&Request::WhoAmI).await.unwrap();
    assert_eq!(f.state().conns.count_of(&uid("bob")), 1);

    admin::revoke_user(&f.admin, uid("bob")).await.unwrap();

    // Closed by the server, at once, with the revoked code (and, over
    // QUIC, saying why); not at bob's next request.
    let closed = tokio::time::timeout(Duration::from_secs(5), bob_conn.connection().closed()).await.unwrap();
    match closed {
        exhibit_net::Closed::ByPeer { code, reason } => {
            assert_eq!(code, exhibit_server::conns::CLOSE_REVOKED);
            if transport == Choice::Quic {
                assert_eq!(reason, "user bob has been revoked");
            }
        }
        other => panic!("closed for another reason: {other}"),
    }
    let err = bob_conn.request(&Request::WhoAmI).await.unwrap_err();
    assert!(matches!(err, exhibit_client::ClientError::Revoked { .. }), "{err}");
    // Others are untouched.
    alice_conn.request(&Request::WhoAmI).await.unwrap();
    assert_eq!(f.state().conns.count_of(&uid("bob")), 0);
    assert_eq!(f.state().conns.count_of(&uid("alice")), 1);

    // A new connection is refused in the handshake (TLS alert
    // certificate_revoked), and the client says so. TLS 1.3 lets the client
    // finish its side first, so the refusal may meet its first request.
    let err = match Conn::open(&bob.load().unwrap()).await {
        Ok(c) => c.request(&Request::WhoAmI).await.unwrap_err(),
        Err(e) => e,
    };
    assert!(err.to_string().contains("the server refused this certificate: its user has been revoked"), "{err}");
    assert_eq!(f.state().conns.count_of(&uid("bob")), 0, "a revoked user's connection got past the handshake");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_while_uploading_then_restore_serves_the_same_transfers() {
    use std::os::unix::fs::PermissionsExt;

    use exhibit_client::receipt;
    use exhibit_server::config::Config;
    use exhibit_server::{backup, Server, SystemClock};

    let mut f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let src = f.path("src");
    std::fs::write(src.join("one.bin"), bytes(300_000, 1)).unwrap();
    std::fs::write(src.join("two.bin"), bytes(500_000, 2)).unwrap();
    std::fs::write(src.join("big.bin"), bytes(8 << 20, 3)).unwrap();
    let t1 = send_paths(&alice, vec![src.join("one.bin")], &["bob"], 64 << 10).await;
    fetch_to(&bob, t1, &f.path("bob-1")).await.unwrap();
    let t2 = send_paths(&alice, vec![src.join("two.bin")], &["bob"], 64 << 10).await;

    // An upload of 128 chunks runs while the backup is taken.
    let (a, big) = (alice.clone(), src.join("big.bin"));
    let upload = tokio::spawn(async move { send_paths(&a, vec![big], &["bob"], 64 << 10).await });
    let out = f.dir.path().join("exhibit.backup");
    let (data, o) = (f.data.clone(), out.clone());
    let summary = tokio::task::spawn_blocking(move || backup::backup(&data, &o)).await.unwrap().unwrap();
    let t3 = upload.await.unwrap();
    assert!(summary.chunks >= 13, "t1 and t2 are in the backup: {summary:?}");
    assert_eq!(std::fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(!f.dir.path().join("exhibit.backup.partial").exists());
    assert!(std::fs::read_dir(&f.data).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().contains(".tmp")));

    // A second backup refuses to overwrite the first.
    let (data, o) = (f.data.clone(), out.clone());
    assert!(tokio::task::spawn_blocking(move || backup::backup(&data, &o)).await.unwrap().is_err());

    // Restore into a new directory: fsck (every chunk re-hashed) passes.
    let restored = f.dir.path().join("restored");
    let (o, r) = (out.clone(), restored.clone());
    let (s, report) = tokio::task::spawn_blocking(move || backup::restore(&o, &r)).await.unwrap().unwrap();
    assert_eq!(s, summary);
    assert!(report.healthy() && report.orphans.is_empty(), "{report:?}");
    assert_eq!(report.referenced as u64, summary.chunks);
    // Restoring over it is refused.
    let (o, r) = (out.clone(), restored.clone());
    assert!(tokio::task::spawn_blocking(move || backup::restore(&o, &r)).await.unwrap().is_err());

    // The old server goes away; one on the restored data serves the same
    // transfers to the same users (same CA: nobody re-enrols).
    let old_addr = f.addr.clone();
    f.stop().await;
    let settings = Config::load(&restored.join(exhibit_server::CONFIG_FILE)).unwrap();
    let server = Server::start(settings, std::sync::Arc::new(SystemClock)).await.unwrap();
    let new_addr = server.local_addr().to_string();
    let cfg = bob.dir().join("client.toml");
    std::fs::write(&cfg, std::fs::read_to_string(&cfg).unwrap().replace(&old_addr, &new_addr)).unwrap();

    let out2 = f.path("bob-2");
    fetch_to(&bob, t2, &out2).await.unwrap();
    assert_eq!(std::fs::read(out2.join("two.bin")).unwrap(), bytes(500_000, 2));
    let b = receipt::bundle(&bob, t1, None).await.unwrap();
    let file = f.dir.path().join("t1.receipt.json");
    receipt::write(&b, &file).unwrap();
    let v = receipt::verify_file(&file, &f.ca).unwrap();
    assert_eq!(v.transfer, t1.to_string());
    // The upload that ran during the backup is there if its seal made the
    // snapshot; either way nothing half-known breaks the listing.
    let inbox = exhibit_client::listing::fetch_list(&bob, true).await.unwrap();
    assert!(inbox.iter().any(|t| t.transfer == t2));
    let _ = t3;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_keeps_the_keys_and_retires_the_old_certificate_once_the_new_one_is_used() {
    use exhibit_proto::frame::{ErrorCode, Response};

    let f = Fixture::start().await;
    let bob = f.user("bob", Role::Caseworker).await;
    let before = bob.load().unwrap();
    let ca = exhibit_client::home::pem_body(&std::fs::read(&f.ca).unwrap()).unwrap();
    let old = (before.tls_cert.clone(), before.tls_key.clone());
    let connect = |cert: Vec<u8>| {
        let (ca, addr, key) = (ca.clone(), f.addr.clone(), old.1.clone());
        async move { Conn::connect(&addr, &ca, Some((&cert, &key))).await.unwrap() }
    };

    // Ask for a renewed certificate by hand, without using it yet.
    let key = rcgen::KeyPair::try_from(old.1.as_slice()).unwrap();
    let csr = rcgen::CertificateParams::default().serialize_request(&key).unwrap();
    let conn = connect(old.0.clone()).await;
    let Response::Renewed { cert_der: pending } =
        conn.request(&Request::Renew { csr_der: csr.der().to_vec() }).await.unwrap()
    else {
        panic!("not renewed")
    };
    conn.close();
    assert_ne!(pending, old.0);
    // Until the new one is used, the old one still works (a client that
    // crashed before saving the new one is not locked out).
    connect(old.0.clone()).await.request(&Request::WhoAmI).await.unwrap();

    // `exhibit renew`: saves a newer one and uses it.
    let expiry = exhibit_client::renew::renew(&bob).await.unwrap();
    let after = bob.load().unwrap();
    assert!(after.tls_cert != old.0 && after.tls_cert != pending);
    assert_eq!(after.me.fingerprint(), before.me.fingerprint(), "keys others pinned are unchanged");
    assert!(expiry >= exhibit_client::renew::cert_expiry(&old.0).unwrap());
    exhibit_client::listing::fetch_list(&bob, true).await.unwrap();

    // The old certificate, and the renewal never used, are retired.
    for cert in [old.0.clone(), pending] {
        let err = connect(cert).await.request(&Request::WhoAmI).await.unwrap_err();
        assert_eq!(err.server_code(), Some(ErrorCode::Unauthenticated), "{err}");
    }
    let audit = exhibit_client::audit::export(&f.admin, 0).await.unwrap();
    assert_eq!(audit.iter().filter(|e| e.body.action == "renew").count(), 3, "2 issued, 1 put in use");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_server_certificate_needs_no_user_action() {
    let f = Fixture::start().await;
    let bob = f.user("bob", Role::Caseworker).await;
    let server_cert = |c: &Conn| c.connection().peer_certificates().unwrap()[0].to_vec();
    let before = Conn::open(&bob.load().unwrap()).await.unwrap();
    let old_cert = server_cert(&before);

    let data = f.data.clone();
    let reloaded = tokio::task::spawn_blocking(move || {
        let s = exhibit_server::config::Settings::of_data_dir(&data).unwrap();
        let auth = exhibit_server::authority::Authority::load(&data).unwrap();
        let now = exhibit_server::clock::Clock::now(&exhibit_server::SystemClock);
        auth.issue_server_cert(&data, "localhost", s.config.listen, now).unwrap();
        exhibit_server::ops::control::reload_tls(&data).unwrap()
    })
    .await
    .unwrap();
    assert!(reloaded, "the running server answered on its control socket");

    // New connections get the new certificate, verified against the same
    // pinned CA; the open connection carries on.
    let after = Conn::open(&bob.load().unwrap()).await.unwrap();
    assert_ne!(server_cert(&after), old_cert);
    after.request(&Request::WhoAmI).await.unwrap();
    before.request(&Request::WhoAmI).await.unwrap();
    assert!(!f.data.join("server.key.new").exists());
}
