//! The backend seam: everything the daemon asks of the registry's storage.
//!
//! SQLite implements it today ([`crate::SqliteStore`]); PostgreSQL fills the
//! same trait later. Every mutating call takes the [`Actor`] and writes its
//! audit entry in the same transaction as the change.

use async_trait::async_trait;

use crate::error::Result;
use crate::gate::{GateApproval, GatePolicyRecord};
use crate::policy::{MonitoringPolicy, PolicyRecord};
use crate::search::{Search, SearchPage};
use crate::tracking::{Experiment, NewExperiment, NewRun, Run, RunLog, RunUpdate};
use crate::types::*;
use crate::webhooks::{
    AttemptOutcome, CreatedWebhook, DeliveryFilter, DispatchReport, DueDelivery, NewWebhook,
    Webhook, WebhookDelivery, WebhookEvent,
};

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

    /// What the backend's writer has done since it was opened (for
    /// `/metrics`); zeros for a backend that does not count.
    fn stats(&self) -> crate::RegistryStats {
        crate::RegistryStats::default()
    }

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
    // Outbound webhooks (see `crate::webhooks`).

    /// Creates a subscription (audited without its secret); the reply holds
    /// the secret, generated when the request has none.
    async fn create_webhook(&self, actor: &Actor, new: NewWebhook) -> Result<CreatedWebhook>;
    async fn get_webhook(&self, name: &str) -> Result<Webhook>;
    async fn list_webhooks(&self) -> Result<Vec<Webhook>>;
    /// Deletes a subscription with its deliveries (audited).
    async fn delete_webhook(&self, actor: &Actor, name: &str) -> Result<()>;
    async fn list_webhook_deliveries(
        &self,
        name: &str,
        filter: &DeliveryFilter,
        page: &PageRequest,
    ) -> Result<Page<WebhookDelivery>>;
    /// Queues an event that is not a registry change for every matching
    /// subscription, or for the one named (whatever its event list; `ping`
    /// is allowed only then). Returns the deliveries queued.
    async fn publish_webhook_event(
        &self,
        event: WebhookEvent,
        subscription: Option<&str>,
    ) -> Result<u64>;
    /// One outbox step: turns audit entries after the cursor into
    /// deliveries and advances the cursor, in one transaction.
    async fn dispatch_webhook_outbox(&self) -> Result<DispatchReport>;
    /// Pending deliveries that are due, each leased for `lease` (not due
    /// again until then unless its attempt is recorded).
    async fn claim_due_webhook_deliveries(
        &self,
        lease: std::time::Duration,
        limit: u32,
    ) -> Result<Vec<DueDelivery>>;
    async fn record_webhook_attempt(&self, id: i64, outcome: AttemptOutcome) -> Result<()>;
    /// Makes every leased delivery claimable again; for a daemon starting
    /// up, when none of its attempts can still be in flight.
    async fn release_webhook_leases(&self) -> Result<u64>;
    /// When the earliest pending delivery is due.
    async fn next_webhook_due(&self) -> Result<Option<chrono::DateTime<chrono::Utc>>>;
    /// Deletes delivered and failed deliveries finished before the time.
    async fn prune_webhook_deliveries(
        &self,
        finished_before: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64>;

    /// Handles one Alertmanager alert state (see [`crate::alert_notices`]):
    /// a repeat returns the earlier record with `duplicate`; otherwise the
    /// action is performed or refused, recorded and audited, in one
    /// transaction.
    async fn record_alert(
        &self,
        actor: &Actor,
        notice: crate::AlertNotice,
        action: crate::AlertAction,
    ) -> Result<crate::AlertHandled>;
    /// Alert states received, oldest first.
    async fn list_alert_notifications(
        &self,
        page: &PageRequest,
    ) -> Result<Page<crate::AlertRecord>>;
    // MLflow compatibility: renames, stages, searches across models, and
    // the tracking store (see `crate::search`, `crate::tracking`).

    /// Renames a model; its versions, aliases and policy follow. Audited as
    /// `model.rename` on the old name's target.
    async fn rename_model(&self, actor: &Actor, name: &str, new_name: &str) -> Result<Model>;
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
    async fn search_models(&self, search: &Search) -> Result<SearchPage<Model>>;
    /// Versions of every model matching the search.
    async fn search_versions(&self, search: &Search) -> Result<SearchPage<Version>>;
    /// The highest version in each stage (only `stages` when not empty).
    async fn latest_versions(&self, model: &str, stages: &[Stage]) -> Result<Vec<Version>>;
    /// The version an alias points at.
    async fn get_version_by_alias(&self, model: &str, alias: &str) -> Result<Version>;
    async fn create_experiment(&self, actor: &Actor, new: NewExperiment) -> Result<Experiment>;
    async fn get_experiment(&self, id: i64) -> Result<Experiment>;
    async fn get_experiment_by_name(&self, name: &str) -> Result<Experiment>;
    async fn create_run(&self, actor: &Actor, new: NewRun) -> Result<Run>;
    async fn get_run(&self, id: &str) -> Result<Run>;
    async fn update_run(&self, actor: &Actor, id: &str, update: RunUpdate) -> Result<Run>;
    /// Logs metrics, parameters (write-once) and tags to a run, audited as
    /// one `run.log` entry.
    async fn log_run(&self, actor: &Actor, id: &str, log: RunLog) -> Result<()>;
    /// [`RegistryStore::set_alias`] without reading the alias and its
    /// whole move history back (that read grows with every move).
    async fn set_alias_target(
        &self,
        actor: &Actor,
        model: &str,
        alias: &str,
        version: i64,
        reason: &str,
    ) -> Result<()>;
    // Promotion gates (see `crate::gate`).

    /// Sets (creates or replaces) a model's gate policy. The text must
    /// already have been compiled by the caller; the store checks only its
    /// size. Audited as `gate_policy.set` with the previous text as `before`.
    async fn set_gate_policy(
        &self,
        actor: &Actor,
        model: &str,
        rego: &str,
    ) -> Result<GatePolicyRecord>;
    async fn get_gate_policy(&self, model: &str) -> Result<GatePolicyRecord>;
    /// Removes the gate policy (promotions are no longer checked); audited
    /// as `gate_policy.delete`.
    async fn delete_gate_policy(&self, actor: &Actor, model: &str) -> Result<()>;
    /// Moves an alias to a version whose gate allowed it: like
    /// [`set_alias`](Self::set_alias), with the decision in the audit entry
    /// (`after.gate`). Refused with `Conflict`, changing nothing, when the
    /// model's gate policy is no longer the one that decided.
    async fn promote_alias(
        &self,
        actor: &Actor,
        model: &str,
        alias: &str,
        version: i64,
        reason: &str,
        gate: &GateApproval,
    ) -> Result<Alias>;
}
