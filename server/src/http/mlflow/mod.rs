//! MLflow REST compatibility under `/api/2.0/mlflow/`: the model registry
//! calls and the minimal tracking calls an `MlflowClient` makes, over the
//! same registry, audit chain and tokens as the native API.
//!
//! Handlers are thin: read the request's fields ([`wire::Fields`]),
//! authorize with the role the native API needs for the same change, call
//! the [`RegistryStore`](modelwatch_registry::RegistryStore) and shape the
//! reply ([`wire`]). Success is always 200 with a JSON object (`{}` when
//! there is nothing to say); errors are MLflow's `{"error_code", "message"}`
//! ([`MlflowError`]). These routes are not in the native OpenAPI document:
//! they follow MLflow's protocol, not ours. Nothing here may answer 5xx for
//! bad input (MLflow clients retry 5xx for minutes).

pub mod artifacts;
pub mod filter;
mod logged_models;
pub mod wire;

use axum::Json;
use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, OriginalUri, Request, State};
use axum::http::{Method, StatusCode};
use axum::routing::{delete, get, patch, post};
use serde_json::{Value, json};

use modelwatch_registry::{
    DEFAULT_EXPERIMENT_ID, ModelUpdate, NewExperiment, NewModel, NewRun, NewVersion, Role, RunLog,
    Search, Stage, TagTarget, VersionUpdate,
};

use super::AppState;
use super::error::{ApiError, MlflowError};
use crate::auth::Caller;
use filter::Entity;
use wire::Fields;

pub(super) type Reply = Result<Json<Value>, MlflowError>;

/// The reason recorded on alias moves made through this API.
const ALIAS_REASON: &str = "set through the MLflow API";

/// The caller and the request's fields: the query string of a GET, the JSON
/// body of anything else (MLflow sends DELETE with a body too).
pub struct MlflowRequest {
    caller: Caller,
    fields: Fields,
}

impl FromRequest<AppState> for MlflowRequest {
    type Rejection = MlflowError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let caller = Caller::from_request_parts(&mut parts, state).await?;
        let fields = if parts.method == Method::GET {
            Fields::from_query(parts.uri.query().unwrap_or(""))
        } else {
            let req = Request::from_parts(parts, body);
            let bytes = axum::body::Bytes::from_request(req, state)
                .await
                .map_err(ApiError::from)?;
            Fields::from_body(&bytes)?
        };
        Ok(MlflowRequest { caller, fields })
    }
}

/// The `/api/2.0/mlflow` router (nested by [`super::app`]).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/registered-models/create", post(create_registered_model))
        .route("/registered-models/get", get(get_registered_model))
        .route("/registered-models/rename", post(rename_registered_model))
        .route("/registered-models/update", patch(update_registered_model))
        .route("/registered-models/delete", delete(delete_registered_model))
        .route("/registered-models/search", get(search_registered_models))
        .route(
            "/registered-models/get-latest-versions",
            post(get_latest_versions).get(get_latest_versions),
        )
        .route(
            "/registered-models/alias",
            post(set_alias).delete(delete_alias).get(get_by_alias),
        )
        .route("/registered-models/set-tag", post(set_model_tag))
        .route("/registered-models/delete-tag", delete(delete_model_tag))
        .route("/model-versions/create", post(create_model_version))
        .route("/model-versions/get", get(get_model_version))
        .route("/model-versions/update", patch(update_model_version))
        .route("/model-versions/delete", delete(delete_model_version))
        .route("/model-versions/search", get(search_model_versions))
        .route("/model-versions/transition-stage", post(transition_stage))
        .route("/model-versions/get-download-uri", get(get_download_uri))
        .route("/model-versions/set-tag", post(set_version_tag))
        .route("/model-versions/delete-tag", delete(delete_version_tag))
        .route("/experiments/get-by-name", get(get_experiment_by_name))
        .route("/experiments/create", post(create_experiment))
        .route("/experiments/get", get(get_experiment))
        .route("/runs/create", post(create_run))
        .route("/runs/get", get(get_run))
        .route("/runs/update", post(update_run))
        .route("/runs/log-batch", post(log_batch))
        .route("/runs/log-metric", post(log_metric))
        .route("/runs/log-parameter", post(log_parameter))
        .route("/runs/set-tag", post(set_run_tag))
        .route("/runs/outputs", post(logged_models::log_outputs))
        .route("/metrics/get-history", get(logged_models::metric_history))
        .route("/logged-models", post(logged_models::create))
        .route("/logged-models/search", post(logged_models::search))
        .route(
            "/logged-models/{model_id}",
            get(logged_models::get_one).patch(logged_models::finalize),
        )
        .route(
            "/logged-models/{model_id}/tags",
            patch(logged_models::set_tags),
        )
        .route(
            "/logged-models/{model_id}/tags/{tag_key}",
            delete(logged_models::delete_tag),
        )
        .route(
            "/logged-models/{model_id}/params",
            post(logged_models::log_params),
        )
        .fallback(endpoint_not_found)
        .method_not_allowed_fallback(endpoint_not_found)
}

