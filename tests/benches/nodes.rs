//! Small-transfer throughput of one deployment in three shapes, measured in
//! one run on one machine: metadata in redb on one node (the embedded
//! default, the baseline), in PostgreSQL on one node, and in PostgreSQL on
//! two nodes at once (clients split between them, one chunk directory
//! shared, as one bucket would be).
//!
//! Each transfer is what a user pays for: a 1 KiB send (connect, tree-head
//! and keys checks, create, upload, seal), then the recipient's fetch (its
//! own connection and checks, download, decrypt, hash) and signed receipt.
//! `CLIENTS` pairs of sender and recipient run at once, each pair its own
//! users with their own keys; every pair sends once untimed first (pins,
//! first contact), then `ROUNDS` timed transfers each.
//!
//! `bench/nodes.sh` starts a throwaway PostgreSQL and runs this;
//! by hand: `EXHIBIT_BENCH_POSTGRES=postgres://... cargo bench -p
//! exhibit-tests --bench nodes` (without it only the redb row is measured).
//! `EXHIBIT_BENCH_CLIENTS` and `EXHIBIT_BENCH_ROUNDS` change the load;
//! `EXHIBIT_BENCH_ROWS=postgres-one` (or `redb`, `postgres-two`, comma
//! separated) measures only those rows, e.g. to profile one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
#[path = "../tests/e2e/fixture.rs"]
mod fixture;

use std::sync::Arc;
use std::time::{Duration, Instant};

use exhibit_client::{fetch, send, Home};
use exhibit_proto::directory::Role;
use exhibit_server::config::{MetadataBackend, MetadataConfig};
use exhibit_server::{Background, SystemClock};

use fixture::{bytes, nodes as point_at, uid, Fixture};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// One send, fetch and receipt of 1 KiB from `from` to `to` (named `to_id`).
async fn one(from: &Home, to: &Home, to_id: &str, n: usize) {
    let src = from.dir().with_file_name(format!("src-{}-{n}", to_id));
    std::fs::create_dir_all(&src).unwrap();
    let file = src.join("statement.txt");
    std::fs::write(&file, bytes(1024, n as u64)).unwrap();
    let mut o = send::SendOptions::new(vec![file], vec![uid(to_id)]);
    o.chunk_size = 1024;
    o.case_ref = Some("OP-BENCH".into());
    let t = send::send(from, o).await.unwrap().transfer;
    let out = to.dir().with_file_name(format!("out-{to_id}-{n}"));
    let got = fetch::fetch(
        to,
        fetch::FetchOptions { transfer: t, out: out.clone(), progress: false, items: Default::default() },
    )
    .await
    .unwrap();
    assert_eq!(got.item_count, 1);
    std::fs::remove_dir_all(&out).unwrap();
    std::fs::remove_dir_all(&src).unwrap();
}

struct Row {
    name: &'static str,
    per_sec: f64,
    p50: Duration,
    p99: Duration,
}

/// Enrol `clients` pairs, spread them over `nodes`, warm up, then time
/// `rounds` transfers per pair, all pairs at once.
async fn measure(name: &'static str, f: &Fixture, nodes: &[String], clients: usize, rounds: usize) -> Row {
    let mut pairs = vec![];
    for i in 0..clients {
        let (a, b) = (format!("sender{i}"), format!("caseworker{i}"));
        let from = f.user(&a, Role::EvidenceUnit).await;
        let to = f.user(&b, Role::Caseworker).await;
        let node = &nodes[i % nodes.len()];
        point_at(&from, &[node]);
        point_at(&to, &[node]);
        pairs.push((from, to, b));
    }
    let run = |first: usize, count: usize| {
        let mut tasks = tokio::task::JoinSet::new();
        for pair in &pairs {
            let (from, to, b) = pair.clone();
            tasks.spawn(async move {
                let mut took = vec![];
                for n in first..first + count {
                    let t = Instant::now();
                    one(&from, &to, &b, n).await;
                    took.push(t.elapsed());
                }
                took
            });
        }
        tasks
    };
    let mut warm = run(0, 1);
    while let Some(t) = warm.join_next().await {
        t.unwrap();
    }
    let start = Instant::now();
    let mut timed = run(1, rounds);
    let mut each = vec![];
    while let Some(t) = timed.join_next().await {
        each.extend(t.unwrap());
    }
    let wall = start.elapsed();
    each.sort();
    let at = |q: f64| each[((each.len() - 1) as f64 * q) as usize];
    Row { name, per_sec: each.len() as f64 / wall.as_secs_f64(), p50: at(0.5), p99: at(0.99) }
}

