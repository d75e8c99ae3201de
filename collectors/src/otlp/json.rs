//! OTLP/JSON → the prost request types, by hand.
//!
//! Why not `opentelemetry-proto`'s `with-serde`: it is known to drop or
//! mis-read canonical OTLP/JSON fields (opentelemetry-rust #3527, #3451), so
//! this module maps the JSON itself and is tested against the upstream
//! example documents (`tests/fixtures/otlp/`).
//!
//! What is accepted (the OTLP/JSON rules, plus what protobuf-JSON parsers
//! accept and real senders emit):
//! - field names in lowerCamelCase (canonical) or the original snake_case;
//!   unknown fields are ignored, `null` is the default value;
//! - 64-bit integers as strings (canonical) or JSON numbers;
//! - enums as integers (canonical) or their proto names
//!   (`AGGREGATION_TEMPORALITY_DELTA`, `SPAN_KIND_SERVER`, …);
//! - doubles as numbers or the strings `NaN`, `Infinity`, `-Infinity`;
//! - trace / span ids as hex (either case; not base64), `bytesValue` as
//!   base64;
//! - `kvlistValue` as `{"values": [...]}` (canonical) or a bare array.
//!
//! Anything else of the wrong shape (e.g. a string where an object is
//! expected, bad hex) makes the whole body invalid ([`Error::Json`] → 400).

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint,
    exponential_histogram_data_point, metric, number_data_point, summary_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use serde_json::{Map, Value};

use crate::{Error, Result};

type Obj = Map<String, Value>;

fn err(msg: impl Into<String>) -> Error {
    Error::Json(msg.into())
}

fn parse(body: &[u8]) -> Result<Obj> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(err("top level is not an object")),
        Err(e) => Err(err(e.to_string())),
    }
}

/// The snake_case (proto field) name of every camelCase key read here.
const SNAKE: &[(&str, &str)] = &[
    ("aggregationTemporality", "aggregation_temporality"),
    ("arrayValue", "array_value"),
    ("asDouble", "as_double"),
    ("asInt", "as_int"),
    ("boolValue", "bool_value"),
    ("bucketCounts", "bucket_counts"),
    ("bytesValue", "bytes_value"),
    ("dataPoints", "data_points"),
    ("doubleValue", "double_value"),
    ("droppedAttributesCount", "dropped_attributes_count"),
    ("endTimeUnixNano", "end_time_unix_nano"),
    ("eventName", "event_name"),
    ("explicitBounds", "explicit_bounds"),
    ("exponentialHistogram", "exponential_histogram"),
    ("intValue", "int_value"),
    ("isMonotonic", "is_monotonic"),
    ("kvlistValue", "kvlist_value"),
    ("logRecords", "log_records"),
    ("observedTimeUnixNano", "observed_time_unix_nano"),
    ("parentSpanId", "parent_span_id"),
    ("quantileValues", "quantile_values"),
    ("resourceLogs", "resource_logs"),
    ("resourceMetrics", "resource_metrics"),
    ("resourceSpans", "resource_spans"),
    ("schemaUrl", "schema_url"),
    ("scopeLogs", "scope_logs"),
    ("scopeMetrics", "scope_metrics"),
    ("scopeSpans", "scope_spans"),
    ("severityNumber", "severity_number"),
    ("severityText", "severity_text"),
    ("spanId", "span_id"),
    ("startTimeUnixNano", "start_time_unix_nano"),
    ("stringValue", "string_value"),
    ("timeUnixNano", "time_unix_nano"),
    ("traceId", "trace_id"),
    ("traceState", "trace_state"),
    ("zeroCount", "zero_count"),
    ("zeroThreshold", "zero_threshold"),
];

/// `camel` or its snake_case form; `null` counts as absent.
fn get<'a>(m: &'a Obj, camel: &str) -> Option<&'a Value> {
    let v = m.get(camel).or_else(|| {
        let (_, snake) = SNAKE.iter().find(|(c, _)| *c == camel)?;
        m.get(*snake)
    })?;
    (!v.is_null()).then_some(v)
}

fn obj<'a>(v: &'a Value, what: &str) -> Result<&'a Obj> {
    v.as_object()
        .ok_or_else(|| err(format!("{what}: expected an object")))
}

