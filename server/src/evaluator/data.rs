//! Reading the evaluator's inputs out of the history with DataFusion
//! ([`DataFusionReader`], the evaluator's `TelemetryReader`): feature
//! distributions of a window (`inferences` / `reference`), the operational
//! metrics the rollback judge compares (`spans`, `samples`, `histograms`)
//! and the newest evaluations in `drift_results`.
//!
//! Filtering and projection run in DataFusion (manifest and page pruning by
//! model, version and time); the per-feature split of the feature maps runs
//! here, streaming, so memory stays bounded whatever the window's size:
//! each numeric feature keeps every value up to the evaluator's exact
//! limit and a threshold sample beyond it, keyed by each row's identity
//! (its timestamp, inference id and numeric features), so the values kept
//! never depend on the order the scan returns rows in and the same window
//! always gives the same statistics; categorical features are counted
//! exactly.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{
    Array, AsArray, Float64Array, MapArray, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{Float64Type, Int64Type, TimestampMicrosecondType};
use datafusion::error::Result;
use datafusion::prelude::{SessionContext, col, lit};
use futures::StreamExt;
use modelwatch_collectors::schema::{DELAYED_LABELS, HISTOGRAMS, INFERENCES, SAMPLES, SPANS};
use modelwatch_drift::CategoryCounts;
use modelwatch_drift::WindowValues;
use modelwatch_evaluator::decision::PREDICTION_FEATURE;
use modelwatch_evaluator::{
    EvalError, EvaluationKey, FeatureSet, FeatureValues, OutcomeRows, Profile, RowColumns,
    TelemetryReader, Traffic, Window, exact_values_limit,
};
use modelwatch_history::HistoryStore;
use modelwatch_registry::FeatureKind;
use modelwatch_types::tables::{DRIFT_RESULTS, MULTIVARIATE_DRIFT_RESULTS};
use modelwatch_types::{ErrorSource, LatencySource};

type EvalResult<T> = modelwatch_evaluator::Result<T>;

/// The inferences column that identifies a row (reference rows may have it).
const INFERENCE_ID: &str = "inference_id";
/// A numeric prediction's column (its text is in `prediction`).
const PREDICTION_VALUE: &str = "prediction_value";

fn ts_lit(t: DateTime<Utc>) -> datafusion::logical_expr::Expr {
    lit(datafusion::scalar::ScalarValue::TimestampMicrosecond(
        Some(t.timestamp_micros()),
        Some("UTC".into()),
    ))
}

fn version_filter(
    df: datafusion::dataframe::DataFrame,
    model: &str,
    version: &str,
    range: Option<(DateTime<Utc>, DateTime<Utc>)>,
) -> Result<datafusion::dataframe::DataFrame> {
    let mut df = df.filter(
        col("model")
            .eq(lit(model))
            .and(col("version").eq(lit(version))),
    )?;
    if let Some((from, to)) = range {
        df = df.filter(col("ts").gt_eq(ts_lit(from)).and(col("ts").lt(ts_lit(to))))?;
    }
    Ok(df)
}

/// Which feature slot each entry of a row's map feeds, resolved once per
/// key layout: rows of one source repeat the same keys in the same order, so
/// a row is matched against the previous one with one comparison of its key
/// bytes and offsets instead of a lookup per key.
#[derive(Default)]
struct RowLayout {
    /// The previous row's keys, concatenated.
    bytes: Vec<u8>,
    /// Where each of its keys ends in `bytes`.
    ends: Vec<usize>,
    /// Its entries' feature slots.
    slots: Vec<Option<usize>>,
}

impl RowLayout {
    fn slots(
        &mut self,
        keys: &StringArray,
        (start, end): (usize, usize),
        lookup: &HashMap<&str, usize>,
    ) -> &[Option<usize>] {
        let offsets = keys.value_offsets();
        let lo = offsets[start] as usize;
        let bytes = &keys.value_data()[lo..offsets[end] as usize];
        let ends = offsets[start + 1..=end].iter().map(|o| *o as usize - lo);
        let same = end - start == self.ends.len()
            && bytes == self.bytes.as_slice()
            && ends.clone().eq(self.ends.iter().copied());
        if !same {
            self.bytes.clear();
            self.bytes.extend_from_slice(bytes);
            self.ends.clear();
            self.ends.extend(ends);
            self.slots.clear();
            self.slots
                .extend((start..end).map(|e| lookup.get(keys.value(e)).copied()));
        }
        &self.slots
    }
}

/// Calls `each(slot, entry)` for every non-null entry of `map` whose key is
/// a wanted feature (`lookup`: name → slot).
fn for_each_feature_entry(
    map: &MapArray,
    layout: &mut RowLayout,
    lookup: &HashMap<&str, usize>,
    mut each: impl FnMut(usize, usize),
) {
    let keys = map.keys().as_string::<i32>();
    let values = map.values();
    for row in 0..map.len() {
        let range = entry_range(map, row);
        let slots = layout.slots(keys, range, lookup);
        for (e, slot) in (range.0..range.1).zip(slots) {
            if let Some(slot) = *slot
                && values.is_valid(e)
            {
                each(slot, e);
            }
        }
    }
}

