//! The `Policies` role.

use async_trait::async_trait;

use crate::error::Result;
use crate::policy::{MonitoringPolicy, PolicyRecord};
use crate::types::*;

/// Monitoring policies, one per model.
#[async_trait]
pub trait Policies: Send + Sync {
    /// Sets (creates or replaces) a model's monitoring policy; audited as
    /// `policy.set` with the previous policy as `before`.
    async fn set_policy(
        &self,
        actor: &Actor,
        model: &str,
        policy: MonitoringPolicy,
    ) -> Result<PolicyRecord>;

    async fn get_policy(&self, model: &str) -> Result<PolicyRecord>;

    /// Every model's policy, ordered by model name.
    async fn list_policies(&self) -> Result<Vec<PolicyRecord>>;

    /// Removes a policy (the model is no longer watched); audited as
    /// `policy.delete`.
    async fn delete_policy(&self, actor: &Actor, model: &str) -> Result<()>;
}
