//! The pages `exhibit ui` serves, in GOV.UK Frontend's markup: every value
//! escaped where it is written, and the small script (by nonce) that
//! takes dropped folders and polls progress. Every page works without it,
//! except dropping files onto the page.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use exhibit_net::http::{self, esc, Page};
use exhibit_proto::directory::{DirectoryEntry, Role};
use exhibit_proto::frame::{DeliveryState, TransferInfo, TransferState};
use exhibit_proto::labels::{Handling, Material, Redaction, Schedule};
use exhibit_proto::org::OrgKind;

use super::govuk::{self, banner, error_message, error_summary, panel, summary_list, table, tag, NavLink, Tag};
use super::{Draft, Job, JobKind, JobState};
use crate::human::{format_size, format_time, until};
use crate::ops::approvals::Review;
use crate::ops::orgs::Orgs;
use crate::ops::show::Preview;

/// Which tab of the navigation a page belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Tab {
    Transfers,
    Send,
    People,
    None,
}

/// A whole page: GOV.UK header and navigation, `main`, and (with a nonce)
/// the page's script.
pub(super) fn page(pre: &str, title: &str, tab: Tab, main: &str, nonce: Option<&str>) -> String {
    let (home, send, people) = (format!("{pre}/"), format!("{pre}/send"), format!("{pre}/people"));
    let nav = [
        NavLink { href: &home, text: "Your transfers", active: tab == Tab::Transfers },
        NavLink { href: &send, text: "Send evidence", active: tab == Tab::Send },
        NavLink { href: &people, text: "People and keys", active: tab == Tab::People },
    ];
    let tail = match nonce {
        Some(n) => format!("<script nonce=\"{n}\">{}</script>", SCRIPT.replace("PREFIX", pre)),
        None => String::new(),
    };
    govuk::Layout { title, service: "exhibit", home: &home, prefix: pre, nav: &nav, head_html: "", tail_html: &tail }
        .render(main)
}

/// Only the page's own inline script (by nonce), its own stylesheets and
/// requests back here.
pub(super) fn html(status: u16, body: String, nonce: &str) -> Page {
    let csp = format!(
        "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'nonce-{nonce}'; connect-src 'self'; \
         form-action 'self'; frame-ancestors 'none'"
    );
    http::html(status, body, &csp)
}

/// A page with a fresh nonce for its script.
pub(super) fn scripted(status: u16, pre: &str, title: &str, tab: Tab, main: &str) -> Page {
    let nonce = hex::encode(rand::random::<[u8; 12]>());
    html(status, page(pre, title, tab, main, Some(&nonce)), &nonce)
}

/// A page without script.
pub(super) fn plain(status: u16, pre: &str, title: &str, tab: Tab, main: &str) -> Page {
    html(status, page(pre, title, tab, main, None), "none")
}

/// An error with the way back: the page the user came from, kept.
pub(super) fn error_page(status: u16, pre: &str, msg: &str) -> Page {
    plain(
        status,
        pre,
        "Something went wrong",
        Tab::None,
        &format!(
            "<h1 class=\"govuk-heading-l\">Something went wrong</h1>{}\
             <p class=\"govuk-body\"><a class=\"govuk-link\" href=\"{pre}/\">Back to your transfers</a></p>",
            banner(false, "Important", &format!("<p class=\"govuk-notification-banner__heading\">{}</p>", esc(msg)))
        ),
    )
}

/// Progress in words: percent, bytes, speed and time left.
pub(super) fn progress_text(done: u64, total: u64, secs: f64) -> String {
    let pct = (done.min(total) * 100).checked_div(total).unwrap_or(0);
    let mut t = format!("{pct}% — {} of {}", format_size(done), format_size(total));
    if secs > 0.0 && done > 0 {
        let rate = done as f64 / secs;
        t += &format!(" at {}/s", format_size(rate as u64));
        if total > done && rate > 0.0 {
            t += &format!(
                ", about {} left",
                exhibit_proto::duration::format_secs(((total - done) as f64 / rate) as u64 + 1)
            );
        }
    }
    t
}

/// One job as a list entry: what, its state in words, and (while it
/// runs) a progress bar. A failed job shows no bar.
fn job_item(j: &Job, pre: &str) -> String {
    let (done, total) = (j.meter.done.load(Ordering::Relaxed), j.meter.total.load(Ordering::Relaxed));
    let state = j.state.lock().map(|s| s.clone()).unwrap_or(JobState::Failed("job state lost".into()));
    let body = match &state {
        JobState::Running => format!(
            "{} <progress class=\"exhibit-progress\" max=\"{}\" value=\"{done}\" aria-label=\"Progress of {}\"></progress> \
             <span class=\"exhibit-progress-text\">{}</span>",
            tag("In progress", Tag::Blue),
            total.max(1),
            esc(&j.what),
            esc(&progress_text(done, total, j.started.elapsed().as_secs_f64()))
        ),
        JobState::Done(m) => format!("{} {}", tag("Done", Tag::Green), esc(&format!("done: {m}"))),
        JobState::Failed(m) => format!("{} {}", tag("Failed", Tag::Red), esc(&format!("FAILED: {m}"))),
    };
    format!(
        "<li id=\"job-{id}\" data-state=\"{}\"><a class=\"govuk-link\" href=\"{pre}/jobs/{id}\">{}</a><br>{body}</li>",
        match state {
            JobState::Running => "running",
            JobState::Done(_) => "done",
            JobState::Failed(_) => "failed",
        },
        esc(&j.what),
        id = j.id
    )
}

