//! Batch uploads through the real daemon: every format for inferences and
//! reference data with the values read back by SQL, schema errors naming
//! row and column, bad bodies refused with nothing written, the size
//! limit, `reference_uri` at version creation, and the CLI.

use std::io::Write;
use std::process::Output;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use modelwatch_client::{AuditQuery, FeatureKind, Features};
use serde_json::{Value, json};

use crate::support::*;

const NDJSON: &str = "application/x-ndjson";
/// The upload routes of the version every test declares.
const INFERENCES: &str = "/api/v1/models/fraud/versions/1/inferences";
const REFERENCE: &str = "/api/v1/models/fraud/versions/1/reference";

const FORMATS: [(&str, &str); 4] = [
    ("ndjson", NDJSON),
    ("csv", "text/csv"),
    ("parquet", "application/vnd.apache.parquet"),
    ("arrow", "application/vnd.apache.arrow.stream"),
];

/// Three rows; `prefix` makes the inference ids unique per upload.
/// Text formats get `ts` as RFC 3339 text, binary ones as a timestamp.
fn rows(prefix: &str, typed_ts: bool) -> RecordBatch {
    let ts: ArrayRef = if typed_ts {
        Arc::new(
            TimestampMillisecondArray::from(vec![
                1_764_230_401_000,
                1_764_230_402_000,
                1_764_230_403_000,
            ])
            .with_timezone("UTC"),
        )
    } else {
        Arc::new(StringArray::from(vec![
            "2025-11-27T08:00:01Z",
            "2025-11-27T08:00:02Z",
            "2025-11-27T08:00:03Z",
        ]))
    };
    let ts_field = Field::new(
        "ts",
        if typed_ts {
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
        } else {
            DataType::Utf8
        },
        false,
    );
    let schema = Arc::new(Schema::new(vec![
        ts_field,
        Field::new("inference_id", DataType::Utf8, false),
        Field::new("amount", DataType::Float64, true),
        Field::new("country", DataType::Utf8, true),
        Field::new("prediction", DataType::Float64, false),
        Field::new("label", DataType::Int64, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            ts,
            Arc::new(StringArray::from_iter_values(
                (1..=3).map(|i| format!("{prefix}-{i}")),
            )),
            Arc::new(Float64Array::from(vec![Some(12.5), None, Some(-3.0)])),
            Arc::new(StringArray::from(vec![Some("de"), Some("fr"), None])),
            Arc::new(Float64Array::from(vec![0.9, 0.1, 0.5])),
            Arc::new(Int64Array::from(vec![Some(1), None, Some(0)])),
        ],
    )
    .unwrap()
}

fn encode(format: &str, batch: &RecordBatch) -> Vec<u8> {
    let mut out = Vec::new();
    match format {
        "ndjson" => {
            let mut w = datafusion::arrow::json::LineDelimitedWriter::new(&mut out);
            w.write(batch).unwrap();
            w.finish().unwrap();
        }
        "csv" => {
            let mut w = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut out);
            w.write(batch).unwrap();
        }
        "parquet" => {
            let mut w =
                datafusion::parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None)
                    .unwrap();
            w.write(batch).unwrap();
            w.close().unwrap();
        }
        "arrow" => {
            let mut w =
                datafusion::arrow::ipc::writer::StreamWriter::try_new(&mut out, &batch.schema())
                    .unwrap();
            w.write(batch).unwrap();
            w.finish().unwrap();
        }
        other => panic!("unknown format {other}"),
    }
    out
}

