//! Arrow schemas of the telemetry tables this crate owns, and the builders
//! that fill them.
//!
//! Conventions shared by every table (copy into ARCHITECTURE.md):
//! - `ts` is `Timestamp(Microsecond, "UTC")`, never null. Prometheus
//!   milliseconds are multiplied by 1000; OTLP nanoseconds are floored to
//!   microseconds.
//! - `model` and `version` are nullable `Utf8`; `version` is the text the
//!   sender tagged, never parsed.
//! - Label / attribute maps are `Map<Utf8, Utf8>` with the arrow default
//!   field names (`entries`, `keys` non-null, `values` nullable), keys sorted
//!   and unique per row, so SQL can say `labels['instance']`.
//!   The attribution keys (`model` / `model_version`, `model.name` /
//!   `model.version` by default) and Prometheus' `__name__` are moved to
//!   their columns and are not repeated in the map.
//! - `source` says which receiver produced the row: [`SOURCE_REMOTE_WRITE`]
//!   or [`SOURCE_OTLP`].

use std::borrow::Cow;
use std::sync::{Arc, LazyLock};

use arrow_array::builder::UInt32Builder;
use arrow_array::builder::{
    ArrayBuilder, BooleanBuilder, Float64Builder, Int32Builder, ListBuilder, MapBuilder,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch, UInt32Array};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

use crate::Result;

pub use modelwatch_types::tables::{
    DELAYED_LABELS, HISTOGRAMS, INFERENCES, LOGS, REFERENCE, SAMPLES, SPANS,
};

/// `source` value of rows decoded from Prometheus remote write.
pub const SOURCE_REMOTE_WRITE: &str = "prometheus_remote_write";
/// `source` value of rows decoded from OTLP (protobuf or JSON alike).
pub const SOURCE_OTLP: &str = "otlp";

/// `samples.kind` values.
pub mod kind {
    /// Remote write 1.0 samples (the protocol carries no type per sample),
    /// and 2.0 samples whose metadata type is neither counter nor gauge.
    pub const UNTYPED: &str = "untyped";
    /// OTLP Gauge point; remote write 2.0 sample of a GAUGE.
    pub const GAUGE: &str = "gauge";
    /// OTLP monotonic Sum point (a counter); remote write 2.0 sample of a
    /// COUNTER.
    pub const COUNTER: &str = "counter";
    /// OTLP non-monotonic Sum point (an up-down counter).
    pub const SUM: &str = "sum";
    /// One quantile of an OTLP Summary point; its `quantile` label holds
    /// the quantile (as Prometheus does), the metric name is unchanged.
    pub const SUMMARY_QUANTILE: &str = "summary_quantile";
    /// The sum of an OTLP Summary point, metric name `<name>_sum`.
    pub const SUMMARY_SUM: &str = "summary_sum";
    /// The count of an OTLP Summary point, metric name `<name>_count`.
    pub const SUMMARY_COUNT: &str = "summary_count";
}

/// `histograms.kind` values.
pub mod histogram_kind {
    /// Explicit bucket bounds (`bounds`, `bucket_counts`).
    pub const EXPLICIT: &str = "explicit";
    /// Base-2 exponential buckets (`scale`, `zero_*`, `positive_*`,
    /// `negative_*`): OTLP ExponentialHistogram and Prometheus native
    /// histograms.
    pub const EXPONENTIAL: &str = "exponential";
}

/// The Prometheus staleness marker: a NaN with these exact bits.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Is `v` the Prometheus staleness marker (not merely a NaN)?
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The `Map<Utf8, V>` type used for labels, attributes and features.
pub fn map_type(value: DataType) -> DataType {
    DataType::Map(
        Arc::new(Field::new(
            "entries",
            DataType::Struct(Fields::from(vec![
                Field::new("keys", DataType::Utf8, false),
                Field::new("values", value, true),
            ])),
            false,
        )),
        false,
    )
}

fn list_f64() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true)))
}

