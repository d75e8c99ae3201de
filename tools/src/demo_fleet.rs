//! The simulated model fleet of `modelwatch demo`: two model servers that
//! serve whatever version the `production` alias names, sending telemetry
//! the way a real deployment would — through the OpenTelemetry SDK and the
//! real `opentelemetry-otlp` exporter (OTLP/HTTP protobuf, batch processors
//! on their own threads) with an `ingest` token in `Authorization: Bearer`.
//!
//! - `fraud-detector`: one log record per inference (attributes
//!   `model.name`, `model.version`, `feature.amount`,
//!   `feature.merchant_category`, `feature.account_age_days`, `prediction`)
//!   plus a `predict` span per request. [`Fleet::inject_drift`] multiplies
//!   `amount` by 3 from then on.
//! - `churn-predictor`: one `predict` span per request; version 1 is healthy
//!   (≈20 ms, 1 % errors), any later version is the bad build (≈120 ms, 25 %
//!   errors, span status error).
//!
//! Everything is drawn from one seeded generator, so a run's traffic is the
//! same every time; spans carry synthetic start and end times rather than
//! sleeping, so the fleet costs almost no CPU.
//!
//! This module must not talk to the registry beyond reading the
//! `production` alias (the demo's script registers and deploys), and must
//! not decide anything the evaluator decides: it only produces traffic.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use opentelemetry::KeyValue;
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::trace::{Span as _, SpanKind, Status, Tracer as _, TracerProvider as _};
use opentelemetry_otlp::{LogExporter, Protocol, SpanExporter, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::{BatchLogProcessor, SdkLogger, SdkLoggerProvider};
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracer, SdkTracerProvider};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use modelwatch_client::Client;

use crate::error::{Context, Result};

pub const FRAUD: &str = "fraud-detector";
pub const CHURN: &str = "churn-predictor";
pub const ALIAS: &str = "production";

/// Features of `fraud-detector`, declared on its versions.
pub const FRAUD_FEATURES: [(&str, &str); 3] = [
    ("amount", "numeric"),
    ("merchant_category", "categorical"),
    ("account_age_days", "numeric"),
];

const CATEGORIES: [(&str, f64); 5] = [
    ("grocery", 0.35),
    ("restaurants", 0.25),
    ("fuel", 0.15),
    ("electronics", 0.15),
    ("travel", 0.10),
];

/// How much `amount` grows once drift is injected.
pub const DRIFT_FACTOR: f64 = 3.0;

/// One transaction as the fraud model sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Transaction {
    pub amount: f64,
    pub merchant_category: &'static str,
    pub account_age_days: f64,
}

/// A standard normal draw (Box–Muller; `rand` alone has no normal).
fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

impl Transaction {
    /// Lognormal amounts (median ≈ 33, σ = 0.6), a skewed category mix, account ages
    /// exponential with mean ≈ 2 years; `drifted` multiplies the amount.
    pub fn draw(rng: &mut StdRng, drifted: bool) -> Transaction {
        let mut amount = (3.5 + 0.6 * normal(rng)).exp();
        if drifted {
            amount *= DRIFT_FACTOR;
        }
        let mut pick: f64 = rng.random();
        let mut merchant_category = CATEGORIES[0].0;
        for (name, weight) in CATEGORIES {
            merchant_category = name;
            if pick < weight {
                break;
            }
            pick -= weight;
        }
        let account_age_days = (-rng.random_range(f64::EPSILON..1.0f64).ln() * 700.0).round();
        Transaction {
            amount: (amount * 100.0).round() / 100.0,
            merchant_category,
            account_age_days,
        }
    }

    /// The model's fraud score: large amounts on young accounts look risky.
    pub fn score(&self) -> f64 {
        let risk = 1.2 * (self.amount.ln() - 4.5) - self.account_age_days / 500.0
            + if self.merchant_category == "electronics" {
                0.8
            } else {
                0.0
            };
        let p = 1.0 / (1.0 + (-risk).exp());
        (p * 1000.0).round() / 1000.0
    }
}

