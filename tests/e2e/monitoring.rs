//! Monitoring through the real daemon: policies over the API and the CLI
//! (validated, role-gated, audited), an evaluation on demand that turns
//! uploaded drifted traffic into `drift_results` rows and a retrain
//! recommendation, and `/metrics` series checked against those rows.

use std::collections::BTreeMap;

use modelwatch_client::{RecommendationKind, RecommendationStatus};
use serde_json::{Value, json};

use crate::support::*;

/// NDJSON rows: `amount` around `center`, `country` cycling through three
/// values, timestamps `age_s` seconds before now.
fn ndjson(n: usize, center: f64, age_s: f64) -> Vec<u8> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let mut out = String::new();
    for i in 0..n {
        // A deterministic spread of ±10 around the center.
        let amount = center + ((i * 37) % 21) as f64 - 10.0;
        let country = ["de", "fr", "it"][i % 3];
        out.push_str(&json!({"ts": now - age_s, "amount": amount, "country": country}).to_string());
        out.push('\n');
    }
    out.into_bytes()
}

/// Model `fraud` v1 as `production` with a policy (`persistence` 1 and an
/// hour's interval added to `policy`): 600 reference rows, then 300 current
/// rows whose `amount` is shifted by three times its spread (the first
/// reference upload declares the features `amount` and `country`).
pub(crate) async fn drifting_fraud_model(admin: &Http, mut policy: Value) {
    admin
        .post_expect("/api/v1/models", json!({"name": "fraud"}), 201)
        .await;
    admin
        .post_expect("/api/v1/models/fraud/versions", json!({}), 201)
        .await;
    let upload = |table: &'static str, rows: Vec<u8>| async move {
        let (status, body) = admin
            .raw(
                "POST",
                &format!("/api/v1/models/fraud/versions/1/{table}"),
                "application/x-ndjson",
                rows,
            )
            .await;
        assert_eq!(status, 200, "{table}: {body}");
    };
    upload("reference", ndjson(600, 100.0, 86_400.0)).await;
    let alias = json!({"version": 1});
    admin
        .put_expect("/api/v1/models/fraud/aliases/production", alias, 200)
        .await;
    policy["persistence"] = json!(1);
    policy["interval"] = json!("1h");
    admin
        .put_expect("/api/v1/models/fraud/policy", policy, 200)
        .await;
    upload("inferences", ndjson(300, 130.0, 60.0)).await;
}

