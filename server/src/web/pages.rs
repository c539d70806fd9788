//! The dashboard's pages: the overview, metrics, and the small forms.

use std::collections::{BTreeMap, HashMap};

use exhibit_net::http::{esc, response, with_headers, Page};
use exhibit_proto::duration::{format_secs, format_time};
use exhibit_proto::frame::{DeliveryState, TransferState};
use exhibit_proto::UserId;

use super::{error_page, html, layout};
use crate::app;
use crate::core::policy::is_overdue;
use crate::core::records::{Ev, TransferRecord};
use crate::error::ServerError;
use crate::state::State;

pub(super) fn metrics(s: &State) -> Result<Page, ServerError> {
    let transfers = app::listings::every_transfer(s)?;
    let now = s.clock.now();
    let mut by_state: BTreeMap<&str, u64> =
        ["uploading", "sealed", "revoked", "expired"].iter().map(|k| (*k, 0)).collect();
    let (mut overdue, mut stored) = (0u64, 0u64);
    for t in &transfers {
        *by_state.entry(state_name(t.state)).or_default() += 1;
        overdue += u64::from(is_overdue(t, now));
        if t.state != TransferState::Expired {
            stored += t.bytes;
        }
    }
    let alerts = app::listings::every_alert(s, true)?;
    let open = alerts.iter().filter(|a| a.info.ack.is_none()).count();
    let mut o = String::new();
    o += "# HELP exhibit_transfers Transfers by state.\n# TYPE exhibit_transfers gauge\n";
    for (k, v) in &by_state {
        o += &format!("exhibit_transfers{{state=\"{k}\"}} {v}\n");
    }
    o += "# HELP exhibit_transfers_overdue Sealed transfers past their deadline not acknowledged by everyone.\n";
    o += &format!("# TYPE exhibit_transfers_overdue gauge\nexhibit_transfers_overdue {overdue}\n");
    o += "# HELP exhibit_alerts Alerts by state.\n# TYPE exhibit_alerts gauge\n";
    o += &format!("exhibit_alerts{{state=\"open\"}} {open}\n");
    o += &format!("exhibit_alerts{{state=\"acknowledged\"}} {}\n", alerts.len() - open);
    o += "# HELP exhibit_stored_bytes Ciphertext bytes of transfers whose chunks are kept.\n";
    o += &format!("# TYPE exhibit_stored_bytes gauge\nexhibit_stored_bytes {stored}\n");
    let (batches, writes) = s.commits.stats();
    o += "# HELP exhibit_batched_commits_total Durable commits of per-chunk metadata writes.\n";
    o += &format!("# TYPE exhibit_batched_commits_total counter\nexhibit_batched_commits_total {batches}\n");
    o += "# HELP exhibit_batched_writes_total Per-chunk metadata writes in those commits.\n";
    o += &format!("# TYPE exhibit_batched_writes_total counter\nexhibit_batched_writes_total {writes}\n");
    let micros = s.last_scan_micros.load(std::sync::atomic::Ordering::Relaxed);
    o += "# HELP exhibit_alert_scan_duration_seconds Duration of the last alert scan.\n";
    o += &format!(
        "# TYPE exhibit_alert_scan_duration_seconds gauge\nexhibit_alert_scan_duration_seconds {}\n",
        micros as f64 / 1e6
    );
    o += &integrity_metrics(s)?;
    Ok(with_headers(
        response(200, o),
        &[("Content-Type", "text/plain; version=0.0.4; charset=utf-8"), ("Cache-Control", "no-store")],
    ))
}

/// The scrub's progress and the damaged chunks found.
fn integrity_metrics(s: &State) -> Result<String, ServerError> {
    let r = s.meta.read()?;
    let p = app::integrity::ScrubProgress::load(r.as_ref())?;
    let corrupt = r.counter(app::integrity::CORRUPT_CHUNKS)?.unwrap_or(0);
    let mut o = String::new();
    for (name, kind, help, v) in [
        (
            "exhibit_scrub_checked_chunks",
            "gauge",
            "Chunks the scrub has checked in its current pass.",
            p.checked_chunks,
        ),
        ("exhibit_scrub_checked_bytes", "gauge", "Bytes the scrub has checked in its current pass.", p.checked_bytes),
        ("exhibit_scrub_pass_bytes", "gauge", "Bytes stored when the current scrub pass started.", p.pass_bytes),
        ("exhibit_scrub_passes_total", "counter", "Scrub passes completed.", p.passes),
        (
            "exhibit_corrupt_chunks_total",
            "counter",
            "Distinct stored chunks found damaged (fetch, scrub, backup).",
            corrupt,
        ),
    ] {
        o += &format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n");
    }
    Ok(o)
}

