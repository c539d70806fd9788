//! The server's error, and how each kind is told to the client.

use exhibit_proto::frame::ErrorCode;
use exhibit_proto::ProtoError;

/// Why a request or a server operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// Bytes from the client were refused.
    #[error(transparent)]
    Proto(#[from] ProtoError),
    /// No valid client certificate, or not enrolled.
    #[error("not authenticated: {0}")]
    Unauthenticated(String),
    /// An enrolment code that is unknown, used or expired (counted
    /// against the address that sent it).
    #[error("not authenticated: {0}")]
    WrongCode(String),
    /// The caller may not do this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Missing, or not the caller's to see.
    #[error("{0}: not found or not yours")]
    NotFound(String),
    /// A request that breaks a rule.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Conflicts with the current state.
    #[error("conflict: {0}")]
    Conflict(String),
    /// Chunk bytes do not hash to the declared id.
    #[error("chunk bytes do not match id {expected} (got {got})")]
    ChunkMismatch { expected: String, got: String },
    /// A stored chunk failed its check as it was read for a fetch: it was
    /// not sent, and the damage has been reported.
    #[error(
        "chunk {chunk} of transfer {transfer} is damaged on the server ({reason}); it was not sent. The sender and \
         the server's administrators have been told; it can be fetched once it is restored"
    )]
    ChunkDamaged { chunk: exhibit_proto::ChunkId, transfer: exhibit_proto::TransferId, reason: String },
    /// Metadata store failure.
    #[error("metadata store: {0}")]
    Store(String),
    /// File system failure.
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    /// The chunk store is out of space; nothing was stored.
    #[error("server storage is full; nothing was stored, retry later")]
    StorageFull,
    /// Configuration or set-up problem.
    #[error("{0}")]
    Setup(String),
    /// `exhibitd backup` of a deployment whose metadata is in PostgreSQL:
    /// refused before anything is connected to or written. A copy made
    /// through one node cannot be consistent with the database and the
    /// chunk store that every node goes on writing (another node's
    /// deletions are not held back while it copies), and what it restores
    /// is a single-node redb deployment, not this one.
    #[error(
        "exhibitd backup is for the embedded redb metadata; this deployment keeps its metadata in PostgreSQL \
         ([metadata] backend = \"postgres\"), so nothing was written. Back up the database with PostgreSQL's own \
         tools (pg_dump, or WAL archiving for point-in-time recovery) and the chunks with the store's own \
         (S3 bucket versioning or replication; a copy of the chunk directory on disk): see deploy/RUNBOOK.md, \
         \"Backup\""
    )]
    BackupNeedsDatabaseTools,
    /// The peer went away or the stream broke.
    #[error("stream: {0}")]
    Stream(String),
}

impl ServerError {
    /// Wrap an IO error with what was being done.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServerError {
        let context = context.into();
        move |source| ServerError::Io { context, source }
    }

    /// The code sent to the client.
    pub fn code(&self) -> ErrorCode {
        match self {
            ServerError::Proto(ProtoError::BadSignature { .. }) => ErrorCode::BadSignature,
            ServerError::Proto(ProtoError::TooLarge { .. }) => ErrorCode::TooLarge,
            ServerError::Proto(_) | ServerError::BadRequest(_) => ErrorCode::BadRequest,
            ServerError::Unauthenticated(_) | ServerError::WrongCode(_) => ErrorCode::Unauthenticated,
            ServerError::Forbidden(_) => ErrorCode::Forbidden,
            ServerError::NotFound(_) => ErrorCode::NotFound,
            ServerError::Conflict(_) => ErrorCode::Conflict,
            ServerError::ChunkMismatch { .. } => ErrorCode::ChunkMismatch,
            ServerError::StorageFull => ErrorCode::StorageFull,
            ServerError::ChunkDamaged { .. } => ErrorCode::ChunkDamaged,
            ServerError::Store(_)
            | ServerError::Io { .. }
            | ServerError::Setup(_)
            | ServerError::BackupNeedsDatabaseTools
            | ServerError::Stream(_) => ErrorCode::Internal,
        }
    }
}
