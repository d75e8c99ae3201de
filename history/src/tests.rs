//! Store-level tests: WAL, recovery, persist, compaction, retention,
//! queries, back-pressure. No sleeps: time moves by the manual clock and
//! concurrency is forced with the WAL writer's test gate.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use arrow::array::{Array, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, TimeZone, Utc};

use crate::*;
use modelwatch_types::{Clock, ManualClock};

pub(crate) fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .expect("valid date")
}

pub(crate) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn samples_def() -> TableDef {
    TableDef::new(
        "samples",
        schema(vec![
            time_field(),
            Field::new("model", DataType::Utf8, true),
            Field::new("version", DataType::Utf8, true),
            Field::new("metric", DataType::Utf8, false),
            Field::new("value", DataType::Float64, false),
        ]),
    )
    .with_sort_key(["model", "version", "metric", "ts"])
    .with_index_columns(["model", "version"])
}

pub(crate) fn events_def() -> TableDef {
    TableDef::new(
        "events",
        schema(vec![
            time_field(),
            Field::new("model", DataType::Utf8, true),
            Field::new("note", DataType::Utf8, false),
        ]),
    )
    .with_index_columns(["model"])
    .with_retention(Duration::from_secs(24 * 3600))
}

/// `n` rows of `model`/`version`, one every `step_us` from `start`.
fn samples(model: &str, version: &str, start: i64, n: usize, step_us: i64) -> RecordBatch {
    let def = samples_def();
    let ts: Vec<i64> = (0..n as i64).map(|i| start + i * step_us).collect();
    RecordBatch::try_new(
        def.schema.clone(),
        vec![
            Arc::new(TimestampMicrosecondArray::from(ts).with_timezone("UTC")),
            Arc::new(StringArray::from(vec![Some(model); n])),
            Arc::new(StringArray::from(vec![Some(version); n])),
            Arc::new(StringArray::from(
                (0..n).map(|i| format!("m{}", i % 3)).collect::<Vec<_>>(),
            )),
            Arc::new(Float64Array::from(
                (0..n).map(|i| i as f64).collect::<Vec<_>>(),
            )),
        ],
    )
    .expect("valid batch")
}

fn events(model: &str, start: i64, n: usize) -> RecordBatch {
    let def = events_def();
    RecordBatch::try_new(
        def.schema.clone(),
        vec![
            Arc::new(
                TimestampMicrosecondArray::from(
                    (0..n as i64).map(|i| start + i).collect::<Vec<_>>(),
                )
                .with_timezone("UTC"),
            ),
            Arc::new(StringArray::from(vec![Some(model); n])),
            Arc::new(StringArray::from(vec!["e"; n])),
        ],
    )
    .expect("valid batch")
}

pub(crate) fn config(clock: Arc<ManualClock>) -> HistoryConfig {
    HistoryConfig {
        clock,
        wal_segment_max_bytes: 1 << 20,
        persist_buffer_bytes: 64 << 20,
        persist_max_age: Duration::from_secs(60),
        compaction_small_file_bytes: 1 << 20,
        compaction_min_files: 2,
        file_delete_grace: Duration::ZERO,
        ..HistoryConfig::default()
    }
}

pub(crate) struct Fixture {
    _tmp: tempfile::TempDir,
    pub dir: PathBuf,
    pub clock: Arc<ManualClock>,
}

impl Fixture {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("data");
        Self {
            _tmp: tmp,
            dir,
            clock: Arc::new(ManualClock::new(t0())),
        }
    }

    async fn open(&self) -> HistoryStore {
        self.open_with(config(self.clock.clone())).await
    }

    async fn open_with(&self, cfg: HistoryConfig) -> HistoryStore {
        HistoryStore::open(&self.dir, vec![samples_def(), events_def()], cfg)
            .await
            .expect("open store")
    }
}

pub(crate) async fn scalar_i64(store: &HistoryStore, sql: &str) -> i64 {
    let ctx = store.session_context().expect("context");
    let batches = ctx
        .sql(sql)
        .await
        .expect("plan")
        .collect()
        .await
        .expect("run");
    let b = &batches[0];
    b.column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("int64 result")
        .value(0)
}

pub(crate) async fn count(store: &HistoryStore, table: &str) -> i64 {
    scalar_i64(store, &format!("SELECT count(*) FROM {table}")).await
}

/// The full, ordered content of `sql`'s result as text.
async fn rows(store: &HistoryStore, sql: &str) -> String {
    let ctx = store.session_context().expect("context");
    let batches = ctx
        .sql(sql)
        .await
        .expect("plan")
        .collect()
        .await
        .expect("run");
    arrow::util::pretty::pretty_format_batches(&batches)
        .expect("format")
        .to_string()
}

/// Writes and persists `n` files of 50 rows each, models `m0`, `m1`, …,
/// all in one hour partition.
async fn small_files(store: &HistoryStore, n: i64) {
    for i in 0..n {
        store
            .write_batch(
                "samples",
                samples(&format!("m{i}"), "1", micros(t0()) + i * 1000, 50, 1),
            )
            .await
            .expect("write");
        store.persist_now().await.expect("persist");
    }
}

fn wal_segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("wal"))
        .expect("wal dir")
        .map(|e| e.expect("entry").path())
        .collect();
    v.sort();
    v
}

fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    fn walk(p: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|x| x == "parquet") {
                out.push(path);
            }
        }
    }
    let mut v = Vec::new();
    walk(&dir.join("tables"), &mut v);
    v.sort();
    v
}

// ---------------------------------------------------------------- WAL

#[tokio::test]
async fn wal_round_trip_across_reopen() {
    let fx = Fixture::new();
    let store = fx.open().await;
    let mut last = 0;
    for i in 0..10 {
        let r = store
            .write(
                WriteSet::new()
                    .with("samples", samples("a", "1", micros(t0()) + i * 1000, 5, 1))
                    .with("events", events("a", micros(t0()) + i, 2)),
            )
            .await
            .expect("write");
        let seq = r.seq.expect("logged");
        assert!(seq > last, "sequence numbers increase");
        last = seq;
        assert_eq!(r.rows, 7);
    }
    assert_eq!(
        count(&store, "samples").await,
        50,
        "read-your-writes from the buffer"
    );
    drop(store);
    let store = fx.open().await;
    assert_eq!(count(&store, "samples").await, 50);
    assert_eq!(count(&store, "events").await, 20);
    // Sequence numbers continue after a restart.
    let r = store
        .write_batch("events", events("a", 0, 1))
        .await
        .expect("write");
    assert_eq!(r.seq, Some(last + 1));
}

