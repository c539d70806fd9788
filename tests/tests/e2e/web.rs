//! Issue 7: the admin dashboard and `exhibit ui`, in a real headless
//! Chromium. Screenshots of each page go to `target/screenshots/`.

use std::sync::Arc;

use exhibit_client::listing;
use exhibit_client::ui::{Ui, UiOptions};
use exhibit_proto::directory::Role;
use exhibit_server::config::DashboardConfig;
use exhibit_server::{alerts, Background, ManualClock};

use crate::browser::{http, Browser};
use crate::fixture::*;

const TOKEN: &str = "dashboard-test-token-0123456789-abc";
/// A file name that must never reach the server.
const SECRET_NAME: &str = "ABE-interview-Witness-K.mp4";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dashboard_lists_an_overdue_transfer_and_acknowledging_its_alert_clears_it() {
    let clock = ManualClock::new(1_800_000_000);
    let f = Fixture::start_with(Arc::new(clock.clone()), Background::Off, with_dashboard).await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    f.user("bob", Role::Caseworker).await;
    let src = f.path("src");
    std::fs::write(src.join(SECRET_NAME), bytes(5000, 1)).unwrap();
    let t = send_paths(&alice, vec![src.join(SECRET_NAME)], &["bob"], 1024).await;
    // Five hours later (the default acknowledge-within is 4 h) the scan
    // raises the overdue alert.
    clock.advance(5 * 3600);
    let raised = alerts::scan(f.state(), exhibit_server::clock::Clock::now(f.state().clock.as_ref())).unwrap().raised;
    assert_eq!(raised.len(), 1);

    let addr = f.server().dashboard_addr().expect("dashboard configured").to_string();
    assert!(addr.starts_with("127.0.0.1:"));
    // Without a session: no actions, no metrics.
    assert_eq!(http("POST", &addr, "/alerts/ack", &[], b"alert=1&note=x&csrf=x").status, 403);
    let m = http("GET", &addr, "/metrics", &[], b"");
    assert_eq!(m.status, 401);
    let m = http("GET", &addr, "/metrics", &[("Authorization", &format!("Bearer {TOKEN}"))], b"");
    assert_eq!(m.status, 200);
    let metrics = m.text();
    for line in [
        "exhibit_transfers{state=\"sealed\"} 1",
        "exhibit_transfers_overdue 1",
        "exhibit_alerts{state=\"open\"} 1",
        "exhibit_alert_scan_duration_seconds ",
    ] {
        assert!(metrics.contains(line), "metrics lack {line:?}:\n{metrics}");
    }

    let login = http("POST", &addr, "/login", &[], format!("token={TOKEN}").as_bytes());
    assert_eq!(login.status, 303);
    let cookie = login.headers.lines().find(|l| l.to_ascii_lowercase().starts_with("set-cookie:")).unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    assert_eq!(http("POST", &addr, "/login", &[], b"token=nope").status, 403);
    assert_eq!(http("POST", &addr, "/login", &[], &vec![b'a'; 100_000]).status, 413, "bounded form body");

    // Everything the page loads comes from the dashboard itself.
    let css = http("GET", &addr, "/assets/govuk-frontend.min.css", &[], b"");
    assert_eq!(css.status, 200);
    assert!(css.headers.contains("text/css") && css.text().contains(".govuk-header"), "{}", css.headers);
    assert!(!css.text().contains("@font-face"), "no font file is asked for");
    let login_page = http("GET", &addr, "/", &[], b"").text();
    assert!(
        !login_page.contains("http://") && !login_page.contains("https://"),
        "no third-party request: {login_page}"
    );
    assert!(!login_page.contains("<script"), "the login page runs no script");

    let Some(b) = tokio::task::block_in_place(Browser::start) else { return };
    let url = format!("http://{addr}/");
    tokio::task::block_in_place(|| {
        b.goto(&url);
        assert!(b.text().contains("admin login"), "{}", b.text());
        b.checked("dashboard-login.png");
        b.type_into("#token", "wrong-token-wrong-token");
        b.submit("form[action='/login'] button");
        let page = b.text();
        assert!(page.contains("There is a problem") && page.contains("Wrong admin token"), "{page}");
        // The error summary links to the field at fault.
        assert!(b.source().contains("href=\"#token\""), "{}", b.source());
        b.checked("dashboard-login-error.png");
        b.type_into("#token", TOKEN);
        b.submit("form[action='/login'] button");

        let page = b.text();
        b.checked("dashboard-overdue.png");
        assert!(page.contains("Overdue transfers (1)"), "{page}");
        assert!(page.contains(&t.to_string()), "the overdue transfer is listed: {page}");
        assert!(page.contains("overdue by 1h"), "{page}");
        assert!(page.contains("Open alerts (1)"), "{page}");
        assert!(page.contains("OP-TEST"), "{page}");
        assert!(page.contains("bob (CPS South East, cps, sealed)"), "waiting for bob: {page}");
        // 5000 bytes sealed: a few KB of ciphertext, shown in KB.
        let size = page.split("none yet ").nth(1).unwrap_or_default().split_whitespace().take(2).collect::<Vec<_>>();
        assert!(size.len() == 2 && size[0].parse::<f64>().is_ok() && size[1] == "KB", "sizes for people: {page}");
        assert!(!page.contains(" bytes"), "{page}");
        assert!(page.contains("Acknowledged") && page.contains("none yet"), "the acknowledged column: {page}");
        // It refreshes itself (a script the CSP allows by its hash), and the
        // user can stop that.
        assert!(b.source().contains("location.reload()") && b.source().contains("id=\"auto-refresh\""));
        b.click("#auto-refresh");
        b.goto(&url);
        let on = b.exec("return document.getElementById('auto-refresh').checked", serde_json::json!([]));
        assert_eq!(on, false, "the script ran (the CSP let it) and kept the choice");
        // Overdue transfers come first.
        assert!(page.find("Overdue transfers").unwrap() < page.find("Open alerts").unwrap());
        assert!(!b.source().contains("ABE-interview"), "no file names on the dashboard");

        // Search by case reference, then the transfer's custody view.
        b.type_into("#case", "op-te");
        b.submit("#search");
        let page = b.text();
        assert!(page.contains("Transfers for case “op-te” (1)"), "{page}");
        b.checked("dashboard-search.png");
        b.exec("document.getElementById('case').value=''", serde_json::json!([]));
        b.type_into("#case", "NO-SUCH-CASE");
        b.submit("#search");
        assert!(b.text().contains("No transfer has a case reference containing “NO-SUCH-CASE”"), "{}", b.text());
        b.goto(&url);
        b.submit(&format!("#overdue a[href='/transfers/{t}']"));
        let page = b.text();
        assert!(
            page.contains("Custody of transfer") && page.contains("Audit log entries about this transfer"),
            "{page}"
        );
        assert!(page.contains("Overdue") && page.contains("OP-TEST"), "{page}");
        b.checked("dashboard-custody.png");
        b.goto(&url);

        // Without a note (the browser would ask first; the server checks
        // too): the dashboard again, the field at fault linked from the top.
        b.exec(
            &format!("document.getElementById('note-{}').removeAttribute('required')", raised[0]),
            serde_json::json!([]),
        );
        b.submit(&format!("#alert-{} button", raised[0]));
        let page = b.text();
        assert!(page.contains("There is a problem") && page.contains("Enter a note saying what was done"), "{page}");
        assert!(b.source().contains(&format!("href=\"#note-{}\"", raised[0])), "linked to the field");
        assert!(page.contains("Open alerts (1)"), "not acknowledged: {page}");
        b.checked("dashboard-alert-error.png");
        b.type_into(&format!("#note-{}", raised[0]), "Phoned CPS South East; Bob fetching today");
        b.submit(&format!("#alert-{} button", raised[0]));
        let page = b.text();
        b.checked("dashboard-acknowledged.png");
        assert!(page.contains("Success") && page.contains("Alert acknowledged"), "a banner says so: {page}");
        assert!(page.contains("Open alerts (0)"), "{page}");
        assert!(page.contains("No open alerts."), "{page}");
        // Still overdue (bob has not acknowledged), but its alert is handled.
        assert!(page.contains("Overdue transfers (1)"), "{page}");

        // Revoking asks once more; going back leaves the user enrolled.
        b.submit("form[action='/users/revoke'] input[value='bob'] ~ button");
        assert!(b.text().contains("Revoke bob?"), "{}", b.text());
        b.checked("dashboard-revoke-confirm.png");
        b.submit("form[action='/users/revoke'] button");
        let page = b.text();
        assert!(page.contains("Revoked 2027-"), "bob is shown revoked: {page}");
        assert!(page.contains("User revoked"), "{page}");
        // His pending transfer raised a revoked-recipient alert.
        assert!(page.contains("Open alerts (1)") && page.contains("REVOKED RECIPIENT"), "{page}");
        b.checked("dashboard-users.png");

        b.submit("#audit button");
        let page = b.text();
        assert!(page.contains("chain intact") && page.contains("Intact"), "{page}");
        b.checked("dashboard-audit.png");

        // An error page keeps the way back.
        b.goto(&format!("{url}transfers/nonsense"));
        let page = b.text();
        assert!(page.contains("Error 400") && page.contains("Back to the dashboard"), "{page}");
        b.checked("dashboard-error.png");
    });
    let a = f.state().meta.read().unwrap().alert(raised[0]).unwrap().unwrap().info;
    let ack = a.ack.expect("acknowledged in the store");
    assert_eq!(ack.note, "Phoned CPS South East; Bob fetching today");
    assert_eq!(ack.by.as_str(), "dashboard");
}

