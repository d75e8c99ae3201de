//! OTLP metrics → `samples` + `histograms`.
//!
//! - Gauge → `kind = "gauge"`; Sum → `"counter"` when monotonic, `"sum"`
//!   otherwise, with `temporality` (`delta` / `cumulative`, null when
//!   unspecified) and `monotonic` kept. `as_int` values become Float64
//!   (exact up to 2^53).
//! - Histogram → `histograms` (`kind = "explicit"`), ExponentialHistogram →
//!   `histograms` (`kind = "exponential"`).
//! - Summary → `samples` rows like Prometheus: one `summary_quantile` row
//!   per quantile (metric name unchanged, label `quantile` = the quantile
//!   as text, e.g. `0.99`), plus `<name>_sum` (`summary_sum`) and
//!   `<name>_count` (`summary_count`).
//! - Flag `NO_RECORDED_VALUE` → `stale = true` (value = the Prometheus stale
//!   NaN for number points).
//! - Invalid points (rejected, counted, others kept): metric without a name,
//!   `time_unix_nano` 0, number point without a value, histogram bounds not
//!   finite and strictly increasing, `bucket_counts` length ≠ bounds + 1,
//!   bucket counts not adding up to `count`, NaN sum/min/max, exponential
//!   scale outside -10..=20, negative or NaN zero threshold, exponential
//!   counts not adding up to `count`, summary quantile outside [0, 1].
//!   Exemplars are dropped.

use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest,
};
use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogramDataPoint, HistogramDataPoint, Metric, NumberDataPoint, SummaryDataPoint,
    metric, number_data_point,
};
use std::borrow::Cow;

use super::{
    Attrs, Budget, Encoding, OtlpConfig, Rejections, json, ns_to_us, pairs_bytes, request,
    resource_attrs, scope_attrs,
};
use crate::Result;
use crate::schema::{
    HistogramRow, HistogramsBuilder, LabelPair, SOURCE_OTLP, STALE_NAN_BITS, SampleMeta,
    SamplesBuilder, SizeHint, kind,
};
use arrow_array::RecordBatch;

const FLAG_NO_RECORDED_VALUE: u32 = 1;

/// Counts for one decoded metrics request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsSummary {
    /// Data points seen (valid or not).
    pub data_points: u64,
    /// Rows in `samples`.
    pub samples: usize,
    /// Rows in `histograms`.
    pub histograms: usize,
    /// Valid data points with no model (kept, `model` null).
    pub points_without_model: u64,
    /// Rejected points, for `partial_success`.
    pub rejections: Rejections,
}

/// The result of decoding one metrics request.
#[derive(Debug, Clone)]
pub struct MetricsBatches {
    /// Rows for `samples`.
    pub samples: RecordBatch,
    /// Rows for `histograms`.
    pub histograms: RecordBatch,
    /// Counts and rejections.
    pub summary: MetricsSummary,
}

impl MetricsBatches {
    /// The `partial_success` to answer with, `None` when nothing was
    /// rejected.
    pub fn partial_success(&self) -> Option<ExportMetricsPartialSuccess> {
        let r = &self.summary.rejections;
        (r.rejected > 0).then(|| ExportMetricsPartialSuccess {
            rejected_data_points: i64::try_from(r.rejected).unwrap_or(i64::MAX),
            error_message: r.message.clone(),
        })
    }
}

/// Decode an `ExportMetricsServiceRequest` body (protobuf or OTLP/JSON).
pub fn decode_metrics(body: &[u8], encoding: Encoding, cfg: &OtlpConfig) -> Result<MetricsBatches> {
    let req = request(
        body,
        encoding,
        "ExportMetricsServiceRequest",
        json::metrics_request,
    )?;
    decode_metrics_request(&req, cfg)
}

fn temporality(t: i32) -> Option<&'static str> {
    match t {
        1 => Some("delta"),
        2 => Some("cumulative"),
        _ => None,
    }
}

