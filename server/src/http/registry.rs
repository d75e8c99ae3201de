//! Registry routes under `/api/v1`: thin handlers that authorize, extract,
//! call the registry store and shape the reply.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use modelwatch_registry::{
    Alias, AuditEntry, AuditFilter, AuditVerification, Model, ModelFilter, ModelUpdate, NewModel,
    NewRecommendation, NewVersion, Page, Recommendation, RecommendationFilter, RecommendationKind,
    RecommendationStatus, Role, TagTarget, Tags, TokenInfo, Transition, Version, VersionFilter,
    VersionStatus, VersionUpdate, tokens,
};
use modelwatch_types::records::{CreatedToken, NewToken};

use super::AppState;
use super::error::{ApiResult, ErrorBody};
use super::extract::{ApiBytes, ApiJson, ApiPath, ApiQuery};
use super::params::Params;
use crate::auth::Caller;

type Query = ApiQuery<BTreeMap<String, String>>;

/// Parses an optional JSON body: empty means the default.
pub(super) fn optional_json<T: Default + serde::de::DeserializeOwned>(
    body: &Bytes,
) -> ApiResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| super::error::ApiError::malformed_json(format!("invalid JSON body: {e}")))
}

/// Common listing parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Documents the query string; parsing goes through `Params`.
pub struct PageParams {
    /// Items per page, 1–1000 (default 50).
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ModelListParams {
    /// Only models whose name starts with this.
    name_prefix: Option<String>,
    /// Only models with this owner.
    owner: Option<String>,
    /// `tag.<key>=<value>`: only models with this tag value (repeatable).
    #[param(rename = "tag.<key>")]
    tag: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct VersionListParams {
    /// `ready` or `archived`.
    status: Option<String>,
    run_id: Option<String>,
    /// `tag.<key>=<value>`: only versions with this tag value (repeatable).
    #[param(rename = "tag.<key>")]
    tag: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelPage {
    pub items: Vec<Model>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionPage {
    pub items: Vec<Version>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecommendationPage {
    pub items: Vec<Recommendation>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    pub next_cursor: Option<String>,
}

/// `From<Page<$from>>` for a listing's reply type `$page` (one per item
/// type, so each has its own name in the OpenAPI document).
macro_rules! page_from {
    ($page:ident, $from:ty) => {
        impl From<Page<$from>> for $page {
            fn from(p: Page<$from>) -> Self {
                Self {
                    items: p.items,
                    next_cursor: p.next_cursor,
                }
            }
        }
    };
}
pub(super) use page_from;
page_from!(ModelPage, Model);
page_from!(VersionPage, Version);
page_from!(RecommendationPage, Recommendation);
page_from!(AuditPage, AuditEntry);

#[utoipa::path(get, path = "/api/v1/models", tag = "models",
    params(PageParams, ModelListParams),
    responses((status = 200, body = ModelPage), (status = 400, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_models(
    State(s): State<AppState>,
    caller: Caller,
    ApiQuery(q): Query,
) -> ApiResult<Json<ModelPage>> {
    caller.require(Role::Reader)?;
    let mut p = Params::new(q);
    let page = p.page()?;
    let filter = ModelFilter {
        name_prefix: p.string("name_prefix"),
        owner: p.string("owner"),
        tags: p.tags(),
    };
    p.finish()?;
    Ok(Json(s.registry.list_models(&filter, &page).await?.into()))
}

#[utoipa::path(post, path = "/api/v1/models", tag = "models", request_body = NewModel,
    responses((status = 201, body = Model), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_model(
    State(s): State<AppState>,
    caller: Caller,
    json: ApiJson<NewModel>,
) -> ApiResult<impl IntoResponse> {
    let actor = caller.require(Role::Editor)?;
    let new = json.parse()?;
    let model = s.registry.create_model(actor, new).await?;
    Ok((StatusCode::CREATED, Json(model)))
}

#[utoipa::path(get, path = "/api/v1/models/{model}", tag = "models",
    params(("model" = String, Path)),
    responses((status = 200, body = Model), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_model(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(model): ApiPath<String>,
) -> ApiResult<Json<Model>> {
    caller.require(Role::Reader)?;
    Ok(Json(s.registry.get_model(&model).await?))
}

#[utoipa::path(patch, path = "/api/v1/models/{model}", tag = "models", request_body = ModelUpdate,
    params(("model" = String, Path)),
    responses((status = 200, body = Model), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_model(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(model): ApiPath<String>,
    json: ApiJson<ModelUpdate>,
) -> ApiResult<Json<Model>> {
    let actor = caller.require(Role::Editor)?;
    let update = json.parse()?;
    Ok(Json(s.registry.update_model(actor, &model, update).await?))
}

#[utoipa::path(delete, path = "/api/v1/models/{model}", tag = "models",
    params(("model" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_model(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(model): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let actor = caller.require(Role::Editor)?;
    s.registry.delete_model(actor, &model).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Body of a tag write.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TagValue {
    pub value: String,
}

#[utoipa::path(put, path = "/api/v1/models/{model}/tags/{key}", tag = "models", request_body = TagValue,
    params(("model" = String, Path), ("key" = String, Path)),
    responses((status = 200, body = Tags, description = "all tags of the model")),
    security(("bearer" = [])))]
pub async fn set_model_tag(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((model, key)): ApiPath<(String, String)>,
    json: ApiJson<TagValue>,
) -> ApiResult<Json<Tags>> {
    let actor = caller.require(Role::Editor)?;
    let body = json.parse()?;
    Ok(Json(
        s.registry
            .set_tag(actor, &TagTarget::Model { model }, &key, Some(&body.value))
            .await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/models/{model}/tags/{key}", tag = "models",
    params(("model" = String, Path), ("key" = String, Path)),
    responses((status = 200, body = Tags, description = "remaining tags of the model")),
    security(("bearer" = [])))]
pub async fn delete_model_tag(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((model, key)): ApiPath<(String, String)>,
) -> ApiResult<Json<Tags>> {
    let actor = caller.require(Role::Editor)?;
    Ok(Json(
        s.registry
            .set_tag(actor, &TagTarget::Model { model }, &key, None)
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/models/{model}/versions", tag = "versions",
    params(("model" = String, Path), PageParams, VersionListParams),
    responses((status = 200, body = VersionPage), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_versions(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(model): ApiPath<String>,
    ApiQuery(q): Query,
) -> ApiResult<Json<VersionPage>> {
    caller.require(Role::Reader)?;
    let mut p = Params::new(q);
    let page = p.page()?;
    let filter = VersionFilter {
        status: p.named::<VersionStatus>("status")?,
        run_id: p.string("run_id"),
        tags: p.tags(),
    };
    p.finish()?;
    Ok(Json(
        s.registry
            .list_versions(&model, &filter, &page)
            .await?
            .into(),
    ))
}

#[utoipa::path(post, path = "/api/v1/models/{model}/versions", tag = "versions", request_body = NewVersion,
    params(("model" = String, Path)),
    responses((status = 201, body = Version), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_version(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(model): ApiPath<String>,
    json: ApiJson<NewVersion>,
) -> ApiResult<impl IntoResponse> {
    let actor = caller.require(Role::Editor)?;
    let mut new = json.parse()?;
    let Some(uri) = new.reference_uri.clone() else {
        let version = s.registry.create_version(actor, &model, new).await?;
        return Ok((StatusCode::CREATED, Json(version)));
    };
    // Reference data first: the whole file is read and validated before the
    // version exists, so a bad file creates nothing.
    s.registry.get_model(&model).await?;
    modelwatch_registry::validate::new_version(&new)?;
    let upload_id = crate::upload::new_upload_id();
    let cfg = modelwatch_collectors::batch::UploadConfig::new(
        model.clone(),
        String::new(),
        upload_id.clone(),
        chrono::Utc::now().timestamp_micros(),
        new.features.clone(),
    );
    let features = crate::upload::check_reference_uri(&s.uploads, &uri, cfg.clone()).await?;
    if new.features.is_empty() {
        new.features = features;
    }
    let version = s.registry.create_version(actor, &model, new).await?;
    // The file was read whole once already; this second pass stores it,
    // stamped with the new version's number, in one bulk load.
    let cfg = modelwatch_collectors::batch::UploadConfig {
        version: version.version.to_string(),
        ..cfg
    };
    let stored = crate::upload::load_reference_uri(&s.uploads, &s.telemetry.store, &uri, cfg)
        .await
        .map_err(|e| {
            tracing::error!(model = %model, version = version.version, error = %e, "version created but its reference_uri could not be stored");
            crate::upload::UploadError::ReferenceUri {
                uri: uri.clone(),
                reason: format!(
                    "version {} was created but its reference data could not be stored ({e}); nothing of it was stored: upload it with POST /api/v1/models/{model}/versions/{}/reference",
                    version.version, version.version
                ),
            }
        })?;
    tracing::info!(model = %model, version = version.version, upload_id, rows = stored.rows, reference_uri = %uri, "reference data loaded");
    Ok((StatusCode::CREATED, Json(version)))
}

#[utoipa::path(get, path = "/api/v1/models/{model}/versions/{version}", tag = "versions",
    params(("model" = String, Path), ("version" = i64, Path)),
    responses((status = 200, body = Version), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_version(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((model, version)): ApiPath<(String, i64)>,
) -> ApiResult<Json<Version>> {
    caller.require(Role::Reader)?;
    Ok(Json(s.registry.get_version(&model, version).await?))
}

#[utoipa::path(patch, path = "/api/v1/models/{model}/versions/{version}", tag = "versions", request_body = VersionUpdate,
    params(("model" = String, Path), ("version" = i64, Path)),
    responses((status = 200, body = Version), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_version(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((model, version)): ApiPath<(String, i64)>,
    json: ApiJson<VersionUpdate>,
) -> ApiResult<Json<Version>> {
    let actor = caller.require(Role::Editor)?;
    let update = json.parse()?;
    Ok(Json(
        s.registry
            .update_version(actor, &model, version, update)
            .await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/models/{model}/versions/{version}", tag = "versions",
    params(("model" = String, Path), ("version" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "an alias points at the version")),
    security(("bearer" = [])))]
pub async fn delete_version(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((model, version)): ApiPath<(String, i64)>,
) -> ApiResult<StatusCode> {
    let actor = caller.require(Role::Editor)?;
    s.registry.delete_version(actor, &model, version).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(put, path = "/api/v1/models/{model}/versions/{version}/tags/{key}", tag = "versions", request_body = TagValue,
    params(("model" = String, Path), ("version" = i64, Path), ("key" = String, Path)),
    responses((status = 200, body = Tags, description = "all tags of the version")),
    security(("bearer" = [])))]
pub async fn set_version_tag(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((model, version, key)): ApiPath<(String, i64, String)>,
    json: ApiJson<TagValue>,
) -> ApiResult<Json<Tags>> {
    let actor = caller.require(Role::Editor)?;
    let body = json.parse()?;
    let target = TagTarget::Version { model, version };
    Ok(Json(
        s.registry
            .set_tag(actor, &target, &key, Some(&body.value))
            .await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/models/{model}/versions/{version}/tags/{key}", tag = "versions",
    params(("model" = String, Path), ("version" = i64, Path), ("key" = String, Path)),
    responses((status = 200, body = Tags, description = "remaining tags of the version")),
    security(("bearer" = [])))]
pub async fn delete_version_tag(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((model, version, key)): ApiPath<(String, i64, String)>,
) -> ApiResult<Json<Tags>> {
    let actor = caller.require(Role::Editor)?;
    let target = TagTarget::Version { model, version };
    Ok(Json(s.registry.set_tag(actor, &target, &key, None).await?))
}

#[utoipa::path(get, path = "/api/v1/models/{model}/aliases", tag = "aliases",
    params(("model" = String, Path)),
    responses((status = 200, body = Vec<Alias>)),
    security(("bearer" = [])))]
pub async fn list_aliases(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(model): ApiPath<String>,
) -> ApiResult<Json<Vec<Alias>>> {
    caller.require(Role::Reader)?;
    Ok(Json(s.registry.list_aliases(&model).await?))
}

#[utoipa::path(get, path = "/api/v1/models/{model}/aliases/{alias}", tag = "aliases",
    params(("model" = String, Path), ("alias" = String, Path)),
    responses((status = 200, body = Alias), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_alias(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((model, alias)): ApiPath<(String, String)>,
) -> ApiResult<Json<Alias>> {
    caller.require(Role::Reader)?;
    Ok(Json(s.registry.get_alias(&model, &alias).await?))
}

/// Body of an alias move.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetAlias {
    pub version: i64,
    /// Why the alias moves; kept in the move history and the audit log.
    #[serde(default)]
    pub reason: String,
}

#[utoipa::path(put, path = "/api/v1/models/{model}/aliases/{alias}", tag = "aliases", request_body = SetAlias,
    params(("model" = String, Path), ("alias" = String, Path)),
    responses((status = 200, body = Alias), (status = 403, body = ErrorBody, description = "protected alias needs role approver"), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn set_alias(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((model, alias)): ApiPath<(String, String)>,
    json: ApiJson<SetAlias>,
) -> ApiResult<Json<Alias>> {
    let actor = caller.require(s.auth.role_for_alias(&alias))?;
    let body = json.parse()?;
    Ok(Json(
        s.registry
            .set_alias(actor, &model, &alias, body.version, &body.reason)
            .await?,
    ))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    #[serde(default)]
    pub reason: String,
}

#[utoipa::path(delete, path = "/api/v1/models/{model}/aliases/{alias}", tag = "aliases",
    params(("model" = String, Path), ("alias" = String, Path), ("reason" = Option<String>, Query)),
    responses((status = 204), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_alias(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((model, alias)): ApiPath<(String, String)>,
    ApiQuery(q): Query,
) -> ApiResult<StatusCode> {
    let actor = caller.require(s.auth.role_for_alias(&alias))?;
    let mut p = Params::new(q);
    let reason = p.string("reason").unwrap_or_default();
    p.finish()?;
    s.registry
        .delete_alias(actor, &model, &alias, &reason)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/models/{model}/aliases/{alias}/rollback", tag = "aliases",
    request_body(content = Option<Reason>, description = "optional"),
    params(("model" = String, Path), ("alias" = String, Path)),
    responses((status = 200, body = Alias), (status = 409, body = ErrorBody, description = "nothing to roll back to")),
    security(("bearer" = [])))]
pub async fn rollback_alias(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((model, alias)): ApiPath<(String, String)>,
    ApiBytes(body): ApiBytes,
) -> ApiResult<Json<Alias>> {
    let body: Reason = optional_json(&body)?;
    Ok(Json(
        rollback(&s, &caller, &model, &alias, &body.reason).await?,
    ))
}

/// Rolls an alias back with the role it needs (the API and the UI).
pub async fn rollback(
    s: &AppState,
    caller: &Caller,
    model: &str,
    alias: &str,
    reason: &str,
) -> ApiResult<Alias> {
    let actor = caller.require(Role::Approver)?;
    Ok(s.registry
        .rollback_alias(actor, model, alias, reason)
        .await?)
}

#[utoipa::path(post, path = "/api/v1/models/{model}/versions/{version}/recommendations", tag = "recommendations",
    request_body = NewRecommendation,
    params(("model" = String, Path), ("version" = i64, Path)),
    responses((status = 200, body = Recommendation, description = "raised, or the open one of that kind refreshed")),
    security(("bearer" = [])))]
pub async fn raise_recommendation(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((model, version)): ApiPath<(String, i64)>,
    json: ApiJson<NewRecommendation>,
) -> ApiResult<Json<Recommendation>> {
    let actor = caller.require(Role::Editor)?;
    let new = json.parse()?;
    Ok(Json(
        s.registry
            .raise_recommendation(actor, &model, version, new)
            .await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct RecommendationListParams {
    model: Option<String>,
    version: Option<i64>,
    /// `retrain`, `rollback` or `promote`.
    kind: Option<String>,
    /// `open`, `applied`, `dismissed` or `superseded`.
    status: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/recommendations", tag = "recommendations",
    params(PageParams, RecommendationListParams),
    responses((status = 200, body = RecommendationPage)),
    security(("bearer" = [])))]
pub async fn list_recommendations(
    State(s): State<AppState>,
    caller: Caller,
    ApiQuery(q): Query,
) -> ApiResult<Json<RecommendationPage>> {
    caller.require(Role::Reader)?;
    let mut p = Params::new(q);
    let page = p.page()?;
    let filter = RecommendationFilter {
        model: p.string("model"),
        version: p.parse("version", "a version number")?,
        kind: p.named::<RecommendationKind>("kind")?,
        status: p.named::<RecommendationStatus>("status")?,
    };
    p.finish()?;
    Ok(Json(
        s.registry
            .list_recommendations(&filter, &page)
            .await?
            .into(),
    ))
}

#[utoipa::path(get, path = "/api/v1/recommendations/{id}", tag = "recommendations",
    params(("id" = i64, Path)),
    responses((status = 200, body = Recommendation), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_recommendation(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Recommendation>> {
    caller.require(Role::Reader)?;
    Ok(Json(s.registry.get_recommendation(id).await?))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Note {
    #[serde(default)]
    pub note: String,
}

async fn transition(
    s: &AppState,
    caller: &Caller,
    id: i64,
    t: Transition,
    body: &Bytes,
) -> ApiResult<Json<Recommendation>> {
    let note: Note = optional_json(body)?;
    Ok(Json(
        transition_recommendation(s, caller, id, t, &note.note).await?,
    ))
}

/// Moves a recommendation through its lifecycle with the role it needs
/// (the API and the UI).
pub async fn transition_recommendation(
    s: &AppState,
    caller: &Caller,
    id: i64,
    t: Transition,
    note: &str,
) -> ApiResult<Recommendation> {
    let actor = caller.require(Role::Editor)?;
    Ok(s.registry
        .transition_recommendation(actor, id, t, note)
        .await?)
}

#[utoipa::path(post, path = "/api/v1/recommendations/{id}/acknowledge", tag = "recommendations",
    request_body(content = Option<Note>, description = "optional"),
    params(("id" = i64, Path)),
    responses((status = 200, body = Recommendation), (status = 409, body = ErrorBody, description = "not open")),
    security(("bearer" = [])))]
pub async fn acknowledge_recommendation(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiBytes(body): ApiBytes,
) -> ApiResult<Json<Recommendation>> {
    transition(&s, &caller, id, Transition::Acknowledge, &body).await
}

#[utoipa::path(post, path = "/api/v1/recommendations/{id}/dismiss", tag = "recommendations",
    request_body(content = Option<Note>, description = "optional"),
    params(("id" = i64, Path)),
    responses((status = 200, body = Recommendation), (status = 409, body = ErrorBody, description = "not open")),
    security(("bearer" = [])))]
pub async fn dismiss_recommendation(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiBytes(body): ApiBytes,
) -> ApiResult<Json<Recommendation>> {
    transition(&s, &caller, id, Transition::Dismiss, &body).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct AuditListParams {
    actor: Option<String>,
    /// e.g. `alias.rollback`.
    action: Option<String>,
    /// e.g. `model/fraud` for everything about that model.
    target_prefix: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "audit",
    params(PageParams, AuditListParams),
    responses((status = 200, body = AuditPage)),
    security(("bearer" = [])))]
pub async fn list_audit(
    State(s): State<AppState>,
    caller: Caller,
    ApiQuery(q): Query,
) -> ApiResult<Json<AuditPage>> {
    caller.require(Role::Reader)?;
    let mut p = Params::new(q);
    let page = p.page()?;
    let filter = AuditFilter {
        actor: p.string("actor"),
        action: p.string("action"),
        target_prefix: p.string("target_prefix"),
    };
    p.finish()?;
    Ok(Json(audit_page(&s, &caller, &filter, &page).await?.into()))
}

/// A page of the audit log as `caller` may see it (the API and the UI).
pub async fn audit_page(
    s: &AppState,
    caller: &Caller,
    filter: &AuditFilter,
    page: &modelwatch_registry::PageRequest,
) -> ApiResult<Page<AuditEntry>> {
    caller.require(Role::Reader)?;
    let mut entries = s.registry.list_audit(filter, page).await?;
    // Webhook URLs are admin-only (their path is often their secret).
    if !caller.0.role.allows(Role::Admin) {
        entries
            .items
            .iter_mut()
            .for_each(modelwatch_registry::webhooks::redact_audit_entry);
    }
    Ok(entries)
}

#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit",
    responses((status = 200, body = AuditVerification, description = "`ok` false names the first broken entry")),
    security(("bearer" = [])))]
pub async fn verify_audit(
    State(s): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<AuditVerification>> {
    caller.require(Role::Reader)?;
    Ok(Json(verification(&s).await?))
}

/// The chain verified, with the tokens table, and against this daemon's
/// own anchors when it writes them (the API and the UI).
pub async fn verification(s: &AppState) -> ApiResult<AuditVerification> {
    let mut v = s.registry.verify_audit().await?;
    if let Some(anchors) = &s.anchors {
        v.anchors = Some(anchors.check(s.registry.as_ref()).await?);
    }
    Ok(v)
}

#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens",
    responses((status = 200, body = Vec<TokenInfo>)),
    security(("bearer" = [])))]
pub async fn list_tokens(
    State(s): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<TokenInfo>>> {
    caller.require(Role::Admin)?;
    Ok(Json(s.registry.list_tokens().await?))
}

#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = NewToken,
    responses((status = 201, body = CreatedToken), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_token(
    State(s): State<AppState>,
    caller: Caller,
    json: ApiJson<NewToken>,
) -> ApiResult<impl IntoResponse> {
    let actor = caller.require(Role::Admin)?;
    let new = json.parse()?;
    let secret = tokens::generate_secret();
    let info = s
        .registry
        .create_token(
            actor,
            &new.name,
            new.role,
            &tokens::hash_secret(&secret),
            new.expires_at,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            info,
            token: secret,
        }),
    ))
}

#[utoipa::path(delete, path = "/api/v1/tokens/{name}", tag = "tokens",
    params(("name" = String, Path)),
    responses((status = 200, body = TokenInfo), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke_token(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<TokenInfo>> {
    let actor = caller.require(Role::Admin)?;
    let info = s.registry.revoke_token(actor, &name).await?;
    s.auth.invalidate();
    Ok(Json(info))
}
