//! Issue 25: a chunk damaged in the server's store (a flipped byte, cut
//! short, deleted) is refused by the server when it is read for a fetch,
//! alerted through the usual notifiers, recorded in the audit log and
//! shown to the sender as damaged; the scrub finds one with no fetch at
//! all, on the injected clock; a backup goes on past one, lists it and
//! fails, and a restore of that backup names it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use exhibit_client::listing;
use exhibit_proto::directory::Role;
use exhibit_proto::frame::{AlertInfo, AlertKind, DeliveryState, ErrorCode};
use exhibit_proto::{ChunkId, TransferId};
use exhibit_server::config::DashboardConfig;
use exhibit_server::ops::scrub;
use exhibit_server::{backup, notify, Background, ManualClock};

use crate::browser::http;
use crate::fixture::*;

const T0: u64 = 1_800_000_000;
const DAY: u64 = 86_400;
const TOKEN: &str = "corruption-test-token-0123456789";

async fn manual(scrub_rate: &str) -> (Fixture, ManualClock) {
    let clock = ManualClock::new(T0);
    let rate = scrub_rate.to_owned();
    let f = Fixture::start_with(Arc::new(clock.clone()), Background::Off, move |c| {
        c.scrub_rate = rate;
        c.dashboard = Some(DashboardConfig::new("127.0.0.1:0".parse().unwrap(), TOKEN));
    })
    .await;
    (f, clock)
}

/// alice sends bob one file of ten 1 KiB chunks (and one of sealed details).
async fn sent(f: &Fixture) -> (exhibit_client::Home, exhibit_client::Home, TransferId) {
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let src = f.path("src");
    std::fs::write(src.join("interview.mp4"), bytes(10_000, 25)).unwrap();
    let t = send_paths(&alice, vec![src.join("interview.mp4")], &["bob"], 1024).await;
    (alice, bob, t)
}

/// A chunk file of content (not the sealed details, which come first) and its id.
fn victim(f: &Fixture) -> (PathBuf, ChunkId) {
    let files = f.chunk_files();
    assert_eq!(files.len(), 11);
    let path = files.into_iter().find(|p| std::fs::metadata(p).unwrap().len() > 1024).unwrap();
    let id: ChunkId = path.file_name().unwrap().to_str().unwrap().parse().unwrap();
    (path, id)
}

fn flip(p: &Path) {
    let mut b = std::fs::read(p).unwrap();
    let n = b.len() / 2;
    b[n] ^= 0x01;
    std::fs::write(p, b).unwrap();
}

fn truncate(p: &Path) {
    let b = std::fs::read(p).unwrap();
    std::fs::write(p, &b[..b.len() / 3]).unwrap();
}

fn delete(p: &Path) {
    std::fs::remove_file(p).unwrap();
}

fn corruption_alerts(f: &Fixture) -> Vec<AlertInfo> {
    exhibit_server::app::listings::every_alert(f.state(), true)
        .unwrap()
        .into_iter()
        .map(|a| a.info)
        .filter(|a| matches!(a.kind, AlertKind::Corruption { .. }))
        .collect()
}

fn audit_actions(f: &Fixture, t: TransferId) -> Vec<(String, String)> {
    let r = f.state().meta.read().unwrap();
    r.audit_about(&t.to_string(), 0, 1000).unwrap().into_iter().map(|e| (e.body.action, e.body.details)).collect()
}

async fn bob_state(alice: &exhibit_client::Home) -> DeliveryState {
    let outbox = listing::fetch_list(alice, false).await.unwrap();
    outbox[0].recipients[0].state
}

