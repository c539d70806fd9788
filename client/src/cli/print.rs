//! What the commands print: text for people, or JSON for scripts
//! (`--json`). Only data comes in; nothing here talks to the server.

use std::path::Path;

use exhibit_proto::directory::DirectoryEntry;
use exhibit_proto::frame::{AlertInfo, RecipientState, TransferInfo, UserInfo};
use exhibit_proto::receipt::{ReceiptBundle, ReceiptSummary};
use serde_json::json;

use crate::error::ClientError;
use crate::home::Profile;
use crate::human::{format_size, format_time};
use crate::ops::audit::VerifyReport;
use crate::ops::fetch::FetchOutcome;
use crate::ops::resume::Step;
use crate::ops::send::SendOutcome;

/// Up to this many files a fetch lists each; past it, one summary line.
const LIST_FILES_UP_TO: usize = 20;

pub fn json(v: &impl serde::Serialize) -> Result<(), ClientError> {
    println!("{}", serde_json::to_string_pretty(v).map_err(|e| ClientError::Config(e.to_string()))?);
    Ok(())
}

/// One line of text, or `v` as JSON.
pub fn line(v: &impl serde::Serialize, text: &str, as_json: bool) -> Result<(), ClientError> {
    if as_json {
        return json(v);
    }
    println!("{text}");
    Ok(())
}

fn transfer_json(t: &TransferInfo) -> serde_json::Value {
    json!({
        "transfer": t.transfer.to_string(),
        "sender": t.sender.to_string(),
        "state": format!("{:?}", t.state).to_lowercase(),
        "case": t.case_ref,
        "items": t.items,
        "bytes": t.bytes,
        "created_at": t.created_at,
        "sealed_at": t.sealed_at,
        "deadline": t.deadline,
        "recipients": t.recipients.iter().map(|r| json!({
            "user": r.user.to_string(), "state": r.state.as_str(), "at": r.at,
        })).collect::<Vec<_>>(),
    })
}

pub fn enrolled(me: &DirectoryEntry, home: &Path, as_json: bool) -> Result<(), ClientError> {
    if as_json {
        return json(&json!({"user": me.user.to_string(), "fingerprint": me.fingerprint(), "home": home}));
    }
    println!("Enrolled as {} ({}, {}).", me.user, me.role, me.org);
    println!("Your key fingerprint: {}", me.fingerprint());
    println!("Keys saved in {} (private keys mode 0600).", home.display());
    Ok(())
}

pub fn whoami(p: &Profile, expires: u64, as_json: bool) -> Result<(), ClientError> {
    let me = &p.me;
    if as_json {
        return json(&json!({
            "user": me.user.to_string(), "display_name": me.display_name, "org": me.org,
            "role": me.role.as_str(), "fingerprint": me.fingerprint(), "server": p.config.server,
            "certificate_expires": expires,
        }));
    }
    println!("{} ({}), {} at {}", me.user, me.display_name, me.role, me.org);
    println!("fingerprint {}", me.fingerprint());
    println!("server {}", p.config.server);
    println!("certificate valid until {} (renew with `exhibit renew`)", format_time(expires));
    Ok(())
}

pub fn renewed(expires: u64, as_json: bool) -> Result<(), ClientError> {
    if as_json {
        return json(&json!({ "certificate_expires": expires }));
    }
    println!("certificate renewed; valid until {}", format_time(expires));
    Ok(())
}

pub fn directory(entries: &[(DirectoryEntry, Option<String>)], as_json: bool) -> Result<(), ClientError> {
    if as_json {
        return json(
            &entries
                .iter()
                .map(|(e, pin)| {
                    json!({
                        "user": e.user.to_string(), "display_name": e.display_name, "org": e.org,
                        "role": e.role.as_str(), "fingerprint": e.fingerprint(),
                        "pinned": pin.as_ref().map(|f| *f == e.fingerprint()),
                    })
                })
                .collect::<Vec<_>>(),
        );
    }
    for (e, pin) in entries {
        let pin = match pin {
            Some(f) if *f == e.fingerprint() => "pinned",
            Some(_) => "KEY CHANGED",
            None => "",
        };
        println!(
            "{:<20} {:<14} {:<24} {:<24} {} {}",
            e.user.as_str(),
            e.role.as_str(),
            e.display_name,
            e.org,
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
            "deadline": out.deadline, "recipients": out.recipients,
        }));
    }
    for r in &out.recipients {
        let note = if r.newly_pinned { "  (first use: now pinned)" } else { "" };
        eprintln!("to {} ({}, {}) key {}{note}", r.user, r.display_name, r.org, r.fingerprint);
    }
    println!("{}", out.transfer);
    eprintln!(
        "sealed: {} file(s), {}; acknowledge by {}",
        out.items,
        format_size(out.bytes),
        format_time(out.deadline)
    );
    Ok(())
}

pub fn transfers(list: &[TransferInfo], as_json: bool) -> Result<(), ClientError> {
    if as_json {
        return json(&list.iter().map(transfer_json).collect::<Vec<_>>());
    }
    if list.is_empty() {
        println!("no transfers");
    }
    for t in list {
        let when = t.sealed_at.map_or_else(|| "uploading".to_owned(), format_time);
        println!("{}  {}  from {}  case {}", t.transfer, when, t.sender, t.case_ref.as_deref().unwrap_or("-"));
        for r in &t.recipients {
            let at = r.at.map(format_time).unwrap_or_default();
            println!("    {:<20} {:<13} {}", r.user.as_str(), r.state.as_str(), at);
        }
    }
    Ok(())
}