fn opt_obj<'a>(m: &'a Obj, key: &str) -> Result<Option<&'a Obj>> {
    get(m, key).map(|v| obj(v, key)).transpose()
}

fn arr<'a>(m: &'a Obj, key: &str) -> Result<&'a [Value]> {
    match get(m, key) {
        None => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(err(format!("{key}: expected an array"))),
    }
}

fn objs<'a>(m: &'a Obj, key: &str) -> Result<Vec<&'a Obj>> {
    arr(m, key)?.iter().map(|v| obj(v, key)).collect()
}

fn string(m: &Obj, key: &str) -> Result<String> {
    match get(m, key) {
        None => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(err(format!("{key}: expected a string"))),
    }
}

fn boolean(m: &Obj, key: &str) -> Result<bool> {
    match get(m, key) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(err(format!("{key}: expected a boolean"))),
    }
}

fn u64_of(v: &Value, key: &str) -> Result<u64> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 1.8e19)
                    .map(|f| f as u64)
            })
            .ok_or_else(|| err(format!("{key}: expected an unsigned 64-bit integer"))),
        Value::String(s) => s
            .parse()
            .map_err(|_| err(format!("{key}: expected an unsigned 64-bit integer"))),
        _ => Err(err(format!("{key}: expected an unsigned 64-bit integer"))),
    }
}

fn i64_of(v: &Value, key: &str) -> Result<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                    .map(|f| f as i64)
            })
            .ok_or_else(|| err(format!("{key}: expected a 64-bit integer"))),
        Value::String(s) => s
            .parse()
            .map_err(|_| err(format!("{key}: expected a 64-bit integer"))),
        _ => Err(err(format!("{key}: expected a 64-bit integer"))),
    }
}

fn f64_of(v: &Value, key: &str) -> Result<f64> {
    match v {
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| err(format!("{key}: expected a number"))),
        Value::String(s) => match s.as_str() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            other => other
                .parse()
                .map_err(|_| err(format!("{key}: expected a number"))),
        },
        _ => Err(err(format!("{key}: expected a number"))),
    }
}

fn u64f(m: &Obj, key: &str) -> Result<u64> {
    get(m, key).map_or(Ok(0), |v| u64_of(v, key))
}

fn i32f(m: &Obj, key: &str) -> Result<i32> {
    get(m, key).map_or(Ok(0), |v| {
        i32::try_from(i64_of(v, key)?).map_err(|_| err(format!("{key}: out of range")))
    })
}

fn u32f(m: &Obj, key: &str) -> Result<u32> {
    get(m, key).map_or(Ok(0), |v| {
        u32::try_from(u64_of(v, key)?).map_err(|_| err(format!("{key}: out of range")))
    })
}

fn f64f(m: &Obj, key: &str) -> Result<f64> {
    get(m, key).map_or(Ok(0.0), |v| f64_of(v, key))
}

fn opt_f64(m: &Obj, key: &str) -> Result<Option<f64>> {
    get(m, key).map(|v| f64_of(v, key)).transpose()
}

/// An enum given as an integer or as one of `names` (index = value).
fn enumf(m: &Obj, key: &str, names: &[&str]) -> Result<i32> {
    match get(m, key) {
        None => Ok(0),
        Some(Value::String(s)) => {
            if let Some(i) = names.iter().position(|n| n == s) {
                return i32::try_from(i).map_err(|_| err(key.to_string()));
            }
            s.parse()
                .map_err(|_| err(format!("{key}: unknown enum value {s:?}")))
        }
        Some(v) => i32::try_from(i64_of(v, key)?).map_err(|_| err(format!("{key}: out of range"))),
    }
}

fn hexf(m: &Obj, key: &str) -> Result<Vec<u8>> {
    let s = string(m, key)?;
    let b = s.as_bytes();
    if b.len() % 2 != 0 {
        return Err(err(format!("{key}: odd-length hex")));
    }
    let nib = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    b.chunks_exact(2)
        .map(|p| {
            nib(p[0])
                .zip(nib(p[1]))
                .map(|(h, l)| (h << 4) | l)
                .ok_or_else(|| err(format!("{key}: invalid hex")))
        })
        .collect()
}

