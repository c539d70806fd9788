//! Receipts (verified, countersigned, stored: the recipient has
//! acknowledged) and the chain of custody built from them and the log.

use exhibit_proto::audit::AuditEntry;
use exhibit_proto::directory::SignedEntry;
use exhibit_proto::frame::TransferState;
use exhibit_proto::unit::SignedUnit;
use exhibit_proto::{limits, AcceptedReceipt, SignedManifest, SignedReceipt, TransferId, UserId};

use crate::app::transfers::{approval_of, manifest_of, parties, Approved};
use crate::app::{alerts, apply, audit, users, write};
use crate::core::lifecycle;
use crate::core::policy::{self, visible};
use crate::core::records::{Ev, TransferRecord, UserRecord};
use crate::error::ServerError;
use crate::meta::Read;
use crate::state::State;

/// Verify a recipient's signed receipt, countersign it with server time
/// and store it. A second receipt from the same recipient returns the
/// first, unless the first was for some of the items only. A receipt that
/// fails verification for a transfer addressed to the caller is alerted
/// (anything else is noise an attacker could make at will). Returns the
/// stored receipt and whether an alert was raised.
pub fn submit(
    s: &State,
    caller: &UserRecord,
    receipt: SignedReceipt,
    now: u64,
) -> Result<(AcceptedReceipt, bool), (ServerError, bool)> {
    let authority = s.keys.ca();
    let entry = users::entry_of(caller).and_then(|e| Ok(e.verify(&authority)?)).map_err(|e| (e, false))?;
    let me = &caller.user;
    let r = match receipt.verify(&entry) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(user = %me, error = %e, "receipt failed verification");
            let mut alerted = false;
            if let Ok(claimed) = exhibit_proto::Receipt::from_bytes(&receipt.bytes) {
                let mine = s.meta.read().and_then(|r| r.transfer(&claimed.transfer));
                if mine.is_ok_and(|t| t.is_some_and(|t| t.is_recipient(me) && policy::released(&t))) {
                    alerts::receipt_rejected(s, &claimed.transfer, me, &e.to_string(), now);
                    alerted = true;
                }
            }
            return Err((e.into(), alerted));
        }
    };
    let transfer = r.transfer;
    // A member acknowledges for a unit: addressed to it, and a member now.
    let addressee = r.unit.clone().unwrap_or_else(|| me.clone());
    let party = |rd: &dyn Read, t: &TransferRecord| -> Result<bool, ServerError> {
        Ok(t.state == TransferState::Sealed
            && t.is_recipient(&addressee)
            && match &r.unit {
                None => true,
                Some(u) => rd.unit(u)?.is_some_and(|u| u.unit.has_member(me)),
            })
    };
    let read = || -> Result<(TransferRecord, SignedManifest), ServerError> {
        let rd = s.meta.read()?;
        match rd.transfer(&transfer)? {
            Some(t) if party(rd.as_ref(), &t)? => Ok((t, manifest_of(rd.as_ref(), &transfer)?)),
            _ => Err(ServerError::NotFound(format!("transfer {transfer}"))),
        }
    };
    let (rec, manifest) = read().map_err(|e| (e, false))?;
    if r.manifest_hash != manifest.hash() {
        let reason = "receipt refers to a different manifest";
        alerts::receipt_rejected(s, &transfer, me, reason, now);
        return Err((ServerError::BadRequest(reason.into()), true));
    }
    // A version 1 manifest tells the server how many items there are (at
    // least one); a version 2 one seals it (0 here), and the receipt's count
    // is the recipient's word.
    let of = r.subset.as_ref().map_or(r.item_count, |s| s.of);
    if rec.items > 0 && of != u64::from(rec.items) {
        let msg = format!("receipt lists {of} items, transfer has {}", rec.items);
        return Err((ServerError::BadRequest(msg), false));
    }
    let accepted = AcceptedReceipt::accept(receipt, now, s.keys.log());
    let retain = s.settings.retain_after_ack;
    let stored = write(s, |tx| {
        // A receipt for every item stands; one for some of them gives way
        // to the recipient's next (they fetched more), the earlier staying
        // in the log.
        if let Some(first) = tx.receipt(&transfer, me)? {
            if first.receipt == accepted.receipt || first.receipt.subset().is_none() {
                return Ok(first);
            }
        }
        // Checked again in the transaction: a revocation may have
        // committed since.
        let mut rec = match tx.transfer(&transfer)? {
            Some(t) if party(tx, &t)? => t,
            _ => return Err(ServerError::NotFound(format!("transfer {transfer}"))),
        };
        tx.put_receipt(&transfer, me, &accepted)?;
        let fx = match &r.unit {
            None => lifecycle::accept_receipt(&mut rec, me, &accepted, retain),
            Some(u) => {
                let met = crate::app::units::rule_met(tx, u, &transfer, me)?;
                lifecycle::accept_unit_receipt(&mut rec, u, me, &accepted, met, retain)
            }
        };
        tx.put_transfer(&rec)?;
        apply(s, tx, &transfer, fx)?;
        Ok(accepted)
    })
    .map_err(|e| (e, false))?;
    tracing::info!(%transfer, recipient = %me, "receipt accepted");
    Ok((stored, false))
}

