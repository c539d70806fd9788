//! The client's side of the wire, in one place: the connection
//! ([`Conn`], over QUIC or TLS on TCP), what worked per server
//! ([`memory`]), reconnecting after a lost one ([`retry`]), reading a
//! listing page by page ([`pages`]), and how much is kept in flight.

mod conn;
pub mod memory;
pub mod pages;
pub mod retry;

pub use conn::{unexpected, upload_time, Conn, Endpoints, Identity, Route, NODE_WAIT, REQUEST_TIMEOUT, WARN_BEFORE};

/// Chunks encrypting or uploading, or downloading and decrypting, at once.
pub const IN_FLIGHT: usize = 8;

/// Idle chunk buffers kept for reuse by a send or a fetch (enough for the
/// chunks in flight at the default chunk size).
pub const POOL_BYTES: usize = 64 << 20;

/// Wall-clock time (unix seconds) for fields the client states about
/// itself, and for its own warnings.
pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}
