//! OTLP/gRPC (`--otlp-grpc-listen`, default 127.0.0.1:4317): the three
//! OTLP collector services (`…MetricsService/Export`, `…LogsService/Export`,
//! `…TraceService/Export`) served by tonic.
//!
//! The services are written by hand over a pass-through codec
//! ([`RawCodec`]) instead of `opentelemetry-proto`'s generated (`gen-tonic`)
//! ones: tonic hands us the request message's bytes (gzip already
//! inflated, within `--max-write-bytes`) and they go through exactly the
//! same ingest function and decoder as an OTLP/HTTP protobuf body
//! ([`Telemetry::otlp`](crate::telemetry::Telemetry::otlp)). So an
//! undecodable message is `INVALID_ARGUMENT` with the same message as the
//! HTTP 400 (tonic's prost codec would answer `INTERNAL`), and there is one
//! decoding path to test and fuzz.
//!
//! Failures take the HTTP classification and become gRPC statuses in one
//! place (`From<ApiError> for tonic::Status` in `http::error`). A message
//! over the limit is refused by tonic before it is read; tonic says
//! `OUT_OF_RANGE` (retryable for OTLP clients), which is rewritten to
//! `RESOURCE_EXHAUSTED` (not retried without a `RetryInfo`). A corrupt gzip
//! message is `INTERNAL`, as the gRPC compression specification requires.

use std::convert::Infallible;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderValue;
use tonic::codec::CompressionEncoding;
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};

use modelwatch_collectors::grpc_codec::RawCodec;
use modelwatch_collectors::otlp::Encoding;
use modelwatch_registry::Role;

use crate::auth::{self, Caller};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::telemetry::OtlpSignal;

/// One of the three OTLP collector services.
pub trait OtlpService: Send + Sync + 'static {
    /// The gRPC service name.
    const NAME: &'static str;
    const SIGNAL: OtlpSignal;
}

#[derive(Debug)]
pub enum Metrics {}
#[derive(Debug)]
pub enum Logs {}
#[derive(Debug)]
pub enum Traces {}

impl OtlpService for Metrics {
    const NAME: &'static str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
    const SIGNAL: OtlpSignal = OtlpSignal::Metrics;
}
impl OtlpService for Logs {
    const NAME: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
    const SIGNAL: OtlpSignal = OtlpSignal::Logs;
}
impl OtlpService for Traces {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
    const SIGNAL: OtlpSignal = OtlpSignal::Traces;
}

/// The `Export` method of service `S`, as a tower service for tonic's
/// router.
pub struct Export<S> {
    state: AppState,
    max_message_bytes: usize,
    _service: PhantomData<fn() -> S>,
}

impl<S> Clone for Export<S> {
    fn clone(&self) -> Self {
        Self {
            state: self.state.clone(),
            max_message_bytes: self.max_message_bytes,
            _service: PhantomData,
        }
    }
}

impl<S: OtlpService> NamedService for Export<S> {
    const NAME: &'static str = S::NAME;
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S: OtlpService> tower::Service<http::Request<tonic::body::Body>> for Export<S> {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let export = self.clone();
        Box::pin(async move {
            if !req.uri().path().ends_with("/Export") {
                let (parts, ()) =
                    Status::unimplemented(format!("{} has only the Export method", S::NAME))
                        .into_http::<()>()
                        .into_parts();
                return Ok(http::Response::from_parts(
                    parts,
                    tonic::body::Body::empty(),
                ));
            }
            let mut grpc = Grpc::new(RawCodec)
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(export.max_message_bytes);
            let mut response = grpc.unary(export, req).await;
            // tonic refuses an oversized message with OUT_OF_RANGE, which
            // OTLP clients retry; the same message will never fit.
            let headers = response.headers_mut();
            if headers.get("grpc-status").map(HeaderValue::as_bytes) == Some(b"11") {
                headers.insert(
                    "grpc-status",
                    HeaderValue::from(tonic::Code::ResourceExhausted as i32),
                );
            }
            Ok(response)
        })
    }
}

