//! The local journal of an unfinished fetch: `<transfer>.fetch` in
//! `$EXHIBIT_HOME/journal/`, a header line (where the fetch writes, and
//! its temp files' tag) and then one line per content chunk written, so a
//! later run continues with the chunks still missing.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use exhibit_proto::TransferId;
use serde::Serialize;

use super::dir;
use crate::error::ClientError;
use crate::home::Home;

/// Where the journal of a fetch of `transfer` lives.
pub fn path(home: &Home, transfer: TransferId) -> PathBuf {
    dir(home).join(format!("{transfer}.fetch"))
}

/// The first line of a fetch journal.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct FetchHeader {
    /// Transfer.
    pub transfer: TransferId,
    /// Output directory (canonical).
    pub out: PathBuf,
    /// Temp file tag.
    pub tag: u64,
    /// Journal format: 2 records content chunks by their place in the
    /// manifest; an earlier exhibit's journal (0) is not continued.
    #[serde(default)]
    pub version: u16,
    /// The items chosen, when not all (`fetch --items`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<exhibit_proto::subset::Subset>,
}

/// The fetch journal format this build writes.
pub const FETCH_JOURNAL_VERSION: u16 = 2;

/// One line of a fetch journal: JSON and a newline.
pub fn journal_line(v: &impl Serialize) -> Result<Vec<u8>, ClientError> {
    let mut line = serde_json::to_vec(v).map_err(|e| ClientError::Config(e.to_string()))?;
    line.push(b'\n');
    Ok(line)
}

/// (Re)write a fetch journal: its header and the chunks done.
pub fn write_fetch_journal(path: &Path, h: &FetchHeader, done: &HashSet<usize>) -> Result<(), ClientError> {
    if let Some(d) = path.parent() {
        crate::home::private_dir(d)?;
    }
    let mut text = journal_line(h)?;
    for d in done {
        text.extend(journal_line(d)?);
    }
    crate::home::write_private(path, &text)
}

/// Header and chunks done of a fetch journal (a torn last line ignored).
pub fn read_fetch_journal(path: &Path) -> Option<(FetchHeader, HashSet<usize>)> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.split_inclusive('\n').filter(|l| l.ends_with('\n'));
    let header: FetchHeader = serde_json::from_str(lines.next()?).ok()?;
    if header.version != FETCH_JOURNAL_VERSION {
        return None;
    }
    let done = lines.filter_map(|l| serde_json::from_str::<usize>(l).ok()).collect();
    Some((header, done))
}

/// Unfinished fetches: (transfer, output directory).
pub fn pending(home: &Home) -> Vec<(TransferId, PathBuf)> {
    let Ok(rd) = std::fs::read_dir(dir(home)) else { return vec![] };
    let mut out: Vec<_> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "fetch"))
        .filter_map(|p| read_fetch_journal(&p).map(|(h, _)| (h.transfer, h.out)))
        .collect();
    out.sort();
    out
}