#[tokio::test]
async fn empty_write_logs_nothing() {
    let fx = Fixture::new();
    let store = fx.open().await;
    let r = store.write(WriteSet::new()).await.expect("empty write");
    assert_eq!(r, WriteReceipt { seq: None, rows: 0 });
    assert_eq!(store.stats().wal_records, 0);
}

// The gate is a std mutex held on purpose across `poll!`, which never
// suspends: it only polls each write once so that it is queued.
#[allow(clippy::await_holding_lock)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_shares_fsyncs() {
    let fx = Fixture::new();
    let store = fx.open().await;
    const WRITES: usize = 200;
    let mut futs: Vec<_> = (0..WRITES)
        .map(|i| {
            let s = store.clone();
            Box::pin(async move {
                s.write_batch("samples", samples("a", "1", micros(t0()) + i as i64, 1, 1))
                    .await
            })
        })
        .collect();
    {
        // Hold the writer: every write is queued before any is committed.
        let _gate = store.hold_wal_writer();
        for f in &mut futs {
            let polled = futures::poll!(f.as_mut());
            assert!(
                polled.is_pending(),
                "a write cannot be acknowledged before its fsync"
            );
        }
    }
    let results = futures::future::join_all(futs).await;
    let mut seqs: Vec<u64> = results
        .into_iter()
        .map(|r| r.expect("acknowledged").seq.expect("logged"))
        .collect();
    seqs.sort();
    seqs.dedup();
    assert_eq!(seqs.len(), WRITES, "every write got its own record");
    let st = store.stats();
    assert_eq!(st.wal_records, WRITES as u64);
    assert!(
        st.wal_fsyncs <= 2,
        "queued writes share fsyncs, got {}",
        st.wal_fsyncs
    );
    assert_eq!(count(&store, "samples").await, WRITES as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_are_all_acknowledged() {
    let fx = Fixture::new();
    let store = fx.open().await;
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let s = store.clone();
            tokio::spawn(async move {
                for i in 0..25 {
                    s.write_batch(
                        "samples",
                        samples(&format!("m{t}"), "1", micros(t0()) + i, 2, 1),
                    )
                    .await
                    .expect("write");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    let st = store.stats();
    assert_eq!(st.wal_records, 200);
    assert!(st.wal_fsyncs <= st.wal_records);
    assert_eq!(count(&store, "samples").await, 400);
}

#[tokio::test]
async fn segments_rotate_by_size_and_go_after_persist() {
    let fx = Fixture::new();
    let mut cfg = config(fx.clock.clone());
    cfg.wal_segment_max_bytes = 8 * 1024;
    let store = fx.open_with(cfg.clone()).await;
    for i in 0..40 {
        store
            .write_batch("samples", samples("a", "1", micros(t0()) + i * 100, 50, 1))
            .await
            .expect("write");
    }
    let segs = wal_segments(&fx.dir);
    assert!(segs.len() > 3, "segments rotate, got {segs:?}");
    assert_eq!(store.stats().wal_segments, segs.len() as u64);
    drop(store);
    // Replay reads every segment in order.
    let store = fx.open_with(cfg).await;
    assert_eq!(count(&store, "samples").await, 2000);
    store.persist_now().await.expect("persist");
    assert_eq!(
        wal_segments(&fx.dir).len(),
        1,
        "only the fresh active segment is left"
    );
    assert_eq!(count(&store, "samples").await, 2000);
}

/// Write 10 records, then damage the last one with `damage`.
async fn torn_tail_case(damage: impl FnOnce(&Path)) {
    let fx = Fixture::new();
    let store = fx.open().await;
    for i in 0..10 {
        store
            .write_batch("samples", samples("a", "1", micros(t0()) + i * 100, 10, 1))
            .await
            .expect("write");
    }
    drop(store);
    let segs = wal_segments(&fx.dir);
    let last = segs.last().expect("a segment");
    damage(last);
    let store = fx.open().await;
    assert_eq!(
        count(&store, "samples").await,
        90,
        "the damaged record is dropped, the rest kept"
    );
    assert_eq!(store.stats().torn_tails_dropped, 1);
    // New writes after recovery survive another restart.
    store
        .write_batch("samples", samples("b", "1", micros(t0()), 5, 1))
        .await
        .expect("write after recovery");
    drop(store);
    let store = fx.open().await;
    assert_eq!(count(&store, "samples").await, 95);
    assert_eq!(store.stats().torn_tails_dropped, 0, "the tail was repaired");
}

#[tokio::test]
async fn torn_tail_truncated_mid_record() {
    torn_tail_case(|p| {
        let len = std::fs::metadata(p).expect("meta").len();
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(p)
            .expect("open");
        f.set_len(len - 37).expect("truncate");
    })
    .await;
}

#[tokio::test]
async fn torn_tail_with_flipped_bytes() {
    torn_tail_case(|p| {
        let mut data = std::fs::read(p).expect("read");
        let n = data.len();
        for b in &mut data[n - 20..n - 10] {
            *b ^= 0xA5;
        }
        std::fs::write(p, data).expect("write");
    })
    .await;
}

#[tokio::test]
async fn torn_tail_truncated_and_flipped() {
    torn_tail_case(|p| {
        let mut data = std::fs::read(p).expect("read");
        let n = data.len();
        data.truncate(n - 5);
        let n = data.len();
        data[n - 1] ^= 0xFF;
        std::fs::write(p, data).expect("write");
    })
    .await;
}

#[tokio::test]
async fn garbage_record_length_is_a_torn_tail() {
    let fx = Fixture::new();
    let store = fx.open().await;
    for i in 0..3 {
        store
            .write_batch("samples", samples("a", "1", micros(t0()) + i, 4, 1))
            .await
            .expect("write");
    }
    drop(store);
    let last = wal_segments(&fx.dir).pop().expect("segment");
    let mut data = std::fs::read(&last).expect("read");
    // A huge declared length followed by a few bytes.
    data.extend_from_slice(&u32::MAX.to_le_bytes());
    data.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8, 9]);
    std::fs::write(&last, data).expect("write");
    let store = fx.open().await;
    assert_eq!(count(&store, "samples").await, 12);
    assert_eq!(store.stats().torn_tails_dropped, 1);
}

#[tokio::test]
async fn corruption_before_the_tail_is_refused() {
    let fx = Fixture::new();
    let mut cfg = config(fx.clock.clone());
    cfg.wal_segment_max_bytes = 4 * 1024;
    let store = fx.open_with(cfg.clone()).await;
    for i in 0..20 {
        store
            .write_batch("samples", samples("a", "1", micros(t0()) + i, 20, 1))
            .await
            .expect("write");
    }
    drop(store);
    let segs = wal_segments(&fx.dir);
    assert!(segs.len() >= 3);
    let mut data = std::fs::read(&segs[0]).expect("read");
    let n = data.len();
    data[n - 3] ^= 0xFF;
    std::fs::write(&segs[0], data).expect("write");
    let err = HistoryStore::open(&fx.dir, vec![samples_def(), events_def()], cfg)
        .await
        .expect_err("mid-log corruption is not silently dropped");
    assert!(matches!(err, Error::WalCorrupt { .. }), "{err}");
    assert!(err.to_string().contains("move the segment aside"));
}

#[test]
fn record_frame_round_trip() {
    let defs = vec![samples_def(), events_def()];
    let entries: Vec<(usize, TableRows)> = vec![
        (0, samples("a", "1", 5, 3, 1).into()),
        (1, events("b", 7, 2).into()),
    ];
    let body = wal::encode_body(&entries, &defs).expect("encode");
    let mut frame = Vec::new();
    wal::encode_frame(42, &body, &mut frame);
    let len = u32::from_le_bytes(frame[0..4].try_into().expect("4 bytes")) as usize;
    assert_eq!(len, frame.len() - 8);
    let crc = u32::from_le_bytes(frame[4..8].try_into().expect("4 bytes"));
    assert_eq!(crc, crc32c::crc32c(&frame[8..]));
    assert_eq!(frame[8], WAL_RECORD_VERSION);
    let rec = wal::decode_payload(&frame[8..], &defs).expect("decode");
    assert_eq!(rec.seq, 42);
    assert_eq!(rec.entries.len(), 2);
    assert_eq!(rec.entries[0].1, entries[0].1);
    assert_eq!(rec.entries[1].1, entries[1].1);
    // An undeclared table in the WAL is an explicit error.
    let err = wal::decode_payload(&frame[8..], &defs[..1]).expect_err("events undeclared");
    assert!(matches!(err, Error::WalTableMismatch { .. }), "{err}");
}

// ---------------------------------------------------------------- recovery

#[tokio::test]
async fn persist_then_reopen_has_no_duplicates() {
    let fx = Fixture::new();
    let store = fx.open().await;
    store
        .write(
            WriteSet::new()
                .with("samples", samples("a", "1", micros(t0()), 100, 1))
                .with("events", events("a", micros(t0()), 10)),
        )
        .await
        .expect("write");
    let out = store.persist_now().await.expect("persist");
    assert_eq!(out.rows, 110);
    store
        .write_batch("samples", samples("a", "2", micros(t0()), 7, 1))
        .await
        .expect("write");
    drop(store);
    let store = fx.open().await;
    assert_eq!(count(&store, "samples").await, 107);
    assert_eq!(count(&store, "events").await, 10);
    assert_eq!(
        store.stats().buffer_rows,
        7,
        "only the unpersisted record is replayed"
    );
}

#[tokio::test]
async fn crash_between_manifest_commit_and_wal_truncation() {
    let fx = Fixture::new();
    let store = fx.open().await;
    for i in 0..5 {
        store
            .write_batch("samples", samples("a", "1", micros(t0()) + i * 10, 10, 1))
            .await
            .expect("write");
    }
    // Keep the WAL as it was before the persist deletes it.
    let saved: Vec<(PathBuf, Vec<u8>)> = wal_segments(&fx.dir)
        .into_iter()
        .map(|p| {
            let d = std::fs::read(&p).expect("read");
            (p, d)
        })
        .collect();
    store.persist_now().await.expect("persist");
    drop(store);
    // Simulate the crash: the manifest is committed, the WAL is not truncated.
    for (p, d) in &saved {
        std::fs::write(p, d).expect("restore segment");
    }
    let store = fx.open().await;
    assert_eq!(
        count(&store, "samples").await,
        50,
        "persisted records are not replayed again"
    );
    assert_eq!(store.stats().buffer_rows, 0);
    store
        .write_batch("samples", samples("a", "1", micros(t0()), 1, 1))
        .await
        .expect("write");
    drop(store);
    let store = fx.open().await;
    assert_eq!(count(&store, "samples").await, 51);
}

#[tokio::test]
async fn orphan_files_are_removed_on_open() {
    let fx = Fixture::new();
    let store = fx.open().await;
    store
        .write_batch("samples", samples("a", "1", micros(t0()), 10, 1))
        .await
        .expect("write");
    store.persist_now().await.expect("persist");
    drop(store);
    let orphan = fx
        .dir
        .join("tables/samples/date=2026-01-01/hour=00/99999999999999999999.parquet");
    std::fs::write(&orphan, b"left by a crash").expect("write orphan");
    let staging = fx
        .dir
        .join("tables/samples/date=2026-01-01/hour=00/00000000000000000007.parquet#3");
    std::fs::write(&staging, b"partial upload").expect("write staging file");
    let store = fx.open().await;
    assert!(!orphan.exists(), "orphan deleted");
    assert!(!staging.exists(), "partial upload deleted");
    assert_eq!(parquet_files(&fx.dir).len(), 1);
    assert_eq!(count(&store, "samples").await, 10);
}

#[tokio::test]
async fn second_open_of_the_same_directory_is_refused() {
    let fx = Fixture::new();
    let _store = fx.open().await;
    let err = HistoryStore::open(&fx.dir, vec![samples_def()], config(fx.clock.clone()))
        .await
        .expect_err("locked");
    assert!(matches!(err, Error::Locked { .. }), "{err}");
}

// ---------------------------------------------------------------- persist, compaction, retention

#[tokio::test]
async fn persist_by_age_with_manual_clock() {
    let fx = Fixture::new();
    let store = fx.open().await;
    store
        .write_batch("samples", samples("a", "1", micros(t0()), 1000, 1000))
        .await
        .expect("write");
    assert!(!store.persist_due());
    assert_eq!(store.persist_if_due().await.expect("check"), None);
    fx.clock.advance(chrono::Duration::seconds(59));
    assert!(!store.persist_due());
    let sql = "SELECT model, version, metric, count(*) AS n, sum(value) AS s FROM samples \
               GROUP BY model, version, metric ORDER BY metric";
    let before = rows(&store, sql).await;
    fx.clock.advance(chrono::Duration::seconds(1));
    assert!(store.persist_due());
    let out = store
        .persist_if_due()
        .await
        .expect("persist")
        .expect("was due");
    assert_eq!(out.rows, 1000);
    assert_eq!(out.files, 1);
    let st = store.stats();
    assert_eq!(st.buffer_rows, 0);
    assert_eq!(st.persisted_rows, 1000);
    assert_eq!(st.last_persist, Some(fx.clock.now()));
    assert_eq!(
        rows(&store, sql).await,
        before,
        "same answer from Parquet as from the buffer"
    );
    let files = parquet_files(&fx.dir);
    assert_eq!(files.len(), 1);
    let rel = files[0]
        .strip_prefix(&fx.dir)
        .expect("inside")
        .to_string_lossy()
        .to_string();
    assert!(
        rel.starts_with("tables/samples/date=2026-01-01/hour=00/"),
        "hive layout: {rel}"
    );
}

#[tokio::test]
async fn persisted_files_are_sorted_zstd_with_page_index() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let fx = Fixture::new();
    let store = fx.open().await;
    store
        .write(
            WriteSet::new()
                .with("samples", samples("b", "2", micros(t0()) + 500, 10, 1))
                .with("samples", samples("a", "1", micros(t0()), 10, 1)),
        )
        .await
        .expect("write");
    store.persist_now().await.expect("persist");
    let path = parquet_files(&fx.dir).pop().expect("a file");
    let reader =
        SerializedFileReader::new(std::fs::File::open(&path).expect("open")).expect("parquet");
    let md = reader.metadata();
    let rg = md.row_group(0);
    assert!(matches!(
        rg.column(1).compression(),
        parquet::basic::Compression::ZSTD(_)
    ));
    assert!(
        rg.column(1).dictionary_page_offset().is_some(),
        "dictionary encoded"
    );
    assert!(rg.column(0).statistics().is_some(), "row-group statistics");
    assert!(
        rg.column(0).column_index_offset().is_some(),
        "page index written"
    );
    assert!(rg.sorting_columns().is_some_and(|s| s.len() == 4));
    // Rows are in sort-key order: model a before b.
    let ctx = store.session_context().expect("ctx");
    let batches = ctx
        .sql("SELECT model FROM samples LIMIT 1")
        .await
        .expect("plan")
        .collect()
        .await
        .expect("run");
    let m = batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<StringArray>()
        .expect("utf8");
    assert_eq!(m.value(0), "a");
}

#[tokio::test]
async fn rows_split_into_hour_partitions() {
    let fx = Fixture::new();
    let store = fx.open().await;
    let h = 3_600_000_000i64;
    // Rows spanning three hours in one write.
    store
        .write_batch(
            "samples",
            samples("a", "1", micros(t0()) + h / 2, 30, h / 10),
        )
        .await
        .expect("write");
    let out = store.persist_now().await.expect("persist");
    assert_eq!(out.files, 4, "hours 0, 1, 2 and 3");
    let m = store.manifest();
    for f in &m.files {
        assert_eq!(f.partition_hour, f.min_ts - f.min_ts.rem_euclid(h));
        assert!(f.max_ts < f.partition_hour + h);
        assert_eq!(f.path, file_path("samples", f.partition_hour, f.id));
    }
    assert_eq!(count(&store, "samples").await, 30);
}

#[tokio::test]
async fn compaction_merges_small_files_and_keeps_answers() {
    let fx = Fixture::new();
    let store = fx.open().await;
    small_files(&store, 4).await;
    assert_eq!(store.manifest().files.len(), 4);
    let sql =
        "SELECT model, count(*) AS n, sum(value) AS s FROM samples GROUP BY model ORDER BY model";
    let before = rows(&store, sql).await;
    let old_paths = parquet_files(&fx.dir);
    let out = store.compact_now().await.expect("compact");
    assert_eq!(
        out,
        CompactionOutcome {
            partitions: 1,
            files_in: 4,
            files_out: 1
        }
    );
    let m = store.manifest();
    assert_eq!(m.files.len(), 1);
    assert_eq!(m.files[0].rows, 200);
    assert_eq!(
        m.files[0].columns["model"].values.as_ref().map(|v| v.len()),
        Some(4)
    );
    assert_eq!(rows(&store, sql).await, before);
    for p in old_paths {
        assert!(
            !p.exists(),
            "compacted input {p:?} deleted after the commit"
        );
    }
    assert_eq!(store.stats().compactions, 1);
    // Nothing left to do.
    assert_eq!(
        store.compact_now().await.expect("compact"),
        CompactionOutcome::default()
    );
    drop(store);
    let store = fx.open().await;
    assert_eq!(rows(&store, sql).await, before);
}

#[tokio::test]
async fn retention_deletes_old_files_by_clock() {
    let fx = Fixture::new();
    let store = fx.open().await;
    store
        .write(
            WriteSet::new()
                .with("events", events("a", micros(t0()), 10))
                .with("samples", samples("a", "1", micros(t0()), 10, 1)),
        )
        .await
        .expect("write");
    store.persist_now().await.expect("persist");
    fx.clock.advance(chrono::Duration::hours(23));
    assert_eq!(
        store.enforce_retention_now().await.expect("retain"),
        RetentionOutcome::default()
    );
    store
        .write_batch("events", events("b", micros(fx.clock.now()), 5))
        .await
        .expect("write");
    store.persist_now().await.expect("persist");
    fx.clock.advance(chrono::Duration::hours(2));
    let out = store.enforce_retention_now().await.expect("retain");
    assert_eq!(
        out,
        RetentionOutcome {
            files_deleted: 1,
            rows_deleted: 10
        }
    );
    assert_eq!(
        count(&store, "events").await,
        5,
        "only the recent events are left"
    );
    assert_eq!(
        count(&store, "samples").await,
        10,
        "samples have no retention"
    );
    assert_eq!(parquet_files(&fx.dir).len(), 2);
    assert_eq!(store.stats().retention_files_deleted, 1);
}

#[tokio::test]
async fn background_tasks_persist_and_stop_on_shutdown() {
    let fx = Fixture::new();
    let mut cfg = config(fx.clock.clone());
    cfg.persist_buffer_bytes = 1;
    let store = fx.open_with(cfg).await;
    let (tx, rx) = tokio::sync::watch::channel(false);
    let tasks = store.spawn_background(rx);
    store
        .write_batch("samples", samples("a", "1", micros(t0()), 10, 1))
        .await
        .expect("write");
    tx.send(true).expect("signal");
    tasks.join().await.expect("tasks stop");
    // The persister ran at least once (woken by the write or at shutdown).
    let st = store.stats();
    assert!(st.persists >= 1);
    assert_eq!(st.buffer_rows, 0);
    assert_eq!(count(&store, "samples").await, 10);
}

// ---------------------------------------------------------------- queries

async fn pruning_fixture(fx: &Fixture) -> HistoryStore {
    let store = fx.open().await;
    let h = 3_600_000_000i64;
    // One file per (model, hour): models a and b, hours 0, 1, 2.
    for model in ["a", "b"] {
        for hour in 0..3 {
            store
                .write_batch(
                    "samples",
                    samples(
                        model,
                        &format!("v{hour}"),
                        micros(t0()) + hour * h,
                        10,
                        1000,
                    ),
                )
                .await
                .expect("write");
        }
        store.persist_now().await.expect("persist");
    }
    assert_eq!(store.manifest().files.len(), 6);
    store
}

async fn files_scanned(store: &HistoryStore, sql: &str) -> (u64, i64) {
    let before = store.stats().query_files_scanned;
    let n = scalar_i64(store, sql).await;
    (store.stats().query_files_scanned - before, n)
}

#[tokio::test]
async fn pruning_skips_files_by_time_and_model() {
    let fx = Fixture::new();
    let store = pruning_fixture(&fx).await;
    assert_eq!(
        files_scanned(&store, "SELECT count(*) FROM samples").await,
        (6, 60)
    );
    assert_eq!(
        files_scanned(&store, "SELECT count(*) FROM samples WHERE model = 'a'").await,
        (3, 30)
    );
    assert_eq!(
        files_scanned(
            &store,
            "SELECT count(*) FROM samples WHERE ts >= '2026-01-01T02:00:00Z'"
        )
        .await,
        (2, 20)
    );
    assert_eq!(
        files_scanned(
            &store,
            "SELECT count(*) FROM samples WHERE model = 'b' AND version IN ('v1', 'v2') \
             AND ts BETWEEN '2026-01-01T00:30:00Z' AND '2026-01-01T01:30:00Z'"
        )
        .await,
        (1, 10)
    );
    assert_eq!(
        files_scanned(&store, "SELECT count(*) FROM samples WHERE model = 'zzz'").await,
        (0, 0)
    );
    assert_eq!(
        files_scanned(
            &store,
            "SELECT count(*) FROM samples WHERE ts < '2025-12-31T00:00:00Z'"
        )
        .await,
        (0, 0)
    );
    // A filter the pruner does not understand scans everything and is still right.
    assert_eq!(
        files_scanned(
            &store,
            "SELECT count(*) FROM samples WHERE upper(model) = 'A'"
        )
        .await,
        (6, 30)
    );
}

#[tokio::test]
async fn sql_over_buffer_and_files_with_model_version_time_filters() {
    let fx = Fixture::new();
    let store = pruning_fixture(&fx).await;
    // Add unpersisted rows too: the union must see both.
    store
        .write_batch(
            "samples",
            samples("a", "v1", micros(t0()) + 3_600_000_000 + 500, 4, 1),
        )
        .await
        .expect("write");
    let sql = "SELECT model, version, count(*) AS n, round(avg(value), 3) AS avg \
               FROM samples \
               WHERE model = 'a' AND version = 'v1' \
                 AND ts >= TIMESTAMP '2026-01-01 01:00:00' AND ts < TIMESTAMP '2026-01-01 02:00:00' \
               GROUP BY model, version";
    let out = rows(&store, sql).await;
    assert!(out.contains("| a     | v1      | 14 |"), "{out}");
    let ctx = store.session_context().expect("ctx");
    let df = ctx
        .sql("SELECT date_trunc('hour', ts) AS hour, count(*) FROM samples GROUP BY 1 ORDER BY 1")
        .await
        .expect("plan");
    let batches = df.collect().await.expect("run");
    let total: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(total, 3);
    // Declared types are presented as declared, from buffer and files alike.
    let batches = ctx
        .sql("SELECT ts, model, value FROM samples")
        .await
        .expect("plan")
        .collect()
        .await
        .expect("run");
    for b in &batches {
        assert_eq!(b.schema().field(0).data_type(), &time_data_type());
        assert_eq!(b.schema().field(1).data_type(), &DataType::Utf8);
    }
    let n: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(n, 64);
    // information_schema lists the tables; the caller can register more.
    let t = rows(&store, "SELECT table_name FROM information_schema.tables WHERE table_name IN ('samples','events') ORDER BY 1").await;
    assert!(t.contains("events") && t.contains("samples"), "{t}");
}

#[tokio::test]
async fn queries_during_persist_see_each_row_once() {
    let fx = Fixture::new();
    let store = fx.open().await;
    for i in 0..20 {
        store
            .write_batch("samples", samples("a", "1", micros(t0()) + i * 100, 50, 1))
            .await
            .expect("write");
    }
    let s2 = store.clone();
    let persist = tokio::spawn(async move { s2.persist_now().await });
    for _ in 0..10 {
        assert_eq!(count(&store, "samples").await, 1000);
        tokio::task::yield_now().await;
    }
    persist.await.expect("task").expect("persist");
    assert_eq!(count(&store, "samples").await, 1000);
}

// ---------------------------------------------------------------- validation and back-pressure

#[tokio::test]
async fn bad_writes_are_refused_and_change_nothing() {
    let fx = Fixture::new();
    let store = fx.open().await;
    let err = store
        .write_batch("nope", samples("a", "1", 0, 1, 1))
        .await
        .expect_err("unknown table");
    assert!(matches!(err, Error::UnknownTable { .. }));
    let err = store
        .write(
            WriteSet::new()
                .with("samples", samples("a", "1", 0, 1, 1))
                .with("events", samples("a", "1", 0, 1, 1)),
        )
        .await
        .expect_err("schema mismatch");
    assert!(matches!(err, Error::SchemaMismatch { .. }), "{err}");
    assert!(!err.is_retryable());
    assert_eq!(
        count(&store, "samples").await,
        0,
        "nothing of a refused write is applied"
    );
    assert_eq!(store.stats().wal_records, 0);
    let bad_def = TableDef::new("x", schema(vec![Field::new("ts", DataType::Int64, false)]));
    let err = HistoryStore::open(
        fx.dir.join("other"),
        vec![bad_def],
        HistoryConfig::default(),
    )
    .await
    .expect_err("bad def");
    assert!(matches!(err, Error::InvalidTableDef { .. }), "{err}");
}

#[tokio::test]
async fn full_buffer_returns_retryable_overload() {
    let fx = Fixture::new();
    let mut cfg = config(fx.clock.clone());
    cfg.max_buffer_bytes = 256 * 1024;
    cfg.retry_after = Duration::from_millis(250);
    let store = fx.open_with(cfg).await;
    let mut ok = 0;
    let err = loop {
        match store
            .write_batch("samples", samples("a", "1", micros(t0()) + ok, 200, 1))
            .await
        {
            Ok(_) => ok += 1,
            Err(e) => break e,
        }
        assert!(ok < 10_000, "the buffer must fill up");
    };
    assert!(err.is_retryable(), "{err}");
    assert_eq!(err.retry_after(), Some(Duration::from_millis(250)));
    assert!(matches!(err, Error::Overloaded { .. }));
    let st = store.stats();
    assert!(
        st.buffer_bytes <= 256 * 1024,
        "bounded: {}",
        st.buffer_bytes
    );
    assert_eq!(st.writes_overloaded, 1);
    let rows_before = count(&store, "samples").await;
    assert_eq!(rows_before, ok * 200, "the refused write wrote nothing");
    // Once persisted, writes are accepted again.
    store.persist_now().await.expect("persist");
    store
        .write_batch("samples", samples("a", "1", micros(t0()), 200, 1))
        .await
        .expect("accepted after persist");
}

#[tokio::test]
async fn a_refused_write_makes_the_next_persist_due_below_the_size_threshold() {
    // The persist threshold equals the buffer bound, so the size threshold
    // alone is never reached (the write that would reach it is refused).
    let fx = Fixture::new();
    let mut cfg = config(fx.clock.clone());
    cfg.max_buffer_bytes = 256 * 1024;
    cfg.persist_buffer_bytes = 256 * 1024;
    let store = fx.open_with(cfg).await;
    let mut ok = 0;
    loop {
        match store
            .write_batch("samples", samples("a", "1", micros(t0()) + ok, 200, 1))
            .await
        {
            Ok(_) => ok += 1,
            Err(e) => {
                assert!(matches!(e, Error::Overloaded { .. }), "{e}");
                break;
            }
        }
        assert!(ok < 10_000, "the buffer must fill up");
    }
    assert!(store.persist_due(), "a refusal must make a persist due");
    let outcome = store.persist_if_due().await.expect("persist");
    assert!(outcome.is_some());
    assert_eq!(store.stats().buffer_bytes, 0);
    assert!(
        !store.persist_due(),
        "the request is consumed by the persist"
    );
    assert_eq!(count(&store, "samples").await, ok * 200);
}

#[tokio::test]
async fn admission_refuses_before_decoding_once_a_write_cannot_fit() {
    let fx = Fixture::new();
    let mut cfg = config(fx.clock.clone());
    cfg.max_buffer_bytes = 256 * 1024;
    let store = fx.open_with(cfg).await;
    let batch = || samples("a", "1", micros(t0()), 200, 1);
    let size = batch().get_array_memory_size() as u64;
    drop(store.admit(size).expect("an empty buffer admits a write"));
    assert!(
        matches!(store.admit(256 * 1024 + 1), Err(Error::Overloaded { .. })),
        "more than the whole bound never fits"
    );
    let mut written = 0;
    while store.admit(size).is_ok() {
        store
            .write_batch("samples", batch())
            .await
            .expect("admitted");
        written += 1;
        assert!(written < 10_000, "the buffer must fill up");
    }
    let refused = store.admit(size).expect_err("full");
    assert!(refused.is_retryable(), "{refused}");
    assert!(store.stats().writes_overloaded >= 1, "refusals are counted");
    // The write itself is refused the same way, before its WAL encoding,
    // and leaves nothing behind.
    let refused = store
        .write_batch("samples", batch())
        .await
        .expect_err("full");
    assert!(matches!(refused, Error::Overloaded { .. }), "{refused}");
    assert_eq!(count(&store, "samples").await, written * 200);
    store.persist_now().await.expect("persist");
    drop(store.admit(size).expect("admitted again once persisted"));
}

#[allow(clippy::await_holding_lock)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_wal_queue_returns_retryable_overload() {
    let fx = Fixture::new();
    let mut cfg = config(fx.clock.clone());
    cfg.wal_queue_len = 1;
    let store = fx.open_with(cfg).await;
    let mut futs: Vec<_> = (0..3)
        .map(|i| {
            let s = store.clone();
            Box::pin(async move { s.write_batch("samples", samples("a", "1", i, 1, 1)).await })
        })
        .collect();
    let mut overloaded = 0;
    let mut pending = Vec::new();
    {
        let _gate = store.hold_wal_writer();
        for mut f in futs.drain(..) {
            match futures::poll!(f.as_mut()) {
                Poll::Ready(Err(e)) => {
                    assert!(e.is_retryable(), "{e}");
                    overloaded += 1;
                }
                Poll::Ready(Ok(_)) => panic!("acknowledged while the writer is held"),
                Poll::Pending => pending.push(f),
            }
        }
    }
    assert!(
        overloaded >= 1,
        "one queued + one in the writer's hand at most"
    );
    for f in pending {
        f.await.expect("queued writes complete");
    }
    assert_eq!(count(&store, "samples").await, 3 - overloaded);
}

