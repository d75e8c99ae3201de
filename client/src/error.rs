//! What can go wrong on a call, worded for a person at a terminal.

/// A failed call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No reply: the connection could not be made or was lost.
    #[error(
        "cannot reach modelwatch at {url}: {reason}\n  Is `modelwatch serve` running? Point the CLI at it with --url or MODELWATCH_URL."
    )]
    Unreachable { url: String, reason: String },
    /// The daemon's TLS certificate is not trusted (or the handshake
    /// failed otherwise): nothing was sent.
    #[error(
        "cannot verify modelwatch's TLS certificate at {url}: {reason}\n  Give the CA that signed it with --ca-file or MODELWATCH_CA_FILE, or check that --url names the certificate's host."
    )]
    Untrusted { url: String, reason: String },
    /// The daemon refused, with its JSON error (`{"error": {"code", "message"}}`).
    #[error("{message} ({code}, HTTP {status})")]
    Api {
        status: u16,
        /// The stable error code, e.g. `not_found`, `permission_denied`.
        code: String,
        /// The server's message.
        message: String,
    },
    /// A reply that is not what the API promises (not JSON, wrong shape,
    /// or an error without the API's error body).
    #[error("unexpected reply from {url} (HTTP {status}): {body}")]
    Unexpected {
        url: String,
        status: u16,
        body: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The HTTP status of a refusal or unexpected reply; `None` when there
    /// was no reply.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } | Error::Unexpected { status, .. } => Some(*status),
            Error::Unreachable { .. } | Error::Untrusted { .. } => None,
        }
    }

    /// The API's error code (`not_found`, `already_exists`, …) of a refusal.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The connection was lost before a reply: the request may or may not
    /// have been carried out, so only idempotent requests may be repeated.
    pub fn is_connection_lost(&self) -> bool {
        matches!(self, Error::Unreachable { .. })
    }

    /// What to try next, when the failure has a usual cause.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Error::Unreachable { .. } => Some(
                "Is `modelwatch serve` running? Point the CLI at it with --url or MODELWATCH_URL.",
            ),
            Error::Untrusted { .. } => {
                Some("pass the daemon's CA certificate with --ca-file or MODELWATCH_CA_FILE")
            }
            Error::Api { status: 401, .. } => Some(
                "the token is missing, unknown or revoked: pass one with --token or MODELWATCH_TOKEN",
            ),
            Error::Api { status: 403, .. } => {
                Some("the token's role is too low for this call (see `modelwatch token list`)")
            }
            Error::Api { status: 503, .. } => {
                Some("the daemon is busy or not ready yet; retry after a moment")
            }
            _ => None,
        }
    }
}

/// The innermost message of an error chain, e.g. "Connection refused (os
/// error 111)" or "invalid peer certificate: UnknownIssuer": what a person
/// can act on, without reqwest's and hyper's wrappers.
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur: &dyn std::error::Error = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}
