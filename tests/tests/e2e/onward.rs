//! Onward disclosure: a case's roster names the organisations outside
//! police and CPS that may receive its material; a CPS caseworker forwards
//! what they received (re-sealed, labels carried, a redacted version in
//! place of an item) with its provenance in the signed manifest; the
//! police see where their material went; external access expires.

use std::sync::Arc;

use exhibit_client::conn::Conn;
use exhibit_client::labels::LabelPlan;
use exhibit_client::ops::forward::{self, ForwardOptions};
use exhibit_client::ops::{approvals, cases};
use exhibit_client::{custody, listing, send, ClientError, Home};
use exhibit_proto::directory::Role;
use exhibit_proto::frame::{ErrorCode, Request, Response, TransferState};
use exhibit_proto::labels::{Labels, Material, PolicySummary, Redaction, Schedule};
use exhibit_proto::manifest::DerivedFrom;
use exhibit_proto::org::{OrgId, OrgKind};
use exhibit_proto::TransferId;
use exhibit_server::clock::Clock as _;
use exhibit_server::clock::ManualClock;
use exhibit_server::{alerts, Background};

use crate::fixture::*;

const CASE: &str = "01YY1234524";
const DAY: u64 = 86_400;

/// Police (alice), CPS South East (carol, caseworker; dana, approver;
/// erin, a caseworker who received nothing), the defence firm on record
/// (dave) and another firm (olga), and probation (pete).
struct Cast {
    f: Fixture,
    alice: Home,
    carol: Home,
    dana: Home,
    dave: Home,
    erin: Home,
    olga: Home,
    pete: Home,
}

async fn cast(f: Fixture) -> Cast {
    f.org("smith-law", "Smith & Co Solicitors", OrgKind::Defence).await;
    f.org("other-law", "Other & Co", OrgKind::Defence).await;
    f.org("probation-se", "Probation South East", OrgKind::Probation).await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let carol = f.user_in("carol", "cps-se", &[Role::Caseworker]).await;
    let dana = f.user_in("dana", "cps-se", &[Role::Caseworker, Role::DisclosureApprover]).await;
    let erin = f.user_in("erin", "cps-se", &[Role::Caseworker]).await;
    let dave = f.user_in("dave", "smith-law", &[Role::Caseworker]).await;
    let olga = f.user_in("olga", "other-law", &[Role::Caseworker]).await;
    let pete = f.user_in("pete", "probation-se", &[Role::Caseworker]).await;
    Cast { f, alice, carol, dana, dave, erin, olga, pete }
}

fn org(id: &str) -> OrgId {
    OrgId::new(id).unwrap()
}

/// An interview and a statement, as the police send them: used material,
/// the interview unredacted and with victim details.
fn evidence(f: &Fixture) -> std::path::PathBuf {
    let src = f.path("police");
    std::fs::create_dir_all(src.join("case")).unwrap();
    std::fs::write(src.join("case/ABE-1.mp4"), bytes(6000, 1)).unwrap();
    std::fs::write(src.join("case/statement.pdf"), bytes(900, 2)).unwrap();
    src.join("case")
}

/// alice → carol under the case, fetched by carol. Returns the transfer.
async fn police_to_cps(c: &Cast) -> TransferId {
    let mut o = send::SendOptions::new(vec![evidence(&c.f)], vec![uid("carol")]);
    o.chunk_size = 1024;
    o.case_ref = Some(CASE.into());
    o.labels = LabelPlan {
        base: Labels { material: Material::Interview, schedule: Some(Schedule::Used), ..Labels::default() },
        ..LabelPlan::default()
    };
    let t = send::send(&c.alice, o).await.unwrap().transfer;
    fetch_to(&c.carol, t, &c.f.path("carol-in")).await.unwrap();
    t
}

fn fwd(source: TransferId, to: &str) -> ForwardOptions {
    ForwardOptions {
        source,
        to: vec![uid(to)],
        items: vec![],
        redacted: vec![],
        note: Some("for the defence".into()),
        ack_within_secs: None,
        expires_secs: None,
        confirm: send::Confirm::Yes,
        progress: false,
        handling: None,
        schedule: None,
        victim_details: None,
    }
}

/// The redacted interview carol prepared, and the options that forward
/// it alone in place of the original.
fn redacted(c: &Cast, source: TransferId, to: &str) -> ForwardOptions {
    let file = c.f.path("redaction").join("ABE-1-redacted.mp4");
    std::fs::write(&file, bytes(4000, 7)).unwrap();
    ForwardOptions {
        items: vec!["case/ABE-1.mp4".into()],
        redacted: vec![("case/ABE-1.mp4".into(), file)],
        victim_details: Some(false),
        ..fwd(source, to)
    }
}

