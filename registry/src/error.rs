//! The registry's one error type.

/// Everything that can go wrong in the registry. Each variant's message says
/// what was wrong and, where the caller can do something, what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A named record does not exist.
    #[error("{what} not found")]
    NotFound { what: String },

    /// A record with this identity exists already.
    #[error("{what} already exists")]
    AlreadyExists { what: String },

    /// A field of the request is invalid.
    #[error("invalid {field}: {message}")]
    InvalidArgument { field: String, message: String },

    /// The actor's role does not allow this change (e.g. a protected alias).
    #[error("{0}")]
    Forbidden(String),

    /// The request is valid but conflicts with the current state.
    #[error("{0}")]
    Conflict(String),

    /// Stored data could not be read back (a bug or a hand-edited database).
    #[error("registry data is corrupt: {0}")]
    Corrupt(String),

    /// The group commit holding this change failed; nothing was written.
    #[error("registry commit failed: {0}; the change was not saved, retry it")]
    CommitFailed(String),

    /// The writer task is gone (the store is shutting down).
    #[error("the registry is shutting down; retry against the restarted server")]
    WriterStopped,

    /// A background duty's write from a daemon that no longer holds the
    /// duty's lease (another daemon took it over); nothing was written.
    #[error("{0}")]
    Fenced(String),

    /// Every database connection stayed busy past the acquire timeout.
    #[error("the registry database is busy; retry shortly")]
    Busy,

    /// The backend's database failed (the one `From` conversion, shared by
    /// both backends, lives in `sqlite/`; PostgreSQL's transient failures
    /// become [`Error::Busy`] in `postgres/error.rs`).
    #[error("registry database error: {0}")]
    Database(crate::sqlite::DatabaseError),

    #[error(
        "registry schema migration failed: {0}; the data directory or database may belong to a newer modelwatch"
    )]
    Migration(crate::sqlite::MigrateError),
}

impl From<modelwatch_types::InvalidValue> for Error {
    fn from(e: modelwatch_types::InvalidValue) -> Self {
        Error::InvalidArgument {
            field: e.field,
            message: e.message,
        }
    }
}

impl Error {
    pub fn not_found(what: impl Into<String>) -> Self {
        Error::NotFound { what: what.into() }
    }
    pub fn already_exists(what: impl Into<String>) -> Self {
        Error::AlreadyExists { what: what.into() }
    }
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidArgument {
            field: field.into(),
            message: message.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
