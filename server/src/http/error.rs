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
    /// `method_not_allowed`, `unavailable`, `internal`; promotion gates add
    /// `invalid_policy`, `gate_policy_error` and `gate_denied`.
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
    /// A body that is not the JSON it should be (syntax, not content).
    pub fn malformed_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed_json", message)
    }
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            message,
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = self.retry_after();
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
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        }
        response
    }
}

impl ApiError {
    /// Seconds for `Retry-After` (and gRPC `RetryInfo`): at least 1.
    pub fn retry_after(&self) -> u64 {
        self.retry_after.unwrap_or(1).max(1)
    }

    /// The gRPC status code of the same failure (also the `code` of the
    /// `google.rpc.Status` body OTLP/HTTP answers errors with).
    pub fn grpc_code(&self) -> tonic::Code {
        use tonic::Code;
        match self.status {
            StatusCode::BAD_REQUEST | StatusCode::UNSUPPORTED_MEDIA_TYPE => Code::InvalidArgument,
            StatusCode::UNAUTHORIZED => Code::Unauthenticated,
            StatusCode::FORBIDDEN => Code::PermissionDenied,
            StatusCode::NOT_FOUND => Code::NotFound,
            StatusCode::PAYLOAD_TOO_LARGE => Code::ResourceExhausted,
            StatusCode::SERVICE_UNAVAILABLE => Code::Unavailable,
            StatusCode::GATEWAY_TIMEOUT => Code::DeadlineExceeded,
            _ => Code::Internal,
        }
    }

    /// The `google.rpc.Status` of this failure, with a `RetryInfo` detail
    /// when the sender should retry later.
    fn rpc_status(&self) -> tonic::Status {
        use tonic_types::{ErrorDetails, StatusExt};
        let code = self.grpc_code();
        if code == tonic::Code::Unavailable {
            tonic::Status::with_error_details(
                code,
                self.message.clone(),
                ErrorDetails::with_retry_info(Some(std::time::Duration::from_secs(
                    self.retry_after(),
                ))),
            )
        } else {
            tonic::Status::new(code, self.message.clone())
        }
    }
}

/// OTLP/gRPC: the same classification as HTTP, as a gRPC status
/// (`INVALID_ARGUMENT`, `UNAUTHENTICATED`, `PERMISSION_DENIED`,
/// `RESOURCE_EXHAUSTED`, `UNAVAILABLE` with `RetryInfo`, `INTERNAL`).
impl From<ApiError> for tonic::Status {
    fn from(e: ApiError) -> Self {
        e.rpc_status()
    }
}

/// An error on an OTLP/HTTP route: the same status as [`ApiError`], but
/// the body is a `google.rpc.Status` in the request's encoding (protobuf,
/// or JSON for `application/json` and unknown content types), as the
/// OTLP/HTTP specification asks.
#[derive(Debug)]
pub struct OtlpError {
    pub error: ApiError,
    pub encoding: modelwatch_collectors::otlp::Encoding,
}

impl IntoResponse for OtlpError {
    fn into_response(self) -> Response {
        use modelwatch_collectors::otlp::Encoding;
        use prost::Message;
        let status = self.error.rpc_status();
        let (content_type, body) = match self.encoding {
            Encoding::Protobuf => {
                let pb = tonic_types::Status {
                    code: status.code() as i32,
                    message: status.message().to_string(),
                    details: tonic_types::Status::decode(status.details())
                        .map(|s| s.details)
                        .unwrap_or_default(),
                };
                ("application/x-protobuf", pb.encode_to_vec())
            }
            Encoding::Json => (
                "application/json",
                serde_json::to_vec(&serde_json::json!({
                    "code": status.code() as i32,
                    "message": status.message(),
                }))
                .unwrap_or_default(),
            ),
        };
        let mut response = (
            self.error.status,
            [(header::CONTENT_TYPE, content_type)],
            body,
        )
            .into_response();
        if self.error.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"modelwatch\""),
            );
        }
        if self.error.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(self.error.retry_after()),
            );
        }
        response
    }
}

/// An error under `/api/2.0/mlflow/`: the same classification as
/// [`ApiError`], in MLflow's shape `{"error_code": …, "message": …}` with
/// MLflow's status conventions (an existing record is 400, not 409). MLflow
/// clients retry 429 and 5xx for minutes, so validation never maps to 5xx.
#[derive(Debug)]
pub struct MlflowError(pub ApiError);

impl From<ApiError> for MlflowError {
    fn from(e: ApiError) -> Self {
        MlflowError(e)
    }
}