/// Schema of `samples`: one row per Prometheus sample, OTLP Gauge/Sum
/// point, or Summary quantile/sum/count.
///
/// | column | type | null | meaning |
/// |---|---|---|---|
/// | ts | Timestamp(µs, UTC) | no | sample time |
/// | start_ts | Timestamp(µs, UTC) | yes | OTLP `start_time_unix_nano` (cumulative/delta start), remote write 2.0 `created_timestamp`; null for remote write 1.0 |
/// | metric | Utf8 | no | `__name__`, or the OTLP metric name (`_sum`/`_count` suffix for summary parts) |
/// | value | Float64 | no | the value; NaN bits kept exactly (a stale marker is the stale NaN) |
/// | kind | Utf8 | no | see [`kind`] |
/// | stale | Boolean | no | Prometheus staleness marker, or OTLP flag `NO_RECORDED_VALUE` |
/// | labels | `Map<Utf8,Utf8>` | no | all other labels / merged attributes |
/// | model, version | Utf8 | yes | attribution |
/// | temporality | Utf8 | yes | `delta` / `cumulative` for OTLP Sum, null otherwise |
/// | monotonic | Boolean | yes | OTLP Sum `is_monotonic`, null otherwise |
/// | unit | Utf8 | yes | OTLP metric unit or remote write 2.0 metadata unit; null when empty or for remote write 1.0 |
/// | source | Utf8 | no | [`SOURCE_REMOTE_WRITE`] or [`SOURCE_OTLP`] |
/// | le, quantile, status, code | Utf8 | yes | the label of that name, also in `labels` ([`PROMOTED_LABELS`]) |
pub fn samples_schema() -> SchemaRef {
    static S: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(
            vec![
                Field::new("ts", ts_type(), false),
                Field::new("start_ts", ts_type(), true),
                Field::new("metric", DataType::Utf8, false),
                Field::new("value", DataType::Float64, false),
                Field::new("kind", DataType::Utf8, false),
                Field::new("stale", DataType::Boolean, false),
                Field::new("labels", map_type(DataType::Utf8), false),
                Field::new("model", DataType::Utf8, true),
                Field::new("version", DataType::Utf8, true),
                Field::new("temporality", DataType::Utf8, true),
                Field::new("monotonic", DataType::Boolean, true),
                Field::new("unit", DataType::Utf8, true),
                Field::new("source", DataType::Utf8, false),
            ]
            .into_iter()
            .chain(PROMOTED_LABELS.map(|l| Field::new(l, DataType::Utf8, true)))
            .collect::<Vec<_>>(),
        ))
    });
    S.clone()
}

/// Labels health queries group and filter by most (histogram buckets,
/// summary quantiles, HTTP status): `samples` has a column for each, a
/// copy of the label (null when the series has none), so a query reaches
/// them without a lookup in `labels` and Parquet keeps their statistics.
/// The label stays in `labels` too: `labels['le']` and `le` agree.
pub const PROMOTED_LABELS: [&str; 4] = ["le", "quantile", "status", "code"];

/// The `samples` columns that identify a series: a series' values of them
/// are stored once per write, not once per sample ([`SeriesRows`]); the
/// history's `samples` table declares them as its series columns.
pub const SAMPLES_SERIES_COLUMNS: [&str; 13] = [
    "metric",
    "kind",
    "labels",
    "model",
    "version",
    "temporality",
    "monotonic",
    "unit",
    "source",
    PROMOTED_LABELS[0],
    PROMOTED_LABELS[1],
    PROMOTED_LABELS[2],
    PROMOTED_LABELS[3],
];

/// Name of the first column of a [`SeriesRows::points`] batch.
pub const SERIES_INDEX: &str = "series_index";

/// Rows of a table in series form: `series` holds the table's series
/// columns (in table order), one row per series; `points` holds a
/// non-null `UInt32` index into `series` ([`SERIES_INDEX`]), then the other
/// columns in table order. The history stores this form as it is.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesRows {
    pub series: RecordBatch,
    pub points: RecordBatch,
}

impl SeriesRows {
    /// Rows (points).
    pub fn num_rows(&self) -> usize {
        self.points.num_rows()
    }

