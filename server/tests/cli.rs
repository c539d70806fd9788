//! The `exhibitd` binary's init, fsck and backup, as an operator runs them.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

fn exhibitd(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_exhibitd")).args(args).output().unwrap()
}

#[test]
fn init_prints_json_and_refuses_to_run_twice() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let d = data.to_str().unwrap();
    let out = exhibitd(&["init", "--data", d, "--listen", "127.0.0.1:0", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in ["config", "admin_code", "ca"] {
        assert!(v[key].is_string(), "missing {key}: {v}");
    }
    assert_eq!(v["admin_code"].as_str().unwrap().len(), 19);
    assert!(std::path::Path::new(v["ca"].as_str().unwrap()).exists());
    for private in ["authority.key", "server.key"] {
        let mode = std::fs::metadata(data.join(private)).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{private} readable by others: {mode:o}");
    }

    let again = exhibitd(&["init", "--data", d, "--listen", "127.0.0.1:0"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already initialised"));

    let fsck = exhibitd(&["fsck", "--data", d, "--json"]);
    assert!(fsck.status.success(), "{}", String::from_utf8_lossy(&fsck.stderr));
    let r: serde_json::Value = serde_json::from_slice(&fsck.stdout).unwrap();
    assert_eq!(r["referenced"], 0);
}

#[test]
fn serve_reports_a_bad_config_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "listen = \"not an address\"\ndata_dir = \".\"\n").unwrap();
    let out = exhibitd(&["serve", "--config", cfg.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml"), "{err}");
}

/// `--listen-tcp` puts the TCP listener elsewhere than QUIC's port, in a
/// config still the owner's alone, and the enrolment hint carries `--tcp`.
#[test]
fn init_with_listen_tcp_writes_it_and_says_how_to_enrol() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let d = data.to_str().unwrap();
    let args = ["init", "--data", d, "--listen", "0.0.0.0:4433", "--listen-tcp", "0.0.0.0:443", "--name", "ex.test"];
    let out = exhibitd(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let hint = String::from_utf8_lossy(&out.stdout);
    assert!(hint.contains("enrol --server ex.test:4433 --tcp ex.test:443 "), "{hint}");
    let path = data.join("exhibitd.toml");
    let c = exhibit_server::config::Config::read(&path).unwrap();
    assert_eq!(c.listen_tcp, Some("0.0.0.0:443".parse().unwrap()));
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    // Without it, TCP is on QUIC's address and port.
    let other = dir.path().join("e");
    assert!(exhibitd(&["init", "--data", other.to_str().unwrap(), "--listen", "127.0.0.1:4433"]).status.success());
    let c = exhibit_server::config::Config::read(&other.join("exhibitd.toml")).unwrap();
    assert_eq!(c.listen_tcp, Some("127.0.0.1:4433".parse().unwrap()));
}

#[test]
fn documented_example_config_is_valid() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/exhibit.toml");
    let s = exhibit_server::config::Config::load(&path).unwrap();
    assert_eq!(s.ack_within, 4 * 3600);
    assert_eq!(s.retain_after_ack, Some(90 * 86400));
    assert_eq!(s.max_transfer_bytes, 1 << 40);
    assert_eq!(s.escalate_after, vec![4 * 3600, 24 * 3600]);
    // The documented [enrolment] values are the defaults.
    assert_eq!(s.config.enrolment, exhibit_server::config::EnrolmentConfig::default());
    assert_eq!(s.enrol_limits.backoff, 30);
    assert_eq!(s.config.listen_tcp, Some("0.0.0.0:443".parse().unwrap()));
}

/// The operator's lifecycle with the real binary: serve, back up while it
/// runs, rotate its certificate live, stop it with SIGTERM (as systemd and
/// docker do), restore the backup elsewhere and fsck it.
#[test]
fn backup_rotate_sigterm_restore_with_the_real_binary() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let d = data.to_str().unwrap();
    assert!(exhibitd(&["init", "--data", d, "--listen", "127.0.0.1:0"]).status.success());
    assert_eq!(std::fs::metadata(&data).unwrap().permissions().mode() & 0o777, 0o700);
    let mut serve = Command::new(env!("CARGO_BIN_EXE_exhibitd"))
        .args(["serve", "--config", data.join("exhibitd.toml").to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let sock = data.join("control.sock");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        assert!(std::time::Instant::now() < deadline, "control socket never appeared");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(std::fs::metadata(&sock).unwrap().permissions().mode() & 0o077, 0);

    let file = dir.path().join("b.tar");
    let b = exhibitd(&["backup", "--data", d, "--out", file.to_str().unwrap()]);
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    assert!(String::from_utf8_lossy(&b.stdout).contains("read back"));

    let old_pem = std::fs::read(data.join("server.pem")).unwrap();
    let r = exhibitd(&["rotate-cert", "--data", d]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(String::from_utf8_lossy(&r.stdout).contains("running server now uses it"));
    assert_ne!(std::fs::read(data.join("server.pem")).unwrap(), old_pem);

    let pid = serve.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(s) = serve.try_wait().unwrap() {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "exhibitd ignored SIGTERM");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(status.success(), "SIGTERM is a clean stop: {status}");

    let restored = dir.path().join("r");
    let out = exhibitd(&["restore", "--from", file.to_str().unwrap(), "--data", restored.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(exhibitd(&["fsck", "--data", restored.to_str().unwrap(), "--read-data"]).status.success());
    // The restored authority is the same one users pinned.
    assert_eq!(std::fs::read(restored.join("ca.pem")).unwrap(), std::fs::read(data.join("ca.pem")).unwrap());
}

/// `exhibitd backup` of a deployment whose metadata is in PostgreSQL
/// refuses from its config alone: it names pg_dump / point-in-time
/// recovery and the bucket, nothing is created at `--out` (nor beside it),
/// and the database is never connected to (the URL names a loopback port
/// this test listens on and checks no connection arrived).
#[test]
fn backup_of_a_postgres_deployment_refuses_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let d = data.to_str().unwrap();
    assert!(exhibitd(&["init", "--data", d, "--listen", "127.0.0.1:0"]).status.success());
    let db = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    db.set_nonblocking(true).unwrap();
    let config = data.join("exhibitd.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    assert!(!text.contains("[metadata]"), "init wrote a [metadata] of its own");
    let port = db.local_addr().unwrap().port();
    text += &format!("\n[metadata]\nbackend = \"postgres\"\nurl = \"postgres://exhibit@127.0.0.1:{port}/exhibit\"\n");
    std::fs::write(&config, text).unwrap();

    let backups = dir.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    let file = backups.join("b.tar");
    // Bounded: a backup that went to the database would wait on it for
    // ever (the listener here never answers).
    let mut run = Command::new(env!("CARGO_BIN_EXE_exhibitd"))
        .args(["backup", "--data", d, "--out", file.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while run.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            run.kill().unwrap();
            panic!("exhibitd backup did not refuse within 20 s: it went to the database");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let b = run.wait_with_output().unwrap();
    assert!(!b.status.success(), "a backup of a PostgreSQL deployment exited 0");
    let stderr = String::from_utf8_lossy(&b.stderr);
    for words in ["exhibitd backup is for the embedded redb metadata", "pg_dump", "point-in-time", "bucket"] {
        assert!(stderr.contains(words), "no {words:?} in: {stderr}");
    }
    assert_eq!(std::fs::read_dir(&backups).unwrap().count(), 0, "something was written beside --out");
    match db.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the backup connected to the database before refusing: {other:?}"),
    }
}

/// `deploy/exhibitd.service` passes `systemd-analyze verify` (where
/// systemd is installed), pointing at the binary just built.
#[test]
fn systemd_unit_verifies() {
    let Ok(probe) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("SKIPPED: systemd-analyze not installed");
        return;
    };
    assert!(probe.status.success());
    let unit = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/exhibitd.service");
    let text = std::fs::read_to_string(unit).unwrap();
    assert!(text.contains("ExecStart=/usr/local/bin/exhibitd serve"));
    // One capability only: binding TCP 443 for the TLS-over-TCP listener.
    let one_capability = "CapabilityBoundingSet=CAP_NET_BIND_SERVICE\nAmbientCapabilities=CAP_NET_BIND_SERVICE\n";
    for hardening in ["ProtectSystem=strict", "NoNewPrivileges=yes", "PrivateTmp=yes", one_capability] {
        assert!(text.contains(hardening), "unit lacks {hardening:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exhibitd.service");
    std::fs::write(&path, text.replace("/usr/local/bin/exhibitd", env!("CARGO_BIN_EXE_exhibitd"))).unwrap();
    let out = Command::new("systemd-analyze").arg("verify").arg(&path).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // Complaints about the host's own units are not ours.
    let ours: Vec<&str> = err.lines().filter(|l| l.contains("exhibitd.service")).collect();
    assert!(out.status.success() && ours.is_empty(), "{err}");
}

/// Issue 25: a chunk the metadata refers to but the store no longer holds
/// is left out of the backup, which is kept; `exhibitd backup` lists it and
/// exits non-zero, and so does a restore of that backup, which restores
/// everything else.
#[test]
fn backup_and_restore_list_a_damaged_chunk_and_exit_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let d = data.to_str().unwrap();
    assert!(exhibitd(&["init", "--data", d, "--listen", "127.0.0.1:0", "--json"]).status.success());
    let lost = exhibit_proto::ChunkId::of(b"a chunk the disk lost");
    {
        let meta = exhibit_server::meta::open(&data.join(exhibit_server::META_FILE)).unwrap();
        let mut tx = meta.write().unwrap();
        tx.add_chunk_ref(&lost, 1).unwrap();
        tx.commit().unwrap();
    }
    let out = dir.path().join("b.tar");
    let b = exhibitd(&["backup", "--data", d, "--out", out.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&b.stderr);
    assert!(!b.status.success(), "a backup missing a chunk exited 0");
    assert!(stderr.contains(&format!("DAMAGED  {lost} (missing from the store)")), "{stderr}");
    assert!(stderr.contains("1 damaged chunks are not in the backup"), "{stderr}");
    assert!(out.exists(), "the rest was not kept");

    let restored = dir.path().join("r");
    let r = exhibitd(&["restore", "--from", out.to_str().unwrap(), "--data", restored.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success(), "a restore missing a chunk exited 0");
    assert!(stderr.contains(&format!("DAMAGED  {lost}")), "{stderr}");
    assert!(restored.join(exhibit_server::META_FILE).exists(), "the restore was removed");
}
