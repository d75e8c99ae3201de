//! The narrow traits the scheduler works through, and the values that cross
//! them: what it reads from the telemetry history ([`TelemetryReader`]),
//! where it writes its per-feature results ([`ResultsSink`]) and whom it
//! tells what happened ([`EvaluationEvents`]). The registry is
//! `EvaluatorRegistry` (registry roles), the clock `modelwatch_types::Clock`.
//!
//! The server implements the first two with DataFusion over the history
//! store, the third with `/metrics` and outbound webhooks; the scheduler's
//! tests implement them in memory.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// The registry roles the evaluator works through: it reads policies,
/// aliases and versions, raises and moves recommendations, rolls an alias
/// back and tags versions. Nothing else of the registry (tokens, webhooks,
/// audit listings, gates, tracking) is reachable from here.
pub trait EvaluatorRegistry:
    modelwatch_registry::Policies
    + modelwatch_registry::Aliases
    + modelwatch_registry::Versions
    + modelwatch_registry::Recommendations
{
}

impl<T> EvaluatorRegistry for T where
    T: modelwatch_registry::Policies
        + modelwatch_registry::Aliases
        + modelwatch_registry::Versions
        + modelwatch_registry::Recommendations
        + ?Sized
{
}

use chrono::{DateTime, Utc};
use modelwatch_drift::{CategoryCounts, DriftReport, TestedValues};
use modelwatch_types::tables::{INFERENCES, REFERENCE};
use modelwatch_types::{ErrorSource, FeatureKind, LatencySource, RecommendationKind};
use serde_json::Value;

use crate::anomalies::AnomalyRow;
use crate::decision::{FeatureInputs, QualityRow};
use crate::fairness::FairnessReport;
use crate::performance::{OutcomeRows, PerformanceReport};
use crate::report::{RecommendationAction, VersionOutcome};
use crate::{EvalError, Result};

/// Numeric values tested exactly per feature and window: every finite
/// value up to this many (sorting 10⁶ values takes tens of milliseconds),
/// a deterministic threshold sample of at most this many beyond, with its
/// error bound in the evidence (`modelwatch_drift::sample`).
pub const EXACT_VALUES_LIMIT: usize = 1_000_000;

/// Numeric values one profile keeps across all its features (16 bytes
/// each while it is built, 8 once sorted): a policy with many features
/// lowers the per-feature limit rather than the memory ceiling.
pub const PROFILE_VALUES_BUDGET: usize = 16_000_000;

/// The per-feature limit never goes below this, however many features.
pub const MIN_VALUES_LIMIT: usize = 100_000;

/// The per-feature exact limit for a profile of `numeric_features`
/// numeric features: [`EXACT_VALUES_LIMIT`], lowered to share
/// [`PROFILE_VALUES_BUDGET`], never below [`MIN_VALUES_LIMIT`].
pub fn exact_values_limit(numeric_features: usize) -> usize {
    (PROFILE_VALUES_BUDGET / numeric_features.max(1)).clamp(MIN_VALUES_LIMIT, EXACT_VALUES_LIMIT)
}

/// One feature's distribution in a window.
#[derive(Debug, Clone)]
pub enum FeatureValues {
    /// Sorted, exact or sampled as they say.
    Numeric(TestedValues),
    Categorical(CategoryCounts),
}

/// The distributions of a window: rows and every requested feature.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    pub rows: u64,
    pub features: BTreeMap<String, FeatureValues>,
    /// Rows that carried a feature with the other kind (text for a numeric
    /// feature, a number for a categorical one); absent = none.
    pub type_mismatches: BTreeMap<String, u64>,
}

impl Profile {
    /// Numeric values held (what a cached profile costs, 8 bytes each).
    pub fn numeric_values(&self) -> usize {
        self.features
            .values()
            .map(|f| match f {
                FeatureValues::Numeric(t) => t.values.len(),
                FeatureValues::Categorical(_) => 0,
            })
            .sum()
    }
}

/// Which rows a profile is built from.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// `inferences` or `reference`.
    pub table: &'static str,
    pub model: String,
    pub version: String,
    /// Half-open time range; `None` = all rows (reference data).
    pub range: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

impl Window {
    pub fn current(model: &str, version: i64, from: DateTime<Utc>, to: DateTime<Utc>) -> Self {
        Window {
            table: INFERENCES,
            model: model.into(),
            version: version.to_string(),
            range: Some((from, to)),
        }
    }
    pub fn reference(model: &str, version: i64) -> Self {
        Window {
            table: REFERENCE,
            model: model.into(),
            version: version.to_string(),
            range: None,
        }
    }
}

