//! Group fairness of 100,000 and 1,000,000 decisions over four groups
//! (selection rates, true/false-positive rates, the four between-group
//! gaps), the figures `drift::fairness` computes per sensitive attribute.
//!
//! The data recipe (splitmix64 uniforms; see `recipe`) is reproduced
//! exactly by `scripts/bench_fairness.py`, which times fairlearn's
//! `MetricFrame` and its difference/ratio functions on the same values;
//! both print the same checksum. Results: the root `BENCHMARKS.md`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
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

    fn uniform(seed: u64, i: u64) -> f64 {
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

criterion_group!(benches, bench);
criterion_main!(benches);
