//! Stored chunks that no longer match their id: the check every chunk
//! read passes, what a damaged chunk means for each transfer holding it
//! (the recipients still waiting for it cannot get it), the alert's words,
//! and how fast the scrub re-reads the store. No IO; time is an argument.

use std::fmt;

use exhibit_proto::frame::{AlertKind, DeliveryState};
use exhibit_proto::{ChunkId, UserId};

use crate::core::alerts::{about_transfer, NewAlert};
use crate::core::lifecycle::Effect;
use crate::core::records::{Ev, TransferRecord};

/// How a stored chunk failed its check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Damage {
    /// Nothing is stored under its id.
    Missing,
    /// Another length than the one recorded when it arrived.
    Length { expected: u64, got: u64 },
    /// Its bytes hash to another id.
    Hash { got: ChunkId },
    /// The store could not read it back as a chunk.
    Unreadable { reason: String },
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Damage::Missing => write!(f, "missing from the store"),
            Damage::Length { expected, got } if got < expected => {
                write!(f, "cut short: {got} of {expected} bytes")
            }
            Damage::Length { expected, got } => write!(f, "{got} bytes where {expected} were stored"),
            Damage::Hash { got } => write!(f, "altered: its bytes hash to {got}"),
            Damage::Unreadable { reason } => write!(f, "unreadable: {reason}"),
        }
    }
}

/// Check the bytes read for `id`; `expected` is the length recorded when
/// it arrived, where the reader knows it (a fetch does, the scrub does
/// not: a chunk of another length fails the hash anyway).
pub fn check(id: &ChunkId, expected: Option<u64>, bytes: &[u8]) -> Result<(), Damage> {
    if let Some(expected) = expected {
        if bytes.len() as u64 != expected {
            return Err(Damage::Length { expected, got: bytes.len() as u64 });
        }
    }
    let got = ChunkId::of(bytes);
    if got != *id {
        return Err(Damage::Hash { got });
    }
    Ok(())
}

/// What found the damage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// A fetch by this user was refused the chunk.
    Fetch(UserId),
    /// The background scrub.
    Scrub,
    /// A backup, which copied everything else.
    Backup,
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Found::Fetch(u) => write!(f, "found when {u} fetched it; not sent"),
            Found::Scrub => write!(f, "found by the scrub"),
            Found::Backup => write!(f, "found by a backup, which holds everything else"),
        }
    }
}

/// What a damaged chunk means for a transfer that holds it: each recipient
/// still waiting for the transfer's chunks (sealed, not yet delivered)
/// cannot complete it and is marked damaged; those who downloaded it
/// already keep their state. Returns the audit entry to append and the
/// alert to raise (told to the sender and those waiting; one per transfer
/// and chunk, however often it is found).
pub fn on_damage(
    t: &mut TransferRecord,
    chunk: &ChunkId,
    damage: &Damage,
    found: &Found,
    now: u64,
) -> (Vec<Effect>, NewAlert) {
    let mut marked = vec![];
    for r in &mut t.recipients {
        if r.state == DeliveryState::Sealed {
            r.state = DeliveryState::Damaged;
            r.at = Some(now);
            marked.push(r.user.to_string());
        }
    }
    let marked_text = if marked.is_empty() {
        "no recipient's state changed".to_owned()
    } else {
        format!("now damaged for {}", marked.join(", "))
    };
    let audit = Ev::new(now, "exhibitd", "chunk-damaged", t.transfer)
        .details(format!("chunk {chunk}: {damage}; {found}; {marked_text}"));
    let stuck: Vec<String> =
        t.recipients.iter().filter(|r| r.state == DeliveryState::Damaged).map(|r| r.user.to_string()).collect();
    let consequence = if stuck.is_empty() {
        "every recipient has downloaded it; only the server's copy is affected".to_owned()
    } else {
        format!(
            "{} cannot fetch it until the chunk is restored from backup or the transfer is sent again",
            stuck.join(", ")
        )
    };
    let message = format!(
        "CORRUPTION: chunk {chunk} of transfer {} from {} (case {}) is damaged on the server ({damage}; {found}); {consequence}",
        t.transfer,
        t.sender,
        t.case_ref.as_deref().unwrap_or("-"),
    );
    let kind = AlertKind::Corruption { chunk: *chunk, reason: damage.to_string() };
    let alert = about_transfer(t, kind, &[b"c".as_slice(), chunk.as_bytes().as_slice()].concat(), message, now);
    (vec![Effect::Audit(audit)], alert)
}

/// Where one pass of the scrub should have got to by `now`: bytes of the
/// pass (`pass_bytes`, the store's size when it started) in proportion to
/// the time since it started against `period`, the time a full pass is
/// given. `None` once the period is over: the rest of the pass (the store
/// grew meanwhile) is then checked as fast as a step allows.
pub fn scrub_target(pass_bytes: u64, started: u64, period: u64, now: u64) -> Option<u64> {
    let elapsed = now.saturating_sub(started);
    if elapsed >= period {
        return None;
    }
    Some((u128::from(pass_bytes) * u128::from(elapsed) / u128::from(period.max(1))) as u64)
}

