//! The PostgreSQL backend: every SQL statement of the registry, for any
//! number of daemons sharing one database.
//!
//! A pool of connections with limits the caller chooses
//! ([`PoolLimits`]); each change is one transaction of its own
//! ([`audited`]: its statements and its audit entries). Unlike SQLite,
//! several processes write at once, so what the single SQLite writer gave
//! for free is held by locks here:
//! - a change locks the rows it reads and then modifies (`FOR UPDATE`,
//!   `FOR SHARE` on a version it points something at) before writing;
//! - its first audit entry locks the audit chain's head row (`audit_head`,
//!   `FOR UPDATE`) until it commits, so appends are serialised and entries
//!   commit in `seq` order (the outbox never skips one);
//! - a version number is taken from the model row locked `FOR UPDATE` in
//!   the transaction that inserts the version (unique and gapless even
//!   without the head lock);
//! - alias moves are conditional on the version the change read, so two
//!   concurrent rollbacks give one move and one conflict.
//!
//! Stored forms are SQLite's: timestamps are RFC 3339 text with
//! microseconds and JSON fields are text, so records, views and the audit
//! chain read and hash the same on both backends. Time always comes from
//! the injected [`Clock`], never from the database's `now()`.
//!
//! Layout: the role implementations, row readers and filter renderer are
//! shared with SQLite (`src/sql/`, declared here by
//! [`crate::sql_backend_modules`]); what is PostgreSQL's own is
//! [`audited`] (a transaction per change), [`dialect`] (types, SQL
//! fragments, the locks) and [`error`] (its failures mapped onto the
//! registry's errors). The rules every backend shares ([`crate::rules`])
//! are called, never restated.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::Clock;
use crate::error::{Error, Result};
use crate::protection::AliasProtection;

#[macro_use]
mod dialect;

mod audited;
mod error;
mod import;

pub use import::{ImportProgress, ImportReport};

crate::sql_backend_modules!();

#[cfg(test)]
mod tests;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations_postgres");

/// How many connections a [`PgStore`] may hold, and how long a request
/// waits for one before it is answered [`Error::Busy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolLimits {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for PoolLimits {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// The registry on a PostgreSQL database.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    clock: Arc<dyn Clock>,
    protection: Arc<AliasProtection>,
    /// Set on the store a background duty writes through: every
    /// transaction first checks the duty's lease ([`crate::cluster`]).
    fence: Option<Arc<crate::cluster::DutyFence>>,
    counters: Arc<audited::Counters>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/db`,
    /// with libpq's parameters such as `sslmode`), checks that its schema
    /// is not newer than this binary, and applies the missing migrations
    /// (several daemons starting at once migrate once: sqlx holds an
    /// advisory lock meanwhile).
    /// Whether `url` names a PostgreSQL database (`postgres://` or
    /// `postgresql://`), as [`PgStore::connect`] requires.
    pub fn accepts_url(url: &str) -> bool {
        ["postgres://", "postgresql://"]
            .iter()
            .any(|scheme| url.starts_with(scheme))
    }

    pub async fn connect(url: &str, limits: PoolLimits, clock: Arc<dyn Clock>) -> Result<Self> {
        // sqlx parses any scheme; another database's URL is a mistake to
        // name, not to try. (The URL is not echoed: it may hold a password.)
        if !Self::accepts_url(url) {
            return Err(Error::invalid(
                "registry URL",
                "not a PostgreSQL URL: expected postgres://user@host:port/database",
            ));
        }
        let options: PgConnectOptions = url
            .parse()
            .map_err(|e| Error::invalid("registry URL", format!("not a PostgreSQL URL: {e}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(limits.max_connections)
            .acquire_timeout(limits.acquire_timeout)
            .connect_with(options.clone())
            .await
            .map_err(|e| error::unreachable(&options, e))?;
        error::refuse_newer_schema(&pool, &MIGRATOR).await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self {
            pool,
            clock,
            protection: Arc::new(AliasProtection::default()),
            fence: None,
            counters: Arc::default(),
        })
    }

    /// Waits for the changes in flight and closes every connection; later
    /// calls on this store (and its clones) fail with
    /// [`Error::WriterStopped`].
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
