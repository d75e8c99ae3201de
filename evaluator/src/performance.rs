//! Realized performance: what the current window's labelled inferences say
//! about the model's accuracy (or error), decided without I/O. The
//! scheduler reads the labelled rows ([`crate::TelemetryReader::labelled`]),
//! calls [`measure`] and stores the figures
//! ([`crate::ResultsSink::write_performance`]).

use chrono::{DateTime, Utc};
use modelwatch_drift::cbpe;
use modelwatch_drift::performance::{self, Scores};
use modelwatch_types::{PerformancePolicy, PerformanceTask};
use serde::Serialize;

/// The negative class of a binary classification scored by probability
/// (`performance.positive_class`): every label other than the positive one.
pub const OTHER_CLASS: &str = "other";

/// A window's inferences, column by column (same length): their
/// predictions, their labels where known (delayed labels joined), and,
/// when asked for, the groups of sensitive attributes. For realized
/// performance only the labelled rows are read; for fairness every row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutcomeRows {
    /// Rows in the window, labelled or not.
    pub rows: u64,
    pub labels: Vec<Option<String>>,
    pub label_values: Vec<Option<f64>>,
    pub predictions: Vec<Option<String>>,
    pub prediction_values: Vec<Option<f64>>,
    /// How many of the labels arrived later, in `delayed_labels`.
    pub delayed_labels: u64,
    /// Attribute → each row's group (its value of that categorical
    /// feature).
    pub groups: std::collections::BTreeMap<String, Vec<Option<String>>>,
    /// The features asked for, one entry per row.
    pub features: modelwatch_drift::FeatureMatrix,
    /// The rows read are a sample: the window had more than the read's
    /// row limit ([`crate::RowColumns::row_limit`]).
    pub sampled: bool,
}

/// One figure: a metric, for one class or the whole window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figure {
    pub metric: &'static str,
    /// The class of a per-class figure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    pub value: f64,
    /// An estimate's confidence band.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub band: Option<Band>,
}

/// The confidence band of an estimated figure.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Band {
    pub sampling_error: f64,
    pub lower: f64,
    pub upper: f64,
}

/// One window's realized performance, with its context.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PerformanceReport {
    pub evaluation_id: String,
    pub model: String,
    pub version: i64,
    pub alias: String,
    pub window: (DateTime<Utc>, DateTime<Utc>),
    pub task: PerformanceTask,
    /// Rows in the window.
    pub rows: u64,
    /// Rows measured: labelled, and with the prediction the task needs.
    pub labelled_rows: u64,
    /// `labelled_rows / rows`.
    pub label_coverage: f64,
    /// Estimated without labels (CBPE); `labelled_rows` are then the rows
    /// estimated on (those with a score).
    pub estimated: bool,
    pub figures: Vec<Figure>,
}

/// Where a window's figures come from (everything but the rows).
#[derive(Debug, Clone, Copy)]
pub struct PerformanceContext<'a> {
    pub evaluation_id: &'a str,
    pub model: &'a str,
    pub version: i64,
    pub alias: &'a str,
    pub window: (DateTime<Utc>, DateTime<Utc>),
}

/// Why no figures were computed.
#[derive(Debug, Clone, PartialEq)]
pub struct NotMeasured {
    pub rows: u64,
    pub labelled_rows: u64,
    pub message: String,
}

/// The figures of `rows` under `policy`, or why there are none (fewer
/// labelled rows than `min_labels`, or scores that are not probabilities).
pub fn measure(
    policy: &PerformancePolicy,
    context: PerformanceContext<'_>,
    rows: &OutcomeRows,
) -> Result<PerformanceReport, NotMeasured> {
    let figures = match policy.task {
        PerformanceTask::Regression => regression(policy, rows),
        PerformanceTask::Classification => classification(policy, rows),
    }?;
    let (labelled_rows, figures) = figures;
    Ok(context.report(policy.task, (rows.rows, labelled_rows), false, figures))
}

