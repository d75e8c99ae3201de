//! Direct loss estimation (DLE) of a regression model: its MAE, MSE, RMSE
//! and MAPE on a window **without labels**, from its features and
//! predictions, as NannyML 0.13 defines DLE (checked against NannyML on
//! the fixtures of `scripts/gen_dle_fixtures.py` in
//! `tests/nannyml_dle.rs`: every estimate within NannyML's own confidence
//! band, the sampling errors NannyML's).
//!
//! 1. **Loss models** fitted on a labelled reference window. Each row's
//!    loss is computed from its label `y` and prediction `ŷ`: `|y − ŷ|`
//!    (MAE), `(y − ŷ)²` (MSE and RMSE) and `|y − ŷ| / max(ε, |y|)` with
//!    `ε` the float64 machine epsilon (MAPE). A gradient-boosted
//!    regressor learns each loss from the row's features and prediction.
//!    NannyML fits LightGBM's `LGBMRegressor()` with default
//!    hyperparameters; here the regressor is our own deterministic
//!    re-implementation of those defaults (`gbdt.rs`: its choices and where
//!    it differs from LightGBM), so the estimates agree with NannyML's to
//!    well within its band but not to the digit. NannyML fits a separate
//!    model for RMSE on the same squared errors; LightGBM is deterministic,
//!    so that model is the MSE model, and it is shared here. Categorical
//!    features are categories as NannyML passes them to LightGBM (a
//!    missing value is a category of its own; one the reference never had
//!    falls with the rest of a split).
//! 2. **Estimate** on a window: each row's predicted loss clipped at 0, and
//!    their mean; the RMSE is the square root of the mean of the clipped
//!    predicted squared errors.
//! 3. **Confidence band**: NannyML's sampling error from the reference's
//!    realized losses (population standard deviations) and the window's
//!    row count `n`: `std(|y − ŷ|) / √n` (MAE), `std((y − ŷ)²) / √n`
//!    (MSE), `√(std((y − ŷ)²)² / (4 n mean((y − ŷ)²)))` (RMSE) and
//!    `std(|y − ŷ| / y) / √n` (MAPE, the signed label in the denominator as
//!    NannyML has it; a zero label is replaced by `ε` as in the loss). The
//!    band is ±3 sampling errors, the lower bound clipped at 0 (a loss is
//!    never negative); there is no upper limit. A reference predicted
//!    perfectly (all squared errors 0) gives an RMSE sampling error of 0
//!    where NannyML divides 0 by 0.
//!
//! What this module must not do: read rows, or decide; it takes a
//! [`FeatureMatrix`] and aligned slices and returns numbers.

use serde::{Deserialize, Serialize};

use crate::cbpe::{Estimate, SAMPLING_ERROR_RANGE};
use crate::error::{Result, invalid, not_enough};
use crate::gbdt::{Binner, Column, Gbdt, Params};
use crate::matrix::FeatureMatrix;

/// The smallest reference a loss model is fitted on: two leaves of
/// LightGBM's `min_data_in_leaf` (20), the least that can be split.
pub const MIN_REFERENCE_ROWS: usize = 40;

/// The loss models fitted on the labelled reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dle {
    rows: u64,
    numeric: Vec<String>,
    categorical: Vec<String>,
    binner: Binner,
    mae: Gbdt,
    mse: Gbdt,
    mape: Gbdt,
    components: SamplingComponents,
}

/// What the sampling errors need from the reference: population standard
/// deviations of the realized losses, and the mean squared error.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SamplingComponents {
    pub absolute_error_std: f64,
    pub squared_error_std: f64,
    pub squared_error_mean: f64,
    pub percentage_error_std: f64,
}

/// A window's estimated regression errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DleEstimates {
    pub rows: u64,
    pub mae: Estimate,
    pub mse: Estimate,
    pub rmse: Estimate,
    pub mape: Estimate,
}

