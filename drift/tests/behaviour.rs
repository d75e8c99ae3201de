//! Behaviour: false-alarm rate, sketch error and memory, the report
//! (selection, overrides, correction, effect floor, unseen categories),
//! anomaly detectors and the canary judge.

use modelwatch_drift::anomaly::{DetectorConfig, detect};
use modelwatch_drift::canary::{
    CanaryConfig, CanaryMetric, CanaryVerdict, Classification, Direction, compare_error_rates,
    judge,
};
use modelwatch_drift::numeric::{self, KsMode};
use modelwatch_drift::report::{Correction, adjust_p_values};
use modelwatch_drift::sketch;
use modelwatch_drift::{
    CategoryCounts, Decision, DriftMethod, DriftReport, FeatureSpec, KllSketch, ReportConfig,
    evaluate_features, select_method,
};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::common::normals;

/// Asserts a rejection count is within 3 binomial standard errors of
/// `trials · alpha` (and not above it by more, for conservative tests).
fn assert_nominal(rejections: usize, trials: usize, alpha: f64, what: &str) {
    let expected = trials as f64 * alpha;
    let sd = (trials as f64 * alpha * (1.0 - alpha)).sqrt();
    let r = rejections as f64;
    assert!(
        (r - expected).abs() <= 3.0 * sd,
        "{what}: {rejections}/{trials} rejections, expected {expected:.1} ± {:.1}",
        3.0 * sd
    );
}

#[test]
fn false_alarm_rate_is_nominal() {
    // 1000 seeded no-drift draws per test; each seed is fixed so the test is
    // deterministic, and the count must sit within 3 binomial SEs of 5 %.
    let trials = 1000;
    let cfg = ReportConfig {
        parallel: false,
        ..ReportConfig::default()
    };
    let mut counts = [0usize; 4];
    for seed in 0..trials as u64 {
        let mut rng = StdRng::seed_from_u64(10_000 + seed);
        let a = normals(&mut rng, 150, 0.0, 1.0);
        let b = normals(&mut rng, 120, 0.0, 1.0);
        for (i, m) in [
            DriftMethod::MannWhitney,
            DriftMethod::WelchT,
            DriftMethod::CramerVonMises,
            DriftMethod::AndersonDarling,
        ]
        .into_iter()
        .enumerate()
        {
            let f = FeatureSpec::numeric("x", &a, &b).with_method(m);
            if modelwatch_drift::evaluate_feature(&f, &cfg).result.decision == Decision::Drift {
                counts[i] += 1;
            }
        }
    }
    assert_nominal(counts[0], trials, 0.05, "mann_whitney");
    assert_nominal(counts[1], trials, 0.05, "welch_t");
    assert_nominal(counts[2], trials, 0.05, "cramer_von_mises");
    assert_nominal(counts[3], trials, 0.05, "anderson_darling");
}

#[test]
fn ks_and_chi_square_false_alarm_rate_is_nominal() {
    // KS's exact null distribution is discrete and slightly conservative;
    // chi-square is asymptotic. Both must be within binomial error of 5 %.
    let trials = 1000;
    let (mut ks, mut chi) = (0usize, 0usize);
    for seed in 0..trials as u64 {
        let mut rng = StdRng::seed_from_u64(50_000 + seed);
        let a = normals(&mut rng, 200, 0.0, 1.0);
        let b = normals(&mut rng, 180, 0.0, 1.0);
        let s = numeric::ks_2samp(&a, &b, KsMode::Auto).expect("ks");
        if s.p_value.unwrap_or(1.0) < 0.05 {
            ks += 1;
        }
        // Categorical: 4 categories by quartile of a normal.
        let cat = |v: &[f64]| {
            CategoryCounts::from_values(v.iter().map(|x| match *x {
                x if x < -0.674 => "q1",
                x if x < 0.0 => "q2",
                x if x < 0.674 => "q3",
                _ => "q4",
            }))
        };
        let c = modelwatch_drift::categorical::chi_square(&cat(&a), &cat(&b), true).expect("chi2");
        if c.p_value.unwrap_or(1.0) < 0.05 {
            chi += 1;
        }
    }
    // KS exact at these sizes has true size ≈ 4.5 %; still inside the band.
    assert_nominal(ks, trials, 0.05, "ks");
    assert_nominal(chi, trials, 0.05, "chi_square");
}

