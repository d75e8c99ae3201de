//! Multivariate drift by PCA data reconstruction error, as NannyML's
//! `DataReconstructionDriftCalculator` defines it (checked against NannyML
//! 0.13.1 on the fixtures of `scripts/gen_multivariate_fixtures.py` in
//! `tests/nannyml_multivariate.rs`: components kept equal; variance
//! shares, row errors, window means and sampling errors equal to 1e-9
//! relative, 1e-13 measured).
//!
//! Univariate tests miss a change in how features move together (two
//! features whose correlation breaks while each keeps its distribution).
//! Principal components fitted on the reference capture that structure; a
//! row that no longer follows it is reconstructed worse from them.
//!
//! 1. **Preparation**, fitted on the reference ([`Reconstruction::fit`]):
//!    - a missing number is replaced by the mean of the feature's present
//!      reference values, a missing category by its most frequent reference
//!      category (ties to the smallest, as scikit-learn's `SimpleImputer`);
//!      the reference is imputed before anything else is fitted on it;
//!    - a category becomes its share of the (imputed) reference rows, as
//!      `category_encoders`' `CountEncoder(normalize=True)`; a category the
//!      reference never had becomes 0;
//!    - every feature is standardised by its reference mean and population
//!      standard deviation (ddof 0), as scikit-learn's `StandardScaler`; a
//!      feature constant in the reference keeps scale 1 (so its deviations
//!      in a window still count) under scikit-learn's near-constant rule.
//! 2. **Components**: the eigenvectors of the standardised reference's
//!    covariance (ddof 1, from the Gram matrix less the mean's outer
//!    product, as scikit-learn's `covariance_eigh` PCA solver), by
//!    decreasing eigenvalue. The fewest are kept whose cumulative share of
//!    the variance *exceeds* `variance_kept` (scikit-learn's
//!    `searchsorted(cumsum, n_components, side="right") + 1`). Eigenvectors
//!    come from a cyclic Jacobi solver; their signs do not matter here.
//! 3. **Error** of a row ([`Reconstruction::errors`]): the Euclidean norm of
//!    its standardised, centred form minus that form's projection onto the
//!    kept components (PCA `transform` then `inverse_transform`).
//! 4. **Drift** ([`reconstruction_drift`]): the window's mean row error
//!    against the reference's. The sampling error is NannyML's standard
//!    error of the mean, the standard deviation (ddof 1) of row errors over
//!    the square root of the window's rows, but of the *reference's* row
//!    errors, so the band is the spread expected of a window that size drawn
//!    from the reference: reference mean ± 3 sampling errors, the lower end
//!    clipped at 0 as NannyML's. NannyML itself alerts on thresholds from
//!    the spread of the reference's chunk means, which depend on how the
//!    reference is cut into chunks; this band does not, so the same window
//!    always gives the same numbers whatever the order its rows come in
//!    (up to float summation, always done in row order). `drifted` is
//!    the window's mean outside the closed band.
//!
//! Columns are matched by name between the reference and a window; a
//! window's extra columns are ignored, as NannyML uses only the columns it
//! was fitted on.
//!
//! Where this differs from NannyML on purpose, it is an error where
//! NannyML would return a meaningless number or fail: a reference with
//! fewer than 2 rows, no columns, a feature without any value, only
//! constant features, or so little shared variance that every component
//! is kept (every row is then reconstructed exactly and NannyML's errors
//! are rounding noise; two uncorrelated features at the default 0.65 are
//! that case). A missing category is imputed as NannyML documents and
//! does with pandas' string columns; NannyML given an `object` column
//! holding `None` instead counts the missing as a category of its own.
//!
//! What this module must not do: read rows, or decide; it takes a
//! [`FeatureMatrix`] and returns numbers.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::cbpe::SAMPLING_ERROR_RANGE;
use crate::error::{Result, invalid, not_enough};
use crate::matrix::FeatureMatrix;

/// Share of the reference's variance the kept principal components
/// explain (NannyML's default `n_components=0.65`).
pub const DEFAULT_VARIANCE_KEPT: f64 = 0.65;

const METHOD: &str = "reconstruction";
/// Rows whose products are summed before they are added to the Gram
/// matrix, so the rounding error grows with the number of blocks rather
/// than of rows (and the block's columns, 8 KB each, stay in cache).
const GRAM_BLOCK_ROWS: usize = 1024;
/// Rows scored together (a few kilobytes per feature, so the block stays
/// in cache).
const SCORE_BLOCK_ROWS: usize = 256;
/// Jacobi sweeps before giving up on convergence (a few dozen dimensions
/// converge in under ten).
const JACOBI_MAX_SWEEPS: usize = 100;

/// A numeric feature's imputation and standardisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct NumericPrep {
    name: String,
    /// Mean of the present reference values, put in for a missing value.
    fill: f64,
    mean: f64,
    scale: f64,
}

