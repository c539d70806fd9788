//! Damaged chunks: every chunk read for a fetch is checked against its id
//! before it is sent; the scrub re-reads the whole store at `scrub_rate`;
//! a backup copies what it can. Whatever finds damage reports it here, in
//! one transaction: an audit entry and an alert per transfer that holds
//! the chunk, and its waiting recipients marked damaged.

use exhibit_proto::{ChunkId, TransferId, UserId};

use crate::app::{alerts, apply, write};
use crate::chunks::AlignedBuf;
use crate::core::integrity::{self as rules, Damage, Found};
use crate::error::ServerError;
use crate::meta::{Read, Tx};
use crate::state::State;

/// Counter: distinct chunks ever found damaged (for `/metrics`).
pub const CORRUPT_CHUNKS: &str = "corrupt_chunks";
/// Counters of the scrub's progress (see [`ScrubProgress`]).
const SCRUB: [&str; 7] = [
    "scrub_pass_started",
    "scrub_pass_bytes",
    "scrub_checked_bytes",
    "scrub_checked_chunks",
    "scrub_next",
    "scrub_pass_finished",
    "scrub_passes",
];
/// Chunk references read from the metadata at a time by the scrub.
const SCRUB_PAGE: usize = 64;

/// Read a chunk and check it against its id (and its recorded length, when
/// `expected` is known). `Ok(Err(_))` is damage; `Err(_)` is a failure of
/// the store that says nothing about the chunk (retrying may help).
pub fn read_checked(s: &State, id: &ChunkId, expected: Option<u64>) -> Result<Result<AlignedBuf, Damage>, ServerError> {
    let bytes = match s.chunks.get_pooled(id, &s.buffers) {
        Ok(b) => b,
        Err(ServerError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Err(Damage::Missing))
        }
        Err(ServerError::Io { source, .. })
            if matches!(source.kind(), std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof) =>
        {
            return Ok(Err(Damage::Unreadable { reason: source.to_string() }))
        }
        Err(e) => return Err(e),
    };
    match rules::check(id, expected, &bytes) {
        Ok(()) => Ok(Ok(bytes)),
        Err(d) => {
            s.buffers.give(bytes);
            Ok(Err(d))
        }
    }
}

/// A chunk for `me`'s fetch of `transfer`: read, and checked unless the
/// server runs as the benchmark's baseline. A damaged one is reported and
/// refused with [`ServerError::ChunkDamaged`].
pub fn read_for_fetch(
    s: &State,
    transfer: &TransferId,
    me: &UserId,
    id: &ChunkId,
    len: u32,
    now: u64,
) -> Result<AlignedBuf, ServerError> {
    if !s.check_reads.load(std::sync::atomic::Ordering::Relaxed) {
        return s.chunks.get_pooled(id, &s.buffers);
    }
    let damage = match read_checked(s, id, Some(len.into()))? {
        Ok(bytes) => return Ok(bytes),
        Err(d) => d,
    };
    tracing::error!(chunk = %id, %transfer, %damage, "a stored chunk failed its check; refused");
    match report(s, id, &damage, &Found::Fetch(me.clone()), Some(transfer), now) {
        Ok(raised) if !raised.is_empty() => s.notify.notify_one(),
        Ok(_) => {}
        // The refusal stands; the log line above says what was found.
        Err(e) => tracing::error!(error = %e, chunk = %id, "could not record a damaged chunk"),
    }
    Err(ServerError::ChunkDamaged { chunk: *id, transfer: *transfer, reason: damage.to_string() })
}

/// The transfers that hold chunk `id`; `hint` (the one being fetched) is
/// looked at first, and the rest only while references are unaccounted
/// for (no index maps a chunk to its transfers: chunks are encrypted per
/// transfer, so in practice there is one, and this is rare).
pub fn transfers_with(r: &dyn Read, id: &ChunkId, hint: Option<&TransferId>) -> Result<Vec<TransferId>, ServerError> {
    let want = r.chunk_ref(id)?;
    let mut out = vec![];
    if let Some(t) = hint {
        if r.transfer_chunk(t, id)?.is_some() {
            out.push(*t);
        }
    }
    let mut after = None;
    while (out.len() as u64) < want {
        let page = r.transfers(after.as_ref(), 1000)?;
        let Some(last) = page.last() else { break };
        after = Some(last.transfer);
        for t in page {
            if Some(&t.transfer) != hint && r.transfer_chunk(&t.transfer, id)?.is_some() {
                out.push(t.transfer);
            }
        }
    }
    Ok(out)
}

/// Report a damaged chunk: for each transfer holding it, an audit entry,
/// its waiting recipients marked damaged, and an alert (once per transfer
/// and chunk). A chunk no metadata refers to any more (deleted by expiry
/// while it was being read) is not damage. Returns the alerts raised.
pub fn report(
    s: &State,
    id: &ChunkId,
    damage: &Damage,
    found: &Found,
    hint: Option<&TransferId>,
    now: u64,
) -> Result<Vec<u64>, ServerError> {
    let notifiers = alerts::notifier_names(s);
    write(s, |tx| {
        if tx.chunk_ref(id)? == 0 {
            return Ok(vec![]);
        }
        let first = format!("damaged:{id}");
        if tx.counter(&first)?.is_none() {
            tx.set_counter(&first, now)?;
            let n = tx.counter(CORRUPT_CHUNKS)?.unwrap_or(0);
            tx.set_counter(CORRUPT_CHUNKS, n + 1)?;
        }
        let mut raised = vec![];
        let holders = transfers_with(tx, id, hint)?;
        for t in &holders {
            let Some(mut rec) = tx.transfer(t)? else { continue };
            let (fx, alert) = rules::on_damage(&mut rec, id, damage, found, now);
            tx.put_transfer(&rec)?;
            apply(s, tx, t, fx)?;
            raised.extend(alerts::raise(s, tx, alert, &notifiers)?);
        }
        if holders.is_empty() {
            let msg = format!("CORRUPTION: chunk {id} is damaged on the server ({damage}; {found})");
            let a = crate::core::alerts::storage(&msg, &format!("damaged:{id}"), now);
            raised.extend(alerts::raise(s, tx, a, &notifiers)?);
        }
        Ok(raised)
    })
}

