//! Group fairness of the current window's decisions, per sensitive
//! attribute the policy names: pure, from rows the reader selected
//! ([`OutcomeRows`] with the attributes' groups) to a [`FairnessReport`]
//! the results sink stores in `fairness_results`. The figures are
//! `drift::fairness`'s (fairlearn's definitions).

use chrono::{DateTime, Utc};
use modelwatch_drift::fairness::{Fairness, fairness};
use modelwatch_types::FairnessPolicy;
use serde::Serialize;

use crate::performance::{OutcomeRows, PerformanceContext};

/// One attribute's figures, or why there are none.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttributeFairness {
    pub attribute: String,
    /// Rows with a group, a decision (and so compared).
    pub rows: u64,
    /// The figures over the groups with at least `min_group_rows` rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fairness: Option<Fairness>,
    /// Groups left out of the comparison for having fewer rows, with their
    /// row counts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub small_groups: Vec<(String, u64)>,
    /// Why no figures, when `fairness` is `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One window's fairness, with its context.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FairnessReport {
    pub evaluation_id: String,
    pub model: String,
    pub version: i64,
    pub alias: String,
    pub window: (DateTime<Utc>, DateTime<Utc>),
    pub positive_class: String,
    pub attributes: Vec<AttributeFairness>,
}

impl FairnessReport {
    /// Whether any attribute has figures (only then is there something to
    /// store).
    pub fn assessed(&self) -> bool {
        self.attributes.iter().any(|a| a.fairness.is_some())
    }
}

/// An attribute whose disparate-impact ratio is under the policy's minimum.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FairnessBreach {
    pub attribute: String,
    pub disparate_impact_ratio: f64,
    pub minimum: f64,
}

/// The attributes of `report` under the policy's
/// `min_disparate_impact_ratio` (none without one; an undefined ratio, no
/// group ever selected, is no breach).
pub fn breaches(policy: &FairnessPolicy, report: &FairnessReport) -> Vec<FairnessBreach> {
    let Some(minimum) = policy.min_disparate_impact_ratio else {
        return Vec::new();
    };
    report
        .attributes
        .iter()
        .filter_map(|a| {
            let ratio = a.fairness.as_ref()?.disparate_impact_ratio?;
            (ratio < minimum).then(|| FairnessBreach {
                attribute: a.attribute.clone(),
                disparate_impact_ratio: ratio,
                minimum,
            })
        })
        .collect()
}

/// The row's decision: selected (the positive class) or not; `None` when
/// the row lacks what the policy reads.
fn decision(policy: &FairnessPolicy, rows: &OutcomeRows, i: usize) -> Option<bool> {
    match policy.threshold {
        Some(threshold) => rows.prediction_values[i].map(|p| p >= threshold),
        None => rows.predictions[i]
            .as_deref()
            .map(|p| p == policy.positive_class),
    }
}

