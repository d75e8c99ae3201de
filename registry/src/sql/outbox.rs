//! [`Outbox`] on the SQL backends: the transactional outbox step (audit entries →
//! deliveries, planned by [`crate::rules::outbox`]), published events, and
//! the sender's queue (claim with a lease, record, release, prune).
//!
//! Several daemons may run these at once: the dispatcher locks the cursor
//! row, so an audit entry is dispatched by one of them exactly once, and a
//! claim skips deliveries another daemon is claiming (`SKIP LOCKED`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::dialect::Store;
use super::records::*;
use super::webhooks::{active_subscribers, insert_delivery, load_webhook};
use crate::audit::format_time;
use crate::error::Result;
use crate::roles::Outbox;
use crate::rules::outbox::{plan_dispatch, recipients};
use crate::webhooks::*;

#[async_trait]
impl Outbox for Store {
    async fn publish_webhook_event(
        &self,
        event: WebhookEvent,
        subscription: Option<&str>,
    ) -> Result<u64> {
        validate_event_type(&event.event_type, subscription.is_some())?;
        let now = self.now();
        let only = subscription.map(str::to_string);
        // Deliveries are operational records, not audited.
        self.transaction(move |tx| {
            Box::pin(async move {
                let payload = event.payload();
                let targets: Vec<i64> = match &only {
                    Some(name) => vec![load_webhook(&mut *tx, name).await?.0],
                    None => recipients(&active_subscribers(&mut *tx).await?, &event),
                };
                let mut inserted = 0;
                for id in targets {
                    if insert_delivery(&mut *tx, id, &event, &payload, &now).await? {
                        inserted += 1;
                    }
                }
                Ok(inserted)
            })
        })
        .await
    }

    async fn dispatch_webhook_outbox(&self) -> Result<DispatchReport> {
        self.read(async {
            // A cheap read first: nothing new, no write transaction.
            {
                let mut conn = self.reader().await?;
                let (cursor, head): (i64, i64) = sqlx::query_as(
                    "SELECT (SELECT last_seq FROM webhook_cursor WHERE id = 1),
                        (SELECT COALESCE(MAX(seq), 0) FROM audit_log)",
                )
                .fetch_one(&mut *conn)
                .await?;
                if head <= cursor {
                    return Ok(DispatchReport::default());
                }
            }
            let now = self.now();
            self.transaction(move |tx| {
                Box::pin(async move {
                    let cursor: i64 = sqlx::query_scalar(concat!(
                        "SELECT last_seq FROM webhook_cursor WHERE id = 1",
                        row_lock!("FOR UPDATE")
                    ))
                    .fetch_one(&mut *tx)
                    .await?;
                    let rows =
                        sqlx::query("SELECT * FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2")
                            .bind(cursor)
                            .bind(DISPATCH_BATCH)
                            .fetch_all(&mut *tx)
                            .await?;
                    let Some(last) = rows.last().map(|r| r.get::<i64, _>("seq")) else {
                        return Ok(DispatchReport::default());
                    };
                    let entries = rows
                        .iter()
                        .map(audit_from_row)
                        .collect::<Result<Vec<_>>>()?;
                    let subscribers = active_subscribers(&mut *tx).await?;
                    let mut report = DispatchReport {
                        entries: rows.len() as u64,
                        deliveries: 0,
                    };
                    for (id, event) in plan_dispatch(&entries, &subscribers) {
                        if insert_delivery(&mut *tx, id, &event, &event.payload(), &now).await? {
                            report.deliveries += 1;
                        }
                    }
                    // The cursor moves in the transaction that inserted the
                    // deliveries: an entry is dispatched exactly once.
                    sqlx::query("UPDATE webhook_cursor SET last_seq = $1 WHERE id = 1")
                        .bind(last)
                        .execute(&mut *tx)
                        .await?;
                    Ok(report)
                })
            })
            .await
        })
        .await
    }

