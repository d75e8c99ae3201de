//! The registry's behaviour through the role traits, on any backend.

use serde_json::json;

use super::Fixture;
use crate::*;

fn admin() -> Actor {
    Actor::new("root", Role::Admin)
}

fn model(name: &str) -> NewModel {
    NewModel {
        name: name.into(),
        ..Default::default()
    }
}

fn page(limit: u32, cursor: Option<String>) -> PageRequest {
    PageRequest::new(Some(limit), cursor).unwrap()
}

pub async fn model_lifecycle_and_errors(fx: &mut Fixture) {
    let s = fx.store();
    let m = s
        .create_model(
            &admin(),
            NewModel {
                name: "fraud".into(),
                description: "card fraud".into(),
                owner: "risk".into(),
                tags: [("team".to_string(), "risk".to_string())].into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(m.latest_version, 0);
    assert!(matches!(
        s.create_model(&admin(), model("fraud")).await,
        Err(Error::AlreadyExists { .. })
    ));
    assert!(matches!(
        s.create_model(&admin(), model("bad name")).await,
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        s.get_model("nope").await,
        Err(Error::NotFound { .. })
    ));
    let m = s
        .update_model(
            &admin(),
            "fraud",
            ModelUpdate {
                owner: Some("ml".into()),
                description: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (m.owner.as_str(), m.description.as_str()),
        ("ml", "card fraud")
    );
    s.delete_model(&admin(), "fraud").await.unwrap();
    assert!(matches!(
        s.get_model("fraud").await,
        Err(Error::NotFound { .. })
    ));
}

pub async fn fifty_concurrent_creations_get_numbers_one_to_fifty(fx: &mut Fixture) {
    let s = fx.store();
    s.create_model(&admin(), model("m")).await.unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                s.create_version(&admin(), "m", NewVersion::default())
                    .await
                    .unwrap()
                    .version
            })
        })
        .collect();
    let mut numbers = Vec::new();
    for t in tasks {
        numbers.push(t.await.unwrap());
    }
    numbers.sort();
    assert_eq!(numbers, (1..=50).collect::<Vec<_>>());
    assert_eq!(s.get_model("m").await.unwrap().latest_version, 50);
}

