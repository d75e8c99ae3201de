//! # modelwatch-history
//!
//! A generic, durable, time-partitioned store of named append-only tables:
//! a write-ahead log with group-committed fsync, an in-memory Arrow buffer,
//! Parquet files recorded in an atomically replaced manifest, compaction,
//! retention, and DataFusion table providers over all of it.
//!
//! ## What it is for
//! The owners of the data (the collectors, the daemon's evaluator) declare
//! their tables as [`TableDef`]s (an Arrow schema with a `ts` column of
//! `Timestamp(Microsecond, "UTC")`, a sort key, index columns, a retention)
//! and hand the store Arrow record batches with [`HistoryStore::write`].
//! A table that declares its series columns ([`TableDef::with_series_columns`],
//! e.g. `metric, labels, model`) also takes rows in series form
//! ([`SeriesBatch`]: each series' values of those columns once, then its
//! points), which the WAL and the buffer keep as they are.
//! A write is acknowledged only once its WAL record is fsynced, and is
//! queryable from then on through [`HistoryStore::session_context`].
//!
//! ## What it must not do
//! It knows nothing of Prometheus, OTLP or the registry; it never decodes a
//! wire format, never talks HTTP, and never grows without bound: when the
//! buffer or the WAL queue is full, [`HistoryStore::write`] fails at once with
//! the retryable [`Error::Overloaded`] (map it to 503 + `Retry-After`);
//! [`HistoryStore::admit`] gives the same answer before a caller decodes a
//! request (and holds the room while it decodes), so refused requests cost
//! no decoding while persistence catches up. It never acknowledges a write before its fsync, never refuses to start
//! because of a torn WAL tail, and never returns a row twice.
//!
//! ## Lifecycle of a row
//! 1. `write` validates the batches against their tables, encodes them as one
//!    WAL record (Arrow IPC; a series-form batch as its series and its
//!    points) and queues it for the single WAL writer thread.
//! 2. The writer takes every queued record (group commit), appends them with
//!    one `write` + `fdatasync`, adds them to the buffer, then answers each
//!    caller with the record's sequence number.
//! 3. Persist (by size or age, [`HistoryConfig`]) sorts each table's
//!    buffered rows by hour and sort key (a series table: its series once,
//!    then its rows by hour, series rank and time), writes one Parquet file
//!    per table and hour on the store's persistence thread, fsyncs them, commits a new manifest whose `persisted_seq`
//!    covers the buffered records, swaps manifest and buffer in one step, and
//!    only then deletes the WAL segments the manifest covers.
//! 4. Compaction merges a partition's small files into one; retention drops
//!    files past their table's retention. Both commit the manifest before
//!    deleting any file, and delete dropped files only after
//!    [`HistoryConfig::file_delete_grace`] so running queries can finish.
//!    Retention applies to persisted files; buffered rows go at the first
//!    pass after they are persisted.
//! 5. On open: take the `LOCK`, load the manifest, delete files it does not
//!    list (orphans of a crash, partial uploads), replay WAL records with a sequence number
//!    above `persisted_seq` into the buffer, truncate a torn tail with a
//!    warning, and start a fresh WAL segment.
//!
//! ## On-disk formats
//! ```text
//! <data_dir>/
//!   LOCK                      advisory lock: one process per directory
//!   manifest.json             manifest, format version 1 (see `manifest`)
//!   wal/<first_seq:020>.wal   WAL segments, format version 1 (see `wal`)
//!   tables/<table>/date=YYYY-MM-DD/hour=HH/<file_id:020>.parquet
//! ```
//! * **WAL segment, version 1**: an 8-byte header `"MWWAL" 0 0 1`, then
//!   records `[len u32 LE][crc32c(payload) u32 LE][payload]`. The payload is
//!   `[record version u8 = 2][seq u64 LE][table count u32 LE]` followed, per
//!   table, by `[name len u16 LE][name][form u8]` and, for form 0 (whole
//!   rows), `[ipc len u32 LE][Arrow IPC stream]`, for form 1 (series form)
//!   the series then the points as two such length-prefixed streams.
//!   Record version 1 (no form byte, whole rows only) still replays.
//!   One record = one write, all-or-nothing, possibly several tables.
//!   Segments rotate past [`HistoryConfig::wal_segment_max_bytes`]; a new
//!   segment's header is fsynced and so is the directory. A record whose
//!   length does not fit or whose checksum fails in the last segment is a
//!   torn tail: it and everything after it are truncated with a `warn!`.
//!   The same damage in an earlier segment is [`Error::WalCorrupt`].
//! * **Manifest, version 1**: JSON `{format_version, generation,
//!   persisted_seq, next_file_id, files: [{id, table, path, partition_hour,
//!   min_ts, max_ts, rows, bytes, min_seq, max_seq, columns: {<index col>:
//!   {min, max, values?, has_nulls}}}]}`, times in microseconds since the
//!   epoch (UTC). `values` lists up to 64 distinct values per file (else only
//!   min/max). Replaced by writing `manifest.json.tmp`, fsync, rename,
//!   directory fsync. A newer `format_version` is refused, never guessed.
//! * **Parquet**: Hive-style `date=`/`hour=` partitions of `ts` (UTC) that
//!   Spark, Trino and DuckDB read directly; zstd level 3, dictionary
//!   encoding (float columns outside the sort key: `BYTE_STREAM_SPLIT`
//!   instead), page-level statistics and page index, rows sorted by the
//!   table's sort key within the hour (a `Map` key column sorts by a hash of
//!   its entries, keeping equal maps together), sorting columns recorded in
//!   the footer up to the first `Map` column, 64 Ki rows per row group, 4 Ki-row data pages. Written through the `object_store`
//!   crate (`LocalFileSystem` today), then fsynced.
//!
//! ## Backups
//! [`backup`] names what an online backup copies, and in which order, so
//! that the copy holds every acknowledged write while the store goes on.
//!
//! ## Queries
//! Each table is a [`HistoryTable`] (`TableProvider`) unioning the buffer
//! (series-form chunks made whole for the projected columns only) with the
//! Parquet files. Files are pruned from the manifest by `ts` bounds
//! (`=, <, <=, >, >=, BETWEEN`) and by index-column `=`/`IN` before
//! DataFusion opens them; DataFusion then prunes row groups and pages with
//! the same predicate, and re-applies every filter. Columns keep their
//! declared types (no `Utf8View`), in the buffer and the files alike.
//!
//! ## Limits
//! * A table's schema is fixed: files and WAL records are checked against
//!   the declared schema, and a changed declaration is refused at replay
//!   ([`Error::WalTableMismatch`]). Two evolutions are handled, both
//!   columns added to a table with history: a **promoted key**
//!   ([`TableDef::with_promoted_keys`]), a nullable text column copying one
//!   key of a map column, which WAL records and files without it read back
//!   filled from the map (replay and compaction fill the rows, queries read
//!   the map in its place per file, `promoted`); and any other **nullable
//!   column**, which they read back as null. Renaming, dropping, retyping
//!   or adding a non-nullable column needs a new table.
//! * Persist covers every table at once (one `persisted_seq` for the WAL).
//! * The manifest lives on the local file system next to the WAL; Parquet
//!   goes through `object_store`, so moving files to object storage needs a
//!   conditional-put manifest, not a new file layout.
//!
//! ## Example
//! ```no_run
//! # async fn demo() -> modelwatch_history::Result<()> {
//! use std::sync::Arc;
//! use arrow::datatypes::{DataType, Field};
//! use modelwatch_history::{HistoryConfig, HistoryStore, TableDef, schema, time_field};
//! let samples = TableDef::new("samples", schema(vec![
//!         time_field(),
//!         Field::new("model", DataType::Utf8, true),
//!         Field::new("value", DataType::Float64, false),
//!     ]))
//!     .with_sort_key(["model", "ts"])
//!     .with_index_columns(["model"]);
//! let store = HistoryStore::open("/var/lib/modelwatch", vec![samples], HistoryConfig::default()).await?;
//! let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
//! let tasks = store.spawn_background(stop_rx);
//! let ctx = store.session_context()?;
//! let df = ctx.sql("SELECT model, avg(value) FROM samples GROUP BY model").await?;
//! # let _ = df;
//! stop_tx.send(true).ok();
//! tasks.join().await?;
//! # Ok(()) }
//! ```