fn base64(s: &str) -> Result<Vec<u8>> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' | b'-' => Some(62),
        b'/' | b'_' => Some(63),
        _ => None,
    };
    let trimmed = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(trimmed.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in trimmed.bytes() {
        let v = val(c).ok_or_else(|| err("bytesValue: invalid base64"))?;
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if bits >= 6 {
        return Err(err("bytesValue: invalid base64 length"));
    }
    Ok(out)
}

fn any_value(m: &Obj) -> Result<AnyValue> {
    use any_value::Value as V;
    let value = if let Some(v) = get(m, "stringValue") {
        Some(V::StringValue(
            v.as_str()
                .ok_or_else(|| err("stringValue: expected a string"))?
                .to_string(),
        ))
    } else if get(m, "boolValue").is_some() {
        Some(V::BoolValue(boolean(m, "boolValue")?))
    } else if let Some(v) = get(m, "intValue") {
        Some(V::IntValue(i64_of(v, "intValue")?))
    } else if let Some(v) = get(m, "doubleValue") {
        Some(V::DoubleValue(f64_of(v, "doubleValue")?))
    } else if let Some(v) = get(m, "arrayValue") {
        let a = obj(v, "arrayValue")?;
        Some(V::ArrayValue(ArrayValue {
            values: objs(a, "values")?
                .into_iter()
                .map(any_value)
                .collect::<Result<_>>()?,
        }))
    } else if let Some(v) = get(m, "kvlistValue") {
        let items: Vec<&Obj> = match v {
            Value::Array(a) => a
                .iter()
                .map(|x| obj(x, "kvlistValue"))
                .collect::<Result<_>>()?,
            Value::Object(o) => objs(o, "values")?,
            _ => return Err(err("kvlistValue: expected an object")),
        };
        Some(V::KvlistValue(KeyValueList {
            values: items.into_iter().map(key_value).collect::<Result<_>>()?,
        }))
    } else if let Some(v) = get(m, "bytesValue") {
        Some(V::BytesValue(base64(
            v.as_str()
                .ok_or_else(|| err("bytesValue: expected a string"))?,
        )?))
    } else {
        None
    };
    Ok(AnyValue { value })
}

fn key_value(m: &Obj) -> Result<KeyValue> {
    Ok(KeyValue {
        key: string(m, "key")?,
        value: opt_obj(m, "value")?.map(any_value).transpose()?,
        ..Default::default()
    })
}

fn attributes(m: &Obj) -> Result<Vec<KeyValue>> {
    objs(m, "attributes")?.into_iter().map(key_value).collect()
}

fn resource(m: &Obj) -> Result<Option<Resource>> {
    opt_obj(m, "resource")?
        .map(|r| {
            Ok(Resource {
                attributes: attributes(r)?,
                dropped_attributes_count: u32f(r, "droppedAttributesCount")?,
                ..Default::default()
            })
        })
        .transpose()
}

fn scope(m: &Obj) -> Result<Option<InstrumentationScope>> {
    opt_obj(m, "scope")?
        .map(|s| {
            Ok(InstrumentationScope {
                name: string(s, "name")?,
                version: string(s, "version")?,
                attributes: attributes(s)?,
                dropped_attributes_count: u32f(s, "droppedAttributesCount")?,
            })
        })
        .transpose()
}

const TEMPORALITY: &[&str] = &[
    "AGGREGATION_TEMPORALITY_UNSPECIFIED",
    "AGGREGATION_TEMPORALITY_DELTA",
    "AGGREGATION_TEMPORALITY_CUMULATIVE",
];

/// Parse an OTLP/JSON `ExportMetricsServiceRequest`.
pub fn metrics_request(body: &[u8]) -> Result<ExportMetricsServiceRequest> {
    let top = parse(body)?;
    let mut out = ExportMetricsServiceRequest::default();
    for rm in objs(&top, "resourceMetrics")? {
        let mut r = ResourceMetrics {
            resource: resource(rm)?,
            schema_url: string(rm, "schemaUrl")?,
            ..Default::default()
        };
        for sm in objs(rm, "scopeMetrics")? {
            let mut s = ScopeMetrics {
                scope: scope(sm)?,
                schema_url: string(sm, "schemaUrl")?,
                ..Default::default()
            };
            for m in objs(sm, "metrics")? {
                s.metrics.push(metric_of(m)?);
            }
            r.scope_metrics.push(s);
        }
        out.resource_metrics.push(r);
    }
    Ok(out)
}

fn metric_of(m: &Obj) -> Result<Metric> {
    let data = if let Some(g) = opt_obj(m, "gauge")? {
        Some(metric::Data::Gauge(Gauge {
            data_points: number_points(g)?,
        }))
    } else if let Some(s) = opt_obj(m, "sum")? {
        Some(metric::Data::Sum(Sum {
            data_points: number_points(s)?,
            aggregation_temporality: enumf(s, "aggregationTemporality", TEMPORALITY)?,
            is_monotonic: boolean(s, "isMonotonic")?,
        }))
    } else if let Some(h) = opt_obj(m, "histogram")? {
        Some(metric::Data::Histogram(Histogram {
            data_points: objs(h, "dataPoints")?
                .into_iter()
                .map(histogram_point)
                .collect::<Result<_>>()?,
            aggregation_temporality: enumf(h, "aggregationTemporality", TEMPORALITY)?,
        }))
    } else if let Some(h) = opt_obj(m, "exponentialHistogram")? {
        Some(metric::Data::ExponentialHistogram(ExponentialHistogram {
            data_points: objs(h, "dataPoints")?
                .into_iter()
                .map(exp_point)
                .collect::<Result<_>>()?,
            aggregation_temporality: enumf(h, "aggregationTemporality", TEMPORALITY)?,
        }))
    } else if let Some(s) = opt_obj(m, "summary")? {
        Some(metric::Data::Summary(Summary {
            data_points: objs(s, "dataPoints")?
                .into_iter()
                .map(summary_point)
                .collect::<Result<_>>()?,
        }))
    } else {
        None
    };
    Ok(Metric {
        name: string(m, "name")?,
        description: string(m, "description")?,
        unit: string(m, "unit")?,
        metadata: objs(m, "metadata")?
            .into_iter()
            .map(key_value)
            .collect::<Result<_>>()?,
        data,
    })
}

fn number_points(m: &Obj) -> Result<Vec<NumberDataPoint>> {
    objs(m, "dataPoints")?
        .into_iter()
        .map(|p| {
            let value = if let Some(v) = get(p, "asDouble") {
                Some(number_data_point::Value::AsDouble(f64_of(v, "asDouble")?))
            } else if let Some(v) = get(p, "asInt") {
                Some(number_data_point::Value::AsInt(i64_of(v, "asInt")?))
            } else {
                None
            };
            Ok(NumberDataPoint {
                attributes: attributes(p)?,
                start_time_unix_nano: u64f(p, "startTimeUnixNano")?,
                time_unix_nano: u64f(p, "timeUnixNano")?,
                exemplars: Vec::new(),
                flags: u32f(p, "flags")?,
                value,
            })
        })
        .collect()
}

fn u64_list(m: &Obj, key: &str) -> Result<Vec<u64>> {
    arr(m, key)?.iter().map(|v| u64_of(v, key)).collect()
}

fn histogram_point(p: &Obj) -> Result<HistogramDataPoint> {
    Ok(HistogramDataPoint {
        attributes: attributes(p)?,
        start_time_unix_nano: u64f(p, "startTimeUnixNano")?,
        time_unix_nano: u64f(p, "timeUnixNano")?,
        count: u64f(p, "count")?,
        sum: opt_f64(p, "sum")?,
        bucket_counts: u64_list(p, "bucketCounts")?,
        explicit_bounds: arr(p, "explicitBounds")?
            .iter()
            .map(|v| f64_of(v, "explicitBounds"))
            .collect::<Result<_>>()?,
        exemplars: Vec::new(),
        flags: u32f(p, "flags")?,
        min: opt_f64(p, "min")?,
        max: opt_f64(p, "max")?,
    })
}

fn buckets(p: &Obj, key: &str) -> Result<Option<exponential_histogram_data_point::Buckets>> {
    opt_obj(p, key)?
        .map(|b| {
            Ok(exponential_histogram_data_point::Buckets {
                offset: i32f(b, "offset")?,
                bucket_counts: u64_list(b, "bucketCounts")?,
            })
        })
        .transpose()
}

fn exp_point(p: &Obj) -> Result<ExponentialHistogramDataPoint> {
    Ok(ExponentialHistogramDataPoint {
        attributes: attributes(p)?,
        start_time_unix_nano: u64f(p, "startTimeUnixNano")?,
        time_unix_nano: u64f(p, "timeUnixNano")?,
        count: u64f(p, "count")?,
        sum: opt_f64(p, "sum")?,
        scale: i32f(p, "scale")?,
        zero_count: u64f(p, "zeroCount")?,
        positive: buckets(p, "positive")?,
        negative: buckets(p, "negative")?,
        flags: u32f(p, "flags")?,
        exemplars: Vec::new(),
        min: opt_f64(p, "min")?,
        max: opt_f64(p, "max")?,
        zero_threshold: f64f(p, "zeroThreshold")?,
    })
}

fn summary_point(p: &Obj) -> Result<SummaryDataPoint> {
    Ok(SummaryDataPoint {
        attributes: attributes(p)?,
        start_time_unix_nano: u64f(p, "startTimeUnixNano")?,
        time_unix_nano: u64f(p, "timeUnixNano")?,
        count: u64f(p, "count")?,
        sum: f64f(p, "sum")?,
        quantile_values: objs(p, "quantileValues")?
            .into_iter()
            .map(|q| {
                Ok(summary_data_point::ValueAtQuantile {
                    quantile: f64f(q, "quantile")?,
                    value: f64f(q, "value")?,
                })
            })
            .collect::<Result<_>>()?,
        flags: u32f(p, "flags")?,
    })
}

const SEVERITY: &[&str] = &[
    "SEVERITY_NUMBER_UNSPECIFIED",
    "SEVERITY_NUMBER_TRACE",
    "SEVERITY_NUMBER_TRACE2",
    "SEVERITY_NUMBER_TRACE3",
    "SEVERITY_NUMBER_TRACE4",
    "SEVERITY_NUMBER_DEBUG",
    "SEVERITY_NUMBER_DEBUG2",
    "SEVERITY_NUMBER_DEBUG3",
    "SEVERITY_NUMBER_DEBUG4",
    "SEVERITY_NUMBER_INFO",
    "SEVERITY_NUMBER_INFO2",
    "SEVERITY_NUMBER_INFO3",
    "SEVERITY_NUMBER_INFO4",
    "SEVERITY_NUMBER_WARN",
    "SEVERITY_NUMBER_WARN2",
    "SEVERITY_NUMBER_WARN3",
    "SEVERITY_NUMBER_WARN4",
    "SEVERITY_NUMBER_ERROR",
    "SEVERITY_NUMBER_ERROR2",
    "SEVERITY_NUMBER_ERROR3",
    "SEVERITY_NUMBER_ERROR4",
    "SEVERITY_NUMBER_FATAL",
    "SEVERITY_NUMBER_FATAL2",
    "SEVERITY_NUMBER_FATAL3",
    "SEVERITY_NUMBER_FATAL4",
];

/// Parse an OTLP/JSON `ExportLogsServiceRequest`.
pub fn logs_request(body: &[u8]) -> Result<ExportLogsServiceRequest> {
    let top = parse(body)?;
    let mut out = ExportLogsServiceRequest::default();
    for rl in objs(&top, "resourceLogs")? {
        let mut r = ResourceLogs {
            resource: resource(rl)?,
            schema_url: string(rl, "schemaUrl")?,
            ..Default::default()
        };
        for sl in objs(rl, "scopeLogs")? {
            let mut s = ScopeLogs {
                scope: scope(sl)?,
                schema_url: string(sl, "schemaUrl")?,
                ..Default::default()
            };
            for l in objs(sl, "logRecords")? {
                s.log_records.push(LogRecord {
                    time_unix_nano: u64f(l, "timeUnixNano")?,
                    observed_time_unix_nano: u64f(l, "observedTimeUnixNano")?,
                    severity_number: enumf(l, "severityNumber", SEVERITY)?,
                    severity_text: string(l, "severityText")?,
                    body: opt_obj(l, "body")?.map(any_value).transpose()?,
                    attributes: attributes(l)?,
                    dropped_attributes_count: u32f(l, "droppedAttributesCount")?,
                    flags: u32f(l, "flags")?,
                    trace_id: hexf(l, "traceId")?,
                    span_id: hexf(l, "spanId")?,
                    event_name: string(l, "eventName")?,
                });
            }
            r.scope_logs.push(s);
        }
        out.resource_logs.push(r);
    }
    Ok(out)
}

const SPAN_KIND: &[&str] = &[
    "SPAN_KIND_UNSPECIFIED",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
];
const STATUS: &[&str] = &["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"];

/// Parse an OTLP/JSON `ExportTraceServiceRequest`.
pub fn traces_request(body: &[u8]) -> Result<ExportTraceServiceRequest> {
    let top = parse(body)?;
    let mut out = ExportTraceServiceRequest::default();
    for rs in objs(&top, "resourceSpans")? {
        let mut r = ResourceSpans {
            resource: resource(rs)?,
            schema_url: string(rs, "schemaUrl")?,
            ..Default::default()
        };
        for ss in objs(rs, "scopeSpans")? {
            let mut s = ScopeSpans {
                scope: scope(ss)?,
                schema_url: string(ss, "schemaUrl")?,
                ..Default::default()
            };
            for sp in objs(ss, "spans")? {
                s.spans.push(Span {
                    trace_id: hexf(sp, "traceId")?,
                    span_id: hexf(sp, "spanId")?,
                    trace_state: string(sp, "traceState")?,
                    parent_span_id: hexf(sp, "parentSpanId")?,
                    flags: u32f(sp, "flags")?,
                    name: string(sp, "name")?,
                    kind: enumf(sp, "kind", SPAN_KIND)?,
                    start_time_unix_nano: u64f(sp, "startTimeUnixNano")?,
                    end_time_unix_nano: u64f(sp, "endTimeUnixNano")?,
                    attributes: attributes(sp)?,
                    dropped_attributes_count: u32f(sp, "droppedAttributesCount")?,
                    status: opt_obj(sp, "status")?
                        .map(|st| {
                            Ok::<_, Error>(Status {
                                message: string(st, "message")?,
                                code: enumf(st, "code", STATUS)?,
                            })
                        })
                        .transpose()?,
                    ..Default::default()
                });
            }
            r.scope_spans.push(s);
        }
        out.resource_spans.push(r);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_camel_key_has_its_snake_form() {
        let src = include_str!("json.rs");
        for (camel, snake) in SNAKE {
            let mut want = String::new();
            for c in camel.chars() {
                if c.is_ascii_uppercase() {
                    want.push('_');
                    want.push(c.to_ascii_lowercase());
                } else {
                    want.push(c);
                }
            }
            assert_eq!(*snake, want);
        }
        // every camelCase literal used as a key is in the table
        for lit in src.split('"').skip(1).step_by(2) {
            let is_camel = lit.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                && lit.chars().any(|c| c.is_ascii_uppercase())
                && lit.chars().all(|c| c.is_ascii_alphanumeric());
            if is_camel {
                assert!(
                    SNAKE.iter().any(|(c, _)| *c == lit),
                    "{lit} missing from SNAKE"
                );
            }
        }
    }

    #[test]
    fn base64_decodes() {
        assert_eq!(base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64("aGVsbG8").unwrap(), b"hello");
        assert_eq!(base64("").unwrap(), b"");
        assert!(base64("a").is_err());
        assert!(base64("a*").is_err());
    }

    #[test]
    fn snake_case_and_enum_names() {
        let body = br#"{"resource_spans":[{"scope_spans":[{"spans":[{"trace_id":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","kind":"SPAN_KIND_CLIENT","status":{"code":"STATUS_CODE_ERROR"},"startTimeUnixNano":"5"}]}]}]}"#;
        let r = traces_request(body).unwrap();
        let s = &r.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(s.trace_id.len(), 16);
        assert_eq!(s.kind, 3);
        assert_eq!(s.status.as_ref().unwrap().code, 2);
        assert_eq!(s.start_time_unix_nano, 5);
    }

    #[test]
    fn wrong_shapes_are_errors() {
        for body in [
            &br#"[]"#[..],
            br#"{"resourceMetrics": 3}"#,
            br#"{"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": 1}]}]}]}"#,
            br#"{"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"gauge": {"dataPoints": [{"timeUnixNano": "x"}]}}]}]}]}"#,
            br#"{"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"gauge": {"dataPoints": [{"timeUnixNano": "-1"}]}}]}]}]}"#,
            br#"{"resourceMetrics": [{"resour"#,
        ] {
            let e = metrics_request(body).unwrap_err();
            assert_eq!(e.http_status(), 400, "{e}");
        }
        let e = logs_request(
            br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"traceId":"zz"}]}]}]}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("hex"), "{e}");
    }
}
