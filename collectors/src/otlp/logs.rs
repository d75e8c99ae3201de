//! OTLP logs → `inferences` + `delayed_labels` + `logs`.
//!
//! A log record whose merged attributes carry a model **and** at least one
//! of: an attribute under the feature prefix, the prediction, the label or
//! the inference id, is an inference. A label-only record (a model, an
//! `inference.id` and a `label`, but no feature and no prediction) is
//! ground truth arriving later: it goes to `delayed_labels`, which the
//! evaluator joins to `inferences` on `inference_id`. Every other record
//! (with or without a model) goes to `logs`.
//!
//! Features: int/double attributes → `features_num`; string, bool and
//! others (as text) → `features_str`; the prefix is stripped, an empty name
//! after the prefix is ignored. Only attributes are read, not the body.
//! A record with both `time_unix_nano` and `observed_time_unix_nano` 0 is
//! rejected.

use std::sync::Arc;

use arrow_array::builder::{
    ArrayBuilder, Int32Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest,
};
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::logs::v1::LogRecord;

use super::{
    Attrs, Budget, Encoding, OtlpConfig, Rejections, any_to_f64, any_to_string, attribute,
    attrs_of, hex_id, json, merge, ns_to_us, request, resource_attrs, scope_attrs,
};
use crate::Result;
use crate::labels::LabelColumns;
use crate::schema::{
    InferenceColumns, SOURCE_OTLP, StrMapBuilder, inferences_schema, logs_schema, str_map_builder,
    ts_builder,
};

/// Counts for one decoded logs request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogsSummary {
    /// Log records seen.
    pub log_records: u64,
    /// Rows in `inferences`.
    pub inferences: usize,
    /// Rows in `delayed_labels`.
    pub labels: usize,
    /// Rows in `logs`.
    pub logs: usize,
    /// Rejected records, for `partial_success`.
    pub rejections: Rejections,
}

/// The result of decoding one logs request.
#[derive(Debug, Clone)]
pub struct LogsBatches {
    /// Rows for `inferences`.
    pub inferences: RecordBatch,
    /// Rows for `delayed_labels` (label-only records).
    pub labels: RecordBatch,
    /// Rows for `logs`.
    pub logs: RecordBatch,
    /// Counts and rejections.
    pub summary: LogsSummary,
}

impl LogsBatches {
    /// The `partial_success` to answer with, `None` when nothing was
    /// rejected.
    pub fn partial_success(&self) -> Option<ExportLogsPartialSuccess> {
        let r = &self.summary.rejections;
        (r.rejected > 0).then(|| ExportLogsPartialSuccess {
            rejected_log_records: i64::try_from(r.rejected).unwrap_or(i64::MAX),
            error_message: r.message.clone(),
        })
    }
}

/// Decode an `ExportLogsServiceRequest` body (protobuf or OTLP/JSON).
pub fn decode_logs(body: &[u8], encoding: Encoding, cfg: &OtlpConfig) -> Result<LogsBatches> {
    let req = request(
        body,
        encoding,
        "ExportLogsServiceRequest",
        json::logs_request,
    )?;
    decode_logs_request(&req, cfg)
}

struct InfB {
    ts: TimestampMicrosecondBuilder,
    model: StringBuilder,
    version: StringBuilder,
    inference: InferenceColumns,
    attributes: StrMapBuilder,
    trace_id: StringBuilder,
    span_id: StringBuilder,
    source: StringBuilder,
}

struct LogB {
    ts: TimestampMicrosecondBuilder,
    observed_ts: TimestampMicrosecondBuilder,
    severity_number: Int32Builder,
    severity_text: StringBuilder,
    body: StringBuilder,
    event_name: StringBuilder,
    attributes: StrMapBuilder,
    trace_id: StringBuilder,
    span_id: StringBuilder,
    model: StringBuilder,
    version: StringBuilder,
    source: StringBuilder,
}