/// The main page: who is signed in, what waits for approval, the jobs,
/// the inbox and the outbox (which first: see [`inbox_first`]).
pub(super) struct Main<'a> {
    pub me: &'a DirectoryEntry,
    pub prefix: &'a str,
    pub downloads: &'a Path,
    pub jobs: &'a [Arc<Job>],
    pub orgs: &'a Orgs,
    pub entries: &'a [DirectoryEntry],
    pub pins: &'a BTreeMap<String, String>,
    pub now: u64,
}

/// Inbox first for people who receive, outbox first for senders: the
/// inbox leads when something in it still waits for this user's receipt;
/// otherwise the outbox leads when this user has sent anything, or (both
/// empty) when their role is the police evidence unit's, who send.
pub(super) fn inbox_first(me: &DirectoryEntry, inbox: &[TransferInfo], outbox: &[TransferInfo]) -> bool {
    let acked = |t: &TransferInfo| {
        t.recipients.iter().any(|r| r.user == me.user && r.state == DeliveryState::Acknowledged)
            || t.unit_acks.iter().any(|a| a.member == me.user)
    };
    let waiting = inbox.iter().any(|t| !acked(t));
    match (waiting, outbox.is_empty(), inbox.is_empty()) {
        (true, _, _) => true,
        (false, false, _) => false,
        (false, true, false) => true,
        (false, true, true) => !me.has_role(Role::EvidenceUnit),
    }
}

