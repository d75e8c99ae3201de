//! One table per rule: `struct Case { name, input…, expected… }`, each case
//! asserting what breaks when its rule does. No database, no async.

use chrono::{Duration, TimeZone};
use modelwatch_drift::CategoryCounts;
use modelwatch_registry::AliasMove;
use modelwatch_types::RecommendationStatus;

use super::*;
use modelwatch_drift::TestedValues;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 8, 0, 0).unwrap()
}

fn mins(m: i64) -> DateTime<Utc> {
    t0() + Duration::minutes(m)
}

fn policy(json: Value) -> MonitoringPolicy {
    serde_json::from_value(json).unwrap()
}

fn rollback_policy(json: Value) -> RollbackPolicy {
    serde_json::from_value(json).unwrap()
}

fn set(from: Option<i64>, to: i64, at: DateTime<Utc>) -> AliasMove {
    AliasMove {
        from_version: from,
        to_version: Some(to),
        kind: MoveKind::Set,
        actor: "ci".into(),
        reason: "deploy".into(),
        at,
    }
}

fn rolled_back(from: i64, to: i64, at: DateTime<Utc>) -> AliasMove {
    AliasMove {
        kind: MoveKind::Rollback,
        actor: EVALUATOR_ACTOR.into(),
        ..set(Some(from), to, at)
    }
}

/// `production` of model `m` at `version`; `history` newest first.
fn alias(version: i64, history: Vec<AliasMove>) -> Alias {
    Alias {
        model: "m".into(),
        alias: "production".into(),
        version,
        updated_by: "ci".into(),
        updated_at: history.first().map(|m| m.at).unwrap_or(t0()),
        history,
    }
}

fn rec(id: i64, version: i64, kind: RecommendationKind, raised_by: &str) -> Recommendation {
    Recommendation {
        id,
        model: "m".into(),
        version,
        kind,
        severity: Severity::Warning,
        reason: "r".into(),
        evidence: json!({}),
        status: RecommendationStatus::Open,
        raised_by: raised_by.into(),
        acknowledged_by: None,
        acknowledged_at: None,
        resolved_by: None,
        resolved_at: None,
        resolution_note: None,
        created_at: t0(),
        updated_at: t0(),
    }
}

