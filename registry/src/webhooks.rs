//! Outbound webhooks: subscriptions, the delivery queue, and the outbox that
//! turns audit entries into events.
//!
//! Registry events (`version.created`, `alias.moved`, `recommendation.*`)
//! are never published by the code that makes the change: every change
//! already writes an audit entry in its own transaction, so a dispatcher
//! tails the audit log from a persisted cursor and, in one transaction,
//! inserts one delivery per matching subscription and advances the cursor
//! ([`event_from_audit`] is the mapping). An event is thus delivered exactly
//! when its change committed, and none is lost across a crash. Events that
//! are not registry changes (`drift.detected`, `ping`) are inserted directly
//! ([`crate::RegistryStore::publish_webhook_event`]).
//!
//! Deliveries are operational records, not audited; subscriptions are
//! audited (`webhook.create`, `webhook.delete`, target `webhook/{name}`),
//! without their secret, which is kept in the database (it signs every
//! payload) but never appears in an audit entry or a listing.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};
use utoipa::ToSchema;

use crate::audit::format_time;
use crate::error::{Error, Result};
use crate::sqlite::{
    SqliteStore, append_audit, decode_cursor, paginate, parse_json, parse_opt_time, parse_time,
    to_value, unique_as_exists,
};
use crate::types::{Actor, AuditEntry, Page, PageRequest};
use crate::validate;

/// Every event type a subscription can ask for.
pub const EVENT_TYPES: [&str; 7] = [
    "version.created",
    "alias.moved",
    "recommendation.raised",
    "recommendation.applied",
    "recommendation.dismissed",
    "recommendation.superseded",
    "drift.detected",
];

/// The test event (`POST /api/v1/webhooks/{name}/test`); sent to one
/// subscription whatever its event list.
pub const PING_EVENT: &str = "ping";

/// Subscribes to every event type.
pub const ALL_EVENTS: &str = "*";

pub const SECRET_PREFIX: &str = "whsec_";
const MIN_SECRET: usize = 16;
const MAX_SECRET: usize = 256;
const MAX_URL: usize = 2048;
/// Most audit entries one dispatch step turns into deliveries.
pub const DISPATCH_BATCH: i64 = 500;

/// A signing secret: `whsec_` + 43 URL-safe base64 characters (256 bits).
/// A receiver URL as readers may see it: scheme and host only (the path
/// and query of a webhook URL are often its secret, e.g. Slack's).
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            // Credentials in the authority go too.
            let host = host.rsplit('@').next().unwrap_or(host);
            format!("{scheme}://{host}/…")
        }
        None => "…".to_owned(),
    }
}

/// Hides webhook receiver URLs in one audit entry's `before`/`after`
/// (`webhook.*` actions) for callers who may not see them: only admins
/// manage webhooks. The stored entry, and so the hash chain, is unchanged.
pub fn redact_audit_value(action: &str, value: &mut serde_json::Value) {
    if !action.starts_with("webhook.") {
        return;
    }
    if let Some(serde_json::Value::String(url)) = value.get_mut("url") {
        *url = redact_url(url);
    }
}

/// [`redact_audit_value`] on a whole entry.
pub fn redact_audit_entry(entry: &mut AuditEntry) {
    for v in [&mut entry.before, &mut entry.after].into_iter().flatten() {
        redact_audit_value(&entry.action, v);
    }
}

pub fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{SECRET_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// An id for an event that is not an audit entry: `evt_` + 22 characters.
pub fn new_event_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    format!("evt_{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// A subscription request (`POST /api/v1/webhooks`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
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

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Not yet answered with 2xx; retried until the attempts run out.
    Pending,
    Delivered,
    /// Every attempt failed.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "pending" => Ok(DeliveryStatus::Pending),
            "delivered" => Ok(DeliveryStatus::Delivered),
            "failed" => Ok(DeliveryStatus::Failed),
            other => Err(Error::invalid(
                "status",
                format!("unknown value {other:?}; expected one of pending, delivered, failed"),
            )),
        }
    }
}

impl std::fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

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

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryFilter {
    pub status: Option<DeliveryStatus>,
}

/// An event as delivered: `{"id", "type", "occurred_at", "model",
/// "version", "data"}`.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEvent {
    /// `audit-<seq>` for registry events, `evt_…` otherwise.
    pub id: String,
    pub event_type: String,
    pub occurred_at: DateTime<Utc>,
    pub model: Option<String>,
    pub version: Option<i64>,
    pub data: Value,
}

impl WebhookEvent {
    /// The body, exactly as signed and sent.
    pub fn payload(&self) -> String {
        json!({
            "id": self.id,
            "type": self.event_type,
            "occurred_at": format_time(self.occurred_at),
            "model": self.model,
            "version": self.version,
            "data": self.data,
        })
        .to_string()
    }
}

/// A delivery claimed for an attempt, with what is needed to send it.
#[derive(Clone, PartialEq)]
pub struct DueDelivery {
    pub id: i64,
    pub webhook: String,
    pub url: String,
    pub secret: String,
    pub event_id: String,
    pub event_type: String,
    pub payload: String,
    /// Attempts made before this one.
    pub attempts: i64,
}

