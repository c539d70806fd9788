//! The alert scheduler and watchdog, driven by the injected clock, and
//! the notifiers (`notify`) that tell people. What is due and what to
//! raise is decided in `core::alerts` and done in `app::alerts`, each
//! alert inside the transaction that removes the index entry that caused
//! it, under a dedup key per cause, so a crash or restart mid-scan can
//! neither lose nor repeat one.

pub mod notify;

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use crate::app::alerts::{scan, scan_batch, watchdog, ScanReport, BATCH};
use crate::state::State;

/// Run the scheduler and the watchdog until the server stops.
pub(crate) fn spawn(state: Arc<State>) -> Vec<tokio::task::JoinHandle<()>> {
    let interval = Duration::from_secs(state.settings.scan_interval);
    let started = state.clock.now();
    let s = state.clone();
    let scheduler = tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let s2 = s.clone();
            let t0 = Instant::now();
            let r = tokio::task::spawn_blocking(move || scan(&s2, s2.clock.now())).await;
            match r {
                Ok(Ok(r)) => {
                    s.last_scan_micros.store(t0.elapsed().as_micros() as u64, std::sync::atomic::Ordering::Relaxed);
                    if !r.raised.is_empty() {
                        s.notify.notify_one();
                    }
                }
                Ok(Err(e)) => tracing::error!(error = %e, "alert scan failed"),
                Err(e) => tracing::error!(error = %e, "alert scan panicked"),
            }
        }
    });
    let s = state;
    let watchdog_task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        loop {
            tick.tick().await;
            let s2 = s.clone();
            match tokio::task::spawn_blocking(move || watchdog(&s2, s2.clock.now(), started)).await {
                Ok(Ok(Some(_))) => s.notify.notify_one(),
                Ok(Err(e)) => tracing::error!(error = %e, "watchdog failed"),
                _ => {}
            }
        }
    });
    vec![scheduler, watchdog_task]
}
