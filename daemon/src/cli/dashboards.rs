//! `modelwatch dashboards export DIR`: writes the embedded Grafana
//! dashboards and provisioning files (from `modelwatch-dashboards`) into a
//! directory. Thin: the files, their layout and the overwrite rule live in
//! that crate; this module only maps flags and prints what was written. It
//! needs no daemon and no token.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use modelwatch_dashboards::{ExportOptions, export};

#[derive(Debug, Subcommand)]
pub enum DashboardsCommand {
    /// Write the Grafana dashboards and provisioning files into DIR:
    /// DIR/grafana/*.json, DIR/provisioning/datasources/modelwatch.yml,
    /// DIR/provisioning/dashboards/modelwatch.yml.
    Export(ExportArgs),
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Directory to write into (created if missing).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Overwrite files that already exist.
    #[arg(long)]
    pub force: bool,
    /// URL of the Prometheus server that scrapes modelwatch's /metrics
    /// [default: http://127.0.0.1:9090].
    #[arg(long, value_name = "URL")]
    pub prometheus_url: Option<String>,
    /// host:port of modelwatch's PostgreSQL listener as Grafana reaches it
    /// [default: 127.0.0.1:5433].
    #[arg(long, value_name = "HOST:PORT")]
    pub postgres_host: Option<String>,
    /// Path at which Grafana sees DIR/grafana, when it differs (a container
    /// mount) [default: the absolute path of DIR/grafana].
    #[arg(long, value_name = "PATH")]
    pub grafana_path: Option<String>,
}

pub fn run(command: DashboardsCommand) -> ExitCode {
    let DashboardsCommand::Export(args) = command;
    let options = ExportOptions {
        prometheus_url: args.prometheus_url,
        postgres_host: args.postgres_host,
        grafana_path: args.grafana_path,
        force: args.force,
    };
    match export(&args.dir, &options) {
        Ok(written) => {
            for path in written {
                println!("wrote {}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
