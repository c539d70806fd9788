//! exhibit-proto: the wire types, manifest, receipt, directory entries,
//! signing and chunk sealing of exhibit.
//!
//! Nothing here touches a socket, a file or the clock: callers pass bytes and
//! the current time in, and get bytes and decisions out. Everything can be
//! tested in memory and fuzzed.
#![forbid(unsafe_code)]

#[cfg(feature = "seal")]
mod agefile;
pub mod aligned;
pub mod approval;
pub mod audit;
pub mod b64;
pub mod case;
pub mod cert;
pub mod connect;
pub mod details;
pub mod directory;
pub mod error;
pub mod frame;
pub mod ids;
pub mod labels;
pub mod limits;
pub mod manifest;
pub mod merkle;
pub mod offline;
pub mod org;
pub mod path;
pub mod receipt;
#[cfg(feature = "seal")]
pub mod seal;
pub mod sign;
pub mod subset;
pub mod text;
pub mod tlog;
pub mod treehash;
pub mod unit;

pub use directory::{DirectoryEntry, Role, SignedEntry};
pub use error::{AgeError, ProtoError};
pub use ids::{ChunkId, TransferId, UserId};
pub use manifest::{Manifest, SignedManifest, VerifiedManifest};
pub use receipt::{AcceptedReceipt, Receipt, ReceiptBundle, SignedReceipt};

/// Application protocol negotiated in TLS (ALPN): `exhibit/1` with chunk
/// offers added ([`frame::Request::OfferChunk`]).
pub const ALPN: &[u8] = b"exhibit/2";
/// The first protocol, still spoken with peers that predate offers.
pub const ALPN_V1: &[u8] = b"exhibit/1";
/// What either end offers, preferred first.
pub const PROTOCOLS: [&[u8]; 2] = [ALPN, ALPN_V1];

pub mod duration;