/// A short description of actions, so expectations read like the rules.
fn summary(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .map(|a| match a {
            Action::RecordResults => "record".into(),
            Action::NotifyDrift => "notify".into(),
            Action::RaiseRecommendation { kind, severity, .. } => {
                format!("raise {kind} {severity}")
            }
            Action::RefreshRecommendation { id, kind, .. } => format!("refresh {kind} #{id}"),
            Action::SupersedeRecommendation { id, version, .. } => {
                format!("supersede #{id} on v{version}")
            }
            Action::Rollback {
                alias,
                from_version,
                to_version,
                ..
            } => format!("rollback {alias} v{from_version}→v{to_version}"),
            Action::SetTags { version, tags } => format!(
                "tags v{version} {}",
                tags.iter()
                    .map(|(k, v)| format!("{}={v}", k.trim_start_matches("modelwatch.")))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        })
        .collect()
}

/// A profile of three numeric features; `shifted` ones moved far away.
fn profiles(shifted: &[&str]) -> (Profile, Profile) {
    let base: Vec<f64> = (0..400).map(|i| (i % 40) as f64).collect();
    let mut reference = Profile {
        rows: 400,
        ..Profile::default()
    };
    let mut current = reference.clone();
    for name in ["a", "b", "c"] {
        let values = |shift: f64| {
            FeatureValues::Numeric(TestedValues::exact(
                &base.iter().map(|v| v + shift).collect::<Vec<_>>(),
            ))
        };
        reference.features.insert(name.into(), values(0.0));
        let shift = if shifted.contains(&name) { 1000.0 } else { 0.0 };
        current.features.insert(name.into(), values(shift));
    }
    (reference, current)
}

#[test]
fn superseded_on_alias_move() {
    struct Case {
        name: &'static str,
        alias_version: i64,
        open: Vec<Recommendation>,
        expected: Vec<&'static str>,
    }
    let cases = [
        Case {
            name: "the evaluator's recommendation on the replaced version",
            alias_version: 2,
            open: vec![rec(7, 1, RecommendationKind::Retrain, EVALUATOR_ACTOR)],
            expected: vec!["supersede #7 on v1"],
        },
        Case {
            name: "a person's recommendation stays open",
            alias_version: 2,
            open: vec![rec(7, 1, RecommendationKind::Retrain, "alice")],
            expected: vec![],
        },
        Case {
            name: "the watched version's own recommendations stay open",
            alias_version: 1,
            open: vec![
                rec(7, 1, RecommendationKind::Retrain, EVALUATOR_ACTOR),
                rec(8, 1, RecommendationKind::Rollback, EVALUATOR_ACTOR),
            ],
            expected: vec![],
        },
        Case {
            name: "every kind on every other version",
            alias_version: 3,
            open: vec![
                rec(7, 1, RecommendationKind::Retrain, EVALUATOR_ACTOR),
                rec(8, 2, RecommendationKind::Rollback, EVALUATOR_ACTOR),
                rec(9, 3, RecommendationKind::Retrain, EVALUATOR_ACTOR),
            ],
            expected: vec!["supersede #7 on v1", "supersede #8 on v2"],
        },
    ];
    for c in cases {
        let a = alias(c.alias_version, vec![set(None, c.alias_version, t0())]);
        let actions = supersede_other_versions(&a, &c.open);
        assert_eq!(summary(&actions), c.expected, "{}", c.name);
        for action in &actions {
            let Action::SupersedeRecommendation { note, .. } = action else {
                unreachable!()
            };
            assert!(
                note.contains(&format!("version {} took alias", c.alias_version)),
                "{}: {note}",
                c.name
            );
        }
    }
}

/// `Ok((source, range in minutes))` or `Err(status)`.
type Expected = Result<(&'static str, Option<(i64, i64)>), Outcome>;

#[test]
fn baseline_pending_until_the_baseline_window_has_passed() {
    struct Case {
        name: &'static str,
        policy: Value,
        history: Vec<AliasMove>,
        now: DateTime<Utc>,
        expected: Expected,
    }
    let baseline = json!({"reference": "baseline_window", "baseline_window": "10m"});
    let cases = [
        Case {
            name: "reference data needs no waiting",
            policy: json!({}),
            history: vec![set(None, 1, mins(0))],
            now: mins(1),
            expected: Ok(("reference_data", None)),
        },
        Case {
            name: "inside the baseline window",
            policy: baseline.clone(),
            history: vec![set(None, 1, mins(0))],
            now: mins(9),
            expected: Err(Outcome::BaselinePending),
        },
        Case {
            name: "the baseline window just ended",
            policy: baseline.clone(),
            history: vec![set(None, 1, mins(0))],
            now: mins(10),
            expected: Ok(("baseline_window", Some((0, 10)))),
        },
        Case {
            name: "the baseline starts when the version last took the alias",
            policy: baseline.clone(),
            history: vec![
                set(Some(2), 1, mins(30)),
                set(Some(1), 2, mins(20)),
                set(None, 1, mins(0)),
            ],
            now: mins(35),
            expected: Err(Outcome::BaselinePending),
        },
        Case {
            name: "after the latest move's baseline",
            policy: baseline,
            history: vec![
                set(Some(2), 1, mins(30)),
                set(Some(1), 2, mins(20)),
                set(None, 1, mins(0)),
            ],
            now: mins(41),
            expected: Ok(("baseline_window", Some((30, 40)))),
        },
    ];
    for c in cases {
        let got = plan_reference(&policy(c.policy), &alias(1, c.history), c.now);
        match (got, c.expected) {
            (Ok(plan), Ok((source, range))) => {
                assert_eq!(plan.source, source, "{}", c.name);
                assert_eq!(
                    plan.window.range,
                    range.map(|(s, e)| (mins(s), mins(e))),
                    "{}",
                    c.name
                );
                let table = if range.is_some() {
                    "inferences"
                } else {
                    "reference"
                };
                assert_eq!(plan.window.table, table, "{}", c.name);
            }
            (Err(skip), Err(status)) => {
                assert_eq!(skip.status, status, "{}", c.name);
                assert!(skip.message.contains("baseline window"), "{}", c.name);
            }
            (got, expected) => panic!("{}: got {got:?}, expected {expected:?}", c.name),
        }
    }
}

#[test]
fn not_enough_data() {
    struct Case {
        name: &'static str,
        min_rows: u64,
        features: &'static [&'static str],
        rows: (u64, u64),
        expected: Option<Outcome>,
    }
    let cases = [
        Case {
            name: "enough on both sides",
            min_rows: 100,
            features: &["a"],
            rows: (100, 100),
            expected: None,
        },
        Case {
            name: "too few current rows",
            min_rows: 100,
            features: &["a"],
            rows: (99, 1000),
            expected: Some(Outcome::NotEnoughData),
        },
        Case {
            name: "too few reference rows",
            min_rows: 100,
            features: &["a"],
            rows: (1000, 99),
            expected: Some(Outcome::NotEnoughData),
        },
        Case {
            name: "no features to test",
            min_rows: 1,
            features: &[],
            rows: (1000, 1000),
            expected: Some(Outcome::NotEnoughData),
        },
    ];
    for c in cases {
        let p = policy(json!({"min_rows": c.min_rows}));
        let features: FeatureSet = c.features.iter().map(|f| (f.to_string(), None)).collect();
        let got = check_features(1, &features).and_then(|()| check_rows(&p, c.rows.0, c.rows.1));
        assert_eq!(got.err().map(|s| s.status), c.expected, "{}", c.name);
    }
}

#[test]
fn features_come_from_the_policy_then_the_version_then_discovery() {
    struct Case {
        name: &'static str,
        policy: Value,
        declared: &'static [(&'static str, FeatureKind)],
        expected: Option<Vec<(&'static str, Option<FeatureKind>)>>,
    }
    let cases = [
        Case {
            name: "the policy names them; declared kinds are used",
            policy: json!({"features": {"a": {}, "z": {}}}),
            declared: &[("a", FeatureKind::Categorical), ("b", FeatureKind::Numeric)],
            expected: Some(vec![("a", Some(FeatureKind::Categorical)), ("z", None)]),
        },
        Case {
            name: "the version declares them",
            policy: json!({}),
            declared: &[("b", FeatureKind::Numeric)],
            expected: Some(vec![("b", Some(FeatureKind::Numeric))]),
        },
        Case {
            name: "neither: discover them",
            policy: json!({}),
            declared: &[],
            expected: None,
        },
    ];
    for c in cases {
        let declared: Features = c
            .declared
            .iter()
            .map(|(n, k)| (n.to_string(), *k))
            .collect();
        let got = features_to_test(&policy(c.policy), &declared);
        let expected = c
            .expected
            .map(|v| v.into_iter().map(|(n, k)| (n.to_string(), k)).collect());
        assert_eq!(got, expected, "{}", c.name);
    }

    // Undeclared kinds follow the reference.
    let mut features: FeatureSet = [("n".to_string(), None), ("s".to_string(), None)].into();
    let reference = Profile {
        rows: 1,
        features: [
            (
                "n".to_string(),
                FeatureValues::Numeric(TestedValues::default()),
            ),
            (
                "s".to_string(),
                FeatureValues::Categorical(CategoryCounts::default()),
            ),
        ]
        .into(),
        ..Profile::default()
    };
    resolve_kinds(&mut features, &reference);
    assert_eq!(features["n"], Some(FeatureKind::Numeric));
    assert_eq!(features["s"], Some(FeatureKind::Categorical));
}

