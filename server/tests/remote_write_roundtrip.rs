//! Property: any sequence of valid remote-write requests, 1.0 or 2.0, with
//! persists in between, reads back through SQL as exactly the samples sent
//! (the decoder, the WAL, the buffer, the Parquet files and the query path
//! together), modelled here from the protocol's rules alone.

use std::collections::BTreeMap;

use datafusion::arrow::array::{Array, AsArray, StringArray};
use datafusion::arrow::datatypes::{Float64Type, TimestampMicrosecondType};
use modelwatch_collectors::RemoteWriteVersion;
use modelwatch_collectors::otlp::OtlpConfig;
use modelwatch_collectors::remote_write::{CONTENT_TYPE_V2, VERSION_V2, proto};
use modelwatch_collectors::schema::is_stale_nan;
use modelwatch_collectors::{RemoteWriteConfig, RemoteWriteSummary};
use modelwatch_history::HistoryConfig;
use modelwatch_server::telemetry::Telemetry;
use proptest::prelude::*;
use prost::Message;

const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

/// One series as sent: labels by name (unique by construction) and samples.
#[derive(Debug, Clone)]
struct Series {
    labels: BTreeMap<String, String>,
    samples: Vec<(f64, i64)>,
}

#[derive(Debug, Clone)]
struct Request {
    protocol: RemoteWriteVersion,
    series: Vec<Series>,
    /// Persist everything buffered after this request.
    persist_after: bool,
}

/// A stored row, compared bit for bit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Row {
    metric: String,
    model: Option<String>,
    version: Option<String>,
    labels: Vec<(String, String)>,
    ts_micros: i64,
    value_bits: u64,
    stale: bool,
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => -1e6f64..1e6,
        1 => Just(f64::NAN),
        1 => Just(f64::from_bits(STALE_NAN)),
        1 => Just(-0.0),
        1 => Just(f64::INFINITY),
    ]
}

fn series() -> impl Strategy<Value = Series> {
    (
        prop::sample::select(vec!["up", "http_requests_total", "latency_bucket"]),
        prop::collection::btree_map(
            prop::sample::select(vec![
                "instance",
                "job",
                "le",
                "model",
                "model_version",
                "ünïcode",
            ]),
            // An empty value means "no label" to Prometheus.
            prop::sample::select(vec!["", "a", "b:9000", "0.5", "fraud", "3", "日本"]),
            0..5,
        ),
        // Three hours of milliseconds: several hourly partitions.
        prop::collection::vec((value(), 1_764_219_600_000i64..1_764_230_400_000), 1..5),
    )
        .prop_map(|(name, labels, samples)| {
            let mut labels: BTreeMap<String, String> = labels
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            labels.insert("__name__".into(), name.into());
            Series { labels, samples }
        })
}

fn request() -> impl Strategy<Value = Request> {
    (
        prop::bool::ANY,
        prop::collection::vec(series(), 1..5),
        prop::bool::weighted(0.3),
    )
        .prop_map(|(v2, series, persist_after)| Request {
            protocol: if v2 {
                RemoteWriteVersion::V2
            } else {
                RemoteWriteVersion::V1
            },
            series,
            persist_after,
        })
}

fn encode(request: &Request) -> Vec<u8> {
    let v1 = proto::WriteRequest {
        timeseries: request
            .series
            .iter()
            .map(|s| proto::TimeSeries {
                labels: s
                    .labels
                    .iter()
                    .map(|(name, value)| proto::Label {
                        name: name.clone(),
                        value: value.clone(),
                    })
                    .collect(),
                samples: s
                    .samples
                    .iter()
                    .map(|&(value, timestamp)| proto::Sample { value, timestamp })
                    .collect(),
                ..Default::default()
            })
            .collect(),
        metadata: Vec::new(),
    };
    let raw = match request.protocol {
        RemoteWriteVersion::V1 => v1.encode_to_vec(),
        RemoteWriteVersion::V2 => proto::v2::Request::from(&v1).encode_to_vec(),
    };
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .expect("snappy compression in memory")
}

