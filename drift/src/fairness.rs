//! Group fairness of a binary decision: selection rates per group and the
//! gaps between groups, each defined as fairlearn defines it (checked
//! against fairlearn on the fixtures of `scripts/gen_fairness_fixtures.py`
//! in `tests/fairlearn_agreement.rs`).
//!
//! A row is **selected** when the model's decision is the favourable (or
//! positive) outcome; a row's label, when known, says whether that outcome
//! was the right one. Definitions (fairlearn's name in brackets, each with
//! `method="between_groups"`):
//! - selection rate of a group (`selection_rate`): selected rows / rows.
//! - demographic-parity difference (`demographic_parity_difference`): the
//!   largest selection rate minus the smallest.
//! - disparate-impact ratio (`demographic_parity_ratio`): the smallest
//!   selection rate over the largest; the four-fifths rule asks for at
//!   least 0.8. Undefined (`None`) when no group is ever selected.
//! - true- and false-positive rates of a group (`true_positive_rate`,
//!   `false_positive_rate`) over its labelled rows: selected among the
//!   positive labels, selected among the negative ones. Undefined for a
//!   group without positive (negative) labels, which is then left out of
//!   the gaps below.
//! - equal-opportunity difference (`equal_opportunity_difference`): the
//!   largest true-positive rate minus the smallest.
//! - equalized-odds difference (`equalized_odds_difference`,
//!   `agg="worst_case"`): the larger of the true- and false-positive rate
//!   gaps.
//!
//! What this module must not do: read rows, choose groups or decide; it
//! takes aligned slices and returns numbers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Result, invalid, not_enough};

/// One group's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupFairness {
    pub group: String,
    pub rows: u64,
    pub selection_rate: f64,
    /// Rows with a label.
    pub labelled_rows: u64,
    pub true_positive_rate: Option<f64>,
    pub false_positive_rate: Option<f64>,
}

/// One sensitive attribute's figures: per group, and between groups.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fairness {
    /// Sorted by group.
    pub groups: Vec<GroupFairness>,
    pub demographic_parity_difference: f64,
    pub disparate_impact_ratio: Option<f64>,
    /// `None` unless two groups have a true-positive rate.
    pub equal_opportunity_difference: Option<f64>,
    /// `None` unless two groups have both rates.
    pub equalized_odds_difference: Option<f64>,
}

