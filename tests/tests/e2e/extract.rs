//! Device extracts: folders of many small files (issue 28). Small files are
//! packed into shared chunks, the sealed details travel in parts, and the
//! receipt signs one root over the items' hashes, so neither the number of
//! files nor their names reach a frame or the server.

use std::path::{Path, PathBuf};

use exhibit_client::{custody, receipt};
use exhibit_proto::details::{self, Head, ItemRecord, Place};
use exhibit_proto::directory::Role;
use exhibit_proto::frame::{DeliveryState, Request, Response};
use exhibit_proto::limits::DEFAULT_CHUNK_SIZE;
use exhibit_proto::manifest::{ChunkRef, MANIFEST_VERSION};
use exhibit_proto::{seal, ChunkId, Manifest, TransferId};

use crate::fixture::*;

/// Write `n` files of 200 B to 4 KB (seeded) under `root`, 100 folders
/// deep in two levels as a phone extract's app folders are; returns their
/// paths relative to `root`'s parent, sorted.
fn extract(root: &Path, n: usize) -> Vec<(String, usize, u64)> {
    let name = root.file_name().unwrap().to_str().unwrap().to_owned();
    let mut files = vec![];
    for i in 0..n {
        let rel = format!("app{:02}/cache{:02}/f{i:07}.bin", i % 100, (i / 100) % 10);
        let size = 200 + (i * 7919) % 3801;
        let path = root.join(&rel);
        if i < 1000 {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        }
        std::fs::write(&path, bytes(size, i as u64)).unwrap();
        files.push((format!("{name}/{rel}"), size, i as u64));
    }
    files
}

