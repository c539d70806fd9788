//! Several active nodes on one PostgreSQL and one S3 bucket, failing under
//! a transfer (issue 22): node A, a real `exhibitd` process, SIGKILLed in
//! the middle of a send and again in the middle of a fetch, both finishing
//! through node B; and the PostgreSQL server itself stopped and started
//! again under a send.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use exhibit_client::conn::retry;
use exhibit_client::reach::Choice;
use exhibit_client::{journal, listing, receipt, send, Home};
use exhibit_proto::directory::Role;
use exhibit_proto::frame::TransferState;
use exhibit_proto::ChunkId;
use exhibit_server::chunks::{ChunkStore, DiskChunks};
use exhibit_server::config::{MetadataBackend, MetadataConfig};
use exhibit_server::error::ServerError;
use exhibit_server::{Background, SystemClock};

use crate::fixture::*;
use crate::multinode::within;

/// The size of the transfer each node failure lands in the middle of. The
/// issue asks for 1 GiB; what matters is that the failure lands part-way,
/// which these tests make sure of by waiting until the server has
/// confirmed `CONFIRMED_FIRST` chunks and checking the transfer is not over
/// yet. 64 MiB in 1 MiB chunks leaves 56 chunks (seconds of work through
/// moto) after a SIGKILL that takes milliseconds, while keeping each test
/// to seconds in CI.
const SIZE: usize = 64 << 20;
const CHUNK: u32 = 1 << 20;
const CHUNKS: usize = SIZE / CHUNK as usize;
/// Chunks the server has confirmed before the failure.
const CONFIRMED_FIRST: usize = 8;
/// Every wait on a transfer to finish after a failure.
const FINISH_WITHIN: Duration = Duration::from_secs(90);

/// The `exhibitd` built with this test: `target/debug/exhibitd` beside the
/// test's own `target/debug/deps/e2e-*`. `cargo test --workspace` (the
/// README's test command, and CI's) builds it for the server's own tests;
/// run alone, `cargo build -p exhibit-server --bin exhibitd` first. `None`
/// (skipped) where it is not built, except under CI, where it fails.
pub(crate) fn exhibitd() -> Option<PathBuf> {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().and_then(Path::parent).map(|d| d.join("exhibitd")).unwrap();
    if bin.is_file() {
        return Some(bin);
    }
    assert!(std::env::var_os("CI").is_none(), "CI: {} is not built (cargo test --workspace builds it)", bin.display());
    eprintln!("SKIPPED: {} is not built; `cargo build -p exhibit-server --bin exhibitd` first", bin.display());
    None
}

/// A real `exhibitd serve` process, SIGKILLed on drop.
pub(crate) struct Exhibitd {
    child: Child,
}

impl Exhibitd {
    /// Start `bin` on `config` and wait (at most 30 s) until it says it is
    /// listening; its log goes to `log`.
    pub(crate) fn start(bin: &Path, config: &Path, log: &Path) -> Exhibitd {
        Exhibitd::start_env(bin, config, log, &[])
    }

    /// As `start`, with `env` added to its environment.
    fn start_env(bin: &Path, config: &Path, log: &Path, env: &[(&str, &str)]) -> Exhibitd {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        let mut child = Command::new(bin)
            .args(["serve", "--config", config.to_str().unwrap()])
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if line.starts_with("exhibitd listening on") => return Exhibitd { child },
                Ok(_) => {}
                Err(_) => {
                    let _ = child.kill();
                    let status = child.wait().unwrap();
                    panic!("exhibitd did not say it was listening within 30 s ({status}); see its log");
                }
            }
        }
    }

    /// SIGKILL: no shutdown, no flush, connections left for the client to
    /// find dead.
    fn sigkill(&mut self) {
        self.child.kill().unwrap();
        let status = self.child.wait().unwrap();
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(9), "{status}");
    }
}

impl Drop for Exhibitd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn free_udp() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

pub(crate) fn free_tcp() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// Chunks the deployment's metadata holds as confirmed (every transfer's).
fn confirmed(state: &exhibit_server::State) -> usize {
    state.meta.read().unwrap().chunk_refs().unwrap().len()
}

/// The client reached node B soon enough after A's SIGKILL: the idle
/// timeout (20 s here) to find A's connection dead, a 1 s pause, and
/// `NODE_WAIT` (10 s) trying A again, with 15 s to spare.
fn failed_over_soon(took: Option<Duration>) {
    let took = took.expect("the client did not reach node B within 90 s of node A's SIGKILL");
    let budget = Duration::from_secs(20 + 1 + 15) + exhibit_client::conn::NODE_WAIT;
    assert!(took < budget, "the client reached node B only {took:?} after node A's SIGKILL");
}

