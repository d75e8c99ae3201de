//! Who changes the registry, and how listings are filtered and paged.
//!
//! The records themselves (models, versions, aliases, …) are defined once in
//! [`modelwatch_types::records`], shared with the server and the client, and
//! re-exported here; each backend maps its columns to them by hand.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub use modelwatch_types::records::{
    Alias, AliasMove, AnchorCheck, AuditEntry, AuditVerification, ClusterMember, ClusterView,
    DataRef, DutyLease, Environment, Lineage, MetadataUpdate, Model, ModelCard, ModelMetadata,
    ModelUpdate, NewModel, NewRecommendation, NewVersion, Page, Recommendation, Signature,
    SignatureField, TokenInfo, Version, VersionUpdate,
};
pub use modelwatch_types::{
    FeatureKind, Features, MoveKind, RecommendationKind, RecommendationStatus, Role, Severity,
    Stage, Tags, Transition, VersionStatus,
};

/// Who performs a change; recorded in the audit chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
