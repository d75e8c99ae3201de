//! Drift between two histograms given as bucket counts (OTLP histograms,
//! de-cumulated Prometheus `_bucket` series, stored profiles): PSI,
//! Jensen–Shannon, chi-square and Hellinger.
//!
//! Both count vectors must use the same bucket boundaries. Empty buckets:
//! - PSI replaces an empty proportion by [`PSI_EPSILON`] (on either side);
//! - Jensen–Shannon and Hellinger need nothing (`0 ln 0 = 0`, `sqrt 0 = 0`);
//! - chi-square drops buckets that are empty in *both* histograms (they
//!   carry no information and would make an expected count zero); a bucket
//!   empty on one side only stays and is finite.

use crate::categorical::{Divergence, contingency};
use crate::error::{Result, invalid, not_enough};
use crate::numeric::{PSI_EPSILON, hellinger_from_counts, js_from_counts, psi_from_counts};
use crate::result::{DriftMethod, Statistic};

fn validate(reference: &[f64], current: &[f64], method: &'static str) -> Result<()> {
    if reference.len() != current.len() {
        return Err(invalid(
            "buckets",
            "reference and current have different bucket counts",
        ));
    }
    if reference
        .iter()
        .chain(current)
        .any(|v| !v.is_finite() || *v < 0.0)
    {
        return Err(invalid("buckets", "counts must be finite and non-negative"));
    }
    if reference.iter().sum::<f64>() <= 0.0 || current.iter().sum::<f64>() <= 0.0 {
        return Err(not_enough(method, "a histogram is empty"));
    }
    Ok(())
}

/// Turns cumulative bucket counts (Prometheus `le` buckets) into per-bucket
/// counts. Decreasing cumulative counts (a counter reset inside a scrape)
/// are clamped to zero rather than producing negative counts.
pub fn decumulate(cumulative: &[f64]) -> Vec<f64> {
    let mut prev = 0.0;
    cumulative
        .iter()
        .map(|&c| {
            let d = (c - prev).max(0.0);
            prev = prev.max(c);
            d
        })
        .collect()
}

/// PSI between two histograms.
pub fn psi(reference: &[f64], current: &[f64]) -> Result<Statistic> {
    validate(reference, current, "psi")?;
    Ok(Statistic::new(
        DriftMethod::Psi,
        psi_from_counts(reference, current, PSI_EPSILON),
        None,
    )
    .with("epsilon", PSI_EPSILON)
    .with("bins", reference.len()))
}

/// Jensen–Shannon distance between two histograms.
pub fn jensen_shannon(reference: &[f64], current: &[f64], base: Option<f64>) -> Result<Statistic> {
    validate(reference, current, "jensen_shannon")?;
    if let Some(b) = base
        && (b <= 0.0 || b == 1.0 || !b.is_finite())
    {
        return Err(invalid("base", "logarithm base must be positive and not 1"));
    }
    Ok(Statistic::new(
        DriftMethod::JensenShannon,
        js_from_counts(reference, current, base),
        None,
    )
    .with(
        "base",
        base.map_or_else(|| "e".to_string(), |b| b.to_string()),
    ))
}

/// Hellinger distance between two histograms.
pub fn hellinger(reference: &[f64], current: &[f64]) -> Result<Statistic> {
    validate(reference, current, "hellinger")?;
    Ok(Statistic::new(
        DriftMethod::Hellinger,
        hellinger_from_counts(reference, current),
        None,
    ))
}

/// Chi-square (homogeneity, 2×K, Yates for 2×2 as scipy) between two
/// histograms, dropping buckets empty in both.
pub fn chi_square(reference: &[f64], current: &[f64]) -> Result<Statistic> {
    validate(reference, current, "chi_square")?;
    let (r, c): (Vec<f64>, Vec<f64>) = reference
        .iter()
        .zip(current)
        .filter(|(a, b)| **a + **b > 0.0)
        .map(|(a, b)| (*a, *b))
        .unzip();
    if r.len() < 2 {
        return Err(not_enough("chi_square", "fewer than two non-empty buckets"));
    }
    let (s, p, dof) = contingency(&[r, c], true, Divergence::Pearson)?;
    Ok(Statistic::new(DriftMethod::ChiSquare, s, Some(p))
        .with("dof", dof)
        .with("yates", true))
}
