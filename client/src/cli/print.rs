//! What the commands print: text for people, or JSON for scripts
//! (`--json`). Only data comes in; nothing here talks to the server.
//!
//! Every line goes out through [`say!`]/[`tell!`], which pass it through
//! [`escape_lines`], and each one-line value that came from the server, a
//! directory entry or sealed details through [`e`] ([`escape`]): no control
//! or bidi character stored before the text rule (or sent by an older
//! client) reaches the terminal raw. JSON escapes them as `\uXXXX`.

use std::path::Path;

use exhibit_proto::directory::DirectoryEntry;
use exhibit_proto::frame::{AlertInfo, RecipientState, TransferInfo, TransferState, UserInfo};
use exhibit_proto::org::Org;
use exhibit_proto::receipt::{ReceiptBundle, ReceiptSummary};
use exhibit_proto::text::{escape, escape_lines, is_unsafe};
use serde_json::json;

use crate::error::ClientError;
use crate::home::Profile;
use crate::human::{format_size, format_time};
use crate::ops::approvals::Review;
use crate::ops::audit::VerifyReport;
use crate::ops::directory::Listed;
use crate::ops::fetch::FetchOutcome;
use crate::ops::resume::Step;
use crate::ops::send::SendOutcome;

/// Up to this many files a fetch lists each; past it, one summary line.
const LIST_FILES_UP_TO: usize = 20;

/// A line on stdout, escaped.
macro_rules! say {
    ($($t:tt)*) => { out(&format!("{}\n", escape_lines(&format!($($t)*)))) };
}

/// Write to stdout. A reader that went away (`exhibit inbox | head -1`)
/// ends the command quietly, as it does other tools, instead of a panic.
pub fn out(text: &str) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    if let Err(e) = o.write_all(text.as_bytes()).and_then(|()| o.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing to standard output: {e}");
        std::process::exit(1);
    }
}

/// A line on stderr, escaped.
macro_rules! tell {
    ($($t:tt)*) => { eprintln!("{}", escape_lines(&format!($($t)*))) };
}

/// A one-line value, escaped.
fn cell(s: &str) -> std::borrow::Cow<'_, str> {
    escape(s)
}

/// A path, escaped.
fn p(path: &Path) -> String {
    escape(&path.display().to_string()).into_owned()
}

pub fn json(v: &impl serde::Serialize) -> Result<(), ClientError> {
    let text = serde_json::to_string_pretty(v).map_err(|e| ClientError::Config(e.to_string()))?;
    out(&format!("{}\n", json_safe(&text)));
    Ok(())
}

/// JSON text with every control and bidi character written as a `\uXXXX`
/// escape: the same JSON (they can only be inside strings), nothing raw on
/// a terminal. (serde_json leaves DEL, C1 and bidi characters as they are.)
fn json_safe(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(|c| is_unsafe(c) && c != '\n') {
        return text.into();
    }
    let mut o = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_unsafe(c) && c != '\n' {
            o.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            o.push(c);
        }
    }
    o.into()
}

/// One line of text, or `v` as JSON.
pub fn line(v: &impl serde::Serialize, text: &str, as_json: bool) -> Result<(), ClientError> {
    if as_json {
        return json(v);
    }
    say!("{text}");
    Ok(())
}

/// An alert in `--json`: ids as text, the kind by its snake_case name
/// with its particulars in `detail`, times in unix seconds.
fn alert_json(a: &AlertInfo) -> serde_json::Value {
    let mut j = a.to_json();
    j["ack"] = json!(a.ack.as_ref().map(|k| json!({"by": k.by, "at": k.at, "note": k.note})));
    j["deliveries"] = json!(a
        .deliveries
        .iter()
        .map(|d| json!({
            "notifier": d.notifier, "attempts": d.attempts, "delivered_at": d.delivered_at, "last_error": d.last_error,
        }))
        .collect::<Vec<_>>());
    j
}

