//! OTLP/HTTP: `POST /v1/metrics`, `/v1/logs`, `/v1/traces`, on the main
//! listener and on the dedicated OTLP/HTTP listener (`--otlp-http-listen`).
//!
//! Thin handlers: authenticate (role `ingest`), read the body within
//! `--max-write-bytes`, inflate gzip within the same limit, hand it to
//! [`Telemetry::otlp`](crate::telemetry::Telemetry::otlp), and answer as
//! the OTLP/HTTP specification says: 200 with the `Export*ServiceResponse`
//! in the request's encoding (`partial_success` when items were rejected);
//! errors as a `google.rpc.Status` body ([`OtlpError`]).
//!
//! These routes follow the OTLP specification rather than the native API,
//! so they are not in the OpenAPI document.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};
use http_body_util::BodyExt;

use modelwatch_collectors::otlp::Encoding;
use modelwatch_registry::Role;

use super::AppState;
use super::error::{ApiError, OtlpError};
use crate::auth;
use crate::telemetry::{OtlpSignal, inflate};
use crate::tls::ClientIdentity;

/// The three OTLP/HTTP routes (to merge into a router with [`AppState`]).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/metrics", post(metrics))
        .route("/v1/logs", post(logs))
        .route("/v1/traces", post(traces))
}

async fn metrics(
    State(s): State<AppState>,
    client: Option<Extension<ClientIdentity>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    export(OtlpSignal::Metrics, s, client, headers, body).await
}

async fn logs(
    State(s): State<AppState>,
    client: Option<Extension<ClientIdentity>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    export(OtlpSignal::Logs, s, client, headers, body).await
}

async fn traces(
    State(s): State<AppState>,
    client: Option<Extension<ClientIdentity>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    export(OtlpSignal::Traces, s, client, headers, body).await
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn export(
    signal: OtlpSignal,
    s: AppState,
    client: Option<Extension<ClientIdentity>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let content_type = header_str(&headers, header::CONTENT_TYPE);
    let encoding = Encoding::from_content_type(content_type);
    // Errors are answered in the request's encoding; JSON when it is unknown.
    let reply_encoding = *encoding.as_ref().unwrap_or(&Encoding::Json);
    let result = async {
        let actor = s
            .auth
            .authenticate_request(
                auth::bearer_value(headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()))?,
                client.as_ref().map(|Extension(c)| c),
                auth::Via::Api,
            )
            .await?;
        tracing::Span::current().record("actor", actor.name.as_str());
        crate::auth::Caller(actor).require(Role::Ingest)?;
        let encoding = encoding.map_err(crate::telemetry::IngestError::from)?;
        let limit = s.limits.max_write_bytes;
        let body = read_body(body, limit).await?;
        let body = inflate(header_str(&headers, header::CONTENT_ENCODING), &body, limit)?;
        let outcome = s.telemetry.otlp(signal, &body, encoding).await?;
        let (content_type, bytes) = match encoding {
            Encoding::Protobuf => ("application/x-protobuf", outcome.to_protobuf()),
            Encoding::Json => (
                "application/json",
                serde_json::to_vec(&outcome.to_json()).map_err(ApiError::internal)?,
            ),
        };
        Ok::<_, ApiError>(
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, content_type)],
                bytes,
            )
                .into_response(),
        )
    }
    .await;
    result.unwrap_or_else(|error| {
        OtlpError {
            error,
            encoding: reply_encoding,
        }
        .into_response()
    })
}

/// The whole body, refused with 413 past `limit` bytes (checked against
/// `Content-Length` first, then while reading).
async fn read_body(body: Body, limit: usize) -> Result<bytes::Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "the body is larger than {limit} bytes (--max-write-bytes); send smaller batches"
            ),
        )
    };
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(ApiError::bad_request(format!(
            "the request body could not be read: {e}"
        ))),
    }
}