struct Ctx<'c> {
    cfg: &'c OtlpConfig,
    samples: SamplesBuilder,
    hists: HistogramsBuilder,
    summary: MetricsSummary,
    budget: Budget,
}

/// Map an already decoded request (e.g. from tonic) to batches.
pub fn decode_metrics_request(
    req: &ExportMetricsServiceRequest,
    cfg: &OtlpConfig,
) -> Result<MetricsBatches> {
    let mut cx = Ctx {
        cfg,
        samples: SamplesBuilder::with_capacity(&SizeHint::rows(number_points(req))),
        hists: HistogramsBuilder::new(),
        summary: MetricsSummary::default(),
        budget: Budget::new(cfg.max_output_bytes),
    };
    for rm in &req.resource_metrics {
        let res = resource_attrs(rm.resource.as_ref());
        for sm in &rm.scope_metrics {
            let base = scope_attrs(&res, sm.scope.as_ref());
            for m in &sm.metrics {
                metric(&mut cx, &base, m)?;
            }
        }
    }
    cx.summary.samples = cx.samples.len();
    cx.summary.histograms = cx.hists.len();
    Ok(MetricsBatches {
        samples: cx.samples.finish()?,
        histograms: cx.hists.finish()?,
        summary: cx.summary,
    })
}

/// Per point: the attribution and text labels.
struct PointAttrs<'a> {
    model: Option<Cow<'a, str>>,
    version: Option<Cow<'a, str>>,
    labels: Vec<LabelPair<'a>>,
}

fn point_attrs<'a>(
    cx: &mut Ctx<'_>,
    base: &Attrs<'a>,
    attrs: &'a [opentelemetry_proto::tonic::common::v1::KeyValue],
    metric: &str,
) -> Result<PointAttrs<'a>> {
    let (model, version, labels) = super::point_labels(base, attrs, cx.cfg);
    cx.budget.spend(
        pairs_bytes(&labels)
            + metric.len() as u64
            + model.as_ref().map_or(0, |s| s.len() as u64)
            + version.as_ref().map_or(0, |s| s.len() as u64),
    )?;
    if model.is_none() {
        cx.summary.points_without_model += 1;
    }
    Ok(PointAttrs {
        model,
        version,
        labels,
    })
}

/// Rows `samples` will get (before validation), capped so a hostile count
/// cannot pre-allocate much.
fn number_points(req: &ExportMetricsServiceRequest) -> usize {
    let mut n = 0usize;
    for rm in &req.resource_metrics {
        for sm in &rm.scope_metrics {
            for m in &sm.metrics {
                n += match &m.data {
                    Some(metric::Data::Gauge(g)) => g.data_points.len(),
                    Some(metric::Data::Sum(s)) => s.data_points.len(),
                    Some(metric::Data::Summary(s)) => s
                        .data_points
                        .iter()
                        .map(|p| p.quantile_values.len() + 2)
                        .sum(),
                    _ => 0,
                };
            }
        }
    }
    n.min(1 << 16)
}

