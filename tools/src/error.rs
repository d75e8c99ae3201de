//! The tools' one error type.

/// A failed demo or benchmark.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the daemon failed.
    #[error(transparent)]
    Client(#[from] modelwatch_client::Error),
    /// The command cannot be run as given (unknown format, bad argument).
    #[error("{0}")]
    Usage(String),
    /// Something on this machine failed (a child process, a file, the
    /// OpenTelemetry exporter).
    #[error("{0}")]
    Local(String),
    /// `source`, with what was being done when it happened.
    #[error("{context}: {source}")]
    Context {
        context: String,
        #[source]
        source: Box<Error>,
    },
}

/// `Result` with the tools' [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Exit status for the command line: 1 when the daemon refused, 2 when
    /// it could not be asked or the command could not run.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Client(modelwatch_client::Error::Api { .. }) => 1,
            Error::Context { source, .. } => source.exit_code(),
            _ => 2,
        }
    }

    /// A local failure from anything printable.
    pub(crate) fn local(e: impl std::fmt::Display) -> Self {
        Error::Local(e.to_string())
    }
}

/// Adds what was being done to a failure, like `anyhow::Context`.
pub(crate) trait Context<T> {
    fn context(self, context: impl Into<String>) -> Result<T>;
    fn with_context<S: Into<String>>(self, context: impl FnOnce() -> S) -> Result<T>;
}

impl<T, E: Into<Error>> Context<T> for std::result::Result<T, E> {
    fn context(self, context: impl Into<String>) -> Result<T> {
        self.map_err(|e| Error::Context {
            context: context.into(),
            source: Box::new(e.into()),
        })
    }

    fn with_context<S: Into<String>>(self, context: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| Error::Context {
            context: context().into(),
            source: Box::new(e.into()),
        })
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Local(e.to_string())
    }
}
