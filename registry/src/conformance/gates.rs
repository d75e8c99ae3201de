//! Promotion gate policies and gated promotions, on any backend.

use super::Fixture;
use crate::gate::policy_sha256;
use crate::*;

fn approver() -> Actor {
    Actor::new("release", Role::Approver)
}

async fn fraud(s: &dyn RegistryStore) {
    let new = NewModel {
        name: "fraud".into(),
        ..Default::default()
    };
    s.create_model(&approver(), new).await.unwrap();
}

const V1: &str = "package modelwatch.gate\n\ndeny contains \"no\" if false\n";
const V2: &str = "package modelwatch.gate\n\ndeny contains \"never\" if false\n";

async fn gate_audit(s: &dyn RegistryStore, model: &str) -> Vec<AuditEntry> {
    let mut items = s
        .list_audit(
            &AuditFilter {
                target_prefix: Some(format!("model/{model}/gate-policy")),
                ..Default::default()
            },
            &PageRequest::new(Some(100), None).unwrap(),
        )
        .await
        .unwrap()
        .items;
    items.sort_by_key(|e| e.seq);
    items
}

pub async fn gate_policies_are_stored_audited_with_before_and_after_and_removed(fx: &mut Fixture) {
    let s = fx.store();
    fraud(&*s).await;
    assert!(matches!(
        s.get_gate_policy("fraud").await,
        Err(Error::NotFound { what }) if what == "gate policy of model \"fraud\""
    ));
    assert!(matches!(
        s.get_gate_policy("ghost").await,
        Err(Error::NotFound { what }) if what == "model \"ghost\""
    ));
    assert!(matches!(
        s.set_gate_policy(&approver(), "ghost", V1).await,
        Err(Error::NotFound { what }) if what.contains("ghost")
    ));
    assert!(matches!(
        s.set_gate_policy(&approver(), "fraud", "  ").await,
        Err(Error::InvalidArgument { .. })
    ));
    // A refused change writes nothing, not even an audit entry.
    assert!(gate_audit(&*s, "fraud").await.is_empty());

    let first = s.set_gate_policy(&approver(), "fraud", V1).await.unwrap();
    assert_eq!(first.rego, V1);
    assert_eq!(first.sha256, policy_sha256(V1));
    assert_eq!(first.updated_by, "release");
    let second = s.set_gate_policy(&approver(), "fraud", V2).await.unwrap();
    assert_eq!(s.get_gate_policy("fraud").await.unwrap(), second);

    s.delete_gate_policy(&approver(), "fraud").await.unwrap();
    assert!(matches!(
        s.delete_gate_policy(&approver(), "fraud").await,
        Err(Error::NotFound { .. })
    ));
    let audit = gate_audit(&*s, "fraud").await;
    let actions: Vec<_> = audit.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        ["gate_policy.set", "gate_policy.set", "gate_policy.delete"]
    );
    assert!(audit[0].before.is_none());
    assert_eq!(audit[0].after.as_ref().unwrap()["rego"], V1);
    assert_eq!(
        audit[1].before.as_ref().unwrap()["sha256"],
        policy_sha256(V1)
    );
    assert_eq!(
        audit[1].after.as_ref().unwrap()["sha256"],
        policy_sha256(V2)
    );
    assert_eq!(audit[2].before.as_ref().unwrap()["rego"], V2);
    assert!(audit[2].after.is_none());
    assert!(audit.iter().all(|e| e.actor == "release"));

    // Deleting the model takes its policy with it.
    s.set_gate_policy(&approver(), "fraud", V1).await.unwrap();
    s.delete_model(&approver(), "fraud").await.unwrap();
    fraud(&*s).await;
    assert!(matches!(
        s.get_gate_policy("fraud").await,
        Err(Error::NotFound { .. })
    ));
    assert!(s.verify_audit().await.unwrap().ok);
}

pub async fn a_promotion_records_its_gate_and_is_refused_when_the_policy_changed(fx: &mut Fixture) {
    let s = fx.store();
    let who = approver();
    fraud(&*s).await;
    for _ in 0..2 {
        s.create_version(&who, "fraud", NewVersion::default())
            .await
            .unwrap();
    }
    s.set_alias(&who, "fraud", "production", 1, "first")
        .await
        .unwrap();
    s.set_gate_policy(&who, "fraud", V1).await.unwrap();

    // Decided under V1, but V2 is stored by the time it commits.
    let stale = GateApproval {
        policy_sha256: Some(policy_sha256(V1)),
        warnings: vec![],
    };
    s.set_gate_policy(&who, "fraud", V2).await.unwrap();
    assert!(matches!(
        s.promote_alias(&who, "fraud", "production", 2, "ci", &stale).await,
        Err(Error::Conflict(m)) if m.contains("changed")
    ));
    // Without any policy, only a decision without one holds.
    let none = GateApproval {
        policy_sha256: None,
        warnings: vec![],
    };
    assert!(matches!(
        s.promote_alias(&who, "fraud", "production", 2, "ci", &none)
            .await,
        Err(Error::Conflict(_))
    ));
    assert_eq!(s.get_alias("fraud", "production").await.unwrap().version, 1);

    let fresh = GateApproval {
        policy_sha256: Some(policy_sha256(V2)),
        warnings: vec!["metrics are old".into()],
    };
    assert!(matches!(
        s.promote_alias(&who, "fraud", "production", 9, "ci", &fresh)
            .await,
        Err(Error::NotFound { .. })
    ));
    let alias = s
        .promote_alias(&who, "fraud", "production", 2, "ci", &fresh)
        .await
        .unwrap();
    assert_eq!(alias.version, 2);
    // A promotion is a `set` move: rollback returns to version 1.
    assert_eq!(alias.history[0].kind, MoveKind::Set);
    let moves = s
        .list_audit(
            &AuditFilter {
                action: Some("alias.set".into()),
                ..Default::default()
            },
            &PageRequest::new(Some(100), None).unwrap(),
        )
        .await
        .unwrap()
        .items;
    let promoted = moves.iter().max_by_key(|e| e.seq).unwrap();
    let after = promoted.after.as_ref().unwrap();
    assert_eq!(after["version"], 2);
    assert_eq!(after["gate"]["policy_sha256"], policy_sha256(V2));
    assert_eq!(after["gate"]["warnings"][0], "metrics are old");
    // Plain alias moves carry no gate.
    let plain = moves.iter().min_by_key(|e| e.seq).unwrap();
    assert!(plain.after.as_ref().unwrap().get("gate").is_none());
    assert_eq!(
        s.rollback_alias(&who, "fraud", "production", "bad")
            .await
            .unwrap()
            .version,
        1
    );
    assert!(s.verify_audit().await.unwrap().ok);
}
