//! Promotion gates: a model's Rego policy decides whether a version may take
//! an alias (`production`, …). This module builds the policy's input
//! document from the registry and the drift history, runs the evaluation
//! ([`rego`], on a blocking thread), and promotes: evaluate, then move the
//! alias only when allowed, with the decision in the move's audit entry.
//!
//! It must not store anything itself (policies and moves go through
//! `RegistryStore`, audited there; a denial is recorded there as a
//! `gate.denied` entry) nor talk HTTP; handlers in `http/gates.rs` stay
//! thin around it.
//!
//! Input document (documented with an example in `docs/gates.md`):
//! `model` (the model record), `version` (the full version record: lineage,
//! tags, status, health, open recommendations, metadata), `lineage`,
//! `metrics` and `metadata` (shortcuts into it), `alias` (the target alias, or null), `aliases`
//! (alias → version), `drift` (the version's newest `drift_results`
//! evaluation with `age_seconds`, or null) and `recommendations` (the
//! version's open recommendations).

pub mod rego;

use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::{Value, json};

use modelwatch_history::HistoryStore;
use modelwatch_registry::audit::AuditEvent;
use modelwatch_registry::{Actor, GateApproval, RegistryStore, validate};
pub use modelwatch_types::records::{GateReport, Promotion};

pub use rego::{Decision, PolicyError};

/// Why a gate could not be evaluated, or refused a promotion.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error(transparent)]
    Registry(#[from] modelwatch_registry::Error),
    #[error("reading the version's latest drift evaluation failed: {0}")]
    Drift(#[from] crate::sql::SqlError),
    /// A policy offered for upload is not acceptable; nothing was stored.
    #[error("{0}; nothing was stored")]
    InvalidPolicy(PolicyError),
    /// The stored policy could not decide on this version.
    #[error(
        "the gate policy of model {model:?} could not decide on version {version}: {source}; fix the policy with PUT /api/v1/models/{model}/gate-policy"
    )]
    PolicyFailed {
        model: String,
        version: i64,
        source: PolicyError,
    },
    /// The gate denied a promotion; nothing was moved.
    #[error("{}", denied_message(.0))]
    Denied(Box<GateReport>),
    /// The blocking evaluation thread failed (a panic in the evaluator).
    #[error("the gate evaluation thread failed: {0}")]
    Thread(String),
}

fn denied_message(report: &GateReport) -> String {
    format!(
        "the gate denied version {} of model {:?} for alias {:?} (policy sha256 {}): {}; nothing was moved",
        report.version,
        report.model,
        report.alias.as_deref().unwrap_or_default(),
        report.policy_sha256.as_deref().unwrap_or("none"),
        report.reasons.join("; ")
    )
}

/// A blank but complete input document: what uploads are test-evaluated on,
/// and the shape `docs/gates.md` documents.
pub fn example_input() -> Value {
    json!({
        "model": {"name": "fraud", "description": "", "owner": "risk", "tags": {},
                  "latest_version": 2, "aliases": {"production": 1},
                  "created_at": "2026-11-27T12:00:00Z", "updated_at": "2026-11-27T12:00:00Z"},
        "version": {"model": "fraud", "version": 2, "description": "", "source_uri": null,
                    "artifact_digest": null, "run_id": null,
                    "lineage": {"training_data": [], "parameters": {}, "metrics": {}},
                    "tags": {}, "features": {}, "reference_uri": null, "metadata": {},
                    "status": "ready",
                    "aliases": [], "health": null, "recommendations": [],
                    "created_by": "ci", "created_at": "2026-11-27T12:00:00Z",
                    "updated_at": "2026-11-27T12:00:00Z"},
        "lineage": {"training_data": [], "parameters": {}, "metrics": {}},
        "metrics": {},
        "metadata": {},
        "alias": "production",
        "aliases": {"production": 1},
        "drift": null,
        "performance": null,
        "recommendations": []
    })
}

