//! Raising alerts (once per cause), the scan of the deadline index, the
//! watchdog, acknowledgement and notifier deliveries.

use exhibit_proto::frame::{AlertAck, Delivery};
use exhibit_proto::{TransferId, UserId};

use crate::app::{apply, audit, write};
use crate::core::alerts::{self as rules, NewAlert, OnDue};
use crate::core::lifecycle;
use crate::core::records::{AlertRecord, Ev};
use crate::error::ServerError;
use crate::meta::{Read, Tx};
use crate::state::State;

/// Due entries handled per transaction.
pub const BATCH: usize = 1024;
/// Counter: server time of the last completed scan.
const LAST_SCAN: &str = "last_scan";
/// Counter: the next alert's id.
const NEXT_ALERT: &str = "next_alert_id";

/// What one scan did.
#[derive(Debug, Default)]
pub struct ScanReport {
    /// Index entries handled.
    pub processed: usize,
    /// Alerts raised.
    pub raised: Vec<u64>,
    /// Transfers expired.
    pub expired: Vec<TransferId>,
}

/// The names of the configured notifiers (the log is always one).
pub fn notifier_names(s: &State) -> Vec<&'static str> {
    let mut n = vec!["log"];
    if s.settings.config.webhook.is_some() {
        n.push("webhook");
    }
    if s.settings.config.smtp.is_some() {
        n.push("email");
    }
    n
}

/// Raise `a` inside `tx` unless its cause was alerted before. Returns the
/// new alert's id.
pub fn raise(s: &State, tx: &mut dyn Tx, a: NewAlert, notifiers: &[&str]) -> Result<Option<u64>, ServerError> {
    let mut emails = vec![];
    for u in &a.people {
        emails.extend(crate::app::units::emails(tx, u)?);
    }
    raise_to(s, tx, a, notifiers, emails)
}

/// [`raise`], to these e-mail addresses.
fn raise_to(
    s: &State,
    tx: &mut dyn Tx,
    a: NewAlert,
    notifiers: &[&str],
    emails: Vec<String>,
) -> Result<Option<u64>, ServerError> {
    if tx.alert_key(&a.key)?.is_some() {
        return Ok(None);
    }
    let id = tx.counter(NEXT_ALERT)?.unwrap_or(1);
    tx.set_counter(NEXT_ALERT, id + 1)?;
    let mut info = a.info;
    info.id = id;
    info.deliveries = notifiers
        .iter()
        .map(|n| Delivery {
            notifier: (*n).to_owned(),
            attempts: 0,
            delivered_at: None,
            last_error: None,
            next_attempt_at: Some(info.raised_at),
        })
        .collect();
    for n in notifiers {
        tx.add_pending(id, n)?;
    }
    let subject = info.transfer.map_or(format!("alert-{id}"), |t| t.to_string());
    let ev = Ev::new(info.raised_at, "exhibitd", "alert", subject).details(format!("alert {id}: {}", info.message));
    tx.put_alert(&AlertRecord { info, emails })?;
    tx.put_alert_key(&a.key, id)?;
    audit::append(s, tx, ev)?;
    tracing::warn!(alert = id, "alert raised");
    Ok(Some(id))
}

/// Tell `to` (a user, or a unit's members and its own address) by e-mail
/// that `transfer` was released to them, when e-mail is configured and
/// arrival notices are on.
pub fn arrived(s: &State, tx: &mut dyn Tx, transfer: &TransferId, to: &UserId) -> Result<(), ServerError> {
    if !s.settings.config.arrival_notices || s.settings.config.smtp.is_none() {
        return Ok(());
    }
    let Some(t) = tx.transfer(transfer)? else { return Ok(()) };
    let sender = match tx.user(&t.sender)? {
        Some(u) => match crate::app::orgs::org_of(tx, &u)? {
            Some(o) => format!("{} ({}, {})", u.display_name, u.user, o.org.name),
            None => format!("{} ({})", u.display_name, u.user),
        },
        None => t.sender.to_string(),
    };
    // Those who turned arrival notices off are not told; a unit's own
    // address always is.
    let emails = crate::app::units::emails_of(tx, to, |u| wants_notices(tx, u))?;
    if emails.is_empty() {
        return Ok(());
    }
    let a = rules::arrived(&t, to, &sender, s.clock.now());
    raise_to(s, tx, a, &["email"], emails)?;
    Ok(())
}