fn with_dashboard(c: &mut exhibit_server::config::Config) {
    c.dashboard = Some(DashboardConfig::new("127.0.0.1:0".parse().unwrap(), TOKEN))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_client_certificate_logs_in_to_the_dashboard_by_a_one_time_link() {
    let f = Fixture::start_with(Arc::new(exhibit_server::SystemClock), Background::Off, with_dashboard).await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let e = exhibit_client::admin::dashboard_login(&alice).await.unwrap_err();
    assert_eq!(e.server_code(), Some(exhibit_proto::frame::ErrorCode::Forbidden), "{e}");
    let (url, _) = exhibit_client::admin::dashboard_login(&f.admin).await.unwrap();
    let addr = f.server().dashboard_addr().unwrap().to_string();
    let path = url.strip_prefix(&format!("http://{addr}")).unwrap().to_owned();
    let code = path.strip_prefix("/once/").unwrap().to_owned();

    tokio::task::block_in_place(|| {
        // Opening the link only shows a button (link previews use nothing up).
        let page = http("GET", &addr, &path, &[], b"");
        assert_eq!(page.status, 200);
        assert!(page.text().contains("one-time link"), "{}", page.text());
        let form = [("Content-Type", "application/x-www-form-urlencoded")];
        let login = http("POST", &addr, "/login", &form, format!("once={code}").as_bytes());
        assert_eq!(login.status, 303, "{}", login.text());
        let set = login.headers.lines().find(|l| l.to_ascii_lowercase().starts_with("set-cookie:")).unwrap();
        let cookie = set.split_once(':').unwrap().1.split(';').next().unwrap().trim().to_owned();
        let dash = http("GET", &addr, "/", &[("Cookie", &cookie)], b"");
        assert_eq!(dash.status, 200);
        assert!(dash.text().contains("Logged in as <strong>admin</strong>"), "{}", dash.text());
        // No revoke button on one's own account, and the server refuses it.
        assert!(!dash.text().contains("Revoke admin"), "{}", dash.text());
        assert!(dash.text().contains("This is you"), "{}", dash.text());
        let csrf = dash.text().split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
        let own = http(
            "POST",
            &addr,
            "/users/revoke",
            &[form[0], ("Cookie", &cookie)],
            format!("csrf={csrf}&user=admin&confirm=yes").as_bytes(),
        );
        assert_eq!(own.status, 400, "{}", own.text());
        // Once only.
        assert_eq!(http("POST", &addr, "/login", &form, format!("once={code}").as_bytes()).status, 403);
    });
    let entries = f.state().meta.read().unwrap().audit_entries(1, 10_000).unwrap();
    assert!(entries.iter().any(|e| e.body.action == "dashboard-login" && e.body.actor == "admin"));

    let plain = Fixture::start().await;
    let e = exhibit_client::admin::dashboard_login(&plain.admin).await.unwrap_err();
    assert_eq!(e.server_code(), Some(exhibit_proto::frame::ErrorCode::Conflict), "no dashboard configured: {e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ui_sends_from_one_page_fetches_on_the_other_and_the_sender_sees_acknowledged() {
    let f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let bob_fp = bob.load().unwrap().me.fingerprint();
    let src = f.path("src");
    // More than one 4 MiB chunk.
    let original = bytes(5_000_000, 7);
    let file = src.join(SECRET_NAME);
    std::fs::write(&file, &original).unwrap();
    let bob_dl = f.path("bob-downloads");
    let rt = tokio::runtime::Handle::current();
    let listen = "127.0.0.1:0".parse().unwrap();
    let ui_a = Ui::start(alice, UiOptions { listen, downloads: f.path("alice-downloads") }, rt.clone()).unwrap();
    let ui_b = Ui::start(bob, UiOptions { listen, downloads: bob_dl.clone() }, rt).unwrap();
    let (url_a, url_b) = (ui_a.url().to_owned(), ui_b.url().to_owned());

    // The token is required: without it, nothing.
    let host = url_a.trim_start_matches("http://").split('/').next().unwrap().to_owned();
    assert_eq!(http("GET", &host, "/", &[], b"").status, 404);
    assert_eq!(http("GET", &host, "/0123456789abcdef0123456789abcdef/", &[], b"").status, 404);
    let tok = url_a.trim_start_matches("http://").split('/').nth(1).unwrap().to_owned();
    let bad = http(
        "POST",
        &host,
        &format!("/{tok}/send"),
        &[("Content-Type", "multipart/form-data; boundary=X")],
        b"--X\r\njunk",
    );
    assert_eq!(bad.status, 400, "malformed upload: {}", bad.text());
    // Another site's page that learnt the URL cannot post to it: not a
    // fetch (which signs a receipt), not a send.
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    for (k, v) in [("Sec-Fetch-Site", "cross-site"), ("Origin", "http://evil.example"), ("Origin", "null")] {
        let r = http("POST", &host, &format!("/{tok}/fetch"), &[form[0], (k, v)], b"transfer=00");
        assert_eq!(r.status, 403, "{k}: {v}: {}", r.text());
        assert!(r.text().contains("another site"), "{}", r.text());
    }
    let own = format!("http://{host}");
    let r = http("POST", &host, &format!("/{tok}/fetch"), &[form[0], ("Origin", &own)], b"transfer=00");
    assert_eq!(r.status, 400, "the page's own origin is let through (to the form's own error): {}", r.text());

    // The stylesheets come from the page's own server.
    let css = http("GET", &host, &format!("/{tok}/assets/govuk-frontend.min.css"), &[], b"");
    assert_eq!(css.status, 200, "{}", css.text());
    assert_eq!(http("GET", &host, "/assets/govuk-frontend.min.css", &[], b"").status, 404, "only behind the token");

    let Some(b) = tokio::task::block_in_place(Browser::start) else { return };
    tokio::task::block_in_place(|| {
        b.goto(&url_a);
        let page = b.text();
        assert!(page.contains("Signed in as alice"), "{page}");
        assert!(page.contains("Nothing sent yet"), "{page}");
        b.checked("ui-alice-empty.png");
        let main = b.source();
        assert!(!main.contains("http://") && !main.contains("https://"), "no third-party request: {main}");
        b.goto(&format!("{url_a}people"));
        let page = b.text();
        assert!(page.contains(&bob_fp), "bob's fingerprint is on the people page: {page}");
        b.checked("ui-people.png");
        b.goto(&format!("{url_a}send"));
        assert!(b.text().contains(&bob_fp), "and on the send form: {}", b.text());
        b.click("input[name='to'][value='bob']");
        b.type_into("#files", file.to_str().unwrap());
        b.type_into("#case", "OP-UI");
        b.type_into("#note", "Interview of witness K, <b>not</b> for disclosure");
        b.type_into("#ack_within", "2h");
        b.checked("ui-alice-send-form.png");
        b.submit("#send-button");
        // Check your answers: who, what, which labels.
        let page = b.text();
        assert!(page.contains("Check your answers before sending"), "{page}");
        assert!(page.contains(&bob_fp) && page.contains("CPS South East"), "{page}");
        assert!(page.contains(&format!("{SECRET_NAME} (5.0 MB)")), "items with sizes: {page}");
        assert!(page.contains("official-sensitive"), "labels: {page}");
        assert!(page.contains("Interview of witness K, <b>not</b> for disclosure"), "the note, as text: {page}");
        b.checked("ui-alice-check-answers.png");
        b.click("#confirmed");
        b.submit("#confirm-button");
        // The job's page: progress, then the confirmation panel.
        let page = b.wait_text("Evidence sent");
        let t = page.split("sealed as transfer ").nth(1).unwrap().split_whitespace().next().unwrap().to_owned();
        assert!(page.contains(&format!("bob (key {bob_fp})")), "{page}");
        b.checked("ui-alice-sent-panel.png");
        // Progress counted every byte through the real send pipeline.
        let jobs: serde_json::Value =
            serde_json::from_slice(&http("GET", &host, &format!("/{tok}/jobs.json"), &[], b"").body).unwrap();
        assert_eq!(jobs[0]["state"], "done", "{jobs}");
        assert_eq!(jobs[0]["done"], 5_000_000, "{jobs}");
        assert_eq!(jobs[0]["total"], 5_000_000, "{jobs}");
        let page = b.wait_for(&url_a, "Sent (outbox)");
        assert!(page.contains("bob: sealed"), "outbox shows the transfer: {page}");
        b.checked("ui-alice-sent.png");

        b.goto(&url_b);
        let page = b.text();
        // The inbox comes first for bob, each transfer opened: its note,
        // item count, size and deadline, and its state in words.
        assert!(page.find("Received (inbox)").unwrap() < page.find("Sent (outbox)").unwrap(), "{page}");
        assert!(page.contains("Note: “Interview of witness K, <b>not</b> for disclosure”"), "{page}");
        assert!(page.contains("1 item, 5.0 MB"), "{page}");
        assert!(page.contains("in 1h5") || page.contains("in 2h"), "the deadline, relative: {page}");
        assert!(page.contains("New"), "{page}");
        assert!(page.contains("Fetch OP-UI"), "the button names the case: {page}");
        assert!(!page.contains(&format!("Fetch {}", &t[..8])), "{page}");
        b.checked("ui-bob-inbox.png");
        b.submit(&format!("#fetch-{t}"));
        let page = b.wait_text("Transfer fetched and receipt sent");
        assert!(page.contains("receipt accepted by the server"), "{page}");
        b.checked("ui-bob-fetched-panel.png");
        // The inbox row says "Receipt sent" once the server lists bob as
        // acknowledged.
        let page = b.wait_for(&url_b, "Receipt sent");
        assert!(page.contains("OP-UI"), "{page}");
        b.checked("ui-bob-fetched.png");
        assert_eq!(std::fs::read(bob_dl.join(SECRET_NAME)).unwrap(), original, "byte-identical");

        let page = b.wait_for(&url_a, "bob: acknowledged");
        assert!(page.contains(&t), "{page}");
        b.checked("ui-alice-acknowledged.png");

        b.goto(&format!("{url_a}custody/{t}"));
        let page = b.text();
        assert!(page.contains("Chain of custody"), "{page}");
        assert!(page.contains("Receipt of bob"), "{page}");
        b.checked("ui-custody.png");
        // The custody report prints without the page's header, navigation
        // and links back; its tables stay.
        let shown = |css: &str| {
            b.exec("return getComputedStyle(document.querySelector(arguments[0])).display", serde_json::json!([css]))
        };
        assert_ne!(shown(".govuk-header"), "none");
        b.print_media(true);
        for hidden in [".govuk-header", ".govuk-service-navigation", ".govuk-back-link", ".govuk-skip-link"] {
            assert_eq!(shown(hidden), "none", "{hidden} is printed");
        }
        assert_eq!(shown("#steps"), "table", "the steps are printed");
        b.screenshot("ui-custody-print.png");
        b.print_media(false);
        b.print_pdf("ui-custody.pdf");
    });
    // The staged copy was removed once sealed.
    let staging = f.dir.path().join("home-alice").join("ui-staging");
    assert_eq!(std::fs::read_dir(&staging).unwrap().count(), 0, "staging left behind");
    drop((ui_a, ui_b));
}

/// A caseworker labels a disclosure to the defence on her page; the
/// approver of her organisation reviews it on his and approves it; only
/// then does the defence see it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ui_labels_a_disclosure_and_the_approver_approves_it_on_his_page() {
    use exhibit_proto::org::OrgKind;
    let f = Fixture::start().await;
    f.org("smith-law", "Smith & Co Solicitors", OrgKind::Defence).await;
    let carol = f.user_in("carol", "cps-se", &[Role::Caseworker]).await;
    let dan = f.user_in("dan", "cps-se", &[Role::Caseworker, Role::DisclosureApprover]).await;
    let dave = f.user_in("dave", "smith-law", &[Role::Caseworker]).await;
    let firm = exhibit_proto::org::OrgId::new("smith-law").unwrap();
    exhibit_client::ops::cases::change(&carol, "OP7", firm, true, None).await.unwrap();
    let src = f.path("src");
    let file = src.join("ABE-redacted.mp4");
    std::fs::write(&file, bytes(20_000, 3)).unwrap();
    let rt = tokio::runtime::Handle::current();
    let listen = "127.0.0.1:0".parse().unwrap();
    let ui_c = Ui::start(carol, UiOptions { listen, downloads: f.path("c-dl") }, rt.clone()).unwrap();
    let ui_d = Ui::start(dan, UiOptions { listen, downloads: f.path("d-dl") }, rt).unwrap();
    let (url_c, url_d) = (ui_c.url().to_owned(), ui_d.url().to_owned());

    let Some(b) = tokio::task::block_in_place(Browser::start) else { return };
    let t = tokio::task::block_in_place(|| {
        b.goto(&format!("{url_c}send"));
        let page = b.text();
        assert!(page.contains("Smith & Co Solicitors (defence)"), "the recipient's organisation and kind: {page}");
        b.click("input[name='to'][value='dave']");
        b.type_into("#files", file.to_str().unwrap());
        b.type_into("#case", "OP7");
        b.click("#schedule option[value='used']");
        b.click("#redaction option[value='redacted']");
        b.click("#victim_details option[value='no']");
        b.checked("ui-disclosure-send-form.png");
        b.submit("#send-button");
        let page = b.text();
        assert!(page.contains("used, redacted, no victim details"), "{page}");
        assert!(page.contains("a disclosure approver of your organisation approves it"), "{page}");
        b.checked("ui-disclosure-check-answers.png");
        b.click("#confirmed");
        b.submit("#confirm-button");
        let page = b.wait_for(&url_c, "awaiting approval by dan");
        assert!(page.contains("Awaiting approval"), "the outbox tags it: {page}");
        b.checked("ui-disclosure-awaiting.png");
        page.split("sealed as transfer ").nth(1).unwrap().split_whitespace().next().unwrap().to_owned()
    });
    assert!(listing::fetch_list(&dave, true).await.unwrap().is_empty(), "released before approval");
    tokio::task::block_in_place(|| {
        b.goto(&url_d);
        let page = b.text();
        assert!(page.contains("Waiting for your approval") && page.contains(&t), "{page}");
        b.checked("ui-approver-waiting.png");
        b.goto(&format!("{url_d}review/{t}"));
        let page = b.text();
        assert!(page.contains("Smith & Co Solicitors (defence)"), "{page}");
        assert!(page.contains("used, redacted, no victim details"), "{page}");
        b.checked("ui-approver-review.png");
        b.submit("#approve");
        let page = b.text();
        assert!(page.contains("Nothing waits for your approval"), "{page}");
        assert!(page.contains("Disclosure approved and signed"), "a banner says so: {page}");
        b.checked("ui-approver-approved.png");
    });
    let inbox = listing::fetch_list(&dave, true).await.unwrap();
    assert_eq!(inbox[0].transfer.to_string(), t);
    assert!(inbox[0].decision.as_ref().is_some_and(|d| d.approved && d.by.as_str() == "dan"));
    drop((ui_c, ui_d));
}

/// Wrong admin tokens: audited, and after a few from one address each
/// further try waits longer, even with the right token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_login_is_throttled_per_address_and_failures_are_audited() {
    let clock = ManualClock::new(1_800_000_000);
    let f = Fixture::start_with(Arc::new(clock.clone()), Background::Off, with_dashboard).await;
    let addr = f.server().dashboard_addr().unwrap().to_string();
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let login = |token: &str| http("POST", &addr, "/login", &form, format!("token={token}").as_bytes());
    let free = exhibit_server::core::throttle::FREE;
    for _ in 0..free {
        assert_eq!(login("wrong-token-wrong-token-wrong-token").status, 403);
    }
    let held = login(TOKEN);
    assert_eq!(held.status, 429, "the right token is not even tried while the address waits: {}", held.text());
    assert!(held.text().contains("wait 1 s"), "{}", held.text());
    assert!(held.headers.contains("X-Frame-Options: DENY"), "{}", held.headers);
    let failed = f.state().meta.read().unwrap().audit_entries(1, 10_000).unwrap();
    let failed = failed.iter().filter(|e| e.body.action == "dashboard-login-failed").count();
    assert_eq!(failed as u32, free, "each wrong token is audited");
    clock.advance(1);
    assert_eq!(login(TOKEN).status, 303, "logged in once the wait is over");
    assert_eq!(login("wrong-token-wrong-token-wrong-token").status, 403, "a success starts the address afresh");
}

