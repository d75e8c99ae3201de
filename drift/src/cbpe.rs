//! Confidence-based performance estimation (CBPE) of a binary classifier:
//! its accuracy, precision, recall, F1 and ROC AUC on a window **without
//! labels**, from its scores, as NannyML defines CBPE (checked against
//! NannyML 0.13 on the fixtures of `scripts/gen_cbpe_fixtures.py` in
//! `tests/nannyml_agreement.rs`: every estimate NannyML's to 1e-9 where
//! both decide the same about calibration, within NannyML's own
//! confidence band otherwise). The multiclass CBPE is in [`multiclass`].
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
//!    follow from the expected counts. ROC AUC ([`estimate_roc_auc`]) is
//!    the area under the expected ROC curve: rows ranked by score, each
//!    adding `p` expected true and `1 − p` expected false positives.
//! 3. **Confidence band**: NannyML's sampling error, the standard deviation
//!    of the metric's observation-level values on the reference over the
//!    square root of the window's (relevant) row count, and the band ±3
//!    sampling errors, clipped to [0, 1]. ROC AUC's standard deviation
//!    is NannyML's Mann–Whitney one ([`RocAucComponents`]), from the
//!    reference's raw scores.
//!
//! What this module must not do: read rows, or decide; it takes aligned
//! slices and returns numbers.

use serde::{Deserialize, Serialize};

use crate::error::{Result, check_finite, invalid, not_enough};

pub mod multiclass;

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
        // numpy's `interp` arithmetic, operation for operation, so the
        // calibrated probabilities are scikit-learn's to the last bit or two.
        let slope = (y[hi] - y[lo]) / (x[hi] - x[lo]);
        slope * (score - x[lo]) + y[lo]
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
        Self::with_sampling_error(value, std / (rows as f64 * fraction).sqrt())
    }

    /// The band ±[`SAMPLING_ERROR_RANGE`] sampling errors, clipped to [0, 1]
    /// (every CBPE figure is a rate).
    fn with_sampling_error(value: f64, sampling_error: f64) -> Self {
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

/// What the reference contributes to the ROC AUC's sampling error
/// (NannyML's `auroc_sampling_error_components`): `std`, the standard
/// deviation over the reference's positives of the share of negatives
/// ranked below each, and `fraction`, the positives' share of the rows
/// (the positive class being whichever is the minority).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RocAucComponents {
    pub std: f64,
    pub fraction: f64,
}

impl RocAucComponents {
    /// From the reference's labels and its **raw** scores: NannyML fits
    /// its metrics on the reference before calibrating, so the sampling
    /// error never sees the calibrated probabilities.
    pub fn of_reference(labels: &[bool], reference_scores: &[f64]) -> Result<Self> {
        let (variance, fraction) = roc_auc_rank_spread(labels, reference_scores)?;
        Ok(RocAucComponents {
            std: variance.sqrt(),
            fraction,
        })
    }
}

/// NannyML's AUROC sampling-error component of one (one-vs-rest) class:
/// the population variance of `ser / n_neg` and the positives' share,
/// where `ser` holds, for each positive, its rank among the score-sorted
/// rows minus the positives ranked below it (the negatives below it).
///
/// NannyML's quirks are kept, since they move the figure:
/// - when positives are the majority (mean label above 0.5) the labels are
///   flipped and the scores replaced by `1 − score`;
/// - the ranks are read through `np.unique(labels * ranks)[1:]`, which
///   drops rank 0: a positive ranked lowest of all is left out.
///
/// Ties: NannyML ranks with `np.argsort` (unstable quicksort), which
/// orders tied scores arbitrarily; here tied scores keep row order, a
/// stable sort, so the figure is deterministic. Scores of continuous
/// models rarely tie exactly.
fn roc_auc_rank_spread(labels: &[bool], scores: &[f64]) -> Result<(f64, f64)> {
    check_finite(scores, "reference scores")?;
    if labels.len() != scores.len() {
        return Err(invalid("labels", "one label per reference score is needed"));
    }
    let n = labels.len();
    let positives = labels.iter().filter(|&&l| l).count();
    if positives == 0 || positives == n {
        return Err(not_enough(
            "cbpe",
            "the ROC AUC's sampling error needs both classes among the reference labels",
        ));
    }
    let flip = 2 * positives > n;
    let key: Vec<f64> = if flip {
        scores.iter().map(|&s| 1.0 - s).collect()
    } else {
        scores.to_vec()
    };
    let mut order: Vec<usize> = (0..n).collect();
    // `sort_by` is stable: ties stay in row order.
    order.sort_by(|&a, &b| key[a].total_cmp(&key[b]));
    let mut ser: Vec<f64> = Vec::new();
    for (rank, &i) in order.iter().enumerate() {
        if labels[i] != flip && rank > 0 {
            ser.push((rank - ser.len()) as f64);
        }
    }
    let n_pos = if flip { n - positives } else { positives };
    let n_neg = (n - n_pos) as f64;
    if ser.is_empty() {
        return Err(not_enough(
            "cbpe",
            "the ROC AUC's sampling error needs at least two reference rows of the minority class",
        ));
    }
    let len = ser.len() as f64;
    let scaled = ser.iter().map(|&s| s / n_neg);
    let mean = scaled.clone().sum::<f64>() / len;
    let variance = scaled.map(|v| (v - mean).powi(2)).sum::<f64>() / len;
    Ok((variance, n_pos as f64 / n as f64))
}

