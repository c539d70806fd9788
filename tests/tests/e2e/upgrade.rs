//! A data directory written by an earlier release still serves: the
//! fixture was made by the release whose metadata is redb 2.6.4 (file
//! format v2); see tests/fixtures/README.md.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use exhibit_client::{listing, receipt, Home};
use exhibit_proto::frame::DeliveryState;
use exhibit_proto::org::OrgKind;
use exhibit_proto::TransferId;
use exhibit_server::config::Config;
use exhibit_server::{Server, SystemClock};

use crate::fixture::*;

const RELEASE_REDB2: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/release-0.1-redb2.tar.gz");

/// Start a server on `data` on a free loopback port and point `home` at it.
async fn serve(data: &Path, home: &Home) -> Server {
    let path = data.join(exhibit_server::CONFIG_FILE);
    let mut config = Config::read(&path).unwrap();
    config.listen = "127.0.0.1:0".parse().unwrap();
    std::fs::write(&path, exhibit_server::config::to_toml(&config).unwrap()).unwrap();
    let server = Server::start(Config::load(&path).unwrap(), Arc::new(SystemClock)).await.unwrap();
    let client = home.dir().join("client.toml");
    let text = std::fs::read_to_string(&client).unwrap();
    let text: String = text
        .lines()
        .map(|l| {
            if l.starts_with("server = ") {
                format!("server = \"{}\"\n", server.local_addr())
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&client, text).unwrap();
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_from_the_redb_2_release_is_upgraded_and_serves_a_fetch() {
    let dir = tempfile::tempdir().unwrap();
    let unpacked = std::process::Command::new("tar").arg("-xzf").arg(RELEASE_REDB2).current_dir(dir.path()).status();
    assert!(unpacked.unwrap().success(), "could not unpack {RELEASE_REDB2}");
    let (data, bob) = (dir.path().join("data"), Home::new(dir.path().join("home-bob")));
    let t: TransferId = std::fs::read_to_string(dir.path().join("transfer")).unwrap().trim().parse().unwrap();
    let expiry = exhibit_client::renew::cert_expiry(&bob.load().unwrap().tls_cert).unwrap();
    let now = exhibit_server::clock::Clock::now(&SystemClock);
    assert!(now < expiry, "the fixture's certificates have expired: make it again (tests/fixtures/README.md)");
    let meta = data.join(exhibit_server::meta::META_FILE);
    let original = std::fs::read(&meta).unwrap();

    // The new build opens the old file: upgraded, the original kept.
    let server = serve(&data, &bob).await;
    let out = dir.path().join("received");
    let got = fetch_to(&bob, t, &out).await.unwrap();
    assert_eq!(tree(&out), tree(&dir.path().join("sent")), "the fetched files are the ones sent");
    assert!(got.receipt.is_some(), "the server accepted bob's receipt");
    // Free-text organisations became records (by what their users do), the
    // users point at them, and bob's client took his re-signed entry (same
    // keys) when the server showed it.
    let orgs: Vec<(String, String, OrgKind)> = exhibit_server::app::orgs::list_records(server.state())
        .unwrap()
        .into_iter()
        .map(|o| (o.org.id.to_string(), o.org.name, o.org.kind))
        .collect();
    assert_eq!(
        orgs,
        [("exhibit".into(), "exhibit".into(), OrgKind::Other), ("test-org".into(), "Test Org".into(), OrgKind::Cps)]
    );
    let me = bob.load().unwrap().me;
    assert_eq!(me.org, "test-org");
    let r = server.state().meta.read().unwrap();
    assert_eq!(r.user(&uid("alice")).unwrap().unwrap().org, "test-org");
    drop(r);
    server.shutdown().await;
    let kept = data.join("meta.redb.format-v2");
    assert_eq!(std::fs::read(&kept).unwrap(), original, "the file as the release left it is kept");
    let upgraded = std::fs::metadata(&meta).unwrap().ino();

    // Opened again: nothing to upgrade, the file is the same one, and the
    // receipt is still there.
    let server = serve(&data, &bob).await;
    assert_eq!(std::fs::metadata(&meta).unwrap().ino(), upgraded, "upgraded a second time");
    let inbox = listing::fetch_list(&bob, true).await.unwrap();
    let info = inbox.iter().find(|i| i.transfer == t).unwrap();
    assert!(matches!(info.recipients[0].state, DeliveryState::Acknowledged), "{info:?}");
    let bundle = receipt::bundle(&bob, t, None).await.unwrap();
    let file = dir.path().join("receipt.json");
    receipt::write(&bundle, &file).unwrap();
    assert_eq!(receipt::verify_file(&file, &data.join("ca.pem")).unwrap().transfer, t.to_string());
    server.shutdown().await;
    assert_eq!(std::fs::read(&kept).unwrap(), original);
}
