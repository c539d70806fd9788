//! The PostgreSQL backend against a real server: `EXHIBIT_TEST_POSTGRES`
//! names a database (any URL the driver takes). Without it the tests say
//! they were skipped, except under CI (`CI` set), where they fail: CI runs
//! them against the cluster `.ci/run` starts.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

/// The database to test against, or None (skipped) outside CI.
pub(crate) fn test_url() -> Option<String> {
    match std::env::var("EXHIBIT_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("CI is set but EXHIBIT_TEST_POSTGRES is not: the PostgreSQL backend would go untested")
        }
        _ => {
            eprintln!("EXHIBIT_TEST_POSTGRES not set: PostgreSQL backend test skipped");
            None
        }
    }
}

/// A store in a schema of its own.
fn fresh(url: &str) -> PgMeta {
    static N: AtomicUsize = AtomicUsize::new(0);
    let name = format!("unit_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
    PgMeta::open(&scratch_schema(url, &name).unwrap()).unwrap()
}

#[test]
fn tls_and_bad_urls_are_refused_by_name_before_connecting() {
    let e = PgMeta::open("postgres://u@127.0.0.1:1/db?sslmode=require&sslrootcert=/nonexistent/ca.pem")
        .unwrap_err()
        .to_string();
    assert!(e.contains("reading /nonexistent/ca.pem"), "{e}");
    let e = PgMeta::open("postgres://u@127.0.0.1:1/db?sslrootcert=/etc/hostname").unwrap_err().to_string();
    assert!(e.contains("not sslmode=require"), "{e}");
    let e =
        PgMeta::open("postgres://u@127.0.0.1:1/db?sslmode=require&sslrootcert=/etc/hostname").unwrap_err().to_string();
    assert!(e.contains("no certificate in it"), "{e}");
    let e = PgMeta::open("postgres://u@127.0.0.1:1/db?sslmode=bogus").unwrap_err().to_string();
    assert!(e.contains("not a PostgreSQL URL"), "{e}");
    // Nothing listens there: an error, not a panic or a hang.
    let e = PgMeta::open("postgres://u@127.0.0.1:1/db?connect_timeout=5").unwrap_err().to_string();
    assert!(e.contains("connecting to PostgreSQL"), "{e}");
}

#[test]
fn the_postgres_backend_passes_conformance() {
    let Some(url) = test_url() else { return };
    let scratch = tempfile::tempdir().unwrap();
    crate::meta::conformance::run(&mut || Box::new(fresh(&url)), scratch.path()).unwrap();
}

#[test]
fn a_newer_schema_is_refused_and_reopening_migrates_nothing() {
    let Some(url) = test_url() else { return };
    let url = scratch_schema(&url, &format!("newer_{}", std::process::id())).unwrap();
    let m = PgMeta::open(&url).unwrap();
    let mut tx = m.write().unwrap();
    tx.set_counter("n", 7).unwrap();
    tx.commit().unwrap();
    drop(m);
    let m = PgMeta::open(&url).unwrap();
    assert_eq!(m.read().unwrap().counter("n").unwrap(), Some(7));
    let c = m.conn().unwrap();
    wait(c.client.execute("INSERT INTO exhibit_schema (version) VALUES ($1)", &[&(SCHEMA + 1)])).unwrap();
    drop(m);
    let e = PgMeta::open(&url).unwrap_err().to_string();
    assert!(e.contains(&format!("schema {}, written by a newer exhibitd", SCHEMA + 1)), "{e}");
}

#[test]
fn writers_run_one_at_a_time() {
    let Some(url) = test_url() else { return };
    let m = fresh(&url);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..25 {
                    let mut tx = m.write().unwrap();
                    let n = tx.counter("n").unwrap().unwrap_or(0);
                    tx.set_counter("n", n + 1).unwrap();
                    tx.commit().unwrap();
                }
            });
        }
    });
    assert_eq!(m.read().unwrap().counter("n").unwrap(), Some(100));
}