fn n_points(m: &Metric) -> usize {
    match &m.data {
        None => 0,
        Some(metric::Data::Gauge(g)) => g.data_points.len(),
        Some(metric::Data::Sum(s)) => s.data_points.len(),
        Some(metric::Data::Histogram(h)) => h.data_points.len(),
        Some(metric::Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(metric::Data::Summary(s)) => s.data_points.len(),
    }
}

fn metric<'a>(cx: &mut Ctx<'_>, base: &Attrs<'a>, m: &'a Metric) -> Result<()> {
    let n = n_points(m);
    cx.summary.data_points += n as u64;
    if m.name.is_empty() {
        for _ in 0..n {
            cx.summary
                .rejections
                .reject(|| "metric without a name".to_string());
        }
        return Ok(());
    }
    let unit = (!m.unit.is_empty()).then_some(m.unit.as_str());
    match &m.data {
        None => {}
        Some(metric::Data::Gauge(g)) => {
            for (i, p) in g.data_points.iter().enumerate() {
                number_point(cx, base, m, unit, i, p, kind::GAUGE, None, None)?;
            }
        }
        Some(metric::Data::Sum(s)) => {
            let k = if s.is_monotonic {
                kind::COUNTER
            } else {
                kind::SUM
            };
            for (i, p) in s.data_points.iter().enumerate() {
                number_point(
                    cx,
                    base,
                    m,
                    unit,
                    i,
                    p,
                    k,
                    temporality(s.aggregation_temporality),
                    Some(s.is_monotonic),
                )?;
            }
        }
        Some(metric::Data::Histogram(h)) => {
            let t = temporality(h.aggregation_temporality);
            for (i, p) in h.data_points.iter().enumerate() {
                histogram_point(cx, base, m, unit, i, &p.attributes, explicit_row(p, t))?;
            }
        }
        Some(metric::Data::ExponentialHistogram(h)) => {
            let t = temporality(h.aggregation_temporality);
            for (i, p) in h.data_points.iter().enumerate() {
                histogram_point(cx, base, m, unit, i, &p.attributes, exponential_row(p, t))?;
            }
        }
        Some(metric::Data::Summary(s)) => {
            for (i, p) in s.data_points.iter().enumerate() {
                summary_point(cx, base, m, unit, i, p)?;
            }
        }
    }
    Ok(())
}

fn meta<'a>(
    m: &'a Metric,
    unit: Option<&'a str>,
    pa: &'a PointAttrs<'a>,
    kind: &'static str,
    temporality: Option<&'static str>,
    monotonic: Option<bool>,
) -> SampleMeta<'a> {
    SampleMeta {
        metric: &m.name,
        kind,
        labels: &pa.labels,
        model: pa.model.as_deref(),
        version: pa.version.as_deref(),
        temporality,
        monotonic,
        unit,
        source: SOURCE_OTLP,
    }
}

#[allow(clippy::too_many_arguments)]
fn number_point<'a>(
    cx: &mut Ctx<'_>,
    base: &Attrs<'a>,
    m: &'a Metric,
    unit: Option<&'a str>,
    i: usize,
    p: &'a NumberDataPoint,
    k: &'static str,
    temporality: Option<&'static str>,
    monotonic: Option<bool>,
) -> Result<()> {
    let stale = p.flags & FLAG_NO_RECORDED_VALUE != 0;
    let value = match (p.value, stale) {
        (_, true) => f64::from_bits(STALE_NAN_BITS),
        (Some(number_data_point::Value::AsDouble(d)), false) => d,
        (Some(number_data_point::Value::AsInt(v)), false) => v as f64,
        (None, false) => {
            cx.summary
                .rejections
                .reject(|| format!("metric {:?} point {i}: no value", m.name));
            return Ok(());
        }
    };
    let Some(ts) = ns_to_us(p.time_unix_nano) else {
        cx.summary
            .rejections
            .reject(|| format!("metric {:?} point {i}: time_unix_nano is 0", m.name));
        return Ok(());
    };
    let pa = point_attrs(cx, base, &p.attributes, &m.name)?;
    let meta = meta(m, unit, &pa, k, temporality, monotonic);
    cx.samples
        .append(&meta, ts, ns_to_us(p.start_time_unix_nano), value, stale)
}

fn check_opt(name: &str, v: Option<f64>) -> std::result::Result<(), String> {
    match v {
        Some(x) if x.is_nan() => Err(format!("{name} is NaN")),
        _ => Ok(()),
    }
}

