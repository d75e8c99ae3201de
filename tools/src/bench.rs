//! `modelwatch bench …`: load generators that measure a running daemon over
//! loopback, so anyone can rerun the figures in BENCHMARKS.md.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Subcommand;
use reqwest::Method;
use serde_json::json;

use super::Connection;
use super::client::{Client, ClientError};
use super::{bench_remote_write, bench_sql};

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
    Otlp(super::bench_otlp::OtlpBenchArgs),
    /// Inference rows/s through the batch upload routes (Arrow IPC, NDJSON).
    Upload(super::bench_upload::UploadBenchArgs),
    /// Evaluator cycle time over many watched versions, and remote-write
    /// ingestion idle versus during evaluation.
    Evaluate(super::bench_evaluate::EvaluateBenchArgs),
    /// MLflow REST calls (version creation, alias set/get, search, set-tag)
    /// against modelwatch's `/api/2.0/mlflow` or an `mlflow server`.
    Mlflow(super::bench_mlflow::MlflowBenchArgs),
}

/// Throughput and latency of one phase.
#[derive(Debug, serde::Serialize)]
pub struct PhaseResult {
    pub phase: &'static str,
    pub requests: usize,
    pub errors: usize,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// The `p` quantile (0–1) of sorted latencies, in milliseconds (0 when empty).
pub(super) fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .map(|d| d.as_secs_f64() * 1e3)
        .unwrap_or(0.0)
}

pub(super) async fn phase<F, Fut>(
    name: &'static str,
    concurrency: usize,
    duration: Duration,
    op: F,
) -> PhaseResult
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), ClientError>> + Send,
{
    let op = Arc::new(op);
    let start = Instant::now();
    let deadline = start + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0usize;
                let mut i = 0usize;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    if op(w * 1_000_000 + i).await.is_err() {
                        errors += 1;
                    }
                    latencies.push(t.elapsed());
                    i += 1;
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for w in workers {
        if let Ok((l, e)) = w.await {
            latencies.extend(l);
            errors += e;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| percentile_ms(&latencies, p);
    PhaseResult {
        phase: name,
        requests: latencies.len(),
        errors,
        // Only acknowledged requests count as throughput.
        per_second: (latencies.len() - errors) as f64 / elapsed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    }
}

pub async fn run(command: BenchCommand, conn: &Connection) -> Result<ExitCode, ClientError> {
    match command {
        BenchCommand::Registry {
            concurrency,
            seconds,
        } => registry(conn, concurrency, Duration::from_secs(seconds)).await,
        BenchCommand::Upload(args) => super::bench_upload::run(conn, args).await,
        BenchCommand::Evaluate(args) => super::bench_evaluate::run(conn, args).await,
        BenchCommand::Otlp(args) => super::bench_otlp::run(args, conn).await,
        BenchCommand::Mlflow(args) => super::bench_mlflow::run(conn, args).await,
        BenchCommand::Sql {
            data_dir,
            rows,
            runs,
        } => {
            let timings = bench_sql::run(data_dir, rows, runs.max(1))
                .await
                .map_err(|e| ClientError::Local(format!("{e:#}")))?;
            if conn.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&timings).unwrap_or_default()
                );
            } else {
                print_timings(&timings);
            }
            Ok(ExitCode::SUCCESS)
        }
        BenchCommand::RemoteWrite {
            concurrency,
            seconds,
            series,
            samples_per_series,
            target,
        } => {
            let plan = bench_remote_write::RemoteWritePlan {
                target: target
                    .unwrap_or_else(|| format!("{}/api/v1/write", conn.url.trim_end_matches('/'))),
                token: conn.token.clone(),
                series_per_request: series,
                samples_per_series,
                distinct_requests: 256,
                concurrency,
                duration: Duration::from_secs(seconds),
            };
            let (result, mean_bytes) = bench_remote_write::run(&plan).await?;
            let samples_per_second = result.per_second * plan.samples_per_request() as f64;
            if conn.json {
                println!(
                    "{}",
                    json!({
                        "target": plan.target,
                        "samples_per_request": plan.samples_per_request(),
                        "request_bytes": mean_bytes,
                        "samples_per_second": samples_per_second,
                        "phase": result,
                    })
                );
            } else {
                print_results(std::slice::from_ref(&result));
                println!("samples per second: {samples_per_second:.0}");
            }
            Ok(if result.errors == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
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

pub(super) fn print_results(results: &[PhaseResult]) {
    println!(
        "{:<20} {:>10} {:>8} {:>12} {:>9} {:>9}",
        "phase", "requests", "errors", "per second", "p50 ms", "p99 ms"
    );
    for r in results {
        println!(
            "{:<20} {:>10} {:>8} {:>12.0} {:>9.2} {:>9.2}",
            r.phase, r.requests, r.errors, r.per_second, r.p50_ms, r.p99_ms
        );
    }
}

async fn registry(
    conn: &Connection,
    concurrency: usize,
    duration: Duration,
) -> Result<ExitCode, ClientError> {
    let client = Arc::new(Client::new(&conn.url, conn.token.clone()));
    let model = format!("bench-{}", chrono::Utc::now().format("%Y%m%d%H%M%S%f"));
    client
        .call(
            Method::POST,
            "/api/v1/models",
            Some(&json!({ "name": model, "tags": { "purpose": "bench" } })),
        )
        .await?;
    eprintln!(
        "benchmarking {} with {concurrency} concurrent requests, {}s per phase (model {model})",
        conn.url,
        duration.as_secs()
    );

    let mut results = Vec::new();
    let (c, m) = (client.clone(), model.clone());
    results.push(
        phase("version creations", concurrency, duration, move |i| {
            let (c, m) = (c.clone(), m.clone());
            async move {
                let body = json!({ "run_id": format!("run-{i}"), "lineage": { "metrics": { "auc": 0.9 } } });
                c.call(Method::POST, &format!("/api/v1/models/{m}/versions"), Some(&body)).await.map(drop)
            }
        })
        .await,
    );
    client
        .call(
            Method::PUT,
            &format!("/api/v1/models/{model}/aliases/staging"),
            Some(&json!({ "version": 1 })),
        )
        .await?;
    let (c, m) = (client.clone(), model.clone());
    results.push(
        phase("alias lookups", concurrency, duration, move |_| {
            let (c, m) = (c.clone(), m.clone());
            async move {
                c.get(&format!("/api/v1/models/{m}/aliases/staging"))
                    .await
                    .map(drop)
            }
        })
        .await,
    );
    let (c, m) = (client.clone(), model.clone());
    results.push(
        phase("searches", concurrency, duration, move |i| {
            let (c, m) = (c.clone(), m.clone());
            async move {
                c.get(&format!(
                    "/api/v1/models/{m}/versions?run_id=run-{}&limit=10",
                    i % 1000
                ))
                .await
                .map(drop)
            }
        })
        .await,
    );

    if conn.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&results).unwrap_or_default()
        );
    } else {
        print_results(&results);
    }
    Ok(ExitCode::SUCCESS)
}
