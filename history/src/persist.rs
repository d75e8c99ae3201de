//! Turning buffered batches into sorted, partitioned Parquet files, and
//! reading them back for compaction.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array, StringArray, TimestampMicrosecondArray};
use arrow::array::{UInt32Array, UInt64Array};
use arrow::compute::{SortColumn, cast, concat_batches, take_record_batch};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};
use bytes::Bytes;
use chrono::{DateTime, Timelike};
use datafusion::common::hash_utils::{RandomState, create_hashes};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::error::{Error, Result};
use crate::manifest::{ColumnSummary, FileMeta, MAX_INDEX_VALUES};
use crate::table::TableDef;

/// Micros in one hour: the partition width.
pub const HOUR_MICROS: i64 = 3_600_000_000;
/// Rows per Parquet row group.
pub const ROW_GROUP_ROWS: usize = 64 * 1024;
/// Rows per Parquet data page (at most; the byte limit may cut earlier).
pub const DATA_PAGE_ROWS: usize = 4 * 1024;

/// Start of the hour containing `ts`.
pub fn hour_of(ts: i64) -> i64 {
    ts.div_euclid(HOUR_MICROS) * HOUR_MICROS
}

/// `tables/<table>/date=YYYY-MM-DD/hour=HH/<id:020>.parquet`
pub fn file_path(table: &str, partition_hour: i64, id: u64) -> String {
    let dt = DateTime::from_timestamp_micros(partition_hour).unwrap_or_default();
    format!(
        "tables/{table}/date={}/hour={:02}/{id:020}.parquet",
        dt.format("%Y-%m-%d"),
        dt.hour()
    )
}

/// Row order for `cols` (ascending, nulls first, stable). Sorting the
/// row-encoded keys compares plain byte strings; it is several times faster
/// than `lexsort_to_indices`'s per-column comparator on string sort keys,
/// and persistence sorts every row it writes.
fn sort_indices(cols: &[SortColumn]) -> Result<UInt32Array> {
    let converter = RowConverter::new(
        cols.iter()
            .map(|c| SortField::new(c.values.data_type().clone()))
            .collect(),
    )?;
    let values: Vec<ArrayRef> = cols.iter().map(|c| c.values.clone()).collect();
    let rows = converter.convert_columns(&values)?;
    let mut order: Vec<u32> = (0..rows.num_rows() as u32).collect();
    order.sort_by(|&a, &b| rows.row(a as usize).cmp(&rows.row(b as usize)));
    Ok(UInt32Array::from(order))
}

/// A map column's sort stand-in: a fixed-seed 64-bit hash of each row's
/// entries. Rows with equal maps (one series' labels) become contiguous,
/// which is what the sort is for: a series' values side by side compress
/// several times better than values interleaved with other series'. The
/// order among different maps is arbitrary but fixed; a hash collision only
/// interleaves two series, it never loses or reorders a row's data.
fn series_hashes(column: &ArrayRef) -> Result<ArrayRef> {
    let mut hashes = vec![0u64; column.len()];
    create_hashes([column], &RandomState::with_seed(0), &mut hashes)?;
    Ok(Arc::new(UInt64Array::from(hashes)))
}

/// Concatenate `batches`, sort them by (hour, sort key) and split them into
/// one batch per hour partition.
pub(crate) fn sort_and_split(
    def: &TableDef,
    batches: &[RecordBatch],
) -> Result<Vec<(i64, RecordBatch)>> {
    if batches.is_empty() {
        return Ok(Vec::new());
    }
    let all = concat_batches(&def.schema, batches)?;
    if all.num_rows() == 0 {
        return Ok(Vec::new());
    }
    let ts = all
        .column(def.ts_index())
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .ok_or_else(|| Error::InvalidBatch {
            table: def.name.clone(),
            detail: "the ts column is not Timestamp(Microsecond)".into(),
        })?;
    let hours: Int64Array = ts.iter().map(|v| v.map(hour_of)).collect();
    let mut cols = vec![SortColumn {
        values: Arc::new(hours.clone()) as ArrayRef,
        options: None,
    }];
    for c in &def.sort_key {
        let column = all.column(def.schema.index_of(c)?);
        let values = match column.data_type() {
            DataType::Map(_, _) => series_hashes(column)?,
            _ => column.clone(),
        };
        cols.push(SortColumn {
            values,
            options: None,
        });
    }
    let indices = sort_indices(&cols)?;
    let sorted = take_record_batch(&all, &indices)?;
    let sorted_hours = arrow::compute::take(&hours, &indices, None)?;
    let sorted_hours = sorted_hours
        .as_any()
        .downcast_ref::<Int64Array>()
        .ok_or_else(|| Error::Task("hour column lost its type".into()))?;
    let mut out = Vec::new();
    let mut start = 0usize;
    let n = sorted.num_rows();
    for i in 1..=n {
        if i == n || sorted_hours.value(i) != sorted_hours.value(start) {
            out.push((sorted_hours.value(start), sorted.slice(start, i - start)));
            start = i;
        }
    }
    Ok(out)
}

