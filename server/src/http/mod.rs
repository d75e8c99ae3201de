//! The HTTP API: router, state, and the OpenAPI document generated from the
//! handlers' annotations (`utoipa`). Every `/api/v1` route is registered
//! through [`OpenApiRouter::routes`], so a route cannot exist without being
//! in the document.

pub mod alerts;
pub mod artifact_uploads;
pub mod artifacts;
pub mod cluster;
pub mod error;
pub mod extract;
pub mod gates;
pub mod mlflow;
pub mod monitoring;
pub mod otlp;
mod params;
pub mod registry;
pub mod serve;
pub mod telemetry;
pub mod upload;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{Request, StatusCode};
use axum::response::IntoResponse;
use axum::{Json, Router};
use serde_json::json;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use modelwatch_registry::{RegistryStore, Role};

use crate::auth::{Auth, Caller};
use error::{ApiError, ApiResult};

/// Everything a handler may need; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub registry: Arc<dyn RegistryStore>,
    pub telemetry: Arc<crate::telemetry::Telemetry>,
    pub auth: Arc<Auth>,
    pub limits: Limits,
    pub uploads: Arc<crate::upload::Uploads>,
    /// The running evaluator; `None` with `--no-evaluator`.
    pub evaluator: Option<crate::evaluator::EvaluatorHandle>,
    pub webhooks: crate::webhooks::Webhooks,
    /// Where `POST /api/v1/sql` runs (shared with the PostgreSQL listener).
    pub sql: Arc<crate::sql::SqlEngine>,
    /// The background duties, for `/readyz`.
    pub duties: crate::duties::Duties,
    /// This daemon's membership and duty leases.
    pub cluster: Arc<crate::cluster::Cluster>,
    /// Model version files (native and MLflow artifact routes).
    pub artifacts: modelwatch_artifacts::ArtifactStore,
    /// This daemon's signed audit anchors, when it writes them.
    pub anchors: Option<Arc<crate::audit_anchor::OwnAnchors>>,
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest accepted JSON request body.
    pub max_body_bytes: usize,
    /// Largest accepted (compressed) remote-write body.
    pub max_write_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_write_bytes: 32 * 1024 * 1024,
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "modelwatch",
        description = "Model registry with the observability loop built in. Errors are `{\"error\": {\"code\", \"message\"}}`.",
        license(name = "Apache-2.0")
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "models"), (name = "versions"), (name = "aliases"),
        (name = "recommendations"), (name = "monitoring"), (name = "audit"), (name = "tokens"), (name = "telemetry"), (name = "health"),
        (name = "webhooks"), (name = "alerts"), (name = "gates"), (name = "artifacts")
    )
)]
struct ApiDoc;

/// The file routes take a multi-segment `{*path}`, which `routes!` cannot
/// route; they are routed by hand and documented from here.
#[derive(OpenApi)]
#[openapi(paths(artifacts::put_artifact, artifacts::get_artifact))]
struct ArtifactFilesDoc;

/// A version's file, by path (any depth).
const ARTIFACT_FILE_ROUTE: &str = "/api/v1/models/{model}/versions/{version}/artifacts/{*path}";

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

