//! A remote write 1.0 request as prost reads it, laid out as the same
//! [`Parsed`] the borrowed reader produces. Tests only: the oracle the
//! hand-rolled reader is property-tested against. What follows the reading
//! (validation, the size check, Arrow) is the one shared
//! [`build`](super::convert::build), so any difference the property tests
//! find is a reading difference.

use prost::Message;

use super::convert::{Parsed, RawHistogram, RawSample, RawSeries, Span, build};
use super::{RemoteWriteBatches, RemoteWriteConfig, proto};
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
    let mut p = Parsed {
        metadata_ignored: req.metadata.len(),
        ..Parsed::default()
    };
    for ts in &req.timeseries {
        let mut series = RawSeries::starting_at(&p);
        p.labels.extend(
            ts.labels
                .iter()
                .map(|l| (l.name.as_str(), l.value.as_str())),
        );
        p.samples.extend(ts.samples.iter().map(|s| RawSample {
            value: s.value,
            timestamp_ms: s.timestamp,
        }));
        p.histograms.extend(ts.histograms.iter().map(raw_histogram));
        series.exemplars = ts.exemplars.len();
        series.end_at(&p);
        p.series.push(series);
    }
    build(p, cfg)
}

fn spans(spans: &[proto::BucketSpan]) -> Vec<Span> {
    spans
        .iter()
        .map(|s| Span {
            offset: s.offset,
            length: s.length,
        })
        .collect()
}

fn raw_histogram(h: &proto::Histogram) -> RawHistogram {
    use proto::histogram::{Count, ZeroCount};
    RawHistogram {
        count: match h.count {
            Some(Count::CountInt(c)) => c as f64,
            Some(Count::CountFloat(c)) => c,
            None => 0.0,
        },
        sum: h.sum,
        schema: h.schema,
        zero_threshold: h.zero_threshold,
        zero_count: match h.zero_count {
            Some(ZeroCount::ZeroCountInt(c)) => c as f64,
            Some(ZeroCount::ZeroCountFloat(c)) => c,
            None => 0.0,
        },
        negative_spans: spans(&h.negative_spans),
        negative_deltas: h.negative_deltas.clone(),
        negative_counts: h.negative_counts.clone(),
        positive_spans: spans(&h.positive_spans),
        positive_deltas: h.positive_deltas.clone(),
        positive_counts: h.positive_counts.clone(),
        reset_hint: h.reset_hint,
        timestamp_ms: h.timestamp,
    }
}
