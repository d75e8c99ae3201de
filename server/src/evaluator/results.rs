//! The `drift_results` history table: one row per feature per evaluation,
//! written through the WAL like any telemetry, so it is queryable in SQL at
//! once and aged out by retention.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use modelwatch_drift::multivariate::ReconstructionDrift;
use modelwatch_drift::{Decision, DriftReport};
use modelwatch_evaluator::{
    AnomalyKey, AnomalyRow, DriftResults, EvalError, EvaluationKey, FairnessReport, FeatureInputs,
    PerformanceReport, QualityRow, ResultsSink,
};
use modelwatch_history::{HistoryStore, WriteSet};

pub use modelwatch_types::tables::{
    ANOMALY_RESULTS, DATA_QUALITY_RESULTS, DRIFT_RESULTS, FAIRNESS_RESULTS,
    MULTIVARIATE_DRIFT_RESULTS, PERFORMANCE_RESULTS,
};

/// `n` copies of `text` (a column every row of one evaluation shares).
fn repeated(text: &str, n: usize) -> ArrayRef {
    Arc::new(StringArray::from(vec![text; n]))
}

/// `n` copies of a UTC timestamp in microseconds.
fn repeated_ts(micros: i64, n: usize) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(vec![micros; n]).with_timezone("UTC"))
}

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// A per-evaluation table's schema: `ts`, `evaluation_id`, `model`,
/// `version`, `alias`, then `fields`, then `window_start`, `window_end`.
fn evaluation_table(fields: Vec<Field>) -> SchemaRef {
    let mut all = vec![
        Field::new("ts", ts_type(), false),
        Field::new("evaluation_id", DataType::Utf8, false),
        Field::new("model", DataType::Utf8, false),
        Field::new("version", DataType::Utf8, false),
        Field::new("alias", DataType::Utf8, false),
    ];
    all.extend(fields);
    all.push(Field::new("window_start", ts_type(), false));
    all.push(Field::new("window_end", ts_type(), false));
    Arc::new(Schema::new(all))
}

/// The columns of `n` rows of one evaluation in [`evaluation_table`]
/// order: the shared leading ones, `columns`, the window.
fn evaluation_rows(
    schema: SchemaRef,
    key: (&str, &str, i64, &str),
    window: (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>),
    n: usize,
    columns: Vec<ArrayRef>,
) -> datafusion::arrow::error::Result<RecordBatch> {
    let (evaluation_id, model, version, alias) = key;
    let mut all = vec![
        repeated_ts(window.1.timestamp_micros(), n),
        repeated(evaluation_id, n),
        repeated(model, n),
        repeated(&version.to_string(), n),
        repeated(alias, n),
    ];
    all.extend(columns);
    all.push(repeated_ts(window.0.timestamp_micros(), n));
    all.push(repeated_ts(window.1.timestamp_micros(), n));
    RecordBatch::try_new(schema, all)
}

/// | column | type | meaning |
/// |---|---|---|
/// | ts | Timestamp(µs, UTC) | evaluation time (end of the current window) |
/// | evaluation_id | Utf8 | shared by the rows of one evaluation of one version |
/// | model, version | Utf8 | the evaluated version (version as text, like telemetry) |
/// | alias | Utf8 | the watched alias |
/// | feature | Utf8 | feature name |
/// | feature_kind | Utf8 | `numeric` or `categorical` |
/// | method | Utf8 | statistic (`ks`, `wasserstein`, `jensen_shannon`, …) |
/// | selection | Utf8 | `auto` or `override` |
/// | statistic | Float64 | null when `not_enough_data` |
/// | p_value, adjusted_p_value | Float64 | p-value tests only |
/// | threshold | Float64 | what the statistic or p-value was compared with |
/// | decision | Utf8 | `drift`, `no_drift`, `not_enough_data` |
/// | drifted | Boolean | `decision = 'drift'` |
/// | n_reference, n_current | Int64 | values tested: every value of the window, or a threshold sample beyond the exact limit (`sampling`) |
/// | window_start, window_end | Timestamp(µs, UTC) | the current window |
/// | reference_source | Utf8 | `reference_data` or `baseline_window` |
/// | drifted_share | Float64 | share of the version's features that drifted |
/// | dataset_drift | Boolean | the version as a whole drifted |
/// | sampling | Utf8 | `exact` (every value of both windows tested) or `threshold_sample`; null in rows written before it existed |
/// | seen_reference, seen_current | Int64 | values in the windows (equal to `n_*` when exact) |
/// | cdf_error_bound | Float64 | how far the tested values' CDFs may be from the windows' (both sides, 99 %): a KS statistic is within this of the full windows'; 0 when exact |
pub fn schema() -> SchemaRef {
    static S: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new("ts", ts_type(), false),
            Field::new("evaluation_id", DataType::Utf8, false),
            Field::new("model", DataType::Utf8, false),
            Field::new("version", DataType::Utf8, false),
            Field::new("alias", DataType::Utf8, false),
            Field::new("feature", DataType::Utf8, false),
            Field::new("feature_kind", DataType::Utf8, false),
            Field::new("method", DataType::Utf8, false),
            Field::new("selection", DataType::Utf8, false),
            Field::new("statistic", DataType::Float64, true),
            Field::new("p_value", DataType::Float64, true),
            Field::new("adjusted_p_value", DataType::Float64, true),
            Field::new("threshold", DataType::Float64, false),
            Field::new("decision", DataType::Utf8, false),
            Field::new("drifted", DataType::Boolean, false),
            Field::new("n_reference", DataType::Int64, false),
            Field::new("n_current", DataType::Int64, false),
            Field::new("window_start", ts_type(), false),
            Field::new("window_end", ts_type(), false),
            Field::new("reference_source", DataType::Utf8, false),
            Field::new("drifted_share", DataType::Float64, false),
            Field::new("dataset_drift", DataType::Boolean, false),
            // Added after the table had history: nullable, so rows stored
            // before read back with nulls (history's column evolution).
            Field::new("sampling", DataType::Utf8, true),
            Field::new("seen_reference", DataType::Int64, true),
            Field::new("seen_current", DataType::Int64, true),
            Field::new("cdf_error_bound", DataType::Float64, true),
        ]))
    });
    S.clone()
}

