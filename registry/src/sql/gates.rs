//! [`Gates`] on the SQL backends: promotion gate policies (the promotion itself is in
//! `aliases.rs`).

use async_trait::async_trait;
use sqlx::Row;

use super::dialect::{DbConn, Store};
use super::records::*;
use crate::error::{Error, Result};
use crate::gate::{
    GatePolicyRecord, audit_view, gate_policy_target, policy_sha256, validate_policy_text,
};
use crate::roles::Gates;
use crate::types::Actor;

pub(super) async fn load_gate_policy(
    conn: &mut DbConn,
    model: &str,
) -> Result<Option<GatePolicyRecord>> {
    let row = sqlx::query(
        "SELECT p.rego, p.sha256, p.updated_by, p.updated_at
         FROM gate_policies p JOIN models m ON m.id = p.model_id WHERE m.name = $1",
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
async fn require_gate_policy(conn: &mut DbConn, model: &str) -> Result<GatePolicyRecord> {
    match load_gate_policy(&mut *conn, model).await? {
        Some(p) => Ok(p),
        None => {
            model_id(conn, model).await?;
            Err(Error::not_found(format!("gate policy of model {model:?}")))
        }
    }
}

#[async_trait]
impl Gates for Store {
    async fn set_gate_policy(
        &self,
        actor: &Actor,
        model: &str,
        rego: &str,
    ) -> Result<GatePolicyRecord> {
        validate_policy_text(rego)?;
        let args = (model.to_string(), rego.to_string());
        self.audited(actor, args, |mut tx, (model, rego)| {
            Box::pin(async move {
                let id = lock_model(&mut *tx.conn, &model).await?;
                let before = load_gate_policy(&mut *tx.conn, &model).await?;
                sqlx::query(
                    "INSERT INTO gate_policies (model_id, rego, sha256, updated_by, updated_at)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (model_id) DO UPDATE SET rego = excluded.rego,
                       sha256 = excluded.sha256, updated_by = excluded.updated_by,
                       updated_at = excluded.updated_at",
                )
                .bind(id)
                .bind(&rego)
                .bind(policy_sha256(&rego))
                .bind(&tx.actor.name)
                .bind(&tx.now)
                .execute(&mut *tx.conn)
                .await?;
                let after = require_gate_policy(&mut *tx.conn, &model).await?;
                tx.audit(
                    "gate_policy.set",
                    &gate_policy_target(&model),
                    before.as_ref().map(audit_view),
                    Some(audit_view(&after)),
                )
                .await?;
                Ok(after)
            })
        })
        .await
    }

    async fn get_gate_policy(&self, model: &str) -> Result<GatePolicyRecord> {
        self.read(async {
            let mut conn = self.reader().await?;
            require_gate_policy(&mut conn, model).await
        })
        .await
    }

    async fn delete_gate_policy(&self, actor: &Actor, model: &str) -> Result<()> {
        self.audited(actor, model.to_string(), |mut tx, model| {
            Box::pin(async move {
                let before = require_gate_policy(&mut *tx.conn, &model).await?;
                let id = model_id(&mut *tx.conn, &model).await?;
                sqlx::query("DELETE FROM gate_policies WHERE model_id = $1")
                    .bind(id)
                    .execute(&mut *tx.conn)
                    .await?;
                tx.audit(
                    "gate_policy.delete",
                    &gate_policy_target(&model),
                    Some(audit_view(&before)),
                    None,
                )
                .await?;
                Ok(())
            })
        })
        .await
    }
}
