//! The Alertmanager webhook payload, version 4, and its validation.
//!
//! Alertmanager retries a notification that got a 5xx and never one that
//! got a 4xx, so every problem found here is the sender's and is reported as
//! a [`PayloadError`] naming the field; the daemon answers it with 400.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Largest payload accepted. Alertmanager sends at most `max_alerts` alerts
/// per notification (unbounded by default); a group of a few thousand
/// alerts with their annotations fits well below this.
pub const MAX_PAYLOAD_BYTES: usize = 4 << 20;
/// Most alerts handled from one notification.
pub const MAX_ALERTS: usize = 1000;
/// Longest fingerprint accepted (Alertmanager's are 16 hex digits).
const MAX_FINGERPRINT: usize = 128;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PayloadError {
    #[error(
        "the payload is empty; expected an Alertmanager webhook notification (JSON, version 4)"
    )]
    Empty,
    #[error(
        "the payload is {size} bytes, more than the {max} accepted; lower `max_alerts` in the Alertmanager webhook_config"
    )]
    TooLarge { size: usize, max: usize },
    #[error("the payload is not an Alertmanager webhook notification: {0}")]
    Json(String),
    #[error(
        "unsupported webhook payload version {0:?}; modelwatch understands version \"4\" (Alertmanager 0.16 and later)"
    )]
    Version(String),
    #[error(
        "the notification has {0} alerts, more than the {MAX_ALERTS} handled at once; set `max_alerts` in the Alertmanager webhook_config"
    )]
    TooManyAlerts(usize),
    #[error("alert {index}: {detail}")]
    Alert { index: usize, detail: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
}

/// One notification: a group of alerts sharing the route's `group_by`
/// labels. Only the fields modelwatch uses are kept.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub version: String,
    #[serde(default)]
    pub group_key: String,
    #[serde(default)]
    pub truncated_alerts: u64,
    pub status: AlertStatus,
    #[serde(default)]
    pub receiver: String,
    #[serde(default, rename = "externalURL")]
    pub external_url: String,
    pub alerts: Vec<Alert>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub status: AlertStatus,
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub starts_at: DateTime<Utc>,
    /// Alertmanager sends `0001-01-01T00:00:00Z` while an alert fires.
    #[serde(default)]
    pub ends_at: Option<DateTime<Utc>>,
    #[serde(default, rename = "generatorURL")]
    pub generator_url: String,
    pub fingerprint: String,
}

impl Alert {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The alert's `alertname` label, or `"unnamed"`.
    pub fn name(&self) -> &str {
        self.label("alertname").unwrap_or("unnamed")
    }
}

