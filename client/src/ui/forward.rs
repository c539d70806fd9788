//! Forwarding from the page: what I received, its items (opened with my
//! own key) to choose from, the new recipient, and a confirmation; the
//! forward itself runs as a job, like a fetch.

use std::collections::HashMap;

use exhibit_net::http::{esc, Page};
use exhibit_proto::directory::DirectoryEntry;
use exhibit_proto::labels::Schedule;
use exhibit_proto::TransferId;

use super::page::{plain, Tab};
use crate::error::ClientError;
use crate::human::format_size;
use crate::ops::forward::{ForwardItem, ForwardOptions};
use crate::ops::orgs::Orgs;
use crate::ops::send::Confirm;

/// The form: the items of `source` (each to tick), who to, a note, a
/// schedule for items that have none, and the confirmation.
pub(super) fn form(
    source: TransferId,
    case: Option<&str>,
    items: &[ForwardItem],
    entries: &[DirectoryEntry],
    me: &DirectoryEntry,
    orgs: &Orgs,
    pre: &str,
) -> Page {
    let mut b = format!(
        "<a href=\"{pre}/#inbox\" class=\"govuk-back-link\">Back</a><h1 class=\"govuk-heading-l\">Forward transfer \
         <span class=\"exhibit-code\">{source}</span></h1>\
         <p class=\"govuk-body\">Case {}. The items you tick are fetched again (each checked against the manifest its \
         sender signed), sealed to the recipient you choose, and sent with a link to this transfer: its sender sees \
         where its material went. Labels carry over; outside police and CPS the case's roster must list the \
         recipient's organisation, and a disclosure approver of your organisation approves it first. To send a \
         redacted version of an item in its place, use <code>exhibit forward --redacted ITEM=FILE</code>.</p>\
         <form method=\"post\" action=\"{pre}/forward\"><input type=\"hidden\" name=\"transfer\" value=\"{source}\">\
         <div class=\"govuk-form-group\"><fieldset class=\"govuk-fieldset\"><legend class=\"govuk-fieldset__legend \
         govuk-fieldset__legend--m\">Items to forward</legend><div class=\"govuk-checkboxes govuk-checkboxes--small\" \
         data-module=\"govuk-checkboxes\">",
        esc(case.unwrap_or("-"))
    );
    for (i, it) in items.iter().enumerate() {
        b += &format!(
            "<div class=\"govuk-checkboxes__item\"><input class=\"govuk-checkboxes__input\" type=\"checkbox\" \
             id=\"item-{i}\" name=\"item-{i}\" value=\"{}\" aria-describedby=\"item-{i}-hint\"><label class=\"govuk-label \
             govuk-checkboxes__label\" for=\"item-{i}\">{}</label><div class=\"govuk-hint govuk-checkboxes__hint\" \
             id=\"item-{i}-hint\">{}; {}</div></div>",
            esc(&it.path),
            esc(&it.path),
            esc(&format_size(it.size)),
            esc(&it.labels)
        );
    }
    b += "</div></fieldset></div><div class=\"govuk-form-group\"><label class=\"govuk-label govuk-label--s\" for=\"to\">\
          Recipient</label><select class=\"govuk-select\" id=\"to\" name=\"to\" required><option value=\"\">choose…</option>";
    for e in entries.iter().filter(|e| e.user != me.user && e.revoked_at.is_none()) {
        b += &format!(
            "<option value=\"{u}\">{u} — {} ({}) key {}</option>",
            esc(&e.display_name),
            esc(&orgs.describe(e)),
            esc(&e.fingerprint()),
            u = esc(e.user.as_str())
        );
    }
    b += "</select></div><div class=\"govuk-form-group\"><label class=\"govuk-label govuk-label--s\" for=\"schedule\">\
          Schedule</label><select class=\"govuk-select\" id=\"schedule\" name=\"schedule\">\
          <option value=\"keep\" selected>as labelled</option>";
    for s in Schedule::ALL {
        b += &format!("<option value=\"{s}\">{s}, for items without one</option>", s = s.as_str());
    }
    b += "</select></div><div class=\"govuk-form-group\"><label class=\"govuk-label govuk-label--s\" for=\"note\">Note \
          (optional)</label><input class=\"govuk-input\" id=\"note\" name=\"note\" maxlength=\"4096\"></div>\
          <div class=\"govuk-form-group\"><div class=\"govuk-checkboxes\" data-module=\"govuk-checkboxes\">\
          <div class=\"govuk-checkboxes__item\"><input class=\"govuk-checkboxes__input\" type=\"checkbox\" id=\"confirmed\" \
          name=\"confirmed\" value=\"yes\" required><label class=\"govuk-label govuk-checkboxes__label\" for=\"confirmed\">\
          I have checked the recipient's name, organisation and key fingerprint</label></div></div></div>\
          <button class=\"govuk-button\" data-module=\"govuk-button\" id=\"forward-button\">Forward</button></form>";
    plain(200, pre, "Forward a transfer", Tab::None, &b)
}

/// What the posted form asks for.
pub(super) fn options(form: &HashMap<String, String>) -> Result<ForwardOptions, ClientError> {
    let source: TransferId = form
        .get("transfer")
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| ClientError::Usage("the form names no valid transfer".into()))?;
    let to = form
        .get("to")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ClientError::Usage("choose a recipient".into()))?
        .parse()
        .map_err(|e| ClientError::Usage(format!("recipient: {e}")))?;
    if form.get("confirmed").map(String::as_str) != Some("yes") {
        return Err(ClientError::Usage("confirm the recipient's name, organisation and fingerprint".into()));
    }
    let mut items: Vec<(usize, String)> =
        form.iter().filter_map(|(k, v)| Some((k.strip_prefix("item-")?.parse::<usize>().ok()?, v.clone()))).collect();
    items.sort();
    if items.is_empty() {
        return Err(ClientError::Usage("tick at least one item to forward".into()));
    }
    let schedule = match form.get("schedule").map(String::as_str) {
        None | Some("keep") => None,
        Some(s) => Some(s.parse().map_err(|e| ClientError::Usage(format!("schedule: {e}")))?),
    };
    let note = form.get("note").map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
    Ok(ForwardOptions {
        source,
        to: vec![to],
        items: items.into_iter().map(|(_, p)| p).collect(),
        redacted: vec![],
        note,
        ack_within_secs: None,
        expires_secs: None,
        confirm: Confirm::Yes,
        progress: false,
        handling: None,
        schedule,
        victim_details: None,
    })
}