/// Builds the profile of `window` for `features` (name → kind). A feature
/// of unknown kind is read from whichever map holds it.
pub async fn profile(
    ctx: &SessionContext,
    window: &Window,
    features: &FeatureSet,
) -> Result<Profile> {
    let numeric = features
        .values()
        .filter(|k| **k != Some(FeatureKind::Categorical))
        .count();
    profile_with_limit(ctx, window, features, exact_values_limit(numeric)).await
}

/// [`profile`] with every numeric feature exact up to `limit` values (the
/// evaluator's limit is `exact_values_limit`; tests force sampling here).
pub async fn profile_with_limit(
    ctx: &SessionContext,
    window: &Window,
    features: &FeatureSet,
    limit: usize,
) -> Result<Profile> {
    let df = ctx.table(window.table).await?;
    let has_id = df
        .schema()
        .field_with_unqualified_name(INFERENCE_ID)
        .is_ok();
    // The prediction column, when it is tested like a feature.
    let prediction_slot = features
        .keys()
        .position(|f| f == PREDICTION_FEATURE)
        .filter(|_| {
            df.schema()
                .field_with_unqualified_name(PREDICTION_VALUE)
                .is_ok()
        });
    let mut columns = vec!["features_num", "features_str", "ts"];
    if has_id {
        columns.push(INFERENCE_ID);
    }
    if prediction_slot.is_some() {
        columns.extend([PREDICTION_FEATURE, PREDICTION_VALUE]);
    }
    let df = version_filter(df, &window.model, &window.version, window.range)?
        .select_columns(&columns)?;
    let mut stream = df.execute_stream().await?;

    let names: Vec<&str> = features.keys().map(String::as_str).collect();
    let lookup: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let mut numeric: Vec<WindowValues> = vec![WindowValues::new(limit); names.len()];
    let mut categorical: Vec<BTreeMap<String, u64>> = vec![BTreeMap::new(); names.len()];
    let mut seen_num = vec![0u64; names.len()];
    let mut seen_str = vec![0u64; names.len()];
    let (mut num_layout, mut str_layout) = (RowLayout::default(), RowLayout::default());
    let mut rows = 0u64;

    while let Some(batch) = stream.next().await {
        let batch = batch?;
        rows += batch.num_rows() as u64;
        let num = batch.column(0).as_map();
        let (_, nv) = map_parts::<Float64Array>(num);
        let identities = row_identities(
            num,
            nv,
            timestamps_at(&batch, 2),
            batch
                .column_by_name(INFERENCE_ID)
                .map(|c| c.as_string::<i32>()),
        );
        let entry_rows = entry_rows(num);
        for_each_feature_entry(num, &mut num_layout, &lookup, |slot, e| {
            numeric[slot].push(nv.value(e), identities[entry_rows[e] as usize]);
            seen_num[slot] += 1;
        });
        let strs = batch.column(1).as_map();
        let (_, sv) = map_parts::<StringArray>(strs);
        for_each_feature_entry(strs, &mut str_layout, &lookup, |slot, e| {
            let counts = &mut categorical[slot];
            match counts.get_mut(sv.value(e)) {
                Some(c) => *c += 1,
                None => {
                    counts.insert(sv.value(e).to_string(), 1);
                }
            }
            seen_str[slot] += 1;
        });
        if let (Some(slot), Some(text), Some(value)) = (
            prediction_slot,
            batch.column_by_name(PREDICTION_FEATURE),
            batch.column_by_name(PREDICTION_VALUE),
        ) {
            // A number fills both columns: it counts as numeric only.
            let (text, value) = (text.as_string::<i32>(), value.as_primitive::<Float64Type>());
            for (row, identity) in identities.iter().enumerate() {
                if value.is_valid(row) {
                    numeric[slot].push(value.value(row), *identity);
                    seen_num[slot] += 1;
                } else if text.is_valid(row) {
                    *categorical[slot]
                        .entry(text.value(row).to_string())
                        .or_default() += 1;
                    seen_str[slot] += 1;
                }
            }
        }
    }

    let mut out = BTreeMap::new();
    let mut type_mismatches = BTreeMap::new();
    for (i, (name, kind)) in features.iter().enumerate() {
        let as_categorical = match kind {
            Some(FeatureKind::Categorical) => true,
            Some(FeatureKind::Numeric) => false,
            None => seen_str[i] > 0 && seen_num[i] == 0,
        };
        let mismatched = if as_categorical {
            seen_num[i]
        } else {
            seen_str[i]
        };
        if mismatched > 0 {
            type_mismatches.insert(name.clone(), mismatched);
        }
        let values = if as_categorical {
            FeatureValues::Categorical(CategoryCounts {
                counts: std::mem::take(&mut categorical[i]),
            })
        } else {
            FeatureValues::Numeric(
                std::mem::replace(&mut numeric[i], WindowValues::new(1)).finish(),
            )
        };
        out.insert(name.clone(), values);
    }
    Ok(Profile {
        rows,
        features: out,
        type_mismatches,
    })
}

/// Each row's identity for threshold sampling: its timestamp, inference
/// id (when the table has one) and numeric feature values, mixed. Rows
/// equal in all of these are indistinguishable to every statistic, so it
/// does not matter that they share a key.
fn row_identities(
    num: &MapArray,
    values: &Float64Array,
    ts: &TimestampMicrosecondArray,
    ids: Option<&StringArray>,
) -> Vec<u64> {
    use modelwatch_drift::sample::mix_identity;
    (0..num.len())
        .map(|row| {
            let mut identity = mix_identity(0, ts.value(row) as u64);
            if let Some(ids) = ids
                && ids.is_valid(row)
            {
                identity = mix_identity(identity, text_hash(ids.value(row)));
            }
            let (start, end) = entry_range(num, row);
            for e in start..end {
                if values.is_valid(e) {
                    identity = mix_identity(identity, values.value(e).to_bits());
                }
            }
            identity
        })
        .collect()
}

