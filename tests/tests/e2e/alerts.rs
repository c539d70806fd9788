//! Alerts: driven by an injected clock, so deadlines are exact and instant;
//! delivered to a real SMTP server and a real HTTP listener.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use exhibit_client::admin;
use exhibit_client::conn::Conn;
use exhibit_proto::directory::Role;
use exhibit_proto::frame::{AlertInfo, AlertKind, ErrorCode, Request};
use exhibit_proto::TransferId;
use exhibit_server::clock::Clock;
use exhibit_server::config::{SmtpConfig, WebhookConfig};
use exhibit_server::{alerts, notify, Background, ManualClock};
use hmac::Mac;

use crate::fixture::*;

const T0: u64 = 1_800_000_000;
const HOUR: u64 = 3600;

async fn manual(tweak: impl FnOnce(&mut exhibit_server::config::Config)) -> (Fixture, ManualClock) {
    let clock = ManualClock::new(T0);
    (Fixture::start_with(Arc::new(clock.clone()), Background::Off, tweak).await, clock)
}

async fn send_with_ack(f: &Fixture, from: &exhibit_client::Home, ack: u64) -> TransferId {
    let src = f.path(&format!("src-{}", rand::random::<u32>()));
    std::fs::write(src.join("interview.mp4"), bytes(3000, 9)).unwrap();
    let mut o = exhibit_client::send::SendOptions::new(vec![src.join("interview.mp4")], vec![uid("bob")]);
    o.ack_within_secs = Some(ack);
    o.case_ref = Some("OP-ALERT".into());
    o.chunk_size = 1024;
    exhibit_client::send::send(from, o).await.unwrap().transfer
}

fn all_alerts(f: &Fixture) -> Vec<AlertInfo> {
    exhibit_server::app::listings::every_alert(f.state(), true).unwrap().into_iter().map(|a| a.info).collect()
}

fn scan(f: &Fixture) -> Vec<u64> {
    alerts::scan(f.state(), f.state().clock.now()).unwrap().raised
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overdue_alerts_exactly_at_deadline_escalate_and_stop_once_acknowledged() {
    let (f, clock) = manual(|c| c.escalate_after = vec!["4h".into(), "24h".into()]).await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let t = send_with_ack(&f, &alice, HOUR).await;
    let deadline = T0 + HOUR;

    clock.set(deadline - 1);
    assert!(scan(&f).is_empty(), "alerted before the deadline");
    clock.set(deadline);
    assert_eq!(scan(&f).len(), 1, "no alert at the deadline");
    assert!(scan(&f).is_empty(), "duplicate alert");
    let a = &all_alerts(&f)[0];
    assert_eq!(a.kind, AlertKind::Overdue { level: 0 });
    assert_eq!(a.transfer, Some(t));
    assert_eq!(a.waiting_for, vec![uid("bob")]);
    assert_eq!(a.case_ref.as_deref(), Some("OP-ALERT"));
    assert!(!a.message.contains("interview"), "a file name in an alert: {}", a.message);

    clock.set(deadline + 4 * HOUR - 1);
    assert!(scan(&f).is_empty(), "escalated early");
    clock.set(deadline + 4 * HOUR);
    assert_eq!(scan(&f).len(), 1, "no escalation at deadline + 4h");
    assert_eq!(all_alerts(&f)[0].kind, AlertKind::Overdue { level: 1 });

    // The admin's overdue view agrees.
    let overdue = admin::transfers(&f.admin, true).await.unwrap();
    assert_eq!(overdue.iter().map(|x| x.transfer).collect::<Vec<_>>(), vec![t]);

    // Bob acknowledges: the 24h escalation never comes, and both alerts
    // close themselves, each with a note and an audit entry.
    assert_eq!(admin::alerts(&f.admin, false).await.unwrap().len(), 2, "open before the acknowledgement");
    fetch_to(&bob, t, &f.path("out")).await.unwrap();
    assert!(admin::alerts(&f.admin, false).await.unwrap().is_empty(), "an alert stayed open after acknowledgement");
    for a in all_alerts(&f) {
        let ack = a.ack.expect("closed");
        assert_eq!((ack.by.as_str(), ack.note.as_str()), ("exhibitd", "resolved: every recipient acknowledged"));
    }
    let resolved: Vec<_> = exhibit_client::audit::export(&f.admin, 1)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.body.action == "alert-resolved")
        .collect();
    assert_eq!(resolved.len(), 2, "{resolved:#?}");
    assert!(resolved.iter().all(|e| e.body.actor == "exhibitd" && e.body.subject == t.to_string()));
    clock.set(deadline + 30 * 24 * HOUR);
    assert!(scan(&f).is_empty(), "escalated after acknowledgement");
    assert_eq!(all_alerts(&f).len(), 2);
    assert!(admin::transfers(&f.admin, true).await.unwrap().is_empty());
}

