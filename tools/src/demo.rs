//! `modelwatch demo`: one command that shows the whole loop.
//!
//! It starts `modelwatch serve` as a child process of this executable on a
//! data directory of its own (a new temporary one, kept afterwards, unless
//! `--data-dir` is given), with a generated bootstrap token and the OTLP
//! listeners on free ports, waits for the `listening on http://` line and
//! prints the `export MODELWATCH_URL=… MODELWATCH_TOKEN=…` line for a second
//! terminal. Then the script: two models with versions, reference data and a
//! `production` alias each, monitoring policies with short windows and
//! automatic rollback, a simulated fleet ([`super::demo_fleet`]) sending
//! telemetry through the real OTLP exporter, a feature that drifts after
//! ~30 s and a bad deployment after ~45 s. A third model plays concept
//! drift after ~20 s: its inputs look as always, but the labels that
//! arrive later (the labels upload route) show its accuracy fell, and the
//! evaluator recommends retraining it on realized performance. A printer polls the audit log and
//! the recommendations every second and tells, as they happen, what the
//! registry records: versions, alias moves, retrain and rollback
//! recommendations and the evaluator's automatic rollback.
//!
//! Afterwards the daemon keeps running (with the fleet) until Ctrl-C, which
//! stops it with SIGTERM; `--exit-when-done` exits instead: 0 once both
//! retrain recommendations (drift, performance) and the automatic rollback
//! were seen, 1 after `--timeout`.
//!
//! This module must not reach into the daemon's internals: everything goes
//! through the public HTTP API and OTLP, as a user's tooling would, so the
//! demo also proves those paths. It must not make the evaluator's decisions
//! either; it only reports them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use modelwatch_client::{
    AuditEntry, AuditQuery, Client, Error as ClientError, MonitoringPolicy, NewModel, NewVersion,
    PageQuery, Recommendation, RecommendationKind, RecommendationQuery, RecommendationStatus, Role,
    UploadOptions, UploadTable,
};

use crate::demo_fleet::{
    ALIAS, CHURN, DRIFT_FACTOR, FRAUD, FRAUD_FEATURES, Fleet, FleetConfig, reference_ndjson,
};

use crate::error::{Context, Error, Result};

