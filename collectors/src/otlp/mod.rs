//! OTLP (protobuf and OTLP/JSON) → `samples`, `histograms`, `inferences`,
//! `logs` and `spans` batches.
//!
//! Decisions (copy into ARCHITECTURE.md):
//! - **Attribution**: `model.name` / `model.version` (configurable, see
//!   [`OtlpConfig`]) are looked up in the merged attributes, data point (or
//!   log record / span) over scope over resource: the most specific level
//!   wins, key by key. They become the `model` / `version` columns and are
//!   removed from the attribute map.
//! - **Attribute maps**: resource, scope and point attributes merged the
//!   same way into one `Map<Utf8, Utf8>` (`labels` in `samples` /
//!   `histograms`, `attributes` elsewhere). Values as text: strings as is,
//!   booleans `true`/`false`, integers in decimal, doubles in Rust's
//!   shortest round-trip form, bytes in lower-case hex, arrays and kvlists as
//!   JSON text.
//! - **Partial success**: an invalid point, log record or span is counted in
//!   `rejected` with the first few reasons in `message` (for OTLP's
//!   `partial_success`) while the valid ones are kept; an undecodable body is
//!   an [`crate::Error`] (→ 400).
//! - **No gzip here**: the daemon inflates `Content-Encoding: gzip` within
//!   its body limit before calling these functions (this crate does no I/O
//!   and stays free of compression dependencies for OTLP).
//! - JSON is mapped by hand ([`json`]): the bodies are converted into the
//!   same prost request types as protobuf, then share one mapping, so JSON
//!   and protobuf give identical batches.

pub mod json;
pub mod logs;
pub mod metrics;
pub mod traces;

use std::borrow::Cow;
use std::fmt::Write as _;

use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;

use crate::schema::LabelPair;
use crate::{Error, Result};

pub use logs::{LogsBatches, LogsSummary, decode_logs, decode_logs_request};
pub use metrics::{MetricsBatches, MetricsSummary, decode_metrics, decode_metrics_request};
pub use traces::{TracesBatches, TracesSummary, decode_traces, decode_traces_request};

/// The re-exported prost types (`opentelemetry-proto` 0.33), so the daemon
/// builds its tonic services and responses against the same versions.
pub use opentelemetry_proto::tonic as proto;

/// Body encoding of an OTLP request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `application/x-protobuf` (and gRPC).
    Protobuf,
    /// `application/json`: OTLP/JSON.
    Json,
}

impl Encoding {
    /// The encoding named by an HTTP `Content-Type`; anything but
    /// `application/x-protobuf` and `application/json` (parameters such as
    /// `charset` ignored) is [`Error::UnsupportedMediaType`] (→ 415).
    /// The response must use the same content type.
    pub fn from_content_type(content_type: Option<&str>) -> Result<Self> {
        let ct = content_type.unwrap_or("");
        let media = ct.split(';').next().unwrap_or("").trim();
        if media.eq_ignore_ascii_case("application/x-protobuf") {
            Ok(Encoding::Protobuf)
        } else if media.eq_ignore_ascii_case("application/json") {
            Ok(Encoding::Json)
        } else {
            Err(Error::UnsupportedMediaType(format!(
                "content type {ct:?}; OTLP/HTTP accepts application/x-protobuf or application/json"
            )))
        }
    }
}

/// OTLP decoding options.
#[derive(Debug, Clone)]
pub struct OtlpConfig {
    /// Attribute naming the model (default `model.name`).
    pub model_key: String,
    /// Attribute naming the model version (default `model.version`).
    pub version_key: String,
    /// Prefix of log attributes that are features (default `feature.`);
    /// stripped in the `features_*` maps.
    pub feature_prefix: String,
    /// Log attribute holding the prediction (default `prediction`).
    pub prediction_key: String,
    /// Log attribute holding the ground-truth label (default `label`).
    pub label_key: String,
    /// Log attribute holding the inference id (default `inference.id`).
    pub inference_id_key: String,
    /// Largest estimated size of the produced rows (resource attributes are
    /// repeated on every row; default 1 GiB, never more than 2 GiB - 1).
    pub max_output_bytes: u64,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        Self {
            model_key: "model.name".into(),
            version_key: "model.version".into(),
            feature_prefix: "feature.".into(),
            prediction_key: "prediction".into(),
            label_key: "label".into(),
            inference_id_key: "inference.id".into(),
            max_output_bytes: 1 << 30,
        }
    }
}