pub fn decision_name(d: Decision) -> &'static str {
    match d {
        Decision::Drift => "drift",
        Decision::NoDrift => "no_drift",
        Decision::NotEnoughData => "not_enough_data",
    }
}

/// The rows of one report; `inputs[i]` is what went into
/// `report.features[i]`.
pub fn batch(
    key: &EvaluationKey<'_>,
    report: &DriftReport,
    inputs: &[FeatureInputs],
) -> datafusion::arrow::error::Result<RecordBatch> {
    let n = report.features.len();
    let at = key.window.1.timestamp_micros();
    let repeat = |s: &str| repeated(s, n);
    let ts = |v: i64| repeated_ts(v, n);
    let f = &report.features;
    let columns: Vec<ArrayRef> = vec![
        ts(at),
        repeat(key.evaluation_id),
        repeat(key.model),
        repeat(&key.version.to_string()),
        repeat(key.alias),
        Arc::new(StringArray::from_iter_values(
            f.iter().map(|x| x.name.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            inputs.iter().map(|i| i.kind.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            f.iter().map(|x| x.result.method.name()),
        )),
        Arc::new(StringArray::from_iter_values(
            f.iter().map(|x| x.selection.as_str()),
        )),
        Arc::new(Float64Array::from_iter(
            f.iter().map(|x| x.result.statistic),
        )),
        Arc::new(Float64Array::from_iter(f.iter().map(|x| x.result.p_value))),
        Arc::new(Float64Array::from_iter(
            f.iter().map(|x| x.adjusted_p_value),
        )),
        Arc::new(Float64Array::from_iter_values(
            f.iter().map(|x| x.result.threshold),
        )),
        Arc::new(StringArray::from_iter_values(
            f.iter().map(|x| decision_name(x.result.decision)),
        )),
        Arc::new(BooleanArray::from_iter(
            f.iter().map(|x| Some(x.result.drifted())),
        )),
        Arc::new(Int64Array::from_iter_values(
            f.iter().map(|x| x.result.n_reference as i64),
        )),
        Arc::new(Int64Array::from_iter_values(
            f.iter().map(|x| x.result.n_current as i64),
        )),
        ts(key.window.0.timestamp_micros()),
        ts(key.window.1.timestamp_micros()),
        repeat(key.reference_source),
        Arc::new(Float64Array::from(vec![report.drifted_share; n])),
        Arc::new(BooleanArray::from(vec![report.dataset_drift; n])),
        Arc::new(StringArray::from_iter_values(
            inputs.iter().map(|i| i.sampling.name()),
        )),
        Arc::new(Int64Array::from_iter_values(
            inputs.iter().map(|i| i.seen_reference as i64),
        )),
        Arc::new(Int64Array::from_iter_values(
            inputs.iter().map(|i| i.seen_current as i64),
        )),
        Arc::new(Float64Array::from_iter_values(
            inputs.iter().map(|i| i.cdf_error_bound),
        )),
    ];
    RecordBatch::try_new(schema(), columns)
}

/// | column | type | meaning |
/// |---|---|---|
/// | ts, evaluation_id, model, version, alias | | as in `drift_results` |
/// | feature, feature_kind | Utf8 | the feature and `numeric` or `categorical` |
/// | rows | Int64 | rows in the current window |
/// | missing_share | Float64 | rows without a usable value (absent, null, not finite) |
/// | type_mismatch_share | Float64 | rows carrying the feature with the other kind |
/// | out_of_range_share | Float64 | numeric: values outside the reference's [min, max]; null for categorical |
/// | unseen_share | Float64 | categorical: values of categories the reference never had; null for numeric |
/// | unseen_categories | Utf8 | categorical: those categories, most frequent first (at most 10, comma-separated); null when none |
/// | window_start, window_end | Timestamp(µs, UTC) | the current window |
pub fn quality_schema() -> SchemaRef {
    static S: LazyLock<SchemaRef> = LazyLock::new(|| {
        evaluation_table(vec![
            Field::new("feature", DataType::Utf8, false),
            Field::new("feature_kind", DataType::Utf8, false),
            Field::new("rows", DataType::Int64, false),
            Field::new("missing_share", DataType::Float64, false),
            Field::new("type_mismatch_share", DataType::Float64, false),
            Field::new("out_of_range_share", DataType::Float64, true),
            Field::new("unseen_share", DataType::Float64, true),
            Field::new("unseen_categories", DataType::Utf8, true),
        ])
    });
    S.clone()
}

/// The data-quality rows of one evaluation.
pub fn quality_batch(
    key: &EvaluationKey<'_>,
    rows: &[QualityRow],
) -> datafusion::arrow::error::Result<RecordBatch> {
    let q = |f: fn(&QualityRow) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(rows.iter().map(f)))
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.feature.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.kind.as_str()),
        )),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.quality.rows as i64),
        )),
        q(|r| r.quality.missing_share),
        q(|r| r.quality.type_mismatch_share),
        Arc::new(Float64Array::from_iter(
            rows.iter().map(|r| r.quality.out_of_range_share),
        )),
        Arc::new(Float64Array::from_iter(
            rows.iter().map(|r| r.quality.unseen_share),
        )),
        Arc::new(StringArray::from_iter(rows.iter().map(|r| {
            (!r.quality.unseen_categories.is_empty()).then(|| r.quality.unseen_categories.join(","))
        }))),
    ];
    evaluation_rows(
        quality_schema(),
        (key.evaluation_id, key.model, key.version, key.alias),
        key.window,
        rows.len(),
        columns,
    )
}

