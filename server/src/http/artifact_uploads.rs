//! Resumable uploads of a version's files:
//! `…/versions/{version}/artifact-uploads[/{id}]`. Begin with the file's path and
//! size, append chunks at the offset the daemon reports (`Upload-Offset`),
//! ask where it stands after a broken connection; the last chunk commits
//! the file. The rules are in [`crate::artifacts`] and
//! `modelwatch_artifacts`'s `resumable` module.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

use modelwatch_artifacts::{Appended, ArtifactPath, Sha256Digest, UploadSession};
use modelwatch_registry::Role;
use modelwatch_types::records::{ArtifactFile, NewUpload, UploadStatus};

use super::AppState;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ApiJson, ApiPath};
use crate::artifacts::{
    abort_version_upload, append_version_upload, begin_version_upload, version_upload_status,
};
use crate::auth::Caller;

/// Header carrying the offset a chunk starts at (the name tus uses).
pub const UPLOAD_OFFSET: &str = "upload-offset";

fn status(model: &str, version: i64, s: UploadSession) -> UploadStatus {
    UploadStatus {
        id: s.id,
        model: model.to_string(),
        version,
        path: s.path.to_string(),
        size: s.size,
        offset: s.offset,
        sha256: s.sha256.map(|d| d.to_string()),
        complete: false,
        file: None,
    }
}

/// Begins a resumable upload of one file into a version whose files are
/// not sealed yet. Nothing shows in the version until the last byte has
/// arrived and been verified.
#[utoipa::path(post, path = "/api/v1/models/{model}/versions/{version}/artifact-uploads", tag = "artifacts",
    params(("model" = String, Path), ("version" = i64, Path)),
    request_body = NewUpload,
    responses(
        (status = 201, body = UploadStatus, description = "begun, at offset 0"),
        (status = 400, body = ErrorBody, description = "bad path or digest"),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the version's files are sealed, or a file and a directory would share the name"),
        (status = 413, body = ErrorBody, description = "over --max-artifact-file-bytes")),
    security(("bearer" = [])))]
pub async fn begin_upload(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((model, version)): ApiPath<(String, i64)>,
    json: ApiJson<NewUpload>,
) -> ApiResult<(StatusCode, Json<UploadStatus>)> {
    caller.require(Role::Editor)?;
    let new = json.parse()?;
    let path = ArtifactPath::parse(&new.path)?;
    let expect = new.sha256.as_deref().map(Sha256Digest::parse).transpose()?;
    let session = begin_version_upload(
        s.registry.as_ref(),
        &s.artifacts,
        (&model, version),
        &path,
        new.size,
        expect,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(status(&model, version, session))))
}

/// Where a resumable upload stands: its offset is where the next chunk
/// starts (after a broken connection, resume from here).
#[utoipa::path(get, path = "/api/v1/models/{model}/versions/{version}/artifact-uploads/{id}", tag = "artifacts",
    params(("model" = String, Path), ("version" = i64, Path), ("id" = String, Path)),
    responses((status = 200, body = UploadStatus),
        (status = 404, body = ErrorBody, description = "no such upload: completed, aborted or expired")),
    security(("bearer" = [])))]
pub async fn get_upload(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((model, version, id)): ApiPath<(String, i64, String)>,
) -> ApiResult<Json<UploadStatus>> {
    caller.require(Role::Editor)?;
    let session =
        version_upload_status(s.registry.as_ref(), &s.artifacts, (&model, version), &id).await?;
    Ok(Json(status(&model, version, session)))
}

/// Appends a chunk (the raw bytes as the body) at `Upload-Offset`, which
/// must be the upload's offset. The chunk is fsynced before the reply;
/// bytes of a body that breaks off are kept up to where it broke. The
/// chunk that brings the upload to its size commits the file: hashed,
/// checked against the declared sha256 (a mismatch discards the upload)
/// and put in the version, replacing a file of the same path.
#[utoipa::path(patch, path = "/api/v1/models/{model}/versions/{version}/artifact-uploads/{id}", tag = "artifacts",
    params(("model" = String, Path), ("version" = i64, Path), ("id" = String, Path),
        ("Upload-Offset" = u64, Header, description = "where this chunk starts")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 200, body = UploadStatus, description = "appended; `complete` with the stored `file` after the last chunk"),
        (status = 400, body = ErrorBody, description = "no Upload-Offset, the body broke off (what arrived is kept), or the digest did not match (the upload is discarded)"),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the offset is not the upload's (the message says which is), another request is appending, or the version was sealed"),
        (status = 413, body = ErrorBody, description = "more bytes than the size begun with; nothing of this chunk kept")),
    security(("bearer" = [])))]
pub async fn append_upload(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((model, version, id)): ApiPath<(String, i64, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<UploadStatus>> {
    caller.require(Role::Editor)?;
    let offset = upload_offset(&headers)?;
    let appended = append_version_upload(
        s.registry.as_ref(),
        &s.artifacts,
        (&model, version),
        &id,
        offset,
        body.into_data_stream(),
    )
    .await?;
    Ok(Json(match appended {
        Appended::Partial(session) => status(&model, version, session),
        Appended::Complete(file) => UploadStatus {
            id,
            model,
            version,
            path: file.path.clone(),
            size: file.size,
            offset: file.size,
            sha256: Some(file.sha256.to_string()),
            complete: true,
            file: Some(ArtifactFile {
                path: file.path,
                size: file.size,
                sha256: file.sha256.to_string(),
            }),
        },
    }))
}

/// Aborts a resumable upload, discarding what arrived.
#[utoipa::path(delete, path = "/api/v1/models/{model}/versions/{version}/artifact-uploads/{id}", tag = "artifacts",
    params(("model" = String, Path), ("version" = i64, Path), ("id" = String, Path)),
    responses((status = 204, description = "discarded"), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "a chunk is being appended to it right now")),
    security(("bearer" = [])))]
pub async fn abort_upload(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((model, version, id)): ApiPath<(String, i64, String)>,
) -> ApiResult<StatusCode> {
    caller.require(Role::Editor)?;
    abort_version_upload(s.registry.as_ref(), &s.artifacts, (&model, version), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn upload_offset(headers: &HeaderMap) -> Result<u64, ApiError> {
    let value = headers.get(UPLOAD_OFFSET).ok_or_else(|| {
        ApiError::bad_request(format!(
            "a chunk needs the {UPLOAD_OFFSET} header: the byte offset it starts at (GET the upload for its offset)"
        ))
    })?;
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "{UPLOAD_OFFSET} must be a whole number of bytes, not {value:?}"
            ))
        })
}
