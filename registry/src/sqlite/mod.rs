//! The embedded SQLite backend: every SQL statement of the registry.
//!
//! One writer connection (SQLite serialises writers anyway; one connection
//! means no `SQLITE_BUSY` between our own writers, and version numbers are
//! handed out inside that single write transaction) and a small pool of
//! readers. WAL journal mode, `synchronous = FULL`: a change is answered only
//! after it is durable.
//!
//! Layout: the role implementations, row readers and filter renderer are
//! shared with PostgreSQL (`src/sql/`, declared here by
//! [`crate::sql_backend_modules`]); what is SQLite's own is [`writer`] (the
//! group-commit writer), [`audited`] (where a change and a read run) and
//! [`dialect`] (types, SQL fragments, no-op locks). The rules every backend
//! shares ([`crate::rules`]) are called, never restated.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, SqliteConnection, SqlitePool};

use crate::error::{Error, Result};
use crate::protection::AliasProtection;
use crate::{Clock, SystemClock};

#[macro_use]
mod dialect;

mod audited;

mod writer;

crate::sql_backend_modules!();

#[cfg(test)]
mod tests;

use writer::Writer;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The database error carried by [`Error::Database`] (sqlx's, for both
/// backends).
pub type DatabaseError = sqlx::Error;
/// The migration error carried by [`Error::Migration`].
pub type MigrateError = sqlx::migrate::MigrateError;

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        match e {
            // Every pooled connection stayed busy past the acquire timeout:
            // load, not a fault, so callers can tell the client to retry.
            sqlx::Error::PoolTimedOut => Error::Busy,
            e => Error::Database(e),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for Error {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        Error::Migration(e)
    }
}

/// The registry on an embedded SQLite database file.
#[derive(Clone)]
pub struct SqliteStore {
    writer: Writer,
    writer_task: Arc<std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
    read: SqlitePool,
    clock: Arc<dyn Clock>,
    protection: Arc<AliasProtection>,
    /// Set on the store a background duty writes through: every
    /// transaction first checks the duty's lease ([`crate::cluster`]).
    fence: Option<Arc<crate::cluster::DutyFence>>,
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
            fence: None,
        })
    }

    /// Writes a consistent copy of the database file `db` to `into`
    /// (`VACUUM INTO`, through a read-only connection of its own) while
    /// the daemon keeps writing: the copy is the database as of one
    /// committed transaction, compacted. `into` must not exist.
    pub async fn snapshot(db: &Path, into: &Path) -> Result<()> {
        let target = into.to_str().ok_or_else(|| {
            Error::invalid("backup", format!("{} is not a UTF-8 path", into.display()))
        })?;
        let options = SqliteConnectOptions::new()
            .filename(db)
            .read_only(true)
            .busy_timeout(Duration::from_secs(10));
        let mut conn = SqliteConnection::connect_with(&options).await?;
        sqlx::query("VACUUM INTO ?")
            .bind(target)
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        Ok(())
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
