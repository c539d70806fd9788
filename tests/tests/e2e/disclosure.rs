//! Who may receive what: organisations and their kinds, item labels, and a
//! second person's approval before anything leaves police and CPS (the
//! disclosure rules, held by the sender's client, the server and the
//! recipient's client).

use std::sync::Arc;

use exhibit_client::conn::Conn;
use exhibit_client::labels::LabelPlan;
use exhibit_client::ops::approvals;
use exhibit_client::{listing, receipt, send, ClientError, Home};
use exhibit_proto::approval::Approval;
use exhibit_proto::details::{self, Head, ItemRecord, Place};
use exhibit_proto::directory::Role;
use exhibit_proto::frame::{AlertKind, ErrorCode, Request, Response, TransferState};
use exhibit_proto::labels::{Labels, PolicySummary, Redaction, Schedule};
use exhibit_proto::manifest::{ChunkRef, MANIFEST_VERSION};
use exhibit_proto::org::OrgKind;
use exhibit_proto::{seal, ChunkId, Manifest, TransferId};
use exhibit_server::alerts;
use exhibit_server::clock::ManualClock;
use exhibit_server::Background;

use crate::fixture::*;

/// Labels a reviewed, redacted interview carries.
pub(crate) fn cleared() -> Labels {
    Labels {
        schedule: Some(Schedule::Used),
        redaction: Redaction::Redacted,
        victim_details: false,
        ..Labels::default()
    }
}

/// CPS South East with caseworker carol and approver dana, a defence firm
/// with dave, another CPS area with its own approver frank, and erin, a
/// caseworker of carol's organisation without the approver role.
pub(crate) struct Cast {
    pub f: Fixture,
    pub carol: Home,
    pub dana: Home,
    pub dave: Home,
    pub erin: Home,
    pub frank: Home,
}

pub(crate) async fn cast(f: Fixture) -> Cast {
    f.org("smith-law", "Smith & Co Solicitors", OrgKind::Defence).await;
    f.org("cps-wales", "CPS Wales", OrgKind::Cps).await;
    let carol = f.user_in("carol", "cps-se", &[Role::Caseworker]).await;
    let dana = f.user_in("dana", "cps-se", &[Role::Caseworker, Role::DisclosureApprover]).await;
    let dave = f.user_in("dave", "smith-law", &[Role::Caseworker]).await;
    let erin = f.user_in("erin", "cps-se", &[Role::Caseworker]).await;
    let frank = f.user_in("frank", "cps-wales", &[Role::DisclosureApprover]).await;
    // The firm acts in case OP7: on its roster (kept by CPS South East).
    let firm = exhibit_proto::org::OrgId::new("smith-law").unwrap();
    exhibit_client::ops::cases::change(&carol, "OP7", firm, true, Some("defence for defendant 1".into()))
        .await
        .unwrap();
    Cast { f, carol, dana, dave, erin, frank }
}

pub(crate) fn interview(f: &Fixture, name: &str) -> std::path::PathBuf {
    let src = f.path(name);
    std::fs::create_dir_all(src.join("case")).unwrap();
    std::fs::write(src.join("case/ABE-1.mp4"), bytes(5000, 1)).unwrap();
    std::fs::write(src.join("case/statement.pdf"), bytes(700, 2)).unwrap();
    src.join("case")
}

pub(crate) async fn send_labelled(
    from: &Home,
    path: std::path::PathBuf,
    to: &str,
    labels: LabelPlan,
) -> Result<send::SendOutcome, ClientError> {
    let mut o = send::SendOptions::new(vec![path], vec![uid(to)]);
    o.chunk_size = 1024;
    o.case_ref = Some("OP7".into());
    o.labels = labels;
    send::send(from, o).await
}

