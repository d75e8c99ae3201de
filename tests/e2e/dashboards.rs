//! The Grafana dashboards against the real daemon: every SQL query (panels,
//! annotations, variables), expanded as Grafana's PostgreSQL datasource
//! expands it, runs through `POST /api/v1/sql` over a model with drift
//! results, recommendations, alias moves, spans, inferences and samples,
//! and returns rows with the columns its panel expects; every PromQL
//! expression runs on a real Prometheus scraping the daemon; and
//! `modelwatch dashboards export` writes the files and refuses to
//! overwrite them.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use modelwatch_dashboards::{Language, SqlContext, expand_sql, queries};
use serde_json::{Value, json};

use crate::monitoring::drifting_fraud_model;
use crate::prometheus::{Prometheus, modelwatch_scrape_job};
use crate::support::*;

/// The template variables' values the queries run with.
const VARIABLES: &[(&str, &str)] = &[
    ("model", "fraud"),
    ("version", "1"),
    ("alias", "production"),
    ("instance", ".*"),
];

/// The columns each SQL query must return (in order, separated by spaces),
/// by dashboard file and location.
/// Grafana reads `time` as the time axis and `metric` / `value` as a long
/// series; annotations need `time`, `text`, `tags`; variables one column.
const EXPECTED_COLUMNS: &[(&str, &str, &str)] = &[
    ("fleet", "panel 2 \"Models\" target A", "models"),
    (
        "fleet",
        "panel 8 \"Models: $alias version, health, open recommendations\" target A",
        "model alias_version health open_recommendations open_recommendations_all_versions latest_version alias_moved_at",
    ),
    (
        "fleet",
        "panel 13 \"Recent recommendations\" target A",
        "time model version kind severity status reason raised_by",
    ),
    (
        "fleet",
        "panel 14 \"Recent alias moves\" target A",
        "time model alias kind from_version to_version actor reason",
    ),
    ("fleet", "annotation \"Alias moves\"", "time text tags"),
    ("model-version", "variable model", "model"),
    ("model-version", "variable version", "version"),
    (
        "model-version",
        "annotation \"Alias moves\"",
        "time text tags",
    ),
    (
        "model-version",
        "annotation \"Recommendations\"",
        "time text tags",
    ),
    (
        "model-version",
        "panel 9 \"Drift statistic history (drift_results)\" target A",
        "time metric value",
    ),
    (
        "model-version",
        "panel 10 \"Latest evaluation per feature\" target A",
        "feature feature_kind method statistic p_value adjusted_p_value threshold decision n_reference n_current reference_source evaluated_at",
    ),
    (
        "model-version",
        "panel 12 \"Requests per second (spans)\" target A",
        "time requests",
    ),
    (
        "model-version",
        "panel 13 \"Inferences per second\" target A",
        "time inferences",
    ),
    (
        "model-version",
        "panel 14 \"Error rate\" target A",
        "time error_ratio",
    ),
    (
        "model-version",
        "panel 15 \"Latency (spans)\" target A",
        "time p50 p90 p99",
    ),
    (
        "model-version",
        "panel 16 \"Model server metrics (samples)\" target A",
        "time metric value",
    ),
    (
        "model-version",
        "panel 18 \"Recommendations for this version\" target A",
        "time kind severity status reason raised_by resolved_by resolved_at",
    ),
    (
        "model-version",
        "panel 19 \"Alias moves of the model\" target A",
        "time alias kind from_version to_version actor reason",
    ),
];

/// Arrow types that map to timestamptz, float8, int8 and text on the
/// PostgreSQL wire, the types Grafana's PostgreSQL datasource reads.
fn grafana_type(arrow: &str) -> bool {
    arrow.starts_with("Timestamp(") && arrow.contains("UTC")
        || matches!(
            arrow,
            "Float64" | "Int64" | "Utf8" | "Utf8View" | "LargeUtf8"
        )
}

fn now_nanos(offset_s: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    (now + offset_s * 1_000_000_000).to_string()
}

