//! The names of the drift statistics and of the multiple-testing
//! corrections. A monitoring policy names them, `drift_results.method`
//! holds them, recommendation evidence quotes them: one enum each, used by
//! the policy, the statistics and the evaluator alike.

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
