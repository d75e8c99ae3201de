//! Prometheus remote write 1.0: snappy block format + `prometheus.WriteRequest`
//! protobuf → a `samples` batch (and a `histograms` batch for native
//! histograms).
//!
//! Decisions (copy into ARCHITECTURE.md):
//! - All or nothing: the first invalid series rejects the whole request
//!   with [`Error::InvalidSeries`] naming its index (→ 400).
//! - Labels may arrive unsorted (sorted here); an empty label name, a
//!   duplicate name, or a missing/empty `__name__` is invalid. A label with
//!   an empty value is dropped (Prometheus: empty value = no label).
//! - `__name__` becomes `metric`; the attribution labels (`model`,
//!   `model_version` by default, see [`RemoteWriteConfig`]) become `model` /
//!   `version`; none of the three is repeated in `labels`.
//! - Every sample is `kind = "untyped"`: remote write 1.0 has no per-sample
//!   type (metadata arrives in separate requests and is ignored). Classic
//!   histogram `_bucket`/`_sum`/`_count` and summary series are ordinary
//!   samples.
//! - The staleness marker (NaN with bits `0x7ff0000000000002`) is a row with
//!   `stale = true` and the exact NaN bits in `value`; any other NaN is an
//!   ordinary value with `stale = false`.
//! - Native histograms with a base-2 schema (-4..=8) go to `histograms`
//!   (`kind = "exponential"`); other schemas (custom buckets) are skipped and
//!   counted in [`RemoteWriteSummary::native_histograms_skipped`].
//!   Exemplars are counted and dropped.

use std::borrow::Cow;

use prost::Message;

use crate::schema::{
    HistogramRow, HistogramsBuilder, LabelPair, SOURCE_REMOTE_WRITE, SampleMeta, SamplesBuilder,
    SizeHint, is_stale_nan, kind,
};
use crate::{Error, Result};
use arrow_array::RecordBatch;

/// The `Content-Type` of remote write 2.0, answered with 415.
pub const CONTENT_TYPE_V2: &str = "application/x-protobuf;proto=io.prometheus.write.v2.Request";

