//! `modelwatch bench remote-write`: a Prometheus remote write 1.0 load
//! generator. It pre-encodes realistic requests (snappy-compressed protobuf,
//! sorted labels, `model`/`model_version` labels, counters and gauges with
//! advancing timestamps) before the clock starts, so what is measured is the
//! receiver: HTTP, decode, WAL fsync, acknowledgement. The same payloads can
//! be pointed at any remote-write receiver with `--target` (BENCHMARKS.md
//! compares with VictoriaMetrics this way).

use std::sync::Arc;
use std::time::Duration;

use modelwatch_collectors::remote_write::proto;
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
    /// Distinct pre-encoded requests cycled through.
    pub distinct_requests: usize,
    pub concurrency: usize,
    pub duration: Duration,
}

/// Series labels that look like a model server's: a metric family, an
/// instance, a job, and the model attribution labels.
fn series_labels(series: usize, models: usize) -> Vec<proto::Label> {
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
    ];
    labels.sort_by(|a, b| a.0.cmp(b.0));
    labels
        .into_iter()
        .map(|(name, value)| proto::Label {
            name: name.to_string(),
            value,
        })
        .collect()
}

/// Encoded request number `n`: its samples start where request `n - 1`
/// ended, 15 s apart, as a scraping Prometheus would produce them.
fn encode_request(plan: &RemoteWritePlan, n: usize) -> Vec<u8> {
    const STEP_MS: i64 = 15_000;
    let start_ms = 1_767_225_600_000 + (n * plan.samples_per_series) as i64 * STEP_MS;
    let timeseries = (0..plan.series_per_request)
        .map(|s| proto::TimeSeries {
            labels: series_labels(s, 10),
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
    encode_series(timeseries)
}

/// A remote-write 1.0 body (snappy-compressed `WriteRequest`) of `timeseries`.
pub fn encode_series(timeseries: Vec<proto::TimeSeries>) -> Vec<u8> {
    let request = proto::WriteRequest {
        timeseries,
        metadata: Vec::new(),
    };
    snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())
        .expect("snappy compression of an in-memory buffer cannot fail")
}

/// Runs the load and returns one phase result whose `per_second` counts
/// requests; multiply by [`RemoteWritePlan::samples_per_request`] for samples.
pub async fn run(plan: &RemoteWritePlan) -> Result<(PhaseResult, f64), ClientError> {
    let payloads: Arc<Vec<bytes::Bytes>> = Arc::new(
        (0..plan.distinct_requests.max(1))
            .map(|n| bytes::Bytes::from(encode_request(plan, n)))
            .collect(),
    );
    let mean_bytes = payloads.iter().map(|p| p.len()).sum::<usize>() as f64 / payloads.len() as f64;
    eprintln!(
        "remote write to {}: {} series x {} samples per request ({} samples, {:.0} bytes compressed), {} in flight, {}s",
        plan.target,
        plan.series_per_request,
        plan.samples_per_series,
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
}

async fn send(
    http: &reqwest::Client,
    plan: &RemoteWritePlan,
    payload: bytes::Bytes,
) -> Result<(), ClientError> {
    let mut request = http
        .post(&plan.target)
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "snappy")
        .header("x-prometheus-remote-write-version", "0.1.0")
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
            distinct_requests: 2,
            concurrency: 1,
            duration: Duration::ZERO,
        };
        let body = encode_request(&plan, 1);
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
            .column_by_name("ts")
            .expect("ts column")
            .as_any()
            .downcast_ref::<datafusion::arrow::array::TimestampMicrosecondArray>()
            .expect("µs timestamps")
            .value(0);
        assert_eq!(ts, first_ts * 1000);
    }
}