impl Dle {
    /// Fits the loss models on the reference's features, predictions and
    /// labels (one per row).
    pub fn fit(reference: &FeatureMatrix, predictions: &[f64], labels: &[f64]) -> Result<Self> {
        reference.validate()?;
        let n = reference.rows;
        if n == 0 {
            return Err(not_enough(
                "dle",
                "the reference has no rows; DLE learns the model's errors from labelled reference rows",
            ));
        }
        if predictions.len() != n || labels.len() != n {
            return Err(invalid(
                "reference",
                format!(
                    "{n} feature rows but {} predictions and {} labels; give one prediction and one label per row",
                    predictions.len(),
                    labels.len()
                ),
            ));
        }
        check_all_finite(predictions, "reference predictions")?;
        check_all_finite(labels, "reference labels")?;
        if n < MIN_REFERENCE_ROWS {
            return Err(not_enough(
                "dle",
                format!(
                    "the reference has {n} labelled rows; DLE needs at least {MIN_REFERENCE_ROWS} to fit its loss models"
                ),
            ));
        }
        let absolute: Vec<f64> = labels
            .iter()
            .zip(predictions)
            .map(|(y, p)| (y - p).abs())
            .collect();
        let squared: Vec<f64> = absolute.iter().map(|e| e * e).collect();
        let percentage: Vec<f64> = absolute
            .iter()
            .zip(labels)
            .map(|(e, y)| e / y.abs().max(f64::EPSILON))
            .collect();
        // NannyML's MAPE sampling error divides by the signed label.
        let signed_percentage: Vec<f64> = absolute
            .iter()
            .zip(labels)
            .map(|(e, &y)| e / if y == 0.0 { f64::EPSILON } else { y })
            .collect();
        let components = SamplingComponents {
            absolute_error_std: population_std(&absolute),
            squared_error_std: population_std(&squared),
            squared_error_mean: mean(&squared),
            percentage_error_std: population_std(&signed_percentage),
        };
        if !(components.squared_error_std.is_finite()
            && components.percentage_error_std.is_finite())
        {
            return Err(invalid(
                "reference",
                "the errors are too large to square in float64; rescale the target",
            ));
        }
        let numeric: Vec<String> = reference.numeric.iter().map(|c| c.name.clone()).collect();
        let categorical: Vec<String> = reference
            .categorical
            .iter()
            .map(|c| c.name.clone())
            .collect();
        let mut all: Vec<&String> = numeric.iter().chain(&categorical).collect();
        all.sort();
        if let Some(w) = all.windows(2).find(|w| w[0] == w[1]) {
            return Err(invalid(
                "features",
                format!(
                    "two reference columns are named {}; columns are matched by name",
                    w[0]
                ),
            ));
        }
        let params = Params::default();
        let names = Names {
            numeric: &numeric,
            categorical: &categorical,
        };
        let columns = columns(reference, &names, predictions)?;
        let binner = Binner::fit(&columns, &params);
        let binned = binner.bin(&columns);
        Ok(Dle {
            rows: n as u64,
            numeric,
            categorical,
            mae: Gbdt::fit(&binner, &binned, &absolute, &params),
            mse: Gbdt::fit(&binner, &binned, &squared, &params),
            mape: Gbdt::fit(&binner, &binned, &percentage, &params),
            binner,
            components,
        })
    }