/// The fairness of `rows` for each of the policy's attributes.
pub fn assess(
    policy: &FairnessPolicy,
    context: PerformanceContext<'_>,
    rows: &OutcomeRows,
) -> FairnessReport {
    let decisions: Vec<Option<bool>> = (0..rows.predictions.len())
        .map(|i| decision(policy, rows, i))
        .collect();
    let labels: Vec<Option<bool>> = rows
        .labels
        .iter()
        .map(|l| l.as_deref().map(|l| l == policy.positive_class))
        .collect();
    let attributes = policy
        .attributes
        .iter()
        .map(|attribute| {
            let no_groups = Vec::new();
            let groups = rows.groups.get(attribute).unwrap_or(&no_groups);
            let usable: Vec<usize> = (0..decisions.len())
                .filter(|&i| decisions[i].is_some() && groups.get(i).is_some_and(Option::is_some))
                .collect();
            let group_of = |i: usize| groups[i].as_deref().unwrap_or_default();
            let mut sizes = std::collections::BTreeMap::<&str, u64>::new();
            for &i in &usable {
                *sizes.entry(group_of(i)).or_default() += 1;
            }
            let small_groups: Vec<(String, u64)> = sizes
                .iter()
                .filter(|(_, n)| **n < policy.min_group_rows)
                .map(|(g, n)| (g.to_string(), *n))
                .collect();
            let kept: Vec<usize> = usable
                .iter()
                .copied()
                .filter(|&i| sizes[group_of(i)] >= policy.min_group_rows)
                .collect();
            let result = fairness(
                &kept.iter().map(|&i| group_of(i)).collect::<Vec<_>>(),
                &kept
                    .iter()
                    .map(|&i| decisions[i].unwrap_or_default())
                    .collect::<Vec<_>>(),
                &kept.iter().map(|&i| labels[i]).collect::<Vec<_>>(),
            );
            let (fairness, message) = match result {
                Ok(f) => (Some(f), None),
                Err(e) => (
                    None,
                    Some(format!(
                        "{e}: {} group(s) of {attribute} have at least {} rows with a decision \
                         (fairness.min_group_rows); send the attribute as a categorical feature",
                        sizes.len() - small_groups.len(),
                        policy.min_group_rows
                    )),
                ),
            };
            AttributeFairness {
                attribute: attribute.clone(),
                rows: usable.len() as u64,
                fairness,
                small_groups,
                message,
            }
        })
        .collect();
    FairnessReport {
        evaluation_id: context.evaluation_id.to_string(),
        model: context.model.to_string(),
        version: context.version,
        alias: context.alias.to_string(),
        window: context.window,
        positive_class: policy.positive_class.clone(),
        attributes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(threshold: Option<f64>, min_group_rows: u64) -> FairnessPolicy {
        FairnessPolicy {
            attributes: vec!["gender".into(), "missing".into()],
            positive_class: "approve".into(),
            threshold,
            min_group_rows,
            min_disparate_impact_ratio: Some(0.8),
        }
    }

    fn context() -> PerformanceContext<'static> {
        PerformanceContext {
            evaluation_id: "e1",
            model: "credit",
            version: 1,
            alias: "production",
            window: (DateTime::UNIX_EPOCH, DateTime::UNIX_EPOCH),
        }
    }

    /// f: 2 of 4 approved, m: 3 of 4, x: 1 row; one row without a gender.
    fn rows() -> OutcomeRows {
        let genders = ["f", "f", "f", "f", "m", "m", "m", "m", "x"];
        let approved = [true, true, false, false, true, true, true, false, true];
        let mut rows = OutcomeRows::default();
        for (g, a) in genders.iter().zip(approved) {
            rows.predictions
                .push(Some(if a { "approve" } else { "deny" }.into()));
            rows.prediction_values.push(Some(if a { 0.9 } else { 0.1 }));
            rows.labels.push(Some("approve".into()));
            rows.label_values.push(None);
            rows.groups
                .entry("gender".into())
                .or_default()
                .push(Some(g.to_string()));
        }
        rows.predictions.push(Some("approve".into()));
        rows.prediction_values.push(Some(0.9));
        rows.labels.push(None);
        rows.label_values.push(None);
        rows.groups.entry("gender".into()).or_default().push(None);
        rows.rows = 10;
        rows
    }

    #[test]
    fn small_groups_are_reported_but_not_compared() {
        let r = assess(&policy(None, 2), context(), &rows());
        let gender = &r.attributes[0];
        assert_eq!(gender.rows, 9, "the row without a gender is not counted");
        assert_eq!(gender.small_groups, vec![("x".to_string(), 1)]);
        let f = gender.fairness.as_ref().unwrap();
        assert_eq!(f.groups.len(), 2);
        assert_eq!(f.disparate_impact_ratio, Some(0.5 / 0.75));
        assert!(r.assessed());
        // An attribute no row has: no figures, and the reply says why.
        let missing = &r.attributes[1];
        assert!(missing.fairness.is_none());
        assert!(
            missing
                .message
                .as_deref()
                .unwrap()
                .contains("min_group_rows")
        );
    }

    #[test]
    fn scores_are_thresholded_when_the_policy_says_so() {
        let mut p = policy(Some(0.95), 2);
        p.attributes.truncate(1);
        let r = assess(&p, context(), &rows());
        let f = r.attributes[0].fairness.as_ref().unwrap();
        assert!(f.groups.iter().all(|g| g.selection_rate == 0.0));
        assert_eq!(f.disparate_impact_ratio, None);
    }
}
