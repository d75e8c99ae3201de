//! One connection's session: its SQL context (opened at login), the
//! PostgreSQL-dialect parser with `datafusion-postgres`'s hooks, and the
//! query handlers pgwire calls.
//!
//! Parsing (with the nesting guard), planning and execution run on the SQL
//! engine's runtime; only `SET`/`SHOW`/transaction hooks, which see shallow
//! statements, run on the connection's task.

use std::fmt::Debug;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{Set, Statement};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion_postgres::arrow_pg::datatypes::df::deserialize_parameters;
use datafusion_postgres::arrow_pg::datatypes::{
    arrow_schema_to_pg_fields, encode_recordbatch, into_pg_type,
};
use datafusion_postgres::hooks::QueryHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::pgwire;
use futures::{Sink, stream};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{FieldInfo, QueryResponse, Response};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, ErrorHandler, METADATA_USER, PgWireServerHandlers,
    RandomPidSecretKeyGenerator, Type,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::types::format::FormatOptions;
use tokio::sync::watch;
use tracing::Instrument;

use super::auth::TokenStartup;
use super::types::{wire_batch, wire_schema};
use super::{MAX_ROWS, PgState};
use crate::auth::Auth;
use crate::sql::{self, QueryFault, SqlEngine, SqlError, guard};

/// Where `datafusion-postgres`'s `SET statement_timeout` hook keeps the
/// session's timeout (milliseconds) in the client metadata.
const STATEMENT_TIMEOUT_KEY: &str = "statement_timeout_ms";

/// `SET` variables a client may change for its own session; everything else
/// (DataFusion's `datafusion.*` options above all: they would change the
/// engine's behaviour) is refused like a write.
const SESSION_SETTINGS: &[&str] = &[
    "statement_timeout",
    "datestyle",
    "intervalstyle",
    "bytea_output",
    "application_name",
    "extra_float_digits",
    "search_path",
    "timezone",
    "time zone",
    "client_encoding",
    "client_min_messages",
    "standard_conforming_strings",
];

/// What pgwire stores per prepared statement: the text and, unless empty,
/// the parsed statement with its plan (the shape `datafusion-postgres`'s
/// hooks expect).
type Prepared = (String, Option<(Statement, LogicalPlan)>);

/// The state one connection's handlers share.
pub(super) struct SessionCore {
    state: Arc<PgState>,
    /// Opened by a successful login ([`SessionCore::open`]).
    ctx: OnceLock<Arc<SessionContext>>,
    /// Turns true at login; the listener's startup timeout watches it.
    authenticated: watch::Sender<bool>,
    /// True while a query runs, for the graceful stop.
    busy: watch::Sender<bool>,
    hooks: Vec<Arc<dyn QueryHook>>,
}

impl SessionCore {
    /// Opens the session's own context over the shared catalogue.
    pub fn open(&self) {
        self.ctx
            .get_or_init(|| Arc::new(self.state.catalog.session()));
        self.authenticated.send_replace(true);
    }

    fn ctx(&self) -> PgWireResult<Arc<SessionContext>> {
        self.ctx.get().cloned().ok_or_else(|| {
            user_error(
                "28000",
                "the session is not authenticated; log in with a modelwatch token as password",
            )
        })
    }

    fn engine(&self) -> &Arc<SqlEngine> {
        &self.state.sql
    }

    /// The session's `statement_timeout`, never above the server's.
    fn timeout(&self, client: &(impl ClientInfo + ?Sized)) -> Duration {
        let max = self.engine().limits.timeout;
        client
            .metadata()
            .get(STATEMENT_TIMEOUT_KEY)
            .and_then(|ms| ms.parse::<u64>().ok())
            .map(Duration::from_millis)
            .filter(|t| !t.is_zero())
            .map_or(max, |t| t.min(max))
    }

