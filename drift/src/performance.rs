//! Realized model performance from labels: classification and regression
//! metrics, each defined exactly as scikit-learn defines it (checked
//! against sklearn on the fixtures of `scripts/gen_performance_fixtures.py`
//! in `tests/sklearn_agreement.rs`), so a figure in a recommendation's
//! evidence is the figure a data scientist gets in a notebook.
//!
//! Definitions (sklearn's function in brackets):
//! - accuracy (`accuracy_score`): share of rows whose prediction equals
//!   the label.
//! - per class, over the sorted union of labels and predictions
//!   (`precision_recall_fscore_support(average=None)`): precision
//!   `tp / (tp + fp)`, recall `tp / (tp + fn)`, F1 `2tp / (2tp + fp + fn)`,
//!   0 where the denominator is 0 (sklearn's `zero_division` default);
//!   macro averages (unweighted mean over classes) and the support-weighted
//!   F1.
//! - with a positive class and a score per row (the positive class's
//!   probability): ROC AUC (`roc_auc_score`, ties counted half), log loss
//!   (`log_loss`, scores clipped to `[ε, 1 − ε]`, ε = `f64::EPSILON`) and the
//!   expected calibration error over ten equal-width bins as
//!   `calibration_curve(n_bins=10)` bins them: `Σ (n_b / n)·|mean label_b −
//!   mean score_b|` over non-empty bins.
//! - regression: MAE (`mean_absolute_error`), RMSE
//!   (`root_mean_squared_error`), MAPE (`mean_absolute_percentage_error`:
//!   `|y − ŷ| / max(|y|, ε)`, a fraction, not percent) and R² (`r2_score`:
//!   1 when labels are constant and predicted exactly, 0 when constant and
//!   not).
//!
//! What this module must not do: read rows, join labels, or decide; it
//! takes aligned slices and returns numbers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Result, check_finite, invalid, not_enough};

/// Bins of the expected calibration error (sklearn's `calibration_curve`
/// with `n_bins=10`, `strategy="uniform"`).
pub const CALIBRATION_BINS: usize = 10;

/// One class's figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Rows whose label is this class.
    pub support: u64,
}

/// Figures that need a score per row and a positive class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreMetrics {
    pub positive_class: String,
    /// `None` when only one class occurs among the labels (undefined).
    pub roc_auc: Option<f64>,
    pub log_loss: f64,
    pub calibration_error: f64,
}

/// Classification figures of one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassificationMetrics {
    /// Rows (labelled and predicted).
    pub rows: u64,
    pub accuracy: f64,
    pub macro_precision: f64,
    pub macro_recall: f64,
    pub macro_f1: f64,
    pub weighted_f1: f64,
    pub classes: BTreeMap<String, ClassMetrics>,
    pub scores: Option<ScoreMetrics>,
}

/// Regression figures of one window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RegressionMetrics {
    pub rows: u64,
    pub mae: f64,
    pub rmse: f64,
    /// A fraction (0.05 = 5 %), as sklearn returns it.
    pub mape: f64,
    /// `None` with fewer than two rows (sklearn: undefined).
    pub r2: Option<f64>,
}

/// A positive class and each row's score for it (its probability).
#[derive(Debug, Clone, Copy)]
pub struct Scores<'a> {
    pub positive_class: &'a str,
    pub values: &'a [f64],
}

/// As many predictions as labels, and at least one of each.
fn check_rows(method: &'static str, labels: usize, predictions: usize) -> Result<()> {
    if labels != predictions {
        return Err(invalid(
            "predictions",
            format!("{labels} labels but {predictions} predictions"),
        ));
    }
    if labels == 0 {
        return Err(not_enough(method, "no labelled rows"));
    }
    Ok(())
}

fn ratio(num: f64, den: f64) -> f64 {
    if den == 0.0 { 0.0 } else { num / den }
}

