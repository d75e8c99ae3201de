//! Agreement with NannyML's CBPE on the committed fixtures
//! (`scripts/gen_cbpe_fixtures.py`): each estimate lies within NannyML's
//! own confidence band (±3 of its sampling errors), and the sampling
//! errors, which depend only on the reference's labels and decisions and
//! the window's size, are NannyML's to 1e-12.

use modelwatch_drift::cbpe::{self, Calibration, SamplingComponents};
use serde_json::Value;

use crate::common::{assert_close, fixture, floats};

#[test]
fn cbpe_estimates_lie_within_nannymls_confidence_band() {
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
        let e = cbpe::estimate(&probabilities, &decided(&scores), &components)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        for (metric, got) in [
            ("accuracy", e.accuracy),
            ("precision", e.precision),
            ("recall", e.recall),
            ("f1", e.f1),
        ] {
            let want: &Value = &case[metric];
            let (lower, upper) = (
                want["lower"].as_f64().unwrap(),
                want["upper"].as_f64().unwrap(),
            );
            assert!(
                lower <= got.value && got.value <= upper,
                "{name} {metric}: {} outside NannyML's band [{lower}, {upper}] (its estimate {})",
                got.value,
                want["value"]
            );
            assert_close(
                got.sampling_error,
                want["sampling_error"].as_f64().unwrap(),
                1e-12,
                &format!("{name} {metric} sampling error"),
            );
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
