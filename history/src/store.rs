//! The store: open/recover, write, persist, compact, retain, background tasks.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use arrow::record_batch::RecordBatch;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tokio::sync::{Notify, mpsc, oneshot, watch};

use crate::buffer::{Buffer, Chunk};
use crate::error::{Error, Result};
use crate::manifest::{FileMeta, Manifest};
use crate::persist;
use crate::provider::HistoryTable;
use crate::series::TableRows;
use crate::stats::{HistoryStats, StatsInner};
use crate::table::TableDef;
use crate::wal::{self, WalCmd, WalWriter};
use modelwatch_types::clock::{Clock, SystemClock};

/// URL under which the store's object store is registered in DataFusion.
pub const OBJECT_STORE_URL: &str = "modelwatch-history://local/";

/// Tuning knobs. `Default` suits a daemon; tests shrink them.
#[derive(Debug, Clone)]
pub struct HistoryConfig {
    /// Time source for persist age, compaction and retention.
    pub clock: Arc<dyn Clock>,
    /// A WAL segment is closed and a new one started past this size.
    pub wal_segment_max_bytes: u64,
    /// Largest single write (encoded Arrow IPC bytes); larger writes get
    /// [`Error::WriteTooLarge`].
    pub max_write_bytes: usize,
    /// Most bytes group-committed in one WAL write + fdatasync.
    pub max_group_bytes: usize,
    /// Writes waiting for the WAL writer before [`Error::Overloaded`].
    pub wal_queue_len: usize,
    /// Bytes of buffered plus queued rows before [`Error::Overloaded`].
    pub max_buffer_bytes: u64,
    /// Persist when the buffer holds this many bytes...
    pub persist_buffer_bytes: u64,
    /// ...or when its oldest row was buffered this long ago (by `clock`).
    pub persist_max_age: Duration,
    /// Files smaller than this are merged by compaction.
    pub compaction_small_file_bytes: u64,
    /// A partition is compacted when it has at least this many small files.
    pub compaction_min_files: usize,
    /// Most files merged into one by one compaction.
    pub compaction_max_files: usize,
    /// Most Parquet bytes one compaction reads (it still merges at least
    /// two files).
    pub compaction_max_input_bytes: u64,
    /// Most decoded bytes one compaction holds before it stops reading
    /// more files (its memory bound, with the sorted copy; at least two
    /// files are merged).
    pub compaction_max_decoded_bytes: u64,
    /// How often the background persister checks its thresholds.
    pub persist_check_interval: Duration,
    /// How often background compaction and retention run.
    pub maintenance_interval: Duration,
    /// `retry_after` suggested by [`Error::Overloaded`].
    pub retry_after: Duration,
    /// Files dropped from the manifest by compaction or retention are
    /// deleted this long after the commit (by `clock`), so queries that
    /// started before it can finish reading them.
    pub file_delete_grace: Duration,
    /// How long the manifest remembers a keyed bulk load
    /// ([`crate::LoadKey`]): a retry with the same key within this time is
    /// refused with the first load's record.
    pub load_record_retention: Duration,
    /// Rows (by Arrow memory) a bulk load collects before it sorts and
    /// writes them out (its memory bound).
    pub bulk_chunk_bytes: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            wal_segment_max_bytes: 64 << 20,
            max_write_bytes: 32 << 20,
            max_group_bytes: 16 << 20,
            wal_queue_len: 4096,
            max_buffer_bytes: 1 << 30,
            persist_buffer_bytes: 256 << 20,
            persist_max_age: Duration::from_secs(600),
            compaction_small_file_bytes: 32 << 20,
            compaction_min_files: 4,
            compaction_max_files: 64,
            compaction_max_input_bytes: 64 << 20,
            compaction_max_decoded_bytes: 128 << 20,
            persist_check_interval: Duration::from_secs(1),
            maintenance_interval: Duration::from_secs(60),
            retry_after: Duration::from_secs(1),
            file_delete_grace: Duration::from_secs(300),
            load_record_retention: Duration::from_secs(24 * 3600),
            bulk_chunk_bytes: crate::bulk::BULK_CHUNK_BYTES,
        }
    }
}

impl HistoryConfig {
    /// Check that the values are usable together.
    pub fn validate(&self) -> Result<()> {
        let bad = |detail: String| Err(Error::InvalidConfig { detail });
        if self.max_write_bytes == 0 || self.max_write_bytes > wal::MAX_RECORD_BYTES - 1024 {
            return bad(format!(
                "max_write_bytes must be between 1 and {} (got {})",
                wal::MAX_RECORD_BYTES - 1024,
                self.max_write_bytes
            ));
        }
        if self.wal_queue_len == 0 || self.wal_segment_max_bytes == 0 {
            return bad("wal_queue_len and wal_segment_max_bytes must be positive".into());
        }
        if self.persist_check_interval.is_zero() || self.maintenance_interval.is_zero() {
            return bad("persist_check_interval and maintenance_interval must be positive".into());
        }
        Ok(())
    }
}

