//! This daemon among the daemons sharing one registry: its heartbeat, and
//! the leases of the background duties that must run on one daemon at a
//! time (the evaluator, the webhook dispatcher, the webhook sender, the
//! artifact garbage collection).
//!
//! One task claims every leased duty each [`ClusterConfig::claim_interval`]
//! (who gets a lease is decided in `modelwatch_registry::rules::lease`) and
//! records the outcome in that duty's [`DutyFence`]. A duty's loop runs
//! only while its fence holds a lease, and writes through a store fenced by
//! it, so even a daemon that stalled past its lease cannot write once
//! another daemon took the duty over. On a clean stop the daemon leaves
//! the cluster, which releases its leases at once.
//!
//! History persistence and maintenance (compaction, retention) are not
//! leased: each daemon's history is its own data directory until history
//! moves to shared object storage.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use modelwatch_registry::{Announcement, ClusterView, DutyFence, HeldLease, RegistryStore, Result};

/// The duties held by a lease: background duties (`crate::duties::names`)
/// that must run on one daemon at a time.
pub mod leased {
    pub use crate::duties::names::{
        ARTIFACT_GC, AUDIT_ANCHOR, EVALUATOR, WEBHOOK_DISPATCHER, WEBHOOK_SENDER,
    };
    pub const ALL: [&str; 5] = [
        EVALUATOR,
        WEBHOOK_DISPATCHER,
        WEBHOOK_SENDER,
        ARTIFACT_GC,
        AUDIT_ANCHOR,
    ];
}

/// How fast duties move between daemons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterConfig {
    /// The longest a duty stays without a holder after its holder died
    /// (`--duty-takeover-seconds`).
    pub takeover: Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            takeover: Duration::from_secs(crate::config::DEFAULT_DUTY_TAKEOVER_SECONDS),
        }
    }
}

impl ClusterConfig {
    /// A lease lasts two thirds of the takeover time, and every daemon
    /// claims every sixth of it: a dead holder's lease expires within
    /// `lease_ttl`, and another daemon claims it within one more
    /// `claim_interval` (5/6 of the takeover time in all), leaving the rest
    /// for a slow database round trip.
    pub fn lease_ttl(&self) -> Duration {
        self.takeover * 2 / 3
    }

    pub fn claim_interval(&self) -> Duration {
        self.takeover / 6
    }

    /// Daemons whose last heartbeat is older than this are not listed.
    pub fn member_timeout(&self) -> Duration {
        self.takeover
    }
}

/// This daemon's membership: its id, its fences, and the claim loop.
pub struct Cluster {
    id: String,
    started_at: DateTime<Utc>,
    /// The API address announced (set once it is bound).
    address: Mutex<String>,
    registry: Arc<dyn RegistryStore>,
    config: ClusterConfig,
    fences: BTreeMap<&'static str, Arc<DutyFence>>,
    /// When each held lease expires, as last granted.
    expiries: Mutex<BTreeMap<&'static str, DateTime<Utc>>>,
}

/// A unique id for this process: host, process id, random suffix (a
/// restarted daemon is a new member, never mistaken for the old one).
pub fn member_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    format!(
        "{host}-{}-{:04x}",
        std::process::id(),
        rand::random::<u16>()
    )
}

