//! PostgreSQL's failures as the registry's errors.
//!
//! Inside the backend, `?` turns a `sqlx::Error` into [`Error::Database`]
//! (the one conversion, shared with SQLite). At the edge of every role
//! method, [`transient`] then tells a failure of the moment — the server
//! restarting or unreachable, a connection dropped, a serialisation
//! failure or deadlock, no free connection — from a real fault, so callers
//! answer "busy, retry" ([`Error::Busy`]) instead of an internal error.
//! Unique violations are mapped where the role knows what already exists.

use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;

use crate::error::Error;

/// [`Error::Busy`] for a transient database failure, [`Error::WriterStopped`]
/// once the store is closed; any other error unchanged.
pub(super) fn transient(e: Error) -> Error {
    match e {
        Error::Database(sqlx::Error::PoolClosed) => Error::WriterStopped,
        Error::Database(ref db) if is_transient(db) => Error::Busy,
        e => e,
    }
}

fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 40001 serialization_failure, 40P01 deadlock_detected,
            // 53300 too_many_connections, class 08 connection exceptions,
            // 57P01..57P03 shutdown / crash / still starting.
            matches!(&*code, "40001" | "40P01" | "53300")
                || code.starts_with("08")
                || code.starts_with("57P")
        }),
        _ => false,
    }
}

/// The error for a database that cannot be reached at start: where it was
/// looked for (never the password) and why it failed.
pub(super) fn unreachable(options: &PgConnectOptions, e: sqlx::Error) -> Error {
    Error::invalid(
        "registry URL",
        format!(
            "cannot connect to PostgreSQL at {}:{} (database {:?}, user {:?}): {e}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or(options.get_username()),
            options.get_username(),
        ),
    )
}

/// Refuses a database migrated by a newer modelwatch: its tables may mean
/// something this binary does not know, so it must not write to them.
pub(super) async fn refuse_newer_schema(
    pool: &PgPool,
    migrator: &sqlx::migrate::Migrator,
) -> Result<(), Error> {
    let migrated: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    if !migrated {
        return Ok(());
    }
    let applied: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
        .fetch_one(pool)
        .await?;
    let known = migrator.iter().map(|m| m.version).max().unwrap_or(0);
    match applied {
        Some(applied) if applied > known => Err(Error::invalid(
            "registry database",
            format!(
                "its schema is version {applied}, newer than this modelwatch knows \
                 (up to {known}); it was migrated by a newer modelwatch, run that \
                 version or a later one"
            ),
        )),
        _ => Ok(()),
    }
}
