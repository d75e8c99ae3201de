//! Duty leases, fencing and cluster membership.

use std::sync::Arc;
use std::time::Duration;

use chrono::DateTime;

use super::Fixture;
use crate::{Actor, Announcement, Clock, DutyFence, Error, HeldLease, NewModel, Role};

const TTL: Duration = Duration::from_secs(15);

fn admin() -> Actor {
    Actor::new("admin", Role::Admin)
}

pub async fn a_duty_is_held_by_one_daemon_until_its_lease_expires(fx: &mut Fixture) {
    let (s, clock) = (fx.store(), fx.clock());
    let a = s.claim_duty("evaluator", "a", TTL).await.unwrap().unwrap();
    assert_eq!((a.holder.as_str(), a.fencing_token), ("a", 1));
    assert_eq!(a.expires_at, clock.now() + chrono::Duration::seconds(15));
    assert_eq!(s.claim_duty("evaluator", "b", TTL).await.unwrap(), None);
    // Other duties are independent.
    let other = s
        .claim_duty("webhook_sender", "b", TTL)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(other.fencing_token, 1);

    // Renewing keeps the token and the acquisition time.
    clock.advance(chrono::Duration::seconds(10));
    let renewed = s.claim_duty("evaluator", "a", TTL).await.unwrap().unwrap();
    assert_eq!(renewed.fencing_token, 1);
    assert_eq!(renewed.acquired_at, a.acquired_at);
    assert_eq!(
        renewed.expires_at,
        clock.now() + chrono::Duration::seconds(15)
    );

    // Expired: the next claimant takes it over with the next token.
    clock.advance(chrono::Duration::seconds(15));
    let b = s.claim_duty("evaluator", "b", TTL).await.unwrap().unwrap();
    assert_eq!((b.holder.as_str(), b.fencing_token), ("b", 2));
    assert_eq!(s.claim_duty("evaluator", "a", TTL).await.unwrap(), None);

    // Leaving releases at once, and the token still grows.
    s.leave_cluster("b").await.unwrap();
    let again = s.claim_duty("evaluator", "a", TTL).await.unwrap().unwrap();
    assert_eq!(again.fencing_token, 3);
}

pub async fn concurrent_claims_of_a_free_duty_give_it_to_one_daemon(fx: &mut Fixture) {
    let s = fx.store();
    let claims = (0..8).map(|i| {
        let s = s.clone();
        tokio::spawn(async move { s.claim_duty("evaluator", &format!("d{i}"), TTL).await })
    });
    let mut winners = Vec::new();
    for claim in claims {
        if let Some(lease) = claim.await.unwrap().unwrap() {
            winners.push(lease);
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(winners[0].fencing_token, 1);
    let view = s.cluster_view("x", DateTime::UNIX_EPOCH).await.unwrap();
    assert_eq!(view.duties.len(), 1);
    assert_eq!(view.duties[0].holder, winners[0].holder);
}

pub async fn a_fenced_store_writes_only_while_its_lease_holds(fx: &mut Fixture) {
    let (s, clock) = (fx.store(), fx.clock());
    let fence = Arc::new(DutyFence::new("evaluator"));
    let fenced = fx.fenced(fence.clone());
    let model = |name: &str| NewModel::named(name);

    // Not held yet: refused, nothing written.
    let err = fenced
        .create_model(&admin(), model("m0"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Fenced(_)), "{err:?}");
    assert!(s.get_model("m0").await.is_err());

    let lease = s.claim_duty("evaluator", "a", TTL).await.unwrap().unwrap();
    fence.hold(Some(HeldLease {
        holder: "a".into(),
        token: lease.fencing_token,
    }));
    fenced.create_model(&admin(), model("m1")).await.unwrap();
    let audit_before = s.verify_audit().await.unwrap().entries_checked;

    // Another daemon takes the duty over after expiry: this daemon still
    // believes it holds it, and its writes are refused.
    clock.advance(chrono::Duration::seconds(16));
    s.claim_duty("evaluator", "b", TTL).await.unwrap().unwrap();
    let err = fenced
        .create_model(&admin(), model("m2"))
        .await
        .unwrap_err();
    match &err {
        Error::Fenced(message) => assert!(message.contains("taken over by b"), "{message}"),
        other => panic!("expected Fenced, got {other:?}"),
    }
    assert!(s.get_model("m2").await.is_err());
    assert_eq!(
        s.verify_audit().await.unwrap().entries_checked,
        audit_before
    );
    // Unfenced writes go on.
    s.create_model(&admin(), model("m3")).await.unwrap();
}

pub async fn the_cluster_view_lists_live_daemons_and_their_duties(fx: &mut Fixture) {
    let (s, clock) = (fx.store(), fx.clock());
    let announce = |id: &str| Announcement {
        id: id.into(),
        address: format!("{id}:8080"),
        version: "test".into(),
        started_at: clock.now(),
    };
    s.heartbeat(&announce("a")).await.unwrap();
    clock.advance(chrono::Duration::seconds(1));
    s.heartbeat(&announce("b")).await.unwrap();
    s.claim_duty("evaluator", "a", TTL).await.unwrap().unwrap();
    s.claim_duty("webhook_sender", "b", TTL)
        .await
        .unwrap()
        .unwrap();

    let since = clock.now() - chrono::Duration::seconds(30);
    let view = s.cluster_view("a", since).await.unwrap();
    assert_eq!(view.this_daemon, "a");
    let members: Vec<_> = view
        .members
        .iter()
        .map(|m| (m.id.as_str(), m.address.as_str(), m.duties.clone()))
        .collect();
    assert_eq!(
        members,
        [
            ("a", "a:8080", vec!["evaluator".to_string()]),
            ("b", "b:8080", vec!["webhook_sender".to_string()]),
        ]
    );
    assert_eq!(view.members[1].last_seen, clock.now());

    // A daemon not seen within the window is not listed; one that left is
    // gone and its duties are free.
    clock.advance(chrono::Duration::seconds(40));
    s.heartbeat(&announce("b")).await.unwrap();
    let since = clock.now() - chrono::Duration::seconds(30);
    let view = s.cluster_view("b", since).await.unwrap();
    assert_eq!(view.members.len(), 1);
    assert_eq!(view.members[0].id, "b");
    assert!(view.members[0].duties.is_empty(), "the lease expired");
    s.leave_cluster("b").await.unwrap();
    assert!(s.cluster_view("b", since).await.unwrap().members.is_empty());
    assert!(
        s.claim_duty("webhook_sender", "c", TTL)
            .await
            .unwrap()
            .is_some()
    );
}
