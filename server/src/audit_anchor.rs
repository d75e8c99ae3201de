//! The audit-anchor duty: on the daemon holding the `audit_anchor` lease,
//! signed checkpoints of the audit chain head written to
//! `--audit-anchor-dir` (format and check: `modelwatch_registry::anchor`).
//!
//! Each second the duty reads the chain head and the hash the chain holds
//! at the last anchored entry, and [`decide`] (pure) says what to do: wait,
//! anchor the head (after `--audit-anchor-every-entries` new entries, or
//! `--audit-anchor-interval-seconds` after the last anchor while there are
//! new ones, or at once when there is no anchor yet), or refuse. It refuses
//! when the chain no longer holds the last anchored entry with its hash:
//! the chain was truncated or rewritten behind the daemon's back, and
//! signing its new head would bless the rewrite. A refusal is logged as an
//! error and shown by `modelwatch_audit_anchor_failing` 1 until the chain is
//! restored.
//!
//! What it must not do: write to the registry (anchoring adds no chain
//! entry: an entry per anchor would make the head move forever), or
//! overwrite an anchor file.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use modelwatch_registry::anchor::{self, Anchor, PublicKey, SigningKey};
use modelwatch_registry::{AnchorCheck, RegistryStore};

use crate::cluster::{Leased, stopped_within};

/// How often the chain head is looked at (and, while another daemon holds
/// the lease, whether it is ours yet).
const TICK: Duration = Duration::from_secs(1);

/// Where and when anchors are written (`--audit-anchor-*` flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorConfig {
    pub dir: PathBuf,
    /// `--audit-signing-key`: read and checked at start.
    pub key_file: PathBuf,
    /// `--audit-anchor-webhook`: every anchor is also POSTed there.
    pub webhook: Option<String>,
    /// `--ca-file`: extra CA certificates for an HTTPS webhook.
    pub ca_file: Option<PathBuf>,
    pub every_entries: u64,
    pub interval: Duration,
}

/// What the duty does now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Wait,
    /// Sign and write an anchor of entry `seq` with chain hash `hash`.
    Anchor {
        seq: i64,
        hash: String,
    },
    /// Do not anchor: the chain contradicts the last anchor.
    Refuse {
        problem: String,
    },
}

/// Decides the next step from the last anchor written (`None`: none yet),
/// the hash the chain holds now at that anchor's entry, and the chain head.
pub fn decide(
    last: Option<&Anchor>,
    held_at_last: Option<&str>,
    head: Option<(i64, &str)>,
    now: DateTime<Utc>,
    config: &AnchorConfig,
) -> Step {
    if let Some(last) = last
        && held_at_last != Some(last.hash.as_str())
    {
        return Step::Refuse {
            problem: format!(
                "the audit chain no longer holds entry {} with the hash anchored at {}: it was truncated or rewritten behind the registry's back; no new anchor is written until it is restored (check with `modelwatch audit verify --data-dir DIR --anchors {}`)",
                last.seq,
                last.anchored_at.to_rfc3339(),
                config.dir.display()
            ),
        };
    }
    let Some((seq, hash)) = head else {
        return Step::Wait;
    };
    let anchor = Step::Anchor {
        seq,
        hash: hash.to_string(),
    };
    let Some(last) = last else {
        return anchor;
    };
    let new_entries = u64::try_from(seq - last.seq).unwrap_or(0);
    if new_entries == 0 {
        return Step::Wait;
    }
    let since = (now - last.anchored_at).to_std().unwrap_or_default();
    if new_entries >= config.every_entries || since >= config.interval {
        anchor
    } else {
        Step::Wait
    }
}

/// Reads the signing key named by `--audit-signing-key`; at start, so a
/// wrong key stops the daemon with a clear error.
pub fn load_key(config: &AnchorConfig) -> anyhow::Result<SigningKey> {
    let what = config.key_file.display().to_string();
    let bytes = std::fs::read(&config.key_file).map_err(|e| {
        anyhow::anyhow!("cannot read --audit-signing-key {what}: {e}; create one with `modelwatch audit keygen --out FILE`")
    })?;
    Ok(SigningKey::from_bytes(
        &bytes,
        &format!("--audit-signing-key {what}"),
    )?)
}

