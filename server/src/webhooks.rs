//! Outbound webhooks: the outbox dispatcher and the sender.
//!
//! Two background tasks, stopped by the daemon's shutdown signal:
//! - the **dispatcher** turns new audit entries into deliveries
//!   (`RegistryStore::dispatch_webhook_outbox`, every
//!   [`WebhookConfig::poll_interval`]) and prunes finished deliveries older
//!   than [`WebhookConfig::retention`];
//! - the **sender** claims due deliveries (at most
//!   [`WebhookConfig::concurrency`] in flight), POSTs each payload signed
//!   with HMAC-SHA256, and records the outcome: delivered (2xx), retried
//!   after an exponential backoff with jitter, or failed after
//!   [`WebhookConfig::max_attempts`].
//!
//! Both keep their state in the registry database, so pending deliveries
//! resume after a restart. Events that are not registry changes (drift
//! from the evaluator) enter through [`Webhooks::publish`].

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use modelwatch_client::tls::TlsError;
use modelwatch_registry::webhooks::{
    AttemptOutcome, CreatedWebhook, DISPATCH_BATCH, DueDelivery, NewWebhook, PING_EVENT,
    WebhookEvent, new_event_id,
};
use modelwatch_registry::{Actor, RegistryStore, Result};

pub const SIGNATURE_HEADER: &str = "X-Modelwatch-Signature";
pub const EVENT_HEADER: &str = "X-Modelwatch-Event";
pub const DELIVERY_HEADER: &str = "X-Modelwatch-Delivery";

pub const DEFAULT_RETRY_BASE: Duration = Duration::from_secs(1);
pub const DEFAULT_MAX_ATTEMPTS: u32 = 8;

/// An event that is not a registry change, e.g. `drift.detected`.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event_type: String,
    pub model: Option<String>,
    pub version: Option<i64>,
    pub data: Value,
}

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Delay before the second attempt; doubled for each further one.
    pub retry_base: Duration,
    /// Longest delay between two attempts.
    pub retry_cap: Duration,
    /// Attempts before a delivery is `failed`.
    pub max_attempts: u32,
    /// Per-attempt HTTP timeout.
    pub timeout: Duration,
    /// Attempts in flight at once.
    pub concurrency: usize,
    /// How often the dispatcher looks for new audit entries.
    pub poll_interval: Duration,
    /// How long a claimed delivery is not handed out again; longer than
    /// `timeout`, so it runs out only if an outcome could not be recorded
    /// (leases of a run that died are released when the daemon starts).
    pub lease: Duration,
    /// Delivered and failed deliveries are kept this long.
    pub retention: Duration,
    /// Extra CA certificates for HTTPS receivers (`--ca-file`).
    pub ca_file: Option<std::path::PathBuf>,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            retry_base: DEFAULT_RETRY_BASE,
            retry_cap: Duration::from_secs(600),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            timeout: Duration::from_secs(10),
            concurrency: 4,
            poll_interval: Duration::from_millis(250),
            lease: Duration::from_secs(60),
            retention: Duration::from_secs(7 * 24 * 3600),
            ca_file: None,
        }
    }
}

/// The webhook service: cheap to clone, shared by the HTTP handlers, the
/// background tasks and the evaluator.
#[derive(Clone)]
pub struct Webhooks {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn RegistryStore>,
    config: WebhookConfig,
    http: reqwest::Client,
    /// Wakes the sender when deliveries were queued.
    queued: Notify,
}

