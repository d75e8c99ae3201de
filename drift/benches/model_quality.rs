//! Model-quality figures the evaluator computes besides drift:
//! - group fairness of 100,000 and 1,000,000 decisions over four groups
//!   (selection rates, true/false-positive rates, the four between-group
//!   gaps), as `drift::fairness` computes them per sensitive attribute;
//!   `scripts/bench_fairness.py` times fairlearn on the same values;
//! - CBPE on a 100,000-row labelled reference and a 100,000-row window
//!   (calibration check and fit, sampling components, estimate), as the
//!   evaluator runs it; `scripts/bench_cbpe.py` times NannyML's CBPE on the
//!   same values; `cbpe/estimate_only` is the steady state, the
//!   calibration and sampling components fitted once (as the evaluator
//!   keeps them while the reference is unchanged) and each window's
//!   accuracy, precision, recall, F1 and ROC AUC estimated from them;
//! - multivariate drift (PCA data reconstruction error) of 10 correlated
//!   numeric features, 100,000 reference and 100,000 window rows: fit and
//!   drift together, and drift only against a reference fitted once (as
//!   the evaluator keeps it);
//! - DLE of a regression model (7 numeric features and the prediction,
//!   heteroscedastic noise), 100,000 labelled reference and 100,000 window
//!   rows: fit and estimate, and estimate only.
//!
//! `scripts/bench_estimation.py` times NannyML's
//! DataReconstructionDriftCalculator, DLE and CBPE (estimate only) on the
//! same values. The data recipes (splitmix64 uniforms; see `recipe`) are
//! reproduced exactly by the scripts; each side prints the same checksum.
//! Results: the root `BENCHMARKS.md`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, SamplingMode, criterion_group, criterion_main};
use modelwatch_drift::cbpe::{self, Calibration, RocAucComponents, SamplingComponents};
use modelwatch_drift::dle::Dle;
use modelwatch_drift::fairness::fairness;
use modelwatch_drift::matrix::FeatureMatrix;
use modelwatch_drift::multivariate::{
    DEFAULT_VARIANCE_KEPT, FittedReference, reconstruction_drift,
};

mod recipe {
    //! Must match `scripts/bench_fairness.py`, `scripts/bench_cbpe.py` and
    //! `scripts/bench_estimation.py` line for line.
    const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;
    pub const GROUPS: [&str; 4] = ["de", "es", "fr", "it"];