impl Main<'_> {
    pub fn render(
        &self,
        inbox: &[TransferInfo],
        previews: &BTreeMap<String, Result<Preview, String>>,
        outbox: &[TransferInfo],
        waiting: Option<&[TransferInfo]>,
        done: Option<&str>,
    ) -> Page {
        let me = self.me;
        let pre = self.prefix;
        let mut b = done
            .map(|m| {
                banner(true, "Success", &format!("<p class=\"govuk-notification-banner__heading\">{}</p>", esc(m)))
            })
            .unwrap_or_default();
        b += &format!(
            "<h1 class=\"govuk-heading-l\">Your transfers</h1><p class=\"govuk-body\">Signed in as <b>{}</b> \
             ({}, {}), your key fingerprint <span class=\"exhibit-code\">{}</span>. Your keys stay in this program; \
             this page talks only to it.</p>",
            esc(me.user.as_str()),
            esc(&me.display_name),
            esc(&self.orgs.describe(me)),
            esc(&me.fingerprint())
        );
        if let Some(waiting) = waiting {
            b += &approvals_section(waiting, pre);
        }
        if !self.jobs.is_empty() {
            b += "<section id=\"jobs\"><h2 class=\"govuk-heading-m\">In progress and done</h2><ul class=\"govuk-list govuk-list--spaced\">";
            for j in self.jobs.iter().rev() {
                b += &job_item(j, pre);
            }
            b += "</ul></section>";
        }
        let inbox_html = format!(
            "<section id=\"inbox\"><h2 class=\"govuk-heading-m\">Received (inbox)</h2>\
             <p class=\"govuk-body\">Fetched files are written to <code>{}</code>.</p>{}</section>",
            esc(&self.downloads.display().to_string()),
            self.inbox_table(inbox, previews)
        );
        let outbox_html = format!(
            "<section id=\"outbox\"><h2 class=\"govuk-heading-m\">Sent (outbox)</h2>{}</section>",
            self.outbox_table(outbox)
        );
        match inbox_first(me, inbox, outbox) {
            true => b += &(inbox_html + &outbox_html),
            false => b += &(outbox_html + &inbox_html),
        }
        scripted(200, pre, "Your transfers", Tab::Transfers, &b)
    }

    /// A user's name; "Revoked" for one revoked (the directory lists
    /// revoked users no more, so: one pinned here whom it no longer lists).
    fn who(&self, user: &str) -> String {
        match self.entries.iter().find(|e| e.user.as_str() == user) {
            Some(e) if e.revoked_at.is_some() => format!("{} {}", esc(&e.display_name), tag("Revoked", Tag::Red)),
            Some(e) => esc(&e.display_name),
            None if self.pins.contains_key(user) => format!("{} {}", esc(user), tag("Revoked", Tag::Red)),
            None => esc(user),
        }
    }

    fn inbox_table(&self, list: &[TransferInfo], previews: &BTreeMap<String, Result<Preview, String>>) -> String {
        if list.is_empty() {
            return "<p class=\"govuk-body\">Nothing received yet.</p>".into();
        }
        let (pre, me, now) = (self.prefix, &self.me.user, self.now);
        let mut b = String::from(
            "<table class=\"govuk-table\"><caption class=\"govuk-visually-hidden\">Received transfers</caption>\
             <thead class=\"govuk-table__head\"><tr class=\"govuk-table__row\">",
        );
        for h in ["Case", "From", "What", "Deadline", "State", "Action"] {
            b += &format!("<th scope=\"col\" class=\"govuk-table__header\">{h}</th>");
        }
        b += "</tr></thead><tbody class=\"govuk-table__body\">";
        for t in list {
            let id = t.transfer.to_string();
            let case = t.case_ref.as_deref().unwrap_or("no case reference");
            let mine = t.recipients.iter().find(|r| &r.user == me).map(|r| r.state);
            let acked = mine == Some(DeliveryState::Acknowledged) || t.unit_acks.iter().any(|a| a.member == *me);
            let overdue = !acked && t.deadline.is_some_and(|d| d <= now);
            let state = match (mine, overdue) {
                _ if acked => tag("Receipt sent", Tag::Green),
                (Some(DeliveryState::Damaged), _) => tag("Damaged: ask the sender", Tag::Red),
                (_, true) => tag("Overdue", Tag::Red),
                (Some(DeliveryState::Delivered), _) => tag("Downloaded", Tag::Blue),
                _ if t.state == TransferState::Revoked => tag("Withdrawn", Tag::Grey),
                _ if t.state == TransferState::Expired => tag("Expired", Tag::Grey),
                _ => tag("New", Tag::Blue),
            };
            let deadline = match (t.deadline, acked) {
                (Some(d), false) => format!("{}<br>{}", esc(&format_time(d)), esc(&until(d, now))),
                (Some(d), true) => esc(&format_time(d)),
                (None, _) => "none".into(),
            };
            let what = match previews.get(&id) {
                Some(Ok(s)) => format!(
                    "{}{} {}, {}{}",
                    s.unit.as_deref().map(|u| format!("For your unit {}<br>", esc(u))).unwrap_or_default(),
                    s.item_count,
                    if s.item_count == 1 { "item" } else { "items" },
                    esc(&format_size(s.bytes)),
                    s.note.as_deref().map(|n| format!("<br>Note: “{}”", esc(n))).unwrap_or_default()
                ),
                Some(Err(e)) => format!("details could not be opened: {}", esc(e)),
                None => esc(&format!("{} items, {} encrypted", t.items, format_size(t.bytes))),
            };
            let hidden = format!(
                "<span class=\"govuk-visually-hidden\"> from {}, sealed {}</span>",
                esc(t.sender.as_str()),
                esc(&t.sealed_at.map_or_else(|| "-".into(), format_time))
            );
            let custody = format!(
                "<a class=\"govuk-link\" href=\"{pre}/custody/{id}\">Custody report<span class=\"govuk-visually-hidden\"> \
                 for {}</span></a>",
                esc(case)
            );
            let action = match acked {
                true => format!(
                    "<a class=\"govuk-link\" href=\"{pre}/forward/{id}\" id=\"forward-{id}\">Forward<span \
                     class=\"govuk-visually-hidden\"> {}</span></a><br>{custody}",
                    esc(case)
                ),
                false => format!(
                    "<form method=\"post\" action=\"{pre}/fetch\"><input type=\"hidden\" name=\"transfer\" value=\"{id}\">\
                     <input type=\"hidden\" name=\"case\" value=\"{}\"><button class=\"govuk-button govuk-!-margin-bottom-1\" data-module=\"govuk-button\" id=\"fetch-{id}\">\
                     Fetch {}{hidden}</button></form>{custody}",
                    esc(t.case_ref.as_deref().unwrap_or("")),
                    esc(case)
                ),
            };
            b += &govuk::row_html(
                &[
                    esc(case),
                    format!(
                        "{}<br>{}",
                        self.who(t.sender.as_str()),
                        esc(&t.sealed_at.map_or_else(|| "-".into(), format_time))
                    ),
                    what,
                    deadline,
                    state,
                    action,
                ],
                &format!("t-{id}"),
            );
        }
        b + "</tbody></table>"
    }

    fn outbox_table(&self, list: &[TransferInfo]) -> String {
        if list.is_empty() {
            return "<p class=\"govuk-body\">Nothing sent yet.</p>".into();
        }
        let (pre, now) = (self.prefix, self.now);
        let mut rows = vec![];
        for t in list {
            let id = t.transfer.to_string();
            let mut recips: Vec<String> = t
                .recipients
                .iter()
                .map(|r| {
                    let st = match r.state {
                        DeliveryState::Acknowledged => tag("acknowledged", Tag::Green),
                        DeliveryState::Damaged => tag("damaged", Tag::Red),
                        _ if t.deadline.is_some_and(|d| d <= now) && t.state == TransferState::Sealed => {
                            format!("{} {}", tag(r.state.as_str(), Tag::Blue), tag("Overdue", Tag::Red))
                        }
                        s => tag(s.as_str(), Tag::Blue),
                    };
                    format!("{}: {st} ({})", esc(r.user.as_str()), self.who(r.user.as_str()))
                })
                .collect();
            match (&t.state, &t.decision) {
                (TransferState::AwaitingApproval, _) => recips.push(tag("Awaiting approval", Tag::Yellow)),
                (_, Some(d)) if d.approved => recips.push(esc(&format!("approved by {}", d.by))),
                (_, Some(d)) => recips.push(format!(
                    "{} {}",
                    tag("Refused", Tag::Red),
                    esc(&format!("by {}: {}", d.by, d.reason.as_deref().unwrap_or("-")))
                )),
                _ => {}
            }
            let case = t.case_ref.as_deref().unwrap_or("no case reference");
            rows.push((
                id.clone(),
                vec![
                    format!("{}<br><span class=\"govuk-body-s exhibit-code\">{id}</span>", esc(case)),
                    recips.join("<br>"),
                    esc(&t.sealed_at.map_or_else(|| "uploading".into(), format_time)),
                    t.deadline.map_or_else(
                        || "none".into(),
                        |d| format!("{}<br>{}", esc(&format_time(d)), esc(&until(d, now))),
                    ),
                    esc(&match t.items {
                        0 => format_size(t.bytes),
                        n => format!("{n} items, {}", format_size(t.bytes)),
                    }),
                    format!(
                        "<a class=\"govuk-link\" href=\"{pre}/custody/{id}\">Custody report<span \
                         class=\"govuk-visually-hidden\"> for {}</span></a>",
                        esc(case)
                    ),
                ],
            ));
        }
        let mut b = String::from(
            "<table class=\"govuk-table\"><caption class=\"govuk-visually-hidden\">Sent transfers</caption>\
             <thead class=\"govuk-table__head\"><tr class=\"govuk-table__row\">",
        );
        for h in ["Case", "Recipients", "Sealed", "Deadline", "Size", "Report"] {
            b += &format!("<th scope=\"col\" class=\"govuk-table__header\">{h}</th>");
        }
        b += "</tr></thead><tbody class=\"govuk-table__body\">";
        for (id, cells) in rows {
            b += &govuk::row_html(&cells, &format!("t-{id}"));
        }
        b + "</tbody></table>"
    }
}