/// The admin token's name in the demo daemon: the name `serve` gives the
/// token it bootstraps from `MODELWATCH_BOOTSTRAP_TOKEN` (the binary checks
/// that the two agree).
pub const ADMIN: &str = "bootstrap-admin";
/// The model of the concept-drift act (batch uploads, no fleet).
const CREDIT: &str = "credit-scorer";
/// The accuracy the concept-drift act's policy asks for.
const CREDIT_MIN_ACCURACY: f64 = 0.8;
/// The version tag the evaluator keeps its health verdict in.
const HEALTH_TAG: &str = "modelwatch.health";

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Data directory of the demo daemon [default: a new directory under
    /// the system's temporary directory, kept afterwards]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// HTTP listen address of the demo daemon [default: a free loopback port]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Exit once both retrain recommendations (drift, performance) and the
    /// automatic rollback were seen (status 0), or with status 1 after --timeout, instead of
    /// keeping the daemon running until Ctrl-C.
    #[arg(long)]
    pub exit_when_done: bool,
    /// Time factor: 2 plays the story twice as fast (windows and phases
    /// halved, traffic per second doubled), 0.5 half as fast.
    #[arg(long, default_value_t = 1.0, value_parser = parse_speed)]
    pub speed: f64,
    /// Seconds to wait for the retrain recommendation and the rollback.
    #[arg(long, default_value_t = 240, value_name = "SECONDS")]
    pub timeout: u64,
    /// Seed of the simulated traffic (the same seed plays the same traffic).
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// PEM certificate for the demo's daemon: it serves TLS on every
    /// listener, and the demo's clients (registry calls, the fleet's
    /// OTLP exporters) speak HTTPS to it; with --tls-key
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificate(s) the demo's clients trust besides the system's
    /// (the CA of --tls-cert, or the certificate itself if self-signed)
    #[arg(long, env = "MODELWATCH_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

fn parse_speed(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if (0.25..=4.0).contains(&v) {
        Ok(v)
    } else {
        Err("use a factor between 0.25 and 4".into())
    }
}

/// The story's clock, at nominal speed (divided by `--speed`).
#[derive(Debug, Clone, Copy)]
struct Timeline {
    speed: f64,
}

impl Timeline {
    /// When the credit scorer's decisions and their late labels arrive.
    const CONCEPT_AT: f64 = 20.0;
    /// Stable traffic before `amount` drifts.
    const DRIFT_AT: f64 = 30.0;
    /// Healthy churn traffic before the bad deployment (longer than the
    /// rollback window, so the previous version has a baseline).
    const DEPLOY_AT: f64 = 45.0;
    const INTERVAL: f64 = 5.0;
    const WINDOW: f64 = 30.0;
    /// Requests per second per model: a 30 s window holds ~1,500
    /// inferences. The automatic test (normalised Wasserstein against the
    /// reference rows, threshold 0.1) measured ~0.09 on stable windows of
    /// 600 rows and ~0.06 at 1,000; a tripled `amount` scores > 0.2 within
    /// one interval.
    const RATE: f64 = 50.0;
    /// Rows a window needs before the evaluator judges it.
    const MIN_ROWS: u64 = 1000;
    /// Reference rows uploaded per fraud-detector version.
    const REFERENCE_ROWS: usize = 5000;

    fn at(self, nominal_secs: f64) -> Duration {
        Duration::from_secs_f64(nominal_secs / self.speed)
    }

    /// A policy duration such as "15s" (whole seconds, at least 1).
    fn duration(self, nominal_secs: f64) -> String {
        format!("{}s", (nominal_secs / self.speed).round().max(1.0))
    }
}

/// Prints the story with the time since the demo started.
#[derive(Debug, Clone, Copy)]
struct Story {
    started: Instant,
}

impl Story {
    fn say(&self, line: impl AsRef<str>) {
        let s = self.started.elapsed().as_secs();
        println!("[{:02}:{:02}] {}", s / 60, s % 60, line.as_ref());
    }
}

/// What the printer has seen so far.
#[derive(Debug, Default)]
struct Progress {
    retrain: AtomicBool,
    /// The credit scorer's retrain on a performance drop.
    performance_retrain: AtomicBool,
    /// The alias moved back by someone other than the demo.
    rollback: AtomicBool,
    /// The rollback recommendation became `applied`.
    rollback_applied: AtomicBool,
    done: tokio::sync::Notify,
}

impl Progress {
    fn complete(&self) -> bool {
        self.retrain.load(Ordering::SeqCst)
            && self.performance_retrain.load(Ordering::SeqCst)
            && self.rollback.load(Ordering::SeqCst)
            && self.rollback_applied.load(Ordering::SeqCst)
    }
    fn mark(&self, flag: &AtomicBool) {
        flag.store(true, Ordering::SeqCst);
        if self.complete() {
            self.done.notify_waiters();
            self.done.notify_one();
        }
    }
}

/// Runs the demo: a child `modelwatch serve` (this executable) whose admin
/// token is `token`, the story, and the fleet; the exit status says whether
/// both outcomes were seen in time (with `--exit-when-done`).
pub async fn run(args: DemoArgs, token: String) -> Result<ExitCode> {
    let story = Story {
        started: Instant::now(),
    };
    let data_dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => temp_data_dir()?,
    };
    let listen = args
        .listen
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    story.say(format!(
        "starting modelwatch serve on {} (data directory {})",
        listen,
        data_dir.display()
    ));
    let tls = args.tls_cert.as_deref().zip(args.tls_key.as_deref());
    let mut daemon = Daemon::spawn(&data_dir, listen, &token, tls).await?;
    println!();
    println!("  modelwatch is listening on {}", daemon.url);
    println!("  its log: {}", daemon.log_path.display());
    println!("  in another terminal, to query it while the story runs:");
    println!(
        "    export MODELWATCH_URL={} MODELWATCH_TOKEN={}{}",
        daemon.url,
        token,
        ca_export(&args)
    );
    println!("    modelwatch sql \"SELECT * FROM recommendations\"");
    println!();

    let client = match &args.ca_file {
        Some(ca) => Client::with_ca_file(&daemon.url, Some(token.clone()), ca)
            .map_err(|e| Error::Local(e.to_string()))?,
        None => Client::new(&daemon.url, Some(token.clone())),
    };
    let timeline = Timeline { speed: args.speed };
    let progress = Arc::new(Progress::default());
    let mut fleet = None;
    let (otlp_http, log_path) = (daemon.otlp_http.clone(), daemon.log_path.clone());
    let outcome = tokio::select! {
        r = play(&args, timeline, story, &client, otlp_http, progress.clone(), &mut fleet) => r,
        _ = tokio::signal::ctrl_c() => Ok(Outcome::Interrupted),
        status = daemon.child.wait() => Err(daemon_died(status, &log_path)),
    };
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            if let Some(f) = fleet.take() {
                Fleet::shutdown(f).await;
            }
            daemon.stop().await;
            return Err(e);
        }
    };
    match outcome {
        Outcome::Done => {
            story.say(
                "all happened: both retrain recommendations (performance, drift) and the automatic rollback",
            );
            report_alias(&client, story).await;
            print_queries(&daemon.url, &token, &ca_export(&args));
        }
        Outcome::TimedOut => {
            story.say(format!(
                "gave up after {} s: {}",
                args.timeout,
                missing(&progress)
            ));
            print_queries(&daemon.url, &token, &ca_export(&args));
        }
        Outcome::Interrupted => story.say("interrupted"),
    }
    let code = match (outcome, args.exit_when_done) {
        (Outcome::Done, true) => ExitCode::SUCCESS,
        (Outcome::TimedOut, true) => ExitCode::FAILURE,
        (Outcome::Interrupted, _) => ExitCode::SUCCESS,
        (_, false) => {
            story.say("the fleet keeps sending and modelwatch keeps watching; Ctrl-C stops both");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                status = daemon.child.wait() => {
                    if let Some(f) = fleet.take() {
                        Fleet::shutdown(f).await;
                    }
                    return Err(daemon_died(status, &log_path));
                }
            }
            ExitCode::SUCCESS
        }
    };
    if let Some(f) = fleet.take() {
        story.say("stopping the fleet (flushing its telemetry)");
        Fleet::shutdown(f).await;
    }
    story.say("stopping modelwatch (SIGTERM)");
    daemon.stop().await;
    story.say(format!(
        "data kept in {} — `modelwatch serve --data-dir {}` opens it again",
        data_dir.display(),
        data_dir.display()
    ));
    if code == ExitCode::FAILURE {
        eprintln!(
            "error: the demo did not complete within {} s ({}); see the daemon's log {}",
            args.timeout,
            missing(&progress),
            log_path.display()
        );
    }
    Ok(code)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Done,
    TimedOut,
    Interrupted,
}