/// Raise one alert in its own transaction.
fn raise_alone(s: &State, a: NewAlert) -> Result<Option<u64>, ServerError> {
    let notifiers = notifier_names(s);
    write(s, |tx| raise(s, tx, a, &notifiers))
}

/// Handle at most `limit` due entries in one transaction. Returns what was
/// done; `processed < limit` means nothing more was due.
pub fn scan_batch(s: &State, now: u64, limit: usize) -> Result<ScanReport, ServerError> {
    let notifiers = notifier_names(s);
    let mut unreferenced = vec![];
    let report = write(s, |tx| {
        let due = tx.take_due(now, limit)?;
        let mut report = ScanReport { processed: due.len(), ..ScanReport::default() };
        for (_, id, what) in due {
            let Some(mut t) = tx.transfer(&id)? else { continue };
            match rules::on_due(&t, what, now, &s.settings.escalate_after, s.settings.abandon_upload_after) {
                OnDue::Nothing => {}
                OnDue::Raise(a, next) => {
                    if let Some((at, due)) = next {
                        tx.schedule(at, &id, due)?;
                    }
                    report.raised.extend(raise(s, tx, *a, &notifiers)?);
                }
                ended @ (OnDue::Expire | OnDue::Abandon) => {
                    let chunks = tx.transfer_chunks(&id)?;
                    for (c, _) in &chunks {
                        tx.remove_transfer_chunk(&id, c)?;
                        if tx.add_chunk_ref(c, -1)? == 0 {
                            unreferenced.push(*c);
                        }
                    }
                    let fx = match ended {
                        OnDue::Abandon => lifecycle::abandon(&mut t, chunks.len(), now),
                        _ => lifecycle::expire(&mut t, chunks.len(), now),
                    };
                    tx.put_transfer(&t)?;
                    apply(s, tx, &id, fx)?;
                    report.expired.push(id);
                }
            }
        }
        if report.processed < limit {
            tx.set_counter(LAST_SCAN, now)?;
        }
        Ok(report)
    })?;
    // After the commit: a crash here leaves orphan chunk files, which
    // `exhibitd fsck` lists; never a reference to a deleted chunk.
    for id in unreferenced {
        s.delete_chunk(&id)?;
    }
    Ok(report)
}

/// A full scan: batches until nothing is due.
pub fn scan(s: &State, now: u64) -> Result<ScanReport, ServerError> {
    let mut total = ScanReport::default();
    loop {
        let r = scan_batch(s, now, BATCH)?;
        total.processed += r.processed;
        total.raised.extend(r.raised);
        total.expired.extend(r.expired);
        if r.processed < BATCH {
            return Ok(total);
        }
    }
}

/// The dead-man alarm: alert if no scan completed within twice the
/// interval. `started` is when the scheduler started, used until the first
/// scan completes.
pub fn watchdog(s: &State, now: u64, started: u64) -> Result<Option<u64>, ServerError> {
    let last = s.meta.read()?.counter(LAST_SCAN)?.unwrap_or(started).max(started.min(now));
    match rules::scheduler_stalled(last, now, s.settings.scan_interval) {
        Some(a) => raise_alone(s, a),
        None => Ok(None),
    }
}

/// A receipt failed verification: audit it and alert (once per transfer
/// and user). Failing to record it is logged, not returned: the caller's
/// answer is the refusal.
pub fn receipt_rejected(s: &State, transfer: &TransferId, user: &UserId, reason: &str, now: u64) {
    let notifiers = notifier_names(s);
    let r = write(s, |tx| {
        let Some(t) = tx.transfer(transfer)? else { return Ok(None) };
        audit::append(s, tx, Ev::new(now, user, "receipt-rejected", transfer).details(reason))?;
        raise(s, tx, rules::receipt_rejected(&t, user, reason, now), &notifiers)
    });
    if let Err(e) = r {
        tracing::error!(error = %e, "could not record a rejected receipt alert");
    }
}

/// A storage problem (disk full, chunks missing): one alert per `key`.
pub fn storage_alert(s: &State, message: &str, key: &str, now: u64) -> Result<Option<u64>, ServerError> {
    raise_alone(s, rules::storage(message, key, now))
}

