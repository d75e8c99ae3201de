//! OTLP through the real daemon: the Rust `opentelemetry-otlp` exporter
//! (HTTP/protobuf and gRPC) and the Python exporter (HTTP) send metrics of
//! every point type, logs and spans; rows are read back with SQL. Bad input
//! on both transports is refused with the right status and writes nothing.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use modelwatch_collectors::otlp::proto::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use modelwatch_collectors::otlp::proto::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use modelwatch_collectors::otlp::proto::common::v1::{AnyValue, KeyValue as PbKeyValue, any_value};
use modelwatch_collectors::otlp::proto::metrics::v1::summary_data_point::ValueAtQuantile;
use modelwatch_collectors::otlp::proto::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Summary, SummaryDataPoint,
    metric, number_data_point,
};
use modelwatch_collectors::otlp::proto::resource::v1::Resource as PbResource;
use opentelemetry::KeyValue;
use opentelemetry::logs::{AnyValue as LogValue, LogRecord, Logger, LoggerProvider, Severity};
use opentelemetry::metrics::MeterProvider;
use opentelemetry::trace::{Span, Status as SpanStatus, Tracer, TracerProvider};
use opentelemetry_otlp::{
    Compression, LogExporter, MetricExporter, SpanExporter, WithExportConfig, WithHttpConfig,
    WithTonicConfig,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::{Aggregation, Instrument, SdkMeterProvider, Stream};
use opentelemetry_sdk::trace::SdkTracerProvider;
use prost::Message;
use serde_json::{Value, json};

use crate::support::*;

/// The rows of a query's answer.
async fn query_rows(http: &Http, query: &str) -> Vec<Value> {
    sql(http, query).await["rows"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(f)
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Http,
    Grpc,
}

/// Where the Rust exporter sends: the dedicated OTLP/HTTP listener for
/// metrics and traces, the main listener for logs (it serves `/v1/*` too).
struct Endpoints {
    transport: Transport,
    otlp_http: String,
    api: String,
    grpc: String,
}

impl Endpoints {
    fn of(d: &Daemon, transport: Transport) -> Self {
        Endpoints {
            transport,
            otlp_http: d.otlp_http_url.clone().expect("OTLP/HTTP listener"),
            api: d.url.clone(),
            grpc: d.otlp_grpc_url.clone().expect("OTLP/gRPC listener"),
        }
    }
}

fn http_headers() -> HashMap<String, String> {
    HashMap::from([("authorization".to_string(), format!("Bearer {TOKEN}"))])
}

fn grpc_metadata(token: &str) -> tonic::metadata::MetadataMap {
    let mut m = tonic::metadata::MetadataMap::new();
    m.insert("authorization", format!("Bearer {token}").parse().unwrap());
    m
}

/// An exporter builder in HTTP mode, aimed at `url` with the admin token.
fn over_http<B: WithExportConfig + WithHttpConfig>(builder: B, url: String) -> B {
    builder.with_endpoint(url).with_headers(http_headers())
}

/// An exporter builder in gRPC mode, aimed at the OTLP/gRPC listener with
/// the admin token.
fn over_grpc<B: WithExportConfig + WithTonicConfig>(builder: B, e: &Endpoints) -> B {
    builder
        .with_endpoint(e.grpc.clone())
        .with_metadata(grpc_metadata(TOKEN))
}

/// An exporter of `e`'s transport: `$exporter`'s builders for HTTP and gRPC
/// share no trait that builds, hence a macro. Each `$tune(arg)` applies to
/// either transport (e.g. compression).
macro_rules! exporter {
    ($exporter:ident, $e:expr, $http_url:expr $(, $tune:ident($arg:expr))*) => {
        match $e.transport {
            Transport::Http => over_http($exporter::builder().with_http(), $http_url)$(.$tune($arg))*.build(),
            Transport::Grpc => over_grpc($exporter::builder().with_tonic(), $e)$(.$tune($arg))*.build(),
        }
    };
}

fn metric_exporter(e: &Endpoints) -> MetricExporter {
    let http_url = format!("{}/v1/metrics", e.otlp_http);
    exporter!(
        MetricExporter,
        e,
        http_url,
        with_compression(Compression::Gzip)
    )
    .expect("metric exporter")
}

fn log_exporter(e: &Endpoints) -> LogExporter {
    exporter!(LogExporter, e, format!("{}/v1/logs", e.api)).expect("log exporter")
}

fn span_exporter(e: &Endpoints) -> SpanExporter {
    exporter!(SpanExporter, e, format!("{}/v1/traces", e.otlp_http)).expect("span exporter")
}

/// The resource of an SDK provider, with these string attributes.
fn resource(attributes: &[(&'static str, &str)]) -> Resource {
    let attributes = attributes
        .iter()
        .map(|&(key, value)| KeyValue::new(key, value.to_string()));
    Resource::builder_empty()
        .with_attributes(attributes)
        .build()
}

/// Metrics of every point type the SDK produces, attributed through the
/// resource; exported once, by `shutdown` (cumulative temporality: a flush
/// before it would export the same points twice).
fn emit_metrics(e: &Endpoints, version: &str) {
    let provider = SdkMeterProvider::builder()
        .with_periodic_exporter(metric_exporter(e))
        .with_resource(resource(&[
            ("service.name", "scorer"),
            ("model.name", "fraud"),
            ("model.version", version),
        ]))
        .with_view(|i: &Instrument| {
            (i.name() == "embedding_norm").then(|| {
                Stream::builder()
                    .with_aggregation(Aggregation::Base2ExponentialHistogram {
                        max_size: 160,
                        max_scale: 20,
                        record_min_max: true,
                    })
                    .build()
                    .expect("exponential histogram view")
            })
        })
        .build();
    let meter = provider.meter("modelwatch-e2e");
    let attrs = [KeyValue::new("route", "/predict")];
    meter.f64_gauge("queue_depth").build().record(3.5, &attrs);
    let requests = meter.u64_counter("requests").build();
    requests.add(5, &attrs);
    requests.add(2, &attrs);
    let inflight = meter.i64_up_down_counter("inflight").build();
    inflight.add(3, &attrs);
    inflight.add(-5, &attrs);
    let latency = meter
        .f64_histogram("latency")
        .with_unit("s")
        .with_boundaries(vec![0.1, 0.5, 1.0])
        .build();
    for v in [0.05, 0.3, 0.3, 2.0] {
        latency.record(v, &attrs);
    }
    let norm = meter.f64_histogram("embedding_norm").build();
    for v in [1.0, 2.0, 4.0] {
        norm.record(v, &attrs);
    }
    provider.shutdown().expect("metrics exported");
}

/// An inference event (prediction with features), then the label for the
/// same inference id (a label-only record: a delayed label), and one plain
/// log record.
fn emit_logs(e: &Endpoints, version: &str) {
    let provider = SdkLoggerProvider::builder()
        .with_simple_exporter(log_exporter(e))
        .with_resource(resource(&[("service.name", "scorer")]))
        .build();
    let logger = provider.logger("modelwatch-e2e");
    let now = SystemTime::now();

    let mut r = logger.create_log_record();
    r.set_timestamp(now);
    r.set_severity_number(Severity::Info);
    r.set_body(LogValue::from("scored"));
    r.add_attribute("model.name", "fraud");
    r.add_attribute("model.version", version.to_string());
    r.add_attribute("inference.id", format!("inf-{version}"));
    r.add_attribute("feature.amount", 12.5);
    r.add_attribute("feature.items", 3i64);
    r.add_attribute("feature.country", "DE");
    r.add_attribute("prediction", 0.87);
    logger.emit(r);

    let mut r = logger.create_log_record();
    r.set_timestamp(now + Duration::from_secs(1));
    r.add_attribute("model.name", "fraud");
    r.add_attribute("model.version", version.to_string());
    r.add_attribute("inference.id", format!("inf-{version}"));
    r.add_attribute("label", 1i64);
    logger.emit(r);

    let mut r = logger.create_log_record();
    r.set_timestamp(now);
    r.set_severity_number(Severity::Warn);
    r.set_severity_text("WARN");
    r.set_body(LogValue::from(format!("cache warmed via {version}")));
    r.add_attribute("component", "cache");
    logger.emit(r);

    provider.shutdown().expect("logs exported");
}

/// One span of a model and one without (not kept: modelwatch is not a
/// trace store).
fn emit_spans(e: &Endpoints, version: &str) {
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(span_exporter(e))
        .with_resource(resource(&[
            ("model.name", "fraud"),
            ("model.version", version),
        ]))
        .build();
    let tracer = provider.tracer("modelwatch-e2e");
    let mut span = tracer.start("predict");
    span.set_attribute(KeyValue::new("route", "/predict"));
    span.set_status(SpanStatus::error("timeout"));
    span.end();
    drop(span);
    provider.shutdown().expect("spans exported");

    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(span_exporter(e))
        .build();
    let mut other = provider.tracer("modelwatch-e2e").start("unrelated");
    other.end();
    drop(other);
    provider.shutdown().expect("spans exported");
}

async fn check_metrics(http: &Http, version: &str) {
    let rows = query_rows(
        http,
        &format!(
            "SELECT metric, value, kind, temporality, monotonic, labels['route'] AS route, \
             labels['service.name'] AS service, source FROM samples \
             WHERE model = 'fraud' AND version = '{version}' ORDER BY metric"
        ),
    )
    .await;
    let metrics: Vec<&str> = rows.iter().map(|r| r["metric"].as_str().unwrap()).collect();
    assert_eq!(metrics, ["inflight", "queue_depth", "requests"], "{rows:?}");
    let (inflight, gauge, requests) = (&rows[0], &rows[1], &rows[2]);
    assert_eq!(f(&inflight["value"]), -2.0);
    assert_eq!(inflight["kind"], "sum");
    assert_eq!(inflight["monotonic"], false);
    assert_eq!(inflight["temporality"], "cumulative");
    assert_eq!(f(&gauge["value"]), 3.5);
    assert_eq!(gauge["kind"], "gauge");
    assert_eq!(f(&requests["value"]), 7.0);
    assert_eq!(requests["kind"], "counter");
    assert_eq!(requests["monotonic"], true);
    assert_eq!(requests["temporality"], "cumulative");
    for r in &rows {
        assert_eq!(r["route"], "/predict", "{r}");
        assert_eq!(r["service"], "scorer", "{r}");
        assert_eq!(r["source"], "otlp", "{r}");
    }

    let rows = query_rows(
        http,
        &format!(
            "SELECT metric, kind, count, sum, min, max, bounds, bucket_counts, scale, \
             zero_count, positive_counts, unit FROM histograms \
             WHERE model = 'fraud' AND version = '{version}' ORDER BY metric"
        ),
    )
    .await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    let (exp, explicit) = (&rows[0], &rows[1]);
    assert_eq!(exp["metric"], "embedding_norm");
    assert_eq!(exp["kind"], "exponential");
    assert_eq!(f(&exp["count"]), 3.0);
    assert_eq!(f(&exp["sum"]), 7.0);
    assert_eq!((f(&exp["min"]), f(&exp["max"])), (1.0, 4.0));
    assert!(exp["scale"].as_i64().is_some(), "{exp}");
    let in_buckets: f64 = f64s(&exp["positive_counts"]).iter().sum::<f64>() + f(&exp["zero_count"]);
    assert_eq!(in_buckets, 3.0, "{exp}");
    assert_eq!(explicit["metric"], "latency");
    assert_eq!(explicit["kind"], "explicit");
    assert_eq!(explicit["unit"], "s");
    assert_eq!(f(&explicit["count"]), 4.0);
    assert!((f(&explicit["sum"]) - 2.65).abs() < 1e-9, "{explicit}");
    assert_eq!((f(&explicit["min"]), f(&explicit["max"])), (0.05, 2.0));
    assert_eq!(f64s(&explicit["bounds"]), [0.1, 0.5, 1.0]);
    assert_eq!(f64s(&explicit["bucket_counts"]), [1.0, 2.0, 0.0, 1.0]);
}

async fn check_logs(http: &Http, version: &str) {
    let rows = query_rows(
        http,
        &format!(
            "SELECT inference_id, features_num['amount'] AS amount, features_num['items'] AS items, \
             features_str['country'] AS country, prediction, prediction_value, label_value, \
             attributes['service.name'] AS service FROM inferences \
             WHERE model = 'fraud' AND version = '{version}' ORDER BY ts"
        ),
    )
    .await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let scored = &rows[0];
    assert_eq!(scored["inference_id"], format!("inf-{version}"));
    assert_eq!(f(&scored["amount"]), 12.5);
    assert_eq!(f(&scored["items"]), 3.0);
    assert_eq!(scored["country"], "DE");
    assert_eq!(f(&scored["prediction_value"]), 0.87);
    assert_eq!(scored["label_value"], Value::Null);
    assert_eq!(scored["service"], "scorer");
    let labels = query_rows(
        http,
        &format!(
            "SELECT inference_id, label, label_value, attributes['service.name'] AS service \
             FROM delayed_labels WHERE model = 'fraud' AND version = '{version}'"
        ),
    )
    .await;
    assert_eq!(labels.len(), 1, "{labels:?}");
    assert_eq!(labels[0]["inference_id"], format!("inf-{version}"));
    assert_eq!(labels[0]["label"], "1");
    assert_eq!(f(&labels[0]["label_value"]), 1.0);
    assert_eq!(labels[0]["service"], "scorer");

    let rows = query_rows(
        http,
        &format!(
            "SELECT severity_number, severity_text, attributes['component'] AS component, model \
             FROM logs WHERE body = 'cache warmed via {version}'"
        ),
    )
    .await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["severity_number"], 13);
    assert_eq!(rows[0]["severity_text"], "WARN");
    assert_eq!(rows[0]["component"], "cache");
    assert_eq!(rows[0]["model"], Value::Null);
}

async fn check_spans(http: &Http, version: &str) {
    let rows = query_rows(
        http,
        &format!(
            "SELECT name, kind, status_code, status_message, duration_ms, \
             attributes['route'] AS route, length(trace_id) AS tl, length(span_id) AS sl \
             FROM spans WHERE model = 'fraud' AND version = '{version}'"
        ),
    )
    .await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let s = &rows[0];
    assert_eq!(s["name"], "predict");
    assert_eq!(s["kind"], "internal");
    assert_eq!(s["status_code"], "error");
    assert_eq!(s["status_message"], "timeout");
    assert_eq!(s["route"], "/predict");
    assert!(f(&s["duration_ms"]) >= 0.0);
    assert_eq!((s["tl"].as_i64(), s["sl"].as_i64()), (Some(32), Some(16)));
    let unrelated = query_rows(
        http,
        "SELECT count(*) AS n FROM spans WHERE name = 'unrelated'",
    )
    .await;
    assert_eq!(unrelated[0]["n"], 0, "spans without a model are not kept");
}

async fn rust_exporter_round_trip(transport: Transport) {
    let d = Daemon::start();
    let http = d.http();
    let endpoints = Endpoints::of(&d, transport);
    let version = match transport {
        Transport::Http => "http-1",
        Transport::Grpc => "grpc-1",
    };
    // The SDK exports from its own threads and blocks: keep it off the
    // test's async workers (the gRPC exporter needs this runtime's handle).
    tokio::task::spawn_blocking(move || {
        emit_metrics(&endpoints, version);
        emit_logs(&endpoints, version);
        emit_spans(&endpoints, version);
    })
    .await
    .expect("exporter thread");
    check_metrics(&http, version).await;
    check_logs(&http, version).await;
    check_spans(&http, version).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_exporter_over_http_protobuf_lands_in_every_table() {
    rust_exporter_round_trip(Transport::Http).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_exporter_over_grpc_lands_in_every_table() {
    rust_exporter_round_trip(Transport::Grpc).await;
}

fn kv(key: &str, value: &str) -> PbKeyValue {
    PbKeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

const T0_NS: u64 = 1_764_219_600_000_000_000; // 2025-11-27T05:00:00Z

/// A Summary (the SDK cannot produce one) and a gauge with one valid and
/// one invalid point (time 0): partial success.
fn summary_request(version: &str) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(PbResource {
                attributes: vec![kv("model.name", "fraud"), kv("model.version", version)],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![
                    Metric {
                        name: "rpc_seconds".into(),
                        data: Some(metric::Data::Summary(Summary {
                            data_points: vec![SummaryDataPoint {
                                time_unix_nano: T0_NS,
                                count: 10,
                                sum: 4.5,
                                quantile_values: vec![
                                    ValueAtQuantile {
                                        quantile: 0.5,
                                        value: 0.3,
                                    },
                                    ValueAtQuantile {
                                        quantile: 0.99,
                                        value: 1.2,
                                    },
                                ],
                                ..Default::default()
                            }],
                        })),
                        ..Default::default()
                    },
                    Metric {
                        name: "temperature".into(),
                        data: Some(metric::Data::Gauge(Gauge {
                            data_points: vec![
                                NumberDataPoint {
                                    time_unix_nano: T0_NS,
                                    value: Some(number_data_point::Value::AsInt(21)),
                                    ..Default::default()
                                },
                                NumberDataPoint {
                                    time_unix_nano: 0,
                                    value: Some(number_data_point::Value::AsDouble(1.0)),
                                    ..Default::default()
                                },
                            ],
                        })),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

async fn grpc_client(url: &str) -> MetricsServiceClient<tonic::transport::Channel> {
    let channel = tonic::transport::Channel::from_shared(url.to_string())
        .unwrap()
        .connect()
        .await
        .expect("connect to OTLP/gRPC");
    MetricsServiceClient::new(channel)
}

async fn check_summary(http: &Http, version: &str) {
    let rows = query_rows(
        http,
        &format!(
            "SELECT metric, kind, labels['quantile'] AS q, value, ts FROM samples \
             WHERE version = '{version}' ORDER BY metric, kind, q"
        ),
    )
    .await;
    let got: Vec<(String, String, Option<String>, f64)> = rows
        .iter()
        .map(|r| {
            (
                r["metric"].as_str().unwrap().to_string(),
                r["kind"].as_str().unwrap().to_string(),
                r["q"].as_str().map(str::to_string),
                f(&r["value"]),
            )
        })
        .collect();
    let s = |x: &str| x.to_string();
    assert_eq!(
        got,
        [
            (s("rpc_seconds"), s("summary_quantile"), Some(s("0.5")), 0.3),
            (
                s("rpc_seconds"),
                s("summary_quantile"),
                Some(s("0.99")),
                1.2
            ),
            (s("rpc_seconds_count"), s("summary_count"), None, 10.0),
            (s("rpc_seconds_sum"), s("summary_sum"), None, 4.5),
            (s("temperature"), s("gauge"), None, 21.0),
        ]
    );
    assert_eq!(rows[0]["ts"], "2025-11-27T05:00:00Z");
}

#[tokio::test]
async fn summary_and_partial_success_over_http_protobuf_and_grpc() {
    let d = Daemon::start();
    let http = d.http();

    // OTLP/HTTP protobuf: the response is an ExportMetricsServiceResponse.
    let res = http
        .client
        .post(format!("{}/v1/metrics", d.otlp_http_url.as_ref().unwrap()))
        .bearer_auth(TOKEN)
        .header("content-type", "application/x-protobuf")
        .body(summary_request("pb-http").encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/x-protobuf");
    let reply = ExportMetricsServiceResponse::decode(res.bytes().await.unwrap()).unwrap();
    let partial = reply.partial_success.expect("partial_success");
    assert_eq!(partial.rejected_data_points, 1);
    assert!(
        partial.error_message.contains("time_unix_nano is 0"),
        "{partial:?}"
    );
    check_summary(&http, "pb-http").await;

    // OTLP/gRPC with the generated tonic client, gzip-compressed.
    let mut client = grpc_client(d.otlp_grpc_url.as_ref().unwrap())
        .await
        .send_compressed(tonic::codec::CompressionEncoding::Gzip)
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
    let mut req = tonic::Request::new(summary_request("pb-grpc"));
    *req.metadata_mut() = grpc_metadata(TOKEN);
    let reply = client.export(req).await.expect("export").into_inner();
    assert_eq!(reply.partial_success.unwrap().rejected_data_points, 1);
    check_summary(&http, "pb-grpc").await;
}

#[tokio::test]
async fn upstream_otlp_json_example_is_stored_and_answered_in_json() {
    let d = Daemon::start();
    let http = d.http();
    // The OTLP/JSON example from opentelemetry-proto (hex ids, int64 as
    // strings or numbers, enums as integers).
    let body = include_bytes!("../../collectors/tests/fixtures/otlp/metrics.json").to_vec();
    let res = http
        .client
        .post(format!("{}/v1/metrics", d.url))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let reply: Value = res.json().await.unwrap();
    assert_eq!(reply, json!({}), "nothing rejected");
    let rows = query_rows(
        &http,
        "SELECT metric, value, kind, temporality, labels['my.counter.attr'] AS attr, \
         labels['service.name'] AS service FROM samples ORDER BY metric",
    )
    .await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0]["metric"], "my.counter");
    assert_eq!(f(&rows[0]["value"]), 5.0);
    assert_eq!(rows[0]["kind"], "counter");
    assert_eq!(rows[0]["temporality"], "delta");
    assert_eq!(rows[0]["attr"], "some value");
    assert_eq!(rows[0]["service"], "my.service");
    assert_eq!(rows[1]["metric"], "my.gauge");
    assert_eq!(f(&rows[1]["value"]), 10.0);
    let h = query_rows(
        &http,
        "SELECT metric, kind, count, bucket_counts FROM histograms",
    )
    .await;
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!(h[0]["kind"], "explicit");
    assert_eq!(f(&h[0]["count"]), 2.0);

    // Partial success in OTLP/JSON: lowerCamelCase, int64 as a string.
    let bad = json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [
        {"name": "g", "gauge": {"dataPoints": [{"timeUnixNano": "0", "asDouble": 1}]}}]}]}]});
    let (status, reply) = http.post_json_bytes("/v1/metrics", &bad).await;
    assert_eq!(status, 200);
    assert_eq!(
        reply["partialSuccess"]["rejectedDataPoints"], "1",
        "{reply}"
    );
    assert!(
        reply["partialSuccess"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("time_unix_nano is 0")
    );
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

const LIMIT: usize = 65536;

fn limited_daemon() -> Daemon {
    Daemon::start_with(Start::args(&["--max-write-bytes", &LIMIT.to_string()]))
}

async fn nothing_written(http: &Http) {
    for table in ["samples", "histograms", "inferences", "logs", "spans"] {
        assert_eq!(count(http, table).await, 0, "{table} must stay empty");
    }
}

/// A valid metrics request, and one that is `size` bytes or more.
fn good_body() -> Vec<u8> {
    summary_request("bad-input").encode_to_vec()
}

fn big_body(size: usize) -> Vec<u8> {
    let mut req = summary_request("bad-input");
    req.resource_metrics[0]
        .resource
        .as_mut()
        .unwrap()
        .attributes
        .push(kv("padding", &"x".repeat(size)));
    req.encode_to_vec()
}

#[tokio::test]
async fn bad_otlp_http_requests_get_4xx_with_a_status_body_and_write_nothing() {
    let d = limited_daemon();
    let http = d.http();
    let reader = http.token("otlp-reader", "reader").await;
    let url = format!("{}/v1/metrics", d.otlp_http_url.as_ref().unwrap());
    let good = good_body();
    let bomb = gzip(&vec![0u8; 16 * LIMIT]);
    assert!(bomb.len() < LIMIT);

    struct Case {
        what: &'static str,
        content_type: &'static str,
        encoding: Option<&'static str>,
        token: Option<String>,
        body: Vec<u8>,
        status: u16,
        grpc_code: i32,
    }
    let case = |what, content_type, encoding, body, status, grpc_code| Case {
        what,
        content_type,
        encoding,
        token: Some(TOKEN.to_string()),
        body,
        status,
        grpc_code,
    };
    let pb = "application/x-protobuf";
    let with_token = |token: Option<String>, c: Case| Case { token, ..c };
    #[rustfmt::skip]
    let cases = vec![
        case("garbage", pb, None, b"\xff\xffnot protobuf".to_vec(), 400, 3),
        case("truncated", pb, None, good[..good.len() - 5].to_vec(), 400, 3),
        case("bad JSON", "application/json", None, b"{\"resourceMetrics\": [".to_vec(), 400, 3),
        case("wrong content type", "text/plain", None, good.clone(), 415, 3),
        case("bad gzip", pb, Some("gzip"), good.clone(), 400, 3),
        case("unknown encoding", pb, Some("br"), good.clone(), 415, 3),
        case("oversized", pb, None, big_body(2 * LIMIT), 413, 8),
        case("gzip bomb", pb, Some("gzip"), bomb, 413, 8),
        with_token(None, case("no token", pb, None, good.clone(), 401, 16)),
        with_token(
            Some("mw_not_a_real_token_at_all_0000".into()),
            case("unknown token", pb, None, good.clone(), 401, 16),
        ),
        with_token(Some(reader), case("reader token", pb, None, good.clone(), 403, 7)),
    ];
    for c in cases {
        let mut req = http
            .client
            .post(&url)
            .header("content-type", c.content_type)
            .body(c.body);
        if let Some(e) = c.encoding {
            req = req.header("content-encoding", e);
        }
        if let Some(t) = &c.token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status().as_u16(), c.status, "{}", c.what);
        let ct = res.headers()["content-type"].to_str().unwrap().to_string();
        let body = res.bytes().await.unwrap();
        // google.rpc.Status in the request's encoding (JSON when unknown).
        let (code, message) = if ct == "application/x-protobuf" {
            let s = tonic_types::Status::decode(body).unwrap();
            (s.code, s.message)
        } else {
            assert_eq!(ct, "application/json", "{}", c.what);
            let v: Value = serde_json::from_slice(&body).unwrap();
            (
                v["code"].as_i64().unwrap() as i32,
                v["message"].as_str().unwrap().to_string(),
            )
        };
        assert_eq!(code, c.grpc_code, "{}: {message}", c.what);
        assert!(!message.is_empty(), "{}", c.what);
    }
    // The valid body is accepted with the same settings, so the refusals
    // above were about the input.
    nothing_written(&http).await;
    let (status, _) = http
        .raw("POST", "/v1/metrics", "application/x-protobuf", good)
        .await;
    assert_eq!(status, 200);
    assert_eq!(count(&http, "samples").await, 5);
}

/// One gRPC unary call with a hand-made message frame over HTTP/2
/// (prior knowledge), so broken messages can be sent. Returns the
/// `grpc-status` (tonic answers errors as trailers-only responses).
async fn raw_grpc(
    client: &reqwest::Client,
    base: &str,
    token: Option<&str>,
    frame: Vec<u8>,
    gzip_encoded: bool,
) -> (i32, String) {
    let mut req = client
        .post(format!(
            "{base}/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(frame);
    if gzip_encoded {
        req = req.header("grpc-encoding", "gzip");
    }
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let res = req.send().await.expect("gRPC call");
    assert_eq!(res.status(), 200);
    let status = res
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().parse().unwrap())
        .expect("trailers-only error response");
    let message = res
        .headers()
        .get("grpc-message")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, message)
}

fn frame(message: &[u8], compressed: bool) -> Vec<u8> {
    let mut f = vec![u8::from(compressed)];
    f.extend_from_slice(&(message.len() as u32).to_be_bytes());
    f.extend_from_slice(message);
    f
}

#[tokio::test]
async fn bad_otlp_grpc_requests_get_the_right_status_and_write_nothing() {
    let d = limited_daemon();
    let http = d.http();
    let reader = http.token("otlp-reader", "reader").await;
    let base = d.otlp_grpc_url.clone().unwrap();
    let h2 = crate::support::http_client_builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let good = good_body();
    let t = Some(TOKEN);
    // (what, token, frame, grpc-encoding gzip, expected grpc-status)
    type Case<'a> = (&'a str, Option<&'a str>, Vec<u8>, bool, i32);
    let bomb = gzip(&vec![0u8; 16 * LIMIT]);
    let unknown = Some("mw_not_a_real_token_at_all_0000");
    #[rustfmt::skip]
    let cases: Vec<Case<'_>> = vec![
        ("garbage", t, frame(b"\xff\xffnot protobuf", false), false, 3),
        ("truncated", t, frame(&good[..good.len() - 5], false), false, 3),
        ("bad gzip", t, frame(&good, true), true, 13),
        ("oversized", t, frame(&big_body(2 * LIMIT), false), false, 8),
        ("gzip bomb", t, frame(&bomb, true), true, 8),
        ("no token", None, frame(&good, false), false, 16),
        ("unknown token", unknown, frame(&good, false), false, 16),
        ("reader token", Some(reader.as_str()), frame(&good, false), false, 7),
    ];
    for (what, token, body, gz, want) in cases {
        let (code, message) = raw_grpc(&h2, &base, token, body, gz).await;
        assert_eq!(code, want, "{what}: {message}");
    }
    nothing_written(&http).await;

    // The tonic client sees the same codes, and a good request passes.
    let mut client = grpc_client(&base).await;
    let err = client
        .export(summary_request("x"))
        .await
        .expect_err("no token");
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err}");
    let mut req = tonic::Request::new(summary_request("grpc-ok"));
    *req.metadata_mut() = grpc_metadata(&reader);
    let err = client.export(req).await.expect_err("reader token");
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err}");
    assert!(err.message().contains("ingest"), "{err}");
    let mut req = tonic::Request::new(summary_request("grpc-ok"));
    *req.metadata_mut() = grpc_metadata(TOKEN);
    let reply = client.export(req).await.expect("good request").into_inner();
    assert_eq!(reply.partial_success.unwrap().rejected_data_points, 1);
    assert_eq!(count(&http, "samples").await, 5);
}

#[tokio::test]
async fn the_otlp_listeners_can_be_switched_off() {
    let d = Daemon::start_with(Start::args(&[
        "--otlp-http-listen",
        "off",
        "--otlp-grpc-listen",
        "off",
    ]));
    assert_eq!(d.otlp_http_url, None);
    assert_eq!(d.otlp_grpc_url, None);
    // The main listener still serves OTLP/HTTP.
    let (status, _) = d
        .http()
        .raw("POST", "/v1/traces", "application/json", b"{}".to_vec())
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn python_exporter_over_http_lands_in_every_table() {
    let d = Daemon::start();
    let http = d.http();
    run_python_script(
        "otlp_export.py",
        &[d.otlp_http_url.clone().unwrap(), TOKEN.to_string()],
        &[],
    )
    .await;

    let rows = query_rows(
        &http,
        "SELECT metric, value, kind, monotonic, labels['route'] AS route FROM samples \
         WHERE model = 'churn' AND version = 'py-7' ORDER BY metric",
    )
    .await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["metric"], "predictions");
    assert_eq!(f(&rows[0]["value"]), 3.0);
    assert_eq!(rows[0]["kind"], "counter");
    assert_eq!(rows[0]["route"], "/score");
    let h = query_rows(
        &http,
        "SELECT metric, count, sum, bounds, bucket_counts FROM histograms \
         WHERE model = 'churn' AND version = 'py-7'",
    )
    .await;
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!(h[0]["metric"], "score_latency");
    assert_eq!(f(&h[0]["count"]), 2.0);
    assert!((f(&h[0]["sum"]) - 0.35).abs() < 1e-9);
    assert_eq!(f64s(&h[0]["bounds"]), [0.1, 1.0]);
    assert_eq!(f64s(&h[0]["bucket_counts"]), [1.0, 1.0, 0.0]);

    let inf = query_rows(
        &http,
        "SELECT inference_id, features_num['tenure'] AS tenure, features_str['plan'] AS plan, \
         prediction FROM inferences WHERE model = 'churn' AND version = 'py-7'",
    )
    .await;
    assert_eq!(inf.len(), 1, "{inf:?}");
    assert_eq!(inf[0]["inference_id"], "py-1");
    assert_eq!(f(&inf[0]["tenure"]), 14.0);
    assert_eq!(inf[0]["plan"], "pro");
    assert_eq!(inf[0]["prediction"], "stay");
    let logs = query_rows(
        &http,
        "SELECT body FROM logs WHERE body = 'python says hello'",
    )
    .await;
    assert_eq!(logs.len(), 1, "{logs:?}");
    let spans = query_rows(
        &http,
        "SELECT name, status_code FROM spans WHERE model = 'churn' AND version = 'py-7'",
    )
    .await;
    assert_eq!(spans.len(), 1, "{spans:?}");
    assert_eq!(spans[0]["name"], "score");
}
