//! [`Tokens`] on SQLite.

use async_trait::async_trait;

use super::SqliteStore;
use super::records::*;
use crate::error::{Error, Result};
use crate::roles::Tokens;
use crate::types::*;
use crate::validate;

#[async_trait]
impl Tokens for SqliteStore {
    async fn create_token(
        &self,
        actor: &Actor,
        name: &str,
        role: Role,
        secret_hash: &str,
    ) -> Result<TokenInfo> {
        validate::token_name(name)?;
        let args = (name.to_string(), secret_hash.to_string());
        self.audited(actor, args, move |mut tx, (name, secret_hash)| {
            Box::pin(async move {
                sqlx::query("INSERT INTO tokens (name, role, secret_hash, created_by, created_at) VALUES (?, ?, ?, ?, ?)")
                    .bind(&name)
                    .bind(role.as_str())
                    .bind(&secret_hash)
                    .bind(&tx.actor.name)
                    .bind(&tx.now)
                    .execute(&mut *tx.conn)
                    .await
                    .map_err(|e| unique_as_exists(e, || format!("token {name:?}")))?;
                let row = sqlx::query("SELECT * FROM tokens WHERE name = ?")
                    .bind(&name)
                    .fetch_one(&mut *tx.conn)
                    .await?;
                let info = token_from_row(&row)?;
                tx.audit(
                    "token.create",
                    &format!("token/{name}"),
                    None,
                    Some(to_value(&info)),
                )
                .await?;
                Ok(info)
            })
        })
        .await
    }

    async fn list_tokens(&self) -> Result<Vec<TokenInfo>> {
        let mut conn = self.read.acquire().await?;
        let rows = sqlx::query("SELECT * FROM tokens ORDER BY id")
            .fetch_all(&mut *conn)
            .await?;
        rows.iter().map(token_from_row).collect()
    }

    async fn revoke_token(&self, actor: &Actor, name: &str) -> Result<TokenInfo> {
        self.audited(actor, name.to_string(), |mut tx, name| {
            Box::pin(async move {
                let row = sqlx::query("SELECT * FROM tokens WHERE name = ?")
                    .bind(&name)
                    .fetch_optional(&mut *tx.conn)
                    .await?
                    .ok_or_else(|| Error::not_found(format!("token {name:?}")))?;
                let before = token_from_row(&row)?;
                if before.revoked_at.is_some() {
                    return Err(Error::Conflict(format!(
                        "token {name:?} is already revoked"
                    )));
                }
                sqlx::query("UPDATE tokens SET revoked_at = ? WHERE name = ?")
                    .bind(&tx.now)
                    .bind(&name)
                    .execute(&mut *tx.conn)
                    .await?;
                let row = sqlx::query("SELECT * FROM tokens WHERE name = ?")
                    .bind(&name)
                    .fetch_one(&mut *tx.conn)
                    .await?;
                let after = token_from_row(&row)?;
                tx.audit(
                    "token.revoke",
                    &format!("token/{name}"),
                    Some(to_value(&before)),
                    Some(to_value(&after)),
                )
                .await?;
                Ok(after)
            })
        })
        .await
    }

    async fn token_by_hash(&self, secret_hash: &str) -> Result<Option<TokenInfo>> {
        let mut conn = self.read.acquire().await?;
        let row = sqlx::query("SELECT * FROM tokens WHERE secret_hash = ? AND revoked_at IS NULL")
            .bind(secret_hash)
            .fetch_optional(&mut *conn)
            .await?;
        row.as_ref().map(token_from_row).transpose()
    }

    async fn active_admin_tokens(&self) -> Result<i64> {
        let mut conn = self.read.acquire().await?;
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM tokens WHERE role = 'admin' AND revoked_at IS NULL",
        )
        .fetch_one(&mut *conn)
        .await?)
    }
}
