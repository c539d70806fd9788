//! What the daemon tests share: the real `exhibitd` as a child process on
//! a free loopback port, with alice and bob enrolled.
#![allow(clippy::unwrap_used, dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use exhibit_client::{enrol, journal, send, Home};
use exhibit_proto::directory::Role;
use exhibit_proto::UserId;

pub struct Daemon {
    config: PathBuf,
    pub child: Child,
}

impl Daemon {
    pub fn start(config: &Path) -> Daemon {
        let child = Command::new(env!("CARGO_BIN_EXE_exhibitd"))
            .args(["serve", "--config", config.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        Daemon { config: config.to_owned(), child }
    }

    /// SIGKILL: no shutdown, no flush.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn restart(&mut self) {
        *self = Daemon::start(&self.config);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn chunk_count(data: &Path) -> usize {
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
pub async fn retry<T, F: std::future::Future<Output = Result<T, exhibit_client::ClientError>>>(
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

pub fn pseudo(len: usize, seed: u64) -> Vec<u8> {
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
pub struct Setup {
    pub daemon: Daemon,
    pub data: PathBuf,
    pub ca: PathBuf,
    pub alice: Home,
    pub bob: Home,
}

pub async fn setup(dir: &Path) -> Setup {
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
    let org = exhibit_proto::org::OrgId::new("o").unwrap();
    exhibit_client::ops::orgs::put(&admin, org, "O".into(), exhibit_proto::org::OrgKind::Cps, false).await.unwrap();
    for (u, role) in [("alice", Role::EvidenceUnit), ("bob", Role::Caseworker)] {
        let (code, _) =
            exhibit_client::admin::add_user(&admin, UserId::new(u).unwrap(), u.into(), "o".into(), &[role], None)
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
pub async fn kill_during_send(s: &mut Setup, o: send::SendOptions, target: usize) -> Option<PathBuf> {
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
