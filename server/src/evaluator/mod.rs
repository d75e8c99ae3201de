//! The evaluator: closes the loop from telemetry back into the registry.
//!
//! Every cycle, for each model with a monitoring policy whose interval has
//! elapsed (by the injected clock), it takes the version the policy's alias
//! points at and
//! 1. builds the current window's feature distributions and the reference
//!    profile (cached) from the history with DataFusion ([`data`]; numeric
//!    features as uniform samples of at most 20,000 values), runs the
//!    drift report (`modelwatch-drift`), appends every per-feature result to
//!    `drift_results` ([`results`]), and raises, refreshes or supersedes the
//!    version's `retrain` recommendation (K consecutive drifted evaluations);
//! 2. when the policy has a `rollback` section and the alias's last move was
//!    a deployment, judges the new version against the one it replaced on
//!    latency and error rate, raises a `rollback` recommendation on a failing
//!    verdict and, if the policy allows it, moves the alias back;
//! 3. mirrors health and open recommendations into the version's tags
//!    (`modelwatch.health`, `modelwatch.recommendation`) and `/metrics`.
//!
//! It runs on its own single-threaded Tokio runtime ([`spawn`]) on a thread
//! at the lowest scheduling priority (nice 19): queries and statistics never
//! take a worker from the runtime that serves ingestion, and when the cores
//! are busy the kernel runs ingestion first.
//! Cycles are serialised (one at a time, versions one after another), which
//! bounds its CPU to one core. It holds no state that matters across a
//! restart: consecutive-drift counts are re-read from `drift_results`, and a
//! rollback is never raised twice for the same alias move.
//!
//! It must not parse requests or format responses (handlers do), nor
//! compute statistics itself (the drift crate does).

pub mod data;
pub mod results;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;

use chrono::{DateTime, SecondsFormat, Utc};
use datafusion::error::DataFusionError;
use datafusion::prelude::{SessionContext, col, lit};
use modelwatch_drift::canary::{self, CanaryConfig, CanaryMetric, CanaryVerdict, Direction};
use modelwatch_drift::{FeatureSpec, ReportConfig, evaluate_features};
use modelwatch_history::{HistoryStore, WriteSet};
use modelwatch_registry::policy::{ErrorSource, LatencySource, ReferenceSource, RollbackPolicy};
use modelwatch_registry::{
    Actor, Alias, FeatureKind, MonitoringPolicy, MoveKind, NewRecommendation, PageRequest,
    PolicyRecord, RecommendationFilter, RecommendationKind, RecommendationStatus, RegistryStore,
    Role, Severity, TagTarget, Transition,
};
use modelwatch_types::Clock;
use serde::Serialize;
use serde_json::json;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::Instrument;

use self::data::{FeatureValues, Profile, Traffic, Window};

/// The actor name of everything the evaluator changes (audit, recommendations).
pub const EVALUATOR_ACTOR: &str = "evaluator";
/// Version tag mirroring the latest evaluation: `healthy`, `drifting`,
/// `degraded` (failed rollback judge) or `insufficient_data`.
pub const HEALTH_TAG: &str = "modelwatch.health";
/// Version tag listing the open recommendation kinds (`retrain,rollback`) or
/// `none`.
pub const RECOMMENDATION_TAG: &str = "modelwatch.recommendation";
/// Significance level of the error-rate comparison.
const ERROR_RATE_ALPHA: f64 = 0.01;

/// Why an evaluation failed.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("history query failed: {0}")]
    Query(#[from] DataFusionError),
    #[error(transparent)]
    Registry(#[from] modelwatch_registry::Error),
    #[error("could not store drift results: {0}")]
    History(#[from] modelwatch_history::Error),
    #[error("invalid monitoring policy: {0}")]
    Policy(String),
    #[error("the evaluator is not running (the daemon is shutting down)")]
    Stopped,
    #[error(
        "the evaluation panicked: {0}; this is a modelwatch bug, the daemon's log has the details"
    )]
    Panicked(String),
}

