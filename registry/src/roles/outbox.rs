//! The `Outbox` role.

use async_trait::async_trait;

use crate::error::Result;
use crate::webhooks::{AttemptOutcome, DispatchReport, DueDelivery, WebhookEvent};

/// The delivery queue: the outbox step that turns audit entries into deliveries, directly published events, and the sender's claim / record / release / prune calls.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Queues an event that is not a registry change for every matching
    /// subscription, or for the one named (whatever its event list; `ping`
    /// is allowed only then). Returns the deliveries queued.
    async fn publish_webhook_event(
        &self,
        event: WebhookEvent,
        subscription: Option<&str>,
    ) -> Result<u64>;

    /// One outbox step: turns audit entries after the cursor into
    /// deliveries and advances the cursor, in one transaction.
    async fn dispatch_webhook_outbox(&self) -> Result<DispatchReport>;

    /// Pending deliveries that are due, each leased for `lease` (not due
    /// again until then unless its attempt is recorded).
    async fn claim_due_webhook_deliveries(
        &self,
        lease: std::time::Duration,
        limit: u32,
    ) -> Result<Vec<DueDelivery>>;

    async fn record_webhook_attempt(&self, id: i64, outcome: AttemptOutcome) -> Result<()>;

    /// Makes every leased delivery claimable again; for a daemon starting
    /// up, when none of its attempts can still be in flight.
    async fn release_webhook_leases(&self) -> Result<u64>;

    /// When the earliest pending delivery is due.
    async fn next_webhook_due(&self) -> Result<Option<chrono::DateTime<chrono::Utc>>>;

    /// Deletes delivered and failed deliveries finished before the time.
    async fn prune_webhook_deliveries(
        &self,
        finished_before: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64>;
}
