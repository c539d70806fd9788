//! Alert scan benchmark: N sealed transfers (default 1,000,000), of which
//! 1,000 are past their deadline. Measures the indexed scan (what the server
//! runs) against a baseline measured in the same run: a full pass over the
//! transfers table, which is what a scheduler without the deadline index
//! would have to do.
//!
//! `cargo bench -p exhibit-server --bench alert_scan` (`EXHIBIT_BENCH_N` to
//! change N); with `EXHIBIT_BENCH_POSTGRES=postgres://...` the metadata is
//! in a scratch schema of that database instead of redb (`bench/nodes.sh`
//! runs both).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Instant;

use exhibit_proto::frame::{DeliveryState, TransferState};
use exhibit_proto::{TransferId, UserId};
use exhibit_server::clock::Clock;
use exhibit_server::config::{Config, MetadataBackend, MetadataConfig};
use exhibit_server::core::records::{RecipientRecord, TransferRecord};
use exhibit_server::{alerts, init_with, Background, ManualClock, Server};

const NOW: u64 = 1_800_000_000;
const DUE: usize = 1_000;

fn record(i: usize, deadline: u64) -> TransferRecord {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&(i as u64).to_be_bytes());
    TransferRecord {
        transfer: TransferId(id),
        sender: UserId::new(&format!("sender{}", i % 500)).unwrap(),
        recipients: vec![RecipientRecord {
            user: UserId::new(&format!("caseworker{}", i % 2000)).unwrap(),
            state: DeliveryState::Sealed,
            at: Some(deadline - 14_400),
            fetched: 0,
        }],
        state: TransferState::Sealed,
        created_at: deadline - 14_400,
        sealed_at: Some(deadline - 14_400),
        deadline: Some(deadline),
        case_ref: Some(format!("OP{i}")),
        items: 3,
        bytes: 12 << 30,
        chunks: 3072,
        ended_at: None,
        approvers: vec![],
        policy: None,
        decision: None,
        approval: None,
        expires_secs: None,
        access_until: None,
        derived_from: None,
        onward: vec![],
    }
}

fn main() {
    let n: usize = std::env::var("EXHIBIT_BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NOW);
    let metadata = match std::env::var("EXHIBIT_BENCH_POSTGRES") {
        Ok(url) if !url.is_empty() => {
            let schema = format!("bench_alerts_{}", std::process::id());
            let url = exhibit_server::meta::postgres::scratch_schema(&url, &schema).unwrap();
            MetadataConfig { backend: MetadataBackend::Postgres, url: Some(url) }
        }
        _ => MetadataConfig::default(),
    };
    let backend = if metadata.url.is_some() { "postgres" } else { "redb" };
    let out =
        init_with(&dir.path().join("data"), "127.0.0.1:0".parse().unwrap(), "localhost", metadata, &clock).unwrap();
    let mut config = Config::read(&out.config).unwrap();
    config.escalate_after = vec!["4h".into()];
    std::fs::write(&out.config, exhibit_server::config::to_toml(&config).unwrap()).unwrap();
    let settings = Config::load(&out.config).unwrap();
    let server = rt.block_on(Server::start_with(settings, Arc::new(clock.clone()), Background::Off)).unwrap();
    let state = server.state().clone();

    let t = Instant::now();
    // Due ones are spread over the hour before NOW; the rest over the next weeks.
    let recs = (0..n).map(|i| {
        let deadline = if i % (n / DUE).max(1) == 0 && i / (n / DUE).max(1) < DUE {
            NOW - 1 - (i as u64 % 3600)
        } else {
            NOW + 3600 + i as u64
        };
        record(i, deadline)
    });
    for chunk in recs.collect::<Vec<_>>().chunks(100_000) {
        exhibit_server::app::transfers::import_sealed(&state, chunk.iter().cloned()).unwrap();
    }
    let fill = t.elapsed();

    // Baseline: every transfer read and checked.
    let t = Instant::now();
    let all = exhibit_server::app::listings::every_transfer(&state).unwrap();
    let overdue = all.iter().filter(|r| exhibit_server::core::policy::is_overdue(r, clock.now())).count();
    let baseline = t.elapsed();

    // One durable commit with nothing in it: the floor under any scan. The
    // first commit after the bulk import also pays for redb reclaiming the
    // import's pages, so it is done here, not inside the timed scan.
    let t = Instant::now();
    exhibit_server::app::write(&state, |tx| tx.set_counter("bench", 1)).unwrap();
    let commit = t.elapsed();

    // The scheduler's scan: only the due range of the deadline index, alerts
    // raised and committed (fsync) in the same transaction.
    let t = Instant::now();
    let report = alerts::scan(&state, clock.now()).unwrap();
    let scan = t.elapsed();

    // A second scan with nothing due: the steady-state cost.
    let t = Instant::now();
    let idle = alerts::scan(&state, clock.now()).unwrap();
    let idle_scan = t.elapsed();

    assert_eq!(overdue, DUE.min(n));
    assert_eq!(report.raised.len(), DUE.min(n));
    assert!(idle.raised.is_empty());
    println!("metadata: {backend}, transfers: {n}, due: {}", report.raised.len());
    println!("fill:                     {:>10.1} ms", fill.as_secs_f64() * 1e3);
    println!("baseline full pass:       {:>10.1} ms", baseline.as_secs_f64() * 1e3);
    println!("one empty commit (fsync): {:>10.1} ms", commit.as_secs_f64() * 1e3);
    println!("indexed scan (1k alerts): {:>10.1} ms", scan.as_secs_f64() * 1e3);
    println!("indexed scan (none due):  {:>10.3} ms", idle_scan.as_secs_f64() * 1e3);
    println!("ratio scan/baseline:      {:>10.4}", scan.as_secs_f64() / baseline.as_secs_f64());
    rt.block_on(server.shutdown());
}
