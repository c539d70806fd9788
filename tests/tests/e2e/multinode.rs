//! Two exhibitd nodes of one deployment at once: one PostgreSQL (metadata),
//! one S3 bucket (moto, chunks), the same keys. Sends spread over both are
//! each sealed once, the audit chain and tree verify, both schedulers
//! scanning the same due deadlines raise each alert once, a revocation
//! through one node is held by the other at the next request, and closes
//! the user's connections there at once (PostgreSQL LISTEN/NOTIFY, also
//! after the listening connection is lost), a client whose first node
//! is gone carries on through the second, and dashboard sessions and
//! one-time links made on one node hold on the other.

use std::sync::Arc;
use std::time::{Duration, Instant};

use exhibit_client::conn::Conn;
use exhibit_client::{admin, listing, ClientError, Home};
use exhibit_proto::directory::Role;
use exhibit_proto::frame::{AlertKind, Request, TransferState};
use exhibit_proto::TransferId;
use exhibit_server::clock::Clock;
use exhibit_server::{alerts, Background, ManualClock, SystemClock};

use crate::fixture::*;

const T0: u64 = 1_800_000_000;
const HOUR: u64 = 3600;
/// Sends per user; two users, one through each node first.
const SENDS: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_postgres_and_one_bucket_share_the_work_once() {
    let Some(meta) = crate::postgres::scratch("nodes").await else { return };
    let Some(moto) = crate::s3::Moto::start() else { return };
    let bucket = moto.bucket("two-nodes");
    let clock = ManualClock::new(T0);
    let f = Fixture::with_metadata_and(Arc::new(clock.clone()), Background::Off, |c| c.storage = bucket, meta).await;
    let b = f.second_node().await;
    let (node_a, node_b) = (f.addr.clone(), b.local_addr().to_string());
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let carol = f.user("carol", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    nodes(&alice, &[&node_a, &node_b]);
    nodes(&carol, &[&node_b, &node_a]);
    nodes(&bob, &[&node_b, &node_a]);
    nodes(&f.admin, &[&node_a, &node_b]);

    // 200 small sends at once, half through each node.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..SENDS {
        for who in [alice.clone(), carol.clone()] {
            tasks.spawn(async move { send_one_at(&who, i).await });
        }
    }
    let mut ids = vec![];
    while let Some(t) = tasks.join_next().await {
        ids.push(t.unwrap());
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 2 * SENDS, "a transfer id twice");

    // Each sealed once, by whichever node took it; the log verifies.
    let state = f.state().clone();
    let entries = {
        let r = state.meta.read().unwrap();
        for t in &ids {
            assert_eq!(r.transfer(t).unwrap().unwrap().state, TransferState::Sealed);
        }
        let last = r.audit_last().unwrap().unwrap().body.seq;
        r.audit_entries(1, last as usize + 1).unwrap()
    };
    for t in &ids {
        let seals = entries.iter().filter(|e| e.body.action == "seal" && e.body.subject == t.to_string()).count();
        assert_eq!(seals, 1, "transfer {t} sealed {seals} times");
    }
    let s = state.clone();
    tokio::task::spawn_blocking(move || exhibit_server::app::audit::verify(&s)).await.unwrap().unwrap();
    exhibit_client::audit::verify(&f.admin, &[]).await.unwrap();

    // Both schedulers scan the same due deadlines at once: each alert once.
    clock.advance(HOUR);
    let (sa, sb) = (state.clone(), b.state().clone());
    let now = clock.now();
    let (ra, rb) = tokio::join!(
        tokio::task::spawn_blocking(move || alerts::scan(&sa, now)),
        tokio::task::spawn_blocking(move || alerts::scan(&sb, now))
    );
    let raised = ra.unwrap().unwrap().raised.len() + rb.unwrap().unwrap().raised.len();
    assert_eq!(raised, 2 * SENDS, "alerts raised by the two nodes together");
    let every = exhibit_server::app::listings::every_alert(&state, true).unwrap();
    let mut alerted: Vec<TransferId> = every
        .iter()
        .filter(|a| a.info.kind == AlertKind::Overdue { level: 0 })
        .filter_map(|a| a.info.transfer)
        .collect();
    alerted.sort();
    assert_eq!(alerted, unique, "each overdue transfer alerted exactly once");

    // Revoked through node A, bob is refused by node B at his next request
    // on a connection B already had open.
    let on_b = Conn::open(&bob.load().unwrap()).await.unwrap();
    on_b.request(&Request::WhoAmI).await.unwrap();
    admin::revoke_user(&f.admin, uid("bob")).await.unwrap();
    let e = on_b.request(&Request::WhoAmI).await.unwrap_err();
    assert!(e.to_string().contains("revoked"), "{e}");

    // Node A goes away: alice's client, which tries it first, goes on
    // through node B.
    let mut f = f;
    f.stop().await;
    let out = listing::fetch_list(&alice, false).await.unwrap();
    assert_eq!(out.len(), SENDS, "alice's outbox through node B");
    drop(b);
}

