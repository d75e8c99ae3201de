//! Promotion gate policies: per model, a Rego module that decides whether a
//! version may take an alias such as `production`.
//!
//! The registry stores the policy text with its sha256 and audits every
//! change (`gate_policy.set`, `gate_policy.delete`, with the text before
//! and after). It must not parse or evaluate Rego: the daemon's `gate`
//! module compiles a policy before it reaches
//! [`RegistryStore::set_gate_policy`](crate::RegistryStore::set_gate_policy)
//! and evaluates it; this crate only bounds its size. A promotion that
//! passed its gate is stored with [`GateApproval`] in the alias move's
//! audit entry.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::{Row, SqliteConnection};
use utoipa::ToSchema;

use crate::error::{Error, Result};
use crate::sqlite::{SqliteStore, append_audit, load_alias, model_id, parse_time, set_alias_tx};
use crate::types::{Actor, Alias};

/// Largest policy text accepted (bytes). Gate policies are a few rules;
/// the bound keeps audit entries and evaluation small.
pub const MAX_GATE_POLICY_BYTES: usize = 64 * 1024;

/// A model's stored gate policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GatePolicyRecord {
    pub model: String,
    /// The Rego module (`package modelwatch.gate`).
    pub rego: String,
    /// Hex sha256 of `rego`; gate decisions name the policy by it.
    pub sha256: String,
    pub updated_by: String,
    pub updated_at: DateTime<Utc>,
}

/// What a promotion's gate decided, stored in the alias move's audit entry
/// (`after.gate`). A promotion is only ever stored when the gate allowed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GateApproval {
    /// The policy that allowed the move; `None` when the model has no gate
    /// policy (nothing was checked). The move is refused if the stored
    /// policy is no longer this one when it commits.
    pub policy_sha256: Option<String>,
    /// The policy's `warn` messages, kept with the decision.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// Hex sha256 of a policy text.
pub fn policy_sha256(rego: &str) -> String {
    hex::encode(Sha256::digest(rego.as_bytes()))
}

/// The checks the registry owns: not blank, not too large.
pub fn validate_policy_text(rego: &str) -> Result<()> {
    if rego.trim().is_empty() {
        return Err(Error::invalid(
            "rego",
            "the policy is empty; send a Rego module with `package modelwatch.gate` and a `deny` rule",
        ));
    }
    if rego.len() > MAX_GATE_POLICY_BYTES {
        return Err(Error::invalid(
            "rego",
            format!(
                "the policy is {} bytes; at most {MAX_GATE_POLICY_BYTES} bytes are accepted",
                rego.len()
            ),
        ));
    }
    Ok(())
}

fn gate_policy_target(model: &str) -> String {
    format!("model/{model}/gate-policy")
}

/// The audit entry's view of a policy: its digest and its text, so the
/// log shows what changed.
fn audited(record: &GatePolicyRecord) -> serde_json::Value {
    json!({ "sha256": record.sha256, "rego": record.rego })
}

async fn load_gate_policy(
    conn: &mut SqliteConnection,
    model: &str,
) -> Result<Option<GatePolicyRecord>> {
    let row = sqlx::query(
        "SELECT p.rego, p.sha256, p.updated_by, p.updated_at
         FROM gate_policies p JOIN models m ON m.id = p.model_id WHERE m.name = ?",
    )
    .bind(model)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|row| {
        Ok(GatePolicyRecord {
            model: model.to_string(),
            rego: row.get("rego"),
            sha256: row.get("sha256"),
            updated_by: row.get("updated_by"),
            updated_at: parse_time(row.get("updated_at"))?,
        })
    })
    .transpose()
}

/// The policy, or `NotFound` naming what is missing: the model or its policy.
async fn require_gate_policy(conn: &mut SqliteConnection, model: &str) -> Result<GatePolicyRecord> {
    match load_gate_policy(&mut *conn, model).await? {
        Some(p) => Ok(p),
        None => {
            model_id(conn, model).await?;
            Err(Error::not_found(format!("gate policy of model {model:?}")))
        }
    }
}

impl SqliteStore {
    pub(crate) async fn gate_policy_set(
        &self,
        actor: &Actor,
        model: &str,
        rego: &str,
    ) -> Result<GatePolicyRecord> {
        validate_policy_text(rego)?;
        let now = self.now();
        let owned = (actor.clone(), model.to_string(), rego.to_string());
        self.writer
            .run(move |tx| {
                Box::pin(async move {
                    let (actor, model, rego) = (&owned.0, owned.1.as_str(), owned.2.as_str());
                    let id = model_id(&mut *tx, model).await?;
                    let before = load_gate_policy(&mut *tx, model).await?;
                    sqlx::query(
                        "INSERT INTO gate_policies (model_id, rego, sha256, updated_by, updated_at)
                         VALUES (?, ?, ?, ?, ?)
                         ON CONFLICT (model_id) DO UPDATE SET rego = excluded.rego,
                           sha256 = excluded.sha256, updated_by = excluded.updated_by,
                           updated_at = excluded.updated_at",
                    )
                    .bind(id)
                    .bind(rego)
                    .bind(policy_sha256(rego))
                    .bind(&actor.name)
                    .bind(&now)
                    .execute(&mut *tx)
                    .await?;
                    let after = require_gate_policy(&mut *tx, model).await?;
                    append_audit(
                        &mut *tx,
                        &now,
                        actor,
                        "gate_policy.set",
                        &gate_policy_target(model),
                        before.as_ref().map(audited),
                        Some(audited(&after)),
                    )
                    .await?;
                    Ok(after)
                })
            })
            .await
    }

