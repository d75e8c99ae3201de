//! Request and response bodies of the native API, field for field what the
//! daemon accepts and sends (`docs/api.md`). Replies are decoded leniently
//! (unknown fields are ignored, so an older client reads a newer daemon);
//! requests carry exactly the fields the daemon accepts.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use modelwatch_types::{
    Features, MonitoringPolicy, MoveKind, RecommendationKind, RecommendationStatus, Role, Severity,
    Stage, Tags, VersionStatus,
};

// ---------------------------------------------------------------- listings

/// One page of a listing plus the cursor of the next page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass back as [`PageQuery::cursor`] for the next page; `None` on the last.
    pub next_cursor: Option<String>,
}

/// Which page of a listing: at most `limit` (1–1000, default 50) items
/// after `cursor`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageQuery {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

impl PageQuery {
    /// The first page with at most `limit` items.
    pub fn limit(limit: u32) -> Self {
        Self {
            limit: Some(limit),
            cursor: None,
        }
    }

    pub(crate) fn push(&self, q: &mut Vec<(String, String)>) {
        if let Some(l) = self.limit {
            q.push(("limit".into(), l.to_string()));
        }
        if let Some(c) = &self.cursor {
            q.push(("cursor".into(), c.clone()));
        }
    }
}

fn push_opt(q: &mut Vec<(String, String)>, key: &str, value: Option<impl ToString>) {
    if let Some(v) = value {
        q.push((key.to_string(), v.to_string()));
    }
}

fn push_tags(q: &mut Vec<(String, String)>, tags: &[(String, String)]) {
    q.extend(tags.iter().map(|(k, v)| (format!("tag.{k}"), v.clone())));
}

// ------------------------------------------------------------------ models

/// A registered model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub name: String,
    pub description: String,
    pub owner: String,
    pub tags: Tags,
    /// Highest version number handed out so far (0 when none).
    pub latest_version: i64,
    /// Current alias targets, alias name → version.
    pub aliases: BTreeMap<String, i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `POST /models`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NewModel {
    pub name: String,
    pub description: String,
    pub owner: String,
    pub tags: Tags,
}

impl NewModel {
    /// A model with only a name.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }
}

/// `PATCH /models/{model}`: fields left `None` are not changed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ModelUpdate {
    pub description: Option<String>,
    pub owner: Option<String>,
}

/// Filters of `GET /models`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelQuery {
    pub page: PageQuery,
    pub name_prefix: Option<String>,
    pub owner: Option<String>,
    /// Every (key, value) pair must match.
    pub tags: Vec<(String, String)>,
}

impl ModelQuery {
    pub(crate) fn pairs(&self) -> Vec<(String, String)> {
        let mut q = Vec::new();
        self.page.push(&mut q);
        push_opt(&mut q, "name_prefix", self.name_prefix.as_ref());
        push_opt(&mut q, "owner", self.owner.as_ref());
        push_tags(&mut q, &self.tags);
        q
    }
}

/// `PUT …/tags/{key}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TagValue {
    pub value: String,
}

// ---------------------------------------------------------------- versions

/// A reference to the data a version was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataRef {
    pub uri: String,
    /// `sha256:<64 hex>` of the data, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// Where a version came from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Lineage {
    #[serde(default)]
    pub training_data: Vec<DataRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_commit: Option<String>,
    /// A version of the same model this one was derived from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_version: Option<i64>,
    /// Hyperparameters (strings, as MLflow keeps them).
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    /// Evaluation metrics, finite numbers.
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
}

