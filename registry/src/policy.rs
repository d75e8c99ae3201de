//! Monitoring policies as the registry stores them. The policy itself is
//! defined (and validated) in `modelwatch-types`, which every component
//! reading it shares.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use modelwatch_types::policy::*;

/// A stored policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PolicyRecord {
    pub model: String,
    pub policy: MonitoringPolicy,
    pub updated_by: String,
    pub updated_at: DateTime<Utc>,
}