fn body_for(format: &str, prefix: &str) -> Vec<u8> {
    let typed = matches!(format, "parquet" | "arrow");
    encode(format, &rows(prefix, typed))
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

async fn upload(
    http: &Http,
    path: &str,
    content_type: &str,
    encoding: Option<&str>,
    body: Vec<u8>,
) -> (u16, Value) {
    let mut req = http
        .client
        .post(format!("{}{path}", http.url))
        .header("content-type", content_type)
        .body(body);
    if let Some(e) = encoding {
        req = req.header("content-encoding", e);
    }
    if let Some(t) = &http.token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.expect("upload");
    let status = res.status().as_u16();
    let text = res.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Model `fraud`, version 1 declaring `amount` (numeric) and `country`
/// (categorical).
async fn declared_version(http: &Http) {
    http.post_expect("/api/v1/models", json!({"name": "fraud"}), 201)
        .await;
    let b = http
        .post_expect(
            "/api/v1/models/fraud/versions",
            json!({"features": {"amount": "numeric", "country": "categorical"}}),
            201,
        )
        .await;
    assert_eq!(b["features"]["amount"], "numeric");
}

async fn check_rows(http: &Http, table: &str, prefix: &str, upload_id: &str) {
    let r = sql(
        http,
        &format!(
            "SELECT inference_id, CAST(ts AS VARCHAR) AS ts, features_num['amount'] AS amount, \
             features_str['country'] AS country, prediction, prediction_value, label, label_value, \
             model, version, source, attributes['upload_id'] AS upload_id \
             FROM {table} WHERE inference_id LIKE '{prefix}-%' ORDER BY inference_id"
        ),
    )
    .await;
    let rows = r["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{table} {prefix}: {r}");
    assert_eq!(rows[0]["inference_id"], format!("{prefix}-1"));
    assert!(
        rows[0]["ts"]
            .as_str()
            .unwrap()
            .starts_with("2025-11-27T08:00:01"),
        "{prefix}: {r}"
    );
    assert_eq!(rows[0]["amount"], 12.5, "{prefix}: {r}");
    assert_eq!(rows[1]["amount"], Value::Null, "{prefix}: null is left out");
    assert_eq!(rows[2]["amount"], -3.0);
    assert_eq!(rows[0]["country"], "de");
    assert_eq!(rows[1]["country"], "fr");
    assert_eq!(rows[2]["country"], Value::Null);
    assert_eq!(rows[0]["prediction"], "0.9");
    assert_eq!(rows[0]["prediction_value"], 0.9);
    assert_eq!(rows[0]["label"], "1");
    assert_eq!(rows[0]["label_value"], 1.0);
    assert_eq!(rows[1]["label"], Value::Null);
    assert_eq!(rows[0]["model"], "fraud");
    assert_eq!(rows[0]["version"], "1");
    assert_eq!(rows[0]["source"], "upload");
    assert_eq!(rows[2]["upload_id"], upload_id);
}

#[tokio::test]
async fn every_format_uploads_inferences_and_reference_read_back_by_sql() {
    let d = Daemon::start();
    let admin = d.http();
    declared_version(&admin).await;
    let ingest = admin.with_token(Some(&admin.token("loader", "ingest").await));
    for (format, content_type) in FORMATS {
        for table in ["inferences", "reference"] {
            for gz in [false, true] {
                let prefix = format!("{format}-{table}-{}", if gz { "gz" } else { "plain" });
                let body = body_for(format, &prefix);
                let (body, enc) = if gz {
                    (gzip(&body), Some("gzip"))
                } else {
                    (body, None)
                };
                let sent = body.len();
                let (status, reply) = upload(
                    &ingest,
                    &format!("/api/v1/models/fraud/versions/1/{table}"),
                    content_type,
                    enc,
                    body,
                )
                .await;
                assert_eq!(status, 200, "{prefix}: {reply}");
                assert_eq!(reply["rows"], 3, "{prefix}: {reply}");
                assert_eq!(reply["table"], table);
                assert_eq!(reply["bytes"], sent);
                assert_eq!(reply["features"]["amount"], "numeric");
                assert!(reply["duration_ms"].as_f64().is_some());
                let id = reply["upload_id"].as_str().unwrap();
                assert_eq!(id.len(), 32);
                check_rows(&admin, table, &prefix, id).await;
            }
        }
    }
    // Each upload went to its own table only.
    assert_eq!(count(&admin, "inferences").await, 4 * 2 * 3);
    assert_eq!(count(&admin, "reference").await, 4 * 2 * 3);
}

#[tokio::test]
async fn schema_errors_name_column_and_row_and_store_nothing() {
    let d = Daemon::start();
    let http = d.http();
    declared_version(&http).await;
    let path = INFERENCES;

    let ndjson = "{\"amount\": 1, \"country\": \"de\"}\n{\"amount\": 2}\n{\"amount\": \"lots\"}\n";
    let (s, b) = upload(&http, path, NDJSON, None, ndjson.into()).await;
    assert_eq!(s, 400, "{b}");
    let msg = error_message(&b);
    assert!(msg.contains("row 3") && msg.contains("\"amount\""), "{msg}");

    let csv = "amount,colour\n1,red\n";
    let (s, b) = upload(&http, path, "text/csv", None, csv.into()).await;
    assert_eq!(s, 400, "{b}");
    let msg = error_message(&b);
    assert!(
        msg.contains("row 1") && msg.contains("\"colour\"") && msg.contains("unknown column"),
        "{msg}"
    );

    // A bad row long after the first staged batches (well past one
    // in-memory staging area): still nothing stored.
    let mut big = String::new();
    for i in 0..150_000 {
        big.push_str(&format!(
            "{{\"inference_id\": \"r{i}\", \"amount\": {i}, \"country\": \"de\"}}\n"
        ));
    }
    big.push_str("{\"amount\": 1, \"country\": 7}\n");
    let (s, b) = upload(&http, path, NDJSON, None, big.into()).await;
    assert_eq!(s, 400, "{b}");
    let msg = error_message(&b);
    assert!(
        msg.contains("row 150001") && msg.contains("\"country\""),
        "{msg}"
    );

    assert_eq!(count(&http, "inferences").await, 0);
    // No staging file is left behind.
    let left: Vec<_> = std::fs::read_dir(d.data_dir.join("uploads"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn unknown_version_wrong_media_type_and_roles_are_refused() {
    let d = Daemon::start();
    let http = d.http();
    declared_version(&http).await;
    let body = body_for("ndjson", "x");
    let (s, b) = upload(
        &http,
        "/api/v1/models/fraud/versions/9/inferences",
        NDJSON,
        None,
        body.clone(),
    )
    .await;
    assert_eq!(s, 404, "{b}");
    assert_eq!(b["error"]["code"], "not_found");
    let (s, _) = upload(
        &http,
        "/api/v1/models/nope/versions/1/reference",
        NDJSON,
        None,
        body.clone(),
    )
    .await;
    assert_eq!(s, 404);
    let path = INFERENCES;
    let (s, b) = upload(&http, path, "application/json", None, body.clone()).await;
    assert_eq!(s, 415, "{b}");
    assert_eq!(b["error"]["code"], "unsupported_media_type");
    assert!(error_message(&b).contains("application/x-ndjson"), "{b}");
    let (s, b) = upload(&http, path, NDJSON, Some("br"), body.clone()).await;
    assert_eq!(s, 415, "{b}");
    let reader = http.with_token(Some(&http.token("viewer", "reader").await));
    let (s, _) = upload(&reader, path, NDJSON, None, body.clone()).await;
    assert_eq!(s, 403);
    let (s, _) = upload(&http.with_token(None), path, NDJSON, None, body).await;
    assert_eq!(s, 401);
    assert_eq!(count(&http, "inferences").await, 0);
}

#[tokio::test]
async fn truncated_and_garbage_bodies_in_every_format_store_nothing() {
    let d = Daemon::start();
    let http = d.http();
    declared_version(&http).await;
    for (format, content_type) in FORMATS {
        for table in ["inferences", "reference"] {
            let path = format!("/api/v1/models/fraud/versions/1/{table}");
            let good = body_for(format, "t");
            // Cut inside the last row / message / footer.
            let truncated = good[..good.len() - 7].to_vec();
            let garbage: Vec<u8> = (0..4096u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect();
            for (what, body, enc) in [
                ("truncated", truncated.clone(), None),
                ("garbage", garbage.clone(), None),
                ("truncated gzip", gzip(&good)[..20].to_vec(), Some("gzip")),
                ("not gzip", good.clone(), Some("gzip")),
                ("empty", Vec::new(), None),
            ] {
                let (s, b) = upload(&http, &path, content_type, enc, body).await;
                assert_eq!(s, 400, "{format} {table} {what}: {b}");
                assert_eq!(b["error"]["code"], "invalid_argument", "{b}");
            }
        }
    }
    assert_eq!(count(&http, "inferences").await, 0);
    assert_eq!(count(&http, "reference").await, 0);
}

#[tokio::test]
async fn oversized_uploads_get_413_and_store_nothing() {
    let d = Daemon::start_with(Start::args(&["--max-upload-bytes", "4096"]));
    let http = d.http();
    declared_version(&http).await;
    let path = INFERENCES;
    let mut big = String::new();
    for i in 0..200 {
        big.push_str(&format!("{{\"amount\": {i}, \"country\": \"de\"}}\n"));
    }
    assert!(big.len() > 4096);
    let (s, b) = upload(&http, path, NDJSON, None, big.clone().into()).await;
    assert_eq!(s, 413, "{b}");
    assert_eq!(b["error"]["code"], "payload_too_large");
    assert!(error_message(&b).contains("--max-upload-bytes"), "{b}");
    // Small when compressed, too large once inflated.
    let gz = gzip(big.as_bytes());
    assert!(gz.len() < 4096);
    let (s, b) = upload(&http, path, NDJSON, Some("gzip"), gz).await;
    assert_eq!(s, 413, "{b}");
    // Under the limit is fine.
    let (s, b) = upload(
        &http,
        path,
        NDJSON,
        None,
        big[..2000].rsplit_once('\n').unwrap().0.into(),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let stored = b["rows"].as_i64().unwrap();
    assert_eq!(count(&http, "inferences").await, stored);
}

#[tokio::test]
async fn a_large_arrow_upload_is_read_back_whole() {
    let d = Daemon::start();
    let http = d.http();
    declared_version(&http).await;
    let n = 300_000usize;
    let schema = Arc::new(Schema::new(vec![
        Field::new("amount", DataType::Float64, false),
        Field::new("country", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Float64Array::from_iter_values((0..n).map(|i| i as f64))),
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| if i % 3 == 0 { "de" } else { "fr" }),
            )),
        ],
    )
    .unwrap();
    let (s, b) = upload(
        &http,
        INFERENCES,
        "application/vnd.apache.arrow.stream",
        None,
        encode("arrow", &batch),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["rows"], n);
    let r = sql(
        &http,
        "SELECT count(*) AS n, sum(features_num['amount']) AS total, \
         count(*) FILTER (WHERE features_str['country'] = 'de') AS de FROM inferences",
    )
    .await;
    assert_eq!(r["rows"][0]["n"], n);
    assert_eq!(r["rows"][0]["total"], (n * (n - 1) / 2) as f64);
    assert_eq!(r["rows"][0]["de"], n.div_ceil(3));
}

fn write_parquet(path: &std::path::Path, prefix: &str) {
    std::fs::write(path, body_for("parquet", prefix)).unwrap();
}

#[tokio::test]
async fn reference_uri_loads_at_creation_and_a_bad_one_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start_with(Start::args(&[
        "--reference-dir",
        &dir.path().display().to_string(),
    ]));
    let http = d.http();
    let (s, _) = http.post("/api/v1/models", json!({"name": "fraud"})).await;
    assert_eq!(s, 201);
    let file = dir.path().join("ref.parquet");
    write_parquet(&file, "ref");

    // No features declared: the file's columns become them.
    let v = http
        .post_expect(
            "/api/v1/models/fraud/versions",
            json!({"reference_uri": file.to_str().unwrap()}),
            201,
        )
        .await;
    assert_eq!(
        v["features"],
        json!({"amount": "numeric", "country": "categorical"})
    );
    assert_eq!(v["reference_uri"], file.to_str().unwrap());
    let r = sql(
        &http,
        "SELECT version, features_num['amount'] AS amount FROM reference ORDER BY inference_id",
    )
    .await;
    assert_eq!(r["row_count"], 3, "{r}");
    assert_eq!(r["rows"][0]["version"], "1");
    assert_eq!(r["rows"][0]["amount"], 12.5);
    let view = sql(&http, "SELECT features, reference_uri FROM versions").await;
    assert!(
        view["rows"][0]["features"]
            .as_str()
            .unwrap()
            .contains("\"amount\":\"numeric\""),
        "{view}"
    );

    // file:// works too, and declared features are checked against the file.
    let uri = format!("file://{}", file.display());
    let b = http
        .post_expect(
            "/api/v1/models/fraud/versions",
            json!({"reference_uri": uri, "features": {"amount": "numeric"}}),
            400,
        )
        .await;
    assert!(error_message(&b).contains("\"country\""), "{b}");
    for (uri, needle) in [
        (
            dir.path().join("missing.parquet").display().to_string(),
            "cannot open",
        ),
        ("s3://bucket/ref.parquet".to_string(), "not supported"),
        (dir.path().display().to_string(), "not a file"),
        // An editor must not make the daemon read whatever it can read.
        ("/etc/passwd".to_string(), "outside the directories"),
        (
            format!("{}/../../etc/hostname", dir.path().display()),
            "outside the directories",
        ),
    ] {
        let (s, b) = http
            .post(
                "/api/v1/models/fraud/versions",
                json!({"reference_uri": uri}),
            )
            .await;
        assert_eq!(s, 400, "{uri}: {b}");
        let msg = error_message(&b);
        assert!(msg.contains(needle), "{uri}: {msg}");
    }
    let garbage = dir.path().join("garbage.parquet");
    std::fs::write(&garbage, b"PAR1 definitely not parquet PAR1").unwrap();
    http.post_expect(
        "/api/v1/models/fraud/versions",
        json!({"reference_uri": garbage.to_str().unwrap()}),
        400,
    )
    .await;
    // None of the refused creations made a version or wrote reference rows.
    let m = http.api().models().get("fraud").await.unwrap();
    assert_eq!(m.latest_version, 1, "{m:?}");
    assert_eq!(count(&http, "reference").await, 3);
    let (s, _) = http
        .post(
            "/api/v1/models/fraud/versions",
            json!({"reference_uri": uri}),
        )
        .await;
    assert_eq!(s, 201);
    assert_eq!(count(&http, "reference").await, 6);
}

#[tokio::test]
async fn first_reference_upload_declares_the_features() {
    let d = Daemon::start();
    let http = d.http();
    let (s, _) = http.post("/api/v1/models", json!({"name": "fraud"})).await;
    assert_eq!(s, 201);
    let (s, _) = http.post("/api/v1/models/fraud/versions", json!({})).await;
    assert_eq!(s, 201);
    let ingest = http.with_token(Some(&http.token("loader", "ingest").await));
    let (s, b) = upload(
        &ingest,
        REFERENCE,
        "text/csv",
        None,
        "amount,country\n1.5,de\n2,fr\n".into(),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["features_declared"], true);
    let v = http.api().versions("fraud").get(1).await.unwrap();
    assert_eq!(
        v.features,
        Features::from([
            ("amount".to_string(), FeatureKind::Numeric),
            ("country".to_string(), FeatureKind::Categorical)
        ])
    );
    let updates = AuditQuery {
        action: Some("version.update".into()),
        ..AuditQuery::default()
    };
    let audit = http.api().audit().list(&updates).await.unwrap();
    assert_eq!(audit.items[0].actor, "loader", "{audit:?}");
    // From now on uploads are checked against them.
    let (s, b) = upload(
        &ingest,
        INFERENCES,
        "text/csv",
        None,
        "amount,colour\n1,red\n".into(),
    )
    .await;
    assert_eq!(s, 400, "{b}");
    // A second reference upload does not redeclare.
    let (s, b) = upload(&ingest, REFERENCE, "text/csv", None, "amount\n3\n".into()).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["features_declared"], false);
}

/// `modelwatch upload KIND --model fraud --version 1 [extra…] FILE`.
fn cli_upload(d: &Daemon, kind: &str, extra: &[&str], file: &std::path::Path) -> Output {
    let mut args = vec!["upload", kind, "--model", "fraud", "--version", "1"];
    args.extend_from_slice(extra);
    args.push(file.to_str().unwrap());
    d.cli(&args)
}

#[tokio::test]
async fn cli_uploads_files_and_explains_failures() {
    let d = Daemon::start();
    let http = d.http();
    declared_version(&http).await;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("batch.csv");
    std::fs::write(&csv, encode("csv", &rows("cli-csv", false))).unwrap();
    let gz = dir.path().join("batch.jsonl.gz");
    std::fs::write(&gz, gzip(&encode("ndjson", &rows("cli-gz", false)))).unwrap();
    let arrow = dir.path().join("batch.arrows");
    std::fs::write(&arrow, encode("arrow", &rows("cli-arrow", true))).unwrap();

    let mut ids = Vec::new();
    for (kind, file) in [
        ("inferences", &csv),
        ("inferences", &gz),
        ("reference", &arrow),
    ] {
        let out = cli_upload(&d, kind, &["--json"], file);
        assert!(out.status.success(), "{}", stderr(&out));
        let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(v["rows"], 3, "{v}");
        assert_eq!(v["table"], kind);
        ids.push(v["upload_id"].as_str().unwrap().to_string());
    }
    check_rows(&http, "inferences", "cli-csv", &ids[0]).await;
    let n = count_where(&http, "inferences", "inference_id LIKE 'cli-gz-%'").await;
    assert_eq!(n, 3);
    let n = count_where(&http, "reference", "inference_id LIKE 'cli-arrow-%'").await;
    assert_eq!(n, 3);

    // Table output by default.
    let out = cli_upload(&d, "inferences", &[], &csv);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("upload id"), "{}", stdout(&out));

    // A refused upload: exit 1 with the server's explanation.
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "amount\n1\nnope\n").unwrap();
    let out = cli_upload(&d, "inferences", &[], &bad);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("row 2"), "{}", stderr(&out));
    // Unknown extension: exit 2, unless --format says it.
    let odd = dir.path().join("batch.data");
    std::fs::copy(&csv, &odd).unwrap();
    let out = cli_upload(&d, "inferences", &[], &odd);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--format"), "{}", stderr(&out));
    let out = cli_upload(&d, "inferences", &["--format", "csv"], &odd);
    assert!(out.status.success(), "{}", stderr(&out));
    // versions create declares features and loads reference data from the
    // data directory's imports/, which the daemon always reads.
    let parquet = d.data_dir.join("imports").join("ref.parquet");
    write_parquet(&parquet, "cli-ref");
    let out = d.cli(&[
        "versions",
        "create",
        "fraud",
        "--feature",
        "amount=numeric",
        "--feature",
        "country=categorical",
        "--reference-uri",
        parquet.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["version"], 2);
    assert_eq!(v["features"]["country"], "categorical");
    let n = count_where(
        &http,
        "reference",
        "version = '2' AND inference_id LIKE 'cli-ref-%'",
    )
    .await;
    assert_eq!(n, 3);
    let missing = dir.path().join("missing.csv");
    let out = cli_upload(&d, "inferences", &[], &missing);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot open"), "{}", stderr(&out));
}
