//! Outbound webhooks: subscriptions, the delivery queue, and the outbox that
//! turns audit entries into events.
//!
//! Registry events (`version.created`, `alias.moved`, `recommendation.*`)
//! are never published by the code that makes the change: every change
//! already writes an audit entry in its own transaction, so a dispatcher
//! tails the audit log from a persisted cursor and, in one transaction,
//! inserts one delivery per matching subscription and advances the cursor
//! ([`event_from_audit`] is the mapping). An event is thus delivered exactly
//! when its change committed, and none is lost across a crash. Events that
//! are not registry changes (`drift.detected`, `ping`) are inserted directly
//! ([`crate::roles::Outbox::publish_webhook_event`]).
//!
//! Deliveries are operational records, not audited; subscriptions are
//! audited (`webhook.create`, `webhook.delete`, target `webhook/{name}`),
//! without their secret, which is kept in the database (it signs every
//! payload) but never appears in an audit entry or a listing.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde_json::{Value, json};

use crate::audit::format_time;
use crate::error::{Error, Result};
pub use crate::rules::outbox::{event_from_audit, subscribed};
use crate::types::AuditEntry;
use crate::validate;
pub use modelwatch_types::records::{
    CreatedWebhook, DeliveryStatus, NewWebhook, Webhook, WebhookDelivery,
};

/// Every event type a subscription can ask for.
pub const EVENT_TYPES: [&str; 7] = [
    "version.created",
    "alias.moved",
    "recommendation.raised",
    "recommendation.applied",
    "recommendation.dismissed",
    "recommendation.superseded",
    "drift.detected",
];

/// The test event (`POST /api/v1/webhooks/{name}/test`); sent to one
/// subscription whatever its event list.
pub const PING_EVENT: &str = "ping";

/// Subscribes to every event type.
pub const ALL_EVENTS: &str = "*";

pub const SECRET_PREFIX: &str = "whsec_";
const MIN_SECRET: usize = 16;
const MAX_SECRET: usize = 256;
const MAX_URL: usize = 2048;
/// Most audit entries one dispatch step turns into deliveries.
pub const DISPATCH_BATCH: i64 = 500;

/// A signing secret: `whsec_` + 43 URL-safe base64 characters (256 bits).
/// A receiver URL as readers may see it: scheme and host only (the path
/// and query of a webhook URL are often its secret, e.g. Slack's).
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            // Credentials in the authority go too.
            let host = host.rsplit('@').next().unwrap_or(host);
            format!("{scheme}://{host}/…")
        }
        None => "…".to_owned(),
    }
}

/// Hides webhook receiver URLs in one audit entry's `before`/`after`
/// (`webhook.*` actions) for callers who may not see them: only admins
/// manage webhooks. The stored entry, and so the hash chain, is unchanged.
pub fn redact_audit_value(action: &str, value: &mut serde_json::Value) {
    if !action.starts_with("webhook.") {
        return;
    }
    if let Some(serde_json::Value::String(url)) = value.get_mut("url") {
        *url = redact_url(url);
    }
}

/// [`redact_audit_value`] on a whole entry.
pub fn redact_audit_entry(entry: &mut AuditEntry) {
    for v in [&mut entry.before, &mut entry.after].into_iter().flatten() {
        redact_audit_value(&entry.action, v);
    }
}

pub fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{SECRET_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// An id for an event that is not an audit entry: `evt_` + 22 characters.
pub fn new_event_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    format!("evt_{}", URL_SAFE_NO_PAD.encode(bytes))
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryFilter {
    pub status: Option<DeliveryStatus>,
}

/// An event as delivered: `{"id", "type", "occurred_at", "model",
/// "version", "data"}`.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEvent {
    /// `audit-<seq>` for registry events, `evt_…` otherwise.
    pub id: String,
    pub event_type: String,
    pub occurred_at: DateTime<Utc>,
    pub model: Option<String>,
    pub version: Option<i64>,
    pub data: Value,
}

