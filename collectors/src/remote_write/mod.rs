//! Prometheus remote write 1.0 (`prometheus.WriteRequest`) and 2.0
//! (`io.prometheus.write.v2.Request`): snappy block format + protobuf → a
//! `samples` batch (and a `histograms` batch for native histograms).
//!
//! The protobuf is read by a small hand-rolled reader (`wire.rs`) that
//! borrows every string from the decompressed buffer (UTF-8 checked): no
//! allocation per label. The snappy output goes to a per-thread buffer that
//! is reused across requests (kept only while it is at most
//! [`SCRATCH_RETAINED_BYTES`]). The prost types in [`proto`] are for
//! encoding (load generators, tests, benches); the decoder is
//! property-tested against prost.
//!
//! Decisions (copy into ARCHITECTURE.md):
//! - The message is chosen by `Content-Type` ([`check_remote_write_headers`]
//!   returns the [`RemoteWriteVersion`]): `proto=io.prometheus.write.v2.Request`
//!   is 2.0; `proto=prometheus.WriteRequest` or no `proto` is 1.0. A 2.x
//!   `X-Prometheus-Remote-Write-Version` with a 1.0 content type, or a
//!   non-2.x one with the 2.0 content type, is refused (415).
//! - All or nothing: a malformed message, or the first invalid series,
//!   rejects the whole request (protobuf errors first, then
//!   [`Error::InvalidSeries`] naming the series' index, → 400).
//! - Labels may arrive unsorted (sorted here); an empty label name, a
//!   duplicate name, or a missing/empty `__name__` is invalid. A label with
//!   an empty value is dropped (Prometheus: empty value = no label).
//! - `__name__` becomes `metric`; the attribution labels (`model`,
//!   `model_version` by default, see [`RemoteWriteConfig`]) become `model` /
//!   `version`; none of the three is repeated in `labels`.
//! - 1.0: every sample is `kind = "untyped"` (1.0 has no per-sample type;
//!   metadata arrives in separate entries and is ignored, counted in
//!   [`RemoteWriteSummary::metadata_ignored`]). Classic histogram
//!   `_bucket`/`_sum`/`_count` and summary series are ordinary samples.
//! - 2.0: `symbols[0]` must be `""`, every reference (labels, exemplar
//!   labels, help, unit) must be inside `symbols`, `labels_refs` must have an
//!   even length; the reserved fields 1-3 of `Request` are refused (a 1.0
//!   body sent with the 2.0 content type would otherwise decode as an empty
//!   request). A series' `Metadata.type` COUNTER gives `kind = "counter"`,
//!   GAUGE `kind = "gauge"`, every other type (UNSPECIFIED, INFO, STATESET,
//!   and the classic HISTOGRAM / GAUGEHISTOGRAM / SUMMARY series parts,
//!   whose `_bucket`/`_sum`/`_count` series are plain samples here) gives
//!   `"untyped"`; `temporality` and `monotonic` stay null (they are OTLP's).
//!   `unit_ref` fills `unit` (null when empty); help text is not stored.
//!   `created_timestamp` (ms, 0 = unset) fills `start_ts` of the series'
//!   samples and histograms. A series with both samples and histograms, or
//!   with neither, is accepted (the spec forbids the first; nothing is lost
//!   by storing both).
//! - The staleness marker (NaN with bits `0x7ff0000000000002`) is a row with
//!   `stale = true` and the exact NaN bits in `value`; any other NaN is an
//!   ordinary value with `stale = false`.
//! - Native histograms with a base-2 schema (-4..=8) go to `histograms`
//!   (`kind = "exponential"`; `temporality` null for a gauge histogram:
//!   reset hint GAUGE, or 2.0 metadata type GAUGEHISTOGRAM, else
//!   `cumulative`); other schemas (custom buckets, -53) are skipped and
//!   counted in [`RemoteWriteSummary::native_histograms_skipped`].
//!   Exemplars are counted in [`RemoteWriteSummary::exemplars_dropped`] and
//!   dropped, so [`RemoteWriteSummary::exemplars_written`] is always 0 (the
//!   `X-Prometheus-Remote-Write-Exemplars-Written` answer).

use arrow_array::RecordBatch;

use crate::{Error, Result};

mod convert;
pub mod proto;
#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;
mod v1;
mod v2;
mod wire;

/// The `Content-Type` of remote write 2.0.
pub const CONTENT_TYPE_V2: &str = "application/x-protobuf;proto=io.prometheus.write.v2.Request";
/// The `Content-Type` of remote write 1.0 with the message named (senders
/// may also send plain `application/x-protobuf`).
pub const CONTENT_TYPE_V1: &str = "application/x-protobuf;proto=prometheus.WriteRequest";
/// The `X-Prometheus-Remote-Write-Version` a 2.0 sender sends.
pub const VERSION_V2: &str = "2.0.0";
/// Response header (2.0): samples written, from [`RemoteWriteSummary::samples`].
pub const HEADER_SAMPLES_WRITTEN: &str = "X-Prometheus-Remote-Write-Samples-Written";
/// Response header (2.0): native histograms written, from
/// [`RemoteWriteSummary::histograms`].
pub const HEADER_HISTOGRAMS_WRITTEN: &str = "X-Prometheus-Remote-Write-Histograms-Written";
/// Response header (2.0): exemplars written, from
/// [`RemoteWriteSummary::exemplars_written`] (always 0: exemplars are
/// dropped).
pub const HEADER_EXEMPLARS_WRITTEN: &str = "X-Prometheus-Remote-Write-Exemplars-Written";