/// A stored receipt and what verifies it offline.
pub struct Stored {
    /// The signed manifest.
    pub manifest: SignedManifest,
    /// The receipt, countersigned.
    pub receipt: AcceptedReceipt,
    /// The sender's entry.
    pub sender: SignedEntry,
    /// The recipient's entry (a member's, for a unit).
    pub recipient: SignedEntry,
    /// The approval that released the transfer.
    pub approval: Approved,
    /// A receipt for a unit: the unit's record listing the member.
    pub unit: Option<SignedUnit>,
}

/// A recipient's stored receipt with what is needed to verify it offline.
pub fn get(s: &State, me: &UserId, transfer: &TransferId, recipient: &UserId) -> Result<Stored, ServerError> {
    let r = s.meta.read()?;
    let rec = visible(r.transfer(transfer)?, me, transfer)?;
    let accepted = r
        .receipt(transfer, recipient)?
        .ok_or_else(|| ServerError::NotFound(format!("receipt of {recipient} for {transfer}")))?;
    let manifest = manifest_of(r.as_ref(), transfer)?;
    let sender = users::entry(r.as_ref(), &rec.sender)?;
    let recip = users::entry(r.as_ref(), recipient)?;
    let approval = approval_of(r.as_ref(), &rec)?;
    // A member's receipt for a unit comes with the unit's record as it
    // stood when the receipt was accepted, listing them.
    let unit = match exhibit_proto::Receipt::from_bytes(&accepted.receipt.bytes)?.unit {
        Some(u) => r.unit(&u)?.and_then(|u| u.version_listing(recipient, accepted.accepted_at).cloned()),
        None => None,
    };
    Ok(Stored { manifest, receipt: accepted, sender, recipient: recip, approval, unit })
}

/// How many bytes the manifest of a transfer `me` is a party to takes.
pub fn party_manifest_len(s: &State, me: &UserId, transfer: &TransferId) -> Result<usize, ServerError> {
    let r = s.meta.read()?;
    visible(r.transfer(transfer)?, me, transfer)?;
    Ok(r.manifest_len(transfer)?.unwrap_or(0))
}

/// How many bytes the manifest of a transfer `caller` may see (as a party
/// or an admin) takes.
pub fn visible_manifest_len(s: &State, caller: &UserRecord, transfer: &TransferId) -> Result<usize, ServerError> {
    let r = s.meta.read()?;
    readable(r.as_ref(), r.transfer(transfer)?, caller, transfer)?;
    Ok(r.manifest_len(transfer)?.unwrap_or(0))
}

/// A transfer `caller` may read the custody of: as a party, an admin, or a
/// current member of a unit it is addressed to.
fn readable(
    r: &dyn Read,
    rec: Option<TransferRecord>,
    caller: &UserRecord,
    id: &TransferId,
) -> Result<TransferRecord, ServerError> {
    let unit = match &rec {
        Some(t) => crate::app::units::acting_on(r, &caller.user, t)?,
        None => None,
    };
    match unit {
        Some(u) => visible(rec, &u, id),
        None => policy::visible_or_admin(rec, caller, id),
    }
}

/// A transfer's chain of custody, as its sender, a recipient or an admin
/// may read it: the record, the first audit entries about it (the rest by
/// [`custody_entries`]), every receipt, the parties' entries and the
/// manifest. Audited.
pub struct Custody {
    /// The transfer.
    pub record: TransferRecord,
    /// Audit entries about it.
    pub entries: Vec<AuditEntry>,
    /// Accepted receipts.
    pub receipts: Vec<AcceptedReceipt>,
    /// Sender's entry.
    pub sender: SignedEntry,
    /// Recipients' entries.
    pub recipients: Vec<SignedEntry>,
    /// The signed manifest.
    pub manifest: SignedManifest,
    /// The approval that released it, and the approver's entry.
    pub approval: Approved,
    /// Where its material went onward.
    pub onward: Vec<TransferRecord>,
    /// Members who acknowledged it for a unit.
    pub unit_acks: Vec<exhibit_proto::frame::UnitAck>,
    /// The units' records that list those members.
    pub units: Vec<SignedUnit>,
}

/// One audited view of a transfer's custody per person per day: a court
/// bundle read again, or read page by page, is one `custody-read`.
fn audit_view(
    s: &State,
    caller: &UserRecord,
    transfer: &TransferId,
    now: u64,
    details: &str,
) -> Result<(), ServerError> {
    let seen = s.meta.read()?.audit_about(&transfer.to_string(), 0, usize::MAX - 1)?.iter().rev().any(|e| {
        e.body.action == "custody-read" && e.body.actor == caller.user.as_str() && now.saturating_sub(e.body.time) < DAY
    });
    if !seen {
        audit::record(s, Ev::new(now, &caller.user, "custody-read", transfer).details(details))?;
    }
    Ok(())
}

/// A day, in seconds.
const DAY: u64 = 86_400;

