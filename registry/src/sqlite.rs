//! The embedded SQLite backend.
//!
//! One writer connection (SQLite serialises writers anyway; one connection
//! means no `SQLITE_BUSY` between our own writers, and version numbers are
//! handed out inside that single write transaction) and a small pool of
//! readers. WAL journal mode, `synchronous = FULL`: a change is answered only
//! after it is durable.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Connection, QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};

use crate::alias::rollback_target;
use crate::audit::{self, GENESIS_HASH, format_time};
use crate::error::{Error, Result};
use crate::gate::{GateApproval, GatePolicyRecord};
use crate::policy::{MonitoringPolicy, PolicyRecord};
use crate::protection::AliasProtection;
use crate::search::{Search, SearchPage};
use crate::store::RegistryStore;
use crate::tracking::{Experiment, NewExperiment, NewRun, Run, RunLog, RunUpdate};
use crate::types::*;
use crate::validate;
use crate::webhooks::{
    AttemptOutcome, CreatedWebhook, DeliveryFilter, DispatchReport, DueDelivery, NewWebhook,
    Webhook, WebhookDelivery, WebhookEvent,
};
use crate::writer::Writer;
use crate::{Clock, SystemClock};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The registry on an embedded SQLite database file.
#[derive(Clone)]
pub struct SqliteStore {
    pub(crate) writer: Writer,
    writer_task: Arc<std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
    pub(crate) read: SqlitePool,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) protection: Arc<AliasProtection>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies migrations.
    pub async fn open(path: &Path) -> Result<Self> {
        Self::open_with_clock(path, Arc::new(SystemClock)).await
    }

    pub async fn open_with_clock(path: &Path, clock: Arc<dyn Clock>) -> Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let mut write = SqliteConnection::connect_with(&options).await?;
        MIGRATOR.run(&mut write).await?;
        let (writer, task) = Writer::spawn(write);
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await?;
        Ok(Self {
            writer,
            writer_task: Arc::new(std::sync::Mutex::new(Some(task))),
            read,
            clock,
            protection: Arc::new(AliasProtection::default()),
        })
    }

    /// Which aliases need `approver` ([`AliasProtection`]; default
    /// `production` and `champion`).
    pub fn with_alias_protection(mut self, protection: AliasProtection) -> Self {
        self.protection = Arc::new(protection);
        self
    }

    pub(crate) fn now(&self) -> String {
        format_time(self.clock.now())
    }

    /// Stops accepting changes, lets the writer finish the queued ones, and
    /// closes the readers. Clones of this store stop writing too.
    pub async fn close(&self) {
        let task = self.writer_task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            self.writer.shutdown().await;
            let _ = task.await;
        }
        self.read.close().await;
    }
}

pub(crate) fn parse_time(s: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| Error::Corrupt(format!("bad timestamp {s:?}: {e}")))
}

pub(crate) fn parse_opt_time(s: Option<String>) -> Result<Option<DateTime<Utc>>> {
    s.as_deref().map(parse_time).transpose()
}

pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(field: &str, s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| Error::Corrupt(format!("bad JSON in {field}: {e}")))
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

pub(crate) fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn encode_cursor(id: i64) -> String {
    URL_SAFE_NO_PAD.encode(id.to_string())
}

pub(crate) fn decode_cursor(cursor: &Option<String>) -> Result<i64> {
    let Some(c) = cursor else { return Ok(0) };
    URL_SAFE_NO_PAD
        .decode(c)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| {
            Error::invalid(
                "cursor",
                "not a cursor this server handed out; start again without it",
            )
        })
}

/// Splits `limit + 1` fetched rows into a page and the next cursor.
pub(crate) fn paginate<T>(mut rows: Vec<(i64, T)>, limit: u32) -> Page<T> {
    let next_cursor = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|(id, _)| encode_cursor(*id))
    } else {
        None
    };
    Page {
        items: rows.into_iter().map(|(_, t)| t).collect(),
        next_cursor,
    }
}

fn json_path(key: &str) -> Result<String> {
    validate::tag_key(key)?;
    Ok(format!("$.\"{key}\""))
}

pub(crate) fn model_target(model: &str) -> String {
    format!("model/{model}")
}
pub(crate) fn version_target(model: &str, version: i64) -> String {
    format!("model/{model}/version/{version}")
}
fn alias_target(model: &str, alias: &str) -> String {
    format!("model/{model}/alias/{alias}")
}

/// Appends one entry to the audit chain inside the caller's transaction.
pub(crate) async fn append_audit(
    conn: &mut SqliteConnection,
    at: &str,
    actor: &Actor,
    action: &str,
    target: &str,
    before: Option<Value>,
    after: Option<Value>,
) -> Result<()> {
    let last: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *conn)
            .await?;
    let (seq, prev_hash) = match last {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, GENESIS_HASH.to_string()),
    };
    let canonical = audit::canonical_entry(
        seq,
        at,
        &actor.name,
        action,
        target,
        before.as_ref(),
        after.as_ref(),
    );
    let hash = audit::chain_hash(&prev_hash, &canonical);
    sqlx::query(
        "INSERT INTO audit_log (seq, at, actor, action, target, before, after, prev_hash, hash)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(seq)
    .bind(at)
    .bind(&actor.name)
    .bind(action)
    .bind(target)
    .bind(before.map(|v| v.to_string()))
    .bind(after.map(|v| v.to_string()))
    .bind(&prev_hash)
    .bind(&hash)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(crate) async fn model_id(conn: &mut SqliteConnection, name: &str) -> Result<i64> {
    sqlx::query_scalar("SELECT id FROM models WHERE name = ?")
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| Error::not_found(format!("model {name:?}")))
}

pub(crate) async fn load_model(conn: &mut SqliteConnection, name: &str) -> Result<Model> {
    let row = sqlx::query("SELECT * FROM models WHERE name = ?")
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| Error::not_found(format!("model {name:?}")))?;
    model_from_row(conn, &row).await
}

pub(crate) async fn model_from_row(conn: &mut SqliteConnection, row: &SqliteRow) -> Result<Model> {
    let id: i64 = row.get("id");
    let aliases: Vec<(String, i64)> =
        sqlx::query_as("SELECT name, version FROM aliases WHERE model_id = ? ORDER BY name")
            .bind(id)
            .fetch_all(&mut *conn)
            .await?;
    Ok(Model {
        name: row.get("name"),
        description: row.get("description"),
        owner: row.get("owner"),
        tags: parse_json("models.tags", row.get("tags"))?,
        latest_version: row.get::<i64, _>("next_version") - 1,
        aliases: aliases.into_iter().collect(),
        created_at: parse_time(row.get("created_at"))?,
        updated_at: parse_time(row.get("updated_at"))?,
    })
}

fn recommendation_from_row(row: &SqliteRow) -> Result<Recommendation> {
    Ok(Recommendation {
        id: row.get("id"),
        model: row.get("model"),
        version: row.get("version"),
        kind: row.get::<&str, _>("kind").parse()?,
        severity: row.get::<&str, _>("severity").parse()?,
        reason: row.get("reason"),
        evidence: parse_json("recommendations.evidence", row.get("evidence"))?,
        status: row.get::<&str, _>("status").parse()?,
        raised_by: row.get("raised_by"),
        acknowledged_by: row.get("acknowledged_by"),
        acknowledged_at: parse_opt_time(row.get("acknowledged_at"))?,
        resolved_by: row.get("resolved_by"),
        resolved_at: parse_opt_time(row.get("resolved_at"))?,
        resolution_note: row.get("resolution_note"),
        created_at: parse_time(row.get("created_at"))?,
        updated_at: parse_time(row.get("updated_at"))?,
    })
}

