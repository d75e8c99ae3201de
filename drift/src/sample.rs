//! The values a drift test is run on, chosen so that the same window always
//! gives the same numbers: every value up to a limit, and beyond it a
//! deterministic sample whose error bound is known.
//!
//! Why not a reservoir: a reservoir sample depends on the order values
//! arrive in, and a window read from the history arrives in whatever order
//! the scan's partitions finish; two evaluations of one window then test
//! different values and store different statistics. Why not KLL
//! ([`crate::KllSketch`]): its compactions depend on the order too.
//!
//! [`WindowValues`] keeps every value with a key (a hash of the value and
//! its row's identity, [`sample_key`]) while it holds at most its limit.
//! Past the limit it becomes a **threshold sample**: only values whose key
//! is at most a threshold are kept, and the threshold halves whenever the
//! kept values exceed the limit again. The values kept at the end are
//! exactly those of the whole window whose key is at most the largest
//! halving of the threshold under which at most `limit` keys fall, a
//! function of the window's contents alone, never of their order.
//!
//! **Error bound.** With a hash that behaves as random, the kept values are
//! a uniform sample of the window (Bernoulli, rate = threshold / 2⁶⁴), so
//! by the Dvoretzky–Kiefer–Wolfowitz inequality their empirical CDF is
//! within [`cdf_error_bound`] of the window's everywhere, at 99 %
//! confidence. A two-sample KS statistic computed on two such samples is
//! within the sum of the two bounds of the full windows' statistic. Rows
//! with the same identity and value share a key, so they are kept or
//! dropped together; identities should tell rows apart (timestamp and row
//! content), and when they do not the sample is still deterministic.

use serde::{Deserialize, Serialize};

/// Confidence of [`cdf_error_bound`]: the bound holds with probability
/// `1 - CDF_BOUND_ALPHA`.
pub const CDF_BOUND_ALPHA: f64 = 0.01;

/// How a window's values were reduced to the values tested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sampling {
    /// Every finite value of the window was tested.
    #[default]
    Exact,
    /// A threshold sample (see the module docs).
    ThresholdSample,
}

impl Sampling {
    pub fn name(self) -> &'static str {
        match self {
            Sampling::Exact => "exact",
            Sampling::ThresholdSample => "threshold_sample",
        }
    }
}

/// The key a value is sampled by: a fixed mix (SplitMix64's finaliser) of
/// the value's bits and its row's identity. Fixed forever: stored
/// evaluations are reproducible only while it does not change.
pub fn sample_key(value: f64, identity: u64) -> u64 {
    // -0.0 and 0.0 are one value to every statistic, so one key.
    let bits = if value == 0.0 { 0 } else { value.to_bits() };
    mix_identity(identity, bits)
}

/// Mixes one more part into a row identity (for [`sample_key`]'s
/// `identity`): a timestamp, a hashed id, a value's bits.
pub fn mix_identity(identity: u64, part: u64) -> u64 {
    let mut z = identity ^ part.rotate_left(29) ^ 0x9e37_79b9_7f4a_7c15;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The largest deviation between the empirical CDF of `kept` values
/// sampled from `seen` and the CDF of all `seen` (DKW at 99 %); 0 when
/// nothing was left out.
pub fn cdf_error_bound(kept: u64, seen: u64) -> f64 {
    if kept >= seen {
        return 0.0;
    }
    if kept == 0 {
        return 1.0;
    }
    ((2.0 / CDF_BOUND_ALPHA).ln() / (2.0 * kept as f64)).sqrt()
}

/// One feature's values in one window: all of them up to `limit`, a
/// threshold sample beyond (module docs).
#[derive(Debug, Clone)]
pub struct WindowValues {
    limit: usize,
    values: Vec<f64>,
    keys: Vec<u64>,
    /// Kept: key ≤ threshold (`u64::MAX`: everything).
    threshold: u64,
    seen: u64,
}

impl WindowValues {
    /// Keeps every value up to `limit` (at least 1).
    pub fn new(limit: usize) -> Self {
        WindowValues {
            limit: limit.max(1),
            values: Vec::new(),
            keys: Vec::new(),
            threshold: u64::MAX,
            seen: 0,
        }
    }

    /// Adds one value of the row `identity`; non-finite values are skipped
    /// (they are not a distribution's values).
    pub fn push(&mut self, value: f64, identity: u64) {
        if !value.is_finite() {
            return;
        }
        self.seen += 1;
        let key = sample_key(value, identity);
        if key > self.threshold {
            return;
        }
        self.values.push(value);
        self.keys.push(key);
        while self.values.len() > self.limit {
            self.threshold >>= 1;
            let threshold = self.threshold;
            let mut kept = 0;
            for i in 0..self.keys.len() {
                if self.keys[i] <= threshold {
                    self.keys[kept] = self.keys[i];
                    self.values[kept] = self.values[i];
                    kept += 1;
                }
            }
            self.keys.truncate(kept);
            self.values.truncate(kept);
        }
    }

    /// Finite values seen.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Values kept so far.
    pub fn kept(&self) -> usize {
        self.values.len()
    }

    /// The values to test, sorted, with how they were chosen.
    pub fn finish(self) -> TestedValues {
        let mut values = self.values;
        values.sort_unstable_by(f64::total_cmp);
        // total_cmp orders -0.0 before 0.0; the statistics treat them as
        // one value, and a sorted slice must not depend on which arrived.
        for v in &mut values {
            if *v == 0.0 {
                *v = 0.0;
            }
        }
        TestedValues {
            sampling: if self.threshold == u64::MAX {
                Sampling::Exact
            } else {
                Sampling::ThresholdSample
            },
            seen: self.seen,
            values,
        }
    }
}

/// The values a test runs on, ascending, and where they came from.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TestedValues {
    pub sampling: Sampling,
    /// Finite values in the window.
    pub seen: u64,
    /// The tested values, ascending (all `seen` when exact).
    pub values: Vec<f64>,
}

