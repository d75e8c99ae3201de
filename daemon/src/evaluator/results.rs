//! The `drift_results` history table: one row per feature per evaluation,
//! written through the WAL like any telemetry, so it is queryable in SQL at
//! once and aged out by retention.

use std::sync::{Arc, LazyLock};

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use modelwatch_drift::{Decision, DriftReport};

/// Table name (DESIGN.md's fixed SQL table).
pub const DRIFT_RESULTS: &str = "drift_results";

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
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
/// | n_reference, n_current | Int64 | sample sizes |
/// | window_start, window_end | Timestamp(µs, UTC) | the current window |
/// | reference_source | Utf8 | `reference_data` or `baseline_window` |
/// | drifted_share | Float64 | share of the version's features that drifted |
/// | dataset_drift | Boolean | the version as a whole drifted |
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
        ]))
    });
    S.clone()
}

/// What identifies one evaluation's rows.
#[derive(Debug, Clone)]
pub struct EvaluationKey<'a> {
    pub evaluation_id: &'a str,
    pub model: &'a str,
    pub version: i64,
    pub alias: &'a str,
    pub window: (DateTime<Utc>, DateTime<Utc>),
    pub reference_source: &'a str,
}

pub fn decision_name(d: Decision) -> &'static str {
    match d {
        Decision::Drift => "drift",
        Decision::NoDrift => "no_drift",
        Decision::NotEnoughData => "not_enough_data",
    }
}

/// The rows of one report; `kinds[i]` is the kind of `report.features[i]`.
pub fn batch(
    key: &EvaluationKey<'_>,
    report: &DriftReport,
    kinds: &[&str],
) -> datafusion::arrow::error::Result<RecordBatch> {
    let n = report.features.len();
    let at = key.window.1.timestamp_micros();
    let repeat = |s: &str| -> ArrayRef { Arc::new(StringArray::from(vec![s; n])) };
    let ts = |v: i64| -> ArrayRef {
        Arc::new(TimestampMicrosecondArray::from(vec![v; n]).with_timezone("UTC"))
    };
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
        Arc::new(StringArray::from_iter_values(kinds.iter().copied())),
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
    ];
    RecordBatch::try_new(schema(), columns)
}
