//! The `exhibit` binary as a user runs it, against a real server on
//! loopback: the README's worked example, with the JSON contracts.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

#[test]
fn readme_worked_example() {
    let (mut env, admin_code) = start();
    // As in the README, everyone's keys are under a passphrase; here it is
    // read from a file, there is no terminal to ask on.
    env.passphrase = Some(env.secret_file("passphrase", "correct horse battery staple\n"));
    env.enrol("admin", &admin_code);
    let who = env.json("admin", &["whoami"]);
    assert_eq!(who["role"], "admin");

    env.ok("admin", &["admin", "org", "add", "kent-police", "--name", "Kent Police", "--kind", "police"]);
    env.ok("admin", &["admin", "org", "add", "cps-se", "--name", "CPS South East", "--kind", "cps"]);
    let a = env.json("admin", &["admin", "user", "add", "alice", "--org", "kent-police", "--role", "evidence-unit"]);
    let b = env.json(
        "admin",
        &["admin", "user", "add", "bob", "--org", "cps-se", "--role", "caseworker", "--email", "bob.jones@cps.example"],
    );
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
    // A first send to an organisation, with no terminal to ask on and no
    // --yes, is refused before anything is uploaded.
    let refused = env.run("alice", &["send", src.to_str().unwrap(), "--to", "bob", "--case", "OP7"]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("first send") && err.contains("CPS South East (cps)") && err.contains("--yes"), "{err}");
    assert_eq!(env.json("alice", &["outbox"]).as_array().unwrap().len(), 0);
    let sent = env.json(
        "alice",
        &[
            "send",
            src.to_str().unwrap(),
            "--to",
            "bob",
            "--case",
            "OP7",
            "--ack-within",
            "2h",
            "--note",
            "ABE interview, disc 1 of 1",
            "--yes",
        ],
    );
    let t = sent["transfer"].as_str().unwrap().to_owned();
    assert_eq!(t.len(), 32);
    assert_eq!(sent["recipients"][0]["org_kind"], "cps");
    assert_eq!(sent["awaiting_approval"], false);
    // Confirmed once: the next send to that organisation does not ask.
    let again = env.run("alice", &["send", src.join("statement.pdf").to_str().unwrap(), "--to", "bob"]);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));

    let inbox = env.json("bob", &["inbox"]);
    let inbox: Vec<serde_json::Value> =
        inbox.as_array().unwrap().iter().filter(|i| i["transfer"] == t.as_str()).cloned().collect();
    assert_eq!(inbox[0]["transfer"], t.as_str());
    assert_eq!(inbox[0]["case_ref"], "OP7");
    assert_eq!(inbox[0]["recipients"][0]["state"], "sealed");
    assert_eq!(inbox[0]["deadline"].as_u64().unwrap() - inbox[0]["sealed_at"].as_u64().unwrap(), 7200);
    // Issue 24, item 2: the inbox shows what the sealed details say (opened
    // on bob's machine, nothing fetched): the note, the files and the size.
    let pv = &inbox[0]["preview"];
    assert_eq!(
        (pv["note"].as_str(), pv["item_count"].as_u64(), pv["bytes"].as_u64()),
        (Some("ABE interview, disc 1 of 1"), Some(2), Some(5_000_008)),
        "{pv}"
    );
    let text = env.ok("bob", &["inbox"]);
    assert!(text.contains("    2 files, 5.0 MB\n    note: ABE interview, disc 1 of 1\n"), "{text}");
    // Opened once, then kept on bob's machine for him alone.
    let kept = Path::new(&env.home("bob")).join("previews").join(format!("{t}.json"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&kept).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(!env.ok("bob", &["inbox", "--no-preview"]).contains("note:"));

    // Issue 24, item 2: some of it first (`--items`); the receipt says
    // which. A name that is no item is refused before anything is written.
    let listed = env.ok("bob", &["show", &t]);
    assert!(listed.contains("case-OP7/statement.pdf") && listed.contains("case-OP7/interviews/ABE-1.mp4"), "{listed}");
    let first = env.dir.path().join("first");
    let nope = env.run("bob", &["--json", "fetch", &t, "--items", "case-OP7/nope.pdf", "-o", first.to_str().unwrap()]);
    assert!(!nope.status.success() && !first.exists());
    let e: serde_json::Value = serde_json::from_slice(&nope.stdout).unwrap();
    assert_eq!(e["error"]["code"], "usage", "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("no item of this transfer is \"case-OP7/nope.pdf\""));
    let said = env.ok("bob", &["fetch", &t, "--items", "case-OP7/statement.pdf", "-o", first.to_str().unwrap()]);
    assert!(said.contains("fetched 1 of 2, ") && said.contains("receipt for 1 of 2 items accepted"), "{said}");
    assert_eq!(read_tree(&first), [("case-OP7/statement.pdf".to_string(), b"%PDF-1.7".to_vec())]);
    let shown = env.ok("bob", &["receipt", "show", &t]);
    assert!(shown.contains("items        1 of the transfer's 2 (fetched with --items)"), "{shown}");

    let out = env.dir.path().join("received");
    let all = env.json("bob", &["fetch", &t, "-o", out.to_str().unwrap()]);
    assert_eq!((all["item_count"].as_u64(), all.get("items_of")), (Some(2), None), "{all}");
    assert_eq!(read_tree(&out.join("case-OP7")), read_tree(&src));

    let outbox = env.json("alice", &["outbox"]);
    let mine = outbox.as_array().unwrap().iter().find(|o| o["transfer"] == t.as_str()).unwrap().clone();
    assert_eq!(mine["recipients"][0]["state"], "acknowledged");

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

    // Issue 24, item 6: the custody report as a PDF for a court bundle,
    // read back by poppler's pdftotext (installed by .ci/run).
    let pdf = env.dir.path().join("custody-OP7.pdf");
    let made = env.run("alice", &["custody", &t, "--pdf", pdf.to_str().unwrap()]);
    assert!(made.status.success() && made.stdout.is_empty(), "{}", String::from_utf8_lossy(&made.stderr));
    assert!(std::fs::read(&pdf).unwrap().starts_with(b"%PDF-"));
    match Command::new("pdftotext").args(["-layout", pdf.to_str().unwrap(), "-"]).output() {
        Ok(o) => {
            let text = String::from_utf8_lossy(&o.stdout);
            for want in
                ["Chain of custody", &format!("Transfer {t}, case OP7"), "acknowledged", "receipt of bob", "page 1 of"]
            {
                assert!(text.contains(want), "{want:?} not in the PDF's text:\n{text}");
            }
            assert!(text.contains("case-OP7/interviews/ABE-1.mp4"), "the sender is shown file names:\n{text}");
        }
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("pdftotext not installed ({e}): the PDF's text is not checked")
        }
        Err(e) => panic!("pdftotext is needed under CI (apt-get install poppler-utils): {e}"),
    }

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
    let args = ["enrol", "--server", &env.addr, "--code", "WRONG-CODE", "--ca", &env.ca, "--no-passphrase"];
    let out = env.run("nobody", &args);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("enrolment code"), "{err}");
    // A code on the command line works, with a warning that others see it.
    assert!(err.contains("warning: a code given with --code can be seen by other users"), "{err}");
}