    /// The same rows whole, with `schema` (the table's): each series
    /// column gathered per point. For tools and tests; the store does this
    /// itself when it must.
    pub fn to_rows(&self, schema: &SchemaRef) -> Result<RecordBatch> {
        let index = self.points.column(0);
        let index = index
            .as_any()
            .downcast_ref::<UInt32Array>()
            .ok_or_else(|| {
                arrow_schema::ArrowError::InvalidArgumentError(
                    "the series index is not UInt32".into(),
                )
            })?;
        let columns = schema
            .fields()
            .iter()
            .map(|f| match self.series.column_by_name(f.name()) {
                Some(c) => arrow_select::take::take(c, index, None),
                None => self
                    .points
                    .column_by_name(f.name())
                    .cloned()
                    .ok_or_else(|| arrow_schema::ArrowError::SchemaError(f.name().clone())),
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(RecordBatch::try_new(schema.clone(), columns)?)
    }
}

/// The series and points schemas of `schema` split by `series_columns`.
fn series_schemas(schema: &Schema, series_columns: &[&str]) -> (SchemaRef, SchemaRef) {
    let (series, points): (Vec<_>, Vec<_>) = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .partition(|f| series_columns.contains(&f.name().as_str()));
    let points = std::iter::once(Field::new(SERIES_INDEX, DataType::UInt32, false))
        .chain(points)
        .collect::<Vec<_>>();
    (Arc::new(Schema::new(series)), Arc::new(Schema::new(points)))
}

/// The series and points schemas of `samples` in series form.
pub fn samples_series_schemas() -> (SchemaRef, SchemaRef) {
    static S: LazyLock<(SchemaRef, SchemaRef)> =
        LazyLock::new(|| series_schemas(&samples_schema(), &SAMPLES_SERIES_COLUMNS));
    S.clone()
}

/// Schema of `histograms`: one row per OTLP Histogram / ExponentialHistogram
/// point or Prometheus native histogram. Counts are Float64 because
/// Prometheus float histograms have fractional counts (exact up to 2^53).
///
/// | column | type | null | meaning |
/// |---|---|---|---|
/// | ts, start_ts | Timestamp(µs, UTC) | no / yes | as in `samples` |
/// | metric | Utf8 | no | metric name |
/// | kind | Utf8 | no | see [`histogram_kind`] |
/// | stale | Boolean | no | Prometheus stale marker (sum is the stale NaN) or OTLP `NO_RECORDED_VALUE` |
/// | temporality | Utf8 | yes | `delta`/`cumulative`; null for Prometheus gauge histograms |
/// | count | Float64 | no | number of observations |
/// | sum, min, max | Float64 | yes | when sent |
/// | bounds | `List<Float64>` | yes | explicit upper bounds (explicit kind) |
/// | bucket_counts | `List<Float64>` | yes | per-bucket (not cumulative) counts, `len(bounds)+1` (explicit kind) |
/// | scale | Int32 | yes | exponential scale (= Prometheus schema) |
/// | zero_count, zero_threshold | Float64 | yes | exponential zero bucket |
/// | positive_offset, negative_offset | Int32 | yes | index of the first bucket |
/// | positive_counts, negative_counts | `List<Float64>` | yes | dense bucket counts from the offset |
/// | labels | `Map<Utf8,Utf8>` | no | as in `samples` |
/// | model, version, unit, source | Utf8 | yes,yes,yes,no | as in `samples` |
pub fn histograms_schema() -> SchemaRef {
    static S: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new("ts", ts_type(), false),
            Field::new("start_ts", ts_type(), true),
            Field::new("metric", DataType::Utf8, false),
            Field::new("kind", DataType::Utf8, false),
            Field::new("stale", DataType::Boolean, false),
            Field::new("temporality", DataType::Utf8, true),
            Field::new("count", DataType::Float64, false),
            Field::new("sum", DataType::Float64, true),
            Field::new("min", DataType::Float64, true),
            Field::new("max", DataType::Float64, true),
            Field::new("bounds", list_f64(), true),
            Field::new("bucket_counts", list_f64(), true),
            Field::new("scale", DataType::Int32, true),
            Field::new("zero_count", DataType::Float64, true),
            Field::new("zero_threshold", DataType::Float64, true),
            Field::new("positive_offset", DataType::Int32, true),
            Field::new("positive_counts", list_f64(), true),
            Field::new("negative_offset", DataType::Int32, true),
            Field::new("negative_counts", list_f64(), true),
            Field::new("labels", map_type(DataType::Utf8), false),
            Field::new("model", DataType::Utf8, true),
            Field::new("version", DataType::Utf8, true),
            Field::new("unit", DataType::Utf8, true),
            Field::new("source", DataType::Utf8, false),
        ]))
    });
    S.clone()
}

/// Schema of `inferences` (and of `reference`): one row per OTLP log
/// record attributed to a model that carries at least one feature, a
/// prediction, a label or an inference id, or per uploaded row (see
/// [`crate::batch`]; `source` = `upload`, `attributes['upload_id']` set).
///
/// | column | type | null | meaning |
/// |---|---|---|---|
/// | ts | Timestamp(µs, UTC) | no | `time_unix_nano`, else `observed_time_unix_nano` |
/// | model | Utf8 | no | attribution |
/// | version | Utf8 | yes | attribution |
/// | inference_id | Utf8 | yes | attribute `inference.id` (joins a late `label`) |
/// | features_num | `Map<Utf8,Float64>` | no | int/double attributes under the feature prefix, prefix stripped |
/// | features_str | `Map<Utf8,Utf8>` | no | string/bool/other attributes under the prefix, prefix stripped |
/// | prediction, label | Utf8 | yes | attribute as text |
/// | prediction_value, label_value | Float64 | yes | the same when numeric (int/double) |
/// | attributes | `Map<Utf8,Utf8>` | no | the remaining merged attributes |
/// | trace_id, span_id | Utf8 | yes | lowercase hex, null when absent |
/// | source | Utf8 | no | [`SOURCE_OTLP`] |
pub fn inferences_schema() -> SchemaRef {
    static S: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new("ts", ts_type(), false),
            Field::new("model", DataType::Utf8, false),
            Field::new("version", DataType::Utf8, true),
            Field::new("inference_id", DataType::Utf8, true),
            Field::new("features_num", map_type(DataType::Float64), false),
            Field::new("features_str", map_type(DataType::Utf8), false),
            Field::new("prediction", DataType::Utf8, true),
            Field::new("prediction_value", DataType::Float64, true),
            Field::new("label", DataType::Utf8, true),
            Field::new("label_value", DataType::Float64, true),
            Field::new("attributes", map_type(DataType::Utf8), false),
            Field::new("trace_id", DataType::Utf8, true),
            Field::new("span_id", DataType::Utf8, true),
            Field::new("source", DataType::Utf8, false),
        ]))
    });
    S.clone()
}