async fn endpoint_not_found(method: Method, OriginalUri(uri): OriginalUri) -> MlflowError {
    MlflowError(ApiError::new(
        StatusCode::NOT_FOUND,
        "route_not_found",
        format!(
            "{method} {} is not an MLflow endpoint modelwatch serves",
            uri.path()
        ),
    ))
}

pub(super) fn empty() -> Reply {
    Ok(Json(json!({})))
}

// Registered models.

async fn create_registered_model(State(s): State<AppState>, r: MlflowRequest) -> Reply {
    let actor = r.caller.require(Role::Editor)?;
    let new = NewModel {
        name: r.fields.str("name")?,
        description: r.fields.opt_str("description")?.unwrap_or_default(),
        owner: String::new(),
        tags: r.fields.pairs("tags")?,
    };
    let model = s.registry.create_model(actor, new).await?;
    Ok(Json(
        json!({ "registered_model": wire::registered_model(&model, &[]) }),
    ))
}

async fn registered_model_reply(s: &AppState, name: &str) -> Result<Value, MlflowError> {
    let model = s.registry.get_model(name).await?;
    let latest = s.registry.latest_versions(name, &[]).await?;
    Ok(json!({ "registered_model": wire::registered_model(&model, &latest) }))
}

async fn get_registered_model(State(s): State<AppState>, r: MlflowRequest) -> Reply {
    r.caller.require(Role::Reader)?;
    Ok(Json(
        registered_model_reply(&s, &r.fields.str("name")?).await?,
    ))
}

async fn rename_registered_model(State(s): State<AppState>, r: MlflowRequest) -> Reply {
    let actor = r.caller.require(Role::Editor)?;
    let (name, new_name) = (r.fields.str("name")?, r.fields.str("new_name")?);
    s.registry.rename_model(actor, &name, &new_name).await?;
    Ok(Json(registered_model_reply(&s, &new_name).await?))
}

async fn update_registered_model(State(s): State<AppState>, r: MlflowRequest) -> Reply {
    let actor = r.caller.require(Role::Editor)?;
    let name = r.fields.str("name")?;
    let update = ModelUpdate {
        description: r.fields.opt_str("description")?,
        owner: None,
    };
    s.registry.update_model(actor, &name, update).await?;
    Ok(Json(registered_model_reply(&s, &name).await?))
}

async fn delete_registered_model(State(s): State<AppState>, r: MlflowRequest) -> Reply {
    let actor = r.caller.require(Role::Editor)?;
    s.registry
        .delete_model(actor, &r.fields.str("name")?)
        .await?;
    empty()
}

/// The search a request asks for: filter, order, page.
fn search(fields: &Fields, entity: Entity) -> Result<Search, MlflowError> {
    let (default, max) = match entity {
        Entity::Models => (100, 1000),
        Entity::Versions => (10_000, 200_000),
    };
    let filter = fields.opt_str("filter")?.unwrap_or_default();
    let conditions = filter::parse_filter(&filter, entity)
        .map_err(|e| MlflowError::invalid(format!("invalid filter {filter:?}: {e}")))?;
    let mut order_by = filter::parse_order_by(&fields.list("order_by")?, entity)
        .map_err(|e| MlflowError::invalid(format!("invalid order_by: {e}")))?;
    if order_by.is_empty() {
        order_by = default_order(entity);
    }
    Ok(Search {
        conditions,
        order_by,
        offset: wire::decode_page_token(fields.opt_str("page_token")?.as_deref())?,
        limit: wire::max_results(fields, default, max)?,
    })
}