/// Issue 22: dashboard sessions and one-time links are in the metadata
/// store (here redb), so a restart logs nobody out and a link made before
/// it still works once after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dashboard_session_and_a_one_time_link_survive_a_restart() {
    let mut f = Fixture::start_with(Arc::new(exhibit_server::SystemClock), Background::Off, with_dashboard).await;
    let addr = f.server().dashboard_addr().unwrap().to_string();
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    let cookie = tokio::task::block_in_place(|| {
        let login = http("POST", &addr, "/login", &[form], format!("token={TOKEN}").as_bytes());
        assert_eq!(login.status, 303, "{}", login.text());
        let set = login.headers.lines().find(|l| l.to_ascii_lowercase().starts_with("set-cookie:")).unwrap();
        set.split_once(':').unwrap().1.split(';').next().unwrap().trim().to_owned()
    });
    let (url, _) = exhibit_client::admin::dashboard_login(&f.admin).await.unwrap();
    let code = url.rsplit_once("/once/").unwrap().1.to_owned();
    f.restart().await;
    let addr = f.server().dashboard_addr().unwrap().to_string();
    tokio::task::block_in_place(|| {
        let dash = http("GET", &addr, "/", &[("Cookie", &cookie)], b"");
        assert!(dash.text().contains("Logged in as <strong>dashboard</strong>"), "after a restart: {}", dash.text());
        let login = http("POST", &addr, "/login", &[form], format!("once={code}").as_bytes());
        assert_eq!(login.status, 303, "a link made before the restart: {}", login.text());
        assert_eq!(http("POST", &addr, "/login", &[form], format!("once={code}").as_bytes()).status, 403);
    });
}