fn transfer_json(t: &TransferInfo) -> serde_json::Value {
    json!({
        "transfer": t.transfer.to_string(),
        "sender": t.sender.to_string(),
        "state": t.state.as_str(),
        "case_ref": t.case_ref,
        "approvers": t.approvers.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "decision": t.decision.as_ref().map(|d| json!({
            "approved": d.approved, "by": d.by.to_string(), "at": d.at, "reason": d.reason,
        })),
        "items": t.items,
        "bytes": t.bytes,
        "created_at": t.created_at,
        "sealed_at": t.sealed_at,
        "deadline": t.deadline,
        "ended_at": t.ended_at,
        "access_until": t.access_until,
        "derived_from": t.derived_from.map(|d| d.to_string()),
        "recipients": t.recipients.iter().map(|r| json!({
            "user": r.user.to_string(), "state": r.state.as_str(), "at": r.at,
        })).collect::<Vec<_>>(),
        "unit_acks": t.unit_acks.iter().map(|a| json!({
            "unit": a.unit.to_string(), "member": a.member.to_string(), "at": a.at,
        })).collect::<Vec<_>>(),
    })
}

pub fn enrolled(me: &DirectoryEntry, home: &Path, passphrase: bool, as_json: bool) -> Result<(), ClientError> {
    if as_json {
        return json(&json!({
            "user": me.user.to_string(), "fingerprint": me.fingerprint(), "home": home, "passphrase": passphrase,
        }));
    }
    say!("Enrolled as {} ({}, {}).", me.user, me.role, cell(&me.org));
    say!("Your key fingerprint: {}", me.fingerprint());
    if passphrase {
        say!("Keys saved in {} (private keys encrypted with your passphrase, mode 0600).", p(home));
    } else {
        say!("Keys saved in {} (private keys NOT encrypted, mode 0600).", p(home));
    }
    Ok(())
}

pub fn enrol_pending(
    file: &str,
    r: &exhibit_proto::offline::EnrolmentRequest,
    home: &Path,
    as_json: bool,
) -> Result<(), ClientError> {
    let copy = home.join(crate::home::PENDING_REQUEST);
    let fp = r.entry.fingerprint();
    if as_json {
        return json(&json!({
            "pending": true, "user": r.entry.user.to_string(), "fingerprint": fp, "request": file, "copy": copy,
        }));
    }
    say!("Your enrolment as {} waits for the authority's approval: this deployment keeps it offline.", r.entry.user);
    say!("Your key fingerprint: {fp}");
    say!("The server wrote the request {file} (in its requests/ folder; a copy is in {}).", p(&copy));
    say!("Your keys are saved in {}. Once an administrator gives you the approval file, run:", p(home));
    say!("  exhibit enrol --approval FILE");
    Ok(())
}

pub fn whoami(p: &Profile, expires: u64, route: &crate::session::Route, as_json: bool) -> Result<(), ClientError> {
    let me = &p.me;
    if as_json {
        return json(&json!({
            "user": me.user.to_string(), "display_name": me.display_name, "org": me.org,
            "role": me.role.as_str(), "fingerprint": me.fingerprint(), "server": p.config.server,
            "certificate_expires": expires, "transport": route.transport, "route": route.to_string(),
        }));
    }
    say!("{} ({}), {} at {}", me.user, cell(&me.display_name), me.role, cell(&me.org));
    say!("fingerprint {}", me.fingerprint());
    say!("server {}", p.config.server);
    say!("connected over {}", cell(&route.to_string()));
    say!("certificate valid until {} (renew with `exhibit renew`)", format_time(expires));
    Ok(())
}

pub fn renewed(expires: u64, as_json: bool) -> Result<(), ClientError> {
    if as_json {
        return json(&json!({ "certificate_expires": expires }));
    }
    say!("certificate renewed; valid until {}", format_time(expires));
    Ok(())
}

