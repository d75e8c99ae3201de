//! Cheap counters for `/metrics`.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Live counters, updated with relaxed atomics.
#[derive(Debug, Default)]
pub(crate) struct StatsInner {
    pub buffer_bytes: AtomicU64,
    pub buffer_rows: AtomicU64,
    pub inflight_bytes: AtomicU64,
    /// Memory persist and compaction hold while they work (their sorted
    /// copies), counted against `max_buffer_bytes` like the buffer.
    pub working_bytes: AtomicU64,
    pub wal_bytes: AtomicU64,
    pub wal_segments: AtomicU64,
    pub wal_records: AtomicU64,
    pub fsyncs: AtomicU64,
    pub last_fsync_micros: AtomicU64,
    pub fsync_micros_total: AtomicU64,
    pub writes_overloaded: AtomicU64,
    pub torn_tails_dropped: AtomicU64,
    pub persisted_files: AtomicU64,
    pub persisted_bytes: AtomicU64,
    pub persisted_rows: AtomicU64,
    pub persists: AtomicU64,
    pub compactions: AtomicU64,
    pub files_compacted: AtomicU64,
    pub retention_files_deleted: AtomicU64,
    /// Clock micros of the last persist; `i64::MIN` when none.
    pub last_persist_micros: AtomicI64,
    pub query_files_considered: AtomicU64,
    pub query_files_scanned: AtomicU64,
}

/// A point-in-time copy of the store's counters.
///
/// Gauges describe the current state; `*_total`-like fields only grow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryStats {
    /// Bytes of acknowledged rows held in memory (gauge).
    pub buffer_bytes: u64,
    /// Rows held in memory (gauge).
    pub buffer_rows: u64,
    /// Bytes of writes queued for the WAL, not yet acknowledged: their
    /// rows and their encoded WAL records (gauge).
    pub inflight_bytes: u64,
    /// Bytes persist and compaction hold while they work (gauge).
    pub working_bytes: u64,
    /// Bytes in WAL segments (gauge).
    pub wal_bytes: u64,
    /// WAL segment files (gauge).
    pub wal_segments: u64,
    /// WAL records written since open (counter).
    pub wal_records: u64,
    /// fdatasync calls on the WAL since open (counter); fewer than
    /// `wal_records` when group commit batches writes.
    pub wal_fsyncs: u64,
    /// Duration of the last WAL write + fdatasync, microseconds (gauge).
    pub last_fsync_micros: u64,
    /// Total time spent in WAL write + fdatasync since open, microseconds
    /// (counter; divided by `wal_fsyncs` it is the mean latency).
    pub fsync_micros_total: u64,
    /// Writes rejected with [`crate::Error::Overloaded`] (counter).
    pub writes_overloaded: u64,
    /// Torn WAL tails dropped during recovery (counter).
    pub torn_tails_dropped: u64,
    /// Parquet files in the manifest (gauge).
    pub persisted_files: u64,
    /// Bytes of Parquet files in the manifest (gauge).
    pub persisted_bytes: u64,
    /// Rows in Parquet files in the manifest (gauge).
    pub persisted_rows: u64,
    /// Successful persists since open (counter).
    pub persists: u64,
    /// Compactions (one per merged partition) since open (counter).
    pub compactions: u64,
    /// Input files merged away by compaction since open (counter).
    pub files_compacted: u64,
    /// Files deleted by retention since open (counter).
    pub retention_files_deleted: u64,
    /// Time of the last persist by the store's clock.
    pub last_persist: Option<chrono::DateTime<chrono::Utc>>,
    /// Parquet files the queries could have read (counter).
    pub query_files_considered: u64,
    /// Parquet files the queries actually scanned after manifest pruning (counter).
    pub query_files_scanned: u64,
}

impl StatsInner {
    pub(crate) fn new() -> Self {
        let s = Self::default();
        s.last_persist_micros.store(i64::MIN, Ordering::Relaxed);
        s
    }

    pub(crate) fn snapshot(&self) -> HistoryStats {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let last = self.last_persist_micros.load(Ordering::Relaxed);
        HistoryStats {
            buffer_bytes: g(&self.buffer_bytes),
            buffer_rows: g(&self.buffer_rows),
            inflight_bytes: g(&self.inflight_bytes),
            working_bytes: g(&self.working_bytes),
            wal_bytes: g(&self.wal_bytes),
            wal_segments: g(&self.wal_segments),
            wal_records: g(&self.wal_records),
            wal_fsyncs: g(&self.fsyncs),
            last_fsync_micros: g(&self.last_fsync_micros),
            fsync_micros_total: g(&self.fsync_micros_total),
            writes_overloaded: g(&self.writes_overloaded),
            torn_tails_dropped: g(&self.torn_tails_dropped),
            persisted_files: g(&self.persisted_files),
            persisted_bytes: g(&self.persisted_bytes),
            persisted_rows: g(&self.persisted_rows),
            persists: g(&self.persists),
            compactions: g(&self.compactions),
            files_compacted: g(&self.files_compacted),
            retention_files_deleted: g(&self.retention_files_deleted),
            last_persist: (last != i64::MIN)
                .then(|| chrono::DateTime::from_timestamp_micros(last))
                .flatten(),
            query_files_considered: g(&self.query_files_considered),
            query_files_scanned: g(&self.query_files_scanned),
        }
    }
}

/// Memory charged to a counter while held (see `StatsInner::working_bytes`).
pub(crate) struct Charge<'a> {
    counter: &'a AtomicU64,
    bytes: u64,
}

impl<'a> Charge<'a> {
    pub(crate) fn new(counter: &'a AtomicU64, bytes: u64) -> Self {
        counter.fetch_add(bytes, Ordering::AcqRel);
        Self { counter, bytes }
    }

    /// Charges `more` bytes on top of what is held.
    pub(crate) fn add(&mut self, more: u64) {
        self.counter.fetch_add(more, Ordering::AcqRel);
        self.bytes += more;
    }
}

impl Drop for Charge<'_> {
    fn drop(&mut self) {
        self.counter.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}
