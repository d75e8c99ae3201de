//! OTLP traces → `spans`.
//!
//! Only spans attributed to a model are kept (others are counted in
//! [`TracesSummary::spans_without_model`] and dropped: modelwatch is not a
//! trace store). Invalid spans (rejected, counted): trace id not 16 bytes
//! or all zero, span id not 8 bytes or all zero, parent span id neither
//! empty nor 8 bytes, start time 0, end before start. Events and links are
//! dropped.

use std::sync::Arc;

use arrow_array::builder::{
    ArrayBuilder, Float64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest,
};
use opentelemetry_proto::tonic::trace::v1::Span;

use super::{
    Attrs, Budget, Encoding, OtlpConfig, Rejections, hex, json, ns_to_us, request, resource_attrs,
    scope_attrs,
};
use crate::Result;
use crate::schema::{SOURCE_OTLP, StrMapBuilder, spans_schema, str_map_builder, ts_builder};

/// Counts for one decoded traces request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TracesSummary {
    /// Spans seen.
    pub spans: u64,
    /// Rows in `spans`.
    pub rows: usize,
    /// Valid spans without a model (dropped, not rejected).
    pub spans_without_model: u64,
    /// Rejected spans, for `partial_success`.
    pub rejections: Rejections,
}

/// The result of decoding one traces request.
#[derive(Debug, Clone)]
pub struct TracesBatches {
    /// Rows for `spans`.
    pub spans: RecordBatch,
    /// Counts and rejections.
    pub summary: TracesSummary,
}

impl TracesBatches {
    /// The `partial_success` to answer with, `None` when nothing was
    /// rejected.
    pub fn partial_success(&self) -> Option<ExportTracePartialSuccess> {
        let r = &self.summary.rejections;
        (r.rejected > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: i64::try_from(r.rejected).unwrap_or(i64::MAX),
            error_message: r.message.clone(),
        })
    }
}

/// Decode an `ExportTraceServiceRequest` body (protobuf or OTLP/JSON).
pub fn decode_traces(body: &[u8], encoding: Encoding, cfg: &OtlpConfig) -> Result<TracesBatches> {
    let req = request(
        body,
        encoding,
        "ExportTraceServiceRequest",
        json::traces_request,
    )?;
    decode_traces_request(&req, cfg)
}

struct SpanB {
    ts: TimestampMicrosecondBuilder,
    end_ts: TimestampMicrosecondBuilder,
    duration_ms: Float64Builder,
    trace_id: StringBuilder,
    span_id: StringBuilder,
    parent_span_id: StringBuilder,
    name: StringBuilder,
    kind: StringBuilder,
    status_code: StringBuilder,
    status_message: StringBuilder,
    attributes: StrMapBuilder,
    model: StringBuilder,
    version: StringBuilder,
    source: StringBuilder,
}

/// Map an already decoded request (e.g. from tonic) to batches.
pub fn decode_traces_request(
    req: &ExportTraceServiceRequest,
    cfg: &OtlpConfig,
) -> Result<TracesBatches> {
    let mut b = SpanB {
        ts: ts_builder(0),
        end_ts: ts_builder(0),
        duration_ms: Float64Builder::new(),
        trace_id: StringBuilder::new(),
        span_id: StringBuilder::new(),
        parent_span_id: StringBuilder::new(),
        name: StringBuilder::new(),
        kind: StringBuilder::new(),
        status_code: StringBuilder::new(),
        status_message: StringBuilder::new(),
        attributes: str_map_builder(),
        model: StringBuilder::new(),
        version: StringBuilder::new(),
        source: StringBuilder::new(),
    };
    let mut summary = TracesSummary::default();
    let mut budget = Budget::new(cfg.max_output_bytes);
    for rs in &req.resource_spans {
        let res = resource_attrs(rs.resource.as_ref());
        for ss in &rs.scope_spans {
            let base = scope_attrs(&res, ss.scope.as_ref());
            for (i, span) in ss.spans.iter().enumerate() {
                summary.spans += 1;
                one(cfg, &base, span, i, &mut b, &mut summary, &mut budget)?;
            }
        }
    }
    summary.rows = b.source.len();
    let cols: Vec<ArrayRef> = vec![
        Arc::new(b.ts.finish()),
        Arc::new(b.end_ts.finish()),
        Arc::new(b.duration_ms.finish()),
        Arc::new(b.trace_id.finish()),
        Arc::new(b.span_id.finish()),
        Arc::new(b.parent_span_id.finish()),
        Arc::new(b.name.finish()),
        Arc::new(b.kind.finish()),
        Arc::new(b.status_code.finish()),
        Arc::new(b.status_message.finish()),
        Arc::new(b.attributes.finish()),
        Arc::new(b.model.finish()),
        Arc::new(b.version.finish()),
        Arc::new(b.source.finish()),
    ];
    Ok(TracesBatches {
        spans: RecordBatch::try_new(spans_schema(), cols)?,
        summary,
    })
}

