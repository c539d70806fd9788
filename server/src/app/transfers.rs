//! A transfer from creation to revocation: create, each chunk, seal, the
//! manifest and chunks a recipient fetches, and the sender's revocation.

use exhibit_proto::approval::SignedApproval;
use exhibit_proto::directory::SignedEntry;
use exhibit_proto::frame::DeliveryState;
use exhibit_proto::labels::PolicySummary;
use exhibit_proto::manifest::DerivedFrom;
use exhibit_proto::{ChunkId, Manifest, SignedManifest, TransferId, UserId};

use crate::app::orgs::org_of;
use crate::app::{apply, apply_signed, audit, users, write};
use crate::core::lifecycle::{self, Sealing};
use crate::core::policy::{self, fetchable, visible};
use crate::core::records::{Ev, RecipientRecord, TransferRecord};
use crate::error::ServerError;
use crate::meta::{Mailbox, Read};
use crate::state::State;

/// The approval that released a transfer, and its approver's entry.
pub type Approved = Option<(SignedApproval, SignedEntry)>;

/// What a new transfer declares about its content.
#[derive(Clone, Debug, Default)]
pub struct Disclosure {
    /// The labels summary.
    pub policy: Option<PolicySummary>,
    /// The disclosure approvers it is also sealed to.
    pub approvers: Vec<UserId>,
    /// The case it names (the manifest names the same).
    pub case: Option<String>,
    /// Recipients' access ends this long after release.
    pub expires_secs: Option<u64>,
    /// What it forwards, of a transfer the sender received.
    pub derived_from: Option<DerivedFrom>,
}

/// Start a transfer (uploading) to enrolled, unrevoked recipients, within
/// the disclosure rules: to an external organisation, only what the labels
/// allow, and only with approvers of the sender's organisation named.
pub fn create(
    s: &State,
    me: UserId,
    transfer: TransferId,
    recipients: Vec<UserId>,
    d: Disclosure,
    now: u64,
) -> Result<(), ServerError> {
    policy::check_recipient_list(&recipients)?;
    if d.approvers.len() + recipients.len() > exhibit_proto::limits::MAX_RECIPIENTS {
        return Err(ServerError::BadRequest("too many recipients and approvers".into()));
    }
    if let Some(c) = &d.case {
        exhibit_proto::case::check_case_ref(c)?;
    }
    if let Some(df) = &d.derived_from {
        df.check_bounds()?;
    }
    write(s, |tx| {
        let sender = tx.user(&me)?.ok_or_else(|| ServerError::NotFound(format!("user {me}")))?;
        if let Some(c) = &d.case {
            crate::app::cases::open_on_first_use(s, tx, &sender, c, now)?;
        }
        if let Some(df) = &d.derived_from {
            check_forward(tx, &me, df, d.case.as_deref())?;
        }
        crate::app::units::check_sendable(tx, &recipients)?;
        let external = check_disclosure(tx, &me, &recipients, d.policy.as_ref(), &d.approvers, d.case.as_deref())?;
        let expires_secs = match d.expires_secs {
            Some(0) => return Err(ServerError::BadRequest("access must last longer than 0 seconds".into())),
            Some(secs) => Some(secs),
            None if external => default_access(s, tx, &recipients)?,
            None => None,
        };
        let mut rec =
            lifecycle::with_disclosure(lifecycle::create(me, transfer, recipients, now), d.policy, d.approvers);
        rec.case_ref = d.case;
        rec.expires_secs = expires_secs;
        rec.derived_from = d.derived_from;
        tx.insert_transfer(&rec)?;
        tx.add_to_mailbox(Mailbox::Outbox, &rec.sender, &transfer)?;
        let fx = lifecycle::created(&rec, now.saturating_add(s.settings.stalled_upload_after));
        apply(s, tx, &transfer, fx)
    })
}

