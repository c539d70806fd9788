//! Who may see or do what, and the bounds on what they send.

use exhibit_proto::directory::Role;
use exhibit_proto::frame::{DeliveryState, TransferState};
use exhibit_proto::text::{self, Field};
use exhibit_proto::{limits, Manifest, ProtoError, TransferId, UserId};

use exhibit_proto::case::CaseInfo;
use exhibit_proto::labels::PolicySummary;

use crate::core::records::{OrgRecord, TransferRecord, UserRecord};
use crate::error::ServerError;

/// Only admins.
pub fn require_admin(caller: &UserRecord) -> Result<(), ServerError> {
    if caller.role == Role::Admin {
        Ok(())
    } else {
        Err(ServerError::Forbidden("only admins may do this".into()))
    }
}

/// The enrolled, unrevoked user behind a certificate (`None`: unknown).
pub fn authenticated(user: Option<UserRecord>) -> Result<UserRecord, ServerError> {
    match user {
        Some(u) if u.revoked_at.is_none() => Ok(u),
        Some(u) => Err(ServerError::Unauthenticated(format!("user {} has been revoked", u.user))),
        None => Err(ServerError::Unauthenticated("client certificate not recognised".into())),
    }
}

/// A sealed (or since revoked or expired) transfer the caller may see, or
/// "not found or not yours" (the same words: no one learns it exists).
/// Its sender and approvers see it once sealed; its recipients only once
/// it is released (at once, or on a disclosure approver's approval).
pub fn visible(rec: Option<TransferRecord>, caller: &UserId, id: &TransferId) -> Result<TransferRecord, ServerError> {
    match rec {
        Some(t)
            if t.state != TransferState::Uploading
                && (&t.sender == caller || t.is_approver(caller) || (t.is_recipient(caller) && released(&t))) =>
        {
            Ok(t)
        }
        _ => Err(ServerError::NotFound(format!("transfer {id}"))),
    }
}

/// Whether recipients may see it: sealed, and approved if it needed it.
pub fn released(t: &TransferRecord) -> bool {
    t.sealed_at.is_some() && (t.approvers.is_empty() || t.decision.as_ref().is_some_and(|d| d.approved))
}

/// The disclosure rules for a new transfer from `sender` to `recipients`
/// (each with its organisation, `None` if it has no record: treated as
/// external), declaring `policy` and naming `approvers` (each with their
/// record). Returns whether it goes outside police and CPS (and so waits
/// for an approval).
pub fn check_disclosure(
    sender: &UserRecord,
    recipients: &[(UserRecord, Option<OrgRecord>)],
    policy: Option<&PolicySummary>,
    approvers: &[(UserId, Option<UserRecord>)],
    case: Option<(&str, Option<&CaseInfo>)>,
) -> Result<bool, ServerError> {
    let external: Vec<String> = recipients
        .iter()
        .filter(|(_, o)| o.as_ref().is_none_or(|o| o.org.kind.is_external()))
        .map(|(u, o)| match o {
            Some(o) => format!("{} ({}, {})", u.user, o.org.name, o.org.kind),
            None => format!("{} (organisation {} has no record)", u.user, u.org),
        })
        .collect();
    if external.is_empty() {
        if !approvers.is_empty() {
            return Err(ServerError::BadRequest(
                "approvers are named only for a disclosure outside police and CPS".into(),
            ));
        }
        return Ok(false);
    }
    let to = external.join(", ");
    let Some(policy) = policy else {
        return Err(ServerError::Forbidden(format!(
            "refused: {to} is outside police and CPS, and the transfer carries no labels (update exhibit)"
        )));
    };
    if let Some(why) = policy.external_refusal() {
        return Err(ServerError::Forbidden(format!("refused: {to} is outside police and CPS, and {why}")));
    }
    let outside: Vec<&str> = recipients
        .iter()
        .filter(|(_, o)| o.as_ref().is_none_or(|o| o.org.kind.is_external()))
        .map(|(u, _)| u.org.as_str())
        .collect();
    check_roster(&outside, case)?;
    if approvers.is_empty() {
        return Err(ServerError::Forbidden(format!(
            "refused: a disclosure to {to} needs a disclosure approver of {} other than the sender",
            sender.org
        )));
    }
    for (id, rec) in approvers {
        check_approver(sender, id, rec.as_ref())?;
    }
    Ok(true)
}

