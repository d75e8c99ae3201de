//! Two-sample statistics for numeric features: KS, Wasserstein-1, PSI,
//! Jensen–Shannon, Hellinger, Anderson–Darling k-sample, Cramér–von Mises,
//! Mann–Whitney U, Welch's t and energy distance.
//!
//! Each public function takes the raw reference and current samples (any
//! order) and returns a [`Statistic`]; the `*_sorted` variants take
//! ascending-sorted slices so a report sorts each feature once. Results match
//! scipy (see `tests/fixtures/` and `scripts/gen_fixtures.py`); where a
//! definition has a free choice (bins, epsilon) it is documented on the
//! function and recorded in the result's parameters.
//!
//! NaN and infinities are rejected with
//! [`DriftError::NonFinite`](crate::DriftError::NonFinite); empty or
//! too-small samples give
//! [`DriftError::NotEnoughData`](crate::DriftError::NotEnoughData).

use serde::{Deserialize, Serialize};

use crate::error::{Result, check_finite, invalid, not_enough};
use crate::result::{DriftMethod, Statistic};
use crate::special::{
    self, average_ranks, gcd, kolmogorov_n_sf, norm_sf, sorted_copy, t_two_sided,
};

/// Epsilon that replaces an empty bin's proportion in PSI, so `ln(c/r)` stays
/// finite. The same value Evidently uses; it is recorded in the result.
pub const PSI_EPSILON: f64 = 1e-4;

/// Default number of reference-quantile bins for PSI (deciles).
pub const PSI_BINS: usize = 10;

/// Default number of equal-width bins (over the pooled range) for
/// Jensen–Shannon and Hellinger on numeric data, as in Evidently.
pub const HISTOGRAM_BINS: usize = 30;

/// A numeric sample validated (finite) and sorted once, for a reference
/// window that is compared with many current windows: the evaluator keeps
/// it per model version so each evaluation sorts only the current window.
#[derive(Debug, Clone, PartialEq)]
pub struct SortedSample {
    values: Vec<f64>,
}

impl SortedSample {
    /// Validates and sorts `values`.
    pub fn new(values: &[f64]) -> Result<Self> {
        check_finite(values, "sample")?;
        Ok(SortedSample {
            values: sorted_copy(values),
        })
    }