/// One side of the rollback judge: a version's traffic in a time range.
#[derive(Debug, Clone, PartialEq)]
pub struct Traffic {
    pub model: String,
    pub version: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// Features to read: name → kind (`None`: read from whichever map holds it).
pub type FeatureSet = BTreeMap<String, Option<FeatureKind>>;

/// What [`TelemetryReader::outcomes`] reads besides the outcome columns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowColumns {
    /// Only rows with a label (their own or a delayed one).
    pub labelled_only: bool,
    /// Categorical features whose values become [`OutcomeRows::groups`].
    pub attributes: Vec<String>,
    /// Features read into [`OutcomeRows::features`] (numeric unless the
    /// kind says categorical).
    pub features: FeatureSet,
}

/// Values (rows × columns) one row read may hold in memory: beyond it, a
/// deterministic sample of the window's rows is read (see
/// [`RowColumns::row_limit`]).
pub const ROW_VALUES_BUDGET: usize = 16_000_000;

/// The row limit never goes below this, however many columns.
pub const MIN_ROW_LIMIT: u64 = 100_000;

/// The outcome columns every row read holds (label, label value,
/// prediction, prediction value, inference id).
const OUTCOME_COLUMNS: usize = 5;

impl RowColumns {
    /// The most rows a read of these columns keeps: the window's rows up
    /// to [`ROW_VALUES_BUDGET`] values; beyond it the reader keeps a
    /// threshold sample keyed by each row's content (its timestamp,
    /// inference id and numbers), so the same window always gives the
    /// same rows.
    pub fn row_limit(&self) -> u64 {
        let columns = OUTCOME_COLUMNS + self.attributes.len() + self.features.len();
        ((ROW_VALUES_BUDGET / columns) as u64).max(MIN_ROW_LIMIT)
    }

    /// The labelled rows' outcome columns only.
    pub fn labelled() -> Self {
        RowColumns {
            labelled_only: true,
            ..RowColumns::default()
        }
    }

    /// Every row with its groups of `attributes`.
    pub fn grouped(attributes: &[String]) -> Self {
        RowColumns {
            attributes: attributes.to_vec(),
            ..RowColumns::default()
        }
    }

    /// Every row (only labelled ones with `labelled_only`) with `features`.
    pub fn with_features(features: FeatureSet, labelled_only: bool) -> Self {
        RowColumns {
            labelled_only,
            features,
            ..RowColumns::default()
        }
    }
}

#[cfg(test)]
mod row_limit_tests {
    use super::*;

    #[test]
    fn wide_reads_keep_fewer_rows_down_to_a_floor() {
        assert_eq!(RowColumns::labelled().row_limit(), 3_200_000);
        let wide: FeatureSet = (0..195).map(|i| (format!("f{i}"), None)).collect();
        assert_eq!(
            RowColumns::with_features(wide, false).row_limit(),
            80_000u64.max(MIN_ROW_LIMIT)
        );
    }
}

/// What the evaluator reads from the telemetry history. Errors are
/// [`EvalError::Telemetry`] (see [`EvalError::telemetry`]).
#[async_trait::async_trait]
pub trait TelemetryReader: Send + Sync + 'static {
    /// The feature names (and kinds) found in a window, for versions with no
    /// declared features and a policy that names none.
    async fn discover_features(&self, window: &Window) -> Result<FeatureSet>;
    /// Rows of a window (cheap: no feature values are read).
    async fn count_rows(&self, window: &Window) -> Result<u64>;
    /// The profile of `window` for `features`: numeric features' values
    /// sorted, all of them up to [`exact_values_limit`] and a threshold
    /// sample beyond (`modelwatch_drift::WindowValues`, so the same window
    /// always gives the same values), categorical ones counted.
    async fn profile(&self, window: &Window, features: &FeatureSet) -> Result<Profile>;
    /// The rows of a window with their outcome columns (prediction,
    /// label, delayed labels joined) and the columns `wanted` names, row by
    /// row: groups of sensitive attributes for fairness, features for
    /// multivariate drift and loss estimation.
    async fn outcomes(&self, window: &Window, wanted: &RowColumns) -> Result<OutcomeRows>;
    /// The labelled rows of a window, for realized performance.
    async fn labelled(&self, window: &Window) -> Result<OutcomeRows> {
        self.outcomes(window, &RowColumns::labelled()).await
    }
    /// One metric of `samples` for the traffic's version and range, its
    /// points averaged per timestamp, in time order (stale markers left out).
    async fn metric_series(
        &self,
        traffic: &Traffic,
        metric: &str,
    ) -> Result<Vec<(DateTime<Utc>, f64)>>;
    /// One of `modelwatch_types::SPAN_SERIES` over the traffic's spans (of
    /// `span_name` when given), one point per `bucket` that has spans, in
    /// time order.
    async fn span_series(
        &self,
        traffic: &Traffic,
        metric: &str,
        span_name: Option<&str>,
        bucket: std::time::Duration,
    ) -> Result<Vec<(DateTime<Utc>, f64)>>;
    /// Latency observations of one side of the rollback judge.
    async fn latencies(
        &self,
        traffic: &Traffic,
        source: &LatencySource,
        span_name: Option<&str>,
    ) -> Result<Vec<f64>>;
    /// `(errors, requests)` of one side of the rollback judge.
    async fn error_counts(
        &self,
        traffic: &Traffic,
        source: &ErrorSource,
        span_name: Option<&str>,
    ) -> Result<(u64, u64)>;
    /// `dataset_drift` of the newest evaluations of `key`'s version in the
    /// results table, newest first, at most `limit`, leaving `key`'s own
    /// evaluation out (after a restart the in-memory consecutive-drift
    /// count is gone).
    async fn recent_dataset_drift(
        &self,
        key: &EvaluationKey<'_>,
        limit: usize,
    ) -> Result<Vec<bool>>;
}

