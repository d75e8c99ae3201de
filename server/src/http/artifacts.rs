//! A version's files: `…/versions/{version}/artifacts[/{path}]`. Uploads
//! and downloads stream (a multi-GB file is never held in memory); the
//! rules are in [`crate::artifacts`].

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;

use modelwatch_artifacts::{ArtifactPath, Manifest, Sha256Digest};
use modelwatch_registry::Role;
use modelwatch_types::records::{ArtifactFile, ArtifactListing, SealArtifacts};

use super::AppState;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::ApiPath;
use crate::artifacts::{VersionFiles, put_version_file, seal_version};
use crate::auth::Caller;

/// Header carrying a file's sha256 (`sha256:<hex>` or bare hex): on an
/// upload, the digest the content must have; on a download, the digest it has.
pub const CONTENT_SHA256: &str = "x-content-sha256";

pub fn listing(files: &VersionFiles) -> ArtifactListing {
    ArtifactListing {
        model: files.version.model.clone(),
        version: files.version.version,
        state: files.state.api(),
        artifact_digest: files.version.artifact_digest.clone(),
        files: listed(&files.manifest),
        total_bytes: files.manifest.total_bytes(),
    }
}

fn listed(manifest: &Manifest) -> Vec<ArtifactFile> {
    manifest
        .listing("")
        .into_iter()
        .map(|f| ArtifactFile {
            path: f.path,
            size: f.size,
            sha256: f.sha256.to_string(),
        })
        .collect()
}

/// Lists a version's files and whether they are sealed.
#[utoipa::path(get, path = "/api/v1/models/{model}/versions/{version}/artifacts", tag = "artifacts",
    params(("model" = String, Path), ("version" = i64, Path)),
    responses((status = 200, body = ArtifactListing), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_artifacts(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((model, version)): ApiPath<(String, i64)>,
) -> ApiResult<Json<ArtifactListing>> {
    caller.require(Role::Reader)?;
    let files = VersionFiles::load(s.registry.as_ref(), &s.artifacts, &model, version).await?;
    Ok(Json(listing(&files)))
}

/// Seals the files uploaded so far: their manifest's digest becomes the
/// version's `artifact_digest` (audited as `version.artifacts_sealed`) and
/// they can no longer change. The body (optional) may declare the digest
/// the manifest must have.
#[utoipa::path(post, path = "/api/v1/models/{model}/versions/{version}/artifacts", tag = "artifacts",
    params(("model" = String, Path), ("version" = i64, Path)),
    request_body(content = Option<SealArtifacts>, content_type = "application/json"),
    responses(
        (status = 200, body = ArtifactListing, description = "sealed"),
        (status = 400, body = ErrorBody, description = "no files uploaded, or the declared digest does not match; nothing changed"),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the version's files are already sealed or external")),
    security(("bearer" = [])))]
pub async fn seal_artifacts(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((model, version)): ApiPath<(String, i64)>,
    body: Bytes,
) -> ApiResult<Json<ArtifactListing>> {
    let actor = caller.require(Role::Editor)?;
    let request: SealArtifacts = if body.iter().all(u8::is_ascii_whitespace) {
        SealArtifacts::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::malformed_json(format!(
                "the body must be {{\"artifact_digest\": \"sha256:…\"}} or empty: {e}"
            ))
        })?
    };
    let declared = request
        .artifact_digest
        .as_deref()
        .map(Sha256Digest::parse)
        .transpose()?;
    let files = seal_version(
        s.registry.as_ref(),
        &s.artifacts,
        actor,
        (&model, version),
        declared,
    )
    .await?;
    Ok(Json(listing(&files)))
}

/// Uploads one file into a version whose files are not sealed yet,
/// streaming (any size up to `--max-artifact-file-bytes`). Replaces a file
/// of the same path.
#[utoipa::path(put, path = "/api/v1/models/{model}/versions/{version}/artifacts/{path}", tag = "artifacts",
    params(("model" = String, Path), ("version" = i64, Path),
        ("path" = String, Path, description = "relative, `/`-separated; no `.`/`..` segments"),
        ("X-Content-Sha256" = Option<String>, Header, description = "the content's sha256; a mismatch keeps nothing")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 201, body = ArtifactFile, description = "stored (fsynced) and verified"),
        (status = 400, body = ErrorBody, description = "bad path, digest mismatch or the body ended early; nothing kept"),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the version's files are sealed, or a file and a directory would share a name"),
        (status = 413, body = ErrorBody, description = "over --max-artifact-file-bytes; nothing kept")),
    security(("bearer" = [])))]
pub async fn put_artifact(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((model, version, path)): ApiPath<(String, i64, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    caller.require(Role::Editor)?;
    let path = ArtifactPath::parse(&path)?;
    let expect = declared_sha256(&headers)?;
    let stored = put_version_file(
        s.registry.as_ref(),
        &s.artifacts,
        (&model, version),
        &path,
        body.into_data_stream(),
        expect,
    )
    .await?;
    let file = ArtifactFile {
        path: stored.path,
        size: stored.size,
        sha256: stored.sha256.to_string(),
    };
    Ok((StatusCode::CREATED, Json(file)).into_response())
}

/// Downloads one file, streaming; the content is verified against its
/// sha256 as it is sent (a stored file that no longer matches ends the
/// response with an error instead of completing it).
#[utoipa::path(get, path = "/api/v1/models/{model}/versions/{version}/artifacts/{path}", tag = "artifacts",
    params(("model" = String, Path), ("version" = i64, Path), ("path" = String, Path)),
    responses(
        (status = 200, content_type = "application/octet-stream", description = "the file; `X-Content-Sha256` and `ETag` carry its digest"),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_artifact(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((model, version, path)): ApiPath<(String, i64, String)>,
) -> ApiResult<Response> {
    caller.require(Role::Reader)?;
    let path = ArtifactPath::parse(&path)?;
    let files = VersionFiles::load(s.registry.as_ref(), &s.artifacts, &model, version).await?;
    let entry = files.file(&path)?;
    file_response(&s, entry).await
}

/// A stored file as a streaming 200 response.
pub async fn file_response(
    s: &AppState,
    entry: modelwatch_artifacts::FileEntry,
) -> ApiResult<Response> {
    let stream = s
        .artifacts
        .open(&entry)
        .await?
        .inspect_err(|e| tracing::error!(error = %e, "artifact download aborted"))
        .map_err(std::io::Error::other);
    let mut response = Body::from_stream(stream).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(entry.size));
    let digest = entry.sha256.to_string();
    if let Ok(v) = HeaderValue::from_str(&digest) {
        h.insert(CONTENT_SHA256, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", entry.sha256.hex())) {
        h.insert(header::ETAG, v);
    }
    Ok(response)
}

fn declared_sha256(headers: &HeaderMap) -> Result<Option<Sha256Digest>, ApiError> {
    let Some(value) = headers.get(CONTENT_SHA256) else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| {
        ApiError::bad_request(format!(
            "{CONTENT_SHA256} must be sha256:<64 hex characters>"
        ))
    })?;
    Ok(Some(Sha256Digest::parse(text.trim())?))
}
