//! Alertmanager notifications as handled.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

crate::named_enum!(
    /// What the Alertmanager receiver did with an alert state.
    AlertOutcome as "outcome" {
        RolledBack => "rolled_back",
        Recommended => "recommended",
        Refused => "refused",
        Ignored => "ignored",
        Resolved => "resolved",
    }
);

/// A handled alert state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
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
    #[schema(value_type = Object)]
    pub alert: Value,
    pub received_by: String,
    pub received_at: DateTime<Utc>,
}

/// One alert of a notification, as handled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AlertHandled {
    #[serde(flatten)]
    pub record: AlertRecord,
    /// The state had been handled before: this is the earlier record and
    /// nothing was done again.
    pub duplicate: bool,
}