pub fn directory(entries: &[Listed], as_json: bool) -> Result<(), ClientError> {
    if as_json {
        return json(
            &entries
                .iter()
                .map(|l| {
                    let e = &l.entry;
                    json!({
                        "user": e.user.to_string(), "display_name": e.display_name, "org": e.org,
                        "org_name": l.org.as_ref().map(|o| o.name.clone()),
                        "org_kind": l.org.as_ref().map(|o| o.kind.as_str()),
                        "role": e.role.as_str(), "roles": e.roles().map(|r| r.as_str()).collect::<Vec<_>>(),
                        "fingerprint": e.fingerprint(),
                        "pinned": l.pin.as_ref().map(|f| *f == e.fingerprint()),
                        "revoked_at": e.revoked_at,
                    })
                })
                .collect::<Vec<_>>(),
        );
    }
    for l in entries {
        let e = &l.entry;
        let pin = match &l.pin {
            _ if e.revoked_at.is_some() => "REVOKED",
            Some(f) if *f == e.fingerprint() => "pinned",
            Some(_) => "KEY CHANGED",
            None => "",
        };
        let org = l.org.as_ref().map_or_else(|| format!("{} (no record)", e.org), |o| o.label());
        say!(
            "{:<20} {:<24} {:<24} {:<36} {} {}",
            e.user.as_str(),
            e.roles_shown(),
            cell(&e.display_name),
            cell(&org),
            e.fingerprint(),
            pin
        );
    }
    Ok(())
}

pub fn sent(out: &SendOutcome, as_json: bool) -> Result<(), ClientError> {
    if as_json {
        return json(&json!({
            "transfer": out.transfer.to_string(), "items": out.items, "bytes": out.bytes,
            "deadline": out.deadline, "recipients": out.recipients, "approvers": out.approvers,
            "awaiting_approval": !out.approvers.is_empty(),
        }));
    }
    for r in &out.recipients {
        let note = if r.newly_pinned { "  (first use: now pinned)" } else { "" };
        tell!(
            "to {} ({}, {}, {}) key {}{note}",
            r.user,
            cell(&r.display_name),
            cell(&r.org),
            r.org_kind,
            r.fingerprint
        );
    }
    say!("{}", out.transfer);
    if out.approvers.is_empty() {
        tell!(
            "sealed: {} file(s), {}; acknowledge by {}",
            out.items,
            format_size(out.bytes),
            format_time(out.deadline)
        );
    } else {
        tell!(
            "sealed: {} file(s), {}; awaiting a disclosure approver ({}) before its recipients can see it",
            out.items,
            format_size(out.bytes),
            out.approvers.join(", ")
        );
    }
    Ok(())
}

pub fn unfinished(list: &[crate::ops::resume::Unfinished], as_json: bool) -> Result<(), ClientError> {
    if as_json {
        return json(&list);
    }
    if list.is_empty() {
        say!("nothing to resume");
    }
    for u in list {
        say!("{} {}  {}", u.kind, u.transfer, cell(&u.detail));
    }
    Ok(())
}

pub fn forwarded(f: &crate::ops::forward::ForwardOutcome, as_json: bool) -> Result<(), ClientError> {
    if as_json {
        return json(&json!({
            "source": f.source.to_string(), "case_ref": f.case_ref, "items": f.items, "redacted": f.redacted,
            "transfer": f.sent.transfer.to_string(), "recipients": f.sent.recipients, "approvers": f.sent.approvers,
            "awaiting_approval": !f.sent.approvers.is_empty(), "deadline": f.sent.deadline,
        }));
    }
    let redacted = match f.redacted {
        0 => String::new(),
        n => format!(", {n} as redacted versions"),
    };
    tell!(
        "forwarding {} item(s) of transfer {} (case {}){redacted}",
        f.items,
        f.source,
        f.case_ref.as_deref().map_or("-".into(), cell)
    );
    sent(&f.sent, false)
}

pub fn roster(r: &crate::ops::cases::Roster, as_json: bool) -> Result<(), ClientError> {
    if as_json {
        return json(r);
    }
    say!(
        "case {} (kept by {}; opened by {} on {})",
        cell(&r.case),
        cell(&r.owner_name),
        r.opened_by,
        format_time(r.opened_at)
    );
    if r.roster.is_empty() {
        say!("roster: empty (nothing of this case may go outside police and CPS)");
    } else {
        say!("roster (may receive material of this case):");
    }
    for l in &r.roster {
        say!(
            "  {:<20} {} ({}){}; allowed by {} ({}) on {}",
            l.org,
            cell(&l.name),
            l.kind,
            l.note.as_deref().map(|n| format!(": {}", cell(n))).unwrap_or_default(),
            cell(&l.by_name),
            l.by,
            format_time(l.at)
        );
    }
    if !r.changes.is_empty() {
        say!("changes (each signed by its author, checked):");
    }
    for c in &r.changes {
        say!(
            "  {} {} {}{} by {} ({})",
            format_time(c.at),
            if c.allow { "allowed" } else { "removed" },
            c.org,
            c.note.as_deref().map(|n| format!(": {}", cell(n))).unwrap_or_default(),
            cell(&c.by_name),
            c.by
        );
    }
    Ok(())
}