    /// Parses a text on the SQL runtime: length and nesting are checked on
    /// a plain PostgreSQL-dialect parse before `datafusion-postgres`'s
    /// compatibility parser rewrites the statements.
    async fn parse(&self, sql: &str, timeout: Duration) -> PgWireResult<Vec<Statement>> {
        guard::check_length(sql).map_err(|e| pg_error(e.into()))?;
        let sql = sql.to_owned();
        let compat = self.state.catalog.parser();
        self.engine()
            .run(timeout, async move {
                if let Ok(plain) = datafusion::sql::sqlparser::parser::Parser::parse_sql(
                    &PostgreSqlDialect {},
                    &sql,
                ) {
                    for statement in &plain {
                        guard::check_depth(statement)?;
                    }
                }
                let statements = compat.parse(&sql).map_err(|e| {
                    SqlError::from(datafusion::error::DataFusionError::SQL(Box::new(e), None))
                })?;
                for statement in &statements {
                    guard::check_depth(statement)?;
                }
                Ok(statements)
            })
            .await
            .map_err(pg_error)
    }

    /// Plans a statement on the SQL runtime and refuses anything but a
    /// query; writes are refused as writes even when DataFusion could not
    /// plan them anyway (COPY, a malformed INSERT): the client learns the rule.
    async fn plan(&self, statement: &Statement, timeout: Duration) -> PgWireResult<LogicalPlan> {
        if is_write(statement) {
            return Err(read_only_error(&statement_head(statement)));
        }
        let ctx = self.ctx()?;
        let statement = statement.clone();
        self.engine()
            .run(timeout, async move {
                let plan = ctx
                    .state()
                    .statement_to_plan(DfStatement::Statement(Box::new(statement)))
                    .await?;
                sql::check_read_only(&plan)?;
                Ok(plan)
            })
            .await
            .map_err(pg_error)
    }

    /// Runs a planned query the way `POST /api/v1/sql` does and encodes the
    /// rows for the client.
    async fn run(
        &self,
        client: &(impl ClientInfo + ?Sized),
        plan: LogicalPlan,
        format: &Format,
    ) -> PgWireResult<Response> {
        let _busy = Busy::new(&self.busy);
        let timeout = self.timeout(client);
        let started = Instant::now();
        let result = self
            .engine()
            .run_plan(self.ctx()?, plan, MAX_ROWS, timeout)
            .await
            .map_err(pg_error)?;
        crate::metrics::metrics()
            .sql_query_duration
            .observe(started.elapsed().as_secs_f64());
        if result.truncated {
            return Err(user_error(
                "54000",
                format!(
                    "the result has more than {MAX_ROWS} rows; add LIMIT or aggregate (e.g. $__timeGroup)"
                ),
            ));
        }
        let rows: usize = result.batches.iter().map(RecordBatch::num_rows).sum();
        tracing::Span::current().record("rows", rows);
        let schema = wire_schema(&result.schema);
        let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
        let fields = Arc::new(arrow_schema_to_pg_fields(&schema, format, Some(options))?);
        let mut encoded = Vec::with_capacity(rows);
        for batch in &result.batches {
            let batch = wire_batch(batch, &schema).map_err(pg_error)?;
            encoded.extend(encode_recordbatch(fields.clone(), batch));
        }
        Ok(Response::Query(QueryResponse::new(
            fields,
            stream::iter(encoded),
        )))
    }

    /// One statement of a simple query, or an extended query's portal.
    async fn statement<C>(
        &self,
        client: &mut C,
        statement: &Statement,
        plan: Option<LogicalPlan>,
        params: &ParamValues,
        format: &Format,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        check_set(statement)?;
        let ctx = self.ctx()?;
        // SET/SHOW, BEGIN/COMMIT, and refusing statements in an aborted
        // transaction, as datafusion-postgres does.
        for hook in &self.hooks {
            let handled = match &plan {
                Some(plan) => {
                    hook.handle_extended_query(statement, plan, params, &ctx, client)
                        .await
                }
                None => hook.handle_simple_query(statement, &ctx, client).await,
            };
            if let Some(response) = handled {
                return response;
            }
        }
        let plan = match plan {
            Some(plan) => plan
                .replace_params_with_values(params)
                .map_err(|e| pg_error(e.into()))?,
            None => self.plan(statement, self.timeout(&*client)).await?,
        };
        self.run(&*client, plan, format).await
    }
}

/// Marks the session busy until dropped (also when the query fails).
struct Busy<'a>(&'a watch::Sender<bool>);

impl<'a> Busy<'a> {
    fn new(tx: &'a watch::Sender<bool>) -> Self {
        tx.send_replace(true);
        Self(tx)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.send_replace(false);
    }
}

