//! Why the metadata file could not be opened.

use std::path::PathBuf;

use crate::error::ServerError;

/// Why [`super::RedbMeta::open`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Another process has the file open (an exhibitd or an offline tool,
    /// of this release or an earlier one).
    #[error("{path}: in use by another process (is exhibitd already running on this data directory?)")]
    InUse { path: PathBuf },
    /// The file is in a redb file format newer than this build reads.
    #[error(
        "{path}: redb file format {found}, newer than this exhibitd reads (up to {supported}); use a newer exhibitd"
    )]
    NewerFormat { path: PathBuf, found: u8, supported: u8 },
    /// The tables are in a layout newer than this build reads.
    #[error("metadata has schema {found}, written by a newer exhibitd; this one reads schema {supported}")]
    NewerSchema { found: u64, supported: u64 },
    /// Not a redb file, or one damaged beyond what redb repairs.
    #[error("{path}: not a readable metadata file: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    /// Upgrading the file from redb file format `found` failed; the file
    /// itself was not changed.
    #[error("{path}: upgrading from redb file format {found} failed, the file is unchanged: {detail}")]
    Upgrade { path: PathBuf, found: u8, detail: String },
    /// The name that keeps the file as it was before an upgrade is taken by
    /// another file.
    #[error(
        "{backup} exists and is not {path}: it would keep {path} as it was before the upgrade; move it away and start again"
    )]
    BackupInTheWay { path: PathBuf, backup: PathBuf },
    /// File system failure.
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    /// The store failed while creating its tables or migrating them.
    #[error(transparent)]
    Store(#[from] ServerError),
}

impl From<OpenError> for ServerError {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::Store(e) => e,
            other => ServerError::Store(other.to_string()),
        }
    }
}

impl OpenError {
    /// Wrap an IO error with what was being done.
    pub(super) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> OpenError {
        let context = context.into();
        move |source| OpenError::Io { context, source }
    }
}