/// Parses and checks one webhook body.
pub fn parse_notification(body: &[u8]) -> Result<Notification, PayloadError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(PayloadError::Empty);
    }
    if body.len() > MAX_PAYLOAD_BYTES {
        return Err(PayloadError::TooLarge {
            size: body.len(),
            max: MAX_PAYLOAD_BYTES,
        });
    }
    // The version first, so a payload of another version gets that message
    // rather than a complaint about a field it lacks.
    #[derive(Deserialize)]
    struct Versioned {
        version: Option<serde_json::Value>,
    }
    let versioned: Versioned =
        serde_json::from_slice(body).map_err(|e| PayloadError::Json(e.to_string()))?;
    match versioned.version {
        Some(serde_json::Value::String(v)) if v == "4" => {}
        Some(serde_json::Value::String(v)) => return Err(PayloadError::Version(v)),
        Some(other) => return Err(PayloadError::Version(other.to_string())),
        None => {
            return Err(PayloadError::Json(
                "missing field `version` (expected \"4\")".into(),
            ));
        }
    }
    let n: Notification =
        serde_json::from_slice(body).map_err(|e| PayloadError::Json(e.to_string()))?;
    if n.alerts.len() > MAX_ALERTS {
        return Err(PayloadError::TooManyAlerts(n.alerts.len()));
    }
    for (index, a) in n.alerts.iter().enumerate() {
        let bad = |detail: String| PayloadError::Alert { index, detail };
        if a.fingerprint.is_empty() || a.fingerprint.len() > MAX_FINGERPRINT {
            return Err(bad(format!(
                "fingerprint must be 1 to {MAX_FINGERPRINT} characters (got {})",
                a.fingerprint.len()
            )));
        }
        if !a
            .fingerprint
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(bad(format!(
                "fingerprint {:?} must be letters, digits, '-' or '_'",
                a.fingerprint
            )));
        }
    }
    Ok(n)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A notification as Alertmanager 0.25 sends it, with a field modelwatch
    /// does not know (`futureField`), which must be ignored.
    pub(crate) const SAMPLE: &str = r#"{
      "receiver": "modelwatch",
      "status": "firing",
      "alerts": [{
        "status": "firing",
        "labels": {"alertname": "ModelwatchRollbackRecommended", "model": "fraud",
                   "version": "2", "modelwatch_action": "rollback", "severity": "critical"},
        "annotations": {"summary": "Rollback recommended for fraud version 2"},
        "startsAt": "2026-11-27T12:00:00.123Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=x",
        "fingerprint": "a1b2c3d4e5f60718",
        "futureField": {"nested": true}
      }],
      "groupLabels": {"alertname": "ModelwatchRollbackRecommended"},
      "commonLabels": {"alertname": "ModelwatchRollbackRecommended"},
      "commonAnnotations": {},
      "externalURL": "http://alertmanager:9093",
      "version": "4",
      "groupKey": "{}/{modelwatch_action=~\"rollback|retrain\"}:{alertname=\"x\"}",
      "truncatedAlerts": 0
    }"#;

    #[test]
    fn parses_a_real_notification_and_ignores_unknown_fields() {
        let n = parse_notification(SAMPLE.as_bytes()).unwrap();
        assert_eq!(n.status, AlertStatus::Firing);
        assert_eq!(n.receiver, "modelwatch");
        assert_eq!(n.external_url, "http://alertmanager:9093");
        let a = &n.alerts[0];
        assert_eq!(a.fingerprint, "a1b2c3d4e5f60718");
        assert_eq!(a.name(), "ModelwatchRollbackRecommended");
        assert_eq!(a.label("model"), Some("fraud"));
        assert_eq!(a.starts_at.to_rfc3339(), "2026-11-27T12:00:00.123+00:00");
    }

    #[test]
    fn truncated_input_is_a_json_error() {
        for cut in [1, 10, SAMPLE.len() / 2, SAMPLE.len() - 2] {
            let err = parse_notification(&SAMPLE.as_bytes()[..cut]).unwrap_err();
            assert!(matches!(err, PayloadError::Json(_)), "cut {cut}: {err:?}");
        }
    }

    #[test]
    fn garbage_empty_and_oversized_input_are_refused() {
        assert_eq!(parse_notification(b"").unwrap_err(), PayloadError::Empty);
        assert_eq!(parse_notification(b" \n").unwrap_err(), PayloadError::Empty);
        assert!(matches!(
            parse_notification(b"\x00\xff\x13garbage").unwrap_err(),
            PayloadError::Json(_)
        ));
        assert!(matches!(
            parse_notification(b"[1,2,3]").unwrap_err(),
            PayloadError::Json(_)
        ));
        let big = vec![b' '; MAX_PAYLOAD_BYTES + 1];
        let mut big = big;
        big[0] = b'{';
        assert!(matches!(
            parse_notification(&big).unwrap_err(),
            PayloadError::TooLarge { .. }
        ));
    }

    #[test]
    fn other_versions_and_missing_fields_are_named() {
        let v3 = SAMPLE.replace(r#""version": "4""#, r#""version": "3""#);
        assert_eq!(
            parse_notification(v3.as_bytes()).unwrap_err(),
            PayloadError::Version("3".into())
        );
        let err = parse_notification(br#"{"status": "firing", "alerts": []}"#).unwrap_err();
        assert!(err.to_string().contains("version"), "{err}");
        let no_alerts = SAMPLE.replace(r#""alerts""#, r#""alarms""#);
        let err = parse_notification(no_alerts.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("alerts"), "{err}");
        let bad_time = SAMPLE.replace("2026-11-27T12:00:00.123Z", "yesterday");
        assert!(matches!(
            parse_notification(bad_time.as_bytes()).unwrap_err(),
            PayloadError::Json(_)
        ));
        let bad_status = SAMPLE.replace(
            r#""status": "firing",
        "labels""#,
            r#""status": "burning",
        "labels""#,
        );
        assert!(matches!(
            parse_notification(bad_status.as_bytes()).unwrap_err(),
            PayloadError::Json(_)
        ));
    }

    #[test]
    fn fingerprints_are_checked() {
        for fp in ["", "../../etc", &"a".repeat(200)] {
            let body = SAMPLE.replace("a1b2c3d4e5f60718", fp);
            let err = parse_notification(body.as_bytes()).unwrap_err();
            assert!(
                matches!(err, PayloadError::Alert { index: 0, .. }),
                "{fp:?}: {err:?}"
            );
        }
    }

    #[test]
    fn too_many_alerts_are_refused() {
        let n: serde_json::Value = serde_json::from_str(SAMPLE).unwrap();
        let mut n = n;
        let one = n["alerts"][0].clone();
        n["alerts"] = serde_json::Value::Array(vec![one; MAX_ALERTS + 1]);
        let body = serde_json::to_vec(&n).unwrap();
        assert_eq!(
            parse_notification(&body).unwrap_err(),
            PayloadError::TooManyAlerts(MAX_ALERTS + 1)
        );
    }
}
