//! `modelwatch alerts export DIR` (the Prometheus rules, their promtool
//! tests and the example Alertmanager configuration) and `modelwatch alerts
//! list` (alert states the receiver handled).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;

use super::output::{Column, page, print};
use super::{CliError, Connection, PageArgs, client, document};

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Write alerts/rules/*.yml, their promtool tests and
    /// alertmanager.example.yml into DIR.
    Export {
        dir: PathBuf,
        /// Overwrite files that exist.
        #[arg(long)]
        force: bool,
    },
    /// Alert states received from Alertmanager and what became of them.
    List {
        #[command(flatten)]
        page: PageArgs,
    },
}

const ALERT_COLUMNS: &[Column] = &[
    ("id", "/id"),
    ("received", "/received_at"),
    ("alert", "/alert_name"),
    ("status", "/status"),
    ("model", "/model"),
    ("version", "/version"),
    ("outcome", "/outcome"),
    ("detail", "/detail"),
];

pub async fn run(command: AlertsCommand, conn: &Connection) -> Result<ExitCode, CliError> {
    match command {
        AlertsCommand::Export { dir, force } => {
            for path in write_files(&dir, modelwatch_alerts::FILES, force)? {
                println!("wrote {}", path.display());
            }
        }
        AlertsCommand::List { page: p } => {
            let listed = client(conn)?.alerts().list(&p.query()).await?;
            print(conn.json, &document(&listed), |v| page(v, ALERT_COLUMNS));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes embedded files under `dir` (creating directories), refusing
/// before writing anything when one exists and `force` is off. Returns the
/// paths written.
pub fn write_files(
    dir: &Path,
    files: &[(&str, &str)],
    force: bool,
) -> Result<Vec<PathBuf>, CliError> {
    let local = |what: String| CliError::Local(what);
    let targets: Vec<(PathBuf, &str)> = files
        .iter()
        .map(|(rel, text)| (dir.join(rel), *text))
        .collect();
    if !force {
        let existing: Vec<String> = targets
            .iter()
            .filter(|(p, _)| p.exists())
            .map(|(p, _)| p.display().to_string())
            .collect();
        if !existing.is_empty() {
            return Err(local(format!(
                "{} already exist(s): {}; pass --force to overwrite",
                existing.len(),
                existing.join(", ")
            )));
        }
    }
    let mut written = Vec::new();
    for (path, text) in targets {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| local(format!("cannot create {}: {e}", parent.display())))?;
        }
        std::fs::write(&path, text)
            .map_err(|e| local(format!("cannot write {}: {e}", path.display())))?;
        written.push(path);
    }
    Ok(written)
}