    pub(crate) async fn gate_policy_get(&self, model: &str) -> Result<GatePolicyRecord> {
        let mut conn = self.read.acquire().await?;
        require_gate_policy(&mut conn, model).await
    }

    pub(crate) async fn gate_policy_delete(&self, actor: &Actor, model: &str) -> Result<()> {
        let now = self.now();
        let owned = (actor.clone(), model.to_string());
        self.writer
            .run(move |tx| {
                Box::pin(async move {
                    let (actor, model) = (&owned.0, owned.1.as_str());
                    let before = require_gate_policy(&mut *tx, model).await?;
                    let id = model_id(&mut *tx, model).await?;
                    sqlx::query("DELETE FROM gate_policies WHERE model_id = ?")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    append_audit(
                        &mut *tx,
                        &now,
                        actor,
                        "gate_policy.delete",
                        &gate_policy_target(model),
                        Some(audited(&before)),
                        None,
                    )
                    .await?;
                    Ok(())
                })
            })
            .await
    }

    pub(crate) async fn gate_promote(
        &self,
        actor: &Actor,
        model: &str,
        alias: &str,
        version: i64,
        reason: &str,
        gate: &GateApproval,
    ) -> Result<Alias> {
        crate::validate::alias_name(alias)?;
        crate::validate::version_number(version)?;
        crate::validate::reason(reason)?;
        self.protection
            .check(actor, alias, "promoting to the alias")?;
        let now = self.now();
        let owned = (
            actor.clone(),
            model.to_string(),
            alias.to_string(),
            reason.to_string(),
            gate.clone(),
        );
        self.writer
            .run(move |tx| {
                Box::pin(async move {
                    let (actor, model, alias, reason, gate) = (
                        &owned.0,
                        owned.1.as_str(),
                        owned.2.as_str(),
                        owned.3.as_str(),
                        &owned.4,
                    );
                    // The gate was evaluated before this transaction: if the
                    // policy changed since, its decision no longer holds.
                    let current = load_gate_policy(&mut *tx, model).await?.map(|p| p.sha256);
                    if current != gate.policy_sha256 {
                        model_id(&mut *tx, model).await?;
                        return Err(Error::Conflict(format!(
                            "the gate policy of model {model:?} changed while the gate was being \
                             evaluated; nothing was moved, run the promotion again"
                        )));
                    }
                    set_alias_tx(
                        &mut *tx,
                        &now,
                        actor,
                        model,
                        alias,
                        version,
                        reason,
                        Some(gate),
                    )
                    .await?;
                    load_alias(&mut *tx, model, alias).await
                })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_hex_sha256_of_the_text() {
        assert_eq!(
            policy_sha256("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn blank_and_oversized_policies_are_refused() {
        for bad in [
            String::new(),
            " \n\t".into(),
            "#".repeat(MAX_GATE_POLICY_BYTES + 1),
        ] {
            match validate_policy_text(&bad) {
                Err(Error::InvalidArgument { field, .. }) => assert_eq!(field, "rego"),
                other => panic!("{other:?}"),
            }
        }
        validate_policy_text("package modelwatch.gate\n").unwrap();
    }

    mod store {
        use super::super::policy_sha256;
        use crate::store_tests::store;
        use crate::*;

        fn approver() -> Actor {
            Actor::new("release", Role::Approver)
        }

        async fn fraud(s: &SqliteStore) {
            let new = NewModel {
                name: "fraud".into(),
                ..Default::default()
            };
            s.create_model(&approver(), new).await.unwrap();
        }

        const V1: &str = "package modelwatch.gate\n\ndeny contains \"no\" if false\n";
        const V2: &str = "package modelwatch.gate\n\ndeny contains \"never\" if false\n";

        async fn gate_audit(s: &SqliteStore, model: &str) -> Vec<AuditEntry> {
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

        #[tokio::test]
        async fn gate_policies_are_stored_audited_with_before_and_after_and_removed() {
            let (_d, s) = store().await;
            fraud(&s).await;
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
            assert!(gate_audit(&s, "fraud").await.is_empty());

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
            let audit = gate_audit(&s, "fraud").await;
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
            fraud(&s).await;
            assert!(matches!(
                s.get_gate_policy("fraud").await,
                Err(Error::NotFound { .. })
            ));
            assert!(s.verify_audit().await.unwrap().ok);
        }

        #[tokio::test]
        async fn a_promotion_records_its_gate_and_is_refused_when_the_policy_changed() {
            let (_d, s) = store().await;
            let who = approver();
            fraud(&s).await;
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
    }
}
