//! CBPE of a multiclass classifier: its accuracy and macro-averaged
//! precision, recall, F1, specificity and ROC AUC on a window **without
//! labels**, from its per-class scores, as NannyML 0.13 defines them
//! (checked against NannyML on the fixtures of
//! `scripts/gen_cbpe_fixtures.py`, `cbpe_multiclass.json`, in
//! `tests/nannyml_agreement.rs`).
//!
//! Scores come column-major: `scores[c][row]` is the model's score of
//! class `c` (classes numbered `0..k`, NannyML's sorted class order) on
//! `row`; labels and decisions are class numbers.
//!
//! 1. **Calibration** one-vs-rest ([`MulticlassCalibration`]): for each
//!    class, the binary [`Calibration`] of its score column on "label is
//!    this class", with the binary rule deciding whether an isotonic
//!    regression is fitted at all (NannyML's `_fit_calibrators`). The
//!    calibrated columns are then normalised so each row sums to 1; a row
//!    whose calibrated scores are all 0 gets the uniform `1/k` (NannyML's
//!    `_calibrate_predicted_probabilities`).
//! 2. **Estimates** ([`estimate`]): per class, the binary expected
//!    confusion matrix of "predicted this class" against the class's
//!    probability, from which precision, recall, F1 and specificity, each
//!    0 when its denominator is; the macro figure is their unweighted mean
//!    over classes. Accuracy is the mean probability of the predicted
//!    class. ROC AUC is the unweighted mean of the classes' one-vs-rest
//!    estimated AUCs, each ranking the rows by the class's **raw** score
//!    (which is why [`estimate`] takes the raw scores too: normalisation
//!    breaks the calibration's monotonicity).
//! 3. **Sampling errors** ([`MulticlassComponents`], NannyML's
//!    `sampling_error/multiclass_classification.py`): per class, the
//!    variance of the metric's observation-level values on the reference
//!    and the share of rows they come from; the window's sampling error
//!    is `sqrt(Σ_c var_c / (n · fraction_c)) / k`, times 1.2 for ROC AUC
//!    (NannyML's empirical correction); accuracy's is the standard
//!    deviation of the reference's correctness over `sqrt(n)`. The band is
//!    ±3 sampling errors clipped to [0, 1], as in the binary case.
//!
//! NannyML's multiclass path needs at least three classes (its label
//! binariser gives one column for two); a two-class model belongs to the
//! binary CBPE. What this module must not do: read rows, or decide; it
//! takes aligned slices and returns numbers or a [`DriftError`](crate::DriftError).

use serde::{Deserialize, Serialize};

use super::{Calibration, Estimate, check_probabilities, descending_order, expected_roc_auc};
use crate::error::{Result, check_finite, invalid, not_enough};

/// NannyML's empirical widening of the macro ROC AUC's sampling error
/// ("std of class variances underestimated sampling error by 20%").
const ROC_AUC_SAMPLING_ERROR_FACTOR: f64 = 1.2;

/// Checks `columns` is `classes` columns of `rows` finite values each.
fn check_columns(
    columns: &[Vec<f64>],
    classes: usize,
    rows: usize,
    what: &'static str,
) -> Result<()> {
    if columns.len() != classes {
        return Err(invalid(
            "classes",
            format!(
                "{what}: {} columns for {classes} classes; one column per class is needed",
                columns.len()
            ),
        ));
    }
    for (c, column) in columns.iter().enumerate() {
        if column.len() != rows {
            return Err(invalid(
                "classes",
                format!(
                    "{what}: class {c}'s column has {} rows, not {rows}",
                    column.len()
                ),
            ));
        }
        check_finite(column, what)?;
    }
    Ok(())
}