/// FNV-1a: fixed forever, like the sampling key it feeds.
fn text_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The row each entry of `map` belongs to.
fn entry_rows(map: &MapArray) -> Vec<u32> {
    let offsets = map.value_offsets();
    let mut out = vec![0u32; map.entries().len()];
    for row in 0..map.len() {
        let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
        out[start..end].fill(row as u32);
    }
    out
}

fn map_parts<V: 'static>(map: &MapArray) -> (&StringArray, &V) {
    let keys = map.keys().as_string::<i32>();
    let values = map
        .values()
        .as_any()
        .downcast_ref::<V>()
        .expect("the history schema fixes the map value type");
    (keys, values)
}

fn entry_range(map: &MapArray, row: usize) -> (usize, usize) {
    if map.is_null(row) {
        return (0, 0);
    }
    let offsets = map.value_offsets();
    (offsets[row] as usize, offsets[row + 1] as usize)
}

/// The feature names (and kinds) found in a version's reference data, for
/// versions with no declared features and a policy that names none.
pub async fn discover_features(ctx: &SessionContext, window: &Window) -> Result<FeatureSet> {
    let df = ctx.table(window.table).await?;
    let df = version_filter(df, &window.model, &window.version, window.range)?
        .select_columns(&["features_num", "features_str"])?
        .limit(0, Some(1000))?;
    let mut out = BTreeMap::new();
    for batch in df.collect().await? {
        for (column, kind) in [(0, FeatureKind::Numeric), (1, FeatureKind::Categorical)] {
            let keys = batch.column(column).as_map().keys().as_string::<i32>();
            for k in keys.iter().flatten() {
                out.entry(k.to_string()).or_insert(Some(kind));
            }
        }
    }
    Ok(out)
}

/// Rows of a window (cheap: no feature maps are read).
pub async fn count_rows(ctx: &SessionContext, window: &Window) -> Result<u64> {
    let df = ctx.table(window.table).await?;
    let df = version_filter(df, &window.model, &window.version, window.range)?;
    Ok(df.count().await? as u64)
}

/// The version's spans in the range (only those named `span_name` if given).
async fn spans(
    ctx: &SessionContext,
    t: &Traffic,
    span_name: Option<&str>,
) -> Result<datafusion::dataframe::DataFrame> {
    let df = version_filter(
        ctx.table(SPANS).await?,
        &t.model,
        &t.version,
        Some((t.from, t.to)),
    )?;
    Ok(match span_name {
        Some(name) => df.filter(col("name").eq(lit(name)))?,
        None => df,
    })
}

/// The version's samples of one metric in the range (stale markers excluded).
async fn samples(
    ctx: &SessionContext,
    t: &Traffic,
    metric: &str,
) -> Result<datafusion::dataframe::DataFrame> {
    live_points(ctx, SAMPLES, t, metric).await
}

/// The non-stale points of `metric` in `table` (samples or histograms) of
/// the traffic's version and window.
async fn live_points(
    ctx: &SessionContext,
    table: &str,
    t: &Traffic,
    metric: &str,
) -> Result<datafusion::dataframe::DataFrame> {
    version_filter(
        ctx.table(table).await?,
        &t.model,
        &t.version,
        Some((t.from, t.to)),
    )?
    .filter(
        col("metric")
            .eq(lit(metric))
            .and(col("stale").eq(lit(false))),
    )
}

/// Latencies of the version's spans (`duration_ms`).
pub async fn span_latencies(
    ctx: &SessionContext,
    t: &Traffic,
    span_name: Option<&str>,
) -> Result<Vec<f64>> {
    collect_f64(
        spans(ctx, t, span_name)
            .await?
            .select_columns(&["duration_ms"])?,
    )
    .await
}

/// `(errors, total)` of the version's spans.
pub async fn span_errors(
    ctx: &SessionContext,
    t: &Traffic,
    span_name: Option<&str>,
) -> Result<(u64, u64)> {
    let df = spans(ctx, t, span_name).await?;
    let total = df.clone().count().await? as u64;
    let errors = df
        .filter(col("status_code").eq(lit("error")))?
        .count()
        .await? as u64;
    Ok((errors, total))
}

/// Values of a gauge for the version.
pub async fn gauge_values(ctx: &SessionContext, t: &Traffic, metric: &str) -> Result<Vec<f64>> {
    collect_f64(samples(ctx, t, metric).await?.select_columns(&["value"])?).await
}

/// Column `index` of a scan, which selected `ts` there.
fn timestamps_at(
    batch: &datafusion::arrow::array::RecordBatch,
    index: usize,
) -> &TimestampMicrosecondArray {
    batch
        .column(index)
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .expect("ts is a microsecond timestamp")
}

