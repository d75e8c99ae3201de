//! Batch uploads of inferences and reference data: stream the body, decode
//! it, and store it as one atomic bulk load.
//!
//! **All or nothing.** The body is read as a stream with bounded memory
//! (gzip inflated on the fly) and decoded by `modelwatch-collectors` on a
//! blocking thread; the resulting `inferences`-schema batches go straight
//! into a history [`BulkLoad`], which writes them as Parquet files that no
//! query sees until the load commits. Only when the **whole** body has been
//! decoded and validated is the load committed — one manifest commit makes
//! every row visible at once. A malformed, oversized or truncated body, a
//! dropped connection, a shutdown or a `kill -9` at any moment leave no row
//! behind (the load's files are deleted, or removed as orphans at the next
//! start). Parquet needs random access, so its (inflated) body is first
//! written to a file under `<data-dir>/uploads/` and read back; that file
//! is removed when the upload ends and at startup.
//!
//! **Bounded disk.** What an upload holds on disk before it commits is its
//! own compressed Parquet (plus the raw body for Parquet uploads), and both
//! count against `--max-upload-bytes` like the body itself.
//!
//! **Idempotent retries.** With an `Idempotency-Key`, the load commits
//! together with a record of its reply and the sha256 of its body (the
//! history manifest keeps these for a day). A request with the same key —
//! a retry after a lost reply, or two racing — gets the first upload's
//! reply again without storing anything; the same key with a different
//! body is refused.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use modelwatch_collectors::batch::{
    BatchFormat, KnownFeatures, RowMapper, UploadConfig, UploadDecoder,
};
use modelwatch_collectors::{self as collectors};
use modelwatch_history::{self as history, BulkLoad, HistoryStore, LoadKey};

/// Default `--max-upload-bytes`.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 1 << 30;
/// Size of the reads from the (inflated) body handed to the decoder.
const READ_CHUNK: usize = 256 << 10;
/// Longest accepted `Idempotency-Key` (Stripe's limit).
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 255;

/// Which history table an upload goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadKind {
    /// `inferences`: production traffic.
    Inferences,
    /// `reference`: the data the version is compared against.
    Reference,
    /// `delayed_labels`: ground truth for earlier inferences.
    Labels,
}

impl UploadKind {
    pub fn table(self) -> &'static str {
        match self {
            UploadKind::Inferences => collectors::schema::INFERENCES,
            UploadKind::Reference => collectors::schema::REFERENCE,
            UploadKind::Labels => collectors::schema::DELAYED_LABELS,
        }
    }
}

/// Why an upload failed; `http::error` maps it. Whatever the variant,
/// nothing of the upload was stored.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error(transparent)]
    Decode(#[from] collectors::Error),
    #[error(
        "the upload is larger than the server's limit of {limit} bytes (--max-upload-bytes; for gzip bodies the inflated size counts too); split it into several uploads"
    )]
    TooLarge { limit: u64 },
    #[error("unsupported Content-Encoding {0:?}; send the body as is or gzip-compressed")]
    UnsupportedEncoding(String),
    #[error("invalid gzip body: {0}")]
    Gzip(String),
    #[error("invalid Parquet file: {0}")]
    Parquet(String),
    #[error("the request body could not be read: {0}")]
    BodyRead(String),
    #[error("reference_uri {uri:?}: {reason}")]
    ReferenceUri { uri: String, reason: String },
    #[error("staging the upload failed: {0}")]
    Staging(#[from] std::io::Error),
    #[error(
        "invalid Idempotency-Key: {0}; send 1-{MAX_IDEMPOTENCY_KEY_BYTES} visible ASCII characters (e.g. a UUID)"
    )]
    InvalidIdempotencyKey(String),
    #[error(
        "Idempotency-Key {key:?} was used for a different body within the last day; use a new key for a new upload"
    )]
    IdempotencyKeyReused { key: String },
    /// The history could not store the validated rows; none were stored.
    #[error("the upload was validated but could not be stored ({0}); nothing was stored, retry it")]
    Store(#[source] history::Error),
}

