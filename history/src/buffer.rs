//! The in-memory buffer: acknowledged batches not yet persisted, per table.

use arrow::array::{Array, TimestampMicrosecondArray};
use arrow::record_batch::RecordBatch;

/// One acknowledged batch.
#[derive(Debug, Clone)]
pub(crate) struct Chunk {
    pub seq: u64,
    pub batch: RecordBatch,
    pub min_ts: i64,
    pub max_ts: i64,
    pub bytes: u64,
    /// Clock time (micros) when it was buffered.
    pub inserted_at: i64,
}

/// Per-table chunks, in sequence order.
#[derive(Debug, Default)]
pub(crate) struct Buffer {
    pub tables: Vec<Vec<Chunk>>,
    pub bytes: u64,
    pub rows: u64,
    pub max_seq: u64,
}

/// Min and max of a non-null microsecond timestamp column.
pub(crate) fn ts_range(batch: &RecordBatch, ts_idx: usize) -> Option<(i64, i64)> {
    let col = batch
        .column(ts_idx)
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()?;
    let min = arrow::compute::min(col)?;
    let max = arrow::compute::max(col)?;
    Some((min, max))
}

impl Buffer {
    pub(crate) fn new(tables: usize) -> Self {
        Self {
            tables: vec![Vec::new(); tables],
            ..Default::default()
        }
    }

    /// Add the batches of record `seq`; `entries` are (table index, batch,
    /// ts column index).
    pub(crate) fn apply(&mut self, seq: u64, entries: Vec<(usize, RecordBatch)>, now: i64) {
        for (idx, batch) in entries {
            if batch.num_rows() == 0 {
                continue;
            }
            let ts_idx = batch
                .schema()
                .index_of(crate::table::TIME_COLUMN)
                .unwrap_or(0);
            let (min_ts, max_ts) = ts_range(&batch, ts_idx).unwrap_or((i64::MIN, i64::MAX));
            let bytes = batch.get_array_memory_size() as u64;
            self.bytes += bytes;
            self.rows += batch.num_rows() as u64;
            if let Some(t) = self.tables.get_mut(idx) {
                t.push(Chunk {
                    seq,
                    batch,
                    min_ts,
                    max_ts,
                    bytes,
                    inserted_at: now,
                });
            }
        }
        self.max_seq = self.max_seq.max(seq);
    }

    /// Drop every chunk with `seq <= upto` (they are persisted).
    pub(crate) fn remove_upto(&mut self, upto: u64) {
        for t in &mut self.tables {
            t.retain(|c| {
                if c.seq <= upto {
                    self.bytes -= c.bytes;
                    self.rows -= c.batch.num_rows() as u64;
                    false
                } else {
                    true
                }
            });
        }
    }

    /// Clock time of the oldest buffered chunk.
    pub(crate) fn oldest(&self) -> Option<i64> {
        self.tables.iter().flatten().map(|c| c.inserted_at).min()
    }
}
