//! Listings past what one frame holds: every list is paged by a cursor, and
//! 20,000 transfers are listed completely, by their recipient, their
//! sender and an admin, with no reply over the frame bound.

use std::collections::HashSet;

use exhibit_client::conn::Conn;
use exhibit_client::home::Home;
use exhibit_proto::directory::Role;
use exhibit_proto::frame::{self, DeliveryState, Page, Request, Response, TransferList, TransferState};
use exhibit_proto::limits::MAX_FRAME;
use exhibit_proto::{TransferId, UserId};
use exhibit_server::core::records::{Ev, RecipientRecord, TransferRecord};

use crate::fixture::*;

const N: u32 = 20_000;

async fn conn_of(home: &Home) -> Conn {
    let p = home.load().unwrap();
    Conn::connect(&p.config.server, &p.ca_der, Some((p.tls_cert.as_slice(), p.tls_key.as_slice()))).await.unwrap()
}

/// Every page of a transfer listing; the ids and the number of pages.
async fn pages(conn: &Conn, list: TransferList, limit: u32) -> (Vec<TransferId>, usize) {
    let (mut ids, mut n, mut page) = (vec![], 0, Page { after: None, limit });
    loop {
        let r = conn.request(&Request::ListTransfers { list, page: page.clone() }).await.unwrap();
        assert!(frame::encode(&r).unwrap().len() <= MAX_FRAME as usize, "a page over the frame bound");
        let Response::TransfersPage { transfers, next } = r else { panic!("{r:?}") };
        n += 1;
        ids.extend(transfers.iter().map(|t| t.transfer));
        match next {
            Some(c) => page = Page { after: Some(c), limit },
            None => return (ids, n),
        }
        assert!(n <= 1000, "the cursor does not advance");
    }
}

/// The error code of a refused request.
fn refused(r: &Result<Response, exhibit_client::ClientError>) -> Option<frame::ErrorCode> {
    match r {
        Err(exhibit_client::ClientError::Server { code, .. }) | Ok(Response::Error { code, .. }) => Some(*code),
        _ => None,
    }
}

