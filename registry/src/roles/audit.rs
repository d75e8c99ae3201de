//! The `Audit` role.

use async_trait::async_trait;

use crate::error::Result;
use crate::types::*;

/// Reading and verifying the audit chain. Entries are written only by the mutating calls of the other roles, in the transaction of their change.
#[async_trait]
pub trait Audit: Send + Sync {
    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> Result<Page<AuditEntry>>;

    async fn verify_audit(&self) -> Result<AuditVerification>;
}