/// A categorical feature's imputation, frequency encoding and
/// standardisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CategoricalPrep {
    name: String,
    /// Most frequent reference category, put in for a missing value.
    fill: String,
    /// Share of the imputed reference rows of each category.
    frequencies: BTreeMap<String, f64>,
    mean: f64,
    scale: f64,
}

/// Encoders, imputers, scaler and principal components fitted on the
/// reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reconstruction {
    numeric: Vec<NumericPrep>,
    categorical: Vec<CategoricalPrep>,
    /// Mean of the standardised reference (PCA's `mean_`; zero up to
    /// rounding, kept so the arithmetic is scikit-learn's).
    center: Vec<f64>,
    /// Kept components, one row of `features` entries each.
    basis: Vec<f64>,
    /// Share of the variance of every component, largest first.
    explained_variance_ratio: Vec<f64>,
    components: usize,
}

impl Reconstruction {
    /// Fits on the reference rows, keeping the fewest components whose
    /// cumulative share of the variance exceeds `variance_kept` (in (0, 1)).
    pub fn fit(reference: &FeatureMatrix, variance_kept: f64) -> Result<Self> {
        if !(variance_kept > 0.0 && variance_kept < 1.0) {
            return Err(invalid(
                "variance_kept",
                format!("must be strictly between 0 and 1, got {variance_kept}"),
            ));
        }
        reference.validate()?;
        let d = reference.columns();
        if d == 0 {
            return Err(not_enough(METHOD, "the reference has no feature columns"));
        }
        let n = reference.rows;
        if n < 2 {
            return Err(not_enough(
                METHOD,
                format!("the reference has {n} rows; at least 2 are needed for a covariance"),
            ));
        }
        let mut names = BTreeSet::new();
        let all_names = reference
            .numeric
            .iter()
            .map(|c| &c.name)
            .chain(reference.categorical.iter().map(|c| &c.name));
        for name in all_names {
            if !names.insert(name.as_str()) {
                return Err(invalid(
                    "features",
                    format!("column {name} appears more than once"),
                ));
            }
        }

        // Imputed, encoded reference, column after column.
        let mut data = Vec::with_capacity(n * d);
        let mut numeric = Vec::with_capacity(reference.numeric.len());
        for c in &reference.numeric {
            let (sum, present) = c
                .values
                .iter()
                .flatten()
                .fold((0.0, 0usize), |(s, k), &v| (s + v, k + 1));
            if present == 0 {
                return Err(not_enough(
                    METHOD,
                    format!("feature {} has no values in the reference", c.name),
                ));
            }
            let fill = sum / present as f64;
            data.extend(c.values.iter().map(|v| v.unwrap_or(fill)));
            numeric.push(NumericPrep {
                name: c.name.clone(),
                fill,
                mean: 0.0,
                scale: 1.0,
            });
        }
        let mut categorical = Vec::with_capacity(reference.categorical.len());
        for c in &reference.categorical {
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for v in c.values.iter().flatten() {
                *counts.entry(v.as_str()).or_insert(0) += 1;
            }
            // In ascending order, so a tie goes to the smallest category.
            let Some((fill, _)) =
                counts
                    .iter()
                    .fold(None, |best: Option<(&str, usize)>, (&k, &m)| match best {
                        Some((_, bm)) if bm >= m => best,
                        _ => Some((k, m)),
                    })
            else {
                return Err(not_enough(
                    METHOD,
                    format!("feature {} has no values in the reference", c.name),
                ));
            };
            let missing = c.values.iter().filter(|v| v.is_none()).count();
            *counts
                .get_mut(fill)
                .expect("the fill is a counted category") += missing;
            let frequencies: BTreeMap<String, f64> = counts
                .iter()
                .map(|(&k, &m)| (k.to_owned(), m as f64 / n as f64))
                .collect();
            let fill_frequency = frequencies[fill];
            data.extend(c.values.iter().map(|v| match v {
                Some(v) => frequencies[v.as_str()],
                None => fill_frequency,
            }));
            categorical.push(CategoricalPrep {
                name: c.name.clone(),
                fill: fill.to_owned(),
                frequencies,
                mean: 0.0,
                scale: 1.0,
            });
        }

        // StandardScaler, column by column.
        let mut constant = 0;
        let standardisations = numeric
            .iter_mut()
            .map(|p| (&mut p.mean, &mut p.scale))
            .chain(categorical.iter_mut().map(|p| (&mut p.mean, &mut p.scale)));
        for ((mean, scale), column) in standardisations.zip(data.chunks_exact_mut(n)) {
            let (m, s, is_constant) = standardise(column);
            *mean = m;
            *scale = s;
            constant += usize::from(is_constant);
            for x in column.iter_mut() {
                *x = (*x - m) / s;
            }
        }
        // Category shares are in [0, 1]; only a number can overflow.
        if let Some(p) = numeric.iter().find(|p| !p.scale.is_finite()) {
            return Err(invalid(
                "features",
                format!(
                    "feature {} has values too large to standardise (their variance \
                     overflows); rescale it",
                    p.name
                ),
            ));
        }
        if constant == d {
            return Err(not_enough(
                METHOD,
                "every feature is constant in the reference, so it has no variance to explain",
            ));
        }

        let (center, covariance) = covariance(&data, n, d);
        let (values, vectors) = jacobi_eigen(covariance, d);
        let mut order: Vec<usize> = (0..d).collect();
        // Largest first; equal eigenvalues keep the solver's order.
        order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
        // The covariance is positive semi-definite; a slightly negative
        // eigenvalue is rounding (scikit-learn clips it too).
        let sorted: Vec<f64> = order.iter().map(|&i| values[i].max(0.0)).collect();
        let total: f64 = sorted.iter().sum();
        if !total.is_finite() {
            return Err(invalid(
                "features",
                "the reference's covariance overflows; rescale its features",
            ));
        }
        if total <= 0.0 {
            return Err(not_enough(
                METHOD,
                "the standardised reference has no variance to explain",
            ));
        }
        let explained_variance_ratio: Vec<f64> = sorted.iter().map(|v| v / total).collect();
        let components = components_kept(&explained_variance_ratio, variance_kept);
        if components == d {
            return Err(not_enough(
                METHOD,
                format!(
                    "explaining more than {variance_kept} of the reference's variance takes all \
                     {d} components, so every row would be reconstructed exactly: lower \
                     variance_kept or add correlated features"
                ),
            ));
        }
        let mut basis = Vec::with_capacity(components * d);
        for &i in &order[..components] {
            basis.extend((0..d).map(|j| vectors[j * d + i]));
        }
        Ok(Reconstruction {
            numeric,
            categorical,
            center,
            basis,
            explained_variance_ratio,
            components,
        })
    }

