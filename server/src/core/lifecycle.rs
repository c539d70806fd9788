//! A transfer's life: created (uploading) → sealed → each recipient
//! delivered → acknowledged; or revoked by its sender; then expired once
//! retention is over. Each transition checks it is allowed, changes the
//! record, and returns what else must happen in the same transaction.

use exhibit_proto::approval::SignedApproval;
use exhibit_proto::duration::format_secs;
use exhibit_proto::frame::{Decision, DeliveryState, TransferState};
use exhibit_proto::labels::PolicySummary;
use exhibit_proto::manifest::DerivedFrom;
use exhibit_proto::{AcceptedReceipt, UserId};

use crate::core::policy;
use crate::core::records::{Due, Ev, RecipientRecord, TransferRecord};
use crate::error::ServerError;

/// What a transition asks the store to do besides saving the record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Append to the audit log.
    Audit(Ev),
    /// Put this transfer on the deadline index.
    Schedule { at: u64, due: Due },
    /// Add this transfer to a recipient's inbox.
    Inbox(UserId),
    /// Change a user's stored bytes.
    Usage { user: UserId, delta: i64 },
    /// Add this transfer to a disclosure approver's queue.
    ApprovalQueue(UserId),
    /// Close the transfer's open alerts that `why` answers (each closing
    /// audited).
    Resolve { at: u64, why: Resolved },
}

/// What answered a transfer's alerts, so they close themselves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolved {
    /// Sealed: not a stalled upload any more.
    Sealed,
    /// A disclosure approver decided: not awaiting approval any more.
    Decided,
    /// Every recipient acknowledged: not overdue any more.
    Acknowledged,
    /// Revoked, refused or expired: nothing is owed any more.
    Ended,
}

impl Resolved {
    /// Whether the transfer's overdue alerts close.
    pub fn closes_overdue(self) -> bool {
        matches!(self, Resolved::Acknowledged | Resolved::Ended)
    }

    /// The dedup-key suffixes of its other alerts that close (stalled
    /// upload `s`, awaiting approval `a`; see `core::alerts`).
    pub fn suffixes(self) -> &'static [&'static [u8]] {
        match self {
            Resolved::Sealed => &[b"s"],
            Resolved::Decided => &[b"a"],
            Resolved::Acknowledged => &[],
            Resolved::Ended => &[b"s", b"a"],
        }
    }

    /// In words, for the alert's closing note.
    pub fn note(self) -> &'static str {
        match self {
            Resolved::Sealed => "resolved: the upload was sealed",
            Resolved::Decided => "resolved: a disclosure approver decided",
            Resolved::Acknowledged => "resolved: every recipient acknowledged",
            Resolved::Ended => "resolved: the transfer ended (revoked, refused or expired)",
        }
    }
}

/// A new transfer, uploading; `stall_at` is when to alert if it is still
/// not sealed.
pub fn create(
    sender: UserId,
    transfer: exhibit_proto::TransferId,
    recipients: Vec<UserId>,
    now: u64,
) -> TransferRecord {
    TransferRecord {
        transfer,
        sender,
        recipients: recipients
            .into_iter()
            .map(|user| RecipientRecord { user, state: DeliveryState::Pending, at: None, fetched: 0 })
            .collect(),
        state: TransferState::Uploading,
        created_at: now,
        sealed_at: None,
        deadline: None,
        case_ref: None,
        items: 0,
        bytes: 0,
        chunks: 0,
        ended_at: None,
        approvers: vec![],
        policy: None,
        decision: None,
        approval: None,
        expires_secs: None,
        access_until: None,
        derived_from: None,
        onward: vec![],
    }
}

/// Approval time: sealed transfers to an external organisation wait for a
/// disclosure approver until `approve_by` (then an alert).
pub fn with_disclosure(
    mut rec: TransferRecord,
    policy: Option<PolicySummary>,
    approvers: Vec<UserId>,
) -> TransferRecord {
    rec.policy = policy;
    rec.approvers = approvers;
    rec
}

