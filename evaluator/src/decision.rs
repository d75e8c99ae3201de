//! The evaluator's rules: given the policy, the previous state and the
//! measured statistics, what to do — as values. No I/O, no async, no
//! clock: the scheduler reads, calls these functions, and carries out the
//! [`Action`]s they return in order.
//!
//! The rules, in the order the scheduler applies them to one watched alias:
//! 1. **Superseded on alias move** ([`supersede_other_versions`]): an open
//!    recommendation the evaluator raised on another version of the model
//!    no longer applies once a newer version holds the alias. Others'
//!    recommendations are never closed by the evaluator.
//! 2. **Baseline pending** ([`plan_reference`]): with `reference:
//!    baseline_window` the version's first `baseline_window` after it took
//!    the alias is its reference; until that has passed it is not judged.
//! 3. **Not enough data** ([`check_features`], [`check_rows`]): no features
//!    to test, or fewer than `min_rows` current or reference rows.
//! 4. **Persistence count** ([`decide_drift`]): consecutive drifted
//!    evaluations count up, a clean one resets to 0; at `persistence` a
//!    `retrain` recommendation is raised, or refreshed when one is open; a
//!    clean evaluation supersedes the evaluator's open `retrain`.
//! 5. **Judge once** ([`deployment_to_judge`], [`judged_before`],
//!    [`decide_judge`]): only the alias's latest move, when it was a
//!    deployment (a `set` from another version), is judged; a verdict is
//!    final once its window is over or it failed, and a deployment that
//!    already has a rollback recommendation is never judged again.
//! 6. **Automatic rollback only when allowed** ([`decide_judge`]): a
//!    failing verdict raises a critical `rollback` recommendation; the
//!    alias moves back only with `rollback.automatic`.
//! 7. **Realized performance** ([`decide_performance`]): a whole-window
//!    figure beyond the policy's `minimums` / `maximums` makes the version
//!    `degraded` and raises (or refreshes) a `retrain` recommendation with
//!    the figures as evidence; a measurement within them supersedes the
//!    one it raised. A version has one open `retrain`: its evidence's
//!    `trigger` (`drift` or `performance`) says which rule owns it, a
//!    performance finding takes over a drift-owned one, and drift leaves a
//!    performance-owned one alone.
//! 8. **Tags** ([`decide_tags`]): health and the open recommendation kinds
//!    are mirrored into version tags, written only when they changed.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use modelwatch_drift::canary::{self, CanaryConfig, CanaryMetric, CanaryVerdict, Direction};
use modelwatch_drift::quality::{self, FeatureQuality};
use modelwatch_drift::{DriftReport, FeatureSpec, ReportConfig, Sampling, evaluate_features};
use modelwatch_registry::{Alias, Recommendation};
use modelwatch_types::{
    FeatureKind, Features, MonitoringPolicy, MoveKind, RecommendationKind, ReferenceSource,
    RollbackPolicy, Severity, Tags,
};
use serde::Serialize;
use serde_json::{Value, json};

use crate::EvalError;
use crate::ports::{EXACT_VALUES_LIMIT, FeatureSet, FeatureValues, Profile, Traffic, Window};

/// The actor name of everything the evaluator changes (audit, recommendations).
pub const EVALUATOR_ACTOR: &str = "evaluator";
/// `evidence.trigger` of a `retrain` raised by the drift rule.
pub const TRIGGER_DRIFT: &str = "drift";
/// `evidence.trigger` of a `retrain` raised on a performance drop.
pub const TRIGGER_PERFORMANCE: &str = "performance";

/// Which rule owns an open `retrain`: its evidence's `trigger` (drift for
/// recommendations raised before triggers were recorded).
pub fn trigger_of(r: &Recommendation) -> &str {
    r.evidence["trigger"].as_str().unwrap_or(TRIGGER_DRIFT)
}

/// Version tag mirroring the latest evaluation: `healthy`, `drifting`,
/// `degraded` (failed rollback judge, or a performance, data-quality or
/// fairness limit breached) or `insufficient_data`.
pub const HEALTH_TAG: &str = "modelwatch.health";
/// Version tag listing the open recommendation kinds (`retrain,rollback`) or
/// `none`.
pub const RECOMMENDATION_TAG: &str = "modelwatch.recommendation";
/// Significance level of the error-rate comparison.
pub const ERROR_RATE_ALPHA: f64 = 0.01;

