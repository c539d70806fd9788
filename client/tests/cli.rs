//! The `exhibit` binary as a user runs it, against a real server on
//! loopback: the README's worked example, with the JSON contracts.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

struct Env {
    _rt: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
    addr: String,
    ca: String,
}

fn start() -> (Env, String) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let init = exhibit_server::init(
        &dir.path().join("data"),
        "127.0.0.1:0".parse().unwrap(),
        "localhost",
        &exhibit_server::SystemClock,
    )
    .unwrap();
    let settings = exhibit_server::load_config(&init.config).unwrap();
    let server = rt.block_on(exhibit_server::Server::start(settings, Arc::new(exhibit_server::SystemClock))).unwrap();
    let addr = server.local_addr().to_string();
    rt.spawn(server.wait());
    let ca = init.ca.to_str().unwrap().to_owned();
    (Env { _rt: rt, dir, addr, ca }, init.admin_code)
}

impl Env {
    fn home(&self, who: &str) -> String {
        self.dir.path().join(format!("home-{who}")).to_str().unwrap().to_owned()
    }

    fn run(&self, who: &str, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_exhibit")).env("EXHIBIT_HOME", self.home(who)).args(args).output().unwrap()
    }

    fn ok(&self, who: &str, args: &[&str]) -> String {
        let out = self.run(who, args);
        assert!(out.status.success(), "exhibit {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, who: &str, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        serde_json::from_str(&self.ok(who, &a)).unwrap()
    }

    fn enrol(&self, who: &str, code: &str) {
        self.ok(who, &["enrol", "--server", &self.addr, "--code", code, "--ca", &self.ca]);
    }
}

fn read_tree(p: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![];
    for e in std::fs::read_dir(p).unwrap() {
        let e = e.unwrap().path();
        if e.is_dir() {
            for (n, b) in read_tree(&e) {
                out.push((format!("{}/{n}", e.file_name().unwrap().to_str().unwrap()), b));
            }
        } else {
            out.push((e.file_name().unwrap().to_str().unwrap().to_owned(), std::fs::read(&e).unwrap()));
        }
    }
    out.sort();
    out
}

#[test]
fn readme_worked_example() {
    let (env, admin_code) = start();
    env.enrol("admin", &admin_code);
    let who = env.json("admin", &["whoami"]);
    assert_eq!(who["role"], "admin");

    let a = env.json("admin", &["admin", "user", "add", "alice", "--org", "Kent Police", "--role", "evidence-unit"]);
    let b = env.json("admin", &["admin", "user", "add", "bob", "--org", "CPS", "--role", "caseworker"]);
    env.enrol("alice", a["code"].as_str().unwrap());
    env.enrol("bob", b["code"].as_str().unwrap());
    let users = env.json("admin", &["admin", "user", "list"]);
    assert_eq!(users.as_array().unwrap().len(), 3);
    let dir = env.json("alice", &["directory", "bob"]);
    assert_eq!(dir[0]["user"], "bob");

    let src = env.dir.path().join("case-OP7");
    std::fs::create_dir_all(src.join("interviews")).unwrap();
    std::fs::write(src.join("interviews/ABE-1.mp4"), vec![7u8; 5_000_000]).unwrap();
    std::fs::write(src.join("statement.pdf"), b"%PDF-1.7").unwrap();
    let sent =
        env.json("alice", &["send", src.to_str().unwrap(), "--to", "bob", "--case", "OP7", "--ack-within", "2h"]);
    let t = sent["transfer"].as_str().unwrap().to_owned();
    assert_eq!(t.len(), 32);

    let inbox = env.json("bob", &["inbox"]);
    assert_eq!(inbox[0]["transfer"], t.as_str());
    assert_eq!(inbox[0]["case"], "OP7");
    assert_eq!(inbox[0]["recipients"][0]["state"], "sealed");
    assert_eq!(inbox[0]["deadline"].as_u64().unwrap() - inbox[0]["sealed_at"].as_u64().unwrap(), 7200);

    let out = env.dir.path().join("received");
    env.json("bob", &["fetch", &t, "-o", out.to_str().unwrap()]);
    assert_eq!(read_tree(&out.join("case-OP7")), read_tree(&src));

    let outbox = env.json("alice", &["outbox"]);
    assert_eq!(outbox[0]["recipients"][0]["state"], "acknowledged");

    let receipt = env.dir.path().join("receipt.json");
    env.ok("alice", &["receipt", "export", &t, "-o", receipt.to_str().unwrap()]);
    let v = env.json("nobody", &["receipt", "verify", receipt.to_str().unwrap(), "--ca", &env.ca]);
    assert_eq!(v["valid"], true);
    assert_eq!(v["summary"]["recipient"], "bob");
    // The item list written beside the bundle is checked against the root
    // the receipt signs: both files, in b3sum's format.
    let items = env.dir.path().join("receipt.json.items");
    let list = std::fs::read_to_string(&items).unwrap();
    assert_eq!(list.lines().count(), 2);
    assert!(list
        .lines()
        .all(|l| l.ends_with("case-OP7/interviews/ABE-1.mp4") || l.ends_with("case-OP7/statement.pdf")));
    assert_eq!(v["items_checked"], 2);
    assert_eq!(v["summary"]["item_count"], 2);
    let swapped: String = list.lines().rev().map(|l| format!("{l}\n")).collect();
    std::fs::write(&items, swapped).unwrap();
    let bad = env.run("nobody", &["receipt", "verify", receipt.to_str().unwrap(), "--ca", &env.ca]);
    assert!(!bad.status.success(), "a reordered item list verified");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("items root"));
    std::fs::write(&items, &list).unwrap();
    let shown = env.ok("bob", &["receipt", "show", &t]);
    assert!(shown.contains("item list    checked"), "{shown}");