/// The effects of creating `rec`.
pub fn created(rec: &TransferRecord, stall_at: u64) -> Vec<Effect> {
    let to: Vec<&str> = rec.recipients.iter().map(|r| r.user.as_str()).collect();
    vec![
        Effect::Audit(
            Ev::new(rec.created_at, &rec.sender, "create", rec.transfer).details(format!("to {}", to.join(", "))),
        ),
        Effect::Schedule { at: stall_at, due: Due::Stalled },
    ]
}

/// A new chunk of `len` bytes joins an upload (re-checked inside the
/// transaction: a seal may have committed while it was arriving).
pub fn add_chunk(
    rec: &mut TransferRecord,
    len: u32,
    used: u64,
    max_transfer: u64,
    quota: Option<u64>,
) -> Result<Vec<Effect>, ServerError> {
    if rec.state != TransferState::Uploading {
        return Err(ServerError::Conflict(format!("transfer {} is no longer uploading", rec.transfer)));
    }
    policy::check_limits(rec.bytes, used, len, max_transfer, quota)?;
    rec.bytes += u64::from(len);
    Ok(vec![Effect::Usage { user: rec.sender.clone(), delta: i64::from(len) }])
}

/// What a verified manifest says, as sealing needs it.
#[derive(Clone, Debug)]
pub struct Sealing {
    /// BLAKE3 of the signed manifest.
    pub manifest_hash: [u8; 32],
    /// Chunks it lists (content and details).
    pub chunks: u32,
    /// Their ciphertext bytes.
    pub bytes: u64,
    /// Files, if the manifest says (version 1).
    pub items: Option<u64>,
    /// Case reference.
    pub case_ref: Option<String>,
    /// The labels summary it declares.
    pub policy: Option<PolicySummary>,
    /// The approvers it names.
    pub approvers: Vec<UserId>,
}

/// May this transfer be sealed?
pub fn can_seal(rec: &TransferRecord) -> Result<(), ServerError> {
    if rec.state != TransferState::Uploading {
        return Err(ServerError::Conflict(format!("transfer {} is already sealed", rec.transfer)));
    }
    Ok(())
}

/// Seal: every recipient can now fetch it, and it is due by `deadline`;
/// or, to an external organisation, it waits for a disclosure approver
/// (alerting at `approve_by`), and the deadline starts on approval.
pub fn seal(
    rec: &mut TransferRecord,
    m: &Sealing,
    now: u64,
    deadline: u64,
    approve_by: u64,
) -> Result<Vec<Effect>, ServerError> {
    can_seal(rec)?;
    // A transfer created without a summary (by a client from before
    // labels, resuming) was checked as internal; it takes the manifest's.
    if (rec.policy.is_some() && m.policy != rec.policy) || m.approvers != rec.approvers {
        return Err(ServerError::BadRequest(
            "the manifest's labels summary or approvers differ from those the transfer was created with".into(),
        ));
    }
    if rec.case_ref.is_some() && m.case_ref != rec.case_ref {
        return Err(ServerError::BadRequest(
            "the manifest's case reference differs from the one the transfer was created with".into(),
        ));
    }
    rec.policy = m.policy;
    let uploaded = rec.bytes;
    let waits = !rec.approvers.is_empty();
    rec.state = if waits { TransferState::AwaitingApproval } else { TransferState::Sealed };
    rec.sealed_at = Some(now);
    rec.deadline = (!waits).then_some(deadline);
    rec.case_ref = m.case_ref.clone();
    // Version 2 manifests seal how many files there are: 0 here.
    rec.items = m.items.unwrap_or(0) as u32;
    rec.chunks = m.chunks;
    rec.bytes = m.bytes;
    if !waits {
        for r in &mut rec.recipients {
            r.state = DeliveryState::Sealed;
            r.at = Some(now);
        }
    }
    let items = match m.items {
        Some(n) => format!("{n} items"),
        None => "items sealed".to_owned(),
    };
    let mut out = vec![
        Effect::Resolve { at: now, why: Resolved::Sealed },
        Effect::Usage { user: rec.sender.clone(), delta: rec.bytes as i64 - uploaded as i64 },
        Effect::Audit(
            Ev::new(now, &rec.sender, "upload-complete", rec.transfer)
                .details(format!("{} chunks, {} bytes of ciphertext, each verified on arrival", rec.chunks, rec.bytes)),
        ),
    ];
    if waits {
        let approvers: Vec<&str> = rec.approvers.iter().map(UserId::as_str).collect();
        out.push(Effect::Audit(Ev::new(now, &rec.sender, "seal", rec.transfer).details(format!(
            "manifest {}, {items}, case {}, to an external organisation: awaiting approval by one of {}",
            hex::encode(m.manifest_hash),
            rec.case_ref.as_deref().unwrap_or("-"),
            approvers.join(", ")
        ))));
        out.extend(rec.approvers.iter().map(|a| Effect::ApprovalQueue(a.clone())));
        out.push(Effect::Schedule { at: approve_by, due: Due::Approval });
        return Ok(out);
    }
    out.push(Effect::Audit(Ev::new(now, &rec.sender, "seal", rec.transfer).details(format!(
        "manifest {}, {items}, case {}, deadline {deadline}",
        hex::encode(m.manifest_hash),
        rec.case_ref.as_deref().unwrap_or("-")
    ))));
    out.extend(release(rec, now, deadline));
    Ok(out)
}