/// Starts the duty's loop; it ends when `stop` turns true.
pub fn spawn(
    config: AnchorConfig,
    key: SigningKey,
    duty: Leased,
    stop: watch::Receiver<bool>,
    duties: &crate::duties::Duties,
) -> tokio::task::JoinHandle<()> {
    duties.spawn(
        crate::duties::names::AUDIT_ANCHOR,
        anchor_loop(config, Arc::new(key), duty, stop),
    )
}

async fn anchor_loop(
    config: AnchorConfig,
    key: Arc<SigningKey>,
    duty: Leased,
    mut stop: watch::Receiver<bool>,
) {
    tracing::info!(
        dir = %config.dir.display(),
        key_id = %key.public().key_id(),
        every_entries = config.every_entries,
        interval_seconds = config.interval.as_secs(),
        "audit anchoring on"
    );
    // The last anchor this daemon knows of; re-read from the directory each
    // time the lease is taken (another daemon may have anchored meanwhile).
    let mut last: Option<Anchor> = None;
    let mut loaded = false;
    // The first look comes at once, so a daemon holding the lease anchors
    // its chain before it serves, not a tick later.
    let mut first = true;
    loop {
        if !std::mem::take(&mut first) && stopped_within(&mut stop, TICK).await {
            return;
        }
        if !duty.holds() {
            loaded = false;
            continue;
        }
        if !loaded {
            match newest_in(&config).await {
                Ok(newest) => {
                    last = newest;
                    loaded = true;
                }
                Err(problem) => {
                    report_refusal(&problem);
                    continue;
                }
            }
        }
        match tick(&config, &key, &duty, last.as_ref()).await {
            Ok(Some(written)) => last = Some(written),
            Ok(None) => {}
            Err(problem) => report_refusal(&problem),
        }
    }
}

/// The newest anchor in the directory, checked to be a valid one.
async fn newest_in(config: &AnchorConfig) -> Result<Option<Anchor>, String> {
    let dir = config.dir.clone();
    let newest = tokio::task::spawn_blocking(move || anchor::dir::newest(&dir))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    match newest {
        None => Ok(None),
        Some((name, Ok(anchor))) => match anchor.signer() {
            Ok(_) => Ok(Some(anchor)),
            Err(e) => Err(format!("the newest anchor {name} is not valid: {e}")),
        },
        Some((name, Err(e))) => Err(format!(
            "the newest anchor {name} cannot be read ({e}); move it aside if it is not an anchor"
        )),
    }
}

/// One look at the chain; the anchor written, if one was.
async fn tick(
    config: &AnchorConfig,
    key: &Arc<SigningKey>,
    duty: &Leased,
    last: Option<&Anchor>,
) -> Result<Option<Anchor>, String> {
    let store = duty.store.as_ref();
    let read = |e: modelwatch_registry::Error| format!("cannot read the audit chain: {e}");
    let held = match last {
        Some(last) => store.audit_hash(last.seq).await.map_err(read)?,
        None => None,
    };
    let head = store.audit_head().await.map_err(read)?;
    let now = Utc::now();
    let step = decide(
        last,
        held.as_deref(),
        head.as_ref().map(|(s, h)| (*s, h.as_str())),
        now,
        config,
    );
    let m = crate::metrics::metrics();
    match step {
        Step::Wait => {
            m.audit_anchor_failing.set(0);
            Ok(None)
        }
        Step::Refuse { problem } => Err(problem),
        Step::Anchor { seq, hash } => {
            let span = tracing::info_span!("audit_anchor", seq, key_id = %key.public().key_id());
            let signed = key.anchor(seq, &hash, now);
            let (dir, to_write) = (config.dir.clone(), signed.clone());
            let path = tokio::task::spawn_blocking(move || anchor::dir::write(&dir, &to_write))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("cannot write the anchor of entry {seq}: {e}"))?;
            tracing::info!(parent: &span, path = %path.display(), "audit chain head anchored");
            m.audit_anchored_seq.set(seq);
            m.audit_anchors_written.inc();
            m.audit_anchor_failing.set(0);
            if let Some(url) = &config.webhook {
                tokio::spawn(deliver(url.clone(), config.ca_file.clone(), signed.clone()));
            }
            Ok(Some(signed))
        }
    }
}

