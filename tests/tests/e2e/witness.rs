//! Witnesses (issue 23, item 7): the real `exhibitd witness` process, run
//! by a second organisation, against the fixture's server on loopback. It
//! cosigns a head only after checking it extends the one it cosigned
//! before; a client that trusts its key takes the latest cosigned head as
//! final, and one that trusts another key does not. A log rewritten after
//! a head was cosigned is refused by the witness (exit 3, fork report),
//! and the head it cosigned before is a fork to a client holding the
//! rewritten log.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use exhibit_client::conn::Conn;
use exhibit_client::{heads, listing, witness};
use exhibit_proto::directory::Role;
use exhibit_proto::frame::{Request, Response};
use exhibit_proto::tlog::{cosign, Cosignature, CosignedHead, SignedTreeHead, TreeHead};
use exhibit_server::config::{MetadataConfig, WitnessConfig};
use exhibit_server::{Background, SystemClock};

use crate::failover::exhibitd;
use crate::fixture::*;
use crate::tlog::{fork_reports, held_size, refused, rewrite_entry, sent_and_fetched};

/// Every wait on a witness process.
const WITNESS_WITHIN: Duration = Duration::from_secs(90);

/// A witness made by `exhibitd witness init`.
struct Witness {
    dir: PathBuf,
    name: String,
    key: String,
}