#[test]
fn persistence_count_raises_refreshes_and_clears() {
    struct Case {
        name: &'static str,
        persistence: u32,
        previous: u32,
        shifted: &'static [&'static str],
        open: Vec<Recommendation>,
        expected_consecutive: u32,
        expected_health: Health,
        expected: Vec<&'static str>,
    }
    let evaluator_retrain = || vec![rec(5, 1, RecommendationKind::Retrain, EVALUATOR_ACTOR)];
    let cases = [
        Case {
            name: "a first drifted evaluation is below persistence 2",
            persistence: 2,
            previous: 0,
            shifted: &["a", "b"],
            open: vec![],
            expected_consecutive: 1,
            expected_health: Health::Drifting,
            expected: vec!["record", "notify"],
        },
        Case {
            name: "the second consecutive one raises",
            persistence: 2,
            previous: 1,
            shifted: &["a", "b"],
            open: vec![],
            expected_consecutive: 2,
            expected_health: Health::Drifting,
            expected: vec!["record", "notify", "raise retrain warning"],
        },
        Case {
            name: "persistence 1 raises at once",
            persistence: 1,
            previous: 0,
            shifted: &["a", "b", "c"],
            open: vec![],
            expected_consecutive: 1,
            expected_health: Health::Drifting,
            expected: vec!["record", "notify", "raise retrain warning"],
        },
        Case {
            name: "an open retrain is refreshed, not raised twice",
            persistence: 2,
            previous: 4,
            shifted: &["a", "b"],
            open: evaluator_retrain(),
            expected_consecutive: 5,
            expected_health: Health::Drifting,
            expected: vec!["record", "notify", "refresh retrain #5"],
        },
        Case {
            name: "one drifted feature of three is below the drift share",
            persistence: 1,
            previous: 3,
            shifted: &["a"],
            open: evaluator_retrain(),
            expected_consecutive: 0,
            expected_health: Health::Healthy,
            expected: vec!["record", "supersede #5 on v1"],
        },
        Case {
            name: "a clean evaluation resets and clears the evaluator's retrain",
            persistence: 2,
            previous: 3,
            shifted: &[],
            open: evaluator_retrain(),
            expected_consecutive: 0,
            expected_health: Health::Healthy,
            expected: vec!["record", "supersede #5 on v1"],
        },
        Case {
            name: "a clean evaluation leaves a person's retrain open",
            persistence: 2,
            previous: 3,
            shifted: &[],
            open: vec![rec(6, 1, RecommendationKind::Retrain, "alice")],
            expected_consecutive: 0,
            expected_health: Health::Healthy,
            expected: vec!["record"],
        },
        Case {
            name: "persistent drift leaves a retrain a performance drop raised",
            persistence: 1,
            previous: 0,
            shifted: &["a", "b"],
            open: performance_retrain(),
            expected_consecutive: 1,
            expected_health: Health::Drifting,
            expected: vec!["record", "notify"],
        },
        Case {
            name: "cleared drift does not supersede a performance retrain",
            persistence: 2,
            previous: 3,
            shifted: &[],
            open: performance_retrain(),
            expected_consecutive: 0,
            expected_health: Health::Healthy,
            expected: vec!["record"],
        },
        Case {
            name: "drift below persistence keeps an open retrain as it is",
            persistence: 3,
            previous: 0,
            shifted: &["a", "b"],
            open: evaluator_retrain(),
            expected_consecutive: 1,
            expected_health: Health::Drifting,
            expected: vec!["record", "notify"],
        },
    ];
    for c in cases {
        let p = policy(json!({"persistence": c.persistence, "drift_share": 0.5, "min_rows": 10}));
        let (reference, current) = profiles(c.shifted);
        let report = run_report(&p, &reference, &current);
        let features: FeatureSet = ["a", "b", "c"].map(|f| (f.to_string(), None)).into();
        let inputs = feature_inputs(&report, &features, &reference, &current);
        assert!(
            inputs
                .iter()
                .all(|i| i.sampling == modelwatch_drift::Sampling::Exact
                    && i.seen_current == 400
                    && i.cdf_error_bound == 0.0),
            "{inputs:?}"
        );
        let plan = ReferencePlan {
            window: Window::reference("m", 1),
            source: "reference_data",
        };
        let d = decide_drift(
            &p,
            DriftState {
                consecutive: c.previous,
                open_retrain: &c.open,
            },
            &measurement(
                &plan,
                (reference.rows, current.rows),
                &report,
                &inputs,
                None,
            ),
        );
        assert_eq!(d.evidence["feature_inputs"]["a"]["sampling"], "exact");
        assert_eq!(d.consecutive, c.expected_consecutive, "{}", c.name);
        assert_eq!(d.health, c.expected_health, "{}", c.name);
        assert_eq!(summary(&d.actions), c.expected, "{}", c.name);
        let mut shifted: Vec<&str> = c.shifted.to_vec();
        shifted.sort_unstable();
        assert_eq!(d.drifted_features, shifted, "{}", c.name);
        assert_eq!(
            d.evidence["consecutive_drifted_evaluations"], c.expected_consecutive,
            "{}",
            c.name
        );
        for a in &d.actions {
            if let Action::RaiseRecommendation {
                reason, evidence, ..
            }
            | Action::RefreshRecommendation {
                reason, evidence, ..
            } = a
            {
                assert!(reason.contains("a, b"), "{}: {reason}", c.name);
                assert_eq!(evidence, &d.evidence, "{}", c.name);
                assert_eq!(evidence["thresholds"]["persistence"], c.persistence);
                assert_eq!(evidence["reference"]["source"], "reference_data");
            }
        }
    }
}

