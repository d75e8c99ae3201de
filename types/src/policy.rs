//! Monitoring policies: per model, what the evaluator watches and when it
//! recommends a retrain or a rollback. The registry stores them, the API and
//! the CLI read and write them, the evaluator follows them: one definition,
//! validated here ([`MonitoringPolicy::validate`]), method and correction
//! names as enums ([`DriftMethod`], [`Correction`]).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::drift::{Correction, DriftMethod};
use crate::vocabulary::{InvalidValue, check_alias_name};

type Result<T, E = InvalidValue> = std::result::Result<T, E>;

/// A length of time written as an integer and a unit: `500ms`, `30s`, `5m`,
/// `1h`, `7d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period(Duration);

impl Period {
    pub const fn from_secs(secs: u64) -> Self {
        Period(Duration::from_secs(secs))
    }
    pub fn duration(self) -> Duration {
        self.0
    }
    pub fn as_chrono(self) -> chrono::Duration {
        chrono::Duration::from_std(self.0).unwrap_or(chrono::Duration::MAX)
    }
}

impl FromStr for Period {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let split = s
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| format!("{s:?} has no unit; write e.g. 30s, 5m, 1h or 7d"))?;
        let (digits, unit) = s.split_at(split);
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("{s:?} does not start with a whole number; write e.g. 30s"))?;
        let ms = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => {
                return Err(format!(
                    "{s:?} has unknown unit {unit:?}; use ms, s, m, h or d"
                ));
            }
        };
        // Ranges are checked by `MonitoringPolicy::validate`, not here:
        // a policy stored before a bound existed must still load, to be
        // reported and fixed rather than make every listing fail.
        n.checked_mul(ms)
            .map(|ms| Period(Duration::from_millis(ms)))
            .ok_or_else(|| format!("{s:?} is too long"))
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        for (unit, size) in [
            ("d", 86_400_000),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1_000),
        ] {
            if ms > 0 && ms.is_multiple_of(size) {
                return write!(f, "{}{unit}", ms / size);
            }
        }
        write!(f, "{ms}ms")
    }
}

impl Serialize for Period {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Period {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// What the current window is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReferenceSource {
    /// The version's reference data (`reference` table, uploaded or loaded
    /// from `reference_uri`).
    #[default]
    ReferenceData,
    /// The version's own inferences in the `baseline_window` right after it
    /// became the alias target.
    BaselineWindow,
}

/// Per-feature overrides; an empty object means "automatic".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeaturePolicy {
    /// Test or distance (`ks`, `wasserstein`, `psi`, `jensen_shannon`,
    /// `chi_square`, …); automatic choice when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<DriftMethod>,
    /// Threshold overriding the method's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
}

/// Where request latency comes from for the rollback judge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "source", rename_all = "snake_case", deny_unknown_fields)]
pub enum LatencySource {
    /// `spans.duration_ms` of the version's spans.
    Spans,
    /// A gauge in `samples` whose values are latencies (any unit).
    Metric { metric: String },
    /// An explicit-bucket histogram in `histograms` (e.g. OpenTelemetry's
    /// `http.server.request.duration`), delta or cumulative.
    Histogram { metric: String },
}

/// Where the error rate comes from for the rollback judge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "source", rename_all = "snake_case", deny_unknown_fields)]
pub enum ErrorSource {
    /// Spans with `status_code = 'error'` over all the version's spans.
    Spans,
    /// Two counters in `samples`; their increase over the window gives
    /// errors / requests.
    Metric {
        errors_metric: String,
        requests_metric: String,
    },
}

/// The rollback judge: the alias's current version against the version it
/// replaced, on operational metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencySource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<ErrorSource>,
    /// Only spans with this name (all of the version's spans when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_name: Option<String>,
    /// How much traffic each side is judged on: the replaced version's last
    /// `window` before the move, the current version's first `window` after.
    #[serde(default = "default_rollback_window")]
    #[schema(value_type = String, example = "10m")]
    pub window: Period,
    /// Observations each side needs before a verdict.
    #[serde(default = "default_min_requests")]
    pub min_requests: u64,
    /// Relative latency change tolerated (Kayenta's 0.25).
    #[serde(default = "default_tolerance")]
    pub tolerance: f64,
    /// Move the alias back without a person (default: only recommend).
    #[serde(default)]
    pub automatic: bool,
}

fn default_rollback_window() -> Period {
    Period::from_secs(600)
}
fn default_min_requests() -> u64 {
    50
}
fn default_tolerance() -> f64 {
    0.25
}

