//! A disclosure approver's decision on a transfer to an external
//! organisation: approve (a signature over the manifest, recipients and
//! labels summary, checked here, then the transfer is released) or refuse
//! (with a reason; it is never released).

use exhibit_proto::approval::{self, SignedApproval};
use exhibit_proto::TransferId;

use crate::app::transfers::{deadline, manifest_of};
use crate::app::{apply, users, write};
use crate::core::lifecycle;
use crate::core::policy;
use crate::core::records::UserRecord;
use crate::error::ServerError;
use crate::state::State;

/// Check `signed` (from `caller`) and release the transfer it approves.
pub fn approve(s: &State, caller: &UserRecord, signed: SignedApproval, now: u64) -> Result<(), ServerError> {
    let claimed = signed.decode_unverified()?;
    if claimed.approver != caller.user {
        return Err(ServerError::Forbidden("an approval must be signed and sent by its approver".into()));
    }
    let transfer = claimed.transfer;
    let authority = s.keys.ca();
    write(s, |tx| {
        let mut rec = policy::visible(tx.transfer(&transfer)?, &caller.user, &transfer)?;
        let sender = tx.user(&rec.sender)?.ok_or_else(|| ServerError::NotFound(format!("user {}", rec.sender)))?;
        // As the records say now (revoked since? moved organisation?), then
        // as the signed entries say (what a recipient will check).
        policy::check_approver(&sender, &caller.user, Some(caller))?;
        let manifest = manifest_of(tx, &transfer)?;
        let sender_entry = users::entry_of(&sender)?.verify(&authority)?;
        let m = manifest.verify(&sender_entry)?;
        let (a, _) =
            approval::check(&signed, &users::entry_of(caller)?, &sender_entry, m.manifest(), &m.hash(), &authority)?;
        // The rules again, on the records as they are now: a recipient
        // revoked, an organisation's kind changed, since the seal.
        let to: Vec<_> = rec.recipients.iter().map(|r| r.user.clone()).collect();
        crate::app::transfers::check_disclosure(
            tx,
            &rec.sender,
            &to,
            rec.policy.as_ref(),
            &rec.approvers,
            rec.case_ref.as_deref(),
        )?;
        let due = deadline(s, m.manifest(), now)?;
        let p = a.policy;
        let what = format!(
            "labels: highest handling {}, none unredacted, unused-sensitive or with victim details: {}",
            p.highest_handling.map_or("-", |h| h.as_str()),
            p.external_refusal().is_none()
        );
        let fx = lifecycle::approve(&mut rec, &caller.user, signed, &what, now, due)?;
        tx.put_transfer(&rec)?;
        apply(s, tx, &transfer, fx)
    })
}

/// Refuse a transfer awaiting `caller`'s approval, saying why.
pub fn refuse(
    s: &State,
    caller: &UserRecord,
    transfer: &TransferId,
    reason: &str,
    now: u64,
) -> Result<(), ServerError> {
    policy::check_reason(reason)?;
    let expire_at = s.settings.retain_after_ack.map(|r| now.saturating_add(r));
    write(s, |tx| {
        let mut rec = policy::visible(tx.transfer(transfer)?, &caller.user, transfer)?;
        let fx = lifecycle::refuse(&mut rec, &caller.user, reason, now, expire_at)?;
        tx.put_transfer(&rec)?;
        apply(s, tx, transfer, fx)
    })
}
