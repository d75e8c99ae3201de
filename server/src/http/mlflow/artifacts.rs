//! MLflow's artifact proxy, `/api/2.0/mlflow-artifacts/artifacts/…`, over
//! the artifact store: what `mlflow.<flavor>.log_model`, `log_artifact`,
//! `load_model("models:/…")` and `download_artifacts` call.
//!
//! The proxy's path space (MLflow's, plus one folder of ours):
//! - `<experiment>/<run id>/artifacts/<file>`: a run's files (uploadable);
//! - `<experiment>/models/<model id>/artifacts/<file>`: a logged model's
//!   files (uploadable);
//! - `model-versions/<model>/<version>/<file>`: a registered version's
//!   files, read-only — what `get-download-uri` points MLflow clients at,
//!   so they read the sealed files the version records.

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use modelwatch_artifacts::{ArtifactPath, Manifest, Tree};
use modelwatch_registry::Role;

use super::super::AppState;
use super::super::error::{ApiError, MlflowError};
use crate::artifacts::VersionFiles;
use crate::auth::Caller;

/// The folder of the proxy's path space that shows registered versions.
pub const VERSIONS_FOLDER: &str = "model-versions";

/// What a proxy path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyTarget {
    /// A run's or a logged model's tree, and a path inside it (`""`: its root).
    Tree(Tree, String),
    /// A registered version's files, read-only.
    Version {
        model: String,
        version: i64,
        path: String,
    },
}

/// Reads a proxy path (no I/O). `None`: the path names no run, logged
/// model or version (e.g. an experiment's folder).
pub fn proxy_target(path: &str) -> Option<ProxyTarget> {
    let path = path.trim_matches('/');
    let parts: Vec<&str> = path.splitn(5, '/').collect();
    let rest = |n: usize| parts.get(n).copied().unwrap_or("").to_string();
    match parts.as_slice() {
        [VERSIONS_FOLDER, model, version, ..] => Some(ProxyTarget::Version {
            model: model.to_string(),
            version: version.parse().ok()?,
            path: rest(3),
        }),
        [exp, "models", id, "artifacts", ..] if is_experiment(exp) => Some(ProxyTarget::Tree(
            Tree::LoggedModel(id.to_string()),
            rest(4),
        )),
        [exp, run, "artifacts", ..] if is_experiment(exp) => {
            let rest = path.splitn(4, '/').nth(3).unwrap_or("").to_string();
            Some(ProxyTarget::Tree(Tree::Run(run.to_string()), rest))
        }
        _ => None,
    }
}

fn is_experiment(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// The tree (and folder in it) whose files a version registered from
/// MLflow's `source` (and `model_id`) takes: `models:/<model id>`, a
/// `runs:/<run id>/<folder>` URI or an artifact-proxy URI. `None`: the
/// source is elsewhere (`s3://…`) and the version stays a pointer to it.
pub fn source_tree(source: &str, model_id: Option<&str>) -> Option<(Tree, String)> {
    if let Some(id) = model_id.filter(|id| !id.is_empty()) {
        return Some((Tree::LoggedModel(id.to_string()), String::new()));
    }
    if let Some(id) = source.strip_prefix("models:/")
        && id.starts_with("m-")
        && !id.contains('/')
    {
        return Some((Tree::LoggedModel(id.to_string()), String::new()));
    }
    if let Some(rest) = source.strip_prefix("runs:/") {
        let (run, folder) = rest.split_once('/').unwrap_or((rest, ""));
        return Some((
            Tree::Run(run.to_string()),
            folder.trim_matches('/').to_string(),
        ));
    }
    let proxied = source.strip_prefix("mlflow-artifacts:")?;
    // `mlflow-artifacts://host:port/path` names the host too.
    let path = match proxied.strip_prefix("//") {
        Some(with_host) => with_host.split_once('/').map_or("", |(_, p)| p),
        None => proxied,
    };
    match proxy_target(path)? {
        ProxyTarget::Tree(tree, folder) => Some((tree, folder)),
        ProxyTarget::Version { .. } => None,
    }
}

/// The `/api/2.0/mlflow-artifacts` router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/artifacts", get(list))
        .route("/artifacts/", get(list))
        .route("/artifacts/{*path}", get(download).put(upload))
        .fallback(not_served)
        .method_not_allowed_fallback(not_served)
}

