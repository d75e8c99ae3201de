//! Per-feature test selection and the dataset-level drift report.
//!
//! Selection follows Evidently's defaults (`get_default_stattest`), so a
//! team moving from Evidently sees the same methods and thresholds:
//!
//! | reference rows | feature | method | threshold |
//! |---|---|---|---|
//! | ≤ 1000 | numeric, > 5 distinct values | `ks` | p < 0.05 |
//! | ≤ 1000 | categorical (or numeric ≤ 5 values), ≤ 2 values | `z_test` | p < 0.05 |
//! | ≤ 1000 | categorical, > 2 values | `chi_square` | p < 0.05 |
//! | > 1000 | numeric | `wasserstein` (normed by reference std) | ≥ 0.1 |
//! | > 1000 | categorical | `jensen_shannon` (natural log) | ≥ 0.1 |
//!
//! Numeric references that are compared many times can be sorted once
//! ([`SortedSample`], [`FeatureSpec::prepared`]); results are identical.
//!
//! Distinct values are counted over reference and current together; a
//! numeric feature with at most 5 distinct values is treated as
//! categorical (its values become category labels). Any feature can
//! override the method and threshold.
//!
//! On top of Evidently, and off by default so reports stay comparable:
//! multiple-testing correction across the p-value tests of one report
//! (Bonferroni or Benjamini–Hochberg), and an effect-size floor: a
//! significant p-value only counts as drift when the effect (Wasserstein
//! distance in reference standard deviations for numeric features, total
//! variation for categorical ones) reaches the floor, so a million rows do
//! not flag a shift nobody cares about. Dataset drift is declared when the
//! share of drifted features among those with enough data reaches
//! `drift_share` (0.5).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::binned;
use crate::categorical::{self, CategoryCounts};
use crate::error::{DriftError, Result, check_finite, not_enough};
use crate::numeric::{self, CvmMode, HISTOGRAM_BINS, KsMode, MwMode, PSI_BINS, SortedSample};
use crate::result::{Decision, DriftMethod, Param, Statistic, TestResult};
use crate::sketch::{self, KllSketch};
use crate::special;

/// Reference size above which Evidently switches from tests to distances.
pub const LARGE_REFERENCE_ROWS: u64 = 1000;

/// A numeric feature with at most this many distinct values is categorical.
pub const MAX_DISCRETE_NUMERIC_VALUES: usize = 5;

/// The data of one feature, in whichever form the caller has it.
#[derive(Debug, Clone, Copy)]
pub enum FeatureData<'a> {
    /// Raw numeric values.
    Numeric {
        /// Reference window values.
        reference: &'a [f64],
        /// Current window values.
        current: &'a [f64],
    },
    /// Raw numeric values with a reference sorted in advance
    /// ([`SortedSample`]); same statistics as `Numeric`, half the sorting.
    PreparedNumeric {
        /// Reference window, validated and sorted once.
        reference: &'a SortedSample,
        /// Current window values.
        current: &'a [f64],
    },
    /// Category counts.
    Categorical {
        /// Reference window counts.
        reference: &'a CategoryCounts,
        /// Current window counts.
        current: &'a CategoryCounts,
    },
    /// Numeric values summarised by sketches (bounded memory).
    Sketch {
        /// Reference profile.
        reference: &'a KllSketch,
        /// Current window sketch.
        current: &'a KllSketch,
    },
    /// Histogram bucket counts with shared boundaries.
    Binned {
        /// Reference bucket counts.
        reference: &'a [f64],
        /// Current bucket counts.
        current: &'a [f64],
    },
}

/// One feature to evaluate.
#[derive(Debug, Clone)]
pub struct FeatureSpec<'a> {
    /// Feature (column) name.
    pub name: String,
    /// Its data.
    pub data: FeatureData<'a>,
    /// DriftMethod override; `None` selects automatically.
    pub method: Option<DriftMethod>,
    /// Threshold override; `None` uses the method's default.
    pub threshold: Option<f64>,
}

impl<'a> FeatureSpec<'a> {
    /// A numeric feature with automatic selection.
    pub fn numeric(name: impl Into<String>, reference: &'a [f64], current: &'a [f64]) -> Self {
        Self::new(name, FeatureData::Numeric { reference, current })
    }

    /// A numeric feature whose reference was sorted in advance.
    pub fn prepared(
        name: impl Into<String>,
        reference: &'a SortedSample,
        current: &'a [f64],
    ) -> Self {
        Self::new(name, FeatureData::PreparedNumeric { reference, current })
    }

