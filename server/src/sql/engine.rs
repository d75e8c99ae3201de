//! Where SQL runs: a runtime of its own, a memory pool of its own, and a
//! boundary that turns every way a query can go wrong into an answer.
//!
//! Every statement — parse, nesting check, plan, execution — runs as a task
//! on the SQL runtime ([`SqlEngine::run`]), never on the runtime serving
//! HTTP, OTLP and PostgreSQL connections:
//!
//! - its threads have [`SQL_THREAD_STACK_BYTES`] of stack (reserved, only
//!   touched pages cost memory), enough for the deepest statement the guard
//!   lets through, and run at a lower priority so ingestion acknowledgements
//!   win a contended core;
//! - the caller waits with the query's timeout; when it expires the task is
//!   aborted, which stops execution at DataFusion's next yield, and a result
//!   that arrives after the deadline is still a timeout;
//! - a panic inside DataFusion ends only its task and becomes
//!   [`SqlError::Internal`];
//! - operators (sorts, aggregations, joins) and the collected result draw
//!   on one memory pool of `--sql-memory-limit` bytes shared by every query;
//!   past it a query fails with [`QueryFault::Resources`], the daemon does not
//!   grow.

use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::execution::memory_pool::{
    GreedyMemoryPool, MemoryConsumer, MemoryPool, TrackConsumersPool,
};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::Statement as DfStatement;
use futures::StreamExt;

use modelwatch_history::HistoryStore;
use modelwatch_registry::RegistryStore;

use super::{QueryResult, SqlError, guard};

/// Stack of each SQL thread. Measured: the deepest statement the guard
/// accepts plans in a fraction of it, and the deepest text within
/// [`guard::MAX_SQL_BYTES`] parses and is refused within it (debug build,
/// `guard::tests`).
pub const SQL_THREAD_STACK_BYTES: usize = 256 << 20;

/// Nice value of the SQL threads: a heavy query yields the core to
/// ingestion and the API when both want it.
pub const SQL_THREAD_NICE: i32 = 5;

/// Limits every query runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqlLimits {
    /// Longest a statement may take, planning included.
    pub timeout: Duration,
    /// The memory pool shared by all queries (`--sql-memory-limit`).
    pub memory_bytes: usize,
}

/// The SQL runtime, shut down without blocking when the engine goes (it may
/// be dropped inside another runtime).
struct SqlRuntime(Option<tokio::runtime::Runtime>);

impl Drop for SqlRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// The SQL engine shared by `POST /api/v1/sql`, the PostgreSQL listener and
/// `modelwatch bench sql`.
pub struct SqlEngine {
    runtime: SqlRuntime,
    handle: tokio::runtime::Handle,
    env: Arc<RuntimeEnv>,
    history: HistoryStore,
    registry: Arc<dyn RegistryStore>,
    pub limits: SqlLimits,
}

impl std::fmt::Debug for SqlEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlEngine")
            .field("limits", &self.limits)
            .finish()
    }
}

fn lower_priority() {
    let tid = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(tid), SQL_THREAD_NICE) {
        tracing::debug!(error = %e, "cannot lower a SQL thread's priority");
    }
}

impl SqlEngine {
    /// Starts the SQL runtime (one worker per core) and the memory pool.
    pub fn new(
        history: HistoryStore,
        registry: Arc<dyn RegistryStore>,
        limits: SqlLimits,
    ) -> Result<Self, SqlError> {
        let workers = std::thread::available_parallelism().map_or(2, NonZeroUsize::get);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .max_blocking_threads(workers * 2)
            .thread_name("sql")
            .thread_stack_size(SQL_THREAD_STACK_BYTES)
            .on_thread_start(lower_priority)
            .enable_all()
            .build()
            .map_err(|e| SqlError::Internal(format!("cannot start the SQL runtime: {e}")))?;
        let handle = runtime.handle().clone();
        let top = NonZeroUsize::new(3).unwrap_or(NonZeroUsize::MIN);
        let pool: Arc<dyn MemoryPool> = Arc::new(TrackConsumersPool::new(
            GreedyMemoryPool::new(limits.memory_bytes),
            top,
        ));
        let env = RuntimeEnvBuilder::new()
            .with_memory_pool(pool)
            .build_arc()
            .map_err(|e| SqlError::Internal(format!("cannot set up the SQL memory pool: {e}")))?;
        Ok(Self {
            runtime: SqlRuntime(Some(runtime)),
            handle,
            env,
            history,
            registry,
            limits,
        })
    }

