//! `modelwatch demo --exit-when-done`: the whole loop in one command. The
//! demo starts its own daemon, plays the story (drift on fraud-detector, a
//! bad churn-predictor deployment) and must exit 0 having printed the retrain
//! recommendation and the automatic rollback. Its data directory is then
//! opened again to check the registry agrees with what was printed, and
//! every example query the demo suggests is run.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use modelwatch_client::{PageQuery, RecommendationKind, RecommendationQuery, RecommendationStatus};

use crate::support::*;

/// Runs the demo to completion (killed after `limit`), returning its exit
/// status and its stdout and stderr.
fn run_demo(args: &[&str], limit: Duration) -> (Option<i32>, String, String) {
    let mut child = Command::new(binary())
        .arg("demo")
        .args(args)
        .env_remove("MODELWATCH_URL")
        .env_remove("MODELWATCH_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn modelwatch demo");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the demo") {
            break status.code();
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    (
        status,
        reader.join().unwrap_or_default(),
        err_reader.join().unwrap_or_default(),
    )
}

#[tokio::test]
async fn demo_shows_a_retrain_recommendation_and_an_automatic_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("demo");
    // Over TLS with a private CA: the demo's daemon serves HTTPS and its
    // registry client and OTLP exporters trust the CA through --ca-file.
    let pki = crate::tls::Pki::new("demo-ca");
    let (cert, key) = pki.server("demo").arg();
    let (status, out, err) = tokio::task::spawn_blocking({
        let data_dir = data_dir.display().to_string();
        let ca = pki.ca_arg();
        move || {
            run_demo(
                &[
                    "--exit-when-done",
                    "--data-dir",
                    &data_dir,
                    "--speed",
                    "2",
                    "--timeout",
                    "180",
                    "--tls-cert",
                    &cert,
                    "--tls-key",
                    &key,
                    "--ca-file",
                    &ca,
                ],
                Duration::from_secs(240),
            )
        }
    })
    .await
    .unwrap();
    let log = std::fs::read_to_string(data_dir.join("modelwatch.log")).unwrap_or_default();
    assert_eq!(
        status,
        Some(0),
        "demo failed\n--- stdout\n{out}\n--- stderr\n{err}\n--- daemon log (tail)\n{}",
        log.lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(out.contains("export MODELWATCH_URL=https://"), "{out}");
    assert!(out.contains(" MODELWATCH_CA_FILE="), "{out}");
    // A stable window may raise a false alarm on another feature first;
    // the drift the fleet injects must be named.
    assert!(
        out.lines()
            .any(|l| l.contains("retrain recommended for fraud-detector v1")
                && l.split_once("drifted features:")
                    .is_some_and(|(_, features)| features.contains("amount"))),
        "no retrain line naming the drifted feature in\n{out}"
    );
    // Concept drift: the late labels show the credit scorer's accuracy
    // fell, and the evaluator recommends retraining it on that evidence.
    assert!(
        out.lines().any(|l| l
            .contains("performance drop: retrain recommended for credit-scorer v1")
            && l.contains("accuracy 0.6000 (policy minimum 0.8)")),
        "no performance retrain line in\n{out}"
    );
    assert!(
        out.contains("credit-scorer: their outcomes arrive later as labels (400 matched"),
        "{out}"
    );
    let rollback = out
        .lines()
        .find(|l| l.contains("automatic rollback:"))
        .unwrap_or_else(|| panic!("no automatic rollback line in\n{out}"));
    assert!(
        rollback.contains("churn-predictor production") && rollback.contains("v2 → v1"),
        "{rollback}"
    );
    assert!(out.contains("churn-predictor production is on v1"), "{out}");

    // The registry, opened again, agrees with what was printed.
    let token = out
        .split("MODELWATCH_TOKEN=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .expect("the printed token")
        .to_string();
    let daemon = Daemon::start_in(
        data_dir.clone(),
        None,
        Start {
            bootstrap: false,
            ..Default::default()
        },
    );
    let http = daemon.http().with_token(Some(&token));
    let alias = http
        .get_expect("/api/v1/models/churn-predictor/aliases/production", 200)
        .await;
    assert_eq!(alias["version"], 1, "{alias}");
    assert_ne!(alias["updated_by"], "bootstrap-admin", "{alias}");
    let all = RecommendationQuery {
        page: PageQuery::limit(1000),
        ..RecommendationQuery::default()
    };
    let recs = http.api().recommendations().list(&all).await.unwrap().items;
    assert!(
        recs.iter().any(|r| r.model == "fraud-detector"
            && r.version == 1
            && r.kind == RecommendationKind::Retrain),
        "{recs:?}"
    );
    assert!(
        recs.iter().any(|r| r.model == "churn-predictor"
            && r.version == 2
            && r.kind == RecommendationKind::Rollback
            && r.status == RecommendationStatus::Applied),
        "{recs:?}"
    );

    // Every query the demo suggests runs.
    let queries: Vec<String> = out
        .lines()
        .filter_map(|l| l.trim().strip_prefix("modelwatch sql \""))
        .filter_map(|q| q.strip_suffix('"'))
        .map(str::to_string)
        .collect();
    assert!(queries.len() >= 4, "{out}");
    for q in &queries {
        sql(&http, q).await;
    }
    assert!(count(&http, "drift_results").await > 0);
}