/// Hand-written prost types for `prompb/remote.proto` and `prompb/types.proto`
/// (Prometheus, remote write 1.0). Field numbers as upstream.
pub mod proto {
    /// `prometheus.WriteRequest`. Field 2 is reserved upstream (Cortex).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct WriteRequest {
        /// Field 1.
        #[prost(message, repeated, tag = "1")]
        pub timeseries: Vec<TimeSeries>,
        /// Field 3.
        #[prost(message, repeated, tag = "3")]
        pub metadata: Vec<MetricMetadata>,
    }

    /// `prometheus.MetricMetadata`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MetricMetadata {
        /// `MetricType` enum (0 unknown, 1 counter, 2 gauge, 3 histogram,
        /// 4 gaugehistogram, 5 summary, 6 info, 7 stateset).
        #[prost(int32, tag = "1")]
        pub r#type: i32,
        /// Field 2.
        #[prost(string, tag = "2")]
        pub metric_family_name: String,
        /// Field 4.
        #[prost(string, tag = "4")]
        pub help: String,
        /// Field 5.
        #[prost(string, tag = "5")]
        pub unit: String,
    }

    /// `prometheus.TimeSeries`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TimeSeries {
        /// Field 1: sorted, unique, non-empty names (by the spec).
        #[prost(message, repeated, tag = "1")]
        pub labels: Vec<Label>,
        /// Field 2.
        #[prost(message, repeated, tag = "2")]
        pub samples: Vec<Sample>,
        /// Field 3.
        #[prost(message, repeated, tag = "3")]
        pub exemplars: Vec<Exemplar>,
        /// Field 4: native histograms.
        #[prost(message, repeated, tag = "4")]
        pub histograms: Vec<Histogram>,
    }

    /// `prometheus.Label`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Label {
        /// Field 1.
        #[prost(string, tag = "1")]
        pub name: String,
        /// Field 2.
        #[prost(string, tag = "2")]
        pub value: String,
    }

    /// `prometheus.Sample`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        /// Field 1.
        #[prost(double, tag = "1")]
        pub value: f64,
        /// Field 2: milliseconds since the epoch.
        #[prost(int64, tag = "2")]
        pub timestamp: i64,
    }

    /// `prometheus.Exemplar`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Exemplar {
        /// Field 1.
        #[prost(message, repeated, tag = "1")]
        pub labels: Vec<Label>,
        /// Field 2.
        #[prost(double, tag = "2")]
        pub value: f64,
        /// Field 3: milliseconds.
        #[prost(int64, tag = "3")]
        pub timestamp: i64,
    }

    /// `prometheus.Histogram` (native histogram, integer or float).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Histogram {
        /// Fields 1 (`count_int`) / 2 (`count_float`).
        #[prost(oneof = "histogram::Count", tags = "1, 2")]
        pub count: Option<histogram::Count>,
        /// Field 3.
        #[prost(double, tag = "3")]
        pub sum: f64,
        /// Field 4.
        #[prost(sint32, tag = "4")]
        pub schema: i32,
        /// Field 5.
        #[prost(double, tag = "5")]
        pub zero_threshold: f64,
        /// Fields 6 (`zero_count_int`) / 7 (`zero_count_float`).
        #[prost(oneof = "histogram::ZeroCount", tags = "6, 7")]
        pub zero_count: Option<histogram::ZeroCount>,
        /// Field 8.
        #[prost(message, repeated, tag = "8")]
        pub negative_spans: Vec<BucketSpan>,
        /// Field 9.
        #[prost(sint64, repeated, tag = "9")]
        pub negative_deltas: Vec<i64>,
        /// Field 10.
        #[prost(double, repeated, tag = "10")]
        pub negative_counts: Vec<f64>,
        /// Field 11.
        #[prost(message, repeated, tag = "11")]
        pub positive_spans: Vec<BucketSpan>,
        /// Field 12.
        #[prost(sint64, repeated, tag = "12")]
        pub positive_deltas: Vec<i64>,
        /// Field 13.
        #[prost(double, repeated, tag = "13")]
        pub positive_counts: Vec<f64>,
        /// Field 14: `ResetHint` (0 unknown, 1 yes, 2 no, 3 gauge).
        #[prost(int32, tag = "14")]
        pub reset_hint: i32,
        /// Field 15: milliseconds.
        #[prost(int64, tag = "15")]
        pub timestamp: i64,
    }

    /// Oneofs of [`Histogram`].
    pub mod histogram {
        /// Observation count.
        #[derive(Clone, Copy, PartialEq, prost::Oneof)]
        pub enum Count {
            /// Field 1.
            #[prost(uint64, tag = "1")]
            CountInt(u64),
            /// Field 2.
            #[prost(double, tag = "2")]
            CountFloat(f64),
        }
        /// Zero-bucket count.
        #[derive(Clone, Copy, PartialEq, prost::Oneof)]
        pub enum ZeroCount {
            /// Field 6.
            #[prost(uint64, tag = "6")]
            ZeroCountInt(u64),
            /// Field 7.
            #[prost(double, tag = "7")]
            ZeroCountFloat(f64),
        }
    }

    /// `prometheus.BucketSpan`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct BucketSpan {
        /// Field 1: gap to the previous span (start index for the first).
        #[prost(sint32, tag = "1")]
        pub offset: i32,
        /// Field 2.
        #[prost(uint32, tag = "2")]
        pub length: u32,
    }
}

/// Remote-write decoding options.
#[derive(Debug, Clone)]
pub struct RemoteWriteConfig {
    /// Label naming the model (default `model`).
    pub model_label: String,
    /// Label naming the model version (default `model_version`).
    pub version_label: String,
    /// Largest accepted (compressed) body (default 32 MiB).
    pub max_body_bytes: usize,
    /// Largest accepted decompressed length, checked against the snappy
    /// header before allocating (default 64 MiB).
    pub max_decompressed_bytes: usize,
    /// Largest estimated size of the produced rows (labels are repeated on
    /// every row, so a small body can expand a lot; default 1 GiB, never
    /// more than 2 GiB - 1 whatever is configured, Arrow's i32 offsets).
    pub max_output_bytes: u64,
}

impl Default for RemoteWriteConfig {
    fn default() -> Self {
        Self {
            model_label: "model".into(),
            version_label: "model_version".into(),
            max_body_bytes: 32 << 20,
            max_decompressed_bytes: 64 << 20,
            max_output_bytes: 1 << 30,
        }
    }
}

