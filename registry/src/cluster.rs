//! Several daemons on one registry: who is alive, which background duty
//! each holds, and the fence that refuses the writes of a daemon that lost
//! a duty.
//!
//! A duty (the evaluator, the webhook dispatcher, the webhook sender) runs
//! on the one daemon holding its lease ([`crate::roles::Cluster::claim_duty`],
//! decided by [`crate::rules::lease::decide`]). A lease carries a fencing
//! token that grows at every takeover. The duty writes through a store
//! [`fenced`](crate::SqliteStore::fenced) with a [`DutyFence`]: every
//! transaction of that store first checks, under a shared lock on the
//! lease row, that the lease still carries the token this daemon got, and
//! is refused with [`crate::Error::Fenced`] otherwise. So a daemon that
//! paused past its lease (a long GC-like stall, a network partition) and
//! wakes up believing it still holds the duty cannot write: the takeover
//! changed the token, and a takeover waits for a write in flight to commit.

use std::sync::RwLock;

/// What a daemon announces of itself at every heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    pub id: String,
    pub address: String,
    pub version: String,
    pub started_at: chrono::DateTime<chrono::Utc>,
}

/// The duty lease a fenced store's writes must still hold.
#[derive(Debug)]
pub struct DutyFence {
    duty: String,
    held: RwLock<Option<HeldLease>>,
}

/// A lease this daemon holds: the holder id and the fencing token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldLease {
    pub holder: String,
    pub token: i64,
}

impl DutyFence {
    /// A fence for `duty`, not holding it yet: writes are refused until
    /// [`DutyFence::hold`].
    pub fn new(duty: impl Into<String>) -> Self {
        Self {
            duty: duty.into(),
            held: RwLock::new(None),
        }
    }

    pub fn duty(&self) -> &str {
        &self.duty
    }

    /// Records the lease just claimed (`None`: lost or released).
    pub fn hold(&self, lease: Option<HeldLease>) {
        if let Ok(mut held) = self.held.write() {
            *held = lease;
        }
    }

    /// The lease held now, if any.
    pub fn held(&self) -> Option<HeldLease> {
        self.held.read().ok().and_then(|h| h.clone())
    }
}