pub(super) fn dashboard(
    s: &State,
    csrf: &str,
    me: &UserId,
    last: Option<(u64, Result<String, String>)>,
) -> Result<Page, ServerError> {
    let now = s.clock.now();
    app::audit::record(s, Ev::new(now, me, "admin-read", me).details("read dashboard"))?;
    let mut transfers = app::listings::every_transfer(s)?;
    transfers.sort_by_key(|t| (t.deadline.unwrap_or(u64::MAX), t.created_at));
    let users = app::listings::every_user(s)?;
    // People read organisations by name and kind ("CPS South East, cps").
    let orgs: HashMap<String, String> = app::orgs::list_records(s)?
        .into_iter()
        .map(|o| (o.org.id.to_string(), format!("{}, {}", o.org.name, o.org.kind)))
        .collect();
    let units = s.meta.read()?.units()?;
    let mut org_of: HashMap<&str, &str> =
        users.iter().map(|u| (u.user.as_str(), orgs.get(&u.org).map_or(u.org.as_str(), String::as_str))).collect();
    for u in &units {
        org_of.insert(u.unit.unit.as_str(), orgs.get(u.unit.org.as_str()).map_or(u.unit.org.as_str(), String::as_str));
    }
    let org = |u: &UserId| org_of.get(u.as_str()).copied().unwrap_or("?").to_owned();
    let csrf_field = format!("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", esc(csrf));
    let mut b = String::new();
    b += &format!(
        "<header><h1>exhibit — admin dashboard</h1><p>Logged in as <b>{}</b>. Server time {}. \
         <form class=\"inline\" method=\"post\" action=\"/logout\">{csrf_field}<button>Log out</button></form></p></header><main>",
        esc(me.as_str()),
        esc(&format_time(now))
    );

    // Overdue first, then the rest still waiting for a receipt.
    let waiting: Vec<&TransferRecord> = transfers
        .iter()
        .filter(|t| {
            t.state == TransferState::Sealed && t.recipients.iter().any(|r| r.state != DeliveryState::Acknowledged)
        })
        .collect();
    let (overdue, pending): (Vec<&TransferRecord>, Vec<&TransferRecord>) =
        waiting.into_iter().partition(|t| is_overdue(t, now));
    b += &format!("<section id=\"overdue\"><h2>Overdue transfers ({})</h2>", overdue.len());
    b += &transfer_table(&overdue, now, &org, "No transfer is overdue.");
    b += &format!("</section><section id=\"waiting\"><h2>Awaiting acknowledgement ({})</h2>", pending.len());
    b += &transfer_table(&pending, now, &org, "No other transfer is waiting for a receipt.");
    b += "</section>";

    // Disclosures outside police and CPS waiting for a second person.
    let approving: Vec<&TransferRecord> =
        transfers.iter().filter(|t| t.state == TransferState::AwaitingApproval).collect();
    b += &format!("<section id=\"approvals\"><h2>Awaiting approval ({})</h2>", approving.len());
    if approving.is_empty() {
        b += "<p>No disclosure is waiting for approval.</p>";
    } else {
        b += "<table><tr><th>Transfer</th><th>Case</th><th>From</th><th>To</th><th>Approvers</th><th>Waiting</th></tr>";
        for t in &approving {
            let since = t.sealed_at.unwrap_or(t.created_at);
            let to: Vec<String> = t.recipients.iter().map(|r| format!("{} ({})", r.user, org(&r.user))).collect();
            let approvers: Vec<&str> = t.approvers.iter().map(UserId::as_str).collect();
            b += &format!(
                "<tr><td><code>{}</code></td><td>{}</td><td>{} ({})</td><td>{}</td><td>{}</td><td>{} (since {})</td></tr>",
                t.transfer,
                esc(t.case_ref.as_deref().unwrap_or("-")),
                esc(t.sender.as_str()),
                esc(&org(&t.sender)),
                esc(&to.join(", ")),
                esc(&approvers.join(", ")),
                esc(&format_secs(now.saturating_sub(since))),
                esc(&format_time(since))
            );
        }
        b += "</table>";
    }
    b += "</section>";

    let alerts = app::listings::every_alert(s, false)?;
    b += &format!("<section id=\"alerts\"><h2>Open alerts ({})</h2>", alerts.len());
    if alerts.is_empty() {
        b += "<p>No open alerts.</p>";
    } else {
        b += "<table><tr><th>Alert</th><th>Raised</th><th>Message</th><th>Notifiers</th><th>Acknowledge</th></tr>";
        for a in &alerts {
            let a = &a.info;
            let deliveries: Vec<String> = a
                .deliveries
                .iter()
                .map(|d| match (d.delivered_at, &d.last_error) {
                    (Some(t), _) => format!("{}: delivered {}", d.notifier, format_time(t)),
                    (None, Some(e)) => format!("{}: retrying ({} attempts): {e}", d.notifier, d.attempts),
                    (None, None) => format!("{}: pending", d.notifier),
                })
                .collect();
            b += &format!(
                "<tr id=\"alert-{id}\"><td>#{id}</td><td>{}</td><td>{}</td><td>{}</td><td>\
                 <form method=\"post\" action=\"/alerts/ack\">{csrf_field}<input type=\"hidden\" name=\"alert\" value=\"{id}\">\
                 <label for=\"note-{id}\">Note (what was done)</label><br>\
                 <input id=\"note-{id}\" name=\"note\" required maxlength=\"4096\" size=\"30\"> \
                 <button>Acknowledge #{id}</button></form></td></tr>",
                esc(&format_time(a.raised_at)),
                esc(&a.message),
                esc(&deliveries.join("; ")),
                id = a.id,
            );
        }
        b += "</table>";
    }
    b += "</section>";

    // Transfers by state and (sender's) organisation.
    let mut counts: BTreeMap<String, [u64; 5]> = BTreeMap::new();
    for t in &transfers {
        let i = match t.state {
            TransferState::Uploading => 0,
            TransferState::Sealed => 1,
            TransferState::AwaitingApproval => 2,
            TransferState::Revoked | TransferState::Refused => 3,
            TransferState::Expired => 4,
        };
        counts.entry(org(&t.sender)).or_default()[i] += 1;
    }
    b += "<section id=\"states\"><h2>Transfers by state and organisation</h2>";
    b += "<table><tr><th>Sender's organisation</th><th>Uploading</th><th>Sealed</th><th>Awaiting approval</th><th>Revoked or refused</th><th>Expired</th></tr>";
    for (o, c) in &counts {
        b += &format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(o),
            c[0],
            c[1],
            c[2],
            c[3],
            c[4]
        );
    }
    b += "</table></section>";

    b += "<section id=\"users\"><h2>Users</h2><table><tr><th>User</th><th>Name</th><th>Organisation</th><th>Roles</th><th>State</th><th></th></tr>";
    for u in &users {
        let (state, action) = match (u.enrolled_at, u.revoked_at) {
            (_, Some(t)) => (format!("revoked {}", format_time(t)), String::new()),
            (e, None) => (
                e.map_or_else(|| "code issued, not enrolled".into(), |t| format!("enrolled {}", format_time(t))),
                format!(
                    "<form method=\"post\" action=\"/users/revoke\">{csrf_field}\
                     <input type=\"hidden\" name=\"user\" value=\"{}\"><button>Revoke {}</button></form>",
                    esc(u.user.as_str()),
                    esc(u.user.as_str())
                ),
            ),
        };
        b += &format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{action}</td></tr>",
            esc(u.user.as_str()),
            esc(&u.display_name),
            esc(&org(&u.user)),
            esc(&u.roles().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")),
            esc(&state)
        );
    }
    b += "</table></section>";

    b += &units_table(&units, &overdue);

    b += "<section id=\"audit\"><h2>Audit log</h2>";
    b += &match last {
        None => "<p>Not verified since the dashboard started.</p>".to_owned(),
        Some((at, Ok(m))) => format!("<p class=\"ok\">Verified at {}: {}</p>", esc(&format_time(at)), esc(&m)),
        Some((at, Err(m))) => {
            format!(
                "<p class=\"bad\" role=\"alert\">AUDIT LOG TAMPERED (checked {}): {}</p>",
                esc(&format_time(at)),
                esc(&m)
            )
        }
    };
    b += &format!(
        "<form method=\"post\" action=\"/audit/verify\">{csrf_field}<button>Verify the audit log now</button></form></section>"
    );
    b += "<p><a href=\"/metrics\">Prometheus metrics</a></p></main>";
    Ok(html(200, layout("exhibit admin dashboard", &b)))
}