fn user_error(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_owned(),
        code.to_owned(),
        message.into(),
    )))
}

/// The one mapping from the SQL engine's errors to SQLSTATEs.
fn pg_error(e: SqlError) -> PgWireError {
    let code = match &e {
        SqlError::NotReadOnly(_) => "25006",
        SqlError::Timeout(_) => "57014",
        SqlError::Query { fault, .. } => match fault {
            QueryFault::Syntax => "42601",
            QueryFault::UndefinedTable => "42P01",
            QueryFault::UndefinedColumn => "42703",
            QueryFault::Plan => "42000",
            QueryFault::Execution => "22000",
            QueryFault::Resources => "53000",
            QueryFault::Limit => "54001",
        },
        SqlError::Internal(cause) => {
            // Like HTTP 5xx: the cause goes to the log, not to the client.
            tracing::error!(error = %cause, "SQL query failed inside modelwatch");
            return user_error(
                "XX000",
                "internal error while running the query; the daemon's log has the cause",
            );
        }
    };
    user_error(code, e.to_string())
}

fn read_only_error(what: &str) -> PgWireError {
    pg_error(SqlError::NotReadOnly(format!(
        "{what} … is refused; use SELECT, SHOW, EXPLAIN and session settings"
    )))
}

/// `SET` of a client session setting is fine; any other `SET` would change
/// the engine, so it is refused.
fn check_set(statement: &Statement) -> PgWireResult<()> {
    let Statement::Set(set) = statement else {
        return Ok(());
    };
    let name = match set {
        Set::SingleAssignment { variable, .. } => variable.to_string().to_lowercase(),
        Set::SetTimeZone { .. } => "time zone".to_owned(),
        _ => {
            return Err(read_only_error(&format!(
                "SET {}",
                statement_head(statement)
            )));
        }
    };
    if SESSION_SETTINGS.contains(&name.as_str()) {
        Ok(())
    } else {
        Err(read_only_error(&format!("SET {name}")))
    }
}

fn is_write(statement: &Statement) -> bool {
    matches!(
        statement,
        Statement::Insert { .. }
            | Statement::Update { .. }
            | Statement::Delete { .. }
            | Statement::Merge { .. }
            | Statement::Copy { .. }
            | Statement::Truncate { .. }
            | Statement::CreateTable { .. }
            | Statement::CreateView { .. }
            | Statement::CreateIndex { .. }
            | Statement::CreateSchema { .. }
            | Statement::CreateDatabase { .. }
            | Statement::Drop { .. }
            | Statement::AlterTable { .. }
            | Statement::Grant { .. }
            | Statement::Revoke { .. }
    )
}

fn statement_head(statement: &Statement) -> String {
    statement
        .to_string()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Keeps only the first statement's plan and refuses writes before anything
/// runs: parse → hooks (`SET`/`SHOW`/`BEGIN`…) → plan → read-only check.
pub(super) struct Parser(Arc<SessionCore>);

#[async_trait]
impl QueryParser for Parser {
    type Statement = Prepared;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let core = &self.0;
        let timeout = core.timeout(client);
        let Some(statement) = core.parse(sql, timeout).await?.into_iter().next() else {
            return Ok(None);
        };
        check_set(&statement)?;
        let ctx = core.ctx()?;
        for hook in &core.hooks {
            if let Some(plan) = hook
                .handle_extended_parse_query(&statement, &ctx, client)
                .await
            {
                return Ok(Some((sql.to_owned(), Some((statement, plan?)))));
            }
        }
        let plan = core.plan(&statement, timeout).await?;
        Ok(Some((sql.to_owned(), Some((statement, plan)))))
    }

    fn get_parameter_types(&self, stmt: &Prepared) -> PgWireResult<Vec<Type>> {
        let Some((_, plan)) = &stmt.1 else {
            return Ok(Vec::new());
        };
        parameter_types(plan)?
            .into_iter()
            .map(|t| t.map_or(Ok(Type::UNKNOWN), |t| into_pg_type(&t)))
            .collect()
    }

    fn get_result_schema(
        &self,
        stmt: &Prepared,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        let Some((_, plan)) = &stmt.1 else {
            return Ok(Vec::new());
        };
        arrow_schema_to_pg_fields(
            &wire_schema(plan.schema().as_arrow()),
            column_format.unwrap_or(&Format::UnifiedText),
            None,
        )
    }
}

