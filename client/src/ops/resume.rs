//! `exhibit resume`: continue every interrupted fetch, then every
//! interrupted send, each from its journal.

use std::path::PathBuf;

use exhibit_proto::TransferId;

use crate::error::ClientError;
use crate::home::Home;
use crate::ops::fetch::{self, FetchOptions};
use crate::ops::send::{self, SendOutcome};

/// One continued fetch or send, as it ends.
#[derive(Debug)]
pub enum Step {
    /// A fetch finished and was receipted.
    Fetched { transfer: TransferId, out: PathBuf },
    /// A fetch failed again.
    FetchFailed { transfer: TransferId, error: ClientError },
    /// A send was sealed.
    Sent(SendOutcome),
    /// A send failed again; its journal stays.
    SendFailed { journal: PathBuf, error: ClientError },
}

/// What `resume` did in all.
#[derive(Debug, Default)]
pub struct Summary {
    /// Transfers finished.
    pub done: Vec<String>,
    /// How many failed again.
    pub failed: usize,
    /// Whether there was anything to continue.
    pub found: bool,
}

/// Continue every unfinished fetch and send, telling `each` as each ends.
pub async fn resume_all(home: &Home, progress: bool, mut each: impl FnMut(&Step)) -> Result<Summary, ClientError> {
    let sends = crate::journal::send::pending(home)?;
    let fetches = crate::journal::fetch::pending(home);
    let mut summary = Summary { found: !sends.is_empty() || !fetches.is_empty(), ..Summary::default() };
    for (transfer, out) in fetches {
        let opts = FetchOptions { transfer, out: out.clone(), progress };
        let step = match fetch::fetch(home, opts).await {
            Ok(r) => {
                summary.done.push(r.transfer.to_string());
                Step::Fetched { transfer, out }
            }
            Err(error) => {
                summary.failed += 1;
                Step::FetchFailed { transfer, error }
            }
        };
        each(&step);
    }
    for journal in sends {
        let step = match send::resume(home, &journal, progress).await {
            Ok(out) => {
                summary.done.push(out.transfer.to_string());
                Step::Sent(out)
            }
            Err(error) => {
                summary.failed += 1;
                Step::SendFailed { journal, error }
            }
        };
        each(&step);
    }
    Ok(summary)
}
