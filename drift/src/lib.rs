//! # modelwatch-drift
//!
//! Pure statistics: drift tests, distances, sketches, anomaly detectors and
//! the canary judge behind modelwatch's retrain and rollback
//! recommendations.
//!
//! It must do no I/O and no async: inputs are slices, counts and sketches;
//! outputs are plain `serde` result structs that a recommendation can quote
//! as evidence (method name and parameters, statistic, p-value, threshold,
//! decision). Degenerate input (empty, a single value, constant where the
//! statistic needs spread) yields an explicit `not_enough_data` result,
//! never NaN. The only persisted format is the serde form of
//! [`KllSketch`] (reference profiles), whose `format` field is 1.
//!
//! ## Map
//! - [`numeric`]: KS (exact/asymp/auto as scipy), Wasserstein-1 (raw and
//!   normed), PSI, Jensen–Shannon, Hellinger, Anderson–Darling k-sample,
//!   Cramér–von Mises, Mann–Whitney U, Welch's t, energy distance.
//! - [`categorical`]: chi-square, G-test, Cramér's V, two-proportion z,
//!   Fisher's exact, total variation, L∞, JS and PSI with an explicit bucket
//!   for categories unseen in the reference.
//! - [`binned`]: PSI, JS, chi-square and Hellinger on histogram buckets.
//! - [`sketch`]: a mergeable KLL quantile sketch and sketch-based KS, PSI
//!   and Wasserstein.
//! - [`performance`]: realized performance from labels (accuracy,
//!   precision, recall, F1, ROC AUC, log loss, calibration error; MAE, RMSE,
//!   MAPE, R²), defined as scikit-learn defines them.
//! - [`cbpe`]: estimated accuracy, precision, recall, F1 and ROC AUC of a
//!   binary classifier on a window without labels, and of a multiclass
//!   one from its class scores ([`cbpe::multiclass`]) (NannyML's CBPE:
//!   isotonic calibration on the labelled reference, expected confusion
//!   matrix, ±3 sampling-error bands).
//! - [`dle`]: estimated MAE, MSE, RMSE and MAPE of a regression model on a
//!   window without labels (NannyML's direct loss estimation, its loss
//!   models gradient-boosted trees of our own).
//! - [`multivariate`]: drift of the features taken together (NannyML's PCA
//!   data reconstruction error), on a [`FeatureMatrix`] of the windows'
//!   rows ([`matrix`]).
//! - [`fairness`]: selection rates per group and the gaps between groups
//!   (demographic parity, disparate impact, equal opportunity, equalized
//!   odds), defined as fairlearn defines them.
//! - [`quality`]: data quality of a window against its reference (missing
//!   and mistyped values, out-of-range numbers, unseen categories).
//! - [`sample`]: the values a test runs on: all of a window's up to a
//!   limit, a deterministic threshold sample with a stated CDF error bound
//!   beyond ([`WindowValues`]); the same window always gives the same values.
//! - [`report`]: Evidently-compatible automatic test selection, per-feature
//!   overrides, Bonferroni / Benjamini–Hochberg correction, an effect-size
//!   floor and dataset drift by drifted share — entry point
//!   [`evaluate_features`].
//! - [`anomaly`]: rolling z-score, median/MAD bands, EWMA, CUSUM and
//!   Page–Hinkley with a persistence rule — entry point [`anomaly::detect`].
//! - [`canary`]: the Kayenta-style canary judge — entry points
//!   [`canary::judge`] and [`canary::compare_error_rates`].
//!
//! ## Degenerate input
//! Empty samples always give `not_enough_data`. Beyond that a statistic is
//! computed whenever it is mathematically defined, so a constant feature
//! that jumps to another constant is still reported as drift:
//! - KS, PSI, JS, Hellinger, energy, Wasserstein: any non-empty samples
//!   (the normed Wasserstein divides by `max(std_ref, 0.001)` as Evidently);
//! - Welch's t and Cramér–von Mises: two values per sample, and Welch a
//!   non-zero variance; Anderson–Darling: four values and two distinct;
//!   Mann–Whitney: not every value tied (scipy returns p = 1 from z = −∞
//!   there; we say `not_enough_data`);
//! - contingency tests, Cramér's V and z: at least two categories overall.
//!
//! ## Example
//!
//! ```
//! use modelwatch_drift::{evaluate_features, CategoryCounts, FeatureSpec, DriftMethod, ReportConfig};
//!
//! let reference: Vec<f64> = (0..2000).map(|i| (i % 100) as f64).collect();
//! let current: Vec<f64> = (0..2000).map(|i| (i % 100) as f64 + 30.0).collect();
//! let cats_ref = CategoryCounts::from_values(["a", "b", "a", "c"]);
//! let cats_cur = CategoryCounts::from_values(["a", "b", "b", "new"]);
//! let features = [
//!     FeatureSpec::numeric("latency_ms", &reference, &current),
//!     FeatureSpec::categorical("country", &cats_ref, &cats_cur).with_method(DriftMethod::ChiSquare),
//! ];
//! let report = evaluate_features(&features, &ReportConfig::default());
//! assert!(report.features[0].result.drifted()); // Wasserstein (normed) >= 0.1
//! let evidence = serde_json::to_string(&report).unwrap();
//! assert!(evidence.contains("\"method\":\"wasserstein\""));
//! ```
//!
//! ## Correctness
//! Every statistic with a scipy counterpart is checked against fixtures
//! generated by `scripts/gen_fixtures.py` with pinned scipy/numpy
//! (`scripts/requirements.txt`); see `tests/drift.rs` for the tolerances.

pub mod anomaly;
pub mod binned;
pub mod canary;
pub mod categorical;
pub mod cbpe;
pub mod dle;
mod error;
pub mod fairness;
mod gbdt;
pub mod matrix;
pub mod multivariate;
pub mod numeric;
pub mod performance;
pub mod quality;
pub mod report;
mod result;
pub mod sample;
pub mod sketch;
mod special;

pub use categorical::CategoryCounts;
pub use error::{DriftError, Result};
pub use matrix::FeatureMatrix;
pub use report::{
    Correction, DriftReport, FeatureData, FeatureDrift, FeatureSpec, ReportConfig,
    evaluate_feature, evaluate_features, select_method,
};
pub use result::{Decision, DriftMethod, Param, Params, Statistic, TestResult, ThresholdKind};
pub use sample::{Sampling, TestedValues, WindowValues};
pub use sketch::KllSketch;

/// Special functions exposed for tests and benchmarks (not a stable API).
#[doc(hidden)]
pub mod __private {
    pub use crate::special::{kolmogorov_n_sf, smirnov_sf};
}
