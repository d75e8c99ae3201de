//! Batch uploads of inferences and reference data: stream the body, stage
//! it, then commit it to the history.
//!
//! **Stage, then commit.** The body is read as a stream with bounded memory
//! (gzip inflated on the fly) and decoded by `modelwatch-collectors` on a
//! blocking thread; the resulting `inferences`-schema batches are kept in
//! memory up to [`STAGE_MEMORY_BYTES`] and beyond that spilled to an Arrow
//! IPC file under `<data-dir>/uploads/`. Parquet needs random access, so its
//! (inflated) body is first written to a file there and read back. Only
//! when the **whole** body has been decoded and validated is anything
//! written to the history, in WAL records of at most [`COMMIT_CHUNK_BYTES`]:
//! a malformed, oversized or truncated body changes nothing.
//!
//! The commit itself is several WAL records. Back-pressure
//! (`Overloaded`) during the commit is waited out (up to
//! [`COMMIT_OVERLOAD_PATIENCE`] per chunk) rather than failing half-way. If
//! the commit still fails (shutdown, disk error) or the daemon dies
//! mid-commit, the rows already stored stay, all tagged
//! `attributes['upload_id']`; the error names the upload id and the count
//! so they can be found or excluded in SQL. Staging files are removed when
//! the upload ends and at startup.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;

use modelwatch_collectors::batch::{
    BatchFormat, KnownFeatures, RowMapper, UploadConfig, UploadDecoder,
};
use modelwatch_collectors::{self as collectors};
use modelwatch_history::{self as history, HistoryStore, WriteSet};

/// Staged batches kept in memory before spilling to a file.
pub const STAGE_MEMORY_BYTES: usize = 16 << 20;
/// Target size of one WAL record of a commit (the history's limit is 32 MiB).
pub const COMMIT_CHUNK_BYTES: usize = 8 << 20;
/// How long one commit chunk may wait out history back-pressure.
pub const COMMIT_OVERLOAD_PATIENCE: Duration = Duration::from_secs(120);
/// Default `--max-upload-bytes`.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 1 << 30;
/// Size of the reads from the (inflated) body handed to the decoder.
const READ_CHUNK: usize = 256 << 10;

/// Which history table an upload goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadKind {
    /// `inferences`: production traffic.
    Inferences,
    /// `reference`: the data the version is compared against.
    Reference,
}

impl UploadKind {
    pub fn table(self) -> &'static str {
        match self {
            UploadKind::Inferences => collectors::schema::INFERENCES,
            UploadKind::Reference => collectors::schema::REFERENCE,
        }
    }
}

/// Why an upload failed; `http::error` maps it.
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
    #[error("{0}")]
    StagingArrow(String),
    /// The history refused a commit chunk after `stored` rows were written.
    #[error(
        "the upload was validated but storing it failed after {stored} of {rows} rows ({source}); the stored rows carry attributes['upload_id'] = '{upload_id}'"
    )]
    Commit {
        upload_id: String,
        stored: u64,
        rows: u64,
        #[source]
        source: history::Error,
    },
}

/// Upload settings, shared by every request.
#[derive(Debug)]
pub struct Uploads {
    /// `<data-dir>/uploads`: staging files.
    pub dir: PathBuf,
    /// `--max-upload-bytes`: body as sent and, for gzip, inflated.
    pub max_upload_bytes: u64,
}

