//! The crate's one error type and its classification for the daemon.

/// How the daemon should answer an [`Error`]: the one place where decode
/// errors become HTTP (or gRPC) statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Malformed or invalid data: HTTP 400 (gRPC `INVALID_ARGUMENT`).
    /// Senders do not retry it.
    BadRequest,
    /// The body, or what it expands to, is over a configured limit:
    /// HTTP 413 (gRPC `RESOURCE_EXHAUSTED`).
    PayloadTooLarge,
    /// Content type, encoding or protocol version not supported: HTTP 415.
    UnsupportedMediaType,
    /// A bug in this crate (an Arrow batch that does not match its schema):
    /// HTTP 500. Never caused by input alone.
    Internal,
}

impl ErrorClass {
    /// The HTTP status code for this class.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorClass::BadRequest => 400,
            ErrorClass::PayloadTooLarge => 413,
            ErrorClass::UnsupportedMediaType => 415,
            ErrorClass::Internal => 500,
        }
    }
}

/// Every way decoding can fail. Messages are safe to return to the sender
/// (they describe the input, never the server), except [`Error::Arrow`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The snappy header declares a decompressed length over the limit
    /// (checked before anything is allocated).
    #[error("snappy body declares {declared} decompressed bytes, over the limit of {limit}")]
    DecompressedTooLarge {
        /// Length the snappy header declares.
        declared: u64,
        /// Configured limit.
        limit: usize,
    },
    /// The body is over the configured limit (before decompression).
    #[error("body of {size} bytes is over the limit of {limit}")]
    BodyTooLarge {
        /// Body size.
        size: usize,
        /// Configured limit.
        limit: usize,
    },
    /// The request is valid but would expand to more rows/bytes than the
    /// configured output limit (labels are repeated on every row).
    #[error("request expands to about {estimated} bytes of rows, over the limit of {limit}")]
    OutputTooLarge {
        /// Estimated output size.
        estimated: u64,
        /// Configured limit.
        limit: u64,
    },
    /// Content type / encoding / protocol version not accepted.
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    /// The body is not valid snappy block format.
    #[error("invalid snappy block-format body: {0}")]
    Snappy(String),
    /// The body is snappy *framed* format (stream identifier chunk);
    /// remote write requires the block format.
    #[error("body is snappy framed (stream) format; remote write requires snappy block format")]
    SnappyFramed,
    /// The (decompressed) body is not a valid protobuf message.
    #[error("invalid protobuf {message}: {source}")]
    Protobuf {
        /// Message type being decoded.
        message: &'static str,
        /// prost's reason.
        #[source]
        source: prost::DecodeError,
    },
    /// The (decompressed) remote-write body is not a valid protobuf message
    /// (read by the crate's own borrowed reader; same text as
    /// [`Error::Protobuf`]), or breaks a rule of the message itself (2.0:
    /// `symbols[0]` not empty, a reserved field).
    #[error("invalid protobuf {message}: {reason}")]
    Wire {
        /// Message type being decoded.
        message: &'static str,
        /// What is wrong, and at which byte.
        reason: String,
    },
    /// The body is not valid OTLP/JSON.
    #[error("invalid OTLP/JSON: {0}")]
    Json(String),
    /// One remote-write series is invalid; the whole request is rejected.
    #[error("invalid time series at index {index}: {reason}")]
    InvalidSeries {
        /// Index of the series in `WriteRequest.timeseries`.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// One value of an upload is wrong (unknown column, wrong kind, bad
    /// time): the row (1 = first data row) and the column say where.
    #[error("row {row}, column {column:?}: {reason}")]
    Upload {
        /// 1-based data row.
        row: u64,
        /// Column name.
        column: String,
        /// What is wrong and what to do.
        reason: String,
    },
    /// An upload body is not valid in its format (bad JSON line, CSV
    /// structure, Arrow IPC framing, Parquet file), or holds no rows.
    #[error("{0}")]
    UploadFormat(String),
    /// Building the Arrow batch failed: a bug in this crate.
    #[error("internal error building Arrow batch: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
}

impl Error {
    /// The class of this error: map it to an HTTP status with
    /// [`ErrorClass::http_status`].
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::DecompressedTooLarge { .. }
            | Error::BodyTooLarge { .. }
            | Error::OutputTooLarge { .. } => ErrorClass::PayloadTooLarge,
            Error::UnsupportedMediaType(_) => ErrorClass::UnsupportedMediaType,
            Error::Snappy(_)
            | Error::SnappyFramed
            | Error::Protobuf { .. }
            | Error::Wire { .. }
            | Error::Json(_)
            | Error::InvalidSeries { .. }
            | Error::Upload { .. }
            | Error::UploadFormat(_) => ErrorClass::BadRequest,
            Error::Arrow(_) => ErrorClass::Internal,
        }
    }

    /// Shorthand for `self.class().http_status()`.
    pub fn http_status(&self) -> u16 {
        self.class().http_status()
    }
}

/// The crate's result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