fn missing(progress: &Progress) -> String {
    let mut not_seen = Vec::new();
    if !progress.retrain.load(Ordering::SeqCst) {
        not_seen.push("no retrain recommendation for fraud-detector");
    }
    if !progress.performance_retrain.load(Ordering::SeqCst) {
        not_seen.push("no retrain recommendation for credit-scorer");
    }
    if !progress.rollback.load(Ordering::SeqCst) {
        not_seen.push("no automatic rollback of churn-predictor");
    } else if !progress.rollback_applied.load(Ordering::SeqCst) {
        not_seen.push("the rollback recommendation was not marked applied");
    }
    not_seen.join(", ")
}

fn daemon_died(status: std::io::Result<std::process::ExitStatus>, log: &Path) -> Error {
    let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
    // The daemon's own last words (e.g. "cannot listen on …") say what to do.
    let last = std::fs::read_to_string(log)
        .ok()
        .and_then(|text| {
            text.lines()
                .rev()
                .find(|l| l.contains("ERROR") || l.starts_with("error:"))
                .map(str::to_string)
        })
        .map(|l| format!("\n  {l}"))
        .unwrap_or_default();
    Error::Local(format!(
        "modelwatch serve stopped unexpectedly ({status}); its log is {}{last}",
        log.display()
    ))
}

/// `<tmp>/modelwatch-demo-<time>-<pid>`, created.
fn temp_data_dir() -> Result<PathBuf> {
    let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
    let dir = std::env::temp_dir().join(format!("modelwatch-demo-{stamp}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| {
        format!(
            "cannot create {}; pass --data-dir with a writable directory",
            dir.display()
        )
    })?;
    Ok(dir)
}

/// The demo's `modelwatch serve`, a child process in its own process group
/// (so Ctrl-C reaches only the demo, which then stops it in order).
struct Daemon {
    child: tokio::process::Child,
    url: String,
    otlp_http: String,
    log_path: PathBuf,
}

impl Daemon {
    async fn spawn(
        data_dir: &Path,
        listen: SocketAddr,
        token: &str,
        tls: Option<(&Path, &Path)>,
    ) -> Result<Daemon> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
        let log_path = data_dir.join("modelwatch.log");
        let mut log = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .await
            .with_context(|| format!("cannot write the daemon's log {}", log_path.display()))?;
        let exe = std::env::current_exe()
            .context("cannot find this executable to start it as `modelwatch serve`")?;
        let mut cmd = tokio::process::Command::new(exe);
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg(listen.to_string())
            .args(["--otlp-http-listen", "127.0.0.1:0"])
            .args(["--otlp-grpc-listen", "127.0.0.1:0"])
            .args(["--pg-listen", "127.0.0.1:0"])
            .args(["--log-format", "human", "--log", "info"])
            .args(tls.into_iter().flat_map(|(cert, key)| {
                [
                    "--tls-cert".as_ref(),
                    cert.as_os_str(),
                    "--tls-key".as_ref(),
                    key.as_os_str(),
                ]
            }))
            .env("MODELWATCH_BOOTSTRAP_TOKEN", token)
            // The demo's daemon is configured here, not by a config file or
            // flags meant for another daemon.
            .env_remove("MODELWATCH_CONFIG")
            .env_remove("MODELWATCH_NO_AUTH")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        #[cfg(unix)]
        cmd.process_group(0);
        let mut child = cmd.spawn().context("cannot start `modelwatch serve`")?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| Error::Local("no stderr pipe".into()))?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        // Every line goes to the log file; `listening on` lines also to us.
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = log.write_all(line.as_bytes()).await;
                let _ = log.write_all(b"\n").await;
                if let Some(pos) = line.find("listening on ") {
                    let url = line[pos + "listening on ".len()..]
                        .split(|c: char| c.is_whitespace() || c == '"')
                        .next()
                        .unwrap_or_default()
                        .to_string();
                    let _ = tx.send((listener_kind(&line), url));
                }
            }
            let _ = log.flush().await;
        });
        let (mut url, mut otlp_http) = (None, None);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while url.is_none() {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(("api", u)) => url = Some(u),
                    Some(("otlp-http", u)) => otlp_http = Some(u),
                    Some(_) => {}
                    None => {
                        let status = child.wait().await;
                        return Err(daemon_died(status, &log_path))
                            .context("modelwatch serve did not start");
                    }
                },
                _ = tokio::time::sleep_until(deadline) => {
                    let _ = child.start_kill();
                    return Err(Error::Local(format!(
                        "modelwatch serve did not report `listening on` within 60 s; its log is {}",
                        log_path.display()
                    )));
                }
            }
        }
        let url = url.unwrap_or_default();
        let otlp_http = otlp_http.unwrap_or_else(|| url.clone());
        Ok(Daemon {
            child,
            url,
            otlp_http,
            log_path,
        })
    }

    /// SIGTERM, then up to 30 s for in-flight work; SIGKILL after that.
    async fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let terminated = match self.child.id() {
            Some(pid) => tokio::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await
                .is_ok_and(|s| s.success()),
            None => false,
        };
        if terminated
            && let Ok(status) =
                tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await
        {
            tracing::debug!(?status, "modelwatch serve stopped");
            return;
        }
        tracing::warn!("modelwatch serve did not stop on SIGTERM; killing it");
        let _ = self.child.kill().await;
    }
}

