//! Test fixtures for code that runs the evaluator (feature `testing`): a
//! registry in a temporary directory on a [`ManualClock`] with the helpers
//! every scenario seeds it with, an in-memory history that is both
//! [`TelemetryReader`] and [`ResultsSink`], and an [`EvaluationEvents`]
//! that records every event as a line. The evaluator's scheduler tests run
//! over all of it; the server's scenarios pair the registry with the real
//! history store.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, TimeZone, Utc};
use modelwatch_drift::{DriftReport, WindowValues};
use modelwatch_registry::prelude::*;
use modelwatch_registry::{
    Actor, AuditEntry, AuditFilter, MonitoringPolicy, NewModel, NewVersion, PageRequest,
    Recommendation, RecommendationFilter, RecommendationKind, RecommendationStatus, Role, Severity,
    SqliteStore,
};
use modelwatch_types::{Clock, ErrorSource, FeatureKind, LatencySource, ManualClock};

use crate::{
    AnomalyKey, AnomalyRow, DriftResults, EXACT_VALUES_LIMIT, EvalError, EvaluationEvents,
    EvaluationKey, FeatureSet, FeatureValues, HEALTH_TAG, OutcomeRows, PerformanceReport, Profile,
    RECOMMENDATION_TAG, RecommendationAction, Result, ResultsSink, RollbackDone, RowColumns,
    TelemetryReader, Traffic, VersionOutcome, Window,
};

/// The actor the fixtures act as.
pub fn admin() -> Actor {
    Actor::new("tester", Role::Admin)
}

/// Where every fixture's clock starts.
pub fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 8, 0, 0).unwrap()
}

/// A drift policy evaluating 10-minute windows every 10 minutes, judging
/// only windows of 100 rows or more.
pub fn drift_policy(persistence: u32, drift_share: f64) -> serde_json::Value {
    serde_json::json!({
        "interval": "10m",
        "current_window": "10m",
        "min_rows": 100,
        "persistence": persistence,
        "drift_share": drift_share,
    })
}

/// `policy` judging each window against the version's first 10 minutes
/// after it took the alias, not against reference data.
pub fn baseline_window(mut policy: serde_json::Value) -> serde_json::Value {
    policy["reference"] = "baseline_window".into();
    policy["baseline_window"] = "10m".into();
    policy
}

/// A SQLite registry in a temporary directory (which the fixture keeps,
/// so that a scenario can put its history beside it) on a [`ManualClock`]
/// starting at [`start`]. Every version it creates declares `features`.
pub struct TestRegistry {
    pub dir: tempfile::TempDir,
    pub clock: Arc<ManualClock>,
    pub registry: Arc<SqliteStore>,
    features: &'static [(&'static str, FeatureKind)],
}

