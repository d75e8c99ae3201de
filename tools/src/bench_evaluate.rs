//! `modelwatch bench evaluate`: one evaluator cycle over many watched
//! versions, and remote-write ingestion idle versus during evaluation,
//! against a running daemon.
//!
//! It loads `--versions` models (each: one version declaring `--features`
//! numeric features, `--reference-rows` reference rows, `production` → v1,
//! `--rows / --versions` inference rows in the last hour, every other model
//! with half of its features drifted), then sets their policies, times
//! `--cycles` forced cycles through `POST /api/v1/evaluate`, and runs the
//! remote-write load twice: idle, and while cycles run back to back.
//! A second run with the same `--prefix` reuses the loaded models.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use datafusion::arrow::array::{ArrayRef, Float64Array, RecordBatch, TimestampMillisecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use serde_json::json;

use modelwatch_client::{
    Client, CycleReport, FeatureKind, MonitoringPolicy, NewModel, NewVersion, Period,
    UploadOptions, UploadTable, routes,
};
use modelwatch_collectors::batch::BatchFormat;

use crate::bench_remote_write::{self, RemoteWritePlan};
use crate::bench_upload::encode;
use crate::error::Result;
use crate::report;

#[derive(Debug, Clone, Args)]
pub struct EvaluateBenchArgs {
    /// Watched versions (one model each).
    #[arg(long, default_value_t = 50)]
    pub versions: usize,
    /// Numeric features per version.
    #[arg(long, default_value_t = 20)]
    pub features: usize,
    /// Inference rows in total, spread over the versions.
    #[arg(long, default_value_t = 10_000_000)]
    pub rows: usize,
    /// Reference rows per version.
    #[arg(long, default_value_t = 5_000)]
    pub reference_rows: usize,
    /// Timed evaluation cycles.
    #[arg(long, default_value_t = 3)]
    pub cycles: usize,
    /// Seconds per remote-write phase.
    #[arg(long, default_value_t = 15)]
    pub seconds: u64,
    /// Remote-write requests in flight.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Model name prefix; models already loaded under it are reused.
    #[arg(long, default_value = "bench-eval")]
    pub prefix: String,
}

/// Rows per upload request (well under the upload limit).
const UPLOAD_ROWS: usize = 250_000;

/// `n` rows of `features` numeric columns; `shift` moves the first half of
/// them (a drifted share of 0.5: dataset drift under the default policy).
fn generate(n: usize, features: usize, seed: usize, shift: f64, end_ms: i64) -> RecordBatch {
    let mut fields = vec![Field::new(
        "ts",
        DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
        false,
    )];
    let span_ms = 3_600_000i64;
    let mut cols: Vec<ArrayRef> = vec![Arc::new(
        TimestampMillisecondArray::from_iter_values(
            (0..n).map(|i| end_ms - span_ms + (i as i64 * span_ms) / n.max(1) as i64),
        )
        .with_timezone("UTC"),
    )];
    for f in 0..features {
        fields.push(Field::new(format!("f{f:02}"), DataType::Float64, false));
        let shift = if f < features / 2 { shift } else { 0.0 };
        // A cheap deterministic spread (sum of two uniforms: triangular).
        cols.push(Arc::new(Float64Array::from_iter_values((0..n).map(|i| {
            let a = ((i + seed) * 2_654_435_761 + f * 97) % 1000;
            let b = ((i + seed) * 40_503 + f * 31) % 1000;
            (a + b) as f64 / 20.0 + shift
        }))));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).expect("generated batch")
}

async fn upload(
    client: &Client,
    model: &str,
    table: UploadTable,
    batch: &RecordBatch,
) -> Result<()> {
    let options = UploadOptions {
        content_type: BatchFormat::ArrowStream.content_type().to_string(),
        gzip: false,
        idempotency_key: None,
    };
    let mut offset = 0;
    while offset < batch.num_rows() {
        let len = UPLOAD_ROWS.min(batch.num_rows() - offset);
        let body = encode(&batch.slice(offset, len), BatchFormat::ArrowStream)?;
        client
            .versions(model)
            .upload(1, table, &options, reqwest::Body::from(body))
            .await?;
        offset += len;
    }
    Ok(())
}

