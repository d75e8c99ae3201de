//! The `Tokens` role.

use async_trait::async_trait;

use crate::error::Result;
use crate::types::*;

/// API tokens, stored by the sha256 of their secret.
#[async_trait]
pub trait Tokens: Send + Sync {
    /// Stores a token by the sha256 of its secret; the secret itself is never stored.
    async fn create_token(
        &self,
        actor: &Actor,
        name: &str,
        role: Role,
        secret_hash: &str,
    ) -> Result<TokenInfo>;

    async fn list_tokens(&self) -> Result<Vec<TokenInfo>>;

    async fn revoke_token(&self, actor: &Actor, name: &str) -> Result<TokenInfo>;

    /// The active (not revoked) token with this secret hash.
    async fn token_by_hash(&self, secret_hash: &str) -> Result<Option<TokenInfo>>;

    async fn active_admin_tokens(&self) -> Result<i64>;
}
