//! Promotion gate routes: a model's Rego policy
//! (`/api/v1/models/{model}/gate-policy`), a gate decision on a version
//! (`POST …/versions/{version}/gate`) and a gated alias move
//! (`POST …/versions/{version}/promote`). Thin: `crate::gate` builds the
//! input and evaluates, the registry stores and audits.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use utoipa::ToSchema;

use modelwatch_registry::{GatePolicyRecord, Role};

use super::AppState;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ApiBytes, ApiPath};
use super::registry::optional_json;
use crate::auth::Caller;
use crate::gate::{self, GateReport, Promotion};

/// JSON form of a policy upload (the raw Rego as `text/plain` is the other).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GatePolicyUpload {
    /// The Rego module.
    pub rego: String,
}

/// The policy text of an upload: the body itself (`text/plain`, as OPA's
/// own policy API takes it, or no content type) or `{"rego": "…"}` as JSON.
fn policy_text(headers: &HeaderMap, body: &[u8]) -> ApiResult<String> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("text/plain");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => serde_json::from_slice::<GatePolicyUpload>(body)
            .map(|u| u.rego)
            .map_err(|e| {
                ApiError::malformed_json(format!(
                    "invalid JSON body: {e}; send {{\"rego\": \"<policy>\"}}"
                ))
            }),
        "text/plain" | "application/x-rego" | "application/octet-stream" => {
            String::from_utf8(body.to_vec())
                .map_err(|e| ApiError::bad_request(format!("the policy is not UTF-8 text: {e}")))
        }
        other => Err(ApiError::unsupported_media_type(format!(
            "cannot read a policy sent as {other:?}; send the Rego text as text/plain or {{\"rego\": \"…\"}} as application/json"
        ))),
    }
}

#[utoipa::path(get, path = "/api/v1/models/{model}/gate-policy", tag = "gates",
    params(("model" = String, Path)),
    responses((status = 200, body = GatePolicyRecord), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_gate_policy(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(model): ApiPath<String>,
) -> ApiResult<Json<GatePolicyRecord>> {
    caller.require(Role::Reader)?;
    Ok(Json(s.registry.get_gate_policy(&model).await?))
}

/// Compiles the policy (package `modelwatch.gate`, a `deny` rule, one
/// evaluation on an example input) and stores it only if that succeeds.
#[utoipa::path(put, path = "/api/v1/models/{model}/gate-policy", tag = "gates",
    request_body(content = String, content_type = "text/plain",
        description = "the Rego module; or `{\"rego\": \"…\"}` as application/json"),
    params(("model" = String, Path)),
    responses((status = 200, body = GatePolicyRecord),
        (status = 400, body = ErrorBody, description = "`invalid_policy`: does not compile (line and column), wrong package, no `deny`"),
        (status = 403, body = ErrorBody, description = "needs role approver"),
        (status = 404, body = ErrorBody), (status = 415, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn set_gate_policy(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(model): ApiPath<String>,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> ApiResult<Json<GatePolicyRecord>> {
    // The gate decides what reaches production: as strict as a rollback.
    let actor = caller.require(Role::Approver)?;
    let rego = policy_text(&headers, &body)?;
    modelwatch_registry::gate::validate_policy_text(&rego)?;
    gate::check_policy(rego.clone()).await?;
    Ok(Json(
        s.registry.set_gate_policy(actor, &model, &rego).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/models/{model}/gate-policy", tag = "gates",
    params(("model" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_gate_policy(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(model): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let actor = caller.require(Role::Approver)?;
    s.registry.delete_gate_policy(actor, &model).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Body of a gate evaluation.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GateRequest {
    /// The alias the version would take (the policy sees it as `input.alias`).
    #[serde(default)]
    pub alias: Option<String>,
}

/// Evaluates the model's gate policy on a version. The answer is 200
/// whether the gate allows or denies; without a policy every version is
/// allowed, with a warning.
#[utoipa::path(post, path = "/api/v1/models/{model}/versions/{version}/gate", tag = "gates",
    request_body(content = Option<GateRequest>, description = "optional"),
    params(("model" = String, Path), ("version" = i64, Path)),
    responses((status = 200, body = GateReport, description = "allowed or denied, with the reasons"),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`gate_policy_error`: the stored policy failed on this version")),
    security(("bearer" = [])))]
pub async fn evaluate_gate(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((model, version)): ApiPath<(String, i64)>,
    ApiBytes(body): ApiBytes,
) -> ApiResult<Json<GateReport>> {
    let actor = caller.require(Role::Reader)?;
    let request: GateRequest = optional_json(&body)?;
    let report = gate::evaluate_for(
        &s.registry,
        &s.telemetry.store,
        actor,
        &model,
        version,
        request.alias.as_deref(),
        chrono::Utc::now(),
    )
    .await?;
    Ok(Json(report))
}

/// Body of a promotion.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromoteRequest {
    /// The alias to move, e.g. `production`.
    pub alias: String,
    /// Why; kept in the move history and the audit log.
    #[serde(default)]
    pub reason: String,
}

/// Moves an alias to the version only if the gate allows it; the move's
/// audit entry (`alias.set`) records the policy digest (`after.gate`).
#[utoipa::path(post, path = "/api/v1/models/{model}/versions/{version}/promote", tag = "gates",
    request_body = PromoteRequest,
    params(("model" = String, Path), ("version" = i64, Path)),
    responses((status = 200, body = Promotion),
        (status = 403, body = ErrorBody, description = "the alias needs a higher role (protected aliases: approver)"),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`gate_denied` (the reasons are in the message; nothing moved), or `conflict` when the policy changed meanwhile"),
        (status = 422, body = ErrorBody, description = "`gate_policy_error`")),
    security(("bearer" = [])))]
pub async fn promote(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((model, version)): ApiPath<(String, i64)>,
    ApiBytes(body): ApiBytes,
) -> ApiResult<Json<Promotion>> {
    // Every alias move needs at least editor; the body names the alias,
    // which may need more.
    caller.require(Role::Editor)?;
    let request: PromoteRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::malformed_json(format!(
            "invalid JSON body: {e}; send {{\"alias\": \"production\"}}"
        ))
    })?;
    Ok(Json(
        promote_version(&s, &caller, &model, version, &request).await?,
    ))
}

/// A gated alias move with the roles it needs (the API and the UI).
pub async fn promote_version(
    s: &AppState,
    caller: &Caller,
    model: &str,
    version: i64,
    request: &PromoteRequest,
) -> ApiResult<Promotion> {
    caller.require(Role::Editor)?;
    // The same role as moving the alias by hand.
    let actor = caller.require(s.auth.role_for_alias(&request.alias))?;
    Ok(gate::promote(
        &s.registry,
        &s.telemetry.store,
        actor,
        model,
        version,
        &request.alias,
        &request.reason,
        chrono::Utc::now(),
    )
    .await?)
}
