//! Promoted keys: a column that copies one key of a map, declared on a
//! table that already has history. Rows stored before the declaration (a
//! Parquet file, a WAL record of either format) read back with the column
//! filled from their map; compaction rewrites them in today's shape.

use std::sync::Arc;

use arrow::array::builder::{MapBuilder, StringBuilder};
use arrow::array::{ArrayRef, AsArray, Float64Array, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field};
use arrow::record_batch::RecordBatch;

use crate::series_tests::{install_v1_wal, labelled_def, labels_type};
use crate::tests::{Fixture, config, events_def, micros, scalar_i64, t0};
use crate::*;

/// `labelled` as it is declared once `le` is promoted out of `labels`.
fn promoted_def() -> TableDef {
    let old = labelled_def();
    let fields: Vec<Field> = old
        .schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .chain([Field::new("le", DataType::Utf8, true)])
        .collect();
    TableDef::new("labelled", schema(fields))
        .with_sort_key(old.sort_key.clone())
        .with_index_columns(old.index_columns.clone())
        .with_series_columns(["metric", "labels", "model", "le"])
        .with_promoted_keys("labels", ["le"])
}

/// A series: metric, `le` label (absent when `None`), model.
type Series = (&'static str, Option<&'static str>, Option<&'static str>);

const SERIES: [Series; 3] = [
    ("latency_bucket", Some("0.5"), Some("fraud")),
    ("latency_bucket", Some("+Inf"), Some("fraud")),
    ("requests", None, None),
];

/// Every series at `steps` seconds after t0 (value: `base`, plus 100 per
/// series, plus the step), as whole rows in `def`'s shape: with the `le`
/// column when the table has one.
fn rows(def: &TableDef, base: f64, steps: std::ops::Range<i64>) -> RecordBatch {
    let points: Vec<(Series, i64, f64)> = steps
        .flat_map(|step| {
            SERIES
                .iter()
                .enumerate()
                .map(move |(i, s)| (*s, step, base + i as f64 * 100.0 + step as f64))
        })
        .collect();
    let mut labels = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
    for (s, _, _) in &points {
        labels.keys().append_value("instance");
        labels.values().append_value("host-0");
        if let Some(le) = s.1 {
            labels.keys().append_value("le");
            labels.values().append_value(le);
        }
        labels.append(true).expect("map row");
    }
    let labels: ArrayRef = Arc::new(labels.finish());
    let columns = def
        .schema
        .fields()
        .iter()
        .map(|f| -> ArrayRef {
            match f.name().as_str() {
                "ts" => Arc::new(
                    TimestampMicrosecondArray::from_iter_values(
                        points.iter().map(|p| micros(t0()) + p.1 * 1_000_000),
                    )
                    .with_timezone("UTC"),
                ),
                "metric" => Arc::new(StringArray::from_iter_values(points.iter().map(|p| p.0.0))),
                "labels" => labels.clone(),
                "model" => Arc::new(StringArray::from_iter(points.iter().map(|p| p.0.2))),
                "value" => Arc::new(Float64Array::from_iter_values(points.iter().map(|p| p.2))),
                "le" => Arc::new(StringArray::from_iter(points.iter().map(|p| p.0.1))),
                other => panic!("no test data for column {other}"),
            }
        })
        .collect();
    RecordBatch::try_new(def.schema.clone(), columns).expect("rows")
}

/// The same rows in series form.
fn series_form(def: &TableDef, base: f64, steps: std::ops::Range<i64>) -> SeriesBatch {
    TableRows::Rows(rows(def, base, steps))
        .to_series(def)
        .expect("series form")
}

async fn open(fx: &Fixture, def: TableDef) -> HistoryStore {
    HistoryStore::open(&fx.dir, vec![def, events_def()], config(fx.clock.clone()))
        .await
        .expect("open store")
}

async fn count(store: &HistoryStore, filter: &str) -> i64 {
    scalar_i64(
        store,
        &format!("SELECT count(*) FROM labelled WHERE {filter}"),
    )
    .await
}

/// What the table answers about `le`: rows per bucket, rows without one,
/// and rows whose column disagrees with their map.
async fn le_answers(store: &HistoryStore) -> [i64; 4] {
    [
        count(store, "le = '0.5'").await,
        count(store, "le = '+Inf'").await,
        count(store, "le IS NULL").await,
        count(store, "le IS DISTINCT FROM labels['le']").await,
    ]
}

#[tokio::test]
async fn a_key_promoted_later_reads_back_from_old_files_old_wal_records_and_new_rows() {
    let fx = Fixture::new();
    // Before the promotion: one hour persisted, the next hour in the WAL
    // (one record whole, one in series form).
    let old = labelled_def();
    let store = open(&fx, old.clone()).await;
    store
        .write(WriteSet::new().with("labelled", series_form(&old, 0.0, 0..4)))
        .await
        .expect("old-shape write");
    store.persist_now().await.expect("persist the old shape");
    store
        .write(WriteSet::new().with("labelled", rows(&old, 1000.0, 3600..3604)))
        .await
        .expect("old-shape rows");
    store
        .write(WriteSet::new().with("labelled", series_form(&old, 2000.0, 3610..3614)))
        .await
        .expect("old-shape series");
    drop(store);

    // After it: the WAL replays into today's shape, the old file is read
    // through the map, and new rows carry the column themselves.
    let new = promoted_def();
    let store = open(&fx, new.clone()).await;
    store
        .write(WriteSet::new().with("labelled", series_form(&new, 3000.0, 7200..7204)))
        .await
        .expect("new-shape write");
    // 4 writes × 4 steps: each bucket series 16 rows, `requests` 16 rows.
    let want = [16, 16, 16, 0];
    assert_eq!(
        le_answers(&store).await,
        want,
        "old file, replayed WAL, buffer"
    );
    // A filter on the column must not prune the file that lacks it.
    assert_eq!(
        count(
            &store,
            "le = '0.5' AND ts < TIMESTAMP '2026-01-01 00:30:00'"
        )
        .await,
        4
    );

    store.persist_now().await.expect("persist");
    assert_eq!(le_answers(&store).await, want, "old and new files");
    let old_files = store.manifest().files.len();
    assert!(old_files >= 3, "one file per hour: {old_files}");

    // Compaction rewrites every hour's files in today's shape.
    store
        .write(WriteSet::new().with("labelled", series_form(&new, 4000.0, 5..9)))
        .await
        .expect("a second file in the first hour");
    store.persist_now().await.expect("persist");
    let outcome = store.compact_now().await.expect("compact");
    assert!(outcome.files_in >= 2, "{outcome:?}");
    let want = [20, 20, 20, 0];
    assert_eq!(le_answers(&store).await, want, "after compaction");
    let columns = first_hour_columns(&fx, &store, "labelled");
    assert!(
        columns.iter().any(|c| c == "le"),
        "the compacted file has the promoted column: {columns:?}"
    );
}

/// The column names of `table`'s Parquet file for the first hour.
fn first_hour_columns(fx: &Fixture, store: &HistoryStore, table: &str) -> Vec<String> {
    let first_hour = store
        .manifest()
        .files
        .into_iter()
        .find(|f| f.table == table && f.partition_hour == micros(t0()))
        .expect("the first hour's file");
    let data = std::fs::read(fx.dir.join(&first_hour.path)).expect("parquet");
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        bytes::Bytes::from(data),
    )
    .expect("footer");
    reader
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect()
}