#[tokio::test]
async fn compacted_files_outlive_a_grace_period() {
    let fx = Fixture::new();
    let mut cfg = config(fx.clock.clone());
    cfg.file_delete_grace = Duration::from_secs(60);
    let store = fx.open_with(cfg).await;
    for i in 0..3 {
        store
            .write_batch("samples", samples("a", "1", micros(t0()) + i * 100, 10, 1))
            .await
            .expect("write");
        store.persist_now().await.expect("persist");
    }
    let old = parquet_files(&fx.dir);
    // A query planned before the compaction still reads its files.
    let ctx = store.session_context().expect("ctx");
    let df = ctx.sql("SELECT count(*) FROM samples").await.expect("plan");
    let plan = df.create_physical_plan().await.expect("physical plan");
    store.compact_now().await.expect("compact");
    assert!(
        old.iter().all(|p| p.exists()),
        "kept during the grace period"
    );
    let batches = datafusion::physical_plan::collect(plan, ctx.task_ctx())
        .await
        .expect("run");
    let n = batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("i64")
        .value(0);
    assert_eq!(n, 30);
    fx.clock.advance(chrono::Duration::seconds(61));
    store
        .enforce_retention_now()
        .await
        .expect("maintenance pass");
    assert!(
        old.iter().all(|p| !p.exists()),
        "deleted after the grace period"
    );
    assert_eq!(parquet_files(&fx.dir).len(), 1);
    assert_eq!(count(&store, "samples").await, 30);
}