/// `rows` reference transactions (the training-set sample) as NDJSON.
pub fn reference_ndjson(seed: u64, rows: usize) -> String {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = String::with_capacity(rows * 90);
    for _ in 0..rows {
        let t = Transaction::draw(&mut rng, false);
        let line = serde_json::json!({
            "amount": t.amount,
            "merchant_category": t.merchant_category,
            "account_age_days": t.account_age_days,
            "prediction": t.score(),
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out
}

/// Request latency and error rate of a churn version.
fn churn_profile(version: i64) -> (f64, f64) {
    if version <= 1 {
        (20.0, 0.01)
    } else {
        (120.0, 0.25)
    }
}

/// Where the fleet sends and how fast.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// `http://ADDR` of the daemon's OTLP/HTTP listener.
    pub otlp_http: String,
    /// Token with role `ingest`.
    pub token: String,
    /// Requests per second per model.
    pub rate: f64,
    pub seed: u64,
    /// Extra CA certificates for an HTTPS daemon (`--ca-file`).
    pub ca_file: Option<PathBuf>,
}

/// Counters the demo prints as progress.
#[derive(Debug, Default)]
pub struct FleetStats {
    pub inferences: AtomicU64,
    pub spans: AtomicU64,
}

/// The running fleet: stop it with [`Fleet::shutdown`], which flushes.
pub struct Fleet {
    drift: Arc<AtomicBool>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    loggers: SdkLoggerProvider,
    tracers: SdkTracerProvider,
    pub stats: Arc<FleetStats>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet").finish_non_exhaustive()
    }
}

/// The exporters' HTTPS client, trusting `ca` too. The blocking client
/// runs its own runtime: it is built on a thread of its own, and its last
/// copy is dropped in the batch processors' threads, never on the async
/// runtime.
fn https_client(ca: &Path) -> Result<reqwest::blocking::Client> {
    let config = modelwatch_client::tls::client_config(Some(ca))
        .map_err(|e| crate::Error::Local(e.to_string()))?;
    std::thread::spawn(move || {
        reqwest::blocking::Client::builder()
            .tls_backend_preconfigured(config)
            .build()
    })
    .join()
    .map_err(|_| crate::Error::Local("the HTTPS client's thread panicked".into()))?
    .map_err(|e| crate::Error::Local(format!("cannot build the exporters' HTTPS client: {e}")))
}

/// An OTLP/HTTP exporter builder aimed at the daemon's `url` with `token`.
fn to_daemon<B: WithExportConfig + WithHttpConfig>(builder: B, url: String, token: &str) -> B {
    let headers = HashMap::from([("authorization".to_string(), format!("Bearer {token}"))]);
    builder
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url)
        .with_headers(headers)
}

impl Fleet {
    /// Builds the exporters and starts serving traffic.
    pub fn start(cfg: FleetConfig, registry: Client) -> Result<Fleet> {
        let resource = Resource::builder_empty()
            .with_attributes([
                KeyValue::new("service.name", "modelwatch-demo-fleet"),
                KeyValue::new("deployment.environment", "demo"),
            ])
            .build();
        let https = match &cfg.ca_file {
            Some(ca) => Some(https_client(ca)?),
            None => None,
        };
        let log_url = format!("{}/v1/logs", cfg.otlp_http);
        let log_exporter = LogExporter::builder().with_http();
        let log_exporter = match &https {
            Some(client) => log_exporter.with_http_client(client.clone()),
            None => log_exporter,
        };
        let log_exporter = to_daemon(log_exporter, log_url, &cfg.token)
            .build()
            .map_err(crate::Error::local)
            .context("cannot build the OTLP log exporter")?;
        let span_url = format!("{}/v1/traces", cfg.otlp_http);
        let span_exporter = SpanExporter::builder().with_http();
        let span_exporter = match https {
            Some(client) => span_exporter.with_http_client(client),
            None => span_exporter,
        };
        let span_exporter = to_daemon(span_exporter, span_url, &cfg.token)
            .build()
            .map_err(crate::Error::local)
            .context("cannot build the OTLP span exporter")?;
        // Export every second: the evaluator's windows are short in the demo.
        let loggers = SdkLoggerProvider::builder()
            .with_log_processor(
                BatchLogProcessor::builder(log_exporter)
                    .with_batch_config(
                        opentelemetry_sdk::logs::BatchConfigBuilder::default()
                            .with_scheduled_delay(Duration::from_secs(1))
                            .build(),
                    )
                    .build(),
            )
            .with_resource(resource.clone())
            .build();
        let tracers = SdkTracerProvider::builder()
            .with_span_processor(
                BatchSpanProcessor::builder(span_exporter)
                    .with_batch_config(
                        opentelemetry_sdk::trace::BatchConfigBuilder::default()
                            .with_scheduled_delay(Duration::from_secs(1))
                            .build(),
                    )
                    .build(),
            )
            .with_resource(resource)
            .build();
        let drift = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(FleetStats::default());
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let servers = Servers {
            logger: loggers.logger("modelwatch-demo"),
            tracer: tracers.tracer("modelwatch-demo"),
            rng: StdRng::seed_from_u64(cfg.seed),
            drift: drift.clone(),
            stats: stats.clone(),
            next_id: 0,
        };
        let task = tokio::spawn(serve(servers, cfg.rate, registry, stopped));
        Ok(Fleet {
            drift,
            stop,
            task,
            loggers,
            tracers,
            stats,
        })
    }

