//! Categorical features: chi-square and G-test on the reference × current
//! contingency table, Cramér's V, the two-proportion z-test, Fisher's exact
//! test (2×2), total variation, L∞, Jensen–Shannon and PSI over categories.
//!
//! Categories are aligned on the reference: every category the reference
//! saw keeps its own column, and every current category the reference never
//! saw is pooled into one explicit [`UNSEEN_BUCKET`]. That bucket has a
//! reference count of 0, which the statistics handle without infinities:
//! the contingency tests use expected counts from the pooled margins (never
//! 0 for a non-empty column), PSI replaces the empty proportion by
//! [`PSI_EPSILON`], and JS, total variation and
//! L∞ are finite with zeros by construction.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use serde::{Deserialize, Serialize};

use crate::error::{Result, invalid, not_enough};
use crate::numeric::{PSI_EPSILON, js_from_counts, psi_from_counts};
use crate::result::{DriftMethod, Statistic};
use crate::special::{chi2_sf, norm_sf};

/// Label of the bucket that pools current categories unseen in the reference.
pub const UNSEEN_BUCKET: &str = "__unseen__";

/// Counts per category.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryCounts {
    /// Category → number of rows.
    pub counts: BTreeMap<String, u64>,
}

impl CategoryCounts {
    /// Counts the values of an iterator.
    pub fn from_values<I, S>(values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        // Hash while counting, sort once at the end for stable output. The
        // Fx hash is not collision-resistant; labels come from authenticated
        // ingest, and the evaluator bounds rows per window.
        let mut h: HashMap<String, u64, BuildHasherDefault<FxHasher>> = HashMap::default();
        for v in values {
            let v = v.as_ref();
            if let Some(c) = h.get_mut(v) {
                *c += 1;
            } else {
                h.insert(v.to_string(), 1);
            }
        }
        CategoryCounts {
            counts: h.into_iter().collect(),
        }
    }

    /// From `(category, count)` pairs (counts of the same category add up).
    pub fn from_pairs<I, S>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (S, u64)>,
        S: Into<String>,
    {
        let mut counts = BTreeMap::new();
        for (k, v) in pairs {
            *counts.entry(k.into()).or_insert(0) += v;
        }
        CategoryCounts { counts }
    }

    /// Total number of rows.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// Number of categories with a non-zero count.
    pub fn cardinality(&self) -> usize {
        self.counts.values().filter(|&&c| c > 0).count()
    }

    /// Merges another set of counts into this one.
    pub fn merge(&mut self, other: &CategoryCounts) {
        for (k, v) in &other.counts {
            *self.counts.entry(k.clone()).or_insert(0) += v;
        }
    }
}

/// The Fx hash (rustc's): one multiply per word. Category labels are short,
/// and counting them is the hot loop of a categorical feature.
#[derive(Default)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Reference and current counts on a common set of columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Aligned {
    /// Column labels: reference categories in order, then [`UNSEEN_BUCKET`]
    /// if the current sample has categories the reference lacks.
    pub labels: Vec<String>,
    /// Reference count per column.
    pub reference: Vec<f64>,
    /// Current count per column.
    pub current: Vec<f64>,
    /// Current rows that fell into the unseen bucket.
    pub unseen_current: u64,
}

/// Aligns two count tables on the reference's categories plus the unseen
/// bucket. Columns empty in both samples are dropped.
pub fn align(reference: &CategoryCounts, current: &CategoryCounts) -> Aligned {
    let mut labels = Vec::new();
    let mut r = Vec::new();
    let mut c = Vec::new();
    for (k, &rv) in &reference.counts {
        let cv = current.counts.get(k).copied().unwrap_or(0);
        if rv == 0 && cv == 0 {
            continue;
        }
        labels.push(k.clone());
        r.push(rv as f64);
        c.push(cv as f64);
    }
    let unseen: u64 = current
        .counts
        .iter()
        .filter(|(k, _)| !reference.counts.contains_key(*k))
        .map(|(_, v)| *v)
        .sum();
    if unseen > 0 {
        labels.push(UNSEEN_BUCKET.to_string());
        r.push(0.0);
        c.push(unseen as f64);
    }
    Aligned {
        labels,
        reference: r,
        current: c,
        unseen_current: unseen,
    }
}

fn check_totals(a: &Aligned, method: &'static str) -> Result<(f64, f64)> {
    let rt: f64 = a.reference.iter().sum();
    let ct: f64 = a.current.iter().sum();
    if rt == 0.0 || ct == 0.0 {
        return Err(not_enough(method, "a sample has no rows"));
    }
    Ok((rt, ct))
}

