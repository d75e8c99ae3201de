//! Confidence-based performance estimation (CBPE) of a binary classifier:
//! its accuracy, precision, recall and F1 on a window **without labels**,
//! from its scores, as NannyML defines CBPE (checked against NannyML 0.13
//! on the fixtures of `scripts/gen_cbpe_fixtures.py` in
//! `tests/nannyml_agreement.rs`: every estimate within NannyML's own
//! confidence band).
//!
//! 1. **Calibration** on a labelled reference window. Scores that are not
//!    probabilities of being right make the estimate wrong, so, as NannyML
//!    does, an isotonic regression of the labels on the scores is fitted
//!    on the reference when it lowers the expected calibration error
//!    (equal-count bins) of held-out folds ([`Calibration::fit`]), and
//!    every score is mapped through it. The regression is scikit-learn's
//!    `IsotonicRegression(out_of_bounds="clip")`: tied scores pooled,
//!    pool-adjacent-violators, linear interpolation between the fitted
//!    points. NannyML decides whether to calibrate on ten random 10 %
//!    splits; here the folds are ten interleaved ones of the score-sorted
//!    reference, so the decision does not depend on a random generator or
//!    on the order rows are read in.
//! 2. **Expected confusion matrix** of the window: a row predicted positive
//!    is a true positive with the calibrated probability `p` and a false
//!    positive with `1 − p`; predicted negative, a false negative with `p`
//!    and a true negative with `1 − p`. Accuracy, precision, recall and F1
//!    follow from the expected counts.
//! 3. **Confidence band**: NannyML's sampling error, the standard deviation
//!    of the metric's observation-level values on the reference over the
//!    square root of the window's (relevant) row count, and the band ±3
//!    sampling errors, clipped to [0, 1].
//!
//! What this module must not do: read rows, or decide; it takes aligned
//! slices and returns numbers.

use serde::{Deserialize, Serialize};

use crate::error::{Result, check_finite, invalid, not_enough};

/// Sampling errors either side of an estimate in its confidence band
/// (NannyML's `SAMPLING_ERROR_RANGE`).
pub const SAMPLING_ERROR_RANGE: f64 = 3.0;
/// Folds of the calibration check.
const CALIBRATION_FOLDS: usize = 10;
/// Equal-count bins of the calibration check's ECE.
const CALIBRATION_BINS: usize = 10;

/// `IsotonicRegression(out_of_bounds="clip", increasing=True)` fitted on
/// (score, label) pairs: the distinct scores and their fitted values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Isotonic {
    x: Vec<f64>,
    y: Vec<f64>,
}

impl Isotonic {
    /// Fits labels (0/1) on scores.
    pub fn fit(scores: &[f64], labels: &[bool]) -> Result<Self> {
        if scores.is_empty() {
            return Err(not_enough("cbpe", "no reference rows to calibrate on"));
        }
        let order = sorted_order(scores, labels);
        Ok(Self::fit_sorted(
            order.iter().map(|&i| (scores[i], labels[i])),
        ))
    }

    /// [`Isotonic::fit`] on (score, label) pairs already in score order
    /// (the calibration check's folds are: no sort per fold).
    fn fit_sorted(pairs: impl Iterator<Item = (f64, bool)>) -> Self {
        // Tied scores (within float64 resolution, as scikit-learn's
        // `_make_unique`) become one point: their mean label, weighted by
        // their count.
        let mut x: Vec<f64> = Vec::new();
        let mut sum: Vec<f64> = Vec::new();
        let mut weight: Vec<f64> = Vec::new();
        for (score, label) in pairs {
            let label = f64::from(u8::from(label));
            match x.last() {
                Some(&last) if score - last < 1e-15 => {
                    *sum.last_mut().expect("a point") += label;
                    *weight.last_mut().expect("a point") += 1.0;
                }
                _ => {
                    x.push(score);
                    sum.push(label);
                    weight.push(1.0);
                }
            }
        }
        // Pool adjacent violators: blocks of (sum, weight, points).
        let mut blocks: Vec<(f64, f64, usize)> = Vec::with_capacity(x.len());
        for (s, w) in sum.into_iter().zip(weight) {
            let mut block = (s, w, 1);
            while let Some(&(ps, pw, pn)) = blocks.last() {
                if ps / pw >= block.0 / block.1 {
                    blocks.pop();
                    block = (ps + block.0, pw + block.1, pn + block.2);
                } else {
                    break;
                }
            }
            blocks.push(block);
        }
        let y = blocks
            .iter()
            .flat_map(|&(s, w, n)| std::iter::repeat_n(s / w, n))
            .collect();
        Isotonic { x, y }
    }

