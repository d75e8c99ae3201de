//! Delayed labels through the real daemon: inferences arrive unlabelled,
//! their ground truth later through the labels upload route (CSV, the CLI)
//! and as label-only OTLP/JSON log records; the evaluator joins them by
//! `inference_id` and measures realized performance on them. Unmatched
//! labels are counted and kept; bad label bodies store nothing. Accuracy
//! under the policy's minimum degrades the version and raises a retrain
//! (concept drift: the inputs never moved); corrected labels clear it.

use serde_json::{Value, json};

use crate::support::*;

const MODEL: &str = "late";
const INFERENCES: usize = 400;

fn now_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The model predicts `fraud` for every third inference; the truth is
/// `fraud` for every fourth, so some predictions are right and some not.
fn predicted(i: usize) -> &'static str {
    if i.is_multiple_of(3) { "fraud" } else { "ok" }
}

fn truth(i: usize) -> &'static str {
    if i.is_multiple_of(4) { "fraud" } else { "ok" }
}

async fn upload_labels(http: &Http, csv: String) -> (u16, Value) {
    http.raw(
        "POST",
        &format!("/api/v1/models/{MODEL}/versions/1/labels"),
        "text/csv",
        csv.into_bytes(),
    )
    .await
}

#[tokio::test]
async fn delayed_labels_are_joined_by_inference_id_and_measured() {
    let d = Daemon::start();
    let admin = d.http();
    admin
        .post_expect("/api/v1/models", json!({"name": MODEL}), 201)
        .await;
    admin
        .post_expect(&format!("/api/v1/models/{MODEL}/versions"), json!({}), 201)
        .await;
    let now = now_s();
    // 400 unlabelled inferences of the last five minutes.
    let body: String = (0..INFERENCES)
        .map(|i| {
            let row = json!({"ts": now - 300.0 + i as f64 * 0.5, "inference_id": format!("i{i}"),
                             "amount": i, "prediction": predicted(i)});
            format!("{row}\n")
        })
        .collect();
    let (status, reply) = admin
        .raw(
            "POST",
            &format!("/api/v1/models/{MODEL}/versions/1/inferences"),
            "application/x-ndjson",
            body.into_bytes(),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    admin
        .put_expect(
            &format!("/api/v1/models/{MODEL}/aliases/production"),
            json!({"version": 1}),
            200,
        )
        .await;
    let policy = json!({"current_window": "1h", "interval": "1h", "min_rows": 100,
                        "performance": {"task": "classification", "min_labels": 100,
                                        "minimums": {"accuracy": 0.9}}});
    admin
        .put_expect(&format!("/api/v1/models/{MODEL}/policy"), policy, 200)
        .await;

    // Nothing labelled yet: not measured, and the reply says why.
    let evaluate = || async {
        let out = d.cli(&["evaluate", "--model", MODEL, "--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
        report["versions"][0].clone()
    };
    let outcome = evaluate().await;
    assert_eq!(outcome["performance"]["measured"], false, "{outcome}");
    assert_eq!(outcome["performance"]["labelled_rows"], 0, "{outcome}");

    // Bad label bodies are refused by row and column, and store nothing.
    let cases = [
        (
            "inference_id,label,amount\ni1,ok,3\n",
            "amount",
            "a feature column",
        ),
        (
            "inference_id,label\ni1,ok\n,fraud\n",
            "row 2",
            "a row without id",
        ),
        (
            "inference_id,label,prediction\ni1,ok,ok\n",
            "prediction",
            "a prediction",
        ),
        ("inference_id,label\n\"i1,ok\n", "", "a truncated quote"),
    ];
    for (csv, named, what) in cases {
        let (status, reply) = upload_labels(&admin, csv.to_string()).await;
        assert_eq!(status, 400, "{what}: {reply}");
        assert!(error_message(&reply).contains(named), "{what}: {reply}");
    }
    let (status, reply) = admin
        .raw(
            "POST",
            &format!("/api/v1/models/{MODEL}/versions/1/labels"),
            "application/x-ndjson",
            b"{\"inference_id\": \"i1\", \"lab".to_vec(),
        )
        .await;
    assert_eq!(status, 400, "{reply}");
    assert_eq!(count(&admin, "delayed_labels").await, 0);

    // Labels for the first 300 inferences, and 20 for inferences that do
    // not exist: kept, and counted as unmatched.
    let mut csv = String::from("inference_id,label\n");
    for i in 0..300 {
        csv.push_str(&format!("i{i},{}\n", truth(i)));
    }
    for k in 0..20 {
        csv.push_str(&format!("ghost{k},fraud\n"));
    }
    let (status, reply) = upload_labels(&admin, csv).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["table"], "delayed_labels");
    assert_eq!(reply["rows"], 320);
    assert_eq!(reply["labels"], json!({"matched": 300, "unmatched": 20}));

    // A correction of the first ten labels, through the CLI: observed at
    // this upload (no ts), so newer than the first ones; the newest label
    // of an inference wins.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("corrections.ndjson");
    let corrections: String = (0..10)
        .map(|i| {
            format!(
                "{}\n",
                json!({"inference_id": format!("i{i}"), "label": "fraud"})
            )
        })
        .collect();
    std::fs::write(&file, corrections).unwrap();
    let out = d.cli(&[
        "upload",
        "labels",
        "--model",
        MODEL,
        "--version",
        "1",
        "--json",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let reply: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        reply["labels"],
        json!({"matched": 10, "unmatched": 0}),
        "{reply}"
    );

    // Ground truth for 50 more inferences as label-only OTLP log records
    // (a model, an inference id and a label; no features, no prediction).
    let records: Vec<Value> = (300..350)
        .map(|i| {
            json!({"timeUnixNano": format!("{}", (now * 1e9) as u64),
                   "attributes": [
                       {"key": "inference.id", "value": {"stringValue": format!("i{i}")}},
                       {"key": "label", "value": {"stringValue": truth(i)}}]})
        })
        .collect();
    let logs = json!({"resourceLogs": [{
        "resource": {"attributes": [
            {"key": "model.name", "value": {"stringValue": MODEL}},
            {"key": "model.version", "value": {"stringValue": "1"}}]},
        "scopeLogs": [{"logRecords": records}]}]});
    let (status, reply) = admin.post_json_bytes("/v1/logs", &logs).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(count(&admin, "delayed_labels").await, 320 + 10 + 50);
    assert_eq!(
        count(&admin, "inferences").await,
        INFERENCES as i64,
        "label-only records are not inferences"
    );

    // The unmatched labels, as the docs query them.
    let unmatched = sql(
        &admin,
        "SELECT count(*) AS n FROM delayed_labels l WHERE l.model = 'late' AND NOT EXISTS \
         (SELECT 1 FROM inferences i WHERE i.model = l.model AND i.inference_id = l.inference_id)",
    )
    .await;
    assert_eq!(unmatched["rows"][0]["n"], 20, "{unmatched}");

    // Measured on the 350 joined labels, with the corrections.
    let outcome = evaluate().await;
    let performance = &outcome["performance"];
    assert_eq!(performance["measured"], true, "{outcome}");
    assert_eq!(performance["rows"], INFERENCES as u64, "{outcome}");
    assert_eq!(performance["labelled_rows"], 350, "{outcome}");
    assert_eq!(performance["delayed_labels"], 350, "{outcome}");
    let label = |i: usize| if i < 10 { "fraud" } else { truth(i) };
    let correct = (0..350).filter(|&i| predicted(i) == label(i)).count();
    let accuracy = sql(
        &admin,
        "SELECT value FROM performance_results WHERE model = 'late' AND metric = 'accuracy' \
         AND class IS NULL ORDER BY evaluation_id DESC LIMIT 1",
    )
    .await;
    let stored = accuracy["rows"][0]["value"].as_f64().unwrap();
    assert!(
        (stored - correct as f64 / 350.0).abs() < 1e-12,
        "{stored} vs {correct}/350"
    );

    let metrics = admin.get_text("/metrics").await;
    let value_of = |prefix: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    assert_eq!(
        value_of("modelwatch_unmatched_labels_total "),
        Some(20.0),
        "{metrics}"
    );
    assert_eq!(
        value_of(r#"modelwatch_performance_breaches{model="late",version="1"} "#),
        Some(1.0),
        "{metrics}"
    );

    // Accuracy under the policy's 0.9: degraded, and a retrain with the
    // figures as evidence.
    assert_eq!(
        performance["breaches"][0]["metric"], "accuracy",
        "{outcome}"
    );
    let open = admin
        .recommendations_of(
            MODEL,
            Some(modelwatch_client::RecommendationKind::Retrain),
            Some(modelwatch_client::RecommendationStatus::Open),
        )
        .await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0].evidence["trigger"], "performance");
    assert_eq!(open[0].evidence["labelled_rows"], 350);
    assert_eq!(open[0].evidence["metrics"]["accuracy"], stored);
    assert!(open[0].reason.contains("accuracy"), "{}", open[0].reason);
    let version = admin
        .get_expect(&format!("/api/v1/models/{MODEL}/versions/1"), 200)
        .await;
    assert_eq!(
        version["tags"]["modelwatch.health"], "degraded",
        "{version}"
    );

    // Every label corrected to what the model predicted: within the
    // policy again, the retrain is superseded.
    let csv: String = std::iter::once("inference_id,label\n".to_string())
        .chain((0..INFERENCES).map(|i| format!("i{i},{}\n", predicted(i))))
        .collect();
    let (status, reply) = upload_labels(&admin, csv).await;
    assert_eq!(status, 200, "{reply}");
    let outcome = evaluate().await;
    assert_eq!(
        outcome["performance"]["labelled_rows"], INFERENCES as u64,
        "{outcome}"
    );
    assert!(
        outcome["performance"].get("breaches").is_none(),
        "{outcome}"
    );
    let superseded = admin
        .recommendations_of(
            MODEL,
            Some(modelwatch_client::RecommendationKind::Retrain),
            Some(modelwatch_client::RecommendationStatus::Superseded),
        )
        .await;
    assert_eq!(superseded.len(), 1, "{superseded:?}");
    assert!(
        superseded[0]
            .resolution_note
            .as_deref()
            .is_some_and(|n| n.contains("performance recovered")),
        "{superseded:?}"
    );
    let version = admin
        .get_expect(&format!("/api/v1/models/{MODEL}/versions/1"), 200)
        .await;
    assert_ne!(
        version["tags"]["modelwatch.health"], "degraded",
        "{version}"
    );
}

/// Rows of a binary scorer whose scores are under-confident: latent
/// `z ~ N(0, sd)`, score `sigmoid(z)`, label 1 when `z` plus noise is
/// positive (the same rule whatever `sd`: a covariate shift, which CBPE
/// can see without labels).
fn scored_rows(seed: u64, n: usize, sd: f64) -> Vec<(f64, f64, bool)> {
    let z = crate::monitoring::normals(seed, n, 0.0, sd);
    let noise = crate::monitoring::normals(seed + 1, n, 0.0, 0.5);
    z.iter()
        .zip(&noise)
        .map(|(&z, &e)| {
            // Scores through JSON and back are the same doubles.
            let score = 1.0 / (1.0 + (-z).exp());
            (z, score, z + e > 0.0)
        })
        .collect()
}

#[tokio::test]
async fn performance_is_estimated_without_labels_and_a_drop_raises_a_retrain() {
    use modelwatch_drift::cbpe::{self, Calibration, SamplingComponents};
    let d = Daemon::start();
    let admin = d.http();
    admin
        .post_expect("/api/v1/models", json!({"name": "blind"}), 201)
        .await;
    admin
        .post_expect("/api/v1/models/blind/versions", json!({}), 201)
        .await;
    let now = now_s();
    let reference = scored_rows(11, 3_000, 1.0);
    // Production moves towards the uncertain middle: accuracy falls, and
    // no label has arrived yet.
    let current = scored_rows(13, 2_000, 0.3);
    let upload = |table: &'static str, body: String| {
        let admin = admin.clone();
        async move {
            let (status, reply) = admin
                .raw(
                    "POST",
                    &format!("/api/v1/models/blind/versions/1/{table}"),
                    "application/x-ndjson",
                    body.into_bytes(),
                )
                .await;
            assert_eq!(status, 200, "{table}: {reply}");
        }
    };
    let reference_body: String = reference
        .iter()
        .map(|(z, score, label)| {
            format!(
                "{}\n",
                json!({"z": z, "prediction": score, "label": if *label { "1" } else { "0" }})
            )
        })
        .collect();
    upload("reference", reference_body).await;
    let current_body: String = current
        .iter()
        .enumerate()
        .map(|(i, (z, score, _))| {
            format!(
                "{}\n",
                json!({"ts": now - 300.0 + i as f64 * 0.1, "z": z, "prediction": score})
            )
        })
        .collect();
    upload("inferences", current_body).await;
    admin
        .put_expect(
            "/api/v1/models/blind/aliases/production",
            json!({"version": 1}),
            200,
        )
        .await;
    let policy = json!({"current_window": "1h", "interval": "1h", "min_rows": 100,
                        "performance": {"task": "classification", "positive_class": "1",
                                        "estimate": true, "minimums": {"accuracy": 0.8}}});
    admin
        .put_expect("/api/v1/models/blind/policy", policy, 200)
        .await;
    let out = d.cli(&["evaluate", "--model", "blind", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let performance = &report["versions"][0]["performance"];
    assert_eq!(performance["measured"], false, "no labels: {report}");
    assert_eq!(performance["estimate"]["measured"], true, "{report}");
    assert_eq!(performance["estimate"]["rows"], 2_000, "{report}");

    // The same estimate from the same numbers.
    let scores: Vec<f64> = reference.iter().map(|r| r.1).collect();
    let labels: Vec<bool> = reference.iter().map(|r| r.2).collect();
    let calibration = Calibration::fit(&scores, &labels).unwrap();
    let decided = |s: &mut dyn Iterator<Item = f64>| s.map(|p| p >= 0.5).collect::<Vec<_>>();
    let components =
        SamplingComponents::of_reference(&labels, &decided(&mut scores.iter().copied()));
    let probabilities: Vec<f64> = current
        .iter()
        .map(|r| calibration.probability(r.1))
        .collect();
    let expected = cbpe::estimate(
        &probabilities,
        &decided(&mut current.iter().map(|r| r.1)),
        &components,
    )
    .unwrap();
    let rows = sql(
        &admin,
        "SELECT metric, class, value, lower_bound, upper_bound, estimated FROM performance_results \
         WHERE model = 'blind' ORDER BY metric",
    )
    .await;
    let rows = rows["rows"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 5, "{rows:?}");
    assert!(rows.iter().all(|r| r["estimated"] == true), "{rows:?}");
    // ROC AUC, ranked by the calibrated probabilities, with its band.
    let expected_auc = cbpe::estimate_roc_auc(
        &probabilities,
        &cbpe::RocAucComponents::of_reference(&labels, &scores).unwrap(),
    )
    .unwrap();
    let auc = rows.iter().find(|r| r["metric"] == "roc_auc").unwrap();
    assert!(
        (auc["value"].as_f64().unwrap() - expected_auc.value).abs() < 1e-12,
        "{auc} vs {expected_auc:?}"
    );
    assert_eq!(auc["upper_bound"].as_f64(), Some(expected_auc.upper));
    let accuracy = rows.iter().find(|r| r["metric"] == "accuracy").unwrap();
    let stored = accuracy["value"].as_f64().unwrap();
    assert!(
        (stored - expected.accuracy.value).abs() < 1e-12,
        "{stored} vs {:?}",
        expected.accuracy
    );
    assert_eq!(
        accuracy["lower_bound"].as_f64(),
        Some(expected.accuracy.lower)
    );
    let recall = rows.iter().find(|r| r["metric"] == "recall").unwrap();
    assert_eq!(recall["class"], "1");
    // The realized accuracy the labels would show is inside the band.
    let realized = current.iter().filter(|r| (r.1 >= 0.5) == r.2).count() as f64 / 2_000.0;
    assert!(
        expected.accuracy.lower <= realized && realized <= expected.accuracy.upper,
        "realized {realized} outside {:?}",
        expected.accuracy
    );

    // Below the policy's minimum: a retrain on the estimate.
    assert!(stored < 0.8, "{stored}");
    let open = admin
        .recommendations_of(
            "blind",
            Some(modelwatch_client::RecommendationKind::Retrain),
            Some(modelwatch_client::RecommendationStatus::Open),
        )
        .await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0].evidence["estimated"], true);
    assert_eq!(open[0].evidence["trigger"], "performance");
    assert!(
        open[0].reason.starts_with("estimated performance"),
        "{}",
        open[0].reason
    );
    let metrics = admin.get_text("/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("modelwatch_performance_estimated{")
                && l.contains(r#"metric="accuracy""#)
                && l.contains(r#"model="blind""#)),
        "{metrics}"
    );
}