/// The measurement of `report` on the current window of the ten minutes
/// before `mins(10)`; `rows` are (reference, current).
fn measurement<'a>(
    plan: &'a ReferencePlan,
    (reference_rows, current_rows): (u64, u64),
    report: &'a DriftReport,
    inputs: &'a [FeatureInputs],
    multivariate: Option<&'a crate::multivariate::MultivariateOutcome>,
) -> DriftMeasurement<'a> {
    DriftMeasurement {
        evaluation_id: "m/1/t",
        now: mins(10),
        alias: "production",
        window: (mins(0), mins(10)),
        current_rows,
        reference: plan,
        reference_rows,
        report,
        inputs,
        multivariate,
    }
}

#[test]
fn features_drifting_together_make_the_evaluation_drifted() {
    let p = policy(json!({"persistence": 1, "drift_share": 0.5, "min_rows": 10}));
    // No feature drifts on its own.
    let (reference, current) = profiles(&[]);
    let report = run_report(&p, &reference, &current);
    assert!(!report.dataset_drift);
    let features: FeatureSet = ["a", "b", "c"].map(|f| (f.to_string(), None)).into();
    let inputs = feature_inputs(&report, &features, &reference, &current);
    let plan = ReferencePlan {
        window: Window::reference("m", 1),
        source: "reference_data",
    };
    let together = |drifted: bool| crate::multivariate::MultivariateOutcome {
        measured: true,
        features: vec!["a".into(), "b".into()],
        drift: Some(modelwatch_drift::multivariate::ReconstructionDrift {
            rows: 400,
            value: if drifted { 1.9 } else { 1.2 },
            reference_value: 1.2,
            sampling_error: 0.05,
            lower: 1.05,
            upper: 1.35,
            components: 1,
            drifted,
        }),
        message: None,
    };
    for (drifted, consecutive, health, expected) in [
        (
            true,
            1,
            Health::Drifting,
            vec!["record", "notify", "raise retrain warning"],
        ),
        (false, 0, Health::Healthy, vec!["record"]),
    ] {
        let mv = together(drifted);
        let d = decide_drift(
            &p,
            DriftState {
                consecutive: 0,
                open_retrain: &[],
            },
            &measurement(
                &plan,
                (reference.rows, current.rows),
                &report,
                &inputs,
                Some(&mv),
            ),
        );
        assert_eq!(d.consecutive, consecutive);
        assert_eq!(d.health, health);
        assert_eq!(summary(&d.actions), expected);
        assert_eq!(d.evidence["multivariate"]["drift"]["drifted"], drifted);
        if let Some(Action::RaiseRecommendation { reason, .. }) = d.actions.last() {
            assert!(
                reason.contains("multivariate reconstruction error 1.9000 outside"),
                "{reason}"
            );
        }
    }
}

