//! Result types shared by every test: what a recommendation quotes as its
//! evidence.
//!
//! Every statistic in the crate can be turned into one [`TestResult`]: the
//! method's name and parameters, the statistic, the p-value where there is
//! one, the threshold it was compared with and the decision. Degenerate
//! input gives [`Decision::NotEnoughData`] with `statistic`/`p_value` set to
//! `None`, never NaN.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::DriftError;

/// The name of a statistic (defined with the policy vocabulary in
/// `modelwatch-types`, whose names are a public API).
pub use modelwatch_types::DriftMethod;

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
    pub method: DriftMethod,
    /// Its value (finite).
    pub statistic: f64,
    /// The p-value for hypothesis tests, in [0, 1].
    pub p_value: Option<f64>,
    /// DriftMethod parameters and auxiliary values (raw distance, mode used, ...).
    pub params: Params,
}

impl Statistic {
    pub(crate) fn new(method: DriftMethod, statistic: f64, p_value: Option<f64>) -> Self {
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
    pub method: DriftMethod,
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
    /// DriftMethod parameters.
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
        method: DriftMethod,
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
        method: DriftMethod,
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