async fn not_served(method: Method, OriginalUri(uri): OriginalUri) -> MlflowError {
    MlflowError(ApiError::new(
        StatusCode::NOT_FOUND,
        "route_not_found",
        format!(
            "{method} {} is not served: modelwatch's artifact proxy uploads (PUT), downloads (GET) and lists (GET ?path=); artifacts are never deleted through it",
            uri.path()
        ),
    ))
}

fn no_such_path(path: &str) -> MlflowError {
    MlflowError(ApiError::not_found(format!(
        "{path:?} names no run, logged model or registered version; artifact paths look like <experiment>/<run id>/artifacts/<file>"
    )))
}

/// Checks that the run or logged model exists (files of neither are not kept).
async fn check_tree(s: &AppState, tree: &Tree) -> Result<(), MlflowError> {
    match tree {
        Tree::Run(id) => drop(s.registry.get_run(id).await?),
        Tree::LoggedModel(id) => drop(s.registry.get_logged_model(id).await?),
        Tree::Version { .. } => {}
    }
    Ok(())
}

/// The files a proxy target shows.
async fn target_files(s: &AppState, target: &ProxyTarget) -> Result<Manifest, MlflowError> {
    Ok(match target {
        ProxyTarget::Tree(tree, _) => {
            check_tree(s, tree).await?;
            s.artifacts.tree_manifest(tree).await?
        }
        ProxyTarget::Version { model, version, .. } => {
            let files =
                VersionFiles::load(s.registry.as_ref(), &s.artifacts, model, *version).await?;
            if files.state == crate::artifacts::FilesState::External {
                return Err(files.external_error().into());
            }
            files.manifest
        }
    })
}

fn folder(target: &ProxyTarget) -> &str {
    match target {
        ProxyTarget::Tree(_, f) => f,
        ProxyTarget::Version { path, .. } => path,
    }
}

async fn upload(
    State(s): State<AppState>,
    caller: Caller,
    Path(path): Path<String>,
    body: Body,
) -> Result<Json<Value>, MlflowError> {
    caller.require(Role::Editor)?;
    let Some(ProxyTarget::Tree(tree, file)) = proxy_target(&path) else {
        return Err(match proxy_target(&path) {
            Some(ProxyTarget::Version { .. }) => MlflowError(ApiError::forbidden(
                "a registered version's files are read-only; upload to a run or a logged model and register a version from it",
            )),
            _ => no_such_path(&path),
        });
    };
    let file = ArtifactPath::parse(&file)?;
    check_tree(&s, &tree).await?;
    s.artifacts
        .put_file(&tree, &file, body.into_data_stream(), None)
        .await?;
    Ok(Json(json!({})))
}

async fn download(
    State(s): State<AppState>,
    caller: Caller,
    Path(path): Path<String>,
) -> Result<Response, MlflowError> {
    caller.require(Role::Reader)?;
    let target = proxy_target(&path).ok_or_else(|| no_such_path(&path))?;
    let file = ArtifactPath::parse(folder(&target))?;
    // A run's or logged model's file is read by its pointer: MLflow
    // downloads a model file by file, and listing the tree for each would
    // cost n² reads.
    let entry = match &target {
        ProxyTarget::Tree(tree, _) => {
            check_tree(&s, tree).await?;
            s.artifacts.tree_file(tree, &file).await?
        }
        ProxyTarget::Version { .. } => target_files(&s, &target)
            .await?
            .files
            .get(file.as_str())
            .copied(),
    }
    .ok_or_else(|| MlflowError(ApiError::not_found(format!("no artifact at {path:?}"))))?;
    Ok(super::super::artifacts::file_response(&s, entry).await?)
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    path: String,
}