/// The plan's `$1`, `$2`, … types in order (`None`: not inferred).
fn parameter_types(plan: &LogicalPlan) -> PgWireResult<Vec<Option<DataType>>> {
    let types = plan.get_parameter_types().map_err(|e| pg_error(e.into()))?;
    let mut types: Vec<(u32, Option<DataType>)> = types
        .into_iter()
        .map(|(id, t)| {
            (
                id.trim_start_matches('$')
                    .parse::<u32>()
                    .unwrap_or(u32::MAX),
                t,
            )
        })
        .collect();
    types.sort_by_key(|(n, _)| *n);
    Ok(types.into_iter().map(|(_, t)| t).collect())
}

fn query_span(client: &impl ClientInfo, sql: &str) -> tracing::Span {
    tracing::info_span!(
        "pg_query",
        user = client.metadata().get(METADATA_USER).map_or("", String::as_str),
        sql = %truncate(sql, 200),
        rows = tracing::field::Empty,
    )
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn log_refusal(e: &PgWireError) {
    tracing::debug!(error = %e, "PostgreSQL query refused");
}

/// The query handlers of one connection.
pub(super) struct Session {
    core: Arc<SessionCore>,
    parser: Arc<Parser>,
}

#[async_trait]
impl SimpleQueryHandler for Session {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let span = query_span(&*client, query);
        async {
            let timeout = self.core.timeout(&*client);
            let statements = self.core.parse(query, timeout).await?;
            if statements.is_empty() {
                // `-- ping` (Grafana's health check) and other comments.
                return Ok(vec![Response::EmptyQuery]);
            }
            let mut responses = Vec::with_capacity(statements.len());
            for statement in &statements {
                let response = self
                    .core
                    .statement(
                        client,
                        statement,
                        None,
                        &ParamValues::List(Vec::new()),
                        &Format::UnifiedText,
                    )
                    .await;
                match response {
                    Ok(r) => responses.push(r),
                    // Earlier statements' results, then the error (as PostgreSQL).
                    Err(e) if responses.is_empty() => return Err(e),
                    Err(e) => {
                        responses.push(Response::Error(Box::new(e.into())));
                        break;
                    }
                }
            }
            Ok(responses)
        }
        .instrument(span)
        .await
        .inspect_err(log_refusal)
    }
}

#[async_trait]
impl ExtendedQueryHandler for Session {
    type Statement = Prepared;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Parser> {
        self.parser.clone()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Prepared>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let (sql, parsed) = &portal.statement.statement;
        let span = query_span(&*client, sql);
        async {
            let Some((statement, plan)) = parsed else {
                return Ok(Response::EmptyQuery);
            };
            let types = parameter_types(plan)?;
            let refs: Vec<Option<&DataType>> = types.iter().map(Option::as_ref).collect();
            let params = deserialize_parameters(portal, &refs)?;
            self.core
                .statement(
                    client,
                    statement,
                    Some(plan.clone()),
                    &params,
                    &portal.result_column_format,
                )
                .await
        }
        .instrument(span)
        .await
        .inspect_err(log_refusal)
    }
}

struct Errors;

impl ErrorHandler for Errors {
    fn on_error<C>(&self, _client: &C, error: &mut PgWireError)
    where
        C: ClientInfo,
    {
        // Errors raised inside datafusion-postgres's hooks come as ApiError
        // (XX000, "internal"); they are the client's SQL, not our fault.
        if let PgWireError::ApiError(e) = error {
            let message = e.to_string();
            *error = user_error("42000", message);
        }
    }
}

/// The handlers pgwire asks for, all backed by one connection's session.
pub(super) struct Handlers {
    session: Arc<Session>,
    auth: Arc<Auth>,
}