    /// The fitted value at `score`: clipped to the fitted range, linear
    /// between fitted points (`np.interp`).
    pub fn predict(&self, score: f64) -> f64 {
        let (x, y) = (&self.x, &self.y);
        let last = x.len() - 1;
        if score <= x[0] {
            return y[0];
        }
        if score >= x[last] {
            return y[last];
        }
        // The first fitted point above `score`.
        let hi = x.partition_point(|&v| v <= score);
        let lo = hi - 1;
        if x[lo] == score {
            return y[lo];
        }
        let t = (score - x[lo]) / (x[hi] - x[lo]);
        y[lo] + t * (y[hi] - y[lo])
    }
}

/// Row indices in (score, label) order.
fn sorted_order(scores: &[f64], labels: &[bool]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| {
        scores[a]
            .total_cmp(&scores[b])
            .then(labels[a].cmp(&labels[b]))
    });
    order
}

/// Expected calibration error of `scores` against `labels` over
/// equal-count bins of the score-sorted rows (NannyML's
/// `_calculate_expected_calibration_error` with its bin edges).
fn expected_calibration_error(scores: &[f64], labels: &[bool]) -> f64 {
    let n = scores.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let bins = if n <= 2 * CALIBRATION_BINS {
        (n / 2).max(1)
    } else {
        CALIBRATION_BINS
    };
    let width = (n / bins).max(1);
    let mut edges: Vec<usize> = (0..=n).step_by(width).collect();
    if let Some(last) = edges.last_mut() {
        *last = n;
    }
    edges
        .windows(2)
        .filter(|e| e[1] > e[0])
        .map(|e| {
            let rows = &order[e[0]..e[1]];
            let len = rows.len() as f64;
            let mean_score = rows.iter().map(|&i| scores[i]).sum::<f64>() / len;
            let mean_label = rows.iter().filter(|&&i| labels[i]).count() as f64 / len;
            len / n as f64 * (mean_score - mean_label).abs()
        })
        .sum()
}

/// How the reference's scores are mapped to probabilities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Calibration {
    /// The scores already are calibrated probabilities.
    None,
    /// An isotonic regression fitted on the whole reference.
    Isotonic(Isotonic),
}