/// | column | type | meaning |
/// |---|---|---|
/// | ts | Timestamp(µs, UTC) | evaluation time (end of the current window) |
/// | evaluation_id | Utf8 | as in `drift_results` |
/// | model, version, alias | Utf8 | the evaluated version and its watched alias |
/// | task | Utf8 | `classification` or `regression` |
/// | metric | Utf8 | `accuracy`, `macro_f1`, `precision`, `roc_auc`, `log_loss`, `calibration_error`, `mae`, `rmse`, `mape`, `r2`, … |
/// | class | Utf8 | the class of a per-class figure (`precision`, `recall`, `f1`, `support`); null otherwise |
/// | value | Float64 | the figure |
/// | estimated | Boolean | false: realized from labels; true: estimated from scores (CBPE) |
/// | rows | Int64 | rows in the window |
/// | labelled_rows | Int64 | rows measured (labelled, with the prediction the task needs; estimated: with a score) |
/// | label_coverage | Float64 | `labelled_rows / rows` |
/// | sampling_error, lower_bound, upper_bound | Float64 | an estimate's sampling error and confidence band (±3 sampling errors); null when realized |
/// | window_start, window_end | Timestamp(µs, UTC) | the current window |
pub fn performance_schema() -> SchemaRef {
    static S: LazyLock<SchemaRef> = LazyLock::new(|| {
        evaluation_table(vec![
            Field::new("task", DataType::Utf8, false),
            Field::new("metric", DataType::Utf8, false),
            Field::new("class", DataType::Utf8, true),
            Field::new("value", DataType::Float64, false),
            Field::new("estimated", DataType::Boolean, false),
            Field::new("rows", DataType::Int64, false),
            Field::new("labelled_rows", DataType::Int64, false),
            Field::new("label_coverage", DataType::Float64, false),
            Field::new("sampling_error", DataType::Float64, true),
            Field::new("lower_bound", DataType::Float64, true),
            Field::new("upper_bound", DataType::Float64, true),
        ])
    });
    S.clone()
}