/// What identifies one evaluation's rows in the results table.
#[derive(Debug, Clone)]
pub struct EvaluationKey<'a> {
    pub evaluation_id: &'a str,
    pub model: &'a str,
    pub version: i64,
    pub alias: &'a str,
    pub window: (DateTime<Utc>, DateTime<Utc>),
    pub reference_source: &'a str,
}

/// One evaluation's drift results: what [`ResultsSink::write`] stores
/// whole or not at all.
#[derive(Debug, Clone, Copy)]
pub struct DriftResults<'a> {
    pub report: &'a DriftReport,
    /// `inputs[i]` is what went into `report.features[i]`.
    pub inputs: &'a [FeatureInputs],
    /// The window's data quality per feature.
    pub quality: &'a [QualityRow],
    /// The multivariate measurement, when there is one.
    pub multivariate: Option<&'a modelwatch_drift::multivariate::ReconstructionDrift>,
}

impl DriftResults<'_> {
    /// Whether the evaluation counts as drifted (the dataset, or the
    /// features together).
    pub fn drifted(&self) -> bool {
        self.report.dataset_drift || self.multivariate.is_some_and(|m| m.drifted)
    }
}

/// Which evaluation anomaly rows belong to.
#[derive(Debug, Clone, Copy)]
pub struct AnomalyKey<'a> {
    pub evaluation_id: &'a str,
    pub model: &'a str,
    pub version: i64,
    pub alias: &'a str,
}

/// Where one evaluation's per-feature results are stored. Errors are
/// [`EvalError::Results`].
#[async_trait::async_trait]
pub trait ResultsSink: Send + Sync + 'static {
    /// Stores one evaluation's drift results, together.
    async fn write(&self, key: &EvaluationKey<'_>, results: &DriftResults<'_>) -> Result<()>;
    /// Stores one window's realized-performance figures.
    async fn write_performance(&self, report: &PerformanceReport) -> Result<()>;
    /// Stores the breaching points the anomaly detectors found.
    async fn write_anomalies(&self, key: &AnomalyKey<'_>, rows: &[AnomalyRow]) -> Result<()>;
    /// Stores one window's fairness figures (only called when at least
    /// one attribute has figures).
    async fn write_fairness(&self, report: &FairnessReport) -> Result<()>;
}

/// What the evaluator tells the rest of the daemon (`/metrics`, outbound
/// webhooks). Every method defaults to nothing; implementations must not
/// fail the evaluation (log and carry on).
#[async_trait::async_trait]
pub trait EvaluationEvents: Send + Sync + 'static {
    /// A full cycle listed these models' policies: anything about other
    /// models is stale.
    async fn watched_models(&self, _models: &HashSet<String>) {}
    /// A version's drift report was computed (and its rows stored).
    async fn drift_measured(&self, _model: &str, _version: i64, _report: &DriftReport) {}
    /// A version with `multivariate` in its policy was evaluated: its
    /// reconstruction drift, or `None` when it could not be measured.
    async fn multivariate_measured(
        &self,
        _model: &str,
        _version: i64,
        _drift: Option<&modelwatch_drift::multivariate::ReconstructionDrift>,
    ) {
    }
    /// A version's realized performance was measured (and its rows stored).
    /// A window's realized or estimated performance was stored; `breaches`
    /// of the policy's thresholds were found in it when it is the one the
    /// policy was judged on.
    async fn performance_measured(&self, _report: &PerformanceReport, _breaches: Option<usize>) {}
    /// A window's fairness was assessed and stored.
    async fn fairness_assessed(&self, _report: &FairnessReport) {}
    /// The window's data quality was judged against the policy's limits.
    async fn data_quality_judged(&self, _model: &str, _version: i64, _breaches: usize) {}
    /// A version's evaluation found dataset drift; `evidence` is the
    /// recommendation evidence of that evaluation.
    async fn drift_detected(&self, _model: &str, _version: i64, _evidence: &Value) {}
    /// A recommendation was raised, refreshed, applied or superseded.
    async fn recommendation_changed(&self, _model: &str, _action: &RecommendationAction) {}
    /// The alias was moved back automatically.
    async fn rollback_done(&self, _rollback: &RollbackDone) {}
    /// The open recommendation kinds of a watched version (sorted, once each).
    async fn open_recommendations(
        &self,
        _model: &str,
        _version: i64,
        _kinds: &[RecommendationKind],
    ) {
    }
    /// One watched alias's evaluation finished (whatever its status).
    async fn version_evaluated(
        &self,
        _outcome: &VersionOutcome,
        _at: DateTime<Utc>,
        _interval: Duration,
        _took: Duration,
    ) {
    }
    /// One model's evaluation failed (it is also reported as status
    /// `error`).
    async fn evaluation_failed(&self, _model: &str, _error: &EvalError) {}
    /// A cycle over every due policy finished.
    async fn cycle_finished(&self, _took: Duration) {}
}