/// The disclosure rules for `sender` sending to `recipients` with `policy`
/// and `approvers`, on the records as they are now (run at create, again
/// at seal and at approval: an organisation's kind or a user may have
/// changed meanwhile). Returns whether it goes outside police and CPS.
pub fn check_disclosure(
    r: &dyn Read,
    sender: &UserId,
    recipients: &[UserId],
    policy: Option<&PolicySummary>,
    approvers: &[UserId],
    case: Option<&str>,
) -> Result<bool, ServerError> {
    let sender = r.user(sender)?.ok_or_else(|| ServerError::NotFound(format!("user {sender}")))?;
    let mut sorted = approvers.to_vec();
    sorted.sort();
    sorted.dedup();
    if sorted.len() != approvers.len() {
        return Err(ServerError::BadRequest("an approver is named twice".into()));
    }
    let mut parties = vec![];
    for id in recipients {
        let u = crate::app::units::party(r, id)?;
        policy::check_recipient(id, u.as_ref())?;
        if let Some(u) = u {
            let org = org_of(r, &u)?;
            parties.push((u, org));
        }
    }
    let approvers = approvers.iter().map(|a| Ok((a.clone(), r.user(a)?))).collect::<Result<Vec<_>, ServerError>>()?;
    let info = match case {
        Some(c) => r.case(c)?,
        None => None,
    };
    policy::check_disclosure(&sender, &parties, policy, &approvers, case.map(|c| (c, info.as_ref())))
}

/// A forward: of a transfer `me` received (a recipient it was released
/// to, who fetched it), still there to fetch, as its manifest is now, and
/// under the case it was sent under.
fn check_forward(r: &dyn Read, me: &UserId, df: &DerivedFrom, case: Option<&str>) -> Result<(), ServerError> {
    let id = df.transfer;
    let not_received =
        || ServerError::Forbidden(format!("refused: transfer {id} was not received by you, so you cannot forward it"));
    let src = match policy::visible(r.transfer(&id)?, me, &id) {
        Ok(t) if t.is_recipient(me) => t,
        _ => return Err(not_received()),
    };
    let received = src
        .recipients
        .iter()
        .any(|p| &p.user == me && matches!(p.state, DeliveryState::Delivered | DeliveryState::Acknowledged));
    if !received {
        return Err(ServerError::Forbidden(format!(
            "refused: you have not fetched transfer {id}; fetch it (and check it) before forwarding"
        )));
    }
    let src = fetchable(src)?;
    if manifest_of(r, &id)?.hash() != df.manifest_hash {
        return Err(ServerError::Forbidden(format!(
            "refused: the forward names a manifest of transfer {id} other than the one it was sent with"
        )));
    }
    if let Some(c) = &src.case_ref {
        if case != Some(c.as_str()) {
            return Err(ServerError::Forbidden(format!(
                "refused: transfer {id} is material of case {c}; a forward of it names the same case (--case {c})"
            )));
        }
    }
    Ok(())
}

/// The access period of a transfer to external `recipients` when its
/// sender names none: the shortest configured for their organisations'
/// kinds.
fn default_access(s: &State, r: &dyn Read, recipients: &[UserId]) -> Result<Option<u64>, ServerError> {
    let mut out: Option<u64> = None;
    for id in recipients {
        let Some(u) = crate::app::units::party(r, id)? else { continue };
        let Some(kind) = org_of(r, &u)?.map(|o| o.org.kind) else { continue };
        if let Some((_, secs)) = s.settings.external_access.iter().find(|(k, _)| *k == kind) {
            out = Some(out.map_or(*secs, |o| o.min(*secs)));
        }
    }
    Ok(out)
}

/// A recipient may fetch what was released to them while their access
/// lasts; and, if their organisation is now outside police and CPS, only
/// what a disclosure approver approved, under a case whose roster still
/// lists it (an admin may have changed its kind, a caseworker the roster).
fn check_still_disclosable(r: &dyn Read, rec: &TransferRecord, me: &UserId, now: u64) -> Result<(), ServerError> {
    if !rec.is_recipient(me) {
        return Ok(());
    }
    if let Some(until) = rec.access_until.filter(|u| *u <= now) {
        return Err(ServerError::Conflict(format!(
            "transfer {}: your access ended at {until}; ask its sender to extend it",
            rec.transfer
        )));
    }
    let Some(u) = crate::app::units::party(r, me)? else { return Ok(()) };
    if org_of(r, &u)?.is_some_and(|o| !o.org.kind.is_external()) {
        return Ok(());
    }
    if rec.approval.is_none() {
        return Err(ServerError::Forbidden(format!(
            "transfer {} was not approved for disclosure outside police and CPS, where your organisation now is",
            rec.transfer
        )));
    }
    let info = match &rec.case_ref {
        Some(c) => r.case(c)?,
        None => None,
    };
    policy::check_roster(&[u.org.as_str()], rec.case_ref.as_deref().map(|c| (c, info.as_ref())))
}