modelwatch_types::named_enum!(
    /// What became of one watched alias's evaluation (`status` in
    /// `POST /api/v1/evaluate` replies, the `status` label of
    /// `modelwatch_evaluations_total`).
    Outcome as "outcome" {
        Evaluated => "evaluated",
        NotEnoughData => "not_enough_data",
        BaselinePending => "baseline_pending",
        NoAlias => "no_alias",
        Error => "error",
    }
);

modelwatch_types::named_enum!(
    /// The rollback judge's verdict on a deployment.
    Verdict as "verdict" {
        Pass => "pass",
        Fail => "fail",
        Marginal => "marginal",
        /// Not enough requests yet; the window is still open.
        Pending => "pending",
        /// Not enough requests and the window is over: final.
        NotEnoughData => "not_enough_data",
    }
);

modelwatch_types::named_enum!(
    /// The version's health, mirrored into [`HEALTH_TAG`].
    Health as "health" {
        Healthy => "healthy",
        Drifting => "drifting",
        /// The rollback judge failed the version, or a performance,
        /// data-quality or fairness limit of the policy is breached.
        Degraded => "degraded",
        InsufficientData => "insufficient_data",
    }
);

modelwatch_types::named_enum!(
    /// What the evaluator did to a recommendation.
    Change as "change" {
        Raised => "raised",
        /// Raised again while open: the open one got the new reason and evidence.
        Updated => "updated",
        Applied => "applied",
        Superseded => "superseded",
    }
);

/// One thing to do. The scheduler carries a list out in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Store the evaluation's per-feature rows in `drift_results`.
    RecordResults,
    /// Tell listeners the dataset drifted (`drift.detected` webhooks).
    NotifyDrift,
    /// Raise a new recommendation on the evaluated version.
    RaiseRecommendation {
        kind: RecommendationKind,
        severity: Severity,
        reason: String,
        evidence: Value,
    },
    /// Raise again while recommendation `id` is open: the registry
    /// refreshes it with the new reason and evidence.
    RefreshRecommendation {
        id: i64,
        kind: RecommendationKind,
        severity: Severity,
        reason: String,
        evidence: Value,
    },
    /// Close recommendation `id` (on `version`) as superseded.
    SupersedeRecommendation {
        id: i64,
        version: i64,
        kind: RecommendationKind,
        note: String,
    },
    /// Move `alias` back from `from_version` to the version it replaced,
    /// then mark the recommendation raised just before as applied; the
    /// move's reason names that recommendation.
    Rollback {
        alias: String,
        from_version: i64,
        to_version: i64,
        reason: String,
    },
    /// Set these version tags (only the ones that change).
    SetTags {
        version: i64,
        tags: Vec<(String, String)>,
    },
}

/// Why a version is not judged this time (status and message of its
/// outcome; its health is [`Health::InsufficientData`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Skip {
    pub status: Outcome,
    pub message: String,
}