    /// Bytes currently reserved in the memory pool (for `/metrics`).
    pub fn memory_reserved(&self) -> usize {
        self.env.memory_pool.reserved()
    }

    /// A fresh context on the shared memory pool with every history table,
    /// registry view and guarded function registered.
    pub fn session(&self) -> Result<SessionContext, SqlError> {
        let config = SessionConfig::new()
            .with_information_schema(true)
            .with_default_catalog_and_schema(super::CATALOG, "public");
        let ctx = SessionContext::new_with_config_rt(config, self.env.clone());
        super::register_tables(&ctx, &self.history, &self.registry)?;
        super::functions::register(&ctx);
        Ok(ctx)
    }

    /// Runs `work` on the SQL runtime within `timeout` (see the module
    /// docs). Whatever `work` does, the caller gets an answer.
    pub async fn run<T, F>(&self, timeout: Duration, work: F) -> Result<T, SqlError>
    where
        F: Future<Output = Result<T, SqlError>> + Send + 'static,
        T: Send + 'static,
    {
        let _alive = &self.runtime;
        let started = Instant::now();
        let task = self.handle.spawn(work);
        let abort = task.abort_handle();
        let outcome = tokio::time::timeout(timeout, task).await;
        match outcome {
            Err(_) => {
                abort.abort();
                Err(SqlError::Timeout(timeout))
            }
            Ok(Err(e)) if e.is_panic() => {
                let panic = e.into_panic();
                let message = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("(no message)");
                Err(SqlError::Internal(format!("the query panicked: {message}")))
            }
            Ok(Err(e)) => Err(SqlError::Internal(format!("the query task ended: {e}"))),
            // Finished, but only just after the deadline: still a timeout, so
            // a limit means the same whichever side of the race won.
            Ok(Ok(_)) if started.elapsed() > timeout => Err(SqlError::Timeout(timeout)),
            Ok(Ok(result)) => result,
        }
    }

    /// Parses, checks, plans and runs one read-only SQL text (DataFusion's
    /// dialect) with a row limit, on the SQL runtime.
    pub async fn query(
        &self,
        sql: String,
        limit: usize,
        timeout: Duration,
    ) -> Result<QueryResult, SqlError> {
        guard::check_length(&sql)?;
        let ctx = self.session()?;
        self.run(timeout, async move {
            let state = ctx.state();
            let dialect = state.config().options().sql_parser.dialect;
            let statement = state.sql_to_statement(&sql, &dialect)?;
            if let DfStatement::Statement(s) = &statement {
                guard::check_depth(s)?;
            }
            let plan = state.statement_to_plan(statement).await?;
            super::check_read_only(&plan)?;
            execute(&ctx, plan, limit).await
        })
        .await
    }

    /// Runs a plan made on `ctx` (the PostgreSQL listener plans itself) on
    /// the SQL runtime, under the same rules as [`SqlEngine::query`].
    pub async fn run_plan(
        &self,
        ctx: Arc<SessionContext>,
        plan: LogicalPlan,
        limit: usize,
        timeout: Duration,
    ) -> Result<QueryResult, SqlError> {
        super::check_read_only(&plan)?;
        self.run(timeout, async move { execute(&ctx, plan, limit).await })
            .await
    }
}