/// Upload settings, shared by every request.
#[derive(Debug)]
pub struct Uploads {
    /// `<data-dir>/uploads`: raw Parquet bodies while they are read.
    pub dir: PathBuf,
    /// `--max-upload-bytes`: body as sent and, for gzip, inflated.
    pub max_upload_bytes: u64,
    /// Directories a `reference_uri` may name (`--reference-dir`, plus
    /// `<data-dir>/imports`), canonical.
    pub reference_dirs: Vec<PathBuf>,
}

impl Uploads {
    /// Creates the staging and import directories and removes what a crash
    /// left in the staging one.
    pub fn open(
        data_dir: &Path,
        max_upload_bytes: u64,
        reference_dirs: &[PathBuf],
    ) -> std::io::Result<Self> {
        let dir = data_dir.join("uploads");
        std::fs::create_dir_all(&dir)?;
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_file() {
                tracing::info!(path = %path.display(), "removing a staging file left by an interrupted upload");
                let _ = std::fs::remove_file(&path);
            }
        }
        let imports = data_dir.join("imports");
        std::fs::create_dir_all(&imports)?;
        let mut allowed = vec![imports.canonicalize()?];
        for d in reference_dirs {
            allowed.push(d.canonicalize().map_err(|e| {
                std::io::Error::new(e.kind(), format!("--reference-dir {}: {e}", d.display()))
            })?);
        }
        Ok(Self {
            dir,
            max_upload_bytes,
            reference_dirs: allowed,
        })
    }
}

/// A fresh upload id: 32 lowercase hex digits.
pub fn new_upload_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The parsed `Content-Encoding`: gzip or none.
pub fn is_gzip(content_encoding: Option<&str>) -> Result<bool, UploadError> {
    match content_encoding.map(|s| s.trim().to_ascii_lowercase()) {
        None => Ok(false),
        Some(e) if e.is_empty() || e == "identity" => Ok(false),
        Some(e) if e == "gzip" || e == "x-gzip" => Ok(true),
        Some(e) => Err(UploadError::UnsupportedEncoding(e)),
    }
}

/// Checks an `Idempotency-Key` header value.
pub fn check_idempotency_key(key: &str) -> Result<(), UploadError> {
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_BYTES {
        return Err(UploadError::InvalidIdempotencyKey(format!(
            "it is {} bytes long",
            key.len()
        )));
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(UploadError::InvalidIdempotencyKey(
            "it contains spaces, control or non-ASCII characters".into(),
        ));
    }
    Ok(())
}

/// What an upload stored (or, replayed, what the first one stored).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadOutcome {
    pub upload_id: String,
    pub table: String,
    pub rows: u64,
    /// Bytes received (as sent, before inflating).
    pub bytes: u64,
    /// Feature columns seen, with their kinds.
    pub features: modelwatch_registry::Features,
    pub duration_ms: f64,
    /// sha256 of the body as sent, hex.
    pub body_sha256: String,
    /// True when this is the reply of an earlier upload with the same
    /// `Idempotency-Key` (nothing was stored this time).
    #[serde(skip)]
    pub replayed: bool,
}

enum Msg {
    Chunk(Bytes),
    End,
}

/// `Read` over the chunks the async side receives. A closed channel
/// without `End` means the request was abandoned.
struct ChannelReader {
    rx: mpsc::Receiver<Msg>,
    cur: Bytes,
    ended: bool,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            if self.ended {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Msg::Chunk(b)) => self.cur = b,
                Some(Msg::End) => self.ended = true,
                None => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "the request was abandoned",
                    ));
                }
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}

/// A file under the staging directory, removed on drop.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Where decoded batches go; `None` from the receiver side means stop.
type BatchSender = mpsc::Sender<RecordBatch>;

/// What the decoder saw in a whole body.
struct Decoded {
    features: KnownFeatures,
}

