//! The `exhibitd` binary's init and fsck, as an operator runs them.
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

#[test]
fn documented_example_config_is_valid() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/exhibit.toml");
    let s = exhibit_server::config::Config::load(&path).unwrap();
    assert_eq!(s.ack_within, 4 * 3600);
    assert_eq!(s.retain_after_ack, Some(90 * 86400));
    assert_eq!(s.max_transfer_bytes, 1 << 40);
    assert_eq!(s.escalate_after, vec![4 * 3600, 24 * 3600]);
}
