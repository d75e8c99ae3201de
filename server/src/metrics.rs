//! Every metric the daemon exposes on `/metrics`, declared in this one module
//! (dashboards and alert rules are checked against it). Names follow
//! `modelwatch_<name>_<unit>`; every label takes values from a bounded set
//! (route templates, protocols, table names, error classes), never from
//! request data. The evaluator's series are labelled by model, version and
//! feature, which are bounded by the monitoring policies: one version per
//! watched model (series of a version that lost the alias are removed) and
//! at most [`MAX_METRIC_FEATURES`] features per model.
//!
//! The metrics live in one process-wide registry: the prometheus crate's
//! collectors are cheap atomics, and a global keeps the ingest and query
//! paths free of plumbing. History store counters are read from
//! [`HistoryStats`] when `/metrics` is scraped, not mirrored on every write.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use modelwatch_history::HistoryStats;
use modelwatch_registry::RegistryStats;
use prometheus::proto::MetricType;
use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Most features per model exported as drift series (the first by name);
/// all of them are still in `drift_results`.
pub const MAX_METRIC_FEATURES: usize = 50;

/// Values of `modelwatch_alert_notifications_total`'s `outcome` label:
/// The registry's alert outcomes, plus [`DUPLICATE_ALERT`].
fn alert_outcomes() -> impl Iterator<Item = &'static str> {
    modelwatch_registry::AlertOutcome::ALL
        .iter()
        .map(|o| o.as_str())
        .chain([DUPLICATE_ALERT])
}

/// The `outcome` of an alert state received again (not acted on twice).
pub const DUPLICATE_ALERT: &str = "duplicate";

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
    /// `modelwatch_unmatched_labels_total`: uploaded labels whose
    /// `inference_id` named no inference of the version when stored.
    unmatched_labels: IntCounter,
    /// `modelwatch_ingest_rejected_requests_total{protocol, reason}`.
    pub ingest_rejected: IntCounterVec,
    /// `modelwatch_sql_query_duration_seconds`: planning and execution.
    pub sql_query_duration: Histogram,
    /// `modelwatch_webhook_deliveries_total{outcome}`: webhook delivery
    /// attempts by outcome (`delivered`, `retry`, `failed`).
    pub webhook_deliveries: IntCounterVec,
    /// `modelwatch_alert_notifications_total{outcome}`: Alertmanager alert
    /// states received, by what became of them.
    alert_notifications: IntCounterVec,
    /// `modelwatch_pg_connections_refused_total`: PostgreSQL connections
    /// turned away at `--pg-max-connections`.
    pub pg_connections_refused: IntCounter,
    /// `modelwatch_pg_startup_timeouts_total`: PostgreSQL connections
    /// closed because they did not log in within the startup timeout.
    pub pg_startup_timeouts: IntCounter,
    /// `modelwatch_sql_memory_reserved_bytes`: the SQL memory pool in use.
    pub sql_memory_reserved: IntGauge,
    /// `modelwatch_background_duty_up{duty}`: 1 while a background duty
    /// runs, 0 once it died (`/readyz` then fails).
    pub background_duty_up: IntGaugeVec,
    /// `modelwatch_cluster_members`: daemons sharing the registry, seen
    /// within the member timeout (set at scrape time).
    pub cluster_members: IntGauge,
    /// `modelwatch_duty_lease_held{duty}`: 1 while this daemon holds the
    /// duty's lease.
    pub duty_lease_held: IntGaugeVec,
    /// `modelwatch_duty_fencing_token{duty}`: the token of the duty's
    /// lease (grows at every takeover).
    pub duty_fencing_token: IntGaugeVec,
    /// `modelwatch_artifact_gc_runs_total{outcome}`: artifact
    /// garbage-collection sweeps, `completed` or `failed`.
    pub artifact_gc_runs: IntCounterVec,
    /// `modelwatch_artifact_gc_deleted_total{kind}`: objects deleted
    /// (`tree`, `manifest`, `blob`).
    pub artifact_gc_deleted: IntCounterVec,
    /// `modelwatch_artifact_gc_freed_bytes_total`: bytes of those objects.
    pub artifact_gc_freed_bytes: IntCounter,
    /// `modelwatch_artifact_gc_waiting{kind}`: unreferenced objects the
    /// last sweep left waiting out their grace period.
    pub artifact_gc_waiting: IntGaugeVec,
    /// `modelwatch_audit_anchored_seq`: the audit entry the last anchor
    /// this daemon wrote covers.
    pub audit_anchored_seq: IntGauge,
    /// `modelwatch_audit_anchors_written_total`.
    pub audit_anchors_written: IntCounter,
    /// `modelwatch_audit_anchor_failing`: 1 while anchoring is stopped
    /// (the chain contradicts the last anchor, or anchors cannot be read
    /// or written).
    pub audit_anchor_failing: IntGauge,
    /// `modelwatch_audit_anchor_deliveries_total{outcome}`: anchors POSTed
    /// to `--audit-anchor-webhook`.
    pub audit_anchor_deliveries: IntCounterVec,
    /// `modelwatch_auth_failures_total{via}`: presented credentials
    /// refused (`api`, `ui`).
    pub auth_failures: IntCounterVec,
    /// `modelwatch_tls_reloads_total{outcome}`: TLS files read again on
    /// SIGHUP or change (`ok`, `failed`: the previous ones still serve).
    pub tls_reloads: IntCounterVec,
    /// `modelwatch_tls_certificate_expiry_timestamp_seconds{cert}`: when
    /// the served certificate expires.
    pub tls_certificate_expiry: IntGaugeVec,
    history: Mutex<HistoryGauges>,
    registry_figures: Mutex<RegistryFigures>,
    /// Held for a whole scrape: the figures refreshed from the stats are the
    /// ones encoded, even when two scrapes overlap.
    scrape: Mutex<()>,
    evaluator: EvaluatorMetrics,
}