async fn send_one_at(from: &Home, i: usize) -> TransferId {
    let src = from.dir().with_file_name(format!("src-{}-{i}", from.dir().file_name().unwrap().to_string_lossy()));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("statement.txt"), bytes(1024, i as u64)).unwrap();
    let mut o = exhibit_client::send::SendOptions::new(vec![src.join("statement.txt")], vec![uid("bob")]);
    o.ack_within_secs = Some(HOUR);
    o.chunk_size = 1024;
    exhibit_client::send::send(from, o).await.unwrap().transfer
}

/// Poll `done` every 20 ms until it holds, for at most `within`; how long
/// it took, or `None` if it never did.
pub(crate) async fn within(within: Duration, mut done: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < within {
        if done() {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// Whether `conn` was closed by the server as revoked.
fn closed_as_revoked(conn: &Conn) -> bool {
    matches!(
        conn.connection().close_reason(),
        Some(exhibit_net::Closed::ByPeer { code: exhibit_proto::frame::CLOSE_REVOKED, .. })
    )
}

/// A user revoked through node A has the connection they hold open on
/// node B closed by B within seconds, without making a request (B hears
/// of it through PostgreSQL, LISTEN/NOTIFY), while another user's stays
/// open; a fresh connection to B is refused as revoked. Then B's listening
/// connection is cut (as a database restart would): B listens again, and
/// a revocation made meanwhile closes the next user's connection too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_through_node_a_closes_the_connection_held_on_node_b() {
    let Some(meta) = crate::postgres::scratch("revoke").await else { return };
    let url = meta.url.clone().unwrap();
    let f = Fixture::with_metadata_and(Arc::new(SystemClock), Background::Off, |_| {}, meta).await;
    let b = f.second_node().await;
    let node_b = b.local_addr().to_string();
    let bob = f.user("bob", Role::Caseworker).await;
    let carol = f.user("carol", Role::EvidenceUnit).await;
    nodes(&bob, &[&node_b]);
    nodes(&carol, &[&node_b]);
    let bob_on_b = Conn::open(&bob.load().unwrap()).await.unwrap();
    bob_on_b.request(&Request::WhoAmI).await.unwrap();
    let carol_on_b = Conn::open(&carol.load().unwrap()).await.unwrap();
    carol_on_b.request(&Request::WhoAmI).await.unwrap();
    assert_eq!(b.state().conns.count_of(&uid("bob")), 1, "bob's connection is on node B");
    assert_eq!(f.state().conns.count_of(&uid("bob")), 0, "and not on node A");

    // The admin's client goes to node A.
    let asked = Instant::now();
    admin::revoke_user(&f.admin, uid("bob")).await.unwrap();
    let returned = asked.elapsed();
    within(Duration::from_secs(5), || closed_as_revoked(&bob_on_b))
        .await
        .expect("node B did not close the revoked user's connection within 5 s");
    eprintln!(
        "node B closed bob's connection {:?} after the revocation was asked of node A ({returned:?} to answer)",
        asked.elapsed()
    );
    assert_eq!(b.state().conns.count_of(&uid("bob")), 0);
    carol_on_b.request(&Request::WhoAmI).await.expect("another user's connection on B stays open");
    let fresh = async { Conn::open(&bob.load().unwrap()).await?.request(&Request::WhoAmI).await };
    let e = fresh.await.unwrap_err();
    assert!(matches!(e, ClientError::Revoked { .. }), "a fresh request on B: {e}");

    // Both nodes' listening connections cut; carol revoked at once, likely
    // before B listens again: B catches up when it does.
    let u = url.clone();
    let ended = tokio::task::spawn_blocking(move || exhibit_server::meta::postgres::end_listeners(&u)).await.unwrap();
    assert!(ended.unwrap() >= 2, "both nodes' listeners were connected");
    let asked = Instant::now();
    admin::revoke_user(&f.admin, uid("carol")).await.unwrap();
    within(Duration::from_secs(5), || closed_as_revoked(&carol_on_b))
        .await
        .expect("node B, its listener cut, did not close carol's connection within 5 s");
    eprintln!(
        "with its listener cut, node B closed carol's connection {:?} after the revocation was asked",
        asked.elapsed()
    );
    drop(b);
}

/// The admin's token, for the dashboard on both nodes.
const TOKEN: &str = "dashboard-test-token-0123456789-abc";

fn with_dashboard(c: &mut exhibit_server::config::Config) {
    c.dashboard = Some(exhibit_server::config::DashboardConfig::new("127.0.0.1:0".parse().unwrap(), TOKEN))
}

/// The session cookie (`name=value`) a login answered with.
fn cookie_of(login: &crate::browser::Http) -> String {
    let set = login.headers.lines().find(|l| l.to_ascii_lowercase().starts_with("set-cookie:")).expect("a cookie");
    set.split_once(':').unwrap().1.split(';').next().unwrap().trim().to_owned()
}

/// Issue 22: dashboard logins are in the database, so every node knows
/// them. A one-time link made through node A logs in on node B, and is
/// then refused by both; the session cookie B gave works on A; logging out
/// on B ends it on A; a link past its expiry (5 min) is refused, as is a
/// session past its own (8 h), on the other node than the one that made it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_links_and_sessions_made_on_one_node_hold_on_the_other() {
    use crate::browser::http;
    let Some(meta) = crate::postgres::scratch("dashboard").await else { return };
    let clock = ManualClock::new(T0);
    let f = Fixture::with_metadata_and(Arc::new(clock.clone()), Background::Off, with_dashboard, meta).await;
    let b = f.second_node().await;
    let dash_a = f.server().dashboard_addr().unwrap().to_string();
    let dash_b = b.dashboard_addr().unwrap().to_string();
    assert_ne!(dash_a, dash_b);
    // The admin's client asks node A for the link: it names A's dashboard.
    let (url, _) = admin::dashboard_login(&f.admin).await.unwrap();
    let code = url.strip_prefix(&format!("http://{dash_a}/once/")).expect("a link to node A").to_owned();
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    let once = format!("once={code}");

    tokio::task::block_in_place(|| {
        let login = http("POST", &dash_b, "/login", &[form], once.as_bytes());
        assert_eq!(login.status, 303, "node B takes node A's link: {}", login.text());
        let cookie = cookie_of(&login);
        for dash in [&dash_a, &dash_b] {
            let again = http("POST", dash, "/login", &[form], once.as_bytes());
            assert_eq!(again.status, 403, "a used link on {dash}: {}", again.text());
        }
        let on_a = http("GET", &dash_a, "/", &[("Cookie", &cookie)], b"");
        assert_eq!(on_a.status, 200);
        assert!(on_a.text().contains("Logged in as <strong>admin</strong>"), "B's session on A: {}", on_a.text());
        let on_b = http("GET", &dash_b, "/", &[("Cookie", &cookie)], b"");
        assert!(on_b.text().contains("Logged in as <strong>admin</strong>"), "{}", on_b.text());
        // The CSRF token of the page A served is good on B.
        let csrf = on_a.text().split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
        let out = http("POST", &dash_b, "/logout", &[form, ("Cookie", &cookie)], format!("csrf={csrf}").as_bytes());
        assert_eq!(out.status, 303, "{}", out.text());
        for dash in [&dash_a, &dash_b] {
            let after = http("GET", dash, "/", &[("Cookie", &cookie)], b"");
            assert!(after.text().contains("admin login"), "logged out on B, still in on {dash}: {}", after.text());
        }
    });

    // A link used after its 5 minutes, on the other node: refused.
    let (url, _) = admin::dashboard_login(&f.admin).await.unwrap();
    let code = url.rsplit_once("/once/").unwrap().1.to_owned();
    clock.advance(301);
    let cookie = tokio::task::block_in_place(|| {
        let late = http("POST", &dash_b, "/login", &[form], format!("once={code}").as_bytes());
        assert_eq!(late.status, 403, "an expired link: {}", late.text());
        // A token login on A, past its 8 hours on B: logged out.
        let login = http("POST", &dash_a, "/login", &[form], format!("token={TOKEN}").as_bytes());
        assert_eq!(login.status, 303, "{}", login.text());
        cookie_of(&login)
    });
    tokio::task::block_in_place(|| {
        let on_b = http("GET", &dash_b, "/", &[("Cookie", &cookie)], b"");
        assert!(on_b.text().contains("Logged in as <strong>dashboard</strong>"), "{}", on_b.text());
    });
    // A link never used.
    admin::dashboard_login(&f.admin).await.unwrap();
    clock.advance(8 * HOUR);
    tokio::task::block_in_place(|| {
        let on_b = http("GET", &dash_b, "/", &[("Cookie", &cookie)], b"");
        assert!(on_b.text().contains("admin login"), "an expired session: {}", on_b.text());
        // The next login sweeps the expired session and the unused link.
        let login = http("POST", &dash_b, "/login", &[form], format!("token={TOKEN}").as_bytes());
        assert_eq!(login.status, 303, "{}", login.text());
    });
    let mut tx = f.state().meta.write().unwrap();
    assert_eq!(tx.sweep_dashboard(clock.now()).unwrap(), 0, "expired logins left in the database");
    drop(tx);
    drop(b);
}

/// A first node that is down (nothing listening on its port, as after a
/// SIGKILL: QUIC hears nothing back at all) is passed over once it has not
/// answered for `NODE_WAIT`, not after the minute a handshake would
/// otherwise wait; needs no PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_node_that_does_not_answer_is_passed_over_within_the_node_wait() {
    let f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    // Bound and let go: nothing listens there.
    let dead = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    nodes(&alice, &[&dead, &f.addr]);
    let start = Instant::now();
    let out = tokio::time::timeout(Duration::from_secs(90), listing::fetch_list(&alice, false))
        .await
        .expect("no answer within 90 s")
        .unwrap();
    let took = start.elapsed();
    eprintln!("went on to the second node after {took:?}");
    assert!(out.is_empty());
    let bound = exhibit_client::conn::NODE_WAIT + Duration::from_secs(5);
    assert!(took < bound, "the second node was tried only after {took:?}");
}