/// Before a chunk's bytes are read: the caller's own upload, and room for
/// `len` more bytes in it and in their quota.
pub fn check_chunk(s: &State, me: &UserId, transfer: &TransferId, len: u32) -> Result<TransferRecord, ServerError> {
    let r = s.meta.read()?;
    let rec = policy::own_upload(r.transfer(transfer)?, me, transfer)?;
    let max = exhibit_proto::limits::max_sealed_len(exhibit_proto::limits::MAX_CHUNK_SIZE, rec.recipients.len() + 1);
    if u64::from(len) > max {
        return Err(ServerError::Proto(exhibit_proto::ProtoError::TooLarge { what: "chunk", got: len.into(), max }));
    }
    let quota = s.settings.user_quota;
    let used = if quota.is_some() { r.usage(&rec.sender)? } else { 0 };
    policy::check_limits(rec.bytes, used, len, s.settings.max_transfer_bytes, quota)?;
    Ok(rec)
}

/// Note that a chunk (already durable in the chunk store) belongs to a
/// transfer. Limits are checked again: a seal, or other chunks, may have
/// committed while it was arriving. Chunks arriving together share one
/// commit (`meta::group`).
pub fn add_chunk(s: &State, transfer: &TransferId, id: &ChunkId, len: u32) -> Result<(), ServerError> {
    let (transfer, id) = (*transfer, *id);
    let (quota, max) = (s.settings.user_quota, s.settings.max_transfer_bytes);
    let key = s.keys.log().clone();
    s.commits.run(
        s.meta.as_ref(),
        Box::new(move |tx| {
            let Some(mut rec) = tx.transfer(&transfer)? else {
                return Err(ServerError::Conflict(format!("transfer {transfer} is no longer uploading")));
            };
            let uploading = rec.state == exhibit_proto::frame::TransferState::Uploading;
            if uploading && tx.transfer_chunk(&transfer, &id)?.is_some() {
                return Ok(());
            }
            let used = if quota.is_some() { tx.usage(&rec.sender)? } else { 0 };
            // Refusals come before any write (a batched job's contract).
            let fx = lifecycle::add_chunk(&mut rec, len, used, max, quota)?;
            tx.add_transfer_chunk(&transfer, &id, len)?;
            tx.add_chunk_ref(&id, 1)?;
            tx.put_transfer(&rec)?;
            apply_signed(&key, tx, &transfer, fx)
        }),
    )
}