/// Issue 25: the dashboard over HTTPS (`tls = "on"` forces it on
/// loopback), with a certificate the deployment's authority issued. A
/// client that pins the CA (`ca.pem`) reaches it and logs in; one that
/// does not fails the handshake; plain HTTP to the port gets no page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_https_dashboard_is_reached_with_the_authority_ca_pinned_and_refused_without_it() {
    use exhibit_server::config::DashboardTls;
    use rustls::pki_types::pem::PemObject as _;
    let f = Fixture::start_with(Arc::new(exhibit_server::SystemClock), Background::Off, |c| {
        c.dashboard = Some(DashboardConfig {
            tls: DashboardTls::On,
            ..DashboardConfig::new("127.0.0.1:0".parse().unwrap(), TOKEN)
        })
    })
    .await;
    let addr = f.server().dashboard_addr().unwrap();
    let ca_pem = f.data.join("ca.pem");
    let ca = rustls::pki_types::CertificateDer::from_pem_file(&ca_pem).unwrap();
    let mut pinned = rustls::RootCertStore::empty();
    pinned.add(ca).unwrap();

    let page = https(addr, pinned.clone(), "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("admin login") && page.contains("X-Frame-Options: DENY"), "{page}");
    let body = format!("token={TOKEN}");
    let login = format!(
        "POST /login HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let login = https(addr, pinned.clone(), &login).await.unwrap();
    assert!(login.starts_with("HTTP/1.1 303"), "{login}");
    let set = login.lines().find(|l| l.starts_with("Set-Cookie:")).expect("a session cookie");
    let cookie = set.trim_start_matches("Set-Cookie:").split(';').next().unwrap().trim();
    let dash = format!("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nCookie: {cookie}\r\n\r\n");
    let dash = https(addr, pinned, &dash).await.unwrap();
    assert!(dash.contains("Logged in as <strong>dashboard</strong>"), "{dash}");

    // A client that does not trust the deployment's CA (here: the system's
    // roots are not asked; an empty store) stops at the handshake.
    let e = https(addr, rustls::RootCertStore::empty(), "GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap_err();
    assert!(e.contains("UnknownIssuer"), "{e}");
    // Plain HTTP to the HTTPS port: no page.
    let plain = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut got = vec![];
        let _ = s.read_to_end(&mut got);
        got
    })
    .await
    .unwrap();
    assert!(!plain.starts_with(b"HTTP/"), "plain HTTP answered: {:?}", String::from_utf8_lossy(&plain));

    // An admin's one-time link names the HTTPS address.
    let (url, _) = exhibit_client::admin::dashboard_login(&f.admin).await.unwrap();
    assert!(url.starts_with(&format!("https://{addr}/once/")), "{url}");

    // What the runbook tells an admin to type, when curl is installed.
    let curl = |pin: bool| {
        let mut c = std::process::Command::new("curl");
        c.args(["--silent", "--show-error", "--max-time", "30"]);
        if pin {
            c.arg("--cacert").arg(&ca_pem);
        }
        c.arg(format!("https://{addr}/")).output()
    };
    if let Ok(out) = tokio::task::block_in_place(|| curl(true)) {
        let page = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && page.contains("admin login"), "curl --cacert: {out:?}");
        let out = tokio::task::block_in_place(|| curl(false)).unwrap();
        assert!(!out.status.success(), "curl without the CA: {out:?}");
    }
}