/// An upload that stalls is alerted; one that seals late closes its
/// alert; one that never seals is given up a grace period after its
/// alert: its chunks deleted, the transfer ended, the alert closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upload_closes_its_alert_when_sealed_and_is_given_up_after_the_grace() {
    let (f, clock) = manual(|c| {
        c.stalled_upload_after = "2h".into();
        c.abandon_upload_after = "1d".into();
    })
    .await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    f.user("bob", Role::Caseworker).await;
    let conn = Conn::open(&alice.load().unwrap()).await.unwrap();
    let (late, never) = (TransferId::random(), TransferId::random());
    conn.request(&create_to_bob(late)).await.unwrap();
    conn.request(&create_to_bob(never)).await.unwrap();
    let chunk = bytes(5000, 3);
    let id = exhibit_proto::ChunkId(*blake3::hash(&chunk).as_bytes());
    conn.request_with_body(&Request::PutChunk { transfer: never, id, len: chunk.len() as u32 }, &chunk).await.unwrap();
    assert_eq!(f.chunk_files().len(), 1);
    clock.advance(2 * HOUR);
    assert_eq!(scan(&f).len(), 2, "both stalled uploads alerted");
    assert_eq!(admin::alerts(&f.admin, false).await.unwrap().len(), 2);

    // One is given up by its sender (revoked): its alert closes.
    exhibit_client::custody::revoke(&alice, late).await.unwrap();
    let open = admin::alerts(&f.admin, false).await.unwrap();
    assert_eq!(open.iter().map(|a| a.transfer).collect::<Vec<_>>(), vec![Some(never)]);

    // The other is never sealed: a day after its alert the server gives it up.
    clock.advance(24 * HOUR - 1);
    assert!(alerts::scan(f.state(), clock.now()).unwrap().expired.is_empty(), "given up early");
    clock.advance(1);
    assert_eq!(alerts::scan(f.state(), clock.now()).unwrap().expired, vec![never]);
    assert!(f.chunk_files().is_empty(), "an abandoned upload's chunk stayed");
    assert!(admin::alerts(&f.admin, false).await.unwrap().is_empty(), "the stall alert stayed open");
    let rec = f.state().meta.read().unwrap().transfer(&never).unwrap().unwrap();
    assert_eq!(rec.state, exhibit_proto::frame::TransferState::Expired);
    let audit = exhibit_client::audit::export(&f.admin, 1).await.unwrap();
    let gave_up = audit.iter().find(|e| e.body.action == "upload-abandoned").expect("audited");
    assert_eq!((gave_up.body.actor.as_str(), gave_up.body.subject.clone()), ("exhibitd", never.to_string()));
    let r = exhibit_server::fsck::fsck_state(f.state(), false).unwrap();
    assert!(r.healthy() && r.orphans.is_empty(), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_acknowledged_before_deadline_never_alerts() {
    let (f, clock) = manual(|_| {}).await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let t = send_with_ack(&f, &alice, HOUR).await;
    clock.advance(HOUR - 1);
    fetch_to(&bob, t, &f.path("out")).await.unwrap();
    for step in [1, HOUR, 4 * HOUR, 30 * 24 * HOUR] {
        clock.advance(step);
        assert!(scan(&f).is_empty());
    }
    assert!(all_alerts(&f).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_mid_scan_neither_duplicates_nor_misses() {
    let (mut f, clock) = manual(|c| c.escalate_after = vec![]).await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    f.user("bob", Role::Caseworker).await;
    let mut sent = vec![];
    for _ in 0..5 {
        sent.push(send_with_ack(&f, &alice, HOUR).await);
    }
    clock.set(T0 + 2 * HOUR);
    // Part of a scan commits, then the server goes away.
    let part = alerts::scan_batch(f.state(), clock.now(), 2).unwrap();
    assert_eq!(part.raised.len(), 2);
    f.restart().await;
    assert_eq!(scan(&f).len(), 3);
    assert!(scan(&f).is_empty());
    let mut alerted: Vec<TransferId> = all_alerts(&f).iter().filter_map(|a| a.transfer).collect();
    alerted.sort();
    sent.sort();
    assert_eq!(alerted, sent, "every transfer exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_man_alarm_when_no_scan_completes() {
    let (f, clock) = manual(|c| c.scan_interval = "60s".into()).await;
    let s = f.state();
    alerts::scan(s, T0).unwrap();
    clock.set(T0 + 120);
    assert_eq!(alerts::watchdog(s, clock.now(), T0).unwrap(), None, "alarm at exactly 2x the interval");
    clock.set(T0 + 121);
    assert!(alerts::watchdog(s, clock.now(), T0).unwrap().is_some());
    assert_eq!(alerts::watchdog(s, clock.now() + 10, T0).unwrap(), None, "same stall alerted twice");
    assert!(matches!(all_alerts(&f)[0].kind, AlertKind::SchedulerStalled { last_scan: T0 }));
    // A scan completes: the alarm clears; a later stall alerts again.
    alerts::scan(s, T0 + 200).unwrap();
    assert_eq!(alerts::watchdog(s, T0 + 250, T0).unwrap(), None);
    assert!(alerts::watchdog(s, T0 + 400, T0).unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_upload_revoked_recipient_and_rejected_receipt_alert() {
    let (f, clock) = manual(|c| c.stalled_upload_after = "2h".into()).await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;

    // An upload that never seals.
    let conn = Conn::open(&alice.load().unwrap()).await.unwrap();
    let stalled = TransferId::random();
    conn.request(&create_to_bob(stalled)).await.unwrap();
    clock.advance(2 * HOUR);
    assert_eq!(scan(&f).len(), 1);
    let a = &all_alerts(&f)[0];
    assert_eq!((a.kind.clone(), a.transfer), (AlertKind::StalledUpload, Some(stalled)));

    // A receipt that fails verification.
    let t = send_with_ack(&f, &alice, 8 * HOUR).await;
    let bp = bob.load().unwrap();
    let mut one = exhibit_proto::merkle::Root::new();
    one.push(&[0; 32]);
    let forged = exhibit_proto::Receipt::new(t, [0; 32], uid("bob"), 0, &one)
        .sign(&ed25519_dalek::SigningKey::from_bytes(&rand::random()));
    let bconn = Conn::open(&bp).await.unwrap();
    bconn.request(&Request::SubmitReceipt { receipt: forged }).await.unwrap_err();
    assert!(matches!(all_alerts(&f)[0].kind, AlertKind::ReceiptRejected { .. }));

    // Bob is revoked: his pending transfer alerts and he is shut out.
    admin::revoke_user(&f.admin, uid("bob")).await.unwrap();
    let a = &all_alerts(&f)[0];
    assert_eq!((a.kind.clone(), a.transfer), (AlertKind::RevokedRecipient { user: uid("bob") }, Some(t)));
    let err = exhibit_client::listing::fetch_list(&bob, true).await.unwrap_err();
    assert!(err.to_string().contains("its user has been revoked"), "{err}");
    // Non-admins cannot read alerts.
    let err = admin::alerts(&alice, true).await.unwrap_err();
    assert_eq!(err.server_code(), Some(ErrorCode::Forbidden));
}

/// A received message: envelope recipients and the raw message.
pub(crate) type Mail = (Vec<String>, String);

/// A real SMTP server (mailin-embedded) collecting messages.
#[derive(Clone, Default)]
pub(crate) struct Mailbox(pub(crate) Arc<Mutex<Vec<Mail>>>, Arc<Mutex<Vec<String>>>, Arc<Mutex<Vec<u8>>>);

impl mailin_embedded::Handler for Mailbox {
    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, to: &[String]) -> mailin_embedded::Response {
        *self.1.lock().unwrap() = to.to_vec();
        self.2.lock().unwrap().clear();
        mailin_embedded::response::OK
    }
    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.2.lock().unwrap().extend_from_slice(buf);
        Ok(())
    }
    fn data_end(&mut self) -> mailin_embedded::Response {
        let body = String::from_utf8_lossy(&self.2.lock().unwrap()).into_owned();
        self.0.lock().unwrap().push((self.1.lock().unwrap().clone(), body));
        mailin_embedded::response::OK
    }
}

/// The server's e-mail settings for the in-process SMTP server on `port`.
pub(crate) fn local_smtp(port: u16) -> SmtpConfig {
    SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        tls: "none".into(),
        from: "exhibit@example.test".into(),
        username: None,
        password: None,
    }
}

pub(crate) fn start_smtp() -> (u16, Mailbox) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mailbox = Mailbox::default();
    let mut server = mailin_embedded::Server::new(mailbox.clone());
    server.with_name("mail.test").with_tcp_listener(listener).with_num_threads(2);
    std::thread::spawn(move || {
        let _ = server.serve().map_err(|e| e.to_string());
    });
    (port, mailbox)
}

/// A real HTTP listener that checks the HMAC of every POST (it listens
/// while the returned listener is kept).
pub(crate) fn start_webhook(
    listener: std::net::TcpListener,
    secret: &'static str,
) -> (Arc<Mutex<Vec<serde_json::Value>>>, exhibit_net::http::Listener) {
    use axum::http::{HeaderMap, StatusCode};
    let got = Arc::new(Mutex::new(vec![]));
    let g = got.clone();
    let app = axum::Router::new().fallback(move |headers: HeaderMap, body: axum::body::Bytes| {
        let g = g.clone();
        async move {
            let sig = headers.get("X-Exhibit-Signature").and_then(|v| v.to_str().ok()).unwrap_or_default();
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
            mac.update(&body);
            let want = format!("sha256={}", hex_lower(&mac.finalize().into_bytes()));
            if sig == want {
                g.lock().unwrap().push(serde_json::from_slice(&body).unwrap());
                StatusCode::OK
            } else {
                StatusCode::UNAUTHORIZED
            }
        }
    });
    let l = exhibit_net::http::Listener::serve(listener, None, app, &tokio::runtime::Handle::current()).unwrap();
    (got, l)
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_email_and_signed_webhook_and_retry_until_delivered() {
    let (smtp_port, mailbox) = start_smtp();
    // The webhook's port is reserved but nothing listens yet: it is "down".
    let reserved = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hook_addr = reserved.local_addr().unwrap();
    drop(reserved);
    let (f, clock) = manual(move |c| {
        c.webhook = Some(WebhookConfig { url: format!("http://{hook_addr}/exhibit"), secret: "s3cret".into() });
        c.smtp = Some(local_smtp(smtp_port));
        c.admin_emails = vec!["duty@example.test".into()];
        c.arrival_notices = false; // alerts alone here; notices: notices.rs
    })
    .await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    f.user("bob", Role::Caseworker).await;
    let t = send_with_ack(&f, &alice, HOUR).await;
    clock.advance(HOUR + 90);
    assert_eq!(scan(&f).len(), 1);

    let delivered = notify::deliver_due(f.state()).await.unwrap();
    assert_eq!(delivered, 2, "log and email should deliver, the webhook is down");
    let a = &all_alerts(&f)[0];
    let hook = a.deliveries.iter().find(|d| d.notifier == "webhook").unwrap();
    assert_eq!((hook.attempts, hook.delivered_at), (1, None));
    assert!(hook.last_error.is_some());
    let mail = mailbox.0.lock().unwrap().clone();
    assert_eq!(mail.len(), 1);
    let mut to = mail[0].0.clone();
    to.sort();
    assert_eq!(to, ["alice@example.test", "bob@example.test", "duty@example.test"]);
    assert!(mail[0].1.contains(&t.to_string()) && mail[0].1.contains("OP-ALERT"), "{}", mail[0].1);
    assert!(!mail[0].1.contains("interview.mp4"), "file name in an e-mail");

    // The listener comes up; before the backoff nothing is retried, after it the alert arrives.
    let (got, _hook) = start_webhook(std::net::TcpListener::bind(hook_addr).unwrap(), "s3cret");
    assert_eq!(notify::deliver_due(f.state()).await.unwrap(), 0);
    clock.advance(notify::backoff(0));
    assert_eq!(notify::deliver_due(f.state()).await.unwrap(), 1);
    let posts = got.lock().unwrap().clone();
    assert_eq!(posts.len(), 1, "webhook not delivered (or HMAC rejected)");
    assert_eq!(posts[0]["transfer"], t.to_string());
    assert_eq!(posts[0]["case_ref"], "OP-ALERT");
    assert_eq!(posts[0]["waiting_for"][0], "bob");
    assert_eq!(posts[0]["overdue_secs"], 90 + notify::backoff(0));
    let a = &all_alerts(&f)[0];
    assert!(a.deliveries.iter().all(|d| d.delivered_at.is_some()), "{:?}", a.deliveries);
    assert_eq!(mailbox.0.lock().unwrap().len(), 1, "e-mail sent twice");

    // Acknowledging the alert takes it off the open list.
    admin::ack_alert(&f.admin, a.id, "phoned CPS, disc re-sent".into()).await.unwrap();
    assert!(admin::alerts(&f.admin, false).await.unwrap().is_empty());
    assert_eq!(admin::alerts(&f.admin, true).await.unwrap()[0].ack.as_ref().unwrap().note, "phoned CPS, disc re-sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_time_alert_shows_in_admin_alerts_within_five_seconds() {
    let f = Fixture::start_with(Arc::new(exhibit_server::SystemClock), Background::On, |c| {
        c.scan_interval = "1s".into();
    })
    .await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    f.user("bob", Role::Caseworker).await;
    let t = send_with_ack(&f, &alice, 2).await;
    let start = std::time::Instant::now();
    let found = loop {
        let open = admin::alerts(&f.admin, false).await.unwrap();
        if let Some(a) = open.into_iter().find(|a| a.transfer == Some(t)) {
            break Some(a);
        }
        if start.elapsed() > Duration::from_secs(5) {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let a = found.expect("no alert within 5 s");
    assert_eq!(a.kind, AlertKind::Overdue { level: 0 });
}