/// Counts for one decoded request (for logs and the daemon's metrics).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteWriteSummary {
    /// Time series in the request.
    pub series: usize,
    /// Rows in `samples`.
    pub samples: usize,
    /// Rows in `histograms` (native histograms).
    pub histograms: usize,
    /// `samples` rows with no model label (kept, `model` null).
    pub samples_without_model: usize,
    /// `histograms` rows with no model label (kept, `model` null).
    pub histograms_without_model: usize,
    /// `samples` rows that are staleness markers.
    pub stale_markers: usize,
    /// Exemplars dropped (not stored).
    pub exemplars_dropped: usize,
    /// Native histograms skipped (schema outside -4..=8).
    pub native_histograms_skipped: usize,
    /// Metadata entries ignored.
    pub metadata_ignored: usize,
}

/// The result of decoding one request.
#[derive(Debug, Clone)]
pub struct RemoteWriteBatches {
    /// Rows for the `samples` table (schema [`crate::samples_schema`]).
    pub samples: RecordBatch,
    /// Rows for the `histograms` table (schema [`crate::histograms_schema`]),
    /// often empty.
    pub histograms: RecordBatch,
    /// Counts.
    pub summary: RemoteWriteSummary,
}

/// Check the request headers of a remote write: `Content-Type`,
/// `Content-Encoding` and `X-Prometheus-Remote-Write-Version` (each `None`
/// when absent).
///
/// Accepted: `application/x-protobuf` with no `proto` parameter or
/// `proto=prometheus.WriteRequest`, or no content type at all (very old
/// senders); encoding `snappy` or absent; version absent, `0.1.x` or `1.x`.
/// Anything else, notably remote write 2.0
/// ([`CONTENT_TYPE_V2`]), is [`Error::UnsupportedMediaType`] (→ 415).
pub fn check_remote_write_headers(
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    version: Option<&str>,
) -> Result<()> {
    let mut explicit_v1 = false;
    if let Some(ct) = content_type {
        let mut parts = ct.split(';');
        let media = parts.next().unwrap_or("").trim();
        if !media.eq_ignore_ascii_case("application/x-protobuf") {
            return Err(Error::UnsupportedMediaType(format!(
                "content type {ct:?}; remote write 1.0 requires application/x-protobuf"
            )));
        }
        for p in parts {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let (k, v) = (k.trim(), v.trim().trim_matches('"'));
            if k.eq_ignore_ascii_case("proto") {
                if v == "prometheus.WriteRequest" {
                    explicit_v1 = true;
                } else if v == "io.prometheus.write.v2.Request" {
                    return Err(Error::UnsupportedMediaType(
                        "remote write 2.0 (io.prometheus.write.v2.Request) is not supported; \
                         configure protobuf_message: prometheus.WriteRequest"
                            .into(),
                    ));
                } else {
                    return Err(Error::UnsupportedMediaType(format!(
                        "unknown protobuf message {v:?}"
                    )));
                }
            }
        }
    }
    if let Some(enc) = content_encoding
        && !enc.trim().eq_ignore_ascii_case("snappy")
    {
        return Err(Error::UnsupportedMediaType(format!(
            "content encoding {enc:?}; remote write requires snappy"
        )));
    }
    if let Some(v) = version {
        let v = v.trim();
        let ok = v.starts_with("0.1") || v.starts_with("1.") || v == "1";
        if !ok && !explicit_v1 {
            return Err(Error::UnsupportedMediaType(format!(
                "remote write protocol version {v:?} is not supported (1.0 only)"
            )));
        }
    }
    Ok(())
}

const FRAMED_SNAPPY_MAGIC: &[u8] = b"\xff\x06\x00\x00sNaPpY";

fn read_uvarint(b: &[u8]) -> Option<u64> {
    let mut v: u64 = 0;
    for (i, &byte) in b.iter().take(10).enumerate() {
        v |= u64::from(byte & 0x7f).checked_shl(7 * i as u32)?;
        if byte < 0x80 {
            return Some(v);
        }
    }
    None
}

