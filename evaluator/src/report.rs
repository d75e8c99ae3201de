//! What a cycle reports (the reply of `POST /api/v1/evaluate`). Field names
//! and the words of the enums are a public API.

use chrono::{DateTime, Utc};
use modelwatch_types::RecommendationKind;
use serde::Serialize;
use utoipa::ToSchema;

use crate::decision::{Change, Outcome, Verdict};

/// What one cycle did, per watched version.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct CycleReport {
    pub started_at: DateTime<Utc>,
    pub duration_ms: f64,
    pub versions: Vec<VersionOutcome>,
}

/// One watched alias's evaluation.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VersionOutcome {
    pub model: String,
    pub alias: String,
    /// The alias's target; absent when the alias is not set.
    pub version: Option<i64>,
    pub status: Outcome,
    /// Why, for anything but `evaluated`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evaluation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drifted_share: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset_drift: Option<bool>,
    pub consecutive_drifted: u32,
    pub drifted_features: Vec<String>,
    /// Rollback judge's verdict, absent when not judged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback_verdict: Option<Verdict>,
    /// Recommendations raised, refreshed, applied or superseded.
    pub recommendations: Vec<RecommendationAction>,
    /// Realized performance, when the policy asks for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub performance: Option<PerformanceOutcome>,
    /// Tested features' data-quality measures beyond the policy's
    /// `data_quality` limits.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub data_quality_breaches: Vec<crate::decision::QualityBreach>,
    /// What became of the fairness assessment, per attribute.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fairness: Option<FairnessOutcome>,
    /// What each of the policy's anomaly detectors found.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub anomalies: Vec<crate::anomalies::AnomalyOutcome>,
    /// Multivariate drift, with `multivariate` in the policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multivariate: Option<crate::multivariate::MultivariateOutcome>,
}

/// What became of the estimation without labels (CBPE or DLE).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct EstimateOutcome {
    /// Estimated figures were stored in `performance_results`
    /// (`estimated = true`).
    pub measured: bool,
    /// The window's rows with a score (a prediction for DLE).
    pub rows: u64,
    /// `cbpe` (classification) or `dle` (regression), when measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<&'static str>,
    /// CBPE's `isotonic` or `none`, when measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calibration: Option<&'static str>,
    /// Why not, when not measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What became of the fairness assessment: per attribute, the rows
/// compared, the disparate-impact ratio, or why there are no figures.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct FairnessOutcome {
    /// Figures were stored in `fairness_results`.
    pub assessed: bool,
    /// Attributes under the policy's `min_disparate_impact_ratio`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub breaches: Vec<crate::fairness::FairnessBreach>,
    #[schema(value_type = Vec<Object>)]
    pub attributes: Vec<crate::fairness::AttributeFairness>,
}

/// What became of the realized-performance measurement.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PerformanceOutcome {
    /// Figures were computed and stored in `performance_results`.
    pub measured: bool,
    pub rows: u64,
    pub labelled_rows: u64,
    /// Labels of the window that arrived after their inference
    /// (`delayed_labels`, joined on `inference_id`).
    pub delayed_labels: u64,
    /// Whole-window figures beyond the policy's `minimums` / `maximums`
    /// (of the realized figures, else of the estimated ones).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub breaches: Vec<crate::decision::Breach>,
    /// The estimation without labels, with `estimate` in the policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimate: Option<EstimateOutcome>,
    /// Why not, when not measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl VersionOutcome {
    /// An outcome with nothing measured yet.
    pub fn new(model: &str, alias: &str, status: Outcome) -> Self {
        VersionOutcome {
            model: model.to_string(),
            alias: alias.to_string(),
            version: None,
            status,
            message: None,
            evaluation_id: None,
            drifted_share: None,
            dataset_drift: None,
            consecutive_drifted: 0,
            drifted_features: Vec::new(),
            rollback_verdict: None,
            recommendations: Vec::new(),
            performance: None,
            data_quality_breaches: Vec::new(),
            fairness: None,
            anomalies: Vec::new(),
            multivariate: None,
        }
    }
}

/// One change to a recommendation.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RecommendationAction {
    pub id: i64,
    pub version: i64,
    pub kind: RecommendationKind,
    pub action: Change,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The reply's words are what dashboards, scripts and the e2e tests
    /// read: the enums serialise to the strings they replaced.
    #[test]
    fn outcomes_serialise_to_their_public_words() {
        let mut o = VersionOutcome::new("m", "production", Outcome::NotEnoughData);
        o.rollback_verdict = Some(Verdict::Fail);
        o.recommendations.push(RecommendationAction {
            id: 1,
            version: 2,
            kind: RecommendationKind::Rollback,
            action: Change::Updated,
        });
        let v = serde_json::to_value(&o).unwrap();
        assert_eq!(v["status"], "not_enough_data");
        assert_eq!(v["rollback_verdict"], "fail");
        assert_eq!(
            v["recommendations"],
            json!([{"id": 1, "version": 2, "kind": "rollback", "action": "updated"}])
        );
        assert!(v.get("message").is_none());
        for o in Outcome::ALL {
            assert_eq!(serde_json::to_value(o).unwrap(), o.as_str());
        }
        for v in Verdict::ALL {
            assert_eq!(serde_json::to_value(v).unwrap(), v.as_str());
        }
        for c in Change::ALL {
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
        let words: Vec<&str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
        assert_eq!(
            words,
            [
                "evaluated",
                "not_enough_data",
                "baseline_pending",
                "no_alias",
                "error"
            ]
        );
    }

    /// `POST /api/v1/evaluate`'s OpenAPI document names the words.
    #[test]
    fn the_openapi_schema_lists_the_words() {
        use utoipa::OpenApi;
        #[derive(OpenApi)]
        #[openapi(components(schemas(CycleReport)))]
        struct Doc;
        let doc = serde_json::to_value(Doc::openapi()).unwrap();
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["Outcome"]["enum"],
            json!([
                "evaluated",
                "not_enough_data",
                "baseline_pending",
                "no_alias",
                "error"
            ]),
            "{schemas:#}"
        );
        assert_eq!(
            schemas["Verdict"]["enum"],
            json!(["pass", "fail", "marginal", "pending", "not_enough_data"])
        );
        assert_eq!(
            schemas["Change"]["enum"],
            json!(["raised", "updated", "applied", "superseded"])
        );
    }
}
