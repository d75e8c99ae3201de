//! Realized performance: what the current window's labelled inferences say
//! about the model's accuracy (or error), decided without I/O. The
//! scheduler reads the labelled rows ([`crate::TelemetryReader::labelled`]),
//! calls [`measure`] and stores the figures
//! ([`crate::ResultsSink::write_performance`]).

use chrono::{DateTime, Utc};
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
}

/// One figure: a metric, for one class or the whole window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figure {
    pub metric: &'static str,
    /// The class of a per-class figure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    pub value: f64,
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
    Ok(PerformanceReport {
        evaluation_id: context.evaluation_id.to_string(),
        model: context.model.to_string(),
        version: context.version,
        alias: context.alias.to_string(),
        window: context.window,
        task: policy.task,
        rows: rows.rows,
        labelled_rows,
        label_coverage: if rows.rows == 0 {
            0.0
        } else {
            labelled_rows as f64 / rows.rows as f64
        },
        figures,
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