/// Every organisation in `outside` (by id) must be on the roster of the
/// case the disclosure names.
pub fn check_roster(outside: &[&str], case: Option<(&str, Option<&CaseInfo>)>) -> Result<(), ServerError> {
    let Some(first) = outside.first() else { return Ok(()) };
    let Some((case, info)) = case else {
        return Err(ServerError::Forbidden(format!(
            "refused: a disclosure to {first}, outside police and CPS, must name its case (--case URN), \
             and the case's roster must list {first}"
        )));
    };
    let Some(info) = info else {
        return Err(ServerError::Forbidden(format!(
            "refused: case {case} has no roster, so nothing of it may go to {first}; a CPS caseworker or \
             disclosure approver opens it (exhibit case open {case}) and adds {first} (exhibit case allow {case} --org {first})"
        )));
    };
    let roster = info.roster_as_stored()?;
    if let Some(missing) = outside.iter().find(|o| !roster.iter().any(|e| e.org.as_str() == **o)) {
        return Err(ServerError::Forbidden(format!(
            "refused: {missing} is not on the roster of case {case}; a caseworker or disclosure approver of {} \
             (which keeps the case) can add it: exhibit case allow {case} --org {missing}",
            info.owner
        )));
    }
    Ok(())
}

/// May `caller` change the roster of a case kept by `owner` (their
/// organisation's caseworkers and disclosure approvers may)?
pub fn check_roster_keeper(caller: &UserRecord, owner: &str) -> Result<(), ServerError> {
    if caller.org != owner {
        return Err(ServerError::Forbidden(format!(
            "the roster of this case is kept by {owner}; only its caseworkers and disclosure approvers change it"
        )));
    }
    if !caller.has_role(Role::Caseworker) && !caller.has_role(Role::DisclosureApprover) {
        return Err(ServerError::Forbidden(
            "only caseworkers and disclosure approvers open cases and change rosters".into(),
        ));
    }
    Ok(())
}

/// May `id` (whose record is `rec`) approve what `sender` discloses?
pub fn check_approver(sender: &UserRecord, id: &UserId, rec: Option<&UserRecord>) -> Result<(), ServerError> {
    let Some(a) = rec.filter(|a| a.enrolled_at.is_some() && a.revoked_at.is_none()) else {
        return Err(ServerError::Forbidden(format!("approver {id} is not an enrolled, unrevoked user")));
    };
    if a.user == sender.user {
        return Err(ServerError::Forbidden("the sender cannot approve their own disclosure".into()));
    }
    if !a.has_role(Role::DisclosureApprover) {
        return Err(ServerError::Forbidden(format!("{id} is not a disclosure approver")));
    }
    if a.org != sender.org {
        return Err(ServerError::Forbidden(format!(
            "{id} approves for {}, not for the sender's organisation ({})",
            a.org, sender.org
        )));
    }
    Ok(())
}

/// As [`visible`], and admins see every sealed transfer (custody).
pub fn visible_or_admin(
    rec: Option<TransferRecord>,
    caller: &UserRecord,
    id: &TransferId,
) -> Result<TransferRecord, ServerError> {
    match rec {
        Some(t) if caller.role == Role::Admin && t.state != TransferState::Uploading => Ok(t),
        other => visible(other, &caller.user, id),
    }
}