/// Which power-divergence statistic to compute on a contingency table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Divergence {
    /// Pearson's chi-square.
    Pearson,
    /// Log-likelihood ratio (G-test).
    LogLikelihood,
}

/// Chi-square / G statistic, p-value and degrees of freedom of an r×c
/// contingency table, as scipy `chi2_contingency(table, correction,
/// lambda_)`: Yates' correction is applied only when `dof == 1`. Rows or
/// columns summing to zero make an expected count zero and are rejected.
pub fn contingency(
    table: &[Vec<f64>],
    correction: bool,
    kind: Divergence,
) -> Result<(f64, f64, usize)> {
    let r = table.len();
    if r == 0 || table[0].is_empty() {
        return Err(not_enough("chi_square", "empty table"));
    }
    let c = table[0].len();
    if table.iter().any(|row| row.len() != c) {
        return Err(invalid("table", "rows have different lengths"));
    }
    if table.iter().flatten().any(|v| !v.is_finite() || *v < 0.0) {
        return Err(invalid("table", "counts must be finite and non-negative"));
    }
    let row: Vec<f64> = table.iter().map(|r| r.iter().sum()).collect();
    let col: Vec<f64> = (0..c).map(|j| table.iter().map(|r| r[j]).sum()).collect();
    let total: f64 = row.iter().sum();
    if row.iter().chain(col.iter()).any(|&s| s == 0.0) {
        return Err(not_enough(
            "chi_square",
            "a row or column of the table is empty",
        ));
    }
    let dof = (r - 1) * (c - 1);
    if dof == 0 {
        return Ok((0.0, 1.0, 0));
    }
    let mut stat = 0.0;
    for i in 0..r {
        for j in 0..c {
            let e = row[i] * col[j] / total;
            let mut o = table[i][j];
            if dof == 1 && correction {
                let diff = e - o;
                o += diff.signum() * diff.abs().min(0.5);
            }
            stat += match kind {
                Divergence::Pearson => (o - e) * (o - e) / e,
                Divergence::LogLikelihood => {
                    if o > 0.0 {
                        2.0 * o * (o / e).ln()
                    } else {
                        0.0
                    }
                }
            };
        }
    }
    Ok((stat, chi2_sf(stat, dof as f64), dof))
}

/// Pearson chi-square on the 2×K (reference, current) table. `yates`
/// applies scipy's continuity correction when the table is 2×2.
pub fn chi_square(
    reference: &CategoryCounts,
    current: &CategoryCounts,
    yates: bool,
) -> Result<Statistic> {
    let a = align(reference, current);
    chi_square_aligned(&a, yates)
}

/// [`chi_square`] on aligned counts.
pub fn chi_square_aligned(a: &Aligned, yates: bool) -> Result<Statistic> {
    check_totals(a, "chi_square")?;
    if a.labels.len() < 2 {
        return Err(not_enough(
            "chi_square",
            "only one category in both samples",
        ));
    }
    let (s, p, dof) = contingency(
        &[a.reference.clone(), a.current.clone()],
        yates,
        Divergence::Pearson,
    )?;
    Ok(Statistic::new(DriftMethod::ChiSquare, s, Some(p))
        .with("dof", dof)
        .with("yates", yates)
        .with("unseen_current", a.unseen_current as i64))
}

/// G-test (log-likelihood ratio) on the 2×K table, scipy
/// `chi2_contingency(lambda_="log-likelihood")`.
pub fn g_test(
    reference: &CategoryCounts,
    current: &CategoryCounts,
    yates: bool,
) -> Result<Statistic> {
    let a = align(reference, current);
    g_test_aligned(&a, yates)
}

/// [`g_test`] on aligned counts.
pub fn g_test_aligned(a: &Aligned, yates: bool) -> Result<Statistic> {
    check_totals(a, "g_test")?;
    if a.labels.len() < 2 {
        return Err(not_enough("g_test", "only one category in both samples"));
    }
    let (s, p, dof) = contingency(
        &[a.reference.clone(), a.current.clone()],
        yates,
        Divergence::LogLikelihood,
    )?;
    Ok(Statistic::new(DriftMethod::GTest, s, Some(p))
        .with("dof", dof)
        .with("yates", yates)
        .with("unseen_current", a.unseen_current as i64))
}

/// Cramér's V of the 2×K table (scipy `contingency.association(method=
/// "cramer")`, uncorrected chi-square): `sqrt(chi2 / (n (min(r, c) - 1)))`.
pub fn cramers_v(reference: &CategoryCounts, current: &CategoryCounts) -> Result<Statistic> {
    cramers_v_aligned(&align(reference, current))
}