/// Rejected items for OTLP `partial_success`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rejections {
    /// Number of rejected points / log records / spans.
    pub rejected: u64,
    /// The first few reasons, `; `-separated, empty when nothing was
    /// rejected.
    pub message: String,
}

const MAX_REASONS: u64 = 5;

impl Rejections {
    pub(crate) fn reject(&mut self, what: impl FnOnce() -> String) {
        self.rejected += 1;
        if self.rejected <= MAX_REASONS {
            if !self.message.is_empty() {
                self.message.push_str("; ");
            }
            self.message.push_str(&what());
        } else if self.rejected == MAX_REASONS + 1 {
            self.message.push_str("; …");
        }
    }
}

/// Keeps the produced row bytes under the configured limit.
pub(crate) struct Budget {
    used: u64,
    limit: u64,
}

impl Budget {
    pub fn new(limit: u64) -> Self {
        Self {
            used: 0,
            limit: limit.min(i32::MAX as u64 - 1),
        }
    }

    pub fn spend(&mut self, bytes: u64) -> Result<()> {
        self.used = self.used.saturating_add(bytes + 64);
        if self.used > self.limit {
            return Err(Error::OutputTooLarge {
                estimated: self.used,
                limit: self.limit,
            });
        }
        Ok(())
    }
}

/// Decodes a request body, protobuf or OTLP/JSON (`json` parses the
/// latter); `message` names the protobuf type in errors.
pub(crate) fn request<R: prost::Message + Default>(
    body: &[u8],
    encoding: Encoding,
    message: &'static str,
    json: fn(&[u8]) -> Result<R>,
) -> Result<R> {
    match encoding {
        Encoding::Protobuf => R::decode(body).map_err(|source| Error::Protobuf { message, source }),
        Encoding::Json => json(body),
    }
}

/// A merged attribute view: sorted by key, unique keys, borrowing the
/// request.
pub(crate) type Attrs<'a> = Vec<(&'a str, Option<&'a AnyValue>)>;

/// Sort and de-duplicate (the last occurrence of a key wins).
pub(crate) fn attrs_of(kvs: &[KeyValue]) -> Attrs<'_> {
    let mut v: Attrs<'_> = kvs
        .iter()
        .map(|kv| (kv.key.as_str(), kv.value.as_ref()))
        .collect();
    // stable sort keeps the input order among equal keys
    v.sort_by(|a, b| a.0.cmp(b.0));
    let mut out: Attrs<'_> = Vec::with_capacity(v.len());
    for item in v {
        match out.last_mut() {
            Some(last) if last.0 == item.0 => *last = item,
            _ => out.push(item),
        }
    }
    out
}

/// The attributes of a resource, for everything below it (none when the
/// resource is absent).
pub(crate) fn resource_attrs(resource: Option<&Resource>) -> Attrs<'_> {
    resource
        .map(|r| attrs_of(&r.attributes))
        .unwrap_or_default()
}

/// The attributes every item of a scope starts from: the resource's,
/// overridden by the scope's own (none when the scope is absent).
pub(crate) fn scope_attrs<'a>(
    resource: &Attrs<'a>,
    scope: Option<&'a InstrumentationScope>,
) -> Attrs<'a> {
    match scope {
        Some(s) => merge(resource, &attrs_of(&s.attributes)),
        None => merge(resource, &[]),
    }
}