const MESSAGE_V1: &str = "prometheus.WriteRequest";
const MESSAGE_V2: &str = "io.prometheus.write.v2.Request";

/// Which protobuf message a remote-write request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteWriteVersion {
    /// Remote write 1.0, `prometheus.WriteRequest`.
    V1,
    /// Remote write 2.0, `io.prometheus.write.v2.Request`.
    V2,
}

impl RemoteWriteVersion {
    /// The fully qualified protobuf message name.
    pub fn message(self) -> &'static str {
        match self {
            RemoteWriteVersion::V1 => MESSAGE_V1,
            RemoteWriteVersion::V2 => MESSAGE_V2,
        }
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

/// Counts for one decoded request (for logs, the daemon's metrics and the
/// 2.0 `X-Prometheus-Remote-Write-*-Written` response headers).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteWriteSummary {
    /// Time series in the request.
    pub series: usize,
    /// Rows in `samples` ([`HEADER_SAMPLES_WRITTEN`]).
    pub samples: usize,
    /// Rows in `histograms` (native histograms, [`HEADER_HISTOGRAMS_WRITTEN`]).
    pub histograms: usize,
    /// Exemplars written ([`HEADER_EXEMPLARS_WRITTEN`]): always 0, exemplars
    /// are counted in [`Self::exemplars_dropped`] and not stored.
    pub exemplars_written: usize,
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
    /// Metadata entries ignored (1.0's `WriteRequest.metadata`; 2.0's
    /// per-series metadata is used, not counted here).
    pub metadata_ignored: usize,
}

/// The result of decoding one request.
#[derive(Debug, Clone)]
pub struct RemoteWriteBatches {
    /// Rows for the `samples` table in series form (each series' labels
    /// once; [`crate::SeriesRows::to_rows`] with [`crate::samples_schema`]
    /// makes them whole).
    pub samples: crate::SeriesRows,
    /// Rows for the `histograms` table (schema [`crate::histograms_schema`]),
    /// often empty.
    pub histograms: RecordBatch,
    /// Counts.
    pub summary: RemoteWriteSummary,
}

