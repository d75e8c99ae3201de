//! The scheduler over a real SQLite registry (in a temporary directory), an
//! in-memory telemetry reader and results sink, and one `ManualClock`
//! shared by registry and evaluator: no DataFusion, no sleeping. The
//! end-to-end scenarios over the real history store are the server's
//! (`server/tests/evaluator.rs`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;

use modelwatch_drift::DriftReport;
use modelwatch_evaluator::{
    Change, EvalError, EvaluationEvents, EvaluationKey, Evaluator, FeatureSet, FeatureValues,
    HEALTH_TAG, NumericValues, Outcome, Profile, RECOMMENDATION_TAG, RecommendationAction,
    ResultsSink, RollbackDone, SplitMix, TelemetryReader, Traffic, Verdict, VersionOutcome, Window,
};
use modelwatch_registry::prelude::*;
use modelwatch_registry::{
    Actor, AuditFilter, MonitoringPolicy, NewModel, NewVersion, PageRequest, Recommendation,
    RecommendationFilter, RecommendationKind, RecommendationStatus, Role, SqliteStore,
};
use modelwatch_types::{Clock, ErrorSource, FeatureKind, LatencySource, ManualClock};

// ---------------------------------------------------------------- memory

/// One inference row: its time and numeric features.
type Row = (DateTime<Utc>, BTreeMap<String, f64>);
/// One request: time, latency, failed.
type Request = (DateTime<Utc>, f64, bool);

#[derive(Default)]
struct Data {
    /// `(table, model, version)` → rows.
    rows: HashMap<(&'static str, String, String), Vec<Row>>,
    /// `(model, version)` → requests.
    requests: HashMap<(String, String), Vec<Request>>,
    /// Stored evaluations: (evaluation id, model, version, at, dataset drift, rows).
    results: Vec<(String, String, i64, DateTime<Utc>, bool, usize)>,
    /// Every read fails with this message.
    fail: Option<String>,
    /// Every read of this model panics.
    panic_on: Option<String>,
}

/// The history in memory: reader and results sink at once.
#[derive(Default)]
struct Memory(Mutex<Data>);

impl Memory {
    fn data(&self) -> std::sync::MutexGuard<'_, Data> {
        self.0.lock().unwrap()
    }

    fn check(&self, model: &str) -> modelwatch_evaluator::Result<()> {
        let (panics, fail) = {
            let d = self.data();
            (d.panic_on.as_deref() == Some(model), d.fail.clone())
        };
        // (Not while holding the lock: that would poison it.)
        assert!(!panics, "reader bug for {model}");
        match fail {
            Some(m) => Err(EvalError::telemetry(m)),
            None => Ok(()),
        }
    }

    fn in_window(&self, w: &Window) -> Vec<Row> {
        let d = self.data();
        d.rows
            .get(&(w.table, w.model.clone(), w.version.clone()))
            .into_iter()
            .flatten()
            .filter(|(ts, _)| w.range.is_none_or(|(from, to)| *ts >= from && *ts < to))
            .cloned()
            .collect()
    }

    fn requests(&self, t: &Traffic) -> Vec<Request> {
        let d = self.data();
        d.requests
            .get(&(t.model.clone(), t.version.clone()))
            .into_iter()
            .flatten()
            .filter(|(ts, _, _)| *ts >= t.from && *ts < t.to)
            .copied()
            .collect()
    }
}

#[async_trait::async_trait]
impl TelemetryReader for Memory {
    async fn discover_features(&self, window: &Window) -> modelwatch_evaluator::Result<FeatureSet> {
        self.check(&window.model)?;
        Ok(self
            .in_window(window)
            .iter()
            .flat_map(|(_, f)| f.keys().cloned())
            .map(|k| (k, Some(FeatureKind::Numeric)))
            .collect())
    }

    async fn count_rows(&self, window: &Window) -> modelwatch_evaluator::Result<u64> {
        self.check(&window.model)?;
        Ok(self.in_window(window).len() as u64)
    }