/// Checks the class count and that every class number is below it.
fn check_classes(values: &[usize], classes: usize, what: &'static str) -> Result<()> {
    if classes < 3 {
        return Err(invalid(
            "classes",
            format!(
                "{classes} classes: multiclass CBPE needs at least 3 (for two, use the binary \
                 cbpe::Calibration and cbpe::estimate on the positive class's score)"
            ),
        ));
    }
    if let Some(bad) = values.iter().find(|&&v| v >= classes) {
        return Err(invalid(
            what,
            format!("class {bad} out of range: classes are numbered 0..{classes}"),
        ));
    }
    Ok(())
}

/// Checks each class appears among the reference labels: NannyML refuses a
/// reference whose labels miss a class, and a class's one-vs-rest figures
/// (recall, ROC AUC) are undefined without it.
fn check_every_class_seen(labels: &[usize], classes: usize) -> Result<()> {
    let mut seen = vec![false; classes];
    for &l in labels {
        seen[l] = true;
    }
    match seen.iter().position(|&s| !s) {
        Some(missing) => Err(not_enough(
            "cbpe",
            format!(
                "class {missing} never appears among the {} reference labels; \
                 the reference must contain every class",
                labels.len()
            ),
        )),
        None => Ok(()),
    }
}

/// One-vs-rest calibrations, one per class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MulticlassCalibration {
    per_class: Vec<Calibration>,
}

impl MulticlassCalibration {
    /// Fits each class's calibration on the labelled reference
    /// (`reference_scores[c][row]`, `reference_labels[row]` a class number).
    pub fn fit(reference_scores: &[Vec<f64>], reference_labels: &[usize]) -> Result<Self> {
        let classes = reference_scores.len();
        check_classes(reference_labels, classes, "reference_labels")?;
        check_columns(
            reference_scores,
            classes,
            reference_labels.len(),
            "reference scores",
        )?;
        check_every_class_seen(reference_labels, classes)?;
        let per_class = reference_scores
            .iter()
            .enumerate()
            .map(|(c, column)| {
                let is_class: Vec<bool> = reference_labels.iter().map(|&l| l == c).collect();
                Calibration::fit(column, &is_class)
            })
            .collect::<Result<_>>()?;
        Ok(MulticlassCalibration { per_class })
    }

    /// The number of classes.
    pub fn classes(&self) -> usize {
        self.per_class.len()
    }

    /// Each class's calibration, in class order.
    pub fn per_class(&self) -> &[Calibration] {
        &self.per_class
    }

    /// The calibrated probabilities of `scores` (column-major), normalised
    /// so each row sums to 1 (uniform where the calibrated scores are all 0).
    pub fn probabilities(&self, scores: &[Vec<f64>]) -> Result<Vec<Vec<f64>>> {
        let classes = self.classes();
        let rows = scores.first().map_or(0, Vec::len);
        check_columns(scores, classes, rows, "scores")?;
        let mut calibrated: Vec<Vec<f64>> = self
            .per_class
            .iter()
            .zip(scores)
            .map(|(calibration, column)| {
                column.iter().map(|&s| calibration.probability(s)).collect()
            })
            .collect();
        for row in 0..rows {
            // Summed in class order, as numpy sums a row of three.
            let total: f64 = calibrated.iter().map(|column| column[row]).sum();
            for column in &mut calibrated {
                column[row] = if total != 0.0 {
                    column[row] / total
                } else {
                    1.0 / classes as f64
                };
            }
        }
        Ok(calibrated)
    }
}

/// A class's observation-level sampling-error component: the variance of
/// its observation-level values on the reference and the share of the
/// reference's rows they come from.
pub type ClassComponent = (f64, f64);

/// What the reference contributes to the multiclass sampling errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MulticlassComponents {
    pub classes: usize,
    /// Standard deviation of the reference's correctness (0/1 per row).
    pub accuracy: f64,
    pub precision: Vec<ClassComponent>,
    pub recall: Vec<ClassComponent>,
    pub f1: Vec<ClassComponent>,
    pub specificity: Vec<ClassComponent>,
    pub roc_auc: Vec<ClassComponent>,
}

/// Population variance of `ones` ones and `zeros` zeros (numpy's `np.var`
/// of such an array), in closed form: `p (1 − p)`.
fn bernoulli_variance(ones: usize, zeros: usize) -> f64 {
    let p = ones as f64 / (ones + zeros) as f64;
    p * (1.0 - p)
}