/// MLflow's own default orders.
fn default_order(entity: Entity) -> Vec<modelwatch_registry::OrderBy> {
    use modelwatch_registry::{OrderBy, OrderKey};
    let by = |key, descending| OrderBy { key, descending };
    match entity {
        Entity::Models => vec![by(OrderKey::Name, false)],
        Entity::Versions => vec![
            by(OrderKey::UpdatedAt, true),
            by(OrderKey::Name, false),
            by(OrderKey::Version, true),
        ],
    }
}

fn with_token(mut reply: Value, next_offset: Option<u64>) -> Value {
    if let Some(offset) = next_offset {
        reply["next_page_token"] = json!(wire::encode_page_token(offset));
    }
    reply
}

async fn search_registered_models(State(s): State<AppState>, r: MlflowRequest) -> Reply {
    r.caller.require(Role::Reader)?;
    let page = s
        .registry
        .search_models(&search(&r.fields, Entity::Models)?)
        .await?;
    let mut models = Vec::with_capacity(page.items.len());
    for m in &page.items {
        let latest = s.registry.latest_versions(&m.name, &[]).await?;
        models.push(wire::registered_model(m, &latest));
    }
    Ok(Json(with_token(
        json!({ "registered_models": models }),
        page.next_offset,
    )))
}

async fn get_latest_versions(State(s): State<AppState>, r: MlflowRequest) -> Reply {
    r.caller.require(Role::Reader)?;
    let stages = r
        .fields
        .list("stages")?
        .iter()
        .map(|st| st.parse::<Stage>())
        .collect::<Result<Vec<_>, _>>()?;
    let versions = s
        .registry
        .latest_versions(&r.fields.str("name")?, &stages)
        .await?;
    Ok(Json(json!({
        "model_versions": versions.iter().map(wire::model_version).collect::<Vec<_>>()
    })))
}

async fn set_alias(State(s): State<AppState>, r: MlflowRequest) -> Reply {
    let alias = r.fields.str("alias")?;
    let actor = r.caller.require(s.auth.role_for_alias(&alias))?;
    let (name, version) = (r.fields.str("name")?, r.fields.version()?);
    s.registry
        .set_alias_target(actor, &name, &alias, version, ALIAS_REASON)
        .await?;
    empty()
}

async fn delete_alias(State(s): State<AppState>, r: MlflowRequest) -> Reply {
    let alias = r.fields.str("alias")?;
    let actor = r.caller.require(s.auth.role_for_alias(&alias))?;
    s.registry
        .delete_alias(actor, &r.fields.str("name")?, &alias, ALIAS_REASON)
        .await?;
    empty()
}

async fn get_by_alias(State(s): State<AppState>, r: MlflowRequest) -> Reply {
    r.caller.require(Role::Reader)?;
    let v = s
        .registry
        .get_version_by_alias(&r.fields.str("name")?, &r.fields.str("alias")?)
        .await?;
    Ok(Json(json!({ "model_version": wire::model_version(&v) })))
}

async fn tag(s: &AppState, r: MlflowRequest, target: TagTarget, set: bool) -> Reply {
    let actor = r.caller.require(Role::Editor)?;
    let key = r.fields.str("key")?;
    let value = if set {
        Some(r.fields.opt_str("value")?.unwrap_or_default())
    } else {
        None
    };
    s.registry
        .set_tag(actor, &target, &key, value.as_deref())
        .await?;
    empty()
}

fn model_target(f: &Fields) -> Result<TagTarget, MlflowError> {
    Ok(TagTarget::Model {
        model: f.str("name")?,
    })
}

fn version_target(f: &Fields) -> Result<TagTarget, MlflowError> {
    Ok(TagTarget::Version {
        model: f.str("name")?,
        version: f.version()?,
    })
}

async fn set_model_tag(State(s): State<AppState>, r: MlflowRequest) -> Reply {
    let target = model_target(&r.fields)?;
    tag(&s, r, target, true).await
}

