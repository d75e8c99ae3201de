//! Default drift report: 20 numeric + 5 categorical features, reference and
//! current windows of 100,000 and 1,000,000 rows each, on raw data (two
//! threads and one) and on KLL sketches.
//!
//! The data recipe (splitmix64 uniforms → Box–Muller normals; see
//! `recipe`) is reproduced exactly by `scripts/bench_peers.py`, which times
//! scipy and Evidently on the same values. Results: the root `BENCHMARKS.md`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use modelwatch_drift::numeric::SortedSample;
use modelwatch_drift::{CategoryCounts, FeatureSpec, KllSketch, ReportConfig, evaluate_features};

mod recipe {
    //! Must match `scripts/bench_peers.py` line for line.
    const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

    fn mix(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// `n` uniforms in [0, 1) from stream `seed`.
    pub fn uniforms(seed: u64, n: usize) -> Vec<f64> {
        let base = seed.wrapping_mul(0x0100_0000_01B3);
        (1..=n as u64)
            .map(|i| {
                (mix(base.wrapping_add(GOLDEN.wrapping_mul(i))) >> 11) as f64
                    * (1.0 / (1u64 << 53) as f64)
            })
            .collect()
    }

    /// `n` standard normals (Box–Muller on 2n uniforms).
    pub fn normals(seed: u64, n: usize) -> Vec<f64> {
        let u = uniforms(seed, 2 * n);
        (0..n)
            .map(|i| {
                (-2.0 * (1.0 - u[i]).ln()).sqrt() * (2.0 * std::f64::consts::PI * u[n + i]).cos()
            })
            .collect()
    }

    /// Numeric feature `j`: reference and current values.
    pub fn numeric(j: usize, n: usize) -> (Vec<f64>, Vec<f64>) {
        let mu = j as f64 * 0.1;
        let sd = 1.0 + 0.05 * j as f64;
        let shift = if j.is_multiple_of(4) { 0.2 * sd } else { 0.0 };
        let lognormal = j % 5 == 1;
        let f = |z: f64, s: f64| {
            let v = mu + s + sd * z;
            if lognormal { (0.5 * v).exp() } else { v }
        };
        let window = |seed: u64, s: f64| normals(seed, n).into_iter().map(|z| f(z, s)).collect();
        (window(1000 + j as u64, 0.0), window(2000 + j as u64, shift))
    }

    /// Categorical feature `k`: 8 categories `c0`..`c7`.
    pub fn categorical(k: usize, n: usize) -> (Vec<String>, Vec<String>) {
        let p = 1.0 + 0.5 * k as f64;
        let pc = if k.is_multiple_of(2) { p * 1.3 } else { p };
        let label = |u: f64, p: f64| format!("c{}", ((8.0 * u.powf(p)).floor() as usize).min(7));
        let window =
            |seed: u64, p: f64| uniforms(seed, n).into_iter().map(|u| label(u, p)).collect();
        (window(3000 + k as u64, p), window(4000 + k as u64, pc))
    }
}

struct Data {
    numeric: Vec<(Vec<f64>, Vec<f64>)>,
    categorical: Vec<(Vec<String>, Vec<String>)>,
}

fn data(n: usize) -> Data {
    Data {
        numeric: (0..20).map(|j| recipe::numeric(j, n)).collect(),
        categorical: (0..5).map(|k| recipe::categorical(k, n)).collect(),
    }
}

/// Each categorical feature's reference and current windows counted: part
/// of the timed work (the peers get strings).
fn category_counts(d: &Data) -> Vec<(CategoryCounts, CategoryCounts)> {
    d.categorical
        .iter()
        .map(|(r, c)| {
            (
                CategoryCounts::from_values(r),
                CategoryCounts::from_values(c),
            )
        })
        .collect()
}

/// The categorical features' specs over `counts`, after the numeric ones.
fn with_categorical<'a>(
    mut specs: Vec<FeatureSpec<'a>>,
    counts: &'a [(CategoryCounts, CategoryCounts)],
) -> Vec<FeatureSpec<'a>> {
    specs.extend(
        counts
            .iter()
            .enumerate()
            .map(|(k, (r, c))| FeatureSpec::categorical(format!("cat_{k}"), r, c)),
    );
    specs
}