/// The people the directory lists (as verified against the deployment's
/// authority): names, organisations, key fingerprints and pin state.
pub(super) fn people(
    pre: &str,
    me: &DirectoryEntry,
    entries: &[DirectoryEntry],
    pins: &BTreeMap<String, String>,
    orgs: &Orgs,
) -> Page {
    let mut rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let pin = match pins.get(e.user.as_str()) {
                _ if e.user == me.user => "you".to_owned(),
                Some(f) if *f == e.fingerprint() => tag("Pinned", Tag::Green),
                Some(_) => tag("KEY CHANGED: check with them", Tag::Red),
                None => "first use: pinned when you send".to_owned(),
            };
            let state = match e.revoked_at {
                Some(t) => format!("{} {}", tag("Revoked", Tag::Red), esc(&format_time(t))),
                None => tag("Active", Tag::Green),
            };
            vec![
                esc(e.user.as_str()),
                esc(&e.display_name),
                esc(&orgs.describe(e)),
                esc(&e.roles_shown()),
                format!("<span class=\"exhibit-code\">{}</span>", esc(&e.fingerprint())),
                pin,
                state,
            ]
        })
        .collect();
    // The directory lists revoked users no more: those pinned here that it
    // no longer lists were revoked.
    for (user, fp) in pins {
        if !entries.iter().any(|e| e.user.as_str() == user) {
            rows.push(vec![
                esc(user),
                "-".into(),
                "-".into(),
                "-".into(),
                format!("<span class=\"exhibit-code\">{}</span>", esc(fp)),
                "pinned before".into(),
                format!("{} no longer in the directory", tag("Revoked", Tag::Red)),
            ]);
        }
    }
    let b = format!(
        "<h1 class=\"govuk-heading-l\">People and keys</h1><p class=\"govuk-body\">Everyone the directory lists, \
         verified against the deployment's authority. Before sending, check a recipient's key fingerprint with \
         them by phone or in person once; this program then pins it and warns if it changes.</p>{}",
        table(
            "Directory",
            &["User", "Name", "Organisation", "Roles", "Key fingerprint", "Pinned", "State"],
            &rows,
            "people"
        )
    );
    plain(200, pre, "People and keys", Tab::People, &b)
}