/// Decodes a whole body on a blocking thread, handing each batch to
/// `batches` (an error if the receiver stopped listening).
#[allow(clippy::too_many_arguments)]
fn decode_blocking(
    rx: mpsc::Receiver<Msg>,
    batches: BatchSender,
    kind: UploadKind,
    format: BatchFormat,
    gzip: bool,
    cfg: UploadConfig,
    dir: &Path,
    max_inflated: u64,
) -> Result<Decoded, UploadError> {
    let upload_id = cfg.upload_id.clone();
    let channel = ChannelReader {
        rx,
        cur: Bytes::new(),
        ended: false,
    };
    let mut reader: Box<dyn Read> = if gzip {
        Box::new(flate2::read::MultiGzDecoder::new(std::io::BufReader::new(
            channel,
        )))
    } else {
        Box::new(channel)
    };
    let mut inflated = 0u64;
    let mut buf = vec![0u8; READ_CHUNK];
    let mut read = |reader: &mut Box<dyn Read>, buf: &mut [u8]| -> Result<usize, UploadError> {
        let n = reader.read(buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::ConnectionAborted => UploadError::BodyRead(e.to_string()),
            _ if gzip => UploadError::Gzip(e.to_string()),
            _ => UploadError::BodyRead(e.to_string()),
        })?;
        inflated += n as u64;
        if inflated > max_inflated {
            return Err(UploadError::TooLarge {
                limit: max_inflated,
            });
        }
        Ok(n)
    };
    let mut first_row = 1u64;
    let mut send = |b: RecordBatch| -> Result<(), UploadError> {
        let b = match kind {
            UploadKind::Labels => collectors::labels::labels_from_upload(&b, first_row)?,
            UploadKind::Inferences | UploadKind::Reference => b,
        };
        first_row += b.num_rows() as u64;
        batches
            .blocking_send(b)
            .map_err(|_| UploadError::BodyRead("the upload was abandoned".into()))
    };
    match format {
        BatchFormat::Parquet => {
            let raw = TempFile(dir.join(format!("{upload_id}.body.parquet")));
            let mut file = BufWriter::with_capacity(1 << 20, File::create(&raw.0)?);
            loop {
                let n = read(&mut reader, &mut buf)?;
                if n == 0 {
                    break;
                }
                file.write_all(&buf[..n])?;
            }
            file.into_inner().map_err(|e| e.into_error())?.flush()?;
            drop(reader);
            let mut mapper = RowMapper::new(cfg);
            let batch_rows = mapper.config().batch_rows;
            let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&raw.0)?)
                .and_then(|b| b.with_batch_size(batch_rows).build())
                .map_err(|e| UploadError::Parquet(e.to_string()))?;
            for b in reader {
                let b = b.map_err(|e| UploadError::Parquet(e.to_string()))?;
                for m in mapper.map(&b)? {
                    send(m)?;
                }
            }
            if mapper.rows() == 0 {
                return Err(UploadError::Parquet(
                    "the file holds no rows; send at least one".into(),
                ));
            }
            Ok(Decoded {
                features: mapper.features().clone(),
            })
        }
        _ => {
            let mut dec = UploadDecoder::new(format, cfg)?;
            loop {
                let n = read(&mut reader, &mut buf)?;
                if n == 0 {
                    break;
                }
                for b in dec.push(&buf[..n])? {
                    send(b)?;
                }
            }
            for b in dec.finish()? {
                send(b)?;
            }
            Ok(Decoded {
                features: dec.mapper().features().clone(),
            })
        }
    }
}

/// The body as sent: its sha256 and size.
struct BodySeen {
    sha256: String,
    bytes: u64,
}

/// Feeds `body` to `chunks` (when given), hashing and counting it; stops at
/// `max` bytes. Without `chunks` it only reads (a replay).
async fn feed<S, E>(
    mut body: S,
    chunks: Option<mpsc::Sender<Msg>>,
    max: u64,
) -> Result<BodySeen, UploadError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut hash = Sha256::new();
    let mut bytes = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| UploadError::BodyRead(e.to_string()))?;
        bytes += chunk.len() as u64;
        if bytes > max {
            return Err(UploadError::TooLarge { limit: max });
        }
        hash.update(&chunk);
        if let Some(tx) = &chunks
            && tx.send(Msg::Chunk(chunk)).await.is_err()
        {
            // The decoder stopped early: its error says why, and the rest
            // of the body does not matter.
            break;
        }
    }
    if let Some(tx) = &chunks {
        let _ = tx.send(Msg::End).await;
    }
    Ok(BodySeen {
        sha256: hex::encode(hash.finalize()),
        bytes,
    })
}

