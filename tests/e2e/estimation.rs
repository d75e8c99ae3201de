//! Multivariate drift and estimation without labels through the real
//! daemon: features that stop moving together are drift although no
//! feature's distribution moved (PCA reconstruction error, stored in
//! `multivariate_drift_results`, a retrain raised); a multiclass model's
//! performance is estimated from its class scores (multiclass CBPE); a
//! regression model's error from its features (DLE). Each stored figure
//! equals the `drift` crate's on the same rows.

use modelwatch_drift::FeatureMatrix;
use serde_json::{Value, json};

use crate::monitoring::normals;
use crate::support::*;

fn now_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Uniforms in [0, 1) from a splitmix64 stream (seeded, so every run sends
/// the same rows).
fn uniforms(seed: u64, n: usize) -> Vec<f64> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        })
        .collect()
}

/// Creates `model` with version 1 as `production`.
async fn registered(admin: &Http, model: &str) {
    admin
        .post_expect("/api/v1/models", json!({ "name": model }), 201)
        .await;
    admin
        .post_expect(&format!("/api/v1/models/{model}/versions"), json!({}), 201)
        .await;
    admin
        .put_expect(
            &format!("/api/v1/models/{model}/aliases/production"),
            json!({"version": 1}),
            200,
        )
        .await;
}

/// Uploads NDJSON `rows` into `table` of version 1 of `model`.
async fn upload(admin: &Http, model: &str, table: &str, rows: &[Value]) {
    let body: String = rows.iter().map(|r| format!("{r}\n")).collect();
    let (status, reply) = admin
        .raw(
            "POST",
            &format!("/api/v1/models/{model}/versions/1/{table}"),
            "application/x-ndjson",
            body.into_bytes(),
        )
        .await;
    assert_eq!(status, 200, "{table}: {reply}");
}

/// Inference rows spread over the last five minutes.
fn recent(rows: Vec<Value>) -> Vec<Value> {
    let now = now_s();
    rows.into_iter()
        .enumerate()
        .map(|(i, mut r)| {
            r["ts"] = json!(now - 300.0 + i as f64 * 0.1);
            r
        })
        .collect()
}