/// Merge two sorted unique attribute lists; `over` wins on equal keys.
pub(crate) fn merge<'a>(
    base: &[(&'a str, Option<&'a AnyValue>)],
    over: &[(&'a str, Option<&'a AnyValue>)],
) -> Attrs<'a> {
    if over.is_empty() {
        return base.to_vec();
    }
    if base.is_empty() {
        return over.to_vec();
    }
    let mut out = Vec::with_capacity(base.len() + over.len());
    let (mut i, mut j) = (0, 0);
    while i < base.len() && j < over.len() {
        match base[i].0.cmp(over[j].0) {
            std::cmp::Ordering::Less => {
                out.push(base[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(over[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(over[j]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&base[i..]);
    out.extend_from_slice(&over[j..]);
    out
}

/// Attribution taken out of a merged attribute list.
pub(crate) struct Attributed<'a> {
    pub model: Option<Cow<'a, str>>,
    pub version: Option<Cow<'a, str>>,
    pub rest: Attrs<'a>,
}

pub(crate) fn attribute<'a>(merged: Attrs<'a>, cfg: &OtlpConfig) -> Attributed<'a> {
    let mut model = None;
    let mut version = None;
    let mut rest = merged;
    rest.retain(|(k, v)| {
        if *k == cfg.model_key {
            model = v.map(any_to_cow).filter(|s| !s.is_empty());
            false
        } else if *k == cfg.version_key {
            version = v.map(any_to_cow).filter(|s| !s.is_empty());
            false
        } else {
            true
        }
    });
    Attributed {
        model,
        version,
        rest,
    }
}

/// Attribution and text labels of one point: `base` (resource + scope,
/// merged) overlaid with the point's own attributes, attribution keys
/// taken out. One allocation when the point's attributes are already
/// sorted and unique (as most SDKs send them), two otherwise.
pub(crate) fn point_labels<'a>(
    base: &[(&'a str, Option<&'a AnyValue>)],
    point: &'a [KeyValue],
    cfg: &OtlpConfig,
) -> (
    Option<Cow<'a, str>>,
    Option<Cow<'a, str>>,
    Vec<LabelPair<'a>>,
) {
    let mut model = None;
    let mut version = None;
    let mut labels: Vec<LabelPair<'a>> = Vec::with_capacity(base.len() + point.len());
    let mut emit = |k: &'a str, v: Option<&'a AnyValue>| {
        if k == cfg.model_key {
            model = v.map(any_to_cow).filter(|s| !s.is_empty());
        } else if k == cfg.version_key {
            version = v.map(any_to_cow).filter(|s| !s.is_empty());
        } else {
            labels.push((k, v.map(any_to_cow).unwrap_or_default()));
        }
    };
    let sorted = point.windows(2).all(|w| w[0].key < w[1].key);
    let owned;
    let over: Box<dyn Iterator<Item = (&'a str, Option<&'a AnyValue>)> + '_> = if sorted {
        Box::new(point.iter().map(|kv| (kv.key.as_str(), kv.value.as_ref())))
    } else {
        owned = attrs_of(point);
        Box::new(owned.iter().copied())
    };
    let mut over = over.peekable();
    let mut base = base.iter().copied().peekable();
    loop {
        match (base.peek(), over.peek()) {
            (Some(b), Some(o)) => match b.0.cmp(o.0) {
                std::cmp::Ordering::Less => {
                    emit(b.0, b.1);
                    base.next();
                }
                std::cmp::Ordering::Greater => {
                    emit(o.0, o.1);
                    over.next();
                }
                std::cmp::Ordering::Equal => {
                    emit(o.0, o.1);
                    base.next();
                    over.next();
                }
            },
            (Some(b), None) => {
                emit(b.0, b.1);
                base.next();
            }
            (None, Some(o)) => {
                emit(o.0, o.1);
                over.next();
            }
            (None, None) => break,
        }
    }
    (model, version, labels)
}

/// Attributes as text pairs (see the module doc for the rendering).
#[cfg(test)]
pub(crate) fn to_string_pairs<'a>(attrs: &[(&'a str, Option<&'a AnyValue>)]) -> Vec<LabelPair<'a>> {
    attrs
        .iter()
        .map(|&(k, v)| (k, v.map(any_to_cow).unwrap_or_default()))
        .collect()
}

pub(crate) fn pairs_bytes(p: &[LabelPair<'_>]) -> u64 {
    p.iter().map(|(k, v)| (k.len() + v.len() + 8) as u64).sum()
}

/// Render an attribute value as text, borrowing strings.
pub(crate) fn any_to_cow(v: &AnyValue) -> Cow<'_, str> {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => Cow::Borrowed(s),
        _ => Cow::Owned(any_to_string(v)),
    }
}

/// Render an attribute value as text.
pub fn any_to_string(v: &AnyValue) -> String {
    use any_value::Value;
    match &v.value {
        None => String::new(),
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        Some(Value::BytesValue(b)) => hex(b),
        Some(Value::StringValueStrindex(_)) => String::new(),
        Some(Value::ArrayValue(_)) | Some(Value::KvlistValue(_)) => any_to_json(v).to_string(),
    }
}

fn any_to_json(v: &AnyValue) -> serde_json::Value {
    use any_value::Value;
    use serde_json::Value as J;
    match &v.value {
        None | Some(Value::StringValueStrindex(_)) => J::Null,
        Some(Value::StringValue(s)) => J::String(s.clone()),
        Some(Value::BoolValue(b)) => J::Bool(*b),
        Some(Value::IntValue(i)) => J::from(*i),
        Some(Value::DoubleValue(d)) => {
            serde_json::Number::from_f64(*d).map_or_else(|| J::String(d.to_string()), J::Number)
        }
        Some(Value::BytesValue(b)) => J::String(hex(b)),
        Some(Value::ArrayValue(a)) => J::Array(a.values.iter().map(any_to_json).collect()),
        Some(Value::KvlistValue(kv)) => J::Object(
            kv.values
                .iter()
                .map(|kv| {
                    (
                        kv.key.clone(),
                        kv.value.as_ref().map_or(J::Null, any_to_json),
                    )
                })
                .collect(),
        ),
    }
}