impl PerformanceContext<'_> {
    /// The report of `figures` measured on `measured` of the window's
    /// `rows` (`(rows, measured)`).
    fn report(
        &self,
        task: PerformanceTask,
        (rows, measured): (u64, u64),
        estimated: bool,
        figures: Vec<Figure>,
    ) -> PerformanceReport {
        PerformanceReport {
            evaluation_id: self.evaluation_id.to_string(),
            model: self.model.to_string(),
            version: self.version,
            alias: self.alias.to_string(),
            window: self.window,
            task,
            rows,
            labelled_rows: measured,
            label_coverage: if rows == 0 {
                0.0
            } else {
                measured as f64 / rows as f64
            },
            estimated,
            figures,
        }
    }
}

/// The reference's labelled rows with a score: (scores, positive labels).
fn labelled_scores(positive_class: &str, rows: &OutcomeRows) -> (Vec<f64>, Vec<bool>) {
    rows.labels
        .iter()
        .zip(&rows.prediction_values)
        .filter_map(|(label, score)| Some(((*score)?, label.as_deref()? == positive_class)))
        .unzip()
}

/// An estimate without labels, and how it was made.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimated {
    pub report: PerformanceReport,
    /// `cbpe` (classification) or `dle` (regression).
    pub method: &'static str,
    /// CBPE's calibration: `isotonic` when any score column was
    /// recalibrated, else `none`.
    pub calibration: Option<&'static str>,
}

/// The features estimation reads row by row besides the outcome columns:
/// the class score columns (multiclass CBPE), or the loss models' inputs
/// (DLE: `estimate_features`, else every feature of `reference_features`).
pub fn estimate_columns(
    policy: &PerformancePolicy,
    reference_features: &crate::ports::FeatureSet,
) -> crate::ports::FeatureSet {
    use modelwatch_types::FeatureKind;
    match policy.task {
        PerformanceTask::Classification => policy
            .class_scores
            .values()
            .map(|f| (f.clone(), Some(FeatureKind::Numeric)))
            .collect(),
        PerformanceTask::Regression if policy.estimate_features.is_empty() => reference_features
            .iter()
            .filter(|(name, _)| name.as_str() != crate::decision::PREDICTION_FEATURE)
            .map(|(name, kind)| (name.clone(), *kind))
            .collect(),
        PerformanceTask::Regression => policy
            .estimate_features
            .iter()
            .map(|f| (f.clone(), reference_features.get(f).copied().flatten()))
            .collect(),
    }
}

/// What estimation keeps from the version's labelled reference: fitted
/// once, applied to each window (the scheduler keeps it while the
/// reference does not change).
#[derive(Debug, Clone)]
pub enum Calibrated {
    /// Binary CBPE: the score calibration, the sampling-error components,
    /// and ROC AUC's (absent when the reference has one class only).
    Binary {
        calibration: cbpe::Calibration,
        components: cbpe::SamplingComponents,
        roc_auc: Option<cbpe::RocAucComponents>,
    },
    /// Multiclass CBPE, classes in `class_scores` order.
    Multiclass {
        calibration: cbpe::multiclass::MulticlassCalibration,
        components: cbpe::multiclass::MulticlassComponents,
    },
    /// DLE's loss models.
    Regression(Box<modelwatch_drift::dle::Dle>),
}

/// Why the reference cannot calibrate an estimate.
fn too_few_reference(policy: &PerformancePolicy, have: usize, needs: &str) -> String {
    format!(
        "the version's reference data has {have} rows with a label and {needs}; estimation \
         calibrates on at least {} (performance.min_labels): upload reference data with \
         those columns",
        policy.min_labels
    )
}

/// Fits what estimation needs on the version's labelled `reference` rows
/// (with the features [`estimate_columns`] names), or says why it cannot.
pub fn calibrate(
    policy: &PerformancePolicy,
    reference: &OutcomeRows,
) -> Result<Calibrated, String> {
    match policy.task {
        PerformanceTask::Regression => calibrate_regression(policy, reference),
        PerformanceTask::Classification if !policy.class_scores.is_empty() => {
            calibrate_multiclass(policy, reference)
        }
        PerformanceTask::Classification => calibrate_binary(policy, reference),
    }
}

