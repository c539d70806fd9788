//! Round trips: the bytes the recipient writes are the bytes the sender read.

use exhibit_client::listing;
use exhibit_client::reach::Choice;
use exhibit_proto::directory::Role;
use exhibit_proto::frame::DeliveryState;
use exhibit_proto::limits::DEFAULT_CHUNK_SIZE;

use crate::fixture::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boundary_sizes_round_trip_at_default_chunk_size() {
    let f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let c = DEFAULT_CHUNK_SIZE as usize;
    for (i, size) in [0, 1, c - 1, c, c + 1].into_iter().enumerate() {
        let src = f.path(&format!("src{i}"));
        let file = src.join(format!("exhibit-{size}.bin"));
        let data = bytes(size, i as u64);
        std::fs::write(&file, &data).unwrap();
        let t = send_paths(&alice, vec![file], &["bob"], DEFAULT_CHUNK_SIZE).await;
        let out = f.path(&format!("out{i}"));
        let r = fetch_to(&bob, t, &out).await.unwrap();
        assert_eq!(tree(&out), vec![(format!("exhibit-{size}.bin"), data)], "size {size}");
        assert!(r.receipt.is_some(), "size {size}: no receipt");
        assert_eq!(r.items[0].blake3, blake3::hash(&bytes(size, i as u64)).to_hex().to_string());
    }
    let outbox = listing::fetch_list(&alice, false).await.unwrap();
    assert_eq!(outbox.len(), 5);
    for t in outbox {
        assert_eq!(t.recipients[0].state, DeliveryState::Acknowledged, "{}", t.transfer);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folder_round_trips_with_relative_paths_and_states_advance() {
    folder_round_trip(Choice::Quic).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folder_round_trips_with_relative_paths_and_states_advance_over_tcp() {
    folder_round_trip(Choice::Tcp).await
}

/// Send, fetch, receipt (acknowledged, exported and verified offline)
/// over `transport`.
async fn folder_round_trip(transport: Choice) {
    let f = Fixture::over(transport).await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let chunk = 1024u32;
    let src = f.path("src");
    let root = src.join("extract");
    std::fs::create_dir_all(root.join("DCIM/100APPLE")).unwrap();
    std::fs::create_dir_all(root.join("empty-dir")).unwrap();
    let files = [
        ("extract/DCIM/100APPLE/IMG_0001.JPG", 3 * chunk as usize + 5),
        ("extract/DCIM/100APPLE/IMG_0002.JPG", chunk as usize),
        ("extract/messages.db", chunk as usize - 1),
        ("extract/empty.txt", 0),
        ("extract/Interview 1 (ABE).mp4", 1),
    ];
    for (i, (rel, size)) in files.iter().enumerate() {
        std::fs::write(src.join(rel), bytes(*size, 100 + i as u64)).unwrap();
    }
    let t = send_paths(&alice, vec![root], &["bob"], chunk).await;

    let inbox = listing::fetch_list(&bob, true).await.unwrap();
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0].transfer, t);
    // How many files there are is sealed from the server (manifest v2).
    assert_eq!(inbox[0].items, 0);
    assert_eq!(inbox[0].case_ref.as_deref(), Some("OP-TEST"));
    assert_eq!(inbox[0].recipients[0].state, DeliveryState::Sealed);

    let out = f.path("out");
    fetch_to(&bob, t, &out).await.unwrap();
    let mut want: Vec<(String, Vec<u8>)> =
        files.iter().enumerate().map(|(i, (rel, size))| (rel.to_string(), bytes(*size, 100 + i as u64))).collect();
    want.sort();
    assert_eq!(tree(&out), want);

    let outbox = listing::fetch_list(&alice, false).await.unwrap();
    assert_eq!(outbox[0].recipients[0].state, DeliveryState::Acknowledged);
    let bundle = f.dir.path().join("receipt.json");
    exhibit_client::receipt::export(&alice, t, None, &bundle).await.unwrap();
    exhibit_client::receipt::verify_file(&bundle, &f.ca).unwrap();
    let (_, _, route) = exhibit_client::directory::whoami(&alice).await.unwrap();
    assert_eq!(route.transport, transport_of(transport), "{route}");

    // Fetching again must not overwrite what is there.
    let err = fetch_to(&bob, t, &out).await.unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_disk_holds_no_plaintext_and_no_names() {
    let f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    f.user("bob", Role::Caseworker).await;
    let src = f.path("src");
    let marker = b"VICTIM-INTERVIEW-TRANSCRIPT-MARKER ".repeat(200);
    std::fs::write(src.join("secret-name-of-witness.txt"), &marker).unwrap();
    send_paths(&alice, vec![src.join("secret-name-of-witness.txt")], &["bob"], 4096).await;
    let mut everything = vec![];
    let mut files = vec![];
    fn walk(d: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out)
            } else if p.is_file() {
                // (not the control socket)
                out.push(p)
            }
        }
    }
    walk(&f.data, &mut files);
    for p in files {
        everything.extend(std::fs::read(p).unwrap());
    }
    let hay = String::from_utf8_lossy(&everything);
    assert!(!hay.contains("secret-name-of-witness"), "file name on the server's disk");
    assert!(!hay.contains("VICTIM-INTERVIEW"), "plaintext on the server's disk");
    assert!(!f.chunk_files().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_small_sends_all_succeed() {
    let f = Fixture::start().await;
    let senders = [
        f.user("alice", Role::EvidenceUnit).await,
        f.user("amir", Role::EvidenceUnit).await,
        f.user("ann", Role::EvidenceUnit).await,
        f.user("avi", Role::EvidenceUnit).await,
    ];
    f.user("bob", Role::Caseworker).await;
    let src = f.path("src");
    std::fs::write(src.join("small.bin"), bytes(2000, 7)).unwrap();
    // Each sender pins bob once before the burst (pins.json is per home).
    for s in &senders {
        send_paths(s, vec![src.join("small.bin")], &["bob"], 1024).await;
    }
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let home = senders[i % senders.len()].clone();
        let file = src.join("small.bin");
        tasks.spawn(async move {
            let o = exhibit_client::send::SendOptions::new(vec![file], vec![uid("bob")]);
            exhibit_client::send::send(&home, o).await
        });
    }
    let mut ok = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while let Some(r) = tokio::time::timeout_at(deadline.into(), tasks.join_next()).await.expect("sends hung") {
        r.unwrap().unwrap();
        ok += 1;
    }
    assert_eq!(ok, 200);
    let inbox = exhibit_client::listing::fetch_list(&f.admin, true).await.unwrap();
    assert!(inbox.is_empty());
    let all = exhibit_client::admin::transfers(&f.admin, false).await.unwrap();
    assert_eq!(all.len(), 204);
}