impl Cluster {
    /// Joins as a daemon that runs `runs` (some of [`leased::ALL`]): it
    /// claims only their leases, so a daemon with a duty switched off (the
    /// evaluator with `--no-evaluator`, anchoring without
    /// `--audit-anchor-dir`) never holds it away from one that runs it.
    pub fn new(
        registry: Arc<dyn RegistryStore>,
        address: String,
        config: ClusterConfig,
        runs: &[&'static str],
    ) -> Self {
        let fences = leased::ALL
            .into_iter()
            .filter(|duty| runs.contains(duty))
            .map(|duty| (duty, Arc::new(DutyFence::new(duty))))
            .collect();
        Self {
            id: member_id(),
            started_at: Utc::now(),
            address: Mutex::new(address),
            registry,
            config,
            fences,
            expiries: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The API address announced from now on (known once it is bound).
    pub fn set_address(&self, address: String) {
        if let Ok(mut announced) = self.address.lock() {
            *announced = address;
        }
    }

    /// What the heartbeat announces.
    fn announcement(&self) -> Announcement {
        Announcement {
            id: self.id.clone(),
            address: self.address.lock().map(|a| a.clone()).unwrap_or_default(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: self.started_at,
        }
    }

    /// The fence of a leased duty this daemon runs.
    pub fn fence(&self, duty: &str) -> Arc<DutyFence> {
        self.fences
            .get(duty)
            .cloned()
            .unwrap_or_else(|| panic!("{duty} is not a leased duty this daemon runs"))
    }

    /// What `duty`'s loop needs: its fence and the store fenced by it
    /// (`fenced` makes that store from the concrete backend).
    pub fn leased(
        &self,
        duty: &str,
        fenced: impl Fn(Arc<DutyFence>) -> Arc<dyn RegistryStore>,
    ) -> Leased {
        let fence = self.fence(duty);
        Leased {
            store: fenced(fence.clone()),
            fence,
        }
    }

    /// Whether this daemon holds `duty` now.
    pub fn holds(&self, duty: &str) -> bool {
        self.fences.get(duty).is_some_and(|f| f.held().is_some())
    }

    /// Daemons seen recently and every lease.
    pub async fn view(&self) -> Result<ClusterView> {
        let since = Utc::now()
            - chrono::Duration::from_std(self.config.member_timeout())
                .unwrap_or(chrono::Duration::seconds(15));
        self.registry.cluster_view(&self.id, since).await
    }

    /// One round: heartbeat, then claim or renew every leased duty.
    pub async fn claim_round(&self) {
        let me = self.announcement();
        if let Err(e) = self.registry.heartbeat(&me).await {
            tracing::warn!(error = %e, "cluster heartbeat failed");
        }
        for (duty, fence) in &self.fences {
            let outcome = self
                .registry
                .claim_duty(duty, &self.id, self.config.lease_ttl())
                .await;
            self.apply(duty, fence, outcome);
        }
    }

    /// Records a claim's outcome in the duty's fence.
    fn apply(
        &self,
        duty: &'static str,
        fence: &DutyFence,
        outcome: Result<Option<modelwatch_registry::DutyLease>>,
    ) {
        let had = fence.held();
        let Ok(mut expiries) = self.expiries.lock() else {
            return;
        };
        match outcome {
            Ok(Some(lease)) => {
                if had.as_ref().map(|h| h.token) != Some(lease.fencing_token) {
                    tracing::info!(
                        duty,
                        fencing_token = lease.fencing_token,
                        "took the duty's lease"
                    );
                }
                expiries.insert(duty, lease.expires_at);
                fence.hold(Some(HeldLease {
                    holder: lease.holder,
                    token: lease.fencing_token,
                }));
            }
            Ok(None) => {
                if had.is_some() {
                    tracing::warn!(duty, "lost the duty's lease to another daemon");
                }
                expiries.remove(duty);
                fence.hold(None);
            }
            // The database cannot be reached: keep the lease until it
            // expires (no other daemon can take it before), then stop.
            Err(e) => {
                let expired = expiries.get(duty).is_none_or(|at| *at <= Utc::now());
                if expired && had.is_some() {
                    tracing::warn!(duty, error = %e, "cannot renew the duty's lease; stopping the duty");
                    expiries.remove(duty);
                    fence.hold(None);
                } else {
                    tracing::warn!(duty, error = %e, "cannot renew the duty's lease; retrying");
                }
            }
        }
    }

    /// Claims every `claim_interval` until `stop`, then leaves the cluster
    /// (releasing this daemon's leases for the others).
    pub fn spawn(
        self: &Arc<Self>,
        mut stop: watch::Receiver<bool>,
        duties: &crate::duties::Duties,
    ) -> tokio::task::JoinHandle<()> {
        let cluster = self.clone();
        duties.spawn(crate::duties::names::CLUSTER, async move {
            loop {
                cluster.claim_round().await;
                if stopped_within(&mut stop, cluster.config.claim_interval()).await {
                    break;
                }
            }
            for fence in cluster.fences.values() {
                fence.hold(None);
            }
            match cluster.registry.leave_cluster(&cluster.id).await {
                Ok(()) => tracing::info!("left the cluster; duties released"),
                Err(e) => tracing::warn!(error = %e, "cannot leave the cluster; duties move when their leases expire"),
            }
        })
    }
}

impl Cluster {
    /// Sets the cluster series of `/metrics` (scrape time). Without the
    /// database, the membership count is left as it was.
    pub async fn export_metrics(&self) {
        let m = crate::metrics::metrics();
        for (duty, fence) in &self.fences {
            m.duty_lease_held
                .with_label_values(&[duty])
                .set(i64::from(fence.held().is_some()));
        }
        match self.view().await {
            Ok(view) => {
                m.cluster_members
                    .set(i64::try_from(view.members.len()).unwrap_or(i64::MAX));
                for lease in &view.duties {
                    m.duty_fencing_token
                        .with_label_values(&[lease.duty.as_str()])
                        .set(lease.fencing_token);
                }
            }
            Err(e) => tracing::debug!(error = %e, "cluster figures unavailable"),
        }
    }
}

/// Waits for `d` or for `stop`; true when stopping.
pub async fn stopped_within(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        changed = stop.changed() => changed.is_err() || *stop.borrow(),
        _ = tokio::time::sleep(d) => false,
    }
}

/// What a leased duty's loop holds: the fence it checks before each round,
/// and the store fenced by it that it writes through.
#[derive(Clone)]
pub struct Leased {
    pub fence: Arc<DutyFence>,
    pub store: Arc<dyn RegistryStore>,
}

impl Leased {
    pub fn holds(&self) -> bool {
        self.fence.held().is_some()
    }
}
