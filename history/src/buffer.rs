//! The in-memory buffer: acknowledged batches not yet persisted, per table.

use arrow::array::{Array, ArrayRef, TimestampMicrosecondArray};

use crate::series::TableRows;
use crate::table::{TIME_COLUMN, TableDef};

/// One acknowledged batch.
#[derive(Debug, Clone)]
pub(crate) struct Chunk {
    pub seq: u64,
    pub rows: TableRows,
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
pub(crate) fn ts_range(col: &ArrayRef) -> Option<(i64, i64)> {
    let col = col.as_any().downcast_ref::<TimestampMicrosecondArray>()?;
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

    /// Add the rows of record `seq`; `entries` are (table index, rows).
    pub(crate) fn apply(
        &mut self,
        seq: u64,
        entries: Vec<(usize, TableRows)>,
        now: i64,
        defs: &[TableDef],
    ) {
        for (idx, rows) in entries {
            if rows.num_rows() == 0 {
                continue;
            }
            let (min_ts, max_ts) = defs
                .get(idx)
                .and_then(|def| rows.point_column(def, TIME_COLUMN))
                .and_then(|ts| ts_range(&ts))
                .unwrap_or((i64::MIN, i64::MAX));
            let bytes = rows.memory_size() as u64;
            self.bytes += bytes;
            self.rows += rows.num_rows() as u64;
            if let Some(t) = self.tables.get_mut(idx) {
                t.push(Chunk {
                    seq,
                    rows,
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
                    self.rows -= c.rows.num_rows() as u64;
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
