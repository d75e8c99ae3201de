//! Evaluator scenarios with an injected clock: the registry, the history
//! and the evaluator share one `ManualClock`, so windows, alias moves and
//! evaluation times are exact and nothing sleeps.

use std::ops::Deref;

use chrono::{DateTime, Duration, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use modelwatch_collectors::RemoteWriteConfig;
use modelwatch_collectors::batch::{BatchFormat, UploadConfig, UploadDecoder};
use modelwatch_collectors::otlp::{Encoding, OtlpConfig};
use modelwatch_collectors::schema::{INFERENCES, REFERENCE};
use modelwatch_evaluator::testing::{TestRegistry, baseline_window, start};
use modelwatch_evaluator::{Change, Evaluator, Outcome, Verdict};
use modelwatch_history::{HistoryConfig, WriteSet};
use modelwatch_registry::RecommendationKind::{Retrain, Rollback};
use modelwatch_registry::prelude::*;
use modelwatch_registry::{AuditFilter, FeatureKind, Recommendation, RecommendationStatus};
use modelwatch_server::telemetry::{OtlpSignal, Telemetry};
use modelwatch_types::clock::Clock;

/// The registry fixture, the real history store (its directory beside the
/// registry's) and the server's evaluator over both; the registry's
/// helpers through `Deref`.
struct World {
    fixture: TestRegistry,
    telemetry: Telemetry,
    evaluator: Evaluator,
}

impl Deref for World {
    type Target = TestRegistry;
    fn deref(&self) -> &TestRegistry {
        &self.fixture
    }
}

/// Every version declares what [`rows`] writes.
const FEATURES: &[(&str, FeatureKind)] = &[
    ("amount", FeatureKind::Numeric),
    ("tenure", FeatureKind::Numeric),
    ("country", FeatureKind::Categorical),
];

async fn world() -> World {
    let fixture = TestRegistry::open(FEATURES).await;
    let telemetry = Telemetry::open(
        &fixture.dir.path().join("history"),
        HistoryConfig {
            clock: fixture.clock.clone(),
            ..HistoryConfig::default()
        },
        RemoteWriteConfig::default(),
        OtlpConfig::default(),
    )
    .await
    .unwrap();
    let evaluator = new_evaluator(&fixture, &telemetry);
    World {
        fixture,
        telemetry,
        evaluator,
    }
}

/// The server's evaluator over the registry and the history store.
fn new_evaluator(fixture: &TestRegistry, telemetry: &Telemetry) -> Evaluator {
    modelwatch_server::evaluator::evaluator(
        fixture.registry.clone(),
        telemetry.store.clone(),
        fixture.clock.clone(),
    )
}

fn normal(rng: &mut StdRng, mean: f64, sd: f64) -> f64 {
    // Box–Muller.
    let (u1, u2): (f64, f64) = (rng.random::<f64>().max(1e-12), rng.random());
    mean + sd * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// NDJSON rows with `amount` ~ N(mean, 10), `tenure` ~ N(24, 6) and a
/// three-way `country`, timestamps spread over `[from, from + span)`.
fn rows(
    rng: &mut StdRng,
    n: usize,
    amount_mean: f64,
    from: DateTime<Utc>,
    span: Duration,
) -> String {
    let mut out = String::new();
    for i in 0..n {
        let ts = from + span * i as i32 / n as i32;
        let country = ["de", "fr", "it"][rng.random_range(0..3)];
        out.push_str(
            &json!({
                "ts": ts.timestamp_micros() as f64 / 1e6,
                "amount": normal(rng, amount_mean, 10.0),
                "tenure": normal(rng, 24.0, 6.0),
                "country": country,
            })
            .to_string(),
        );
        out.push('\n');
    }
    out
}

impl World {
    /// `n` reference rows of a version ([`rows`] with the amount's mean at
    /// 100), spread over an hour the day before the start.
    async fn reference(&self, rng: &mut StdRng, model: &str, version: i64, n: usize) {
        let from = start() - Duration::days(1);
        let ndjson = rows(rng, n, 100.0, from, Duration::hours(1));
        self.write_rows(REFERENCE, model, version, &ndjson).await;
    }

    /// `n` inferences of version 1 ([`rows`]) over the next 10 minutes.
    async fn inferences(&self, rng: &mut StdRng, model: &str, n: usize, amount_mean: f64) {
        let ndjson = rows(rng, n, amount_mean, self.clock.now(), Duration::minutes(10));
        self.write_rows(INFERENCES, model, 1, &ndjson).await;
    }

    /// Judges `churn`'s deployment 5 minutes after it, which must fail;
    /// returns its rollback recommendations.
    async fn judged_failing(&self) -> Vec<Recommendation> {
        self.clock.advance(Duration::minutes(5));
        let report = self.evaluator.run_cycle(None, false).await.unwrap();
        assert_eq!(
            report.versions[0].rollback_verdict,
            Some(Verdict::Fail),
            "{report:?}"
        );
        self.recommendations("churn", Rollback).await
    }

    /// Writes NDJSON rows into `table` through the real upload decoder.
    async fn write_rows(&self, table: &str, model: &str, version: i64, ndjson: &str) {
        let known = FEATURES
            .iter()
            .map(|(name, kind)| (name.to_string(), *kind))
            .collect();
        let cfg = UploadConfig::new(
            model,
            version.to_string(),
            "test",
            self.clock.now_micros(),
            known,
        );
        let mut decoder = UploadDecoder::new(BatchFormat::Ndjson, cfg).unwrap();
        let mut batches = decoder.push(ndjson.as_bytes()).unwrap();
        batches.extend(decoder.finish().unwrap());
        let mut set = WriteSet::new();
        for b in batches {
            set.push(table, b);
        }
        self.telemetry.store.write(set).await.unwrap();
    }

    /// One OTLP/JSON export of `scope` (a `scopeMetrics`/`scopeSpans` item)
    /// for a model version, through the real ingest path; all of it must
    /// be stored.
    async fn send_otlp(
        &self,
        signal: OtlpSignal,
        model: &str,
        version: i64,
        scope: serde_json::Value,
    ) {
        let (resources, scopes) = match signal {
            OtlpSignal::Metrics => ("resourceMetrics", "scopeMetrics"),
            OtlpSignal::Logs => ("resourceLogs", "scopeLogs"),
            OtlpSignal::Traces => ("resourceSpans", "scopeSpans"),
        };
        let mut resource = json!({"resource": {"attributes": [
            {"key": "model.name", "value": {"stringValue": model}},
            {"key": "model.version", "value": {"stringValue": version.to_string()}},
        ]}});
        resource[scopes] = json!([scope]);
        let mut body = json!({});
        body[resources] = json!([resource]);
        let outcome = self
            .telemetry
            .otlp(signal, body.to_string().as_bytes(), Encoding::Json)
            .await
            .unwrap();
        assert_eq!(outcome.rejections.rejected, 0, "{:?}", outcome.rejections);
    }

    async fn sql_count(&self, sql: &str) -> i64 {
        let ctx = self.telemetry.store.session_context().unwrap();
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let col = batches[0].column(0);
        datafusion::arrow::array::AsArray::as_primitive::<datafusion::arrow::datatypes::Int64Type>(
            col,
        )
        .value(0)
    }

    /// Spans of one version of `churn`: `load.n` requests over
    /// `[from, from + load.span)` with latency ~ N(latency_ms,
    /// latency_ms / 10) and the given error share.
    async fn spans(&self, rng: &mut StdRng, version: i64, from: DateTime<Utc>, load: Load) {
        let Load {
            n,
            latency_ms,
            error_share,
            span,
        } = load;
        let mut spans = Vec::new();
        for i in 0..n {
            let start = from + span * i as i32 / n as i32;
            let latency = normal(rng, latency_ms, latency_ms / 10.0).max(0.1);
            let end = start + Duration::microseconds((latency * 1000.0) as i64);
            let error = rng.random::<f64>() < error_share;
            spans.push(json!({
                "traceId": format!("{:032x}", rng.random::<u128>()),
                "spanId": format!("{:016x}", rng.random::<u64>()),
                "name": "predict",
                "kind": 2,
                "startTimeUnixNano": (start.timestamp_nanos_opt().unwrap()).to_string(),
                "endTimeUnixNano": (end.timestamp_nanos_opt().unwrap()).to_string(),
                "status": {"code": if error { 2 } else { 1 }},
            }));
        }
        self.send_otlp(
            OtlpSignal::Traces,
            "churn",
            version,
            json!({"spans": spans}),
        )
        .await;
    }
}

/// Requests of one version for [`World::spans`].
struct Load {
    n: usize,
    latency_ms: f64,
    error_share: f64,
    span: Duration,
}

/// What version 1 serves before every deployment: 300 requests over 10
/// minutes, 20 ms, 1 % errors.
fn healthy() -> Load {
    Load {
        n: 300,
        latency_ms: 20.0,
        error_share: 0.01,
        span: Duration::minutes(10),
    }
}

/// Evaluate 10-minute windows every 10 minutes; one drifted feature of the
/// three is enough (drift share 0.3).
fn drift_policy(persistence: u32) -> serde_json::Value {
    modelwatch_evaluator::testing::drift_policy(persistence, 0.3)
}

#[tokio::test]
async fn persistent_drift_raises_retrain_with_evidence_and_clears() {
    let w = world().await;
    let mut rng = StdRng::seed_from_u64(7);
    w.model("fraud", 1).await;
    w.reference(&mut rng, "fraud", 1, 2000).await;
    w.set_alias("fraud", 1).await;
    w.policy("fraud", drift_policy(2)).await;

    // Large samples (Evidently's distance tests: Wasserstein, Jensen-Shannon)
    // so sampling noise stays far below the thresholds; amount drifts by
    // five standard deviations in the third and fourth windows.
    let means = [100.0, 100.0, 150.0, 150.0, 100.0];
    let mut outcomes = Vec::new();
    for (i, mean) in means.iter().enumerate() {
        w.inferences(&mut rng, "fraud", 1000, *mean).await;
        w.clock.advance(Duration::minutes(10));
        let report = w.evaluator.run_cycle(None, false).await.unwrap();
        assert_eq!(report.versions.len(), 1, "evaluation {i}");
        outcomes.push(report.versions[0].clone());
        let retrain = w.recommendations("fraud", Retrain).await;
        match i {
            0 | 1 => assert!(retrain.is_empty(), "stable window {i} raised {retrain:?}"),
            2 => assert!(
                retrain.is_empty(),
                "one drifted evaluation is below persistence 2"
            ),
            3 => {
                assert_eq!(retrain.len(), 1);
                let r = &retrain[0];
                assert_eq!(r.status, RecommendationStatus::Open);
                assert_eq!(r.raised_by, "evaluator");
                let e = &r.evidence;
                assert_eq!(e["drifted_features"], json!(["amount"]));
                assert_eq!(e["consecutive_drifted_evaluations"], 2);
                assert_eq!(e["thresholds"]["persistence"], 2);
                assert_eq!(e["current_window"]["rows"], 1000);
                assert_eq!(e["reference"]["rows"], 2000);
                assert_eq!(e["reference"]["source"], "reference_data");
                let end: DateTime<Utc> =
                    serde_json::from_value(e["current_window"]["end"].clone()).unwrap();
                assert_eq!(end, w.clock.now());
                let amount = e["features"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|f| f["name"] == "amount")
                    .unwrap();
                assert_eq!(amount["result"]["decision"], "drift");
                assert_eq!(amount["result"]["method"], "wasserstein");
                assert!(r.reason.contains("amount"), "{}", r.reason);
                assert_eq!(
                    w.tags("fraud", 1).await,
                    ("drifting".into(), "retrain".into())
                );
            }
            4 => {
                assert_eq!(retrain.len(), 1);
                assert_eq!(
                    outcomes[4].drifted_features,
                    Vec::<String>::new(),
                    "{:?}",
                    outcomes[4]
                );
                assert_eq!(retrain[0].status, RecommendationStatus::Superseded);
                assert!(
                    retrain[0]
                        .resolution_note
                        .as_deref()
                        .unwrap_or_default()
                        .contains("drift cleared")
                );
                assert_eq!(w.tags("fraud", 1).await, ("healthy".into(), "none".into()));
            }
            _ => unreachable!(),
        }
    }
    let drifted: Vec<bool> = outcomes.iter().map(|o| o.dataset_drift.unwrap()).collect();
    assert_eq!(drifted, [false, false, true, true, false]);
    assert_eq!(outcomes[3].consecutive_drifted, 2);

    // Every per-feature result is in drift_results: 3 features × 5.
    assert_eq!(
        w.sql_count("SELECT count(*) FROM drift_results WHERE model = 'fraud'")
            .await,
        15
    );
    assert_eq!(
        w.sql_count(
            "SELECT count(*) FROM drift_results WHERE feature = 'amount' AND drifted AND dataset_drift"
        )
        .await,
        2
    );
    // The evaluator's changes are audited under its name.
    let audit = w
        .audit(AuditFilter {
            actor: Some("evaluator".into()),
            ..Default::default()
        })
        .await;
    let actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
    assert!(actions.contains(&"recommendation.raise"), "{actions:?}");
    assert!(actions.contains(&"recommendation.supersede"), "{actions:?}");
}

#[tokio::test]
async fn interval_is_respected_and_a_new_alias_target_supersedes() {
    let w = world().await;
    let mut rng = StdRng::seed_from_u64(11);
    w.model("fraud", 2).await;
    for v in [1, 2] {
        w.reference(&mut rng, "fraud", v, 500).await;
    }
    w.set_alias("fraud", 1).await;
    w.policy("fraud", drift_policy(1)).await;
    w.inferences(&mut rng, "fraud", 300, 160.0).await;
    w.clock.advance(Duration::minutes(10));
    let report = w.evaluator.run_cycle(None, false).await.unwrap();
    assert_eq!(report.versions[0].recommendations.len(), 1);
    // Not due again before the interval (10m) elapsed.
    w.clock.advance(Duration::minutes(5));
    assert!(
        w.evaluator
            .run_cycle(None, false)
            .await
            .unwrap()
            .versions
            .is_empty()
    );

    // Version 2 takes the alias: version 1's retrain no longer applies.
    w.set_alias("fraud", 2).await;
    let report = w.evaluator.run_cycle(None, true).await.unwrap();
    let o = &report.versions[0];
    assert_eq!(o.version, Some(2));
    assert_eq!(o.status, Outcome::NotEnoughData, "{o:?}");
    let retrain = w.recommendations("fraud", Retrain).await;
    assert_eq!(retrain.len(), 1);
    assert_eq!(retrain[0].version, 1);
    assert_eq!(retrain[0].status, RecommendationStatus::Superseded);
    assert_eq!(w.tags("fraud", 1).await.1, "none");
}

/// `v1` serves healthy traffic for the 10 minutes before `production`
/// moves to `v2`, which is slower and fails more; the judge runs 5 minutes
/// later.
async fn bad_deployment(automatic: bool) -> World {
    let w = world().await;
    let mut rng = StdRng::seed_from_u64(3);
    let policy = json!({
        "interval": "1m",
        "rollback": {
            "latency": {"source": "spans"},
            "errors": {"source": "spans"},
            "window": "10m",
            "min_requests": 50,
            "automatic": automatic,
        }
    });
    let deployed = w.redeploy("churn", policy).await;
    w.spans(&mut rng, 1, deployed - Duration::minutes(10), healthy())
        .await;
    let worse = Load {
        n: 150,
        latency_ms: 120.0,
        error_share: 0.25,
        span: Duration::minutes(5),
    };
    w.spans(&mut rng, 2, deployed, worse).await;
    w.clock.advance(Duration::minutes(5));
    w
}

#[tokio::test]
async fn a_worse_version_is_rolled_back_automatically_and_audited() {
    let w = bad_deployment(true).await;
    let report = w.evaluator.run_cycle(None, false).await.unwrap();
    let o = &report.versions[0];
    assert_eq!(o.rollback_verdict, Some(Verdict::Fail), "{o:?}");
    let alias = w.registry.get_alias("churn", "production").await.unwrap();
    assert_eq!(alias.version, 1, "the alias must be back on version 1");
    assert_eq!(alias.history[0].actor, "evaluator");

    let rollback = w.recommendations("churn", Rollback).await;
    assert_eq!(rollback.len(), 1);
    let r = &rollback[0];
    assert_eq!((r.version, r.status), (2, RecommendationStatus::Applied));
    assert_eq!(r.evidence["baseline_version"], 1);
    assert!(r.evidence["errors"]["canary_worse"].as_bool().unwrap());
    assert!(r.evidence["errors"]["canary_rate"].as_f64().unwrap() > 0.15);
    assert_eq!(r.evidence["latency"]["verdict"], "fail");

    let audit = w
        .audit(AuditFilter {
            action: Some("alias.rollback".into()),
            ..Default::default()
        })
        .await;
    assert_eq!(audit.len(), 1);
    let entry = &audit[0];
    assert_eq!(entry.actor, "evaluator");
    let reason = entry.after.as_ref().unwrap()["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("recommendation {}", r.id)),
        "{reason}"
    );
    assert!(reason.contains("error rate"), "{reason}");

    // The rollback move itself is not judged again.
    w.clock.advance(Duration::minutes(1));
    let report = w.evaluator.run_cycle(None, false).await.unwrap();
    assert!(report.versions[0].rollback_verdict.is_none());
    assert_eq!(w.recommendations("churn", Rollback).await.len(), 1);
    assert!(w.registry.verify_audit().await.unwrap().ok);
}

#[tokio::test]
async fn without_automatic_rollback_only_the_recommendation_is_raised() {
    let w = bad_deployment(false).await;
    let report = w.evaluator.run_cycle(None, false).await.unwrap();
    assert_eq!(report.versions[0].rollback_verdict, Some(Verdict::Fail));
    w.assert_rollback_recommended("churn").await;

    // Judged once per deployment, even after a restart of the evaluator.
    let fresh = new_evaluator(&w.fixture, &w.telemetry);
    w.clock.advance(Duration::minutes(1));
    fresh.run_cycle(None, false).await.unwrap();
    assert_eq!(w.recommendations("churn", Rollback).await.len(), 1);
}

#[tokio::test]
async fn an_equally_good_deployment_passes() {
    let w = world().await;
    let mut rng = StdRng::seed_from_u64(5);
    let policy = json!({"rollback": {"latency": {"source": "spans"}, "errors": {"source": "spans"},
                                     "window": "10m", "automatic": true}});
    let deployed = w.redeploy("churn", policy).await;
    w.spans(&mut rng, 1, deployed - Duration::minutes(10), healthy())
        .await;
    w.spans(&mut rng, 2, deployed, healthy()).await;
    w.clock.advance(Duration::minutes(10));
    let report = w.evaluator.run_cycle(None, false).await.unwrap();
    assert_eq!(report.versions[0].rollback_verdict, Some(Verdict::Pass));
    assert_eq!(w.production("churn").await, 2);
    assert!(w.recommendations("churn", Rollback).await.is_empty());
}

/// Many seeded stable runs: with persistence 1 (every drifted evaluation
/// raises), how often does stable traffic raise a retrain? The rate is
/// printed; run with `--nocapture` to see it (BENCHMARKS.md records it).
#[tokio::test]
async fn false_alarm_rate_over_seeded_stable_runs() {
    const MODELS: usize = 40;
    const EVALUATIONS: usize = 3;
    let w = world().await;
    for m in 0..MODELS {
        let name = format!("stable-{m}");
        let mut rng = StdRng::seed_from_u64(1000 + m as u64);
        w.model(&name, 1).await;
        w.reference(&mut rng, &name, 1, 600).await;
        w.set_alias(&name, 1).await;
        // The default drift share (0.5): two of the three features.
        let mut policy = drift_policy(1);
        policy["drift_share"] = json!(0.5);
        w.policy(&name, policy).await;
    }
    let mut drifted_evaluations = 0;
    let mut total = 0;
    for e in 0..EVALUATIONS {
        for m in 0..MODELS {
            let mut rng = StdRng::seed_from_u64(50_000 + (e * MODELS + m) as u64);
            w.inferences(&mut rng, &format!("stable-{m}"), 300, 100.0)
                .await;
        }
        w.clock.advance(Duration::minutes(10));
        let report = w.evaluator.run_cycle(None, false).await.unwrap();
        assert_eq!(report.versions.len(), MODELS);
        for o in &report.versions {
            assert_eq!(o.status, Outcome::Evaluated, "{o:?}");
            total += 1;
            drifted_evaluations += usize::from(o.dataset_drift == Some(true));
        }
    }
    let mut raised = 0;
    for m in 0..MODELS {
        raised += w
            .recommendations(&format!("stable-{m}"), Retrain)
            .await
            .len();
    }
    let rate = drifted_evaluations as f64 / total as f64;
    println!(
        "false alarms: {drifted_evaluations} drifted evaluations of {total} stable ones \
         (rate {rate:.4}); {raised} retrain recommendations over {MODELS} models at persistence 1"
    );
    // Under the null each of 3 features drifts with p = 0.05 (KS / chi-square
    // on ≤ 1000 reference rows); dataset drift needs 2 of 3: ≈ 0.7 % per
    // evaluation. 5 % would mean the tests or the share rule are broken.
    assert!(rate <= 0.05, "false-alarm rate {rate}");
    // A recommendation needs a drifted evaluation.
    assert!(
        raised <= drifted_evaluations,
        "{raised} > {drifted_evaluations}"
    );
}

#[tokio::test]
async fn a_baseline_window_is_the_reference_and_open_recommendations_are_refreshed() {
    let w = world().await;
    let mut rng = StdRng::seed_from_u64(17);
    w.model("fraud", 1).await;
    w.set_alias("fraud", 1).await;
    w.policy("fraud", baseline_window(drift_policy(1))).await;

    // The version's first 10 minutes after taking the alias are its baseline.
    let deployed = w.clock.now();
    w.inferences(&mut rng, "fraud", 2000, 100.0).await;
    w.clock.advance(Duration::minutes(5));
    let o = w.evaluator.run_cycle(None, false).await.unwrap().versions[0].clone();
    assert_eq!(o.status, Outcome::BaselinePending, "{o:?}");

    let mut ids = Vec::new();
    for i in 0..2 {
        // Move past the baseline; each window drifts.
        w.clock
            .advance(Duration::minutes(if i == 0 { 5 } else { 10 }));
        w.inferences(&mut rng, "fraud", 1000, 150.0).await;
        w.clock.advance(Duration::minutes(10));
        let o = w.evaluator.run_cycle(None, true).await.unwrap().versions[0].clone();
        assert_eq!(o.status, Outcome::Evaluated, "{o:?}");
        assert_eq!(o.drifted_features, ["amount"], "{o:?}");
        let action = &o.recommendations[0];
        assert_eq!(
            action.action,
            if i == 0 {
                Change::Raised
            } else {
                Change::Updated
            }
        );
        ids.push((action.id, o.evaluation_id.clone().unwrap()));
    }
    // One open recommendation, refreshed with the newer evidence.
    assert_eq!(ids[0].0, ids[1].0);
    let retrain = w.recommendations("fraud", Retrain).await;
    assert_eq!(retrain.len(), 1);
    let e = &retrain[0].evidence;
    assert_eq!(e["evaluation_id"], ids[1].1.as_str());
    assert_eq!(e["consecutive_drifted_evaluations"], 2);
    assert_eq!(e["reference"]["source"], "baseline_window");
    assert_eq!(e["reference"]["rows"], 2000);
    let start: DateTime<Utc> =
        serde_json::from_value(e["reference"]["window"]["start"].clone()).unwrap();
    assert_eq!(start, deployed);
}

impl World {
    /// Delta histogram points of `http.server.request.duration` for one
    /// version: `points` points 10 s apart from `from`, each with `counts`
    /// over the bounds 5, 10, 25, 50, 100, 250, 500 ms.
    async fn latency_histograms(
        &self,
        version: i64,
        from: DateTime<Utc>,
        points: i64,
        counts: [u64; 8],
    ) {
        let data_points: Vec<_> = (0..points)
            .map(|i| {
                let start = from + Duration::seconds(10 * i);
                let end = start + Duration::seconds(10);
                json!({
                    "startTimeUnixNano": start.timestamp_nanos_opt().unwrap().to_string(),
                    "timeUnixNano": end.timestamp_nanos_opt().unwrap().to_string(),
                    "count": counts.iter().sum::<u64>().to_string(),
                    "bucketCounts": counts.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
                    "explicitBounds": [5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0],
                })
            })
            .collect();
        let histogram = json!({"metrics": [{
            "name": "http.server.request.duration",
            "unit": "ms",
            "histogram": {"aggregationTemporality": 1, "dataPoints": data_points},
        }]});
        self.send_otlp(OtlpSignal::Metrics, "churn", version, histogram)
            .await;
    }

    /// Cumulative `requests` and `errors` counters of one version, one point
    /// every 10 s from `from`; each step adds 100 requests and
    /// `errors_per_step` errors. `reset_at` restarts both from zero there
    /// (a process restart), which must not count as a negative increase.
    async fn counters(
        &self,
        version: i64,
        from: DateTime<Utc>,
        points: i64,
        errors_per_step: u64,
        reset_at: Option<i64>,
    ) {
        let mut requests = Vec::new();
        let mut errors = Vec::new();
        let (mut r, mut e) = (0u64, 0u64);
        for i in 0..points {
            if Some(i) == reset_at {
                (r, e) = (0, 0);
            }
            r += 100;
            e += errors_per_step;
            let at = (from + Duration::seconds(10 * i))
                .timestamp_nanos_opt()
                .unwrap()
                .to_string();
            requests.push(json!({"timeUnixNano": at, "asInt": r.to_string()}));
            errors.push(json!({"timeUnixNano": at, "asInt": e.to_string()}));
        }
        let sum = |name: &str, points: Vec<serde_json::Value>| json!({"name": name, "sum": {"aggregationTemporality": 2, "isMonotonic": true, "dataPoints": points}});
        let metrics = json!({"metrics": [sum("requests", requests), sum("errors", errors)]});
        self.send_otlp(OtlpSignal::Metrics, "churn", version, metrics)
            .await;
    }
}

#[tokio::test]
async fn latency_histograms_judge_a_deployment() {
    let w = world().await;
    let policy = json!({"rollback": {"latency": {"source": "histogram",
                                                 "metric": "http.server.request.duration"},
                                     "window": "10m"}});
    let deployed = w.redeploy("churn", policy).await;
    let before = deployed - Duration::minutes(10);
    w.latency_histograms(1, before, 60, [0, 2, 20, 3, 0, 0, 0, 0])
        .await;
    w.latency_histograms(2, deployed, 30, [0, 0, 1, 2, 5, 17, 0, 0])
        .await;
    let rollback = w.judged_failing().await;
    assert_eq!(rollback.len(), 1);
    let latency = &rollback[0].evidence["latency"]["metrics"][0];
    // Medians at bucket midpoints: (10, 25] → 17.5 ms, (100, 250] → 175 ms.
    assert_eq!(latency["baseline_median"], 17.5, "{latency}");
    assert_eq!(latency["canary_median"], 175.0, "{latency}");
    // Without automatic rollback the alias stays.
    assert_eq!(w.production("churn").await, 2);
}

#[tokio::test]
async fn error_counters_judge_a_deployment_across_a_reset() {
    let w = world().await;
    let policy = json!({"rollback": {"errors": {"source": "metric", "errors_metric": "errors",
                                                "requests_metric": "requests"},
                                     "window": "10m", "automatic": true}});
    let deployed = w.redeploy("churn", policy).await;
    w.counters(1, deployed - Duration::minutes(10), 60, 1, None)
        .await;
    w.counters(2, deployed, 30, 20, Some(15)).await;
    let rollback = w.judged_failing().await;
    let errors = &rollback[0].evidence["errors"];
    // v1: 59 steps of 100 requests, 1 error; v2: 29 increases (one step is
    // the reset, counted from zero: 100 and 20), so 2,900 and 580.
    assert!(
        (errors["baseline_rate"].as_f64().unwrap() - 0.01).abs() < 1e-9,
        "{errors}"
    );
    assert!(
        (errors["canary_rate"].as_f64().unwrap() - 0.2).abs() < 1e-9,
        "{errors}"
    );
    assert_eq!(w.production("churn").await, 1);
}

/// The values a numeric feature is tested on depend on the window's
/// contents only: read from the write buffer, then from Parquet after a
/// persist (another scan order), a threshold sample forced by a small limit
/// keeps exactly the same values, and the exact profile every value.
#[tokio::test]
async fn a_window_profiles_to_the_same_values_whatever_the_scan_order() {
    use modelwatch_drift::Sampling;
    use modelwatch_evaluator::{FeatureValues, Window};
    use modelwatch_server::evaluator::data::profile_with_limit;

    let w = world().await;
    w.model("fraud", 1).await;
    let mut rng = StdRng::seed_from_u64(30);
    // Three writes, so the buffer holds three chunks in arrival order.
    for _ in 0..3 {
        w.inferences(&mut rng, "fraud", 2_000, 100.0).await;
        w.clock.advance(Duration::minutes(10));
    }
    let window = Window::current("fraud", 1, start(), w.clock.now());
    let features = FEATURES
        .iter()
        .map(|(name, kind)| (name.to_string(), Some(*kind)))
        .collect();
    let read = |limit: usize| {
        let (window, features) = (window.clone(), &features);
        let store = w.telemetry.store.clone();
        async move {
            let ctx = store.session_context().unwrap();
            profile_with_limit(&ctx, &window, features, limit)
                .await
                .unwrap()
        }
    };
    let amount = |p: &modelwatch_evaluator::Profile| match &p.features["amount"] {
        FeatureValues::Numeric(t) => t.clone(),
        other => panic!("amount is numeric: {other:?}"),
    };

    let sampled_from_buffer = amount(&read(500).await);
    let exact_from_buffer = amount(&read(1_000_000).await);
    w.telemetry.store.persist_now().await.unwrap();
    assert!(!w.telemetry.store.manifest().files.is_empty());
    let sampled_from_files = amount(&read(500).await);
    let exact_from_files = amount(&read(1_000_000).await);

    assert_eq!(sampled_from_buffer.sampling, Sampling::ThresholdSample);
    assert!(
        (250..=500).contains(&sampled_from_buffer.values.len()),
        "{}",
        sampled_from_buffer.values.len()
    );
    assert_eq!(sampled_from_buffer, sampled_from_files);
    assert_eq!(exact_from_buffer.sampling, Sampling::Exact);
    assert_eq!(exact_from_buffer.values.len(), 6_000);
    assert_eq!(exact_from_buffer, exact_from_files);
    assert_eq!(sampled_from_files.seen, 6_000);
    // The sample's values are values of the window.
    assert!(sampled_from_files.values.iter().all(|v| {
        exact_from_files
            .values
            .binary_search_by(|x| x.total_cmp(v))
            .is_ok()
    }));
}

/// Rows read row by row (multivariate drift, estimation) beyond the read's
/// limit are a threshold sample keyed by each row's content: the same
/// rows from the write buffer and, after a persist, from Parquet.
#[tokio::test]
async fn a_window_reads_the_same_sampled_rows_whatever_the_scan_order() {
    use modelwatch_evaluator::{RowColumns, Window};
    use modelwatch_server::evaluator::data::outcomes_with_limit;

    let w = world().await;
    w.model("fraud", 1).await;
    let mut rng = StdRng::seed_from_u64(31);
    for _ in 0..3 {
        w.inferences(&mut rng, "fraud", 2_000, 100.0).await;
        w.clock.advance(Duration::minutes(10));
    }
    let window = Window::current("fraud", 1, start(), w.clock.now());
    let wanted = RowColumns::with_features(
        [(
            "amount".to_string(),
            Some(modelwatch_registry::FeatureKind::Numeric),
        )]
        .into(),
        false,
    );
    let read = |limit: u64| {
        let (window, wanted) = (window.clone(), wanted.clone());
        let store = w.telemetry.store.clone();
        async move {
            let ctx = store.session_context().unwrap();
            let rows = outcomes_with_limit(&ctx, &window, &wanted, limit)
                .await
                .unwrap();
            let mut amounts: Vec<f64> = rows.features.numeric[0]
                .values
                .iter()
                .flatten()
                .copied()
                .collect();
            amounts.sort_by(f64::total_cmp);
            (rows.sampled, rows.rows, amounts)
        }
    };
    let sampled_from_buffer = read(1_000).await;
    let all_from_buffer = read(1_000_000).await;
    w.telemetry.store.persist_now().await.unwrap();
    let sampled_from_files = read(1_000).await;
    let all_from_files = read(1_000_000).await;

    assert!(sampled_from_buffer.0 && !all_from_buffer.0);
    assert_eq!(
        sampled_from_buffer.1, 6_000,
        "the window's rows are counted"
    );
    assert!(
        (600..=1_400).contains(&sampled_from_buffer.2.len()),
        "{}",
        sampled_from_buffer.2.len()
    );
    assert_eq!(sampled_from_buffer, sampled_from_files);
    assert_eq!(all_from_buffer.2.len(), 6_000);
    assert_eq!(all_from_buffer, all_from_files);
}

/// After a restart the consecutive-drift count is re-read from the stored
/// results: an evaluation whose only drift was multivariate counts as
/// drifted (its row in `multivariate_drift_results` beside its clean
/// `drift_results`).
#[tokio::test]
async fn a_multivariate_drift_is_recounted_as_a_drifted_evaluation() {
    use modelwatch_drift::multivariate::ReconstructionDrift;
    use modelwatch_drift::{FeatureSpec, ReportConfig, Sampling, evaluate_features};
    use modelwatch_evaluator::{
        DriftResults, EvaluationKey, FeatureInputs, ResultsSink, TelemetryReader,
    };
    use modelwatch_server::evaluator::{DataFusionReader, HistoryResults};

    let w = world().await;
    let results = HistoryResults::new(w.telemetry.store.clone());
    let reader = DataFusionReader::new(w.telemetry.store.clone());
    let values: Vec<f64> = (0..200).map(f64::from).collect();
    let report = evaluate_features(
        &[FeatureSpec::numeric("amount", &values, &values)],
        &ReportConfig::default(),
    );
    assert!(!report.dataset_drift);
    let inputs = [FeatureInputs {
        kind: FeatureKind::Numeric,
        sampling: Sampling::Exact,
        seen_reference: 200,
        seen_current: 200,
        cdf_error_bound: 0.0,
    }];
    let together = ReconstructionDrift {
        rows: 200,
        value: 2.0,
        reference_value: 1.0,
        sampling_error: 0.05,
        lower: 0.85,
        upper: 1.15,
        components: 1,
        drifted: true,
    };
    let key = |id: &'static str, minutes: i64| EvaluationKey {
        evaluation_id: id,
        model: "fraud",
        version: 1,
        alias: "production",
        window: (start(), start() + Duration::minutes(minutes)),
        reference_source: "reference_data",
    };
    // Oldest first: drifted together, clean, drifted together.
    for (id, minutes, multivariate) in [
        ("e1", 1, Some(&together)),
        ("e2", 2, None),
        ("e3", 3, Some(&together)),
    ] {
        let stored = DriftResults {
            report: &report,
            inputs: &inputs,
            quality: &[],
            multivariate,
        };
        results.write(&key(id, minutes), &stored).await.unwrap();
    }
    let recent = reader.recent_dataset_drift(&key("e4", 4), 5).await.unwrap();
    assert_eq!(recent, [true, false, true], "newest first");
}