pub fn orgs(list: &[Org], as_json: bool) -> Result<(), ClientError> {
    if as_json {
        return json(
            &list
                .iter()
                .map(|o| json!({"org": o.id.to_string(), "name": o.name, "kind": o.kind.as_str(), "external": o.kind.is_external()}))
                .collect::<Vec<_>>(),
        );
    }
    if list.is_empty() {
        say!("no organisations");
    }
    for o in list {
        let side = if o.kind.is_external() { "external" } else { "internal" };
        say!("{:<24} {:<10} {:<9} {}", o.id.as_str(), o.kind.as_str(), side, cell(&o.name));
    }
    Ok(())
}

pub fn approvals(list: &[TransferInfo], as_json: bool) -> Result<(), ClientError> {
    if as_json {
        return json(&list.iter().map(transfer_json).collect::<Vec<_>>());
    }
    if list.is_empty() {
        say!("nothing waits for your approval");
    }
    for t in list {
        let since = t.sealed_at.unwrap_or(t.created_at);
        let to: Vec<&str> = t.recipients.iter().map(|r| r.user.as_str()).collect();
        say!(
            "{}  from {}  to {}  case {}  waiting since {}",
            t.transfer,
            t.sender,
            to.join(", "),
            cell(t.case_ref.as_deref().unwrap_or("-")),
            format_time(since)
        );
    }
    Ok(())
}

pub fn review(r: &Review, as_json: bool) -> Result<(), ClientError> {
    if as_json {
        return json(r);
    }
    let person = |p: &crate::ops::approvals::Person| {
        format!("{} ({}), {} ({}), key {}", cell(&p.name), p.user, cell(&p.org), p.org_kind, p.fingerprint)
    };
    say!("transfer     {}", r.transfer);
    say!("from         {}", person(&r.sender));
    for p in &r.recipients {
        say!("to           {}", person(p));
    }
    say!("case         {}", cell(r.case_ref.as_deref().unwrap_or("-")));
    if let Some(n) = &r.note {
        say!("note         {}", escape_lines(n));
    }
    say!("items        {}, {}", r.item_count, format_size(r.bytes));
    for l in &r.label_sets {
        say!("labels       {l}");
    }
    for i in &r.items {
        say!("  {}  {}  [{}]", cell(&i.path), format_size(i.size), i.labels);
    }
    if r.item_count > r.items.len() {
        say!("  … and {} more", r.item_count - r.items.len());
    }
    if let Some(why) = &r.refusal {
        say!("REFUSED BY THE RULES: {}", cell(why));
    }
    Ok(())
}

pub fn transfers(list: &[TransferInfo], as_json: bool) -> Result<(), ClientError> {
    if as_json {
        return json(&list.iter().map(transfer_json).collect::<Vec<_>>());
    }
    out(&transfers_text(list));
    Ok(())
}

/// `exhibit inbox` and `outbox`: each person also by name and organisation
/// (in JSON, `sender_name` and each recipient's `name`).
pub fn transfers_named(
    list: &[TransferInfo],
    names: &std::collections::HashMap<String, String>,
    previews: &std::collections::HashMap<exhibit_proto::TransferId, crate::ops::show::Preview>,
    as_json: bool,
) -> Result<(), ClientError> {
    if as_json {
        let named = |id: &str| names.get(id).cloned();
        return json(
            &list
                .iter()
                .map(|t| {
                    let mut j = transfer_json(t);
                    j["sender_name"] = json!(named(t.sender.as_str()));
                    j["preview"] = json!(previews.get(&t.transfer));
                    if let Some(rs) = j["recipients"].as_array_mut() {
                        for r in rs {
                            let n = r["user"].as_str().and_then(named);
                            r["name"] = json!(n);
                        }
                    }
                    j
                })
                .collect::<Vec<_>>(),
        );
    }
    out(&transfers_text_named(list, names, previews));
    Ok(())
}