#[test]
fn bonferroni_controls_family_wise_error() {
    let trials = 300;
    let features = 10;
    let cfg = ReportConfig {
        correction: Correction::Bonferroni,
        parallel: false,
        ..ReportConfig::default()
    };
    let mut any = 0;
    for seed in 0..trials as u64 {
        let mut rng = StdRng::seed_from_u64(90_000 + seed);
        let data: Vec<(Vec<f64>, Vec<f64>)> = (0..features)
            .map(|_| {
                (
                    normals(&mut rng, 100, 0.0, 1.0),
                    normals(&mut rng, 100, 0.0, 1.0),
                )
            })
            .collect();
        let specs: Vec<FeatureSpec<'_>> = data
            .iter()
            .enumerate()
            .map(|(i, (a, b))| {
                FeatureSpec::numeric(format!("f{i}"), a, b).with_method(DriftMethod::WelchT)
            })
            .collect();
        let rep = evaluate_features(&specs, &cfg);
        if rep.n_drifted > 0 {
            any += 1;
        }
    }
    // FWER ≤ 5 % (+3 SE).
    let bound = 0.05 * trials as f64 + 3.0 * (trials as f64 * 0.05 * 0.95).sqrt();
    assert!(
        (any as f64) <= bound,
        "family-wise false alarms {any}/{trials}"
    );
}

#[test]
fn p_value_adjustments() {
    let p = [0.01, 0.04, 0.03, 0.005];
    assert_eq!(
        adjust_p_values(&p, Correction::Bonferroni),
        vec![0.04, 0.16, 0.12, 0.02]
    );
    // BH by hand: sorted 0.005, 0.01, 0.03, 0.04 → ×4/k = 0.02, 0.02, 0.04, 0.04.
    let bh = adjust_p_values(&p, Correction::BenjaminiHochberg);
    for (g, w) in bh.iter().zip([0.02, 0.04, 0.04, 0.02]) {
        assert!((g - w).abs() < 1e-15, "{bh:?}");
    }
}

#[test]
fn sketch_error_and_memory() {
    // Stated error (module docs of `sketch`): |KS_sketch − KS_exact| ≤ 0.027
    // (two sketches at k = 200) and |PSI_sketch − PSI_exact| ≤ 0.02.
    for (seed, shift) in [(1u64, 0.0), (2, 0.1), (3, 0.3)] {
        let mut rng = StdRng::seed_from_u64(seed);
        let a = normals(&mut rng, 100_000, 0.0, 1.0);
        let b = normals(&mut rng, 80_000, shift, 1.2);
        let sa = KllSketch::from_slice(&a, 200).expect("sketch");
        let sb = KllSketch::from_slice(&b, 200).expect("sketch");
        let ks_exact = numeric::ks_2samp(&a, &b, KsMode::Asymp)
            .expect("ks")
            .statistic;
        let ks_sk = sketch::ks(&sa, &sb, KsMode::Asymp).expect("ks").statistic;
        assert!(
            (ks_exact - ks_sk).abs() <= 0.027,
            "ks {ks_exact} vs sketch {ks_sk}"
        );
        let psi_exact = numeric::psi(&a, &b, 10).expect("psi").statistic;
        let psi_sk = sketch::psi(&sa, &sb, 10).expect("psi").statistic;
        assert!(
            (psi_exact - psi_sk).abs() <= 0.02,
            "psi {psi_exact} vs sketch {psi_sk}"
        );
        let w_exact = numeric::wasserstein(&a, &b).expect("w").statistic;
        let w_sk = sketch::wasserstein(&sa, &sb).expect("w").statistic;
        assert!(
            (w_exact - w_sk).abs() <= 0.03,
            "wasserstein {w_exact} vs sketch {w_sk}"
        );
    }
    // Memory does not grow with the row count beyond a few per level.
    let mut s = KllSketch::new(200).expect("k");
    let mut rng = StdRng::seed_from_u64(9);
    let bound = |n: f64| 3.0 * 200.0 + 8.0 * n.log2();
    for chunk in 0..10 {
        for v in normals(&mut rng, 100_000, 0.0, 1.0) {
            s.update(v);
        }
        let n = (chunk + 1) as f64 * 100_000.0;
        assert!(
            (s.retained() as f64) <= bound(n),
            "{} retained after {n}",
            s.retained()
        );
    }
    assert_eq!(s.count(), 1_000_000);
}