/// A version with its lineage, aliases, health and open recommendations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Version {
    pub model: String,
    pub version: i64,
    pub description: String,
    pub source_uri: Option<String>,
    pub artifact_digest: Option<String>,
    pub run_id: Option<String>,
    pub lineage: Lineage,
    pub tags: Tags,
    /// Known features (name → kind); uploads are checked against them.
    pub features: Features,
    /// Where the version's reference data was loaded from at creation.
    pub reference_uri: Option<String>,
    pub status: VersionStatus,
    /// MLflow's stage, kept beside aliases.
    pub stage: Stage,
    /// Aliases currently pointing at this version.
    pub aliases: Vec<String>,
    /// Latest health summary written by the evaluator (null until evaluated).
    pub health: Option<Value>,
    /// Open recommendations for this version.
    pub recommendations: Vec<Recommendation>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `POST /models/{model}/versions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NewVersion {
    pub description: String,
    pub source_uri: Option<String>,
    pub artifact_digest: Option<String>,
    pub run_id: Option<String>,
    pub lineage: Lineage,
    pub tags: Tags,
    /// Known features (name → kind).
    pub features: Features,
    /// Reference data to load at creation: a Parquet file the daemon may
    /// read (path or `file://` URI).
    pub reference_uri: Option<String>,
}

/// `PATCH /models/{model}/versions/{version}`: `None` fields are not changed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VersionUpdate {
    pub description: Option<String>,
    pub status: Option<VersionStatus>,
    /// Replaces the known features.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub features: Option<Features>,
}

/// Filters of `GET /models/{model}/versions`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionQuery {
    pub page: PageQuery,
    pub status: Option<VersionStatus>,
    pub run_id: Option<String>,
    pub tags: Vec<(String, String)>,
}

impl VersionQuery {
    pub(crate) fn pairs(&self) -> Vec<(String, String)> {
        let mut q = Vec::new();
        self.page.push(&mut q);
        push_opt(&mut q, "status", self.status);
        push_opt(&mut q, "run_id", self.run_id.as_ref());
        push_tags(&mut q, &self.tags);
        q
    }
}

// ----------------------------------------------------------------- aliases

/// An alias and every move it made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alias {
    pub model: String,
    pub alias: String,
    pub version: i64,
    pub updated_by: String,
    pub updated_at: DateTime<Utc>,
    /// Every move of this alias, newest first.
    pub history: Vec<AliasMove>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AliasMove {
    pub from_version: Option<i64>,
    pub to_version: Option<i64>,
    pub kind: MoveKind,
    pub actor: String,
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// `PUT /models/{model}/aliases/{alias}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SetAlias {
    pub version: i64,
    pub reason: String,
}

/// `POST …/aliases/{alias}/rollback`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Reason {
    pub reason: String,
}

// --------------------------------------------------------- recommendations

/// A retrain / rollback / promote recommendation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    pub id: i64,
    pub model: String,
    pub version: i64,
    pub kind: RecommendationKind,
    pub severity: Severity,
    pub reason: String,
    pub evidence: Value,
    pub status: RecommendationStatus,
    pub raised_by: String,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub resolved_by: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolution_note: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `POST /models/{model}/versions/{version}/recommendations`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewRecommendation {
    pub kind: RecommendationKind,
    pub severity: Severity,
    pub reason: String,
    pub evidence: Value,
}

/// `POST /recommendations/{id}/acknowledge|dismiss`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Note {
    pub note: String,
}

/// Filters of `GET /recommendations`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecommendationQuery {
    pub page: PageQuery,
    pub model: Option<String>,
    pub version: Option<i64>,
    pub kind: Option<RecommendationKind>,
    pub status: Option<RecommendationStatus>,
}

impl RecommendationQuery {
    pub(crate) fn pairs(&self) -> Vec<(String, String)> {
        let mut q = Vec::new();
        self.page.push(&mut q);
        push_opt(&mut q, "model", self.model.as_ref());
        push_opt(&mut q, "version", self.version);
        push_opt(&mut q, "kind", self.kind);
        push_opt(&mut q, "status", self.status);
        q
    }
}

// ------------------------------------------------------------------- audit

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub prev_hash: String,
    pub hash: String,
}

