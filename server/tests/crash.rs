//! Crash safety: the real `exhibitd` as a child process, killed with
//! SIGKILL part-way through an upload and right after a receipt; restarted;
//! nothing acknowledged is lost and the upload resumes.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use exhibit_client::{fetch, journal, receipt, send};
use exhibit_proto::UserId;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_upload_and_after_receipt_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = setup(dir.path()).await;
    let (alice, bob, data) = (s.alice.clone(), s.bob.clone(), s.data.clone());
    let src = dir.path().join("video.bin");
    let content = pseudo(64 * 4096, 11);
    std::fs::write(&src, &content).unwrap();

    // Kill the daemon once some chunks are on its disk, at a point that
    // varies from run to run.
    let mut o = send::SendOptions::new(vec![src.clone()], vec![UserId::new("bob").unwrap()]);
    o.chunk_size = 4096;
    let target = 2 + (std::process::id() as usize % 40);
    // Restart; everything the journal says the server confirmed is there,
    // and the send completes from where it was.
    let pending = kill_during_send(&mut s, o, target).await;
    let out = if let Some(j) = pending.as_ref() {
        let rec = journal::recover(j).unwrap();
        eprintln!("killed after {} confirmed chunks; resuming", rec.chunks.len());
        let r = retry(|| send::resume(&alice, j, false)).await;
        assert_eq!(r.chunks_sent, 64 - rec.chunks.len(), "confirmed chunks were lost or re-sent");
        r.transfer
    } else {
        // The send finished before the kill landed: it must be sealed.
        let list = retry(|| exhibit_client::listing::fetch_list(&alice, false)).await;
        list[0].transfer
    };

    let dest = dir.path().join("out");
    let r = retry(|| {
        fetch::fetch(
            &bob,
            fetch::FetchOptions { transfer: out, out: dest.clone(), progress: false, items: Default::default() },
        )
    })
    .await;
    assert!(r.receipt.is_some());
    assert_eq!(std::fs::read(dest.join("video.bin")).unwrap(), content);

    // The receipt the server accepted survives an immediate SIGKILL.
    s.daemon.kill();
    s.daemon.restart();
    let b = retry(|| receipt::bundle(&alice, out, None)).await;
    let file = dir.path().join("receipt.json");
    receipt::write(&b, &file).unwrap();
    receipt::verify_file(&file, &s.ca).unwrap();
    drop(s);
    let report = exhibit_server::fsck::fsck(&data, true).unwrap();
    assert!(report.healthy(), "{report:?}");
}

/// A device extract (small files packed several to a chunk) with the
/// daemon SIGKILLed part-way through its upload: the send resumes with
/// only the packs the server did not confirm, the fetch is whole, and fsck
/// reading every chunk back finds nothing missing, orphaned or corrupt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_packed_upload_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = setup(dir.path()).await;
    let (alice, bob, data) = (s.alice.clone(), s.bob.clone(), s.data.clone());
    let src = dir.path().join("extract");
    let mut files = vec![];
    for i in 0..3000usize {
        let rel = format!("app{:02}/f{i:05}.db", i % 30);
        std::fs::create_dir_all(src.join(&rel).parent().unwrap()).unwrap();
        let content = pseudo(200 + (i * 7919) % 3801, i as u64);
        std::fs::write(src.join(&rel), &content).unwrap();
        files.push((rel, content));
    }
    // Sent in path order, which the packs follow.
    files.sort_by(|a, b| exhibit_proto::path::component_cmp(&a.0, &b.0));
    let mut o = send::SendOptions::new(vec![src.clone()], vec![UserId::new("bob").unwrap()]);
    o.chunk_size = 16 << 10;
    let target = 5 + (std::process::id() as usize % 100);
    let pending = kill_during_send(&mut s, o, target).await;
    let out = match pending.as_ref() {
        Some(j) => {
            let confirmed = journal::recover(j).unwrap().chunks.len();
            eprintln!("killed after {confirmed} confirmed packs; resuming");
            let packs = exhibit_proto::details::layout(files.iter().map(|f| f.1.len() as u64), 16 << 10).1;
            let r = retry(|| send::resume(&alice, j, false)).await;
            assert_eq!(r.chunks_sent as u64, packs - confirmed as u64, "confirmed packs were lost or re-sent");
            r.transfer
        }
        None => retry(|| exhibit_client::listing::fetch_list(&alice, false)).await[0].transfer,
    };
    let dest = dir.path().join("out");
    let r = retry(|| {
        fetch::fetch(
            &bob,
            fetch::FetchOptions { transfer: out, out: dest.clone(), progress: false, items: Default::default() },
        )
    })
    .await;
    assert!(r.receipt.is_some());
    for (rel, content) in &files {
        assert!(std::fs::read(dest.join("extract").join(rel)).unwrap() == *content, "{rel}");
    }
    drop(s);
    let report = exhibit_server::fsck::fsck(&data, true).unwrap();
    assert!(report.healthy() && report.orphans.is_empty(), "{report:?}");
}
