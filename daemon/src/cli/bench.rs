//! `modelwatch bench …`: the command tree of the load generators. They
//! live in `modelwatch-tools`; `bench sql` runs the server's SQL engine in
//! process and stays here ([`super::bench_sql`]).

use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;

use modelwatch_tools::{
    bench, bench_evaluate, bench_mlflow, bench_otlp, bench_ui, bench_upload, report,
};

use super::bench_sql;
use super::{CliError, Connection, client};

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Registry throughput: version creations, alias lookups, searches.
    Registry {
        /// Concurrent requests in flight.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Seconds per phase.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Prometheus remote write ingestion, end to end (HTTP, decode, WAL
    /// fsync, acknowledgement), with pre-encoded realistic payloads.
    RemoteWrite {
        /// Concurrent requests in flight.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Seconds to run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Series per request.
        #[arg(long, default_value_t = 100)]
        series: usize,
        /// Samples per series per request.
        #[arg(long, default_value_t = 10)]
        samples_per_series: usize,
        /// Labels per series, `__name__` included (at least 6; extras are
        /// node_exporter-like). Prometheus' own shape: --series 2000
        /// --samples-per-series 1 --labels 20.
        #[arg(long, default_value_t = 6)]
        labels: usize,
        /// Remote write protocol of the requests: 1 (prometheus.WriteRequest)
        /// or 2 (io.prometheus.write.v2.Request).
        #[arg(long, default_value = "1", value_parser = ["1", "2"])]
        protocol: String,
        /// Write endpoint to load instead of `<url>/api/v1/write`, e.g.
        /// VictoriaMetrics at http://127.0.0.1:8428/api/v1/write.
        #[arg(long)]
        target: Option<String>,
    },
    /// SQL latency of health queries over a generated history (runs in
    /// process, no daemon needed). The data is generated once into DIR and
    /// reused; scripts/bench_sql_duckdb.py runs the same queries in DuckDB.
    Sql {
        /// Where the generated history lives (created when missing).
        #[arg(long, default_value = "./modelwatch-bench-sql")]
        data_dir: std::path::PathBuf,
        /// Samples to generate (when DIR holds none yet).
        #[arg(long, default_value_t = 10_000_000)]
        rows: u64,
        /// Timed runs per query.
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// OTLP metrics ingestion: batched exports over HTTP or gRPC.
    Otlp(bench_otlp::OtlpBenchArgs),
    /// Inference rows/s through the batch upload routes (Arrow IPC, NDJSON).
    Upload(bench_upload::UploadBenchArgs),
    /// Evaluator cycle time over many watched versions, and remote-write
    /// ingestion idle versus during evaluation.
    Evaluate(bench_evaluate::EvaluateBenchArgs),
    /// MLflow REST calls (version creation, alias set/get, search, set-tag)
    /// against modelwatch's `/api/2.0/mlflow` or an `mlflow server`.
    Mlflow(bench_mlflow::MlflowBenchArgs),
    /// Server time and weight of the web UI's heaviest pages on a registry
    /// seeded with 1,000 models × 20 versions and a version's drift history.
    Ui(bench_ui::UiBenchArgs),
}

pub async fn run(command: BenchCommand, conn: &Connection) -> Result<ExitCode, CliError> {
    let c = client(conn)?;
    let code = match command {
        BenchCommand::Registry {
            concurrency,
            seconds,
        } => bench::registry(&c, conn.json, concurrency, Duration::from_secs(seconds)).await?,
        BenchCommand::Upload(args) => bench_upload::run(&c, conn.json, args).await?,
        BenchCommand::Evaluate(args) => bench_evaluate::run(&c, conn.json, args).await?,
        BenchCommand::Otlp(args) => bench_otlp::run(&c, conn.json, args).await?,
        BenchCommand::Mlflow(args) => bench_mlflow::run(&c, conn.json, args).await?,
        BenchCommand::Ui(args) => bench_ui::run(&c, conn.json, args).await?,
        BenchCommand::RemoteWrite {
            concurrency,
            seconds,
            series,
            samples_per_series,
            labels,
            protocol,
            target,
        } => {
            let args = bench::RemoteWriteArgs {
                concurrency,
                duration: Duration::from_secs(seconds),
                series,
                samples_per_series,
                labels,
                protocol: if protocol == "2" {
                    modelwatch_collectors::RemoteWriteVersion::V2
                } else {
                    modelwatch_collectors::RemoteWriteVersion::V1
                },
                target,
            };
            bench::remote_write(&c, conn.json, args).await?
        }
        BenchCommand::Sql {
            data_dir,
            rows,
            runs,
        } => {
            let timings = bench_sql::run(data_dir, rows, runs.max(1))
                .await
                .map_err(|e| CliError::Local(format!("{e:#}")))?;
            report::print(conn.json, &timings, |t| print_timings(t));
            ExitCode::SUCCESS
        }
    };
    Ok(code)
}

fn print_timings(timings: &[bench_sql::QueryTiming]) {
    println!(
        "{:<32} {:>8} {:>6} {:>11} {:>9} {:>9}",
        "query", "rows", "runs", "median ms", "min ms", "max ms"
    );
    for t in timings {
        println!(
            "{:<32} {:>8} {:>6} {:>11.1} {:>9.1} {:>9.1}",
            t.name, t.result_rows, t.runs, t.median_ms, t.min_ms, t.max_ms
        );
    }
}