/// The `current` window's performance estimated without labels from the
/// `calibrated` reference: CBPE for classification (binary by
/// `positive_class`, multiclass by `class_scores`), DLE for regression; or
/// why not. The rows must carry the features [`estimate_columns`] names.
pub fn estimate(
    policy: &PerformancePolicy,
    context: PerformanceContext<'_>,
    calibrated: &Result<Calibrated, String>,
    current: &OutcomeRows,
) -> Result<Estimated, NotMeasured> {
    let calibrated = calibrated.as_ref().map_err(|message| NotMeasured {
        rows: current.rows,
        labelled_rows: 0,
        message: message.clone(),
    })?;
    match calibrated {
        Calibrated::Binary {
            calibration,
            components,
            roc_auc,
        } => estimate_binary(policy, context, (calibration, components, roc_auc), current),
        Calibrated::Multiclass {
            calibration,
            components,
        } => estimate_multiclass(policy, context, (calibration, components), current),
        Calibrated::Regression(dle) => estimate_regression(policy, context, dle, current),
    }
}

/// An estimated figure with its band.
fn estimated(metric: &'static str, class: Option<&str>, x: cbpe::Estimate) -> Figure {
    Figure {
        metric,
        class: class.map(str::to_string),
        value: x.value,
        band: Some(Band {
            sampling_error: x.sampling_error,
            lower: x.lower,
            upper: x.upper,
        }),
    }
}

/// Why a window has nothing to estimate on.
fn not_estimated(current: &OutcomeRows, usable: usize, message: String) -> NotMeasured {
    NotMeasured {
        rows: current.rows,
        labelled_rows: usable as u64,
        message,
    }
}

fn calibrate_binary(
    policy: &PerformancePolicy,
    reference: &OutcomeRows,
) -> Result<Calibrated, String> {
    let Some(positive_class) = policy.positive_class.as_deref() else {
        return Err("estimation needs performance.positive_class".into());
    };
    let (scores, labels) = labelled_scores(positive_class, reference);
    if (labels.len() as u64) < policy.min_labels {
        return Err(too_few_reference(policy, labels.len(), "a score"));
    }
    let calibration = cbpe::Calibration::fit(&scores, &labels)
        .map_err(|e| format!("{e} (prediction_value must be the positive class's probability)"))?;
    let decided: Vec<bool> = scores.iter().map(|&p| p >= policy.threshold).collect();
    Ok(Calibrated::Binary {
        calibration,
        components: cbpe::SamplingComponents::of_reference(&labels, &decided),
        // ROC AUC needs both classes in the reference; without them the
        // other figures still stand.
        roc_auc: cbpe::RocAucComponents::of_reference(&labels, &scores).ok(),
    })
}

/// Binary CBPE: accuracy, precision, recall and F1 of the positive class,
/// and ROC AUC, from `prediction_value` (the positive class's score).
fn estimate_binary(
    policy: &PerformancePolicy,
    context: PerformanceContext<'_>,
    (calibration, components, roc_auc): (
        &cbpe::Calibration,
        &cbpe::SamplingComponents,
        &Option<cbpe::RocAucComponents>,
    ),
    current: &OutcomeRows,
) -> Result<Estimated, NotMeasured> {
    let positive_class = policy.positive_class.as_deref().unwrap_or_default();
    let scores: Vec<f64> = current
        .prediction_values
        .iter()
        .flatten()
        .copied()
        .collect();
    let not = |message: String| not_estimated(current, scores.len(), message);
    if scores.is_empty() {
        return Err(not(
            "no row of the window has a score (prediction_value)".into()
        ));
    }
    let probabilities: Vec<f64> = scores.iter().map(|&s| calibration.probability(s)).collect();
    let decided: Vec<bool> = scores.iter().map(|&p| p >= policy.threshold).collect();
    let e = cbpe::estimate(&probabilities, &decided, components).map_err(|e| not(e.to_string()))?;
    let positive = Some(positive_class);
    let mut figures = vec![
        estimated("accuracy", None, e.accuracy),
        estimated("precision", positive, e.precision),
        estimated("recall", positive, e.recall),
        estimated("f1", positive, e.f1),
    ];
    if let Some(c) = roc_auc
        && let Ok(auc) = cbpe::estimate_roc_auc(&probabilities, c)
    {
        figures.push(estimated("roc_auc", None, auc));
    }
    Ok(Estimated {
        report: context.report(policy.task, (current.rows, e.rows), true, figures),
        method: "cbpe",
        calibration: Some(match calibration {
            cbpe::Calibration::None => "none",
            cbpe::Calibration::Isotonic(_) => "isotonic",
        }),
    })
}

