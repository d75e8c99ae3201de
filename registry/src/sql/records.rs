//! Rows read back into records, the loaders the roles share, and the row
//! locks a change takes before it reads what it will modify. Every
//! function here runs on the caller's connection (a pooled one, or the
//! change's transaction, which sees its own uncommitted changes).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::Row;

use super::dialect::{DbConn, DbRow};
use crate::error::{Error, Result};
use crate::types::*;

pub(super) fn parse_time(s: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| Error::Corrupt(format!("bad timestamp {s:?}: {e}")))
}

pub(super) fn parse_opt_time(s: Option<String>) -> Result<Option<DateTime<Utc>>> {
    s.as_deref().map(parse_time).transpose()
}

pub(super) fn parse_json<T: serde::de::DeserializeOwned>(field: &str, s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| Error::Corrupt(format!("bad JSON in {field}: {e}")))
}

pub(super) fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

pub(super) fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

pub(super) fn encode_cursor(id: i64) -> String {
    URL_SAFE_NO_PAD.encode(id.to_string())
}

pub(super) fn decode_cursor(cursor: &Option<String>) -> Result<i64> {
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
pub(super) fn paginate<T>(mut rows: Vec<(i64, T)>, limit: u32) -> Page<T> {
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

pub(super) fn model_target(model: &str) -> String {
    format!("model/{model}")
}
pub(super) fn version_target(model: &str, version: i64) -> String {
    format!("model/{model}/version/{version}")
}

pub(super) async fn model_id(conn: &mut DbConn, name: &str) -> Result<i64> {
    sqlx::query_scalar("SELECT id FROM models WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| Error::not_found(format!("model {name:?}")))
}

/// The model's id, with its row locked until the change commits: the
/// change's reads of the model and of its version counter stay true.
pub(super) async fn lock_model(conn: &mut DbConn, name: &str) -> Result<i64> {
    sqlx::query_scalar(concat!(
        "SELECT id FROM models WHERE name = $1",
        row_lock!("FOR UPDATE")
    ))
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| Error::not_found(format!("model {name:?}")))
}

/// Locks a version's row until the change commits (nothing else changes
/// or deletes it meanwhile); `NotFound` if the model or version is missing.
pub(super) async fn lock_version(conn: &mut DbConn, model: &str, version: i64) -> Result<i64> {
    let id = model_id(conn, model).await?;
    sqlx::query_scalar::<_, i64>(concat!(
        "SELECT version FROM versions WHERE model_id = $1 AND version = $2",
        row_lock!("FOR UPDATE")
    ))
    .bind(id)
    .bind(version)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| Error::not_found(format!("version {version} of model {model:?}")))?;
    Ok(id)
}

/// The model, read after its row is locked (see [`lock_model`]).
pub(super) async fn load_model_locked(conn: &mut DbConn, name: &str) -> Result<Model> {
    lock_model(conn, name).await?;
    load_model(conn, name).await
}

/// The version, read after its row is locked (see [`lock_version`]).
pub(super) async fn load_version_locked(
    conn: &mut DbConn,
    model: &str,
    version: i64,
) -> Result<Version> {
    lock_version(conn, model, version).await?;
    load_version(conn, model, version).await
}

pub(super) async fn load_model(conn: &mut DbConn, name: &str) -> Result<Model> {
    let row = sqlx::query("SELECT * FROM models WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| Error::not_found(format!("model {name:?}")))?;
    model_from_row(conn, &row).await
}

pub(super) async fn model_from_row(conn: &mut DbConn, row: &DbRow) -> Result<Model> {
    let id: i64 = row.get("id");
    let aliases: Vec<(String, i64)> =
        sqlx::query_as("SELECT name, version FROM aliases WHERE model_id = $1 ORDER BY name")
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

pub(super) fn recommendation_from_row(row: &DbRow) -> Result<Recommendation> {
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
pub(super) const RECOMMENDATION_SELECT: &str = recommendation_select!();

pub(super) async fn load_recommendation(conn: &mut DbConn, id: i64) -> Result<Recommendation> {
    let row = sqlx::query(concat!(recommendation_select!(), " WHERE r.id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| Error::not_found(format!("recommendation {id}")))?;
    recommendation_from_row(&row)
}

/// Builds versions from rows of one model, with their aliases and open
/// recommendations fetched once for the whole set.
pub(super) async fn versions_from_rows(
    conn: &mut DbConn,
    model: &str,
    model_id: i64,
    rows: &[DbRow],
) -> Result<Vec<Version>> {
    let aliases: Vec<(String, i64)> =
        sqlx::query_as("SELECT name, version FROM aliases WHERE model_id = $1 ORDER BY name")
            .bind(model_id)
            .fetch_all(&mut *conn)
            .await?;
    let rec_rows = sqlx::query(concat!(
        recommendation_select!(),
        " WHERE r.model_id = $1 AND r.status = 'open' ORDER BY r.id"
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
                metadata: parse_json("versions.metadata", row.get("metadata"))?,
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

pub(super) async fn load_version(conn: &mut DbConn, model: &str, version: i64) -> Result<Version> {
    let id = model_id(conn, model).await?;
    let row = sqlx::query("SELECT * FROM versions WHERE model_id = $1 AND version = $2")
        .bind(id)
        .bind(version)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| Error::not_found(format!("version {version} of model {model:?}")))?;
    let mut v = versions_from_rows(conn, model, id, std::slice::from_ref(&row)).await?;
    v.pop()
        .ok_or_else(|| Error::Corrupt("version row vanished".into()))
}

pub(super) async fn alias_moves(
    conn: &mut DbConn,
    model_id: i64,
    alias: &str,
) -> Result<Vec<AliasMove>> {
    let rows =
        sqlx::query("SELECT * FROM alias_moves WHERE model_id = $1 AND alias = $2 ORDER BY id")
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

pub(super) async fn load_alias(conn: &mut DbConn, model: &str, alias: &str) -> Result<Alias> {
    let row = sqlx::query(
        "SELECT m.id AS model_id, a.version, a.updated_by, a.updated_at
         FROM models m LEFT JOIN aliases a ON a.model_id = m.id AND a.name = $1
         WHERE m.name = $2",
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

pub(super) async fn version_exists(conn: &mut DbConn, model_id: i64, version: i64) -> Result<bool> {
    // FOR SHARE: the version cannot be deleted before the change that
    // relies on it (an alias, a recommendation, a lineage link) commits.
    let found: Option<i32> = sqlx::query_scalar(concat!(
        "SELECT 1 FROM versions WHERE model_id = $1 AND version = $2",
        row_lock!("FOR SHARE")
    ))
    .bind(model_id)
    .bind(version)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(found.is_some())
}

/// The names of a model's aliases.
pub(super) async fn model_alias_names(tx: &mut DbConn, model_id: i64) -> Result<Vec<String>> {
    Ok(
        sqlx::query_scalar("SELECT name FROM aliases WHERE model_id = $1 ORDER BY name")
            .bind(model_id)
            .fetch_all(&mut *tx)
            .await?,
    )
}

pub(super) fn audit_from_row(row: &DbRow) -> Result<AuditEntry> {
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

pub(super) fn token_from_row(row: &DbRow) -> Result<TokenInfo> {
    Ok(TokenInfo {
        name: row.get("name"),
        role: row
            .get::<&str, _>("role")
            .parse::<Role>()
            .map_err(|_| Error::Corrupt("unknown token role".into()))?,
        created_by: row.get("created_by"),
        created_at: parse_time(row.get("created_at"))?,
        revoked_at: parse_opt_time(row.get("revoked_at"))?,
        expires_at: parse_opt_time(row.get("expires_at"))?,
    })
}

/// Maps a UNIQUE violation to `AlreadyExists`, everything else to `Database`.
pub(super) fn unique_as_exists(e: sqlx::Error, what: impl FnOnce() -> String) -> Error {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => Error::already_exists(what()),
        _ => Error::Database(e),
    }
}