fn listener_kind(line: &str) -> &'static str {
    if line.contains("otlp-grpc") {
        "otlp-grpc"
    } else if line.contains("postgres://") {
        "pg"
    } else if line.contains("otlp-http") {
        "otlp-http"
    } else {
        "api"
    }
}

/// Setup, then the timeline, until both outcomes were seen or time is up.
async fn play(
    args: &DemoArgs,
    timeline: Timeline,
    story: Story,
    client: &Client,
    otlp_http: String,
    progress: Arc<Progress>,
    fleet_slot: &mut Option<Fleet>,
) -> Result<Outcome> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout);
    // The printer tells what the registry records, including our own setup.
    tokio::spawn(watch_registry(client.clone(), story, progress.clone()));
    let ingest = setup(client, timeline, story, args.seed).await?;

    let fleet = Fleet::start(
        FleetConfig {
            otlp_http: otlp_http.clone(),
            token: ingest,
            rate: Timeline::RATE * timeline.speed,
            seed: args.seed,
            ca_file: args.ca_file.clone(),
        },
        client.clone(),
    )?;
    let stats = fleet.stats.clone();
    *fleet_slot = Some(fleet);
    let t0 = tokio::time::Instant::now();
    story.say(format!(
        "fleet: serving {FRAUD} and {CHURN} from their {ALIAS} versions, {} requests/s each, \
         telemetry over OTLP/HTTP to {}",
        Timeline::RATE * timeline.speed,
        otlp_http
    ));

    let script = async {
        tokio::time::sleep_until(t0 + timeline.at(Timeline::CONCEPT_AT)).await;
        concept_drift(client, story).await?;
        tokio::time::sleep_until(t0 + timeline.at(Timeline::DRIFT_AT)).await;
        if let Some(f) = fleet_slot.as_ref() {
            f.inject_drift();
        }
        story.say(format!(
            "fleet: transaction amounts are now {DRIFT_FACTOR}× larger (the `amount` feature drifts)"
        ));
        tokio::time::sleep_until(t0 + timeline.at(Timeline::DEPLOY_AT)).await;
        deploy_bad_version(client, story).await?;
        std::future::pending::<Result<()>>().await
    };
    let heartbeat = async {
        let mut tick = tokio::time::interval(timeline.at(15.0));
        tick.tick().await;
        loop {
            tick.tick().await;
            story.say(format!(
                "fleet: {} inferences and {} spans sent so far",
                stats.inferences.load(Ordering::Relaxed),
                stats.spans.load(Ordering::Relaxed)
            ));
        }
    };
    let done = async {
        loop {
            let notified = progress.done.notified();
            if progress.complete() {
                return;
            }
            notified.await;
        }
    };
    tokio::select! {
        r = script => r.map(|()| Outcome::Done),
        () = heartbeat => unreachable!("the heartbeat never ends"),
        () = done => Ok(Outcome::Done),
        () = tokio::time::sleep_until(deadline) => Ok(Outcome::TimedOut),
    }
}