/// `t + d`, or the latest representable time (policies bound their periods,
/// so this only guards against what validation missed).
pub fn time_after(t: DateTime<Utc>, d: chrono::Duration) -> DateTime<Utc> {
    t.checked_add_signed(d).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `t − d`, or the earliest representable time.
pub fn time_before(t: DateTime<Utc>, d: chrono::Duration) -> DateTime<Utc> {
    t.checked_sub_signed(d).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Rule 1: supersede the evaluator's open recommendations on the model's
/// other versions (`open`: the model's open recommendations).
pub fn supersede_other_versions(alias: &Alias, open: &[Recommendation]) -> Vec<Action> {
    open.iter()
        .filter(|r| r.version != alias.version && r.raised_by == EVALUATOR_ACTOR)
        .map(|r| Action::SupersedeRecommendation {
            id: r.id,
            version: r.version,
            kind: r.kind,
            note: format!(
                "version {} took alias {:?}; this recommendation was about version {}",
                alias.version, alias.alias, r.version
            ),
        })
        .collect()
}

/// Where the reference distribution comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferencePlan {
    pub window: Window,
    /// `reference_data` or `baseline_window` (`drift_results` and evidence).
    pub source: &'static str,
}

/// When `version` last became the alias's target.
fn became_target(alias: &Alias, version: i64) -> Option<DateTime<Utc>> {
    alias
        .history
        .iter()
        .find(|m| m.to_version == Some(version))
        .map(|m| m.at)
}

/// Rule 2: the reference window, or [`Outcome::BaselinePending`] while the
/// baseline window after the version took the alias is still running.
pub fn plan_reference(
    policy: &MonitoringPolicy,
    alias: &Alias,
    now: DateTime<Utc>,
) -> Result<ReferencePlan, Skip> {
    let (model, version) = (alias.model.as_str(), alias.version);
    match policy.reference {
        ReferenceSource::ReferenceData => Ok(ReferencePlan {
            window: Window::reference(model, version),
            source: "reference_data",
        }),
        ReferenceSource::BaselineWindow => {
            let since = became_target(alias, version).unwrap_or(alias.updated_at);
            let until = time_after(since, policy.baseline_window.as_chrono());
            if now < until {
                return Err(Skip {
                    status: Outcome::BaselinePending,
                    message: format!(
                        "the baseline window after version {version} took the alias ends at {}",
                        until.to_rfc3339_opts(SecondsFormat::Secs, true)
                    ),
                });
            }
            Ok(ReferencePlan {
                window: Window::current(model, version, since, until),
                source: "baseline_window",
            })
        }
    }
}

/// Which features to test: the policy's, else the version's declared ones;
/// `None` when neither names any (then they are discovered in the
/// reference).
pub fn features_to_test(policy: &MonitoringPolicy, declared: &Features) -> Option<FeatureSet> {
    if !policy.features.is_empty() {
        Some(
            policy
                .features
                .keys()
                .map(|k| (k.clone(), declared.get(k).copied()))
                .collect(),
        )
    } else if !declared.is_empty() {
        Some(
            declared
                .iter()
                .map(|(k, kind)| (k.clone(), Some(*kind)))
                .collect(),
        )
    } else {
        None
    }
}

/// The pseudo-feature that stands for the prediction column (`prediction`
/// is a reserved column name, so no feature has it).
pub const PREDICTION_FEATURE: &str = "prediction";

/// With `prediction_drift`, the prediction is tested like a feature.
pub fn add_prediction(policy: &MonitoringPolicy, features: &mut FeatureSet) {
    if policy.prediction_drift {
        features
            .entry(PREDICTION_FEATURE.to_string())
            .or_insert(None);
    }
}

/// Rule 3a: nothing to test.
pub fn check_features(version: i64, features: &FeatureSet) -> Result<(), Skip> {
    if features.is_empty() {
        return Err(Skip {
            status: Outcome::NotEnoughData,
            message: format!(
                "no features to test for version {version}: declare them on the version, \
                 upload reference data, or list them in the policy"
            ),
        });
    }
    Ok(())
}

/// The reference decides the kind of undeclared features, so both sides
/// are read the same way.
pub fn resolve_kinds(features: &mut FeatureSet, reference: &Profile) {
    for (name, kind) in features.iter_mut() {
        if kind.is_none() {
            *kind = Some(match reference.features.get(name) {
                Some(FeatureValues::Categorical(_)) => FeatureKind::Categorical,
                _ => FeatureKind::Numeric,
            });
        }
    }
}

/// Rule 3b: too few rows on either side.
pub fn check_rows(
    policy: &MonitoringPolicy,
    current_rows: u64,
    reference_rows: u64,
) -> Result<(), Skip> {
    if current_rows < policy.min_rows || reference_rows < policy.min_rows {
        return Err(Skip {
            status: Outcome::NotEnoughData,
            message: format!(
                "{current_rows} current rows and {reference_rows} reference rows; the policy \
                 needs {} of each (min_rows)",
                policy.min_rows
            ),
        });
    }
    Ok(())
}

/// Builds the drift report of `current` against `reference` (pure
/// statistics; one core, see the crate docs).
pub fn run_report(
    policy: &MonitoringPolicy,
    reference: &Profile,
    current: &Profile,
) -> DriftReport {
    let config = ReportConfig {
        correction: policy.correction,
        drift_share: policy.drift_share,
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

/// `model/version/time`: shared by one evaluation's rows.
pub fn evaluation_id(model: &str, version: i64, now: DateTime<Utc>) -> String {
    format!(
        "{model}/{version}/{}",
        now.to_rfc3339_opts(SecondsFormat::Millis, true)
    )
}

/// What went into one feature's test besides the statistic: its kind and
/// how its values were chosen on each side. One per report feature, in the
/// report's order; the results rows and the evidence carry it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FeatureInputs {
    pub kind: FeatureKind,
    /// `exact` when both sides tested every value of their window.
    pub sampling: Sampling,
    /// Finite values (numeric) or non-null values (categorical) in the
    /// reference and current windows; the report's `n_reference` and
    /// `n_current` are the values tested.
    pub seen_reference: u64,
    pub seen_current: u64,
    /// How far the tested values' CDFs may be from their windows' (sum of
    /// both sides, DKW at 99 %): the KS statistic is within this of the
    /// full windows'. 0 when exact.
    pub cdf_error_bound: f64,
}

/// [`FeatureInputs`] of each of the report's features.
pub fn feature_inputs(
    report: &DriftReport,
    features: &FeatureSet,
    reference: &Profile,
    current: &Profile,
) -> Vec<FeatureInputs> {
    report
        .features
        .iter()
        .map(|f| {
            let kind = match features.get(&f.name) {
                Some(Some(FeatureKind::Categorical)) => FeatureKind::Categorical,
                _ => FeatureKind::Numeric,
            };
            let side = |p: &Profile| match p.features.get(&f.name) {
                Some(FeatureValues::Numeric(t)) => (t.sampling, t.seen, t.cdf_error_bound()),
                Some(FeatureValues::Categorical(c)) => (Sampling::Exact, c.total(), 0.0),
                None => (Sampling::Exact, 0, 0.0),
            };
            let (r, c) = (side(reference), side(current));
            FeatureInputs {
                kind,
                sampling: if r.0 == Sampling::Exact && c.0 == Sampling::Exact {
                    Sampling::Exact
                } else {
                    Sampling::ThresholdSample
                },
                seen_reference: r.1,
                seen_current: c.1,
                cdf_error_bound: r.2 + c.2,
            }
        })
        .collect()
}

/// One feature's data quality in the current window, named.
#[derive(Debug, Clone, PartialEq)]
pub struct QualityRow {
    pub feature: String,
    pub kind: FeatureKind,
    pub quality: FeatureQuality,
}

/// A feature's data-quality measure beyond the policy's limit.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct QualityBreach {
    pub feature: String,
    /// `missing_share`, `type_mismatch_share`, `out_of_range_share` or
    /// `unseen_share`.
    pub measure: &'static str,
    pub value: f64,
    pub limit: f64,
}

/// The quality measures of `rows` beyond the policy's limits (a measure a
/// feature does not have, e.g. unseen share of a numeric one, is none).
pub fn quality_breaches(
    policy: &modelwatch_types::DataQualityPolicy,
    rows: &[QualityRow],
) -> Vec<QualityBreach> {
    let mut breaches = Vec::new();
    for row in rows {
        let q = &row.quality;
        let values = [
            Some(q.missing_share),
            Some(q.type_mismatch_share),
            q.out_of_range_share,
            q.unseen_share,
        ];
        for ((measure, limit), value) in policy.limits().into_iter().zip(values) {
            if let (Some(limit), Some(value)) = (limit, value)
                && value > limit
            {
                breaches.push(QualityBreach {
                    feature: row.feature.clone(),
                    measure,
                    value,
                    limit,
                });
            }
        }
    }
    breaches
}

/// The data quality of each of the report's features in the current
/// window against the reference.
pub fn data_quality(
    report: &DriftReport,
    reference: &Profile,
    current: &Profile,
) -> Vec<QualityRow> {
    report
        .features
        .iter()
        .filter_map(|f| {
            let mismatched = current.type_mismatches.get(&f.name).copied().unwrap_or(0);
            let (kind, quality) = match (
                reference.features.get(&f.name)?,
                current.features.get(&f.name)?,
            ) {
                (FeatureValues::Numeric(r), FeatureValues::Numeric(c)) => (
                    FeatureKind::Numeric,
                    quality::numeric(current.rows, r, c, mismatched),
                ),
                (FeatureValues::Categorical(r), FeatureValues::Categorical(c)) => (
                    FeatureKind::Categorical,
                    quality::categorical(current.rows, r, c, mismatched),
                ),
                _ => return None,
            };
            Some(QualityRow {
                feature: f.name.clone(),
                kind,
                quality,
            })
        })
        .collect()
}

/// Consecutive drifted evaluations at the head of `newest_first`.
pub fn leading_drifted(newest_first: &[bool]) -> u32 {
    newest_first.iter().take_while(|d| **d).count() as u32
}

/// One evaluation's measurements and their context.
#[derive(Debug, Clone)]
pub struct DriftMeasurement<'a> {
    pub evaluation_id: &'a str,
    pub now: DateTime<Utc>,
    pub alias: &'a str,
    /// The current window.
    pub window: (DateTime<Utc>, DateTime<Utc>),
    pub current_rows: u64,
    pub reference: &'a ReferencePlan,
    pub reference_rows: u64,
    pub report: &'a DriftReport,
    /// One per report feature.
    pub inputs: &'a [FeatureInputs],
    /// The multivariate measurement, with `multivariate` in the policy.
    pub multivariate: Option<&'a crate::multivariate::MultivariateOutcome>,
}