/// Schema of `delayed_labels`: ground truth that arrives after its
/// inference, from `POST …/versions/{version}/labels` or a label-only OTLP
/// log record. The evaluator joins it to `inferences` on `(model,
/// inference_id)` (and `version` when the label has one); the newest label
/// of an inference wins over older ones and over the inference's own.
///
/// | column | type | null | meaning |
/// |---|---|---|---|
/// | ts | Timestamp(µs, UTC) | no | when the label was observed: the upload's `ts` column or its receipt time; the log record's time |
/// | model | Utf8 | no | attribution |
/// | version | Utf8 | yes | the upload's version; the record's, when it has one |
/// | inference_id | Utf8 | no | the inference it labels |
/// | label | Utf8 | no | the label as text |
/// | label_value | Float64 | yes | the same when numeric |
/// | attributes | `Map<Utf8,Utf8>` | no | `upload_id` for uploads; the remaining merged attributes for OTLP |
/// | source | Utf8 | no | `upload` or [`SOURCE_OTLP`] |
pub fn delayed_labels_schema() -> SchemaRef {
    static S: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new("ts", ts_type(), false),
            Field::new("model", DataType::Utf8, false),
            Field::new("version", DataType::Utf8, true),
            Field::new("inference_id", DataType::Utf8, false),
            Field::new("label", DataType::Utf8, false),
            Field::new("label_value", DataType::Float64, true),
            Field::new("attributes", map_type(DataType::Utf8), false),
            Field::new("source", DataType::Utf8, false),
        ]))
    });
    S.clone()
}

/// Schema of `logs`: every OTLP log record that is not an inference.
///
/// | column | type | null | meaning |
/// |---|---|---|---|
/// | ts | Timestamp(µs, UTC) | no | `time_unix_nano`, else `observed_time_unix_nano` |
/// | observed_ts | Timestamp(µs, UTC) | yes | `observed_time_unix_nano` when set |
/// | severity_number | Int32 | no | 0 = unspecified |
/// | severity_text | Utf8 | yes | when set |
/// | body | Utf8 | yes | string body as is; other bodies rendered as JSON text |
/// | event_name | Utf8 | yes | when set |
/// | attributes | `Map<Utf8,Utf8>` | no | merged attributes (model keys removed) |
/// | trace_id, span_id | Utf8 | yes | lowercase hex |
/// | model, version | Utf8 | yes | attribution (a log with a model but no inference fields lands here) |
/// | source | Utf8 | no | [`SOURCE_OTLP`] |
pub fn logs_schema() -> SchemaRef {
    static S: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new("ts", ts_type(), false),
            Field::new("observed_ts", ts_type(), true),
            Field::new("severity_number", DataType::Int32, false),
            Field::new("severity_text", DataType::Utf8, true),
            Field::new("body", DataType::Utf8, true),
            Field::new("event_name", DataType::Utf8, true),
            Field::new("attributes", map_type(DataType::Utf8), false),
            Field::new("trace_id", DataType::Utf8, true),
            Field::new("span_id", DataType::Utf8, true),
            Field::new("model", DataType::Utf8, true),
            Field::new("version", DataType::Utf8, true),
            Field::new("source", DataType::Utf8, false),
        ]))
    });
    S.clone()
}

/// Schema of `spans`: OTLP spans attributed to a model (others are counted
/// and dropped).
///
/// | column | type | null | meaning |
/// |---|---|---|---|
/// | ts | Timestamp(µs, UTC) | no | span start |
/// | end_ts | Timestamp(µs, UTC) | no | span end |
/// | duration_ms | Float64 | no | (end − start) in milliseconds, from the nanosecond times |
/// | trace_id, span_id | Utf8 | no | lowercase hex (32 / 16 digits) |
/// | parent_span_id | Utf8 | yes | lowercase hex, null for a root span |
/// | name | Utf8 | no | span name |
/// | kind | Utf8 | no | `unspecified`, `internal`, `server`, `client`, `producer`, `consumer` |
/// | status_code | Utf8 | no | `unset`, `ok`, `error` |
/// | status_message | Utf8 | yes | when set |
/// | attributes | `Map<Utf8,Utf8>` | no | merged attributes (model keys removed) |
/// | model | Utf8 | no | attribution |
/// | version | Utf8 | yes | attribution |
/// | source | Utf8 | no | [`SOURCE_OTLP`] |
pub fn spans_schema() -> SchemaRef {
    static S: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new("ts", ts_type(), false),
            Field::new("end_ts", ts_type(), false),
            Field::new("duration_ms", DataType::Float64, false),
            Field::new("trace_id", DataType::Utf8, false),
            Field::new("span_id", DataType::Utf8, false),
            Field::new("parent_span_id", DataType::Utf8, true),
            Field::new("name", DataType::Utf8, false),
            Field::new("kind", DataType::Utf8, false),
            Field::new("status_code", DataType::Utf8, false),
            Field::new("status_message", DataType::Utf8, true),
            Field::new("attributes", map_type(DataType::Utf8), false),
            Field::new("model", DataType::Utf8, false),
            Field::new("version", DataType::Utf8, true),
            Field::new("source", DataType::Utf8, false),
        ]))
    });
    S.clone()
}