impl TestRegistry {
    pub async fn open(features: &'static [(&'static str, FeatureKind)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(start()));
        let registry = Arc::new(
            SqliteStore::open_with_clock(&dir.path().join("registry.sqlite"), clock.clone())
                .await
                .unwrap(),
        );
        TestRegistry {
            dir,
            clock,
            registry,
            features,
        }
    }

    /// A model with `versions` versions.
    pub async fn model(&self, name: &str, versions: usize) {
        let model = NewModel {
            name: name.into(),
            ..Default::default()
        };
        self.registry.create_model(&admin(), model).await.unwrap();
        for _ in 0..versions {
            let features = self
                .features
                .iter()
                .map(|(name, kind)| (name.to_string(), *kind))
                .collect();
            let version = NewVersion {
                features,
                ..Default::default()
            };
            self.registry
                .create_version(&admin(), name, version)
                .await
                .unwrap();
        }
    }

    /// Points `production` at `version`.
    pub async fn set_alias(&self, model: &str, version: i64) {
        self.registry
            .set_alias(&admin(), model, "production", version, "deploy")
            .await
            .unwrap();
    }

    /// The version `production` points at.
    pub async fn production(&self, model: &str) -> i64 {
        self.registry
            .get_alias(model, "production")
            .await
            .unwrap()
            .version
    }

    /// A fresh deployment: `model` with two versions under `policy`,
    /// `production` on version 1 for 20 minutes, then moved to version 2.
    /// Returns the time of the move (now).
    pub async fn redeploy(&self, model: &str, policy: serde_json::Value) -> DateTime<Utc> {
        self.model(model, 2).await;
        self.set_alias(model, 1).await;
        self.policy(model, policy).await;
        self.clock.advance(chrono::Duration::minutes(20));
        self.set_alias(model, 2).await;
        self.clock.now()
    }

    pub async fn policy(&self, model: &str, policy: serde_json::Value) {
        let policy: MonitoringPolicy = serde_json::from_value(policy).unwrap();
        self.registry
            .set_policy(&admin(), model, policy)
            .await
            .unwrap();
    }

    /// What a failed deployment leaves without automatic rollback:
    /// `production` still on version 2, one open critical rollback
    /// recommendation, and version 2 tagged degraded.
    pub async fn assert_rollback_recommended(&self, model: &str) {
        assert_eq!(
            self.production(model).await,
            2,
            "the alias must not move without automatic rollback"
        );
        let rollback = self
            .recommendations(model, RecommendationKind::Rollback)
            .await;
        assert_eq!(rollback.len(), 1);
        assert_eq!(rollback[0].status, RecommendationStatus::Open);
        assert_eq!(rollback[0].severity, Severity::Critical);
        assert_eq!(
            self.tags(model, 2).await,
            ("degraded".into(), "rollback".into())
        );
    }

    /// The model's recommendations of one kind, whatever their status.
    pub async fn recommendations(
        &self,
        model: &str,
        kind: RecommendationKind,
    ) -> Vec<Recommendation> {
        let filter = RecommendationFilter {
            model: Some(model.into()),
            kind: Some(kind),
            ..Default::default()
        };
        self.registry
            .list_recommendations(&filter, &PageRequest::new(Some(1000), None).unwrap())
            .await
            .unwrap()
            .items
    }

    /// The version's health and recommendation tags (empty when unset).
    pub async fn tags(&self, model: &str, version: i64) -> (String, String) {
        let v = self.registry.get_version(model, version).await.unwrap();
        (
            v.tags.get(HEALTH_TAG).cloned().unwrap_or_default(),
            v.tags.get(RECOMMENDATION_TAG).cloned().unwrap_or_default(),
        )
    }

    /// The newest audit entries matching `filter`.
    pub async fn audit(&self, filter: AuditFilter) -> Vec<AuditEntry> {
        self.registry
            .list_audit(&filter, &PageRequest::new(Some(100), None).unwrap())
            .await
            .unwrap()
            .items
    }
}

/// One inference row: its time and numeric features.
pub type Row = (DateTime<Utc>, BTreeMap<String, f64>);
/// One request: time, latency, failed.
pub type Request = (DateTime<Utc>, f64, bool);
/// One stored evaluation: evaluation id, model, version, end of its
/// window, dataset drift, features.
pub type StoredEvaluation = (String, String, i64, DateTime<Utc>, bool, usize);

/// What [`MemoryHistory`] holds, and how it misbehaves.
#[derive(Default)]
pub struct HistoryData {
    /// `(table, model, version)` → rows.
    pub rows: HashMap<(&'static str, String, String), Vec<Row>>,
    /// `(model, version)` → requests.
    pub requests: HashMap<(String, String), Vec<Request>>,
    /// Every evaluation the sink stored.
    pub results: Vec<StoredEvaluation>,
    /// Realized-performance reports written.
    pub performance: Vec<PerformanceReport>,
    /// Fairness reports written.
    pub fairness: Vec<crate::FairnessReport>,
    /// Anomaly rows written.
    pub anomalies: Vec<AnomalyRow>,
    /// The table of every row-by-row read (`outcomes`), in order.
    pub row_reads: Vec<&'static str>,
    /// Every read fails with this message.
    pub fail: Option<String>,
    /// Every read of this model panics.
    pub panic_on: Option<String>,
}

/// The history in memory: reader and results sink at once. Rows carry
/// numeric features only; latencies and errors come from spans.
#[derive(Default)]
pub struct MemoryHistory(Mutex<HistoryData>);

impl MemoryHistory {
    pub fn data(&self) -> MutexGuard<'_, HistoryData> {
        self.0.lock().unwrap()
    }

