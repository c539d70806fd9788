//! The S3 chunk store against a real S3-compatible server: moto's
//! `moto_server` (PyPI `moto[server]`), started on 127.0.0.1 by the test.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use exhibit_proto::directory::Role;
use exhibit_server::chunks::{conformance, ChunkStore, S3Chunks};
use exhibit_server::config::{StorageBackend, StorageConfig};
use exhibit_server::{Background, SystemClock};

use crate::fixture::*;

/// A moto S3 server on a free loopback port, killed on drop.
pub(crate) struct Moto {
    child: Child,
    endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// Start moto, or `None` (with a note) where it is not installed; CI
    /// installs it, so there a missing server is a failure.
    pub(crate) fn start() -> Option<Moto> {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        // `python3 -m moto.server` needs no console script on PATH.
        let child = match Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(e) if std::env::var_os("CI").is_none() => {
                eprintln!("SKIPPED: python3 not runnable ({e}); needed with moto[server] for this test");
                return None;
            }
            Err(e) => panic!("python3 is needed in CI: {e}"),
        };
        let mut moto = Moto { child, endpoint: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = moto.child.try_wait() {
                if std::env::var_os("CI").is_none() {
                    eprintln!(
                        "SKIPPED: moto is not installed ({status}); `pip install 'moto[server]'` to run this test"
                    );
                    return None;
                }
                panic!("moto is needed in CI (.ci/run installs it): python3 -m moto.server exited {status}");
            }
            assert!(Instant::now() < deadline, "moto_server did not start within 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(moto)
    }

    /// Create a bucket (moto accepts unsigned requests).
    pub(crate) fn bucket(&self, name: &str) -> StorageConfig {
        let host = self.endpoint.trim_start_matches("http://");
        let mut s = TcpStream::connect(host).unwrap();
        write!(s, "PUT /{name} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.1 200"), "creating bucket: {reply}");
        StorageConfig {
            backend: StorageBackend::S3,
            bucket: Some(name.into()),
            endpoint: Some(self.endpoint.clone()),
            region: Some("us-east-1".into()),
            prefix: Some("evidence/chunks".into()),
            allow_http: true,
            access_key_id: Some("test".into()),
            secret_access_key: Some("test".into()),
        }
    }
}

#[test]
fn s3_store_passes_the_same_store_tests_as_the_disk_store() {
    let Some(moto) = Moto::start() else { return };
    let store = S3Chunks::open(&moto.bucket("conformance")).unwrap();
    conformance(&store).unwrap();
}

#[test]
fn s3_store_reports_an_unreachable_service_as_an_error() {
    // Nothing listens on this port: errors, not panics or hangs.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let cfg = StorageConfig {
        backend: StorageBackend::S3,
        bucket: Some("b".into()),
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        allow_http: true,
        access_key_id: Some("k".into()),
        secret_access_key: Some("s".into()),
        ..StorageConfig::default()
    };
    let store = S3Chunks::open(&cfg).unwrap();
    let id = exhibit_proto::ChunkId::of(b"x");
    assert!(store.put(&id, b"x").is_err());
    assert!(store.list().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_with_chunks_in_s3_round_trips_and_fsck_sees_them() {
    let Some(moto) = Moto::start() else { return };
    let storage = moto.bucket("exhibit");
    let f = Fixture::start_with(Arc::new(SystemClock), Background::On, |c| c.storage = storage.clone()).await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let src = f.path("src");
    let data = bytes(3 * 1024 * 1024 + 5, 7);
    std::fs::write(src.join("interview.mp4"), &data).unwrap();
    let t = send_paths(&alice, vec![src.join("interview.mp4")], &["bob"], 1 << 20).await;
    // Nothing on the local disk; four chunks and the sealed details in the bucket.
    assert!(f.chunk_files().is_empty());
    let s3 = tokio::task::spawn_blocking(move || {
        let s = S3Chunks::open(&storage).unwrap();
        s.list().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(s3.len(), 5);

    let out = f.path("bob-out");
    fetch_to(&bob, t, &out).await.unwrap();
    assert_eq!(std::fs::read(out.join("interview.mp4")).unwrap(), data);

    // Offline fsck reads the data dir's config and checks the bucket.
    let mut f = f;
    f.stop().await;
    let data_dir = f.data.clone();
    let r = tokio::task::spawn_blocking(move || exhibit_server::fsck::fsck(&data_dir, true)).await.unwrap().unwrap();
    assert_eq!((r.referenced, r.stored), (5, 5));
    assert!(r.healthy() && r.orphans.is_empty(), "{r:?}");
}

/// Issue 25 on S3: the server checks what it reads from the bucket as it
/// does from disk, and the scrub reads the bucket through the same store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_chunk_in_s3_is_refused_at_fetch_and_found_by_the_scrub() {
    use exhibit_proto::frame::{AlertKind, ErrorCode};
    use exhibit_server::clock::Clock;
    use exhibit_server::ManualClock;

    let Some(moto) = Moto::start() else { return };
    let storage = moto.bucket("damaged");
    let clock = ManualClock::new(1_800_000_000);
    let f = Fixture::start_with(Arc::new(clock.clone()), Background::Off, |c| {
        c.storage = storage.clone();
        c.scrub_rate = "1h".into();
    })
    .await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let src = f.path("src");
    std::fs::write(src.join("interview.mp4"), bytes(5000, 8)).unwrap();
    let t = send_paths(&alice, vec![src.join("interview.mp4")], &["bob"], 1024).await;
    // Two objects altered in the bucket (an S3 PUT replaces one).
    let state = f.state().clone();
    let altered = tokio::task::spawn_blocking(move || {
        let mut ids = state.chunks.list().unwrap();
        ids.sort();
        for id in &ids[..2] {
            let mut b = state.chunks.get(id).unwrap();
            let n = b.len() / 2;
            b[n] ^= 1;
            state.chunks.put(id, &b).unwrap();
        }
        ids[..2].to_vec()
    })
    .await
    .unwrap();

    let err = fetch_to(&bob, t, &f.path("out")).await.unwrap_err();
    assert_eq!(err.server_code(), Some(ErrorCode::ChunkDamaged), "{err}");

    // The first step starts a pass; an hour later (the whole period) it
    // has read the bucket.
    let scrub = |now: u64| {
        let state = f.state().clone();
        tokio::task::spawn_blocking(move || exhibit_server::ops::scrub::scrub(&state, now, 1 << 30).unwrap())
    };
    assert_eq!(scrub(clock.now()).await.unwrap().chunks, 0);
    clock.advance(3600);
    let step = scrub(clock.now()).await.unwrap();
    let mut found = step.damaged.clone();
    found.sort();
    assert_eq!(found, altered, "the scrub did not find both");
    assert_eq!(step.chunks, 6, "five chunks of content and one of sealed details");
    let alerts = exhibit_server::app::listings::every_alert(f.state(), true).unwrap();
    let corrupt: Vec<_> = alerts.iter().filter(|a| matches!(a.info.kind, AlertKind::Corruption { .. })).collect();
    assert_eq!(corrupt.len(), 2, "one alert per damaged chunk");
    assert!(corrupt.iter().all(|a| a.info.transfer == Some(t)));
}
