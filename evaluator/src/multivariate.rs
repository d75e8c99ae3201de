//! Multivariate drift of a version's current window against its reference
//! (`multivariate` in the policy): which features are read together, and
//! the measurement, decided without I/O. The statistic is
//! `drift::multivariate`'s (NannyML's PCA data reconstruction error); the
//! scheduler reads both windows row by row
//! ([`crate::TelemetryReader::outcomes`] with [`crate::RowColumns`]) and
//! the drift rules count a drifted measurement like a drifted dataset.

use modelwatch_drift::FeatureMatrix;
use modelwatch_drift::multivariate::{ReconstructionDrift, reconstruction_drift};
use modelwatch_types::MultivariatePolicy;
use serde::Serialize;

use crate::decision::PREDICTION_FEATURE;
use crate::ports::FeatureSet;

/// The measurement, or why there is none.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MultivariateOutcome {
    pub measured: bool,
    /// The features read together.
    pub features: Vec<String>,
    /// The reconstruction errors and their band.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub drift: Option<ReconstructionDrift>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl MultivariateOutcome {
    /// Whether the window's reconstruction error left the band.
    pub fn drifted(&self) -> bool {
        self.drift.as_ref().is_some_and(|d| d.drifted)
    }
}

/// The features read together: the policy's, else every tested feature
/// but the prediction column (a model's output is not one of its inputs).
pub fn features(policy: &MultivariatePolicy, tested: &FeatureSet) -> FeatureSet {
    if policy.features.is_empty() {
        tested
            .iter()
            .filter(|(name, _)| name.as_str() != PREDICTION_FEATURE)
            .map(|(name, kind)| (name.clone(), *kind))
            .collect()
    } else {
        policy
            .features
            .iter()
            .map(|name| (name.clone(), tested.get(name).copied().flatten()))
            .collect()
    }
}

/// Measures `current` against `reference` over `features`.
pub fn measure(
    policy: &MultivariatePolicy,
    features: &FeatureSet,
    reference: &FeatureMatrix,
    current: &FeatureMatrix,
) -> MultivariateOutcome {
    let names: Vec<String> = features.keys().cloned().collect();
    let not = |message: String| MultivariateOutcome {
        measured: false,
        features: names.clone(),
        drift: None,
        message: Some(message),
    };
    if features.len() < 2 {
        return not(format!(
            "multivariate drift reads at least 2 features together; {} {} tested (name them \
             in multivariate.features)",
            features.len(),
            if features.len() == 1 { "is" } else { "are" }
        ));
    }
    match reconstruction_drift(reference, current, policy.variance_kept) {
        Ok(drift) => MultivariateOutcome {
            measured: true,
            features: names,
            drift: Some(drift),
            message: None,
        },
        Err(e) => not(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelwatch_types::FeatureKind;

    #[test]
    fn the_prediction_is_not_read_unless_named() {
        let tested: FeatureSet = [
            ("a".to_string(), Some(FeatureKind::Numeric)),
            ("b".to_string(), Some(FeatureKind::Categorical)),
            (PREDICTION_FEATURE.to_string(), Some(FeatureKind::Numeric)),
        ]
        .into();
        let all = features(&MultivariatePolicy::default(), &tested);
        assert_eq!(all.keys().collect::<Vec<_>>(), ["a", "b"]);
        let named = features(
            &MultivariatePolicy {
                features: vec!["b".into(), "c".into()],
                ..MultivariatePolicy::default()
            },
            &tested,
        );
        assert_eq!(named.get("b"), Some(&Some(FeatureKind::Categorical)));
        assert_eq!(named.get("c"), Some(&None));
    }

    #[test]
    fn one_feature_is_not_multivariate() {
        let one: FeatureSet = [("a".to_string(), Some(FeatureKind::Numeric))].into();
        let m = FeatureMatrix::new(0);
        let outcome = measure(&MultivariatePolicy::default(), &one, &m, &m);
        assert!(!outcome.measured && !outcome.drifted());
        assert!(outcome.message.unwrap().contains("at least 2 features"));
    }
}