#[tokio::test]
async fn oversized_write_is_refused_as_final() {
    let fx = Fixture::new();
    let mut cfg = config(fx.clock.clone());
    cfg.max_write_bytes = 1024;
    let store = fx.open_with(cfg).await;
    let err = store
        .write_batch("samples", samples("a", "1", 0, 1000, 1))
        .await
        .expect_err("too large");
    assert!(matches!(err, Error::WriteTooLarge { .. }), "{err}");
    assert!(!err.is_retryable());
    assert_eq!(store.stats().wal_records, 0);
}

#[tokio::test]
async fn newer_manifest_format_is_refused() {
    let fx = Fixture::new();
    drop(fx.open().await);
    let path = fx.dir.join(manifest::MANIFEST_FILE);
    std::fs::write(&path, br#"{"format_version": 99}"#).expect("write");
    let err = HistoryStore::open(&fx.dir, vec![samples_def()], config(fx.clock.clone()))
        .await
        .expect_err("unknown version");
    assert!(matches!(err, Error::ManifestCorrupt { .. }), "{err}");
    assert!(err.to_string().contains("99"), "{err}");
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Whatever garbage follows the valid records at the tail of the
        /// last segment, replay keeps exactly the valid records and never
        /// fails or panics.
        #[test]
        fn replay_survives_any_tail(records in 1usize..6, tail in proptest::collection::vec(any::<u8>(), 1..300)) {
            let tmp = tempfile::tempdir().expect("tempdir");
            let dir = tmp.path();
            let defs = vec![samples_def()];
            let mut seg = vec![b'M', b'W', b'W', b'A', b'L', 0, 0, WAL_SEGMENT_VERSION];
            for i in 0..records {
                let body = wal::encode_body(&[(0, samples("a", "1", i as i64, 3, 1).into())], &defs).expect("encode");
                wal::encode_frame(i as u64 + 1, &body, &mut seg);
            }
            let valid_len = seg.len() as u64;
            seg.extend_from_slice(&tail);
            std::fs::write(wal::segment_path(dir, 1), &seg).expect("write");
            let mut seen = 0;
            let r = wal::replay(dir, &defs, |_| { seen += 1; Ok(()) }).expect("replay never refuses a torn tail");
            prop_assert_eq!(seen, records);
            prop_assert_eq!(r.last_seq, records as u64);
            prop_assert_eq!(r.torn_tails, 1);
            prop_assert_eq!(std::fs::metadata(wal::segment_path(dir, 1)).expect("meta").len(), valid_len);
        }
    }
}