/// [`cramers_v`] on aligned counts.
pub fn cramers_v_aligned(a: &Aligned) -> Result<Statistic> {
    let (rt, ct) = check_totals(a, "cramers_v")?;
    if a.labels.len() < 2 {
        return Err(not_enough("cramers_v", "only one category in both samples"));
    }
    let (chi2, _, _) = contingency(
        &[a.reference.clone(), a.current.clone()],
        false,
        Divergence::Pearson,
    )?;
    let v = (chi2 / (rt + ct)).sqrt(); // min(r, c) - 1 = 1 for two rows
    Ok(Statistic::new(DriftMethod::CramersV, v.min(1.0), None))
}

/// Two-proportion z-test (pooled variance), two-sided, on a feature with at
/// most two categories; the "success" category is the first aligned column.
/// This is Evidently's `z` test.
pub fn z_test(reference: &CategoryCounts, current: &CategoryCounts) -> Result<Statistic> {
    z_test_aligned(&align(reference, current))
}

/// [`z_test`] on aligned counts.
pub fn z_test_aligned(a: &Aligned) -> Result<Statistic> {
    let (rt, ct) = check_totals(a, "z_test")?;
    if a.labels.len() > 2 {
        return Err(invalid(
            "categories",
            "the z-test needs at most two categories",
        ));
    }
    let (z, p) = two_proportion_z(a.reference[0], rt, a.current[0], ct)?;
    Ok(
        Statistic::new(DriftMethod::ZTest, z, Some(p))
            .with("success_category", a.labels[0].clone()),
    )
}

/// Pooled two-proportion z statistic and two-sided p-value for `x1/n1`
/// versus `x2/n2`.
pub fn two_proportion_z(x1: f64, n1: f64, x2: f64, n2: f64) -> Result<(f64, f64)> {
    if n1 <= 0.0 || n2 <= 0.0 {
        return Err(not_enough("z_test", "a sample has no rows"));
    }
    let (p1, p2) = (x1 / n1, x2 / n2);
    let pp = (x1 + x2) / (n1 + n2);
    let se = (pp * (1.0 - pp) * (1.0 / n1 + 1.0 / n2)).sqrt();
    if se.is_nan() || se <= 0.0 {
        return Err(not_enough("z_test", "both samples are all one category"));
    }
    let z = (p1 - p2) / se;
    Ok((z, (2.0 * norm_sf(z.abs())).min(1.0)))
}

/// Fisher's exact test, two-sided, on the 2×2 table of a feature with at
/// most two categories (scipy `fisher_exact`: sum of the probabilities of
/// tables no more likely than the observed one, with scipy's relative
/// tolerance 1e-14). The statistic is the sample odds ratio (may be 0 or
/// +inf in principle; an infinite ratio is reported as `f64::MAX`).
pub fn fisher_exact(reference: &CategoryCounts, current: &CategoryCounts) -> Result<Statistic> {
    fisher_exact_aligned(&align(reference, current))
}

/// [`fisher_exact`] on aligned counts.
pub fn fisher_exact_aligned(a: &Aligned) -> Result<Statistic> {
    check_totals(a, "fisher_exact")?;
    if a.labels.len() > 2 {
        return Err(invalid(
            "categories",
            "Fisher's exact test needs at most two categories",
        ));
    }
    let second = |v: &Vec<f64>| v.get(1).copied().unwrap_or(0.0);
    let t = [
        [a.reference[0], second(&a.reference)],
        [a.current[0], second(&a.current)],
    ];
    let (odds, p) = fisher_2x2(t);
    Ok(Statistic::new(DriftMethod::FisherExact, odds, Some(p)))
}