/// What the protocol says is stored for `series`.
fn expected_rows(series: &Series) -> Vec<Row> {
    let label = |name: &str| series.labels.get(name).filter(|v| !v.is_empty()).cloned();
    let labels: Vec<(String, String)> = series
        .labels
        .iter()
        .filter(|(k, v)| {
            !v.is_empty() && !matches!(k.as_str(), "__name__" | "model" | "model_version")
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    series
        .samples
        .iter()
        .map(|&(value, ts_ms)| Row {
            metric: series.labels["__name__"].clone(),
            model: label("model"),
            version: label("model_version"),
            labels: labels.clone(),
            ts_micros: ts_ms * 1000,
            // proto3 does not send a zero double, whatever its sign (Go's
            // and prost's encoders alike): -0.0 arrives as 0.0.
            value_bits: if value == 0.0 { 0 } else { value.to_bits() },
            stale: is_stale_nan(value),
        })
        .collect()
}

async fn stored_rows(telemetry: &Telemetry) -> Vec<Row> {
    let ctx = telemetry.store.session_context().expect("session");
    let batches = ctx
        .sql("SELECT metric, model, version, labels, ts, value, stale, kind, le FROM samples")
        .await
        .expect("plan")
        .collect()
        .await
        .expect("query");
    let mut rows = Vec::new();
    for b in &batches {
        let text = |i: usize| b.column(i).as_string::<i32>();
        let (metric, model, version, kind, le) = (text(0), text(1), text(2), text(7), text(8));
        let labels = b.column(3).as_map();
        let ts = b.column(4).as_primitive::<TimestampMicrosecondType>();
        let value = b.column(5).as_primitive::<Float64Type>();
        let stale = b.column(6).as_boolean();
        for i in 0..b.num_rows() {
            assert_eq!(kind.value(i), "untyped", "no metadata was sent");
            let entries = labels.value(i);
            let (keys, values) = (
                entries.column(0).as_string::<i32>(),
                entries.column(1).as_string::<i32>(),
            );
            let opt = |a: &StringArray| (!a.is_null(i)).then(|| a.value(i).to_string());
            let le_label = (0..keys.len())
                .find(|&j| keys.value(j) == "le")
                .map(|j| values.value(j).to_string());
            assert_eq!(opt(le), le_label, "the le column copies the le label");
            rows.push(Row {
                metric: metric.value(i).to_string(),
                model: opt(model),
                version: opt(version),
                labels: (0..keys.len())
                    .map(|j| (keys.value(j).to_string(), values.value(j).to_string()))
                    .collect(),
                ts_micros: ts.value(i),
                value_bits: value.value(i).to_bits(),
                stale: stale.value(i),
            });
        }
    }
    rows.sort();
    rows
}

/// The daemon's telemetry side on a fresh history under `dir`.
async fn open(dir: &std::path::Path) -> Telemetry {
    Telemetry::open(
        &dir.join("history"),
        HistoryConfig::default(),
        RemoteWriteConfig::default(),
        OtlpConfig::default(),
    )
    .await
    .expect("open")
}

/// `request` through the remote-write path, with its version's headers.
async fn send(telemetry: &Telemetry, request: &Request) -> RemoteWriteSummary {
    let (content_type, version) = match request.protocol {
        RemoteWriteVersion::V1 => ("application/x-protobuf", "0.1.0"),
        RemoteWriteVersion::V2 => (CONTENT_TYPE_V2, VERSION_V2),
    };
    telemetry
        .remote_write(
            Some(content_type),
            Some("snappy"),
            Some(version),
            &encode(request),
        )
        .await
        .expect("a valid request is stored")
}

async fn round_trip(requests: Vec<Request>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let telemetry = open(dir.path()).await;
    let mut expected = Vec::new();
    for request in &requests {
        let summary = send(&telemetry, request).await;
        let rows: Vec<Row> = request.series.iter().flat_map(expected_rows).collect();
        assert_eq!(summary.samples, rows.len(), "samples written");
        expected.extend(rows);
        if request.persist_after {
            telemetry.store.persist_now().await.expect("persist");
        }
    }
    expected.sort();
    assert_eq!(stored_rows(&telemetry).await, expected);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]
    #[test]
    fn any_remote_write_requests_read_back_identically_through_sql(
        requests in prop::collection::vec(request(), 1..5)
    ) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(round_trip(requests));
    }
}