pub mod backup;
mod buffer;
pub mod bulk;
mod error;
pub mod manifest;
mod persist;
mod promoted;
mod provider;
mod series;
mod stats;
mod store;
mod table;
pub mod wal;

pub use bulk::{BULK_CHUNK_BYTES, BulkLoad, LoadKey, LoadReceipt, LoadRecord};
pub use error::{Error, Result};
pub use manifest::{ColumnSummary, FileMeta, MANIFEST_FORMAT_VERSION, Manifest};
pub use persist::{HOUR_MICROS, file_path};
pub use promoted::PromotedKey;
pub use provider::HistoryTable;
pub use series::{SERIES_INDEX_COLUMN, SeriesBatch, TableRows};
pub use stats::HistoryStats;
pub use store::{
    Admission, BackgroundTasks, CompactionOutcome, HistoryConfig, HistoryStore, OBJECT_STORE_URL,
    PersistOutcome, RetentionOutcome, WriteReceipt, WriteSet,
};
pub use table::{TIME_COLUMN, TIME_ZONE, TableDef, schema, time_data_type, time_field};
pub use wal::{WAL_RECORD_VERSION, WAL_RECORD_VERSION_ROWS_ONLY, WAL_SEGMENT_VERSION};

#[cfg(test)]
mod promoted_tests;
#[cfg(test)]
mod series_tests;
#[cfg(test)]
mod tests;