/// Odds ratio and two-sided p-value of a 2×2 table.
pub fn fisher_2x2(t: [[f64; 2]; 2]) -> (f64, f64) {
    let [[a, b], [c, d]] = t;
    let odds = if b * c == 0.0 {
        if a * d == 0.0 { f64::NAN } else { f64::MAX }
    } else {
        a * d / (b * c)
    };
    let odds = if odds.is_nan() { 1.0 } else { odds };
    // Margins: row1 = a + b, col1 = a + c, total. The count in cell (0,0)
    // ranges over [lo, hi]; weights are hypergeometric pmf up to a constant,
    // built by ratios from the mode so no large factorials are formed.
    let (r1, c1, n) = (a + b, a + c, a + b + c + d);
    if r1 == 0.0 || c1 == 0.0 || r1 == n || c1 == n {
        return (odds, 1.0);
    }
    let lo = (r1 + c1 - n).max(0.0) as i64;
    let hi = r1.min(c1) as i64;
    let mode = (((r1 + 1.0) * (c1 + 1.0)) / (n + 2.0)).floor() as i64;
    let mode = mode.clamp(lo, hi);
    let ratio_up = |k: f64| ((r1 - k) * (c1 - k)) / ((k + 1.0) * (n - r1 - c1 + k + 1.0));
    let len = (hi - lo + 1) as usize;
    let mut w = vec![0.0f64; len];
    w[(mode - lo) as usize] = 1.0;
    for k in mode..hi {
        let i = (k - lo) as usize;
        w[i + 1] = w[i] * ratio_up(k as f64);
    }
    for k in (lo..mode).rev() {
        let i = (k - lo) as usize;
        w[i] = w[i + 1] / ratio_up(k as f64);
    }
    let total: f64 = w.iter().sum();
    let obs = w[(a as i64 - lo) as usize];
    let gamma = 1.0 + 1e-14;
    if (obs - 1.0).abs() <= 1e-14 {
        return (odds, 1.0);
    }
    let p: f64 = w.iter().filter(|&&x| x <= obs * gamma).sum::<f64>() / total;
    (odds, p.min(1.0))
}

/// Total variation distance `½ Σ |p - q|` between category distributions.
pub fn total_variation(reference: &CategoryCounts, current: &CategoryCounts) -> Result<Statistic> {
    total_variation_aligned(&align(reference, current))
}

/// [`total_variation`] on aligned counts.
pub fn total_variation_aligned(a: &Aligned) -> Result<Statistic> {
    let (rt, ct) = check_totals(a, "total_variation")?;
    let tv = 0.5
        * a.reference
            .iter()
            .zip(&a.current)
            .map(|(r, c)| (r / rt - c / ct).abs())
            .sum::<f64>();
    Ok(Statistic::new(
        DriftMethod::TotalVariation,
        tv.min(1.0),
        None,
    ))
}

/// L∞ distance `max |p - q|` between category distributions.
pub fn l_inf(reference: &CategoryCounts, current: &CategoryCounts) -> Result<Statistic> {
    l_inf_aligned(&align(reference, current))
}

/// [`l_inf`] on aligned counts.
pub fn l_inf_aligned(a: &Aligned) -> Result<Statistic> {
    let (rt, ct) = check_totals(a, "l_inf")?;
    let d = a
        .reference
        .iter()
        .zip(&a.current)
        .map(|(r, c)| (r / rt - c / ct).abs())
        .fold(0.0, f64::max);
    Ok(Statistic::new(DriftMethod::LInf, d, None))
}

/// Jensen–Shannon distance between category distributions (`base = None`
/// is the natural log).
pub fn jensen_shannon(
    reference: &CategoryCounts,
    current: &CategoryCounts,
    base: Option<f64>,
) -> Result<Statistic> {
    jensen_shannon_aligned(&align(reference, current), base)
}

/// [`jensen_shannon`] on aligned counts.
pub fn jensen_shannon_aligned(a: &Aligned, base: Option<f64>) -> Result<Statistic> {
    check_totals(a, "jensen_shannon")?;
    if let Some(b) = base
        && (b <= 0.0 || b == 1.0 || !b.is_finite())
    {
        return Err(invalid("base", "logarithm base must be positive and not 1"));
    }
    Ok(Statistic::new(
        DriftMethod::JensenShannon,
        js_from_counts(&a.reference, &a.current, base),
        None,
    )
    .with(
        "base",
        base.map_or_else(|| "e".to_string(), |b| b.to_string()),
    )
    .with("unseen_current", a.unseen_current as i64))
}

/// PSI over categories, empty proportions replaced by
/// [`PSI_EPSILON`] (the unseen bucket's
/// reference share is always such an empty proportion).
pub fn psi(reference: &CategoryCounts, current: &CategoryCounts) -> Result<Statistic> {
    psi_aligned(&align(reference, current))
}

/// [`psi`] on aligned counts.
pub fn psi_aligned(a: &Aligned) -> Result<Statistic> {
    check_totals(a, "psi")?;
    Ok(Statistic::new(
        DriftMethod::Psi,
        psi_from_counts(&a.reference, &a.current, PSI_EPSILON),
        None,
    )
    .with("epsilon", PSI_EPSILON)
    .with("unseen_current", a.unseen_current as i64))
}
