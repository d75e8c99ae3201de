//! The names of the drift statistics and of the multiple-testing
//! corrections. A monitoring policy names them, `drift_results.method`
//! holds them, recommendation evidence quotes them: one enum each, used by
//! the policy, the statistics and the evaluator alike.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::named_enum;

named_enum!(
    /// A drift statistic: a hypothesis test (drift when `p < threshold`) or
    /// a distance (drift when `statistic >= threshold`).
    DriftMethod as "method" {
        /// Two-sample Kolmogorov–Smirnov (p-value test).
        Ks => "ks",
        /// Wasserstein-1 distance divided by the reference standard deviation
        /// (Evidently's `wasserstein`; the raw distance is in the parameters).
        Wasserstein => "wasserstein",
        /// Population stability index.
        Psi => "psi",
        /// Jensen–Shannon distance (not divergence).
        JensenShannon => "jensen_shannon",
        /// Hellinger distance.
        Hellinger => "hellinger",
        /// Anderson–Darling k-sample (midrank), p-value test.
        AndersonDarling => "anderson_darling",
        /// Cramér–von Mises two-sample, p-value test.
        CramerVonMises => "cramer_von_mises",
        /// Mann–Whitney U, two-sided, p-value test.
        MannWhitney => "mann_whitney",
        /// Welch's unequal-variance t-test, p-value test.
        WelchT => "welch_t",
        /// Energy distance (scipy's definition).
        Energy => "energy",
        /// Pearson chi-square on the reference × current contingency table.
        ChiSquare => "chi_square",
        /// G-test (log-likelihood ratio) on the contingency table.
        GTest => "g_test",
        /// Cramér's V (effect size of the contingency table).
        CramersV => "cramers_v",
        /// Two-proportion z-test (binary categories).
        ZTest => "z_test",
        /// Fisher's exact test on a 2×2 table.
        FisherExact => "fisher_exact",
        /// Total variation distance between category distributions.
        TotalVariation => "total_variation",
        /// L∞ distance between category distributions.
        LInf => "l_inf",
    }
);

impl DriftMethod {
    /// The serialized name (`"ks"`, `"jensen_shannon"`, …).
    pub fn name(self) -> &'static str {
        self.as_str()
    }

    /// Whether the method is a hypothesis test (drift when `p < threshold`)
    /// rather than a distance (drift when `statistic >= threshold`).
    pub fn is_p_value_test(self) -> bool {
        matches!(
            self,
            DriftMethod::Ks
                | DriftMethod::AndersonDarling
                | DriftMethod::CramerVonMises
                | DriftMethod::MannWhitney
                | DriftMethod::WelchT
                | DriftMethod::ChiSquare
                | DriftMethod::GTest
                | DriftMethod::ZTest
                | DriftMethod::FisherExact
        )
    }

    /// Default threshold: alpha = 0.05 for hypothesis tests; 0.1 for every
    /// distance — Evidently's value for Wasserstein (normed) and
    /// Jensen–Shannon, the "moderate" PSI level, a "small" Cramér's V, and
    /// a conventional 0.1 for Hellinger, total variation, L∞ and energy
    /// (energy is not scale free: override its threshold per feature).
    pub fn default_threshold(self) -> f64 {
        if self.is_p_value_test() { 0.05 } else { 0.1 }
    }
}

named_enum!(
    /// Multiple-testing correction across a report's p-value tests.
    Correction as "correction" {
        /// None (Evidently's behaviour).
        None => "none",
        /// Bonferroni: `p * m`, capped at 1 (controls the family-wise error).
        Bonferroni => "bonferroni",
        /// Benjamini–Hochberg step-up adjusted p-values (controls the false
        /// discovery rate).
        BenjaminiHochberg => "benjamini_hochberg",
    }
);

// `named_enum!` fixes the derive list, so `#[derive(Default)]` is not an option.
#[allow(clippy::derivable_impls)]
impl Default for Correction {
    fn default() -> Self {
        Correction::None
    }
}