/// Units: members, who holds the current key, and what is overdue to
/// each (overdue transfers grouped by unit).
fn units_table(units: &[crate::core::records::UnitRecord], overdue: &[&TransferRecord]) -> String {
    let mut b = format!(
        "<section id=\"units\"><h2>Units ({})</h2><table><tr><th>Unit</th><th>Name</th><th>Organisation</th>\
         <th>Members</th><th>Acknowledged by</th><th>Key</th><th>Overdue</th></tr>",
        units.len()
    );
    if units.is_empty() {
        return b + "</table><p>No unit mailboxes.</p></section>";
    }
    for u in units {
        let epoch = u.unit.epoch;
        let lacking: Vec<&str> = u
            .unit
            .members
            .iter()
            .filter(|m| !u.wraps.iter().any(|w| w.epoch == epoch && &w.member == *m))
            .map(|m| m.as_str())
            .collect();
        let key = match (u.key(epoch).is_some(), lacking.is_empty()) {
            (false, _) => format!("epoch {epoch}: not made yet (the next member to connect makes it)"),
            (true, true) => format!("epoch {epoch}: every member holds it"),
            (true, false) => format!("epoch {epoch}: not yet shared with {}", lacking.join(", ")),
        };
        let late: Vec<String> = overdue
            .iter()
            .filter(|t| t.is_recipient(&u.unit.unit))
            .map(|t| t.transfer.to_string()[..8].to_owned())
            .collect();
        b += &format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(u.unit.unit.as_str()),
            esc(&u.unit.name),
            esc(u.unit.org.as_str()),
            esc(&u.unit.members.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ")),
            if u.unit.ack == exhibit_proto::unit::AckRule::All { "every member" } else { "one member" },
            esc(&key),
            if late.is_empty() { "none".to_owned() } else { esc(&format!("{}: {}", late.len(), late.join(", "))) }
        );
    }
    b + "</table></section>"
}