/// A transfer whose evidence can still be fetched.
pub fn fetchable(t: TransferRecord) -> Result<TransferRecord, ServerError> {
    match (t.state, t.ended_at) {
        (TransferState::Refused, _) => {
            let d = t.decision.as_ref();
            Err(ServerError::Conflict(format!(
                "transfer {} was refused by disclosure approver {}: {}",
                t.transfer,
                d.map_or("-", |d| d.by.as_str()),
                d.and_then(|d| d.reason.as_deref()).unwrap_or("-")
            )))
        }
        (TransferState::Revoked, at) => Err(ServerError::Conflict(format!(
            "transfer {} was revoked by its sender at {}",
            t.transfer,
            at.unwrap_or(0)
        ))),
        (TransferState::Expired, at) if t.access_until.is_some_and(|u| Some(u) <= at) => {
            Err(ServerError::Conflict(format!(
                "transfer {} expired at {}: its recipients' access had ended, and its evidence was deleted",
                t.transfer,
                at.unwrap_or(0)
            )))
        }
        (TransferState::Expired, at) => Err(ServerError::Conflict(format!(
            "transfer {} expired at {}: its evidence was deleted after the retention period",
            t.transfer,
            at.unwrap_or(0)
        ))),
        _ => Ok(t),
    }
}

/// The caller's own transfer, still uploading.
pub fn own_upload(
    rec: Option<TransferRecord>,
    caller: &UserId,
    id: &TransferId,
) -> Result<TransferRecord, ServerError> {
    match rec {
        Some(t) if &t.sender == caller && t.state == TransferState::Uploading => Ok(t),
        Some(t) if &t.sender == caller => {
            Err(ServerError::Conflict(format!("transfer {id} is sealed; no more chunks")))
        }
        _ => Err(ServerError::NotFound(format!("transfer {id}"))),
    }
}

/// Sealed, past its deadline, and not acknowledged by everyone.
pub fn is_overdue(t: &TransferRecord, now: u64) -> bool {
    t.state == TransferState::Sealed
        && t.deadline.is_some_and(|d| d <= now)
        && t.recipients.iter().any(|r| r.state != DeliveryState::Acknowledged)
}

/// Would `len` more bytes take a transfer past `max_transfer`, or its
/// sender (who has `used` stored) past `quota`? Checked before a chunk is
/// read and again inside the transaction that records it.
pub fn check_limits(
    transfer_bytes: u64,
    used: u64,
    len: u32,
    max_transfer: u64,
    quota: Option<u64>,
) -> Result<(), ServerError> {
    let too_large = |what, got, max| ServerError::Proto(ProtoError::TooLarge { what, got, max });
    let after = transfer_bytes + u64::from(len);
    if after > max_transfer {
        return Err(too_large("transfer (max_transfer_size)", after, max_transfer));
    }
    if let Some(q) = quota {
        if used + u64::from(len) > q {
            return Err(too_large("your stored evidence (user_quota)", used + u64::from(len), q));
        }
    }
    Ok(())
}

/// A new transfer's recipient list: 1 to MAX_RECIPIENTS, none twice.
pub fn check_recipient_list(recipients: &[UserId]) -> Result<(), ServerError> {
    if recipients.is_empty() || recipients.len() > limits::MAX_RECIPIENTS {
        return Err(ServerError::BadRequest(format!("1 to {} recipients", limits::MAX_RECIPIENTS)));
    }
    let mut sorted = recipients.to_vec();
    sorted.sort();
    sorted.dedup();
    if sorted.len() != recipients.len() {
        return Err(ServerError::BadRequest("a recipient is named twice".into()));
    }
    Ok(())
}

/// A recipient must be enrolled and not revoked.
pub fn check_recipient(id: &UserId, rec: Option<&UserRecord>) -> Result<(), ServerError> {
    match rec {
        Some(u) if u.enrolled_at.is_some() && u.revoked_at.is_none() => Ok(()),
        Some(u) if u.revoked_at.is_some() => Err(ServerError::BadRequest(format!("recipient {id} has been revoked"))),
        _ => Err(ServerError::NotFound(format!("recipient {id}"))),
    }
}