#[test]
fn sketch_merge_matches_single_pass() {
    let mut rng = StdRng::seed_from_u64(4);
    let a = normals(&mut rng, 60_000, 0.0, 1.0);
    let whole = KllSketch::from_slice(&a, 200).expect("sketch");
    let mut merged = KllSketch::from_slice(&a[..20_000], 200).expect("sketch");
    merged.merge(&KllSketch::from_slice(&a[20_000..], 200).expect("sketch"));
    assert_eq!(merged.count(), 60_000);
    let d = sketch::ks(&whole, &merged, KsMode::Asymp)
        .expect("ks")
        .statistic;
    assert!(d <= 0.027, "merged vs single-pass sketch KS {d}");
    assert!((merged.mean().unwrap_or(0.0) - whole.mean().unwrap_or(1.0)).abs() < 1e-12);
    assert!((merged.std().unwrap_or(0.0) - whole.std().unwrap_or(1.0)).abs() < 1e-9);
    // A sketch is a stored profile: it must survive serde unchanged.
    let text = serde_json::to_string(&merged).expect("serialize");
    let back: KllSketch = serde_json::from_str(&text).expect("deserialize");
    assert_eq!(back, merged);
}

#[test]
fn evidently_selection_rules() {
    let mut rng = StdRng::seed_from_u64(5);
    let small = normals(&mut rng, 500, 0.0, 1.0);
    let large = normals(&mut rng, 5000, 0.0, 1.0);
    let discrete: Vec<f64> = (0..500).map(|i| f64::from(i % 3)).collect();
    let binary: Vec<f64> = (0..500).map(|i| f64::from(i % 2)).collect();
    let num = |a: &'static str, r: &[f64]| select_method(&FeatureSpec::numeric(a, r, r).data);
    assert_eq!(num("small", &small), DriftMethod::Ks);
    assert_eq!(num("large", &large), DriftMethod::Wasserstein);
    assert_eq!(num("discrete", &discrete), DriftMethod::ChiSquare);
    assert_eq!(num("binary", &binary), DriftMethod::ZTest);
    let c_small = CategoryCounts::from_values((0..900).map(|i| ["a", "b", "c"][i % 3]));
    let c_large = CategoryCounts::from_values((0..5000).map(|i| ["a", "b", "c"][i % 3]));
    let c_bin = CategoryCounts::from_values((0..900).map(|i| ["a", "b"][i % 2]));
    assert_eq!(
        select_method(&FeatureSpec::categorical("c", &c_small, &c_small).data),
        DriftMethod::ChiSquare
    );
    assert_eq!(
        select_method(&FeatureSpec::categorical("c", &c_bin, &c_bin).data),
        DriftMethod::ZTest
    );
    assert_eq!(
        select_method(&FeatureSpec::categorical("c", &c_large, &c_large).data),
        DriftMethod::JensenShannon
    );
    let s = KllSketch::from_slice(&large, 200).expect("sketch");
    assert_eq!(
        select_method(&FeatureSpec::sketch("s", &s, &s).data),
        DriftMethod::Wasserstein
    );
}

