//! Agreement with NannyML's CBPE on the committed fixtures
//! (`scripts/gen_cbpe_fixtures.py`): each estimate lies within NannyML's
//! own confidence band (±3 of its sampling errors), and the sampling
//! errors, which depend only on the reference's labels, decisions and raw
//! scores and the window's size, are NannyML's to 1e-12.
//!
//! Where our calibration decision is NannyML's (it decides on random
//! held-out splits, we on deterministic ones), the calibrated
//! probabilities are the same isotonic regression's, so the ROC AUC (and,
//! for multiclass, every figure) is NannyML's to 1e-9.

use modelwatch_drift::cbpe::multiclass::{self, MulticlassCalibration, MulticlassComponents};
use modelwatch_drift::cbpe::{self, Calibration, Estimate, RocAucComponents, SamplingComponents};
use serde_json::Value;

use crate::common::{assert_close, fixture, floats};

#[test]
fn cbpe_estimates_agree_with_nannyml() {
    let all = fixture("cbpe.json");
    let cases = all["cases"].as_object().expect("cases");
    assert!(cases.len() >= 3);
    for (name, case) in cases {
        let threshold = case["threshold"].as_f64().unwrap();
        let reference_scores = floats(&case["reference_scores"]);
        let reference_labels: Vec<bool> = case["reference_labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64() == Some(1))
            .collect();
        let scores = floats(&case["scores"]);
        let calibration = Calibration::fit(&reference_scores, &reference_labels)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let decided = |s: &[f64]| -> Vec<bool> { s.iter().map(|&p| p >= threshold).collect() };
        let components =
            SamplingComponents::of_reference(&reference_labels, &decided(&reference_scores));
        let probabilities: Vec<f64> = scores.iter().map(|&s| calibration.probability(s)).collect();
        let same_decision =
            matches!(calibration, Calibration::Isotonic(_)) == (case["needs_calibration"] == true);
        let roc_components = RocAucComponents::of_reference(&reference_labels, &reference_scores)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let roc_auc = cbpe::estimate_roc_auc(&probabilities, &roc_components)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        check_estimate(name, "roc_auc", roc_auc, &case["roc_auc"], same_decision);
        let e = cbpe::estimate(&probabilities, &decided(&scores), &components)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        for (metric, got) in [
            ("accuracy", e.accuracy),
            ("precision", e.precision),
            ("recall", e.recall),
            ("f1", e.f1),
        ] {
            check_estimate(name, metric, got, &case[metric], same_decision);
        }
        // Calibration mattered where NannyML calibrated.
        if case["needs_calibration"] == true && name != "calibrated_stable" {
            assert!(
                matches!(calibration, Calibration::Isotonic(_)),
                "{name}: NannyML calibrated, we did not"
            );
        }
    }
}

/// `got` against NannyML's `want`: the same value to 1e-9 when `exact`,
/// otherwise within NannyML's band; the same sampling error to 1e-12.
#[track_caller]
fn check_estimate(name: &str, metric: &str, got: Estimate, want: &Value, exact: bool) {
    let value = want["value"].as_f64().unwrap();
    let (lower, upper) = (
        want["lower"].as_f64().unwrap(),
        want["upper"].as_f64().unwrap(),
    );
    if exact {
        assert!(
            (got.value - value).abs() <= 1e-9,
            "{name} {metric}: {} vs NannyML's {value} (diff {:e})",
            got.value,
            got.value - value
        );
    } else {
        assert!(
            lower <= got.value && got.value <= upper,
            "{name} {metric}: {} outside NannyML's band [{lower}, {upper}] (its estimate {value})",
            got.value
        );
    }
    assert_close(
        got.sampling_error,
        want["sampling_error"].as_f64().unwrap(),
        1e-12,
        &format!("{name} {metric} sampling error"),
    );
}

fn classes_of(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

fn columns_of(v: &Value) -> Vec<Vec<f64>> {
    v.as_array().unwrap().iter().map(floats).collect()
}

#[test]
fn multiclass_cbpe_agrees_with_nannyml() {
    let all = fixture("cbpe_multiclass.json");
    let cases = all["cases"].as_object().expect("cases");
    assert!(cases.len() >= 3);
    let mut exact_cases = 0;
    for (name, case) in cases {
        let classes = case["classes"].as_u64().unwrap() as usize;
        let reference_scores = columns_of(&case["reference_scores"]);
        let reference_labels = classes_of(&case["reference_labels"]);
        let reference_predicted = classes_of(&case["reference_predicted"]);
        let scores = columns_of(&case["scores"]);
        let predicted = classes_of(&case["predicted"]);
        let calibration = MulticlassCalibration::fit(&reference_scores, &reference_labels)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let components = MulticlassComponents::of_reference(
            &reference_labels,
            &reference_predicted,
            &reference_scores,
            classes,
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let probabilities = calibration
            .probabilities(&scores)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let e = multiclass::estimate(&scores, &probabilities, &predicted, &components)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(e.rows, predicted.len() as u64);
        let ours: Vec<bool> = calibration
            .per_class()
            .iter()
            .map(|c| matches!(c, Calibration::Isotonic(_)))
            .collect();
        let theirs: Vec<bool> = case["needs_calibration"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v == true)
            .collect();
        let exact = ours == theirs;
        exact_cases += usize::from(exact);
        for (metric, got) in [
            ("accuracy", e.accuracy),
            ("precision", e.precision),
            ("recall", e.recall),
            ("f1", e.f1),
            ("specificity", e.specificity),
            ("roc_auc", e.roc_auc),
        ] {
            check_estimate(name, metric, got, &case[metric], exact);
        }
    }
    // The exact comparison must have run somewhere, or this test only
    // checks bands.
    assert!(
        exact_cases >= 1,
        "no case where our calibration decisions are NannyML's"
    );
}