/// Registry writer figures, refreshed from [`RegistryStats`] at scrape time.
struct RegistryFigures {
    /// `modelwatch_registry_changes_total{outcome}`.
    changes: IntCounterVec,
    transactions: IntCounter,
    last_commit_seconds: prometheus::Gauge,
}

/// The evaluator's series (see [`record_drift`] and friends).
struct EvaluatorMetrics {
    /// `modelwatch_drift_statistic{model, version, feature, method}`.
    statistic: GaugeVec,
    /// `modelwatch_drift_p_value{model, version, feature, method}`.
    p_value: GaugeVec,
    /// `modelwatch_drift_drifted_share_ratio{model, version}`.
    drifted_share: GaugeVec,
    /// `modelwatch_performance{model, version, metric}`: the newest realized
    /// whole-window figures (per-class ones stay in SQL: classes are
    /// unbounded, the metric names are not).
    performance: GaugeVec,
    /// `modelwatch_performance_label_coverage_ratio{model, version}`.
    label_coverage: GaugeVec,
    /// `modelwatch_performance_estimated{model, version, metric}`: the newest
    /// estimates without labels (CBPE: accuracy, ROC AUC, precision, recall
    /// and F1 of the positive class or macro-averaged; DLE: MAE, MSE, RMSE,
    /// MAPE).
    estimated: GaugeVec,
    /// `modelwatch_data_quality_breaches{model, version}`: feature measures
    /// beyond the policy's data-quality limits in the latest evaluation.
    data_quality_breaches: IntGaugeVec,
    /// `modelwatch_performance_breaches{model, version}`: thresholds of the
    /// policy the latest realized performance breaches.
    performance_breaches: IntGaugeVec,
    /// `modelwatch_fairness{model, version, attribute, metric}`: the newest
    /// between-group figures per sensitive attribute (per-group ones stay
    /// in SQL: groups are unbounded).
    fairness: GaugeVec,
    /// `modelwatch_drift_dataset_drifted{model, version}`: 1 or 0.
    dataset_drifted: IntGaugeVec,
    /// `modelwatch_multivariate_drift{model, version, measure}`: the newest
    /// reconstruction error (`value`), the reference's (`reference_value`)
    /// and the band (`lower`, `upper`).
    multivariate: GaugeVec,
    /// `modelwatch_multivariate_drifted{model, version}`: 1 or 0.
    multivariate_drifted: IntGaugeVec,
    /// `modelwatch_recommendations_open{model, version, kind}`.
    recommendations_open: IntGaugeVec,
    /// `modelwatch_evaluation_last_timestamp_seconds{model, version}`.
    last_evaluation: GaugeVec,
    /// `modelwatch_evaluation_interval_seconds{model, version}`: the
    /// policy's interval, so staleness can be judged per version.
    evaluation_interval: GaugeVec,
    /// `modelwatch_evaluations_total{status}`.
    evaluations: IntCounterVec,
    /// `modelwatch_evaluation_duration_seconds`: one version's evaluation.
    evaluation_duration: Histogram,
    /// `modelwatch_evaluation_cycle_duration_seconds`: a whole cycle.
    cycle_duration: Histogram,
    /// Label sets currently exported, per model, so a version that lost the
    /// alias (or a feature that left the policy) stops being exported.
    exported: Mutex<HashMap<String, Exported>>,
}

