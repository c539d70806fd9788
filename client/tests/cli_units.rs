//! The README's unit example, as a user runs it: the `exhibit` binary
//! against a real server on loopback.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;

#[test]
fn readme_unit_example() {
    let (env, admin_code) = start();
    env.enrol("admin", &admin_code);
    env.ok("admin", &["admin", "org", "add", "kent-police", "--name", "Kent Police", "--kind", "police"]);
    env.ok("admin", &["admin", "org", "add", "cps-se", "--name", "CPS South East", "--kind", "cps"]);
    let add = |u: &str, org: &str, role: &str| {
        let c = env.json("admin", &["admin", "user", "add", u, "--org", org, "--role", role]);
        env.enrol(u, c["code"].as_str().unwrap());
    };
    add("alice", "kent-police", "evidence-unit");
    add("bob", "cps-se", "caseworker");
    add("erin", "cps-se", "caseworker");
    let unit = ["admin", "unit", "add", "cps-se-mags", "--org", "cps-se", "--name", "Magistrates' court unit"];
    env.ok("admin", &[&unit[..], &["--email", "mags@cps.example"]].concat());
    let added = env.json("admin", &["admin", "unit", "members", "cps-se-mags", "--add", "bob", "--add", "erin"]);
    assert_eq!(added["members"], serde_json::json!(["bob", "erin"]));
    assert_eq!(added["has_key"], false);

    // Before a member's client made the key, a send is refused, uploading nothing.
    let src = env.dir.path().join("case-OP8");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("ABE-2.mp4"), vec![5u8; 200_000]).unwrap();
    let send = ["send", src.to_str().unwrap(), "--to", "cps-se-mags", "--case", "OP8", "--yes"];
    let early = env.run("alice", &send);
    assert!(!early.status.success());
    assert!(String::from_utf8_lossy(&early.stderr).contains("no key"), "{}", String::from_utf8_lossy(&early.stderr));
    assert_eq!(env.json("alice", &["outbox"]).as_array().unwrap().len(), 0);

    let dir = env.ok("alice", &["directory"]);
    assert!(dir.contains("units (send to one with --to UNIT)") && dir.contains("cps-se-mags (Magistrates"), "{dir}");
    let made = env.ok("bob", &["units"]);
    assert!(
        made.contains("made its key for epoch 1") && made.contains("shared the key of epoch 1 with erin"),
        "{made}"
    );
    assert!(made.contains("every member holds the key"), "{made}");

    let u = env.json("alice", &[&send[..], &["--note", "ABE interview 2"]].concat())["transfer"]
        .as_str()
        .unwrap()
        .to_owned();
    // Erin sees what it holds before downloading it, opened with the unit's key.
    let shown = env.json("erin", &["show", &u]);
    assert_eq!((shown["unit"].as_str(), shown["note"].as_str()), (Some("cps-se-mags"), Some("ABE interview 2")));
    assert_eq!((shown["item_count"].as_u64(), shown["bytes"].as_u64()), (Some(1), Some(200_000)));
    assert_eq!(shown["items"][0]["path"], "case-OP8/ABE-2.mp4");
    let text = env.ok("erin", &["show", &u]);
    assert!(text.contains("note: ABE interview 2") && text.contains("case-OP8/ABE-2.mp4"), "{text}");
    assert!(env.json("erin", &["inbox"])[0]["recipients"][0]["state"] == "sealed", "show sent a receipt");
    let out = env.dir.path().join("erin-received");
    let fetched = env.json("erin", &["fetch", &u, "-o", out.to_str().unwrap()]);
    assert!(fetched["receipt"].is_object(), "{fetched}");
    assert_eq!(read_tree(&out), vec![("case-OP8/ABE-2.mp4".to_owned(), vec![5u8; 200_000])]);
    let inbox = env.ok("bob", &["inbox"]);
    assert!(inbox.contains("acknowledged for unit cps-se-mags by erin (ERIN)") || inbox.contains("by erin"), "{inbox}");
    let j = env.json("bob", &["inbox"]);
    assert_eq!(j[0]["unit_acks"][0]["member"], "erin");
    assert_eq!(j[0]["recipients"][0]["state"], "acknowledged");

    env.ok("admin", &["admin", "unit", "members", "cps-se-mags", "--remove", "erin"]);
    let refused = env.run("erin", &["fetch", &u, "-o", env.dir.path().join("again").to_str().unwrap()]);
    assert!(!refused.status.success(), "a removed member fetched");
    assert!(env.ok("bob", &["units"]).contains("made its key for epoch 2"));
    let listed = env.json("admin", &["admin", "unit", "list"]);
    assert_eq!(listed["units"][0]["epoch"], 2);
    assert_eq!(listed["units"][0]["members"], serde_json::json!(["bob"]));
}