/// Models, versions, reference data, aliases, policies and the fleet's
/// `ingest` token; returns that token.
async fn setup(client: &Client, timeline: Timeline, story: Story, seed: u64) -> Result<String> {
    let ingest = client
        .tokens()
        .create("demo-fleet", Role::Ingest, None)
        .await
        .context("cannot create the fleet's ingest token")?
        .token;

    let features: modelwatch_client::Features = FRAUD_FEATURES
        .into_iter()
        .map(|(name, kind)| Ok((name.to_string(), kind.parse().map_err(Error::local)?)))
        .collect::<Result<_>>()?;
    create_model(client, FRAUD, "card fraud score", "risk-team").await?;
    for (v, auc) in [(1, 0.91), (2, 0.93)] {
        let mut new = NewVersion {
            description: format!("gradient boosting, build {v}"),
            source_uri: Some(format!("s3://models/fraud-detector/{v}")),
            run_id: Some(format!("fraud-run-{v}")),
            features: features.clone(),
            ..NewVersion::default()
        };
        new.lineage.code_commit = Some(format!("a1b2c3{v}"));
        new.lineage.metrics.insert("auc".into(), auc);
        new.lineage.parent_version = if v > 1 { Some(v - 1) } else { None };
        create_version(client, FRAUD, &new).await?;
        let rows = Timeline::REFERENCE_ROWS;
        let body = reference_ndjson(seed + v as u64, rows);
        let options = UploadOptions {
            content_type: "application/x-ndjson".into(),
            gzip: false,
            idempotency_key: None,
        };
        client
            .versions(FRAUD)
            .upload(v, UploadTable::Reference, &options, body.into())
            .await
            .with_context(|| format!("cannot upload reference data for {FRAUD} v{v}"))?;
        story.say(format!("uploaded {rows} reference rows for {FRAUD} v{v}"));
    }
    set_alias(client, FRAUD, ALIAS, 1, "initial deployment").await?;
    set_alias(client, FRAUD, "staging", 2, "candidate").await?;

    create_model(client, CHURN, "subscription churn", "growth-team").await?;
    let first = churn_version(1, "logistic regression", "9f8e7d1", 0.84);
    create_version(client, CHURN, &first).await?;
    set_alias(client, CHURN, ALIAS, 1, "initial deployment").await?;

    let window = timeline.duration(Timeline::WINDOW);
    let interval = timeline.duration(Timeline::INTERVAL);

    create_model(client, CREDIT, "loan approval", "credit-team").await?;
    let mut scorer = NewVersion {
        description: "credit scorer trained on last year's applications".into(),
        source_uri: Some(format!("s3://models/{CREDIT}/1")),
        ..NewVersion::default()
    };
    scorer.lineage.metrics.insert("accuracy".into(), 0.92);
    create_version(client, CREDIT, &scorer).await?;
    set_alias(client, CREDIT, ALIAS, 1, "initial deployment").await?;
    let policy: MonitoringPolicy = serde_json::from_value(json!({
        "alias": ALIAS,
        "interval": interval,
        "current_window": window,
        "min_rows": 100,
        "performance": {"task": "classification", "min_labels": 100,
                        "minimums": {"accuracy": CREDIT_MIN_ACCURACY}},
    }))
    .map_err(|e| Error::Local(format!("the demo's policy for {CREDIT} is invalid: {e}")))?;
    client
        .policies()
        .set(CREDIT, &policy)
        .await
        .with_context(|| format!("cannot set the monitoring policy of {CREDIT}"))?;
    story.say(format!(
        "monitoring policy for {CREDIT}: realized accuracy at least {CREDIT_MIN_ACCURACY}, from labels that arrive after the decisions"
    ));
    for (model, automatic) in [(FRAUD, false), (CHURN, true)] {
        // Written as the document `docs/monitoring.md` shows; decoding it
        // checks it against the policy type before anything is sent.
        let policy: MonitoringPolicy = serde_json::from_value(json!({
            "alias": ALIAS,
            "interval": interval,
            "current_window": window,
            "reference": "reference_data",
            "min_rows": Timeline::MIN_ROWS,
            "persistence": 2,
            "drift_share": 0.3,
            "features": {},
            "rollback": {
                "latency": { "source": "spans" },
                "errors": { "source": "spans" },
                "window": window,
                "min_requests": 50,
                "automatic": automatic,
            },
        }))
        .map_err(|e| Error::Local(format!("the demo's policy for {model} is invalid: {e}")))?;
        match client.policies().set(model, &policy).await {
            Ok(_) => story.say(format!(
                "monitoring policy for {model}: every {interval}, {window} windows, \
                 drift persisting 2 evaluations → retrain, automatic rollback {}",
                if automatic { "on" } else { "off" }
            )),
            Err(ClientError::Api {
                status: 404 | 405,
                message,
                ..
            }) => {
                story.say(format!(
                    "WARNING: this modelwatch has no monitoring-policy API ({message}); \
                     telemetry flows but nothing will evaluate it"
                ));
            }
            Err(e) => {
                return Err(e).context(format!("cannot set the monitoring policy of {model}"));
            }
        }
    }
    Ok(ingest)
}

async fn create_model(client: &Client, name: &str, description: &str, owner: &str) -> Result<()> {
    let new = NewModel {
        name: name.into(),
        description: description.into(),
        owner: owner.into(),
        tags: [("demo".to_string(), "true".to_string())].into(),
    };
    match client.models().create(&new).await {
        Ok(_) => Ok(()),
        Err(ClientError::Api { status: 409, .. }) => Err(Error::Local(format!(
            "model {name} exists already in this data directory; run the demo on a fresh --data-dir"
        ))),
        Err(e) => Err(e).context(format!("cannot register model {name}")),
    }
}

async fn create_version(client: &Client, model: &str, new: &NewVersion) -> Result<i64> {
    let created = client
        .versions(model)
        .create(new)
        .await
        .with_context(|| format!("cannot register a version of {model}"))?;
    Ok(created.version)
}