/// Whether a new pass starts now: none has started yet, or the last one
/// finished and its period is over (a pass that finishes early waits, so
/// the store is read once per period, not more).
pub fn scrub_starts(started: Option<u64>, finished: bool, period: u64, now: u64) -> bool {
    match started {
        None => true,
        Some(s) => finished && now >= s.saturating_add(period),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::lifecycle::tests::{sealed, user};
    use crate::core::lifecycle::{accept_receipt, record_fetch};

    #[test]
    fn a_chunk_passes_only_with_its_own_bytes_and_length() {
        let bytes = b"ciphertext".to_vec();
        let id = ChunkId::of(&bytes);
        assert_eq!(check(&id, Some(10), &bytes), Ok(()));
        assert_eq!(check(&id, None, &bytes), Ok(()));
        let mut flipped = bytes.clone();
        flipped[3] ^= 1;
        assert_eq!(check(&id, Some(10), &flipped), Err(Damage::Hash { got: ChunkId::of(&flipped) }));
        assert_eq!(check(&id, Some(10), &bytes[..4]), Err(Damage::Length { expected: 10, got: 4 }));
        assert!(matches!(check(&id, None, &bytes[..4]), Err(Damage::Hash { .. })), "short without a length");
        assert!(check(&id, Some(10), &[]).is_err());
        assert_eq!(Damage::Length { expected: 10, got: 4 }.to_string(), "cut short: 4 of 10 bytes");
    }

    #[test]
    fn damage_marks_only_those_still_waiting_for_the_chunks_and_names_the_transfer() {
        let mut t = sealed();
        // bob downloaded everything; carol has not started.
        record_fetch(&mut t, &user("bob"), true, 300);
        record_fetch(&mut t, &user("bob"), true, 301);
        let chunk = ChunkId::of(b"x");
        let (fx, alert) = on_damage(&mut t, &chunk, &Damage::Missing, &Found::Scrub, 400);
        assert_eq!(t.recipients[0].state, DeliveryState::Delivered, "bob has his copy");
        assert_eq!((t.recipients[1].state, t.recipients[1].at), (DeliveryState::Damaged, Some(400)));
        let Effect::Audit(ev) = &fx[0] else { panic!("no audit entry") };
        assert_eq!(ev.action, "chunk-damaged");
        assert!(ev.details.contains(&chunk.to_string()) && ev.details.contains("carol"), "{}", ev.details);
        let m = &alert.info.message;
        assert!(m.starts_with("CORRUPTION: ") && m.contains(&t.transfer.to_string()), "{m}");
        assert!(m.contains("missing from the store") && m.contains("OP-1"), "{m}");
        assert_eq!(alert.info.transfer, Some(t.transfer));
        assert_eq!(alert.info.kind, AlertKind::Corruption { chunk, reason: "missing from the store".into() });
        assert!(alert.people.contains(&user("alice")), "the sender is told");
        // Found again (another fetch, the next scrub): the same alert key.
        let (_, again) = on_damage(&mut t, &chunk, &Damage::Hash { got: chunk }, &Found::Fetch(user("carol")), 500);
        assert_eq!(again.key, alert.key);
        let (_, other) = on_damage(&mut t, &ChunkId::of(b"y"), &Damage::Missing, &Found::Scrub, 500);
        assert_ne!(other.key, alert.key, "another chunk is another cause");
    }

    #[test]
    fn a_damaged_recipient_who_gets_every_chunk_after_a_restore_is_delivered() {
        let mut t = sealed();
        on_damage(&mut t, &ChunkId::of(b"x"), &Damage::Missing, &Found::Scrub, 400);
        record_fetch(&mut t, &user("carol"), true, 500);
        assert_eq!(t.recipients[1].state, DeliveryState::Damaged);
        record_fetch(&mut t, &user("carol"), true, 501);
        assert_eq!(t.recipients[1].state, DeliveryState::Delivered);
        let r = exhibit_proto::AcceptedReceipt {
            receipt: exhibit_proto::SignedReceipt { bytes: vec![], signature: vec![] },
            accepted_at: 600,
            server_signature: vec![],
        };
        let (_, a) = on_damage(&mut t, &ChunkId::of(b"x"), &Damage::Missing, &Found::Scrub, 600);
        assert!(a.info.message.contains("bob cannot fetch"), "{}", a.info.message);
        accept_receipt(&mut t, &user("bob"), &r, None);
        let (_, a) = on_damage(&mut t, &ChunkId::of(b"x"), &Damage::Missing, &Found::Scrub, 700);
        assert!(a.info.message.contains("only the server's copy"), "{}", a.info.message);
    }

    #[test]
    fn the_scrub_keeps_to_its_period_and_catches_up_after_it() {
        assert_eq!(scrub_target(1000, 100, 100, 100), Some(0));
        assert_eq!(scrub_target(1000, 100, 100, 150), Some(500));
        assert_eq!(scrub_target(1000, 100, 100, 199), Some(990));
        assert_eq!(scrub_target(1000, 100, 100, 200), None, "the period is over: finish the pass");
        assert_eq!(scrub_target(u64::MAX, 0, 7 * 86_400, 86_400), Some(u64::MAX / 7));
        assert!(scrub_starts(None, false, 100, 0));
        assert!(!scrub_starts(Some(100), false, 100, 500), "unfinished: the pass goes on");
        assert!(!scrub_starts(Some(100), true, 100, 199), "finished early: wait for the period");
        assert!(scrub_starts(Some(100), true, 100, 200));
    }
}
