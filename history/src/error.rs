//! The crate's single error type.

use std::path::PathBuf;
use std::time::Duration;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the history store.
///
/// Each message says what was wrong and what to do about it. Only
/// [`Error::Overloaded`] is retryable ([`Error::is_retryable`]); map it to
/// HTTP 503 with a `Retry-After` header.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The buffer or the WAL queue is full. Nothing was written; retry the
    /// same write after `retry_after`.
    #[error(
        "history store overloaded ({reason}); nothing was written, retry after {retry_after:?}"
    )]
    Overloaded {
        /// Suggested delay before retrying.
        retry_after: Duration,
        /// Which bound was hit.
        reason: &'static str,
    },

    /// A bulk load with this key was committed already; nothing was added.
    #[error("a bulk load with key {:?} was committed already ({} rows); nothing was added", record.key, record.rows)]
    AlreadyLoaded {
        record: Box<crate::bulk::LoadRecord>,
    },

    /// A write named a table the store was not opened with.
    #[error(
        "unknown table `{table}`: declare it in the TableDef list passed to HistoryStore::open"
    )]
    UnknownTable {
        /// The table name.
        table: String,
    },

    /// A record batch does not match its table's declared schema.
    #[error(
        "batch for table `{table}` does not match the declared schema: {detail}; build batches with TableDef::schema"
    )]
    SchemaMismatch {
        /// The table name.
        table: String,
        /// What differs.
        detail: String,
    },

    /// A record batch has invalid content (e.g. null timestamps).
    #[error("invalid batch for table `{table}`: {detail}")]
    InvalidBatch {
        /// The table name.
        table: String,
        /// What is invalid.
        detail: String,
    },

    /// A table definition is unusable.
    #[error("invalid table definition `{table}`: {detail}")]
    InvalidTableDef {
        /// The table name.
        table: String,
        /// What is wrong with it.
        detail: String,
    },

    /// A configuration value is out of range.
    #[error("invalid history configuration: {detail}")]
    InvalidConfig {
        /// Which value and why.
        detail: String,
    },

    /// A single write is larger than the configured maximum; split it.
    #[error(
        "write of {bytes} bytes exceeds the limit of {limit} bytes; split it into smaller writes"
    )]
    WriteTooLarge {
        /// Encoded size of the write.
        bytes: usize,
        /// The configured limit ([`crate::HistoryConfig::max_write_bytes`]).
        limit: usize,
    },

    /// A file operation failed.
    #[error("{context} ({path}): {source}; check the data directory's permissions and free space")]
    Io {
        /// What the store was doing.
        context: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The WAL writer failed (e.g. fsync error) and refuses further writes.
    /// After an fsync failure the kernel may have dropped dirty pages, so the
    /// process must restart and recover from the WAL.
    #[error(
        "the WAL writer failed and stopped accepting writes: {cause}; restart the process to recover from the WAL"
    )]
    WalFailed {
        /// The first failure.
        cause: String,
    },

    /// A WAL record before the tail is corrupt. A torn *tail* is repaired
    /// automatically; this is damage in the middle of the log.
    #[error(
        "WAL segment {path} is corrupt at offset {offset}: {detail}; move the segment aside to start (its records after the offset are lost)"
    )]
    WalCorrupt {
        /// The segment file.
        path: PathBuf,
        /// Byte offset of the bad record.
        offset: u64,
        /// What was wrong.
        detail: String,
    },

    /// The WAL holds data for a table that is not declared any more.
    #[error(
        "WAL record {seq} holds data for table `{table}` that was not declared: {detail}; reopen with its TableDef so the data can be persisted"
    )]
    WalTableMismatch {
        /// Sequence number of the record.
        seq: u64,
        /// The table.
        table: String,
        /// Unknown table or schema difference.
        detail: String,
    },

    /// The manifest cannot be read.
    #[error(
        "manifest {path} is unreadable: {detail}; restore it from a backup or remove the data directory"
    )]
    ManifestCorrupt {
        /// The manifest file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },

    /// Another process holds the data directory.
    #[error(
        "data directory {path} is locked by another process; stop it or use another --data-dir"
    )]
    Locked {
        /// The lock file.
        path: PathBuf,
    },

    /// The store was shut down.
    #[error("the history store is shut down; no more writes are accepted")]
    ShutDown,

    /// Arrow encoding or computation failed.
    #[error("arrow error: {0}")]
    Arrow(#[from] arrow::error::ArrowError),

    /// Parquet encoding or decoding failed.
    #[error("parquet error: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),

    /// DataFusion failed.
    #[error("datafusion error: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),

    /// The object store failed.
    #[error("object store error: {0}; check the data directory")]
    ObjectStore(#[from] object_store::Error),

    /// A background task panicked or was cancelled.
    #[error("background task failed: {0}")]
    Task(String),
}

impl Error {
    /// True when the same call may succeed later (only [`Error::Overloaded`]).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Overloaded { .. })
    }

    /// The suggested delay before retrying, for a `Retry-After` header.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Overloaded { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    pub(crate) fn io(
        context: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            context,
            path: path.into(),
            source,
        }
    }
}