fn rfc3339(offset_s: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(offset_s))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Model server telemetry for fraud v1 over OTLP/JSON: 20 request spans
/// (5 failed) and a gauge.
async fn model_server_telemetry(ingest: &Http) {
    let resource = json!({"attributes": [
        {"key": "model.name", "value": {"stringValue": "fraud"}},
        {"key": "model.version", "value": {"stringValue": "1"}},
    ]});
    let spans: Vec<Value> = (0..20)
        .map(|i| {
            json!({
                "traceId": format!("{:032x}", i + 1),
                "spanId": format!("{:016x}", i + 1),
                "name": "predict",
                "kind": 2,
                "startTimeUnixNano": now_nanos(-120 + i),
                "endTimeUnixNano": now_nanos(-119 + i),
                "status": {"code": if i % 4 == 0 { 2 } else { 1 }},
            })
        })
        .collect();
    let traces =
        json!({"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": spans}]}]});
    let metrics = json!({"resourceMetrics": [{"resource": resource, "scopeMetrics": [{"metrics": [
        {"name": "queue_depth", "gauge": {"dataPoints": [
            {"timeUnixNano": now_nanos(-60), "asDouble": 3.5},
        ]}},
    ]}]}]});
    for (path, body) in [("/v1/traces", traces), ("/v1/metrics", metrics)] {
        let (status, reply) = ingest.post_json_bytes(path, &body).await;
        assert_eq!(status, 200, "{path}: {reply}");
        assert!(reply.get("partialSuccess").is_none(), "{path}: {reply}");
    }
}

/// fraud v1 in production with a drift evaluation (drift_results rows, a
/// retrain recommendation, evaluator series on /metrics), v2 created and
/// made `staging` (a second alias move), and model server telemetry for v1.
/// Returns a reader token.
async fn fleet_with_history(d: &Daemon) -> String {
    let admin = d.http();
    // Realized and estimated performance (within its minimum, so the
    // version stays `drifting`), fairness per country and multivariate
    // drift, for the model-quality panels.
    let policy = json!({"current_window": "1h", "min_rows": 100,
                        "performance": {"task": "classification", "positive_class": "fraud",
                                        "min_labels": 10, "estimate": true,
                                        "minimums": {"accuracy": 0.1}},
                        "fairness": {"attributes": ["country"], "positive_class": "fraud",
                                     "threshold": 0.5, "min_group_rows": 5},
                        "multivariate": {}});
    drifting_fraud_model(&admin, policy).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let upload = |table: &'static str, rows: String| {
        let admin = admin.clone();
        async move {
            let (status, body) = admin
                .raw(
                    "POST",
                    &format!("/api/v1/models/fraud/versions/1/{table}"),
                    "application/x-ndjson",
                    rows.into_bytes(),
                )
                .await;
            assert_eq!(status, 200, "{table}: {body}");
        }
    };
    // Labelled, scored reference rows to calibrate the estimate on (a
    // numeric prediction is the fraud score, `prediction_value`).
    let reference: String = (0..60)
        .map(|i: usize| {
            let score = (i % 10) as f64 / 10.0 + 0.05;
            let fraud = ((i * 7) % 10) as f64 / 10.0 < score;
            let country = ["de", "fr", "it"][i % 3];
            let row = json!({"amount": 100.0 + ((i * 37) % 21) as f64 - 10.0,
                             "country": country,
                             "prediction": score,
                             "label": if fraud { "fraud" } else { "ok" }});
            format!("{row}\n")
        })
        .collect();
    upload("reference", reference).await;
    let scored: String = (0..60)
        .map(|i: usize| {
            let country = ["de", "fr", "it"][i % 3];
            let fraud = i.is_multiple_of(2);
            let row = json!({"ts": now - 60.0, "amount": 130.0 + ((i * 37) % 21) as f64 - 10.0,
                             "country": country,
                             "prediction": if fraud { 0.8 } else { 0.2 },
                             "label": if i.is_multiple_of(4) { "fraud" } else { "ok" }});
            format!("{row}\n")
        })
        .collect();
    upload("inferences", scored).await;
    let report = admin
        .post_expect("/api/v1/evaluate", json!({"model": "fraud"}), 200)
        .await;
    assert_eq!(report["versions"][0]["dataset_drift"], true, "{report}");
    assert_eq!(
        report["versions"][0]["performance"]["measured"], true,
        "{report}"
    );
    assert_eq!(
        report["versions"][0]["fairness"]["assessed"], true,
        "{report}"
    );
    assert_eq!(
        report["versions"][0]["performance"]["estimate"]["measured"], true,
        "{report}"
    );
    assert_eq!(
        report["versions"][0]["multivariate"]["measured"], true,
        "{report}"
    );
    admin
        .post_expect("/api/v1/models/fraud/versions", json!({}), 201)
        .await;
    let v2 = json!({"version": 2});
    admin
        .put_expect("/api/v1/models/fraud/aliases/staging", v2, 200)
        .await;
    let ingest = admin.with_token(Some(&admin.token("server", "ingest").await));
    model_server_telemetry(&ingest).await;
    admin.token("grafana", "reader").await
}

