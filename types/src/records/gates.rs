//! Promotion gate decisions.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::Alias;

/// A gate's decision on one version, with the input it was made on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GateReport {
    pub model: String,
    pub version: i64,
    /// The alias the version would take, when asked about one.
    pub alias: Option<String>,
    /// `reasons` is empty.
    pub allowed: bool,
    /// The policy's `deny` messages.
    pub reasons: Vec<String>,
    /// The policy's `warn` messages (never deny); also a note when the model
    /// has no gate policy.
    pub warnings: Vec<String>,
    /// The policy that decided (null: the model has no gate policy, so
    /// every version is allowed).
    pub policy_sha256: Option<String>,
    pub evaluated_at: DateTime<Utc>,
    /// The document the policy saw as `input`.
    #[schema(value_type = Object)]
    pub input: Value,
}

/// A promotion that passed its gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Promotion {
    /// The alias after the move.
    pub alias: Alias,
    pub gate: GateReport,
}
