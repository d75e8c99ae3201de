//! The Alertmanager receiver's logic: a webhook notification (version 4) in,
//! one registry action per alert out (see `modelwatch_alerts::decision` for
//! the rules and `modelwatch_registry::alert_notices` for the transaction
//! that re-checks, acts, records and audits).
//!
//! It must not answer Alertmanager with a 5xx for anything Alertmanager can
//! fix (that would make it retry for hours): bad payloads are
//! [`AlertsError::Payload`] (400); refusals are recorded outcomes (200).

use modelwatch_alerts::{Decision, PolicyView, decision};
use modelwatch_registry::{
    Actor, AlertAction, AlertHandled, AlertNotice, AlertOutcome, Error as RegistryError,
    NewRecommendation, RecommendationKind, RegistryStore, Severity,
};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum AlertsError {
    #[error(transparent)]
    Payload(#[from] modelwatch_alerts::PayloadError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// The receiver's reply: what became of each alert of the notification.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationReport {
    pub receiver: String,
    pub alerts: Vec<AlertHandled>,
}

/// Handles one webhook body from Alertmanager, acting as `actor`.
pub async fn handle_notification(
    registry: &dyn RegistryStore,
    actor: &Actor,
    body: &[u8],
) -> Result<NotificationReport, AlertsError> {
    let notification = modelwatch_alerts::parse_notification(body)?;
    let mut handled = Vec::with_capacity(notification.alerts.len());
    for alert in &notification.alerts {
        let model = decision::alert_model(alert);
        let policy = match model {
            Some(m) => match registry.get_policy(m).await {
                Ok(rec) => Some(PolicyView {
                    alias: rec.policy.alias,
                    rollback_on_alert: rec.policy.rollback_on_alert,
                }),
                Err(RegistryError::NotFound { .. }) => None,
                Err(e) => return Err(e.into()),
            },
            None => None,
        };
        let action = match modelwatch_alerts::decide(alert, policy.as_ref()) {
            Decision::Rollback {
                model,
                version,
                alias,
                reason,
            } => AlertAction::Rollback {
                model,
                alias,
                version,
                reason,
            },
            Decision::Retrain {
                model,
                version,
                severity,
                reason,
                evidence,
            } => AlertAction::Recommend {
                model,
                version,
                recommendation: NewRecommendation {
                    kind: RecommendationKind::Retrain,
                    severity: severity.parse().unwrap_or(Severity::Warning),
                    reason,
                    evidence,
                },
            },
            Decision::Resolved { note } => AlertAction::Record {
                outcome: AlertOutcome::Resolved,
                detail: note,
            },
            Decision::Ignore { reason } => AlertAction::Record {
                outcome: AlertOutcome::Ignored,
                detail: reason,
            },
            Decision::Refuse { reason } => AlertAction::Record {
                outcome: AlertOutcome::Refused,
                detail: reason,
            },
        };
        let notice = AlertNotice {
            fingerprint: alert.fingerprint.clone(),
            starts_at: alert.starts_at,
            status: alert.status.as_str().to_string(),
            alert_name: alert.name().to_string(),
            model: model.map(str::to_string),
            version: alert
                .label(modelwatch_alerts::LABEL_VERSION)
                .and_then(|v| v.parse().ok()),
            alert: serde_json::to_value(alert).unwrap_or_default(),
        };
        let result = registry.record_alert(actor, notice, action).await?;
        let outcome = if result.duplicate {
            crate::metrics::DUPLICATE_ALERT
        } else {
            result.record.outcome.as_str()
        };
        crate::metrics::record_alert_notification(outcome);
        let r = &result.record;
        match (result.duplicate, r.outcome) {
            (true, _) => tracing::debug!(fingerprint = %r.fingerprint, "alert state seen before"),
            (false, AlertOutcome::RolledBack | AlertOutcome::Recommended) => {
                tracing::warn!(alert = %r.alert_name, fingerprint = %r.fingerprint, model = ?r.model, version = ?r.version, outcome = r.outcome.as_str(), detail = %r.detail, "alert acted on")
            }
            (false, _) => {
                tracing::info!(alert = %r.alert_name, fingerprint = %r.fingerprint, model = ?r.model, version = ?r.version, outcome = r.outcome.as_str(), detail = %r.detail, "alert recorded")
            }
        }
        handled.push(result);
    }
    Ok(NotificationReport {
        receiver: notification.receiver,
        alerts: handled,
    })
}