    /// Principal components kept.
    pub fn components(&self) -> usize {
        self.components
    }

    /// Share of the reference's variance along each principal component,
    /// largest first (all components, not only the kept ones).
    pub fn explained_variance_ratio(&self) -> &[f64] {
        &self.explained_variance_ratio
    }

    /// Each row's reconstruction error (Euclidean distance between the
    /// scaled row and its reconstruction).
    pub fn errors(&self, rows: &FeatureMatrix) -> Result<Vec<f64>> {
        rows.validate()?;
        let sources = self.sources(rows)?;
        let d = sources.len();
        let k = self.components;
        if self.center.len() != d || self.basis.len() != k * d {
            return Err(invalid(
                "reconstruction",
                "the fitted components do not match its features (a corrupted saved fit?)",
            ));
        }
        // Rows are scored a block at a time, column by column, so every
        // inner loop runs over contiguous rows; each row's sums still run
        // over features and components in their fixed order.
        let b = SCORE_BLOCK_ROWS;
        let mut y = vec![0.0; d * b];
        let mut t = vec![0.0; k * b];
        let mut reconstructed = vec![0.0; b];
        let mut squares = vec![0.0; b];
        let mut out = Vec::with_capacity(rows.rows);
        for start in (0..rows.rows).step_by(b) {
            let len = b.min(rows.rows - start);
            for (j, source) in sources.iter().enumerate() {
                source.fill(start, &mut y[j * b..j * b + len], self.center[j]);
            }
            // PCA transform: each row's coordinates on the kept components.
            for c in 0..k {
                let tc = &mut t[c * b..c * b + len];
                tc.fill(0.0);
                for j in 0..d {
                    let w = self.basis[c * d + j];
                    for (tr, yr) in tc.iter_mut().zip(&y[j * b..j * b + len]) {
                        *tr += w * yr;
                    }
                }
            }
            // Inverse transform, feature by feature, and the residual.
            squares[..len].fill(0.0);
            for j in 0..d {
                let rec = &mut reconstructed[..len];
                rec.fill(0.0);
                for c in 0..k {
                    let w = self.basis[c * d + j];
                    for (r, tr) in rec.iter_mut().zip(&t[c * b..c * b + len]) {
                        *r += tr * w;
                    }
                }
                let yj = &y[j * b..j * b + len];
                for ((sq, r), yr) in squares.iter_mut().zip(rec.iter()).zip(yj) {
                    let diff = yr - r;
                    *sq += diff * diff;
                }
            }
            if let Some(r) = squares[..len].iter().position(|sq| !sq.is_finite()) {
                return Err(invalid(
                    "features",
                    format!(
                        "row {} is too far from the reference to measure (its reconstruction \
                         error overflows)",
                        start + r
                    ),
                ));
            }
            out.extend(squares[..len].iter().map(|sq| sq.sqrt()));
        }
        Ok(out)
    }