#[test]
fn report_detects_drift_and_honours_overrides() {
    let mut rng = StdRng::seed_from_u64(6);
    let a = normals(&mut rng, 5000, 0.0, 1.0);
    let same = normals(&mut rng, 5000, 0.0, 1.0);
    let shifted = normals(&mut rng, 5000, 0.5, 1.0);
    let ca = CategoryCounts::from_values((0..5000).map(|i| ["a", "b", "c"][i % 3]));
    let cb = CategoryCounts::from_values((0..5000).map(|i| ["a", "b", "c", "zz_new"][i % 4]));
    let specs = vec![
        FeatureSpec::numeric("stable", &a, &same),
        FeatureSpec::numeric("moved", &a, &shifted),
        FeatureSpec::numeric("moved_ks", &a, &shifted)
            .with_method(DriftMethod::Ks)
            .with_threshold(0.01),
        FeatureSpec::categorical("cat", &ca, &cb),
        FeatureSpec::numeric("empty", &a, &[]),
    ];
    let rep: DriftReport = evaluate_features(&specs, &ReportConfig::default());
    let by = |n: &str| rep.features.iter().find(|f| f.name == n).expect("feature");
    assert_eq!(by("stable").result.decision, Decision::NoDrift);
    assert_eq!(by("stable").result.method, DriftMethod::Wasserstein);
    assert_eq!(by("moved").result.decision, Decision::Drift);
    assert_eq!(by("moved_ks").result.method, DriftMethod::Ks);
    assert_eq!(by("moved_ks").selection, "override");
    assert_eq!(by("moved_ks").result.threshold, 0.01);
    assert_eq!(by("moved_ks").result.decision, Decision::Drift);
    // A category the reference never saw: finite JS, drift, no crash.
    let cat = &by("cat").result;
    assert_eq!(cat.method, DriftMethod::JensenShannon);
    assert!(cat.statistic.is_some_and(f64::is_finite));
    assert_eq!(cat.decision, Decision::Drift);
    assert_eq!(by("empty").result.decision, Decision::NotEnoughData);
    assert_eq!(rep.n_not_enough_data, 1);
    assert_eq!(rep.n_drifted, 3);
    assert!((rep.drifted_share - 0.75).abs() < 1e-12);
    assert!(rep.dataset_drift);
    // Serializable evidence, with the method names a user sees.
    let json = serde_json::to_value(&rep).expect("json");
    assert_eq!(json["features"][1]["result"]["method"], "wasserstein");
    assert_eq!(json["features"][4]["result"]["decision"], "not_enough_data");
    let back: DriftReport = serde_json::from_value(json).expect("roundtrip");
    assert_eq!(back, rep);
}

#[test]
fn prepared_reference_matches_raw() {
    let mut rng = StdRng::seed_from_u64(13);
    let a = normals(&mut rng, 3000, 0.0, 1.0);
    let b = normals(&mut rng, 2500, 0.1, 1.0);
    let prepared = modelwatch_drift::numeric::SortedSample::new(&a).expect("finite");
    let cfg = ReportConfig::default();
    for m in [
        None,
        Some(DriftMethod::Ks),
        Some(DriftMethod::Psi),
        Some(DriftMethod::MannWhitney),
        Some(DriftMethod::AndersonDarling),
    ] {
        let mut raw = FeatureSpec::numeric("x", &a, &b);
        let mut pre = FeatureSpec::prepared("x", &prepared, &b);
        if let Some(m) = m {
            raw = raw.with_method(m);
            pre = pre.with_method(m);
        }
        let r1 = modelwatch_drift::evaluate_feature(&raw, &cfg);
        let r2 = modelwatch_drift::evaluate_feature(&pre, &cfg);
        assert_eq!(r1, r2);
    }
    assert!(modelwatch_drift::numeric::SortedSample::new(&[1.0, f64::NAN]).is_err());
}

