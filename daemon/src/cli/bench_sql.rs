//! `modelwatch bench sql`: SQL latency of typical health queries over a
//! generated history of at least 10 million samples, measured in process
//! through the same session and read-only query path as the HTTP SQL route.
//!
//! The data is written through the real ingest path (remote write decode,
//! WAL, persist to Parquet, compaction) into `<data-dir>/history`, so the
//! Parquet files are exactly what a running daemon would query. The queries
//! and their time bounds are written to `<data-dir>/bench-sql-queries.json`
//! for `scripts/bench_sql_duckdb.py`, which runs the same queries in DuckDB
//! over the same files (BENCHMARKS.md).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use modelwatch_collectors::RemoteWriteConfig;
use modelwatch_collectors::otlp::OtlpConfig;
use modelwatch_collectors::remote_write::proto;
use modelwatch_history::HistoryConfig;
use modelwatch_registry::{RegistryStore, SqliteStore};
use serde::Serialize;

use modelwatch_server::telemetry::Telemetry;

const MODELS: usize = 20;
const VERSIONS: usize = 3;
const BUCKETS: [&str; 10] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf",
];
/// prediction_score, two status codes of http_requests_total, the buckets.
const SERIES_PER_VERSION: usize = 1 + 2 + BUCKETS.len();
const STEP_MS: i64 = 60_000;
/// Minutes of data per ingest request.
const MINUTES_PER_WRITE: usize = 128;

/// One benchmark query, in each engine's dialect.
#[derive(Debug, Clone, Serialize)]
pub struct BenchQuery {
    pub name: &'static str,
    pub description: &'static str,
    /// DataFusion (modelwatch) SQL.
    pub modelwatch: String,
    /// The same query for DuckDB over `read_parquet(...)`, with `{samples}`
    /// standing for the table expression.
    pub duckdb: String,
}

#[derive(Debug, Serialize)]
struct QueryFile {
    rows: u64,
    first_ts: DateTime<Utc>,
    last_ts: DateTime<Utc>,
    parquet_glob: String,
    queries: Vec<BenchQuery>,
}

#[derive(Debug, Serialize)]
pub struct QueryTiming {
    pub name: &'static str,
    pub result_rows: usize,
    pub runs: usize,
    pub median_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
}

fn series_labels(mv: usize, series: usize) -> Vec<proto::Label> {
    let model = format!("model-{:02}", mv / VERSIONS);
    let version = format!("{}", 1 + mv % VERSIONS);
    let instance = format!("10.1.{}.{}:8080", mv / 250, mv % 250);
    let mut labels: Vec<(&str, String)> = match series {
        0 => vec![("__name__", "prediction_score".into())],
        1 | 2 => vec![
            ("__name__", "http_requests_total".into()),
            ("status", if series == 1 { "200" } else { "500" }.into()),
        ],
        b => vec![
            ("__name__", "inference_latency_seconds_bucket".into()),
            ("le", BUCKETS[b - 3].into()),
        ],
    };
    labels.extend([
        ("instance", instance),
        ("job", "model-server".into()),
        ("model", model),
        ("model_version", version),
    ]);
    labels.sort_by(|a, b| a.0.cmp(b.0));
    labels
        .into_iter()
        .map(|(name, value)| proto::Label {
            name: name.into(),
            value,
        })
        .collect()
}

/// Value of `series` of model version `mv` at `minute`: a wandering score,
/// counters whose error share depends on the version, and cumulative
/// latency buckets whose shape shifts with the version.
fn value(mv: usize, series: usize, minute: usize) -> f64 {
    let version = mv % VERSIONS;
    let m = minute as f64;
    let per_minute = 600.0 + (mv * 37 % 400) as f64;
    match series {
        0 => 0.5 + 0.1 * version as f64 + 0.05 * (m / 90.0 + mv as f64).sin(),
        1 => (per_minute * m * (0.99 - 0.02 * version as f64)).floor(),
        2 => (per_minute * m * (0.01 + 0.02 * version as f64)).floor(),
        b => {
            // Share of requests at or under the bucket bound.
            let bound_index = (b - 3) as f64;
            let share = if b - 3 == BUCKETS.len() - 1 {
                1.0
            } else {
                1.0 - (-(bound_index + 1.0) / (2.0 + version as f64)).exp()
            };
            (per_minute * m * share).floor()
        }
    }
}

fn encode_write(mvs: usize, first_minute: usize, minutes: usize, start_ms: i64) -> Vec<u8> {
    let mut timeseries = Vec::with_capacity(mvs * SERIES_PER_VERSION);
    for mv in 0..mvs {
        for s in 0..SERIES_PER_VERSION {
            timeseries.push(proto::TimeSeries {
                labels: series_labels(mv, s),
                samples: (first_minute..first_minute + minutes)
                    .map(|minute| proto::Sample {
                        value: value(mv, s, minute),
                        timestamp: start_ms + minute as i64 * STEP_MS,
                    })
                    .collect(),
                ..Default::default()
            });
        }
    }
    modelwatch_tools::bench_remote_write::encode_series(timeseries)
}

