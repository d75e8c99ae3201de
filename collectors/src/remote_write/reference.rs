//! The remote write 1.0 decoder as it was before the borrowed reader:
//! prost's owned types, then the conversion, verbatim. Tests only: the
//! reference the hand-rolled reader is property-tested against.

use std::borrow::Cow;

use prost::Message;

use super::{RemoteWriteBatches, RemoteWriteConfig, RemoteWriteSummary, proto};
use crate::schema::{
    HistogramRow, HistogramsBuilder, LabelPair, SOURCE_REMOTE_WRITE, SampleMeta, SamplesBuilder,
    SizeHint, is_stale_nan, kind,
};
use crate::{Error, Result};

/// Decode an uncompressed `WriteRequest` with prost.
pub(super) fn decode_write_request(
    raw: &[u8],
    cfg: &RemoteWriteConfig,
) -> Result<RemoteWriteBatches> {
    let req = proto::WriteRequest::decode(raw).map_err(|source| Error::Protobuf {
        message: "prometheus.WriteRequest",
        source,
    })?;
    convert(req, cfg)
}

/// A validated series: sorted labels without `__name__` and the attribution
/// labels.
struct Series<'a> {
    metric: &'a str,
    labels: Vec<LabelPair<'a>>,
    model: Option<&'a str>,
    version: Option<&'a str>,
}

const ROW_OVERHEAD: u64 = 96;
const MAX_DENSE_BUCKETS: u64 = 1 << 15;

fn validate_series<'a>(
    ts: &'a proto::TimeSeries,
    cfg: &RemoteWriteConfig,
) -> std::result::Result<Series<'a>, String> {
    let mut labels: Vec<LabelPair<'a>> = ts
        .labels
        .iter()
        .map(|l| (l.name.as_str(), Cow::Borrowed(l.value.as_str())))
        .collect();
    if labels.iter().any(|(n, _)| n.is_empty()) {
        return Err("empty label name".into());
    }
    if !labels.is_sorted_by(|a, b| a.0 <= b.0) {
        labels.sort_unstable_by(|a, b| a.0.cmp(b.0));
    }
    if let Some(w) = labels.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(format!("duplicate label name {:?}", w[0].0));
    }
    let mut metric = None;
    let mut model = None;
    let mut version = None;
    labels.retain(|(n, v)| {
        let Cow::Borrowed(v) = v else { return true };
        if *n == "__name__" {
            metric = Some(*v);
            false
        } else if *n == cfg.model_label {
            model = Some(*v).filter(|v| !v.is_empty());
            false
        } else if *n == cfg.version_label {
            version = Some(*v).filter(|v| !v.is_empty());
            false
        } else {
            !v.is_empty()
        }
    });
    let metric = match metric {
        Some(m) if !m.is_empty() => m,
        _ => return Err("missing or empty __name__ label".into()),
    };
    Ok(Series {
        metric,
        labels,
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
    spans: &[proto::BucketSpan],
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

fn native_histogram(h: &proto::Histogram) -> std::result::Result<Option<HistogramRow>, String> {
    if !(-4..=8).contains(&h.schema) {
        return Ok(None);
    }
    let count = match h.count {
        Some(proto::histogram::Count::CountInt(c)) => c as f64,
        Some(proto::histogram::Count::CountFloat(c)) => c,
        None => 0.0,
    };
    let zero_count = match h.zero_count {
        Some(proto::histogram::ZeroCount::ZeroCountInt(c)) => c as f64,
        Some(proto::histogram::ZeroCount::ZeroCountFloat(c)) => c,
        None => 0.0,
    };
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
        ts_us: ms_to_us(h.timestamp)?,
        start_ts_us: None,
        exponential: true,
        stale: is_stale_nan(h.sum),
        temporality: if h.reset_hint == 3 {
            None
        } else {
            Some("cumulative")
        },
        count,
        sum: Some(h.sum),
        min: None,
        max: None,
        bounds: None,
        bucket_counts: None,
        scale: Some(h.schema),
        zero_count: Some(zero_count),
        zero_threshold: Some(h.zero_threshold),
        positive,
        negative,
    }))
}

fn convert(req: proto::WriteRequest, cfg: &RemoteWriteConfig) -> Result<RemoteWriteBatches> {
    let mut summary = RemoteWriteSummary {
        series: req.timeseries.len(),
        metadata_ignored: req.metadata.len(),
        ..Default::default()
    };
    // Pass 1: validate every series and estimate the output size.
    let mut series = Vec::with_capacity(req.timeseries.len());
    let mut estimate: u64 = 0;
    let mut hint = SizeHint::default();
    for (index, ts) in req.timeseries.iter().enumerate() {
        let s =
            validate_series(ts, cfg).map_err(|reason| Error::InvalidSeries { index, reason })?;
        let row_bytes = ROW_OVERHEAD
            + s.metric.len() as u64
            + s.model.map_or(0, |m| m.len() as u64)
            + s.version.map_or(0, |m| m.len() as u64)
            + s.labels
                .iter()
                .map(|(k, v)| (k.len() + v.len() + 8) as u64)
                .sum::<u64>();
        let rows = (ts.samples.len() + ts.histograms.len()) as u64;
        estimate = estimate.saturating_add(row_bytes.saturating_mul(rows));
        let n = ts.samples.len();
        hint.rows += n;
        hint.metric_bytes += n * s.metric.len();
        hint.label_entries += n * s.labels.len();
        hint.label_key_bytes += n * s.labels.iter().map(|l| l.0.len()).sum::<usize>();
        hint.label_value_bytes += n * s.labels.iter().map(|l| l.1.len()).sum::<usize>();
        hint.model_bytes += n * s.model.map_or(0, str::len);
        hint.version_bytes += n * s.version.map_or(0, str::len);
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
    let mut samples = SamplesBuilder::with_capacity(&hint);
    let mut hists = HistogramsBuilder::new();
    for (index, (ts, s)) in req.timeseries.iter().zip(&series).enumerate() {
        let meta = SampleMeta {
            metric: s.metric,
            kind: kind::UNTYPED,
            labels: &s.labels,
            model: s.model,
            version: s.version,
            temporality: None,
            monotonic: None,
            unit: None,
            source: SOURCE_REMOTE_WRITE,
        };
        for sample in &ts.samples {
            let ts_us = ms_to_us(sample.timestamp)
                .map_err(|reason| Error::InvalidSeries { index, reason })?;
            let stale = is_stale_nan(sample.value);
            summary.stale_markers += usize::from(stale);
            samples.append(&meta, ts_us, None, sample.value, stale)?;
        }
        for h in &ts.histograms {
            match native_histogram(h).map_err(|reason| Error::InvalidSeries { index, reason })? {
                Some(row) => {
                    hists.append(&meta, &row)?;
                    summary.histograms_without_model += usize::from(s.model.is_none());
                }
                None => summary.native_histograms_skipped += 1,
            }
        }
        summary.exemplars_dropped += ts.exemplars.len();
        if s.model.is_none() {
            summary.samples_without_model += ts.samples.len();
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