impl MulticlassComponents {
    /// From the reference's labels, decisions (class numbers) and **raw**
    /// scores (NannyML fits the metrics before calibrating).
    pub fn of_reference(
        labels: &[usize],
        predicted: &[usize],
        reference_scores: &[Vec<f64>],
        classes: usize,
    ) -> Result<Self> {
        check_classes(labels, classes, "reference_labels")?;
        check_classes(predicted, classes, "reference_predicted")?;
        if labels.len() != predicted.len() {
            return Err(invalid(
                "reference_predicted",
                "one decision per reference label is needed",
            ));
        }
        check_columns(reference_scores, classes, labels.len(), "reference scores")?;
        check_every_class_seen(labels, classes)?;
        let n = labels.len();
        let correct = labels.iter().zip(predicted).filter(|(l, p)| l == p).count();
        let mut components = MulticlassComponents {
            classes,
            accuracy: bernoulli_variance(correct, n - correct).sqrt(),
            precision: Vec::with_capacity(classes),
            recall: Vec::with_capacity(classes),
            f1: Vec::with_capacity(classes),
            specificity: Vec::with_capacity(classes),
            roc_auc: Vec::with_capacity(classes),
        };
        let share = |count: usize| count as f64 / n as f64;
        for (c, column) in reference_scores.iter().enumerate() {
            let (mut tp, mut fp, mut fn_, mut tn) = (0, 0, 0, 0);
            for (&l, &p) in labels.iter().zip(predicted) {
                match (l == c, p == c) {
                    (true, true) => tp += 1,
                    (false, true) => fp += 1,
                    (true, false) => fn_ += 1,
                    (false, false) => tn += 1,
                }
            }
            if tp + fp == 0 {
                return Err(not_enough(
                    "cbpe",
                    format!(
                        "class {c} is never predicted on the reference: its precision's \
                         sampling error is undefined; use a reference where every class is predicted"
                    ),
                ));
            }
            components
                .precision
                .push((bernoulli_variance(tp, fp), share(tp + fp)));
            components
                .recall
                .push((bernoulli_variance(tp, fn_), share(tp + fn_)));
            components
                .f1
                .push((bernoulli_variance(tp, fp + fn_), share(tp + fp + fn_)));
            components
                .specificity
                .push((bernoulli_variance(tn, fp), share(tn + fp)));
            let is_class: Vec<bool> = labels.iter().map(|&l| l == c).collect();
            components
                .roc_auc
                .push(super::roc_auc_rank_spread(&is_class, column)?);
        }
        Ok(components)
    }
}

/// NannyML's `_standard_deviation_of_variances`: the per-class variances
/// scaled to the window, summed, square-rooted, over the class count.
fn macro_sampling_error(components: &[ClassComponent], rows: usize) -> f64 {
    let total: f64 = components
        .iter()
        .map(|&(variance, fraction)| variance / (rows as f64 * fraction))
        .sum();
    total.sqrt() / components.len() as f64
}

/// One class's one-vs-rest estimated figures (NannyML reports only their
/// means, so they carry no band).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClassEstimates {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub specificity: f64,
    pub roc_auc: f64,
}

/// A window's estimated multiclass figures: accuracy and macro averages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MulticlassEstimates {
    pub rows: u64,
    pub accuracy: Estimate,
    pub precision: Estimate,
    pub recall: Estimate,
    pub f1: Estimate,
    pub specificity: Estimate,
    pub roc_auc: Estimate,
    /// In class order.
    pub per_class: Vec<ClassEstimates>,
}

