//! The PostgreSQL listener through real clients: `psql` (Debian's
//! postgresql-client) and Python's psycopg replaying Grafana's SQL
//! (`tests/python/grafana_pg.py`), over plain TCP and TLS; garbage on the
//! socket; read-only, timeouts and wrong passwords as PostgreSQL errors.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::support::*;

/// Every table `psql` must list and query.
const TABLES: &[&str] = &[
    "samples",
    "histograms",
    "inferences",
    "reference",
    "logs",
    "spans",
    "drift_results",
    "models",
    "versions",
    "aliases",
    "alias_moves",
    "recommendations",
    "audit_log",
];

/// Runs `psql` against the daemon's PostgreSQL listener, the way a user
/// would: `PGPASSWORD=token psql -h … -p … -U grafana -d modelwatch`.
pub(crate) fn psql(d: &Daemon, password: &str, args: &[&str]) -> Output {
    let (host, port) = d.pg_addr();
    Command::new("psql")
        .args(["-h", &host, "-p", &port.to_string()])
        .args(["-U", "grafana", "-d", "modelwatch"])
        // No ~/.psqlrc; stop at the first error; show SQLSTATEs.
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=verbose"])
        .args(args)
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .env_remove("PGSERVICE")
        .env_remove("PGSSLMODE")
        .output()
        .expect("run psql (Debian package postgresql-client; .ci/run installs it)")
}

/// `psql -A -t -c SQL`: the bare value(s), or a panic with psql's error.
fn psql_value(d: &Daemon, sql: &str) -> String {
    let out = psql(d, TOKEN, &["-A", "-t", "-c", sql]);
    assert!(out.status.success(), "{sql}: {}", stderr(&out));
    stdout(&out).trim().to_string()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

fn rfc3339(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn attr(key: &str, value: &str) -> Value {
    json!({"key": key, "value": {"stringValue": value}})
}

/// A registered model with two versions, gauge `cpu` (1, 2, 3, one per
/// minute from `base`) and a histogram over OTLP/JSON, a span, and two
/// uploaded inferences; returns Grafana's `$__timeFilter` range around them.
async fn seed(d: &Daemon) -> (String, String) {
    let http = d.http();
    http.post_expect("/api/v1/models", json!({"name": "fraud"}), 201)
        .await;
    for run in ["r1", "r2"] {
        http.post_expect("/api/v1/models/fraud/versions", json!({"run_id": run}), 201)
            .await;
    }
    http.put_alias("fraud", "production", 2, 200).await;

    let base = (now_secs() / 60 - 10) * 60;
    let nanos = |secs: u64| (secs * 1_000_000_000).to_string();
    let resource = json!({"attributes": [attr("model.name", "fraud"), attr("model.version", "2")]});
    let points: Vec<Value> = (0..3u64)
        .map(|i| {
            json!({"timeUnixNano": nanos(base + 60 * i), "asDouble": (i + 1) as f64,
                   "attributes": [attr("host", "a")]})
        })
        .collect();
    let metrics = json!({"resourceMetrics": [{"resource": resource, "scopeMetrics": [{"metrics": [
        {"name": "cpu", "gauge": {"dataPoints": points}},
        {"name": "latency_seconds", "histogram": {"aggregationTemporality": 2, "dataPoints": [{
            "startTimeUnixNano": nanos(base), "timeUnixNano": nanos(base + 60),
            "count": "3", "sum": 0.6, "bucketCounts": ["1", "2", "0"], "explicitBounds": [0.1, 0.5]}]}}
    ]}]}]});
    let spans = json!({"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": [{
        "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
        "name": "predict", "kind": 2,
        "startTimeUnixNano": nanos(base), "endTimeUnixNano": nanos(base + 1)}]}]}]});
    for (path, body) in [("/v1/metrics", metrics), ("/v1/traces", spans)] {
        let (s, b) = http.post_json_bytes(path, &body).await;
        assert_eq!(s, 200, "{path}: {b}");
        assert!(b.get("partialSuccess").is_none(), "{path}: {b}");
    }
    let (s, b) = http
        .raw(
            "POST",
            "/api/v1/models/fraud/versions/2/inferences",
            "application/x-ndjson",
            b"{\"amount\": 1.5, \"country\": \"de\"}\n{\"amount\": 2.5, \"country\": \"fr\"}\n"
                .to_vec(),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    (rfc3339(base - 30), rfc3339(base + 150))
}