/// Result of recomputing the audit chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditVerification {
    pub entries_checked: i64,
    pub ok: bool,
    /// The first entry whose hash or link does not match, when not ok.
    pub first_broken_seq: Option<i64>,
    pub problem: Option<String>,
    /// Hash of the last entry (the chain head) when ok.
    pub head_hash: Option<String>,
}

/// Filters of `GET /audit`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub page: PageQuery,
    pub actor: Option<String>,
    /// e.g. `alias.rollback`.
    pub action: Option<String>,
    /// e.g. `model/fraud`.
    pub target_prefix: Option<String>,
}

impl AuditQuery {
    pub(crate) fn pairs(&self) -> Vec<(String, String)> {
        let mut q = Vec::new();
        self.page.push(&mut q);
        push_opt(&mut q, "actor", self.actor.as_ref());
        push_opt(&mut q, "action", self.action.as_ref());
        push_opt(&mut q, "target_prefix", self.target_prefix.as_ref());
        q
    }
}

// ------------------------------------------------------------------ tokens

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenInfo {
    pub name: String,
    pub role: Role,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// `POST /tokens`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewToken {
    pub name: String,
    pub role: Role,
}

/// A created token with its secret, shown this once.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub info: TokenInfo,
    pub token: String,
}

impl std::fmt::Debug for CreatedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret stays out of logs and panic messages.
        f.debug_struct("CreatedToken")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

// -------------------------------------------------------------- monitoring

/// A model's stored monitoring policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyRecord {
    pub model: String,
    pub policy: MonitoringPolicy,
    pub updated_by: String,
    pub updated_at: DateTime<Utc>,
}

/// `POST /evaluate`: every watched model, or one.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EvaluateRequest {
    pub model: Option<String>,
}

/// What one evaluator cycle did, per watched version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CycleReport {
    pub started_at: DateTime<Utc>,
    pub duration_ms: f64,
    pub versions: Vec<VersionOutcome>,
}

/// One watched alias's evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionOutcome {
    pub model: String,
    pub alias: String,
    /// The alias's target; `None` when the alias is not set.
    pub version: Option<i64>,
    /// `evaluated`, `not_enough_data`, `baseline_pending`, `no_alias` or `error`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drifted_share: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_drift: Option<bool>,
    pub consecutive_drifted: u32,
    pub drifted_features: Vec<String>,
    /// `pass`, `fail`, `marginal`, `pending`, `not_enough_data`, or `None`
    /// when not judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_verdict: Option<String>,
    /// Recommendations raised, refreshed, applied or superseded.
    pub recommendations: Vec<RecommendationAction>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecommendationAction {
    pub id: i64,
    pub version: i64,
    pub kind: RecommendationKind,
    /// `raised`, `updated`, `applied` or `superseded`.
    pub action: String,
}

// ------------------------------------------------------------------- gates

/// A model's stored gate policy (Rego).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatePolicyRecord {
    pub model: String,
    pub rego: String,
    /// Hex sha256 of `rego`.
    pub sha256: String,
    pub updated_by: String,
    pub updated_at: DateTime<Utc>,
}

/// `PUT /models/{model}/gate-policy` as JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GatePolicyUpload {
    pub rego: String,
}

/// `POST …/versions/{version}/gate`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GateRequest {
    /// The alias the version would take (the policy's `input.alias`).
    pub alias: Option<String>,
}

/// A gate's decision on one version, with the input it was made on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateReport {
    pub model: String,
    pub version: i64,
    pub alias: Option<String>,
    pub allowed: bool,
    /// The policy's `deny` messages.
    pub reasons: Vec<String>,
    /// The policy's `warn` messages.
    pub warnings: Vec<String>,
    /// The policy that decided (`None`: no gate policy, everything allowed).
    pub policy_sha256: Option<String>,
    pub evaluated_at: DateTime<Utc>,
    /// The document the policy saw as `input`.
    pub input: Value,
}

/// `POST …/versions/{version}/promote`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PromoteRequest {
    pub alias: String,
    pub reason: String,
}