    async fn profile(
        &self,
        window: &Window,
        features: &FeatureSet,
    ) -> modelwatch_evaluator::Result<Profile> {
        self.check(&window.model)?;
        let rows = self.in_window(window);
        let mut rng = SplitMix(1);
        let mut profile = Profile {
            rows: rows.len() as u64,
            features: BTreeMap::new(),
        };
        for name in features.keys() {
            let mut values = NumericValues::default();
            for (_, row) in &rows {
                if let Some(v) = row.get(name) {
                    values.push(*v, &mut rng);
                }
            }
            profile
                .features
                .insert(name.clone(), FeatureValues::Numeric(values));
        }
        Ok(profile)
    }

    async fn latencies(
        &self,
        traffic: &Traffic,
        source: &LatencySource,
        _span_name: Option<&str>,
    ) -> modelwatch_evaluator::Result<Vec<f64>> {
        self.check(&traffic.model)?;
        assert_eq!(source, &LatencySource::Spans);
        Ok(self.requests(traffic).iter().map(|r| r.1).collect())
    }

    async fn error_counts(
        &self,
        traffic: &Traffic,
        source: &ErrorSource,
        _span_name: Option<&str>,
    ) -> modelwatch_evaluator::Result<(u64, u64)> {
        self.check(&traffic.model)?;
        assert_eq!(source, &ErrorSource::Spans);
        let r = self.requests(traffic);
        Ok((r.iter().filter(|r| r.2).count() as u64, r.len() as u64))
    }

    async fn recent_dataset_drift(
        &self,
        model: &str,
        version: i64,
        excluding: &str,
        limit: usize,
    ) -> modelwatch_evaluator::Result<Vec<bool>> {
        let d = self.data();
        let mut mine: Vec<_> = d
            .results
            .iter()
            .filter(|r| r.1 == model && r.2 == version && r.0 != excluding)
            .collect();
        mine.sort_by_key(|r| std::cmp::Reverse(r.3));
        Ok(mine.iter().take(limit).map(|r| r.4).collect())
    }
}

#[async_trait::async_trait]
impl ResultsSink for Memory {
    async fn write(
        &self,
        key: &EvaluationKey<'_>,
        report: &DriftReport,
        kinds: &[FeatureKind],
    ) -> modelwatch_evaluator::Result<()> {
        assert_eq!(kinds.len(), report.features.len());
        self.data().results.push((
            key.evaluation_id.to_string(),
            key.model.to_string(),
            key.version,
            key.window.1,
            report.dataset_drift,
            report.features.len(),
        ));
        Ok(())
    }
}

/// Every event, as one line each.
#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl Recorder {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
    fn push(&self, s: String) {
        self.0.lock().unwrap().push(s);
    }
}

#[async_trait::async_trait]
impl EvaluationEvents for Recorder {
    async fn watched_models(&self, models: &HashSet<String>) {
        let mut m: Vec<_> = models.iter().cloned().collect();
        m.sort();
        self.push(format!("watched {}", m.join(",")));
    }
    async fn drift_measured(&self, model: &str, version: i64, report: &DriftReport) {
        self.push(format!(
            "measured {model}/{version} drift={}",
            report.dataset_drift
        ));
    }
    async fn drift_detected(&self, model: &str, version: i64, evidence: &serde_json::Value) {
        self.push(format!(
            "detected {model}/{version} {}",
            evidence["drifted_features"]
        ));
    }
    async fn recommendation_changed(&self, model: &str, a: &RecommendationAction) {
        self.push(format!(
            "{} {} {model}/{}",
            a.action.as_str(),
            a.kind,
            a.version
        ));
    }
    async fn rollback_done(&self, r: &RollbackDone) {
        self.push(format!(
            "rollback {}/{} v{}→v{}",
            r.model, r.alias, r.from_version, r.to_version
        ));
    }
    async fn version_evaluated(
        &self,
        o: &VersionOutcome,
        _at: DateTime<Utc>,
        _interval: std::time::Duration,
        _took: std::time::Duration,
    ) {
        self.push(format!("evaluated {} {}", o.model, o.status));
    }
    async fn evaluation_failed(&self, model: &str, error: &EvalError) {
        self.push(format!("failed {model}: {error}"));
    }
}

// ---------------------------------------------------------------- world

struct World {
    _dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    registry: Arc<SqliteStore>,
    memory: Arc<Memory>,
    events: Arc<Recorder>,
    evaluator: Evaluator,
}

