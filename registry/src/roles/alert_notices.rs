//! The `AlertNotices` role.

use async_trait::async_trait;

use crate::error::Result;
use crate::types::*;

/// Alertmanager alert states received and what was done about each (see [`crate::alert_notices`]).
#[async_trait]
pub trait AlertNotices: Send + Sync {
    /// Handles one Alertmanager alert state (see [`crate::alert_notices`]):
    /// a repeat returns the earlier record with `duplicate`; otherwise the
    /// action is performed or refused, recorded and audited, in one
    /// transaction.
    async fn record_alert(
        &self,
        actor: &Actor,
        notice: crate::AlertNotice,
        action: crate::AlertAction,
    ) -> Result<crate::AlertHandled>;

    /// Alert states received, oldest first.
    async fn list_alert_notifications(
        &self,
        page: &PageRequest,
    ) -> Result<Page<crate::AlertRecord>>;
}