impl From<RegistryError> for MlflowError {
    fn from(e: RegistryError) -> Self {
        MlflowError(e.into())
    }
}

impl From<modelwatch_types::InvalidValue> for MlflowError {
    fn from(e: modelwatch_types::InvalidValue) -> Self {
        MlflowError(RegistryError::from(e).into())
    }
}

impl MlflowError {
    pub fn invalid(message: impl Into<String>) -> Self {
        MlflowError(ApiError::bad_request(message))
    }

    /// MLflow's error code and HTTP status for this failure.
    pub fn code(&self) -> (StatusCode, &'static str) {
        match (self.0.status, self.0.code) {
            (_, "already_exists") => (StatusCode::BAD_REQUEST, "RESOURCE_ALREADY_EXISTS"),
            (_, "conflict") => (StatusCode::BAD_REQUEST, "INVALID_STATE"),
            (_, "route_not_found") | (StatusCode::METHOD_NOT_ALLOWED, _) => {
                (StatusCode::NOT_FOUND, "ENDPOINT_NOT_FOUND")
            }
            (StatusCode::NOT_FOUND, _) => (StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST"),
            (StatusCode::UNAUTHORIZED, _) => (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"),
            (StatusCode::FORBIDDEN, _) => (StatusCode::FORBIDDEN, "PERMISSION_DENIED"),
            (StatusCode::SERVICE_UNAVAILABLE, _) => {
                (StatusCode::SERVICE_UNAVAILABLE, "TEMPORARILY_UNAVAILABLE")
            }
            (s, _) if s.is_server_error() => (s, "INTERNAL_ERROR"),
            (s, _) => (s, "INVALID_PARAMETER_VALUE"),
        }
    }
}

impl IntoResponse for MlflowError {
    fn into_response(self) -> Response {
        let (status, code) = self.code();
        let retry_after = self.0.retry_after();
        let mut response = (
            status,
            Json(serde_json::json!({ "error_code": code, "message": self.0.message })),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"modelwatch\""),
            );
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
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
            RegistryError::Fenced(_) => {
                ApiError::new(StatusCode::CONFLICT, "not_duty_holder", message)
            }
            RegistryError::Forbidden(_) => ApiError::forbidden(message),
            RegistryError::Busy | RegistryError::WriterStopped => ApiError::unavailable(message),
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
            JsonRejection::JsonSyntaxError(_) => ApiError::malformed_json(text),
            JsonRejection::MissingJsonContentType(_) => ApiError::unsupported_media_type(
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

/// A collectors decoding error, by its class.
fn decode_error(d: modelwatch_collectors::Error) -> ApiError {
    use modelwatch_collectors::ErrorClass;
    match d.class() {
        ErrorClass::BadRequest => ApiError::bad_request(d.to_string()),
        ErrorClass::PayloadTooLarge => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            d.to_string(),
        ),
        ErrorClass::UnsupportedMediaType => ApiError::unsupported_media_type(d.to_string()),
        ErrorClass::Internal => ApiError::internal(d),
    }
}

impl From<crate::telemetry::IngestError> for ApiError {
    fn from(e: crate::telemetry::IngestError) -> Self {
        use crate::telemetry::IngestError;
        match e {
            IngestError::Decode(d) => decode_error(d),
            IngestError::Store(s) => history_error(s),
            IngestError::Gzip(_) => ApiError::bad_request(e.to_string()),
            IngestError::InflatedTooLarge { .. } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                e.to_string(),
            ),
            IngestError::ContentEncoding(_) => ApiError::unsupported_media_type(e.to_string()),
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
            SqlError::Query { .. } => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", e.to_string())
            }
            SqlError::Timeout(_) => {
                ApiError::new(StatusCode::GATEWAY_TIMEOUT, "timeout", e.to_string())
            }
            SqlError::Internal(_) => ApiError::internal(e),
        }
    }
}

impl From<crate::evaluator::EvalError> for ApiError {
    fn from(e: crate::evaluator::EvalError) -> Self {
        use crate::evaluator::EvalError as E;
        match e {
            E::Registry(e) => e.into(),
            E::Policy(_) => ApiError::bad_request(e.to_string()),
            E::Stopped => ApiError::unavailable(e.to_string()),
            E::Telemetry(_) | E::Results(_) | E::Panicked(_) => ApiError::internal(e),
        }
    }
}

impl From<crate::alerts::AlertsError> for ApiError {
    fn from(e: crate::alerts::AlertsError) -> Self {
        use crate::alerts::AlertsError as A;
        match e {
            A::Payload(p) => ApiError::bad_request(p.to_string()),
            A::Registry(r) => r.into(),
        }
    }
}

impl From<crate::gate::GateError> for ApiError {
    fn from(e: crate::gate::GateError) -> Self {
        use crate::gate::GateError as G;
        match e {
            G::Registry(e) => e.into(),
            G::InvalidPolicy(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_policy", e.to_string())
            }
            // The stored policy, not the request, is at fault: 422 says the
            // request was understood but cannot be decided on.
            G::PolicyFailed { .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "gate_policy_error",
                e.to_string(),
            ),
            G::Denied(_) => ApiError::new(StatusCode::CONFLICT, "gate_denied", e.to_string()),
            G::Drift(_) | G::Thread(_) => ApiError::internal(e),
        }
    }
}

impl From<modelwatch_artifacts::Error> for ApiError {
    fn from(e: modelwatch_artifacts::Error) -> Self {
        match StatusCode::from_u16(e.status()) {
            Ok(status) if !status.is_server_error() => {
                ApiError::new(status, e.code(), e.to_string())
            }
            _ => ApiError::internal(e),
        }
    }
}

impl From<modelwatch_artifacts::Error> for MlflowError {
    fn from(e: modelwatch_artifacts::Error) -> Self {
        MlflowError(e.into())
    }
}

impl From<crate::upload::UploadError> for ApiError {
    fn from(e: crate::upload::UploadError) -> Self {
        use crate::upload::UploadError as U;
        match e {
            U::Decode(d) => decode_error(d),
            U::TooLarge { .. } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                e.to_string(),
            ),
            U::UnsupportedEncoding(_) => ApiError::unsupported_media_type(e.to_string()),
            U::Gzip(_)
            | U::Parquet(_)
            | U::BodyRead(_)
            | U::ReferenceUri { .. }
            | U::InvalidIdempotencyKey(_) => ApiError::bad_request(e.to_string()),
            U::IdempotencyKeyReused { .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                e.to_string(),
            ),
            U::Staging(_) => ApiError::internal(e),
            U::Store(ref source) => match source {
                // Nothing was stored: the sender may retry as it is.
                modelwatch_history::Error::Overloaded { .. }
                | modelwatch_history::Error::ShutDown => {
                    let mut err = ApiError::unavailable(e.to_string());
                    err.retry_after = source.retry_after().map(|d| d.as_secs().max(1));
                    err
                }
                _ => ApiError::internal(e),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::IngestError;
    use modelwatch_collectors::otlp::Encoding;
    use prost::Message;
    use tonic_types::StatusExt;

    fn overloaded() -> ApiError {
        ApiError::from(IngestError::Store(modelwatch_history::Error::Overloaded {
            retry_after: std::time::Duration::from_secs(7),
            reason: "buffer full",
        }))
    }

    #[test]
    fn overload_is_503_with_the_store_s_retry_after_on_every_surface() {
        let native = overloaded().into_response();
        assert_eq!(native.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(native.headers()[header::RETRY_AFTER], "7");

        let otlp = OtlpError {
            error: overloaded(),
            encoding: Encoding::Protobuf,
        }
        .into_response();
        assert_eq!(otlp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(otlp.headers()[header::RETRY_AFTER], "7");

        let status = tonic::Status::from(overloaded());
        assert_eq!(status.code(), tonic::Code::Unavailable);
        let retry = status
            .get_details_retry_info()
            .expect("RetryInfo detail")
            .retry_delay;
        assert_eq!(retry, Some(std::time::Duration::from_secs(7)));
    }

    #[tokio::test]
    async fn otlp_error_bodies_are_google_rpc_status_in_the_request_encoding() {
        use http_body_util::BodyExt;
        let body = |r: Response| async move { r.into_body().collect().await.unwrap().to_bytes() };
        let pb = OtlpError {
            error: overloaded(),
            encoding: Encoding::Protobuf,
        }
        .into_response();
        assert_eq!(pb.headers()[header::CONTENT_TYPE], "application/x-protobuf");
        let status = tonic_types::Status::decode(body(pb).await).unwrap();
        assert_eq!(status.code, tonic::Code::Unavailable as i32);
        assert_eq!(status.details.len(), 1, "the RetryInfo detail");
        assert!(status.details[0].type_url.ends_with("google.rpc.RetryInfo"));

        let json = OtlpError {
            error: ApiError::forbidden("needs ingest"),
            encoding: Encoding::Json,
        }
        .into_response();
        assert_eq!(json.status(), StatusCode::FORBIDDEN);
        let v: serde_json::Value = serde_json::from_slice(&body(json).await).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"code": tonic::Code::PermissionDenied as i32, "message": "needs ingest"})
        );
    }
}
