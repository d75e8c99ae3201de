//! The backend seam: everything the daemon asks of the registry's storage.
//!
//! SQLite implements it today ([`crate::SqliteStore`]); PostgreSQL fills the
//! same trait later. Every mutating call takes the [`Actor`] and writes its
//! audit entry in the same transaction as the change.

use async_trait::async_trait;

use crate::error::Result;
use crate::policy::{MonitoringPolicy, PolicyRecord};
use crate::types::*;

#[async_trait]
pub trait RegistryStore: Send + Sync + 'static {
    /// Cheap liveness check of the backing database (for `/readyz`).
    async fn ping(&self) -> Result<()>;

    async fn create_model(&self, actor: &Actor, new: NewModel) -> Result<Model>;
    async fn get_model(&self, name: &str) -> Result<Model>;
    async fn list_models(&self, filter: &ModelFilter, page: &PageRequest) -> Result<Page<Model>>;
    async fn update_model(&self, actor: &Actor, name: &str, update: ModelUpdate) -> Result<Model>;
    /// Deletes the model with its versions, aliases and recommendations.
    async fn delete_model(&self, actor: &Actor, name: &str) -> Result<()>;

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

    async fn get_alias(&self, model: &str, alias: &str) -> Result<Alias>;
    async fn list_aliases(&self, model: &str) -> Result<Vec<Alias>>;
    async fn set_alias(
        &self,
        actor: &Actor,
        model: &str,
        alias: &str,
        version: i64,
        reason: &str,
    ) -> Result<Alias>;
    async fn delete_alias(
        &self,
        actor: &Actor,
        model: &str,
        alias: &str,
        reason: &str,
    ) -> Result<()>;
    /// Moves the alias back to the version it served before its current one.
    async fn rollback_alias(
        &self,
        actor: &Actor,
        model: &str,
        alias: &str,
        reason: &str,
    ) -> Result<Alias>;

    /// Raises a recommendation, or refreshes the open one of the same kind on
    /// the same version (one open recommendation per kind per version).
    async fn raise_recommendation(
        &self,
        actor: &Actor,
        model: &str,
        version: i64,
        new: NewRecommendation,
    ) -> Result<Recommendation>;
    async fn get_recommendation(&self, id: i64) -> Result<Recommendation>;
    async fn list_recommendations(
        &self,
        filter: &RecommendationFilter,
        page: &PageRequest,
    ) -> Result<Page<Recommendation>>;
    async fn transition_recommendation(
        &self,
        actor: &Actor,
        id: i64,
        transition: Transition,
        note: &str,
    ) -> Result<Recommendation>;

    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> Result<Page<AuditEntry>>;
    async fn verify_audit(&self) -> Result<AuditVerification>;

    /// Stores a token by the sha256 of its secret; the secret itself is never stored.
    async fn create_token(
        &self,
        actor: &Actor,
        name: &str,
        role: Role,
        secret_hash: &str,
    ) -> Result<TokenInfo>;
    async fn list_tokens(&self) -> Result<Vec<TokenInfo>>;
    async fn revoke_token(&self, actor: &Actor, name: &str) -> Result<TokenInfo>;
    /// The active (not revoked) token with this secret hash.
    async fn token_by_hash(&self, secret_hash: &str) -> Result<Option<TokenInfo>>;
    async fn active_admin_tokens(&self) -> Result<i64>;

    /// Every row of one registry view as a flat JSON object whose keys are
    /// the view's SQL column names (see [`RegistryView`]).
    async fn export_view(&self, view: RegistryView) -> Result<Vec<serde_json::Value>>;

    /// Sets (creates or replaces) a model's monitoring policy; audited as
    /// `policy.set` with the previous policy as `before`.
    async fn set_policy(
        &self,
        actor: &Actor,
        model: &str,
        policy: MonitoringPolicy,
    ) -> Result<PolicyRecord>;
    async fn get_policy(&self, model: &str) -> Result<PolicyRecord>;
    /// Every model's policy, ordered by model name.
    async fn list_policies(&self) -> Result<Vec<PolicyRecord>>;
    /// Removes a policy (the model is no longer watched); audited as
    /// `policy.delete`.
    async fn delete_policy(&self, actor: &Actor, model: &str) -> Result<()>;
}