/// The send form: recipients (several may be ticked), files or a folder
/// (chosen or dropped), case, note, deadline and labels. After an error
/// it comes back with what was entered and the files already uploaded.
pub(super) fn send_form(
    pre: &str,
    me: &DirectoryEntry,
    entries: &[DirectoryEntry],
    pins: &BTreeMap<String, String>,
    orgs: &Orgs,
    draft: Option<(&str, &Draft)>,
) -> Page {
    let empty = Draft::default();
    let (draft_id, d) = match draft {
        Some((id, d)) => (id, d),
        None => ("", &empty),
    };
    let err = |field: &str| d.errors.iter().find(|(f, _)| f == field).map(|(_, m)| m.as_str());
    let group = |field: &str| match err(field) {
        Some(_) => " govuk-form-group--error",
        None => "",
    };
    let msg = |field: &str| err(field).map(|m| error_message(field, m)).unwrap_or_default();
    let value = |k: &str| esc(d.fields.get(k).map(String::as_str).unwrap_or(""));
    // A field's hint and, when it is at fault, its error message.
    let described = |field: &str, hint: bool| {
        let ids: Vec<String> = [hint.then(|| format!("{field}-hint")), err(field).map(|_| format!("{field}-error"))]
            .into_iter()
            .flatten()
            .collect();
        match ids.is_empty() {
            true => String::new(),
            false => format!(" aria-describedby=\"{}\"", ids.join(" ")),
        }
    };
    let mut b = error_summary(&d.errors);
    b += &format!(
        "<h1 class=\"govuk-heading-l\">Send evidence</h1>\
         <form method=\"post\" action=\"{pre}/send\" enctype=\"multipart/form-data\" id=\"send-form\" novalidate>\
         <input type=\"hidden\" name=\"draft\" value=\"{}\">",
        esc(draft_id)
    );
    // Recipients.
    b += &format!(
        "<div class=\"govuk-form-group{}\"><fieldset class=\"govuk-fieldset\" aria-describedby=\"to-hint{}\">\
         <legend class=\"govuk-fieldset__legend govuk-fieldset__legend--m\"><h2 class=\"govuk-fieldset__heading\">\
         Who is it for?</h2></legend><div id=\"to-hint\" class=\"govuk-hint\">Select everyone who should receive it. \
         Each is shown with their organisation and key fingerprint.</div>{}<div class=\"govuk-checkboxes\" \
         data-module=\"govuk-checkboxes\">",
        group("to"),
        if err("to").is_some() { " to-error" } else { "" },
        msg("to")
    );
    let others: Vec<&DirectoryEntry> = entries.iter().filter(|e| e.user != me.user && e.revoked_at.is_none()).collect();
    for (i, e) in others.iter().enumerate() {
        // The first box is #to, where the error summary links.
        let id = if i == 0 { "to".to_owned() } else { format!("to-{}", e.user) };
        let checked = if d.to.iter().any(|t| t == e.user.as_str()) { " checked" } else { "" };
        let pin = match pins.get(e.user.as_str()) {
            Some(f) if *f == e.fingerprint() => "key pinned",
            Some(_) => "KEY CHANGED: check with them before sending",
            None => "first use: the key is pinned when you send",
        };
        b += &format!(
            "<div class=\"govuk-checkboxes__item\"><input class=\"govuk-checkboxes__input\" id=\"{id}\" name=\"to\" \
             type=\"checkbox\" value=\"{u}\" aria-describedby=\"{id}-hint\"{checked}><label class=\"govuk-label \
             govuk-checkboxes__label\" for=\"{id}\">{} ({u})</label><div id=\"{id}-hint\" class=\"govuk-hint \
             govuk-checkboxes__hint\">{}, {}; key <span class=\"exhibit-code\">{}</span> ({pin})</div></div>",
            esc(&e.display_name),
            esc(&orgs.describe(e)),
            esc(&e.roles_shown()),
            esc(&e.fingerprint()),
            id = esc(&id),
            u = esc(e.user.as_str()),
        );
    }
    if others.is_empty() {
        b += "<p class=\"govuk-body\" id=\"to\">The directory lists nobody else.</p>";
    }
    b += "</div></fieldset></div>";

    // Files.
    b += &format!(
        "<div class=\"govuk-form-group{}\"><h2 class=\"govuk-heading-m\">What are you sending?</h2>{}",
        group("files"),
        msg("files")
    );
    if !d.items.is_empty() {
        let total: u64 = d.items.iter().map(|(_, s)| s).sum();
        let names: Vec<String> =
            d.items.iter().take(20).map(|(p, s)| format!("{} ({})", esc(p), esc(&format_size(*s)))).collect();
        b += &format!(
            "<div class=\"govuk-inset-text\" id=\"staged\">Already uploaded: {} {}, {} — {}{}. Choose files again only to \
             replace them.</div>",
            d.items.len(),
            if d.items.len() == 1 { "file" } else { "files" },
            esc(&format_size(total)),
            names.join(", "),
            if d.items.len() > 20 { ", …" } else { "" }
        );
    }
    b += &format!(
        "<div class=\"exhibit-drop\" id=\"drop\"><div class=\"govuk-form-group\"><label class=\"govuk-label\" \
         for=\"files\">Choose files</label><input class=\"govuk-file-upload\" id=\"files\" name=\"file\" type=\"file\" \
         multiple{}></div><div class=\"govuk-form-group\"><label class=\"govuk-label\" for=\"folder\">Or choose a \
         folder (everything in it, keeping its sub-folders)</label><input class=\"govuk-file-upload\" id=\"folder\" \
         name=\"file\" type=\"file\" webkitdirectory multiple></div><p class=\"govuk-body govuk-!-margin-bottom-0\">Or \
         drag files or folders onto this box.</p><p class=\"govuk-body govuk-!-margin-bottom-0\" id=\"dropped\" \
         aria-live=\"polite\"></p></div></div>",
        described("files", false)
    );

    // Case, note, deadline.
    b += &format!(
        "<div class=\"govuk-form-group{}\"><label class=\"govuk-label govuk-label--s\" for=\"case\">Case reference</label>{}\
         <input class=\"govuk-input govuk-input--width-20\" id=\"case\" name=\"case\" maxlength=\"200\" value=\"{}\"{}></div>",
        group("case"),
        msg("case"),
        value("case"),
        described("case", false)
    );
    b += &format!(
        "<div class=\"govuk-form-group{}\"><label class=\"govuk-label govuk-label--s\" for=\"note\">Note (optional)</label>\
         <div class=\"govuk-hint\" id=\"note-hint\">Sealed with the files: only the recipients read it.</div>{}\
         <textarea class=\"govuk-textarea\" id=\"note\" name=\"note\" rows=\"3\" maxlength=\"4096\" \
         {}>{}</textarea></div>",
        group("note"),
        msg("note"),
        described("note", true),
        value("note")
    );
    b += &format!(
        "<div class=\"govuk-form-group{}\"><label class=\"govuk-label govuk-label--s\" for=\"ack_within\">Acknowledge within \
         (optional)</label><div class=\"govuk-hint\" id=\"ack_within-hint\">For example 4h, 2d or 30m. Without it the \
         server's default applies.</div>{}<input class=\"govuk-input govuk-input--width-5\" id=\"ack_within\" \
         name=\"ack_within\"{} value=\"{}\"></div>",
        group("ack_within"),
        msg("ack_within"),
        described("ack_within", true),
        value("ack_within")
    );
    b += &label_choices(&d.fields, &|f| (group(f), msg(f)));
    b += "<div class=\"govuk-inset-text\">To an organisation outside police and CPS (defence, probation, court), only \
          scheduled, redacted (or reviewed) material without victims' details goes, and only once a disclosure \
          approver of your organisation approves it.</div>\
          <button class=\"govuk-button\" data-module=\"govuk-button\" id=\"send-button\">Continue</button></form>";
    let title = if d.errors.is_empty() { "Send evidence" } else { "Error: Send evidence" };
    scripted(if d.errors.is_empty() { 200 } else { 400 }, pre, title, Tab::Send, &b)
}

