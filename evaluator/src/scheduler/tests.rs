//! The scheduler over a real SQLite registry (in a temporary directory), an
//! in-memory telemetry reader and results sink, and one `ManualClock`
//! shared by registry and evaluator: no DataFusion, no sleeping. The
//! fixtures are [`crate::testing`]; the end-to-end scenarios over the real
//! history store are the server's (`server/tests/evaluator.rs`).

use std::ops::Deref;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use crate::testing::{
    MemoryHistory, RecordedEvents, Row, TestRegistry, admin, baseline_window, start,
};
use crate::{Change, EvalError, Evaluator, Outcome, Verdict, VersionOutcome};
use modelwatch_registry::RecommendationKind::{Promote, Retrain, Rollback};
use modelwatch_registry::prelude::*;
use modelwatch_registry::{AuditFilter, RecommendationStatus};
use modelwatch_types::{Clock, FeatureKind};

/// The registry, the history in memory, the events and an evaluator over
/// them; the registry's helpers through `Deref`.
struct World {
    fixture: TestRegistry,
    memory: Arc<MemoryHistory>,
    events: Arc<RecordedEvents>,
    evaluator: Evaluator,
}

impl Deref for World {
    type Target = TestRegistry;
    fn deref(&self) -> &TestRegistry {
        &self.fixture
    }
}

/// Every version declares three numeric features.
const FEATURES: &[(&str, FeatureKind)] = &[
    ("a", FeatureKind::Numeric),
    ("b", FeatureKind::Numeric),
    ("c", FeatureKind::Numeric),
];

async fn world() -> World {
    let fixture = TestRegistry::open(FEATURES).await;
    let memory = Arc::new(MemoryHistory::default());
    let events = Arc::new(RecordedEvents::default());
    let evaluator = new_evaluator(&fixture, &memory, &events);
    World {
        fixture,
        memory,
        events,
        evaluator,
    }
}

fn new_evaluator(
    fixture: &TestRegistry,
    memory: &Arc<MemoryHistory>,
    events: &Arc<RecordedEvents>,
) -> Evaluator {
    Evaluator::new(
        fixture.registry.clone(),
        memory.clone(),
        memory.clone(),
        fixture.clock.clone(),
    )
    .with_events(events.clone())
}

impl World {
    /// A fresh evaluator over the same parts: a restarted daemon's.
    fn new_evaluator(&self) -> Evaluator {
        new_evaluator(&self.fixture, &self.memory, &self.events)
    }

    /// `n` rows over `[from, from + 10m)` with features `a`, `b`, `c` spread
    /// evenly over 0..40; the `shifted` ones moved by 1000 (drift no test
    /// can miss).
    fn rows(
        &self,
        table: &'static str,
        model: &str,
        version: i64,
        from: DateTime<Utc>,
        shifted: &[&str],
    ) {
        let n = 400;
        let rows: Vec<Row> = (0..n)
            .map(|i| {
                let ts = from + Duration::minutes(10) * i / n;
                let features = ["a", "b", "c"]
                    .map(|f| {
                        let shift = if shifted.contains(&f) { 1000.0 } else { 0.0 };
                        (f.to_string(), f64::from(i % 40) + shift)
                    })
                    .into();
                (ts, features)
            })
            .collect();
        self.memory
            .data()
            .rows
            .entry((table, model.to_string(), version.to_string()))
            .or_default()
            .extend(rows);
    }

    /// The current window's rows: the 10 minutes up to now.
    fn current(&self, model: &str, version: i64, shifted: &[&str]) {
        let from = self.clock.now() - Duration::minutes(10);
        self.rows("inferences", model, version, from, shifted);
    }

    /// `n` requests of a version over `[from, from + 10m)`.
    fn requests(&self, model: &str, version: i64, from: DateTime<Utc>, latency: f64, errors: f64) {
        let n = 200;
        let requests = (0..n).map(|i| {
            let ts = from + Duration::minutes(10) * i / n;
            let l = latency * (0.9 + 0.2 * f64::from(i) / f64::from(n));
            (ts, l, f64::from(i % 100) < errors * 100.0)
        });
        self.memory
            .data()
            .requests
            .entry((model.to_string(), version.to_string()))
            .or_default()
            .extend(requests);
    }