/// Every file under `out` is the one `extract` wrote, and nothing else is
/// there.
fn check_tree(out: &Path, files: &[(String, usize, u64)]) {
    for (rel, size, seed) in files {
        let got = std::fs::read(out.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert!(got == bytes(*size, *seed), "{rel} differs");
    }
    let mut count = 0;
    let mut stack = vec![out.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            match e.file_type().unwrap().is_dir() {
                true => stack.push(e.path()),
                false => count += 1,
            }
        }
    }
    assert_eq!(count, files.len(), "files left beside the fetched ones");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100000_file_extract_round_trips_with_a_receipt_that_verifies_offline() {
    let f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let root = f.path("src").join("extract");
    let files = extract(&root, 100_000);
    let t = send_paths(&alice, vec![root], &["bob"], DEFAULT_CHUNK_SIZE).await;
    // Packed: about 200 MB in 4 MiB chunks, not one chunk per file.
    let stored = f.chunk_files().len();
    assert!((45..=60).contains(&stored), "{stored} chunks stored");

    let out = f.path("out");
    let r = fetch_to(&bob, t, &out).await.unwrap();
    assert_eq!(r.item_count, 100_000);
    assert!(r.items.is_empty(), "a hundred thousand files listed in the outcome");
    assert_eq!(std::fs::read_to_string(&r.items_file).unwrap().lines().count(), 100_000);
    assert!(r.receipt.is_some(), "no receipt");
    check_tree(&out, &files);

    // The receipt verifies offline, and so does its item list.
    let b = receipt::bundle(&alice, t, None).await.unwrap();
    let file = f.path("r").join("receipt.json");
    receipt::write(&b, &file).unwrap();
    let list = receipt::item_list(&bob, &b).await.unwrap().unwrap();
    std::fs::write(receipt::items_file_of(&file), list).unwrap();
    let (s, checked) = receipt::verify_with_items(&file, &f.ca, None).unwrap();
    assert_eq!((s.item_count, checked), (Some(100_000), Some(100_000)));
    // The bundle is small: the list travels beside it.
    assert!(std::fs::metadata(&file).unwrap().len() < 64 << 10);

    let (report, _) = custody::custody(&alice, t).await.unwrap();
    assert_eq!(report.receipts.len(), 1);
    assert!(report.steps.iter().any(|s| s.action == "receipt-accepted"), "{:?}", report.steps);
    let outbox = exhibit_client::listing::fetch_list(&alice, false).await.unwrap();
    assert_eq!(outbox[0].recipients[0].state, DeliveryState::Acknowledged);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_extract_packs_small_files_and_keeps_large_ones_whole() {
    let f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    // What packs is a file's size against the chunk size: 64 KiB chunks
    // here stand for 4 MiB ones, so the large files are "GB" files of
    // many chunks and the small ones fill packs by the dozen.
    let chunk = 64 << 10;
    let root = f.path("src").join("extract");
    let mut files = extract(&root, 2000);
    for (i, size) in [(0usize, 40 * chunk + 17), (1, chunk), (2, chunk - 1), (3, 0), (4, 3 * chunk)].into_iter() {
        let rel = format!("images/disk{i}.img");
        std::fs::create_dir_all(root.join("images")).unwrap();
        std::fs::write(root.join(&rel), bytes(size, 900 + i as u64)).unwrap();
        files.push((format!("extract/{rel}"), size, 900 + i as u64));
    }
    let t = send_paths(&alice, vec![root], &["bob"], chunk as u32).await;

    // The chunks the server holds are the layout's: packs and whole files.
    let mut sizes: Vec<(String, u64)> = files.iter().map(|(rel, size, _)| (rel.clone(), *size as u64)).collect();
    sizes.sort_by(|a, b| exhibit_proto::path::component_cmp(&a.0, &b.0));
    let (places, content) = details::layout(sizes.iter().map(|s| s.1), chunk as u32);
    let packed = places.iter().filter(|p| matches!(p, Place::Packed { .. })).count();
    assert_eq!(packed, 2002, "the small files, the one a byte short of a chunk and the empty one are packed");
    assert_eq!(f.chunk_files().len() as u64, content + 1, "content chunks and one of sealed details");

    let out = f.path("out");
    let r = fetch_to(&bob, t, &out).await.unwrap();
    assert!(r.receipt.is_some());
    check_tree(&out, &files);
}

/// A sender that packs two small files and seals a hash for the second
/// that its bytes do not have, or a path that leads outside the output
/// folder: the fetch fails, and nothing at all is left in the folder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pack_with_a_wrong_hash_or_an_unsafe_path_writes_nothing() {
    let f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let (ap, bp) = (alice.load().unwrap(), bob.load().unwrap());
    let keys = seal::parse_recipients(&[&bp.me.age_recipient, &ap.me.age_recipient]).unwrap();
    let conn = exhibit_client::conn::Conn::open(&ap).await.unwrap();
    let (a, b) = (bytes(100, 1), bytes(150, 2));
    for (case, (second, wrong_hash)) in [("b.txt", true), ("../b.txt", false)].into_iter().enumerate() {
        let t = TransferId::random();
        let create = Request::CreateTransfer {
            transfer: t,
            recipients: vec![bp.me.user.clone()],
            policy: None,
            approvers: vec![],
            case: None,
            expires_secs: None,
            derived_from: None,
            ack_within_secs: None,
        };
        assert!(matches!(conn.request(&create).await.unwrap(), Response::Created));
        let put = |plain: Vec<u8>| {
            let cipher = seal::encrypt(&plain, &keys).unwrap();
            let c = ChunkRef { id: ChunkId::of(&cipher), len: cipher.len() as u32 };
            (c, cipher)
        };
        let (pack, cipher) = put([a.clone(), b.clone()].concat());
        conn.put_chunk(t, pack.id, cipher).await.unwrap();
        let hash = |d: &[u8]| *blake3::hash(d).as_bytes();
        let item = |path: &str, size: usize, blake3, offset| ItemRecord {
            path: path.into(),
            size: size as u64,
            blake3,
            place: Place::Packed { chunk: 0, offset },
            exhibit_ref: None,
            description: None,
            labels: 0,
        };
        let labels = vec![exhibit_proto::labels::Labels::default()];
        let policy = Some(exhibit_proto::labels::PolicySummary::of(&labels));
        let mut w = details::Writer::new(&Head { items: 2, chunk_len: 4096, note: None, labels });
        assert!(w.push(&item("a.txt", 100, hash(&a), 0)).is_empty());
        let second_hash = if wrong_hash { hash(&a) } else { hash(&b) };
        assert!(w.push(&item(second, 150, second_hash, 100)).is_empty());
        let (part, cipher) = put(w.finish());
        conn.put_chunk(t, part.id, cipher).await.unwrap();
        let m = Manifest {
            version: MANIFEST_VERSION,
            transfer: t,
            sender: ap.me.user.clone(),
            recipients: vec![bp.me.user.clone()],
            created_at: 0,
            ack_within_secs: None,
            case_ref: None,
            chunks: vec![pack],
            details_parts: vec![part],
            items: vec![],
            details: vec![],
            policy,
            approvers: vec![],
            derived_from: None,
            log_head: None,
        };
        let signed = m.sign(&ap.signing);
        let req = Request::Seal { signature: signed.signature.clone(), manifest_len: signed.bytes.len() as u32 };
        assert!(matches!(conn.request_with_body(&req, &signed.bytes).await.unwrap(), Response::Sealed { .. }));

        let parent: PathBuf = f.path(&format!("victim{case}"));
        let out = parent.join("out");
        let err = fetch_to(&bob, t, &out).await.unwrap_err();
        let want = if wrong_hash { "BLAKE3 differs" } else { "unsafe path" };
        assert!(err.to_string().contains(want), "case {case}: {err}");
        assert_eq!(tree(&parent), vec![], "case {case}: something was written");
    }
}