/// Decodes `body` into `load` (or, without one, only validates it).
/// Returns what the decoder saw and the body's digest.
async fn decode_into<S, E>(
    uploads: &Uploads,
    kind: UploadKind,
    format: BatchFormat,
    gzip: bool,
    cfg: UploadConfig,
    body: S,
    mut load: Option<&mut BulkLoad>,
) -> Result<(Decoded, BodySeen), UploadError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let (chunks_tx, chunks_rx) = mpsc::channel::<Msg>(8);
    let (batches_tx, mut batches_rx) = mpsc::channel::<RecordBatch>(2);
    let dir = uploads.dir.clone();
    let max = uploads.max_upload_bytes;
    let worker = tokio::task::spawn_blocking(move || {
        decode_blocking(chunks_rx, batches_tx, kind, format, gzip, cfg, &dir, max)
    });
    let store = async {
        let stored = async {
            while let Some(batch) = batches_rx.recv().await {
                if let Some(load) = load.as_deref_mut() {
                    load.append(batch).await.map_err(UploadError::Store)?;
                    // Compressed Parquet is far smaller than the body; this
                    // bounds the disk an upload can hold whatever it sends.
                    if load.bytes_written() > max {
                        return Err(UploadError::TooLarge { limit: max });
                    }
                }
            }
            Ok::<(), UploadError>(())
        }
        .await;
        // Whatever happened, the decoder must not wait on us any more.
        batches_rx.close();
        stored
    };
    let (fed, stored) = tokio::join!(feed(body, Some(chunks_tx), max), store);
    let decoded = worker
        .await
        .map_err(|e| UploadError::Staging(std::io::Error::other(e.to_string())));
    // A body error (too large, unreadable) wins over the decoder's view of
    // the abandoned stream; the decoder's error over the store's.
    let seen = fed?;
    let decoded = decoded??;
    stored?;
    Ok((decoded, seen))
}

/// The key an upload's idempotency record is stored under: scoped to the
/// table, the version and the token, so keys of different clients or
/// targets never meet.
fn load_key(kind: UploadKind, cfg: &UploadConfig, actor: &str, key: &str) -> String {
    format!(
        "upload/{}/{}/{}/{actor}/{key}",
        kind.table(),
        cfg.model,
        cfg.version
    )
}

/// The earlier upload with this key, if its body was the same one.
fn replay(
    record: &history::LoadRecord,
    key: &str,
    seen: &BodySeen,
) -> Result<UploadOutcome, UploadError> {
    let mut earlier: UploadOutcome = serde_json::from_value(record.meta.clone()).map_err(|e| {
        UploadError::Store(history::Error::Task(format!(
            "the record of upload key {key:?} is unreadable: {e}"
        )))
    })?;
    if earlier.body_sha256 != seen.sha256 {
        return Err(UploadError::IdempotencyKeyReused {
            key: key.to_string(),
        });
    }
    earlier.replayed = true;
    Ok(earlier)
}

/// An idempotency key as the client sent it, with who sent it.
#[derive(Debug, Clone)]
pub struct Idempotency<'a> {
    pub key: &'a str,
    pub actor: &'a str,
}

/// What an upload is, apart from its body.
#[derive(Debug, Clone)]
pub struct UploadRequest<'a> {
    pub kind: UploadKind,
    pub format: BatchFormat,
    /// `Content-Encoding: gzip`.
    pub gzip: bool,
    pub cfg: UploadConfig,
    pub idempotency: Option<Idempotency<'a>>,
}