async fn load(client: &Client, a: &EvaluateBenchArgs) -> Result<()> {
    let per_version = a.rows / a.versions.max(1);
    let features: modelwatch_client::Features = (0..a.features)
        .map(|f| (format!("f{f:02}"), FeatureKind::Numeric))
        .collect();
    let now_ms = chrono::Utc::now().timestamp_millis();
    let started = Instant::now();
    for v in 0..a.versions {
        let model = format!("{}-{v}", a.prefix);
        client.models().create(&NewModel::named(&model)).await?;
        let new_version = NewVersion {
            features: features.clone(),
            ..NewVersion::default()
        };
        client.versions(&model).create(&new_version).await?;
        let reference = generate(
            a.reference_rows,
            a.features,
            v * 7919,
            0.0,
            now_ms - 86_400_000,
        );
        upload(client, &model, UploadTable::Reference, &reference).await?;
        let shift = if v % 2 == 1 { 40.0 } else { 0.0 };
        let current = generate(per_version, a.features, v * 104_729 + 1, shift, now_ms);
        upload(client, &model, UploadTable::Inferences, &current).await?;
        client.aliases(&model).set("production", 1, "").await?;
        eprintln!(
            "loaded {model}: {} reference and {per_version} inference rows ({:.0}s)",
            a.reference_rows,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

async fn cycle(client: &Client) -> Result<CycleReport> {
    Ok(client.evaluate(None).await?)
}

/// `modelwatch bench evaluate`.
pub async fn run(client: &Client, json: bool, a: EvaluateBenchArgs) -> Result<ExitCode> {
    let client = client.clone();
    let first = format!("{}-0", a.prefix);
    let loaded = client.models().get(&first).await.is_ok();
    if loaded {
        eprintln!("models {}-* exist already; reusing them", a.prefix);
    } else {
        load(&client, &a).await?;
    }
    // Policies last, so no evaluation runs while loading.
    let policy = MonitoringPolicy {
        interval: Period::from_secs(86_400),
        current_window: Period::from_secs(86_400),
        min_rows: 100,
        persistence: 3,
        ..MonitoringPolicy::default()
    };
    for v in 0..a.versions {
        client
            .policies()
            .set(&format!("{}-{v}", a.prefix), &policy)
            .await?;
    }

    let mut cycles = Vec::new();
    for c in 0..a.cycles.max(1) {
        let report = cycle(&client).await?;
        let ms = report.duration_ms;
        let evaluated = report
            .versions
            .iter()
            .filter(|o| o.status == "evaluated")
            .count();
        let drifted = report
            .versions
            .iter()
            .filter(|o| o.dataset_drift == Some(true))
            .count();
        eprintln!("cycle {c}: {ms:.0} ms, {evaluated} versions evaluated, {drifted} drifted");
        cycles.push((ms, evaluated, drifted));
    }

    let plan = RemoteWritePlan {
        target: client.url(routes::REMOTE_WRITE),
        token: client.token().map(str::to_string),
        series_per_request: 100,
        samples_per_series: 10,
        labels_per_series: bench_remote_write::BASE_LABELS,
        protocol: modelwatch_collectors::RemoteWriteVersion::V1,
        first_timestamp_ms: None,
        distinct_requests: 256,
        concurrency: a.concurrency,
        duration: Duration::from_secs(a.seconds),
    };
    let (idle, _) = bench_remote_write::run(&plan).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let during_cycles = Arc::new(AtomicUsize::new(0));
    let looping = {
        let (client, stop, during_cycles) = (client.clone(), stop.clone(), during_cycles.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if cycle(&client).await.is_ok() {
                    during_cycles.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let (busy, _) = bench_remote_write::run(&plan).await?;
    stop.store(true, Ordering::Relaxed);
    let _ = looping.await;

    let samples = plan.samples_per_request() as f64;
    let (idle_rate, busy_rate) = (idle.per_second * samples, busy.per_second * samples);
    let mut sorted: Vec<f64> = cycles.iter().map(|c| c.0).collect();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let summary = json!({
        "versions": a.versions,
        "features": a.features,
        "inference_rows": a.rows,
        "cycle_ms": cycles.iter().map(|c| c.0).collect::<Vec<_>>(),
        "cycle_median_ms": median,
        "versions_evaluated": cycles.last().map(|c| c.1),
        "versions_drifted": cycles.last().map(|c| c.2),
        "ingest_idle_samples_per_second": idle_rate,
        "ingest_during_evaluation_samples_per_second": busy_rate,
        "ingest_ratio": busy_rate / idle_rate,
        "cycles_during_ingest": during_cycles.load(Ordering::Relaxed),
        "ingest_errors": idle.errors + busy.errors,
    });
    report::print(json, &summary, |_| {
        println!(
            "evaluation cycle ({} versions x {} features, {} inference rows): median {median:.0} ms over {} cycles",
            a.versions,
            a.features,
            a.rows,
            cycles.len()
        );
        println!(
            "remote write: idle {idle_rate:.0} samples/s, during evaluation {busy_rate:.0} samples/s (ratio {:.2}, {} cycles ran)",
            busy_rate / idle_rate,
            during_cycles.load(Ordering::Relaxed)
        );
    });
    Ok(ExitCode::SUCCESS)
}