/// The shared core, also held by the WAL writer thread.
pub(crate) struct Shared {
    pub defs: Vec<TableDef>,
    pub config: HistoryConfig,
    pub dir: PathBuf,
    pub clock: Arc<dyn Clock>,
    pub state: RwLock<State>,
    pub stats: StatsInner,
    pub persist_notify: Notify,
    /// Set when a write was refused for lack of buffer room: the next check
    /// persists whatever is buffered, whatever the thresholds say (with
    /// `persist_buffer_bytes` close to `max_buffer_bytes`, the size
    /// threshold alone might never be reached and writes would be refused
    /// until the age threshold).
    pub persist_requested: AtomicBool,
    pub object_store: Arc<LocalFileSystem>,
    pub object_store_url: ObjectStoreUrl,
    /// Serialises persist, compaction and retention (manifest writers).
    pub maintenance: tokio::sync::Mutex<()>,
    /// Taken by the WAL writer after receiving a write and before draining
    /// the queue; tests hold it to queue writes deterministically.
    pub test_gate: Mutex<()>,
    /// Files out of the manifest waiting for their grace period: (clock
    /// micros when due, file).
    pub pending_deletes: Mutex<Vec<(i64, FileMeta)>>,
    /// The next Parquet file id: allocated here, not from the manifest, so
    /// bulk loads writing outside the maintenance lock never collide with
    /// persist or compaction. Every manifest commit records it.
    pub file_ids: std::sync::atomic::AtomicU64,
    /// Where sorting and Parquet encoding run.
    pub persist_thread: persist::PersistThread,
}

/// Manifest and buffer, swapped together so a query never sees a row twice
/// or not at all.
pub(crate) struct State {
    pub manifest: Arc<Manifest>,
    pub buffer: Buffer,
}

/// Why a write is refused when the memory bound is reached.
const BUFFER_FULL: &str = "the in-memory buffer is full: persistence is behind";

impl Shared {
    /// Bytes counted against `max_buffer_bytes`: buffered rows, writes on
    /// their way to the WAL, and persistence's or compaction's working set.
    fn used_bytes(&self) -> u64 {
        self.stats.buffer_bytes.load(Ordering::Acquire)
            + self.stats.inflight_bytes.load(Ordering::Acquire)
            + self.stats.working_bytes.load(Ordering::Acquire)
    }

    /// The retryable refusal, counted, with a persist requested: the one
    /// thing that frees the buffer.
    fn overloaded(&self, reason: &'static str) -> Error {
        self.stats.writes_overloaded.fetch_add(1, Ordering::Relaxed);
        self.persist_requested.store(true, Ordering::Release);
        self.persist_notify.notify_one();
        Error::Overloaded {
            retry_after: self.config.retry_after,
            reason,
        }
    }

    pub(crate) fn publish_buffer_stats(&self, b: &Buffer) {
        self.stats.buffer_bytes.store(b.bytes, Ordering::Relaxed);
        self.stats.buffer_rows.store(b.rows, Ordering::Relaxed);
    }

    fn publish_manifest_stats(&self, m: &Manifest) {
        self.stats
            .persisted_files
            .store(m.files.len() as u64, Ordering::Relaxed);
        self.stats
            .persisted_bytes
            .store(m.files.iter().map(|f| f.bytes).sum(), Ordering::Relaxed);
        self.stats
            .persisted_rows
            .store(m.files.iter().map(|f| f.rows).sum(), Ordering::Relaxed);
    }

    pub(crate) fn maybe_wake_persister(&self) {
        if self.stats.buffer_bytes.load(Ordering::Relaxed) >= self.config.persist_buffer_bytes {
            self.persist_notify.notify_one();
        }
    }

    pub(crate) fn allocate_file_id(&self) -> u64 {
        self.file_ids.fetch_add(1, Ordering::AcqRel)
    }

    /// The id the next file will get (what a manifest records).
    pub(crate) fn next_file_id(&self) -> u64 {
        self.file_ids.load(Ordering::Acquire)
    }

    /// Adds a bulk load's files (already durable) to the manifest in one
    /// commit, with its record when it has a key; deletes the files when
    /// they are not taken (the key was committed meanwhile, or the commit
    /// failed).
    pub(crate) async fn commit_load(
        self: &Arc<Self>,
        files: Vec<FileMeta>,
        record: Option<crate::bulk::LoadRecord>,
    ) -> Result<()> {
        let _guard = self.maintenance.lock().await;
        let current = self
            .state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .manifest
            .clone();
        if let Some(r) = &record
            && let Some(earlier) = current.loads.iter().find(|l| l.key == r.key)
        {
            delete_files(self, &files).await;
            return Err(Error::AlreadyLoaded {
                record: Box::new(earlier.clone()),
            });
        }
        let mut next = (*current).clone();
        next.files.extend(files.iter().cloned());
        let keep_after = self.clock.now_micros().saturating_sub(
            i64::try_from(self.config.load_record_retention.as_micros()).unwrap_or(i64::MAX),
        );
        next.loads.retain(|l| l.committed_micros >= keep_after);
        next.loads.extend(record);
        next.next_file_id = self.next_file_id();
        next.generation += 1;
        if let Err(e) = commit_manifest(self, next.clone()).await {
            delete_files(self, &files).await;
            return Err(e);
        }
        let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
        st.manifest = Arc::new(next);
        self.publish_manifest_stats(&st.manifest);
        Ok(())
    }

    pub(crate) fn def(&self, name: &str) -> Option<(usize, &TableDef)> {
        self.defs.iter().enumerate().find(|(_, d)| d.name == name)
    }

    /// Like [`Self::def`], for a table the caller names: unknown is an error.
    pub(crate) fn known_def(&self, name: &str) -> Result<(usize, &TableDef)> {
        self.def(name).ok_or_else(|| Error::UnknownTable {
            table: name.to_string(),
        })
    }