/// Every recipient can now fetch it, and it is due by `deadline`; with an
/// access period, until then.
fn release(rec: &mut TransferRecord, now: u64, deadline: u64) -> Vec<Effect> {
    rec.state = TransferState::Sealed;
    rec.deadline = Some(deadline);
    for r in &mut rec.recipients {
        r.state = DeliveryState::Sealed;
        r.at = Some(now);
    }
    let mut out: Vec<Effect> = rec.recipients.iter().map(|r| Effect::Inbox(r.user.clone())).collect();
    out.push(Effect::Schedule { at: deadline, due: Due::Overdue(0) });
    if let Some(secs) = rec.expires_secs {
        let until = now.saturating_add(secs);
        rec.access_until = Some(until);
        out.push(Effect::Schedule { at: until, due: Due::Expire });
        out.push(Effect::Audit(
            Ev::new(now, "exhibitd", "access-period", rec.transfer)
                .details(format!("recipients' access ends at {until} ({} after release)", format_secs(secs))),
        ));
    }
    out
}

/// `fwd` (sealed) forwards material of `src` as `df` says: `src` links to
/// it, and its audit trail says where its material went.
pub fn forwarded(src: &mut TransferRecord, fwd: &TransferRecord, df: &DerivedFrom, now: u64) -> Vec<Effect> {
    if !src.onward.contains(&fwd.transfer) {
        src.onward.push(fwd.transfer);
    }
    let to: Vec<&str> = fwd.recipients.iter().map(|r| r.user.as_str()).collect();
    let redacted = match df.redacted.len() {
        0 => String::new(),
        n => format!(", {n} as redacted versions"),
    };
    vec![Effect::Audit(Ev::new(now, &fwd.sender, "forward", src.transfer).details(format!(
        "{} items forwarded as transfer {} to {}{redacted}{}",
        df.count(),
        fwd.transfer,
        to.join(", "),
        if fwd.approvers.is_empty() { "" } else { ", awaiting a disclosure approver" }
    )))]
}

/// The sender extends recipients' access by `secs`.
pub fn extend(rec: &mut TransferRecord, by: &UserId, secs: u64, now: u64) -> Result<Vec<Effect>, ServerError> {
    if &rec.sender != by {
        return Err(ServerError::NotFound(format!("transfer {}", rec.transfer)));
    }
    if secs == 0 {
        return Err(ServerError::BadRequest("extend by more than 0 seconds".into()));
    }
    match (rec.state, rec.expires_secs) {
        (_, None) => {
            return Err(ServerError::Conflict(format!(
                "transfer {}: its recipients' access does not end",
                rec.transfer
            )))
        }
        (TransferState::AwaitingApproval, Some(e)) => {
            rec.expires_secs = Some(e.saturating_add(secs));
            return Ok(vec![Effect::Audit(
                Ev::new(now, by, "extend-access", rec.transfer)
                    .details(format!("access period now {} after release", format_secs(e.saturating_add(secs)))),
            )]);
        }
        (TransferState::Sealed, Some(_)) => {}
        (s, _) => {
            return Err(ServerError::Conflict(format!(
                "transfer {} is {}; access cannot be extended",
                rec.transfer,
                s.as_str()
            )))
        }
    }
    let until = rec.access_until.unwrap_or(now).saturating_add(secs);
    rec.access_until = Some(until);
    Ok(vec![
        Effect::Schedule { at: until, due: Due::Expire },
        Effect::Audit(
            Ev::new(now, by, "extend-access", rec.transfer)
                .details(format!("recipients' access extended by {} to {until}", format_secs(secs))),
        ),
    ])
}

