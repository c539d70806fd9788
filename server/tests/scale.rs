//! A device extract of a million small files through the real binaries:
//! `exhibit send` and `exhibit fetch` as child processes against the real
//! `exhibitd`, each process's peak memory read from /proc as it runs.
//! Issue 28: "1,000,000 tiny files: send and fetch complete, client and
//! server RSS below 256 MiB, no frame or body over its bound" (a frame or
//! body over its bound fails the send or the fetch). The files are 0 to
//! 63 bytes: the bound at stake is what each file costs, not its bytes.
//! `EXHIBIT_SCALE_FILES` sets another count.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// The bound DESIGN sets on either program's memory.
const MAX_RSS_KIB: u64 = 256 << 10;

/// Peak resident memory (VmHWM, KiB) of process `pid` so far.
fn peak_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Run `exhibit` with `args`; its stdout and the highest peak memory seen
/// while it ran (sampled every 20 ms: the peak is monotonic, so the last
/// sample is within 20 ms of the end).
fn exhibit(args: &[&str]) -> (String, u64) {
    let bin = Path::new(env!("CARGO_BIN_EXE_exhibitd")).with_file_name("exhibit");
    assert!(bin.exists(), "{} is not built (cargo test --workspace builds it)", bin.display());
    let mut child = Command::new(&bin).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let mut peak = 0;
    while child.try_wait().unwrap().is_none() {
        peak = peak.max(peak_kib(pid).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exhibit {args:?}: {stderr}");
    (String::from_utf8(out.stdout).unwrap(), peak)
}

fn content(i: usize) -> Vec<u8> {
    (0..i % 64).map(|k| (i + k) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_file_extract_stays_within_the_memory_bound() {
    let n: usize = std::env::var("EXHIBIT_SCALE_FILES").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path()).await;
    let src = dir.path().join("extract");
    let rel = |i: usize| format!("d{:04}/f{i:07}", i / 1000);
    for i in 0..n {
        if i % 1000 == 0 {
            std::fs::create_dir_all(src.join(format!("d{:04}", i / 1000))).unwrap();
        }
        std::fs::write(src.join(rel(i)), content(i)).unwrap();
    }
    let home = |h: &exhibit_client::Home| h.dir().to_str().unwrap().to_owned();
    let (alice, bob) = (home(&s.alice), home(&s.bob));

    let (out, send_peak) =
        exhibit(&["--home", &alice, "send", src.to_str().unwrap(), "--to", "bob", "--json", "--yes"]);
    let sent: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(sent["items"], n);
    let t = sent["transfer"].as_str().unwrap().to_owned();

    let dest = dir.path().join("out");
    let (out, fetch_peak) = exhibit(&["--home", &bob, "fetch", &t, "-o", dest.to_str().unwrap(), "--json"]);
    let fetched: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(fetched["item_count"], n);
    assert!(fetched["receipt"].is_object(), "no receipt");
    let server_peak = peak_kib(s.daemon.child.id()).unwrap();
    eprintln!(
        "{n} files: peak RSS send {} MiB, fetch {} MiB, server {} MiB",
        send_peak >> 10,
        fetch_peak >> 10,
        server_peak >> 10
    );

    // Every file arrived, byte for byte.
    for i in 0..n {
        let got = std::fs::read(dest.join("extract").join(rel(i))).unwrap();
        assert!(got == content(i), "file {i} differs");
    }
    assert!(send_peak < MAX_RSS_KIB, "sending client peaked at {} MiB", send_peak >> 10);
    assert!(fetch_peak < MAX_RSS_KIB, "fetching client peaked at {} MiB", fetch_peak >> 10);
    assert!(server_peak < MAX_RSS_KIB, "server peaked at {} MiB", server_peak >> 10);
}