/// The layout decision behind the bytes per sample: in a persisted
/// `samples` file, each series' rows are one run in time order, however
/// the series were interleaved on the wire.
#[tokio::test]
async fn persisted_samples_keep_each_series_together_in_time_order() {
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let dir = tempfile::tempdir().expect("temp dir");
    let telemetry = open(dir.path()).await;
    // Three series of one metric, version and hour, sent as a scraper
    // sends them: one request per scrape, every series in each.
    let t0 = 1_764_219_600_000i64;
    for step in 0..20i64 {
        let request = Request {
            protocol: RemoteWriteVersion::V1,
            series: ["a", "b", "c"]
                .into_iter()
                .map(|instance| Series {
                    labels: BTreeMap::from([
                        ("__name__".to_string(), "up".to_string()),
                        ("instance".to_string(), instance.to_string()),
                    ]),
                    samples: vec![(step as f64, t0 + step * 15_000)],
                })
                .collect(),
            persist_after: false,
        };
        send(&telemetry, &request).await;
    }
    telemetry.store.persist_now().await.expect("persist");
    let files: Vec<_> = telemetry
        .store
        .manifest()
        .files
        .into_iter()
        .filter(|f| f.table == "samples")
        .collect();
    assert_eq!(files.len(), 1, "one hour, one file");
    let path = dir.path().join("history").join(&files[0].path);
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).expect("file"))
        .expect("parquet")
        .build()
        .expect("reader");
    let mut file_order: Vec<(String, i64)> = Vec::new();
    for batch in reader {
        let batch = batch.expect("batch");
        let labels = batch.column_by_name("labels").expect("labels").as_map();
        let ts = batch
            .column_by_name("ts")
            .expect("ts")
            .as_primitive::<TimestampMicrosecondType>();
        for i in 0..batch.num_rows() {
            let entries = labels.value(i);
            let instance = entries.column(1).as_string::<i32>().value(0).to_string();
            file_order.push((instance, ts.value(i)));
        }
    }
    assert_eq!(file_order.len(), 60);
    for run in file_order.chunks(20) {
        assert!(
            run.iter().all(|(instance, _)| *instance == run[0].0),
            "series interleaved in the file: {file_order:?}"
        );
        assert!(
            run.windows(2).all(|w| w[0].1 < w[1].1),
            "a series out of time order: {run:?}"
        );
    }
}

#[tokio::test]
async fn a_status_filter_opens_only_the_files_that_hold_that_status() {
    let dir = tempfile::tempdir().expect("temp dir");
    let telemetry = open(dir.path()).await;
    let hour_ms = 3_600_000;
    for (hour, status) in [(0, "200"), (1, "500"), (2, "200")] {
        let labels = [("__name__", "http_requests_total"), ("status", status)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let request = Request {
            protocol: RemoteWriteVersion::V1,
            series: vec![Series {
                labels,
                samples: vec![(1.0, 1_764_219_600_000 + hour * hour_ms)],
            }],
            persist_after: true,
        };
        send(&telemetry, &request).await;
        telemetry.store.persist_now().await.expect("persist");
    }
    assert_eq!(
        telemetry.store.manifest().files.len(),
        3,
        "one file per hour"
    );
    let before = telemetry.store.stats();
    let ctx = telemetry.store.session_context().expect("session");
    let batches = ctx
        .sql("SELECT count(*) FROM samples WHERE status = '500'")
        .await
        .expect("plan")
        .collect()
        .await
        .expect("query");
    let n = batches[0]
        .column(0)
        .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
        .value(0);
    assert_eq!(n, 1);
    let after = telemetry.store.stats();
    assert_eq!(
        after.query_files_considered - before.query_files_considered,
        3
    );
    assert_eq!(
        after.query_files_scanned - before.query_files_scanned,
        1,
        "the manifest knows which hour holds a 500"
    );
}