    async fn claim_due_webhook_deliveries(
        &self,
        lease: std::time::Duration,
        limit: u32,
    ) -> Result<Vec<DueDelivery>> {
        let now = self.clock.now();
        let lease = chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60));
        let (now, until) = (format_time(now), format_time(now + lease));
        self.transaction(move |tx| {
                Box::pin(async move {
                    let rows = sqlx::query(
                        concat!("SELECT d.id, d.event_id, d.event_type, d.payload, d.attempts,
                                s.name, s.url, s.secret
                         FROM webhook_deliveries d JOIN webhook_subscriptions s ON s.id = d.subscription_id
                         WHERE d.status = 'pending' AND d.next_attempt_at <= $1 AND s.active
                             AND (d.leased_until IS NULL OR d.leased_until <= $2)
                         ORDER BY d.next_attempt_at, d.id LIMIT $3", row_lock!("FOR UPDATE OF d SKIP LOCKED")),
                    )
                    .bind(&now)
                    .bind(&now)
                    .bind(i64::from(limit))
                    .fetch_all(&mut *tx)
                    .await?;
                    let mut due = Vec::with_capacity(rows.len());
                    for r in &rows {
                        let id: i64 = r.get("id");
                        // The lease: not handed out again while this attempt
                        // runs, but again if its outcome is never recorded.
                        sqlx::query("UPDATE webhook_deliveries SET leased_until = $1 WHERE id = $2")
                            .bind(&until)
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                        due.push(DueDelivery {
                            id,
                            webhook: r.get("name"),
                            url: r.get("url"),
                            secret: r.get("secret"),
                            event_id: r.get("event_id"),
                            event_type: r.get("event_type"),
                            payload: r.get("payload"),
                            attempts: r.get("attempts"),
                        });
                    }
                    Ok(due)
                })
            })
            .await
    }

    async fn record_webhook_attempt(&self, id: i64, outcome: AttemptOutcome) -> Result<()> {
        let now = self.now();
        self.transaction(move |tx| {
                Box::pin(async move {
                    let (status, next, code, error, delivered, finished) = match &outcome {
                        AttemptOutcome::Delivered { status_code } => (
                            "delivered",
                            None,
                            Some(i64::from(*status_code)),
                            None,
                            Some(now.clone()),
                            Some(now.clone()),
                        ),
                        AttemptOutcome::Retry {
                            status_code,
                            error,
                            next_attempt_at,
                        } => (
                            "pending",
                            Some(format_time(*next_attempt_at)),
                            status_code.map(i64::from),
                            Some(error.clone()),
                            None,
                            None,
                        ),
                        AttemptOutcome::Failed { status_code, error } => (
                            "failed",
                            None,
                            status_code.map(i64::from),
                            Some(error.clone()),
                            None,
                            Some(now.clone()),
                        ),
                    };
                    // A delivery whose subscription was deleted meanwhile is
                    // gone; there is nothing to record then.
                    sqlx::query(
                        "UPDATE webhook_deliveries SET status = $1, attempts = attempts + 1, next_attempt_at = $2, leased_until = NULL,
                             last_status_code = $3, last_error = $4, delivered_at = $5, finished_at = $6
                         WHERE id = $7 AND status = 'pending'",
                    )
                    .bind(status)
                    .bind(next)
                    .bind(code)
                    .bind(error)
                    .bind(delivered)
                    .bind(finished)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                    Ok(())
                })
            })
            .await
    }

    async fn next_webhook_due(&self) -> Result<Option<DateTime<Utc>>> {
        self.read(async {
            let mut conn = self.reader().await?;
            let next: Option<String> = sqlx::query_scalar(
                // A NULL lease counts as no lease (PostgreSQL's GREATEST
                // skips NULLs, SQLite's MAX does not).
                concat!(
                    "SELECT MIN(",
                    greatest!(),
                    "(d.next_attempt_at, COALESCE(d.leased_until, ''))) FROM webhook_deliveries d
                     JOIN webhook_subscriptions s ON s.id = d.subscription_id
                     WHERE d.status = 'pending' AND s.active"
                ),
            )
            .fetch_one(&mut *conn)
            .await?;
            parse_opt_time(next)
        })
        .await
    }

    async fn release_webhook_leases(&self) -> Result<u64> {
        self.transaction(move |tx| {
                Box::pin(async move {
                    let done = sqlx::query(
                        "UPDATE webhook_deliveries SET leased_until = NULL WHERE leased_until IS NOT NULL",
                    )
                    .execute(&mut *tx)
                    .await?;
                    Ok(done.rows_affected())
                })
            })
            .await
    }

    async fn prune_webhook_deliveries(&self, finished_before: DateTime<Utc>) -> Result<u64> {
        let before = format_time(finished_before);
        self.transaction(move |tx| {
            Box::pin(async move {
                let done = sqlx::query(
                    "DELETE FROM webhook_deliveries WHERE status <> 'pending' AND finished_at < $1",
                )
                .bind(&before)
                .execute(&mut *tx)
                .await?;
                Ok(done.rows_affected())
            })
        })
        .await
    }
}