    /// From now on `amount` is [`DRIFT_FACTOR`] times larger.
    pub fn inject_drift(&self) {
        self.drift.store(true, Ordering::Relaxed);
    }

    /// Stops the traffic and exports what is still queued.
    pub async fn shutdown(self) {
        self.stop.send_replace(true);
        let _ = self.task.await;
        let (loggers, tracers) = (self.loggers, self.tracers);
        let flushed = tokio::task::spawn_blocking(move || {
            let logs = loggers.shutdown();
            let spans = tracers.shutdown();
            (logs, spans)
        })
        .await;
        match flushed {
            Ok((Ok(()), Ok(()))) => {}
            Ok((logs, spans)) => {
                tracing::warn!(?logs, ?spans, "the fleet's last telemetry was not exported")
            }
            Err(e) => tracing::warn!(error = %e, "flushing the fleet's telemetry panicked"),
        }
    }
}

/// The two simulated model servers.
struct Servers {
    logger: SdkLogger,
    tracer: SdkTracer,
    rng: StdRng,
    drift: Arc<AtomicBool>,
    stats: Arc<FleetStats>,
    next_id: u64,
}

impl Servers {
    fn fraud_request(&mut self, version: i64, now: SystemTime) {
        let t = Transaction::draw(&mut self.rng, self.drift.load(Ordering::Relaxed));
        let score = t.score();
        self.next_id += 1;
        let mut r = self.logger.create_log_record();
        r.set_timestamp(now);
        r.set_observed_timestamp(now);
        r.set_severity_number(Severity::Info);
        r.set_body(AnyValue::from("inference"));
        r.add_attribute("model.name", FRAUD);
        r.add_attribute("model.version", version.to_string());
        r.add_attribute("inference.id", format!("txn-{}", self.next_id));
        r.add_attribute("feature.amount", t.amount);
        r.add_attribute("feature.merchant_category", t.merchant_category);
        r.add_attribute("feature.account_age_days", t.account_age_days);
        r.add_attribute("prediction", score);
        self.logger.emit(r);
        self.stats.inferences.fetch_add(1, Ordering::Relaxed);
        self.span(FRAUD, version, now, (15.0, 0.005));
    }

    fn churn_request(&mut self, version: i64, now: SystemTime) {
        self.span(CHURN, version, now, churn_profile(version));
    }