#[tokio::test]
async fn every_dashboard_sql_query_runs_on_the_real_schema_and_finds_rows() {
    let d = Daemon::start();
    let reader = d.http().with_token(Some(&fleet_with_history(&d).await));
    let ctx = SqlContext {
        from: rfc3339(-86_400),
        to: rfc3339(3_600),
        interval_seconds: 60,
        variables: VARIABLES
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    let sql: Vec<_> = queries()
        .unwrap()
        .into_iter()
        .filter(|q| q.language == Language::Sql)
        .collect();
    let mut checked = Vec::new();
    for q in &sql {
        let dashboard = q
            .dashboard
            .trim_start_matches("grafana/modelwatch-")
            .trim_end_matches(".json");
        let at = format!("{dashboard} {}", q.location);
        let expanded = expand_sql(&q.text, &ctx).unwrap_or_else(|e| panic!("{at}: {e}"));
        let (status, body) = reader.post("/api/v1/sql", json!({"sql": expanded})).await;
        assert_eq!(status, 200, "{at}: {expanded}\n{body}");
        let columns: Vec<(&str, &str)> = body["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["name"].as_str().unwrap(), c["type"].as_str().unwrap()))
            .collect();
        let names: Vec<&str> = columns.iter().map(|c| c.0).collect();
        let expected = EXPECTED_COLUMNS
            .iter()
            .find(|(d, l, _)| *d == dashboard && *l == q.location)
            .unwrap_or_else(|| panic!("{at}: no expected columns listed; it returned {names:?}"));
        let expected: Vec<&str> = expected.2.split_whitespace().collect();
        assert_eq!(names, expected, "{at}");
        for (name, arrow) in &columns {
            assert!(grafana_type(arrow), "{at}: column {name} is {arrow}");
        }
        // Every query finds the rows set up above: a filter on a wrong
        // column type (text versions against integer ones) finds none.
        assert!(
            body["row_count"].as_u64().unwrap() > 0,
            "{at}: no rows\n{expanded}"
        );
        checked.push((dashboard, q.location.clone()));
    }
    assert_eq!(
        checked.len(),
        EXPECTED_COLUMNS.len(),
        "a listed query is gone: {checked:?}"
    );

    // Spot checks of values the panels show.
    let value = |rows: &Value, col: &str| rows["rows"][0][col].clone();
    let fleet = sql_of(&sql, "fleet", "Models: $alias", &ctx);
    let rows = post_sql(&reader, &fleet).await;
    assert_eq!(value(&rows, "model"), "fraud");
    assert_eq!(value(&rows, "alias_version"), 1);
    assert_eq!(value(&rows, "health"), "drifting", "{rows}");
    assert_eq!(value(&rows, "open_recommendations"), 1, "{rows}");
    let requests = sql_of(&sql, "model-version", "Requests per second", &ctx);
    let requests = post_sql(&reader, &requests).await;
    let per_bucket: BTreeMap<String, f64> = requests["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["time"].to_string(),
                r["requests"].as_f64().unwrap() * 60.0,
            )
        })
        .collect();
    assert_eq!(per_bucket.values().sum::<f64>(), 20.0, "{requests}");
    let errors = sql_of(&sql, "model-version", "Error rate", &ctx);
    let errors = post_sql(&reader, &errors).await;
    let failed: f64 = errors["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["error_ratio"].as_f64().unwrap() * per_bucket[&r["time"].to_string()])
        .sum();
    assert!((failed - 5.0).abs() < 1e-9, "{errors}");
}

fn sql_of(
    sql: &[modelwatch_dashboards::Query],
    dashboard: &str,
    title: &str,
    ctx: &SqlContext,
) -> String {
    let q = sql
        .iter()
        .find(|q| q.dashboard.contains(dashboard) && q.location.contains(title))
        .unwrap_or_else(|| panic!("no SQL query {title} in {dashboard}"));
    expand_sql(&q.text, ctx).unwrap()
}

async fn post_sql(http: &Http, query: &str) -> Value {
    sql(http, query).await
}

#[tokio::test]
async fn every_dashboard_promql_expression_runs_on_a_real_prometheus() {
    let d = Daemon::start();
    let reader = fleet_with_history(&d).await;
    let job = modelwatch_scrape_job(&d, &reader);
    let prometheus =
        Prometheus::start(|_| format!("global:\n  scrape_interval: 1s\nscrape_configs:\n{job}"));
    let client = crate::support::http_client();
    let prom = format!("http://127.0.0.1:{}", prometheus.port);
    let query = |expr: String| {
        let client = client.clone();
        let prom = prom.clone();
        async move {
            let res = client
                .get(
                    reqwest::Url::parse_with_params(
                        &format!("{prom}/api/v1/query"),
                        &[("query", expr.as_str())],
                    )
                    .unwrap(),
                )
                .send()
                .await;
            match res {
                Ok(r) => (
                    r.status().as_u16(),
                    r.json::<Value>().await.unwrap_or_default(),
                ),
                Err(_) => (0, Value::Null),
            }
        }
    };
    // Wait for scrapes that saw the evaluator's series, enough of them for
    // rate() over a minute's window.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, body) =
            query("count_over_time(modelwatch_drift_dataset_drifted[1m])".into()).await;
        let scrapes = body["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|v| v.parse::<f64>().ok());
        if status == 200 && scrapes.is_some_and(|n| n >= 3.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus did not scrape modelwatch three times within 120 s: {body}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let substitutions: BTreeMap<&str, &str> = [
        ("$__rate_interval", "1m"),
        ("$__range", "1h"),
        ("$__interval", "15s"),
    ]
    .into_iter()
    .chain(VARIABLES.iter().map(|(k, v)| (*k, *v)))
    .collect();
    let mut ran = 0;
    for q in queries()
        .unwrap()
        .into_iter()
        .filter(|q| q.language == Language::PromQl)
    {
        let at = format!("{} {}", q.dashboard, q.location);
        let mut expr = q.text.clone();
        // Longest names first, so `$__interval` does not eat `$__interval_ms`.
        let mut subs: Vec<_> = substitutions.iter().collect();
        subs.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
        for (name, value) in subs {
            let var = if name.starts_with("$") {
                name.to_string()
            } else {
                format!("${name}")
            };
            expr = expr.replace(&var, value);
        }
        if let Some(inner) = expr
            .strip_prefix("label_values(")
            .and_then(|s| s.strip_suffix(')'))
        {
            // A variable query: Grafana asks for the label's values on the
            // series of the metric.
            let (metric, label) = inner.rsplit_once(',').unwrap();
            let res: Value = client
                .get(
                    reqwest::Url::parse_with_params(
                        &format!("{prom}/api/v1/label/{}/values", label.trim()),
                        &[("match[]", metric.trim())],
                    )
                    .unwrap(),
                )
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(res["status"], "success", "{at}: {res}");
            assert!(
                !res["data"].as_array().unwrap().is_empty(),
                "{at}: no values: {res}"
            );
        } else {
            let (status, body) = query(expr.clone()).await;
            assert_eq!(status, 200, "{at}: {expr}\n{body}");
            assert_eq!(body["status"], "success", "{at}: {body}");
            // The model-version panels select by the model and version
            // labels: each must find the evaluated version's series.
            if q.dashboard.contains("model-version") {
                assert!(
                    !body["data"]["result"].as_array().unwrap().is_empty(),
                    "{at}: no series for fraud v1: {expr}"
                );
            }
        }
        ran += 1;
    }
    assert!(ran > 30, "{ran}");
}

#[tokio::test]
async fn dashboards_export_writes_the_files_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("grafana-setup");
    let export = |extra: &[&str]| {
        Command::new(binary())
            .args(["dashboards", "export"])
            .arg(&out_dir)
            .args(extra)
            .output()
            .expect("run modelwatch")
    };
    let out = export(&[
        "--prometheus-url",
        "http://prometheus:9090",
        "--postgres-host",
        "modelwatch:5433",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let files = [
        "grafana/modelwatch-fleet.json",
        "grafana/modelwatch-model-version.json",
        "grafana/modelwatch-daemon.json",
        "provisioning/datasources/modelwatch.yml",
        "provisioning/dashboards/modelwatch.yml",
    ];
    let printed = stdout(&out);
    for f in files {
        let path = out_dir.join(f);
        assert!(
            printed.contains(&format!("wrote {}", path.display())),
            "{printed}"
        );
        let text = std::fs::read_to_string(&path).unwrap();
        if f.ends_with(".json") {
            let d: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(format!("grafana/{}.json", d["uid"].as_str().unwrap()), f);
        }
    }
    let read = |f: &str| std::fs::read_to_string(out_dir.join(f)).unwrap();
    let datasources = read("provisioning/datasources/modelwatch.yml");
    assert!(
        datasources.contains("url: http://prometheus:9090"),
        "{datasources}"
    );
    assert!(
        datasources.contains("url: modelwatch:5433"),
        "{datasources}"
    );
    let provider = read("provisioning/dashboards/modelwatch.yml");
    assert!(
        provider.contains(&format!("path: {}", out_dir.join("grafana").display())),
        "{provider}"
    );

    // A second export refuses, names the files, and leaves them alone.
    std::fs::write(out_dir.join(files[0]), "edited").unwrap();
    let out = export(&[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("--force") && err.contains(files[0]), "{err}");
    assert_eq!(read(files[0]), "edited");
    assert_eq!(read("provisioning/datasources/modelwatch.yml"), datasources);

    let out = export(&[
        "--force",
        "--grafana-path",
        "/var/lib/grafana/dashboards/mw",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_ne!(read(files[0]), "edited");
    assert!(
        read("provisioning/dashboards/modelwatch.yml")
            .contains("path: /var/lib/grafana/dashboards/mw")
    );
}