#[derive(Default)]
struct Exported {
    version: String,
    features: BTreeSet<(String, String)>,
    kinds: BTreeSet<String>,
    performance: BTreeSet<&'static str>,
    estimated: BTreeSet<&'static str>,
    fairness: BTreeSet<(String, &'static str)>,
}

/// History store figures, refreshed from [`HistoryStats`] at scrape time.
struct HistoryGauges {
    buffer_bytes: IntGauge,
    buffer_rows: IntGauge,
    inflight_bytes: IntGauge,
    working_bytes: IntGauge,
    wal_bytes: IntGauge,
    wal_segments: IntGauge,
    wal_last_fsync_seconds: prometheus::Gauge,
    wal_fsync_seconds_total: prometheus::Counter,
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

/// Every metric family registered, with its type: the list dashboards and
/// alert rules are checked against. It includes the vec families without
/// children yet, which `Registry::gather` leaves out (the evaluator's series
/// appear only after the first evaluation).
static DECLARED: Mutex<BTreeMap<String, MetricType>> = Mutex::new(BTreeMap::new());

fn register<C: prometheus::core::Collector + Clone + 'static>(registry: &Registry, c: C) -> C {
    {
        let mut declared = DECLARED.lock().unwrap_or_else(|e| e.into_inner());
        for family in c.collect() {
            declared.insert(family.name().to_string(), family.get_field_type());
        }
    }
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
            inflight_bytes: gauge(
                &r,
                "modelwatch_history_inflight_bytes",
                "Bytes of telemetry writes waiting for their WAL fsync (rows and encoded records); with the buffer and the working bytes, bounded by --max-buffer-bytes.",
            ),
            working_bytes: gauge(
                &r,
                "modelwatch_history_working_bytes",
                "Bytes persist and compaction hold while sorting rows; counted against --max-buffer-bytes with the buffer.",
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
            wal_fsync_seconds_total: register(
                &r,
                prometheus::Counter::new(
                    "modelwatch_wal_fsync_seconds_total",
                    "Time spent in WAL writes and fdatasync; rate() of it over rate(modelwatch_wal_fsyncs_total) is the mean fsync latency.",
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
            unmatched_labels: counter(
                &r,
                "modelwatch_unmatched_labels_total",
                "Uploaded labels whose inference_id named no inference of the version when they were stored (kept, and joined if that inference arrives later).",
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
            alert_notifications: {
                let v = counter_vec(
                    &r,
                    "modelwatch_alert_notifications_total",
                    "Alertmanager alert states received on POST /api/v1/alerts/alertmanager, by outcome: rolled_back, recommended, refused, ignored, resolved, or duplicate (a repeat, not acted on again).",
                    &["outcome"],
                );
                for outcome in alert_outcomes() {
                    v.with_label_values(&[outcome]);
                }
                v
            },
            pg_connections_refused: counter(
                &r,
                "modelwatch_pg_connections_refused_total",
                "PostgreSQL connections refused because --pg-max-connections were open.",
            ),
            pg_startup_timeouts: counter(
                &r,
                "modelwatch_pg_startup_timeouts_total",
                "PostgreSQL connections closed because they did not log in within the startup timeout.",
            ),
            sql_memory_reserved: gauge(
                &r,
                "modelwatch_sql_memory_reserved_bytes",
                "Bytes of the SQL memory pool (--sql-memory-limit) reserved by running queries and their results.",
            ),
            background_duty_up: register(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "modelwatch_background_duty_up",
                        "1 while a background duty (evaluator, persister, maintenance, webhook dispatcher, webhook sender, artifact GC, WAL writer) runs; 0 once it died, which also fails /readyz.",
                    ),
                    &["duty"],
                )
                .expect("valid metric definition"),
            ),
            cluster_members: gauge(
                &r,
                "modelwatch_cluster_members",
                "Daemons sharing this registry whose heartbeat is recent (1 on the embedded SQLite registry).",
            ),
            duty_lease_held: register(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "modelwatch_duty_lease_held",
                        "1 while this daemon holds the lease of a background duty that runs on one daemon at a time (evaluator, webhook_dispatcher, webhook_sender, artifact_gc, audit_anchor).",
                    ),
                    &["duty"],
                )
                .expect("valid metric definition"),
            ),
            duty_fencing_token: register(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "modelwatch_duty_fencing_token",
                        "The fencing token of a background duty's lease, whoever holds it; it grows by one at every takeover.",
                    ),
                    &["duty"],
                )
                .expect("valid metric definition"),
            ),
            artifact_gc_runs: {
                let v = counter_vec(
                    &r,
                    "modelwatch_artifact_gc_runs_total",
                    "Artifact garbage-collection sweeps by outcome: completed, or failed (logged; the next sweep tries again).",
                    &["outcome"],
                );
                for outcome in crate::artifact_gc::OUTCOMES {
                    v.with_label_values(&[outcome]);
                }
                v
            },
            artifact_gc_deleted: {
                let v = counter_vec(
                    &r,
                    "modelwatch_artifact_gc_deleted_total",
                    "Artifact objects deleted by garbage collection, by kind: tree (a deleted version's unsealed uploads), manifest, blob (a file's content), upload (a resumable upload abandoned for 7 days).",
                    &["kind"],
                );
                let kinds = crate::artifact_gc::KINDS.into_iter();
                for kind in kinds.chain([crate::artifact_gc::UPLOAD_KIND]) {
                    v.with_label_values(&[kind]);
                }
                v
            },
            artifact_gc_freed_bytes: counter(
                &r,
                "modelwatch_artifact_gc_freed_bytes_total",
                "Bytes of the artifact objects garbage collection deleted.",
            ),
            artifact_gc_waiting: {
                let v = int_gauge_vec(
                    &r,
                    "modelwatch_artifact_gc_waiting",
                    "Unreferenced artifact objects the last garbage-collection sweep left waiting out their grace period, by kind (tree, manifest, blob).",
                    &["kind"],
                );
                for kind in crate::artifact_gc::KINDS {
                    v.with_label_values(&[kind]);
                }
                v
            },
            audit_anchored_seq: gauge(
                &r,
                "modelwatch_audit_anchored_seq",
                "The audit entry covered by the last signed anchor this daemon wrote (0: none yet, or anchoring is off).",
            ),
            audit_anchors_written: counter(
                &r,
                "modelwatch_audit_anchors_written_total",
                "Signed anchors of the audit chain head this daemon wrote to --audit-anchor-dir.",
            ),
            audit_anchor_failing: gauge(
                &r,
                "modelwatch_audit_anchor_failing",
                "1 while audit anchoring is stopped: the chain no longer holds the last anchored entry (truncated or rewritten), or the anchor directory cannot be read or written; the log says which.",
            ),
            audit_anchor_deliveries: {
                let v = counter_vec(
                    &r,
                    "modelwatch_audit_anchor_deliveries_total",
                    "Anchors POSTed to --audit-anchor-webhook, by outcome: delivered, or failed after every retry (the anchor stays in the directory).",
                    &["outcome"],
                );
                for outcome in crate::audit_anchor::DELIVERY_OUTCOMES {
                    v.with_label_values(&[outcome]);
                }
                v
            },
            auth_failures: {
                let v = counter_vec(
                    &r,
                    "modelwatch_auth_failures_total",
                    "Presented credentials refused (unknown, revoked or expired tokens; malformed ones at the UI sign-in), by where: api or ui. Each is audited as auth.failed, at most a few a minute.",
                    &["via"],
                );
                for via in crate::auth::FAILURE_SOURCES {
                    v.with_label_values(&[via]);
                }
                v
            },
            tls_reloads: {
                let v = counter_vec(
                    &r,
                    "modelwatch_tls_reloads_total",
                    "TLS certificate reloads (SIGHUP or a changed file), by outcome: ok, or failed (the previous certificate still serves; the log says why).",
                    &["outcome"],
                );
                for outcome in ["ok", "failed"] {
                    v.with_label_values(&[outcome]);
                }
                v
            },
            tls_certificate_expiry: register(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "modelwatch_tls_certificate_expiry_timestamp_seconds",
                        "When the certificate a TLS listener serves expires (Unix time), by certificate file.",
                    ),
                    &["cert"],
                )
                .expect("valid metric definition"),
            ),
            history: Mutex::new(history),
            registry_figures: Mutex::new(RegistryFigures {
                changes: counter_vec(
                    &r,
                    "modelwatch_registry_changes_total",
                    "Registry changes (each with its audit entry), by outcome: committed, rejected (validation, conflict; nothing written) or failed (commit error; the caller was told to retry).",
                    &["outcome"],
                ),
                transactions: counter(
                    &r,
                    "modelwatch_registry_transactions_total",
                    "Registry group-commit transactions (one fsync each).",
                ),
                last_commit_seconds: register(
                    &r,
                    prometheus::Gauge::new(
                        "modelwatch_registry_last_commit_seconds",
                        "Duration of the most recent registry COMMIT, including its fsync.",
                    )
                    .expect("valid metric definition"),
                ),
            }),
            scrape: Mutex::new(()),
            evaluator: EvaluatorMetrics::new(&r),
            registry: r,
        }
    }

    /// The text exposition format (version 0.0.4), with the history figures
    /// refreshed from `stats` first.
    pub fn render(&self, stats: &HistoryStats, registry: &RegistryStats) -> String {
        let _scrape = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
        {
            let r = self
                .registry_figures
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let catch_up = |c: &IntCounter, v: u64| c.inc_by(v.saturating_sub(c.get()));
            for (outcome, v) in [
                ("committed", registry.changes_committed),
                ("rejected", registry.changes_rejected),
                ("failed", registry.changes_failed),
            ] {
                catch_up(&r.changes.with_label_values(&[outcome]), v);
            }
            catch_up(&r.transactions, registry.transactions);
            r.last_commit_seconds
                .set(registry.last_commit_micros as f64 / 1e6);
        }
        {
            let h = self.history.lock().unwrap_or_else(|e| e.into_inner());
            let set = |g: &IntGauge, v: u64| g.set(i64::try_from(v).unwrap_or(i64::MAX));
            // Counters mirror monotonic totals kept by the store since open;
            // the lock makes the read-compare-add exact across scrapes.
            let catch_up = |c: &IntCounter, v: u64| c.inc_by(v.saturating_sub(c.get()));
            set(&h.buffer_bytes, stats.buffer_bytes);
            set(&h.buffer_rows, stats.buffer_rows);
            set(&h.inflight_bytes, stats.inflight_bytes);
            set(&h.working_bytes, stats.working_bytes);
            set(&h.wal_bytes, stats.wal_bytes);
            set(&h.wal_segments, stats.wal_segments);
            h.wal_last_fsync_seconds
                .set(stats.last_fsync_micros as f64 / 1e6);
            let total = stats.fsync_micros_total as f64 / 1e6;
            let seen = h.wal_fsync_seconds_total.get();
            if total > seen {
                h.wal_fsync_seconds_total.inc_by(total - seen);
            }
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

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    register(
        r,
        GaugeVec::new(Opts::new(name, help), labels).expect("valid metric definition"),
    )
}

fn int_gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register(
        r,
        IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric definition"),
    )
}