#[tokio::test]
async fn invalid_config_is_refused() {
    let fx = Fixture::new();
    let mut cfg = config(fx.clock.clone());
    cfg.max_write_bytes = 2 << 30;
    let err = HistoryStore::open(&fx.dir, vec![samples_def()], cfg)
        .await
        .expect_err("too large");
    assert!(matches!(err, Error::InvalidConfig { .. }), "{err}");
}

#[tokio::test]
async fn parquet_scan_carries_the_predicate_for_row_group_pruning() {
    let fx = Fixture::new();
    let store = pruning_fixture(&fx).await;
    let plan = rows(
        &store,
        "EXPLAIN SELECT count(*) FROM samples WHERE model = 'a' AND ts >= '2026-01-01T01:00:00Z'",
    )
    .await;
    assert!(plan.contains("file_type=parquet"), "{plan}");
    assert!(plan.contains("predicate="), "{plan}");
    // Only the two matching files (model a, hours 1 and 2) are in the scan.
    assert_eq!(plan.matches(".parquet").count(), 2, "{plan}");
}

// ---------------------------------------------------------------- bulk loads

#[tokio::test]
async fn a_bulk_load_is_invisible_until_committed_then_whole() {
    let f = Fixture::new();
    let store = f.open().await;
    store
        .write_batch("samples", samples("buffered", "1", micros(t0()), 5, 1))
        .await
        .unwrap();
    let mut load = store.bulk_load("samples").unwrap();
    // Three hours of rows, in several appends, one chunk forced out early.
    for h in 0..3i64 {
        load.append(samples(
            "bulk",
            "1",
            micros(t0()) + h * HOUR_MICROS,
            100,
            1000,
        ))
        .await
        .unwrap();
    }
    assert_eq!(load.rows(), 300);
    assert_eq!(
        count(&store, "samples").await,
        5,
        "nothing visible before commit"
    );
    let receipt = load.commit(None).await.unwrap();
    assert_eq!(receipt.rows, 300);
    assert_eq!(receipt.files, 3, "one file per hour partition");
    assert_eq!(count(&store, "samples").await, 305);
    assert_eq!(
        scalar_i64(&store, "SELECT count(*) FROM samples WHERE model = 'bulk'").await,
        300
    );
    // Persist and compaction live alongside: ids never collide, and
    // everything survives a reopen.
    store.persist_now().await.unwrap();
    let ids: std::collections::HashSet<u64> = store.manifest().files.iter().map(|f| f.id).collect();
    assert_eq!(ids.len(), store.manifest().files.len());
    drop(store);
    let store = f.open().await;
    assert_eq!(count(&store, "samples").await, 305);
}

