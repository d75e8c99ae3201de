//! `modelwatch backup` and `modelwatch restore`: thin commands over
//! `modelwatch_server::backup` (the format, the order, the checks).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use modelwatch_server::backup;

use super::error::CliError;
use super::output;

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The data directory to back up; the daemon serving it keeps running
    /// (the registry is copied as one transaction, the history up to the
    /// moment the backup starts)
    #[arg(long, env = "MODELWATCH_DATA_DIR", default_value = "./modelwatch-data")]
    pub data_dir: PathBuf,
    /// The backup directory: created if missing; backups into the same
    /// directory share the files they have in common (incremental)
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup directory (`modelwatch backup --to`)
    #[arg(long, value_name = "DIR")]
    pub from: PathBuf,
    /// Which backup (an id of `DIR/backups/<id>.json`) [default: the newest]
    #[arg(long, value_name = "ID")]
    pub backup: Option<String>,
    /// The new data directory: must not exist or be empty
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

fn say(json: bool) -> impl FnMut(&str) + Send {
    move |step: &str| {
        if !json {
            eprintln!("{step}");
        }
    }
}

pub async fn run_backup(args: BackupArgs) -> Result<ExitCode, CliError> {
    let report = backup::backup(&args.data_dir, &args.to, &mut say(args.json))
        .await
        .map_err(|e| CliError::Local(e.to_string()))?;
    let value = serde_json::to_value(&report).unwrap_or_default();
    output::print(args.json, &value, |v| {
        format!(
            "backup {} written: {} files ({} bytes), {} new ({} bytes)\n\
             registry: {} audit entries, chain verified; history up to WAL record {} in Parquet, the rest in WAL segments\n\
             restore with: modelwatch restore --from {} --data-dir NEW\n",
            v["id"].as_str().unwrap_or_default(),
            v["files"],
            v["bytes"],
            v["new_files"],
            v["new_bytes"],
            v["audit_entries"],
            v["history_persisted_seq"],
            args.to.display()
        )
    });
    Ok(ExitCode::SUCCESS)
}

pub async fn run_restore(args: RestoreArgs) -> Result<ExitCode, CliError> {
    let report = backup::restore(
        &args.from,
        args.backup.as_deref(),
        &args.data_dir,
        &mut say(args.json),
    )
    .await
    .map_err(|e| CliError::Local(e.to_string()))?;
    let value = json!(report);
    output::print(args.json, &value, |v| {
        format!(
            "restored backup {} into {}: {} files ({} bytes), every checksum verified; audit chain verified ({} entries)\n\
             start it with: modelwatch serve --data-dir {}\n",
            v["id"].as_str().unwrap_or_default(),
            args.data_dir.display(),
            v["files"],
            v["bytes"],
            v["audit_entries"],
            args.data_dir.display()
        )
    });
    Ok(ExitCode::SUCCESS)
}
