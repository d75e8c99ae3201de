//! What one alert asks of modelwatch, given the model's monitoring policy.
//!
//! The rules, in order:
//! 1. A resolved alert is recorded, nothing else.
//! 2. `modelwatch_action` absent or `none`: recorded as ignored.
//! 3. Any other value than `rollback` or `retrain`: refused, naming it.
//! 4. Without a `model` label, or a `version` label that is a version
//!    number: refused.
//! 5. `retrain`: a retrain recommendation on the version.
//! 6. `rollback`: refused unless the model has a monitoring policy with
//!    `rollback_on_alert`; otherwise the alias (the `alias` label, else the
//!    policy's alias) is rolled back — provided it still points at the
//!    alert's version, which the registry checks in the same transaction as
//!    the move (an alert about a version that is no longer deployed must not
//!    move the alias away from its successor).

use serde_json::{Value, json};

use crate::webhook::{Alert, AlertStatus};
use crate::{LABEL_ACTION, LABEL_ALIAS, LABEL_MODEL, LABEL_VERSION};

/// The `modelwatch_action` label's meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Rollback,
    Retrain,
    None,
}

impl Action {
    pub fn parse(label: Option<&str>) -> Result<Action, String> {
        match label {
            None | Some("none") => Ok(Action::None),
            Some("rollback") => Ok(Action::Rollback),
            Some("retrain") => Ok(Action::Retrain),
            Some(other) => Err(format!(
                "label {LABEL_ACTION}={other:?} is not an action modelwatch knows; use rollback, retrain or none"
            )),
        }
    }
}

/// What the decision needs from the model's monitoring policy.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyView {
    /// The alias the policy watches (rolled back when the alert names none).
    pub alias: String,
    pub rollback_on_alert: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Roll `alias` of `model` back, if it still points at `version`.
    Rollback {
        model: String,
        version: i64,
        alias: String,
        reason: String,
    },
    /// Raise (or refresh) a retrain recommendation on the version.
    Retrain {
        model: String,
        version: i64,
        severity: String,
        reason: String,
        evidence: Value,
    },
    /// A resolved alert: recorded.
    Resolved { note: String },
    /// Not for modelwatch to act on: recorded.
    Ignore { reason: String },
    /// Asked of modelwatch but not done: recorded with why.
    Refuse { reason: String },
}

/// The model an alert is about, to look its policy up before [`decide`].
pub fn alert_model(alert: &Alert) -> Option<&str> {
    alert.label(LABEL_MODEL)
}

/// Decides what one alert asks for. `policy` is the monitoring policy of
/// [`alert_model`]'s model, `None` when it has none (or the alert names no
/// model).
pub fn decide(alert: &Alert, policy: Option<&PolicyView>) -> Decision {
    let name = alert.name();
    if alert.status == AlertStatus::Resolved {
        return Decision::Resolved {
            note: format!(
                "alert {name} resolved{}",
                alert
                    .ends_at
                    .map(|t| format!(" at {}", t.to_rfc3339()))
                    .unwrap_or_default()
            ),
        };
    }
    let action = match Action::parse(alert.label(LABEL_ACTION)) {
        Ok(Action::None) => {
            return Decision::Ignore {
                reason: format!("alert {name} asks for no action ({LABEL_ACTION} absent or none)"),
            };
        }
        Ok(a) => a,
        Err(reason) => return Decision::Refuse { reason },
    };
    let Some(model) = alert_model(alert) else {
        return Decision::Refuse {
            reason: format!(
                "alert {name} has no {LABEL_MODEL} label; modelwatch cannot tell which model it is about"
            ),
        };
    };
    let version = match alert.label(LABEL_VERSION).map(str::parse::<i64>) {
        Some(Ok(v)) if v > 0 => v,
        Some(_) => {
            return Decision::Refuse {
                reason: format!(
                    "alert {name}: label {LABEL_VERSION}={:?} is not a version number",
                    alert.label(LABEL_VERSION).unwrap_or_default()
                ),
            };
        }
        None => {
            return Decision::Refuse {
                reason: format!(
                    "alert {name} has no {LABEL_VERSION} label; modelwatch cannot tell which version it is about"
                ),
            };
        }
    };
    let why = describe(alert);
    match action {
        Action::Retrain => Decision::Retrain {
            model: model.into(),
            version,
            severity: match alert.label("severity") {
                Some("critical") | Some("page") => "critical",
                Some("info") => "info",
                _ => "warning",
            }
            .into(),
            reason: why,
            evidence: evidence(alert),
        },
        Action::Rollback => match policy {
            None => Decision::Refuse {
                reason: format!(
                    "model {model:?} has no monitoring policy, so alert-driven rollback is off; \
                     set rollback_on_alert in its policy to allow it"
                ),
            },
            Some(p) if !p.rollback_on_alert => Decision::Refuse {
                reason: format!(
                    "the monitoring policy of model {model:?} does not allow alert-driven rollback \
                     (rollback_on_alert is false)"
                ),
            },
            Some(p) => Decision::Rollback {
                model: model.into(),
                version,
                alias: alert.label(LABEL_ALIAS).unwrap_or(&p.alias).to_string(),
                reason: why,
            },
        },
        Action::None => unreachable!("handled above"),
    }
}