/// `exhibit show`.
pub fn shown(s: &crate::ops::show::Shown, as_json: bool) -> Result<(), ClientError> {
    if as_json {
        return json(s);
    }
    let unit = s.unit.as_ref().map(|u| format!(" (to your unit {u})")).unwrap_or_default();
    say!(
        "transfer {} from {} ({}){unit}, case {}",
        s.transfer,
        s.sender,
        cell(&s.sender_name),
        cell(s.case_ref.as_deref().unwrap_or("-"))
    );
    if let Some(n) = &s.note {
        say!("note: {}", cell(n));
    }
    say!("{} item{}, {}", s.item_count, if s.item_count == 1 { "" } else { "s" }, crate::human::format_size(s.bytes));
    for it in &s.items {
        say!(
            "  {:>10}  {}  [{}]",
            crate::human::format_size(it.size),
            cell(&it.path),
            it.labels.as_deref().unwrap_or("no labels")
        );
    }
    if s.items.len() < s.item_count {
        say!("  … and {} more (--all lists them)", s.item_count - s.items.len());
    }
    Ok(())
}

/// The text `exhibit inbox`, `outbox` and `admin transfers` print, escaped.
pub fn transfers_text(list: &[TransferInfo]) -> String {
    transfers_text_named(list, &Default::default(), &Default::default())
}

fn transfers_text_named(
    list: &[TransferInfo],
    names: &std::collections::HashMap<String, String>,
    previews: &std::collections::HashMap<exhibit_proto::TransferId, crate::ops::show::Preview>,
) -> String {
    let who = |id: &exhibit_proto::UserId| match names.get(id.as_str()) {
        Some(n) => format!("{id} ({})", cell(n)),
        None => id.to_string(),
    };
    use std::fmt::Write;
    let mut o = String::new();
    if list.is_empty() {
        o.push_str("no transfers\n");
    }
    for t in list {
        let when = t.sealed_at.map_or_else(|| "uploading".to_owned(), format_time);
        let case = cell(t.case_ref.as_deref().unwrap_or("-"));
        let _ = writeln!(o, "{}  {}  from {}  case {case}", t.transfer, when, who(&t.sender));
        if let Some(pv) = previews.get(&t.transfer) {
            let _ = writeln!(o, "    {}, {}", files(pv.item_count), format_size(pv.bytes));
            if let Some(n) = &pv.note {
                let _ = writeln!(o, "    note: {}", cell(n));
            }
        }
        match (&t.state, &t.decision) {
            (TransferState::AwaitingApproval, _) => {
                let _ = writeln!(o, "    awaiting approval by one of {}", join_ids(&t.approvers));
            }
            (_, Some(d)) if d.approved => {
                let _ = writeln!(o, "    approved by {} at {}", d.by, format_time(d.at));
            }
            (_, Some(d)) => {
                let _ = writeln!(
                    o,
                    "    REFUSED by {} at {}: {}",
                    d.by,
                    format_time(d.at),
                    cell(d.reason.as_deref().unwrap_or("-"))
                );
            }
            _ => {}
        }
        if let Some(from) = t.derived_from {
            let _ = writeln!(o, "    forwarded from transfer {from}");
        }
        match (t.state, t.access_until, t.ended_at) {
            (TransferState::Expired, Some(u), Some(at)) if u <= at => {
                let _ = writeln!(o, "    access ended {}; its evidence was deleted", format_time(u));
            }
            (TransferState::Expired | TransferState::Revoked, _, Some(at)) => {
                let _ = writeln!(o, "    {} {}", t.state.as_str(), format_time(at));
            }
            (_, Some(u), _) => {
                let _ = writeln!(o, "    access until {}", format_time(u));
            }
            _ => {}
        }
        if let (TransferState::Sealed, Some(d)) = (t.state, t.deadline) {
            if t.recipients.iter().any(|r| r.state != exhibit_proto::frame::DeliveryState::Acknowledged) {
                let _ = writeln!(o, "    acknowledge by {} ({})", format_time(d), crate::human::until(d, now()));
            }
        }
        for r in &t.recipients {
            let at = r.at.map(format_time).unwrap_or_default();
            let _ = writeln!(o, "    {:<13} {:<19} {}", r.state.as_str(), at, who(&r.user));
        }
        for a in &t.unit_acks {
            let _ =
                writeln!(o, "      acknowledged for unit {} by {} at {}", a.unit, who(&a.member), format_time(a.at));
        }
    }
    escape_lines(&o).into_owned()
}

