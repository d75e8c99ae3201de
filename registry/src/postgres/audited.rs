//! Where a change runs on PostgreSQL: a transaction of its own on a pooled
//! connection ([`PgStore::transaction`]); the shared `audited`
//! (`sql/tx.rs`) adds the change's audit entries. The first entry locks
//! the audit chain's head row (`audit_head`, `FOR UPDATE`, held until
//! commit), so changes from any number of daemons append to one chain in
//! commit order (seq order), while what comes before their first entry
//! (reads, row locks, the moves conditional on what was read) runs
//! concurrently. A change locks the rows it modifies before its first
//! entry where it can (lock order: rows, then the head); a deadlock
//! PostgreSQL detects otherwise is [`crate::Error::Busy`]. A change that
//! fails is rolled back with its entries.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use futures::future::BoxFuture;
use sqlx::PgConnection;

use super::PgStore;
use super::error::transient;
use crate::error::Result;
use crate::roles::RegistryStats;

/// Running totals behind [`PgStore`]'s [`RegistryStats`]: one transaction
/// per change here, so `transactions` counts committed changes.
#[derive(Default)]
pub(super) struct Counters {
    transactions: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
    last_commit_micros: AtomicU64,
}

impl Counters {
    pub(super) fn stats(&self) -> RegistryStats {
        let committed = self.transactions.load(Ordering::Relaxed);
        RegistryStats {
            transactions: committed,
            changes_committed: committed,
            changes_rejected: self.rejected.load(Ordering::Relaxed),
            changes_failed: self.failed.load(Ordering::Relaxed),
            last_commit_micros: self.last_commit_micros.load(Ordering::Relaxed),
        }
    }
}

impl PgStore {
    /// A pooled connection for a read.
    pub(super) async fn reader(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>> {
        Ok(self.pool.acquire().await?)
    }

    /// The figures behind [`crate::roles::Views::stats`].
    pub(super) fn change_stats(&self) -> RegistryStats {
        self.counters.stats()
    }

    /// Runs `change` in a transaction of its own and returns its result
    /// once committed; a change that fails is rolled back.
    pub(super) async fn transaction<T, F>(&self, change: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut PgConnection) -> BoxFuture<'c, Result<T>> + Send + 'static,
    {
        let counters = &self.counters;
        let outcome = async {
            let mut tx = self.pool.begin().await?;
            let changed = match super::cluster::check_fence(&mut tx, self.fence.as_deref()).await {
                Ok(()) => change(&mut tx).await,
                Err(e) => Err(e),
            };
            let value = match changed {
                Ok(value) => value,
                Err(e) => {
                    counters.rejected.fetch_add(1, Ordering::Relaxed);
                    // Dropping the transaction would roll it back too, but
                    // later: give the connection back clean now.
                    let _ = tx.rollback().await;
                    return Err(e);
                }
            };
            let started = Instant::now();
            let commit = tx.commit().await;
            counters.last_commit_micros.store(
                u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
            match commit {
                Ok(()) => {
                    counters.transactions.fetch_add(1, Ordering::Relaxed);
                    Ok(value)
                }
                Err(e) => {
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                    Err(e.into())
                }
            }
        };
        outcome.await.map_err(transient)
    }

    /// Runs a read on a pooled connection, with PostgreSQL's transient
    /// failures reported as [`crate::Error::Busy`].
    pub(super) async fn read<T>(
        &self,
        body: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        body.await.map_err(transient)
    }
}