/// Decodes, validates and stores one upload atomically (see the module
/// docs).
pub async fn upload<S, E>(
    uploads: &Uploads,
    store: &HistoryStore,
    request: UploadRequest<'_>,
    body: S,
) -> Result<UploadOutcome, UploadError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let UploadRequest {
        kind,
        format,
        gzip,
        cfg,
        idempotency,
    } = request;
    let started = Instant::now();
    let key = idempotency.map(|i| (i.key, load_key(kind, &cfg, i.actor, i.key)));
    if let Some((client_key, stored_key)) = &key
        && let Some(record) = store.find_load(stored_key)
    {
        // Seen before: read the body only to compare it.
        let seen = feed(body, None, uploads.max_upload_bytes).await?;
        return replay(&record, client_key, &seen);
    }
    let upload_id = cfg.upload_id.clone();
    let mut load = store.bulk_load(kind.table()).map_err(UploadError::Store)?;
    let (decoded, seen) =
        match decode_into(uploads, kind, format, gzip, cfg, body, Some(&mut load)).await {
            Ok(done) => done,
            Err(e) => {
                load.abort().await;
                return Err(e);
            }
        };
    let outcome = UploadOutcome {
        upload_id,
        table: kind.table().to_string(),
        rows: load.rows(),
        bytes: seen.bytes,
        features: decoded.features.clone(),
        duration_ms: started.elapsed().as_secs_f64() * 1e3,
        body_sha256: seen.sha256.clone(),
        replayed: false,
    };
    let load_key = key.as_ref().map(|(_, stored_key)| LoadKey {
        key: stored_key.clone(),
        meta: serde_json::to_value(&outcome).unwrap_or_default(),
    });
    match load.commit(load_key).await {
        Ok(_) => Ok(outcome),
        // A request with the same key committed while this one decoded.
        Err(history::Error::AlreadyLoaded { record }) => {
            replay(&record, key.map_or("", |(k, _)| k), &seen)
        }
        Err(e) => Err(UploadError::Store(e)),
    }
}

/// The local file a `reference_uri` names (a plain path or `file://`),
/// opened, if it lies inside one of the allowed directories
/// ([`Uploads::reference_dirs`]).
async fn open_reference(
    uploads: &Uploads,
    uri: &str,
) -> Result<(tokio::fs::File, u64), UploadError> {
    let bad = |reason: String| UploadError::ReferenceUri {
        uri: uri.to_string(),
        reason,
    };
    let path = local_path(uri)?;
    // Symlinks and `..` are resolved before the check, so the check is on
    // the file that will actually be read.
    let canonical = tokio::fs::canonicalize(&path)
        .await
        .map_err(|e| bad(format!("cannot open {}: {e}", path.display())))?;
    if !uploads
        .reference_dirs
        .iter()
        .any(|dir| canonical.starts_with(dir))
    {
        let dirs: Vec<String> = uploads
            .reference_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        return Err(bad(format!(
            "{} is outside the directories the daemon reads reference data from ({}); copy it there, start the daemon with --reference-dir, or upload it with POST …/reference",
            path.display(),
            dirs.join(", ")
        )));
    }
    let file = tokio::fs::File::open(&canonical)
        .await
        .map_err(|e| bad(format!("cannot open {}: {e}", path.display())))?;
    let meta = file
        .metadata()
        .await
        .map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?;
    if !meta.is_file() {
        return Err(bad(format!("{} is not a file", path.display())));
    }
    if meta.len() > uploads.max_upload_bytes {
        return Err(UploadError::TooLarge {
            limit: uploads.max_upload_bytes,
        });
    }
    Ok((file, meta.len()))
}

fn reference_error(uri: &str, e: UploadError) -> UploadError {
    match e {
        UploadError::Parquet(reason) => UploadError::ReferenceUri {
            uri: uri.to_string(),
            reason: format!("not a valid Parquet file: {reason}"),
        },
        UploadError::Decode(d) => UploadError::ReferenceUri {
            uri: uri.to_string(),
            reason: d.to_string(),
        },
        other => other,
    }
}

/// How many labels of one labels upload found their inference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LabelMatches {
    /// Labels whose `inference_id` names an inference of the version.
    pub matched: u64,
    /// Labels with no such inference yet. They are kept: an inference that
    /// arrives later with that id is joined to its label.
    pub unmatched: u64,
}

