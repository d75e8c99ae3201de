//! Where a change runs on SQLite: in its own savepoint of the group-commit
//! writer's next transaction (see [`super::writer`]); reads run on the
//! read-only pool. The shared `audited` (`sql/tx.rs`) wraps
//! [`SqliteStore::transaction`] with the change's audit entries, so a
//! change that fails is rolled back with its entries and nothing is
//! half-written.

use futures::future::BoxFuture;
use sqlx::SqliteConnection;

use super::SqliteStore;
use crate::error::Result;
use crate::roles::RegistryStats;

impl SqliteStore {
    /// Runs `change` in the writer's next group transaction, without audit
    /// entries (the operational records: deliveries, the outbox cursor).
    pub(super) async fn transaction<T, F>(&self, change: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T>> + Send + 'static,
    {
        let fence = self.fence.clone();
        self.writer
            .run(move |conn| {
                Box::pin(async move {
                    super::cluster::check_fence(&mut *conn, fence.as_deref()).await?;
                    change(conn).await
                })
            })
            .await
    }

    /// Runs a read (SQLite's failures need no mapping beyond
    /// `From<sqlx::Error>`).
    pub(super) async fn read<T>(
        &self,
        body: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        body.await
    }

    /// A pooled read-only connection.
    pub(super) async fn reader(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Sqlite>> {
        Ok(self.read.acquire().await?)
    }

    /// The figures behind [`crate::roles::Views::stats`]: the writer's.
    pub(super) fn change_stats(&self) -> RegistryStats {
        self.writer.stats()
    }
}