impl Handlers {
    /// A connection's handlers; nothing of the SQL side exists until login.
    pub fn new(state: &Arc<PgState>) -> Self {
        let core = Arc::new(SessionCore {
            state: state.clone(),
            ctx: OnceLock::new(),
            authenticated: watch::channel(false).0,
            busy: watch::channel(false).0,
            hooks: vec![Arc::new(SetShowHook), Arc::new(TransactionStatementHook)],
        });
        Self {
            session: Arc::new(Session {
                parser: Arc::new(Parser(core.clone())),
                core,
            }),
            auth: state.auth.clone(),
        }
    }

    /// True while a query runs.
    pub fn busy(&self) -> watch::Receiver<bool> {
        self.session.core.busy.subscribe()
    }

    /// Turns true at login.
    pub fn authenticated(&self) -> watch::Receiver<bool> {
        self.session.core.authenticated.subscribe()
    }
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.session.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.session.clone()
    }

    fn startup_handler(&self) -> Arc<impl pgwire::api::auth::StartupHandler> {
        Arc::new(TokenStartup {
            auth: self.auth.clone(),
            session: self.session.core.clone(),
            pids: RandomPidSecretKeyGenerator::default(),
        })
    }

    fn error_handler(&self) -> Arc<impl ErrorHandler> {
        Arc::new(Errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser;

    #[test]
    fn only_session_settings_may_be_set() {
        let parser = PostgresCompatibilityParser::new();
        let one = |sql: &str| parser.parse(sql).unwrap().remove(0);
        for ok in [
            "SET statement_timeout = 100",
            "SET application_name = 'grafana'",
            "SET TIME ZONE 'UTC'",
            "SET extra_float_digits = 3",
        ] {
            assert!(check_set(&one(ok)).is_ok(), "{ok}");
        }
        for refused in [
            "SET datafusion.execution.batch_size = 1",
            "SET work_mem = '1GB'",
        ] {
            let e: ErrorInfo = check_set(&one(refused)).unwrap_err().into();
            assert_eq!(e.code, "25006", "{refused}");
        }
        for write in [
            "INSERT INTO models VALUES ('x')",
            "COPY samples TO '/tmp/x.csv'",
            "DELETE FROM samples",
            "CREATE TABLE t (a INT)",
        ] {
            assert!(is_write(&one(write)), "{write}");
        }
        assert!(!is_write(&one("SELECT 1")));
    }

    /// `datafusion-postgres`'s parser rewrites the statements it parses
    /// (recursively) before the nesting guard can look at them when the
    /// plain parse fails; the deepest texts within the length limit must
    /// still not crash a SQL thread.
    #[test]
    fn the_compatibility_parser_survives_the_deepest_texts() {
        let chain = |op: &str, n: usize| vec!["1"; n].join(op);
        let worst = [
            format!("SELECT {}", chain("+", guard::MAX_SQL_BYTES / 2 - 8)),
            vec!["SELECT 1"; guard::MAX_SQL_BYTES / 20].join(" UNION "),
            format!(
                "SELECT 1 FROM {}",
                vec!["t"; guard::MAX_SQL_BYTES / 3].join(",")
            ),
        ];
        for sql in worst {
            let survived = std::thread::Builder::new()
                .stack_size(crate::sql::engine::SQL_THREAD_STACK_BYTES)
                .spawn(move || {
                    let parsed = PostgresCompatibilityParser::new().parse(&sql);
                    if let Ok(statements) = parsed {
                        assert!(statements.iter().any(|s| guard::check_depth(s).is_err()));
                    }
                })
                .unwrap()
                .join();
            assert!(survived.is_ok());
        }
    }

    #[test]
    fn sql_errors_get_their_sqlstate() {
        let code = |e: SqlError| -> String { ErrorInfo::from(pg_error(e)).code };
        assert_eq!(code(SqlError::NotReadOnly("x".into())), "25006");
        assert_eq!(code(SqlError::Timeout(Duration::from_secs(1))), "57014");
        assert_eq!(
            code(SqlError::Query {
                fault: QueryFault::UndefinedTable,
                message: "x".into()
            }),
            "42P01"
        );
        assert_eq!(
            code(SqlError::Query {
                fault: QueryFault::Limit,
                message: "x".into()
            }),
            "54001"
        );
        let internal = ErrorInfo::from(pg_error(SqlError::Internal("disk on fire".into())));
        assert_eq!(internal.code, "XX000");
        assert!(!internal.message.contains("disk"), "{}", internal.message);
    }
}