/// Decompress a snappy **block**-format body, refusing a declared
/// decompressed length over `limit` before allocating anything.
pub fn decompress_snappy(body: &[u8], limit: usize) -> Result<Vec<u8>> {
    if body.starts_with(FRAMED_SNAPPY_MAGIC) {
        return Err(Error::SnappyFramed);
    }
    // The block format starts with the decompressed length as a varint:
    // read it ourselves so that any declared length (even one snap itself
    // refuses, over 4 GiB) over the limit is "too large", not "invalid".
    let declared = read_uvarint(body)
        .ok_or_else(|| Error::Snappy("invalid decompressed-length header".into()))?;
    if declared > limit as u64 {
        return Err(Error::DecompressedTooLarge { declared, limit });
    }
    // Snappy cannot expand more than 64 bytes per 2-byte copy element: a
    // declared length beyond that is a lie, refused before allocating.
    if declared > (body.len() as u64).saturating_mul(32).saturating_add(64) {
        return Err(Error::Snappy(format!(
            "declared decompressed length {declared} is impossible for a {}-byte body",
            body.len()
        )));
    }
    let declared = snap::raw::decompress_len(body).map_err(|e| Error::Snappy(e.to_string()))?;
    let mut out = vec![0u8; declared];
    let n = snap::raw::Decoder::new()
        .decompress(body, &mut out)
        .map_err(|e| Error::Snappy(e.to_string()))?;
    out.truncate(n);
    Ok(out)
}

/// Decode one remote write request body (snappy block-compressed
/// `WriteRequest`) into batches. Headers are checked separately with
/// [`check_remote_write_headers`].
pub fn decode_remote_write(body: &[u8], cfg: &RemoteWriteConfig) -> Result<RemoteWriteBatches> {
    if body.len() > cfg.max_body_bytes {
        return Err(Error::BodyTooLarge {
            size: body.len(),
            limit: cfg.max_body_bytes,
        });
    }
    let raw = decompress_snappy(body, cfg.max_decompressed_bytes)?;
    decode_write_request(&raw, cfg)
}

