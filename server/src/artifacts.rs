//! What the artifact routes (native and MLflow) share: which files a
//! version serves, uploading into a version, sealing one. Handlers stay
//! thin; the rule deciding what a version's files are is
//! [`VersionFiles::of`] (no I/O).
//!
//! A version's files are **open** (a tree being uploaded into) until its
//! `artifact_digest` is recorded, then **sealed**: the manifest that
//! digest names is all it serves, forever. A version registered with an
//! `artifact_digest` of files stored elsewhere (`source_uri` `s3://…`)
//! is **external**: modelwatch holds none of its files.

use bytes::Bytes;
use futures::Stream;

use modelwatch_artifacts::{
    Appended, ArtifactPath, ArtifactStore, FileEntry, ListedFile, Manifest, Sha256Digest, Tree,
    UploadSession,
};
use modelwatch_registry::{Actor, ModelMetadata, RegistryStore, Version};

use crate::http::error::ApiError;

/// Where a version's files come from, decided from its record and whether
/// the store holds the manifest its digest names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilesState {
    Open,
    Sealed(Sha256Digest),
    External,
}

impl FilesState {
    /// The state as the API names it.
    pub fn api(self) -> modelwatch_types::records::ArtifactsState {
        use modelwatch_types::records::ArtifactsState;
        match self {
            FilesState::Open => ArtifactsState::Open,
            FilesState::Sealed(_) => ArtifactsState::Sealed,
            FilesState::External => ArtifactsState::External,
        }
    }

    pub fn of(recorded_digest: Option<&str>, manifest_stored: bool) -> Self {
        match recorded_digest.map(Sha256Digest::parse) {
            None => FilesState::Open,
            Some(Ok(d)) if manifest_stored => FilesState::Sealed(d),
            Some(_) => FilesState::External,
        }
    }
}

/// A version's files as they are now.
pub struct VersionFiles {
    pub version: Version,
    pub state: FilesState,
    pub manifest: Manifest,
}

/// The tree a version's uploads go into while it is open. Keyed by the
/// version's creation time as well as its model and number, so a model
/// deleted and registered again, whose numbers start over, starts with no
/// files; a model renamed while a version is open leaves that version's
/// unsealed uploads behind (garbage collection removes them).
pub fn version_tree(version: &Version) -> Tree {
    Tree::Version {
        model: version.model.clone(),
        version: version.version,
        created: version.created_at.timestamp_micros(),
    }
}

impl VersionFiles {
    /// The state alone, without reading the manifest.
    pub async fn state(store: &ArtifactStore, record: &Version) -> Result<FilesState, ApiError> {
        let stored = match record.artifact_digest.as_deref().map(Sha256Digest::parse) {
            Some(Ok(d)) => store.has_manifest(&d).await?,
            _ => false,
        };
        Ok(FilesState::of(record.artifact_digest.as_deref(), stored))
    }

    pub async fn load(
        registry: &dyn RegistryStore,
        store: &ArtifactStore,
        model: &str,
        version: i64,
    ) -> Result<Self, ApiError> {
        let record = registry.get_version(model, version).await?;
        let state = Self::state(store, &record).await?;
        let manifest = match state {
            FilesState::Open => store.tree_manifest(&version_tree(&record)).await?,
            FilesState::Sealed(d) => store.manifest(&d).await?,
            FilesState::External => Manifest::default(),
        };
        Ok(Self {
            version: record,
            state,
            manifest,
        })
    }

    /// One file, or a 404 saying why there is none.
    pub fn file(&self, path: &ArtifactPath) -> Result<FileEntry, ApiError> {
        if self.state == FilesState::External {
            return Err(self.external_error());
        }
        self.manifest.files.get(path.as_str()).copied().ok_or_else(|| {
            ApiError::not_found(format!(
                "version {} of model {:?} has no file {:?}; list its files with GET …/versions/{}/artifacts",
                self.version.version, self.version.model, path.as_str(), self.version.version
            ))
        })
    }

    pub fn external_error(&self) -> ApiError {
        ApiError::not_found(format!(
            "version {} of model {:?} records artifact_digest {} for files stored outside modelwatch (source_uri {}); fetch them from there",
            self.version.version,
            self.version.model,
            self.version.artifact_digest.as_deref().unwrap_or(""),
            self.version.source_uri.as_deref().unwrap_or("not set"),
        ))
    }
}

fn sealed_conflict(version: &Version) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::CONFLICT,
        "artifacts_sealed",
        format!(
            "version {} of model {:?} has its files fixed (artifact_digest {}); register a new version for new files",
            version.version,
            version.model,
            version.artifact_digest.as_deref().unwrap_or("")
        ),
    )
}

/// Uploads one file into an open version. A seal that commits while the
/// upload runs wins: unless the sealed manifest has this very file, the
/// upload is answered 409 (it is not part of the version).
pub async fn put_version_file<S, E>(
    registry: &dyn RegistryStore,
    store: &ArtifactStore,
    (model, version): (&str, i64),
    path: &ArtifactPath,
    body: S,
    expect: Option<Sha256Digest>,
) -> Result<ListedFile, ApiError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
    E: std::fmt::Display,
{
    let record = registry.get_version(model, version).await?;
    if record.artifact_digest.is_some() {
        return Err(sealed_conflict(&record));
    }
    let stored = store
        .put_file(&version_tree(&record), path, body, expect)
        .await?;
    kept_after_seal(registry, store, (model, version), stored).await
}