/// What the drift rules need to know from before this evaluation.
#[derive(Debug, Clone, Copy)]
pub struct DriftState<'a> {
    /// Consecutive drifted evaluations before this one.
    pub consecutive: u32,
    /// The version's open `retrain` recommendations.
    pub open_retrain: &'a [Recommendation],
}

/// The drift half's decision.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftDecision {
    /// Consecutive drifted evaluations including this one.
    pub consecutive: u32,
    pub health: Health,
    pub drifted_features: Vec<String>,
    /// The evidence a retrain recommendation carries (and `drift.detected`).
    pub evidence: Value,
    pub actions: Vec<Action>,
}

/// Rule 4: record the results, count the persistence, raise / refresh /
/// supersede the version's `retrain` recommendation.
pub fn decide_drift(
    policy: &MonitoringPolicy,
    state: DriftState<'_>,
    m: &DriftMeasurement<'_>,
) -> DriftDecision {
    let report = m.report;
    // A change in how features move together is drift as much as a change
    // in one feature's distribution: either makes the evaluation drifted.
    let multivariate_drift = m.multivariate.is_some_and(|mv| mv.drifted());
    let drifted_evaluation = report.dataset_drift || multivariate_drift;
    let consecutive = if drifted_evaluation {
        state.consecutive.saturating_add(1)
    } else {
        0
    };
    let drifted: Vec<String> = report
        .features
        .iter()
        .filter(|f| f.result.drifted())
        .map(|f| f.name.clone())
        .collect();
    let evidence = json!({
        "trigger": TRIGGER_DRIFT,
        "evaluation_id": m.evaluation_id,
        "evaluated_at": m.now,
        "alias": m.alias,
        "current_window": {"start": m.window.0, "end": m.window.1, "rows": m.current_rows},
        "exact_values_limit": EXACT_VALUES_LIMIT,
        "reference": {
            "source": m.reference.source,
            "rows": m.reference_rows,
            "window": m.reference.window.range.map(|(s, e)| json!({"start": s, "end": e})),
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
        "multivariate": m.multivariate,
        "feature_inputs": report
            .features
            .iter()
            .zip(m.inputs)
            .map(|(f, i)| (f.name.clone(), json!(i)))
            .collect::<serde_json::Map<_, _>>(),
    });
    let mut actions = vec![Action::RecordResults];
    if drifted_evaluation {
        actions.push(Action::NotifyDrift);
    }
    // A performance drop owns the version's retrain: drift neither
    // refreshes nor clears it.
    let performance_owned = state
        .open_retrain
        .iter()
        .any(|r| trigger_of(r) == TRIGGER_PERFORMANCE);
    if consecutive >= policy.persistence && !performance_owned {
        let mut reason = format!(
            "{} of {} features drifted ({}) in {consecutive} consecutive evaluations \
             (policy: {} at a drifted share of {})",
            drifted.len(),
            report.n_features,
            drifted.join(", "),
            policy.persistence,
            policy.drift_share,
        );
        if let Some(d) = m.multivariate.and_then(|mv| mv.drift.as_ref())
            && d.drifted
        {
            reason.push_str(&format!(
                "; multivariate reconstruction error {:.4} outside the reference's band \
                 [{:.4}, {:.4}]",
                d.value, d.lower, d.upper
            ));
        }
        actions.push(raise_retrain(
            state.open_retrain.first(),
            reason,
            evidence.clone(),
        ));
    } else if !drifted_evaluation {
        actions.extend(supersede_own_retrain(
            state.open_retrain,
            TRIGGER_DRIFT,
            &format!(
                "drift cleared: evaluation {} found a drifted share of {:.3} (threshold {})",
                m.evaluation_id, report.drifted_share, policy.drift_share
            ),
        ));
    }
    DriftDecision {
        consecutive,
        health: if drifted_evaluation {
            Health::Drifting
        } else {
            Health::Healthy
        },
        drifted_features: drifted,
        evidence,
        actions,
    }
}

/// A deployment the rollback judge looks at.
#[derive(Debug, Clone, PartialEq)]
pub struct Deployment {
    pub model: String,
    pub alias: String,
    /// The version it replaced (the baseline).
    pub previous: i64,
    /// The deployed version (the canary).
    pub version: i64,
    pub moved_at: DateTime<Utc>,
}

impl Deployment {
    /// The move's time as recorded in a rollback recommendation's evidence
    /// (`alias_move_at`): how a deployment is recognised after a restart.
    pub fn stamp(&self) -> String {
        self.moved_at.to_rfc3339_opts(SecondsFormat::Micros, true)
    }
}

/// Rule 5a: the alias's latest move, when it was a deployment of the
/// version it points at from another version. A rollback move is the
/// judge's own remedy, not a new candidate.
pub fn deployment_to_judge(alias: &Alias) -> Option<Deployment> {
    let deploy = alias.history.first()?;
    let (MoveKind::Set, Some(previous), Some(to)) =
        (deploy.kind, deploy.from_version, deploy.to_version)
    else {
        return None;
    };
    if to != alias.version || previous == alias.version {
        return None;
    }
    Some(Deployment {
        model: alias.model.clone(),
        alias: alias.alias.clone(),
        previous,
        version: alias.version,
        moved_at: deploy.at,
    })
}

/// Rule 5b: whether a rollback recommendation (any status) was already
/// raised for this deployment; `earlier`: the version's rollback
/// recommendations.
pub fn judged_before(deployment: &Deployment, earlier: &[Recommendation]) -> bool {
    let stamp = deployment.stamp();
    earlier.iter().any(|r| {
        r.kind == RecommendationKind::Rollback
            && r.evidence["alias_move_at"].as_str() == Some(stamp.as_str())
    })
}

/// The two sides the judge compares: the `window` before the move on the
/// previous version, and up to `window` after it on the new one.
#[derive(Debug, Clone, PartialEq)]
pub struct JudgeWindows {
    pub baseline: Traffic,
    pub canary: Traffic,
    /// The canary window is complete: the verdict is final either way.
    pub window_over: bool,
}

pub fn judge_windows(
    policy: &RollbackPolicy,
    deployment: &Deployment,
    now: DateTime<Utc>,
) -> JudgeWindows {
    let window = policy.window.as_chrono();
    let moved_at = deployment.moved_at;
    JudgeWindows {
        baseline: Traffic {
            model: deployment.model.clone(),
            version: deployment.previous.to_string(),
            from: time_before(moved_at, window),
            to: moved_at,
        },
        canary: Traffic {
            model: deployment.model.clone(),
            version: deployment.version.to_string(),
            from: moved_at,
            to: now.min(time_after(moved_at, window)),
        },
        window_over: now >= time_after(moved_at, window),
    }
}

/// Errors and requests of both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCounts {
    pub baseline_errors: u64,
    pub baseline_requests: u64,
    pub canary_errors: u64,
    pub canary_requests: u64,
}