/// Builds the input document for `version` of `model` (see the module doc).
pub async fn input(
    registry: &dyn RegistryStore,
    history: &HistoryStore,
    model: &str,
    version: i64,
    alias: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Value, GateError> {
    let model_record = registry.get_model(model).await?;
    let record = registry.get_version(model, version).await?;
    let ctx = history
        .session_context()
        .map_err(|e| crate::sql::SqlError::Internal(e.to_string()))?;
    // Policies have no clock (regorus's time builtins are not compiled in):
    // each evaluation's age is given.
    let aged = |mut newest: Option<Value>| {
        if let Some(v) = newest.as_mut()
            && let Some(at) = v["ts"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        {
            v["age_seconds"] = json!((now - at.with_timezone(&Utc)).num_seconds());
        }
        newest
    };
    use crate::evaluator::results::{
        latest_data_quality, latest_evaluation, latest_fairness, latest_multivariate,
        latest_performance,
    };
    let drift = aged(latest_evaluation(&ctx, model, version).await?);
    let data_quality = aged(latest_data_quality(&ctx, model, version).await?);
    let performance = aged(latest_performance(&ctx, model, version).await?);
    let fairness = aged(latest_fairness(&ctx, model, version).await?);
    let multivariate = aged(latest_multivariate(&ctx, model, version).await?);
    Ok(json!({
        "model": model_record,
        "lineage": record.lineage,
        "metrics": record.lineage.metrics,
        "metadata": record.metadata,
        "alias": alias,
        "aliases": model_record.aliases,
        "drift": drift,
        "performance": performance,
        "fairness": fairness,
        "data_quality": data_quality,
        "multivariate": multivariate,
        "recommendations": record.recommendations,
        "version": record,
    }))
}

/// Checks a policy offered for upload on a blocking thread.
pub async fn check_policy(rego: String) -> Result<(), GateError> {
    tokio::task::spawn_blocking(move || rego::check(&rego))
        .await
        .map_err(|e| GateError::Thread(e.to_string()))?
        .map_err(GateError::InvalidPolicy)
}

/// Evaluates the model's gate on a version. Without a gate policy every
/// version is allowed, with a warning saying so.
#[tracing::instrument(name = "gate", skip(registry, history, now))]
pub async fn evaluate(
    registry: &Arc<dyn RegistryStore>,
    history: &HistoryStore,
    model: &str,
    version: i64,
    alias: Option<&str>,
    now: DateTime<Utc>,
) -> Result<GateReport, GateError> {
    if let Some(alias) = alias {
        validate::alias_name(alias)?;
    }
    let input = input(registry.as_ref(), history, model, version, alias, now).await?;
    let policy = match registry.get_gate_policy(model).await {
        Ok(p) => Some(p),
        Err(modelwatch_registry::Error::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let (decision, policy_sha256) = match policy {
        None => (
            Decision {
                allowed: true,
                reasons: Vec::new(),
                warnings: vec![format!(
                    "model {model:?} has no gate policy, so every version passes; set one with PUT /api/v1/models/{model}/gate-policy"
                )],
            },
            None,
        ),
        Some(policy) => {
            let (rego, doc) = (policy.rego, input.clone());
            let decision = tokio::task::spawn_blocking(move || rego::evaluate(&rego, &doc))
                .await
                .map_err(|e| GateError::Thread(e.to_string()))?
                .map_err(|source| GateError::PolicyFailed {
                    model: model.to_string(),
                    version,
                    source,
                })?;
            (decision, Some(policy.sha256))
        }
    };
    tracing::info!(
        model,
        version,
        alias,
        allowed = decision.allowed,
        reasons = decision.reasons.len(),
        policy_sha256 = policy_sha256.as_deref().unwrap_or("none"),
        "gate evaluated"
    );
    Ok(GateReport {
        model: model.to_string(),
        version,
        alias: alias.map(str::to_string),
        allowed: decision.allowed,
        reasons: decision.reasons,
        warnings: decision.warnings,
        policy_sha256,
        // Microseconds, like every registry timestamp.
        evaluated_at: now.trunc_subsecs(6),
        input,
    })
}

/// [`evaluate`] on behalf of `actor` (the API's and the UI's gate checks):
/// a denial is recorded in the audit chain as `gate.denied`.
pub async fn evaluate_for(
    registry: &Arc<dyn RegistryStore>,
    history: &HistoryStore,
    actor: &Actor,
    model: &str,
    version: i64,
    alias: Option<&str>,
    now: DateTime<Utc>,
) -> Result<GateReport, GateError> {
    let report = evaluate(registry, history, model, version, alias, now).await?;
    if !report.allowed {
        record_denial(registry.as_ref(), actor, &report, false).await;
    }
    Ok(report)
}

/// Audits a denial. A failure to record it is logged, and the denial
/// still stands: nothing moved either way.
async fn record_denial(
    registry: &dyn RegistryStore,
    actor: &Actor,
    report: &GateReport,
    promotion: bool,
) {
    let event = AuditEvent::GateDenied {
        model: report.model.clone(),
        version: report.version,
        alias: report.alias.clone(),
        promotion,
        reasons: report.reasons.clone(),
        policy_sha256: report.policy_sha256.clone(),
    };
    if let Err(e) = registry.record_audit(actor, &event).await {
        tracing::warn!(error = %e, model = %report.model, version = report.version, "cannot audit a denied gate decision");
    }
}

/// Evaluates the gate for `alias` and moves the alias to `version` only if
/// it allows; the move's audit entry records the policy digest and
/// warnings. Denied: [`GateError::Denied`], nothing moved.
#[allow(clippy::too_many_arguments)]
#[tracing::instrument(name = "promote", skip(registry, history, actor, reason, now), fields(actor = %actor.name))]
pub async fn promote(
    registry: &Arc<dyn RegistryStore>,
    history: &HistoryStore,
    actor: &Actor,
    model: &str,
    version: i64,
    alias: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Promotion, GateError> {
    let gate = evaluate(registry, history, model, version, Some(alias), now).await?;
    if !gate.allowed {
        record_denial(registry.as_ref(), actor, &gate, true).await;
        return Err(GateError::Denied(Box::new(gate)));
    }
    let approval = GateApproval {
        policy_sha256: gate.policy_sha256.clone(),
        warnings: gate.warnings.clone(),
    };
    let alias = registry
        .promote_alias(actor, model, alias, version, reason, &approval)
        .await?;
    Ok(Promotion { alias, gate })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `example_input()` with the top-level keys of `patch` replaced, and
    /// `version.tags` / `version.status` from `tags` / `status`.
    fn input_with(patch: Value) -> Value {
        let mut input = example_input();
        for (k, v) in patch.as_object().unwrap() {
            match k.as_str() {
                "tags" => input["version"]["tags"] = v.clone(),
                "status" => input["version"]["status"] = v.clone(),
                _ => input[k] = v.clone(),
            }
        }
        input
    }

    fn good_lineage() -> Value {
        json!({"training_data": [{"uri": "s3://data/train.parquet", "digest": format!("sha256:{}", "a".repeat(64))}],
               "code_commit": "4f248b6", "parameters": {}, "metrics": {"auc": 0.91, "recall": 0.7}})
    }

    fn rollback() -> Value {
        json!([{"id": 7, "kind": "rollback", "status": "open", "reason": "p95 latency doubled"}])
    }

    fn drifted() -> Value {
        json!({"evaluation_id": "fraud/2/t", "dataset_drift": true, "drifted_features": ["amount"],
               "drifted_share": 1.0, "age_seconds": 60, "features": {}})
    }

    /// Every example policy in `policies/gates/`, with one input it allows
    /// and one it denies (and a piece of the expected reason), so the
    /// examples cannot rot.
    #[test]
    fn every_example_policy_allows_and_denies() {
        let lineage = good_lineage();
        let metrics = lineage["metrics"].clone();
        let cases: Vec<(&str, Value, Value, &str)> = vec![
            (
                "min_metric.rego",
                json!({"metrics": metrics}),
                json!({"metrics": {"auc": 0.72, "recall": 0.9}}),
                "\"auc\" is 0.72, below the minimum 0.8",
            ),
            (
                "min_realized_performance.rego",
                json!({"performance": {"labelled_rows": 900, "age_seconds": 60,
                                       "metrics": {"roc_auc": 0.93, "accuracy": 0.9}}}),
                json!({"performance": {"labelled_rows": 900, "age_seconds": 60,
                                       "metrics": {"roc_auc": 0.71, "accuracy": 0.9}}}),
                "realized roc_auc is 0.71, below the minimum 0.8",
            ),
            (
                "four_fifths_rule.rego",
                json!({"fairness": {"age_seconds": 60, "attributes": {
                    "gender": {"disparate_impact_ratio": 0.9, "rows": 900, "groups": {}}}}}),
                json!({"fairness": {"age_seconds": 60, "attributes": {
                    "gender": {"disparate_impact_ratio": 0.5, "rows": 900, "groups": {}}}}}),
                "disparate impact ratio for gender is 0.5, below the four-fifths rule's 0.8",
            ),
            (
                "no_data_quality_breach.rego",
                json!({"data_quality": {"age_seconds": 60, "features": {
                    "amount": {"missing_share": 0.01, "type_mismatch_share": 0.0,
                               "out_of_range_share": 0.02},
                    "country": {"missing_share": 0.0, "type_mismatch_share": 0.0,
                                "unseen_share": 0.0}}}}),
                json!({"data_quality": {"age_seconds": 60, "features": {
                    "amount": {"missing_share": 0.3, "type_mismatch_share": 0.0,
                               "out_of_range_share": 0.02}}}}),
                "amount: missing_share is 0.3, above 0.05",
            ),
            (
                "no_open_rollback.rego",
                json!({"recommendations": []}),
                json!({"recommendations": rollback()}),
                "open rollback recommendation 7: p95 latency doubled",
            ),
            (
                "lineage_present.rego",
                json!({"lineage": lineage}),
                json!({"lineage": {"training_data": [{"uri": "s3://data/train.parquet"}]}}),
                "training data \"s3://data/train.parquet\" has no digest",
            ),
            (
                "model_card_and_signature.rego",
                json!({"metadata": {
                    "signature": {"inputs": [{"name": "amount", "type": "double"}], "outputs": []},
                    "model_card": {"intended_use": "card fraud scoring",
                                   "limitations": "not for wire transfers"}}}),
                json!({"metadata": {
                    "signature": {"inputs": [{"name": "amount", "type": "double"}], "outputs": []},
                    "model_card": {"intended_use": "card fraud scoring", "limitations": ""}}}),
                "the model card has no limitations",
            ),
            (
                "license_allowlist.rego",
                json!({"tags": {"license": "Apache-2.0"}}),
                json!({"tags": {"license": "GPL-3.0"}}),
                "license \"GPL-3.0\" is not allowed",
            ),
            (
                "combined.rego",
                json!({"metrics": metrics, "lineage": lineage, "tags": {"license": "MIT"},
                       "drift": {"dataset_drift": false, "age_seconds": 60}}),
                json!({"metrics": metrics, "lineage": lineage, "tags": {"license": "MIT"},
                       "drift": drifted()}),
                "found drift in [\"amount\"]",
            ),
        ];
        let dir = std::path::Path::new(
            &std::env::var("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string()),
        )
        .join("../policies/gates");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|f| f.ends_with(".rego"))
            .collect();
        files.sort();
        let mut covered: Vec<String> = cases.iter().map(|c| c.0.to_string()).collect();
        covered.sort();
        assert_eq!(files, covered, "every example needs a case here");

        for (file, allow, deny, reason) in cases {
            let rego = std::fs::read_to_string(dir.join(file)).unwrap();
            rego::check(&rego).unwrap_or_else(|e| panic!("{file}: {e}"));
            let d = rego::evaluate(&rego, &input_with(allow)).unwrap();
            assert!(d.allowed, "{file} should allow: {:?}", d.reasons);
            let d = rego::evaluate(&rego, &input_with(deny)).unwrap();
            assert!(!d.allowed, "{file} should deny");
            assert!(
                d.reasons.iter().any(|r| r.contains(reason)),
                "{file}: {:?} lacks {reason:?}",
                d.reasons
            );
        }
    }

    #[test]
    fn the_combined_example_checks_drift_only_for_production_and_warns() {
        let rego = std::fs::read_to_string(format!(
            "{}/../policies/gates/combined.rego",
            std::env::var("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string())
        ))
        .unwrap();
        let lineage = good_lineage();
        let base = json!({"metrics": lineage["metrics"], "lineage": lineage, "tags": {"license": "internal"},
                          "drift": drifted(), "alias": "staging"});
        let d = rego::evaluate(&rego, &input_with(base.clone())).unwrap();
        assert!(d.allowed, "{:?}", d.reasons);
        let mut never = base.clone();
        never["drift"] = Value::Null;
        let d = rego::evaluate(&rego, &input_with(never)).unwrap();
        assert_eq!(
            d.warnings,
            ["the version has never been evaluated for drift"]
        );
        let mut archived = base;
        archived["status"] = json!("archived");
        archived["recommendations"] = rollback();
        let d = rego::evaluate(&rego, &input_with(archived)).unwrap();
        assert_eq!(d.reasons.len(), 2, "{:?}", d.reasons);
    }

    #[test]
    fn the_denial_message_lists_every_reason() {
        let report = GateReport {
            model: "fraud".into(),
            version: 2,
            alias: Some("production".into()),
            allowed: false,
            reasons: vec!["a".into(), "b".into()],
            warnings: vec![],
            policy_sha256: Some("abc".into()),
            evaluated_at: Utc::now(),
            input: Value::Null,
        };
        let text = GateError::Denied(Box::new(report)).to_string();
        assert!(
            text.contains("version 2 of model \"fraud\" for alias \"production\""),
            "{text}"
        );
        assert!(
            text.contains("(policy sha256 abc): a; b; nothing was moved"),
            "{text}"
        );
    }
}