    /// One `predict` server span ending `now`, with a lognormal latency
    /// around `median_ms` and status error with probability `errors`.
    fn span(
        &mut self,
        model: &str,
        version: i64,
        now: SystemTime,
        (median_ms, errors): (f64, f64),
    ) {
        let latency_ms = median_ms * (0.25 * normal(&mut self.rng)).exp();
        let failed = self.rng.random::<f64>() < errors;
        let start = now - Duration::from_secs_f64(latency_ms / 1000.0);
        let mut span = self
            .tracer
            .span_builder("predict")
            .with_kind(SpanKind::Server)
            .with_start_time(start)
            .with_attributes([
                KeyValue::new("model.name", model.to_string()),
                KeyValue::new("model.version", version.to_string()),
                KeyValue::new("http.route", "/predict"),
            ])
            .start(&self.tracer);
        if failed {
            span.set_status(Status::error("model server error"));
        } else {
            span.set_status(Status::Ok);
        }
        span.end_with_timestamp(now);
        self.stats.spans.fetch_add(1, Ordering::Relaxed);
    }
}

/// The version `production` names, refreshed in the background; 0 until
/// the alias exists.
#[derive(Debug, Default)]
struct Deployed {
    fraud: AtomicI64,
    churn: AtomicI64,
}

async fn follow_aliases(
    registry: Client,
    deployed: Arc<Deployed>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        for (model, slot) in [(FRAUD, &deployed.fraud), (CHURN, &deployed.churn)] {
            match registry.aliases(model).get(ALIAS).await {
                Ok(alias) => slot.store(alias.version, Ordering::Relaxed),
                Err(e) => tracing::debug!(model, error = %e, "cannot read the production alias"),
            }
        }
    }
}

/// Ten ticks a second, `rate / 10` requests per model and tick (the
/// fraction carried over), each to the version `production` names.
async fn serve(
    mut servers: Servers,
    rate: f64,
    registry: Client,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let deployed = Arc::new(Deployed::default());
    let follower = tokio::spawn(follow_aliases(registry, deployed.clone(), stopped.clone()));
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let per_tick = rate / 10.0;
    let mut owed = 0.0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.wait_for(|s| *s) => break,
        }
        owed += per_tick;
        let n = owed.floor();
        owed -= n;
        let now = SystemTime::now();
        let (fraud, churn) = (
            deployed.fraud.load(Ordering::Relaxed),
            deployed.churn.load(Ordering::Relaxed),
        );
        for _ in 0..n as u64 {
            if fraud > 0 {
                servers.fraud_request(fraud, now);
            }
            if churn > 0 {
                servers.churn_request(churn, now);
            }
        }
    }
    let _ = follower.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traffic_is_deterministic_and_drift_scales_amounts() {
        assert_eq!(reference_ndjson(7, 50), reference_ndjson(7, 50));
        assert_ne!(reference_ndjson(7, 50), reference_ndjson(8, 50));
        let mut a = StdRng::seed_from_u64(1);
        let mut b = StdRng::seed_from_u64(1);
        let (x, y) = (
            Transaction::draw(&mut a, false),
            Transaction::draw(&mut b, true),
        );
        assert!(
            (y.amount / x.amount - DRIFT_FACTOR).abs() < 0.01,
            "{x:?} {y:?}"
        );
        assert_eq!(x.merchant_category, y.merchant_category);
    }

    #[test]
    fn reference_sample_looks_like_the_documented_distribution() {
        let mut rng = StdRng::seed_from_u64(3);
        let draws: Vec<Transaction> = (0..4000)
            .map(|_| Transaction::draw(&mut rng, false))
            .collect();
        let mut amounts: Vec<f64> = draws.iter().map(|t| t.amount).collect();
        amounts.sort_by(f64::total_cmp);
        let median = amounts[amounts.len() / 2];
        assert!((25.0..45.0).contains(&median), "median amount {median}");
        let grocery = draws
            .iter()
            .filter(|t| t.merchant_category == "grocery")
            .count() as f64
            / draws.len() as f64;
        assert!((0.3..0.4).contains(&grocery), "grocery share {grocery}");
        assert!(draws.iter().all(|t| (0.0..=1.0).contains(&t.score())));
    }

    #[test]
    fn only_churn_version_one_is_healthy() {
        assert_eq!(churn_profile(1), (20.0, 0.01));
        assert_eq!(churn_profile(2), (120.0, 0.25));
    }
}
