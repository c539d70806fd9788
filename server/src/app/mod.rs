//! One function per action. Each reads what it needs, asks `core` whether
//! and how the action changes things, and applies the effects, in ONE
//! metadata transaction. The QUIC front door (`rpc`) and the dashboard
//! (`web`) call only these.

pub mod alerts;
pub mod approvals;
pub mod audit;
pub mod cases;
pub mod integrity;
pub mod listings;
pub mod orgs;
pub mod receipts;
pub mod transfers;
pub mod tree;
pub mod units;
pub mod users;
pub mod witness;

use exhibit_proto::TransferId;

use crate::core::lifecycle::Effect;
use crate::error::ServerError;
use crate::meta::{Mailbox, Tx};
use crate::state::State;

/// Run `f` in one write transaction and commit it durably; an error rolls
/// everything back.
pub fn write<R>(s: &State, f: impl FnOnce(&mut dyn Tx) -> Result<R, ServerError>) -> Result<R, ServerError> {
    let mut tx = s.meta.write()?;
    let r = f(tx.as_mut())?;
    tx.commit()?;
    Ok(r)
}

/// Apply a transition's effects for `transfer` inside `tx`.
pub fn apply(s: &State, tx: &mut dyn Tx, transfer: &TransferId, effects: Vec<Effect>) -> Result<(), ServerError> {
    let released: Vec<exhibit_proto::UserId> =
        effects.iter().filter_map(|e| if let Effect::Inbox(u) = e { Some(u.clone()) } else { None }).collect();
    apply_signed(s.keys.log(), tx, transfer, effects)?;
    for to in released {
        alerts::arrived(s, tx, transfer, &to)?;
    }
    Ok(())
}

/// [`apply`], with the key that signs audit checkpoints given (for a
/// batched write, which runs without the state).
pub fn apply_signed(
    key: &ed25519_dalek::SigningKey,
    tx: &mut dyn Tx,
    transfer: &TransferId,
    effects: Vec<Effect>,
) -> Result<(), ServerError> {
    for e in effects {
        match e {
            Effect::Audit(ev) => {
                audit::append_signed(key, tx, ev)?;
            }
            Effect::Schedule { at, due } => tx.schedule(at, transfer, due)?,
            Effect::Inbox(user) => tx.add_to_mailbox(Mailbox::Inbox, &user, transfer)?,
            Effect::Usage { user, delta } => tx.add_usage(&user, delta)?,
            Effect::ApprovalQueue(user) => tx.add_to_mailbox(Mailbox::Approvals, &user, transfer)?,
            Effect::Resolve { at, why } => alerts::resolve(key, tx, transfer, at, why)?,
        }
    }
    Ok(())
}