async fn set_alias(
    client: &Client,
    model: &str,
    alias: &str,
    version: i64,
    reason: &str,
) -> Result<()> {
    client
        .aliases(model)
        .set(alias, version, reason)
        .await
        .with_context(|| format!("cannot point {model} {alias} at v{version}"))?;
    Ok(())
}

/// churn-predictor version `n` as its training pipeline registers it.
fn churn_version(n: i64, description: &str, code_commit: &str, auc: f64) -> NewVersion {
    let mut new = NewVersion {
        description: description.into(),
        source_uri: Some(format!("s3://models/churn-predictor/{n}")),
        run_id: Some(format!("churn-run-{n}")),
        ..NewVersion::default()
    };
    new.lineage.code_commit = Some(code_commit.into());
    new.lineage.metrics.insert("auc".into(), auc);
    new
}

/// The concept-drift act: 400 loan decisions whose inputs look as always,
/// then their outcomes as delayed labels, of which only 60 % agree with the
/// decision (the world changed, not the inputs). The evaluator joins them
/// by `inference_id` at its next evaluation.
async fn concept_drift(client: &Client, story: Story) -> Result<()> {
    const DECISIONS: usize = 400;
    let decision = |i: usize| {
        if i.is_multiple_of(3) {
            "deny"
        } else {
            "approve"
        }
    };
    let inferences: String = (0..DECISIONS)
        .map(|i| {
            let row = json!({"inference_id": format!("loan-{i}"),
                             "income": 30_000 + (i * 7_919) % 90_000,
                             "prediction": decision(i)});
            format!("{row}\n")
        })
        .collect();
    // Two in five outcomes contradict the decision.
    let labels: String = std::iter::once("inference_id,label\n".to_string())
        .chain((0..DECISIONS).map(|i| {
            let right = i % 5 >= 2;
            let label = match (decision(i), right) {
                (d, true) => d,
                ("approve", false) => "deny",
                (_, false) => "approve",
            };
            format!("loan-{i},{label}\n")
        }))
        .collect();
    let upload = |table: UploadTable, content_type: &str, body: String| {
        let options = UploadOptions {
            content_type: content_type.into(),
            gzip: false,
            idempotency_key: None,
        };
        async move {
            client
                .versions(CREDIT)
                .upload(1, table, &options, body.into())
                .await
                .with_context(|| format!("cannot upload {} for {CREDIT}", table.as_str()))
        }
    };
    upload(UploadTable::Inferences, "application/x-ndjson", inferences).await?;
    story.say(format!(
        "{CREDIT}: {DECISIONS} loan decisions made; the applicants look as they always did"
    ));
    let reply = upload(UploadTable::Labels, "text/csv", labels).await?;
    let matched = reply.labels.map_or(0, |l| l.matched);
    story.say(format!(
        "{CREDIT}: their outcomes arrive later as labels ({matched} matched to a decision): the world changed, not the inputs"
    ));
    Ok(())
}

/// churn-predictor v2: registered and made `production` at once.
async fn deploy_bad_version(client: &Client, story: Story) -> Result<()> {
    story.say(format!(
        "deploying {CHURN} v2 — a build whose latency and error rate are much worse"
    ));
    let mut new = churn_version(2, "gradient boosting (slow build)", "0badc0d", 0.86);
    new.lineage.parent_version = Some(1);
    let v = create_version(client, CHURN, &new).await?;
    set_alias(client, CHURN, ALIAS, v, "better offline auc").await
}

/// Polls the audit log (new entries) and the recommendations (new ones and
/// status changes) every second and prints them.
async fn watch_registry(client: Client, story: Story, progress: Arc<Progress>) {
    let mut audit = AuditTail::default();
    let mut recs: HashMap<i64, RecommendationStatus> = HashMap::new();
    let all = RecommendationQuery {
        page: PageQuery::limit(1000),
        ..RecommendationQuery::default()
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let entries = audit.poll(&client).await.unwrap_or_else(|e| {
            tracing::debug!(error = %e, "cannot read the audit log");
            Vec::new()
        });
        let listed = match client.recommendations().list(&all).await {
            Ok(page) => page.items,
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the recommendations");
                Vec::new()
            }
        };
        // In the order things happen: a recommendation is raised, the
        // alias moves (audit), the recommendation is applied.
        let mut changed = Vec::new();
        for r in &listed {
            let (id, status) = (r.id, r.status);
            if recs.get(&id) == Some(&status) {
                continue;
            }
            if !recs.contains_key(&id) {
                let mut raised = r.clone();
                raised.status = RecommendationStatus::Open;
                story.say(describe_recommendation(&raised, &progress));
            }
            let first = recs.insert(id, status).is_none();
            if !(first && status == RecommendationStatus::Open) {
                changed.push(r);
            }
        }
        for e in entries {
            // The describer reads the entry as the document it is (its
            // `before`/`after` are free-form JSON).
            let Ok(e) = serde_json::to_value(&e) else {
                continue;
            };
            if let Some(line) = describe_audit(&e, &progress) {
                story.say(line);
            }
        }
        for r in changed {
            story.say(describe_recommendation(r, &progress));
        }
    }
}