fn seconds_histogram(r: &Registry, name: &str, help: &str) -> Histogram {
    register(
        r,
        Histogram::with_opts(HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()))
            .expect("valid metric definition"),
    )
}

impl EvaluatorMetrics {
    fn new(r: &Registry) -> Self {
        let feature = &["model", "version", "feature", "method"];
        let version = &["model", "version"];
        Self {
            statistic: gauge_vec(
                r,
                "modelwatch_drift_statistic",
                "Latest drift statistic (distance or test statistic) per watched version, feature and method.",
                feature,
            ),
            p_value: gauge_vec(
                r,
                "modelwatch_drift_p_value",
                "Latest drift test p-value per watched version, feature and method (p-value tests only).",
                feature,
            ),
            drifted_share: gauge_vec(
                r,
                "modelwatch_drift_drifted_share_ratio",
                "Share of the watched version's features that drifted in the latest evaluation.",
                version,
            ),
            performance: gauge_vec(
                r,
                "modelwatch_performance",
                "Latest realized performance of the watched version from labelled inferences, per metric (accuracy, roc_auc, rmse, ...).",
                &["model", "version", "metric"],
            ),
            fairness: gauge_vec(
                r,
                "modelwatch_fairness",
                "Latest group fairness of the watched version's decisions per sensitive attribute: demographic_parity_difference, disparate_impact_ratio (four-fifths rule: >= 0.8), equal_opportunity_difference, equalized_odds_difference.",
                &["model", "version", "attribute", "metric"],
            ),
            estimated: gauge_vec(
                r,
                "modelwatch_performance_estimated",
                "Latest performance of the watched version estimated without labels: from its scores (CBPE) accuracy, roc_auc, and precision, recall and f1 of the positive class (macro_* for a multiclass model); from its features (DLE, regression) mae, mse, rmse, mape.",
                &["model", "version", "metric"],
            ),
            data_quality_breaches: int_gauge_vec(
                r,
                "modelwatch_data_quality_breaches",
                "Data-quality measures of the watched version's tested features (missing, mistyped, out-of-range, unseen shares) beyond the monitoring policy's data_quality limits in the latest evaluation; above 0 the version is degraded.",
                version,
            ),
            performance_breaches: int_gauge_vec(
                r,
                "modelwatch_performance_breaches",
                "Thresholds of the monitoring policy (performance minimums and maximums) the watched version's latest realized performance breaches; above 0 the version is degraded and a retrain is recommended.",
                version,
            ),
            label_coverage: gauge_vec(
                r,
                "modelwatch_performance_label_coverage_ratio",
                "Share of the current window's inferences the latest realized performance was measured on.",
                version,
            ),
            dataset_drifted: int_gauge_vec(
                r,
                "modelwatch_drift_dataset_drifted",
                "1 when the latest evaluation found the watched version drifted as a whole, else 0.",
                version,
            ),
            multivariate: gauge_vec(
                r,
                "modelwatch_multivariate_drift",
                "Latest multivariate drift of the watched version (PCA reconstruction error of its features together): the window's mean error (value), the reference's (reference_value) and the band (lower, upper).",
                &["model", "version", "measure"],
            ),
            multivariate_drifted: int_gauge_vec(
                r,
                "modelwatch_multivariate_drifted",
                "1 when the latest evaluation found the watched version's reconstruction error outside the reference's band, else 0.",
                version,
            ),
            recommendations_open: int_gauge_vec(
                r,
                "modelwatch_recommendations_open",
                "Open recommendations on the watched version, by kind.",
                &["model", "version", "kind"],
            ),
            last_evaluation: gauge_vec(
                r,
                "modelwatch_evaluation_last_timestamp_seconds",
                "Time (Unix seconds) of the watched version's latest evaluation.",
                version,
            ),
            evaluation_interval: gauge_vec(
                r,
                "modelwatch_evaluation_interval_seconds",
                "The watched version's evaluation interval from its model's monitoring policy.",
                version,
            ),
            evaluations: counter_vec(
                r,
                "modelwatch_evaluations_total",
                "Evaluations of watched versions, by outcome status.",
                &["status"],
            ),
            evaluation_duration: seconds_histogram(
                r,
                "modelwatch_evaluation_duration_seconds",
                "Duration of one watched version's evaluation (drift and rollback judge).",
            ),
            cycle_duration: seconds_histogram(
                r,
                "modelwatch_evaluation_cycle_duration_seconds",
                "Duration of one evaluator cycle over every due policy.",
            ),
            exported: Mutex::new(HashMap::new()),
        }
    }