/// Row indices by descending `keys`, as NannyML's
/// `np.argsort(keys)[::-1]`; tied keys in descending row order (the
/// reverse of a stable ascending sort: numpy's own tie order is
/// arbitrary).
fn descending_order(keys: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by(|&a, &b| keys[a].total_cmp(&keys[b]));
    order.reverse();
    order
}

/// numpy's `np.round(x, 5)`: scale, round half to even, unscale.
fn round5(x: f64) -> f64 {
    (x * 1e5).round_ties_even() / 1e5
}

/// NannyML's `estimate_roc_auc`: the area under the expected ROC curve of
/// the rows taken in `order` (by descending raw score). Walking down the
/// ranking, a row adds its probability `p` to the expected true positives
/// and `1 − p` to the expected false positives; both cumulative counts
/// are rounded to 5 decimals (as NannyML does), normalised by their
/// totals, and the curve integrated by the trapezoidal rule.
fn expected_roc_auc(probabilities: &[f64], order: &[usize]) -> Result<f64> {
    let n = order.len();
    let mut tps = Vec::with_capacity(n + 1);
    let mut fps = Vec::with_capacity(n + 1);
    tps.push(0.0);
    fps.push(0.0);
    let mut cumulative = 0.0;
    for (k, &i) in order.iter().enumerate() {
        cumulative += probabilities[i];
        tps.push(round5(cumulative));
        // NannyML: `fps = 1 + arange(n) - tps`, from the unrounded sum.
        fps.push(round5((k + 1) as f64 - cumulative));
    }
    let (tp_total, fp_total) = (tps[n], fps[n]);
    if tp_total <= 0.0 || fp_total <= 0.0 {
        return Err(not_enough(
            "cbpe",
            "the estimated ROC AUC needs expected positives and negatives: \
             every probability is 0 or every probability is 1",
        ));
    }
    let area = (0..n)
        .map(|k| {
            let (x0, x1) = (fps[k] / fp_total, fps[k + 1] / fp_total);
            let (y0, y1) = (tps[k] / tp_total, tps[k + 1] / tp_total);
            (x1 - x0) * (y1 + y0) / 2.0
        })
        .sum();
    Ok(area)
}

/// Rejects probabilities outside [0, 1]: the expected ROC curve is only a
/// curve for them (NannyML fails on the non-monotone false-positive rates
/// they give).
fn check_probabilities(probabilities: &[f64]) -> Result<()> {
    check_finite(probabilities, "probabilities")?;
    if probabilities.iter().any(|p| !(0.0..=1.0).contains(p)) {
        return Err(invalid(
            "probabilities",
            "probabilities must lie in [0, 1]: calibrate raw scores first",
        ));
    }
    Ok(())
}