impl Webhooks {
    /// Fails only on an unusable `config.ca_file`.
    pub fn new(store: Arc<dyn RegistryStore>, config: WebhookConfig) -> Result<Self, TlsError> {
        let http = outbound_client(config.timeout, config.ca_file.as_deref())?;
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                config,
                http,
                queued: Notify::new(),
            }),
        })
    }

    /// Queues `event` for every subscription that wants it; returns how many
    /// deliveries were queued.
    pub async fn publish(&self, event: Event) -> Result<u64> {
        let n = self
            .inner
            .store
            .publish_webhook_event(
                WebhookEvent {
                    id: new_event_id(),
                    event_type: event.event_type,
                    occurred_at: Utc::now(),
                    model: event.model,
                    version: event.version,
                    data: event.data,
                },
                None,
            )
            .await?;
        if n > 0 {
            self.inner.queued.notify_one();
        }
        Ok(n)
    }

    /// Creates a subscription (`http://` or `https://`; a private CA's
    /// receivers need `--ca-file`).
    pub async fn create(&self, actor: &Actor, new: NewWebhook) -> Result<CreatedWebhook> {
        self.inner.store.create_webhook(actor, new).await
    }

    /// Queues a `ping` event for the subscription `name` alone; returns the
    /// event id.
    pub async fn ping(&self, actor: &Actor, name: &str) -> Result<String> {
        let id = new_event_id();
        self.inner
            .store
            .publish_webhook_event(
                WebhookEvent {
                    id: id.clone(),
                    event_type: PING_EVENT.to_string(),
                    occurred_at: Utc::now(),
                    model: None,
                    version: None,
                    data: json!({ "webhook": name, "requested_by": actor.name }),
                },
                Some(name),
            )
            .await?;
        self.inner.queued.notify_one();
        Ok(id)
    }

    /// Starts the dispatcher and the sender; they stop when `stop` turns
    /// true, the sender after finishing its in-flight attempts. Each runs
    /// only while this daemon holds its duty's lease, and writes through
    /// the store fenced by it (`crate::cluster`).
    pub fn spawn(
        &self,
        stop: watch::Receiver<bool>,
        duties: &crate::duties::Duties,
        dispatcher: Leased,
        sender: Leased,
    ) -> tokio::task::JoinHandle<()> {
        use crate::duties::names;
        let dispatcher = duties.spawn(
            names::WEBHOOK_DISPATCHER,
            dispatch_loop(self.inner.clone(), dispatcher, stop.clone()),
        );
        let sender = duties.spawn(
            names::WEBHOOK_SENDER,
            send_loop(self.inner.clone(), sender, stop),
        );
        tokio::spawn(async move {
            let _ = dispatcher.await;
            let _ = sender.await;
        })
    }
}

use crate::cluster::{Leased, stopped_within};

async fn dispatch_loop(inner: Arc<Inner>, duty: Leased, mut stop: watch::Receiver<bool>) {
    const PRUNE_EVERY: Duration = Duration::from_secs(3600);
    let mut last_prune: Option<std::time::Instant> = None;
    loop {
        if !duty.holds() {
            if stopped_within(&mut stop, inner.config.poll_interval).await {
                return;
            }
            continue;
        }
        let mut more = false;
        match duty.store.dispatch_webhook_outbox().await {
            Ok(report) => {
                if report.deliveries > 0 {
                    tracing::debug!(
                        entries = report.entries,
                        deliveries = report.deliveries,
                        "webhook events queued"
                    );
                    inner.queued.notify_one();
                }
                more = report.entries >= DISPATCH_BATCH as u64;
            }
            Err(e) => tracing::warn!(error = %e, "webhook dispatch failed; retrying"),
        }
        if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
            last_prune = Some(std::time::Instant::now());
            let cutoff = Utc::now()
                - chrono::Duration::from_std(inner.config.retention)
                    .unwrap_or(chrono::Duration::days(7));
            match duty.store.prune_webhook_deliveries(cutoff).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deliveries = n, "pruned finished webhook deliveries"),
                Err(e) => tracing::warn!(error = %e, "pruning webhook deliveries failed"),
            }
        }
        let pause = if more {
            Duration::ZERO
        } else {
            inner.config.poll_interval
        };
        if stopped_within(&mut stop, pause).await {
            return;
        }
    }
}

async fn send_loop(inner: Arc<Inner>, duty: Leased, mut stop: watch::Receiver<bool>) {
    // Even with nothing due, look again now and then (a delivery queued by
    // another process, e.g. an offline CLI command).
    const IDLE: Duration = Duration::from_secs(30);
    let cfg = &inner.config;
    let mut inflight = JoinSet::new();
    let mut held = false;
    loop {
        if *stop.borrow() {
            break;
        }
        if !duty.holds() {
            held = false;
            if stopped_within(&mut stop, cfg.poll_interval).await {
                break;
            }
            continue;
        }
        if !held {
            held = true;
            // This daemon just took the duty: attempts leased by a holder
            // that died (this process's previous run, or another daemon)
            // are retried now, not after their lease.
            match duty.store.release_webhook_leases().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deliveries = n, "resuming interrupted webhook attempts"),
                Err(e) => tracing::warn!(error = %e, "cannot release webhook leases"),
            }
        }
        let free = cfg.concurrency.saturating_sub(inflight.len());
        if free > 0 {
            match duty
                .store
                .claim_due_webhook_deliveries(cfg.lease, free as u32)
                .await
            {
                Ok(due) => {
                    for d in due {
                        inflight.spawn(attempt(inner.clone(), duty.store.clone(), d));
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot claim webhook deliveries"),
            }
        }
        let wait = if inflight.len() >= cfg.concurrency {
            IDLE // a finished attempt wakes us
        } else {
            match duty.store.next_webhook_due().await {
                Ok(Some(at)) => (at - Utc::now()).to_std().unwrap_or(Duration::ZERO),
                Ok(None) => IDLE,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the next webhook due time");
                    Duration::from_secs(1)
                }
            }
        }
        .clamp(Duration::from_millis(5), IDLE);
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            _ = inner.queued.notified() => {}
            Some(_) = inflight.join_next(), if !inflight.is_empty() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
    // Attempts in flight are bounded by the request timeout: let them
    // finish and record their outcome rather than leave them to the lease.
    while inflight.join_next().await.is_some() {}
}

