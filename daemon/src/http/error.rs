//! The one place where failures become HTTP responses.
//!
//! Every error body is `{"error": {"code": "...", "message": "..."}}` with a
//! stable `code`. A 5xx body says nothing internal: the cause is logged in
//! the request's span and the body only points at the log.

use axum::Json;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use modelwatch_registry::Error as RegistryError;

/// The error body of the native API.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `not_found`, `already_exists`,
    /// `invalid_argument`, `malformed_json`, `conflict`, `unauthenticated`,
    /// `permission_denied`, `payload_too_large`, `unsupported_media_type`,
    /// `method_not_allowed`, `unavailable`, `internal`.
    pub code: &'static str,
    pub message: String,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds for `Retry-After` on 503 (default 1).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_argument", message)
    }
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "permission_denied", message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    /// A failure that is our fault: logged with its cause, reported vaguely.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the cause is in the modelwatch server log",
        )
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(ErrorBody {
                error: ErrorDetail {
                    code: self.code,
                    message: self.message,
                },
            }),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"modelwatch\""),
            );
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        let message = e.to_string();
        match e {
            RegistryError::NotFound { .. } => ApiError::not_found(message),
            RegistryError::AlreadyExists { .. } => {
                ApiError::new(StatusCode::CONFLICT, "already_exists", message)
            }
            RegistryError::InvalidArgument { .. } => ApiError::bad_request(message),
            RegistryError::Conflict(_) => ApiError::new(StatusCode::CONFLICT, "conflict", message),
            RegistryError::Database(sqlx::Error::PoolTimedOut) => {
                ApiError::unavailable("the registry database is busy; retry shortly")
            }
            RegistryError::WriterStopped => ApiError::unavailable(message),
            RegistryError::CommitFailed(_) => {
                tracing::error!(error = %e, "registry commit failed");
                ApiError::unavailable(
                    "the change could not be committed and was not saved; retry it",
                )
            }
            RegistryError::Corrupt(_)
            | RegistryError::Database(_)
            | RegistryError::Migration(_) => ApiError::internal(e),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let text = r.body_text();
        match r {
            JsonRejection::JsonDataError(_) => ApiError::bad_request(text),
            JsonRejection::JsonSyntaxError(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", text)
            }
            JsonRejection::MissingJsonContentType(_) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with `Content-Type: application/json`",
            ),
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "request body is larger than the server's limit (--max-body-bytes)",
            ),
            other => ApiError::new(other.status(), "invalid_argument", text),
        }
    }
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "request body is larger than this route's limit (--max-body-bytes, or --max-write-bytes for writes)",
            )
        } else {
            ApiError::new(r.status(), "invalid_argument", r.body_text())
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::bad_request(format!("invalid path: {}", r.body_text()))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::bad_request(format!("invalid query string: {}", r.body_text()))
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

impl From<crate::telemetry::IngestError> for ApiError {
    fn from(e: crate::telemetry::IngestError) -> Self {
        use crate::telemetry::IngestError;
        use modelwatch_collectors::ErrorClass;
        match e {
            IngestError::Decode(d) => match d.class() {
                ErrorClass::BadRequest => ApiError::bad_request(d.to_string()),
                ErrorClass::PayloadTooLarge => ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    d.to_string(),
                ),
                ErrorClass::UnsupportedMediaType => ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    d.to_string(),
                ),
                ErrorClass::Internal => ApiError::internal(d),
            },
            IngestError::Store(s) => history_error(s),
        }
    }
}

fn history_error(e: modelwatch_history::Error) -> ApiError {
    use modelwatch_history::Error as H;
    match e {
        H::Overloaded { retry_after, .. } => {
            let mut err = ApiError::unavailable(e.to_string());
            err.retry_after = Some(retry_after.as_secs().max(1));
            err
        }
        H::WriteTooLarge { .. } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            e.to_string(),
        ),
        H::ShutDown => {
            ApiError::unavailable("the server is shutting down; retry against the restarted server")
        }
        // Anything else (including a batch the store refuses after decoding)
        // is our fault, not the sender's.
        other => ApiError::internal(other),
    }
}

impl From<crate::sql::SqlError> for ApiError {
    fn from(e: crate::sql::SqlError) -> Self {
        use crate::sql::SqlError;
        match e {
            SqlError::NotReadOnly(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "read_only", e.to_string())
            }
            SqlError::Query(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", e.to_string())
            }
            SqlError::Timeout(_) => {
                ApiError::new(StatusCode::GATEWAY_TIMEOUT, "timeout", e.to_string())
            }
            SqlError::Internal(_) => ApiError::internal(e),
        }
    }
}

impl From<crate::upload::UploadError> for ApiError {
    fn from(e: crate::upload::UploadError) -> Self {
        use crate::upload::UploadError as U;
        use modelwatch_collectors::ErrorClass;
        match e {
            U::Decode(d) => match d.class() {
                ErrorClass::BadRequest => ApiError::bad_request(d.to_string()),
                ErrorClass::PayloadTooLarge => ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    d.to_string(),
                ),
                ErrorClass::UnsupportedMediaType => ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    d.to_string(),
                ),
                ErrorClass::Internal => ApiError::internal(d),
            },
            U::TooLarge { .. } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                e.to_string(),
            ),
            U::UnsupportedEncoding(_) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                e.to_string(),
            ),
            U::Gzip(_) | U::Parquet(_) | U::BodyRead(_) | U::ReferenceUri { .. } => {
                ApiError::bad_request(e.to_string())
            }
            U::Staging(_) | U::StagingArrow(_) => ApiError::internal(e),
            U::Commit { ref source, .. } => {
                // The message (rows stored, upload id) is for the sender;
                // the status follows the history's error.
                let message = e.to_string();
                let mut err = match source {
                    modelwatch_history::Error::Overloaded { .. }
                    | modelwatch_history::Error::ShutDown => ApiError::unavailable(message),
                    _ => {
                        tracing::error!(error = %e, "upload commit failed");
                        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
                    }
                };
                err.retry_after = source.retry_after().map(|d| d.as_secs().max(1));
                err
            }
        }
    }
}
