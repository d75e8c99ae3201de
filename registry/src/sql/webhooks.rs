//! [`Webhooks`] on the SQL backends: subscriptions (audited, never with their
//! secret) and their delivery listing; the rows the outbox shares.

use async_trait::async_trait;
use sqlx::{QueryBuilder, Row};

use super::dialect::{Db, DbConn, DbRow, Store};
use super::records::*;
use crate::error::{Error, Result};
use crate::roles::Webhooks;
use crate::rules::outbox::Subscriber;
use crate::types::{Actor, Page, PageRequest};
use crate::webhooks::*;

fn webhook_from_row(row: &DbRow) -> Result<Webhook> {
    Ok(Webhook {
        name: row.get("name"),
        url: row.get("url"),
        events: parse_json("webhook_subscriptions.events", row.get("events"))?,
        model: row.get("model"),
        active: row.get::<bool, _>("active"),
        created_by: row.get("created_by"),
        created_at: parse_time(row.get("created_at"))?,
    })
}

fn delivery_from_row(row: &DbRow) -> Result<WebhookDelivery> {
    Ok(WebhookDelivery {
        id: row.get("id"),
        webhook: row.get("webhook"),
        event_id: row.get("event_id"),
        event_type: row.get("event_type"),
        status: row
            .get::<&str, _>("status")
            .parse()
            .map_err(|_| Error::Corrupt("unknown delivery status".into()))?,
        attempts: row.get("attempts"),
        next_attempt_at: parse_opt_time(row.get("next_attempt_at"))?,
        last_status_code: row.get("last_status_code"),
        last_error: row.get("last_error"),
        created_at: parse_time(row.get("created_at"))?,
        delivered_at: parse_opt_time(row.get("delivered_at"))?,
        payload: parse_json("webhook_deliveries.payload", row.get("payload"))?,
    })
}

pub(super) async fn load_webhook(conn: &mut DbConn, name: &str) -> Result<(i64, Webhook)> {
    let row = sqlx::query("SELECT * FROM webhook_subscriptions WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| Error::not_found(format!("webhook {name:?}")))?;
    Ok((row.get("id"), webhook_from_row(&row)?))
}

pub(super) async fn active_subscribers(conn: &mut DbConn) -> Result<Vec<Subscriber>> {
    let rows = sqlx::query(
        "SELECT id, events, model, from_seq FROM webhook_subscriptions WHERE active ORDER BY id",
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Subscriber {
                id: r.get("id"),
                events: parse_json("webhook_subscriptions.events", r.get("events"))?,
                model: r.get("model"),
                from_seq: r.get("from_seq"),
            })
        })
        .collect()
}

/// Inserts a pending delivery due at once; false if that subscription has
/// this event already.
pub(super) async fn insert_delivery(
    conn: &mut DbConn,
    subscription_id: i64,
    event: &WebhookEvent,
    payload: &str,
    now: &str,
) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO webhook_deliveries
             (subscription_id, event_id, event_type, payload, status, attempts, next_attempt_at, created_at)
         VALUES ($1, $2, $3, $4, 'pending', 0, $5, $6)
         ON CONFLICT (subscription_id, event_id) DO NOTHING",
    )
    .bind(subscription_id)
    .bind(&event.id)
    .bind(&event.event_type)
    .bind(payload)
    .bind(now)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

pub(super) const DELIVERY_SELECT: &str = "SELECT d.*, s.name AS webhook FROM webhook_deliveries d
     JOIN webhook_subscriptions s ON s.id = d.subscription_id";

#[async_trait]
impl Webhooks for Store {
    async fn create_webhook(&self, actor: &Actor, new: NewWebhook) -> Result<CreatedWebhook> {
        let events = validate_new(&new)?;
        let secret = new.secret.clone().unwrap_or_else(generate_secret);
        self.audited(actor, (new, events, secret), |mut tx, (new, events, secret)| {
            Box::pin(async move {
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO webhook_subscriptions
                         (name, url, events, model, secret, active, from_seq, created_by, created_at)
                     VALUES ($1, $2, $3, $4, $5, TRUE, 0, $6, $7) RETURNING id",
                )
                .bind(&new.name)
                .bind(&new.url)
                .bind(serde_json::to_string(&events).unwrap_or_else(|_| "[]".into()))
                .bind(&new.model)
                .bind(&secret)
                .bind(&tx.actor.name)
                .bind(&tx.now)
                .fetch_one(&mut *tx.conn)
                .await
                .map_err(|e| unique_as_exists(e, || format!("webhook {:?}", new.name)))?;
                let (_, webhook) = load_webhook(&mut *tx.conn, &new.name).await?;
                tx.audit(
                    "webhook.create",
                    &format!("webhook/{}", new.name),
                    None,
                    Some(to_value(&webhook)),
                )
                .await?;
                // Deliver only what happens after this entry.
                sqlx::query(
                    "UPDATE webhook_subscriptions SET from_seq = (SELECT MAX(seq) FROM audit_log) WHERE id = $1",
                )
                .bind(id)
                .execute(&mut *tx.conn)
                .await?;
                Ok(CreatedWebhook { webhook, secret })
            })
        })
        .await
    }

    async fn get_webhook(&self, name: &str) -> Result<Webhook> {
        self.read(async {
            let mut conn = self.reader().await?;
            Ok(load_webhook(&mut conn, name).await?.1)
        })
        .await
    }

    async fn list_webhooks(&self) -> Result<Vec<Webhook>> {
        self.read(async {
            let mut conn = self.reader().await?;
            let rows = sqlx::query("SELECT * FROM webhook_subscriptions ORDER BY name")
                .fetch_all(&mut *conn)
                .await?;
            rows.iter().map(webhook_from_row).collect()
        })
        .await
    }

    async fn delete_webhook(&self, actor: &Actor, name: &str) -> Result<()> {
        self.audited(actor, name.to_string(), |mut tx, name| {
            Box::pin(async move {
                let (id, before) = load_webhook(&mut *tx.conn, &name).await?;
                // Its deliveries go with it (ON DELETE CASCADE).
                sqlx::query("DELETE FROM webhook_subscriptions WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx.conn)
                    .await?;
                tx.audit(
                    "webhook.delete",
                    &format!("webhook/{name}"),
                    Some(to_value(&before)),
                    None,
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn list_webhook_deliveries(
        &self,
        name: &str,
        filter: &DeliveryFilter,
        page: &PageRequest,
    ) -> Result<Page<WebhookDelivery>> {
        self.read(async {
            let after = decode_cursor(&page.cursor)?;
            let mut conn = self.reader().await?;
            let (id, _) = load_webhook(&mut conn, name).await?;
            let mut q = QueryBuilder::<Db>::new(DELIVERY_SELECT);
            q.push(" WHERE d.subscription_id = ")
                .push_bind(id)
                .push(" AND d.id > ")
                .push_bind(after);
            if let Some(status) = filter.status {
                q.push(" AND d.status = ").push_bind(status.as_str());
            }
            q.push(" ORDER BY d.id LIMIT ")
                .push_bind(i64::from(page.limit) + 1);
            let rows = q.build().fetch_all(&mut *conn).await?;
            let items = rows
                .iter()
                .map(|r| delivery_from_row(r).map(|d| (d.id, d)))
                .collect::<Result<Vec<_>>>()?;
            Ok(paginate(items, page.limit))
        })
        .await
    }
}