/// Start a send of `file` from `from` to bob, 1 MiB chunks.
fn start_send(
    from: &Home,
    file: PathBuf,
) -> tokio::task::JoinHandle<Result<send::SendOutcome, exhibit_client::ClientError>> {
    let mut o = send::SendOptions::new(vec![file], vec![uid("bob")]);
    o.chunk_size = CHUNK;
    o.case_ref = Some("OP-FAILOVER".into());
    let from = from.clone();
    tokio::spawn(async move { send::send(&from, o).await })
}

/// Node A (a real exhibitd) and node B (the fixture's server) on one
/// PostgreSQL and one moto bucket; alice and bob list A first. A is
/// SIGKILLed once 8 of a 64 MiB send's 64 chunks are confirmed: the send
/// goes on by itself through B from what was confirmed. A is started again
/// and SIGKILLed once bob's fetch through it has written 8 chunks: the
/// fetch goes on through B. The files are byte-identical, the receipt
/// verifies, and fsck finds nothing missing or corrupt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_a_node_mid_send_and_mid_fetch_both_finish_through_the_other() {
    let Some(meta) = crate::postgres::scratch("sigkill").await else { return };
    let Some(moto) = crate::s3::Moto::start() else { return };
    let Some(bin) = exhibitd() else { return };
    let bucket = moto.bucket("failover");
    // An idle timeout of 20 s (keep-alives every 10 s hold live connections):
    // clients notice a node gone without a word within 20 s, not 60.
    let f = Fixture::with_metadata_and(
        Arc::new(SystemClock),
        Background::On,
        |c| {
            c.storage = bucket;
            c.idle_timeout = "20s".into();
        },
        meta,
    )
    .await;
    let (quic_a, tcp_a) = (free_udp(), free_tcp());
    let config_a = f.node_config("exhibitd-node-a.toml", quic_a, tcp_a);
    let log_a = f.path("logs").join("node-a.log");
    let mut a = Exhibitd::start(&bin, &config_a, &log_a);
    let (node_a, node_b) = (quic_a.to_string(), f.addr.clone());
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    nodes(&alice, &[&node_a, &node_b]);
    nodes(&bob, &[&node_a, &node_b]);
    let b = f.state().clone();

    // The send, through node A; SIGKILL once 8 chunks are confirmed.
    let src = f.path("src");
    let content = bytes(SIZE, 22);
    std::fs::write(src.join("interview.bin"), &content).unwrap();
    let sending = start_send(&alice, src.join("interview.bin"));
    within(Duration::from_secs(60), || confirmed(&b) >= CONFIRMED_FIRST || sending.is_finished())
        .await
        .expect("node A confirmed no chunks within 60 s");
    assert!(!sending.is_finished(), "the send ended before node A was killed: {:?}", sending.await);
    assert_eq!(b.conns.count_of(&uid("alice")), 0, "the send went through node B, not A");
    a.sigkill();
    let killed = Instant::now();
    let at_kill = confirmed(&b);
    // It reconnects by itself, to B, and goes on from what was confirmed.
    let to_b = within(FINISH_WITHIN, || b.conns.count_of(&uid("alice")) > 0 || sending.is_finished()).await;
    failed_over_soon(to_b);
    let out = tokio::time::timeout(FINISH_WITHIN, sending)
        .await
        .expect("the send did not finish within 90 s of node A's SIGKILL")
        .unwrap()
        .expect("the send did not go on through node B by itself");
    eprintln!(
        "send: node A SIGKILLed with {at_kill} of {CHUNKS} chunks confirmed; on node B after {to_b:?}, done {:?} \
         after the kill; {} reconnection(s), {} chunks sent in all",
        killed.elapsed(),
        out.reconnects,
        out.chunks_sent
    );
    assert!(out.reconnects >= 1, "the send did not reconnect: node A was killed after it ended");
    let t = out.transfer;
    assert_eq!(b.meta.read().unwrap().transfer(&t).unwrap().unwrap().state, TransferState::Sealed);
    assert!(journal::pending(&alice).unwrap().is_empty(), "the send's journal is left behind");

    // Node A again; bob's fetch through it, SIGKILLed once 8 chunks are
    // written.
    let mut a = Exhibitd::start(&bin, &config_a, &log_a);
    let dest = f.path("out");
    let fetching = {
        let (bob, dest) = (bob.clone(), dest.clone());
        tokio::spawn(async move { fetch_to(&bob, t, &dest).await })
    };
    let fetch_journal = journal::fetch::path(&bob, t);
    let written = || journal::fetch::read_fetch_journal(&fetch_journal).map_or(0, |(_, done)| done.len());
    within(Duration::from_secs(60), || written() >= CONFIRMED_FIRST || fetching.is_finished())
        .await
        .expect("the fetch through node A wrote no chunks within 60 s");
    assert!(!fetching.is_finished(), "the fetch ended before node A was killed: {:?}", fetching.await);
    assert_eq!(b.conns.count_of(&uid("bob")), 0, "the fetch went through node B, not A");
    a.sigkill();
    let killed = Instant::now();
    let at_kill = written();
    let to_b = within(FINISH_WITHIN, || b.conns.count_of(&uid("bob")) > 0 || fetching.is_finished()).await;
    failed_over_soon(to_b);
    let got = tokio::time::timeout(FINISH_WITHIN, fetching)
        .await
        .expect("the fetch did not finish within 90 s of node A's SIGKILL")
        .unwrap()
        .expect("the fetch did not go on through node B by itself");
    eprintln!(
        "fetch: node A SIGKILLed with {at_kill} of {CHUNKS} chunks written; on node B after {to_b:?}, done {:?} \
         after the kill; {} chunks fetched in all",
        killed.elapsed(),
        got.chunks_fetched
    );
    assert!(std::fs::read(dest.join("interview.bin")).unwrap() == content, "the fetched file differs");
    assert!(got.receipt.is_some(), "no receipt accepted");

    // The receipt, through node B, verifies.
    let bundle = receipt::bundle(&alice, t, None).await.unwrap();
    let file = f.path("receipt").join("receipt.json");
    receipt::write(&bundle, &file).unwrap();
    let s = receipt::verify_file(&file, &f.ca).unwrap();
    assert_eq!((s.recipient.as_str(), s.transfer), ("bob", t.to_string()));

    // fsck of the deployment: nothing missing or corrupt. A chunk node A
    // had stored in the bucket but not yet recorded when it was killed is
    // an orphan (reported, never deleted from a bucket): at most the
    // client's chunks in flight.
    let mut f = f;
    f.stop().await;
    let data = f.data.clone();
    let report = tokio::task::spawn_blocking(move || exhibit_server::fsck::fsck(&data, true)).await.unwrap().unwrap();
    eprintln!(
        "fsck: {} referenced, {} stored, {} missing, {} orphans, {} corrupt",
        report.referenced,
        report.stored,
        report.missing.len(),
        report.orphans.len(),
        report.corrupt.len()
    );
    assert!(report.healthy(), "fsck: {report:?}");
    assert!(report.referenced >= CHUNKS, "fewer chunks referenced than the file has: {report:?}");
    assert!(report.orphans.len() <= send::IN_FLIGHT, "more orphans than chunks in flight: {report:?}");
}