#[test]
fn killed_fetch_is_finished_by_resume() {
    let (env, admin_code) = start();
    env.enrol("admin", &admin_code);
    env.ok("admin", &["admin", "org", "add", "k", "--name", "K", "--kind", "police"]);
    let a = env.json("admin", &["admin", "user", "add", "alice", "--org", "k", "--role", "evidence-unit"]);
    let b = env.json("admin", &["admin", "user", "add", "bob", "--org", "k", "--role", "caseworker"]);
    env.enrol("alice", a["code"].as_str().unwrap());
    env.enrol("bob", b["code"].as_str().unwrap());
    let src = env.dir.path().join("extract.bin");
    let content: Vec<u8> = (0..8u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&src, &content).unwrap();
    let sent = env.json("alice", &["send", src.to_str().unwrap(), "--to", "bob", "--chunk-size", "16384", "--yes"]);
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

    // Issue 24, item 7: what is unfinished can be listed first.
    let list = env.json("bob", &["resume", "--list"]);
    assert_eq!((list[0]["kind"].as_str(), list[0]["transfer"].as_str()), (Some("fetch"), Some(t.as_str())), "{list}");
    let resumed = env.json("bob", &["resume"]);
    assert_eq!(resumed["resumed"][0], t.as_str(), "{resumed}");
    assert_eq!(std::fs::read(out.join("extract.bin")).unwrap(), content);
    let outbox = env.json("alice", &["outbox"]);
    assert_eq!(outbox[0]["recipients"][0]["state"], "acknowledged");
    let left: Vec<_> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 1, "temp files left behind: {left:?}");
    assert!(env.ok("bob", &["resume", "--list"]).contains("nothing to resume"));

    // Killed again, and this time given up for good: journal and
    // part-written files go.
    let sent = env.json("alice", &["send", src.to_str().unwrap(), "--to", "bob", "--chunk-size", "16384", "--yes"]);
    let t2 = sent["transfer"].as_str().unwrap().to_owned();
    let out2 = env.dir.path().join("received-2");
    let mut child = Command::new(env!("CARGO_BIN_EXE_exhibit"))
        .env("EXHIBIT_HOME", env.home("bob"))
        .args(["fetch", &t2, "-o", out2.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let journal2 = Path::new(&env.home("bob")).join("journal").join(format!("{t2}.fetch"));
    let start = std::time::Instant::now();
    let lines = || std::fs::read_to_string(&journal2).map(|s| s.lines().count()).unwrap_or(0);
    while lines() < 100 && start.elapsed() < std::time::Duration::from_secs(30) {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!out2.join("extract.bin").exists(), "the fetch finished before the kill; make the file larger");
    let d = env.json("bob", &["resume", "--discard", &t2[..8]]);
    assert_eq!(d["discarded"]["transfer"], t2.as_str(), "{d}");
    assert!(!journal2.exists(), "the journal was kept");
    let left: Vec<_> = std::fs::read_dir(&out2).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "part-written files left behind: {left:?}");
    assert!(env.ok("bob", &["resume", "--list"]).contains("nothing to resume"));

    // Killed a third time, then fetched into another folder: the first
    // folder's part-written files go when the fetch completes. The fetch
    // says so in one line and writes the hashes where asked.
    let sent = env.json("alice", &["send", src.to_str().unwrap(), "--to", "bob", "--chunk-size", "16384", "--yes"]);
    let t3 = sent["transfer"].as_str().unwrap().to_owned();
    let (out3, elsewhere) = (env.dir.path().join("received-3"), env.dir.path().join("received-elsewhere"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_exhibit"))
        .env("EXHIBIT_HOME", env.home("bob"))
        .args(["fetch", &t3, "-o", out3.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let journal3 = Path::new(&env.home("bob")).join("journal").join(format!("{t3}.fetch"));
    let start = std::time::Instant::now();
    let lines = || std::fs::read_to_string(&journal3).map(|s| s.lines().count()).unwrap_or(0);
    while lines() < 100 && start.elapsed() < std::time::Duration::from_secs(30) {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!out3.join("extract.bin").exists(), "the fetch finished before the kill; make the file larger");
    assert!(std::fs::read_dir(&out3).unwrap().count() > 0, "the killed fetch left nothing to clean");
    let hashes = env.dir.path().join("OP-hashes.b3");
    let said = env.ok("bob", &["fetch", &t3, "-o", elsewhere.to_str().unwrap(), "--hashes", hashes.to_str().unwrap()]);
    assert!(said.starts_with("fetched 1 file, 8.4 MB, into ") && said.contains("OP-hashes.b3"), "{said}");
    assert!(!said.contains(&hex_of(&content)), "a hash on the screen: {said}");
    assert_eq!(std::fs::read(elsewhere.join("extract.bin")).unwrap(), content);
    let list = std::fs::read_to_string(&hashes).unwrap();
    assert_eq!(list, format!("{}  extract.bin\n", hex_of(&content)), "not b3sum's format");
    let left: Vec<_> = std::fs::read_dir(&out3).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "the interrupted fetch's files stayed once it was fetched elsewhere: {left:?}");
}

fn hex_of(content: &[u8]) -> String {
    blake3::hash(content).to_hex().to_string()
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

/// The README's second worked example: a disclosure to the defence,
/// refused unlabelled, then approved by a second person and verified.
#[test]
fn readme_disclosure_example() {
    let (env, admin_code) = start();
    env.enrol("admin", &admin_code);
    env.ok("admin", &["admin", "org", "add", "kent-police", "--name", "Kent Police", "--kind", "police"]);
    env.ok("admin", &["admin", "org", "add", "cps-se", "--name", "CPS South East", "--kind", "cps"]);
    env.ok("admin", &["admin", "org", "add", "smith-law", "--name", "Smith & Co Solicitors", "--kind", "defence"]);
    let orgs = env.json("admin", &["admin", "org", "list"]);
    assert_eq!(orgs.as_array().unwrap().iter().filter(|o| o["kind"] == "defence").count(), 1, "{orgs}");
    let add =
        |u: &str, org: &str, role: &str| env.json("admin", &["admin", "user", "add", u, "--org", org, "--role", role]);
    let a = add("alice", "kent-police", "evidence-unit");
    let b = add("bob", "cps-se", "caseworker");
    let d = add("dave", "smith-law", "caseworker");
    let n = add("dana", "cps-se", "caseworker,disclosure-approver");
    for (who, c) in [("alice", &a), ("bob", &b), ("dave", &d), ("dana", &n)] {
        env.enrol(who, c["code"].as_str().unwrap());
    }
    // The police send the interview to bob, who fetches it.
    let src = env.dir.path().join("case-OP7");
    std::fs::create_dir_all(src.join("interviews")).unwrap();
    std::fs::write(src.join("interviews/ABE-1.mp4"), vec![7u8; 300_000]).unwrap();
    let t = env.json("alice", &["send", src.to_str().unwrap(), "--to", "bob", "--case", "OP7", "--yes"]);
    let t = t["transfer"].as_str().unwrap().to_owned();
    env.json("bob", &["fetch", &t, "-o", env.dir.path().join("bob-received").to_str().unwrap()]);

    let redacted = env.dir.path().join("ABE-1-redacted.mp4");
    std::fs::write(&redacted, vec![3u8; 200_000]).unwrap();
    let swap = format!("case-OP7/interviews/ABE-1.mp4={}", redacted.display());
    let forward_redacted =
        ["forward", &t, "--to", "dave", "--yes", "--schedule", "used", "--redacted", &swap, "--victim-details", "no"];
    // The firm is not on the case's roster: refused, saying how to add it.
    let refused = env.run("bob", &forward_redacted);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("exhibit case open OP7") && err.contains("--org smith-law"), "{err}");
    env.ok("bob", &["case", "allow", "OP7", "--org", "smith-law", "--note", "defence for defendant 1"]);
    let roster = env.json("bob", &["case", "roster", "OP7"]);
    assert_eq!((roster["owner"].as_str(), roster["roster"][0]["org"].as_str()), (Some("cps-se"), Some("smith-law")));
    assert!(env.ok("alice", &["case", "roster", "OP7"]).contains("defence for defendant 1"));
    assert!(!env.run("dave", &["case", "roster", "OP7"]).status.success(), "the defence reads rosters");

    // Forwarded as it came (unredacted, unscheduled, victim details): refused, naming the item.
    let refused = env.run("bob", &["forward", &t, "--to", "dave", "--yes"]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("case-OP7/interviews/ABE-1.mp4") && err.contains("Smith & Co Solicitors (defence)"), "{err}");
    assert_eq!(env.json("bob", &["outbox"]).as_array().unwrap().len(), 0, "a refused forward left a transfer");

    let sent = env.json("bob", &forward_redacted);
    let f = sent["transfer"].as_str().unwrap().to_owned();
    assert_eq!((sent["source"].as_str(), sent["redacted"].as_u64()), (Some(t.as_str()), Some(1)));
    assert_eq!(sent["awaiting_approval"], true);
    assert_eq!(sent["approvers"][0], "dana");
    assert_eq!(env.json("dave", &["inbox"]).as_array().unwrap().len(), 0);
    let early = env.run("dave", &["fetch", &f, "-o", env.dir.path().join("early").to_str().unwrap()]);
    assert!(!early.status.success());

    let waiting = env.json("dana", &["approvals"]);
    assert_eq!(waiting[0]["transfer"], f.as_str());
    let review = env.json("dana", &["approve", &f, "--dry-run"]);
    assert_eq!(review["recipients"][0]["org_kind"], "defence");
    assert_eq!(review["items"][0]["labels"], "official-sensitive, other, used, redacted, no victim details");
    // Without a terminal, approving needs --yes.
    assert!(!env.run("dana", &["approve", &f]).status.success());
    let approved = env.json("dana", &["approve", &f, "--yes"]);
    assert_eq!(approved["approved"], f.as_str());

    // The inbox names each person with their organisation and its kind.
    let inbox = env.ok("dave", &["inbox"]);
    assert!(inbox.contains("from bob (bob, CPS South East (cps))"), "{inbox}");
    assert!(inbox.contains("dave (dave, Smith & Co Solicitors (defence))"), "{inbox}");
    assert!(inbox.contains("approved by dana"), "{inbox}");
    let out = env.dir.path().join("dave-received");
    env.json("dave", &["fetch", &f, "-o", out.to_str().unwrap()]);
    assert_eq!(read_tree(&out.join("case-OP7")), vec![("interviews/ABE-1.mp4".to_owned(), vec![3u8; 200_000])]);
    let receipt = env.dir.path().join("receipt-defence.json");
    env.ok("bob", &["receipt", "export", &f, "-o", receipt.to_str().unwrap()]);
    let v = env.json("nobody", &["receipt", "verify", receipt.to_str().unwrap(), "--ca", &env.ca]);
    assert_eq!(v["summary"]["approved_by"], "dana");
    let text = env.ok("nobody", &["receipt", "verify", receipt.to_str().unwrap(), "--ca", &env.ca]);
    assert!(text.contains("approved by  dana"), "{text}");

    // The police see where their material went.
    let custody = env.ok("alice", &["custody", &t]);
    assert!(custody.contains("ONWARD") && custody.contains(&f) && custody.contains("approved by dana"), "{custody}");
    assert!(custody.contains("Smith & Co Solicitors (defence)): acknowledged"), "{custody}");
    let j = env.json("alice", &["custody", &t]);
    assert_eq!(j["onward"][0]["recipients"][0]["state"], "acknowledged");
    // The access of the defence ends (the server's default for defence:
    // 28 days), and bob can extend it.
    assert!(env.ok("dave", &["inbox"]).contains("access until"));
    env.ok("bob", &["extend", &f, "--by", "7d"]);
}

/// Issue 25, item 3: keys at rest under a passphrase.
#[test]
fn keys_at_rest_are_encrypted_with_a_passphrase() {
    let (env, admin_code) = start();
    env.enrol("admin", &admin_code);
    env.ok("admin", &["admin", "org", "add", "k", "--name", "K", "--kind", "police"]);
    let a = env.json("admin", &["admin", "user", "add", "alice", "--org", "k", "--role", "evidence-unit"]);
    let b = env.json("admin", &["admin", "user", "add", "bob", "--org", "k", "--role", "caseworker"]);
    let (a_code, b_code) = (a["code"].as_str().unwrap(), b["code"].as_str().unwrap());
    let alice_pw = env.secret_file("alice-pw", "alice's passphrase\n");
    let bob_pw = env.secret_file("bob-pw", "bob's passphrase\n");
    let code_file = env.secret_file("alice-code", a_code);
    let enrol = ["enrol", "--server", &env.addr, "--code-file", &code_file, "--ca", &env.ca];

    // No terminal, no passphrase file, no --no-passphrase: refused, and
    // the one-time code is not spent.
    let out = env.run_with("alice", &enrol, None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("EXHIBIT_PASSPHRASE_FILE") && err.contains("--no-passphrase"), "{err}");
    assert!(!Path::new(&env.home("alice")).join("client.toml").exists());

    // With the passphrase file: every private key file is an age file.
    let out = env.run_with("alice", &[&enrol[..], &["--json"]].concat(), Some(&alice_pw));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let enrolled: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(enrolled["passphrase"], true);
    let home = Path::new(&env.home("alice")).to_owned();
    for name in ["age.key", "signing.key", "tls-key.der"] {
        let bytes = std::fs::read(home.join(name)).unwrap();
        assert!(bytes.starts_with(b"age-encryption.org/v1\n"), "{name} is not an age file");
    }
    assert!(!String::from_utf8_lossy(&std::fs::read(home.join("age.key")).unwrap()).contains("AGE-SECRET-KEY"));
    let lock = String::from_utf8_lossy(&std::fs::read(home.join("passphrase.age")).unwrap()).into_owned();
    assert!(lock.contains("-> scrypt "), "the lock is not an scrypt age file: {lock}");

    // bob enrols reading his code from standard input.
    let mut child = Command::new(env!("CARGO_BIN_EXE_exhibit"))
        .env("EXHIBIT_HOME", env.home("bob"))
        .env("EXHIBIT_PASSPHRASE_FILE", &bob_pw)
        .args(["enrol", "--server", &env.addr, "--code-file", "-", "--ca", &env.ca])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), format!("{b_code}\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("warning"), "no warning without --code");

    // send and fetch work with the passphrase files.
    let src = env.dir.path().join("exhibit.bin");
    std::fs::write(&src, b"evidence at rest").unwrap();
    let sent =
        env.run_with("alice", &["send", src.to_str().unwrap(), "--to", "bob", "--json", "--yes"], Some(&alice_pw));
    assert!(sent.status.success(), "{}", String::from_utf8_lossy(&sent.stderr));
    let t = serde_json::from_slice::<serde_json::Value>(&sent.stdout).unwrap()["transfer"].as_str().unwrap().to_owned();
    let out = env.dir.path().join("got");
    let fetched = env.run_with("bob", &["fetch", &t, "-o", out.to_str().unwrap()], Some(&bob_pw));
    assert!(fetched.status.success(), "{}", String::from_utf8_lossy(&fetched.stderr));
    assert_eq!(std::fs::read(out.join("exhibit.bin")).unwrap(), b"evidence at rest");

    // A wrong passphrase, or none, is refused clearly.
    let wrong = env.secret_file("wrong-pw", "not bob's\n");
    let out = env.run_with("bob", &["inbox"], Some(&wrong));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("wrong passphrase"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = env.run_with("bob", &["inbox"], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("protected by a passphrase") && err.contains("EXHIBIT_PASSPHRASE_FILE"), "{err}");

    // Change: same keys, same fingerprint; the old passphrase stops working.
    let whoami = |pw: &str| {
        let out = env.run_with("bob", &["whoami", "--json"], Some(pw));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["fingerprint"].clone()
    };
    let fingerprint = whoami(&bob_pw);
    let bob_home = Path::new(&env.home("bob")).to_owned();
    let keys_before = std::fs::read(bob_home.join("age.key")).unwrap();
    let bob_pw2 = env.secret_file("bob-pw2", "bob's second passphrase\n");
    let out = env.run_with("bob", &["passphrase", "change", "--new-passphrase-file", &bob_pw2], Some(&bob_pw));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(whoami(&bob_pw2), fingerprint);
    assert_eq!(std::fs::read(bob_home.join("age.key")).unwrap(), keys_before, "only the lock is rewritten");
    let out = env.run_with("bob", &["whoami"], Some(&bob_pw));
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong passphrase"), "old passphrase still works");
    let out = env.run_with("bob", &["passphrase", "status", "--json"], Some(&bob_pw2));
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["protection"], "passphrase");

    // Remove: the keys are written plain only now, when asked.
    let out = env.run_with("bob", &["passphrase", "remove"], Some(&wrong));
    assert!(!out.status.success(), "removed with a wrong passphrase");
    assert!(std::fs::read(bob_home.join("age.key")).unwrap().starts_with(b"age-encryption.org/v1\n"));
    let out = env.run_with("bob", &["passphrase", "remove"], Some(&bob_pw2));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::read_to_string(bob_home.join("age.key")).unwrap().starts_with("AGE-SECRET-KEY-1"));
    assert!(!bob_home.join("passphrase.age").exists());
    let out = env.run_with("bob", &["whoami", "--json"], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["fingerprint"], fingerprint);

    // And set again, from a file.
    let bob_pw3 = env.secret_file("bob-pw3", "bob's third passphrase\n");
    let out = env.run_with("bob", &["passphrase", "set", "--new-passphrase-file", &bob_pw3], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::read(bob_home.join("signing.key")).unwrap().starts_with(b"age-encryption.org/v1\n"));
    assert_eq!(whoami(&bob_pw3), fingerprint);
}

/// Issue 24, item 3: a transfer is named by a unique prefix of its id or
/// by its case reference wherever an id is taken.
#[test]
fn transfers_are_named_by_a_prefix_or_a_case_reference() {
    let (env, admin_code) = start();
    env.enrol("admin", &admin_code);
    env.ok("admin", &["admin", "org", "add", "kent-police", "--name", "Kent Police", "--kind", "police"]);
    env.ok("admin", &["admin", "org", "add", "cps-se", "--name", "CPS South East", "--kind", "cps"]);
    let a = env.json("admin", &["admin", "user", "add", "alice", "--org", "kent-police", "--role", "evidence-unit"]);
    let b = env.json(
        "admin",
        &["admin", "user", "add", "bob", "--org", "cps-se", "--role", "caseworker", "--email", "bob.jones@cps.example"],
    );
    env.enrol("alice", a["code"].as_str().unwrap());
    env.enrol("bob", b["code"].as_str().unwrap());
    let file = env.dir.path().join("statement.pdf");
    std::fs::write(&file, b"witness statement").unwrap();
    let send = |case: &str| {
        let t = env.json("alice", &["send", file.to_str().unwrap(), "--to", "bob", "--case", case, "--yes"]);
        t["transfer"].as_str().unwrap().to_owned()
    };
    let (one, two, three) = (send("OP-1"), send("OP-2"), send("OP-2"));
    let out = |n: &str| env.dir.path().join(n).to_str().unwrap().to_owned();

    // By its first 8 characters.
    let f = env.json("bob", &["fetch", &one[..8], "-o", &out("by-prefix")]);
    assert_eq!(f["transfer"], one.as_str());
    // By its case, where one transfer has it.
    let c = env.json("alice", &["custody", "--case", "OP-1"]);
    assert_eq!(c["transfer"], one.as_str());
    // A case with two transfers: refused, naming both.
    let e = env.run("bob", &["fetch", "--case", "OP-2", "-o", &out("ambiguous")]);
    let err = String::from_utf8_lossy(&e.stderr);
    assert!(!e.status.success() && err.contains(&two) && err.contains(&three), "{err}");
    // Too short, or nobody's.
    let e = env.run("bob", &["fetch", &two[..5], "-o", &out("short")]);
    assert!(String::from_utf8_lossy(&e.stderr).contains("6 or more"), "{}", String::from_utf8_lossy(&e.stderr));
    let stranger = if two.starts_with("000000") { "ffffff" } else { "000000" };
    let e = env.run("bob", &["fetch", stranger, "-o", &out("none")]);
    assert!(String::from_utf8_lossy(&e.stderr).contains("no transfer"), "{}", String::from_utf8_lossy(&e.stderr));
    // The sender revokes one by prefix.
    let r = env.json("alice", &["revoke", &three[..10]]);
    assert_eq!(r["revoked"], three.as_str());

    // Issue 24, item 7: an acknowledge-within the server will not take is
    // refused before anything is uploaded, not after.
    let e = env.run("alice", &["send", file.to_str().unwrap(), "--to", "bob", "--ack-within", "40d", "--yes"]);
    let err = String::from_utf8_lossy(&e.stderr);
    assert!(!e.status.success() && err.contains("acknowledge-within must be between"), "{err}");
    assert_eq!(env.json("alice", &["outbox"]).as_array().unwrap().len(), 3, "a refused send left a transfer");
    // Under --json the error is JSON on stdout, with a stable code.
    let e =
        env.run("alice", &["send", file.to_str().unwrap(), "--to", "bob", "--ack-within", "40d", "--yes", "--json"]);
    let j: serde_json::Value = serde_json::from_slice(&e.stdout).expect("a JSON error");
    assert_eq!((j["error"]["code"].as_str(), j["error"]["exit_code"].as_u64()), (Some("bad_request"), Some(1)), "{j}");
    assert!(j["error"]["message"].as_str().unwrap().contains("acknowledge-within must be between"), "{j}");

    // Issue 24, item 4: times in local time with the offset, deadlines
    // said as people say them; --utc for UTC.
    let local = env.ok("bob", &["inbox"]);
    assert!(local.contains("acknowledge by ") && (local.contains("(in 3h59m") || local.contains("(in 4h")), "{local}");
    assert!(!local.contains("Z  from alice") && (local.contains(" +") || local.contains(" -")), "{local}");
    let utc = env.ok("bob", &["inbox", "--utc"]);
    assert!(utc.contains("Z  from alice"), "{utc}");
    // Issue 24, item 7: a reader that goes away (`| head -0`) ends a
    // listing quietly, never with a panic.
    for (who, args) in [
        ("bob", vec!["inbox"]),
        ("alice", vec!["outbox"]),
        ("bob", vec!["directory"]),
        ("admin", vec!["admin", "transfers"]),
        ("admin", vec!["admin", "org", "list"]),
        ("alice", vec!["custody", &one]),
        ("bob", vec!["inbox", "--json"]),
    ] {
        let mut c = Command::new(env!("CARGO_BIN_EXE_exhibit"));
        c.env("EXHIBIT_HOME", env.home(who)).env_remove("EXHIBIT_PASSPHRASE_FILE").args(&args);
        c.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && !err.contains("panicked"), "{args:?}: {:?} {err}", out.status);
    }

    // Issue 24, item 3: a near miss is answered with the id meant; a
    // revoked user is said to be revoked, not unknown.
    let e = env.run("alice", &["send", file.to_str().unwrap(), "--to", "bobb", "--yes"]);
    let err = String::from_utf8_lossy(&e.stderr);
    assert!(err.contains("no enrolled user bobb; did you mean bob?"), "{err}");

    // Issue 24, item 7: alerts in JSON name their kind in snake_case and
    // their transfer in hex.
    env.ok("admin", &["admin", "user", "revoke", "bob"]);
    let e = env.run("alice", &["send", file.to_str().unwrap(), "--to", "bob", "--yes"]);
    let err = String::from_utf8_lossy(&e.stderr);
    assert!(err.contains("bob (bob) was revoked on ") && err.contains("can no longer receive"), "{err}");
    let listed = env.json("alice", &["directory", "bob"]);
    assert!(listed[0]["revoked_at"].is_u64(), "{listed}");
    assert!(env.ok("alice", &["directory", "bob"]).contains("REVOKED"));
    let alerts = env.json("admin", &["admin", "alerts"]);
    let a = &alerts[0];
    assert_eq!(
        (a["kind"].as_str(), a["detail"]["user"].as_str()),
        (Some("revoked_recipient"), Some("bob")),
        "{alerts}"
    );
    assert_eq!(a["transfer"].as_str(), Some(two.as_str()), "{alerts}");
    // An alert is acknowledged by the id the list shows, `#` and all.
    let id = format!("#{}", a["id"]);
    env.ok("admin", &["admin", "alerts", "ack", &id, "--note", "bob left the CPS; resent to his successor"]);
    assert!(env.json("admin", &["admin", "alerts"]).as_array().unwrap().is_empty());
}

#[test]
fn a_server_that_shows_a_shorter_log_is_refused_with_exit_code_3_and_a_fork_report() {
    let (env, admin_code) = start();
    env.enrol("admin", &admin_code);
    let none = env.json("admin", &["audit", "heads"]);
    assert!(none.is_null(), "{none}");
    env.ok("admin", &["admin", "user", "list"]);
    let held = env.json("admin", &["audit", "heads"]);
    let size = held["size"].as_u64().unwrap();
    assert!(size > 0 && held["root"].as_str().unwrap().len() == 64, "{held}");
    let out = env.run("admin", &["audit", "heads"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("entries:   {size}")));

    // The server now presents the log as it was two entries earlier.
    let mut tx = env.state.meta.write().unwrap();
    tx.set_counter(exhibit_server::app::tree::TREE_SIZE, size - 2).unwrap();
    tx.commit().unwrap();
    let out = env.run("admin", &["admin", "user", "list"]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("AUDIT LOG FORKED") && err.contains("rolled back"), "{err}");
    let reports: Vec<_> = std::fs::read_dir(env.home("admin"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("fork-report-"))
        .collect();
    assert_eq!(reports.len(), 1);
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&reports[0]).unwrap()).unwrap();
    assert_eq!(report["held"]["size"], size);
    assert_eq!(report["presented"]["size"], size - 2);
    assert_eq!(report["presented_by"], "the server");
    // The held head stays: the next command is refused too.
    assert_eq!(env.json("admin", &["audit", "heads"])["size"], size);
    assert_eq!(env.run("admin", &["admin", "user", "list"]).status.code(), Some(3));
}