impl Fairness {
    /// The between-group figures by name (`None` where undefined), in
    /// the order they are documented.
    pub fn between_groups(&self) -> [(&'static str, Option<f64>); 4] {
        [
            (
                "demographic_parity_difference",
                Some(self.demographic_parity_difference),
            ),
            ("disparate_impact_ratio", self.disparate_impact_ratio),
            (
                "equal_opportunity_difference",
                self.equal_opportunity_difference,
            ),
            ("equalized_odds_difference", self.equalized_odds_difference),
        ]
    }
}

#[derive(Default)]
struct Counts {
    rows: u64,
    selected: u64,
    positives: u64,
    selected_positives: u64,
    negatives: u64,
    selected_negatives: u64,
}

fn ratio(numerator: u64, denominator: u64) -> Option<f64> {
    (denominator > 0).then(|| numerator as f64 / denominator as f64)
}

/// The largest value minus the smallest, when there are at least two.
fn gap(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (mut n, mut lo, mut hi) = (0, f64::INFINITY, f64::NEG_INFINITY);
    for v in values {
        n += 1;
        lo = lo.min(v);
        hi = hi.max(v);
    }
    (n >= 2).then_some(hi - lo)
}

/// The figures of `groups[i]` (the row's group), `selected[i]` (the
/// decision was the positive outcome) and `labels[i]` (whether the
/// positive outcome was right, when known). At least two groups are
/// needed for a gap.
pub fn fairness(groups: &[&str], selected: &[bool], labels: &[Option<bool>]) -> Result<Fairness> {
    if groups.len() != selected.len() || groups.len() != labels.len() {
        return Err(invalid(
            "rows",
            format!(
                "{} groups, {} decisions and {} labels: the slices must be aligned",
                groups.len(),
                selected.len(),
                labels.len()
            ),
        ));
    }
    let mut by_group: BTreeMap<&str, Counts> = BTreeMap::new();
    for ((group, &selected), label) in groups.iter().zip(selected).zip(labels) {
        let c = by_group.entry(group).or_default();
        c.rows += 1;
        c.selected += u64::from(selected);
        match label {
            Some(true) => {
                c.positives += 1;
                c.selected_positives += u64::from(selected);
            }
            Some(false) => {
                c.negatives += 1;
                c.selected_negatives += u64::from(selected);
            }
            None => {}
        }
    }
    if by_group.len() < 2 {
        return Err(not_enough(
            "fairness",
            format!(
                "{} group(s); comparing groups needs at least two",
                by_group.len()
            ),
        ));
    }
    let groups: Vec<GroupFairness> = by_group
        .into_iter()
        .map(|(group, c)| GroupFairness {
            group: group.to_string(),
            rows: c.rows,
            selection_rate: c.selected as f64 / c.rows as f64,
            labelled_rows: c.positives + c.negatives,
            true_positive_rate: ratio(c.selected_positives, c.positives),
            false_positive_rate: ratio(c.selected_negatives, c.negatives),
        })
        .collect();
    let rates = || groups.iter().map(|g| g.selection_rate);
    let highest = rates().fold(f64::NEG_INFINITY, f64::max);
    let lowest = rates().fold(f64::INFINITY, f64::min);
    let true_positive_gap = gap(groups.iter().filter_map(|g| g.true_positive_rate));
    let both: Vec<&GroupFairness> = groups
        .iter()
        .filter(|g| g.true_positive_rate.is_some() && g.false_positive_rate.is_some())
        .collect();
    let equalized_odds_difference = match (
        gap(both.iter().filter_map(|g| g.true_positive_rate)),
        gap(both.iter().filter_map(|g| g.false_positive_rate)),
    ) {
        (Some(t), Some(f)) => Some(t.max(f)),
        _ => None,
    };
    Ok(Fairness {
        demographic_parity_difference: highest - lowest,
        disparate_impact_ratio: (highest > 0.0).then(|| lowest / highest),
        equal_opportunity_difference: true_positive_gap,
        equalized_odds_difference,
        groups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_rates_and_gaps_by_hand() {
        // a: 3 of 4 selected; b: 1 of 4.
        let groups = ["a", "a", "a", "a", "b", "b", "b", "b"];
        let selected = [true, true, true, false, true, false, false, false];
        let labels = [
            Some(true),
            Some(true),
            Some(false),
            Some(false),
            Some(true),
            Some(true),
            Some(false),
            None,
        ];
        let f = fairness(&groups, &selected, &labels).unwrap();
        assert_eq!(f.groups[0].selection_rate, 0.75);
        assert_eq!(f.groups[1].selection_rate, 0.25);
        assert_eq!(f.demographic_parity_difference, 0.5);
        assert_eq!(f.disparate_impact_ratio, Some(0.25 / 0.75));
        // TPR a = 2/2, b = 1/2; FPR a = 1/2, b = 0/1.
        assert_eq!(f.groups[0].true_positive_rate, Some(1.0));
        assert_eq!(f.groups[1].true_positive_rate, Some(0.5));
        assert_eq!(f.groups[1].false_positive_rate, Some(0.0));
        assert_eq!(f.groups[1].labelled_rows, 3);
        assert_eq!(f.equal_opportunity_difference, Some(0.5));
        assert_eq!(f.equalized_odds_difference, Some(0.5));
    }

    #[test]
    fn undefined_figures_are_none_not_nan() {
        // Nobody selected: no ratio. No labels: no rates, no gaps.
        let f = fairness(&["a", "b"], &[false, false], &[None, None]).unwrap();
        assert_eq!(f.demographic_parity_difference, 0.0);
        assert_eq!(f.disparate_impact_ratio, None);
        assert_eq!(f.equal_opportunity_difference, None);
        assert_eq!(f.equalized_odds_difference, None);
        // Only one group has positive labels: no true-positive gap.
        let f = fairness(
            &["a", "a", "b"],
            &[true, false, true],
            &[Some(true), Some(false), Some(false)],
        )
        .unwrap();
        assert_eq!(f.equal_opportunity_difference, None);
        assert_eq!(f.equalized_odds_difference, None);
    }

    #[test]
    fn one_group_or_misaligned_slices_are_errors() {
        assert!(matches!(
            fairness(&["a", "a"], &[true, false], &[None, None]),
            Err(crate::DriftError::NotEnoughData { .. })
        ));
        assert!(matches!(
            fairness(&["a", "b"], &[true], &[None, None]),
            Err(crate::DriftError::InvalidParameter { .. })
        ));
    }
}
