//! Unit mailboxes: police send to a CPS unit; any member fetches and
//! acknowledges for it; members join (and get the key from a member's
//! client, never from the server) and leave (refused at once, the key
//! rotates); a server that swaps a unit's key is caught.

use std::sync::Arc;

use exhibit_client::conn::Conn;
use exhibit_client::ops::units::{self, NewUnit};
use exhibit_client::{custody, details, listing, receipt, send, ClientError, Home};
use exhibit_proto::directory::Role;
use exhibit_proto::frame::{AlertKind, DeliveryState};
use exhibit_proto::org::OrgId;
use exhibit_proto::unit::{AckRule, UnitKey};
use exhibit_proto::{TransferId, UserId};
use exhibit_server::config::WebhookConfig;
use exhibit_server::{alerts, notify, Background, ManualClock};

use crate::fixture::*;

const UNIT: &str = "cps-se-mags";

fn new_unit(ack: AckRule) -> NewUnit {
    NewUnit {
        unit: uid(UNIT),
        org: OrgId::new("cps-se").unwrap(),
        name: "Magistrates' court unit".into(),
        ack,
        email: Some("mags@example.test".into()),
    }
}

/// A unit of cps-se with `members`, its key made by the first member's
/// client (which shares it with the others).
async fn unit_with(f: &Fixture, ack: AckRule, members: &[&Home]) {
    units::put(&f.admin, new_unit(ack), false).await.unwrap();
    let ids: Vec<UserId> = members.iter().map(|h| h.load().unwrap().me.user).collect();
    units::members(&f.admin, uid(UNIT), ids, vec![]).await.unwrap();
    let (shown, done) = units::list(members[0], false).await.unwrap();
    assert_eq!(shown.len(), 1);
    assert_eq!(done[0].made, Some(1), "the first member's client did not make the key");
    assert_eq!(done[0].shared.len(), members.len() - 1, "{done:?}");
}

async fn send_to(f: &Fixture, from: &Home, to: &[&str], name: &str) -> Result<TransferId, ClientError> {
    let src = f.path(&format!("src-{}", rand::random::<u32>()));
    std::fs::write(src.join(name), format!("evidence for {name}")).unwrap();
    let mut o = send::SendOptions::new(vec![src.join(name)], to.iter().map(|t| uid(t)).collect());
    o.case_ref = Some("OP-UNIT".into());
    o.chunk_size = 1024;
    send::send(from, o).await.map(|s| s.transfer)
}