/// Decode an uncompressed `WriteRequest` protobuf into batches.
pub fn decode_write_request(raw: &[u8], cfg: &RemoteWriteConfig) -> Result<RemoteWriteBatches> {
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

#[cfg(test)]
mod tests {
    use super::proto::*;
    use super::*;
    use crate::ErrorClass;
    use crate::test_support::{column, map_row};
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, TimestampMicrosecondType};

    fn label(n: &str, v: &str) -> Label {
        Label {
            name: n.into(),
            value: v.into(),
        }
    }

    fn series(labels: &[(&str, &str)], samples: &[(f64, i64)]) -> TimeSeries {
        TimeSeries {
            labels: labels.iter().map(|(n, v)| label(n, v)).collect(),
            samples: samples
                .iter()
                .map(|&(value, timestamp)| Sample { value, timestamp })
                .collect(),
            ..Default::default()
        }
    }

    fn body(req: &WriteRequest) -> Vec<u8> {
        snap::raw::Encoder::new()
            .compress_vec(&req.encode_to_vec())
            .unwrap()
    }

    fn decode(req: &WriteRequest) -> Result<RemoteWriteBatches> {
        decode_remote_write(&body(req), &RemoteWriteConfig::default())
    }

    #[test]
    fn round_trip_with_unsorted_labels_stale_markers_and_missing_model() {
        let stale = f64::from_bits(crate::schema::STALE_NAN_BITS);
        let req = WriteRequest {
            timeseries: vec![
                // unsorted on purpose
                series(
                    &[
                        ("model_version", "3"),
                        ("instance", "a:9000"),
                        ("__name__", "latency_seconds"),
                        ("model", "fraud"),
                        ("job", "serve"),
                    ],
                    &[(0.25, 1_700_000_000_123), (stale, 1_700_000_015_000)],
                ),
                series(
                    &[("__name__", "up"), ("job", "node"), ("empty", "")],
                    &[(f64::NAN, 1_700_000_000_000)],
                ),
            ],
            metadata: vec![MetricMetadata::default()],
        };
        let out = decode(&req).unwrap();
        let b = &out.samples;
        assert_eq!(b.schema(), crate::samples_schema());
        assert_eq!(b.num_rows(), 3);
        let metric = column(b, "metric").as_string::<i32>();
        assert_eq!(metric.value(0), "latency_seconds");
        assert_eq!(metric.value(2), "up");
        let ts = column(b, "ts").as_primitive::<TimestampMicrosecondType>();
        assert_eq!(ts.value(0), 1_700_000_000_123_000);
        let value = column(b, "value").as_primitive::<Float64Type>();
        assert_eq!(value.value(0), 0.25);
        assert_eq!(value.value(1).to_bits(), crate::schema::STALE_NAN_BITS);
        assert!(value.value(2).is_nan());
        let st = column(b, "stale").as_boolean();
        assert_eq!(
            (st.value(0), st.value(1), st.value(2)),
            (false, true, false)
        );
        let model = column(b, "model").as_string::<i32>();
        let version = column(b, "version").as_string::<i32>();
        assert_eq!(model.value(0), "fraud");
        assert_eq!(version.value(1), "3");
        assert!(model.is_null(2) && version.is_null(2));
        assert_eq!(
            map_row(b, "labels", 0),
            vec![
                ("instance".to_string(), "a:9000".to_string()),
                ("job".to_string(), "serve".to_string())
            ]
        );
        assert_eq!(map_row(b, "labels", 2), vec![("job".into(), "node".into())]);
        let kind = column(b, "kind").as_string::<i32>();
        assert_eq!(kind.value(0), "untyped");
        let source = column(b, "source").as_string::<i32>();
        assert_eq!(source.value(0), crate::schema::SOURCE_REMOTE_WRITE);
        assert_eq!(
            out.summary,
            RemoteWriteSummary {
                series: 2,
                samples: 3,
                samples_without_model: 1,
                stale_markers: 1,
                metadata_ignored: 1,
                ..Default::default()
            }
        );
        assert_eq!(out.histograms.num_rows(), 0);
    }

    #[test]
    fn configurable_attribution_labels() {
        let cfg = RemoteWriteConfig {
            model_label: "svc_model".into(),
            version_label: "svc_version".into(),
            ..Default::default()
        };
        let req = WriteRequest {
            timeseries: vec![series(
                &[
                    ("__name__", "x"),
                    ("svc_model", "m"),
                    ("svc_version", "v1.2"),
                    ("model", "stays-a-label"),
                ],
                &[(1.0, 1)],
            )],
            ..Default::default()
        };
        let out = decode_remote_write(&body(&req), &cfg).unwrap();
        let b = &out.samples;
        assert_eq!(column(b, "model").as_string::<i32>().value(0), "m");
        assert_eq!(column(b, "version").as_string::<i32>().value(0), "v1.2");
        assert_eq!(
            map_row(b, "labels", 0),
            vec![("model".into(), "stays-a-label".into())]
        );
    }

    #[test]
    fn bucket_series_stay_samples() {
        let req = WriteRequest {
            timeseries: vec![series(
                &[("__name__", "req_bucket"), ("le", "+Inf"), ("model", "m")],
                &[(10.0, 5)],
            )],
            ..Default::default()
        };
        let out = decode(&req).unwrap();
        assert_eq!(out.samples.num_rows(), 1);
        assert_eq!(out.histograms.num_rows(), 0);
    }

    fn class_of(body: &[u8]) -> (ErrorClass, String) {
        let e = decode_remote_write(body, &RemoteWriteConfig::default()).unwrap_err();
        (e.class(), e.to_string())
    }

    fn valid_request() -> WriteRequest {
        WriteRequest {
            timeseries: (0..20)
                .map(|i| {
                    series(
                        &[("__name__", "m"), ("i", &i.to_string())],
                        &[(i as f64, 1000 + i)],
                    )
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn truncated_bodies_are_bad_requests() {
        let full = body(&valid_request());
        for cut in [1, full.len() / 2, full.len() - 1] {
            let (c, msg) = class_of(&full[..cut]);
            assert_eq!(c, ErrorClass::BadRequest, "{msg}");
        }
        // valid snappy around a truncated protobuf
        let pb = valid_request().encode_to_vec();
        let cut = snap::raw::Encoder::new()
            .compress_vec(&pb[..pb.len() - 3])
            .unwrap();
        let (c, msg) = class_of(&cut);
        assert_eq!(c, ErrorClass::BadRequest);
        assert!(msg.contains("protobuf"), "{msg}");
    }

    #[test]
    fn garbage_is_a_bad_request() {
        let (c, _) = class_of(b"\x13hello, this is not snappy at all");
        assert_eq!(c, ErrorClass::BadRequest);
        let (c, _) = class_of(&[0x80; 3]);
        assert_eq!(c, ErrorClass::BadRequest);
        let (c, _) = class_of(b"");
        // empty body: zero-length varint missing → snappy error
        assert_eq!(c, ErrorClass::BadRequest);
    }

    #[test]
    fn huge_declared_length_is_too_large_before_allocating() {
        // varint for 1 TiB, then junk
        let mut b = Vec::new();
        let mut n: u64 = 1 << 40;
        while n >= 0x80 {
            b.push((n as u8) | 0x80);
            n >>= 7;
        }
        b.push(n as u8);
        b.extend_from_slice(b"abc");
        let e = decode_remote_write(&b, &RemoteWriteConfig::default()).unwrap_err();
        assert_eq!(e.class(), ErrorClass::PayloadTooLarge);
        assert_eq!(e.http_status(), 413);
        assert!(matches!(e, Error::DecompressedTooLarge { .. }));

        let cfg = RemoteWriteConfig {
            max_decompressed_bytes: 10,
            ..Default::default()
        };
        let e = decode_remote_write(&body(&valid_request()), &cfg).unwrap_err();
        assert_eq!(e.class(), ErrorClass::PayloadTooLarge);

        let cfg = RemoteWriteConfig {
            max_body_bytes: 10,
            ..Default::default()
        };
        let e = decode_remote_write(&body(&valid_request()), &cfg).unwrap_err();
        assert!(matches!(e, Error::BodyTooLarge { .. }));
    }

    #[test]
    fn output_expansion_is_bounded() {
        let cfg = RemoteWriteConfig {
            max_output_bytes: 1000,
            ..Default::default()
        };
        let e = decode_remote_write(&body(&valid_request()), &cfg).unwrap_err();
        assert!(matches!(e, Error::OutputTooLarge { .. }), "{e}");
        assert_eq!(e.class(), ErrorClass::PayloadTooLarge);
    }

    #[test]
    fn impossible_declared_length_under_the_limit_is_a_bad_request() {
        // declares 1 MiB (under the 64 MiB limit) in a 5-byte body
        let e = decode_remote_write(&[0x80, 0x80, 0x40, 0, 0], &RemoteWriteConfig::default())
            .unwrap_err();
        assert!(matches!(e, Error::Snappy(_)), "{e}");
        // the best real compression stays accepted: 1 MiB of zeros
        let zeros = snap::raw::Encoder::new()
            .compress_vec(&[0u8; 1 << 20])
            .unwrap();
        assert!(decompress_snappy(&zeros, 64 << 20).is_ok());
    }

    #[test]
    fn framed_snappy_is_a_bad_request() {
        use std::io::Write;
        let mut w = snap::write::FrameEncoder::new(Vec::new());
        w.write_all(&valid_request().encode_to_vec()).unwrap();
        let framed = w.into_inner().unwrap();
        let e = decode_remote_write(&framed, &RemoteWriteConfig::default()).unwrap_err();
        assert!(matches!(e, Error::SnappyFramed), "{e}");
        assert_eq!(e.class(), ErrorClass::BadRequest);
    }

    #[test]
    fn uncompressed_protobuf_sent_as_snappy_is_a_bad_request() {
        let (c, msg) = class_of(&valid_request().encode_to_vec());
        assert_eq!(c, ErrorClass::BadRequest, "{msg}");
    }

    #[test]
    fn invalid_series_reject_the_whole_request_with_their_index() {
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (vec![("__name__", "m"), ("", "x")], "empty label name"),
            (vec![("__name__", "m"), ("a", "1"), ("a", "2")], "duplicate"),
            (vec![("job", "x")], "__name__"),
            (vec![("__name__", "")], "__name__"),
        ];
        for (labels, want) in cases {
            let mut req = valid_request();
            req.timeseries.insert(7, series(&labels, &[(1.0, 1)]));
            let e = decode(&req).unwrap_err();
            match &e {
                Error::InvalidSeries { index, reason } => {
                    assert_eq!(*index, 7);
                    assert!(reason.contains(want), "{reason}");
                }
                other => panic!("unexpected {other}"),
            }
            assert_eq!(e.class(), ErrorClass::BadRequest);
        }
        // timestamp overflow
        let mut req = valid_request();
        req.timeseries[3].samples[0].timestamp = i64::MAX;
        assert!(matches!(
            decode(&req).unwrap_err(),
            Error::InvalidSeries { index: 3, .. }
        ));
    }

    #[test]
    fn headers() {
        let ok = |ct, enc, v| check_remote_write_headers(ct, enc, v).is_ok();
        let class = |ct, enc, v| check_remote_write_headers(ct, enc, v).unwrap_err().class();
        assert!(ok(
            Some("application/x-protobuf"),
            Some("snappy"),
            Some("0.1.0")
        ));
        assert!(ok(
            Some("application/x-protobuf;proto=prometheus.WriteRequest"),
            Some("snappy"),
            None
        ));
        assert!(ok(None, None, None));
        assert_eq!(
            class(Some(CONTENT_TYPE_V2), Some("snappy"), Some("2.0.0")),
            ErrorClass::UnsupportedMediaType
        );
        assert_eq!(
            class(
                Some("application/x-protobuf; proto=io.prometheus.write.v2.Request"),
                None,
                None
            ),
            ErrorClass::UnsupportedMediaType
        );
        assert_eq!(
            class(Some("application/json"), Some("snappy"), None),
            ErrorClass::UnsupportedMediaType
        );
        assert_eq!(
            class(Some("application/x-protobuf"), Some("gzip"), None),
            ErrorClass::UnsupportedMediaType
        );
        assert_eq!(
            class(Some("application/x-protobuf"), None, Some("2.0.0")),
            ErrorClass::UnsupportedMediaType
        );
        assert_eq!(
            check_remote_write_headers(Some("text/plain"), None, None)
                .unwrap_err()
                .http_status(),
            415
        );
    }

    #[test]
    fn native_histograms_go_to_the_histograms_batch() {
        let mut ts = series(
            &[("__name__", "lat"), ("model", "m"), ("model_version", "1")],
            &[],
        );
        ts.histograms.push(Histogram {
            count: Some(histogram::Count::CountInt(6)),
            sum: 12.5,
            schema: 0,
            zero_threshold: 1e-128,
            zero_count: Some(histogram::ZeroCount::ZeroCountInt(1)),
            positive_spans: vec![
                BucketSpan {
                    offset: -1,
                    length: 2,
                },
                BucketSpan {
                    offset: 2,
                    length: 1,
                },
            ],
            // absolute counts 2, 1, (0, 0), 2
            positive_deltas: vec![2, -1, 1],
            timestamp: 1_000,
            ..Default::default()
        });
        // custom-bucket schema: skipped and counted
        ts.histograms.push(Histogram {
            schema: -53,
            ..Default::default()
        });
        ts.exemplars.push(Exemplar::default());
        let out = decode(&WriteRequest {
            timeseries: vec![ts],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(out.summary.histograms, 1);
        assert_eq!(out.summary.native_histograms_skipped, 1);
        assert_eq!(out.summary.exemplars_dropped, 1);
        let h = &out.histograms;
        assert_eq!(h.schema(), crate::histograms_schema());
        assert_eq!(
            h.column_by_name("positive_offset")
                .unwrap()
                .as_primitive::<arrow_array::types::Int32Type>()
                .value(0),
            -1
        );
        let pc = h
            .column_by_name("positive_counts")
            .unwrap()
            .as_list::<i32>();
        let row = pc.value(0);
        let row = row.as_primitive::<Float64Type>();
        assert_eq!(row.values().to_vec(), vec![2.0, 1.0, 0.0, 0.0, 2.0]);
        assert!(h.column_by_name("negative_counts").unwrap().is_null(0));
        assert_eq!(
            column(h, "count").as_primitive::<Float64Type>().value(0),
            6.0
        );

        // spans disagreeing with the deltas: invalid series
        let mut bad = series(&[("__name__", "lat")], &[]);
        bad.histograms.push(Histogram {
            positive_spans: vec![BucketSpan {
                offset: 0,
                length: 3,
            }],
            positive_deltas: vec![1],
            ..Default::default()
        });
        let e = decode(&WriteRequest {
            timeseries: vec![bad],
            ..Default::default()
        })
        .unwrap_err();
        assert!(matches!(e, Error::InvalidSeries { index: 0, .. }), "{e}");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bodies_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = decode_remote_write(&data, &RemoteWriteConfig::default());
            let _ = decode_write_request(&data, &RemoteWriteConfig::default());
            let compressed = snap::raw::Encoder::new().compress_vec(&data).unwrap();
            let _ = decode_remote_write(&compressed, &RemoteWriteConfig::default());
        }
    }
}