/// Damage one chunk with `how`; bob's fetch must be refused by the server
/// with the typed error, and everything else must follow.
async fn damaged_chunk_is_refused_alerted_and_shown(how: fn(&Path), reason: &str) {
    let (f, _clock) = manual("off").await;
    let (alice, bob, t) = sent(&f).await;
    let (path, id) = victim(&f);
    let good = std::fs::read(&path).unwrap();
    how(&path);

    let out = f.path("out");
    let err = fetch_to(&bob, t, &out).await.unwrap_err();
    assert_eq!(err.server_code(), Some(ErrorCode::ChunkDamaged), "not refused by the server: {err}");
    let msg = err.to_string();
    assert!(msg.contains(&format!("chunk {id} of transfer {t} is damaged on the server")), "{msg}");
    assert!(msg.contains(reason) && msg.contains("sender"), "{msg}");
    // Nothing reached its destination; what arrived waits in the fetch's
    // own temp files, to continue from once the chunk is restored.
    assert!(!out.join("interview.mp4").exists());
    let names: Vec<String> = tree(&out).into_iter().map(|(n, _)| n).collect();
    assert!(names.iter().all(|n| n.starts_with(".exhibit-")), "{names:?}");

    // One alert, about this transfer and chunk, to the sender and bob.
    let alerts = corruption_alerts(&f);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let a = &alerts[0];
    assert_eq!(a.transfer, Some(t));
    assert!(matches!(&a.kind, AlertKind::Corruption { chunk, reason: r } if *chunk == id && r.contains(reason)));
    assert!(a.message.starts_with("CORRUPTION: ") && a.message.contains("bob cannot fetch it"), "{}", a.message);
    assert!(a.message.contains("OP-TEST") && !a.message.contains("interview.mp4"), "{}", a.message);
    // Delivered by the notifiers like any other alert.
    assert_eq!(notify::deliver_due(f.state()).await.unwrap(), 1);
    assert!(corruption_alerts(&f)[0].deliveries.iter().all(|d| d.delivered_at.is_some()));

    // The sender sees it damaged, not delivered or waiting; the audit log has it.
    assert_eq!(bob_state(&alice).await, DeliveryState::Damaged);
    let audit = audit_actions(&f, t);
    let entry = audit.iter().find(|(a, _)| a == "chunk-damaged").expect("no audit entry");
    assert!(entry.1.contains(&id.to_string()) && entry.1.contains("bob"), "{}", entry.1);

    // Asked again: refused again, still one alert.
    let err = fetch_to(&bob, t, &f.path("again")).await.unwrap_err();
    assert_eq!(err.server_code(), Some(ErrorCode::ChunkDamaged), "{err}");
    assert_eq!(corruption_alerts(&f).len(), 1, "alerted twice for one cause");

    // Restored (from a backup): the fetch completes and bob is delivered.
    std::fs::write(&path, good).unwrap();
    let out = f.path("restored");
    fetch_to(&bob, t, &out).await.unwrap();
    assert_eq!(std::fs::read(out.join("interview.mp4")).unwrap(), bytes(10_000, 25));
    assert_eq!(bob_state(&alice).await, DeliveryState::Acknowledged);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_is_refused_by_the_server_alerted_and_shown_damaged() {
    damaged_chunk_is_refused_alerted_and_shown(flip, "altered").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_chunk_is_refused_by_the_server_alerted_and_shown_damaged() {
    damaged_chunk_is_refused_alerted_and_shown(truncate, "cut short").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_chunk_is_refused_by_the_server_alerted_and_shown_damaged() {
    damaged_chunk_is_refused_alerted_and_shown(delete, "missing from the store").await;
}

fn metric(f: &Fixture, name: &str) -> u64 {
    let addr = f.server().dashboard_addr().unwrap().to_string();
    let m = http("GET", &addr, "/metrics", &[("Authorization", &format!("Bearer {TOKEN}"))], b"");
    assert_eq!(m.status, 200);
    let text = m.text();
    let line =
        text.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("no {name}:\n{text}"));
    line[name.len() + 1..].parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scrub_finds_a_flipped_chunk_on_schedule_without_any_fetch() {
    let (f, clock) = manual("1d").await;
    let (alice, _bob, t) = sent(&f).await;
    let (path, id) = victim(&f);
    flip(&path);
    let sizes: Vec<u64> = f.chunk_files().iter().map(|p| std::fs::metadata(p).unwrap().len()).collect();
    let (stored, largest) = (sizes.iter().sum::<u64>(), *sizes.iter().max().unwrap());
    let victim_len = std::fs::metadata(&path).unwrap().len();
    let step = |f: &Fixture| scrub::scrub(f.state(), clock_now(f), scrub::MAX_STEP).unwrap();

    // The pass starts; nothing is due yet.
    let s = step(&f);
    assert_eq!((s.chunks, s.bytes), (0, 0));
    assert_eq!(metric(&f, "exhibit_scrub_pass_bytes"), stored);

    // Half the period: about half the store, never ahead of schedule by
    // more than the chunk that crossed the mark.
    clock.advance(DAY / 2);
    let mut damaged = step(&f).damaged;
    let half = metric(&f, "exhibit_scrub_checked_bytes");
    assert!(half >= stored / 2 - victim_len && half < stored / 2 + largest, "{half} of {stored} checked at half time");
    assert!(step(&f).chunks == 0, "a second step at the same time read more");

    // The rest of the period: every chunk, the flipped one alerted and its
    // transfer marked, though nobody asked for it.
    clock.advance(DAY / 2);
    damaged.extend(step(&f).damaged);
    let checked = metric(&f, "exhibit_scrub_checked_chunks");
    assert_eq!(checked, 11, "not every chunk was checked");
    assert_eq!(metric(&f, "exhibit_scrub_checked_bytes"), stored - victim_len, "the damaged chunk counts no bytes");
    let alerts = corruption_alerts(&f);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].transfer, Some(t));
    assert!(alerts[0].message.contains("found by the scrub"), "{}", alerts[0].message);
    assert_eq!(damaged, vec![id]);
    assert_eq!(metric(&f, "exhibit_corrupt_chunks_total"), 1);
    assert_eq!(notify::deliver_due(f.state()).await.unwrap(), 1);
    assert_eq!(bob_state(&alice).await, DeliveryState::Damaged);
    assert!(audit_actions(&f, t).iter().any(|(a, d)| a == "chunk-damaged" && d.contains("scrub")));

    // The pass ends; the next starts only once the period is over, and
    // finding the same chunk again raises nothing new.
    step(&f);
    assert_eq!(metric(&f, "exhibit_scrub_passes_total"), 1);
    clock.advance(DAY);
    step(&f);
    clock.advance(DAY);
    step(&f);
    assert_eq!(metric(&f, "exhibit_scrub_passes_total"), 2);
    assert_eq!(corruption_alerts(&f).len(), 1);
    assert_eq!(metric(&f, "exhibit_corrupt_chunks_total"), 1);
}

fn clock_now(f: &Fixture) -> u64 {
    exhibit_server::clock::Clock::now(f.state().clock.as_ref())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_goes_past_a_damaged_chunk_lists_it_and_a_restore_names_it() {
    let mut f = Fixture::start().await;
    let (_alice, _bob, t) = sent(&f).await;
    let (path, id) = victim(&f);
    flip(&path);

    let out = f.dir.path().join("exhibit.backup");
    let (data, o) = (f.data.clone(), out.clone());
    let summary = tokio::task::spawn_blocking(move || backup::backup(&data, &o)).await.unwrap().unwrap();
    assert_eq!(summary.chunks, 10, "every other chunk is in the backup");
    assert_eq!(summary.damaged.len(), 1, "{summary:?}");
    assert_eq!((summary.damaged[0].chunk, summary.damaged[0].transfers.clone()), (id, vec![t]));
    assert!(summary.damaged[0].reason.contains("altered"), "{:?}", summary.damaged[0]);
    assert!(out.exists(), "the archive was not kept");
    // The running server alerted it, as a fetch would have. It records the
    // damage once the archive is sent, so the backup may return first.
    let mut a = corruption_alerts(&f);
    for _ in 0..200 {
        if !a.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        a = corruption_alerts(&f);
    }
    assert_eq!(a.len(), 1);
    assert!(a[0].message.contains("found by a backup"), "{}", a[0].message);

    // A restore puts back everything else and names the missing chunk.
    let restored = f.dir.path().join("restored");
    let (o, r) = (out.clone(), restored.clone());
    let (s, report) = tokio::task::spawn_blocking(move || backup::restore(&o, &r)).await.unwrap().unwrap();
    assert_eq!(s.damaged, summary.damaged);
    assert_eq!(report.missing, vec![id.to_string()]);
    assert!(report.corrupt.is_empty());
    f.stop().await;
}