impl std::fmt::Debug for DueDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DueDelivery")
            .field("id", &self.id)
            .field("webhook", &self.webhook)
            .field("event_type", &self.event_type)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptOutcome {
    /// The receiver answered 2xx.
    Delivered { status_code: u16 },
    /// Failed; try again at `next_attempt_at`.
    Retry {
        status_code: Option<u16>,
        error: String,
        next_attempt_at: DateTime<Utc>,
    },
    /// Failed, and no attempts are left.
    Failed {
        status_code: Option<u16>,
        error: String,
    },
}

/// What one dispatch step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DispatchReport {
    /// Audit entries read (the cursor moved past them).
    pub entries: u64,
    /// Deliveries inserted.
    pub deliveries: u64,
}

/// The event an audit entry stands for, if subscribers may want it.
/// `recommendation.update` (fresh evidence on an open recommendation) and
/// `recommendation.acknowledge` are not events; neither is anything outside
/// versions, aliases and recommendations.
pub fn event_from_audit(entry: &AuditEntry) -> Option<WebhookEvent> {
    let mut data = json!({
        "audit_seq": entry.seq,
        "action": entry.action,
        "actor": entry.actor,
        "target": entry.target,
        "before": entry.before,
        "after": entry.after,
    });
    let field = |v: &Option<Value>, key: &str| v.as_ref().and_then(|v| v.get(key)).cloned();
    let (event_type, model, version) = match entry.action.as_str() {
        "version.create" => {
            let (model, rest) = split_model_target(&entry.target)?;
            let version = rest.strip_prefix("version/")?.parse().ok()?;
            ("version.created", Some(model), Some(version))
        }
        "alias.set" | "alias.rollback" | "alias.delete" => {
            let (model, rest) = split_model_target(&entry.target)?;
            let alias = rest.strip_prefix("alias/")?;
            let kind = entry.action.trim_start_matches("alias.");
            data["alias"] = json!(alias);
            data["kind"] = json!(kind);
            // The version the alias moved to, or the one it left (delete).
            let version = field(&entry.after, "version")
                .or_else(|| field(&entry.before, "version"))
                .and_then(|v| v.as_i64());
            ("alias.moved", Some(model), version)
        }
        "recommendation.raise"
        | "recommendation.apply"
        | "recommendation.dismiss"
        | "recommendation.supersede" => {
            let event_type = match entry.action.as_str() {
                "recommendation.raise" => "recommendation.raised",
                "recommendation.apply" => "recommendation.applied",
                "recommendation.dismiss" => "recommendation.dismissed",
                _ => "recommendation.superseded",
            };
            let id = entry
                .target
                .strip_prefix("recommendation/")?
                .parse::<i64>()
                .ok()?;
            data["recommendation_id"] = json!(id);
            let model = field(&entry.after, "model").and_then(|v| v.as_str().map(str::to_string));
            let version = field(&entry.after, "version").and_then(|v| v.as_i64());
            (event_type, model, version)
        }
        _ => return None,
    };
    Some(WebhookEvent {
        id: format!("audit-{}", entry.seq),
        event_type: event_type.to_string(),
        occurred_at: entry.at,
        model,
        version,
        data,
    })
}

/// `model/{m}/{rest}` → (`m`, `rest`).
fn split_model_target(target: &str) -> Option<(String, &str)> {
    let rest = target.strip_prefix("model/")?;
    let (model, rest) = rest.split_once('/')?;
    Some((model.to_string(), rest))
}

/// Whether a subscription with these events and model filter wants an event.
pub fn subscribed(
    events: &[String],
    model_filter: Option<&str>,
    event_type: &str,
    model: Option<&str>,
) -> bool {
    let type_ok = events.iter().any(|e| e == ALL_EVENTS || e == event_type);
    let model_ok = match model_filter {
        None => true,
        Some(f) => model == Some(f),
    };
    type_ok && model_ok
}

/// Checks a subscription request and returns its events normalised (sorted,
/// without duplicates; `["*"]` when `*` is among them).
pub fn validate_new(new: &NewWebhook) -> Result<Vec<String>> {
    validate::token_name(&new.name)
        .map_err(|_| Error::invalid("name", format!("{:?} is not a valid webhook name: use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit", new.name)))?;
    validate_url(&new.url)?;
    if let Some(model) = &new.model {
        validate::model_name(model)
            .map_err(|_| Error::invalid("model", format!("{model:?} is not a valid model name")))?;
    }
    if let Some(secret) = &new.secret {
        let printable = secret.chars().all(|c| c.is_ascii_graphic());
        if secret.len() < MIN_SECRET || secret.len() > MAX_SECRET || !printable {
            return Err(Error::invalid(
                "secret",
                format!(
                    "use {MIN_SECRET}-{MAX_SECRET} printable ASCII characters without spaces, or leave it out to have one generated"
                ),
            ));
        }
    }
    normalise_events(&new.events)
}

fn normalise_events(events: &[String]) -> Result<Vec<String>> {
    if events.is_empty() {
        return Err(Error::invalid(
            "events",
            format!(
                "name at least one event type, or \"*\" for all: {}",
                EVENT_TYPES.join(", ")
            ),
        ));
    }
    for e in events {
        if e != ALL_EVENTS && !EVENT_TYPES.contains(&e.as_str()) {
            return Err(Error::invalid(
                "events",
                format!(
                    "unknown event type {e:?}; expected \"*\" or one of {}",
                    EVENT_TYPES.join(", ")
                ),
            ));
        }
    }
    if events.iter().any(|e| e == ALL_EVENTS) {
        return Ok(vec![ALL_EVENTS.to_string()]);
    }
    let mut out = events.to_vec();
    out.sort();
    out.dedup();
    Ok(out)
}

