//! `modelwatch artifacts push|pull|ls`: a version's files between a local
//! directory and the daemon, with progress bars. Every file is hashed
//! here too: a push declares each file's sha256 (the daemon keeps nothing
//! that does not match) and `--seal` declares the manifest digest; a pull
//! checks every file it writes.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use futures::StreamExt;
use indicatif::ProgressBar;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use modelwatch_artifacts::{ArtifactPath, FileEntry, Manifest, Sha256Digest};

use super::output::{Column, print, record, rows};
use super::upload::{byte_progress as bar, file_stream};
use super::{CliError, Connection, client, document};

#[derive(Debug, Subcommand)]
pub enum ArtifactsCommand {
    /// Upload a file or a directory's files into a version that is not
    /// sealed yet (paths relative to the directory).
    Push {
        #[command(flatten)]
        version: VersionArgs,
        /// A file, or a directory whose files (recursively) are pushed.
        source: PathBuf,
        /// Store a single file under this path instead of its name.
        #[arg(long, value_name = "PATH")]
        r#as: Option<String>,
        /// Seal the version afterwards: its files become fixed and its
        /// artifact_digest the manifest digest computed here.
        #[arg(long)]
        seal: bool,
        /// Files larger than this go in chunks of this many bytes, as a
        /// resumable upload: a broken connection or a restarted daemon
        /// costs one chunk, not the file.
        #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_CHUNK_BYTES,
              value_parser = clap::value_parser!(u64).range(MIN_CHUNK_BYTES..))]
        chunk_bytes: u64,
        /// How many times in a row a chunk is retried (after asking the
        /// daemon where the upload stands) before the push gives up.
        #[arg(long, default_value_t = 5)]
        retries: u32,
    },
    /// Download a version's files into a directory (created), each
    /// checked against its sha256.
    Pull {
        #[command(flatten)]
        version: VersionArgs,
        /// Where to write them [default: ./<model>-<version>]
        #[arg(long, value_name = "DIR")]
        to: Option<PathBuf>,
        /// Only the files under this path.
        #[arg(long, value_name = "PATH")]
        only: Option<String>,
    },
    /// List a version's files and whether they are sealed.
    Ls {
        #[command(flatten)]
        version: VersionArgs,
    },
}

#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Model name.
    #[arg(long)]
    pub model: String,
    /// Version number.
    #[arg(long)]
    pub version: i64,
}

/// 32 MiB: few requests per file, and a lost chunk is quickly sent again.
pub const DEFAULT_CHUNK_BYTES: u64 = 32 << 20;
const MIN_CHUNK_BYTES: u64 = 1024;
/// The first wait before a chunk is retried; doubled each time.
const FIRST_RETRY_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

const FILES: &[Column] = &[("path", "/path"), ("size", "/size"), ("sha256", "/sha256")];
const SUMMARY: &[Column] = &[
    ("model", "/model"),
    ("version", "/version"),
    ("state", "/state"),
    ("artifact digest", "/artifact_digest"),
    ("files", "/file_count"),
    ("bytes", "/total_bytes"),
];