#[test]
fn effect_floor_overrules_trivial_significant_shift() {
    let mut rng = StdRng::seed_from_u64(8);
    let a = normals(&mut rng, 200_000, 0.0, 1.0);
    let b = normals(&mut rng, 200_000, 0.02, 1.0);
    let spec = [FeatureSpec::numeric("x", &a, &b).with_method(DriftMethod::Ks)];
    let plain = evaluate_features(&spec, &ReportConfig::default());
    assert_eq!(
        plain.features[0].result.decision,
        Decision::Drift,
        "{:?}",
        plain.features[0]
    );
    let floored = evaluate_features(
        &spec,
        &ReportConfig {
            effect_floor_numeric: 0.05,
            ..ReportConfig::default()
        },
    );
    let r = &floored.features[0].result;
    assert_eq!(r.decision, Decision::NoDrift);
    assert!(r.reason.as_deref().is_some_and(|s| s.contains("floor")));
}

#[test]
fn anomaly_detectors_alarm_on_a_step_and_respect_persistence() {
    let mut rng = StdRng::seed_from_u64(11);
    let mut series = normals(&mut rng, 200, 10.0, 1.0);
    series.extend(normals(&mut rng, 60, 16.0, 1.0));
    let detectors = [
        DetectorConfig::RollingZ {
            window: 50,
            threshold: 3.0,
        },
        DetectorConfig::Mad { window: 50, k: 3.5 },
        DetectorConfig::Ewma {
            lambda: 0.2,
            l: 3.0,
            warmup: 100,
        },
        DetectorConfig::Cusum {
            k: 0.5,
            h: 5.0,
            warmup: 100,
        },
        DetectorConfig::PageHinkley {
            delta: 0.5,
            lambda: 20.0,
        },
    ];
    for d in &detectors {
        let rep = detect(d, 3, &series).expect("detect");
        let first = rep.alarms.first().copied();
        assert!(
            first.is_some_and(|i| (200..215).contains(&i)),
            "{}: first alarm {first:?}",
            d.name()
        );
        assert!(
            rep.points
                .iter()
                .all(|p| p.score.is_none_or(f64::is_finite))
        );
        // No alarm before the step at this persistence.
        assert!(
            rep.alarms.iter().all(|&i| i >= 200),
            "{}: {:?}",
            d.name(),
            rep.alarms
        );
    }
    // One spike: breaches once, never alarms with persistence 2.
    let mut spiky = normals(&mut rng, 200, 10.0, 1.0);
    spiky[150] = 40.0;
    for d in &detectors[..2] {
        let rep = detect(d, 2, &spiky).expect("detect");
        assert!(rep.points[150].breach, "{}", d.name());
        assert!(rep.alarms.is_empty(), "{}: {:?}", d.name(), rep.alarms);
    }
    // Constant series: no NaN, no breach.
    let flat = vec![5.0; 100];
    for d in &detectors {
        let rep = detect(d, 1, &flat).expect("detect");
        assert!(rep.alarms.is_empty(), "{}", d.name());
        let text = serde_json::to_string(&rep).expect("json");
        assert!(!text.contains("NaN") && !text.contains("null,\"upper\":NaN"));
    }
    assert!(detect(&detectors[0], 0, &flat).is_err());
    assert!(detect(&detectors[0], 1, &[1.0, f64::NAN]).is_err());
}

fn metric(
    name: &str,
    baseline: Vec<f64>,
    canary: Vec<f64>,
    direction: Direction,
    critical: bool,
) -> CanaryMetric {
    CanaryMetric {
        name: name.into(),
        baseline,
        canary,
        direction,
        critical,
        weight: 1.0,
        tolerance: None,
    }
}

