//! The dashboard's pages: the overview, metrics, and the small forms.

use std::collections::{BTreeMap, HashMap};

use exhibit_net::http::{esc, response, with_headers, Page};
use exhibit_proto::duration::{format_secs, format_time};
use exhibit_proto::frame::{DeliveryState, TransferState};
use exhibit_proto::UserId;

use super::govuk::{banner, error_message, error_summary, row_html, summary_list, table, tag, Tag};
use super::{error_page, html, layout, layout_with};
use crate::app;
use crate::core::policy::is_overdue;
use crate::core::records::{Ev, TransferRecord};
use crate::error::ServerError;
use crate::state::State;
use exhibit_proto::duration::format_size;

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

/// Where an overview's link to a transfer's custody view goes, and the
/// link itself (the id in full, in code style).
fn transfer_link(t: &exhibit_proto::TransferId) -> String {
    format!("<a class=\"govuk-link exhibit-code\" href=\"/transfers/{t}\">{t}</a>")
}

/// The tag of a transfer's state, in words (colour repeats them).
fn state_tag(t: &TransferRecord, now: u64) -> String {
    if is_overdue(t, now) {
        return tag("Overdue", Tag::Red);
    }
    match t.state {
        TransferState::AwaitingApproval => tag("Awaiting approval", Tag::Yellow),
        TransferState::Sealed if t.recipients.iter().all(|r| r.state == DeliveryState::Acknowledged) => {
            tag("Acknowledged", Tag::Green)
        }
        TransferState::Sealed => tag("Sealed", Tag::Blue),
        TransferState::Uploading => tag("Uploading", Tag::Grey),
        TransferState::Revoked => tag("Revoked", Tag::Red),
        TransferState::Refused => tag("Refused", Tag::Red),
        TransferState::Expired => tag("Expired", Tag::Grey),
    }
}

