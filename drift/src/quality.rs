//! Data quality of a current window against its reference, per feature:
//! how many rows lack the feature, carry it with the wrong type, fall
//! outside the reference's range (numeric) or bring categories the
//! reference never had (categorical). Pure: counts in, shares out.

use serde::{Deserialize, Serialize};

use crate::categorical::CategoryCounts;
use crate::sample::TestedValues;

/// Unseen categories listed by name, at most (the share counts them all).
pub const MAX_LISTED_UNSEEN: usize = 10;

/// One feature's data quality in the current window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureQuality {
    /// Rows in the current window.
    pub rows: u64,
    /// Share of rows without a usable value: absent, null, or (numeric)
    /// not finite.
    pub missing_share: f64,
    /// Share of rows whose value has the other kind (text for a numeric
    /// feature, a number for a categorical one).
    pub type_mismatch_share: f64,
    /// Numeric: share of the values below the reference's minimum or above
    /// its maximum (over the tested values when the window was sampled).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out_of_range_share: Option<f64>,
    /// Categorical: share of the values whose category the reference never
    /// had.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unseen_share: Option<f64>,
    /// Categorical: those categories, most frequent first, at most
    /// [`MAX_LISTED_UNSEEN`].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unseen_categories: Vec<String>,
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// A numeric feature: `mismatched` rows carried it as text.
pub fn numeric(
    rows: u64,
    reference: &TestedValues,
    current: &TestedValues,
    mismatched: u64,
) -> FeatureQuality {
    let missing = rows.saturating_sub(current.seen + mismatched);
    let out_of_range_share = match (reference.values.first(), reference.values.last()) {
        (Some(min), Some(max)) if !current.values.is_empty() => {
            // Both sorted: the values outside [min, max] are a prefix and a
            // suffix.
            let below = current.values.partition_point(|v| v < min);
            let above = current.values.len() - current.values.partition_point(|v| v <= max);
            Some(share((below + above) as u64, current.values.len() as u64))
        }
        _ => None,
    };
    FeatureQuality {
        rows,
        missing_share: share(missing, rows),
        type_mismatch_share: share(mismatched, rows),
        out_of_range_share,
        unseen_share: None,
        unseen_categories: Vec::new(),
    }
}

/// A categorical feature: `mismatched` rows carried it as a number.
pub fn categorical(
    rows: u64,
    reference: &CategoryCounts,
    current: &CategoryCounts,
    mismatched: u64,
) -> FeatureQuality {
    let values = current.total();
    let missing = rows.saturating_sub(values + mismatched);
    let mut unseen: Vec<(&String, u64)> = current
        .counts
        .iter()
        .filter(|(c, _)| !reference.counts.contains_key(*c))
        .map(|(c, n)| (c, *n))
        .collect();
    let unseen_values: u64 = unseen.iter().map(|(_, n)| n).sum();
    unseen.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    FeatureQuality {
        rows,
        missing_share: share(missing, rows),
        type_mismatch_share: share(mismatched, rows),
        out_of_range_share: None,
        unseen_share: Some(share(unseen_values, values)),
        unseen_categories: unseen
            .into_iter()
            .take(MAX_LISTED_UNSEEN)
            .map(|(c, _)| c.clone())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_values_outside_the_reference_range_are_counted_on_both_sides() {
        let reference = TestedValues::exact(&[1.0, 5.0, 10.0]);
        let current = TestedValues::exact(&[0.5, 1.0, 7.0, 10.0, 11.0]);
        // 8 rows: 5 values, 1 as text, 2 without the feature.
        let q = numeric(8, &reference, &current, 1);
        assert_eq!(q.out_of_range_share, Some(2.0 / 5.0));
        assert_eq!(q.missing_share, 2.0 / 8.0);
        assert_eq!(q.type_mismatch_share, 1.0 / 8.0);
    }

    #[test]
    fn unseen_categories_are_shared_and_named_most_frequent_first() {
        let reference = CategoryCounts::from_values(["de", "fr"]);
        let current = CategoryCounts::from_values(["de", "xx", "yy", "yy", "fr"]);
        let q = categorical(6, &reference, &current, 0);
        assert_eq!(q.unseen_share, Some(3.0 / 5.0));
        assert_eq!(q.unseen_categories, vec!["yy", "xx"]);
        assert_eq!(q.missing_share, 1.0 / 6.0);
    }

    #[test]
    fn empty_windows_give_zero_shares_not_nan() {
        let empty = TestedValues::default();
        let q = numeric(0, &empty, &empty, 0);
        assert_eq!((q.missing_share, q.out_of_range_share), (0.0, None));
        let q = categorical(0, &CategoryCounts::default(), &CategoryCounts::default(), 0);
        assert_eq!(q.unseen_share, Some(0.0));
    }
}