/// The rows of one performance report, one per figure.
pub fn performance_batch(
    report: &PerformanceReport,
) -> datafusion::arrow::error::Result<RecordBatch> {
    let n = report.figures.len();
    let f = &report.figures;
    let columns: Vec<ArrayRef> = vec![
        repeated(report.task.as_str(), n),
        Arc::new(StringArray::from_iter_values(f.iter().map(|x| x.metric))),
        Arc::new(StringArray::from_iter(f.iter().map(|x| x.class.as_deref()))),
        Arc::new(Float64Array::from_iter_values(f.iter().map(|x| x.value))),
        Arc::new(BooleanArray::from(vec![report.estimated; n])),
        Arc::new(Int64Array::from(vec![report.rows as i64; n])),
        Arc::new(Int64Array::from(vec![report.labelled_rows as i64; n])),
        Arc::new(Float64Array::from(vec![report.label_coverage; n])),
        Arc::new(Float64Array::from_iter(
            f.iter().map(|x| x.band.map(|b| b.sampling_error)),
        )),
        Arc::new(Float64Array::from_iter(
            f.iter().map(|x| x.band.map(|b| b.lower)),
        )),
        Arc::new(Float64Array::from_iter(
            f.iter().map(|x| x.band.map(|b| b.upper)),
        )),
    ];
    evaluation_rows(
        performance_schema(),
        (
            &report.evaluation_id,
            &report.model,
            report.version,
            &report.alias,
        ),
        report.window,
        n,
        columns,
    )
}

/// | column | type | meaning |
/// |---|---|---|
/// | ts | Timestamp(µs, UTC) | evaluation time (end of the current window) |
/// | evaluation_id, model, version, alias | Utf8 | as in `drift_results` |
/// | attribute | Utf8 | the sensitive attribute (a categorical feature) |
/// | group_value | Utf8 | the group (the attribute's value) of a per-group figure; null for a between-group one |
/// | metric | Utf8 | per group: `selection_rate`, `true_positive_rate`, `false_positive_rate`; between groups: `demographic_parity_difference`, `disparate_impact_ratio`, `equal_opportunity_difference`, `equalized_odds_difference` (only figures that are defined) |
/// | value | Float64 | the figure |
/// | rows | Int64 | the group's rows; for a between-group figure, the compared groups' rows |
/// | labelled_rows | Int64 | of those, the rows with a label |
/// | positive_class | Utf8 | the favourable decision |
/// | window_start, window_end | Timestamp(µs, UTC) | the current window |
pub fn fairness_schema() -> SchemaRef {
    static S: LazyLock<SchemaRef> = LazyLock::new(|| {
        evaluation_table(vec![
            Field::new("attribute", DataType::Utf8, false),
            Field::new("group_value", DataType::Utf8, true),
            Field::new("metric", DataType::Utf8, false),
            Field::new("value", DataType::Float64, false),
            Field::new("rows", DataType::Int64, false),
            Field::new("labelled_rows", DataType::Int64, false),
            Field::new("positive_class", DataType::Utf8, false),
        ])
    });
    S.clone()
}

/// One figure of a fairness report.
struct FairnessFigure<'a> {
    attribute: &'a str,
    group: Option<&'a str>,
    metric: &'static str,
    value: f64,
    rows: u64,
    labelled_rows: u64,
}

/// The rows of one fairness report, one per defined figure.
pub fn fairness_batch(report: &FairnessReport) -> datafusion::arrow::error::Result<RecordBatch> {
    let mut figures = Vec::new();
    for a in &report.attributes {
        let Some(f) = &a.fairness else { continue };
        for g in &f.groups {
            for (metric, value) in [
                ("selection_rate", Some(g.selection_rate)),
                ("true_positive_rate", g.true_positive_rate),
                ("false_positive_rate", g.false_positive_rate),
            ] {
                figures.extend(value.map(|value| FairnessFigure {
                    attribute: &a.attribute,
                    group: Some(&g.group),
                    metric,
                    value,
                    rows: g.rows,
                    labelled_rows: g.labelled_rows,
                }));
            }
        }
        let rows = f.groups.iter().map(|g| g.rows).sum();
        let labelled_rows = f.groups.iter().map(|g| g.labelled_rows).sum();
        for (metric, value) in f.between_groups() {
            figures.extend(value.map(|value| FairnessFigure {
                attribute: &a.attribute,
                group: None,
                metric,
                value,
                rows,
                labelled_rows,
            }));
        }
    }
    let n = figures.len();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            figures.iter().map(|f| f.attribute),
        )),
        Arc::new(StringArray::from_iter(figures.iter().map(|f| f.group))),
        Arc::new(StringArray::from_iter_values(
            figures.iter().map(|f| f.metric),
        )),
        Arc::new(Float64Array::from_iter_values(
            figures.iter().map(|f| f.value),
        )),
        Arc::new(Int64Array::from_iter_values(
            figures.iter().map(|f| f.rows as i64),
        )),
        Arc::new(Int64Array::from_iter_values(
            figures.iter().map(|f| f.labelled_rows as i64),
        )),
        repeated(&report.positive_class, n),
    ];
    evaluation_rows(
        fairness_schema(),
        (
            &report.evaluation_id,
            &report.model,
            report.version,
            &report.alias,
        ),
        report.window,
        n,
        columns,
    )
}

