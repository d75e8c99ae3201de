//! Model-quality figures the evaluator computes besides drift:
//! - group fairness of 100,000 and 1,000,000 decisions over four groups
//!   (selection rates, true/false-positive rates, the four between-group
//!   gaps), as `drift::fairness` computes them per sensitive attribute;
//!   `scripts/bench_fairness.py` times fairlearn on the same values;
//! - CBPE on a 100,000-row labelled reference and a 100,000-row window
//!   (calibration check and fit, sampling components, estimate), as the
//!   evaluator runs it; `scripts/bench_cbpe.py` times NannyML's CBPE on the
//!   same values.
//!
//! The data recipes (splitmix64 uniforms; see `recipe`) are reproduced
//! exactly by the scripts; each side prints the same checksum. Results:
//! the root `BENCHMARKS.md`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use modelwatch_drift::cbpe::{self, Calibration, SamplingComponents};
use modelwatch_drift::fairness::fairness;

mod recipe {
    //! Must match `scripts/bench_fairness.py` line for line.
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

criterion_group!(benches, bench, bench_cbpe);
criterion_main!(benches);
