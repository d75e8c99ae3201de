//! The Alertmanager receiver `POST /api/v1/alerts/alertmanager` (role
//! `approver`: it can move aliases) and the record of what it received,
//! `GET /api/v1/alerts`.

use axum::Json;
use axum::extract::State;
use modelwatch_registry::{AlertRecord, Page, Role};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiResult, ErrorBody};
use super::extract::{ApiBytes, ApiQuery};
use super::params::Params;
use super::registry::{PageParams, page_from};
use crate::alerts::NotificationReport;
use crate::auth::Caller;

#[utoipa::path(post, path = "/api/v1/alerts/alertmanager", tag = "alerts",
    request_body(content = Object, content_type = "application/json",
        description = "Alertmanager webhook payload, version 4 (unknown fields are ignored)"),
    responses(
        (status = 200, body = NotificationReport,
            description = "every alert handled: rolled back, recommended, refused, ignored or resolved (each recorded and audited); repeats are marked `duplicate` and not acted on again"),
        (status = 400, body = ErrorBody, description = "not a version-4 webhook payload; Alertmanager does not retry it"),
        (status = 403, body = ErrorBody, description = "the token's role is below approver")),
    security(("bearer" = [])))]
pub async fn alertmanager_webhook(
    State(s): State<AppState>,
    caller: Caller,
    ApiBytes(body): ApiBytes,
) -> ApiResult<Json<NotificationReport>> {
    let actor = caller.require(Role::Approver)?;
    Ok(Json(
        crate::alerts::handle_notification(s.registry.as_ref(), actor, &body).await?,
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertPage {
    pub items: Vec<AlertRecord>,
    pub next_cursor: Option<String>,
}

page_from!(AlertPage, AlertRecord);

#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts",
    params(PageParams),
    responses((status = 200, body = AlertPage, description = "alert states received, oldest first")),
    security(("bearer" = [])))]
pub async fn list_alerts(
    State(s): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<std::collections::BTreeMap<String, String>>,
) -> ApiResult<Json<AlertPage>> {
    caller.require(Role::Reader)?;
    let mut p = Params::new(q);
    let page = p.page()?;
    p.finish()?;
    Ok(Json(
        s.registry.list_alert_notifications(&page).await?.into(),
    ))
}
