//! Serving a router over TCP with the limits `axum::serve` does not set.
//!
//! `axum::serve` gives hyper no timer, so a client sending a request head
//! one byte at a time (or nothing at all) held a connection for as long as
//! it liked. Here every connection gets [`HEADER_READ_TIMEOUT`] to send each
//! request head (which also closes idle keep-alive connections after that
//! long), a listener serves at most [`MAX_CONNECTIONS`] connections at once
//! (more wait in the kernel's accept queue), and a stop lets requests in
//! flight finish before their connections close.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::tls::{ClientIdentity, OverTls, ServerTls};

/// How long a client may take to send a request's head (request line and
/// headers); also how long an idle keep-alive connection stays open.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections one listener serves at once.
pub const MAX_CONNECTIONS: usize = 4096;

/// Serves `app` on `listener` until `stop` resolves, then waits for the
/// requests in flight. With `tls`, each connection first completes a TLS
/// handshake (within [`crate::tls::HANDSHAKE_TIMEOUT`]); a verified client
/// certificate rides on each of its requests as a
/// [`crate::tls::ClientIdentity`] extension.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<ServerTls>>,
    stop: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(stop);
    loop {
        let slot = tokio::select! {
            _ = &mut stop => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: keep serving the others.
                    tracing::warn!(error = %e, "cannot accept an HTTP connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let acceptor = tls.as_ref().map(|t| t.acceptor());
        tokio::spawn(async move {
            let served = match acceptor {
                None => serve_connection(&builder, watcher, stream, app, Transport::Plain).await,
                Some(acceptor) => {
                    match tokio::time::timeout(
                        crate::tls::HANDSHAKE_TIMEOUT,
                        acceptor.accept(stream),
                    )
                    .await
                    {
                        Ok(Ok(stream)) => {
                            let client = ClientIdentity::of(stream.get_ref().1.peer_certificates());
                            let transport = Transport::Tls(client);
                            serve_connection(&builder, watcher, stream, app, transport).await
                        }
                        Ok(Err(e)) => {
                            // Untrusted client certificates, plain HTTP
                            // sent to a TLS port, scanners.
                            tracing::debug!(error = %e, %peer, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    }
                }
            };
            if let Err(e) = served {
                // Clients that vanish, time out or send garbage.
                tracing::debug!(error = %e, %peer, "HTTP connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// How a connection reached us.
#[derive(Debug, Clone)]
enum Transport {
    Plain,
    /// With the verified client certificate's identity, if any.
    Tls(Option<ClientIdentity>),
}

/// Serves one connection until it closes or the stop drains it.
async fn serve_connection<I>(
    builder: &Builder<TokioExecutor>,
    watcher: Watcher,
    io: I,
    app: Router,
    transport: Transport,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let connection = builder
        .serve_connection_with_upgrades(
            TokioIo::new(io),
            TowerToHyperService::new(service(app, transport)),
        )
        .into_owned();
    watcher.watch(connection).await
}

/// The router as a hyper service for one connection, marking each request
/// of a TLS connection as [`OverTls`] and with the client certificate's
/// identity, if any.
fn service(
    app: Router,
    transport: Transport,
) -> impl tower::Service<
    Request<Incoming>,
    Response = axum::response::Response,
    Error = Infallible,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    app.map_request(move |req: Request<Incoming>| {
        let mut req = req.map(Body::new);
        if let Transport::Tls(client) = &transport {
            req.extensions_mut().insert(OverTls);
            if let Some(identity) = client {
                req.extensions_mut().insert(identity.clone());
            }
        }
        req
    })
}
