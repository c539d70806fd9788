//! `exhibit fetch --items`: a recipient fetches some of a transfer's items
//! (a few files of a device extract, say), only those are downloaded and
//! written, and the receipt says which; fetching the rest later sends a
//! receipt for all of them, which then stands.

use std::path::Path;
use std::sync::atomic::Ordering;

use exhibit_client::fetch::{self, FetchOptions, Selection};
use exhibit_client::{custody, receipt, ClientError, Home};
use exhibit_proto::directory::Role;
use exhibit_proto::frame::DeliveryState;
use exhibit_proto::{Receipt, TransferId};

use crate::fixture::*;

/// 60 files of 1000 bytes (four to a 4096-byte pack: 15 packs) and two
/// large files of 11 and 5 chunks, under `extract/`.
fn extract(src: &Path) -> std::path::PathBuf {
    let root = src.join("extract");
    std::fs::create_dir_all(root.join("video")).unwrap();
    for i in 0..60 {
        std::fs::write(root.join(format!("m{i:03}.txt")), bytes(1000, i)).unwrap();
    }
    std::fs::write(root.join("video/big.bin"), bytes(10 * 4096 + 5, 100)).unwrap();
    std::fs::write(root.join("video/other.bin"), bytes(5 * 4096, 101)).unwrap();
    root
}

async fn fetch_items(
    home: &Home,
    t: TransferId,
    out: &Path,
    names: &[&str],
) -> Result<fetch::FetchOutcome, ClientError> {
    let items = Selection::Named(names.iter().map(|n| n.to_string()).collect());
    fetch::fetch(home, FetchOptions { transfer: t, out: out.to_owned(), progress: false, items }).await
}