impl Uploads {
    /// Create the staging directory and remove what a crash left there.
    pub fn open(data_dir: &Path, max_upload_bytes: u64) -> std::io::Result<Self> {
        let dir = data_dir.join("uploads");
        std::fs::create_dir_all(&dir)?;
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_file() {
                tracing::info!(path = %path.display(), "removing a staging file left by an interrupted upload");
                let _ = std::fs::remove_file(&path);
            }
        }
        Ok(Self {
            dir,
            max_upload_bytes,
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

/// What an upload stored.
#[derive(Debug, Clone)]
pub struct UploadOutcome {
    pub upload_id: String,
    pub table: &'static str,
    pub rows: u64,
    /// Bytes received (as sent, before inflating).
    pub bytes: u64,
    /// Feature columns seen, with their kinds.
    pub features: KnownFeatures,
    pub duration: Duration,
}

/// A file under the staging directory, removed on drop.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Validated batches waiting to be committed.
pub struct Staged {
    mem: Vec<RecordBatch>,
    spill: Option<TempFile>,
    pub rows: u64,
    pub features: KnownFeatures,
    pub bytes: u64,
}

/// Collects validated batches: memory first, then an Arrow IPC file.
struct Staging {
    path: PathBuf,
    mem: Vec<RecordBatch>,
    mem_bytes: usize,
    spill: Option<(TempFile, StreamWriter<BufWriter<File>>)>,
    rows: u64,
}

impl Staging {
    fn new(dir: &Path, upload_id: &str) -> Self {
        Self {
            path: dir.join(format!("{upload_id}.staged.arrows")),
            mem: Vec::new(),
            mem_bytes: 0,
            spill: None,
            rows: 0,
        }
    }

    fn push(&mut self, batch: RecordBatch) -> Result<(), UploadError> {
        self.rows += batch.num_rows() as u64;
        if self.spill.is_none() {
            let size = batch.get_array_memory_size();
            if self.mem_bytes + size <= STAGE_MEMORY_BYTES {
                self.mem_bytes += size;
                self.mem.push(batch);
                return Ok(());
            }
            let file = TempFile(self.path.clone());
            let w = BufWriter::with_capacity(1 << 20, File::create(&file.0)?);
            let mut w = StreamWriter::try_new(w, &batch.schema()).map_err(arrow_err)?;
            for b in self.mem.drain(..) {
                w.write(&b).map_err(arrow_err)?;
            }
            self.mem_bytes = 0;
            self.spill = Some((file, w));
        }
        if let Some((_, w)) = &mut self.spill {
            w.write(&batch).map_err(arrow_err)?;
        }
        Ok(())
    }

    fn finish(self, features: KnownFeatures, bytes: u64) -> Result<Staged, UploadError> {
        let spill = match self.spill {
            None => None,
            Some((file, mut w)) => {
                w.finish().map_err(arrow_err)?;
                w.into_inner().map_err(arrow_err)?.flush()?;
                Some(file)
            }
        };
        Ok(Staged {
            mem: self.mem,
            spill,
            rows: self.rows,
            features,
            bytes,
        })
    }
}

fn arrow_err(e: datafusion::arrow::error::ArrowError) -> UploadError {
    UploadError::StagingArrow(format!("staging file: {e}"))
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

/// Decode and validate a whole body into a staging area.
fn stage_blocking(
    rx: mpsc::Receiver<Msg>,
    format: BatchFormat,
    gzip: bool,
    cfg: UploadConfig,
    dir: &Path,
    max_inflated: u64,
) -> Result<Staged, UploadError> {
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
    let mut staging = Staging::new(dir, &upload_id);
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
            file.into_inner().map_err(|e| e.into_error())?.sync_data()?;
            drop(reader);
            let mut mapper = RowMapper::new(cfg);
            let batch_rows = mapper.config().batch_rows;
            let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&raw.0)?)
                .and_then(|b| b.with_batch_size(batch_rows).build())
                .map_err(|e| UploadError::Parquet(e.to_string()))?;
            for b in reader {
                let b = b.map_err(|e| UploadError::Parquet(e.to_string()))?;
                for m in mapper.map(&b)? {
                    staging.push(m)?;
                }
            }
            if mapper.rows() == 0 {
                return Err(UploadError::Parquet(
                    "the file holds no rows; send at least one".into(),
                ));
            }
            staging.finish(mapper.features().clone(), inflated)
        }
        _ => {
            let mut dec = UploadDecoder::new(format, cfg)?;
            loop {
                let n = read(&mut reader, &mut buf)?;
                if n == 0 {
                    break;
                }
                for b in dec.push(&buf[..n])? {
                    staging.push(b)?;
                }
            }
            for b in dec.finish()? {
                staging.push(b)?;
            }
            staging.finish(dec.mapper().features().clone(), inflated)
        }
    }
}

