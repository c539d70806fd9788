//! Running the server's data: backup and restore, the control socket, the
//! consistency check of metadata against stored chunks, and the scrub that
//! re-reads them.

pub mod backup;
pub mod control;
pub mod fsck;
pub mod scrub;
pub mod servercert;
