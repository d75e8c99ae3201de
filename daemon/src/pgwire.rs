//! SQL over the PostgreSQL wire protocol, for `psql` and Grafana's
//! PostgreSQL data source.
//!
//! The protocol is `pgwire` (through `datafusion-postgres`, which also brings
//! the `pg_catalog` schema, the PostgreSQL-dialect rewrites and the `SET` /
//! `SHOW` / transaction hooks); the SQL engine is the very one behind
//! `POST /api/v1/sql` ([`crate::sql`]): the same tables and registry views,
//! the same read-only rule, the same timeout, the same error classes and the
//! same duration metric. What lives here is only what the protocol adds:
//!
//! - authentication: cleartext password = a modelwatch token (any role; the
//!   user name is free and only logged), checked by [`Auth`] like a bearer
//!   token;
//! - a guard that refuses writes and `SET`s of anything but client session
//!   settings with SQLSTATE `25006` (read_only_sql_transaction), and query
//!   timeouts with `57014` (query_canceled);
//! - result types clients can read: every column is sent as one of
//!   `timestamptz`, `float8`, `int8`, `text`, `bool` (or a PostgreSQL array
//!   of those); maps and structs (`labels`, `attributes`) become JSON text
//!   ([`wire_schema`]);
//! - `current_setting(name)` for the settings clients ask about;
//! - the listener with optional TLS and a graceful stop.
//!
//! It must not plan or execute SQL in its own way (that is `crate::sql`'s
//! job), nor write anything anywhere.

