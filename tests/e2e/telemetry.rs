//! Telemetry through the real daemon: Prometheus remote write in, SQL out,
//! bad bodies refused without writing, and acknowledged writes surviving
//! SIGKILL.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use modelwatch_collectors::remote_write::proto::{Label, Sample, TimeSeries, WriteRequest, v2};
use modelwatch_collectors::remote_write::{
    CONTENT_TYPE_V2, HEADER_EXEMPLARS_WRITTEN, HEADER_HISTOGRAMS_WRITTEN, HEADER_SAMPLES_WRITTEN,
    VERSION_V2,
};
use prost::Message;
use serde_json::{Value, json};

use crate::support::*;

const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

pub(crate) fn series(labels: &[(&str, &str)], samples: &[(f64, i64)]) -> TimeSeries {
    TimeSeries {
        labels: labels
            .iter()
            .map(|(n, v)| Label {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect(),
        samples: samples
            .iter()
            .map(|&(value, timestamp)| Sample { value, timestamp })
            .collect(),
        ..Default::default()
    }
}

pub(crate) fn encode(req: &WriteRequest) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .unwrap()
}

pub(crate) async fn write(http: &Http, body: Vec<u8>) -> (u16, Value) {
    write_as(http, "application/x-protobuf", body).await
}

async fn write_as(http: &Http, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    let mut req = http
        .client
        .post(format!("{}/api/v1/write", http.url))
        .header("content-type", content_type)
        .header("content-encoding", "snappy")
        .header(
            "x-prometheus-remote-write-version",
            if content_type == CONTENT_TYPE_V2 {
                VERSION_V2
            } else {
                "0.1.0"
            },
        )
        .body(body);
    if let Some(t) = &http.token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.expect("remote write");
    let status = res.status().as_u16();
    let text = res.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn remote_write_samples_come_back_through_sql() {
    let d = Daemon::start();
    let http = d.http();
    let t0 = 1_764_219_600_000i64; // 2025-11-27T05:00:00Z in milliseconds
    let req = WriteRequest {
        timeseries: vec![
            // Labels deliberately unsorted: Prometheus sorts, others may not.
            series(
                &[
                    ("model_version", "3"),
                    ("__name__", "request_latency_seconds"),
                    ("model", "fraud"),
                    ("instance", "a:9000"),
                ],
                &[(0.25, t0), (0.5, t0 + 1000)],
            ),
            series(&[("__name__", "up"), ("instance", "b:9000")], &[(1.0, t0)]),
            series(
                &[
                    ("__name__", "request_latency_seconds"),
                    ("model", "fraud"),
                    ("model_version", "2"),
                    ("instance", "c:9000"),
                ],
                &[
                    (f64::from_bits(STALE_NAN), t0 + 2000),
                    (f64::NAN, t0 + 3000),
                ],
            ),
        ],
        ..Default::default()
    };
    let (status, body) = write(&http, encode(&req)).await;
    assert_eq!(status, 204, "{body}");

    let rows = sql(
        &http,
        "SELECT metric, value, model, version, labels['instance'] AS instance, stale, source \
         FROM samples WHERE model = 'fraud' AND version = '3' ORDER BY ts",
    )
    .await;
    assert_eq!(rows["row_count"], 2);
    assert_eq!(rows["rows"][0]["metric"], "request_latency_seconds");
    assert_eq!(rows["rows"][0]["value"], 0.25);
    assert_eq!(rows["rows"][1]["value"], 0.5);
    assert_eq!(rows["rows"][0]["instance"], "a:9000");
    assert_eq!(rows["rows"][0]["stale"], false);
    // Samples without a model are kept; stale markers stay distinguishable from NaN.
    assert_eq!(count_where(&http, "samples", "model IS NULL").await, 1);
    let stale = sql(
        &http,
        "SELECT stale FROM samples WHERE version = '2' ORDER BY ts",
    )
    .await;
    assert_eq!(stale["rows"], json!([{"stale": true}, {"stale": false}]));
    let first = sql(
        &http,
        "SELECT ts FROM samples WHERE model = 'fraud' AND version = '3' ORDER BY ts LIMIT 1",
    )
    .await;
    assert!(
        first["rows"][0]["ts"]
            .as_str()
            .unwrap()
            .starts_with("2025-11-27T05:00:00"),
        "{first}"
    );

    // The same through the CLI, as a table.
    let o = d.cli(&["sql", "SELECT version, count(*) AS n FROM samples WHERE model = 'fraud' GROUP BY version ORDER BY version"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("2 rows"), "{out}");
}

/// POSTs a remote write 2.0 body; returns status, reply and the three
/// `X-Prometheus-Remote-Write-*-Written` headers.
async fn write_v2(http: &Http, req: &v2::Request) -> (u16, Value, [Option<u64>; 3]) {
    let body = snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .unwrap();
    let res = http
        .client
        .post(format!("{}/api/v1/write", http.url))
        .header("content-type", CONTENT_TYPE_V2)
        .header("content-encoding", "snappy")
        .header("x-prometheus-remote-write-version", VERSION_V2)
        .bearer_auth(http.token.as_deref().unwrap_or_default())
        .body(body)
        .send()
        .await
        .expect("remote write 2.0");
    let status = res.status().as_u16();
    let written = [
        HEADER_SAMPLES_WRITTEN,
        HEADER_HISTOGRAMS_WRITTEN,
        HEADER_EXEMPLARS_WRITTEN,
    ]
    .map(|name| {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
    });
    let text = res.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
        written,
    )
}

#[tokio::test]
async fn remote_write_2_0_is_stored_with_its_types_units_and_written_counts() {
    let d = Daemon::start();
    let http = d.http();
    let t0 = 1_764_219_600_000i64;
    // A spec-shaped request: one symbol table shared by every series
    // (index 0 is the empty string), metadata with type and unit, a created
    // timestamp, an exemplar.
    let symbols: Vec<String> = [
        "",
        "__name__",
        "http_requests_total",
        "model",
        "fraud",
        "model_version",
        "3",
        "instance",
        "a:9000",
        "queue_depth",
        "requests",
        "trace_id",
        "abc",
    ]
    .map(String::from)
    .to_vec();
    let req = v2::Request {
        symbols,
        timeseries: vec![
            v2::TimeSeries {
                // Deliberately unsorted by name.
                labels_refs: vec![7, 8, 1, 2, 3, 4, 5, 6],
                samples: vec![
                    v2::Sample {
                        value: 10.0,
                        timestamp: t0,
                    },
                    v2::Sample {
                        value: 12.0,
                        timestamp: t0 + 15_000,
                    },
                ],
                exemplars: vec![v2::Exemplar {
                    labels_refs: vec![11, 12],
                    value: 1.0,
                    timestamp: t0,
                }],
                metadata: Some(v2::Metadata {
                    r#type: v2::metadata::MetricType::Counter as i32,
                    help_ref: 0,
                    unit_ref: 10,
                }),
                created_timestamp: t0 - 60_000,
                ..Default::default()
            },
            v2::TimeSeries {
                labels_refs: vec![1, 9, 3, 4, 5, 6],
                samples: vec![v2::Sample {
                    value: 4.0,
                    timestamp: t0,
                }],
                metadata: Some(v2::Metadata {
                    r#type: v2::metadata::MetricType::Gauge as i32,
                    ..Default::default()
                }),
                ..Default::default()
            },
        ],
    };
    let (status, reply, written) = write_v2(&http, &req).await;
    assert_eq!(status, 204, "{reply}");
    assert_eq!(written, [Some(3), Some(0), Some(0)], "written headers");

    let rows = sql(
        &http,
        "SELECT metric, value, kind, unit, labels['instance'] AS instance, \
           CAST(start_ts AS VARCHAR) AS start_ts \
         FROM samples WHERE model = 'fraud' AND version = '3' ORDER BY metric, ts",
    )
    .await;
    assert_eq!(
        rows["rows"],
        json!([
            {"metric": "http_requests_total", "value": 10.0, "kind": "counter", "unit": "requests",
             "instance": "a:9000", "start_ts": "2025-11-27T04:59:00Z"},
            {"metric": "http_requests_total", "value": 12.0, "kind": "counter", "unit": "requests",
             "instance": "a:9000", "start_ts": "2025-11-27T04:59:00Z"},
            {"metric": "queue_depth", "value": 4.0, "kind": "gauge", "unit": null,
             "instance": null, "start_ts": null},
        ]),
        "{rows}"
    );

    // A reference outside the symbol table refuses the whole request.
    let mut bad = req.clone();
    bad.timeseries[1].labels_refs[1] = 99;
    let (status, reply, _) = write_v2(&http, &bad).await;
    assert_eq!(status, 400, "{reply}");
    assert_eq!(reply["error"]["code"], "invalid_argument", "{reply}");
    assert_eq!(
        count(&http, "samples").await,
        3,
        "the refused request wrote rows"
    );
}

#[tokio::test]
async fn bad_remote_write_bodies_get_4xx_and_write_nothing() {
    let d = Daemon::start_with(Start::args(&["--max-write-bytes", "65536"]));
    let http = d.http();
    let good = encode(&WriteRequest {
        timeseries: vec![series(&[("__name__", "m")], &[(1.0, 1_700_000_000_000)])],
        ..Default::default()
    });
    let raw_proto = WriteRequest {
        timeseries: vec![series(&[("__name__", "m")], &[(1.0, 1_700_000_000_000)])],
        ..Default::default()
    }
    .encode_to_vec();
    // A snappy block whose header declares 1 GiB.
    let mut huge_declared = vec![0x80, 0x80, 0x80, 0x80, 0x04];
    huge_declared.extend_from_slice(&[0u8; 16]);
    let framed = snap::write::FrameEncoder::new(Vec::new());
    let framed = {
        use std::io::Write;
        let mut f = framed;
        f.write_all(&raw_proto).unwrap();
        f.into_inner().unwrap()
    };
    let duplicate = encode(&WriteRequest {
        timeseries: vec![series(
            &[("__name__", "m"), ("a", "1"), ("a", "2")],
            &[(1.0, 1_700_000_000_000)],
        )],
        ..Default::default()
    });
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("garbage", b"this is not snappy at all".to_vec(), 400),
        ("truncated", good[..good.len() / 2].to_vec(), 400),
        ("uncompressed protobuf", raw_proto.clone(), 400),
        ("framed snappy", framed, 400),
        ("duplicate label names", duplicate, 400),
        ("huge declared length", huge_declared, 413),
        ("over the body limit", vec![0u8; 70_000], 413),
    ];
    for (what, body, expected) in cases {
        let (status, reply) = write(&http, body).await;
        assert_eq!(status, expected, "{what}: {reply}");
        assert!(
            reply["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{what}: {reply}"
        );
    }
    // A 1.0 body labelled 2.0 would decode as an empty 2.0 request: it is
    // refused instead of acknowledged with nothing stored.
    let (status, reply) = write_as(&http, CONTENT_TYPE_V2, good.clone()).await;
    assert_eq!(status, 400, "1.0 body sent as 2.0: {reply}");
    let (status, reply) = write_as(
        &http,
        "application/x-protobuf;proto=io.prometheus.write.v3.Request",
        good.clone(),
    )
    .await;
    assert_eq!(status, 415, "unknown protobuf message: {reply}");
    let (status, _) = write_as(&http, "application/json", good.clone()).await;
    assert_eq!(status, 415);
    assert_eq!(
        count(&http, "samples").await,
        0,
        "a rejected write left rows behind"
    );
    assert_eq!(write(&http, good).await.0, 204);

    // /metrics counts each refusal by reason, and only stored rows as rows.
    let metrics = scrape(&http).await;
    let value = |series: &str| metric(&metrics, series);
    let rejected = |reason: &str| {
        value(&format!(
            "modelwatch_ingest_rejected_requests_total{{protocol=\"remote_write\",reason=\"{reason}\"}}"
        ))
    };
    assert_eq!(rejected("malformed"), Some(6.0), "{metrics}");
    assert_eq!(rejected("too_large"), Some(1.0), "{metrics}");
    assert_eq!(rejected("unsupported_media_type"), Some(2.0), "{metrics}");
    assert_eq!(
        value("modelwatch_ingest_rows_total{protocol=\"remote_write\",table=\"samples\"}"),
        Some(1.0),
        "{metrics}"
    );
    // The body limit refuses before decoding; the HTTP counter still sees it.
    assert_eq!(
        value(
            "modelwatch_http_requests_total{method=\"POST\",route=\"/api/v1/write\",status=\"413\"}"
        ),
        Some(2.0),
        "{metrics}"
    );
}

/// `GET /metrics` as text.
async fn scrape(http: &Http) -> String {
    let body = http.get_expect("/metrics", 200).await;
    body.as_str().expect("text exposition format").to_string()
}

/// The value of one exposition line, `name{labels} value`.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn metrics_need_a_reader_token_and_count_requests_by_route() {
    let d = Daemon::start();
    let admin = d.http();
    let ingest = admin.with_token(Some(&admin.token("server", "ingest").await));
    assert_eq!(admin.with_token(None).get("/metrics").await.0, 401);
    assert_eq!(ingest.get("/metrics").await.0, 403);
    for _ in 0..3 {
        assert_eq!(admin.get("/api/v1/models/nope").await.0, 404);
    }
    let text = scrape(&admin).await;
    assert_eq!(
        metric(
            &text,
            "modelwatch_http_requests_total{method=\"GET\",route=\"/api/v1/models/{model}\",status=\"404\"}"
        ),
        Some(3.0),
        "{text}"
    );
    assert!(
        text.contains("# TYPE modelwatch_wal_fsyncs_total counter"),
        "{text}"
    );
}

#[tokio::test]
async fn roles_separate_ingest_from_reading() {
    let d = Daemon::start();
    let admin = d.http();
    let ingest = admin.with_token(Some(&admin.token("server", "ingest").await));
    let reader = admin.with_token(Some(&admin.token("grafana", "reader").await));
    let body = encode(&WriteRequest {
        timeseries: vec![series(&[("__name__", "m")], &[(1.0, 1_700_000_000_000)])],
        ..Default::default()
    });
    assert_eq!(write(&ingest, body.clone()).await.0, 204);
    assert_eq!(write(&reader, body.clone()).await.0, 403);
    assert_eq!(write(&admin.with_token(None), body).await.0, 401);
    ingest
        .post_expect("/api/v1/sql", json!({"sql": "SELECT 1"}), 403)
        .await;
    reader
        .post_expect("/api/v1/sql", json!({"sql": "SELECT 1"}), 200)
        .await;
}

#[tokio::test]
async fn sql_is_read_only_joins_the_registry_and_speaks_csv_and_arrow() {
    let d = Daemon::start();
    let http = d.http();
    http.post("/api/v1/models", json!({"name": "fraud"})).await;
    http.post("/api/v1/models/fraud/versions", json!({"run_id": "r1"}))
        .await;
    http.post("/api/v1/models/fraud/versions", json!({"run_id": "r2"}))
        .await;
    http.put(
        "/api/v1/models/fraud/aliases/production",
        json!({"version": 2}),
    )
    .await;
    let body = encode(&WriteRequest {
        timeseries: vec![
            series(
                &[
                    ("__name__", "errors"),
                    ("model", "fraud"),
                    ("model_version", "2"),
                ],
                &[(3.0, 1_700_000_000_000)],
            ),
            series(
                &[
                    ("__name__", "errors"),
                    ("model", "fraud"),
                    ("model_version", "1"),
                ],
                &[(9.0, 1_700_000_000_000)],
            ),
        ],
        ..Default::default()
    });
    assert_eq!(write(&http, body).await.0, 204);

    // Telemetry joined with the registry: errors of the production version.
    let joined = sql(
        &http,
        "SELECT s.value, v.run_id FROM samples s \
         JOIN aliases a ON a.model = s.model AND CAST(a.version AS VARCHAR) = s.version \
         JOIN versions v ON v.model = a.model AND v.version = a.version \
         WHERE a.alias = 'production'",
    )
    .await;
    assert_eq!(joined["rows"], json!([{"value": 3.0, "run_id": "r2"}]));
    let audit = sql(
        &http,
        "SELECT action FROM audit_log WHERE target LIKE 'model/fraud/alias/%'",
    )
    .await;
    assert_eq!(audit["rows"], json!([{"action": "alias.set"}]));
    let moves = sql(&http, "SELECT kind, to_version FROM alias_moves").await;
    assert_eq!(moves["rows"], json!([{"kind": "set", "to_version": 2}]));

    for statement in [
        "CREATE TABLE x (a INT)",
        "INSERT INTO samples SELECT * FROM samples",
        "DROP TABLE samples",
        "COPY samples TO '/tmp/modelwatch-copy-test.parquet'",
        "SET datafusion.execution.batch_size = 1",
    ] {
        let (status, reply) = http.post("/api/v1/sql", json!({ "sql": statement })).await;
        assert_eq!(status, 400, "{statement}: {reply}");
        assert_eq!(reply["error"]["code"], "read_only", "{statement}: {reply}");
    }
    assert!(!std::path::Path::new("/tmp/modelwatch-copy-test.parquet").exists());
    let (status, reply) = http
        .post("/api/v1/sql", json!({"sql": "SELECT nope FROM samples"}))
        .await;
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (400, Some("invalid_query"))
    );
    let (status, reply) = http
        .post(
            "/api/v1/sql",
            json!({"sql": "SELECT * FROM models", "limit": 0}),
        )
        .await;
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (400, Some("invalid_argument"))
    );

    // Row limit with the truncation flag.
    let limited = http
        .post(
            "/api/v1/sql",
            json!({"sql": "SELECT * FROM versions", "limit": 1}),
        )
        .await
        .1;
    assert_eq!(
        (
            limited["row_count"].as_u64(),
            limited["truncated"].as_bool()
        ),
        (Some(1), Some(true))
    );

    // CSV and Arrow IPC by Accept.
    let csv = http
        .client
        .post(format!("{}/api/v1/sql", http.url))
        .bearer_auth(TOKEN)
        .header("accept", "text/csv")
        .json(&json!({"sql": "SELECT version, run_id FROM versions ORDER BY version"}))
        .send()
        .await
        .unwrap();
    assert_eq!(csv.headers()["content-type"], "text/csv");
    assert_eq!(csv.text().await.unwrap(), "version,run_id\n1,r1\n2,r2\n");
    let arrow = http
        .client
        .post(format!("{}/api/v1/sql", http.url))
        .bearer_auth(TOKEN)
        .header("accept", "application/vnd.apache.arrow.stream")
        .header("content-type", "text/plain")
        .body("SELECT version FROM versions")
        .send()
        .await
        .unwrap();
    assert_eq!(arrow.status(), 200);
    let bytes = arrow.bytes().await.unwrap();
    // An Arrow IPC stream starts with a continuation marker 0xFFFFFFFF.
    assert_eq!(&bytes[..4], &[0xff, 0xff, 0xff, 0xff]);
}

