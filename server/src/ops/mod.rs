//! Running the server: its authority and certificates, TLS, the config
//! file, backup and restore, and the consistency check.

pub mod authority;
pub mod backup;
pub mod config;
pub mod fsck;
pub(crate) mod tls;
