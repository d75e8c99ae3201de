//! `modelwatch bench remote-write`: a Prometheus remote write 1.0 or 2.0
//! load generator. It pre-encodes realistic requests (snappy-compressed
//! protobuf, sorted labels, `model`/`model_version` labels, counters and
//! gauges with advancing timestamps) before the clock starts, so what is
//! measured is the receiver: HTTP, decode, WAL fsync, acknowledgement. The
//! same payloads can be pointed at any remote-write receiver with `--target`
//! (BENCHMARKS.md compares with VictoriaMetrics and Prometheus this way).
//! Two shapes matter: a model server's (100 series × 10 samples, 6 labels)
//! and Prometheus' own (2,000 series × 1 sample, 20 labels like
//! node_exporter's, `--series 2000 --samples-per-series 1 --labels 20`).

use std::sync::Arc;
use std::time::Duration;

use modelwatch_collectors::RemoteWriteVersion;
use modelwatch_collectors::remote_write::{self as rw, proto};
use prost::Message;

use modelwatch_client::Error as ClientError;

use crate::bench::{PhaseResult, phase};

/// What to send and where.
#[derive(Debug, Clone)]
pub struct RemoteWritePlan {
    /// Full URL of the receiver's write endpoint.
    pub target: String,
    pub token: Option<String>,
    pub series_per_request: usize,
    pub samples_per_series: usize,
    /// Labels per series, `__name__` included (at least the 6 of a model
    /// server's series; more are node_exporter-like extras).
    pub labels_per_series: usize,
    /// Which protobuf message the requests carry.
    pub protocol: RemoteWriteVersion,
    /// Timestamp of request 0's first sample (ms); `None`: the requests'
    /// time span ends when the load starts (a TSDB such as Prometheus
    /// refuses samples far from its head).
    pub first_timestamp_ms: Option<i64>,
    /// Distinct pre-encoded requests cycled through.
    pub distinct_requests: usize,
    pub concurrency: usize,
    pub duration: Duration,
}

/// The least `labels_per_series`: what [`series_labels`] always sends.
pub const BASE_LABELS: usize = 6;

/// Label names of node_exporter-like extras, as many as asked beyond
/// [`BASE_LABELS`] (then numbered).
const EXTRA_LABELS: [&str; 14] = [
    "cluster",
    "collector",
    "cpu",
    "datacenter",
    "device",
    "env",
    "fstype",
    "mode",
    "mountpoint",
    "namespace",
    "node",
    "pod",
    "region",
    "team",
];

/// Series labels that look like a model server's: a metric family, an
/// instance, a job, and the model attribution labels, plus node_exporter-
/// like extras up to `label_count` labels in all.
fn series_labels(series: usize, models: usize, label_count: usize) -> Vec<proto::Label> {
    const METRICS: [&str; 5] = [
        "http_requests_total",
        "inference_latency_seconds_sum",
        "inference_latency_seconds_count",
        "prediction_score",
        "process_resident_memory_bytes",
    ];
    let model = series % models;
    let mut labels = vec![
        ("__name__", METRICS[series % METRICS.len()].to_string()),
        (
            "instance",
            format!("10.0.{}.{}:8080", series / 250, series % 250),
        ),
        ("job", "model-server".to_string()),
        ("model", format!("model-{model}")),
        ("model_version", format!("{}", 1 + series % 3)),
        ("route", format!("/v1/predict/{}", series % 7)),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), value))
    .collect::<Vec<_>>();
    for extra in 0..label_count.saturating_sub(BASE_LABELS) {
        let name = EXTRA_LABELS
            .get(extra)
            .map_or_else(|| format!("label_{extra:02}"), |n| n.to_string());
        // A few values per name, varying with the series, as on a node.
        let value = format!("{name}-{}", (series / (extra + 1)) % (3 + extra));
        labels.push((name, value));
    }
    labels.sort();
    labels
        .into_iter()
        .map(|(name, value)| proto::Label { name, value })
        .collect()
}

/// Milliseconds since the epoch, now.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Time between a series' samples, as a 15 s scrape interval produces them.
pub const STEP_MS: i64 = 15_000;