#[test]
fn consecutive_drift_is_recounted_from_the_newest_results() {
    struct Case {
        name: &'static str,
        newest_first: &'static [bool],
        expected: u32,
    }
    let cases = [
        Case {
            name: "never evaluated",
            newest_first: &[],
            expected: 0,
        },
        Case {
            name: "the newest was clean",
            newest_first: &[false, true, true],
            expected: 0,
        },
        Case {
            name: "two drifted, then clean",
            newest_first: &[true, true, false, true],
            expected: 2,
        },
        Case {
            name: "all drifted",
            newest_first: &[true, true, true],
            expected: 3,
        },
    ];
    for c in cases {
        assert_eq!(leading_drifted(c.newest_first), c.expected, "{}", c.name);
    }
}

#[test]
fn judge_once_only_the_latest_deployment() {
    struct Case {
        name: &'static str,
        version: i64,
        history: Vec<AliasMove>,
        expected: Option<(i64, i64)>,
    }
    let cases = [
        Case {
            name: "a deployment from another version",
            version: 2,
            history: vec![set(Some(1), 2, mins(20)), set(None, 1, mins(0))],
            expected: Some((1, 2)),
        },
        Case {
            name: "the first deployment has nothing to compare with",
            version: 1,
            history: vec![set(None, 1, mins(0))],
            expected: None,
        },
        Case {
            name: "the judge's own rollback is not a candidate",
            version: 1,
            history: vec![rolled_back(2, 1, mins(25)), set(Some(1), 2, mins(20))],
            expected: None,
        },
        Case {
            name: "setting the alias to the version it holds",
            version: 2,
            history: vec![set(Some(2), 2, mins(30)), set(Some(1), 2, mins(20))],
            expected: None,
        },
        Case {
            name: "no history",
            version: 2,
            history: vec![],
            expected: None,
        },
    ];
    for c in cases {
        let got = deployment_to_judge(&alias(c.version, c.history));
        assert_eq!(
            got.as_ref().map(|d| (d.previous, d.version)),
            c.expected,
            "{}",
            c.name
        );
    }

    // A deployment with a rollback recommendation (any status) is judged.
    let d = deployment_to_judge(&alias(2, vec![set(Some(1), 2, mins(20))])).unwrap();
    struct Earlier {
        name: &'static str,
        stamps: Vec<Option<String>>,
        expected: bool,
    }
    let cases = [
        Earlier {
            name: "none raised",
            stamps: vec![],
            expected: false,
        },
        Earlier {
            name: "raised for this move",
            stamps: vec![Some(d.stamp())],
            expected: true,
        },
        Earlier {
            name: "raised for an earlier move of the same version",
            stamps: vec![Some(mins(5).to_rfc3339_opts(SecondsFormat::Micros, true))],
            expected: false,
        },
        Earlier {
            name: "raised by hand, without a move time",
            stamps: vec![None],
            expected: false,
        },
    ];
    for c in cases {
        let earlier: Vec<Recommendation> = c
            .stamps
            .into_iter()
            .map(|s| Recommendation {
                evidence: json!({"alias_move_at": s}),
                ..rec(1, 2, RecommendationKind::Rollback, EVALUATOR_ACTOR)
            })
            .collect();
        assert_eq!(judged_before(&d, &earlier), c.expected, "{}", c.name);
    }
}