#[tokio::test]
async fn a_wal_of_the_previous_format_replays_into_a_promoted_key() {
    let fx = Fixture::new();
    install_v1_wal(&fx.dir);
    let store = open(&fx, promoted_def()).await;
    // Every row of the fixture has `le` 0.5 in its labels.
    assert_eq!(count(&store, "le = '0.5'").await, 24);
    assert_eq!(count(&store, "le IS DISTINCT FROM labels['le']").await, 0);
}

#[test]
fn a_promoted_key_is_checked_against_its_table() {
    let base = promoted_def();
    let with = |fields: Vec<Field>| TableDef::new("labelled", schema(fields));
    let mut fields: Vec<Field> = base
        .schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let no_column = with(fields[..fields.len() - 1].to_vec()).with_promoted_keys("labels", ["le"]);
    let not_a_map = with(fields.clone()).with_promoted_keys("metric", ["le"]);
    let outside_series = with(fields.clone())
        .with_series_columns(["metric", "labels", "model"])
        .with_promoted_keys("labels", ["le"]);
    *fields.last_mut().expect("le") = Field::new("le", DataType::Utf8, false);
    let not_nullable = with(fields.clone()).with_promoted_keys("labels", ["le"]);
    for (def, says) in [
        (no_column, "add a nullable Utf8 column `le`"),
        (not_a_map, "must map Utf8 to Utf8"),
        (outside_series, "series column exactly when its map"),
        (not_nullable, "must be nullable Utf8"),
    ] {
        let err = def.validate().expect_err(says);
        assert!(err.to_string().contains(says), "{err} should say {says}");
    }
    base.validate().expect("the good declaration");
    assert_eq!(
        labels_type(),
        *base.schema.field_with_name("labels").unwrap().data_type()
    );
}