    fn mix(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn uniform(seed: u64, i: u64) -> f64 {
        let base = seed.wrapping_mul(0x0100_0000_01B3);
        (mix(base.wrapping_add(GOLDEN.wrapping_mul(i))) >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Row `i`: its group (`i % 4`), selected with the group's rate, and a
    /// label that agrees with the decision 70 % of the time.
    pub fn rows(n: usize) -> (Vec<&'static str>, Vec<bool>, Vec<Option<bool>>) {
        let rates = [0.2, 0.35, 0.25, 0.5];
        let mut groups = Vec::with_capacity(n);
        let mut selected = Vec::with_capacity(n);
        let mut labels = Vec::with_capacity(n);
        for i in 1..=n as u64 {
            let g = ((i - 1) % 4) as usize;
            let s = uniform(1, i) < rates[g];
            let agrees = uniform(2, i) < 0.7;
            groups.push(GROUPS[g]);
            selected.push(s);
            labels.push(Some(s == agrees));
        }
        (groups, selected, labels)
    }

    /// `n` scored rows: `z` standard normal (Box–Muller on streams
    /// `seed`, `seed + 1`) times `sd`, score `sigmoid(z)`, label 1 with
    /// probability `sigmoid(2z)` (stream `seed + 2`): under-confident
    /// scores.
    pub fn scored(seed: u64, n: usize, sd: f64) -> (Vec<f64>, Vec<bool>) {
        (1..=n as u64)
            .map(|i| {
                let (u1, u2) = (uniform(seed, i), uniform(seed + 1, i));
                let z =
                    sd * (-2.0 * (1.0 - u1).ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
                let score = 1.0 / (1.0 + (-z).exp());
                let label = uniform(seed + 2, i) < 1.0 / (1.0 + (-2.0 * z).exp());
                (score, label)
            })
            .unzip()
    }

    /// Standard normal of row `i` by Box–Muller on streams `seed`,
    /// `seed + 1`.
    pub fn normal(seed: u64, i: u64) -> f64 {
        let (u1, u2) = (uniform(seed, i), uniform(seed + 1, i));
        (-2.0 * (1.0 - u1).ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Ten correlated features (columns): three normal factors `f0`, `f1`,
    /// `f2` (streams `base`, `base + 2`, `base + 4`) and each feature's own
    /// noise `e_j` (stream `base + 10 + 2j`); feature `j` is
    /// `0.1 j + (1 + 0.1 j)(a f0 + b f1 + c f2 + 0.6 e_j)` with `(a, b)`
    /// `(1, 0.3)` for the first five and `(0.3, 1)` for the rest, and `c`
    /// `±0.5` alternating. `broken` flips `c` of features 7–9: each keeps
    /// its distribution, their correlations with the others change.
    pub fn correlated(base: u64, n: usize, broken: bool) -> Vec<Vec<f64>> {
        let rows = 1..=n as u64;
        let factor = |k: u64| rows.clone().map(|i| normal(base + 2 * k, i)).collect();
        let f: [Vec<f64>; 3] = [factor(0), factor(1), factor(2)];
        (0..10u64)
            .map(|j| {
                let (a, b) = if j < 5 { (1.0, 0.3) } else { (0.3, 1.0) };
                let mut c = if j % 2 == 0 { 0.5 } else { -0.5 };
                if broken && j >= 7 {
                    c = -c;
                }
                let (mu, sd) = (0.1 * j as f64, 1.0 + 0.1 * j as f64);
                rows.clone()
                    .map(|i| {
                        let r = (i - 1) as usize;
                        let e = normal(base + 10 + 2 * j, i);
                        mu + sd * (a * f[0][r] + b * f[1][r] + c * f[2][r] + 0.6 * e)
                    })
                    .collect()
            })
            .collect()
    }

    /// A regression model's rows: features `x0`–`x3` normal (streams
    /// `base + 2k`; `x0` is `shift + (1 + shift) z`), `x4`–`x6` uniform on
    /// [−1, 1) (streams `base + 10 + k`); prediction
    /// `50 + 4 x0 + 1.8 x1 − 1.5 x2 + 3 x4`; label the prediction plus
    /// `0.2 x1` (a slope error) plus normal noise (stream `base + 20`) times
    /// `0.3 + 2 x0² + 1.5 |x5|`. `x3` and `x6` are irrelevant.
    pub fn regression(base: u64, n: usize, shift: f64) -> (Vec<Vec<f64>>, Vec<f64>, Vec<f64>) {
        let rows = 1..=n as u64;
        let mut x: Vec<Vec<f64>> = (0..4u64)
            .map(|k| rows.clone().map(|i| normal(base + 2 * k, i)).collect())
            .collect();
        x[0] = x[0].iter().map(|z| shift + (1.0 + shift) * z).collect();
        for k in 0..3u64 {
            x.push(
                rows.clone()
                    .map(|i| 2.0 * uniform(base + 10 + k, i) - 1.0)
                    .collect(),
            );
        }
        let (mut prediction, mut label) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for (r, i) in rows.enumerate() {
            let p = 50.0 + 4.0 * x[0][r] + 1.8 * x[1][r] - 1.5 * x[2][r] + 3.0 * x[4][r];
            let noise = normal(base + 20, i);
            let spread = 0.3 + 2.0 * x[0][r] * x[0][r] + 1.5 * x[5][r].abs();
            prediction.push(p);
            label.push(p + 0.2 * x[1][r] + noise * spread);
        }
        (x, prediction, label)
    }

    /// Sum of every value, column by column, each in row order (the
    /// script sums the same way, so the checksums are equal to the bit).
    pub fn checksum(columns: &[&[f64]]) -> f64 {
        columns.iter().map(|c| c.iter().sum::<f64>()).sum()
    }
}

/// The columns as a feature matrix named `x0`, `x1`, ...
fn matrix(columns: &[Vec<f64>]) -> FeatureMatrix {
    columns
        .iter()
        .enumerate()
        .fold(FeatureMatrix::new(columns[0].len()), |m, (j, c)| {
            m.with_numeric(format!("x{j}"), c.iter().copied().map(Some).collect())
        })
}

/// What the evaluator does per window: calibrate on the reference, then
/// estimate on the window.
fn run_cbpe(reference: &(Vec<f64>, Vec<bool>), window: &[f64]) -> cbpe::CbpeEstimates {
    let calibration = Calibration::fit(&reference.0, &reference.1).expect("two classes");
    let decide = |s: &[f64]| s.iter().map(|&p| p >= 0.5).collect::<Vec<_>>();
    let components = SamplingComponents::of_reference(&reference.1, &decide(&reference.0));
    let probabilities: Vec<f64> = window.iter().map(|&s| calibration.probability(s)).collect();
    cbpe::estimate(&probabilities, &decide(window), &components).expect("rows")
}

fn bench_cbpe(c: &mut Criterion) {
    let mut group = c.benchmark_group("cbpe");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    let n = 100_000;
    let reference = recipe::scored(10, n, 1.0);
    let (window, _) = recipe::scored(20, n, 0.6);
    let e = run_cbpe(&reference, &window);
    println!(
        "cbpe n={n} checksum {:.12} (accuracy {:.6}, f1 {:.6})",
        reference.0.iter().sum::<f64>() + window.iter().sum::<f64>(),
        e.accuracy.value,
        e.f1.value
    );
    group.bench_with_input(BenchmarkId::new("fit_and_estimate", n), &n, |b, _| {
        b.iter(|| black_box(run_cbpe(&reference, &window)))
    });

    // Steady state: what the evaluator keeps between windows while the
    // reference is unchanged, fitted once; per window, the calibrated
    // probabilities, the four rates and the ROC AUC.
    let calibration = Calibration::fit(&reference.0, &reference.1).expect("two classes");
    let decide = |s: &[f64]| s.iter().map(|&p| p >= 0.5).collect::<Vec<_>>();
    let components = SamplingComponents::of_reference(&reference.1, &decide(&reference.0));
    let auc_components = RocAucComponents::of_reference(&reference.1, &reference.0).expect("rows");
    let steady = |window: &[f64]| {
        let probabilities: Vec<f64> = window.iter().map(|&s| calibration.probability(s)).collect();
        let rates = cbpe::estimate(&probabilities, &decide(window), &components).expect("rows");
        let auc = cbpe::estimate_roc_auc(&probabilities, &auc_components).expect("rows");
        (rates, auc)
    };
    let (rates, auc) = steady(&window);
    println!(
        "cbpe estimate only n={n}: accuracy {:.6} f1 {:.6} roc_auc {:.6} (sampling error {:.6})",
        rates.accuracy.value, rates.f1.value, auc.value, auc.sampling_error
    );
    group.bench_with_input(BenchmarkId::new("estimate_only", n), &n, |b, _| {
        b.iter(|| black_box(steady(&window)))
    });
    group.finish();
}

fn bench_multivariate(c: &mut Criterion) {
    let mut group = c.benchmark_group("multivariate");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    let n = 100_000;
    let (reference, current) = (
        recipe::correlated(100, n, false),
        recipe::correlated(200, n, true),
    );
    let all: Vec<&[f64]> = reference.iter().chain(&current).map(|c| &c[..]).collect();
    println!("multivariate n={n} checksum {:.12}", recipe::checksum(&all));
    let (reference, current) = (matrix(&reference), matrix(&current));
    let d = reconstruction_drift(&reference, &current, DEFAULT_VARIANCE_KEPT).expect("fits");
    println!(
        "multivariate components {} reference {:.12} window {:.12} sampling error {:.12} drifted {}",
        d.components, d.reference_value, d.value, d.sampling_error, d.drifted
    );
    group.bench_with_input(BenchmarkId::new("fit_and_drift", n), &n, |b, _| {
        b.iter(|| {
            black_box(
                reconstruction_drift(&reference, &current, DEFAULT_VARIANCE_KEPT).expect("fits"),
            )
        })
    });
    let fitted = FittedReference::fit(&reference, DEFAULT_VARIANCE_KEPT).expect("fits");
    group.bench_with_input(BenchmarkId::new("drift_only", n), &n, |b, _| {
        b.iter(|| black_box(fitted.drift(&current).expect("columns")))
    });
    group.finish();
}

fn bench_dle(c: &mut Criterion) {
    let mut group = c.benchmark_group("dle");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8));
    let n = 100_000;
    let (ref_x, ref_pred, ref_label) = recipe::regression(300, n, 0.0);
    let (win_x, win_pred, win_label) = recipe::regression(400, n, 0.5);
    let all: Vec<&[f64]> = ref_x
        .iter()
        .map(|c| &c[..])
        .chain([&ref_pred[..], &ref_label[..]])
        .chain(win_x.iter().map(|c| &c[..]))
        .chain([&win_pred[..], &win_label[..]])
        .collect();
    println!("dle n={n} checksum {:.12}", recipe::checksum(&all));
    let (reference, window) = (matrix(&ref_x), matrix(&win_x));
    let fitted = Dle::fit(&reference, &ref_pred, &ref_label).expect("fits");
    let e = fitted.estimate(&window, &win_pred).expect("columns");
    let mae = win_label
        .iter()
        .zip(&win_pred)
        .map(|(y, p)| (y - p).abs())
        .sum::<f64>()
        / n as f64;
    println!("dle estimates (realized mae {mae:.6})");
    for (name, e) in [
        ("mae", e.mae),
        ("mse", e.mse),
        ("rmse", e.rmse),
        ("mape", e.mape),
    ] {
        println!("  {name} {:.6} [{:.6}, {:.6}]", e.value, e.lower, e.upper);
    }
    group.bench_with_input(BenchmarkId::new("fit_and_estimate", n), &n, |b, _| {
        b.iter(|| {
            let fitted = Dle::fit(&reference, &ref_pred, &ref_label).expect("fits");
            black_box(fitted.estimate(&window, &win_pred).expect("columns"))
        })
    });
    group.bench_with_input(BenchmarkId::new("estimate_only", n), &n, |b, _| {
        b.iter(|| black_box(fitted.estimate(&window, &win_pred).expect("columns")))
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("fairness");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    for n in [100_000usize, 1_000_000] {
        let (groups, selected, labels) = recipe::rows(n);
        let f = fairness(&groups, &selected, &labels).expect("four groups");
        let checksum: f64 = f.groups.iter().map(|g| g.selection_rate).sum::<f64>()
            + f.equalized_odds_difference.unwrap_or_default();
        println!("fairness n={n} checksum {checksum:.12}");
        group.bench_with_input(BenchmarkId::new("four_groups", n), &n, |b, _| {
            b.iter(|| black_box(fairness(&groups, &selected, &labels).expect("four groups")))
        });
    }
    group.finish();
}

criterion_group!(benches, bench, bench_cbpe, bench_multivariate, bench_dle);
criterion_main!(benches);
