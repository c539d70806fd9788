//! Arrival notices: a recipient is e-mailed when a transfer is released
//! to them (a unit's members and its address too), with what the server
//! knows and nothing sealed; never the admins; none before a disclosure
//! approver releases it.

use std::sync::Arc;

use exhibit_client::ops::units::{self, NewUnit};
use exhibit_client::send;
use exhibit_proto::directory::Role;
use exhibit_proto::frame::AlertKind;
use exhibit_proto::org::OrgId;
use exhibit_proto::unit::AckRule;
use exhibit_server::{notify, Background, ManualClock};

use crate::fixture::*;

/// The unit `cps-se-mags` (its own address mags@example.test) with
/// `members`; `ann`, a member, makes its key.
async fn mags_unit(f: &Fixture, ann: &exhibit_client::Home, members: &[&str]) {
    let unit = NewUnit {
        unit: uid("cps-se-mags"),
        org: OrgId::new("cps-se").unwrap(),
        name: "Magistrates' unit".into(),
        ack: AckRule::One,
        email: Some("mags@example.test".into()),
    };
    units::put(&f.admin, unit, false).await.unwrap();
    units::members(&f.admin, uid("cps-se-mags"), members.iter().map(|m| uid(m)).collect(), vec![]).await.unwrap();
    units::list(ann, false).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recipient_and_a_units_members_are_told_of_an_arrival_and_the_admins_are_not() {
    let (smtp_port, mailbox) = crate::alerts::start_smtp();
    let clock = ManualClock::new(1_800_000_000);
    let f = Fixture::start_with(Arc::new(clock.clone()), Background::Off, move |c| {
        c.smtp = Some(crate::alerts::local_smtp(smtp_port));
        c.admin_emails = vec!["duty@example.test".into()];
    })
    .await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    f.user("bob", Role::Caseworker).await;
    let ann = f.user("ann", Role::Caseworker).await;
    mags_unit(&f, &ann, &["ann"]).await;

    let src = f.path("src");
    std::fs::write(src.join("SECRET-NAME-ABE.mp4"), bytes(3000, 4)).unwrap();
    let mut o = send::SendOptions::new(vec![src.join("SECRET-NAME-ABE.mp4")], vec![uid("bob"), uid("cps-se-mags")]);
    o.case_ref = Some("OP-NOTICE".into());
    o.note = Some("SEALED NOTE".into());
    let t = send::send(&alice, o).await.unwrap().transfer;
    assert_eq!(notify::deliver_due(f.state()).await.unwrap(), 2, "one notice per recipient");
    assert_eq!(notify::deliver_due(f.state()).await.unwrap(), 0, "a notice sent twice");

    let mut mail = mailbox.0.lock().unwrap().clone();
    mail.sort();
    let to: Vec<Vec<String>> = mail.iter().map(|(to, _)| to.clone()).collect();
    assert_eq!(to, [vec!["ann@example.test".to_owned(), "mags@example.test".into()], vec!["bob@example.test".into()]]);
    for (_, body) in &mail {
        // Quoted-printable: soft line breaks joined again.
        let body = body.replace("=\r\n", "").replace("=\n", "");
        assert!(body.contains("NEW EVIDENCE") && body.contains("OP-NOTICE") && body.contains("ALICE (alice"), "{body}");
        assert!(body.contains("Kent Police") && body.contains("acknowledge by"), "{body}");
        assert!(body.contains(&format!("exhibit show {}", &t.to_string()[..8])), "{body}");
        assert!(!body.contains("SECRET-NAME") && !body.contains("SEALED NOTE"), "sealed text in a notice: {body}");
    }
    // Tracked like alerts, never open ones.
    let all = exhibit_server::app::listings::every_alert(f.state(), true).unwrap();
    assert_eq!(all.iter().filter(|a| matches!(a.info.kind, AlertKind::Arrived { .. })).count(), 2);
    assert!(
        exhibit_server::app::listings::every_alert(f.state(), false).unwrap().is_empty(),
        "a notice is an open alert"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_notices_off_nobody_is_mailed_on_arrival() {
    let (smtp_port, mailbox) = crate::alerts::start_smtp();
    let f = Fixture::start_with(Arc::new(exhibit_server::SystemClock), Background::Off, move |c| {
        c.smtp = Some(crate::alerts::local_smtp(smtp_port));
        c.arrival_notices = false;
    })
    .await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    f.user("bob", Role::Caseworker).await;
    send_paths(
        &alice,
        vec![{
            let src = f.path("s");
            std::fs::write(src.join("a"), b"x").unwrap();
            src.join("a")
        }],
        &["bob"],
        1024,
    )
    .await;
    assert_eq!(notify::deliver_due(f.state()).await.unwrap(), 0);
    assert!(mailbox.0.lock().unwrap().is_empty());
}

/// A user who turns their notices off is not mailed on arrival, and their
/// unit's other members and address still are; turned on again, they are.
/// Their overdue alerts are not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_who_turns_notices_off_is_not_mailed_and_the_rest_of_the_unit_is() {
    let (smtp_port, mailbox) = crate::alerts::start_smtp();
    let f = Fixture::start_with(Arc::new(exhibit_server::SystemClock), Background::Off, move |c| {
        c.smtp = Some(crate::alerts::local_smtp(smtp_port));
    })
    .await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let ann = f.user("ann", Role::Caseworker).await;
    mags_unit(&f, &ann, &["ann", "bob"]).await;
    exhibit_client::ops::directory::set_notices(&bob, false).await.unwrap();
    let file = {
        let src = f.path("s");
        std::fs::write(src.join("a"), b"x").unwrap();
        src.join("a")
    };
    let mailed = |to: &[&str]| {
        let mut got: Vec<Vec<String>> = mailbox.0.lock().unwrap().drain(..).map(|(to, _)| to).collect();
        got.sort();
        let mut want: Vec<Vec<String>> = to.iter().map(|l| l.split(' ').map(str::to_owned).collect()).collect();
        want.sort();
        assert_eq!(got, want);
    };

    send_paths(&alice, vec![file.clone()], &["bob"], 1024).await;
    assert_eq!(notify::deliver_due(f.state()).await.unwrap(), 0, "bob turned his notices off");
    send_paths(&alice, vec![file.clone()], &["cps-se-mags"], 1024).await;
    assert_eq!(notify::deliver_due(f.state()).await.unwrap(), 1);
    mailed(&["ann@example.test mags@example.test"]);

    exhibit_client::ops::directory::set_notices(&bob, true).await.unwrap();
    send_paths(&alice, vec![file.clone()], &["bob"], 1024).await;
    assert_eq!(notify::deliver_due(f.state()).await.unwrap(), 1);
    mailed(&["bob@example.test"]);

    // An admin changes bob's address: the next notice goes there.
    let e = exhibit_client::admin::set_email(&f.admin, uid("bob"), Some("not an address".into())).await.unwrap_err();
    assert!(e.to_string().contains("is not an e-mail address"), "{e}");
    exhibit_client::admin::set_email(&f.admin, uid("bob"), Some("bob.jones@cps.example.test".into())).await.unwrap();
    send_paths(&alice, vec![file], &["bob"], 1024).await;
    assert_eq!(notify::deliver_due(f.state()).await.unwrap(), 1);
    mailed(&["bob.jones@cps.example.test"]);
    let audit = exhibit_client::audit::export(&f.admin, 1).await.unwrap();
    let said: Vec<&str> =
        audit.iter().filter(|e| e.body.action == "notices").map(|e| e.body.details.as_str()).collect();
    assert_eq!(said, ["arrival notices turned off", "arrival notices turned on"]);
    let changed = audit.iter().find(|e| e.body.action == "user-email").expect("the change is audited");
    assert_eq!(changed.body.details, "e-mail bob@example.test -> bob.jones@cps.example.test");
}