/// Estimates the window's figures from its raw `scores` (which rank rows
/// for ROC AUC), its calibrated, normalised `probabilities` (from
/// [`MulticlassCalibration::probabilities`]), both column-major, and its
/// decisions (`predicted[row]`, a class number).
pub fn estimate(
    scores: &[Vec<f64>],
    probabilities: &[Vec<f64>],
    predicted: &[usize],
    components: &MulticlassComponents,
) -> Result<MulticlassEstimates> {
    let classes = components.classes;
    let n = predicted.len();
    check_classes(predicted, classes, "predicted")?;
    check_columns(scores, classes, n, "scores")?;
    check_columns(probabilities, classes, n, "probabilities")?;
    for column in probabilities {
        check_probabilities(column)?;
    }
    if n == 0 {
        return Err(not_enough("cbpe", "no rows to estimate on"));
    }
    let ratio = |num: f64, den: f64| if den != 0.0 { num / den } else { 0.0 };
    let mut per_class = Vec::with_capacity(classes);
    for (c, (column, raw)) in probabilities.iter().zip(scores).enumerate() {
        let (mut tp, mut fp, mut fn_, mut tn) = (0.0, 0.0, 0.0, 0.0);
        for (&p, &decided) in column.iter().zip(predicted) {
            if decided == c {
                tp += p;
                fp += 1.0 - p;
            } else {
                fn_ += p;
                tn += 1.0 - p;
            }
        }
        let roc_auc = expected_roc_auc(column, &descending_order(raw)).map_err(|_| {
            not_enough(
                "cbpe",
                format!(
                    "class {c}'s estimated ROC AUC is undefined: its probabilities are all 0 or all 1 \
                     on the window"
                ),
            )
        })?;
        per_class.push(ClassEstimates {
            precision: ratio(tp, tp + fp),
            recall: ratio(tp, tp + fn_),
            f1: ratio(tp, tp + 0.5 * (fp + fn_)),
            specificity: ratio(tn, tn + fp),
            roc_auc,
        });
    }
    let mean = |figure: fn(&ClassEstimates) -> f64| {
        per_class.iter().map(figure).sum::<f64>() / classes as f64
    };
    let accuracy = predicted
        .iter()
        .enumerate()
        .map(|(row, &c)| probabilities[c][row])
        .sum::<f64>()
        / n as f64;
    let band = |value: f64, parts: &[ClassComponent]| {
        Estimate::with_sampling_error(value, macro_sampling_error(parts, n))
    };
    Ok(MulticlassEstimates {
        rows: n as u64,
        accuracy: Estimate::with_sampling_error(accuracy, components.accuracy / (n as f64).sqrt()),
        precision: band(mean(|e| e.precision), &components.precision),
        recall: band(mean(|e| e.recall), &components.recall),
        f1: band(mean(|e| e.f1), &components.f1),
        specificity: band(mean(|e| e.specificity), &components.specificity),
        roc_auc: Estimate::with_sampling_error(
            mean(|e| e.roc_auc),
            macro_sampling_error(&components.roc_auc, n) * ROC_AUC_SAMPLING_ERROR_FACTOR,
        ),
        per_class,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three classes, 60 reference rows: class `row % 3`, scores favouring
    /// the true class by `margin`.
    fn reference(margin: f64) -> (Vec<Vec<f64>>, Vec<usize>) {
        let labels: Vec<usize> = (0..60).map(|r| r % 3).collect();
        let scores = (0..3)
            .map(|c| {
                labels
                    .iter()
                    .enumerate()
                    .map(|(r, &l)| {
                        let jitter = (r as f64 * 0.137).fract() * 0.1;
                        if l == c {
                            margin + jitter
                        } else {
                            (1.0 - margin) / 2.0 + jitter / 2.0
                        }
                    })
                    .collect()
            })
            .collect();
        (scores, labels)
    }

    #[test]
    fn probabilities_are_normalised_per_row() {
        let (scores, labels) = reference(0.6);
        let calibration = MulticlassCalibration::fit(&scores, &labels).unwrap();
        assert_eq!(calibration.classes(), 3);
        let p = calibration.probabilities(&scores).unwrap();
        for row in 0..labels.len() {
            let total: f64 = p.iter().map(|column| column[row]).sum();
            assert!((total - 1.0).abs() < 1e-12, "row {row} sums to {total}");
        }
    }

    #[test]
    fn all_zero_calibrated_rows_become_uniform() {
        let calibration = MulticlassCalibration {
            per_class: vec![Calibration::None; 3],
        };
        let p = calibration
            .probabilities(&[vec![0.0], vec![0.0], vec![0.0]])
            .unwrap();
        assert_eq!(p, vec![vec![1.0 / 3.0]; 3]);
    }

    #[test]
    fn estimates_follow_the_expected_confusion_matrices() {
        // Two rows, already probabilities; row 0 predicted class 0, row 1 class 1.
        let probabilities = vec![vec![0.8, 0.1], vec![0.1, 0.6], vec![0.1, 0.3]];
        let predicted = [0, 1];
        let labels: Vec<usize> = (0..30).map(|r| r % 3).collect();
        let decided: Vec<usize> = (0..30).map(|r| (r + usize::from(r % 5 == 0)) % 3).collect();
        let reference_scores: Vec<Vec<f64>> = (0..3)
            .map(|c| {
                labels
                    .iter()
                    .enumerate()
                    .map(|(r, &l)| if l == c { 0.7 } else { 0.15 } + r as f64 * 1e-3)
                    .collect()
            })
            .collect();
        let components =
            MulticlassComponents::of_reference(&labels, &decided, &reference_scores, 3).unwrap();
        let e = estimate(&probabilities, &probabilities, &predicted, &components).unwrap();
        assert!((e.accuracy.value - 0.7).abs() < 1e-15);
        // Class 0: TP 0.8, FP 0.2, FN 0.1; class 1: TP 0.6, FP 0.4, FN 0.1;
        // class 2: TP 0, FP 0, FN 0.4.
        let want_precision = (0.8 + 0.6 + 0.0) / 3.0;
        assert!((e.precision.value - want_precision).abs() < 1e-15);
        let want_recall = (0.8 / 0.9 + 0.6 / 0.7 + 0.0) / 3.0;
        assert!((e.recall.value - want_recall).abs() < 1e-15);
        assert!(e.per_class[2].specificity > 0.0);
        for figure in [
            e.accuracy,
            e.precision,
            e.recall,
            e.f1,
            e.specificity,
            e.roc_auc,
        ] {
            assert!(figure.value.is_finite() && figure.sampling_error.is_finite());
            assert!(figure.lower <= figure.value && figure.value <= figure.upper);
        }
    }

    #[test]
    fn degenerate_input_is_an_error_not_a_nan() {
        let (scores, labels) = reference(0.6);
        // A class missing from the reference labels.
        let only_two: Vec<usize> = labels.iter().map(|&l| l.min(1)).collect();
        assert!(MulticlassCalibration::fit(&scores, &only_two).is_err());
        assert!(MulticlassComponents::of_reference(&only_two, &only_two, &scores, 3).is_err());
        // Two classes belong to the binary CBPE.
        assert!(MulticlassCalibration::fit(&scores[..2], &only_two).is_err());
        // Mismatched lengths, non-finite scores, out-of-range classes.
        let mut short = scores.clone();
        short[1].pop();
        assert!(MulticlassCalibration::fit(&short, &labels).is_err());
        let mut nan = scores.clone();
        nan[2][5] = f64::NAN;
        assert!(MulticlassCalibration::fit(&nan, &labels).is_err());
        let mut bad = labels.clone();
        bad[0] = 3;
        assert!(MulticlassCalibration::fit(&scores, &bad).is_err());
        // A class never predicted on the reference.
        let never_two: Vec<usize> = labels.iter().map(|&l| l % 2).collect();
        assert!(MulticlassComponents::of_reference(&labels, &never_two, &scores, 3).is_err());
        // An empty window.
        let components = MulticlassComponents::of_reference(&labels, &labels, &scores, 3).unwrap();
        let empty = vec![Vec::new(); 3];
        assert!(estimate(&empty, &empty, &[], &components).is_err());
    }
}