/// A row's series identity: its labels (sorted keys, as stored), joined with
/// separators that cannot occur in label text.
fn series_key(labels: &MapArray, row: usize) -> String {
    let (keys, values) = map_parts::<StringArray>(labels);
    let (start, end) = entry_range(labels, row);
    let mut key = String::new();
    for e in start..end {
        key.push_str(keys.value(e));
        key.push('\u{0}');
        key.push_str(values.value(e));
        key.push('\u{1}');
    }
    key
}

/// Observations a histogram is expanded into at most (the judge compares
/// samples; a histogram's counts are scaled down to this many).
pub const HISTOGRAM_OBSERVATIONS_CAP: f64 = 20_000.0;

/// Latency observations from an explicit-bucket histogram: the counts of
/// the range (delta points summed; cumulative points as their increase per
/// series, resets handled like counters), expanded into one value per
/// observation at its bucket's midpoint (the `+Inf` bucket at the last
/// finite bound, a lower bound), scaled down to at most
/// [`HISTOGRAM_OBSERVATIONS_CAP`] values.
pub async fn histogram_latencies(
    ctx: &SessionContext,
    t: &Traffic,
    metric: &str,
) -> Result<Vec<f64>> {
    let df = live_points(ctx, HISTOGRAMS, t, metric)
        .await?
        .filter(col("kind").eq(lit("explicit")))?
        .select_columns(&["ts", "temporality", "labels", "bounds", "bucket_counts"])?;
    // Series (labels and bounds) → points (ts, cumulative?, counts).
    type Points = Vec<(i64, bool, Vec<f64>)>;
    let mut series: HashMap<String, (Vec<f64>, Points)> = HashMap::new();
    for batch in df.collect().await? {
        let ts = timestamps_at(&batch, 0);
        let temporality = batch.column(1).as_string::<i32>();
        let labels = batch.column(2).as_map();
        let bounds = batch.column(3).as_list::<i32>();
        let counts = batch.column(4).as_list::<i32>();
        for row in 0..batch.num_rows() {
            if bounds.is_null(row) || counts.is_null(row) {
                continue;
            }
            let b: Vec<f64> = bounds
                .value(row)
                .as_primitive::<Float64Type>()
                .iter()
                .map(|v| v.unwrap_or(f64::NAN))
                .collect();
            let c: Vec<f64> = counts
                .value(row)
                .as_primitive::<Float64Type>()
                .iter()
                .map(|v| v.unwrap_or(0.0))
                .collect();
            if c.len() != b.len() + 1 {
                continue;
            }
            let key = format!("{b:?}\u{2}{}", series_key(labels, row));
            let cumulative = temporality.is_valid(row) && temporality.value(row) == "cumulative";
            series
                .entry(key)
                .or_insert_with(|| (b, Vec::new()))
                .1
                .push((ts.value(row), cumulative, c));
        }
    }
    // Bounds → counts over the range.
    let mut totals: Vec<(Vec<f64>, Vec<f64>)> = Vec::new();
    for (bounds, mut points) in series.into_values() {
        points.sort_by_key(|p| p.0);
        let mut sum = vec![0.0; bounds.len() + 1];
        for (i, (_, cumulative, counts)) in points.iter().enumerate() {
            if !cumulative {
                sum.iter_mut().zip(counts).for_each(|(s, c)| *s += c);
            } else if i > 0 {
                let prev = &points[i - 1].2;
                let reset = counts.iter().zip(prev).any(|(c, p)| c < p);
                for (j, s) in sum.iter_mut().enumerate() {
                    *s += if reset {
                        counts[j]
                    } else {
                        counts[j] - prev[j]
                    };
                }
            }
        }
        match totals.iter_mut().find(|(b, _)| *b == bounds) {
            Some((_, t)) => t.iter_mut().zip(&sum).for_each(|(t, s)| *t += s),
            None => totals.push((bounds, sum)),
        }
    }
    let all: f64 = totals.iter().flat_map(|(_, c)| c.iter()).sum();
    let scale = if all > HISTOGRAM_OBSERVATIONS_CAP {
        HISTOGRAM_OBSERVATIONS_CAP / all
    } else {
        1.0
    };
    let mut out = Vec::new();
    for (bounds, counts) in totals {
        for (i, count) in counts.iter().enumerate() {
            let value = match (i.checked_sub(1).map(|p| bounds[p]), bounds.get(i)) {
                // (0, upper] for positive latencies; the bound itself otherwise.
                (None, Some(&upper)) => {
                    if upper > 0.0 {
                        upper / 2.0
                    } else {
                        upper
                    }
                }
                (Some(lower), Some(&upper)) => (lower + upper) / 2.0,
                (Some(lower), None) => lower,
                (None, None) => continue,
            };
            let n = (count * scale).round() as usize;
            if value.is_finite() {
                out.extend(std::iter::repeat_n(value, n));
            }
        }
    }
    Ok(out)
}

/// Increase of a counter over the range, summed over its series, with
/// Prometheus' reset handling (a drop starts a new run from zero).
pub async fn counter_increase(ctx: &SessionContext, t: &Traffic, metric: &str) -> Result<f64> {
    let df = samples(ctx, t, metric)
        .await?
        .select_columns(&["ts", "value", "labels"])?;
    let mut series: HashMap<String, Vec<(i64, f64)>> = HashMap::new();
    for batch in df.collect().await? {
        let ts = timestamps_at(&batch, 0);
        let values = batch.column(1).as_primitive::<Float64Type>();
        let labels = batch.column(2).as_map();
        for row in 0..batch.num_rows() {
            series
                .entry(series_key(labels, row))
                .or_default()
                .push((ts.value(row), values.value(row)));
        }
    }
    let mut total = 0.0;
    for points in series.values_mut() {
        points.sort_by_key(|p| p.0);
        for pair in points.windows(2) {
            let (prev, next) = (pair[0].1, pair[1].1);
            total += if next >= prev { next - prev } else { next };
        }
    }
    Ok(total)
}