    // An edited receipt fails, loudly, with a non-zero exit.
    let text = std::fs::read_to_string(&receipt).unwrap().replace("\"recipient\": \"bob\"", "\"recipient\": \"eve\"");
    std::fs::write(&receipt, text).unwrap();
    let bad = env.run("nobody", &["receipt", "verify", receipt.to_str().unwrap(), "--ca", &env.ca]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("error:"));
}

#[test]
fn bad_input_gets_clear_errors() {
    let (env, _) = start();
    let out = env.run("nobody", &["inbox"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not enrolled"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = env.run("nobody", &["fetch", "not-a-transfer-id"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("transfer id"));
    let out = env.run("nobody", &["enrol", "--server", &env.addr, "--code", "WRONG-CODE", "--ca", &env.ca]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("enrolment code"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn killed_fetch_is_finished_by_resume() {
    let (env, admin_code) = start();
    env.enrol("admin", &admin_code);
    let a = env.json("admin", &["admin", "user", "add", "alice", "--org", "K", "--role", "evidence-unit"]);
    let b = env.json("admin", &["admin", "user", "add", "bob", "--org", "C", "--role", "caseworker"]);
    env.enrol("alice", a["code"].as_str().unwrap());
    env.enrol("bob", b["code"].as_str().unwrap());
    let src = env.dir.path().join("extract.bin");
    let content: Vec<u8> = (0..8u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&src, &content).unwrap();
    let sent = env.json("alice", &["send", src.to_str().unwrap(), "--to", "bob", "--chunk-size", "16384"]);
    let t = sent["transfer"].as_str().unwrap().to_owned();

    let out = env.dir.path().join("received");
    let mut child = Command::new(env!("CARGO_BIN_EXE_exhibit"))
        .env("EXHIBIT_HOME", env.home("bob"))
        .args(["fetch", &t, "-o", out.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let journal = Path::new(&env.home("bob")).join("journal").join(format!("{t}.fetch"));
    let start = std::time::Instant::now();
    let lines = || std::fs::read_to_string(&journal).map(|s| s.lines().count()).unwrap_or(0);
    while lines() < 100 && start.elapsed() < std::time::Duration::from_secs(30) {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    child.kill().unwrap(); // SIGKILL: no clean-up runs
    child.wait().unwrap();
    assert!(!out.join("extract.bin").exists(), "the fetch finished before the kill; make the file larger");

    let resumed = env.json("bob", &["resume"]);
    assert_eq!(resumed["resumed"][0], t.as_str(), "{resumed}");
    assert_eq!(std::fs::read(out.join("extract.bin")).unwrap(), content);
    let outbox = env.json("alice", &["outbox"]);
    assert_eq!(outbox[0]["recipients"][0]["state"], "acknowledged");
    let left: Vec<_> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 1, "temp files left behind: {left:?}");
}

fn get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(60))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    (raw.split_whitespace().nth(1).unwrap().parse().unwrap(), raw)
}

#[test]
fn ui_prints_a_loopback_url_with_a_token_and_serves_only_with_it() {
    use std::io::BufRead;
    let (env, admin_code) = start();
    env.enrol("admin", &admin_code);
    let refused = env.run("admin", &["ui", "--listen", "0.0.0.0:0"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("loopback only"));

    let downloads = env.dir.path().join("dl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_exhibit"))
        .env("EXHIBIT_HOME", env.home("admin"))
        .args(["ui", "--downloads", downloads.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.trim().to_owned();
    let rest = url.strip_prefix("http://127.0.0.1:").expect("a loopback URL");
    let (port, path) = rest.split_once('/').unwrap();
    let addr = format!("127.0.0.1:{port}");
    let token = path.trim_end_matches('/');
    assert_eq!(token.len(), 32, "128-bit token in hex: {url}");
    let (status, page) = get(&addr, &format!("/{token}/"));
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Signed in as <b>admin</b>"), "{page}");
    assert_eq!(get(&addr, "/").0, 404);
    assert_eq!(get(&addr, &format!("/{}/", "0".repeat(32))).0, 404);
    assert!(downloads.is_dir(), "downloads directory created");
    child.kill().unwrap();
    child.wait().unwrap();
}
