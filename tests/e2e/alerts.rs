//! The Alertmanager receiver (`POST /api/v1/alerts/alertmanager`): first
//! with the payloads Alertmanager sends, written out here; then the whole
//! loop with the real servers from Debian's packages — modelwatch's
//! `/metrics` scraped by Prometheus, which evaluates `alerts/rules/` and
//! notifies Alertmanager, configured from `alerts/alertmanager.example.yml`,
//! which calls modelwatch back to roll a bad deployment back.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use modelwatch_client::{AlertOutcome, PageQuery, RecommendationKind, RecommendationStatus};
use serde_json::{Value, json};

use crate::prometheus::{Prometheus, modelwatch_scrape_job};
use crate::support::*;

const RECEIVER: &str = "/api/v1/alerts/alertmanager";

/// A webhook notification as Alertmanager 0.25 sends it (version 4).
fn notification(status: &str, alerts: Vec<Value>) -> Value {
    json!({
        "receiver": "modelwatch",
        "status": status,
        "alerts": alerts,
        "groupLabels": {"alertname": "ModelwatchRollbackRecommended"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "version": "4",
        "groupKey": "{}/{modelwatch_action=~\"rollback|retrain\"}:{alertname=\"ModelwatchRollbackRecommended\"}",
        "truncatedAlerts": 0
    })
}

fn alert(status: &str, fingerprint: &str, labels: Value) -> Value {
    json!({
        "status": status,
        "labels": labels,
        "annotations": {"summary": "from the e2e test"},
        "startsAt": "2026-11-27T12:00:00.5Z",
        "endsAt": if status == "resolved" { "2026-11-27T12:05:00Z" } else { "0001-01-01T00:00:00Z" },
        "generatorURL": "http://prometheus.example:9090/graph",
        "fingerprint": fingerprint
    })
}

fn rollback_labels(model: &str, version: i64) -> Value {
    json!({"alertname": "ModelwatchRollbackRecommended", "model": model,
           "version": version.to_string(), "modelwatch_action": "rollback", "severity": "critical"})
}

/// A model with versions 1 and 2, `production` moved from 1 to 2, and a
/// monitoring policy; returns when the deployment of version 2 happened.
async fn deployed(admin: &Http, model: &str, policy: Value) -> String {
    admin
        .post_expect("/api/v1/models", json!({"name": model}), 201)
        .await;
    for _ in 0..2 {
        let path = format!("/api/v1/models/{model}/versions");
        admin.post_expect(&path, json!({}), 201).await;
    }
    let alias = format!("/api/v1/models/{model}/aliases/production");
    admin.put_expect(&alias, json!({"version": 1}), 200).await;
    let moved = admin.put_expect(&alias, json!({"version": 2}), 200).await;
    admin
        .put_expect(&format!("/api/v1/models/{model}/policy"), policy, 200)
        .await;
    moved["history"][0]["at"].as_str().unwrap().to_string()
}

async fn production(http: &Http, model: &str) -> i64 {
    let alias = http
        .get_expect(&format!("/api/v1/models/{model}/aliases/production"), 200)
        .await;
    alias["version"].as_i64().unwrap()
}

async fn audit(http: &Http, query: &str) -> Vec<Value> {
    let body = http
        .get_expect(&format!("/api/v1/audit?{query}"), 200)
        .await;
    body["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn the_receiver_rolls_back_once_records_every_outcome_and_refuses_bad_payloads() {
    let d = Daemon::start_with(Start::args(&["--no-evaluator"]));
    let admin = d.http();
    let am = admin.with_token(Some(&admin.token("alertmanager", "approver").await));
    deployed(
        &admin,
        "fraud",
        json!({"interval": "1h", "rollback_on_alert": true}),
    )
    .await;
    deployed(&admin, "churn", json!({"interval": "1h"})).await;

    // Malformed payloads: 400, nothing recorded or moved.
    for (body, want) in [
        (
            b"{\"version\": \"4\", \"status\": \"firing\"".to_vec(),
            "not an Alertmanager",
        ),
        (b"garbage".to_vec(), "not an Alertmanager"),
        (b"".to_vec(), "empty"),
        (
            serde_json::to_vec(&json!({"version": "3", "status": "firing", "alerts": []})).unwrap(),
            "version \"3\"",
        ),
    ] {
        let (status, reply) = am.raw("POST", RECEIVER, "application/json", body).await;
        assert_eq!(status, 400, "{reply}");
        assert!(error_message(&reply).contains(want), "{reply}");
    }
    let listed = am.api().alerts().list(&PageQuery::default()).await.unwrap();
    assert_eq!(listed.items, []);

    // Roles: a reader cannot move aliases through the receiver.
    let reader = admin.with_token(Some(&admin.token("viewer", "reader").await));
    let firing = notification(
        "firing",
        vec![
            alert("firing", "f0a1", rollback_labels("fraud", 2)),
            alert("firing", "c0a1", rollback_labels("churn", 2)),
            alert(
                "firing",
                "d0a1",
                json!({"alertname": "ModelwatchDriftDetected", "model": "churn", "version": "2",
                       "modelwatch_action": "retrain", "severity": "warning"}),
            ),
            alert(
                "firing",
                "e0a1",
                json!({"alertname": "ModelwatchIngestRejecting", "modelwatch_action": "none"}),
            ),
        ],
    );
    reader.post_expect(RECEIVER, firing.clone(), 403).await;
    assert_eq!(production(&admin, "fraud").await, 2);

    let reply = am.post_expect(RECEIVER, firing.clone(), 200).await;
    let outcomes: Vec<(&str, &str, bool)> = reply["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["fingerprint"].as_str().unwrap(),
                a["outcome"].as_str().unwrap(),
                a["duplicate"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("f0a1", "rolled_back", false),
            ("c0a1", "refused", false),
            ("d0a1", "recommended", false),
            ("e0a1", "ignored", false)
        ]
    );
    assert!(
        reply["alerts"][1]["detail"]
            .as_str()
            .unwrap()
            .contains("does not allow alert-driven rollback"),
        "{reply}"
    );
    assert_eq!(production(&admin, "fraud").await, 1);
    assert_eq!(production(&admin, "churn").await, 2);
    let rollbacks = audit(&admin, "action=alias.rollback").await;
    assert_eq!(rollbacks.len(), 1, "{rollbacks:?}");
    assert_eq!(rollbacks[0]["actor"], "alertmanager");
    assert_eq!(rollbacks[0]["target"], "model/fraud/alias/production");
    let recs = admin
        .recommendations_of("churn", Some(RecommendationKind::Retrain), None)
        .await;
    assert_eq!(recs[0].raised_by, "alertmanager", "{recs:?}");
    assert_eq!(recs[0].evidence["fingerprint"], "d0a1");

    // Alertmanager repeats the notification: every alert is a duplicate and
    // nothing moves again (production stays at 1, not further back).
    let again = am.post_expect(RECEIVER, firing, 200).await;
    assert!(
        again["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["duplicate"] == true),
        "{again}"
    );
    assert_eq!(production(&admin, "fraud").await, 1);
    assert_eq!(audit(&admin, "action=alias.rollback").await.len(), 1);

    // The resolution is recorded once.
    let resolved = notification(
        "resolved",
        vec![alert("resolved", "f0a1", rollback_labels("fraud", 2))],
    );
    let reply = am.api().alerts().notify(&resolved).await.unwrap();
    assert_eq!(
        reply.alerts[0].record.outcome,
        AlertOutcome::Resolved,
        "{reply:?}"
    );

    // Every outcome is in the audit chain, and the chain verifies.
    let entries = audit(&admin, "target_prefix=alert/").await;
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "alert.rolled_back",
            "alert.refused",
            "alert.recommended",
            "alert.ignored",
            "alert.resolved"
        ]
    );
    let verified = admin.api().audit().verify().await.unwrap();
    assert!(verified.ok);

    // The CLI lists the record, and /metrics counts the outcomes.
    let out = d.cli(&["alerts", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("rolled_back") && stdout(&out).contains("refused"),
        "{}",
        stdout(&out)
    );
    let metrics = admin.get_text("/metrics").await;
    for line in [
        "modelwatch_alert_notifications_total{outcome=\"rolled_back\"} 1",
        "modelwatch_alert_notifications_total{outcome=\"duplicate\"} 4",
        "modelwatch_alert_notifications_total{outcome=\"resolved\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing");
    }
}

#[tokio::test]
async fn exported_alert_files_pass_promtool_and_amtool() {
    let d = Daemon::start_with(Start::args(&["--no-evaluator"]));
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("alerts");
    let target_s = target.to_str().unwrap();
    let out = d.cli(&["alerts", "export", target_s]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("rules/modelwatch.yml"),
        "{}",
        stdout(&out)
    );
    let run = |program: &str, args: &[&str]| {
        let out = Command::new(program)
            .args(args)
            .current_dir(&target)
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e} (.ci/run installs it)"));
        assert!(
            out.status.success(),
            "{program} {args:?}: {}{}",
            stdout(&out),
            stderr(&out)
        );
    };
    run("promtool", &["check", "rules", "rules/modelwatch.yml"]);
    run("promtool", &["test", "rules", "tests/modelwatch_test.yml"]);
    run("amtool", &["check-config", "alertmanager.example.yml"]);
    // A second export refuses to overwrite, then --force does.
    let out = d.cli(&["alerts", "export", target_s]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    let out = d.cli(&["alerts", "export", target_s, "--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// `n` OTLP/JSON spans of `version`, starting at `from_ns` one microsecond
/// apart, every `error_every`-th one failed (0: none).
fn spans(model: &str, version: i64, from_ns: i64, n: i64, error_every: i64) -> Value {
    let spans: Vec<Value> = (0..n)
        .map(|i| {
            let start = from_ns + i * 1_000;
            let failed = error_every > 0 && i % error_every == 0;
            json!({
                "traceId": format!("{:032x}", (version << 40) + i + 1),
                "spanId": format!("{:016x}", (version << 40) + i + 1),
                "name": "predict",
                "kind": 2,
                "startTimeUnixNano": start.to_string(),
                "endTimeUnixNano": (start + 20_000_000).to_string(),
                "status": {"code": if failed { 2 } else { 1 }},
            })
        })
        .collect();
    json!({"resourceSpans": [{
        "resource": {"attributes": [
            {"key": "model.name", "value": {"stringValue": model}},
            {"key": "model.version", "value": {"stringValue": version.to_string()}},
        ]},
        "scopeSpans": [{"spans": spans}],
    }]})
}

/// Sends a healthy version 1 before the deployment and a failing version 2
/// after it, so the evaluator's canary judge recommends a rollback.
async fn bad_deployment(ingest: &Http, model: &str, deployed_at: &str) {
    let at = chrono::DateTime::parse_from_rfc3339(deployed_at)
        .unwrap()
        .timestamp_nanos_opt()
        .unwrap();
    for body in [
        spans(model, 1, at - 300_000_000_000, 200, 0),
        spans(model, 2, at + 1_000, 200, 2),
    ] {
        let (status, reply) = ingest.post_json_bytes("/v1/traces", &body).await;
        assert_eq!(status, 200, "{reply}");
    }
}

/// Debian's Alertmanager with the configuration file `config` (its
/// storage beside it) on loopback port `port`; stopped when dropped.
pub(crate) fn start_alertmanager(config: &Path, port: u16) -> KillOnDrop {
    let storage = config.with_file_name("alertmanager-data");
    KillOnDrop(
        Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", storage.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // A single instance: no gossip port.
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus-alertmanager must be installed (.ci/run installs it)"),
    )
}

fn alerts_dir() -> PathBuf {
    PathBuf::from(manifest_dir()).join("../alerts")
}

/// `alerts/alertmanager.example.yml` pointed at this test's modelwatch, with
/// short timings; every replaced line must exist, so the example is what is
/// tested.
fn alertmanager_config(receiver_url: &str, token_file: &str) -> String {
    let mut text = std::fs::read_to_string(alerts_dir().join("alertmanager.example.yml")).unwrap();
    for (from, to) in [
        (
            "http://127.0.0.1:9400/api/v1/alerts/alertmanager",
            receiver_url,
        ),
        ("/etc/alertmanager/modelwatch-token", token_file),
        ("group_wait: 10s", "group_wait: 1s"),
        ("group_wait: 30s", "group_wait: 1s"),
        ("group_interval: 1m", "group_interval: 1s"),
    ] {
        assert!(text.contains(from), "the example no longer has {from:?}");
        text = text.replace(from, to);
    }
    text
}

#[tokio::test]
async fn prometheus_and_alertmanager_roll_a_bad_deployment_back() {
    let d = Daemon::start();
    let admin = d.http();
    let ingest = admin.with_token(Some(&admin.token("model-server", "ingest").await));
    let scrape = admin.token("prometheus", "reader").await;
    let am_token = admin.token("alertmanager", "approver").await;
    let judge = json!({"errors": {"source": "spans"}, "window": "10m", "min_requests": 50});
    let allowed = deployed(
        &admin,
        "fraud",
        json!({"interval": "1s", "rollback": judge, "rollback_on_alert": true}),
    )
    .await;
    let refused = deployed(
        &admin,
        "churn",
        json!({"interval": "1s", "rollback": judge}),
    )
    .await;
    bad_deployment(&ingest, "fraud", &allowed).await;
    bad_deployment(&ingest, "churn", &refused).await;

    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("modelwatch-token");
    std::fs::write(&token_file, &am_token).unwrap();
    let am_port = free_port();
    let am_config = dir.path().join("alertmanager.yml");
    std::fs::write(
        &am_config,
        alertmanager_config(
            &format!("{}{RECEIVER}", d.url),
            token_file.to_str().unwrap(),
        ),
    )
    .unwrap();
    let _alertmanager = start_alertmanager(&am_config, am_port);

    let rules = alerts_dir().join("rules/modelwatch.yml");
    let _prometheus = Prometheus::start(|_| {
        format!(
            r#"
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - {rules}
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["127.0.0.1:{am_port}"]
scrape_configs:
{modelwatch}"#,
            rules = rules.display(),
            modelwatch = modelwatch_scrape_job(&d, &scrape),
        )
    });

    // The alias of the model whose policy allows it is rolled back by the
    // notification, as the audit log shows.
    let started = Instant::now();
    let rollback = wait_for(
        Duration::from_secs(120),
        "the alert-driven rollback",
        || {
            let admin = admin.clone();
            async move {
                let entries = audit(&admin, "action=alias.rollback&actor=alertmanager").await;
                if let Some(e) = entries.first() {
                    return Ok(e.clone());
                }
                let received = admin.api().alerts().list(&PageQuery::default()).await;
                Err(format!(
                    "no rollback yet; alert states received: {received:?}"
                ))
            }
        },
    )
    .await;
    eprintln!(
        "rolled back by Alertmanager {:.1} s after Prometheus started",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(rollback["target"], "model/fraud/alias/production");
    assert_eq!(rollback["before"]["version"], 2, "{rollback}");
    assert_eq!(rollback["after"]["version"], 1, "{rollback}");
    assert!(
        rollback["after"]["reason"]
            .as_str()
            .unwrap()
            .contains("ModelwatchRollbackRecommended"),
        "{rollback}"
    );
    assert_eq!(production(&admin, "fraud").await, 1);
    // The evaluator's recommendation is marked applied by the receiver.
    let recs = admin
        .recommendations_of("fraud", Some(RecommendationKind::Rollback), None)
        .await;
    assert_eq!(recs[0].status, RecommendationStatus::Applied, "{recs:?}");
    assert_eq!(
        recs[0].resolved_by.as_deref(),
        Some("alertmanager"),
        "{recs:?}"
    );

    // The model whose policy does not allow it: nothing moves, and the
    // refusal is recorded with why.
    let refusal = wait_for(Duration::from_secs(60), "the recorded refusal", || {
        let admin = admin.clone();
        async move {
            let entries = audit(&admin, "action=alert.refused").await;
            entries
                .into_iter()
                .find(|e| e["after"]["model"] == "churn")
                .ok_or_else(|| "no refusal recorded yet".to_string())
        }
    })
    .await;
    assert_eq!(refusal["actor"], "alertmanager");
    assert!(
        refusal["after"]["detail"]
            .as_str()
            .unwrap()
            .contains("does not allow alert-driven rollback"),
        "{refusal}"
    );
    assert_eq!(production(&admin, "churn").await, 2);
    assert!(
        audit(&admin, "action=alias.rollback")
            .await
            .iter()
            .all(|e| e["target"] != "model/churn/alias/production")
    );
}
