//! A deployment whose authority key is kept off the server (`exhibitd
//! init --offline-authority`), run the way its operators and users run it:
//! the real `exhibitd` (init, serve, authority, backup, restore) and
//! `exhibit` binaries, on loopback.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use exhibit_proto::frame::{Request, Response};
use exhibit_proto::offline::{EnrolmentApproval, LogKeyCert};

use crate::failover::{exhibitd, free_tcp, free_udp, Exhibitd};

struct Deployment {
    dir: tempfile::TempDir,
    exhibitd: PathBuf,
    exhibit: PathBuf,
    data: PathBuf,
    authority: PathBuf,
    ca: String,
    addr: String,
}

impl Deployment {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn home(&self, who: &str) -> PathBuf {
        self.path(&format!("home-{who}"))
    }

    fn exhibitd(&self, args: &[&str]) -> Output {
        Command::new(&self.exhibitd).args(args).stdin(std::process::Stdio::null()).output().unwrap()
    }

    /// `exhibit` as `who`: the admin's keys are under a passphrase (read
    /// from a file), everyone else's not.
    fn exhibit(&self, who: &str, args: &[&str]) -> Output {
        let mut c = Command::new(&self.exhibit);
        c.env("EXHIBIT_HOME", self.home(who)).env_remove("EXHIBIT_PASSPHRASE_FILE");
        if who == "admin" {
            c.env("EXHIBIT_PASSPHRASE_FILE", self.path("passphrase"));
        }
        c.args(args).stdin(std::process::Stdio::null()).output().unwrap()
    }