    fn check(&self, model: &str) -> Result<()> {
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
impl TelemetryReader for MemoryHistory {
    async fn discover_features(&self, window: &Window) -> Result<FeatureSet> {
        self.check(&window.model)?;
        Ok(self
            .in_window(window)
            .iter()
            .flat_map(|(_, f)| f.keys().cloned())
            .map(|k| (k, Some(FeatureKind::Numeric)))
            .collect())
    }

    async fn count_rows(&self, window: &Window) -> Result<u64> {
        self.check(&window.model)?;
        Ok(self.in_window(window).len() as u64)
    }

    async fn profile(&self, window: &Window, features: &FeatureSet) -> Result<Profile> {
        self.check(&window.model)?;
        let rows = self.in_window(window);
        let mut profile = Profile {
            rows: rows.len() as u64,
            ..Profile::default()
        };
        for name in features.keys() {
            let mut values = WindowValues::new(EXACT_VALUES_LIMIT);
            for (ts, row) in &rows {
                if let Some(v) = row.get(name) {
                    values.push(*v, ts.timestamp_micros() as u64);
                }
            }
            profile
                .features
                .insert(name.clone(), FeatureValues::Numeric(values.finish()));
        }
        Ok(profile)
    }

    async fn outcomes(&self, window: &Window, _wanted: &RowColumns) -> Result<OutcomeRows> {
        self.check(&window.model)?;
        self.data().row_reads.push(window.table);
        // The test world's rows carry features only.
        Ok(OutcomeRows {
            rows: self.in_window(window).len() as u64,
            ..OutcomeRows::default()
        })
    }

    async fn metric_series(
        &self,
        traffic: &Traffic,
        _metric: &str,
    ) -> Result<Vec<(DateTime<Utc>, f64)>> {
        self.check(&traffic.model)?;
        // The test world has no metric samples.
        Ok(Vec::new())
    }

    async fn span_series(
        &self,
        traffic: &Traffic,
        _metric: &str,
        _span_name: Option<&str>,
        _bucket: std::time::Duration,
    ) -> Result<Vec<(DateTime<Utc>, f64)>> {
        // The test world has no spans.
        self.check(&traffic.model)?;
        Ok(Vec::new())
    }

    async fn latencies(
        &self,
        traffic: &Traffic,
        source: &LatencySource,
        _span_name: Option<&str>,
    ) -> Result<Vec<f64>> {
        self.check(&traffic.model)?;
        assert_eq!(source, &LatencySource::Spans);
        Ok(self.requests(traffic).iter().map(|r| r.1).collect())
    }

    async fn error_counts(
        &self,
        traffic: &Traffic,
        source: &ErrorSource,
        _span_name: Option<&str>,
    ) -> Result<(u64, u64)> {
        self.check(&traffic.model)?;
        assert_eq!(source, &ErrorSource::Spans);
        let r = self.requests(traffic);
        Ok((r.iter().filter(|r| r.2).count() as u64, r.len() as u64))
    }

    async fn recent_dataset_drift(
        &self,
        key: &EvaluationKey<'_>,
        limit: usize,
    ) -> Result<Vec<bool>> {
        let d = self.data();
        let mut mine: Vec<_> = d
            .results
            .iter()
            .filter(|r| r.1 == key.model && r.2 == key.version && r.0 != key.evaluation_id)
            .collect();
        mine.sort_by_key(|r| std::cmp::Reverse(r.3));
        Ok(mine.iter().take(limit).map(|r| r.4).collect())
    }
}

#[async_trait::async_trait]
impl ResultsSink for MemoryHistory {
    async fn write(&self, key: &EvaluationKey<'_>, results: &DriftResults<'_>) -> Result<()> {
        assert_eq!(results.inputs.len(), results.report.features.len());
        self.data().results.push((
            key.evaluation_id.to_string(),
            key.model.to_string(),
            key.version,
            key.window.1,
            results.drifted(),
            results.report.features.len(),
        ));
        Ok(())
    }

    async fn write_performance(&self, report: &PerformanceReport) -> Result<()> {
        self.data().performance.push(report.clone());
        Ok(())
    }

    async fn write_anomalies(&self, _key: &AnomalyKey<'_>, rows: &[AnomalyRow]) -> Result<()> {
        self.data().anomalies.extend(rows.iter().cloned());
        Ok(())
    }

    async fn write_fairness(&self, report: &crate::FairnessReport) -> Result<()> {
        self.data().fairness.push(report.clone());
        Ok(())
    }
}

/// Every event, as one line each.
#[derive(Default)]
pub struct RecordedEvents(Mutex<Vec<String>>);

impl RecordedEvents {
    /// The lines recorded since the last call.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
    /// The lines recorded since the last call, asserting that every one of
    /// `expected` is among them.
    pub fn take_containing(&self, expected: &[&str]) -> Vec<String> {
        let events = self.take();
        for e in expected {
            assert!(events.iter().any(|x| x == e), "{e} not in {events:#?}");
        }
        events
    }
    fn push(&self, s: String) {
        self.0.lock().unwrap().push(s);
    }
}

#[async_trait::async_trait]
impl EvaluationEvents for RecordedEvents {
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
    async fn multivariate_measured(
        &self,
        model: &str,
        version: i64,
        drift: Option<&modelwatch_drift::multivariate::ReconstructionDrift>,
    ) {
        self.push(format!(
            "multivariate {model}/{version} drift={:?}",
            drift.map(|d| d.drifted)
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
