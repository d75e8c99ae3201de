//! SQL over the PostgreSQL wire protocol, for `psql` and Grafana's
//! PostgreSQL data source.
//!
//! The protocol is `pgwire` (through `datafusion-postgres`, which also brings
//! the `pg_catalog` schema, the PostgreSQL-dialect rewrites and the `SET` /
//! `SHOW` / transaction hooks); the SQL engine is the very one behind
//! `POST /api/v1/sql` ([`crate::sql::SqlEngine`]): the same tables and
//! registry views, the same read-only rule, nesting guard, timeout, memory
//! pool, error classes and duration metric. What lives here is only what
//! the protocol adds:
//!
//! - the listener ([`serve`]): optional TLS, at most
//!   `--pg-max-connections` connections (more get SQLSTATE `53300` and are
//!   closed), [`STARTUP_TIMEOUT`] to authenticate, a graceful stop;
//! - authentication ([`auth`]): cleartext password = a modelwatch token
//!   (any role; the user name is free and only logged), checked like a
//!   bearer token;
//! - sessions ([`session`]): one DataFusion context per authenticated
//!   connection over the shared catalogue ([`catalog`]), a guard that refuses
//!   writes and `SET`s of anything but client session settings with SQLSTATE
//!   `25006` (read_only_sql_transaction), timeouts with `57014`;
//! - result types clients can read ([`types`]).
//!
//! It must not plan or execute SQL in its own way (that is `crate::sql`'s
//! job), nor write anything anywhere.

mod auth;
mod catalog;
mod session;
mod types;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use datafusion_postgres::pgwire;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tracing::Instrument;

use crate::auth::Auth;
use crate::sql::{self, SqlEngine};

pub use catalog::PgCatalog;
pub use types::wire_schema;

/// Rows one pgwire query may return. PostgreSQL clients expect all rows, so
/// a larger result is an error (SQLSTATE 54000) rather than silently cut.
pub const MAX_ROWS: usize = sql::MAX_ROW_LIMIT;

/// The server version announced at startup and by `current_setting`:
/// `psql` picks its catalogue queries by it, Grafana shows it.
const SERVER_VERSION: &str = "16.6";
const SERVER_VERSION_NUM: &str = "160006";

/// Longest a connection may take from its first byte to a successful login
/// (TLS handshake, startup packet, password); then it is closed.
/// PostgreSQL's own `authentication_timeout` is a minute; clients log in
/// within milliseconds, and every waiting connection holds a slot.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Default `--pg-max-connections` (PostgreSQL's own `max_connections`).
pub const DEFAULT_MAX_CONNECTIONS: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("cannot prepare the pg_catalog schema: {0}")]
    Catalog(String),
}

/// What every connection shares.
pub struct PgState {
    pub sql: Arc<SqlEngine>,
    pub auth: Arc<Auth>,
    /// The tables, views, `pg_catalog` and functions, prepared once.
    pub catalog: PgCatalog,
    /// Reloadable: each connection takes the acceptor of the moment.
    pub tls: Option<Arc<crate::tls::ServerTls>>,
    /// Connections served at once (`--pg-max-connections`).
    pub max_connections: usize,
}

impl PgState {
    pub fn new(
        sql: Arc<SqlEngine>,
        auth: Arc<Auth>,
        tls: Option<Arc<crate::tls::ServerTls>>,
        max_connections: usize,
    ) -> Result<Self, PgError> {
        Ok(Self {
            catalog: PgCatalog::new(&sql)?,
            sql,
            auth,
            tls,
            max_connections: max_connections.max(1),
        })
    }
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
    let slots = Arc::new(Semaphore::new(state.max_connections));
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
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    crate::metrics::metrics().pg_connections_refused.inc();
                    connections.spawn(refuse(socket, peer, state.max_connections));
                    continue;
                };
                let state = state.clone();
                let stopping = stopping.clone();
                connections.spawn(async move {
                    connection(socket, peer, state, stopping).await;
                    drop(slot);
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    let _ = stopping_tx.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Tells a client over the limit why it is turned away (an ErrorResponse,
/// which libpq shows whatever it sent first), then closes.
async fn refuse(mut socket: tokio::net::TcpStream, peer: SocketAddr, max: usize) {
    static LOG: crate::logging::RateLimited =
        crate::logging::RateLimited::new(Duration::from_secs(10));
    if let Some(suppressed) = LOG.permit() {
        tracing::warn!(%peer, max, suppressed, "PostgreSQL connection refused: too many connections (--pg-max-connections; `suppressed` more since the last line, all counted in modelwatch_pg_connections_refused_total)");
    }
    let message = format!(
        "sorry, too many clients already: modelwatch serves {max} PostgreSQL connections at once (--pg-max-connections); close idle ones or raise the limit"
    );
    let mut fields = Vec::new();
    for (tag, value) in [(b'S', "FATAL"), (b'V', "FATAL"), (b'C', "53300")] {
        fields.push(tag);
        fields.extend_from_slice(value.as_bytes());
        fields.push(0);
    }
    fields.push(b'M');
    fields.extend_from_slice(message.as_bytes());
    fields.push(0);
    fields.push(0);
    let mut packet = vec![b'E'];
    packet.extend_from_slice(&((fields.len() + 4) as u32).to_be_bytes());
    packet.extend_from_slice(&fields);
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = socket.write_all(&packet).await;
        let _ = socket.shutdown().await;
    })
    .await;
}

async fn connection(
    socket: tokio::net::TcpStream,
    peer: SocketAddr,
    state: Arc<PgState>,
    mut stopping: watch::Receiver<bool>,
) {
    let _ = socket.set_nodelay(true);
    let handlers = session::Handlers::new(&state);
    let mut busy = handlers.busy();
    let mut authenticated = handlers.authenticated();
    let tls = state.tls.as_ref().map(|t| t.acceptor());
    let span = tracing::info_span!("pg_connection", %peer);
    let served = pgwire::tokio::process_socket(socket, tls, handlers);
    let stopped = async {
        let _ = stopping.wait_for(|s| *s).await;
        // A query in progress finishes (and its rows are written) first.
        let _ = busy.wait_for(|b| !*b).await;
    };
    let startup_expired = async {
        if tokio::time::timeout(STARTUP_TIMEOUT, authenticated.wait_for(|a| *a))
            .await
            .is_err()
        {
            return;
        }
        // Logged in: this connection is no longer bounded by the startup timeout.
        std::future::pending::<()>().await;
    };
    tokio::select! {
        result = served.instrument(span) => {
            if let Err(e) = result {
                // Clients that vanish, garbage instead of a startup packet.
                tracing::debug!(error = %e, %peer, "PostgreSQL connection ended with an error");
            }
        }
        _ = stopped => tracing::debug!(%peer, "closing a PostgreSQL connection: the daemon is stopping"),
        _ = startup_expired => {
            crate::metrics::metrics().pg_startup_timeouts.inc();
            tracing::debug!(%peer, timeout_s = STARTUP_TIMEOUT.as_secs(), "closing a PostgreSQL connection that did not log in in time");
        }
    }
}