/// `t + d`, or the latest representable time (policies bound their periods,
/// so this only guards against what validation missed).
fn time_after(t: DateTime<Utc>, d: chrono::Duration) -> DateTime<Utc> {
    t.checked_add_signed(d).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `t − d`, or the earliest representable time.
fn time_before(t: DateTime<Utc>, d: chrono::Duration) -> DateTime<Utc> {
    t.checked_sub_signed(d).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Something that wants to hear about drift (outbound webhooks).
#[async_trait::async_trait]
pub trait DriftListener: Send + Sync + 'static {
    /// A version's evaluation found dataset drift; `data` is the evidence.
    async fn drift_detected(&self, model: &str, version: i64, data: serde_json::Value);
}

/// What one cycle did, per watched version.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct CycleReport {
    pub started_at: DateTime<Utc>,
    pub duration_ms: f64,
    pub versions: Vec<VersionOutcome>,
}

/// One watched alias's evaluation.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct VersionOutcome {
    pub model: String,
    pub alias: String,
    /// The alias's target; absent when the alias is not set.
    pub version: Option<i64>,
    /// `evaluated`, `not_enough_data`, `baseline_pending`, `no_alias` or
    /// `error`.
    pub status: String,
    /// Why, for anything but `evaluated`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evaluation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drifted_share: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset_drift: Option<bool>,
    pub consecutive_drifted: u32,
    pub drifted_features: Vec<String>,
    /// Rollback judge: `pass`, `fail`, `marginal`, `pending`,
    /// `not_enough_data`, or absent when not judged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback_verdict: Option<String>,
    /// Recommendations raised, refreshed, applied or superseded.
    pub recommendations: Vec<RecommendationAction>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RecommendationAction {
    pub id: i64,
    pub version: i64,
    pub kind: RecommendationKind,
    /// `raised`, `updated`, `applied` or `superseded`.
    pub action: String,
}

/// A cached reference profile and the row count it was built from.
struct CachedReference {
    rows_seen: u64,
    profile: Arc<Profile>,
}

#[derive(Default)]
struct State {
    next_due: HashMap<String, DateTime<Utc>>,
    consecutive: HashMap<(String, i64), u32>,
    /// `(model, version, source/range/features)` → profile.
    references: HashMap<(String, String, String), CachedReference>,
    /// Alias moves whose rollback verdict is final: `(model, alias, move time)`.
    judged: HashSet<(String, String, DateTime<Utc>)>,
}

/// The evaluator. Construct with [`Evaluator::new`], run with [`spawn`] or
/// call [`Evaluator::run_cycle`] directly (tests, benchmarks).
pub struct Evaluator {
    registry: Arc<dyn RegistryStore>,
    history: HistoryStore,
    clock: Arc<dyn Clock>,
    actor: Actor,
    listener: Option<Arc<dyn DriftListener>>,
    state: tokio::sync::Mutex<State>,
}