/// An anomaly detector watching one metric of the watched version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnomalyPolicy {
    /// With `source: samples`, a `samples` metric of the version, its
    /// points in the current window averaged per timestamp into one
    /// series. With `source: spans`, one of [`SPAN_SERIES`], per `bucket`.
    pub metric: String,
    #[serde(default)]
    pub source: SeriesSource,
    /// Spans only: only spans of this name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_name: Option<String>,
    /// Spans only: the series' step (1 s – 1 h).
    #[serde(default = "default_anomaly_bucket")]
    #[schema(value_type = String, example = "10s")]
    pub bucket: Period,
    pub detector: crate::DetectorConfig,
    /// Breaching points in a row that make an alarm.
    #[serde(default = "default_anomaly_persistence")]
    pub persistence: usize,
}

/// Where an anomaly detector's series comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SeriesSource {
    /// A metric of the `samples` table.
    #[default]
    Samples,
    /// The version's spans, per bucket: see [`SPAN_SERIES`].
    Spans,
}

/// The series a detector can watch on spans: mean duration (ms), spans per
/// second, and the share with status `error`, per bucket.
pub const SPAN_SERIES: [&str; 3] = ["latency_ms", "throughput", "error_rate"];

fn default_anomaly_persistence() -> usize {
    3
}
fn default_anomaly_bucket() -> Period {
    Period::from_secs(10)
}

/// Most metrics one policy may watch for anomalies.
pub const MAX_POLICY_ANOMALIES: usize = 20;

/// What a model predicts, for its realized performance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PerformanceTask {
    /// Labels and predictions are classes (`label` / `prediction` text).
    Classification,
    /// Labels and predictions are numbers (`label_value` / `prediction_value`).
    Regression,
}

impl PerformanceTask {
    pub fn as_str(self) -> &'static str {
        match self {
            PerformanceTask::Classification => "classification",
            PerformanceTask::Regression => "regression",
        }
    }
}

/// Realized performance: measured on the current window's inferences that
/// carry a label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PerformancePolicy {
    pub task: PerformanceTask,
    /// Binary classification with scores: the label of the positive class.
    /// With it, a row's `prediction_value` is that class's probability
    /// (ROC AUC, log loss, calibration error), and a row is predicted
    /// positive when it is at least `threshold`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub positive_class: Option<String>,
    /// Probability at or above which a row is predicted positive.
    #[serde(default = "default_decision_threshold")]
    pub threshold: f64,
    /// Labelled rows the window needs before performance is measured.
    #[serde(default = "default_min_labels")]
    pub min_labels: u64,
    /// Lowest acceptable value of whole-window figures where higher is
    /// better ([`HIGHER_IS_BETTER`]); below one, the version is `degraded`
    /// and a `retrain` recommendation is raised.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub minimums: BTreeMap<String, f64>,
    /// Highest acceptable value of figures where lower is better
    /// ([`LOWER_IS_BETTER`]); likewise.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub maximums: BTreeMap<String, f64>,
    /// Also estimate performance on the window's unlabelled rows,
    /// calibrated on the version's labelled reference data: accuracy,
    /// precision, recall, F1 and ROC AUC from scores (CBPE) for
    /// classification with a `positive_class` or `class_scores`; MAE, MSE,
    /// RMSE and MAPE from the features (DLE) for regression.
    #[serde(default)]
    pub estimate: bool,
    /// Multiclass classification with scores: each class → the numeric
    /// feature holding the model's score (probability) of that class; at
    /// least 3 classes. Estimation then uses multiclass CBPE.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub class_scores: BTreeMap<String, String>,
    /// Regression estimation (DLE): the features the loss models read
    /// besides the prediction; empty = every feature the reference has.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub estimate_features: Vec<String>,
}

/// Most classes `performance.class_scores` may name.
pub const MAX_SCORED_CLASSES: usize = 100;

/// Whole-window performance figures where higher is better (the names in
/// `performance_results.metric`).
pub const HIGHER_IS_BETTER: [&str; 7] = [
    "accuracy",
    "macro_precision",
    "macro_recall",
    "macro_f1",
    "weighted_f1",
    "roc_auc",
    "r2",
];
/// Whole-window performance figures where lower is better.
pub const LOWER_IS_BETTER: [&str; 5] = ["log_loss", "calibration_error", "mae", "rmse", "mape"];

