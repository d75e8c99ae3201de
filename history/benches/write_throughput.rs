//! Write throughput with group commit, and persisted bytes per row.
//!
//! `cargo bench -p modelwatch-history --bench write_throughput`
//! (figures in the root `BENCHMARKS.md`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Float64Array, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field};
use arrow::record_batch::RecordBatch;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use modelwatch_history::{HistoryConfig, HistoryStore, TableDef, schema, time_field};
use rand::{Rng, SeedableRng, rngs::StdRng};

const SERIES: usize = 100;
const SAMPLES_PER_SERIES: usize = 10;
const ROWS_PER_WRITE: usize = SERIES * SAMPLES_PER_SERIES;

fn def() -> TableDef {
    TableDef::new(
        "samples",
        schema(vec![
            time_field(),
            Field::new("metric", DataType::Utf8, false),
            Field::new("model", DataType::Utf8, true),
            Field::new("version", DataType::Utf8, true),
            Field::new("instance", DataType::Utf8, true),
            Field::new("value", DataType::Float64, false),
        ]),
    )
    .with_sort_key(["model", "version", "metric", "instance", "ts"])
    .with_index_columns(["model", "version"])
}

/// One remote-write-like request: 100 series x 10 samples at a 15 s step.
/// Half the series are counters (small integer increments), half gauges
/// (two decimals).
struct Gen {
    rng: StdRng,
    t: i64,
    counters: Vec<f64>,
}

impl Gen {
    fn new() -> Self {
        Self {
            rng: StdRng::seed_from_u64(7),
            t: 1_795_000_000_000_000,
            counters: vec![0.0; SERIES],
        }
    }

    fn batch(&mut self, def: &TableDef) -> RecordBatch {
        let mut ts = Vec::with_capacity(ROWS_PER_WRITE);
        let mut metric = Vec::with_capacity(ROWS_PER_WRITE);
        let mut model = Vec::with_capacity(ROWS_PER_WRITE);
        let mut version = Vec::with_capacity(ROWS_PER_WRITE);
        let mut instance = Vec::with_capacity(ROWS_PER_WRITE);
        let mut value = Vec::with_capacity(ROWS_PER_WRITE);
        for s in 0..SERIES {
            for k in 0..SAMPLES_PER_SERIES {
                ts.push(self.t + k as i64 * 15_000_000);
                let counter = s % 2 == 0;
                metric.push(if counter {
                    format!("requests_total_{}", s % 10)
                } else {
                    format!("latency_seconds_{}", s % 10)
                });
                model.push(format!("model-{}", s % 5));
                version.push(format!("{}", s % 3 + 1));
                instance.push(format!("10.0.0.{}:9100", s % 20));
                let v = if counter {
                    self.counters[s] += f64::from(self.rng.random_range(0..20u32));
                    self.counters[s]
                } else {
                    (self.rng.random_range(0.0..2.0f64) * 100.0).round() / 100.0
                };
                value.push(v);
            }
        }
        self.t += SAMPLES_PER_SERIES as i64 * 15_000_000;
        RecordBatch::try_new(
            def.schema.clone(),
            vec![
                Arc::new(TimestampMicrosecondArray::from(ts).with_timezone("UTC")),
                Arc::new(StringArray::from(metric)),
                Arc::new(StringArray::from(model)),
                Arc::new(StringArray::from(version)),
                Arc::new(StringArray::from(instance)),
                Arc::new(Float64Array::from(value)),
            ],
        )
        .expect("valid batch")
    }
}

fn config() -> HistoryConfig {
    HistoryConfig {
        max_buffer_bytes: 2 << 30,
        ..HistoryConfig::default()
    }
}

/// One two-worker runtime shape for every measurement here.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn bench_write(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("history_write");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    for writers in [1usize, 16, 64] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = rt
            .block_on(HistoryStore::open(tmp.path(), vec![def()], config()))
            .expect("open");
        let d = def();
        let mut g = Gen::new();
        // Pre-built payloads so the loop measures the store, not the generator.
        let payloads: Vec<RecordBatch> = (0..writers).map(|_| g.batch(&d)).collect();
        group.throughput(Throughput::Elements((writers * ROWS_PER_WRITE) as u64));
        group.bench_function(
            format!("{writers}_concurrent_writes_of_{ROWS_PER_WRITE}_rows"),
            |b| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let mut spent = Duration::ZERO;
                        for _ in 0..iters {
                            if store.stats().buffer_bytes > 256 << 20 {
                                store.persist_now().await.expect("persist");
                            }
                            let start = Instant::now();
                            let futs = payloads
                                .iter()
                                .map(|p| store.write_batch("samples", p.clone()));
                            for r in futures::future::join_all(futs).await {
                                r.expect("write");
                            }
                            spent += start.elapsed();
                        }
                        spent
                    })
                })
            },
        );
        let st = store.stats();
        println!(
            "  {writers} writers: {} WAL records in {} fsyncs ({:.1} records per fsync), last fsync {} us",
            st.wal_records,
            st.wal_fsyncs,
            st.wal_records as f64 / st.wal_fsyncs.max(1) as f64,
            st.last_fsync_micros
        );
    }
    group.finish();
}

/// Not timed by criterion: write 1,000,000 rows, persist, compact, and
/// report Parquet bytes per row.
fn bytes_per_row(_c: &mut Criterion) {
    let rt = runtime();
    rt.block_on(async {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cfg = HistoryConfig {
            compaction_min_files: 2,
            file_delete_grace: Duration::ZERO,
            ..config()
        };
        let store = HistoryStore::open(tmp.path(), vec![def()], cfg)
            .await
            .expect("open");
        let d = def();
        let mut g = Gen::new();
        for i in 0..1000 {
            store.write_batch("samples", g.batch(&d)).await.expect("write");
            if i % 100 == 99 {
                store.persist_now().await.expect("persist");
            }
        }
        store.persist_now().await.expect("persist");
        let before = store.stats();
        store.compact_now().await.expect("compact");
        let after = store.stats();
        println!(
            "persisted: {} rows, {} files, {} bytes = {:.2} bytes/row; after compaction: {} files, {} bytes = {:.2} bytes/row",
            before.persisted_rows,
            before.persisted_files,
            before.persisted_bytes,
            before.persisted_bytes as f64 / before.persisted_rows.max(1) as f64,
            after.persisted_files,
            after.persisted_bytes,
            after.persisted_bytes as f64 / after.persisted_rows.max(1) as f64,
        );
    });
}

criterion_group!(benches, bench_write, bytes_per_row);
criterion_main!(benches);
