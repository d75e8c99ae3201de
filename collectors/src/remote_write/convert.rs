//! What both message versions decode to (borrowed from the request buffer),
//! and the one path from there to Arrow: validation, the output-size check,
//! then the builders.

use std::borrow::Cow;
use std::ops::Range;

use super::{RemoteWriteBatches, RemoteWriteConfig, RemoteWriteSummary};
use crate::schema::{
    HistogramRow, HistogramsBuilder, LabelPair, SOURCE_REMOTE_WRITE, SampleMeta,
    SeriesSamplesBuilder, SizeHint, is_stale_nan, kind,
};
use crate::{Error, Result};

/// A request as read off the wire: flat vectors shared by all series (a
/// series holds ranges into them), strings borrowed from the buffer.
#[derive(Debug, Default)]
pub(super) struct Parsed<'a> {
    pub series: Vec<RawSeries<'a>>,
    /// (name, value) pairs as sent.
    pub labels: Vec<(&'a str, &'a str)>,
    pub samples: Vec<RawSample>,
    pub histograms: Vec<RawHistogram>,
    pub metadata_ignored: usize,
}

#[derive(Debug)]
pub(super) struct RawSeries<'a> {
    pub labels: Range<usize>,
    pub samples: Range<usize>,
    pub histograms: Range<usize>,
    pub exemplars: usize,
    /// `samples.kind`.
    pub kind: &'static str,
    pub unit: Option<&'a str>,
    /// Milliseconds, 0 = unset.
    pub created_ms: i64,
    /// 2.0 metadata type GAUGEHISTOGRAM.
    pub gauge_histogram: bool,
    /// A 2.0 reference problem found while reading, reported (as
    /// [`Error::InvalidSeries`]) once the whole message is known to be
    /// well-formed.
    pub invalid: Option<String>,
}

impl RawSeries<'_> {
    /// A 1.0 series starting at the current ends of `p`'s vectors.
    pub fn starting_at(p: &Parsed<'_>) -> Self {
        Self {
            labels: p.labels.len()..p.labels.len(),
            samples: p.samples.len()..p.samples.len(),
            histograms: p.histograms.len()..p.histograms.len(),
            exemplars: 0,
            kind: kind::UNTYPED,
            unit: None,
            created_ms: 0,
            gauge_histogram: false,
            invalid: None,
        }
    }

    /// Close the ranges at the current ends of `p`'s vectors.
    pub fn end_at(&mut self, p: &Parsed<'_>) {
        self.labels.end = p.labels.len();
        self.samples.end = p.samples.len();
        self.histograms.end = p.histograms.len();
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct RawSample {
    pub value: f64,
    pub timestamp_ms: i64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Span {
    pub offset: i32,
    pub length: u32,
}

/// A native histogram as sent (the oneofs resolved to their last value, as
/// prost does).
#[derive(Debug, Clone, Default)]
pub(super) struct RawHistogram {
    pub count: f64,
    pub sum: f64,
    pub schema: i32,
    pub zero_threshold: f64,
    pub zero_count: f64,
    pub negative_spans: Vec<Span>,
    pub negative_deltas: Vec<i64>,
    pub negative_counts: Vec<f64>,
    pub positive_spans: Vec<Span>,
    pub positive_deltas: Vec<i64>,
    pub positive_counts: Vec<f64>,
    pub reset_hint: i32,
    pub timestamp_ms: i64,
}

/// A validated series.
struct Series<'a> {
    metric: &'a str,
    /// Range in the validated-label vector.
    labels: Range<usize>,
    model: Option<&'a str>,
    version: Option<&'a str>,
}

const ROW_OVERHEAD: u64 = 96;
const MAX_DENSE_BUCKETS: u64 = 1 << 15;

/// Sort and check one series' labels (in place), push the ones kept to
/// `out`.
fn validate_series<'a>(
    raw: &mut [(&'a str, &'a str)],
    cfg: &RemoteWriteConfig,
    out: &mut Vec<LabelPair<'a>>,
) -> std::result::Result<Series<'a>, String> {
    if raw.iter().any(|(n, _)| n.is_empty()) {
        return Err("empty label name".into());
    }
    if !raw.is_sorted_by(|a, b| a.0 <= b.0) {
        raw.sort_unstable_by(|a, b| a.0.cmp(b.0));
    }
    if let Some(w) = raw.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(format!("duplicate label name {:?}", w[0].0));
    }
    let mut metric = None;
    let mut model = None;
    let mut version = None;
    let start = out.len();
    for &(n, v) in raw.iter() {
        if n == "__name__" {
            metric = Some(v);
        } else if n == cfg.model_label {
            model = Some(v).filter(|v| !v.is_empty());
        } else if n == cfg.version_label {
            version = Some(v).filter(|v| !v.is_empty());
        } else if !v.is_empty() {
            out.push((n, Cow::Borrowed(v)));
        }
    }
    let metric = match metric {
        Some(m) if !m.is_empty() => m,
        _ => return Err("missing or empty __name__ label".into()),
    };
    Ok(Series {
        metric,
        labels: start..out.len(),
        model,
        version,
    })
}

