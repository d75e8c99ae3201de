//! Request and response bodies of the native API, field for field what the
//! daemon accepts and sends (`docs/api.md`). The registry's records are the
//! daemon's own definitions ([`modelwatch_types::records`], re-exported
//! here); this file adds the listing queries and the bodies only the server
//! speaks. Replies are decoded leniently (unknown fields are ignored, so an
//! older client reads a newer daemon), except inside a version's `lineage`,
//! which is checked strictly in both directions; requests carry exactly the
//! fields the daemon accepts.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use modelwatch_types::records::{
    AlertHandled, AlertOutcome, AlertRecord, Alias, AliasMove, ArtifactFile, ArtifactListing,
    ArtifactsState, AuditEntry, AuditVerification, CreatedToken, CreatedWebhook, DataRef, DataType,
    DeliveryStatus, Environment, GatePolicyRecord, GateReport, Lineage, MetadataUpdate, Model,
    ModelCard, ModelMetadata, ModelUpdate, NewModel, NewRecommendation, NewToken, NewUpload,
    NewVersion, NewWebhook, Page, PolicyRecord, Promotion, Recommendation, SealArtifacts,
    Signature, SignatureField, TokenInfo, UploadStatus, Version, VersionUpdate, Webhook,
    WebhookDelivery,
};
use modelwatch_types::{Features, RecommendationKind, RecommendationStatus, VersionStatus};

// ---------------------------------------------------------------- listings

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

// -------------------------------------------------------------- monitoring

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
    /// Realized performance, when the policy asks for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub performance: Option<PerformanceOutcome>,
    /// Group fairness, when the policy asks for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fairness: Option<FairnessOutcome>,
    /// What each of the policy's anomaly detectors found.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub anomalies: Vec<AnomalyOutcome>,
    /// Multivariate drift, when the policy asks for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multivariate: Option<MultivariateOutcome>,
}

/// What became of a version's multivariate drift measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MultivariateOutcome {
    /// The measurement was stored in `multivariate_drift_results`.
    pub measured: bool,
    /// The features read together.
    pub features: Vec<String>,
    /// `rows`, `value`, `reference_value`, `sampling_error`, `lower`,
    /// `upper`, `components`, `drifted`, as in
    /// `multivariate_drift_results`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What became of a version's estimation without labels (CBPE).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EstimateOutcome {
    /// Estimated figures were stored in `performance_results`.
    pub measured: bool,
    /// The window's rows with a score.
    pub rows: u64,
    /// `cbpe` (classification) or `dle` (regression), when measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// `isotonic` or `none` (CBPE), when measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A realized-performance figure beyond the monitoring policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerformanceBreach {
    pub metric: String,
    pub value: f64,
    /// `minimum` or `maximum`.
    pub bound: String,
    pub threshold: f64,
}

/// What became of a version's fairness assessment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FairnessOutcome {
    /// Figures were stored in `fairness_results`.
    pub assessed: bool,
    /// Attributes under the policy's `min_disparate_impact_ratio`:
    /// `attribute`, `disparate_impact_ratio`, `minimum`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub breaches: Vec<Value>,
    /// Per sensitive attribute: `attribute`, `rows`, `fairness` (the
    /// figures, per group and between groups), `small_groups`, `message`;
    /// as docs/monitoring.md ("Fairness") describes them.
    pub attributes: Vec<serde_json::Value>,
}

/// What one anomaly detector found in the current window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyOutcome {
    pub metric: String,
    pub detector: String,
    /// Points in the series.
    pub points: u64,
    /// Breaching points recorded in `anomaly_results`.
    pub recorded: u64,
    /// Whether the newest point is in alarm.
    pub alarming: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What became of a version's realized-performance measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerformanceOutcome {
    /// Figures were computed and stored in `performance_results`.
    pub measured: bool,
    pub rows: u64,
    pub labelled_rows: u64,
    /// Labels of the window that arrived after their inference.
    #[serde(default)]
    pub delayed_labels: u64,
    /// Whole-window figures beyond the policy's minimums / maximums.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub breaches: Vec<PerformanceBreach>,
    /// The estimation without labels, when the policy asks for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate: Option<EstimateOutcome>,
    /// Why not, when not measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
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

