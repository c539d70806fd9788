//! Hostile input: malformed frames, crafted manifests, full disks, crashes
//! between a chunk write and its commit.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use exhibit_client::conn::Conn;
use exhibit_client::reach::Choice;
use exhibit_proto::directory::Role;
use exhibit_proto::frame::{self, ErrorCode, Request, Response};
use exhibit_proto::{ChunkId, TransferId};
use exhibit_server::chunks::{ChunkStore, DiskChunks};
use exhibit_server::error::ServerError;
use exhibit_server::{Background, SystemClock};

use crate::fixture::*;

/// Send raw bytes on a new stream and decode the response frame.
async fn raw(conn: &Conn, bytes: &[u8]) -> Response {
    let (mut send, mut recv) = conn.connection().open_bi().await.unwrap();
    send.write_all(bytes).await.unwrap();
    send.finish().unwrap();
    next_frame(&mut recv).await
}

/// The next response frame on a stream.
async fn next_frame(recv: &mut exhibit_net::RecvStream) -> Response {
    let reply = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        let mut prefix = [0u8; 4];
        recv.read_exact(&mut prefix).await.unwrap();
        let mut body = vec![0u8; frame::body_len(prefix).unwrap()];
        recv.read_exact(&mut body).await.unwrap();
        frame::decode_response(&body).unwrap()
    });
    reply.await.expect("server did not answer")
}

