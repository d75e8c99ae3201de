//! Bulk loads: many rows of one table made visible all at once, or never.
//!
//! A write through the WAL is bounded (one record, ≤ `max_write_bytes`), so
//! a large upload used to be many records: a crash half-way left half of it
//! queryable, and a retry duplicated that half. A [`BulkLoad`] bypasses the
//! WAL and the buffer: [`BulkLoad::append`] sorts the rows it is given by
//! hour and sort key and writes them as Parquet files in the table's
//! layout, fsynced but **not in the manifest**, so no query sees them;
//! [`BulkLoad::commit`] adds every file to the manifest in one atomic
//! commit. A load dropped without commit deletes its files; files of a load
//! interrupted by a crash are orphans, deleted when the store opens. Memory
//! stays bounded by [`BULK_CHUNK_BYTES`] whatever the size of the load, and
//! disk holds the compressed files only.
//!
//! A commit may carry a key ([`LoadKey`]), recorded in the manifest in the
//! same atomic commit as the files (`loads`, kept for
//! [`crate::HistoryConfig::load_record_retention`]): a second load with a
//! key already committed is refused with the first load's record
//! ([`Error::AlreadyLoaded`]) and leaves nothing behind, so a client
//! retrying after a lost reply cannot store the rows twice.

use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::manifest::FileMeta;
use crate::series::TableRows;
use crate::store::{HistoryStore, Shared};
use crate::table::TableDef;

/// Default of [`crate::HistoryConfig::bulk_chunk_bytes`]: rows (by Arrow
/// memory) collected before they are sorted and written.
pub const BULK_CHUNK_BYTES: usize = 64 << 20;

/// A committed bulk load, as the manifest records it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LoadRecord {
    /// The caller's key ([`LoadKey::key`]).
    pub key: String,
    /// The table loaded.
    pub table: String,
    /// Rows loaded.
    pub rows: u64,
    /// When the commit happened, µs since the epoch (the store's clock).
    pub committed_micros: i64,
    /// What the caller asked to keep with the load (e.g. the reply it gave),
    /// returned as is with [`Error::AlreadyLoaded`].
    #[serde(default)]
    pub meta: serde_json::Value,
}

/// An idempotency key for a bulk load, with what to remember about it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadKey {
    /// Unique per logical load; the caller chooses its scope.
    pub key: String,
    pub meta: serde_json::Value,
}

/// What a committed load stored.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadReceipt {
    pub rows: u64,
    /// Parquet files added.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
}

/// See the module docs. Obtained from [`HistoryStore::bulk_load`].
pub struct BulkLoad {
    store: HistoryStore,
    def: TableDef,
    pending: Vec<RecordBatch>,
    pending_bytes: usize,
    /// Written and fsynced, not yet in the manifest.
    files: Vec<FileMeta>,
    rows: u64,
    bytes: u64,
    committed: bool,
}

impl std::fmt::Debug for BulkLoad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkLoad")
            .field("table", &self.def.name)
            .field("files", &self.files.len())
            .field("rows", &self.rows)
            .finish()
    }
}

impl HistoryStore {
    /// Starts a bulk load into `table` (see [`crate::bulk`]).
    pub fn bulk_load(&self, table: &str) -> Result<BulkLoad> {
        let (_, def) = self.shared().known_def(table)?;
        Ok(BulkLoad {
            store: self.clone(),
            def: def.clone(),
            pending: Vec::new(),
            pending_bytes: 0,
            files: Vec::new(),
            rows: 0,
            bytes: 0,
            committed: false,
        })
    }

    /// The committed load with this key, while the manifest remembers it.
    pub fn find_load(&self, key: &str) -> Option<LoadRecord> {
        self.manifest().loads.into_iter().find(|l| l.key == key)
    }
}

impl BulkLoad {
    /// Rows given so far.
    pub fn rows(&self) -> u64 {
        self.rows
            + self
                .pending
                .iter()
                .map(|b| b.num_rows() as u64)
                .sum::<u64>()
    }

    /// Parquet bytes written so far (not counting rows still collected).
    pub fn bytes_written(&self) -> u64 {
        self.bytes
    }

    /// Adds rows; every [`BULK_CHUNK_BYTES`] they are written out.
    pub async fn append(&mut self, batch: RecordBatch) -> Result<()> {
        self.def.check_schema(batch.schema_ref())?;
        let batch = RecordBatch::try_new(self.def.schema.clone(), batch.columns().to_vec())
            .map_err(|e| Error::InvalidBatch {
                table: self.def.name.clone(),
                detail: e.to_string(),
            })?;
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.pending_bytes += batch.get_array_memory_size();
        self.pending.push(batch);
        if self.pending_bytes >= self.store.shared().config.bulk_chunk_bytes {
            self.flush().await?;
        }
        Ok(())
    }

    /// Sorts and writes the collected rows (one file per hour partition).
    async fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.pending)
            .into_iter()
            .map(TableRows::Rows)
            .collect();
        self.pending_bytes = 0;
        let shared = self.store.shared().clone();
        let parts = shared.persist_thread.encode(self.def.clone(), rows).await?;
        for part in parts {
            // Not from the WAL: no sequence numbers.
            let meta = part.meta(&self.def.name, shared.allocate_file_id(), 0, 0);
            // Recorded before the write: a failed write is cleaned up too.
            self.files.push(meta.clone());
            crate::store::put_durable(&shared, &meta.path, part.data).await?;
            self.rows += meta.rows;
            self.bytes += meta.bytes;
        }
        Ok(())
    }

    /// Writes what is left and makes every row of the load visible in one
    /// manifest commit. With a key already committed, nothing is added and
    /// [`Error::AlreadyLoaded`] carries the earlier load's record.
    pub async fn commit(mut self, key: Option<LoadKey>) -> Result<LoadReceipt> {
        if let Some(k) = &key
            && let Some(earlier) = self.store.find_load(&k.key)
        {
            return Err(Error::AlreadyLoaded {
                record: Box::new(earlier),
            });
        }
        self.flush().await?;
        let shared = self.store.shared().clone();
        let receipt = LoadReceipt {
            rows: self.rows,
            files: self.files.len(),
            bytes: self.bytes,
        };
        let record = key.map(|k| LoadRecord {
            key: k.key,
            table: self.def.name.clone(),
            rows: self.rows,
            committed_micros: shared.clock.now_micros(),
            meta: k.meta,
        });
        // From here the files belong to the commit, which deletes them if
        // it does not take them.
        let files = std::mem::take(&mut self.files);
        self.committed = true;
        shared.commit_load(files, record).await?;
        Ok(receipt)
    }
}

impl BulkLoad {
    /// Gives the load up, deleting what it wrote (dropping it does the same,
    /// in the background).
    pub async fn abort(mut self) {
        let files = std::mem::take(&mut self.files);
        self.committed = true;
        crate::store::delete_files(self.store.shared(), &files).await;
    }
}

impl Drop for BulkLoad {
    fn drop(&mut self) {
        if self.committed || self.files.is_empty() {
            return;
        }
        let files = std::mem::take(&mut self.files);
        let shared: Arc<Shared> = self.store.shared().clone();
        tracing::debug!(
            table = %self.def.name,
            files = files.len(),
            "bulk load abandoned; deleting its files"
        );
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move { crate::store::delete_files(&shared, &files).await });
            }
            // No runtime to delete through the object store: the files are
            // local (and otherwise orphans, removed at the next open).
            Err(_) => {
                for f in files {
                    let _ = std::fs::remove_file(shared.dir.join(&f.path));
                }
            }
        }
    }
}
