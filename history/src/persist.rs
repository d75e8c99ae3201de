//! Turning buffered batches into sorted, partitioned Parquet files, and
//! reading them back for compaction.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array, StringArray, TimestampMicrosecondArray};
use arrow::array::{UInt32Array, UInt64Array};
use arrow::compute::{SortColumn, cast, concat_batches, take, take_record_batch};
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
use crate::series::{SeriesBatch, SeriesLayout, Source, TableRows};
use crate::table::{TIME_COLUMN, TableDef};

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

/// Rows in partition order, made whole one piece at a time: a series
/// table's sorted rows are two index arrays into its series and points
/// until a piece of them is written, so persistence never holds a whole
/// copy of the rows with every point's labels.
enum Sorted {
    Whole(RecordBatch),
    Series(Box<SeriesSorted>),
}

/// Row `n` is point `order[n]` of `points`, of series `series_rows[n]`.
struct SeriesSorted {
    series: RecordBatch,
    points: RecordBatch,
    order: UInt32Array,
    series_rows: UInt32Array,
}

/// Each hour partition's range of the sorted rows.
type HourRanges = Vec<(i64, Range<usize>)>;

impl Sorted {
    /// Rows `range`, whole, with the table's schema.
    fn piece(&self, def: &TableDef, range: Range<usize>) -> Result<RecordBatch> {
        match self {
            Sorted::Whole(b) => Ok(b.slice(range.start, range.len())),
            Sorted::Series(s) => {
                let SeriesSorted {
                    series,
                    points,
                    order,
                    series_rows,
                } = s.as_ref();
                let layout = def.series_layout().ok_or_else(|| {
                    Error::Task("series-sorted rows for a table without series columns".into())
                })?;
                let order = order.slice(range.start, range.len());
                let series_rows = series_rows.slice(range.start, range.len());
                let columns = layout
                    .sources
                    .iter()
                    .map(|source| match *source {
                        Source::Series(i) => take(series.column(i), &series_rows, None),
                        Source::Point(i) => take(points.column(i), &order, None),
                    })
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                Ok(RecordBatch::try_new(def.schema.clone(), columns)?)
            }
        }
    }
}

/// Sort `rows` by (hour, sort key): the sorted rows and each hour's range
/// of them. A series table whose sort key is its series columns then `ts`
/// sorts its series once and the rows by integer keys ([`sort_series`]);
/// any other table sorts whole rows.
fn sort(def: &TableDef, rows: &[TableRows]) -> Result<(Sorted, HourRanges)> {
    let sorted = match def.series_layout() {
        Some(layout) if sorts_by_series(def) => sort_series(def, layout, rows)?,
        _ => {
            let batches = rows
                .iter()
                .map(|r| r.materialize(def, None))
                .collect::<Result<Vec<_>>>()?;
            sort_rows(def, &concat_batches(&def.schema, &batches)?)?
        }
    };
    let ts = match &sorted {
        Sorted::Whole(b) => ts_column(def, b.column(def.ts_index()))?.values().to_vec(),
        Sorted::Series(s) => {
            let SeriesSorted { points, order, .. } = s.as_ref();
            let i = def
                .series_layout()
                .and_then(|l| l.points_schema.index_of(TIME_COLUMN).ok())
                .ok_or_else(|| Error::Task("the points have no ts column".into()))?;
            let ts = ts_column(def, points.column(i))?.values();
            order.values().iter().map(|&o| ts[o as usize]).collect()
        }
    };
    let mut hours = Vec::new();
    let mut start = 0usize;
    for i in 1..=ts.len() {
        if i == ts.len() || hour_of(ts[i]) != hour_of(ts[start]) {
            hours.push((hour_of(ts[start]), start..i));
            start = i;
        }
    }
    Ok((sorted, hours))
}

/// Sort `rows` by (hour, sort key) and split them into one whole batch per
/// hour partition.
#[cfg(test)]
pub(crate) fn sort_and_split(
    def: &TableDef,
    rows: &[TableRows],
) -> Result<Vec<(i64, RecordBatch)>> {
    let (sorted, hours) = sort(def, rows)?;
    hours
        .into_iter()
        .map(|(hour, range)| Ok((hour, sorted.piece(def, range)?)))
        .collect()
}