    fn ok(&self, who: &str, args: &[&str]) -> String {
        let out = self.exhibit(who, args);
        assert!(out.status.success(), "exhibit {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, who: &str, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        serde_json::from_str(&self.ok(who, &a)).unwrap()
    }

    fn authority_ok(&self, args: &[&str]) -> String {
        let out = self.exhibitd(args);
        assert!(out.status.success(), "exhibitd {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// `who` redeems `code`: the server writes a request and the keys wait
    /// in the home; the authority approves it; `who` finishes with the
    /// approval. Returns the approval file.
    fn enrol(&self, who: &str, code: &str) -> PathBuf {
        let code_file = self.path(&format!("code-{who}"));
        std::fs::write(&code_file, code).unwrap();
        let code_file = code_file.to_str().unwrap();
        let mut args = vec!["enrol", "--server", &self.addr, "--code-file", code_file, "--ca", &self.ca];
        if who != "admin" {
            args.push("--no-passphrase");
        }
        let pending = self.json(who, &args);
        assert_eq!(pending["pending"], true, "{pending}");
        let file = pending["request"].as_str().unwrap().to_owned();
        assert_eq!(file, format!("enrol-{who}.json"));
        let request = self.data.join("requests").join(&file);
        assert!(request.is_file(), "the server wrote no request {}", request.display());
        assert!(!self.home(who).join("client.toml").exists(), "not enrolled before the approval");
        if who == "admin" {
            // Keys waiting for the approval are under the passphrase, sent
            // again or not.
            let age_key = std::fs::read(self.home(who).join("age.key")).unwrap();
            assert!(!contains(&age_key, b"AGE-SECRET-KEY"), "the waiting age key is encrypted");
        }
        let said = self.authority_ok(&[
            "authority",
            "approve-enrolment",
            "--authority",
            self.authority.to_str().unwrap(),
            request.to_str().unwrap(),
        ]);
        assert!(said.contains(pending["fingerprint"].as_str().unwrap()), "the authority is shown the keys: {said}");
        let approval = self.data.join("requests").join(format!("enrol-{who}.approved.json"));
        let done = self.json(who, &["enrol", "--approval", approval.to_str().unwrap()]);
        assert_eq!(done["user"], who);
        assert_eq!(done["fingerprint"], pending["fingerprint"]);
        approval
    }
}

/// Every file under `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else if p.is_file() {
            // (not the control socket)
            out.push(p);
        }
    }
    out
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// The authority's private key as bytes that could turn up in a file: the
/// PEM's base64 body and the 32-byte seed.
fn authority_secrets(dir: &Path) -> (String, Vec<u8>) {
    let pem = std::fs::read_to_string(dir.join("authority.key")).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = exhibit_proto::cert::pem_der(pem.as_bytes()).unwrap();
    (body, der[der.len() - 32..].to_vec())
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_authority_approves_each_enrolment_and_the_server_never_holds_its_key() {
    let Some(exhibitd_bin) = exhibitd() else { return };
    let exhibit_bin = exhibitd_bin.with_file_name("exhibit");
    assert!(exhibit_bin.is_file(), "{} is not built", exhibit_bin.display());
    let dir = tempfile::tempdir().unwrap();
    let (data, authority) = (dir.path().join("data"), dir.path().join("authority"));
    let (quic, tcp) = (free_udp(), free_tcp());
    let init = Command::new(&exhibitd_bin)
        .args(["init", "--data", data.to_str().unwrap(), "--listen", &quic.to_string()])
        .args(["--listen-tcp", &tcp.to_string(), "--offline-authority", authority.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
    let out: serde_json::Value = serde_json::from_slice(&init.stdout).unwrap();
    let d = Deployment {
        exhibitd: exhibitd_bin.clone(),
        exhibit: exhibit_bin,
        data: data.clone(),
        authority: authority.clone(),
        ca: out["ca"].as_str().unwrap().to_owned(),
        addr: quic.to_string(),
        dir,
    };
    // The authority's key is where it was put, for its owner alone; the
    // data directory has a log key and its certificate instead.
    assert_eq!((mode(&authority), mode(&authority.join("authority.key"))), (0o700, 0o600));
    assert!(!data.join("authority.key").exists());
    assert_eq!(mode(&data.join("log.key")), 0o600);
    let ca_pem = std::fs::read(&d.ca).unwrap();
    assert_eq!(ca_pem, std::fs::read(authority.join("ca.pem")).unwrap());
    let ca_key = exhibit_proto::cert::ed25519_key_from_pem(&ca_pem).unwrap();
    let log_cert: LogKeyCert = serde_json::from_slice(&std::fs::read(data.join("log-key.json")).unwrap()).unwrap();
    let log_key = log_cert.verify(&ca_key).unwrap();
    assert_ne!(log_key, ca_key);

    // A second organisation witnesses this log.
    let wdir = d.path("witness");
    let w = d.authority_ok(&["witness", "init", "--dir", wdir.to_str().unwrap(), "--name", "cps-witness"]);
    let wkey = w.lines().find_map(|l| l.strip_prefix("witness key: ")).unwrap().to_owned();
    let config = data.join("exhibitd.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!("\n[[witness]]\nname = \"cps-witness\"\nkey = \"{wkey}\"\n"));
    // And the dashboard, over HTTPS with the certificate the authority
    // issued into the data directory at init.
    let dashboard = free_tcp();
    let token = "an admin token of at least thirty-two characters";
    text.push_str(&format!("\n[dashboard]\nlisten = \"{dashboard}\"\nadmin_token = \"{token}\"\ntls = \"on\"\n"));
    std::fs::write(&config, text).unwrap();

    let server = Exhibitd::start(&exhibitd_bin, &config, &d.path("exhibitd.log"));
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from(exhibit_proto::cert::pem_der(&ca_pem).unwrap())).unwrap();
    let page = crate::web::https(dashboard, roots, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert!(page.as_ref().is_ok_and(|p| p.starts_with("HTTP/1.1 200") && p.contains("admin login")), "{page:?}");
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f =
            std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(d.path("passphrase")).unwrap();
        std::io::Write::write_all(&mut f, b"correct horse battery staple\n").unwrap();
    }

    // The first admin waits for the authority like everyone else. Asked
    // again before the approval, the same keys are sent again.
    let code = out["admin_code"].as_str().unwrap();
    std::fs::write(d.path("code-admin"), code).unwrap();
    let again = d.json(
        "admin",
        &["enrol", "--server", &d.addr, "--code-file", d.path("code-admin").to_str().unwrap(), "--ca", &d.ca],
    );
    assert_eq!(again["pending"], true);
    assert!(d.home("admin").join("enrolment-request.json").is_file());
    d.enrol("admin", code);
    assert!(!d.home("admin").join("pending-enrolment.json").exists());
    assert!(!d.home("admin").join("enrolment-request.json").exists());
    assert_eq!(d.json("admin", &["whoami"])["role"], "admin");

    // Organisations need the authority's signature: refused by the
    // server, signed where the key is, imported by an admin.
    let refused =
        d.exhibit("admin", &["admin", "org", "add", "kent-police", "--name", "Kent Police", "--kind", "police"]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("authority offline") && err.contains("exhibitd authority org add"), "{err}");
    for (id, name, kind) in [("kent-police", "Kent Police", "police"), ("cps-se", "CPS South East", "cps")] {
        let file = d.path(&format!("{id}.json"));
        let a = authority.to_str().unwrap();
        // The record goes to a file: --out is required.
        let out = d.exhibitd(&["authority", "org", "add", "--authority", a, id, "--name", name, "--kind", kind]);
        assert!(!out.status.success());
        d.authority_ok(&[
            "authority",
            "org",
            "add",
            "--authority",
            a,
            id,
            "--name",
            name,
            "--kind",
            kind,
            "--out",
            file.to_str().unwrap(),
        ]);
        let j = d.json("admin", &["admin", "org", "import", file.to_str().unwrap()]);
        assert_eq!((j["org"].as_str(), j["replaced"].as_bool()), (Some(id), Some(false)));
    }
    // A record signed by another authority is refused before it is sent.
    let other = d.path("other-authority");
    let other_data = d.path("other-data");
    let made = d.exhibitd(&[
        "init",
        "--data",
        other_data.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--offline-authority",
        other.to_str().unwrap(),
    ]);
    assert!(made.status.success());
    let forged = d.path("forged-org.json");
    d.authority_ok(&[
        "authority",
        "org",
        "add",
        "--authority",
        other.to_str().unwrap(),
        "kent-police",
        "--name",
        "Not Kent Police",
        "--kind",
        "defence",
        "--out",
        forged.to_str().unwrap(),
    ]);
    let out = d.exhibit("admin", &["admin", "org", "import", forged.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not signed by this deployment's authority"));

    let a = d.json("admin", &["admin", "user", "add", "alice", "--org", "kent-police", "--role", "evidence-unit"]);
    let b = d.json("admin", &["admin", "user", "add", "bob", "--org", "cps-se", "--role", "caseworker"]);
    let c = d.json("admin", &["admin", "user", "add", "carol", "--org", "cps-se", "--role", "caseworker"]);
    let alices = d.enrol("alice", a["code"].as_str().unwrap());
    d.enrol("bob", b["code"].as_str().unwrap());

    // Carol waits. The server takes no approval but the authority's, for
    // this code's user, with the keys the request carried.
    let carol_code = c["code"].as_str().unwrap();
    std::fs::write(d.path("code-carol"), carol_code).unwrap();
    let carol_code_file = d.path("code-carol");
    let pending = d.json(
        "carol",
        &[
            "enrol",
            "--server",
            &d.addr,
            "--code-file",
            carol_code_file.to_str().unwrap(),
            "--ca",
            &d.ca,
            "--no-passphrase",
        ],
    );
    assert_eq!(pending["pending"], true);
    // Her client refuses alice's approval (other keys) before sending it.
    let out = d.exhibit("carol", &["enrol", "--approval", alices.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("other keys"), "{}", String::from_utf8_lossy(&out.stderr));
    // The server, sent them directly: alice's approval with carol's code,
    // and one signed by another authority.
    let ca_der = exhibit_proto::cert::pem_der(&ca_pem).unwrap();
    let ask = |req: Request| {
        let ca_der = ca_der.clone();
        let addr = d.addr.clone();
        async move {
            let conn = exhibit_client::conn::Conn::connect(&addr, &ca_der, None).await.unwrap();
            let r = conn.request(&req).await;
            conn.close();
            r
        }
    };
    let approval = EnrolmentApproval::from_json(&std::fs::read(&alices).unwrap()).unwrap();
    let r = ask(Request::EnrolApproved { code: carol_code.to_owned(), approval: approval.clone() }).await;
    let e = r.unwrap_err().to_string();
    assert!(e.contains("not for this code's user"), "{e}");
    let request = exhibit_proto::offline::EnrolmentRequest::from_json(
        &std::fs::read(d.data.join("requests/enrol-carol.json")).unwrap(),
    )
    .unwrap();
    let impostor = exhibit_server::authority::Authority::load(&other).unwrap().approve(&request, 0).unwrap();
    let r = ask(Request::EnrolApproved { code: carol_code.to_owned(), approval: impostor }).await;
    assert!(
        matches!(
            r,
            Err(exhibit_client::ClientError::Server { code: exhibit_proto::frame::ErrorCode::BadSignature, .. })
        ),
        "{r:?}"
    );
    // Nor a wrong code with a good approval, nor a good approval whose
    // certificate is someone else's (bob's: it would become carol's) or
    // not the authority's.
    let real = exhibit_server::authority::Authority::load(&authority).unwrap().approve(&request, 0).unwrap();
    let r = ask(Request::EnrolApproved { code: "not-the-code".into(), approval: real.clone() }).await;
    assert!(r.unwrap_err().to_string().contains("unknown or already used enrolment code"));
    let bobs =
        EnrolmentApproval { cert_der: std::fs::read(d.home("bob").join("tls-cert.der")).unwrap(), ..real.clone() };
    let e = ask(Request::EnrolApproved { code: carol_code.to_owned(), approval: bobs }).await.unwrap_err().to_string();
    assert!(e.contains("not a new one for carol"), "{e}");
    let other_cert = exhibit_server::authority::Authority::load(&other).unwrap().approve(&request, 0).unwrap().cert_der;
    let r = ask(Request::EnrolApproved {
        code: carol_code.to_owned(),
        approval: EnrolmentApproval { cert_der: other_cert, ..real.clone() },
    })
    .await;
    assert!(
        matches!(
            r,
            Err(exhibit_client::ClientError::Server { code: exhibit_proto::frame::ErrorCode::BadSignature, .. })
        ),
        "{r:?}"
    );
    assert!(!d.home("carol").join("client.toml").exists());
    assert_eq!(d.json("bob", &["whoami"])["user"], "bob", "bob's certificate is still his");
    // Her own approval enrols her.
    let carols = d.path("carol.approved.json");
    std::fs::write(&carols, serde_json::to_vec(&real).unwrap()).unwrap();
    assert_eq!(d.json("carol", &["enrol", "--approval", carols.to_str().unwrap()])["user"], "carol");
    // Anyone may ask which key signs the log.
    match ask(Request::LogKey).await.unwrap() {
        Response::LogKey { cert } => assert_eq!(cert.as_ref(), Some(&log_cert)),
        r => panic!("{r:?}"),
    }

    // Evidence moves as ever; the log is signed with the log key.
    let file = d.path("ABE-1.mp4");
    std::fs::write(&file, vec![7u8; 300_000]).unwrap();
    let sent = d.json("alice", &["send", file.to_str().unwrap(), "--to", "bob", "--case", "OP9", "--yes"]);
    let t = sent["transfer"].as_str().unwrap().to_owned();
    let got = d.path("got");
    d.ok("bob", &["fetch", &t, "-o", got.to_str().unwrap()]);
    assert_eq!(std::fs::read(got.join("ABE-1.mp4")).unwrap(), std::fs::read(&file).unwrap());
    for who in ["alice", "bob"] {
        let held: exhibit_proto::tlog::HeldHead =
            serde_json::from_slice(&std::fs::read(d.home(who).join("tree-head.json")).unwrap()).unwrap();
        held.signed.verify(&log_key).unwrap();
        assert!(held.signed.verify(&ca_key).is_err(), "heads are not signed with the authority key");
        let kept: LogKeyCert =
            serde_json::from_slice(&std::fs::read(d.home(who).join("log-key.json")).unwrap()).unwrap();
        assert_eq!(kept, log_cert);
    }
    // The witness learns the log key from the log (checked against the
    // CA), keeps it, and cosigns; a client trusting it takes the head as
    // final.
    let out =
        d.exhibitd(&["witness", "run", "--once", "--dir", wdir.to_str().unwrap(), "--log", &d.addr, "--ca", &d.ca]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let kept: LogKeyCert = serde_json::from_slice(&std::fs::read(wdir.join("log-key.json")).unwrap()).unwrap();
    assert_eq!(kept, log_cert);
    d.ok("alice", &["audit", "witness", "add", "cps-witness", &wkey]);
    let heads = d.json("alice", &["audit", "heads", "--check"]);
    assert!(heads["final"]["size"].as_u64().unwrap() > 0, "{heads}");

    // The receipt verifies offline with the CA certificate alone: the
    // bundle carries the authority's certificate of the log key.
    let receipt = d.path("receipt.json");
    d.ok("alice", &["receipt", "export", &t, "-o", receipt.to_str().unwrap()]);
    let bundle: serde_json::Value = serde_json::from_slice(&std::fs::read(&receipt).unwrap()).unwrap();
    assert!(bundle["log_key"].is_object(), "{bundle}");
    let v = d.json("nobody", &["receipt", "verify", receipt.to_str().unwrap(), "--ca", &d.ca]);
    assert_eq!((&v["valid"], &v["summary"]["recipient"]), (&serde_json::json!(true), &serde_json::json!("bob")));
    assert!(v["summary"]["in_log"].is_object(), "the acceptance is proven in the log: {v}");
    // A log key the authority did not certify is refused: the bundle's,
    // and the one a client keeps.
    let mut swapped = bundle.clone();
    let stranger = LogKeyCert::issue(
        &ed25519_dalek::SigningKey::from_bytes(&[5; 32]),
        &ed25519_dalek::SigningKey::from_bytes(&[6; 32]).verifying_key(),
        1,
    );
    swapped["log_key"] = serde_json::to_value(&stranger).unwrap();
    std::fs::write(&receipt, serde_json::to_vec(&swapped).unwrap()).unwrap();
    let out = d.exhibit("nobody", &["receipt", "verify", receipt.to_str().unwrap(), "--ca", &d.ca]);
    assert!(!out.status.success());
    let kept = d.home("bob").join("log-key.json");
    let real = std::fs::read(&kept).unwrap();
    std::fs::write(&kept, serde_json::to_vec(&stranger).unwrap()).unwrap();
    let out = d.exhibit("bob", &["inbox"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("log key"), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(&kept, real).unwrap();
    d.ok("bob", &["inbox"]);

    // A renewal waits for the authority like an enrolment: the request,
    // the approval, then the new certificate installed on a connection
    // made with the old one. Nothing changes before.
    let old_cert = std::fs::read(d.home("bob").join("tls-cert.der")).unwrap();
    let asked = d.json("bob", &["renew"]);
    assert_eq!(
        (asked["pending"].as_bool(), asked["request"].as_str()),
        (Some(true), Some("renew-bob.json")),
        "{asked}"
    );
    assert_eq!(std::fs::read(d.home("bob").join("tls-cert.der")).unwrap(), old_cert);
    let request = data.join("requests/renew-bob.json");
    let said = d.authority_ok(&[
        "authority",
        "approve-renewal",
        "--authority",
        authority.to_str().unwrap(),
        request.to_str().unwrap(),
    ]);
    assert!(said.contains("new client certificate for bob"), "{said}");
    let renewal = data.join("requests/renew-bob.approved.json");
    // Not alice's to install: her client refuses it, and so does the
    // server when asked directly.
    let out = d.exhibit("alice", &["renew", "--approval", renewal.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not for you"), "{}", String::from_utf8_lossy(&out.stderr));
    let approval = exhibit_proto::offline::RenewalApproval::from_json(&std::fs::read(&renewal).unwrap()).unwrap();
    let alice = exhibit_client::Home::new(d.home("alice")).load().unwrap();
    let conn = exhibit_client::conn::Conn::open(&alice).await.unwrap();
    let r = conn.request(&Request::RenewApproved { approval }).await;
    conn.close();
    assert!(
        matches!(r, Err(exhibit_client::ClientError::Server { code: exhibit_proto::frame::ErrorCode::Forbidden, .. })),
        "{r:?}"
    );
    let done = d.json("bob", &["renew", "--approval", renewal.to_str().unwrap()]);
    assert!(done["certificate_expires"].as_u64().is_some(), "{done}");
    assert_ne!(std::fs::read(d.home("bob").join("tls-cert.der")).unwrap(), old_cert);
    assert_eq!(d.json("bob", &["whoami"])["user"], "bob");

    // What needs the authority and has no file step says so, and leaves
    // nothing behind.
    let unit = ["admin", "unit", "add", "cps-se-mags", "--org", "cps-se", "--name", "Magistrates' court unit"];
    let out = d.exhibit("admin", &unit);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("a unit's record needs the authority's signature"));
    assert_eq!(d.json("admin", &["units", "--all"])["units"].as_array().map(Vec::len), Some(0));
    // The server's certificates are renewed by request: the keys are made
    // on the server and stay there; the authority signs; the server
    // installs. Users pin the CA, so they go on.
    let before = std::fs::read(data.join("server.pem")).unwrap();
    let (key_before, web_before) =
        (std::fs::read(data.join("server.key")).unwrap(), std::fs::read(data.join("web.pem")).unwrap());
    let said = d.exhibitd(&["rotate-cert", "--data", data.to_str().unwrap()]);
    assert!(said.status.success(), "{}", String::from_utf8_lossy(&said.stderr));
    assert!(String::from_utf8_lossy(&said.stdout).contains("exhibitd authority issue-server-cert"));
    let request = data.join("requests/server-cert.json");
    assert_eq!(std::fs::read(data.join("server.pem")).unwrap(), before, "nothing changes before the approval");
    let a = authority.to_str().unwrap();
    // Another authority's certificates are refused, and change nothing.
    d.authority_ok(&[
        "authority",
        "issue-server-cert",
        "--authority",
        other.to_str().unwrap(),
        request.to_str().unwrap(),
        "--out",
        d.path("other-cert.json").to_str().unwrap(),
    ]);
    let out = d.exhibitd(&[
        "rotate-cert",
        "--data",
        data.to_str().unwrap(),
        "--approval",
        d.path("other-cert.json").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not this authority's"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(data.join("server.pem")).unwrap(), before);
    d.authority_ok(&["authority", "issue-server-cert", "--authority", a, request.to_str().unwrap()]);
    let approved = data.join("requests/server-cert.approved.json");
    let text = std::fs::read_to_string(&approved).unwrap() + &std::fs::read_to_string(&request).unwrap();
    assert!(!text.contains("PRIVATE KEY"), "no key travels");
    let out = d.exhibitd(&["rotate-cert", "--data", data.to_str().unwrap(), "--approval", approved.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("now uses"), "the running server reloaded");
    assert_ne!(std::fs::read(data.join("server.pem")).unwrap(), before);
    assert_ne!(std::fs::read(data.join("server.key")).unwrap(), key_before);
    assert_ne!(std::fs::read(data.join("web.pem")).unwrap(), web_before);
    // Installed once: a second time there is no key waiting for it.
    let out = d.exhibitd(&["rotate-cert", "--data", data.to_str().unwrap(), "--approval", approved.to_str().unwrap()]);
    assert!(!out.status.success());
    d.ok("alice", &["outbox"]);
    // The log (signed with the log key) verifies whole, and records each
    // request written for the authority.
    let v = d.json("admin", &["admin", "audit", "verify"]);
    assert!(v["entries"].as_u64().unwrap() > 20, "{v}");
    let log = d.json("admin", &["admin", "audit", "export"]);
    let actions: Vec<&str> = log.as_array().unwrap().iter().filter_map(|e| e["body"]["action"].as_str()).collect();
    assert!(actions.iter().filter(|a| **a == "enrol-request").count() >= 5, "{actions:?}");
    assert_eq!(actions.iter().filter(|a| **a == "renew-request").count(), 1, "{actions:?}");
    // Revocation needs no authority: it bites at once.
    d.ok("admin", &["admin", "user", "revoke", "bob"]);
    assert!(!d.exhibit("bob", &["inbox"]).status.success());

    // A backup holds the log key, not the authority's; restored, it runs.
    let backup = d.path("backup.tar");
    let out = d.exhibitd(&["backup", "--data", data.to_str().unwrap(), "--out", backup.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    drop(server);
    let restored = d.path("restored");
    let out = d.exhibitd(&["restore", "--from", backup.to_str().unwrap(), "--data", restored.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(restored.join("log.key").is_file() && !restored.join("authority.key").exists());

    // Nowhere in the data directory (keys, config, requests, metadata,
    // chunks), nor its backup, nor the restored copy, is the authority's
    // private key.
    let (pem_body, seed) = authority_secrets(&authority);
    let mut looked = 0;
    for f in files(&data).into_iter().chain(files(&restored)).chain([backup.clone()]) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(!contains(&bytes, pem_body.as_bytes()), "{} holds the authority key (PEM)", f.display());
        assert!(!contains(&bytes, &seed), "{} holds the authority key", f.display());
        looked += 1;
    }
    assert!(looked > 10, "{looked} files");
}
