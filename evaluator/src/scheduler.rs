//! The scheduler: reads, asks [`crate::decision`], carries the answer out.
//!
//! [`Evaluator::run_cycle`] evaluates every model whose policy interval has
//! elapsed by the injected clock (all of them when forced, or one). Cycles
//! are serialised (one at a time, versions one after another), which bounds
//! its CPU to one core. [`spawn`] runs it on its own single-threaded Tokio
//! runtime on a thread at the lowest scheduling priority (nice 19): queries
//! and statistics never take a worker from the runtime that serves
//! ingestion, and when the cores are busy the kernel runs ingestion first.
//! A panic in one model's evaluation is that model's `error` outcome, not
//! the end of the evaluator.

use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::FutureExt;
use modelwatch_registry::{
    Actor, Alias, PageRequest, PolicyRecord, Recommendation, RecommendationFilter,
    RecommendationKind, RecommendationStatus, Role, TagTarget, Transition,
};
use modelwatch_types::{Clock, MonitoringPolicy, RollbackPolicy};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::Instrument;

use crate::decision::{
    self, Action, Change, DriftMeasurement, DriftState, EVALUATOR_ACTOR, Health, JudgeMeasurement,
    Outcome, Skip, Verdict,
};
use crate::ports::{
    EvaluationEvents, EvaluationKey, EvaluatorRegistry, FeatureSet, NoEvents, Profile, ResultsSink,
    RollbackDone, RowColumns, TelemetryReader, Traffic, Window,
};
use crate::report::{
    CycleReport, EstimateOutcome, PerformanceOutcome, RecommendationAction, VersionOutcome,
};
use crate::{EvalError, Result};

/// Numeric values all cached reference profiles hold together (8 bytes
/// each: 256 MiB).
pub const REFERENCE_CACHE_VALUES: usize = 32 * 1024 * 1024;

/// `(model, version, what was derived from the version's reference)`.
type ReferenceKey = (String, String, String);

type MultivariateFit = std::result::Result<modelwatch_drift::multivariate::FittedReference, String>;
/// The features estimation reads, and what it fitted on the reference
/// with them (or why it could not).
type Calibration = (
    FeatureSet,
    std::result::Result<crate::performance::Calibrated, String>,
);

/// Something derived from a version's reference (a profile, a fit, or why
/// it could not be fitted) and the reference's row count it was derived
/// from: kept while that count holds.
struct Cached<T> {
    rows_seen: u64,
    value: Arc<T>,
}

/// The value cached under `key` when the reference still has `rows` rows.
fn cached<T>(
    cache: &HashMap<ReferenceKey, Cached<T>>,
    key: &ReferenceKey,
    rows: u64,
) -> Option<Arc<T>> {
    cache
        .get(key)
        .filter(|c| c.rows_seen == rows)
        .map(|c| c.value.clone())
}

/// Caches `value` under `key`, forgetting the model's other versions (only
/// the versions still being evaluated are kept).
fn remember<T>(
    cache: &mut HashMap<ReferenceKey, Cached<T>>,
    key: ReferenceKey,
    rows: u64,
    value: Arc<T>,
) {
    cache.retain(|k, _| !(k.0 == key.0 && k.1 != key.1));
    cache.insert(
        key,
        Cached {
            rows_seen: rows,
            value,
        },
    );
}

/// What the scheduler remembers between cycles; none of it is needed after
/// a restart (see the crate docs).
#[derive(Default)]
struct State {
    next_due: HashMap<String, DateTime<Utc>>,
    consecutive: HashMap<(String, i64), u32>,
    /// `(model, version, source/range/features)` → profile.
    references: HashMap<ReferenceKey, Cached<Profile>>,
    /// `(model, version, source/range/features/variance)` → the fitted
    /// multivariate reference, or why it cannot be fitted.
    multivariate_fits: HashMap<ReferenceKey, Cached<MultivariateFit>>,
    /// `(model, version, estimation settings)` → the features estimation
    /// reads and what it fitted on the reference, or why it could not.
    calibrations: HashMap<ReferenceKey, Cached<Calibration>>,
    /// Alias moves whose rollback verdict is final: `(model, alias, move time)`.
    judged: HashSet<(String, String, DateTime<Utc>)>,
}

/// The evaluator. Construct with [`Evaluator::new`], run with [`spawn`] or
/// call [`Evaluator::run_cycle`] directly (tests, benchmarks).
pub struct Evaluator {
    registry: Arc<dyn EvaluatorRegistry>,
    reader: Arc<dyn TelemetryReader>,
    results: Arc<dyn ResultsSink>,
    clock: Arc<dyn Clock>,
    events: Arc<dyn EvaluationEvents>,
    actor: Actor,
    state: tokio::sync::Mutex<State>,
}

/// A panic payload's message.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "(no message)".to_owned())
}