impl Evaluator {
    pub fn new(
        registry: Arc<dyn RegistryStore>,
        history: HistoryStore,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            registry,
            history,
            clock,
            actor: Actor::new(EVALUATOR_ACTOR, Role::Admin),
            listener: None,
            state: Default::default(),
        }
    }

    /// Tells `listener` about every drifted evaluation.
    pub fn with_listener(mut self, listener: Arc<dyn DriftListener>) -> Self {
        self.listener = Some(listener);
        self
    }

    /// Evaluates every watched model whose interval has elapsed (all of
    /// them with `force`), or only `model`. Cycles run one at a time.
    pub async fn run_cycle(
        &self,
        model: Option<&str>,
        force: bool,
    ) -> Result<CycleReport, EvalError> {
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
            // and metrics.
            let listed: HashSet<String> = policies.iter().map(|p| p.model.clone()).collect();
            state.next_due.retain(|m, _| listed.contains(m));
            crate::metrics::forget_unwatched(&listed);
        }
        for rec in policies {
            if !force && state.next_due.get(&rec.model).is_some_and(|due| *due > now) {
                continue;
            }
            state.next_due.insert(
                rec.model.clone(),
                time_after(now, rec.policy.interval.as_chrono()),
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
                // A panic in one model's evaluation is that model's error,
                // not the end of the evaluator.
                Ok(()) => AssertUnwindSafe(
                    self.evaluate_model(&mut state, &rec, now)
                        .instrument(span.clone()),
                )
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| {
                    Err(EvalError::Panicked(crate::duties::panic_message(&*panic)))
                }),
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
                    VersionOutcome {
                        model: rec.model.clone(),
                        alias: rec.policy.alias.clone(),
                        status: "error".into(),
                        message: Some(e.to_string()),
                        ..Default::default()
                    }
                }
            };
            crate::metrics::record_evaluation(
                &outcome,
                now,
                rec.policy.interval.duration(),
                version_started.elapsed(),
            );
            report.versions.push(outcome);
        }
        report.duration_ms = started.elapsed().as_secs_f64() * 1e3;
        crate::metrics::record_cycle(started.elapsed());
        Ok(report)
    }

    async fn evaluate_model(
        &self,
        state: &mut State,
        rec: &PolicyRecord,
        now: DateTime<Utc>,
    ) -> Result<VersionOutcome, EvalError> {
        let (model, policy) = (rec.model.as_str(), &rec.policy);
        let mut outcome = VersionOutcome {
            model: model.to_string(),
            alias: policy.alias.clone(),
            ..Default::default()
        };
        let alias = match self.registry.get_alias(model, &policy.alias).await {
            Ok(a) => a,
            Err(modelwatch_registry::Error::NotFound { .. }) => {
                outcome.status = "no_alias".into();
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
        self.supersede_other_versions(model, &alias, &mut outcome)
            .await?;

        let ctx = self.history.session_context()?;
        let mut health = self
            .evaluate_drift(state, &ctx, policy, &alias, now, &mut outcome)
            .await?;
        if let Some(rollback) = &policy.rollback {
            let verdict = self
                .judge_rollback(state, &ctx, rollback, &alias, now, &mut outcome)
                .await?;
            if verdict.as_deref() == Some("fail") {
                health = "degraded";
            }
            outcome.rollback_verdict = verdict;
        }
        self.mirror_tags(model, version, Some(health)).await?;
        Ok(outcome)
    }

    /// Supersedes the evaluator's open recommendations on the model's other
    /// versions: a newer version took the alias, so they no longer apply.
    async fn supersede_other_versions(
        &self,
        model: &str,
        alias: &Alias,
        outcome: &mut VersionOutcome,
    ) -> Result<(), EvalError> {
        let open = self
            .open_recommendations(model, None, None)
            .await?
            .into_iter()
            .filter(|r| r.version != alias.version && r.raised_by == EVALUATOR_ACTOR);
        for r in open {
            let note = format!(
                "version {} took alias {:?}; this recommendation was about version {}",
                alias.version, alias.alias, r.version
            );
            self.transition(outcome, &r, Transition::Supersede, &note)
                .await?;
            // Its health stays what its last evaluation said.
            self.mirror_tags(model, r.version, None).await?;
        }
        Ok(())
    }

    /// Raises (or, when one is open, refreshes) a recommendation and records
    /// it in the outcome.
    async fn raise(
        &self,
        outcome: &mut VersionOutcome,
        model: &str,
        version: i64,
        new: NewRecommendation,
        refreshes_open: bool,
    ) -> Result<modelwatch_registry::Recommendation, EvalError> {
        let kind = new.kind;
        let rec = self
            .registry
            .raise_recommendation(&self.actor, model, version, new)
            .await?;
        outcome.recommendations.push(RecommendationAction {
            id: rec.id,
            version,
            kind,
            action: if refreshes_open { "updated" } else { "raised" }.into(),
        });
        Ok(rec)
    }

    /// Moves a recommendation along its lifecycle and records it in the
    /// outcome.
    async fn transition(
        &self,
        outcome: &mut VersionOutcome,
        rec: &modelwatch_registry::Recommendation,
        transition: Transition,
        note: &str,
    ) -> Result<(), EvalError> {
        self.registry
            .transition_recommendation(&self.actor, rec.id, transition, note)
            .await?;
        let action = match transition {
            Transition::Acknowledge => "acknowledged",
            Transition::Apply => "applied",
            Transition::Dismiss => "dismissed",
            Transition::Supersede => "superseded",
        };
        outcome.recommendations.push(RecommendationAction {
            id: rec.id,
            version: rec.version,
            kind: rec.kind,
            action: action.into(),
        });
        Ok(())
    }

    async fn open_recommendations(
        &self,
        model: &str,
        version: Option<i64>,
        kind: Option<RecommendationKind>,
    ) -> Result<Vec<modelwatch_registry::Recommendation>, EvalError> {
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

    /// The drift half; returns the health word for the tag.
    async fn evaluate_drift(
        &self,
        state: &mut State,
        ctx: &SessionContext,
        policy: &MonitoringPolicy,
        alias: &Alias,
        now: DateTime<Utc>,
        outcome: &mut VersionOutcome,
    ) -> Result<&'static str, EvalError> {
        let (model, version) = (alias.model.as_str(), alias.version);
        let record = self.registry.get_version(model, version).await?;

        let (reference_window, source) = match policy.reference {
            ReferenceSource::ReferenceData => (Window::reference(model, version), "reference_data"),
            ReferenceSource::BaselineWindow => {
                let since = became_target(alias, version).unwrap_or(alias.updated_at);
                let until = time_after(since, policy.baseline_window.as_chrono());
                if now < until {
                    outcome.status = "baseline_pending".into();
                    outcome.message = Some(format!(
                        "the baseline window after version {version} took the alias ends at {}",
                        until.to_rfc3339_opts(SecondsFormat::Secs, true)
                    ));
                    return Ok("insufficient_data");
                }
                (
                    Window::current(model, version, since, until),
                    "baseline_window",
                )
            }
        };

        // Which features, and of which kind.
        let mut features: BTreeMap<String, Option<FeatureKind>> = if !policy.features.is_empty() {
            policy
                .features
                .keys()
                .map(|k| (k.clone(), record.features.get(k).copied()))
                .collect()
        } else if !record.features.is_empty() {
            record
                .features
                .iter()
                .map(|(k, kind)| (k.clone(), Some(*kind)))
                .collect()
        } else {
            data::discover_features(ctx, &reference_window).await?
        };
        if features.is_empty() {
            outcome.status = "not_enough_data".into();
            outcome.message = Some(format!(
                "no features to test for version {version}: declare them on the version, \
                 upload reference data, or list them in the policy"
            ));
            return Ok("insufficient_data");
        }

        let reference = self
            .reference_profile(state, ctx, &reference_window, source, &features)
            .await?;
        // The reference decides the kind of undeclared features, so both
        // sides are read the same way.
        for (name, kind) in features.iter_mut() {
            if kind.is_none() {
                *kind = Some(match reference.features.get(name) {
                    Some(FeatureValues::Categorical(_)) => FeatureKind::Categorical,
                    _ => FeatureKind::Numeric,
                });
            }
        }
        let window_end = now;
        let window_start = time_before(now, policy.current_window.as_chrono());
        let current = data::profile(
            ctx,
            &Window::current(model, version, window_start, window_end),
            &features,
        )
        .await?;
        if current.rows < policy.min_rows || reference.rows < policy.min_rows {
            outcome.status = "not_enough_data".into();
            outcome.message = Some(format!(
                "{} current rows and {} reference rows; the policy needs {} of each (min_rows)",
                current.rows, reference.rows, policy.min_rows
            ));
            return Ok("insufficient_data");
        }

        let report = run_report(policy, &reference, &current);
        let evaluation_id = format!(
            "{model}/{version}/{}",
            now.to_rfc3339_opts(SecondsFormat::Millis, true)
        );
        let kinds: Vec<&str> = report
            .features
            .iter()
            .map(|f| match features.get(&f.name) {
                Some(Some(FeatureKind::Categorical)) => "categorical",
                _ => "numeric",
            })
            .collect();
        let batch = results::batch(
            &results::EvaluationKey {
                evaluation_id: &evaluation_id,
                model,
                version,
                alias: &alias.alias,
                window: (window_start, window_end),
                reference_source: source,
            },
            &report,
            &kinds,
        )
        .map_err(|e| EvalError::Query(e.into()))?;
        self.history
            .write(WriteSet::new().with(results::DRIFT_RESULTS, batch))
            .await?;
        crate::metrics::record_drift(model, version, &report);

        let key = (model.to_string(), version);
        let previous = match state.consecutive.get(&key) {
            Some(n) => *n,
            None => {
                self.consecutive_from_history(
                    ctx,
                    model,
                    version,
                    &evaluation_id,
                    policy.persistence,
                )
                .await?
            }
        };
        let consecutive = if report.dataset_drift {
            previous + 1
        } else {
            0
        };
        state.consecutive.insert(key, consecutive);

        let drifted: Vec<String> = report
            .features
            .iter()
            .filter(|f| f.result.drifted())
            .map(|f| f.name.clone())
            .collect();
        outcome.status = "evaluated".into();
        outcome.evaluation_id = Some(evaluation_id.clone());
        outcome.drifted_share = Some(report.drifted_share);
        outcome.dataset_drift = Some(report.dataset_drift);
        outcome.consecutive_drifted = consecutive;
        outcome.drifted_features = drifted.clone();

        let evidence = json!({
            "evaluation_id": evaluation_id,
            "evaluated_at": now,
            "alias": alias.alias,
            "current_window": {"start": window_start, "end": window_end, "rows": current.rows},
            "numeric_sample_cap": data::SAMPLE_CAP,
            "reference": {
                "source": source,
                "rows": reference.rows,
                "window": reference_window.range.map(|(s, e)| json!({"start": s, "end": e})),
            },
            "thresholds": {
                "drift_share": policy.drift_share,
                "persistence": policy.persistence,
                "correction": policy.correction,
                "min_rows": policy.min_rows,
            },
            "consecutive_drifted_evaluations": consecutive,
            "drifted_share": report.drifted_share,
            "drifted_features": drifted,
            "features": report.features,
        });
        if report.dataset_drift
            && let Some(listener) = &self.listener
        {
            listener
                .drift_detected(model, version, evidence.clone())
                .await;
        }

        let open = self
            .open_recommendations(model, Some(version), Some(RecommendationKind::Retrain))
            .await?;
        if consecutive >= policy.persistence {
            let reason = format!(
                "{} of {} features drifted ({}) in {consecutive} consecutive evaluations \
                 (policy: {} at a drifted share of {})",
                drifted.len(),
                report.n_features,
                drifted.join(", "),
                policy.persistence,
                policy.drift_share,
            );
            self.raise(
                outcome,
                model,
                version,
                NewRecommendation {
                    kind: RecommendationKind::Retrain,
                    severity: Severity::Warning,
                    reason,
                    evidence,
                },
                !open.is_empty(),
            )
            .await?;
        } else if !report.dataset_drift {
            for r in open.iter().filter(|r| r.raised_by == EVALUATOR_ACTOR) {
                let note = format!(
                    "drift cleared: evaluation {evaluation_id} found a drifted share of {:.3} \
                     (threshold {})",
                    report.drifted_share, policy.drift_share
                );
                self.transition(outcome, r, Transition::Supersede, &note)
                    .await?;
            }
        }
        Ok(if report.dataset_drift {
            "drifting"
        } else {
            "healthy"
        })
    }

    /// The reference profile, rebuilt only when its row count changed.
    async fn reference_profile(
        &self,
        state: &mut State,
        ctx: &SessionContext,
        window: &Window,
        source: &str,
        features: &BTreeMap<String, Option<FeatureKind>>,
    ) -> Result<Arc<Profile>, EvalError> {
        let key = (
            window.model.clone(),
            window.version.clone(),
            format!("{source}:{:?}:{:?}", window.range, features),
        );
        let rows = data::count_rows(ctx, window).await?;
        if let Some(cached) = state.references.get(&key)
            && cached.rows_seen == rows
        {
            return Ok(cached.profile.clone());
        }
        let profile = Arc::new(data::profile(ctx, window, features).await?);
        // Keep the cache to the versions still being evaluated.
        state
            .references
            .retain(|k, _| !(k.0 == key.0 && k.1 != key.1));
        state.references.insert(
            key,
            CachedReference {
                rows_seen: rows,
                profile: profile.clone(),
            },
        );
        Ok(profile)
    }

    /// Leading drifted evaluations of this version in `drift_results`
    /// (after a restart the in-memory count is gone).
    async fn consecutive_from_history(
        &self,
        ctx: &SessionContext,
        model: &str,
        version: i64,
        current_evaluation: &str,
        persistence: u32,
    ) -> Result<u32, EvalError> {
        use datafusion::functions_aggregate::expr_fn::{bool_or, max};
        let batches = ctx
            .table(results::DRIFT_RESULTS)
            .await?
            .filter(
                col("model")
                    .eq(lit(model))
                    .and(col("version").eq(lit(version.to_string())))
                    .and(col("evaluation_id").not_eq(lit(current_evaluation))),
            )?
            .aggregate(
                vec![col("evaluation_id")],
                vec![
                    max(col("ts")).alias("at"),
                    bool_or(col("dataset_drift")).alias("drift"),
                ],
            )?
            .sort(vec![col("at").sort(false, false)])?
            .limit(0, Some(persistence as usize))?
            .select_columns(&["drift"])?
            .collect()
            .await?;
        let mut n = 0;
        for b in &batches {
            let drift = datafusion::arrow::array::AsArray::as_boolean(b.column(0));
            for i in 0..drift.len() {
                if !drift.value(i) {
                    return Ok(n);
                }
                n += 1;
            }
        }
        Ok(n)
    }

    /// The rollback half; returns the verdict when there was something to
    /// judge.
    async fn judge_rollback(
        &self,
        state: &mut State,
        ctx: &SessionContext,
        policy: &RollbackPolicy,
        alias: &Alias,
        now: DateTime<Utc>,
        outcome: &mut VersionOutcome,
    ) -> Result<Option<String>, EvalError> {
        let (model, version) = (alias.model.as_str(), alias.version);
        // Only a deployment (a `set` from another version) is judged; a
        // rollback move is the judge's own remedy, not a new candidate.
        let Some(deploy) = alias.history.first() else {
            return Ok(None);
        };
        let (MoveKind::Set, Some(previous), Some(to)) =
            (deploy.kind, deploy.from_version, deploy.to_version)
        else {
            return Ok(None);
        };
        if to != version || previous == version {
            return Ok(None);
        }
        let moved_at = deploy.at;
        let judged_key = (model.to_string(), alias.alias.clone(), moved_at);
        if state.judged.contains(&judged_key) {
            return Ok(None);
        }
        let move_stamp = moved_at.to_rfc3339_opts(SecondsFormat::Micros, true);
        let earlier = self
            .registry
            .list_recommendations(
                &RecommendationFilter {
                    model: Some(model.to_string()),
                    version: Some(version),
                    kind: Some(RecommendationKind::Rollback),
                    status: None,
                },
                &PageRequest::new(Some(1000), None)?,
            )
            .await?;
        if earlier
            .items
            .iter()
            .any(|r| r.evidence["alias_move_at"].as_str() == Some(move_stamp.as_str()))
        {
            state.judged.insert(judged_key);
            return Ok(None);
        }

        let window = policy.window.as_chrono();
        let canary_end = now.min(time_after(moved_at, window));
        let baseline = Traffic {
            model: model.into(),
            version: previous.to_string(),
            from: time_before(moved_at, window),
            to: moved_at,
        };
        let canary = Traffic {
            model: model.into(),
            version: version.to_string(),
            from: moved_at,
            to: canary_end,
        };
        let window_over = now >= time_after(moved_at, window);
        let span_name = policy.span_name.as_deref();

        let latency = match &policy.latency {
            None => None,
            Some(LatencySource::Spans) => Some((
                data::span_latencies(ctx, &baseline, span_name).await?,
                data::span_latencies(ctx, &canary, span_name).await?,
            )),
            Some(LatencySource::Metric { metric }) => Some((
                data::gauge_values(ctx, &baseline, metric).await?,
                data::gauge_values(ctx, &canary, metric).await?,
            )),
            Some(LatencySource::Histogram { metric }) => Some((
                data::histogram_latencies(ctx, &baseline, metric).await?,
                data::histogram_latencies(ctx, &canary, metric).await?,
            )),
        };
        let errors = match &policy.errors {
            None => None,
            Some(ErrorSource::Spans) => {
                let (be, bt) = data::span_errors(ctx, &baseline, span_name).await?;
                let (ce, ct) = data::span_errors(ctx, &canary, span_name).await?;
                Some((be, bt, ce, ct))
            }
            Some(ErrorSource::Metric {
                errors_metric,
                requests_metric,
            }) => {
                let be = data::counter_increase(ctx, &baseline, errors_metric).await?;
                let bt = data::counter_increase(ctx, &baseline, requests_metric).await?;
                let ce = data::counter_increase(ctx, &canary, errors_metric).await?;
                let ct = data::counter_increase(ctx, &canary, requests_metric).await?;
                let (be, bt, ce, ct) = (
                    be.round() as u64,
                    bt.round() as u64,
                    ce.round() as u64,
                    ct.round() as u64,
                );
                Some((be.min(bt), bt, ce.min(ct), ct))
            }
        };

        let min = policy.min_requests;
        let enough = latency
            .as_ref()
            .is_none_or(|(b, c)| b.len() as u64 >= min && c.len() as u64 >= min)
            && errors
                .as_ref()
                .is_none_or(|(_, bt, _, ct)| *bt >= min && *ct >= min);
        if !enough {
            if window_over {
                state.judged.insert(judged_key);
                return Ok(Some("not_enough_data".into()));
            }
            return Ok(Some("pending".into()));
        }

        let latency_report = match &latency {
            Some((b, c)) => Some(
                canary::judge(
                    &[CanaryMetric {
                        name: "latency".into(),
                        baseline: b.clone(),
                        canary: c.clone(),
                        direction: Direction::Increase,
                        critical: true,
                        weight: 1.0,
                        tolerance: Some(policy.tolerance),
                    }],
                    &CanaryConfig {
                        tolerance: policy.tolerance,
                        ..CanaryConfig::default()
                    },
                )
                .map_err(|e| EvalError::Policy(e.to_string()))?,
            ),
            None => None,
        };
        let error_report = match errors {
            Some((be, bt, ce, ct)) => Some(
                canary::compare_error_rates(be, bt, ce, ct, ERROR_RATE_ALPHA)
                    .map_err(|e| EvalError::Policy(e.to_string()))?,
            ),
            None => None,
        };
        let latency_failed = latency_report
            .as_ref()
            .is_some_and(|r| r.verdict == CanaryVerdict::Fail);
        let errors_failed = error_report.as_ref().is_some_and(|r| r.canary_worse);
        if !(latency_failed || errors_failed) {
            if window_over {
                state.judged.insert(judged_key);
            }
            let verdict = match latency_report.as_ref().map(|r| r.verdict) {
                Some(CanaryVerdict::Marginal) => "marginal",
                _ => "pass",
            };
            return Ok(Some(verdict.into()));
        }

        let mut findings = Vec::new();
        if let (Some(r), true) = (&latency_report, latency_failed)
            && let Some(m) = r.metrics.first()
        {
            findings.push(format!(
                "median latency {:.1} → {:.1}",
                m.baseline_median.unwrap_or(f64::NAN),
                m.canary_median.unwrap_or(f64::NAN)
            ));
        }
        if let (Some(r), true) = (&error_report, errors_failed) {
            findings.push(format!(
                "error rate {:.2}% → {:.2}% (p = {:.2e})",
                r.baseline_rate * 100.0,
                r.canary_rate * 100.0,
                r.p_value
            ));
        }
        let reason = format!(
            "version {version} is worse than version {previous}, which it replaced as {:?}: {}",
            alias.alias,
            findings.join("; ")
        );
        let evidence = json!({
            "alias": alias.alias,
            "alias_move_at": move_stamp,
            "baseline_version": previous,
            "canary_version": version,
            "baseline_window": {"start": baseline.from, "end": baseline.to},
            "canary_window": {"start": canary.from, "end": canary.to},
            "latency": latency_report,
            "errors": error_report,
            "policy": policy,
        });
        let rec = self
            .raise(
                outcome,
                model,
                version,
                NewRecommendation {
                    kind: RecommendationKind::Rollback,
                    severity: Severity::Critical,
                    reason: reason.clone(),
                    evidence,
                },
                false,
            )
            .await?;
        state.judged.insert(judged_key);
        if policy.automatic {
            let moved = self
                .registry
                .rollback_alias(
                    &self.actor,
                    model,
                    &alias.alias,
                    &format!("automatic rollback, recommendation {}: {reason}", rec.id),
                )
                .await?;
            let note = format!(
                "alias {:?} moved back from version {version} to version {} automatically \
                 (policy rollback.automatic)",
                alias.alias, moved.version
            );
            self.transition(outcome, &rec, Transition::Apply, &note)
                .await?;
            tracing::warn!(model, alias = %alias.alias, from = version, to = moved.version, recommendation = rec.id, "automatic rollback");
        } else {
            tracing::warn!(model, alias = %alias.alias, version, recommendation = rec.id, "rollback recommended");
        }
        Ok(Some("fail".into()))
    }

    /// Sets the health and recommendation tags when they changed (each
    /// change is an audited registry write, so unchanged values are skipped).
    /// `health: None` leaves the health tag as it is.
    async fn mirror_tags(
        &self,
        model: &str,
        version: i64,
        health: Option<&str>,
    ) -> Result<(), EvalError> {
        let record = self.registry.get_version(model, version).await?;
        let mut kinds: Vec<&str> = self
            .open_recommendations(model, Some(version), None)
            .await?
            .iter()
            .map(|r| r.kind.as_str())
            .collect();
        kinds.sort_unstable();
        kinds.dedup();
        crate::metrics::record_open_recommendations(model, version, &kinds);
        let recommendation = if kinds.is_empty() {
            "none".to_string()
        } else {
            kinds.join(",")
        };
        let target = TagTarget::Version {
            model: model.to_string(),
            version,
        };
        let tags = health
            .map(|h| (HEALTH_TAG, h))
            .into_iter()
            .chain([(RECOMMENDATION_TAG, recommendation.as_str())]);
        for (key, value) in tags {
            if record.tags.get(key).map(String::as_str) != Some(value) {
                self.registry
                    .set_tag(&self.actor, &target, key, Some(value))
                    .await?;
            }
        }
        Ok(())
    }
}

/// When `version` last became the alias's target.
fn became_target(alias: &Alias, version: i64) -> Option<DateTime<Utc>> {
    alias
        .history
        .iter()
        .find(|m| m.to_version == Some(version))
        .map(|m| m.at)
}

/// Builds the drift report of `current` against `reference`.
fn run_report(
    policy: &MonitoringPolicy,
    reference: &Profile,
    current: &Profile,
) -> modelwatch_drift::DriftReport {
    let config = ReportConfig {
        correction: policy.correction,
        drift_share: policy.drift_share,
        // One core for the evaluator (module docs).
        parallel: false,
        ..ReportConfig::default()
    };
    let mut specs = Vec::new();
    for (name, r) in &reference.features {
        let spec = match (r, current.features.get(name)) {
            (FeatureValues::Numeric(r), Some(FeatureValues::Numeric(c))) => {
                FeatureSpec::numeric(name.clone(), &r.values, &c.values)
            }
            (FeatureValues::Categorical(r), Some(FeatureValues::Categorical(c))) => {
                FeatureSpec::categorical(name.clone(), r, c)
            }
            _ => continue,
        };
        let spec = match policy.features.get(name) {
            Some(overrides) => {
                let mut spec = spec;
                if let Some(m) = overrides.method {
                    spec = spec.with_method(m);
                }
                if let Some(t) = overrides.threshold {
                    spec = spec.with_threshold(t);
                }
                spec
            }
            None => spec,
        };
        specs.push(spec);
    }
    evaluate_features(&specs, &config)
}

/// A request to run a cycle now (from `POST /api/v1/evaluate`).
struct CycleRequest {
    model: Option<String>,
    reply: oneshot::Sender<Result<CycleReport, EvalError>>,
}

/// Handle to the running evaluator.
#[derive(Clone)]
pub struct EvaluatorHandle {
    requests: mpsc::Sender<CycleRequest>,
}

impl EvaluatorHandle {
    /// Runs a forced cycle (every watched model, or one) and returns its
    /// report.
    pub async fn evaluate_now(&self, model: Option<String>) -> Result<CycleReport, EvalError> {
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
/// progress.
pub fn spawn(
    evaluator: Arc<Evaluator>,
    mut stop: watch::Receiver<bool>,
    duties: &crate::duties::Duties,
) -> std::io::Result<(EvaluatorHandle, std::thread::JoinHandle<()>)> {
    let guard = duties.guard(crate::duties::names::EVALUATOR);
    let (tx, mut rx) = mpsc::channel::<CycleRequest>(16);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("evaluator")
        .build()?;
    let thread = std::thread::Builder::new()
        .name("evaluator".into())
        .spawn(move || {
            let _alive = guard;
            lower_priority();
            runtime.block_on(async move {
                let mut tick = tokio::time::interval(TICK);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                loop {
                    tokio::select! {
                        _ = stop.wait_for(|s| *s) => break,
                        _ = tick.tick() => {
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
