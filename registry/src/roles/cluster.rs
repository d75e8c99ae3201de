//! The `Cluster` role.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::cluster::Announcement;
use crate::error::Result;
use crate::types::{ClusterView, DutyLease};

/// The daemons sharing this registry and their duty leases. Operational
/// records: no audit entries.
#[async_trait]
pub trait Cluster: Send + Sync {
    /// Records that the daemon is alive now (the first call adds it).
    async fn heartbeat(&self, member: &Announcement) -> Result<()>;

    /// Removes the daemon and releases every lease it holds, so other
    /// daemons take its duties at once (a clean shutdown).
    async fn leave_cluster(&self, member_id: &str) -> Result<()>;

    /// Claims or renews `duty` for `holder` until now + `ttl`: the lease
    /// when `holder` holds it afterwards, `None` while another daemon's
    /// lease has not expired.
    async fn claim_duty(
        &self,
        duty: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<DutyLease>>;

    /// Daemons seen since `since` with the duties each holds, and every
    /// lease; `this_daemon` names the one asking.
    async fn cluster_view(&self, this_daemon: &str, since: DateTime<Utc>) -> Result<ClusterView>;
}