/// One metric of the traffic's version as a series: its non-stale points
/// averaged per timestamp, in time order (non-finite averages left out).
pub async fn metric_series(
    ctx: &SessionContext,
    t: &Traffic,
    metric: &str,
) -> Result<Vec<(DateTime<Utc>, f64)>> {
    use datafusion::functions_aggregate::expr_fn::avg;
    let df = samples(ctx, t, metric)
        .await?
        .aggregate(vec![col("ts")], vec![avg(col("value")).alias("value")])?
        .sort(vec![col("ts").sort(true, false)])?;
    let mut out = Vec::new();
    for batch in df.collect().await? {
        let ts = timestamps_at(&batch, 0);
        let values = batch.column(1).as_primitive::<Float64Type>();
        for row in 0..batch.num_rows() {
            let v = values.value(row);
            if values.is_valid(row)
                && v.is_finite()
                && let Some(at) = DateTime::from_timestamp_micros(ts.value(row))
            {
                out.push((at, v));
            }
        }
    }
    Ok(out)
}

/// One of `SPAN_SERIES` over the version's spans, per `bucket` (buckets
/// aligned on the epoch; empty buckets have no point). Only buckets wholly
/// inside the range count: the newest one is still filling, and a
/// throughput detector would see every evaluation's last bucket drop.
pub async fn span_series(
    ctx: &SessionContext,
    t: &Traffic,
    metric: &str,
    span_name: Option<&str>,
    bucket: std::time::Duration,
) -> Result<Vec<(DateTime<Utc>, f64)>> {
    use datafusion::functions::datetime::expr_fn::date_bin;
    use datafusion::functions_aggregate::expr_fn::{avg, count};
    use datafusion::logical_expr::when;
    let stride = lit(datafusion::scalar::ScalarValue::new_interval_mdn(
        0,
        0,
        i64::try_from(bucket.as_nanos()).unwrap_or(i64::MAX),
    ));
    let value = match metric {
        "latency_ms" => avg(col("duration_ms")),
        "throughput" => count(lit(1)),
        "error_rate" => {
            avg(when(col("status_code").eq(lit("error")), lit(1.0)).otherwise(lit(0.0))?)
        }
        other => {
            return Err(datafusion::error::DataFusionError::Plan(format!(
                "{other:?} is not a span series; use one of {}",
                modelwatch_types::SPAN_SERIES.join(", ")
            )));
        }
    };
    let df = spans(ctx, t, span_name)
        .await?
        .aggregate(
            // `date_bin` may widen the unit; the reader wants `ts`'s.
            vec![
                datafusion::prelude::cast(
                    date_bin(stride, col("ts"), ts_lit(DateTime::UNIX_EPOCH)),
                    datafusion::arrow::datatypes::DataType::Timestamp(
                        datafusion::arrow::datatypes::TimeUnit::Microsecond,
                        Some("UTC".into()),
                    ),
                )
                .alias("bucket"),
            ],
            vec![value.alias("value")],
        )?
        .sort(vec![col("bucket").sort(true, false)])?;
    let seconds = bucket.as_secs_f64();
    let step = chrono::Duration::from_std(bucket).unwrap_or(chrono::Duration::MAX);
    let mut out = Vec::new();
    for batch in df.collect().await? {
        let ts = timestamps_at(&batch, 0);
        let values = batch.column(1);
        for row in 0..batch.num_rows() {
            let v = match values.data_type() {
                datafusion::arrow::datatypes::DataType::Int64 => {
                    values.as_primitive::<Int64Type>().value(row) as f64 / seconds
                }
                _ => values.as_primitive::<Float64Type>().value(row),
            };
            if values.is_valid(row)
                && v.is_finite()
                && let Some(at) = DateTime::from_timestamp_micros(ts.value(row))
                && at >= t.from
                && at + step <= t.to
            {
                out.push((at, v));
            }
        }
    }
    Ok(out)
}

/// One inference's newest delayed label.
struct DelayedLabel {
    ts: i64,
    label: String,
    label_value: Option<f64>,
}

