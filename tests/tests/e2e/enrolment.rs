//! Issue 25, item 4: enrolment abuse. Connections without a certificate
//! are limited per source address, and wrong codes are audited, cost
//! their source a growing wait (on the injected clock) and raise an alert.
//! Two sources on loopback: 127.0.0.2 plays the abuser, 127.0.0.1 everyone
//! else.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use exhibit_client::conn::Conn;
use exhibit_client::{admin, audit, enrol, ClientError, Home};
use exhibit_proto::directory::Role;
use exhibit_proto::frame::{AlertKind, ErrorCode};
use exhibit_server::{Background, ManualClock, SystemClock};

use crate::fixture::*;

const ABUSER: &str = "127.0.0.2:0";
const OTHER: &str = "127.0.0.1:0";

fn from(a: &str) -> Option<SocketAddr> {
    Some(a.parse().unwrap())
}

async fn code_for(f: &Fixture, id: &str) -> String {
    admin::add_user(&f.admin, uid(id), id.into(), "cps-se".into(), &[Role::Caseworker], None).await.unwrap().0
}

async fn enrol_as(f: &Fixture, home: &str, bind: &str, code: &str) -> Result<(), ClientError> {
    let pem = std::fs::read(&f.ca).unwrap();
    enrol::enrol_from(&Home::new(f.dir.path().join(home)), from(bind), &f.addr, code, &pem).await.map(|_| ())
}

/// 64 idle connections without a certificate from one address used to
/// take every place, so nobody could enrol for 30 s (and again, for as
/// long as they were renewed). One address now holds at most
/// `max_connections_per_source`; the rest of its connections are closed
/// at once, and another address still enrols.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_from_one_address_do_not_stop_enrolment_from_another() {
    let f = Fixture::start().await;
    let code = code_for(&f, "carol").await;
    let ca = exhibit_client::home::pem_body(&std::fs::read(&f.ca).unwrap()).unwrap();
    let mut held = vec![];
    for i in 0..f.state().settings.config.enrolment.max_connections {
        let c = Conn::connect_from(ABUSER.parse().unwrap(), &f.addr, &ca, None);
        let c = tokio::time::timeout(Duration::from_secs(20), c).await;
        held.push(c.unwrap_or_else(|_| panic!("connection {i} hung")).unwrap());
    }
    // Give the server time to seat every one of them (or turn it away).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let open = held.iter().filter(|c| c.connection().close_reason().is_none()).count();
    let per_source = f.state().settings.config.enrolment.max_connections_per_source;
    assert!(open <= per_source, "{open} connections from one address held; at most {per_source} may be");

    let enrolled = tokio::time::timeout(Duration::from_secs(20), enrol_as(&f, "home-carol", OTHER, &code)).await;
    enrolled.expect("enrolment hung").expect("enrolment from another address was blocked");
    drop(held);
}

/// A flood of wrong codes from one address: the first few are checked and
/// audited, then the address must wait (30 s, doubling), refused unheard,
/// even with a right code; the burst raises an alert; another address is
/// not held back; once the wait is over a right code works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_code_flood_is_audited_rate_limited_and_alerted() {
    let clock = ManualClock::new(1_800_000_000);
    let f = Fixture::start_with(Arc::new(clock.clone()), Background::Off, |_| {}).await;
    let limits = f.state().settings.enrol_limits.clone();
    let (free, backoff) = (limits.free_failures as usize, limits.backoff);
    let dave = code_for(&f, "dave").await;
    let erin = code_for(&f, "erin").await;

    let mut said = vec![];
    for i in 0..(limits.alert_after as usize + 5) {
        let err = enrol_as(&f, "home-guess", ABUSER, &format!("WRNG-CODE-{i:04}-XXXX")).await.unwrap_err();
        assert_eq!(err.server_code(), Some(ErrorCode::Unauthenticated), "{err}");
        said.push(err.to_string());
    }
    for (i, s) in said.iter().enumerate() {
        if i < free {
            assert!(s.contains("unknown or already used enrolment code") && !s.contains("refused for"), "{i}: {s}");
        } else if i == free {
            assert!(s.contains("unknown or already used enrolment code; refused for 30s"), "{i}: {s}");
        } else {
            assert!(s.contains("too many wrong enrolment codes from 127.0.0.2: try again in 30s"), "{i}: {s}");
        }
    }
    // A right code from the waiting address is refused unheard, and not spent.
    let err = enrol_as(&f, "home-dave", ABUSER, &dave).await.unwrap_err();
    assert!(err.to_string().contains("too many wrong enrolment codes"), "{err}");
    // Another address is not held back.
    enrol_as(&f, "home-erin", OTHER, &erin).await.unwrap();

    // Each wrong code that was checked is audited with its address; the
    // ones refused unheard are not (a flood cannot flood the log).
    let entries = audit::export(&f.admin, 1).await.unwrap();
    let refused: Vec<_> = entries.iter().filter(|e| e.body.action == "enrol-refused").collect();
    assert_eq!(refused.len(), free + 1, "{refused:#?}");
    assert!(refused.iter().all(|e| e.body.subject == "127.0.0.2"), "{refused:#?}");
    assert!(refused[free]
        .body
        .details
        .contains(&format!("wrong code {} from this address; refused for 30s", free + 1)));

    // The burst raised one alert, audited like every alert.
    let alerts = admin::alerts(&f.admin, true).await.unwrap();
    let burst: Vec<_> = alerts.iter().filter(|a| matches!(a.kind, AlertKind::EnrolmentRefused { .. })).collect();
    assert_eq!(burst.len(), 1, "{alerts:#?}");
    assert!(burst[0].message.contains("127.0.0.2"), "{}", burst[0].message);
    assert!(entries.iter().any(|e| e.body.action == "alert" && e.body.details.contains("ENROLMENT REFUSALS")));

    // Once the wait is over, the address may try again, and a right code works.
    clock.advance(backoff);
    enrol_as(&f, "home-dave", ABUSER, &dave).await.unwrap();
}

/// The limits are the server's config: `[enrolment]`, with defaults.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolment_limits_come_from_the_config() {
    let f = Fixture::start_with(Arc::new(SystemClock), Background::Off, |c| {
        c.enrolment.free_failures = 1;
        c.enrolment.backoff = "5m".into();
    })
    .await;
    for (i, wait) in [(0, None), (1, Some("refused for 5m"))] {
        let err = enrol_as(&f, "home-x", ABUSER, &format!("WRNG-CODE-{i:04}-XXXX")).await.unwrap_err().to_string();
        assert_eq!(err.contains("refused for"), wait.is_some(), "{err}");
        if let Some(w) = wait {
            assert!(err.contains(w), "{err}");
        }
    }
}
