//! Batch upload routes: inferences, reference data and delayed labels for
//! one version.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tracing::Instrument;
use utoipa::ToSchema;

use modelwatch_collectors::batch::{BatchFormat, UploadConfig};
use modelwatch_registry::{FeatureKind, Role, VersionUpdate};

use super::AppState;
use super::error::{ApiResult, ErrorBody};
use super::extract::ApiPath;
use crate::auth::Caller;
use crate::upload::{self, UploadKind};

/// What an upload stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadResponse {
    /// Tags every stored row: `attributes['upload_id']` in SQL.
    pub upload_id: String,
    /// `inferences`, `reference` or `delayed_labels`.
    pub table: String,
    /// Rows stored.
    pub rows: u64,
    /// Body bytes received (as sent).
    pub bytes: u64,
    pub duration_ms: f64,
    /// The feature columns of the upload with their kinds.
    #[schema(value_type = BTreeMap<String, FeatureKind>)]
    pub features: BTreeMap<String, FeatureKind>,
    /// True when this (reference) upload declared the version's features,
    /// because it had none.
    pub features_declared: bool,
    /// True when this reply repeats an earlier upload with the same
    /// `Idempotency-Key` and body: nothing was stored this time (also
    /// `Idempotent-Replayed: true`).
    pub replayed: bool,
    /// Labels uploads only: how many labels name an inference of the
    /// version as of this reply, and how many do not (yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<upload::LabelMatches>,
}

/// Header naming a retry-safe upload; see [`crate::upload`].
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Stores a batch of inferences (production traffic) for a version.
#[utoipa::path(post, path = "/api/v1/models/{model}/versions/{version}/inferences", tag = "telemetry",
    params(("model" = String, Path), ("version" = i64, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "makes a retry safe: a second request with the same key and body within a day stores nothing and gets the first reply")),
    request_body(content = Vec<u8>, description = "rows as application/x-ndjson, text/csv (header row), application/vnd.apache.parquet or application/vnd.apache.arrow.stream; Content-Encoding gzip accepted",
        content_type = "application/x-ndjson"),
    responses(
        (status = 200, body = UploadResponse, description = "every row validated and stored, atomically; or, with a known Idempotency-Key and the same body, the first upload's reply again"),
        (status = 400, body = ErrorBody, description = "malformed body or a bad row (the message names row and column); nothing stored"),
        (status = 404, body = ErrorBody, description = "no such model version"),
        (status = 413, body = ErrorBody, description = "over --max-upload-bytes"),
        (status = 415, body = ErrorBody, description = "unsupported Content-Type or Content-Encoding"),
        (status = 422, body = ErrorBody, description = "the Idempotency-Key was used for a different body"),
        (status = 503, body = ErrorBody, description = "the history could not store the rows; nothing stored, retry")),
    security(("bearer" = [])))]
pub async fn upload_inferences(request: UploadRequest, body: Body) -> ApiResult<Response> {
    handle(request, body, UploadKind::Inferences).await
}