/// Map an already decoded request (e.g. from tonic) to batches.
pub fn decode_logs_request(
    req: &ExportLogsServiceRequest,
    cfg: &OtlpConfig,
) -> Result<LogsBatches> {
    let mut inf = InfB {
        ts: ts_builder(0),
        model: StringBuilder::new(),
        version: StringBuilder::new(),
        inference: InferenceColumns::with_capacity(0),
        attributes: str_map_builder(),
        trace_id: StringBuilder::new(),
        span_id: StringBuilder::new(),
        source: StringBuilder::new(),
    };
    let mut logb = LogB {
        ts: ts_builder(0),
        observed_ts: ts_builder(0),
        severity_number: Int32Builder::new(),
        severity_text: StringBuilder::new(),
        body: StringBuilder::new(),
        event_name: StringBuilder::new(),
        attributes: str_map_builder(),
        trace_id: StringBuilder::new(),
        span_id: StringBuilder::new(),
        model: StringBuilder::new(),
        version: StringBuilder::new(),
        source: StringBuilder::new(),
    };
    let mut labels = LabelColumns::new();
    let mut summary = LogsSummary::default();
    let mut budget = Budget::new(cfg.max_output_bytes);
    for rl in &req.resource_logs {
        let res = resource_attrs(rl.resource.as_ref());
        for sl in &rl.scope_logs {
            let base = scope_attrs(&res, sl.scope.as_ref());
            for (i, rec) in sl.log_records.iter().enumerate() {
                summary.log_records += 1;
                record(
                    cfg,
                    &base,
                    rec,
                    i,
                    &mut inf,
                    &mut labels,
                    &mut logb,
                    &mut summary,
                    &mut budget,
                )?;
            }
        }
    }
    summary.inferences = inf.source.len();
    summary.labels = labels.len();
    summary.logs = logb.source.len();
    let mut inf_cols: Vec<ArrayRef> = vec![
        Arc::new(inf.ts.finish()),
        Arc::new(inf.model.finish()),
        Arc::new(inf.version.finish()),
    ];
    inf_cols.extend(inf.inference.finish());
    inf_cols.extend::<[ArrayRef; 4]>([
        Arc::new(inf.attributes.finish()),
        Arc::new(inf.trace_id.finish()),
        Arc::new(inf.span_id.finish()),
        Arc::new(inf.source.finish()),
    ]);
    let log_cols: Vec<ArrayRef> = vec![
        Arc::new(logb.ts.finish()),
        Arc::new(logb.observed_ts.finish()),
        Arc::new(logb.severity_number.finish()),
        Arc::new(logb.severity_text.finish()),
        Arc::new(logb.body.finish()),
        Arc::new(logb.event_name.finish()),
        Arc::new(logb.attributes.finish()),
        Arc::new(logb.trace_id.finish()),
        Arc::new(logb.span_id.finish()),
        Arc::new(logb.model.finish()),
        Arc::new(logb.version.finish()),
        Arc::new(logb.source.finish()),
    ];
    Ok(LogsBatches {
        inferences: RecordBatch::try_new(inferences_schema(), inf_cols)?,
        labels: labels.finish()?,
        logs: RecordBatch::try_new(logs_schema(), log_cols)?,
        summary,
    })
}

fn append_pairs(
    b: &mut StrMapBuilder,
    attrs: &[(
        &str,
        Option<&opentelemetry_proto::tonic::common::v1::AnyValue>,
    )],
) -> Result<()> {
    for (k, v) in attrs {
        b.keys().append_value(k);
        b.values()
            .append_value(v.map(super::any_to_cow).unwrap_or_default());
    }
    b.append(true)?;
    Ok(())
}

fn attrs_bytes(a: &Attrs<'_>) -> u64 {
    a.iter()
        .map(|(k, v)| {
            (k.len()
                + v.map_or(0, |v| match &v.value {
                    Some(any_value::Value::StringValue(s)) => s.len(),
                    _ => 32,
                })
                + 8) as u64
        })
        .sum()
}