/// The label choices of the send form, each at what was chosen or its
/// safe default.
fn label_choices(
    fields: &std::collections::HashMap<String, String>,
    err: &dyn Fn(&str) -> (&'static str, String),
) -> String {
    let select = |id: &str, text: &str, values: &[&str], default: &str| {
        let chosen = fields.get(id).map(String::as_str).unwrap_or(default);
        let (group, msg) = err(id);
        let mut b = format!(
            "<div class=\"govuk-form-group{group}\"><label class=\"govuk-label\" for=\"{id}\">{text}</label>{msg}\
             <select class=\"govuk-select\" id=\"{id}\" name=\"{id}\"{}>",
            if msg.is_empty() { String::new() } else { format!(" aria-describedby=\"{id}-error\"") }
        );
        for v in values {
            let sel = if *v == chosen { " selected" } else { "" };
            b += &format!("<option value=\"{v}\"{sel}>{v}</option>");
        }
        b + "</select></div>"
    };
    let mut b = String::from(
        "<fieldset class=\"govuk-fieldset\"><legend class=\"govuk-fieldset__legend govuk-fieldset__legend--m\">\
         <h2 class=\"govuk-fieldset__heading\">Labels (for every file)</h2></legend>",
    );
    b += &select(
        "handling",
        "Handling",
        &Handling::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>(),
        "official-sensitive",
    );
    b += &select("material", "Material", &Material::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>(), "other");
    let mut schedules = vec!["not scheduled"];
    schedules.extend(Schedule::ALL.iter().map(|v| v.as_str()));
    b += &select("schedule", "Schedule", &schedules, "not scheduled");
    b +=
        &select("redaction", "Redaction", &Redaction::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>(), "unredacted");
    b += &select("victim_details", "Victim or witness details", &["yes", "no"], "yes");
    b + "</fieldset>"
}

/// Check your answers: who (name, organisation, key), the case, the
/// items, the labels; then the confirmation and the send.
pub(super) fn check_answers(
    pre: &str,
    id: &str,
    d: &Draft,
    recipients: &[&DirectoryEntry],
    pins: &BTreeMap<String, String>,
    orgs: &Orgs,
    error: Option<&str>,
) -> Page {
    let change = |anchor: &str, what: &str| {
        format!(
            "<dd class=\"govuk-summary-list__actions\"><a class=\"govuk-link\" href=\"{pre}/send?draft={}#{anchor}\">\
             Change<span class=\"govuk-visually-hidden\"> {what}</span></a></dd>",
            esc(id)
        )
    };
    let row = |key: &str, value: String, anchor: &str| {
        format!(
            "<div class=\"govuk-summary-list__row\"><dt class=\"govuk-summary-list__key\">{}</dt>\
             <dd class=\"govuk-summary-list__value\">{value}</dd>{}</div>",
            esc(key),
            change(anchor, &key.to_lowercase())
        )
    };
    let field = |k: &str| d.fields.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let mut b = String::new();
    if let Some(e) = error {
        b += &error_summary(&[("confirmed".to_owned(), e.to_owned())]);
    }
    b += &format!(
        "<a href=\"{pre}/send?draft={}\" class=\"govuk-back-link\">Back</a>\
         <h1 class=\"govuk-heading-l\">Check your answers before sending</h1><dl class=\"govuk-summary-list\">",
        esc(id)
    );
    let mut outside = false;
    for (i, e) in recipients.iter().enumerate() {
        let kind = orgs.of(e).map(|o| o.kind);
        outside |= !matches!(kind, Some(OrgKind::Police | OrgKind::Cps));
        let pin = match pins.get(e.user.as_str()) {
            Some(f) if *f == e.fingerprint() => tag("Key pinned", Tag::Green),
            Some(_) => tag("KEY CHANGED: check with them", Tag::Red),
            None => tag("First use: key pinned when you send", Tag::Yellow),
        };
        let key = if recipients.len() == 1 { "Recipient".to_owned() } else { format!("Recipient {}", i + 1) };
        b += &row(
            &key,
            format!(
                "<strong>{}</strong> ({})<br>{}<br>{}<br>key <span class=\"exhibit-code\">{}</span> {pin}",
                esc(&e.display_name),
                esc(e.user.as_str()),
                esc(&e.roles_shown()),
                esc(&orgs.describe(e)),
                esc(&e.fingerprint()),
            ),
            "to",
        );
    }
    b += &row("Case reference", esc(field("case").unwrap_or("none")), "case");
    let total: u64 = d.items.iter().map(|(_, s)| s).sum();
    let mut items: Vec<String> =
        d.items.iter().take(50).map(|(p, s)| format!("{} ({})", esc(p), esc(&format_size(*s)))).collect();
    if d.items.len() > 50 {
        items.push(format!("… and {} more", d.items.len() - 50));
    }
    b += &row(
        "Items",
        format!(
            "{} {}, {}<ul class=\"govuk-list govuk-list--bullet\"><li>{}</li></ul>",
            d.items.len(),
            if d.items.len() == 1 { "file" } else { "files" },
            esc(&format_size(total)),
            items.join("</li><li>")
        ),
        "files",
    );
    b += &row("Labels", esc(&d.labels), "handling");
    b += &row("Note", esc(field("note").unwrap_or("none")), "note");
    b += &row("Acknowledge within", esc(field("ack_within").unwrap_or("the server's default")), "ack_within");
    b += "</dl>";
    if outside {
        b += "<div class=\"govuk-warning-text\"><span class=\"govuk-warning-text__icon\" aria-hidden=\"true\">!</span>\
              <strong class=\"govuk-warning-text__text\"><span class=\"govuk-visually-hidden\">Warning</span>\
              A recipient is outside police and CPS: a disclosure approver of your organisation approves it before \
              they can fetch it.</strong></div>";
    }
    b += &format!(
        "<h2 class=\"govuk-heading-m\">Now send your evidence</h2><p class=\"govuk-body\">The files are sealed here, \
         with each recipient's key, and only then uploaded: the server never sees their contents or names.</p>\
         <form method=\"post\" action=\"{pre}/confirm\"><input type=\"hidden\" name=\"draft\" value=\"{}\">\
         <div class=\"govuk-form-group{}\">{}<div class=\"govuk-checkboxes\" data-module=\"govuk-checkboxes\">\
         <div class=\"govuk-checkboxes__item\"><input class=\"govuk-checkboxes__input\" id=\"confirmed\" name=\"confirmed\" \
         type=\"checkbox\" value=\"yes\"{}><label class=\"govuk-label govuk-checkboxes__label\" for=\"confirmed\">I have \
         checked each recipient's name, organisation and key fingerprint above</label></div></div></div>\
         <button class=\"govuk-button\" data-module=\"govuk-button\" id=\"confirm-button\">Confirm and send</button></form>",
        esc(id),
        if error.is_some() { " govuk-form-group--error" } else { "" },
        error.map(|e| error_message("confirmed", e)).unwrap_or_default(),
        if error.is_some() { " aria-describedby=\"confirmed-error\"" } else { "" },
    );
    let title = if error.is_some() { "Error: Check your answers" } else { "Check your answers" };
    plain(if error.is_some() { 400 } else { 200 }, pre, title, Tab::Send, &b)
}

/// One job: its progress while it runs (percent, MB/s, time left), the
/// confirmation panel once done, or what went wrong and the way back.
pub(super) fn job_page(pre: &str, j: &Job) -> Page {
    let state = j.state.lock().map(|s| s.clone()).unwrap_or(JobState::Failed("job state lost".into()));
    let mut b = String::new();
    match &state {
        JobState::Running => {
            b += &format!(
                "<h1 class=\"govuk-heading-l\">{}</h1><ul class=\"govuk-list\">{}</ul>",
                j.kind.running(),
                job_item(j, pre)
            );
            b += "<p class=\"govuk-body\">You can leave this page: the work goes on, and your transfers page shows it.</p>";
        }
        JobState::Done(m) => {
            b += &panel(j.kind.done(), &esc(m));
            b += "<h2 class=\"govuk-heading-m\">What happens next</h2>";
            b += match j.kind {
                JobKind::Send => {
                    "<p class=\"govuk-body\">Each recipient sees it in their inbox; you see on your transfers page \
                                  when each has fetched it and sent their signed receipt.</p>"
                }
                JobKind::Fetch => {
                    "<p class=\"govuk-body\">The files were checked against the manifest the sender signed, and \
                                   your signed receipt went back to the sender.</p>"
                }
                JobKind::Forward => {
                    "<p class=\"govuk-body\">The recipient sees it in their inbox; its custody report links \
                                     back to the transfer it came from.</p>"
                }
            };
        }
        JobState::Failed(m) => {
            b += &format!(
                "<h1 class=\"govuk-heading-l\">{}</h1>{}",
                j.kind.failed(),
                banner(false, "Important", &format!("<p class=\"govuk-notification-banner__heading\">{}</p>", esc(m)))
            );
            if let Some(d) = &j.draft {
                b += &format!(
                    "<p class=\"govuk-body\"><a class=\"govuk-link\" id=\"change-answers\" href=\"{pre}/send?draft={}\">\
                     Change your answers and try again</a> (your files stay uploaded). Or finish this send from the \
                     command line with <code>exhibit resume</code>.</p>",
                    esc(d)
                );
            }
        }
    }
    b += &format!(
        "<p class=\"govuk-body\"><a class=\"govuk-link\" href=\"{pre}/\">Back to your transfers</a> · \
         <a class=\"govuk-link\" href=\"{pre}/send\">Send more evidence</a></p>"
    );
    scripted(200, pre, j.kind.running(), Tab::None, &b)
}

/// Drag and drop of files and folders onto the send form (sent with their
/// folder paths), and progress polling. Everything works without it but
/// dropping.
const SCRIPT: &str = r#"
(function(){
function size(n){return n<1e3?n+' bytes':n<1e6?(n/1e3).toFixed(1)+' KB':n<1e9?(n/1e6).toFixed(1)+' MB':(n/1e9).toFixed(2)+' GB';}
function dur(s){s=Math.max(1,Math.round(s));var h=Math.floor(s/3600),m=Math.floor(s/60)%60,x=s%60;
 return h?h+'h'+(m?m+'m':''):m?m+'m'+(x?x+'s':''):x+'s';}
function text(j){var pct=j.total?Math.floor(100*Math.min(j.done,j.total)/j.total):0;
 var t=pct+'% — '+size(j.done)+' of '+size(j.total);
 if(j.secs>0&&j.done>0){var r=j.done/j.secs;t+=' at '+size(Math.floor(r))+'/s';if(j.total>j.done)t+=', about '+dur((j.total-j.done)/r+1)+' left';}
 return t;}
var form=document.getElementById('send-form');
if(form){
 var drop=document.getElementById('drop'),shown=document.getElementById('dropped'),dropped=[];
 drop.addEventListener('dragover',function(e){e.preventDefault();drop.classList.add('exhibit-drop--over');});
 drop.addEventListener('dragleave',function(){drop.classList.remove('exhibit-drop--over');});
 function walk(entry,path){
  if(entry.isFile){return new Promise(function(ok){entry.file(function(f){dropped.push([f,path+f.name]);ok();},ok);});}
  var reader=entry.createReader(),all=[];
  return new Promise(function(ok){(function more(){reader.readEntries(function(es){
   if(!es.length){Promise.all(all).then(ok);return;}
   es.forEach(function(x){all.push(walk(x,path+entry.name+'/'));});more();},ok);})();});
 }
 drop.addEventListener('drop',function(e){e.preventDefault();drop.classList.remove('exhibit-drop--over');
  var items=e.dataTransfer.items,work=[];
  for(var i=0;i<items.length;i++){var en=items[i].webkitGetAsEntry&&items[i].webkitGetAsEntry();
   if(en){work.push(walk(en,''));}else{var f=items[i].getAsFile&&items[i].getAsFile();if(f)dropped.push([f,f.name]);}}
  Promise.all(work).then(function(){var n=0;dropped.forEach(function(d){n+=d[0].size;});
   shown.textContent=dropped.length+' file(s) ready to upload ('+size(n)+'): '+dropped.slice(0,10).map(function(d){return d[1];}).join(', ');});
 });
 form.addEventListener('submit',function(e){
  var folder=document.getElementById('folder').files;
  if(!dropped.length&&!folder.length)return;
  e.preventDefault();
  var fd=new FormData(form);fd.delete('file');
  Array.prototype.forEach.call(document.getElementById('files').files,function(f){fd.append('file',f,f.name);});
  Array.prototype.forEach.call(folder,function(f){fd.append('file',f,f.webkitRelativePath||f.name);});
  dropped.forEach(function(d){fd.append('file',d[0],d[1]);});
  shown.textContent='Uploading…';
  fetch(form.action,{method:'POST',body:fd}).then(function(r){
   if(r.redirected){location.assign(r.url);}else{r.text().then(function(t){document.open();document.write(t);document.close();});}
  });
 });
}
var running=document.querySelectorAll('li[data-state=running]');
if(!running.length)return;
function poll(){fetch('PREFIX/jobs.json').then(function(r){return r.json();}).then(function(jobs){
 var busy=false,ended=false;jobs.forEach(function(j){var li=document.getElementById('job-'+j.id);if(!li)return;
  if(j.state==='running'){busy=true;var p=li.querySelector('progress');if(p){p.max=Math.max(j.total,1);p.value=j.done;}
   var s=li.querySelector('.exhibit-progress-text');if(s)s.textContent=text(j);}
  else if(li.getAttribute('data-state')==='running'){ended=true;}
 });
 if(ended){location.reload();}else if(busy){setTimeout(poll,500);}
});}
poll();
})();
"#;

/// What waits for my approval (disclosure approvers).
fn approvals_section(waiting: &[TransferInfo], pre: &str) -> String {
    let mut b = String::from("<section id=\"approvals\">");
    if waiting.is_empty() {
        return b + "<h2 class=\"govuk-heading-m\">Waiting for your approval</h2>\
               <p class=\"govuk-body\">Nothing waits for your approval.</p></section>";
    }
    let rows: Vec<Vec<String>> = waiting
        .iter()
        .map(|t| {
            let to: Vec<&str> = t.recipients.iter().map(|r| r.user.as_str()).collect();
            vec![
                format!("<span class=\"exhibit-code\">{}</span>", t.transfer),
                esc(t.case_ref.as_deref().unwrap_or("-")),
                esc(t.sender.as_str()),
                esc(&to.join(", ")),
                format!("{} {}", tag("Awaiting approval", Tag::Yellow), esc(&format_time(t.sealed_at.unwrap_or(t.created_at)))),
                format!(
                    "<a class=\"govuk-link\" href=\"{pre}/review/{id}\">Review<span class=\"govuk-visually-hidden\"> {}</span></a>",
                    esc(t.case_ref.as_deref().unwrap_or("")),
                    id = t.transfer
                ),
            ]
        })
        .collect();
    b += &table("Waiting for your approval", &["Transfer", "Case", "From", "To", "Waiting since", "Action"], &rows, "");
    b + "</section>"
}

/// A disclosure opened for its approver: who, what, which labels; approve
/// or refuse with a reason.
pub(super) fn review(r: &Review, pre: &str) -> Page {
    let person = |p: &crate::ops::approvals::Person| {
        format!(
            "{} ({}), {} ({}), key <span class=\"exhibit-code\">{}</span>",
            esc(&p.name),
            esc(&p.user),
            esc(&p.org),
            esc(&p.org_kind),
            esc(&p.fingerprint)
        )
    };
    let mut rows: Vec<(&str, String)> = vec![("From", person(&r.sender))];
    for p in &r.recipients {
        rows.push(("To", person(p)));
    }
    rows.push(("Case", esc(r.case_ref.as_deref().unwrap_or("-"))));
    rows.push(("Note", esc(r.note.as_deref().unwrap_or("-"))));
    rows.push(("Items", esc(&format!("{}, {}", r.item_count, format_size(r.bytes)))));
    for l in &r.label_sets {
        rows.push(("Labels", esc(l)));
    }
    let mut b = format!(
        "<a href=\"{pre}/#approvals\" class=\"govuk-back-link\">Back</a><h1 class=\"govuk-heading-l\">Review disclosure \
         <span class=\"exhibit-code\">{}</span></h1>{}",
        r.transfer,
        summary_list(&rows)
    );
    let items: Vec<Vec<String>> =
        r.items.iter().map(|i| vec![esc(&i.path), esc(&format_size(i.size)), esc(&i.labels)]).collect();
    b += &table("Items", &["Path", "Size", "Labels"], &items, "");
    if r.item_count > r.items.len() {
        b += &format!("<p class=\"govuk-body\">… and {} more.</p>", r.item_count - r.items.len());
    }
    match &r.refusal {
        Some(why) => {
            b += &banner(
                false,
                "Important",
                &format!("<p class=\"govuk-notification-banner__heading\">The disclosure rules refuse it: {}</p>", esc(why)),
            )
        }
        None => {
            b += &format!(
                "<form method=\"post\" action=\"{pre}/approve\"><input type=\"hidden\" name=\"transfer\" value=\"{t}\">\
                 <input type=\"hidden\" name=\"manifest\" value=\"{h}\">\
                 <button class=\"govuk-button\" data-module=\"govuk-button\" id=\"approve\">Approve and sign</button></form>",
                t = r.transfer,
                h = esc(&r.manifest_hash)
            )
        }
    }
    b += &format!(
        "<form method=\"post\" action=\"{pre}/refuse\"><input type=\"hidden\" name=\"transfer\" value=\"{t}\">\
         <div class=\"govuk-form-group\"><label class=\"govuk-label\" for=\"reason\">Reason for refusing</label>\
         <input class=\"govuk-input\" id=\"reason\" name=\"reason\" maxlength=\"4096\" required></div>\
         <button class=\"govuk-button govuk-button--warning\" data-module=\"govuk-button\" id=\"refuse\">Refuse</button></form>",
        t = r.transfer
    );
    plain(200, pre, "Review disclosure", Tab::None, &b)
}