    /// Estimates the window's errors from its features and predictions.
    /// Columns are matched to the reference's by name (extra ones are
    /// ignored).
    pub fn estimate(&self, current: &FeatureMatrix, predictions: &[f64]) -> Result<DleEstimates> {
        current.validate()?;
        let n = current.rows;
        if n == 0 {
            return Err(not_enough(
                "dle",
                "the window has no rows to estimate errors on",
            ));
        }
        if predictions.len() != n {
            return Err(invalid(
                "window",
                format!(
                    "{n} feature rows but {} predictions; give one prediction per row",
                    predictions.len()
                ),
            ));
        }
        check_all_finite(predictions, "window predictions")?;
        let names = Names {
            numeric: &self.numeric,
            categorical: &self.categorical,
        };
        let binned = self.binner.bin(&columns(current, &names, predictions)?);
        let mean_clipped = |model: &Gbdt| -> f64 {
            model
                .predict(&binned)
                .iter()
                .map(|p| p.max(0.0))
                .sum::<f64>()
                / n as f64
        };
        let c = &self.components;
        let root_n = (n as f64).sqrt();
        let mse = mean_clipped(&self.mse);
        let rmse_error = if c.squared_error_mean > 0.0 {
            (c.squared_error_std.powi(2) / (4.0 * n as f64 * c.squared_error_mean)).sqrt()
        } else {
            0.0
        };
        Ok(DleEstimates {
            rows: n as u64,
            mae: band(mean_clipped(&self.mae), c.absolute_error_std / root_n),
            mse: band(mse, c.squared_error_std / root_n),
            rmse: band(mse.sqrt(), rmse_error),
            mape: band(mean_clipped(&self.mape), c.percentage_error_std / root_n),
        })
    }

    /// Labelled reference rows the models were fitted on.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The reference's sampling-error components.
    pub fn sampling_components(&self) -> &SamplingComponents {
        &self.components
    }
}

fn band(value: f64, sampling_error: f64) -> Estimate {
    Estimate {
        value,
        sampling_error,
        lower: (value - SAMPLING_ERROR_RANGE * sampling_error).max(0.0),
        upper: value + SAMPLING_ERROR_RANGE * sampling_error,
    }
}

fn check_all_finite(xs: &[f64], what: &'static str) -> Result<()> {
    match xs.iter().position(|x| !x.is_finite()) {
        None => Ok(()),
        Some(i) => Err(invalid(
            "dle",
            format!(
                "{what}: row {i} is {}; drop or fill rows without a finite value",
                xs[i]
            ),
        )),
    }
}

/// The reference's column names, in the order the models take them.
struct Names<'a> {
    numeric: &'a [String],
    categorical: &'a [String],
}

