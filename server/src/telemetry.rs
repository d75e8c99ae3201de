//! Telemetry wiring: the collectors' tables declared in the history store,
//! and the ingest paths that decode with `modelwatch-collectors` and write
//! through `modelwatch-history`. No decoding or storage logic lives here.
//!
//! Two ingest paths: Prometheus remote write ([`Telemetry::remote_write`])
//! and OTLP ([`Telemetry::otlp`], shared by OTLP/HTTP and OTLP/gRPC). Both
//! decode the whole request first and write it as one all-or-nothing WAL
//! record; they return only after the record is fsynced.

use std::borrow::Cow;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use modelwatch_collectors::otlp::proto::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceResponse,
};
use modelwatch_collectors::otlp::proto::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceResponse,
};
use modelwatch_collectors::otlp::proto::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use modelwatch_collectors::otlp::{self, Encoding, OtlpConfig, Rejections};
use modelwatch_collectors::{self as collectors, RemoteWriteConfig, RemoteWriteSummary};
use modelwatch_history::{self as history, HistoryConfig, HistoryStore, TableDef, WriteSet};

/// Default retention of raw telemetry.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// Why an ingest request failed; `http::error` turns it into a status.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Decode(#[from] collectors::Error),
    #[error(transparent)]
    Store(#[from] history::Error),
    /// `Content-Encoding: gzip` but the body is not valid gzip.
    #[error("the body is not valid gzip ({0}); send valid gzip or drop `Content-Encoding`")]
    Gzip(std::io::Error),
    /// The gzip body inflates past the limit (a gzip bomb, or too big a batch).
    #[error(
        "the gzip body inflates to more than {limit} bytes (--max-write-bytes); send smaller batches"
    )]
    InflatedTooLarge { limit: usize },
    /// A `Content-Encoding` other than gzip or identity.
    #[error("unsupported Content-Encoding {0:?}; OTLP/HTTP accepts gzip or no encoding")]
    ContentEncoding(String),
}

impl IngestError {
    /// The `reason` label of `modelwatch_ingest_rejected_requests_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            IngestError::Decode(e) => match e.class() {
                collectors::ErrorClass::BadRequest => "malformed",
                collectors::ErrorClass::PayloadTooLarge => "too_large",
                collectors::ErrorClass::UnsupportedMediaType => "unsupported_media_type",
                collectors::ErrorClass::Internal => "internal",
            },
            IngestError::Gzip(_) => "malformed",
            IngestError::InflatedTooLarge { .. } => "too_large",
            IngestError::ContentEncoding(_) => "unsupported_media_type",
            IngestError::Store(history::Error::Overloaded { .. }) => "overloaded",
            IngestError::Store(_) => "store_failed",
        }
    }
}

/// Counts an ingest request's outcome in `/metrics`: the rows stored per
/// table, or the reason it was refused.
fn count_outcome<T>(
    protocol: &str,
    stored: &[(String, usize)],
    outcome: Result<T, IngestError>,
) -> Result<T, IngestError> {
    let m = crate::metrics::metrics();
    match &outcome {
        Ok(_) => {
            for (table, rows) in stored {
                m.ingest_rows
                    .with_label_values(&[protocol, table])
                    .inc_by(*rows as u64);
            }
        }
        Err(e) => m
            .ingest_rejected
            .with_label_values(&[protocol, e.reason()])
            .inc(),
    }
    outcome
}

/// Rows per table of a write, taken before the write consumes it.
fn rows_by_table(set: &WriteSet) -> Vec<(String, usize)> {
    set.entries()
        .map(|(table, batch)| (table.to_string(), batch.num_rows()))
        .collect()
}