macro_rules! recommendation_select {
    () => {
        "SELECT r.*, m.name AS model FROM recommendations r JOIN models m ON m.id = r.model_id"
    };
}
const RECOMMENDATION_SELECT: &str = recommendation_select!();

async fn load_recommendation(conn: &mut SqliteConnection, id: i64) -> Result<Recommendation> {
    let row = sqlx::query(concat!(recommendation_select!(), " WHERE r.id = ?"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| Error::not_found(format!("recommendation {id}")))?;
    recommendation_from_row(&row)
}

/// Builds versions from rows of one model, with their aliases and open
/// recommendations fetched once for the whole set.
pub(crate) async fn versions_from_rows(
    conn: &mut SqliteConnection,
    model: &str,
    model_id: i64,
    rows: &[SqliteRow],
) -> Result<Vec<Version>> {
    let aliases: Vec<(String, i64)> =
        sqlx::query_as("SELECT name, version FROM aliases WHERE model_id = ? ORDER BY name")
            .bind(model_id)
            .fetch_all(&mut *conn)
            .await?;
    let rec_rows = sqlx::query(concat!(
        recommendation_select!(),
        " WHERE r.model_id = ? AND r.status = 'open' ORDER BY r.id"
    ))
    .bind(model_id)
    .fetch_all(&mut *conn)
    .await?;
    let recs = rec_rows
        .iter()
        .map(recommendation_from_row)
        .collect::<Result<Vec<_>>>()?;
    rows.iter()
        .map(|row| {
            let number: i64 = row.get("version");
            let health: Option<String> = row.get("health");
            Ok(Version {
                model: model.to_string(),
                version: number,
                description: row.get("description"),
                source_uri: row.get("source_uri"),
                artifact_digest: row.get("artifact_digest"),
                run_id: row.get("run_id"),
                lineage: parse_json("versions.lineage", row.get("lineage"))?,
                tags: parse_json("versions.tags", row.get("tags"))?,
                features: parse_json("versions.features", row.get("features"))?,
                reference_uri: row.get("reference_uri"),
                status: row.get::<&str, _>("status").parse()?,
                stage: row
                    .get::<&str, _>("stage")
                    .parse()
                    .map_err(|_| Error::Corrupt("unknown version stage".into()))?,
                aliases: aliases
                    .iter()
                    .filter(|(_, v)| *v == number)
                    .map(|(a, _)| a.clone())
                    .collect(),
                health: health
                    .as_deref()
                    .map(|h| parse_json("versions.health", h))
                    .transpose()?,
                recommendations: recs
                    .iter()
                    .filter(|r| r.version == number)
                    .cloned()
                    .collect(),
                created_by: row.get("created_by"),
                created_at: parse_time(row.get("created_at"))?,
                updated_at: parse_time(row.get("updated_at"))?,
            })
        })
        .collect()
}

pub(crate) async fn load_version(
    conn: &mut SqliteConnection,
    model: &str,
    version: i64,
) -> Result<Version> {
    let id = model_id(conn, model).await?;
    let row = sqlx::query("SELECT * FROM versions WHERE model_id = ? AND version = ?")
        .bind(id)
        .bind(version)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| Error::not_found(format!("version {version} of model {model:?}")))?;
    let mut v = versions_from_rows(conn, model, id, std::slice::from_ref(&row)).await?;
    v.pop()
        .ok_or_else(|| Error::Corrupt("version row vanished".into()))
}

async fn alias_moves(
    conn: &mut SqliteConnection,
    model_id: i64,
    alias: &str,
) -> Result<Vec<AliasMove>> {
    let rows =
        sqlx::query("SELECT * FROM alias_moves WHERE model_id = ? AND alias = ? ORDER BY id")
            .bind(model_id)
            .bind(alias)
            .fetch_all(&mut *conn)
            .await?;
    rows.iter()
        .map(|r| {
            Ok(AliasMove {
                from_version: r.get("from_version"),
                to_version: r.get("to_version"),
                kind: r
                    .get::<&str, _>("kind")
                    .parse()
                    .map_err(|e| Error::Corrupt(format!("alias move: {e}")))?,
                actor: r.get("actor"),
                reason: r.get("reason"),
                at: parse_time(r.get("at"))?,
            })
        })
        .collect()
}

pub(crate) async fn load_alias(
    conn: &mut SqliteConnection,
    model: &str,
    alias: &str,
) -> Result<Alias> {
    let row = sqlx::query(
        "SELECT m.id AS model_id, a.version, a.updated_by, a.updated_at
         FROM models m LEFT JOIN aliases a ON a.model_id = m.id AND a.name = ?
         WHERE m.name = ?",
    )
    .bind(alias)
    .bind(model)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| Error::not_found(format!("model {model:?}")))?;
    let Some(version) = row.get::<Option<i64>, _>("version") else {
        return Err(Error::not_found(format!(
            "alias {alias:?} of model {model:?}"
        )));
    };
    let mut history = alias_moves(conn, row.get("model_id"), alias).await?;
    history.reverse();
    Ok(Alias {
        model: model.to_string(),
        alias: alias.to_string(),
        version,
        updated_by: row.get("updated_by"),
        updated_at: parse_time(row.get("updated_at"))?,
        history,
    })
}

pub(crate) async fn version_exists(
    conn: &mut SqliteConnection,
    model_id: i64,
    version: i64,
) -> Result<bool> {
    let n: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM versions WHERE model_id = ? AND version = ?")
            .bind(model_id)
            .bind(version)
            .fetch_one(&mut *conn)
            .await?;
    Ok(n > 0)
}

/// The names of a model's aliases.
pub(crate) async fn model_alias_names(
    tx: &mut SqliteConnection,
    model_id: i64,
) -> Result<Vec<String>> {
    Ok(
        sqlx::query_scalar("SELECT name FROM aliases WHERE model_id = ? ORDER BY name")
            .bind(model_id)
            .fetch_all(&mut *tx)
            .await?,
    )
}

/// Points an alias at an existing version inside a transaction (a `set`
/// move); `gate` is the promotion gate's decision when the move is a
/// promotion, kept in the audit entry. Reading the alias back is the
/// caller's choice (its history grows with every move).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn set_alias_tx(
    tx: &mut SqliteConnection,
    now: &str,
    actor: &Actor,
    model: &str,
    alias: &str,
    version: i64,
    reason: &str,
    gate: Option<&GateApproval>,
) -> Result<()> {
    let id = model_id(&mut *tx, model).await?;
    if !version_exists(&mut *tx, id, version).await? {
        return Err(Error::not_found(format!(
            "version {version} of model {model:?}"
        )));
    }
    move_alias(
        &mut *tx,
        now,
        actor,
        model,
        id,
        alias,
        version,
        MoveKind::Set,
        reason,
        gate,
    )
    .await
}