/// The generated history, opened with the daemon's table definitions.
async fn open_history(dir: &Path) -> anyhow::Result<Telemetry> {
    Ok(Telemetry::open(
        &dir.join("history"),
        history_config(),
        RemoteWriteConfig::default(),
        OtlpConfig::default(),
    )
    .await?)
}

fn history_config() -> HistoryConfig {
    // Persistence is driven explicitly below; keep the background limits out
    // of the way of a bulk load.
    HistoryConfig {
        max_buffer_bytes: 8 << 30,
        persist_buffer_bytes: 4 << 30,
        ..HistoryConfig::default()
    }
}

/// Generates `rows` samples ending now into `<dir>/history`, persisted and
/// compacted, unless a previous run left the query file there.
async fn generate(dir: &Path, rows: u64) -> anyhow::Result<QueryFile> {
    let queries_path = dir.join("bench-sql-queries.json");
    let mvs = MODELS * VERSIONS;
    let per_minute = (mvs * SERIES_PER_VERSION) as u64;
    let minutes = rows.div_ceil(per_minute) as usize;
    let now_ms = Utc::now().timestamp_millis() / STEP_MS * STEP_MS;
    let start_ms = now_ms - minutes as i64 * STEP_MS;
    let telemetry = open_history(dir).await?;
    eprintln!(
        "generating {} samples ({} series, {minutes} one-minute steps) into {}",
        per_minute * minutes as u64,
        per_minute,
        dir.display()
    );
    let started = Instant::now();
    let mut written = 0u64;
    let mut since_persist = 0u64;
    let mut first = 0usize;
    while first < minutes {
        let n = MINUTES_PER_WRITE.min(minutes - first);
        let body = encode_write(mvs, first, n, start_ms);
        telemetry
            .remote_write(
                Some("application/x-protobuf"),
                Some("snappy"),
                Some("0.1.0"),
                &body,
            )
            .await?;
        written += per_minute * n as u64;
        since_persist += per_minute * n as u64;
        first += n;
        if since_persist >= 2_000_000 || first == minutes {
            telemetry.store.persist_now().await?;
            since_persist = 0;
            eprintln!(
                "  {written} samples written and persisted ({:.0}%, {:.0} s)",
                100.0 * first as f64 / minutes as f64,
                started.elapsed().as_secs_f64()
            );
        }
    }
    let compacted = telemetry.store.compact_now().await?;
    let stats = telemetry.store.stats();
    eprintln!(
        "  compacted ({compacted:?}); {} Parquet files, {} bytes, {:.2} bytes/sample",
        stats.persisted_files,
        stats.persisted_bytes,
        stats.persisted_bytes as f64 / written as f64
    );
    let first_ts = DateTime::from_timestamp_millis(start_ms).unwrap_or_default();
    let last_ts = DateTime::from_timestamp_millis(now_ms - STEP_MS).unwrap_or_default();
    let file = QueryFile {
        rows: written,
        first_ts,
        last_ts,
        parquet_glob: dir
            .join("history/tables/samples/*/*/*.parquet")
            .display()
            .to_string(),
        queries: queries(last_ts),
    };
    std::fs::write(&queries_path, serde_json::to_vec_pretty(&file)?)?;
    Ok(file)
}