/// Seal a transfer with its verified manifest: every chunk listed must be
/// stored with its length; chunks uploaded but not listed are dropped.
/// Returns the record as sealed.
pub fn seal(
    s: &State,
    manifest: &SignedManifest,
    m: &Manifest,
    now: u64,
    deadline: u64,
) -> Result<TransferRecord, ServerError> {
    let transfer = &m.transfer;
    policy::check_manifest_text(m)?;
    let mut unreferenced = vec![];
    let rec = write(s, |tx| {
        let mut rec = match tx.transfer(transfer)? {
            Some(t) if t.sender == m.sender => t,
            _ => return Err(ServerError::NotFound(format!("transfer {transfer}"))),
        };
        let mut want: Vec<&UserId> = rec.recipients.iter().map(|r| &r.user).collect();
        let mut got: Vec<&UserId> = m.recipients.iter().collect();
        want.sort();
        got.sort();
        if want != got {
            return Err(ServerError::BadRequest("manifest recipients differ from the transfer's".into()));
        }
        lifecycle::can_seal(&rec)?;
        if rec.derived_from != m.derived_from {
            return Err(ServerError::BadRequest(
                "the manifest's derived-from differs from the one the transfer was created with".into(),
            ));
        }
        let to: Vec<UserId> = rec.recipients.iter().map(|r| r.user.clone()).collect();
        let case = rec.case_ref.clone().or_else(|| m.case_ref.clone());
        check_disclosure(tx, &m.sender, &to, m.policy.as_ref(), &m.approvers, case.as_deref())?;
        if let Some(df) = &m.derived_from {
            check_forward(tx, &m.sender, df, case.as_deref())?;
        }
        let mut listed = std::collections::HashSet::new();
        let mut bytes = 0u64;
        let mut chunks = 0u32;
        for c in m.all_chunks() {
            match tx.transfer_chunk(transfer, &c.id)? {
                Some(l) if l == c.len => {}
                Some(l) => {
                    return Err(ServerError::BadRequest(format!(
                        "chunk {}: manifest says {} bytes, {l} were uploaded",
                        c.id, c.len
                    )))
                }
                None => return Err(ServerError::Conflict(format!("chunk {} has not been uploaded", c.id))),
            }
            listed.insert(c.id);
            bytes += u64::from(c.len);
            chunks += 1;
        }
        for (id, _) in tx.transfer_chunks(transfer)? {
            if !listed.contains(&id) {
                tx.remove_transfer_chunk(transfer, &id)?;
                if tx.add_chunk_ref(&id, -1)? == 0 {
                    unreferenced.push(id);
                }
            }
        }
        let sealing = Sealing {
            manifest_hash: manifest.hash(),
            chunks,
            bytes,
            items: m.item_count().map(|n| n as u64),
            case_ref: m.case_ref.clone(),
            policy: m.policy,
            approvers: m.approvers.clone(),
        };
        let approve_by = now.saturating_add(s.settings.approve_within);
        let fx = lifecycle::seal(&mut rec, &sealing, now, deadline, approve_by)?;
        tx.put_manifest(transfer, manifest)?;
        tx.put_transfer(&rec)?;
        apply(s, tx, transfer, fx)?;
        if let Some(df) = &m.derived_from {
            // The source links to it, and its custody says so.
            let mut src =
                tx.transfer(&df.transfer)?.ok_or_else(|| ServerError::NotFound(format!("transfer {}", df.transfer)))?;
            let fx = lifecycle::forwarded(&mut src, &rec, df, now);
            tx.put_transfer(&src)?;
            apply(s, tx, &df.transfer, fx)?;
        }
        Ok(rec)
    })?;
    // The seal is committed: a chunk file left behind is an orphan that
    // fsck lists and start-up removes, not a reason to report failure.
    for id in &unreferenced {
        if let Err(e) = s.delete_chunk(id) {
            tracing::warn!(chunk = %id, error = %e, "could not delete a stray chunk after sealing");
        }
    }
    Ok(rec)
}

/// When a transfer sealed (or released) at `now` is due: the manifest's
/// acknowledge-within, or the server's default, within the server's bounds.
pub fn deadline(s: &State, m: &Manifest, now: u64) -> Result<u64, ServerError> {
    Ok(now.saturating_add(check_ack_within(s, m.ack_within_secs)?))
}

/// An acknowledge-within (`None`: the server's default) within the
/// server's bounds: checked when a transfer is created, before anything is
/// uploaded, and again at seal.
pub fn check_ack_within(s: &State, asked: Option<u64>) -> Result<u64, ServerError> {
    let (lo, hi) = s.settings.ack_within_bounds;
    let ack = asked.unwrap_or(s.settings.ack_within);
    if !(lo..=hi).contains(&ack) {
        return Err(ServerError::BadRequest(format!(
            "acknowledge-within must be between {} and {}; nothing was uploaded",
            exhibit_proto::duration::format_secs(lo),
            exhibit_proto::duration::format_secs(hi)
        )));
    }
    Ok(ack)
}

/// A sealed transfer's manifest.
pub fn manifest_of(r: &dyn Read, transfer: &TransferId) -> Result<SignedManifest, ServerError> {
    r.manifest(transfer)?.ok_or_else(|| ServerError::Store(format!("transfer {transfer} sealed without manifest")))
}

