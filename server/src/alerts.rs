//! Alerts: a scheduler, driven by the injected clock, that reads only the
//! due part of the deadline index; escalation; the dead-man watchdog; and
//! the other causes (stalled uploads, revoked recipients, rejected receipts).
//!
//! Every alert is raised inside the same redb transaction that removes the
//! index entry that caused it, under a dedup key per cause, so a crash or
//! restart mid-scan can neither lose nor repeat one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use exhibit_proto::duration::format_secs;
use exhibit_proto::frame::{AlertInfo, AlertKind, DeliveryState, TransferState};
use exhibit_proto::{TransferId, UserId};

use crate::error::ServerError;
use crate::store::{AlertRecord, AlertTx, Due, TransferRecord};
use crate::State;

/// Due entries handled per transaction.
pub const BATCH: usize = 1024;
/// Meta key: server time of the last completed scan.
const LAST_SCAN: &str = "last_scan";

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
pub fn notifier_names(state: &State) -> Vec<&'static str> {
    let mut n = vec!["log"];
    if state.settings.config.webhook.is_some() {
        n.push("webhook");
    }
    if state.settings.config.smtp.is_some() {
        n.push("email");
    }
    n
}

fn emails_of(tx: &AlertTx, users: impl IntoIterator<Item = UserId>) -> Result<Vec<String>, ServerError> {
    let mut out = vec![];
    for u in users {
        if let Some(e) = tx.user(&u)?.and_then(|r| r.email) {
            out.push(e);
        }
    }
    Ok(out)
}

fn waiting_for(t: &TransferRecord) -> Vec<UserId> {
    t.recipients.iter().filter(|r| r.state != DeliveryState::Acknowledged).map(|r| r.user.clone()).collect()
}

/// Raise an alert about a transfer inside `tx`.
pub(crate) fn raise_for_transfer(
    notifiers: &[&str],
    tx: &mut AlertTx,
    t: &TransferRecord,
    kind: AlertKind,
    key_suffix: &[u8],
    message: String,
    now: u64,
) -> Result<Option<u64>, ServerError> {
    let waiting = waiting_for(t);
    let people = std::iter::once(t.sender.clone()).chain(waiting.iter().cloned());
    let emails = emails_of(tx, people)?;
    let info = AlertInfo {
        id: 0,
        kind,
        transfer: Some(t.transfer),
        sender: Some(t.sender.clone()),
        waiting_for: waiting,
        case_ref: t.case_ref.clone(),
        deadline: t.deadline,
        raised_at: now,
        message,
        ack: None,
        deliveries: vec![],
    };
    let key = [t.transfer.as_bytes().as_slice(), key_suffix].concat();
    let id = tx.raise(&key, AlertRecord { info, emails }, notifiers)?;
    if let Some(id) = id {
        tracing::warn!(alert = id, transfer = %t.transfer, "alert raised");
    }
    Ok(id)
}

/// Raise an alert not tied to a transfer.
pub(crate) fn raise_general(
    notifiers: &[&str],
    tx: &mut AlertTx,
    kind: AlertKind,
    key: &[u8],
    message: String,
    now: u64,
) -> Result<Option<u64>, ServerError> {
    let info = AlertInfo {
        id: 0,
        kind,
        transfer: None,
        sender: None,
        waiting_for: vec![],
        case_ref: None,
        deadline: None,
        raised_at: now,
        message,
        ack: None,
        deliveries: vec![],
    };
    let id = tx.raise(key, AlertRecord { info, emails: vec![] }, notifiers)?;
    if let Some(id) = id {
        tracing::warn!(alert = id, "alert raised");
    }
    Ok(id)
}

fn overdue_message(t: &TransferRecord, level: u8, now: u64) -> String {
    let waiting: Vec<String> = waiting_for(t).iter().map(ToString::to_string).collect();
    let late = now.saturating_sub(t.deadline.unwrap_or(now));
    format!(
        "{}transfer {} from {} (case {}) not acknowledged by {} — {} past its deadline",
        if level == 0 { "OVERDUE: ".to_owned() } else { format!("ESCALATION {level}: ") },
        t.transfer,
        t.sender,
        t.case_ref.as_deref().unwrap_or("-"),
        waiting.join(", "),
        format_secs(late),
    )
}