async fn outbox_len(h: &Home) -> usize {
    listing::fetch_list(h, false).await.unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn police_to_cps_to_defence_on_the_roster_approved_and_traced_back_to_the_police() {
    let c = cast(Fixture::start().await).await;
    let t = police_to_cps(&c).await;
    let chunks = c.f.chunk_files().len();

    // Not on the case's roster (it has none yet): refused before upload,
    // saying how to add the firm and who may.
    let e = forward::forward(&c.carol, redacted(&c, t, "dave")).await.unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, ClientError::Disclosure(_)), "{msg}");
    assert!(msg.contains(&format!("exhibit case allow {CASE} --org smith-law")), "{msg}");
    assert_eq!((outbox_len(&c.carol).await, c.f.chunk_files().len()), (0, chunks), "a refused forward left something");
    assert!(!c.carol.dir().join("forward").read_dir().is_ok_and(|mut d| d.next().is_some()), "staging left behind");

    // Police cannot keep a CPS case's roster; the CPS caseworker can.
    let e = cases::change(&c.alice, CASE, org("smith-law"), true, None).await.unwrap_err();
    assert!(e.to_string().contains("CPS"), "{e}");
    let r =
        cases::change(&c.carol, CASE, org("smith-law"), true, Some("defence for defendant 1".into())).await.unwrap();
    assert_eq!((r.owner.as_str(), r.roster.len(), r.roster[0].by.as_str()), ("cps-se", 1, "carol"));
    assert_eq!(r.roster[0].note.as_deref(), Some("defence for defendant 1"));
    // The police sender can read it; the defence cannot.
    assert!(cases::roster(&c.alice, CASE).await.unwrap().lists("smith-law"));
    assert!(cases::roster(&c.dave, CASE).await.is_err());

    // The original interview as it came (unredacted, victim details): refused.
    let e = forward::forward(&c.carol, fwd(t, "dave")).await.unwrap_err();
    assert!(e.to_string().contains("case/ABE-1.mp4") && e.to_string().contains("unredacted"), "{e}");
    assert_eq!(outbox_len(&c.carol).await, 0);

    // The redacted version goes, once a second person approves.
    let out = forward::forward(&c.carol, redacted(&c, t, "dave")).await.unwrap();
    assert_eq!((out.items, out.redacted, out.case_ref.as_deref()), (1, 1, Some(CASE)));
    assert_eq!(out.sent.approvers, vec!["dana".to_owned()]);
    let f = out.sent.transfer;
    assert!(fetch_to(&c.dave, f, &c.f.path("early")).await.is_err(), "released before approval");
    let (review, approved) = approvals::approve(&c.dana, f, |_| true).await.unwrap();
    assert!(approved);
    assert_eq!(review.items[0].labels, "official-sensitive, interview, used, redacted, no victim details");
    let got = fetch_to(&c.dave, f, &c.f.path("dave-in")).await.unwrap();
    assert!(got.receipt.is_some());
    assert_eq!(
        std::fs::read(c.f.path("dave-in").join("case/ABE-1.mp4")).unwrap(),
        bytes(4000, 7),
        "the defence got the redacted version"
    );
    assert_eq!(tree(&c.f.path("dave-in")).len(), 1, "only the item forwarded");

    // The police see where their material went: the forward, its
    // approval and the defence's receipt; no content.
    let (report, _) = custody::custody(&c.alice, t).await.unwrap();
    assert_eq!(report.onward.len(), 1, "{:?}", report.onward);
    let o = &report.onward[0];
    assert_eq!((o.transfer.as_str(), o.from.as_str()), (f.to_string().as_str(), t.to_string().as_str()));
    assert!(o.sender.contains("CAROL") && o.sender.contains("CPS South East"), "{}", o.sender);
    assert!(o.decision.as_deref().is_some_and(|d| d.starts_with("approved by dana")), "{:?}", o.decision);
    assert_eq!(o.recipients[0].state, "acknowledged");
    assert!(o.recipients[0].who.contains("Smith & Co Solicitors (defence)"), "{}", o.recipients[0].who);
    assert!(report.steps.iter().any(|s| s.action == "forward" && s.details.contains(&f.to_string())));
    let text = custody::text(&report);
    let onward_part = text.split("ONWARD").nth(1).unwrap_or_default();
    assert!(!onward_part.is_empty() && !onward_part.contains("ABE-1"), "names of onward content: {text}");
    assert!(custody::html(&report).contains("Onward: where its material went"));

    // The forward's own custody names its source and the redacted item.
    let (fr, _) = custody::custody(&c.dave, f).await.unwrap();
    let d = fr.derived_from.unwrap();
    assert_eq!((d.transfer, d.items.as_str(), d.redacted), (t.to_string(), "0", vec![0]));

    // The defence never sees the police transfer itself.
    assert!(custody::custody(&c.dave, t).await.is_err());
    assert!(fetch_to(&c.dave, t, &c.f.path("dave-police")).await.is_err());
    assert!(listing::fetch_list(&c.dave, true).await.unwrap().iter().all(|x| x.transfer != t));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_refuses_a_forward_the_forwarder_never_received_or_of_another_case() {
    let c = cast(Fixture::start().await).await;
    let t = police_to_cps(&c).await;
    cases::change(&c.carol, CASE, org("smith-law"), true, None).await.unwrap();
    let manifest_hash = {
        let conn = Conn::open(&c.carol.load().unwrap()).await.unwrap();
        let (vm, _, _) =
            exhibit_client::ops::manifest::with_approval(&conn, &c.carol, &c.carol.load().unwrap(), t).await.unwrap();
        conn.close();
        vm.hash()
    };
    let clean = Labels {
        schedule: Some(Schedule::Used),
        redaction: Redaction::Redacted,
        victim_details: false,
        ..Labels::default()
    };
    let create = |derived: DerivedFrom, case: &str, approver: &str| Request::CreateTransfer {
        transfer: TransferId::random(),
        recipients: vec![uid("dave")],
        policy: Some(PolicySummary::of([&clean])),
        approvers: vec![uid(approver)],
        case: Some(case.into()),
        expires_secs: None,
        derived_from: Some(derived),
        ack_within_secs: None,
    };
    let derived = DerivedFrom { transfer: t, manifest_hash, items: vec![(0, 1)], redacted: vec![] };
    let refused = |r: Result<Response, ClientError>| match r {
        Err(e) => (e.server_code(), e.to_string()),
        Ok(r) => panic!("accepted: {r:?}"),
    };
    // erin is a caseworker of the same organisation, but never received it.
    let erin = Conn::open(&c.erin.load().unwrap()).await.unwrap();
    let (code, msg) = refused(erin.request(&create(derived.clone(), CASE, "dana")).await);
    assert_eq!(code, Some(ErrorCode::Forbidden), "{msg}");
    assert!(msg.contains("not received by you"), "{msg}");
    // A transfer that does not exist reads the same.
    let ghost = DerivedFrom { transfer: TransferId::random(), ..derived.clone() };
    let (_, ghost_msg) = refused(erin.request(&create(ghost, CASE, "dana")).await);
    assert!(ghost_msg.contains("not received by you"), "{ghost_msg}");
    erin.close();

    let carol = Conn::open(&c.carol.load().unwrap()).await.unwrap();
    // Another manifest than the one it was sent with.
    let other = DerivedFrom { manifest_hash: [9; 32], ..derived.clone() };
    let (_, msg) = refused(carol.request(&create(other, CASE, "dana")).await);
    assert!(msg.contains("manifest"), "{msg}");
    // Material of this case under another case (whose roster lists the firm).
    cases::change(&c.carol, "OTHER-1", org("smith-law"), true, None).await.unwrap();
    let (_, msg) = refused(carol.request(&create(derived.clone(), "OTHER-1", "dana")).await);
    assert!(msg.contains(&format!("case {CASE}")), "{msg}");
    // The right one is accepted.
    assert!(matches!(carol.request(&create(derived, CASE, "dana")).await.unwrap(), Response::Created));
    carol.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firm_off_the_roster_gets_nothing_and_one_taken_off_fetches_nothing_more() {
    let c = cast(Fixture::start().await).await;
    let t = police_to_cps(&c).await;
    cases::change(&c.carol, CASE, org("smith-law"), true, None).await.unwrap();
    // other-law acts in another case, not this one.
    let e = forward::forward(&c.carol, redacted(&c, t, "olga")).await.unwrap_err();
    assert!(e.to_string().contains("not on the roster"), "{e}");
    assert!(listing::fetch_list(&c.olga, true).await.unwrap().is_empty());
    // Only the keeping organisation's caseworkers and approvers change it.
    let e = cases::change(&c.dave, CASE, org("other-law"), true, None).await.unwrap_err();
    assert!(e.to_string().contains("cps-se") || e.to_string().contains("CPS"), "{e}");

    let f = forward::forward(&c.carol, redacted(&c, t, "dave")).await.unwrap().sent.transfer;
    approvals::approve(&c.dana, f, |_| true).await.unwrap();
    // The firm comes off the roster before fetching: refused from then on.
    let r = cases::change(&c.dana, CASE, org("smith-law"), false, Some("firm withdrew".into())).await.unwrap();
    assert!(r.roster.is_empty() && r.changes.len() == 2 && r.changes[1].by == "dana");
    let e = fetch_to(&c.dave, f, &c.f.path("dave-in")).await.unwrap_err();
    assert!(e.to_string().contains("not on the roster"), "{e}");
    // Every change is audited under the case.
    let audit = c.f.state().meta.read().unwrap().audit_about(CASE, 0, 100).unwrap();
    let actions: Vec<&str> = audit.iter().map(|e| e.body.action.as_str()).collect();
    assert_eq!(actions, ["case-open", "roster-allow", "roster-disallow"], "{actions:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_access_expires_on_the_clock_and_the_sender_can_extend_it() {
    const T0: u64 = 1_800_000_000;
    let clock = ManualClock::new(T0);
    let f = Fixture::start_with(Arc::new(clock.clone()), Background::Off, |_| {}).await;
    let c = cast(f).await;
    cases::change(&c.carol, "PROB-1", org("probation-se"), true, Some("pre-sentence report".into())).await.unwrap();
    let clean = Labels {
        schedule: Some(Schedule::Used),
        redaction: Redaction::Redacted,
        victim_details: false,
        ..Labels::default()
    };
    let pack = |name: &str, seed: u64, expires: Option<u64>| {
        let src = c.f.path(name);
        std::fs::write(src.join("pack.pdf"), bytes(3000, seed)).unwrap();
        let mut o = send::SendOptions::new(vec![src.join("pack.pdf")], vec![uid("pete")]);
        o.chunk_size = 1024;
        o.case_ref = Some("PROB-1".into());
        o.labels = LabelPlan { base: clean, ..LabelPlan::default() };
        o.expires_secs = expires;
        o
    };
    let mut sent = vec![];
    for (i, expires) in [Some(14 * DAY), Some(14 * DAY), None].into_iter().enumerate() {
        let t = send::send(&c.carol, pack(&format!("pack-{i}"), i as u64 + 10, expires)).await.unwrap().transfer;
        approvals::approve(&c.dana, t, |_| true).await.unwrap();
        sent.push(t);
    }
    let (fetched, unfetched, default) = (sent[0], sent[1], sent[2]);
    let pete = &c.pete;
    let info = |t: TransferId| async move {
        listing::fetch_list(pete, true).await.unwrap().into_iter().find(|x| x.transfer == t).unwrap()
    };
    // 14 days from release, as asked; probation's configured default too.
    assert_eq!(info(fetched).await.access_until, Some(T0 + 14 * DAY));
    assert_eq!(info(default).await.access_until, Some(T0 + 14 * DAY), "probation's default access period");
    fetch_to(&c.pete, fetched, &c.f.path("pete-0")).await.unwrap();
    let before = c.f.chunk_files().len();

    // The sender extends one; then the clock passes 14 days.
    exhibit_client::custody::extend(&c.carol, default, 7 * DAY).await.unwrap();
    assert!(exhibit_client::custody::extend(&c.pete, default, DAY).await.is_err(), "only its sender extends it");
    clock.advance(14 * DAY + 1);
    // Refused as soon as it is over, even before the scheduler runs.
    let e = fetch_to(&c.pete, unfetched, &c.f.path("pete-1")).await.unwrap_err();
    assert!(e.to_string().contains("access ended"), "{e}");
    let report = alerts::scan(c.f.state(), clock.now()).unwrap();
    assert_eq!(report.expired.len(), 2, "{report:?}");
    assert!(report.expired.contains(&fetched) && report.expired.contains(&unfetched));
    let e = fetch_to(&c.pete, unfetched, &c.f.path("pete-2")).await.unwrap_err();
    assert!(e.to_string().contains("expired"), "{e}");
    assert_eq!(info(unfetched).await.state, TransferState::Expired);
    // The chunks no transfer needs are gone; fsck is clean.
    assert!(c.f.chunk_files().len() < before, "expired chunks kept");
    let state = c.f.state().clone();
    let fsck =
        tokio::task::spawn_blocking(move || exhibit_server::fsck::fsck_state(&state, true)).await.unwrap().unwrap();
    assert!(fsck.healthy() && fsck.orphans.is_empty(), "{fsck:?}");
    // Receipts and custody are kept; the expiry is audited.
    let (r, bundles) = custody::custody(&c.carol, fetched).await.unwrap();
    assert_eq!((r.state.as_str(), bundles.len()), ("expired", 1));
    assert!(r.steps.iter().any(|s| s.action == "access-expired"), "{:?}", r.steps);
    // The extended one is still there to fetch.
    fetch_to(&c.pete, default, &c.f.path("pete-3")).await.unwrap();
    clock.advance(7 * DAY);
    assert_eq!(alerts::scan(c.f.state(), clock.now()).unwrap().expired, vec![default]);
}
