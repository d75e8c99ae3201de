//! Webhook subscriptions, the outbox and the delivery queue, on any backend.

use std::time::Duration;

use chrono::Utc;
use serde_json::json;

use super::Fixture;
use crate::webhooks::*;
use crate::{
    Actor, AuditFilter, Clock, Error, NewModel, NewRecommendation, NewVersion, PageRequest,
    RecommendationKind, RegistryStore, Role, Severity,
};

fn admin() -> Actor {
    Actor::new("root", Role::Admin)
}

fn hook(name: &str, events: &[&str]) -> NewWebhook {
    NewWebhook {
        name: name.into(),
        url: "http://127.0.0.1:9/hook".into(),
        events: events.iter().map(|e| e.to_string()).collect(),
        ..Default::default()
    }
}

fn all() -> PageRequest {
    PageRequest::new(Some(1000), None).unwrap()
}

async fn deliveries(s: &dyn RegistryStore, name: &str) -> Vec<WebhookDelivery> {
    s.list_webhook_deliveries(name, &DeliveryFilter::default(), &all())
        .await
        .unwrap()
        .items
}

pub async fn the_outbox_turns_committed_changes_into_deliveries_once(fx: &mut Fixture) {
    let s = fx.store();
    // History before the subscription is not delivered to it.
    s.create_model(
        &admin(),
        NewModel {
            name: "old".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    s.create_version(&admin(), "old", NewVersion::default())
        .await
        .unwrap();
    s.create_webhook(&admin(), hook("ci", &["version.created", "alias.moved"]))
        .await
        .unwrap();
    s.create_model(
        &admin(),
        NewModel {
            name: "fraud".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    s.create_version(&admin(), "fraud", NewVersion::default())
        .await
        .unwrap();
    s.set_alias(&admin(), "fraud", "production", 1, "first")
        .await
        .unwrap();
    // A rejected change writes no audit entry, hence no event.
    assert!(
        s.set_alias(&admin(), "fraud", "production", 9, "")
            .await
            .is_err()
    );
    // Not subscribed to recommendations.
    let rec = NewRecommendation {
        kind: RecommendationKind::Retrain,
        severity: Severity::Warning,
        reason: "drift".into(),
        evidence: json!({}),
    };
    s.raise_recommendation(&admin(), "fraud", 1, rec)
        .await
        .unwrap();

    let report = s.dispatch_webhook_outbox().await.unwrap();
    assert_eq!(report.deliveries, 2, "{report:?}");
    assert_eq!(
        s.dispatch_webhook_outbox().await.unwrap(),
        DispatchReport::default()
    );
    let ds = deliveries(&*s, "ci").await;
    let types: Vec<&str> = ds.iter().map(|d| d.event_type.as_str()).collect();
    assert_eq!(types, ["version.created", "alias.moved"]);
    assert!(
        ds.iter()
            .all(|d| d.status == DeliveryStatus::Pending && d.attempts == 0)
    );
    assert_eq!(ds[0].payload["model"], "fraud");
    assert_eq!(ds[0].payload["version"], 1);
    assert_eq!(ds[1].payload["data"]["kind"], "set");
    assert_eq!(ds[1].payload["data"]["actor"], "root");
    assert_eq!(ds[1].payload["id"], ds[1].event_id.as_str());

    // A subscription created now does not get what came before it.
    s.create_webhook(&admin(), hook("late", &["*"]))
        .await
        .unwrap();
    s.create_version(&admin(), "fraud", NewVersion::default())
        .await
        .unwrap();
    s.dispatch_webhook_outbox().await.unwrap();
    assert_eq!(deliveries(&*s, "late").await.len(), 1);
    assert_eq!(deliveries(&*s, "ci").await.len(), 3);

    // The cursor is persisted: reopening replays nothing.
    let s = fx.reopen().await;
    assert_eq!(
        s.dispatch_webhook_outbox().await.unwrap(),
        DispatchReport::default()
    );
    assert_eq!(deliveries(&*s, "ci").await.len(), 3);
}

pub async fn due_deliveries_are_leased_retried_and_finished(fx: &mut Fixture) {
    let (s, clock) = (fx.store(), fx.clock());
    s.create_webhook(&admin(), hook("a", &["drift.detected"]))
        .await
        .unwrap();
    let mut filtered = hook("b", &["*"]);
    filtered.model = Some("other".into());
    s.create_webhook(&admin(), filtered).await.unwrap();
    let event = |n: u8| WebhookEvent {
        id: format!("evt_{n}"),
        event_type: "drift.detected".into(),
        occurred_at: clock.now(),
        model: Some("fraud".into()),
        version: Some(1),
        data: json!({}),
    };
    assert_eq!(s.publish_webhook_event(event(1), None).await.unwrap(), 1);
    assert_eq!(s.publish_webhook_event(event(2), None).await.unwrap(), 1);
    assert_eq!(s.next_webhook_due().await.unwrap(), Some(clock.now()));

    let lease = Duration::from_secs(60);
    let due = s.claim_due_webhook_deliveries(lease, 10).await.unwrap();
    assert_eq!(due.len(), 2);
    assert_eq!((due[0].webhook.as_str(), due[0].attempts), ("a", 0));
    assert!(due[0].secret.starts_with(SECRET_PREFIX));
    // Leased: not handed out twice.
    assert!(
        s.claim_due_webhook_deliveries(lease, 10)
            .await
            .unwrap()
            .is_empty()
    );

    let retry_at = clock.now() + chrono::Duration::seconds(2);
    s.record_webhook_attempt(
        due[0].id,
        AttemptOutcome::Retry {
            status_code: Some(500),
            error: "HTTP 500".into(),
            next_attempt_at: retry_at,
        },
    )
    .await
    .unwrap();
    s.record_webhook_attempt(
        due[1].id,
        AttemptOutcome::Failed {
            status_code: None,
            error: "connection refused".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(s.next_webhook_due().await.unwrap(), Some(retry_at));
    assert!(
        s.claim_due_webhook_deliveries(lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    clock.advance(chrono::Duration::seconds(2));
    let again = s.claim_due_webhook_deliveries(lease, 10).await.unwrap();
    assert_eq!(
        (again.len(), again[0].id, again[0].attempts),
        (1, due[0].id, 1)
    );
    s.record_webhook_attempt(again[0].id, AttemptOutcome::Delivered { status_code: 204 })
        .await
        .unwrap();

    let ds = deliveries(&*s, "a").await;
    assert_eq!(
        (ds[0].status, ds[0].attempts, ds[0].last_status_code),
        (DeliveryStatus::Delivered, 2, Some(204))
    );
    assert!(ds[0].delivered_at.is_some() && ds[0].next_attempt_at.is_none());
    assert_eq!((ds[1].status, ds[1].attempts), (DeliveryStatus::Failed, 1));
    assert_eq!(ds[1].last_error.as_deref(), Some("connection refused"));
    let failed = s
        .list_webhook_deliveries(
            "a",
            &DeliveryFilter {
                status: Some(DeliveryStatus::Failed),
            },
            &all(),
        )
        .await
        .unwrap();
    assert_eq!(failed.items.len(), 1);
    assert!(deliveries(&*s, "b").await.is_empty(), "model filter");
    assert_eq!(s.next_webhook_due().await.unwrap(), None);

    // A lease that runs out (an attempt whose outcome was never
    // recorded) makes the delivery due again; so does releasing the
    // leases (a restart: nothing is in flight any more).
    s.publish_webhook_event(event(3), None).await.unwrap();
    assert_eq!(
        s.claim_due_webhook_deliveries(lease, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        s.next_webhook_due().await.unwrap(),
        Some(clock.now() + chrono::Duration::seconds(60))
    );
    clock.advance(chrono::Duration::from_std(lease).unwrap());
    assert_eq!(
        s.claim_due_webhook_deliveries(lease, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        s.claim_due_webhook_deliveries(lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.release_webhook_leases().await.unwrap(), 1);
    let again = s.claim_due_webhook_deliveries(lease, 10).await.unwrap();
    assert_eq!((again.len(), again[0].attempts), (1, 0));

    // Finished deliveries are pruned once old enough; pending ones never.
    assert_eq!(
        s.prune_webhook_deliveries(clock.now() - chrono::Duration::days(7))
            .await
            .unwrap(),
        0
    );
    assert_eq!(s.prune_webhook_deliveries(clock.now()).await.unwrap(), 2);
    assert_eq!(deliveries(&*s, "a").await.len(), 1);
}

pub async fn subscriptions_are_audited_without_their_secret(fx: &mut Fixture) {
    let s = fx.store();
    let mut new = hook("ci", &["*"]);
    new.secret = Some("my-own-secret-0123456789".into());
    let created = s.create_webhook(&admin(), new.clone()).await.unwrap();
    assert_eq!(created.secret, "my-own-secret-0123456789");
    let generated = s
        .create_webhook(&admin(), hook("gen", &["alias.moved"]))
        .await
        .unwrap();
    assert!(generated.secret.starts_with(SECRET_PREFIX));
    let audit_len = s
        .list_audit(&AuditFilter::default(), &all())
        .await
        .unwrap()
        .items
        .len();
    assert!(matches!(
        s.create_webhook(&admin(), new).await,
        Err(Error::AlreadyExists { .. })
    ));
    let mut bad = hook("x", &["*"]);
    bad.url = "file:///etc/passwd".into();
    assert!(matches!(
        s.create_webhook(&admin(), bad).await,
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        s.publish_webhook_event(
            WebhookEvent {
                id: new_event_id(),
                event_type: PING_EVENT.into(),
                occurred_at: Utc::now(),
                model: None,
                version: None,
                data: json!({})
            },
            None
        )
        .await,
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        s.publish_webhook_event(
            WebhookEvent {
                id: new_event_id(),
                event_type: PING_EVENT.into(),
                occurred_at: Utc::now(),
                model: None,
                version: None,
                data: json!({})
            },
            Some("nope")
        )
        .await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(
        s.list_audit(&AuditFilter::default(), &all())
            .await
            .unwrap()
            .items
            .len(),
        audit_len,
        "refused requests write nothing"
    );

    s.publish_webhook_event(
        WebhookEvent {
            id: new_event_id(),
            event_type: PING_EVENT.into(),
            occurred_at: Utc::now(),
            model: None,
            version: None,
            data: json!({}),
        },
        Some("gen"),
    )
    .await
    .unwrap();
    assert_eq!(deliveries(&*s, "gen").await.len(), 1);
    s.delete_webhook(&admin(), "gen").await.unwrap();
    assert!(matches!(
        s.get_webhook("gen").await,
        Err(Error::NotFound { .. })
    ));

    let audit =
        serde_json::to_string(&s.list_audit(&AuditFilter::default(), &all()).await.unwrap())
            .unwrap();
    let listing = serde_json::to_string(&s.list_webhooks().await.unwrap()).unwrap();
    for text in [&audit, &listing] {
        assert!(
            !text.contains("my-own-secret") && !text.contains(&generated.secret),
            "{text}"
        );
    }
    assert!(
        audit.contains("webhook.create")
            && audit.contains("webhook.delete")
            && audit.contains("webhook/gen")
    );
    assert!(s.verify_audit().await.unwrap().ok);
}
