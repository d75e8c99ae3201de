//! `GET /api/v1/cluster` (role `reader`): the daemons sharing the registry
//! and the duties each holds.

use axum::Json;
use axum::extract::State;

use modelwatch_registry::{ClusterView, Role};

use super::AppState;
use super::error::ApiResult;
use crate::auth::Caller;

/// The daemons seen within the member timeout (`--duty-takeover-seconds`),
/// the duties each holds, and every duty's lease with its fencing token.
#[utoipa::path(get, path = "/api/v1/cluster", tag = "health",
    responses((status = 200, body = ClusterView)),
    security(("bearer" = [])))]
pub async fn get_cluster(
    State(s): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<ClusterView>> {
    caller.require(Role::Reader)?;
    Ok(Json(s.cluster.view().await?))
}
