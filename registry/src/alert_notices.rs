//! Alertmanager notifications received, and what was done about each.
//!
//! The daemon decides what an alert asks for (the `modelwatch-alerts`
//! crate) and hands it here as an [`AlertAction`]; [`record_alert`] then, in
//! one transaction: recognises an alert state already handled (Alertmanager
//! repeats notifications) and does nothing more; re-checks what the
//! decision could not see atomically (the alias still points at the alert's
//! version, the version exists); acts (rolls the alias back and applies the
//! version's open rollback recommendations, or raises a recommendation);
//! and records the outcome with an audit entry `alert.<outcome>`, target
//! `alert/<fingerprint>`. A refusal is an outcome, not an error: it is
//! recorded and audited like the others.
//!
//! [`record_alert`]: crate::roles::AlertNotices::record_alert

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::error::{Error, Result};
use crate::types::NewRecommendation;

/// One alert state as received (an alert's firing and its resolution are
/// two states; a repeat of either is recognised by
/// `(fingerprint, starts_at, status)`).
#[derive(Debug, Clone, PartialEq)]
pub struct AlertNotice {
    pub fingerprint: String,
    pub starts_at: DateTime<Utc>,
    /// `firing` or `resolved`.
    pub status: String,
    pub alert_name: String,
    pub model: Option<String>,
    pub version: Option<i64>,
    /// The alert as received (labels, annotations, generator URL, ends_at).
    pub alert: Value,
}

/// What the alert asks for, as decided from its labels and the policy.
#[derive(Debug, Clone, PartialEq)]
pub enum AlertAction {
    /// Roll `alias` back, provided it still points at `version`.
    Rollback {
        model: String,
        alias: String,
        version: i64,
        reason: String,
    },
    /// Raise (or refresh) a recommendation on the version.
    Recommend {
        model: String,
        version: i64,
        recommendation: NewRecommendation,
    },
    /// Nothing to do: record the outcome (`refused`, `ignored` or
    /// `resolved`) and why.
    Record {
        outcome: AlertOutcome,
        detail: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertOutcome {
    RolledBack,
    Recommended,
    Refused,
    Ignored,
    Resolved,
}

impl AlertOutcome {
    pub const ALL: [AlertOutcome; 5] = [
        AlertOutcome::RolledBack,
        AlertOutcome::Recommended,
        AlertOutcome::Refused,
        AlertOutcome::Ignored,
        AlertOutcome::Resolved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertOutcome::RolledBack => "rolled_back",
            AlertOutcome::Recommended => "recommended",
            AlertOutcome::Refused => "refused",
            AlertOutcome::Ignored => "ignored",
            AlertOutcome::Resolved => "resolved",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| Error::Corrupt(format!("unknown alert outcome {s:?}")))
    }
}

/// A handled alert state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AlertRecord {
    pub id: i64,
    pub fingerprint: String,
    pub starts_at: DateTime<Utc>,
    pub status: String,
    pub alert_name: String,
    pub model: Option<String>,
    pub version: Option<i64>,
    pub outcome: AlertOutcome,
    /// What was done, or why nothing was.
    pub detail: String,
    #[schema(value_type = Object)]
    pub alert: Value,
    pub received_by: String,
    pub received_at: DateTime<Utc>,
}

/// The result of [`crate::roles::AlertNotices::record_alert`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AlertHandled {
    #[serde(flatten)]
    pub record: AlertRecord,
    /// The state had been handled before: this is the earlier record and
    /// nothing was done again.
    pub duplicate: bool,
}
