//! `modelwatch bench …`: load generators that measure a running daemon over
//! loopback, so anyone can rerun the figures in BENCHMARKS.md.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use modelwatch_client::{Client, NewModel, NewVersion, VersionQuery, routes};

use crate::error::Result;
use crate::{bench_remote_write, report};

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
pub(crate) fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .map(|d| d.as_secs_f64() * 1e3)
        .unwrap_or(0.0)
}

pub async fn phase<F, Fut>(
    name: &'static str,
    concurrency: usize,
    duration: Duration,
    op: F,
) -> PhaseResult
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), modelwatch_client::Error>> + Send,
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

/// What `bench remote-write` loads and how hard.
#[derive(Debug, Clone)]
pub struct RemoteWriteArgs {
    pub concurrency: usize,
    pub duration: Duration,
    pub series: usize,
    pub samples_per_series: usize,
    /// Labels per series, `__name__` included.
    pub labels: usize,
    /// Remote write 1.0 or 2.0 requests.
    pub protocol: modelwatch_collectors::RemoteWriteVersion,
    /// Write endpoint instead of the daemon's own (another TSDB).
    pub target: Option<String>,
}

/// `modelwatch bench remote-write`: pre-encoded realistic payloads against
/// the daemon's `/api/v1/write` or `args.target`.
pub async fn remote_write(client: &Client, json: bool, args: RemoteWriteArgs) -> Result<ExitCode> {
    let plan = bench_remote_write::RemoteWritePlan {
        target: args
            .target
            .unwrap_or_else(|| client.url(routes::REMOTE_WRITE)),
        token: client.token().map(str::to_string),
        series_per_request: args.series,
        samples_per_series: args.samples_per_series,
        labels_per_series: args.labels.max(bench_remote_write::BASE_LABELS),
        protocol: args.protocol,
        first_timestamp_ms: None,
        distinct_requests: 256,
        concurrency: args.concurrency,
        duration: args.duration,
    };
    let (result, mean_bytes) = bench_remote_write::run(&plan).await?;
    let samples_per_second = result.per_second * plan.samples_per_request() as f64;
    if json {
        println!(
            "{}",
            json!({
                "target": plan.target,
                "samples_per_request": plan.samples_per_request(),
                "labels_per_series": plan.labels_per_series,
                "protocol": plan.protocol.message(),
                "request_bytes": mean_bytes,
                "samples_per_second": samples_per_second,
                "phase": result,
            })
        );
    } else {
        print_results(std::slice::from_ref(&result));
        println!("samples per second: {samples_per_second:.0}");
    }
    Ok(report::exit_code(result.errors))
}

pub fn print_results(results: &[PhaseResult]) {
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

/// `modelwatch bench registry`: version creations, alias lookups and
/// searches on a fresh model.
pub async fn registry(
    client: &Client,
    json: bool,
    concurrency: usize,
    duration: Duration,
) -> Result<ExitCode> {
    let client = Arc::new(client.clone());
    let model = format!("bench-{}", chrono::Utc::now().format("%Y%m%d%H%M%S%f"));
    let mut new_model = NewModel::named(&model);
    new_model.tags.insert("purpose".into(), "bench".into());
    client.models().create(&new_model).await?;
    eprintln!(
        "benchmarking {} with {concurrency} concurrent requests, {}s per phase (model {model})",
        client.base_url(),
        duration.as_secs()
    );

    let mut results = Vec::new();
    let (c, m) = (client.clone(), model.clone());
    results.push(
        phase("version creations", concurrency, duration, move |i| {
            let (c, m) = (c.clone(), m.clone());
            async move {
                let mut new = NewVersion {
                    run_id: Some(format!("run-{i}")),
                    ..NewVersion::default()
                };
                new.lineage.metrics.insert("auc".into(), 0.9);
                c.versions(&m).create(&new).await.map(drop)
            }
        })
        .await,
    );
    client.aliases(&model).set("staging", 1, "").await?;
    let (c, m) = (client.clone(), model.clone());
    results.push(
        phase("alias lookups", concurrency, duration, move |_| {
            let (c, m) = (c.clone(), m.clone());
            async move { c.aliases(&m).get("staging").await.map(drop) }
        })
        .await,
    );
    let (c, m) = (client.clone(), model.clone());
    results.push(
        phase("searches", concurrency, duration, move |i| {
            let (c, m) = (c.clone(), m.clone());
            async move {
                let query = VersionQuery {
                    page: modelwatch_client::PageQuery::limit(10),
                    run_id: Some(format!("run-{}", i % 1000)),
                    ..VersionQuery::default()
                };
                c.versions(&m).list(&query).await.map(drop)
            }
        })
        .await,
    );

    report::print(json, &results, |r| print_results(r));
    Ok(ExitCode::SUCCESS)
}
