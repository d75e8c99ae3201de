//! Webhook subscriptions and their deliveries.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// A subscription request (`POST /api/v1/webhooks`).
#[derive(Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// Unique; letters, digits, `.`, `_`, `-`.
    pub name: String,
    /// `http://` (or `https://`) URL the events are POSTed to.
    pub url: String,
    /// Event types (see `docs/webhooks.md`), or `["*"]` for all.
    pub events: Vec<String>,
    /// Only events about this model.
    #[serde(default)]
    pub model: Option<String>,
    /// Signing secret (16-256 printable characters); generated
    /// (`whsec_…`) when absent. Returned once, at creation.
    #[serde(default)]
    pub secret: Option<String>,
}

impl std::fmt::Debug for NewWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The signing secret stays out of logs and panic messages.
        f.debug_struct("NewWebhook")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("events", &self.events)
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

/// A subscription as listed: never with its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Webhook {
    pub name: String,
    pub url: String,
    pub events: Vec<String>,
    pub model: Option<String>,
    pub active: bool,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

/// The reply to a creation: the subscription and, this once, its secret.
#[derive(Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub webhook: Webhook,
    /// Verify `X-Modelwatch-Signature` with it; shown only this once.
    pub secret: String,
}

impl std::fmt::Debug for CreatedWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedWebhook")
            .field("webhook", &self.webhook)
            .finish_non_exhaustive()
    }
}

crate::named_enum!(
    /// Where a delivery stands.
    DeliveryStatus as "status" {
        /// Not yet answered with 2xx; retried until the attempts run out.
        Pending => "pending",
        Delivered => "delivered",
        /// Every attempt failed.
        Failed => "failed",
    }
);

/// One event sent (or to be sent) to one subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WebhookDelivery {
    /// Sent as `X-Modelwatch-Delivery`; the same on every attempt.
    pub id: i64,
    /// The subscription's name.
    pub webhook: String,
    pub event_id: String,
    pub event_type: String,
    pub status: DeliveryStatus,
    pub attempts: i64,
    /// When the next attempt is due (pending only).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// HTTP status of the last attempt, when the receiver answered.
    pub last_status_code: Option<i64>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    /// The body sent, as JSON.
    #[schema(value_type = Object)]
    pub payload: Value,
}