    /// Snapshot of one table: its files and buffered chunks.
    pub(crate) fn snapshot(&self, table: usize) -> (Arc<Manifest>, Vec<Chunk>) {
        let s = self.state.read().unwrap_or_else(|e| e.into_inner());
        (
            s.manifest.clone(),
            s.buffer.tables.get(table).cloned().unwrap_or_default(),
        )
    }
}

/// The writer's channel and thread; dropping the last handle stops the
/// writer after it has answered every queued write, then frees the lock.
struct Handle {
    shared: Arc<Shared>,
    tx: Mutex<Option<mpsc::Sender<WalCmd>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    _lock: File,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = t.join();
        }
    }
}

/// One write: rows for one or more tables, made durable atomically.
#[derive(Debug, Clone, Default)]
pub struct WriteSet {
    entries: Vec<(String, TableRows)>,
}

impl WriteSet {
    /// An empty write.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add rows for `table` (builder style): a [`RecordBatch`] of whole
    /// rows or a [`SeriesBatch`].
    pub fn with(mut self, table: impl Into<String>, rows: impl Into<TableRows>) -> Self {
        self.push(table, rows);
        self
    }

    /// Add rows for `table`: a [`RecordBatch`] of whole rows or a
    /// [`SeriesBatch`].
    pub fn push(&mut self, table: impl Into<String>, rows: impl Into<TableRows>) {
        self.entries.push((table.into(), rows.into()));
    }

    /// Number of rows in the write.
    pub fn rows(&self) -> usize {
        self.entries.iter().map(|(_, b)| b.num_rows()).sum()
    }

    /// The rows, by table name, in the order they were added.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &TableRows)> {
        self.entries.iter().map(|(t, b)| (t.as_str(), b))
    }
}

/// Room in the memory bound held for a request being decoded (see
/// [`HistoryStore::admit`]); released when dropped.
#[must_use = "the room is released as soon as the admission is dropped"]
pub struct Admission {
    shared: Arc<Shared>,
    bytes: u64,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.shared
            .stats
            .inflight_bytes
            .fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("bytes", &self.bytes)
            .finish()
    }
}

/// What an acknowledged write got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteReceipt {
    /// WAL sequence number of the record; `None` when the write had no rows
    /// (nothing was logged).
    pub seq: Option<u64>,
    /// Rows written.
    pub rows: usize,
}

/// What a persist did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PersistOutcome {
    /// Files written.
    pub files: usize,
    /// Rows written.
    pub rows: u64,
    /// Parquet bytes written.
    pub bytes: u64,
    /// WAL sequence now covered by the manifest.
    pub persisted_seq: u64,
}

/// What a compaction pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionOutcome {
    /// Partitions compacted.
    pub partitions: usize,
    /// Input files merged and deleted.
    pub files_in: usize,
    /// Output files written.
    pub files_out: usize,
}

/// What a retention pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    /// Files deleted.
    pub files_deleted: usize,
    /// Rows deleted.
    pub rows_deleted: u64,
}

/// Handles of the background tasks; they stop when the shutdown signal
/// becomes `true` (the persister persists the buffer one last time).
#[derive(Debug)]
pub struct BackgroundTasks {
    handles: Vec<(&'static str, tokio::task::JoinHandle<()>)>,
}

impl BackgroundTasks {
    /// Name of the persister task.
    pub const PERSISTER: &'static str = "persister";
    /// Name of the compaction and retention task.
    pub const MAINTENANCE: &'static str = "maintenance";

    /// Wait for every task to stop.
    pub async fn join(self) -> Result<()> {
        for (_, h) in self.handles {
            h.await.map_err(|e| Error::Task(e.to_string()))?;
        }
        Ok(())
    }