/// Check the request headers of a remote write: `Content-Type`,
/// `Content-Encoding` and `X-Prometheus-Remote-Write-Version` (each `None`
/// when absent), and say which message the body carries.
///
/// Accepted:
/// - 1.0 ([`RemoteWriteVersion::V1`]) with `application/x-protobuf` and no
///   `proto` parameter or `proto=prometheus.WriteRequest`, or no content
///   type at all (very old senders); version absent, `0.1.x` or `1.x` (any
///   version, bar 2.x, when `proto=prometheus.WriteRequest` is explicit);
/// - 2.0 ([`RemoteWriteVersion::V2`]) with
///   `proto=io.prometheus.write.v2.Request` ([`CONTENT_TYPE_V2`]), version
///   absent or `2.x`;
/// - encoding `snappy` or absent.
///
/// Anything else is [`Error::UnsupportedMediaType`] (→ 415), whose message
/// names what is accepted.
pub fn check_remote_write_headers(
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    version: Option<&str>,
) -> Result<RemoteWriteVersion> {
    let mut message = None;
    if let Some(ct) = content_type {
        let mut parts = ct.split(';');
        let media = parts.next().unwrap_or("").trim();
        if !media.eq_ignore_ascii_case("application/x-protobuf") {
            return Err(Error::UnsupportedMediaType(format!(
                "content type {ct:?}; remote write requires application/x-protobuf"
            )));
        }
        for p in parts {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let (k, v) = (k.trim(), v.trim().trim_matches('"'));
            if k.eq_ignore_ascii_case("proto") {
                message = Some(match v {
                    MESSAGE_V1 => RemoteWriteVersion::V1,
                    MESSAGE_V2 => RemoteWriteVersion::V2,
                    _ => {
                        return Err(Error::UnsupportedMediaType(format!(
                            "unknown protobuf message {v:?}; accepted: proto={MESSAGE_V1} \
                             (remote write 1.0) and proto={MESSAGE_V2} (2.0)"
                        )));
                    }
                });
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
    let explicit = message.is_some();
    let message = message.unwrap_or(RemoteWriteVersion::V1);
    if let Some(v) = version {
        let v = v.trim();
        let is_v1 = v.starts_with("0.1") || v.starts_with("1.") || v == "1";
        let is_v2 = v.starts_with("2.") || v == "2";
        match message {
            RemoteWriteVersion::V1 if is_v2 => {
                return Err(Error::UnsupportedMediaType(format!(
                    "remote write version {v:?} with a {MESSAGE_V1} (1.0) content type; \
                     a 2.x sender must send Content-Type: {CONTENT_TYPE_V2}, \
                     a 1.0 body version 0.1.0"
                )));
            }
            RemoteWriteVersion::V1 if !is_v1 && !explicit => {
                return Err(Error::UnsupportedMediaType(format!(
                    "remote write protocol version {v:?} is not supported (0.1.x, 1.x with \
                     {MESSAGE_V1}, 2.x with {MESSAGE_V2})"
                )));
            }
            RemoteWriteVersion::V2 if !is_v2 => {
                return Err(Error::UnsupportedMediaType(format!(
                    "remote write version {v:?} with a {MESSAGE_V2} (2.0) content type; \
                     2.x expected"
                )));
            }
            _ => {}
        }
    }
    Ok(message)
}

const FRAMED_SNAPPY_MAGIC: &[u8] = b"\xff\x06\x00\x00sNaPpY";

/// The per-thread decompression buffer is kept for the next request only
/// while its capacity is at most this (one big request must not pin memory).
pub const SCRATCH_RETAINED_BYTES: usize = 4 << 20;

thread_local! {
    static SCRATCH: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

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

/// Decompress `body` into `out` (grown, never shrunk; `out[..n]` is the
/// result, `n` returned).
fn decompress_into(body: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<usize> {
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
    if out.len() < declared {
        out.resize(declared, 0);
    }
    snap::raw::Decoder::new()
        .decompress(body, &mut out[..declared])
        .map_err(|e| Error::Snappy(e.to_string()))
}

/// Decompress a snappy **block**-format body, refusing a declared
/// decompressed length over `limit` before allocating anything.
pub fn decompress_snappy(body: &[u8], limit: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let n = decompress_into(body, limit, &mut out)?;
    out.truncate(n);
    Ok(out)
}

/// The length of the protobuf message inside a remote-write body, read
/// from the snappy header without decompressing; the body's own length
/// when the header is unreadable, over `cfg`'s limit or impossible (the
/// decoder then refuses the body with the right error). Every label and
/// sample the message carries takes at least as many bytes once decoded;
/// only metadata (help texts) and exemplars are not stored, so short of
/// those this is a lower bound of the rows' size in memory, for an
/// admission check before decoding.
pub fn remote_write_decoded_len(body: &[u8], cfg: &RemoteWriteConfig) -> usize {
    read_uvarint(body)
        .filter(|&declared| {
            declared <= cfg.max_decompressed_bytes as u64
                && declared <= (body.len() as u64).saturating_mul(32).saturating_add(64)
        })
        .map_or(body.len(), |declared| (declared as usize).max(body.len()))
}

/// Run `f` on the decompressed body, in this thread's reused buffer.
fn with_decompressed<T>(
    body: &[u8],
    limit: usize,
    f: impl FnOnce(&[u8]) -> Result<T>,
) -> Result<T> {
    let mut buf = SCRATCH.take();
    let result = decompress_into(body, limit, &mut buf).and_then(|n| f(&buf[..n]));
    if buf.capacity() <= SCRATCH_RETAINED_BYTES {
        SCRATCH.set(buf);
    }
    result
}

/// Decode one remote write request body (snappy block-compressed
/// `WriteRequest` for [`RemoteWriteVersion::V1`], `Request` for
/// [`RemoteWriteVersion::V2`]) into batches. Headers are checked separately
/// with [`check_remote_write_headers`], which gives `version`.
pub fn decode_remote_write(
    body: &[u8],
    version: RemoteWriteVersion,
    cfg: &RemoteWriteConfig,
) -> Result<RemoteWriteBatches> {
    if body.len() > cfg.max_body_bytes {
        return Err(Error::BodyTooLarge {
            size: body.len(),
            limit: cfg.max_body_bytes,
        });
    }
    with_decompressed(body, cfg.max_decompressed_bytes, |raw| match version {
        RemoteWriteVersion::V1 => decode_write_request(raw, cfg),
        RemoteWriteVersion::V2 => decode_request_v2(raw, cfg),
    })
}

/// Decode an uncompressed 1.0 `WriteRequest` protobuf into batches.
pub fn decode_write_request(raw: &[u8], cfg: &RemoteWriteConfig) -> Result<RemoteWriteBatches> {
    let parsed = v1::parse(raw).map_err(|e| wire_error(MESSAGE_V1, e))?;
    convert::build(parsed, cfg)
}

/// Decode an uncompressed 2.0 `io.prometheus.write.v2.Request` protobuf into
/// batches.
pub fn decode_request_v2(raw: &[u8], cfg: &RemoteWriteConfig) -> Result<RemoteWriteBatches> {
    let parsed = v2::parse(raw).map_err(|e| wire_error(MESSAGE_V2, e))?;
    convert::build(parsed, cfg)
}

fn wire_error(message: &'static str, e: wire::WireError) -> Error {
    Error::Wire {
        message,
        reason: e.to_string(),
    }
}