/// May `by` decide on this transfer now?
fn can_decide(rec: &TransferRecord, by: &UserId) -> Result<(), ServerError> {
    if &rec.sender == by {
        return Err(ServerError::Forbidden("the sender cannot approve or refuse their own disclosure".into()));
    }
    if !rec.is_approver(by) {
        return Err(ServerError::NotFound(format!("transfer {} awaiting your approval", rec.transfer)));
    }
    match rec.state {
        TransferState::AwaitingApproval => Ok(()),
        TransferState::Refused => Err(ServerError::Conflict(format!("transfer {} was refused", rec.transfer))),
        TransferState::Sealed | TransferState::Expired if rec.decision.is_some() => {
            Err(ServerError::Conflict(format!("transfer {} was already approved", rec.transfer)))
        }
        s => Err(ServerError::Conflict(format!("transfer {} is {}, not awaiting approval", rec.transfer, s.as_str()))),
    }
}

/// A disclosure approver's verified approval (`approval`, its summary in
/// `what`) releases it to the recipients, due by `deadline`.
pub fn approve(
    rec: &mut TransferRecord,
    by: &UserId,
    approval: SignedApproval,
    what: &str,
    now: u64,
    deadline: u64,
) -> Result<Vec<Effect>, ServerError> {
    can_decide(rec, by)?;
    rec.decision = Some(Decision { approved: true, by: by.clone(), at: now, reason: None });
    rec.approval = Some(approval);
    let to: Vec<&str> = rec.recipients.iter().map(|r| r.user.as_str()).collect();
    let mut out = vec![Effect::Audit(
        Ev::new(now, by, "approve", rec.transfer)
            .details(format!("disclosure to {} approved ({what}); released, deadline {deadline}", to.join(", "))),
    )];
    out.push(Effect::Resolve { at: now, why: Resolved::Decided });
    out.extend(release(rec, now, deadline));
    Ok(out)
}

/// A disclosure approver refuses it: never released; its chunks go when
/// retention (`expire_at`) allows.
pub fn refuse(
    rec: &mut TransferRecord,
    by: &UserId,
    reason: &str,
    now: u64,
    expire_at: Option<u64>,
) -> Result<Vec<Effect>, ServerError> {
    can_decide(rec, by)?;
    rec.state = TransferState::Refused;
    rec.ended_at = Some(now);
    rec.decision = Some(Decision { approved: false, by: by.clone(), at: now, reason: Some(reason.to_owned()) });
    let mut out = vec![
        Effect::Audit(Ev::new(now, by, "refuse", rec.transfer).details(format!("disclosure refused: {reason}"))),
        Effect::Resolve { at: now, why: Resolved::Ended },
    ];
    if let Some(at) = expire_at {
        out.push(Effect::Schedule { at, due: Due::Expire });
    }
    Ok(out)
}

/// A recipient fetched a chunk (`new_chunk`: one they had not before), or
/// read the manifest of a transfer with no chunks. With every chunk they
/// become delivered.
pub fn record_fetch(rec: &mut TransferRecord, recipient: &UserId, new_chunk: bool, now: u64) -> Vec<Effect> {
    let total = rec.chunks;
    let Some(r) = rec.recipients.iter_mut().find(|r| &r.user == recipient) else { return vec![] };
    if new_chunk {
        r.fetched += 1;
    }
    // Damaged: a chunk was refused them, and has been restored since.
    if r.fetched >= total && matches!(r.state, DeliveryState::Sealed | DeliveryState::Damaged) {
        r.state = DeliveryState::Delivered;
        r.at = Some(now);
        return vec![Effect::Audit(
            Ev::new(now, recipient, "fetch", rec.transfer).details(format!("all {total} chunks downloaded")),
        )];
    }
    vec![]
}

