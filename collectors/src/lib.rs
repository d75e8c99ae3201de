//! # modelwatch-collectors
//!
//! Wire formats in: Prometheus remote write 1.0 and 2.0, OTLP metrics, logs
//! and traces (protobuf and canonical OTLP/JSON), and batch uploads of
//! inferences and reference data, decoded, validated and
//! attributed to a `(model, version)`, and turned into Arrow record batches
//! for the telemetry tables whose schemas this crate declares
//! ([`schema`]: `samples`, `histograms`, `inferences`, `delayed_labels`,
//! `logs`, `spans`).
//!
//! It must do no I/O (no files, no sockets, no async): it takes bytes and
//! returns batches or a precise [`Error`], so it is fast to test and to
//! fuzz. Every error has an [`ErrorClass`] (400 / 413 / 415 / 500) so the
//! daemon maps HTTP statuses in one place. gzip (`Content-Encoding`) is the
//! daemon's job: bodies arrive here already inflated (within its limit).
//!
//! Formats and versions read: Prometheus remote write 1.0
//! (`prometheus.WriteRequest`) and 2.0 (`io.prometheus.write.v2.Request`),
//! snappy block format, read by a borrowed protobuf reader (see
//! [`remote_write`]); OTLP 1.x protobuf (`opentelemetry-proto` 0.33 prost
//! types) and OTLP/JSON (hand-mapped, see [`otlp::json`]). On-disk formats:
//! none.
//!
//! Entry points: [`check_remote_write_headers`], [`decode_remote_write`];
//! [`otlp::decode_metrics`], [`otlp::decode_logs`], [`otlp::decode_traces`];
//! batch uploads (NDJSON, CSV, Arrow IPC stream, and Parquet batches read by
//! the daemon) with [`batch::UploadDecoder`] and [`batch::RowMapper`].

pub mod batch;
pub mod error;
pub mod grpc_codec;
pub mod labels;
pub mod otlp;
pub mod remote_write;
pub mod schema;
#[cfg(test)]
mod test_support;

pub use error::{Error, ErrorClass, Result};
pub use remote_write::{
    RemoteWriteBatches, RemoteWriteConfig, RemoteWriteSummary, RemoteWriteVersion,
    check_remote_write_headers, decode_remote_write, decode_request_v2, decode_write_request,
    decompress_snappy, remote_write_decoded_len,
};
pub use schema::{
    PROMOTED_LABELS, SAMPLES_SERIES_COLUMNS, SERIES_INDEX, SeriesRows, all_schemas,
    delayed_labels_schema, histograms_schema, inferences_schema, logs_schema, samples_schema,
    samples_series_schemas, spans_schema,
};