#[test]
fn canary_judge_classifies_and_scores() {
    let mut rng = StdRng::seed_from_u64(12);
    let base_lat = normals(&mut rng, 120, 100.0, 10.0);
    let worse_lat = normals(&mut rng, 120, 160.0, 10.0);
    let same_lat = normals(&mut rng, 120, 100.0, 10.0);
    let base_tp = normals(&mut rng, 120, 50.0, 5.0);
    let low_tp = normals(&mut rng, 120, 20.0, 5.0);
    let cfg = CanaryConfig::default();

    // Everything as before: pass, score 100.
    let ok = judge(
        &[
            metric(
                "latency",
                base_lat.clone(),
                same_lat.clone(),
                Direction::Increase,
                false,
            ),
            metric(
                "throughput",
                base_tp.clone(),
                base_tp.iter().map(|v| v + 0.1).collect(),
                Direction::Decrease,
                false,
            ),
        ],
        &cfg,
    )
    .expect("judge");
    assert_eq!(ok.verdict, CanaryVerdict::Pass, "{ok:?}");
    assert_eq!(ok.score, 100.0);

    // Latency up 60 % (beyond the 25 % tolerance): High, failed.
    let bad = judge(
        &[
            metric(
                "latency",
                base_lat.clone(),
                worse_lat.clone(),
                Direction::Increase,
                false,
            ),
            metric(
                "throughput",
                base_tp.clone(),
                base_tp.clone(),
                Direction::Decrease,
                false,
            ),
        ],
        &cfg,
    )
    .expect("judge");
    assert_eq!(bad.metrics[0].classification, Classification::High);
    assert!(bad.metrics[0].failed);
    assert_eq!(bad.score, 50.0);
    assert_eq!(bad.verdict, CanaryVerdict::Fail);

    // Throughput down: Low; failing only because lower is worse for it.
    let low = judge(
        &[metric(
            "throughput",
            base_tp.clone(),
            low_tp.clone(),
            Direction::Decrease,
            false,
        )],
        &cfg,
    )
    .expect("judge");
    assert_eq!(low.metrics[0].classification, Classification::Low);
    assert!(low.metrics[0].failed);
    let low_ok = judge(
        &[metric(
            "throughput",
            base_tp.clone(),
            low_tp,
            Direction::Increase,
            false,
        )],
        &cfg,
    )
    .expect("judge");
    assert!(!low_ok.metrics[0].failed);

    // A failing critical metric zeroes the score whatever the weights.
    let mut many: Vec<CanaryMetric> = (0..9)
        .map(|i| {
            metric(
                &format!("m{i}"),
                base_tp.clone(),
                base_tp.clone(),
                Direction::Either,
                false,
            )
        })
        .collect();
    many.push(metric(
        "latency",
        base_lat,
        worse_lat,
        Direction::Increase,
        true,
    ));
    let crit = judge(&many, &cfg).expect("judge");
    assert!(crit.critical_failure);
    assert_eq!(crit.score, 0.0);
    assert_eq!(crit.verdict, CanaryVerdict::Fail);

    // Not enough data is excluded, not failed.
    let ned = judge(
        &[metric(
            "empty",
            vec![],
            vec![1.0],
            Direction::Increase,
            true,
        )],
        &cfg,
    )
    .expect("judge");
    assert_eq!(ned.verdict, CanaryVerdict::NotEnoughData);
    assert_eq!(ned.metrics[0].classification, Classification::NotEnoughData);
}

#[test]
fn error_rate_comparison() {
    // Large counts: z-test; canary 2 % vs baseline 1 %.
    let r = compare_error_rates(100, 10_000, 200, 10_000, 0.01).expect("compare");
    assert_eq!(r.method, "z_test");
    assert!(r.canary_worse);
    // Small counts: Fisher; 0/50 vs 4/50 (p ≈ 0.117, not significant).
    let r = compare_error_rates(0, 50, 4, 50, 0.05).expect("compare");
    assert_eq!(r.method, "fisher_exact");
    assert!(!r.canary_worse);
    assert!(
        (r.p_value - 0.117_463_292_721_024_68).abs() < 1e-9,
        "{}",
        r.p_value
    );
    // Better canary is never "worse".
    let r = compare_error_rates(200, 10_000, 100, 10_000, 0.01).expect("compare");
    assert!(!r.canary_worse);
    assert!(compare_error_rates(5, 4, 0, 10, 0.05).is_err());
}
