//! What the CLI tests share: a real server on loopback and the `exhibit`
//! binary run against it, one key directory per user.
#![allow(clippy::unwrap_used, dead_code)]

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

pub struct Env {
    pub _rt: tokio::runtime::Runtime,
    pub dir: tempfile::TempDir,
    /// The running server's state (its store, for tampering).
    pub state: Arc<exhibit_server::State>,
    pub addr: String,
    pub ca: String,
    /// EXHIBIT_PASSPHRASE_FILE for every command, when set; without it
    /// users enrol with --no-passphrase.
    pub passphrase: Option<String>,
}

pub fn start() -> (Env, String) {
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
    let state = server.state().clone();
    rt.spawn(server.wait());
    let ca = init.ca.to_str().unwrap().to_owned();
    (Env { _rt: rt, dir, state, addr, ca, passphrase: None }, init.admin_code)
}

impl Env {
    pub fn home(&self, who: &str) -> String {
        self.dir.path().join(format!("home-{who}")).to_str().unwrap().to_owned()
    }

    pub fn run(&self, who: &str, args: &[&str]) -> Output {
        self.run_with(who, args, self.passphrase.as_deref())
    }

    /// Run with EXHIBIT_PASSPHRASE_FILE set to `passphrase`, or unset.
    pub fn run_with(&self, who: &str, args: &[&str], passphrase: Option<&str>) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_exhibit"));
        c.env("EXHIBIT_HOME", self.home(who)).env_remove("EXHIBIT_PASSPHRASE_FILE").args(args);
        if let Some(p) = passphrase {
            c.env("EXHIBIT_PASSPHRASE_FILE", p);
        }
        c.stdin(std::process::Stdio::null()).output().unwrap()
    }

    /// A file only its owner can read, holding `text`.
    pub fn secret_file(&self, name: &str, text: &str) -> String {
        use std::os::unix::fs::OpenOptionsExt;
        let p = self.dir.path().join(name);
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&p).unwrap();
        std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
        p.to_str().unwrap().to_owned()
    }

    pub fn ok(&self, who: &str, args: &[&str]) -> String {
        let out = self.run(who, args);
        assert!(out.status.success(), "exhibit {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn json(&self, who: &str, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        serde_json::from_str(&self.ok(who, &a)).unwrap()
    }

    /// Enrol with the code in a file, with the passphrase file if the
    /// environment has one, else with --no-passphrase.
    pub fn enrol(&self, who: &str, code: &str) {
        let file = self.secret_file(&format!("code-{who}"), &format!("{code}\n"));
        let mut args = vec!["enrol", "--server", &self.addr, "--code-file", &file, "--ca", &self.ca];
        if self.passphrase.is_none() {
            args.push("--no-passphrase");
        }
        self.ok(who, &args);
    }
}

pub fn read_tree(p: &Path) -> Vec<(String, Vec<u8>)> {
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