/// The approval that released `rec`, and its approver's entry.
pub fn approval_of(r: &dyn Read, rec: &TransferRecord) -> Result<Approved, ServerError> {
    match (&rec.approval, &rec.decision) {
        (Some(a), Some(d)) if d.approved => Ok(Some((a.clone(), users::entry(r, &d.by)?))),
        _ => Ok(None),
    }
}

/// The signed directory entries of a transfer's sender and recipients.
pub fn parties(r: &dyn Read, rec: &TransferRecord) -> Result<(SignedEntry, Vec<SignedEntry>), ServerError> {
    // Units have no entry of their own (their records travel apart).
    let mut recipients = vec![];
    for p in &rec.recipients {
        if r.unit(&p.user)?.is_none() {
            recipients.push(users::entry(r, &p.user)?);
        }
    }
    Ok((users::entry(r, &rec.sender)?, recipients))
}

/// How many bytes the manifest of a transfer `me` may fetch takes (to hold
/// the memory before reading it).
pub fn manifest_len(s: &State, me: &UserId, transfer: &TransferId) -> Result<usize, ServerError> {
    let r = s.meta.read()?;
    fetchable(visible(r.transfer(transfer)?, me, transfer)?)?;
    Ok(r.manifest_len(transfer)?.unwrap_or(0))
}

/// What a recipient or the sender needs to fetch: the manifest, the
/// parties' entries and the approval that released it. Audited (by
/// `caller`, who acts as `me`: themselves, or a unit they are a member
/// of); a transfer with no chunks is delivered by it.
pub fn open_manifest(
    s: &State,
    me: &UserId,
    caller: &UserId,
    transfer: &TransferId,
    now: u64,
) -> Result<(SignedManifest, SignedEntry, Vec<SignedEntry>, Approved), ServerError> {
    write(s, |tx| {
        let mut rec = fetchable(visible(tx.transfer(transfer)?, me, transfer)?)?;
        check_still_disclosable(tx, &rec, me, now)?;
        let manifest = manifest_of(tx, transfer)?;
        let ev = Ev::new(now, caller, "manifest-read", transfer);
        audit::append(s, tx, if me == caller { ev } else { ev.details(format!("for unit {me}")) })?;
        if rec.chunks == 0 && rec.is_recipient(me) {
            let fx = lifecycle::record_fetch(&mut rec, me, false, now);
            tx.put_transfer(&rec)?;
            apply(s, tx, transfer, fx)?;
        }
        let (sender, recipients) = parties(tx, &rec)?;
        Ok((manifest, sender, recipients, approval_of(tx, &rec)?))
    })
}

/// A chunk's length, if `me` may fetch it.
pub fn chunk_len(s: &State, me: &UserId, transfer: &TransferId, id: &ChunkId) -> Result<u32, ServerError> {
    let r = s.meta.read()?;
    fetchable(visible(r.transfer(transfer)?, me, transfer)?)?;
    r.transfer_chunk(transfer, id)?.ok_or_else(|| ServerError::NotFound(format!("chunk {id}")))
}

/// Check again, with the caller, before a chunk goes out (the wait for
/// memory may have been long enough for a revocation), and return whether
/// they are a recipient.
pub fn may_fetch(s: &State, me: &UserId, transfer: &TransferId, now: u64) -> Result<bool, ServerError> {
    let r = s.meta.read()?;
    if crate::app::units::party(r.as_ref(), me)?.is_none_or(|u| u.revoked_at.is_some()) {
        return Err(ServerError::Unauthenticated(format!("user {me} has been revoked")));
    }
    let rec = fetchable(visible(r.transfer(transfer)?, me, transfer)?)?;
    check_still_disclosable(r.as_ref(), &rec, me, now)?;
    Ok(rec.is_recipient(me))
}