    /// `model` with `versions` versions, reference rows for version 1,
    /// `production` on it, and `policy`.
    async fn watch(&self, model: &str, versions: usize, policy: serde_json::Value) {
        self.model(model, versions).await;
        self.rows("reference", model, 1, start() - Duration::days(1), &[]);
        self.set_alias(model, 1).await;
        self.policy(model, policy).await;
    }

    /// Moves time on by one window and writes the rows of version 1 in it.
    fn next_window(&self, model: &str, shifted: &[&str]) {
        self.clock.advance(Duration::minutes(10));
        self.current(model, 1, shifted);
    }

    async fn cycle(&self) -> Vec<VersionOutcome> {
        self.evaluator
            .run_cycle(None, false)
            .await
            .unwrap()
            .versions
    }
}

fn drift_policy(persistence: u32) -> serde_json::Value {
    crate::testing::drift_policy(persistence, 0.5)
}

#[tokio::test]
async fn what_is_fitted_on_a_reference_is_read_once_while_it_holds() {
    let w = world().await;
    let mut policy = drift_policy(3);
    policy["multivariate"] = serde_json::json!({});
    policy["performance"] = serde_json::json!({"task": "regression", "estimate": true});
    w.watch("m", 1, policy).await;
    let reads = |table: &str| {
        w.memory
            .data()
            .row_reads
            .iter()
            .filter(|t| **t == table)
            .count()
    };
    w.next_window("m", &[]);
    w.cycle().await;
    // The multivariate fit and the estimation's each read the reference.
    assert_eq!(reads("reference"), 2);
    // The window: once for multivariate drift, once for realized and
    // estimated performance together.
    assert_eq!(reads("inferences"), 2);
    w.next_window("m", &[]);
    w.cycle().await;
    assert_eq!(reads("reference"), 2, "kept while the reference holds");
    assert_eq!(reads("inferences"), 4, "each window is read");
    // More reference rows: fitted again.
    w.rows("reference", "m", 1, start() - Duration::days(1), &[]);
    w.next_window("m", &[]);
    w.cycle().await;
    assert_eq!(reads("reference"), 4);
}

// ---------------------------------------------------------------- drift

#[tokio::test]
async fn persistence_raises_once_refreshes_and_a_clean_evaluation_clears() {
    let w = world().await;
    w.watch("fraud", 1, drift_policy(2)).await;

    // drift: no, yes, yes (raise), yes (refresh), no (supersede).
    let plan: [&[&str]; 5] = [&[], &["a", "b"], &["a", "b"], &["a", "b"], &[]];
    let mut outcomes = Vec::new();
    for shifted in plan {
        w.next_window("fraud", shifted);
        let o = w.cycle().await;
        assert_eq!(o.len(), 1);
        outcomes.push(o[0].clone());
    }
    let consecutive: Vec<u32> = outcomes.iter().map(|o| o.consecutive_drifted).collect();
    assert_eq!(consecutive, [0, 1, 2, 3, 0]);
    let changes: Vec<Vec<Change>> = outcomes
        .iter()
        .map(|o| o.recommendations.iter().map(|r| r.action).collect())
        .collect();
    assert_eq!(
        changes,
        [
            vec![],
            vec![],
            vec![Change::Raised],
            vec![Change::Updated],
            vec![Change::Superseded]
        ]
    );
    assert!(outcomes.iter().all(|o| o.status == Outcome::Evaluated));
    assert_eq!(outcomes[2].drifted_features, ["a", "b"]);

    let retrain = w.recommendations("fraud", Retrain).await;
    assert_eq!(retrain.len(), 1, "refreshed, not raised twice");
    assert_eq!(retrain[0].status, RecommendationStatus::Superseded);
    assert_eq!(retrain[0].raised_by, "evaluator");
    assert_eq!(retrain[0].evidence["consecutive_drifted_evaluations"], 3);
    assert_eq!(w.tags("fraud", 1).await, ("healthy".into(), "none".into()));
    // Every evaluation's rows were stored: 3 features each.
    let results = w.memory.data().results.clone();
    assert_eq!(results.len(), 5);
    assert!(results.iter().all(|r| r.5 == 3));

    let events = w.events.take_containing(&[
        "detected fraud/1 [\"a\",\"b\"]",
        "raised retrain fraud/1",
        "superseded retrain fraud/1",
    ]);
    let detected = events.iter().filter(|e| e.starts_with("detected")).count();
    assert_eq!(detected, 3, "{events:#?}");
}

