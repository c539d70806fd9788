//! Running the server's data: backup and restore, and the consistency
//! check of metadata against stored chunks.

pub mod backup;
pub mod fsck;