/// Every telemetry table this crate declares, by name.
pub fn all_schemas() -> Vec<(&'static str, SchemaRef)> {
    vec![
        (SAMPLES, samples_schema()),
        (HISTOGRAMS, histograms_schema()),
        (INFERENCES, inferences_schema()),
        (REFERENCE, inferences_schema()),
        (DELAYED_LABELS, delayed_labels_schema()),
        (LOGS, logs_schema()),
        (SPANS, spans_schema()),
    ]
}

pub(crate) type StrMapBuilder = MapBuilder<StringBuilder, StringBuilder>;
pub(crate) type NumMapBuilder = MapBuilder<StringBuilder, Float64Builder>;

pub(crate) fn ts_builder(cap: usize) -> TimestampMicrosecondBuilder {
    TimestampMicrosecondBuilder::with_capacity(cap).with_timezone("UTC")
}

pub(crate) fn str_map_builder() -> StrMapBuilder {
    MapBuilder::new(None, StringBuilder::new(), StringBuilder::new())
}

pub(crate) fn num_map_builder() -> NumMapBuilder {
    MapBuilder::new(None, StringBuilder::new(), Float64Builder::new())
}

/// The columns of an `inferences` row that describe the inference itself
/// (id, features, prediction, label): OTLP logs and uploads fill them alike.
pub(crate) struct InferenceColumns {
    pub inference_id: StringBuilder,
    pub features_num: NumMapBuilder,
    pub features_str: StrMapBuilder,
    pub prediction: StringBuilder,
    pub prediction_value: Float64Builder,
    pub label: StringBuilder,
    pub label_value: Float64Builder,
}

impl InferenceColumns {
    pub fn with_capacity(rows: usize) -> Self {
        Self {
            inference_id: StringBuilder::new(),
            features_num: num_map_builder(),
            features_str: str_map_builder(),
            prediction: StringBuilder::new(),
            prediction_value: Float64Builder::with_capacity(rows),
            label: StringBuilder::new(),
            label_value: Float64Builder::with_capacity(rows),
        }
    }

    /// The finished columns, in schema order (they follow `ts`, `model`
    /// and `version`).
    pub fn finish(&mut self) -> [ArrayRef; 7] {
        [
            Arc::new(self.inference_id.finish()),
            Arc::new(self.features_num.finish()),
            Arc::new(self.features_str.finish()),
            Arc::new(self.prediction.finish()),
            Arc::new(self.prediction_value.finish()),
            Arc::new(self.label.finish()),
            Arc::new(self.label_value.finish()),
        ]
    }
}

/// One label / attribute as text: the key borrowed from the request, the
/// value borrowed when it is a string there.
pub(crate) type LabelPair<'a> = (&'a str, Cow<'a, str>);

/// Per-series (or per-metric) facts shared by many sample rows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SampleMeta<'a> {
    pub metric: &'a str,
    pub kind: &'static str,
    pub labels: &'a [LabelPair<'a>],
    pub model: Option<&'a str>,
    pub version: Option<&'a str>,
    pub temporality: Option<&'static str>,
    pub monotonic: Option<bool>,
    pub unit: Option<&'a str>,
    pub source: &'static str,
}

/// Expected sizes of a batch, to pre-size the builders.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SizeHint {
    pub rows: usize,
    pub metric_bytes: usize,
    pub label_entries: usize,
    pub label_key_bytes: usize,
    pub label_value_bytes: usize,
    pub model_bytes: usize,
    pub version_bytes: usize,
}

impl SizeHint {
    /// A guess from the row count alone.
    pub fn rows(rows: usize) -> Self {
        Self {
            rows,
            metric_bytes: rows * 24,
            label_entries: rows * 6,
            label_key_bytes: rows * 6 * 12,
            label_value_bytes: rows * 6 * 12,
            model_bytes: rows * 12,
            version_bytes: rows * 4,
        }
    }
}

/// The series columns of `samples` ([`SAMPLES_SERIES_COLUMNS`]), one row
/// per append: per sample in [`SamplesBuilder`], per series in
/// [`SeriesSamplesBuilder`].
struct SampleSeriesColumns {
    metric: StringBuilder,
    kind: StringBuilder,
    labels: StrMapBuilder,
    model: StringBuilder,
    version: StringBuilder,
    temporality: StringBuilder,
    monotonic: BooleanBuilder,
    unit: StringBuilder,
    source: StringBuilder,
    /// In [`PROMOTED_LABELS`] order.
    promoted: [StringBuilder; PROMOTED_LABELS.len()],
}

