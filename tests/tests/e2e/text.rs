//! Issue 25: control characters and bidi controls in shown text and file
//! names are refused at input on both ends, and what was stored before the
//! rule is shown escaped; a revoked user's command stops at once.

use std::path::PathBuf;
use std::time::Duration;

use exhibit_client::conn::Conn;
use exhibit_client::{admin, custody, listing, send, ClientError};
use exhibit_proto::directory::Role;
use exhibit_proto::frame::{ErrorCode, Response};
use exhibit_server::core::lifecycle::{self, Sealing};

use crate::fixture::*;

const HOSTILE_CASE: &str = "OP\u{1b}[31mRED\u{1b}[0m\rFAKE";
const CASE_SHOWN: &str = "OP\\u{1b}[31mRED\\u{1b}[0m\\u{d}FAKE";
const RLO_NAME: &str = "invoice\u{202e}txt.exe";

fn raw_free(s: &str) -> bool {
    !s.chars().any(|c| (c.is_control() && c != '\n') || exhibit_proto::text::is_bidi(c))
}

fn file_in(f: &Fixture, dir: &str, name: &str) -> PathBuf {
    let d = f.path(dir);
    std::fs::write(d.join(name), b"evidence").unwrap();
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue25_escape_sequences_in_case_and_note_are_refused_before_upload() {
    let f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    f.user("bob", Role::Caseworker).await;
    let src = file_in(&f, "src", "statement.pdf");
    for (case, note, field) in [
        (Some(HOSTILE_CASE), None, "case reference"),
        (Some("OP-1"), Some("\u{1b}[2J"), "note"),
        (Some("OP\u{202e}1"), None, "case reference"),
    ] {
        let mut o = send::SendOptions::new(vec![src.clone()], vec![uid("bob")]);
        o.case_ref = case.map(str::to_owned);
        o.note = note.map(str::to_owned);
        let e = send::send(&alice, o).await.unwrap_err().to_string();
        assert!(e.starts_with(field), "{e}");
        assert!(e.contains("U+001B") || e.contains("U+202E"), "{e}");
        assert!(raw_free(&e), "{e:?}");
    }
    // Nothing reached the server: no transfer, no chunk.
    assert!(listing::fetch_list(&alice, false).await.unwrap().is_empty());
    assert!(admin::transfers(&f.admin, false).await.unwrap().is_empty());
    assert_eq!(f.chunk_files(), Vec::<PathBuf>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue25_a_crafted_manifest_with_control_characters_in_its_case_is_refused_by_the_server() {
    let f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    f.user("bob", Role::Caseworker).await;
    let conn = Conn::open(&alice.load().unwrap()).await.unwrap();
    for case in [HOSTILE_CASE, "OP\u{2066}1", "OP\u{9b}1"] {
        let signed = crafted(&f, &conn, &alice, Some(case), "a.txt").await;
        match seal_request(&conn, &signed).await {
            Err(ClientError::Server { code: ErrorCode::BadRequest, message }) => {
                assert!(message.contains("case reference") && message.contains("U+"), "{message}")
            }
            other => panic!("{case:?}: sealed or wrong error: {other:?}"),
        }
    }
    // Still uploading: no seal happened, and nobody's inbox shows one.
    let out = listing::fetch_list(&alice, false).await.unwrap();
    assert!(out.len() == 3 && out.iter().all(|t| t.sealed_at.is_none()), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue25_a_case_stored_before_the_rule_is_shown_escaped_in_custody_and_listings() {
    let f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let conn = Conn::open(&alice.load().unwrap()).await.unwrap();
    let signed = crafted(&f, &conn, &alice, Some(HOSTILE_CASE), "a.txt").await;
    // Sealed as a server before the rule did: the same transition, the
    // text check left out.
    let m = signed.decode_unverified().unwrap();
    let s = f.state();
    let now = s.clock.now();
    exhibit_server::app::write(s, |tx| {
        let mut rec = tx.transfer(&m.transfer)?.unwrap();
        let sealing = Sealing {
            manifest_hash: signed.hash(),
            chunks: m.all_chunks().count() as u32,
            bytes: m.ciphertext_len(),
            items: m.item_count().map(|n| n as u64),
            case_ref: m.case_ref.clone(),
            policy: m.policy,
            approvers: m.approvers.clone(),
        };
        let fx = lifecycle::seal(&mut rec, &sealing, now, now + 86_400, now + 86_400)?;
        tx.put_manifest(&m.transfer, &signed)?;
        tx.put_transfer(&rec)?;
        exhibit_server::app::apply(s, tx, &m.transfer, fx)
    })
    .unwrap();

    let (report, _) = custody::custody(&alice, m.transfer).await.unwrap();
    assert_eq!(report.case_ref.as_deref(), Some(HOSTILE_CASE), "the report keeps the stored value");
    let text = custody::text(&report);
    assert!(text.contains(&format!("case reference   {CASE_SHOWN}")), "{text}");
    assert!(raw_free(&text), "{text:?}");
    // The seal's audit entry names the case: escaped there too.
    assert!(text.contains(CASE_SHOWN) && text.matches("\\u{1b}").count() >= 4, "{text}");
    let html = custody::html(&report);
    assert!(html.contains("OP\\u{1b}[31mRED") && raw_free(&html), "{html:?}");

    for listing in [
        listing::fetch_list(&bob, true).await.unwrap(),
        listing::fetch_list(&alice, false).await.unwrap(),
        admin::transfers(&f.admin, false).await.unwrap(),
    ] {
        let shown = exhibit_client::cli::print::transfers_text(&listing);
        assert!(shown.contains(&format!("case {CASE_SHOWN}")), "{shown}");
        assert!(raw_free(&shown), "{shown:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue25_a_bidi_override_file_name_is_refused_at_send() {
    let f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    f.user("bob", Role::Caseworker).await;
    let src = file_in(&f, "exhibits", RLO_NAME);
    let o = send::SendOptions::new(vec![src], vec![uid("bob")]);
    let e = send::send(&alice, o).await.unwrap_err().to_string();
    assert!(e.contains("exhibits/invoice\\u{202e}txt.exe"), "{e}");
    assert!(e.contains("bidirectional"), "{e}");
    assert!(raw_free(&e), "{e:?}");
    assert!(listing::fetch_list(&alice, false).await.unwrap().is_empty());
    assert_eq!(f.chunk_files(), Vec::<PathBuf>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue25_a_sealed_bidi_override_path_is_refused_at_fetch_with_nothing_written() {
    let f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let conn = Conn::open(&alice.load().unwrap()).await.unwrap();
    let parent = f.path("victim");
    for name in [RLO_NAME, "dir\u{2067}/x.pdf", "a\u{200f}.txt"] {
        let signed = crafted(&f, &conn, &alice, Some("OP-1"), name).await;
        assert!(matches!(seal_request(&conn, &signed).await.unwrap(), Response::Sealed { .. }));
        let t = signed.decode_unverified().unwrap().transfer;
        let e = fetch_to(&bob, t, &parent.join("out")).await.unwrap_err().to_string();
        assert!(e.contains("unsafe path") && e.contains("bidirectional"), "{name:?}: {e}");
        assert!(raw_free(&e), "{e:?}");
        assert_eq!(tree(&parent), vec![], "{name:?}: something was written");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue25_a_revoked_users_command_fails_at_once() {
    let f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let src = file_in(&f, "src", "statement.pdf");
    let t = send_paths(&alice, vec![src], &["bob"], 1 << 20).await;
    admin::revoke_user(&f.admin, uid("bob")).await.unwrap();
    let out = f.path("out").join("t");
    let bound = Duration::from_secs(5);
    let fetch = tokio::time::timeout(bound, fetch_to(&bob, t, &out)).await.expect("fetch retried after revocation");
    let e = fetch.unwrap_err();
    assert!(matches!(e, ClientError::Revoked { .. }), "{e:?}");
    assert!(e.to_string().contains("revoked"), "{e}");
    let list = tokio::time::timeout(bound, listing::fetch_list(&bob, true)).await.expect("listing retried");
    assert!(list.unwrap_err().to_string().contains("revoked"));
    let o = send::SendOptions::new(vec![file_in(&f, "src2", "b.pdf")], vec![uid("alice")]);
    let sent = tokio::time::timeout(bound, send::send(&bob, o)).await.expect("send retried after revocation");
    assert!(sent.unwrap_err().to_string().contains("revoked"));
}