/// A promotion that passed its gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Promotion {
    /// The alias after the move.
    pub alias: Alias,
    pub gate: GateReport,
}

// ---------------------------------------------------------------- webhooks

/// `POST /webhooks`.
#[derive(Clone, Default, PartialEq, Serialize)]
pub struct NewWebhook {
    pub name: String,
    /// Where events are POSTed.
    pub url: String,
    /// Event types, or `["*"]` for all.
    pub events: Vec<String>,
    /// Only events about this model.
    pub model: Option<String>,
    /// Signing secret; generated when `None`.
    pub secret: Option<String>,
}

impl std::fmt::Debug for NewWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewWebhook")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("events", &self.events)
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

/// A webhook subscription (never its secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    pub name: String,
    pub url: String,
    pub events: Vec<String>,
    pub model: Option<String>,
    pub active: bool,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// A created subscription with its signing secret, shown this once.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub webhook: Webhook,
    pub secret: String,
}

impl std::fmt::Debug for CreatedWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedWebhook")
            .field("webhook", &self.webhook)
            .finish_non_exhaustive()
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }
}

/// One event's delivery to one subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookDelivery {
    pub id: i64,
    pub webhook: String,
    pub event_id: String,
    pub event_type: String,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    /// The event body as sent.
    pub payload: Value,
}

/// Filters of `GET /webhooks/{name}/deliveries`. `status` is the text the
/// daemon checks (`pending`, `delivered`, `failed`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryQuery {
    pub page: PageQuery,
    pub status: Option<String>,
}

impl DeliveryQuery {
    pub(crate) fn pairs(&self) -> Vec<(String, String)> {
        let mut q = Vec::new();
        self.page.push(&mut q);
        push_opt(&mut q, "status", self.status.as_ref());
        q
    }
}

/// The reply to `POST /webhooks/{name}/test`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PingQueued {
    pub webhook: String,
    /// The `id` of the queued `ping` event.
    pub event_id: String,
}

// ------------------------------------------------------------------ alerts

/// What the Alertmanager receiver did with an alert state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertOutcome {
    RolledBack,
    Recommended,
    Refused,
    Ignored,
    Resolved,
}

/// A handled alert state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRecord {
    pub id: i64,
    pub fingerprint: String,
    pub starts_at: DateTime<Utc>,
    /// `firing` or `resolved`.
    pub status: String,
    pub alert_name: String,
    pub model: Option<String>,
    pub version: Option<i64>,
    pub outcome: AlertOutcome,
    /// What was done, or why nothing was.
    pub detail: String,
    /// The alert as received.
    pub alert: Value,
    pub received_by: String,
    pub received_at: DateTime<Utc>,
}

/// One alert of a notification, as handled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertHandled {
    #[serde(flatten)]
    pub record: AlertRecord,
    /// Handled before: this is the earlier record, nothing was done again.
    pub duplicate: bool,
}

/// The receiver's reply to an Alertmanager notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationReport {
    pub receiver: String,
    pub alerts: Vec<AlertHandled>,
}

// ----------------------------------------------------------------- uploads

/// Which table a batch upload goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadTable {
    /// Production inferences (table `inferences`).
    Inferences,
    /// Reference data (table `reference`).
    Reference,
}

impl UploadTable {
    /// The route segment and table name.
    pub fn as_str(self) -> &'static str {
        match self {
            UploadTable::Inferences => "inferences",
            UploadTable::Reference => "reference",
        }
    }
}

/// How a batch upload is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadOptions {
    /// The body's media type (`application/x-ndjson`, `text/csv`, …).
    pub content_type: String,
    /// The body is gzip-compressed (`Content-Encoding: gzip`).
    pub gzip: bool,
    /// `Idempotency-Key`: the daemon stores an upload with a given key
    /// once, so a repeat after a lost reply is safe.
    pub idempotency_key: Option<String>,
}