#[tokio::test]
async fn psql_lists_describes_and_queries_every_table() {
    let d = Daemon::start();
    seed(&d).await;

    let out = psql(&d, TOKEN, &["-c", "\\dt", "-c", "\\dv"]);
    assert!(out.status.success(), "\\dt: {}", stderr(&out));
    let listed = stdout(&out);
    for table in TABLES {
        assert!(
            listed.lines().any(|l| l.contains(&format!(" {table} "))),
            "\\dt and \\dv lack {table}:\n{listed}"
        );
    }

    let out = psql(&d, TOKEN, &["-c", "\\d samples"]);
    assert!(out.status.success(), "\\d samples: {}", stderr(&out));
    let described = stdout(&out);
    for column in ["ts", "metric", "value", "labels", "model", "version"] {
        assert!(
            described
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{column} "))),
            "\\d samples lacks {column}:\n{described}"
        );
    }

    // Every table answers `SELECT *` (each column type has a wire type)
    // and holds what was sent.
    for table in TABLES {
        let out = psql(
            &d,
            TOKEN,
            &["-c", &format!("SELECT * FROM {table} LIMIT 5")],
        );
        assert!(out.status.success(), "{table}: {}", stderr(&out));
    }
    for (table, rows) in [
        ("samples", "3"),
        ("histograms", "1"),
        ("spans", "1"),
        ("inferences", "2"),
        ("models", "1"),
        ("versions", "2"),
        ("aliases", "1"),
    ] {
        assert_eq!(
            psql_value(&d, &format!("SELECT count(*) FROM {table}")),
            rows,
            "{table}"
        );
    }
    assert!(
        psql_value(&d, "SELECT count(*) FROM audit_log")
            .parse::<u64>()
            .unwrap()
            >= 4
    );
    // Telemetry and registry join on model and version (text vs integer).
    assert_eq!(
        psql_value(
            &d,
            "SELECT a.alias || '=' || CAST(sum(s.value) AS BIGINT) FROM samples s \
             JOIN aliases a ON s.model = a.model AND s.version = CAST(a.version AS VARCHAR) \
             WHERE s.metric = 'cpu' GROUP BY a.alias"
        ),
        "production=6"
    );
    assert_eq!(
        psql_value(&d, "SELECT labels FROM samples LIMIT 1"),
        r#"{"host":"a"}"#
    );
    // The same SQL duration metric as HTTP queries.
    let (_, metrics) = d.http().get("/metrics").await;
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    let count = metrics
        .lines()
        .find_map(|l| l.strip_prefix("modelwatch_sql_query_duration_seconds_count "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_default();
    assert!(
        count >= 20.0,
        "pg queries are not timed:\n{}",
        &metrics[..metrics.len().min(400)]
    );
}

#[tokio::test]
async fn psql_shows_errors_and_refuses_writes_and_bad_passwords() {
    let d = Daemon::start();
    let http = d.http();

    // A syntax error: psql prints PostgreSQL's `ERROR:  42601: …`.
    let out = psql(&d, TOKEN, &["-c", "SELEC 1"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("ERROR:  42601:"), "{}", stderr(&out));
    let out = psql(&d, TOKEN, &["-c", "SELECT * FROM no_such_table"]);
    assert!(stderr(&out).contains("ERROR:  42P01:"), "{}", stderr(&out));

    // Writes of every kind are refused with read_only_sql_transaction.
    for write in [
        "CREATE TABLE t (a INT)",
        "INSERT INTO models VALUES ('x')",
        "DROP TABLE samples",
        "COPY samples TO '/tmp/samples.csv'",
        "SET datafusion.execution.batch_size = 1",
    ] {
        let out = psql(&d, TOKEN, &["-c", write]);
        assert!(!out.status.success(), "{write} was accepted");
        assert!(
            stderr(&out).contains("ERROR:  25006:") && stderr(&out).contains("read-only"),
            "{write}: {}",
            stderr(&out)
        );
    }
    // Session settings and transactions are fine.
    let out = psql(
        &d,
        TOKEN,
        &[
            "-c",
            "SET application_name = 'grafana'",
            "-c",
            "BEGIN",
            "-c",
            "SELECT 1",
            "-c",
            "COMMIT",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    // The password is a token: any role reads, a wrong one is refused.
    let reader = http.token("dash", "reader").await;
    assert_eq!(psql_value_as(&d, &reader, "SELECT 41 + 1"), "42");
    for bad in ["wrong", "mw_not_a_token_at_all_0000"] {
        let out = psql(&d, bad, &["-c", "SELECT 1"]);
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("password authentication failed"),
            "{}",
            stderr(&out)
        );
    }
    // A revoked token stops working.
    let (s, b) = http.send("DELETE", "/api/v1/tokens/dash", None).await;
    assert!(s == 200 || s == 204, "{b}");
    let out = psql(&d, &reader, &["-c", "SELECT 1"]);
    assert!(
        stderr(&out).contains("password authentication failed"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn no_auth_asks_no_password() {
    let d = Daemon::start_with(Start {
        args: vec!["--no-auth".into()],
        bootstrap: false,
        ..Default::default()
    });
    let (host, port) = d.pg_addr();
    let out = Command::new("psql")
        .args(["-h", &host, "-p", &port.to_string(), "-U", "anyone"])
        .args(["-d", "modelwatch", "-X", "-w", "-A", "-t", "-c", "SELECT 7"])
        .env_remove("PGPASSWORD")
        .output()
        .expect("run psql");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "7");
}

fn psql_value_as(d: &Daemon, token: &str, sql: &str) -> String {
    let out = psql(d, token, &["-A", "-t", "-c", sql]);
    assert!(out.status.success(), "{sql}: {}", stderr(&out));
    stdout(&out).trim().to_string()
}

#[tokio::test]
async fn long_queries_are_canceled_with_57014() {
    const SLOW: &str = "SELECT count(*) FROM range(1000000000000)";
    // The server's limit (--sql-timeout-seconds, shared with HTTP SQL).
    let d = Daemon::start_with(Start::args(&["--sql-timeout-seconds", "1"]));
    // The message names the limit that applied.
    let canceled_after = |setting: Option<&str>, limit: &str| {
        let started = Instant::now();
        let mut args = Vec::new();
        if let Some(set) = setting {
            args.extend(["-c", set]);
        }
        args.extend(["-c", SLOW]);
        let out = psql(&d, TOKEN, &args);
        let err = stderr(&out);
        assert!(
            err.contains("ERROR:  57014:") && err.contains(&format!("longer than {limit} ")),
            "{setting:?}: {err}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    };
    canceled_after(None, "1s");
    // A session's statement_timeout lowers it, never raises it.
    canceled_after(Some("SET statement_timeout = 200"), "200ms");
    canceled_after(Some("SET statement_timeout = '1h'"), "1s");
    // HTTP SQL has the same limit.
    let (status, body) = d
        .http()
        .post(
            "/api/v1/sql",
            json!({"sql": "SELECT 1", "timeout_seconds": 2}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(psql_value(&d, "SELECT 1"), "1");
}

fn python() -> String {
    std::env::var("MODELWATCH_TEST_PYTHON").unwrap_or_else(|_| {
        panic!(
            "MODELWATCH_TEST_PYTHON is not set: it names a python with the packages of \
             tests/python/requirements.txt (.ci/run creates it in $HOME/.cache/modelwatch/venv)"
        )
    })
}

/// A self-signed certificate for 127.0.0.1 made with the openssl CLI.
fn self_signed(dir: &std::path::Path) -> (String, String) {
    let cert = dir.join("pg.crt").display().to_string();
    let key = dir.join("pg.key").display().to_string();
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .args(["-keyout", &key, "-out", &cert])
        .output()
        .expect("run openssl (Debian package openssl; .ci/run installs it)");
    assert!(out.status.success(), "openssl: {}", stderr(&out));
    (cert, key)
}

fn run_grafana_script(d: &Daemon, sslmode: &str, from: &str, to: &str) {
    let (host, port) = d.pg_addr();
    let script = format!("{}/python/grafana_pg.py", manifest_dir());
    let out = Command::new(python())
        .arg(script)
        .args([&host, &port.to_string(), TOKEN, sslmode, from, to])
        .output()
        .expect("run python");
    assert!(
        out.status.success() && stdout(&out).contains("grafana sql ok"),
        "grafana_pg.py (sslmode={sslmode}) failed:\nstdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
}

#[tokio::test]
async fn grafana_sql_replayed_with_psycopg_over_tls_and_plain_tcp() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(certs.path());
    let d = Daemon::start_with(Start::args(&["--pg-tls-cert", &cert, "--pg-tls-key", &key]));
    let (from, to) = seed(&d).await;
    run_grafana_script(&d, "require", &from, &to);
    // TLS is optional: Grafana's "disable" mode still connects.
    run_grafana_script(&d, "disable", &from, &to);

    // psql with sslmode=require negotiates TLS too.
    let (host, port) = d.pg_addr();
    let out = Command::new("psql")
        .arg(format!(
            "host={host} port={port} user=grafana dbname=modelwatch sslmode=require"
        ))
        .args(["-X", "-A", "-t", "-c", "SELECT count(*) FROM samples"])
        .env("PGPASSWORD", TOKEN)
        .output()
        .expect("run psql");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "3");
}

#[tokio::test]
async fn grafana_sql_without_tls_is_refused_tls() {
    let d = Daemon::start();
    let (host, port) = d.pg_addr();
    // No certificate configured: a client that insists on TLS is told no.
    let out = Command::new("psql")
        .arg(format!(
            "host={host} port={port} user=grafana dbname=modelwatch sslmode=require"
        ))
        .args(["-X", "-c", "SELECT 1"])
        .env("PGPASSWORD", TOKEN)
        .output()
        .expect("run psql");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("SSL"),
        "psql did not report the refused TLS: {}",
        stderr(&out)
    );
}

/// Sends `bytes` on a fresh connection and reads until the server closes it
/// or a second passes; returns what the server answered.
fn poke(addr: &str, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    answer
}

#[tokio::test]
async fn garbage_on_the_socket_does_not_hurt_the_listener() {
    let d = Daemon::start();
    let addr = d.pg_addr.clone().unwrap();
    let startup = |len: u32, version: u32, rest: &[u8]| {
        let mut v = len.to_be_bytes().to_vec();
        v.extend(version.to_be_bytes());
        v.extend(rest);
        v
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("nothing", Vec::new()),
        ("garbage", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        (
            "random bytes",
            (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect(),
        ),
        ("truncated length", vec![0, 0]),
        (
            "truncated startup",
            startup(100, 196_608, b"user\0grafana\0"),
        ),
        (
            "oversized startup",
            startup(0x7fff_ffff, 196_608, b"user\0"),
        ),
        ("length below the header", startup(4, 196_608, b"")),
        ("unknown protocol", startup(9, 0x0009_0000, b"\0")),
        (
            "SSL request then garbage",
            [startup(8, 80_877_103, b""), b"\x16\x03\x01garbage".to_vec()].concat(),
        ),
        (
            "startup without user then junk",
            [startup(13, 196_608, b"a\0b\0\0"), vec![b'Q', 0, 0, 0, 2]].concat(),
        ),
        (
            "password before startup",
            [vec![b'p', 0, 0, 0, 9], b"token\0".to_vec()].concat(),
        ),
    ];
    for (name, bytes) in &cases {
        let answer = poke(&addr, bytes);
        // Whatever the answer (an error or a close), never a crash.
        assert!(
            d.http().get("/healthz").await.0 == 200,
            "{name}: the daemon is gone; answer {answer:?}"
        );
    }
    // Many half-open connections at once, then a real client still works.
    let idle: Vec<TcpStream> = (0..50)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    assert_eq!(psql_value(&d, "SELECT 1"), "1");
    drop(idle);
    let (status, log) = d.terminate();
    assert!(status.success(), "{log}");
}

#[tokio::test]
async fn the_listener_can_be_switched_off_and_stops_with_the_daemon() {
    let d = Daemon::start_with(Start::args(&["--pg-listen", "off"]));
    assert!(d.pg_addr.is_none());
    assert_eq!(d.http().get("/healthz").await.0, 200);
    drop(d);

    // An authenticated idle session (psql waiting at its prompt) does not
    // hold the daemon up at SIGTERM.
    let d = Daemon::start();
    let (host, port) = d.pg_addr();
    let mut session = Command::new("psql")
        .args(["-h", &host, "-p", &port.to_string(), "-U", "grafana"])
        .args(["-d", "modelwatch", "-X"])
        .env("PGPASSWORD", TOKEN)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run psql");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !d
        .stderr
        .lock()
        .unwrap()
        .contains("PostgreSQL client authenticated")
    {
        assert!(Instant::now() < deadline, "psql never authenticated");
        std::thread::sleep(Duration::from_millis(20));
    }
    let started = Instant::now();
    let (status, log) = d.terminate();
    assert!(status.success(), "{log}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stopping took {:?}",
        started.elapsed()
    );
    let _ = session.kill();
    let _ = session.wait();
}