impl WebhookEvent {
    /// The body, exactly as signed and sent.
    pub fn payload(&self) -> String {
        json!({
            "id": self.id,
            "type": self.event_type,
            "occurred_at": format_time(self.occurred_at),
            "model": self.model,
            "version": self.version,
            "data": self.data,
        })
        .to_string()
    }
}

/// A delivery claimed for an attempt, with what is needed to send it.
#[derive(Clone, PartialEq)]
pub struct DueDelivery {
    pub id: i64,
    pub webhook: String,
    pub url: String,
    pub secret: String,
    pub event_id: String,
    pub event_type: String,
    pub payload: String,
    /// Attempts made before this one.
    pub attempts: i64,
}

impl std::fmt::Debug for DueDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DueDelivery")
            .field("id", &self.id)
            .field("webhook", &self.webhook)
            .field("event_type", &self.event_type)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptOutcome {
    /// The receiver answered 2xx.
    Delivered { status_code: u16 },
    /// Failed; try again at `next_attempt_at`.
    Retry {
        status_code: Option<u16>,
        error: String,
        next_attempt_at: DateTime<Utc>,
    },
    /// Failed, and no attempts are left.
    Failed {
        status_code: Option<u16>,
        error: String,
    },
}

/// What one dispatch step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DispatchReport {
    /// Audit entries read (the cursor moved past them).
    pub entries: u64,
    /// Deliveries inserted.
    pub deliveries: u64,
}

/// Checks a subscription request and returns its events normalised (sorted,
/// without duplicates; `["*"]` when `*` is among them).
pub fn validate_new(new: &NewWebhook) -> Result<Vec<String>> {
    validate::token_name(&new.name)
        .map_err(|_| Error::invalid("name", format!("{:?} is not a valid webhook name: use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit", new.name)))?;
    validate_url(&new.url)?;
    if let Some(model) = &new.model {
        validate::model_name(model)
            .map_err(|_| Error::invalid("model", format!("{model:?} is not a valid model name")))?;
    }
    if let Some(secret) = &new.secret {
        let printable = secret.chars().all(|c| c.is_ascii_graphic());
        if secret.len() < MIN_SECRET || secret.len() > MAX_SECRET || !printable {
            return Err(Error::invalid(
                "secret",
                format!(
                    "use {MIN_SECRET}-{MAX_SECRET} printable ASCII characters without spaces, or leave it out to have one generated"
                ),
            ));
        }
    }
    normalise_events(&new.events)
}

fn normalise_events(events: &[String]) -> Result<Vec<String>> {
    if events.is_empty() {
        return Err(Error::invalid(
            "events",
            format!(
                "name at least one event type, or \"*\" for all: {}",
                EVENT_TYPES.join(", ")
            ),
        ));
    }
    for e in events {
        if e != ALL_EVENTS && !EVENT_TYPES.contains(&e.as_str()) {
            return Err(Error::invalid(
                "events",
                format!(
                    "unknown event type {e:?}; expected \"*\" or one of {}",
                    EVENT_TYPES.join(", ")
                ),
            ));
        }
    }
    if events.iter().any(|e| e == ALL_EVENTS) {
        return Ok(vec![ALL_EVENTS.to_string()]);
    }
    let mut out = events.to_vec();
    out.sort();
    out.dedup();
    Ok(out)
}