pub(super) fn dashboard(
    s: &State,
    csrf: &str,
    me: &UserId,
    last: Option<(u64, Result<String, String>)>,
    query: &HashMap<String, String>,
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
        "<h1 class=\"govuk-heading-l\">Admin dashboard</h1><p class=\"govuk-body\">Logged in as <strong>{}</strong>. \
         Server time {}.</p><div class=\"govuk-checkboxes govuk-checkboxes--small\" data-module=\"govuk-checkboxes\">\
         <div class=\"govuk-checkboxes__item\"><input class=\"govuk-checkboxes__input\" id=\"auto-refresh\" \
         type=\"checkbox\" checked><label class=\"govuk-label govuk-checkboxes__label\" for=\"auto-refresh\">Refresh \
         this page every minute (not while you type)</label></div></div>\
         <form method=\"post\" action=\"/logout\">{csrf_field}\
         <button class=\"govuk-button govuk-button--secondary\" data-module=\"govuk-button\">Log out</button></form>",
        esc(me.as_str()),
        esc(&format_time(now))
    );
    // What the last action did (the page it redirected to says).
    let done = match query.get("done").map(String::as_str) {
        Some("acknowledged") => Some("Alert acknowledged: your note is recorded in the audit log."),
        Some("revoked") => Some("User revoked: their certificate no longer works."),
        Some("verified") => Some("Audit log checked: the result is under Audit log below."),
        _ => None,
    };
    // An acknowledgement without its note: say so at the top, linked.
    let note_missing = query.get("note_missing").and_then(|a| a.parse::<u64>().ok());
    if let Some(id) = note_missing {
        b = error_summary(&[(format!("note-{id}"), format!("Enter a note saying what was done about alert #{id}"))])
            + &b;
    }
    if let Some(m) = done {
        b += &banner(true, "Success", &format!("<p class=\"govuk-notification-banner__heading\">{}</p>", esc(m)));
    }

    // Search by case reference.
    let case = query.get("case").map(|c| c.trim().to_owned()).filter(|c| !c.is_empty());
    b += &format!(
        "<form method=\"get\" action=\"/\" class=\"govuk-!-margin-bottom-6\" role=\"search\">\
         <div class=\"govuk-form-group\"><label class=\"govuk-label govuk-label--s\" for=\"case\">Search by case reference</label>\
         <div class=\"govuk-hint\" id=\"case-hint\">Shows every transfer whose case reference contains what you type.</div>\
         <input class=\"govuk-input govuk-input--width-20\" id=\"case\" name=\"case\" type=\"search\" \
         aria-describedby=\"case-hint\" value=\"{}\"> <button class=\"govuk-button govuk-button--secondary\" \
         id=\"search\">Search</button></div></form>",
        esc(case.as_deref().unwrap_or(""))
    );
    if let Some(case) = &case {
        let want = case.to_lowercase();
        let found: Vec<&TransferRecord> = transfers
            .iter()
            .filter(|t| t.case_ref.as_deref().is_some_and(|c| c.to_lowercase().contains(&want)))
            .collect();
        let rows: Vec<Vec<String>> = found
            .iter()
            .map(|t| {
                vec![
                    transfer_link(&t.transfer),
                    esc(t.case_ref.as_deref().unwrap_or("-")),
                    format!("{} ({})", esc(t.sender.as_str()), esc(&org(&t.sender))),
                    state_tag(t, now),
                    acknowledged(t, &org),
                    esc(&format_size(t.bytes)),
                ]
            })
            .collect();
        b += "<section id=\"search-results\">";
        match rows.is_empty() {
            true => {
                b += &format!(
                    "<h2 class=\"govuk-heading-m\">No transfer has a case reference containing “{}”</h2>",
                    esc(case)
                )
            }
            false => {
                b += &table(
                    &format!("Transfers for case “{case}” ({})", rows.len()),
                    &["Transfer", "Case", "From", "State", "Acknowledged", "Size"],
                    &rows,
                    "",
                )
            }
        }
        b += "<p class=\"govuk-body\"><a class=\"govuk-link\" href=\"/\">Clear the search</a></p></section>";
    }

    // Overdue first, then the rest still waiting for a receipt.
    let waiting: Vec<&TransferRecord> = transfers
        .iter()
        .filter(|t| {
            t.state == TransferState::Sealed && t.recipients.iter().any(|r| r.state != DeliveryState::Acknowledged)
        })
        .collect();
    let (overdue, pending): (Vec<&TransferRecord>, Vec<&TransferRecord>) =
        waiting.into_iter().partition(|t| is_overdue(t, now));
    b += "<section id=\"overdue\">";
    b += &transfer_table(
        &format!("Overdue transfers ({})", overdue.len()),
        &overdue,
        now,
        &org,
        "No transfer is overdue.",
    );
    b += "</section><section id=\"waiting\">";
    b += &transfer_table(
        &format!("Awaiting acknowledgement ({})", pending.len()),
        &pending,
        now,
        &org,
        "No other transfer is waiting for a receipt.",
    );
    b += "</section>";

    // Disclosures outside police and CPS waiting for a second person.
    let approving: Vec<&TransferRecord> =
        transfers.iter().filter(|t| t.state == TransferState::AwaitingApproval).collect();
    b += "<section id=\"approvals\">";
    let title = format!("Awaiting approval ({})", approving.len());
    if approving.is_empty() {
        b += &format!(
            "<h2 class=\"govuk-heading-m\">{}</h2><p class=\"govuk-body\">No disclosure is waiting for approval.</p>",
            esc(&title)
        );
    } else {
        let rows: Vec<Vec<String>> = approving
            .iter()
            .map(|t| {
                let since = t.sealed_at.unwrap_or(t.created_at);
                let to: Vec<String> = t.recipients.iter().map(|r| format!("{} ({})", r.user, org(&r.user))).collect();
                let approvers: Vec<&str> = t.approvers.iter().map(UserId::as_str).collect();
                vec![
                    transfer_link(&t.transfer),
                    esc(t.case_ref.as_deref().unwrap_or("-")),
                    format!("{} ({})", esc(t.sender.as_str()), esc(&org(&t.sender))),
                    esc(&to.join(", ")),
                    esc(&approvers.join(", ")),
                    format!(
                        "{} {} (since {})",
                        tag("Awaiting approval", Tag::Yellow),
                        esc(&format_secs(now.saturating_sub(since))),
                        esc(&format_time(since))
                    ),
                ]
            })
            .collect();
        b += &table(&title, &["Transfer", "Case", "From", "To", "Approvers", "Waiting"], &rows, "");
    }
    b += "</section>";

    let alerts = app::listings::every_alert(s, false)?;
    b += "<section id=\"alerts\">";
    let title = format!("Open alerts ({})", alerts.len());
    if alerts.is_empty() {
        b += &format!("<h2 class=\"govuk-heading-m\">{}</h2><p class=\"govuk-body\">No open alerts.</p>", esc(&title));
    } else {
        b += &format!(
            "<table class=\"govuk-table\"><caption class=\"govuk-table__caption govuk-table__caption--m\">{}</caption>\
             <thead class=\"govuk-table__head\"><tr class=\"govuk-table__row\"><th scope=\"col\" class=\"govuk-table__header\">Alert</th>\
             <th scope=\"col\" class=\"govuk-table__header\">Raised</th><th scope=\"col\" class=\"govuk-table__header\">Message</th>\
             <th scope=\"col\" class=\"govuk-table__header\">Notifiers</th><th scope=\"col\" class=\"govuk-table__header\">Acknowledge</th>\
             </tr></thead><tbody class=\"govuk-table__body\">",
            esc(&title)
        );
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
            let (group, error, described) = match note_missing == Some(a.id) {
                true => (
                    " govuk-form-group--error",
                    error_message(
                        &format!("note-{}", a.id),
                        &format!("Enter a note saying what was done about alert #{}", a.id),
                    ),
                    format!(" aria-describedby=\"note-{}-error\"", a.id),
                ),
                false => ("", String::new(), String::new()),
            };
            let cells = vec![
                format!("#{}", a.id),
                esc(&format_time(a.raised_at)),
                esc(&a.message),
                esc(&deliveries.join("; ")),
                format!(
                    "<form method=\"post\" action=\"/alerts/ack\">{csrf_field}<input type=\"hidden\" name=\"alert\" value=\"{id}\">\
                     <div class=\"govuk-form-group{group}\"><label class=\"govuk-label\" for=\"note-{id}\">Note on alert #{id} (what was done)</label>\
                     {error}<input class=\"govuk-input\" id=\"note-{id}\" name=\"note\" required maxlength=\"4096\"{described}></div>\
                     <button class=\"govuk-button\" data-module=\"govuk-button\">Acknowledge #{id}</button></form>",
                    id = a.id
                ),
            ];
            b += &row_html(&cells, &format!("alert-{}", a.id));
        }
        b += "</tbody></table>";
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
    let rows: Vec<Vec<String>> =
        counts.iter().map(|(o, c)| std::iter::once(esc(o)).chain(c.iter().map(u64::to_string)).collect()).collect();
    b += "<section id=\"states\">";
    b += &table(
        "Transfers by state and organisation",
        &["Sender's organisation", "Uploading", "Sealed", "Awaiting approval", "Revoked or refused", "Expired"],
        &rows,
        "",
    );
    b += "</section>";

    let rows: Vec<Vec<String>> = users
        .iter()
        .map(|u| {
            let state = match (u.enrolled_at, u.revoked_at) {
                (_, Some(t)) => format!("{} {}", tag("Revoked", Tag::Red), esc(&format_time(t))),
                (Some(t), None) => format!("{} {}", tag("Enrolled", Tag::Green), esc(&format_time(t))),
                (None, None) => tag("Code issued, not enrolled", Tag::Grey),
            };
            // No revoke button on a revoked account, nor on one's own.
            let action = match u.revoked_at.is_none() && &u.user != me {
                true => format!(
                    "<form method=\"post\" action=\"/users/revoke\">{csrf_field}\
                     <input type=\"hidden\" name=\"user\" value=\"{u}\"><button class=\"govuk-button govuk-button--warning \
                     govuk-!-margin-bottom-0\" data-module=\"govuk-button\">Revoke {u}</button></form>",
                    u = esc(u.user.as_str())
                ),
                false if &u.user == me => "This is you".to_owned(),
                false => String::new(),
            };
            vec![
                esc(u.user.as_str()),
                esc(&u.display_name),
                esc(&org(&u.user)),
                esc(&u.roles().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")),
                state,
                action,
            ]
        })
        .collect();
    b += "<section id=\"users\">";
    b += &table("Users", &["User", "Name", "Organisation", "Roles", "State", "Action"], &rows, "");
    b += "</section>";

    b += &units_table(&units, &overdue);

    b += "<section id=\"audit\"><h2 class=\"govuk-heading-m\">Audit log</h2>";
    b += &match last {
        None => "<p class=\"govuk-body\">Not verified since the dashboard started.</p>".to_owned(),
        Some((at, Ok(m))) => format!(
            "<p class=\"govuk-body\">{} Verified at {}: {}</p>",
            tag("Intact", Tag::Green),
            esc(&format_time(at)),
            esc(&m)
        ),
        Some((at, Err(m))) => banner(
            false,
            "Audit log tampered",
            &format!(
                "<p class=\"govuk-notification-banner__heading\">AUDIT LOG TAMPERED (checked {}): {}</p>",
                esc(&format_time(at)),
                esc(&m)
            ),
        ),
    };
    b += &format!(
        "<form method=\"post\" action=\"/audit/verify\">{csrf_field}<button class=\"govuk-button govuk-button--secondary\" \
         data-module=\"govuk-button\">Verify the audit log now</button></form></section>"
    );
    b += "<p class=\"govuk-body\"><a class=\"govuk-link\" href=\"/metrics\">Prometheus metrics</a></p>";
    let script = format!("<script>{}</script>", super::REFRESH_SCRIPT);
    Ok(html(200, layout_with("Admin dashboard", &b, &script)))
}

