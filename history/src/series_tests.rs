//! Series form end to end: write, WAL replay (this format and the one
//! before it), buffer scans, persistence, refusals.

use std::path::Path;
use std::sync::Arc;

use arrow::array::builder::{MapBuilder, StringBuilder};
use arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, StringArray, TimestampMicrosecondArray, UInt32Array,
};
use arrow::datatypes::{DataType, Field, Float64Type, TimestampMicrosecondType};
use arrow::record_batch::RecordBatch;

use crate::tests::{Fixture, config, events_def, micros, t0};
use crate::*;

/// A table whose series are `metric, labels, model`: the shape of the
/// daemon's `samples`, small. The version-1 WAL fixture was written with
/// this table (without its series columns, which did not exist yet).
pub(crate) fn labelled_def() -> TableDef {
    TableDef::new(
        "labelled",
        schema(vec![
            time_field(),
            Field::new("metric", DataType::Utf8, false),
            Field::new("labels", labels_type(), false),
            Field::new("model", DataType::Utf8, true),
            Field::new("value", DataType::Float64, false),
        ]),
    )
    .with_sort_key(["metric", "model", "labels", "ts"])
    .with_index_columns(["metric", "model"])
    .with_series_columns(["metric", "labels", "model"])
}

pub(crate) fn labels_type() -> DataType {
    MapBuilder::new(None, StringBuilder::new(), StringBuilder::new())
        .finish()
        .data_type()
        .clone()
}

/// A series: metric, `instance` label, model.
type Series = (&'static str, &'static str, Option<&'static str>);

fn labels(instances: impl IntoIterator<Item = String>) -> ArrayRef {
    let mut b = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
    for i in instances {
        b.keys().append_value("instance");
        b.values().append_value(i);
        b.keys().append_value("le");
        b.values().append_value("0.5");
        b.append(true).expect("map row");
    }
    Arc::new(b.finish())
}

/// `series` once, and `points` as (series index, seconds after t0, value).
fn series_batch(series: &[Series], points: &[(u32, i64, f64)]) -> SeriesBatch {
    let def = labelled_def();
    let series_schema = Arc::new(def.schema.project(&[1, 2, 3]).expect("series columns"));
    let points_schema = schema(vec![
        Field::new("series", DataType::UInt32, false),
        time_field(),
        Field::new("value", DataType::Float64, false),
    ]);
    SeriesBatch::new(
        RecordBatch::try_new(
            series_schema,
            vec![
                Arc::new(StringArray::from_iter_values(series.iter().map(|s| s.0))),
                labels(series.iter().map(|s| s.1.to_string())),
                Arc::new(StringArray::from_iter(series.iter().map(|s| s.2))),
            ],
        )
        .expect("series batch"),
        RecordBatch::try_new(
            points_schema,
            vec![
                Arc::new(UInt32Array::from_iter_values(points.iter().map(|p| p.0))),
                Arc::new(
                    TimestampMicrosecondArray::from_iter_values(
                        points.iter().map(|p| micros(t0()) + p.1 * 1_000_000),
                    )
                    .with_timezone("UTC"),
                ),
                Arc::new(Float64Array::from_iter_values(points.iter().map(|p| p.2))),
            ],
        )
        .expect("points batch"),
    )
}

/// The same rows whole.
fn rows_batch(series: &[Series], points: &[(u32, i64, f64)]) -> RecordBatch {
    let at = |p: &(u32, i64, f64)| series[p.0 as usize];
    RecordBatch::try_new(
        labelled_def().schema.clone(),
        vec![
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(
                    points.iter().map(|p| micros(t0()) + p.1 * 1_000_000),
                )
                .with_timezone("UTC"),
            ),
            Arc::new(StringArray::from_iter_values(
                points.iter().map(|p| at(p).0),
            )),
            labels(points.iter().map(|p| at(p).1.to_string())),
            Arc::new(StringArray::from_iter(points.iter().map(|p| at(p).2))),
            Arc::new(Float64Array::from_iter_values(points.iter().map(|p| p.2))),
        ],
    )
    .expect("rows batch")
}

/// One row as SQL returns it.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    metric: String,
    instance: String,
    le: String,
    model: Option<String>,
    value: f64,
    ts: i64,
}

fn expected(series: &[Series], points: &[(u32, i64, f64)]) -> Vec<Row> {
    let mut rows: Vec<Row> = points
        .iter()
        .map(|&(s, secs, value)| {
            let (metric, instance, model) = series[s as usize];
            Row {
                metric: metric.into(),
                instance: instance.into(),
                le: "0.5".into(),
                model: model.map(Into::into),
                value,
                ts: micros(t0()) + secs * 1_000_000,
            }
        })
        .collect();
    rows.sort_by(|a, b| a.value.total_cmp(&b.value));
    rows
}