/// A recipient fetched a chunk (batched like [`add_chunk`]).
pub fn record_fetch(s: &State, transfer: &TransferId, me: &UserId, id: &ChunkId, now: u64) -> Result<(), ServerError> {
    let (transfer, id, me) = (*transfer, *id, me.clone());
    let key = s.keys.log().clone();
    s.commits.run(
        s.meta.as_ref(),
        Box::new(move |tx| {
            let Some(mut rec) = tx.transfer(&transfer)? else { return Ok(()) };
            if !rec.is_recipient(&me) {
                return Ok(());
            }
            let new = tx.mark_fetched(&transfer, &id, &me)?;
            let fx = lifecycle::record_fetch(&mut rec, &me, new, now);
            if new || !fx.is_empty() {
                tx.put_transfer(&rec)?;
            }
            apply_signed(&key, tx, &transfer, fx)
        }),
    )
}

/// The chunk ids stored so far for the caller's own unsealed transfer (to
/// resume an upload).
pub fn uploaded(s: &State, me: &UserId, transfer: &TransferId) -> Result<Vec<ChunkId>, ServerError> {
    let r = s.meta.read()?;
    match r.transfer(transfer)? {
        Some(t) if &t.sender == me && t.state == exhibit_proto::frame::TransferState::Uploading => {}
        _ => return Err(ServerError::NotFound(format!("upload {transfer}"))),
    }
    Ok(r.transfer_chunks(transfer)?.into_iter().map(|(id, _)| id).collect())
}

/// The sender extends recipients' access to a transfer by `secs`.
pub fn extend_access(s: &State, me: &UserId, transfer: &TransferId, secs: u64, now: u64) -> Result<(), ServerError> {
    write(s, |tx| {
        let mut rec = tx.transfer(transfer)?.ok_or_else(|| ServerError::NotFound(format!("transfer {transfer}")))?;
        let fx = lifecycle::extend(&mut rec, me, secs, now)?;
        tx.put_transfer(&rec)?;
        apply(s, tx, transfer, fx)
    })
}

/// Every transfer forwarded from `rec`, and from those (breadth first, at
/// most [`MAX_ONWARD`]), sealed ones only.
pub fn onward(r: &dyn Read, rec: &TransferRecord) -> Result<Vec<TransferRecord>, ServerError> {
    let mut out = vec![];
    let mut queue: std::collections::VecDeque<TransferId> = rec.onward.iter().copied().collect();
    while let Some(id) = queue.pop_front() {
        if out.len() >= MAX_ONWARD {
            break;
        }
        let Some(t) = r.transfer(&id)? else { continue };
        if t.state == exhibit_proto::frame::TransferState::Uploading {
            continue;
        }
        queue.extend(t.onward.iter().copied());
        out.push(t);
    }
    Ok(out)
}

/// At most this many onward transfers are shown in one custody report.
pub const MAX_ONWARD: usize = 200;

/// Revoke a transfer on its sender's word. Returns the recipients who had
/// already fetched it.
pub fn revoke(s: &State, me: &UserId, transfer: &TransferId, now: u64) -> Result<Vec<RecipientRecord>, ServerError> {
    let expire_at = s.settings.retain_after_ack.map(|r| now.saturating_add(r));
    write(s, |tx| {
        let mut rec = tx.transfer(transfer)?.ok_or_else(|| ServerError::NotFound(format!("transfer {transfer}")))?;
        let (already, fx) = lifecycle::revoke(&mut rec, me, now, expire_at)?;
        tx.put_transfer(&rec)?;
        apply(s, tx, transfer, fx)?;
        Ok(already)
    })
}

/// Insert sealed transfers in one transaction, with their deadline and
/// inbox/outbox entries: a bulk import for benchmarks and scale tests that
/// need many transfers without uploading each.
#[doc(hidden)]
pub fn import_sealed(s: &State, recs: impl IntoIterator<Item = TransferRecord>) -> Result<usize, ServerError> {
    write(s, |tx| {
        let mut n = 0;
        for rec in recs {
            tx.insert_transfer(&rec)?;
            if let Some(d) = rec.deadline {
                tx.schedule(d, &rec.transfer, crate::core::records::Due::Overdue(0))?;
            }
            tx.add_to_mailbox(Mailbox::Outbox, &rec.sender, &rec.transfer)?;
            for r in &rec.recipients {
                tx.add_to_mailbox(Mailbox::Inbox, &r.user, &rec.transfer)?;
            }
            n += 1;
        }
        Ok(n)
    })
}