/// Encoded request number `n`: its samples start where request `n - 1`
/// ended, 15 s apart, as a scraping Prometheus would produce them.
fn encode_request(plan: &RemoteWritePlan, first_ms: i64, n: usize) -> Vec<u8> {
    let start_ms = first_ms + (n * plan.samples_per_series) as i64 * STEP_MS;
    let timeseries = (0..plan.series_per_request)
        .map(|s| proto::TimeSeries {
            labels: series_labels(s, 10, plan.labels_per_series),
            samples: (0..plan.samples_per_series)
                .map(|i| {
                    let step = (n * plan.samples_per_series + i) as f64;
                    // Counters grow, gauges wander: both compress like real data.
                    let value = if s % 5 == 0 {
                        step * (s + 1) as f64
                    } else {
                        (s as f64 * 0.37 + step * 0.011).sin() * 100.0 + 500.0
                    };
                    proto::Sample {
                        value,
                        timestamp: start_ms + i as i64 * STEP_MS,
                    }
                })
                .collect(),
            ..Default::default()
        })
        .collect();
    match plan.protocol {
        RemoteWriteVersion::V1 => encode_series(timeseries),
        RemoteWriteVersion::V2 => encode_series_v2(timeseries),
    }
}

/// A remote-write 1.0 body (snappy-compressed `WriteRequest`) of `timeseries`.
pub fn encode_series(timeseries: Vec<proto::TimeSeries>) -> Vec<u8> {
    snappy(
        &proto::WriteRequest {
            timeseries,
            metadata: Vec::new(),
        }
        .encode_to_vec(),
    )
}

/// A remote-write 2.0 body (snappy-compressed `io.prometheus.write.v2.Request`)
/// of the same series: every label string once in the symbol table.
pub fn encode_series_v2(timeseries: Vec<proto::TimeSeries>) -> Vec<u8> {
    snappy(
        &proto::v2::Request::from(&proto::WriteRequest {
            timeseries,
            metadata: Vec::new(),
        })
        .encode_to_vec(),
    )
}

fn snappy(raw: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(raw)
        .expect("snappy compression of an in-memory buffer cannot fail")
}

/// Runs the load and returns one phase result whose `per_second` counts
/// requests; multiply by [`RemoteWritePlan::samples_per_request`] for samples.
pub async fn run(plan: &RemoteWritePlan) -> Result<(PhaseResult, f64), ClientError> {
    let first_ms = plan.first_ms();
    let payloads: Arc<Vec<bytes::Bytes>> = Arc::new(
        (0..plan.distinct_requests.max(1))
            .map(|n| bytes::Bytes::from(encode_request(plan, first_ms, n)))
            .collect(),
    );
    let mean_bytes = payloads.iter().map(|p| p.len()).sum::<usize>() as f64 / payloads.len() as f64;
    eprintln!(
        "remote write {} to {}: {} series x {} samples per request, {} labels per series ({} samples, {:.0} bytes compressed), {} in flight, {}s",
        plan.protocol.message(),
        plan.target,
        plan.series_per_request,
        plan.samples_per_series,
        plan.labels_per_series,
        plan.samples_per_request(),
        mean_bytes,
        plan.concurrency,
        plan.duration.as_secs()
    );
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(plan.concurrency)
        .build()
        .map_err(|e| ClientError::Unreachable {
            url: plan.target.clone(),
            reason: e.to_string(),
        })?;
    // One request up front, so a wrong URL or token fails loudly instead of
    // producing a table of errors. A 503 (the store is still persisting an
    // earlier phase's data) is waited out, so phases start on equal terms.
    let waiting_since = std::time::Instant::now();
    loop {
        match send(&http, plan, payloads[0].clone()).await {
            Ok(()) => break,
            Err(ClientError::Unexpected { status: 503, .. })
                if waiting_since.elapsed() < std::time::Duration::from_secs(120) =>
            {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e),
        }
    }
    let plan_for_op = Arc::new(plan.clone());
    let result = phase("remote write", plan.concurrency, plan.duration, move |i| {
        let (http, plan, payloads) = (http.clone(), plan_for_op.clone(), payloads.clone());
        async move {
            let payload = payloads[i % payloads.len()].clone();
            send(&http, &plan, payload).await
        }
    })
    .await;
    Ok((result, mean_bytes))
}

impl RemoteWritePlan {
    pub fn samples_per_request(&self) -> usize {
        self.series_per_request * self.samples_per_series
    }

