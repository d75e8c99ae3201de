//! Decode throughput: remote write 1.0 and 2.0 (samples/s) and OTLP metrics
//! (data points/s, protobuf and JSON). Run with
//! `cargo bench -p modelwatch-collectors --bench decode`.
//!
//! The lines between `// v2 begin` and `// v2 end` use the 2.0 API; the
//! BENCHMARKS "before" run drops them (and the version argument) to run the
//! same payloads on the code before 2.0.

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
// v2 begin
use modelwatch_collectors::RemoteWriteVersion;
use modelwatch_collectors::remote_write::proto::v2;
// v2 end
use modelwatch_collectors::{RemoteWriteConfig, decode_remote_write};

const SERIES: usize = 100;
const SAMPLES_PER_SERIES: usize = 10;

/// A realistic remote-write payload: 100 series × 10 samples, 8 labels
/// each (Prometheus' default `max_samples_per_send` is 2000).
fn remote_write_request() -> WriteRequest {
    let l = |n: &str, v: String| Label {
        name: n.into(),
        value: v,
    };
    WriteRequest {
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
    }
}

const PROM_SERIES: usize = 2_000;
const PROM_LABELS: usize = 20;

/// What Prometheus itself sends: `max_samples_per_send` = 2,000 samples per
/// request, one sample per series (one scrape's worth of many targets), 20
/// labels per series (node_exporter metrics with Kubernetes service
/// discovery target labels), sorted.
fn prometheus_shape_request() -> WriteRequest {
    const METRICS: [&str; 8] = [
        "node_cpu_seconds_total",
        "node_network_receive_bytes_total",
        "node_network_transmit_bytes_total",
        "node_filesystem_avail_bytes",
        "node_disk_read_bytes_total",
        "node_memory_MemAvailable_bytes",
        "node_load1",
        "node_context_switches_total",
    ];
    let timeseries = (0..PROM_SERIES)
        .map(|i| {
            let node = i / 100;
            let mut labels: Vec<(&str, String)> = vec![
                ("__name__", METRICS[i % METRICS.len()].into()),
                ("app_kubernetes_io_name", "node-exporter".into()),
                ("app_kubernetes_io_part_of", "kube-prometheus".into()),
                ("app_kubernetes_io_version", "1.8.2".into()),
                ("cluster", "prod-eu-1".into()),
                ("container", "node-exporter".into()),
                ("cpu", format!("{}", i % 16)),
                ("device", format!("nvme0n{}", i % 4)),
                ("endpoint", "https".into()),
                ("env", "production".into()),
                (
                    "instance",
                    format!("10.0.{}.{}:9100", node / 250, node % 250),
                ),
                ("job", "node-exporter".into()),
                ("mode", ["user", "system", "idle", "iowait"][i % 4].into()),
                ("namespace", "monitoring".into()),
                (
                    "node",
                    format!(
                        "ip-10-0-{}-{}.eu-west-1.compute.internal",
                        node / 250,
                        node % 250
                    ),
                ),
                ("pod", format!("node-exporter-{:05x}", node * 7919)),
                ("prometheus", "monitoring/k8s".into()),
                ("region", "eu-west-1".into()),
                ("service", "node-exporter".into()),
                ("zone", format!("eu-west-1{}", ["a", "b", "c"][node % 3])),
            ];
            labels.sort();
            assert_eq!(labels.len(), PROM_LABELS);
            TimeSeries {
                labels: labels
                    .into_iter()
                    .map(|(n, v)| Label {
                        name: n.into(),
                        value: v,
                    })
                    .collect(),
                samples: vec![Sample {
                    value: (i * 31) as f64 * 1.5,
                    timestamp: 1_700_000_000_000 + (i as i64 % 30) * 1_000,
                }],
                ..Default::default()
            }
        })
        .collect();
    WriteRequest {
        timeseries,
        ..Default::default()
    }
}

fn snappy(raw: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(raw).unwrap()
}

// v2 begin
/// The same logical request as remote write 2.0: one symbol table, label
/// references, no metadata (so the rows are the same as 1.0's).
fn as_v2(req: &WriteRequest) -> v2::Request {
    let mut symbols = vec![String::new()];
    let mut index = std::collections::HashMap::from([(String::new(), 0u32)]);
    let mut r = |s: &str| -> u32 {
        if let Some(&i) = index.get(s) {
            return i;
        }
        symbols.push(s.to_string());
        let i = (symbols.len() - 1) as u32;
        index.insert(s.to_string(), i);
        i
    };
    let timeseries = req
        .timeseries
        .iter()
        .map(|ts| v2::TimeSeries {
            labels_refs: ts
                .labels
                .iter()
                .flat_map(|l| [r(&l.name), r(&l.value)])
                .collect(),
            samples: ts
                .samples
                .iter()
                .map(|s| v2::Sample {
                    value: s.value,
                    timestamp: s.timestamp,
                })
                .collect(),
            ..Default::default()
        })
        .collect();
    v2::Request {
        symbols,
        timeseries,
    }
}
// v2 end

fn remote_write_group(c: &mut Criterion, name: &str, req: &WriteRequest) {
    let samples: usize = req.timeseries.iter().map(|t| t.samples.len()).sum();
    let cfg = RemoteWriteConfig::default();
    let v1 = snappy(&req.encode_to_vec());
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(samples as u64));
    let out = decode_remote_write(&v1, RemoteWriteVersion::V1, &cfg).unwrap();
    assert_eq!(out.samples.num_rows(), samples);
    g.bench_function("v1_decode", |b| {
        b.iter(|| decode_remote_write(black_box(&v1), RemoteWriteVersion::V1, &cfg).unwrap())
    });
    // baseline: snappy + prost alone, without validation and Arrow
    g.bench_function("v1_snappy_prost_only", |b| {
        b.iter(|| {
            let raw = snap::raw::Decoder::new()
                .decompress_vec(black_box(&v1))
                .unwrap();
            WriteRequest::decode(raw.as_slice()).unwrap()
        })
    });
    // v2 begin
    let v2 = snappy(&as_v2(req).encode_to_vec());
    let out2 = decode_remote_write(&v2, RemoteWriteVersion::V2, &cfg).unwrap();
    assert_eq!(out2.samples, out.samples);
    println!(
        "{name}: {samples} samples, snappy body {} B (1.0) / {} B (2.0)",
        v1.len(),
        v2.len()
    );
    g.bench_function("v2_decode", |b| {
        b.iter(|| decode_remote_write(black_box(&v2), RemoteWriteVersion::V2, &cfg).unwrap())
    });
    // v2 end
    g.finish();
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
    remote_write_group(
        c,
        "remote_write_100_series_x_10_samples",
        &remote_write_request(),
    );
    remote_write_group(
        c,
        "remote_write_prometheus_2000_series_20_labels",
        &prometheus_shape_request(),
    );

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
