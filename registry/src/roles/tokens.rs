//! The `Tokens` role.

use async_trait::async_trait;

use crate::error::Result;
use crate::types::*;

/// API tokens, stored by the sha256 of their secret.
#[async_trait]
pub trait Tokens: Send + Sync {
    /// Stores a token by the sha256 of its secret; the secret itself is
    /// never stored. With `expires_at` (which must be in the future) the
    /// token stops working then.
    async fn create_token(
        &self,
        actor: &Actor,
        name: &str,
        role: Role,
        secret_hash: &str,
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<TokenInfo>;

    async fn list_tokens(&self) -> Result<Vec<TokenInfo>>;

    async fn revoke_token(&self, actor: &Actor, name: &str) -> Result<TokenInfo>;

    /// The token (not revoked) with this secret hash, expired or not: the
    /// caller says which it is ([`TokenInfo::expired`]).
    async fn token_by_hash(&self, secret_hash: &str) -> Result<Option<TokenInfo>>;

    /// Admin tokens neither revoked nor expired.
    async fn active_admin_tokens(&self) -> Result<i64>;
}