/// The table definitions. Sort keys put one metric's (or span/log name's)
/// rows together, then a version's: dashboards and alert queries select a
/// metric, so with small Parquet pages the page index skips the others; a
/// version's rows of one metric stay contiguous for the evaluator. In the
/// series tables (`samples`, `histograms`) the `labels` come next, so each
/// series' rows are contiguous and in time order: its values side by side
/// compress far better than interleaved with the other series' (see
/// BENCHMARKS.md, bytes per sample). Index columns let the manifest prune
/// whole files.
pub fn table_defs(retention: Duration) -> Vec<TableDef> {
    let mut tables = collectors::all_schemas();
    // The evaluator's output lives beside the telemetry it was computed from.
    tables.push((
        crate::evaluator::results::DRIFT_RESULTS,
        crate::evaluator::results::schema(),
    ));
    tables.push((
        crate::evaluator::results::ANOMALY_RESULTS,
        crate::evaluator::results::anomaly_schema(),
    ));
    tables.push((
        crate::evaluator::results::DATA_QUALITY_RESULTS,
        crate::evaluator::results::quality_schema(),
    ));
    tables.push((
        crate::evaluator::results::PERFORMANCE_RESULTS,
        crate::evaluator::results::performance_schema(),
    ));
    tables.push((
        crate::evaluator::results::FAIRNESS_RESULTS,
        crate::evaluator::results::fairness_schema(),
    ));
    tables.push((
        crate::evaluator::results::MULTIVARIATE_DRIFT_RESULTS,
        crate::evaluator::results::multivariate_schema(),
    ));
    tables
        .into_iter()
        .map(|(name, schema)| {
            let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            let has = |c: &str| names.contains(&c);
            let mut sort: Vec<&str> = ["metric", "name", "model", "version"]
                .into_iter()
                .filter(|c| has(c))
                .collect();
            let mut index = sort.clone();
            // The promoted labels are what health queries filter by
            // (`status = '500'`): the manifest keeps their values per file,
            // so an hour without a 5xx is not even opened.
            if name == collectors::schema::SAMPLES {
                index.extend(collectors::PROMOTED_LABELS);
            }
            if has("metric") && has("labels") {
                sort.push("labels");
            }
            sort.push("ts");
            let mut def = TableDef::new(name, schema.clone())
                .with_sort_key(sort)
                .with_index_columns(index);
            // Remote write hands `samples` over in series form: each
            // series' labels once per request (ARCHITECTURE "Series in the
            // history").
            if name == collectors::schema::SAMPLES {
                def = def
                    .with_series_columns(collectors::SAMPLES_SERIES_COLUMNS)
                    .with_promoted_keys("labels", collectors::PROMOTED_LABELS);
            }
            // Reference data is what drift is measured against: it is kept
            // until its version is gone, not aged out.
            if name == collectors::schema::REFERENCE {
                def
            } else {
                def.with_retention(retention)
            }
        })
        .collect()
}

/// The telemetry side of the daemon.
pub struct Telemetry {
    pub store: HistoryStore,
    pub remote_write: RemoteWriteConfig,
    pub otlp: OtlpConfig,
}

impl Telemetry {
    pub async fn open(
        dir: &Path,
        config: HistoryConfig,
        remote_write: RemoteWriteConfig,
        otlp: OtlpConfig,
    ) -> history::Result<Self> {
        let store = HistoryStore::open(dir, table_defs(DEFAULT_RETENTION), config).await?;
        Ok(Self {
            store,
            remote_write,
            otlp,
        })
    }

    /// Prometheus remote write 1.0 or 2.0 (by `Content-Type`): headers
    /// checked, body decoded in full, then written in one all-or-nothing WAL
    /// record. Returns after fsync.
    pub async fn remote_write(
        &self,
        content_type: Option<&str>,
        content_encoding: Option<&str>,
        version: Option<&str>,
        body: &[u8],
    ) -> Result<RemoteWriteSummary, IngestError> {
        const PROTOCOL: &str = "remote_write";
        let mut stored = Vec::new();
        let outcome = async {
            let protocol =
                collectors::check_remote_write_headers(content_type, content_encoding, version)?;
            // Under overload, refuse before decoding: the message's length
            // (from the snappy header) is a lower bound of the rows' size
            // in memory, held in the bound while this request decodes.
            let admission = self
                .store
                .admit(collectors::remote_write_decoded_len(body, &self.remote_write) as u64)?;
            let batches = collectors::decode_remote_write(body, protocol, &self.remote_write)?;
            drop(admission);
            let mut set = WriteSet::new();
            if batches.samples.num_rows() > 0 {
                let collectors::SeriesRows { series, points } = batches.samples;
                set.push(
                    collectors::schema::SAMPLES,
                    history::SeriesBatch::new(series, points),
                );
            }
            if batches.histograms.num_rows() > 0 {
                set.push(collectors::schema::HISTOGRAMS, batches.histograms);
            }
            stored = rows_by_table(&set);
            if set.rows() > 0 {
                self.store.write(set).await?;
            }
            Ok(batches.summary)
        }
        .await;
        if let Ok(summary) = &outcome {
            crate::metrics::metrics()
                .ingest_rows_without_model
                .with_label_values(&[PROTOCOL])
                .inc_by(summary.samples_without_model as u64);
        }
        count_outcome(PROTOCOL, &stored, outcome)
    }
}

/// The three OTLP signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpSignal {
    Metrics,
    Logs,
    Traces,
}

impl OtlpSignal {
    pub fn as_str(self) -> &'static str {
        match self {
            OtlpSignal::Metrics => "metrics",
            OtlpSignal::Logs => "logs",
            OtlpSignal::Traces => "traces",
        }
    }
}

