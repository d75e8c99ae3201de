//! Outbox mapping, decided without a database: which audit entries are
//! webhook events, and which subscriptions get a delivery of each.
//!
//! The backend reads the audit entries after its cursor and the active
//! subscriptions, asks [`plan_dispatch`] what to insert, inserts it and
//! advances the cursor, all in one transaction (see [`crate::webhooks`]).

use serde_json::{Value, json};

use crate::types::AuditEntry;
use crate::webhooks::{ALL_EVENTS, WebhookEvent};

/// The event an audit entry stands for, if subscribers may want it.
/// `recommendation.update` (fresh evidence on an open recommendation) and
/// `recommendation.acknowledge` are not events; neither is anything outside
/// versions, aliases and recommendations.
pub fn event_from_audit(entry: &AuditEntry) -> Option<WebhookEvent> {
    let mut data = json!({
        "audit_seq": entry.seq,
        "action": entry.action,
        "actor": entry.actor,
        "target": entry.target,
        "before": entry.before,
        "after": entry.after,
    });
    let field = |v: &Option<Value>, key: &str| v.as_ref().and_then(|v| v.get(key)).cloned();
    let (event_type, model, version) = match entry.action.as_str() {
        "version.create" => {
            let (model, rest) = split_model_target(&entry.target)?;
            let version = rest.strip_prefix("version/")?.parse().ok()?;
            ("version.created", Some(model), Some(version))
        }
        "alias.set" | "alias.rollback" | "alias.delete" => {
            let (model, rest) = split_model_target(&entry.target)?;
            let alias = rest.strip_prefix("alias/")?;
            let kind = entry.action.trim_start_matches("alias.");
            data["alias"] = json!(alias);
            data["kind"] = json!(kind);
            // The version the alias moved to, or the one it left (delete).
            let version = field(&entry.after, "version")
                .or_else(|| field(&entry.before, "version"))
                .and_then(|v| v.as_i64());
            ("alias.moved", Some(model), version)
        }
        "recommendation.raise"
        | "recommendation.apply"
        | "recommendation.dismiss"
        | "recommendation.supersede" => {
            let event_type = match entry.action.as_str() {
                "recommendation.raise" => "recommendation.raised",
                "recommendation.apply" => "recommendation.applied",
                "recommendation.dismiss" => "recommendation.dismissed",
                _ => "recommendation.superseded",
            };
            let id = entry
                .target
                .strip_prefix("recommendation/")?
                .parse::<i64>()
                .ok()?;
            data["recommendation_id"] = json!(id);
            let model = field(&entry.after, "model").and_then(|v| v.as_str().map(str::to_string));
            let version = field(&entry.after, "version").and_then(|v| v.as_i64());
            (event_type, model, version)
        }
        _ => return None,
    };
    Some(WebhookEvent {
        id: format!("audit-{}", entry.seq),
        event_type: event_type.to_string(),
        occurred_at: entry.at,
        model,
        version,
        data,
    })
}

/// `model/{m}/{rest}` → (`m`, `rest`).
fn split_model_target(target: &str) -> Option<(String, &str)> {
    let rest = target.strip_prefix("model/")?;
    let (model, rest) = rest.split_once('/')?;
    Some((model.to_string(), rest))
}

/// Whether a subscription with these events and model filter wants an event.
pub fn subscribed(
    events: &[String],
    model_filter: Option<&str>,
    event_type: &str,
    model: Option<&str>,
) -> bool {
    let type_ok = events.iter().any(|e| e == ALL_EVENTS || e == event_type);
    let model_ok = match model_filter {
        None => true,
        Some(f) => model == Some(f),
    };
    type_ok && model_ok
}

/// An active subscription as the matcher needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    pub id: i64,
    pub events: Vec<String>,
    pub model: Option<String>,
    /// The audit sequence number the subscription was created at: only
    /// later entries are delivered to it.
    pub from_seq: i64,
}