    /// A categorical feature with automatic selection.
    pub fn categorical(
        name: impl Into<String>,
        reference: &'a CategoryCounts,
        current: &'a CategoryCounts,
    ) -> Self {
        Self::new(name, FeatureData::Categorical { reference, current })
    }

    /// A sketched numeric feature with automatic selection.
    pub fn sketch(
        name: impl Into<String>,
        reference: &'a KllSketch,
        current: &'a KllSketch,
    ) -> Self {
        Self::new(name, FeatureData::Sketch { reference, current })
    }

    /// A histogram feature (default method PSI).
    pub fn binned(name: impl Into<String>, reference: &'a [f64], current: &'a [f64]) -> Self {
        Self::new(name, FeatureData::Binned { reference, current })
    }

    fn new(name: impl Into<String>, data: FeatureData<'a>) -> Self {
        FeatureSpec {
            name: name.into(),
            data,
            method: None,
            threshold: None,
        }
    }

    /// Overrides the method.
    pub fn with_method(mut self, method: DriftMethod) -> Self {
        self.method = Some(method);
        self
    }

    /// Overrides the threshold.
    pub fn with_threshold(mut self, threshold: f64) -> Self {
        self.threshold = Some(threshold);
        self
    }
}

/// Multiple-testing correction across a report's p-value tests (named in
/// `modelwatch-types`, like the methods).
pub use modelwatch_types::Correction;

/// Report settings. `Default` is Evidently-compatible.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportConfig {
    /// Multiple-testing correction.
    pub correction: Correction,
    /// Dataset drift when the drifted share reaches this (0.5).
    pub drift_share: f64,
    /// Minimum Wasserstein distance (in reference standard deviations) for
    /// a significant numeric p-value test to count as drift (0 = off).
    pub effect_floor_numeric: f64,
    /// Minimum total variation for a significant categorical p-value test
    /// to count as drift (0 = off).
    pub effect_floor_categorical: f64,
    /// KS p-value mode.
    pub ks_mode: KsMode,
    /// Reference-quantile bins for PSI.
    pub psi_bins: usize,
    /// Equal-width pooled bins for numeric Jensen–Shannon and Hellinger.
    pub histogram_bins: usize,
    /// Logarithm base for Jensen–Shannon (`None` = natural log).
    pub js_base: Option<f64>,
    /// Evaluate features on several threads.
    pub parallel: bool,
}

impl Default for ReportConfig {
    fn default() -> Self {
        ReportConfig {
            correction: Correction::None,
            drift_share: 0.5,
            effect_floor_numeric: 0.0,
            effect_floor_categorical: 0.0,
            ks_mode: KsMode::Auto,
            psi_bins: PSI_BINS,
            histogram_bins: HISTOGRAM_BINS,
            js_base: None,
            parallel: true,
        }
    }
}

/// One feature's line in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureDrift {
    /// Feature name.
    pub name: String,
    /// How the method was chosen: `"auto"` or `"override"`.
    pub selection: String,
    /// The test result (decision after correction and effect floor).
    pub result: TestResult,
    /// p-value after multiple-testing correction (p-value tests only).
    pub adjusted_p_value: Option<f64>,
}

/// The dataset-level report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftReport {
    /// Per-feature results, in input order.
    pub features: Vec<FeatureDrift>,
    /// Number of features.
    pub n_features: usize,
    /// Features whose decision is `drift`.
    pub n_drifted: usize,
    /// Features whose decision is `not_enough_data`.
    pub n_not_enough_data: usize,
    /// `n_drifted / (n_features - n_not_enough_data)` (0 when none had data).
    pub drifted_share: f64,
    /// The share threshold used.
    pub drift_share_threshold: f64,
    /// Whether the dataset as a whole drifted.
    pub dataset_drift: bool,
    /// The correction applied.
    pub correction: Correction,
}

/// Distinct values across two sorted slices, stopping early past `limit`.
fn distinct_pooled(r: &[f64], c: &[f64], limit: usize) -> Option<BTreeSet<u64>> {
    let mut set = BTreeSet::new();
    for v in r.iter().chain(c) {
        // Normalise -0.0 to 0.0 so they count once.
        set.insert((v + 0.0).to_bits());
        if set.len() > limit {
            return None;
        }
    }
    Some(set)
}

fn discrete_counts(xs: &[f64]) -> CategoryCounts {
    CategoryCounts::from_pairs(
        special::tie_groups_sorted(xs)
            .iter()
            .scan(0usize, |pos, &len| {
                let v = xs[*pos];
                *pos += len;
                Some((format!("{}", v + 0.0), len as u64))
            }),
    )
}

