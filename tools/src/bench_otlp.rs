//! `modelwatch bench otlp`: batched OTLP metric exports against a running
//! daemon, over OTLP/HTTP (protobuf) or OTLP/gRPC, with concurrency.
//! Reports data points per second and request latency percentiles.
//!
//! Requests are built and encoded before the clock starts (a pool of
//! distinct requests, cycled), so the load generator spends its CPU on
//! sending, not on encoding: on a shared 2-core machine it still competes
//! with the daemon, which BENCHMARKS.md takes into account.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::{Args, ValueEnum};
use prost::Message;

// The pre-encoded request goes through as bytes and the reply comes back
// as bytes: the generator encodes before the clock starts and ignores it.
use modelwatch_collectors::grpc_codec::RawCodec;
use modelwatch_collectors::otlp::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use modelwatch_collectors::otlp::proto::common::v1::{AnyValue, KeyValue, any_value};
use modelwatch_collectors::otlp::proto::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use modelwatch_collectors::otlp::proto::resource::v1::Resource;

use modelwatch_client::{Client, Error as ClientError};

use crate::error::Result;
use crate::report;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Transport {
    /// OTLP/HTTP, `application/x-protobuf`, `POST /v1/metrics`.
    Http,
    /// OTLP/gRPC, `MetricsService/Export`.
    Grpc,
}

/// Options of `modelwatch bench otlp`.
#[derive(Debug, Clone, Args)]
pub struct OtlpBenchArgs {
    /// Transport to measure.
    #[arg(long, value_enum, default_value_t = Transport::Grpc)]
    pub transport: Transport,
    /// OTLP endpoint [default: http://127.0.0.1:4318 for http,
    /// http://127.0.0.1:4317 for grpc]
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Concurrent requests in flight.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Models (resources) per request.
    #[arg(long, default_value_t = 4)]
    pub models: usize,
    /// Metrics (series) per model per request.
    #[arg(long, default_value_t = 25)]
    pub metrics: usize,
    /// Data points per metric per request.
    #[arg(long, default_value_t = 20)]
    pub points: usize,
    /// Send requests gzip-compressed.
    #[arg(long)]
    pub gzip: bool,
}

/// Result of one run.
#[derive(Debug, serde::Serialize)]
pub struct OtlpBenchResult {
    pub transport: &'static str,
    pub requests: usize,
    pub errors: usize,
    pub points_per_request: usize,
    pub request_bytes: usize,
    pub seconds: f64,
    pub data_points_per_second: f64,
    pub requests_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// The first error seen, if any.
    pub first_error: Option<String>,
}

const POOL: usize = 32;
const GRPC_PATH: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

fn kv(key: &str, value: String) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value)),
        }),
        ..Default::default()
    }
}