/// The newest `delayed_labels` row of each inference id that can label an
/// inference of `window`: the window's model, its version or none, and
/// observed no earlier than the window starts (ground truth follows its
/// inference). Ties on `ts` go to the greater label text, so the choice
/// does not depend on the scan order.
async fn delayed_labels(
    ctx: &SessionContext,
    window: &Window,
) -> Result<HashMap<String, DelayedLabel>> {
    let mut df = ctx.table(DELAYED_LABELS).await?.filter(
        col("model").eq(lit(window.model.as_str())).and(
            col("version")
                .eq(lit(window.version.as_str()))
                .or(col("version").is_null()),
        ),
    )?;
    if let Some((from, _)) = window.range {
        df = df.filter(col("ts").gt_eq(ts_lit(from)))?;
    }
    let df = df.select_columns(&["inference_id", "ts", "label", "label_value"])?;
    let mut out: HashMap<String, DelayedLabel> = HashMap::new();
    let mut stream = df.execute_stream().await?;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let ids = batch.column(0).as_string::<i32>();
        let ts = batch.column(1).as_primitive::<TimestampMicrosecondType>();
        let labels = batch.column(2).as_string::<i32>();
        let values = batch.column(3).as_primitive::<Float64Type>();
        for i in 0..batch.num_rows() {
            let candidate = DelayedLabel {
                ts: ts.value(i),
                label: labels.value(i).to_string(),
                label_value: values.is_valid(i).then(|| values.value(i)),
            };
            match out.get_mut(ids.value(i)) {
                Some(kept) => {
                    if (candidate.ts, &candidate.label) > (kept.ts, &kept.label) {
                        *kept = candidate;
                    }
                }
                None => {
                    out.insert(ids.value(i).to_string(), candidate);
                }
            }
        }
    }
    Ok(out)
}

/// The labelled inferences of `window`, with the window's row count. An
/// inference's label is its newest delayed label (joined on
/// `inference_id`), else the label it arrived with (text or value).
pub async fn labelled(ctx: &SessionContext, window: &Window) -> Result<OutcomeRows> {
    outcomes(ctx, window, &RowColumns::labelled()).await
}

/// The inferences of `window` (only the labelled ones with
/// `labelled_only`), labels joined as [`labelled`] joins them, with each
/// row's value of the categorical features `attributes` as its groups and
/// of `features` as its feature matrix.
pub async fn outcomes(
    ctx: &SessionContext,
    window: &Window,
    wanted: &RowColumns,
) -> Result<OutcomeRows> {
    outcomes_with_limit(ctx, window, wanted, wanted.row_limit()).await
}

/// [`outcomes`] keeping at most about `limit` rows (the evaluator's limit
/// is [`RowColumns::row_limit`]; tests force sampling here).
pub async fn outcomes_with_limit(
    ctx: &SessionContext,
    window: &Window,
    wanted: &RowColumns,
    limit: u64,
) -> Result<OutcomeRows> {
    use datafusion::functions::core::expr_fn::get_field;
    let rows = count_rows(ctx, window).await?;
    let delayed = if window.table == INFERENCES {
        delayed_labels(ctx, window).await?
    } else {
        HashMap::new()
    };
    let mut df = version_filter(
        ctx.table(window.table).await?,
        &window.model,
        &window.version,
        window.range,
    )?;
    if wanted.labelled_only {
        let has_label = col("label")
            .is_not_null()
            .or(col("label_value").is_not_null());
        df = df.filter(if delayed.is_empty() {
            has_label
        } else {
            has_label.or(col(INFERENCE_ID).is_not_null())
        })?;
    }
    let mut columns: Vec<datafusion::prelude::Expr> = [
        "label",
        "label_value",
        "prediction",
        "prediction_value",
        INFERENCE_ID,
    ]
    .into_iter()
    .map(col)
    .collect();
    columns.extend(
        wanted
            .attributes
            .iter()
            .enumerate()
            .map(|(i, a)| get_field(col("features_str"), a.as_str()).alias(format!("group_{i}"))),
    );
    // Numeric features first, then categorical ones, as the matrix holds
    // them.
    let numeric: Vec<&String> = wanted
        .features
        .iter()
        .filter(|(_, kind)| **kind != Some(FeatureKind::Categorical))
        .map(|(name, _)| name)
        .collect();
    let categorical: Vec<&String> = wanted
        .features
        .iter()
        .filter(|(_, kind)| **kind == Some(FeatureKind::Categorical))
        .map(|(name, _)| name)
        .collect();
    columns.extend(
        numeric
            .iter()
            .enumerate()
            .map(|(i, f)| get_field(col("features_num"), f.as_str()).alias(format!("num_{i}"))),
    );
    columns.extend(
        categorical
            .iter()
            .enumerate()
            .map(|(i, f)| get_field(col("features_str"), f.as_str()).alias(format!("str_{i}"))),
    );
    // The row identity's timestamp, last so the other columns keep their
    // places.
    let ts_column = columns.len();
    columns.push(col("ts"));
    let df = df.select(columns)?;
    let mut out = OutcomeRows {
        rows,
        ..OutcomeRows::default()
    };
    // Beyond the read's row limit, a threshold sample keyed by each row's
    // content: the same window always gives the same rows.
    let keep_below = (rows > limit).then(|| (limit as f64 / rows as f64 * u64::MAX as f64) as u64);
    out.sampled = keep_below.is_some();
    let mut groups: Vec<Vec<Option<String>>> = vec![Vec::new(); wanted.attributes.len()];
    let mut numeric_values: Vec<Vec<Option<f64>>> = vec![Vec::new(); numeric.len()];
    let mut categorical_values: Vec<Vec<Option<String>>> = vec![Vec::new(); categorical.len()];
    let first_numeric = 5 + wanted.attributes.len();
    let first_categorical = first_numeric + numeric.len();
    let mut stream = df.execute_stream().await?;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let labels = batch.column(0).as_string::<i32>();
        let label_values = batch.column(1).as_primitive::<Float64Type>();
        let predictions = batch.column(2).as_string::<i32>();
        let prediction_values = batch.column(3).as_primitive::<Float64Type>();
        let ids = batch.column(4).as_string::<i32>();
        let group_columns: Vec<&StringArray> = (0..wanted.attributes.len())
            .map(|a| batch.column(5 + a).as_string::<i32>())
            .collect();
        let numeric_columns: Vec<&Float64Array> = (0..numeric.len())
            .map(|f| {
                batch
                    .column(first_numeric + f)
                    .as_primitive::<Float64Type>()
            })
            .collect();
        let categorical_columns: Vec<&StringArray> = (0..categorical.len())
            .map(|f| batch.column(first_categorical + f).as_string::<i32>())
            .collect();
        let ts = batch
            .column(ts_column)
            .as_primitive::<TimestampMicrosecondType>();
        for i in 0..batch.num_rows() {
            if let Some(below) = keep_below {
                use modelwatch_drift::sample::mix_identity;
                let mut identity = mix_identity(0, ts.value(i) as u64);
                if ids.is_valid(i) {
                    identity = mix_identity(identity, text_hash(ids.value(i)));
                }
                if prediction_values.is_valid(i) {
                    identity = mix_identity(identity, prediction_values.value(i).to_bits());
                }
                for column in &numeric_columns {
                    if column.is_valid(i) {
                        identity = mix_identity(identity, column.value(i).to_bits());
                    }
                }
                if identity >= below {
                    continue;
                }
            }
            let late = ids.is_valid(i).then(|| delayed.get(ids.value(i))).flatten();
            let (label, label_value) = match late {
                Some(late) => {
                    out.delayed_labels += 1;
                    (Some(late.label.clone()), late.label_value)
                }
                None if labels.is_valid(i) || label_values.is_valid(i) => (
                    labels.is_valid(i).then(|| labels.value(i).to_string()),
                    label_values.is_valid(i).then(|| label_values.value(i)),
                ),
                None if wanted.labelled_only => continue,
                None => (None, None),
            };
            out.labels.push(label);
            out.label_values.push(label_value);
            out.predictions.push(
                predictions
                    .is_valid(i)
                    .then(|| predictions.value(i).to_string()),
            );
            out.prediction_values.push(
                prediction_values
                    .is_valid(i)
                    .then(|| prediction_values.value(i)),
            );
            for (column, values) in group_columns.iter().zip(&mut groups) {
                values.push(column.is_valid(i).then(|| column.value(i).to_string()));
            }
            for (column, values) in numeric_columns.iter().zip(&mut numeric_values) {
                // A NaN is as unusable as a missing value.
                values.push(
                    (column.is_valid(i) && column.value(i).is_finite()).then(|| column.value(i)),
                );
            }
            for (column, values) in categorical_columns.iter().zip(&mut categorical_values) {
                values.push(column.is_valid(i).then(|| column.value(i).to_string()));
            }
        }
    }
    out.groups = wanted.attributes.iter().cloned().zip(groups).collect();
    let mut features = modelwatch_drift::FeatureMatrix::new(out.labels.len());
    for (name, values) in numeric.into_iter().zip(numeric_values) {
        features = features.with_numeric(name.clone(), values);
    }
    for (name, values) in categorical.into_iter().zip(categorical_values) {
        features = features.with_categorical(name.clone(), values);
    }
    out.features = features;
    Ok(out)
}

