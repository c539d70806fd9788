//! The scrub: a background task that re-reads every stored chunk and
//! checks it against its id, at the pace `scrub_rate` sets (one full pass
//! per period, the store's size spread evenly over it), so a chunk damaged
//! at rest is found and alerted before anyone asks for it. Each step is
//! `app::integrity::scrub` at the injected clock's time; tests call it
//! directly.

use std::sync::Arc;
use std::time::Duration;

pub use crate::app::integrity::{scrub, ScrubProgress, ScrubStep};
use crate::state::State;

/// How often the task takes a step.
const TICK: Duration = Duration::from_secs(10);
/// The most one step reads; a step behind its schedule (a period too short
/// for the store, or a restart) catches up this much per tick.
pub const MAX_STEP: u64 = 256 << 20;

/// Run the scrub until the server stops (nothing when `scrub_rate` is off).
pub(crate) fn spawn(state: Arc<State>) -> Option<tokio::task::JoinHandle<()>> {
    state.settings.scrub_period?;
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let s = state.clone();
            match tokio::task::spawn_blocking(move || scrub(&s, s.clock.now(), MAX_STEP)).await {
                Ok(Ok(step)) if !step.raised.is_empty() => state.notify.notify_one(),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "scrub step failed"),
                Err(e) => tracing::error!(error = %e, "scrub step panicked"),
            }
        }
    }))
}