#[tokio::test]
async fn the_persistence_count_survives_a_restart() {
    let w = world().await;
    w.watch("fraud", 1, drift_policy(3)).await;
    for _ in 0..2 {
        w.next_window("fraud", &["a", "b"]);
        w.cycle().await;
    }
    assert!(w.recommendations("fraud", Retrain).await.is_empty());

    // A new evaluator re-reads the two drifted evaluations: the third raises.
    let fresh = w.new_evaluator();
    w.next_window("fraud", &["a", "b"]);
    let o = &fresh.run_cycle(None, false).await.unwrap().versions[0];
    assert_eq!(o.consecutive_drifted, 3, "{o:?}");
    assert_eq!(o.recommendations[0].action, Change::Raised);
}

#[tokio::test]
async fn intervals_are_respected_unless_forced() {
    let w = world().await;
    w.watch("fraud", 1, drift_policy(1)).await;
    w.next_window("fraud", &[]);
    assert_eq!(w.cycle().await.len(), 1);
    w.clock.advance(Duration::minutes(9));
    assert!(w.cycle().await.is_empty(), "not due before the interval");
    let forced = w.evaluator.run_cycle(None, true).await.unwrap();
    assert_eq!(forced.versions.len(), 1, "a forced cycle runs anyway");
    let one = w.evaluator.run_cycle(Some("fraud"), true).await.unwrap();
    assert_eq!(one.versions[0].model, "fraud");
    w.clock.advance(Duration::minutes(10));
    assert_eq!(
        w.cycle().await.len(),
        1,
        "due again a full interval after the forced one"
    );
}

#[tokio::test]
async fn a_new_alias_target_supersedes_the_old_versions_recommendations() {
    let w = world().await;
    w.watch("fraud", 2, drift_policy(1)).await;
    w.next_window("fraud", &["a", "b"]);
    w.cycle().await;
    assert_eq!(
        w.tags("fraud", 1).await,
        ("drifting".into(), "retrain".into())
    );

    // A person's recommendation on version 1 is not the evaluator's to close.
    w.registry
        .raise_recommendation(
            &admin(),
            "fraud",
            1,
            modelwatch_registry::NewRecommendation {
                kind: Promote,
                severity: modelwatch_registry::Severity::Info,
                reason: "by hand".into(),
                evidence: json!({}),
            },
        )
        .await
        .unwrap();
    w.set_alias("fraud", 2).await;
    let o = &w.evaluator.run_cycle(None, true).await.unwrap().versions[0];
    assert_eq!(o.version, Some(2));
    // Version 2 has no reference data and no rows yet.
    assert_eq!(o.status, Outcome::NotEnoughData, "{o:?}");
    assert_eq!(o.recommendations.len(), 1);
    assert_eq!(
        (o.recommendations[0].version, o.recommendations[0].action),
        (1, Change::Superseded)
    );
    let retrain = w.recommendations("fraud", Retrain).await;
    assert_eq!(retrain[0].status, RecommendationStatus::Superseded);
    let promote = w.recommendations("fraud", Promote).await;
    assert_eq!(promote[0].status, RecommendationStatus::Open);
    // Version 1 keeps its last health; its open kinds are recounted.
    assert_eq!(
        w.tags("fraud", 1).await,
        ("drifting".into(), "promote".into())
    );
    assert_eq!(
        w.tags("fraud", 2).await,
        ("insufficient_data".into(), "none".into())
    );
}

#[tokio::test]
async fn a_baseline_window_waits_then_is_the_reference() {
    let w = world().await;
    w.model("fraud", 1).await;
    w.set_alias("fraud", 1).await;
    w.policy("fraud", baseline_window(drift_policy(1))).await;
    w.rows("inferences", "fraud", 1, w.clock.now(), &[]);
    w.clock.advance(Duration::minutes(5));
    let o = w.cycle().await;
    assert_eq!(o[0].status, Outcome::BaselinePending, "{o:?}");
    assert_eq!(w.tags("fraud", 1).await.0, "insufficient_data");

    w.clock.advance(Duration::minutes(15));
    w.current("fraud", 1, &["a", "b"]);
    let o = &w.evaluator.run_cycle(None, true).await.unwrap().versions[0];
    assert_eq!(o.status, Outcome::Evaluated, "{o:?}");
    assert_eq!(o.drifted_features, ["a", "b"]);
    let e = &w.recommendations("fraud", Retrain).await[0].evidence;
    assert_eq!(e["reference"]["source"], "baseline_window");
    assert_eq!(e["reference"]["rows"], 400);
}