fn ms_to_us(ms: i64) -> std::result::Result<i64, String> {
    ms.checked_mul(1000)
        .ok_or_else(|| format!("timestamp {ms} ms out of range"))
}

/// Expand spans + deltas/counts into a dense (offset, counts) pair.
fn dense_buckets(
    spans: &[Span],
    deltas: &[i64],
    counts: &[f64],
    side: &str,
) -> std::result::Result<Option<(i32, Vec<f64>)>, String> {
    if spans.is_empty() {
        if !deltas.is_empty() || !counts.is_empty() {
            return Err(format!("{side} buckets without spans"));
        }
        return Ok(None);
    }
    if !deltas.is_empty() && !counts.is_empty() {
        return Err(format!("{side} buckets have both deltas and counts"));
    }
    let declared: u64 = spans.iter().map(|s| u64::from(s.length)).sum();
    let given = deltas.len().max(counts.len()) as u64;
    if declared != given {
        return Err(format!(
            "{side} spans declare {declared} buckets but {given} are given"
        ));
    }
    let mut dense_len: u64 = declared;
    for s in &spans[1..] {
        if s.offset < 0 {
            return Err(format!("{side} span has a negative gap {}", s.offset));
        }
        dense_len += s.offset as u64;
    }
    if dense_len > MAX_DENSE_BUCKETS {
        return Err(format!(
            "{side} buckets span {dense_len} indices, over the limit of {MAX_DENSE_BUCKETS}"
        ));
    }
    let mut out = Vec::with_capacity(dense_len as usize);
    let mut running: i64 = 0;
    let mut i = 0usize;
    for (si, s) in spans.iter().enumerate() {
        if si > 0 {
            out.extend(std::iter::repeat_n(0.0, s.offset as usize));
        }
        for _ in 0..s.length {
            let v = if deltas.is_empty() {
                counts[i]
            } else {
                running = running
                    .checked_add(deltas[i])
                    .ok_or_else(|| format!("{side} bucket count overflows"))?;
                if running < 0 {
                    return Err(format!("{side} bucket count is negative"));
                }
                running as f64
            };
            out.push(v);
            i += 1;
        }
    }
    Ok(Some((spans[0].offset, out)))
}

/// The row of a native histogram; `None` when its schema is not base-2
/// exponential (skipped).
fn native_histogram(
    h: &RawHistogram,
    gauge: bool,
    start_ts_us: Option<i64>,
) -> std::result::Result<Option<HistogramRow>, String> {
    if !(-4..=8).contains(&h.schema) {
        return Ok(None);
    }
    let positive = dense_buckets(
        &h.positive_spans,
        &h.positive_deltas,
        &h.positive_counts,
        "positive",
    )?;
    let negative = dense_buckets(
        &h.negative_spans,
        &h.negative_deltas,
        &h.negative_counts,
        "negative",
    )?;
    Ok(Some(HistogramRow {
        ts_us: ms_to_us(h.timestamp_ms)?,
        start_ts_us,
        exponential: true,
        stale: is_stale_nan(h.sum),
        temporality: if gauge || h.reset_hint == 3 {
            None
        } else {
            Some("cumulative")
        },
        count: h.count,
        sum: Some(h.sum),
        min: None,
        max: None,
        bounds: None,
        bucket_counts: None,
        scale: Some(h.schema),
        zero_count: Some(h.zero_count),
        zero_threshold: Some(h.zero_threshold),
        positive,
        negative,
    }))
}