#[test]
fn judge_windows_are_before_and_after_the_move() {
    let p = rollback_policy(json!({"window": "10m"}));
    let d = deployment_to_judge(&alias(2, vec![set(Some(1), 2, mins(20))])).unwrap();
    let w = judge_windows(&p, &d, mins(25));
    assert_eq!(
        (w.baseline.version.as_str(), w.baseline.from, w.baseline.to),
        ("1", mins(10), mins(20))
    );
    assert_eq!(
        (w.canary.version.as_str(), w.canary.from, w.canary.to),
        ("2", mins(20), mins(25))
    );
    assert!(!w.window_over);
    let w = judge_windows(&p, &d, mins(45));
    assert_eq!(
        w.canary.to,
        mins(30),
        "the canary window ends with the policy's window"
    );
    assert!(w.window_over);
}

#[test]
fn verdicts_and_automatic_rollback_only_when_allowed() {
    struct Case {
        name: &'static str,
        automatic: bool,
        now: i64,
        latency: Option<(f64, f64, usize)>,
        errors: Option<(u64, u64, u64, u64)>,
        expected_verdict: Verdict,
        expected_final: bool,
        expected: Vec<&'static str>,
    }
    let cases = [
        Case {
            name: "worse latency, automatic: recommend and roll back",
            automatic: true,
            now: 25,
            latency: Some((20.0, 120.0, 200)),
            errors: None,
            expected_verdict: Verdict::Fail,
            expected_final: true,
            expected: vec!["raise rollback critical", "rollback production v2→v1"],
        },
        Case {
            name: "worse latency, not automatic: only recommend",
            automatic: false,
            now: 25,
            latency: Some((20.0, 120.0, 200)),
            errors: None,
            expected_verdict: Verdict::Fail,
            expected_final: true,
            expected: vec!["raise rollback critical"],
        },
        Case {
            name: "worse error rate, automatic",
            automatic: true,
            now: 25,
            latency: None,
            errors: Some((10, 1000, 250, 1000)),
            expected_verdict: Verdict::Fail,
            expected_final: true,
            expected: vec!["raise rollback critical", "rollback production v2→v1"],
        },
        Case {
            name: "as good: pass, not final while the window runs",
            automatic: true,
            now: 25,
            latency: Some((20.0, 20.0, 200)),
            errors: Some((10, 1000, 10, 1000)),
            expected_verdict: Verdict::Pass,
            expected_final: false,
            expected: vec![],
        },
        Case {
            name: "as good after the window: a final pass",
            automatic: true,
            now: 31,
            latency: None,
            errors: Some((10, 1000, 11, 1000)),
            expected_verdict: Verdict::Pass,
            expected_final: true,
            expected: vec![],
        },
        Case {
            name: "too few requests while the window runs: pending",
            automatic: true,
            now: 25,
            latency: Some((20.0, 120.0, 49)),
            errors: None,
            expected_verdict: Verdict::Pending,
            expected_final: false,
            expected: vec![],
        },
        Case {
            name: "too few requests when the window is over: final",
            automatic: true,
            now: 30,
            latency: None,
            errors: Some((10, 1000, 40, 49)),
            expected_verdict: Verdict::NotEnoughData,
            expected_final: true,
            expected: vec![],
        },
        Case {
            name: "rounded counters with more errors than requests are clamped",
            automatic: false,
            now: 25,
            latency: None,
            errors: Some((10, 1000, 101, 100)),
            expected_verdict: Verdict::Fail,
            expected_final: true,
            expected: vec!["raise rollback critical"],
        },
    ];
    let d = deployment_to_judge(&alias(2, vec![set(Some(1), 2, mins(20))])).unwrap();
    for c in cases {
        let p =
            rollback_policy(json!({"window": "10m", "min_requests": 50, "automatic": c.automatic}));
        let windows = judge_windows(&p, &d, mins(c.now));
        // Evenly spread observations around each mean (±10 %).
        let spread = |mean: f64, n: usize| -> Vec<f64> {
            (0..n)
                .map(|i| mean * (0.9 + 0.2 * i as f64 / n as f64))
                .collect()
        };
        let m = JudgeMeasurement {
            latency: c
                .latency
                .map(|(b, k, n)| (spread(b, n.max(100)), spread(k, n))),
            errors: c.errors.map(|(be, bt, ce, ct)| ErrorCounts {
                baseline_errors: be,
                baseline_requests: bt,
                canary_errors: ce,
                canary_requests: ct,
            }),
        };
        let got = decide_judge(&p, &d, &windows, &m).unwrap();
        assert_eq!(got.verdict, c.expected_verdict, "{}", c.name);
        assert_eq!(got.final_verdict, c.expected_final, "{}", c.name);
        assert_eq!(summary(&got.actions), c.expected, "{}", c.name);
        if let Some(Action::RaiseRecommendation {
            reason, evidence, ..
        }) = got.actions.first()
        {
            assert!(
                reason.contains("version 2 is worse than version 1"),
                "{reason}"
            );
            assert_eq!(evidence["alias_move_at"], d.stamp().as_str(), "{}", c.name);
            assert_eq!(evidence["baseline_version"], 1);
            assert_eq!(evidence["canary_version"], 2);
        }
    }
}