/// A file just stored into an open version, unless a seal committed
/// meanwhile without it (then 409: it is not part of the version).
async fn kept_after_seal(
    registry: &dyn RegistryStore,
    store: &ArtifactStore,
    (model, version): (&str, i64),
    stored: ListedFile,
) -> Result<ListedFile, ApiError> {
    let path = stored.path.as_str();
    // Only the record is read again: listing the tree on every upload
    // would make pushing n files cost n² reads.
    let after = registry.get_version(model, version).await?;
    let Some(digest) = after.artifact_digest.as_deref() else {
        return Ok(stored);
    };
    let sealed_with_it = match Sha256Digest::parse(digest) {
        Ok(d) if store.has_manifest(&d).await? => {
            store.manifest(&d).await?.files.get(path).map(|e| e.sha256) == Some(stored.sha256)
        }
        _ => false,
    };
    if sealed_with_it {
        Ok(stored)
    } else {
        Err(sealed_conflict(&after))
    }
}

/// A version's resumable upload: it must belong to the version's tree
/// (an id is not a capability for another version).
async fn version_upload(
    store: &ArtifactStore,
    record: &Version,
    id: &str,
) -> Result<UploadSession, ApiError> {
    let session = store.upload_session(id).await?;
    if session.tree != version_tree(record) {
        return Err(modelwatch_artifacts::Error::UploadNotFound(id.to_string()).into());
    }
    Ok(session)
}

/// Begins a resumable upload into an open version.
pub async fn begin_version_upload(
    registry: &dyn RegistryStore,
    store: &ArtifactStore,
    (model, version): (&str, i64),
    path: &ArtifactPath,
    size: u64,
    expect: Option<Sha256Digest>,
) -> Result<UploadSession, ApiError> {
    let record = registry.get_version(model, version).await?;
    if record.artifact_digest.is_some() {
        return Err(sealed_conflict(&record));
    }
    let now = chrono::Utc::now().timestamp();
    Ok(store
        .begin_upload(&version_tree(&record), path, size, expect, now)
        .await?)
}

/// Where a version's resumable upload stands.
pub async fn version_upload_status(
    registry: &dyn RegistryStore,
    store: &ArtifactStore,
    (model, version): (&str, i64),
    id: &str,
) -> Result<UploadSession, ApiError> {
    let record = registry.get_version(model, version).await?;
    version_upload(store, &record, id).await
}

/// Appends a chunk to a version's resumable upload; the last one commits
/// the file (with the same seal race rule as a one-request upload).
pub async fn append_version_upload<S, E>(
    registry: &dyn RegistryStore,
    store: &ArtifactStore,
    (model, version): (&str, i64),
    id: &str,
    offset: u64,
    body: S,
) -> Result<Appended, ApiError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
    E: std::fmt::Display,
{
    let record = registry.get_version(model, version).await?;
    version_upload(store, &record, id).await?;
    if record.artifact_digest.is_some() {
        return Err(sealed_conflict(&record));
    }
    match store.append_upload(id, offset, body).await? {
        Appended::Complete(file) => Ok(Appended::Complete(
            kept_after_seal(registry, store, (model, version), file).await?,
        )),
        partial => Ok(partial),
    }
}

/// Aborts a version's resumable upload, discarding its bytes.
pub async fn abort_version_upload(
    registry: &dyn RegistryStore,
    store: &ArtifactStore,
    (model, version): (&str, i64),
    id: &str,
) -> Result<(), ApiError> {
    let record = registry.get_version(model, version).await?;
    version_upload(store, &record, id).await?;
    Ok(store.discard_upload(id).await?)
}

/// Fixes an open version's files: stores their manifest and records its
/// digest as the version's `artifact_digest` (audited). With `declared`,
/// the manifest must hash to it or nothing changes.
pub async fn seal_version(
    registry: &dyn RegistryStore,
    store: &ArtifactStore,
    actor: &Actor,
    (model, version): (&str, i64),
    declared: Option<Sha256Digest>,
) -> Result<VersionFiles, ApiError> {
    let files = VersionFiles::load(registry, store, model, version).await?;
    if files.state != FilesState::Open {
        return Err(sealed_conflict(&files.version));
    }
    let digest = files.manifest.digest();
    if let Some(declared) = declared
        && declared != digest
    {
        return Err(modelwatch_artifacts::Error::DigestMismatch {
            what: format!("the files of version {version} of model {model:?}"),
            declared: declared.to_string(),
            actual: digest.to_string(),
        }
        .into());
    }
    let what = format!("version {version} of model {model:?}");
    store.seal(&what, &files.manifest).await?;
    let read = described(store, &files.manifest, &what).await?;
    let record = registry
        .seal_artifacts(actor, model, version, &digest.to_string(), read)
        .await?;
    Ok(VersionFiles {
        version: record,
        state: FilesState::Sealed(digest),
        manifest: files.manifest,
    })
}

/// What files say about themselves (their `MLmodel`); a section that
/// could not be read is logged, never a reason to refuse the files.
pub async fn described(
    store: &ArtifactStore,
    manifest: &Manifest,
    what: &str,
) -> Result<ModelMetadata, ApiError> {
    let described = store.describe(manifest).await?;
    for why in &described.skipped {
        tracing::warn!(files = what, skipped = %why, "metadata section not read from the files");
    }
    Ok(described.metadata)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_is_open_until_a_digest_is_recorded_and_external_without_its_manifest() {
        let d = Sha256Digest::of(b"manifest");
        let text = d.to_string();
        assert_eq!(FilesState::of(None, false), FilesState::Open);
        assert_eq!(FilesState::of(Some(&text), true), FilesState::Sealed(d));
        assert_eq!(FilesState::of(Some(&text), false), FilesState::External);
        assert_eq!(
            FilesState::of(Some("sha256:zz"), false),
            FilesState::External
        );
    }
}
