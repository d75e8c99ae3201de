//! A registry change in progress on the SQL backends: its connection (inside
//! the change's transaction), its time, its actor, and the audit entries it
//! appends.
//!
//! Each backend's `audited` opens the transaction and hands the change a
//! [`Tx`]; the change records its audit entries with [`Tx::audit`], each
//! linked after the chain's last entry ([`crate::rules::audit::link`]) in the
//! same transaction, so a change that fails is rolled back with its entries.
//! Before its first entry a change takes the backend's chain-head lock
//! (`super::lock_audit_head`: a row lock on PostgreSQL, nothing on SQLite,
//! whose single writer already serialises changes), so appends from any
//! number of daemons form one chain in commit order.
//!
//! Also here: the store methods every SQL backend offers alike (a fenced
//! clone, the alias protection, the time of a change).

use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::Value;

use super::dialect::{DbConn, Store, lock_audit_head};
use crate::error::Result;
use crate::protection::AliasProtection;
use crate::rules::audit;
use crate::types::Actor;

/// A change in progress inside its transaction.
pub(super) struct Tx<'c> {
    pub(super) conn: &'c mut DbConn,
    /// The time of the change, in the stored textual form; every row and
    /// audit entry it writes carries this one time.
    pub(super) now: String,
    pub(super) actor: Actor,
    pub(super) protection: Arc<AliasProtection>,
    /// Whether this transaction holds the chain head's lock yet.
    head_locked: bool,
}

impl<'c> Tx<'c> {
    pub(super) fn new(
        conn: &'c mut DbConn,
        now: String,
        actor: Actor,
        protection: Arc<AliasProtection>,
    ) -> Self {
        Self {
            conn,
            now,
            actor,
            protection,
            head_locked: false,
        }
    }

    /// Appends one audit entry for this change, chained after the last one.
    pub(super) async fn audit(
        &mut self,
        action: &str,
        target: &str,
        before: Option<Value>,
        after: Option<Value>,
    ) -> Result<()> {
        if !self.head_locked {
            lock_audit_head(&mut *self.conn).await?;
            self.head_locked = true;
        }
        // The head lock is held, and each statement sees everything
        // committed before it: this is the chain's true last entry.
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

impl Store {
    /// A clone whose every transaction is refused ([`Error::Fenced`])
    /// unless this daemon still holds `fence`'s duty with the token it got:
    /// what a background duty writes through ([`crate::cluster`]).
    ///
    /// [`Error::Fenced`]: crate::Error::Fenced
    pub fn fenced(&self, fence: Arc<crate::cluster::DutyFence>) -> Self {
        Self {
            fence: Some(fence),
            ..self.clone()
        }
    }

    /// Which aliases need `approver` ([`AliasProtection`]; default
    /// `production` and `champion`).
    pub fn with_alias_protection(mut self, protection: AliasProtection) -> Self {
        self.protection = Arc::new(protection);
        self
    }

    /// The time of a change now, in the stored textual form.
    pub(super) fn now(&self) -> String {
        crate::audit::format_time(self.clock.now())
    }

    /// Runs `change` (given a [`Tx`] and `args`) in a transaction of its
    /// own (on SQLite: in the writer's next group transaction) and returns
    /// its result once that transaction has committed with the audit
    /// entries it recorded. The arguments travel as one owned value because
    /// the change may run later, on another task.
    pub(super) async fn audited<A, T, F>(&self, actor: &Actor, args: A, change: F) -> Result<T>
    where
        A: Send + 'static,
        T: Send + 'static,
        F: for<'c> FnOnce(Tx<'c>, A) -> BoxFuture<'c, Result<T>> + Send + 'static,
    {
        let now = self.now();
        let actor = actor.clone();
        let protection = self.protection.clone();
        self.transaction(move |conn| change(Tx::new(conn, now, actor, protection), args))
            .await
    }
}