impl<S: OtlpService> UnaryService<Bytes> for Export<S> {
    type Response = Vec<u8>;
    type Future = BoxFuture<Result<Response<Vec<u8>>, Status>>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let state = self.state.clone();
        Box::pin(async move {
            let span = tracing::info_span!(
                "grpc",
                signal = S::SIGNAL.as_str(),
                actor = tracing::field::Empty
            );
            let result = tracing::Instrument::instrument(
                async {
                    let token = auth::bearer_value(
                        request
                            .metadata()
                            .get("authorization")
                            .map(|v| v.as_bytes()),
                    )?;
                    let actor = state
                        .auth
                        .authenticate_request(
                            token,
                            client_identity(&request).as_ref(),
                            crate::auth::Via::Api,
                        )
                        .await?;
                    tracing::Span::current().record("actor", actor.name.as_str());
                    Caller(actor).require(Role::Ingest)?;
                    let outcome = state
                        .telemetry
                        .otlp(S::SIGNAL, request.get_ref(), Encoding::Protobuf)
                        .await?;
                    Ok::<_, ApiError>(outcome.to_protobuf())
                },
                span.clone(),
            )
            .await;
            match result {
                Ok(body) => Ok(Response::new(body)),
                Err(e) => {
                    span.in_scope(|| {
                        tracing::debug!(status = e.status.as_u16(), error = %e.message, "otlp export refused")
                    });
                    Err(Status::from(e))
                }
            }
        })
    }
}

/// The three services, gzip accepted (and used for replies when the
/// client accepts it), messages up to `max_message_bytes` after inflating.
pub fn routes(state: AppState, max_message_bytes: usize) -> tonic::service::Routes {
    fn export<S>(state: &AppState, max_message_bytes: usize) -> Export<S> {
        Export {
            state: state.clone(),
            max_message_bytes,
            _service: PhantomData,
        }
    }
    tonic::service::Routes::new(export::<Metrics>(&state, max_message_bytes))
        .add_service(export::<Logs>(&state, max_message_bytes))
        .add_service(export::<Traces>(&state, max_message_bytes))
}

/// Serves the OTLP services on `listener` until `shutdown` resolves, then
/// lets in-flight calls finish. With `tls`, connections are handshaken
/// here (concurrently, each within [`crate::tls::HANDSHAKE_TIMEOUT`]) and
/// handed to tonic, which puts the client's certificates in each call's
/// extensions.
pub async fn serve(
    listener: tokio::net::TcpListener,
    routes: tonic::service::Routes,
    tls: Option<Arc<crate::tls::ServerTls>>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let server = tonic::transport::Server::builder().add_routes(routes);
    let Some(tls) = tls else {
        return server
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener),
                shutdown,
            )
            .await;
    };
    let (handshaken, incoming) = tokio::sync::mpsc::channel(64);
    tokio::spawn(accept_tls(listener, tls, handshaken));
    let incoming = futures::stream::unfold(incoming, |mut rx| async move {
        rx.recv().await.map(|s| (Ok::<_, std::io::Error>(s), rx))
    });
    server
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}

type TlsStream = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;

/// Accepts and handshakes until the server stops reading `handshaken`.
async fn accept_tls(
    listener: tokio::net::TcpListener,
    tls: Arc<crate::tls::ServerTls>,
    handshaken: tokio::sync::mpsc::Sender<TlsStream>,
) {
    // As many handshakes in flight as the HTTP listeners serve connections:
    // a flood of silent clients waits in the kernel's queue, not in memory.
    let slots = Arc::new(tokio::sync::Semaphore::new(
        crate::http::serve::MAX_CONNECTIONS,
    ));
    loop {
        let slot = tokio::select! {
            _ = handshaken.closed() => return,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => return,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = handshaken.closed() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept an OTLP/gRPC connection");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let acceptor = tls.acceptor();
        let handshaken = handshaken.clone();
        tokio::spawn(async move {
            let _slot = slot;
            match tokio::time::timeout(crate::tls::HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
            {
                Ok(Ok(stream)) => {
                    let _ = handshaken.send(stream).await;
                }
                Ok(Err(e)) => tracing::debug!(error = %e, %peer, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

/// The client certificate of a call that came over TLS, if any.
fn client_identity<T>(request: &Request<T>) -> Option<crate::tls::ClientIdentity> {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    let info = request
        .extensions()
        .get::<TlsConnectInfo<TcpConnectInfo>>()?;
    crate::tls::ClientIdentity::of(info.peer_certs().as_deref().map(Vec::as_slice))
}
