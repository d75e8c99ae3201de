//! [`Policies`] on the SQL backends: one monitoring policy per model.

use async_trait::async_trait;
use sqlx::Row;

use super::dialect::{DbConn, DbRow, Store};
use super::records::*;
use crate::error::{Error, Result};
use crate::policy::{MonitoringPolicy, PolicyRecord};
use crate::roles::Policies;
use crate::types::*;

fn policy_target(model: &str) -> String {
    format!("model/{model}/policy")
}

async fn load_policy(conn: &mut DbConn, model: &str) -> Result<PolicyRecord> {
    let row = sqlx::query(
        "SELECT m.name AS model, p.policy, p.updated_by, p.updated_at
         FROM monitoring_policies p JOIN models m ON m.id = p.model_id WHERE m.name = $1",
    )
    .bind(model)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some(row) => policy_from_row(&row),
        None => {
            // Say which is missing: the model, or only its policy.
            model_id(conn, model).await?;
            Err(Error::not_found(format!(
                "monitoring policy of model {model:?}"
            )))
        }
    }
}

fn policy_from_row(row: &DbRow) -> Result<PolicyRecord> {
    let text: String = row.get("policy");
    let model: String = row.get("model");
    let policy = serde_json::from_str(&text)
        .map_err(|e| Error::Corrupt(format!("policy of model {model:?}: {e}")))?;
    Ok(PolicyRecord {
        model,
        policy,
        updated_by: row.get("updated_by"),
        updated_at: parse_time(row.get("updated_at"))?,
    })
}

#[async_trait]
impl Policies for Store {
    async fn set_policy(
        &self,
        actor: &Actor,
        model: &str,
        policy: MonitoringPolicy,
    ) -> Result<PolicyRecord> {
        policy.validate()?;
        let args = (model.to_string(), policy);
        self.audited(actor, args, |mut tx, (model, policy)| {
            Box::pin(async move {
                let id = lock_model(&mut *tx.conn, &model).await?;
                let before = load_policy(&mut *tx.conn, &model).await.ok();
                sqlx::query(
                    "INSERT INTO monitoring_policies (model_id, policy, updated_by, updated_at)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (model_id) DO UPDATE SET policy = excluded.policy,
                       updated_by = excluded.updated_by, updated_at = excluded.updated_at",
                )
                .bind(id)
                .bind(to_value(&policy).to_string())
                .bind(&tx.actor.name)
                .bind(&tx.now)
                .execute(&mut *tx.conn)
                .await?;
                let after = load_policy(&mut *tx.conn, &model).await?;
                tx.audit(
                    "policy.set",
                    &policy_target(&model),
                    before.map(|b| to_value(&b.policy)),
                    Some(to_value(&after.policy)),
                )
                .await?;
                Ok(after)
            })
        })
        .await
    }

    async fn get_policy(&self, model: &str) -> Result<PolicyRecord> {
        self.read(async {
            let mut conn = self.reader().await?;
            load_policy(&mut conn, model).await
        })
        .await
    }

    async fn list_policies(&self) -> Result<Vec<PolicyRecord>> {
        self.read(async {
            let mut conn = self.reader().await?;
            let rows = sqlx::query(
                "SELECT m.name AS model, p.policy, p.updated_by, p.updated_at
             FROM monitoring_policies p JOIN models m ON m.id = p.model_id ORDER BY m.name",
            )
            .fetch_all(&mut *conn)
            .await?;
            rows.iter().map(policy_from_row).collect()
        })
        .await
    }

    async fn delete_policy(&self, actor: &Actor, model: &str) -> Result<()> {
        self.audited(actor, model.to_string(), |mut tx, model| {
            Box::pin(async move {
                let before = load_policy(&mut *tx.conn, &model).await?;
                let id = model_id(&mut *tx.conn, &model).await?;
                sqlx::query("DELETE FROM monitoring_policies WHERE model_id = $1")
                    .bind(id)
                    .execute(&mut *tx.conn)
                    .await?;
                tx.audit(
                    "policy.delete",
                    &policy_target(&model),
                    Some(to_value(&before.policy)),
                    None,
                )
                .await?;
                Ok(())
            })
        })
        .await
    }
}