    /// [`Self::first_timestamp_ms`], or the one whose span of distinct
    /// requests ends now.
    fn first_ms(&self) -> i64 {
        self.first_timestamp_ms.unwrap_or_else(|| {
            now_ms() - (self.distinct_requests.max(1) * self.samples_per_series) as i64 * STEP_MS
        })
    }
}

async fn send(
    http: &reqwest::Client,
    plan: &RemoteWritePlan,
    payload: bytes::Bytes,
) -> Result<(), ClientError> {
    let mut request = http
        .post(&plan.target)
        .header(
            "content-type",
            match plan.protocol {
                RemoteWriteVersion::V1 => "application/x-protobuf",
                RemoteWriteVersion::V2 => rw::CONTENT_TYPE_V2,
            },
        )
        .header("content-encoding", "snappy")
        .header(
            "x-prometheus-remote-write-version",
            match plan.protocol {
                RemoteWriteVersion::V1 => "0.1.0",
                RemoteWriteVersion::V2 => rw::VERSION_V2,
            },
        )
        .body(payload);
    if let Some(token) = &plan.token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.map_err(|e| ClientError::Unreachable {
        url: plan.target.clone(),
        reason: e.to_string(),
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    Err(ClientError::Unexpected {
        url: plan.target.clone(),
        status: status.as_u16(),
        body: response.text().await.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_decode_with_the_collectors_decoder() {
        let plan = RemoteWritePlan {
            target: String::new(),
            token: None,
            series_per_request: 100,
            samples_per_series: 10,
            labels_per_series: BASE_LABELS,
            protocol: RemoteWriteVersion::V1,
            first_timestamp_ms: Some(1_767_225_600_000),
            distinct_requests: 2,
            concurrency: 1,
            duration: Duration::ZERO,
        };
        let body = encode_request(&plan, plan.first_ms(), 1);
        let batches = modelwatch_collectors::decode_remote_write(
            &body,
            modelwatch_collectors::RemoteWriteVersion::V1,
            &modelwatch_collectors::RemoteWriteConfig::default(),
        )
        .expect("the generator's payload is valid remote write");
        assert_eq!(batches.samples.num_rows(), 1000);
        // Request 1 continues where request 0 ended.
        let first_ts = 1_767_225_600_000 + 10 * 15_000;
        let ts = batches
            .samples
            .points
            .column_by_name("ts")
            .expect("ts column")
            .as_any()
            .downcast_ref::<datafusion::arrow::array::TimestampMicrosecondArray>()
            .expect("µs timestamps")
            .value(0);
        assert_eq!(ts, first_ts * 1000);
    }

    #[test]
    fn prometheus_shape_in_2_0_decodes_to_the_same_rows_as_in_1_0() {
        let plan = |protocol| RemoteWritePlan {
            target: String::new(),
            token: None,
            series_per_request: 2000,
            samples_per_series: 1,
            labels_per_series: 20,
            protocol,
            first_timestamp_ms: Some(1_767_225_600_000),
            distinct_requests: 1,
            concurrency: 1,
            duration: Duration::ZERO,
        };
        let encode = |protocol| {
            let plan = plan(protocol);
            encode_request(&plan, plan.first_ms(), 3)
        };
        let decode = |protocol| {
            modelwatch_collectors::decode_remote_write(
                &encode(protocol),
                protocol,
                &modelwatch_collectors::RemoteWriteConfig::default(),
            )
            .expect("the generator's payload is valid remote write")
        };
        let (v1, v2) = (
            decode(RemoteWriteVersion::V1),
            decode(RemoteWriteVersion::V2),
        );
        assert_eq!(v1.samples.num_rows(), 2000);
        assert_eq!(v1.samples, v2.samples, "2.0 carries the same series as 1.0");
        // 20 labels: __name__ and the two model labels become columns.
        let labels = v1
            .samples
            .series
            .column_by_name("labels")
            .expect("labels")
            .as_any()
            .downcast_ref::<datafusion::arrow::array::MapArray>()
            .expect("a map")
            .value_length(0);
        assert_eq!(labels, 17);
        assert!(
            encode(RemoteWriteVersion::V2).len() < encode(RemoteWriteVersion::V1).len(),
            "the symbol table makes 2.0 smaller"
        );
    }
}