/// An anomaly detector for a metric series and its parameters: a
/// monitoring policy names one per watched metric, `drift::anomaly` runs
/// it. Which detector, with its parameters. Serialized with a `method` tag
/// (`rolling_z`, `mad`, `ewma`, `cusum`, `page_hinkley`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum DetectorConfig {
    /// |x - mean| / std over the previous `window` points above `threshold`.
    RollingZ {
        /// Points in the trailing window (≥ 2).
        window: usize,
        /// z threshold (e.g. 3).
        threshold: f64,
    },
    /// |x - median| above `k` scaled MADs (1.4826·MAD ≈ σ for normal data)
    /// of the previous `window` points.
    Mad {
        /// Points in the trailing window (≥ 3).
        window: usize,
        /// Band half-width in scaled MADs (e.g. 3.5).
        k: f64,
    },
    /// EWMA control chart: `z_t = λ x_t + (1-λ) z_{t-1}` against
    /// `μ0 ± L σ0 sqrt(λ/(2-λ) (1-(1-λ)^{2t}))`, μ0 and σ0 from the warm-up.
    Ewma {
        /// Smoothing λ in (0, 1].
        lambda: f64,
        /// Limit width L in σ (e.g. 3).
        l: f64,
        /// Warm-up points for μ0, σ0 (≥ 2).
        warmup: usize,
    },
    /// Two-sided tabular CUSUM in σ units: `S± = max(0, S± ± (x-μ0)/σ0 - k)`,
    /// breach when `S± > h`; the sums restart after an alarm.
    Cusum {
        /// Slack k in σ (e.g. 0.5).
        k: f64,
        /// Decision interval h in σ (e.g. 5).
        h: f64,
        /// Warm-up points for μ0, σ0 (≥ 2).
        warmup: usize,
    },
    /// Two-sided Page–Hinkley: cumulative deviation from the running mean
    /// minus `delta`, breach when it rises more than `lambda` above its
    /// running minimum (or falls as much below its maximum); restarts after
    /// an alarm.
    PageHinkley {
        /// Magnitude of change tolerated (in data units).
        delta: f64,
        /// Detection threshold (in data units × points).
        lambda: f64,
    },
}

impl DetectorConfig {
    /// The method name as serialized.
    pub fn name(&self) -> &'static str {
        match self {
            DetectorConfig::RollingZ { .. } => "rolling_z",
            DetectorConfig::Mad { .. } => "mad",
            DetectorConfig::Ewma { .. } => "ewma",
            DetectorConfig::Cusum { .. } => "cusum",
            DetectorConfig::PageHinkley { .. } => "page_hinkley",
        }
    }

    /// Checks the parameters: `Err((parameter, what is wrong))`.
    pub fn check(&self) -> Result<(), (&'static str, &'static str)> {
        let pos = |v: f64, name: &'static str| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err((name, "must be positive and finite"))
            }
        };
        match *self {
            DetectorConfig::RollingZ { window, threshold } => {
                if window < 2 {
                    return Err(("window", "rolling z-score needs a window of at least 2"));
                }
                pos(threshold, "threshold")
            }
            DetectorConfig::Mad { window, k } => {
                if window < 3 {
                    return Err(("window", "MAD bands need a window of at least 3"));
                }
                pos(k, "k")
            }
            DetectorConfig::Ewma { lambda, l, warmup } => {
                if !(lambda > 0.0 && lambda <= 1.0) {
                    return Err(("lambda", "must be in (0, 1]"));
                }
                if warmup < 2 {
                    return Err(("warmup", "needs at least 2 points"));
                }
                pos(l, "l")
            }
            DetectorConfig::Cusum { k, h, warmup } => {
                if warmup < 2 {
                    return Err(("warmup", "needs at least 2 points"));
                }
                if !(k.is_finite() && k >= 0.0) {
                    return Err(("k", "must be non-negative"));
                }
                pos(h, "h")
            }
            DetectorConfig::PageHinkley { delta, lambda } => {
                if !(delta.is_finite() && delta >= 0.0) {
                    return Err(("delta", "must be non-negative"));
                }
                pos(lambda, "lambda")
            }
        }
    }
}