/// "Alertmanager alert X firing since T: summary".
fn describe(alert: &Alert) -> String {
    let mut out = format!(
        "Alertmanager alert {} firing since {}",
        alert.name(),
        alert.starts_at.to_rfc3339()
    );
    if let Some(summary) = alert.annotations.get("summary").filter(|s| !s.is_empty()) {
        out.push_str(": ");
        out.push_str(summary);
    }
    out
}

/// The alert itself, kept as a recommendation's evidence.
pub fn evidence(alert: &Alert) -> Value {
    json!({
        "source": "alertmanager",
        "alertname": alert.name(),
        "fingerprint": alert.fingerprint,
        "starts_at": alert.starts_at,
        "labels": alert.labels,
        "annotations": alert.annotations,
        "generator_url": alert.generator_url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::parse_notification;

    fn alert(labels: &[(&str, &str)], status: AlertStatus) -> Alert {
        let mut a = parse_notification(crate::webhook::tests::SAMPLE.as_bytes())
            .unwrap()
            .alerts
            .remove(0);
        a.labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        a.status = status;
        a
    }

    fn allowing() -> PolicyView {
        PolicyView {
            alias: "production".into(),
            rollback_on_alert: true,
        }
    }

    const ROLLBACK: &[(&str, &str)] = &[
        ("alertname", "Bad"),
        ("model", "fraud"),
        ("version", "2"),
        ("modelwatch_action", "rollback"),
    ];

    #[test]
    fn rollback_when_the_policy_allows_it() {
        let d = decide(&alert(ROLLBACK, AlertStatus::Firing), Some(&allowing()));
        let Decision::Rollback {
            model,
            version,
            alias,
            reason,
        } = d
        else {
            panic!("{d:?}")
        };
        assert_eq!(
            (model.as_str(), version, alias.as_str()),
            ("fraud", 2, "production")
        );
        assert!(
            reason.contains("Alertmanager alert Bad firing since"),
            "{reason}"
        );
        assert!(
            reason.ends_with("Rollback recommended for fraud version 2"),
            "{reason}"
        );
    }

    #[test]
    fn the_alias_label_overrides_the_policy_alias() {
        let mut labels = ROLLBACK.to_vec();
        labels.push(("alias", "champion"));
        let d = decide(&alert(&labels, AlertStatus::Firing), Some(&allowing()));
        assert!(
            matches!(d, Decision::Rollback { ref alias, .. } if alias == "champion"),
            "{d:?}"
        );
    }

    #[test]
    fn rollback_is_refused_without_permission() {
        let a = alert(ROLLBACK, AlertStatus::Firing);
        let d = decide(&a, None);
        assert!(
            matches!(&d, Decision::Refuse { reason } if reason.contains("no monitoring policy")),
            "{d:?}"
        );
        let off = PolicyView {
            rollback_on_alert: false,
            ..allowing()
        };
        let d = decide(&a, Some(&off));
        assert!(
            matches!(&d, Decision::Refuse { reason } if reason.contains("rollback_on_alert is false")),
            "{d:?}"
        );
    }

    #[test]
    fn retrain_needs_no_permission_and_keeps_the_alert_as_evidence() {
        let labels = [
            ("alertname", "Drift"),
            ("model", "churn"),
            ("version", "7"),
            ("modelwatch_action", "retrain"),
            ("severity", "critical"),
        ];
        let d = decide(&alert(&labels, AlertStatus::Firing), None);
        let Decision::Retrain {
            model,
            version,
            severity,
            evidence,
            ..
        } = d
        else {
            panic!("{d:?}")
        };
        assert_eq!(
            (model.as_str(), version, severity.as_str()),
            ("churn", 7, "critical")
        );
        assert_eq!(evidence["fingerprint"], "a1b2c3d4e5f60718");
        assert_eq!(evidence["labels"]["alertname"], "Drift");
    }

    #[test]
    fn resolved_alerts_are_only_recorded() {
        let d = decide(&alert(ROLLBACK, AlertStatus::Resolved), Some(&allowing()));
        assert!(matches!(d, Decision::Resolved { .. }), "{d:?}");
    }

    #[test]
    fn alerts_without_an_action_are_ignored_and_bad_labels_refused() {
        let d = decide(&alert(&[("alertname", "X")], AlertStatus::Firing), None);
        assert!(matches!(d, Decision::Ignore { .. }), "{d:?}");
        let d = decide(
            &alert(
                &[("alertname", "X"), ("modelwatch_action", "none")],
                AlertStatus::Firing,
            ),
            None,
        );
        assert!(matches!(d, Decision::Ignore { .. }), "{d:?}");
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[
                    ("modelwatch_action", "reboot"),
                    ("model", "m"),
                    ("version", "1"),
                ],
                "reboot",
            ),
            (
                &[("modelwatch_action", "rollback"), ("version", "1")],
                "no model label",
            ),
            (
                &[("modelwatch_action", "rollback"), ("model", "m")],
                "no version label",
            ),
            (
                &[
                    ("modelwatch_action", "rollback"),
                    ("model", "m"),
                    ("version", "v2"),
                ],
                "not a version number",
            ),
            (
                &[
                    ("modelwatch_action", "retrain"),
                    ("model", "m"),
                    ("version", "-1"),
                ],
                "not a version number",
            ),
        ];
        for (labels, want) in cases {
            let d = decide(&alert(labels, AlertStatus::Firing), Some(&allowing()));
            assert!(
                matches!(&d, Decision::Refuse { reason } if reason.contains(want)),
                "{labels:?}: {d:?}"
            );
        }
    }
}