/// Evidently's automatic choice for a feature.
pub fn select_method(data: &FeatureData<'_>) -> DriftMethod {
    match data {
        FeatureData::Numeric { .. } | FeatureData::PreparedNumeric { .. } => {
            let (reference, current) = numeric_slices(data).unwrap_or((&[], &[]));
            let discrete = distinct_pooled(reference, current, MAX_DISCRETE_NUMERIC_VALUES);
            match discrete {
                Some(set) => select_categorical(reference.len() as u64, set.len()),
                None if reference.len() as u64 <= LARGE_REFERENCE_ROWS => DriftMethod::Ks,
                None => DriftMethod::Wasserstein,
            }
        }
        FeatureData::Categorical { reference, current } => {
            let mut pooled: CategoryCounts = (*reference).clone();
            pooled.merge(current);
            select_categorical(reference.total(), pooled.cardinality())
        }
        FeatureData::Sketch { reference, .. } => {
            if reference.count() <= LARGE_REFERENCE_ROWS {
                DriftMethod::Ks
            } else {
                DriftMethod::Wasserstein
            }
        }
        FeatureData::Binned { .. } => DriftMethod::Psi,
    }
}

/// Reference and current values of a numeric feature (raw or prepared).
fn numeric_slices<'b>(data: &FeatureData<'b>) -> Option<(&'b [f64], &'b [f64])> {
    match *data {
        FeatureData::Numeric { reference, current } => Some((reference, current)),
        FeatureData::PreparedNumeric { reference, current } => {
            Some((reference.as_slice(), current))
        }
        _ => None,
    }
}

fn select_categorical(n_reference: u64, n_values: usize) -> DriftMethod {
    if n_reference <= LARGE_REFERENCE_ROWS {
        if n_values <= 2 {
            DriftMethod::ZTest
        } else {
            DriftMethod::ChiSquare
        }
    } else {
        DriftMethod::JensenShannon
    }
}

fn unsupported(method: DriftMethod, kind: &str) -> DriftError {
    DriftError::InvalidParameter {
        name: "method",
        reason: format!("{method} is not available for {kind} features"),
    }
}

/// Evaluates one feature: the statistic, its decision and the effect size.
/// Never panics on user data; degenerate input gives `not_enough_data`.
pub fn evaluate_feature(spec: &FeatureSpec<'_>, config: &ReportConfig) -> FeatureDrift {
    let method = spec.method.unwrap_or_else(|| select_method(&spec.data));
    let threshold = spec.threshold.unwrap_or_else(|| method.default_threshold());
    let (n_ref, n_cur) = sizes(&spec.data);
    let (outcome, effect, floor) = compute(method, &spec.data, config);
    let mut result = TestResult::from_outcome(method, outcome, threshold, n_ref, n_cur);
    if result.decision != Decision::NotEnoughData {
        result.effect_size = effect;
        apply_floor(&mut result, floor);
    }
    FeatureDrift {
        name: spec.name.clone(),
        selection: if spec.method.is_some() {
            "override"
        } else {
            "auto"
        }
        .to_string(),
        result,
        adjusted_p_value: None,
    }
}

fn apply_floor(result: &mut TestResult, floor: f64) {
    if result.decision == Decision::Drift
        && result.method.is_p_value_test()
        && floor > 0.0
        && let Some(e) = result.effect_size
        && e < floor
    {
        result.decision = Decision::NoDrift;
        result.reason = Some(format!(
            "significant, but effect size {e:.4} is below the floor {floor}"
        ));
    }
    result
        .params
        .insert("effect_floor".to_string(), Param::Num(floor));
}

fn sizes(data: &FeatureData<'_>) -> (u64, u64) {
    match data {
        FeatureData::Numeric { reference, current } => {
            (reference.len() as u64, current.len() as u64)
        }
        FeatureData::PreparedNumeric { reference, current } => {
            (reference.len() as u64, current.len() as u64)
        }
        FeatureData::Categorical { reference, current } => (reference.total(), current.total()),
        FeatureData::Sketch { reference, current } => (reference.count(), current.count()),
        FeatureData::Binned { reference, current } => {
            let s = |v: &[f64]| v.iter().filter(|x| x.is_finite() && **x > 0.0).sum::<f64>() as u64;
            (s(reference), s(current))
        }
    }
}

type Computed = (Result<Statistic>, Option<f64>, f64);