/// The rows of `rows` with every class score and a decision among the
/// classes (and, with `labelled`, a label among them): (raw scores
/// column-major, decisions, labels).
fn scored_classes(
    classes: &[&str],
    score_columns: &[Vec<Option<f64>>],
    rows: &OutcomeRows,
    labelled: bool,
) -> (Vec<Vec<f64>>, Vec<usize>, Vec<usize>) {
    let index = |class: Option<&String>| class.and_then(|c| classes.iter().position(|k| k == c));
    let mut scores = vec![Vec::new(); classes.len()];
    let (mut predicted, mut labels) = (Vec::new(), Vec::new());
    for row in 0..rows.predictions.len() {
        let Some(decision) = index(rows.predictions[row].as_ref()) else {
            continue;
        };
        let label = index(rows.labels[row].as_ref());
        if labelled && label.is_none() {
            continue;
        }
        let Some(row_scores) = score_columns
            .iter()
            .map(|column| column[row])
            .collect::<Option<Vec<f64>>>()
        else {
            continue;
        };
        for (column, score) in scores.iter_mut().zip(row_scores) {
            column.push(score);
        }
        predicted.push(decision);
        labels.extend(label);
    }
    (scores, predicted, labels)
}

/// The class score columns `class_scores` names, as read into `rows`.
fn score_columns(
    policy: &PerformancePolicy,
    rows: &OutcomeRows,
) -> Result<Vec<Vec<Option<f64>>>, String> {
    policy
        .class_scores
        .values()
        .map(|feature| match rows.features.numeric_column(feature) {
            Some(c) => Ok(c.values.clone()),
            None => Err(format!("no score column {feature:?} was read")),
        })
        .collect()
}

fn calibrate_multiclass(
    policy: &PerformancePolicy,
    reference: &OutcomeRows,
) -> Result<Calibrated, String> {
    use cbpe::multiclass;
    let classes: Vec<&str> = policy.class_scores.keys().map(String::as_str).collect();
    let (scores, predicted, labels) = scored_classes(
        &classes,
        &score_columns(policy, reference)?,
        reference,
        true,
    );
    if (labels.len() as u64) < policy.min_labels {
        return Err(too_few_reference(
            policy,
            labels.len(),
            "a prediction among and a score for each of the classes of performance.class_scores",
        ));
    }
    Ok(Calibrated::Multiclass {
        calibration: multiclass::MulticlassCalibration::fit(&scores, &labels)
            .map_err(|e| format!("{e} (class_scores must name each class's probability)"))?,
        components: multiclass::MulticlassComponents::of_reference(
            &labels,
            &predicted,
            &scores,
            classes.len(),
        )
        .map_err(|e| e.to_string())?,
    })
}

/// Multiclass CBPE from the class score columns `class_scores` names.
fn estimate_multiclass(
    policy: &PerformancePolicy,
    context: PerformanceContext<'_>,
    (calibration, components): (
        &cbpe::multiclass::MulticlassCalibration,
        &cbpe::multiclass::MulticlassComponents,
    ),
    current: &OutcomeRows,
) -> Result<Estimated, NotMeasured> {
    use cbpe::multiclass;
    let classes: Vec<&str> = policy.class_scores.keys().map(String::as_str).collect();
    let columns = score_columns(policy, current).map_err(|m| not_estimated(current, 0, m))?;
    let (scores, predicted, _) = scored_classes(&classes, &columns, current, false);
    let not = |message: String| not_estimated(current, predicted.len(), message);
    if predicted.is_empty() {
        return Err(not(format!(
            "no row of the window has a prediction among {} and every class's score",
            classes.join(", ")
        )));
    }
    let probabilities = calibration
        .probabilities(&scores)
        .map_err(|e| not(e.to_string()))?;
    let e = multiclass::estimate(&scores, &probabilities, &predicted, components)
        .map_err(|e| not(e.to_string()))?;
    let mut figures = vec![
        estimated("accuracy", None, e.accuracy),
        estimated("macro_precision", None, e.precision),
        estimated("macro_recall", None, e.recall),
        estimated("macro_f1", None, e.f1),
        estimated("macro_specificity", None, e.specificity),
        estimated("roc_auc", None, e.roc_auc),
    ];
    for (class, c) in classes.iter().zip(&e.per_class) {
        for (metric, value) in [
            ("precision", c.precision),
            ("recall", c.recall),
            ("f1", c.f1),
            ("specificity", c.specificity),
            ("roc_auc", c.roc_auc),
        ] {
            figures.push(Figure {
                metric,
                class: Some((*class).to_string()),
                value,
                band: None,
            });
        }
    }
    let recalibrated = calibration
        .per_class()
        .iter()
        .any(|c| matches!(c, cbpe::Calibration::Isotonic(_)));
    Ok(Estimated {
        report: context.report(policy.task, (current.rows, e.rows), true, figures),
        method: "cbpe",
        calibration: Some(if recalibrated { "isotonic" } else { "none" }),
    })
}