#[test]
fn extract_takes_the_key_or_null() {
    let mut b = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
    for entries in [&[("a", "1"), ("le", "0.5")][..], &[("a", "2")], &[]] {
        for (k, v) in entries {
            b.keys().append_value(k);
            b.values().append_value(v);
        }
        b.append(true).expect("row");
    }
    b.append(false).expect("a null map");
    let got = crate::promoted::extract(&b.finish(), "le").expect("extract");
    let got = got.as_string::<i32>();
    assert_eq!(
        got.iter().collect::<Vec<_>>(),
        vec![Some("0.5"), None, None, None]
    );
    let not_a_map = StringArray::from(vec!["x"]);
    assert!(crate::promoted::extract(&not_a_map, "le").is_err());
}

/// `events` with two nullable columns added to its declaration, and rows
/// of that shape (`detail` set, `score` null).
fn events_with_added_columns() -> TableDef {
    let old = events_def();
    let fields: Vec<Field> = old
        .schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .chain([
            Field::new("detail", DataType::Utf8, true),
            Field::new("score", DataType::Float64, true),
        ])
        .collect();
    TableDef::new("events", schema(fields))
        .with_index_columns(old.index_columns.clone())
        .with_retention(old.retention.expect("events has a retention"))
}

fn events_rows(def: &TableDef, start: i64, n: usize) -> RecordBatch {
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(
            TimestampMicrosecondArray::from((0..n as i64).map(|i| start + i).collect::<Vec<_>>())
                .with_timezone("UTC"),
        ),
        Arc::new(StringArray::from(vec![Some("fraud"); n])),
        Arc::new(StringArray::from(vec!["e"; n])),
    ];
    if def.schema.index_of("detail").is_ok() {
        columns.push(Arc::new(StringArray::from(vec![Some("new"); n])));
        columns.push(arrow::array::new_null_array(&DataType::Float64, n));
    }
    RecordBatch::try_new(def.schema.clone(), columns).expect("valid batch")
}

async fn open_events(fx: &Fixture, events: TableDef) -> HistoryStore {
    HistoryStore::open(
        &fx.dir,
        vec![labelled_def(), events],
        config(fx.clock.clone()),
    )
    .await
    .expect("open store")
}

/// `[rows, detail null, detail = 'new', score not null]` of `events`.
async fn events_answers(store: &HistoryStore) -> [i64; 4] {
    let mut out = [0; 4];
    for (slot, filter) in [
        "true",
        "detail IS NULL",
        "detail = 'new'",
        "score IS NOT NULL",
    ]
    .into_iter()
    .enumerate()
    {
        out[slot] = scalar_i64(
            store,
            &format!("SELECT count(*) FROM events WHERE {filter}"),
        )
        .await;
    }
    out
}

#[tokio::test]
async fn a_nullable_column_added_later_reads_back_as_null_from_old_files_and_old_wal_records() {
    let fx = Fixture::new();
    let old = events_def();
    let store = open_events(&fx, old.clone()).await;
    let t = micros(t0());
    store
        .write(WriteSet::new().with("events", events_rows(&old, t, 3)))
        .await
        .expect("old-shape rows");
    store.persist_now().await.expect("persist the old shape");
    store
        .write(WriteSet::new().with("events", events_rows(&old, t + 3_600_000_000, 2)))
        .await
        .expect("old-shape rows in the WAL");
    drop(store);

    let new = events_with_added_columns();
    let store = open_events(&fx, new.clone()).await;
    store
        .write(WriteSet::new().with("events", events_rows(&new, t + 10, 4)))
        .await
        .expect("new-shape rows");
    // Written without the columns → null; written with them → theirs.
    let want = [9, 5, 4, 0];
    assert_eq!(
        events_answers(&store).await,
        want,
        "old file, replayed WAL, buffer"
    );
    // A filter on an added column keeps the old rows out, not the new ones.
    assert_eq!(
        scalar_i64(
            &store,
            "SELECT count(*) FROM events WHERE detail = 'new' AND ts < TIMESTAMP '2026-01-01 00:30:00'"
        )
        .await,
        4
    );

    store.persist_now().await.expect("persist");
    assert_eq!(events_answers(&store).await, want, "old and new files");
    let outcome = store.compact_now().await.expect("compact");
    assert!(outcome.files_in >= 2, "{outcome:?}");
    assert_eq!(events_answers(&store).await, want, "after compaction");
    let columns = first_hour_columns(&fx, &store, "events");
    assert!(
        columns.iter().any(|c| c == "detail"),
        "the compacted file has the added column: {columns:?}"
    );
}

#[test]
fn a_column_added_without_being_nullable_is_not_filled() {
    let old = events_def();
    let mut fields: Vec<Field> = old
        .schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("required", DataType::Utf8, false));
    let strict = TableDef::new("events", schema(fields));
    let rows = strict
        .upgrade_rows(TableRows::Rows(events_rows(&old, 0, 2)))
        .expect("upgrade");
    let err = strict
        .check_rows(rows)
        .expect_err("a missing non-nullable column");
    assert!(err.to_string().contains("events"), "{err}");
}