/// `modelwatch_name{labels} value` lines of one family, keyed by labels.
fn series(text: &str, family: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{family}{{")))
        .map(|l| {
            let (labels, value) = l.rsplit_once(' ').unwrap();
            (
                labels[family.len()..].to_string(),
                value.parse::<f64>().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn policies_are_validated_gated_and_audited() {
    let d = Daemon::start();
    let admin = d.http();
    let editor = admin.with_token(Some(&admin.token("ci", "editor").await));
    let reader = admin.with_token(Some(&admin.token("grafana", "reader").await));
    admin
        .post_expect("/api/v1/models", json!({"name": "fraud"}), 201)
        .await;

    let (status, body) = admin.get("/api/v1/models/fraud/policy").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    editor
        .put_expect("/api/v1/models/ghost/policy", json!({}), 404)
        .await;

    // Bad policies name the field; nothing is stored.
    for (bad, needle) in [
        (json!({"interval": "soon"}), "interval"),
        (json!({"drift_share": 0}), "drift_share"),
        (
            json!({"features": {"amount": {"method": "magic"}}}),
            "magic",
        ),
        (json!({"rollback": {}}), "rollback"),
        (json!({"unknown": 1}), "unknown"),
    ] {
        let (status, body) = editor.put("/api/v1/models/fraud/policy", bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
        let message = error_message(&body);
        assert!(message.contains(needle), "{bad}: {message}");
    }
    assert_eq!(admin.get("/api/v1/models/fraud/policy").await.0, 404);

    // Readers cannot set; automatic rollback needs an approver.
    reader
        .put_expect("/api/v1/models/fraud/policy", json!({}), 403)
        .await;
    // So does letting Alertmanager roll back.
    editor
        .put_expect(
            "/api/v1/models/fraud/policy",
            json!({"rollback_on_alert": true}),
            403,
        )
        .await;
    let auto = json!({"rollback": {"errors": {"source": "spans"}, "automatic": true}});
    editor
        .put_expect("/api/v1/models/fraud/policy", auto.clone(), 403)
        .await;
    let rec = admin
        .put_expect("/api/v1/models/fraud/policy", auto, 200)
        .await;
    assert_eq!(rec["policy"]["rollback"]["automatic"], true);
    assert_eq!(rec["policy"]["alias"], "production");
    assert_eq!(rec["policy"]["interval"], "1m");

    // The CLI sets from a TOML file plus flags, and reads back.
    let file = d.data_dir.join("policy.toml");
    std::fs::write(&file, "current_window = \"30m\"\npersistence = 4\n").unwrap();
    let out = d.cli(&[
        "policy",
        "set",
        "fraud",
        "--file",
        file.to_str().unwrap(),
        "--interval",
        "5m",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rec = reader.api().policies().get("fraud").await.unwrap();
    assert_eq!(rec.policy.current_window.to_string(), "30m");
    assert_eq!(rec.policy.interval.to_string(), "5m");
    assert_eq!(rec.policy.persistence, 4);
    let out = d.cli(&["policy", "list"]);
    assert!(stdout(&out).contains("fraud"), "{}", stdout(&out));

    let (status, audit) = admin.get("/api/v1/audit?action=policy.set").await;
    assert_eq!(status, 200);
    let entries = audit["items"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{audit}");
    assert!(entries.iter().all(|e| e["target"] == "model/fraud/policy"));

    let out = d.cli(&["policy", "delete", "fraud"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(admin.get("/api/v1/models/fraud/policy").await.0, 404);

    // Registry operations are counted: the policy for the missing model was
    // refused inside the writer, the others committed.
    let (_, text) = reader.get("/metrics").await;
    let changes = series(text.as_str().unwrap(), "modelwatch_registry_changes_total");
    assert!(changes[r#"{outcome="rejected"}"#] >= 1.0, "{changes:?}");
    // Tokens, model, two policy sets, the CLI set, the delete.
    assert!(changes[r#"{outcome="committed"}"#] >= 6.0, "{changes:?}");
}

#[tokio::test]
async fn evaluation_stores_results_raises_retrain_and_exports_metrics() {
    let d = Daemon::start();
    let admin = d.http();
    let reader = admin.with_token(Some(&admin.token("grafana", "reader").await));
    drifting_fraud_model(&admin, json!({"current_window": "1h", "min_rows": 100})).await;

    let out = d.cli(&["evaluate", "--model", "fraud", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let outcome = &report["versions"][0];
    assert_eq!(outcome["status"], "evaluated", "{report}");
    assert_eq!(outcome["dataset_drift"], true, "{report}");
    assert_eq!(outcome["drifted_features"], json!(["amount"]), "{report}");
    // The background loop may have evaluated once already (a new policy is
    // due at once): the recommendation is raised or refreshed.
    let action = outcome["recommendations"][0]["action"].as_str();
    assert!(matches!(action, Some("raised" | "updated")), "{report}");
    let evaluation_id = outcome["evaluation_id"].as_str().unwrap();

    let retrain = Some(RecommendationKind::Retrain);
    let recs = reader
        .recommendations_of("fraud", retrain, Some(RecommendationStatus::Open))
        .await;
    assert_eq!(recs.len(), 1, "{recs:?}");
    let version = reader.api().versions("fraud").get(1).await.unwrap();
    assert_eq!(version.tags["modelwatch.health"], "drifting");
    assert_eq!(version.tags["modelwatch.recommendation"], "retrain");

    // drift_results holds every feature's result, and /metrics says the same.
    let rows = sql(
        &reader,
        &format!(
            "SELECT feature, method, statistic, p_value, drifted_share, n_current \
             FROM drift_results WHERE evaluation_id = '{evaluation_id}' ORDER BY feature"
        ),
    )
    .await["rows"]
        .clone();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r["n_current"] == 300));

    // The same evaluation's data quality: every current amount (120..140)
    // lies above the reference's range (90..110); no country is new.
    let quality = sql(
        &reader,
        &format!(
            "SELECT feature, feature_kind, rows, missing_share, type_mismatch_share, \
             out_of_range_share, unseen_share, unseen_categories \
             FROM data_quality_results WHERE evaluation_id = '{evaluation_id}' ORDER BY feature"
        ),
    )
    .await["rows"]
        .clone();
    assert_eq!(
        quality,
        json!([
            {"feature": "amount", "feature_kind": "numeric", "rows": 300, "missing_share": 0.0,
             "type_mismatch_share": 0.0, "out_of_range_share": 1.0, "unseen_share": null,
             "unseen_categories": null},
            {"feature": "country", "feature_kind": "categorical", "rows": 300,
             "missing_share": 0.0, "type_mismatch_share": 0.0, "out_of_range_share": null,
             "unseen_share": 0.0, "unseen_categories": null}
        ]),
        "{quality}"
    );
    let (status, text) = reader.get("/metrics").await;
    assert_eq!(status, 200);
    let text = text.as_str().unwrap();
    let statistics = series(text, "modelwatch_drift_statistic");
    let p_values = series(text, "modelwatch_drift_p_value");
    for r in rows {
        let labels = format!(
            "{{feature=\"{}\",method=\"{}\",model=\"fraud\",version=\"1\"}}",
            r["feature"].as_str().unwrap(),
            r["method"].as_str().unwrap()
        );
        let exported = statistics
            .get(&labels)
            .unwrap_or_else(|| panic!("{labels} missing in {statistics:?}"));
        let stored = r["statistic"].as_f64().unwrap();
        assert!(
            (exported - stored).abs() <= 1e-9 * stored.abs().max(1.0),
            "{labels}: {exported} vs {stored}"
        );
        match r["p_value"].as_f64() {
            Some(p) => assert!((p_values[&labels] - p).abs() <= 1e-9, "{labels}"),
            None => assert!(!p_values.contains_key(&labels), "{labels}"),
        }
    }
    let share = series(text, "modelwatch_drift_drifted_share_ratio");
    assert_eq!(
        share[r#"{model="fraud",version="1"}"#],
        rows[0]["drifted_share"].as_f64().unwrap()
    );
    assert_eq!(
        series(text, "modelwatch_recommendations_open")[r#"{kind="retrain",model="fraud",version="1"}"#],
        1.0
    );
    assert_eq!(
        series(text, "modelwatch_drift_dataset_drifted")[r#"{model="fraud",version="1"}"#],
        1.0
    );
    let last = series(text, "modelwatch_evaluation_last_timestamp_seconds")[r#"{model="fraud",version="1"}"#];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(now - last < 300.0 && last <= now, "{last} vs {now}");
    let evaluated = series(text, "modelwatch_evaluations_total")[r#"{status="evaluated"}"#];
    assert!((1.0..=2.0).contains(&evaluated), "{evaluated}");

    // An empty body evaluates every watched model (curl without -d).
    let (status, body) = admin.send("POST", "/api/v1/evaluate", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["versions"][0]["model"], "fraud", "{body}");
    let (status, body) = admin
        .send("POST", "/api/v1/evaluate", Some(json!({"model": "ghost"})))
        .await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test]
async fn a_policy_file_is_applied_at_start_and_the_evaluator_can_be_off() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let file = root.path().join("policies.toml");
    std::fs::write(
        &file,
        "[models.fraud]\npersistence = 2\ncurrent_window = \"30m\"\n\n\
         [models.fraud.rollback]\nerrors = { source = \"spans\" }\nautomatic = true\n",
    )
    .unwrap();
    let start = |extra: &[&str]| {
        let mut args = vec!["--policy-file".to_string(), file.display().to_string()];
        args.extend(extra.iter().map(|s| s.to_string()));
        Daemon::start_in(
            data.clone(),
            None,
            Start {
                args,
                ..Default::default()
            },
        )
    };
    let policy_sets = |http: Http| async move {
        let audit = http
            .get_expect("/api/v1/audit?action=policy.set", 200)
            .await;
        audit["items"].as_array().unwrap().clone()
    };

    // First start: the model does not exist yet, so its policy waits.
    let d = start(&["--no-evaluator"]);
    let admin = d.http();
    admin
        .post_expect("/api/v1/models", json!({"name": "fraud"}), 201)
        .await;
    assert_eq!(admin.get("/api/v1/models/fraud/policy").await.0, 404);
    // Without the evaluator, evaluating on demand says why it cannot.
    let (status, body) = admin.post("/api/v1/evaluate", json!({})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("unavailable")),
        "{body}"
    );
    assert!(error_message(&body).contains("--no-evaluator"), "{body}");
    d.terminate();

    // Next start: applied, audited as the system actor.
    let d = start(&[]);
    let (status, rec) = d.http().get("/api/v1/models/fraud/policy").await;
    assert_eq!(status, 200, "{rec}");
    assert_eq!(rec["policy"]["persistence"], 2);
    assert_eq!(rec["policy"]["current_window"], "30m");
    assert_eq!(rec["policy"]["rollback"]["automatic"], true);
    assert_eq!(rec["updated_by"], "modelwatch");
    assert_eq!(policy_sets(d.http()).await.len(), 1);
    d.terminate();

    // An unchanged file writes nothing.
    let d = start(&[]);
    assert_eq!(policy_sets(d.http()).await.len(), 1);
    d.terminate();

    // A bad file stops the start, naming the file and the field.
    std::fs::write(&file, "[models.fraud]\ninterval = \"soon\"\n").unwrap();
    let out = std::process::Command::new(binary())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(["--otlp-grpc-listen", "off", "--otlp-http-listen", "off"])
        .arg("--data-dir")
        .arg(&data)
        .arg("--policy-file")
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("policies.toml") && err.contains("soon"),
        "{err}"
    );
}

/// Deterministic N(`mean`, `sd`) draws: SplitMix64 uniforms through
/// Box–Muller (the same numbers on every run and machine).
pub(crate) fn normals(seed: u64, n: usize, mean: f64, sd: f64) -> Vec<f64> {
    let mut state = seed;
    let mut uniform = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let u1 = uniform().max(f64::MIN_POSITIVE);
            let u2 = uniform();
            mean + sd * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
        })
        .collect()
}

/// The issue's user check: on a seeded 100k-vs-100k window with a 0.05 σ
/// shift, what the evaluator stores equals scipy on the whole windows, and
/// evaluating the same window again stores the same numbers.
#[tokio::test]
async fn stored_statistics_are_scipys_on_the_whole_window_and_reproducible() {
    const N: usize = 100_000;
    let d = Daemon::start();
    let admin = d.http();
    admin
        .post_expect("/api/v1/models", json!({"name": "exact"}), 201)
        .await;
    admin
        .post_expect("/api/v1/models/exact/versions", json!({}), 201)
        .await;
    // amount shifts by 0.05 σ; score does not move.
    let windows: BTreeMap<&str, (Vec<f64>, Vec<f64>)> = BTreeMap::from([
        (
            "amount",
            (normals(1, N, 0.0, 1.0), normals(2, N, 0.05, 1.0)),
        ),
        ("score", (normals(3, N, 5.0, 2.0), normals(4, N, 5.0, 2.0))),
    ]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    for (table, current) in [("reference", false), ("inferences", true)] {
        for chunk in (0..N).collect::<Vec<_>>().chunks(25_000) {
            let mut body = String::new();
            for &i in chunk {
                let side = |f: &str| {
                    let (r, c) = &windows[f];
                    if current { c[i] } else { r[i] }
                };
                // Distinct timestamps within the last ten minutes.
                let ts = now - 600.0 + i as f64 * 0.005;
                let row = json!({"ts": ts, "amount": side("amount"), "score": side("score")});
                body.push_str(&row.to_string());
                body.push('\n');
            }
            let (status, reply) = admin
                .raw(
                    "POST",
                    &format!("/api/v1/models/exact/versions/1/{table}"),
                    "application/x-ndjson",
                    body.into_bytes(),
                )
                .await;
            assert_eq!(status, 200, "{table}: {reply}");
        }
    }
    admin
        .put_expect(
            "/api/v1/models/exact/aliases/production",
            json!({"version": 1}),
            200,
        )
        .await;
    let policy = json!({"current_window": "1h", "interval": "1h", "min_rows": 100,
                        "persistence": 1,
                        "features": {"amount": {"method": "ks"}, "score": {}}});
    admin
        .put_expect("/api/v1/models/exact/policy", policy, 200)
        .await;

    let mut evaluations = Vec::new();
    for _ in 0..2 {
        let out = d.cli(&["evaluate", "--model", "exact", "--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(report["versions"][0]["status"], "evaluated", "{report}");
        evaluations.push(report["versions"][0]["evaluation_id"].clone());
    }
    assert_ne!(evaluations[0], evaluations[1]);

    let rows = sql(
        &admin,
        "SELECT evaluation_id, feature, method, statistic, p_value, n_reference, n_current, \
         sampling, seen_reference, seen_current, cdf_error_bound \
         FROM drift_results WHERE model = 'exact' ORDER BY feature, evaluation_id",
    )
    .await["rows"]
        .clone();
    let rows = rows.as_array().unwrap();
    // The two on demand, and the background loop's if it ran meanwhile.
    assert!(rows.len() >= 4, "{rows:?}");
    for r in rows {
        assert_eq!(r["sampling"], "exact", "{r}");
        assert_eq!(
            (r["n_reference"].as_u64(), r["n_current"].as_u64()),
            (Some(N as u64), Some(N as u64)),
            "{r}"
        );
        assert_eq!(
            (r["seen_reference"].as_u64(), r["seen_current"].as_u64()),
            (Some(N as u64), Some(N as u64)),
            "{r}"
        );
        assert_eq!(r["cdf_error_bound"], 0.0, "{r}");
    }
    // Same window, same numbers: every evaluation of a feature stored the
    // identical statistic and p-value.
    for feature in windows.keys() {
        let of: Vec<&Value> = rows.iter().filter(|r| r["feature"] == *feature).collect();
        assert!(of.len() >= 2, "{feature}: {rows:?}");
        for r in &of {
            assert_eq!(
                (&r["statistic"], &r["p_value"]),
                (&of[0]["statistic"], &of[0]["p_value"]),
                "{feature}"
            );
        }
    }

    // scipy on the whole windows.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("windows.json");
    let payload: serde_json::Map<String, Value> = windows
        .iter()
        .map(|(f, (r, c))| (f.to_string(), json!({"reference": r, "current": c})))
        .collect();
    std::fs::write(&path, Value::Object(payload).to_string()).unwrap();
    let scipy: Value = serde_json::from_str(
        &run_python_script("drift_scipy.py", &[path.display().to_string()], &[]).await,
    )
    .unwrap();
    let close = |got: &Value, want: &Value, rel: f64, what: &str| {
        let (got, want) = (got.as_f64().unwrap(), want.as_f64().unwrap());
        assert!(
            (got - want).abs() <= rel * want.abs(),
            "{what}: stored {got:e}, scipy {want:e}"
        );
    };
    let stored = |feature: &str| rows.iter().find(|r| r["feature"] == feature).unwrap();
    let amount = stored("amount");
    assert_eq!(amount["method"], "ks");
    close(
        &amount["statistic"],
        &scipy["amount"]["ks_statistic"],
        1e-9,
        "amount D",
    );
    // scipy's asymptotic KS p-value (kstwo.sf) agrees to about 2e-9
    // relative (drift/tests/scipy_agreement.rs).
    close(
        &amount["p_value"],
        &scipy["amount"]["ks_p_value"],
        1e-8,
        "amount p",
    );
    assert!(amount["p_value"].as_f64().unwrap() < 1e-6, "{amount}");
    let score = stored("score");
    assert_eq!(score["method"], "wasserstein");
    close(
        &score["statistic"],
        &scipy["score"]["wasserstein_normed"],
        1e-9,
        "score W",
    );
}

/// Realized performance: a binary classifier's probabilities and labels
/// uploaded with its inferences become `performance_results` figures equal
/// to the metrics computed on the same rows (which equal scikit-learn's,
/// drift/tests/sklearn_agreement.rs); unlabelled rows lower the coverage.
#[tokio::test]
async fn labelled_inferences_become_realized_performance() {
    let d = Daemon::start();
    let admin = d.http();
    admin
        .post_expect("/api/v1/models", json!({"name": "quality"}), 201)
        .await;
    admin
        .post_expect("/api/v1/models/quality/versions", json!({}), 201)
        .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let scores = normals(7, 1_200, 0.5, 0.2);
    let noise = normals(8, 1_200, 0.0, 0.25);
    let mut body = String::new();
    let (mut labels, mut probabilities) = (Vec::new(), Vec::new());
    for (i, (s, n)) in scores.iter().zip(&noise).enumerate() {
        let p = s.clamp(0.0, 1.0);
        let mut row = json!({"ts": now - 300.0 + i as f64 * 0.1, "amount": i, "prediction": p});
        // The first 1,000 rows are labelled: fraud when the score plus
        // noise is high, so the model is good but not perfect.
        if i < 1_000 {
            let label = if p + n > 0.55 { "fraud" } else { "ok" };
            row["label"] = json!(label);
            labels.push(label);
            probabilities.push(p);
        }
        body.push_str(&row.to_string());
        body.push('\n');
    }
    let (status, reply) = admin
        .raw(
            "POST",
            "/api/v1/models/quality/versions/1/inferences",
            "application/x-ndjson",
            body.into_bytes(),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    admin
        .put_expect(
            "/api/v1/models/quality/aliases/production",
            json!({"version": 1}),
            200,
        )
        .await;
    // A positive class makes no sense for regression: refused, naming it.
    let (status, body) = admin
        .send(
            "PUT",
            "/api/v1/models/quality/policy",
            Some(json!({"performance": {"task": "regression", "positive_class": "fraud"}})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.to_string().contains("performance.positive_class"),
        "{body}"
    );
    let policy = json!({"current_window": "1h", "interval": "1h", "min_rows": 100,
                        "performance": {"task": "classification", "positive_class": "fraud",
                                        "threshold": 0.6}});
    admin
        .put_expect("/api/v1/models/quality/policy", policy, 200)
        .await;

    let out = d.cli(&["evaluate", "--model", "quality", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let performance = &report["versions"][0]["performance"];
    assert_eq!(performance["measured"], true, "{report}");
    assert_eq!(
        (
            performance["rows"].as_u64(),
            performance["labelled_rows"].as_u64()
        ),
        (Some(1_200), Some(1_000)),
        "{report}"
    );

    let evaluation_id = report["versions"][0]["evaluation_id"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_default();
    let rows = sql(
        &admin,
        "SELECT evaluation_id, metric, class, value, estimated, labelled_rows, label_coverage \
         FROM performance_results WHERE model = 'quality' ORDER BY evaluation_id DESC, metric",
    )
    .await["rows"]
        .clone();
    let rows = rows.as_array().unwrap();
    let newest = rows[0]["evaluation_id"].clone();
    if !evaluation_id.is_empty() {
        assert_eq!(newest, evaluation_id.as_str());
    }
    let stored = |metric: &str, class: Option<&str>| -> f64 {
        rows.iter()
            .find(|r| {
                r["evaluation_id"] == newest
                    && r["metric"] == metric
                    && r["class"].as_str() == class
            })
            .unwrap_or_else(|| panic!("{metric} {class:?} not in {rows:?}"))["value"]
            .as_f64()
            .unwrap()
    };
    assert!(
        rows.iter()
            .all(|r| r["estimated"] == false && r["label_coverage"] == 1_000.0 / 1_200.0)
    );

    // The same figures from the same rows.
    let predicted: Vec<&str> = probabilities
        .iter()
        .map(|p| if *p >= 0.6 { "fraud" } else { "other" })
        .collect();
    let truth: Vec<&str> = labels
        .iter()
        .map(|l| if *l == "fraud" { "fraud" } else { "other" })
        .collect();
    let want = modelwatch_drift::performance::classification(
        &truth,
        &predicted,
        Some(modelwatch_drift::performance::Scores {
            positive_class: "fraud",
            values: &probabilities,
        }),
    )
    .unwrap();
    let scores = want.scores.as_ref().unwrap();
    let close = |got: f64, want: f64, what: &str| {
        assert!(
            (got - want).abs() <= 1e-12 * want.abs().max(1.0),
            "{what}: {got} vs {want}"
        );
    };
    close(stored("accuracy", None), want.accuracy, "accuracy");
    close(stored("macro_f1", None), want.macro_f1, "macro_f1");
    close(
        stored("precision", Some("fraud")),
        want.classes["fraud"].precision,
        "precision",
    );
    close(
        stored("recall", Some("other")),
        want.classes["other"].recall,
        "recall",
    );
    close(stored("roc_auc", None), scores.roc_auc.unwrap(), "roc_auc");
    close(stored("log_loss", None), scores.log_loss, "log_loss");
    close(
        stored("calibration_error", None),
        scores.calibration_error,
        "calibration_error",
    );
    // A useful model: well above chance.
    assert!(scores.roc_auc.unwrap() > 0.75, "{scores:?}");

    // /metrics exports the whole-window figures of the watched version.
    let (_, text) = admin.get("/metrics").await;
    let exported = series(text.as_str().unwrap(), "modelwatch_performance");
    assert_eq!(
        exported[r#"{metric="roc_auc",model="quality",version="1"}"#],
        stored("roc_auc", None),
        "{exported:?}"
    );
    assert!(
        exported.keys().all(|k| !k.contains("class")),
        "{exported:?}"
    );
    let coverage = series(
        text.as_str().unwrap(),
        "modelwatch_performance_label_coverage_ratio",
    );
    assert_eq!(
        coverage[r#"{model="quality",version="1"}"#],
        1_000.0 / 1_200.0
    );

    // The promotion gate sees the newest measurement.
    let (status, gate) = admin
        .send("POST", "/api/v1/models/quality/versions/1/gate", None)
        .await;
    assert_eq!(status, 200, "{gate}");
    let performance = &gate["input"]["performance"];
    assert_eq!(performance["evaluation_id"], newest, "{gate}");
    assert_eq!(performance["labelled_rows"], 1_000, "{gate}");
    assert_eq!(
        performance["metrics"]["roc_auc"].as_f64(),
        Some(stored("roc_auc", None)),
        "{gate}"
    );
    assert_eq!(
        performance["classes"]["fraud"]["precision"].as_f64(),
        Some(stored("precision", Some("fraud"))),
        "{gate}"
    );
}

/// Data-quality limits: the shifted window's amounts all lie above the
/// reference's range, so a 5 % out-of-range limit degrades the version,
/// `/metrics` counts the breach and the example gate denies it by feature.
#[tokio::test]
async fn a_data_quality_limit_degrades_the_version_and_the_gate_denies_it() {
    let d = Daemon::start();
    let admin = d.http();
    let policy = json!({"current_window": "1h", "min_rows": 100,
                        "data_quality": {"max_out_of_range_share": 0.05,
                                         "max_missing_share": 0.5}});
    drifting_fraud_model(&admin, policy).await;
    let report = admin
        .post_expect("/api/v1/evaluate", json!({"model": "fraud"}), 200)
        .await;
    let outcome = &report["versions"][0];
    assert_eq!(
        outcome["data_quality_breaches"],
        json!([{"feature": "amount", "measure": "out_of_range_share", "value": 1.0, "limit": 0.05}]),
        "{report}"
    );
    let version = admin
        .get_expect("/api/v1/models/fraud/versions/1", 200)
        .await;
    assert_eq!(
        version["tags"]["modelwatch.health"], "degraded",
        "{version}"
    );
    let metrics = admin.get_text("/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("modelwatch_data_quality_breaches{")
                && l.contains(r#"model="fraud""#)
                && l.ends_with(" 1")),
        "{metrics}"
    );
    admin
        .put_example_gate("fraud", "no_data_quality_breach.rego")
        .await;
    let gate = admin
        .post_expect("/api/v1/models/fraud/versions/1/gate", json!({}), 200)
        .await;
    assert_eq!(gate["allowed"], false, "{gate}");
    assert_eq!(
        gate["reasons"],
        json!(["amount: out_of_range_share is 1, above 0.05"]),
        "{gate}"
    );
    assert_eq!(
        gate["input"]["data_quality"]["features"]["country"]["unseen_share"], 0.0,
        "{gate}"
    );
}

/// Prediction drift: with `prediction_drift` the prediction column is
/// tested like a feature named `prediction`, so a model whose outputs move
/// while its inputs stay put is caught.
#[tokio::test]
async fn the_prediction_is_tested_for_drift_like_a_feature() {
    let d = Daemon::start();
    let admin = d.http();
    admin
        .post_expect("/api/v1/models", json!({"name": "pred"}), 201)
        .await;
    admin
        .post_expect("/api/v1/models/pred/versions", json!({}), 201)
        .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    // Same amounts on both sides; the predicted probability moves up.
    let rows = |n: usize, shift: f64, seed: u64| {
        let amounts = normals(seed, n, 100.0, 10.0);
        let scores = normals(seed + 1, n, 0.3 + shift, 0.05);
        let mut body = String::new();
        for i in 0..n {
            let row = json!({"ts": now - 600.0 + i as f64, "amount": amounts[i],
                             "prediction": scores[i]});
            body.push_str(&row.to_string());
            body.push('\n');
        }
        body.into_bytes()
    };
    for (table, body) in [
        ("reference", rows(600, 0.0, 11)),
        ("inferences", rows(400, 0.2, 21)),
    ] {
        let (status, reply) = admin
            .raw(
                "POST",
                &format!("/api/v1/models/pred/versions/1/{table}"),
                "application/x-ndjson",
                body,
            )
            .await;
        assert_eq!(status, 200, "{table}: {reply}");
    }
    admin
        .put_expect(
            "/api/v1/models/pred/aliases/production",
            json!({"version": 1}),
            200,
        )
        .await;
    let policy = json!({"current_window": "1h", "interval": "1h", "min_rows": 100,
                        "persistence": 1, "prediction_drift": true});
    admin
        .put_expect("/api/v1/models/pred/policy", policy, 200)
        .await;
    let out = d.cli(&["evaluate", "--model", "pred", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["versions"][0]["status"], "evaluated", "{report}");
    assert_eq!(
        report["versions"][0]["drifted_features"],
        json!(["prediction"]),
        "{report}"
    );
    let evaluation_id = report["versions"][0]["evaluation_id"].as_str().unwrap();
    let rows = sql(
        &admin,
        &format!(
            "SELECT feature, feature_kind, drifted, n_reference, n_current FROM drift_results \
             WHERE evaluation_id = '{evaluation_id}' ORDER BY feature"
        ),
    )
    .await["rows"]
        .clone();
    assert_eq!(
        rows,
        json!([
            {"feature": "amount", "feature_kind": "numeric", "drifted": false,
             "n_reference": 600, "n_current": 400},
            {"feature": "prediction", "feature_kind": "numeric", "drifted": true,
             "n_reference": 600, "n_current": 400}
        ]),
        "{rows}"
    );
}
