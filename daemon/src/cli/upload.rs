//! `modelwatch upload inferences|reference --model M --version V FILE`:
//! streams a file to the batch upload routes with a progress bar.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bytes::Bytes;
use clap::{Args, Subcommand};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use modelwatch_collectors::batch::BatchFormat;

use super::Connection;
use super::client::{Client, ClientError, enc};
use super::output::{Column, print, record};

#[derive(Debug, Subcommand)]
pub enum UploadCommand {
    /// Production inferences of a version (table `inferences`).
    Inferences(UploadArgs),
    /// Reference data of a version (table `reference`); the first one
    /// declares the version's features when it has none.
    Reference(UploadArgs),
}

#[derive(Debug, Args)]
pub struct UploadArgs {
    /// Model name.
    #[arg(long)]
    pub model: String,
    /// Version number.
    #[arg(long)]
    pub version: i64,
    /// The file: .ndjson/.jsonl, .csv, .parquet, .arrow/.arrows (Arrow IPC
    /// stream), each optionally gzip-compressed with a further .gz.
    pub file: PathBuf,
    /// Format, when the extension does not say it.
    #[arg(long, value_parser = ["ndjson", "csv", "parquet", "arrow"])]
    pub format: Option<String>,
    /// Idempotency key: the server stores an upload with a given key once
    /// (for a day), so running the command again after a lost reply is
    /// safe. Default: a fresh key per run, reused by the command's own
    /// retries.
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
    /// Attempts when the connection is lost before a reply (each with the
    /// same idempotency key).
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub attempts: u32,
}

const RESULT: &[Column] = &[
    ("upload id", "/upload_id"),
    ("table", "/table"),
    ("rows", "/rows"),
    ("bytes", "/bytes"),
    ("duration ms", "/duration_ms"),
    ("features", "/features"),
    ("features declared", "/features_declared"),
    ("replayed", "/replayed"),
];

/// Format and gzip from the file name (`x.csv`, `x.csv.gz`).
pub fn detect(path: &Path, format: Option<&str>) -> Result<(BatchFormat, bool), ClientError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let (stem, gzip) = match name.strip_suffix(".gz") {
        Some(stem) => (stem.to_string(), true),
        None => (name, false),
    };
    if let Some(f) = format {
        return BatchFormat::from_name(f)
            .map(|f| (f, gzip))
            .ok_or_else(|| ClientError::Usage(format!("unknown --format {f:?}")));
    }
    let ext = stem.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    BatchFormat::from_extension(ext)
        .map(|f| (f, gzip))
        .ok_or_else(|| {
            ClientError::Usage(format!(
                "cannot tell the format of {} from its extension; name it .ndjson, .jsonl, .csv, .parquet, .arrow or .arrows (optionally .gz), or pass --format",
                path.display()
            ))
        })
}

/// A file as a stream of chunks, counting progress.
pub fn file_stream(
    file: tokio::fs::File,
    progress: ProgressBar,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    use tokio::io::AsyncReadExt;
    futures::stream::unfold(file, |mut f| async move {
        let mut buf = vec![0u8; 1 << 20];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    })
    .inspect(move |chunk| {
        if let Ok(c) = chunk {
            progress.inc(c.len() as u64);
        }
    })
}

pub async fn run(command: UploadCommand, conn: &Connection) -> Result<ExitCode, ClientError> {
    let (kind, args) = match command {
        UploadCommand::Inferences(a) => ("inferences", a),
        UploadCommand::Reference(a) => ("reference", a),
    };
    let (format, gzip) = detect(&args.file, args.format.as_deref())?;
    let key = args
        .idempotency_key
        .clone()
        .unwrap_or_else(|| format!("cli-{:032x}", rand::random::<u128>()));
    let path = format!(
        "/api/v1/models/{}/versions/{}/{kind}",
        enc(&args.model),
        args.version
    );
    let client = Client::new(&conn.url, conn.token.clone());
    let mut headers = vec![("idempotency-key", key.as_str())];
    if gzip {
        headers.push(("content-encoding", "gzip"));
    }
    let attempts = args.attempts.max(1);
    let mut attempt = 1;
    let v = loop {
        let result = send_file(&client, &path, &args, format, &headers, conn).await;
        match result {
            // A lost connection may have lost only the reply: the retry
            // carries the same key, so the upload is stored at most once.
            Err(ClientError::Unreachable { ref reason, .. }) if attempt < attempts => {
                eprintln!(
                    "connection lost ({reason}); retrying with the same idempotency key ({}/{attempts})",
                    attempt + 1
                );
                tokio::time::sleep(std::time::Duration::from_secs(u64::from(attempt))).await;
                attempt += 1;
            }
            other => break other?,
        }
    };
    if v["replayed"] == true {
        eprintln!(
            "the server had this upload already (same idempotency key and body); nothing was stored again"
        );
    }
    print(conn.json, &v, |v| record(v, RESULT));
    Ok(ExitCode::SUCCESS)
}

/// One attempt: streams the file with a progress bar.
async fn send_file(
    client: &Client,
    path: &str,
    args: &UploadArgs,
    format: BatchFormat,
    headers: &[(&str, &str)],
    conn: &Connection,
) -> Result<serde_json::Value, ClientError> {
    let file = tokio::fs::File::open(&args.file)
        .await
        .map_err(|e| ClientError::Usage(format!("cannot open {}: {e}", args.file.display())))?;
    let len = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    let progress = if conn.json || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
        pb.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        pb.set_message(format!("uploading {}", args.file.display()));
        pb
    };
    let body = reqwest::Body::wrap_stream(file_stream(file, progress.clone()));
    let result = client
        .send_body(path, format.content_type(), headers, body)
        .await;
    progress.finish_and_clear();
    result
}
