//! The one shape of a registry change on SQLite: its statements and its
//! audit entries in one transaction on the writer.
//!
//! [`SqliteStore::audited`] queues the change on the group-commit writer
//! (it runs inside its own savepoint of the next group transaction, see
//! [`super::writer`]) and hands it a [`Tx`]: the connection, the time of
//! the change, the actor and the alias protection. The change records its
//! audit entries with [`Tx::audit`], which links each one into the chain
//! ([`crate::rules::audit::link`]) inside the same transaction. A change
//! that fails is rolled back with its entries; nothing is half-written.
//!
//! The arguments the change needs travel as one owned value (`args`),
//! because the change runs later, on the writer's task.

use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::Value;
use sqlx::SqliteConnection;

use super::SqliteStore;
use crate::error::Result;
use crate::protection::AliasProtection;
use crate::rules::audit;
use crate::types::Actor;

/// A change in progress inside the writer's transaction.
pub(super) struct Tx<'c> {
    pub(super) conn: &'c mut SqliteConnection,
    /// The time of the change, in the stored textual form; every row and
    /// audit entry it writes carries this one time.
    pub(super) now: String,
    pub(super) actor: Actor,
    pub(super) protection: Arc<AliasProtection>,
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
        append_audit(
            &mut *self.conn,
            &self.now,
            &self.actor.name,
            action,
            target,
            before,
            after,
        )
        .await
    }
}

impl SqliteStore {
    /// Runs `change` (given a [`Tx`] and `args`) in the writer's next group
    /// transaction and returns its result once that transaction has
    /// committed, with the audit entries it recorded.
    pub(super) async fn audited<A, T, F>(&self, actor: &Actor, args: A, change: F) -> Result<T>
    where
        A: Send + 'static,
        T: Send + 'static,
        F: for<'c> FnOnce(Tx<'c>, A) -> BoxFuture<'c, Result<T>> + Send + 'static,
    {
        let now = self.now();
        let actor = actor.clone();
        let protection = self.protection.clone();
        self.writer
            .run(move |conn| {
                change(
                    Tx {
                        conn,
                        now,
                        actor,
                        protection,
                    },
                    args,
                )
            })
            .await
    }
}

/// Appends one entry to the audit chain inside the caller's transaction.
async fn append_audit(
    conn: &mut SqliteConnection,
    at: &str,
    actor: &str,
    action: &str,
    target: &str,
    before: Option<Value>,
    after: Option<Value>,
) -> Result<()> {
    let last: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *conn)
            .await?;
    let link = audit::link(
        last,
        at,
        actor,
        action,
        target,
        before.as_ref(),
        after.as_ref(),
    );
    sqlx::query(
        "INSERT INTO audit_log (seq, at, actor, action, target, before, after, prev_hash, hash)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(link.seq)
    .bind(at)
    .bind(actor)
    .bind(action)
    .bind(target)
    .bind(before.map(|v| v.to_string()))
    .bind(after.map(|v| v.to_string()))
    .bind(&link.prev_hash)
    .bind(&link.hash)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
