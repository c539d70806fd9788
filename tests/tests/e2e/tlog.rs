//! The audit log's Merkle tree and signed tree heads (issue 23): a server
//! that rolls its log back to an older backup, or rewrites an entry and
//! rebuilds its tree, is refused by every client that saw a later head,
//! which writes a fork report with both signed heads.

use std::path::{Path, PathBuf};

use exhibit_client::{audit, custody, heads, listing, ClientError, Home};
use exhibit_proto::audit::AuditEntry;
use exhibit_proto::directory::Role;
use exhibit_proto::receipt::ReceiptBundle;
use exhibit_proto::tlog::{Proof, SignedTreeHead};
use redb::{ReadableTable, TableDefinition};

use crate::fixture::*;

const AUDIT: TableDefinition<&[u8], &[u8]> = TableDefinition::new("audit");
const META: TableDefinition<&[u8], &[u8]> = TableDefinition::new("meta");

/// Alice sends Bob a file and he fetches it: every kind of entry.
pub(crate) async fn sent_and_fetched(f: &Fixture, alice: &Home, bob: &Home, seed: u64) {
    let src = f.path(&format!("src{seed}"));
    std::fs::write(src.join("a.bin"), bytes(3000, seed)).unwrap();
    let t = send_paths(alice, vec![src.join("a.bin")], &["bob"], 1024).await;
    fetch_to(bob, t, &f.path(&format!("out{seed}"))).await.unwrap();
}

pub(crate) fn held_size(h: &Home) -> u64 {
    heads::stored(h).unwrap().expect("a head is held after a contact").size
}

pub(crate) fn fork_reports(h: &Home) -> Vec<PathBuf> {
    std::fs::read_dir(h.dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("fork-report-"))
        .collect()
}

/// The refusal, its exit code, and the report's two heads, each checked
/// against the authority key: (held size, presented size).
pub(crate) fn refused(f: &Fixture, h: &Home, r: Result<impl std::fmt::Debug, ClientError>) -> (u64, u64) {
    let e = r.expect_err("a client that saw a later head went on");
    assert_eq!(e.exit_code(), 3, "{e}");
    let ClientError::LogForked { report, .. } = &e else { panic!("not reported as a fork: {e}") };
    assert!(e.to_string().contains("AUDIT LOG FORKED"), "{e}");
    assert!(fork_reports(h).contains(report), "{report:?} is not in the key directory");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(report).unwrap()).unwrap();
    let authority = f.state().keys.log().verifying_key();
    let head = |which: &str| {
        let signed: SignedTreeHead = serde_json::from_value(json[which]["signed"].clone()).unwrap();
        let head = signed.verify(&authority).unwrap();
        assert_eq!(json[which]["size"], head.size);
        assert_eq!(json[which]["root"], hex::encode(head.root));
        head
    };
    let (held, presented) = (head("held"), head("presented"));
    assert_ne!((held.size, held.root), (presented.size, presented.root));
    (held.size, presented.size)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_restored_from_an_older_backup_is_refused_by_a_client_that_saw_more() {
    let mut f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    sent_and_fetched(&f, &alice, &bob, 1).await;
    // A backup of the metadata, taken the way an operator would: server
    // stopped, file copied (same keys, same everything).
    let backup = f.path("backup").join("meta.redb");
    let b = backup.clone();
    f.restart_with(move |d| assert!(std::fs::copy(d.join("meta.redb"), &b).unwrap() > 0)).await;
    // More happens; Alice's last contact shows her the longer log.
    sent_and_fetched(&f, &alice, &bob, 2).await;
    listing::fetch_list(&alice, false).await.unwrap();
    let seen = held_size(&alice);
    assert!(fork_reports(&alice).is_empty());

    // The server's log is put back to the backup.
    f.restart_with(move |d| assert!(std::fs::copy(&backup, d.join("meta.redb")).unwrap() > 0)).await;
    let (held, presented) = refused(&f, &alice, listing::fetch_list(&alice, false).await);
    assert_eq!(held, seen);
    assert!(presented < held, "{presented} < {held}");
    assert_eq!(held_size(&alice), seen, "the held head stays, so the next contact refuses too");

    // Bob's last contact (his fetch) came after the backup too.
    assert_eq!(refused(&f, &bob, listing::fetch_list(&bob, false).await).0, held_size(&bob));

    // Once the log has grown past what she saw (users added and
    // enrolled), it is still not the log she saw.
    for i in 0..50 {
        f.user(&format!("newcomer{i}"), Role::Caseworker).await;
        let now = f.state().meta.read().unwrap().audit_last().unwrap().unwrap().body.seq;
        if now > seen {
            break;
        }
    }
    let (held, presented) = refused(&f, &alice, listing::fetch_list(&alice, false).await);
    assert!(presented > held, "{presented} > {held}");
    assert_eq!(fork_reports(&alice).len(), 2);
}