/// Memory [`encode_partitions`] holds besides its input, for the buffer
/// bound: a series-sorted table copies its rows once (concatenated) plus
/// two indices and a timestamp per row, and makes one row group whole at a
/// time; any other table holds its rows whole twice (concatenated, sorted).
/// The encoded Parquet (a few bytes per row) is not counted.
pub(crate) fn working_bytes<'a>(def: &TableDef, rows: impl Iterator<Item = &'a TableRows>) -> u64 {
    let (mut held, mut whole, mut count) = (0u64, 0u64, 0u64);
    for r in rows {
        held += r.memory_size() as u64 + 16 * r.num_rows() as u64;
        whole += r.whole_size() as u64;
        count += r.num_rows() as u64;
    }
    if def.series_layout().is_some() && sorts_by_series(def) {
        let piece = count.min(ROW_GROUP_ROWS as u64);
        held + whole.checked_div(count).unwrap_or(0) * piece
    } else {
        2 * whole
    }
}

/// Whether the sort key is some series columns followed by `ts` alone.
fn sorts_by_series(def: &TableDef) -> bool {
    let Some((last, keys)) = def.sort_key.split_last() else {
        return false;
    };
    last == TIME_COLUMN && keys.iter().all(|k| def.series_columns().contains(k))
}

fn ts_column<'a>(def: &TableDef, column: &'a ArrayRef) -> Result<&'a TimestampMicrosecondArray> {
    column
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .ok_or_else(|| Error::InvalidBatch {
            table: def.name.clone(),
            detail: "the ts column is not Timestamp(Microsecond)".into(),
        })
}

/// A sort key column as sorted: a map stands in by its hash.
fn sort_values(column: &ArrayRef) -> Result<ArrayRef> {
    match column.data_type() {
        DataType::Map(_, _) => series_hashes(column),
        _ => Ok(column.clone()),
    }
}

/// Whole rows sorted by (hour, sort key).
fn sort_rows(def: &TableDef, all: &RecordBatch) -> Result<Sorted> {
    let ts = ts_column(def, all.column(def.ts_index()))?;
    let hours: Int64Array = ts.iter().map(|v| v.map(hour_of)).collect();
    let mut cols = vec![SortColumn {
        values: Arc::new(hours) as ArrayRef,
        options: None,
    }];
    for c in &def.sort_key {
        cols.push(SortColumn {
            values: sort_values(all.column(def.schema.index_of(c)?))?,
            options: None,
        });
    }
    let indices = sort_indices(&cols)?;
    Ok(Sorted::Whole(take_record_batch(all, &indices)?))
}

