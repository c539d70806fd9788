//! Altered bytes on the server are caught by the recipient, and nothing is
//! written.

use exhibit_client::listing;
use exhibit_proto::directory::Role;
use exhibit_proto::frame::DeliveryState;

use crate::fixture::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunk_altered_on_server_disk_fails_fetch_and_writes_nothing() {
    let f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let src = f.path("src");
    std::fs::create_dir_all(src.join("case")).unwrap();
    std::fs::write(src.join("case/first.bin"), bytes(10_000, 1)).unwrap();
    std::fs::write(src.join("case/second.bin"), bytes(3000, 2)).unwrap();
    let t = send_paths(&alice, vec![src.join("case")], &["bob"], 1024).await;
    let chunks = f.chunk_files();
    assert_eq!(chunks.len(), 13);

    for victim in [0, chunks.len() / 2, chunks.len() - 1] {
        let path = &chunks[victim];
        let good = std::fs::read(path).unwrap();
        let mut bad = good.clone();
        let n = bad.len();
        bad[n / 2] ^= 0x01;
        std::fs::write(path, &bad).unwrap();

        let out = f.path(&format!("out-{victim}"));
        let err = fetch_to(&bob, t, &out).await.unwrap_err();
        assert!(err.to_string().contains("verification failed"), "{err}");
        assert!(tree(&out).is_empty(), "something was written: {:?}", tree(&out));
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0, "temp files left behind");
        std::fs::write(path, &good).unwrap();
    }
    let outbox = listing::fetch_list(&alice, false).await.unwrap();
    assert_ne!(outbox[0].recipients[0].state, DeliveryState::Acknowledged);

    // With the chunks restored the same fetch succeeds: the failure was the tamper.
    let out = f.path("out-ok");
    fetch_to(&bob, t, &out).await.unwrap();
    assert_eq!(tree(&out).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunk_swapped_for_another_valid_chunk_is_caught() {
    let f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let src = f.path("src");
    std::fs::write(src.join("x.bin"), bytes(4096, 3)).unwrap();
    let t = send_paths(&alice, vec![src.join("x.bin")], &["bob"], 1024).await;
    let chunks = f.chunk_files();
    // Same length, valid age files, wrong order: swap two chunk files.
    let (a, b) = (std::fs::read(&chunks[0]).unwrap(), std::fs::read(&chunks[1]).unwrap());
    std::fs::write(&chunks[0], &b).unwrap();
    std::fs::write(&chunks[1], &a).unwrap();
    let out = f.path("out");
    let err = fetch_to(&bob, t, &out).await.unwrap_err();
    assert!(err.to_string().contains("verification failed"), "{err}");
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0);
}