#[tokio::test]
async fn acknowledged_writes_survive_sigkill_exactly_once() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let d = Daemon::start_in(data.clone(), None, Start::default());
    let http = d.http();
    let acked: Arc<Mutex<BTreeSet<i64>>> = Arc::default();
    let sent: Arc<Mutex<BTreeSet<i64>>> = Arc::default();
    let enough = Arc::new(tokio::sync::Notify::new());
    // Eight writers stream requests of 50 samples, each sample value unique.
    let writers: Vec<_> = (0..8i64)
        .map(|w| {
            let (http, acked, sent, enough) =
                (http.clone(), acked.clone(), sent.clone(), enough.clone());
            tokio::spawn(async move {
                for r in 0..10_000i64 {
                    let ids: Vec<i64> = (0..50).map(|i| (w * 10_000 + r) * 100 + i).collect();
                    let req = WriteRequest {
                        timeseries: vec![series(
                            &[("__name__", "crash_test"), ("writer", &w.to_string())],
                            &ids.iter()
                                .map(|&id| (id as f64, 1_700_000_000_000 + id))
                                .collect::<Vec<_>>(),
                        )],
                        ..Default::default()
                    };
                    sent.lock().unwrap().extend(&ids);
                    let res = http
                        .client
                        .post(format!("{}/api/v1/write", http.url))
                        .bearer_auth(TOKEN)
                        .header("content-type", "application/x-protobuf")
                        .header("content-encoding", "snappy")
                        .body(encode(&req))
                        .send()
                        .await;
                    match res {
                        Ok(r) if r.status().as_u16() == 204 => {
                            let mut acked = acked.lock().unwrap();
                            acked.extend(&ids);
                            if acked.len() >= 20_000 {
                                enough.notify_one();
                            }
                        }
                        _ => break, // the daemon is gone
                    }
                }
            })
        })
        .collect();
    // Kill once a good number of writes were acknowledged, while more are in flight.
    tokio::time::timeout(std::time::Duration::from_secs(300), enough.notified())
        .await
        .expect("20,000 samples were not acknowledged within 5 minutes");
    d.kill9();
    for w in writers {
        let _ = w.await;
    }
    let acked = acked.lock().unwrap().clone();
    let sent = sent.lock().unwrap().clone();

    let d = Daemon::start_in(data, None, Start::default());
    let http = d.http();
    let rows = http.post_expect("/api/v1/sql", json!({"sql": "SELECT value FROM samples WHERE metric = 'crash_test'", "limit": 1_000_000}), 200).await;
    let values: Vec<i64> = rows["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"].as_f64().unwrap() as i64)
        .collect();
    let stored: BTreeSet<i64> = values.iter().copied().collect();
    assert_eq!(stored.len(), values.len(), "some rows were stored twice");
    let lost: Vec<_> = acked.difference(&stored).take(5).collect();
    assert!(
        lost.is_empty(),
        "acknowledged samples lost after SIGKILL, e.g. {lost:?}"
    );
    assert!(stored.is_subset(&sent), "rows that were never sent");
}