impl Evaluator {
    pub fn new(
        registry: Arc<dyn EvaluatorRegistry>,
        reader: Arc<dyn TelemetryReader>,
        results: Arc<dyn ResultsSink>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            registry,
            reader,
            results,
            clock,
            events: Arc::new(NoEvents),
            actor: Actor::new(EVALUATOR_ACTOR, Role::Admin),
            state: Default::default(),
        }
    }

    /// Tells `events` what happens (use [`crate::Fanout`] for several).
    pub fn with_events(mut self, events: Arc<dyn EvaluationEvents>) -> Self {
        self.events = events;
        self
    }

    /// Evaluates every watched model whose interval has elapsed (all of
    /// them with `force`), or only `model`. Cycles run one at a time.
    pub async fn run_cycle(&self, model: Option<&str>, force: bool) -> Result<CycleReport> {
        let mut state = self.state.lock().await;
        let started = Instant::now();
        let now = self.clock.now();
        let mut report = CycleReport {
            started_at: now,
            ..Default::default()
        };
        let policies = match model {
            Some(m) => vec![self.registry.get_policy(m).await?],
            None => self.registry.list_policies().await?,
        };
        if model.is_none() {
            // Policies deleted since the last cycle: forget their schedule
            // (and tell listeners, e.g. to drop their metrics).
            let listed: HashSet<String> = policies.iter().map(|p| p.model.clone()).collect();
            state.next_due.retain(|m, _| listed.contains(m));
            self.events.watched_models(&listed).await;
        }
        for rec in policies {
            if !force && state.next_due.get(&rec.model).is_some_and(|due| *due > now) {
                continue;
            }
            state.next_due.insert(
                rec.model.clone(),
                decision::time_after(now, rec.policy.interval.as_chrono()),
            );
            let span =
                tracing::info_span!("evaluate", model = %rec.model, alias = %rec.policy.alias);
            let version_started = Instant::now();
            // A policy stored before today's bounds existed must not take
            // the evaluator down: it is reported until someone fixes it.
            let evaluated = match rec.policy.validate() {
                Err(e) => Err(EvalError::Policy(format!(
                    "the stored policy is invalid ({e}); set a valid one with PUT /api/v1/models/{}/policy",
                    rec.model
                ))),
                Ok(()) => AssertUnwindSafe(
                    self.evaluate_model(&mut state, &rec, now)
                        .instrument(span.clone()),
                )
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| Err(EvalError::Panicked(panic_message(&*panic)))),
            };
            let outcome = match evaluated {
                Ok(o) => o,
                Err(e) => {
                    span.in_scope(|| match &e {
                        EvalError::Panicked(_) => {
                            tracing::error!(error = %e, "evaluation panicked; the other models are still evaluated")
                        }
                        _ => tracing::warn!(error = %e, "evaluation failed"),
                    });
                    self.events.evaluation_failed(&rec.model, &e).await;
                    let mut o = VersionOutcome::new(&rec.model, &rec.policy.alias, Outcome::Error);
                    o.message = Some(e.to_string());
                    o
                }
            };
            self.events
                .version_evaluated(
                    &outcome,
                    now,
                    rec.policy.interval.duration(),
                    version_started.elapsed(),
                )
                .await;
            report.versions.push(outcome);
        }
        report.duration_ms = started.elapsed().as_secs_f64() * 1e3;
        self.events.cycle_finished(started.elapsed()).await;
        Ok(report)
    }

    async fn evaluate_model(
        &self,
        state: &mut State,
        rec: &PolicyRecord,
        now: DateTime<Utc>,
    ) -> Result<VersionOutcome> {
        let (model, policy) = (rec.model.as_str(), &rec.policy);
        let mut outcome = VersionOutcome::new(model, &policy.alias, Outcome::Evaluated);
        let alias = match self.registry.get_alias(model, &policy.alias).await {
            Ok(a) => a,
            Err(modelwatch_registry::Error::NotFound { .. }) => {
                outcome.status = Outcome::NoAlias;
                outcome.message = Some(format!(
                    "alias {:?} of model {model:?} is not set; nothing to watch",
                    policy.alias
                ));
                return Ok(outcome);
            }
            Err(e) => return Err(e.into()),
        };
        let version = alias.version;
        outcome.version = Some(version);

        let open = self.open_recommendations(model, None, None).await?;
        let superseded = decision::supersede_other_versions(&alias, &open);
        let other_versions: std::collections::BTreeSet<i64> = superseded
            .iter()
            .filter_map(|a| match a {
                Action::SupersedeRecommendation { version, .. } => Some(*version),
                _ => None,
            })
            .collect();
        self.carry_out(&mut outcome, model, version, superseded, None)
            .await?;
        for v in other_versions {
            // Its health stays what its last evaluation said.
            self.mirror_tags(model, v, None).await?;
        }

        let drift_health = match self
            .evaluate_drift(state, policy, &alias, now, &mut outcome)
            .await?
        {
            Ok(health) => health,
            Err(skip) => {
                outcome.status = skip.status;
                outcome.message = Some(skip.message);
                Health::InsufficientData
            }
        };
        if let Some(rollback) = &policy.rollback {
            outcome.rollback_verdict = self
                .judge_rollback(state, rollback, &alias, now, &mut outcome)
                .await?;
        }
        if let Some(performance) = &policy.performance {
            self.measure_performance(state, performance, policy, &alias, now, &mut outcome)
                .await?;
        }
        if let Some(fairness) = &policy.fairness {
            outcome.fairness = Some(self.assess_fairness(fairness, policy, &alias, now).await?);
        }
        if !policy.anomalies.is_empty() {
            outcome.anomalies = self.detect_anomalies(policy, &alias, now).await?;
        }
        let breached = !outcome.data_quality_breaches.is_empty()
            || outcome
                .performance
                .as_ref()
                .is_some_and(|p| !p.breaches.is_empty())
            || outcome
                .fairness
                .as_ref()
                .is_some_and(|f| !f.breaches.is_empty());
        let health = decision::health(drift_health, outcome.rollback_verdict, breached);
        self.mirror_tags(model, version, Some(health)).await?;
        Ok(outcome)
    }

    /// Runs each of the policy's detectors over its metric in the current
    /// window and stores the breaching points of the last `interval` (the
    /// earlier ones were the previous evaluation's to record).
    async fn detect_anomalies(
        &self,
        policy: &MonitoringPolicy,
        alias: &Alias,
        now: DateTime<Utc>,
    ) -> Result<Vec<crate::anomalies::AnomalyOutcome>> {
        let traffic = Traffic {
            model: alias.model.clone(),
            version: alias.version.to_string(),
            from: decision::time_before(now, policy.current_window.as_chrono()),
            to: now,
        };
        let record_from = decision::time_before(now, policy.interval.as_chrono());
        let evaluation_id = decision::evaluation_id(&alias.model, alias.version, now);
        let key = crate::ports::AnomalyKey {
            evaluation_id: &evaluation_id,
            model: &alias.model,
            version: alias.version,
            alias: &alias.alias,
        };
        let mut outcomes = Vec::new();
        let mut rows = Vec::new();
        for watched in &policy.anomalies {
            let series = match watched.source {
                modelwatch_types::SeriesSource::Samples => {
                    self.reader.metric_series(&traffic, &watched.metric).await?
                }
                modelwatch_types::SeriesSource::Spans => {
                    self.reader
                        .span_series(
                            &traffic,
                            &watched.metric,
                            watched.span_name.as_deref(),
                            watched.bucket.duration(),
                        )
                        .await?
                }
            };
            let (outcome, found) = crate::anomalies::detect(watched, &series, record_from);
            outcomes.push(outcome);
            rows.extend(found);
        }
        if !rows.is_empty() {
            self.results.write_anomalies(&key, &rows).await?;
        }
        Ok(outcomes)
    }

    /// Fairness of the current window's decisions per sensitive
    /// attribute: assessed and stored, or why not.
    async fn assess_fairness(
        &self,
        fairness: &modelwatch_types::FairnessPolicy,
        policy: &MonitoringPolicy,
        alias: &Alias,
        now: DateTime<Utc>,
    ) -> Result<crate::report::FairnessOutcome> {
        let current = CurrentWindow::of(policy, alias, now);
        let rows = self
            .reader
            .outcomes(
                &current.window(alias),
                &RowColumns::grouped(&fairness.attributes),
            )
            .await?;
        let report = crate::fairness::assess(fairness, current.context(alias), &rows);
        let assessed = report.assessed();
        if assessed {
            self.results.write_fairness(&report).await?;
            self.events.fairness_assessed(&report).await;
        }
        Ok(crate::report::FairnessOutcome {
            assessed,
            breaches: crate::fairness::breaches(fairness, &report),
            attributes: report.attributes,
        })
    }

    /// Realized performance of the current window: measured, stored and
    /// judged against the policy's thresholds (rule 7), or why not.
    async fn measure_performance(
        &self,
        state: &mut State,
        performance: &modelwatch_types::PerformancePolicy,
        policy: &MonitoringPolicy,
        alias: &Alias,
        now: DateTime<Utc>,
        outcome: &mut VersionOutcome,
    ) -> Result<()> {
        let (model, version) = (alias.model.as_str(), alias.version);
        let current = CurrentWindow::of(policy, alias, now);
        // Estimation reads the whole window with its features; realized
        // performance needs only the labelled rows, which that read holds
        // too (unlabelled rows are skipped), so one read serves both.
        let calibration = match performance.estimate {
            true => Some(self.calibration(state, performance, alias).await?),
            false => None,
        };
        let rows = match &calibration {
            Some(c) => {
                self.reader
                    .outcomes(
                        &current.window(alias),
                        &RowColumns::with_features(c.0.clone(), false),
                    )
                    .await?
            }
            None => self.reader.labelled(&current.window(alias)).await?,
        };
        let mut measured = PerformanceOutcome {
            measured: false,
            rows: rows.rows,
            labelled_rows: 0,
            delayed_labels: rows.delayed_labels,
            breaches: Vec::new(),
            estimate: None,
            message: None,
        };
        // The policy's thresholds judge the realized figures, else the
        // estimated ones.
        let mut judged = None;
        match crate::performance::measure(performance, current.context(alias), &rows) {
            Ok(report) => {
                self.results.write_performance(&report).await?;
                measured.measured = true;
                measured.labelled_rows = report.labelled_rows;
                judged = Some(report);
            }
            Err(not) => {
                measured.labelled_rows = not.labelled_rows;
                measured.message = Some(not.message);
            }
        }
        if let Some((_, calibrated)) = calibration.as_deref() {
            measured.estimate = Some(
                match crate::performance::estimate(
                    performance,
                    current.context(alias),
                    calibrated,
                    &rows,
                ) {
                    Ok(estimated) => {
                        self.results.write_performance(&estimated.report).await?;
                        let outcome = EstimateOutcome {
                            measured: true,
                            rows: estimated.report.labelled_rows,
                            method: Some(estimated.method),
                            calibration: estimated.calibration,
                            message: None,
                        };
                        match judged {
                            None => judged = Some(estimated.report),
                            Some(_) => {
                                self.events
                                    .performance_measured(&estimated.report, None)
                                    .await
                            }
                        }
                        outcome
                    }
                    Err(not) => EstimateOutcome {
                        measured: false,
                        rows: not.labelled_rows,
                        method: None,
                        calibration: None,
                        message: Some(not.message),
                    },
                },
            );
        }
        let Some(report) = judged else {
            outcome.performance = Some(measured);
            return Ok(());
        };
        let open_retrain = self
            .open_recommendations(model, Some(version), Some(RecommendationKind::Retrain))
            .await?;
        let decided = decision::decide_performance(performance, &report, &open_retrain);
        self.events
            .performance_measured(&report, Some(decided.breaches.len()))
            .await;
        measured.breaches = decided.breaches;
        outcome.performance = Some(measured);
        self.carry_out(outcome, model, version, decided.actions, None)
            .await
    }

    /// Multivariate drift of the current window against the reference
    /// over the policy's features, read row by row. The fitted reference
    /// is kept while the reference's row count stays the same.
    async fn measure_multivariate(
        &self,
        state: &mut State,
        policy: &modelwatch_types::MultivariatePolicy,
        tested: &FeatureSet,
        reference: (&Window, &str),
        current: &Window,
    ) -> Result<crate::multivariate::MultivariateOutcome> {
        let features = crate::multivariate::features(policy, tested);
        if let Err(message) = crate::multivariate::check(&features) {
            return Ok(crate::multivariate::not_measured(&features, message));
        }
        let (window, source) = reference;
        let columns = RowColumns::with_features(features.clone(), false);
        let key = (
            window.model.clone(),
            window.version.clone(),
            format!(
                "{source}:{:?}:{:?}:{}",
                window.range, features, policy.variance_kept
            ),
        );
        let rows = self.reader.count_rows(window).await?;
        let fitted = match cached(&state.multivariate_fits, &key, rows) {
            Some(fitted) => fitted,
            None => {
                let reference_rows = self.reader.outcomes(window, &columns).await?;
                let fitted = Arc::new(crate::multivariate::fit(policy, &reference_rows.features));
                remember(&mut state.multivariate_fits, key, rows, fitted.clone());
                fitted
            }
        };
        let current_rows = self.reader.outcomes(current, &columns).await?;
        Ok(crate::multivariate::measure(
            &features,
            &fitted,
            &current_rows.features,
        ))
    }

    /// What estimation fits on the version's labelled reference data, and
    /// the features it reads; kept while the reference's row count and the
    /// settings hold.
    async fn calibration(
        &self,
        state: &mut State,
        performance: &modelwatch_types::PerformancePolicy,
        alias: &Alias,
    ) -> Result<Arc<Calibration>> {
        let reference_window = Window::reference(&alias.model, alias.version);
        let key = (
            alias.model.clone(),
            alias.version.to_string(),
            format!(
                "{:?}",
                (
                    performance.task,
                    &performance.positive_class,
                    performance.threshold,
                    performance.min_labels,
                    &performance.class_scores,
                    &performance.estimate_features,
                )
            ),
        );
        let rows = self.reader.count_rows(&reference_window).await?;
        Ok(match cached(&state.calibrations, &key, rows) {
            Some(calibrated) => calibrated,
            None => {
                // DLE reads every feature of the reference unless the
                // policy names them; found once per fit, not per window.
                let discovered = if performance.task
                    == modelwatch_types::PerformanceTask::Regression
                    && performance.estimate_features.is_empty()
                {
                    self.reader.discover_features(&reference_window).await?
                } else {
                    FeatureSet::new()
                };
                let features = crate::performance::estimate_columns(performance, &discovered);
                let reference = self
                    .reader
                    .outcomes(
                        &reference_window,
                        &RowColumns::with_features(features.clone(), true),
                    )
                    .await?;
                let calibrated = Arc::new((
                    features,
                    crate::performance::calibrate(performance, &reference),
                ));
                remember(&mut state.calibrations, key, rows, calibrated.clone());
                calibrated
            }
        })
    }

    /// The drift half: the version's health word, or why it was skipped.
    async fn evaluate_drift(
        &self,
        state: &mut State,
        policy: &MonitoringPolicy,
        alias: &Alias,
        now: DateTime<Utc>,
        outcome: &mut VersionOutcome,
    ) -> Result<Result<Health, Skip>> {
        let (model, version) = (alias.model.as_str(), alias.version);
        let record = self.registry.get_version(model, version).await?;
        let reference_plan = match decision::plan_reference(policy, alias, now) {
            Ok(p) => p,
            Err(skip) => return Ok(Err(skip)),
        };
        let mut features = match decision::features_to_test(policy, &record.features) {
            Some(f) => f,
            None => {
                self.reader
                    .discover_features(&reference_plan.window)
                    .await?
            }
        };
        decision::add_prediction(policy, &mut features);
        if let Err(skip) = decision::check_features(version, &features) {
            return Ok(Err(skip));
        }
        let reference = self
            .reference_profile(
                state,
                &reference_plan.window,
                reference_plan.source,
                &features,
            )
            .await?;
        decision::resolve_kinds(&mut features, &reference);
        let window = (
            decision::time_before(now, policy.current_window.as_chrono()),
            now,
        );
        let current = self
            .reader
            .profile(&window_of(model, version, window), &features)
            .await?;
        if let Err(skip) = decision::check_rows(policy, current.rows, reference.rows) {
            return Ok(Err(skip));
        }

        let report = decision::run_report(policy, &reference, &current);
        let inputs = decision::feature_inputs(&report, &features, &reference, &current);
        let multivariate = match &policy.multivariate {
            Some(mv) => Some(
                self.measure_multivariate(
                    state,
                    mv,
                    &features,
                    (&reference_plan.window, reference_plan.source),
                    &window_of(model, version, window),
                )
                .await?,
            ),
            None => None,
        };
        let quality = decision::data_quality(&report, &reference, &current);
        if let Some(limits) = &policy.data_quality {
            outcome.data_quality_breaches = decision::quality_breaches(limits, &quality);
            self.events
                .data_quality_judged(model, version, outcome.data_quality_breaches.len())
                .await;
        }
        let evaluation_id = decision::evaluation_id(model, version, now);
        let key = EvaluationKey {
            evaluation_id: &evaluation_id,
            model,
            version,
            alias: &alias.alias,
            window,
            reference_source: reference_plan.source,
        };
        let previous = match state.consecutive.get(&(model.to_string(), version)) {
            Some(n) => *n,
            None => decision::leading_drifted(
                &self
                    .reader
                    .recent_dataset_drift(&key, policy.persistence as usize)
                    .await?,
            ),
        };
        let open_retrain = self
            .open_recommendations(model, Some(version), Some(RecommendationKind::Retrain))
            .await?;
        let decided = decision::decide_drift(
            policy,
            DriftState {
                consecutive: previous,
                open_retrain: &open_retrain,
            },
            &DriftMeasurement {
                evaluation_id: &evaluation_id,
                now,
                alias: &alias.alias,
                window,
                current_rows: current.rows,
                reference: &reference_plan,
                reference_rows: reference.rows,
                report: &report,
                inputs: &inputs,
                multivariate: multivariate.as_ref(),
            },
        );
        state
            .consecutive
            .insert((model.to_string(), version), decided.consecutive);
        outcome.status = Outcome::Evaluated;
        outcome.evaluation_id = Some(evaluation_id.clone());
        outcome.drifted_share = Some(report.drifted_share);
        outcome.dataset_drift = Some(report.dataset_drift);
        outcome.consecutive_drifted = decided.consecutive;
        outcome.drifted_features = decided.drifted_features.clone();
        outcome.multivariate = multivariate.clone();
        tracing::debug!(
            evaluation_id,
            drifted_share = report.drifted_share,
            dataset_drift = report.dataset_drift,
            consecutive = decided.consecutive,
            "drift measured"
        );

        let drift = DriftCarry {
            key,
            report: &report,
            inputs: &inputs,
            quality: &quality,
            multivariate: multivariate.as_ref(),
            evidence: &decided.evidence,
        };
        self.carry_out(outcome, model, version, decided.actions, Some(&drift))
            .await?;
        Ok(Ok(decided.health))
    }

    /// The reference profile, rebuilt only when its row count changed.
    async fn reference_profile(
        &self,
        state: &mut State,
        window: &Window,
        source: &str,
        features: &FeatureSet,
    ) -> Result<Arc<Profile>> {
        let key = (
            window.model.clone(),
            window.version.clone(),
            format!("{source}:{:?}:{:?}", window.range, features),
        );
        let rows = self.reader.count_rows(window).await?;
        if let Some(profile) = cached(&state.references, &key, rows) {
            return Ok(profile);
        }
        let profile = Arc::new(self.reader.profile(window, features).await?);
        // Within the cache's budget, counting only the versions still
        // being evaluated (a reference over it is rebuilt each evaluation).
        state
            .references
            .retain(|k, _| !(k.0 == key.0 && k.1 != key.1));
        let others: usize = state
            .references
            .iter()
            .filter(|(k, _)| **k != key)
            .map(|(_, c)| c.value.numeric_values())
            .sum();
        if others + profile.numeric_values() > REFERENCE_CACHE_VALUES {
            state.references.remove(&key);
            return Ok(profile);
        }
        remember(&mut state.references, key, rows, profile.clone());
        Ok(profile)
    }

    /// The rollback half: the verdict when there was something to judge.
    async fn judge_rollback(
        &self,
        state: &mut State,
        policy: &RollbackPolicy,
        alias: &Alias,
        now: DateTime<Utc>,
        outcome: &mut VersionOutcome,
    ) -> Result<Option<Verdict>> {
        let Some(deployment) = decision::deployment_to_judge(alias) else {
            return Ok(None);
        };
        let judged_key = (
            deployment.model.clone(),
            deployment.alias.clone(),
            deployment.moved_at,
        );
        if state.judged.contains(&judged_key) {
            return Ok(None);
        }
        let earlier = self
            .registry
            .list_recommendations(
                &RecommendationFilter {
                    model: Some(deployment.model.clone()),
                    version: Some(deployment.version),
                    kind: Some(RecommendationKind::Rollback),
                    status: None,
                },
                &PageRequest::new(Some(1000), None)?,
            )
            .await?;
        if decision::judged_before(&deployment, &earlier.items) {
            state.judged.insert(judged_key);
            return Ok(None);
        }

        let windows = decision::judge_windows(policy, &deployment, now);
        let span_name = policy.span_name.as_deref();
        let latency = match &policy.latency {
            None => None,
            Some(source) => Some((
                self.reader
                    .latencies(&windows.baseline, source, span_name)
                    .await?,
                self.reader
                    .latencies(&windows.canary, source, span_name)
                    .await?,
            )),
        };
        let errors = match &policy.errors {
            None => None,
            Some(source) => {
                let (be, bt) = self
                    .reader
                    .error_counts(&windows.baseline, source, span_name)
                    .await?;
                let (ce, ct) = self
                    .reader
                    .error_counts(&windows.canary, source, span_name)
                    .await?;
                Some(decision::ErrorCounts {
                    baseline_errors: be,
                    baseline_requests: bt,
                    canary_errors: ce,
                    canary_requests: ct,
                })
            }
        };
        let decided = decision::decide_judge(
            policy,
            &deployment,
            &windows,
            &JudgeMeasurement { latency, errors },
        )?;
        if decided.final_verdict {
            state.judged.insert(judged_key);
        }
        self.carry_out(
            outcome,
            &deployment.model,
            deployment.version,
            decided.actions,
            None,
        )
        .await?;
        if decided.verdict == Verdict::Fail && !policy.automatic {
            tracing::warn!(
                model = %deployment.model,
                alias = %deployment.alias,
                version = deployment.version,
                "rollback recommended"
            );
        }
        Ok(Some(decided.verdict))
    }

    /// Carries `actions` out in order on `version` of `model`, recording
    /// every recommendation change in `outcome`. `drift` is what
    /// [`Action::RecordResults`] and [`Action::NotifyDrift`] need.
    async fn carry_out(
        &self,
        outcome: &mut VersionOutcome,
        model: &str,
        version: i64,
        actions: Vec<Action>,
        drift: Option<&DriftCarry<'_>>,
    ) -> Result<()> {
        // The recommendation raised last: what a rollback applies.
        let mut raised: Option<Recommendation> = None;
        for action in actions {
            // Raising again while one is open refreshes it (the registry
            // keeps one open recommendation per kind).
            let change = match action {
                Action::RefreshRecommendation { .. } => Change::Updated,
                _ => Change::Raised,
            };
            match action {
                Action::RecordResults => {
                    let d = drift.expect("drift actions come with their measurements");
                    self.results
                        .write(
                            &d.key,
                            &crate::ports::DriftResults {
                                report: d.report,
                                inputs: d.inputs,
                                quality: d.quality,
                                multivariate: d.multivariate.and_then(|m| m.drift.as_ref()),
                            },
                        )
                        .await?;
                    self.events.drift_measured(model, version, d.report).await;
                    if let Some(mv) = d.multivariate {
                        self.events
                            .multivariate_measured(model, version, mv.drift.as_ref())
                            .await;
                    }
                }
                Action::NotifyDrift => {
                    let d = drift.expect("drift actions come with their measurements");
                    self.events.drift_detected(model, version, d.evidence).await;
                }
                Action::RaiseRecommendation {
                    kind,
                    severity,
                    reason,
                    evidence,
                }
                | Action::RefreshRecommendation {
                    kind,
                    severity,
                    reason,
                    evidence,
                    ..
                } => {
                    let rec = self
                        .raise(model, version, kind, severity, reason, evidence)
                        .await?;
                    self.record(outcome, model, &rec, change).await;
                    raised = Some(rec);
                }
                Action::SupersedeRecommendation {
                    id,
                    version: on,
                    kind,
                    note,
                } => {
                    self.registry
                        .transition_recommendation(&self.actor, id, Transition::Supersede, &note)
                        .await?;
                    self.record_change(
                        outcome,
                        model,
                        RecommendationAction {
                            id,
                            version: on,
                            kind,
                            action: Change::Superseded,
                        },
                    )
                    .await;
                }
                Action::Rollback {
                    alias,
                    from_version,
                    to_version: _,
                    reason,
                } => {
                    let Some(rec) = raised.take() else {
                        unreachable!("decide_judge raises the recommendation before a rollback")
                    };
                    let moved = self
                        .registry
                        .rollback_alias(
                            &self.actor,
                            model,
                            &alias,
                            &format!("automatic rollback, recommendation {}: {reason}", rec.id),
                        )
                        .await?;
                    let note = format!(
                        "alias {alias:?} moved back from version {from_version} to version {} \
                         automatically (policy rollback.automatic)",
                        moved.version
                    );
                    self.registry
                        .transition_recommendation(&self.actor, rec.id, Transition::Apply, &note)
                        .await?;
                    self.record(outcome, model, &rec, Change::Applied).await;
                    tracing::warn!(model, alias = %alias, from = from_version, to = moved.version, recommendation = rec.id, "automatic rollback");
                    self.events
                        .rollback_done(&RollbackDone {
                            model: model.to_string(),
                            alias,
                            from_version,
                            to_version: moved.version,
                            recommendation: rec.id,
                        })
                        .await;
                }
                Action::SetTags { version, tags } => self.set_tags(model, version, tags).await?,
            }
        }
        Ok(())
    }

    async fn raise(
        &self,
        model: &str,
        version: i64,
        kind: RecommendationKind,
        severity: modelwatch_types::Severity,
        reason: String,
        evidence: serde_json::Value,
    ) -> Result<Recommendation> {
        Ok(self
            .registry
            .raise_recommendation(
                &self.actor,
                model,
                version,
                modelwatch_registry::NewRecommendation {
                    kind,
                    severity,
                    reason,
                    evidence,
                },
            )
            .await?)
    }

    async fn record(
        &self,
        outcome: &mut VersionOutcome,
        model: &str,
        rec: &Recommendation,
        change: Change,
    ) {
        self.record_change(
            outcome,
            model,
            RecommendationAction {
                id: rec.id,
                version: rec.version,
                kind: rec.kind,
                action: change,
            },
        )
        .await;
    }

    async fn record_change(
        &self,
        outcome: &mut VersionOutcome,
        model: &str,
        action: RecommendationAction,
    ) {
        tracing::info!(
            recommendation = action.id,
            version = action.version,
            kind = %action.kind,
            action = %action.action,
            "recommendation changed"
        );
        self.events.recommendation_changed(model, &action).await;
        outcome.recommendations.push(action);
    }

    async fn open_recommendations(
        &self,
        model: &str,
        version: Option<i64>,
        kind: Option<RecommendationKind>,
    ) -> Result<Vec<Recommendation>> {
        let filter = RecommendationFilter {
            model: Some(model.to_string()),
            version,
            kind,
            status: Some(RecommendationStatus::Open),
        };
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let page = self
                .registry
                .list_recommendations(&filter, &PageRequest::new(Some(1000), cursor)?)
                .await?;
            out.extend(page.items);
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => return Ok(out),
            }
        }
    }

    /// Sets the health and recommendation tags when they changed (each
    /// change is an audited registry write). `health: None` leaves the
    /// health tag as it is.
    async fn mirror_tags(&self, model: &str, version: i64, health: Option<Health>) -> Result<()> {
        let record = self.registry.get_version(model, version).await?;
        let open = self
            .open_recommendations(model, Some(version), None)
            .await?;
        let kinds = decision::open_kinds(&open);
        self.events
            .open_recommendations(model, version, &kinds)
            .await;
        if let Some(Action::SetTags { version, tags }) =
            decision::decide_tags(version, &record.tags, &kinds, health)
        {
            self.set_tags(model, version, tags).await?;
        }
        Ok(())
    }

    async fn set_tags(&self, model: &str, version: i64, tags: Vec<(String, String)>) -> Result<()> {
        let target = TagTarget::Version {
            model: model.to_string(),
            version,
        };
        for (key, value) in tags {
            self.registry
                .set_tag(&self.actor, &target, &key, Some(&value))
                .await?;
        }
        Ok(())
    }
}