/// Follows the audit log with the server's own cursors: the last page is
/// asked for again (from the cursor that led to it) and entries already
/// seen are skipped.
#[derive(Debug, Default)]
struct AuditTail {
    cursor: Option<String>,
    last_seq: i64,
}

impl AuditTail {
    async fn poll(&mut self, client: &Client) -> Result<Vec<AuditEntry>, ClientError> {
        let mut out = Vec::new();
        loop {
            let query = AuditQuery {
                page: PageQuery {
                    limit: Some(200),
                    cursor: self.cursor.clone(),
                },
                ..AuditQuery::default()
            };
            let page = client.audit().list(&query).await?;
            for e in page.items {
                if e.seq > self.last_seq {
                    self.last_seq = e.seq;
                    out.push(e);
                }
            }
            match page.next_cursor {
                Some(next) => self.cursor = Some(next),
                None => return Ok(out),
            }
        }
    }
}

/// `model/{m}/…` → (m, rest).
fn split_target(target: &str) -> Option<(&str, &str)> {
    let rest = target.strip_prefix("model/")?;
    Some(rest.split_once('/').unwrap_or((rest, "")))
}

/// One human line for an audit entry worth telling; marks the automatic
/// rollback.
fn describe_audit(e: &Value, progress: &Progress) -> Option<String> {
    let action = e["action"].as_str()?;
    let actor = e["actor"].as_str().unwrap_or("?");
    let target = e["target"].as_str().unwrap_or("");
    let by = if actor == ADMIN {
        "the demo".to_string()
    } else {
        actor.to_string()
    };
    match action {
        "model.create" => Some(format!(
            "registry: model {} registered",
            split_target(target)?.0
        )),
        "version.create" => {
            let (model, rest) = split_target(target)?;
            let v = rest.strip_prefix("version/")?;
            Some(format!("registry: {model} v{v} registered by {by}"))
        }
        "alias.set" | "alias.rollback" => {
            let (model, rest) = split_target(target)?;
            let alias = rest.strip_prefix("alias/")?;
            let from = e["before"]["version"].as_i64();
            let to = e["after"]["version"].as_i64()?;
            let reason = e["after"]["reason"].as_str().unwrap_or("");
            let automatic = actor != ADMIN
                && model == CHURN
                && alias == ALIAS
                && to == 1
                && from.is_some_and(|f| f > 1);
            let moved = match from {
                Some(f) => format!("v{f} → v{to}"),
                None => format!("→ v{to}"),
            };
            let verb = if action == "alias.rollback" {
                "rolled back"
            } else {
                "moved"
            };
            let mut line = format!("registry: {model} {alias} {verb} {moved} by {by}");
            if !reason.is_empty() {
                // The evaluator's reasons repeat the recommendation's; keep
                // their head ("automatic rollback, recommendation 2").
                let short = match reason.split_once(':') {
                    Some((head, _)) if reason.len() > 80 => head,
                    _ => reason,
                };
                line.push_str(&format!(" ({short})"));
            }
            if automatic {
                progress.mark(&progress.rollback);
                line = format!("automatic rollback: {line}");
            }
            Some(line)
        }
        // The evaluator mirrors a version's health into a tag: "drifting",
        // "degraded", "healthy". (Recommendations are told from their own
        // listing, the demo's own policies when they are set.)
        "version.tag.set" => {
            let (model, rest) = split_target(target)?;
            let v = rest.strip_prefix("version/")?;
            let health = match e["after"][HEALTH_TAG].as_str()? {
                "insufficient_data" => "not judged yet (too little traffic in the window)",
                other => other,
            };
            Some(format!("health: {model} v{v} is {health} (by {by})"))
        }
        a if actor == ADMIN
            || a.starts_with("recommendation.")
            || a.starts_with("token.")
            || a.ends_with(".tag.set") =>
        {
            None
        }
        a => Some(format!("registry: {a} on {target} by {by}")),
    }
}

/// One human line for a new recommendation or a status change; marks the
/// retrain recommendation.
fn describe_recommendation(r: &Recommendation, progress: &Progress) -> String {
    let (id, model, version, kind) = (r.id, r.model.as_str(), r.version, r.kind);
    let reason = &r.reason;
    let by = |who: &Option<String>| who.clone().unwrap_or_else(|| "?".to_string());
    match r.status {
        RecommendationStatus::Open
            if kind == RecommendationKind::Retrain && r.evidence["trigger"] == "performance" =>
        {
            if model == CREDIT {
                progress.mark(&progress.performance_retrain);
            }
            format!(
                "performance drop: retrain recommended for {model} v{version} (#{id}, by {}): {reason}",
                r.raised_by
            )
        }
        RecommendationStatus::Open if kind == RecommendationKind::Retrain => {
            if model == FRAUD {
                progress.mark(&progress.retrain);
            }
            let features = drifted_features(&r.evidence);
            let features = if features.is_empty() {
                String::new()
            } else {
                format!(" — drifted features: {}", features.join(", "))
            };
            format!(
                "drift detected: retrain recommended for {model} v{version} (#{id}, by {}){features}: {reason}",
                r.raised_by
            )
        }
        RecommendationStatus::Open => format!(
            "{kind} recommended for {model} v{version} (#{id}, by {}): {reason}",
            r.raised_by
        ),
        RecommendationStatus::Applied => {
            if kind == RecommendationKind::Rollback && model == CHURN {
                progress.mark(&progress.rollback_applied);
            }
            format!(
                "{kind} recommendation #{id} for {model} v{version} applied by {}",
                by(&r.resolved_by)
            )
        }
        other => format!("{kind} recommendation #{id} for {model} v{version} is now {other}"),
    }
}

