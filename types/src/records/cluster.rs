//! The daemons sharing one registry and the background duties they hold
//! (`GET /api/v1/cluster`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A daemon that has announced itself recently.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ClusterMember {
    /// Unique per process: host name, process id and a random suffix.
    pub id: String,
    /// The HTTP API address the daemon listens on.
    pub address: String,
    /// The modelwatch version it runs.
    pub version: String,
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat.
    pub last_seen: DateTime<Utc>,
    /// The duties whose lease it holds now.
    pub duties: Vec<String>,
}

/// The lease on one background duty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DutyLease {
    /// `evaluator`, `webhook_dispatcher`, `webhook_sender` or `artifact_gc`.
    pub duty: String,
    /// The daemon holding (or that last held) the lease.
    pub holder: String,
    /// Grows by one at every takeover; a write carrying an older token is
    /// refused, so a holder that lost its lease cannot write.
    pub fencing_token: i64,
    pub acquired_at: DateTime<Utc>,
    /// The holder renews before this; after it, another daemon may take
    /// the duty over.
    pub expires_at: DateTime<Utc>,
}

/// `GET /api/v1/cluster`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ClusterView {
    /// `sqlite` (one daemon) or `postgres` (any number).
    pub backend: String,
    /// The daemon answering.
    pub this_daemon: String,
    /// Daemons seen within the member timeout, oldest first.
    pub members: Vec<ClusterMember>,
    /// Every duty's lease, held or expired.
    pub duties: Vec<DutyLease>,
}
