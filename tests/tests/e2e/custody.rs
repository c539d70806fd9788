//! Audit log, chain of custody, transfer revocation and retention.

use std::sync::Arc;

use exhibit_client::{audit, custody, listing, receipt, ClientError};
use exhibit_proto::audit::AuditEntry;
use exhibit_proto::directory::Role;
use exhibit_proto::frame::ErrorCode;
use exhibit_server::clock::Clock;
use exhibit_server::{alerts, Background, ManualClock};
use redb::{ReadableTable, TableDefinition};

use crate::fixture::*;

const AUDIT: TableDefinition<&[u8], &[u8]> = TableDefinition::new("audit");

/// Run a whole transfer so the log has every kind of entry.
async fn busy_fixture() -> (Fixture, exhibit_client::Home, exhibit_client::Home, exhibit_proto::TransferId) {
    let f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let src = f.path("src");
    std::fs::write(src.join("a.bin"), bytes(5000, 1)).unwrap();
    let t = send_paths(&alice, vec![src.join("a.bin")], &["bob"], 1024).await;
    fetch_to(&bob, t, &f.path("out")).await.unwrap();
    (f, alice, bob, t)
}

fn edit_audit(data: &std::path::Path, f: impl FnOnce(&mut redb::Table<&[u8], &[u8]>)) {
    let db = redb::Database::open(data.join("meta.redb")).unwrap();
    let tx = db.begin_write().unwrap();
    {
        let mut t = tx.open_table(AUDIT).unwrap();
        f(&mut t);
    }
    tx.commit().unwrap();
}

fn entry(t: &redb::Table<&[u8], &[u8]>, seq: u64) -> AuditEntry {
    let v = t.get(seq.to_be_bytes().as_slice()).unwrap().unwrap();
    exhibit_proto::sign::decode(v.value(), "audit entry").unwrap()
}

fn put(t: &mut redb::Table<&[u8], &[u8]>, seq: u64, e: &AuditEntry) {
    t.insert(seq.to_be_bytes().as_slice(), exhibit_proto::sign::encode(e).as_slice()).unwrap();
}