fn code(r: &Response) -> ErrorCode {
    match r {
        Response::Error { code, .. } => *code,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_malformed_frames_get_typed_errors_and_the_server_keeps_serving() {
    let f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    f.user("bob", Role::Caseworker).await;
    let conn = Conn::open(&alice.load().unwrap()).await.unwrap();

    assert_eq!(code(&raw(&conn, &u32::MAX.to_be_bytes()).await), ErrorCode::TooLarge);
    assert_eq!(code(&raw(&conn, &[0, 0, 0, 3, 0xff, 0xff, 0xff]).await), ErrorCode::BadRequest);
    assert_eq!(code(&raw(&conn, &[0, 0, 0, 100, 1, 2]).await), ErrorCode::BadRequest, "truncated frame");
    assert_eq!(code(&raw(&conn, &[]).await), ErrorCode::BadRequest, "empty stream");
    let mut trailing = frame::encode(&Request::Inbox).unwrap();
    trailing[3] += 1;
    trailing.push(0);
    assert_eq!(code(&raw(&conn, &trailing).await), ErrorCode::BadRequest, "trailing bytes");

    // A chunk declared far over the bound is refused before anything is read.
    let t = TransferId::random();
    conn.request(&create_to_bob(t)).await.unwrap();
    let put = frame::encode(&Request::PutChunk { transfer: t, id: ChunkId([0; 32]), len: u32::MAX }).unwrap();
    assert_eq!(code(&raw(&conn, &put).await), ErrorCode::TooLarge);
    // Bytes that do not hash to the declared id.
    let mut put = frame::encode(&Request::PutChunk { transfer: t, id: ChunkId([0; 32]), len: 4 }).unwrap();
    put.extend_from_slice(b"evil");
    assert_eq!(code(&raw(&conn, &put).await), ErrorCode::ChunkMismatch);
    // Offered chunks: refused before their bytes are asked for, or let in
    // and then checked like any other.
    let offer = |t, len| frame::encode(&Request::OfferChunk { transfer: t, id: ChunkId([0; 32]), len }).unwrap();
    assert_eq!(code(&raw(&conn, &offer(t, u32::MAX)).await), ErrorCode::TooLarge);
    assert_eq!(code(&raw(&conn, &offer(TransferId::random(), 4)).await), ErrorCode::NotFound);
    let (mut send, mut recv) = conn.connection().open_bi().await.unwrap();
    send.write_all(&offer(t, 4)).await.unwrap();
    assert!(matches!(next_frame(&mut recv).await, Response::SendChunk), "no go-ahead for an acceptable offer");
    send.write_all(b"evil").await.unwrap();
    send.finish().unwrap();
    assert_eq!(code(&next_frame(&mut recv).await), ErrorCode::ChunkMismatch);
    assert!(f.chunk_files().is_empty(), "a refused chunk was stored");
    assert_eq!(f.state().upload_memory.free(), f.state().upload_memory.total(), "a refused offer kept its memory");
    // Each protocol's uploads as that protocol has them: under exhibit/2 a
    // chunk over EAGER_CHUNK must be offered, and exhibit/1 has no offers.
    let eager = exhibit_proto::limits::EAGER_CHUNK;
    let put = frame::encode(&Request::PutChunk { transfer: t, id: ChunkId([0; 32]), len: eager + 1 }).unwrap();
    // (Refused for being unannounced, not for its missing body.)
    let r = raw(&conn, &put).await;
    assert!(
        matches!(&r, Response::Error { code: ErrorCode::BadRequest, message } if message.contains("offered first")),
        "{r:?}"
    );
    let p = alice.load().unwrap();
    let identity = Some((p.tls_cert.as_slice(), p.tls_key.as_slice()));
    let v1 = Conn::connect_speaking(&p.config.server, &p.ca_der, identity, &[exhibit_proto::ALPN_V1]).await.unwrap();
    assert_eq!(code(&raw(&v1, &offer(t, 4)).await), ErrorCode::BadRequest, "an offer under exhibit/1");
    assert_eq!(f.state().upload_memory.free(), f.state().upload_memory.total(), "a refused upload kept memory");

    // Random garbage, many times: always a typed answer.
    for i in 0..50u64 {
        let junk = bytes(8 + (i as usize * 7) % 200, i);
        let mut framed = ((junk.len()) as u32).to_be_bytes().to_vec();
        framed.extend_from_slice(&junk);
        let r = raw(&conn, &framed).await;
        if let Response::Error { code, .. } = r {
            assert!(
                matches!(
                    code,
                    ErrorCode::BadRequest
                        | ErrorCode::NotFound
                        | ErrorCode::Forbidden
                        | ErrorCode::TooLarge
                        | ErrorCode::Conflict
                        | ErrorCode::BadSignature
                        | ErrorCode::Unauthenticated
                ),
                "{code:?}"
            );
        }
    }
    // And the same connection and server still serve real requests.
    assert!(matches!(conn.request(&Request::Inbox).await.unwrap(), Response::Transfers { .. }));
    exhibit_client::listing::fetch_list(&alice, false).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crafted_manifest_with_hostile_names_is_refused_with_nothing_written() {
    let f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let ap = alice.load().unwrap();
    let conn = Conn::open(&ap).await.unwrap();
    let parent = f.path("victim");
    let out = parent.join("out");

    for name in ["../escape.txt", "/tmp/abs.txt", "C:\\evil.txt", "a/../../x.txt", "NUL", "ok/../../y", "x\0y"] {
        let signed = crafted(&f, &conn, &alice, None, name).await;
        seal_request(&conn, &signed).await.unwrap();
        let t = exhibit_proto::Manifest::from_bytes(&signed.bytes).unwrap().transfer;

        let err = fetch_to(&bob, t, &out).await.unwrap_err();
        assert!(err.to_string().contains("unsafe path"), "{name:?}: {err}");
        assert_eq!(tree(&parent), vec![], "{name:?}: something was written");
        assert!(!std::path::Path::new("/tmp/abs.txt").exists());
    }
}

/// A disk that fills up on demand, or after a number of chunks.
#[derive(Debug)]
pub struct FillingDisk {
    pub inner: DiskChunks,
    pub full: Arc<AtomicBool>,
    /// Chunks stored so far; the disk fills when this reaches `limit`.
    pub puts: Arc<AtomicUsize>,
    pub limit: Arc<AtomicUsize>,
    /// Reads allowed before reads fail (a dying disk or server).
    pub reads_left: Arc<AtomicUsize>,
}

impl ChunkStore for FillingDisk {
    fn put(&self, id: &ChunkId, bytes: &[u8]) -> Result<(), ServerError> {
        let over = self.puts.load(Ordering::SeqCst) >= self.limit.load(Ordering::SeqCst);
        if self.full.load(Ordering::SeqCst) || over {
            return Err(ServerError::Io {
                context: "writing chunk".into(),
                source: std::io::Error::from(std::io::ErrorKind::StorageFull),
            });
        }
        self.inner.put(id, bytes)?;
        self.puts.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn get(&self, id: &ChunkId) -> Result<Vec<u8>, ServerError> {
        let left = self.reads_left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if left.is_err() {
            return Err(ServerError::Io {
                context: "reading chunk".into(),
                source: std::io::Error::other("I/O error"),
            });
        }
        self.inner.get(id)
    }
    fn has(&self, id: &ChunkId) -> Result<bool, ServerError> {
        self.inner.has(id)
    }
    fn delete(&self, id: &ChunkId) -> Result<(), ServerError> {
        self.inner.delete(id)
    }
    fn list(&self) -> Result<Vec<ChunkId>, ServerError> {
        self.inner.list()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_refuses_uploads_clearly_alerts_and_a_later_retry_succeeds() {
    let full = Arc::new(AtomicBool::new(false));
    let flag = full.clone();
    let maker: StoreMaker = Box::new(move |dir| {
        Arc::new(FillingDisk {
            inner: DiskChunks::open(dir).unwrap(),
            full: flag,
            puts: Default::default(),
            limit: Arc::new(AtomicUsize::new(usize::MAX)),
            reads_left: Arc::new(AtomicUsize::new(usize::MAX)),
        })
    });
    let f = Fixture::start_full(Arc::new(SystemClock), Background::Off, |_| {}, Some(maker)).await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let src = f.path("src");
    std::fs::write(src.join("a.bin"), bytes(5000, 3)).unwrap();
    let earlier = send_paths(&alice, vec![src.join("a.bin")], &["bob"], 1024).await;
    let before = f.chunk_files();

    full.store(true, Ordering::SeqCst);
    let mut o = exhibit_client::send::SendOptions::new(vec![src.join("a.bin")], vec![uid("bob")]);
    o.chunk_size = 1024;
    let err = exhibit_client::send::send(&alice, o.clone()).await.unwrap_err();
    assert_eq!(err.server_code(), Some(ErrorCode::StorageFull), "{err}");
    assert!(err.to_string().contains("retry later"), "{err}");
    assert_eq!(f.chunk_files(), before, "a partial chunk became visible or a stored one was harmed");
    let alerts = exhibit_server::app::listings::every_alert(f.state(), true).unwrap();
    assert!(alerts.iter().any(|a| matches!(a.info.kind, exhibit_proto::frame::AlertKind::Storage { .. })));
    fetch_to(&bob, earlier, &f.path("o1")).await.unwrap();

    full.store(false, Ordering::SeqCst);
    let t = exhibit_client::send::send(&alice, o).await.unwrap().transfer;
    fetch_to(&bob, t, &f.path("o2")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_removes_orphan_chunks_and_reports_missing_ones() {
    let mut f = Fixture::start_with(Arc::new(SystemClock), Background::Off, |_| {}).await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    f.user("bob", Role::Caseworker).await;
    let src = f.path("src");
    std::fs::write(src.join("a.bin"), bytes(3000, 3)).unwrap();
    send_paths(&alice, vec![src.join("a.bin")], &["bob"], 1024).await;
    let chunks = f.chunk_files();
    // A chunk written before a crash, never committed; and one referenced
    // chunk lost.
    let orphan = ChunkId::of(b"never acknowledged");
    let lost = chunks[0].clone();
    f.restart_with(|data| {
        let d = DiskChunks::open(&data.join("chunks")).unwrap();
        d.put(&orphan, b"never acknowledged").unwrap();
        std::fs::remove_file(&lost).unwrap();
    })
    .await;
    let now = f.chunk_files();
    assert_eq!(now.len(), chunks.len() - 1, "orphan kept or chunks lost");
    assert!(!now.iter().any(|p| p.ends_with(orphan.to_string())));
    let alerts = exhibit_server::app::listings::every_alert(f.state(), true).unwrap();
    assert!(alerts.iter().any(|a| a.info.message.contains("missing")), "no alert for the missing chunk");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_send_resumes_sending_only_the_remainder() {
    interrupted_send_resumes(Choice::Quic).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_send_resumes_sending_only_the_remainder_over_tcp() {
    interrupted_send_resumes(Choice::Tcp).await
}

/// A send stopped part way (the server's disk full) and resumed from its
/// journal over `transport`.
async fn interrupted_send_resumes(transport: Choice) {
    let puts = Arc::new(AtomicUsize::new(0));
    let limit = Arc::new(AtomicUsize::new(11));
    let (counter, cap) = (puts.clone(), limit.clone());
    // The disk fills after 11 chunks: the small item's one and ten of the
    // video's forty.
    let maker: StoreMaker = Box::new(move |dir| {
        Arc::new(FillingDisk {
            inner: DiskChunks::open(dir).unwrap(),
            full: Default::default(),
            puts: counter,
            limit: cap,
            reads_left: Arc::new(AtomicUsize::new(usize::MAX)),
        })
    });
    let f = Fixture::start_on(transport, Arc::new(SystemClock), Background::Off, |_| {}, Some(maker)).await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let src = f.path("src").join("case");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a-small.txt"), bytes(100, 1)).unwrap();
    std::fs::write(src.join("b-video.bin"), bytes(40 * 4096, 2)).unwrap();
    let mut o = exhibit_client::send::SendOptions::new(vec![src.clone()], vec![uid("bob")]);
    o.chunk_size = 4096;
    let err = exhibit_client::send::send(&alice, o).await.unwrap_err();
    assert_eq!(err.server_code(), Some(ErrorCode::StorageFull), "{err}");
    let pending = exhibit_client::journal::pending(&alice).unwrap();
    assert_eq!(pending.len(), 1, "no journal left to resume from");

    // Space again: resume sends only what the server lacks.
    limit.store(usize::MAX, Ordering::SeqCst);
    // Every chunk the journal recorded is on the server (it was recorded
    // only after the server said so); resume sends exactly the rest.
    let recovered = exhibit_client::journal::recover(&pending[0]).unwrap();
    let journaled = recovered.chunks.len();
    assert!(journaled >= 1, "nothing was journaled");
    // Each uploaded chunk's plaintext hash is journaled with it, so resume
    // need not read those chunks again to make the file's hash. Shown by
    // changing one held chunk's bytes behind resume's back (size and mtime
    // kept, which is all resume checks): had it been read again, the file's
    // hash would not match the chunks on the server and the fetch would
    // fail.
    // (The small file is packed in chunk 0 and hashed whole when read.)
    let video_chunks = recovered.chunks.keys().filter(|k| **k >= 1).count();
    assert_eq!(recovered.plain.len(), video_chunks, "chunk plaintext hashes not journaled");
    // Chunk 0 packs the small file; the video's chunks follow from 1.
    let k = recovered.chunks.keys().filter(|k| **k >= 1).min().expect("no video chunk held") - 1;
    let video = src.join("b-video.bin");
    let mtime = std::fs::metadata(&video).unwrap().modified().unwrap();
    let mut changed = bytes(40 * 4096, 2);
    changed[k * 4096] ^= 0xff;
    std::fs::write(&video, &changed).unwrap();
    std::fs::File::options().write(true).open(&video).unwrap().set_modified(mtime).unwrap();
    let out = exhibit_client::send::resume(&alice, &pending[0], false).await.unwrap();
    assert_eq!(out.chunks_sent, 41 - journaled, "resume re-sent chunks the server had");
    let (_, _, route) = exhibit_client::directory::whoami(&alice).await.unwrap();
    assert_eq!(route.transport, transport_of(transport), "{route}");
    assert!(exhibit_client::journal::pending(&alice).unwrap().is_empty(), "journal not cleared");

    let dest = f.path("out");
    fetch_to(&bob, out.transfer, &dest).await.unwrap();
    assert_eq!(std::fs::read(dest.join("case/b-video.bin")).unwrap(), bytes(40 * 4096, 2));
    assert_eq!(std::fs::read(dest.join("case/a-small.txt")).unwrap(), bytes(100, 1));
}

/// A server whose chunk store serves only as many reads as the returned
/// counter says (unlimited until set): downloads stop part way.
pub(crate) async fn with_reads_left() -> (Fixture, Arc<AtomicUsize>) {
    let reads = Arc::new(AtomicUsize::new(usize::MAX));
    let r2 = reads.clone();
    let maker: StoreMaker = Box::new(move |dir| {
        Arc::new(FillingDisk {
            inner: DiskChunks::open(dir).unwrap(),
            full: Default::default(),
            puts: Default::default(),
            limit: Arc::new(AtomicUsize::new(usize::MAX)),
            reads_left: r2,
        })
    });
    (Fixture::start_full(Arc::new(SystemClock), Background::Off, |_| {}, Some(maker)).await, reads)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_fetch_continues_with_only_the_missing_chunks() {
    let (f, reads) = with_reads_left().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let src = f.path("src");
    std::fs::write(src.join("extract.bin"), bytes(30 * 4096, 5)).unwrap();
    let t = send_paths(&alice, vec![src.join("extract.bin")], &["bob"], 4096).await;

    reads.store(10, Ordering::SeqCst);
    let out = f.path("out");
    let err = fetch_to(&bob, t, &out).await.unwrap_err();
    assert!(matches!(err, exhibit_client::ClientError::Interrupted(_)), "{err}");
    assert!(!out.join("extract.bin").exists(), "an unverified file was moved into place");
    let pending = exhibit_client::fetch::pending(&bob);
    assert_eq!(pending.len(), 1);
    let journal = bob.dir().join("journal").join(format!("{t}.fetch"));
    let (_, done) = exhibit_client::fetch::read_fetch_journal(&journal).unwrap();
    assert!(!done.is_empty() && done.len() <= 10, "{}", done.len());

    reads.store(usize::MAX, Ordering::SeqCst);
    let r = fetch_to(&bob, pending[0].0, &pending[0].1).await.unwrap();
    // Chunks still being written when the fetch stopped may land in the
    // journal after we read it: then even fewer are fetched again.
    let missing = 30 - done.len();
    assert!(
        r.chunks_fetched <= missing && r.chunks_fetched + exhibit_client::send::IN_FLIGHT >= missing,
        "fetched {} chunks again; {missing} were missing",
        r.chunks_fetched
    );
    assert_eq!(std::fs::read(out.join("extract.bin")).unwrap(), bytes(30 * 4096, 5));
    assert!(r.receipt.is_some());
    assert!(exhibit_client::fetch::pending(&bob).is_empty(), "journal left behind");
    let leftovers: Vec<_> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "temp files left: {leftovers:?}");
}

/// A folder of small files, packed several to a chunk, interrupted part
/// way: the packs already written are kept (their files checked to be
/// there and ours), the rest fetched, and the folder ends up whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_fetch_of_packed_files_continues_by_pack() {
    let (f, reads) = with_reads_left().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let src = f.path("src").join("extract");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..120 {
        std::fs::write(src.join(format!("m{i:03}.txt")), bytes(1000, i)).unwrap();
    }
    // Four 1000-byte files to a 4096-byte pack: 30 packs.
    let t = send_paths(&alice, vec![src.clone()], &["bob"], 4096).await;

    // The sealed details take one read; then 10 packs arrive.
    reads.store(11, Ordering::SeqCst);
    let out = f.path("out");
    let err = fetch_to(&bob, t, &out).await.unwrap_err();
    assert!(matches!(err, exhibit_client::ClientError::Interrupted(_)), "{err}");
    assert!(!out.join("extract").exists(), "unverified files were moved into place");
    let journal = bob.dir().join("journal").join(format!("{t}.fetch"));
    let (_, done) = exhibit_client::fetch::read_fetch_journal(&journal).unwrap();
    assert!(!done.is_empty() && done.len() <= 10, "{}", done.len());

    // The finished packs' files wait in the staging folder, the user's alone.
    let (h, _) = exhibit_client::fetch::read_fetch_journal(&journal).unwrap();
    let staging = h.out.join(format!(".exhibit-{t}-{:016x}", h.tag));
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&staging).unwrap().permissions()) & 0o777,
        0o700
    );
    // (Packs still being written when the fetch stopped add more.)
    let temps = std::fs::read_dir(staging.join("extract")).unwrap().count();
    assert!(temps >= 4 * done.len(), "a finished pack's files are not all there: {temps}");
    // One file of a finished pack removed: its pack is fetched again.
    let k = *done.iter().min().unwrap() as u64;
    std::fs::remove_file(staging.join(format!("extract/m{:03}.txt", 4 * k))).unwrap();

    reads.store(usize::MAX, Ordering::SeqCst);
    let r = fetch_to(&bob, t, &out).await.unwrap();
    let missing = 30 - done.len() + 1;
    assert!(
        r.chunks_fetched <= missing && r.chunks_fetched + exhibit_client::send::IN_FLIGHT >= missing,
        "fetched {} chunks again; {missing} were missing",
        r.chunks_fetched
    );
    assert!(r.receipt.is_some());
    for i in 0..120 {
        assert_eq!(std::fs::read(out.join(format!("extract/m{i:03}.txt"))).unwrap(), bytes(1000, i), "file {i}");
    }
    let leftovers: Vec<_> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "temp files left: {leftovers:?}");
}

/// The output folder of an interrupted fetch deleted before it is run
/// again: the journal's chunks are not on disk any more, so they are
/// fetched again rather than trusted (which failed the whole-file check),
/// and dropped from the journal for later runs. A temp file replaced by a
/// symlink is refused, and so is the folder itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_fetch_whose_folder_was_deleted_starts_over() {
    let (f, reads) = with_reads_left().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let src = f.path("src");
    std::fs::write(src.join("extract.bin"), bytes(30 * 4096, 6)).unwrap();
    let t = send_paths(&alice, vec![src.join("extract.bin")], &["bob"], 4096).await;
    reads.store(10, Ordering::SeqCst);
    let out = f.path("out");
    assert!(fetch_to(&bob, t, &out).await.is_err());
    let journal = bob.dir().join("journal").join(format!("{t}.fetch"));
    assert!(!exhibit_client::fetch::read_fetch_journal(&journal).unwrap().1.is_empty());

    std::fs::remove_dir_all(&out).unwrap();
    // Interrupted once more: the journal must no longer claim the chunks
    // of the deleted temp file, or the third run would trust them.
    reads.store(10, Ordering::SeqCst);
    assert!(fetch_to(&bob, t, &out).await.is_err());
    // The chunks that run wrote may be journaled just after it returned
    // (their workers finish); wait for the first, briefly.
    for _ in 0..100 {
        if !exhibit_client::fetch::read_fetch_journal(&journal).unwrap().1.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    reads.store(usize::MAX, Ordering::SeqCst);
    let r = fetch_to(&bob, t, &out).await.unwrap();
    assert!(r.chunks_fetched < 30, "nothing of the second run was kept");
    assert_eq!(std::fs::read(out.join("extract.bin")).unwrap(), bytes(30 * 4096, 6));

    // A temp file replaced by a link is refused, not written through.
    reads.store(10, Ordering::SeqCst);
    let t2 = send_paths(&alice, vec![src.join("extract.bin")], &["bob"], 4096).await;
    let out2 = f.path("out2");
    assert!(fetch_to(&bob, t2, &out2).await.is_err());
    let (h, _) =
        exhibit_client::fetch::read_fetch_journal(&bob.dir().join("journal").join(format!("{t2}.fetch"))).unwrap();
    let part = h.out.join(format!(".exhibit-{t2}-{:016x}-0.part", h.tag));
    let victim = f.path("elsewhere").join("victim.txt");
    std::fs::write(&victim, b"untouched").unwrap();
    std::fs::remove_file(&part).unwrap();
    std::os::unix::fs::symlink(&victim, &part).unwrap();
    reads.store(usize::MAX, Ordering::SeqCst);
    let err = fetch_to(&bob, t2, &out2).await.unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
    assert_eq!(std::fs::read(&victim).unwrap(), b"untouched");

    // The interrupted fetch's folder itself replaced by a link: resuming
    // (which names the folder by its resolved path) does not follow it.
    let moved = f.path("moved");
    std::fs::remove_dir(&moved).unwrap();
    std::fs::rename(&h.out, &moved).unwrap();
    let trap = f.path("trap");
    std::os::unix::fs::symlink(&trap, &h.out).unwrap();
    let err = fetch_to(&bob, t2, &h.out).await.unwrap_err();
    assert!(err.to_string().contains("not following it"), "{err}");
    assert!(tree(&trap).is_empty(), "plaintext followed the link");
}

/// Fetched evidence is readable by its user alone: the folders a fetch
/// makes are 0700 and the files 0600, whatever the umask allows. A temp file
/// left by an interrupted fetch is trusted only while it is ours alone: one
/// also linked under another name (someone could read or change it there)
/// is refused, and one readable by others (an older version made them so)
/// is restricted before anything more is written into it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetched_evidence_is_readable_by_its_user_alone() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let (f, reads) = with_reads_left().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let src = f.path("src").join("case");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("sub/interview.mp4"), bytes(30 * 4096, 11)).unwrap();
    let t = send_paths(&alice, vec![src], &["bob"], 4096).await;

    // Interrupted, then the temp file linked elsewhere: refused.
    reads.store(10, Ordering::SeqCst);
    let out = f.dir.path().join("fresh").join("out");
    assert!(fetch_to(&bob, t, &out).await.is_err());
    let (h, _) =
        exhibit_client::fetch::read_fetch_journal(&bob.dir().join("journal").join(format!("{t}.fetch"))).unwrap();
    let part = h.out.join(format!(".exhibit-{t}-{:016x}-0.part", h.tag));
    assert_eq!(mode(&part), 0o600, "temp file");
    let copy = f.path("elsewhere").join("copy");
    std::fs::hard_link(&part, &copy).unwrap();
    reads.store(usize::MAX, Ordering::SeqCst);
    let err = fetch_to(&bob, t, &out).await.unwrap_err();
    assert!(err.to_string().contains("not this user's alone"), "{err}");
    assert!(!out.join("case").exists(), "delivered through a shared temp file");

    // Unlinked there, but left readable by others: restricted, and the
    // fetch completes.
    std::fs::remove_file(&copy).unwrap();
    std::fs::set_permissions(&part, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = fetch_to(&bob, t, &out).await.unwrap();
    assert!(r.receipt.is_some());
    let file = out.join("case/sub/interview.mp4");
    assert_eq!(std::fs::read(&file).unwrap(), bytes(30 * 4096, 11));
    assert_eq!(mode(&file), 0o600, "fetched file");
    assert_eq!(mode(&out.join("case")), 0o700, "folder made by the fetch");
    assert_eq!(mode(&out.join("case/sub")), 0o700, "folder made by the fetch");
    assert_eq!(mode(&out), 0o700, "output folder made by the fetch");
    assert_eq!(mode(out.parent().unwrap()), 0o700, "output folder's parent made by the fetch");
}

/// A stranger (no user's certificate) may only enrol, and gets what that
/// needs: one request on one stream, frames of at most 64 KiB, and only so
/// many such connections at once. A user's connection is given its 64
/// streams once its certificate is found. The limits are the transport's
/// initial ones, so a stranger never holds credit for more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_get_one_stream_small_frames_and_a_bounded_number_of_connections() {
    use std::time::Duration;
    // Every stranger here comes from 127.0.0.1: the bound for one address
    // is lifted to the whole bound, which is what is tested.
    let f = Fixture::start_with(Arc::new(SystemClock), Background::On, |c| {
        c.enrolment.max_connections_per_source = c.enrolment.max_connections
    })
    .await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let p = alice.load().unwrap();
    let server = p.config.server.clone();
    let stranger = Conn::connect(&server, &p.ca_der, None).await.unwrap();
    let big = (exhibit_server::ANONYMOUS_MAX_FRAME as u32 + 1).to_be_bytes();
    let (mut send, mut recv) = stranger.connection().open_bi().await.unwrap();
    send.write_all(&big).await.unwrap();
    let second = tokio::time::timeout(Duration::from_millis(300), stranger.connection().open_bi()).await;
    assert!(!matches!(second, Ok(Ok(_))), "a stranger opened a second stream at once");
    assert_eq!(code(&next_frame(&mut recv).await), ErrorCode::TooLarge, "a stranger's frame over 64 KiB");
    drop((send, recv));
    let second = tokio::time::timeout(Duration::from_millis(300), stranger.connection().open_bi()).await;
    assert!(!matches!(second, Ok(Ok(_))), "a stranger was given a stream for a second request");

    // A user's connection has its streams.
    let user = Conn::open(&p).await.unwrap();
    let mut streams = vec![];
    for _ in 0..16 {
        let s = tokio::time::timeout(Duration::from_secs(10), user.connection().open_bi()).await;
        streams.push(s.expect("a user could not open 16 streams at once").unwrap());
    }
    drop(streams);

    // Strangers past the bound are turned away; the user is not. (The
    // fixture's two enrolments were strangers too, and the server may not
    // have seen them go yet: up to two fewer may get in.)
    let bound = f.state().settings.config.enrolment.max_connections;
    let mut strangers = vec![];
    while strangers.len() <= bound {
        strangers.push(Conn::connect(&server, &p.ca_der, None).await.unwrap());
    }
    let busy = |c: &Conn| {
        matches!(c.connection().close_reason(), Some(exhibit_net::Closed::ByPeer { ref reason, .. })
            if reason.starts_with("server busy"))
    };
    let turned_away = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let n = strangers.iter().filter(|c| busy(c)).count();
            if n > 0 && n == strangers.iter().filter(|c| c.connection().close_reason().is_some()).count() {
                return n;
            }
        }
    });
    let turned_away = turned_away.await.expect("no stranger was turned away");
    let let_in = strangers.len() - turned_away;
    assert!(let_in <= bound && let_in + 2 >= bound, "{let_in} strangers let in at once; the bound is {bound}");
    assert!(matches!(user.request(&Request::Inbox).await, Ok(Response::Transfers { .. })));
    // Strangers who leave make room for others.
    for c in strangers.iter().filter(|c| c.connection().close_reason().is_none()) {
        c.close();
    }
    let later = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            // Until the server has seen a stranger leave, a newcomer is
            // still turned away, at any step of its request.
            let answered = async {
                let c = Conn::connect(&server, &p.ca_der, None).await.ok()?;
                let (mut send, mut recv) = c.connection().open_bi().await.ok()?;
                send.write_all(&frame::encode(&Request::Inbox).unwrap()).await.ok()?;
                send.finish().ok()?;
                let mut prefix = [0u8; 4];
                recv.read_exact(&mut prefix).await.ok()
            };
            if answered.await.is_some() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    later.await.expect("no room for a stranger after one left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_size_and_user_quota_are_enforced() {
    let f = Fixture::start_with(Arc::new(SystemClock), Background::Off, |c| c.max_transfer_size = "12K".into()).await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    f.user("bob", Role::Caseworker).await;
    let src = f.path("src");
    std::fs::write(src.join("small.bin"), bytes(8 * 1024, 1)).unwrap();
    std::fs::write(src.join("big.bin"), bytes(16 * 1024, 2)).unwrap();
    let mut o = exhibit_client::send::SendOptions::new(vec![src.join("big.bin")], vec![uid("bob")]);
    o.chunk_size = 4096;
    let err = exhibit_client::send::send(&alice, o).await.unwrap_err();
    assert_eq!(err.server_code(), Some(ErrorCode::TooLarge), "{err}");
    assert!(err.to_string().contains("max_transfer_size"), "{err}");
    send_paths(&alice, vec![src.join("small.bin")], &["bob"], 4096).await;

    let f = Fixture::start_with(Arc::new(SystemClock), Background::Off, |c| c.user_quota = "10K".into()).await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    f.user("bob", Role::Caseworker).await;
    send_paths(&alice, vec![src.join("small.bin")], &["bob"], 4096).await;
    let mut o = exhibit_client::send::SendOptions::new(vec![src.join("small.bin")], vec![uid("bob")]);
    o.chunk_size = 4096;
    let err = exhibit_client::send::send(&alice, o).await.unwrap_err();
    assert_eq!(err.server_code(), Some(ErrorCode::TooLarge), "{err}");
    assert!(err.to_string().contains("user_quota"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_reconnects_by_itself_after_the_connection_drops() {
    send_reconnects(Choice::Quic).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_reconnects_by_itself_after_the_connection_drops_over_tcp() {
    send_reconnects(Choice::Tcp).await
}

async fn send_reconnects(transport: Choice) {
    let mut f = Fixture::start_on(transport, Arc::new(SystemClock), Background::Off, |_| {}, None).await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let src = f.path("src");
    let content = bytes(200 * 4096, 9);
    std::fs::write(src.join("image.bin"), &content).unwrap();
    let mut o = exhibit_client::send::SendOptions::new(vec![src.join("image.bin")], vec![uid("bob")]);
    o.chunk_size = 4096;
    let task = tokio::spawn({
        let alice = alice.clone();
        async move { exhibit_client::send::send(&alice, o).await }
    });
    // Drop every connection part-way: the server goes away and comes back.
    let start = std::time::Instant::now();
    while f.chunk_files().len() < 100 && start.elapsed() < std::time::Duration::from_secs(20) {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    assert!(!task.is_finished(), "the send finished before the drop; make the file larger");
    f.restart().await;
    let out =
        tokio::time::timeout(std::time::Duration::from_secs(60), task).await.expect("send hung").unwrap().unwrap();
    assert!(out.reconnects >= 1, "no reconnection happened");
    // Only the remainder went again: at most the chunks in flight at the
    // drop were sent twice.
    assert!(
        out.chunks_sent >= 200 && out.chunks_sent <= 200 + exhibit_client::send::IN_FLIGHT,
        "sent {} chunks for 200",
        out.chunks_sent
    );
    let dest = f.path("out");
    fetch_to(&bob, out.transfer, &dest).await.unwrap();
    assert_eq!(std::fs::read(dest.join("image.bin")).unwrap(), content);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_reconnects_by_itself_after_the_connection_drops() {
    fetch_reconnects(Choice::Quic).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_reconnects_by_itself_after_the_connection_drops_over_tcp() {
    fetch_reconnects(Choice::Tcp).await
}

async fn fetch_reconnects(transport: Choice) {
    let mut f = Fixture::start_on(transport, Arc::new(SystemClock), Background::Off, |_| {}, None).await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let src = f.path("src");
    let content = bytes(300 * 4096, 4);
    std::fs::write(src.join("image.bin"), &content).unwrap();
    let t = send_paths(&alice, vec![src.join("image.bin")], &["bob"], 4096).await;
    let dest = f.path("out");
    let task = tokio::spawn({
        let (bob, dest) = (bob.clone(), dest.clone());
        async move { fetch_to(&bob, t, &dest).await }
    });
    let journal = bob.dir().join("journal").join(format!("{t}.fetch"));
    let start = std::time::Instant::now();
    while exhibit_client::fetch::read_fetch_journal(&journal).map_or(0, |(_, d)| d.len()) < 60
        && start.elapsed() < std::time::Duration::from_secs(20)
    {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    assert!(!task.is_finished(), "the fetch finished before the drop; make the file larger");
    f.restart().await;
    let r = tokio::time::timeout(std::time::Duration::from_secs(60), task).await.expect("fetch hung").unwrap().unwrap();
    assert!(
        r.chunks_fetched >= 300 && r.chunks_fetched <= 300 + exhibit_client::send::IN_FLIGHT,
        "{}",
        r.chunks_fetched
    );
    assert_eq!(std::fs::read(dest.join("image.bin")).unwrap(), content);
    assert!(r.receipt.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_symlink_in_the_output_dir_is_not_followed() {
    let f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let src = f.path("src").join("case");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("sub/a.txt"), b"evidence").unwrap();
    let t = send_paths(&alice, vec![src], &["bob"], 1024).await;
    let out = f.path("out");
    let elsewhere = f.path("elsewhere");
    std::fs::create_dir_all(out.join("case")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, out.join("case/sub")).unwrap();
    let err = fetch_to(&bob, t, &out).await.unwrap_err();
    assert!(err.to_string().contains("not a directory") || err.to_string().contains("exists"), "{err}");
    assert!(tree(&elsewhere).is_empty(), "wrote through the symlink");
    assert!(exhibit_client::fetch::pending(&bob).is_empty(), "an unsafe destination left a journal to retry");
}

/// What a [`relay`] passes.
const PASS: u8 = 0;
const TO_SERVER_ONLY: u8 = 1;
const NOTHING: u8 = 2;

/// A UDP relay on 127.0.0.1 between one client and the server that can be
/// told to drop what the server sends, or everything (a client that
/// vanishes, as the server sees it).
async fn relay(server: std::net::SocketAddr, mode: Arc<std::sync::atomic::AtomicU8>) -> std::net::SocketAddr {
    let sock = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let addr = sock.local_addr().unwrap();
    tokio::spawn(async move {
        let mut client = None;
        let mut buf = vec![0u8; 65536];
        while let Ok((n, from)) = sock.recv_from(&mut buf).await {
            let to = match mode.load(Ordering::SeqCst) {
                PASS | TO_SERVER_ONLY if from != server => {
                    client = Some(from);
                    Some(server)
                }
                PASS => client,
                _ => None,
            };
            if let Some(to) = to {
                let _ = sock.send_to(&buf[..n], to).await;
            }
        }
    });
    addr
}

/// A client that asks for more chunks than its connection's share of the
/// server's download memory and then vanishes with a chunk unacknowledged:
/// once the server gives the connection up (idle timeout), the requests
/// still waiting end, and every byte of the budget comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_vanishes_mid_download_gives_its_download_memory_back() {
    let f = Fixture::start_with(Arc::new(SystemClock), Background::Off, |c| {
        c.download_memory = "48K".into();
        c.idle_timeout = "2s".into();
    })
    .await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let src = f.path("src");
    std::fs::write(src.join("extract.bin"), bytes(3 * 32768, 5)).unwrap();
    let t = send_paths(&alice, vec![src.join("extract.bin")], &["bob"], 32768).await;
    // The content's chunks (the sealed details' small one aside).
    let ids: Vec<ChunkId> = f
        .chunk_files()
        .iter()
        .filter(|p| std::fs::metadata(p).unwrap().len() > 32768)
        .map(|p| p.file_name().unwrap().to_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
    let budget = &f.state().download_memory;

    let mode = Arc::new(std::sync::atomic::AtomicU8::new(PASS));
    let via = relay(f.server().local_addr(), mode.clone()).await;
    let p = bob.load().unwrap();
    let conn = Conn::connect(&via.to_string(), &p.ca_der, Some((&p.tls_cert, &p.tls_key))).await.unwrap();
    assert!(matches!(raw(&conn, &frame::encode(&Request::WhoAmI).unwrap()).await, Response::WhoAmI { .. }));
    // Nothing comes back: the first chunk goes out and is never
    // acknowledged. It holds the connection's whole share (its sealed
    // length is more), so the other two wait for it.
    mode.store(TO_SERVER_ONLY, Ordering::SeqCst);
    let mut streams = vec![];
    for id in &ids {
        let (mut send, recv) = conn.connection().open_bi().await.unwrap();
        send.write_all(&frame::encode(&Request::GetChunk { transfer: t, id: *id }).unwrap()).await.unwrap();
        send.finish().unwrap();
        streams.push((send, recv));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while budget.free() == budget.total() {
        assert!(std::time::Instant::now() < deadline, "the first request never held memory");
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    mode.store(NOTHING, Ordering::SeqCst);
    let given_back = tokio::time::timeout(std::time::Duration::from_secs(15), async {
        while budget.free() != budget.total() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    });
    assert!(
        given_back.await.is_ok(),
        "a vanished client kept {} bytes of download memory",
        budget.total() - budget.free()
    );
    // And the server still serves the next fetch.
    let out = f.path("out");
    tokio::time::timeout(std::time::Duration::from_secs(30), fetch_to(&bob, t, &out))
        .await
        .expect("the next fetch hung")
        .unwrap();
    assert_eq!(tree(&out), vec![("extract.bin".to_string(), bytes(3 * 32768, 5))]);
    drop(streams);
}

/// A UDP relay on 127.0.0.1 that carries what the client sends at
/// `bytes_per_sec`, like a slow uplink: datagrams over 1500 bytes are
/// lost (an Ethernet path), and so is whatever would queue for more than
/// 100 ms (a router's buffer). What the server sends passes at once.
async fn slow_uplink(server: std::net::SocketAddr, bytes_per_sec: f64) -> std::net::SocketAddr {
    use std::time::Duration;
    use tokio::time::Instant;
    let sock = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let addr = sock.local_addr().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let out = sock.clone();
    tokio::spawn(async move {
        while let Some((at, d)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            let _ = out.send_to(&d, server).await;
        }
    });
    tokio::spawn(async move {
        let mut client = None;
        let mut free_at = Instant::now();
        let mut buf = vec![0u8; 65536];
        while let Ok((n, from)) = sock.recv_from(&mut buf).await {
            if from == server {
                if let Some(c) = client {
                    let _ = sock.send_to(&buf[..n], c).await;
                }
                continue;
            }
            client = Some(from);
            let now = Instant::now();
            let start = free_at.max(now);
            if n > 1500 || start - now > Duration::from_millis(100) {
                continue;
            }
            free_at = start + Duration::from_secs_f64(n as f64 / bytes_per_sec);
            let _ = tx.send((free_at, buf[..n].to_vec()));
        }
    });
    addr
}

/// A send over a slow uplink completes, although each chunk's body, sharing
/// the line with the others in flight, takes several times the server's
/// body timeout to arrive: only silence fails an upload, not slowness.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_over_a_slow_line_completes() {
    use exhibit_client::send;
    let f = Fixture::start_with(Arc::new(SystemClock), Background::Off, |c| c.body_timeout = "3s".into()).await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let via = slow_uplink(f.server().local_addr(), 750_000.0).await;
    let config = alice.dir().join("client.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace(&f.addr, &via.to_string());
    std::fs::write(&config, text).unwrap();
    let src = f.path("src");
    // 8 chunks of 512 KiB: all in flight at once, 5.6 s on a 750 kB/s line.
    std::fs::write(src.join("interview.mp4"), bytes(4 << 20, 9)).unwrap();
    let started = std::time::Instant::now();
    let mut o = send::SendOptions::new(vec![src.join("interview.mp4")], vec![uid("bob")]);
    o.chunk_size = 512 << 10;
    let sent = tokio::time::timeout(std::time::Duration::from_secs(60), send::send(&alice, o))
        .await
        .expect("the send hung")
        .unwrap();
    let took = started.elapsed();
    assert!(took > std::time::Duration::from_secs(5), "the line was not slow: {took:?}");
    assert_eq!(sent.reconnects, 0, "a chunk was given up on and sent again");
    let out = f.path("out");
    fetch_to(&bob, sent.transfer, &out).await.unwrap();
    assert_eq!(tree(&out), vec![("interview.mp4".to_string(), bytes(4 << 20, 9))]);
}
