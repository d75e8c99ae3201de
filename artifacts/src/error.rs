//! The crate's single error type.

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong storing or serving artifacts. Each message
/// says what was wrong and what to do; [`Error::status`] gives the HTTP
/// status a caller answers with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("artifact path {path:?} is not accepted: {reason}")]
    InvalidPath { path: String, reason: String },

    #[error(
        "{0} cannot hold artifacts: identifiers are letters, digits, '-', '_' (model names as the registry accepts them, versions from 1)"
    )]
    InvalidTree(String),

    #[error("{0:?} is not a sha256 digest; give sha256:<64 hex characters>")]
    InvalidDigest(String),

    #[error(
        "{what} has sha256 {actual}, not the {declared} the client declared; nothing was kept, upload it again"
    )]
    DigestMismatch {
        what: String,
        declared: String,
        actual: String,
    },

    #[error(
        "{path:?} is larger than the {limit}-byte limit per file (--max-artifact-file-bytes); nothing was kept"
    )]
    TooLarge { path: String, limit: u64 },

    #[error("the upload of {path:?} ended early ({cause}); nothing was kept, upload it again")]
    Truncated { path: String, cause: String },

    #[error("{path:?} cannot be stored: {existing:?} is already a {kind} in {tree}")]
    PathConflict {
        path: String,
        existing: String,
        kind: &'static str,
        tree: String,
    },

    #[error("{0} has no files; upload them before sealing")]
    NothingToSeal(String),

    #[error("{0} was not found")]
    NotFound(String),

    #[error(
        "there is no resumable upload {0:?}: it completed, was aborted or expired; begin a new one"
    )]
    UploadNotFound(String),

    #[error(
        "resumable upload {id} is at offset {expected}, not {got}: send the bytes from offset {expected} (GET the upload to see its offset)"
    )]
    OffsetMismatch { id: String, expected: u64, got: u64 },

    #[error(
        "resumable upload {0} is being appended to by another request; wait for it, then GET the upload's offset"
    )]
    UploadBusy(String),

    #[error(
        "resumable upload {id} was begun for {size} bytes and more arrived; nothing of this request was kept, begin a new upload with the right size"
    )]
    UploadOverrun { id: String, size: u64 },

    #[error(
        "the chunk for resumable upload {id} ended early ({cause}); the bytes up to offset {offset} are kept, resume from there"
    )]
    ChunkBrokeOff {
        id: String,
        offset: u64,
        cause: String,
    },

    #[error("{0}")]
    Unsupported(&'static str),

    /// Stored data does not match what the registry recorded.
    #[error("artifact store corrupt: {0}")]
    Corrupt(String),

    /// A garbage-collection sweep found something it cannot decide safely
    /// and deletes nothing.
    #[error("artifact garbage collection deleted nothing: {0}")]
    GcUnsafe(String),

    #[error("artifact storage failed: {0}")]
    Storage(#[from] object_store::Error),

    #[error("artifact storage failed: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            Error::InvalidPath { .. }
            | Error::InvalidTree(_)
            | Error::InvalidDigest(_)
            | Error::DigestMismatch { .. }
            | Error::Truncated { .. }
            | Error::NothingToSeal(_) => 400,
            Error::NotFound(_) | Error::UploadNotFound(_) => 404,
            Error::PathConflict { .. } | Error::OffsetMismatch { .. } | Error::UploadBusy(_) => 409,
            Error::TooLarge { .. } | Error::UploadOverrun { .. } => 413,
            Error::ChunkBrokeOff { .. } => 400,
            Error::Unsupported(_) => 501,
            Error::Corrupt(_) | Error::GcUnsafe(_) | Error::Storage(_) | Error::Io(_) => 500,
        }
    }

    /// A stable machine-readable code for the native API's error body.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidPath { .. } => "invalid_artifact_path",
            Error::InvalidTree(_) => "invalid_argument",
            Error::InvalidDigest(_) => "invalid_digest",
            Error::DigestMismatch { .. } => "digest_mismatch",
            Error::TooLarge { .. } => "payload_too_large",
            Error::Truncated { .. } => "truncated_upload",
            Error::PathConflict { .. } => "conflict",
            Error::NothingToSeal(_) => "no_artifacts",
            Error::NotFound(_) | Error::UploadNotFound(_) => "not_found",
            Error::OffsetMismatch { .. } => "offset_mismatch",
            Error::UploadBusy(_) => "upload_busy",
            Error::UploadOverrun { .. } => "payload_too_large",
            Error::ChunkBrokeOff { .. } => "truncated_upload",
            Error::Unsupported(_) => "unsupported",
            Error::Corrupt(_) | Error::GcUnsafe(_) | Error::Storage(_) | Error::Io(_) => "internal",
        }
    }
}