/// Moves an alias inside a transaction and records the move and the audit
/// entry; `gate` is the promotion gate's decision when the move is a
/// promotion.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn move_alias(
    tx: &mut SqliteConnection,
    now: &str,
    actor: &Actor,
    model: &str,
    model_id: i64,
    alias: &str,
    to: i64,
    kind: MoveKind,
    reason: &str,
    gate: Option<&GateApproval>,
) -> Result<()> {
    let before: Option<i64> =
        sqlx::query_scalar("SELECT version FROM aliases WHERE model_id = ? AND name = ?")
            .bind(model_id)
            .bind(alias)
            .fetch_optional(&mut *tx)
            .await?;
    sqlx::query(
        "INSERT INTO aliases (model_id, name, version, updated_by, updated_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (model_id, name) DO UPDATE SET version = excluded.version,
             updated_by = excluded.updated_by, updated_at = excluded.updated_at",
    )
    .bind(model_id)
    .bind(alias)
    .bind(to)
    .bind(&actor.name)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO alias_moves (model_id, alias, from_version, to_version, kind, actor, reason, at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(model_id)
    .bind(alias)
    .bind(before)
    .bind(to)
    .bind(kind.as_str())
    .bind(&actor.name)
    .bind(reason)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let action = match kind {
        MoveKind::Rollback => "alias.rollback",
        _ => "alias.set",
    };
    append_audit(
        tx,
        now,
        actor,
        action,
        &alias_target(model, alias),
        before.map(|v| serde_json::json!({ "version": v })),
        Some(match gate {
            Some(gate) => serde_json::json!({ "version": to, "reason": reason, "gate": gate }),
            None => serde_json::json!({ "version": to, "reason": reason }),
        }),
    )
    .await
}

pub(crate) fn audit_from_row(row: &SqliteRow) -> Result<AuditEntry> {
    let before: Option<String> = row.get("before");
    let after: Option<String> = row.get("after");
    Ok(AuditEntry {
        seq: row.get("seq"),
        at: parse_time(row.get("at"))?,
        actor: row.get("actor"),
        action: row.get("action"),
        target: row.get("target"),
        before: before
            .as_deref()
            .map(|s| parse_json("audit_log.before", s))
            .transpose()?,
        after: after
            .as_deref()
            .map(|s| parse_json("audit_log.after", s))
            .transpose()?,
        prev_hash: row.get("prev_hash"),
        hash: row.get("hash"),
    })
}

/// Moves `alias` back to the version it served before (see
/// [`crate::alias::rollback_target`]), inside the caller's transaction.
pub(crate) async fn rollback_alias_in(
    tx: &mut SqliteConnection,
    now: &str,
    actor: &Actor,
    model: &str,
    alias: &str,
    reason: &str,
) -> Result<Alias> {
    let current = load_alias(&mut *tx, model, alias).await?;
    let id = model_id(&mut *tx, model).await?;
    let moves = alias_moves(&mut *tx, id, alias).await?;
    let existing: Vec<i64> = sqlx::query_scalar("SELECT version FROM versions WHERE model_id = ?")
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
    let target = rollback_target(&moves, |v| existing.contains(&v)).ok_or_else(|| {
            Error::Conflict(format!(
                "alias {alias:?} of model {model:?} has no earlier version to roll back to (it points at version {} and nothing served before it)",
                current.version
            ))
        })?;
    move_alias(
        &mut *tx,
        now,
        actor,
        model,
        id,
        alias,
        target,
        MoveKind::Rollback,
        reason,
        None,
    )
    .await?;
    let out = load_alias(&mut *tx, model, alias).await?;
    Ok(out)
}

/// Raises a validated recommendation, or refreshes the open one of the same
/// kind on the version, inside the caller's transaction.
pub(crate) async fn raise_recommendation_in(
    tx: &mut SqliteConnection,
    now: &str,
    actor: &Actor,
    model: &str,
    version: i64,
    new: &NewRecommendation,
) -> Result<Recommendation> {
    let id = model_id(&mut *tx, model).await?;
    if !version_exists(&mut *tx, id, version).await? {
        return Err(Error::not_found(format!(
            "version {version} of model {model:?}"
        )));
    }
    let open: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM recommendations WHERE model_id = ? AND version = ? AND kind = ? AND status = 'open'",
        )
        .bind(id)
        .bind(version)
        .bind(new.kind.as_str())
        .fetch_optional(&mut *tx)
        .await?;
    let (rec_id, before, action) = match open {
        Some(rec_id) => {
            let before = load_recommendation(&mut *tx, rec_id).await?;
            sqlx::query("UPDATE recommendations SET severity = ?, reason = ?, evidence = ?, updated_at = ? WHERE id = ?")
                    .bind(new.severity.as_str())
                    .bind(&new.reason)
                    .bind(new.evidence.to_string())
                    .bind(now)
                    .bind(rec_id)
                    .execute(&mut *tx)
                    .await?;
            (rec_id, Some(to_value(&before)), "recommendation.update")
        }
        None => {
            let rec_id: i64 = sqlx::query_scalar(
                    "INSERT INTO recommendations (model_id, version, kind, severity, reason, evidence, status,
                         raised_by, created_at, updated_at)
                     VALUES (?, ?, ?, ?, ?, ?, 'open', ?, ?, ?) RETURNING id",
                )
                .bind(id)
                .bind(version)
                .bind(new.kind.as_str())
                .bind(new.severity.as_str())
                .bind(&new.reason)
                .bind(new.evidence.to_string())
                .bind(&actor.name)
                .bind(now)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
            (rec_id, None, "recommendation.raise")
        }
    };
    let rec = load_recommendation(&mut *tx, rec_id).await?;
    append_audit(
        &mut *tx,
        now,
        actor,
        action,
        &format!("recommendation/{rec_id}"),
        before,
        Some(to_value(&rec)),
    )
    .await?;
    Ok(rec)
}

/// Moves an open recommendation through `transition`, inside the caller's
/// transaction.
pub(crate) async fn transition_recommendation_in(
    tx: &mut SqliteConnection,
    now: &str,
    actor: &Actor,
    id: i64,
    transition: Transition,
    note: &str,
) -> Result<Recommendation> {
    let before = load_recommendation(&mut *tx, id).await?;
    if before.status != RecommendationStatus::Open {
        return Err(Error::Conflict(format!(
            "recommendation {id} is {}; only open recommendations can be {}d",
            before.status,
            transition.as_str().trim_end_matches('e')
        )));
    }
    match transition {
        Transition::Acknowledge => {
            sqlx::query("UPDATE recommendations SET acknowledged_by = ?, acknowledged_at = ?, updated_at = ? WHERE id = ?")
                    .bind(&actor.name)
                    .bind(now)
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
        }
        Transition::Apply | Transition::Dismiss | Transition::Supersede => {
            let status = match transition {
                Transition::Apply => RecommendationStatus::Applied,
                Transition::Dismiss => RecommendationStatus::Dismissed,
                _ => RecommendationStatus::Superseded,
            };
            sqlx::query(
                    "UPDATE recommendations SET status = ?, resolved_by = ?, resolved_at = ?, resolution_note = ?,
                         updated_at = ? WHERE id = ?",
                )
                .bind(status.as_str())
                .bind(&actor.name)
                .bind(now)
                .bind(note)
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
    }
    let after = load_recommendation(&mut *tx, id).await?;
    append_audit(
        &mut *tx,
        now,
        actor,
        &format!("recommendation.{}", transition.as_str()),
        &format!("recommendation/{id}"),
        Some(to_value(&before)),
        Some(to_value(&after)),
    )
    .await?;
    Ok(after)
}

fn token_from_row(row: &SqliteRow) -> Result<TokenInfo> {
    Ok(TokenInfo {
        name: row.get("name"),
        role: row
            .get::<&str, _>("role")
            .parse::<Role>()
            .map_err(|_| Error::Corrupt("unknown token role".into()))?,
        created_by: row.get("created_by"),
        created_at: parse_time(row.get("created_at"))?,
        revoked_at: parse_opt_time(row.get("revoked_at"))?,
    })
}

/// Maps a UNIQUE violation to `AlreadyExists`, everything else to `Database`.
pub(crate) fn unique_as_exists(e: sqlx::Error, what: impl FnOnce() -> String) -> Error {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => Error::already_exists(what()),
        _ => Error::Database(e),
    }
}