pub fn fetched(r: &FetchOutcome, out_dir: &Path, as_json: bool) -> Result<(), ClientError> {
    if as_json {
        return json(r);
    }
    println!("from {} (key {}), case {}", r.sender, r.sender_fingerprint, r.case_ref.as_deref().unwrap_or("-"));
    if let Some(n) = &r.note {
        println!("note: {n}");
    }
    // A device extract is one line, not a screen per thousand files.
    if r.item_count <= LIST_FILES_UP_TO {
        for i in &r.items {
            println!("  {}  {} bytes  blake3 {}", i.written_to.display(), i.size, i.blake3);
        }
    } else {
        println!(
            "{} files, {}, written under {}; each file's BLAKE3 is listed in {}",
            r.item_count,
            format_size(r.bytes),
            out_dir.display(),
            r.items_file.display()
        );
    }
    match &r.receipt {
        Some(a) => println!("verified; receipt accepted by the server at {}", format_time(a.accepted_at)),
        None => println!("verified (your own transfer: no receipt sent)"),
    }
    Ok(())
}

pub fn receipt_exported(b: &ReceiptBundle, out: &Path, items: Option<&Path>, as_json: bool) -> Result<(), ClientError> {
    if as_json {
        return json(&json!({"file": out, "items_file": items, "summary": b.summary}));
    }
    println!("receipt of {} for {} written to {}", b.summary.recipient, b.summary.transfer, out.display());
    match items {
        Some(f) => println!("item list (BLAKE3 and path of each file) written to {}", f.display()),
        None if b.summary.item_count.is_some() => {
            println!("no item list: the files' names and hashes are sealed to the sender and recipients")
        }
        None => {}
    }
    Ok(())
}

pub fn receipt(s: &ReceiptSummary, items_checked: Option<usize>, as_json: bool) -> Result<(), ClientError> {
    if as_json {
        return json(&json!({"valid": true, "summary": s, "items_checked": items_checked}));
    }
    println!("VALID receipt");
    println!("  transfer     {}", s.transfer);
    println!("  case         {}", s.case_ref.as_deref().unwrap_or("-"));
    println!("  sender       {} (key {})", s.sender, s.sender_fingerprint);
    println!("  recipient    {} (key {})", s.recipient, s.recipient_fingerprint);
    println!("  manifest     {}", s.manifest_hash);
    println!("  received at  {} (recipient's clock)", format_time(s.received_at));
    println!("  accepted at  {} (server's clock, countersigned)", format_time(s.accepted_at));
    for (i, h) in s.items.iter().enumerate() {
        println!("  item {i:<7} blake3 {h}");
    }
    if let (Some(n), Some(root)) = (s.item_count, &s.items_root) {
        println!("  items        {n}, root {root}");
        match items_checked {
            Some(_) => println!("  item list    checked: every file's BLAKE3, in order, gives the root"),
            None => println!(
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
            println!("{transfer} fetched into {} and receipted", out.display())
        }
        Step::Sent(out) if !as_json => {
            println!("{} sealed ({} file(s), {})", out.transfer, out.items, format_size(out.bytes))
        }
        Step::FetchFailed { transfer, error } => eprintln!("fetch {transfer}: {error}"),
        Step::SendFailed { journal, error } => eprintln!("{}: {error}", journal.display()),
        _ => {}
    }
}

pub fn revoked(transfer: &str, already: &[RecipientState], as_json: bool) -> Result<(), ClientError> {
    if as_json {
        return json(&json!({"revoked": transfer, "already_fetched": already.iter().map(|r| json!({
            "user": r.user.to_string(), "state": r.state.as_str(), "at": r.at,
        })).collect::<Vec<_>>()}));
    }
    println!("{transfer} revoked: recipients can no longer fetch it.");
    for r in already {
        println!(
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
    println!("audit log OK: {} entries, {} signed checkpoints, head {}", r.entries, r.checkpoints, r.head);
    Ok(())
}

pub fn audit_entries(entries: &[exhibit_proto::audit::AuditEntry], as_json: bool) -> Result<(), ClientError> {
    if as_json {
        return json(&entries);
    }
    for e in entries {
        let b = &e.body;
        println!(
            "{:<7} {}  {:<16} {:<16} {:<34} {}",
            b.seq,
            format_time(b.time),
            b.actor,
            b.action,
            b.subject,
            b.details
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
    println!("{secret}");
    eprintln!("{what}, valid until {}", format_time(expires));
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
        println!("{:<20} {:<14} {:<24} {}", u.user.as_str(), u.role.as_str(), u.org, state);
    }
    Ok(())
}

pub fn alerts(alerts: &[AlertInfo], as_json: bool) -> Result<(), ClientError> {
    if as_json {
        return json(&alerts);
    }
    if alerts.is_empty() {
        println!("no open alerts");
    }
    for a in alerts {
        println!("#{:<5} {}  {}", a.id, format_time(a.raised_at), a.message);
        for d in &a.deliveries {
            let state = match (d.delivered_at, &d.last_error) {
                (Some(t), _) => format!("delivered {}", format_time(t)),
                (None, Some(e)) => format!("retrying after {} attempt(s): {e}", d.attempts),
                (None, None) => "pending".into(),
            };
            println!("       {:<8} {state}", d.notifier);
        }
        if let Some(ack) = &a.ack {
            println!("       acknowledged by {} at {}: {}", ack.by, format_time(ack.at), ack.note);
        }
    }
    Ok(())
}