/// `http://` or `https://`, a host, no whitespace.
pub fn validate_url(url: &str) -> Result<()> {
    let bad = |why: &str| Error::invalid("url", format!("{url:?} is not usable: {why}"));
    if url.len() > MAX_URL {
        return Err(bad(&format!("longer than {MAX_URL} characters")));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("it contains whitespace"));
    }
    let lower = url.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"))
        .ok_or_else(|| bad("only http:// and https:// URLs are accepted"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    let host = if host.starts_with('[') {
        host.split_inclusive(']').next().unwrap_or_default()
    } else {
        host.split(':').next().unwrap_or_default()
    };
    if host.is_empty() || host == "[]" {
        return Err(bad("it has no host"));
    }
    Ok(())
}

/// Only events modelwatch knows may be published.
fn validate_event_type(event_type: &str, to_one: bool) -> Result<()> {
    if EVENT_TYPES.contains(&event_type) || (to_one && event_type == PING_EVENT) {
        Ok(())
    } else {
        Err(Error::invalid(
            "event_type",
            format!(
                "unknown event type {event_type:?}; expected one of {}",
                EVENT_TYPES.join(", ")
            ),
        ))
    }
}

fn webhook_from_row(row: &SqliteRow) -> Result<Webhook> {
    Ok(Webhook {
        name: row.get("name"),
        url: row.get("url"),
        events: parse_json("webhook_subscriptions.events", row.get("events"))?,
        model: row.get("model"),
        active: row.get::<i64, _>("active") != 0,
        created_by: row.get("created_by"),
        created_at: parse_time(row.get("created_at"))?,
    })
}

fn delivery_from_row(row: &SqliteRow) -> Result<WebhookDelivery> {
    Ok(WebhookDelivery {
        id: row.get("id"),
        webhook: row.get("webhook"),
        event_id: row.get("event_id"),
        event_type: row.get("event_type"),
        status: DeliveryStatus::parse(row.get("status"))
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

async fn load_webhook(conn: &mut SqliteConnection, name: &str) -> Result<(i64, Webhook)> {
    let row = sqlx::query("SELECT * FROM webhook_subscriptions WHERE name = ?")
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| Error::not_found(format!("webhook {name:?}")))?;
    Ok((row.get("id"), webhook_from_row(&row)?))
}

/// An active subscription as the matcher needs it.
struct Subscriber {
    id: i64,
    events: Vec<String>,
    model: Option<String>,
    from_seq: i64,
}

async fn active_subscribers(conn: &mut SqliteConnection) -> Result<Vec<Subscriber>> {
    let rows = sqlx::query(
        "SELECT id, events, model, from_seq FROM webhook_subscriptions WHERE active = 1 ORDER BY id",
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
async fn insert_delivery(
    conn: &mut SqliteConnection,
    subscription_id: i64,
    event: &WebhookEvent,
    payload: &str,
    now: &str,
) -> Result<bool> {
    let done = sqlx::query(
        "INSERT OR IGNORE INTO webhook_deliveries
             (subscription_id, event_id, event_type, payload, status, attempts, next_attempt_at, created_at)
         VALUES (?, ?, ?, ?, 'pending', 0, ?, ?)",
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

const DELIVERY_SELECT: &str = "SELECT d.*, s.name AS webhook FROM webhook_deliveries d
     JOIN webhook_subscriptions s ON s.id = d.subscription_id";

impl SqliteStore {
    pub(crate) async fn webhook_create(
        &self,
        actor: &Actor,
        new: NewWebhook,
    ) -> Result<CreatedWebhook> {
        let events = validate_new(&new)?;
        let secret = new.secret.clone().unwrap_or_else(generate_secret);
        let now = self.now();
        let owned = (actor.clone(), secret);
        self.writer
            .run(move |tx| {
                Box::pin(async move {
                    let (actor, secret) = (&owned.0, owned.1.as_str());
                    let id: i64 = sqlx::query_scalar(
                        "INSERT INTO webhook_subscriptions
                             (name, url, events, model, secret, active, from_seq, created_by, created_at)
                         VALUES (?, ?, ?, ?, ?, 1, 0, ?, ?) RETURNING id",
                    )
                    .bind(&new.name)
                    .bind(&new.url)
                    .bind(serde_json::to_string(&events).unwrap_or_else(|_| "[]".into()))
                    .bind(&new.model)
                    .bind(secret)
                    .bind(&actor.name)
                    .bind(&now)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| unique_as_exists(e, || format!("webhook {:?}", new.name)))?;
                    let (_, webhook) = load_webhook(&mut *tx, &new.name).await?;
                    append_audit(
                        &mut *tx,
                        &now,
                        actor,
                        "webhook.create",
                        &format!("webhook/{}", new.name),
                        None,
                        Some(to_value(&webhook)),
                    )
                    .await?;
                    // Deliver only what happens after this entry.
                    sqlx::query(
                        "UPDATE webhook_subscriptions SET from_seq = (SELECT MAX(seq) FROM audit_log) WHERE id = ?",
                    )
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                    Ok(CreatedWebhook {
                        webhook,
                        secret: secret.to_string(),
                    })
                })
            })
            .await
    }

    pub(crate) async fn webhook_get(&self, name: &str) -> Result<Webhook> {
        let mut conn = self.read.acquire().await?;
        Ok(load_webhook(&mut conn, name).await?.1)
    }

    pub(crate) async fn webhook_list(&self) -> Result<Vec<Webhook>> {
        let mut conn = self.read.acquire().await?;
        let rows = sqlx::query("SELECT * FROM webhook_subscriptions ORDER BY name")
            .fetch_all(&mut *conn)
            .await?;
        rows.iter().map(webhook_from_row).collect()
    }

    pub(crate) async fn webhook_delete(&self, actor: &Actor, name: &str) -> Result<()> {
        let now = self.now();
        let owned = (actor.clone(), name.to_string());
        self.writer
            .run(move |tx| {
                Box::pin(async move {
                    let (actor, name) = (&owned.0, owned.1.as_str());
                    let (id, before) = load_webhook(&mut *tx, name).await?;
                    // Its deliveries go with it (ON DELETE CASCADE).
                    sqlx::query("DELETE FROM webhook_subscriptions WHERE id = ?")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    append_audit(
                        &mut *tx,
                        &now,
                        actor,
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

    pub(crate) async fn webhook_deliveries(
        &self,
        name: &str,
        filter: &DeliveryFilter,
        page: &PageRequest,
    ) -> Result<Page<WebhookDelivery>> {
        let after = decode_cursor(&page.cursor)?;
        let mut conn = self.read.acquire().await?;
        let (id, _) = load_webhook(&mut conn, name).await?;
        let mut q = QueryBuilder::<Sqlite>::new(DELIVERY_SELECT);
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
    }

    pub(crate) async fn webhook_publish(
        &self,
        event: WebhookEvent,
        subscription: Option<&str>,
    ) -> Result<u64> {
        validate_event_type(&event.event_type, subscription.is_some())?;
        let now = self.now();
        let only = subscription.map(str::to_string);
        self.writer
            .run(move |tx| {
                Box::pin(async move {
                    let payload = event.payload();
                    let targets: Vec<i64> = match &only {
                        Some(name) => vec![load_webhook(&mut *tx, name).await?.0],
                        None => active_subscribers(&mut *tx)
                            .await?
                            .into_iter()
                            .filter(|s| {
                                subscribed(
                                    &s.events,
                                    s.model.as_deref(),
                                    &event.event_type,
                                    event.model.as_deref(),
                                )
                            })
                            .map(|s| s.id)
                            .collect(),
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

    pub(crate) async fn webhook_dispatch(&self) -> Result<DispatchReport> {
        // A cheap read first: nothing new, no write transaction.
        {
            let mut conn = self.read.acquire().await?;
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
        self.writer
            .run(move |tx| {
                Box::pin(async move {
                    let cursor: i64 =
                        sqlx::query_scalar("SELECT last_seq FROM webhook_cursor WHERE id = 1")
                            .fetch_one(&mut *tx)
                            .await?;
                    let rows =
                        sqlx::query("SELECT * FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?")
                            .bind(cursor)
                            .bind(DISPATCH_BATCH)
                            .fetch_all(&mut *tx)
                            .await?;
                    let Some(last) = rows.last().map(|r| r.get::<i64, _>("seq")) else {
                        return Ok(DispatchReport::default());
                    };
                    let subscribers = active_subscribers(&mut *tx).await?;
                    let mut report = DispatchReport {
                        entries: rows.len() as u64,
                        deliveries: 0,
                    };
                    for row in &rows {
                        let entry = crate::sqlite::audit_from_row(row)?;
                        let Some(event) = event_from_audit(&entry) else {
                            continue;
                        };
                        let payload = event.payload();
                        for s in &subscribers {
                            if entry.seq > s.from_seq
                                && subscribed(
                                    &s.events,
                                    s.model.as_deref(),
                                    &event.event_type,
                                    event.model.as_deref(),
                                )
                                && insert_delivery(&mut *tx, s.id, &event, &payload, &now).await?
                            {
                                report.deliveries += 1;
                            }
                        }
                    }
                    sqlx::query("UPDATE webhook_cursor SET last_seq = ? WHERE id = 1")
                        .bind(last)
                        .execute(&mut *tx)
                        .await?;
                    Ok(report)
                })
            })
            .await
    }

    pub(crate) async fn webhook_claim_due(
        &self,
        lease: std::time::Duration,
        limit: u32,
    ) -> Result<Vec<DueDelivery>> {
        let now = self.clock.now();
        let lease = chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60));
        let (now, until) = (format_time(now), format_time(now + lease));
        self.writer
            .run(move |tx| {
                Box::pin(async move {
                    let rows = sqlx::query(
                        "SELECT d.id, d.event_id, d.event_type, d.payload, d.attempts,
                                s.name, s.url, s.secret
                         FROM webhook_deliveries d JOIN webhook_subscriptions s ON s.id = d.subscription_id
                         WHERE d.status = 'pending' AND d.next_attempt_at <= ? AND s.active = 1
                             AND (d.leased_until IS NULL OR d.leased_until <= ?)
                         ORDER BY d.next_attempt_at, d.id LIMIT ?",
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
                        sqlx::query("UPDATE webhook_deliveries SET leased_until = ? WHERE id = ?")
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

    pub(crate) async fn webhook_record_attempt(
        &self,
        id: i64,
        outcome: AttemptOutcome,
    ) -> Result<()> {
        let now = self.now();
        self.writer
            .run(move |tx| {
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
                        "UPDATE webhook_deliveries SET status = ?, attempts = attempts + 1, next_attempt_at = ?, leased_until = NULL,
                             last_status_code = ?, last_error = ?, delivered_at = ?, finished_at = ?
                         WHERE id = ? AND status = 'pending'",
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

    pub(crate) async fn webhook_next_due(&self) -> Result<Option<DateTime<Utc>>> {
        let mut conn = self.read.acquire().await?;
        let next: Option<String> = sqlx::query_scalar(
            "SELECT MIN(MAX(d.next_attempt_at, COALESCE(d.leased_until, ''))) FROM webhook_deliveries d
             JOIN webhook_subscriptions s ON s.id = d.subscription_id
             WHERE d.status = 'pending' AND s.active = 1",
        )
        .fetch_one(&mut *conn)
        .await?;
        parse_opt_time(next)
    }

    pub(crate) async fn webhook_release_leases(&self) -> Result<u64> {
        self.writer
            .run(move |tx| {
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

    pub(crate) async fn webhook_prune(&self, finished_before: DateTime<Utc>) -> Result<u64> {
        let before = format_time(finished_before);
        self.writer
            .run(move |tx| {
                Box::pin(async move {
                    let done = sqlx::query(
                        "DELETE FROM webhook_deliveries WHERE status <> 'pending' AND finished_at < ?",
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(
        seq: i64,
        action: &str,
        target: &str,
        before: Option<Value>,
        after: Option<Value>,
    ) -> AuditEntry {
        AuditEntry {
            seq,
            at: Utc::now(),
            actor: "ci".into(),
            action: action.into(),
            target: target.into(),
            before,
            after,
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    #[test]
    fn webhook_urls_are_redacted_for_readers() {
        assert_eq!(
            redact_url("https://hooks.slack.com/services/T0/B0/secret?x=1"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(
            redact_url("http://user:pw@ci.example:8080/hook"),
            "http://ci.example:8080/…"
        );
        assert_eq!(redact_url("nonsense"), "…");
        let mut e = entry(
            1,
            "webhook.create",
            "webhook/w",
            None,
            Some(serde_json::json!({"name": "w", "url": "http://h:1/secret-path"})),
        );
        redact_audit_entry(&mut e);
        assert_eq!(e.after.as_ref().unwrap()["url"], "http://h:1/…");
        assert_eq!(e.after.as_ref().unwrap()["name"], "w");
        let mut other = entry(
            2,
            "model.create",
            "model/m",
            None,
            Some(serde_json::json!({"url": "http://h/keep"})),
        );
        redact_audit_entry(&mut other);
        assert_eq!(other.after.as_ref().unwrap()["url"], "http://h/keep");
    }

    #[test]
    fn audit_actions_map_to_events() {
        let e = event_from_audit(&entry(
            3,
            "version.create",
            "model/fraud/version/2",
            None,
            Some(json!({"version": 2})),
        ))
        .unwrap();
        assert_eq!(
            (
                e.event_type.as_str(),
                e.model.as_deref(),
                e.version,
                e.id.as_str()
            ),
            ("version.created", Some("fraud"), Some(2), "audit-3")
        );
        assert_eq!(e.data["actor"], "ci");
        assert_eq!(e.data["after"]["version"], 2);

        for (action, kind, before, after, version) in [
            (
                "alias.set",
                "set",
                None,
                Some(json!({"version": 4, "reason": ""})),
                Some(4),
            ),
            (
                "alias.rollback",
                "rollback",
                Some(json!({"version": 4})),
                Some(json!({"version": 3, "reason": "bad"})),
                Some(3),
            ),
            (
                "alias.delete",
                "delete",
                Some(json!({"version": 3})),
                None,
                Some(3),
            ),
        ] {
            let e = event_from_audit(&entry(
                5,
                action,
                "model/fraud/alias/production",
                before,
                after,
            ))
            .unwrap();
            assert_eq!(e.event_type, "alias.moved");
            assert_eq!(e.data["kind"], kind);
            assert_eq!(e.data["alias"], "production");
            assert_eq!(e.version, version, "{action}");
        }

        let rec = json!({"model": "fraud", "version": 2, "kind": "retrain"});
        for (action, event) in [
            ("recommendation.raise", Some("recommendation.raised")),
            ("recommendation.apply", Some("recommendation.applied")),
            ("recommendation.dismiss", Some("recommendation.dismissed")),
            (
                "recommendation.supersede",
                Some("recommendation.superseded"),
            ),
            ("recommendation.update", None),
            ("recommendation.acknowledge", None),
        ] {
            let e = event_from_audit(&entry(
                9,
                action,
                "recommendation/7",
                None,
                Some(rec.clone()),
            ));
            assert_eq!(e.as_ref().map(|e| e.event_type.as_str()), event, "{action}");
            if let Some(e) = e {
                assert_eq!((e.model.as_deref(), e.version), (Some("fraud"), Some(2)));
                assert_eq!(e.data["recommendation_id"], 7);
            }
        }
        for action in [
            "model.create",
            "token.create",
            "webhook.create",
            "version.update",
            "version.tag.set",
        ] {
            assert!(
                event_from_audit(&entry(1, action, "model/fraud", None, None)).is_none(),
                "{action}"
            );
        }
    }

    #[test]
    fn payload_has_the_documented_shape() {
        let e = WebhookEvent {
            id: "evt_x".into(),
            event_type: "drift.detected".into(),
            occurred_at: "2026-11-27T10:00:00Z".parse().unwrap(),
            model: Some("fraud".into()),
            version: Some(3),
            data: json!({"features": ["amount"]}),
        };
        let v: Value = serde_json::from_str(&e.payload()).unwrap();
        assert_eq!(
            v,
            json!({"id": "evt_x", "type": "drift.detected", "occurred_at": "2026-11-27T10:00:00.000000Z",
                   "model": "fraud", "version": 3, "data": {"features": ["amount"]}})
        );
    }

    #[test]
    fn subscriptions_filter_by_event_and_model() {
        let all = vec!["*".to_string()];
        let some = vec!["alias.moved".to_string()];
        assert!(subscribed(&all, None, "version.created", Some("a")));
        assert!(subscribed(&some, None, "alias.moved", None));
        assert!(!subscribed(&some, None, "version.created", Some("a")));
        assert!(subscribed(&all, Some("a"), "version.created", Some("a")));
        assert!(!subscribed(&all, Some("a"), "version.created", Some("b")));
        assert!(!subscribed(&all, Some("a"), "version.created", None));
    }

    #[test]
    fn requests_are_validated() {
        let ok = NewWebhook {
            name: "ci".into(),
            url: "http://127.0.0.1:8080/hook".into(),
            events: vec![
                "alias.moved".into(),
                "version.created".into(),
                "alias.moved".into(),
            ],
            ..Default::default()
        };
        assert_eq!(
            validate_new(&ok).unwrap(),
            vec!["alias.moved", "version.created"]
        );
        let star = NewWebhook {
            events: vec!["alias.moved".into(), "*".into()],
            ..ok.clone()
        };
        assert_eq!(validate_new(&star).unwrap(), vec!["*"]);
        for bad in [
            NewWebhook {
                url: "ftp://x/y".into(),
                ..ok.clone()
            },
            NewWebhook {
                url: "http://".into(),
                ..ok.clone()
            },
            NewWebhook {
                url: "http:///path".into(),
                ..ok.clone()
            },
            NewWebhook {
                url: "http://a b/".into(),
                ..ok.clone()
            },
            NewWebhook {
                url: "localhost:80".into(),
                ..ok.clone()
            },
            NewWebhook {
                events: vec![],
                ..ok.clone()
            },
            NewWebhook {
                events: vec!["version.deleted".into()],
                ..ok.clone()
            },
            NewWebhook {
                events: vec!["ping".into()],
                ..ok.clone()
            },
            NewWebhook {
                name: "bad name".into(),
                ..ok.clone()
            },
            NewWebhook {
                model: Some("bad model!".into()),
                ..ok.clone()
            },
            NewWebhook {
                secret: Some("short".into()),
                ..ok.clone()
            },
            NewWebhook {
                secret: Some("has spaces in the secret".into()),
                ..ok.clone()
            },
        ] {
            assert!(
                matches!(validate_new(&bad), Err(Error::InvalidArgument { .. })),
                "{bad:?}"
            );
        }
        assert!(validate_url("https://user@[::1]:8443/x?y#z").is_ok());
    }

    #[test]
    fn secrets_and_event_ids_are_fresh() {
        let (a, b) = (generate_secret(), generate_secret());
        assert_ne!(a, b);
        assert!(a.starts_with(SECRET_PREFIX) && a.len() == SECRET_PREFIX.len() + 43);
        assert_ne!(new_event_id(), new_event_id());
    }
}

#[cfg(test)]
mod store_tests {
    use std::sync::Arc;
    use std::time::Duration;

    use modelwatch_types::{Clock, ManualClock};

    use super::*;
    use crate::{
        AuditFilter, Error, NewModel, NewRecommendation, NewVersion, RecommendationKind,
        RegistryStore, Role, Severity,
    };

    async fn store() -> (tempfile::TempDir, SqliteStore, Arc<ManualClock>) {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new("2026-11-27T10:00:00Z".parse().unwrap()));
        let s = SqliteStore::open_with_clock(&dir.path().join("registry.sqlite"), clock.clone())
            .await
            .unwrap();
        (dir, s, clock)
    }

    fn admin() -> Actor {
        Actor::new("root", Role::Admin)
    }

    fn hook(name: &str, events: &[&str]) -> NewWebhook {
        NewWebhook {
            name: name.into(),
            url: "http://127.0.0.1:9/hook".into(),
            events: events.iter().map(|e| e.to_string()).collect(),
            ..Default::default()
        }
    }

    fn all() -> PageRequest {
        PageRequest::new(Some(1000), None).unwrap()
    }

    async fn deliveries(s: &SqliteStore, name: &str) -> Vec<WebhookDelivery> {
        s.list_webhook_deliveries(name, &DeliveryFilter::default(), &all())
            .await
            .unwrap()
            .items
    }

    #[tokio::test]
    async fn the_outbox_turns_committed_changes_into_deliveries_once() {
        let (dir, s, _clock) = store().await;
        // History before the subscription is not delivered to it.
        s.create_model(
            &admin(),
            NewModel {
                name: "old".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        s.create_version(&admin(), "old", NewVersion::default())
            .await
            .unwrap();
        s.create_webhook(&admin(), hook("ci", &["version.created", "alias.moved"]))
            .await
            .unwrap();
        s.create_model(
            &admin(),
            NewModel {
                name: "fraud".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        s.create_version(&admin(), "fraud", NewVersion::default())
            .await
            .unwrap();
        s.set_alias(&admin(), "fraud", "production", 1, "first")
            .await
            .unwrap();
        // A rejected change writes no audit entry, hence no event.
        assert!(
            s.set_alias(&admin(), "fraud", "production", 9, "")
                .await
                .is_err()
        );
        // Not subscribed to recommendations.
        let rec = NewRecommendation {
            kind: RecommendationKind::Retrain,
            severity: Severity::Warning,
            reason: "drift".into(),
            evidence: json!({}),
        };
        s.raise_recommendation(&admin(), "fraud", 1, rec)
            .await
            .unwrap();

        let report = s.dispatch_webhook_outbox().await.unwrap();
        assert_eq!(report.deliveries, 2, "{report:?}");
        assert_eq!(
            s.dispatch_webhook_outbox().await.unwrap(),
            DispatchReport::default()
        );
        let ds = deliveries(&s, "ci").await;
        let types: Vec<&str> = ds.iter().map(|d| d.event_type.as_str()).collect();
        assert_eq!(types, ["version.created", "alias.moved"]);
        assert!(
            ds.iter()
                .all(|d| d.status == DeliveryStatus::Pending && d.attempts == 0)
        );
        assert_eq!(ds[0].payload["model"], "fraud");
        assert_eq!(ds[0].payload["version"], 1);
        assert_eq!(ds[1].payload["data"]["kind"], "set");
        assert_eq!(ds[1].payload["data"]["actor"], "root");
        assert_eq!(ds[1].payload["id"], ds[1].event_id.as_str());

        // A subscription created now does not get what came before it.
        s.create_webhook(&admin(), hook("late", &["*"]))
            .await
            .unwrap();
        s.create_version(&admin(), "fraud", NewVersion::default())
            .await
            .unwrap();
        s.dispatch_webhook_outbox().await.unwrap();
        assert_eq!(deliveries(&s, "late").await.len(), 1);
        assert_eq!(deliveries(&s, "ci").await.len(), 3);

        // The cursor is persisted: reopening replays nothing.
        s.close().await;
        let s = SqliteStore::open(&dir.path().join("registry.sqlite"))
            .await
            .unwrap();
        assert_eq!(
            s.dispatch_webhook_outbox().await.unwrap(),
            DispatchReport::default()
        );
        assert_eq!(deliveries(&s, "ci").await.len(), 3);
    }

    #[tokio::test]
    async fn due_deliveries_are_leased_retried_and_finished() {
        let (_dir, s, clock) = store().await;
        s.create_webhook(&admin(), hook("a", &["drift.detected"]))
            .await
            .unwrap();
        let mut filtered = hook("b", &["*"]);
        filtered.model = Some("other".into());
        s.create_webhook(&admin(), filtered).await.unwrap();
        let event = |n: u8| WebhookEvent {
            id: format!("evt_{n}"),
            event_type: "drift.detected".into(),
            occurred_at: clock.now(),
            model: Some("fraud".into()),
            version: Some(1),
            data: json!({}),
        };
        assert_eq!(s.publish_webhook_event(event(1), None).await.unwrap(), 1);
        assert_eq!(s.publish_webhook_event(event(2), None).await.unwrap(), 1);
        assert_eq!(s.next_webhook_due().await.unwrap(), Some(clock.now()));

        let lease = Duration::from_secs(60);
        let due = s.claim_due_webhook_deliveries(lease, 10).await.unwrap();
        assert_eq!(due.len(), 2);
        assert_eq!((due[0].webhook.as_str(), due[0].attempts), ("a", 0));
        assert!(due[0].secret.starts_with(SECRET_PREFIX));
        // Leased: not handed out twice.
        assert!(
            s.claim_due_webhook_deliveries(lease, 10)
                .await
                .unwrap()
                .is_empty()
        );

        let retry_at = clock.now() + chrono::Duration::seconds(2);
        s.record_webhook_attempt(
            due[0].id,
            AttemptOutcome::Retry {
                status_code: Some(500),
                error: "HTTP 500".into(),
                next_attempt_at: retry_at,
            },
        )
        .await
        .unwrap();
        s.record_webhook_attempt(
            due[1].id,
            AttemptOutcome::Failed {
                status_code: None,
                error: "connection refused".into(),
            },
        )
        .await
        .unwrap();
        assert_eq!(s.next_webhook_due().await.unwrap(), Some(retry_at));
        assert!(
            s.claim_due_webhook_deliveries(lease, 10)
                .await
                .unwrap()
                .is_empty()
        );
        clock.advance(chrono::Duration::seconds(2));
        let again = s.claim_due_webhook_deliveries(lease, 10).await.unwrap();
        assert_eq!(
            (again.len(), again[0].id, again[0].attempts),
            (1, due[0].id, 1)
        );
        s.record_webhook_attempt(again[0].id, AttemptOutcome::Delivered { status_code: 204 })
            .await
            .unwrap();

        let ds = deliveries(&s, "a").await;
        assert_eq!(
            (ds[0].status, ds[0].attempts, ds[0].last_status_code),
            (DeliveryStatus::Delivered, 2, Some(204))
        );
        assert!(ds[0].delivered_at.is_some() && ds[0].next_attempt_at.is_none());
        assert_eq!((ds[1].status, ds[1].attempts), (DeliveryStatus::Failed, 1));
        assert_eq!(ds[1].last_error.as_deref(), Some("connection refused"));
        let failed = s
            .list_webhook_deliveries(
                "a",
                &DeliveryFilter {
                    status: Some(DeliveryStatus::Failed),
                },
                &all(),
            )
            .await
            .unwrap();
        assert_eq!(failed.items.len(), 1);
        assert!(deliveries(&s, "b").await.is_empty(), "model filter");
        assert_eq!(s.next_webhook_due().await.unwrap(), None);

        // A lease that runs out (an attempt whose outcome was never
        // recorded) makes the delivery due again; so does releasing the
        // leases (a restart: nothing is in flight any more).
        s.publish_webhook_event(event(3), None).await.unwrap();
        assert_eq!(
            s.claim_due_webhook_deliveries(lease, 10)
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            s.next_webhook_due().await.unwrap(),
            Some(clock.now() + chrono::Duration::seconds(60))
        );
        clock.advance(chrono::Duration::from_std(lease).unwrap());
        assert_eq!(
            s.claim_due_webhook_deliveries(lease, 10)
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(
            s.claim_due_webhook_deliveries(lease, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(s.release_webhook_leases().await.unwrap(), 1);
        let again = s.claim_due_webhook_deliveries(lease, 10).await.unwrap();
        assert_eq!((again.len(), again[0].attempts), (1, 0));

        // Finished deliveries are pruned once old enough; pending ones never.
        assert_eq!(
            s.prune_webhook_deliveries(clock.now() - chrono::Duration::days(7))
                .await
                .unwrap(),
            0
        );
        assert_eq!(s.prune_webhook_deliveries(clock.now()).await.unwrap(), 2);
        assert_eq!(deliveries(&s, "a").await.len(), 1);
    }

    #[tokio::test]
    async fn subscriptions_are_audited_without_their_secret() {
        let (_dir, s, _clock) = store().await;
        let mut new = hook("ci", &["*"]);
        new.secret = Some("my-own-secret-0123456789".into());
        let created = s.create_webhook(&admin(), new.clone()).await.unwrap();
        assert_eq!(created.secret, "my-own-secret-0123456789");
        let generated = s
            .create_webhook(&admin(), hook("gen", &["alias.moved"]))
            .await
            .unwrap();
        assert!(generated.secret.starts_with(SECRET_PREFIX));
        let audit_len = s
            .list_audit(&AuditFilter::default(), &all())
            .await
            .unwrap()
            .items
            .len();
        assert!(matches!(
            s.create_webhook(&admin(), new).await,
            Err(Error::AlreadyExists { .. })
        ));
        let mut bad = hook("x", &["*"]);
        bad.url = "file:///etc/passwd".into();
        assert!(matches!(
            s.create_webhook(&admin(), bad).await,
            Err(Error::InvalidArgument { .. })
        ));
        assert!(matches!(
            s.publish_webhook_event(
                WebhookEvent {
                    id: new_event_id(),
                    event_type: PING_EVENT.into(),
                    occurred_at: Utc::now(),
                    model: None,
                    version: None,
                    data: json!({})
                },
                None
            )
            .await,
            Err(Error::InvalidArgument { .. })
        ));
        assert!(matches!(
            s.publish_webhook_event(
                WebhookEvent {
                    id: new_event_id(),
                    event_type: PING_EVENT.into(),
                    occurred_at: Utc::now(),
                    model: None,
                    version: None,
                    data: json!({})
                },
                Some("nope")
            )
            .await,
            Err(Error::NotFound { .. })
        ));
        assert_eq!(
            s.list_audit(&AuditFilter::default(), &all())
                .await
                .unwrap()
                .items
                .len(),
            audit_len,
            "refused requests write nothing"
        );

        s.publish_webhook_event(
            WebhookEvent {
                id: new_event_id(),
                event_type: PING_EVENT.into(),
                occurred_at: Utc::now(),
                model: None,
                version: None,
                data: json!({}),
            },
            Some("gen"),
        )
        .await
        .unwrap();
        assert_eq!(deliveries(&s, "gen").await.len(), 1);
        s.delete_webhook(&admin(), "gen").await.unwrap();
        assert!(matches!(
            s.get_webhook("gen").await,
            Err(Error::NotFound { .. })
        ));

        let audit =
            serde_json::to_string(&s.list_audit(&AuditFilter::default(), &all()).await.unwrap())
                .unwrap();
        let listing = serde_json::to_string(&s.list_webhooks().await.unwrap()).unwrap();
        for text in [&audit, &listing] {
            assert!(
                !text.contains("my-own-secret") && !text.contains(&generated.secret),
                "{text}"
            );
        }
        assert!(
            audit.contains("webhook.create")
                && audit.contains("webhook.delete")
                && audit.contains("webhook/gen")
        );
        assert!(s.verify_audit().await.unwrap().ok);
    }
}