/// Run `exhibitd` with `args`, killed if it takes longer than
/// [`WITNESS_WITHIN`]; off the runtime's threads (the fixture's server
/// runs on them).
async fn exhibitd_run(bin: &Path, args: Vec<String>) -> Output {
    let bin = bin.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(&bin)
            .args(&args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + WITNESS_WITHIN;
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                child.kill().unwrap();
                panic!("exhibitd {args:?} did not finish within {WITNESS_WITHIN:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

async fn init(bin: &Path, dir: PathBuf, name: &str) -> Witness {
    let args =
        vec!["witness".into(), "init".into(), "--dir".into(), dir.display().to_string(), "--name".into(), name.into()];
    let o = exhibitd_run(bin, args).await;
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    let key = out.lines().find_map(|l| l.strip_prefix("witness key: ")).unwrap().to_owned();
    assert!(out.contains(&format!("key = \"{key}\"")), "the exhibitd.toml lines: {out}");
    assert!(out.contains(&format!("exhibit audit witness add {name} {key}")), "{out}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join(exhibit_server::witness::KEY_FILE)).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the witness key is its owner's only");
    assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
    Witness { dir, name: name.into(), key }
}

async fn run_once(bin: &Path, w: &Witness, f: &Fixture) -> Output {
    let dir = w.dir.display().to_string();
    let ca = f.ca.display().to_string();
    let args = ["witness", "run", "--once", "--dir", dir.as_str(), "--log", f.addr.as_str(), "--ca", ca.as_str()];
    exhibitd_run(bin, args.iter().map(|s| s.to_string()).collect()).await
}

/// A server that takes cosignatures from `w`.
async fn server_witnessed_by(w: &Witness) -> Fixture {
    server_witnessed_on(w, MetadataConfig::default()).await
}

/// A server that takes cosignatures from `w`, its metadata where
/// `metadata` says.
async fn server_witnessed_on(w: &Witness, metadata: MetadataConfig) -> Fixture {
    let entry = WitnessConfig { name: w.name.clone(), key: w.key.clone() };
    Fixture::with_metadata_and(Arc::new(SystemClock), Background::On, move |c| c.witness = vec![entry], metadata).await
}

fn tree_size(f: &Fixture) -> u64 {
    exhibit_server::app::tree::size(&*f.state().meta.read().unwrap()).unwrap()
}

fn held_by_witness(w: &Witness) -> exhibit_proto::tlog::HeldHead {
    serde_json::from_slice(&std::fs::read(w.dir.join(exhibit_server::witness::HELD_FILE)).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_witness_cosigns_and_a_client_trusting_its_key_holds_the_head_final() {
    let Some(bin) = exhibitd() else { return };
    let keys = tempfile::tempdir().unwrap();
    let w = init(&bin, keys.path().join("cps-witness"), "cps-witness").await;
    let stranger = init(&bin, keys.path().join("stranger"), "stranger").await;
    let f = server_witnessed_by(&w).await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    witness::add(&alice, &w.name, &w.key).unwrap();
    // Bob was given another key under the witness's name.
    witness::add(&bob, &w.name, &stranger.key).unwrap();

    // Nothing cosigned yet: nothing final.
    listing::fetch_list(&alice, false).await.unwrap();
    assert_eq!(witness::stored_final(&alice).unwrap(), None);

    let o = run_once(&bin, &w, &f).await;
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("cosigned the log's tree head"), "{}", text(&o));
    let cosigned = held_by_witness(&w);
    assert_eq!(cosigned.size, tree_size(&f));

    listing::fetch_list(&alice, false).await.unwrap();
    let fin = witness::stored_final(&alice).unwrap().expect("a head cosigned by a trusted witness is final");
    assert_eq!((fin.head.size, &fin.head.root, &fin.witnesses), (cosigned.size, &cosigned.root, &vec![w.name.clone()]));
    let authority = f.state().keys.log().verifying_key();
    let key = cosign::parse_key(&w.key).unwrap();
    let ch = CosignedHead { head: fin.head.signed.clone(), cosignature: fin.cosignatures[0].clone() };
    assert_eq!(ch.verify(&authority, &key).unwrap().size, fin.head.size);
    assert!(held_size(&alice) >= fin.head.size);

    // Bob's key for the witness is not the one that cosigned: the server
    // hands him the cosigned head, and he does not take it.
    let conn = Conn::open(&bob.load().unwrap()).await.unwrap();
    let Response::CosignedHeads { heads: offered } = conn.request(&Request::CosignedHeads).await.unwrap() else {
        panic!("not cosigned heads")
    };
    assert_eq!(offered.len(), 1);
    conn.close();
    listing::fetch_list(&bob, false).await.unwrap();
    assert_eq!(witness::stored_final(&bob).unwrap(), None);
    assert!(fork_reports(&bob).is_empty());

    // The log grows; the next round extends the head cosigned before.
    sent_and_fetched(&f, &alice, &bob, 1).await;
    let o = run_once(&bin, &w, &f).await;
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains(&format!("extends {}", cosigned.size)), "{}", text(&o));
    let later = held_by_witness(&w);
    assert!(later.size > cosigned.size);
    listing::fetch_list(&alice, false).await.unwrap();
    assert_eq!(witness::stored_final(&alice).unwrap().unwrap().head.size, later.size);

    // A witness the server is not configured with is refused: nothing of
    // it is stored or handed to clients.
    let o = run_once(&bin, &stranger, &f).await;
    assert!(!o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not by a witness configured"), "{}", text(&o));
    let stored = f.state().meta.read().unwrap().cosigned_heads().unwrap();
    assert_eq!(stored.len(), 1);
    assert!(stored[0].cosignature.by(&key));
}

/// The server takes a cosignature only over a head it signed, of its log
/// as it is, by the configured key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_takes_only_a_configured_witness_s_cosignature_of_its_own_head() {
    let witness_key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
    let w = Witness { dir: PathBuf::new(), name: "w".into(), key: cosign::key_text(&witness_key.verifying_key()) };
    let f = server_witnessed_by(&w).await;
    let ca_der = exhibit_proto::cert::pem_der(&std::fs::read(&f.ca).unwrap()).unwrap();
    let ask = |req: Request| {
        let (addr, ca_der) = (f.addr.clone(), ca_der.clone());
        async move { exhibit_server::witness::request(&addr, &ca_der, &req).await }
    };
    // No client certificate: the head, with a proof from nothing.
    let Response::TreeHead { head, .. } = ask(Request::WitnessHead { since: None }).await.unwrap() else {
        panic!("not a tree head")
    };
    let authority = f.state().keys.log().verifying_key();
    let h = head.verify(&authority).unwrap();
    let cosigned = |key: &ed25519_dalek::SigningKey, head: &SignedTreeHead| CosignedHead {
        head: head.clone(),
        cosignature: Cosignature::sign(key, "w", head, 1),
    };
    // By another key.
    let other = ed25519_dalek::SigningKey::from_bytes(&[6; 32]);
    let e = ask(Request::Cosign { cosigned: cosigned(&other, &head) }).await.unwrap_err();
    assert!(e.to_string().contains("not by a witness configured"), "{e}");
    // Over a head another key signed.
    let forged = TreeHead { size: h.size, root: h.root, time: h.time }.sign(&other);
    let e = ask(Request::Cosign { cosigned: cosigned(&witness_key, &forged) }).await.unwrap_err();
    assert!(e.to_string().contains("signature"), "{e}");
    // Over a head the server signed, larger than its log.
    let ahead = TreeHead { size: h.size + 5, root: h.root, time: h.time }.sign(f.state().keys.log());
    let e = ask(Request::Cosign { cosigned: cosigned(&witness_key, &ahead) }).await.unwrap_err();
    assert!(e.to_string().contains("not of this log"), "{e}");
    // With its cosignature claimed by the configured key but made by
    // another.
    let mut claimed = cosigned(&other, &head);
    claimed.cosignature.key = witness_key.verifying_key().to_bytes().to_vec();
    assert!(ask(Request::Cosign { cosigned: claimed }).await.is_err());
    assert!(f.state().meta.read().unwrap().cosigned_heads().unwrap().is_empty());
    // The right one.
    assert!(matches!(ask(Request::Cosign { cosigned: cosigned(&witness_key, &head) }).await.unwrap(), Response::Done));
    assert_eq!(f.state().meta.read().unwrap().cosigned_heads().unwrap(), vec![cosigned(&witness_key, &head)]);
    // Anything else without a certificate is still refused.
    assert!(ask(Request::CosignedHeads).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewritten_log_is_refused_by_the_witness_and_what_it_cosigned_is_a_fork_to_clients() {
    let Some(bin) = exhibitd() else { return };
    let keys = tempfile::tempdir().unwrap();
    let w = init(&bin, keys.path().join("cps-witness"), "cps-witness").await;
    let mut f = server_witnessed_by(&w).await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    sent_and_fetched(&f, &alice, &bob, 1).await;
    // Carol is enrolled and trusts the witness, but has not contacted the
    // server yet.
    let carol = f.user("carol", Role::Caseworker).await;
    witness::add(&carol, &w.name, &w.key).unwrap();
    let o = run_once(&bin, &w, &f).await;
    assert!(o.status.success(), "{}", text(&o));
    let cosigned = held_by_witness(&w);

    // An entry the witness saw is rewritten, the chain and tree remade.
    f.restart_with(|d| rewrite_entry(d, 5)).await;
    let o = run_once(&bin, &w, &f).await;
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("AUDIT LOG FORKED") && err.contains("Nothing was cosigned"), "{}", text(&o));
    let reports: Vec<PathBuf> = std::fs::read_dir(&w.dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("fork-report-"))
        .collect();
    assert_eq!(reports.len(), 1, "{}", text(&o));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&reports[0]).unwrap()).unwrap();
    let authority = f.state().keys.log().verifying_key();
    let head = |which: &str| {
        let signed: SignedTreeHead = serde_json::from_value(report[which]["signed"].clone()).unwrap();
        signed.verify(&authority).unwrap()
    };
    let (held, presented) = (head("held"), head("presented"));
    assert_eq!((held.size, hex::encode(held.root)), (cosigned.size, cosigned.root.clone()));
    assert_ne!(held.root, exhibit_server::app::tree::root(&*f.state().meta.read().unwrap(), held.size).unwrap());
    assert!(presented.size >= held.size);
    // It holds the head it cosigned, so the next round refuses too.
    assert_eq!(held_by_witness(&w), cosigned);
    assert_eq!(run_once(&bin, &w, &f).await.status.code(), Some(3));

    // The server still hands out the head cosigned before the rewrite.
    // Carol's first contact after more is logged: the log she is shown is
    // longer than the cosigned head and does not extend it.
    // (The admin saw the log before the rewrite too: her client forgets
    // it, as after an explained restore, so she can add Dave.)
    std::fs::remove_file(f.admin.dir().join(heads::HEAD_FILE)).unwrap();
    let _ = std::fs::remove_file(f.admin.dir().join("audit-checkpoint.json"));
    f.user("dave", Role::Caseworker).await;
    let r = listing::fetch_list(&carol, false).await;
    let (held, presented) = refused(&f, &carol, r);
    assert!(held > presented, "Carol holds the longer head: {held} > {presented}");
    assert_eq!(presented, cosigned.size);
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&fork_reports(&carol)[0]).unwrap()).unwrap();
    assert!(report["presented_by"].as_str().unwrap().contains("witness cps-witness"), "{report}");
    assert_eq!(witness::stored_final(&carol).unwrap(), None);
}

