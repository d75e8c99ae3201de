//! The command line's failures and their exit statuses.

/// A failed command, worded for a person at a terminal.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A call to the daemon failed.
    #[error(transparent)]
    Client(#[from] modelwatch_client::Error),
    /// `demo` or a load generator failed.
    #[error(transparent)]
    Tool(#[from] modelwatch_tools::Error),
    /// An argument the daemon would refuse, caught before sending
    /// (e.g. `--metric auc=high`); exits like a refusal.
    #[error("{0} (invalid_argument)")]
    InvalidArgument(String),
    /// A command that works on local files (a data directory) failed.
    #[error("{0}")]
    Local(String),
    /// The command cannot be run as given (missing file, unknown format).
    #[error("{0}")]
    Usage(String),
}

impl CliError {
    /// Exit status: 1 for a refusal (by the server, or of an argument it
    /// would refuse), 2 when it could not be asked or the command could not
    /// run.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Client(modelwatch_client::Error::Api { .. })
            | CliError::InvalidArgument(_) => 1,
            CliError::Tool(e) => e.exit_code(),
            CliError::Client(_) | CliError::Local(_) | CliError::Usage(_) => 2,
        }
    }
}