fn default_decision_threshold() -> f64 {
    0.5
}
fn default_min_labels() -> u64 {
    100
}

impl PerformancePolicy {
    fn validate(&self) -> Result<()> {
        if self.min_labels == 0 {
            return Err(InvalidValue::new(
                "performance.min_labels",
                "must be at least 1",
            ));
        }
        if !(self.threshold > 0.0 && self.threshold <= 1.0) {
            return Err(InvalidValue::new(
                "performance.threshold",
                "must be a probability in (0, 1]",
            ));
        }
        for (field, thresholds, allowed, other) in [
            (
                "minimums",
                &self.minimums,
                &HIGHER_IS_BETTER[..],
                "maximums",
            ),
            ("maximums", &self.maximums, &LOWER_IS_BETTER[..], "minimums"),
        ] {
            for (metric, value) in thresholds {
                let field = format!("performance.{field}.{metric}");
                if !allowed.contains(&metric.as_str()) {
                    let hint = if HIGHER_IS_BETTER.contains(&metric.as_str())
                        || LOWER_IS_BETTER.contains(&metric.as_str())
                    {
                        format!("it belongs under performance.{other}")
                    } else {
                        format!("name one of {}", allowed.join(", "))
                    };
                    return Err(InvalidValue::new(field, hint));
                }
                if !value.is_finite() {
                    return Err(InvalidValue::new(field, "must be a finite number"));
                }
            }
        }
        if !self.class_scores.is_empty() {
            if self.task != PerformanceTask::Classification {
                return Err(InvalidValue::new(
                    "performance.class_scores",
                    "applies to classification only; remove it or set task to classification",
                ));
            }
            if self.positive_class.is_some() {
                return Err(InvalidValue::new(
                    "performance.class_scores",
                    "name either positive_class (binary: prediction_value is its probability) or class_scores (multiclass), not both",
                ));
            }
            if self.class_scores.len() < 3 || self.class_scores.len() > MAX_SCORED_CLASSES {
                return Err(InvalidValue::new(
                    "performance.class_scores",
                    format!(
                        "name 3 to {MAX_SCORED_CLASSES} classes (for 2, set positive_class instead)"
                    ),
                ));
            }
            if self
                .class_scores
                .iter()
                .any(|(class, feature)| class.is_empty() || feature.is_empty())
            {
                return Err(InvalidValue::new(
                    "performance.class_scores",
                    "class and feature names must not be empty",
                ));
            }
        }
        if self.estimate_features.len() > MAX_POLICY_FEATURES
            || self.estimate_features.iter().any(String::is_empty)
        {
            return Err(InvalidValue::new(
                "performance.estimate_features",
                format!("name at most {MAX_POLICY_FEATURES} features, none empty"),
            ));
        }
        if self.estimate
            && self.task == PerformanceTask::Classification
            && self.positive_class.is_none()
            && self.class_scores.is_empty()
        {
            return Err(InvalidValue::new(
                "performance.estimate",
                "classification estimation reads scores: set positive_class to the class prediction_value is the probability of, or class_scores for multiclass",
            ));
        }
        match (&self.positive_class, self.task) {
            (Some(c), _) if c.is_empty() => Err(InvalidValue::new(
                "performance.positive_class",
                "must not be empty",
            )),
            (Some(_), PerformanceTask::Regression) => Err(InvalidValue::new(
                "performance.positive_class",
                "applies to classification only; remove it or set task to classification",
            )),
            _ => Ok(()),
        }
    }
}

/// Data-quality limits every tested feature of the current window must
/// keep (shares in [0, 1]); absent limits are not checked. A feature beyond
/// one makes the version `degraded`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DataQualityPolicy {
    /// Rows without a usable value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_missing_share: Option<f64>,
    /// Values of the other kind (text for a numeric feature, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_type_mismatch_share: Option<f64>,
    /// Numeric values outside the reference's range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_out_of_range_share: Option<f64>,
    /// Categories the reference never had.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unseen_share: Option<f64>,
}

