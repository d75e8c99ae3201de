//! Webhook routes under `/api/v1/webhooks` (role `admin`): subscriptions,
//! their deliveries, and a test event.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use modelwatch_registry::webhooks::{
    CreatedWebhook, DeliveryFilter, NewWebhook, Webhook, WebhookDelivery,
};
use modelwatch_registry::{Page, Role};

use super::AppState;
use super::error::{ApiResult, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::params::Params;
use super::registry::{PageParams, page_from};
use crate::auth::Caller;

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryPage {
    pub items: Vec<WebhookDelivery>,
    pub next_cursor: Option<String>,
}

page_from!(DeliveryPage, WebhookDelivery);

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Documents the query string; parsing goes through `Params`.
pub struct DeliveryListParams {
    /// `pending`, `delivered` or `failed`.
    status: Option<String>,
}

/// The reply to a test request.
#[derive(Debug, Serialize, ToSchema)]
pub struct PingQueued {
    pub webhook: String,
    /// The `id` of the queued `ping` event; its delivery is listed under
    /// `/api/v1/webhooks/{name}/deliveries`.
    pub event_id: String,
}

#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", request_body = NewWebhook,
    responses((status = 201, body = CreatedWebhook, description = "created; the secret is shown only in this reply"),
        (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_webhook(
    State(s): State<AppState>,
    caller: Caller,
    json: ApiJson<NewWebhook>,
) -> ApiResult<impl IntoResponse> {
    let actor = caller.require(Role::Admin)?;
    let new = json.parse()?;
    let created = s.webhooks.create(actor, new).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks",
    responses((status = 200, body = Vec<Webhook>)),
    security(("bearer" = [])))]
pub async fn list_webhooks(
    State(s): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<Webhook>>> {
    caller.require(Role::Admin)?;
    Ok(Json(s.registry.list_webhooks().await?))
}

#[utoipa::path(get, path = "/api/v1/webhooks/{name}", tag = "webhooks",
    params(("name" = String, Path)),
    responses((status = 200, body = Webhook), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_webhook(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Webhook>> {
    caller.require(Role::Admin)?;
    Ok(Json(s.registry.get_webhook(&name).await?))
}

#[utoipa::path(delete, path = "/api/v1/webhooks/{name}", tag = "webhooks",
    params(("name" = String, Path)),
    responses((status = 204, description = "deleted with its deliveries"), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_webhook(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let actor = caller.require(Role::Admin)?;
    s.registry.delete_webhook(actor, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/webhooks/{name}/deliveries", tag = "webhooks",
    params(("name" = String, Path), PageParams, DeliveryListParams),
    responses((status = 200, body = DeliveryPage), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_deliveries(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<BTreeMap<String, String>>,
) -> ApiResult<Json<DeliveryPage>> {
    caller.require(Role::Admin)?;
    let mut p = Params::new(q);
    let page = p.page()?;
    let filter = DeliveryFilter {
        status: p.named("status")?,
    };
    p.finish()?;
    Ok(Json(
        s.registry
            .list_webhook_deliveries(&name, &filter, &page)
            .await?
            .into(),
    ))
}

#[utoipa::path(post, path = "/api/v1/webhooks/{name}/test", tag = "webhooks",
    params(("name" = String, Path)),
    responses((status = 202, body = PingQueued, description = "a `ping` event is queued for this subscription"),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn test_webhook(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<impl IntoResponse> {
    let actor = caller.require(Role::Admin)?;
    let event_id = s.webhooks.ping(actor, &name).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(PingQueued {
            webhook: name,
            event_id,
        }),
    ))
}