    /// The window's columns in the reference's order, with their
    /// preparation.
    fn sources<'a>(&'a self, rows: &'a FeatureMatrix) -> Result<Vec<Source<'a>>> {
        let mut sources = Vec::with_capacity(self.numeric.len() + self.categorical.len());
        for p in &self.numeric {
            let Some(c) = rows.numeric_column(&p.name) else {
                return Err(missing_column(rows, &p.name, "numeric"));
            };
            sources.push(Source::Numeric(&c.values, p));
        }
        for p in &self.categorical {
            let Some(c) = rows.categorical.iter().find(|c| c.name == p.name) else {
                return Err(missing_column(rows, &p.name, "categorical"));
            };
            let fill = p.frequencies.get(&p.fill).copied().unwrap_or(0.0);
            sources.push(Source::Categorical(&c.values, p, fill));
        }
        Ok(sources)
    }
}

/// A window's column and how to prepare its values.
enum Source<'a> {
    Numeric(&'a [Option<f64>], &'a NumericPrep),
    /// With the frequency of the category a missing value is imputed with.
    Categorical(&'a [Option<String>], &'a CategoricalPrep, f64),
}

impl Source<'_> {
    /// The imputed, encoded, standardised and centred values of the rows
    /// from `start` on, as many as `out` holds.
    fn fill(&self, start: usize, out: &mut [f64], center: f64) {
        match self {
            Source::Numeric(values, p) => {
                for (o, v) in out.iter_mut().zip(&values[start..]) {
                    *o = (v.unwrap_or(p.fill) - p.mean) / p.scale - center;
                }
            }
            Source::Categorical(values, p, fill) => {
                for (o, v) in out.iter_mut().zip(&values[start..]) {
                    let x = match v {
                        // CountEncoder's handle_unknown="value": an unseen
                        // category counts 0.
                        Some(v) => p.frequencies.get(v.as_str()).copied().unwrap_or(0.0),
                        None => *fill,
                    };
                    *o = (x - p.mean) / p.scale - center;
                }
            }
        }
    }
}

fn missing_column(rows: &FeatureMatrix, name: &str, kind: &str) -> crate::error::DriftError {
    let other = if kind == "numeric" {
        rows.categorical.iter().any(|c| c.name == name)
    } else {
        rows.numeric.iter().any(|c| c.name == name)
    };
    if other {
        invalid(
            "features",
            format!("column {name} is {kind} in the reference but not in the window"),
        )
    } else {
        invalid(
            "features",
            format!("column {name} of the reference is missing from the window"),
        )
    }
}

/// scikit-learn's `searchsorted(cumsum(ratios), variance_kept, side="right")
/// + 1`: one more than the cumulative shares that do not exceed
/// `variance_kept`, so the kept ones exceed it (at most all of them).
fn components_kept(ratios: &[f64], variance_kept: f64) -> usize {
    let mut cumulative = 0.0;
    let mut at_most = 0;
    for r in ratios {
        cumulative += r;
        if cumulative <= variance_kept {
            at_most += 1;
        }
    }
    (at_most + 1).min(ratios.len())
}

/// StandardScaler's mean, scale and whether the column counts as constant
/// (scikit-learn's `_incremental_mean_and_var` with its correction term,
/// and `_is_constant_feature`'s bound on the variance's rounding error).
/// An overflowing variance gives an infinite scale, for the caller to
/// reject.
fn standardise(column: &[f64]) -> (f64, f64, bool) {
    let n = column.len() as f64;
    let mean = column.iter().sum::<f64>() / n;
    let (correction, squares) = column.iter().fold((0.0, 0.0), |(c, s), &x| {
        let dx = x - mean;
        (c + dx, s + dx * dx)
    });
    let var = (squares - correction * correction / n) / n;
    if !var.is_finite() {
        return (mean, f64::INFINITY, false);
    }
    let eps = f64::EPSILON;
    let bound = n * eps * var + (n * mean * eps).powi(2);
    if var <= bound {
        (mean, 1.0, true)
    } else {
        (mean, var.sqrt(), false)
    }
}

