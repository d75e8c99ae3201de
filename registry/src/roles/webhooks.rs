//! The `Webhooks` role.

use async_trait::async_trait;

use crate::error::Result;
use crate::types::*;
use crate::webhooks::{CreatedWebhook, DeliveryFilter, NewWebhook, Webhook, WebhookDelivery};

/// Webhook subscriptions and their delivery listing (see [`crate::webhooks`]).
#[async_trait]
pub trait Webhooks: Send + Sync {
    /// Creates a subscription (audited without its secret); the reply holds
    /// the secret, generated when the request has none.
    async fn create_webhook(&self, actor: &Actor, new: NewWebhook) -> Result<CreatedWebhook>;

    async fn get_webhook(&self, name: &str) -> Result<Webhook>;

    async fn list_webhooks(&self) -> Result<Vec<Webhook>>;

    /// Deletes a subscription with its deliveries (audited).
    async fn delete_webhook(&self, actor: &Actor, name: &str) -> Result<()>;

    async fn list_webhook_deliveries(
        &self,
        name: &str,
        filter: &DeliveryFilter,
        page: &PageRequest,
    ) -> Result<Page<WebhookDelivery>>;
}
