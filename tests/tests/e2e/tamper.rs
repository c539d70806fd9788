//! Altered bytes on the server are caught by the recipient, and nothing is
//! written. The server checks each chunk it serves too (see
//! `corruption.rs`); here that check is off, to show that the recipient's
//! own checks stand without it.

use exhibit_client::listing;
use exhibit_proto::directory::Role;
use exhibit_proto::frame::DeliveryState;

use crate::fixture::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunk_altered_on_server_disk_fails_fetch_and_writes_nothing() {
    let f = Fixture::start().await;
    f.state().check_reads.store(false, std::sync::atomic::Ordering::Relaxed);
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let src = f.path("src");
    std::fs::create_dir_all(src.join("case")).unwrap();
    std::fs::write(src.join("case/first.bin"), bytes(10_000, 1)).unwrap();
    std::fs::write(src.join("case/second.bin"), bytes(3000, 2)).unwrap();
    let t = send_paths(&alice, vec![src.join("case")], &["bob"], 1024).await;
    let chunks = f.chunk_files();
    // Ten and three chunks of content, and one of sealed details: any of
    // them altered fails the fetch.
    assert_eq!(chunks.len(), 14);

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
    f.state().check_reads.store(false, std::sync::atomic::Ordering::Relaxed);
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let src = f.path("src");
    std::fs::write(src.join("x.bin"), bytes(4096, 3)).unwrap();
    let t = send_paths(&alice, vec![src.join("x.bin")], &["bob"], 1024).await;
    // Same length, valid age files, wrong order: swap two chunk files of
    // content (the sealed details' chunk has a length of its own).
    let chunks: Vec<_> = f.chunk_files().into_iter().filter(|p| std::fs::metadata(p).unwrap().len() > 1024).collect();
    assert_eq!(chunks.len(), 4);
    let (a, b) = (std::fs::read(&chunks[0]).unwrap(), std::fs::read(&chunks[1]).unwrap());
    std::fs::write(&chunks[0], &b).unwrap();
    std::fs::write(&chunks[1], &a).unwrap();
    let out = f.path("out");
    let err = fetch_to(&bob, t, &out).await.unwrap_err();
    assert!(err.to_string().contains("verification failed"), "{err}");
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0);
}

/// A sender that lists its chunks in the wrong order: every chunk is
/// genuine and signed for, but the file they make is not the one whose hash
/// the sender sealed. The recipient's whole-file check refuses it, whether
/// the hash comes from the chunks' BLAKE3 subtrees (power-of-two chunk
/// length) or from reading the file again (any other length).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_listed_out_of_order_fail_the_whole_file_hash() {
    use exhibit_proto::frame::{Request, Response};
    use exhibit_proto::manifest::{ChunkRef, ItemDetails, ManifestItem, SealedDetails, MANIFEST_V1};
    use exhibit_proto::{seal, ChunkId, Manifest, TransferId};

    let f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let (a, b) = (alice.load().unwrap(), bob.load().unwrap());
    let keys = seal::parse_recipients(&[b.me.age_recipient.as_str(), a.me.age_recipient.as_str()]).unwrap();
    let conn = exhibit_client::conn::Conn::open(&a).await.unwrap();
    for (case, chunk_len) in [4096u32, 3000].into_iter().enumerate() {
        let data = bytes(3 * chunk_len as usize + 100, 40 + case as u64);
        let transfer = TransferId::random();
        let create = Request::CreateTransfer {
            transfer,
            recipients: vec![b.me.user.clone()],
            policy: None,
            approvers: vec![],
            case: None,
            expires_secs: None,
            derived_from: None,
            ack_within_secs: None,
        };
        assert!(matches!(conn.request(&create).await.unwrap(), Response::Created));
        let mut refs = vec![];
        for piece in data.chunks(chunk_len as usize) {
            let c = seal::encrypt(piece, &keys).unwrap();
            let id = ChunkId::of(&c);
            refs.push(ChunkRef { id, len: c.len() as u32 });
            conn.put_chunk(transfer, id, c).await.unwrap();
        }
        // The second and third chunks (equal lengths) change places.
        refs.swap(1, 2);
        let details = SealedDetails {
            items: vec![ItemDetails {
                path: "interview.mp4".into(),
                size: data.len() as u64,
                blake3: *blake3::hash(&data).as_bytes(),
                chunk_plain_len: chunk_len,
                exhibit_ref: None,
                description: None,
            }],
            note: None,
        };
        let manifest = Manifest {
            version: MANIFEST_V1,
            transfer,
            sender: a.me.user.clone(),
            recipients: vec![b.me.user.clone()],
            created_at: 1,
            ack_within_secs: None,
            case_ref: None,
            chunks: vec![],
            details_parts: vec![],
            items: vec![ManifestItem { chunks: refs }],
            details: seal::seal_details(&details, &keys).unwrap(),
            policy: None,
            approvers: vec![],
            derived_from: None,
            log_head: None,
        };
        let signed = manifest.sign(&a.signing);
        let req = Request::Seal { signature: signed.signature.clone(), manifest_len: signed.bytes.len() as u32 };
        assert!(matches!(conn.request_with_body(&req, &signed.bytes).await.unwrap(), Response::Sealed { .. }));

        let out = f.path(&format!("out{case}"));
        let err = fetch_to(&bob, transfer, &out).await.unwrap_err();
        assert!(err.to_string().contains("whole-file BLAKE3 differs"), "chunk length {chunk_len}: {err}");
        assert!(tree(&out).is_empty(), "chunk length {chunk_len}: something was left in {}", out.display());
    }
}