/// Sets the policy and evaluates once; the CLI's JSON report of the version.
async fn evaluate(d: &Daemon, admin: &Http, model: &str, policy: Value) -> Value {
    admin
        .put_expect(&format!("/api/v1/models/{model}/policy"), policy, 200)
        .await;
    let out = d.cli(&["evaluate", "--model", model, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    report["versions"][0].clone()
}

/// The whole-window estimates stored for `model`: metric → value.
async fn stored_estimates(admin: &Http, model: &str) -> std::collections::BTreeMap<String, f64> {
    let stored = sql(
        admin,
        &format!(
            "SELECT metric, value FROM performance_results \
             WHERE model = '{model}' AND estimated AND class IS NULL"
        ),
    )
    .await;
    stored["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["metric"].as_str().unwrap().to_string(),
                r["value"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// Asserts each `(metric, expected)` was stored within `relative` of it.
fn assert_estimates(
    stored: &std::collections::BTreeMap<String, f64>,
    expected: &[(&str, f64)],
    relative: f64,
) {
    for (metric, want) in expected {
        let got = stored
            .get(*metric)
            .unwrap_or_else(|| panic!("{metric} in {stored:?}"));
        assert!(
            (got - want).abs() <= relative * want.abs(),
            "{metric}: {got} vs {want}"
        );
    }
}

/// The open `retrain` recommendations of `model`.
async fn open_retrains(admin: &Http, model: &str) -> Vec<modelwatch_client::Recommendation> {
    admin
        .recommendations_of(
            model,
            Some(modelwatch_client::RecommendationKind::Retrain),
            Some(modelwatch_client::RecommendationStatus::Open),
        )
        .await
}

#[tokio::test]
async fn features_that_stop_moving_together_are_multivariate_drift() {
    use modelwatch_drift::multivariate::reconstruction_drift;
    let d = Daemon::start();
    let admin = d.http();
    registered(&admin, "pair").await;
    // Reference: y follows x. Current: the same two marginals (x and y
    // standard normal), but y no longer follows x.
    let n = 2_000;
    let x = normals(21, n, 0.0, 1.0);
    let noise = normals(22, n, 0.0, 0.2);
    let y: Vec<f64> = x
        .iter()
        .zip(&noise)
        .map(|(x, e)| (x + e) / (1.0f64 + 0.04).sqrt())
        .collect();
    let x_now = normals(23, n, 0.0, 1.0);
    let y_now = normals(24, n, 0.0, 1.0);
    let rows = |x: &[f64], y: &[f64]| -> Vec<Value> {
        x.iter()
            .zip(y)
            .map(|(x, y)| json!({"x": x, "y": y}))
            .collect()
    };
    upload(&admin, "pair", "reference", &rows(&x, &y)).await;
    upload(&admin, "pair", "inferences", &recent(rows(&x_now, &y_now))).await;
    let version = evaluate(
        &d,
        &admin,
        "pair",
        json!({"current_window": "1h", "interval": "1h", "min_rows": 100, "persistence": 1,
               "multivariate": {}}),
    )
    .await;
    assert_eq!(
        version["dataset_drift"], false,
        "no feature moved: {version}"
    );
    let mv = &version["multivariate"];
    assert_eq!(mv["measured"], true, "{version}");
    assert_eq!(mv["features"], json!(["x", "y"]));
    assert_eq!(mv["drift"]["drifted"], true, "{version}");

    // The same numbers from the same rows.
    let matrix = |x: &[f64], y: &[f64]| {
        FeatureMatrix::new(x.len())
            .with_numeric("x", x.iter().copied().map(Some).collect())
            .with_numeric("y", y.iter().copied().map(Some).collect())
    };
    let expected = reconstruction_drift(&matrix(&x, &y), &matrix(&x_now, &y_now), 0.65).unwrap();
    let stored = sql(
        &admin,
        "SELECT method, rows, value, reference_value, lower, upper, components, drifted \
         FROM multivariate_drift_results WHERE model = 'pair'",
    )
    .await;
    let stored = &stored["rows"][0];
    assert_eq!(stored["method"], "pca_reconstruction");
    assert_eq!(stored["rows"], n as u64);
    assert_eq!(stored["components"], expected.components as u64);
    assert_eq!(stored["drifted"], true);
    for (column, want) in [
        ("value", expected.value),
        ("reference_value", expected.reference_value),
        ("upper", expected.upper),
    ] {
        let got = stored[column].as_f64().unwrap();
        assert!(
            (got - want).abs() <= 1e-9 * want.abs(),
            "{column}: {got} vs {want}"
        );
    }

    // Drift with persistence 1: a retrain that names the multivariate
    // evidence, the version drifting, the figures in /metrics.
    let open = open_retrains(&admin, "pair").await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert!(
        open[0].reason.contains("multivariate reconstruction error"),
        "{}",
        open[0].reason
    );
    assert_eq!(open[0].evidence["multivariate"]["drift"]["drifted"], true);
    let metrics = admin.get_text("/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("modelwatch_multivariate_drifted{")
                && l.contains(r#"model="pair""#)
                && l.ends_with(" 1")),
        "{metrics}"
    );
    // Evaluated again (the fitted reference kept): the same numbers. The
    // CLI's table says it too.
    let out = d.cli(&["evaluate", "--model", "pair"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = stdout(&out);
    // The header names the column; pair's row has it true at that place.
    let header = table
        .lines()
        .find(|l| l.contains("multivariate drifted"))
        .unwrap_or_else(|| panic!("{table}"));
    let at = header.find("multivariate drifted").unwrap();
    let row = table
        .lines()
        .find(|l| l.contains(" pair "))
        .unwrap_or_else(|| panic!("{table}"));
    assert_eq!(row.get(at..at + 4), Some("true"), "{table}");
    let again = sql(
        &admin,
        "SELECT count(*) AS n, count(DISTINCT value) AS values, count(DISTINCT upper) AS bands \
         FROM multivariate_drift_results WHERE model = 'pair'",
    )
    .await;
    // (The background evaluator may have evaluated the new policy too.)
    assert!(again["rows"][0]["n"].as_u64().unwrap() >= 2, "{again}");
    assert_eq!(again["rows"][0]["values"], 1, "{again}");
    assert_eq!(again["rows"][0]["bands"], 1, "{again}");
    // And in the promotion gate's input.
    let gate = admin
        .post_expect("/api/v1/models/pair/versions/1/gate", json!({}), 200)
        .await;
    assert_eq!(gate["input"]["multivariate"]["drifted"], true, "{gate}");
    assert_eq!(
        gate["input"]["multivariate"]["components"],
        expected.components as u64
    );
}

#[tokio::test]
async fn a_stable_window_is_not_multivariate_drift_and_one_feature_is_refused() {
    let d = Daemon::start();
    let admin = d.http();
    registered(&admin, "steady").await;
    let n = 1_500;
    let pairs = |seed: u64| -> Vec<Value> {
        let x = normals(seed, n, 0.0, 1.0);
        let e = normals(seed + 1, n, 0.0, 0.3);
        x.iter()
            .zip(&e)
            .map(|(x, e)| json!({"x": x, "y": x + e}))
            .collect()
    };
    upload(&admin, "steady", "reference", &pairs(31)).await;
    upload(&admin, "steady", "inferences", &recent(pairs(33))).await;
    let base = json!({"current_window": "1h", "interval": "1h", "min_rows": 100,
                      "persistence": 1});
    let mut policy = base.clone();
    policy["multivariate"] = json!({});
    let version = evaluate(&d, &admin, "steady", policy).await;
    assert_eq!(version["multivariate"]["measured"], true, "{version}");
    assert_eq!(
        version["multivariate"]["drift"]["drifted"], false,
        "{version}"
    );
    let open = open_retrains(&admin, "steady").await;
    assert!(open.is_empty(), "{open:?}");

    // One feature is not multivariate: said, not stored.
    let mut policy = base;
    policy["multivariate"] = json!({"features": ["x"]});
    let version = evaluate(&d, &admin, "steady", policy).await;
    assert_eq!(version["multivariate"]["measured"], false, "{version}");
    assert!(
        version["multivariate"]["message"]
            .as_str()
            .unwrap()
            .contains("at least 2 features"),
        "{version}"
    );
    let evaluation_id = version["evaluation_id"].as_str().unwrap();
    let stored = sql(
        &admin,
        &format!(
            "SELECT count(*) AS n FROM multivariate_drift_results \
             WHERE evaluation_id = '{evaluation_id}'"
        ),
    )
    .await;
    assert_eq!(stored["rows"][0]["n"], 0, "nothing stored for it: {stored}");

    // A variance share outside (0, 1) is refused with the field named.
    let (status, reply) = admin
        .raw(
            "PUT",
            "/api/v1/models/steady/policy",
            "application/json",
            json!({"multivariate": {"variance_kept": 1.5}})
                .to_string()
                .into_bytes(),
        )
        .await;
    assert_eq!(status, 400, "{reply}");
    assert!(
        reply.to_string().contains("multivariate.variance_kept"),
        "{reply}"
    );
}

/// Softmax of three logits.
fn softmax(logits: [f64; 3]) -> [f64; 3] {
    let max = logits.iter().copied().fold(f64::MIN, f64::max);
    let e = logits.map(|l| (l - max).exp());
    let sum: f64 = e.iter().sum();
    e.map(|v| v / sum)
}

const CLASSES: [&str; 3] = ["cat", "dog", "fox"];

/// A three-class model's rows: its scores (softmax of random logits,
/// sharper with more `confidence`), its decision (the highest score) and
/// the truth, drawn from the scores. The scores are the true class
/// probabilities however confident the model is, so a shift towards
/// uncertain rows lowers the accuracy and CBPE can see it.
fn three_class_rows(seed: u64, n: usize, confidence: f64) -> Vec<([f64; 3], usize, usize)> {
    let truth = uniforms(seed, n);
    let noise: Vec<Vec<f64>> = (0..3)
        .map(|c| normals(seed + 1 + c, n, 0.0, confidence))
        .collect();
    (0..n)
        .map(|i| {
            let scores = softmax([noise[0][i], noise[1][i], noise[2][i]]);
            let label = if truth[i] < scores[0] {
                0
            } else if truth[i] < scores[0] + scores[1] {
                1
            } else {
                2
            };
            let decision = (0..3)
                .max_by(|&a, &b| scores[a].total_cmp(&scores[b]))
                .unwrap();
            (scores, decision, label)
        })
        .collect()
}

#[tokio::test]
async fn a_multiclass_model_is_estimated_from_its_class_scores() {
    use modelwatch_drift::cbpe::multiclass::{
        MulticlassCalibration, MulticlassComponents, estimate,
    };
    let d = Daemon::start();
    let admin = d.http();
    registered(&admin, "zoo").await;
    let reference = three_class_rows(41, 3_000, 3.0);
    // In production the model is less sure of itself: accuracy falls.
    let current = three_class_rows(51, 2_000, 0.8);
    let row = |(scores, decision, label): &([f64; 3], usize, usize), labelled: bool| {
        let mut r = json!({"p_cat": scores[0], "p_dog": scores[1], "p_fox": scores[2],
                           "prediction": CLASSES[*decision]});
        if labelled {
            r["label"] = json!(CLASSES[*label]);
        }
        r
    };
    let reference_rows: Vec<Value> = reference.iter().map(|r| row(r, true)).collect();
    upload(&admin, "zoo", "reference", &reference_rows).await;
    let current_rows: Vec<Value> = current.iter().map(|r| row(r, false)).collect();
    upload(&admin, "zoo", "inferences", &recent(current_rows)).await;
    let version = evaluate(
        &d,
        &admin,
        "zoo",
        json!({"current_window": "1h", "interval": "1h", "min_rows": 100,
               "performance": {"task": "classification", "estimate": true,
                               "class_scores": {"cat": "p_cat", "dog": "p_dog", "fox": "p_fox"},
                               "minimums": {"accuracy": 0.7}}}),
    )
    .await;
    let outcome = &version["performance"]["estimate"];
    assert_eq!(outcome["measured"], true, "{version}");
    assert_eq!(outcome["method"], "cbpe");
    assert_eq!(outcome["rows"], 2_000);

    // The same figures from the same rows.
    let columns = |rows: &[([f64; 3], usize, usize)]| -> Vec<Vec<f64>> {
        (0..3)
            .map(|c| rows.iter().map(|r| r.0[c]).collect())
            .collect()
    };
    let labels: Vec<usize> = reference.iter().map(|r| r.2).collect();
    let decisions: Vec<usize> = reference.iter().map(|r| r.1).collect();
    let calibration = MulticlassCalibration::fit(&columns(&reference), &labels).unwrap();
    let components =
        MulticlassComponents::of_reference(&labels, &decisions, &columns(&reference), 3).unwrap();
    let scores = columns(&current);
    let expected = estimate(
        &scores,
        &calibration.probabilities(&scores).unwrap(),
        &current.iter().map(|r| r.1).collect::<Vec<_>>(),
        &components,
    )
    .unwrap();
    let stored = stored_estimates(&admin, "zoo").await;
    assert_estimates(
        &stored,
        &[
            ("accuracy", expected.accuracy.value),
            ("macro_f1", expected.f1.value),
            ("roc_auc", expected.roc_auc.value),
        ],
        1e-12,
    );
    // The realized accuracy the labels would show is inside the band, and
    // under the policy's minimum: a retrain on the estimate.
    let realized = current.iter().filter(|r| r.1 == r.2).count() as f64 / 2_000.0;
    assert!(
        expected.accuracy.lower <= realized && realized <= expected.accuracy.upper,
        "realized {realized} outside {:?}",
        expected.accuracy
    );
    assert!(stored["accuracy"] < 0.7, "{stored:?}");
    let open = open_retrains(&admin, "zoo").await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0].evidence["estimated"], true);
}

/// A regression model's rows: feature `x` uniform in ±3 (only its
/// `|x| >= 1` part when `wide`), prediction `2x`, truth `2x` plus noise
/// that grows with `|x|` (so where the inputs fall decides the error, and
/// DLE can learn it from the reference, which covers the whole range).
fn regression_rows(seed: u64, n: usize, wide: bool) -> Vec<(f64, f64, f64)> {
    let u = uniforms(seed, n);
    let e = normals(seed + 1, n, 0.0, 1.0);
    u.iter()
        .zip(&e)
        .map(|(&u, &e)| {
            let x = if wide {
                let side = if u < 0.5 { -1.0 } else { 1.0 };
                side * (1.0 + 2.0 * (2.0 * u).fract())
            } else {
                -3.0 + 6.0 * u
            };
            (x, 2.0 * x, 2.0 * x + e * (0.2 + x.abs()))
        })
        .collect()
}

#[tokio::test]
async fn a_regression_model_s_error_is_estimated_from_its_features() {
    use modelwatch_drift::dle::Dle;
    let d = Daemon::start();
    let admin = d.http();
    registered(&admin, "price").await;
    let reference = regression_rows(61, 3_000, false);
    // Production sees inputs away from the middle, where the model errs
    // more; no label yet.
    let current = regression_rows(71, 2_000, true);
    let reference_rows: Vec<Value> = reference
        .iter()
        .map(|(x, p, y)| json!({"x": x, "prediction": p, "label": y}))
        .collect();
    upload(&admin, "price", "reference", &reference_rows).await;
    let current_rows: Vec<Value> = current
        .iter()
        .map(|(x, p, _)| json!({"x": x, "prediction": p}))
        .collect();
    upload(&admin, "price", "inferences", &recent(current_rows)).await;
    let version = evaluate(
        &d,
        &admin,
        "price",
        json!({"current_window": "1h", "interval": "1h", "min_rows": 100,
               "performance": {"task": "regression", "estimate": true,
                               "maximums": {"mae": 1.5}}}),
    )
    .await;
    let outcome = &version["performance"]["estimate"];
    assert_eq!(outcome["measured"], true, "{version}");
    assert_eq!(outcome["method"], "dle");
    assert_eq!(outcome["rows"], 2_000);

    // The same estimate from the same rows.
    let matrix = |rows: &[(f64, f64, f64)]| {
        FeatureMatrix::new(rows.len()).with_numeric("x", rows.iter().map(|r| Some(r.0)).collect())
    };
    let dle = Dle::fit(
        &matrix(&reference),
        &reference.iter().map(|r| r.1).collect::<Vec<_>>(),
        &reference.iter().map(|r| r.2).collect::<Vec<_>>(),
    )
    .unwrap();
    let expected = dle
        .estimate(
            &matrix(&current),
            &current.iter().map(|r| r.1).collect::<Vec<_>>(),
        )
        .unwrap();
    let stored = stored_estimates(&admin, "price").await;
    assert_estimates(
        &stored,
        &[
            ("mae", expected.mae.value),
            ("rmse", expected.rmse.value),
            ("mape", expected.mape.value),
        ],
        1e-9,
    );
    // The realized MAE the labels would show is inside the band, higher
    // than the reference's, and above the policy's maximum: a retrain.
    let mae = |rows: &[(f64, f64, f64)]| {
        rows.iter().map(|r| (r.2 - r.1).abs()).sum::<f64>() / rows.len() as f64
    };
    let realized = mae(&current);
    assert!(
        expected.mae.lower <= realized && realized <= expected.mae.upper,
        "realized {realized} outside {:?}",
        expected.mae
    );
    assert!(
        stored["mae"] > mae(&reference) && stored["mae"] > 1.5,
        "{stored:?}"
    );
    let open = open_retrains(&admin, "price").await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0].evidence["estimated"], true);
}