pub(crate) fn rewrite_entry(d: &Path, seq: u64) {
    let db = redb::Database::open(d.join("meta.redb")).unwrap();
    let tx = db.begin_write().unwrap();
    {
        let mut t = tx.open_table(AUDIT).unwrap();
        let get = |t: &redb::Table<&[u8], &[u8]>, s: u64| -> Option<AuditEntry> {
            t.get(s.to_be_bytes().as_slice())
                .unwrap()
                .map(|v| exhibit_proto::sign::decode(v.value(), "audit entry").unwrap())
        };
        // The entry changed and the chain after it re-made, so the chain
        // verifies again: only a head held from before can tell.
        let mut prev = get(&t, seq - 1).unwrap().hash;
        let mut s = seq;
        while let Some(mut e) = get(&t, s) {
            if s == seq {
                e.body.details = "nothing to see here".into();
            }
            let e = AuditEntry::new(e.body, prev);
            prev = e.hash;
            t.insert(s.to_be_bytes().as_slice(), exhibit_proto::sign::encode(&e).as_slice()).unwrap();
            s += 1;
        }
        // And the tree rebuilt from the entries as the server starts.
        tx.open_table(META).unwrap().remove(b"audit-tree-size".as_slice()).unwrap();
    }
    tx.commit().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewritten_entry_with_its_chain_and_tree_remade_is_refused() {
    let mut f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    sent_and_fetched(&f, &alice, &bob, 1).await;
    listing::fetch_list(&alice, false).await.unwrap();
    let seen = held_size(&alice);
    assert!(seen > 6);
    // The admin's whole-log check recomputes the tree from the entries
    // and finds it in the server's signed head.
    let ok = audit::verify(&f.admin, &[]).await.unwrap();
    let root = exhibit_server::app::tree::root(&*f.state().meta.read().unwrap(), ok.entries).unwrap();
    assert_eq!(ok.tree_root, hex::encode(root));
    // Carol is enrolled but has not contacted the server yet.
    let carol = f.user("carol", Role::Caseworker).await;

    f.restart_with(|d| rewrite_entry(d, 5)).await;
    // The server's own check passes (the chain was re-made, and the tree
    // agrees with the entries it now holds)...
    let s = f.state().clone();
    let ok = tokio::task::spawn_blocking(move || exhibit_server::app::audit::verify(&s)).await.unwrap();
    assert!(ok.is_ok(), "{ok:?}");
    // ...but not Alice's: she saw entry 5 as it was.
    let (held, presented) = refused(&f, &alice, listing::fetch_list(&alice, false).await);
    assert_eq!(held, seen);
    assert!(presented >= held);
    // Nor the admin's, who verified the log before.
    refused(&f, &f.admin, audit::verify(&f.admin, &[]).await);
    // A client that never saw the log before has nothing to hold it to.
    listing::fetch_list(&carol, false).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heads_grow_with_the_log_and_each_extends_the_last() {
    let f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    listing::fetch_list(&alice, false).await.unwrap();
    let first = held_size(&alice);
    sent_and_fetched(&f, &alice, &bob, 1).await;
    listing::fetch_list(&alice, false).await.unwrap();
    let second = held_size(&alice);
    assert!(second > first, "{second} > {first}");
    // The held head is the server's tree over its entries.
    let r = f.state().meta.read().unwrap();
    let root = exhibit_server::app::tree::root(&*r, second).unwrap();
    assert_eq!(heads::stored(&alice).unwrap().unwrap().root, hex::encode(root));
    assert!(fork_reports(&alice).is_empty());
}

/// Alice sends Bob a file (her manifest carries her head); nobody else
/// contacts the server in between; returns the transfer.
async fn sent(f: &Fixture, alice: &Home, seed: u64) -> exhibit_proto::TransferId {
    let src = f.path(&format!("src{seed}"));
    std::fs::write(src.join("a.bin"), bytes(3000, seed)).unwrap();
    send_paths(alice, vec![src.join("a.bin")], &["bob"], 1024).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_rewritten_for_the_recipient_is_caught_by_the_senders_head_in_the_manifest() {
    let mut f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let t = sent(&f, &alice, 1).await;
    // The server rewrites an entry Alice saw, and shows Bob, who never
    // contacted it before, only the rewritten log: his own check passes.
    f.restart_with(|d| rewrite_entry(d, 4)).await;
    listing::fetch_list(&bob, false).await.unwrap();
    assert!(heads::stored(&bob).unwrap().is_some());
    // Alice's head in the signed manifest does not agree with his.
    let r = fetch_to(&bob, t, &f.path("out")).await;
    refused(&f, &bob, r);
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&fork_reports(&bob)[0]).unwrap()).unwrap();
    assert!(report["presented_by"].as_str().unwrap().contains("manifest"), "{report}");
    assert!(std::fs::read_dir(f.path("out")).unwrap().next().is_none(), "nothing written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_rewritten_for_the_sender_is_caught_by_the_recipients_head_in_the_receipt() {
    let mut f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let t = sent(&f, &alice, 1).await;
    fetch_to(&bob, t, &f.path("out")).await.unwrap();
    // Heads agree while the log is one log.
    let (report, _) = custody::custody(&alice, t).await.unwrap();
    assert_eq!(report.receipts.len(), 1);
    // Alice on a new machine (no head held) is shown a log rewritten
    // after the head her manifest carries (so that one still agrees) but
    // before the one Bob's receipt carries.
    let signed = f.state().meta.read().unwrap().manifest(&t).unwrap().unwrap();
    let authority = f.state().keys.log().verifying_key();
    let in_manifest = signed.decode_unverified().unwrap().log_head.unwrap().verify(&authority).unwrap().size;
    f.restart_with(move |d| rewrite_entry(d, in_manifest + 1)).await;
    std::fs::remove_file(alice.dir().join(heads::HEAD_FILE)).unwrap();
    std::fs::remove_file(alice.dir().join("audit-checkpoint.json")).unwrap();
    let r = custody::custody(&alice, t).await;
    refused(&f, &alice, r);
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&fork_reports(&alice)[0]).unwrap()).unwrap();
    assert!(report["presented_by"].as_str().unwrap().contains("receipt"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_bundle_proves_offline_that_its_acceptance_is_in_the_log() {
    let f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let t = sent(&f, &alice, 1).await;
    fetch_to(&bob, t, &f.path("out")).await.unwrap();
    let authority = f.state().keys.log().verifying_key();
    let (_, bundles) = custody::custody(&alice, t).await.unwrap();
    let exported = exhibit_client::receipt::bundle(&bob, t, None).await.unwrap();
    for b in [&bundles[0], &exported] {
        // As written to a file and read back by someone holding the CA.
        let b: ReceiptBundle = serde_json::from_slice(&serde_json::to_vec(b).unwrap()).unwrap();
        let place = b.verify(&authority).unwrap().in_log.expect("the bundle carries its log entry");
        let log = b.log.clone().unwrap();
        assert_eq!(log.entry.body.action, "receipt-accepted");
        assert_eq!(place.entry, log.entry.body.seq);
        let root = exhibit_server::app::tree::root(&*f.state().meta.read().unwrap(), place.tree_size).unwrap();
        assert_eq!(place.tree_root, hex::encode(root));

        // The entry changed, the proof changed, another entry, or the log
        // part dropped while the summary still names it: refused.
        let mut edited = b.clone();
        edited.log.as_mut().unwrap().entry.body.details.push_str(" (amended)");
        assert!(edited.verify(&authority).is_err());
        let mut hashes = log.proof.hashes().to_vec();
        hashes[0][0] ^= 1;
        let mut bad_proof = b.clone();
        bad_proof.log.as_mut().unwrap().proof = Proof::new(hashes).unwrap();
        assert!(bad_proof.verify(&authority).is_err());
        let mut other = b.clone();
        let seal = f.state().meta.read().unwrap().audit_entry(place.entry - 1).unwrap().unwrap();
        other.log.as_mut().unwrap().entry = seal;
        assert!(other.verify(&authority).is_err());
        let mut stripped = b.clone();
        stripped.log = None;
        assert!(stripped.verify(&authority).is_err());
    }
}

/// `admin audit verify --from-heads`: heads other users hold are checked to
/// be prefixes of the log. Bob's real head passes; a head of the same size
/// with another root (a log the server showed only him) and one longer
/// than the log (it was rolled back since) are caught, naming the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heads_collected_from_other_users_are_checked_against_the_log() {
    let f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    sent_and_fetched(&f, &alice, &bob, 1).await;
    let dir = f.path("collected");
    let bobs = dir.join("bob-head.json");
    std::fs::copy(bob.dir().join(heads::HEAD_FILE), &bobs).unwrap();
    sent_and_fetched(&f, &alice, &bob, 2).await;
    let ok = audit::verify(&f.admin, std::slice::from_ref(&bobs)).await.unwrap();
    assert_eq!(ok.other_heads.len(), 1);
    assert!(ok.other_heads[0].size < ok.entries, "{ok:?}");

    // Heads signed with the deployment's key, as a lying server would sign
    // them: one of another log, one of a longer log than there is now.
    let key = f.state().keys.log();
    let held: heads::HeldHead = serde_json::from_slice(&std::fs::read(&bobs).unwrap()).unwrap();
    let forge = |size: u64, root: [u8; 32], name: &str| {
        let h = exhibit_proto::tlog::TreeHead { size, root, time: held.time };
        let mut other = held.clone();
        other.signed = h.sign(key);
        let file = dir.join(name);
        std::fs::write(&file, serde_json::to_vec(&other).unwrap()).unwrap();
        file
    };
    let forked = forge(held.size, [9; 32], "forked.json");
    let e = audit::verify(&f.admin, &[bobs.clone(), forked]).await.unwrap_err();
    assert_eq!(e.exit_code(), 3, "{e}");
    assert!(e.to_string().contains("forked.json") && e.to_string().contains("not a prefix of this log"), "{e}");
    let longer = forge(held.size + 1_000_000, [9; 32], "longer.json");
    let e = audit::verify(&f.admin, &[longer]).await.unwrap_err();
    assert!(e.to_string().contains("longer.json") && e.to_string().contains("rolled back"), "{e}");
    // A head signed by another key is not this deployment's.
    let mut stranger = held.clone();
    stranger.signed = exhibit_proto::tlog::TreeHead { size: 1, root: [1; 32], time: 1 }
        .sign(&ed25519_dalek::SigningKey::from_bytes(&[3; 32]));
    let file = dir.join("stranger.json");
    std::fs::write(&file, serde_json::to_vec(&stranger).unwrap()).unwrap();
    let e = audit::verify(&f.admin, &[file]).await.unwrap_err();
    assert!(e.to_string().contains("not signed by this deployment's log key"), "{e}");
}