/// Attempts at POSTing one anchor to `--audit-anchor-webhook`.
const DELIVERY_ATTEMPTS: u32 = 6;

/// POSTs `anchor` to `url`, retried with the webhooks' backoff (1 s, 2 s,
/// … up to a minute). A delivery that never succeeds is logged and
/// counted; the file in the directory stays the record, and the next
/// anchor covers everything this one did.
async fn deliver(url: String, ca_file: Option<PathBuf>, anchor: Anchor) {
    let m = crate::metrics::metrics();
    // Checked at start (the webhooks' client uses the same file); one
    // client per anchor, every few minutes at most.
    let http = match crate::webhooks::outbound_client(Duration::from_secs(10), ca_file.as_deref()) {
        Ok(http) => http,
        Err(e) => {
            m.audit_anchor_deliveries
                .with_label_values(&["failed"])
                .inc();
            tracing::error!(error = %e, seq = anchor.seq, "cannot deliver the anchor to the webhook");
            return;
        }
    };
    let mut last_error = String::new();
    for attempt in 1..=DELIVERY_ATTEMPTS {
        let sent = http
            .post(&url)
            .header("x-modelwatch-event", "audit.anchor")
            .json(&anchor)
            .send()
            .await;
        match sent {
            Ok(reply) if reply.status().is_success() => {
                m.audit_anchor_deliveries
                    .with_label_values(&["delivered"])
                    .inc();
                tracing::debug!(seq = anchor.seq, attempt, "anchor delivered to the webhook");
                return;
            }
            Ok(reply) => last_error = format!("the receiver answered {}", reply.status()),
            Err(e) => last_error = e.to_string(),
        }
        if attempt < DELIVERY_ATTEMPTS {
            let wait = crate::webhooks::backoff(
                attempt,
                Duration::from_secs(1),
                Duration::from_secs(60),
                rand::random::<f64>(),
            );
            tokio::time::sleep(wait).await;
        }
    }
    m.audit_anchor_deliveries
        .with_label_values(&["failed"])
        .inc();
    tracing::warn!(seq = anchor.seq, error = %last_error, "an anchor could not be delivered to --audit-anchor-webhook; it is in the anchor directory");
}

/// Values of `modelwatch_audit_anchor_deliveries_total`'s `outcome`.
pub const DELIVERY_OUTCOMES: [&str; 2] = ["delivered", "failed"];

/// The daemon's own anchors, for `GET /api/v1/audit/verify` and the UI's
/// audit page: its directory, checked against its own public key.
#[derive(Debug, Clone)]
pub struct OwnAnchors {
    pub dir: PathBuf,
    pub public: PublicKey,
}

impl OwnAnchors {
    pub fn new(config: &AnchorConfig, key: &SigningKey) -> Self {
        Self {
            dir: config.dir.clone(),
            public: key.public(),
        }
    }

    /// The chain in `store` against the directory ([`anchor::check`]); a
    /// directory that cannot be read fails the check.
    ///
    /// The newest anchor alone decides: the chain verifies on its own
    /// before this runs, so an entry changed or cut at or before the newest
    /// anchored one changes that entry's hash or removes it. Only when it
    /// fails is every anchor read, to place the damage between two of
    /// them; a year of anchors is many files, and this runs on every
    /// verification.
    pub async fn check(
        &self,
        store: &dyn RegistryStore,
    ) -> Result<AnchorCheck, modelwatch_registry::Error> {
        let newest = self
            .read(|dir| anchor::dir::newest(dir).map(|n| n.into_iter().collect()))
            .await;
        let quick = match newest {
            Ok(anchors) => self.against(store, anchors).await?,
            Err(problem) => return Ok(unreadable(problem)),
        };
        if quick.ok {
            return Ok(quick);
        }
        match self.read(anchor::dir::read_all).await {
            Ok(anchors) => self.against(store, anchors).await,
            Err(problem) => Ok(unreadable(problem)),
        }
    }

