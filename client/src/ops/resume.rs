//! `exhibit resume`: continue every interrupted fetch, then every
//! interrupted send, each from its journal.

use std::path::PathBuf;

use exhibit_proto::TransferId;

use crate::error::ClientError;
use crate::home::Home;
use crate::ops::fetch::{self, FetchOptions, Selection};
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
        let opts = FetchOptions { transfer, out: out.clone(), progress, items: Selection::AsBefore };
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

/// An interrupted fetch or send, as `exhibit resume --list` shows it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Unfinished {
    /// `fetch` or `send`.
    pub kind: &'static str,
    /// The transfer.
    #[serde(serialize_with = "crate::human::id_hex")]
    pub transfer: TransferId,
    /// Where a fetch writes, or whom a send is to and its case.
    pub detail: String,
    /// A send's case reference (`case_ref` in JSON, as everywhere).
    #[serde(rename = "case_ref")]
    pub case: Option<String>,
    /// Its journal.
    pub journal: PathBuf,
}

/// Every interrupted fetch and send, fetches first (as `resume` takes them).
pub fn list(home: &Home) -> Result<Vec<Unfinished>, ClientError> {
    let mut out: Vec<Unfinished> = crate::journal::fetch::pending(home)
        .into_iter()
        .map(|(transfer, dir)| Unfinished {
            kind: "fetch",
            transfer,
            detail: format!("into {}", dir.display()),
            case: None,
            journal: crate::journal::fetch::path(home, transfer),
        })
        .collect();
    for journal in crate::journal::send::pending(home)? {
        // A journal that cannot be read is listed by its file, to discard.
        match crate::journal::send::recover(&journal) {
            Ok(r) => {
                let to: Vec<&str> = r.header.to.iter().map(|u| u.as_str()).collect();
                let case = r.header.case_ref.as_deref().map(|c| format!(", case {c}")).unwrap_or_default();
                let detail = format!("{} file(s) to {}{case}", r.header.items.len(), to.join(", "));
                let (kind, transfer, case) = ("send", r.header.transfer, r.header.case_ref);
                out.push(Unfinished { kind, transfer, detail, case, journal });
            }
            Err(e) => tracing::warn!(journal = %journal.display(), error = %e, "unreadable send journal"),
        }
    }
    Ok(out)
}

/// Give up an interrupted fetch or send for good: its journal goes; a
/// fetch's part-written files in its output folder go too; a send's upload
/// is withdrawn on the server (its chunks are deleted there), or, if the
/// server cannot be told now, left to its stalled-upload alert.
pub async fn discard(home: &Home, r: &crate::ops::listing::TransferRef) -> Result<(Unfinished, bool), ClientError> {
    let all = list(home)?;
    let mine: Vec<&Unfinished> = all
        .iter()
        .filter(|u| match r {
            crate::ops::listing::TransferRef::Id(id) => u.transfer == *id,
            crate::ops::listing::TransferRef::Prefix(p) => u.transfer.to_string().starts_with(p.as_str()),
            crate::ops::listing::TransferRef::Case(c) => u.case.as_deref() == Some(c.as_str()),
        })
        .collect();
    let u = match mine.as_slice() {
        [one] => (*one).clone(),
        [] => {
            return Err(ClientError::Usage(format!("no interrupted fetch or send is {r}; see `exhibit resume --list`")))
        }
        _ => return Err(ClientError::Usage(format!("several interrupted transfers are {r}; give more of the id"))),
    };
    let mut told = true;
    if u.kind == "fetch" {
        if let Some(dir) = u.detail.strip_prefix("into ") {
            crate::ops::fetch::remove_leftovers(std::path::Path::new(dir), u.transfer);
        }
    } else {
        told = crate::ops::custody::revoke(home, u.transfer).await.is_ok();
    }
    std::fs::remove_file(&u.journal).map_err(ClientError::io(format!("removing {}", u.journal.display())))?;
    Ok((u, told))
}
