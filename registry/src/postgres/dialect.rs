//! What the shared role files (`sql/`) name that is PostgreSQL's own: the
//! store and connection types, the SQL fragments that differ from SQLite's,
//! and the locks several daemons need.

use sqlx::PgConnection;

use sqlx::QueryBuilder;

use crate::error::Result;

pub(super) type Store = super::PgStore;
pub(super) type Db = sqlx::Postgres;
pub(super) type DbConn = PgConnection;
/// What `GET /api/v1/cluster` calls this backend.
pub(super) const BACKEND_NAME: &str = "postgres";
pub(super) type DbRow = sqlx::postgres::PgRow;

/// A row-locking clause (`FOR UPDATE`, `FOR SHARE`, `… SKIP LOCKED`),
/// appended to the statement: several daemons change the same rows, so a
/// change locks what it read before it writes.
macro_rules! row_lock {
    ($clause:literal) => {
        concat!(" ", $clause)
    };
}

/// The two-argument maximum that skips NULLs.
macro_rules! greatest {
    () => {
        "GREATEST"
    };
}

/// The function building a JSON object from key/value pairs.
macro_rules! json_object {
    () => {
        "json_build_object"
    };
}

/// Appends a tag's value read from the JSON text column `tags`.
pub(super) fn push_tag(q: &mut QueryBuilder<Db>, tags: &str, key: &str) {
    q.push("(")
        .push(tags)
        .push("::jsonb ->> ")
        .push_bind(key.to_string())
        .push(")");
}

/// Appends a case-sensitive `LIKE` (PostgreSQL's `LIKE` is).
pub(super) fn push_case_sensitive_like(q: &mut QueryBuilder<Db>, pattern: &str) {
    q.push(" LIKE ").push_bind(pattern.to_string());
}

/// The case-insensitive `LIKE`.
macro_rules! ilike {
    () => {
        "ILIKE"
    };
}

/// What the shared filter test renders on this backend.
#[cfg(test)]
pub(super) const RENDERED_PREDICATES: &str = "SELECT 1 WHERE TRUE AND ((v.tags::jsonb ->> $1) IS NULL OR (v.tags::jsonb ->> $2) <> $3) \
     AND v.version IN ($4, $5) AND m.name LIKE $6";

/// Takes the audit chain's head row lock until the change commits: appends
/// from every daemon are serialised, and entries commit in `seq` order.
pub(super) async fn lock_audit_head(conn: &mut DbConn) -> Result<()> {
    sqlx::query("SELECT 1 FROM audit_head WHERE id = 1 FOR UPDATE")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Serialises the changes that name the same `key` (on any daemon) until
/// the change commits: a transaction-scoped advisory lock.
pub(super) async fn lock_key(conn: &mut DbConn, key: &str) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind(key)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
