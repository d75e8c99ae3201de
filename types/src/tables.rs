//! The history tables' names (DESIGN's fixed SQL table names): the
//! collectors declare their schemas, the server writes and queries them,
//! the evaluator reads them.

/// Metric samples (Prometheus remote write, OTLP gauges and sums).
pub const SAMPLES: &str = "samples";
/// OTLP histograms.
pub const HISTOGRAMS: &str = "histograms";
/// Inferences: features, prediction, label.
pub const INFERENCES: &str = "inferences";
/// Ground truth that arrived after its inference (the labels upload route,
/// label-only OTLP log records), joined to `inferences` by `inference_id`.
pub const DELAYED_LABELS: &str = "delayed_labels";
/// Reference data, what a version's inferences are compared against.
pub const REFERENCE: &str = "reference";
/// OTLP log records that are not inferences.
pub const LOGS: &str = "logs";
/// OTLP spans.
pub const SPANS: &str = "spans";
/// The evaluator's per-feature statistics and decisions.
pub const DRIFT_RESULTS: &str = "drift_results";
/// The evaluator's per-feature data quality of each current window.
pub const DATA_QUALITY_RESULTS: &str = "data_quality_results";
/// The evaluator's anomaly detectors' breaching points on watched metrics.
pub const ANOMALY_RESULTS: &str = "anomaly_results";
/// The evaluator's realized-performance figures, one row per metric.
pub const PERFORMANCE_RESULTS: &str = "performance_results";
/// The evaluator's group-fairness figures, one row per figure.
pub const FAIRNESS_RESULTS: &str = "fairness_results";
/// The evaluator's multivariate drift (reconstruction error), one row per
/// evaluation.
pub const MULTIVARIATE_DRIFT_RESULTS: &str = "multivariate_drift_results";