impl Calibration {
    /// Fits the calibration on the labelled reference, when held-out folds
    /// show it helps (NannyML's rule: not with one class, nor with a
    /// reference ROC AUC above 0.999; otherwise when the calibrated
    /// held-out ECE is lower than the raw one).
    pub fn fit(scores: &[f64], labels: &[bool]) -> Result<Self> {
        check_finite(scores, "reference scores")?;
        if scores.len() != labels.len() {
            return Err(invalid("labels", "one label per reference score is needed"));
        }
        let positives = labels.iter().filter(|&&l| l).count();
        if positives == 0 || positives == labels.len() {
            return Ok(Calibration::None);
        }
        if crate::performance::roc_auc(labels, scores).is_some_and(|auc| auc > 0.999) {
            return Ok(Calibration::None);
        }
        if scores.len() < 2 * CALIBRATION_FOLDS {
            return Err(not_enough(
                "cbpe",
                format!(
                    "{} labelled reference rows; calibration needs at least {}",
                    scores.len(),
                    2 * CALIBRATION_FOLDS
                ),
            ));
        }
        let order = sorted_order(scores, labels);
        let pair = |i: usize| (scores[i], labels[i]);
        let (mut raw, mut calibrated, mut held_labels) = (Vec::new(), Vec::new(), Vec::new());
        for fold in 0..CALIBRATION_FOLDS {
            let in_fold = |rank: usize| rank % CALIBRATION_FOLDS == fold;
            // The training rows keep the sorted order: no sort per fold.
            let fitted = Isotonic::fit_sorted(
                order
                    .iter()
                    .enumerate()
                    .filter(|&(rank, _)| !in_fold(rank))
                    .map(|(_, &i)| pair(i)),
            );
            let test = order
                .iter()
                .enumerate()
                .filter(|&(rank, _)| in_fold(rank))
                .map(|(_, &i)| i);
            for i in test {
                raw.push(scores[i]);
                calibrated.push(fitted.predict(scores[i]));
                held_labels.push(labels[i]);
            }
        }
        let before = expected_calibration_error(&raw, &held_labels);
        let after = expected_calibration_error(&calibrated, &held_labels);
        Ok(if before > after {
            Calibration::Isotonic(Isotonic::fit_sorted(order.iter().map(|&i| pair(i))))
        } else {
            Calibration::None
        })
    }

    /// The probability of the positive class for `score`.
    pub fn probability(&self, score: f64) -> f64 {
        match self {
            Calibration::None => score,
            Calibration::Isotonic(iso) => iso.predict(score),
        }
    }
}

/// What the reference contributes to the sampling errors: per metric, the
/// standard deviation of its observation-level values and the share of
/// rows they come from (NannyML's `*_sampling_error_components`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SamplingComponents {
    pub accuracy: (f64, f64),
    pub precision: (f64, f64),
    pub recall: (f64, f64),
    pub f1: (f64, f64),
}

/// Population standard deviation (numpy's `np.std`); NaN when empty.
fn std_dev(values: impl Iterator<Item = f64> + Clone) -> f64 {
    let n = values.clone().count() as f64;
    let mean = values.clone().sum::<f64>() / n;
    (values.map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt()
}

impl SamplingComponents {
    /// From the reference's labels and decisions (predicted positive).
    pub fn of_reference(labels: &[bool], predicted: &[bool]) -> Self {
        let n = labels.len() as f64;
        let pairs = || labels.iter().zip(predicted);
        let tp = pairs().filter(|&(&l, &p)| l && p).count();
        let fp = pairs().filter(|&(&l, &p)| !l && p).count();
        let fn_ = pairs().filter(|&(&l, &p)| l && !p).count();
        let ones_zeros = |ones: usize, zeros: usize| {
            std::iter::repeat_n(1.0, ones).chain(std::iter::repeat_n(0.0, zeros))
        };
        let correct = pairs().filter(|(l, p)| l == p).count();
        let relevant = tp + fp + fn_;
        let f1_factor = relevant as f64 / ((fn_ + fp) as f64 * 0.5 + tp as f64);
        SamplingComponents {
            accuracy: (std_dev(ones_zeros(correct, labels.len() - correct)), 1.0),
            precision: (std_dev(ones_zeros(tp, fp)), (tp + fp) as f64 / n),
            recall: (std_dev(ones_zeros(tp, fn_)), (tp + fn_) as f64 / n),
            f1: (
                std_dev(ones_zeros(tp, fp + fn_).map(|v| v * f1_factor)),
                relevant as f64 / n,
            ),
        }
    }
}

/// One estimated figure with its confidence band.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub value: f64,
    pub sampling_error: f64,
    pub lower: f64,
    pub upper: f64,
}

impl Estimate {
    fn new(value: f64, (std, fraction): (f64, f64), rows: usize) -> Self {
        let sampling_error = std / (rows as f64 * fraction).sqrt();
        Estimate {
            value,
            sampling_error,
            lower: (value - SAMPLING_ERROR_RANGE * sampling_error).max(0.0),
            upper: (value + SAMPLING_ERROR_RANGE * sampling_error).min(1.0),
        }
    }
}