#[tokio::test]
async fn an_abandoned_or_crashed_bulk_load_leaves_nothing() {
    let f = Fixture::new();
    let store = f
        .open_with(HistoryConfig {
            bulk_chunk_bytes: 1024,
            ..config(f.clock.clone())
        })
        .await;
    // Aborted (the upload failed validation half-way): its files go.
    let mut load = store.bulk_load("samples").unwrap();
    load.append(samples("bulk", "1", micros(t0()), 1000, 1))
        .await
        .unwrap();
    assert!(!parquet_files(&f.dir).is_empty(), "rows were written out");
    assert!(load.bytes_written() > 0);
    load.abort().await;
    assert!(parquet_files(&f.dir).is_empty());

    // Dropped (the request went away): its files go too.
    let mut load = store.bulk_load("samples").unwrap();
    load.append(samples("bulk", "1", micros(t0()), 1000, 1))
        .await
        .unwrap();
    drop(load);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !parquet_files(&f.dir).is_empty() {
        assert!(std::time::Instant::now() < deadline, "files left behind");
        tokio::task::yield_now().await;
    }
    assert_eq!(count(&store, "samples").await, 0);

    // A crash mid-load: the files it wrote are on disk, not in the manifest
    // (kept aside here and put back after the store is gone), and are
    // removed when the store opens.
    let mut load = store.bulk_load("samples").unwrap();
    load.append(samples("crash", "1", micros(t0()), 1000, 1))
        .await
        .unwrap();
    let aside = tempfile::tempdir().unwrap();
    let written: Vec<(PathBuf, PathBuf)> = parquet_files(&f.dir)
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let copy = aside.path().join(i.to_string());
            std::fs::copy(&p, &copy).unwrap();
            (p, copy)
        })
        .collect();
    assert!(!written.is_empty());
    load.abort().await;
    drop(store);
    for (original, copy) in &written {
        std::fs::create_dir_all(original.parent().unwrap()).unwrap();
        std::fs::copy(copy, original).unwrap();
    }
    let store = f.open().await;
    assert_eq!(count(&store, "samples").await, 0);
    assert!(parquet_files(&f.dir).is_empty());
}