/// | column | type | meaning |
/// |---|---|---|
/// | ts | Timestamp(µs, UTC) | the breaching point's time |
/// | evaluation_id, model, version, alias | Utf8 | as in `drift_results` |
/// | metric | Utf8 | the watched `samples` metric |
/// | detector | Utf8 | `rolling_z`, `mad`, `ewma`, `cusum` or `page_hinkley` |
/// | value | Float64 | the point (the metric's points at `ts` averaged) |
/// | score, lower, upper | Float64 | the detector's statistic and band, where it has them |
/// | consecutive | Int64 | breaches in a row ending here |
/// | alarm | Boolean | `consecutive` reached the policy's persistence |
pub fn anomaly_schema() -> SchemaRef {
    static S: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new("ts", ts_type(), false),
            Field::new("evaluation_id", DataType::Utf8, false),
            Field::new("model", DataType::Utf8, false),
            Field::new("version", DataType::Utf8, false),
            Field::new("alias", DataType::Utf8, false),
            Field::new("metric", DataType::Utf8, false),
            Field::new("detector", DataType::Utf8, false),
            Field::new("value", DataType::Float64, false),
            Field::new("score", DataType::Float64, true),
            Field::new("lower", DataType::Float64, true),
            Field::new("upper", DataType::Float64, true),
            Field::new("consecutive", DataType::Int64, false),
            Field::new("alarm", DataType::Boolean, false),
        ]))
    });
    S.clone()
}

/// The rows of one evaluation's breaching points.
pub fn anomaly_batch(
    key: &AnomalyKey<'_>,
    rows: &[AnomalyRow],
) -> datafusion::arrow::error::Result<RecordBatch> {
    let n = rows.len();
    let repeat = |s: &str| repeated(s, n);
    let optional = |f: fn(&AnomalyRow) -> Option<f64>| -> ArrayRef {
        Arc::new(Float64Array::from_iter(rows.iter().map(f)))
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(
                rows.iter().map(|r| r.ts.timestamp_micros()),
            )
            .with_timezone("UTC"),
        ),
        repeat(key.evaluation_id),
        repeat(key.model),
        repeat(&key.version.to_string()),
        repeat(key.alias),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.metric.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.detector),
        )),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.value))),
        optional(|r| r.score),
        optional(|r| r.lower),
        optional(|r| r.upper),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.consecutive as i64),
        )),
        Arc::new(BooleanArray::from_iter(rows.iter().map(|r| Some(r.alarm)))),
    ];
    RecordBatch::try_new(anomaly_schema(), columns)
}

/// | column | type | meaning |
/// |---|---|---|
/// | ts | Timestamp(µs, UTC) | evaluation time (end of the current window) |
/// | evaluation_id, model, version, alias | Utf8 | as in `drift_results` (the same evaluation) |
/// | method | Utf8 | `pca_reconstruction` |
/// | rows | Int64 | rows of the current window |
/// | value | Float64 | the window's mean reconstruction error |
/// | reference_value | Float64 | the reference's mean reconstruction error |
/// | sampling_error | Float64 | standard deviation of the reference's row errors over √rows |
/// | lower, upper | Float64 | the band: `reference_value` ∓ 3 sampling errors |
/// | components | Int64 | principal components kept |
/// | drifted | Boolean | `value` outside the band |
/// | window_start, window_end | Timestamp(µs, UTC) | the current window |
pub fn multivariate_schema() -> SchemaRef {
    static S: LazyLock<SchemaRef> = LazyLock::new(|| {
        evaluation_table(vec![
            Field::new("method", DataType::Utf8, false),
            Field::new("rows", DataType::Int64, false),
            Field::new("value", DataType::Float64, false),
            Field::new("reference_value", DataType::Float64, false),
            Field::new("sampling_error", DataType::Float64, false),
            Field::new("lower", DataType::Float64, false),
            Field::new("upper", DataType::Float64, false),
            Field::new("components", DataType::Int64, false),
            Field::new("drifted", DataType::Boolean, false),
        ])
    });
    S.clone()
}

/// The method name in `multivariate_drift_results.method`.
pub const PCA_RECONSTRUCTION: &str = "pca_reconstruction";

/// The one row of an evaluation's multivariate drift.
pub fn multivariate_batch(
    key: &EvaluationKey<'_>,
    d: &ReconstructionDrift,
) -> datafusion::arrow::error::Result<RecordBatch> {
    let number = |v: f64| -> ArrayRef { Arc::new(Float64Array::from(vec![v])) };
    let columns: Vec<ArrayRef> = vec![
        repeated(PCA_RECONSTRUCTION, 1),
        Arc::new(Int64Array::from(vec![d.rows as i64])),
        number(d.value),
        number(d.reference_value),
        number(d.sampling_error),
        number(d.lower),
        number(d.upper),
        Arc::new(Int64Array::from(vec![d.components as i64])),
        Arc::new(BooleanArray::from(vec![d.drifted])),
    ];
    evaluation_rows(
        multivariate_schema(),
        (key.evaluation_id, key.model, key.version, key.alias),
        key.window,
        1,
        columns,
    )
}

