//! The `Aliases` role.

use async_trait::async_trait;

use crate::error::Result;
use crate::gate::GateApproval;
use crate::types::*;

/// Aliases and their move history: set, delete, roll back, promote (a set that passed its gate).
#[async_trait]
pub trait Aliases: Send + Sync {
    async fn get_alias(&self, model: &str, alias: &str) -> Result<Alias>;

    async fn list_aliases(&self, model: &str) -> Result<Vec<Alias>>;

    async fn set_alias(
        &self,
        actor: &Actor,
        model: &str,
        alias: &str,
        version: i64,
        reason: &str,
    ) -> Result<Alias>;

    /// [`Aliases::set_alias`] without reading the alias and its
    /// whole move history back (that read grows with every move).
    async fn set_alias_target(
        &self,
        actor: &Actor,
        model: &str,
        alias: &str,
        version: i64,
        reason: &str,
    ) -> Result<()>;

    async fn delete_alias(
        &self,
        actor: &Actor,
        model: &str,
        alias: &str,
        reason: &str,
    ) -> Result<()>;

    /// Moves the alias back to the version it served before its current one.
    async fn rollback_alias(
        &self,
        actor: &Actor,
        model: &str,
        alias: &str,
        reason: &str,
    ) -> Result<Alias>;

    /// Moves an alias to a version whose gate allowed it: like
    /// [`set_alias`](Self::set_alias), with the decision in the audit entry
    /// (`after.gate`). Refused with `Conflict`, changing nothing, when the
    /// model's gate policy is no longer the one that decided.
    async fn promote_alias(
        &self,
        actor: &Actor,
        model: &str,
        alias: &str,
        version: i64,
        reason: &str,
        gate: &GateApproval,
    ) -> Result<Alias>;

    /// The version an alias points at.
    async fn get_version_by_alias(&self, model: &str, alias: &str) -> Result<Version>;
}
