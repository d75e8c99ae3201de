//! The `Views` role.

use async_trait::async_trait;

use crate::error::Result;
use crate::types::*;

/// What the daemon reads about the backend itself: liveness, the flat rows of the SQL views, writer figures.
#[async_trait]
pub trait Views: Send + Sync {
    /// Cheap liveness check of the backing database (for `/readyz`).
    async fn ping(&self) -> Result<()>;

    /// Every row of one registry view as a flat JSON object whose keys are
    /// the view's SQL column names (see [`RegistryView`]).
    async fn export_view(&self, view: RegistryView) -> Result<Vec<serde_json::Value>>;

    /// What the backend's writer has done since it was opened (for
    /// `/metrics`); zeros for a backend that does not count.
    fn stats(&self) -> RegistryStats {
        RegistryStats::default()
    }
}

/// What the registry's writer has done since the store was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegistryStats {
    /// Group transactions committed (one fsync each).
    pub transactions: u64,
    /// Changes committed.
    pub changes_committed: u64,
    /// Changes refused (validation, conflicts): rolled back alone.
    pub changes_rejected: u64,
    /// Changes lost to a failed commit (their callers were told to retry).
    pub changes_failed: u64,
    /// Duration of the latest `COMMIT` (includes the fsync).
    pub last_commit_micros: u64,
}