impl Subscriber {
    /// Whether it wants `event` (regardless of when the event happened).
    pub fn wants(&self, event: &WebhookEvent) -> bool {
        subscribed(
            &self.events,
            self.model.as_deref(),
            &event.event_type,
            event.model.as_deref(),
        )
    }
}

/// The subscriptions (in the order given) that get a delivery of a
/// published event that is not an audit entry.
pub fn recipients(subscribers: &[Subscriber], event: &WebhookEvent) -> Vec<i64> {
    subscribers
        .iter()
        .filter(|s| s.wants(event))
        .map(|s| s.id)
        .collect()
}

/// One outbox step: for audit entries in `seq` order, the deliveries to
/// insert, as (subscription id, event), in entry order then subscription
/// order. An entry reaches a subscription only if it came after the
/// subscription was created and the subscription wants its event.
pub fn plan_dispatch(
    entries: &[AuditEntry],
    subscribers: &[Subscriber],
) -> Vec<(i64, WebhookEvent)> {
    let mut out = Vec::new();
    for entry in entries {
        let Some(event) = event_from_audit(entry) else {
            continue;
        };
        for s in subscribers {
            if entry.seq > s.from_seq && s.wants(&event) {
                out.push((s.id, event.clone()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: i64, action: &str, target: &str, after: Option<Value>) -> AuditEntry {
        AuditEntry {
            seq,
            at: "2026-11-27T10:00:00Z".parse().unwrap(),
            actor: "ci".into(),
            action: action.into(),
            target: target.into(),
            before: None,
            after,
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    fn sub(id: i64, events: &[&str], model: Option<&str>, from_seq: i64) -> Subscriber {
        Subscriber {
            id,
            events: events.iter().map(|e| e.to_string()).collect(),
            model: model.map(str::to_string),
            from_seq,
        }
    }

    #[test]
    fn dispatch_plans_deliveries_in_entry_then_subscription_order() {
        let entries = [
            entry(1, "model.create", "model/fraud", None),
            entry(2, "version.create", "model/fraud/version/1", None),
            entry(
                3,
                "alias.set",
                "model/fraud/alias/production",
                Some(json!({"version": 1, "reason": ""})),
            ),
            entry(4, "version.create", "model/churn/version/1", None),
        ];
        let subs = [
            sub(1, &["version.created", "alias.moved"], None, 0),
            // Created after entry 2: gets nothing before it.
            sub(2, &["*"], None, 2),
            sub(3, &["*"], Some("churn"), 0),
            sub(4, &["recommendation.raised"], None, 0),
        ];
        let plan: Vec<(i64, String, i64)> = plan_dispatch(&entries, &subs)
            .into_iter()
            .map(|(id, e)| (id, e.event_type, e.data["audit_seq"].as_i64().unwrap()))
            .collect();
        assert_eq!(
            plan,
            [
                (1, "version.created".to_string(), 2),
                (1, "alias.moved".to_string(), 3),
                (2, "alias.moved".to_string(), 3),
                (1, "version.created".to_string(), 4),
                (2, "version.created".to_string(), 4),
                (3, "version.created".to_string(), 4),
            ]
        );
        assert!(plan_dispatch(&entries[..1], &subs).is_empty());
    }

    #[test]
    fn published_events_go_to_every_subscription_that_wants_them() {
        let event = WebhookEvent {
            id: "evt_1".into(),
            event_type: "drift.detected".into(),
            occurred_at: "2026-11-27T10:00:00Z".parse().unwrap(),
            model: Some("fraud".into()),
            version: Some(1),
            data: json!({}),
        };
        let subs = [
            sub(1, &["drift.detected"], None, 0),
            sub(2, &["*"], Some("other"), 0),
            sub(3, &["alias.moved"], None, 0),
            // from_seq does not apply: a published event is not an audit entry.
            sub(4, &["*"], Some("fraud"), 99),
        ];
        assert_eq!(recipients(&subs, &event), [1, 4]);
    }
}