impl DataQualityPolicy {
    /// Each limit by its measure's name (`missing_share`, …).
    pub fn limits(&self) -> [(&'static str, Option<f64>); 4] {
        [
            ("missing_share", self.max_missing_share),
            ("type_mismatch_share", self.max_type_mismatch_share),
            ("out_of_range_share", self.max_out_of_range_share),
            ("unseen_share", self.max_unseen_share),
        ]
    }

    fn validate(&self) -> Result<()> {
        for (measure, limit) in self.limits() {
            if let Some(v) = limit
                && !(0.0..=1.0).contains(&v)
            {
                return Err(InvalidValue::new(
                    format!("data_quality.max_{measure}"),
                    "must be a share in [0, 1]",
                ));
            }
        }
        Ok(())
    }
}

/// Multivariate drift: the features are standardised and projected on the
/// reference's principal components, and the mean reconstruction error of
/// the current window is compared with the reference's (NannyML's data
/// reconstruction drift). It catches a change in how features move
/// together that no per-feature test sees.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MultivariatePolicy {
    /// Share of the reference's variance the kept components explain.
    #[serde(default = "default_variance_kept")]
    pub variance_kept: f64,
    /// Features read together; empty = every tested feature (the
    /// prediction column excluded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
}

fn default_variance_kept() -> f64 {
    0.65
}

impl Default for MultivariatePolicy {
    fn default() -> Self {
        MultivariatePolicy {
            variance_kept: default_variance_kept(),
            features: Vec::new(),
        }
    }
}

impl MultivariatePolicy {
    fn validate(&self) -> Result<()> {
        if !(self.variance_kept > 0.0 && self.variance_kept < 1.0) {
            return Err(InvalidValue::new(
                "multivariate.variance_kept",
                "must be a share in (0, 1); NannyML's default is 0.65",
            ));
        }
        if self.features.len() > MAX_POLICY_FEATURES {
            return Err(InvalidValue::new(
                "multivariate.features",
                format!("at most {MAX_POLICY_FEATURES} features"),
            ));
        }
        if self.features.iter().any(String::is_empty) {
            return Err(InvalidValue::new(
                "multivariate.features",
                "feature names must not be empty",
            ));
        }
        Ok(())
    }
}

/// Group fairness of the model's decisions across the groups of sensitive
/// attributes (e.g. `gender`, `country`): selection rates per group and
/// the gaps between groups, with true- and false-positive rates where
/// labels exist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FairnessPolicy {
    /// Categorical features whose values are the groups; 1 to
    /// [`MAX_FAIRNESS_ATTRIBUTES`].
    pub attributes: Vec<String>,
    /// The favourable decision: a row is selected when its `prediction` is
    /// this class (or, with `threshold`, when its `prediction_value` is at
    /// least the threshold); a label equal to it is a positive label.
    pub positive_class: String,
    /// Read `prediction_value` as a score and select at or above this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Rows a group needs to be compared; smaller groups are reported and
    /// left out of the gaps.
    #[serde(default = "default_min_group_rows")]
    pub min_group_rows: u64,
    /// Lowest acceptable disparate-impact ratio of any attribute (0.8 is
    /// the four-fifths rule); below it the version is `degraded`. Absent:
    /// fairness is measured, not judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_disparate_impact_ratio: Option<f64>,
}

fn default_min_group_rows() -> u64 {
    30
}

/// Most sensitive attributes one policy may name.
pub const MAX_FAIRNESS_ATTRIBUTES: usize = 10;

impl FairnessPolicy {
    fn validate(&self) -> Result<()> {
        if self.attributes.is_empty() || self.attributes.len() > MAX_FAIRNESS_ATTRIBUTES {
            return Err(InvalidValue::new(
                "fairness.attributes",
                format!("name 1 to {MAX_FAIRNESS_ATTRIBUTES} categorical features"),
            ));
        }
        if self.attributes.iter().any(String::is_empty) {
            return Err(InvalidValue::new(
                "fairness.attributes",
                "attribute names must not be empty",
            ));
        }
        if self.positive_class.is_empty() {
            return Err(InvalidValue::new(
                "fairness.positive_class",
                "must not be empty",
            ));
        }
        if let Some(t) = self.threshold
            && !t.is_finite()
        {
            return Err(InvalidValue::new(
                "fairness.threshold",
                "must be a finite number",
            ));
        }
        if self.min_group_rows == 0 {
            return Err(InvalidValue::new(
                "fairness.min_group_rows",
                "must be at least 1",
            ));
        }
        if let Some(r) = self.min_disparate_impact_ratio
            && !(r > 0.0 && r <= 1.0)
        {
            return Err(InvalidValue::new(
                "fairness.min_disparate_impact_ratio",
                "must be in (0, 1]; the four-fifths rule is 0.8",
            ));
        }
        Ok(())
    }
}