/// Who has acknowledged a transfer, and when.
fn acknowledged(t: &TransferRecord, org: &dyn Fn(&UserId) -> String) -> String {
    let done: Vec<String> = t
        .recipients
        .iter()
        .filter(|r| r.state == DeliveryState::Acknowledged)
        .map(|r| {
            let at = r.at.map(|a| format!(" {}", format_time(a))).unwrap_or_default();
            format!("{} ({}){at}", r.user, org(&r.user))
        })
        .collect();
    match done.is_empty() {
        true => "none yet".to_owned(),
        false => format!("{} {}", tag("Acknowledged", Tag::Green), esc(&done.join(", "))),
    }
}

/// A transfer's custody as the server holds it: its record and every
/// audit entry about it, in order. No file names: the server has none.
pub(super) fn custody(s: &State, me: &UserId, id: &str) -> Result<Page, ServerError> {
    let transfer: exhibit_proto::TransferId =
        id.parse().map_err(|_| ServerError::BadRequest(format!("{id:?} is not a transfer id")))?;
    let now = s.clock.now();
    app::audit::record(s, Ev::new(now, me, "admin-read", transfer).details("read custody on the dashboard"))?;
    let r = s.meta.read()?;
    let t = r.transfer(&transfer)?.ok_or_else(|| ServerError::NotFound(format!("no transfer {transfer}")))?;
    let subject = transfer.to_string();
    let (mut entries, mut after) = (vec![], 0);
    loop {
        let page = r.audit_about(&subject, after, 1000)?;
        let Some(last) = page.last() else { break };
        after = last.body.seq;
        let full = page.len() == 1000;
        entries.extend(page);
        if !full || entries.len() >= 10_000 {
            break;
        }
    }
    drop(r);
    let deadline = match t.deadline {
        Some(d) if d <= now => format!("{} (overdue by {})", format_time(d), format_secs(now - d)),
        Some(d) => format!("{} (in {})", format_time(d), format_secs(d - now)),
        None => "-".into(),
    };
    let recips: Vec<String> = t
        .recipients
        .iter()
        .map(|p| {
            let at = p.at.map(|a| format!(" {}", format_time(a))).unwrap_or_default();
            let state = match p.state {
                DeliveryState::Acknowledged => tag("Acknowledged", Tag::Green),
                DeliveryState::Damaged => tag("Damaged", Tag::Red),
                st => tag(st.as_str(), Tag::Blue),
            };
            format!("{} {state}{}", esc(p.user.as_str()), esc(&at))
        })
        .collect();
    let mut b = format!(
        "<a href=\"/\" class=\"govuk-back-link\">Back to the dashboard</a>\
         <h1 class=\"govuk-heading-l\">Custody of transfer <span class=\"exhibit-code\">{transfer}</span></h1>"
    );
    b += &summary_list(&[
        ("Case reference", esc(t.case_ref.as_deref().unwrap_or("-"))),
        ("State", state_tag(&t, now)),
        ("From", esc(t.sender.as_str())),
        ("Recipients", recips.join("<br>")),
        ("Sealed", esc(&t.sealed_at.map_or("-".into(), format_time))),
        ("Deadline", esc(&deadline)),
        (
            "Size",
            esc(&match t.items {
                0 => format_size(t.bytes),
                n => format!("{n} items, {} encrypted", format_size(t.bytes)),
            }),
        ),
    ]);
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let e = &e.body;
            let details = format!("<span class=\"exhibit-wrap\">{}</span>", esc(&e.details));
            vec![e.seq.to_string(), esc(&format_time(e.time)), esc(&e.action), esc(&e.actor), details]
        })
        .collect();
    b += &table(
        &format!("Audit log entries about this transfer ({})", rows.len()),
        &["#", "Time", "Action", "By", "Details"],
        &rows,
        "steps",
    );
    Ok(html(200, layout(&format!("Custody of transfer {transfer}"), &b)))
}