/// Every user enrols from 127.0.0.1, one after another: lift the limit on
/// connections without a certificate from one address (the set-up is not
/// what is measured).
fn open_enrolment(c: &mut exhibit_server::config::Config) {
    c.enrolment.max_connections = 1024;
    c.enrolment.max_connections_per_source = 1024;
    c.enrolment.free_failures = 1024;
}

fn sys() -> Arc<dyn exhibit_server::clock::Clock> {
    Arc::new(SystemClock)
}

async fn postgres(url: &str, name: &str) -> MetadataConfig {
    let (url, schema) = (url.to_owned(), format!("bench_{name}_{}", std::process::id()));
    let url = tokio::task::spawn_blocking(move || exhibit_server::meta::postgres::scratch_schema(&url, &schema))
        .await
        .unwrap()
        .unwrap();
    MetadataConfig { backend: MetadataBackend::Postgres, url: Some(url) }
}

fn main() {
    let clients = env("EXHIBIT_BENCH_CLIENTS", 64);
    let rounds = env("EXHIBIT_BENCH_ROUNDS", 5);
    let pg = std::env::var("EXHIBIT_BENCH_POSTGRES").ok().filter(|u| !u.is_empty());
    let only = std::env::var("EXHIBIT_BENCH_ROWS").unwrap_or_else(|_| "redb,postgres-one,postgres-two".into());
    let row = |name: &str| only.split(',').any(|r| r.trim() == name);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut rows = vec![];
        if row("redb") {
            let f = Fixture::start_with(Arc::new(SystemClock), Background::On, open_enrolment).await;
            rows.push(measure("redb, one node", &f, std::slice::from_ref(&f.addr), clients, rounds).await);
        }
        if let Some(url) = pg.as_ref().filter(|_| row("postgres-one")) {
            let f = Fixture::with_metadata_and(sys(), Background::On, open_enrolment, postgres(url, "one").await).await;
            rows.push(measure("postgres, one node", &f, std::slice::from_ref(&f.addr), clients, rounds).await);
        }
        if let Some(url) = pg.as_ref().filter(|_| row("postgres-two")) {
            let f = Fixture::with_metadata_and(sys(), Background::On, open_enrolment, postgres(url, "two").await).await;
            let b = f.second_node().await;
            let nodes = [f.addr.clone(), b.local_addr().to_string()];
            rows.push(measure("postgres, two nodes", &f, &nodes, clients, rounds).await);
            drop(b);
        }
        if pg.is_none() {
            eprintln!("EXHIBIT_BENCH_POSTGRES not set: the PostgreSQL rows are skipped");
        }
        println!(
            "{clients} sender/recipient pairs at once, {rounds} timed 1 KiB transfers each (send + fetch + receipt)"
        );
        println!("{:<22} {:>12} {:>10} {:>10} {:>10}", "", "transfers/s", "p50 ms", "p99 ms", "ratio");
        let Some(base) = rows.first().map(|r| r.per_sec) else { return };
        for r in &rows {
            println!(
                "{:<22} {:>12.1} {:>10.1} {:>10.1} {:>10.2}",
                r.name,
                r.per_sec,
                r.p50.as_secs_f64() * 1e3,
                r.p99.as_secs_f64() * 1e3,
                r.per_sec / base
            );
        }
        if let [_, one, two] = &rows[..] {
            println!("two nodes / one node (postgres): {:.2}", two.per_sec / one.per_sec);
        }
    });
}