/// Series-form rows sorted by (hour, series key, ts): the text and map
/// keys are compared once per series, not once per row; each row then
/// sorts by three integers (its hour, its series' rank, its time). Equal
/// series keys share a rank, so rows of one series written by different
/// writes end up together, as [`sort_rows`] would put them.
fn sort_series(def: &TableDef, layout: &SeriesLayout, rows: &[TableRows]) -> Result<Sorted> {
    let parts: Vec<SeriesBatch> = rows
        .iter()
        .map(|r| r.to_series(def))
        .collect::<Result<_>>()?;
    let series = concat_batches(&layout.series_schema, parts.iter().map(|p| p.series()))?;
    let points = concat_batches(&layout.points_schema, parts.iter().map(|p| p.points()))?;
    // Each row's series as an index into the concatenated series.
    let mut global = Vec::with_capacity(points.num_rows());
    let mut offset = 0u32;
    for p in &parts {
        global.extend(p.index().values().iter().map(|i| i + offset));
        offset += p.series().num_rows() as u32;
    }
    // Rank the series by their sort key; equal keys, equal rank.
    let key_columns = def.sort_key[..def.sort_key.len() - 1]
        .iter()
        .map(|c| match layout.sources[def.schema.index_of(c)?] {
            Source::Series(i) => sort_values(series.column(i)),
            Source::Point(_) => Err(Error::Task(format!(
                "sort key column `{c}` is not a series column"
            ))),
        })
        .collect::<Result<Vec<_>>>()?;
    let mut rank = vec![0u32; series.num_rows()];
    if !key_columns.is_empty() {
        let converter = RowConverter::new(
            key_columns
                .iter()
                .map(|c| SortField::new(c.data_type().clone()))
                .collect(),
        )?;
        let keys = converter.convert_columns(&key_columns)?;
        // Most series rows repeat a series another write already brought
        // (Prometheus sends each series once per request): find the
        // distinct keys by hash first, so the comparison sort runs over
        // series, not over series rows. The hasher is seeded per process:
        // label values come from clients.
        let mut distinct: HashMap<arrow::row::Row<'_>, u32, foldhash::fast::RandomState> =
            HashMap::with_capacity_and_hasher(1024, foldhash::fast::RandomState::default());
        let mut first_row: Vec<u32> = Vec::new();
        let ids: Vec<u32> = (0..keys.num_rows())
            .map(|i| {
                *distinct.entry(keys.row(i)).or_insert_with(|| {
                    first_row.push(i as u32);
                    first_row.len() as u32 - 1
                })
            })
            .collect();
        let mut order: Vec<u32> = (0..first_row.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| {
            keys.row(first_row[a as usize] as usize)
                .cmp(&keys.row(first_row[b as usize] as usize))
        });
        let mut distinct_rank = vec![0u32; first_row.len()];
        for (r, &d) in order.iter().enumerate() {
            distinct_rank[d as usize] = r as u32;
        }
        for (r, id) in rank.iter_mut().zip(ids) {
            *r = distinct_rank[id as usize];
        }
    }
    let ts = match layout.sources[def.ts_index()] {
        Source::Point(i) => ts_column(def, points.column(i))?,
        Source::Series(_) => return Err(Error::Task("ts cannot be a series column".into())),
    };
    let ts_values = ts.values();
    let mut order: Vec<u32> = (0..points.num_rows() as u32).collect();
    order.sort_unstable_by_key(|&i| {
        let t = ts_values[i as usize];
        (hour_of(t), rank[global[i as usize] as usize], t, i)
    });
    let series_rows = UInt32Array::from_iter_values(order.iter().map(|&i| global[i as usize]));
    Ok(Sorted::Series(Box::new(SeriesSorted {
        series,
        points,
        order: UInt32Array::from(order),
        series_rows,
    })))
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

/// Encode sorted rows as a Parquet file (zstd, dictionaries, page-level
/// statistics and page index, sorting columns recorded), one row group's
/// worth made whole at a time; with what the manifest records about them.
fn encode_parquet(
    def: &TableDef,
    sorted: &Sorted,
    range: Range<usize>,
) -> Result<(Vec<u8>, Summary)> {
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, def.schema.clone(), Some(writer_props(def)?))?;
    let mut summary: Option<Summary> = None;
    let mut start = range.start;
    while start < range.end {
        let end = (start + ROW_GROUP_ROWS).min(range.end);
        let piece = sorted.piece(def, start..end)?;
        w.write(&piece)?;
        let s = summarise(def, &piece)?;
        summary = Some(match summary {
            Some(acc) => merge_summaries(acc, s),
            None => s,
        });
        start = end;
    }
    w.close()?;
    Ok((buf, summary.unwrap_or_default()))
}