/// A window's estimated figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CbpeEstimates {
    pub rows: u64,
    pub accuracy: Estimate,
    pub precision: Estimate,
    pub recall: Estimate,
    pub f1: Estimate,
}

/// Estimates the window's figures from its calibrated probabilities and
/// decisions (`predicted[i]`: predicted positive).
pub fn estimate(
    probabilities: &[f64],
    predicted: &[bool],
    components: &SamplingComponents,
) -> Result<CbpeEstimates> {
    check_finite(probabilities, "scores")?;
    if probabilities.len() != predicted.len() {
        return Err(invalid("predicted", "one decision per score is needed"));
    }
    if probabilities.is_empty() {
        return Err(not_enough("cbpe", "no rows to estimate on"));
    }
    let (mut tp, mut fp, mut fn_, mut tn) = (0.0, 0.0, 0.0, 0.0);
    for (&p, &positive) in probabilities.iter().zip(predicted) {
        if positive {
            tp += p;
            fp += 1.0 - p;
        } else {
            fn_ += p;
            tn += 1.0 - p;
        }
    }
    let ratio = |num: f64, den: f64| if den != 0.0 { num / den } else { 0.0 };
    let n = probabilities.len();
    Ok(CbpeEstimates {
        rows: n as u64,
        accuracy: Estimate::new((tp + tn) / n as f64, components.accuracy, n),
        precision: Estimate::new(ratio(tp, tp + fp), components.precision, n),
        recall: Estimate::new(ratio(tp, tp + fn_), components.recall, n),
        f1: Estimate::new(ratio(tp, tp + 0.5 * (fp + fn_)), components.f1, n),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isotonic_pools_violators_and_interpolates() {
        // Scores 0.1..0.4 with labels 1,0,1,1: the first two pool to 0.5.
        let iso = Isotonic::fit(&[0.1, 0.2, 0.3, 0.4], &[true, false, true, true]).unwrap();
        assert_eq!(iso.predict(0.1), 0.5);
        assert_eq!(iso.predict(0.2), 0.5);
        assert_eq!(iso.predict(0.25), 0.75);
        assert_eq!(iso.predict(0.0), 0.5, "clipped below");
        assert_eq!(iso.predict(0.9), 1.0, "clipped above");
        // Tied scores are one point with their mean label.
        let iso = Isotonic::fit(&[0.5, 0.5, 0.5, 0.9], &[true, false, false, true]).unwrap();
        assert!((iso.predict(0.5) - 1.0 / 3.0).abs() < 1e-15);
    }

    #[test]
    fn calibrated_scores_give_the_expected_confusion_matrix() {
        let components = SamplingComponents::of_reference(
            &[true, false, true, false],
            &[true, true, false, false],
        );
        let e = estimate(&[0.9, 0.2], &[true, false], &components).unwrap();
        // TP 0.9, FP 0.1, FN 0.2, TN 0.8.
        assert!((e.accuracy.value - 0.85).abs() < 1e-15);
        assert!((e.precision.value - 0.9).abs() < 1e-15);
        assert!((e.recall.value - 0.9 / 1.1).abs() < 1e-15);
        assert!(e.accuracy.lower <= e.accuracy.value && e.accuracy.value <= e.accuracy.upper);
    }

    #[test]
    fn one_class_or_a_perfect_ranking_needs_no_calibration() {
        let scores: Vec<f64> = (0..100).map(|i| i as f64 / 100.0).collect();
        let labels: Vec<bool> = (0..100).map(|i| i >= 50).collect();
        assert_eq!(
            Calibration::fit(&scores, &labels).unwrap(),
            Calibration::None
        );
        assert_eq!(
            Calibration::fit(&scores, &[true; 100]).unwrap(),
            Calibration::None
        );
        assert!(Calibration::fit(&[f64::NAN], &[true]).is_err());
        assert!(
            estimate(
                &[],
                &[],
                &SamplingComponents::of_reference(&[true], &[true])
            )
            .is_err()
        );
    }
}