pub async fn run(command: ArtifactsCommand, conn: &Connection) -> Result<ExitCode, CliError> {
    match command {
        ArtifactsCommand::Ls { version } => {
            let listing = client(conn)?
                .versions(&version.model)
                .artifacts(version.version)
                .await?;
            let doc = document(&listing);
            print(conn.json, &doc, |v| {
                let mut summary = v.clone();
                summary["file_count"] = v["files"].as_array().map_or(0, Vec::len).into();
                format!(
                    "{}\n{}",
                    record(&summary, SUMMARY),
                    rows(
                        v["files"].as_array().map(Vec::as_slice).unwrap_or_default(),
                        FILES
                    )
                )
            });
            Ok(ExitCode::SUCCESS)
        }
        ArtifactsCommand::Push {
            version,
            source,
            r#as,
            seal,
            chunk_bytes,
            retries,
        } => {
            let chunking = Chunking {
                chunk_bytes,
                retries,
            };
            push(conn, &version, &source, r#as.as_deref(), seal, chunking).await
        }
        ArtifactsCommand::Pull { version, to, only } => {
            pull(conn, &version, to, only.as_deref()).await
        }
    }
}

/// The files to push: `(path in the version, local file)`.
fn plan(source: &Path, rename: Option<&str>) -> Result<Vec<(ArtifactPath, PathBuf)>, CliError> {
    let meta = std::fs::metadata(source)
        .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", source.display())))?;
    let to_path = |p: String| ArtifactPath::parse(&p).map_err(|e| CliError::Usage(e.to_string()));
    if meta.is_file() {
        let name = match rename {
            Some(n) => n.to_string(),
            None => source
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        };
        return Ok(vec![(to_path(name)?, source.to_path_buf())]);
    }
    if rename.is_some() {
        return Err(CliError::Usage(
            "--as renames a single file; a directory's files keep their relative paths".into(),
        ));
    }
    let mut out = Vec::new();
    let mut stack = vec![source.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| CliError::Usage(format!("cannot list {}: {e}", dir.display())))?;
        for entry in entries {
            let entry = entry.map_err(|e| CliError::Usage(e.to_string()))?;
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path
                    .strip_prefix(source)
                    .map_err(|e| CliError::Usage(e.to_string()))?
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push((to_path(rel)?, path));
            }
        }
    }
    if out.is_empty() {
        return Err(CliError::Usage(format!(
            "{} holds no files",
            source.display()
        )));
    }
    out.sort();
    Ok(out)
}

async fn hash_file(path: &Path, progress: &ProgressBar) -> Result<FileEntry, CliError> {
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| CliError::Usage(format!("cannot open {}: {e}", path.display())))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .await
            .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display())))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
        progress.inc(n as u64);
    }
    Ok(FileEntry {
        size,
        sha256: Sha256Digest(hasher.finalize().into()),
    })
}