/// The value as a number when it is an int or a double.
pub(crate) fn any_to_f64(v: &AnyValue) -> Option<f64> {
    match v.value {
        Some(any_value::Value::IntValue(i)) => Some(i as f64),
        Some(any_value::Value::DoubleValue(d)) => Some(d),
        _ => None,
    }
}

/// Lower-case hex.
pub(crate) fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for byte in b {
        let _ = write!(s, "{byte:02x}");
    }
    s
}

/// Non-empty id as hex, else None.
pub(crate) fn hex_id(b: &[u8]) -> Option<String> {
    if b.is_empty() { None } else { Some(hex(b)) }
}

/// Nanoseconds since the epoch → microseconds, 0 → None.
pub(crate) fn ns_to_us(ns: u64) -> Option<i64> {
    if ns == 0 {
        None
    } else {
        // u64::MAX / 1000 < i64::MAX: no overflow.
        Some((ns / 1000) as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::decode_tests::kvs as kv;
    use super::*;

    #[test]
    fn merge_most_specific_wins_key_by_key() {
        let res = [
            kv("model.name", "r"),
            kv("model.version", "1"),
            kv("host", "h"),
        ];
        let scope = [kv("model.version", "2")];
        let point = [kv("model.name", "p"), kv("a", "x")];
        let (r, s, p) = (attrs_of(&res), attrs_of(&scope), attrs_of(&point));
        let merged = merge(&merge(&r, &s), &p);
        let a = attribute(merged, &OtlpConfig::default());
        assert_eq!(a.model.as_deref(), Some("p"));
        assert_eq!(a.version.as_deref(), Some("2"));
        assert_eq!(
            to_string_pairs(&a.rest),
            vec![("a", "x".into()), ("host", "h".into())]
        );
    }

    #[test]
    fn point_labels_agrees_with_merge_then_attribute() {
        let res = [kv("model.name", "r"), kv("z", "1"), kv("host", "h")];
        let base = attrs_of(&res);
        let cfg = OtlpConfig::default();
        for point in [
            vec![kv("a", "x"), kv("model.name", "p"), kv("z", "2")],
            vec![
                kv("z", "2"),
                kv("a", "x"),
                kv("z", "3"),
                kv("model.version", "9"),
            ],
            vec![],
        ] {
            let (m, v, l) = point_labels(&base, &point, &cfg);
            let a = attribute(merge(&base, &attrs_of(&point)), &cfg);
            assert_eq!((m, v), (a.model, a.version));
            assert_eq!(l, to_string_pairs(&a.rest));
        }
    }

    #[test]
    fn duplicate_keys_last_wins() {
        let kvs = [kv("k", "1"), kv("j", "0"), kv("k", "2")];
        let a = attrs_of(&kvs);
        assert_eq!(
            to_string_pairs(&a),
            vec![("j", "0".into()), ("k", "2".into())]
        );
    }

    #[test]
    fn content_types() {
        assert_eq!(
            Encoding::from_content_type(Some("application/json; charset=utf-8")).unwrap(),
            Encoding::Json
        );
        assert_eq!(
            Encoding::from_content_type(Some("application/x-protobuf")).unwrap(),
            Encoding::Protobuf
        );
        assert_eq!(
            Encoding::from_content_type(Some("text/plain"))
                .unwrap_err()
                .http_status(),
            415
        );
        assert!(Encoding::from_content_type(None).is_err());
    }

    #[test]
    fn value_rendering() {
        use any_value::Value;
        let r = |v| any_to_string(&AnyValue { value: Some(v) });
        assert_eq!(r(Value::IntValue(-3)), "-3");
        assert_eq!(r(Value::DoubleValue(0.5)), "0.5");
        assert_eq!(r(Value::BoolValue(true)), "true");
        assert_eq!(r(Value::BytesValue(vec![0xab, 1])), "ab01");
        assert_eq!(
            r(Value::ArrayValue(
                opentelemetry_proto::tonic::common::v1::ArrayValue {
                    values: vec![AnyValue {
                        value: Some(Value::IntValue(1))
                    }]
                }
            )),
            "[1]"
        );
    }
}

#[cfg(test)]
mod decode_tests;