fn span_kind(k: i32) -> &'static str {
    match k {
        1 => "internal",
        2 => "server",
        3 => "client",
        4 => "producer",
        5 => "consumer",
        _ => "unspecified",
    }
}

fn status_code(c: i32) -> &'static str {
    match c {
        1 => "ok",
        2 => "error",
        _ => "unset",
    }
}

fn validate(span: &Span) -> std::result::Result<(i64, i64), String> {
    if span.trace_id.len() != 16 || span.trace_id.iter().all(|&b| b == 0) {
        return Err("trace id must be 16 bytes, not all zero".into());
    }
    if span.span_id.len() != 8 || span.span_id.iter().all(|&b| b == 0) {
        return Err("span id must be 8 bytes, not all zero".into());
    }
    if !span.parent_span_id.is_empty() && span.parent_span_id.len() != 8 {
        return Err("parent span id must be empty or 8 bytes".into());
    }
    let start = ns_to_us(span.start_time_unix_nano).ok_or("start_time_unix_nano is 0")?;
    if span.end_time_unix_nano < span.start_time_unix_nano {
        return Err("end time before start time".into());
    }
    Ok((start, (span.end_time_unix_nano / 1000) as i64))
}

fn one(
    cfg: &OtlpConfig,
    base: &Attrs<'_>,
    span: &Span,
    i: usize,
    b: &mut SpanB,
    summary: &mut TracesSummary,
    budget: &mut Budget,
) -> Result<()> {
    let (start, end) = match validate(span) {
        Ok(v) => v,
        Err(reason) => {
            summary
                .rejections
                .reject(|| format!("span {i} ({:?}): {reason}", span.name));
            return Ok(());
        }
    };
    let (model, version, pairs) = super::point_labels(base, &span.attributes, cfg);
    let Some(model) = model else {
        summary.spans_without_model += 1;
        return Ok(());
    };
    budget.spend(super::pairs_bytes(&pairs) + span.name.len() as u64 + 96)?;
    b.ts.append_value(start);
    b.end_ts.append_value(end);
    b.duration_ms
        .append_value((span.end_time_unix_nano - span.start_time_unix_nano) as f64 / 1e6);
    b.trace_id.append_value(hex(&span.trace_id));
    b.span_id.append_value(hex(&span.span_id));
    b.parent_span_id
        .append_option((!span.parent_span_id.is_empty()).then(|| hex(&span.parent_span_id)));
    b.name.append_value(&span.name);
    b.kind.append_value(span_kind(span.kind));
    let status = span.status.as_ref();
    b.status_code
        .append_value(status_code(status.map_or(0, |s| s.code)));
    b.status_message
        .append_option(status.map(|s| s.message.as_str()).filter(|m| !m.is_empty()));
    crate::schema::append_labels(&mut b.attributes, &pairs, None)?;
    b.model.append_value(model);
    b.version.append_option(version.as_deref());
    b.source.append_value(SOURCE_OTLP);
    Ok(())
}