/// Handle at most `limit` due entries in one transaction. Returns what was
/// done; `processed < limit` means nothing more was due.
pub fn scan_batch(state: &State, now: u64, limit: usize) -> Result<ScanReport, ServerError> {
    let escalate = &state.settings.escalate_after;
    let notifiers = notifier_names(state);
    let mut unreferenced = vec![];
    let report = state.store.write(|tx| {
        let mut tx = AlertTx::open(&state.store, tx)?;
        let due = tx.take_due(now, limit)?;
        let mut report = ScanReport { processed: due.len(), ..ScanReport::default() };
        for (_, id, what) in due {
            let Some(t) = tx.transfer(&id)? else { continue };
            let raised = match what {
                Due::Overdue(level) => {
                    if t.state != TransferState::Sealed || waiting_for(&t).is_empty() {
                        continue;
                    }
                    let deadline = t.deadline.unwrap_or(now);
                    if let Some(delay) = escalate.get(level as usize) {
                        tx.schedule(deadline.saturating_add(*delay), &id, Due::Overdue(level + 1))?;
                    }
                    let msg = overdue_message(&t, level, now);
                    raise_for_transfer(&notifiers, &mut tx, &t, AlertKind::Overdue { level }, &[b'o', level], msg, now)?
                }
                Due::Stalled => {
                    if t.state != TransferState::Uploading {
                        continue;
                    }
                    let msg = format!(
                        "STALLED UPLOAD: transfer {} from {} started {} ago and is not sealed",
                        t.transfer,
                        t.sender,
                        format_secs(now.saturating_sub(t.created_at))
                    );
                    raise_for_transfer(&notifiers, &mut tx, &t, AlertKind::StalledUpload, b"s", msg, now)?
                }
                Due::Expire => {
                    if matches!(t.state, TransferState::Sealed | TransferState::Revoked) {
                        unreferenced.extend(tx.expire(&id, now)?);
                        report.expired.push(id);
                    }
                    None
                }
            };
            report.raised.extend(raised);
        }
        if report.processed < limit {
            tx.set_meta(LAST_SCAN, now)?;
        }
        Ok(report)
    })?;
    // After the commit: a crash here leaves orphan chunk files, which
    // `exhibitd fsck` lists; never a reference to a deleted chunk.
    for id in unreferenced {
        state.delete_chunk(&id)?;
    }
    Ok(report)
}