/// Two stores on one database, as two nodes hold: a one-time dashboard
/// link made through one is found by the other, and taken by both at
/// once (each through its own connection, locks and all) it is got by
/// exactly one, every time.
#[test]
fn a_dashboard_link_taken_by_two_nodes_at_once_is_got_by_one() {
    use crate::core::records::DashboardLogin;
    let Some(url) = test_url() else { return };
    let url = scratch_schema(&url, &format!("links_{}", std::process::id())).unwrap();
    let (a, b) = (PgMeta::open(&url).unwrap(), PgMeta::open(&url).unwrap());
    let admin = UserId::new("admin").unwrap();
    for round in 0..20u8 {
        let mut tx = a.write().unwrap();
        tx.put_dashboard_link(&[round; 32], &DashboardLogin { actor: admin.clone(), expires_at: 9 }).unwrap();
        tx.commit().unwrap();
        let start = std::sync::Barrier::new(2);
        let take = |m: &PgMeta| {
            start.wait();
            let mut tx = m.write().unwrap();
            let got = tx.take_dashboard_link(&[round; 32]).unwrap();
            tx.commit().unwrap();
            got
        };
        let (got_a, got_b) = std::thread::scope(|s| {
            let on_a = s.spawn(|| take(&a));
            let on_b = s.spawn(|| take(&b));
            (on_a.join().unwrap(), on_b.join().unwrap())
        });
        assert_eq!(usize::from(got_a.is_some()) + usize::from(got_b.is_some()), 1, "round {round}");
    }
    let mut tx = a.write().unwrap();
    tx.put_dashboard_session(&[1; 32], &DashboardLogin { actor: admin.clone(), expires_at: 9 }).unwrap();
    tx.commit().unwrap();
    assert_eq!(b.read().unwrap().dashboard_session(&[1; 32]).unwrap().map(|l| l.actor), Some(admin));
}

/// Two stores on one database, as two nodes hold: a witness's cosigned
/// head taken through one is handed out by the other, and a later one
/// replaces it there too.
#[test]
fn a_cosigned_head_stored_by_one_node_is_read_by_the_other() {
    use exhibit_proto::tlog::{Cosignature, CosignedHead, TreeHead};
    let Some(url) = test_url() else { return };
    let url = scratch_schema(&url, &format!("witness_{}", std::process::id())).unwrap();
    let (a, b) = (PgMeta::open(&url).unwrap(), PgMeta::open(&url).unwrap());
    let log = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
    let witness = ed25519_dalek::SigningKey::from_bytes(&[2; 32]);
    let cosigned = |size: u64| {
        let head = TreeHead { size, root: [7; 32], time: size }.sign(&log);
        CosignedHead { cosignature: Cosignature::sign(&witness, "w", &head, size), head }
    };
    for size in [3, 9] {
        let mut tx = a.write().unwrap();
        tx.put_cosigned_head(witness.verifying_key().as_bytes(), &cosigned(size)).unwrap();
        tx.commit().unwrap();
        assert_eq!(b.read().unwrap().cosigned_heads().unwrap(), vec![cosigned(size)]);
    }
}

#[test]
fn a_failed_statement_makes_commit_fail() {
    let Some(url) = test_url() else { return };
    let m = fresh(&url);
    let mut tx = m.write().unwrap();
    tx.set_counter("n", 1).unwrap();
    let v = View::on(&m, None);
    assert!(v.c().is_err());
    drop(v);
    // A statement the server refuses aborts the transaction.
    let bad = m.view("BEGIN").unwrap();
    assert!(bad.query("INSERT INTO no_such_table VALUES (1)", &[]).is_err());
    assert!(Box::new(bad).commit().is_err());
    tx.commit().unwrap();
}

#[test]
fn usable_and_droppable_on_an_async_worker_thread() {
    let Some(url) = test_url() else { return };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let m = fresh(&url);
    rt.block_on(async move {
        let mut tx = m.write().unwrap();
        tx.set_counter("n", 1).unwrap();
        tx.commit().unwrap();
        let blocking = std::sync::Arc::new(m);
        let b = blocking.clone();
        let n = tokio::task::spawn_blocking(move || b.read().unwrap().counter("n").unwrap()).await.unwrap();
        assert_eq!(n, Some(1));
        drop(blocking);
    });
}

