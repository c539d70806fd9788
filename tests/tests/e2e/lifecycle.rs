//! Users and keys over time: revocation, certificate renewal, server
//! certificate rotation, backup and restore.

use std::time::Duration;

use exhibit_client::admin;
use exhibit_client::conn::Conn;
use exhibit_proto::directory::Role;
use exhibit_proto::frame::Request;

use crate::fixture::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_user_closes_their_open_connections_and_refuses_the_next() {
    let f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let bob_conn = Conn::open(&bob.load().unwrap()).await.unwrap();
    let alice_conn = Conn::open(&alice.load().unwrap()).await.unwrap();
    bob_conn.request(&Request::WhoAmI).await.unwrap();
    alice_conn.request(&Request::WhoAmI).await.unwrap();
    assert_eq!(f.state().conns.count_of(&uid("bob")), 1);

    admin::revoke_user(&f.admin, uid("bob")).await.unwrap();

    // Closed by the server, at once, saying why; not at bob's next request.
    let closed = tokio::time::timeout(Duration::from_secs(5), bob_conn.connection().closed()).await.unwrap();
    match closed {
        quinn::ConnectionError::ApplicationClosed(c) => {
            assert_eq!(c.error_code, exhibit_server::conns::CLOSE_REVOKED.into());
            assert_eq!(&c.reason[..], b"user bob has been revoked");
        }
        other => panic!("closed for another reason: {other}"),
    }
    assert!(bob_conn.request(&Request::WhoAmI).await.is_err());
    // Others are untouched.
    alice_conn.request(&Request::WhoAmI).await.unwrap();
    assert_eq!(f.state().conns.count_of(&uid("bob")), 0);
    assert_eq!(f.state().conns.count_of(&uid("alice")), 1);

    // A new connection is closed straight after the handshake.
    let err = match Conn::open(&bob.load().unwrap()).await {
        Ok(c) => c.request(&Request::WhoAmI).await.unwrap_err(),
        Err(e) => e,
    };
    assert!(err.to_string().contains("revoked"), "{err}");
}