/// An automatic rollback, as [`EvaluationEvents::rollback_done`] hears it.
#[derive(Debug, Clone, PartialEq)]
pub struct RollbackDone {
    pub model: String,
    pub alias: String,
    pub from_version: i64,
    pub to_version: i64,
    pub recommendation: i64,
}

/// Events that go nowhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoEvents;

impl EvaluationEvents for NoEvents {}

/// Several listeners, told in order.
#[derive(Default, Clone)]
pub struct Fanout(pub Vec<Arc<dyn EvaluationEvents>>);

#[async_trait::async_trait]
impl EvaluationEvents for Fanout {
    async fn watched_models(&self, models: &HashSet<String>) {
        for e in &self.0 {
            e.watched_models(models).await;
        }
    }
    async fn drift_measured(&self, model: &str, version: i64, report: &DriftReport) {
        for e in &self.0 {
            e.drift_measured(model, version, report).await;
        }
    }
    async fn multivariate_measured(
        &self,
        model: &str,
        version: i64,
        drift: Option<&modelwatch_drift::multivariate::ReconstructionDrift>,
    ) {
        for e in &self.0 {
            e.multivariate_measured(model, version, drift).await;
        }
    }
    async fn performance_measured(&self, report: &PerformanceReport, breaches: Option<usize>) {
        for e in &self.0 {
            e.performance_measured(report, breaches).await;
        }
    }
    async fn fairness_assessed(&self, report: &FairnessReport) {
        for e in &self.0 {
            e.fairness_assessed(report).await;
        }
    }
    async fn data_quality_judged(&self, model: &str, version: i64, breaches: usize) {
        for e in &self.0 {
            e.data_quality_judged(model, version, breaches).await;
        }
    }
    async fn drift_detected(&self, model: &str, version: i64, evidence: &Value) {
        for e in &self.0 {
            e.drift_detected(model, version, evidence).await;
        }
    }
    async fn recommendation_changed(&self, model: &str, action: &RecommendationAction) {
        for e in &self.0 {
            e.recommendation_changed(model, action).await;
        }
    }
    async fn rollback_done(&self, rollback: &RollbackDone) {
        for e in &self.0 {
            e.rollback_done(rollback).await;
        }
    }
    async fn open_recommendations(&self, model: &str, version: i64, kinds: &[RecommendationKind]) {
        for e in &self.0 {
            e.open_recommendations(model, version, kinds).await;
        }
    }
    async fn version_evaluated(
        &self,
        outcome: &VersionOutcome,
        at: DateTime<Utc>,
        interval: Duration,
        took: Duration,
    ) {
        for e in &self.0 {
            e.version_evaluated(outcome, at, interval, took).await;
        }
    }
    async fn evaluation_failed(&self, model: &str, error: &EvalError) {
        for e in &self.0 {
            e.evaluation_failed(model, error).await;
        }
    }
    async fn cycle_finished(&self, took: Duration) {
        for e in &self.0 {
            e.cycle_finished(took).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_features_share_the_budget_down_to_a_floor() {
        assert_eq!(exact_values_limit(0), EXACT_VALUES_LIMIT);
        assert_eq!(exact_values_limit(16), EXACT_VALUES_LIMIT);
        assert_eq!(exact_values_limit(32), PROFILE_VALUES_BUDGET / 32);
        assert_eq!(exact_values_limit(10_000), MIN_VALUES_LIMIT);
    }
}