    async fn read(
        &self,
        read: impl FnOnce(&std::path::Path) -> Result<Vec<anchor::ReadAnchor>, anchor::AnchorError>
        + Send
        + 'static,
    ) -> Result<Vec<anchor::ReadAnchor>, String> {
        let dir = self.dir.clone();
        match tokio::task::spawn_blocking(move || read(&dir)).await {
            Ok(Ok(anchors)) => Ok(anchors),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn against(
        &self,
        store: &dyn RegistryStore,
        anchors: Vec<anchor::ReadAnchor>,
    ) -> Result<AnchorCheck, modelwatch_registry::Error> {
        let last_seq = store.audit_head().await?.map(|(seq, _)| seq).unwrap_or(0);
        let mut hashes = HashMap::new();
        for seq in anchors
            .iter()
            .filter_map(|(_, a)| a.as_ref().ok().map(|a| a.seq))
        {
            if let std::collections::hash_map::Entry::Vacant(slot) = hashes.entry(seq)
                && let Some(hash) = store.audit_hash(seq).await?
            {
                slot.insert(hash);
            }
        }
        Ok(anchor::check(
            &anchors,
            Some(&self.public),
            last_seq,
            &hashes,
        ))
    }
}

fn unreadable(problem: String) -> AnchorCheck {
    AnchorCheck {
        anchors_checked: 0,
        ok: false,
        problem: Some(format!("the anchor directory cannot be read: {problem}")),
        first_broken_seq: None,
        newest_anchored_seq: None,
        newest_anchored_at: None,
        unanchored_entries: 0,
        key_ids: Vec::new(),
    }
}

fn report_refusal(problem: &str) {
    crate::metrics::metrics().audit_anchor_failing.set(1);
    tracing::error!(problem, "audit anchoring stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AnchorConfig {
        AnchorConfig {
            dir: "/anchors".into(),
            key_file: "/k".into(),
            webhook: None,
            ca_file: None,
            every_entries: 10,
            interval: Duration::from_secs(300),
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn hash(n: i64) -> String {
        format!("{n:064x}")
    }

    #[test]
    fn the_first_anchor_is_written_at_once_and_an_empty_chain_waits() {
        let now = at("2026-12-07T10:00:00Z");
        assert_eq!(decide(None, None, None, now, &config()), Step::Wait);
        assert_eq!(
            decide(None, None, Some((1, &hash(1))), now, &config()),
            Step::Anchor {
                seq: 1,
                hash: hash(1)
            }
        );
    }

    #[test]
    fn anchors_follow_the_entry_count_or_the_interval_whichever_comes_first() {
        let key = SigningKey::generate().unwrap().0;
        let last = key.anchor(5, &hash(5), at("2026-12-07T10:00:00Z"));
        let held = Some(hash(5));
        let decide_at = |now: &str, head: i64| {
            decide(
                Some(&last),
                held.as_deref(),
                Some((head, &hash(head))),
                at(now),
                &config(),
            )
        };
        // Nothing new: nothing to anchor, however long it has been.
        assert_eq!(decide_at("2026-12-08T10:00:00Z", 5), Step::Wait);
        // Few new entries, soon after: wait.
        assert_eq!(decide_at("2026-12-07T10:01:00Z", 9), Step::Wait);
        // Ten new entries: anchor now.
        assert!(matches!(
            decide_at("2026-12-07T10:01:00Z", 15),
            Step::Anchor { seq: 15, .. }
        ));
        // One new entry, five minutes on: anchor.
        assert!(matches!(
            decide_at("2026-12-07T10:05:00Z", 6),
            Step::Anchor { seq: 6, .. }
        ));
    }

    #[test]
    fn a_chain_that_lost_or_changed_the_anchored_entry_is_not_anchored_again() {
        let key = SigningKey::generate().unwrap().0;
        let last = key.anchor(5, &hash(5), at("2026-12-07T10:00:00Z"));
        let now = at("2026-12-07T11:00:00Z");
        // Truncated below the anchor: the entry is gone.
        let truncated = decide(Some(&last), None, Some((3, &hash(3))), now, &config());
        // Rewritten: the entry is there with another hash.
        let rewritten = decide(
            Some(&last),
            Some(&hash(99)),
            Some((40, &hash(40))),
            now,
            &config(),
        );
        for step in [truncated, rewritten] {
            let Step::Refuse { problem } = step else {
                panic!("{step:?}")
            };
            assert!(
                problem.contains("no longer holds entry 5")
                    && problem.contains("--anchors /anchors"),
                "{problem}"
            );
        }
    }
}