/// The window's estimated ROC AUC (NannyML's `BinaryClassificationAUROC`)
/// from its calibrated probabilities of the positive class.
///
/// NannyML ranks rows by the **raw** score and accumulates the calibrated
/// probabilities; ranking by the calibrated probabilities gives the very
/// same sequence of probabilities, since the calibration is a
/// non-decreasing map of the score (rows it ties are tied in probability,
/// so their order does not change any cumulative sum). The estimate is
/// therefore NannyML's whenever the calibration is.
pub fn estimate_roc_auc(probabilities: &[f64], components: &RocAucComponents) -> Result<Estimate> {
    check_probabilities(probabilities)?;
    if probabilities.is_empty() {
        return Err(not_enough("cbpe", "no rows to estimate on"));
    }
    let value = expected_roc_auc(probabilities, &descending_order(probabilities))?;
    Ok(Estimate::new(
        value,
        (components.std, components.fraction),
        probabilities.len(),
    ))
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

    #[test]
    fn estimated_roc_auc_follows_nannymls_curve() {
        // NannyML by hand: p = [0.9, 0.6, 0.2] by descending rank; tps
        // 0, .9, 1.5, 1.7; fps 0, .1, .5, 1.3; trapezoids over the
        // normalised curve.
        let components = RocAucComponents {
            std: 0.0,
            fraction: 1.0,
        };
        let e = estimate_roc_auc(&[0.2, 0.9, 0.6], &components).unwrap();
        let (tp, fp) = ([0.0, 0.9, 1.5, 1.7], [0.0, 0.1, 0.5, 1.3]);
        let want: f64 = (0..3)
            .map(|k| (fp[k + 1] / 1.3 - fp[k] / 1.3) * (tp[k + 1] / 1.7 + tp[k] / 1.7) / 2.0)
            .sum();
        assert!((e.value - want).abs() < 1e-15, "{} vs {want}", e.value);
        // Tied probabilities: the order among them changes nothing.
        let a = estimate_roc_auc(&[0.5, 0.5, 0.9, 0.1], &components).unwrap();
        let b = estimate_roc_auc(&[0.9, 0.5, 0.1, 0.5], &components).unwrap();
        assert_eq!(a.value, b.value);
        // Undefined curves and non-probabilities are errors.
        assert!(estimate_roc_auc(&[0.0, 0.0], &components).is_err());
        assert!(estimate_roc_auc(&[1.0, 1.0], &components).is_err());
        assert!(estimate_roc_auc(&[0.5, 1.5], &components).is_err());
        assert!(estimate_roc_auc(&[], &components).is_err());
    }

    #[test]
    fn roc_auc_components_keep_nannymls_rank_quirks() {
        // Sorted scores 0.1..0.6, labels 0 1 0 1 0 0: positives at ranks
        // 1 and 3, `ser` = [1 − 0, 3 − 1] = [1, 2], n_neg 4: var of
        // [0.25, 0.5] = 1/64; fraction 2/6.
        let scores = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6];
        let labels = [false, true, false, true, false, false];
        let c = RocAucComponents::of_reference(&labels, &scores).unwrap();
        assert!((c.std - 0.125).abs() < 1e-15);
        assert!((c.fraction - 2.0 / 6.0).abs() < 1e-15);
        // A positive ranked lowest is dropped (np.unique(...)[1:]) and
        // the others keep `rank − i` counting from it: positives at ranks
        // 0, 2, 5 → ser [2 − 0, 5 − 1] = [2, 4], n_neg 3.
        let labels = [true, false, true, false, false, true];
        let c = RocAucComponents::of_reference(&labels, &scores).unwrap();
        let (a, b) = (2.0 / 3.0, 4.0 / 3.0);
        let mean = (a + b) / 2.0;
        let want = (((a - mean) * (a - mean) + (b - mean) * (b - mean)) / 2.0_f64).sqrt();
        assert!((c.std - want).abs() < 1e-15);
        // Majority positives (4 of 6): NannyML flips the labels and
        // mirrors the scores, which gives back the first case.
        let minority = [false, true, false, true, false, false];
        let flipped: Vec<bool> = minority.iter().map(|l| !l).collect();
        let mirrored: Vec<f64> = scores.iter().map(|s| 1.0 - s).collect();
        let d = RocAucComponents::of_reference(&flipped, &mirrored).unwrap();
        assert!((d.std - 0.125).abs() < 1e-15);
        assert!((d.fraction - 2.0 / 6.0).abs() < 1e-15);
        // One class only: undefined.
        assert!(RocAucComponents::of_reference(&[true, true], &[0.1, 0.2]).is_err());
        assert!(RocAucComponents::of_reference(&[true], &[0.1, 0.2]).is_err());
    }
}