/// Stream `body` through the decoder into a staging area. Nothing is
/// written to the history.
pub async fn stage<S, E>(
    uploads: &Uploads,
    format: BatchFormat,
    gzip: bool,
    cfg: UploadConfig,
    mut body: S,
) -> Result<Staged, UploadError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let (tx, rx) = mpsc::channel::<Msg>(8);
    let dir = uploads.dir.clone();
    let max = uploads.max_upload_bytes;
    let worker =
        tokio::task::spawn_blocking(move || stage_blocking(rx, format, gzip, cfg, &dir, max));
    let mut received = 0u64;
    let fed: Result<(), UploadError> = async {
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| UploadError::BodyRead(e.to_string()))?;
            received += chunk.len() as u64;
            if received > max {
                return Err(UploadError::TooLarge { limit: max });
            }
            if tx.send(Msg::Chunk(chunk)).await.is_err() {
                // The worker stopped early: its error says why.
                return Ok(());
            }
        }
        let _ = tx.send(Msg::End).await;
        Ok(())
    }
    .await;
    drop(tx);
    let staged = worker
        .await
        .map_err(|e| UploadError::Staging(std::io::Error::other(e.to_string())));
    // A body error (too large, unreadable) wins over the worker's view of
    // the abandoned stream.
    fed?;
    let mut staged = staged??;
    staged.bytes = received;
    Ok(staged)
}

/// Stage a local Parquet file named by a `reference_uri` (a plain path or
/// `file://`; other schemes are refused until object storage is wired).
pub async fn stage_reference_uri(
    uploads: &Uploads,
    uri: &str,
    cfg: UploadConfig,
) -> Result<Staged, UploadError> {
    let path = local_path(uri)?;
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| UploadError::ReferenceUri {
            uri: uri.to_string(),
            reason: format!("cannot open {}: {e}", path.display()),
        })?;
    let meta = file
        .metadata()
        .await
        .map_err(|e| UploadError::ReferenceUri {
            uri: uri.to_string(),
            reason: format!("cannot read {}: {e}", path.display()),
        })?;
    if !meta.is_file() {
        return Err(UploadError::ReferenceUri {
            uri: uri.to_string(),
            reason: format!("{} is not a file", path.display()),
        });
    }
    if meta.len() > uploads.max_upload_bytes {
        return Err(UploadError::TooLarge {
            limit: uploads.max_upload_bytes,
        });
    }
    let stream = tokio_util_stream(file);
    stage(uploads, BatchFormat::Parquet, false, cfg, stream)
        .await
        .map_err(|e| match e {
            UploadError::Parquet(reason) => UploadError::ReferenceUri {
                uri: uri.to_string(),
                reason: format!("not a valid Parquet file: {reason}"),
            },
            UploadError::Decode(d) => UploadError::ReferenceUri {
                uri: uri.to_string(),
                reason: d.to_string(),
            },
            other => other,
        })
}

/// A file as a stream of chunks.
fn tokio_util_stream(
    file: tokio::fs::File,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Unpin {
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

/// Write staged batches to `table`, in WAL records of about
/// [`COMMIT_CHUNK_BYTES`]. `version`, when given, replaces the `version`
/// column (reference data staged before its version number existed).
pub async fn commit(
    store: &HistoryStore,
    table: &'static str,
    upload_id: &str,
    staged: Staged,
    version: Option<&str>,
) -> Result<u64, UploadError> {
    let total = staged.rows;
    let (tx, mut rx) = mpsc::channel::<Result<Vec<RecordBatch>, UploadError>>(2);
    let mem = staged.mem;
    let spill = staged.spill;
    // Read the staged batches (memory, then the spill file) on a blocking
    // thread and hand them over in commit-sized groups.
    let reader = tokio::task::spawn_blocking(move || {
        let mut group = Vec::new();
        let mut size = 0usize;
        let emit = |b: RecordBatch, group: &mut Vec<RecordBatch>, size: &mut usize| {
            let s = b.get_array_memory_size();
            let full = !group.is_empty() && *size + s > COMMIT_CHUNK_BYTES;
            let out = full.then(|| (std::mem::take(group), std::mem::replace(size, 0)));
            *size += s;
            group.push(b);
            out.map(|(g, _)| g)
        };
        for b in mem {
            if let Some(g) = emit(b, &mut group, &mut size)
                && tx.blocking_send(Ok(g)).is_err()
            {
                return;
            }
        }
        if let Some(file) = &spill {
            let r = File::open(&file.0)
                .map_err(UploadError::from)
                .and_then(|f| {
                    StreamReader::try_new(std::io::BufReader::with_capacity(1 << 20, f), None)
                        .map_err(arrow_err)
                });
            let r = match r {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            };
            for b in r {
                let b = match b {
                    Ok(b) => b,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(arrow_err(e)));
                        return;
                    }
                };
                if let Some(g) = emit(b, &mut group, &mut size)
                    && tx.blocking_send(Ok(g)).is_err()
                {
                    return;
                }
            }
        }
        if !group.is_empty() {
            let _ = tx.blocking_send(Ok(group));
        }
        drop(spill);
    });
    let mut stored = 0u64;
    while let Some(group) = rx.recv().await {
        let mut group = group?;
        // Batches decoded from IPC (the request body or the spill file) are
        // views of one message buffer each, which `get_array_memory_size`
        // (the history's buffer accounting) counts once per column and the
        // buffer would keep alive whole: copy each group into one compact
        // batch. `concat_batches` hands a single batch back as it is, so
        // `take` with every index does the copy (fresh, exact buffers).
        let schema = group[0].schema();
        let merged =
            datafusion::arrow::compute::concat_batches(&schema, &group).map_err(arrow_err)?;
        let every_row =
            datafusion::arrow::array::UInt32Array::from_iter_values(0..merged.num_rows() as u32);
        group = vec![
            datafusion::arrow::compute::take_record_batch(&merged, &every_row)
                .map_err(arrow_err)?,
        ];
        if let Some(v) = version {
            group = group.into_iter().map(|b| restamp(b, v)).collect();
        }
        let rows: u64 = group.iter().map(|b| b.num_rows() as u64).sum();
        write_patiently(store, table, group)
            .await
            .map_err(|source| UploadError::Commit {
                upload_id: upload_id.to_string(),
                stored,
                rows: total,
                source,
            })?;
        stored += rows;
    }
    let _ = reader.await;
    Ok(stored)
}

