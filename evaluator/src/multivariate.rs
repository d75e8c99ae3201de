//! Multivariate drift of a version's current window against its reference
//! (`multivariate` in the policy): which features are read together, and
//! the measurement, decided without I/O. The statistic is
//! `drift::multivariate`'s (NannyML's PCA data reconstruction error); the
//! scheduler reads both windows row by row
//! ([`crate::TelemetryReader::outcomes`] with [`crate::RowColumns`]) and
//! the drift rules count a drifted measurement like a drifted dataset.

use modelwatch_drift::FeatureMatrix;
use modelwatch_drift::multivariate::{FittedReference, ReconstructionDrift};
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

/// Why `features` cannot be measured together, before anything is read.
pub fn check(features: &FeatureSet) -> Result<(), String> {
    if features.len() < 2 {
        return Err(format!(
            "multivariate drift reads at least 2 features together; {} {} tested (name them \
             in multivariate.features)",
            features.len(),
            if features.len() == 1 { "is" } else { "are" }
        ));
    }
    Ok(())
}

/// The reference fitted for `policy`, or why it cannot be (its message).
pub fn fit(
    policy: &MultivariatePolicy,
    reference: &FeatureMatrix,
) -> Result<FittedReference, String> {
    FittedReference::fit(reference, policy.variance_kept).map_err(|e| e.to_string())
}

/// The outcome of `features` not measured, and why.
pub fn not_measured(features: &FeatureSet, message: String) -> MultivariateOutcome {
    MultivariateOutcome {
        measured: false,
        features: features.keys().cloned().collect(),
        drift: None,
        message: Some(message),
    }
}

/// Measures `current` against the `fitted` reference over `features`.
pub fn measure(
    features: &FeatureSet,
    fitted: &Result<FittedReference, String>,
    current: &FeatureMatrix,
) -> MultivariateOutcome {
    if let Err(message) = check(features) {
        return not_measured(features, message);
    }
    let measured = match fitted {
        Ok(fitted) => fitted.drift(current).map_err(|e| e.to_string()),
        Err(message) => Err(format!("the reference: {message}")),
    };
    match measured {
        Ok(drift) => MultivariateOutcome {
            measured: true,
            features: features.keys().cloned().collect(),
            drift: Some(drift),
            message: None,
        },
        Err(message) => not_measured(features, message),
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
        let outcome = measure(&one, &fit(&MultivariatePolicy::default(), &m), &m);
        assert!(!outcome.measured && !outcome.drifted());
        assert!(outcome.message.unwrap().contains("at least 2 features"));
    }
}