#[tokio::test]
async fn a_keyed_bulk_load_commits_once() {
    let f = Fixture::new();
    let store = f.open().await;
    let key = || LoadKey {
        key: "upload/abc".into(),
        meta: serde_json::json!({"upload_id": "u1"}),
    };
    let mut first = store.bulk_load("samples").unwrap();
    first
        .append(samples("m", "1", micros(t0()), 10, 1))
        .await
        .unwrap();
    // A retry racing the first: both decoded, only one may commit.
    let mut second = store.bulk_load("samples").unwrap();
    second
        .append(samples("m", "1", micros(t0()), 10, 1))
        .await
        .unwrap();
    first.commit(Some(key())).await.unwrap();
    match second.commit(Some(key())).await {
        Err(Error::AlreadyLoaded { record }) => {
            assert_eq!(record.rows, 10);
            assert_eq!(record.meta["upload_id"], "u1");
        }
        other => panic!("expected AlreadyLoaded, got {other:?}"),
    }
    assert_eq!(count(&store, "samples").await, 10);
    assert_eq!(
        parquet_files(&f.dir).len(),
        1,
        "the refused load's file is gone"
    );
    assert_eq!(store.find_load("upload/abc").unwrap().rows, 10);
    // The record survives a reopen and expires after the retention.
    drop(store);
    let store = f.open().await;
    assert!(store.find_load("upload/abc").is_some());
    f.clock.advance(chrono::Duration::hours(25));
    let mut later = store.bulk_load("samples").unwrap();
    later
        .append(samples("m", "2", micros(t0()), 1, 1))
        .await
        .unwrap();
    later.commit(None).await.unwrap();
    assert!(store.find_load("upload/abc").is_none());
}

