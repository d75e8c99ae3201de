//! Every metric the daemon exposes on `/metrics`, declared in this one module
//! (dashboards and alert rules are checked against it). Names follow
//! `modelwatch_<name>_<unit>`; every label takes values from a bounded set
//! (route templates, protocols, table names, error classes), never from
//! request data such as model names.
//!
//! The metrics live in one process-wide registry: the prometheus crate's
//! collectors are cheap atomics, and a global keeps the ingest and query
//! paths free of plumbing. History store counters are read from
//! [`HistoryStats`] when `/metrics` is scraped, not mirrored on every write.

use std::sync::{LazyLock, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use modelwatch_history::HistoryStats;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

/// Latency buckets for HTTP requests and SQL queries, in seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The daemon's metrics. Obtain with [`metrics()`].
pub struct Metrics {
    registry: Registry,
    /// `modelwatch_http_requests_total{route, method, status}`.
    pub http_requests: IntCounterVec,
    /// `modelwatch_http_request_duration_seconds{route, method}`.
    pub http_request_duration: HistogramVec,
    /// `modelwatch_ingest_rows_total{protocol, table}`: rows stored.
    pub ingest_rows: IntCounterVec,
    /// `modelwatch_ingest_rows_without_model_total{protocol}`: rows stored
    /// that carried no model attribution.
    pub ingest_rows_without_model: IntCounterVec,
    /// `modelwatch_ingest_rejected_requests_total{protocol, reason}`.
    pub ingest_rejected: IntCounterVec,
    /// `modelwatch_sql_query_duration_seconds`: planning and execution.
    pub sql_query_duration: Histogram,
    /// `modelwatch_webhook_deliveries_total{outcome}`: webhook delivery
    /// attempts by outcome (`delivered`, `retry`, `failed`).
    pub webhook_deliveries: IntCounterVec,
    history: Mutex<HistoryGauges>,
}

/// History store figures, refreshed from [`HistoryStats`] at scrape time.
struct HistoryGauges {
    buffer_bytes: IntGauge,
    buffer_rows: IntGauge,
    wal_bytes: IntGauge,
    wal_segments: IntGauge,
    wal_last_fsync_seconds: prometheus::Gauge,
    persisted_files: IntGauge,
    persisted_bytes: IntGauge,
    persisted_rows: IntGauge,
    wal_fsyncs: IntCounter,
    wal_records: IntCounter,
    writes_overloaded: IntCounter,
    persists: IntCounter,
    compactions: IntCounter,
    retention_files_deleted: IntCounter,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

fn register<C: prometheus::core::Collector + Clone + 'static>(registry: &Registry, c: C) -> C {
    registry
        .register(Box::new(c.clone()))
        .expect("metric names are declared once, in this module");
    c
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    register(
        r,
        IntCounter::new(name, help).expect("valid metric definition"),
    )
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    register(
        r,
        IntGauge::new(name, help).expect("valid metric definition"),
    )
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(
        r,
        IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition"),
    )
}

impl Metrics {
    fn new() -> Self {
        let r = Registry::new();
        let history = HistoryGauges {
            buffer_bytes: gauge(
                &r,
                "modelwatch_history_buffer_bytes",
                "Bytes of acknowledged telemetry held in memory until persisted.",
            ),
            buffer_rows: gauge(
                &r,
                "modelwatch_history_buffer_rows",
                "Rows of acknowledged telemetry held in memory until persisted.",
            ),
            wal_bytes: gauge(
                &r,
                "modelwatch_wal_bytes",
                "Bytes in write-ahead log segments not yet truncated.",
            ),
            wal_segments: gauge(
                &r,
                "modelwatch_wal_segments",
                "Write-ahead log segment files.",
            ),
            wal_last_fsync_seconds: register(
                &r,
                prometheus::Gauge::new(
                    "modelwatch_wal_last_fsync_seconds",
                    "Duration of the most recent WAL write and fdatasync.",
                )
                .expect("valid metric definition"),
            ),
            persisted_files: gauge(
                &r,
                "modelwatch_history_persisted_files",
                "Parquet files in the history manifest.",
            ),
            persisted_bytes: gauge(
                &r,
                "modelwatch_history_persisted_bytes",
                "Bytes of Parquet files in the history manifest.",
            ),
            persisted_rows: gauge(
                &r,
                "modelwatch_history_persisted_rows",
                "Rows in Parquet files in the history manifest.",
            ),
            wal_fsyncs: counter(
                &r,
                "modelwatch_wal_fsyncs_total",
                "fdatasync calls on the WAL; fewer than records when group commit batches writes.",
            ),
            wal_records: counter(
                &r,
                "modelwatch_wal_records_total",
                "Records written to the WAL (one per acknowledged write).",
            ),
            writes_overloaded: counter(
                &r,
                "modelwatch_history_overloaded_writes_total",
                "Writes refused with 503 because the WAL or persistence fell behind.",
            ),
            persists: counter(
                &r,
                "modelwatch_history_persists_total",
                "Buffer persists to Parquet.",
            ),
            compactions: counter(
                &r,
                "modelwatch_history_compactions_total",
                "Partition compactions.",
            ),
            retention_files_deleted: counter(
                &r,
                "modelwatch_history_retention_deleted_files_total",
                "Parquet files deleted by retention.",
            ),
        };
        Self {
            http_requests: counter_vec(
                &r,
                "modelwatch_http_requests_total",
                "HTTP requests answered, by route template, method and status code.",
                &["route", "method", "status"],
            ),
            http_request_duration: register(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "modelwatch_http_request_duration_seconds",
                        "HTTP request latency, by route template and method.",
                    )
                    .buckets(LATENCY_BUCKETS.to_vec()),
                    &["route", "method"],
                )
                .expect("valid metric definition"),
            ),
            ingest_rows: counter_vec(
                &r,
                "modelwatch_ingest_rows_total",
                "Telemetry rows stored, by protocol and history table.",
                &["protocol", "table"],
            ),
            ingest_rows_without_model: counter_vec(
                &r,
                "modelwatch_ingest_rows_without_model_total",
                "Telemetry rows stored without a model attribution, by protocol.",
                &["protocol"],
            ),
            ingest_rejected: counter_vec(
                &r,
                "modelwatch_ingest_rejected_requests_total",
                "Ingest requests refused, by protocol and reason.",
                &["protocol", "reason"],
            ),
            sql_query_duration: register(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "modelwatch_sql_query_duration_seconds",
                        "SQL query latency (planning and execution).",
                    )
                    .buckets(LATENCY_BUCKETS.to_vec()),
                )
                .expect("valid metric definition"),
            ),
            webhook_deliveries: {
                let v = counter_vec(
                    &r,
                    "modelwatch_webhook_deliveries_total",
                    "Webhook delivery attempts by outcome: delivered (2xx), retry (failed, will be retried), failed (failed, no attempts left).",
                    &["outcome"],
                );
                // Every outcome is exported from the start, at 0.
                for outcome in ["delivered", "retry", "failed"] {
                    v.with_label_values(&[outcome]);
                }
                v
            },
            history: Mutex::new(history),
            registry: r,
        }
    }

    /// The text exposition format (version 0.0.4), with the history figures
    /// refreshed from `stats` first.
    pub fn render(&self, stats: &HistoryStats) -> String {
        {
            let h = self.history.lock().unwrap_or_else(|e| e.into_inner());
            let set = |g: &IntGauge, v: u64| g.set(i64::try_from(v).unwrap_or(i64::MAX));
            // Counters mirror monotonic totals kept by the store since open;
            // the lock makes the read-compare-add exact across scrapes.
            let catch_up = |c: &IntCounter, v: u64| c.inc_by(v.saturating_sub(c.get()));
            set(&h.buffer_bytes, stats.buffer_bytes);
            set(&h.buffer_rows, stats.buffer_rows);
            set(&h.wal_bytes, stats.wal_bytes);
            set(&h.wal_segments, stats.wal_segments);
            h.wal_last_fsync_seconds
                .set(stats.last_fsync_micros as f64 / 1e6);
            set(&h.persisted_files, stats.persisted_files);
            set(&h.persisted_bytes, stats.persisted_bytes);
            set(&h.persisted_rows, stats.persisted_rows);
            catch_up(&h.wal_fsyncs, stats.wal_fsyncs);
            catch_up(&h.wal_records, stats.wal_records);
            catch_up(&h.writes_overloaded, stats.writes_overloaded);
            catch_up(&h.persists, stats.persists);
            catch_up(&h.compactions, stats.compactions);
            catch_up(&h.retention_files_deleted, stats.retention_files_deleted);
        }
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding into a Vec cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

/// Axum middleware counting and timing every request by its route template
/// (`/api/v1/models/{model}`), so label values stay bounded.
pub async fn track_http(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = request.method().as_str().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let m = metrics();
    m.http_request_duration
        .with_label_values(&[&route, &method])
        .observe(started.elapsed().as_secs_f64());
    m.http_requests
        .with_label_values(&[&route, &method, response.status().as_str()])
        .inc();
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_history_counters_as_running_totals() {
        let m = metrics();
        let mut stats = HistoryStats {
            wal_fsyncs: 7,
            buffer_bytes: 4096,
            ..Default::default()
        };
        let text = m.render(&stats);
        assert!(text.contains("modelwatch_wal_fsyncs_total 7"), "{text}");
        assert!(
            text.contains("modelwatch_history_buffer_bytes 4096"),
            "{text}"
        );
        stats.wal_fsyncs = 9;
        let text = m.render(&stats);
        assert!(text.contains("modelwatch_wal_fsyncs_total 9"), "{text}");
    }

    #[test]
    fn every_family_has_the_modelwatch_prefix() {
        let text = metrics().render(&HistoryStats::default());
        let names: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        assert!(!names.is_empty());
        assert!(
            names.iter().all(|n| n.starts_with("modelwatch_")),
            "{names:?}"
        );
    }
}