#[test]
fn health_and_tags_are_written_only_when_they_change() {
    struct Case {
        name: &'static str,
        tags: &'static [(&'static str, &'static str)],
        open: &'static [RecommendationKind],
        health: Option<Health>,
        expected: Vec<&'static str>,
    }
    use RecommendationKind::{Retrain, Rollback};
    let cases = [
        Case {
            name: "first evaluation: both tags",
            tags: &[],
            open: &[],
            health: Some(Health::Healthy),
            expected: vec!["tags v1 health=healthy recommendation=none"],
        },
        Case {
            name: "unchanged: nothing written",
            tags: &[
                (HEALTH_TAG, "drifting"),
                (RECOMMENDATION_TAG, "retrain,rollback"),
            ],
            open: &[Retrain, Rollback],
            health: Some(Health::Drifting),
            expected: vec![],
        },
        Case {
            name: "only the recommendation changed",
            tags: &[(HEALTH_TAG, "drifting"), (RECOMMENDATION_TAG, "none")],
            open: &[Retrain],
            health: Some(Health::Drifting),
            expected: vec!["tags v1 recommendation=retrain"],
        },
        Case {
            name: "a superseded version keeps its health",
            tags: &[(HEALTH_TAG, "drifting"), (RECOMMENDATION_TAG, "retrain")],
            open: &[],
            health: None,
            expected: vec!["tags v1 recommendation=none"],
        },
    ];
    for c in cases {
        let tags: Tags = c
            .tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let got = decide_tags(1, &tags, c.open, c.health);
        assert_eq!(
            summary(&got.into_iter().collect::<Vec<_>>()),
            c.expected,
            "{}",
            c.name
        );
    }

    // Open kinds are sorted by name and listed once; a failed judge
    // degrades the drift half's health, any other verdict keeps it.
    let open = [
        rec(1, 1, Rollback, "x"),
        rec(2, 1, Retrain, "y"),
        rec(3, 1, Rollback, "z"),
    ];
    assert_eq!(open_kinds(&open), [Retrain, Rollback]);
    for (drift, verdict, expected) in [
        (Health::Healthy, Some(Verdict::Fail), Health::Degraded),
        (
            Health::InsufficientData,
            Some(Verdict::Fail),
            Health::Degraded,
        ),
        (Health::Drifting, Some(Verdict::Pass), Health::Drifting),
        (Health::Healthy, Some(Verdict::Pending), Health::Healthy),
        (Health::InsufficientData, None, Health::InsufficientData),
    ] {
        assert_eq!(
            health(drift, verdict, false),
            expected,
            "{drift:?} {verdict:?}"
        );
    }
    // A performance breach degrades whatever drift says.
    assert_eq!(health(Health::Drifting, None, true), Health::Degraded);
    assert_eq!(
        health(Health::Healthy, Some(Verdict::Pass), true),
        Health::Degraded
    );
}

fn performance_retrain() -> Vec<Recommendation> {
    let mut r = rec(9, 1, RecommendationKind::Retrain, EVALUATOR_ACTOR);
    r.evidence = json!({"trigger": TRIGGER_PERFORMANCE});
    vec![r]
}

fn performance_report(accuracy: f64, rmse: Option<f64>) -> crate::PerformanceReport {
    use crate::performance::Figure;
    let mut figures = vec![
        Figure {
            metric: "accuracy",
            class: None,
            value: accuracy,
            band: None,
        },
        // A per-class figure never counts against a whole-window threshold.
        Figure {
            metric: "accuracy",
            class: Some("fraud".into()),
            value: 0.0,
            band: None,
        },
    ];
    figures.extend(rmse.map(|value| Figure {
        metric: "rmse",
        class: None,
        value,
        band: None,
    }));
    crate::PerformanceReport {
        evaluation_id: "m/1/t".into(),
        model: "m".into(),
        version: 1,
        alias: "production".into(),
        window: (mins(0), mins(10)),
        task: modelwatch_types::PerformanceTask::Classification,
        rows: 1000,
        labelled_rows: 800,
        label_coverage: 0.8,
        estimated: false,
        figures,
    }
}