async fn delete_model_tag(State(s): State<AppState>, r: MlflowRequest) -> Reply {
    let target = model_target(&r.fields)?;
    tag(&s, r, target, false).await
}

// Model versions.

fn version_reply(v: &modelwatch_registry::Version) -> Reply {
    Ok(Json(json!({ "model_version": wire::model_version(v) })))
}

async fn create_model_version(State(s): State<AppState>, r: MlflowRequest) -> Reply {
    let actor = r.caller.require(Role::Editor)?;
    let name = r.fields.str("name")?;
    let source = r.fields.str("source")?;
    let (artifact_digest, metadata) = logged_models::seal_source(&s, &r.fields, &source)
        .await?
        .unzip();
    let new = NewVersion {
        description: r.fields.opt_str("description")?.unwrap_or_default(),
        artifact_digest,
        metadata: metadata.unwrap_or_default(),
        source_uri: Some(source),
        run_id: r.fields.opt_str("run_id")?.filter(|id| !id.is_empty()),
        tags: r.fields.pairs("tags")?,
        ..Default::default()
    };
    version_reply(&s.registry.create_version(actor, &name, new).await?)
}

async fn get_model_version(State(s): State<AppState>, r: MlflowRequest) -> Reply {
    r.caller.require(Role::Reader)?;
    let v = s
        .registry
        .get_version(&r.fields.str("name")?, r.fields.version()?)
        .await?;
    version_reply(&v)
}

async fn update_model_version(State(s): State<AppState>, r: MlflowRequest) -> Reply {
    let actor = r.caller.require(Role::Editor)?;
    let update = VersionUpdate {
        description: r.fields.opt_str("description")?,
        ..Default::default()
    };
    let v = s
        .registry
        .update_version(actor, &r.fields.str("name")?, r.fields.version()?, update)
        .await?;
    version_reply(&v)
}

async fn delete_model_version(State(s): State<AppState>, r: MlflowRequest) -> Reply {
    let actor = r.caller.require(Role::Editor)?;
    s.registry
        .delete_version(actor, &r.fields.str("name")?, r.fields.version()?)
        .await?;
    empty()
}

async fn search_model_versions(State(s): State<AppState>, r: MlflowRequest) -> Reply {
    r.caller.require(Role::Reader)?;
    let page = s
        .registry
        .search_versions(&search(&r.fields, Entity::Versions)?)
        .await?;
    let versions: Vec<_> = page.items.iter().map(wire::model_version).collect();
    Ok(Json(with_token(
        json!({ "model_versions": versions }),
        page.next_offset,
    )))
}

async fn transition_stage(State(s): State<AppState>, r: MlflowRequest) -> Reply {
    let stage: Stage = r.fields.str("stage")?.parse()?;
    // A stage needs the role an alias of the same name needs, so the
    // protected-alias setting (default `production`) guards Production too.
    let actor = r
        .caller
        .require(s.auth.role_for_alias(&stage.as_str().to_ascii_lowercase()))?;
    let v = s
        .registry
        .transition_stage(
            actor,
            &r.fields.str("name")?,
            r.fields.version()?,
            stage,
            r.fields.bool("archive_existing_versions")?,
        )
        .await?;
    version_reply(&v)
}

async fn get_download_uri(State(s): State<AppState>, r: MlflowRequest) -> Reply {
    r.caller.require(Role::Reader)?;
    let v = s
        .registry
        .get_version(&r.fields.str("name")?, r.fields.version()?)
        .await?;
    // A version whose files modelwatch holds is read from its sealed
    // files (the artifact proxy's version folder), not from the tree it
    // was registered from.
    let uri = match crate::artifacts::VersionFiles::state(&s.artifacts, &v).await? {
        crate::artifacts::FilesState::Sealed(_) => format!(
            "mlflow-artifacts:/{}/{}/{}",
            artifacts::VERSIONS_FOLDER,
            v.model,
            v.version
        ),
        _ => v.source_uri.unwrap_or_default(),
    };
    Ok(Json(json!({ "artifact_uri": uri })))
}

async fn set_version_tag(State(s): State<AppState>, r: MlflowRequest) -> Reply {
    let target = version_target(&r.fields)?;
    tag(&s, r, target, true).await
}

