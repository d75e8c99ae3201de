//! The `Audit` role.

use async_trait::async_trait;

use crate::error::Result;
use crate::rules::audit::AuditEvent;
use crate::types::*;

/// Reading and verifying the audit chain. Entries are written only by the mutating calls of the other roles, in the transaction of their change.
#[async_trait]
pub trait Audit: Send + Sync {
    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> Result<Page<AuditEntry>>;

    /// Recomputes the whole chain, then compares the `tokens` table with
    /// what the chain's token entries say it must hold.
    async fn verify_audit(&self) -> Result<AuditVerification>;

    /// The chain's last entry `(seq, hash)`, if any.
    async fn audit_head(&self) -> Result<Option<(i64, String)>>;

    /// The hash of entry `seq`, if the chain holds it.
    async fn audit_hash(&self, seq: i64) -> Result<Option<String>>;

    /// Appends an entry for something that changes no record (a denied
    /// gate, a refused credential), chained like every other entry.
    async fn record_audit(&self, actor: &Actor, event: &AuditEvent) -> Result<()>;
}
