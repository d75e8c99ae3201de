//! Result types shared by every test: what a recommendation quotes as its
//! evidence.
//!
//! Every statistic in the crate can be turned into one [`TestResult`]: the
//! method's name and parameters, the statistic, the p-value where there is
//! one, the threshold it was compared with and the decision. Degenerate
//! input gives [`Decision::NotEnoughData`] with `statistic`/`p_value` set to
//! `None`, never NaN.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::DriftError;

/// The name of a statistic. Serialized in `snake_case`; this is the `method`
/// field users see in `drift_results` and in recommendation evidence, so the
/// names are a public API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Two-sample Kolmogorov–Smirnov (p-value test).
    Ks,
    /// Wasserstein-1 distance divided by the reference standard deviation
    /// (Evidently's `wasserstein`; the raw distance is in the parameters).
    Wasserstein,
    /// Population stability index.
    Psi,
    /// Jensen–Shannon distance (not divergence).
    JensenShannon,
    /// Hellinger distance.
    Hellinger,
    /// Anderson–Darling k-sample (midrank), p-value test.
    AndersonDarling,
    /// Cramér–von Mises two-sample, p-value test.
    CramerVonMises,
    /// Mann–Whitney U, two-sided, p-value test.
    MannWhitney,
    /// Welch's unequal-variance t-test, p-value test.
    WelchT,
    /// Energy distance (scipy's definition).
    Energy,
    /// Pearson chi-square on the reference × current contingency table.
    ChiSquare,
    /// G-test (log-likelihood ratio) on the contingency table.
    GTest,
    /// Cramér's V (effect size of the contingency table).
    CramersV,
    /// Two-proportion z-test (binary categories).
    ZTest,
    /// Fisher's exact test on a 2×2 table.
    FisherExact,
    /// Total variation distance between category distributions.
    TotalVariation,
    /// L∞ distance between category distributions.
    LInf,
}

impl Method {
    /// The serialized name (`"ks"`, `"jensen_shannon"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Method::Ks => "ks",
            Method::Wasserstein => "wasserstein",
            Method::Psi => "psi",
            Method::JensenShannon => "jensen_shannon",
            Method::Hellinger => "hellinger",
            Method::AndersonDarling => "anderson_darling",
            Method::CramerVonMises => "cramer_von_mises",
            Method::MannWhitney => "mann_whitney",
            Method::WelchT => "welch_t",
            Method::Energy => "energy",
            Method::ChiSquare => "chi_square",
            Method::GTest => "g_test",
            Method::CramersV => "cramers_v",
            Method::ZTest => "z_test",
            Method::FisherExact => "fisher_exact",
            Method::TotalVariation => "total_variation",
            Method::LInf => "l_inf",
        }
    }

    /// Whether the method is a hypothesis test (drift when `p < threshold`)
    /// rather than a distance (drift when `statistic >= threshold`).
    pub fn is_p_value_test(self) -> bool {
        matches!(
            self,
            Method::Ks
                | Method::AndersonDarling
                | Method::CramerVonMises
                | Method::MannWhitney
                | Method::WelchT
                | Method::ChiSquare
                | Method::GTest
                | Method::ZTest
                | Method::FisherExact
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

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The verdict of one test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The statistic crossed its threshold (and the effect-size floor).
    Drift,
    /// It did not.
    NoDrift,
    /// The input was empty, a single value, constant, or otherwise too
    /// degenerate for the statistic; see `reason`.
    NotEnoughData,
}

/// How a threshold is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdKind {
    /// Drift when the (possibly corrected) p-value is below the threshold.
    PValue,
    /// Drift when the statistic is at or above the threshold.
    Distance,
}

/// One method parameter, kept for evidence ("bins = 10", "mode = exact").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Param {
    /// A boolean flag.
    Bool(bool),
    /// An integer (bins, sample sizes).
    Int(i64),
    /// A real number (epsilon, tolerance).
    Num(f64),
    /// A word (mode, base, variant).
    Text(String),
}

