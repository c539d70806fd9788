//! The client's error.

use exhibit_proto::frame::ErrorCode;
use exhibit_proto::ProtoError;

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Bytes from the server or a file were refused.
    #[error(transparent)]
    Proto(#[from] ProtoError),
    /// The server refused the request.
    #[error("server: {message}")]
    Server { code: ErrorCode, message: String },
    /// Could not reach or talk to the server.
    #[error("connection to {server}: {reason}")]
    Connect { server: String, reason: String },
    /// The stream broke mid-request.
    #[error("network: {0}")]
    Stream(String),
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    /// No enrolment in this key directory.
    #[error("not enrolled: no keys in {0} (run `exhibit enrol`, or set EXHIBIT_HOME)")]
    NotEnrolled(String),
    /// A key file or setting is unusable.
    #[error("{0}")]
    Config(String),
    /// A user's keys differ from the fingerprint pinned earlier.
    #[error(
        "the keys of {user} have changed: pinned {pinned}, directory now says {now}. \
         Check with them out of band, then run `exhibit trust {user} {now}`"
    )]
    KeyChanged { user: String, pinned: String, now: String },
    /// What arrived does not match what was signed; nothing was written.
    #[error("verification failed, nothing written: {0}")]
    Verify(String),
    /// The server's audit log no longer extends the checkpoint we hold:
    /// it was rewritten or truncated.
    #[error("AUDIT LOG TAMPERED: {0}")]
    AuditRewritten(String),
    /// Stopped part-way; what arrived is kept to continue from.
    #[error("interrupted: {0}")]
    Interrupted(String),
    /// Bad command-line input.
    #[error("{0}")]
    Usage(String),
}

impl ClientError {
    /// Wrap an IO error with what was being done.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ClientError {
        let context = context.into();
        move |source| ClientError::Io { context, source }
    }

    /// The server's error code, if the server refused.
    pub fn server_code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Server { code, .. } => Some(*code),
            _ => None,
        }
    }
}