/// Units: members, who holds the current key, and what is overdue to
/// each (overdue transfers grouped by unit).
fn units_table(units: &[crate::core::records::UnitRecord], overdue: &[&TransferRecord]) -> String {
    let title = format!("Units ({})", units.len());
    if units.is_empty() {
        return format!(
            "<section id=\"units\"><h2 class=\"govuk-heading-m\">{}</h2><p class=\"govuk-body\">No unit mailboxes.</p></section>",
            esc(&title)
        );
    }
    let mut rows = vec![];
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
        rows.push(vec![
            esc(u.unit.unit.as_str()),
            esc(&u.unit.name),
            esc(u.unit.org.as_str()),
            esc(&u.unit.members.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ")),
            if u.unit.ack == exhibit_proto::unit::AckRule::All { "every member" } else { "one member" }.to_owned(),
            esc(&key),
            if late.is_empty() { "none".to_owned() } else { esc(&format!("{}: {}", late.len(), late.join(", "))) },
        ]);
    }
    format!(
        "<section id=\"units\">{}</section>",
        table(&title, &["Unit", "Name", "Organisation", "Members", "Acknowledged by", "Key", "Overdue"], &rows, "")
    )
}

pub(super) fn state_name(s: TransferState) -> &'static str {
    s.as_str()
}