async fn collect_f64(df: datafusion::dataframe::DataFrame) -> Result<Vec<f64>> {
    let mut out = Vec::new();
    for batch in df.collect().await? {
        let column = batch.column(0);
        match column.data_type() {
            datafusion::arrow::datatypes::DataType::Int64 => out.extend(
                column
                    .as_primitive::<Int64Type>()
                    .iter()
                    .flatten()
                    .map(|v| v as f64),
            ),
            _ => out.extend(column.as_primitive::<Float64Type>().iter().flatten()),
        }
    }
    out.retain(|v| v.is_finite());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_layouts_are_matched_by_bytes_and_boundaries() {
        // Rows: [a, b], [a, b], [ab], [b, a], [] — "ab" has the bytes of
        // [a, b] but one key.
        let keys = StringArray::from(vec!["a", "b", "a", "b", "ab", "b", "a"]);
        let lookup: HashMap<&str, usize> = [("a", 0), ("b", 1), ("ab", 2)].into();
        let mut layout = RowLayout::default();
        assert_eq!(layout.slots(&keys, (0, 2), &lookup), [Some(0), Some(1)]);
        assert_eq!(layout.slots(&keys, (2, 4), &lookup), [Some(0), Some(1)]);
        assert_eq!(layout.slots(&keys, (4, 5), &lookup), [Some(2)]);
        assert_eq!(layout.slots(&keys, (5, 7), &lookup), [Some(1), Some(0)]);
        assert_eq!(layout.slots(&keys, (7, 7), &lookup), []);
    }
}

/// The evaluator's [`TelemetryReader`]: DataFusion over the history store
/// (a fresh session per read; the table providers snapshot at scan time).
#[derive(Clone)]
pub struct DataFusionReader {
    history: HistoryStore,
}

impl DataFusionReader {
    pub fn new(history: HistoryStore) -> Self {
        Self { history }
    }

    fn ctx(&self) -> EvalResult<SessionContext> {
        self.history.session_context().map_err(EvalError::telemetry)
    }
}

