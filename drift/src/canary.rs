//! Canary judge for rollback and promotion decisions, after Netflix/Spinnaker
//! Kayenta: per metric, a Mann–Whitney test with a confidence interval for
//! the location shift (canary − baseline), a High/Low/Pass classification
//! against a tolerance, a weighted score, and critical metrics that fail
//! the whole canary; plus an error-rate comparison for counters.
//!
//! ## The interval (R's `wilcox.test(canary, baseline, conf.int = TRUE)`)
//!
//! With `D` the `nx·ny` pairwise differences `canary_i − baseline_j`:
//! - the estimate is the Hodges–Lehmann estimator, the median of `D`;
//! - **exact branch** (both samples < 50 values and no ties, R's rule): the
//!   interval is `(D_(qu), D_(nx·ny − qu + 1))` with `qu = qwilcox(α/2, nx,
//!   ny)` (1 if that is 0), order statistics 1-based;
//! - **asymptotic branch** (otherwise): R finds, with `uniroot`, where the
//!   continuity-corrected normal statistic of the sample shifted by `d`
//!   crosses `±z_{1-α/2}`. That statistic is a step function of `d` that
//!   jumps only at elements of `D`, so the root is exactly the element of
//!   `D` where the jump happens; R reports it to `uniroot`'s tolerance
//!   (1e-4), we report the element itself. The variance uses the tie
//!   groups within each sample (between jumps no cross-sample ties exist).
//!
//! Order statistics of `D` are found without forming `D`: a bisection over
//! the ordered bit patterns of `f64` with an O(nx + ny) count of pairs at or
//! below a candidate, so large canaries cost O((nx + ny) · 64).
//! Reference values in `tests/fixtures/canary.json` were derived from this
//! definition by brute force in `scripts/gen_fixtures.py` (all pairwise
//! differences materialised, `qwilcox` from the exact null distribution,
//! the asymptotic root by scanning every element of `D`).
//!
//! ## Classification
//! `band = tolerance × |median(baseline)|`. **High** when the interval's
//! lower end is above `+band`, **Low** when its upper end is below `−band`,
//! else **Pass**. A metric *fails* when its classification is in the
//! direction that hurts (`increase`, `decrease` or `either`). The score is
//! 100 × (weight of passing metrics) / (weight of metrics with data); any
//! failing critical metric makes the score 0. Verdict: pass at ≥
//! `pass_score` (95), marginal at ≥ `marginal_score` (75), else fail —
//! Kayenta's defaults.

use serde::{Deserialize, Serialize};

use crate::categorical::{fisher_2x2, two_proportion_z};
use crate::error::{Result, check_finite, invalid, not_enough};
use crate::numeric::{self, MwMode, gaussian_binomial_coeffs};
use crate::special::{self, f64_key, key_f64, norm_ppf, sorted_copy};

/// Which change of a metric is bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Higher is worse (latency, errors).
    #[default]
    Increase,
    /// Lower is worse (throughput, conversions).
    Decrease,
    /// Any change is bad.
    Either,
}

/// One metric's samples for the judge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanaryMetric {
    /// Metric name.
    pub name: String,
    /// Baseline (control) observations.
    pub baseline: Vec<f64>,
    /// Canary (experiment) observations.
    pub canary: Vec<f64>,
    /// Which change is bad.
    pub direction: Direction,
    /// A failing critical metric fails the canary outright.
    pub critical: bool,
    /// Weight in the score (> 0).
    pub weight: f64,
    /// Relative tolerance overriding the judge's default.
    pub tolerance: Option<f64>,
}

/// Judge settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanaryConfig {
    /// Confidence level of the interval (Kayenta: 0.98).
    pub confidence: f64,
    /// Relative tolerance (Kayenta: 0.25).
    pub tolerance: f64,
    /// Score at or above which the canary passes.
    pub pass_score: f64,
    /// Score at or above which the canary is marginal.
    pub marginal_score: f64,
}

impl Default for CanaryConfig {
    fn default() -> Self {
        CanaryConfig {
            confidence: 0.98,
            tolerance: 0.25,
            pass_score: 95.0,
            marginal_score: 75.0,
        }
    }
}

/// The location-shift interval for `canary − baseline`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShiftInterval {
    /// Hodges–Lehmann estimate (median of pairwise differences).
    pub estimate: f64,
    /// Lower confidence bound.
    pub lower: f64,
    /// Upper confidence bound.
    pub upper: f64,
    /// Confidence level.
    pub confidence: f64,
    /// `"exact"` or `"asymptotic"` (R's rule).
    pub mode: String,
    /// Two-sided Mann–Whitney p-value (same branch as the interval).
    pub p_value: f64,
    /// Mann–Whitney U of the canary sample.
    pub statistic: f64,
}

