//! Agreement with NannyML's `DataReconstructionDriftCalculator` on the
//! committed fixtures (`scripts/gen_multivariate_fixtures.py`): the same
//! number of principal components and explained-variance ratios, the same
//! row errors, the same mean error of each window and NannyML's sampling
//! error of the reference (the standard deviation, ddof 1, of its row
//! errors over √rows), all to 1e-9 relative. The band is ours (the
//! reference's spread at the window's size, see `drift::multivariate`), so
//! it is checked against its definition rather than NannyML's band.

use modelwatch_drift::FeatureMatrix;
use modelwatch_drift::multivariate::{DEFAULT_VARIANCE_KEPT, Reconstruction, reconstruction_drift};
use serde_json::Value;

use crate::common::{assert_close, fixture, floats};

/// Far above what the float paths leave: the fixtures agree to 1e-13
/// (summation order of means and Gram matrix, Jacobi against LAPACK's
/// `syevd`; the kept subspace moves by that over the eigenvalue gap at the
/// cut, about 1e-2 of the largest eigenvalue at the smallest).
const REL: f64 = 1e-9;

fn matrix(v: &Value) -> FeatureMatrix {
    let numeric = v["numeric"].as_array().unwrap();
    let categorical = v["categorical"].as_array().unwrap();
    let rows = numeric
        .iter()
        .chain(categorical)
        .map(|c| c["values"].as_array().unwrap().len())
        .next()
        .unwrap();
    let mut m = FeatureMatrix::new(rows);
    for c in numeric {
        let values = c["values"].as_array().unwrap();
        m = m.with_numeric(
            c["name"].as_str().unwrap(),
            values.iter().map(Value::as_f64).collect(),
        );
    }
    for c in categorical {
        let values = c["values"].as_array().unwrap();
        m = m.with_categorical(
            c["name"].as_str().unwrap(),
            values
                .iter()
                .map(|x| x.as_str().map(str::to_owned))
                .collect(),
        );
    }
    m
}

fn mean_and_sd(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let squares: f64 = xs.iter().map(|x| (x - mean) * (x - mean)).sum();
    (mean, (squares / (n - 1.0)).sqrt())
}

#[test]
fn reconstruction_errors_equal_nannymls() {
    let all = fixture("multivariate.json");
    let cases = all["cases"].as_object().expect("cases");
    assert!(cases.len() >= 4);
    for (name, case) in cases {
        let reference = matrix(&case["reference_rows"]);
        let analysis = matrix(&case["analysis_rows"]);
        let fitted = Reconstruction::fit(&reference, DEFAULT_VARIANCE_KEPT)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            fitted.components() as u64,
            case["components"].as_u64().unwrap(),
            "{name}: components"
        );
        let ratios = floats(&case["explained_variance_ratio"]);
        for (i, (&got, &want)) in fitted
            .explained_variance_ratio()
            .iter()
            .zip(&ratios)
            .enumerate()
        {
            assert_close(got, want, REL, &format!("{name} variance ratio {i}"));
        }

        for (window, rows) in [("reference", &reference), ("analysis", &analysis)] {
            let errors = fitted.errors(rows).unwrap();
            assert_eq!(errors.len(), rows.rows);
            let head = floats(&case[format!("{window}_errors_head")]);
            for (i, (&got, &want)) in errors.iter().zip(&head).enumerate() {
                assert_close(got, want, REL, &format!("{name} {window} row {i} error"));
            }
            // NannyML's value and sampling error of the window as one chunk.
            let (mean, sd) = mean_and_sd(&errors);
            let want = &case[window];
            assert_close(
                mean,
                want["value"].as_f64().unwrap(),
                REL,
                &format!("{name} {window} mean error"),
            );
            assert_close(
                sd / (errors.len() as f64).sqrt(),
                want["sampling_error"].as_f64().unwrap(),
                REL,
                &format!("{name} {window} sampling error"),
            );
        }

        let drift = reconstruction_drift(&reference, &analysis, DEFAULT_VARIANCE_KEPT).unwrap();
        let (nml_ref, nml_ana) = (&case["reference"], &case["analysis"]);
        assert_close(
            drift.value,
            nml_ana["value"].as_f64().unwrap(),
            REL,
            &format!("{name} value"),
        );
        assert_close(
            drift.reference_value,
            nml_ref["value"].as_f64().unwrap(),
            REL,
            &format!("{name} reference value"),
        );
        // NannyML's reference sampling error is sd/√(reference rows); ours
        // is the same sd over √(window rows).
        let scaled = nml_ref["sampling_error"].as_f64().unwrap()
            * (reference.rows as f64 / analysis.rows as f64).sqrt();
        assert_close(
            drift.sampling_error,
            scaled,
            REL,
            &format!("{name} sampling error"),
        );
        assert_eq!(drift.rows, analysis.rows as u64);
        assert_eq!(drift.components, fitted.components());
        assert_eq!(
            drift.upper,
            drift.reference_value + 3.0 * drift.sampling_error
        );
        assert_eq!(
            drift.lower,
            (drift.reference_value - 3.0 * drift.sampling_error).max(0.0)
        );
        let expect_drift = name != "numeric_stable";
        assert_eq!(drift.drifted, expect_drift, "{name}: {drift:?}");
    }
}
