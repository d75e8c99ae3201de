//! Monitoring routes: a model's policy (`/api/v1/models/{model}/policy`),
//! every policy (`/api/v1/policies`) and an evaluation on demand
//! (`POST /api/v1/evaluate`). Thin: the registry stores policies, the
//! evaluator evaluates.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use modelwatch_registry::{MonitoringPolicy, PolicyRecord, Role};

use super::AppState;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ApiBytes, ApiJson, ApiPath};
use crate::auth::Caller;
use crate::evaluator::CycleReport;

#[utoipa::path(get, path = "/api/v1/models/{model}/policy", tag = "monitoring",
    params(("model" = String, Path)),
    responses((status = 200, body = PolicyRecord), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_policy(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(model): ApiPath<String>,
) -> ApiResult<Json<PolicyRecord>> {
    caller.require(Role::Reader)?;
    Ok(Json(s.registry.get_policy(&model).await?))
}

#[utoipa::path(put, path = "/api/v1/models/{model}/policy", tag = "monitoring",
    request_body = MonitoringPolicy,
    params(("model" = String, Path)),
    responses((status = 200, body = PolicyRecord), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn set_policy(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(model): ApiPath<String>,
    json: ApiJson<MonitoringPolicy>,
) -> ApiResult<Json<PolicyRecord>> {
    // The least role any policy needs comes before the body; `store_policy`
    // asks for more when the policy rolls back by itself.
    caller.require(Role::Editor)?;
    let policy = json.parse()?;
    Ok(Json(store_policy(&s, &caller, &model, policy).await?))
}

/// Stores a model's policy with the roles it needs (the API and the UI).
pub async fn store_policy(
    s: &AppState,
    caller: &Caller,
    model: &str,
    policy: MonitoringPolicy,
) -> ApiResult<PolicyRecord> {
    let actor = caller.require(Role::Editor)?;
    // Automatic and alert-driven rollback move aliases without a person:
    // like a rollback by hand, enabling them needs `approver`.
    if policy.moves_alias_unattended() {
        caller.require(Role::Approver)?;
    }
    Ok(s.registry.set_policy(actor, model, policy).await?)
}

#[utoipa::path(delete, path = "/api/v1/models/{model}/policy", tag = "monitoring",
    params(("model" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_policy(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(model): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let actor = caller.require(Role::Editor)?;
    s.registry.delete_policy(actor, &model).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/policies", tag = "monitoring",
    responses((status = 200, body = Vec<PolicyRecord>)),
    security(("bearer" = [])))]
pub async fn list_policies(
    State(s): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<PolicyRecord>>> {
    caller.require(Role::Reader)?;
    Ok(Json(s.registry.list_policies().await?))
}

/// Body of `POST /api/v1/evaluate`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvaluateRequest {
    /// Only this model (default: every model with a policy).
    #[serde(default)]
    pub model: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/evaluate", tag = "monitoring",
    request_body(content = EvaluateRequest, description = "optional; an empty body evaluates every watched model"),
    responses((status = 200, body = CycleReport), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn evaluate(
    State(s): State<AppState>,
    caller: Caller,
    ApiBytes(body): ApiBytes,
) -> ApiResult<Json<CycleReport>> {
    caller.require(Role::Editor)?;
    let request: EvaluateRequest = super::registry::optional_json(&body)?;
    let handle = s.evaluator.as_ref().ok_or_else(|| {
        ApiError::unavailable("the evaluator is not running in this daemon (--no-evaluator)")
    })?;
    Ok(Json(handle.evaluate_now(request.model).await?))
}