/// Where the scrub is, as kept in the metadata's counters (so a restart
/// goes on from there) and shown on `/metrics`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScrubProgress {
    /// When the current pass started (`None`: no pass yet).
    pub pass_started: Option<u64>,
    /// Bytes the store held when it started: the pass's schedule.
    pub pass_bytes: u64,
    /// Bytes checked in this pass.
    pub checked_bytes: u64,
    /// Chunks checked in this pass.
    pub checked_chunks: u64,
    /// The first 8 bytes (big-endian) of the next chunk id to check.
    pub next: u64,
    /// The pass has checked every chunk.
    pub finished: bool,
    /// Passes completed.
    pub passes: u64,
}

impl ScrubProgress {
    /// As last saved.
    pub fn load(r: &dyn Read) -> Result<ScrubProgress, ServerError> {
        let mut v = [0u64; 7];
        let mut started = None;
        for (i, name) in SCRUB.iter().enumerate() {
            let c = r.counter(name)?;
            if i == 0 {
                started = c;
            }
            v[i] = c.unwrap_or(0);
        }
        Ok(ScrubProgress {
            pass_started: started,
            pass_bytes: v[1],
            checked_bytes: v[2],
            checked_chunks: v[3],
            next: v[4],
            finished: v[5] != 0,
            passes: v[6],
        })
    }

    fn save(&self, tx: &mut dyn Tx) -> Result<(), ServerError> {
        let v = [
            self.pass_started.unwrap_or(0),
            self.pass_bytes,
            self.checked_bytes,
            self.checked_chunks,
            self.next,
            u64::from(self.finished),
            self.passes,
        ];
        for (name, value) in SCRUB.iter().zip(v) {
            tx.set_counter(name, value)?;
        }
        Ok(())
    }
}

/// What one scrub step did.
#[derive(Debug, Default)]
pub struct ScrubStep {
    /// Chunks checked.
    pub chunks: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Damaged chunks found.
    pub damaged: Vec<ChunkId>,
    /// Alerts raised.
    pub raised: Vec<u64>,
}

/// One step of the scrub at `now`: check chunks, in id order, until the
/// pass is where its schedule says it should be by now (see
/// [`rules::scrub_target`]) or `max_bytes` have been read in this step.
/// Does nothing when `scrub_rate` is off.
pub fn scrub(s: &State, now: u64, max_bytes: u64) -> Result<ScrubStep, ServerError> {
    let mut out = ScrubStep::default();
    let Some(period) = s.settings.scrub_period else { return Ok(out) };
    let mut p = ScrubProgress::load(s.meta.read()?.as_ref())?;
    let mut changed = false;
    if rules::scrub_starts(p.pass_started, p.finished, period, now) {
        let pass_bytes = stored_bytes(s)?;
        p = ScrubProgress { pass_started: Some(now), pass_bytes, passes: p.passes, ..ScrubProgress::default() };
        changed = true;
    }
    let started = p.pass_started.unwrap_or(now);
    let behind =
        |p: &ScrubProgress| rules::scrub_target(p.pass_bytes, started, period, now).is_none_or(|t| p.checked_bytes < t);
    'pass: while !p.finished && out.bytes < max_bytes && behind(&p) {
        let mut from = [0u8; 32];
        from[..8].copy_from_slice(&p.next.to_be_bytes());
        let page = s.meta.read()?.chunk_refs_from(&ChunkId(from), SCRUB_PAGE)?;
        if page.is_empty() {
            p.finished = true;
            p.passes += 1;
            changed = true;
            break;
        }
        for (id, _) in page {
            let n = match read_checked(s, &id, None)? {
                Ok(bytes) => {
                    let n = bytes.len() as u64;
                    s.buffers.give(bytes);
                    n
                }
                Err(damage) => {
                    let raised = report(s, &id, &damage, &Found::Scrub, None, now)?;
                    if !raised.is_empty() || s.meta.read()?.chunk_ref(&id)? > 0 {
                        tracing::error!(chunk = %id, %damage, "the scrub found a damaged chunk");
                        out.damaged.push(id);
                    }
                    out.raised.extend(raised);
                    0
                }
            };
            out.chunks += 1;
            out.bytes += n;
            p.checked_chunks += 1;
            p.checked_bytes += n;
            changed = true;
            let mut prefix = [0u8; 8];
            prefix.copy_from_slice(&id.as_bytes()[..8]);
            match u64::from_be_bytes(prefix).checked_add(1) {
                Some(next) => p.next = next,
                None => {
                    p.finished = true;
                    p.passes += 1;
                    break 'pass;
                }
            }
            if out.bytes >= max_bytes || !behind(&p) {
                break 'pass;
            }
        }
    }
    if changed {
        write(s, |tx| p.save(tx))?;
    }
    Ok(out)
}

/// Ciphertext bytes of the transfers whose chunks are kept: the size of
/// the store a scrub pass reads.
fn stored_bytes(s: &State) -> Result<u64, ServerError> {
    let transfers = crate::app::listings::every_transfer(s)?;
    Ok(transfers.iter().filter(|t| t.state != exhibit_proto::frame::TransferState::Expired).map(|t| t.bytes).sum())
}