pub(super) fn transfer_table(
    title: &str,
    list: &[&TransferRecord],
    now: u64,
    org: &dyn Fn(&UserId) -> String,
    empty: &str,
) -> String {
    if list.is_empty() {
        return format!("<h2 class=\"govuk-heading-m\">{}</h2><p class=\"govuk-body\">{}</p>", esc(title), esc(empty));
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|t| {
            let deadline = match t.deadline {
                Some(d) if d <= now => format!(
                    "{} {} (overdue by {})",
                    tag("Overdue", Tag::Red),
                    esc(&format_time(d)),
                    esc(&format_secs(now - d))
                ),
                Some(d) => esc(&format!("{} (in {})", format_time(d), format_secs(d - now))),
                None => "-".into(),
            };
            let waiting: Vec<String> = t
                .recipients
                .iter()
                .filter(|r| r.state != DeliveryState::Acknowledged)
                .map(|r| format!("{} ({}, {})", r.user, org(&r.user), r.state.as_str()))
                .collect();
            // Transfers sealed since manifest version 2 keep their file
            // count from the server.
            let size = match t.items {
                0 => format_size(t.bytes),
                n => format!("{n} items, {}", format_size(t.bytes)),
            };
            vec![
                transfer_link(&t.transfer),
                esc(t.case_ref.as_deref().unwrap_or("-")),
                format!("{} ({})", esc(t.sender.as_str()), esc(&org(&t.sender))),
                deadline,
                esc(&waiting.join(", ")),
                acknowledged(t, org),
                esc(&size),
            ]
        })
        .collect();
    table(title, &["Transfer", "Case", "From", "Deadline", "Waiting for", "Acknowledged", "Size"], &rows, "")
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
                "<a href=\"/#users\" class=\"govuk-back-link\">Back</a><h1 class=\"govuk-heading-l\">Revoke {u}?</h1>\
                 <div class=\"govuk-warning-text\"><span class=\"govuk-warning-text__icon\" aria-hidden=\"true\">!</span>\
                 <strong class=\"govuk-warning-text__text\"><span class=\"govuk-visually-hidden\">Warning</span>\
                 This cannot be undone.</strong></div><p class=\"govuk-body\">Their certificate stops working at once, \
                 their directory entry is marked revoked, and every transfer addressed to them that they have not \
                 acknowledged raises an alert.</p><form method=\"post\" action=\"/users/revoke\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"user\" value=\"{u}\">\
                 <input type=\"hidden\" name=\"confirm\" value=\"yes\"><div class=\"govuk-button-group\">\
                 <button class=\"govuk-button govuk-button--warning\" data-module=\"govuk-button\">Yes, revoke {u}</button>\
                 <a class=\"govuk-link\" href=\"/#users\">No, go back</a></div></form>",
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
                "<h1 class=\"govuk-heading-l\">exhibit — admin login</h1><p class=\"govuk-body\">This one-time link \
                 logs you in as the admin who asked for it with <code>exhibit admin dashboard</code>.</p>\
                 <form method=\"post\" action=\"/login\"><input type=\"hidden\" name=\"once\" value=\"{}\">\
                 <button class=\"govuk-button\" data-module=\"govuk-button\">Log in</button></form>",
                esc(code)
            ),
        ),
    )
}

pub(super) fn login_page(status: u16, msg: &str) -> Page {
    let (summary, error, group, described) = match msg.is_empty() {
        true => (String::new(), String::new(), "", ""),
        false => (
            error_summary(&[("token".to_owned(), msg.to_owned())]),
            error_message("token", msg),
            " govuk-form-group--error",
            " aria-describedby=\"token-error\"",
        ),
    };
    html(
        status,
        layout(
            "exhibit admin login",
            &format!(
                "{summary}<h1 class=\"govuk-heading-l\">exhibit — admin login</h1><form method=\"post\" action=\"/login\">\
                 <div class=\"govuk-form-group{group}\"><label class=\"govuk-label\" for=\"token\">Admin token</label>{error}\
                 <input class=\"govuk-input govuk-!-width-one-half\" id=\"token\" name=\"token\" type=\"password\" \
                 autocomplete=\"current-password\" required{described}></div>\
                 <button class=\"govuk-button\" data-module=\"govuk-button\">Log in</button></form>"
            ),
        ),
    )
}