/// `tls_cert`/`tls_key`: the dashboard serves the configured pair (here
/// from an ECDSA CA of "the organisation"), and a client pinning that CA
/// reaches it; the deployment's CA then does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_https_dashboard_serves_a_configured_certificate_and_key() {
    use exhibit_server::config::DashboardTls;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, PKCS_ECDSA_P256_SHA256};
    use rustls::pki_types::pem::PemObject as _;
    let dir = tempfile::tempdir().unwrap();
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca_params = CertificateParams::new(vec![]).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".into()]).unwrap().signed_by(&key, &issuer).unwrap();
    let (cert_file, key_file) = (dir.path().join("dashboard.pem"), dir.path().join("dashboard-key.pem"));
    std::fs::write(&cert_file, leaf.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let f = Fixture::start_with(Arc::new(exhibit_server::SystemClock), Background::Off, |c| {
        c.dashboard = Some(DashboardConfig {
            tls: DashboardTls::On,
            tls_cert: Some(cert_file),
            tls_key: Some(key_file),
            ..DashboardConfig::new("127.0.0.1:0".parse().unwrap(), TOKEN)
        })
    })
    .await;
    let addr = f.server().dashboard_addr().unwrap();
    let mut org = rustls::RootCertStore::empty();
    org.add(ca.der().clone()).unwrap();
    let page = https(addr, org, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    assert!(page.starts_with("HTTP/1.1 200") && page.contains("admin login"), "{page}");
    let mut deployment = rustls::RootCertStore::empty();
    deployment.add(rustls::pki_types::CertificateDer::from_pem_file(f.data.join("ca.pem")).unwrap()).unwrap();
    let e = https(addr, deployment, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap_err();
    assert!(e.contains("UnknownIssuer"), "{e}");
}

/// One request over TLS trusting only `roots`, for 127.0.0.1; the raw
/// response, or why there was none.
pub(crate) async fn https(
    addr: std::net::SocketAddr,
    roots: rustls::RootCertStore,
    req: &str,
) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls =
        tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.map_err(|e| e.to_string())?;
    tls.write_all(req.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut out = vec![];
    tls.read_to_end(&mut out).await.map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Issue 21: forwarding from the inbox of `exhibit ui`, and the police's
/// custody page showing where their material went.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_forwards_from_the_inbox_and_the_police_see_it_onward() {
    use exhibit_proto::labels::{Labels, Redaction, Schedule};
    use exhibit_proto::org::OrgKind;
    let f = Fixture::start().await;
    f.org("smith-law", "Smith & Co Solicitors", OrgKind::Defence).await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let carol = f.user_in("carol", "cps-se", &[Role::Caseworker]).await;
    let dana = f.user_in("dana", "cps-se", &[Role::Caseworker, Role::DisclosureApprover]).await;
    let dave = f.user_in("dave", "smith-law", &[Role::Caseworker]).await;
    let firm = exhibit_proto::org::OrgId::new("smith-law").unwrap();
    exhibit_client::ops::cases::change(&carol, "OP9", firm, true, None).await.unwrap();
    // The police send a redacted statement and an unredacted interview.
    let src = f.path("police").join("case");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("ABE-1.mp4"), bytes(9000, 4)).unwrap();
    std::fs::write(src.join("statement.pdf"), bytes(3000, 5)).unwrap();
    let cleared = Labels {
        schedule: Some(Schedule::Used),
        redaction: Redaction::Redacted,
        victim_details: false,
        ..Labels::default()
    };
    let mut o = exhibit_client::send::SendOptions::new(vec![src], vec![uid("carol")]);
    o.case_ref = Some("OP9".into());
    o.labels = exhibit_client::labels::LabelPlan { base: Labels::default(), ..Default::default() };
    o.labels.items.insert("case/statement.pdf".into(), cleared);
    let t = exhibit_client::send::send(&alice, o).await.unwrap().transfer;
    fetch_to(&carol, t, &f.path("carol-in")).await.unwrap();

    let rt = tokio::runtime::Handle::current();
    let listen = "127.0.0.1:0".parse().unwrap();
    let ui_c = Ui::start(carol.clone(), UiOptions { listen, downloads: f.path("c-dl") }, rt.clone()).unwrap();
    let ui_a = Ui::start(alice, UiOptions { listen, downloads: f.path("a-dl") }, rt).unwrap();
    let (url_c, url_a) = (ui_c.url().to_owned(), ui_a.url().to_owned());
    let Some(b) = tokio::task::block_in_place(Browser::start) else { return };
    let t_text = t.to_string();
    tokio::task::block_in_place(|| {
        b.goto(&url_c);
        b.click(&format!("#forward-{t_text}"));
        let page = b.text();
        assert!(page.contains("case/ABE-1.mp4") && page.contains("case/statement.pdf"), "{page}");
        assert!(page.contains("used, redacted, no victim details"), "the labels each item came with: {page}");
        // Only the statement: the interview is unredacted.
        b.click("#item-1");
        b.click("#to option[value='dave']");
        b.click("#confirmed");
        b.checked("ui-forward-form.png");
        b.submit("#forward-button");
        let page = b.wait_for(&url_c, "awaiting approval by dana");
        assert!(page.contains("1 item(s) sealed as transfer"), "{page}");
    });
    let sent = listing::fetch_list(&carol, false).await.unwrap();
    let fwd = sent.iter().find(|x| x.derived_from == Some(t)).expect("the forward in carol's outbox");
    let fwd = fwd.transfer;
    exhibit_client::ops::approvals::approve(&dana, fwd, |_| true).await.unwrap();
    let got = fetch_to(&dave, fwd, &f.path("dave-in")).await.unwrap();
    assert_eq!(got.item_count, 1);
    assert_eq!(std::fs::read(f.path("dave-in").join("case/statement.pdf")).unwrap(), bytes(3000, 5));
    tokio::task::block_in_place(|| {
        b.goto(&format!("{url_a}custody/{t_text}"));
        let page = b.text();
        assert!(page.contains("Onward: where its material went") && page.contains(&fwd.to_string()), "{page}");
        assert!(page.contains("Smith & Co Solicitors (defence)): acknowledged"), "{page}");
        b.checked("ui-custody-onward.png");
    });
    drop((ui_c, ui_a));
}

/// Issue 24 item 5: the send form's errors keep what was entered (and the
/// files already uploaded), say what is wrong at the top with links to the
/// fields, and the check page refuses a send whose box is not ticked. A
/// send that fails (here: a disclosure the rules refuse) shows no full
/// progress bar and leads back to the form as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ui_errors_keep_the_form_and_lead_back_to_it() {
    use exhibit_proto::org::OrgKind;
    let f = Fixture::start().await;
    f.org("smith-law", "Smith & Co Solicitors", OrgKind::Defence).await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    f.user("bob", Role::Caseworker).await;
    f.user_in("dave", "smith-law", &[Role::Caseworker]).await;
    let src = f.path("src");
    let file = src.join("statement.pdf");
    std::fs::write(&file, bytes(3000, 9)).unwrap();
    let other = src.join("draft-only.pdf");
    std::fs::write(&other, bytes(1000, 4)).unwrap();
    let rt = tokio::runtime::Handle::current();
    let ui =
        Ui::start(alice, UiOptions { listen: "127.0.0.1:0".parse().unwrap(), downloads: f.path("dl") }, rt).unwrap();
    let url = ui.url().to_owned();
    let Some(b) = tokio::task::block_in_place(Browser::start) else { return };
    tokio::task::block_in_place(|| {
        // Nothing chosen: both errors, each linked to its field.
        b.goto(&format!("{url}send"));
        b.type_into("#case", "OP-ERR");
        b.submit("#send-button");
        let page = b.text();
        assert!(page.contains("There is a problem"), "{page}");
        assert!(page.contains("Select at least one recipient"), "{page}");
        assert!(page.contains("Choose at least one file or folder to send"), "{page}");
        let src = b.source();
        assert!(src.contains("href=\"#to\"") && src.contains("href=\"#files\""), "links to the fields");
        assert_eq!(b.exec("return document.getElementById('case').value", serde_json::json!([])), "OP-ERR", "kept");
        b.checked("ui-send-errors.png");
        // A file and a recipient, but a deadline that is not one.
        b.click("input[name='to'][value='bob']");
        b.type_into("#files", file.to_str().unwrap());
        b.type_into("#ack_within", "soon");
        b.submit("#send-button");
        let page = b.text();
        assert!(page.contains("Enter a time like 4h, 2d or 30m"), "{page}");
        // The field names its error, for screen readers.
        let described = b.exec(
            "return document.getElementById('ack_within').getAttribute('aria-describedby')",
            serde_json::json!([]),
        );
        assert_eq!(described, "ack_within-hint ack_within-error");
        assert!(page.contains("Already uploaded: 1 file, 3.0 KB — statement.pdf (3.0 KB)"), "{page}");
        assert_eq!(
            b.exec("return document.querySelector(\"input[name='to'][value='bob']\").checked", serde_json::json!([])),
            true,
            "the recipient stays ticked"
        );
        b.checked("ui-send-error-kept.png");
        // Fixed, without choosing the file again.
        b.exec("document.getElementById('ack_within').value=''", serde_json::json!([]));
        b.type_into("#ack_within", "4h");
        b.submit("#send-button");
        let page = b.text();
        assert!(page.contains("Check your answers") && page.contains("statement.pdf (3.0 KB)"), "{page}");
        // The box not ticked: the check page again, with the error.
        b.submit("#confirm-button");
        let page = b.text();
        assert!(page.contains("There is a problem") && page.contains("Tick the box"), "{page}");
        b.checked("ui-check-answers-error.png");
        // Change: back to the form, as it was.
        b.submit("a[href*='send?draft='][href$='#to']");
        assert!(b.text().contains("Already uploaded: 1 file"), "{}", b.text());
        // To the defence, unlabelled: the rules refuse it, in the job.
        b.click("input[name='to'][value='bob']");
        b.click("input[name='to'][value='dave']");
        b.submit("#send-button");
        b.click("#confirmed");
        b.submit("#confirm-button");
        let page = b.wait_text("The evidence was not sent");
        assert!(!page.contains("Evidence sent"), "{page}");
        assert_eq!(b.source().matches("<progress").count(), 0, "a failed job shows no progress bar");
        assert!(page.contains("Change your answers and try again"), "{page}");
        b.checked("ui-send-failed.png");
        b.submit("#change-answers");
        let page = b.text();
        assert!(page.contains("Already uploaded: 1 file"), "{page}");
        assert_eq!(b.exec("return document.getElementById('case').value", serde_json::json!([])), "OP-ERR");
        // A page that does not exist: an error page with the way back.
        b.goto(&format!("{url}custody/not-a-transfer"));
        let page = b.text();
        assert!(page.contains("Something went wrong") && page.contains("Back to your transfers"), "{page}");
        b.checked("ui-error-page.png");
        // Another send, checked but never confirmed.
        b.goto(&format!("{url}send"));
        b.click("input[name='to'][value='bob']");
        b.type_into("#files", other.to_str().unwrap());
        b.submit("#send-button");
        assert!(b.text().contains("Check your answers"), "{}", b.text());
    });
    let staging = f.dir.path().join("home-alice").join("ui-staging");
    assert_eq!(std::fs::read_dir(&staging).unwrap().count(), 2, "the failed send's files and the draft's");
    drop(ui);
    // The page stopped: the never-confirmed draft's plaintext is gone; the
    // failed send's stays for `exhibit resume`.
    let left: Vec<_> = std::fs::read_dir(&staging).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].join("statement.pdf").exists(), "{left:?}");
}