/// Chunk lengths off the power-of-two path (the whole-file hash is then
/// taken by reading the file again), on it with several tree levels, and
/// long enough for direct IO with a short last chunk written partly direct,
/// partly buffered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_and_power_of_two_chunk_lengths_round_trip() {
    let f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    for (i, (chunk, size)) in
        [(3000u32, 7 * 3000 + 11), (8192, 13 * 8192 + 4097), (8192, 8192), (65536, 5 * 65536 + 4097)]
            .into_iter()
            .enumerate()
    {
        let src = f.path(&format!("src{i}"));
        let data = bytes(size, 70 + i as u64);
        std::fs::write(src.join("extract.bin"), &data).unwrap();
        let t = send_paths(&alice, vec![src.join("extract.bin")], &["bob"], chunk).await;
        let out = f.path(&format!("out{i}"));
        let r = fetch_to(&bob, t, &out).await.unwrap();
        assert_eq!(tree(&out), vec![("extract.bin".to_string(), data)], "chunk {chunk}, size {size}");
        assert!(r.receipt.is_some());
    }
}

/// Downloads count against the server's download memory until the client
/// has acknowledged them: with room for two chunks in all and one per
/// connection, three recipients fetching at once take turns, each gets its
/// bytes, and every byte of the budget is given back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_fetches_take_turns_for_download_memory_and_give_it_back() {
    use exhibit_server::{Background, SystemClock};
    use std::sync::Arc;
    use std::time::Duration;

    let f = Fixture::start_with(Arc::new(SystemClock), Background::On, |c| c.download_memory = "48K".into()).await;
    let budget = &f.state().download_memory;
    assert_eq!(budget.total(), 48 << 10);
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let names = ["bob", "carol", "dan"];
    let mut recipients = vec![];
    for n in names {
        recipients.push(f.user(n, Role::Caseworker).await);
    }
    // 32 KiB chunks seal to more than a connection's 24 KiB share: each is
    // then held alone on its connection, two connections at a time. Whole
    // chunks only (a short last one would hold less).
    let src = f.path("src");
    let data = bytes(12 * 32768, 88);
    std::fs::write(src.join("interview.mp4"), &data).unwrap();
    let t = send_paths(&alice, vec![src.join("interview.mp4")], &names, 32768).await;
    // Besides the chunks, each recipient downloads the sealed details: one
    // part of under 2 KiB.
    let details = {
        let p = recipients[0].load().unwrap();
        let conn = exhibit_client::conn::Conn::open(&p).await.unwrap();
        let (vm, _) = exhibit_client::ops::manifest::verified_manifest(&conn, &recipients[0], &p, t).await.unwrap();
        assert_eq!(vm.manifest().details_parts.len(), 1);
        vm.manifest().details_parts[0].len as usize
    };
    assert!(details < 2048, "{details}");

    let (seen, watch) = watch_free(f.state().clone(), |s| &s.download_memory);
    let mut fetches = tokio::task::JoinSet::new();
    for (i, home) in recipients.into_iter().enumerate() {
        let out = f.path(&format!("out{i}"));
        fetches.spawn(async move { (fetch_to(&home, t, &out).await, out) });
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while let Some(r) = tokio::time::timeout_at(deadline, fetches.join_next()).await.expect("fetches hung") {
        let (outcome, out) = r.unwrap();
        assert!(outcome.unwrap().receipt.is_some());
        assert_eq!(tree(&out), vec![("interview.mp4".to_string(), data.clone())]);
    }
    watch.abort();
    // Every chunk in flight held a whole share (its sealed length is more):
    // the budget was only ever full, half or wholly free, but for the
    // sealed details (at most three at once, each under 2 KiB).
    let seen = seen.lock().unwrap().clone();
    let share = budget.total() / 2;
    assert!(
        seen.iter().all(|free| (budget.total() - free) % share <= 3 * 2048),
        "a download held less than its chunk: free bytes seen {seen:?}"
    );
    assert!(seen.iter().any(|&free| free < budget.total()), "no download was counted: free bytes seen {seen:?}");
    // Quinn lets go of the last chunks once they are acknowledged.
    let given_back = tokio::time::timeout(Duration::from_secs(10), async {
        while budget.free() != budget.total() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    assert!(given_back.await.is_ok(), "download memory not given back: {} of {} free", budget.free(), budget.total());
}

/// Every amount of free memory `budget` of `state` shows, sampled every
/// 200 µs until the task is aborted.
fn watch_free(
    state: std::sync::Arc<exhibit_server::State>,
    budget: fn(&exhibit_server::State) -> &exhibit_server::budget::Budget,
) -> (std::sync::Arc<std::sync::Mutex<std::collections::BTreeSet<u64>>>, tokio::task::JoinHandle<()>) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
    let watch = {
        let seen = seen.clone();
        tokio::spawn(async move {
            loop {
                seen.lock().unwrap().insert(budget(&state).free());
                tokio::time::sleep(std::time::Duration::from_micros(200)).await;
            }
        })
    };
    (seen, watch)
}

/// Chunks longer than `EAGER_CHUNK` are offered, and count against the
/// server's upload memory from the go-ahead until they are on disk: with
/// room for two chunks in all and one per connection, three senders at once
/// take turns, every transfer arrives whole, and every byte of the budget is
/// given back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_take_turns_for_upload_memory_and_give_it_back() {
    use exhibit_server::{Background, SystemClock};
    use std::sync::Arc;
    use std::time::Duration;

    let f = Fixture::start_with(Arc::new(SystemClock), Background::On, |c| c.upload_memory = "192K".into()).await;
    let budget = &f.state().upload_memory;
    assert_eq!(budget.total(), 192 << 10);
    let bob = f.user("bob", Role::Caseworker).await;
    let names = ["alice", "carol", "dan"];
    let mut senders = vec![];
    for n in names {
        senders.push(f.user(n, Role::EvidenceUnit).await);
    }
    // 128 KiB chunks (past EAGER_CHUNK) seal to more than a connection's
    // 96 KiB share: each is held alone on its connection, two connections
    // at a time.
    let chunk = 128 << 10;
    assert!(chunk > exhibit_proto::limits::EAGER_CHUNK);
    let (seen, watch) = watch_free(f.state().clone(), |s| &s.upload_memory);
    let mut sends = tokio::task::JoinSet::new();
    for (i, home) in senders.into_iter().enumerate() {
        let src = f.path(&format!("src{i}"));
        let data = bytes(6 * chunk as usize, 90 + i as u64);
        std::fs::write(src.join("interview.mp4"), &data).unwrap();
        sends.spawn(async move { (send_paths(&home, vec![src.join("interview.mp4")], &["bob"], chunk).await, data) });
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut sent = vec![];
    while let Some(r) = tokio::time::timeout_at(deadline, sends.join_next()).await.expect("sends hung") {
        sent.push(r.unwrap());
    }
    watch.abort();
    let seen = seen.lock().unwrap().clone();
    let share = budget.total() / 2;
    assert!(seen.iter().all(|free| free % share == 0), "an upload held less than its chunk: free bytes seen {seen:?}");
    // Three senders, six chunks each, every one over EAGER_CHUNK: each
    // was offered and held.
    assert!(budget.granted() >= 18, "only {} of 18 uploads were held", budget.granted());
    assert_eq!(budget.free(), budget.total(), "upload memory not given back");
    for (i, (t, data)) in sent.into_iter().enumerate() {
        let out = f.path(&format!("out{i}"));
        assert!(fetch_to(&bob, t, &out).await.unwrap().receipt.is_some());
        assert_eq!(tree(&out), vec![("interview.mp4".to_string(), data)]);
    }
}

/// Both protocol versions are served. A client that predates chunk offers
/// (ALPN `exhibit/1`) sends a large chunk unannounced; a current client
/// negotiates `exhibit/2` and offers it. Each server answers the other
/// protocol's way with "bad request", so a client that offered over
/// `exhibit/1` (an older server does not know offers either) or did not
/// offer over `exhibit/2` fails here. Either way the large chunk is held
/// against the upload memory while it is stored, and the small one is not.
#[tokio::test]
async fn an_exhibit_1_client_sends_unannounced_and_an_exhibit_2_client_offers() {
    use exhibit_client::conn::Conn;
    use exhibit_proto::{ChunkId, TransferId, ALPN, ALPN_V1};

    let f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    f.user("bob", Role::Caseworker).await;
    let p = alice.load().unwrap();
    let budget = &f.state().upload_memory;
    for (i, (protocols, offers)) in [(vec![ALPN_V1], false), (vec![ALPN, ALPN_V1], true)].into_iter().enumerate() {
        let identity = Some((p.tls_cert.as_slice(), p.tls_key.as_slice()));
        let conn = Conn::connect_speaking(&p.config.server, &p.ca_der, identity, &protocols).await.unwrap();
        assert_eq!(conn.takes_offers(), offers, "protocols {protocols:?}");
        let t = TransferId::random();
        conn.request(&create_to_bob(t)).await.unwrap();
        let before = budget.granted();
        let big = bytes(exhibit_proto::limits::EAGER_CHUNK as usize * 4, 40 + i as u64);
        let small = bytes(1000, 50 + i as u64);
        for chunk in [big, small] {
            let id = ChunkId::of(&chunk);
            conn.put_chunk(t, id, chunk).await.unwrap();
            assert_eq!(
                f.state().meta.read().unwrap().chunk_ref(&id).unwrap(),
                1,
                "chunk not stored with protocols {protocols:?}"
            );
        }
        assert_eq!(budget.granted() - before, 1, "holds with protocols {protocols:?}");
        assert_eq!(budget.free(), budget.total(), "upload memory not given back");
    }
}

/// A large manifest is counted against the download memory like a chunk,
/// from before the server reads it until it is sent: a fetch of a file
/// whose manifest (many chunks) is over EAGER_CHUNK holds once for it and
/// once for each chunk over EAGER_CHUNK, and gives all of it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_manifest_is_held_against_download_memory() {
    let f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let src = f.path("src");
    std::fs::write(src.join("image.bin"), bytes(2000 * 1024, 9)).unwrap();
    let t = send_paths(&alice, vec![src.join("image.bin")], &["bob"], 1024).await;
    let len = f.state().meta.read().unwrap().manifest_len(&t).unwrap().unwrap();
    assert!(len > exhibit_proto::limits::EAGER_CHUNK as usize, "manifest of {len} bytes is too small to test");
    let budget = &f.state().download_memory;
    let before = budget.granted();
    let r = fetch_to(&bob, t, &f.path("out")).await.unwrap();
    assert_eq!(r.chunks_fetched, 2000);
    assert_eq!(budget.granted() - before, 2000 + 1 + 1, "holds: 2000 chunks, the sealed details and the manifest");
    assert_eq!(budget.free(), budget.total(), "download memory not given back");
}