/// Audit entries about `transfer` after seq `after`: at most `limit`, and
/// no more than [`limits::PAGE_BYTES`] encoded, with the seq to go on after
/// when there may be more.
fn entries_page(
    r: &dyn Read,
    transfer: &TransferId,
    after: u64,
    limit: usize,
) -> Result<(Vec<AuditEntry>, Option<u64>), ServerError> {
    let batch = r.audit_about(&transfer.to_string(), after, limit.saturating_add(1))?;
    let more = batch.len() > limit;
    let (mut out, mut bytes) = (Vec::new(), 0usize);
    for e in batch.into_iter().take(limit) {
        let n = exhibit_proto::sign::encode(&e).len();
        if !out.is_empty() && bytes + n > limits::PAGE_BYTES {
            let next = out.last().map(|e: &AuditEntry| e.body.seq);
            return Ok((out, next));
        }
        bytes += n;
        out.push(e);
    }
    let next = if more { out.last().map(|e| e.body.seq) } else { None };
    Ok((out, next))
}

/// See [`Custody`]. Its entries stop at [`limits::PAGE_BYTES`]; the rest
/// come by [`custody_entries`].
pub fn custody(s: &State, caller: &UserRecord, transfer: &TransferId, now: u64) -> Result<Custody, ServerError> {
    {
        let r = s.meta.read()?;
        readable(r.as_ref(), r.transfer(transfer)?, caller, transfer)?
    };
    audit_view(s, caller, transfer, now, "")?;
    let r = s.meta.read()?;
    let record = readable(r.as_ref(), r.transfer(transfer)?, caller, transfer)?;
    let (entries, _) = entries_page(r.as_ref(), transfer, 0, usize::MAX - 1)?;
    let mut receipts = vec![];
    for p in &record.recipients {
        receipts.extend(r.receipt(transfer, &p.user)?);
    }
    let (sender, mut recipients) = parties(r.as_ref(), &record)?;
    // Members who acknowledged for a unit, with their entries to check
    // their receipts by.
    let unit_acks = crate::app::units::acks(r.as_ref(), &record)?;
    let mut units = vec![];
    for a in &unit_acks {
        if let Some(got) = r.receipt(transfer, &a.member)? {
            let u = r.unit(&a.unit)?;
            units.extend(u.and_then(|u| u.version_listing(&a.member, got.accepted_at).cloned()));
            receipts.push(got);
        }
        recipients.push(users::entry(r.as_ref(), &a.member)?);
    }
    let manifest = manifest_of(r.as_ref(), transfer)?;
    let approval = approval_of(r.as_ref(), &record)?;
    let onward = crate::app::transfers::onward(r.as_ref(), &record)?;
    Ok(Custody { record, entries, receipts, sender, recipients, manifest, approval, onward, unit_acks, units })
}

/// Audit entries about a transfer after seq `after`, a page at a time, for
/// those who may read its custody; every page read is audited. Returns the
/// seq to continue after, if there may be more.
pub fn custody_entries(
    s: &State,
    caller: &UserRecord,
    transfer: &TransferId,
    after: u64,
    limit: usize,
    now: u64,
) -> Result<(Vec<AuditEntry>, Option<u64>), ServerError> {
    {
        let r = s.meta.read()?;
        readable(r.as_ref(), r.transfer(transfer)?, caller, transfer)?
    };
    audit_view(s, caller, transfer, now, &format!("entries after {after}"))?;
    entries_page(s.meta.read()?.as_ref(), transfer, after, limit)
}

/// The entry that accepted `recipient`'s receipt for `transfer`, with its
/// inclusion proof in the tree head signed now: what a receipt bundle
/// carries, so an offline check sees the receipt is in the log. The same
/// people may ask as may read the transfer's custody.
pub fn receipt_entry(
    s: &State,
    caller: &UserRecord,
    transfer: &TransferId,
    recipient: &UserId,
    now: u64,
) -> Result<exhibit_proto::tlog::EntryProof, ServerError> {
    let r = s.meta.read()?;
    readable(r.as_ref(), r.transfer(transfer)?, caller, transfer)?;
    // The entry of the receipt stored now (an earlier one, for some of
    // the items, has its own entry before it).
    let missing = || ServerError::NotFound(format!("no receipt of {recipient} accepted for {transfer}"));
    let stored = r.receipt(transfer, recipient)?.ok_or_else(missing)?;
    let signature = format!("signature {}", hex::encode(&stored.receipt.signature));
    let subject = transfer.to_string();
    let mut after = 0;
    let entry = loop {
        let page = r.audit_about(&subject, after, 1000)?;
        let Some(last) = page.last() else { return Err(missing()) };
        after = last.body.seq;
        let ours = |e: &AuditEntry| {
            e.body.action == "receipt-accepted"
                && e.body.actor == recipient.as_str()
                && e.body.details.contains(&signature)
        };
        if let Some(e) = page.into_iter().find(ours) {
            break e;
        }
    };
    super::tree::proven(r.as_ref(), s.keys.log(), entry, now)
}