#[test]
fn a_performance_drop_raises_refreshes_and_clears_its_own_retrain() {
    let policy: modelwatch_types::PerformancePolicy = serde_json::from_value(json!({
        "task": "classification", "minimums": {"accuracy": 0.9, "roc_auc": 0.8},
        "maximums": {"rmse": 1.0}}))
    .unwrap();
    let drift_retrain = vec![rec(4, 1, RecommendationKind::Retrain, EVALUATOR_ACTOR)];
    let persons = vec![rec(5, 1, RecommendationKind::Retrain, "alice")];
    struct Case {
        name: &'static str,
        accuracy: f64,
        rmse: Option<f64>,
        open: Vec<Recommendation>,
        breaches: usize,
        expected: Vec<&'static str>,
    }
    let cases = [
        Case {
            name: "below a minimum and above a maximum: raised",
            accuracy: 0.7,
            rmse: Some(2.0),
            open: vec![],
            breaches: 2,
            expected: vec!["raise retrain warning"],
        },
        Case {
            name: "a drift retrain open: taken over",
            accuracy: 0.7,
            rmse: None,
            open: drift_retrain.clone(),
            breaches: 1,
            expected: vec!["refresh retrain #4"],
        },
        Case {
            name: "still below: its own retrain refreshed",
            accuracy: 0.89,
            rmse: None,
            open: performance_retrain(),
            breaches: 1,
            expected: vec!["refresh retrain #9"],
        },
        Case {
            name: "recovered: its own retrain superseded",
            accuracy: 0.95,
            rmse: Some(0.5),
            open: performance_retrain(),
            breaches: 0,
            expected: vec!["supersede #9 on v1"],
        },
        Case {
            name: "within the policy: drift's and a person's retrain stay",
            accuracy: 0.9,
            rmse: Some(1.0),
            open: [drift_retrain.clone(), persons.clone()].concat(),
            breaches: 0,
            expected: vec![],
        },
    ];
    for c in cases {
        let report = performance_report(c.accuracy, c.rmse);
        let d = decide_performance(&policy, &report, &c.open);
        assert_eq!(d.breaches.len(), c.breaches, "{}", c.name);
        assert_eq!(summary(&d.actions), c.expected, "{}", c.name);
        for a in &d.actions {
            if let Action::RaiseRecommendation {
                reason, evidence, ..
            }
            | Action::RefreshRecommendation {
                reason, evidence, ..
            } = a
            {
                assert_eq!(evidence["trigger"], TRIGGER_PERFORMANCE, "{}", c.name);
                assert_eq!(evidence["labelled_rows"], 800);
                assert_eq!(evidence["metrics"]["accuracy"], c.accuracy);
                assert_eq!(evidence["breaches"][0]["metric"], "accuracy");
                assert!(reason.contains("accuracy"), "{}: {reason}", c.name);
                assert!(reason.contains("800 labelled rows"), "{reason}");
            }
        }
    }
}

#[test]
fn quality_limits_name_each_feature_measure_beyond_them() {
    use modelwatch_drift::quality::FeatureQuality;
    let row =
        |feature: &str, missing: f64, out_of_range: Option<f64>, unseen: Option<f64>| QualityRow {
            feature: feature.into(),
            kind: if unseen.is_some() {
                FeatureKind::Categorical
            } else {
                FeatureKind::Numeric
            },
            quality: FeatureQuality {
                rows: 100,
                missing_share: missing,
                type_mismatch_share: 0.0,
                out_of_range_share: out_of_range,
                unseen_share: unseen,
                unseen_categories: Vec::new(),
            },
        };
    let rows = [
        row("amount", 0.2, Some(0.01), None),
        row("country", 0.0, None, Some(0.3)),
        row("age", 0.1, Some(0.1), None),
    ];
    let limits: modelwatch_types::DataQualityPolicy = serde_json::from_value(json!({
        "max_missing_share": 0.1, "max_out_of_range_share": 0.05, "max_unseen_share": 0.5}))
    .unwrap();
    let found: Vec<(String, &str)> = quality_breaches(&limits, &rows)
        .into_iter()
        .map(|b| (b.feature, b.measure))
        .collect();
    // At the limit is within it; a measure a feature lacks is no breach.
    assert_eq!(
        found,
        [
            ("amount".to_string(), "missing_share"),
            ("age".to_string(), "out_of_range_share")
        ]
    );
    assert!(quality_breaches(&Default::default(), &rows).is_empty());
}
