//! The real Prometheus (Debian's package) scraping modelwatch's `/metrics`
//! and remote-writing to modelwatch, both with bearer tokens; the samples are
//! read back through SQL.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::*;

/// Held for its drop: the process stops with the test.
pub(crate) struct Prometheus {
    /// Its web API is at `http://127.0.0.1:port`.
    pub(crate) port: u16,
    _process: KillOnDrop,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Debian's `prometheus` on a free loopback port with the configuration
    /// `config` writes for that port (in a temporary directory, its TSDB
    /// beside it); stopped when dropped.
    pub(crate) fn start(config: impl FnOnce(u16) -> String) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let dir_path = dir.path();
        std::fs::write(dir_path.join("prometheus.yml"), config(port)).unwrap();
        Prometheus {
            port,
            _process: KillOnDrop(
                Command::new("prometheus")
                    .arg(format!(
                        "--config.file={}",
                        dir_path.join("prometheus.yml").display()
                    ))
                    .arg(format!(
                        "--storage.tsdb.path={}",
                        dir_path.join("tsdb").display()
                    ))
                    .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("prometheus must be installed (.ci/run installs Debian's prometheus)"),
            ),
            _dir: dir,
        }
    }
}

/// The `scrape_configs` entry for modelwatch's `/metrics` with `token`.
pub(crate) fn modelwatch_scrape_job(d: &Daemon, token: &str) -> String {
    format!(
        r#"  - job_name: modelwatch
    authorization:
      credentials: {token}
    static_configs:
      - targets: ["{target}"]
"#,
        target = d.url.trim_start_matches("http://")
    )
}

#[tokio::test]
async fn prometheus_remote_writes_with_a_token_and_sql_reads_it_back() {
    let d = Daemon::start();
    let admin = d.http();
    let ingest = admin.token("prometheus", "ingest").await;
    let reader = admin.token("prometheus-scrape", "reader").await;
    // Prometheus scrapes itself and modelwatch; its external labels
    // attribute every series to a model version, as a model server's
    // Prometheus would.
    let prometheus = Prometheus::start(|port| {
        format!(
            r#"
global:
  scrape_interval: 1s
  external_labels:
    model: prom-selftest
    model_version: "7"
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["127.0.0.1:{port}"]
{modelwatch}remote_write:
  - url: {url}/api/v1/write
    authorization:
      credentials: {ingest}
    queue_config:
      batch_send_deadline: 1s
      min_backoff: 100ms
      max_backoff: 1s
"#,
            modelwatch = modelwatch_scrape_job(&d, &reader),
            url = d.url
        )
    });
    let port = prometheus.port;

    // Wait for the condition itself: Prometheus scrapes every second and
    // flushes its remote-write queue every second.
    let query = json!({"sql": "SELECT value, version, labels['job'] AS job, labels['instance'] AS instance \
                               FROM samples WHERE metric = 'up' AND model = 'prom-selftest' \
                               AND labels['job'] = 'prometheus' LIMIT 1"});
    let deadline = Instant::now() + Duration::from_secs(120);
    let row = loop {
        let body = admin.post_expect("/api/v1/sql", query.clone(), 200).await;
        if body["row_count"].as_u64() == Some(1) {
            break body["rows"][0].clone();
        }
        assert!(
            Instant::now() < deadline,
            "no sample from Prometheus arrived within 120 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(row["value"], 1.0);
    assert_eq!(row["version"], "7");
    assert_eq!(row["job"], "prometheus");
    assert_eq!(row["instance"], format!("127.0.0.1:{port}"));
    // Prometheus's own metrics arrive too, with their metric names.
    let (_, names) = admin
        .post("/api/v1/sql", json!({"sql": "SELECT count(DISTINCT metric) AS n FROM samples WHERE model = 'prom-selftest'"}))
        .await;
    assert!(names["rows"][0]["n"].as_i64().unwrap() > 10, "{names}");

    // modelwatch's own /metrics, scraped with the reader token, comes back
    // through the same loop: the rows it counted as ingested are themselves
    // ingested. Wait for a scrape that saw remote-write rows already stored.
    let query = json!({"sql": "SELECT max(value) AS rows FROM samples \
        WHERE metric = 'modelwatch_ingest_rows_total' AND labels['job'] = 'modelwatch' \
        AND labels['protocol'] = 'remote_write' AND labels['table'] = 'samples'"});
    let rows = loop {
        let body = admin.post_expect("/api/v1/sql", query.clone(), 200).await;
        if let Some(rows) = body["rows"][0]["rows"].as_f64().filter(|r| *r > 0.0) {
            break rows;
        }
        assert!(
            Instant::now() < deadline,
            "no scrape of modelwatch's /metrics arrived within 120 s: {body}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // The counter can only have counted rows that SQL can see now.
    let (_, total) = admin
        .post(
            "/api/v1/sql",
            json!({"sql": "SELECT count(*) AS n FROM samples"}),
        )
        .await;
    assert!(
        total["rows"][0]["n"].as_f64().unwrap() >= rows,
        "counter {rows} > stored rows {total}"
    );
    let (_, up) = admin
        .post(
            "/api/v1/sql",
            json!({"sql": "SELECT min(value) AS up FROM samples \
            WHERE metric = 'up' AND labels['job'] = 'modelwatch'"}),
        )
        .await;
    assert_eq!(
        up["rows"][0]["up"], 1.0,
        "every scrape of modelwatch succeeded: {up}"
    );
}
