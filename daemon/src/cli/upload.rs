//! `modelwatch upload inferences|reference|labels --model M --version V FILE`:
//! streams a file to the batch upload routes with a progress bar.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bytes::Bytes;
use clap::{Args, Subcommand};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressFinish, ProgressStyle};

use modelwatch_client::{UploadOptions, UploadResponse, UploadTable};
use modelwatch_collectors::batch::BatchFormat;

use super::output::{Column, print, record};
use super::{CliError, Connection, client, document};

#[derive(Debug, Subcommand)]
pub enum UploadCommand {
    /// Production inferences of a version (table `inferences`).
    Inferences(UploadArgs),
    /// Reference data of a version (table `reference`); the first one
    /// declares the version's features when it has none.
    Reference(UploadArgs),
    /// Ground truth for earlier inferences (table `delayed_labels`): rows
    /// of `inference_id`, `label` and optionally `ts`, joined to the
    /// version's inferences by `inference_id`.
    Labels(UploadArgs),
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
    ("matched labels", "/labels/matched"),
    ("unmatched labels", "/labels/unmatched"),
];

/// Format and gzip from the file name (`x.csv`, `x.csv.gz`).
pub fn detect(path: &Path, format: Option<&str>) -> Result<(BatchFormat, bool), CliError> {
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
            .ok_or_else(|| CliError::Usage(format!("unknown --format {f:?}")));
    }
    let ext = stem.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    BatchFormat::from_extension(ext)
        .map(|f| (f, gzip))
        .ok_or_else(|| {
            CliError::Usage(format!(
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
    modelwatch_server::upload::file_stream(file).inspect(move |chunk| {
        if let Ok(c) = chunk {
            progress.inc(c.len() as u64);
        }
    })
}

pub async fn run(command: UploadCommand, conn: &Connection) -> Result<ExitCode, CliError> {
    let (table, args) = match command {
        UploadCommand::Inferences(a) => (UploadTable::Inferences, a),
        UploadCommand::Reference(a) => (UploadTable::Reference, a),
        UploadCommand::Labels(a) => (UploadTable::Labels, a),
    };
    let (format, gzip) = detect(&args.file, args.format.as_deref())?;
    let key = args
        .idempotency_key
        .clone()
        .unwrap_or_else(|| format!("cli-{:032x}", rand::random::<u128>()));
    let options = UploadOptions {
        content_type: format.content_type().to_string(),
        gzip,
        idempotency_key: Some(key),
    };
    let client = client(conn)?;
    let attempts = args.attempts.max(1);
    let progress = Progress {
        hidden: conn.json || !std::io::stderr().is_terminal(),
    };
    // Each attempt streams the file afresh with its own progress bar; the
    // client repeats the upload only when the connection was lost, with
    // the same idempotency key, so it is stored at most once.
    let reply: UploadResponse = client
        .versions(&args.model)
        .upload_with_retries(
            args.version,
            table,
            &options,
            attempts,
            || open_file(&args.file, progress),
            |e, next| {
                let reason = match e {
                    modelwatch_client::Error::Unreachable { reason, .. } => reason.as_str(),
                    _ => "",
                };
                eprintln!(
                    "connection lost ({reason}); retrying with the same idempotency key ({next}/{attempts})"
                );
            },
        )
        .await?;
    if reply.replayed {
        eprintln!(
            "the server had this upload already (same idempotency key and body); nothing was stored again"
        );
    }
    print(conn.json, &document(&reply), |v| record(v, RESULT));
    Ok(ExitCode::SUCCESS)
}

/// Whether an attempt draws a progress bar (not for `--json`, nor when
/// stderr is not a terminal).
#[derive(Debug, Clone, Copy)]
struct Progress {
    hidden: bool,
}

/// One attempt's body: the file streamed from the start, counted by a
/// progress bar that clears itself once the body is sent (or dropped).
async fn open_file(path: &Path, progress: Progress) -> Result<reqwest::Body, CliError> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| CliError::Usage(format!("cannot open {}: {e}", path.display())))?;
    let len = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    let bar = byte_progress(
        progress.hidden,
        len,
        format!("uploading {}", path.display()),
    );
    Ok(reqwest::Body::wrap_stream(file_stream(file, bar)))
}

/// A progress bar over `total` bytes on stderr that clears itself when
/// done; hidden for `--json` or when stderr is not a terminal.
pub fn byte_progress(hidden: bool, total: u64, message: String) -> ProgressBar {
    if hidden {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
        .with_finish(ProgressFinish::AndClear);
    pb.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    pb.set_message(message);
    pb
}
