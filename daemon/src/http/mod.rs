//! The HTTP API: router, state, and the OpenAPI document generated from the
//! handlers' annotations (`utoipa`). Every `/api/v1` route is registered
//! through [`OpenApiRouter::routes`], so a route cannot exist without being
//! in the document.

pub mod alerts;
pub mod error;
pub mod extract;
pub mod gates;
pub mod mlflow;
pub mod monitoring;
pub mod otlp;
mod params;
pub mod registry;
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
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest accepted JSON request body.
    pub max_body_bytes: usize,
    /// Largest accepted (compressed) remote-write body.
    pub max_write_bytes: usize,
    /// Longest a SQL query may run (`--sql-timeout-seconds`).
    pub sql_timeout: std::time::Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_write_bytes: 32 * 1024 * 1024,
            sql_timeout: crate::sql::DEFAULT_TIMEOUT,
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
        (name = "webhooks"), (name = "alerts"), (name = "gates")
    )
)]
struct ApiDoc;

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
        .layer(DefaultBodyLimit::max(limits.max_body_bytes));
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(ingest)
        .merge(json)
        .routes(routes!(healthz))
        .routes(routes!(readyz))
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
        .split_for_parts()
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
            ),
    )
    .with_state(state)
}

/// The dedicated OTLP/HTTP listener's application: only `/v1/metrics`,
/// `/v1/logs` and `/v1/traces`.
pub fn otlp_app(state: AppState) -> Router {
    traced(otlp::routes()).with_state(state)
}

/// Fallbacks and the request span every listener shares.
fn traced(router: Router<AppState>) -> Router<AppState> {
    router
        .route_layer(axum::middleware::from_fn(crate::metrics::track_http))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
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

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "alive")))]
async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// Readiness: the registry database answers.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, description = "ready"), (status = 503, body = error::ErrorBody)))]
async fn readyz(State(s): State<AppState>) -> ApiResult<impl IntoResponse> {
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

async fn not_found() -> ApiError {
    ApiError::not_found("no such route; see /api/v1/openapi.json")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method; see /api/v1/openapi.json",
    )
}