pub(crate) fn plan(base: Labels) -> LabelPlan {
    LabelPlan { base, ..LabelPlan::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn police_to_cps_takes_an_unredacted_extract_without_approval() {
    let f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let src = interview(&f, "src");
    // The defaults: unredacted, not scheduled, may carry victim details.
    let out = send_labelled(&alice, src.clone(), "bob", LabelPlan::default()).await.unwrap();
    assert!(out.approvers.is_empty());
    assert_eq!((out.recipients[0].org_kind.as_str(), out.recipients[0].external), ("cps", false));
    let got = fetch_to(&bob, out.transfer, &f.path("out")).await.unwrap();
    assert!(got.receipt.is_some());
    let t = &listing::fetch_list(&alice, false).await.unwrap()[0];
    assert_eq!((t.state, t.approvers.len()), (TransferState::Sealed, 0));
    assert!(t.policy.unwrap().any_unredacted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_label_the_defence_may_not_have_is_refused_before_upload_naming_the_item() {
    let c = cast(Fixture::start().await).await;
    let src = interview(&c.f, "src");
    let spoiled = |f: fn(&mut Labels)| {
        let mut l = cleared();
        f(&mut l);
        l
    };
    let cases = [
        ("unredacted", spoiled(|l| l.redaction = Redaction::Unredacted), "unredacted"),
        ("victim details", spoiled(|l| l.victim_details = true), "victim"),
        ("unused sensitive", spoiled(|l| l.schedule = Some(Schedule::UnusedSensitive)), "MG6D"),
        ("unscheduled", spoiled(|l| l.schedule = None), "schedule"),
    ];
    for (what, bad, says) in cases {
        // One item is spoiled, through a labels file; the other is clean.
        let mut p = plan(cleared());
        p.items.insert("case/statement.pdf".into(), bad);
        let e = send_labelled(&c.carol, src.clone(), "dave", p).await.unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, ClientError::Disclosure(_)), "{what}: {msg}");
        assert!(msg.contains("case/statement.pdf") && msg.contains(says), "{what}: {msg}");
        assert!(!msg.contains("case/ABE-1.mp4"), "{what}: the clean item was named: {msg}");
    }
    assert!(listing::fetch_list(&c.carol, false).await.unwrap().is_empty(), "a refused send left a transfer");
    assert!(c.f.chunk_files().is_empty(), "a refused send uploaded a chunk");
    let journal = c.carol.dir().join("journal");
    assert!(
        !journal.exists() || std::fs::read_dir(&journal).unwrap().next().is_none(),
        "a refused send left a journal"
    );

    // A client that skips its own check meets the server's.
    let conn = Conn::open(&c.carol.load().unwrap()).await.unwrap();
    let create = |policy, approvers| Request::CreateTransfer {
        transfer: TransferId::random(),
        recipients: vec![uid("dave")],
        policy,
        approvers,
        case: Some("OP7".into()),
        expires_secs: None,
        derived_from: None,
        ack_within_secs: None,
    };
    let unredacted = Some(PolicySummary::of([&Labels { redaction: Redaction::Unredacted, ..cleared() }]));
    let clean = Some(PolicySummary::of([&cleared()]));
    for (req, why) in [
        (create(unredacted, vec![uid("dana")]), "unredacted"),
        (create(None, vec![uid("dana")]), "no labels"),
        (create(clean, vec![]), "approver"),
        (create(clean, vec![uid("frank")]), "not for the sender's organisation"),
        (create(clean, vec![uid("erin")]), "not a disclosure approver"),
        (create(clean, vec![uid("carol")]), "own"),
    ] {
        let e = conn.request(&req).await.unwrap_err();
        assert_eq!(e.server_code(), Some(ErrorCode::Forbidden), "{why}: {e}");
    }
    assert!(listing::fetch_list(&c.carol, false).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redacted_disclosure_waits_for_a_second_person_of_the_senders_org() {
    let c = cast(Fixture::start().await).await;
    let src = interview(&c.f, "src");
    // Carol has not yet confirmed sending to the defence firm, nor that
    // dana (who can read it to approve it) gets it: without anyone to ask,
    // refused before upload, naming dana and her key.
    let dana_fp = c.dana.load().unwrap().me.fingerprint();
    let mut o = send::SendOptions::new(vec![src.clone()], vec![uid("dave")]);
    o.labels = plan(cleared());
    o.case_ref = Some("OP7".into());
    o.confirm = send::Confirm::Refuse;
    let e = send::send(&c.carol, o).await.unwrap_err().to_string();
    assert!(e.contains("disclosure approvers") && e.contains(&dana_fp), "{e}");
    assert!(listing::fetch_list(&c.carol, false).await.unwrap().is_empty());
    let out = send_labelled(&c.carol, src.clone(), "dave", plan(cleared())).await.unwrap();
    let t = out.transfer;
    assert_eq!(out.approvers, ["dana"]);
    assert_eq!((out.recipients[0].org_kind.as_str(), out.recipients[0].external), ("defence", true));

    // Waiting: the defence neither sees nor fetches it.
    assert!(listing::fetch_list(&c.dave, true).await.unwrap().is_empty());
    let e = fetch_to(&c.dave, t, &c.f.path("early")).await.unwrap_err();
    assert_eq!(e.server_code(), Some(ErrorCode::NotFound), "{e}");
    assert!(tree(&c.f.path("early")).is_empty());
    let mine = &listing::fetch_list(&c.carol, false).await.unwrap()[0];
    assert_eq!(mine.state, TransferState::AwaitingApproval);

    // Not the sender, not a caseworker without the role, not another
    // organisation's approver: the clients refuse, and so does the server
    // when handed a signature anyway.
    for who in [&c.carol, &c.erin, &c.frank] {
        let e = approvals::approve(who, t, |_| true).await.unwrap_err();
        assert!(matches!(e, ClientError::Usage(_) | ClientError::Server { .. }), "{e}");
        let p = who.load().unwrap();
        let conn = Conn::open(&p).await.unwrap();
        let (m, hash) = manifest_of(&c.carol, t).await;
        let a = Approval::of(&m, hash, p.me.user.clone(), 1).sign(&p.signing);
        let e = conn.request(&Request::Approve { approval: a }).await.unwrap_err();
        assert!(matches!(e.server_code(), Some(ErrorCode::Forbidden | ErrorCode::NotFound)), "{}: {e}", p.me.user);
    }
    assert!(listing::fetch_list(&c.dave, true).await.unwrap().is_empty(), "released by the wrong person");

    // Dana reviews (opened with her own key) and approves.
    assert_eq!(approvals::waiting(&c.dana).await.unwrap()[0].transfer, t);
    let review = approvals::review(&c.dana, t).await.unwrap();
    assert_eq!(review.item_count, 2);
    assert_eq!(review.recipients[0].org_kind, "defence");
    assert!(review.items.iter().all(|i| i.labels.contains("redacted")), "{:?}", review.items);
    let (_, done) = approvals::approve(&c.dana, t, |_| true).await.unwrap();
    assert!(done);
    assert!(approvals::waiting(&c.dana).await.unwrap().is_empty());

    let inbox = listing::fetch_list(&c.dave, true).await.unwrap();
    assert_eq!(inbox[0].transfer, t);
    assert!(inbox[0].decision.as_ref().is_some_and(|d| d.approved && d.by.as_str() == "dana"));
    let got = fetch_to(&c.dave, t, &c.f.path("out")).await.unwrap();
    assert!(got.receipt.is_some());
    assert_eq!(tree(&c.f.path("out").join("case")), tree(&src));

    // The receipt bundle names the approver, verified offline.
    let bundle = receipt::bundle(&c.carol, t, Some(uid("dave"))).await.unwrap();
    let ca = exhibit_proto::cert::ed25519_key_from_pem(&std::fs::read(&c.f.ca).unwrap()).unwrap();
    let s = bundle.verify(&ca).unwrap();
    assert_eq!(s.approved_by.as_deref(), Some("dana"));
    let mut stripped = bundle.clone();
    stripped.approval = None;
    assert!(stripped.verify(&ca).is_err(), "a bundle without its approval verified");
    let (report, _) = exhibit_client::custody::custody(&c.carol, t).await.unwrap();
    assert_eq!(report.approved.as_ref().unwrap().by.user, "dana");
    assert!(report.steps.iter().any(|s| s.action == "approve" && s.actor == "dana"));
    let text = exhibit_client::custody::text(&report);
    assert!(text.contains("approved by      dana (DANA, CPS South East (cps))"), "{text}");
    assert!(exhibit_client::custody::html(&report).contains("Disclosure approved by"));
}

async fn manifest_of(home: &Home, t: TransferId) -> (Manifest, [u8; 32]) {
    let p = home.load().unwrap();
    let conn = Conn::open(&p).await.unwrap();
    let (vm, _) = exhibit_client::ops::manifest::verified_manifest(&conn, home, &p, t).await.unwrap();
    (vm.manifest().clone(), vm.hash())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_stops_it_for_good_and_says_why() {
    let c = cast(Fixture::start().await).await;
    let out = send_labelled(&c.carol, interview(&c.f, "src"), "dave", plan(cleared())).await.unwrap();
    approvals::refuse(&c.dana, out.transfer, "the interview still shows the victim's face".into()).await.unwrap();
    assert!(approvals::approve(&c.dana, out.transfer, |_| true).await.is_err(), "approved after a refusal");
    assert!(listing::fetch_list(&c.dave, true).await.unwrap().is_empty());
    let t = &listing::fetch_list(&c.carol, false).await.unwrap()[0];
    assert_eq!(t.state, TransferState::Refused);
    assert_eq!(t.decision.as_ref().unwrap().reason.as_deref(), Some("the interview still shows the victim's face"));
    let text = exhibit_client::cli::print::transfers_text(std::slice::from_ref(t));
    assert!(text.contains("REFUSED by dana"), "{text}");
}

/// A sender's client that shows the server a clean labels summary while
/// sealing an unredacted item: the approver cannot open it, and once a
/// signature is forced through, the recipient's client refuses it and
/// writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_summary_that_lies_about_the_sealed_labels_is_refused_by_the_recipient() {
    let c = cast(Fixture::start().await).await;
    let cp = c.carol.load().unwrap();
    let conn = Conn::open(&cp).await.unwrap();
    let dave = exhibit_client::directory::lookup(&conn, &cp, &uid("dave")).await.unwrap();
    let dana = exhibit_client::directory::lookup(&conn, &cp, &uid("dana")).await.unwrap();
    let keys = seal::parse_recipients(&[&dave.age_recipient, &dana.age_recipient, &cp.me.age_recipient]).unwrap();
    let clean = PolicySummary::of([&cleared()]);
    let t = TransferId::random();
    let create = Request::CreateTransfer {
        transfer: t,
        recipients: vec![uid("dave")],
        policy: Some(clean),
        approvers: vec![uid("dana")],
        case: Some("OP7".into()),
        expires_secs: None,
        derived_from: None,
        ack_within_secs: None,
    };
    assert!(matches!(conn.request(&create).await.unwrap(), Response::Created));
    let put = |plain: &[u8]| {
        let cipher = seal::encrypt(plain, &keys).unwrap();
        (ChunkRef { id: ChunkId::of(&cipher), len: cipher.len() as u32 }, cipher)
    };
    let plain = bytes(300, 5);
    let (pack, cipher) = put(&plain);
    conn.put_chunk(t, pack.id, cipher).await.unwrap();
    // The sealed truth: unredacted.
    let mut w = details::Writer::new(&Head { items: 1, chunk_len: 4096, note: None, labels: vec![Labels::default()] });
    let r = ItemRecord {
        path: "extract.db".into(),
        size: 300,
        blake3: *blake3::hash(&plain).as_bytes(),
        place: Place::Packed { chunk: 0, offset: 0 },
        exhibit_ref: None,
        description: None,
        labels: 0,
    };
    assert!(w.push(&r).is_empty());
    let (part, cipher) = put(&w.finish());
    conn.put_chunk(t, part.id, cipher).await.unwrap();
    let m = Manifest {
        version: MANIFEST_VERSION,
        transfer: t,
        sender: cp.me.user.clone(),
        recipients: vec![uid("dave")],
        created_at: 0,
        ack_within_secs: None,
        case_ref: Some("OP7".into()),
        chunks: vec![pack],
        details_parts: vec![part],
        items: vec![],
        details: vec![],
        policy: Some(clean),
        approvers: vec![uid("dana")],
        derived_from: None,
        log_head: None,
    };
    let signed = m.sign(&cp.signing);
    assert!(matches!(seal_request(&conn, &signed).await.unwrap(), Response::Sealed { .. }));

    // The approver's client opens the labels and will not approve.
    let e = approvals::approve(&c.dana, t, |_| true).await.unwrap_err();
    assert!(e.to_string().contains("labels summary"), "{e}");
    // Forced through with dana's key, the server (which cannot see the
    // labels) releases it; the recipient's client refuses it.
    let dp = c.dana.load().unwrap();
    let a = Approval::of(&m, signed.hash(), uid("dana"), 1).sign(&dp.signing);
    let dconn = Conn::open(&dp).await.unwrap();
    assert!(matches!(dconn.request(&Request::Approve { approval: a }).await.unwrap(), Response::Done));
    let out = c.f.path("out");
    let e = fetch_to(&c.dave, t, &out).await.unwrap_err();
    assert!(e.to_string().contains("labels summary"), "{e}");
    assert!(tree(&out).is_empty(), "something was written");
    let inbox = listing::fetch_list(&c.dave, true).await.unwrap();
    assert!(inbox[0].recipients[0].state != exhibit_proto::frame::DeliveryState::Acknowledged);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_waiting_past_approve_within_alerts_the_webhook() {
    let hook = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hook_addr = hook.local_addr().unwrap();
    let (got, _hook) = crate::alerts::start_webhook(hook, "s3cret");
    let clock = ManualClock::new(1_800_000_000);
    let f = Fixture::start_with(Arc::new(clock.clone()), Background::Off, move |cfg| {
        cfg.approve_within = "1h".into();
        cfg.webhook = Some(exhibit_server::config::WebhookConfig {
            url: format!("http://{hook_addr}/exhibit"),
            secret: "s3cret".into(),
        });
    })
    .await;
    let c = cast(f).await;
    let t = send_labelled(&c.carol, interview(&c.f, "src"), "dave", plan(cleared())).await.unwrap().transfer;
    let state = c.f.state();
    clock.advance(3599);
    assert!(alerts::scan(state, state.clock.now()).unwrap().raised.is_empty(), "alerted early");
    clock.advance(2);
    assert_eq!(alerts::scan(state, state.clock.now()).unwrap().raised.len(), 1);
    exhibit_server::alerts::notify::deliver_due(state).await.unwrap();
    let posts = got.lock().unwrap().clone();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0]["transfer"], t.to_string());
    let all = exhibit_server::app::listings::every_alert(state, true).unwrap();
    assert!(matches!(all[0].info.kind, AlertKind::AwaitingApproval { .. }));
    assert!(all[0].emails.iter().any(|e| e == "dana@example.test"), "{:?}", all[0].emails);
    // The defence must not learn of a disclosure nobody has approved.
    assert!(!all[0].emails.iter().any(|e| e == "dave@example.test"), "{:?}", all[0].emails);
    assert!(all[0].info.waiting_for.is_empty(), "{:?}", all[0].info.waiting_for);
    assert!(!posts[0].to_string().contains("dave"), "{}", posts[0]);
    // Approved, it alerts no more, and its alert closed itself.
    approvals::approve(&c.dana, t, |_| true).await.unwrap();
    let closed = exhibit_server::app::listings::every_alert(state, true).unwrap();
    let ack = closed[0].info.ack.as_ref().expect("the approval alert stayed open");
    assert_eq!((ack.by.as_str(), ack.note.as_str()), ("exhibitd", "resolved: a disclosure approver decided"));
    clock.advance(7200);
    assert!(alerts::scan(state, state.clock.now()).unwrap().raised.is_empty());
}

/// The rules are held on the records as they are when evidence moves, not
/// only at send: an organisation's kind changed to external after the
/// send stops a fetch of what no approver approved, and a recipient
/// revoked while a disclosure waits stops its approval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_are_held_again_when_an_organisation_or_a_recipient_changes() {
    let c = cast(Fixture::start().await).await;
    let alice = c.f.user("alice", Role::EvidenceUnit).await;
    let bob = c.f.user("bob", Role::Caseworker).await;
    let t = send_labelled(&alice, interview(&c.f, "src"), "bob", LabelPlan::default()).await.unwrap().transfer;
    exhibit_client::ops::orgs::put(
        &c.f.admin,
        exhibit_proto::org::OrgId::new("cps-se").unwrap(),
        "CPS South East".into(),
        OrgKind::Defence,
        true,
    )
    .await
    .unwrap();
    let out = c.f.path("out");
    let e = fetch_to(&bob, t, &out).await.unwrap_err();
    assert_eq!(e.server_code(), Some(ErrorCode::Forbidden), "{e}");
    assert!(tree(&out).is_empty());
    exhibit_client::ops::orgs::put(
        &c.f.admin,
        exhibit_proto::org::OrgId::new("cps-se").unwrap(),
        "CPS South East".into(),
        OrgKind::Cps,
        true,
    )
    .await
    .unwrap();

    let w = send_labelled(&c.carol, interview(&c.f, "src2"), "dave", plan(cleared())).await.unwrap().transfer;
    let (m, hash) = manifest_of(&c.carol, w).await;
    exhibit_client::admin::revoke_user(&c.f.admin, uid("dave")).await.unwrap();
    // The approver's client no longer finds dave; a signature sent to the
    // server anyway is refused there.
    assert!(approvals::approve(&c.dana, w, |_| true).await.is_err());
    let dp = c.dana.load().unwrap();
    let a = Approval::of(&m, hash, uid("dana"), 1).sign(&dp.signing);
    let e = Conn::open(&dp).await.unwrap().request(&Request::Approve { approval: a }).await.unwrap_err();
    assert!(e.to_string().contains("revoked"), "{e}");
    let t = &listing::fetch_list(&c.carol, false).await.unwrap()[0];
    assert_eq!(t.state, TransferState::AwaitingApproval);
}
