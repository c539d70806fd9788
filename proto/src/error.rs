//! The error of everything in this crate that checks bytes from outside.

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
    /// A chunk's bytes do not hash to its id (both in hex).
    #[error("chunk {index}: expected id {expected}, got {got}")]
    ChunkHashMismatch { index: usize, expected: String, got: String },
    /// A chunk's length differs from the manifest.
    #[error("chunk {index}: expected {expected} bytes, got {got}")]
    ChunkLength { index: usize, expected: u64, got: u64 },
    /// An age file is sealed to other keys only: addressed to someone
    /// else, not damaged.
    #[error("{what} is not encrypted to this key: it is addressed to someone else")]
    NotAddressed { what: String },
    /// An age file does not open with a key it is addressed to: altered,
    /// cut short, or not an age file at all.
    #[error("decryption of {what} failed (altered or damaged): {reason}")]
    Decrypt { what: String, reason: AgeError },
    /// Encryption failed.
    #[error("encryption failed: {0}")]
    Encrypt(AgeError),
    /// A path from sealed details is unsafe to write.
    #[error("unsafe path \"{}\": {reason}", crate::text::escape(path))]
    UnsafePath { path: String, reason: &'static str },
    /// An identifier is not well formed.
    #[error("invalid {what} {got:?}: {reason}")]
    InvalidId { what: &'static str, got: String, reason: &'static str },
    /// Human-supplied text breaks the text rule ([`crate::text`]).
    #[error(transparent)]
    Text(#[from] crate::text::TextError),
}

/// Why an age file could not be made or opened. Only
/// [`AgeError::NoMatchingKeys`] means "not for this key"; every other
/// opening error means the file is not what was sealed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AgeError {
    /// No stanza of the header is for this key: the file is addressed to
    /// someone else.
    #[error("not encrypted to this key")]
    NoMatchingKeys,
    /// The header's MAC does not match under the file key it wraps: the
    /// header was altered.
    #[error("header MAC does not match")]
    InvalidHeaderMac,
    /// A payload segment does not authenticate: altered, reordered, or the
    /// file cut at a segment edge.
    #[error("segment {segment} does not authenticate")]
    InvalidMac { segment: usize },
    /// The payload is shorter than its nonce and last segment's tag, or its
    /// last segment is empty after full ones.
    #[error("payload is truncated")]
    Truncated,
    /// The header is not written as the age v1 spec writes one.
    #[error("malformed header: {reason}")]
    BadHeader { reason: String },
    /// Not an age v1 file (another version, or no age intro line).
    #[error("not an age v1 file")]
    Unsupported,
    /// The plaintext is longer than the room the caller declared for it.
    #[error("plaintext longer than declared: {got} bytes, room for {room}")]
    PlaintextTooLong { room: usize, got: usize },
    /// Encrypting: no recipient to wrap the file key to.
    #[error("no recipients")]
    NoRecipients,
    /// Encrypting: the output buffer is smaller than the file.
    #[error("{need} bytes do not fit the output buffer of {have}")]
    BufferTooSmall { need: usize, have: usize },
    /// The system's random generator failed.
    #[error("no randomness")]
    NoRandomness,
    /// A key derivation or seal the crypto library refused.
    #[error("crypto: {0}")]
    Crypto(&'static str),
    /// A recipient could not wrap the file key.
    #[error("wrapping the file key: {0}")]
    Wrap(String),
}

impl ProtoError {
    pub(crate) fn malformed(what: &'static str, e: impl std::fmt::Display) -> Self {
        ProtoError::Malformed { what, reason: e.to_string() }
    }
}