/// An overdue transfer in the inbox: a red "Overdue" tag with the word,
/// and how long overdue; the sender's outbox says so too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ui_inbox_shows_an_overdue_transfer_in_words() {
    let f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let src = f.path("src");
    std::fs::write(src.join("a.pdf"), bytes(2_500_000, 2)).unwrap();
    let mut o = exhibit_client::send::SendOptions::new(vec![src.join("a.pdf")], vec![uid("bob")]);
    o.case_ref = Some("OP-LATE".into());
    o.note = Some("Urgent: hearing on Monday".into());
    o.ack_within_secs = Some(1);
    exhibit_client::send::send(&alice, o).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let rt = tokio::runtime::Handle::current();
    let listen = "127.0.0.1:0".parse().unwrap();
    let ui_b = Ui::start(bob, UiOptions { listen, downloads: f.path("dl") }, rt.clone()).unwrap();
    let ui_a = Ui::start(alice, UiOptions { listen, downloads: f.path("dl-a") }, rt).unwrap();
    let Some(b) = tokio::task::block_in_place(Browser::start) else { return };
    tokio::task::block_in_place(|| {
        b.goto(ui_b.url());
        let page = b.text();
        assert!(page.contains("Overdue") && page.contains("overdue by"), "{page}");
        assert!(page.contains("Urgent: hearing on Monday") && page.contains("1 item, 2.5 MB"), "{page}");
        assert!(b.source().contains("govuk-tag--red\">Overdue"), "a red tag, and the word");
        b.checked("ui-inbox-overdue.png");
        b.goto(ui_a.url());
        let page = b.text();
        assert!(page.find("Sent (outbox)").unwrap() < page.find("Received (inbox)").unwrap(), "sender: outbox first");
        assert!(page.contains("Overdue"), "{page}");
        b.checked("ui-outbox-overdue.png");
    });
    drop((ui_a, ui_b));
}