/// The evaluator's [`ResultsSink`]: rows go through the history's WAL like
/// any telemetry.
#[derive(Clone)]
pub struct HistoryResults {
    history: HistoryStore,
}

impl HistoryResults {
    pub fn new(history: HistoryStore) -> Self {
        Self { history }
    }

    /// Writes through the WAL (acknowledged once fsynced).
    async fn store(&self, rows: WriteSet) -> modelwatch_evaluator::Result<()> {
        self.history
            .write(rows)
            .await
            .map(drop)
            .map_err(EvalError::results)
    }
}

#[async_trait::async_trait]
impl ResultsSink for HistoryResults {
    async fn write(
        &self,
        key: &EvaluationKey<'_>,
        results: &DriftResults<'_>,
    ) -> modelwatch_evaluator::Result<()> {
        let rows = batch(key, results.report, results.inputs).map_err(EvalError::results)?;
        let quality = quality_batch(key, results.quality).map_err(EvalError::results)?;
        // One WAL record: an evaluation's results are stored whole or not at all.
        let mut set = WriteSet::new()
            .with(DRIFT_RESULTS, rows)
            .with(DATA_QUALITY_RESULTS, quality);
        if let Some(drift) = results.multivariate {
            set = set.with(
                MULTIVARIATE_DRIFT_RESULTS,
                multivariate_batch(key, drift).map_err(EvalError::results)?,
            );
        }
        self.store(set).await
    }

    async fn write_anomalies(
        &self,
        key: &AnomalyKey<'_>,
        rows: &[AnomalyRow],
    ) -> modelwatch_evaluator::Result<()> {
        let rows = anomaly_batch(key, rows).map_err(EvalError::results)?;
        self.store(WriteSet::new().with(ANOMALY_RESULTS, rows))
            .await
    }

    async fn write_performance(
        &self,
        report: &PerformanceReport,
    ) -> modelwatch_evaluator::Result<()> {
        let rows = performance_batch(report).map_err(EvalError::results)?;
        self.store(WriteSet::new().with(PERFORMANCE_RESULTS, rows))
            .await
    }

    async fn write_fairness(&self, report: &FairnessReport) -> modelwatch_evaluator::Result<()> {
        let rows = fairness_batch(report).map_err(EvalError::results)?;
        self.store(WriteSet::new().with(FAIRNESS_RESULTS, rows))
            .await
    }
}

/// The newest evaluation of one version, as the promotion gate's `drift`
/// input: the evaluation's columns once, and each feature's result keyed by
/// feature name (the columns of its row; names as in SQL). `None` when the
/// version was never evaluated (or its results aged out).
pub async fn latest_evaluation(
    ctx: &datafusion::prelude::SessionContext,
    model: &str,
    version: i64,
) -> Result<Option<serde_json::Value>, crate::sql::SqlError> {
    Ok(summarize_evaluation(
        newest_evaluation_rows(ctx, DRIFT_RESULTS, model, version, "feature").await?,
    ))
}

/// The newest realized performance of one version, as the promotion gate's
/// `performance` input: the evaluation's columns once, `metrics` (name →
/// value) and `classes` (class → name → value). `None` when never measured.
pub async fn latest_performance(
    ctx: &datafusion::prelude::SessionContext,
    model: &str,
    version: i64,
) -> Result<Option<serde_json::Value>, crate::sql::SqlError> {
    Ok(summarize_performance(
        newest_evaluation_rows(ctx, PERFORMANCE_RESULTS, model, version, "metric").await?,
    ))
}

/// The newest fairness of one version, as the promotion gate's `fairness`
/// input: the evaluation's columns once, and per attribute its
/// between-group figures (`metric → value`) and `groups` (group → metric →
/// value). `None` when never assessed.
pub async fn latest_fairness(
    ctx: &datafusion::prelude::SessionContext,
    model: &str,
    version: i64,
) -> Result<Option<serde_json::Value>, crate::sql::SqlError> {
    Ok(summarize_fairness(
        newest_evaluation_rows(ctx, FAIRNESS_RESULTS, model, version, "metric").await?,
    ))
}

/// Columns of a fairness evaluation that are not one figure's.
const FAIRNESS_FIGURE_COLUMNS: [&str; 6] = [
    "attribute",
    "group_value",
    "metric",
    "value",
    "rows",
    "labelled_rows",
];