#[tokio::test]
async fn too_few_rows_are_not_judged() {
    let w = world().await;
    let mut policy = drift_policy(1);
    policy["min_rows"] = json!(401);
    w.watch("fraud", 1, policy).await;
    w.next_window("fraud", &["a", "b", "c"]);
    let o = &w.cycle().await[0];
    assert_eq!(o.status, Outcome::NotEnoughData);
    assert!(o.message.as_deref().unwrap().contains("min_rows"), "{o:?}");
    assert!(w.memory.data().results.is_empty(), "nothing stored");
    assert!(w.recommendations("fraud", Retrain).await.is_empty());
}

// ---------------------------------------------------------------- rollback

/// v1 serves healthy traffic for 10 minutes, then `production` moves to
/// v2; `worse` makes v2 slower and failing. The judge runs 5 minutes later.
async fn deployment(automatic: bool, worse: bool) -> World {
    let w = world().await;
    let policy = json!({"interval": "1m", "rollback": {"latency": {"source": "spans"},
                        "errors": {"source": "spans"}, "window": "10m", "min_requests": 50,
                        "automatic": automatic}});
    let deployed = w.redeploy("churn", policy).await;
    w.requests("churn", 1, deployed - Duration::minutes(10), 20.0, 0.01);
    let (latency, errors) = if worse { (120.0, 0.25) } else { (20.0, 0.01) };
    w.requests("churn", 2, deployed, latency, errors);
    w.clock.advance(Duration::minutes(5));
    w.events.take();
    w
}

#[tokio::test]
async fn automatic_rollback_moves_the_alias_back_once() {
    let w = deployment(true, true).await;
    let o = &w.cycle().await[0];
    assert_eq!(o.rollback_verdict, Some(Verdict::Fail), "{o:?}");
    let changes: Vec<Change> = o.recommendations.iter().map(|r| r.action).collect();
    assert_eq!(changes, [Change::Raised, Change::Applied]);
    let alias = w.registry.get_alias("churn", "production").await.unwrap();
    assert_eq!(
        (alias.version, alias.history[0].actor.as_str()),
        (1, "evaluator")
    );
    let rollback = w.recommendations("churn", Rollback).await;
    assert_eq!(rollback.len(), 1);
    assert_eq!(
        (rollback[0].version, rollback[0].status),
        (2, RecommendationStatus::Applied)
    );
    assert!(
        w.events
            .take()
            .contains(&"rollback churn/production v2→v1".to_string())
    );
    let audit = w
        .audit(AuditFilter {
            action: Some("alias.rollback".into()),
            ..Default::default()
        })
        .await;
    let reason = audit[0].after.as_ref().unwrap()["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        reason.starts_with(&format!(
            "automatic rollback, recommendation {}:",
            rollback[0].id
        )),
        "{reason}"
    );

    // The rollback move is not a deployment: nothing more is judged.
    w.clock.advance(Duration::minutes(1));
    let o = &w.cycle().await[0];
    assert_eq!(o.rollback_verdict, None);
    assert_eq!(w.recommendations("churn", Rollback).await.len(), 1);
    assert!(w.registry.verify_audit().await.unwrap().ok);
}

#[tokio::test]
async fn without_automatic_only_a_recommendation_judged_once_across_restarts() {
    let w = deployment(false, true).await;
    let o = &w.cycle().await[0];
    assert_eq!(o.rollback_verdict, Some(Verdict::Fail));
    w.assert_rollback_recommended("churn").await;
    assert!(!w.events.take().iter().any(|e| e.starts_with("rollback")));

    // Judged once: the same evaluator, then a restarted one, judge nothing.
    w.clock.advance(Duration::minutes(1));
    assert_eq!(w.cycle().await[0].rollback_verdict, None);
    let fresh = w.new_evaluator();
    w.clock.advance(Duration::minutes(1));
    let o = &fresh.run_cycle(None, false).await.unwrap().versions[0];
    assert_eq!(o.rollback_verdict, None);
    assert_eq!(w.recommendations("churn", Rollback).await.len(), 1);
}