/// What the judge measured (each `None` when the policy does not compare it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JudgeMeasurement {
    /// Latency observations: (baseline, canary).
    pub latency: Option<(Vec<f64>, Vec<f64>)>,
    pub errors: Option<ErrorCounts>,
}

/// The judge's decision.
#[derive(Debug, Clone, PartialEq)]
pub struct JudgeDecision {
    pub verdict: Verdict,
    /// The verdict is final: this deployment is not judged again.
    pub final_verdict: bool,
    pub actions: Vec<Action>,
}

/// Rules 5c and 6: the verdict, and on a failure the critical rollback
/// recommendation and — only with `automatic` — the alias move back.
pub fn decide_judge(
    policy: &RollbackPolicy,
    deployment: &Deployment,
    windows: &JudgeWindows,
    m: &JudgeMeasurement,
) -> Result<JudgeDecision, EvalError> {
    let verdict = |verdict, final_verdict| JudgeDecision {
        verdict,
        final_verdict,
        actions: Vec::new(),
    };
    // Errors cannot exceed requests (counter increases are rounded apart).
    let errors = m.errors.map(|e| ErrorCounts {
        baseline_errors: e.baseline_errors.min(e.baseline_requests),
        canary_errors: e.canary_errors.min(e.canary_requests),
        ..e
    });
    let min = policy.min_requests;
    let enough = m
        .latency
        .as_ref()
        .is_none_or(|(b, c)| b.len() as u64 >= min && c.len() as u64 >= min)
        && errors
            .as_ref()
            .is_none_or(|e| e.baseline_requests >= min && e.canary_requests >= min);
    if !enough {
        return Ok(if windows.window_over {
            verdict(Verdict::NotEnoughData, true)
        } else {
            verdict(Verdict::Pending, false)
        });
    }
    let latency_report = match &m.latency {
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
        Some(e) => Some(
            canary::compare_error_rates(
                e.baseline_errors,
                e.baseline_requests,
                e.canary_errors,
                e.canary_requests,
                ERROR_RATE_ALPHA,
            )
            .map_err(|e| EvalError::Policy(e.to_string()))?,
        ),
        None => None,
    };
    let latency_failed = latency_report
        .as_ref()
        .is_some_and(|r| r.verdict == CanaryVerdict::Fail);
    let errors_failed = error_report.as_ref().is_some_and(|r| r.canary_worse);
    if !(latency_failed || errors_failed) {
        let v = match latency_report.as_ref().map(|r| r.verdict) {
            Some(CanaryVerdict::Marginal) => Verdict::Marginal,
            _ => Verdict::Pass,
        };
        return Ok(verdict(v, windows.window_over));
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
    let (version, previous) = (deployment.version, deployment.previous);
    let reason = format!(
        "version {version} is worse than version {previous}, which it replaced as {:?}: {}",
        deployment.alias,
        findings.join("; ")
    );
    let evidence = json!({
        "alias": deployment.alias,
        "alias_move_at": deployment.stamp(),
        "baseline_version": previous,
        "canary_version": version,
        "baseline_window": {"start": windows.baseline.from, "end": windows.baseline.to},
        "canary_window": {"start": windows.canary.from, "end": windows.canary.to},
        "latency": latency_report,
        "errors": error_report,
        "policy": policy,
    });
    let mut actions = vec![Action::RaiseRecommendation {
        kind: RecommendationKind::Rollback,
        severity: Severity::Critical,
        reason: reason.clone(),
        evidence,
    }];
    if policy.automatic {
        actions.push(Action::Rollback {
            alias: deployment.alias.clone(),
            from_version: version,
            to_version: previous,
            reason,
        });
    }
    Ok(JudgeDecision {
        verdict: Verdict::Fail,
        final_verdict: true,
        actions,
    })
}

/// The version's health: `degraded` when the rollback judge failed it or a
/// performance or data-quality limit of the policy is breached, else what
/// drift says.
pub fn health(drift: Health, verdict: Option<Verdict>, breached: bool) -> Health {
    if verdict == Some(Verdict::Fail) || breached {
        Health::Degraded
    } else {
        drift
    }
}

/// A whole-window figure beyond the policy's threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Breach {
    pub metric: String,
    pub value: f64,
    /// `minimum` or `maximum`.
    pub bound: &'static str,
    pub threshold: f64,
}