    /// The tasks by name, for a caller that watches them itself (a task
    /// that ends before shutdown has died).
    pub fn into_tasks(self) -> Vec<(&'static str, tokio::task::JoinHandle<()>)> {
        self.handles
    }
}

/// The history store. Cheap to clone; all clones share one store.
#[derive(Clone)]
pub struct HistoryStore {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for HistoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistoryStore")
            .field("dir", &self.handle.shared.dir)
            .field(
                "tables",
                &self
                    .handle
                    .shared
                    .defs
                    .iter()
                    .map(|d| &d.name)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

const LOCK_FILE: &str = "LOCK";
pub(crate) const WAL_DIR: &str = "wal";
const TABLES_DIR: &str = "tables";

fn ensure_dir(p: &Path) -> Result<()> {
    std::fs::create_dir_all(p).map_err(|e| Error::io("create directory", p, e))
}

impl HistoryStore {
    /// Open (creating if needed) the store in `dir` with every table it will
    /// ever hold: load the manifest, delete orphan Parquet files, replay the
    /// WAL after the manifest (dropping a torn tail with a warning), start
    /// the WAL writer.
    pub async fn open(
        dir: impl AsRef<Path>,
        tables: Vec<TableDef>,
        config: HistoryConfig,
    ) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        config.validate()?;
        let mut names = HashSet::new();
        for t in &tables {
            t.validate()?;
            if !names.insert(t.name.clone()) {
                return Err(Error::InvalidTableDef {
                    table: t.name.clone(),
                    detail: "declared twice".into(),
                });
            }
        }
        let d = dir.clone();
        let (lock, manifest) = tokio::task::spawn_blocking(move || -> Result<(File, Manifest)> {
            ensure_dir(&d)?;
            ensure_dir(&d.join(WAL_DIR))?;
            ensure_dir(&d.join(TABLES_DIR))?;
            let lock_path = d.join(LOCK_FILE);
            let lock = File::create(&lock_path)
                .map_err(|e| Error::io("create lock file", &lock_path, e))?;
            lock.try_lock().map_err(|_| Error::Locked {
                path: lock_path.clone(),
            })?;
            let _ = std::fs::remove_file(d.join(format!("{}.tmp", crate::manifest::MANIFEST_FILE)));
            Ok((lock, Manifest::load(&d)?))
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))??;

        let object_store =
            Arc::new(LocalFileSystem::new_with_prefix(&dir)?.with_automatic_cleanup(true));
        let object_store_url = ObjectStoreUrl::parse(OBJECT_STORE_URL)?;
        let clock = config.clock.clone();
        let shared = Arc::new(Shared {
            defs: tables,
            config,
            dir: dir.clone(),
            clock,
            state: RwLock::new(State {
                manifest: Arc::new(manifest),
                buffer: Buffer::new(0),
            }),
            stats: StatsInner::new(),
            persist_notify: Notify::new(),
            persist_requested: AtomicBool::new(false),
            object_store,
            object_store_url,
            maintenance: tokio::sync::Mutex::new(()),
            test_gate: Mutex::new(()),
            pending_deletes: Mutex::new(Vec::new()),
            file_ids: std::sync::atomic::AtomicU64::new(0),
            persist_thread: persist::PersistThread::start()?,
        });
        remove_orphans(&shared).await?;
        {
            let m = shared
                .state
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .manifest
                .clone();
            let next = m
                .files
                .iter()
                .map(|f| f.id + 1)
                .fold(m.next_file_id, u64::max);
            shared.file_ids.store(next, Ordering::Release);
        }

        let sh = shared.clone();
        let (tx, rx) = mpsc::channel(shared.config.wal_queue_len.max(1));
        let thread = tokio::task::spawn_blocking(move || -> Result<std::thread::JoinHandle<()>> {
            let persisted = sh
                .state
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .manifest
                .persisted_seq;
            let mut buffer = Buffer::new(sh.defs.len());
            let now = sh.clock.now_micros();
            let replay = wal::replay(&sh.dir.join(WAL_DIR), &sh.defs, |rec| {
                if rec.seq > persisted {
                    buffer.apply(rec.seq, rec.entries, now, &sh.defs);
                }
                Ok(())
            })?;
            sh.stats
                .torn_tails_dropped
                .store(replay.torn_tails, Ordering::Relaxed);
            {
                let mut st = sh.state.write().unwrap_or_else(|e| e.into_inner());
                sh.publish_buffer_stats(&buffer);
                sh.publish_manifest_stats(&st.manifest);
                st.buffer = buffer;
            }
            let next_seq = replay.last_seq.max(persisted) + 1;
            let writer = WalWriter::new(
                sh.dir.join(WAL_DIR),
                sh.config.wal_segment_max_bytes,
                sh.config.max_group_bytes,
                replay.segments,
                next_seq,
                sh.clone(),
            )?;
            std::thread::Builder::new()
                .name("history-wal".into())
                .spawn(move || writer.run(rx))
                .map_err(|e| Error::io("start WAL writer thread", &sh.dir, e))
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))??;
        shared.maybe_wake_persister();
        Ok(Self {
            handle: Arc::new(Handle {
                shared,
                tx: Mutex::new(Some(tx)),
                thread: Mutex::new(Some(thread)),
                _lock: lock,
            }),
        })
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.handle.shared
    }

    /// Hold the WAL writer before its next group commit (tests only).
    #[cfg(test)]
    pub(crate) fn hold_wal_writer(&self) -> std::sync::MutexGuard<'_, ()> {
        self.shared()
            .test_gate
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn sender(&self) -> Result<mpsc::Sender<WalCmd>> {
        self.handle
            .tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(Error::ShutDown)
    }

    /// The table definitions the store was opened with.
    pub fn tables(&self) -> &[TableDef] {
        &self.shared().defs
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.shared().dir
    }

    /// Write one batch to one table. See [`HistoryStore::write`].
    pub async fn write_batch(&self, table: &str, batch: RecordBatch) -> Result<WriteReceipt> {
        self.write(WriteSet::new().with(table, batch)).await
    }

    /// Refuses at once with the [`Error::Overloaded`] that a write of at
    /// least `min_bytes` (a lower bound of its rows' in-memory size) would
    /// get, so that a caller can check before decoding a request: under
    /// overload the CPU then goes to persistence, which frees the buffer,
    /// not to decoding requests that would be refused anyway. Admitted, the
    /// caller holds `min_bytes` of the bound until it drops the returned
    /// [`Admission`] (after decoding, before [`HistoryStore::write`]), so
    /// concurrent requests see each other's room taken and are not all
    /// decoded for a buffer only some of them fit in. Passing is no
    /// promise: the write checks again, exactly.
    pub fn admit(&self, min_bytes: u64) -> Result<Admission> {
        let shared = self.shared();
        shared
            .stats
            .inflight_bytes
            .fetch_add(min_bytes, Ordering::AcqRel);
        let admission = Admission {
            shared: shared.clone(),
            bytes: min_bytes,
        };
        if shared.used_bytes() > shared.config.max_buffer_bytes {
            drop(admission);
            return Err(shared.overloaded(BUFFER_FULL));
        }
        Ok(admission)
    }

    /// Write batches for one or more tables atomically. Resolves once the
    /// WAL record is fsynced (group-committed with concurrent writes) and
    /// the rows are queryable. Returns [`Error::Overloaded`] at once, having
    /// written nothing, when the buffer or the WAL queue is full.
    pub async fn write(&self, set: WriteSet) -> Result<WriteReceipt> {
        let shared = self.shared();
        let tx = self.sender()?;
        let mut entries = Vec::with_capacity(set.entries.len());
        let mut rows = 0usize;
        let mut bytes = 0u64;
        for (name, rows_in) in set.entries {
            let (idx, def) = shared.known_def(&name)?;
            let checked = def.check_rows(rows_in)?;
            if checked.num_rows() == 0 {
                continue;
            }
            rows += checked.num_rows();
            bytes += checked.memory_size() as u64;
            entries.push((idx, checked));
        }
        if entries.is_empty() {
            return Ok(WriteReceipt { seq: None, rows: 0 });
        }
        // Refused rows are not worth encoding (Arrow IPC is a large share of
        // a write's CPU); the reservation below checks again with the body.
        if bytes <= shared.config.max_buffer_bytes {
            drop(self.admit(bytes)?);
        }
        let body = wal::encode_body(&entries, &shared.defs)?;
        // Until the writer applies it, a write holds its rows and its
        // encoded WAL record: both count against the memory bound.
        let bytes = bytes + body.len() as u64;
        if body.len() > shared.config.max_write_bytes || bytes > shared.config.max_buffer_bytes {
            return Err(Error::WriteTooLarge {
                bytes: body.len().max(bytes as usize),
                limit: shared.config.max_write_bytes,
            });
        }
        let inflight = shared
            .stats
            .inflight_bytes
            .fetch_add(bytes, Ordering::AcqRel)
            + bytes;
        if shared.stats.buffer_bytes.load(Ordering::Acquire)
            + inflight
            + shared.stats.working_bytes.load(Ordering::Acquire)
            > shared.config.max_buffer_bytes
        {
            shared
                .stats
                .inflight_bytes
                .fetch_sub(bytes, Ordering::AcqRel);
            return Err(shared.overloaded(BUFFER_FULL));
        }
        let (reply, rx) = oneshot::channel();
        match tx.try_send(WalCmd::Write {
            body,
            entries,
            bytes,
            reply,
        }) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                shared
                    .stats
                    .inflight_bytes
                    .fetch_sub(bytes, Ordering::AcqRel);
                return Err(shared.overloaded("the WAL queue is full: fsync is behind"));
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                shared
                    .stats
                    .inflight_bytes
                    .fetch_sub(bytes, Ordering::AcqRel);
                return Err(Error::ShutDown);
            }
        }
        let seq = rx.await.map_err(|_| Error::WalFailed {
            cause: "the WAL writer stopped before answering".into(),
        })??;
        Ok(WriteReceipt {
            seq: Some(seq),
            rows,
        })
    }