/// "1 file", "2 files".
fn files(n: usize) -> String {
    match n {
        1 => "1 file".to_owned(),
        n => format!("{n} files"),
    }
}

/// This machine's clock, for "in 3h" and "overdue by 20m".
fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn join_ids(ids: &[exhibit_proto::UserId]) -> String {
    ids.iter().map(exhibit_proto::UserId::as_str).collect::<Vec<_>>().join(", ")
}

pub fn fetched(r: &FetchOutcome, out_dir: &Path, hashes: Option<&Path>, as_json: bool) -> Result<(), ClientError> {
    if as_json {
        let mut j = serde_json::to_value(r).map_err(|e| ClientError::Config(e.to_string()))?;
        j["hashes_file"] = json!(hashes);
        return json(&j);
    }
    // One line for the whole fetch; the hashes go to a file, not the screen.
    let what = match r.items_of {
        Some(of) => format!("{} of {of}", r.item_count),
        None => files(r.item_count),
    };
    say!(
        "fetched {what}, {}, into {}; each file's BLAKE3 is in {}",
        format_size(r.bytes),
        p(out_dir),
        p(hashes.unwrap_or(&r.items_file))
    );
    say!("from {} (key {}), case {}", r.sender, r.sender_fingerprint, cell(r.case_ref.as_deref().unwrap_or("-")));
    if let Some(n) = &r.note {
        say!("note: {n}");
    }
    // A device extract is the line above, not a screen per thousand files.
    if r.item_count <= LIST_FILES_UP_TO {
        for i in &r.items {
            say!("  {}  {}", p(&i.written_to), format_size(i.size));
        }
    }
    match &r.receipt {
        Some(a) => match a.receipt.subset() {
            Some(s) => {
                say!("verified; receipt for {} accepted by the server at {}", s.describe(), format_time(a.accepted_at))
            }
            None => say!("verified; receipt accepted by the server at {}", format_time(a.accepted_at)),
        },
        None => say!("verified (your own transfer: no receipt sent)"),
    }
    Ok(())
}

pub fn receipt_exported(b: &ReceiptBundle, out: &Path, items: Option<&Path>, as_json: bool) -> Result<(), ClientError> {
    if as_json {
        return json(&json!({"file": out, "items_file": items, "summary": b.summary}));
    }
    say!("receipt of {} for {} written to {}", b.summary.recipient, b.summary.transfer, p(out));
    match items {
        Some(f) => say!("item list (BLAKE3 and path of each file) written to {}", p(f)),
        None if b.summary.item_count.is_some() => {
            say!("no item list: the files' names and hashes are sealed to the sender and recipients")
        }
        None => {}
    }
    Ok(())
}