use std::fmt::Debug;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, StringBuilder};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use datafusion::arrow::json::writer::{EncoderOptions, make_encoder};
use datafusion::common::ParamValues;
use datafusion::logical_expr::{
    ColumnarValue, LogicalPlan, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{Set, Statement};
use datafusion_postgres::arrow_pg::datatypes::df::deserialize_parameters;
use datafusion_postgres::arrow_pg::datatypes::{
    arrow_schema_to_pg_fields, encode_recordbatch, into_pg_type,
};
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::setup_pg_catalog;
use datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use datafusion_postgres::hooks::QueryHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::pgwire;
use futures::{Sink, stream};
use pgwire::api::auth::{
    DefaultServerParameterProvider, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{FieldInfo, QueryResponse, Response};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, ErrorHandler, METADATA_USER, PgWireConnectionState,
    PgWireServerHandlers, PidSecretKeyGenerator, RandomPidSecretKeyGenerator, Type,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::startup::Authentication;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::tokio::TlsAcceptor;
use pgwire::tokio::tokio_rustls::rustls;
use pgwire::types::format::FormatOptions;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::Instrument;

use modelwatch_history::HistoryStore;
use modelwatch_registry::RegistryStore;

use crate::auth::Auth;
use crate::sql::{self, QueryFault, SqlError};

/// Rows one pgwire query may return. PostgreSQL clients expect all rows, so
/// a larger result is an error (SQLSTATE 54000) rather than silently cut.
pub const MAX_ROWS: usize = sql::MAX_ROW_LIMIT;

/// The server version announced at startup and by `current_setting`:
/// `psql` picks its catalogue queries by it, Grafana shows it.
const SERVER_VERSION: &str = "16.6";
const SERVER_VERSION_NUM: &str = "160006";

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

#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("cannot read {what} {path}: {source}; give a PEM file")]
    ReadPem {
        what: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no {what}; give a PEM file with one")]
    EmptyPem {
        what: &'static str,
        path: std::path::PathBuf,
    },
    #[error("the TLS certificate and key do not make a usable pair: {0}")]
    Tls(#[from] rustls::Error),
}

/// Reads a PEM certificate chain and private key into an acceptor.
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, PgError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let read = |what, path: &Path| {
        std::fs::read(path).map_err(|source| PgError::ReadPem {
            what,
            path: path.to_path_buf(),
            source,
        })
    };
    let cert_pem = read("certificate", cert)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(PgError::EmptyPem {
            what: "certificate",
            path: cert.to_path_buf(),
        });
    }
    let key_pem = read("private key", key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| PgError::EmptyPem {
        what: "private key",
        path: key.to_path_buf(),
    })?;
    // One process-wide crypto provider; installing it twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// What every connection shares.
pub struct PgState {
    pub history: HistoryStore,
    pub registry: Arc<dyn RegistryStore>,
    pub auth: Arc<Auth>,
    /// Longest a query may run; a session's `statement_timeout` may only
    /// lower it.
    pub timeout: Duration,
    pub tls: Option<TlsAcceptor>,
}

/// Accepts connections until `stop` resolves, then waits for the queries
/// running at that moment to finish (each is bounded by the timeout) and
/// closes every connection.
pub async fn serve(
    listener: TcpListener,
    state: Arc<PgState>,
    stop: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let (stopping_tx, stopping) = watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => {
                let (socket, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of descriptors and the like: keep serving the others.
                        tracing::warn!(error = %e, "cannot accept a PostgreSQL connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let state = state.clone();
                let stopping = stopping.clone();
                connections.spawn(connection(socket, peer, state, stopping));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    let _ = stopping_tx.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

async fn connection(
    socket: tokio::net::TcpStream,
    peer: SocketAddr,
    state: Arc<PgState>,
    mut stopping: watch::Receiver<bool>,
) {
    let _ = socket.set_nodelay(true);
    let session = match Session::new(&state) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            tracing::error!(error = %e, %peer, "cannot prepare a SQL session for a PostgreSQL connection");
            return;
        }
    };
    let mut busy = session.busy.subscribe();
    let tls = state.tls.clone();
    let span = tracing::info_span!("pg_connection", %peer);
    let served = pgwire::tokio::process_socket(socket, tls, Handlers(session));
    let stopped = async {
        let _ = stopping.wait_for(|s| *s).await;
        // A query in progress finishes (and its rows are written) first.
        let _ = busy.wait_for(|b| !*b).await;
    };
    tokio::select! {
        result = served.instrument(span) => {
            if let Err(e) = result {
                // Clients that vanish, garbage instead of a startup packet.
                tracing::debug!(error = %e, %peer, "PostgreSQL connection ended with an error");
            }
        }
        _ = stopped => tracing::debug!(%peer, "closing a PostgreSQL connection: the daemon is stopping"),
    }
}

/// One connection's handlers: its own DataFusion context (so one session's
/// settings never reach another), its parser and hooks.
struct Session {
    ctx: Arc<SessionContext>,
    auth: Arc<Auth>,
    max_timeout: Duration,
    parser: Arc<Parser>,
    /// True while a query runs, for the graceful stop.
    busy: watch::Sender<bool>,
}

impl Session {
    fn new(state: &PgState) -> Result<Self, SqlError> {
        let ctx = sql::session(&state.history, state.registry.clone())?;
        setup_pg_catalog(&ctx, sql::CATALOG, EmptyContextProvider)
            .map_err(|e| SqlError::Internal(e.to_string()))?;
        ctx.register_udf(ScalarUDF::new_from_impl(CurrentSetting::new()));
        let ctx = Arc::new(ctx);
        let hooks: Vec<Arc<dyn QueryHook>> =
            vec![Arc::new(SetShowHook), Arc::new(TransactionStatementHook)];
        Ok(Self {
            parser: Arc::new(Parser {
                ctx: ctx.clone(),
                sql: PostgresCompatibilityParser::new(),
                hooks,
            }),
            ctx,
            auth: state.auth.clone(),
            max_timeout: state.timeout,
            busy: watch::channel(false).0,
        })
    }

    /// The session's `statement_timeout`, never above the server's.
    fn timeout(&self, client: &(impl ClientInfo + ?Sized)) -> Duration {
        client
            .metadata()
            .get(STATEMENT_TIMEOUT_KEY)
            .and_then(|ms| ms.parse::<u64>().ok())
            .map(Duration::from_millis)
            .filter(|t| !t.is_zero())
            .map_or(self.max_timeout, |t| t.min(self.max_timeout))
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
        let result = sql::run_plan(&self.ctx, plan, MAX_ROWS, timeout)
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
        for batch in result.batches {
            let batch = wire_batch(&batch, &schema).map_err(pg_error)?;
            encoded.extend(encode_recordbatch(fields.clone(), batch));
        }
        Ok(Response::Query(QueryResponse::new(
            fields,
            stream::iter(encoded),
        )))
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

/// A column type every PostgreSQL client reads: timestamps with time zone
/// (UTC), `int8`, `float8`, `text`, `bool`, arrays of those; nested values
/// as JSON text. Columns `pg_catalog` marks with PostgreSQL-specific types
/// (`oid`, `"char"`) keep them, `psql`'s catalogue queries rely on them.
fn wire_type(field: &Field) -> DataType {
    if !field.metadata().is_empty() {
        return field.data_type().clone();
    }
    wire_data_type(field.data_type())
}

fn wire_data_type(t: &DataType) -> DataType {
    match t {
        DataType::Timestamp(unit, tz) => {
            DataType::Timestamp(*unit, Some(tz.clone().unwrap_or_else(|| "UTC".into())))
        }
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => DataType::Int64,
        DataType::Float16 | DataType::Float32 => DataType::Float64,
        DataType::LargeUtf8 | DataType::Utf8View => DataType::Utf8,
        DataType::Dictionary(_, value) => wire_data_type(value),
        DataType::List(item) | DataType::LargeList(item) | DataType::FixedSizeList(item, _) => {
            match wire_data_type(item.data_type()) {
                inner @ (DataType::Int64
                | DataType::Float64
                | DataType::Utf8
                | DataType::Boolean
                | DataType::Timestamp(..)) => {
                    DataType::List(Arc::new(Field::new_list_field(inner, true)))
                }
                _ => DataType::Utf8,
            }
        }
        DataType::Map(..) | DataType::Struct(_) | DataType::Union(..) => DataType::Utf8,
        other => other.clone(),
    }
}

/// The schema a result is sent with (see [`wire_type`]).
pub fn wire_schema(schema: &Schema) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| {
                Field::new(f.name(), wire_type(f), f.is_nullable())
                    .with_metadata(f.metadata().clone())
            })
            .collect::<Vec<_>>(),
    ))
}

/// Converts a result batch to `schema` (from [`wire_schema`]).
fn wire_batch(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, SqlError> {
    let strict = CastOptions {
        safe: false,
        ..CastOptions::default()
    };
    let columns = batch
        .columns()
        .iter()
        .zip(batch.schema().fields())
        .zip(schema.fields())
        .map(|((column, from), to)| {
            if column.data_type() == to.data_type() {
                Ok(column.clone())
            } else if to.data_type() == &DataType::Utf8 && is_nested(from.data_type()) {
                json_text(from, column)
            } else {
                cast_with_options(column, to.data_type(), &strict)
                    .map_err(|e| SqlError::from(datafusion::error::DataFusionError::from(e)))
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| SqlError::Internal(format!("re-typing a result batch: {e}")))
}

fn is_nested(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Map(..)
            | DataType::Struct(_)
            | DataType::Union(..)
            | DataType::List(_)
            | DataType::LargeList(_)
            | DataType::FixedSizeList(..)
    )
}

/// Nested values as JSON text, the way `POST /api/v1/sql` writes them.
fn json_text(field: &FieldRef, column: &ArrayRef) -> Result<ArrayRef, SqlError> {
    let options = EncoderOptions::default();
    let mut encoder = make_encoder(field, column.as_ref(), &options)
        .map_err(|e| SqlError::Internal(format!("JSON encoder for {}: {e}", field.name())))?;
    let mut out = StringBuilder::with_capacity(column.len(), column.len() * 32);
    let mut buf = Vec::new();
    for i in 0..column.len() {
        if column.is_null(i) {
            out.append_null();
            continue;
        }
        buf.clear();
        encoder.encode(i, &mut buf);
        out.append_value(String::from_utf8_lossy(&buf));
    }
    Ok(Arc::new(out.finish()))
}

/// Keeps only the first statement's plan and refuses writes before anything
/// runs: parse → hooks (`SET`/`SHOW`/`BEGIN`…) → plan → read-only check.
pub struct Parser {
    ctx: Arc<SessionContext>,
    sql: PostgresCompatibilityParser,
    hooks: Vec<Arc<dyn QueryHook>>,
}

/// What pgwire stores per prepared statement: the text and, unless empty,
/// the parsed statement with its plan (the shape `datafusion-postgres`'s
/// hooks expect).
type Prepared = (String, Option<(Statement, LogicalPlan)>);

impl Parser {
    fn parse(&self, sql: &str) -> PgWireResult<Vec<Statement>> {
        self.sql.parse(sql).map_err(|e| {
            pg_error(SqlError::from(datafusion::error::DataFusionError::SQL(
                Box::new(e),
                None,
            )))
        })
    }

    async fn plan(&self, statement: &Statement) -> PgWireResult<LogicalPlan> {
        // Writes are refused as writes even when DataFusion could not plan
        // them anyway (COPY, a malformed INSERT): the client learns the rule.
        if is_write(statement) {
            return Err(read_only_error(&statement_head(statement)));
        }
        let plan = self
            .ctx
            .state()
            .statement_to_plan(DfStatement::Statement(Box::new(statement.clone())))
            .await
            .map_err(|e| pg_error(e.into()))?;
        sql::check_read_only(&plan).map_err(pg_error)?;
        Ok(plan)
    }
}

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
        let Some(statement) = self.parse(sql)?.into_iter().next() else {
            return Ok(None);
        };
        check_set(&statement)?;
        for hook in &self.hooks {
            if let Some(plan) = hook
                .handle_extended_parse_query(&statement, &self.ctx, client)
                .await
            {
                return Ok(Some((sql.to_owned(), Some((statement, plan?)))));
            }
        }
        let plan = self.plan(&statement).await?;
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

impl Session {
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
        // SET/SHOW, BEGIN/COMMIT, and refusing statements in an aborted
        // transaction, as datafusion-postgres does.
        for hook in &self.parser.hooks {
            let handled = match &plan {
                Some(plan) => {
                    hook.handle_extended_query(statement, plan, params, &self.ctx, client)
                        .await
                }
                None => hook.handle_simple_query(statement, &self.ctx, client).await,
            };
            if let Some(response) = handled {
                return response;
            }
        }
        let plan = match plan {
            Some(plan) => plan
                .replace_params_with_values(params)
                .map_err(|e| pg_error(e.into()))?,
            None => self.parser.plan(statement).await?,
        };
        self.run(&*client, plan, format).await
    }
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
            let statements = self.parser.parse(query)?;
            if statements.is_empty() {
                // `-- ping` (Grafana's health check) and other comments.
                return Ok(vec![Response::EmptyQuery]);
            }
            let mut responses = Vec::with_capacity(statements.len());
            for statement in &statements {
                let response = self
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
            self.statement(
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

fn log_refusal(e: &PgWireError) {
    tracing::debug!(error = %e, "PostgreSQL query refused");
}

/// Authentication: the password is a modelwatch token.
struct TokenStartup {
    auth: Arc<Auth>,
    pids: RandomPidSecretKeyGenerator,
}

impl TokenStartup {
    fn parameters() -> DefaultServerParameterProvider {
        let mut p = DefaultServerParameterProvider::default();
        p.server_version = SERVER_VERSION.to_owned();
        p.is_superuser = false;
        p.default_transaction_read_only = true;
        p
    }
}

#[async_trait]
impl StartupHandler for TokenStartup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                if self.auth.disabled() {
                    return self.accept(client).await;
                }
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                use futures::SinkExt;
                client
                    .send(PgWireBackendMessage::Authentication(
                        Authentication::CleartextPassword,
                    ))
                    .await?;
            }
            PgWireFrontendMessage::PasswordMessageFamily(pwd) => {
                let password = pwd.into_password()?;
                let user = client
                    .metadata()
                    .get(METADATA_USER)
                    .cloned()
                    .unwrap_or_default();
                // Every role may read; reader is the lowest.
                match self
                    .auth
                    .authenticate(Some(password.password.as_str()))
                    .await
                {
                    Ok(actor) => {
                        tracing::info!(user = %user, token = %actor.name, peer = %client.socket_addr(), "PostgreSQL client authenticated");
                        self.accept(client).await?;
                    }
                    Err(e) => {
                        tracing::info!(user = %user, peer = %client.socket_addr(), "PostgreSQL authentication failed");
                        return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                            "FATAL".to_owned(),
                            "28P01".to_owned(),
                            format!(
                                "password authentication failed for user \"{user}\": {}; the password must be a modelwatch token (`modelwatch token create --name NAME --role reader`)",
                                e.message
                            ),
                        ))));
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

impl TokenStartup {
    async fn accept<C>(&self, client: &mut C) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let (pid, key) = self.pids.generate(&*client);
        client.set_pid_and_secret_key(pid, key);
        finish_authentication(client, &Self::parameters()).await
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
struct Handlers(Arc<Session>);

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.0.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.0.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        Arc::new(TokenStartup {
            auth: self.0.auth.clone(),
            pids: RandomPidSecretKeyGenerator::default(),
        })
    }

    fn error_handler(&self) -> Arc<impl ErrorHandler> {
        Arc::new(Errors)
    }
}

/// `current_setting(name [, missing_ok])` for the settings clients read
/// (Grafana: `server_version_num`, `search_path`); unknown names are an
/// error like PostgreSQL's, or NULL with `missing_ok`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct CurrentSetting {
    signature: Signature,
}

impl CurrentSetting {
    fn new() -> Self {
        Self {
            signature: Signature::one_of(
                vec![
                    datafusion::logical_expr::TypeSignature::Exact(vec![DataType::Utf8]),
                    datafusion::logical_expr::TypeSignature::Exact(vec![
                        DataType::Utf8,
                        DataType::Boolean,
                    ]),
                ],
                Volatility::Stable,
            ),
        }
    }

    fn value(name: &str) -> Option<&'static str> {
        Some(match name.to_ascii_lowercase().as_str() {
            "server_version" => SERVER_VERSION,
            "server_version_num" => SERVER_VERSION_NUM,
            "search_path" => "public",
            "timezone" => "UTC",
            "datestyle" => "ISO, MDY",
            "intervalstyle" => "postgres",
            "client_encoding" | "server_encoding" => "UTF8",
            "standard_conforming_strings" | "integer_datetimes" => "on",
            "default_transaction_read_only" | "transaction_read_only" => "on",
            "is_superuser" => "off",
            "max_identifier_length" => "63",
            "transaction_isolation" => "read committed",
            _ => return None,
        })
    }
}

impl ScalarUDFImpl for CurrentSetting {
    fn name(&self) -> &str {
        "current_setting"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let missing_ok = match args.args.get(1) {
            Some(ColumnarValue::Scalar(ScalarValue::Boolean(b))) => b.unwrap_or(false),
            Some(_) => {
                return datafusion::common::plan_err!(
                    "current_setting's second argument must be a constant true or false"
                );
            }
            None => false,
        };
        let lookup = |name: Option<&str>| -> datafusion::error::Result<Option<String>> {
            let Some(name) = name else { return Ok(None) };
            match Self::value(name) {
                Some(v) => Ok(Some(v.to_owned())),
                None if missing_ok => Ok(None),
                None => {
                    datafusion::common::plan_err!("unrecognized configuration parameter \"{name}\"")
                }
            }
        };
        match &args.args[0] {
            ColumnarValue::Scalar(s) => {
                let name = match s {
                    ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v) => {
                        v.as_deref()
                    }
                    _ => None,
                };
                Ok(ColumnarValue::Scalar(ScalarValue::Utf8(lookup(name)?)))
            }
            ColumnarValue::Array(a) => {
                let names = datafusion::common::cast::as_string_array(a)?;
                let mut out = StringBuilder::new();
                for name in names.iter() {
                    out.append_option(lookup(name)?);
                }
                Ok(ColumnarValue::Array(Arc::new(out.finish())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int32Array, MapBuilder, StringArray};
    use datafusion::arrow::datatypes::TimeUnit;

    #[test]
    fn wire_types_are_the_standard_ones() {
        let map = DataType::Map(
            Arc::new(Field::new(
                "entries",
                DataType::Struct(
                    vec![
                        Field::new("keys", DataType::Utf8, false),
                        Field::new("values", DataType::Utf8, true),
                    ]
                    .into(),
                ),
                false,
            )),
            false,
        );
        for (from, to) in [
            (
                DataType::Timestamp(TimeUnit::Nanosecond, None),
                DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            ),
            (DataType::Int32, DataType::Int64),
            (DataType::UInt64, DataType::Int64),
            (DataType::Float32, DataType::Float64),
            (DataType::Utf8View, DataType::Utf8),
            (map, DataType::Utf8),
            (
                DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true))),
                DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true))),
            ),
        ] {
            assert_eq!(wire_data_type(&from), to, "{from}");
        }
        let pg = |t: DataType| into_pg_type(&wire_data_type(&t)).unwrap();
        assert_eq!(pg(DataType::Int32), Type::INT8);
        assert_eq!(pg(DataType::Float32), Type::FLOAT8);
        assert_eq!(
            pg(DataType::Timestamp(
                TimeUnit::Microsecond,
                Some("UTC".into())
            )),
            Type::TIMESTAMPTZ
        );
        assert_eq!(pg(DataType::Utf8View), Type::TEXT);
        assert_eq!(pg(DataType::Boolean), Type::BOOL);
    }

    #[test]
    fn maps_become_json_text_and_ints_widen() {
        let mut labels = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
        labels.keys().append_value("instance");
        labels.values().append_value("a:1");
        labels.append(true).unwrap();
        labels.append(false).unwrap();
        let labels = Arc::new(labels.finish()) as ArrayRef;
        let schema = Arc::new(Schema::new(vec![
            Field::new("labels", labels.data_type().clone(), true),
            Field::new("n", DataType::Int32, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![labels, Arc::new(Int32Array::from(vec![Some(7), None]))],
        )
        .unwrap();
        let wire = wire_schema(&schema);
        let out = wire_batch(&batch, &wire).unwrap();
        let text = out
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(text.value(0), r#"{"instance":"a:1"}"#);
        assert!(text.is_null(1));
        assert_eq!(out.column(1).data_type(), &DataType::Int64);
    }

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

    #[test]
    fn current_setting_knows_what_clients_ask_and_refuses_the_rest() {
        assert_eq!(
            CurrentSetting::value("server_version_num"),
            Some(SERVER_VERSION_NUM)
        );
        assert_eq!(CurrentSetting::value("SEARCH_PATH"), Some("public"));
        assert_eq!(CurrentSetting::value("no_such_setting"), None);
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
        let internal = ErrorInfo::from(pg_error(SqlError::Internal("disk on fire".into())));
        assert_eq!(internal.code, "XX000");
        assert!(!internal.message.contains("disk"), "{}", internal.message);
    }

    #[test]
    fn bad_tls_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = tls_acceptor(&missing, &missing).err().unwrap();
        assert!(e.to_string().contains("cannot read certificate"), "{e}");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, b"not a pem").unwrap();
        let e = tls_acceptor(&garbage, &garbage).err().unwrap();
        assert!(e.to_string().contains("holds no certificate"), "{e}");
    }
}