/// Folds one fairness evaluation's rows into `{<evaluation columns>,
/// attributes: {attribute: {metric: value, rows, groups: {group: {metric:
/// value, rows}}}}}`.
pub fn summarize_fairness(rows: Vec<serde_json::Value>) -> Option<serde_json::Value> {
    use serde_json::{Map, Value};
    let first = rows.first()?.as_object()?.clone();
    let mut summary: Map<String, Value> = first
        .into_iter()
        .filter(|(k, _)| !FAIRNESS_FIGURE_COLUMNS.contains(&k.as_str()))
        .collect();
    let mut attributes: Map<String, Value> = Map::new();
    for row in rows {
        let (Some(attribute), Some(metric), Some(value)) = (
            row["attribute"].as_str(),
            row["metric"].as_str(),
            row.get("value"),
        ) else {
            continue;
        };
        let entry = attributes
            .entry(attribute.to_string())
            .or_insert_with(|| serde_json::json!({"groups": {}}));
        let target = match row["group_value"].as_str() {
            Some(group) => {
                let g = &mut entry["groups"][group];
                if g.is_null() {
                    *g = Value::Object(Map::new());
                }
                g
            }
            None => entry,
        };
        target[metric] = value.clone();
        target["rows"] = row["rows"].clone();
    }
    summary.insert("attributes".into(), attributes.into());
    Some(summary.into())
}

/// The rows of `table`'s newest evaluation of one version, ordered by
/// `order_by` (empty when there is none).
async fn newest_evaluation_rows(
    ctx: &datafusion::prelude::SessionContext,
    table: &str,
    model: &str,
    version: i64,
    order_by: &str,
) -> Result<Vec<serde_json::Value>, crate::sql::SqlError> {
    use datafusion::prelude::{col, lit};
    let rows = ctx.table(table).await?.filter(
        col("model")
            .eq(lit(model))
            .and(col("version").eq(lit(version.to_string()))),
    )?;
    let newest = rows
        .clone()
        .sort(vec![
            col("ts").sort(false, false),
            col("evaluation_id").sort(false, false),
        ])?
        .limit(0, Some(1))?
        .select_columns(&["evaluation_id"])?
        .collect()
        .await?;
    let json = |batches: &[RecordBatch]| {
        crate::sql::json_rows(batches).map_err(|e| crate::sql::SqlError::Internal(e.to_string()))
    };
    let Some(id) = json(&newest)?
        .first()
        .and_then(|r| r["evaluation_id"].as_str().map(str::to_string))
    else {
        return Ok(Vec::new());
    };
    let batches = rows
        .filter(col("evaluation_id").eq(lit(id)))?
        .sort(vec![col(order_by).sort(true, false)])?
        .collect()
        .await?;
    json(&batches)
}

/// Columns of a performance evaluation that are not one figure's.
const PERFORMANCE_FIGURE_COLUMNS: [&str; 3] = ["metric", "class", "value"];

/// Folds one performance evaluation's rows (one per figure) into
/// `{<evaluation columns>, metrics: {name: value}, classes: {class: {name:
/// value}}}`.
pub fn summarize_performance(rows: Vec<serde_json::Value>) -> Option<serde_json::Value> {
    use serde_json::{Map, Value};
    let first = rows.first()?.as_object()?.clone();
    let mut summary: Map<String, Value> = first
        .into_iter()
        .filter(|(k, _)| !PERFORMANCE_FIGURE_COLUMNS.contains(&k.as_str()))
        .collect();
    let mut metrics = Map::new();
    let mut classes: Map<String, Value> = Map::new();
    for row in rows {
        let (Some(metric), Some(value)) = (row["metric"].as_str(), row.get("value")) else {
            continue;
        };
        match row["class"].as_str() {
            Some(class) => {
                let entry = classes
                    .entry(class.to_string())
                    .or_insert_with(|| Value::Object(Map::new()));
                entry[metric] = value.clone();
            }
            None => {
                metrics.insert(metric.to_string(), value.clone());
            }
        }
    }
    summary.insert("metrics".into(), metrics.into());
    summary.insert("classes".into(), classes.into());
    Some(summary.into())
}

/// Columns shared by every row of one evaluation.
const EVALUATION_COLUMNS: [&str; 10] = [
    "evaluation_id",
    "ts",
    "model",
    "version",
    "alias",
    "window_start",
    "window_end",
    "reference_source",
    "drifted_share",
    "dataset_drift",
];