/// Names of drifted features in a recommendation's evidence, whatever its
/// exact shape: a `drifted_features` list of names, or objects with a
/// `feature`/`name` and a true `drifted`, anywhere in the document.
fn drifted_features(evidence: &Value) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                if let Some(list) = map.get("drifted_features").and_then(Value::as_array) {
                    out.extend(list.iter().filter_map(|f| f.as_str().map(str::to_string)));
                }
                if map.get("drifted").and_then(Value::as_bool) == Some(true)
                    && let Some(name) = map
                        .get("feature")
                        .or_else(|| map.get("name"))
                        .and_then(Value::as_str)
                {
                    out.push(name.to_string());
                }
                for (k, child) in map {
                    if k != "drifted_features" {
                        walk(child, out);
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(evidence, &mut out);
    out.sort();
    out.dedup();
    out
}

/// Where `production` points now, from the registry.
async fn report_alias(client: &Client, story: Story) {
    if let Ok(a) = client.aliases(CHURN).get(ALIAS).await {
        story.say(format!("registry: {CHURN} {ALIAS} is on v{}", a.version));
    }
}

/// What to try next, with the real URL and token.
/// ` MODELWATCH_CA_FILE=…` for the export lines, when the demo has one.
fn ca_export(args: &DemoArgs) -> String {
    args.ca_file
        .as_ref()
        .map(|ca| format!(" MODELWATCH_CA_FILE={}", ca.display()))
        .unwrap_or_default()
}

fn print_queries(url: &str, token: &str, ca_export: &str) {
    println!();
    println!("Query it all with `modelwatch sql` (another terminal):");
    println!("  export MODELWATCH_URL={url} MODELWATCH_TOKEN={token}{ca_export}");
    for q in EXAMPLE_QUERIES {
        println!("  modelwatch sql \"{q}\"");
    }
    println!();
}

/// The queries the demo suggests; the e2e test runs every one of them.
pub const EXAMPLE_QUERIES: &[&str] = &[
    "SELECT ts, model, version, feature, method, statistic, p_value, drifted FROM drift_results ORDER BY ts DESC LIMIT 10",
    "SELECT id, model, version, kind, status, reason FROM recommendations ORDER BY id",
    "SELECT ts, model, alias, from_version, to_version, kind, actor FROM alias_moves ORDER BY ts",
    "SELECT model, version, count(*) AS requests, avg(duration_ms) AS avg_ms, avg(CASE WHEN status_code = 'error' THEN 1.0 ELSE 0.0 END) AS error_rate FROM spans GROUP BY 1, 2 ORDER BY 1, 2",
    "SELECT version, count(*) AS n, median(features_num['amount']) AS median_amount FROM inferences WHERE model = 'fraud-detector' GROUP BY 1",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drifted_features_are_found_in_several_shapes() {
        let e = json!({"drifted_features": ["amount"], "features": [
            {"feature": "amount", "drifted": true}, {"feature": "merchant_category", "drifted": false},
            {"name": "account_age_days", "drifted": true}]});
        assert_eq!(drifted_features(&e), ["account_age_days", "amount"]);
        assert!(drifted_features(&json!({})).is_empty());
    }

    #[test]
    fn the_automatic_rollback_is_recognised_only_when_not_by_the_demo() {
        let p = Progress::default();
        let by_demo = json!({"action": "alias.set", "actor": ADMIN,
            "target": "model/churn-predictor/alias/production",
            "before": {"version": 2}, "after": {"version": 1, "reason": "x"}});
        describe_audit(&by_demo, &p).unwrap();
        assert!(!p.rollback.load(Ordering::SeqCst));
        let by_evaluator = json!({"action": "alias.rollback", "actor": "evaluator",
            "target": "model/churn-predictor/alias/production",
            "before": {"version": 2}, "after": {"version": 1, "reason": "latency"}});
        let line = describe_audit(&by_evaluator, &p).unwrap();
        assert!(line.starts_with("automatic rollback:"), "{line}");
        assert!(p.rollback.load(Ordering::SeqCst));
    }

    #[test]
    fn policy_durations_scale_with_speed() {
        assert_eq!(Timeline { speed: 1.0 }.duration(30.0), "30s");
        assert_eq!(Timeline { speed: 2.0 }.duration(5.0), "3s");
        assert_eq!(Timeline { speed: 4.0 }.duration(2.0), "1s");
    }
}
