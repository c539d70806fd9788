//! The real exhibitd with its metadata in PostgreSQL (`EXHIBIT_TEST_POSTGRES`
//! names a database; without it the test is skipped, except under CI,
//! where it fails): a send, a fetch and the receipt, over loopback; and
//! `exhibitd backup` refused.

use exhibit_client::receipt;
use exhibit_proto::directory::Role;
use exhibit_server::config::{MetadataBackend, MetadataConfig};

use crate::fixture::*;

/// A scratch schema named `name` in the database `EXHIBIT_TEST_POSTGRES`
/// names, as metadata settings; `None` (skipped) without it, except under
/// CI, where it fails.
pub(crate) async fn scratch(name: &str) -> Option<MetadataConfig> {
    let url = match std::env::var("EXHIBIT_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => url,
        _ if std::env::var_os("CI").is_some() => panic!("CI is set but EXHIBIT_TEST_POSTGRES is not"),
        _ => {
            eprintln!("EXHIBIT_TEST_POSTGRES not set: skipped");
            return None;
        }
    };
    let schema = format!("e2e_{name}_{}", std::process::id());
    let url = tokio::task::spawn_blocking(move || exhibit_server::meta::postgres::scratch_schema(&url, &schema))
        .await
        .unwrap()
        .unwrap();
    Some(MetadataConfig { backend: MetadataBackend::Postgres, url: Some(url) })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_fetch_and_receipt_with_metadata_in_postgres() {
    let Some(meta) = scratch("one").await else { return };
    let f = Fixture::with_metadata(meta).await;
    // Nothing in the data directory's redb: the metadata is elsewhere.
    assert!(!f.data.join(exhibit_server::META_FILE).exists());
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let src = f.path("src");
    let data = bytes(300_000, 3);
    std::fs::write(src.join("a.bin"), &data).unwrap();
    let t = send_paths(&alice, vec![src.join("a.bin")], &["bob"], 64 * 1024).await;
    fetch_to(&bob, t, &f.path("out")).await.unwrap();
    assert_eq!(std::fs::read(f.path("out").join("a.bin")).unwrap(), data);
    let b = receipt::bundle(&alice, t, None).await.unwrap();
    let file = f.path("r").join("receipt.json");
    receipt::write(&b, &file).unwrap();
    let s = receipt::verify_file(&file, &f.ca).unwrap();
    assert_eq!((s.recipient.as_str(), s.transfer), ("bob", t.to_string()));
}

/// A running exhibitd on PostgreSQL: `exhibitd backup` refuses with its
/// typed error, before asking the server, and creates nothing; the server
/// itself, asked over its control socket (as an older `exhibitd backup`
/// would), sends nothing back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_of_a_running_postgres_node_is_refused() {
    use std::io::{Read, Write};
    let Some(meta) = scratch("backup").await else { return };
    let f = Fixture::with_metadata(meta).await;
    let backups = f.path("backups");
    let (data, out) = (f.data.clone(), backups.join("b.tar"));
    let e =
        tokio::task::spawn_blocking(move || exhibit_server::backup::backup(&data, &out)).await.unwrap().unwrap_err();
    assert!(matches!(e, exhibit_server::error::ServerError::BackupNeedsDatabaseTools), "{e}");
    assert_eq!(std::fs::read_dir(&backups).unwrap().count(), 0, "a refused backup wrote something");

    let sock = f.data.join(exhibit_server::backup::CONTROL_SOCKET);
    let answer = tokio::task::spawn_blocking(move || {
        let mut s = std::os::unix::net::UnixStream::connect(sock).unwrap();
        s.write_all(b"backup\n").unwrap();
        let mut got = vec![];
        s.read_to_end(&mut got).unwrap();
        got
    })
    .await
    .unwrap();
    assert!(answer.is_empty(), "the server streamed {} bytes of a backup of PostgreSQL metadata", answer.len());
}
