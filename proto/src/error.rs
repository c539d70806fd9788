//! The error of everything in this crate that checks bytes from outside.

use crate::ids::ChunkId;

/// Why bytes from the network or a file were refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtoError {
    /// The bytes do not decode as the expected structure.
    #[error("malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    /// A length or count is over its bound.
    #[error("{what} too large: {got} > {max}")]
    TooLarge { what: &'static str, got: u64, max: u64 },
    /// A signature does not verify under the key that should have made it.
    #[error("bad signature on {what}")]
    BadSignature { what: &'static str },
    /// A field names someone other than who it should.
    #[error("{what}: expected {expected}, got {got}")]
    Mismatch { what: &'static str, expected: String, got: String },
    /// A version this build does not understand.
    #[error("unsupported {what} version {got}")]
    Version { what: &'static str, got: u16 },
    /// A chunk's bytes do not hash to its id.
    #[error("chunk {index}: expected id {expected}, got {got}")]
    ChunkHashMismatch { index: usize, expected: ChunkId, got: ChunkId },
    /// A chunk's length differs from the manifest.
    #[error("chunk {index}: expected {expected} bytes, got {got}")]
    ChunkLength { index: usize, expected: u64, got: u64 },
    /// Decryption failed: wrong key, or the ciphertext was altered.
    #[error("decryption of {what} failed: {reason}")]
    Decrypt { what: String, reason: String },
    /// Encryption failed.
    #[error("encryption failed: {0}")]
    Encrypt(String),
    /// A path from sealed details is unsafe to write.
    #[error("unsafe path {path:?}: {reason}")]
    UnsafePath { path: String, reason: &'static str },
    /// An identifier is not well formed.
    #[error("invalid {what} {got:?}: {reason}")]
    InvalidId { what: &'static str, got: String, reason: &'static str },
}

impl ProtoError {
    pub(crate) fn malformed(what: &'static str, e: impl std::fmt::Display) -> Self {
        ProtoError::Malformed { what, reason: e.to_string() }
    }
}