/// A model's monitoring policy. Every field has a default, so `{}` is a
/// valid policy: watch `production` hourly windows against the reference
/// data every minute, retrain after 3 drifted evaluations, no rollback
/// judging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MonitoringPolicy {
    /// The alias whose target version is watched.
    #[serde(default = "default_alias")]
    pub alias: String,
    /// How often the version is evaluated.
    #[serde(default = "default_interval")]
    #[schema(value_type = String, example = "1m")]
    pub interval: Period,
    /// Length of the current window, ending at the evaluation time.
    #[serde(default = "default_window")]
    #[schema(value_type = String, example = "1h")]
    pub current_window: Period,
    #[serde(default)]
    pub reference: ReferenceSource,
    /// Length of the baseline window when `reference` is `baseline_window`.
    #[serde(default = "default_window")]
    #[schema(value_type = String, example = "1h")]
    pub baseline_window: Period,
    /// Rows the current window (and the reference) needs before it is judged.
    #[serde(default = "default_min_rows")]
    pub min_rows: u64,
    /// Features to test, with optional overrides; empty = every feature
    /// declared on the version (or seen in its reference), automatic choice.
    #[serde(default)]
    pub features: BTreeMap<String, FeaturePolicy>,
    /// The version has drifted when this share of its features drifted.
    #[serde(default = "default_drift_share")]
    pub drift_share: f64,
    /// Multiple-testing correction: `none`, `bonferroni` or
    /// `benjamini_hochberg`.
    #[serde(default)]
    pub correction: Correction,
    /// Consecutive drifted evaluations before a `retrain` recommendation.
    #[serde(default = "default_persistence")]
    pub persistence: u32,
    /// Rollback judging; absent = off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackPolicy>,
    /// Let an Alertmanager notification with `modelwatch_action="rollback"`
    /// (`POST /api/v1/alerts/alertmanager`) roll the alias back while it
    /// still points at the alert's version. Off by default: refused
    /// notifications are recorded with why.
    #[serde(default)]
    pub rollback_on_alert: bool,
    /// Test the prediction column for drift like a feature named
    /// `prediction` (numeric from `prediction_value`, else categorical from
    /// `prediction`). Listing `prediction` in `features` does the same with
    /// overrides.
    #[serde(default)]
    pub prediction_drift: bool,
    /// Metrics watched by anomaly detectors; empty = none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub anomalies: Vec<AnomalyPolicy>,
    /// Realized performance from labels; absent = not measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub performance: Option<PerformancePolicy>,
    /// Group fairness per sensitive attribute; absent = not assessed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fairness: Option<FairnessPolicy>,
    /// Data-quality limits; absent = quality is measured, never judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_quality: Option<DataQualityPolicy>,
    /// Multivariate drift (PCA reconstruction error) over the tested
    /// features together; absent = not measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multivariate: Option<MultivariatePolicy>,
}

fn default_alias() -> String {
    "production".into()
}
fn default_interval() -> Period {
    Period::from_secs(60)
}
fn default_window() -> Period {
    Period::from_secs(3600)
}
fn default_min_rows() -> u64 {
    100
}
fn default_drift_share() -> f64 {
    0.5
}
fn default_persistence() -> u32 {
    3
}

impl MonitoringPolicy {
    /// Whether the policy lets something other than a person move the
    /// alias (the evaluator's automatic rollback, or an alert): enabling
    /// that needs the same role as a rollback by hand.
    pub fn moves_alias_unattended(&self) -> bool {
        self.rollback_on_alert || self.rollback.as_ref().is_some_and(|r| r.automatic)
    }
}

impl Default for MonitoringPolicy {
    fn default() -> Self {
        serde_json::from_value(serde_json::json!({})).expect("every field has a default")
    }
}

/// Most features one policy may list (bounds `/metrics` label cardinality
/// and evaluation cost).
pub const MAX_POLICY_FEATURES: usize = 200;

/// Longest evaluation interval.
pub const MAX_INTERVAL: Period = Period::from_secs(30 * 86_400);
/// Longest current or baseline window.
pub const MAX_WINDOW: Period = Period::from_secs(366 * 86_400);
/// Longest rollback judging window.
pub const MAX_ROLLBACK_WINDOW: Period = Period::from_secs(30 * 86_400);

/// A period between 1 s and `max`.
fn check_period(field: &str, p: Period, max: Period) -> Result<()> {
    if p.duration() < Duration::from_secs(1) {
        return Err(InvalidValue::new(field, "must be at least 1s"));
    }
    if p > max {
        return Err(InvalidValue::new(field, format!("must be at most {max}")));
    }
    Ok(())
}