fn subset_of(r: &fetch::FetchOutcome) -> Option<String> {
    let a = r.receipt.as_ref().expect("no receipt");
    Receipt::from_bytes(&a.receipt.bytes).unwrap().subset.map(|s| s.describe())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetching_some_items_writes_only_those_and_the_receipt_says_which_until_all_are_fetched() {
    let f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let t = send_paths(&alice, vec![extract(&f.path("src"))], &["bob"], 4096).await;

    // Two files from the middle of their packs (m005 at 1000 bytes into
    // its pack), and a folder: its two large files.
    let out = f.path("out");
    let r = fetch_items(&bob, t, &out, &["extract/m005.txt", "./extract/m010.txt", "extract/video/"]).await.unwrap();
    assert_eq!((r.item_count, r.items_of), (4, Some(62)));
    // Two packs and the large files' 16 chunks, of 31.
    assert_eq!(r.chunks_fetched, 18);
    let want = vec![
        ("extract/m005.txt".to_string(), bytes(1000, 5)),
        ("extract/m010.txt".to_string(), bytes(1000, 10)),
        ("extract/video/big.bin".to_string(), bytes(10 * 4096 + 5, 100)),
        ("extract/video/other.bin".to_string(), bytes(5 * 4096, 101)),
    ];
    assert_eq!(tree(&out), want, "not exactly the chosen files");
    assert_eq!(std::fs::read_to_string(&r.items_file).unwrap().lines().count(), 4);
    assert_eq!(subset_of(&r).as_deref(), Some("4 of 62 items"));
    let outbox = exhibit_client::listing::fetch_list(&alice, false).await.unwrap();
    assert_eq!(outbox[0].recipients[0].state, DeliveryState::Acknowledged);

    // The sender's export: the bundle says 4 of 62, and the item list
    // written beside it (from the sealed details) is those four.
    let file = f.path("r").join("receipt.json");
    let (b, list) = receipt::export(&alice, t, None, &file).await.unwrap();
    assert_eq!((b.summary.item_count, b.summary.items_of), (Some(4), Some(62)));
    let list = std::fs::read_to_string(list.expect("no item list")).unwrap();
    assert_eq!(list, std::fs::read_to_string(&r.items_file).unwrap());
    let (s, checked) = receipt::verify_with_items(&file, &f.ca, None).unwrap();
    assert_eq!((s.items_of, checked), (Some(62), Some(4)));
    let (report, _) = custody::custody(&alice, t).await.unwrap();
    assert!(custody::text(&report).contains("receipt of bob for 4 of 62 items:"), "{}", custody::text(&report));

    // All of it, later: a receipt for every item replaces the first, the
    // acknowledgement stays where it was, and both are in the log.
    let acked = outbox[0].recipients[0].at;
    let all = fetch_to(&bob, t, &f.path("all")).await.unwrap();
    assert_eq!((all.item_count, all.items_of, subset_of(&all)), (62, None, None));
    let b2 = receipt::bundle(&alice, t, None).await.unwrap();
    assert_eq!((b2.summary.item_count, b2.summary.items_of), (Some(62), None));
    let (first, second) = (b.summary.in_log.expect("no log proof"), b2.summary.in_log.expect("no log proof"));
    assert!(second.entry > first.entry, "the bundle proves the first receipt's entry");
    let outbox = exhibit_client::listing::fetch_list(&alice, false).await.unwrap();
    assert_eq!(outbox[0].recipients[0].at, acked, "acknowledged again");
    let (report, _) = custody::custody(&alice, t).await.unwrap();
    let accepted: Vec<_> = report.steps.iter().filter(|s| s.action == "receipt-accepted").collect();
    assert_eq!(accepted.len(), 2, "{:?}", report.steps);
    assert!(accepted[0].details.contains("for 4 of 62 items") && !accepted[1].details.contains(" of 62"));

    // Some again: the receipt for all of them stands, and the client
    // takes it as its own.
    let again = fetch_items(&bob, t, &f.path("again"), &["extract/m001.txt"]).await.unwrap();
    assert_eq!((again.item_count, subset_of(&again)), (1, None));
    let b3 = receipt::bundle(&alice, t, None).await.unwrap();
    assert_eq!(b3.summary.item_count, Some(62));
    let (_, checked) = receipt::verify_with_items(
        &{
            let file = f.path("r").join("again.json");
            receipt::export(&bob, t, None, &file).await.unwrap();
            file
        },
        &f.ca,
        None,
    )
    .unwrap();
    assert_eq!(checked, Some(62), "the list beside the bundle is not the receipt's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_that_name_nothing_are_refused_before_anything_is_written() {
    let f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let t = send_paths(&alice, vec![extract(&f.path("src"))], &["bob"], 4096).await;
    let parent = f.path("dest");
    let out = parent.join("out");
    for (names, says) in [
        (&["extract/m005.txt", "extract/nope.txt"][..], "no item of this transfer is \"extract/nope.txt\""),
        (&["m005.txt"][..], "did you mean extract/m005.txt?"),
        (&["."][..], "names no item"),
        // A name is a whole path component: "extract/vid" is no folder.
        (&["extract/vid"][..], "no item of this transfer is"),
    ] {
        let err = fetch_items(&bob, t, &out, names).await.unwrap_err();
        assert!(matches!(err, ClientError::Usage(_)), "{names:?}: {err:?}");
        assert!(err.to_string().contains(says), "{names:?}: {err}");
        assert_eq!(tree(&parent), vec![], "{names:?}: something was written");
        assert!(fetch::pending(&bob).is_empty(), "{names:?}: a journal was left");
    }
    let outbox = exhibit_client::listing::fetch_list(&alice, false).await.unwrap();
    assert_ne!(outbox[0].recipients[0].state, DeliveryState::Acknowledged);
}

/// A fetch of some items interrupted part way: `exhibit resume` continues
/// it with the same items, fetching only the chunks still missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_fetch_of_some_items_resumes_the_same_items() {
    let (f, reads) = crate::hostile::with_reads_left().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let t = send_paths(&alice, vec![extract(&f.path("src"))], &["bob"], 4096).await;

    // The sealed details take one read; then 8 of the 13 chunks arrive.
    reads.store(9, Ordering::SeqCst);
    let out = f.path("out");
    let err = fetch_items(&bob, t, &out, &["extract/m005.txt", "extract/m010.txt", "extract/video/big.bin"])
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Interrupted(_)), "{err}");
    let journal = bob.dir().join("journal").join(format!("{t}.fetch"));
    let (h, done) = fetch::read_fetch_journal(&journal).unwrap();
    assert_eq!(h.items.as_ref().map(|s| s.describe()).as_deref(), Some("3 of 62 items"));
    assert!(!done.is_empty() && done.len() <= 8, "{}", done.len());

    reads.store(usize::MAX, Ordering::SeqCst);
    let summary = exhibit_client::ops::resume::resume_all(&bob, false, |_| {}).await.unwrap();
    assert_eq!((summary.done.len(), summary.failed), (1, 0));
    let names: Vec<String> = tree(&out).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["extract/m005.txt", "extract/m010.txt", "extract/video/big.bin"]);
    assert_eq!(std::fs::read(out.join("extract/video/big.bin")).unwrap(), bytes(10 * 4096 + 5, 100));
    let b = receipt::bundle(&alice, t, None).await.unwrap();
    assert_eq!((b.summary.item_count, b.summary.items_of), (Some(3), Some(62)));
    assert!(fetch::pending(&bob).is_empty(), "journal left behind");

    // An interrupted fetch of other items into the same folder is not
    // continued as if it were this one: it starts afresh.
    reads.store(2, Ordering::SeqCst);
    let out2 = f.path("out2");
    assert!(fetch_items(&bob, t, &out2, &["extract/video/other.bin"]).await.is_err());
    reads.store(usize::MAX, Ordering::SeqCst);
    let r = fetch_items(&bob, t, &out2, &["extract/m020.txt"]).await.unwrap();
    assert_eq!(r.chunks_fetched, 1);
    let names: Vec<String> = tree(&out2).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["extract/m020.txt"], "the other fetch's temp files were left");
}