impl SqliteStore {
    /// Sets an alias; with `read_back`, returns it with its move history
    /// (read inside the write transaction, which costs a read of every
    /// earlier move: callers that do not need it skip it).
    async fn set_alias_inner(
        &self,
        actor: &Actor,
        model: &str,
        alias: &str,
        version: i64,
        reason: &str,
        read_back: bool,
    ) -> Result<Option<Alias>> {
        validate::alias_name(alias)?;
        validate::version_number(version)?;
        validate::reason(reason)?;
        self.protection.check(actor, alias, "moving the alias")?;
        let now = self.now();
        let owned = (
            actor.clone(),
            model.to_string(),
            alias.to_string(),
            reason.to_string(),
        );
        self.writer
            .run(move |tx| {
                Box::pin(async move {
                    let (actor, model, alias, reason) = (
                        &owned.0,
                        owned.1.as_str(),
                        owned.2.as_str(),
                        owned.3.as_str(),
                    );
                    set_alias_tx(&mut *tx, &now, actor, model, alias, version, reason, None)
                        .await?;
                    if read_back {
                        Ok(Some(load_alias(&mut *tx, model, alias).await?))
                    } else {
                        Ok(None)
                    }
                })
            })
            .await
    }
}

#[async_trait]
impl RegistryStore for SqliteStore {
    async fn ping(&self) -> Result<()> {
        let mut conn = self.read.acquire().await?;
        conn.ping().await?;
        Ok(())
    }

    async fn create_model(&self, actor: &Actor, new: NewModel) -> Result<Model> {
        validate::new_model(&new)?;
        let now = self.now();
        let owned = (actor.clone(),);
        self.writer.run(move |tx| Box::pin(async move {
        let actor = &owned.0;
        sqlx::query(
            "INSERT INTO models (name, description, owner, tags, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&new.name)
        .bind(&new.description)
        .bind(&new.owner)
        .bind(to_json(&new.tags))
        .bind(&now)
        .bind(&now)
        .execute(&mut *tx)
        .await
        .map_err(|e| unique_as_exists(e, || format!("model {:?}", new.name)))?;
        let model = load_model(&mut *tx, &new.name).await?;
        append_audit(
            &mut *tx,
            &now,
            actor,
            "model.create",
            &model_target(&new.name),
            None,
            Some(to_value(&model)),
        )
        .await?;
        Ok(model)
        })).await
    }

    async fn get_model(&self, name: &str) -> Result<Model> {
        let mut conn = self.read.acquire().await?;
        load_model(&mut conn, name).await
    }

    async fn list_models(&self, filter: &ModelFilter, page: &PageRequest) -> Result<Page<Model>> {
        let after = decode_cursor(&page.cursor)?;
        let mut q = QueryBuilder::<Sqlite>::new("SELECT * FROM models WHERE id > ");
        q.push_bind(after);
        if let Some(prefix) = &filter.name_prefix {
            let escaped = prefix
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            q.push(" AND name LIKE ")
                .push_bind(format!("{escaped}%"))
                .push(" ESCAPE '\\'");
        }
        if let Some(owner) = &filter.owner {
            q.push(" AND owner = ").push_bind(owner.clone());
        }
        for (k, v) in &filter.tags {
            q.push(" AND json_extract(tags, ")
                .push_bind(json_path(k)?)
                .push(") = ")
                .push_bind(v.clone());
        }
        q.push(" ORDER BY id LIMIT ")
            .push_bind(i64::from(page.limit) + 1);
        let mut conn = self.read.acquire().await?;
        let rows = q.build().fetch_all(&mut *conn).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push((
                row.get::<i64, _>("id"),
                model_from_row(&mut conn, row).await?,
            ));
        }
        Ok(paginate(out, page.limit))
    }

    async fn update_model(&self, actor: &Actor, name: &str, update: ModelUpdate) -> Result<Model> {
        let now = self.now();
        let owned = (actor.clone(), name.to_string());
        self.writer.run(move |tx| Box::pin(async move {
        let (actor, name) = (&owned.0, owned.1.as_str());
        let before = load_model(&mut *tx, name).await?;
        let description = update
            .description
            .unwrap_or_else(|| before.description.clone());
        let owner = update.owner.unwrap_or_else(|| before.owner.clone());
        validate::new_model(&NewModel {
            name: name.to_string(),
            description: description.clone(),
            owner: owner.clone(),
            tags: before.tags.clone(),
        })?;
        sqlx::query("UPDATE models SET description = ?, owner = ?, updated_at = ? WHERE name = ?")
            .bind(&description)
            .bind(&owner)
            .bind(&now)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let after = load_model(&mut *tx, name).await?;
        append_audit(
            &mut *tx,
            &now,
            actor,
            "model.update",
            &model_target(name),
            Some(to_value(&before)),
            Some(to_value(&after)),
        )
        .await?;
        Ok(after)
        })).await
    }

    async fn delete_model(&self, actor: &Actor, name: &str) -> Result<()> {
        let now = self.now();
        let owned = (actor.clone(), name.to_string(), self.protection.clone());
        self.writer
            .run(move |tx| {
                Box::pin(async move {
                    let (actor, name, protection) = (&owned.0, owned.1.as_str(), &owned.2);
                    let before = load_model(&mut *tx, name).await?;
                    let id = model_id(&mut *tx, name).await?;
                    protection.check_all(
                        actor,
                        model_alias_names(&mut *tx, id).await?,
                        "deleting the model",
                    )?;
                    sqlx::query("DELETE FROM models WHERE name = ?")
                        .bind(name)
                        .execute(&mut *tx)
                        .await?;
                    append_audit(
                        &mut *tx,
                        &now,
                        actor,
                        "model.delete",
                        &model_target(name),
                        Some(to_value(&before)),
                        None,
                    )
                    .await?;
                    Ok(())
                })
            })
            .await
    }