pub async fn version_numbers_are_not_reused_and_lineage_is_checked(fx: &mut Fixture) {
    let s = fx.store();
    s.create_model(&admin(), model("m")).await.unwrap();
    s.create_version(&admin(), "m", NewVersion::default())
        .await
        .unwrap();
    s.create_version(&admin(), "m", NewVersion::default())
        .await
        .unwrap();
    s.delete_version(&admin(), "m", 2).await.unwrap();
    let v = s
        .create_version(
            &admin(),
            "m",
            NewVersion {
                source_uri: Some("s3://b/m/3".into()),
                artifact_digest: Some(format!("sha256:{}", "ab".repeat(32))),
                run_id: Some("run-7".into()),
                lineage: Lineage {
                    training_data: vec![DataRef {
                        uri: "s3://b/train.parquet".into(),
                        digest: None,
                    }],
                    code_commit: Some("abc123".into()),
                    parent_version: Some(1),
                    parameters: [("depth".to_string(), "6".to_string())].into(),
                    metrics: [("auc".to_string(), 0.91)].into(),
                },
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(v.version, 3);
    assert_eq!(v.lineage.parent_version, Some(1));
    assert_eq!(
        s.get_version("m", 3).await.unwrap().lineage.metrics["auc"],
        0.91
    );
    let bad_parent = NewVersion {
        lineage: Lineage {
            parent_version: Some(2),
            ..Default::default()
        },
        ..Default::default()
    };
    assert!(matches!(
        s.create_version(&admin(), "m", bad_parent).await,
        Err(Error::InvalidArgument { .. })
    ));
    // A rejected request changed nothing: the next number is still 4.
    assert_eq!(
        s.create_version(&admin(), "m", NewVersion::default())
            .await
            .unwrap()
            .version,
        4
    );
}

pub async fn aliases_move_roll_back_and_protect_their_versions(fx: &mut Fixture) {
    let s = fx.store();
    s.create_model(&admin(), model("m")).await.unwrap();
    for _ in 0..3 {
        s.create_version(&admin(), "m", NewVersion::default())
            .await
            .unwrap();
    }
    for v in 1..=3 {
        s.set_alias(&admin(), "m", "production", v, "deploy")
            .await
            .unwrap();
    }
    assert!(matches!(
        s.delete_version(&admin(), "m", 3).await,
        Err(Error::Conflict(_))
    ));
    let a = s
        .rollback_alias(&admin(), "m", "production", "bad latency")
        .await
        .unwrap();
    assert_eq!(a.version, 2);
    assert_eq!(a.history[0].kind, MoveKind::Rollback);
    assert_eq!(a.history.len(), 4);
    let a = s
        .rollback_alias(&admin(), "m", "production", "still bad")
        .await
        .unwrap();
    assert_eq!(a.version, 1);
    assert!(matches!(
        s.rollback_alias(&admin(), "m", "production", "").await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        s.set_alias(&admin(), "m", "production", 9, "").await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        s.set_alias(&admin(), "m", "latest", 1, "").await,
        Err(Error::InvalidArgument { .. })
    ));
    let v1 = s.get_version("m", 1).await.unwrap();
    assert_eq!(v1.aliases, vec!["production".to_string()]);
    assert_eq!(s.get_model("m").await.unwrap().aliases["production"], 1);
    s.delete_alias(&admin(), "m", "production", "retired")
        .await
        .unwrap();
    assert!(matches!(
        s.get_alias("m", "production").await,
        Err(Error::NotFound { .. })
    ));
}

/// Setting an alias is last-writer-wins: concurrent sets of one alias (as
/// from several daemons) all succeed, one after another, each recorded.
pub async fn concurrent_sets_of_one_alias_all_succeed_in_turn(fx: &mut Fixture) {
    let s = fx.store();
    s.create_model(&admin(), model("m")).await.unwrap();
    for _ in 0..8 {
        s.create_version(&admin(), "m", NewVersion::default())
            .await
            .unwrap();
    }
    let sets: Vec<_> = (1..=8)
        .map(|v| {
            let s = s.clone();
            tokio::spawn(async move { s.set_alias(&admin(), "m", "staging", v, "deploy").await })
        })
        .collect();
    for set in sets {
        set.await.unwrap().unwrap();
    }
    let alias = s.get_alias("m", "staging").await.unwrap();
    assert_eq!(alias.history.len(), 8, "{alias:?}");
    // The moves chain: each left the version the previous one set.
    let newest_first: Vec<_> = alias
        .history
        .iter()
        .map(|m| (m.from_version, m.to_version))
        .collect();
    for pair in newest_first.windows(2) {
        assert_eq!(pair[0].0, pair[1].1, "{newest_first:?}");
    }
    assert_eq!(newest_first[0].1, Some(alias.version));
    assert_eq!(newest_first[7].0, None);
}

pub async fn recommendations_have_one_open_per_kind_and_a_lifecycle(fx: &mut Fixture) {
    let s = fx.store();
    s.create_model(&admin(), model("m")).await.unwrap();
    s.create_version(&admin(), "m", NewVersion::default())
        .await
        .unwrap();
    let raise = |reason: &str, psi: f64| NewRecommendation {
        kind: RecommendationKind::Retrain,
        severity: Severity::Warning,
        reason: reason.into(),
        evidence: json!({ "psi": psi }),
    };
    let r1 = s
        .raise_recommendation(&admin(), "m", 1, raise("drift", 0.2))
        .await
        .unwrap();
    let r2 = s
        .raise_recommendation(&admin(), "m", 1, raise("more drift", 0.3))
        .await
        .unwrap();
    assert_eq!(r1.id, r2.id);
    assert_eq!(r2.evidence["psi"], 0.3);
    assert_eq!(
        s.get_version("m", 1).await.unwrap().recommendations.len(),
        1
    );
    let acked = s
        .transition_recommendation(&admin(), r1.id, Transition::Acknowledge, "")
        .await
        .unwrap();
    assert_eq!(acked.status, RecommendationStatus::Open);
    assert_eq!(acked.acknowledged_by.as_deref(), Some("root"));
    let dismissed = s
        .transition_recommendation(&admin(), r1.id, Transition::Dismiss, "seasonal")
        .await
        .unwrap();
    assert_eq!(dismissed.status, RecommendationStatus::Dismissed);
    assert!(matches!(
        s.transition_recommendation(&admin(), r1.id, Transition::Apply, "")
            .await,
        Err(Error::Conflict(_))
    ));
    let r3 = s
        .raise_recommendation(&admin(), "m", 1, raise("drift again", 0.4))
        .await
        .unwrap();
    assert_ne!(r3.id, r1.id);
    let open = s
        .list_recommendations(
            &RecommendationFilter {
                status: Some(RecommendationStatus::Open),
                ..Default::default()
            },
            &page(10, None),
        )
        .await
        .unwrap();
    assert_eq!(
        open.items.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![r3.id]
    );
}

pub async fn listings_paginate_and_filter(fx: &mut Fixture) {
    let s = fx.store();
    for i in 0..5 {
        let mut m = model(&format!("model-{i}"));
        m.tags.insert(
            "tier".into(),
            if i % 2 == 0 { "gold" } else { "silver" }.into(),
        );
        s.create_model(&admin(), m).await.unwrap();
    }
    let mut names = Vec::new();
    let mut cursor = None;
    loop {
        let p = s
            .list_models(&ModelFilter::default(), &page(2, cursor))
            .await
            .unwrap();
        assert!(p.items.len() <= 2);
        names.extend(p.items.into_iter().map(|m| m.name));
        match p.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(
        names,
        (0..5).map(|i| format!("model-{i}")).collect::<Vec<_>>()
    );
    let gold = s
        .list_models(
            &ModelFilter {
                tags: vec![("tier".into(), "gold".into())],
                ..Default::default()
            },
            &page(10, None),
        )
        .await
        .unwrap();
    assert_eq!(gold.items.len(), 3);
    let bad = s
        .list_models(&ModelFilter::default(), &page(2, Some("garbage!".into())))
        .await;
    assert!(matches!(bad, Err(Error::InvalidArgument { .. })));
}

pub async fn every_change_is_audited(fx: &mut Fixture) {
    let s = fx.store();
    s.create_model(&admin(), model("m")).await.unwrap();
    s.create_version(&admin(), "m", NewVersion::default())
        .await
        .unwrap();
    s.set_tag(
        &admin(),
        &TagTarget::Version {
            model: "m".into(),
            version: 1,
        },
        "stage",
        Some("canary"),
    )
    .await
    .unwrap();
    s.set_alias(&admin(), "m", "production", 1, "")
        .await
        .unwrap();
    let log = s
        .list_audit(&AuditFilter::default(), &page(100, None))
        .await
        .unwrap();
    let actions: Vec<_> = log.items.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "model.create",
            "version.create",
            "version.tag.set",
            "alias.set"
        ]
    );
    assert!(s.verify_audit().await.unwrap().ok);
}

pub async fn refusals_are_chained_and_tokens_are_checked_against_the_chain(fx: &mut Fixture) {
    use crate::audit::AuditEvent;
    let s = fx.store();
    assert_eq!(s.audit_head().await.unwrap(), None);
    let hash = tokens::hash_secret(&tokens::generate_secret());
    s.create_token(&admin(), "ci", Role::Editor, &hash, None)
        .await
        .unwrap();
    s.create_token(
        &admin(),
        "old",
        Role::Reader,
        &tokens::hash_secret("x"),
        None,
    )
    .await
    .unwrap();
    s.revoke_token(&admin(), "old").await.unwrap();
    let denied = AuditEvent::GateDenied {
        model: "fraud".into(),
        version: 3,
        alias: Some("production".into()),
        promotion: true,
        reasons: vec!["auc 0.7 is below the minimum 0.8".into()],
        policy_sha256: Some("ab".repeat(32)),
    };
    s.record_audit(&Actor::new("release", Role::Approver), &denied)
        .await
        .unwrap();
    let failed = AuditEvent::AuthFailed {
        reason: "unknown or revoked token".into(),
        token: None,
        via: "api",
        suppressed: 2,
    };
    s.record_audit(&Actor::new("anonymous", Role::Reader), &failed)
        .await
        .unwrap();
    let log = s
        .list_audit(&AuditFilter::default(), &page(100, None))
        .await
        .unwrap();
    let entries: Vec<_> = log
        .items
        .iter()
        .map(|e| (e.action.as_str(), e.actor.as_str(), e.target.as_str()))
        .collect();
    assert_eq!(
        entries[3..],
        [
            ("gate.denied", "release", "model/fraud/version/3"),
            ("auth.failed", "anonymous", "auth"),
        ]
    );
    assert_eq!(log.items[3].after.as_ref(), Some(&denied.after()));
    assert_eq!(log.items[4].after.as_ref().unwrap()["suppressed"], 2);
    // The token entry records the secret's fingerprint, never the hash.
    let created = log.items[0].after.as_ref().unwrap();
    assert_eq!(
        created[crate::audit::SECRET_FINGERPRINT],
        tokens::secret_fingerprint(&hash)
    );
    assert!(!created.to_string().contains(&hash));
    let last = log.items.last().unwrap();
    assert_eq!(
        s.audit_head().await.unwrap(),
        Some((last.seq, last.hash.clone()))
    );
    assert_eq!(
        s.audit_hash(2).await.unwrap().as_ref(),
        Some(&log.items[1].hash)
    );
    assert_eq!(s.audit_hash(99).await.unwrap(), None);
    let v = s.verify_audit().await.unwrap();
    assert!(v.ok, "{v:?}");
    assert_eq!((v.entries_checked, v.tokens_checked), (5, 2));
}

pub async fn tokens_store_only_hashes_and_revoke(fx: &mut Fixture) {
    let s = fx.store();
    let secret = tokens::generate_secret();
    let hash = tokens::hash_secret(&secret);
    s.create_token(&admin(), "ci", Role::Editor, &hash, None)
        .await
        .unwrap();
    assert_eq!(
        s.token_by_hash(&hash).await.unwrap().unwrap().role,
        Role::Editor
    );
    assert!(matches!(
        s.create_token(&admin(), "ci", Role::Reader, "x", None)
            .await,
        Err(Error::AlreadyExists { .. })
    ));
    assert_eq!(s.active_admin_tokens().await.unwrap(), 0);
    s.revoke_token(&admin(), "ci").await.unwrap();
    assert!(s.token_by_hash(&hash).await.unwrap().is_none());
    assert!(matches!(
        s.revoke_token(&admin(), "ci").await,
        Err(Error::Conflict(_))
    ));
}

pub async fn tokens_expire_and_stop_counting_as_admins(fx: &mut Fixture) {
    let s = fx.store();
    let clock = fx.clock();
    let now = clock.now();
    let hash = tokens::hash_secret(&tokens::generate_secret());
    assert!(matches!(
        s.create_token(&admin(), "late", Role::Admin, &hash, Some(now))
            .await,
        Err(Error::InvalidArgument { .. })
    ));
    let at = now + chrono::Duration::hours(1);
    let info = s
        .create_token(&admin(), "oncall", Role::Admin, &hash, Some(at))
        .await
        .unwrap();
    assert_eq!(info.expires_at, Some(at));
    let found = s.token_by_hash(&hash).await.unwrap().unwrap();
    assert_eq!(found.expires_at, Some(at));
    assert!(!found.expired(clock.now()));
    assert_eq!(s.active_admin_tokens().await.unwrap(), 1);
    clock.advance(chrono::Duration::hours(2));
    // Still found (the caller tells an expired token from an unknown one),
    // but expired, and no longer an admin that keeps the daemon reachable.
    let found = s.token_by_hash(&hash).await.unwrap().unwrap();
    assert!(found.expired(clock.now()));
    assert_eq!(s.active_admin_tokens().await.unwrap(), 0);
    let listed = s.list_tokens().await.unwrap();
    assert_eq!(listed[0].expires_at, Some(at));
}

pub async fn failed_changes_in_a_group_commit_leave_the_others_and_the_chain_intact(
    fx: &mut Fixture,
) {
    let s = fx.store();
    // Forty concurrent registrations of ten names: ten succeed, thirty are
    // duplicates rolled back inside the shared transaction.
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                s.create_model(&admin(), model(&format!("m{}", i % 10)))
                    .await
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(Error::AlreadyExists { .. }) => {}
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert_eq!(ok, 10);
    let log = s
        .list_audit(&AuditFilter::default(), &page(1000, None))
        .await
        .unwrap();
    assert_eq!(log.items.len(), 10, "only committed changes are audited");
    assert!(s.verify_audit().await.unwrap().ok);
    let models = s
        .list_models(&ModelFilter::default(), &page(100, None))
        .await
        .unwrap();
    assert_eq!(models.items.len(), 10);
}

pub async fn views_export_flat_rows_with_sql_column_names(fx: &mut Fixture) {
    let s = fx.store();
    s.create_model(&admin(), model("m")).await.unwrap();
    s.create_version(
        &admin(),
        "m",
        NewVersion {
            run_id: Some("r1".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    s.set_alias(&admin(), "m", "production", 1, "go")
        .await
        .unwrap();
    let versions = s.export_view(RegistryView::Versions).await.unwrap();
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0]["model"], "m");
    assert_eq!(versions[0]["version"], 1);
    assert_eq!(versions[0]["run_id"], "r1");
    assert!(
        versions[0]["lineage"].is_string(),
        "JSON fields are exported as JSON text"
    );
    let moves = s.export_view(RegistryView::AliasMoves).await.unwrap();
    assert_eq!(
        (moves[0]["to_version"].as_i64(), moves[0]["reason"].as_str()),
        (Some(1), Some("go"))
    );
    let audit = s.export_view(RegistryView::AuditLog).await.unwrap();
    assert_eq!(audit.len(), 3);
    assert_eq!(audit[2]["action"], "alias.set");
    for view in RegistryView::ALL {
        s.export_view(view).await.unwrap();
    }
}

pub async fn version_features_are_declared_updated_audited_and_validated(fx: &mut Fixture) {
    let s = fx.store();
    s.create_model(&admin(), model("m")).await.unwrap();
    let declared: Features = [
        ("amount".to_string(), FeatureKind::Numeric),
        ("country".to_string(), FeatureKind::Categorical),
    ]
    .into();
    let v = s
        .create_version(
            &admin(),
            "m",
            NewVersion {
                features: declared.clone(),
                reference_uri: Some("/data/ref.parquet".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(v.features, declared);
    let got = s.get_version("m", 1).await.unwrap();
    assert_eq!(got.features, declared);
    assert_eq!(got.reference_uri.as_deref(), Some("/data/ref.parquet"));

    // Update replaces the declaration; other fields are untouched.
    let replaced: Features = [("amount".to_string(), FeatureKind::Categorical)].into();
    let v = s
        .update_version(
            &admin(),
            "m",
            1,
            VersionUpdate {
                features: Some(replaced.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(v.features, replaced);
    assert_eq!(v.reference_uri.as_deref(), Some("/data/ref.parquet"));
    // An update without `features` keeps them.
    let v = s
        .update_version(
            &admin(),
            "m",
            1,
            VersionUpdate {
                description: Some("d".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(v.features, replaced);

    // Audited with before/after.
    let audit = s
        .list_audit(
            &AuditFilter {
                action: Some("version.update".into()),
                ..Default::default()
            },
            &page(10, None),
        )
        .await
        .unwrap();
    let first = &audit.items[0];
    assert_eq!(
        first.before.as_ref().unwrap()["features"]["amount"],
        "numeric"
    );
    assert_eq!(
        first.after.as_ref().unwrap()["features"]["amount"],
        "categorical"
    );

    // Reserved and empty names are refused and change nothing.
    for bad in ["ts", "prediction", ""] {
        let err = s
            .update_version(
                &admin(),
                "m",
                1,
                VersionUpdate {
                    features: Some([(bad.to_string(), FeatureKind::Numeric)].into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidArgument { .. }),
            "{bad:?}: {err}"
        );
    }
    assert_eq!(s.get_version("m", 1).await.unwrap().features, replaced);

    // JSON shape: kinds are lowercase strings.
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["features"], json!({"amount": "categorical"}));
    let view = s.export_view(RegistryView::Versions).await.unwrap();
    let features: Features = serde_json::from_str(view[0]["features"].as_str().unwrap()).unwrap();
    assert_eq!(features, replaced);
    assert_eq!(view[0]["reference_uri"], "/data/ref.parquet");
}

pub async fn policies_are_stored_audited_and_removed_with_their_model(fx: &mut Fixture) {
    let s = fx.store();
    s.create_model(&admin(), model("fraud")).await.unwrap();
    assert!(matches!(
        s.get_policy("fraud").await,
        Err(Error::NotFound { what }) if what.contains("policy")
    ));
    assert!(matches!(
        s.set_policy(&admin(), "ghost", MonitoringPolicy::default()).await,
        Err(Error::NotFound { what }) if what.contains("ghost")
    ));
    let mut policy = MonitoringPolicy {
        persistence: 5,
        ..Default::default()
    };
    let rec = s
        .set_policy(&admin(), "fraud", policy.clone())
        .await
        .unwrap();
    assert_eq!(rec.policy, policy);
    assert_eq!(rec.updated_by, "root");
    let bad = MonitoringPolicy {
        drift_share: 2.0,
        ..MonitoringPolicy::default()
    };
    assert!(matches!(
        s.set_policy(&admin(), "fraud", bad).await,
        Err(Error::InvalidArgument { .. })
    ));
    policy.persistence = 2;
    s.set_policy(&admin(), "fraud", policy.clone())
        .await
        .unwrap();
    assert_eq!(s.get_policy("fraud").await.unwrap().policy.persistence, 2);
    assert_eq!(s.list_policies().await.unwrap().len(), 1);

    let audit = s
        .list_audit(
            &AuditFilter {
                target_prefix: Some("model/fraud/policy".into()),
                ..Default::default()
            },
            &page(10, None),
        )
        .await
        .unwrap();
    let actions: Vec<_> = audit.items.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["policy.set", "policy.set"]);
    let latest = audit.items.iter().max_by_key(|e| e.seq).unwrap();
    assert_eq!(latest.before.as_ref().unwrap()["persistence"], 5);
    assert_eq!(latest.after.as_ref().unwrap()["persistence"], 2);

    s.delete_policy(&admin(), "fraud").await.unwrap();
    assert!(s.list_policies().await.unwrap().is_empty());
    s.set_policy(&admin(), "fraud", policy).await.unwrap();
    s.delete_model(&admin(), "fraud").await.unwrap();
    assert!(s.list_policies().await.unwrap().is_empty());
    assert!(s.verify_audit().await.unwrap().ok);
}

fn notice(fingerprint: &str, status: &str, version: i64) -> AlertNotice {
    AlertNotice {
        fingerprint: fingerprint.into(),
        starts_at: "2026-11-27T12:00:00Z".parse().unwrap(),
        status: status.into(),
        alert_name: "ModelwatchRollbackRecommended".into(),
        model: Some("m".into()),
        version: Some(version),
        alert: json!({"labels": {"model": "m"}}),
    }
}

/// Model `m` with `versions` versions, each deployed to `production` in
/// turn (the last one serves).
async fn deployed_in_turn(s: &dyn RegistryStore, versions: i64) {
    s.create_model(&admin(), model("m")).await.unwrap();
    for v in 1..=versions {
        s.create_version(&admin(), "m", NewVersion::default())
            .await
            .unwrap();
        s.set_alias(&admin(), "m", "production", v, "deploy")
            .await
            .unwrap();
    }
}

fn rollback(version: i64) -> AlertAction {
    AlertAction::Rollback {
        model: "m".into(),
        alias: "production".into(),
        version,
        reason: "Alertmanager alert ModelwatchRollbackRecommended firing".into(),
    }
}

pub async fn an_alert_rolls_back_once_applies_the_recommendation_and_is_audited(fx: &mut Fixture) {
    let s = fx.store();
    let am = Actor::new("alertmanager", Role::Approver);
    deployed_in_turn(&*s, 2).await;
    let rec = s
        .raise_recommendation(
            &Actor::new("evaluator", Role::Admin),
            "m",
            2,
            NewRecommendation {
                kind: RecommendationKind::Rollback,
                severity: Severity::Critical,
                reason: "worse".into(),
                evidence: json!({}),
            },
        )
        .await
        .unwrap();

    let first = s
        .record_alert(&am, notice("fp1", "firing", 2), rollback(2))
        .await
        .unwrap();
    assert!(!first.duplicate);
    assert_eq!(first.record.outcome, AlertOutcome::RolledBack);
    assert!(
        first.record.detail.contains("from version 2 to version 1"),
        "{}",
        first.record.detail
    );
    let alias = s.get_alias("m", "production").await.unwrap();
    assert_eq!(alias.version, 1);
    assert_eq!(alias.history[0].kind, MoveKind::Rollback);
    assert_eq!(alias.history[0].actor, "alertmanager");
    let rec = s.get_recommendation(rec.id).await.unwrap();
    assert_eq!(rec.status, RecommendationStatus::Applied);
    assert_eq!(rec.resolved_by.as_deref(), Some("alertmanager"));

    // Alertmanager repeats the notification: nothing moves again.
    let again = s
        .record_alert(&am, notice("fp1", "firing", 2), rollback(2))
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.record.id, first.record.id);
    assert_eq!(s.get_alias("m", "production").await.unwrap().version, 1);

    // The same alert state resolving is a new, recorded state.
    let resolved = s
        .record_alert(
            &am,
            notice("fp1", "resolved", 2),
            AlertAction::Record {
                outcome: AlertOutcome::Resolved,
                detail: "alert resolved".into(),
            },
        )
        .await
        .unwrap();
    assert!(!resolved.duplicate);
    assert_eq!(resolved.record.outcome, AlertOutcome::Resolved);

    let audit = s
        .list_audit(
            &AuditFilter {
                actor: Some("alertmanager".into()),
                ..Default::default()
            },
            &page(100, None),
        )
        .await
        .unwrap();
    let actions: Vec<&str> = audit.items.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "alias.rollback",
            "recommendation.apply",
            "alert.rolled_back",
            "alert.resolved"
        ]
    );
    assert!(s.verify_audit().await.unwrap().ok);
    let listed = s.list_alert_notifications(&page(10, None)).await.unwrap();
    assert_eq!(listed.items.len(), 2);
}

pub async fn an_alert_about_a_version_no_longer_deployed_is_refused_and_recorded(fx: &mut Fixture) {
    let s = fx.store();
    let am = Actor::new("alertmanager", Role::Approver);
    deployed_in_turn(&*s, 3).await;
    // The alert is about version 2; version 3 serves now.
    let out = s
        .record_alert(&am, notice("fp2", "firing", 2), rollback(2))
        .await
        .unwrap();
    assert_eq!(out.record.outcome, AlertOutcome::Refused);
    assert!(
        out.record.detail.contains("points at version 3 now"),
        "{}",
        out.record.detail
    );
    assert_eq!(s.get_alias("m", "production").await.unwrap().version, 3);

    // Unknown alias and unknown model are refusals too, not errors.
    let mut other = rollback(3);
    if let AlertAction::Rollback { alias, .. } = &mut other {
        *alias = "champion".into();
    }
    let out = s
        .record_alert(&am, notice("fp3", "firing", 3), other)
        .await
        .unwrap();
    assert_eq!(out.record.outcome, AlertOutcome::Refused);
    let out = s
        .record_alert(
            &am,
            notice("fp4", "firing", 1),
            AlertAction::Recommend {
                model: "ghost".into(),
                version: 1,
                recommendation: NewRecommendation {
                    kind: RecommendationKind::Retrain,
                    severity: Severity::Warning,
                    reason: "drift".into(),
                    evidence: json!({}),
                },
            },
        )
        .await
        .unwrap();
    assert_eq!(out.record.outcome, AlertOutcome::Refused);
    assert!(out.record.detail.contains("ghost"), "{}", out.record.detail);

    let audit = s
        .list_audit(
            &AuditFilter {
                action: Some("alert.refused".into()),
                ..Default::default()
            },
            &page(100, None),
        )
        .await
        .unwrap();
    assert_eq!(audit.items.len(), 3);
    assert_eq!(audit.items[0].target, "alert/fp2");
}

pub async fn protected_aliases_need_an_approver_on_every_path_that_moves_them(fx: &mut Fixture) {
    let s = fx.store();
    let editor = Actor::new("ci", Role::Editor);
    let approver = Actor::new("release", Role::Approver);
    s.create_model(&admin(), model("m")).await.unwrap();
    for _ in 0..2 {
        s.create_version(&admin(), "m", NewVersion::default())
            .await
            .unwrap();
    }
    s.set_alias(&approver, "m", "production", 1, "first")
        .await
        .unwrap();
    let forbidden = |r: Result<_>| matches!(r, Err(Error::Forbidden(_)));
    // Moving it, in any spelling, and everything that would take it along.
    for alias in ["production", "Production", "PRODUCTION"] {
        assert!(
            forbidden(s.set_alias(&editor, "m", alias, 2, "").await.map(drop)),
            "{alias}"
        );
        assert!(forbidden(s.delete_alias(&editor, "m", alias, "").await));
    }
    assert!(forbidden(
        s.rollback_alias(&editor, "m", "production", "")
            .await
            .map(drop)
    ));
    assert!(forbidden(s.delete_model(&editor, "m").await));
    assert!(forbidden(
        s.rename_model(&editor, "m", "m2").await.map(drop)
    ));
    // Stages of the same name: into Production, and out of it.
    assert!(forbidden(
        s.transition_stage(&editor, "m", 2, Stage::Production, false)
            .await
            .map(drop)
    ));
    s.transition_stage(&approver, "m", 2, Stage::Production, false)
        .await
        .unwrap();
    assert!(forbidden(
        s.transition_stage(&editor, "m", 2, Stage::Archived, false)
            .await
            .map(drop)
    ));
    // Nothing of the refused changes happened.
    assert_eq!(s.get_alias("m", "production").await.unwrap().version, 1);
    assert_eq!(
        s.get_version("m", 2).await.unwrap().stage,
        Stage::Production
    );
    assert!(s.get_model("m").await.is_ok());
    // Unprotected aliases stay an editor's business; an approver may do all.
    s.set_alias(&editor, "m", "staging", 2, "").await.unwrap();
    s.delete_alias(&editor, "m", "staging", "").await.unwrap();
    s.rename_model(&approver, "m", "m2").await.unwrap();
    s.delete_model(&approver, "m2").await.unwrap();
    // Reasons are bounded and free of control characters.
    s.create_model(&admin(), model("r")).await.unwrap();
    s.create_version(&admin(), "r", NewVersion::default())
        .await
        .unwrap();
    for bad in [
        "x".repeat(validate::MAX_REASON + 1),
        "a\u{202E}b".into(),
        "nul\0".into(),
    ] {
        assert!(matches!(
            s.set_alias(&admin(), "r", "canary", 1, &bad).await,
            Err(Error::InvalidArgument { .. })
        ));
    }
    s.set_alias(&admin(), "r", "canary", 1, "multi\nline\tis fine")
        .await
        .unwrap();
    // Owners are one line without control characters.
    for bad in ["a\0b", "bell\u{7}", "rtl\u{202E}txt", "two\nlines"] {
        assert!(matches!(
            s.create_model(
                &admin(),
                NewModel {
                    name: "o".into(),
                    owner: bad.into(),
                    ..Default::default()
                }
            )
            .await,
            Err(Error::InvalidArgument { .. })
        ));
    }
}