impl SampleSeriesColumns {
    /// Pre-sized builders: growing them row by row costs more than
    /// filling them (reallocation + copy).
    fn with_capacity(h: &SizeHint) -> Self {
        let cap = h.rows;
        Self {
            metric: StringBuilder::with_capacity(cap, h.metric_bytes),
            kind: StringBuilder::with_capacity(cap, cap * 8),
            labels: MapBuilder::with_capacity(
                None,
                StringBuilder::with_capacity(h.label_entries, h.label_key_bytes),
                StringBuilder::with_capacity(h.label_entries, h.label_value_bytes),
                cap,
            ),
            model: StringBuilder::with_capacity(cap, h.model_bytes),
            version: StringBuilder::with_capacity(cap, h.version_bytes),
            temporality: StringBuilder::with_capacity(cap, cap * 10),
            monotonic: BooleanBuilder::with_capacity(cap),
            unit: StringBuilder::with_capacity(cap, cap * 2),
            source: StringBuilder::with_capacity(cap, cap * 24),
            promoted: std::array::from_fn(|_| StringBuilder::with_capacity(cap, cap)),
        }
    }

    fn len(&self) -> usize {
        self.metric.len()
    }

    fn append(
        &mut self,
        meta: &SampleMeta<'_>,
        metric: &str,
        extra: Option<(&str, &str)>,
    ) -> Result<()> {
        self.metric.append_value(metric);
        self.kind.append_value(meta.kind);
        append_labels(&mut self.labels, meta.labels, extra)?;
        self.model.append_option(meta.model);
        self.version.append_option(meta.version);
        self.temporality.append_option(meta.temporality);
        self.monotonic.append_option(meta.monotonic);
        self.unit.append_option(meta.unit);
        self.source.append_value(meta.source);
        let mut promoted: [Option<&str>; PROMOTED_LABELS.len()] = [None; PROMOTED_LABELS.len()];
        let labels = meta.labels.iter().map(|(k, v)| (*k, v.as_ref()));
        for (k, v) in labels.chain(extra) {
            if let Some(i) = PROMOTED_LABELS.iter().position(|p| *p == k) {
                promoted[i] = Some(v);
            }
        }
        for (b, v) in self.promoted.iter_mut().zip(promoted) {
            b.append_option(v);
        }
        Ok(())
    }

    /// In [`SAMPLES_SERIES_COLUMNS`] order.
    fn finish(&mut self) -> Vec<ArrayRef> {
        let columns: [ArrayRef; 9] = [
            Arc::new(self.metric.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.labels.finish()),
            Arc::new(self.model.finish()),
            Arc::new(self.version.finish()),
            Arc::new(self.temporality.finish()),
            Arc::new(self.monotonic.finish()),
            Arc::new(self.unit.finish()),
            Arc::new(self.source.finish()),
        ];
        columns
            .into_iter()
            .chain(
                self.promoted
                    .iter_mut()
                    .map(|b| Arc::new(b.finish()) as ArrayRef),
            )
            .collect()
    }
}

/// The other columns of `samples`, one row per sample.
struct SamplePointColumns {
    ts: TimestampMicrosecondBuilder,
    start_ts: TimestampMicrosecondBuilder,
    value: Float64Builder,
    stale: BooleanBuilder,
}

impl SamplePointColumns {
    fn with_capacity(rows: usize) -> Self {
        Self {
            ts: ts_builder(rows),
            start_ts: ts_builder(rows),
            value: Float64Builder::with_capacity(rows),
            stale: BooleanBuilder::with_capacity(rows),
        }
    }

    fn append(&mut self, ts_us: i64, start_ts_us: Option<i64>, value: f64, stale: bool) {
        self.ts.append_value(ts_us);
        self.start_ts.append_option(start_ts_us);
        self.value.append_value(value);
        self.stale.append_value(stale);
    }

    /// In table order (`ts, start_ts, value, stale`).
    fn finish(&mut self) -> Vec<ArrayRef> {
        vec![
            Arc::new(self.ts.finish()),
            Arc::new(self.start_ts.finish()),
            Arc::new(self.value.finish()),
            Arc::new(self.stale.finish()),
        ]
    }
}

/// Builds a `samples` batch row by row.
pub(crate) struct SamplesBuilder {
    series: SampleSeriesColumns,
    points: SamplePointColumns,
}

impl SamplesBuilder {
    pub fn with_capacity(h: &SizeHint) -> Self {
        Self {
            series: SampleSeriesColumns::with_capacity(h),
            points: SamplePointColumns::with_capacity(h.rows),
        }
    }

    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn append(
        &mut self,
        meta: &SampleMeta<'_>,
        ts_us: i64,
        start_ts_us: Option<i64>,
        value: f64,
        stale: bool,
    ) -> Result<()> {
        self.append_with_extra_label(meta, meta.metric, ts_us, start_ts_us, value, stale, None)
    }

