//! Witnesses (issue 23): a second organisation runs `exhibitd witness run`
//! against this log, checks each tree head extends the one it cosigned
//! before, and hands back its cosignature. The server takes one only from
//! a configured witness key, only over a head it signed itself and that is
//! a head of its log as it is now (never larger, the same root at that
//! size), and keeps the latest per witness for clients to check.

use exhibit_proto::tlog::{CosignedHead, Proof, SignedTreeHead};

use crate::app::tree;
use crate::error::ServerError;
use crate::state::State;

/// The head now and the consistency proof to it from `since` entries, for
/// a witness (asked without a client certificate, so only answered where
/// witnesses are configured).
pub fn head(s: &State, since: Option<u64>, now: u64) -> Result<(SignedTreeHead, Proof), ServerError> {
    if s.settings.witnesses.is_empty() {
        return Err(ServerError::BadRequest("this server has no witness configured".into()));
    }
    tree::head_since(s.meta.as_ref(), s.keys.log(), since, now)
}

/// What a cosignature did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Taken {
    /// The configured witness's name.
    pub witness: String,
    /// The size of the head it cosigned.
    pub size: u64,
    /// Whether it replaced the witness's stored head (not when it had
    /// already cosigned a larger one).
    pub stored: bool,
}

/// Take a witness's cosignature of a head this server signed.
pub fn cosign(s: &State, c: CosignedHead) -> Result<Taken, ServerError> {
    let Some(w) = s.settings.witnesses.iter().find(|w| c.cosignature.by(&w.key)) else {
        return Err(ServerError::Forbidden("the cosignature is not by a witness configured on this server".into()));
    };
    let own = s.keys.log().verifying_key();
    let head = c.verify(&own, &w.key)?;
    crate::app::write(s, |tx| {
        let size = tree::size(&*tx)?;
        if head.size > size || tree::root(&*tx, head.size)? != head.root {
            return Err(ServerError::Conflict(format!(
                "the head of {} entries cosigned by witness {} is not of this log as it is ({size} entries)",
                head.size, w.name
            )));
        }
        let before = tx.cosigned_heads()?.into_iter().find(|h| h.cosignature.by(&w.key));
        if let Some(b) = before {
            if b.head.verify(&own)?.size > head.size {
                return Ok(Taken { witness: w.name.clone(), size: head.size, stored: false });
            }
        }
        tx.put_cosigned_head(w.key.as_bytes(), &c)?;
        Ok(Taken { witness: w.name.clone(), size: head.size, stored: true })
    })
}

/// The latest head each configured witness cosigned.
pub fn cosigned_heads(s: &State) -> Result<Vec<CosignedHead>, ServerError> {
    let all = s.meta.read()?.cosigned_heads()?;
    Ok(all.into_iter().filter(|h| s.settings.witnesses.iter().any(|w| h.cosignature.by(&w.key))).collect())
}