/// A recipient's receipt is accepted: they have acknowledged it. With
/// everyone's, retention (if any) starts.
pub fn accept_receipt(
    rec: &mut TransferRecord,
    recipient: &UserId,
    accepted: &AcceptedReceipt,
    retain: Option<u64>,
) -> Vec<Effect> {
    let now = accepted.accepted_at;
    // A receipt for some of the items may be followed by another (the
    // recipient fetched more): acknowledged once, by the first.
    let before = rec.recipients.iter().all(|r| r.state == DeliveryState::Acknowledged);
    if let Some(r) = rec.recipients.iter_mut().find(|r| &r.user == recipient) {
        if r.state != DeliveryState::Acknowledged {
            r.state = DeliveryState::Acknowledged;
            r.at = Some(now);
        }
    }
    let mut out = vec![Effect::Audit(Ev::new(now, recipient, "receipt-accepted", rec.transfer).details(format!(
        "receipt signed by {recipient}{}, countersigned at {now}; signature {}",
        some_items(accepted),
        hex::encode(&accepted.receipt.signature)
    )))];
    let all = rec.recipients.iter().all(|r| r.state == DeliveryState::Acknowledged);
    if all && !before {
        out.push(Effect::Resolve { at: now, why: Resolved::Acknowledged });
    }
    if let (true, false, Some(secs)) = (all, before, retain) {
        out.push(Effect::Schedule { at: now.saturating_add(secs), due: Due::Expire });
    }
    out
}

/// " for 3 of 120 items" when the receipt is for some of the items only.
fn some_items(accepted: &AcceptedReceipt) -> String {
    accepted.receipt.subset().map_or_else(String::new, |s| format!(" for {}", s.describe()))
}

/// Accept a member's receipt for a unit the transfer is addressed to: the
/// unit is acknowledged once its rule is `met` (one member, or all).
pub fn accept_unit_receipt(
    rec: &mut TransferRecord,
    unit: &UserId,
    member: &UserId,
    accepted: &AcceptedReceipt,
    met: bool,
    retain: Option<u64>,
) -> Vec<Effect> {
    let now = accepted.accepted_at;
    let before = rec.recipients.iter().all(|r| r.state == DeliveryState::Acknowledged);
    let done = met && rec.recipients.iter().any(|r| &r.user == unit && r.state != DeliveryState::Acknowledged);
    if let Some(r) = rec.recipients.iter_mut().find(|r| &r.user == unit).filter(|_| done) {
        r.state = DeliveryState::Acknowledged;
        r.at = Some(now);
    }
    let mut out = vec![Effect::Audit(Ev::new(now, member, "receipt-accepted", rec.transfer).details(format!(
        "receipt signed by {member} for unit {unit}{}{}, countersigned at {now}; signature {}",
        some_items(accepted),
        if done { " (the unit's acknowledgement)" } else { "" },
        hex::encode(&accepted.receipt.signature)
    )))];
    let all = rec.recipients.iter().all(|r| r.state == DeliveryState::Acknowledged);
    if all && !before {
        out.push(Effect::Resolve { at: now, why: Resolved::Acknowledged });
    }
    if let (true, false, Some(secs)) = (all, before, retain) {
        out.push(Effect::Schedule { at: now.saturating_add(secs), due: Due::Expire });
    }
    out
}

/// Revoke on the sender's word. Returns the recipients who had already
/// fetched it.
pub fn revoke(
    rec: &mut TransferRecord,
    by: &UserId,
    now: u64,
    expire_at: Option<u64>,
) -> Result<(Vec<RecipientRecord>, Vec<Effect>), ServerError> {
    if &rec.sender != by {
        return Err(ServerError::NotFound(format!("transfer {}", rec.transfer)));
    }
    match rec.state {
        TransferState::Uploading | TransferState::Sealed | TransferState::AwaitingApproval => {}
        TransferState::Revoked => return Err(ServerError::Conflict("already revoked".into())),
        TransferState::Expired => return Err(ServerError::Conflict("already expired".into())),
        TransferState::Refused => return Err(ServerError::Conflict("refused by a disclosure approver".into())),
    }
    if rec.recipients.iter().all(|r| r.state == DeliveryState::Acknowledged) {
        return Err(ServerError::Conflict(
            "every recipient has already acknowledged it; there is nothing left to revoke".into(),
        ));
    }
    let already: Vec<RecipientRecord> = rec
        .recipients
        .iter()
        .filter(|r| matches!(r.state, DeliveryState::Delivered | DeliveryState::Acknowledged))
        .cloned()
        .collect();
    rec.state = TransferState::Revoked;
    rec.ended_at = Some(now);
    let fetched: Vec<String> =
        already.iter().map(|r| format!("{} ({} at {})", r.user, r.state.as_str(), r.at.unwrap_or(0))).collect();
    let mut out = vec![Effect::Audit(Ev::new(now, by, "revoke", rec.transfer).details(if fetched.is_empty() {
        "revoked before any recipient fetched it".to_owned()
    } else {
        format!("revoked; already fetched by {}", fetched.join(", "))
    }))];
    out.push(Effect::Resolve { at: now, why: Resolved::Ended });
    if let Some(at) = expire_at {
        out.push(Effect::Schedule { at, due: Due::Expire });
    }
    Ok((already, out))
}