fn broken_at(r: Result<audit::VerifyReport, ClientError>) -> String {
    match r {
        Err(ClientError::AuditRewritten(m)) => m,
        other => panic!("tampering not detected: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn altering_deleting_or_reordering_an_entry_fails_verify_at_that_entry() {
    let (mut f, _, _, _) = busy_fixture().await;
    let admin = f.admin.clone();
    let ok = audit::verify(&admin, &[]).await.unwrap();
    assert!(ok.entries >= 10, "{ok:?}");
    // A fresh admin home each time: the held checkpoint is tested separately.
    let base = f.path("homes");
    let fresh = |n: &str| {
        let h = base.join(n);
        std::fs::create_dir_all(&h).unwrap();
        for file in std::fs::read_dir(admin.dir()).unwrap() {
            let file = file.unwrap();
            if file.file_name() != "audit-checkpoint.json" {
                std::fs::copy(file.path(), h.join(file.file_name())).unwrap();
            }
        }
        exhibit_client::Home::new(h)
    };

    // Altered: one entry's details changed, its stored hash left alone.
    f.restart_with(|d| {
        edit_audit(d, |t| {
            let mut e = entry(t, 5);
            e.body.details.push_str(" (amended)");
            put(t, 5, &e);
        })
    })
    .await;
    let m = broken_at(audit::verify(&fresh("h1"), &[]).await);
    assert!(m.contains("entry 5:"), "{m}");

    // Altered and re-hashed: the next entry no longer links to it.
    f.restart_with(|d| {
        edit_audit(d, |t| {
            let mut e = entry(t, 5);
            e.body.details = "nothing happened".into();
            let e = AuditEntry::new(e.body, e.prev_hash);
            put(t, 5, &e);
        })
    })
    .await;
    let m = broken_at(audit::verify(&fresh("h2"), &[]).await);
    assert!(m.contains("entry 6:"), "{m}");

    // Deleted.
    f.restart_with(|d| edit_audit(d, |t| drop(t.remove(7u64.to_be_bytes().as_slice()).unwrap()))).await;
    let m = broken_at(audit::verify(&fresh("h3"), &[]).await);
    assert!(m.contains("entry 6:") || m.contains("entry 7:"), "{m}");

    // Reordered: two entries swapped.
    let (mut f2, ..) = busy_fixture().await;
    let a2 = f2.admin.clone();
    f2.restart_with(|d| {
        edit_audit(d, |t| {
            let (x, y) = (entry(t, 3), entry(t, 4));
            put(t, 3, &y);
            put(t, 4, &x);
        })
    })
    .await;
    let m = broken_at(audit::verify(&a2, &[]).await);
    assert!(m.contains("entry 3:"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_log_is_detected_by_a_client_holding_a_later_checkpoint() {
    let (mut f, alice, bob, _) = busy_fixture().await;
    // Alice's last contact left her holding a checkpoint.
    listing::fetch_list(&alice, false).await.unwrap();
    let held: serde_json::Value =
        serde_json::from_slice(&std::fs::read(alice.dir().join("audit-checkpoint.json")).unwrap()).unwrap();
    let n = held["seq"].as_u64().unwrap();
    f.restart_with(|d| {
        edit_audit(d, |t| {
            for seq in (n - 3)..=n {
                t.remove(seq.to_be_bytes().as_slice()).unwrap();
            }
        })
    })
    .await;
    // The signed tree head (checked first) or the chain's checkpoint.
    let tampered = |e: &ClientError| matches!(e, ClientError::AuditRewritten(_) | ClientError::LogForked { .. });
    let err = listing::fetch_list(&alice, false).await.unwrap_err();
    assert!(tampered(&err), "{err}");
    // Even once the log has grown past her checkpoint again.
    for _ in 0..8 {
        let _ = listing::fetch_list(&bob, true).await;
    }
    let err = listing::fetch_list(&alice, true).await.unwrap_err();
    assert!(tampered(&err), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custody_report_lists_every_step_in_order_with_verifiable_receipts() {
    let (f, alice, bob, t) = busy_fixture().await;
    let (report, bundles) = custody::custody(&bob, t).await.unwrap();
    let actions: Vec<&str> = report.steps.iter().map(|s| s.action.as_str()).collect();
    let want = ["create", "upload-complete", "seal", "manifest-read", "fetch", "receipt-accepted"];
    let mut it = actions.iter();
    for w in want {
        assert!(it.any(|a| *a == w), "step {w} missing or out of order in {actions:?}");
    }
    assert!(report.steps.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(report.sender.user, "alice");
    assert_eq!(report.receipts.len(), 1);
    assert_eq!(report.receipts[0].recipient, "bob");
    let dir = f.path("court");
    custody::write_dir(&dir, &report, &bundles).unwrap();
    assert!(receipt::verify_file(&dir.join("receipt-bob.json"), &f.ca).is_ok());
    let html = std::fs::read_to_string(dir.join("custody.html")).unwrap();
    assert!(html.contains("receipt-accepted") && html.contains(&t.to_string()));
    // The sender and an admin get the same steps; a third party gets nothing.
    let (r2, _) = custody::custody(&alice, t).await.unwrap();
    let (r3, _) = custody::custody(&f.admin, t).await.unwrap();
    assert!(r2.steps.len() >= report.steps.len() && r3.steps.len() >= report.steps.len());
    let carol = f.user("carol", Role::Caseworker).await;
    let err = custody::custody(&carol, t).await.unwrap_err();
    assert_eq!(err.server_code(), Some(ErrorCode::NotFound));

    // For a court: the state in plain words, each recipient's own state,
    // file names for those who may read them (numbers for an admin).
    assert!(report.summary.contains("Acknowledged by every recipient"), "{}", report.summary);
    assert!(report.summary.starts_with("Sent by ALICE"), "{}", report.summary);
    assert_eq!(report.recipients[0].state.as_deref(), Some("acknowledged"));
    let text = custody::text(&report);
    assert!(text.contains("item             a.bin"), "{text}");
    assert_eq!(r2.item_names.as_deref(), Some(&["a.bin".to_owned()][..]), "the sender reads the names");
    assert!(r3.item_names.is_none() && !custody::text(&r3).contains("a.bin"), "an admin does not");
    // Read again: one audited view per person per day, not one per read.
    custody::custody(&bob, t).await.unwrap();
    let (again, _) = custody::custody(&bob, t).await.unwrap();
    let reads = again.steps.iter().filter(|s| s.action == "custody-read" && s.actor == "bob").count();
    assert_eq!(reads, 1, "{:?}", again.steps);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_before_and_after_fetch() {
    let f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let carol = f.user("carol", Role::Caseworker).await;
    let src = f.path("src");
    std::fs::write(src.join("a.bin"), bytes(3000, 1)).unwrap();

    // Before: nobody fetched; bob can no longer.
    let t1 = send_paths(&alice, vec![src.join("a.bin")], &["bob"], 1024).await;
    assert!(custody::revoke(&alice, t1).await.unwrap().is_empty());
    let err = fetch_to(&bob, t1, &f.path("o1")).await.unwrap_err();
    assert!(err.to_string().contains("revoked"), "{err}");
    assert!(tree(&f.path("o1")).is_empty());

    // After bob fetched (carol has not): revoked, and it says who already had it.
    let t2 = send_paths(&alice, vec![src.join("a.bin")], &["bob", "carol"], 1024).await;
    fetch_to(&bob, t2, &f.path("o2")).await.unwrap();
    let already = custody::revoke(&alice, t2).await.unwrap();
    assert_eq!(already.len(), 1);
    assert_eq!(already[0].user, uid("bob"));
    assert!(already[0].at.is_some());
    assert!(fetch_to(&carol, t2, &f.path("o3")).await.is_err());
    // Only the sender may revoke, and not twice.
    let t3 = send_paths(&alice, vec![src.join("a.bin")], &["bob"], 1024).await;
    assert_eq!(custody::revoke(&bob, t3).await.unwrap_err().server_code(), Some(ErrorCode::NotFound));
    assert_eq!(custody::revoke(&alice, t1).await.unwrap_err().server_code(), Some(ErrorCode::Conflict));
    let (report, _) = custody::custody(&alice, t2).await.unwrap();
    let last = report.steps.iter().find(|s| s.action == "revoke").unwrap();
    assert!(last.details.contains("already fetched by bob"), "{}", last.details);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_deletes_chunks_and_keeps_receipts() {
    let clock = ManualClock::new(1_800_000_000);
    let f = Fixture::start_with(Arc::new(clock.clone()), Background::Off, |c| c.retain_after_ack = "1d".into()).await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let src = f.path("src");
    std::fs::write(src.join("a.bin"), bytes(5000, 1)).unwrap();
    let t = send_paths(&alice, vec![src.join("a.bin")], &["bob"], 1024).await;
    fetch_to(&bob, t, &f.path("out")).await.unwrap();
    // Five chunks of content and one of sealed details.
    assert_eq!(f.chunk_files().len(), 6);

    clock.advance(86_400 - 1);
    assert!(alerts::scan(f.state(), clock.now()).unwrap().expired.is_empty(), "expired early");
    clock.advance(1);
    assert_eq!(alerts::scan(f.state(), clock.now()).unwrap().expired, vec![t]);
    assert!(f.chunk_files().is_empty(), "chunks survived expiry");

    let b = receipt::bundle(&alice, t, None).await.unwrap();
    let file = f.path("r").join("r.json");
    receipt::write(&b, &file).unwrap();
    receipt::verify_file(&file, &f.ca).unwrap();
    let err = fetch_to(&bob, t, &f.path("again")).await.unwrap_err();
    assert!(err.to_string().contains("expired"), "{err}");
    let (report, _) = custody::custody(&alice, t).await.unwrap();
    assert_eq!(report.state, "expired");
    assert!(report.steps.iter().any(|s| s.action == "expire"));
    let r = exhibit_server::fsck::fsck_state(f.state(), false).unwrap();
    assert!(r.healthy() && r.orphans.is_empty(), "{r:?}");
}
