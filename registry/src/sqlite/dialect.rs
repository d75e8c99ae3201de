//! What the shared role files (`sql/`) name that is SQLite's own: the store
//! and connection types and the SQL fragments that differ from
//! PostgreSQL's. The locks are no-ops: the single writer runs one change at
//! a time, which is stronger than any row lock.

use sqlx::SqliteConnection;

use sqlx::QueryBuilder;

use crate::error::Result;

pub(super) type Store = super::SqliteStore;
pub(super) type Db = sqlx::Sqlite;
pub(super) type DbConn = SqliteConnection;
/// What `GET /api/v1/cluster` calls this backend.
pub(super) const BACKEND_NAME: &str = "sqlite";
pub(super) type DbRow = sqlx::sqlite::SqliteRow;

/// A row-locking clause: nothing here (SQLite has none, and needs none).
macro_rules! row_lock {
    ($clause:literal) => {
        ""
    };
}

/// The two-argument maximum (SQLite's scalar `MAX`; callers COALESCE NULLs).
macro_rules! greatest {
    () => {
        "MAX"
    };
}

/// The function building a JSON object from key/value pairs.
macro_rules! json_object {
    () => {
        "json_object"
    };
}

/// Appends a tag's value read from the JSON text column `tags`.
pub(super) fn push_tag(q: &mut QueryBuilder<Db>, tags: &str, key: &str) {
    q.push("json_extract(")
        .push(tags)
        .push(", ")
        .push_bind(format!("$.\"{key}\""))
        .push(")");
}

/// Appends a case-sensitive `LIKE`: SQLite's `LIKE` ignores ASCII case,
/// `GLOB` does not.
pub(super) fn push_case_sensitive_like(q: &mut QueryBuilder<Db>, pattern: &str) {
    q.push(" GLOB ").push_bind(like_to_glob(pattern));
}

/// Turns a LIKE pattern into the GLOB pattern matching the same strings.
fn like_to_glob(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    for c in pattern.chars() {
        match c {
            '%' => out.push('*'),
            '_' => out.push('?'),
            '*' | '?' | '[' => {
                out.push('[');
                out.push(c);
                out.push(']');
            }
            c => out.push(c),
        }
    }
    out
}

/// The case-insensitive `LIKE` (SQLite's own `LIKE`, for ASCII).
macro_rules! ilike {
    () => {
        "LIKE"
    };
}

/// What the shared filter test renders on this backend.
#[cfg(test)]
pub(super) const RENDERED_PREDICATES: &str = "SELECT 1 WHERE TRUE AND (json_extract(v.tags, ?) IS NULL OR json_extract(v.tags, ?) <> ?) \
     AND v.version IN (?, ?) AND m.name GLOB ?";

/// Nothing to lock: the writer already runs changes one at a time.
pub(super) async fn lock_audit_head(_conn: &mut DbConn) -> Result<()> {
    Ok(())
}

/// Nothing to lock: the writer already runs changes one at a time.
pub(super) async fn lock_key(_conn: &mut DbConn, _key: &str) -> Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn like_patterns_become_glob_patterns_with_glob_metacharacters_escaped() {
        assert_eq!(super::like_to_glob("a%b_c*[d"), "a*b?c[*][[]d");
    }
}