/// Splits one evaluation's rows (JSON objects, one per feature) into the
/// evaluation's shared columns and each feature's other columns by name.
fn by_feature(
    rows: Vec<serde_json::Value>,
) -> Option<(
    serde_json::Map<String, serde_json::Value>,
    serde_json::Map<String, serde_json::Value>,
)> {
    let first = rows.first()?.as_object()?.clone();
    let summary: serde_json::Map<String, serde_json::Value> = first
        .into_iter()
        .filter(|(k, _)| EVALUATION_COLUMNS.contains(&k.as_str()))
        .collect();
    let mut features = serde_json::Map::new();
    for row in rows {
        let serde_json::Value::Object(row) = row else {
            continue;
        };
        let mut feature: serde_json::Map<String, serde_json::Value> = row
            .into_iter()
            .filter(|(k, _)| !EVALUATION_COLUMNS.contains(&k.as_str()))
            .collect();
        let Some(serde_json::Value::String(name)) = feature.remove("feature") else {
            continue;
        };
        features.insert(name, serde_json::Value::Object(feature));
    }
    Some((summary, features))
}

/// Folds one evaluation's rows into `{<evaluation columns>,
/// drifted_features: [...], features: {name: {...}}}`.
fn summarize_evaluation(rows: Vec<serde_json::Value>) -> Option<serde_json::Value> {
    let (mut summary, features) = by_feature(rows)?;
    let drifted: Vec<serde_json::Value> = features
        .iter()
        .filter(|(_, f)| f.get("drifted") == Some(&serde_json::Value::Bool(true)))
        .map(|(name, _)| serde_json::Value::String(name.clone()))
        .collect();
    summary.insert("drifted_features".into(), drifted.into());
    summary.insert("features".into(), features.into());
    Some(summary.into())
}

/// The newest data quality of one version, as the promotion gate's
/// `data_quality` input: the evaluation's columns once and each feature's
/// measures by name. `None` when never evaluated.
pub async fn latest_data_quality(
    ctx: &datafusion::prelude::SessionContext,
    model: &str,
    version: i64,
) -> Result<Option<serde_json::Value>, crate::sql::SqlError> {
    let rows = newest_evaluation_rows(ctx, DATA_QUALITY_RESULTS, model, version, "feature").await?;
    Ok(by_feature(rows).map(|(mut summary, features)| {
        summary.insert("features".into(), features.into());
        summary.into()
    }))
}

/// The newest multivariate drift of one version, as the promotion gate's
/// `multivariate` input: the row's columns (`value`, `lower`, `upper`,
/// `drifted`, …). `None` when never measured.
pub async fn latest_multivariate(
    ctx: &datafusion::prelude::SessionContext,
    model: &str,
    version: i64,
) -> Result<Option<serde_json::Value>, crate::sql::SqlError> {
    Ok(
        newest_evaluation_rows(ctx, MULTIVARIATE_DRIFT_RESULTS, model, version, "method")
            .await?
            .into_iter()
            .next(),
    )
}

#[cfg(test)]
mod latest_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_performance_evaluation_is_folded_per_metric_and_class() {
        let row = |metric: &str, class: Option<&str>, value: f64| {
            json!({"evaluation_id": "m/1/t", "ts": "2026-12-07T12:00:00Z", "model": "m",
                   "task": "classification", "labelled_rows": 900, "label_coverage": 0.9,
                   "metric": metric, "class": class, "value": value})
        };
        let s = summarize_performance(vec![
            row("accuracy", None, 0.93),
            row("precision", Some("fraud"), 0.8),
            row("roc_auc", None, 0.97),
        ])
        .unwrap();
        assert_eq!(s["metrics"]["roc_auc"], 0.97);
        assert_eq!(s["classes"]["fraud"]["precision"], 0.8);
        assert_eq!(s["label_coverage"], 0.9);
        assert!(s.get("metric").is_none() && s.get("value").is_none());
        assert!(summarize_performance(vec![]).is_none());
    }

    #[test]
    fn an_evaluation_is_folded_per_feature() {
        let row = |feature: &str, drifted: bool| {
            json!({"evaluation_id": "m/1/t", "ts": "2026-11-27T12:00:00Z", "model": "m",
                   "version": "1", "alias": "production", "window_start": "a", "window_end": "b",
                   "reference_source": "reference_data", "drifted_share": 0.5,
                   "dataset_drift": true, "feature": feature, "feature_kind": "numeric",
                   "method": "ks", "statistic": 0.4, "p_value": 0.001, "drifted": drifted})
        };
        let s = summarize_evaluation(vec![row("amount", true), row("country", false)]).unwrap();
        assert_eq!(s["evaluation_id"], "m/1/t");
        assert_eq!(s["dataset_drift"], true);
        assert_eq!(s["drifted_features"], json!(["amount"]));
        assert_eq!(s["features"]["amount"]["statistic"], 0.4);
        assert_eq!(s["features"]["country"]["drifted"], false);
        assert!(s["features"]["amount"].get("feature").is_none());
        assert!(s["features"]["amount"].get("model").is_none());
        assert!(summarize_evaluation(vec![]).is_none());
    }
}