pub fn receipt(s: &ReceiptSummary, items_checked: Option<usize>, as_json: bool) -> Result<(), ClientError> {
    if as_json {
        return json(&json!({"valid": true, "summary": s, "items_checked": items_checked}));
    }
    say!("VALID receipt");
    say!("  transfer     {}", s.transfer);
    say!("  case         {}", cell(s.case_ref.as_deref().unwrap_or("-")));
    say!("  sender       {} (key {})", s.sender, s.sender_fingerprint);
    say!("  recipient    {} (key {})", s.recipient, s.recipient_fingerprint);
    say!("  manifest     {}", s.manifest_hash);
    say!("  received at  {} (recipient's clock)", format_time(s.received_at));
    say!("  accepted at  {} (server's clock, countersigned)", format_time(s.accepted_at));
    if let (Some(by), Some(fp)) = (&s.approved_by, &s.approver_fingerprint) {
        let at = s.approved_at.map(format_time).unwrap_or_default();
        say!("  approved by  {by} (key {fp}) at {at} (approver's clock, signed)");
    }
    match &s.in_log {
        Some(l) => say!(
            "  audit log    entry {}, proven in the tree head of {} entries signed at {} (root {})",
            l.entry,
            l.tree_size,
            format_time(l.signed_at),
            l.tree_root
        ),
        None => say!("  audit log    no inclusion proof in this bundle (made before the log had a tree)"),
    }
    for (i, h) in s.items.iter().enumerate() {
        say!("  item {i:<7} blake3 {h}");
    }
    if let (Some(n), Some(root)) = (s.item_count, &s.items_root) {
        match s.items_of {
            Some(of) => say!("  items        {n} of the transfer's {of} (fetched with --items), root {root}"),
            None => say!("  items        {n}, root {root}"),
        }
        match items_checked {
            Some(_) => say!("  item list    checked: every file's BLAKE3, in order, gives the root"),
            None => say!(
                "  item list    not checked (none here: `receipt export` writes FILE.items beside the bundle, which `receipt verify` checks)"
            ),
        }
    }
    Ok(())
}

/// A continued fetch or send, as it ends (failures always, on stderr).
pub fn resumed(step: &Step, as_json: bool) {
    match step {
        Step::Fetched { transfer, out } if !as_json => {
            say!("{transfer} fetched into {} and receipted", p(out))
        }
        Step::Sent(out) if !as_json => {
            say!("{} sealed ({} file(s), {})", out.transfer, out.items, format_size(out.bytes))
        }
        Step::FetchFailed { transfer, error } => tell!("fetch {transfer}: {error}"),
        Step::SendFailed { journal, error } => tell!("{}: {error}", p(journal)),
        _ => {}
    }
}

pub fn revoked(transfer: &str, already: &[RecipientState], as_json: bool) -> Result<(), ClientError> {
    if as_json {
        return json(&json!({"revoked": transfer, "already_fetched": already.iter().map(|r| json!({
            "user": r.user.to_string(), "state": r.state.as_str(), "at": r.at,
        })).collect::<Vec<_>>()}));
    }
    say!("{transfer} revoked: recipients can no longer fetch it.");
    for r in already {
        say!(
            "NOTE: {} had already downloaded it ({} at {}).",
            r.user,
            r.state.as_str(),
            r.at.map(format_time).unwrap_or_default()
        );
    }
    Ok(())
}

pub fn audit_verified(r: &VerifyReport, as_json: bool) -> Result<(), ClientError> {
    if as_json {
        return json(r);
    }
    say!(
        "audit log OK: {} entries, {} signed checkpoints, head {}, tree root {} (in the server's signed tree)",
        r.entries,
        r.checkpoints,
        r.head,
        r.tree_root
    );
    for h in &r.other_heads {
        say!("  extends the head in {}: {} entries, signed {}", p(&h.file), h.size, format_time(h.time));
    }
    Ok(())
}

/// One line of text to stdout (escaped as every other).
pub fn say_line(text: &str) {
    say!("{text}");
}

/// `exhibit audit heads`: the held head and the final one. JSON: the
/// held head's fields at the top level (as before witnesses, so a file
/// of it is still a head for `--from-heads`), and `final` (null until a
/// trusted witness cosigned one) and `witnesses` (the names trusted).
pub fn heads(
    h: Option<&crate::ops::heads::HeldHead>,
    final_head: Option<&crate::ops::witness::FinalHead>,
    trusted: &[crate::ops::witness::Trusted],
    as_json: bool,
) -> Result<(), ClientError> {
    if as_json {
        let names: Vec<&str> = trusted.iter().map(|t| t.name.as_str()).collect();
        let mut v = serde_json::to_value(h).map_err(|e| ClientError::Config(e.to_string()))?;
        if let serde_json::Value::Object(m) = &mut v {
            m.insert("final".into(), serde_json::to_value(final_head).map_err(|e| ClientError::Config(e.to_string()))?);
            m.insert("witnesses".into(), serde_json::json!(names));
        }
        return json(&v);
    }
    match h {
        None => say!("no tree head held yet: it is fetched on the next contact with the server"),
        Some(h) => {
            say!("audit log tree head held by this client:");
            say!("  entries:   {}", h.size);
            say!("  root:      {}", h.root);
            say!("  signed at: {}", format_time(h.time));
            say!("  signature: {}", hex::encode(&h.signed.signature));
        }
    }
    match (final_head, trusted.is_empty()) {
        (_, true) => say!("final head: no witness trusted (`exhibit audit witness add NAME KEY`)"),
        (None, false) => say!("final head: none cosigned yet by a trusted witness"),
        (Some(f), false) => {
            say!("final head (cosigned by a trusted witness):");
            say!("  entries:     {}", f.head.size);
            say!("  root:        {}", f.head.root);
            say!("  signed at:   {}", format_time(f.head.time));
            say!("  cosigned by: {}", f.witnesses.join(", "));
        }
    }
    Ok(())
}