/// What one stored OTLP export reports back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpOutcome {
    pub signal: OtlpSignal,
    /// Data points, log records or spans in the request.
    pub items: u64,
    /// Rows written, over all tables.
    pub rows: usize,
    /// Items rejected (the others were stored), for `partial_success`.
    pub rejections: Rejections,
}

impl OtlpOutcome {
    fn rejected(&self) -> Option<(i64, String)> {
        let r = &self.rejections;
        (r.rejected > 0).then(|| {
            (
                i64::try_from(r.rejected).unwrap_or(i64::MAX),
                r.message.clone(),
            )
        })
    }

    pub fn metrics_response(&self) -> ExportMetricsServiceResponse {
        ExportMetricsServiceResponse {
            partial_success: self.rejected().map(|(n, m)| ExportMetricsPartialSuccess {
                rejected_data_points: n,
                error_message: m,
            }),
        }
    }

    pub fn logs_response(&self) -> ExportLogsServiceResponse {
        ExportLogsServiceResponse {
            partial_success: self.rejected().map(|(n, m)| ExportLogsPartialSuccess {
                rejected_log_records: n,
                error_message: m,
            }),
        }
    }

    pub fn traces_response(&self) -> ExportTraceServiceResponse {
        ExportTraceServiceResponse {
            partial_success: self.rejected().map(|(n, m)| ExportTracePartialSuccess {
                rejected_spans: n,
                error_message: m,
            }),
        }
    }

    /// The `Export*ServiceResponse` as protobuf bytes.
    pub fn to_protobuf(&self) -> Vec<u8> {
        use prost::Message;
        match self.signal {
            OtlpSignal::Metrics => self.metrics_response().encode_to_vec(),
            OtlpSignal::Logs => self.logs_response().encode_to_vec(),
            OtlpSignal::Traces => self.traces_response().encode_to_vec(),
        }
    }

    /// The `Export*ServiceResponse` as OTLP/JSON (lowerCamelCase fields,
    /// int64 as a string): `{}` when nothing was rejected.
    pub fn to_json(&self) -> serde_json::Value {
        let Some((n, message)) = self.rejected() else {
            return serde_json::json!({});
        };
        let count = match self.signal {
            OtlpSignal::Metrics => "rejectedDataPoints",
            OtlpSignal::Logs => "rejectedLogRecords",
            OtlpSignal::Traces => "rejectedSpans",
        };
        serde_json::json!({ "partialSuccess": { count: n.to_string(), "errorMessage": message } })
    }
}

/// The body named by `Content-Encoding`: as is without one (or
/// `identity`), inflated for `gzip` with at most `limit` bytes out.
pub fn inflate<'a>(
    content_encoding: Option<&str>,
    body: &'a [u8],
    limit: usize,
) -> Result<Cow<'a, [u8]>, IngestError> {
    let encoding = content_encoding.map(str::trim).unwrap_or("");
    if encoding.is_empty() || encoding.eq_ignore_ascii_case("identity") {
        return Ok(Cow::Borrowed(body));
    }
    if !encoding.eq_ignore_ascii_case("gzip") {
        return Err(IngestError::ContentEncoding(encoding.to_string()));
    }
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    flate2::read::MultiGzDecoder::new(body)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(IngestError::Gzip)?;
    if out.len() > limit {
        return Err(IngestError::InflatedTooLarge { limit });
    }
    Ok(Cow::Owned(out))
}

impl Telemetry {
    /// One OTLP export request body (protobuf or OTLP/JSON, already
    /// inflated, see [`inflate`]), from OTLP/HTTP or OTLP/gRPC alike:
    /// decoded in full, the valid items written in one all-or-nothing WAL
    /// record, invalid ones counted in the outcome (`partial_success`).
    /// Returns after fsync.
    pub async fn otlp(
        &self,
        signal: OtlpSignal,
        body: &[u8],
        encoding: Encoding,
    ) -> Result<OtlpOutcome, IngestError> {
        let mut stored = Vec::new();
        let outcome = self.store_otlp(signal, body, encoding, &mut stored).await;
        count_outcome("otlp", &stored, outcome)
    }