/// One WAL record; back-pressure is waited out, other errors returned.
async fn write_patiently(
    store: &HistoryStore,
    table: &'static str,
    group: Vec<RecordBatch>,
) -> Result<(), history::Error> {
    let deadline = Instant::now() + COMMIT_OVERLOAD_PATIENCE;
    loop {
        let mut set = WriteSet::new();
        for b in &group {
            set.push(table, b.clone());
        }
        match store.write(set).await {
            Ok(_) => return Ok(()),
            Err(history::Error::Overloaded { retry_after, .. }) if Instant::now() < deadline => {
                tracing::debug!(
                    retry_after_ms = retry_after.as_millis() as u64,
                    "history overloaded during an upload commit; waiting"
                );
                tokio::time::sleep(retry_after.max(Duration::from_millis(50))).await;
            }
            Err(e) => return Err(e),
        }
    }
}

fn restamp(b: RecordBatch, version: &str) -> RecordBatch {
    let idx = b.schema().index_of("version").unwrap_or(2);
    let mut cols: Vec<ArrayRef> = b.columns().to_vec();
    cols[idx] = Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
        version,
        b.num_rows(),
    )));
    RecordBatch::try_new(b.schema(), cols).unwrap_or(b)
}

/// Stage and commit one upload.
pub async fn upload<S, E>(
    uploads: &Uploads,
    store: &HistoryStore,
    kind: UploadKind,
    format: BatchFormat,
    gzip: bool,
    cfg: UploadConfig,
    body: S,
) -> Result<UploadOutcome, UploadError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let started = Instant::now();
    let upload_id = cfg.upload_id.clone();
    let staged = stage(uploads, format, gzip, cfg, body).await?;
    let (bytes, features) = (staged.bytes, staged.features.clone());
    tracing::debug!(
        upload_id,
        rows = staged.rows,
        bytes,
        spilled = staged.spill.is_some(),
        "upload validated"
    );
    let rows = commit(store, kind.table(), &upload_id, staged, None).await?;
    Ok(UploadOutcome {
        upload_id,
        table: kind.table(),
        rows,
        bytes,
        features,
        duration: started.elapsed(),
    })
}

/// The registry's declared features as the decoder's known features.
pub fn to_known(features: &modelwatch_registry::Features) -> KnownFeatures {
    use modelwatch_collectors::batch::FeatureKind as K;
    use modelwatch_registry::FeatureKind as R;
    features
        .iter()
        .map(|(name, kind)| {
            let k = match kind {
                R::Numeric => K::Numeric,
                R::Categorical => K::Categorical,
            };
            (name.clone(), k)
        })
        .collect()
}

/// The decoder's features as the registry's declaration.
pub fn from_known(features: &KnownFeatures) -> modelwatch_registry::Features {
    use modelwatch_collectors::batch::FeatureKind as K;
    use modelwatch_registry::FeatureKind as R;
    features
        .iter()
        .map(|(name, kind)| {
            let k = match kind {
                K::Numeric => R::Numeric,
                K::Categorical => R::Categorical,
            };
            (name.clone(), k)
        })
        .collect()
}
