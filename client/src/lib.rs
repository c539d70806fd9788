//! exhibit-client: the `exhibit` command and its library entry points.
//!
//! Private keys never leave this process: evidence is sealed here to the
//! recipients' age keys, and opened here only after the sender's signature
//! and every chunk id have been checked.
//!
//! Layers, each importing only those below it:
//! - `cli`, `ui`: the two front doors (parse and print; serve the page).
//!   Nothing imports them but `main` (and `cli` starts `ui`).
//! - `ops`: one module per thing a user does (send, fetch, listing,
//!   receipt, custody, admin, audit, enrol, ...).
//! - `journal`: what an unfinished send or fetch leaves to continue from.
//! - `session`: the connection to the server, retrying, paging, tuning.
//! - `home` (over `keylock`: keys under a passphrase), `human`, `progress`, `reach`, `error`: leaves.
#![forbid(unsafe_code)]

pub mod cli;
pub mod error;
pub mod home;
pub mod human;
pub mod journal;
pub mod keylock;
pub mod labels;
pub mod ops;
pub mod progress;
pub mod reach;
pub mod session;
pub mod ui;

pub use error::ClientError;
pub use home::Home;
// The paths the library has always had (tests and tools use them).
pub use ops::{admin, audit, custody, details, directory, enrol, fetch, heads, listing, receipt, renew, send, witness};
pub use session as conn;