/// The rows of `rows` whose `columns` all hold a finite value.
fn rows_with(columns: &[&[Option<f64>]]) -> Vec<usize> {
    let n = columns.first().map_or(0, |c| c.len());
    (0..n)
        .filter(|&i| columns.iter().all(|c| c[i].is_some_and(f64::is_finite)))
        .collect()
}

/// The values of `column` at `rows` (which have one).
fn values_at(column: &[Option<f64>], rows: &[usize]) -> Vec<f64> {
    rows.iter()
        .map(|&i| column[i].unwrap_or_default())
        .collect()
}

fn calibrate_regression(
    policy: &PerformancePolicy,
    reference: &OutcomeRows,
) -> Result<Calibrated, String> {
    let rows = rows_with(&[&reference.label_values, &reference.prediction_values]);
    if (rows.len() as u64) < policy.min_labels {
        return Err(too_few_reference(
            policy,
            rows.len(),
            "a prediction (label_value and prediction_value)",
        ));
    }
    let dle = modelwatch_drift::dle::Dle::fit(
        &reference.features.select(&rows),
        &values_at(&reference.prediction_values, &rows),
        &values_at(&reference.label_values, &rows),
    )
    .map_err(|e| e.to_string())?;
    Ok(Calibrated::Regression(Box::new(dle)))
}

/// DLE: MAE, MSE, RMSE and MAPE estimated from the features and the
/// prediction (`prediction_value`).
fn estimate_regression(
    policy: &PerformancePolicy,
    context: PerformanceContext<'_>,
    dle: &modelwatch_drift::dle::Dle,
    current: &OutcomeRows,
) -> Result<Estimated, NotMeasured> {
    let rows = rows_with(&[&current.prediction_values]);
    let not = |message: String| not_estimated(current, rows.len(), message);
    if rows.is_empty() {
        return Err(not(
            "no row of the window has a prediction (prediction_value)".into(),
        ));
    }
    let e = dle
        .estimate(
            &current.features.select(&rows),
            &values_at(&current.prediction_values, &rows),
        )
        .map_err(|e| not(e.to_string()))?;
    let figures = vec![
        estimated("mae", None, e.mae),
        estimated("mse", None, e.mse),
        estimated("rmse", None, e.rmse),
        estimated("mape", None, e.mape),
    ];
    Ok(Estimated {
        report: context.report(policy.task, (current.rows, e.rows), true, figures),
        method: "dle",
        calibration: None,
    })
}

fn too_few(policy: &PerformancePolicy, rows: &OutcomeRows, labelled: usize) -> NotMeasured {
    NotMeasured {
        rows: rows.rows,
        labelled_rows: labelled as u64,
        message: format!(
            "{labelled} of the window's {} rows are labelled with the prediction the task \
             needs; the policy needs {} (performance.min_labels)",
            rows.rows, policy.min_labels
        ),
    }
}

fn figure(metric: &'static str, value: f64) -> Figure {
    Figure {
        metric,
        class: None,
        value,
        band: None,
    }
}

type Measured = Result<(u64, Vec<Figure>), NotMeasured>;

