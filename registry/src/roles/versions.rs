//! The `Versions` role.

use async_trait::async_trait;

use crate::error::Result;
use crate::types::*;

/// Versions of a model, their tags and their MLflow stage.
#[async_trait]
pub trait Versions: Send + Sync {
    async fn create_version(&self, actor: &Actor, model: &str, new: NewVersion) -> Result<Version>;

    async fn get_version(&self, model: &str, version: i64) -> Result<Version>;

    async fn list_versions(
        &self,
        model: &str,
        filter: &VersionFilter,
        page: &PageRequest,
    ) -> Result<Page<Version>>;

    async fn update_version(
        &self,
        actor: &Actor,
        model: &str,
        version: i64,
        update: VersionUpdate,
    ) -> Result<Version>;

    /// Records the digest of the version's sealed artifact manifest as its
    /// `artifact_digest`, audited as `version.artifacts_sealed`, with the
    /// metadata `read` from the sealed files filling the sections not
    /// declared before (and the features its signature declares, when
    /// none are). A conflict when the version already has a digest: a
    /// version's files are fixed once recorded (register a new version
    /// for new files).
    async fn seal_artifacts(
        &self,
        actor: &Actor,
        model: &str,
        version: i64,
        artifact_digest: &str,
        read: ModelMetadata,
    ) -> Result<Version>;

    /// Refuses while an alias points at the version.
    async fn delete_version(&self, actor: &Actor, model: &str, version: i64) -> Result<()>;

    /// Sets (`Some`) or removes (`None`) one tag.
    async fn set_tag(
        &self,
        actor: &Actor,
        target: &TagTarget,
        key: &str,
        value: Option<&str>,
    ) -> Result<Tags>;

    /// Moves a version to a stage; with `archive_existing`, the model's
    /// other versions in that stage go to `Archived` in the same
    /// transaction. Each move is audited as `version.stage`.
    async fn transition_stage(
        &self,
        actor: &Actor,
        model: &str,
        version: i64,
        stage: Stage,
        archive_existing: bool,
    ) -> Result<Version>;
}