/// One export request: `models` resources × `metrics` metrics × `points`
/// points (half gauges, half cumulative monotonic sums), 3 attributes per
/// point, timestamps starting at `t0_ns`.
fn request(a: &OtlpBenchArgs, t0_ns: u64) -> ExportMetricsServiceRequest {
    let resource_metrics = (0..a.models)
        .map(|m| ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    kv("model.name", format!("bench-model-{m}")),
                    kv("model.version", "1".into()),
                    kv("service.name", "bench".into()),
                    kv("host.name", format!("host-{}", m % 2)),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: (0..a.metrics)
                    .map(|i| {
                        let points: Vec<NumberDataPoint> = (0..a.points)
                            .map(|p| NumberDataPoint {
                                attributes: vec![
                                    kv("route", format!("/r{}", p % 4)),
                                    kv("status", if p % 10 == 0 { "500" } else { "200" }.into()),
                                    kv("zone", format!("z{}", p % 3)),
                                ],
                                start_time_unix_nano: t0_ns,
                                time_unix_nano: t0_ns + p as u64 * 1_000_000,
                                value: Some(number_data_point::Value::AsDouble(
                                    (i * 1000 + p) as f64,
                                )),
                                ..Default::default()
                            })
                            .collect();
                        bench_metric(i, points)
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    ExportMetricsServiceRequest { resource_metrics }
}

/// Metric `i` of a request: a gauge when `i` is even, else a cumulative
/// monotonic sum.
fn bench_metric(i: usize, data_points: Vec<NumberDataPoint>) -> Metric {
    let data = if i.is_multiple_of(2) {
        metric::Data::Gauge(Gauge { data_points })
    } else {
        metric::Data::Sum(Sum {
            data_points,
            aggregation_temporality: 2,
            is_monotonic: true,
        })
    };
    Metric {
        name: format!("bench_metric_{i}"),
        data: Some(data),
        ..Default::default()
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(bytes);
    enc.finish().unwrap_or_default()
}

/// Why one export failed.
#[derive(Debug)]
enum SendError {
    /// The daemon answered with an error (HTTP status or gRPC code).
    Refused { status: u16, message: String },
    /// No answer: connection or protocol failure.
    Transport(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Refused { message, .. } | SendError::Transport(message) => {
                f.write_str(message)
            }
        }
    }
}

/// Sends one request.
#[derive(Clone)]
enum Sender {
    Http {
        client: reqwest::Client,
        url: String,
        token: Option<String>,
        gzip: bool,
    },
    Grpc {
        channel: tonic::transport::Channel,
        token: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
        gzip: bool,
    },
}

impl Sender {
    async fn send(&self, body: Bytes) -> Result<(), SendError> {
        let transport = |e: String| SendError::Transport(e);
        match self {
            Sender::Http {
                client,
                url,
                token,
                gzip,
            } => {
                let mut req = client
                    .post(url)
                    .header("content-type", "application/x-protobuf")
                    .body(body);
                if *gzip {
                    req = req.header("content-encoding", "gzip");
                }
                if let Some(t) = token {
                    req = req.bearer_auth(t);
                }
                let res = req.send().await.map_err(|e| transport(e.to_string()))?;
                let status = res.status();
                let reply = res.bytes().await.map_err(|e| transport(e.to_string()))?;
                if status.is_success() {
                    Ok(())
                } else {
                    Err(SendError::Refused {
                        status: status.as_u16(),
                        message: format!("HTTP {status}: {}", String::from_utf8_lossy(&reply)),
                    })
                }
            }
            Sender::Grpc {
                channel,
                token,
                gzip,
            } => {
                let mut grpc = tonic::client::Grpc::new(channel.clone());
                if *gzip {
                    grpc = grpc.send_compressed(tonic::codec::CompressionEncoding::Gzip);
                }
                grpc.ready().await.map_err(|e| transport(e.to_string()))?;
                let mut req = tonic::Request::new(body.to_vec());
                if let Some(t) = token {
                    req.metadata_mut().insert("authorization", t.clone());
                }
                grpc.unary(
                    req,
                    http::uri::PathAndQuery::from_static(GRPC_PATH),
                    RawCodec,
                )
                .await
                .map(drop)
                .map_err(|s| SendError::Refused {
                    status: 200,
                    message: format!("gRPC {:?}: {}", s.code(), s.message()),
                })
            }
        }
    }
}

/// `modelwatch bench otlp`; `client` supplies the token (the endpoint is
/// the OTLP listener's, not the API's).
pub async fn run(client: &Client, json: bool, a: OtlpBenchArgs) -> Result<ExitCode> {
    let endpoint = a.endpoint.clone().unwrap_or_else(|| {
        match a.transport {
            Transport::Http => "http://127.0.0.1:4318",
            Transport::Grpc => "http://127.0.0.1:4317",
        }
        .to_string()
    });
    let unreachable = |reason: String| ClientError::Unreachable {
        url: endpoint.clone(),
        reason,
    };
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let points_per_request = a.models * a.metrics * a.points;
    let pool: Arc<Vec<Bytes>> = Arc::new(
        (0..POOL)
            .map(|i| {
                let bytes = request(&a, now_ns + i as u64 * 1_000_000_000).encode_to_vec();
                Bytes::from(if a.gzip { gzip(&bytes) } else { bytes })
            })
            .collect(),
    );
    let request_bytes = pool[0].len();
    let senders: Vec<Sender> = match a.transport {
        Transport::Http => {
            vec![Sender::Http {
                client: reqwest::Client::new(),
                url: format!("{}/v1/metrics", endpoint.trim_end_matches('/')),
                token: client.token().map(str::to_string),
                gzip: a.gzip,
            }]
        }
        Transport::Grpc => {
            let token = match client.token() {
                Some(t) => Some(
                    format!("Bearer {t}")
                        .parse()
                        .map_err(|_| unreachable("the token is not valid ASCII".into()))?,
                ),
                None => None,
            };
            // A few HTTP/2 connections so the daemon can spread them.
            let mut senders = Vec::new();
            for _ in 0..a.concurrency.clamp(1, 4) {
                let channel = tonic::transport::Endpoint::from_shared(endpoint.clone())
                    .map_err(|e| unreachable(e.to_string()))?
                    .connect()
                    .await
                    .map_err(|e| unreachable(format!("{e:?}")))?;
                senders.push(Sender::Grpc {
                    channel,
                    token: token.clone(),
                    gzip: a.gzip,
                });
            }
            senders
        }
    };
    // One request first: a wrong token or endpoint is reported at once.
    match senders[0].send(pool[0].clone()).await {
        Ok(()) => {}
        Err(SendError::Transport(e)) => return Err(unreachable(e).into()),
        Err(SendError::Refused { status, message }) => {
            return Err(ClientError::Api {
                status,
                code: "export_refused".into(),
                message: format!(
                    "the first export was refused ({message}); check --token (role ingest) and --endpoint"
                ),
            }
            .into());
        }
    }

    eprintln!(
        "benchmarking OTLP/{:?} at {endpoint}: {} concurrent, {}s, {points_per_request} points per request ({} bytes{})",
        a.transport,
        a.concurrency,
        a.seconds,
        request_bytes,
        if a.gzip { ", gzip" } else { "" }
    );
    let start = Instant::now();
    let deadline = start + Duration::from_secs(a.seconds);
    let workers: Vec<_> = (0..a.concurrency.max(1))
        .map(|w| {
            let sender = senders[w % senders.len()].clone();
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0usize;
                let mut first_error = None;
                let mut i = w;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    match sender.send(pool[i % POOL].clone()).await {
                        Ok(()) => latencies.push(t.elapsed()),
                        Err(e) => {
                            errors += 1;
                            first_error.get_or_insert(e.to_string());
                        }
                    }
                    i += 1;
                }
                (latencies, errors, first_error)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for w in workers {
        if let Ok((l, e, f)) = w.await {
            latencies.extend(l);
            errors += e;
            if first_error.is_none() {
                first_error = f;
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| crate::bench::percentile_ms(&latencies, p);
    let result = OtlpBenchResult {
        transport: match a.transport {
            Transport::Http => "http",
            Transport::Grpc => "grpc",
        },
        requests: latencies.len(),
        errors,
        points_per_request,
        request_bytes,
        seconds,
        // Only acknowledged exports count as throughput.
        data_points_per_second: ((latencies.len() - errors) * points_per_request) as f64 / seconds,
        requests_per_second: (latencies.len() - errors) as f64 / seconds,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        first_error,
    };
    report::print(json, &result, |r| {
        println!(
            "{:<10} {:>9} {:>7} {:>16} {:>10} {:>9} {:>9}",
            "transport", "requests", "errors", "data points/s", "req/s", "p50 ms", "p99 ms"
        );
        println!(
            "{:<10} {:>9} {:>7} {:>16.0} {:>10.1} {:>9.2} {:>9.2}",
            r.transport,
            r.requests,
            r.errors,
            r.data_points_per_second,
            r.requests_per_second,
            r.p50_ms,
            r.p99_ms
        );
        if let Some(e) = &r.first_error {
            eprintln!("first error: {e}");
        }
    });
    Ok(report::exit_code(result.errors))
}