/// The same with the metadata in PostgreSQL: the cosigned head is kept
/// there, and every node a client reaches hands it out (here a second
/// node of the deployment, on the same database).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_cosigned_through_one_node_is_final_to_a_client_of_another_with_postgres() {
    let Some(bin) = exhibitd() else { return };
    let Some(metadata) = crate::postgres::scratch(&format!("witness_{}", std::process::id())).await else { return };
    let keys = tempfile::tempdir().unwrap();
    let w = init(&bin, keys.path().join("cps-witness"), "cps-witness").await;
    let f = server_witnessed_on(&w, metadata).await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let o = run_once(&bin, &w, &f).await;
    assert!(o.status.success(), "{}", text(&o));
    let cosigned = held_by_witness(&w);
    // Node B, on the same database, hands out what node A took.
    let b = f.second_node().await;
    let ca_der = exhibit_proto::cert::pem_der(&std::fs::read(&f.ca).unwrap()).unwrap();
    let p = alice.load().unwrap();
    let conn = Conn::connect(&b.local_addr().to_string(), &ca_der, Some((&p.tls_cert, &p.tls_key))).await.unwrap();
    let Response::CosignedHeads { heads } = conn.request(&Request::CosignedHeads).await.unwrap() else {
        panic!("not cosigned heads")
    };
    conn.close();
    assert_eq!(heads.len(), 1);
    let authority = f.state().keys.log().verifying_key();
    assert_eq!(heads[0].verify(&authority, &cosign::parse_key(&w.key).unwrap()).unwrap().size, cosigned.size);
    witness::add(&alice, &w.name, &w.key).unwrap();
    listing::fetch_list(&alice, false).await.unwrap();
    assert_eq!(witness::stored_final(&alice).unwrap().unwrap().head.size, cosigned.size);
    b.shutdown().await;
}