fn compute(method: DriftMethod, data: &FeatureData<'_>, cfg: &ReportConfig) -> Computed {
    match data {
        FeatureData::Numeric { reference, current } => {
            compute_numeric(method, reference, false, current, cfg)
        }
        FeatureData::PreparedNumeric { reference, current } => {
            compute_numeric(method, reference.as_slice(), true, current, cfg)
        }
        FeatureData::Categorical { reference, current } => {
            compute_categorical(method, reference, current, cfg)
        }
        FeatureData::Sketch { reference, current } => {
            let out = match method {
                DriftMethod::Ks => sketch::ks(reference, current, cfg.ks_mode),
                DriftMethod::Psi => sketch::psi(reference, current, cfg.psi_bins),
                DriftMethod::Wasserstein => sketch::wasserstein(reference, current),
                m => Err(unsupported(m, "sketch")),
            };
            let effect = sketch::wasserstein(reference, current)
                .ok()
                .map(|s| s.statistic);
            (out, effect, cfg.effect_floor_numeric)
        }
        FeatureData::Binned { reference, current } => {
            let out = match method {
                DriftMethod::Psi => binned::psi(reference, current),
                DriftMethod::JensenShannon => {
                    binned::jensen_shannon(reference, current, cfg.js_base)
                }
                DriftMethod::ChiSquare => binned::chi_square(reference, current),
                DriftMethod::Hellinger => binned::hellinger(reference, current),
                m => Err(unsupported(m, "binned")),
            };
            (out, None, 0.0)
        }
    }
}

fn compute_numeric(
    method: DriftMethod,
    reference: &[f64],
    reference_sorted: bool,
    current: &[f64],
    cfg: &ReportConfig,
) -> Computed {
    if let Err(e) = check_finite(reference, "reference").and(check_finite(current, "current")) {
        return (Err(e), None, cfg.effect_floor_numeric);
    }
    if reference.is_empty() || current.is_empty() {
        return (
            Err(not_enough(method.name(), "a sample is empty")),
            None,
            cfg.effect_floor_numeric,
        );
    }
    let owned;
    let r: &[f64] = if reference_sorted {
        reference
    } else {
        owned = special::sorted_copy(reference);
        &owned
    };
    let c = special::sorted_copy(current);
    let categorical_view = || (discrete_counts(r), discrete_counts(&c));
    let out = match method {
        DriftMethod::Ks => numeric::ks_2samp_sorted(r, &c, cfg.ks_mode),
        DriftMethod::Wasserstein => numeric::wasserstein_sorted(r, &c),
        DriftMethod::Psi => numeric::psi_sorted(r, &c, cfg.psi_bins),
        DriftMethod::JensenShannon => {
            numeric::jensen_shannon_sorted(r, &c, cfg.histogram_bins, cfg.js_base)
        }
        DriftMethod::Hellinger => numeric::hellinger_sorted(r, &c, cfg.histogram_bins),
        DriftMethod::AndersonDarling => numeric::anderson_ksamp_sorted(&[r, &c]),
        DriftMethod::CramerVonMises => numeric::cramer_von_mises_sorted(r, &c, CvmMode::Auto),
        DriftMethod::MannWhitney => numeric::mann_whitney_sorted(r, &c, MwMode::Auto),
        DriftMethod::WelchT => numeric::welch_t(r, &c),
        DriftMethod::Energy => numeric::energy_sorted(r, &c),
        // Discrete numeric features (automatic selection) and explicit
        // categorical methods on numeric data use the values as labels.
        DriftMethod::ChiSquare
        | DriftMethod::GTest
        | DriftMethod::CramersV
        | DriftMethod::ZTest
        | DriftMethod::FisherExact
        | DriftMethod::TotalVariation
        | DriftMethod::LInf => {
            let (rc, cc) = categorical_view();
            return compute_categorical(method, &rc, &cc, cfg);
        }
    };
    let effect = if method == DriftMethod::Wasserstein {
        out.as_ref().ok().map(|s| s.statistic)
    } else {
        numeric::wasserstein_sorted(r, &c).ok().map(|s| s.statistic)
    };
    (out, effect, cfg.effect_floor_numeric)
}

