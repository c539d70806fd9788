//! When to alert, about what, in which words, and under which dedup key
//! (one alert per cause, however often the cause is seen).

use exhibit_proto::duration::{format_secs, format_time};
use exhibit_proto::frame::{AlertInfo, AlertKind, DeliveryState, TransferState};
use exhibit_proto::UserId;

use crate::core::records::{Due, TransferRecord};

/// An alert to raise, before it has an id.
#[derive(Clone, Debug, PartialEq)]
pub struct NewAlert {
    /// What the client sees (id and deliveries filled in when raised).
    pub info: AlertInfo,
    /// Dedup key.
    pub key: Vec<u8>,
    /// Whose e-mail addresses to tell (the sender and those waiting).
    pub people: Vec<UserId>,
}

/// An alert about a transfer: told to its sender and those it waits for.
/// A transfer not yet released (awaiting a disclosure approver, or
/// refused) is told to its sender and approvers only: its recipients must
/// not learn it exists.
pub fn about_transfer(t: &TransferRecord, kind: AlertKind, key_suffix: &[u8], message: String, now: u64) -> NewAlert {
    let released = t.approvers.is_empty() || crate::core::policy::released(t);
    let waiting = if released { t.waiting_for() } else { vec![] };
    let people = std::iter::once(t.sender.clone())
        .chain(waiting.iter().cloned())
        .chain(if released { vec![] } else { t.approvers.clone() })
        .collect();
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
    NewAlert { info, key: [t.transfer.as_bytes().as_slice(), key_suffix].concat(), people }
}

/// An alert about the server itself.
pub fn general(kind: AlertKind, key: Vec<u8>, message: String, now: u64) -> NewAlert {
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
    NewAlert { info, key, people: vec![] }
}

/// What a due deadline-index entry calls for.
#[derive(Clone, Debug, PartialEq)]
pub enum OnDue {
    /// Nothing any more (acknowledged, sealed, ended).
    Nothing,
    /// Raise this alert, and schedule the next escalation if any.
    Raise(Box<NewAlert>, Option<(u64, Due)>),
    /// Retention is over.
    Expire,
    /// An upload never sealed, past its grace: give it up.
    Abandon,
}

/// Decide what a due entry means for `t` now. `escalate` is the delay of
/// each escalation after the deadline; `abandon` the grace after a
/// stalled-upload alert before the upload is given up.
pub fn on_due(t: &TransferRecord, due: Due, now: u64, escalate: &[u64], abandon: u64) -> OnDue {
    match due {
        Due::Overdue(level) => {
            if t.state != TransferState::Sealed || t.waiting_for().is_empty() {
                return OnDue::Nothing;
            }
            let deadline = t.deadline.unwrap_or(now);
            let next = escalate.get(level as usize).map(|d| (deadline.saturating_add(*d), Due::Overdue(level + 1)));
            let msg = overdue_message(t, level, now);
            OnDue::Raise(Box::new(about_transfer(t, AlertKind::Overdue { level }, &[b'o', level], msg, now)), next)
        }
        Due::Stalled => {
            if t.state != TransferState::Uploading {
                return OnDue::Nothing;
            }
            let msg = format!(
                "STALLED UPLOAD: transfer {} from {} started {} ago and is not sealed; \
                 unless it is, it will be given up and its chunks deleted in {}",
                t.transfer,
                t.sender,
                format_secs(now.saturating_sub(t.created_at)),
                format_secs(abandon)
            );
            let next = Some((now.saturating_add(abandon), Due::Abandon));
            OnDue::Raise(Box::new(about_transfer(t, AlertKind::StalledUpload, b"s", msg, now)), next)
        }
        Due::Abandon if t.state == TransferState::Uploading => OnDue::Abandon,
        Due::Abandon => OnDue::Nothing,
        Due::Expire if crate::core::lifecycle::can_expire(t, now) => OnDue::Expire,
        Due::Expire => OnDue::Nothing,
        Due::Approval => {
            if t.state != TransferState::AwaitingApproval {
                return OnDue::Nothing;
            }
            let since = t.sealed_at.unwrap_or(t.created_at);
            let approvers: Vec<&str> = t.approvers.iter().map(UserId::as_str).collect();
            let msg = format!(
                "AWAITING APPROVAL: transfer {} from {} (case {}) to an external organisation has waited {} for a disclosure approver ({})",
                t.transfer,
                t.sender,
                t.case_ref.as_deref().unwrap_or("-"),
                format_secs(now.saturating_sub(since)),
                approvers.join(", ")
            );
            let a = about_transfer(t, AlertKind::AwaitingApproval { since }, b"a", msg, now);
            OnDue::Raise(Box::new(a), None)
        }
    }
}

