//! Progress bars on stderr, shown only on a terminal and never with --json;
//! and, for `exhibit ui`, a [`Meter`] that the same calls keep up to date.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Bytes done of a total, read by the web UI while a send or fetch runs.
#[derive(Debug, Default)]
pub struct Meter {
    /// Bytes done.
    pub done: AtomicU64,
    /// Bytes in all.
    pub total: AtomicU64,
}

tokio::task_local! {
    static METER: Arc<Meter>;
}

/// Run `fut` (a send or fetch) with every progress bar it makes also
/// counting into `meter`.
pub async fn metered<F: std::future::Future>(meter: Arc<Meter>, fut: F) -> F::Output {
    METER.scope(meter, fut).await
}

/// A byte-count progress bar (or nothing), with a count of files when
/// there is more than one.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    meter: Option<Arc<Meter>>,
    what: String,
    files: Option<(AtomicU64, u64)>,
}

impl Progress {
    /// A bar for `total` bytes, if `show`.
    pub fn new(show: bool, total: u64, what: &str) -> Self {
        let meter = METER.try_with(Arc::clone).ok();
        if let Some(m) = &meter {
            m.total.store(total, Ordering::Relaxed);
            m.done.store(0, Ordering::Relaxed);
        }
        if !show {
            return Progress { bar: None, meter, what: what.to_owned(), files: None };
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        if let Ok(style) =
            ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what.to_owned());
        Progress { bar: Some(bar), meter, what: what.to_owned(), files: None }
    }

    /// Count files too, of `total` (shown when there is more than one).
    pub fn with_files(mut self, total: u64) -> Self {
        if total > 1 {
            self.files = Some((AtomicU64::new(0), total));
            self.files_done(0);
        }
        self
    }

    /// Count `n` more files done.
    pub fn files_done(&self, n: u64) {
        if let (Some(b), Some((done, total))) = (&self.bar, &self.files) {
            let d = done.fetch_add(n, Ordering::Relaxed) + n;
            b.set_message(format!("{} {d}/{total} files", self.what));
        }
    }

    /// Count bytes done.
    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
        if let Some(m) = &self.meter {
            m.done.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Done.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