/// TLS to PostgreSQL (`sslmode=require`): against a cluster with TLS on and
/// its certificate in `EXHIBIT_TEST_POSTGRES_CA` (as `.ci/run` starts it),
/// the store works over TLS; with another CA the connection is refused,
/// not made in the clear.
#[test]
fn tls_is_verified_against_the_named_root() {
    let Some(url) = test_url() else { return };
    let ca = match std::env::var("EXHIBIT_TEST_POSTGRES_CA") {
        Ok(ca) if !ca.is_empty() => ca,
        _ if std::env::var_os("CI").is_some() => panic!("CI is set but EXHIBIT_TEST_POSTGRES_CA is not"),
        _ => return eprintln!("EXHIBIT_TEST_POSTGRES_CA not set: TLS to PostgreSQL not tested"),
    };
    let name = format!("tls_{}", std::process::id());
    let plain = scratch_schema(&url, &name).unwrap();
    let with = |root: &str| format!("{plain}&sslmode=require&sslrootcert={root}");
    let m = PgMeta::open(&with(&ca)).unwrap();
    let mut tx = m.write().unwrap();
    tx.set_counter("over-tls", 7).unwrap();
    tx.commit().unwrap();
    assert_eq!(m.read().unwrap().counter("over-tls").unwrap(), Some(7));
    // Another authority's certificate as the root: refused.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("other.pem");
    std::fs::write(&wrong, other.cert.pem()).unwrap();
    let e = PgMeta::open(&with(wrong.to_str().unwrap())).unwrap_err().to_string();
    assert!(e.contains("connecting to PostgreSQL") && e.to_lowercase().contains("certificate"), "{e}");
}

/// A revocation is heard by a listening store only once its transaction
/// commits, and only by stores on its own schema.
#[test]
fn revocations_are_heard_once_committed_and_within_their_schema() {
    use crate::meta::Heard;
    let Some(url) = test_url() else { return };
    let (store, other) = (fresh(&url), fresh(&url));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let listen = |m: &PgMeta| {
        let heard = Arc::new(Mutex::new(vec![]));
        let h = heard.clone();
        rt.spawn(m.revocations(Arc::new(move |x| h.lock().unwrap().push(x))).unwrap());
        heard
    };
    let (heard, heard_other) = (listen(&store), listen(&other));
    let until = |heard: &Arc<Mutex<Vec<Heard>>>, what: Heard| {
        let start = std::time::Instant::now();
        while !heard.lock().unwrap().contains(&what) {
            assert!(start.elapsed() < std::time::Duration::from_secs(10), "{what:?} not heard: {heard:?}");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    };
    // Each listens (and says so) before anything is announced.
    until(&heard, Heard::Resync);
    until(&heard_other, Heard::Resync);
    let user = |s: &str| UserId::new(s).unwrap();
    let mut tx = store.write().unwrap();
    tx.announce_revoked(&user("bob")).unwrap();
    drop(tx);
    let mut tx = store.write().unwrap();
    tx.announce_revoked(&user("carol")).unwrap();
    tx.commit().unwrap();
    let mut tx = other.write().unwrap();
    tx.announce_revoked(&user("dave")).unwrap();
    tx.commit().unwrap();
    // Delivered in commit order: once dave is heard, carol was before him.
    until(&heard, Heard::Revoked(user("carol")));
    until(&heard_other, Heard::Revoked(user("dave")));
    assert_eq!(*heard.lock().unwrap(), [Heard::Resync, Heard::Revoked(user("carol"))], "bob's rolled back");
    assert_eq!(*heard_other.lock().unwrap(), [Heard::Resync, Heard::Revoked(user("dave"))], "another schema's");
    rt.shutdown_background();
}