#[tokio::test]
async fn a_full_buffer_refuses_writes_with_503_and_retry_after_until_persisted() {
    // Persistence starts only when the buffer is full, so the first refusal
    // is deterministic: sequential writes fill it, one is refused, and the
    // persist it triggers makes room for the retry.
    let d = Daemon::start_with(Start::args(&[
        "--max-buffer-bytes",
        "1048576",
        "--persist-buffer-bytes",
        "1048576",
    ]));
    let http = d.http();
    let request = |n: i64| {
        encode(&WriteRequest {
            timeseries: (0..10)
                .map(|s| {
                    let name = format!("series_{s}");
                    let samples: Vec<(f64, i64)> = (0..100)
                        .map(|i| (i as f64, 1_700_000_000_000 + (n * 100 + i) * 1000))
                        .collect();
                    series(&[("__name__", &name), ("model", "m")], &samples)
                })
                .collect(),
            ..Default::default()
        })
    };
    let send = |body: Vec<u8>| {
        let http = http.clone();
        async move {
            let res = http
                .client
                .post(format!("{}/api/v1/write", http.url))
                .bearer_auth(http.token.as_deref().unwrap())
                .header("content-type", "application/x-protobuf")
                .header("content-encoding", "snappy")
                .header("x-prometheus-remote-write-version", "0.1.0")
                .body(body)
                .send()
                .await
                .expect("remote write");
            let retry_after = res
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
            (res.status().as_u16(), retry_after)
        }
    };
    let mut acknowledged = 0i64;
    let refused_at = loop {
        assert!(acknowledged < 10_000, "a 1 MiB buffer never filled");
        match send(request(acknowledged)).await {
            (204, _) => acknowledged += 1,
            (503, retry_after) => {
                let secs: u64 = retry_after
                    .expect("503 carries Retry-After")
                    .parse()
                    .unwrap();
                assert!(secs >= 1, "Retry-After {secs}");
                break acknowledged;
            }
            other => panic!("unexpected answer {other:?}"),
        }
    };
    assert!(refused_at > 0, "the very first write was refused");
    // Retry the refused request as Prometheus would, until persistence has
    // made room; it must then be stored exactly once.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        match send(request(refused_at)).await {
            (204, _) => break,
            (503, _) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "still refused after 60 s"
                );
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!(count(&http, "samples").await, (refused_at + 1) * 1000);
    let metrics = scrape(&http).await;
    assert!(
        metric(
            &metrics,
            "modelwatch_ingest_rejected_requests_total{protocol=\"remote_write\",reason=\"overloaded\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_query_past_its_timeout_is_cancelled_with_504() {
    let d = Daemon::start();
    let http = d.http();
    let started = std::time::Instant::now();
    let body = http
        .post_expect(
            "/api/v1/sql",
            json!({"sql": "SELECT count(*) FROM range(1000000000000)", "timeout_seconds": 1}),
            504,
        )
        .await;
    assert_eq!(body["error"]["code"], "timeout", "{body}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "the timeout answered after {:?}",
        started.elapsed()
    );
    // The daemon still answers queries afterwards.
    assert_eq!(sql(&http, "SELECT 1 AS one").await["rows"][0]["one"], 1);
}

#[tokio::test]
async fn explain_and_explain_analyze_show_the_plan() {
    let d = Daemon::start();
    let http = d.http();
    let body = encode(&WriteRequest {
        timeseries: vec![series(&[("__name__", "up")], &[(1.0, 1_700_000_000_000)])],
        ..Default::default()
    });
    assert_eq!(write(&http, body).await.0, 204);
    let query = "SELECT count(*) FROM samples WHERE metric = 'up'";
    // ANALYZE runs the query and reports per-operator metrics.
    for (explain, shows) in [
        ("EXPLAIN", "TableScan: samples"),
        ("EXPLAIN ANALYZE", "output_rows=1"),
    ] {
        let plan = sql(&http, &format!("{explain} {query}")).await;
        assert!(plan["rows"].to_string().contains(shows), "{plan}");
    }
}

/// Anomalies on a watched version's metric: a policy's EWMA detector over
/// a remote-written latency series finds the level shift at its end,
/// records the breaching points in `anomaly_results` and says the newest
/// point is in alarm; a detector with impossible parameters is refused.
#[tokio::test]
async fn a_watched_metric_level_shift_is_recorded_as_anomalies() {
    let d = Daemon::start();
    let http = d.http();
    http.model_with_versions("anom", 1).await;
    http.put_alias("anom", "production", 1, 200).await;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // 40 points 15 s apart ending now: 30 calm around 100, then 10 at 200.
    let points: Vec<(f64, i64)> = (0..40)
        .map(|i| {
            let value = if i < 30 {
                100.0 + (i % 3) as f64
            } else {
                200.0
            };
            (value, now_ms - (39 - i) * 15_000)
        })
        .collect();
    let labels = [
        ("__name__", "latency_p95"),
        ("model", "anom"),
        ("model_version", "1"),
        ("instance", "a"),
    ];
    let req = WriteRequest {
        timeseries: vec![series(&labels, &points)],
        ..Default::default()
    };
    let (status, body) = write(&http, encode(&req)).await;
    assert_eq!(status, 204, "{body}");

    let (status, body) = http
        .send(
            "PUT",
            "/api/v1/models/anom/policy",
            Some(json!({"anomalies": [{"metric": "latency_p95",
                        "detector": {"method": "ewma", "lambda": 2.0, "l": 3.0, "warmup": 20}}]})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.to_string().contains("anomalies[0].detector.lambda"),
        "{body}"
    );
    let policy = json!({"current_window": "1h", "interval": "1h",
                        "anomalies": [{"metric": "latency_p95", "persistence": 2,
                                       "detector": {"method": "ewma", "lambda": 0.3, "l": 3.0,
                                                    "warmup": 20}}]});
    http.put_expect("/api/v1/models/anom/policy", policy, 200)
        .await;

    let out = d.cli(&["evaluate", "--model", "anom", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let found = &report["versions"][0]["anomalies"][0];
    assert_eq!(found["metric"], "latency_p95", "{report}");
    assert_eq!(found["detector"], "ewma", "{report}");
    assert_eq!(found["points"], 40, "{report}");
    assert_eq!(found["alarming"], true, "{report}");
    let recorded = found["recorded"].as_i64().unwrap();
    assert!(recorded >= 2, "{report}");

    // DISTINCT: the background evaluator may have evaluated the new policy
    // too, recording the same points under its own evaluation id.
    let rows = sql(
        &http,
        "SELECT DISTINCT ts, value, consecutive, alarm FROM anomaly_results \
         WHERE model = 'anom' AND metric = 'latency_p95' ORDER BY ts",
    )
    .await["rows"]
        .clone();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len() as i64, recorded, "{rows:?}");
    // Only the shifted points breach, and the run of them alarms.
    assert!(rows.iter().all(|r| r["value"] == 200.0), "{rows:?}");
    assert_eq!(rows[0]["consecutive"], 1, "{rows:?}");
    assert!(rows.iter().any(|r| r["alarm"] == true), "{rows:?}");
}

/// Anomalies on span-derived series: a version's spans over the last ten
/// minutes, 20 ms each, then 200 ms for the last ninety seconds; a
/// detector on `latency_ms` per 10 s bucket raises the alarm, and one on
/// `throughput` (the same 5 spans per bucket throughout) stays quiet,
/// partial buckets at the window's edges included.
#[tokio::test]
async fn span_latency_anomalies_are_detected_per_bucket() {
    let d = Daemon::start();
    let http = d.http();
    http.model_with_versions("spanned", 1).await;
    http.put_alias("spanned", "production", 1, 200).await;
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    // 60 buckets of 10 s before the current one, 5 spans each.
    let bucket_ns = 10_000_000_000i64;
    let current_bucket = now_ns / bucket_ns * bucket_ns;
    let spans: Vec<Value> = (0..60i64)
        .flat_map(|b| (0..5i64).map(move |k| (b, k)))
        .map(|(b, k)| {
            let start = current_bucket - (60 - b) * bucket_ns + k * 1_000_000_000;
            let duration_ms = if b >= 51 { 200 } else { 20 + k };
            json!({
                "traceId": format!("{:032x}", b * 10 + k + 1),
                "spanId": format!("{:016x}", b * 10 + k + 1),
                "name": "predict",
                "kind": 2,
                "startTimeUnixNano": start.to_string(),
                "endTimeUnixNano": (start + duration_ms * 1_000_000).to_string(),
                "status": {"code": 1},
            })
        })
        .collect();
    let body = json!({"resourceSpans": [{
        "resource": {"attributes": [
            {"key": "model.name", "value": {"stringValue": "spanned"}},
            {"key": "model.version", "value": {"stringValue": "1"}},
        ]},
        "scopeSpans": [{"spans": spans}],
    }]});
    let (status, reply) = http.post_json_bytes("/v1/traces", &body).await;
    assert_eq!(status, 200, "{reply}");

    // A span series that does not exist is refused by name.
    let (status, body) = http
        .send(
            "PUT",
            "/api/v1/models/spanned/policy",
            Some(json!({"anomalies": [{"metric": "p99", "source": "spans",
                        "detector": {"method": "mad", "window": 10, "k": 3.5}}]})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("anomalies[0].metric"), "{body}");
    let detector = json!({"method": "ewma", "lambda": 0.3, "l": 3.0, "warmup": 20});
    let policy = json!({"current_window": "1h", "interval": "1h",
                        "anomalies": [
                            {"metric": "latency_ms", "source": "spans", "span_name": "predict",
                             "bucket": "10s", "persistence": 2, "detector": detector},
                            {"metric": "throughput", "source": "spans", "bucket": "10s",
                             "detector": detector}]});
    http.put_expect("/api/v1/models/spanned/policy", policy, 200)
        .await;
    let out = d.cli(&["evaluate", "--model", "spanned", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let latency = &report["versions"][0]["anomalies"][0];
    assert_eq!(latency["metric"], "latency_ms", "{report}");
    assert_eq!(latency["points"], 60, "{report}");
    assert_eq!(latency["alarming"], true, "{report}");
    let throughput = &report["versions"][0]["anomalies"][1];
    assert_eq!(throughput["points"], 60, "{report}");
    assert_eq!(throughput["alarming"], false, "{report}");
    let stored = sql(
        &http,
        "SELECT count(*) AS n FROM anomaly_results WHERE model = 'spanned' \
         AND metric = 'latency_ms' AND alarm",
    )
    .await;
    assert!(stored["rows"][0]["n"].as_i64().unwrap() > 0, "{stored}");
}
