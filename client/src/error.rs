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
    /// Neither QUIC nor TLS over TCP reached the server: what each said,
    /// and what to check.
    #[error("cannot reach the server: {tried}. {hint}")]
    Unreachable { tried: String, hint: String },
    /// The server refused this user: revoked. Never retried.
    #[error("connection to {server}: {reason}")]
    Revoked { server: String, reason: String },
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
    /// What arrived is sealed to other keys only: it is addressed to
    /// someone else (not damaged); nothing was written.
    #[error("{0}; nothing written")]
    NotAddressed(String),
    /// What arrived does not match what was signed; nothing was written.
    #[error("verification failed, nothing written: {0}")]
    Verify(String),
    /// The server's audit log no longer extends the checkpoint we hold:
    /// it was rewritten or truncated.
    #[error("AUDIT LOG TAMPERED: {0}")]
    AuditRewritten(String),
    /// The server's signed tree head does not extend the one this client
    /// held: its log was rolled back, rewritten or forked. Evidence (both
    /// signed heads) is in `report`.
    #[error(
        "AUDIT LOG FORKED: {reason}. Nothing more was done. Both signed tree heads are in {}: \
         keep that file and give it to whoever runs the server and to your security officer",
        report.display()
    )]
    LogForked { reason: String, report: std::path::PathBuf },
    /// Keys in a user's name that are not the ones the directory or the
    /// audit log should have: the server (or whoever holds its keys)
    /// published a substitute. Evidence is in `report`.
    #[error(
        "KEYS SUBSTITUTED: {reason}. Nothing more was done. The evidence is in {}: \
         keep that file and give it to whoever runs the server and to your security officer",
        report.display()
    )]
    KeysSubstituted { reason: String, report: std::path::PathBuf },
    /// Stopped part-way; what arrived is kept to continue from.
    #[error("interrupted: {0}")]
    Interrupted(String),
    /// The keys are under a passphrase and none could be had.
    #[error("the keys are protected by a passphrase: {0}")]
    PassphraseRequired(String),
    /// The passphrase given does not open the keys.
    #[error("wrong passphrase: it does not open the keys in this key directory")]
    WrongPassphrase,
    /// Bad command-line input.
    #[error("{0}")]
    Usage(String),
    /// The disclosure rules refuse this send (or the recipient's client
    /// refuses what arrived); nothing was uploaded or written.
    #[error("refused: {0}")]
    Disclosure(String),
}

impl ClientError {
    /// Wrap an IO error with what was being done.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ClientError {
        let context = context.into();
        move |source| ClientError::Io { context, source }
    }

    /// A refusal of sealed bytes as the user is told it: not addressed to
    /// us, or a failed verification (altered, cut short, not what the
    /// sender signed).
    pub fn refused(e: ProtoError) -> ClientError {
        match e {
            e @ ProtoError::NotAddressed { .. } => ClientError::NotAddressed(e.to_string()),
            e => ClientError::Verify(e.to_string()),
        }
    }

    /// The exit code of a command that failed with this error: 3 when the
    /// server's audit log was found rolled back, rewritten or forked (the
    /// one failure a script must never retry past), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::LogForked { .. } | ClientError::AuditRewritten(_) | ClientError::KeysSubstituted { .. } => 3,
            _ => 1,
        }
    }

    /// A stable snake_case code for scripts (`{"error": {"code": …}}`
    /// under `--json`): what kind of failure, whatever the words say.
    pub fn code(&self) -> &'static str {
        match self {
            ClientError::Proto(_) => "bad_data",
            ClientError::Server { code, .. } => match code {
                ErrorCode::BadRequest => "bad_request",
                ErrorCode::Unauthenticated => "unauthenticated",
                ErrorCode::Forbidden => "forbidden",
                ErrorCode::NotFound => "not_found",
                ErrorCode::Conflict => "conflict",
                ErrorCode::TooLarge => "too_large",
                ErrorCode::BadSignature => "bad_signature",
                ErrorCode::ChunkMismatch => "chunk_mismatch",
                ErrorCode::Internal => "server_failed",
                ErrorCode::StorageFull => "server_storage_full",
                ErrorCode::ChunkDamaged => "chunk_damaged",
                _ => "server_refused",
            },
            ClientError::Connect { .. } | ClientError::Unreachable { .. } => "unreachable",
            ClientError::Revoked { .. } => "revoked",
            ClientError::Stream(_) => "network",
            ClientError::Io { .. } => "io",
            ClientError::NotEnrolled(_) => "not_enrolled",
            ClientError::Config(_) => "config",
            ClientError::KeyChanged { .. } => "key_changed",
            ClientError::NotAddressed(_) => "not_addressed",
            ClientError::Verify(_) => "verification_failed",
            ClientError::AuditRewritten(_) => "audit_log_rewritten",
            ClientError::LogForked { .. } => "audit_log_forked",
            ClientError::KeysSubstituted { .. } => "keys_substituted",
            ClientError::Interrupted(_) => "interrupted",
            ClientError::PassphraseRequired(_) => "passphrase_required",
            ClientError::WrongPassphrase => "wrong_passphrase",
            ClientError::Usage(_) => "usage",
            ClientError::Disclosure(_) => "refused_by_disclosure_rules",
        }
    }

    /// The error as `--json` prints it: `{"error": {"code", "message",
    /// "exit_code"}}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"error": {
            "code": self.code(),
            "message": self.to_string(),
            "exit_code": self.exit_code(),
        }})
    }

    /// The server's error code, if the server refused.
    pub fn server_code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Server { code, .. } => Some(*code),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use exhibit_proto::AgeError;

    use super::*;

    /// "Not for you" and "altered" reach the user as different errors.
    #[test]
    fn not_addressed_and_tampered_read_differently() {
        let other = ClientError::refused(ProtoError::NotAddressed { what: "chunk 2".into() });
        assert!(matches!(other, ClientError::NotAddressed(_)), "{other}");
        assert!(other.to_string().contains("not encrypted to this key"), "{other}");
        let altered = ProtoError::Decrypt { what: "chunk 2".into(), reason: AgeError::InvalidMac { segment: 0 } };
        let altered = ClientError::refused(altered);
        assert!(matches!(altered, ClientError::Verify(_)), "{altered}");
        assert!(altered.to_string().contains("altered"), "{altered}");
    }
}