/// Every row of `labelled` through SQL (the `labels` map read by key).
async fn read_back(store: &HistoryStore) -> Vec<Row> {
    let ctx = store.session_context().expect("context");
    let batches = ctx
        .sql(
            "SELECT metric, labels['instance'], labels['le'], model, value, ts \
             FROM labelled ORDER BY value",
        )
        .await
        .expect("plan")
        .collect()
        .await
        .expect("run");
    let mut out = Vec::new();
    for b in &batches {
        let text = |c: usize| b.column(c).as_string::<i32>().clone();
        let (metric, instance, le, model) = (text(0), text(1), text(2), text(3));
        let value = b.column(4).as_primitive::<Float64Type>();
        let ts = b.column(5).as_primitive::<TimestampMicrosecondType>();
        for i in 0..b.num_rows() {
            out.push(Row {
                metric: metric.value(i).into(),
                instance: instance.value(i).into(),
                le: le.value(i).into(),
                model: model.is_valid(i).then(|| model.value(i).into()),
                value: value.value(i),
                ts: ts.value(i),
            });
        }
    }
    out
}

/// `sum(value)` over the table: needs no series column.
async fn sum_of_values(store: &HistoryStore) -> f64 {
    let ctx = store.session_context().expect("context");
    let sum = ctx
        .sql("SELECT sum(value) FROM labelled")
        .await
        .expect("plan")
        .collect()
        .await
        .expect("run");
    sum[0].column(0).as_primitive::<Float64Type>().value(0)
}

/// How many runs of one series `rows` (a persisted file, in order) has,
/// the series told by `series_of(value)`; each run must be in time order.
fn series_runs(rows: &RecordBatch, series_of: impl Fn(f64) -> f64) -> usize {
    let value = rows.column(4).as_primitive::<Float64Type>();
    let ts = rows.column(0).as_primitive::<TimestampMicrosecondType>();
    let mut runs = 0;
    for i in 0..rows.num_rows() {
        if i == 0 || series_of(value.value(i)) != series_of(value.value(i - 1)) {
            runs += 1;
        } else {
            assert!(
                ts.value(i) >= ts.value(i - 1),
                "row {i} is out of time order"
            );
        }
    }
    runs
}

const SERIES: [Series; 3] = [
    ("latency", "host-0", Some("fraud")),
    ("latency", "host-1", None),
    ("errors", "host-0", Some("fraud")),
];

/// Three series, five steps, interleaved as remote write sends them.
fn interleaved_points(first_value: f64) -> Vec<(u32, i64, f64)> {
    (0..5i64)
        .flat_map(|step| {
            (0..3u32).map(move |s| (s, step, first_value + f64::from(s) * 100.0 + step as f64))
        })
        .collect()
}

async fn open(fx: &Fixture) -> HistoryStore {
    HistoryStore::open(
        &fx.dir,
        vec![labelled_def(), events_def()],
        config(fx.clock.clone()),
    )
    .await
    .expect("open store")
}

#[tokio::test]
async fn series_form_reads_back_as_whole_rows_from_buffer_wal_and_files() {
    let fx = Fixture::new();
    let store = open(&fx).await;
    let points = interleaved_points(0.0);
    let batch = series_batch(&SERIES, &points);
    let whole = rows_batch(&SERIES, &points);
    assert!(
        TableRows::from(batch.clone()).memory_size() < whole.get_array_memory_size(),
        "the series form holds each series' labels once"
    );
    store
        .write(WriteSet::new().with("labelled", batch))
        .await
        .expect("series-form write");
    let mut want = expected(&SERIES, &points);
    assert_eq!(read_back(&store).await, want, "from the buffer");
    // A projection without the series columns does not need them.
    assert_eq!(
        sum_of_values(&store).await,
        points.iter().map(|p| p.2).sum::<f64>()
    );

    // The same series again, as whole rows: both forms share one table.
    let more = interleaved_points(1000.0);
    store
        .write(WriteSet::new().with("labelled", rows_batch(&SERIES, &more)))
        .await
        .expect("whole-rows write");
    want.extend(expected(&SERIES, &more));
    want.sort_by(|a, b| a.value.total_cmp(&b.value));
    assert_eq!(read_back(&store).await, want, "both forms from the buffer");

    drop(store);
    let store = open(&fx).await;
    assert_eq!(read_back(&store).await, want, "after WAL replay");

    let outcome = store.persist_now().await.expect("persist");
    assert_eq!(outcome.rows, 30);
    assert_eq!(read_back(&store).await, want, "from Parquet");
    // Persisted, each series is one run in time order, whichever write
    // (and form) its rows came in.
    let file = &store.manifest().files[0];
    let data = std::fs::read(fx.dir.join(&file.path)).expect("parquet file");
    let sorted = crate::persist::decode_parquet(&labelled_def(), data.into()).expect("decode");
    let sorted = arrow::compute::concat_batches(&labelled_def().schema, &sorted).expect("concat");
    let runs = series_runs(&sorted, |v| (v % 1000.0 / 100.0).floor());
    assert_eq!(runs, 3, "three series, three runs");
}