fn writer_props(def: &TableDef) -> Result<WriterProperties> {
    // A map column sorts by hash, not by value: the footer records only the
    // key columns before it, which are truly sorted.
    let sorting = def
        .sort_key
        .iter()
        .filter_map(|c| def.schema.index_of(c).ok())
        .take_while(|&i| !matches!(def.schema.field(i).data_type(), DataType::Map(_, _)))
        .map(|i| SortingColumn {
            column_idx: i as i32,
            descending: false,
            nulls_first: true,
        })
        .collect::<Vec<_>>();
    let mut props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .set_dictionary_enabled(true)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        // Small pages make the page index selective: a filter on the
        // leading sort column skips most pages of a file.
        .set_data_page_row_count_limit(DATA_PAGE_ROWS)
        .set_sorting_columns(Some(sorting))
        .set_created_by(format!("modelwatch-history {}", env!("CARGO_PKG_VERSION")));
    // Measured values (floats) are nearly all distinct, so dictionaries fall
    // back to PLAIN; splitting their bytes into streams lets zstd find the
    // shared sign/exponent bytes of consecutive values of one series.
    for field in def.schema.fields() {
        if matches!(field.data_type(), DataType::Float64 | DataType::Float32)
            && !def.sort_key.iter().any(|c| c == field.name())
        {
            let path = ColumnPath::from(field.name().as_str());
            props = props
                .set_column_dictionary_enabled(path.clone(), false)
                .set_column_encoding(path, Encoding::BYTE_STREAM_SPLIT);
        }
    }
    Ok(props.build())
}

/// Encode a sorted batch as a Parquet file (zstd, dictionaries, page-level
/// statistics and page index, sorting columns recorded).
pub(crate) fn encode_parquet(def: &TableDef, batch: &RecordBatch) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, def.schema.clone(), Some(writer_props(def)?))?;
    w.write(batch)?;
    w.close()?;
    Ok(buf)
}

/// Decode a whole Parquet file with the table's schema.
pub(crate) fn decode_parquet(def: &TableDef, data: Bytes) -> Result<Vec<RecordBatch>> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(data)?
        .with_batch_size(64 * 1024)
        .build()?;
    let mut out = Vec::new();
    for b in reader {
        let b = b?;
        def.check_schema(b.schema_ref())?;
        out.push(RecordBatch::try_new(
            def.schema.clone(),
            b.columns().to_vec(),
        )?);
    }
    Ok(out)
}

/// One hour partition of rows, sorted and encoded as Parquet, with what the
/// manifest records about it.
pub(crate) struct EncodedPart {
    pub hour: i64,
    pub rows: u64,
    pub data: Vec<u8>,
    pub min_ts: i64,
    pub max_ts: i64,
    pub columns: BTreeMap<String, ColumnSummary>,
}

impl EncodedPart {
    /// Its manifest entry as file `id`, covering WAL records
    /// `min_seq..=max_seq` (0 for rows that did not come through the WAL).
    pub(crate) fn meta(&self, table: &str, id: u64, min_seq: u64, max_seq: u64) -> FileMeta {
        FileMeta {
            id,
            table: table.to_string(),
            path: file_path(table, self.hour, id),
            partition_hour: self.hour,
            min_ts: self.min_ts,
            max_ts: self.max_ts,
            rows: self.rows,
            bytes: self.data.len() as u64,
            min_seq,
            max_seq,
            columns: self.columns.clone(),
        }
    }
}

/// Sorts `batches` into hour partitions and encodes each (CPU-bound: call
/// from a blocking thread, see [`encode_partitions_blocking`]).
pub(crate) fn encode_partitions(
    def: &TableDef,
    batches: &[RecordBatch],
) -> Result<Vec<EncodedPart>> {
    let mut out = Vec::new();
    for (hour, batch) in sort_and_split(def, batches)? {
        let data = encode_parquet(def, &batch)?;
        let (min_ts, max_ts, columns) = summarise(def, &batch)?;
        out.push(EncodedPart {
            hour,
            rows: batch.num_rows() as u64,
            data,
            min_ts,
            max_ts,
            columns,
        });
    }
    Ok(out)
}

/// [`encode_partitions`] on a blocking thread.
pub(crate) async fn encode_partitions_blocking(
    def: TableDef,
    batches: Vec<RecordBatch>,
) -> Result<Vec<EncodedPart>> {
    tokio::task::spawn_blocking(move || encode_partitions(&def, &batches))
        .await
        .map_err(|e| Error::Task(e.to_string()))?
}