/// An upload never sealed, `grace` past its stalled-upload alert: given up
/// by the server. Its `chunks` are dropped (those no other transfer needs)
/// and it ends as expired; its record and audit stay.
pub fn abandon(rec: &mut TransferRecord, chunks: usize, now: u64) -> Vec<Effect> {
    rec.state = TransferState::Expired;
    rec.ended_at = Some(now);
    vec![
        Effect::Resolve { at: now, why: Resolved::Ended },
        Effect::Usage { user: rec.sender.clone(), delta: -(rec.bytes as i64) },
        Effect::Audit(Ev::new(now, "exhibitd", "upload-abandoned", rec.transfer).details(format!(
            "never sealed, {} after it started: {chunks} chunks uploaded so far deleted (those no other transfer needs)",
            format_secs(now.saturating_sub(rec.created_at))
        ))),
    ]
}

/// Whether retention, or the end of recipients' access, can end a
/// transfer at `now` (acknowledged by all, revoked, refused, or access
/// over; not while an access period runs, which an extension may make
/// longer than the time this was scheduled for).
pub fn can_expire(rec: &TransferRecord, now: u64) -> bool {
    matches!(rec.state, TransferState::Sealed | TransferState::Revoked | TransferState::Refused)
        && rec.access_until.is_none_or(|a| a <= now)
}