/// Counts, as of now, which labels of the committed upload `upload_id`
/// name an inference of `(model, version)`. It scans the version's
/// `inference_id` column once (a hash join with the upload's labels).
pub async fn label_matches(
    store: &HistoryStore,
    model: &str,
    version: &str,
    upload_id: &str,
) -> Result<LabelMatches, history::Error> {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::Int64Type;
    use datafusion::common::JoinType;
    use datafusion::functions::core::expr_fn::get_field;
    use datafusion::functions_aggregate::expr_fn::count;
    use datafusion::prelude::{col, lit};
    let ctx = store.session_context()?;
    let run = async {
        let of_version = || {
            col("model")
                .eq(lit(model))
                .and(col("version").eq(lit(version)))
        };
        let labels = ctx
            .table(collectors::schema::DELAYED_LABELS)
            .await?
            .filter(
                of_version().and(
                    get_field(col("attributes"), collectors::batch::UPLOAD_ID_ATTRIBUTE)
                        .eq(lit(upload_id)),
                ),
            )?
            .select_columns(&["inference_id"])?;
        let inferences = ctx
            .table(collectors::schema::INFERENCES)
            .await?
            .filter(of_version().and(col("inference_id").is_not_null()))?
            .select(vec![col("inference_id").alias("known_id")])?
            .distinct()?;
        let rows = labels
            .join(
                inferences,
                JoinType::Left,
                &["inference_id"],
                &["known_id"],
                None,
            )?
            .aggregate(
                vec![],
                vec![
                    count(lit(1)).alias("labels"),
                    count(col("known_id")).alias("matched"),
                ],
            )?
            .collect()
            .await?;
        // One row: an aggregate without grouping.
        let read = |i: usize| -> u64 {
            rows.first().filter(|b| b.num_rows() == 1).map_or(0, |b| {
                b.column(i).as_primitive::<Int64Type>().value(0).max(0) as u64
            })
        };
        let (labels, matched) = (read(0), read(1));
        Ok::<_, datafusion::error::DataFusionError>(LabelMatches {
            matched,
            unmatched: labels - matched,
        })
    };
    run.await
        .map_err(|e| history::Error::Task(format!("counting the upload's matched labels: {e}")))
}

/// Reads and validates the Parquet file a `reference_uri` names, storing
/// nothing; returns the features it holds. The version does not exist yet.
pub async fn check_reference_uri(
    uploads: &Uploads,
    uri: &str,
    cfg: UploadConfig,
) -> Result<KnownFeatures, UploadError> {
    let (file, _) = open_reference(uploads, uri).await?;
    decode_into(
        uploads,
        UploadKind::Reference,
        BatchFormat::Parquet,
        false,
        cfg,
        file_stream(file),
        None,
    )
    .await
    .map(|(decoded, _)| decoded.features)
    .map_err(|e| reference_error(uri, e))
}

/// Loads the Parquet file a `reference_uri` names into `reference` for the
/// version `cfg` names.
pub async fn load_reference_uri(
    uploads: &Uploads,
    store: &HistoryStore,
    uri: &str,
    cfg: UploadConfig,
) -> Result<UploadOutcome, UploadError> {
    let (file, _) = open_reference(uploads, uri).await?;
    upload(
        uploads,
        store,
        UploadRequest {
            kind: UploadKind::Reference,
            format: BatchFormat::Parquet,
            gzip: false,
            cfg,
            idempotency: None,
        },
        file_stream(file),
    )
    .await
    .map_err(|e| reference_error(uri, e))
}

/// A file as a stream of 1 MiB chunks (the CLI's `upload` sends files
/// with it too).
pub fn file_stream(
    file: tokio::fs::File,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Unpin + Send + 'static {
    use tokio::io::AsyncReadExt;
    Box::pin(futures::stream::unfold(file, |mut f| async move {
        let mut buf = vec![0u8; 1 << 20];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    }))
}

/// The local path of a `reference_uri`.
pub fn local_path(uri: &str) -> Result<PathBuf, UploadError> {
    let bad = |reason: &str| UploadError::ReferenceUri {
        uri: uri.to_string(),
        reason: reason.to_string(),
    };
    if let Some(rest) = uri.strip_prefix("file://") {
        let path = rest.strip_prefix("localhost").unwrap_or(rest);
        if !path.starts_with('/') {
            return Err(bad(
                "a file:// URI needs an absolute path (file:///data/ref.parquet)",
            ));
        }
        return Ok(PathBuf::from(path));
    }
    if let Some((scheme, _)) = uri.split_once("://") {
        return Err(bad(&format!(
            "scheme {scheme:?} is not supported yet; give a local Parquet path or a file:// URI readable by the daemon"
        )));
    }
    Ok(PathBuf::from(uri))
}