/// Acknowledge an alert with a note.
pub fn ack(s: &State, id: u64, by: UserId, note: String, now: u64) -> Result<AlertRecord, ServerError> {
    crate::core::policy::check_ack_note(&note)?;
    write(s, |tx| {
        let mut a = tx.alert(id)?.ok_or_else(|| ServerError::NotFound(format!("alert {id}")))?;
        if let Some(prev) = &a.info.ack {
            return Err(ServerError::Conflict(format!("alert {id} was acknowledged by {} already", prev.by)));
        }
        let subject = a.info.transfer.map_or(format!("alert-{id}"), |t| t.to_string());
        audit::append(s, tx, Ev::new(now, &by, "alert-ack", subject).details(format!("alert {id}: {note}")))?;
        a.info.ack = Some(AlertAck { by: by.to_string(), at: now, note });
        tx.put_alert(&a)?;
        Ok(a)
    })
}

/// Close the open alerts about `transfer` that `why` answers, each with
/// a note and an audit entry by `exhibitd`: an overdue alert once everyone
/// acknowledged, a stalled-upload alert once sealed, and so on. An alert
/// an admin acknowledged already keeps their note.
pub fn resolve(
    key: &ed25519_dalek::SigningKey,
    tx: &mut dyn Tx,
    transfer: &TransferId,
    at: u64,
    why: lifecycle::Resolved,
) -> Result<(), ServerError> {
    let t = transfer.as_bytes().as_slice();
    let mut ids = vec![];
    for suffix in why.suffixes() {
        ids.extend(tx.alert_key(&[t, suffix].concat())?);
    }
    // Overdue levels are raised in order: the first never raised ends them.
    for level in (0..=u8::MAX).take_while(|_| why.closes_overdue()) {
        match tx.alert_key(&[t, &[b'o', level]].concat())? {
            Some(id) => ids.push(id),
            None => break,
        }
    }
    for id in ids {
        let Some(mut a) = tx.alert(id)? else { continue };
        if a.info.ack.is_some() {
            continue;
        }
        let note = why.note().to_owned();
        let ev = Ev::new(at, "exhibitd", "alert-resolved", transfer).details(format!("alert {id}: {note}"));
        audit::append_signed(key, tx, ev)?;
        a.info.ack = Some(AlertAck { by: "exhibitd".into(), at, note });
        tx.put_alert(&a)?;
    }
    Ok(())
}

/// Deliveries still to make, with their alerts.
pub fn pending(s: &State) -> Result<Vec<(AlertRecord, String)>, ServerError> {
    let r = s.meta.read()?;
    let mut out = vec![];
    for (id, name) in r.pending_deliveries()? {
        if let Some(a) = r.alert(id)? {
            out.push((a, name));
        }
    }
    Ok(out)
}

/// Record one delivery attempt: delivered, or failed with a retry time.
pub fn record_delivery(
    s: &State,
    id: u64,
    notifier: &str,
    now: u64,
    result: Result<(), String>,
    retry_at: u64,
) -> Result<(), ServerError> {
    write(s, |tx| {
        let Some(mut a) = tx.alert(id)? else { return Ok(()) };
        if let Some(d) = a.info.deliveries.iter_mut().find(|d| d.notifier == notifier) {
            d.attempts += 1;
            match result {
                Ok(()) => {
                    d.delivered_at = Some(now);
                    d.next_attempt_at = None;
                    d.last_error = None;
                    tx.remove_pending(id, notifier)?;
                }
                Err(e) => {
                    d.last_error = Some(e);
                    d.next_attempt_at = Some(retry_at);
                }
            }
        }
        tx.put_alert(&a)
    })
}

/// The per-user setting that turns arrival notices off (a counter, 1 for
/// off, so it needs no change to the stored user record).
fn notices_key(user: &UserId) -> String {
    format!("notices-off/{user}")
}

/// Whether `user` wants e-mail when something arrives for them (the
/// default).
pub fn wants_notices(r: &dyn Read, user: &UserId) -> Result<bool, ServerError> {
    Ok(r.counter(&notices_key(user))?.unwrap_or(0) == 0)
}

/// A user turns their own arrival notices on or off (audited). Alerts
/// about overdue transfers are not affected: those are not theirs to turn
/// off.
pub fn set_notices(s: &State, user: &UserId, on: bool, now: u64) -> Result<(), ServerError> {
    write(s, |tx| {
        tx.set_counter(&notices_key(user), u64::from(!on))?;
        let what = if on { "arrival notices turned on" } else { "arrival notices turned off" };
        audit::append(s, tx, Ev::new(now, user, "notices", user).details(what))?;
        Ok(())
    })
}