/// Retention is over: its `chunks` are dropped; manifest, receipts and
/// audit stay.
pub fn expire(rec: &mut TransferRecord, chunks: usize, now: u64) -> Vec<Effect> {
    let access_over = rec.state == TransferState::Sealed && rec.access_until.is_some();
    rec.state = TransferState::Expired;
    rec.ended_at = Some(now);
    let (action, why) =
        if access_over { ("access-expired", "recipients' access is over") } else { ("expire", "retention over") };
    vec![
        Effect::Resolve { at: now, why: Resolved::Ended },
        Effect::Usage { user: rec.sender.clone(), delta: -(rec.bytes as i64) },
        Effect::Audit(Ev::new(now, "exhibitd", action, rec.transfer).details(format!(
            "{why}: {chunks} chunks deleted (those no other transfer needs); manifest, receipts and audit kept"
        ))),
    ]
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use exhibit_proto::TransferId;

    pub(crate) fn user(s: &str) -> UserId {
        UserId::new(s).unwrap()
    }

    fn upload() -> TransferRecord {
        create(user("alice"), TransferId([7; 16]), vec![user("bob"), user("carol")], 100)
    }

    fn sealing() -> Sealing {
        Sealing {
            manifest_hash: [1; 32],
            chunks: 2,
            bytes: 300,
            items: None,
            case_ref: Some("OP-1".into()),
            policy: None,
            approvers: vec![],
        }
    }

    pub(crate) fn sealed() -> TransferRecord {
        let mut t = upload();
        seal(&mut t, &sealing(), 200, 500, 900).unwrap();
        t
    }

    fn receipt(at: u64) -> AcceptedReceipt {
        AcceptedReceipt {
            receipt: exhibit_proto::SignedReceipt { bytes: vec![], signature: vec![9; 64] },
            accepted_at: at,
            server_signature: vec![],
        }
    }

    fn audits(effects: &[Effect]) -> Vec<&'static str> {
        effects.iter().filter_map(|e| if let Effect::Audit(ev) = e { Some(ev.action) } else { None }).collect()
    }

    #[test]
    fn creating_audits_and_schedules_the_stall_check() {
        let t = upload();
        let fx = created(&t, 160);
        assert_eq!(audits(&fx), ["create"]);
        assert!(fx.contains(&Effect::Schedule { at: 160, due: Due::Stalled }));
        assert!(t.recipients.iter().all(|r| r.state == DeliveryState::Pending));
    }

    #[test]
    fn chunks_join_only_an_upload_and_only_within_limits() {
        let mut t = upload();
        let fx = add_chunk(&mut t, 100, 0, 1000, None).unwrap();
        assert_eq!(t.bytes, 100);
        assert_eq!(fx, [Effect::Usage { user: user("alice"), delta: 100 }]);
        assert!(add_chunk(&mut t, 901, 0, 1000, None).is_err(), "over max_transfer");
        assert_eq!(t.bytes, 100, "a refused chunk changed the record");
        let mut s = sealed();
        assert!(matches!(add_chunk(&mut s, 1, 0, 1000, None), Err(ServerError::Conflict(_))));
    }

    #[test]
    fn sealing_opens_every_inbox_and_sets_the_deadline_once() {
        let mut t = upload();
        t.bytes = 350;
        let fx = seal(&mut t, &sealing(), 200, 500, 900).unwrap();
        assert_eq!(t.state, TransferState::Sealed);
        assert_eq!((t.sealed_at, t.deadline, t.bytes, t.chunks), (Some(200), Some(500), 300, 2));
        assert!(t.recipients.iter().all(|r| r.state == DeliveryState::Sealed));
        assert_eq!(audits(&fx), ["upload-complete", "seal"]);
        assert!(fx.contains(&Effect::Inbox(user("bob"))) && fx.contains(&Effect::Inbox(user("carol"))));
        assert!(fx.contains(&Effect::Schedule { at: 500, due: Due::Overdue(0) }));
        assert!(fx.contains(&Effect::Usage { user: user("alice"), delta: -50 }), "stray bytes not given back");
        assert!(matches!(seal(&mut t, &sealing(), 201, 501, 901), Err(ServerError::Conflict(_))), "sealed twice");
    }

    #[test]
    fn a_recipient_is_delivered_with_the_last_new_chunk_only() {
        let mut t = sealed();
        let bob = user("bob");
        assert!(record_fetch(&mut t, &bob, true, 300).is_empty());
        assert!(record_fetch(&mut t, &bob, false, 301).is_empty(), "a repeat counted");
        assert_eq!(audits(&record_fetch(&mut t, &bob, true, 302)), ["fetch"]);
        assert_eq!(t.recipients[0].state, DeliveryState::Delivered);
        assert!(record_fetch(&mut t, &user("mallory"), true, 303).is_empty());
        assert!(record_fetch(&mut t, &bob, true, 304).is_empty(), "delivered twice");
    }

    #[test]
    fn retention_starts_with_the_last_receipt() {
        let mut t = sealed();
        let fx = accept_receipt(&mut t, &user("bob"), &receipt(400), Some(1000));
        assert_eq!(audits(&fx), ["receipt-accepted"]);
        assert!(!fx.iter().any(|e| matches!(e, Effect::Schedule { .. })), "expiry before everyone acknowledged");
        let fx = accept_receipt(&mut t, &user("carol"), &receipt(450), Some(1000));
        assert!(fx.contains(&Effect::Schedule { at: 1450, due: Due::Expire }));
        assert!(t.waiting_for().is_empty());
        // A later receipt (for more of the items) is audited, and neither
        // moves the acknowledgement nor schedules the expiry again.
        let fx = accept_receipt(&mut t, &user("carol"), &receipt(600), Some(1000));
        assert_eq!(audits(&fx), ["receipt-accepted"]);
        assert_eq!(fx.len(), 1, "{fx:?}");
        assert_eq!(t.recipients[1].at, Some(450));
    }

    #[test]
    fn only_the_sender_revokes_and_only_what_is_not_all_acknowledged() {
        let mut t = sealed();
        assert!(matches!(revoke(&mut t.clone(), &user("bob"), 300, None), Err(ServerError::NotFound(_))));
        record_fetch(&mut t, &user("bob"), true, 300);
        record_fetch(&mut t, &user("bob"), true, 301);
        let (already, fx) = revoke(&mut t, &user("alice"), 310, Some(900)).unwrap();
        assert_eq!(already.iter().map(|r| r.user.as_str()).collect::<Vec<_>>(), ["bob"]);
        assert_eq!(audits(&fx), ["revoke"]);
        assert!(fx.contains(&Effect::Schedule { at: 900, due: Due::Expire }));
        assert_eq!((t.state, t.ended_at), (TransferState::Revoked, Some(310)));
        assert!(matches!(revoke(&mut t, &user("alice"), 311, None), Err(ServerError::Conflict(_))));
        let mut done = sealed();
        accept_receipt(&mut done, &user("bob"), &receipt(400), None);
        accept_receipt(&mut done, &user("carol"), &receipt(400), None);
        assert!(matches!(revoke(&mut done, &user("alice"), 401, None), Err(ServerError::Conflict(_))));
    }

    #[test]
    fn expiry_ends_sealed_and_revoked_transfers_only() {
        assert!(!can_expire(&upload(), 0));
        let mut t = sealed();
        assert!(can_expire(&t, 0));
        let fx = expire(&mut t, 2, 900);
        assert_eq!(audits(&fx), ["expire"]);
        assert!(fx.contains(&Effect::Usage { user: user("alice"), delta: -300 }));
        assert!(!can_expire(&t, 0), "expired twice");
    }

    #[test]
    fn a_disclosure_waits_for_a_second_person_and_only_then_reaches_its_recipients() {
        let policy = Some(PolicySummary::default());
        let mut t = with_disclosure(upload(), policy, vec![user("dana")]);
        let mut m = sealing();
        // The manifest must declare what the transfer was created with.
        m.approvers = vec![user("dana")];
        assert!(seal(&mut t.clone(), &m, 200, 500, 900).is_err());
        m.policy = policy;
        m.approvers = vec![];
        assert!(seal(&mut t.clone(), &m, 200, 500, 900).is_err());
        m.approvers = vec![user("dana")];
        let fx = seal(&mut t, &m, 200, 500, 900).unwrap();
        assert_eq!(t.state, TransferState::AwaitingApproval);
        assert_eq!(t.deadline, None);
        assert!(!fx.iter().any(|e| matches!(e, Effect::Inbox(_))), "no recipient is told yet");
        assert!(fx.contains(&Effect::ApprovalQueue(user("dana"))));
        assert!(fx.contains(&Effect::Schedule { at: 900, due: Due::Approval }));
        assert!(!policy::released(&t));
        let signed = || SignedApproval { bytes: vec![], signature: vec![] };
        // The sender, and a user who is not a named approver, cannot decide.
        assert!(matches!(
            approve(&mut t.clone(), &user("alice"), signed(), "", 300, 800),
            Err(ServerError::Forbidden(_))
        ));
        assert!(approve(&mut t.clone(), &user("erin"), signed(), "", 300, 800).is_err());
        let mut refused = t.clone();
        let fx = refuse(&mut refused, &user("dana"), "not redacted enough", 300, Some(400)).unwrap();
        assert_eq!(audits(&fx), ["refuse"]);
        assert_eq!(refused.state, TransferState::Refused);
        assert!(can_expire(&refused, 0) && !policy::released(&refused));
        assert!(approve(&mut refused, &user("dana"), signed(), "", 301, 800).is_err(), "refused stays refused");
        let fx = approve(&mut t, &user("dana"), signed(), "labels ok", 300, 800).unwrap();
        assert_eq!(audits(&fx), ["approve"]);
        assert!(fx.contains(&Effect::Inbox(user("bob"))) && fx.contains(&Effect::Inbox(user("carol"))));
        assert!(fx.contains(&Effect::Schedule { at: 800, due: Due::Overdue(0) }));
        assert_eq!((t.state, t.deadline), (TransferState::Sealed, Some(800)));
        assert!(policy::released(&t));
        assert!(approve(&mut t, &user("dana"), signed(), "", 301, 800).is_err(), "approved once");
    }
}