/// A PostgreSQL cluster of this test's own (`.ci/postgres.sh`, as CI
/// starts the shared one), to stop and start again without disturbing
/// the tests that share `EXHIBIT_TEST_POSTGRES`; removed on drop.
struct OwnPostgres {
    script: PathBuf,
    url: String,
    dir: String,
}

impl OwnPostgres {
    /// Where the PostgreSQL tests run (`EXHIBIT_TEST_POSTGRES` set, or CI);
    /// otherwise `None`, skipped.
    fn start() -> Option<OwnPostgres> {
        if std::env::var_os("EXHIBIT_TEST_POSTGRES").is_none() && std::env::var_os("CI").is_none() {
            eprintln!("EXHIBIT_TEST_POSTGRES not set: skipped");
            return None;
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ci/postgres.sh");
        let out = Command::new(&script).output().unwrap();
        assert!(out.status.success(), "{}: {}", script.display(), String::from_utf8_lossy(&out.stderr));
        let line = String::from_utf8(out.stdout).unwrap();
        let (url, dir) = line.trim().split_once(' ').unwrap();
        Some(OwnPostgres { script, url: url.into(), dir: dir.into() })
    }

    /// `.ci/postgres.sh halt|start DIR` (pg_ctl -w: bounded by its own
    /// 60 s); how long it took.
    fn run(&self, what: &str) -> Duration {
        let start = Instant::now();
        let out = Command::new(&self.script).args([what, &self.dir]).output().unwrap();
        assert!(out.status.success(), "postgres.sh {what}: {}", String::from_utf8_lossy(&out.stderr));
        start.elapsed()
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = Command::new(&self.script).args(["stop", &self.dir]).output();
    }
}

/// A disk chunk store whose writes wait while `closed` (at most 30 s).
#[derive(Debug)]
struct Gated {
    inner: DiskChunks,
    closed: Arc<AtomicBool>,
}

impl ChunkStore for Gated {
    fn put(&self, id: &ChunkId, bytes: &[u8]) -> Result<(), ServerError> {
        let start = Instant::now();
        while self.closed.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.inner.put(id, bytes)
    }
    fn get(&self, id: &ChunkId) -> Result<Vec<u8>, ServerError> {
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

/// PostgreSQL stopped under a send (after 8 of its 64 chunks are confirmed,
/// with the chunks arriving meanwhile held at the store until it is down,
/// so that their metadata is written to a stopped database) and started
/// again: a user's request meanwhile gets a clear error of the kind clients
/// retry, within seconds; the send neither fails nor finishes while it is
/// down, then goes on by itself and is sealed once; the audit log verifies,
/// fsck finds nothing missing, and bob fetches the file byte-identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_mid_send_gives_retryable_errors_then_the_send_completes() {
    let Some(pg) = OwnPostgres::start() else { return };
    let url = pg.url.clone();
    let url = tokio::task::spawn_blocking(move || exhibit_server::meta::postgres::scratch_schema(&url, "restart"))
        .await
        .unwrap()
        .unwrap();
    let meta = MetadataConfig { backend: MetadataBackend::Postgres, url: Some(url) };
    let closed = Arc::new(AtomicBool::new(false));
    let gate = closed.clone();
    let maker: StoreMaker =
        Box::new(move |dir| Arc::new(Gated { inner: DiskChunks::open(dir).unwrap(), closed: gate }));
    let f = Fixture::start_meta(Choice::Quic, Arc::new(SystemClock), Background::On, |_| {}, Some(maker), meta).await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let s = f.state().clone();

    let src = f.path("src");
    let content = bytes(SIZE, 23);
    std::fs::write(src.join("cctv.bin"), &content).unwrap();
    let sending = start_send(&alice, src.join("cctv.bin"));
    within(Duration::from_secs(60), || confirmed(&s) >= CONFIRMED_FIRST || sending.is_finished())
        .await
        .expect("no chunks confirmed within 60 s");
    closed.store(true, Ordering::SeqCst);
    let pg = Arc::new(pg);
    let p = pg.clone();
    let halted = tokio::task::spawn_blocking(move || p.run("halt")).await.unwrap();
    assert!(!sending.is_finished(), "the send ended before PostgreSQL stopped: {:?}", sending.await);
    closed.store(false, Ordering::SeqCst);

    // A user's request while it is down: an error soon, not a hang, and
    // one a client retries.
    let asked = Instant::now();
    let e = tokio::time::timeout(Duration::from_secs(30), listing::fetch_list(&alice, false))
        .await
        .expect("a request hung for 30 s while PostgreSQL was down")
        .expect_err("a request succeeded while PostgreSQL was down");
    eprintln!("PostgreSQL stopped in {halted:?}; a request meanwhile, after {:?}: {e}", asked.elapsed());
    assert!(retry::connection_lost_or_server_fault(&e), "not an error a client retries: {e:?}");
    assert!(!sending.is_finished(), "the send ended while PostgreSQL was down: {:?}", sending.await);

    // Started again: the send goes on by itself.
    let p = pg.clone();
    let started = tokio::task::spawn_blocking(move || p.run("start")).await.unwrap();
    let back = Instant::now();
    let out = tokio::time::timeout(FINISH_WITHIN, sending)
        .await
        .expect("the send did not finish within 90 s of PostgreSQL's restart")
        .unwrap()
        .expect("the send failed after PostgreSQL came back");
    eprintln!(
        "PostgreSQL started in {started:?}; the send done {:?} later, after {} reconnection(s), {} chunks sent in all",
        back.elapsed(),
        out.reconnects,
        out.chunks_sent
    );
    assert!(out.reconnects >= 1, "the send never saw PostgreSQL stop");

    // Nothing half-written: sealed, once; the log verifies; fsck finds
    // nothing missing or corrupt.
    let t = out.transfer;
    assert_eq!(s.meta.read().unwrap().transfer(&t).unwrap().unwrap().state, TransferState::Sealed);
    let entries = s.meta.read().unwrap().audit_about(&t.to_string(), 0, 1000).unwrap();
    assert_eq!(entries.iter().filter(|e| e.body.action == "seal").count(), 1, "sealed other than once");
    let st = s.clone();
    tokio::task::spawn_blocking(move || exhibit_server::app::audit::verify(&st)).await.unwrap().unwrap();
    let report = exhibit_server::fsck::fsck_state(&s, true).unwrap();
    eprintln!(
        "fsck: {} referenced, {} stored, {} missing, {} orphans, {} corrupt",
        report.referenced,
        report.stored,
        report.missing.len(),
        report.orphans.len(),
        report.corrupt.len()
    );
    assert!(report.healthy(), "fsck: {report:?}");
    assert!(report.orphans.len() <= send::IN_FLIGHT, "more orphans than chunks in flight: {report:?}");
    fetch_to(&bob, t, &f.path("out")).await.unwrap();
    assert!(std::fs::read(f.path("out").join("cctv.bin")).unwrap() == content, "the fetched file differs");
}

/// The two-node example an operator follows (deploy/two-nodes.sh and the
/// RUNBOOK): the script makes both data directories for one PostgreSQL
/// database and one bucket (its credentials only in the nodes'
/// environment), both run as real `exhibitd serve` processes; the first
/// admin enrols through node A, alice through A and bob through B; a send
/// through A is fetched through B, byte-identical, and acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_two_node_example_in_deploy_runs_as_documented() {
    use exhibit_client::ops::orgs;
    use exhibit_client::{admin, enrol};
    use exhibit_proto::org::{OrgId, OrgKind};
    let Some(meta) = crate::postgres::scratch("example").await else { return };
    let Some(moto) = crate::s3::Moto::start() else { return };
    let Some(bin) = exhibitd() else { return };
    let bucket = moto.bucket("example");
    let dir = tempfile::tempdir().unwrap();
    let (node_a, node_b) = (free_udp().to_string(), free_udp().to_string());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/two-nodes.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(dir.path().join("deployment"))
        .arg(meta.url.as_deref().unwrap())
        .arg(bucket.endpoint.as_deref().unwrap())
        .args(["example", &node_a, &node_b])
        .env("EXHIBITD", &bin)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    let code = said.lines().find_map(|l| l.strip_prefix("first admin's enrolment code: ")).expect(&said).to_owned();
    assert!(said.contains(&format!("server = \"{node_a},{node_b}\"")), "{said}");
    let data = dir.path().join("deployment");
    let config = std::fs::read_to_string(data.join("node-b/exhibitd.toml")).unwrap();
    assert!(config.contains("backend = \"s3\"") && config.contains("backend = \"postgres\""), "{config}");
    assert!(!config.contains("secret_access_key = \""), "credentials written to the config: {config}");
    assert!(!data.join("node-a/meta.redb").exists() && !data.join("node-b/chunks").exists());