#[tokio::test]
async fn a_good_deployment_passes_and_is_judged_until_its_window_ends() {
    let w = deployment(true, false).await;
    assert_eq!(w.cycle().await[0].rollback_verdict, Some(Verdict::Pass));
    // Still inside the window: judged again, as more traffic arrives.
    w.clock.advance(Duration::minutes(1));
    assert_eq!(w.cycle().await[0].rollback_verdict, Some(Verdict::Pass));
    // Past the window: the last, final verdict; then never again.
    w.clock.advance(Duration::minutes(5));
    assert_eq!(w.cycle().await[0].rollback_verdict, Some(Verdict::Pass));
    w.clock.advance(Duration::minutes(1));
    assert_eq!(w.cycle().await[0].rollback_verdict, None);
    assert_eq!(w.production("churn").await, 2);
    assert!(w.recommendations("churn", Rollback).await.is_empty());
}

#[tokio::test]
async fn too_few_requests_are_pending_then_not_enough_data() {
    let w = deployment(true, true).await;
    let mut policy = w.registry.get_policy("churn").await.unwrap().policy;
    policy.rollback.as_mut().unwrap().min_requests = 1000;
    w.registry
        .set_policy(&admin(), "churn", policy)
        .await
        .unwrap();
    assert_eq!(w.cycle().await[0].rollback_verdict, Some(Verdict::Pending));
    w.clock.advance(Duration::minutes(5));
    assert_eq!(
        w.cycle().await[0].rollback_verdict,
        Some(Verdict::NotEnoughData)
    );
    w.clock.advance(Duration::minutes(1));
    assert_eq!(w.cycle().await[0].rollback_verdict, None, "final");
    assert_eq!(w.production("churn").await, 2);
}

// ---------------------------------------------------------------- failures

#[tokio::test]
async fn a_failing_or_panicking_model_is_reported_and_the_others_still_run() {
    let w = world().await;
    for m in ["a-model", "b-model"] {
        w.watch(m, 1, drift_policy(1)).await;
    }
    w.next_window("a-model", &[]);
    w.current("b-model", 1, &[]);

    w.memory.data().panic_on = Some("a-model".into());
    let o = w.cycle().await;
    assert_eq!(o[0].status, Outcome::Error);
    assert!(
        o[0].message
            .as_deref()
            .unwrap()
            .contains("panicked: reader bug"),
        "{o:?}"
    );
    assert_eq!(o[1].status, Outcome::Evaluated, "{o:?}");

    w.memory.data().panic_on = None;
    w.memory.data().fail = Some("disk on fire".into());
    w.clock.advance(Duration::minutes(10));
    let o = w.cycle().await;
    assert!(o.iter().all(|o| o.status == Outcome::Error), "{o:?}");
    assert_eq!(
        o[0].message.as_deref(),
        Some("history query failed: disk on fire")
    );
    w.events.take_containing(&[
        "failed b-model: history query failed: disk on fire",
        "evaluated b-model error",
        "watched a-model,b-model",
    ]);
}

#[tokio::test]
async fn an_unset_alias_is_reported() {
    let w = world().await;
    w.model("fraud", 1).await;
    w.policy("fraud", drift_policy(1)).await;
    let o = &w.cycle().await[0];
    assert_eq!((o.status, o.version), (Outcome::NoAlias, None));
    assert!(o.message.as_deref().unwrap().contains("is not set"));
}

// ---------------------------------------------------------------- thread

#[tokio::test]
async fn the_handle_runs_cycles_on_the_evaluator_thread_until_stopped() {
    let w = world().await;
    w.watch("fraud", 1, drift_policy(1)).await;
    w.next_window("fraud", &["a", "b"]);

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let alive = Arc::new(());
    let evaluator = Arc::new(w.new_evaluator());
    let (handle, thread) = crate::spawn(evaluator, stopped, alive.clone(), || false).unwrap();
    let report = handle.evaluate_now(Some("fraud".into())).await.unwrap();
    assert_eq!(report.versions[0].status, Outcome::Evaluated);
    assert_eq!(report.versions[0].dataset_drift, Some(true));
    assert_eq!(Arc::strong_count(&alive), 2, "the thread holds its guard");

    stop.send(true).unwrap();
    tokio::task::spawn_blocking(move || thread.join().unwrap())
        .await
        .unwrap();
    assert_eq!(
        Arc::strong_count(&alive),
        1,
        "the guard is dropped with the thread"
    );
    assert!(matches!(
        handle.evaluate_now(None).await,
        Err(EvalError::Stopped)
    ));
}