/// Validate every series, check the output size, then build the batches.
pub(super) fn build(mut p: Parsed<'_>, cfg: &RemoteWriteConfig) -> Result<RemoteWriteBatches> {
    let mut summary = RemoteWriteSummary {
        series: p.series.len(),
        metadata_ignored: p.metadata_ignored,
        ..Default::default()
    };
    // Pass 1: validate every series and estimate the output size.
    let mut labels: Vec<LabelPair<'_>> = Vec::with_capacity(p.labels.len());
    let mut series = Vec::with_capacity(p.series.len());
    let mut estimate: u64 = 0;
    // Builder sizes: the series that have samples, and their samples.
    let mut hint = SizeHint::default();
    let mut points = 0;
    for (index, raw) in p.series.iter().enumerate() {
        if let Some(reason) = &raw.invalid {
            return Err(Error::InvalidSeries {
                index,
                reason: reason.clone(),
            });
        }
        let s = validate_series(&mut p.labels[raw.labels.clone()], cfg, &mut labels)
            .map_err(|reason| Error::InvalidSeries { index, reason })?;
        let kept = &labels[s.labels.clone()];
        let key_bytes: usize = kept.iter().map(|l| l.0.len()).sum();
        let value_bytes: usize = kept.iter().map(|l| l.1.len()).sum();
        let row_bytes = ROW_OVERHEAD
            + s.metric.len() as u64
            + s.model.map_or(0, |m| m.len() as u64)
            + s.version.map_or(0, |m| m.len() as u64)
            + raw.unit.map_or(0, |u| u.len() as u64)
            + (key_bytes + value_bytes + 8 * kept.len()) as u64;
        let rows = (raw.samples.len() + raw.histograms.len()) as u64;
        estimate = estimate.saturating_add(row_bytes.saturating_mul(rows));
        if !raw.samples.is_empty() {
            hint.rows += 1;
            hint.metric_bytes += s.metric.len();
            hint.label_entries += kept.len();
            hint.label_key_bytes += key_bytes;
            hint.label_value_bytes += value_bytes;
            hint.model_bytes += s.model.map_or(0, str::len);
            hint.version_bytes += s.version.map_or(0, str::len);
            points += raw.samples.len();
        }
        series.push(s);
    }
    let limit = cfg.max_output_bytes.min(i32::MAX as u64 - 1);
    if estimate > limit {
        return Err(Error::OutputTooLarge {
            estimated: estimate,
            limit,
        });
    }
    // Pass 2: build.
    let mut samples = SeriesSamplesBuilder::with_capacity(&hint, points);
    let mut hists = HistogramsBuilder::new();
    for (index, (raw, s)) in p.series.iter().zip(&series).enumerate() {
        let invalid = |reason| Error::InvalidSeries { index, reason };
        let start_ts_us = match raw.created_ms {
            0 => None,
            ms => Some(ms_to_us(ms).map_err(invalid)?),
        };
        let meta = SampleMeta {
            metric: s.metric,
            kind: raw.kind,
            labels: &labels[s.labels.clone()],
            model: s.model,
            version: s.version,
            temporality: None,
            monotonic: None,
            unit: raw.unit,
            source: SOURCE_REMOTE_WRITE,
        };
        if !raw.samples.is_empty() {
            let id = samples.add_series(&meta)?;
            for sample in &p.samples[raw.samples.clone()] {
                let ts_us = ms_to_us(sample.timestamp_ms).map_err(invalid)?;
                let stale = is_stale_nan(sample.value);
                summary.stale_markers += usize::from(stale);
                samples.append(id, ts_us, start_ts_us, sample.value, stale);
            }
        }
        for h in &p.histograms[raw.histograms.clone()] {
            match native_histogram(h, raw.gauge_histogram, start_ts_us).map_err(invalid)? {
                Some(row) => {
                    hists.append(&meta, &row)?;
                    summary.histograms_without_model += usize::from(s.model.is_none());
                }
                None => summary.native_histograms_skipped += 1,
            }
        }
        summary.exemplars_dropped += raw.exemplars;
        if s.model.is_none() {
            summary.samples_without_model += raw.samples.len();
        }
    }
    summary.samples = samples.len();
    summary.histograms = hists.len();
    Ok(RemoteWriteBatches {
        samples: samples.finish()?,
        histograms: hists.finish()?,
        summary,
    })
}