fn transfers_on_server(f: &Fixture) -> usize {
    f.state().meta.read().unwrap().transfers(None, 100).unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn police_send_to_a_unit_one_member_acknowledges_for_it_and_the_receipt_names_both() {
    let f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let ann = f.user("ann", Role::Caseworker).await;
    let bob = f.user("bob", Role::Caseworker).await;

    // Before it has members, and before a member's client made its key,
    // nothing can be sent to it, and nothing is uploaded.
    units::put(&f.admin, new_unit(AckRule::One), false).await.unwrap();
    let err = send_to(&f, &alice, &[UNIT], "a.txt").await.unwrap_err().to_string();
    assert!(err.contains("no key") && err.contains("nothing was uploaded"), "{err}");
    units::members(&f.admin, uid(UNIT), vec![uid("ann"), uid("bob")], vec![]).await.unwrap();
    let err = send_to(&f, &alice, &[UNIT], "a.txt").await.unwrap_err().to_string();
    assert!(err.contains("no key"), "{err}");
    assert_eq!(transfers_on_server(&f), 0, "a refused send left a transfer behind");
    // A unit and a user never share an id.
    let clash = units::put(&f.admin, NewUnit { unit: uid("bob"), ..new_unit(AckRule::One) }, false).await;
    assert!(clash.unwrap_err().to_string().contains("user's id"));

    // Ann's inbox (her client passing by) makes the key and shares it with bob.
    listing::fetch_named(&ann, true).await.unwrap();
    let (shown, _) = units::list(&bob, false).await.unwrap();
    assert!(shown[0].has_key && shown[0].waiting_for_key.is_empty(), "{shown:?}");

    let t = send_to(&f, &alice, &[UNIT, "carol-not-here"], "x.txt").await;
    assert!(t.is_err(), "a send to an unknown user went through");
    let t = send_to(&f, &alice, &[UNIT], "interview.txt").await.unwrap();

    // Both members see it, marked with the unit.
    for who in [&ann, &bob] {
        let (inbox, _) = listing::fetch_named(who, true).await.unwrap();
        let got = inbox.iter().find(|x| x.transfer == t).expect("not in a member's inbox");
        assert_eq!(got.recipients[0].user, uid(UNIT));
    }
    let out = f.path("bob-out");
    let r = fetch_to(&bob, t, &out).await.unwrap();
    assert!(r.receipt.is_some(), "no receipt for the unit");
    assert_eq!(std::fs::read(out.join("interview.txt")).unwrap(), b"evidence for interview.txt");

    // Ann sees it acknowledged for the unit, by bob; she can fetch it too.
    let (inbox, _) = listing::fetch_named(&ann, true).await.unwrap();
    let got = inbox.iter().find(|x| x.transfer == t).unwrap();
    assert_eq!(got.recipients[0].state, DeliveryState::Acknowledged);
    assert_eq!(got.unit_acks.iter().map(|a| a.member.clone()).collect::<Vec<_>>(), vec![uid("bob")]);
    fetch_to(&ann, t, &f.path("ann-out")).await.unwrap();
    let (outbox, _) = listing::fetch_named(&alice, false).await.unwrap();
    let sent = outbox.iter().find(|x| x.transfer == t).unwrap();
    assert_eq!(sent.recipients[0].state, DeliveryState::Acknowledged);
    assert_eq!(sent.unit_acks.len(), 2, "{:?}", sent.unit_acks);

    // The receipt verifies offline and names the unit and bob; without the
    // unit's record it does not verify.
    let bundle = receipt::bundle(&bob, t, None).await.unwrap();
    let authority = bob.load().unwrap().authority;
    let s = bundle.verify(&authority).unwrap();
    assert_eq!((s.recipient.as_str(), s.for_unit.as_deref()), ("bob", Some(UNIT)));
    let mut stripped = bundle.clone();
    stripped.unit = None;
    assert!(stripped.verify(&authority).is_err(), "a unit receipt verified without the unit's record");

    // Custody: received for the unit by each member, every receipt checked.
    let (c, bundles) = custody::custody(&alice, t).await.unwrap();
    assert_eq!(bundles.len(), 2, "a receipt for the unit without its bundle");
    let accepted: Vec<_> = c.steps.iter().filter(|s| s.action == "receipt-accepted").collect();
    assert_eq!(accepted.len(), 2);
    assert!(accepted[0].details.contains(&format!("for unit {UNIT}")), "{:?}", accepted[0].details);
    assert_eq!(c.receipts.len(), 2);
    assert!(c.summary.contains(&format!("Received for unit {UNIT} by bob")), "{}", c.summary);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_that_wants_every_member_is_acknowledged_when_the_last_one_is() {
    let f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let ann = f.user("ann", Role::Caseworker).await;
    let bob = f.user("bob", Role::Caseworker).await;
    unit_with(&f, AckRule::All, &[&ann, &bob]).await;
    let t = send_to(&f, &alice, &[UNIT], "a.txt").await.unwrap();
    let state = |h: &Home| {
        let h = h.clone();
        async move {
            let (l, _) = listing::fetch_named(&h, false).await.unwrap();
            l.into_iter().find(|x| x.transfer == t).unwrap().recipients[0].state
        }
    };
    fetch_to(&ann, t, &f.path("a")).await.unwrap();
    assert_ne!(state(&alice).await, DeliveryState::Acknowledged, "acknowledged with one of two");
    fetch_to(&bob, t, &f.path("b")).await.unwrap();
    assert_eq!(state(&alice).await, DeliveryState::Acknowledged);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_added_later_reads_earlier_evidence_once_a_member_shares_the_key() {
    let f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let ann = f.user("ann", Role::Caseworker).await;
    let carol = f.user("carol", Role::Caseworker).await;
    unit_with(&f, AckRule::One, &[&ann]).await;
    let t = send_to(&f, &alice, &[UNIT], "earlier.txt").await.unwrap();

    units::members(&f.admin, uid(UNIT), vec![uid("carol")], vec![]).await.unwrap();
    // Carol sees the unit's inbox, but cannot open it yet: clearly said.
    let (inbox, _) = listing::fetch_named(&carol, true).await.unwrap();
    assert!(inbox.iter().any(|x| x.transfer == t));
    let err = fetch_to(&carol, t, &f.path("c1")).await.unwrap_err().to_string();
    assert!(err.contains("not been shared with you yet") && err.contains("exhibit unit share"), "{err}");
    assert!(tree(&f.path("c1")).is_empty(), "a refused fetch wrote files");

    // Ann's client shares it (after checking carol's entry); carol reads.
    let done = units::share(&ann, &uid(UNIT)).await.unwrap();
    assert_eq!(done[0].shared, vec![(1, "carol".to_owned())]);
    assert!(units::share(&ann, &uid(UNIT)).await.unwrap().is_empty(), "shared twice");
    fetch_to(&carol, t, &f.path("c2")).await.unwrap();
    assert_eq!(std::fs::read(f.path("c2").join("earlier.txt")).unwrap(), b"evidence for earlier.txt");
    // Not a member: told to go away.
    let err = units::share(&alice, &uid(UNIT)).await.unwrap_err().to_string();
    assert!(err.contains("not a member"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_member_is_refused_at_once_and_the_key_rotates() {
    let f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let ann = f.user("ann", Role::Caseworker).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let carol = f.user("carol", Role::Caseworker).await;
    unit_with(&f, AckRule::One, &[&ann, &bob, &carol]).await;
    let t1 = send_to(&f, &alice, &[UNIT], "one.txt").await.unwrap();
    // What bob holds: the key of epoch 1.
    let bp = bob.load().unwrap();
    let conn = Conn::open(&bp).await.unwrap();
    let v = units::fetch(&conn, &bob, &bp, false).await.unwrap().remove(0);
    let old = units::identities(&bp, &v).unwrap().remove(&1).unwrap();
    conn.close();

    units::members(&f.admin, uid(UNIT), vec![], vec![uid("bob")]).await.unwrap();
    let err = fetch_to(&bob, t1, &f.path("b")).await.unwrap_err();
    assert!(err.to_string().contains("not found"), "{err}");
    assert!(listing::fetch_named(&bob, true).await.unwrap().0.is_empty(), "bob still sees the unit's inbox");
    // Until a remaining member's client rotates the key, nothing is sent.
    let err = send_to(&f, &alice, &[UNIT], "two.txt").await.unwrap_err().to_string();
    assert!(err.contains("no key"), "{err}");
    let (_, done) = units::list(&carol, false).await.unwrap();
    assert_eq!(done[0].made, Some(2));
    let t2 = send_to(&f, &alice, &[UNIT], "two.txt").await.unwrap();

    // The new transfer does not open with the old key; it does with the new.
    let ap = ann.load().unwrap();
    let conn = Conn::open(&ap).await.unwrap();
    let (vm, _) = exhibit_client::ops::manifest::verified_manifest(&conn, &ann, &ap, t2).await.unwrap();
    assert!(details::open(&conn, &vm, &old).await.is_err(), "the old unit key opened a transfer after rotation");
    conn.close();
    for (who, dir) in [(&ann, "a"), (&carol, "c")] {
        fetch_to(who, t1, &f.path(&format!("{dir}1"))).await.unwrap();
        fetch_to(who, t2, &f.path(&format!("{dir}2"))).await.unwrap();
    }
    let entries = exhibit_client::audit::export(&f.admin, 1).await.unwrap();
    assert!(entries.iter().any(|e| e.body.action == "unit-member-remove" && e.body.details.contains("bob")));
    assert!(entries.iter().any(|e| e.body.action == "unit-key" && e.body.actor == "carol"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_swaps_a_units_key_or_a_members_copy_is_caught() {
    let f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let ann = f.user("ann", Role::Caseworker).await;
    let bob = f.user("bob", Role::Caseworker).await;
    unit_with(&f, AckRule::One, &[&ann, &bob]).await;
    let t = send_to(&f, &alice, &[UNIT], "first.txt").await.unwrap(); // alice pins epoch 1's key
    let meddle = |change: &dyn Fn(&mut exhibit_server::core::records::UnitRecord)| {
        let meta = &f.state().meta;
        let mut u = meta.read().unwrap().unit(&uid(UNIT)).unwrap().unwrap();
        change(&mut u);
        let mut tx = meta.write().unwrap();
        tx.put_unit(&u).unwrap();
        tx.commit().unwrap();
    };
    let original = f.state().meta.read().unwrap().unit(&uid(UNIT)).unwrap().unwrap();
    let eve = age::x25519::Identity::generate();

    // 1. A recipient of the server's choosing under ann's signature.
    meddle(&|u| {
        let mut k: UnitKey = exhibit_proto::sign::decode(&u.keys[0].bytes, "k").unwrap();
        k.age_recipient = eve.to_public().to_string();
        u.keys[0].bytes = exhibit_proto::sign::encode(&k);
    });
    let err = send_to(&f, &alice, &[UNIT], "second.txt").await.unwrap_err().to_string();
    assert!(err.contains("does not hold") || err.contains("signature"), "{err}");

    // 2. A key ann really signed, but not the one alice pinned for epoch 1.
    let ap = ann.load().unwrap();
    let other =
        UnitKey { unit: uid(UNIT), epoch: 1, age_recipient: eve.to_public().to_string(), by: uid("ann"), at: 1 };
    meddle(&|u| u.keys[0] = other.sign(&ap.signing));
    let err = send_to(&f, &alice, &[UNIT], "second.txt").await.unwrap_err();
    assert!(matches!(err, ClientError::KeyChanged { .. }), "{err}");

    // 3. Bob's copy swapped for one the server made: bob refuses it.
    meddle(&|u| *u = original.clone());
    let bp = bob.load().unwrap();
    let fake = age::encrypt(
        &bp.me.age_recipient.parse::<age::x25519::Recipient>().unwrap(),
        age::secrecy::ExposeSecret::expose_secret(&eve.to_string()).as_bytes(),
    )
    .unwrap();
    meddle(&|u| {
        for w in u.wraps.iter_mut().filter(|w| w.member == uid("bob")) {
            w.blob = fake.clone();
        }
    });
    let err = fetch_to(&bob, t, &f.path("b")).await.unwrap_err().to_string();
    assert!(err.contains("is not the key ann made"), "{err}");
    assert!(tree(&f.path("b")).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overdue_to_a_unit_alerts_every_member_the_units_address_and_the_webhook() {
    let (smtp_port, mailbox) = crate::alerts::start_smtp();
    let hook = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hook_addr = hook.local_addr().unwrap();
    let (got, _listening) = crate::alerts::start_webhook(hook, "s3cret");
    let clock = ManualClock::new(1_800_000_000);
    let f = Fixture::start_with(Arc::new(clock.clone()), Background::Off, move |c| {
        c.webhook = Some(WebhookConfig { url: format!("http://{hook_addr}/exhibit"), secret: "s3cret".into() });
        c.smtp = Some(crate::alerts::local_smtp(smtp_port));
        c.dashboard = Some(exhibit_server::config::DashboardConfig::new("127.0.0.1:0".parse().unwrap(), DASH));
        c.arrival_notices = false;
    })
    .await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let ann = f.user("ann", Role::Caseworker).await;
    let bob = f.user("bob", Role::Caseworker).await;
    unit_with(&f, AckRule::One, &[&ann, &bob]).await;
    let src = f.path("src");
    std::fs::write(src.join("v.mp4"), bytes(2000, 3)).unwrap();
    let mut o = send::SendOptions::new(vec![src.join("v.mp4")], vec![uid(UNIT)]);
    o.ack_within_secs = Some(3600);
    let t = send::send(&alice, o).await.unwrap().transfer;
    clock.advance(3600);
    assert_eq!(alerts::scan(f.state(), f.state().clock.now()).unwrap().raised.len(), 1);
    notify::deliver_due(f.state()).await.unwrap();
    let a = exhibit_server::app::listings::every_alert(f.state(), true).unwrap().remove(0).info;
    assert_eq!((a.kind, a.transfer, a.waiting_for), (AlertKind::Overdue { level: 0 }, Some(t), vec![uid(UNIT)]));
    let mail = mailbox.0.lock().unwrap().clone();
    let mut to = mail[0].0.clone();
    to.sort();
    assert_eq!(to, ["alice@example.test", "ann@example.test", "bob@example.test", "mags@example.test"]);
    let posts = got.lock().unwrap().clone();
    assert_eq!(posts[0]["waiting_for"][0], UNIT);

    // The dashboard lists the unit, who holds its key, and what is overdue to it.
    let addr = f.server().dashboard_addr().unwrap().to_string();
    let login = crate::browser::http("POST", &addr, "/login", &[], format!("token={DASH}").as_bytes());
    let cookie = login.headers.lines().find(|l| l.to_ascii_lowercase().starts_with("set-cookie:")).unwrap();
    let cookie = cookie.split_once(':').unwrap().1.split(';').next().unwrap().trim().to_owned();
    let page = crate::browser::http("GET", &addr, "/", &[("Cookie", &cookie)], b"").text();
    assert!(page.contains("Units (1)") && page.contains(UNIT), "{page}");
    assert!(page.contains("ann, bob") && page.contains("every member holds it"), "{page}");
    assert!(page.contains(&format!("1: {}", &t.to_string()[..8])), "overdue not grouped by unit: {page}");
}

const DASH: &str = "dashboard-test-token-0123456789-abc";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_sees_and_fetches_the_units_evidence_on_exhibit_ui() {
    use exhibit_client::ui::{Ui, UiOptions};
    let f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let ann = f.user("ann", Role::Caseworker).await;
    unit_with(&f, AckRule::One, &[&ann]).await;
    let t = send_to(&f, &alice, &[UNIT], "on-the-page.txt").await.unwrap();
    let downloads = f.path("ann-downloads");
    let opts = UiOptions { listen: "127.0.0.1:0".parse().unwrap(), downloads: downloads.clone() };
    let ui = Ui::start(ann, opts, tokio::runtime::Handle::current()).unwrap();
    let url = ui.url().trim_start_matches("http://").to_owned();
    let (host, tok) = url.split_once('/').unwrap();
    let tok = tok.trim_end_matches('/');
    let page = crate::browser::http("GET", host, &format!("/{tok}/"), &[], b"").text();
    assert!(
        page.contains(&t.to_string()[..8]) && page.contains(UNIT),
        "the unit's transfer is not on the page: {page}"
    );
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let body = format!("transfer={t}");
    let r = crate::browser::http("POST", host, &format!("/{tok}/fetch"), &form, body.as_bytes());
    assert!(r.status < 400, "{}", r.text());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let got = loop {
        let files = tree(&downloads);
        if let Some((_, b)) = files.iter().find(|(n, _)| n.ends_with("on-the-page.txt")) {
            break b.clone();
        }
        assert!(std::time::Instant::now() < deadline, "not fetched from the page: {files:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(got, b"evidence for on-the-page.txt");
}