/// What the drift actions need to be carried out.
struct DriftCarry<'a> {
    key: EvaluationKey<'a>,
    report: &'a modelwatch_drift::DriftReport,
    inputs: &'a [decision::FeatureInputs],
    quality: &'a [decision::QualityRow],
    multivariate: Option<&'a crate::multivariate::MultivariateOutcome>,
    evidence: &'a serde_json::Value,
}

/// The current window of `version` of `model`.
fn window_of(model: &str, version: i64, (from, to): (DateTime<Utc>, DateTime<Utc>)) -> Window {
    Window::current(model, version, from, to)
}

/// A request to run a cycle now (from `POST /api/v1/evaluate`).
struct CycleRequest {
    model: Option<String>,
    reply: oneshot::Sender<Result<CycleReport>>,
}

/// Handle to the running evaluator.
#[derive(Clone)]
pub struct EvaluatorHandle {
    requests: mpsc::Sender<CycleRequest>,
}

impl EvaluatorHandle {
    /// Runs a forced cycle (every watched model, or one) and returns its
    /// report.
    pub async fn evaluate_now(&self, model: Option<String>) -> Result<CycleReport> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(CycleRequest { model, reply })
            .await
            .map_err(|_| EvalError::Stopped)?;
        answer.await.map_err(|_| EvalError::Stopped)?
    }
}