/// `http://` or `https://`, a host, no whitespace.
pub fn validate_url(url: &str) -> Result<()> {
    let bad = |why: &str| Error::invalid("url", format!("{url:?} is not usable: {why}"));
    if url.len() > MAX_URL {
        return Err(bad(&format!("longer than {MAX_URL} characters")));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("it contains whitespace"));
    }
    let lower = url.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"))
        .ok_or_else(|| bad("only http:// and https:// URLs are accepted"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    let host = if host.starts_with('[') {
        host.split_inclusive(']').next().unwrap_or_default()
    } else {
        host.split(':').next().unwrap_or_default()
    };
    if host.is_empty() || host == "[]" {
        return Err(bad("it has no host"));
    }
    Ok(())
}

/// Only events modelwatch knows may be published.
pub(crate) fn validate_event_type(event_type: &str, to_one: bool) -> Result<()> {
    if EVENT_TYPES.contains(&event_type) || (to_one && event_type == PING_EVENT) {
        Ok(())
    } else {
        Err(Error::invalid(
            "event_type",
            format!(
                "unknown event type {event_type:?}; expected one of {}",
                EVENT_TYPES.join(", ")
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(
        seq: i64,
        action: &str,
        target: &str,
        before: Option<Value>,
        after: Option<Value>,
    ) -> AuditEntry {
        AuditEntry {
            seq,
            at: Utc::now(),
            actor: "ci".into(),
            action: action.into(),
            target: target.into(),
            before,
            after,
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    #[test]
    fn webhook_urls_are_redacted_for_readers() {
        assert_eq!(
            redact_url("https://hooks.slack.com/services/T0/B0/secret?x=1"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(
            redact_url("http://user:pw@ci.example:8080/hook"),
            "http://ci.example:8080/…"
        );
        assert_eq!(redact_url("nonsense"), "…");
        let mut e = entry(
            1,
            "webhook.create",
            "webhook/w",
            None,
            Some(serde_json::json!({"name": "w", "url": "http://h:1/secret-path"})),
        );
        redact_audit_entry(&mut e);
        assert_eq!(e.after.as_ref().unwrap()["url"], "http://h:1/…");
        assert_eq!(e.after.as_ref().unwrap()["name"], "w");
        let mut other = entry(
            2,
            "model.create",
            "model/m",
            None,
            Some(serde_json::json!({"url": "http://h/keep"})),
        );
        redact_audit_entry(&mut other);
        assert_eq!(other.after.as_ref().unwrap()["url"], "http://h/keep");
    }

    #[test]
    fn audit_actions_map_to_events() {
        let e = event_from_audit(&entry(
            3,
            "version.create",
            "model/fraud/version/2",
            None,
            Some(json!({"version": 2})),
        ))
        .unwrap();
        assert_eq!(
            (
                e.event_type.as_str(),
                e.model.as_deref(),
                e.version,
                e.id.as_str()
            ),
            ("version.created", Some("fraud"), Some(2), "audit-3")
        );
        assert_eq!(e.data["actor"], "ci");
        assert_eq!(e.data["after"]["version"], 2);

        for (action, kind, before, after, version) in [
            (
                "alias.set",
                "set",
                None,
                Some(json!({"version": 4, "reason": ""})),
                Some(4),
            ),
            (
                "alias.rollback",
                "rollback",
                Some(json!({"version": 4})),
                Some(json!({"version": 3, "reason": "bad"})),
                Some(3),
            ),
            (
                "alias.delete",
                "delete",
                Some(json!({"version": 3})),
                None,
                Some(3),
            ),
        ] {
            let e = event_from_audit(&entry(
                5,
                action,
                "model/fraud/alias/production",
                before,
                after,
            ))
            .unwrap();
            assert_eq!(e.event_type, "alias.moved");
            assert_eq!(e.data["kind"], kind);
            assert_eq!(e.data["alias"], "production");
            assert_eq!(e.version, version, "{action}");
        }

        let rec = json!({"model": "fraud", "version": 2, "kind": "retrain"});
        for (action, event) in [
            ("recommendation.raise", Some("recommendation.raised")),
            ("recommendation.apply", Some("recommendation.applied")),
            ("recommendation.dismiss", Some("recommendation.dismissed")),
            (
                "recommendation.supersede",
                Some("recommendation.superseded"),
            ),
            ("recommendation.update", None),
            ("recommendation.acknowledge", None),
        ] {
            let e = event_from_audit(&entry(
                9,
                action,
                "recommendation/7",
                None,
                Some(rec.clone()),
            ));
            assert_eq!(e.as_ref().map(|e| e.event_type.as_str()), event, "{action}");
            if let Some(e) = e {
                assert_eq!((e.model.as_deref(), e.version), (Some("fraud"), Some(2)));
                assert_eq!(e.data["recommendation_id"], 7);
            }
        }
        for action in [
            "model.create",
            "token.create",
            "webhook.create",
            "version.update",
            "version.tag.set",
        ] {
            assert!(
                event_from_audit(&entry(1, action, "model/fraud", None, None)).is_none(),
                "{action}"
            );
        }
    }

    #[test]
    fn payload_has_the_documented_shape() {
        let e = WebhookEvent {
            id: "evt_x".into(),
            event_type: "drift.detected".into(),
            occurred_at: "2026-11-27T10:00:00Z".parse().unwrap(),
            model: Some("fraud".into()),
            version: Some(3),
            data: json!({"features": ["amount"]}),
        };
        let v: Value = serde_json::from_str(&e.payload()).unwrap();
        assert_eq!(
            v,
            json!({"id": "evt_x", "type": "drift.detected", "occurred_at": "2026-11-27T10:00:00.000000Z",
                   "model": "fraud", "version": 3, "data": {"features": ["amount"]}})
        );
    }

    #[test]
    fn subscriptions_filter_by_event_and_model() {
        let all = vec!["*".to_string()];
        let some = vec!["alias.moved".to_string()];
        assert!(subscribed(&all, None, "version.created", Some("a")));
        assert!(subscribed(&some, None, "alias.moved", None));
        assert!(!subscribed(&some, None, "version.created", Some("a")));
        assert!(subscribed(&all, Some("a"), "version.created", Some("a")));
        assert!(!subscribed(&all, Some("a"), "version.created", Some("b")));
        assert!(!subscribed(&all, Some("a"), "version.created", None));
    }

    #[test]
    fn requests_are_validated() {
        let ok = NewWebhook {
            name: "ci".into(),
            url: "http://127.0.0.1:8080/hook".into(),
            events: vec![
                "alias.moved".into(),
                "version.created".into(),
                "alias.moved".into(),
            ],
            ..Default::default()
        };
        assert_eq!(
            validate_new(&ok).unwrap(),
            vec!["alias.moved", "version.created"]
        );
        let star = NewWebhook {
            events: vec!["alias.moved".into(), "*".into()],
            ..ok.clone()
        };
        assert_eq!(validate_new(&star).unwrap(), vec!["*"]);
        for bad in [
            NewWebhook {
                url: "ftp://x/y".into(),
                ..ok.clone()
            },
            NewWebhook {
                url: "http://".into(),
                ..ok.clone()
            },
            NewWebhook {
                url: "http:///path".into(),
                ..ok.clone()
            },
            NewWebhook {
                url: "http://a b/".into(),
                ..ok.clone()
            },
            NewWebhook {
                url: "localhost:80".into(),
                ..ok.clone()
            },
            NewWebhook {
                events: vec![],
                ..ok.clone()
            },
            NewWebhook {
                events: vec!["version.deleted".into()],
                ..ok.clone()
            },
            NewWebhook {
                events: vec!["ping".into()],
                ..ok.clone()
            },
            NewWebhook {
                name: "bad name".into(),
                ..ok.clone()
            },
            NewWebhook {
                model: Some("bad model!".into()),
                ..ok.clone()
            },
            NewWebhook {
                secret: Some("short".into()),
                ..ok.clone()
            },
            NewWebhook {
                secret: Some("has spaces in the secret".into()),
                ..ok.clone()
            },
        ] {
            assert!(
                matches!(validate_new(&bad), Err(Error::InvalidArgument { .. })),
                "{bad:?}"
            );
        }
        assert!(validate_url("https://user@[::1]:8443/x?y#z").is_ok());
    }

    #[test]
    fn secrets_and_event_ids_are_fresh() {
        let (a, b) = (generate_secret(), generate_secret());
        assert_ne!(a, b);
        assert!(a.starts_with(SECRET_PREFIX) && a.len() == SECRET_PREFIX.len() + 43);
        assert_ne!(new_event_id(), new_event_id());
    }
}