/// A new user's particulars.
pub fn check_new_user(display_name: &str, org: &str, email: Option<&str>) -> Result<(), ServerError> {
    if let Some(e) = email {
        let ok = e.len() <= 254 && e.contains('@') && !e.chars().any(|c| c.is_whitespace() || c.is_control());
        if !ok {
            return Err(ServerError::BadRequest(format!("{e:?} is not an e-mail address")));
        }
    }
    for (what, v) in [("display name", display_name), ("organisation", org)] {
        if v.len() > 200 || v.chars().any(char::is_control) {
            return Err(ServerError::BadRequest(format!("{what} must be at most 200 printable characters")));
        }
    }
    text::check(Field::DisplayName, display_name).map_err(ProtoError::from)?;
    text::check(Field::Organisation, org).map_err(ProtoError::from)?;
    Ok(())
}

/// A manifest's shown text: its case reference keeps the text rule. (Only
/// at seal: a manifest already stored is served as it was signed.)
pub fn check_manifest_text(m: &Manifest) -> Result<(), ServerError> {
    text::check_opt(Field::CaseRef, m.case_ref.as_deref()).map_err(ProtoError::from)?;
    Ok(())
}

/// An age X25519 recipient, as enrolment takes it.
pub fn check_age_recipient(r: &str) -> Result<(), ServerError> {
    const BECH32: &str = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    let ok = r.len() == 62 && r.starts_with("age1") && r[4..].chars().all(|c| BECH32.contains(c));
    if ok {
        Ok(())
    } else {
        Err(ServerError::BadRequest("age recipient must be an age1… X25519 recipient".into()))
    }
}

/// Why a disclosure approver refuses a transfer.
pub fn check_reason(reason: &str) -> Result<(), ServerError> {
    if reason.trim().is_empty() || reason.len() > limits::MAX_TEXT {
        return Err(ServerError::BadRequest("a reason (1 to 4096 bytes) is required".into()));
    }
    text::check(Field::Reason, reason).map_err(ProtoError::from)?;
    Ok(())
}

/// The note an alert is acknowledged with.
pub fn check_ack_note(note: &str) -> Result<(), ServerError> {
    if note.trim().is_empty() || note.len() > limits::MAX_TEXT {
        return Err(ServerError::BadRequest("a note (1 to 4096 bytes) is required".into()));
    }
    text::check(Field::AckNote, note).map_err(ProtoError::from)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::lifecycle::tests::{sealed, user};

    #[test]
    fn only_parties_see_a_sealed_transfer_and_nobody_an_upload() {
        let t = sealed();
        let id = t.transfer;
        assert!(visible(Some(t.clone()), &user("alice"), &id).is_ok());
        assert!(visible(Some(t.clone()), &user("bob"), &id).is_ok());
        let e = visible(Some(t.clone()), &user("mallory"), &id).unwrap_err();
        assert_eq!(e.to_string(), visible(None, &user("mallory"), &id).unwrap_err().to_string());
        let mut up = t;
        up.state = TransferState::Uploading;
        assert!(visible(Some(up), &user("alice"), &id).is_err());
    }

    #[test]
    fn limits_refuse_one_byte_over() {
        assert!(check_limits(90, 0, 10, 100, None).is_ok());
        assert!(check_limits(91, 0, 10, 100, None).is_err());
        assert!(check_limits(0, 990, 10, 100, Some(1000)).is_ok());
        assert!(check_limits(0, 991, 10, 100, Some(1000)).is_err());
    }

    #[test]
    fn shown_text_keeps_the_text_rule() {
        assert!(check_new_user("Bob\u{1b}[2J", "Met", None).is_err());
        assert!(check_new_user("Bob", "Met\u{202e}", None).unwrap_err().to_string().contains("U+202E"));
        assert!(check_new_user("Bob Smith", "Metropolitan Police", None).is_ok());
        assert!(check_ack_note("checked\nwith the sender").is_ok());
        assert!(check_ack_note("ok\r\u{1b}[2J").unwrap_err().to_string().contains("acknowledgement note"));
    }

    #[test]
    fn recipient_lists_are_bounded_and_without_repeats() {
        assert!(check_recipient_list(&[]).is_err());
        assert!(check_recipient_list(&[user("bob"), user("bob")]).is_err());
        assert!(check_recipient_list(&[user("bob"), user("carol")]).is_ok());
    }
}
