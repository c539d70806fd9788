//! What an unfinished send or fetch leaves in `$EXHIBIT_HOME/journal/`
//! for `exhibit resume` (or the same command again) to continue from.

pub mod fetch;
pub mod send;

use std::path::PathBuf;

use crate::home::Home;

// The send journal's items at `journal::`, where they have always been.
pub use send::{pending, recover, Header, Journal, JournalItem, Recovered, JOURNAL_VERSION};

/// The journal folder.
fn dir(home: &Home) -> PathBuf {
    home.dir().join("journal")
}