pub(super) fn state_name(s: TransferState) -> &'static str {
    s.as_str()
}

pub(super) fn transfer_table(
    list: &[&TransferRecord],
    now: u64,
    org: &dyn Fn(&UserId) -> String,
    empty: &str,
) -> String {
    if list.is_empty() {
        return format!("<p>{}</p>", esc(empty));
    }
    let mut b = String::from(
        "<table><tr><th>Transfer</th><th>Case</th><th>From</th><th>Deadline</th><th>Waiting for</th><th>Size</th></tr>",
    );
    for t in list {
        let deadline = match t.deadline {
            Some(d) if d <= now => format!("{} (overdue by {})", format_time(d), format_secs(now - d)),
            Some(d) => format!("{} (in {})", format_time(d), format_secs(d - now)),
            None => "-".into(),
        };
        let waiting: Vec<String> = t
            .recipients
            .iter()
            .filter(|r| r.state != DeliveryState::Acknowledged)
            .map(|r| format!("{} ({}, {})", r.user, org(&r.user), r.state.as_str()))
            .collect();
        b += &format!(
            "<tr><td><code>{}</code></td><td>{}</td><td>{} ({})</td><td>{}</td><td>{}</td><td>{}{} bytes</td></tr>",
            t.transfer,
            esc(t.case_ref.as_deref().unwrap_or("-")),
            esc(t.sender.as_str()),
            esc(&org(&t.sender)),
            esc(&deadline),
            esc(&waiting.join(", ")),
            // Transfers sealed since manifest version 2 keep their file
            // count from the server.
            if t.items > 0 { format!("{} items, ", t.items) } else { String::new() },
            t.bytes
        );
    }
    b + "</table>"
}

/// Revocation cannot be undone: ask once more.
pub(super) fn confirm_revoke(form: &HashMap<String, String>, csrf: &str) -> Page {
    let user = match UserId::new(form.get("user").map(String::as_str).unwrap_or("")) {
        Ok(u) => u,
        Err(e) => return error_page(400, &e.to_string()),
    };
    let u = esc(user.as_str());
    html(
        200,
        layout(
            "Revoke a user?",
            &format!(
                "<h1>Revoke {u}?</h1><p>Their certificate stops working at once, their directory entry is marked \
                 revoked, and every transfer addressed to them that they have not acknowledged raises an alert. \
                 This cannot be undone.</p><form method=\"post\" action=\"/users/revoke\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"user\" value=\"{u}\">\
                 <input type=\"hidden\" name=\"confirm\" value=\"yes\"><button>Yes, revoke {u}</button></form>\
                 <p><a href=\"/#users\">No, go back</a></p>",
                esc(csrf)
            ),
        ),
    )
}

pub(super) fn once_page(code: &str) -> Page {
    html(
        200,
        layout(
            "exhibit admin login",
            &format!(
                "<h1>exhibit — admin login</h1><p>This one-time link logs you in as the admin who asked for it \
                 with <code>exhibit admin dashboard</code>.</p><form method=\"post\" action=\"/login\">\
                 <input type=\"hidden\" name=\"once\" value=\"{}\"><button>Log in</button></form>",
                esc(code)
            ),
        ),
    )
}

pub(super) fn login_page(status: u16, msg: &str) -> Page {
    let msg = if msg.is_empty() { String::new() } else { format!("<p role=\"alert\" class=\"bad\">{}</p>", esc(msg)) };
    html(
        status,
        layout(
            "exhibit admin login",
            &format!(
                "<h1>exhibit — admin login</h1>{msg}<form method=\"post\" action=\"/login\">\
                 <label for=\"token\">Admin token</label> <input id=\"token\" name=\"token\" type=\"password\" \
                 autocomplete=\"current-password\" required> <button>Log in</button></form>"
            ),
        ),
    )
}