fn report(d: &Data, cfg: &ReportConfig) -> usize {
    let counts = category_counts(d);
    let specs: Vec<FeatureSpec<'_>> = d
        .numeric
        .iter()
        .enumerate()
        .map(|(j, (r, c))| FeatureSpec::numeric(format!("num_{j}"), r, c))
        .collect();
    evaluate_features(&with_categorical(specs, &counts), cfg).n_drifted
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("drift_report");
    g.sample_size(10).warm_up_time(Duration::from_secs(1));
    for n in [100_000usize, 1_000_000] {
        let d = data(n);
        g.measurement_time(Duration::from_secs(if n > 100_000 { 25 } else { 8 }));
        let par = ReportConfig::default();
        let one = ReportConfig {
            parallel: false,
            ..ReportConfig::default()
        };
        let checksum: f64 = d.numeric.iter().map(|(r, c)| r[0] + c[c.len() - 1]).sum();
        let c0 = d.categorical[0].0.iter().filter(|s| *s == "c0").count();
        eprintln!(
            "n={n}: recipe checksum {checksum:.12} / c0 count {c0} (compare with bench_peers.py)"
        );
        let drifted = report(&d, &par);
        eprintln!("n={n}: {drifted} of 25 features drift under the default report");
        g.bench_with_input(BenchmarkId::new("default_2_threads", n), &d, |b, d| {
            b.iter(|| black_box(report(d, &par)))
        });
        g.bench_with_input(BenchmarkId::new("default_1_thread", n), &d, |b, d| {
            b.iter(|| black_box(report(d, &one)))
        });

        // Reference windows sorted once (as the evaluator keeps them per
        // model version); each iteration sorts only the current window.
        let prepared: Vec<SortedSample> = d
            .numeric
            .iter()
            .filter_map(|(r, _)| SortedSample::new(r).ok())
            .collect();
        g.bench_with_input(
            BenchmarkId::new("prepared_reference_1_thread", n),
            &d,
            |b, d| {
                b.iter(|| {
                    let counts = category_counts(d);
                    let specs: Vec<FeatureSpec<'_>> = prepared
                        .iter()
                        .zip(&d.numeric)
                        .enumerate()
                        .map(|(j, (p, (_, c)))| FeatureSpec::prepared(format!("num_{j}"), p, c))
                        .collect();
                    black_box(evaluate_features(&with_categorical(specs, &counts), &one).n_drifted)
                })
            },
        );

        // Sketch-based: the reference profile is stored as sketches (built
        // once, not timed); each evaluation sketches the current window and
        // compares. Memory per sketch is bounded (printed below).
        let ref_sketches: Vec<KllSketch> = d
            .numeric
            .iter()
            .map(|(r, _)| KllSketch::from_slice(r, 200).unwrap_or_default())
            .collect();
        let retained: usize = ref_sketches.iter().map(KllSketch::retained).sum();
        eprintln!(
            "n={n}: 20 reference sketches retain {retained} values in total ({} per feature, vs {n} rows)",
            retained / 20
        );
        g.bench_with_input(BenchmarkId::new("sketch_1_thread", n), &d, |b, d| {
            b.iter(|| {
                let cur: Vec<KllSketch> = d
                    .numeric
                    .iter()
                    .map(|(_, c)| KllSketch::from_slice(c, 200).unwrap_or_default())
                    .collect();
                let specs: Vec<FeatureSpec<'_>> = ref_sketches
                    .iter()
                    .zip(&cur)
                    .enumerate()
                    .map(|(j, (r, c))| FeatureSpec::sketch(format!("num_{j}"), r, c))
                    .collect();
                black_box(evaluate_features(&specs, &one).n_drifted)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
