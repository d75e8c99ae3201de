//! Decoding tests over real OTLP/JSON documents and hand-built requests.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::*;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;

use super::*;
use crate::ErrorClass;
use crate::test_support::{column, map_row};

const METRICS_JSON: &[u8] = include_bytes!("../../tests/fixtures/otlp/metrics.json");
const LOGS_JSON: &[u8] = include_bytes!("../../tests/fixtures/otlp/logs.json");
const TRACE_JSON: &[u8] = include_bytes!("../../tests/fixtures/otlp/trace.json");
const EVENTS_JSON: &[u8] = include_bytes!("../../tests/fixtures/otlp/events.json");
const MODEL_METRICS_JSON: &[u8] = include_bytes!("../../tests/fixtures/otlp/model_metrics.json");

fn s(v: &str) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(v.into())),
    })
}
fn kv(k: &str, v: Option<AnyValue>) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: v,
        ..Default::default()
    }
}
pub(super) fn kvs(k: &str, v: &str) -> KeyValue {
    kv(k, s(v))
}
fn int(i: i64) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::IntValue(i)),
    })
}
fn dbl(d: f64) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::DoubleValue(d)),
    })
}

fn str_col(b: &RecordBatch, c: &str) -> Vec<Option<String>> {
    let a = column(b, c).as_string::<i32>();
    (0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i).to_string()))
        .collect()
}
fn f64_col(b: &RecordBatch, c: &str) -> Vec<Option<f64>> {
    let a = column(b, c).as_primitive::<Float64Type>();
    (0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i)))
        .collect()
}
fn ts_col(b: &RecordBatch, c: &str) -> Vec<Option<i64>> {
    let a = column(b, c).as_primitive::<TimestampMicrosecondType>();
    (0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i)))
        .collect()
}
fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const T0: u64 = 1_700_000_000_000_000_000;
const T1: u64 = 1_700_000_010_000_000_000;