/// Mean and covariance (ddof 1, row-major `d`×`d`) of the column-major
/// `n`×`d` data, in one pass over blocks of rows: `(XᵀX − n·m·mᵀ)/(n − 1)`.
fn covariance(data: &[f64], n: usize, d: usize) -> (Vec<f64>, Vec<f64>) {
    let mut gram = vec![0.0; d * d];
    let mut sum = vec![0.0; d];
    for start in (0..n).step_by(GRAM_BLOCK_ROWS) {
        let end = (start + GRAM_BLOCK_ROWS).min(n);
        // The block's column segments stay in cache for all d(d+1)/2
        // products.
        let segment = |j: usize| &data[j * n + start..j * n + end];
        for a in 0..d {
            sum[a] += dot4(segment(a), None);
            for b in a..d {
                gram[a * d + b] += dot4(segment(a), Some(segment(b)));
            }
        }
    }
    let nf = n as f64;
    let mean: Vec<f64> = sum.iter().map(|s| s / nf).collect();
    for a in 0..d {
        for b in a..d {
            let c = (gram[a * d + b] - nf * mean[a] * mean[b]) / (nf - 1.0);
            gram[a * d + b] = c;
            gram[b * d + a] = c;
        }
    }
    (mean, gram)
}

/// Eigenvalues and eigenvectors (columns of the row-major `d`×`d` result)
/// of the symmetric row-major `a`, by cyclic Jacobi rotations.
fn jacobi_eigen(mut a: Vec<f64>, d: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v = vec![0.0; d * d];
    for i in 0..d {
        v[i * d + i] = 1.0;
    }
    for sweep in 0..JACOBI_MAX_SWEEPS {
        let converged = (0..d).all(|p| ((p + 1)..d).all(|q| a[p * d + q] == 0.0));
        if converged {
            break;
        }
        for p in 0..d {
            for q in (p + 1)..d {
                let apq = a[p * d + q];
                let (app, aqq) = (a[p * d + p], a[q * d + q]);
                // An off-diagonal entry below both diagonals' resolution
                // is zero (Numerical Recipes' rule, after a few sweeps so
                // that early large rotations are not skipped): the sweeps
                // then end with an exactly diagonal matrix.
                let g = 100.0 * apq.abs();
                if sweep > 3 && app.abs() + g == app.abs() && aqq.abs() + g == aqq.abs() {
                    a[p * d + q] = 0.0;
                    a[q * d + p] = 0.0;
                    continue;
                }
                if apq == 0.0 {
                    continue;
                }
                let theta = (aqq - app) / (2.0 * apq);
                // The smaller rotation angle; for a huge theta t ≈ 1/(2θ)
                // without squaring it into overflow.
                let t = if theta.abs() > 1e150 {
                    0.5 / theta
                } else {
                    theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt())
                };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                a[p * d + p] = app - t * apq;
                a[q * d + q] = aqq + t * apq;
                a[p * d + q] = 0.0;
                a[q * d + p] = 0.0;
                for r in 0..d {
                    if r != p && r != q {
                        let (arp, arq) = (a[r * d + p], a[r * d + q]);
                        let new_rp = c * arp - s * arq;
                        let new_rq = s * arp + c * arq;
                        a[r * d + p] = new_rp;
                        a[p * d + r] = new_rp;
                        a[r * d + q] = new_rq;
                        a[q * d + r] = new_rq;
                    }
                    let (vrp, vrq) = (v[r * d + p], v[r * d + q]);
                    v[r * d + p] = c * vrp - s * vrq;
                    v[r * d + q] = s * vrp + c * vrq;
                }
            }
        }
    }
    let values = (0..d).map(|i| a[i * d + i]).collect();
    (values, v)
}

/// `Σ aᵢ·bᵢ` (or `Σ aᵢ` without `b`) over four interleaved partial sums,
/// which the compiler can vectorise and which add up in a fixed order.
fn dot4(a: &[f64], b: Option<&[f64]>) -> f64 {
    let mut lanes = [0.0; 4];
    let chunks = a.chunks_exact(4);
    let tail = chunks.remainder();
    let mut rest = 0.0;
    match b {
        Some(b) => {
            for (x, y) in chunks.zip(b.chunks_exact(4)) {
                for l in 0..4 {
                    lanes[l] += x[l] * y[l];
                }
            }
            let offset = a.len() - tail.len();
            for (x, y) in tail.iter().zip(&b[offset..]) {
                rest += x * y;
            }
        }
        None => {
            for x in chunks {
                for l in 0..4 {
                    lanes[l] += x[l];
                }
            }
            rest = tail.iter().sum();
        }
    }
    (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]) + rest
}

/// A window's reconstruction error against the reference's, with its band.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReconstructionDrift {
    /// Rows of the window.
    pub rows: u64,
    /// Mean reconstruction error of the window's rows.
    pub value: f64,
    /// Mean reconstruction error of the reference's rows.
    pub reference_value: f64,
    /// Standard deviation (ddof 1) of the reference's row errors over √rows.
    pub sampling_error: f64,
    /// The band outside which the window has drifted.
    pub lower: f64,
    pub upper: f64,
    /// Principal components kept.
    pub components: usize,
    /// `value` is outside [`lower`, `upper`].
    pub drifted: bool,
}