    async fn store_otlp(
        &self,
        signal: OtlpSignal,
        body: &[u8],
        encoding: Encoding,
        stored: &mut Vec<(String, usize)>,
    ) -> Result<OtlpOutcome, IngestError> {
        let cfg = &self.otlp;
        // As for remote write: refused before decoding under overload, and
        // the room held while decoding. A protobuf body is a lower bound of
        // its rows' size in memory; JSON text is not (it can be larger than
        // the rows), so it only meets a buffer that is already full.
        let admission = self.store.admit(match encoding {
            Encoding::Protobuf => body.len() as u64,
            Encoding::Json => 0,
        })?;
        let mut set = WriteSet::new();
        let mut push = |table: &'static str, batch: RecordBatch| {
            if batch.num_rows() > 0 {
                set.push(table, batch);
            }
        };
        use collectors::schema::{DELAYED_LABELS, HISTOGRAMS, INFERENCES, LOGS, SAMPLES, SPANS};
        let (items, rejections) = match signal {
            OtlpSignal::Metrics => metrics(otlp::decode_metrics(body, encoding, cfg)?, &mut push),
            OtlpSignal::Logs => logs(otlp::decode_logs(body, encoding, cfg)?, &mut push),
            OtlpSignal::Traces => traces(otlp::decode_traces(body, encoding, cfg)?, &mut push),
        };
        fn metrics(
            b: otlp::MetricsBatches,
            push: &mut impl FnMut(&'static str, RecordBatch),
        ) -> (u64, Rejections) {
            push(SAMPLES, b.samples);
            push(HISTOGRAMS, b.histograms);
            (b.summary.data_points, b.summary.rejections)
        }
        fn logs(
            b: otlp::LogsBatches,
            push: &mut impl FnMut(&'static str, RecordBatch),
        ) -> (u64, Rejections) {
            push(INFERENCES, b.inferences);
            push(DELAYED_LABELS, b.labels);
            push(LOGS, b.logs);
            (b.summary.log_records, b.summary.rejections)
        }
        fn traces(
            b: otlp::TracesBatches,
            push: &mut impl FnMut(&'static str, RecordBatch),
        ) -> (u64, Rejections) {
            push(SPANS, b.spans);
            (b.summary.spans, b.summary.rejections)
        }
        drop(admission);
        let rows = set.rows();
        *stored = rows_by_table(&set);
        if rows > 0 {
            self.store.write(set).await?;
        }
        tracing::debug!(
            signal = signal.as_str(),
            items,
            rows,
            rejected = rejections.rejected,
            "otlp export stored"
        );
        Ok(OtlpOutcome {
            signal,
            items,
            rows,
            rejections,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn inflate_passes_identity_and_inflates_gzip_within_the_limit() {
        assert_eq!(&*inflate(None, b"abc", 3).unwrap(), b"abc");
        assert_eq!(&*inflate(Some("identity"), b"abc", 3).unwrap(), b"abc");
        assert_eq!(&*inflate(Some("GZIP"), &gzip(b"abc"), 3).unwrap(), b"abc");
        // Concatenated members are one body (as `MultiGzDecoder` reads it).
        let two = [gzip(b"ab"), gzip(b"c")].concat();
        assert_eq!(&*inflate(Some("gzip"), &two, 3).unwrap(), b"abc");
    }

    #[test]
    fn inflate_refuses_bombs_bad_gzip_and_other_encodings() {
        let bomb = gzip(&vec![0u8; 1 << 20]);
        assert!(matches!(
            inflate(Some("gzip"), &bomb, 4096),
            Err(IngestError::InflatedTooLarge { limit: 4096 })
        ));
        assert!(matches!(
            inflate(Some("gzip"), b"not gzip", 4096),
            Err(IngestError::Gzip(_))
        ));
        let truncated = gzip(b"hello world");
        assert!(matches!(
            inflate(Some("gzip"), &truncated[..truncated.len() - 4], 4096),
            Err(IngestError::Gzip(_))
        ));
        assert!(matches!(
            inflate(Some("br"), b"x", 4096),
            Err(IngestError::ContentEncoding(e)) if e == "br"
        ));
    }

    #[test]
    fn outcome_answers_partial_success_per_signal() {
        let outcome = |signal, rejected| OtlpOutcome {
            signal,
            items: 3,
            rows: 2,
            rejections: Rejections {
                rejected,
                message: if rejected > 0 {
                    "bad point".into()
                } else {
                    String::new()
                },
            },
        };
        assert_eq!(
            outcome(OtlpSignal::Metrics, 0).to_json(),
            serde_json::json!({})
        );
        assert_eq!(
            outcome(OtlpSignal::Metrics, 0).to_protobuf(),
            Vec::<u8>::new()
        );
        assert_eq!(
            outcome(OtlpSignal::Logs, 1).to_json(),
            serde_json::json!({"partialSuccess": {"rejectedLogRecords": "1", "errorMessage": "bad point"}})
        );
        let traces = outcome(OtlpSignal::Traces, 2).traces_response();
        assert_eq!(traces.partial_success.unwrap().rejected_spans, 2);
        let metrics = outcome(OtlpSignal::Metrics, 1).metrics_response();
        assert_eq!(metrics.partial_success.unwrap().rejected_data_points, 1);
    }
}