/// Decode a whole Parquet file with the table's schema (a file written
/// before a key was promoted gets its column filled from the map).
pub(crate) fn decode_parquet(def: &TableDef, data: Bytes) -> Result<Vec<RecordBatch>> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(data)?
        .with_batch_size(64 * 1024)
        .build()?;
    let mut out = Vec::new();
    for b in reader {
        match def.check_rows(def.upgrade_rows(TableRows::Rows(b?))?)? {
            TableRows::Rows(b) => out.push(b),
            TableRows::Series(_) => unreachable!("whole rows stay whole rows"),
        }
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

/// Sorts `rows` into hour partitions and encodes each (CPU-bound: runs on
/// the [`PersistThread`]).
pub(crate) fn encode_partitions(def: &TableDef, rows: &[TableRows]) -> Result<Vec<EncodedPart>> {
    if rows.iter().all(|r| r.num_rows() == 0) {
        return Ok(Vec::new());
    }
    let (sorted, hours) = sort(def, rows)?;
    let mut out = Vec::new();
    for (hour, range) in hours {
        let rows = range.len() as u64;
        let (data, (min_ts, max_ts, columns)) = encode_parquet(def, &sorted, range)?;
        out.push(EncodedPart {
            hour,
            rows,
            data,
            min_ts,
            max_ts,
            columns,
        });
    }
    Ok(out)
}

type EncodeJob = Box<dyn FnOnce() + Send>;

/// The store's persistence thread: every sort and Parquet encoding
/// (persist, compaction, bulk loads) runs here, one at a time, so
/// persistence uses at most one core however much of it is due, and the
/// runtime's threads stay free for requests and the WAL. It stops when
/// the store is dropped (after the job it is running).
pub(crate) struct PersistThread {
    jobs: std::sync::Mutex<std::sync::mpsc::Sender<EncodeJob>>,
}

impl PersistThread {
    pub(crate) fn start() -> Result<Self> {
        let (tx, rx) = std::sync::mpsc::channel::<EncodeJob>();
        std::thread::Builder::new()
            .name("history-persist".into())
            .spawn(move || {
                for job in rx {
                    // A panicking job answers nobody (its caller gets an
                    // error); the thread goes on with the next one.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            })
            .map_err(|e| Error::Task(format!("cannot start the persistence thread: {e}")))?;
        Ok(Self {
            jobs: std::sync::Mutex::new(tx),
        })
    }

    /// [`encode_partitions`] on the persistence thread.
    pub(crate) async fn encode(
        &self,
        def: TableDef,
        rows: Vec<TableRows>,
    ) -> Result<Vec<EncodedPart>> {
        self.run(move || encode_partitions(&def, &rows)).await
    }

    /// Run `work` on the persistence thread, after the jobs queued before.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: EncodeJob = Box::new(move || {
            let _ = reply.send(work());
        });
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(job)
            .map_err(|_| Error::Task("the persistence thread has stopped".into()))?;
        answer
            .await
            .map_err(|_| Error::Task("the persistence thread dropped a job (it panicked)".into()))?
    }
}

/// Min and max `ts` and the index columns' summaries of some rows.
type Summary = (i64, i64, BTreeMap<String, ColumnSummary>);

/// The summary of two sets of rows together.
fn merge_summaries(a: Summary, b: Summary) -> Summary {
    let (min_ts, max_ts, mut columns) = a;
    for (name, other) in b.2 {
        let merged = match columns.remove(&name) {
            None => other,
            Some(mine) => {
                let values = match (mine.values, other.values) {
                    (Some(mut x), Some(y)) => {
                        x.extend(y);
                        (x.len() <= MAX_INDEX_VALUES).then_some(x)
                    }
                    _ => None,
                };
                ColumnSummary {
                    min: [mine.min, other.min].into_iter().flatten().min(),
                    max: [mine.max, other.max].into_iter().flatten().max(),
                    values,
                    has_nulls: mine.has_nulls || other.has_nulls,
                }
            }
        };
        columns.insert(name, merged);
    }
    (min_ts.min(b.0), max_ts.max(b.1), columns)
}

/// Min/max ts and index column summaries of a batch.
pub(crate) fn summarise(def: &TableDef, batch: &RecordBatch) -> Result<Summary> {
    let (min_ts, max_ts) = crate::buffer::ts_range(batch.column(def.ts_index())).unwrap_or((0, 0));
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
        let parts = sort_and_split(&def, &[interleaved(&def, 50).into()]).expect("sorted");
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