/// `hex(hmac_sha256(secret, body))`, the value after `sha256=` in
/// `X-Modelwatch-Signature`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The HTTP client of deliveries to a configured receiver (webhooks, audit
/// anchors): bounded by `timeout`, and never following a redirect — a
/// redirect is not a delivery, the receiver's URL is configured. HTTPS
/// trusts the system's roots and `ca_file` (`--ca-file`).
pub fn outbound_client(
    timeout: Duration,
    ca_file: Option<&std::path::Path>,
) -> Result<reqwest::Client, TlsError> {
    modelwatch_client::tls::http_client_builder(ca_file)?
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("modelwatch/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| TlsError::Setup(e.to_string()))
}

/// Delay before attempt `attempt + 1` after `attempt` failed (1-based):
/// `base · 2^(attempt-1)`, at most `cap`, plus up to 20 % jitter
/// (`jitter` in [0, 1)) so receivers coming back are not hit in lockstep.
pub fn backoff(attempt: u32, base: Duration, cap: Duration, jitter: f64) -> Duration {
    let exp = attempt.saturating_sub(1).min(30);
    let nominal = base.saturating_mul(1u32 << exp).min(cap);
    nominal + nominal.mul_f64(0.2 * jitter.clamp(0.0, 1.0))
}

async fn attempt(inner: Arc<Inner>, store: Arc<dyn RegistryStore>, d: DueDelivery) {
    let number = d.attempts + 1;
    let span = tracing::info_span!(
        "webhook_delivery",
        delivery = d.id,
        webhook = %d.webhook,
        event_type = %d.event_type,
        attempt = number,
        status = tracing::field::Empty,
    );
    async move {
        let cfg = &inner.config;
        let signature = format!("sha256={}", sign(&d.secret, d.payload.as_bytes()));
        let sent = inner
            .http
            .post(&d.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(EVENT_HEADER, &d.event_type)
            .header(DELIVERY_HEADER, d.id.to_string())
            .header(SIGNATURE_HEADER, signature)
            .body(d.payload.clone())
            .send()
            .await;
        let (code, error) = match sent {
            Ok(res) if res.status().is_success() => (Some(res.status().as_u16()), None),
            Ok(res) => (
                Some(res.status().as_u16()),
                Some(format!("receiver answered HTTP {}", res.status())),
            ),
            Err(e) if e.is_timeout() => (
                None,
                Some(format!("no answer within {} s", cfg.timeout.as_secs_f64())),
            ),
            Err(e) => (None, Some(modelwatch_client::root_cause(&e))),
        };
        if let Some(c) = code {
            tracing::Span::current().record("status", c);
        }
        let m = &crate::metrics::metrics().webhook_deliveries;
        let outcome = match error {
            None => {
                m.with_label_values(&["delivered"]).inc();
                tracing::debug!("webhook delivered");
                AttemptOutcome::Delivered {
                    status_code: code.unwrap_or(200),
                }
            }
            Some(error) if number >= i64::from(cfg.max_attempts) => {
                m.with_label_values(&["failed"]).inc();
                tracing::warn!(%error, "webhook delivery failed; no attempts left");
                AttemptOutcome::Failed {
                    status_code: code,
                    error,
                }
            }
            Some(error) => {
                m.with_label_values(&["retry"]).inc();
                let delay = backoff(
                    u32::try_from(number).unwrap_or(u32::MAX),
                    cfg.retry_base,
                    cfg.retry_cap,
                    rand::random::<f64>(),
                );
                tracing::info!(%error, retry_in_ms = delay.as_millis() as u64, "webhook delivery failed; will retry");
                AttemptOutcome::Retry {
                    status_code: code,
                    error,
                    next_attempt_at: Utc::now()
                        + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX),
                }
            }
        };
        if let Err(e) = store.record_webhook_attempt(d.id, outcome).await {
            // The lease runs out and the delivery is tried again.
            tracing::error!(error = %e, "cannot record a webhook attempt");
        }
        // A retry may now be the earliest due delivery.
        inner.queued.notify_one();
    }
    .instrument(span)
    .await
}

/// The evaluator's drift findings become `drift.detected` events.
#[async_trait::async_trait]
impl modelwatch_evaluator::EvaluationEvents for Webhooks {
    async fn drift_detected(&self, model: &str, version: i64, evidence: &Value) {
        let event = Event {
            event_type: "drift.detected".into(),
            model: Some(model.to_string()),
            version: Some(version),
            data: evidence.clone(),
        };
        // A lost notification must not fail the evaluation; the drift is
        // in `drift_results` either way.
        if let Err(e) = self.publish(event).await {
            tracing::warn!(error = %e, model, version, "cannot queue the drift.detected webhook event");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the evaluator does: hold a `Webhooks` built from the store and
    /// publish `drift.detected`; a real receiver gets it, signed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn published_events_reach_matching_subscribers_signed() {
        use axum::http::HeaderMap;
        use modelwatch_registry::{Role, SqliteStore};

        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(HeaderMap, Vec<u8>)>();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send((headers, body.to_vec()));
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let server = tokio::spawn(async move { axum::serve(listener, app).await });

        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("registry.sqlite"))
            .await
            .unwrap();
        let registry: Arc<dyn RegistryStore> = Arc::new(store.clone());
        let admin = Actor::new("root", Role::Admin);
        let hooks = Webhooks::new(registry.clone(), WebhookConfig::default()).unwrap();
        let created = hooks
            .create(
                &admin,
                NewWebhook {
                    name: "drift".into(),
                    url: url.clone(),
                    events: vec!["drift.detected".into()],
                    model: Some("fraud".into()),
                    secret: None,
                },
            )
            .await
            .unwrap();
        let (stop_tx, stop) = watch::channel(false);
        // The only daemon: it takes both webhook duties at its first claim.
        let cluster = crate::cluster::Cluster::new(
            registry.clone(),
            "test".into(),
            crate::cluster::ClusterConfig::default(),
            &crate::cluster::leased::ALL,
        );
        cluster.claim_round().await;
        let fenced = |fence| Arc::new(store.fenced(fence)) as Arc<dyn RegistryStore>;
        use crate::cluster::leased;
        let tasks = hooks.spawn(
            stop,
            &crate::duties::Duties::new(),
            cluster.leased(leased::WEBHOOK_DISPATCHER, fenced),
            cluster.leased(leased::WEBHOOK_SENDER, fenced),
        );

        let drift = |model: &str| Event {
            event_type: "drift.detected".into(),
            model: Some(model.into()),
            version: Some(3),
            data: json!({ "features": ["amount"] }),
        };
        assert_eq!(hooks.publish(drift("other")).await.unwrap(), 0);
        assert_eq!(hooks.publish(drift("fraud")).await.unwrap(), 1);
        let (headers, body) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("delivered within 30 s")
            .unwrap();
        let header = |name: &str| headers[name].to_str().unwrap().to_string();
        assert_eq!(header("x-modelwatch-event"), "drift.detected");
        assert_eq!(
            header("x-modelwatch-signature"),
            format!("sha256={}", sign(&created.secret, &body))
        );
        let payload: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            (&payload["model"], &payload["version"], &payload["data"]),
            (
                &json!("fraud"),
                &json!(3),
                &json!({ "features": ["amount"] })
            )
        );

        stop_tx.send_replace(true);
        tasks.await.unwrap();
        store.close().await;
        server.abort();
    }

    #[test]
    fn signature_matches_a_known_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_bounded_jitter() {
        let (base, cap) = (Duration::from_secs(1), Duration::from_secs(600));
        let delays: Vec<u64> = (1..=12)
            .map(|n| backoff(n, base, cap, 0.0).as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600]);
        let jittered = backoff(3, base, cap, 0.5).as_millis();
        assert!((4399..=4400).contains(&jittered), "{jittered}");
        assert!(backoff(40, base, cap, 1.0) <= cap.mul_f64(1.2));
        assert_eq!(
            backoff(1, Duration::from_millis(10), cap, 0.0),
            Duration::from_millis(10)
        );
    }
}