impl TestedValues {
    /// Every value of a slice (tests, callers that hold whole windows).
    pub fn exact(values: &[f64]) -> Self {
        let mut w = WindowValues::new(values.len());
        for v in values {
            w.push(*v, 0);
        }
        w.finish()
    }

    /// [`cdf_error_bound`] of these values.
    pub fn cdf_error_bound(&self) -> f64 {
        cdf_error_bound(self.values.len() as u64, self.seen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(values: &[(f64, u64)], limit: usize) -> TestedValues {
        let mut w = WindowValues::new(limit);
        for (v, id) in values {
            w.push(*v, *id);
        }
        w.finish()
    }

    fn rows(n: u64) -> Vec<(f64, u64)> {
        (0..n)
            .map(|i| (((i * 7919) % 1000) as f64 / 10.0, i))
            .collect()
    }

    #[test]
    fn up_to_the_limit_every_value_is_kept_sorted() {
        let t = window(&rows(1000), 1000);
        assert_eq!(t.sampling, Sampling::Exact);
        assert_eq!((t.seen, t.values.len()), (1000, 1000));
        assert!(t.values.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(t.cdf_error_bound(), 0.0);
    }

    #[test]
    fn beyond_the_limit_the_sample_does_not_depend_on_arrival_order() {
        let forward = rows(50_000);
        let mut shuffled = forward.clone();
        // A deterministic permutation: reverse, then interleave halves.
        shuffled.reverse();
        let (a, b) = shuffled.split_at(shuffled.len() / 2);
        let interleaved: Vec<_> = a.iter().zip(b).flat_map(|(x, y)| [*x, *y]).collect();
        let one = window(&forward, 4_000);
        let two = window(&interleaved, 4_000);
        assert_eq!(one.sampling, Sampling::ThresholdSample);
        assert_eq!(one, two);
        assert!(
            (2_000..=4_000).contains(&one.values.len()),
            "{}",
            one.values.len()
        );
        assert_eq!(one.seen, 50_000);
    }

    #[test]
    fn the_sample_stays_within_its_stated_cdf_bound() {
        let all = rows(200_000);
        let sample = window(&all, 10_000);
        let full = window(&all, all.len());
        let bound = sample.cdf_error_bound();
        assert!(bound > 0.0 && bound < 0.03, "{bound}");
        // sup |F_sample - F_full| over every distinct value.
        let cdf = |sorted: &[f64], x: f64| {
            sorted.partition_point(|v| *v <= x) as f64 / sorted.len() as f64
        };
        let worst = full
            .values
            .iter()
            .map(|x| (cdf(&sample.values, *x) - cdf(&full.values, *x)).abs())
            .fold(0.0, f64::max);
        assert!(worst <= bound, "{worst} > {bound}");
    }

    #[test]
    fn non_finite_values_are_not_counted_and_zeroes_are_one_value() {
        let t = window(
            &[(f64::NAN, 1), (f64::INFINITY, 2), (-0.0, 3), (0.0, 4)],
            10,
        );
        assert_eq!(t.seen, 2);
        assert_eq!(t.values, vec![0.0, 0.0]);
        assert!(t.values.iter().all(|v| v.is_sign_positive()));
    }

    #[test]
    fn the_key_is_fixed() {
        // Stored evaluations depend on it: changing the mix is a format change.
        assert_eq!(sample_key(1.5, 42), sample_key(1.5, 42));
        assert_ne!(sample_key(1.5, 42), sample_key(1.5, 43));
        assert_eq!(sample_key(0.0, 7), sample_key(-0.0, 7));
        // Pinned from an independent implementation of the same mix.
        assert_eq!(sample_key(1.0, 0), 0xd56e_b753_65fb_f9b5);
        assert_eq!(sample_key(2.5, 1_234_567), 0x20af_246d_3a34_bc2f);
    }
}