    /// Like [`Self::append`] with another metric name and/or one extra label
    /// merged in (its key must not be in `meta.labels`; it is inserted in
    /// order).
    #[allow(clippy::too_many_arguments)]
    pub fn append_with_extra_label(
        &mut self,
        meta: &SampleMeta<'_>,
        metric: &str,
        ts_us: i64,
        start_ts_us: Option<i64>,
        value: f64,
        stale: bool,
        extra: Option<(&str, &str)>,
    ) -> Result<()> {
        self.series.append(meta, metric, extra)?;
        self.points.append(ts_us, start_ts_us, value, stale);
        Ok(())
    }

    pub fn finish(mut self) -> Result<RecordBatch> {
        let series = self.series.finish();
        let points = self.points.finish();
        // Table order from the two groups, by name.
        let (series_schema, points_schema) = samples_series_schemas();
        let cols = samples_schema()
            .fields()
            .iter()
            .map(|f| match series_schema.index_of(f.name()) {
                Ok(i) => series[i].clone(),
                // The points schema starts with the series index.
                Err(_) => points[points_schema.index_of(f.name()).unwrap_or(1) - 1].clone(),
            })
            .collect();
        Ok(RecordBatch::try_new(samples_schema(), cols)?)
    }
}

/// Builds `samples` rows in series form: each series' columns once, then
/// its points.
pub(crate) struct SeriesSamplesBuilder {
    series: SampleSeriesColumns,
    index: UInt32Builder,
    points: SamplePointColumns,
}

impl SeriesSamplesBuilder {
    /// `series` sizes the series columns (its `rows` are series), `points`
    /// the points.
    pub fn with_capacity(series: &SizeHint, points: usize) -> Self {
        Self {
            series: SampleSeriesColumns::with_capacity(series),
            index: UInt32Builder::with_capacity(points),
            points: SamplePointColumns::with_capacity(points),
        }
    }

    /// Points appended so far.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Add a series; its points refer to the returned index.
    pub fn add_series(&mut self, meta: &SampleMeta<'_>) -> Result<u32> {
        let index = u32::try_from(self.series.len()).map_err(|_| {
            arrow_schema::ArrowError::InvalidArgumentError(
                "more than 2^32 series in one batch".into(),
            )
        })?;
        self.series.append(meta, meta.metric, None)?;
        Ok(index)
    }

    /// Add a point of series `series` (from [`Self::add_series`]).
    pub fn append(
        &mut self,
        series: u32,
        ts_us: i64,
        start_ts_us: Option<i64>,
        value: f64,
        stale: bool,
    ) {
        self.index.append_value(series);
        self.points.append(ts_us, start_ts_us, value, stale);
    }

    pub fn finish(mut self) -> Result<SeriesRows> {
        let (series_schema, points_schema) = samples_series_schemas();
        let mut points: Vec<ArrayRef> = vec![Arc::new(self.index.finish())];
        points.extend(self.points.finish());
        Ok(SeriesRows {
            series: RecordBatch::try_new(series_schema, self.series.finish())?,
            points: RecordBatch::try_new(points_schema, points)?,
        })
    }
}

