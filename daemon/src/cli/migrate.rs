//! `modelwatch migrate --to postgres://…`: the embedded SQLite registry of a
//! data directory copied into an empty PostgreSQL database, with a progress
//! bar, its audit chain verified on arrival (`PgStore::import_sqlite`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressFinish, ProgressStyle};
use serde_json::json;

use modelwatch_registry::{PgStore, PoolLimits, SystemClock};

use super::error::CliError;
use super::output;

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The data directory whose `registry.sqlite` is copied (the daemon may
    /// keep running: the copy reads one consistent snapshot, but changes
    /// made after it are not copied, so stop it first)
    #[arg(long, env = "MODELWATCH_DATA_DIR", default_value = "./modelwatch-data")]
    pub data_dir: PathBuf,
    /// The empty PostgreSQL database to copy into:
    /// `postgres://user:password@host:port/database` (libpq parameters such
    /// as `sslmode` work); then start the daemons with `--registry-url`
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: MigrateArgs) -> Result<ExitCode, CliError> {
    let source = args.data_dir.join("registry.sqlite");
    let local = |e: modelwatch_registry::Error| CliError::Local(e.to_string());
    let target = PgStore::connect(&args.to, PoolLimits::default(), Arc::new(SystemClock))
        .await
        .map_err(local)?;
    let bar = if args.json {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr())
            .with_finish(ProgressFinish::AndLeave);
        bar.set_style(
            ProgressStyle::with_template("{msg:24} [{bar:30}] {pos}/{len} rows, eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar
    };
    let outcome = target
        .import_sqlite(&source, &mut |p| {
            bar.set_length(p.total_all);
            bar.set_position(p.copied_all);
            bar.set_message(p.table.clone());
        })
        .await;
    target.close().await;
    let report = outcome.map_err(local)?;
    bar.finish_with_message("copied");
    let tables: Vec<_> = report
        .tables
        .iter()
        .map(|(table, rows)| json!({ "table": table, "rows": rows }))
        .collect();
    let value = json!({ "tables": tables, "audit_entries": report.audit_entries });
    output::print(args.json, &value, |v| {
        let mut text = output::list(&v["tables"], &[("TABLE", "/table"), ("ROWS", "/rows")]);
        text.push_str(&format!(
            "\naudit chain verified on PostgreSQL: {} entries\n\
             start the daemons with --registry-url (the URL given to --to)\n",
            v["audit_entries"]
        ));
        text
    });
    Ok(ExitCode::SUCCESS)
}