    /// Whether the WAL writer thread still runs; it ends only when the
    /// store is dropped, so `false` on an open store means it died (and
    /// every write fails).
    pub fn wal_writer_running(&self) -> bool {
        self.handle
            .thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|t| !t.is_finished())
    }

    /// A counters snapshot.
    pub fn stats(&self) -> HistoryStats {
        self.shared().stats.snapshot()
    }

    /// A copy of the current manifest.
    pub fn manifest(&self) -> Manifest {
        (*self
            .shared()
            .state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .manifest)
            .clone()
    }

    /// Whether the buffer has reached the persist size or age threshold.
    pub fn persist_due(&self) -> bool {
        let shared = self.shared();
        let st = shared.state.read().unwrap_or_else(|e| e.into_inner());
        if st.buffer.bytes > 0
            && (st.buffer.bytes >= shared.config.persist_buffer_bytes
                || shared.persist_requested.load(Ordering::Acquire))
        {
            return true;
        }
        let age = shared.config.persist_max_age.as_micros() as i64;
        st.buffer
            .oldest()
            .is_some_and(|t| shared.clock.now_micros().saturating_sub(t) >= age)
    }

    /// Persist only if [`HistoryStore::persist_due`].
    pub async fn persist_if_due(&self) -> Result<Option<PersistOutcome>> {
        if self.persist_due() {
            Ok(Some(self.persist_now().await?))
        } else {
            Ok(None)
        }
    }

    /// Persist everything buffered: write sorted Parquet files per table and
    /// hour, commit the manifest, drop the rows from the buffer, then delete
    /// the WAL segments the manifest covers.
    #[tracing::instrument(name = "history.persist", level = "info", skip_all)]
    pub async fn persist_now(&self) -> Result<PersistOutcome> {
        let shared = self.shared().clone();
        let _guard = shared.maintenance.lock().await;
        // This persist answers any pending request; a refusal from now on
        // asks again.
        shared.persist_requested.store(false, Ordering::Release);
        let (manifest, chunks, upto) = {
            let st = shared.state.read().unwrap_or_else(|e| e.into_inner());
            (
                st.manifest.clone(),
                st.buffer.tables.clone(),
                st.buffer.max_seq,
            )
        };
        let mut outcome = PersistOutcome {
            persisted_seq: manifest.persisted_seq,
            ..Default::default()
        };
        if chunks.iter().all(|t| t.is_empty()) || upto <= manifest.persisted_seq {
            return Ok(outcome);
        }
        // Tables are persisted one at a time; charge the largest one's
        // sorting memory (see `persist::working_bytes`).
        let largest: u64 = chunks
            .iter()
            .enumerate()
            .map(|(idx, t)| persist::working_bytes(&shared.defs[idx], t.iter().map(|c| &c.rows)))
            .max()
            .unwrap_or(0);
        let _working = crate::stats::Charge::new(&shared.stats.working_bytes, largest);
        let mut next = (*manifest).clone();
        let mut written = Vec::new();
        for (idx, table_chunks) in chunks.into_iter().enumerate() {
            if table_chunks.is_empty() {
                continue;
            }
            let def = shared.defs[idx].clone();
            let min_seq = table_chunks.iter().map(|c| c.seq).min().unwrap_or(0);
            let max_seq = table_chunks.iter().map(|c| c.seq).max().unwrap_or(0);
            let rows: Vec<TableRows> = table_chunks.into_iter().map(|c| c.rows).collect();
            let parts = shared.persist_thread.encode(def.clone(), rows).await?;
            for part in parts {
                let meta = part.meta(&def.name, shared.allocate_file_id(), min_seq, max_seq);
                if let Err(e) = put_durable(&shared, &meta.path, part.data).await {
                    delete_files(&shared, &written).await;
                    return Err(e);
                }
                outcome.files += 1;
                outcome.rows += meta.rows;
                outcome.bytes += meta.bytes;
                written.push(meta.clone());
                next.files.push(meta);
            }
        }
        next.persisted_seq = upto;
        next.next_file_id = shared.next_file_id();
        next.generation += 1;
        if let Err(e) = commit_manifest(&shared, next.clone()).await {
            delete_files(&shared, &written).await;
            return Err(e);
        }
        {
            let mut st = shared.state.write().unwrap_or_else(|e| e.into_inner());
            st.manifest = Arc::new(next);
            st.buffer.remove_upto(upto);
            shared.publish_buffer_stats(&st.buffer);
            shared.publish_manifest_stats(&st.manifest);
        }
        shared.stats.persists.fetch_add(1, Ordering::Relaxed);
        shared
            .stats
            .last_persist_micros
            .store(shared.clock.now_micros(), Ordering::Relaxed);
        outcome.persisted_seq = upto;
        // Only now may the WAL go.
        self.truncate_wal(upto).await?;
        tracing::debug!(
            files = outcome.files,
            rows = outcome.rows,
            upto,
            "persisted buffer"
        );
        Ok(outcome)
    }

    async fn truncate_wal(&self, upto: u64) -> Result<()> {
        let tx = self.sender()?;
        let (reply, rx) = oneshot::channel();
        tx.send(WalCmd::Truncate { upto, reply })
            .await
            .map_err(|_| Error::ShutDown)?;
        rx.await.map_err(|_| Error::ShutDown)?
    }

    /// Merge small files of each (table, hour) partition into one sorted
    /// file. Old files are deleted only after the new manifest is durable.
    #[tracing::instrument(name = "history.compact", level = "info", skip_all)]
    pub async fn compact_now(&self) -> Result<CompactionOutcome> {
        let shared = self.shared().clone();
        let _guard = shared.maintenance.lock().await;
        let mut outcome = CompactionOutcome::default();
        let manifest = shared
            .state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .manifest
            .clone();
        let mut groups: BTreeMap<(String, i64), Vec<FileMeta>> = BTreeMap::new();
        for f in &manifest.files {
            if f.bytes < shared.config.compaction_small_file_bytes {
                groups
                    .entry((f.table.clone(), f.partition_hour))
                    .or_default()
                    .push(f.clone());
            }
        }
        for ((table, hour), mut files) in groups {
            if files.len() < shared.config.compaction_min_files.max(2) {
                continue;
            }
            files.sort_by_key(|f| f.id);
            files.truncate(shared.config.compaction_max_files.max(2));
            // Bound what one compaction reads into memory (at least two
            // files, or there is nothing to merge).
            let mut input = 0u64;
            let mut keep = 0usize;
            for f in &files {
                if keep >= 2 && input + f.bytes > shared.config.compaction_max_input_bytes {
                    break;
                }
                input += f.bytes;
                keep += 1;
            }
            files.truncate(keep);
            let Some((_, def)) = shared.def(&table) else {
                continue;
            };
            let def = def.clone();
            let mut batches = Vec::new();
            let mut working = crate::stats::Charge::new(&shared.stats.working_bytes, 0);
            // Parquet of repetitive telemetry decodes to many times its
            // size: stop reading once the rows in memory reach the bound
            // (after at least two files); the rest wait for the next pass.
            let mut decoded = 0u64;
            let mut read = 0usize;
            for f in &files {
                if read >= 2 && decoded >= shared.config.compaction_max_decoded_bytes {
                    break;
                }
                read += 1;
                let data = shared
                    .object_store
                    .get(&ObjectPath::from(f.path.as_str()))
                    .await?
                    .bytes()
                    .await?;
                let d2 = def.clone();
                let b = shared
                    .persist_thread
                    .run(move || persist::decode_parquet(&d2, data))
                    .await?;
                // Decoded rows, and the sorted copy made of them.
                let size: u64 = b.iter().map(|b| b.get_array_memory_size() as u64).sum();
                decoded += size;
                working.add(2 * size);
                batches.extend(b);
            }
            files.truncate(read);
            let rows = batches.into_iter().map(TableRows::Rows).collect();
            let parts = shared.persist_thread.encode(def.clone(), rows).await?;
            let mut next = (*shared
                .state
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .manifest)
                .clone();
            let old_ids: HashSet<u64> = files.iter().map(|f| f.id).collect();
            next.files.retain(|f| !old_ids.contains(&f.id));
            let mut written = Vec::new();
            let (min_seq, max_seq) = (
                files.iter().map(|f| f.min_seq).min().unwrap_or(0),
                files.iter().map(|f| f.max_seq).max().unwrap_or(0),
            );
            for part in parts {
                debug_assert_eq!(part.hour, hour);
                let meta = part.meta(&table, shared.allocate_file_id(), min_seq, max_seq);
                if let Err(e) = put_durable(&shared, &meta.path, part.data).await {
                    delete_files(&shared, &written).await;
                    return Err(e);
                }
                written.push(meta.clone());
                next.files.push(meta);
            }
            next.next_file_id = shared.next_file_id();
            next.generation += 1;
            if let Err(e) = commit_manifest(&shared, next.clone()).await {
                delete_files(&shared, &written).await;
                return Err(e);
            }
            {
                let mut st = shared.state.write().unwrap_or_else(|e| e.into_inner());
                st.manifest = Arc::new(next);
                shared.publish_manifest_stats(&st.manifest);
            }
            schedule_delete(&shared, &files);
            outcome.partitions += 1;
            outcome.files_in += files.len();
            outcome.files_out += written.len();
            shared.stats.compactions.fetch_add(1, Ordering::Relaxed);
            shared
                .stats
                .files_compacted
                .fetch_add(files.len() as u64, Ordering::Relaxed);
        }
        delete_due(&shared).await;
        Ok(outcome)
    }

    /// Delete persisted files whose newest row is older than their table's
    /// retention (by the store's clock). Buffered rows are not touched: they
    /// go at the first retention pass after they are persisted.
    #[tracing::instrument(name = "history.retention", level = "info", skip_all)]
    pub async fn enforce_retention_now(&self) -> Result<RetentionOutcome> {
        let shared = self.shared().clone();
        let _guard = shared.maintenance.lock().await;
        let now = shared.clock.now_micros();
        let manifest = shared
            .state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .manifest
            .clone();
        let mut expired = Vec::new();
        for f in &manifest.files {
            let Some((_, def)) = shared.def(&f.table) else {
                continue;
            };
            let Some(ret) = def.retention else { continue };
            let cutoff = now.saturating_sub(i64::try_from(ret.as_micros()).unwrap_or(i64::MAX));
            if f.max_ts < cutoff {
                expired.push(f.clone());
            }
        }
        if expired.is_empty() {
            delete_due(&shared).await;
            return Ok(RetentionOutcome::default());
        }
        let ids: HashSet<u64> = expired.iter().map(|f| f.id).collect();
        let mut next = (*manifest).clone();
        next.files.retain(|f| !ids.contains(&f.id));
        next.generation += 1;
        commit_manifest(&shared, next.clone()).await?;
        {
            let mut st = shared.state.write().unwrap_or_else(|e| e.into_inner());
            st.manifest = Arc::new(next);
            shared.publish_manifest_stats(&st.manifest);
        }
        schedule_delete(&shared, &expired);
        delete_due(&shared).await;
        shared
            .stats
            .retention_files_deleted
            .fetch_add(expired.len() as u64, Ordering::Relaxed);
        Ok(RetentionOutcome {
            files_deleted: expired.len(),
            rows_deleted: expired.iter().map(|f| f.rows).sum(),
        })
    }

    /// A DataFusion table provider for `table`.
    pub fn table_provider(&self, table: &str) -> Result<Arc<HistoryTable>> {
        let (idx, _) = self.shared().known_def(table)?;
        Ok(Arc::new(HistoryTable::new(self.shared().clone(), idx)))
    }

    /// Register every table (and the object store the providers read from)
    /// on an existing context.
    pub fn register_tables(&self, ctx: &SessionContext) -> Result<()> {
        ctx.runtime_env().register_object_store(
            self.shared().object_store_url.as_ref(),
            self.shared().object_store.clone(),
        );
        for d in &self.shared().defs {
            ctx.register_table(d.name.as_str(), self.table_provider(&d.name)?)?;
        }
        Ok(())
    }

    /// A new `SessionContext` with every table registered (information
    /// schema on). The caller may register more tables on it.
    pub fn session_context(&self) -> Result<SessionContext> {
        let config = SessionConfig::new().with_information_schema(true);
        let ctx = SessionContext::new_with_config(config);
        self.register_tables(&ctx)?;
        Ok(ctx)
    }

    /// Start the background persister (size/age thresholds, woken early by
    /// writes) and the maintenance task (compaction, then retention, every
    /// `maintenance_interval`). Both stop when `shutdown` turns `true` or its
    /// sender is dropped; the persister then persists the buffer once more.
    pub fn spawn_background(&self, shutdown: watch::Receiver<bool>) -> BackgroundTasks {
        let persister = {
            let store = self.clone();
            let mut shutdown = shutdown.clone();
            tokio::spawn(async move {
                let interval = store.shared().config.persist_check_interval;
                loop {
                    if *shutdown.borrow() {
                        break;
                    }
                    tokio::select! {
                        r = shutdown.changed() => if r.is_err() { break },
                        _ = store.shared().persist_notify.notified() => {},
                        _ = tokio::time::sleep(interval) => {},
                    }
                    if let Err(e) = store.persist_if_due().await {
                        tracing::warn!(error = %e, "background persist failed; will retry");
                    }
                }
                if let Err(e) = store.persist_now().await {
                    tracing::warn!(error = %e, "final persist on shutdown failed; the WAL keeps the rows");
                }
            })
        };
        let maintenance = {
            let store = self.clone();
            let mut shutdown = shutdown;
            tokio::spawn(async move {
                let interval = store.shared().config.maintenance_interval;
                loop {
                    if *shutdown.borrow() {
                        break;
                    }
                    tokio::select! {
                        r = shutdown.changed() => if r.is_err() { break },
                        _ = tokio::time::sleep(interval) => {},
                    }
                    if *shutdown.borrow() {
                        break;
                    }
                    if let Err(e) = store.compact_now().await {
                        tracing::warn!(error = %e, "background compaction failed; will retry");
                    }
                    if let Err(e) = store.enforce_retention_now().await {
                        tracing::warn!(error = %e, "background retention failed; will retry");
                    }
                }
            })
        };
        BackgroundTasks {
            handles: vec![
                (BackgroundTasks::PERSISTER, persister),
                (BackgroundTasks::MAINTENANCE, maintenance),
            ],
        }
    }
}

