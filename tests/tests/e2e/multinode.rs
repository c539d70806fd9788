//! Two exhibitd nodes of one deployment at once: one PostgreSQL (metadata),
//! one S3 bucket (moto, chunks), the same keys. Sends spread over both are
//! each sealed once, the audit chain and tree verify, both schedulers
//! scanning the same due deadlines raise each alert once, a revocation
//! through one node is held by the other at the next request, and a
//! client whose first node is gone carries on through the second.

use std::sync::Arc;

use exhibit_client::conn::Conn;
use exhibit_client::{admin, listing, Home};
use exhibit_proto::directory::Role;
use exhibit_proto::frame::{AlertKind, Request, TransferState};
use exhibit_proto::TransferId;
use exhibit_server::clock::Clock;
use exhibit_server::{alerts, Background, ManualClock};

use crate::fixture::*;

const T0: u64 = 1_800_000_000;
const HOUR: u64 = 3600;
/// Sends per user; two users, one through each node first.
const SENDS: usize = 100;

/// Point a user's key directory at `nodes`, tried in order.
fn nodes(home: &Home, nodes: &[&str]) {
    let file = home.dir().join("client.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    let mut config: toml::Table = toml::from_str(&text).unwrap();
    config.insert("server".into(), nodes.join(",").into());
    std::fs::write(&file, toml::to_string(&config).unwrap()).unwrap();
}

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