/// Executes a checked plan, keeping at most `limit` rows; the collected rows
/// are reserved in the memory pool as they arrive.
async fn execute(
    ctx: &SessionContext,
    plan: LogicalPlan,
    limit: usize,
) -> Result<QueryResult, SqlError> {
    // EXPLAIN [ANALYZE] must stay the root of its plan; its few rows are
    // cut to the limit below like any other result.
    let explain = matches!(plan, LogicalPlan::Explain(_) | LogicalPlan::Analyze(_));
    let df = ctx.execute_logical_plan(plan).await?;
    let schema = Arc::new(df.schema().as_arrow().clone());
    let df = if explain {
        df
    } else {
        df.limit(0, Some(limit.saturating_add(1)))?
    };
    let memory = MemoryConsumer::new("query result").register(&ctx.runtime_env().memory_pool);
    let mut stream = df.execute_stream().await?;
    let mut batches = Vec::new();
    let mut rows = 0usize;
    let mut truncated = false;
    while let Some(batch) = stream.next().await {
        let mut batch = batch?;
        if rows + batch.num_rows() > limit {
            batch = batch.slice(0, limit - rows);
            truncated = true;
        }
        if batch.num_rows() == 0 {
            continue;
        }
        memory.try_grow(batch.get_array_memory_size())?;
        rows += batch.num_rows();
        batches.push(batch);
        if truncated {
            break;
        }
    }
    Ok(QueryResult {
        schema,
        batches,
        truncated,
        _memory: Some(memory),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::QueryFault;
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::Int64Type;

    async fn engine(memory_bytes: usize) -> (SqlEngine, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let history = HistoryStore::open(
            dir.path().join("history"),
            crate::telemetry::table_defs(crate::telemetry::DEFAULT_RETENTION),
            modelwatch_history::HistoryConfig::default(),
        )
        .await
        .unwrap();
        let registry: Arc<dyn RegistryStore> = Arc::new(
            modelwatch_registry::SqliteStore::open(&dir.path().join("registry.sqlite"))
                .await
                .unwrap(),
        );
        let engine = SqlEngine::new(
            history,
            registry,
            SqlLimits {
                timeout: Duration::from_secs(30),
                memory_bytes,
            },
        )
        .unwrap();
        (engine, dir)
    }

    fn fault(e: SqlError) -> QueryFault {
        match e {
            SqlError::Query { fault, .. } => fault,
            other => panic!("expected a query fault, got {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_deepest_accepted_statement_plans_and_runs() {
        let (engine, _dir) = engine(256 << 20).await;
        let terms = guard::MAX_SQL_DEPTH - 2;
        let sql = format!("SELECT {} AS n", vec!["1"; terms].join("+"));
        let result = engine
            .query(sql, 10, Duration::from_secs(60))
            .await
            .unwrap();
        let n = result.batches[0].column(0).as_primitive::<Int64Type>();
        assert_eq!(n.value(0), terms as i64);
        let too_deep = format!("SELECT {}", vec!["1"; 2_000].join("+"));
        let e = engine
            .query(too_deep, 10, Duration::from_secs(60))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("nests more than"), "{e}");
        assert_eq!(fault(e), QueryFault::Limit);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_timeout_answers_on_time_and_a_late_result_is_still_a_timeout() {
        let (engine, _dir) = engine(256 << 20).await;
        let limit = Duration::from_millis(500);
        let started = Instant::now();
        let e = engine
            .query("SELECT count(*) FROM range(100000000000)".into(), 10, limit)
            .await
            .unwrap_err();
        assert!(matches!(e, SqlError::Timeout(_)), "{e:?}");
        assert!(
            started.elapsed() < limit + Duration::from_millis(400),
            "answered after {:?}",
            started.elapsed()
        );
        // A task that finishes just past its deadline is a timeout too.
        let late = engine
            .run(Duration::from_millis(100), async {
                std::thread::sleep(Duration::from_millis(300));
                Ok(1)
            })
            .await;
        assert!(matches!(late, Err(SqlError::Timeout(_))), "{late:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panic_becomes_an_internal_error() {
        let (engine, _dir) = engine(256 << 20).await;
        let e = engine
            .run(Duration::from_secs(5), async {
                if true {
                    panic!("planner bug");
                }
                Ok(())
            })
            .await
            .unwrap_err();
        assert!(
            matches!(&e, SqlError::Internal(m) if m.contains("planner bug")),
            "{e:?}"
        );
        // The engine still answers.
        engine
            .query("SELECT 1".into(), 10, Duration::from_secs(5))
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn results_count_against_the_memory_pool() {
        let (engine, _dir) = engine(16 << 20).await;
        // Limits far above what the queries need: only memory can stop them.
        let roomy = |sql: &str| engine.query(sql.into(), 1_000_000, Duration::from_secs(60));
        let e = roomy("SELECT repeat(CAST(value AS VARCHAR), 100) FROM range(1000000)")
            .await
            .unwrap_err();
        assert_eq!(fault(e), QueryFault::Resources);
        // The failed query's operators are torn down as their tasks end.
        let deadline = Instant::now() + Duration::from_secs(10);
        while engine.memory_reserved() != 0 {
            assert!(
                Instant::now() < deadline,
                "a failed query keeps {} bytes reserved",
                engine.memory_reserved()
            );
            tokio::task::yield_now().await;
        }
        let ok = roomy("SELECT value FROM range(1000)").await.unwrap();
        assert!(
            engine.memory_reserved() > 0,
            "a held result keeps its share"
        );
        drop(ok);
        assert_eq!(engine.memory_reserved(), 0);
    }
}