fn record(i: u32, sender: &UserId, to: &UserId, now: u64) -> TransferRecord {
    TransferRecord {
        transfer: TransferId::random(),
        sender: sender.clone(),
        recipients: vec![RecipientRecord { user: to.clone(), state: DeliveryState::Sealed, at: Some(now), fetched: 0 }],
        state: TransferState::Sealed,
        created_at: now,
        sealed_at: Some(now),
        // Every tenth is overdue.
        deadline: Some(if i.is_multiple_of(10) { now - 1 } else { now + 86_400 }),
        case_ref: Some(format!("OPERATION-LONG-CASE-REFERENCE-{i:08}")),
        items: 0,
        bytes: 4096,
        chunks: 1,
        ended_at: None,
        approvers: vec![],
        policy: None,
        decision: None,
        approval: None,
        expires_secs: None,
        access_until: None,
        derived_from: None,
        onward: vec![],
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_thousand_transfers_are_listed_completely_a_page_at_a_time() {
    let f = Fixture::start().await;
    let root = f.user("root", Role::Admin).await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let bobby = f.user("bobby", Role::Caseworker).await;
    let now = f.state().clock.now();
    let recs: Vec<TransferRecord> = (0..N).map(|i| record(i, &uid("alice"), &uid("bob"), now)).collect();
    let want: HashSet<TransferId> = recs.iter().map(|t| t.transfer).collect();
    let overdue: HashSet<TransferId> = recs.iter().filter(|t| t.deadline < Some(now)).map(|t| t.transfer).collect();
    exhibit_server::app::transfers::import_sealed(f.state(), recs).unwrap();
    // One addressed to bobby, whose id bob's is a prefix of.
    let other = record(1, &uid("alice"), &uid("bobby"), now);
    let other_id = other.transfer;
    exhibit_server::app::transfers::import_sealed(f.state(), [other]).unwrap();

    let b = conn_of(&bob).await;
    // The one-frame reply of old cannot hold them: a clean error, no hang.
    let old = b.request(&Request::Inbox).await;
    assert!(old.is_err() || matches!(old, Ok(Response::Error { .. })), "{old:?}");

    let (ids, n) = pages(&b, TransferList::Inbox, 0).await;
    assert!(n > 2, "{n} pages: the listing was not paged");
    assert_eq!(ids.len(), want.len(), "duplicates or gaps");
    assert_eq!(ids.iter().copied().collect::<HashSet<_>>(), want, "bob's inbox");
    let (ids, _) = pages(&conn_of(&bobby).await, TransferList::Inbox, 7).await;
    assert_eq!(ids, vec![other_id], "bobby sees bob's transfers or misses his own");
    let (ids, _) = pages(&conn_of(&alice).await, TransferList::Outbox, 0).await;
    assert_eq!(ids.len(), want.len() + 1);

    let r = conn_of(&root).await;
    let (ids, n) = pages(&r, TransferList::All { overdue: false }, 0).await;
    assert_eq!(ids.len(), want.len() + 1, "admin's listing of every transfer");
    assert!(n > 2);
    // Every page an admin reads is audited, the later ones with their cursor.
    let log = f.state().meta.read().unwrap().audit_entries(1, 1_000_000).unwrap();
    let reads = log.iter().filter(|e| e.body.action == "admin-read" && e.body.details.starts_with("read transfers"));
    assert_eq!(reads.count(), n, "admin pages read without an audit entry");
    let (ids, _) = pages(&r, TransferList::All { overdue: true }, 0).await;
    assert_eq!(ids.into_iter().collect::<HashSet<_>>(), overdue, "overdue transfers");
    let all = Request::ListTransfers { list: TransferList::All { overdue: false }, page: Page::first() };
    let refused_all = b.request(&all).await;
    assert_eq!(refused(&refused_all), Some(frame::ErrorCode::Forbidden), "{refused_all:?}");
    let bad = Page { after: Some(frame::Cursor(vec![1; 3])), limit: 0 };
    let r2 = r.request(&Request::ListTransfers { list: TransferList::Inbox, page: bad }).await;
    assert_eq!(refused(&r2), Some(frame::ErrorCode::BadRequest), "{r2:?}");

    // Alerts: one per overdue transfer, listed a page at a time too.
    let raised = exhibit_server::alerts::scan(f.state(), now).unwrap().raised;
    assert_eq!(raised.len(), overdue.len());
    let (mut seen, mut page) = (HashSet::new(), Page { after: None, limit: 300 });
    loop {
        let resp = r.request(&Request::ListAlerts { all: true, page: page.clone() }).await.unwrap();
        let Response::AlertsPage { alerts, next } = resp else { panic!("{resp:?}") };
        assert!(alerts.len() <= 300);
        assert!(alerts.windows(2).all(|w| w[0].id > w[1].id), "not newest first");
        seen.extend(alerts.iter().map(|a| a.id));
        match next {
            Some(c) => page = Page { after: Some(c), limit: 300 },
            None => break,
        }
    }
    assert_eq!(seen, raised.into_iter().collect::<HashSet<_>>(), "alerts listed");

    // Users, a few at a time.
    let (mut users, mut page) = (vec![], Page { after: None, limit: 2 });
    loop {
        let resp = r.request(&Request::ListUsers { page: page.clone() }).await.unwrap();
        let Response::UsersPage { users: u, next } = resp else { panic!("{resp:?}") };
        users.extend(u.into_iter().map(|u| u.user.to_string()));
        match next {
            Some(c) => page = Page { after: Some(c), limit: 2 },
            None => break,
        }
    }
    assert_eq!(users, ["admin", "alice", "bob", "bobby", "root"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_custody_record_longer_than_one_reply_is_read_in_pages() {
    let f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let _bob = f.user("bob", Role::Caseworker).await;
    let src = f.path("src");
    std::fs::write(src.join("a.bin"), bytes(1000, 1)).unwrap();
    let t = send_paths(&alice, vec![src.join("a.bin")], &["bob"], 1 << 20).await;
    let now = f.state().clock.now();
    exhibit_server::app::write(f.state(), |tx| {
        for i in 0..1200 {
            // 2 KB each (an acknowledgement's note may be 4 KB): 2.4 MB
            // in all, more than one reply may carry.
            let ev = Ev::new(now, "alice", "note", t).details(format!("note {i} {}", "x".repeat(2000)));
            exhibit_server::app::audit::append(f.state(), tx, ev)?;
        }
        Ok(())
    })
    .unwrap();
    let conn = conn_of(&alice).await;
    let (head, _) = conn
        .request_body(
            &Request::Custody { transfer: t },
            |r| match r {
                Response::Custody { manifest_len, .. } => Some(*manifest_len),
                _ => None,
            },
            exhibit_proto::limits::MAX_MANIFEST,
        )
        .await
        .unwrap();
    let Response::Custody { entries, .. } = head else { panic!("{head:?}") };
    assert!(entries.len() < 1200, "one reply carried every entry");
    let mut seqs: Vec<u64> = entries.iter().map(|e| e.body.seq).collect();
    let mut page = Page::after(frame::Cursor::seq(*seqs.last().unwrap()));
    loop {
        let r = conn.request(&Request::CustodyEntries { transfer: t, page }).await.unwrap();
        assert!(frame::encode(&r).unwrap().len() <= MAX_FRAME as usize, "a page over the frame bound");
        let Response::EntriesPage { entries, next } = r else { panic!("{r:?}") };
        seqs.extend(entries.iter().map(|e| e.body.seq));
        match next {
            Some(c) => page = Page::after(c),
            None => break,
        }
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "entries repeated or out of order");
    assert!(seqs.len() > 1200, "{} entries", seqs.len());
    let stranger = f.user("mallory", Role::Caseworker).await;
    let r = conn_of(&stranger).await.request(&Request::CustodyEntries { transfer: t, page: Page::first() }).await;
    assert_eq!(refused(&r), Some(frame::ErrorCode::NotFound), "{r:?}");
}