/// Write a file through the object store and make it durable (the local
/// store does not fsync: fsync the file and its directory ourselves).
pub(crate) async fn put_durable(shared: &Shared, path: &str, data: Vec<u8>) -> Result<()> {
    shared
        .object_store
        .put(&ObjectPath::from(path), PutPayload::from(data))
        .await?;
    let full = shared.dir.join(path);
    tokio::task::spawn_blocking(move || -> Result<()> {
        File::open(&full)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io("fsync parquet file", &full, e))?;
        if let Some(parent) = full.parent() {
            wal::sync_dir(parent)?;
        }
        Ok(())
    })
    .await
    .map_err(|e| Error::Task(e.to_string()))?
}

async fn commit_manifest(shared: &Arc<Shared>, m: Manifest) -> Result<()> {
    let dir = shared.dir.clone();
    tokio::task::spawn_blocking(move || m.store(&dir))
        .await
        .map_err(|e| Error::Task(e.to_string()))?
}

/// Queue files dropped from a committed manifest for deletion after the
/// grace period.
fn schedule_delete(shared: &Shared, files: &[FileMeta]) {
    let grace = i64::try_from(shared.config.file_delete_grace.as_micros()).unwrap_or(i64::MAX);
    let due = shared.clock.now_micros().saturating_add(grace);
    let mut p = shared
        .pending_deletes
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    p.extend(files.iter().map(|f| (due, f.clone())));
}

