//! exhibit-client: the `exhibit` command and its library entry points.
//!
//! Private keys never leave this process: evidence is sealed here to the
//! recipients' age keys, and opened here only after the sender's signature
//! and every chunk id have been checked.
#![forbid(unsafe_code)]

pub mod admin;
pub mod audit;
pub mod cli;
pub mod conn;
pub mod custody;
pub mod details;
pub mod directory;
pub mod enrol;
pub mod error;
pub mod fetch;
pub mod home;
pub mod journal;
pub mod listing;
pub mod progress;
pub mod receipt;
pub mod renew;
pub mod send;
pub mod ui;

pub use error::ClientError;
pub use home::Home;