fn overdue_message(t: &TransferRecord, level: u8, now: u64) -> String {
    let waiting: Vec<String> = t.waiting_for().iter().map(ToString::to_string).collect();
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

/// A revoked user was still to acknowledge `t`.
pub fn revoked_recipient(t: &TransferRecord, user: &UserId, now: u64) -> Option<NewAlert> {
    let mine = t.recipients.iter().find(|r| &r.user == user);
    if t.state != TransferState::Sealed || mine.is_none_or(|r| r.state == DeliveryState::Acknowledged) {
        return None;
    }
    let msg = format!(
        "REVOKED RECIPIENT: transfer {} from {} (case {}) is addressed to {user}, who has been revoked",
        t.transfer,
        t.sender,
        t.case_ref.as_deref().unwrap_or("-")
    );
    let kind = AlertKind::RevokedRecipient { user: user.clone() };
    Some(about_transfer(t, kind, &[b"v".as_slice(), user.as_str().as_bytes()].concat(), msg, now))
}

/// A recipient's receipt failed verification.
pub fn receipt_rejected(t: &TransferRecord, user: &UserId, reason: &str, now: u64) -> NewAlert {
    let msg = format!("RECEIPT REJECTED: {user}'s receipt for transfer {} failed verification: {reason}", t.transfer);
    let kind = AlertKind::ReceiptRejected { user: user.clone(), reason: reason.to_owned() };
    about_transfer(t, kind, &[b"r".as_slice(), user.as_str().as_bytes()].concat(), msg, now)
}

/// A notice that `t` was released to `recipient` (a user or a unit), for
/// them alone: never file names or the note (the server cannot read
/// them), raised acknowledged so it is never an open alert.
pub fn arrived(t: &TransferRecord, recipient: &UserId, sender: &str, now: u64) -> NewAlert {
    let size = match t.bytes {
        n @ 0..1_000_000 => format!("{:.1} KB", n as f64 / 1e3),
        n @ 1_000_000..1_000_000_000 => format!("{:.1} MB", n as f64 / 1e6),
        n => format!("{:.2} GB", n as f64 / 1e9),
    };
    let items = if t.items > 0 { format!("{} items, ", t.items) } else { String::new() };
    let by = t.deadline.map_or_else(String::new, |d| format!("; acknowledge by {}", format_time(d)));
    let msg = format!(
        "NEW EVIDENCE for {recipient}: transfer {} from {sender}, case {}, {items}{size}{by}",
        t.transfer,
        t.case_ref.as_deref().unwrap_or("-"),
    );
    let kind = AlertKind::Arrived { recipient: recipient.clone() };
    let mut a = about_transfer(t, kind, &[b"n".as_slice(), recipient.as_str().as_bytes()].concat(), msg, now);
    a.people = vec![recipient.clone()];
    a.info.waiting_for = vec![recipient.clone()];
    a.info.ack = Some(exhibit_proto::frame::AlertAck {
        by: a.info.sender.as_ref().unwrap_or(recipient).to_string(),
        at: now,
        note: "arrival notice".into(),
    });
    a
}

/// The scheduler has not completed a scan since `last`.
pub fn scheduler_stalled(last: u64, now: u64, interval: u64) -> Option<NewAlert> {
    if now.saturating_sub(last) <= 2 * interval {
        return None;
    }
    let msg = format!("SCHEDULER STALLED: no alert scan has completed for {}", format_secs(now - last));
    let key = [b"stalled".as_slice(), &last.to_be_bytes()].concat();
    Some(general(AlertKind::SchedulerStalled { last_scan: last }, key, msg, now))
}

/// A storage problem (disk full, chunks missing), one alert per `key`.
pub fn storage(message: &str, key: &str, now: u64) -> NewAlert {
    let kind = AlertKind::Storage { reason: message.to_owned() };
    general(kind, [b"storage:".as_slice(), key.as_bytes()].concat(), message.to_owned(), now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::lifecycle::tests::{sealed, user};
    use crate::core::lifecycle::{accept_receipt, create};

    #[test]
    fn overdue_escalates_level_by_level_and_stops_when_acknowledged() {
        let t = sealed();
        let OnDue::Raise(a, next) = on_due(&t, Due::Overdue(0), 600, &[100, 200], 50) else { panic!("no alert") };
        assert!(a.info.message.starts_with("OVERDUE: "), "{}", a.info.message);
        assert_eq!(next, Some((600, Due::Overdue(1))));
        let OnDue::Raise(a, next) = on_due(&t, Due::Overdue(2), 800, &[100, 200], 50) else { panic!("no alert") };
        assert!(a.info.message.starts_with("ESCALATION 2: "));
        assert_eq!(next, None, "escalated past the last level");
        let mut done = t;
        for u in ["bob", "carol"] {
            let r = exhibit_proto::AcceptedReceipt {
                receipt: exhibit_proto::SignedReceipt { bytes: vec![], signature: vec![] },
                accepted_at: 1,
                server_signature: vec![],
            };
            accept_receipt(&mut done, &user(u), &r, None);
        }
        assert_eq!(on_due(&done, Due::Overdue(0), 600, &[], 50), OnDue::Nothing);
    }

    #[test]
    fn a_stall_alert_only_while_uploading_then_given_up_and_expiry_never_for_an_upload() {
        let up = create(user("alice"), exhibit_proto::TransferId([1; 16]), vec![user("bob")], 0);
        let OnDue::Raise(_, next) = on_due(&up, Due::Stalled, 7200, &[], 50) else { panic!("no stall alert") };
        assert_eq!(next, Some((7250, Due::Abandon)), "given up the grace after the alert");
        assert_eq!(on_due(&up, Due::Abandon, 7250, &[], 50), OnDue::Abandon);
        assert_eq!(on_due(&sealed(), Due::Abandon, 7250, &[], 50), OnDue::Nothing, "sealed in the grace");
        assert_eq!(on_due(&sealed(), Due::Stalled, 7200, &[], 50), OnDue::Nothing);
        assert_eq!(on_due(&up, Due::Expire, 7200, &[], 50), OnDue::Nothing);
        assert_eq!(on_due(&sealed(), Due::Expire, 7200, &[], 50), OnDue::Expire);
    }

    #[test]
    fn the_watchdog_alarms_only_past_twice_the_interval() {
        assert!(scheduler_stalled(100, 160, 30).is_none());
        assert!(scheduler_stalled(100, 161, 30).is_some());
    }
}