/// Stores reference data (what the version is compared against). When the
/// version declares no features yet, this upload's columns become them.
#[utoipa::path(post, path = "/api/v1/models/{model}/versions/{version}/reference", tag = "telemetry",
    params(("model" = String, Path), ("version" = i64, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "as for the inferences upload")),
    request_body(content = Vec<u8>, description = "same formats as the inferences upload",
        content_type = "application/x-ndjson"),
    responses(
        (status = 200, body = UploadResponse, description = "every row validated and stored, atomically (see the inferences upload for Idempotency-Key)"),
        (status = 400, body = ErrorBody, description = "malformed body or a bad row; nothing stored"),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn upload_reference(request: UploadRequest, body: Body) -> ApiResult<Response> {
    handle(request, body, UploadKind::Reference).await
}

/// Stores ground truth for inferences that arrived earlier (or will):
/// `inference_id,label` rows, optionally `ts` (when the label was
/// observed; default now). Each label is joined to the version's
/// inference with that id when performance is measured; the newest label
/// of an inference wins. Labels without an inference yet are kept and
/// counted in the reply.
#[utoipa::path(post, path = "/api/v1/models/{model}/versions/{version}/labels", tag = "telemetry",
    params(("model" = String, Path), ("version" = i64, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "as for the inferences upload")),
    request_body(content = Vec<u8>, description = "inference_id, label and optionally ts columns, in the inferences upload's formats",
        content_type = "text/csv"),
    responses(
        (status = 200, body = UploadResponse, description = "every label validated and stored, atomically; `labels` counts the matched and unmatched ones"),
        (status = 400, body = ErrorBody, description = "malformed body, a row without inference_id or label, or another column (the message names row and column); nothing stored"),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn upload_labels(request: UploadRequest, body: Body) -> ApiResult<Response> {
    handle(request, body, UploadKind::Labels).await
}

/// What both upload routes extract before the body, in this order: the
/// state, the caller, the version's path and the headers.
type UploadRequest = (State<AppState>, Caller, ApiPath<(String, i64)>, HeaderMap);

async fn handle(request: UploadRequest, body: Body, kind: UploadKind) -> ApiResult<Response> {
    let (State(s), caller, ApiPath((model, version)), headers) = request;
    let actor = caller.require(Role::Ingest)?;
    let format = BatchFormat::from_content_type(header_str(&headers, "content-type"))
        .map_err(upload::UploadError::from)?;
    let gzip = upload::is_gzip(header_str(&headers, "content-encoding"))?;
    let idempotency_key = match headers.get(IDEMPOTENCY_KEY) {
        None => None,
        Some(v) => {
            let key = v.to_str().map_err(|_| {
                upload::UploadError::InvalidIdempotencyKey("it is not visible ASCII".into())
            })?;
            upload::check_idempotency_key(key)?;
            Some(key.to_owned())
        }
    };
    let record = s.registry.get_version(&model, version).await?;
    let upload_id = upload::new_upload_id();
    let span = tracing::info_span!(
        "upload",
        upload_id = %upload_id,
        table = kind.table(),
        model = %model,
        version,
        format = format.name(),
        gzip
    );
    async move {
        let cfg = UploadConfig::new(
            model.clone(),
            version.to_string(),
            upload_id,
            chrono::Utc::now().timestamp_micros(),
            // A labels upload has no features: any other column is refused
            // by name rather than checked against the declaration.
            match kind {
                UploadKind::Labels => Default::default(),
                UploadKind::Inferences | UploadKind::Reference => record.features.clone(),
            },
        );
        let request = upload::UploadRequest {
            kind,
            format,
            gzip,
            cfg,
            idempotency: idempotency_key.as_deref().map(|key| upload::Idempotency {
                key,
                actor: &actor.name,
            }),
        };
        let outcome = upload::upload(
            &s.uploads,
            &s.telemetry.store,
            request,
            body.into_data_stream(),
        )
        .await?;
        let features = outcome.features.clone();
        let labels = match kind {
            UploadKind::Labels => {
                let matches = upload::label_matches(
                    &s.telemetry.store,
                    &model,
                    &version.to_string(),
                    &outcome.upload_id,
                )
                .await
                .map_err(upload::UploadError::Store)?;
                Some(matches)
            }
            UploadKind::Inferences | UploadKind::Reference => None,
        };
        if outcome.replayed {
            tracing::info!(
                upload_id = %outcome.upload_id,
                rows = outcome.rows,
                "upload repeated with the same Idempotency-Key and body; nothing stored again"
            );
            return Ok(reply(outcome, features, false, labels));
        }
        // The first reference upload of a version without declared
        // features declares them (an audited version update).
        let mut features_declared = false;
        if kind == UploadKind::Reference && record.features.is_empty() && !features.is_empty() {
            let current = s.registry.get_version(&model, version).await?;
            if current.features.is_empty() {
                s.registry
                    .update_version(
                        actor,
                        &model,
                        version,
                        VersionUpdate {
                            features: Some(features.clone()),
                            ..Default::default()
                        },
                    )
                    .await?;
                features_declared = true;
            }
        }
        crate::metrics::record_upload(&outcome.table, outcome.rows, labels.map(|l| l.unmatched));
        tracing::info!(
            rows = outcome.rows,
            bytes = outcome.bytes,
            duration_ms = outcome.duration_ms,
            features_declared,
            unmatched_labels = labels.map(|l| l.unmatched),
            "upload stored"
        );
        Ok(reply(outcome, features, features_declared, labels))
    }
    .instrument(span)
    .await
}

fn reply(
    outcome: upload::UploadOutcome,
    features: BTreeMap<String, FeatureKind>,
    features_declared: bool,
    labels: Option<upload::LabelMatches>,
) -> Response {
    let replayed = outcome.replayed;
    let mut response = Json(UploadResponse {
        upload_id: outcome.upload_id,
        table: outcome.table,
        rows: outcome.rows,
        bytes: outcome.bytes,
        duration_ms: outcome.duration_ms,
        features,
        features_declared,
        replayed,
        labels,
    })
    .into_response();
    if replayed {
        response.headers_mut().insert(
            "idempotent-replayed",
            axum::http::HeaderValue::from_static("true"),
        );
    }
    response
}