fn explicit_row(
    p: &HistogramDataPoint,
    temporality: Option<&'static str>,
) -> std::result::Result<HistogramRow, String> {
    let mut row = histogram_head(
        (p.time_unix_nano, p.start_time_unix_nano, p.flags),
        (p.count, p.sum, p.min, p.max),
        temporality,
    )?;
    if !row.stale {
        if p.explicit_bounds.iter().any(|b| !b.is_finite()) {
            return Err("explicit bounds must be finite".into());
        }
        if !p.explicit_bounds.windows(2).all(|w| w[0] < w[1]) {
            return Err("explicit bounds must be strictly increasing".into());
        }
        if !p.bucket_counts.is_empty() {
            if p.bucket_counts.len() != p.explicit_bounds.len() + 1 {
                return Err(format!(
                    "{} bucket counts for {} bounds (want bounds + 1)",
                    p.bucket_counts.len(),
                    p.explicit_bounds.len()
                ));
            }
            let total = p
                .bucket_counts
                .iter()
                .try_fold(0u64, |a, &c| a.checked_add(c))
                .ok_or("bucket counts overflow")?;
            if total != p.count {
                return Err(format!(
                    "bucket counts add up to {total}, count is {}",
                    p.count
                ));
            }
        }
    }
    let has_buckets = !p.bucket_counts.is_empty();
    row.bounds = has_buckets.then(|| p.explicit_bounds.clone());
    row.bucket_counts = has_buckets.then(|| p.bucket_counts.iter().map(|&c| c as f64).collect());
    Ok(row)
}

/// The fields and checks explicit and exponential points share: the time
/// (`time_unix_nano` must be set), staleness (`NO_RECORDED_VALUE`), and,
/// for a point that is not stale, no NaN in sum, min or max.
fn histogram_head(
    (time_ns, start_ns, flags): (u64, u64, u32),
    (count, sum, min, max): (u64, Option<f64>, Option<f64>, Option<f64>),
    temporality: Option<&'static str>,
) -> std::result::Result<HistogramRow, String> {
    let ts_us = ns_to_us(time_ns).ok_or("time_unix_nano is 0")?;
    let stale = flags & FLAG_NO_RECORDED_VALUE != 0;
    if !stale {
        check_opt("sum", sum)?;
        check_opt("min", min)?;
        check_opt("max", max)?;
    }
    Ok(HistogramRow {
        ts_us,
        start_ts_us: ns_to_us(start_ns),
        stale,
        temporality,
        count: count as f64,
        sum,
        min,
        max,
        ..Default::default()
    })
}

fn exponential_row(
    p: &ExponentialHistogramDataPoint,
    temporality: Option<&'static str>,
) -> std::result::Result<HistogramRow, String> {
    let mut row = histogram_head(
        (p.time_unix_nano, p.start_time_unix_nano, p.flags),
        (p.count, p.sum, p.min, p.max),
        temporality,
    )?;
    if !row.stale {
        if !(-10..=20).contains(&p.scale) {
            return Err(format!("scale {} outside -10..=20", p.scale));
        }
        if p.zero_threshold.is_nan() || p.zero_threshold < 0.0 {
            return Err("zero threshold must be a non-negative number".into());
        }
        let sum_of = |b: &Option<
            opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets,
        >| {
            b.as_ref().map_or(Some(0u64), |b| {
                b.bucket_counts
                    .iter()
                    .try_fold(0u64, |a, &c| a.checked_add(c))
            })
        };
        let total = sum_of(&p.positive)
            .zip(sum_of(&p.negative))
            .and_then(|(a, b)| a.checked_add(b))
            .and_then(|t| t.checked_add(p.zero_count))
            .ok_or("bucket counts overflow")?;
        if total != p.count {
            return Err(format!(
                "zero count and bucket counts add up to {total}, count is {}",
                p.count
            ));
        }
    }
    let buckets = |b: &Option<
        opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets,
    >| {
        b.as_ref().filter(|b| !b.bucket_counts.is_empty()).map(|b| {
            (
                b.offset,
                b.bucket_counts.iter().map(|&c| c as f64).collect(),
            )
        })
    };
    row.exponential = true;
    row.scale = Some(p.scale);
    row.zero_count = Some(p.zero_count as f64);
    row.zero_threshold = Some(p.zero_threshold);
    row.positive = buckets(&p.positive);
    row.negative = buckets(&p.negative);
    Ok(row)
}

