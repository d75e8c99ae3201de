//! The `Gates` role.

use async_trait::async_trait;

use crate::error::Result;
use crate::gate::GatePolicyRecord;
use crate::types::*;

/// Promotion gate policies (see [`crate::gate`]); the promotion itself is [`Aliases::promote_alias`](crate::roles::Aliases::promote_alias).
#[async_trait]
pub trait Gates: Send + Sync {
    /// Sets (creates or replaces) a model's gate policy. The text must
    /// already have been compiled by the caller; the store checks only its
    /// size. Audited as `gate_policy.set` with the previous text as `before`.
    async fn set_gate_policy(
        &self,
        actor: &Actor,
        model: &str,
        rego: &str,
    ) -> Result<GatePolicyRecord>;

    async fn get_gate_policy(&self, model: &str) -> Result<GatePolicyRecord>;

    /// Removes the gate policy (promotions are no longer checked); audited
    /// as `gate_policy.delete`.
    async fn delete_gate_policy(&self, actor: &Actor, model: &str) -> Result<()>;
}