/// What an upload stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadResponse {
    pub upload_id: String,
    /// `inferences` or `reference`.
    pub table: String,
    pub rows: u64,
    /// Body bytes received (as sent).
    pub bytes: u64,
    pub duration_ms: f64,
    /// The feature columns of the upload with their kinds.
    pub features: Features,
    /// This (reference) upload declared the version's features.
    pub features_declared: bool,
    /// The reply repeats an earlier upload with the same key and body:
    /// nothing was stored this time.
    pub replayed: bool,
}

// --------------------------------------------------------------------- sql

/// `POST /sql`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SqlRequest {
    pub sql: String,
    /// Most rows to return (default 10000).
    pub limit: Option<usize>,
    /// Seconds before the query is cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
}

impl SqlRequest {
    pub fn new(sql: impl Into<String>) -> Self {
        Self {
            sql: sql.into(),
            ..Self::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SqlColumn {
    pub name: String,
    /// Arrow data type.
    #[serde(rename = "type")]
    pub data_type: String,
}

/// JSON result of a query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SqlResponse {
    pub columns: Vec<SqlColumn>,
    /// One object per row, keyed by column name.
    pub rows: Vec<Value>,
    pub row_count: usize,
    /// More rows existed than `limit`.
    pub truncated: bool,
    pub elapsed_ms: f64,
}

#[cfg(test)]
mod tests {
    //! The CLI prints replies decoded and serialized again: a reply must
    //! come back with exactly the fields and values the daemon sent. The
    //! documents below are shaped like the daemon's (including the fields
    //! it omits when empty and the ones it sends as null).

    use serde::Serialize;
    use serde::de::DeserializeOwned;
    use serde_json::{Value, json};

    use super::*;

    fn round_trip<T: Serialize + DeserializeOwned>(sent: Value) {
        let decoded: T = serde_json::from_value(sent.clone()).expect("decodes");
        assert_eq!(serde_json::to_value(&decoded).unwrap(), sent);
    }

    const AT: &str = "2026-11-27T12:00:00.123456Z";

    fn recommendation() -> Value {
        json!({"id": 7, "model": "fraud", "version": 2, "kind": "retrain",
               "severity": "warning", "reason": "psi 0.31", "evidence": {"psi": 0.31},
               "status": "open", "raised_by": "evaluator", "acknowledged_by": null,
               "acknowledged_at": null, "resolved_by": null, "resolved_at": null,
               "resolution_note": null, "created_at": AT, "updated_at": AT})
    }

    #[test]
    fn registry_records_come_back_unchanged() {
        round_trip::<Model>(json!({"name": "fraud", "description": "", "owner": "risk",
            "tags": {"team": "risk"}, "latest_version": 2, "aliases": {"production": 1},
            "created_at": AT, "updated_at": "2026-11-27T12:00:01Z"}));
        round_trip::<Version>(json!({"model": "fraud", "version": 2, "description": "",
            "source_uri": null, "artifact_digest": null, "run_id": "r1",
            "lineage": {"training_data": [{"uri": "s3://d"}, {"uri": "s3://e", "digest": "sha256:00"}],
                        "parent_version": 1, "parameters": {"depth": "6"}, "metrics": {"auc": 0.93}},
            "tags": {}, "features": {"amount": "numeric", "country": "categorical"},
            "reference_uri": null, "status": "ready", "stage": "None", "aliases": ["production"],
            "health": {"status": "drifting"}, "recommendations": [recommendation()],
            "created_by": "ci", "created_at": AT, "updated_at": AT}));
        round_trip::<Alias>(
            json!({"model": "fraud", "alias": "production", "version": 1,
            "updated_by": "ci", "updated_at": AT, "history": [{"from_version": null,
            "to_version": 1, "kind": "set", "actor": "ci", "reason": "", "at": AT}]}),
        );
        round_trip::<Page<AuditEntry>>(json!({"items": [{"seq": 1, "at": AT, "actor": "ci",
            "action": "model.create", "target": "model/fraud", "before": null,
            "after": {"name": "fraud"}, "prev_hash": "00", "hash": "11"}], "next_cursor": "c"}));
        round_trip::<AuditVerification>(json!({"entries_checked": 3, "ok": true,
            "first_broken_seq": null, "problem": null, "head_hash": "ab"}));
        round_trip::<CreatedToken>(
            json!({"name": "ci", "role": "editor", "created_by": "admin",
            "created_at": AT, "revoked_at": null, "token": "mw_secret"}),
        );
    }

    #[test]
    fn other_replies_come_back_unchanged() {
        round_trip::<CycleReport>(json!({"started_at": AT, "duration_ms": 12.5, "versions": [
            {"model": "fraud", "alias": "production", "version": 1, "status": "evaluated",
             "evaluation_id": "e1", "drifted_share": 0.5, "dataset_drift": true,
             "consecutive_drifted": 2, "drifted_features": ["amount"], "rollback_verdict": "pass",
             "recommendations": [{"id": 3, "version": 1, "kind": "retrain", "action": "raised"}]},
            {"model": "churn", "alias": "production", "version": null, "status": "no_alias",
             "message": "no alias", "consecutive_drifted": 0, "drifted_features": [],
             "recommendations": []}]}));
        round_trip::<CreatedWebhook>(json!({"name": "ci", "url": "http://h", "events": ["*"],
            "model": null, "active": true, "created_by": "admin", "created_at": AT,
            "secret": "whsec_x"}));
        round_trip::<Page<WebhookDelivery>>(json!({"items": [{"id": 1, "webhook": "ci",
            "event_id": "evt_1", "event_type": "ping", "status": "failed", "attempts": 3,
            "next_attempt_at": null, "last_status_code": 500, "last_error": "refused",
            "created_at": AT, "delivered_at": null, "payload": {"id": "evt_1"}}],
            "next_cursor": null}));
        round_trip::<NotificationReport>(json!({"receiver": "modelwatch", "alerts": [{
            "id": 1, "fingerprint": "f0", "starts_at": AT, "status": "firing",
            "alert_name": "X", "model": "fraud", "version": 2, "outcome": "rolled_back",
            "detail": "rolled back", "alert": {"labels": {}}, "received_by": "am",
            "received_at": AT, "duplicate": false}]}));
        round_trip::<UploadResponse>(json!({"upload_id": "u1", "table": "reference", "rows": 3,
            "bytes": 40, "duration_ms": 1.5, "features": {"amount": "numeric"},
            "features_declared": true, "replayed": false}));
        round_trip::<SqlResponse>(json!({"columns": [{"name": "n", "type": "Int64"}],
            "rows": [{"n": 3}], "row_count": 1, "truncated": false, "elapsed_ms": 0.7}));
        round_trip::<Promotion>(json!({"alias": {"model": "fraud", "alias": "production",
            "version": 2, "updated_by": "ci", "updated_at": AT, "history": []},
            "gate": {"model": "fraud", "version": 2, "alias": "production", "allowed": true,
            "reasons": [], "warnings": ["w"], "policy_sha256": null, "evaluated_at": AT,
            "input": {"metrics": {}}}}));
    }

    #[test]
    fn requests_carry_what_the_daemon_accepts() {
        let update = VersionUpdate {
            status: Some(VersionStatus::Archived),
            ..VersionUpdate::default()
        };
        assert_eq!(
            serde_json::to_value(update).unwrap(),
            json!({"description": null, "status": "archived"})
        );
        let mut query = VersionQuery {
            page: PageQuery::limit(5),
            status: Some(VersionStatus::Ready),
            ..VersionQuery::default()
        };
        query.tags.push(("team".into(), "a b".into()));
        assert_eq!(
            crate::routes::query_string(&query.pairs()),
            "?limit=5&status=ready&tag.team=a%20b"
        );
    }
}
