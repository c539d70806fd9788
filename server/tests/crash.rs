//! Crash safety: the real `exhibitd` as a child process, killed with
//! SIGKILL part-way through an upload and right after a receipt; restarted;
//! nothing acknowledged is lost and the upload resumes.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use exhibit_client::{enrol, fetch, journal, receipt, send, Home};
use exhibit_proto::directory::Role;
use exhibit_proto::UserId;

struct Daemon {
    config: PathBuf,
    child: Child,
}

impl Daemon {
    fn start(config: &Path) -> Daemon {
        let child = Command::new(env!("CARGO_BIN_EXE_exhibitd"))
            .args(["serve", "--config", config.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        Daemon { config: config.to_owned(), child }
    }

    /// SIGKILL: no shutdown, no flush.
    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn restart(&mut self) {
        *self = Daemon::start(&self.config);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn chunk_count(data: &Path) -> usize {
    fn walk(d: &Path) -> usize {
        std::fs::read_dir(d)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| !p.ends_with("tmp"))
                    .map(|p| if p.is_dir() { walk(&p) } else { 1 })
                    .sum()
            })
            .unwrap_or(0)
    }
    walk(&data.join("chunks"))
}

/// Retry `f` until it succeeds or 10 s pass (the daemon is starting).
async fn retry<T, F: std::future::Future<Output = Result<T, exhibit_client::ClientError>>>(
    mut f: impl FnMut() -> F,
) -> T {
    let start = Instant::now();
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) if start.elapsed() > Duration::from_secs(10) => panic!("{e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

fn pseudo(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A daemon on a free loopback port with alice and bob enrolled.
struct Setup {
    daemon: Daemon,
    data: PathBuf,
    ca: PathBuf,
    alice: Home,
    bob: Home,
}

async fn setup(dir: &Path) -> Setup {
    let data = dir.join("data");
    let port = free_port();
    let init = exhibit_server::init(
        &data,
        format!("127.0.0.1:{port}").parse().unwrap(),
        "localhost",
        &exhibit_server::SystemClock,
    )
    .unwrap();
    let daemon = Daemon::start(&init.config);
    let addr = format!("127.0.0.1:{port}");
    let pem = std::fs::read(&init.ca).unwrap();
    let admin = Home::new(dir.join("admin"));
    retry(|| enrol::enrol(&admin, &addr, &init.admin_code, &pem)).await;
    let mut homes = vec![];
    for (u, role) in [("alice", Role::EvidenceUnit), ("bob", Role::Caseworker)] {
        let (code, _) =
            exhibit_client::admin::add_user(&admin, UserId::new(u).unwrap(), u.into(), "o".into(), role, None)
                .await
                .unwrap();
        let h = Home::new(dir.join(u));
        enrol::enrol(&h, &addr, &code, &pem).await.unwrap();
        homes.push(h);
    }
    let (alice, bob) = (homes[0].clone(), homes[1].clone());
    Setup { daemon, data, ca: init.ca, alice, bob }
}

/// Start `o` as alice and SIGKILL the daemon once `target` chunks are on
/// its disk (or the send is over); restart it. The send's journal, if the
/// send did not finish.
async fn kill_during_send(s: &mut Setup, o: send::SendOptions, target: usize) -> Option<PathBuf> {
    let sender = tokio::spawn({
        let alice = s.alice.clone();
        async move { send::send(&alice, o).await }
    });
    let start = Instant::now();
    while chunk_count(&s.data) < target && !sender.is_finished() && start.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    s.daemon.kill();
    sender.abort();
    let _ = sender.await;
    s.daemon.restart();
    journal::pending(&s.alice).unwrap().into_iter().next()
}

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
    let r =
        retry(|| fetch::fetch(&bob, fetch::FetchOptions { transfer: out, out: dest.clone(), progress: false })).await;
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
    let r =
        retry(|| fetch::fetch(&bob, fetch::FetchOptions { transfer: out, out: dest.clone(), progress: false })).await;
    assert!(r.receipt.is_some());
    for (rel, content) in &files {
        assert!(std::fs::read(dest.join("extract").join(rel)).unwrap() == *content, "{rel}");
    }
    drop(s);
    let report = exhibit_server::fsck::fsck(&data, true).unwrap();
    assert!(report.healthy() && report.orphans.is_empty(), "{report:?}");
}
