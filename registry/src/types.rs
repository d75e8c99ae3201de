//! The registry's records and the requests that change them.
//!
//! These are the shapes the REST API serializes, so field names here are the
//! public JSON names: change one only with a deprecation path.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{Error, Result};

pub use modelwatch_types::{
    FeatureKind, Features, MoveKind, RecommendationKind, RecommendationStatus, Role, Severity,
    Stage, Tags, Transition, VersionStatus,
};

/// Who performs a change; recorded in the audit chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Actor {
    /// Token name, or a system component such as `evaluator`.
    pub name: String,
    pub role: Role,
}

impl Actor {
    pub fn new(name: impl Into<String>, role: Role) -> Self {
        Self {
            name: name.into(),
            role,
        }
    }
}

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

/// Fields left `None` are not changed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelUpdate {
    pub description: Option<String>,
    pub owner: Option<String>,
}

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
    pub status: VersionStatus,
    /// MLflow's model-version stage (`None`, `Staging`, `Production`,
    /// `Archived`), kept beside aliases: moving one never moves the other.
    pub stage: Stage,
    /// Aliases currently pointing at this version.
    pub aliases: Vec<String>,
    /// Latest health summary written by the evaluator (null until evaluated).
    #[schema(value_type = Option<Object>)]
    pub health: Option<serde_json::Value>,
    /// Open recommendations for this version.
    pub recommendations: Vec<Recommendation>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

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
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionUpdate {
    pub description: Option<String>,
    pub status: Option<VersionStatus>,
    /// Replaces the known features.
    #[schema(value_type = Option<BTreeMap<String, FeatureKind>>)]
    pub features: Option<Features>,
}

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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AliasMove {
    pub from_version: Option<i64>,
    pub to_version: Option<i64>,
    pub kind: MoveKind,
    pub actor: String,
    pub reason: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Recommendation {
    pub id: i64,
    pub model: String,
    pub version: i64,
    pub kind: RecommendationKind,
    pub severity: Severity,
    pub reason: String,
    #[schema(value_type = Object)]
    pub evidence: serde_json::Value,
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRecommendation {
    pub kind: RecommendationKind,
    pub severity: Severity,
    pub reason: String,
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub evidence: serde_json::Value,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub target: String,
    #[schema(value_type = Option<Object>)]
    pub before: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub after: Option<serde_json::Value>,
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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TokenInfo {
    pub name: String,
    pub role: Role,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// One page of a listing plus the cursor of the next page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass back as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Which page to read: at most `limit` items after the opaque `cursor`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u32,
    pub cursor: Option<String>,
}

impl PageRequest {
    pub const DEFAULT_LIMIT: u32 = 50;
    pub const MAX_LIMIT: u32 = 1000;

    pub fn new(limit: Option<u32>, cursor: Option<String>) -> Result<Self> {
        let limit = limit.unwrap_or(Self::DEFAULT_LIMIT);
        if limit == 0 || limit > Self::MAX_LIMIT {
            return Err(Error::invalid(
                "limit",
                format!("limit must be between 1 and {}", Self::MAX_LIMIT),
            ));
        }
        Ok(Self { limit, cursor })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelFilter {
    pub name_prefix: Option<String>,
    pub owner: Option<String>,
    /// Every (key, value) pair must match.
    pub tags: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionFilter {
    pub status: Option<VersionStatus>,
    pub run_id: Option<String>,
    pub tags: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecommendationFilter {
    pub model: Option<String>,
    pub version: Option<i64>,
    pub kind: Option<RecommendationKind>,
    pub status: Option<RecommendationStatus>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    /// Entries whose target starts with this (e.g. `model/fraud`).
    pub target_prefix: Option<String>,
}

/// What a tag operation applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagTarget {
    Model { model: String },
    Version { model: String, version: i64 },
}

/// Registry records exposed as SQL tables next to the telemetry, so health
/// history can be joined with them. Columns are flat: JSON-valued fields
/// (`tags`, `lineage`, `evidence`, …) are JSON text, times are RFC 3339.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegistryView {
    /// `model, description, owner, tags, latest_version, created_at, updated_at`
    Models,
    /// `model, version, description, status, stage, source_uri, artifact_digest,
    /// run_id, lineage, tags, health, created_by, created_at, updated_at`
    Versions,
    /// `model, alias, version, updated_by, updated_at`
    Aliases,
    /// `model, alias, ts, kind, from_version, to_version, actor, reason`
    AliasMoves,
    /// `id, model, version, kind, severity, status, reason, evidence,
    /// raised_by, created_at, updated_at, resolved_by, resolved_at`
    Recommendations,
    /// `seq, ts, actor, action, target, before, after, prev_hash, hash`
    AuditLog,
}

impl RegistryView {
    pub const ALL: [RegistryView; 6] = [
        RegistryView::Models,
        RegistryView::Versions,
        RegistryView::Aliases,
        RegistryView::AliasMoves,
        RegistryView::Recommendations,
        RegistryView::AuditLog,
    ];

    /// The SQL table name.
    pub fn table_name(self) -> &'static str {
        match self {
            RegistryView::Models => "models",
            RegistryView::Versions => "versions",
            RegistryView::Aliases => "aliases",
            RegistryView::AliasMoves => "alias_moves",
            RegistryView::Recommendations => "recommendations",
            RegistryView::AuditLog => "audit_log",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_nest_and_ingest_stands_apart() {
        assert!(Role::Admin.allows(Role::Ingest));
        assert!(Role::Approver.allows(Role::Editor));
        assert!(Role::Editor.allows(Role::Reader));
        assert!(!Role::Editor.allows(Role::Approver));
        assert!(!Role::Ingest.allows(Role::Reader));
        assert!(!Role::Reader.allows(Role::Ingest));
        assert!(Role::Ingest.allows(Role::Ingest));
    }
}