/// Several recipients in one send, and a whole folder (sub-folders kept);
/// a revoked user is shown revoked and cannot be chosen.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ui_sends_a_folder_to_several_recipients_and_shows_revoked_users() {
    let f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let carol = f.user("carol", Role::Caseworker).await;
    f.user("eve", Role::Caseworker).await;
    // Alice sent to eve once (her key is pinned), then eve was revoked.
    std::fs::write(f.path("old").join("old.pdf"), bytes(100, 3)).unwrap();
    send_paths(&alice, vec![f.path("old").join("old.pdf")], &["eve"], 1024).await;
    exhibit_client::admin::revoke_user(&f.admin, uid("eve")).await.unwrap();
    let folder = f.path("src").join("case-7");
    std::fs::create_dir_all(folder.join("video")).unwrap();
    std::fs::write(folder.join("statement.pdf"), bytes(4000, 1)).unwrap();
    std::fs::write(folder.join("video/ABE-1.mp4"), bytes(6000, 2)).unwrap();
    let rt = tokio::runtime::Handle::current();
    let ui =
        Ui::start(alice, UiOptions { listen: "127.0.0.1:0".parse().unwrap(), downloads: f.path("dl") }, rt).unwrap();
    let url = ui.url().to_owned();
    let Some(b) = tokio::task::block_in_place(Browser::start) else { return };
    let t = tokio::task::block_in_place(|| {
        b.goto(&format!("{url}people"));
        let page = b.text();
        assert!(page.contains("eve") && page.contains("Revoked no longer in the directory"), "eve is revoked: {page}");
        b.checked("ui-people-revoked.png");
        // Files dropped onto the box (a drop event as the browser makes
        // one) are posted by the page's script, with the form's answers.
        b.goto(&format!("{url}send"));
        b.click("input[name='to'][value='bob']");
        b.type_into("#case", "OP-DROP");
        b.exec(
            "var dt=new DataTransfer();dt.items.add(new File(['dropped evidence'],'dropped.txt'));\
             document.getElementById('drop').dispatchEvent(new DragEvent('drop',{dataTransfer:dt,bubbles:true}));",
            serde_json::json!([]),
        );
        b.wait_text("1 file(s) ready to upload (16 bytes): dropped.txt");
        b.submit("#send-button");
        let page = b.text();
        assert!(page.contains("Check your answers") && page.contains("dropped.txt (16 bytes)"), "{page}");
        assert!(page.contains("OP-DROP"), "{page}");
        b.goto(&url);
        let page = b.text();
        assert!(page.contains("eve: sealed (eve Revoked)"), "and so in the outbox: {page}");
        b.goto(&format!("{url}send"));
        assert!(!b.source().contains("value=\"eve\""), "a revoked user cannot be chosen");
        b.click("input[name='to'][value='bob']");
        b.click("input[name='to'][value='carol']");
        b.type_into("#folder", folder.to_str().unwrap());
        b.type_into("#case", "OP-FOLDER");
        b.submit("#send-button");
        let page = b.text();
        assert!(page.contains("Recipient 1") && page.contains("Recipient 2"), "{page}");
        assert!(page.contains("case-7/statement.pdf (4.0 KB)"), "{page}");
        assert!(page.contains("case-7/video/ABE-1.mp4 (6.0 KB)"), "{page}");
        b.checked("ui-folder-check-answers.png");
        b.click("#confirmed");
        b.submit("#confirm-button");
        let page = b.wait_text("Evidence sent");
        assert!(page.contains("bob (key") && page.contains("carol (key"), "{page}");
        page.split("sealed as transfer ").nth(1).unwrap().split_whitespace().next().unwrap().to_owned()
    });
    let t: exhibit_proto::TransferId = t.parse().unwrap();
    for (who, home) in [("bob", &bob), ("carol", &carol)] {
        let out = f.path(&format!("in-{who}"));
        fetch_to(home, t, &out).await.unwrap();
        assert_eq!(std::fs::read(out.join("case-7/video/ABE-1.mp4")).unwrap(), bytes(6000, 2), "{who}");
    }
    drop(ui);
}

