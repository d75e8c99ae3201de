//! A version's files (artifacts) as the API lists them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Whether a version's files can still change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ArtifactsState {
    /// Files may be uploaded; nothing is recorded in the version yet.
    Open,
    /// The version's `artifact_digest` names the manifest of exactly
    /// these files; they cannot change.
    Sealed,
    /// The version records a digest of files stored outside modelwatch.
    External,
}

impl ArtifactsState {
    /// The public text form (as in JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            ArtifactsState::Open => "open",
            ArtifactsState::Sealed => "sealed",
            ArtifactsState::External => "external",
        }
    }
}

/// One stored file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ArtifactFile {
    /// Relative to the version's root, `/`-separated.
    pub path: String,
    pub size: u64,
    /// `sha256:<64 hex>` of the content, verified on upload and on download.
    pub sha256: String,
}

/// `GET /models/{model}/versions/{version}/artifacts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ArtifactListing {
    pub model: String,
    pub version: i64,
    pub state: ArtifactsState,
    /// The sealed manifest's digest (the version's `artifact_digest`).
    pub artifact_digest: Option<String>,
    pub files: Vec<ArtifactFile>,
    pub total_bytes: u64,
}

/// `POST /models/{model}/versions/{version}/artifacts`: seals the files
/// uploaded so far. With `artifact_digest`, the manifest must hash to it
/// (computed by the client as the API documents) or nothing changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SealArtifacts {
    pub artifact_digest: Option<String>,
}

/// `POST /models/{model}/versions/{version}/uploads`: begins a resumable
/// upload of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUpload {
    /// Relative to the version's root, `/`-separated.
    pub path: String,
    /// The whole file's size in bytes.
    pub size: u64,
    /// `sha256:<64 hex>` the content must have; checked when the last byte
    /// arrives (a mismatch discards the upload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// A resumable upload: where it stands, and the file once complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UploadStatus {
    pub id: String,
    pub model: String,
    pub version: i64,
    pub path: String,
    pub size: u64,
    /// Bytes received and fsynced: the next chunk starts here.
    pub offset: u64,
    pub sha256: Option<String>,
    pub complete: bool,
    /// The stored file, once complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<ArtifactFile>,
}