    /// The values, ascending.
    pub fn as_slice(&self) -> &[f64] {
        &self.values
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the sample is empty.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

fn prepare(
    reference: &[f64],
    current: &[f64],
    method: &'static str,
) -> Result<(Vec<f64>, Vec<f64>)> {
    check_finite(reference, "reference")?;
    check_finite(current, "current")?;
    if reference.is_empty() || current.is_empty() {
        return Err(not_enough(method, "a sample is empty"));
    }
    Ok((sorted_copy(reference), sorted_copy(current)))
}

fn nonempty_sorted(r: &[f64], c: &[f64], method: &'static str) -> Result<()> {
    if r.is_empty() || c.is_empty() {
        return Err(not_enough(method, "a sample is empty"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Kolmogorov–Smirnov
// ---------------------------------------------------------------------------

/// How the two-sample KS p-value is computed, as scipy's `ks_2samp(method=)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KsMode {
    /// Exact when both samples have at most 10,000 values, else asymptotic
    /// (scipy's `MAX_AUTO_N` rule).
    #[default]
    Auto,
    /// Exact lattice-path probability (falls back to asymptotic when
    /// `lcm(n1, n2)` does not fit scipy's int32 bound, as scipy does).
    Exact,
    /// `kstwo.sf(D, round(n1*n2/(n1+n2)))`, as scipy.
    Asymp,
}

/// Largest sample size for which `auto` picks the exact p-value.
pub const KS_MAX_AUTO_N: usize = 10_000;

/// The two-sample KS statistic `D = sup |F_r - F_c|` on sorted samples.
pub(crate) fn ks_statistic_sorted(r: &[f64], c: &[f64]) -> f64 {
    let (n1, n2) = (r.len() as f64, c.len() as f64);
    let (mut i, mut j) = (0usize, 0usize);
    let mut d: f64 = 0.0;
    while i < r.len() && j < c.len() {
        let x = if r[i] <= c[j] { r[i] } else { c[j] };
        while i < r.len() && r[i] == x {
            i += 1;
        }
        while j < c.len() && c[j] == x {
            j += 1;
        }
        d = d.max((i as f64 / n1 - j as f64 / n2).abs());
    }
    // Once one sample is exhausted the difference only shrinks towards 0.
    d
}

/// Two-sample KS test (two-sided) with scipy's p-value modes.
pub fn ks_2samp(reference: &[f64], current: &[f64], mode: KsMode) -> Result<Statistic> {
    let (r, c) = prepare(reference, current, "ks")?;
    ks_2samp_sorted(&r, &c, mode)
}

/// [`ks_2samp`] on ascending-sorted samples.
pub fn ks_2samp_sorted(r: &[f64], c: &[f64], mode: KsMode) -> Result<Statistic> {
    nonempty_sorted(r, c, "ks")?;
    let d = ks_statistic_sorted(r, c);
    let (n1, n2) = (r.len() as u64, c.len() as u64);
    let (d, p, used) = ks_pvalue(d, n1, n2, mode);
    Ok(Statistic::new(DriftMethod::Ks, d, Some(p))
        .with("mode", format!("{mode:?}").to_lowercase())
        .with("mode_used", used))
}

/// p-value of the two-sided two-sample KS statistic `d` for sizes `n1`,
/// `n2`. Returns `(d, p, mode_used)`; in exact mode `d` is snapped to the
/// lattice `h / lcm(n1, n2)` exactly as scipy reports it.
pub fn ks_pvalue(d: f64, n1: u64, n2: u64, mode: KsMode) -> (f64, f64, &'static str) {
    let g = gcd(n1, n2);
    let n1g = n1 / g;
    let n2g = n2 / g;
    let mut use_exact = match mode {
        KsMode::Auto => n1.max(n2) as usize <= KS_MAX_AUTO_N,
        KsMode::Exact => (n1g as f64) < i32::MAX as f64 / n2g as f64,
        KsMode::Asymp => false,
    };
    let mut d = d;
    if use_exact {
        let lcm = (n1g * n2) as f64;
        let h = (d * lcm).round_ties_even();
        d = h / lcm;
        if h == 0.0 {
            return (d, 1.0, "exact");
        }
        let h = h as u64;
        let prob = if n1 == n2 {
            prob_outside_square(n1, h)
        } else {
            outer_prob_inside_method(n1, n2, g, h)
        };
        if prob.is_finite() && (0.0..=1.0).contains(&prob) {
            return (d, prob, "exact");
        }
        use_exact = false;
    }
    debug_assert!(!use_exact);
    let (m, n) = if n1 >= n2 {
        (n1 as f64, n2 as f64)
    } else {
        (n2 as f64, n1 as f64)
    };
    let en = m * n / (m + n);
    let neff = en.round_ties_even().max(1.0) as u64;
    (d, kolmogorov_n_sf(neff, d).clamp(0.0, 1.0), "asymp")
}

/// `P(D_{n,n} >= h/n)` by the alternating sum of Gnedenko–Korolyuk written
/// in Horner form (as scipy).
fn prob_outside_square(n: u64, h: u64) -> f64 {
    let mut p = 0.0;
    let mut k = (n / h) as i64;
    let (nf, hf) = (n as f64, h as f64);
    while k >= 0 {
        let kf = k as f64;
        let mut p1 = 1.0;
        for j in 0..h {
            let jf = j as f64;
            p1 = (nf - kf * hf - jf) * p1 / (nf + kf * hf + jf + 1.0);
        }
        p = p1 * (1.0 - p);
        k -= 1;
    }
    2.0 * p
}

/// `P(D_{m,n} >= h/lcm)` by Hodges' inside method, with the recursion
/// rewritten to compute the complement directly (Viehmann 2021), keeping
/// one sliding column of the lattice.
fn outer_prob_inside_method(m: u64, n: u64, g: u64, h: u64) -> f64 {
    let (m, n) = if m < n { (n, m) } else { (m, n) };
    let mg = m / g;
    let ng = n / g;
    let (mgf, ngf, hf) = (mg as f64, ng as f64, h as f64);
    let n_us = n as usize;
    let mut minj: usize = 0;
    let mut maxj: usize = ((hf / mgf).ceil() as usize).min(n_us + 1);
    let mut curlen = maxj - minj;
    let len_a = (2 * maxj + 2).min(n_us + 1);
    let mut a = vec![1.0f64; len_a];
    for v in a.iter_mut().take(maxj).skip(minj) {
        *v = 0.0;
    }
    for i in 1..=m {
        let lastminj = minj;
        let lastlen = curlen;
        let fi = i as f64;
        let lo = ((ngf * fi - hf) / mgf).floor() as i64 + 1;
        minj = (lo.max(0) as usize).min(n_us);
        maxj = (((ngf * fi + hf) / mgf).ceil() as usize).min(n_us + 1);
        if maxj <= minj {
            return 1.0;
        }
        let mut val = if minj == 0 { 0.0 } else { 1.0 };
        for jj in 0..(maxj - minj) {
            let j = (jj + minj) as f64;
            val = (a[jj + minj - lastminj] * fi + val * j) / (fi + j);
            a[jj] = val;
        }
        curlen = maxj - minj;
        if lastlen > curlen {
            let start = maxj - minj;
            let end = (start + (lastlen - curlen)).min(a.len());
            for v in &mut a[start..end] {
                *v = 1.0;
            }
        }
    }
    a[maxj - minj - 1]
}

// ---------------------------------------------------------------------------
// CDF distances: Wasserstein-1 and energy
// ---------------------------------------------------------------------------

/// `∫ |F_r - F_c|^p` over the pooled sorted values (scipy `_cdf_distance`
/// before the final root), with `p` = 1 or 2.
fn cdf_distance_sorted(r: &[f64], c: &[f64], p: u32) -> f64 {
    let (n1, n2) = (r.len() as f64, c.len() as f64);
    let (mut i, mut j) = (0usize, 0usize);
    let mut total = 0.0;
    // Walk the merged order; between consecutive pooled values the ECDFs are
    // constant at (i/n1, j/n2).
    let mut prev: Option<f64> = None;
    while i < r.len() || j < c.len() {
        let x = if j >= c.len() || (i < r.len() && r[i] <= c[j]) {
            r[i]
        } else {
            c[j]
        };
        if let Some(px) = prev {
            let diff = (i as f64 / n1 - j as f64 / n2).abs();
            let w = if p == 1 { diff } else { diff * diff };
            total += w * (x - px);
        }
        if j >= c.len() || (i < r.len() && r[i] <= c[j]) {
            i += 1;
        } else {
            j += 1;
        }
        prev = Some(x);
    }
    total
}

/// Wasserstein-1 distance (scipy `wasserstein_distance`) and the same
/// divided by the reference standard deviation (population, ddof = 0),
/// floored at 0.001 as Evidently does so a constant reference stays finite.
/// The statistic is the normed value; `raw` is in the parameters.
pub fn wasserstein(reference: &[f64], current: &[f64]) -> Result<Statistic> {
    let (r, c) = prepare(reference, current, "wasserstein")?;
    wasserstein_sorted(&r, &c)
}

/// Standard-deviation floor for the normed Wasserstein distance.
pub const WASSERSTEIN_STD_FLOOR: f64 = 0.001;

/// [`wasserstein`] on sorted samples.
pub fn wasserstein_sorted(r: &[f64], c: &[f64]) -> Result<Statistic> {
    nonempty_sorted(r, c, "wasserstein")?;
    let raw = cdf_distance_sorted(r, c, 1);
    let sd = special::variance(r, 0.0).sqrt();
    let norm = sd.max(WASSERSTEIN_STD_FLOOR);
    Ok(Statistic::new(DriftMethod::Wasserstein, raw / norm, None)
        .with("raw", raw)
        .with("reference_std", sd)
        .with("std_floor", WASSERSTEIN_STD_FLOOR))
}

/// Raw Wasserstein-1 distance between two samples.
pub fn wasserstein_raw(reference: &[f64], current: &[f64]) -> Result<f64> {
    let (r, c) = prepare(reference, current, "wasserstein")?;
    Ok(cdf_distance_sorted(&r, &c, 1))
}

/// Energy distance as scipy `energy_distance`: `sqrt(2 ∫ (F_r - F_c)^2)`.
pub fn energy(reference: &[f64], current: &[f64]) -> Result<Statistic> {
    let (r, c) = prepare(reference, current, "energy")?;
    energy_sorted(&r, &c)
}

/// [`energy`] on sorted samples.
pub fn energy_sorted(r: &[f64], c: &[f64]) -> Result<Statistic> {
    nonempty_sorted(r, c, "energy")?;
    let d = std::f64::consts::SQRT_2 * cdf_distance_sorted(r, c, 2).sqrt();
    Ok(Statistic::new(DriftMethod::Energy, d, None))
}

// ---------------------------------------------------------------------------
// Binned distances: PSI, Jensen–Shannon, Hellinger
// ---------------------------------------------------------------------------

/// Reference-quantile bin edges: the `i/bins` quantiles of the reference
/// (linear interpolation, numpy's default), duplicates removed. With `k`
/// edges there are `k + 1` bins `(-inf, e1], (e1, e2], ..., (ek, +inf)`:
/// the outer bins are open so current values outside the reference range
/// still land in a bin.
pub fn quantile_edges_sorted(r: &[f64], bins: usize) -> Vec<f64> {
    let mut edges: Vec<f64> = (1..bins)
        .map(|i| special::quantile_sorted(r, i as f64 / bins as f64))
        .collect();
    edges.dedup();
    edges
}

/// Counts of a sorted sample in the bins defined by [`quantile_edges_sorted`].
pub(crate) fn count_in_quantile_bins(sorted: &[f64], edges: &[f64]) -> Vec<f64> {
    let mut out = Vec::with_capacity(edges.len() + 1);
    let mut prev = 0usize;
    for e in edges {
        let k = sorted.partition_point(|x| x <= e);
        out.push((k - prev) as f64);
        prev = k;
    }
    out.push((sorted.len() - prev) as f64);
    out
}

/// PSI from two vectors of bin counts: `Σ (c - r) ln(c / r)` over bin
/// proportions, an empty bin's proportion replaced by `epsilon`.
pub fn psi_from_counts(ref_counts: &[f64], cur_counts: &[f64], epsilon: f64) -> f64 {
    let rt: f64 = ref_counts.iter().sum();
    let ct: f64 = cur_counts.iter().sum();
    ref_counts
        .iter()
        .zip(cur_counts)
        .map(|(&r, &c)| {
            let mut rp = r / rt;
            let mut cp = c / ct;
            if rp == 0.0 {
                rp = epsilon;
            }
            if cp == 0.0 {
                cp = epsilon;
            }
            (cp - rp) * (cp / rp).ln()
        })
        .sum()
}

/// Population stability index on `bins` reference-quantile bins with open
/// outer bins; empty bins get proportion [`PSI_EPSILON`].
pub fn psi(reference: &[f64], current: &[f64], bins: usize) -> Result<Statistic> {
    let (r, c) = prepare(reference, current, "psi")?;
    psi_sorted(&r, &c, bins)
}

/// [`psi`] on sorted samples.
pub fn psi_sorted(r: &[f64], c: &[f64], bins: usize) -> Result<Statistic> {
    if bins < 2 {
        return Err(invalid("bins", "PSI needs at least 2 bins"));
    }
    nonempty_sorted(r, c, "psi")?;
    let edges = quantile_edges_sorted(r, bins);
    let rc = count_in_quantile_bins(r, &edges);
    let cc = count_in_quantile_bins(c, &edges);
    let v = psi_from_counts(&rc, &cc, PSI_EPSILON);
    Ok(Statistic::new(DriftMethod::Psi, v, None)
        .with("bins", bins)
        .with("bins_used", edges.len() + 1)
        .with("epsilon", PSI_EPSILON))
}

/// Equal-width edges over `[lo, hi]` exactly as numpy's
/// `histogram_bin_edges(..., bins)` (`linspace`, and a ±0.5 widening when
/// the range is empty).
pub(crate) fn equal_width_edges(lo: f64, hi: f64, bins: usize) -> Vec<f64> {
    let (lo, hi) = if lo == hi {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo, hi)
    };
    let step = (hi - lo) / bins as f64;
    let mut e: Vec<f64> = (0..bins).map(|i| i as f64 * step + lo).collect();
    e.push(hi);
    e
}

/// Counts of a sorted sample in numpy-histogram bins `[e_i, e_{i+1})`, the
/// last bin closed.
pub(crate) fn count_in_histogram(sorted: &[f64], edges: &[f64]) -> Vec<f64> {
    let nb = edges.len() - 1;
    let mut out = Vec::with_capacity(nb);
    for i in 0..nb {
        let lo = sorted.partition_point(|x| *x < edges[i]);
        let hi = if i + 1 == nb {
            sorted.partition_point(|x| *x <= edges[i + 1])
        } else {
            sorted.partition_point(|x| *x < edges[i + 1])
        };
        out.push((hi - lo) as f64);
    }
    out
}

/// Jensen–Shannon distance between two count vectors (each normalised to a
/// distribution), as `scipy.spatial.distance.jensenshannon(p, q, base)`:
/// the square root of the divergence. `base = None` means natural log.
/// Empty bins need no epsilon: `0 ln 0 = 0`.
pub fn js_from_counts(p: &[f64], q: &[f64], base: Option<f64>) -> f64 {
    let ps: f64 = p.iter().sum();
    let qs: f64 = q.iter().sum();
    let mut left = 0.0;
    let mut right = 0.0;
    for (&a, &b) in p.iter().zip(q) {
        let a = a / ps;
        let b = b / qs;
        let m = (a + b) / 2.0;
        if a > 0.0 {
            left += a * (a / m).ln();
        }
        if b > 0.0 {
            right += b * (b / m).ln();
        }
    }
    let mut js = left + right;
    if let Some(b) = base {
        js /= b.ln();
    }
    (js / 2.0).max(0.0).sqrt()
}

/// Hellinger distance `sqrt(Σ (sqrt p - sqrt q)^2) / sqrt 2` in [0, 1].
pub fn hellinger_from_counts(p: &[f64], q: &[f64]) -> f64 {
    let ps: f64 = p.iter().sum();
    let qs: f64 = q.iter().sum();
    let s: f64 = p
        .iter()
        .zip(q)
        .map(|(&a, &b)| ((a / ps).sqrt() - (b / qs).sqrt()).powi(2))
        .sum();
    (s.sqrt() / std::f64::consts::SQRT_2).min(1.0)
}

fn pooled_histograms(r: &[f64], c: &[f64], bins: usize) -> (Vec<f64>, Vec<f64>) {
    let lo = r[0].min(c[0]);
    let hi = r[r.len() - 1].max(c[c.len() - 1]);
    let edges = equal_width_edges(lo, hi, bins);
    (count_in_histogram(r, &edges), count_in_histogram(c, &edges))
}

/// Jensen–Shannon distance on `bins` equal-width bins over the pooled range
/// (Evidently's binning). `base = None` is the natural log (Evidently's
/// default); `Some(2.0)` bounds the distance by 1.
pub fn jensen_shannon(
    reference: &[f64],
    current: &[f64],
    bins: usize,
    base: Option<f64>,
) -> Result<Statistic> {
    let (r, c) = prepare(reference, current, "jensen_shannon")?;
    jensen_shannon_sorted(&r, &c, bins, base)
}

/// [`jensen_shannon`] on sorted samples.
pub fn jensen_shannon_sorted(
    r: &[f64],
    c: &[f64],
    bins: usize,
    base: Option<f64>,
) -> Result<Statistic> {
    if bins == 0 {
        return Err(invalid("bins", "need at least one bin"));
    }
    if let Some(b) = base
        && (b <= 0.0 || b == 1.0 || !b.is_finite())
    {
        return Err(invalid("base", "logarithm base must be positive and not 1"));
    }
    nonempty_sorted(r, c, "jensen_shannon")?;
    let (rc, cc) = pooled_histograms(r, c, bins);
    Ok(Statistic::new(
        DriftMethod::JensenShannon,
        js_from_counts(&rc, &cc, base),
        None,
    )
    .with("bins", bins)
    .with(
        "base",
        base.map_or_else(|| "e".to_string(), |b| b.to_string()),
    ))
}

/// Hellinger distance on the same equal-width pooled bins as
/// [`jensen_shannon`].
pub fn hellinger(reference: &[f64], current: &[f64], bins: usize) -> Result<Statistic> {
    let (r, c) = prepare(reference, current, "hellinger")?;
    hellinger_sorted(&r, &c, bins)
}

/// [`hellinger`] on sorted samples.
pub fn hellinger_sorted(r: &[f64], c: &[f64], bins: usize) -> Result<Statistic> {
    if bins == 0 {
        return Err(invalid("bins", "need at least one bin"));
    }
    nonempty_sorted(r, c, "hellinger")?;
    let (rc, cc) = pooled_histograms(r, c, bins);
    Ok(Statistic::new(
        DriftMethod::Hellinger,
        hellinger_from_counts(&rc, &cc),
        None,
    )
    .with("bins", bins))
}

// ---------------------------------------------------------------------------
// Anderson–Darling k-sample
// ---------------------------------------------------------------------------

/// Anderson–Darling k-sample test, midrank variant (Scholz & Stephens 1987,
/// eq. 7), as scipy `anderson_ksamp(samples, variant="midrank")`. The
/// p-value interpolates the tabulated critical values exactly as scipy
/// does: quadratic fit of log significance, capped to [0.001, 0.25].
pub fn anderson_ksamp(samples: &[&[f64]]) -> Result<Statistic> {
    if samples.len() < 2 {
        return Err(invalid(
            "samples",
            "anderson_ksamp needs at least two samples",
        ));
    }
    let mut sorted = Vec::with_capacity(samples.len());
    for s in samples {
        check_finite(s, "sample")?;
        if s.is_empty() {
            return Err(not_enough("anderson_darling", "a sample is empty"));
        }
        sorted.push(sorted_copy(s));
    }
    let refs: Vec<&[f64]> = sorted.iter().map(Vec::as_slice).collect();
    anderson_ksamp_sorted(&refs)
}

/// [`anderson_ksamp`] on sorted samples.
pub fn anderson_ksamp_sorted(samples: &[&[f64]]) -> Result<Statistic> {
    let k = samples.len();
    if k < 2 {
        return Err(invalid(
            "samples",
            "anderson_ksamp needs at least two samples",
        ));
    }
    if samples.iter().any(|s| s.is_empty()) {
        return Err(not_enough("anderson_darling", "a sample is empty"));
    }
    let mut z: Vec<f64> = samples.iter().flat_map(|s| s.iter().copied()).collect();
    z.sort_unstable_by(f64::total_cmp);
    let nn = z.len();
    if nn < 4 {
        return Err(not_enough(
            "anderson_darling",
            "needs at least 4 observations in total",
        ));
    }
    let mut zstar = z.clone();
    zstar.dedup();
    if zstar.len() < 2 {
        return Err(not_enough("anderson_darling", "all observations are equal"));
    }
    let nf = nn as f64;
    // Per distinct value: lj (multiplicity) and Bj (midrank position).
    let mut lj = Vec::with_capacity(zstar.len());
    let mut bj = Vec::with_capacity(zstar.len());
    {
        let mut i = 0;
        for &v in &zstar {
            let left = i;
            while i < nn && z[i] == v {
                i += 1;
            }
            let l = (i - left) as f64;
            lj.push(l);
            bj.push(left as f64 + l / 2.0);
        }
    }
    let mut a2 = 0.0;
    for s in samples {
        let ni = s.len() as f64;
        let mut inner_sum = 0.0;
        let mut p = 0usize;
        for (idx, &v) in zstar.iter().enumerate() {
            while p < s.len() && s[p] < v {
                p += 1;
            }
            let lo = p;
            while p < s.len() && s[p] == v {
                p += 1;
            }
            let fij = (p - lo) as f64;
            let mij = p as f64 - fij / 2.0;
            let (l, b) = (lj[idx], bj[idx]);
            inner_sum += l / nf * (nf * mij - b * ni).powi(2) / (b * (nf - b) - nf * l / 4.0);
        }
        a2 += inner_sum / ni;
    }
    a2 *= (nf - 1.0) / nf;

    let kf = k as f64;
    let hh: f64 = samples.iter().map(|s| 1.0 / s.len() as f64).sum();
    // hs_cs[j] = Σ_{i<=j} 1/(N-1-i) for j = 0..N-3.
    let mut cum = 0.0;
    let mut g = 0.0;
    for j in 0..(nn - 2) {
        cum += 1.0 / (nf - 1.0 - j as f64);
        g += cum / (j as f64 + 2.0);
    }
    let h = cum + 1.0;
    let a = (4.0 * g - 6.0) * (kf - 1.0) + (10.0 - 6.0 * g) * hh;
    let b = (2.0 * g - 4.0) * kf * kf + 8.0 * h * kf + (2.0 * g - 14.0 * h - 4.0) * hh - 8.0 * h
        + 4.0 * g
        - 6.0;
    let c = (6.0 * h + 2.0 * g - 2.0) * kf * kf
        + (4.0 * h - 4.0 * g + 6.0) * kf
        + (2.0 * h - 6.0) * hh
        + 4.0 * h;
    let d = (2.0 * h + 6.0) * kf * kf - 4.0 * h * kf;
    let sigmasq =
        (a * nf.powi(3) + b * nf * nf + c * nf + d) / ((nf - 1.0) * (nf - 2.0) * (nf - 3.0));
    let m = kf - 1.0;
    let stat = (a2 - m) / sigmasq.sqrt();
    let b0 = [0.675, 1.281, 1.645, 1.96, 2.326, 2.573, 3.085];
    let b1 = [-0.245, 0.25, 0.678, 1.149, 1.822, 2.364, 3.615];
    let b2 = [-0.105, -0.305, -0.362, -0.391, -0.396, -0.345, -0.154];
    let sig = [0.25, 0.1, 0.05, 0.025, 0.01, 0.005, 0.001];
    let crit: Vec<f64> = (0..7)
        .map(|i| b0[i] + b1[i] / m.sqrt() + b2[i] / m)
        .collect();
    let cmin = crit.iter().copied().fold(f64::INFINITY, f64::min);
    let cmax = crit.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (p, capped) = if stat < cmin {
        (0.25, "capped")
    } else if stat > cmax {
        (0.001, "floored")
    } else {
        let ys: Vec<f64> = sig.iter().map(|s: &f64| s.ln()).collect();
        let coef = polyfit2(&crit, &ys);
        (
            (coef[0] * stat * stat + coef[1] * stat + coef[2]).exp(),
            "interpolated",
        )
    };
    if !stat.is_finite() {
        return Err(not_enough(
            "anderson_darling",
            "variance of the statistic is not defined",
        ));
    }
    Ok(Statistic::new(DriftMethod::AndersonDarling, stat, Some(p))
        .with("variant", "midrank")
        .with("p_value_kind", capped)
        .with("a2akn", a2))
}

/// Least-squares quadratic fit `y ≈ c0 x² + c1 x + c2` (numpy `polyfit(x,
/// y, 2)`), solved on centred and scaled abscissae for conditioning.
fn polyfit2(x: &[f64], y: &[f64]) -> [f64; 3] {
    let n = x.len() as f64;
    let mx = x.iter().sum::<f64>() / n;
    let sx = (x.iter().map(|v| (v - mx).powi(2)).sum::<f64>() / n).sqrt();
    let t: Vec<f64> = x.iter().map(|v| (v - mx) / sx).collect();
    // Normal equations in t: [Σt⁴ Σt³ Σt²; Σt³ Σt² Σt; Σt² Σt n] c = [Σt²y; Σty; Σy]
    let s = |p: i32| t.iter().map(|v| v.powi(p)).sum::<f64>();
    let sy = |p: i32| t.iter().zip(y).map(|(v, w)| v.powi(p) * w).sum::<f64>();
    let m = [[s(4), s(3), s(2)], [s(3), s(2), s(1)], [s(2), s(1), n]];
    let rhs = [sy(2), sy(1), sy(0)];
    let c = solve3(m, rhs);
    // Back to x: a (x-mx)²/sx² + b (x-mx)/sx + c
    let a2 = c[0] / (sx * sx);
    let b2 = c[1] / sx;
    [a2, b2 - 2.0 * a2 * mx, a2 * mx * mx - b2 * mx + c[2]]
}

fn solve3(mut m: [[f64; 3]; 3], mut r: [f64; 3]) -> [f64; 3] {
    // Gaussian elimination with partial pivoting.
    for col in 0..3 {
        let piv = (col..3)
            .max_by(|&a, &b| m[a][col].abs().total_cmp(&m[b][col].abs()))
            .unwrap_or(col);
        m.swap(col, piv);
        r.swap(col, piv);
        for row in (col + 1)..3 {
            let f = m[row][col] / m[col][col];
            let pivot_row = m[col];
            for (dst, src) in m[row].iter_mut().zip(pivot_row.iter()).skip(col) {
                *dst -= f * src;
            }
            r[row] -= f * r[col];
        }
    }
    let mut x = [0.0; 3];
    for i in (0..3).rev() {
        let mut acc = r[i];
        for k in (i + 1)..3 {
            acc -= m[i][k] * x[k];
        }
        x[i] = acc / m[i][i];
    }
    x
}

// ---------------------------------------------------------------------------
// Cramér–von Mises two-sample
// ---------------------------------------------------------------------------

/// p-value method for [`cramer_von_mises`], as scipy
/// `cramervonmises_2samp(method=)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CvmMode {
    /// Exact when both samples have at most 20 values, else asymptotic.
    #[default]
    Auto,
    /// Exact permutation distribution (only feasible for small samples;
    /// more than 20 values in a sample falls back to asymptotic).
    Exact,
    /// Anderson's (1962) limiting distribution after standardisation.
    Asymptotic,
}

/// Two-sample Cramér–von Mises test (scipy `cramervonmises_2samp`).
/// Needs at least two values per sample.
pub fn cramer_von_mises(reference: &[f64], current: &[f64], mode: CvmMode) -> Result<Statistic> {
    let (r, c) = prepare(reference, current, "cramer_von_mises")?;
    cramer_von_mises_sorted(&r, &c, mode)
}

/// Largest sample size for the exact CvM distribution (also scipy's auto
/// cut-over).
pub const CVM_MAX_EXACT_N: usize = 20;

/// [`cramer_von_mises`] on sorted samples.
pub fn cramer_von_mises_sorted(x: &[f64], y: &[f64], mode: CvmMode) -> Result<Statistic> {
    let (nx, ny) = (x.len(), y.len());
    if nx <= 1 || ny <= 1 {
        return Err(not_enough(
            "cramer_von_mises",
            "each sample needs at least two values",
        ));
    }
    let exact = match mode {
        CvmMode::Auto | CvmMode::Exact => nx.max(ny) <= CVM_MAX_EXACT_N,
        CvmMode::Asymptotic => false,
    };
    let mut z = Vec::with_capacity(nx + ny);
    z.extend_from_slice(x);
    z.extend_from_slice(y);
    let (ranks, _) = average_ranks(&z);
    let (nxf, nyf) = (nx as f64, ny as f64);
    let sx: f64 = (0..nx).map(|i| (ranks[i] - (i + 1) as f64).powi(2)).sum();
    let sy: f64 = (0..ny)
        .map(|j| (ranks[nx + j] - (j + 1) as f64).powi(2))
        .sum();
    let u = nxf * sx + nyf * sy;
    let k = nxf * nyf;
    let nn = nxf + nyf;
    let t = u / (k * nn) - (4.0 * k - 1.0) / (6.0 * nn);
    let p = if exact {
        cvm_exact_pvalue(u, nx as u64, ny as u64)
    } else {
        let et = (1.0 + 1.0 / nn) / 6.0;
        let vt = (nn + 1.0) * (4.0 * k * nn - 3.0 * (nxf * nxf + nyf * nyf) - 2.0 * k)
            / (45.0 * nn * nn * 4.0 * k);
        let tn = 1.0 / 6.0 + (t - et) / (45.0 * vt).sqrt();
        if tn >= 0.003 {
            (1.0 - cvm_inf_cdf(tn)).max(0.0)
        } else {
            1.0
        }
    };
    Ok(Statistic::new(DriftMethod::CramerVonMises, t, Some(p))
        .with("mode_used", if exact { "exact" } else { "asymptotic" }))
}

/// Limiting CDF of the Cramér–von Mises statistic (Csörgő & Faraway 1996,
/// eq. 1.2), summed term by term until a term is below 1e-7 — the same
/// stopping rule as scipy, so the truncation error matches too.
pub(crate) fn cvm_inf_cdf(x: f64) -> f64 {
    let pi = std::f64::consts::PI;
    let mut tot = 0.0;
    let mut k = 0.0f64;
    loop {
        let u = (special::ln_gamma(k + 0.5) - special::ln_gamma(k + 1.0)).exp()
            / (pi.powf(1.5) * x.sqrt());
        let y = 4.0 * k + 1.0;
        let q = y * y / (16.0 * x);
        let term = u * y.sqrt() * (-q).exp() * special::bessel_k(0.25, q);
        tot += term;
        if term.abs() < 1e-7 || k > 1000.0 {
            break;
        }
        k += 1.0;
    }
    tot
}

/// Exact p-value of the two-sample CvM statistic `u` (the rank form) by the
/// generating-function recursion of Xiao, Gordon & Yakovlev (2006) over
/// lattice paths, as scipy `_pval_cvm_2samp_exact`.
fn cvm_exact_pvalue(u: f64, m: u64, n: u64) -> f64 {
    use std::collections::BTreeMap;
    let g = gcd(m, n);
    let lcm = m / g * n;
    let a = lcm / m;
    let b = lcm / n;
    let mn = (m * n) as f64;
    let zeta = ((lcm * lcm * (m + n)) as f64 * (6.0 * u - mn * (4.0 * mn - 1.0)) / (6.0 * mn * mn))
        .floor();
    let combinations = (special::ln_binom((m + n) as f64, m as f64)).exp();
    let mut gs: Vec<BTreeMap<u64, f64>> = vec![BTreeMap::new(); (m + 1) as usize];
    gs[0].insert(0, 1.0);
    for uu in 0..=n {
        let mut next: Vec<BTreeMap<u64, f64>> = Vec::with_capacity(gs.len());
        let mut tmp: BTreeMap<u64, f64> = BTreeMap::new();
        for (v, gv) in gs.iter().enumerate() {
            for (&val, &freq) in gv {
                *tmp.entry(val).or_insert(0.0) += freq;
            }
            let d = a as i64 * v as i64 - b as i64 * uu as i64;
            let res = (d * d) as u64;
            tmp = tmp.into_iter().map(|(val, f)| (val + res, f)).collect();
            next.push(tmp.clone());
        }
        gs = next;
    }
    let total: f64 = gs[m as usize].values().sum();
    let hits: f64 = gs[m as usize]
        .iter()
        .filter(|(v, _)| **v as f64 >= zeta)
        .map(|(_, f)| *f)
        .sum();
    // `total` equals C(m+n, m) exactly (integer counts); use it rather than
    // the lgamma value to avoid rounding.
    let _ = combinations;
    (hits / total).clamp(0.0, 1.0)
}

// ---------------------------------------------------------------------------
// Mann–Whitney U
// ---------------------------------------------------------------------------

/// p-value method for [`mann_whitney`], as scipy `mannwhitneyu(method=)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MwMode {
    /// Exact when one sample has at most 8 values and there are no ties,
    /// else asymptotic (scipy's rule).
    #[default]
    Auto,
    /// Exact null distribution of U (no tie correction); falls back to
    /// asymptotic when `n1·n2/2` exceeds [`MW_MAX_EXACT_CELLS`].
    Exact,
    /// Normal approximation with tie correction and continuity correction.
    Asymptotic,
}

/// Largest `n1·n2/2` for which the exact Mann–Whitney distribution is built.
pub const MW_MAX_EXACT_CELLS: f64 = 2e7;

/// Two-sided Mann–Whitney U test (scipy `mannwhitneyu(reference, current,
/// use_continuity=True, alternative="two-sided")`). The statistic is `U1`
/// of the reference sample; the parameters carry the common-language
/// effect size `U1 / (n1 n2)` = P(ref > cur) + ½ P(ref = cur).
pub fn mann_whitney(reference: &[f64], current: &[f64], mode: MwMode) -> Result<Statistic> {
    check_finite(reference, "reference")?;
    check_finite(current, "current")?;
    let (n1, n2) = (reference.len(), current.len());
    if n1 == 0 || n2 == 0 {
        return Err(not_enough("mann_whitney", "a sample is empty"));
    }
    let mut all = Vec::with_capacity(n1 + n2);
    all.extend_from_slice(reference);
    all.extend_from_slice(current);
    let (ranks, ties) = average_ranks(&all);
    let r1: f64 = ranks[..n1].iter().sum();
    mw_from_rank_sum(r1, n1, n2, &ties, mode)
}

/// [`mann_whitney`] on sorted samples: the rank sum comes from one merge
/// pass instead of a sort.
pub fn mann_whitney_sorted(r: &[f64], c: &[f64], mode: MwMode) -> Result<Statistic> {
    let (n1, n2) = (r.len(), c.len());
    if n1 == 0 || n2 == 0 {
        return Err(not_enough("mann_whitney", "a sample is empty"));
    }
    let (mut i, mut j) = (0usize, 0usize);
    let mut r1 = 0.0;
    let mut ties = Vec::new();
    while i < n1 || j < n2 {
        let x = if j >= n2 || (i < n1 && r[i] <= c[j]) {
            r[i]
        } else {
            c[j]
        };
        let (i0, j0) = (i, j);
        while i < n1 && r[i] == x {
            i += 1;
        }
        while j < n2 && c[j] == x {
            j += 1;
        }
        let before = (i0 + j0) as f64;
        let cnt = (i - i0) + (j - j0);
        let rank = before + (cnt as f64 + 1.0) / 2.0;
        r1 += rank * (i - i0) as f64;
        ties.push(cnt);
    }
    mw_from_rank_sum(r1, n1, n2, &ties, mode)
}

fn mw_from_rank_sum(
    r1: f64,
    n1: usize,
    n2: usize,
    ties: &[usize],
    mode: MwMode,
) -> Result<Statistic> {
    let (n1f, n2f) = (n1 as f64, n2 as f64);
    let u1 = r1 - n1f * (n1f + 1.0) / 2.0;
    let u2 = n1f * n2f - u1;
    let u = u1.max(u2);
    let has_ties = ties.iter().any(|&t| t > 1);
    // The exact distribution needs n1·n2/2 counters: above
    // MW_MAX_EXACT_CELLS an explicit `exact` request falls back to the
    // normal approximation (reported in `mode_used`) instead of exhausting
    // memory.
    let feasible = n1f * n2f / 2.0 <= MW_MAX_EXACT_CELLS;
    let exact = feasible
        && match mode {
            MwMode::Auto => !((n1 > 8 && n2 > 8) || has_ties),
            MwMode::Exact => true,
            MwMode::Asymptotic => false,
        };
    let p = if exact {
        mw_exact_sf(u, n1, n2)
    } else {
        let nf = n1f + n2f;
        let tie_term: f64 = ties.iter().map(|&t| (t as f64).powi(3) - t as f64).sum();
        let s = (n1f * n2f / 12.0 * ((nf + 1.0) - tie_term / (nf * (nf - 1.0)))).sqrt();
        if s.is_nan() || s <= 0.0 {
            return Err(not_enough("mann_whitney", "all values are tied"));
        }
        let z = (u - n1f * n2f / 2.0 - 0.5) / s;
        2.0 * norm_sf(z)
    };
    Ok(
        Statistic::new(DriftMethod::MannWhitney, u1, Some(p.min(1.0)))
            .with("common_language", u1 / (n1f * n2f))
            .with("mode_used", if exact { "exact" } else { "asymptotic" })
            .with("continuity", true),
    )
}

/// Two-sided exact p-value `2 P(U <= n1 n2 - u)` under H0 (no ties), from
/// the Gaussian binomial coefficient's coefficients.
fn mw_exact_sf(u: f64, n1: usize, n2: usize) -> f64 {
    let (m, n) = (n1.min(n2), n1.max(n2));
    let kc = (m as f64 * n as f64 - u).floor();
    if kc < 0.0 {
        return 0.0;
    }
    let kc = kc as usize;
    let freq = gaussian_binomial_coeffs(m, n, kc);
    let total = (special::ln_binom((m + n) as f64, m as f64)).exp();
    let cdf: f64 = freq.iter().sum::<f64>() / total;
    (2.0 * cdf).min(1.0)
}

/// Coefficients 0..=maxu of the Gaussian binomial `[m+n choose m]_q`: the
/// number of arrangements giving each value of U.
pub(crate) fn gaussian_binomial_coeffs(m: usize, n: usize, maxu: usize) -> Vec<f64> {
    let mut c = vec![0.0f64; maxu + 1];
    c[0] = 1.0;
    for i in 1..=m {
        // Multiply by (1 - q^(n+i)) (descending so sources are old values)...
        let s = n + i;
        if s <= maxu {
            for u in (s..=maxu).rev() {
                c[u] -= c[u - s];
            }
        }
        // ...then divide by (1 - q^i): c[u] += c[u-i] ascending.
        for u in i..=maxu {
            c[u] += c[u - i];
        }
    }
    c
}

// ---------------------------------------------------------------------------
// Welch's t
// ---------------------------------------------------------------------------

/// Welch's unequal-variance t-test (scipy `ttest_ind(equal_var=False)`),
/// two-sided. Needs two values per sample and a non-zero pooled variance.
pub fn welch_t(reference: &[f64], current: &[f64]) -> Result<Statistic> {
    check_finite(reference, "reference")?;
    check_finite(current, "current")?;
    let (n1, n2) = (reference.len() as f64, current.len() as f64);
    if n1 < 2.0 || n2 < 2.0 {
        return Err(not_enough(
            "welch_t",
            "each sample needs at least two values",
        ));
    }
    let (m1, m2) = (special::mean(reference), special::mean(current));
    let (v1, v2) = (
        special::variance(reference, 1.0),
        special::variance(current, 1.0),
    );
    let (a, b) = (v1 / n1, v2 / n2);
    let se2 = a + b;
    if se2.is_nan() || se2 <= 0.0 {
        return Err(not_enough("welch_t", "both samples are constant"));
    }
    let t = (m1 - m2) / se2.sqrt();
    let df = se2 * se2 / (a * a / (n1 - 1.0) + b * b / (n2 - 1.0));
    let p = t_two_sided(t, df);
    Ok(Statistic::new(DriftMethod::WelchT, t, Some(p)).with("df", df))
}