async fn push(
    conn: &Connection,
    version: &VersionArgs,
    source: &Path,
    rename: Option<&str>,
    seal: bool,
    chunking: Chunking,
) -> Result<ExitCode, CliError> {
    let files = plan(source, rename)?;
    let hidden = conn.json || !std::io::stderr().is_terminal();
    let total: u64 = files
        .iter()
        .map(|(_, p)| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum();
    let mut manifest = Manifest::default();
    let hashing = bar(hidden, total, "hashing".into());
    for (path, local) in &files {
        manifest
            .files
            .insert(path.to_string(), hash_file(local, &hashing).await?);
    }
    hashing.finish_and_clear();
    let api = client(conn)?;
    let versions = api.versions(&version.model);
    let uploading = bar(hidden, total, format!("pushing {} file(s)", files.len()));
    for (path, local) in &files {
        let entry = manifest.files[path.as_str()];
        if entry.size > chunking.chunk_bytes {
            push_in_chunks(
                &versions,
                version.version,
                path,
                local,
                entry,
                chunking,
                &uploading,
            )
            .await?;
            continue;
        }
        let file = open(local).await?;
        let body = file_stream(file, uploading.clone());
        versions
            .put_artifact(
                version.version,
                path.as_str(),
                Some(&entry.sha256.to_string()),
                reqwest::Body::wrap_stream(body),
            )
            .await?;
    }
    uploading.finish_and_clear();
    let listing = if seal {
        versions
            .seal_artifacts(version.version, Some(&manifest.digest().to_string()))
            .await?
    } else {
        versions.artifacts(version.version).await?
    };
    let mut doc = document(&listing);
    doc["file_count"] = listing.files.len().into();
    print(conn.json, &doc, |v| record(v, SUMMARY));
    Ok(ExitCode::SUCCESS)
}

/// How large files are pushed.
#[derive(Debug, Clone, Copy)]
pub struct Chunking {
    pub chunk_bytes: u64,
    pub retries: u32,
}

async fn open(local: &Path) -> Result<tokio::fs::File, CliError> {
    tokio::fs::File::open(local)
        .await
        .map_err(|e| CliError::Usage(format!("cannot open {}: {e}", local.display())))
}

/// Whether a failed chunk is worth sending again after asking where the
/// upload stands: no reply, a body cut short, the daemon busy or
/// restarting, or an offset the daemon sees otherwise.
fn retryable(e: &modelwatch_client::Error) -> bool {
    e.is_connection_lost()
        || matches!(e.status(), Some(500..=599))
        || matches!(
            e.code(),
            Some("truncated_upload" | "offset_mismatch" | "upload_busy")
        )
}

/// One file as a resumable upload, chunk by chunk; on a failure, asks the
/// daemon for the upload's offset and resumes from there.
async fn push_in_chunks(
    versions: &modelwatch_client::Versions<'_>,
    version: i64,
    path: &ArtifactPath,
    local: &Path,
    entry: FileEntry,
    chunking: Chunking,
    progress: &ProgressBar,
) -> Result<(), CliError> {
    use tokio::io::AsyncSeekExt;
    let begun = versions
        .begin_artifact_upload(
            version,
            &modelwatch_client::NewUpload {
                path: path.to_string(),
                size: entry.size,
                sha256: Some(entry.sha256.to_string()),
            },
        )
        .await?;
    let base = progress.position();
    let mut offset = 0u64;
    let mut failures = 0u32;
    while offset < entry.size {
        let len = chunking.chunk_bytes.min(entry.size - offset);
        let mut file = open(local).await?;
        file.seek(std::io::SeekFrom::Start(offset))
            .await
            .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", local.display())))?;
        let chunk = region_stream(file.take(len));
        let sent = versions
            .append_artifact_upload(
                version,
                &begun.id,
                offset,
                reqwest::Body::wrap_stream(chunk),
            )
            .await;
        let error = match sent {
            Ok(status) if status.complete => {
                progress.set_position(base + entry.size);
                return Ok(());
            }
            Ok(status) => {
                offset = status.offset;
                failures = 0;
                progress.set_position(base + offset);
                continue;
            }
            Err(e) if retryable(&e) && failures < chunking.retries => e,
            Err(e) => return Err(e.into()),
        };
        failures += 1;
        let wait = FIRST_RETRY_WAIT * 2u32.pow(failures - 1);
        progress.suspend(|| {
            eprintln!(
                "{path}: chunk at offset {offset} failed ({error}); asking where the upload stands in {:.1} s (try {failures} of {})",
                wait.as_secs_f64(),
                chunking.retries
            )
        });
        tokio::time::sleep(wait).await;
        match versions.artifact_upload(version, &begun.id).await {
            Ok(status) => {
                offset = status.offset;
                progress.set_position(base + offset);
            }
            // Gone: the last chunk may have committed the file before its
            // reply was lost. Then the version lists it.
            Err(e) if e.status() == Some(404) => {
                let listing = versions.artifacts(version).await?;
                let stored = listing
                    .files
                    .iter()
                    .any(|f| f.path == path.as_str() && f.sha256 == entry.sha256.to_string());
                if stored {
                    progress.set_position(base + entry.size);
                    return Ok(());
                }
                return Err(e.into());
            }
            // Unreachable again: keep the offset, the next try asks anew.
            Err(_) => {}
        }
    }
    Ok(())
}

/// The bytes of a file region as a body stream.
fn region_stream(
    reader: tokio::io::Take<tokio::fs::File>,
) -> impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static {
    futures::stream::try_unfold(reader, |mut reader| async move {
        let mut buf = bytes::BytesMut::with_capacity(1 << 20);
        let n = reader.read_buf(&mut buf).await?;
        Ok((n > 0).then(|| (buf.freeze(), reader)))
    })
}

async fn pull(
    conn: &Connection,
    version: &VersionArgs,
    to: Option<PathBuf>,
    only: Option<&str>,
) -> Result<ExitCode, CliError> {
    let api = client(conn)?;
    let versions = api.versions(&version.model);
    let listing = versions.artifacts(version.version).await?;
    let dir = to.unwrap_or_else(|| PathBuf::from(format!("{}-{}", version.model, version.version)));
    let wanted: Vec<_> = listing
        .files
        .iter()
        .filter(|f| {
            only.is_none_or(|o| {
                f.path == o || f.path.strip_prefix(o).is_some_and(|r| r.starts_with('/'))
            })
        })
        .collect();
    if wanted.is_empty() {
        return Err(CliError::Usage(format!(
            "version {} of {:?} has no files{}",
            version.version,
            version.model,
            only.map(|o| format!(" under {o:?}")).unwrap_or_default()
        )));
    }
    let total = wanted.iter().map(|f| f.size).sum();
    let hidden = conn.json || !std::io::stderr().is_terminal();
    let progress = bar(hidden, total, format!("pulling {} file(s)", wanted.len()));
    for f in &wanted {
        // The daemon's paths are checked like uploads before any is joined
        // to the local directory.
        let rel = ArtifactPath::parse(&f.path).map_err(|e| CliError::Local(e.to_string()))?;
        let target = dir.join(rel.as_str());
        let expected =
            Sha256Digest::parse(&f.sha256).map_err(|e| CliError::Local(e.to_string()))?;
        download(
            &versions,
            version.version,
            &f.path,
            &target,
            expected,
            &progress,
        )
        .await?;
    }
    progress.finish_and_clear();
    let summary = serde_json::json!({
        "model": listing.model,
        "version": listing.version,
        "state": listing.state,
        "artifact_digest": listing.artifact_digest,
        "file_count": wanted.len(),
        "total_bytes": total,
        "directory": dir.display().to_string(),
    });
    print(conn.json, &summary, |v| {
        format!("{}\nwritten to {}", record(v, SUMMARY), dir.display())
    });
    Ok(ExitCode::SUCCESS)
}

/// Streams one file into `<target>.partial`, checks its sha256, then
/// renames it into place: a failed or altered download leaves no file.
async fn download(
    versions: &modelwatch_client::Versions<'_>,
    version: i64,
    path: &str,
    target: &Path,
    expected: Sha256Digest,
    progress: &ProgressBar,
) -> Result<(), CliError> {
    let local =
        |e: std::io::Error| CliError::Local(format!("cannot write {}: {e}", target.display()));
    if let Some(parent) = target.parent() {
        tokio::fs::create_dir_all(parent).await.map_err(local)?;
    }
    let partial = target.with_extension(match target.extension() {
        Some(ext) => format!("{}.partial", ext.to_string_lossy()),
        None => "partial".to_string(),
    });
    let reply = versions.get_artifact(version, path).await?;
    let mut stream = reply.bytes_stream();
    let mut out = tokio::fs::File::create(&partial).await.map_err(local)?;
    let mut hasher = Sha256::new();
    let result: Result<(), CliError> = async {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                CliError::Local(format!("the download of {path:?} broke off: {e}"))
            })?;
            hasher.update(&chunk);
            out.write_all(&chunk).await.map_err(local)?;
            progress.inc(chunk.len() as u64);
        }
        out.sync_all().await.map_err(local)?;
        let actual = Sha256Digest(hasher.finalize().into());
        if actual != expected {
            return Err(CliError::Local(format!(
                "{path:?} arrived as {actual}, not the {expected} the daemon lists; nothing was written"
            )));
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(e);
    }
    tokio::fs::rename(&partial, target).await.map_err(local)?;
    Ok(())
}
