//! MLflow 3's logged models (`/api/2.0/mlflow/logged-models…`), run
//! outputs and metric history: what `mlflow.<flavor>.log_model` calls
//! before it uploads the model's files and registers a version.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::json;

use modelwatch_registry::{
    DEFAULT_EXPERIMENT_ID, LoggedModelUpdate, ModelMetadata, NewLoggedModel, Role,
};

use super::super::AppState;
use super::super::error::MlflowError;
use super::wire::{self, Fields};
use super::{MlflowRequest, Reply, empty};

fn reply(m: &modelwatch_registry::LoggedModel) -> Reply {
    Ok(Json(json!({ "model": wire::logged_model(m) })))
}

pub async fn create(State(s): State<AppState>, r: MlflowRequest) -> Reply {
    let actor = r.caller.require(Role::Editor)?;
    let new = NewLoggedModel {
        experiment_id: r
            .fields
            .experiment_id("experiment_id")?
            .unwrap_or(DEFAULT_EXPERIMENT_ID),
        name: r.fields.opt_str("name")?.unwrap_or_default(),
        source_run_id: r
            .fields
            .opt_str("source_run_id")?
            .filter(|id| !id.is_empty()),
        model_type: r.fields.opt_str("model_type")?.unwrap_or_default(),
        params: r.fields.pairs("params")?,
        tags: r.fields.pairs("tags")?,
    };
    reply(&s.registry.create_logged_model(actor, new).await?)
}

pub async fn get_one(State(s): State<AppState>, Path(id): Path<String>, r: MlflowRequest) -> Reply {
    r.caller.require(Role::Reader)?;
    reply(&s.registry.get_logged_model(&id).await?)
}

async fn update(
    s: &AppState,
    r: &MlflowRequest,
    id: &str,
    update: LoggedModelUpdate,
) -> Result<modelwatch_registry::LoggedModel, MlflowError> {
    let actor = r.caller.require(Role::Editor)?;
    Ok(s.registry.update_logged_model(actor, id, update).await?)
}

/// `logged-models/search`: what `register_model("runs:/<run>/<name>")`
/// asks to find the model a run logged under a name. Filters: none, or
/// `name = '<name>'`; one page of at most `max_results` (≤ 1000).
pub async fn search(State(s): State<AppState>, r: MlflowRequest) -> Reply {
    r.caller.require(Role::Reader)?;
    let experiments = r
        .fields
        .list("experiment_ids")?
        .iter()
        .map(|id| {
            id.parse::<i64>()
                .map_err(|_| MlflowError::invalid(format!("experiment id {id:?} is not a number")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let name = match r.fields.opt_str("filter")?.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(filter) => Some(name_filter(filter).ok_or_else(|| {
            MlflowError::invalid(format!(
                "filter {filter:?} is not supported: modelwatch searches logged models by name = '<name>' only"
            ))
        })?),
    };
    let limit = wire::max_results(&r.fields, 100, 1000)?;
    let models = s
        .registry
        .list_logged_models(&experiments, name.as_deref(), limit)
        .await?;
    Ok(Json(json!({
        "models": models.iter().map(wire::logged_model).collect::<Vec<_>>(),
    })))
}

/// `name = 'x'` (or `"x"`) → `x`.
fn name_filter(filter: &str) -> Option<String> {
    let rest = filter
        .strip_prefix("name")?
        .trim_start()
        .strip_prefix('=')?
        .trim();
    let quote = rest.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let inner = rest.strip_prefix(quote)?.strip_suffix(quote)?;
    (!inner.contains(quote)).then(|| inner.to_string())
}

/// `PATCH /logged-models/{id}`: MLflow's "finalize" (sets the status).
pub async fn finalize(
    State(s): State<AppState>,
    Path(id): Path<String>,
    r: MlflowRequest,
) -> Reply {
    let status = wire::parse_logged_model_status(&r.fields.str("status")?)?;
    let change = LoggedModelUpdate {
        status: Some(status),
        ..Default::default()
    };
    reply(&update(&s, &r, &id, change).await?)
}

pub async fn set_tags(
    State(s): State<AppState>,
    Path(id): Path<String>,
    r: MlflowRequest,
) -> Reply {
    let change = LoggedModelUpdate {
        set_tags: r.fields.pairs("tags")?,
        ..Default::default()
    };
    update(&s, &r, &id, change).await?;
    empty()
}

pub async fn delete_tag(
    State(s): State<AppState>,
    Path((id, key)): Path<(String, String)>,
    r: MlflowRequest,
) -> Reply {
    let change = LoggedModelUpdate {
        delete_tags: vec![key],
        ..Default::default()
    };
    update(&s, &r, &id, change).await?;
    empty()
}

pub async fn log_params(
    State(s): State<AppState>,
    Path(id): Path<String>,
    r: MlflowRequest,
) -> Reply {
    let change = LoggedModelUpdate {
        params: r.fields.pairs("params")?,
        ..Default::default()
    };
    update(&s, &r, &id, change).await?;
    empty()
}

/// `runs/outputs`: a run names the models it produced. Each must exist;
/// the link is the logged model's `source_run_id` (set at its creation),
/// so nothing more is stored.
pub async fn log_outputs(State(s): State<AppState>, r: MlflowRequest) -> Reply {
    r.caller.require(Role::Editor)?;
    let run = r.fields.run_id()?;
    s.registry.get_run(&run).await?;
    for model in r.fields.objects("models")? {
        let id = model.str("model_id")?;
        s.registry.get_logged_model(&id).await?;
    }
    empty()
}

/// `metrics/get-history`: every point of one metric of a run.
pub async fn metric_history(State(s): State<AppState>, r: MlflowRequest) -> Reply {
    r.caller.require(Role::Reader)?;
    let run = r.fields.run_id()?;
    let key = r.fields.str("metric_key")?;
    let points = s.registry.metric_history(&run, &key).await?;
    Ok(Json(json!({
        "metrics": points.iter()
            .map(|m| json!({ "key": m.key, "value": m.value, "timestamp": m.timestamp, "step": m.step }))
            .collect::<Vec<_>>(),
    })))
}

/// A version created from a logged model or a run folder takes its files,
/// sealed: the manifest digest of what is stored there now, and what the
/// files say about themselves (their `MLmodel`). `None` when the source
/// names files modelwatch does not hold.
pub async fn seal_source(
    s: &AppState,
    fields: &Fields,
    source: &str,
) -> Result<Option<(String, ModelMetadata)>, MlflowError> {
    let model_id = fields.opt_str("model_id")?;
    let Some((tree, folder)) = super::artifacts::source_tree(source, model_id.as_deref()) else {
        return Ok(None);
    };
    if tree.validate().is_err() {
        return Ok(None);
    }
    let manifest = s.artifacts.tree_manifest(&tree).await?.subtree(&folder);
    if manifest.files.is_empty() {
        return Ok(None);
    }
    let what = tree.to_string();
    let digest = s.artifacts.seal(&what, &manifest).await?;
    let metadata = crate::artifacts::described(&s.artifacts, &manifest, &what).await?;
    Ok(Some((digest.to_string(), metadata)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_name_equality_filters_are_read() {
        assert_eq!(
            super::name_filter("name = 'model'").as_deref(),
            Some("model")
        );
        assert_eq!(super::name_filter("name=\"m\"").as_deref(), Some("m"));
        for bad in [
            "name = model",
            "tags.x = 'y'",
            "name = 'a' AND name = 'b'",
            "name LIKE 'm%'",
        ] {
            assert_eq!(super::name_filter(bad), None, "{bad}");
        }
    }
}