    /// Removes the model's series that do not belong to `version`.
    fn switch_version(&self, exported: &mut Exported, model: &str, version: &str) {
        if exported.version == version {
            return;
        }
        let old = exported.version.clone();
        for (feature, method) in std::mem::take(&mut exported.features) {
            let labels = [model, old.as_str(), feature.as_str(), method.as_str()];
            let _ = self.statistic.remove_label_values(&labels);
            let _ = self.p_value.remove_label_values(&labels);
        }
        for kind in std::mem::take(&mut exported.kinds) {
            let _ = self.recommendations_open.remove_label_values(&[
                model,
                old.as_str(),
                kind.as_str(),
            ]);
        }
        for metric in std::mem::take(&mut exported.performance) {
            let _ = self
                .performance
                .remove_label_values(&[model, old.as_str(), metric]);
        }
        for metric in std::mem::take(&mut exported.estimated) {
            let _ = self
                .estimated
                .remove_label_values(&[model, old.as_str(), metric]);
        }
        for (attribute, metric) in std::mem::take(&mut exported.fairness) {
            let _ = self.fairness.remove_label_values(&[
                model,
                old.as_str(),
                attribute.as_str(),
                metric,
            ]);
        }
        for g in [
            &self.drifted_share,
            &self.label_coverage,
            &self.last_evaluation,
            &self.evaluation_interval,
        ] {
            let _ = g.remove_label_values(&[model, old.as_str()]);
        }
        for g in [
            &self.dataset_drifted,
            &self.performance_breaches,
            &self.data_quality_breaches,
            &self.multivariate_drifted,
        ] {
            let _ = g.remove_label_values(&[model, old.as_str()]);
        }
        for measure in MULTIVARIATE_MEASURES {
            let _ = self
                .multivariate
                .remove_label_values(&[model, old.as_str(), measure]);
        }
        exported.version = version.to_string();
    }
}

/// Counts a stored (not replayed) upload's rows under protocol `upload`,
/// and for a labels upload the labels that matched no inference.
pub fn record_upload(table: &str, rows: u64, unmatched_labels: Option<u64>) {
    let m = metrics();
    m.ingest_rows
        .with_label_values(&["upload", table])
        .inc_by(rows);
    if let Some(unmatched) = unmatched_labels {
        m.unmatched_labels.inc_by(unmatched);
    }
}

/// Exports one realized-performance report of a watched version.
pub fn record_performance(
    report: &modelwatch_evaluator::PerformanceReport,
    breaches: Option<usize>,
) {
    let m = &metrics().evaluator;
    let (model, version) = (report.model.as_str(), report.version.to_string());
    let mut exported = m.exported.lock().unwrap_or_else(|e| e.into_inner());
    let e = exported.entry(model.to_string()).or_default();
    m.switch_version(e, model, &version);
    if let Some(breaches) = breaches {
        m.performance_breaches
            .with_label_values(&[model, version.as_str()])
            .set(breaches as i64);
    }
    if report.estimated {
        // The estimates with a band: whole-window ones and the positive
        // class's, a fixed set of names (a multiclass model's per-class
        // figures, without a band, stay in SQL: classes are unbounded).
        let banded = || report.figures.iter().filter(|f| f.band.is_some());
        let now: BTreeSet<&'static str> = banded().map(|f| f.metric).collect();
        for metric in e.estimated.difference(&now) {
            let _ = m
                .estimated
                .remove_label_values(&[model, version.as_str(), metric]);
        }
        for f in banded() {
            m.estimated
                .with_label_values(&[model, version.as_str(), f.metric])
                .set(f.value);
        }
        e.estimated = now;
        return;
    }
    let now: BTreeSet<&'static str> = report
        .figures
        .iter()
        .filter(|f| f.class.is_none())
        .map(|f| f.metric)
        .collect();
    for metric in e.performance.difference(&now) {
        let _ = m
            .performance
            .remove_label_values(&[model, version.as_str(), metric]);
    }
    for f in report.figures.iter().filter(|f| f.class.is_none()) {
        m.performance
            .with_label_values(&[model, version.as_str(), f.metric])
            .set(f.value);
    }
    e.performance = now;
    m.label_coverage
        .with_label_values(&[model, version.as_str()])
        .set(report.label_coverage);
}