/// The request `model_metrics.json` encodes, built independently.
fn model_metrics_request() -> ExportMetricsServiceRequest {
    let metric = |name: &str, unit: &str, data| Metric {
        name: name.into(),
        unit: unit.into(),
        data: Some(data),
        ..Default::default()
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    kvs("service.name", "scorer"),
                    kvs("model.name", "fraud"),
                    kvs("model.version", "7"),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "scorer.metrics".into(),
                    version: "1.0.0".into(),
                    attributes: vec![kvs("model.version", "8")],
                    ..Default::default()
                }),
                metrics: vec![
                    metric(
                        "scorer.requests",
                        "{request}",
                        metric::Data::Sum(Sum {
                            aggregation_temporality: 2,
                            is_monotonic: true,
                            data_points: vec![NumberDataPoint {
                                attributes: vec![kv("code", int(200))],
                                start_time_unix_nano: T0,
                                time_unix_nano: T1,
                                value: Some(number_data_point::Value::AsInt(42)),
                                ..Default::default()
                            }],
                        }),
                    ),
                    metric(
                        "scorer.queue",
                        "",
                        metric::Data::Sum(Sum {
                            aggregation_temporality: 1,
                            is_monotonic: false,
                            data_points: vec![NumberDataPoint {
                                time_unix_nano: T1,
                                value: Some(number_data_point::Value::AsDouble(-3.5)),
                                ..Default::default()
                            }],
                        }),
                    ),
                    metric(
                        "scorer.score",
                        "",
                        metric::Data::Gauge(Gauge {
                            data_points: vec![
                                NumberDataPoint {
                                    attributes: vec![
                                        kvs("model.name", "fraud-canary"),
                                        kv("ratio", dbl(0.25)),
                                    ],
                                    time_unix_nano: T1,
                                    value: Some(number_data_point::Value::AsDouble(0.875)),
                                    ..Default::default()
                                },
                                NumberDataPoint {
                                    time_unix_nano: 1_700_000_020_000_000_000,
                                    flags: 1,
                                    ..Default::default()
                                },
                            ],
                        }),
                    ),
                    metric(
                        "scorer.latency",
                        "s",
                        metric::Data::Histogram(Histogram {
                            aggregation_temporality: 2,
                            data_points: vec![HistogramDataPoint {
                                start_time_unix_nano: T0,
                                time_unix_nano: T1,
                                count: 6,
                                sum: Some(1.5),
                                bucket_counts: vec![1, 2, 3],
                                explicit_bounds: vec![0.1, 0.5],
                                min: Some(0.05),
                                max: Some(0.9),
                                ..Default::default()
                            }],
                        }),
                    ),
                    metric(
                        "scorer.latency.exp",
                        "s",
                        metric::Data::ExponentialHistogram(ExponentialHistogram {
                            aggregation_temporality: 1,
                            data_points: vec![ExponentialHistogramDataPoint {
                                time_unix_nano: T1,
                                count: 7,
                                sum: Some(3.25),
                                scale: 2,
                                zero_count: 1,
                                zero_threshold: 0.001,
                                positive: Some(exponential_histogram_data_point::Buckets {
                                    offset: -1,
                                    bucket_counts: vec![2, 3],
                                }),
                                negative: Some(exponential_histogram_data_point::Buckets {
                                    offset: 0,
                                    bucket_counts: vec![1],
                                }),
                                ..Default::default()
                            }],
                        }),
                    ),
                    metric(
                        "scorer.size",
                        "",
                        metric::Data::Summary(Summary {
                            data_points: vec![SummaryDataPoint {
                                time_unix_nano: T1,
                                count: 10,
                                sum: 55.0,
                                quantile_values: vec![
                                    summary_data_point::ValueAtQuantile {
                                        quantile: 0.5,
                                        value: 5.0,
                                    },
                                    summary_data_point::ValueAtQuantile {
                                        quantile: 0.99,
                                        value: 9.9,
                                    },
                                ],
                                ..Default::default()
                            }],
                        }),
                    ),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn cfg() -> OtlpConfig {
    OtlpConfig::default()
}

#[test]
fn upstream_metrics_example_json() {
    let out = decode_metrics(METRICS_JSON, Encoding::Json, &cfg()).unwrap();
    let b = &out.samples;
    assert_eq!(b.schema(), crate::samples_schema());
    assert_eq!(
        str_col(b, "metric"),
        vec![Some("my.counter".into()), Some("my.gauge".into())]
    );
    assert_eq!(
        str_col(b, "kind"),
        vec![Some("counter".into()), Some("gauge".into())]
    );
    assert_eq!(f64_col(b, "value"), vec![Some(5.0), Some(10.0)]);
    assert_eq!(str_col(b, "temporality"), vec![Some("delta".into()), None]);
    assert_eq!(str_col(b, "unit"), vec![Some("1".into()), Some("1".into())]);
    assert_eq!(ts_col(b, "ts")[0], Some(1_544_712_660_300_000));
    assert_eq!(
        ts_col(b, "start_ts"),
        vec![Some(1_544_712_660_300_000), None]
    );
    assert_eq!(
        map_row(b, "labels", 0),
        pairs(&[
            ("my.counter.attr", "some value"),
            ("my.scope.attribute", "some scope attribute"),
            ("service.name", "my.service"),
        ])
    );
    assert_eq!(str_col(b, "model"), vec![None, None]);
    assert_eq!(out.summary.points_without_model, 3);
    let h = &out.histograms;
    assert_eq!(h.num_rows(), 1);
    assert_eq!(str_col(h, "kind"), vec![Some("explicit".into())]);
    assert_eq!(f64_col(h, "count"), vec![Some(2.0)]);
    assert_eq!(f64_col(h, "min"), vec![Some(0.0)]);
    assert_eq!(out.summary.rejections, Rejections::default());
    assert!(out.partial_success().is_none());
}

#[test]
fn every_point_type_with_attribution_and_json_equals_protobuf() {
    let want = model_metrics_request();
    let parsed = json::metrics_request(MODEL_METRICS_JSON).unwrap();
    assert_eq!(
        parsed, want,
        "JSON fixture parses to the hand-built request"
    );
    let from_json = decode_metrics(MODEL_METRICS_JSON, Encoding::Json, &cfg()).unwrap();
    let from_pb = decode_metrics(&want.encode_to_vec(), Encoding::Protobuf, &cfg()).unwrap();
    assert_eq!(from_json.samples, from_pb.samples);
    assert_eq!(from_json.histograms, from_pb.histograms);
    assert_eq!(from_json.summary, from_pb.summary);

    let b = &from_pb.samples;
    // requests, queue, score x2, size: _sum, _count, 2 quantiles
    assert_eq!(
        str_col(b, "metric"),
        [
            "scorer.requests",
            "scorer.queue",
            "scorer.score",
            "scorer.score",
            "scorer.size_sum",
            "scorer.size_count",
            "scorer.size",
            "scorer.size",
        ]
        .map(|s| Some(s.to_string()))
        .to_vec()
    );
    assert_eq!(
        str_col(b, "kind"),
        [
            "counter",
            "sum",
            "gauge",
            "gauge",
            "summary_sum",
            "summary_count",
            "summary_quantile",
            "summary_quantile"
        ]
        .map(|s| Some(s.to_string()))
        .to_vec()
    );
    let v = f64_col(b, "value");
    assert_eq!(v[0], Some(42.0));
    assert_eq!(v[1], Some(-3.5));
    assert_eq!(v[2], Some(0.875));
    assert_eq!(v[3].unwrap().to_bits(), crate::schema::STALE_NAN_BITS);
    assert_eq!(&v[4..], &[Some(55.0), Some(10.0), Some(5.0), Some(9.9)]);
    // A summary's quantile is a label, and has its own column.
    let quantiles: Vec<Option<String>> = crate::test_support::promoted_labels(b)
        .into_iter()
        .map(|[_, quantile, _, _]| quantile)
        .collect();
    assert_eq!(
        quantiles[4..],
        [
            None,
            None,
            Some("0.5".to_string()),
            Some("0.99".to_string())
        ]
    );
    let stale = column(b, "stale").as_boolean();
    assert!(stale.value(3) && !stale.value(2));
    assert_eq!(
        str_col(b, "temporality")[..2].to_vec(),
        vec![Some("cumulative".into()), Some("delta".into())]
    );
    let mono = column(b, "monotonic").as_boolean();
    assert!(mono.value(0) && !mono.value(1) && mono.is_null(2));
    // attribution: point over scope over resource, key by key
    let model = str_col(b, "model");
    let version = str_col(b, "version");
    assert_eq!(model[0].as_deref(), Some("fraud"));
    assert_eq!(model[2].as_deref(), Some("fraud-canary"));
    assert_eq!(version[0].as_deref(), Some("8"));
    assert_eq!(version[2].as_deref(), Some("8"));
    assert_eq!(
        map_row(b, "labels", 0),
        pairs(&[("code", "200"), ("service.name", "scorer")])
    );
    assert_eq!(
        map_row(b, "labels", 2),
        pairs(&[("ratio", "0.25"), ("service.name", "scorer")])
    );
    assert_eq!(
        map_row(b, "labels", 7),
        pairs(&[("quantile", "0.99"), ("service.name", "scorer")])
    );
    assert_eq!(str_col(b, "unit")[0].as_deref(), Some("{request}"));
    assert_eq!(str_col(b, "unit")[1], None);
    assert_eq!(from_pb.summary.points_without_model, 0);
    assert_eq!(from_pb.summary.data_points, 7);

    let h = &from_pb.histograms;
    assert_eq!(h.schema(), crate::histograms_schema());
    assert_eq!(
        str_col(h, "kind"),
        vec![Some("explicit".into()), Some("exponential".into())]
    );
    assert_eq!(f64_col(h, "count"), vec![Some(6.0), Some(7.0)]);
    assert_eq!(f64_col(h, "sum"), vec![Some(1.5), Some(3.25)]);
    let list = |c: &str, row: usize| {
        let l = h.column_by_name(c).unwrap().as_list::<i32>();
        (!l.is_null(row)).then(|| l.value(row).as_primitive::<Float64Type>().values().to_vec())
    };
    assert_eq!(list("bounds", 0), Some(vec![0.1, 0.5]));
    assert_eq!(list("bucket_counts", 0), Some(vec![1.0, 2.0, 3.0]));
    assert_eq!(list("bounds", 1), None);
    assert_eq!(list("positive_counts", 1), Some(vec![2.0, 3.0]));
    assert_eq!(list("negative_counts", 1), Some(vec![1.0]));
    let i32c = |c: &str| {
        let a = column(h, c).as_primitive::<Int32Type>();
        (0..a.len())
            .map(|i| a.is_valid(i).then(|| a.value(i)))
            .collect::<Vec<_>>()
    };
    assert_eq!(i32c("scale"), vec![None, Some(2)]);
    assert_eq!(i32c("positive_offset"), vec![None, Some(-1)]);
    assert_eq!(f64_col(h, "zero_count"), vec![None, Some(1.0)]);
    assert_eq!(
        str_col(h, "temporality"),
        vec![Some("cumulative".into()), Some("delta".into())]
    );
    assert_eq!(str_col(h, "model"), vec![Some("fraud".into()); 2]);
    assert_eq!(str_col(h, "unit"), vec![Some("s".into()); 2]);
}

#[test]
fn configurable_attribution_keys() {
    let c = OtlpConfig {
        model_key: "ml.model".into(),
        version_key: "ml.version".into(),
        ..cfg()
    };
    let mut req = model_metrics_request();
    req.resource_metrics[0]
        .resource
        .as_mut()
        .unwrap()
        .attributes = vec![kvs("ml.model", "m2"), kvs("ml.version", "v9")];
    req.resource_metrics[0].scope_metrics[0].scope = None;
    let out = decode_metrics_request(&req, &c).unwrap();
    let model = str_col(&out.samples, "model");
    assert_eq!(model[0].as_deref(), Some("m2"));
    // model.name is now an ordinary attribute on the score point
    assert_eq!(
        map_row(&out.samples, "labels", 2),
        pairs(&[("model.name", "fraud-canary"), ("ratio", "0.25")])
    );
    assert_eq!(str_col(&out.samples, "version")[0].as_deref(), Some("v9"));
}

#[test]
fn invalid_points_are_partial_rejections() {
    let mut req = model_metrics_request();
    let metrics = &mut req.resource_metrics[0].scope_metrics[0].metrics;
    // histogram: counts don't add up / wrong length / unsorted bounds
    if let Some(metric::Data::Histogram(h)) = &mut metrics[3].data {
        let good = h.data_points[0].clone();
        let mut bad1 = good.clone();
        bad1.count = 99;
        let mut bad2 = good.clone();
        bad2.bucket_counts = vec![6];
        let mut bad3 = good.clone();
        bad3.explicit_bounds = vec![0.5, 0.1];
        let mut bad4 = good.clone();
        bad4.sum = Some(f64::NAN);
        h.data_points.extend([bad1, bad2, bad3, bad4]);
    }
    if let Some(metric::Data::ExponentialHistogram(h)) = &mut metrics[4].data {
        let mut bad = h.data_points[0].clone();
        bad.count = 1;
        let mut bad_scale = h.data_points[0].clone();
        bad_scale.scale = 40;
        h.data_points.extend([bad, bad_scale]);
    }
    if let Some(metric::Data::Gauge(g)) = &mut metrics[2].data {
        g.data_points.push(NumberDataPoint {
            time_unix_nano: T1,
            ..Default::default()
        }); // no value
        g.data_points.push(NumberDataPoint {
            value: Some(number_data_point::Value::AsDouble(1.0)),
            ..Default::default()
        }); // no time
    }
    if let Some(metric::Data::Summary(s)) = &mut metrics[5].data {
        let mut bad = s.data_points[0].clone();
        bad.quantile_values[0].quantile = 1.5;
        s.data_points.push(bad);
    }
    let mut unnamed = metrics[1].clone();
    unnamed.name.clear();
    metrics.push(unnamed);

    let out = decode_metrics_request(&req, &cfg()).unwrap();
    let r = &out.summary.rejections;
    assert_eq!(r.rejected, 10, "{}", r.message);
    assert!(r.message.contains("add up"), "{}", r.message);
    assert!(r.message.contains("…"), "{}", r.message);
    let ps = out.partial_success().unwrap();
    assert_eq!(ps.rejected_data_points, 10);
    // the valid points are all kept
    assert_eq!(out.samples.num_rows(), 8);
    assert_eq!(out.histograms.num_rows(), 2);
}

#[test]
fn garbage_and_truncated_bodies_are_errors() {
    let pb = model_metrics_request().encode_to_vec();
    for body in [&pb[..pb.len() - 5], &b"\xff\xff\xff\xff garbage"[..]] {
        let e = decode_metrics(body, Encoding::Protobuf, &cfg()).unwrap_err();
        assert_eq!(e.class(), ErrorClass::BadRequest, "{e}");
        assert!(decode_logs(body, Encoding::Protobuf, &cfg()).is_err());
        assert!(decode_traces(body, Encoding::Protobuf, &cfg()).is_err());
    }
    for body in [
        &MODEL_METRICS_JSON[..MODEL_METRICS_JSON.len() / 2],
        b"not json",
        b"",
    ] {
        let e = decode_metrics(body, Encoding::Json, &cfg()).unwrap_err();
        assert_eq!(e.class(), ErrorClass::BadRequest, "{e}");
        assert!(decode_logs(body, Encoding::Json, &cfg()).is_err());
        assert!(decode_traces(body, Encoding::Json, &cfg()).is_err());
    }
    // an empty protobuf body is a valid empty request
    let out = decode_metrics(b"", Encoding::Protobuf, &cfg()).unwrap();
    assert_eq!(out.samples.num_rows(), 0);
}

#[test]
fn output_limit_is_enforced() {
    let c = OtlpConfig {
        max_output_bytes: 200,
        ..cfg()
    };
    let e = decode_metrics_request(&model_metrics_request(), &c).unwrap_err();
    assert_eq!(e.class(), ErrorClass::PayloadTooLarge);
}

fn log(attrs: Vec<KeyValue>) -> LogRecord {
    LogRecord {
        time_unix_nano: T1,
        attributes: attrs,
        ..Default::default()
    }
}

fn logs_request(records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![kvs("model.name", "fraud"), kvs("service.name", "scorer")],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[test]
fn logs_with_a_model_become_inferences() {
    let req = logs_request(vec![
        log(vec![
            kvs("model.version", "3"),
            kvs("inference.id", "abc"),
            kv("feature.amount", dbl(12.5)),
            kv("feature.age", int(40)),
            kvs("feature.country", "FR"),
            kv(
                "feature.flag",
                Some(AnyValue {
                    value: Some(any_value::Value::BoolValue(true)),
                }),
            ),
            kv("prediction", dbl(0.91)),
            kvs("request.path", "/score"),
        ]),
        // late ground truth
        log(vec![kvs("inference.id", "abc"), kvs("label", "fraud")]),
        // a model log that is not an inference
        LogRecord {
            observed_time_unix_nano: T0,
            severity_number: 17,
            severity_text: "ERROR".into(),
            body: s("model crashed"),
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            ..Default::default()
        },
        // no time at all: rejected
        LogRecord::default(),
    ]);
    let out = decode_logs_request(&req, &cfg()).unwrap();
    assert_eq!(out.summary.log_records, 4);
    assert_eq!(out.summary.rejections.rejected, 1);
    assert_eq!(out.partial_success().unwrap().rejected_log_records, 1);
    let i = &out.inferences;
    assert_eq!(i.schema(), crate::inferences_schema());
    assert_eq!(i.num_rows(), 1);
    assert_eq!(str_col(i, "model"), vec![Some("fraud".into())]);
    assert_eq!(str_col(i, "version"), vec![Some("3".into())]);
    assert_eq!(str_col(i, "inference_id"), vec![Some("abc".into())]);
    assert_eq!(str_col(i, "prediction"), vec![Some("0.91".into())]);
    assert_eq!(f64_col(i, "prediction_value"), vec![Some(0.91)]);
    assert_eq!(str_col(i, "label"), vec![None]);
    assert_eq!(f64_col(i, "label_value"), vec![None]);
    // The label-only record is ground truth for `abc`, not an inference.
    let labels = &out.labels;
    assert_eq!(labels.schema(), crate::delayed_labels_schema());
    assert_eq!(out.summary.labels, 1);
    assert_eq!(str_col(labels, "model"), vec![Some("fraud".into())]);
    assert_eq!(str_col(labels, "version"), vec![None]);
    assert_eq!(str_col(labels, "inference_id"), vec![Some("abc".into())]);
    assert_eq!(str_col(labels, "label"), vec![Some("fraud".into())]);
    assert_eq!(f64_col(labels, "label_value"), vec![None]);
    assert_eq!(
        map_row(labels, "attributes", 0),
        pairs(&[("service.name", "scorer")])
    );
    let fnum = column(i, "features_num").as_map();
    let e = fnum.value(0);
    let keys = e.column(0).as_string::<i32>();
    let vals = e.column(1).as_primitive::<Float64Type>();
    assert_eq!((keys.value(0), vals.value(0)), ("age", 40.0));
    assert_eq!((keys.value(1), vals.value(1)), ("amount", 12.5));
    assert_eq!(
        map_row(i, "features_str", 0),
        pairs(&[("country", "FR"), ("flag", "true")])
    );
    assert_eq!(
        map_row(i, "attributes", 0),
        pairs(&[("request.path", "/score"), ("service.name", "scorer")])
    );
    let l = &out.logs;
    assert_eq!(l.schema(), crate::logs_schema());
    assert_eq!(l.num_rows(), 1);
    assert_eq!(ts_col(l, "ts"), vec![Some((T0 / 1000) as i64)]);
    assert_eq!(str_col(l, "body"), vec![Some("model crashed".into())]);
    assert_eq!(str_col(l, "model"), vec![Some("fraud".into())]);
    assert_eq!(
        str_col(l, "trace_id"),
        vec![Some("01010101010101010101010101010101".into())]
    );
    let sev = column(l, "severity_number").as_primitive::<Int32Type>();
    assert_eq!(sev.value(0), 17);
}

#[test]
fn only_a_label_without_features_or_prediction_is_a_delayed_label() {
    let req = logs_request(vec![
        // numeric ground truth for a version
        log(vec![
            kvs("model.version", "2"),
            kv("inference.id", int(7)),
            kv("label", dbl(1.0)),
        ]),
        // a label that travels with its prediction: an inference
        log(vec![
            kvs("inference.id", "b"),
            kvs("label", "fraud"),
            kvs("prediction", "fraud"),
        ]),
        // a label without the inference it labels: an inference row too,
        // as before (it cannot be joined)
        log(vec![kvs("label", "fraud"), kv("feature.amount", dbl(1.0))]),
    ]);
    let out = decode_logs_request(&req, &cfg()).unwrap();
    assert_eq!(out.labels.num_rows(), 1);
    assert_eq!(str_col(&out.labels, "version"), vec![Some("2".into())]);
    assert_eq!(str_col(&out.labels, "inference_id"), vec![Some("7".into())]);
    assert_eq!(str_col(&out.labels, "label"), vec![Some("1".into())]);
    assert_eq!(f64_col(&out.labels, "label_value"), vec![Some(1.0)]);
    assert_eq!(out.inferences.num_rows(), 2);
    assert_eq!(out.summary.labels, 1);
    assert_eq!(out.summary.inferences, 2);
}

#[test]
fn upstream_logs_example_json() {
    let out = decode_logs(LOGS_JSON, Encoding::Json, &cfg()).unwrap();
    assert_eq!(out.inferences.num_rows(), 0);
    let l = &out.logs;
    assert_eq!(l.num_rows(), 1);
    assert_eq!(str_col(l, "body"), vec![Some("Example log record".into())]);
    assert_eq!(
        str_col(l, "severity_text"),
        vec![Some("Information".into())]
    );
    assert_eq!(
        str_col(l, "trace_id"),
        vec![Some("5b8efff798038103d269b633813fc60c".into())]
    );
    assert_eq!(str_col(l, "span_id"), vec![Some("eee19b7ec3c1b174".into())]);
    assert_eq!(
        map_row(l, "attributes", 0),
        pairs(&[
            ("array.attribute", r#"["many","values"]"#),
            ("boolean.attribute", "true"),
            ("double.attribute", "637.704"),
            ("int.attribute", "10"),
            ("map.attribute", r#"{"some.map.key":"some value"}"#),
            ("my.scope.attribute", "some scope attribute"),
            ("service.name", "my.service"),
            ("string.attribute", "some string"),
        ])
    );
    // and the same through protobuf
    let req = json::logs_request(LOGS_JSON).unwrap();
    let pb = decode_logs(&req.encode_to_vec(), Encoding::Protobuf, &cfg()).unwrap();
    assert_eq!(pb.logs, out.logs);
}

#[test]
fn upstream_events_example_json() {
    let out = decode_logs(EVENTS_JSON, Encoding::Json, &cfg()).unwrap();
    let l = &out.logs;
    assert_eq!(l.num_rows(), 1);
    assert_eq!(ts_col(l, "ts"), vec![Some(1_544_712_660_300_000)]);
    let sev = column(l, "severity_number").as_primitive::<Int32Type>();
    assert_eq!(sev.value(0), 9);
    assert_eq!(
        str_col(l, "body"),
        vec![Some(
            r#"{"referrer":"https://wwww.google.com","title":"Free Online GUID Generator","type":0,"url":"https://www.guidgenerator.com/online-guid-generator.aspx"}"#
                .into()
        )]
    );
    assert_eq!(
        map_row(l, "attributes", 0)[0],
        ("event.name".into(), "browser.page_view".into())
    );
    assert_eq!(str_col(l, "trace_id"), vec![None]);
}

fn span(attrs: Vec<KeyValue>) -> Span {
    Span {
        trace_id: (1..=16).collect(),
        span_id: (1..=8).collect(),
        name: "predict".into(),
        kind: 2,
        start_time_unix_nano: T0,
        end_time_unix_nano: T0 + 12_500_000,
        attributes: attrs,
        status: Some(Status {
            code: 2,
            message: "boom".into(),
        }),
        ..Default::default()
    }
}

#[test]
fn spans_with_a_model() {
    let mut no_trace = span(vec![kvs("model.name", "m")]);
    no_trace.trace_id = vec![0; 16];
    let mut backwards = span(vec![kvs("model.name", "m")]);
    backwards.end_time_unix_nano = 1;
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kvs("model.version", "2")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![
                    span(vec![kvs("model.name", "fraud"), kvs("http.route", "/p")]),
                    span(vec![]),
                    no_trace,
                    backwards,
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let out = decode_traces_request(&req, &cfg()).unwrap();
    assert_eq!(out.summary.spans, 4);
    assert_eq!(out.summary.spans_without_model, 1);
    assert_eq!(out.summary.rejections.rejected, 2);
    let b = &out.spans;
    assert_eq!(b.schema(), crate::spans_schema());
    assert_eq!(b.num_rows(), 1);
    assert_eq!(
        str_col(b, "trace_id"),
        vec![Some("0102030405060708090a0b0c0d0e0f10".into())]
    );
    assert_eq!(str_col(b, "span_id"), vec![Some("0102030405060708".into())]);
    assert_eq!(str_col(b, "parent_span_id"), vec![None]);
    assert_eq!(f64_col(b, "duration_ms"), vec![Some(12.5)]);
    assert_eq!(str_col(b, "kind"), vec![Some("server".into())]);
    assert_eq!(str_col(b, "status_code"), vec![Some("error".into())]);
    assert_eq!(str_col(b, "status_message"), vec![Some("boom".into())]);
    assert_eq!(str_col(b, "model"), vec![Some("fraud".into())]);
    assert_eq!(str_col(b, "version"), vec![Some("2".into())]);
    assert_eq!(map_row(b, "attributes", 0), pairs(&[("http.route", "/p")]));
    // JSON of the same request gives the same batch
    let json_body = traces_json(&req);
    let from_json = decode_traces(json_body.as_bytes(), Encoding::Json, &cfg()).unwrap();
    assert_eq!(from_json.spans, out.spans);
    assert_eq!(from_json.summary, out.summary);
}

/// Canonical OTLP/JSON of a traces request (only the fields used here).
fn traces_json(req: &ExportTraceServiceRequest) -> String {
    use serde_json::json;
    let kv = |kvs: &[KeyValue]| -> serde_json::Value {
        kvs.iter()
            .map(|k| {
                let v = match &k.value.as_ref().unwrap().value {
                    Some(any_value::Value::StringValue(s)) => json!({"stringValue": s}),
                    _ => unreachable!(),
                };
                json!({"key": k.key, "value": v})
            })
            .collect()
    };
    let rs: Vec<_> = req
        .resource_spans
        .iter()
        .map(|rs| {
            json!({
                "resource": {"attributes": kv(&rs.resource.as_ref().unwrap().attributes)},
                "scopeSpans": rs.scope_spans.iter().map(|ss| json!({
                    "spans": ss.spans.iter().map(|s| json!({
                        "traceId": hex(&s.trace_id),
                        "spanId": hex(&s.span_id),
                        "parentSpanId": "",
                        "name": s.name,
                        "kind": s.kind,
                        "startTimeUnixNano": s.start_time_unix_nano.to_string(),
                        "endTimeUnixNano": s.end_time_unix_nano.to_string(),
                        "attributes": kv(&s.attributes),
                        "status": {"code": s.status.as_ref().unwrap().code, "message": s.status.as_ref().unwrap().message},
                    })).collect::<Vec<_>>()
                })).collect::<Vec<_>>()
            })
        })
        .collect();
    json!({ "resourceSpans": rs }).to_string()
}

#[test]
fn upstream_trace_example_json() {
    // no model attribute: counted, not stored
    let out = decode_traces(TRACE_JSON, Encoding::Json, &cfg()).unwrap();
    assert_eq!(out.summary.spans, 1);
    assert_eq!(out.summary.spans_without_model, 1);
    assert_eq!(out.spans.num_rows(), 0);
    // with the service name as the model attribute, it is stored
    let c = OtlpConfig {
        model_key: "service.name".into(),
        ..cfg()
    };
    let out = decode_traces(TRACE_JSON, Encoding::Json, &c).unwrap();
    let b = &out.spans;
    assert_eq!(b.num_rows(), 1);
    assert_eq!(str_col(b, "model"), vec![Some("my.service".into())]);
    assert_eq!(str_col(b, "name"), vec![Some("I'm a server span".into())]);
    assert_eq!(
        str_col(b, "parent_span_id"),
        vec![Some("eee19b7ec3c1b173".into())]
    );
    assert_eq!(f64_col(b, "duration_ms"), vec![Some(1000.0)]);
    assert_eq!(str_col(b, "status_code"), vec![Some("unset".into())]);
}

proptest::proptest! {
    #[test]
    fn arbitrary_bodies_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
        let c = cfg();
        for e in [Encoding::Protobuf, Encoding::Json] {
            let _ = decode_metrics(&data, e, &c);
            let _ = decode_logs(&data, e, &c);
            let _ = decode_traces(&data, e, &c);
        }
    }

    #[test]
    fn mutated_valid_protobuf_never_panics(idx in 0usize..4096, byte in proptest::num::u8::ANY) {
        let mut pb = model_metrics_request().encode_to_vec();
        let i = idx % pb.len();
        pb[i] = byte;
        let _ = decode_metrics(&pb, Encoding::Protobuf, &cfg());
        let mut js = MODEL_METRICS_JSON.to_vec();
        let j = idx % js.len();
        js[j] = byte;
        let _ = decode_metrics(&js, Encoding::Json, &cfg());
    }
}