/// The performance rule's decision.
#[derive(Debug, Clone, PartialEq)]
pub struct PerformanceDecision {
    pub breaches: Vec<Breach>,
    pub actions: Vec<Action>,
}

/// Rule 7: the breaches of `report` against the policy's thresholds, and
/// the `retrain` to raise, refresh or supersede. A figure the window did
/// not yield (ROC AUC with one class) is no breach.
pub fn decide_performance(
    policy: &modelwatch_types::PerformancePolicy,
    report: &crate::PerformanceReport,
    open_retrain: &[Recommendation],
) -> PerformanceDecision {
    let whole = |metric: &str| {
        report
            .figures
            .iter()
            .find(|f| f.class.is_none() && f.metric == metric)
            .map(|f| f.value)
    };
    let mut breaches = Vec::new();
    for (thresholds, bound) in [(&policy.minimums, "minimum"), (&policy.maximums, "maximum")] {
        for (metric, &threshold) in thresholds {
            let Some(value) = whole(metric) else { continue };
            let beyond = match bound {
                "minimum" => value < threshold,
                _ => value > threshold,
            };
            if beyond {
                breaches.push(Breach {
                    metric: metric.clone(),
                    value,
                    bound,
                    threshold,
                });
            }
        }
    }
    let mut actions = Vec::new();
    if breaches.is_empty() {
        actions.extend(supersede_own_retrain(
            open_retrain,
            TRIGGER_PERFORMANCE,
            &format!(
                "performance recovered: evaluation {} is within the policy on {} labelled rows",
                report.evaluation_id, report.labelled_rows
            ),
        ));
        return PerformanceDecision { breaches, actions };
    }
    let reason = format!(
        "{} performance below the policy on {} {} rows: {}",
        if report.estimated {
            "estimated"
        } else {
            "realized"
        },
        report.labelled_rows,
        if report.estimated {
            "scored"
        } else {
            "labelled"
        },
        breaches
            .iter()
            .map(|b| format!(
                "{} {:.4} (policy {} {})",
                b.metric, b.value, b.bound, b.threshold
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let evidence = json!({
        "trigger": TRIGGER_PERFORMANCE,
        "evaluation_id": report.evaluation_id,
        "alias": report.alias,
        "current_window": {"start": report.window.0, "end": report.window.1, "rows": report.rows},
        "task": report.task,
        "labelled_rows": report.labelled_rows,
        "label_coverage": report.label_coverage,
        "estimated": report.estimated,
        "breaches": breaches,
        "metrics": report
            .figures
            .iter()
            .filter(|f| f.class.is_none())
            .map(|f| (f.metric.to_string(), json!(f.value)))
            .collect::<serde_json::Map<_, _>>(),
        "bands": report
            .figures
            .iter()
            .filter(|f| f.class.is_none())
            .filter_map(|f| Some((f.metric.to_string(), json!(f.band?))))
            .collect::<serde_json::Map<_, _>>(),
        "thresholds": {"minimums": policy.minimums, "maximums": policy.maximums,
                       "min_labels": policy.min_labels},
    });
    actions.push(raise_retrain(open_retrain.first(), reason, evidence));
    PerformanceDecision { breaches, actions }
}

/// Supersede the open `retrain`s the evaluator raised for `trigger` (a
/// person's, and the other rule's, stay open).
fn supersede_own_retrain(open: &[Recommendation], trigger: &str, note: &str) -> Vec<Action> {
    open.iter()
        .filter(|r| r.raised_by == EVALUATOR_ACTOR && trigger_of(r) == trigger)
        .map(|r| Action::SupersedeRecommendation {
            id: r.id,
            version: r.version,
            kind: r.kind,
            note: note.to_string(),
        })
        .collect()
}

/// Raise a `retrain` warning, or refresh the open one (the registry keeps
/// one open recommendation per kind).
fn raise_retrain(open: Option<&Recommendation>, reason: String, evidence: Value) -> Action {
    let (kind, severity) = (RecommendationKind::Retrain, Severity::Warning);
    match open {
        Some(open) => Action::RefreshRecommendation {
            id: open.id,
            kind,
            severity,
            reason,
            evidence,
        },
        None => Action::RaiseRecommendation {
            kind,
            severity,
            reason,
            evidence,
        },
    }
}

/// The open recommendation kinds, sorted by name, once each.
pub fn open_kinds(open: &[Recommendation]) -> Vec<RecommendationKind> {
    let mut kinds: Vec<RecommendationKind> = open.iter().map(|r| r.kind).collect();
    kinds.sort_unstable_by_key(|k| k.as_str());
    kinds.dedup();
    kinds
}

/// Rule 7: the tags to write so the version's tags say `health` (left as
/// it is when `None`) and the open recommendation kinds (`none` when
/// empty); `None` when they already do.
pub fn decide_tags(
    version: i64,
    current: &Tags,
    open: &[RecommendationKind],
    health: Option<Health>,
) -> Option<Action> {
    let recommendation = if open.is_empty() {
        "none".to_string()
    } else {
        open.iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(",")
    };
    let wanted: BTreeMap<&str, String> = health
        .map(|h| (HEALTH_TAG, h.as_str().to_string()))
        .into_iter()
        .chain([(RECOMMENDATION_TAG, recommendation)])
        .collect();
    let tags: Vec<(String, String)> = wanted
        .into_iter()
        .filter(|(k, v)| current.get(*k) != Some(v))
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    (!tags.is_empty()).then_some(Action::SetTags { version, tags })
}

#[cfg(test)]
mod tests;