/// Exports one fairness report of a watched version: each attribute's
/// between-group figures that are defined.
pub fn record_fairness(report: &modelwatch_evaluator::FairnessReport) {
    let m = &metrics().evaluator;
    let (model, version) = (report.model.as_str(), report.version.to_string());
    let mut exported = m.exported.lock().unwrap_or_else(|e| e.into_inner());
    let e = exported.entry(model.to_string()).or_default();
    m.switch_version(e, model, &version);
    let figures: Vec<(String, &'static str, f64)> = report
        .attributes
        .iter()
        .filter_map(|a| Some((a.attribute.as_str(), a.fairness.as_ref()?)))
        .flat_map(|(attribute, f)| {
            f.between_groups()
                .into_iter()
                .filter_map(move |(metric, v)| Some((attribute.to_string(), metric, v?)))
        })
        .collect();
    let now: BTreeSet<(String, &'static str)> =
        figures.iter().map(|(a, m, _)| (a.clone(), *m)).collect();
    for (attribute, metric) in e.fairness.difference(&now) {
        let _ =
            m.fairness
                .remove_label_values(&[model, version.as_str(), attribute.as_str(), metric]);
    }
    for (attribute, metric, value) in &figures {
        m.fairness
            .with_label_values(&[model, version.as_str(), attribute.as_str(), metric])
            .set(*value);
    }
    e.fairness = now;
}

/// Exports one drift report of a watched version.
pub fn record_drift(model: &str, version: i64, report: &modelwatch_drift::DriftReport) {
    let m = &metrics().evaluator;
    let version = version.to_string();
    let mut exported = m.exported.lock().unwrap_or_else(|e| e.into_inner());
    let e = exported.entry(model.to_string()).or_default();
    m.switch_version(e, model, &version);
    let now: BTreeSet<(String, String)> = report
        .features
        .iter()
        .take(MAX_METRIC_FEATURES)
        .map(|f| (f.name.clone(), f.result.method.name().to_string()))
        .collect();
    for (feature, method) in e.features.difference(&now) {
        let labels = [model, version.as_str(), feature.as_str(), method.as_str()];
        let _ = m.statistic.remove_label_values(&labels);
        let _ = m.p_value.remove_label_values(&labels);
    }
    for f in report.features.iter().take(MAX_METRIC_FEATURES) {
        let labels = [
            model,
            version.as_str(),
            f.name.as_str(),
            f.result.method.name(),
        ];
        match f.result.statistic {
            Some(v) => m.statistic.with_label_values(&labels).set(v),
            None => {
                let _ = m.statistic.remove_label_values(&labels);
            }
        }
        match f.result.p_value {
            Some(p) => m.p_value.with_label_values(&labels).set(p),
            None => {
                let _ = m.p_value.remove_label_values(&labels);
            }
        }
    }
    e.features = now;
    let labels = [model, version.as_str()];
    m.drifted_share
        .with_label_values(&labels)
        .set(report.drifted_share);
    m.dataset_drifted
        .with_label_values(&labels)
        .set(i64::from(report.dataset_drift));
}

/// The `measure` label values of `modelwatch_multivariate_drift`.
const MULTIVARIATE_MEASURES: [&str; 4] = ["value", "reference_value", "lower", "upper"];

/// Exports a version's newest multivariate drift (removes it when it could
/// not be measured).
pub fn record_multivariate(
    model: &str,
    version: i64,
    drift: Option<&modelwatch_drift::multivariate::ReconstructionDrift>,
) {
    let m = &metrics().evaluator;
    let version = version.to_string();
    let mut exported = m.exported.lock().unwrap_or_else(|e| e.into_inner());
    let e = exported.entry(model.to_string()).or_default();
    m.switch_version(e, model, &version);
    let labels = [model, version.as_str()];
    match drift {
        Some(d) => {
            for (measure, value) in MULTIVARIATE_MEASURES.into_iter().zip([
                d.value,
                d.reference_value,
                d.lower,
                d.upper,
            ]) {
                m.multivariate
                    .with_label_values(&[model, version.as_str(), measure])
                    .set(value);
            }
            m.multivariate_drifted
                .with_label_values(&labels)
                .set(i64::from(d.drifted));
        }
        None => {
            for measure in MULTIVARIATE_MEASURES {
                let _ = m
                    .multivariate
                    .remove_label_values(&[model, version.as_str(), measure]);
            }
            let _ = m.multivariate_drifted.remove_label_values(&labels);
        }
    }
}

/// Exports the open recommendation kinds of a watched version (0 for the
/// kinds that closed).
pub fn record_open_recommendations(model: &str, version: i64, open_kinds: &[&str]) {
    let m = &metrics().evaluator;
    let version = version.to_string();
    let mut exported = m.exported.lock().unwrap_or_else(|e| e.into_inner());
    let e = exported.entry(model.to_string()).or_default();
    if e.version != version && !e.version.is_empty() {
        // A version that is not (or no longer) watched: only the watched
        // one is exported.
        return;
    }
    e.version = version.clone();
    for kind in ["retrain", "rollback", "promote"] {
        let open = open_kinds.contains(&kind);
        if open || e.kinds.contains(kind) {
            m.recommendations_open
                .with_label_values(&[model, version.as_str(), kind])
                .set(i64::from(open));
            e.kinds.insert(kind.to_string());
        }
    }
}

/// Counts one evaluation and stamps its time.
pub fn record_evaluation(
    outcome: &modelwatch_evaluator::VersionOutcome,
    at: chrono::DateTime<chrono::Utc>,
    interval: Duration,
    took: Duration,
) {
    let m = &metrics().evaluator;
    m.evaluations
        .with_label_values(&[outcome.status.as_str()])
        .inc();
    m.evaluation_duration.observe(took.as_secs_f64());
    if let Some(version) = outcome.version {
        let version = version.to_string();
        let mut exported = m.exported.lock().unwrap_or_else(|e| e.into_inner());
        let e = exported.entry(outcome.model.clone()).or_default();
        m.switch_version(e, &outcome.model, &version);
        m.last_evaluation
            .with_label_values(&[outcome.model.as_str(), version.as_str()])
            .set(at.timestamp_millis() as f64 / 1e3);
        m.evaluation_interval
            .with_label_values(&[outcome.model.as_str(), version.as_str()])
            .set(interval.as_secs_f64());
    }
}

/// Counts one Alertmanager alert state by outcome (one of
/// [`alert_outcomes`]).
pub fn record_alert_notification(outcome: &str) {
    debug_assert!(alert_outcomes().any(|o| o == outcome), "{outcome}");
    metrics()
        .alert_notifications
        .with_label_values(&[outcome])
        .inc();
}

/// Times one evaluator cycle.
pub fn record_cycle(took: Duration) {
    metrics()
        .evaluator
        .cycle_duration
        .observe(took.as_secs_f64());
}

/// Drops the series of models that no longer have a policy.
pub fn forget_unwatched(watched: &HashSet<String>) {
    let m = &metrics().evaluator;
    let mut exported = m.exported.lock().unwrap_or_else(|e| e.into_inner());
    let gone: Vec<String> = exported
        .keys()
        .filter(|k| !watched.contains(*k))
        .cloned()
        .collect();
    for model in gone {
        if let Some(mut e) = exported.remove(&model) {
            m.switch_version(&mut e, &model, "");
        }
    }
}

/// The evaluator's events as `/metrics` series (the functions above).
#[derive(Debug, Default, Clone, Copy)]
pub struct EvaluatorMetricsEvents;

#[async_trait::async_trait]
impl modelwatch_evaluator::EvaluationEvents for EvaluatorMetricsEvents {
    async fn watched_models(&self, models: &HashSet<String>) {
        forget_unwatched(models);
    }
    async fn drift_measured(
        &self,
        model: &str,
        version: i64,
        report: &modelwatch_drift::DriftReport,
    ) {
        record_drift(model, version, report);
    }
    async fn performance_measured(
        &self,
        report: &modelwatch_evaluator::PerformanceReport,
        breaches: Option<usize>,
    ) {
        record_performance(report, breaches);
    }
    async fn fairness_assessed(&self, report: &modelwatch_evaluator::FairnessReport) {
        record_fairness(report);
    }
    async fn multivariate_measured(
        &self,
        model: &str,
        version: i64,
        drift: Option<&modelwatch_drift::multivariate::ReconstructionDrift>,
    ) {
        record_multivariate(model, version, drift);
    }
    async fn data_quality_judged(&self, model: &str, version: i64, breaches: usize) {
        let m = &metrics().evaluator;
        let version = version.to_string();
        let mut exported = m.exported.lock().unwrap_or_else(|e| e.into_inner());
        let e = exported.entry(model.to_string()).or_default();
        m.switch_version(e, model, &version);
        m.data_quality_breaches
            .with_label_values(&[model, version.as_str()])
            .set(breaches as i64);
    }
    async fn open_recommendations(
        &self,
        model: &str,
        version: i64,
        kinds: &[modelwatch_registry::RecommendationKind],
    ) {
        let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        record_open_recommendations(model, version, &kinds);
    }
    async fn version_evaluated(
        &self,
        outcome: &modelwatch_evaluator::VersionOutcome,
        at: chrono::DateTime<chrono::Utc>,
        interval: Duration,
        took: Duration,
    ) {
        record_evaluation(outcome, at, interval, took);
    }
    async fn cycle_finished(&self, took: Duration) {
        record_cycle(took);
    }
}

/// Every declared metric family name with its type, whether or not it has
/// series yet.
pub fn declared_metrics() -> BTreeMap<String, MetricType> {
    metrics();
    DECLARED.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The `modelwatch_*` metric names in a PromQL expression (or a Grafana
/// `label_values(…)` query) that are not declared in this module, sorted and
/// once each. A histogram family's `_bucket`, `_sum` and `_count` series are
/// declared with it; names inside string literals (label values) are not
/// metric names and are skipped.
pub fn unknown_metrics(expr: &str) -> Vec<String> {
    let declared = declared_metrics();
    let is_declared = |name: &str| {
        declared.contains_key(name)
            || ["_bucket", "_sum", "_count"].iter().any(|suffix| {
                name.strip_suffix(suffix)
                    .and_then(|family| declared.get(family))
                    .is_some_and(|t| *t == MetricType::HISTOGRAM)
            })
    };
    let unknown: BTreeSet<String> = promql_identifiers(expr)
        .into_iter()
        .filter(|name| name.starts_with("modelwatch_") && !is_declared(name))
        .map(str::to_string)
        .collect();
    unknown.into_iter().collect()
}

/// One line per undeclared metric in named expressions (`(where, expr)`:
/// a dashboard panel, an alert rule), empty when every name is declared.
/// Tests call it with every dashboard query and every alert rule.
pub fn undeclared_metrics<W: AsRef<str>, E: AsRef<str>>(expressions: &[(W, E)]) -> Vec<String> {
    expressions
        .iter()
        .flat_map(|(at, expr)| {
            unknown_metrics(expr.as_ref()).into_iter().map(move |name| {
                format!(
                    "{}: {name} is not declared in server/src/metrics.rs (a typo, or a metric to declare there)",
                    at.as_ref()
                )
            })
        })
        .collect()
}

/// The identifiers of a PromQL expression outside string literals.
fn promql_identifiers(expr: &str) -> Vec<&str> {
    let is_start = |c: char| c.is_ascii_alphabetic() || c == '_' || c == ':';
    let is_part = |c: char| is_start(c) || c.is_ascii_digit();
    let mut out = Vec::new();
    let mut chars = expr.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if matches!(c, '"' | '\'' | '`') {
            // Skip the literal, honouring backslash escapes (not in raw `…`).
            let mut escaped = false;
            for (_, d) in chars.by_ref() {
                if escaped {
                    escaped = false;
                } else if d == '\\' && c != '`' {
                    escaped = true;
                } else if d == c {
                    break;
                }
            }
        } else if is_start(c) {
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = chars.peek() {
                if !is_part(d) {
                    break;
                }
                end = j + d.len_utf8();
                chars.next();
            }
            out.push(&expr[i..end]);
        } else if c.is_ascii_digit() {
            // A number or a duration (`5m`, `1e3`): not an identifier.
            while chars.peek().is_some_and(|&(_, d)| is_part(d) || d == '.') {
                chars.next();
            }
        }
    }
    out
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
            fsync_micros_total: 1_500_000,
            buffer_bytes: 4096,
            ..Default::default()
        };
        let text = m.render(&stats, &RegistryStats::default());
        assert!(text.contains("modelwatch_wal_fsyncs_total 7"), "{text}");
        assert!(
            text.contains("modelwatch_history_buffer_bytes 4096"),
            "{text}"
        );
        assert!(
            text.contains("modelwatch_wal_fsync_seconds_total 1.5"),
            "{text}"
        );
        stats.wal_fsyncs = 9;
        stats.fsync_micros_total = 2_000_000;
        let text = m.render(&stats, &RegistryStats::default());
        assert!(text.contains("modelwatch_wal_fsyncs_total 9"), "{text}");
        assert!(
            text.contains("modelwatch_wal_fsync_seconds_total 2\n"),
            "{text}"
        );
    }

    #[test]
    fn the_declared_list_matches_what_is_gathered() {
        let declared = declared_metrics();
        let text = metrics().render(&HistoryStats::default(), &RegistryStats::default());
        let gathered: Vec<(&str, &str)> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_once(' '))
            .collect();
        assert!(!gathered.is_empty());
        for (name, kind) in &gathered {
            let t = declared
                .get(*name)
                .unwrap_or_else(|| panic!("{name} not declared"));
            assert_eq!(format!("{t:?}").to_lowercase(), *kind, "{name}");
        }
        // Vec families without children are gathered only once they have
        // series; they are declared from the start.
        for name in [
            "modelwatch_drift_p_value",
            "modelwatch_drift_statistic",
            "modelwatch_recommendations_open",
            "modelwatch_http_request_duration_seconds",
            "modelwatch_ingest_rejected_requests_total",
        ] {
            assert!(declared.contains_key(name), "{name}");
        }
        assert_eq!(
            declared.get("modelwatch_http_request_duration_seconds"),
            Some(&MetricType::HISTOGRAM)
        );
    }

    #[test]
    fn unknown_metrics_in_promql() {
        let cases: &[(&str, &[&str])] = &[
            (
                r#"sum by (route) (rate(modelwatch_http_requests_total{status=~"5.."}[5m]))"#,
                &[],
            ),
            (
                "histogram_quantile(0.99, sum by (le) (rate(modelwatch_http_request_duration_seconds_bucket[$__rate_interval])))",
                &[],
            ),
            (
                "rate(modelwatch_sql_query_duration_seconds_sum[5m]) / rate(modelwatch_sql_query_duration_seconds_count[5m])",
                &[],
            ),
            // _bucket of a counter is no series; typos are caught.
            (
                "rate(modelwatch_ingest_rows_total_bucket[1m]) + modelwatch_wal_byte",
                &["modelwatch_ingest_rows_total_bucket", "modelwatch_wal_byte"],
            ),
            // Label values and other prefixes are not metric names.
            (
                r#"up{job="modelwatch_missing", x='modelwatch_a'b'} or other_metric"#,
                &[],
            ),
            (
                "label_values(modelwatch_nope, instance) + modelwatch_nope:rate5m + 1e3",
                &["modelwatch_nope", "modelwatch_nope:rate5m"],
            ),
        ];
        for (expr, want) in cases {
            assert_eq!(unknown_metrics(expr), *want, "{expr}");
        }
        let problems = undeclared_metrics(&[
            ("rule A", "modelwatch_wal_bytes > 1"),
            ("rule B", "modelwatch_wall_bytes"),
        ]);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].starts_with("rule B: modelwatch_wall_bytes is not declared"));
    }

    #[test]
    fn every_dashboard_metric_is_declared() {
        let exprs: Vec<(String, String)> = modelwatch_dashboards::queries()
            .unwrap()
            .into_iter()
            .filter(|q| q.language == modelwatch_dashboards::Language::PromQl)
            .map(|q| (format!("{} {}", q.dashboard, q.location), q.text))
            .collect();
        assert!(exprs.len() > 20, "{exprs:?}");
        assert_eq!(undeclared_metrics(&exprs), Vec::<String>::new());
    }

    #[test]
    fn every_alert_rule_metric_is_declared() {
        let rules = modelwatch_alerts::rule_expressions().unwrap();
        assert!(rules.len() >= 8, "{rules:?}");
        assert_eq!(undeclared_metrics(&rules), Vec::<String>::new());
        // The check itself notices a rule naming an unknown family.
        let broken = [("Broken", "modelwatch_no_such_thing_total > 0")];
        assert_eq!(undeclared_metrics(&broken).len(), 1);
    }

    #[test]
    fn every_family_has_the_modelwatch_prefix() {
        let text = metrics().render(&HistoryStats::default(), &RegistryStats::default());
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