/// Fits on `reference` and measures `current` against it.
pub fn reconstruction_drift(
    reference: &FeatureMatrix,
    current: &FeatureMatrix,
    variance_kept: f64,
) -> Result<ReconstructionDrift> {
    FittedReference::fit(reference, variance_kept)?.drift(current)
}

/// A reference ready to measure windows against: the fitted
/// reconstruction and its own rows' mean error and spread. Everything a
/// window's measurement needs from the reference, so a caller can keep it
/// between evaluations instead of reading the reference again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedReference {
    reconstruction: Reconstruction,
    /// Mean reconstruction error of the reference's rows.
    mean: f64,
    /// Their standard deviation (ddof 1).
    sd: f64,
}

impl FittedReference {
    /// Fits on `reference` and scores its own rows.
    pub fn fit(reference: &FeatureMatrix, variance_kept: f64) -> Result<Self> {
        let reconstruction = Reconstruction::fit(reference, variance_kept)?;
        let (mean, sd) = mean_and_sd(&reconstruction.errors(reference)?);
        Ok(FittedReference {
            reconstruction,
            mean,
            sd,
        })
    }

    /// The fitted reconstruction.
    pub fn reconstruction(&self) -> &Reconstruction {
        &self.reconstruction
    }

    /// Measures `current` against the reference.
    pub fn drift(&self, current: &FeatureMatrix) -> Result<ReconstructionDrift> {
        if current.rows == 0 {
            return Err(not_enough(METHOD, "the window has no rows"));
        }
        let current_errors = self.reconstruction.errors(current)?;
        let (value, _) = mean_and_sd(&current_errors);
        let sampling_error = self.sd / (current_errors.len() as f64).sqrt();
        let lower = (self.mean - SAMPLING_ERROR_RANGE * sampling_error).max(0.0);
        let upper = self.mean + SAMPLING_ERROR_RANGE * sampling_error;
        Ok(ReconstructionDrift {
            rows: current.rows as u64,
            value,
            reference_value: self.mean,
            sampling_error,
            lower,
            upper,
            components: self.reconstruction.components,
            drifted: value < lower || value > upper,
        })
    }
}