/// Appends one explicit or exponential histogram point already turned into
/// a row, or counts its rejection. Its bucket counts are charged to the
/// decoding budget (16 bytes per explicit bucket with its bound, 8 per
/// exponential bucket).
fn histogram_point<'a>(
    cx: &mut Ctx<'_>,
    base: &Attrs<'a>,
    m: &'a Metric,
    unit: Option<&'a str>,
    i: usize,
    attributes: &'a [opentelemetry_proto::tonic::common::v1::KeyValue],
    row: std::result::Result<HistogramRow, String>,
) -> Result<()> {
    match row {
        Ok(row) => {
            let pa = point_attrs(cx, base, attributes, &m.name)?;
            let explicit = row.bucket_counts.as_ref().map_or(0, |b| b.len());
            let exponential = row.positive.as_ref().map_or(0, |b| b.1.len())
                + row.negative.as_ref().map_or(0, |b| b.1.len());
            cx.budget
                .spend(16 * explicit as u64 + 8 * exponential as u64)?;
            cx.hists
                .append(&meta(m, unit, &pa, "histogram", None, None), &row)?;
        }
        Err(reason) => cx
            .summary
            .rejections
            .reject(|| format!("metric {:?} point {i}: {reason}", m.name)),
    }
    Ok(())
}

fn summary_point<'a>(
    cx: &mut Ctx<'_>,
    base: &Attrs<'a>,
    m: &'a Metric,
    unit: Option<&'a str>,
    i: usize,
    p: &'a SummaryDataPoint,
) -> Result<()> {
    let reject = |cx: &mut Ctx<'_>, reason: &str| {
        cx.summary
            .rejections
            .reject(|| format!("metric {:?} point {i}: {reason}", m.name));
    };
    let Some(ts) = ns_to_us(p.time_unix_nano) else {
        reject(cx, "time_unix_nano is 0");
        return Ok(());
    };
    if let Some(q) = p
        .quantile_values
        .iter()
        .find(|q| !(0.0..=1.0).contains(&q.quantile))
    {
        reject(cx, &format!("quantile {} outside [0, 1]", q.quantile));
        return Ok(());
    }
    let stale = p.flags & FLAG_NO_RECORDED_VALUE != 0;
    let start = ns_to_us(p.start_time_unix_nano);
    let mut pa = point_attrs(cx, base, &p.attributes, &m.name)?;
    // rows: quantiles, _sum, _count
    cx.budget
        .spend((pairs_bytes(&pa.labels) + 32) * (p.quantile_values.len() as u64 + 1))?;
    let v = |x: f64| {
        if stale {
            f64::from_bits(STALE_NAN_BITS)
        } else {
            x
        }
    };
    {
        let sum_name = format!("{}_sum", m.name);
        let count_name = format!("{}_count", m.name);
        let mut mt = meta(m, unit, &pa, kind::SUMMARY_SUM, None, None);
        cx.samples
            .append_with_extra_label(&mt, &sum_name, ts, start, v(p.sum), stale, None)?;
        mt.kind = kind::SUMMARY_COUNT;
        cx.samples.append_with_extra_label(
            &mt,
            &count_name,
            ts,
            start,
            v(p.count as f64),
            stale,
            None,
        )?;
    }
    pa.labels.retain(|(k, _)| *k != "quantile");
    let mt = meta(m, unit, &pa, kind::SUMMARY_QUANTILE, None, None);
    for q in &p.quantile_values {
        let qs = q.quantile.to_string();
        cx.samples.append_with_extra_label(
            &mt,
            &m.name,
            ts,
            start,
            v(q.value),
            stale,
            Some(("quantile", &qs)),
        )?;
    }
    Ok(())
}