/// The health queries: what a dashboard or the evaluator asks.
pub fn queries(last_ts: DateTime<Utc>) -> Vec<BenchQuery> {
    let bound = |hours: i64| {
        let t = (last_ts - chrono::Duration::hours(hours)).format("%Y-%m-%dT%H:%M:%SZ");
        (format!("TIMESTAMP '{t}'"), format!("TIMESTAMPTZ '{t}'"))
    };
    let (day_df, day_duck) = bound(24);
    let (hour_df, hour_duck) = bound(1);
    // One instance (one model version's server) for the label filter.
    let instance = series_labels(7, 0)
        .into_iter()
        .find(|l| l.name == "instance")
        .map(|l| l.value)
        .unwrap_or_default();
    let both = |name, description, sql: &str| {
        let sql = sql.replace("{instance}", &instance);
        BenchQuery {
            name,
            description,
            modelwatch: sql
                .replace("{samples}", "samples")
                .replace("{since}", &day_df)
                .replace("{hour_ago}", &hour_df),
            duckdb: sql
                .replace("{since}", &day_duck)
                .replace("{hour_ago}", &hour_duck),
        }
    };
    vec![
        both(
            "hourly_average_per_version",
            "per model version hourly average of a gauge, whole history",
            "SELECT model, version, date_trunc('hour', ts) AS hour, avg(value) AS avg_value, count(*) AS n \
             FROM {samples} WHERE metric = 'prediction_score' \
             GROUP BY model, version, date_trunc('hour', ts) ORDER BY model, version, hour",
        ),
        both(
            "p95_from_histogram_buckets",
            "p95 latency bucket per model version over the last 24 h from cumulative bucket counters",
            "WITH increase AS ( \
               SELECT model, version, CAST(le AS DOUBLE) AS upper_bound, max(value) - min(value) AS n \
               FROM {samples} WHERE metric = 'inference_latency_seconds_bucket' AND ts >= {since} \
               GROUP BY model, version, le), \
             total AS (SELECT model, version, max(n) AS n FROM increase GROUP BY model, version) \
             SELECT i.model, i.version, min(i.upper_bound) AS p95_le \
             FROM increase i JOIN total t ON i.model = t.model AND i.version = t.version \
             WHERE i.n >= 0.95 * t.n GROUP BY i.model, i.version ORDER BY i.model, i.version",
        ),
        both(
            "hourly_error_rate_per_version",
            "share of 5xx requests per model version and hour over the last 24 h",
            "SELECT model, version, date_trunc('hour', ts) AS hour, \
               (max(CASE WHEN status = '500' THEN value END) - min(CASE WHEN status = '500' THEN value END)) \
               / (max(value) - min(value) + 1) AS error_share \
             FROM {samples} WHERE metric = 'http_requests_total' AND ts >= {since} \
             GROUP BY model, version, date_trunc('hour', ts) ORDER BY model, version, hour",
        ),
        both(
            "rows_per_version_and_metric",
            "full scan: samples and last timestamp per model version and metric",
            "SELECT model, version, metric, count(*) AS n, max(ts) AS last_ts \
             FROM {samples} GROUP BY model, version, metric ORDER BY model, version, metric",
        ),
        both(
            "label_filter_one_instance",
            "one instance's series over the last 24 h, selected by a label",
            "SELECT metric, count(*) AS n, max(ts) AS last_ts, avg(value) AS avg_value \
             FROM {samples} WHERE labels['instance'] = '{instance}' AND ts >= {since} \
             GROUP BY metric ORDER BY metric",
        ),
        both(
            "top_series_by_rate",
            "the 10 counter series with the highest per-second increase over the last hour",
            "SELECT model, version, metric, status, le, \
               (max(value) - min(value)) / 3600.0 AS per_second \
             FROM {samples} WHERE metric IN ('http_requests_total', 'inference_latency_seconds_bucket') \
               AND ts >= {hour_ago} \
             GROUP BY model, version, metric, status, le \
             ORDER BY per_second DESC, model, version, metric, status, le LIMIT 10",
        ),
    ]
}

/// Runs the benchmark: generate (once) then time each query `runs` times.
pub async fn run(dir: PathBuf, rows: u64, runs: usize) -> anyhow::Result<Vec<QueryTiming>> {
    std::fs::create_dir_all(&dir)?;
    let queries_path = dir.join("bench-sql-queries.json");
    let file: serde_json::Value = if queries_path.exists() {
        eprintln!("reusing the data in {}", dir.display());
        serde_json::from_slice(&std::fs::read(&queries_path)?)?
    } else {
        serde_json::to_value(generate(&dir, rows).await?)?
    };
    let last_ts: DateTime<Utc> = serde_json::from_value(file["last_ts"].clone())?;
    let telemetry = open_history(&dir).await?;
    let registry: Arc<dyn RegistryStore> =
        Arc::new(SqliteStore::open(&dir.join("registry.sqlite")).await?);
    eprintln!(
        "{} samples, {} Parquet files; {runs} runs per query",
        file["rows"],
        telemetry.store.stats().persisted_files
    );
    let engine = modelwatch_server::sql::SqlEngine::new(
        telemetry.store.clone(),
        registry.clone(),
        modelwatch_server::sql::SqlLimits {
            timeout: Duration::from_secs(300),
            memory_bytes: modelwatch_server::config::default_sql_memory_limit(),
        },
    )?;
    let mut timings = Vec::new();
    for q in queries(last_ts) {
        let mut times = Vec::with_capacity(runs);
        let mut result_rows = 0;
        for _ in 0..runs {
            let started = Instant::now();
            // A fresh session per run, as each HTTP request gets.
            let result = engine
                .query(
                    q.modelwatch.clone(),
                    modelwatch_server::sql::MAX_ROW_LIMIT,
                    engine.limits.timeout,
                )
                .await?;
            times.push(started.elapsed().as_secs_f64() * 1e3);
            result_rows = result.batches.iter().map(|b| b.num_rows()).sum();
        }
        times.sort_by(f64::total_cmp);
        timings.push(QueryTiming {
            name: q.name,
            result_rows,
            runs,
            median_ms: times[times.len() / 2],
            min_ms: times[0],
            max_ms: times[times.len() - 1],
        });
    }
    Ok(timings)
}