#[tokio::test]
async fn a_series_batch_that_does_not_fit_its_table_is_refused_and_nothing_is_written() {
    let fx = Fixture::new();
    let store = open(&fx).await;
    let good = series_batch(&SERIES, &interleaved_points(0.0));

    // An index past the series batch.
    let out_of_range = series_batch(&SERIES[..2], &interleaved_points(0.0));
    let err = store
        .write(WriteSet::new().with("labelled", out_of_range))
        .await
        .expect_err("index 2 of 2 series");
    assert!(
        matches!(&err, Error::InvalidBatch { detail, .. } if detail.contains("out of range")),
        "{err}"
    );

    // Series form for a table that declares no series columns.
    let err = store
        .write(WriteSet::new().with("events", good.clone()))
        .await
        .expect_err("events has no series columns");
    assert!(
        err.to_string().contains("with_series_columns"),
        "the error says what to do: {err}"
    );

    // The series columns in another order.
    let swapped = SeriesBatch::new(
        good.series().project(&[1, 0, 2]).expect("project"),
        good.points().clone(),
    );
    let err = store
        .write(WriteSet::new().with("labelled", swapped))
        .await
        .expect_err("wrong series schema");
    assert!(err.to_string().contains("series batch"), "{err}");

    // A signed index.
    let mut columns = good.points().columns().to_vec();
    columns[0] = Arc::new(arrow::array::Int32Array::from_iter_values(
        (0..columns[0].len()).map(|i| (i % 3) as i32),
    ));
    let signed = SeriesBatch::new(
        good.series().clone(),
        RecordBatch::try_new(
            schema(vec![
                Field::new("series", DataType::Int32, false),
                time_field(),
                Field::new("value", DataType::Float64, false),
            ]),
            columns,
        )
        .expect("batch"),
    );
    let err = store
        .write(WriteSet::new().with("labelled", signed))
        .await
        .expect_err("Int32 index");
    assert!(err.to_string().contains("points batch"), "{err}");

    assert_eq!(store.stats().wal_records, 0, "nothing reached the WAL");
    assert!(read_back(&store).await.is_empty(), "nothing is queryable");
}

/// Copies the version-1 WAL fixture into `dir/wal`.
pub(crate) fn install_v1_wal(dir: &Path) {
    let fixture = Path::new(
        &std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string()),
    )
    .join("tests/fixtures/wal-v1");
    let wal = dir.join("wal");
    std::fs::create_dir_all(&wal).expect("wal dir");
    for e in std::fs::read_dir(&fixture).expect("the fixture is in the repository") {
        let e = e.expect("fixture entry");
        std::fs::copy(e.path(), wal.join(e.file_name())).expect("copy fixture");
    }
}

/// The rows the fixture holds: record `r` (0 and 1) has 3 series × 4
/// steps; series 2 is `errors`, series 0 has no model.
fn fixture_rows() -> Vec<Row> {
    let mut rows = Vec::new();
    for record in 0..2i64 {
        for step in 0..4i64 {
            for series in 0..3i64 {
                rows.push(Row {
                    metric: if series == 2 { "errors" } else { "latency" }.into(),
                    instance: format!("host-{series}"),
                    le: "0.5".into(),
                    model: (series != 0).then(|| "fraud".into()),
                    value: (record * 1000 + series * 100 + step) as f64,
                    ts: micros(t0()) + (record * 10 + step) * 1_000_000,
                });
            }
        }
    }
    rows.sort_by(|a, b| a.value.total_cmp(&b.value));
    rows
}

#[tokio::test]
async fn a_wal_written_in_the_previous_format_replays() {
    let fx = Fixture::new();
    install_v1_wal(&fx.dir);
    let first = std::fs::read_dir(fx.dir.join("wal"))
        .expect("wal")
        .map(|e| std::fs::read(e.expect("entry").path()).expect("segment"))
        .next()
        .expect("one segment");
    assert_eq!(
        first[8 + 8],
        WAL_RECORD_VERSION_ROWS_ONLY,
        "the fixture's records are version 1"
    );

    let store = open(&fx).await;
    assert_eq!(read_back(&store).await, fixture_rows(), "version-1 records");
    assert_eq!(
        crate::tests::count(&store, "events").await,
        1,
        "the second table of record 2"
    );

    // New records (version 2, series form) follow the old ones.
    let points: Vec<(u32, i64, f64)> = (0..3u32).map(|s| (s, 100, 5000.0 + f64::from(s))).collect();
    store
        .write(WriteSet::new().with("labelled", series_batch(&SERIES, &points)))
        .await
        .expect("write after replay");
    let mut want = fixture_rows();
    want.extend(expected(&SERIES, &points));
    drop(store);
    let store = open(&fx).await;
    assert_eq!(
        read_back(&store).await,
        want,
        "both formats replay together"
    );
    store.persist_now().await.expect("persist");
    assert_eq!(read_back(&store).await, want, "and persist together");
    assert_eq!(crate::tests::count(&store, "events").await, 1);
}