    let creds = [("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test")];
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let _a = Exhibitd::start_env(&bin, &data.join("node-a/exhibitd.toml"), &logs.join("a.log"), &creds);
    let _b = Exhibitd::start_env(&bin, &data.join("node-b/exhibitd.toml"), &logs.join("b.log"), &creds);
    let ca = std::fs::read(data.join("node-a/ca.pem")).unwrap();
    let home = |who: &str| Home::new(dir.path().join(format!("home-{who}")));
    let admin_home = home("admin");
    enrol::enrol(&admin_home, &node_a, &code, &ca).await.unwrap();
    for (id, name, kind) in
        [("kent-police", "Kent Police", OrgKind::Police), ("cps-se", "CPS South East", OrgKind::Cps)]
    {
        orgs::put(&admin_home, OrgId::new(id).unwrap(), name.into(), kind, false).await.unwrap();
    }
    let mut people = vec![];
    for (id, org, role, via) in
        [("alice", "kent-police", Role::EvidenceUnit, &node_a), ("bob", "cps-se", Role::Caseworker, &node_b)]
    {
        let (code, _) = admin::add_user(&admin_home, uid(id), id.into(), org.into(), &[role], None).await.unwrap();
        let h = home(id);
        enrol::enrol(&h, via, &code, &ca).await.unwrap();
        people.push(h);
    }
    let (alice, bob) = (&people[0], &people[1]);
    nodes(bob, &[&node_b]);
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let content = bytes(3 << 20, 7);
    std::fs::write(src.join("interview.bin"), &content).unwrap();
    let t = send_paths(alice, vec![src.join("interview.bin")], &["bob"], 1 << 20).await;
    fetch_to(bob, t, &dir.path().join("out")).await.unwrap();
    assert_eq!(std::fs::read(dir.path().join("out/interview.bin")).unwrap(), content);
    let sent = listing::fetch_list(alice, false).await.unwrap();
    assert_eq!(sent[0].recipients[0].state, exhibit_proto::frame::DeliveryState::Acknowledged, "{sent:?}");
}
