//! `modelwatch bench upload`: inference rows per second through the batch
//! upload routes (Arrow IPC stream and NDJSON), against a running daemon.
//!
//! It creates a model and a version declaring the generated features, builds
//! one request body per format in memory (`--rows` rows of `--numeric`
//! numeric and `--categorical` categorical features, a prediction and an
//! inference id), then sends it `--requests` times with `--concurrency`
//! requests in flight and reports rows/s as the server acknowledged them.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use clap::Args;
use datafusion::arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::ipc::writer::StreamWriter;
use modelwatch_client::{Client, FeatureKind, NewModel, NewVersion, UploadOptions, UploadTable};
use modelwatch_collectors::batch::BatchFormat;

use crate::error::{Error, Result};
use crate::report;

#[derive(Debug, Clone, Args)]
pub struct UploadBenchArgs {
    /// Rows per request.
    #[arg(long, default_value_t = 200_000)]
    pub rows: usize,
    /// Requests per format.
    #[arg(long, default_value_t = 20)]
    pub requests: usize,
    /// Requests in flight.
    #[arg(long, default_value_t = 2)]
    pub concurrency: usize,
    /// Numeric features per row.
    #[arg(long, default_value_t = 8)]
    pub numeric: usize,
    /// Categorical features per row.
    #[arg(long, default_value_t = 2)]
    pub categorical: usize,
    /// Formats to measure (arrow, ndjson, csv, parquet is not generated).
    #[arg(long, value_delimiter = ',', default_value = "arrow,ndjson")]
    pub formats: Vec<String>,
}

#[derive(Debug, serde::Serialize)]
struct FormatResult {
    format: &'static str,
    requests: usize,
    errors: usize,
    rows: u64,
    body_bytes: usize,
    seconds: f64,
    rows_per_second: f64,
    mib_per_second: f64,
}

fn generate(a: &UploadBenchArgs) -> RecordBatch {
    let n = a.rows;
    let mut fields = vec![
        Field::new("inference_id", DataType::Utf8, false),
        Field::new("prediction", DataType::Float64, false),
    ];
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            (0..n).map(|i| format!("inf-{i}")),
        )),
        Arc::new(Float64Array::from_iter_values(
            (0..n).map(|i| (i % 100) as f64 / 100.0),
        )),
    ];
    for f in 0..a.numeric {
        fields.push(Field::new(format!("num_{f}"), DataType::Float64, false));
        cols.push(Arc::new(Float64Array::from_iter_values(
            (0..n).map(|i| ((i * 31 + f * 7) % 1000) as f64 * 0.5),
        )));
    }
    let categories = ["de", "fr", "us", "jp", "br", "in"];
    for f in 0..a.categorical {
        fields.push(Field::new(format!("cat_{f}"), DataType::Utf8, false));
        cols.push(Arc::new(StringArray::from_iter_values(
            (0..n).map(|i| categories[(i + f) % categories.len()]),
        )));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).expect("generated batch")
}

pub(crate) fn encode(batch: &RecordBatch, format: BatchFormat) -> Result<Vec<u8>> {
    let fail = |e: datafusion::arrow::error::ArrowError| {
        Error::Usage(format!("cannot encode the benchmark body: {e}"))
    };
    let mut out = Vec::new();
    match format {
        BatchFormat::ArrowStream => {
            let mut w = StreamWriter::try_new(&mut out, &batch.schema()).map_err(fail)?;
            // Several IPC messages, as a real client streaming rows would send.
            let step = 65_536;
            let mut off = 0;
            while off < batch.num_rows() {
                let len = step.min(batch.num_rows() - off);
                w.write(&batch.slice(off, len)).map_err(fail)?;
                off += len;
            }
            w.finish().map_err(fail)?;
        }
        BatchFormat::Ndjson => {
            let mut w = datafusion::arrow::json::LineDelimitedWriter::new(&mut out);
            w.write(batch).map_err(fail)?;
            w.finish().map_err(fail)?;
        }
        BatchFormat::Csv => {
            let mut w = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut out);
            w.write(batch).map_err(fail)?;
        }
        BatchFormat::Parquet => {
            return Err(Error::Usage(
                "the benchmark generates arrow, ndjson and csv bodies".into(),
            ));
        }
    }
    Ok(out)
}

/// `modelwatch bench upload`.
pub async fn run(client: &Client, json: bool, a: UploadBenchArgs) -> Result<ExitCode> {
    let client = client.clone();
    let model = format!(
        "bench-upload-{}",
        chrono::Utc::now().format("%Y%m%d%H%M%S%f")
    );
    let mut features = modelwatch_client::Features::new();
    for f in 0..a.numeric {
        features.insert(format!("num_{f}"), FeatureKind::Numeric);
    }
    for f in 0..a.categorical {
        features.insert(format!("cat_{f}"), FeatureKind::Categorical);
    }
    client.models().create(&NewModel::named(&model)).await?;
    let new_version = NewVersion {
        features,
        ..NewVersion::default()
    };
    let version = client.versions(&model).create(&new_version).await?.version;
    let batch = generate(&a);
    let mut results = Vec::new();
    for name in &a.formats {
        let format = BatchFormat::from_name(name)
            .ok_or_else(|| Error::Usage(format!("unknown format {name:?}")))?;
        let body = Bytes::from(encode(&batch, format)?);
        eprintln!(
            "{}: {} requests of {} rows ({} bytes), {} in flight, model {model}",
            format.name(),
            a.requests,
            a.rows,
            body.len(),
            a.concurrency
        );
        let options = Arc::new(UploadOptions {
            content_type: format.content_type().to_string(),
            gzip: false,
            idempotency_key: None,
        });
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let started = Instant::now();
        let workers: Vec<_> = (0..a.concurrency.max(1))
            .map(|_| {
                let (client, body, options, model, next) = (
                    client.clone(),
                    body.clone(),
                    options.clone(),
                    model.clone(),
                    next.clone(),
                );
                let requests = a.requests;
                tokio::spawn(async move {
                    let (mut rows, mut errors) = (0u64, 0usize);
                    while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < requests {
                        let versions = client.versions(&model);
                        let upload = versions.upload(
                            version,
                            UploadTable::Inferences,
                            &options,
                            reqwest::Body::from(body.clone()),
                        );
                        match upload.await {
                            Ok(reply) => rows += reply.rows,
                            Err(e) => {
                                errors += 1;
                                eprintln!("request failed: {e}");
                            }
                        }
                    }
                    (rows, errors)
                })
            })
            .collect();
        let (mut rows, mut errors) = (0u64, 0usize);
        for w in workers {
            if let Ok((r, e)) = w.await {
                rows += r;
                errors += e;
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        results.push(FormatResult {
            format: format.name(),
            requests: a.requests,
            errors,
            rows,
            body_bytes: body.len(),
            seconds,
            rows_per_second: rows as f64 / seconds,
            mib_per_second: (body.len() * (a.requests - errors)) as f64
                / seconds
                / (1 << 20) as f64,
        });
    }
    report::print(json, &results, |results| {
        println!(
            "{:<8} {:>9} {:>7} {:>12} {:>9} {:>14} {:>9}",
            "format", "requests", "errors", "rows", "seconds", "rows/s", "MiB/s"
        );
        for r in results {
            println!(
                "{:<8} {:>9} {:>7} {:>12} {:>9.2} {:>14.0} {:>9.1}",
                r.format,
                r.requests,
                r.errors,
                r.rows,
                r.seconds,
                r.rows_per_second,
                r.mib_per_second
            );
        }
    });
    Ok(report::exit_code(results.iter().map(|r| r.errors).sum()))
}