/// Mean and standard deviation (ddof 1, as NannyML's sampling error; 0
/// for a single value) of `xs`, summed in order.
fn mean_and_sd(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    if xs.len() < 2 {
        return (mean, 0.0);
    }
    let squares: f64 = xs.iter().map(|x| (x - mean) * (x - mean)).sum();
    (mean, (squares / (n - 1.0)).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic standard normals (splitmix64 uniforms, Box–Muller).
    struct Normals(u64);

    impl Normals {
        fn uniform(&mut self) -> f64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }

        fn next(&mut self) -> f64 {
            let (u1, u2) = (self.uniform(), self.uniform());
            (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
        }
    }

    /// `n` rows of three features: `a`, `b` (correlation `rho` with `a`)
    /// and independent noise `c`.
    fn correlated(seed: u64, n: usize, rho: f64) -> FeatureMatrix {
        let mut g = Normals(seed);
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..n {
            let x = g.next();
            let y = rho * x + (1.0 - rho * rho).sqrt() * g.next();
            a.push(Some(x));
            b.push(Some(y));
            c.push(Some(g.next()));
        }
        FeatureMatrix::new(n)
            .with_numeric("a", a)
            .with_numeric("b", b)
            .with_numeric("c", c)
    }

    fn not_enough_reason(e: crate::error::DriftError) -> String {
        match e {
            crate::error::DriftError::NotEnoughData { reason, .. } => reason,
            other => panic!("expected not enough data, got {other}"),
        }
    }

    #[test]
    fn jacobi_diagonalises_a_symmetric_matrix() {
        let a = vec![4.0, 1.0, 2.0, 1.0, 3.0, 0.5, 2.0, 0.5, 5.0];
        let (values, v) = jacobi_eigen(a.clone(), 3);
        for i in 0..3 {
            for r in 0..3 {
                let av: f64 = (0..3).map(|k| a[r * 3 + k] * v[k * 3 + i]).sum();
                assert!((av - values[i] * v[r * 3 + i]).abs() < 1e-12);
            }
            for j in 0..3 {
                let vv: f64 = (0..3).map(|k| v[k * 3 + i] * v[k * 3 + j]).sum();
                assert!((vv - f64::from(u8::from(i == j))).abs() < 1e-12);
            }
        }
        assert!(
            (values.iter().sum::<f64>() - 12.0).abs() < 1e-12,
            "trace kept"
        );
    }

    #[test]
    fn a_broken_correlation_drifts_while_the_same_distribution_does_not() {
        let reference = correlated(1, 5000, 0.9);
        // One component explains a and b together; noise c is the rest.
        let fitted = Reconstruction::fit(&reference, DEFAULT_VARIANCE_KEPT).unwrap();
        assert_eq!(fitted.components(), 2);
        let same = reconstruction_drift(&reference, &correlated(2, 2000, 0.9), 0.65).unwrap();
        assert!(!same.drifted, "{same:?}");
        assert!(same.lower <= same.value && same.value <= same.upper);
        // Each of a and b is still N(0, 1); only how they move together changed.
        let broken = reconstruction_drift(&reference, &correlated(3, 2000, 0.0), 0.65).unwrap();
        assert!(broken.drifted, "{broken:?}");
        assert!(broken.value > broken.upper);
        assert_eq!(broken.rows, 2000);
        assert_eq!(broken.components, 2);
        assert_eq!(broken.reference_value, same.reference_value);
    }

    #[test]
    fn the_component_rule_is_scikit_learns_strictly_exceeds() {
        let reference = correlated(4, 3000, 0.9);
        let fitted = Reconstruction::fit(&reference, 0.65).unwrap();
        let ratio = fitted.explained_variance_ratio();
        assert_eq!(ratio.len(), 3);
        assert!((ratio.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(ratio.windows(2).all(|w| w[0] >= w[1]));
        // A threshold equal to the first share needs one more component.
        let first = ratio[0];
        assert_eq!(
            Reconstruction::fit(&reference, first).unwrap().components(),
            2
        );
        let below = first - 1e-9;
        assert_eq!(
            Reconstruction::fit(&reference, below).unwrap().components(),
            1
        );
    }

    #[test]
    fn components_follow_searchsorted_right_plus_one() {
        assert_eq!(components_kept(&[0.5, 0.3, 0.2], 0.65), 2);
        assert_eq!(
            components_kept(&[0.5, 0.3, 0.2], 0.8),
            3,
            "0.8 is not exceeded by 0.5 + 0.3"
        );
        assert_eq!(components_kept(&[0.5, 0.3, 0.2], 0.49), 1);
        assert_eq!(components_kept(&[0.5, 0.3, 0.2], 0.5), 2);
        assert_eq!(components_kept(&[1.0, 0.0], 0.999), 1);
    }

    #[test]
    fn errors_do_not_depend_on_row_order() {
        let reference = correlated(5, 3000, 0.8);
        let current = correlated(6, 500, 0.3);
        let reversed = |m: &FeatureMatrix| {
            let mut m = m.clone();
            for c in &mut m.numeric {
                c.values.reverse();
            }
            m
        };
        let a = reconstruction_drift(&reference, &current, 0.65).unwrap();
        let b = reconstruction_drift(&reversed(&reference), &reversed(&current), 0.65).unwrap();
        for (x, y) in [
            (a.value, b.value),
            (a.reference_value, b.reference_value),
            (a.sampling_error, b.sampling_error),
        ] {
            assert!((x - y).abs() <= 1e-12 * x.abs(), "{x} vs {y}");
        }
        assert_eq!(a.drifted, b.drifted);
    }

    #[test]
    fn categories_are_imputed_with_the_smallest_most_frequent_and_unseen_count_zero() {
        let s = |v: &str| Some(v.to_owned());
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0];
        // "b" and "a" tie at 2; the tie goes to "a", whose share then
        // counts the imputed row: 3/7.
        let reference = FeatureMatrix::new(7)
            .with_numeric("x", x.iter().map(|&v| Some(v)).collect())
            .with_numeric("y", x.iter().map(|&v| Some(v * v)).collect())
            .with_categorical(
                "k",
                vec![s("b"), s("a"), s("b"), s("a"), None, s("c"), s("d")],
            );
        let fitted = Reconstruction::fit(&reference, 0.5).unwrap();
        let prep = &fitted.categorical[0];
        assert_eq!(prep.fill, "a");
        assert_eq!(prep.frequencies["a"], 3.0 / 7.0);
        assert_eq!(prep.frequencies["b"], 2.0 / 7.0);
        let row = |k: Option<String>| {
            FeatureMatrix::new(1)
                .with_numeric("x", vec![Some(4.0)])
                .with_numeric("y", vec![Some(16.0)])
                .with_categorical("k", vec![k])
        };
        // Missing is the imputed "a"; unseen is a share of 0, like "never".
        assert_eq!(fitted.errors(&row(None)), fitted.errors(&row(s("a"))));
        let unseen = fitted.errors(&row(s("zzz"))).unwrap();
        let mut zero = fitted.clone();
        zero.categorical[0].frequencies.insert("zzz".into(), 0.0);
        assert_eq!(Ok(unseen), zero.errors(&row(s("zzz"))));
    }

    #[test]
    fn missing_numbers_are_the_reference_mean() {
        let reference = correlated(7, 1000, 0.9);
        let fitted = Reconstruction::fit(&reference, 0.65).unwrap();
        let mean = fitted.numeric[1].fill;
        let one = |b: Option<f64>| {
            FeatureMatrix::new(1)
                .with_numeric("a", vec![Some(0.3)])
                .with_numeric("b", vec![b])
                .with_numeric("c", vec![Some(-0.2)])
                // Extra columns are ignored.
                .with_categorical("other", vec![None])
        };
        assert_eq!(fitted.errors(&one(None)), fitted.errors(&one(Some(mean))));
    }

    #[test]
    fn a_constant_feature_keeps_scale_one_and_counts_when_it_moves() {
        let mut reference = correlated(8, 2000, 0.9);
        reference = reference.with_numeric("k", vec![Some(5.0); 2000]);
        let fitted = Reconstruction::fit(&reference, 0.65).unwrap();
        assert_eq!(fitted.numeric[3].scale, 1.0);
        let mut moved = correlated(9, 500, 0.9).with_numeric("k", vec![Some(5.0); 500]);
        let still = reconstruction_drift(&reference, &moved, 0.65).unwrap();
        assert!(!still.drifted, "{still:?}");
        moved.numeric[3].values = vec![Some(6.0); 500];
        let jumped = reconstruction_drift(&reference, &moved, 0.65).unwrap();
        // Each row's residual gains the jump of 1 (scale 1) in k.
        assert!(
            jumped.drifted && jumped.value > still.value + 0.5,
            "{jumped:?}"
        );
    }

    #[test]
    fn degenerate_inputs_are_errors_a_user_can_act_on() {
        let reference = correlated(10, 100, 0.9);
        let none = FeatureMatrix::new(0)
            .with_numeric("a", vec![])
            .with_numeric("b", vec![])
            .with_numeric("c", vec![]);
        assert!(
            not_enough_reason(Reconstruction::fit(&none, 0.65).unwrap_err()).contains("0 rows")
        );
        assert!(
            not_enough_reason(reconstruction_drift(&reference, &none, 0.65).unwrap_err())
                .contains("no rows")
        );
        let no_columns = FeatureMatrix::new(10);
        assert!(
            not_enough_reason(Reconstruction::fit(&no_columns, 0.65).unwrap_err())
                .contains("no feature columns")
        );
        let constant = FeatureMatrix::new(3)
            .with_numeric("a", vec![Some(1.0); 3])
            .with_categorical("k", vec![Some("x".to_owned()); 3]);
        assert!(
            not_enough_reason(Reconstruction::fit(&constant, 0.65).unwrap_err())
                .contains("every feature is constant")
        );
        let empty_column = FeatureMatrix::new(3)
            .with_numeric("a", vec![Some(1.0), Some(2.0), Some(4.0)])
            .with_numeric("b", vec![None; 3]);
        assert!(
            not_enough_reason(Reconstruction::fit(&empty_column, 0.65).unwrap_err())
                .contains("feature b has no values")
        );
        let one_feature = FeatureMatrix::new(3).with_numeric("a", vec![Some(1.0), Some(2.0), None]);
        assert!(
            not_enough_reason(Reconstruction::fit(&one_feature, 0.65).unwrap_err())
                .contains("all 1 components")
        );
        for bad in [0.0, 1.0, -0.5, f64::NAN] {
            assert!(matches!(
                Reconstruction::fit(&reference, bad),
                Err(crate::error::DriftError::InvalidParameter { .. })
            ));
        }
        let fitted = Reconstruction::fit(&reference, 0.65).unwrap();
        let renamed = FeatureMatrix::new(1)
            .with_numeric("a", vec![Some(0.0)])
            .with_categorical("b", vec![None])
            .with_numeric("z", vec![Some(0.0)]);
        let e = fitted.errors(&renamed).unwrap_err().to_string();
        assert!(e.contains("column b is numeric in the reference"), "{e}");
        let e = fitted
            .errors(&FeatureMatrix::new(1).with_numeric("a", vec![Some(0.0)]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("column b of the reference is missing"), "{e}");
        let huge = FeatureMatrix::new(3)
            .with_numeric("a", vec![Some(1e200), Some(-1e200), Some(0.0)])
            .with_numeric("b", vec![Some(1.0), Some(2.0), Some(4.0)]);
        let e = Reconstruction::fit(&huge, 0.65).unwrap_err().to_string();
        assert!(e.contains("feature a has values too large"), "{e}");
        let far = FeatureMatrix::new(1)
            .with_numeric("a", vec![Some(1e300)])
            .with_numeric("b", vec![Some(0.0)])
            .with_numeric("c", vec![Some(0.0)]);
        let e = fitted.errors(&far).unwrap_err().to_string();
        assert!(e.contains("row 0 is too far"), "{e}");
        let twice = FeatureMatrix::new(2)
            .with_numeric("a", vec![Some(0.0), Some(1.0)])
            .with_categorical("a", vec![None, None]);
        assert!(Reconstruction::fit(&twice, 0.65).is_err());
    }
}