#[async_trait::async_trait]
impl TelemetryReader for DataFusionReader {
    async fn discover_features(&self, window: &Window) -> EvalResult<FeatureSet> {
        discover_features(&self.ctx()?, window)
            .await
            .map_err(EvalError::telemetry)
    }

    async fn count_rows(&self, window: &Window) -> EvalResult<u64> {
        count_rows(&self.ctx()?, window)
            .await
            .map_err(EvalError::telemetry)
    }

    async fn profile(&self, window: &Window, features: &FeatureSet) -> EvalResult<Profile> {
        profile(&self.ctx()?, window, features)
            .await
            .map_err(EvalError::telemetry)
    }

    async fn outcomes(&self, window: &Window, wanted: &RowColumns) -> EvalResult<OutcomeRows> {
        outcomes(&self.ctx()?, window, wanted)
            .await
            .map_err(EvalError::telemetry)
    }

    async fn metric_series(
        &self,
        traffic: &Traffic,
        metric: &str,
    ) -> EvalResult<Vec<(DateTime<Utc>, f64)>> {
        metric_series(&self.ctx()?, traffic, metric)
            .await
            .map_err(EvalError::telemetry)
    }

    async fn span_series(
        &self,
        traffic: &Traffic,
        metric: &str,
        span_name: Option<&str>,
        bucket: std::time::Duration,
    ) -> EvalResult<Vec<(DateTime<Utc>, f64)>> {
        span_series(&self.ctx()?, traffic, metric, span_name, bucket)
            .await
            .map_err(EvalError::telemetry)
    }

    async fn latencies(
        &self,
        traffic: &Traffic,
        source: &LatencySource,
        span_name: Option<&str>,
    ) -> EvalResult<Vec<f64>> {
        let ctx = self.ctx()?;
        match source {
            LatencySource::Spans => span_latencies(&ctx, traffic, span_name).await,
            LatencySource::Metric { metric } => gauge_values(&ctx, traffic, metric).await,
            LatencySource::Histogram { metric } => histogram_latencies(&ctx, traffic, metric).await,
        }
        .map_err(EvalError::telemetry)
    }

    async fn error_counts(
        &self,
        traffic: &Traffic,
        source: &ErrorSource,
        span_name: Option<&str>,
    ) -> EvalResult<(u64, u64)> {
        let ctx = self.ctx()?;
        match source {
            ErrorSource::Spans => span_errors(&ctx, traffic, span_name).await,
            ErrorSource::Metric {
                errors_metric,
                requests_metric,
            } => {
                async {
                    let errors = counter_increase(&ctx, traffic, errors_metric).await?;
                    let requests = counter_increase(&ctx, traffic, requests_metric).await?;
                    Ok((errors.round() as u64, requests.round() as u64))
                }
                .await
            }
        }
        .map_err(EvalError::telemetry)
    }

    async fn recent_dataset_drift(
        &self,
        key: &EvaluationKey<'_>,
        limit: usize,
    ) -> EvalResult<Vec<bool>> {
        recent_dataset_drift(&self.ctx()?, key, limit)
            .await
            .map_err(EvalError::telemetry)
    }
}

/// Whether each of the newest evaluations of `key`'s version (its own left
/// out) drifted, newest first: `dataset_drift` in `drift_results`, or a
/// drifted row of the same evaluation in `multivariate_drift_results`.
async fn recent_dataset_drift(
    ctx: &SessionContext,
    key: &EvaluationKey<'_>,
    limit: usize,
) -> Result<Vec<bool>> {
    use datafusion::functions_aggregate::expr_fn::{bool_or, max};
    let of_version = |df: datafusion::dataframe::DataFrame| {
        df.filter(
            col("model")
                .eq(lit(key.model))
                .and(col("version").eq(lit(key.version.to_string())))
                .and(col("evaluation_id").not_eq(lit(key.evaluation_id))),
        )
    };
    let batches = of_version(ctx.table(DRIFT_RESULTS).await?)?
        .aggregate(
            vec![col("evaluation_id")],
            vec![
                max(col("ts")).alias("at"),
                bool_or(col("dataset_drift")).alias("drift"),
            ],
        )?
        .sort(vec![col("at").sort(false, false)])?
        .limit(0, Some(limit))?
        .select_columns(&["evaluation_id", "drift"])?
        .collect()
        .await?;
    let mut recent: Vec<(String, bool)> = Vec::new();
    for b in &batches {
        let ids = b.column(0).as_string::<i32>();
        let drift = b.column(1).as_boolean();
        recent.extend((0..drift.len()).map(|i| (ids.value(i).to_string(), drift.value(i))));
    }
    if recent.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<datafusion::prelude::Expr> =
        recent.iter().map(|(id, _)| lit(id.clone())).collect();
    let multivariate = of_version(ctx.table(MULTIVARIATE_DRIFT_RESULTS).await?)?
        .filter(col("drifted").and(col("evaluation_id").in_list(ids, false)))?
        .select_columns(&["evaluation_id"])?
        .collect()
        .await?;
    let mut drifted_together = std::collections::HashSet::new();
    for b in &multivariate {
        let ids = b.column(0).as_string::<i32>();
        drifted_together.extend((0..ids.len()).map(|i| ids.value(i).to_string()));
    }
    Ok(recent
        .into_iter()
        .map(|(id, drift)| drift || drifted_together.contains(&id))
        .collect())
}