impl MonitoringPolicy {
    /// Checks ranges and names; the message says which field and what is
    /// allowed.
    pub fn validate(&self) -> Result<()> {
        check_alias_name(&self.alias)?;
        check_period("interval", self.interval, MAX_INTERVAL)?;
        check_period("current_window", self.current_window, MAX_WINDOW)?;
        check_period("baseline_window", self.baseline_window, MAX_WINDOW)?;
        if self.min_rows == 0 {
            return Err(InvalidValue::new("min_rows", "must be at least 1"));
        }
        if !(self.drift_share > 0.0 && self.drift_share <= 1.0) {
            return Err(InvalidValue::new("drift_share", "must be in (0, 1]"));
        }
        if self.persistence == 0 || self.persistence > 1000 {
            return Err(InvalidValue::new(
                "persistence",
                "must be between 1 and 1000",
            ));
        }
        if self.features.len() > MAX_POLICY_FEATURES {
            return Err(InvalidValue::new(
                "features",
                format!("at most {MAX_POLICY_FEATURES} features per policy"),
            ));
        }
        for (name, f) in &self.features {
            if name.is_empty() {
                return Err(InvalidValue::new(
                    "features",
                    "feature names must not be empty",
                ));
            }
            if let Some(t) = f.threshold
                && !(t.is_finite() && t >= 0.0)
            {
                return Err(InvalidValue::new(
                    format!("features.{name}.threshold"),
                    "must be a finite number >= 0",
                ));
            }
        }
        if let Some(p) = &self.performance {
            p.validate()?;
        }
        if let Some(f) = &self.fairness {
            f.validate()?;
        }
        if let Some(q) = &self.data_quality {
            q.validate()?;
        }
        if let Some(m) = &self.multivariate {
            m.validate()?;
        }
        if self.anomalies.len() > MAX_POLICY_ANOMALIES {
            return Err(InvalidValue::new(
                "anomalies",
                format!("at most {MAX_POLICY_ANOMALIES} metrics per policy"),
            ));
        }
        for (i, a) in self.anomalies.iter().enumerate() {
            if a.metric.is_empty() {
                return Err(InvalidValue::new(
                    format!("anomalies[{i}].metric"),
                    "name a metric of the samples table",
                ));
            }
            if a.persistence == 0 || a.persistence > 1000 {
                return Err(InvalidValue::new(
                    format!("anomalies[{i}].persistence"),
                    "must be between 1 and 1000",
                ));
            }
            match a.source {
                SeriesSource::Spans => {
                    if !SPAN_SERIES.contains(&a.metric.as_str()) {
                        return Err(InvalidValue::new(
                            format!("anomalies[{i}].metric"),
                            format!("with source spans, name one of {}", SPAN_SERIES.join(", ")),
                        ));
                    }
                    check_period(
                        &format!("anomalies[{i}].bucket"),
                        a.bucket,
                        Period::from_secs(3600),
                    )?;
                }
                SeriesSource::Samples if a.span_name.is_some() => {
                    return Err(InvalidValue::new(
                        format!("anomalies[{i}].span_name"),
                        "applies to source spans only",
                    ));
                }
                SeriesSource::Samples => {}
            }
            a.detector.check().map_err(|(name, reason)| {
                InvalidValue::new(format!("anomalies[{i}].detector.{name}"), reason)
            })?;
        }
        if let Some(r) = &self.rollback {
            if r.latency.is_none() && r.errors.is_none() {
                return Err(InvalidValue::new(
                    "rollback",
                    "name at least one of latency or errors (e.g. {\"source\": \"spans\"})",
                ));
            }
            check_period("rollback.window", r.window, MAX_ROLLBACK_WINDOW)?;
            if r.min_requests < 2 {
                return Err(InvalidValue::new(
                    "rollback.min_requests",
                    "must be at least 2",
                ));
            }
            if !(r.tolerance.is_finite() && r.tolerance >= 0.0) {
                return Err(InvalidValue::new(
                    "rollback.tolerance",
                    "must be a finite number >= 0",
                ));
            }
            let names = [
                match &r.latency {
                    Some(
                        LatencySource::Metric { metric } | LatencySource::Histogram { metric },
                    ) => Some(("rollback.latency.metric", metric)),
                    _ => None,
                },
                match &r.errors {
                    Some(ErrorSource::Metric { errors_metric, .. }) => {
                        Some(("rollback.errors.errors_metric", errors_metric))
                    }
                    _ => None,
                },
                match &r.errors {
                    Some(ErrorSource::Metric {
                        requests_metric, ..
                    }) => Some(("rollback.errors.requests_metric", requests_metric)),
                    _ => None,
                },
            ];
            for (field, name) in names.into_iter().flatten() {
                if name.is_empty() {
                    return Err(InvalidValue::new(field, "must not be empty"));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_parse_and_print() {
        for (text, secs) in [("30s", 30), ("5m", 300), ("1h", 3600), ("7d", 604_800)] {
            let p: Period = text.parse().unwrap();
            assert_eq!(p.duration(), Duration::from_secs(secs));
            assert_eq!(p.to_string(), text);
        }
        assert_eq!("90s".parse::<Period>().unwrap().to_string(), "90s");
        assert_eq!("120s".parse::<Period>().unwrap().to_string(), "2m");
        assert_eq!("1500ms".parse::<Period>().unwrap().to_string(), "1500ms");
        for bad in ["", "30", "s", "3x", "-1s", "1.5h", "99999999999999999999d"] {
            assert!(bad.parse::<Period>().is_err(), "{bad:?} parsed");
        }
        // Parses (a stored policy must load), but no policy accepts it.
        let huge: Period = "99999999999d".parse().unwrap();
        assert!(huge > MAX_WINDOW);
    }

    #[test]
    fn empty_policy_has_defaults_and_validates() {
        let p = MonitoringPolicy::default();
        assert_eq!(p.alias, "production");
        assert_eq!(p.interval, Period::from_secs(60));
        assert_eq!(p.persistence, 3);
        assert!(p.rollback.is_none());
        p.validate().unwrap();
        let text = serde_json::to_value(&p).unwrap();
        assert_eq!(text["current_window"], "1h");
    }

    #[test]
    fn bad_policies_name_the_field() {
        let cases = [
            (serde_json::json!({"interval": "0s"}), "interval"),
            (serde_json::json!({"interval": "31d"}), "interval"),
            (
                serde_json::json!({"current_window": "367d"}),
                "current_window",
            ),
            (
                serde_json::json!({"baseline_window": "3000d"}),
                "baseline_window",
            ),
            (
                serde_json::json!({"rollback": {"errors": {"source": "spans"}, "window": "90d"}}),
                "rollback.window",
            ),
            (serde_json::json!({"drift_share": 0.0}), "drift_share"),
            (serde_json::json!({"persistence": 0}), "persistence"),
            (serde_json::json!({"rollback": {}}), "rollback"),
            (
                serde_json::json!({"rollback": {"errors": {"source": "spans"}, "min_requests": 1}}),
                "rollback.min_requests",
            ),
            (
                serde_json::json!({"features": {"x": {"threshold": -1.0}}}),
                "features.x.threshold",
            ),
            (
                serde_json::json!({"performance": {"task": "regression", "minimums": {"rmse": 1.0}}}),
                "performance.minimums.rmse",
            ),
            (
                serde_json::json!({"performance": {"task": "regression", "maximums": {"speed": 1.0}}}),
                "performance.maximums.speed",
            ),
            (
                serde_json::json!({"performance": {"task": "classification", "estimate": true}}),
                "performance.estimate",
            ),
            (
                serde_json::json!({"fairness": {"attributes": [], "positive_class": "yes"}}),
                "fairness.attributes",
            ),
            (
                serde_json::json!({"anomalies": [{"metric": "p99", "source": "spans",
                                                  "detector": {"method": "mad", "window": 10, "k": 3.5}}]}),
                "anomalies[0].metric",
            ),
            (
                serde_json::json!({"data_quality": {"max_missing_share": 1.5}}),
                "data_quality.max_missing_share",
            ),
            (
                serde_json::json!({"fairness": {"attributes": ["g"], "positive_class": "yes", "min_group_rows": 0}}),
                "fairness.min_group_rows",
            ),
            (
                serde_json::json!({"multivariate": {"variance_kept": 1.0}}),
                "multivariate.variance_kept",
            ),
            (
                serde_json::json!({"multivariate": {"features": ["a", ""]}}),
                "multivariate.features",
            ),
            (
                serde_json::json!({"performance": {"task": "classification",
                                                   "class_scores": {"a": "p_a", "b": "p_b"}}}),
                "performance.class_scores",
            ),
            (
                serde_json::json!({"performance": {"task": "classification", "positive_class": "a",
                                                   "class_scores": {"a": "p_a", "b": "p_b", "c": "p_c"}}}),
                "performance.class_scores",
            ),
            (
                serde_json::json!({"performance": {"task": "regression",
                                                   "class_scores": {"a": "p_a", "b": "p_b", "c": "p_c"}}}),
                "performance.class_scores",
            ),
            (
                serde_json::json!({"performance": {"task": "regression", "estimate_features": [""]}}),
                "performance.estimate_features",
            ),
        ];
        for (json, field) in cases {
            let p: MonitoringPolicy = serde_json::from_value(json.clone()).unwrap();
            match p.validate() {
                Err(InvalidValue { field: f, .. }) => assert_eq!(f, field, "{json}"),
                other => panic!("{json}: {other:?}"),
            }
        }
        assert!(
            serde_json::from_value::<MonitoringPolicy>(serde_json::json!({"nope": 1})).is_err()
        );
        for unknown in [
            serde_json::json!({"interval": "soon"}),
            serde_json::json!({"correction": "holm"}),
            serde_json::json!({"features": {"x": {"method": "eyeballing"}}}),
        ] {
            let e = serde_json::from_value::<MonitoringPolicy>(unknown.clone()).unwrap_err();
            assert!(!e.to_string().is_empty(), "{unknown}");
        }
        let p: MonitoringPolicy = serde_json::from_value(serde_json::json!({
            "correction": "benjamini_hochberg",
            "features": {"x": {"method": "jensen_shannon"}}
        }))
        .unwrap();
        assert_eq!(p.correction, Correction::BenjaminiHochberg);
        assert_eq!(p.features["x"].method, Some(DriftMethod::JensenShannon));
        // Estimation without labels: by scores for classification, by
        // features for regression.
        for estimating in [
            serde_json::json!({"task": "regression", "estimate": true}),
            serde_json::json!({"task": "classification", "estimate": true, "positive_class": "1"}),
            serde_json::json!({"task": "classification", "estimate": true,
                               "class_scores": {"a": "p_a", "b": "p_b", "c": "p_c"}}),
        ] {
            let p: MonitoringPolicy =
                serde_json::from_value(serde_json::json!({"performance": estimating.clone()}))
                    .unwrap();
            assert!(p.validate().is_ok(), "{estimating}");
        }
        let p: MonitoringPolicy =
            serde_json::from_value(serde_json::json!({"multivariate": {}})).unwrap();
        assert_eq!(p.multivariate, Some(MultivariatePolicy::default()));
        assert!(
            serde_json::from_value::<MonitoringPolicy>(
                serde_json::json!({"multivariate": {"components": 2}})
            )
            .is_err()
        );
    }

    proptest::proptest! {
        /// Whatever a client writes as an interval, parsing and validating
        /// never panic, and an interval a valid policy holds keeps any
        /// timestamp plus or minus it representable.
        #[test]
        fn any_interval_text_is_refused_or_safe(
            digits in "[0-9]{0,25}",
            unit in proptest::sample::select(vec!["", "ms", "s", "m", "h", "d", "w", "x"]),
        ) {
            let text = format!("{digits}{unit}");
            let Ok(policy) = serde_json::from_value::<MonitoringPolicy>(
                serde_json::json!({"interval": text, "current_window": text}),
            ) else {
                return Ok(());
            };
            if policy.validate().is_ok() {
                let now = chrono::Utc::now();
                for p in [policy.interval, policy.current_window] {
                    proptest::prop_assert!(now.checked_add_signed(p.as_chrono()).is_some());
                    proptest::prop_assert!(now.checked_sub_signed(p.as_chrono()).is_some());
                }
            }
        }

        /// Every policy that validates keeps its schedule and windows far
        /// from the end of time.
        #[test]
        fn valid_policies_have_bounded_periods(
            interval in 0u64..10_000_000_000u64,
            window in 0u64..10_000_000_000u64,
        ) {
            let p = MonitoringPolicy {
                interval: Period(Duration::from_millis(interval)),
                current_window: Period(Duration::from_millis(window)),
                ..MonitoringPolicy::default()
            };
            if p.validate().is_ok() {
                proptest::prop_assert!(p.interval <= MAX_INTERVAL);
                proptest::prop_assert!(p.current_window <= MAX_WINDOW);
            }
        }
    }
}