// The WAL writer's gate is held across `poll!`, which never suspends.
#[allow(clippy::await_holding_lock)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persist_and_compaction_memory_counts_against_the_buffer_bound() {
    let fx = Fixture::new();
    let mut cfg = config(fx.clock.clone());
    cfg.max_buffer_bytes = 1 << 20;
    let store = fx.open_with(cfg).await;
    store
        .write_batch("samples", samples("a", "1", micros(t0()), 10, 1))
        .await
        .unwrap();
    {
        // A persist or compaction sorting most of the bound's worth of rows.
        let _working = crate::stats::Charge::new(&store.shared().stats.working_bytes, 1 << 20);
        assert_eq!(store.stats().working_bytes, 1 << 20);
        let refused = store
            .write_batch("samples", samples("a", "1", micros(t0()), 10, 1))
            .await
            .unwrap_err();
        assert!(matches!(refused, Error::Overloaded { .. }), "{refused}");
    }
    assert_eq!(store.stats().working_bytes, 0);
    store
        .write_batch("samples", samples("a", "1", micros(t0()), 10, 1))
        .await
        .unwrap();
    // The WAL record's bytes count too while a write waits for its fsync.
    let batch = samples("b", "1", micros(t0()), 100, 1);
    let batch_bytes = batch.get_array_memory_size() as u64;
    let mut pending = Box::pin(store.write_batch("samples", batch));
    {
        let _gate = store.hold_wal_writer();
        assert!(futures::poll!(pending.as_mut()).is_pending());
        assert!(
            store.stats().inflight_bytes > batch_bytes,
            "{} ≤ {batch_bytes}",
            store.stats().inflight_bytes
        );
    }
    pending.await.unwrap();
    assert_eq!(store.stats().inflight_bytes, 0);
}

#[tokio::test]
async fn compaction_reads_only_as_many_rows_as_its_memory_bound_allows() {
    let fx = Fixture::new();
    let store = fx
        .open_with(HistoryConfig {
            // Every file is over the bound: each pass merges two.
            compaction_max_decoded_bytes: 1,
            ..config(fx.clock.clone())
        })
        .await;
    small_files(&store, 4).await;
    let sql = "SELECT model, count(*) AS n FROM samples GROUP BY model ORDER BY model";
    let before = rows(&store, sql).await;
    let out = store.compact_now().await.expect("compact");
    assert_eq!(out.files_in, 2, "{out:?}");
    assert_eq!(store.manifest().files.len(), 3);
    assert_eq!(rows(&store, sql).await, before);
    assert_eq!(store.stats().working_bytes, 0, "the charge is released");
}

#[tokio::test]
async fn an_admission_holds_its_room_until_dropped() {
    let fx = Fixture::new();
    let mut cfg = config(fx.clock.clone());
    cfg.max_buffer_bytes = 256 * 1024;
    let store = fx.open_with(cfg).await;
    let first = store
        .admit(150 * 1024)
        .expect("an empty buffer admits a request");
    // A second request decoding at the same time does not fit beside it.
    let refused = store.admit(150 * 1024).expect_err("the room is taken");
    assert!(matches!(refused, Error::Overloaded { .. }), "{refused}");
    assert_eq!(store.stats().inflight_bytes, 150 * 1024);
    let small = store
        .admit(100 * 1024)
        .expect("what still fits is admitted");
    drop(first);
    drop(small);
    assert_eq!(
        store.stats().inflight_bytes,
        0,
        "dropping gives the room back"
    );
    drop(
        store
            .admit(150 * 1024)
            .expect("admitted once the first request is done"),
    );
}

#[tokio::test]
async fn encoding_runs_on_the_persistence_thread_which_outlives_a_panicking_job() {
    let fx = Fixture::new();
    let store = fx.open().await;
    let thread = &store.shared().persist_thread;
    let name = thread
        .run(|| Ok(std::thread::current().name().map(str::to_string)))
        .await
        .expect("a job runs");
    assert_eq!(name.as_deref(), Some("history-persist"));
    let err = thread
        .run(|| -> Result<()> { panic!("a bug in an encoder") })
        .await
        .expect_err("the panicking job fails its caller");
    assert!(matches!(err, Error::Task(_)), "{err}");
    // The thread goes on: the next persist is encoded there as usual.
    store
        .write_batch("samples", samples("a", "1", micros(t0()), 10, 1))
        .await
        .expect("write");
    assert_eq!(store.persist_now().await.expect("persist").rows, 10);
}
