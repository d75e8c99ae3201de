//! Group commit for the SQLite registry.
//!
//! Every change runs on one writer connection, owned by one task. The task
//! takes all changes queued while the previous commit was being fsynced and
//! runs them in a single transaction, each inside its own savepoint: a change
//! that fails is rolled back alone, the others commit together with one
//! fsync. A caller is answered only after the commit that holds its change,
//! so "acknowledged" still means "durable" — at a fraction of the fsyncs
//! when many clients write at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use futures::future::BoxFuture;
use sqlx::SqliteConnection;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::roles::RegistryStats;

/// Most changes in one transaction; bounds the latency of the first one.
const MAX_BATCH: usize = 256;

/// Called once the transaction holding a change has committed (`None`) or
/// failed to commit (`Some(reason)`).
type Finish = Box<dyn FnOnce(Option<String>) + Send>;
/// A change: runs its statements and says whether it succeeded.
type Job =
    Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, (bool, Finish)> + Send>;

enum Message {
    Change(Job),
    /// Finish what is queued, then stop.
    Stop,
}

#[derive(Clone)]
pub(crate) struct Writer {
    jobs: mpsc::Sender<Message>,
    counters: Arc<Counters>,
}

/// Running totals of the writer, read by [`Writer::stats`].
#[derive(Default)]
struct Counters {
    transactions: AtomicU64,
    committed: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
    last_commit_micros: AtomicU64,
}

impl Writer {
    /// Starts the writer task on `conn`; it ends when every `Writer` is dropped.
    pub(crate) fn spawn(conn: SqliteConnection) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(run_writer(conn, rx, counters.clone()));
        (Self { jobs: tx, counters }, task)
    }

    pub(crate) fn stats(&self) -> RegistryStats {
        let c = &self.counters;
        RegistryStats {
            transactions: c.transactions.load(Ordering::Relaxed),
            changes_committed: c.committed.load(Ordering::Relaxed),
            changes_rejected: c.rejected.load(Ordering::Relaxed),
            changes_failed: c.failed.load(Ordering::Relaxed),
            last_commit_micros: c.last_commit_micros.load(Ordering::Relaxed),
        }
    }

    /// Runs `change` in the next group transaction and returns its result
    /// once that transaction has committed.
    pub(crate) async fn run<T, F>(&self, change: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T>> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel::<Result<T>>();
        let job: Job = Box::new(move |conn| {
            Box::pin(async move {
                let result = change(conn).await;
                let ok = result.is_ok();
                let finish: Finish = Box::new(move |commit_failure| {
                    let _ = reply.send(match commit_failure {
                        None => result,
                        Some(reason) => Err(Error::CommitFailed(reason)),
                    });
                });
                (ok, finish)
            })
        });
        self.jobs
            .send(Message::Change(job))
            .await
            .map_err(|_| Error::WriterStopped)?;
        answer.await.map_err(|_| Error::WriterStopped)?
    }

    /// Asks the writer to commit what is queued and stop.
    pub(crate) async fn shutdown(&self) {
        let _ = self.jobs.send(Message::Stop).await;
    }
}

async fn exec(
    conn: &mut SqliteConnection,
    sql: &'static str,
) -> std::result::Result<(), sqlx::Error> {
    sqlx::query(sql).execute(conn).await.map(drop)
}

async fn run_writer(
    mut conn: SqliteConnection,
    mut rx: mpsc::Receiver<Message>,
    counters: Arc<Counters>,
) {
    let mut stopping = false;
    while !stopping {
        let mut batch = Vec::new();
        match rx.recv().await {
            Some(Message::Change(job)) => batch.push(job),
            Some(Message::Stop) | None => stopping = true,
        }
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(Message::Change(job)) => batch.push(job),
                Ok(Message::Stop) => stopping = true,
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            continue;
        }
        if let Err(e) = exec(&mut conn, "BEGIN IMMEDIATE").await {
            // Dropping the jobs answers their callers with WriterStopped.
            tracing::error!(error = %e, changes = batch.len(), "cannot begin a registry transaction");
            continue;
        }
        let mut committed = Vec::with_capacity(batch.len());
        for job in batch {
            if let Err(e) = exec(&mut conn, "SAVEPOINT change").await {
                tracing::error!(error = %e, "cannot open a savepoint");
                continue;
            }
            let (ok, finish) = job(&mut conn).await;
            let closed = if ok {
                exec(&mut conn, "RELEASE change").await
            } else {
                match exec(&mut conn, "ROLLBACK TO change").await {
                    Ok(()) => exec(&mut conn, "RELEASE change").await,
                    Err(e) => Err(e),
                }
            };
            match (ok, closed) {
                (true, Ok(())) => committed.push(finish),
                // A failed change is answered at once: it wrote nothing.
                (false, Ok(())) => {
                    counters.rejected.fetch_add(1, Ordering::Relaxed);
                    finish(None)
                }
                (_, Err(e)) => {
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                    finish(Some(format!("savepoint failed: {e}")))
                }
            }
        }
        let started = Instant::now();
        let commit = exec(&mut conn, "COMMIT").await;
        counters.last_commit_micros.store(
            u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        match commit {
            Ok(()) => {
                counters.transactions.fetch_add(1, Ordering::Relaxed);
                counters
                    .committed
                    .fetch_add(committed.len() as u64, Ordering::Relaxed);
                committed.into_iter().for_each(|f| f(None))
            }
            Err(e) => {
                counters
                    .failed
                    .fetch_add(committed.len() as u64, Ordering::Relaxed);
                tracing::error!(error = %e, "registry commit failed");
                let _ = exec(&mut conn, "ROLLBACK").await;
                let reason = e.to_string();
                committed.into_iter().for_each(|f| f(Some(reason.clone())));
            }
        }
    }
    let _ = sqlx::Connection::close(conn).await;
}