/// Min/max ts and index column summaries of a batch.
pub(crate) fn summarise(
    def: &TableDef,
    batch: &RecordBatch,
) -> Result<(i64, i64, BTreeMap<String, ColumnSummary>)> {
    let (min_ts, max_ts) = crate::buffer::ts_range(batch, def.ts_index()).unwrap_or((0, 0));
    let mut columns = BTreeMap::new();
    for c in &def.index_columns {
        let idx = def.schema.index_of(c)?;
        let col = cast(batch.column(idx), &DataType::Utf8)?;
        let Some(col) = col.as_any().downcast_ref::<StringArray>() else {
            continue;
        };
        let mut values = BTreeSet::new();
        let mut min: Option<&str> = None;
        let mut max: Option<&str> = None;
        let mut overflow = false;
        for v in col.iter().flatten() {
            if min.is_none_or(|m| v < m) {
                min = Some(v);
            }
            if max.is_none_or(|m| v > m) {
                max = Some(v);
            }
            if !overflow && !values.contains(v) {
                if values.len() >= MAX_INDEX_VALUES {
                    overflow = true;
                    values.clear();
                } else {
                    values.insert(v.to_string());
                }
            }
        }
        columns.insert(
            c.clone(),
            ColumnSummary {
                min: min.map(str::to_string),
                max: max.map(str::to_string),
                values: (!overflow).then_some(values),
                has_nulls: col.null_count() > 0,
            },
        );
    }
    Ok((min_ts, max_ts, columns))
}

#[cfg(test)]
mod tests {
    use arrow::array::builder::{MapBuilder, StringBuilder};
    use arrow::array::{AsArray, Float64Array};
    use arrow::datatypes::{Field, Float64Type};

    use super::*;
    use crate::table::{schema, time_field};

    /// Rows of three series (`labels` maps) interleaved in time, as remote
    /// write delivers them: one sample per series per timestamp.
    fn interleaved(def: &TableDef, steps: i64) -> RecordBatch {
        let series = [("instance", "a"), ("instance", "b"), ("le", "0.5")];
        let mut labels = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
        let (mut ts, mut metric, mut value) = (Vec::new(), Vec::new(), Vec::new());
        for step in 0..steps {
            for (i, (k, v)) in series.iter().enumerate() {
                labels.keys().append_value(k);
                labels.values().append_value(v);
                labels.append(true).expect("map row");
                ts.push(step * 1_000_000);
                metric.push("m");
                value.push((i as i64 * 1000 + step) as f64);
            }
        }
        RecordBatch::try_new(
            def.schema.clone(),
            vec![
                Arc::new(TimestampMicrosecondArray::from(ts).with_timezone("UTC")),
                Arc::new(StringArray::from(metric)),
                Arc::new(labels.finish()),
                Arc::new(Float64Array::from(value)),
            ],
        )
        .expect("batch")
    }

    #[test]
    fn a_map_in_the_sort_key_keeps_each_series_together_in_time_order() {
        let def = TableDef::new(
            "samples",
            schema(vec![
                time_field(),
                Field::new("metric", DataType::Utf8, false),
                Field::new(
                    "labels",
                    MapBuilder::new(None, StringBuilder::new(), StringBuilder::new())
                        .finish()
                        .data_type()
                        .clone(),
                    false,
                ),
                Field::new("value", DataType::Float64, false),
            ]),
        )
        .with_sort_key(["metric", "labels", "ts"]);
        def.validate().expect("a map may be in the sort key");
        let parts = sort_and_split(&def, &[interleaved(&def, 50)]).expect("sorted");
        assert_eq!(parts.len(), 1, "one hour");
        let batch = &parts[0].1;
        assert_eq!(batch.num_rows(), 150, "no row lost or added");
        // The value encodes the series (thousands) and the step (units):
        // sorted, each series is one run of 50 steps in time order.
        let values = batch.column(3).as_primitive::<Float64Type>();
        let ts = batch
            .column(0)
            .as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        for run in 0..3 {
            let series = (values.value(run * 50) / 1000.0).floor();
            for step in 0..50 {
                let row = run * 50 + step;
                assert_eq!(
                    (values.value(row) / 1000.0).floor(),
                    series,
                    "row {row} belongs to another series: series are interleaved"
                );
                assert_eq!(
                    ts.value(row),
                    step as i64 * 1_000_000,
                    "row {row} out of time order"
                );
            }
        }
        // The footer only claims the columns that are truly sorted.
        let props = writer_props(&def).expect("props");
        let sorting = props.sorting_columns().expect("sorting columns");
        assert_eq!(sorting.len(), 1, "only `metric` precedes the map");
        assert_eq!(sorting[0].column_idx, 1);
    }
}