/// Per-metric classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Classification {
    /// The canary is credibly higher than baseline beyond tolerance.
    High,
    /// The canary is credibly lower than baseline beyond tolerance.
    Low,
    /// No credible difference beyond tolerance.
    Pass,
    /// Too little or degenerate data (excluded from the score).
    NotEnoughData,
}

/// One metric's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricVerdict {
    /// Metric name.
    pub name: String,
    /// Always `"mann_whitney"`.
    pub method: String,
    /// High / Low / Pass / NotEnoughData.
    pub classification: Classification,
    /// Whether the classification is in the harmful direction.
    pub failed: bool,
    /// Critical flag from the input.
    pub critical: bool,
    /// Weight from the input.
    pub weight: f64,
    /// Tolerance used.
    pub tolerance: f64,
    /// Tolerance band half-width in metric units.
    pub band: Option<f64>,
    /// The interval, when there was enough data.
    pub interval: Option<ShiftInterval>,
    /// Baseline median.
    pub baseline_median: Option<f64>,
    /// Canary median.
    pub canary_median: Option<f64>,
    /// Why `not_enough_data`.
    pub reason: Option<String>,
}

/// Overall verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CanaryVerdict {
    /// Score ≥ pass score and no critical failure.
    Pass,
    /// Between marginal and pass scores.
    Marginal,
    /// Below the marginal score or a critical metric failed.
    Fail,
    /// No metric had enough data.
    NotEnoughData,
}

/// The judge's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanaryReport {
    /// Per-metric verdicts.
    pub metrics: Vec<MetricVerdict>,
    /// Score in [0, 100].
    pub score: f64,
    /// Verdict.
    pub verdict: CanaryVerdict,
    /// Whether a critical metric failed (forces score 0).
    pub critical_failure: bool,
    /// Settings used.
    pub config: CanaryConfig,
}

/// Counts the pairs `(i, j)` with `x_i − y_j <= t` (both sorted).
fn count_le(x: &[f64], y: &[f64], t: f64) -> u64 {
    // For fixed i, {j : x_i − y_j <= t} is a suffix of sorted y, and its
    // start moves right as x_i grows.
    let mut count = 0u64;
    let mut j = 0usize;
    for &xi in x {
        while j < y.len() && xi - y[j] > t {
            j += 1;
        }
        count += (y.len() - j) as u64;
    }
    count
}