fn admin() -> Actor {
    Actor::new("tester", Role::Admin)
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 8, 0, 0).unwrap()
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(start()));
    let registry = Arc::new(
        SqliteStore::open_with_clock(&dir.path().join("registry.sqlite"), clock.clone())
            .await
            .unwrap(),
    );
    let memory = Arc::new(Memory::default());
    let events = Arc::new(Recorder::default());
    let evaluator = new_evaluator(&registry, &memory, &clock, &events);
    World {
        _dir: dir,
        clock,
        registry,
        memory,
        events,
        evaluator,
    }
}

/// An evaluator over the world's parts (a restart gets a fresh one).
fn new_evaluator(
    registry: &Arc<SqliteStore>,
    memory: &Arc<Memory>,
    clock: &Arc<ManualClock>,
    events: &Arc<Recorder>,
) -> Evaluator {
    Evaluator::new(
        registry.clone(),
        memory.clone(),
        memory.clone(),
        clock.clone(),
    )
    .with_events(events.clone())
}

impl World {
    async fn model(&self, name: &str, versions: usize) {
        self.registry
            .create_model(
                &admin(),
                NewModel {
                    name: name.into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        for _ in 0..versions {
            self.registry
                .create_version(
                    &admin(),
                    name,
                    NewVersion {
                        features: ["a", "b", "c"]
                            .map(|f| (f.to_string(), FeatureKind::Numeric))
                            .into(),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
        }
    }

    async fn set_alias(&self, model: &str, version: i64) {
        self.registry
            .set_alias(&admin(), model, "production", version, "deploy")
            .await
            .unwrap();
    }

    async fn policy(&self, model: &str, policy: serde_json::Value) {
        let policy: MonitoringPolicy = serde_json::from_value(policy).unwrap();
        self.registry
            .set_policy(&admin(), model, policy)
            .await
            .unwrap();
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

    async fn recommendations(&self, model: &str, kind: RecommendationKind) -> Vec<Recommendation> {
        self.registry
            .list_recommendations(
                &RecommendationFilter {
                    model: Some(model.into()),
                    kind: Some(kind),
                    ..Default::default()
                },
                &PageRequest::new(Some(1000), None).unwrap(),
            )
            .await
            .unwrap()
            .items
    }

    async fn tags(&self, model: &str, version: i64) -> (String, String) {
        let v = self.registry.get_version(model, version).await.unwrap();
        (
            v.tags.get(HEALTH_TAG).cloned().unwrap_or_default(),
            v.tags.get(RECOMMENDATION_TAG).cloned().unwrap_or_default(),
        )
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
    json!({"interval": "10m", "current_window": "10m", "min_rows": 100,
           "persistence": persistence, "drift_share": 0.5})
}

// ---------------------------------------------------------------- drift

#[tokio::test]
async fn persistence_raises_once_refreshes_and_a_clean_evaluation_clears() {
    let w = world().await;
    w.model("fraud", 1).await;
    w.rows("reference", "fraud", 1, start() - Duration::days(1), &[]);
    w.set_alias("fraud", 1).await;
    w.policy("fraud", drift_policy(2)).await;

    // drift: no, yes, yes (raise), yes (refresh), no (supersede).
    let plan: [&[&str]; 5] = [&[], &["a", "b"], &["a", "b"], &["a", "b"], &[]];
    let mut outcomes = Vec::new();
    for shifted in plan {
        w.clock.advance(Duration::minutes(10));
        w.current("fraud", 1, shifted);
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

    let retrain = w
        .recommendations("fraud", RecommendationKind::Retrain)
        .await;
    assert_eq!(retrain.len(), 1, "refreshed, not raised twice");
    assert_eq!(retrain[0].status, RecommendationStatus::Superseded);
    assert_eq!(retrain[0].raised_by, "evaluator");
    assert_eq!(retrain[0].evidence["consecutive_drifted_evaluations"], 3);
    assert_eq!(w.tags("fraud", 1).await, ("healthy".into(), "none".into()));
    // Every evaluation's rows were stored: 3 features each.
    let results = w.memory.data().results.clone();
    assert_eq!(results.len(), 5);
    assert!(results.iter().all(|r| r.5 == 3));

    let events = w.events.take();
    let detected = events.iter().filter(|e| e.starts_with("detected")).count();
    assert_eq!(detected, 3, "{events:#?}");
    assert!(events.contains(&"detected fraud/1 [\"a\",\"b\"]".to_string()));
    assert!(events.contains(&"raised retrain fraud/1".to_string()));
    assert!(events.contains(&"superseded retrain fraud/1".to_string()));
}

#[tokio::test]
async fn the_persistence_count_survives_a_restart() {
    let w = world().await;
    w.model("fraud", 1).await;
    w.rows("reference", "fraud", 1, start() - Duration::days(1), &[]);
    w.set_alias("fraud", 1).await;
    w.policy("fraud", drift_policy(3)).await;
    for _ in 0..2 {
        w.clock.advance(Duration::minutes(10));
        w.current("fraud", 1, &["a", "b"]);
        w.cycle().await;
    }
    assert!(
        w.recommendations("fraud", RecommendationKind::Retrain)
            .await
            .is_empty()
    );

    // A new evaluator re-reads the two drifted evaluations: the third raises.
    let fresh = new_evaluator(&w.registry, &w.memory, &w.clock, &w.events);
    w.clock.advance(Duration::minutes(10));
    w.current("fraud", 1, &["a", "b"]);
    let o = &fresh.run_cycle(None, false).await.unwrap().versions[0];
    assert_eq!(o.consecutive_drifted, 3, "{o:?}");
    assert_eq!(o.recommendations[0].action, Change::Raised);
}

#[tokio::test]
async fn intervals_are_respected_unless_forced() {
    let w = world().await;
    w.model("fraud", 1).await;
    w.rows("reference", "fraud", 1, start() - Duration::days(1), &[]);
    w.set_alias("fraud", 1).await;
    w.policy("fraud", drift_policy(1)).await;
    w.clock.advance(Duration::minutes(10));
    w.current("fraud", 1, &[]);
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
    w.model("fraud", 2).await;
    w.rows("reference", "fraud", 1, start() - Duration::days(1), &[]);
    w.set_alias("fraud", 1).await;
    w.policy("fraud", drift_policy(1)).await;
    w.clock.advance(Duration::minutes(10));
    w.current("fraud", 1, &["a", "b"]);
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
                kind: RecommendationKind::Promote,
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
    let retrain = w
        .recommendations("fraud", RecommendationKind::Retrain)
        .await;
    assert_eq!(retrain[0].status, RecommendationStatus::Superseded);
    let promote = w
        .recommendations("fraud", RecommendationKind::Promote)
        .await;
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
    let mut policy = drift_policy(1);
    policy["reference"] = json!("baseline_window");
    policy["baseline_window"] = json!("10m");
    w.policy("fraud", policy).await;
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
    let e = &w
        .recommendations("fraud", RecommendationKind::Retrain)
        .await[0]
        .evidence;
    assert_eq!(e["reference"]["source"], "baseline_window");
    assert_eq!(e["reference"]["rows"], 400);
}

#[tokio::test]
async fn too_few_rows_are_not_judged() {
    let w = world().await;
    w.model("fraud", 1).await;
    w.rows("reference", "fraud", 1, start() - Duration::days(1), &[]);
    w.set_alias("fraud", 1).await;
    let mut policy = drift_policy(1);
    policy["min_rows"] = json!(401);
    w.policy("fraud", policy).await;
    w.clock.advance(Duration::minutes(10));
    w.current("fraud", 1, &["a", "b", "c"]);
    let o = &w.cycle().await[0];
    assert_eq!(o.status, Outcome::NotEnoughData);
    assert!(o.message.as_deref().unwrap().contains("min_rows"), "{o:?}");
    assert!(w.memory.data().results.is_empty(), "nothing stored");
    assert!(
        w.recommendations("fraud", RecommendationKind::Retrain)
            .await
            .is_empty()
    );
}

// ---------------------------------------------------------------- rollback

/// v1 serves healthy traffic for 10 minutes, then `production` moves to
/// v2; `worse` makes v2 slower and failing. The judge runs 5 minutes later.
async fn deployment(automatic: bool, worse: bool) -> World {
    let w = world().await;
    w.model("churn", 2).await;
    w.set_alias("churn", 1).await;
    w.policy(
        "churn",
        json!({"interval": "1m", "rollback": {"latency": {"source": "spans"},
               "errors": {"source": "spans"}, "window": "10m", "min_requests": 50,
               "automatic": automatic}}),
    )
    .await;
    w.clock.advance(Duration::minutes(20));
    w.requests(
        "churn",
        1,
        w.clock.now() - Duration::minutes(10),
        20.0,
        0.01,
    );
    w.set_alias("churn", 2).await;
    let (latency, errors) = if worse { (120.0, 0.25) } else { (20.0, 0.01) };
    w.requests("churn", 2, w.clock.now(), latency, errors);
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
    let rollback = w
        .recommendations("churn", RecommendationKind::Rollback)
        .await;
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
        .registry
        .list_audit(
            &AuditFilter {
                action: Some("alias.rollback".into()),
                ..Default::default()
            },
            &PageRequest::new(Some(10), None).unwrap(),
        )
        .await
        .unwrap();
    let reason = audit.items[0].after.as_ref().unwrap()["reason"]
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
    assert_eq!(
        w.recommendations("churn", RecommendationKind::Rollback)
            .await
            .len(),
        1
    );
    assert!(w.registry.verify_audit().await.unwrap().ok);
}

#[tokio::test]
async fn without_automatic_only_a_recommendation_judged_once_across_restarts() {
    let w = deployment(false, true).await;
    let o = &w.cycle().await[0];
    assert_eq!(o.rollback_verdict, Some(Verdict::Fail));
    let alias = w.registry.get_alias("churn", "production").await.unwrap();
    assert_eq!(
        alias.version, 2,
        "the alias must not move without automatic"
    );
    let rollback = w
        .recommendations("churn", RecommendationKind::Rollback)
        .await;
    assert_eq!(rollback.len(), 1);
    assert_eq!(rollback[0].status, RecommendationStatus::Open);
    assert_eq!(
        rollback[0].severity,
        modelwatch_registry::Severity::Critical
    );
    assert_eq!(
        w.tags("churn", 2).await,
        ("degraded".into(), "rollback".into())
    );
    assert!(!w.events.take().iter().any(|e| e.starts_with("rollback")));

    // Judged once: the same evaluator, then a restarted one, judge nothing.
    w.clock.advance(Duration::minutes(1));
    assert_eq!(w.cycle().await[0].rollback_verdict, None);
    let fresh = new_evaluator(&w.registry, &w.memory, &w.clock, &w.events);
    w.clock.advance(Duration::minutes(1));
    let o = &fresh.run_cycle(None, false).await.unwrap().versions[0];
    assert_eq!(o.rollback_verdict, None);
    assert_eq!(
        w.recommendations("churn", RecommendationKind::Rollback)
            .await
            .len(),
        1
    );
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
    assert_eq!(
        w.registry
            .get_alias("churn", "production")
            .await
            .unwrap()
            .version,
        2
    );
    assert!(
        w.recommendations("churn", RecommendationKind::Rollback)
            .await
            .is_empty()
    );
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
    assert_eq!(
        w.registry
            .get_alias("churn", "production")
            .await
            .unwrap()
            .version,
        2
    );
}

// ---------------------------------------------------------------- failures

#[tokio::test]
async fn a_failing_or_panicking_model_is_reported_and_the_others_still_run() {
    let w = world().await;
    for m in ["a-model", "b-model"] {
        w.model(m, 1).await;
        w.rows("reference", m, 1, start() - Duration::days(1), &[]);
        w.set_alias(m, 1).await;
        w.policy(m, drift_policy(1)).await;
    }
    w.clock.advance(Duration::minutes(10));
    w.current("a-model", 1, &[]);
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
    let events = w.events.take();
    assert!(events.contains(&"failed b-model: history query failed: disk on fire".to_string()));
    assert!(events.contains(&"evaluated b-model error".to_string()));
    assert!(events.contains(&"watched a-model,b-model".to_string()));
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
    w.model("fraud", 1).await;
    w.rows("reference", "fraud", 1, start() - Duration::days(1), &[]);
    w.set_alias("fraud", 1).await;
    w.policy("fraud", drift_policy(1)).await;
    w.clock.advance(Duration::minutes(10));
    w.current("fraud", 1, &["a", "b"]);

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let alive = Arc::new(());
    let evaluator = Arc::new(new_evaluator(&w.registry, &w.memory, &w.clock, &w.events));
    let (handle, thread) = modelwatch_evaluator::spawn(evaluator, stopped, alive.clone()).unwrap();
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
