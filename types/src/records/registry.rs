//! Models, versions, aliases, recommendations, the audit log, tokens and
//! the stored policies.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::metadata::{MetadataUpdate, ModelMetadata};
use crate::policy::MonitoringPolicy;
use crate::vocabulary::{
    FeatureKind, Features, MoveKind, RecommendationKind, RecommendationStatus, Role, Severity,
    Stage, Tags, VersionStatus,
};

/// One page of a listing plus the cursor of the next page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass back as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

// ------------------------------------------------------------------ models

/// A registered model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewModel {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub owner: String,
    #[serde(default)]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelUpdate {
    pub description: Option<String>,
    pub owner: Option<String>,
}

// ---------------------------------------------------------------- versions

/// A reference to the data a version was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DataRef {
    pub uri: String,
    /// `sha256:<64 hex>` of the data, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// Where a version came from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Version {
    pub model: String,
    pub version: i64,
    pub description: String,
    pub source_uri: Option<String>,
    pub artifact_digest: Option<String>,
    pub run_id: Option<String>,
    pub lineage: Lineage,
    pub tags: Tags,
    /// Known features (name → `numeric` | `categorical`); uploads are
    /// checked against them. Empty until declared or until the first
    /// reference upload.
    #[schema(value_type = BTreeMap<String, FeatureKind>)]
    pub features: Features,
    /// Where the version's reference data was loaded from at creation.
    pub reference_uri: Option<String>,
    /// Format, signature, input example, environment and model card.
    #[serde(default)]
    pub metadata: ModelMetadata,
    pub status: VersionStatus,
    /// MLflow's model-version stage (`None`, `Staging`, `Production`,
    /// `Archived`), kept beside aliases: moving one never moves the other.
    pub stage: Stage,
    /// Aliases currently pointing at this version.
    pub aliases: Vec<String>,
    /// Latest health summary written by the evaluator (null until evaluated).
    #[schema(value_type = Option<Object>)]
    pub health: Option<Value>,
    /// Open recommendations for this version.
    pub recommendations: Vec<Recommendation>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `POST /models/{model}/versions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVersion {
    #[serde(default)]
    pub description: String,
    pub source_uri: Option<String>,
    pub artifact_digest: Option<String>,
    pub run_id: Option<String>,
    #[serde(default)]
    pub lineage: Lineage,
    #[serde(default)]
    pub tags: Tags,
    /// Known features (name → `numeric` | `categorical`).
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, FeatureKind>)]
    pub features: Features,
    /// Reference data to load into history at creation: a local Parquet
    /// file (`/path/ref.parquet` or `file:///path/ref.parquet`). The
    /// creation fails, changing nothing, if it cannot be loaded.
    pub reference_uri: Option<String>,
    /// Format, signature, input example, environment and model card. A
    /// signature declares the features when `features` is empty.
    #[serde(default)]
    pub metadata: ModelMetadata,
}

/// `PATCH /models/{model}/versions/{version}`: `None` fields are not changed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionUpdate {
    pub description: Option<String>,
    pub status: Option<VersionStatus>,
    /// Replaces the known features.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<BTreeMap<String, FeatureKind>>)]
    pub features: Option<Features>,
    /// Replaces the sections given. Format, signature, input example and
    /// environment describe the files and are fixed once they are sealed;
    /// the model card can always be edited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<MetadataUpdate>,
}

// ----------------------------------------------------------------- aliases

/// An alias and every move it made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Alias {
    pub model: String,
    pub alias: String,
    pub version: i64,
    pub updated_by: String,
    pub updated_at: DateTime<Utc>,
    /// Every move of this alias, newest first.
    pub history: Vec<AliasMove>,
}

/// One move of an alias.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AliasMove {
    pub from_version: Option<i64>,
    pub to_version: Option<i64>,
    pub kind: MoveKind,
    pub actor: String,
    pub reason: String,
    pub at: DateTime<Utc>,
}

// --------------------------------------------------------- recommendations

/// A retrain / rollback / promote recommendation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Recommendation {
    pub id: i64,
    pub model: String,
    pub version: i64,
    pub kind: RecommendationKind,
    pub severity: Severity,
    pub reason: String,
    #[schema(value_type = Object)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRecommendation {
    pub kind: RecommendationKind,
    pub severity: Severity,
    pub reason: String,
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub evidence: Value,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

// ------------------------------------------------------------------- audit

/// One entry of the hash-chained audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub target: String,
    #[schema(value_type = Option<Object>)]
    pub before: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub after: Option<Value>,
    pub prev_hash: String,
    pub hash: String,
}

/// Result of recomputing the audit chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditVerification {
    pub entries_checked: i64,
    pub ok: bool,
    /// The first entry whose hash or link does not match, when not ok.
    pub first_broken_seq: Option<i64>,
    pub problem: Option<String>,
    /// Hash of the last entry (the chain head) when ok.
    pub head_hash: Option<String>,
    /// Tokens whose row in the `tokens` table was compared with what the
    /// chain's `token.create` and `token.revoke` entries say it must be
    /// (checked only when the chain itself verifies).
    #[serde(default)]
    pub tokens_checked: i64,
    /// The chain checked against the daemon's own signed anchors, when it
    /// writes them (`--audit-anchor-dir`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchors: Option<AnchorCheck>,
}

/// Result of checking the audit chain against signed anchors (checkpoints
/// of the chain head exported where the daemon cannot rewrite them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AnchorCheck {
    /// Anchors whose signature verified and whose entry was compared.
    pub anchors_checked: i64,
    pub ok: bool,
    /// What failed first, when not ok: a forged or altered anchor, entries
    /// deleted from the end of the chain, or the chain rewritten.
    pub problem: Option<String>,
    /// The anchored entry that does not match, when the chain is at fault.
    pub first_broken_seq: Option<i64>,
    /// The newest anchor's entry and when it was signed.
    pub newest_anchored_seq: Option<i64>,
    pub newest_anchored_at: Option<DateTime<Utc>>,
    /// Entries after the newest anchor: no anchor covers them yet, so
    /// deleting them would not be noticed.
    pub unanchored_entries: i64,
    /// The keys that signed the anchors, as `ed25519:<first 16 hex digits
    /// of sha256(public key)>`.
    pub key_ids: Vec<String>,
}

// ------------------------------------------------------------------ tokens

/// A token as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TokenInfo {
    pub name: String,
    pub role: Role,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// After this the token is refused (401); null: it does not expire.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

impl TokenInfo {
    /// Whether the token has expired at `now`.
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// `POST /tokens`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    pub name: String,
    pub role: Role,
    /// When the token stops working (RFC 3339, in the future); without
    /// it the token works until revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// The reply to a token's creation: the token and, this once, its secret.
#[derive(Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub info: TokenInfo,
    /// The secret, shown this once; only its hash is stored.
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

// ---------------------------------------------------------------- policies

/// A model's stored monitoring policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PolicyRecord {
    pub model: String,
    pub policy: MonitoringPolicy,
    pub updated_by: String,
    pub updated_at: DateTime<Utc>,
}

/// A model's stored gate policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GatePolicyRecord {
    pub model: String,
    /// The Rego module (`package modelwatch.gate`).
    pub rego: String,
    /// Hex sha256 of `rego`; gate decisions name the policy by it.
    pub sha256: String,
    pub updated_by: String,
    pub updated_at: DateTime<Utc>,
}