/// Append sorted labels plus an optional extra label kept in key order.
pub(crate) fn append_labels(
    b: &mut StrMapBuilder,
    labels: &[LabelPair<'_>],
    extra: Option<(&str, &str)>,
) -> Result<()> {
    let mut extra = extra;
    for (k, v) in labels {
        if let Some((ek, ev)) = extra
            && ek < *k
        {
            b.keys().append_value(ek);
            b.values().append_value(ev);
            extra = None;
        }
        b.keys().append_value(k);
        b.values().append_value(v);
    }
    if let Some((ek, ev)) = extra {
        b.keys().append_value(ek);
        b.values().append_value(ev);
    }
    b.append(true)?;
    Ok(())
}

/// One histogram row, whatever its kind.
#[derive(Debug, Clone, Default)]
pub(crate) struct HistogramRow {
    pub ts_us: i64,
    pub start_ts_us: Option<i64>,
    pub exponential: bool,
    pub stale: bool,
    pub temporality: Option<&'static str>,
    pub count: f64,
    pub sum: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub bounds: Option<Vec<f64>>,
    pub bucket_counts: Option<Vec<f64>>,
    pub scale: Option<i32>,
    pub zero_count: Option<f64>,
    pub zero_threshold: Option<f64>,
    pub positive: Option<(i32, Vec<f64>)>,
    pub negative: Option<(i32, Vec<f64>)>,
}

/// Builds a `histograms` batch.
pub(crate) struct HistogramsBuilder {
    ts: TimestampMicrosecondBuilder,
    start_ts: TimestampMicrosecondBuilder,
    metric: StringBuilder,
    kind: StringBuilder,
    stale: BooleanBuilder,
    temporality: StringBuilder,
    count: Float64Builder,
    sum: Float64Builder,
    min: Float64Builder,
    max: Float64Builder,
    bounds: ListBuilder<Float64Builder>,
    bucket_counts: ListBuilder<Float64Builder>,
    scale: Int32Builder,
    zero_count: Float64Builder,
    zero_threshold: Float64Builder,
    positive_offset: Int32Builder,
    positive_counts: ListBuilder<Float64Builder>,
    negative_offset: Int32Builder,
    negative_counts: ListBuilder<Float64Builder>,
    labels: StrMapBuilder,
    model: StringBuilder,
    version: StringBuilder,
    unit: StringBuilder,
    source: StringBuilder,
}

fn append_list(b: &mut ListBuilder<Float64Builder>, v: Option<&[f64]>) {
    match v {
        Some(v) => {
            b.values().append_slice(v);
            b.append(true);
        }
        None => b.append(false),
    }
}

impl HistogramsBuilder {
    pub fn new() -> Self {
        Self {
            ts: ts_builder(0),
            start_ts: ts_builder(0),
            metric: StringBuilder::new(),
            kind: StringBuilder::new(),
            stale: BooleanBuilder::new(),
            temporality: StringBuilder::new(),
            count: Float64Builder::new(),
            sum: Float64Builder::new(),
            min: Float64Builder::new(),
            max: Float64Builder::new(),
            bounds: ListBuilder::new(Float64Builder::new()),
            bucket_counts: ListBuilder::new(Float64Builder::new()),
            scale: Int32Builder::new(),
            zero_count: Float64Builder::new(),
            zero_threshold: Float64Builder::new(),
            positive_offset: Int32Builder::new(),
            positive_counts: ListBuilder::new(Float64Builder::new()),
            negative_offset: Int32Builder::new(),
            negative_counts: ListBuilder::new(Float64Builder::new()),
            labels: str_map_builder(),
            model: StringBuilder::new(),
            version: StringBuilder::new(),
            unit: StringBuilder::new(),
            source: StringBuilder::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.count.len()
    }

    pub fn append(&mut self, meta: &SampleMeta<'_>, row: &HistogramRow) -> Result<()> {
        self.ts.append_value(row.ts_us);
        self.start_ts.append_option(row.start_ts_us);
        self.metric.append_value(meta.metric);
        self.kind.append_value(if row.exponential {
            histogram_kind::EXPONENTIAL
        } else {
            histogram_kind::EXPLICIT
        });
        self.stale.append_value(row.stale);
        self.temporality.append_option(row.temporality);
        self.count.append_value(row.count);
        self.sum.append_option(row.sum);
        self.min.append_option(row.min);
        self.max.append_option(row.max);
        append_list(&mut self.bounds, row.bounds.as_deref());
        append_list(&mut self.bucket_counts, row.bucket_counts.as_deref());
        self.scale.append_option(row.scale);
        self.zero_count.append_option(row.zero_count);
        self.zero_threshold.append_option(row.zero_threshold);
        self.positive_offset
            .append_option(row.positive.as_ref().map(|p| p.0));
        append_list(
            &mut self.positive_counts,
            row.positive.as_ref().map(|p| p.1.as_slice()),
        );
        self.negative_offset
            .append_option(row.negative.as_ref().map(|p| p.0));
        append_list(
            &mut self.negative_counts,
            row.negative.as_ref().map(|p| p.1.as_slice()),
        );
        append_labels(&mut self.labels, meta.labels, None)?;
        self.model.append_option(meta.model);
        self.version.append_option(meta.version);
        self.unit.append_option(meta.unit);
        self.source.append_value(meta.source);
        Ok(())
    }

    pub fn finish(mut self) -> Result<RecordBatch> {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.ts.finish()),
            Arc::new(self.start_ts.finish()),
            Arc::new(self.metric.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.stale.finish()),
            Arc::new(self.temporality.finish()),
            Arc::new(self.count.finish()),
            Arc::new(self.sum.finish()),
            Arc::new(self.min.finish()),
            Arc::new(self.max.finish()),
            Arc::new(self.bounds.finish()),
            Arc::new(self.bucket_counts.finish()),
            Arc::new(self.scale.finish()),
            Arc::new(self.zero_count.finish()),
            Arc::new(self.zero_threshold.finish()),
            Arc::new(self.positive_offset.finish()),
            Arc::new(self.positive_counts.finish()),
            Arc::new(self.negative_offset.finish()),
            Arc::new(self.negative_counts.finish()),
            Arc::new(self.labels.finish()),
            Arc::new(self.model.finish()),
            Arc::new(self.version.finish()),
            Arc::new(self.unit.finish()),
            Arc::new(self.source.finish()),
        ];
        Ok(RecordBatch::try_new(histograms_schema(), cols)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_batches_match_their_schemas() {
        let s = SamplesBuilder::with_capacity(&SizeHint::default())
            .finish()
            .unwrap();
        assert_eq!(s.schema(), samples_schema());
        let h = HistogramsBuilder::new().finish().unwrap();
        assert_eq!(h.schema(), histograms_schema());
    }

    #[test]
    fn stale_nan_is_distinguishable() {
        let stale = f64::from_bits(STALE_NAN_BITS);
        assert!(stale.is_nan() && is_stale_nan(stale));
        assert!(!is_stale_nan(f64::NAN));
    }
}