/// Routes documented in the OpenAPI document, split into the router and the document.
fn api_router(limits: Limits) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    use registry::*;
    // Ingest bodies have their own, larger limit.
    // Uploads stream their body and count it against --max-upload-bytes
    // themselves (the body-limit layer only applies to buffered bodies).
    let ingest = OpenApiRouter::new()
        .routes(routes!(upload::upload_inferences))
        .routes(routes!(upload::upload_reference))
        .routes(routes!(upload::upload_labels))
        .routes(routes!(telemetry::remote_write))
        .layer(DefaultBodyLimit::max(limits.max_write_bytes));
    let json = OpenApiRouter::new()
        .routes(routes!(telemetry::run_sql))
        .routes(routes!(
            monitoring::get_policy,
            monitoring::set_policy,
            monitoring::delete_policy
        ))
        .routes(routes!(monitoring::list_policies))
        .routes(routes!(monitoring::evaluate))
        .routes(routes!(
            gates::get_gate_policy,
            gates::set_gate_policy,
            gates::delete_gate_policy
        ))
        .routes(routes!(gates::evaluate_gate))
        .routes(routes!(gates::promote))
        .routes(routes!(
            artifacts::list_artifacts,
            artifacts::seal_artifacts
        ))
        .routes(routes!(artifact_uploads::begin_upload))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes));
    // Chunks stream their bodies and are bounded by the size the upload
    // was begun with.
    let chunks = OpenApiRouter::new().routes(routes!(
        artifact_uploads::get_upload,
        artifact_uploads::append_upload,
        artifact_uploads::abort_upload
    ));
    let (router, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(ingest)
        .merge(json)
        .merge(chunks)
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(cluster::get_cluster))
        .routes(routes!(prometheus_metrics))
        .routes(routes!(openapi_json))
        .routes(routes!(list_models, create_model))
        .routes(routes!(get_model, update_model, delete_model))
        .routes(routes!(set_model_tag, delete_model_tag))
        .routes(routes!(list_versions, create_version))
        .routes(routes!(get_version, update_version, delete_version))
        .routes(routes!(set_version_tag, delete_version_tag))
        .routes(routes!(list_aliases))
        .routes(routes!(get_alias, set_alias, delete_alias))
        .routes(routes!(rollback_alias))
        .routes(routes!(raise_recommendation))
        .routes(routes!(list_recommendations))
        .routes(routes!(get_recommendation))
        .routes(routes!(acknowledge_recommendation))
        .routes(routes!(dismiss_recommendation))
        .routes(routes!(list_audit))
        .routes(routes!(verify_audit))
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
        .routes(routes!(webhooks::list_webhooks, webhooks::create_webhook))
        .routes(routes!(webhooks::get_webhook, webhooks::delete_webhook))
        .routes(routes!(webhooks::list_deliveries))
        .routes(routes!(webhooks::test_webhook))
        .routes(routes!(alerts::alertmanager_webhook))
        .routes(routes!(alerts::list_alerts))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .split_for_parts();
    // Artifact files stream their bodies and count them against
    // --max-artifact-file-bytes themselves.
    let router = router.route(
        ARTIFACT_FILE_ROUTE,
        axum::routing::get(artifacts::get_artifact).put(artifacts::put_artifact),
    );
    let mut doc = doc;
    doc.merge(ArtifactFilesDoc::openapi());
    (router, doc)
}

/// The whole HTTP application, testable with `tower::ServiceExt::oneshot`.
/// It serves the OTLP/HTTP routes too (`/v1/metrics|logs|traces`).
pub fn app(state: AppState) -> Router {
    let (router, doc) = api_router(state.limits);
    let doc = Arc::new(doc);
    traced(
        router
            .route_layer(axum::Extension(doc))
            .merge(otlp::routes())
            .nest(
                "/api/2.0/mlflow",
                mlflow::routes().layer(DefaultBodyLimit::max(state.limits.max_body_bytes)),
            )
            .nest("/api/2.0/mlflow-artifacts", mlflow::artifacts::routes())
            .merge(crate::ui::routes(state.limits.max_body_bytes)),
    )
    .with_state(state)
}

/// The dedicated OTLP/HTTP listener's application: only `/v1/metrics`,
/// `/v1/logs` and `/v1/traces`.
pub fn otlp_app(state: AppState) -> Router {
    traced(otlp::routes()).with_state(state)
}

/// Longest request target (path and query) the API reads; hyper itself
/// answers targets over 64 KiB with a bare 414 before any of this runs.
pub const MAX_URI_BYTES: usize = 32 * 1024;

/// Fallbacks and the request span every listener shares.
fn traced(router: Router<AppState>) -> Router<AppState> {
    router
        .route_layer(axum::middleware::from_fn(crate::metrics::track_http))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(close_if_body_unread))
        .layer(axum::middleware::from_fn(refuse_long_uri))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<_>| {
                    tracing::info_span!(
                        "request",
                        method = %req.method(),
                        path = %req.uri().path(),
                        actor = tracing::field::Empty,
                    )
                })
                .on_request(())
                .on_failure(log_failure)
                .on_response(
                    |res: &axum::response::Response, latency: Duration, _span: &tracing::Span| {
                        tracing::debug!(
                            status = res.status().as_u16(),
                            latency_ms = latency.as_secs_f64() * 1e3,
                            "response"
                        );
                    },
                ),
        )
}