    async fn create_version(&self, actor: &Actor, model: &str, new: NewVersion) -> Result<Version> {
        validate::new_version(&new)?;
        let now = self.now();
        let owned = (actor.clone(), model.to_string());
        self.writer.run(move |tx| Box::pin(async move {
        let (actor, model) = (&owned.0, owned.1.as_str());
        let id = model_id(&mut *tx, model).await?;
        let mut new = new;
        if let Some(run) = new.run_id.as_deref() {
            crate::tracking::lineage_from_run(&mut *tx, run, &mut new.lineage).await?;
        }
        if let Some(parent) = new.lineage.parent_version
            && !version_exists(&mut *tx, id, parent).await?
        {
            return Err(Error::invalid(
                "lineage.parent_version",
                format!("model {model:?} has no version {parent}"),
            ));
        }
        // Allocating the number and inserting the row in one write transaction
        // keeps numbers unique and gapless under concurrent creation.
        let number: i64 = sqlx::query_scalar(
            "UPDATE models SET next_version = next_version + 1, updated_at = ? WHERE id = ? RETURNING next_version - 1",
        )
        .bind(&now)
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO versions (model_id, version, description, source_uri, artifact_digest, run_id,
                 lineage, tags, features, reference_uri, status, created_by, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'ready', ?, ?, ?)",
        )
        .bind(id)
        .bind(number)
        .bind(&new.description)
        .bind(&new.source_uri)
        .bind(&new.artifact_digest)
        .bind(&new.run_id)
        .bind(to_json(&new.lineage))
        .bind(to_json(&new.tags))
        .bind(to_json(&new.features))
        .bind(&new.reference_uri)
        .bind(&actor.name)
        .bind(&now)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        // A new version has no aliases and no recommendations yet: build the
        // record from what was inserted instead of reading it back.
        let at = parse_time(&now)?;
        let version = Version {
            model: model.to_string(),
            version: number,
            description: new.description,
            source_uri: new.source_uri,
            artifact_digest: new.artifact_digest,
            run_id: new.run_id,
            lineage: new.lineage,
            tags: new.tags,
            features: new.features,
            reference_uri: new.reference_uri,
            status: VersionStatus::Ready,
            stage: Stage::None,
            aliases: Vec::new(),
            health: None,
            recommendations: Vec::new(),
            created_by: actor.name.clone(),
            created_at: at,
            updated_at: at,
        };
        append_audit(
            &mut *tx,
            &now,
            actor,
            "version.create",
            &version_target(model, number),
            None,
            Some(to_value(&version)),
        )
        .await?;
        Ok(version)
        })).await
    }

    async fn get_version(&self, model: &str, version: i64) -> Result<Version> {
        let mut conn = self.read.acquire().await?;
        load_version(&mut conn, model, version).await
    }

    async fn list_versions(
        &self,
        model: &str,
        filter: &VersionFilter,
        page: &PageRequest,
    ) -> Result<Page<Version>> {
        let after = decode_cursor(&page.cursor)?;
        let mut conn = self.read.acquire().await?;
        let id = model_id(&mut conn, model).await?;
        let mut q = QueryBuilder::<Sqlite>::new("SELECT * FROM versions WHERE model_id = ");
        q.push_bind(id).push(" AND version > ").push_bind(after);
        if let Some(status) = filter.status {
            q.push(" AND status = ").push_bind(status.as_str());
        }
        if let Some(run) = &filter.run_id {
            q.push(" AND run_id = ").push_bind(run.clone());
        }
        for (k, v) in &filter.tags {
            q.push(" AND json_extract(tags, ")
                .push_bind(json_path(k)?)
                .push(") = ")
                .push_bind(v.clone());
        }
        q.push(" ORDER BY version LIMIT ")
            .push_bind(i64::from(page.limit) + 1);
        let rows = q.build().fetch_all(&mut *conn).await?;
        let versions = versions_from_rows(&mut conn, model, id, &rows).await?;
        Ok(paginate(
            versions.into_iter().map(|v| (v.version, v)).collect(),
            page.limit,
        ))
    }

    async fn update_version(
        &self,
        actor: &Actor,
        model: &str,
        version: i64,
        update: VersionUpdate,
    ) -> Result<Version> {
        let now = self.now();
        let owned = (actor.clone(), model.to_string());
        self.writer.run(move |tx| Box::pin(async move {
        let (actor, model) = (&owned.0, owned.1.as_str());
        let before = load_version(&mut *tx, model, version).await?;
        let description = update
            .description
            .unwrap_or_else(|| before.description.clone());
        let status = update.status.unwrap_or(before.status);
        let features = update.features.unwrap_or_else(|| before.features.clone());
        validate::new_version(&NewVersion {
            description: description.clone(),
            features: features.clone(),
            ..Default::default()
        })?;
        let id = model_id(&mut *tx, model).await?;
        sqlx::query("UPDATE versions SET description = ?, status = ?, features = ?, updated_at = ? WHERE model_id = ? AND version = ?")
            .bind(&description)
            .bind(status.as_str())
            .bind(to_json(&features))
            .bind(&now)
            .bind(id)
            .bind(version)
            .execute(&mut *tx)
            .await?;
        let after = load_version(&mut *tx, model, version).await?;
        append_audit(
            &mut *tx,
            &now,
            actor,
            "version.update",
            &version_target(model, version),
            Some(to_value(&before)),
            Some(to_value(&after)),
        )
        .await?;
        Ok(after)
        })).await
    }

    async fn delete_version(&self, actor: &Actor, model: &str, version: i64) -> Result<()> {
        let now = self.now();
        let owned = (actor.clone(), model.to_string(), self.protection.clone());
        self.writer.run(move |tx| Box::pin(async move {
        let (actor, model, protection) = (&owned.0, owned.1.as_str(), &owned.2);
        let before = load_version(&mut *tx, model, version).await?;
        protection.check(actor, before.stage.as_str(), "deleting a version in that stage")?;
        if !before.aliases.is_empty() {
            return Err(Error::Conflict(format!(
                "version {version} of model {model:?} is the target of alias(es) {}; move or delete them first",
                before.aliases.join(", ")
            )));
        }
        let id = model_id(&mut *tx, model).await?;
        sqlx::query("DELETE FROM versions WHERE model_id = ? AND version = ?")
            .bind(id)
            .bind(version)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE recommendations SET status = 'superseded', resolved_by = ?, resolved_at = ?,
                 resolution_note = 'version deleted', updated_at = ?
             WHERE model_id = ? AND version = ? AND status = 'open'",
        )
        .bind(&actor.name)
        .bind(&now)
        .bind(&now)
        .bind(id)
        .bind(version)
        .execute(&mut *tx)
        .await?;
        append_audit(
            &mut *tx,
            &now,
            actor,
            "version.delete",
            &version_target(model, version),
            Some(to_value(&before)),
            None,
        )
        .await?;
        Ok(())
        })).await
    }

    async fn set_tag(
        &self,
        actor: &Actor,
        target: &TagTarget,
        key: &str,
        value: Option<&str>,
    ) -> Result<Tags> {
        validate::tag_key(key)?;
        if let Some(v) = value {
            validate::tag_value(key, v)?;
        }
        let now = self.now();
        let owned = (
            actor.clone(),
            target.clone(),
            key.to_string(),
            value.map(str::to_string),
        );
        self.writer.run(move |tx| Box::pin(async move {
        let (actor, target, key, value) = (&owned.0, &owned.1, owned.2.as_str(), owned.3.as_deref());
        let (mut tags, audit_target, action_prefix) = match target {
            TagTarget::Model { model } => (
                load_model(&mut *tx, model).await?.tags,
                model_target(model),
                "model",
            ),
            TagTarget::Version { model, version } => (
                load_version(&mut *tx, model, *version).await?.tags,
                version_target(model, *version),
                "version",
            ),
        };
        let before = tags.get(key).cloned();
        match value {
            Some(v) => {
                tags.insert(key.to_string(), v.to_string());
                validate::tags(&tags)?;
            }
            None => {
                if tags.remove(key).is_none() {
                    return Err(Error::not_found(format!("tag {key:?} on {audit_target}")));
                }
            }
        }
        match target {
            TagTarget::Model { model } => {
                sqlx::query("UPDATE models SET tags = ?, updated_at = ? WHERE name = ?")
                    .bind(to_json(&tags))
                    .bind(&now)
                    .bind(model)
                    .execute(&mut *tx)
                    .await?;
            }
            TagTarget::Version { model, version } => {
                let id = model_id(&mut *tx, model).await?;
                sqlx::query("UPDATE versions SET tags = ?, updated_at = ? WHERE model_id = ? AND version = ?")
                    .bind(to_json(&tags))
                    .bind(&now)
                    .bind(id)
                    .bind(version)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let action = format!(
            "{action_prefix}.tag.{}",
            if value.is_some() { "set" } else { "delete" }
        );
        append_audit(
            &mut *tx,
            &now,
            actor,
            &action,
            &audit_target,
            before.map(|b| serde_json::json!({ key: b })),
            value.map(|v| serde_json::json!({ key: v })),
        )
        .await?;
        Ok(tags)
        })).await
    }

    async fn get_alias(&self, model: &str, alias: &str) -> Result<Alias> {
        let mut conn = self.read.acquire().await?;
        load_alias(&mut conn, model, alias).await
    }

    async fn list_aliases(&self, model: &str) -> Result<Vec<Alias>> {
        let mut conn = self.read.acquire().await?;
        let id = model_id(&mut conn, model).await?;
        let names: Vec<String> =
            sqlx::query_scalar("SELECT name FROM aliases WHERE model_id = ? ORDER BY name")
                .bind(id)
                .fetch_all(&mut *conn)
                .await?;
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            out.push(load_alias(&mut conn, model, &name).await?);
        }
        Ok(out)
    }

    async fn set_alias(
        &self,
        actor: &Actor,
        model: &str,
        alias: &str,
        version: i64,
        reason: &str,
    ) -> Result<Alias> {
        self.set_alias_inner(actor, model, alias, version, reason, true)
            .await?
            .ok_or_else(|| Error::Corrupt("alias vanished after being set".into()))
    }

    async fn delete_alias(
        &self,
        actor: &Actor,
        model: &str,
        alias: &str,
        reason: &str,
    ) -> Result<()> {
        validate::reason(reason)?;
        self.protection.check(actor, alias, "deleting the alias")?;
        let now = self.now();
        let owned = (
            actor.clone(),
            model.to_string(),
            alias.to_string(),
            reason.to_string(),
        );
        self.writer.run(move |tx| Box::pin(async move {
        let (actor, model, alias, reason) = (&owned.0, owned.1.as_str(), owned.2.as_str(), owned.3.as_str());
        let before = load_alias(&mut *tx, model, alias).await?;
        let id = model_id(&mut *tx, model).await?;
        sqlx::query("DELETE FROM aliases WHERE model_id = ? AND name = ?")
            .bind(id)
            .bind(alias)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO alias_moves (model_id, alias, from_version, to_version, kind, actor, reason, at)
             VALUES (?, ?, ?, NULL, 'delete', ?, ?, ?)",
        )
        .bind(id)
        .bind(alias)
        .bind(before.version)
        .bind(&actor.name)
        .bind(reason)
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        append_audit(
            &mut *tx,
            &now,
            actor,
            "alias.delete",
            &alias_target(model, alias),
            Some(serde_json::json!({ "version": before.version })),
            None,
        )
        .await?;
        Ok(())
        })).await
    }

    async fn rollback_alias(
        &self,
        actor: &Actor,
        model: &str,
        alias: &str,
        reason: &str,
    ) -> Result<Alias> {
        validate::reason(reason)?;
        if !actor.role.allows(Role::Approver) {
            return Err(Error::Forbidden(format!(
                "rolling back alias {alias:?} needs role approver or higher; token {:?} has role {}",
                actor.name, actor.role
            )));
        }
        let now = self.now();
        let owned = (
            actor.clone(),
            model.to_string(),
            alias.to_string(),
            reason.to_string(),
        );
        self.writer
            .run(move |tx| {
                Box::pin(async move {
                    rollback_alias_in(&mut *tx, &now, &owned.0, &owned.1, &owned.2, &owned.3).await
                })
            })
            .await
    }

    async fn raise_recommendation(
        &self,
        actor: &Actor,
        model: &str,
        version: i64,
        new: NewRecommendation,
    ) -> Result<Recommendation> {
        validate::new_recommendation(&new)?;
        let now = self.now();
        let owned = (actor.clone(), model.to_string());
        self.writer
            .run(move |tx| {
                Box::pin(async move {
                    raise_recommendation_in(&mut *tx, &now, &owned.0, &owned.1, version, &new).await
                })
            })
            .await
    }

    async fn get_recommendation(&self, id: i64) -> Result<Recommendation> {
        let mut conn = self.read.acquire().await?;
        load_recommendation(&mut conn, id).await
    }

    async fn list_recommendations(
        &self,
        filter: &RecommendationFilter,
        page: &PageRequest,
    ) -> Result<Page<Recommendation>> {
        let after = decode_cursor(&page.cursor)?;
        let mut q = QueryBuilder::<Sqlite>::new(RECOMMENDATION_SELECT);
        q.push(" WHERE r.id > ").push_bind(after);
        if let Some(model) = &filter.model {
            q.push(" AND m.name = ").push_bind(model.clone());
        }
        if let Some(version) = filter.version {
            q.push(" AND r.version = ").push_bind(version);
        }
        if let Some(kind) = filter.kind {
            q.push(" AND r.kind = ").push_bind(kind.as_str());
        }
        if let Some(status) = filter.status {
            q.push(" AND r.status = ").push_bind(status.as_str());
        }
        q.push(" ORDER BY r.id LIMIT ")
            .push_bind(i64::from(page.limit) + 1);
        let mut conn = self.read.acquire().await?;
        let rows = q.build().fetch_all(&mut *conn).await?;
        let recs = rows
            .iter()
            .map(|r| recommendation_from_row(r).map(|rec| (rec.id, rec)))
            .collect::<Result<Vec<_>>>()?;
        Ok(paginate(recs, page.limit))
    }

    async fn transition_recommendation(
        &self,
        actor: &Actor,
        id: i64,
        transition: Transition,
        note: &str,
    ) -> Result<Recommendation> {
        let now = self.now();
        let owned = (actor.clone(), note.to_string());
        self.writer
            .run(move |tx| {
                Box::pin(async move {
                    transition_recommendation_in(&mut *tx, &now, &owned.0, id, transition, &owned.1)
                        .await
                })
            })
            .await
    }

    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> Result<Page<AuditEntry>> {
        let after = decode_cursor(&page.cursor)?;
        let mut q = QueryBuilder::<Sqlite>::new("SELECT * FROM audit_log WHERE seq > ");
        q.push_bind(after);
        if let Some(actor) = &filter.actor {
            q.push(" AND actor = ").push_bind(actor.clone());
        }
        if let Some(action) = &filter.action {
            q.push(" AND action = ").push_bind(action.clone());
        }
        if let Some(prefix) = &filter.target_prefix {
            q.push(" AND substr(target, 1, ")
                .push_bind(prefix.len() as i64)
                .push(") = ")
                .push_bind(prefix.clone());
        }
        q.push(" ORDER BY seq LIMIT ")
            .push_bind(i64::from(page.limit) + 1);
        let mut conn = self.read.acquire().await?;
        let rows = q.build().fetch_all(&mut *conn).await?;
        let entries = rows
            .iter()
            .map(|r| audit_from_row(r).map(|e| (e.seq, e)))
            .collect::<Result<Vec<_>>>()?;
        Ok(paginate(entries, page.limit))
    }

    async fn verify_audit(&self) -> Result<AuditVerification> {
        let mut conn = self.read.acquire().await?;
        let rows = sqlx::query("SELECT * FROM audit_log ORDER BY seq")
            .fetch_all(&mut *conn)
            .await?;
        let mut entries = Vec::with_capacity(rows.len());
        for row in &rows {
            match audit_from_row(row) {
                Ok(e) => entries.push(e),
                Err(e) => {
                    // An entry edited into unparseable JSON or time is broken too.
                    let seq: i64 = row.get("seq");
                    let mut v = audit::verify(entries);
                    if v.ok {
                        v = AuditVerification {
                            entries_checked: v.entries_checked,
                            ok: false,
                            first_broken_seq: Some(seq),
                            problem: Some(e.to_string()),
                            head_hash: None,
                        };
                    }
                    return Ok(v);
                }
            }
        }
        Ok(audit::verify(entries))
    }

    async fn create_token(
        &self,
        actor: &Actor,
        name: &str,
        role: Role,
        secret_hash: &str,
    ) -> Result<TokenInfo> {
        validate::token_name(name)?;
        let now = self.now();
        let owned = (actor.clone(), name.to_string(), secret_hash.to_string());
        self.writer.run(move |tx| Box::pin(async move {
        let (actor, name, secret_hash) = (&owned.0, owned.1.as_str(), owned.2.as_str());
        sqlx::query("INSERT INTO tokens (name, role, secret_hash, created_by, created_at) VALUES (?, ?, ?, ?, ?)")
            .bind(name)
            .bind(role.as_str())
            .bind(secret_hash)
            .bind(&actor.name)
            .bind(&now)
            .execute(&mut *tx)
            .await
            .map_err(|e| unique_as_exists(e, || format!("token {name:?}")))?;
        let row = sqlx::query("SELECT * FROM tokens WHERE name = ?")
            .bind(name)
            .fetch_one(&mut *tx)
            .await?;
        let info = token_from_row(&row)?;
        append_audit(
            &mut *tx,
            &now,
            actor,
            "token.create",
            &format!("token/{name}"),
            None,
            Some(to_value(&info)),
        )
        .await?;
        Ok(info)
        })).await
    }

    async fn list_tokens(&self) -> Result<Vec<TokenInfo>> {
        let mut conn = self.read.acquire().await?;
        let rows = sqlx::query("SELECT * FROM tokens ORDER BY id")
            .fetch_all(&mut *conn)
            .await?;
        rows.iter().map(token_from_row).collect()
    }

    async fn revoke_token(&self, actor: &Actor, name: &str) -> Result<TokenInfo> {
        let now = self.now();
        let owned = (actor.clone(), name.to_string());
        self.writer
            .run(move |tx| {
                Box::pin(async move {
                    let (actor, name) = (&owned.0, owned.1.as_str());
                    let row = sqlx::query("SELECT * FROM tokens WHERE name = ?")
                        .bind(name)
                        .fetch_optional(&mut *tx)
                        .await?
                        .ok_or_else(|| Error::not_found(format!("token {name:?}")))?;
                    let before = token_from_row(&row)?;
                    if before.revoked_at.is_some() {
                        return Err(Error::Conflict(format!(
                            "token {name:?} is already revoked"
                        )));
                    }
                    sqlx::query("UPDATE tokens SET revoked_at = ? WHERE name = ?")
                        .bind(&now)
                        .bind(name)
                        .execute(&mut *tx)
                        .await?;
                    let row = sqlx::query("SELECT * FROM tokens WHERE name = ?")
                        .bind(name)
                        .fetch_one(&mut *tx)
                        .await?;
                    let after = token_from_row(&row)?;
                    append_audit(
                        &mut *tx,
                        &now,
                        actor,
                        "token.revoke",
                        &format!("token/{name}"),
                        Some(to_value(&before)),
                        Some(to_value(&after)),
                    )
                    .await?;
                    Ok(after)
                })
            })
            .await
    }

    async fn token_by_hash(&self, secret_hash: &str) -> Result<Option<TokenInfo>> {
        let mut conn = self.read.acquire().await?;
        let row = sqlx::query("SELECT * FROM tokens WHERE secret_hash = ? AND revoked_at IS NULL")
            .bind(secret_hash)
            .fetch_optional(&mut *conn)
            .await?;
        row.as_ref().map(token_from_row).transpose()
    }

    async fn active_admin_tokens(&self) -> Result<i64> {
        let mut conn = self.read.acquire().await?;
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM tokens WHERE role = 'admin' AND revoked_at IS NULL",
        )
        .fetch_one(&mut *conn)
        .await?)
    }

    async fn export_view(&self, view: RegistryView) -> Result<Vec<Value>> {
        // SQLite builds each row's JSON object itself; the statement is chosen
        // from a fixed set, never built from input.
        let sql: &'static str = match view {
            RegistryView::Models => {
                "SELECT json_object('model', name, 'description', description, 'owner', owner, 'tags', tags,
                    'latest_version', next_version - 1, 'created_at', created_at, 'updated_at', updated_at)
                 FROM models ORDER BY id"
            }
            RegistryView::Versions => {
                "SELECT json_object('model', m.name, 'version', v.version, 'description', v.description,
                    'status', v.status, 'stage', v.stage, 'source_uri', v.source_uri, 'artifact_digest', v.artifact_digest,
                    'run_id', v.run_id, 'lineage', v.lineage, 'tags', v.tags, 'features', v.features,
                    'reference_uri', v.reference_uri, 'health', v.health,
                    'created_by', v.created_by, 'created_at', v.created_at, 'updated_at', v.updated_at)
                 FROM versions v JOIN models m ON m.id = v.model_id ORDER BY m.id, v.version"
            }
            RegistryView::Aliases => {
                "SELECT json_object('model', m.name, 'alias', a.name, 'version', a.version,
                    'updated_by', a.updated_by, 'updated_at', a.updated_at)
                 FROM aliases a JOIN models m ON m.id = a.model_id ORDER BY m.id, a.name"
            }
            RegistryView::AliasMoves => {
                "SELECT json_object('model', m.name, 'alias', x.alias, 'ts', x.at, 'kind', x.kind,
                    'from_version', x.from_version, 'to_version', x.to_version, 'actor', x.actor,
                    'reason', x.reason)
                 FROM alias_moves x JOIN models m ON m.id = x.model_id ORDER BY x.id"
            }
            RegistryView::Recommendations => {
                "SELECT json_object('id', r.id, 'model', m.name, 'version', r.version, 'kind', r.kind,
                    'severity', r.severity, 'status', r.status, 'reason', r.reason, 'evidence', r.evidence,
                    'raised_by', r.raised_by, 'created_at', r.created_at, 'updated_at', r.updated_at,
                    'resolved_by', r.resolved_by, 'resolved_at', r.resolved_at)
                 FROM recommendations r JOIN models m ON m.id = r.model_id ORDER BY r.id"
            }
            RegistryView::AuditLog => {
                "SELECT json_object('seq', seq, 'ts', at, 'actor', actor, 'action', action, 'target', target,
                    'before', before, 'after', after, 'prev_hash', prev_hash, 'hash', hash)
                 FROM audit_log ORDER BY seq"
            }
        };
        let mut conn = self.read.acquire().await?;
        let rows: Vec<String> = sqlx::query_scalar(sql).fetch_all(&mut *conn).await?;
        rows.iter()
            .map(|r| parse_json(view.table_name(), r))
            .collect()
    }

    fn stats(&self) -> crate::RegistryStats {
        self.writer.stats()
    }

    async fn set_policy(
        &self,
        actor: &Actor,
        model: &str,
        policy: MonitoringPolicy,
    ) -> Result<PolicyRecord> {
        policy.validate()?;
        let now = self.now();
        let owned = (actor.clone(), model.to_string());
        self.writer
            .run(move |tx| {
                Box::pin(async move {
                    let (actor, model) = (&owned.0, owned.1.as_str());
                    let id = model_id(&mut *tx, model).await?;
                    let before = load_policy(&mut *tx, model).await.ok();
                    sqlx::query(
                        "INSERT INTO monitoring_policies (model_id, policy, updated_by, updated_at)
                         VALUES (?, ?, ?, ?)
                         ON CONFLICT (model_id) DO UPDATE SET policy = excluded.policy,
                           updated_by = excluded.updated_by, updated_at = excluded.updated_at",
                    )
                    .bind(id)
                    .bind(to_value(&policy).to_string())
                    .bind(&actor.name)
                    .bind(&now)
                    .execute(&mut *tx)
                    .await?;
                    let after = load_policy(&mut *tx, model).await?;
                    append_audit(
                        &mut *tx,
                        &now,
                        actor,
                        "policy.set",
                        &policy_target(model),
                        before.map(|b| to_value(&b.policy)),
                        Some(to_value(&after.policy)),
                    )
                    .await?;
                    Ok(after)
                })
            })
            .await
    }

    async fn get_policy(&self, model: &str) -> Result<PolicyRecord> {
        let mut conn = self.read.acquire().await?;
        load_policy(&mut conn, model).await
    }

    async fn list_policies(&self) -> Result<Vec<PolicyRecord>> {
        let mut conn = self.read.acquire().await?;
        let rows = sqlx::query(
            "SELECT m.name AS model, p.policy, p.updated_by, p.updated_at
             FROM monitoring_policies p JOIN models m ON m.id = p.model_id ORDER BY m.name",
        )
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(policy_from_row).collect()
    }

    async fn delete_policy(&self, actor: &Actor, model: &str) -> Result<()> {
        let now = self.now();
        let owned = (actor.clone(), model.to_string());
        self.writer
            .run(move |tx| {
                Box::pin(async move {
                    let (actor, model) = (&owned.0, owned.1.as_str());
                    let before = load_policy(&mut *tx, model).await?;
                    let id = model_id(&mut *tx, model).await?;
                    sqlx::query("DELETE FROM monitoring_policies WHERE model_id = ?")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    append_audit(
                        &mut *tx,
                        &now,
                        actor,
                        "policy.delete",
                        &policy_target(model),
                        Some(to_value(&before.policy)),
                        None,
                    )
                    .await?;
                    Ok(())
                })
            })
            .await
    }

    async fn create_webhook(&self, actor: &Actor, new: NewWebhook) -> Result<CreatedWebhook> {
        self.webhook_create(actor, new).await
    }

    async fn get_webhook(&self, name: &str) -> Result<Webhook> {
        self.webhook_get(name).await
    }

    async fn list_webhooks(&self) -> Result<Vec<Webhook>> {
        self.webhook_list().await
    }

    async fn delete_webhook(&self, actor: &Actor, name: &str) -> Result<()> {
        self.webhook_delete(actor, name).await
    }

    async fn list_webhook_deliveries(
        &self,
        name: &str,
        filter: &DeliveryFilter,
        page: &PageRequest,
    ) -> Result<Page<WebhookDelivery>> {
        self.webhook_deliveries(name, filter, page).await
    }

    async fn publish_webhook_event(
        &self,
        event: WebhookEvent,
        subscription: Option<&str>,
    ) -> Result<u64> {
        self.webhook_publish(event, subscription).await
    }

    async fn dispatch_webhook_outbox(&self) -> Result<DispatchReport> {
        self.webhook_dispatch().await
    }

    async fn claim_due_webhook_deliveries(
        &self,
        lease: std::time::Duration,
        limit: u32,
    ) -> Result<Vec<DueDelivery>> {
        self.webhook_claim_due(lease, limit).await
    }

    async fn record_webhook_attempt(&self, id: i64, outcome: AttemptOutcome) -> Result<()> {
        self.webhook_record_attempt(id, outcome).await
    }

    async fn release_webhook_leases(&self) -> Result<u64> {
        self.webhook_release_leases().await
    }

    async fn next_webhook_due(&self) -> Result<Option<DateTime<Utc>>> {
        self.webhook_next_due().await
    }

    async fn prune_webhook_deliveries(&self, finished_before: DateTime<Utc>) -> Result<u64> {
        self.webhook_prune(finished_before).await
    }

    async fn record_alert(
        &self,
        actor: &Actor,
        notice: crate::AlertNotice,
        action: crate::AlertAction,
    ) -> Result<crate::AlertHandled> {
        self.alert_record(actor, notice, action).await
    }

    async fn list_alert_notifications(
        &self,
        page: &PageRequest,
    ) -> Result<Page<crate::AlertRecord>> {
        self.alert_list(page).await
    }

    async fn rename_model(&self, actor: &Actor, name: &str, new_name: &str) -> Result<Model> {
        self.rename_model_impl(actor, name, new_name).await
    }

    async fn transition_stage(
        &self,
        actor: &Actor,
        model: &str,
        version: i64,
        stage: Stage,
        archive_existing: bool,
    ) -> Result<Version> {
        self.transition_stage_impl(actor, model, version, stage, archive_existing)
            .await
    }

    async fn search_models(&self, search: &Search) -> Result<SearchPage<Model>> {
        self.search_models_impl(search).await
    }

    async fn search_versions(&self, search: &Search) -> Result<SearchPage<Version>> {
        self.search_versions_impl(search).await
    }

    async fn latest_versions(&self, model: &str, stages: &[Stage]) -> Result<Vec<Version>> {
        self.latest_versions_impl(model, stages).await
    }

    async fn get_version_by_alias(&self, model: &str, alias: &str) -> Result<Version> {
        self.version_by_alias_impl(model, alias).await
    }

    async fn create_experiment(&self, actor: &Actor, new: NewExperiment) -> Result<Experiment> {
        self.experiment_create(actor, new).await
    }

    async fn get_experiment(&self, id: i64) -> Result<Experiment> {
        self.experiment_get(id).await
    }

    async fn get_experiment_by_name(&self, name: &str) -> Result<Experiment> {
        self.experiment_by_name(name).await
    }

    async fn create_run(&self, actor: &Actor, new: NewRun) -> Result<Run> {
        self.run_create(actor, new).await
    }

    async fn get_run(&self, id: &str) -> Result<Run> {
        self.run_get(id).await
    }

    async fn update_run(&self, actor: &Actor, id: &str, update: RunUpdate) -> Result<Run> {
        self.run_update(actor, id, update).await
    }

    async fn log_run(&self, actor: &Actor, id: &str, log: RunLog) -> Result<()> {
        self.run_log(actor, id, log).await
    }

    async fn set_alias_target(
        &self,
        actor: &Actor,
        model: &str,
        alias: &str,
        version: i64,
        reason: &str,
    ) -> Result<()> {
        self.set_alias_inner(actor, model, alias, version, reason, false)
            .await
            .map(drop)
    }

    async fn set_gate_policy(
        &self,
        actor: &Actor,
        model: &str,
        rego: &str,
    ) -> Result<GatePolicyRecord> {
        self.gate_policy_set(actor, model, rego).await
    }

    async fn get_gate_policy(&self, model: &str) -> Result<GatePolicyRecord> {
        self.gate_policy_get(model).await
    }

    async fn delete_gate_policy(&self, actor: &Actor, model: &str) -> Result<()> {
        self.gate_policy_delete(actor, model).await
    }

    async fn promote_alias(
        &self,
        actor: &Actor,
        model: &str,
        alias: &str,
        version: i64,
        reason: &str,
        gate: &GateApproval,
    ) -> Result<Alias> {
        self.gate_promote(actor, model, alias, version, reason, gate)
            .await
    }
}

fn policy_target(model: &str) -> String {
    format!("model/{model}/policy")
}

async fn load_policy(conn: &mut SqliteConnection, model: &str) -> Result<PolicyRecord> {
    let row = sqlx::query(
        "SELECT m.name AS model, p.policy, p.updated_by, p.updated_at
         FROM monitoring_policies p JOIN models m ON m.id = p.model_id WHERE m.name = ?",
    )
    .bind(model)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some(row) => policy_from_row(&row),
        None => {
            // Say which is missing: the model, or only its policy.
            model_id(conn, model).await?;
            Err(Error::not_found(format!(
                "monitoring policy of model {model:?}"
            )))
        }
    }
}

fn policy_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<PolicyRecord> {
    let text: String = row.get("policy");
    let model: String = row.get("model");
    let policy = serde_json::from_str(&text)
        .map_err(|e| Error::Corrupt(format!("policy of model {model:?}: {e}")))?;
    Ok(PolicyRecord {
        model,
        policy,
        updated_by: row.get("updated_by"),
        updated_at: parse_time(row.get("updated_at"))?,
    })
}