#[allow(clippy::too_many_arguments)]
fn record(
    cfg: &OtlpConfig,
    base: &Attrs<'_>,
    rec: &LogRecord,
    i: usize,
    inf: &mut InfB,
    labels: &mut LabelColumns,
    logb: &mut LogB,
    summary: &mut LogsSummary,
    budget: &mut Budget,
) -> Result<()> {
    let Some(ts) = ns_to_us(rec.time_unix_nano).or(ns_to_us(rec.observed_time_unix_nano)) else {
        summary
            .rejections
            .reject(|| format!("log record {i}: time_unix_nano and observed_time_unix_nano are 0"));
        return Ok(());
    };
    let merged = merge(base, &attrs_of(&rec.attributes));
    budget.spend(attrs_bytes(&merged) + rec.body.as_ref().map_or(0, |_| 64))?;
    let a = attribute(merged, cfg);
    let is_feature =
        |k: &str| k.len() > cfg.feature_prefix.len() && k.starts_with(cfg.feature_prefix.as_str());
    let inference = a.model.is_some()
        && a.rest.iter().any(|(k, _)| {
            is_feature(k)
                || *k == cfg.prediction_key
                || *k == cfg.label_key
                || *k == cfg.inference_id_key
        });
    let has = |key: &str| a.rest.iter().any(|(k, _)| *k == key);
    let label_only = has(&cfg.label_key)
        && has(&cfg.inference_id_key)
        && !has(&cfg.prediction_key)
        && !a.rest.iter().any(|(k, _)| is_feature(k));
    if let (true, true, Some(model)) = (inference, label_only, a.model.as_deref()) {
        let mut inference_id = None;
        let mut label = None;
        let mut other = Vec::new();
        for &(k, v) in &a.rest {
            if k == cfg.inference_id_key {
                inference_id = v;
            } else if k == cfg.label_key {
                label = v;
            } else {
                other.push((k, v));
            }
        }
        labels.ts.append_value(ts);
        labels.model.append_value(model);
        labels.version.append_option(a.version.as_deref());
        labels
            .inference_id
            .append_value(inference_id.map(any_to_string).unwrap_or_default());
        labels
            .label
            .append_value(label.map(any_to_string).unwrap_or_default());
        labels.label_value.append_option(label.and_then(any_to_f64));
        append_pairs(&mut labels.attributes, &other)?;
        labels.source.append_value(SOURCE_OTLP);
    } else if let (true, Some(model)) = (inference, a.model.as_deref()) {
        inf.ts.append_value(ts);
        inf.model.append_value(model);
        inf.version.append_option(a.version.as_deref());
        let mut inference_id = None;
        let mut prediction = None;
        let mut label = None;
        let mut other = Vec::new();
        for &(k, v) in &a.rest {
            if is_feature(k) {
                let name = &k[cfg.feature_prefix.len()..];
                match v.and_then(any_to_f64) {
                    Some(x) => {
                        inf.inference.features_num.keys().append_value(name);
                        inf.inference.features_num.values().append_value(x);
                    }
                    None => {
                        inf.inference.features_str.keys().append_value(name);
                        inf.inference
                            .features_str
                            .values()
                            .append_value(v.map(super::any_to_cow).unwrap_or_default());
                    }
                }
            } else if k == cfg.inference_id_key {
                inference_id = v;
            } else if k == cfg.prediction_key {
                prediction = v;
            } else if k == cfg.label_key {
                label = v;
            } else {
                other.push((k, v));
            }
        }
        inf.inference.features_num.append(true)?;
        inf.inference.features_str.append(true)?;
        inf.inference
            .inference_id
            .append_option(inference_id.map(any_to_string));
        inf.inference
            .prediction
            .append_option(prediction.map(any_to_string));
        inf.inference
            .prediction_value
            .append_option(prediction.and_then(any_to_f64));
        inf.inference.label.append_option(label.map(any_to_string));
        inf.inference
            .label_value
            .append_option(label.and_then(any_to_f64));
        append_pairs(&mut inf.attributes, &other)?;
        inf.trace_id.append_option(hex_id(&rec.trace_id));
        inf.span_id.append_option(hex_id(&rec.span_id));
        inf.source.append_value(SOURCE_OTLP);
    } else {
        logb.ts.append_value(ts);
        logb.observed_ts
            .append_option(ns_to_us(rec.observed_time_unix_nano));
        logb.severity_number.append_value(rec.severity_number);
        logb.severity_text
            .append_option((!rec.severity_text.is_empty()).then_some(&rec.severity_text));
        logb.body
            .append_option(rec.body.as_ref().map(any_to_string));
        logb.event_name
            .append_option((!rec.event_name.is_empty()).then_some(&rec.event_name));
        append_pairs(&mut logb.attributes, &a.rest)?;
        logb.trace_id.append_option(hex_id(&rec.trace_id));
        logb.span_id.append_option(hex_id(&rec.span_id));
        logb.model.append_option(a.model.as_deref());
        logb.version.append_option(a.version.as_deref());
        logb.source.append_value(SOURCE_OTLP);
    }
    Ok(())
}
