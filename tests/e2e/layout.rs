//! The workspace's shape, checked: dependency arrows point down DESIGN's
//! Workspace table (libraries never depend on `server`, `daemon` or
//! `tools`; siblings share only `types`), and SQL stays in the registry's
//! backend folders. A change that breaks either fails here, not in review.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace_root() -> PathBuf {
    Path::new(&crate::support::manifest_dir())
        .parent()
        .expect("tests/ sits in the workspace root")
        .to_path_buf()
}

/// What each workspace crate may depend on among the workspace's crates
/// (normal, build and dev dependencies alike). `None`: anything.
fn allowed(krate: &str) -> Option<&'static [&'static str]> {
    Some(match krate {
        // The binary and the end-to-end tests wire everything.
        "modelwatch" | "modelwatch-tests" => return None,
        // The libraries, and the client crate for its outbound HTTPS trust
        // (`modelwatch_client::tls`: one `--ca-file` for CLI and daemon);
        // DESIGN's table lets `server` use every crate below it.
        "modelwatch-server" => &[
            "modelwatch-types",
            "modelwatch-registry",
            "modelwatch-history",
            "modelwatch-artifacts",
            "modelwatch-collectors",
            "modelwatch-drift",
            "modelwatch-alerts",
            "modelwatch-dashboards",
            "modelwatch-evaluator",
            "modelwatch-client",
        ],
        "modelwatch-evaluator" => &[
            "modelwatch-types",
            "modelwatch-drift",
            "modelwatch-registry",
        ],
        // The load generators send the wire formats the collectors define
        // (remote write and OTLP protobuf): the one deviation from DESIGN's
        // table, recorded in ARCHITECTURE.md.
        "modelwatch-tools" => &[
            "modelwatch-client",
            "modelwatch-types",
            "modelwatch-collectors",
        ],
        "modelwatch-registry"
        | "modelwatch-history"
        // Not in DESIGN's table (issue 22 added it); recorded in ARCHITECTURE.md.
        | "modelwatch-artifacts"
        | "modelwatch-collectors"
        | "modelwatch-drift"
        | "modelwatch-alerts"
        | "modelwatch-dashboards"
        | "modelwatch-client" => &["modelwatch-types"],
        "modelwatch-types" => &[],
        other => panic!(
            "workspace crate {other} is not in DESIGN's Workspace table: add it there and here"
        ),
    })
}

#[test]
fn dependency_arrows_point_down_the_workspace_table() {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(workspace_root())
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let packages = metadata["packages"].as_array().unwrap();
    let members: BTreeSet<&str> = packages
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        members.contains("modelwatch-server") && members.contains("modelwatch-types"),
        "the workspace lost a crate of the table: {members:?}"
    );

    let mut wrong: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for package in packages {
        let name = package["name"].as_str().unwrap();
        let Some(allowed) = allowed(name) else {
            continue;
        };
        for dep in package["dependencies"].as_array().unwrap() {
            let dep_name = dep["name"].as_str().unwrap();
            if members.contains(dep_name) && !allowed.contains(&dep_name) {
                wrong
                    .entry(name.to_string())
                    .or_default()
                    .push(dep_name.to_string());
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "dependencies against DESIGN's Workspace table (crate → forbidden workspace deps): {wrong:?}"
    );
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            let name = path.file_name().unwrap().to_string_lossy();
            if name != "target" && !name.starts_with('.') {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn sql_stays_in_the_registry_backend_folders() {
    let root = workspace_root();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let backends = [
        root.join("registry/src/sqlite"),
        root.join("registry/src/postgres"),
        root.join("registry/src/sql"),
    ];
    // This file names the crate to look for it.
    let this = root.join("tests/e2e/layout.rs");
    let offenders: Vec<String> = files
        .iter()
        .filter(|f| !backends.iter().any(|b| f.starts_with(b)) && **f != this)
        .filter(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .any(|l| l.contains("sqlx::") || l.contains("use sqlx"))
        })
        .map(|f| f.strip_prefix(&root).unwrap().display().to_string())
        .collect();
    assert!(
        files.len() > 100,
        "the walk found only {} Rust files",
        files.len()
    );
    assert!(
        offenders.is_empty(),
        "sqlx used outside registry/src/{{sqlite,postgres,sql}}/: {offenders:?}"
    );
}