/// Keyboard only (WebDriver key actions: Tab, Space, Enter): the skip link
/// comes first; send a file (a file input takes a path typed into it while
/// focused: WebDriver's keyboard equivalent of the file chooser) and fetch
/// it on the other page. Every element on the way shows its focus.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ui_send_and_fetch_with_the_keyboard_only() {
    let f = Fixture::start().await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    let bob = f.user("bob", Role::Caseworker).await;
    let file = f.path("src").join("keyboard.pdf");
    std::fs::write(&file, bytes(70_000, 5)).unwrap();
    let rt = tokio::runtime::Handle::current();
    let listen = "127.0.0.1:0".parse().unwrap();
    let dl = f.path("bob-dl");
    let ui_a = Ui::start(alice, UiOptions { listen, downloads: f.path("a-dl") }, rt.clone()).unwrap();
    let ui_b = Ui::start(bob, UiOptions { listen, downloads: dl.clone() }, rt).unwrap();
    let Some(b) = tokio::task::block_in_place(Browser::start) else { return };
    use crate::browser::{ENTER, SPACE, TAB};
    tokio::task::block_in_place(|| {
        b.goto(ui_a.url());
        b.keys(TAB);
        assert!(b.focused(".govuk-skip-link"), "the skip link comes first");
        b.tab_to("a.govuk-service-navigation__link[href$='/send']");
        b.keys_load(ENTER);
        assert!(b.text().contains("Who is it for?"), "{}", b.text());
        b.tab_to("input[name='to'][value='bob']");
        b.keys(SPACE);
        b.tab_to("#files");
        b.type_active(file.to_str().unwrap());
        b.tab_to("#case");
        b.keys("OP-KEYS");
        b.tab_to("#send-button");
        b.keys_load(ENTER);
        let page = b.text();
        assert!(page.contains("Check your answers") && page.contains("keyboard.pdf (70.0 KB)"), "{page}");
        b.tab_to("#confirmed");
        b.keys(SPACE);
        b.tab_to("#confirm-button");
        b.keys_load(ENTER);
        b.wait_text("Evidence sent");
        b.checked("ui-keyboard-sent.png");

        b.goto(ui_b.url());
        b.keys(TAB);
        assert!(b.focused(".govuk-skip-link"));
        b.tab_to("button[id^='fetch-']");
        b.keys_load(ENTER);
        b.wait_text("Transfer fetched and receipt sent");
        b.checked("ui-keyboard-fetched.png");
    });
    assert_eq!(std::fs::read(dl.join("keyboard.pdf")).unwrap(), bytes(70_000, 5));
    drop((ui_a, ui_b));
}

/// A chunk store that lets the first chunk through and holds the rest
/// while `hold` is set: a send stays in progress, part done.
#[derive(Debug)]
struct HeldDisk {
    inner: exhibit_server::chunks::DiskChunks,
    passed: std::sync::atomic::AtomicUsize,
    hold: Arc<std::sync::atomic::AtomicBool>,
}

impl exhibit_server::chunks::ChunkStore for HeldDisk {
    fn put(&self, id: &exhibit_proto::ChunkId, bytes: &[u8]) -> Result<(), exhibit_server::error::ServerError> {
        use std::sync::atomic::Ordering;
        if self.passed.fetch_add(1, Ordering::SeqCst) >= 1 {
            // On the server's blocking pool: held at most a minute.
            let t0 = std::time::Instant::now();
            while self.hold.load(Ordering::SeqCst) && t0.elapsed() < std::time::Duration::from_secs(60) {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        self.inner.put(id, bytes)
    }
    fn get(&self, id: &exhibit_proto::ChunkId) -> Result<Vec<u8>, exhibit_server::error::ServerError> {
        self.inner.get(id)
    }
    fn has(&self, id: &exhibit_proto::ChunkId) -> Result<bool, exhibit_server::error::ServerError> {
        self.inner.has(id)
    }
    fn delete(&self, id: &exhibit_proto::ChunkId) -> Result<(), exhibit_server::error::ServerError> {
        self.inner.delete(id)
    }
    fn list(&self) -> Result<Vec<exhibit_proto::ChunkId>, exhibit_server::error::ServerError> {
        self.inner.list()
    }
}

/// A send in progress shows percent, MB and time left, live; then the
/// confirmation panel.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ui_shows_a_send_in_progress_with_percent_speed_and_time_left() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let hold = Arc::new(AtomicBool::new(false));
    let held = hold.clone();
    let maker: StoreMaker = Box::new(move |dir| {
        Arc::new(HeldDisk {
            inner: exhibit_server::chunks::DiskChunks::open(dir).unwrap(),
            passed: Default::default(),
            hold: held,
        })
    });
    let f = Fixture::start_full(Arc::new(exhibit_server::SystemClock), Background::Off, |_| {}, Some(maker)).await;
    let alice = f.user("alice", Role::EvidenceUnit).await;
    f.user("bob", Role::Caseworker).await;
    let file = f.path("src").join("CCTV-export.mp4");
    // Three 4 MiB chunks: the first goes through, the others wait.
    std::fs::write(&file, bytes(10_000_000, 8)).unwrap();
    hold.store(true, Ordering::SeqCst);
    let rt = tokio::runtime::Handle::current();
    let ui =
        Ui::start(alice, UiOptions { listen: "127.0.0.1:0".parse().unwrap(), downloads: f.path("dl") }, rt).unwrap();
    let url = ui.url().to_owned();
    let Some(b) = tokio::task::block_in_place(Browser::start) else { return };
    tokio::task::block_in_place(|| {
        b.goto(&format!("{url}send"));
        b.click("input[name='to'][value='bob']");
        b.type_into("#files", file.to_str().unwrap());
        b.type_into("#case", "OP-SLOW");
        b.submit("#send-button");
        b.click("#confirmed");
        b.submit("#confirm-button");
        // The page's script updates the line as the job goes.
        let page = b.wait_text("left");
        assert!(page.contains("Sending evidence") && page.contains("In progress"), "{page}");
        // Part done (the first chunk), at a speed, with time left.
        let line = page.lines().find(|l| l.starts_with("In progress ")).unwrap_or_default();
        let pct: u32 = line["In progress ".len()..].split('%').next().unwrap().parse().unwrap();
        assert!((1..100).contains(&pct), "{line}");
        assert!(
            line.contains(" MB of 10.0 MB at ") && line.contains("/s, about ") && line.ends_with(" left"),
            "{line}"
        );
        assert!(b.source().contains("<progress"), "a progress bar while it runs");
        b.checked("ui-in-progress.png");
        hold.store(false, Ordering::SeqCst);
        let page = b.wait_text("Evidence sent");
        assert!(page.contains("sealed as transfer"), "{page}");
        assert_eq!(b.source().matches("<progress").count(), 0, "no bar once done");
        b.checked("ui-send-done-panel.png");
    });
    hold.store(false, Ordering::SeqCst);
    drop(ui);
}
