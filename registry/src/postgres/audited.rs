//! The one shape of a registry change on PostgreSQL: its statements and its
//! audit entries in one transaction.
//!
//! [`PgStore::audited`] opens a transaction and hands the change a [`Tx`]:
//! the connection, the time of the change, the actor and the alias
//! protection. The change records its audit entries with [`Tx::audit`];
//! the first one locks the audit chain's head row (`audit_head`,
//! `FOR UPDATE`, held until commit), and each is linked after the chain's
//! last entry ([`crate::rules::audit::link`]). So changes from any number
//! of daemons append to one chain, in commit order (seq order), while
//! what comes before their first entry (reads, row locks, the moves
//! conditional on what was read) runs concurrently. A change locks the
//! rows it modifies before its first entry where it can (lock order: rows,
//! then the head); a deadlock PostgreSQL detects otherwise is
//! [`crate::Error::Busy`]. A change that fails is rolled back with its
//! entries.
//!
//! [`PgStore::transaction`] is the same without audit entries, for the
//! operational records (deliveries, the outbox cursor).
//!
//! The signature matches SQLite's `audited` (owned `args`, a boxed change),
//! so a role reads the same on both backends.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use futures::future::BoxFuture;
use serde_json::Value;
use sqlx::PgConnection;

use super::PgStore;
use super::error::transient;
use crate::error::Result;
use crate::protection::AliasProtection;
use crate::roles::RegistryStats;
use crate::rules::audit;
use crate::types::Actor;

/// A change in progress inside its transaction.
pub(super) struct Tx<'c> {
    pub(super) conn: &'c mut PgConnection,
    /// The time of the change, in the stored textual form; every row and
    /// audit entry it writes carries this one time.
    pub(super) now: String,
    pub(super) actor: Actor,
    pub(super) protection: Arc<AliasProtection>,
    /// Whether this transaction holds the chain head's lock yet.
    head_locked: bool,
}

impl Tx<'_> {
    /// Appends one audit entry for this change, chained after the last one.
    pub(super) async fn audit(
        &mut self,
        action: &str,
        target: &str,
        before: Option<Value>,
        after: Option<Value>,
    ) -> Result<()> {
        if !self.head_locked {
            sqlx::query("SELECT 1 FROM audit_head WHERE id = 1 FOR UPDATE")
                .execute(&mut *self.conn)
                .await?;
            self.head_locked = true;
        }
        // The head lock is held, and each statement of a READ COMMITTED
        // transaction sees everything committed before it: this is the
        // chain's true last entry.
        let last: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut *self.conn)
                .await?;
        let link = audit::link(
            last,
            &self.now,
            &self.actor.name,
            action,
            target,
            before.as_ref(),
            after.as_ref(),
        );
        sqlx::query(
            "INSERT INTO audit_log (seq, at, actor, action, target, before, after, prev_hash, hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(link.seq)
        .bind(&self.now)
        .bind(&self.actor.name)
        .bind(action)
        .bind(target)
        .bind(before.map(|v| v.to_string()))
        .bind(after.map(|v| v.to_string()))
        .bind(&link.prev_hash)
        .bind(&link.hash)
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }
}

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
    /// Runs `change` (given a [`Tx`] and `args`) in a transaction of its
    /// own and returns its result once that transaction has committed with
    /// the audit entries it recorded.
    pub(super) async fn audited<A, T, F>(&self, actor: &Actor, args: A, change: F) -> Result<T>
    where
        A: Send + 'static,
        T: Send + 'static,
        F: for<'c> FnOnce(Tx<'c>, A) -> BoxFuture<'c, Result<T>> + Send + 'static,
    {
        let now = self.now();
        let actor = actor.clone();
        let protection = self.protection.clone();
        self.transaction(move |conn| {
            change(
                Tx {
                    conn,
                    now,
                    actor,
                    protection,
                    head_locked: false,
                },
                args,
            )
        })
        .await
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
            let value = match change(&mut tx).await {
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