/// `POST …/versions/{version}/promote`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PromoteRequest {
    pub alias: String,
    pub reason: String,
}

// ---------------------------------------------------------------- webhooks

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
    /// Ground truth for earlier inferences (route `labels`, table
    /// `delayed_labels`).
    Labels,
}

impl UploadTable {
    /// The route segment (`…/versions/{version}/{segment}`).
    pub fn as_str(self) -> &'static str {
        match self {
            UploadTable::Inferences => "inferences",
            UploadTable::Reference => "reference",
            UploadTable::Labels => "labels",
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
    /// `inferences`, `reference` or `delayed_labels`.
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
    /// Labels uploads: how many labels found their inference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<LabelMatches>,
}

/// How many labels of a labels upload name an inference of the version
/// (as of the reply), and how many do not yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelMatches {
    pub matched: u64,
    pub unmatched: u64,
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
            "metadata": {"flavors": ["sklearn"],
                         "signature": {"inputs": [{"name": "amount", "type": "double", "required": true},
                                                  {"type": "tensor", "required": false, "dtype": "float32", "shape": [-1, 3]}],
                                       "outputs": []},
                         "input_example": {"columns": ["amount"], "data": [[1.5]]},
                         "environment": {"python_version": "3.11.2", "requirements": ["scikit-learn==1.9.1"],
                                         "container_image": format!("serve@sha256:{}", "a".repeat(64))},
                         "model_card": {"intended_use": "fraud", "limitations": "EU only"}},
            "health": {"status": "drifting"}, "recommendations": [recommendation()],
            "created_by": "ci", "created_at": AT, "updated_at": AT}));
        round_trip::<Version>(json!({"model": "fraud", "version": 3, "description": "",
            "source_uri": null, "artifact_digest": null, "run_id": null,
            "lineage": {"training_data": [], "parameters": {}, "metrics": {}},
            "tags": {}, "features": {}, "reference_uri": null, "status": "ready", "stage": "None",
            "aliases": [], "metadata": {}, "health": null, "recommendations": [],
            "created_by": "ci", "created_at": AT, "updated_at": AT}));
        round_trip::<UploadStatus>(json!({"id": "0a", "model": "fraud", "version": 2,
            "path": "w.bin", "size": 10, "offset": 4, "sha256": null, "complete": false}));
        round_trip::<Alias>(
            json!({"model": "fraud", "alias": "production", "version": 1,
            "updated_by": "ci", "updated_at": AT, "history": [{"from_version": null,
            "to_version": 1, "kind": "set", "actor": "ci", "reason": "", "at": AT}]}),
        );
        round_trip::<Page<AuditEntry>>(json!({"items": [{"seq": 1, "at": AT, "actor": "ci",
            "action": "model.create", "target": "model/fraud", "before": null,
            "after": {"name": "fraud"}, "prev_hash": "00", "hash": "11"}], "next_cursor": "c"}));
        round_trip::<AuditVerification>(json!({"entries_checked": 3, "ok": true,
            "first_broken_seq": null, "problem": null, "head_hash": "ab", "tokens_checked": 2}));
        // With the daemon's own anchors checked.
        round_trip::<AuditVerification>(json!({"entries_checked": 3, "ok": true,
            "first_broken_seq": null, "problem": null, "head_hash": "ab", "tokens_checked": 2,
            "anchors": {"anchors_checked": 1, "ok": true, "problem": null, "first_broken_seq": null,
                "newest_anchored_seq": 3, "newest_anchored_at": AT, "unanchored_entries": 0,
                "key_ids": ["ed25519:0011223344556677"]}}));
        round_trip::<CreatedToken>(
            json!({"name": "ci", "role": "editor", "created_by": "admin",
            "created_at": AT, "revoked_at": null, "expires_at": null, "token": "mw_secret"}),
        );
        round_trip::<TokenInfo>(json!({"name": "contractor", "role": "reader",
            "created_by": "admin", "created_at": AT, "revoked_at": null, "expires_at": AT}));
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
