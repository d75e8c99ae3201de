//! Decode throughput: remote write (samples/s) and OTLP metrics
//! (data points/s, protobuf and JSON). Run with
//! `cargo bench -p modelwatch-collectors --bench decode`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;
use std::hint::black_box;

use modelwatch_collectors::otlp::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use modelwatch_collectors::otlp::proto::common::v1::{AnyValue, KeyValue, any_value};
use modelwatch_collectors::otlp::proto::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use modelwatch_collectors::otlp::proto::resource::v1::Resource;
use modelwatch_collectors::otlp::{Encoding, OtlpConfig, decode_metrics};
use modelwatch_collectors::remote_write::proto::{Label, Sample, TimeSeries, WriteRequest};
use modelwatch_collectors::{RemoteWriteConfig, decode_remote_write};

const SERIES: usize = 100;
const SAMPLES_PER_SERIES: usize = 10;

/// A realistic remote-write payload: 100 series × 10 samples, 8 labels
/// each (Prometheus' default `max_samples_per_send` is 2000).
fn remote_write_body() -> Vec<u8> {
    let l = |n: &str, v: String| Label {
        name: n.into(),
        value: v,
    };
    let req = WriteRequest {
        timeseries: (0..SERIES)
            .map(|i| TimeSeries {
                labels: vec![
                    l(
                        "__name__",
                        format!("model_request_duration_seconds_bucket{}", i % 7),
                    ),
                    l("instance", format!("10.0.0.{}:9100", i % 13)),
                    l("job", "model-server".into()),
                    l("le", format!("{}", (i % 11) as f64 * 0.1)),
                    l("method", "POST".into()),
                    l("model", "fraud-detector".into()),
                    l("model_version", format!("{}", i % 3 + 1)),
                    l("route", "/v1/predict".into()),
                ],
                samples: (0..SAMPLES_PER_SERIES)
                    .map(|j| Sample {
                        value: (i * j) as f64 * 0.5,
                        timestamp: 1_700_000_000_000 + (j as i64) * 15_000,
                    })
                    .collect(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .unwrap()
}

const METRICS: usize = 100;
const POINTS_PER_METRIC: usize = 10;

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

/// An exporter-like batch: one resource (5 attributes with the model), 100
/// metrics × 10 points with 3 attributes each, half gauges, half sums.
fn otlp_request() -> ExportMetricsServiceRequest {
    let points = |m: usize| -> Vec<NumberDataPoint> {
        (0..POINTS_PER_METRIC)
            .map(|p| NumberDataPoint {
                attributes: vec![
                    kv("http.route", "/v1/predict"),
                    kv("http.method", "POST"),
                    kv("shard", &format!("{}", p % 4)),
                ],
                start_time_unix_nano: 1_700_000_000_000_000_000,
                time_unix_nano: 1_700_000_000_000_000_000 + (p as u64) * 1_000_000_000,
                value: Some(number_data_point::Value::AsDouble((m * p) as f64)),
                ..Default::default()
            })
            .collect()
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", "scorer"),
                    kv("service.instance.id", "b9c1f4"),
                    kv("host.name", "node-7"),
                    kv("model.name", "fraud-detector"),
                    kv("model.version", "3"),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: (0..METRICS)
                    .map(|m| Metric {
                        name: format!("scorer.metric.{m}"),
                        unit: "1".into(),
                        data: Some(if m % 2 == 0 {
                            metric::Data::Gauge(Gauge {
                                data_points: points(m),
                            })
                        } else {
                            metric::Data::Sum(Sum {
                                data_points: points(m),
                                aggregation_temporality: 2,
                                is_monotonic: true,
                            })
                        }),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Canonical OTLP/JSON of [`otlp_request`].
fn otlp_json(req: &ExportMetricsServiceRequest) -> Vec<u8> {
    use serde_json::{Value, json};
    let kvs = |kvs: &[KeyValue]| -> Value {
        kvs.iter()
            .map(|k| match &k.value.as_ref().unwrap().value {
                Some(any_value::Value::StringValue(s)) => {
                    json!({"key": k.key, "value": {"stringValue": s}})
                }
                _ => unreachable!(),
            })
            .collect()
    };
    let rm = &req.resource_metrics[0];
    let metrics: Vec<Value> = rm.scope_metrics[0]
        .metrics
        .iter()
        .map(|m| {
            let pts = |dp: &[NumberDataPoint]| -> Value {
                dp.iter()
                    .map(|p| {
                        let Some(number_data_point::Value::AsDouble(v)) = p.value else {
                            unreachable!()
                        };
                        json!({
                            "attributes": kvs(&p.attributes),
                            "startTimeUnixNano": p.start_time_unix_nano.to_string(),
                            "timeUnixNano": p.time_unix_nano.to_string(),
                            "asDouble": v,
                        })
                    })
                    .collect()
            };
            match m.data.as_ref().unwrap() {
                metric::Data::Gauge(g) => {
                    json!({"name": m.name, "unit": m.unit, "gauge": {"dataPoints": pts(&g.data_points)}})
                }
                metric::Data::Sum(s) => json!({"name": m.name, "unit": m.unit, "sum": {
                    "dataPoints": pts(&s.data_points), "aggregationTemporality": 2, "isMonotonic": true}}),
                _ => unreachable!(),
            }
        })
        .collect();
    json!({"resourceMetrics": [{
        "resource": {"attributes": kvs(&rm.resource.as_ref().unwrap().attributes)},
        "scopeMetrics": [{"metrics": metrics}]
    }]})
    .to_string()
    .into_bytes()
}

fn benches(c: &mut Criterion) {
    let rw = remote_write_body();
    let rw_cfg = RemoteWriteConfig::default();
    let mut g = c.benchmark_group("remote_write");
    g.throughput(Throughput::Elements((SERIES * SAMPLES_PER_SERIES) as u64));
    g.bench_function("decode_1000_samples_100_series", |b| {
        b.iter(|| decode_remote_write(black_box(&rw), &rw_cfg).unwrap())
    });
    // baseline: snappy + prost alone, without validation and Arrow
    g.bench_function("snappy_prost_only_1000_samples", |b| {
        b.iter(|| {
            let raw = snap::raw::Decoder::new()
                .decompress_vec(black_box(&rw))
                .unwrap();
            WriteRequest::decode(raw.as_slice()).unwrap()
        })
    });
    g.finish();

    let req = otlp_request();
    let pb = req.encode_to_vec();
    let js = otlp_json(&req);
    let cfg = OtlpConfig::default();
    let check = decode_metrics(&js, Encoding::Json, &cfg).unwrap();
    assert_eq!(check.samples.num_rows(), METRICS * POINTS_PER_METRIC);
    let mut g = c.benchmark_group("otlp_metrics");
    g.throughput(Throughput::Elements((METRICS * POINTS_PER_METRIC) as u64));
    g.bench_function("decode_protobuf_1000_points", |b| {
        b.iter(|| decode_metrics(black_box(&pb), Encoding::Protobuf, &cfg).unwrap())
    });
    // baseline: prost decoding alone, without the mapping to Arrow
    g.bench_function("prost_only_1000_points", |b| {
        b.iter(|| ExportMetricsServiceRequest::decode(black_box(pb.as_slice())).unwrap())
    });
    g.bench_function("decode_json_1000_points", |b| {
        b.iter(|| decode_metrics(black_box(&js), Encoding::Json, &cfg).unwrap())
    });
    g.finish();
}

criterion_group!(decode, benches);
criterion_main!(decode);