impl From<bool> for Param {
    fn from(v: bool) -> Self {
        Param::Bool(v)
    }
}
impl From<i64> for Param {
    fn from(v: i64) -> Self {
        Param::Int(v)
    }
}
impl From<usize> for Param {
    fn from(v: usize) -> Self {
        Param::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}
impl From<f64> for Param {
    fn from(v: f64) -> Self {
        Param::Num(v)
    }
}
impl From<&str> for Param {
    fn from(v: &str) -> Self {
        Param::Text(v.to_string())
    }
}
impl From<String> for Param {
    fn from(v: String) -> Self {
        Param::Text(v)
    }
}

/// Named parameters of a result, sorted for stable serialization.
pub type Params = BTreeMap<String, Param>;

/// The raw output of a statistic before a threshold is applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statistic {
    /// Which statistic.
    pub method: Method,
    /// Its value (finite).
    pub statistic: f64,
    /// The p-value for hypothesis tests, in [0, 1].
    pub p_value: Option<f64>,
    /// Method parameters and auxiliary values (raw distance, mode used, ...).
    pub params: Params,
}

impl Statistic {
    pub(crate) fn new(method: Method, statistic: f64, p_value: Option<f64>) -> Self {
        Statistic {
            method,
            statistic,
            p_value: p_value.map(|p| p.clamp(0.0, 1.0)),
            params: Params::new(),
        }
    }

    pub(crate) fn with(mut self, key: &str, value: impl Into<Param>) -> Self {
        self.params.insert(key.to_string(), value.into());
        self
    }
}

/// One test's complete, quotable result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestResult {
    /// Which statistic.
    pub method: Method,
    /// The statistic; `None` only when `decision` is `not_enough_data`.
    pub statistic: Option<f64>,
    /// The p-value for hypothesis tests (before any multiple-testing
    /// correction; see the report for the adjusted value).
    pub p_value: Option<f64>,
    /// The threshold the statistic or p-value was compared with.
    pub threshold: f64,
    /// How `threshold` is applied.
    pub threshold_kind: ThresholdKind,
    /// Effect size used for the effect-size floor, when one was computed
    /// (Wasserstein distance in reference standard deviations for numeric
    /// features, total variation for categorical ones).
    pub effect_size: Option<f64>,
    /// The verdict.
    pub decision: Decision,
    /// Why the decision is `not_enough_data`, or why a significant p-value
    /// was overruled by the effect-size floor.
    pub reason: Option<String>,
    /// Reference sample size (rows, or total count for counts/histograms).
    pub n_reference: u64,
    /// Current sample size.
    pub n_current: u64,
    /// Method parameters.
    pub params: Params,
}

impl TestResult {
    /// Applies `threshold` to a computed statistic.
    pub fn decide(stat: Statistic, threshold: f64, n_reference: u64, n_current: u64) -> Self {
        let kind = if stat.method.is_p_value_test() {
            ThresholdKind::PValue
        } else {
            ThresholdKind::Distance
        };
        let drift = match kind {
            ThresholdKind::PValue => stat.p_value.is_some_and(|p| p < threshold),
            ThresholdKind::Distance => stat.statistic >= threshold,
        };
        TestResult {
            method: stat.method,
            statistic: Some(stat.statistic),
            p_value: stat.p_value,
            threshold,
            threshold_kind: kind,
            effect_size: None,
            decision: if drift {
                Decision::Drift
            } else {
                Decision::NoDrift
            },
            reason: None,
            n_reference,
            n_current,
            params: stat.params,
        }
    }

    /// The explicit "not enough data" result.
    pub fn not_enough_data(
        method: Method,
        threshold: f64,
        reason: impl Into<String>,
        n_reference: u64,
        n_current: u64,
    ) -> Self {
        TestResult {
            method,
            statistic: None,
            p_value: None,
            threshold,
            threshold_kind: if method.is_p_value_test() {
                ThresholdKind::PValue
            } else {
                ThresholdKind::Distance
            },
            effect_size: None,
            decision: Decision::NotEnoughData,
            reason: Some(reason.into()),
            n_reference,
            n_current,
            params: Params::new(),
        }
    }

    /// Builds a result from a statistic computation: errors become
    /// `not_enough_data` results (with the error text as the reason).
    pub fn from_outcome(
        method: Method,
        outcome: Result<Statistic, DriftError>,
        threshold: f64,
        n_reference: u64,
        n_current: u64,
    ) -> Self {
        match outcome {
            Ok(stat) => Self::decide(stat, threshold, n_reference, n_current),
            Err(e) => {
                Self::not_enough_data(method, threshold, e.to_string(), n_reference, n_current)
            }
        }
    }

    /// Whether the decision is [`Decision::Drift`].
    pub fn drifted(&self) -> bool {
        self.decision == Decision::Drift
    }
}