/// One level of a folder, as MLflow lists it: names relative to the
/// folder, directories without a size. A path naming a file lists nothing.
async fn list(
    State(s): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Response, MlflowError> {
    caller.require(Role::Reader)?;
    let Some(target) = proxy_target(&q.path) else {
        return Ok(Json(json!({})).into_response());
    };
    let manifest = target_files(&s, &target).await?;
    Ok(Json(json!({ "files": children(&manifest, folder(&target)) })).into_response())
}

/// The direct children of `dir` in `manifest`, MLflow's `FileInfo` shape.
pub fn children(manifest: &Manifest, dir: &str) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let mut last_dir: Option<String> = None;
    for f in manifest.listing(dir) {
        match f.path.split_once('/') {
            Some((sub, _)) => {
                if last_dir.as_deref() != Some(sub) {
                    out.push(json!({ "path": sub, "is_dir": true }));
                    last_dir = Some(sub.to_string());
                }
            }
            None => out.push(json!({ "path": f.path, "is_dir": false, "file_size": f.size })),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelwatch_artifacts::{FileEntry, Sha256Digest};

    #[test]
    fn proxy_paths_name_runs_logged_models_and_versions() {
        assert_eq!(
            proxy_target("0/abc123/artifacts/model/MLmodel"),
            Some(ProxyTarget::Tree(
                Tree::Run("abc123".into()),
                "model/MLmodel".into()
            ))
        );
        assert_eq!(
            proxy_target("/0/abc123/artifacts"),
            Some(ProxyTarget::Tree(Tree::Run("abc123".into()), String::new()))
        );
        assert_eq!(
            proxy_target("12/models/m-1f/artifacts/a/b.pkl"),
            Some(ProxyTarget::Tree(
                Tree::LoggedModel("m-1f".into()),
                "a/b.pkl".into()
            ))
        );
        assert_eq!(
            proxy_target("model-versions/fraud/3/MLmodel"),
            Some(ProxyTarget::Version {
                model: "fraud".into(),
                version: 3,
                path: "MLmodel".into()
            })
        );
        for none in [
            "",
            "0",
            "0/abc",
            "x/abc/artifacts/f",
            "model-versions/fraud/x/f",
        ] {
            assert_eq!(proxy_target(none), None, "{none}");
        }
    }

    #[test]
    fn a_version_takes_the_files_of_the_logged_model_or_run_folder_its_source_names() {
        let lm = |id: &str| Some((Tree::LoggedModel(id.into()), String::new()));
        assert_eq!(source_tree("models:/m-abc", None), lm("m-abc"));
        assert_eq!(source_tree("anything", Some("m-xyz")), lm("m-xyz"));
        assert_eq!(
            source_tree("runs:/r1/model", None),
            Some((Tree::Run("r1".into()), "model".into()))
        );
        assert_eq!(
            source_tree("mlflow-artifacts:/0/r1/artifacts/model", None),
            Some((Tree::Run("r1".into()), "model".into()))
        );
        assert_eq!(
            source_tree("mlflow-artifacts://host:5000/0/models/m-1/artifacts", None),
            lm("m-1")
        );
        for elsewhere in [
            "s3://bucket/m/3",
            "models:/fraud/3",
            "models:/fraud@prod",
            "",
        ] {
            assert_eq!(source_tree(elsewhere, None), None, "{elsewhere}");
        }
    }

    #[test]
    fn listings_show_one_level_with_directories_once() {
        let mut m = Manifest::default();
        for p in [
            "MLmodel",
            "model/a.pkl",
            "model/b/c.txt",
            "model/d.txt",
            "req.txt",
        ] {
            m.files.insert(
                p.into(),
                FileEntry {
                    size: p.len() as u64,
                    sha256: Sha256Digest::of(p.as_bytes()),
                },
            );
        }
        let names = |dir: &str| {
            children(&m, dir)
                .iter()
                .map(|v| {
                    format!(
                        "{}{}",
                        v["path"].as_str().unwrap(),
                        if v["is_dir"] == true { "/" } else { "" }
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(names(""), ["MLmodel", "model/", "req.txt"]);
        assert_eq!(names("model"), ["a.pkl", "b/", "d.txt"]);
        assert_eq!(children(&m, "model")[0]["file_size"], 11);
        assert!(names("MLmodel").is_empty());
    }
}