/// How often the loop checks for due policies.
const TICK: Duration = Duration::from_secs(1);

/// The evaluator thread's nice value: the kernel schedules ingestion and
/// query threads first whenever they compete for a core, and the evaluator
/// takes what is left (threads it starts, e.g. blocking reads, inherit it).
pub const EVALUATOR_NICE: i32 = 19;

fn lower_priority() {
    let tid = rustix::thread::gettid();
    match rustix::process::setpriority_process(Some(tid), EVALUATOR_NICE) {
        Ok(()) => tracing::debug!(nice = EVALUATOR_NICE, "evaluator thread priority lowered"),
        // Not fatal: the evaluator still works, it just competes as an equal.
        Err(e) => tracing::warn!(error = %e, "cannot lower the evaluator thread's priority"),
    }
}

/// Starts the evaluator on its own thread and single-threaded runtime. It
/// stops when `stop` turns true; join the thread to wait for the cycle in
/// progress. `alive` is held by the thread for as long as it runs (the
/// server's duty guard, which reports the evaluator dead when dropped).
/// Scheduled cycles run only while `active()` is true (the server: while
/// this daemon holds the evaluator's lease, so one daemon of several
/// evaluates); a cycle asked for through the handle always runs.
pub fn spawn<G: Send + 'static>(
    evaluator: Arc<Evaluator>,
    mut stop: watch::Receiver<bool>,
    alive: G,
    active: impl Fn() -> bool + Send + 'static,
) -> std::io::Result<(EvaluatorHandle, std::thread::JoinHandle<()>)> {
    let (tx, mut rx) = mpsc::channel::<CycleRequest>(16);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("evaluator")
        .build()?;
    let thread = std::thread::Builder::new()
        .name("evaluator".into())
        .spawn(move || {
            let _alive = alive;
            lower_priority();
            runtime.block_on(async move {
                let mut tick = tokio::time::interval(TICK);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                loop {
                    tokio::select! {
                        _ = stop.wait_for(|s| *s) => break,
                        _ = tick.tick() => {
                            if !active() {
                                continue;
                            }
                            if let Err(e) = evaluator.run_cycle(None, false).await {
                                tracing::warn!(error = %e, "evaluation cycle failed");
                            }
                        }
                        Some(req) = rx.recv() => {
                            let report = evaluator.run_cycle(req.model.as_deref(), true).await;
                            let _ = req.reply.send(report);
                        }
                    }
                }
            })
        })?;
    Ok((EvaluatorHandle { requests: tx }, thread))
}

/// The current window of a watched version at `now`, and the id of its
/// evaluation: what the performance and fairness steps share.
struct CurrentWindow {
    range: (DateTime<Utc>, DateTime<Utc>),
    evaluation_id: String,
}

impl CurrentWindow {
    fn of(policy: &MonitoringPolicy, alias: &Alias, now: DateTime<Utc>) -> Self {
        CurrentWindow {
            range: (
                decision::time_before(now, policy.current_window.as_chrono()),
                now,
            ),
            evaluation_id: decision::evaluation_id(&alias.model, alias.version, now),
        }
    }

    fn window(&self, alias: &Alias) -> Window {
        Window::current(&alias.model, alias.version, self.range.0, self.range.1)
    }

    fn context<'a>(&'a self, alias: &'a Alias) -> crate::performance::PerformanceContext<'a> {
        crate::performance::PerformanceContext {
            evaluation_id: &self.evaluation_id,
            model: &alias.model,
            version: alias.version,
            alias: &alias.alias,
            window: self.range,
        }
    }
}

#[cfg(test)]
mod tests;