/// tower-http logs every 5xx at ERROR; under overload that is one line per
/// refused write (thousands a second). 503s are expected back-pressure,
/// counted by `modelwatch_http_requests_total{status="503"}`: they get one
/// WARN line per interval. Other failures keep ERROR (their cause is logged
/// where they happen).
fn log_failure(
    class: tower_http::classify::ServerErrorsFailureClass,
    latency: Duration,
    _span: &tracing::Span,
) {
    use tower_http::classify::ServerErrorsFailureClass as C;
    static OVERLOADED: crate::logging::RateLimited =
        crate::logging::RateLimited::new(Duration::from_secs(10));
    match class {
        C::StatusCode(StatusCode::SERVICE_UNAVAILABLE) => {
            if let Some(suppressed) = OVERLOADED.permit() {
                tracing::warn!(
                    suppressed,
                    "answered 503 Service Unavailable (overload or shutdown; `suppressed` more since the last line, all counted in modelwatch_http_requests_total)"
                );
            }
        }
        other => tracing::error!(
            class = %other,
            latency_ms = latency.as_secs_f64() * 1e3,
            "request failed"
        ),
    }
}

/// A JSON 414 for request targets the API will not read (see
/// [`MAX_URI_BYTES`]).
async fn refuse_long_uri(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if len > MAX_URI_BYTES {
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!(
                "the request target is {len} bytes; the limit is {MAX_URI_BYTES}: send long filters in a POST body"
            ),
        )
        .into_response();
    }
    next.run(req).await
}

/// Answers that leave part of an HTTP/1 request body unread (an early 401,
/// a 413) end the connection, since the rest of the body would be read as
/// the next request; `Connection: close` says so, so the client does not
/// send its next request on a connection about to close.
async fn close_if_body_unread(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use http_body::Body as _;
    let http1 = req.version() <= axum::http::Version::HTTP_11;
    if !http1 || req.body().is_end_stream() {
        return next.run(req).await;
    }
    let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = finished.clone();
    let req = req.map(|body| {
        axum::body::Body::new(WatchedBody {
            body,
            finished: seen,
        })
    });
    let mut response = next.run(req).await;
    if !finished.load(std::sync::atomic::Ordering::Acquire) {
        response.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    response
}

/// A request body that records when it was read to the end.
struct WatchedBody {
    body: axum::body::Body,
    finished: Arc<std::sync::atomic::AtomicBool>,
}

impl http_body::Body for WatchedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.body).poll_frame(cx);
        if matches!(polled, std::task::Poll::Ready(None)) || self.body.is_end_stream() {
            self.finished
                .store(true, std::sync::atomic::Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "alive")))]
async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// Readiness: the registry database answers and every background duty
/// (evaluator, persister, maintenance, WAL writer, webhooks) is alive.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, description = "ready"), (status = 503, body = error::ErrorBody, description = "the registry is unreachable or a background duty died")))]
async fn readyz(State(s): State<AppState>) -> ApiResult<impl IntoResponse> {
    let dead = s.duties.dead();
    if !dead.is_empty() {
        let which: Vec<String> = dead
            .iter()
            .map(|(duty, cause)| format!("{duty} ({cause})"))
            .collect();
        return Err(ApiError::unavailable(format!(
            "background duties died: {}; restart the daemon (its log has the details)",
            which.join("; ")
        )));
    }
    s.registry.ping().await.map_err(|e| {
        tracing::warn!(error = %e, "registry not ready");
        ApiError::unavailable("the registry database is not reachable")
    })?;
    Ok(Json(json!({ "status": "ready" })))
}

/// Prometheus metrics in the text exposition format (role `reader`).
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "text exposition format 0.0.4", content_type = "text/plain")),
    security(("bearer" = [])))]
async fn prometheus_metrics(
    State(s): State<AppState>,
    caller: Caller,
) -> ApiResult<impl IntoResponse> {
    caller.require(Role::Reader)?;
    // Probes run at scrape time too, so a dead duty shows in the metric
    // even when nobody asks /readyz.
    s.duties.dead();
    s.cluster.export_metrics().await;
    crate::metrics::metrics()
        .sql_memory_reserved
        .set(i64::try_from(s.sql.memory_reserved()).unwrap_or(i64::MAX));
    let text = crate::metrics::metrics().render(&s.telemetry.store.stats(), &s.registry.stats());
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    ))
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "health",
    responses((status = 200, description = "the OpenAPI 3.1 document")), security(("bearer" = [])))]
async fn openapi_json(
    caller: Caller,
    axum::Extension(doc): axum::Extension<Arc<utoipa::openapi::OpenApi>>,
) -> ApiResult<impl IntoResponse> {
    caller.require(Role::Reader)?;
    Ok(Json(doc.as_ref().clone()))
}

async fn not_found(uri: axum::http::Uri) -> axum::response::Response {
    if uri.path().starts_with("/ui/") {
        return crate::ui::not_found_page();
    }
    ApiError::not_found("no such route; see /api/v1/openapi.json").into_response()
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method; see /api/v1/openapi.json",
    )
}