fn compute_categorical(
    method: DriftMethod,
    reference: &CategoryCounts,
    current: &CategoryCounts,
    cfg: &ReportConfig,
) -> Computed {
    let a = categorical::align(reference, current);
    let out = match method {
        DriftMethod::ChiSquare => categorical::chi_square_aligned(&a, true),
        DriftMethod::GTest => categorical::g_test_aligned(&a, true),
        DriftMethod::CramersV => categorical::cramers_v_aligned(&a),
        DriftMethod::ZTest => categorical::z_test_aligned(&a),
        DriftMethod::FisherExact => categorical::fisher_exact_aligned(&a),
        DriftMethod::TotalVariation => categorical::total_variation_aligned(&a),
        DriftMethod::LInf => categorical::l_inf_aligned(&a),
        DriftMethod::JensenShannon => categorical::jensen_shannon_aligned(&a, cfg.js_base),
        DriftMethod::Psi => categorical::psi_aligned(&a),
        m => Err(unsupported(m, "categorical")),
    };
    let effect = categorical::total_variation_aligned(&a)
        .ok()
        .map(|s| s.statistic);
    (out, effect, cfg.effect_floor_categorical)
}

/// Adjusted p-values for `p` under `correction` (same order as the input).
pub fn adjust_p_values(p: &[f64], correction: Correction) -> Vec<f64> {
    let m = p.len() as f64;
    match correction {
        Correction::None => p.to_vec(),
        Correction::Bonferroni => p.iter().map(|x| (x * m).min(1.0)).collect(),
        Correction::BenjaminiHochberg => {
            let mut idx: Vec<usize> = (0..p.len()).collect();
            idx.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
            let mut out = vec![0.0; p.len()];
            let mut running = 1.0f64;
            for (rank, &i) in idx.iter().enumerate().rev() {
                let v = p[i] * m / (rank as f64 + 1.0);
                running = running.min(v);
                out[i] = running.min(1.0);
            }
            out
        }
    }
}

/// Evaluates every feature and aggregates the dataset verdict.
pub fn evaluate_features(features: &[FeatureSpec<'_>], config: &ReportConfig) -> DriftReport {
    let mut results = evaluate_all(features, config);
    // Multiple-testing correction over the p-value tests that produced one.
    let idx: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, f)| f.result.method.is_p_value_test() && f.result.p_value.is_some())
        .map(|(i, _)| i)
        .collect();
    let ps: Vec<f64> = idx
        .iter()
        .filter_map(|&i| results[i].result.p_value)
        .collect();
    let adj = adjust_p_values(&ps, config.correction);
    for (&i, &pa) in idx.iter().zip(&adj) {
        let f = &mut results[i];
        f.adjusted_p_value = Some(pa);
        if config.correction != Correction::None {
            let sig = pa < f.result.threshold;
            f.result.decision = if sig {
                Decision::Drift
            } else {
                Decision::NoDrift
            };
            f.result.reason = None;
            let floor = match f.result.params.get("effect_floor") {
                Some(Param::Num(x)) => *x,
                _ => 0.0,
            };
            apply_floor(&mut f.result, floor);
        }
    }
    let n_features = results.len();
    let n_drifted = results
        .iter()
        .filter(|f| f.result.decision == Decision::Drift)
        .count();
    let n_ned = results
        .iter()
        .filter(|f| f.result.decision == Decision::NotEnoughData)
        .count();
    let evaluated = n_features - n_ned;
    let share = if evaluated == 0 {
        0.0
    } else {
        n_drifted as f64 / evaluated as f64
    };
    DriftReport {
        features: results,
        n_features,
        n_drifted,
        n_not_enough_data: n_ned,
        drifted_share: share,
        drift_share_threshold: config.drift_share,
        dataset_drift: evaluated > 0 && share >= config.drift_share,
        correction: config.correction,
    }
}

fn evaluate_all(features: &[FeatureSpec<'_>], config: &ReportConfig) -> Vec<FeatureDrift> {
    let threads = if config.parallel {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(features.len())
    } else {
        1
    };
    if threads <= 1 {
        return features
            .iter()
            .map(|f| evaluate_feature(f, config))
            .collect();
    }
    // Features are independent: interleave them over scoped threads (no
    // pool, no allocation beyond the results) and restore input order.
    let mut slots: Vec<Option<FeatureDrift>> = vec![None; features.len()];
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    features
                        .iter()
                        .enumerate()
                        .skip(t)
                        .step_by(threads)
                        .map(|(i, f)| (i, evaluate_feature(f, config)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            // A panic in a worker is a bug in this crate; re-raise it.
            match h.join() {
                Ok(v) => {
                    for (i, r) in v {
                        slots[i] = Some(r);
                    }
                }
                Err(p) => std::panic::resume_unwind(p),
            }
        }
    });
    slots
        .into_iter()
        .zip(features)
        .map(|(s, f)| s.unwrap_or_else(|| evaluate_feature(f, config)))
        .collect()
}