/// The `k`-th smallest (1-based) pairwise difference `x_i − y_j`.
fn kth_difference(x: &[f64], y: &[f64], k: u64) -> f64 {
    let mut lo = f64_key(x[0] - y[y.len() - 1]);
    let mut hi = f64_key(x[x.len() - 1] - y[0]);
    // Smallest key whose value has at least k pairs at or below it.
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if count_le(x, y, key_f64(mid)) >= k {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    key_f64(lo)
}

/// Smallest q with `P(W <= q) >= p` for the Wilcoxon rank-sum W (R's
/// `qwilcox`).
fn qwilcox(p: f64, m: usize, n: usize) -> u64 {
    let maxu = m * n;
    let freq = gaussian_binomial_coeffs(m.min(n), m.max(n), maxu);
    let total: f64 = freq.iter().sum();
    // R's qwilcox: accumulate P(W = q) until it reaches p, with the same
    // absolute fuzz of 10 machine epsilons.
    let target = p - 10.0 * f64::EPSILON;
    let mut cum = 0.0;
    for (q, f) in freq.iter().enumerate() {
        cum += f / total;
        if cum >= target {
            return q as u64;
        }
    }
    maxu as u64
}

/// Location shift `canary − baseline`: Hodges–Lehmann estimate, confidence
/// interval and Mann–Whitney p-value as R's `wilcox.test(canary, baseline,
/// conf.int = TRUE, conf.level = confidence)` (see the module docs).
pub fn location_shift(canary: &[f64], baseline: &[f64], confidence: f64) -> Result<ShiftInterval> {
    check_finite(canary, "canary")?;
    check_finite(baseline, "baseline")?;
    if !(confidence > 0.0 && confidence < 1.0) {
        return Err(invalid("confidence", "must be in (0, 1)"));
    }
    if canary.is_empty() || baseline.is_empty() {
        return Err(not_enough("mann_whitney", "a sample is empty"));
    }
    let x = sorted_copy(canary);
    let y = sorted_copy(baseline);
    let (nx, ny) = (x.len(), y.len());
    let n_pairs = (nx as u64) * (ny as u64);
    let alpha = 1.0 - confidence;
    let mut pooled = x.clone();
    pooled.extend_from_slice(&y);
    pooled.sort_unstable_by(f64::total_cmp);
    let has_ties = pooled.windows(2).any(|w| w[0] == w[1]);
    let exact = nx < 50 && ny < 50 && !has_ties;

    let mw = numeric::mann_whitney_sorted(
        &x,
        &y,
        if exact {
            MwMode::Exact
        } else {
            MwMode::Asymptotic
        },
    )?;
    let p_value = mw.p_value.unwrap_or(1.0);
    let estimate = if n_pairs % 2 == 1 {
        kth_difference(&x, &y, n_pairs.div_ceil(2))
    } else {
        0.5 * (kth_difference(&x, &y, n_pairs / 2) + kth_difference(&x, &y, n_pairs / 2 + 1))
    };
    let (lower, upper) = if exact {
        let mut qu = qwilcox(alpha / 2.0, nx, ny);
        if qu == 0 {
            qu = 1;
        }
        let ql = n_pairs - qu;
        (kth_difference(&x, &y, qu), kth_difference(&x, &y, ql + 1))
    } else {
        let ties: f64 = special::tie_groups_sorted(&x)
            .iter()
            .chain(special::tie_groups_sorted(&y).iter())
            .map(|&t| (t as f64).powi(3) - t as f64)
            .sum();
        let (nxf, nyf) = (nx as f64, ny as f64);
        let nn = nxf + nyf;
        let sigma = ((nxf * nyf / 12.0) * ((nn + 1.0) - ties / (nn * (nn - 1.0)))).sqrt();
        if sigma.is_nan() || sigma <= 0.0 {
            return Err(not_enough("mann_whitney", "all observations are tied"));
        }
        let z = norm_ppf(1.0 - alpha / 2.0);
        (
            asymptotic_root(&x, &y, sigma, z),
            asymptotic_root(&x, &y, sigma, -z),
        )
    };
    Ok(ShiftInterval {
        estimate,
        lower,
        upper,
        confidence,
        mode: if exact { "exact" } else { "asymptotic" }.to_string(),
        p_value,
        statistic: mw.statistic,
    })
}

/// The element of `D` at which R's continuity-corrected `wdiff(d, zq)`
/// changes sign. Between jumps, with `K = #{D > d}` pairs above `d`, the
/// function is `(K − N/2 − ½·sign(K − N/2)) / σ − zq`, decreasing in `d`.
fn asymptotic_root(x: &[f64], y: &[f64], sigma: f64, zq: f64) -> f64 {
    let n = (x.len() as u64) * (y.len() as u64);
    let half = n as f64 / 2.0;
    let g = |k: u64| {
        let dz = k as f64 - half;
        let corr = if dz > 0.0 {
            0.5
        } else if dz < 0.0 {
            -0.5
        } else {
            0.0
        };
        (dz - corr) / sigma - zq
    };
    // Smallest j (pairs at or below d) with g(N − j) <= 0; g is monotone in
    // K, so bisect on j in [0, N].
    let (mut lo, mut hi) = (0u64, n);
    if g(n) <= 0.0 {
        // Already non-positive at the far left: R returns mumin.
        return kth_difference(x, y, 1);
    }
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if g(n - mid) <= 0.0 {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    if lo == 0 {
        kth_difference(x, y, 1)
    } else if g(0) > 0.0 {
        kth_difference(x, y, n)
    } else {
        kth_difference(x, y, lo)
    }
}

/// Judges a canary.
pub fn judge(metrics: &[CanaryMetric], config: &CanaryConfig) -> Result<CanaryReport> {
    if !(config.tolerance >= 0.0 && config.tolerance.is_finite()) {
        return Err(invalid("tolerance", "must be a non-negative number"));
    }
    if !(config.confidence > 0.0 && config.confidence < 1.0) {
        return Err(invalid("confidence", "must be in (0, 1)"));
    }
    let mut verdicts = Vec::with_capacity(metrics.len());
    for m in metrics {
        if !(m.weight > 0.0 && m.weight.is_finite()) {
            return Err(invalid(
                "weight",
                format!("metric {} needs a positive weight", m.name),
            ));
        }
        verdicts.push(judge_metric(m, config)?);
    }
    let with_data: Vec<&MetricVerdict> = verdicts
        .iter()
        .filter(|v| v.classification != Classification::NotEnoughData)
        .collect();
    let total_w: f64 = with_data.iter().map(|v| v.weight).sum();
    let pass_w: f64 = with_data
        .iter()
        .filter(|v| !v.failed)
        .map(|v| v.weight)
        .sum();
    let critical_failure = verdicts.iter().any(|v| v.critical && v.failed);
    let score = if critical_failure || total_w == 0.0 {
        0.0
    } else {
        100.0 * pass_w / total_w
    };
    let verdict = if with_data.is_empty() {
        CanaryVerdict::NotEnoughData
    } else if critical_failure {
        CanaryVerdict::Fail
    } else if score >= config.pass_score {
        CanaryVerdict::Pass
    } else if score >= config.marginal_score {
        CanaryVerdict::Marginal
    } else {
        CanaryVerdict::Fail
    };
    Ok(CanaryReport {
        metrics: verdicts,
        score,
        verdict,
        critical_failure,
        config: config.clone(),
    })
}

fn judge_metric(m: &CanaryMetric, config: &CanaryConfig) -> Result<MetricVerdict> {
    let tolerance = m.tolerance.unwrap_or(config.tolerance);
    if !(tolerance >= 0.0 && tolerance.is_finite()) {
        return Err(invalid(
            "tolerance",
            format!("metric {} has a negative tolerance", m.name),
        ));
    }
    let mut v = MetricVerdict {
        name: m.name.clone(),
        method: "mann_whitney".to_string(),
        classification: Classification::NotEnoughData,
        failed: false,
        critical: m.critical,
        weight: m.weight,
        tolerance,
        band: None,
        interval: None,
        baseline_median: None,
        canary_median: None,
        reason: None,
    };
    match location_shift(&m.canary, &m.baseline, config.confidence) {
        Ok(iv) => {
            let bmed = special::median_sorted(&sorted_copy(&m.baseline));
            let cmed = special::median_sorted(&sorted_copy(&m.canary));
            let band = tolerance * bmed.abs();
            v.classification = if iv.lower > band {
                Classification::High
            } else if iv.upper < -band {
                Classification::Low
            } else {
                Classification::Pass
            };
            v.failed = matches!(
                (v.classification, m.direction),
                (
                    Classification::High,
                    Direction::Increase | Direction::Either
                ) | (Classification::Low, Direction::Decrease | Direction::Either)
            );
            v.band = Some(band);
            v.baseline_median = Some(bmed);
            v.canary_median = Some(cmed);
            v.interval = Some(iv);
        }
        Err(crate::error::DriftError::NotEnoughData { reason, .. }) => v.reason = Some(reason),
        Err(e) => return Err(e),
    }
    Ok(v)
}

/// Error-rate comparison of two counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorRateComparison {
    /// `"z_test"` or `"fisher_exact"`.
    pub method: String,
    /// Baseline errors / requests.
    pub baseline_rate: f64,
    /// Canary errors / requests.
    pub canary_rate: f64,
    /// z statistic (canary − baseline) or Fisher odds ratio.
    pub statistic: f64,
    /// Two-sided p-value.
    pub p_value: f64,
    /// Significance level.
    pub alpha: f64,
    /// Canary error rate significantly higher.
    pub canary_worse: bool,
}

/// Compares canary and baseline error rates: Fisher's exact test when any
/// expected cell count is below 5 (where the normal approximation is poor),
/// else the pooled two-proportion z-test.
pub fn compare_error_rates(
    baseline_errors: u64,
    baseline_total: u64,
    canary_errors: u64,
    canary_total: u64,
    alpha: f64,
) -> Result<ErrorRateComparison> {
    if !(alpha > 0.0 && alpha < 1.0) {
        return Err(invalid("alpha", "must be in (0, 1)"));
    }
    if baseline_errors > baseline_total || canary_errors > canary_total {
        return Err(invalid("errors", "more errors than requests"));
    }
    if baseline_total == 0 || canary_total == 0 {
        return Err(not_enough("z_test", "a counter saw no requests"));
    }
    let (be, bt, ce, ct) = (
        baseline_errors as f64,
        baseline_total as f64,
        canary_errors as f64,
        canary_total as f64,
    );
    let (br, cr) = (be / bt, ce / ct);
    let n = bt + ct;
    let e_rate = (be + ce) / n;
    let min_expected = [
        bt * e_rate,
        bt * (1.0 - e_rate),
        ct * e_rate,
        ct * (1.0 - e_rate),
    ]
    .into_iter()
    .fold(f64::INFINITY, f64::min);
    let (method, statistic, p) = if min_expected < 5.0 {
        let (odds, p) = fisher_2x2([[ce, ct - ce], [be, bt - be]]);
        ("fisher_exact", odds, p)
    } else {
        match two_proportion_z(ce, ct, be, bt) {
            Ok((z, p)) => ("z_test", z, p),
            Err(_) => ("z_test", 0.0, 1.0),
        }
    };
    Ok(ErrorRateComparison {
        method: method.to_string(),
        baseline_rate: br,
        canary_rate: cr,
        statistic,
        p_value: p,
        alpha,
        canary_worse: cr > br && p < alpha,
    })
}
