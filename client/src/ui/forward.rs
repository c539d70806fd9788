//! Forwarding from the page: what I received, its items (opened with my
//! own key) to choose from, the new recipient, and a confirmation; the
//! forward itself runs as a job, like a fetch.

use std::collections::HashMap;

use exhibit_net::http::{esc, Page};
use exhibit_proto::directory::DirectoryEntry;
use exhibit_proto::labels::Schedule;
use exhibit_proto::TransferId;

use super::page::{html, layout};
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
        "<header><h1>Forward transfer {source}</h1></header><main>\
         <p>Case {}. The items you tick are fetched again (each checked against the manifest its sender signed), \
         sealed to the recipient you choose, and sent with a link to this transfer: its sender sees where its \
         material went. Labels carry over; outside police and CPS the case's roster must list the recipient's \
         organisation, and a disclosure approver of your organisation approves it first. To send a redacted \
         version of an item in its place, use <code>exhibit forward --redacted ITEM=FILE</code>.</p>\
         <form method=\"post\" action=\"{pre}/forward\"><input type=\"hidden\" name=\"transfer\" value=\"{source}\">\
         <table><tr><th></th><th>Item</th><th>Size</th><th>Labels</th></tr>",
        esc(case.unwrap_or("-"))
    );
    for (i, it) in items.iter().enumerate() {
        b += &format!(
            "<tr><td><input type=\"checkbox\" id=\"item-{i}\" name=\"item-{i}\" value=\"{}\"></td>\
             <td><label for=\"item-{i}\">{}</label></td><td>{}</td><td>{}</td></tr>",
            esc(&it.path),
            esc(&it.path),
            esc(&format_size(it.size)),
            esc(&it.labels)
        );
    }
    b += "</table><p><label for=\"to\">Recipient</label> <select id=\"to\" name=\"to\" required><option value=\"\">choose…</option>";
    for e in entries.iter().filter(|e| e.user != me.user) {
        b += &format!(
            "<option value=\"{u}\">{u} — {} ({}) key {}</option>",
            esc(&e.display_name),
            esc(&orgs.describe(e)),
            esc(&e.fingerprint()),
            u = esc(e.user.as_str())
        );
    }
    b += "</select></p><p><label for=\"schedule\">Schedule</label> <select id=\"schedule\" name=\"schedule\">\
          <option value=\"keep\" selected>as labelled</option>";
    for s in Schedule::ALL {
        b += &format!("<option value=\"{s}\">{s}, for items without one</option>", s = s.as_str());
    }
    b += &format!(
        "</select></p><p><label for=\"note\">Note</label> <input id=\"note\" name=\"note\" size=\"50\" maxlength=\"4096\"></p>\
         <p><input type=\"checkbox\" id=\"confirmed\" name=\"confirmed\" value=\"yes\" required> \
         <label for=\"confirmed\">I have checked the recipient's name, organisation and key fingerprint</label></p>\
         <p><button id=\"forward-button\">Forward</button></p></form><p><a href=\"{pre}/#inbox\">Back</a></p></main>"
    );
    html(200, layout("exhibit: forward", &b), "none")
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