/// The model's input columns found by name: the numeric features, the
/// categorical ones and the prediction (NannyML's
/// `feature_column_names + [y_pred]`).
fn columns<'a>(
    m: &'a FeatureMatrix,
    names: &Names<'_>,
    predictions: &'a [f64],
) -> Result<Vec<Column<'a>>> {
    let mut out = Vec::with_capacity(names.numeric.len() + names.categorical.len() + 1);
    for name in names.numeric {
        let c = m.numeric.iter().find(|c| &c.name == name).ok_or_else(|| {
            invalid(
                "features",
                format!("the window has no numeric column {name}, which the DLE reference had"),
            )
        })?;
        out.push(Column::Numeric(&c.values));
    }
    for name in names.categorical {
        let c = m
            .categorical
            .iter()
            .find(|c| &c.name == name)
            .ok_or_else(|| {
                invalid(
                    "features",
                    format!(
                        "the window has no categorical column {name}, which the DLE reference had"
                    ),
                )
            })?;
        out.push(Column::Categorical(&c.values));
    }
    out.push(Column::Plain(predictions));
    Ok(out)
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// `np.std` (ddof 0), two passes.
fn population_std(xs: &[f64]) -> f64 {
    let m = mean(xs);
    (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / xs.len() as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DriftError;

    /// Deterministic uniforms in [0, 1) (splitmix64).
    struct Uniform(u64);

    impl Uniform {
        fn next(&mut self) -> f64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (z ^ (z >> 31)) as f64 / 2f64.powi(64)
        }

        fn normal(&mut self) -> f64 {
            let u1 = self.next().max(f64::MIN_POSITIVE);
            (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * self.next()).cos()
        }
    }

    /// Rows whose noise grows with `x` (the model predicts the mean);
    /// `skew` > 1 crowds `x` towards 1, the noisy end.
    fn window(rng: &mut Uniform, n: usize, skew: f64) -> (FeatureMatrix, Vec<f64>, Vec<f64>) {
        let (mut x, mut z, mut pred, mut label) = (vec![], vec![], vec![], vec![]);
        for _ in 0..n {
            let xi = rng.next().powf(1.0 / skew);
            let zi = rng.normal();
            let p = 10.0 + 3.0 * xi + zi;
            x.push(Some(xi));
            z.push(Some(zi));
            pred.push(p);
            label.push(p + rng.normal() * (0.1 + 2.0 * xi));
        }
        let m = FeatureMatrix::new(n)
            .with_numeric("x", x)
            .with_numeric("z", z);
        (m, pred, label)
    }

    fn realized_mae(pred: &[f64], label: &[f64]) -> f64 {
        pred.iter()
            .zip(label)
            .map(|(p, y)| (y - p).abs())
            .sum::<f64>()
            / pred.len() as f64
    }

    #[test]
    fn a_window_crowded_into_the_noisy_region_has_a_higher_estimated_mae() {
        let mut rng = Uniform(7);
        let (reference, pred, label) = window(&mut rng, 4000, 1.0);
        let dle = Dle::fit(&reference, &pred, &label).unwrap();
        let (same, same_pred, same_label) = window(&mut rng, 2000, 1.0);
        let (noisy, noisy_pred, noisy_label) = window(&mut rng, 2000, 4.0);
        let stable = dle.estimate(&same, &same_pred).unwrap();
        let shifted = dle.estimate(&noisy, &noisy_pred).unwrap();
        assert!(
            shifted.mae.lower > stable.mae.upper,
            "{stable:?} {shifted:?}"
        );
        assert!(shifted.mse.value > stable.mse.value);
        assert!(shifted.rmse.value > stable.rmse.value);
        // Each estimate near what the labels it never saw say.
        for (e, p, y) in [
            (&stable, &same_pred, &same_label),
            (&shifted, &noisy_pred, &noisy_label),
        ] {
            let realized = realized_mae(p, y);
            assert!(
                (e.mae.value - realized).abs() < 4.0 * e.mae.sampling_error,
                "{e:?} {realized}"
            );
        }
        // RMSE is the root of the estimated MSE; the bands are ±3 errors.
        assert!((shifted.rmse.value - shifted.mse.value.sqrt()).abs() < 1e-12);
        assert_eq!(
            shifted.mae.upper,
            shifted.mae.value + 3.0 * shifted.mae.sampling_error
        );
        assert_eq!(shifted.rows, 2000);
        assert_eq!(dle.rows(), 4000);
    }

    #[test]
    fn sampling_errors_are_nannymls_from_the_reference() {
        // Errors 1, −1, 2, −2 on labels 2, 4, 8, 10, repeated.
        let labels: Vec<f64> = [2.0, 4.0, 8.0, 10.0].repeat(20);
        let preds: Vec<f64> = labels
            .iter()
            .zip([1.0, -1.0, 2.0, -2.0].repeat(20))
            .map(|(y, e)| y - e)
            .collect();
        let m = FeatureMatrix::new(80);
        let dle = Dle::fit(&m, &preds, &labels).unwrap();
        let c = dle.sampling_components();
        assert!((c.absolute_error_std - 0.5).abs() < 1e-12);
        assert!((c.squared_error_mean - 2.5).abs() < 1e-12);
        assert!((c.squared_error_std - 1.5).abs() < 1e-12);
        let e = dle.estimate(&FeatureMatrix::new(4), &preds[..4]).unwrap();
        assert!((e.mae.sampling_error - 0.25).abs() < 1e-12);
        assert!((e.mse.sampling_error - 0.75).abs() < 1e-12);
        let rmse = (1.5f64.powi(2) / (4.0 * 4.0 * 2.5)).sqrt();
        assert!((e.rmse.sampling_error - rmse).abs() < 1e-12);
        // Without features the models are the reference's mean loss.
        assert!((e.mae.value - 1.5).abs() < 1e-12);
        assert!((e.mse.value - 2.5).abs() < 1e-12);
    }

    #[test]
    fn a_perfect_reference_gives_zero_errors_not_nan() {
        let preds: Vec<f64> = (0..50).map(f64::from).collect();
        let dle = Dle::fit(&FeatureMatrix::new(50), &preds, &preds).unwrap();
        let e = dle
            .estimate(&FeatureMatrix::new(3), &[1.0, 2.0, 3.0])
            .unwrap();
        for m in [&e.mae, &e.mse, &e.rmse, &e.mape] {
            assert_eq!(
                (m.value, m.sampling_error, m.lower, m.upper),
                (0.0, 0.0, 0.0, 0.0)
            );
        }
    }

    #[test]
    fn degenerate_input_is_an_error_that_says_what_to_do() {
        let mut rng = Uniform(11);
        let (m, pred, label) = window(&mut rng, 100, 1.0);
        let not_enough_data = |r: Result<Dle>| matches!(r, Err(DriftError::NotEnoughData { .. }));
        assert!(not_enough_data(Dle::fit(&FeatureMatrix::new(0), &[], &[])));
        let (small, small_pred, small_label) = window(&mut rng, 39, 1.0);
        let e = Dle::fit(&small, &small_pred, &small_label).unwrap_err();
        assert!(e.to_string().contains("at least 40"), "{e}");
        let e = Dle::fit(&m, &pred[..99], &label).unwrap_err();
        assert!(
            e.to_string()
                .contains("one prediction and one label per row"),
            "{e}"
        );
        let mut bad = label.clone();
        bad[7] = f64::NAN;
        let e = Dle::fit(&m, &pred, &bad).unwrap_err();
        assert!(e.to_string().contains("row 7"), "{e}");

        let dle = Dle::fit(&m, &pred, &label).unwrap();
        assert!(matches!(
            dle.estimate(&FeatureMatrix::new(0), &[]),
            Err(DriftError::NotEnoughData { .. })
        ));
        assert!(dle.estimate(&m, &pred[..10]).is_err());
        let mut bad = pred.clone();
        bad[3] = f64::INFINITY;
        assert!(dle.estimate(&m, &bad).is_err());
        let only_x = FeatureMatrix::new(1).with_numeric("x", vec![Some(0.5)]);
        let e = dle.estimate(&only_x, &[10.0]).unwrap_err();
        assert!(e.to_string().contains("no numeric column z"), "{e}");
        // Missing values and extra columns are fine.
        let holes = FeatureMatrix::new(1)
            .with_numeric("z", vec![None])
            .with_numeric("x", vec![None])
            .with_categorical("extra", vec![Some("a".into())]);
        let e = dle.estimate(&holes, &[10.0]).unwrap();
        assert!(e.mae.value.is_finite() && e.mae.value >= 0.0);
    }

    #[test]
    fn categorical_features_and_unseen_categories() {
        let mut rng = Uniform(3);
        let n = 3000;
        let segments = ["a", "b", "c", "d", "e", "f"];
        let mut seg = Vec::with_capacity(n);
        let (mut pred, mut label) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for i in 0..n {
            let s = segments[i % 6];
            let p = 5.0 + rng.next();
            // Segment "f" is noisy.
            let sd = if s == "f" { 3.0 } else { 0.2 };
            seg.push((i % 17 != 0).then(|| s.to_string()));
            pred.push(p);
            label.push(p + sd * rng.normal());
        }
        let reference = FeatureMatrix::new(n).with_categorical("segment", seg);
        let dle = Dle::fit(&reference, &pred, &label).unwrap();
        let window = |s: Option<&str>| {
            let m = FeatureMatrix::new(200)
                .with_categorical("segment", vec![s.map(str::to_string); 200]);
            dle.estimate(&m, &pred[..200]).unwrap().mae.value
        };
        let (noisy, quiet, unseen) = (window(Some("f")), window(Some("a")), window(Some("zz")));
        assert!(noisy > 1.5 && quiet < 0.5, "{noisy} {quiet}");
        // A category the reference never had falls with the rest of each
        // split: a finite, non-negative estimate.
        assert!(unseen.is_finite() && unseen >= 0.0);
        // The serde form round-trips to the same estimates.
        let back: Dle = serde_json::from_str(&serde_json::to_string(&dle).unwrap()).unwrap();
        assert_eq!(back, dle);
    }
}