/// Classification metrics of `labels` against `predictions` (same length),
/// and the score-based ones when `scores` is given.
pub fn classification<S: AsRef<str>>(
    labels: &[S],
    predictions: &[S],
    scores: Option<Scores<'_>>,
) -> Result<ClassificationMetrics> {
    const METHOD: &str = "classification";
    check_rows(METHOD, labels.len(), predictions.len())?;
    // Per class: (tp, fp, fn, support).
    let mut counts: BTreeMap<&str, [u64; 4]> = BTreeMap::new();
    let mut correct = 0u64;
    for (l, p) in labels.iter().zip(predictions) {
        let (l, p) = (l.as_ref(), p.as_ref());
        if l == p {
            correct += 1;
            let c = counts.entry(l).or_default();
            c[0] += 1;
            c[3] += 1;
        } else {
            let c = counts.entry(p).or_default();
            c[1] += 1;
            let c = counts.entry(l).or_default();
            c[2] += 1;
            c[3] += 1;
        }
    }
    let n = labels.len() as f64;
    let classes: BTreeMap<String, ClassMetrics> = counts
        .iter()
        .map(|(class, [tp, fp, fnn, support])| {
            let (tp, fp, fnn) = (*tp as f64, *fp as f64, *fnn as f64);
            let metrics = ClassMetrics {
                precision: ratio(tp, tp + fp),
                recall: ratio(tp, tp + fnn),
                f1: ratio(2.0 * tp, 2.0 * tp + fp + fnn),
                support: *support,
            };
            (class.to_string(), metrics)
        })
        .collect();
    let k = classes.len() as f64;
    let mean = |f: fn(&ClassMetrics) -> f64| classes.values().map(f).sum::<f64>() / k;
    let weighted_f1 = ratio(
        classes.values().map(|c| c.f1 * c.support as f64).sum(),
        classes.values().map(|c| c.support as f64).sum(),
    );
    let scores = match scores {
        None => None,
        Some(s) => Some(score_metrics(labels, s)?),
    };
    Ok(ClassificationMetrics {
        rows: labels.len() as u64,
        accuracy: correct as f64 / n,
        macro_precision: mean(|c| c.precision),
        macro_recall: mean(|c| c.recall),
        macro_f1: mean(|c| c.f1),
        weighted_f1,
        classes,
        scores,
    })
}

fn score_metrics<S: AsRef<str>>(labels: &[S], scores: Scores<'_>) -> Result<ScoreMetrics> {
    if scores.values.len() != labels.len() {
        return Err(invalid(
            "scores",
            format!("{} labels but {} scores", labels.len(), scores.values.len()),
        ));
    }
    check_finite(scores.values, "scores")?;
    if let Some(bad) = scores.values.iter().find(|p| !(0.0..=1.0).contains(*p)) {
        return Err(invalid(
            "scores",
            format!("a score is a probability in [0, 1], got {bad}"),
        ));
    }
    let positive: Vec<bool> = labels
        .iter()
        .map(|l| l.as_ref() == scores.positive_class)
        .collect();
    let p = scores.values;
    let n = p.len() as f64;
    let eps = f64::EPSILON;
    let log_loss = -positive
        .iter()
        .zip(p)
        .map(|(y, p)| {
            let p = p.clamp(eps, 1.0 - eps);
            if *y { p.ln() } else { (1.0 - p).ln() }
        })
        .sum::<f64>()
        / n;

    // Bin b holds scores in (edge_b, edge_{b+1}], the first also 0:
    // numpy's searchsorted over the inner edges, side "left".
    let edges: Vec<f64> = (1..CALIBRATION_BINS)
        .map(|i| i as f64 * (1.0 / CALIBRATION_BINS as f64))
        .collect();
    let mut bins = [(0u64, 0.0f64, 0.0f64); CALIBRATION_BINS];
    for (y, p) in positive.iter().zip(p) {
        let b = edges.partition_point(|e| e < p);
        bins[b].0 += 1;
        bins[b].1 += if *y { 1.0 } else { 0.0 };
        bins[b].2 += p;
    }
    let calibration_error = bins
        .iter()
        .filter(|b| b.0 > 0)
        .map(|(count, hits, sum)| {
            let c = *count as f64;
            c / n * (hits / c - sum / c).abs()
        })
        .sum();

    Ok(ScoreMetrics {
        positive_class: scores.positive_class.to_string(),
        roc_auc: roc_auc(&positive, p),
        log_loss,
        calibration_error,
    })
}