#[test]
fn witnesses_are_trusted_by_key_and_audit_heads_says_what_is_final() {
    let (env, admin_code) = start();
    env.enrol("admin", &admin_code);
    // A key that is not one is refused, and nothing is trusted.
    let out = env.run("admin", &["audit", "witness", "add", "cps-witness", "not-a-key"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("witness key"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = env.ok("admin", &["audit", "heads", "--check"]);
    assert!(out.contains("final head: no witness trusted"), "{out}");

    let key = exhibit_proto::tlog::cosign::key_text(&ed25519_dalek::SigningKey::from_bytes(&[4; 32]).verifying_key());
    env.ok("admin", &["audit", "witness", "add", "cps-witness", &key]);
    let list = env.json("admin", &["audit", "witness", "list"]);
    assert_eq!(list[0]["name"], "cps-witness");
    assert_eq!(list[0]["key"], key.as_str());
    // Trusted, contacted, nothing cosigned (this server has no witness).
    let out = env.ok("admin", &["audit", "heads", "--check"]);
    assert!(out.contains("final head: none cosigned yet by a trusted witness"), "{out}");
    let heads = env.json("admin", &["audit", "heads"]);
    assert!(heads["size"].as_u64().unwrap() > 0, "{heads}");
    assert!(heads["final"].is_null(), "{heads}");
    assert_eq!(heads["witnesses"][0], "cps-witness");

    env.ok("admin", &["audit", "witness", "remove", "cps-witness"]);
    assert!(env.json("admin", &["audit", "witness", "list"]).as_array().unwrap().is_empty());
    assert!(!env.run("admin", &["audit", "witness", "remove", "cps-witness"]).status.success());
}