/// A full scan: batches until nothing is due.
pub fn scan(state: &State, now: u64) -> Result<ScanReport, ServerError> {
    let mut total = ScanReport::default();
    loop {
        let r = scan_batch(state, now, BATCH)?;
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
pub fn watchdog(state: &State, now: u64, started: u64) -> Result<Option<u64>, ServerError> {
    let last = state.store.meta_u64(LAST_SCAN)?.unwrap_or(started).max(started.min(now));
    let limit = 2 * state.settings.scan_interval;
    if now.saturating_sub(last) <= limit {
        return Ok(None);
    }
    let msg = format!("SCHEDULER STALLED: no alert scan has completed for {}", format_secs(now - last));
    let key = [b"stalled".as_slice(), &last.to_be_bytes()].concat();
    let notifiers = notifier_names(state);
    state.store.write(|tx| {
        let mut tx = AlertTx::open(&state.store, tx)?;
        raise_general(&notifiers, &mut tx, AlertKind::SchedulerStalled { last_scan: last }, &key, msg, now)
    })
}

/// A receipt failed verification: alert (once per transfer and user).
pub fn receipt_rejected(state: &State, transfer: &TransferId, user: &UserId, reason: &str, now: u64) {
    let notifiers = notifier_names(state);
    let r = state.store.write(|tx| {
        let mut tx = AlertTx::open(&state.store, tx)?;
        let Some(t) = tx.transfer(transfer)? else { return Ok(None) };
        tx.audit.append(crate::store::Ev::new(now, user, "receipt-rejected", transfer).details(reason))?;
        let msg = format!("RECEIPT REJECTED: {user}'s receipt for transfer {transfer} failed verification: {reason}");
        let kind = AlertKind::ReceiptRejected { user: user.clone(), reason: reason.to_owned() };
        raise_for_transfer(
            &notifiers,
            &mut tx,
            &t,
            kind,
            &[b"r".as_slice(), user.as_str().as_bytes()].concat(),
            msg,
            now,
        )
    });
    if let Err(e) = r {
        tracing::error!(error = %e, "could not record a rejected receipt alert");
    }
}

/// A storage problem (disk full, chunks missing): one alert per `key`.
pub fn storage_alert(state: &State, message: &str, key: &str, now: u64) -> Result<Option<u64>, ServerError> {
    let notifiers = notifier_names(state);
    let kind = AlertKind::Storage { reason: message.to_owned() };
    let key = [b"storage:".as_slice(), key.as_bytes()].concat();
    state.store.write(|tx| {
        let mut tx = AlertTx::open(&state.store, tx)?;
        raise_general(&notifiers, &mut tx, kind, &key, message.to_owned(), now)
    })
}

/// Revoke a user: re-sign their entry as revoked and alert on every
/// transfer addressed to them that they have not acknowledged.
///
/// After the commit, every connection the user has open is closed, so the
/// revocation bites at once wherever it was made (protocol or dashboard).
pub fn revoke_user(state: &State, by: &UserId, user: &UserId, now: u64) -> Result<Vec<u64>, ServerError> {
    let notifiers = notifier_names(state);
    let raised = state.store.write(|tx| {
        let mut tx = AlertTx::open(&state.store, tx)?;
        let mut rec = tx.user(user)?.ok_or_else(|| ServerError::NotFound(format!("user {user}")))?;
        if rec.revoked_at.is_some() {
            return Err(ServerError::Conflict(format!("user {user} is already revoked")));
        }
        rec.revoked_at = Some(now);
        let authority = state.authority.signing_key();
        if let Some(e) = &rec.entry {
            let mut entry = e.verify(&authority.verifying_key())?;
            entry.revoked_at = Some(now);
            rec.entry = Some(entry.sign(authority));
        }
        tx.put_user(&rec)?;
        tx.audit.append(crate::store::Ev::new(now, by, "user-revoke", user))?;
        let mut raised = vec![];
        for t in tx.inbox(user)? {
            let mine = t.recipients.iter().find(|r| &r.user == user);
            if t.state != TransferState::Sealed || mine.is_none_or(|r| r.state == DeliveryState::Acknowledged) {
                continue;
            }
            let msg = format!(
                "REVOKED RECIPIENT: transfer {} from {} (case {}) is addressed to {user}, who has been revoked",
                t.transfer,
                t.sender,
                t.case_ref.as_deref().unwrap_or("-")
            );
            let kind = AlertKind::RevokedRecipient { user: user.clone() };
            let key = [b"v".as_slice(), user.as_str().as_bytes()].concat();
            raised.extend(raise_for_transfer(&notifiers, &mut tx, &t, kind, &key, msg, now)?);
        }
        Ok(raised)
    })?;
    let closed = state.conns.close_user(user, &format!("user {user} has been revoked"));
    tracing::info!(%user, closed, "user revoked");
    Ok(raised)
}

/// Run the scheduler and the watchdog until the server stops.
pub(crate) fn spawn(state: Arc<State>) -> Vec<tokio::task::JoinHandle<()>> {
    let interval = Duration::from_secs(state.settings.scan_interval);
    let started = state.clock.now();
    let s = state.clone();
    let scheduler = tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let s2 = s.clone();
            let t0 = Instant::now();
            let r = tokio::task::spawn_blocking(move || scan(&s2, s2.clock.now())).await;
            match r {
                Ok(Ok(r)) => {
                    s.last_scan_micros.store(t0.elapsed().as_micros() as u64, std::sync::atomic::Ordering::Relaxed);
                    if !r.raised.is_empty() {
                        s.notify.notify_one();
                    }
                }
                Ok(Err(e)) => tracing::error!(error = %e, "alert scan failed"),
                Err(e) => tracing::error!(error = %e, "alert scan panicked"),
            }
        }
    });
    let s = state;
    let watchdog_task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        loop {
            tick.tick().await;
            let s2 = s.clone();
            match tokio::task::spawn_blocking(move || watchdog(&s2, s2.clock.now(), started)).await {
                Ok(Ok(Some(_))) => s.notify.notify_one(),
                Ok(Err(e)) => tracing::error!(error = %e, "watchdog failed"),
                _ => {}
            }
        }
    });
    vec![scheduler, watchdog_task]
}