/// The probability that a random positive scores above a random negative
/// (ties count half): Mann–Whitney's U over the two groups' sizes.
pub(crate) fn roc_auc(positive: &[bool], scores: &[f64]) -> Option<f64> {
    let positives = positive.iter().filter(|y| **y).count() as f64;
    let negatives = positive.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_unstable_by(|a, b| scores[*a].total_cmp(&scores[*b]));
    // Sum of the positives' ranks, ties given their average rank.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let average_rank = (i + j) as f64 / 2.0 + 1.0;
        let tied_positives = order[i..=j].iter().filter(|r| positive[**r]).count();
        rank_sum += average_rank * tied_positives as f64;
        i = j + 1;
    }
    let u = rank_sum - positives * (positives + 1.0) / 2.0;
    Some(u / (positives * negatives))
}

/// Regression metrics of `predictions` against `labels` (same length).
pub fn regression(labels: &[f64], predictions: &[f64]) -> Result<RegressionMetrics> {
    check_rows("regression", labels.len(), predictions.len())?;
    check_finite(labels, "labels")?;
    check_finite(predictions, "predictions")?;
    let n = labels.len() as f64;
    let mut abs = 0.0;
    let mut sq = 0.0;
    let mut pct = 0.0;
    for (y, p) in labels.iter().zip(predictions) {
        let e = (y - p).abs();
        abs += e;
        sq += e * e;
        pct += e / y.abs().max(f64::EPSILON);
    }
    let r2 = (labels.len() >= 2).then(|| {
        let mean = labels.iter().sum::<f64>() / n;
        let total: f64 = labels.iter().map(|y| (y - mean) * (y - mean)).sum();
        if total == 0.0 {
            if sq == 0.0 { 1.0 } else { 0.0 }
        } else {
            1.0 - sq / total
        }
    });
    Ok(RegressionMetrics {
        rows: labels.len() as u64,
        mae: abs / n,
        rmse: (sq / n).sqrt(),
        mape: pct / n,
        r2,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_perfect_classifier_scores_one_everywhere() {
        let y = ["a", "b", "a", "c"];
        let m = classification(&y, &y, None).unwrap();
        assert_eq!(m.accuracy, 1.0);
        assert_eq!(
            (m.macro_precision, m.macro_recall, m.macro_f1),
            (1.0, 1.0, 1.0)
        );
        assert_eq!(m.classes["a"].support, 2);
    }

    #[test]
    fn a_class_never_predicted_has_zero_precision_not_nan() {
        let m = classification(&["a", "b"], &["a", "a"], None).unwrap();
        assert_eq!(m.classes["b"].precision, 0.0);
        assert_eq!(m.classes["b"].recall, 0.0);
        assert_eq!(m.classes["a"].precision, 0.5);
        assert_eq!(m.accuracy, 0.5);
    }

    #[test]
    fn auc_counts_ties_half_and_is_undefined_with_one_class() {
        let labels = ["1", "0", "1", "0"];
        let scores = [0.8, 0.8, 0.9, 0.1];
        let s = Scores {
            positive_class: "1",
            values: &scores,
        };
        let m = classification(&labels, &labels, Some(s)).unwrap();
        // Pairs (pos, neg): (0.8,0.8) half, (0.8,0.1) win, (0.9,0.8), (0.9,0.1) win.
        assert_eq!(m.scores.unwrap().roc_auc, Some(3.5 / 4.0));
        let one = classification(
            &["1", "1"],
            &["1", "1"],
            Some(Scores {
                positive_class: "1",
                values: &[0.3, 0.6],
            }),
        )
        .unwrap();
        assert_eq!(one.scores.unwrap().roc_auc, None);
    }

    #[test]
    fn bad_input_is_refused_with_the_reason() {
        assert!(classification::<&str>(&[], &[], None).is_err());
        assert!(classification(&["a"], &["a", "b"], None).is_err());
        let err = classification(
            &["a"],
            &["a"],
            Some(Scores {
                positive_class: "a",
                values: &[1.5],
            }),
        )
        .unwrap_err();
        assert!(err.to_string().contains("[0, 1]"), "{err}");
        assert!(regression(&[1.0], &[f64::NAN]).is_err());
        assert!(regression(&[], &[]).is_err());
    }

    #[test]
    fn r2_of_constant_labels_follows_sklearn() {
        assert_eq!(regression(&[2.0, 2.0], &[2.0, 2.0]).unwrap().r2, Some(1.0));
        assert_eq!(regression(&[2.0, 2.0], &[2.0, 3.0]).unwrap().r2, Some(0.0));
        assert_eq!(regression(&[2.0], &[3.0]).unwrap().r2, None);
    }
}