/// `run --every`: rounds keep coming, each extending the last, until the
/// witness is stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_witness_cosigns_the_log_as_it_grows() {
    let Some(bin) = exhibitd() else { return };
    let keys = tempfile::tempdir().unwrap();
    let w = init(&bin, keys.path().join("cps-witness"), "cps-witness").await;
    let f = server_witnessed_by(&w).await;
    let (dir, ca) = (w.dir.display().to_string(), f.ca.display().to_string());
    let mut child = Killed(
        Command::new(&bin)
            .args(["witness", "run", "--every", "1", "--dir", &dir, "--log", &f.addr, "--ca", &ca])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let cosigned_size = || {
        let stored = f.state().meta.read().unwrap().cosigned_heads().unwrap();
        let authority = f.state().keys.log().verifying_key();
        stored.first().map(|h| h.head.verify(&authority).unwrap().size)
    };
    let until = |want: u64| async move {
        let deadline = Instant::now() + WITNESS_WITHIN;
        while cosigned_size() < Some(want) {
            assert!(Instant::now() < deadline, "no head of {want} entries cosigned within {WITNESS_WITHIN:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    until(tree_size(&f)).await;
    let first = cosigned_size().unwrap();
    f.user("alice", Role::EvidenceUnit).await;
    let grown = tree_size(&f);
    assert!(grown > first);
    until(grown).await;
    assert_eq!(held_by_witness(&w).size, grown);
    assert!(child.0.try_wait().unwrap().is_none(), "the witness stopped on its own");
}

/// A child process killed when dropped (a failed assertion too).
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