mod sort {
    use proptest::prelude::*;

    use super::*;

    const POOL: [Series; 5] = [
        ("a", "x", Some("m")),
        ("a", "y", Some("m")),
        ("a", "x", None),
        ("b", "x", Some("m")),
        ("a", "x", Some("m")),
    ];

    /// One write: its series (picked from the pool, repeats allowed), its
    /// points, and whether it arrives whole.
    fn chunk() -> impl Strategy<Value = (Vec<usize>, Vec<(usize, i64, f64)>, bool)> {
        prop::collection::vec(0..POOL.len(), 1..4).prop_flat_map(|series| {
            let n = series.len();
            (
                Just(series),
                prop::collection::vec((0..n, 0i64..7_300, -5.0f64..5.0), 0..12),
                any::<bool>(),
            )
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

        /// Sorting series once and rows by integer keys gives exactly the
        /// files that sorting whole rows gives, for any mix of forms,
        /// repeated series and hours.
        #[test]
        fn series_sort_matches_whole_row_sort(chunks in prop::collection::vec(chunk(), 1..4)) {
            let with_series = labelled_def();
            let rows_only = TableDef::new("labelled", with_series.schema.clone())
                .with_sort_key(with_series.sort_key.clone());
            let mut mixed = Vec::new();
            let mut whole = Vec::new();
            for (picked, points, as_rows) in &chunks {
                let series: Vec<Series> = picked.iter().map(|&i| POOL[i]).collect();
                let points: Vec<(u32, i64, f64)> =
                    points.iter().map(|&(s, t, v)| (s as u32, t, v)).collect();
                let rows = rows_batch(&series, &points);
                whole.push(TableRows::Rows(rows.clone()));
                mixed.push(if *as_rows {
                    TableRows::Rows(rows)
                } else {
                    TableRows::Series(series_batch(&series, &points))
                });
            }
            let by_series = crate::persist::sort_and_split(&with_series, &mixed).expect("series sort");
            let by_rows = crate::persist::sort_and_split(&rows_only, &whole).expect("row sort");
            prop_assert_eq!(by_series, by_rows);
        }
    }
}

#[tokio::test]
async fn a_partition_larger_than_a_row_group_is_written_piece_by_piece() {
    let fx = Fixture::new();
    let store = open(&fx).await;
    // 3 series × 40,000 points in one hour: 120,000 rows, two row groups.
    let steps = 40_000i64;
    let points: Vec<(u32, i64, f64)> = (0..steps)
        .flat_map(|step| {
            (0..3u32).map(move |s| (s, step % 3_600, (s as i64 * steps + step) as f64))
        })
        .collect();
    store
        .write(WriteSet::new().with("labelled", series_batch(&SERIES, &points)))
        .await
        .expect("write");
    let outcome = store.persist_now().await.expect("persist");
    assert_eq!((outcome.files, outcome.rows), (1, 120_000));
    let file = &store.manifest().files[0];
    // The manifest's summary covers every piece, not only the last one.
    let metric = &file.columns["metric"];
    assert_eq!(metric.min.as_deref(), Some("errors"));
    assert_eq!(metric.max.as_deref(), Some("latency"));
    let model = &file.columns["model"];
    assert!(model.has_nulls, "series 1 has no model");
    assert_eq!(
        model
            .values
            .as_ref()
            .map(|v| v.iter().cloned().collect::<Vec<_>>()),
        Some(vec!["fraud".to_string()])
    );
    assert_eq!(
        (file.min_ts, file.max_ts),
        (micros(t0()), micros(t0()) + 3_599_000_000)
    );
    let data = std::fs::read(fx.dir.join(&file.path)).expect("parquet file");
    let reader = parquet::file::reader::SerializedFileReader::new(bytes::Bytes::from(data.clone()))
        .expect("parquet");
    use parquet::file::reader::FileReader;
    assert_eq!(reader.metadata().num_row_groups(), 2);
    // Rows come back in sort order: each series one run, in time order.
    let rows = crate::persist::decode_parquet(&labelled_def(), data.into()).expect("decode");
    let rows = arrow::compute::concat_batches(&labelled_def().schema, &rows).expect("concat");
    let runs = series_runs(&rows, |v| (v / steps as f64).floor());
    assert_eq!(runs, 3);
    assert_eq!(
        sum_of_values(&store).await,
        points.iter().map(|p| p.2).sum::<f64>()
    );
}