fn regression(policy: &PerformancePolicy, rows: &OutcomeRows) -> Measured {
    let (labels, predictions): (Vec<f64>, Vec<f64>) = rows
        .label_values
        .iter()
        .zip(&rows.prediction_values)
        .filter_map(|(l, p)| Some(((*l)?, (*p)?)))
        .filter(|(l, p)| l.is_finite() && p.is_finite())
        .unzip();
    if (labels.len() as u64) < policy.min_labels {
        return Err(too_few(policy, rows, labels.len()));
    }
    let m = performance::regression(&labels, &predictions).map_err(|e| NotMeasured {
        rows: rows.rows,
        labelled_rows: labels.len() as u64,
        message: e.to_string(),
    })?;
    let mut figures = vec![
        figure("mae", m.mae),
        figure("rmse", m.rmse),
        figure("mape", m.mape),
    ];
    figures.extend(m.r2.map(|r2| figure("r2", r2)));
    Ok((m.rows, figures))
}

fn classification(policy: &PerformancePolicy, rows: &OutcomeRows) -> Measured {
    let mut labels = Vec::new();
    let mut predictions = Vec::new();
    let mut scores = Vec::new();
    for i in 0..rows.labels.len() {
        let Some(label) = &rows.labels[i] else {
            continue;
        };
        match &policy.positive_class {
            // Binary by probability: both sides become positive / other.
            Some(positive) => {
                let Some(p) = rows.prediction_values[i] else {
                    continue;
                };
                let class = |is_positive: bool| {
                    if is_positive {
                        positive.as_str()
                    } else {
                        OTHER_CLASS
                    }
                };
                labels.push(class(label == positive));
                predictions.push(class(p >= policy.threshold));
                scores.push(p);
            }
            None => {
                let Some(p) = &rows.predictions[i] else {
                    continue;
                };
                labels.push(label.as_str());
                predictions.push(p.as_str());
            }
        }
    }
    if (labels.len() as u64) < policy.min_labels {
        return Err(too_few(policy, rows, labels.len()));
    }
    let scored = policy
        .positive_class
        .as_deref()
        .map(|positive_class| Scores {
            positive_class,
            values: &scores,
        });
    let m =
        performance::classification(&labels, &predictions, scored).map_err(|e| NotMeasured {
            rows: rows.rows,
            labelled_rows: labels.len() as u64,
            message: format!("{e} (prediction_value must be the positive class's probability)"),
        })?;
    let mut figures = vec![
        figure("accuracy", m.accuracy),
        figure("macro_precision", m.macro_precision),
        figure("macro_recall", m.macro_recall),
        figure("macro_f1", m.macro_f1),
        figure("weighted_f1", m.weighted_f1),
    ];
    for (class, c) in &m.classes {
        for (metric, value) in [
            ("precision", c.precision),
            ("recall", c.recall),
            ("f1", c.f1),
            ("support", c.support as f64),
        ] {
            figures.push(Figure {
                metric,
                class: Some(class.clone()),
                value,
                band: None,
            });
        }
    }
    if let Some(s) = &m.scores {
        figures.extend(s.roc_auc.map(|auc| figure("roc_auc", auc)));
        figures.push(figure("log_loss", s.log_loss));
        figures.push(figure("calibration_error", s.calibration_error));
    }
    Ok((m.rows, figures))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(json: serde_json::Value) -> PerformancePolicy {
        serde_json::from_value(json).expect("policy")
    }

    fn context() -> PerformanceContext<'static> {
        PerformanceContext {
            evaluation_id: "m/1/t",
            model: "m",
            version: 1,
            alias: "production",
            window: (DateTime::UNIX_EPOCH, DateTime::UNIX_EPOCH),
        }
    }

    fn value(report: &PerformanceReport, metric: &str, class: Option<&str>) -> f64 {
        report
            .figures
            .iter()
            .find(|f| f.metric == metric && f.class.as_deref() == class)
            .unwrap_or_else(|| panic!("{metric} {class:?} in {:?}", report.figures))
            .value
    }

    #[test]
    fn binary_scores_are_thresholded_and_unlabelled_rows_only_lower_coverage() {
        let rows = OutcomeRows {
            rows: 5,
            labels: vec![
                Some("fraud".into()),
                Some("ok".into()),
                None,
                Some("legit".into()),
            ],
            label_values: vec![None; 4],
            predictions: vec![None; 4],
            prediction_values: vec![Some(0.9), Some(0.6), Some(0.1), Some(0.2)],
            ..OutcomeRows::default()
        };
        let p = policy(
            serde_json::json!({"task": "classification", "positive_class": "fraud",
                                          "threshold": 0.7, "min_labels": 3}),
        );
        let r = measure(&p, context(), &rows).expect("measured");
        assert_eq!((r.rows, r.labelled_rows), (5, 3));
        assert_eq!(r.label_coverage, 0.6);
        // fraud@0.9 → fraud; ok@0.6 → other (below 0.7); legit@0.2 → other.
        assert_eq!(value(&r, "accuracy", None), 1.0);
        assert_eq!(value(&r, "support", Some(OTHER_CLASS)), 2.0);
        assert_eq!(value(&r, "roc_auc", None), 1.0);
    }

    #[test]
    fn too_few_labels_say_how_many_and_what_the_policy_needs() {
        let rows = OutcomeRows {
            rows: 10,
            labels: vec![Some("a".into())],
            label_values: vec![None],
            predictions: vec![Some("a".into())],
            prediction_values: vec![None],
            ..OutcomeRows::default()
        };
        let p = policy(serde_json::json!({"task": "classification", "min_labels": 2}));
        let err = measure(&p, context(), &rows).unwrap_err();
        assert_eq!(err.labelled_rows, 1);
        assert!(err.message.contains("min_labels"), "{}", err.message);
    }

    /// `n` reference rows: scores i/n, labelled positive from the middle up.
    fn scored_reference(n: usize) -> OutcomeRows {
        let mut rows = OutcomeRows {
            rows: n as u64,
            ..OutcomeRows::default()
        };
        for i in 0..n {
            let score = i as f64 / n as f64;
            rows.prediction_values.push(Some(score));
            rows.predictions.push(None);
            rows.labels
                .push(Some(if score >= 0.5 { "1" } else { "0" }.into()));
            rows.label_values.push(None);
        }
        rows
    }

    #[test]
    fn estimates_need_a_labelled_reference_and_carry_bands() {
        let p = policy(json!({"task": "classification", "positive_class": "1",
                              "estimate": true, "min_labels": 50}));
        let mut current = OutcomeRows {
            rows: 3,
            prediction_values: vec![Some(0.9), None, Some(0.1)],
            ..OutcomeRows::default()
        };
        current.predictions = vec![None; 3];
        current.labels = vec![None; 3];
        current.label_values = vec![None; 3];
        let not = estimate(
            &p,
            context(),
            &calibrate(&p, &scored_reference(20)),
            &current,
        )
        .unwrap_err();
        assert!(
            not.message.contains("20 rows with a label and a score"),
            "{}",
            not.message
        );
        assert!(
            not.message.contains("performance.min_labels"),
            "{}",
            not.message
        );
        // A perfectly ranked reference needs no calibration: the scores
        // are the probabilities.
        let Estimated {
            report,
            calibration,
            method,
        } = estimate(
            &p,
            context(),
            &calibrate(&p, &scored_reference(100)),
            &current,
        )
        .unwrap();
        assert_eq!((method, calibration), ("cbpe", Some("none")));
        assert!(report.estimated);
        assert_eq!((report.rows, report.labelled_rows), (3, 2));
        assert!((value(&report, "accuracy", None) - 0.9).abs() < 1e-15);
        assert!((value(&report, "precision", Some("1")) - 0.9).abs() < 1e-15);
        assert!(report.figures.iter().all(|f| f.band.is_some()));
    }

    #[test]
    fn regression_needs_both_values() {
        let rows = OutcomeRows {
            rows: 3,
            labels: vec![None; 3],
            label_values: vec![Some(1.0), Some(2.0), None],
            predictions: vec![None; 3],
            prediction_values: vec![Some(1.5), Some(2.0), Some(9.0)],
            ..OutcomeRows::default()
        };
        let p = policy(serde_json::json!({"task": "regression", "min_labels": 2}));
        let r = measure(&p, context(), &rows).expect("measured");
        assert_eq!(r.labelled_rows, 2);
        assert_eq!(value(&r, "mae", None), 0.25);
        assert_eq!(value(&r, "r2", None), 0.5);
    }
}
