//! # modelwatch-dashboards
//!
//! Grafana dashboards (JSON model, schema version 39) and the Grafana
//! provisioning files that load them, embedded in the binary so
//! `modelwatch dashboards export DIR` can write them anywhere. Besides the
//! files, the crate holds what keeps them honest:
//!
//! - [`queries`] extracts every PromQL expression and SQL query a dashboard
//!   runs (panel targets, annotations, template variable queries), so tests
//!   can check each metric name against the daemon's metrics module and run
//!   each SQL query against the real schema;
//! - [`lint`] checks a dashboard's invariants: every panel described, no
//!   hard-coded datasource uid (datasources are the template variables
//!   `prometheus` and `postgres`), unique panel ids, every `$variable` used
//!   is defined;
//! - [`expand_sql`] expands Grafana's PostgreSQL macros (`$__timeFilter`,
//!   `$__timeGroup`, …) and template variables the way Grafana does before
//!   it sends a query, for those SQL checks.
//!
//! It must not depend on the daemon (the daemon depends on it, and the
//! metric names are checked on the daemon's side) and it knows nothing of
//! PromQL beyond finding queries. Files: `grafana/*.json`,
//! `provisioning/datasources/modelwatch.yml`,
//! `provisioning/dashboards/modelwatch.yml`; [`export`] writes them under
//! the same relative paths.

mod export;
mod lint;
mod macros;
mod queries;

use std::path::PathBuf;

pub use export::{ExportOptions, export};
pub use lint::lint;
pub use macros::{SqlContext, expand_sql};
pub use queries::{Language, Query, queries, queries_of};

/// One embedded file, by its path relative to the `dashboards/` folder (and
/// to the export directory).
#[derive(Debug, Clone, Copy)]
pub struct File {
    pub path: &'static str,
    pub contents: &'static str,
}

/// Every dashboard, by file path.
pub const DASHBOARDS: &[File] = &[
    File {
        path: "grafana/modelwatch-fleet.json",
        contents: include_str!("../grafana/modelwatch-fleet.json"),
    },
    File {
        path: "grafana/modelwatch-model-version.json",
        contents: include_str!("../grafana/modelwatch-model-version.json"),
    },
    File {
        path: "grafana/modelwatch-daemon.json",
        contents: include_str!("../grafana/modelwatch-daemon.json"),
    },
];

/// Grafana provisioning: the datasources and the dashboard file provider.
pub const PROVISIONING: &[File] = &[
    File {
        path: DATASOURCES_PATH,
        contents: include_str!("../provisioning/datasources/modelwatch.yml"),
    },
    File {
        path: PROVIDER_PATH,
        contents: include_str!("../provisioning/dashboards/modelwatch.yml"),
    },
];

const DATASOURCES_PATH: &str = "provisioning/datasources/modelwatch.yml";
const PROVIDER_PATH: &str = "provisioning/dashboards/modelwatch.yml";
/// Where the dashboards go under the export directory.
pub const DASHBOARDS_DIR: &str = "grafana";

/// Every embedded file: dashboards first, then provisioning.
pub fn files() -> impl Iterator<Item = &'static File> {
    DASHBOARDS.iter().chain(PROVISIONING)
}

/// What went wrong with the dashboards or their export.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "{dir} already holds {}; pass --force to overwrite them, or choose another directory",
        .paths.join(", ")
    )]
    Exists { dir: PathBuf, paths: Vec<String> },
    #[error("cannot write {path}: {source}; check the directory exists and is writable")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file} is not valid dashboard JSON: {source}")]
    Json {
        file: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{file}: {message}")]
    Query { file: String, message: String },
    #[error("cannot expand the SQL query: {0}")]
    Macro(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A dashboard parsed from its embedded JSON.
pub fn parse(file: &File) -> Result<serde_json::Value> {
    serde_json::from_str(file.contents).map_err(|source| Error::Json {
        file: file.path.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dashboard_is_valid_json_with_a_stable_uid_and_title() {
        let mut uids = Vec::new();
        for file in DASHBOARDS {
            let d = parse(file).unwrap();
            let uid = d["uid"].as_str().expect("a uid");
            // The file name is the uid: links and bookmarks rely on both.
            assert_eq!(file.path, format!("grafana/{uid}.json"));
            assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()));
            assert!(d["schemaVersion"].as_u64().unwrap() >= 39, "{uid}");
            uids.push(uid.to_string());
        }
        uids.sort();
        uids.dedup();
        assert_eq!(uids.len(), DASHBOARDS.len());
    }

    #[test]
    fn every_dashboard_passes_the_lint() {
        for file in DASHBOARDS {
            let problems = lint(&parse(file).unwrap());
            assert!(problems.is_empty(), "{}: {problems:#?}", file.path);
        }
    }

    #[test]
    fn the_model_version_dashboard_has_its_variables() {
        let file = DASHBOARDS
            .iter()
            .find(|f| f.path.ends_with("modelwatch-model-version.json"))
            .unwrap();
        let d = parse(file).unwrap();
        let vars: Vec<(&str, &str)> = d["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| (v["name"].as_str().unwrap(), v["type"].as_str().unwrap()))
            .collect();
        for want in [
            ("prometheus", "datasource"),
            ("postgres", "datasource"),
            ("model", "query"),
            ("version", "query"),
        ] {
            assert!(vars.contains(&want), "{want:?} missing from {vars:?}");
        }
    }

    #[test]
    fn every_dashboard_has_promql_and_the_sql_ones_have_sql() {
        for file in DASHBOARDS {
            let qs = queries_of(file).unwrap();
            assert!(
                qs.iter().any(|q| q.language == Language::PromQl),
                "{}",
                file.path
            );
            assert!(qs.iter().all(|q| !q.text.trim().is_empty()));
        }
        let all = queries().unwrap();
        // The fleet and model-version dashboards read the registry and the
        // history through SQL: panels, annotations and variables.
        for location in ["annotation", "variable", "panel"] {
            assert!(
                all.iter()
                    .any(|q| q.language == Language::Sql && q.location.starts_with(location)),
                "no SQL {location}"
            );
        }
    }
}