async fn delete_version_tag(State(s): State<AppState>, r: MlflowRequest) -> Reply {
    let target = version_target(&r.fields)?;
    tag(&s, r, target, false).await
}

// Tracking.

fn experiment_id(f: &Fields) -> Result<i64, MlflowError> {
    f.experiment_id("experiment_id")?
        .ok_or_else(|| MlflowError::invalid("missing value for required parameter 'experiment_id'"))
}

async fn get_experiment_by_name(State(s): State<AppState>, r: MlflowRequest) -> Reply {
    r.caller.require(Role::Reader)?;
    let e = s
        .registry
        .get_experiment_by_name(&r.fields.str("experiment_name")?)
        .await?;
    Ok(Json(json!({ "experiment": wire::experiment(&e) })))
}

async fn create_experiment(State(s): State<AppState>, r: MlflowRequest) -> Reply {
    let actor = r.caller.require(Role::Editor)?;
    let new = NewExperiment {
        name: r.fields.str("name")?,
        artifact_location: r.fields.opt_str("artifact_location")?,
        tags: r.fields.pairs("tags")?,
    };
    let e = s.registry.create_experiment(actor, new).await?;
    Ok(Json(json!({ "experiment_id": e.id.to_string() })))
}

async fn get_experiment(State(s): State<AppState>, r: MlflowRequest) -> Reply {
    r.caller.require(Role::Reader)?;
    let e = s.registry.get_experiment(experiment_id(&r.fields)?).await?;
    Ok(Json(json!({ "experiment": wire::experiment(&e) })))
}

async fn create_run(State(s): State<AppState>, r: MlflowRequest) -> Reply {
    let actor = r.caller.require(Role::Editor)?;
    let new = NewRun {
        experiment_id: r
            .fields
            .experiment_id("experiment_id")?
            .unwrap_or(DEFAULT_EXPERIMENT_ID),
        name: r.fields.opt_str("run_name")?.unwrap_or_default(),
        start_time: r.fields.opt_i64("start_time")?,
        tags: r.fields.pairs("tags")?,
    };
    let run = s.registry.create_run(actor, new).await?;
    Ok(Json(json!({ "run": wire::run(&run) })))
}

async fn get_run(State(s): State<AppState>, r: MlflowRequest) -> Reply {
    r.caller.require(Role::Reader)?;
    let run = s.registry.get_run(&r.fields.run_id()?).await?;
    Ok(Json(json!({ "run": wire::run(&run) })))
}

async fn update_run(State(s): State<AppState>, r: MlflowRequest) -> Reply {
    let actor = r.caller.require(Role::Editor)?;
    let run = s
        .registry
        .update_run(actor, &r.fields.run_id()?, r.fields.run_update()?)
        .await?;
    Ok(Json(json!({ "run_info": wire::run_info(&run) })))
}

async fn log(s: &AppState, r: &MlflowRequest, log: RunLog) -> Reply {
    let actor = r.caller.require(Role::Editor)?;
    s.registry.log_run(actor, &r.fields.run_id()?, log).await?;
    empty()
}

async fn log_batch(State(s): State<AppState>, r: MlflowRequest) -> Reply {
    let batch = RunLog {
        metrics: r.fields.metrics("metrics")?,
        params: r.fields.pairs("params")?,
        tags: r.fields.pairs("tags")?,
    };
    log(&s, &r, batch).await
}

async fn log_metric(State(s): State<AppState>, r: MlflowRequest) -> Reply {
    let batch = RunLog {
        metrics: vec![r.fields.metric()?],
        ..Default::default()
    };
    log(&s, &r, batch).await
}

fn one_pair(f: &Fields) -> Result<modelwatch_registry::Tags, MlflowError> {
    Ok([(f.str("key")?, f.opt_str("value")?.unwrap_or_default())].into())
}

async fn log_parameter(State(s): State<AppState>, r: MlflowRequest) -> Reply {
    let batch = RunLog {
        params: one_pair(&r.fields)?,
        ..Default::default()
    };
    log(&s, &r, batch).await
}

async fn set_run_tag(State(s): State<AppState>, r: MlflowRequest) -> Reply {
    let batch = RunLog {
        tags: one_pair(&r.fields)?,
        ..Default::default()
    };
    log(&s, &r, batch).await
}
