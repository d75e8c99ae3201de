//! Anomalies on the watched version's metrics: each detector a policy
//! names runs over its metric's series in the current window, decided
//! without I/O. The scheduler reads the series
//! ([`crate::TelemetryReader::metric_series`]), calls [`detect`] and stores
//! the breaching points ([`crate::ResultsSink::write_anomalies`]).

use chrono::{DateTime, Utc};
use modelwatch_drift::anomaly;
use modelwatch_types::AnomalyPolicy;
use serde::Serialize;
use utoipa::ToSchema;

/// One breaching point of a watched metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnomalyRow {
    pub metric: String,
    /// The detector's method name (`ewma`, `cusum`, …).
    pub detector: &'static str,
    pub ts: DateTime<Utc>,
    pub value: f64,
    pub score: Option<f64>,
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    /// Breaches in a row ending here.
    pub consecutive: u64,
    /// Whether `consecutive` reached the policy's persistence.
    pub alarm: bool,
}

/// What one detector found in the window (the evaluation's reply).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AnomalyOutcome {
    pub metric: String,
    pub detector: String,
    /// Points in the series (one per timestamp).
    pub points: u64,
    /// Breaching points recorded (those newer than the previous
    /// evaluation: the last `interval` of the window).
    pub recorded: u64,
    /// Whether the newest point is in alarm.
    pub alarming: bool,
    /// Why nothing was detected, when so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Runs `policy`'s detector over `series` (time order, one value per
/// timestamp); keeps the breaching points at or after `record_from`.
pub fn detect(
    policy: &AnomalyPolicy,
    series: &[(DateTime<Utc>, f64)],
    record_from: DateTime<Utc>,
) -> (AnomalyOutcome, Vec<AnomalyRow>) {
    let detector = policy.detector.name();
    let mut outcome = AnomalyOutcome {
        metric: policy.metric.clone(),
        detector: detector.to_string(),
        points: series.len() as u64,
        recorded: 0,
        alarming: false,
        message: None,
    };
    if series.is_empty() {
        outcome.message = Some(format!(
            "no points of metric {:?} for this version in the window",
            policy.metric
        ));
        return (outcome, Vec::new());
    }
    let values: Vec<f64> = series.iter().map(|(_, v)| *v).collect();
    let report = match anomaly::detect(&policy.detector, policy.persistence, &values) {
        Ok(r) => r,
        Err(e) => {
            outcome.message = Some(e.to_string());
            return (outcome, Vec::new());
        }
    };
    let rows: Vec<AnomalyRow> = report
        .points
        .iter()
        .zip(series)
        .filter(|(p, (ts, _))| p.breach && *ts >= record_from)
        .map(|(p, (ts, _))| AnomalyRow {
            metric: policy.metric.clone(),
            detector,
            ts: *ts,
            value: p.value,
            score: p.score,
            lower: p.lower,
            upper: p.upper,
            consecutive: p.consecutive as u64,
            alarm: p.alarm,
        })
        .collect();
    outcome.recorded = rows.len() as u64;
    outcome.alarming = report.alarming;
    (outcome, rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::UNIX_EPOCH + chrono::Duration::minutes(minute)
    }

    fn policy() -> AnomalyPolicy {
        serde_json::from_value(serde_json::json!({
            "metric": "latency_p95",
            "detector": {"method": "ewma", "lambda": 0.3, "l": 3.0, "warmup": 20},
            "persistence": 2
        }))
        .expect("policy")
    }

    #[test]
    fn a_level_shift_breaches_and_alarms_and_only_recent_points_are_recorded() {
        // 30 calm points around 100, then 5 at 200.
        let series: Vec<(DateTime<Utc>, f64)> = (0..35)
            .map(|i| {
                (
                    at(i),
                    if i < 30 {
                        100.0 + (i % 3) as f64
                    } else {
                        200.0
                    },
                )
            })
            .collect();
        let (outcome, rows) = detect(&policy(), &series, at(0));
        assert_eq!(outcome.points, 35);
        assert!(rows.iter().all(|r| r.ts >= at(30)), "{rows:?}");
        assert!(rows.iter().any(|r| r.alarm), "{rows:?}");
        assert_eq!(rows[0].consecutive, 1);
        let (recent, recent_rows) = detect(&policy(), &series, at(32));
        assert_eq!(recent.recorded as usize, recent_rows.len());
        assert!(recent_rows.iter().all(|r| r.ts >= at(32)));
        assert!(recent_rows.len() < rows.len());
    }

    #[test]
    fn no_points_say_which_metric_is_missing() {
        let (outcome, rows) = detect(&policy(), &[], at(0));
        assert!(rows.is_empty());
        assert!(outcome.message.unwrap().contains("latency_p95"));
    }
}
