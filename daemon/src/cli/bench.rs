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
    /// Inference rows/s through the batch upload routes (Arrow IPC, NDJSON).
    Upload(super::bench_upload::UploadBenchArgs),
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

async fn phase<F, Fut>(
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
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map(|d| d.as_secs_f64() * 1e3)
            .unwrap_or(0.0)
    };
    PhaseResult {
        phase: name,
        requests: latencies.len(),
        errors,
        per_second: latencies.len() as f64 / elapsed,
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
        println!(
            "{:<20} {:>10} {:>8} {:>12} {:>9} {:>9}",
            "phase", "requests", "errors", "per second", "p50 ms", "p99 ms"
        );
        for r in &results {
            println!(
                "{:<20} {:>10} {:>8} {:>12.0} {:>9.2} {:>9.2}",
                r.phase, r.requests, r.errors, r.per_second, r.p50_ms, r.p99_ms
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