/// Delete the queued files whose grace period is over.
async fn delete_due(shared: &Shared) {
    let now = shared.clock.now_micros();
    let due: Vec<FileMeta> = {
        let mut p = shared
            .pending_deletes
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let (due, keep): (Vec<_>, Vec<_>) = p.drain(..).partition(|(t, _)| *t <= now);
        *p = keep;
        due.into_iter().map(|(_, f)| f).collect()
    };
    delete_files(shared, &due).await;
}

/// Best-effort delete; what fails is an orphan removed at the next open.
pub(crate) async fn delete_files(shared: &Shared, files: &[FileMeta]) {
    for f in files {
        if let Err(e) = shared
            .object_store
            .delete(&ObjectPath::from(f.path.as_str()))
            .await
            && !matches!(e, object_store::Error::NotFound { .. })
        {
            tracing::warn!(path = %f.path, error = %e, "could not delete file; it will be removed at next open");
        }
    }
}

/// Delete Parquet files under `tables/` that the manifest does not list
/// (left by a crash between writing a file and committing the manifest, or
/// between the commit and deleting compacted/expired files).
async fn remove_orphans(shared: &Shared) -> Result<()> {
    let known: HashSet<String> = shared
        .state
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .manifest
        .files
        .iter()
        .map(|f| f.path.clone())
        .collect();
    let prefix = ObjectPath::from(TABLES_DIR);
    let objects: Vec<_> = shared
        .object_store
        .list(Some(&prefix))
        .try_collect()
        .await?;
    for o in objects {
        if !known.contains(o.location.as_ref()) {
            tracing::warn!(path = %o.location, "deleting orphan file not in the manifest");
            shared.object_store.delete(&o.location).await?;
        }
    }
    // The local store stages uploads as `<name>#<n>` and does not list them:
    // sweep those left by a crash during a put.
    let root = shared.dir.join(TABLES_DIR);
    tokio::task::spawn_blocking(move || sweep_staging(&root))
        .await
        .map_err(|e| Error::Task(e.to_string()))?
}

fn sweep_staging(dir: &Path) -> Result<()> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("list table directory", dir, e)),
    };
    for ent in rd {
        let ent = ent.map_err(|e| Error::io("list table directory", dir, e))?;
        let path = ent.path();
        let ft = ent
            .file_type()
            .map_err(|e| Error::io("stat table file", &path, e))?;
        if ft.is_dir() {
            sweep_staging(&path)?;
        } else if ent.file_name().to_string_lossy().contains('#') {
            tracing::warn!(path = %path.display(), "deleting partial upload left by a crash");
            std::fs::remove_file(&path)
                .map_err(|e| Error::io("delete partial upload", &path, e))?;
        }
    }
    Ok(())
}
