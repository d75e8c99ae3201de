//! [`Tokens`] on the SQL backends.

use async_trait::async_trait;

use super::dialect::Store;
use super::records::*;
use crate::error::{Error, Result};
use crate::roles::Tokens;
use crate::types::*;
use crate::validate;

#[async_trait]
impl Tokens for Store {
    async fn create_token(
        &self,
        actor: &Actor,
        name: &str,
        role: Role,
        secret_hash: &str,
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<TokenInfo> {
        validate::token_name(name)?;
        if let Some(at) = expires_at
            && at <= self.clock.now()
        {
            return Err(Error::invalid(
                "expires_at",
                format!("{} is not in the future; give a later time", at.to_rfc3339()),
            ));
        }
        let expires = expires_at.map(crate::audit::format_time);
        let args = (name.to_string(), secret_hash.to_string());
        self.audited(actor, args, move |mut tx, (name, secret_hash)| {
            Box::pin(async move {
                sqlx::query("INSERT INTO tokens (name, role, secret_hash, created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)")
                    .bind(&name)
                    .bind(role.as_str())
                    .bind(&secret_hash)
                    .bind(&tx.actor.name)
                    .bind(&tx.now)
                    .bind(&expires)
                    .execute(&mut *tx.conn)
                    .await
                    .map_err(|e| unique_as_exists(e, || format!("token {name:?}")))?;
                let row = sqlx::query("SELECT * FROM tokens WHERE name = $1")
                    .bind(&name)
                    .fetch_one(&mut *tx.conn)
                    .await?;
                let info = token_from_row(&row)?;
                // The fingerprint lets `audit verify` tell a swapped secret.
                let mut after = to_value(&info);
                after[crate::audit::SECRET_FINGERPRINT] =
                    crate::tokens::secret_fingerprint(&secret_hash).into();
                tx.audit("token.create", &format!("token/{name}"), None, Some(after))
                    .await?;
                Ok(info)
            })
        })
        .await
    }

    async fn list_tokens(&self) -> Result<Vec<TokenInfo>> {
        self.read(async {
            let mut conn = self.reader().await?;
            let rows = sqlx::query("SELECT * FROM tokens ORDER BY id")
                .fetch_all(&mut *conn)
                .await?;
            rows.iter().map(token_from_row).collect()
        })
        .await
    }

    async fn revoke_token(&self, actor: &Actor, name: &str) -> Result<TokenInfo> {
        self.audited(actor, name.to_string(), |mut tx, name| {
            Box::pin(async move {
                let row = sqlx::query(concat!(
                    "SELECT * FROM tokens WHERE name = $1",
                    row_lock!("FOR UPDATE")
                ))
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
                sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE name = $2")
                    .bind(&tx.now)
                    .bind(&name)
                    .execute(&mut *tx.conn)
                    .await?;
                let row = sqlx::query("SELECT * FROM tokens WHERE name = $1")
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
        self.read(async {
            let mut conn = self.reader().await?;
            let row =
                sqlx::query("SELECT * FROM tokens WHERE secret_hash = $1 AND revoked_at IS NULL")
                    .bind(secret_hash)
                    .fetch_optional(&mut *conn)
                    .await?;
            row.as_ref().map(token_from_row).transpose()
        })
        .await
    }

    async fn active_admin_tokens(&self) -> Result<i64> {
        self.read(async {
            let mut conn = self.reader().await?;
            let rows = sqlx::query(
                "SELECT * FROM tokens WHERE role = 'admin' AND revoked_at IS NULL",
            )
            .fetch_all(&mut *conn)
            .await?;
            let now = self.clock.now();
            let mut active = 0;
            for row in &rows {
                if !token_from_row(row)?.expired(now) {
                    active += 1;
                }
            }
            Ok(active)
        })
        .await
    }
}
