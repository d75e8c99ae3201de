//! A hostile but careful user: connection floods, queries built to crash
//! the process or eat its memory, policies built to stop the evaluator,
//! editors reaching for protected aliases, uploads cut by `kill -9`, bodies
//! and paths of the wrong shape. Each test failed before the hardening.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::*;

/// Resident memory of a process, in bytes.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS")
        * 1024
}

/// CPU time a process has used, in clock ticks (user + system).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
    // Fields after the command name (which may hold spaces) in parentheses.
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Reads from a socket until the peer closes it; returns what it sent and
/// how long that took.
pub(crate) fn read_until_closed(mut s: TcpStream, limit: Duration) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    s.set_read_timeout(Some(limit)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (out, started.elapsed()),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => panic!(
                "the peer kept the connection open for {:?}: {e}",
                started.elapsed()
            ),
        }
    }
}

#[test]
fn postgres_connections_neither_leak_nor_pile_up() {
    let d = Daemon::start_with(Start::args(&["--pg-max-connections", "16"]));
    let (host, port) = d.pg_addr();
    let addr = format!("{host}:{port}");
    let pid = d.child.id();
    // Warm up (the first connections allocate what every later one shares).
    for _ in 0..20 {
        drop(TcpStream::connect(&addr).unwrap());
    }
    let before = rss_bytes(pid);
    for _ in 0..300 {
        drop(TcpStream::connect(&addr).unwrap());
    }
    // Each connection used to build pg_catalog (~5 MB) and never free it.
    let grown = rss_bytes(pid).saturating_sub(before);
    assert!(
        grown < 64 << 20,
        "300 connect/close cycles grew the daemon by {} MiB",
        grown >> 20
    );

    // A connection that never logs in is closed after the startup timeout.
    // (The slots of the connections just closed free up as the daemon
    // notices they are gone; until then a new one may be refused at once.)
    let deadline = Instant::now() + Duration::from_secs(30);
    let (idle, connected) = loop {
        let s = TcpStream::connect(&addr).unwrap();
        let connected = Instant::now();
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        match (&s).read(&mut [0u8; 1]) {
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break (s, connected);
            }
            other => {
                assert!(Instant::now() < deadline, "no free slot: {other:?}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    let (sent, _) = read_until_closed(idle, Duration::from_secs(30));
    let after = connected.elapsed();
    assert!(sent.is_empty(), "{sent:?}");
    assert!(
        after >= Duration::from_secs(9) && after < Duration::from_secs(20),
        "an idle connection was closed after {after:?}"
    );

    // At most 16 at once: the 17th is told so, in PostgreSQL's words.
    let held: Vec<TcpStream> = (0..16)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    let (refusal, _) =
        read_until_closed(TcpStream::connect(&addr).unwrap(), Duration::from_secs(5));
    assert_eq!(refusal.first(), Some(&b'E'), "{refusal:?}");
    let text = String::from_utf8_lossy(&refusal);
    assert!(
        text.contains("53300") && text.contains("too many"),
        "{text}"
    );
    drop(held);
    // The slots come back: psql gets in again.
    let out = psql(&d, "SELECT 1 AS one");
    assert!(out.contains("one"), "{out}");
    assert!(
        metric(&d, "modelwatch_pg_connections_refused_total") >= 1.0,
        "refusals are counted"
    );
}

/// psql against the daemon with the admin token; returns stdout+stderr.
fn psql(d: &Daemon, sql: &str) -> String {
    let (host, port) = d.pg_addr();
    let out = std::process::Command::new("psql")
        .args([
            "-h",
            &host,
            "-p",
            &port.to_string(),
            "-U",
            "e2e",
            "-d",
            "modelwatch",
        ])
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .env("PGPASSWORD", TOKEN)
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .expect("run psql");
    format!("{}{}", stdout(&out), stderr(&out))
}

/// One sample of a metric from `/metrics` (the first series).
fn metric(d: &Daemon, name: &str) -> f64 {
    let out = std::process::Command::new("curl")
        .args(["-fsS", "-H", &format!("Authorization: Bearer {TOKEN}")])
        .arg(format!("{}/metrics", d.url))
        .output()
        .expect("curl");
    let text = stdout(&out);
    text.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics:\n{text}"))
}

#[test]
fn a_request_head_sent_slowly_is_cut_off() {
    let d = Daemon::start();
    let addr = d.url.trim_start_matches("http://").to_string();
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let (_, after) = read_until_closed(s, Duration::from_secs(60));
    assert!(
        after < Duration::from_secs(20),
        "a half-sent request head held its connection for {after:?}"
    );
}

#[tokio::test]
async fn queries_built_to_crash_the_daemon_are_refused_and_it_keeps_serving() {
    let d = Daemon::start();
    let http = d.http();
    let chain = |op: &str, n: usize| vec!["1"; n].join(op);
    for sql in [
        format!("SELECT {}", chain("+", 2_000)),
        format!("SELECT 1 WHERE {}", vec!["1 = 1"; 2_000].join(" OR ")),
        vec!["SELECT 1"; 2_000].join(" UNION ALL "),
        format!("SELECT {}", chain("+", 200_000)),
    ] {
        let body = http
            .post_expect("/api/v1/sql", json!({ "sql": sql }), 400)
            .await;
        assert_eq!(body["error"]["code"], "invalid_query", "{body}");
        assert!(
            error_message(&body).contains("nests more than 1000 levels"),
            "{body}"
        );
    }
    // Deep but within the limit: answered.
    let r = sql(&http, &format!("SELECT {} AS n", chain("+", 900))).await;
    assert_eq!(r["rows"][0]["n"], 900);
    // The same over the PostgreSQL wire.
    let out = psql(&d, &format!("SELECT {}", chain("+", 2_000)));
    assert!(out.contains("nests more than"), "{out}");
    assert!(psql(&d, "SELECT 41 + 1 AS answer").contains("42"));
    // And the process is the one that started.
    assert!(d.child.id() > 0);
    let (status, _) = http.get("/healthz").await;
    assert_eq!(status, 200);
    http.get_expect("/readyz", 200).await;
}

/// `POST /api/v1/sql` answers 400 with `needle` in its message.
async fn refused(http: &Http, request: Value, needle: &str) {
    let body = http.post_expect("/api/v1/sql", request, 400).await;
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(needle), "{needle:?} not in {body}");
}

#[tokio::test]
async fn sql_memory_and_time_are_bounded() {
    let d = Daemon::start_with(Start::args(&[
        "--sql-memory-limit",
        "64MiB",
        "--sql-timeout-seconds",
        "5",
    ]));
    let http = d.http();
    let pid = d.child.id();
    let before = rss_bytes(pid);
    // Half a gigabyte from 30 bytes of SQL.
    refused(
        &http,
        json!({"sql": "SELECT length(repeat('x', 500000000)) AS n"}),
        "limit",
    )
    .await;
    // A result larger than the pool fails instead of growing the daemon.
    refused(
        &http,
        json!({"sql": "SELECT repeat(CAST(value AS VARCHAR), 200) AS s FROM range(1000000)", "limit": 1000000}),
        "Resources exhausted",
    )
    .await;
    assert!(
        rss_bytes(pid).saturating_sub(before) < 512 << 20,
        "the refused queries grew the daemon by {} MiB",
        rss_bytes(pid).saturating_sub(before) >> 20
    );
    // Two columns of one name cannot be JSON row keys; CSV keeps both.
    refused(
        &http,
        json!({"sql": "SELECT * FROM (SELECT 1 AS a) x, (SELECT 2 AS a) y"}),
        "more than one column named \"a\"",
    )
    .await;
    let csv = crate::support::http_client()
        .post(format!("{}/api/v1/sql", d.url))
        .bearer_auth(TOKEN)
        .header("accept", "text/csv")
        .json(&json!({"sql": "SELECT * FROM (SELECT 1 AS a) x, (SELECT 2 AS a) y"}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(csv.trim(), "a,a\n1,2");

    // A timeout answers on time and stops the work: the daemon is idle
    // right after, not still computing the abandoned query.
    let started = Instant::now();
    let (status, body) = http
        .post(
            "/api/v1/sql",
            json!({"sql": "SELECT count(*) FROM range(100000000000)", "timeout_seconds": 2}),
        )
        .await;
    let took = started.elapsed();
    assert_eq!(status, 504, "{body}");
    assert!(
        took < Duration::from_millis(2_800),
        "a 2 s limit answered after {took:?}"
    );
    let ticks_per_second = 100; // USER_HZ on Linux.
    let cpu_before = cpu_ticks(pid);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let busy = cpu_ticks(pid) - cpu_before;
    assert!(
        busy < ticks_per_second,
        "the daemon used {busy} ticks of CPU in the 2 s after the timeout"
    );
}

#[tokio::test]
async fn a_policy_built_to_stop_the_evaluator_is_refused_and_a_stored_one_is_reported() {
    let d = Daemon::start();
    let http = d.http();
    for m in ["a", "b"] {
        http.model_with_versions(m, 1).await;
        http.put_expect(
            &format!("/api/v1/models/{m}/aliases/production"),
            json!({"version": 1}),
            200,
        )
        .await;
    }
    for (field, value) in [
        ("interval", "99999999999d"),
        ("interval", "31d"),
        ("current_window", "100000d"),
        ("baseline_window", "99999999999d"),
    ] {
        let (status, body) = http
            .put("/api/v1/models/a/policy", json!({ field: value }))
            .await;
        assert_eq!(status, 400, "{field}={value}: {body}");
        assert!(error_message(&body).contains(field), "{body}");
    }
    http.put_expect(
        "/api/v1/models/a/policy",
        json!({"rollback": {"errors": {"source": "spans"}, "window": "99999999999d"}}),
        400,
    )
    .await;
    for m in ["a", "b"] {
        http.put_expect(
            &format!("/api/v1/models/{m}/policy"),
            json!({"interval": "1m"}),
            200,
        )
        .await;
    }
    // A policy stored by an older modelwatch, before the bounds existed.
    let db = d.data_dir.join("registry.sqlite");
    let out = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg(
            "UPDATE monitoring_policies SET policy = json_set(policy, '$.interval', '99999999999d') \
             WHERE model_id = (SELECT id FROM models WHERE name = 'a')",
        )
        .output()
        .expect("run sqlite3");
    assert!(out.status.success(), "{}", stderr(&out));
    let report = http.post_expect("/api/v1/evaluate", json!({}), 200).await;
    let outcome = |m: &str| -> Value {
        report["versions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["model"] == m)
            .cloned()
            .unwrap_or_else(|| panic!("{m} not in {report}"))
    };
    assert_eq!(outcome("a")["status"], "error", "{report}");
    assert!(
        outcome("a")["message"]
            .as_str()
            .unwrap()
            .contains("stored policy is invalid"),
        "{report}"
    );
    assert_ne!(outcome("b")["status"], "error", "{report}");
    // The evaluator still runs (its own ticks included) and the daemon is ready.
    http.post_expect("/api/v1/evaluate", json!({"model": "b"}), 200)
        .await;
    http.get_expect("/readyz", 200).await;
    assert_eq!(
        metric(&d, "modelwatch_background_duty_up{duty=\"evaluator\"}"),
        1.0
    );
}

#[tokio::test]
async fn protected_aliases_cannot_be_removed_renamed_or_respelled_by_an_editor() {
    let d = Daemon::start();
    let admin = d.http();
    let editor = admin.with_token(Some(&admin.token("ci", "editor").await));
    let approver = admin.with_token(Some(&admin.token("release", "approver").await));
    editor.model_with_versions("m", 2).await;
    approver.put_alias("m", "production", 1, 200).await;

    for alias in ["Production", "PRODUCTION", "production"] {
        let (status, body) = editor
            .put(
                &format!("/api/v1/models/m/aliases/{alias}"),
                json!({"version": 2}),
            )
            .await;
        assert_eq!(status, 403, "{alias}: {body}");
    }
    let (status, body) = editor.send("DELETE", "/api/v1/models/m", None).await;
    assert_eq!(status, 403, "{body}");
    assert!(error_message(&body).contains("protected alias"), "{body}");
    for (route, request) in [
        ("registered-models/delete", json!({"name": "m"})),
        (
            "registered-models/rename",
            json!({"name": "m", "new_name": "m2"}),
        ),
        (
            "model-versions/transition-stage",
            json!({"name": "m", "version": "2", "stage": "Production", "archive_existing_versions": false}),
        ),
    ] {
        let (status, body) = editor
            .send(
                if route.ends_with("delete") {
                    "DELETE"
                } else {
                    "POST"
                },
                &format!("/api/2.0/mlflow/{route}"),
                Some(request),
            )
            .await;
        assert_eq!(status, 403, "{route}: {body}");
        assert_eq!(body["error_code"], "PERMISSION_DENIED", "{route}: {body}");
    }
    // Nothing moved.
    let (_, alias) = admin.get("/api/v1/models/m/aliases/production").await;
    assert_eq!(alias["version"], 1, "{alias}");
    // An approver may.
    let (status, _) = approver.send("DELETE", "/api/v1/models/m", None).await;
    assert_eq!(status, 204);
}

/// An NDJSON body of `rows` rows (about 100 bytes each).
fn ndjson(rows: usize, tag: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(rows * 100);
    for i in 0..rows {
        writeln!(
            out,
            r#"{{"inference_id": "{tag}-{i}", "amount": {}, "country": "c{}", "prediction": 0.{i}}}"#,
            i % 1000,
            i % 7
        )
        .unwrap();
    }
    out
}

fn parquet_files(dir: &std::path::Path) -> usize {
    fn walk(p: &std::path::Path) -> usize {
        std::fs::read_dir(p)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| {
                let path = e.path();
                if path.is_dir() {
                    walk(&path)
                } else {
                    usize::from(path.extension().is_some_and(|x| x == "parquet"))
                }
            })
            .sum()
    }
    walk(dir)
}

#[tokio::test]
async fn an_upload_cut_by_kill_9_leaves_nothing_and_its_retry_stores_once() {
    let root = tempfile::tempdir().unwrap();
    let d = Daemon::start_in(root.path().join("data"), None, Start::default());
    let http = d.http();
    http.model_with_versions("m", 1).await;
    let data_dir = d.data_dir.clone();
    let url = format!("{}/api/v1/models/m/versions/1/inferences", d.url);
    // Big enough that the daemon writes Parquet before the body ends.
    let body = ndjson(600_000, "k9");
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (killed_tx, killed_rx) = tokio::sync::oneshot::channel::<()>();
    let chunks: Vec<Vec<u8>> = body.chunks(256 << 10).map(<[u8]>::to_vec).collect();
    let counter = sent.clone();
    let total = body.len();
    let stream = futures::stream::unfold(
        (chunks.into_iter(), Some(killed_rx)),
        move |(mut it, mut gate)| {
            let counter = counter.clone();
            async move {
                let chunk = it.next()?;
                let so_far = counter.fetch_add(chunk.len(), std::sync::atomic::Ordering::SeqCst)
                    + chunk.len();
                if so_far > total * 9 / 10
                    && let Some(rx) = gate.take()
                {
                    // Wait for the kill before sending the rest.
                    let _ = rx.await;
                }
                Some((Ok::<_, std::io::Error>(chunk), (it, gate)))
            }
        },
    );
    let upload = tokio::spawn(
        crate::support::http_client()
            .post(&url)
            .bearer_auth(TOKEN)
            .header("content-type", "application/x-ndjson")
            .header("idempotency-key", "batch-2026-12-06")
            .body(reqwest::Body::wrap_stream(stream))
            .send(),
    );
    // Kill once most of the body is in and the daemon has written rows out.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !(sent.load(std::sync::atomic::Ordering::SeqCst) > total * 9 / 10
        && parquet_files(&data_dir.join("history/tables")) > 0)
    {
        assert!(Instant::now() < deadline, "the upload made no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    d.kill9();
    let _ = killed_tx.send(());
    assert!(upload.await.unwrap().is_err(), "the reply was lost");

    // After the restart: nothing of the cut upload, not even its files.
    let d = Daemon::start_in(data_dir.clone(), None, Start::default());
    let http = d.http();
    assert_eq!(count(&http, "inferences").await, 0);
    assert_eq!(parquet_files(&data_dir.join("history/tables")), 0);

    // The client retries with the same key: stored once.
    let send = |body: Vec<u8>| {
        crate::support::http_client()
            .post(format!("{}/api/v1/models/m/versions/1/inferences", d.url))
            .bearer_auth(TOKEN)
            .header("content-type", "application/x-ndjson")
            .header("idempotency-key", "batch-2026-12-06")
            .body(body)
            .send()
    };
    let first = send(body.clone()).await.unwrap();
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["rows"], 600_000);
    assert_eq!(first["replayed"], false);
    // Its reply is lost too; the retry stores nothing and says so.
    let again = send(body.clone()).await.unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(
        again
            .headers()
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["upload_id"], first["upload_id"]);
    assert_eq!(again["replayed"], true);
    assert_eq!(count(&http, "inferences").await, 600_000);
    // The same key for another body is a mistake, not a retry.
    let other = send(ndjson(10, "other")).await.unwrap();
    assert_eq!(other.status(), 422);
    let other: Value = other.json().await.unwrap();
    assert_eq!(other["error"]["code"], "idempotency_key_reused", "{other}");
    assert_eq!(count(&http, "inferences").await, 600_000);
}

#[tokio::test]
async fn a_failed_upload_leaves_no_rows_and_no_files() {
    let d = Daemon::start();
    let http = d.http();
    http.model_with_versions("m", 1).await;
    // Hundreds of thousands of good rows, then a bad one.
    let mut body = ndjson(500_000, "ok");
    body.extend_from_slice(b"{\"amount\": \"not a number\"}\n");
    let (status, reply) = http
        .raw(
            "POST",
            "/api/v1/models/m/versions/1/inferences",
            "application/x-ndjson",
            body,
        )
        .await;
    assert_eq!(status, 400, "{reply}");
    assert!(error_message(&reply).contains("row 500001"), "{reply}");
    assert_eq!(count(&http, "inferences").await, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while parquet_files(&d.data_dir.join("history/tables")) > 0 {
        assert!(Instant::now() < deadline, "the refused upload left files");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let staged = std::fs::read_dir(d.data_dir.join("uploads"))
        .unwrap()
        .count();
    assert_eq!(staged, 0);
}

#[tokio::test]
async fn bodies_and_targets_of_the_wrong_shape_change_nothing() {
    let d = Daemon::start();
    let http = d.http();
    // A JSON array is not a model.
    let (status, body) = http
        .raw(
            "POST",
            "/api/v1/models",
            "application/json",
            b"[\"name\"]".to_vec(),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(error_message(&body).contains("JSON object"), "{body}");
    let (status, _) = http.get("/api/v1/models/name").await;
    assert_eq!(status, 404);
    // MLflow: a number is not a name.
    let body = http
        .post_expect(
            "/api/2.0/mlflow/registered-models/create",
            json!({"name": 5}),
            400,
        )
        .await;
    assert_eq!(body["error_code"], "INVALID_PARAMETER_VALUE", "{body}");
    assert_eq!(http.get("/api/v1/models/5").await.0, 404);
    // Control and bidirectional characters in an owner.
    for owner in ["nul\u{0}", "bell\u{7}", "evil\u{202E}txt"] {
        let (status, body) = http
            .post("/api/v1/models", json!({"name": "o", "owner": owner}))
            .await;
        assert_eq!(status, 400, "{owner:?}: {body}");
    }
    // A megabyte of reason.
    http.model_with_versions("m", 1).await;
    http.put_expect(
        "/api/v1/models/m/aliases/canary",
        json!({"version": 1, "reason": "x".repeat(1 << 20)}),
        413,
    )
    .await;
    http.put_expect(
        "/api/v1/models/m/aliases/canary",
        json!({"version": 1, "reason": "x".repeat(5000)}),
        400,
    )
    .await;
    assert_eq!(http.get("/api/v1/models/m/aliases/canary").await.0, 404);
    // A request target longer than the API reads: a JSON 414.
    let body = http
        .get_expect(
            &format!("/api/v1/models?name_prefix={}", "a".repeat(40_000)),
            414,
        )
        .await;
    assert_eq!(body["error"]["code"], "uri_too_long");
}

/// Sends a raw HTTP/1.1 request and returns the response head.
fn raw_head(addr: &str, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(request).unwrap();
    let (reply, _) = read_until_closed(s, Duration::from_secs(20));
    let text = String::from_utf8_lossy(&reply).to_string();
    text.split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

#[test]
fn early_refusals_say_they_close_the_connection() {
    let d = Daemon::start_with(Start::args(&["--max-body-bytes", "2048"]));
    let addr = d.url.trim_start_matches("http://").to_string();
    // 401 before the body was read.
    let head = raw_head(
        &addr,
        b"POST /api/v1/models HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"name\": \"m\"",
    );
    assert!(head.starts_with("http/1.1 401"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    // 413 with the rest of the body unread.
    let mut request = format!(
        "POST /api/v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
    )
    .into_bytes();
    request.extend(std::iter::repeat_n(b' ', 4096));
    let head = raw_head(&addr, &request);
    assert!(head.starts_with("http/1.1 413"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
}

#[tokio::test]
async fn readers_do_not_see_webhook_urls() {
    let d = Daemon::start();
    let admin = d.http();
    let reader = admin.with_token(Some(&admin.token("viewer", "reader").await));
    admin.post_expect("/api/v1/webhooks",
            json!({"name": "slack", "url": "http://hooks.example:8080/services/T0/B0/s3cret", "events": ["alias.moved"]}), 201).await;
    let (_, page) = reader.get("/api/v1/audit?action=webhook.create").await;
    let entry = &page["items"][0];
    assert_eq!(
        entry["after"]["url"], "http://hooks.example:8080/…",
        "{page}"
    );
    let (_, page) = admin.get("/api/v1/audit?action=webhook.create").await;
    assert_eq!(
        page["items"][0]["after"]["url"],
        "http://hooks.example:8080/services/T0/B0/s3cret"
    );
    let rows = sql(
        &reader,
        "SELECT after FROM audit_log WHERE action = 'webhook.create'",
    )
    .await;
    let after = rows["rows"][0]["after"].as_str().unwrap();
    assert!(!after.contains("s3cret"), "{after}");
    // The chain still verifies: only the view is redacted.
    let (_, verify) = reader.get("/api/v1/audit/verify").await;
    assert_eq!(verify["ok"], true, "{verify}");
}

#[tokio::test]
async fn the_cli_can_rerun_an_upload_safely_with_its_key() {
    let d = Daemon::start();
    let http = d.http();
    http.model_with_versions("m", 1).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rows.ndjson");
    std::fs::write(&file, ndjson(1000, "cli")).unwrap();
    let run = || {
        d.cli(&[
            "upload",
            "inferences",
            "--model",
            "m",
            "--version",
            "1",
            "--idempotency-key",
            "nightly-2026-12-06",
            "--json",
            file.to_str().unwrap(),
        ])
    };
    let first = run();
    assert!(first.status.success(), "{}", stderr(&first));
    let first: Value = serde_json::from_str(&stdout(&first)).unwrap();
    assert_eq!(first["replayed"], false);
    let again = run();
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("nothing was stored again"),
        "{}",
        stderr(&again)
    );
    let again: Value = serde_json::from_str(&stdout(&again)).unwrap();
    assert_eq!(again["upload_id"], first["upload_id"]);
    assert_eq!(count(&http, "inferences").await, 1000);
}
