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
use serde_json::Value;

use crate::types::NewRecommendation;
pub use modelwatch_types::records::{AlertHandled, AlertOutcome, AlertRecord};

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