/// `exhibit audit witness list`.
pub fn witnesses(trusted: &[crate::ops::witness::Trusted], as_json: bool) -> Result<(), ClientError> {
    if as_json {
        return json(&trusted);
    }
    if trusted.is_empty() {
        say!("no witness trusted");
    }
    for t in trusted {
        say!("{}  {}", t.name, t.key);
    }
    Ok(())
}

pub fn audit_entries(entries: &[exhibit_proto::audit::AuditEntry], as_json: bool) -> Result<(), ClientError> {
    if as_json {
        return json(&entries);
    }
    for e in entries {
        let b = &e.body;
        say!(
            "{:<7} {}  {:<16} {:<16} {:<34} {}",
            b.seq,
            format_time(b.time),
            cell(&b.actor),
            cell(&b.action),
            cell(&b.subject),
            cell(&b.details)
        );
    }
    Ok(())
}

/// A one-time secret (an enrolment code, a login link) on stdout, what it
/// is on stderr.
pub fn one_time(
    secret: &str,
    what: &str,
    expires: u64,
    extra: serde_json::Value,
    as_json: bool,
) -> Result<(), ClientError> {
    if as_json {
        return json(&extra);
    }
    say!("{secret}");
    tell!("{what}, valid until {}", format_time(expires));
    Ok(())
}

pub fn users(users: &[UserInfo], as_json: bool) -> Result<(), ClientError> {
    if as_json {
        return json(
            &users
                .iter()
                .map(|u| {
                    json!({
                        "user": u.user.to_string(), "display_name": u.display_name, "org": u.org,
                        "role": u.role.as_str(), "email": u.email,
                        "enrolled_at": u.enrolled_at, "revoked_at": u.revoked_at,
                    })
                })
                .collect::<Vec<_>>(),
        );
    }
    for u in users {
        let state = match (u.enrolled_at, u.revoked_at) {
            (_, Some(t)) => format!("revoked {}", format_time(t)),
            (Some(t), None) => format!("enrolled {}", format_time(t)),
            (None, None) => "code issued, not enrolled".into(),
        };
        say!("{:<20} {:<14} {:<24} {}", u.user.as_str(), u.role.as_str(), cell(&u.org), state);
    }
    Ok(())
}

pub fn alerts(alerts: &[AlertInfo], as_json: bool) -> Result<(), ClientError> {
    if as_json {
        return json(&alerts.iter().map(alert_json).collect::<Vec<_>>());
    }
    if alerts.is_empty() {
        say!("no open alerts");
    }
    for a in alerts {
        say!("#{:<5} {}  {}", a.id, format_time(a.raised_at), cell(&a.message));
        for d in &a.deliveries {
            let state = match (d.delivered_at, &d.last_error) {
                (Some(t), _) => format!("delivered {}", format_time(t)),
                (None, Some(err)) => format!("retrying after {} attempt(s): {}", d.attempts, cell(err)),
                (None, None) => "pending".into(),
            };
            say!("       {:<8} {state}", d.notifier);
        }
        if let Some(ack) = &a.ack {
            say!("       acknowledged by {} at {}: {}", ack.by, format_time(ack.at), ack.note);
        }
    }
    Ok(())
}
