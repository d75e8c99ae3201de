//! `modelwatch serve`: open the stores, make sure an admin token exists,
//! start the background work (history persistence, webhook dispatch and
//! delivery, artifact garbage collection), bind the listeners (HTTP API, OTLP/HTTP, OTLP/gRPC, PostgreSQL), serve until
//! SIGINT/SIGTERM, then drain in-flight requests on every listener before
//! closing the stores.

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use futures::future::BoxFuture;
use modelwatch_registry::{
    Actor, AliasProtection, DutyFence, PgStore, RegistryStore, Role, SqliteStore, tokens,
};

use crate::auth::Auth;
use crate::cluster::{Cluster, leased};
use crate::config::Settings;
use crate::http::{self, AppState, Limits};
use crate::telemetry::Telemetry;
use crate::tls::{Protocol, ServerTls};
use crate::webhooks::{WebhookConfig, Webhooks};
use modelwatch_collectors::RemoteWriteConfig;
use modelwatch_collectors::otlp::OtlpConfig;
use modelwatch_history::HistoryConfig;

/// The registry the daemon serves, and what the evaluator and shutdown need
/// of it (the evaluator takes the concrete store as its own port).
struct OpenedRegistry {
    registry: Arc<dyn RegistryStore>,
    /// The store fenced by a duty's lease, as the webhook loops take it.
    fenced: Box<dyn Fn(Arc<DutyFence>) -> Arc<dyn RegistryStore> + Send + Sync>,
    /// The same, as the evaluator takes it.
    fenced_evaluator: Box<
        dyn Fn(Arc<DutyFence>) -> Arc<dyn modelwatch_evaluator::EvaluatorRegistry> + Send + Sync,
    >,
    close: Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>,
}

/// Opens the embedded SQLite registry in the data directory, or connects to
/// the PostgreSQL one named by `--registry-url` (whose migrations this
/// binary applies, refusing a newer schema).
async fn open_registry(
    settings: &Settings,
    protection: AliasProtection,
) -> anyhow::Result<OpenedRegistry> {
    fn opened<S: RegistryStore + Clone>(
        store: S,
        fenced: fn(&S, Arc<DutyFence>) -> S,
        close: impl FnOnce(S) -> BoxFuture<'static, ()> + Send + 'static,
    ) -> OpenedRegistry {
        let (for_duties, for_evaluator) = (store.clone(), store.clone());
        OpenedRegistry {
            registry: Arc::new(store.clone()),
            fenced: Box::new(move |fence| Arc::new(fenced(&for_duties, fence))),
            fenced_evaluator: Box::new(move |fence| Arc::new(fenced(&for_evaluator, fence))),
            close: Box::new(move || close(store)),
        }
    }
    match &settings.registry_url {
        None => {
            let path = settings.data_dir.join("registry.sqlite");
            let store = SqliteStore::open(&path)
                .await
                .with_context(|| format!("cannot open the registry at {}", path.display()))?
                .with_alias_protection(protection);
            tracing::info!(registry = %path.display(), "registry: embedded SQLite");
            Ok(opened(store, SqliteStore::fenced, |s| {
                Box::pin(async move { s.close().await })
            }))
        }
        Some(url) => {
            let store = PgStore::connect(
                &url.0,
                settings.registry_pool,
                Arc::new(modelwatch_types::SystemClock),
            )
            .await
            .with_context(|| format!("cannot open the registry at {}", url.redacted()))?
            .with_alias_protection(protection);
            tracing::info!(
                registry = %url.redacted(),
                max_connections = settings.registry_pool.max_connections,
                "registry: PostgreSQL"
            );
            Ok(opened(store, PgStore::fenced, |s| {
                Box::pin(async move { s.close().await })
            }))
        }
    }
}

/// Name of the token created at first start.
pub const BOOTSTRAP_TOKEN_NAME: &str = "bootstrap-admin";

pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    std::fs::create_dir_all(&settings.data_dir).with_context(|| {
        format!(
            "cannot create data directory {}",
            settings.data_dir.display()
        )
    })?;
    // Wrong TLS files stop the start before anything is opened.
    let tls = match &settings.tls {
        Some(files) => Some(Arc::new(
            ServerTls::load(files.clone(), Protocol::Http)
                .context("cannot set up TLS (--tls-cert, --tls-key, --tls-client-ca)")?,
        )),
        None => None,
    };
    let pg_tls = match (&settings.pg_tls, settings.pg_listen) {
        (Some(files), Some(_)) => Some(Arc::new(
            ServerTls::load(files.clone(), Protocol::Postgres).context(
                "cannot set up TLS for the PostgreSQL listener (--pg-tls-cert and --pg-tls-key, or --tls-cert and --tls-key)",
            )?,
        )),
        _ => None,
    };
    // A wrong signing key stops the start before anything is opened.
    let anchor_key = match &settings.audit_anchor {
        Some(config) => Some(crate::audit_anchor::load_key(config)?),
        None => None,
    };
    let oidc = match &settings.oidc {
        Some(config) => {
            let http = crate::webhooks::outbound_client(
                std::time::Duration::from_secs(10),
                settings.ca_file.as_deref(),
            )
            .context("cannot use --ca-file for outbound HTTPS")?;
            Some(
                crate::oidc::OidcVerifier::start(config.clone(), http)
                    .await
                    .map_err(anyhow::Error::msg)?,
            )
        }
        None => None,
    };
    let protection = AliasProtection::new(&settings.protected_aliases);
    let opened = open_registry(&settings, protection.clone()).await?;
    let registry = opened.registry.clone();

    if settings.no_auth {
        tracing::warn!(listen = %settings.listen, "authentication is DISABLED (--no-auth): every request acts as admin");
    } else {
        ensure_admin_token(registry.as_ref(), settings.bootstrap_token.as_deref()).await?;
    }

    let history_dir = settings.data_dir.join("history");
    let telemetry = Arc::new(
        Telemetry::open(
            &history_dir,
            HistoryConfig {
                max_buffer_bytes: settings.max_buffer_bytes,
                persist_buffer_bytes: settings.persist_buffer_bytes,
                ..HistoryConfig::default()
            },
            RemoteWriteConfig {
                model_label: settings.model_label.clone(),
                version_label: settings.version_label.clone(),
                max_body_bytes: settings.max_write_bytes,
                ..RemoteWriteConfig::default()
            },
            OtlpConfig {
                model_key: settings.otlp_model_attribute.clone(),
                version_key: settings.otlp_version_attribute.clone(),
                feature_prefix: settings.otlp_feature_prefix.clone(),
                ..OtlpConfig::default()
            },
        )
        .await
        .with_context(|| {
            format!(
                "cannot open the telemetry history at {}",
                history_dir.display()
            )
        })?,
    );
    let duties = crate::duties::Duties::new();
    let (stop_background, stopped) = tokio::sync::watch::channel(false);
    let background: Vec<_> = telemetry
        .store
        .spawn_background(stopped)
        .into_tasks()
        .into_iter()
        .map(|(name, task)| {
            let duty = match name {
                modelwatch_history::BackgroundTasks::PERSISTER => crate::duties::names::PERSISTER,
                _ => crate::duties::names::MAINTENANCE,
            };
            duties.watch(duty, task)
        })
        .collect();
    {
        let store = telemetry.store.clone();
        duties.probe(crate::duties::names::WAL_WRITER, move || {
            (!store.wal_writer_running())
                .then(|| "the WAL writer thread ended; telemetry writes fail".to_owned())
        });
    }

    let uploads = crate::upload::Uploads::open(
        &settings.data_dir,
        settings.max_upload_bytes,
        &settings.reference_dirs,
    )
    .with_context(|| {
        format!(
            "cannot prepare the upload directories (uploads/, imports/ under {}, and --reference-dir)",
            settings.data_dir.display()
        )
    })?;
    let webhooks = Webhooks::new(
        registry.clone(),
        WebhookConfig {
            retry_base: std::time::Duration::from_millis(settings.webhook_retry_base_ms),
            max_attempts: settings.webhook_max_attempts,
            ca_file: settings.ca_file.clone(),
            ..WebhookConfig::default()
        },
    )
    .context("cannot use --ca-file for outbound HTTPS")?;
    // This daemon joins the cluster and claims its duties before they start,
    // so a lone daemon runs them from its first moment.
    let runs: Vec<&'static str> = leased::ALL
        .into_iter()
        .filter(|duty| match *duty {
            leased::EVALUATOR => !settings.no_evaluator,
            leased::AUDIT_ANCHOR => settings.audit_anchor.is_some(),
            _ => true,
        })
        .collect();
    let cluster = Arc::new(Cluster::new(
        registry.clone(),
        settings.listen.to_string(),
        settings.cluster,
        &runs,
    ));
    cluster.claim_round().await;
    let (stop_cluster, cluster_stopped) = tokio::sync::watch::channel(false);
    let cluster_task = cluster.spawn(cluster_stopped, &duties);
    tracing::info!(
        member = cluster.id(),
        duties = ?leased::ALL.iter().filter(|d| cluster.holds(d)).collect::<Vec<_>>(),
        "joined the cluster"
    );
    let webhook_tasks = webhooks.spawn(
        stop_background.subscribe(),
        &duties,
        cluster.leased(leased::WEBHOOK_DISPATCHER, &opened.fenced),
        cluster.leased(leased::WEBHOOK_SENDER, &opened.fenced),
    );
    if let Some(path) = &settings.policy_file {
        apply_policy_file(registry.as_ref(), path).await?;
    }
    let (stop_evaluator, evaluator_stopped) = tokio::sync::watch::channel(false);
    let evaluator = if settings.no_evaluator {
        tracing::info!("the evaluator is off (--no-evaluator)");
        None
    } else {
        let evaluator = crate::evaluator::evaluator(
            (opened.fenced_evaluator)(cluster.fence(leased::EVALUATOR)),
            telemetry.store.clone(),
            Arc::new(modelwatch_types::SystemClock),
        );
        let evaluator = Arc::new(evaluator.with_events(Arc::new(modelwatch_evaluator::Fanout(
            vec![
                Arc::new(crate::metrics::EvaluatorMetricsEvents),
                Arc::new(webhooks.clone()),
            ],
        ))));
        Some(
            crate::evaluator::spawn(
                evaluator,
                evaluator_stopped,
                &duties,
                cluster.fence(leased::EVALUATOR),
            )
            .context("cannot start the evaluator thread")?,
        )
    };
    let sql = Arc::new(
        crate::sql::SqlEngine::new(
            telemetry.store.clone(),
            registry.clone(),
            crate::sql::SqlLimits {
                timeout: settings.sql_timeout,
                memory_bytes: settings.sql_memory_limit,
            },
        )
        .context("cannot start the SQL engine")?,
    );
    let (anchor_task, own_anchors) = match (&settings.audit_anchor, anchor_key) {
        (Some(config), Some(key)) => {
            let own = Arc::new(crate::audit_anchor::OwnAnchors::new(config, &key));
            let task = crate::audit_anchor::spawn(
                config.clone(),
                key,
                cluster.leased(leased::AUDIT_ANCHOR, &opened.fenced),
                stop_background.subscribe(),
                &duties,
            );
            (Some(task), Some(own))
        }
        _ => (None, None),
    };
    let artifacts = open_artifacts(&settings).await?;
    let artifact_gc_task = crate::artifact_gc::spawn(
        artifacts.clone(),
        settings.artifact_gc,
        cluster.leased(leased::ARTIFACT_GC, &opened.fenced),
        stop_background.subscribe(),
        &duties,
    );
    let state = AppState {
        evaluator: evaluator.as_ref().map(|(handle, _)| handle.clone()),
        uploads: Arc::new(uploads),
        webhooks,
        registry: registry.clone(),
        telemetry: telemetry.clone(),
        auth: Arc::new(Auth::new(registry.clone(), settings.no_auth, protection).with_oidc(oidc)),
        limits: Limits {
            max_body_bytes: settings.max_body_bytes,
            max_write_bytes: settings.max_write_bytes,
        },
        sql: sql.clone(),
        duties: duties.clone(),
        cluster: cluster.clone(),
        artifacts,
        anchors: own_anchors,
    };
    let max_write_bytes = settings.max_write_bytes;
    let app = http::app(state.clone());
    // Bind every listener before announcing any, so a port clash stops the
    // start with nothing half-served.
    let listener = bind(settings.listen, "--listen").await?;
    let otlp_http = match settings.otlp_http_listen {
        Some(addr) => Some(bind(addr, "--otlp-http-listen").await?),
        None => None,
    };
    let otlp_grpc = match settings.otlp_grpc_listen {
        Some(addr) => Some(bind(addr, "--otlp-grpc-listen").await?),
        None => None,
    };
    let pg = match settings.pg_listen {
        Some(addr) => {
            let state = Arc::new(
                crate::pgwire::PgState::new(
                    sql.clone(),
                    state.auth.clone(),
                    pg_tls.clone(),
                    settings.pg_max_connections,
                )
                .context("cannot prepare the PostgreSQL listener")?,
            );
            Some((bind(addr, "--pg-listen").await?, state))
        }
        None => None,
    };

    // One shutdown signal, watched by every server.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stop_rx_for_tls = stop_rx.clone();
    let stop_all = Arc::new(stop_tx);
    let on_signal = stop_all.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        on_signal.send_replace(true);
    });
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };

    let mut servers = tokio::task::JoinSet::new();
    // SIGHUP and changed files reload the certificates; without TLS a
    // SIGHUP is only logged (it must not stop the daemon).
    tokio::spawn(crate::tls::watch(
        tls.iter().chain(pg_tls.iter()).cloned().collect(),
        stop_rx_for_tls,
    ));
    let scheme = if tls.is_some() { "https" } else { "http" };
    // The OTLP listeners are announced first and the API last: the API line
    // means "everything is ready".
    if let Some(l) = otlp_grpc {
        let addr = l.local_addr()?;
        let routes = crate::grpc::routes(state.clone(), max_write_bytes);
        let stop = stopped();
        let grpc_tls = tls.clone();
        servers.spawn(async move {
            crate::grpc::serve(l, routes, grpc_tls, stop)
                .await
                .context("OTLP/gRPC server failed")
        });
        announce(
            addr,
            "otlp-grpc",
            if tls.is_some() { "https" } else { "grpc" },
            tls.as_deref(),
        );
    }
    if let Some(l) = otlp_http {
        let addr = l.local_addr()?;
        let app = http::otlp_app(state.clone());
        let stop = stopped();
        let otlp_tls = tls.clone();
        servers.spawn(async move {
            http::serve::serve(l, app, otlp_tls, stop)
                .await
                .context("OTLP/HTTP server failed")
        });
        announce(addr, "otlp-http", scheme, tls.as_deref());
    }
    if let Some((l, pg_state)) = pg {
        let addr = l.local_addr()?;
        let pg_tls_mode = if pg_state.tls.is_some() {
            "optional"
        } else {
            warn_if_plain_off_loopback(addr, "pg");
            "off"
        };
        let stop = stopped();
        servers.spawn(async move {
            crate::pgwire::serve(l, pg_state, stop)
                .await
                .context("PostgreSQL server failed")
        });
        tracing::info!(
            listener = "pg",
            tls = pg_tls_mode,
            "listening on postgres://{addr}"
        );
    }
    let addr = listener.local_addr()?;
    cluster.set_address(addr.to_string());
    let stop = stopped();
    let api_tls = tls.clone();
    servers.spawn(async move {
        http::serve::serve(listener, app, api_tls, stop)
            .await
            .context("HTTP server failed")
    });
    if tls.is_none() {
        warn_if_plain_off_loopback(addr, "api");
    }
    tracing::info!(
        listener = "api",
        data_dir = %settings.data_dir.display(),
        client_certificates = tls.as_ref().is_some_and(|t| t.asks_client_certificates()),
        "listening on {scheme}://{addr}"
    );

    let mut failure = None;
    while let Some(joined) = servers.join_next().await {
        let result = joined.context("a server task panicked").and_then(|r| r);
        if let Err(e) = result {
            // One listener failing stops the others too.
            tracing::error!(error = %format!("{e:#}"), "server stopped; shutting down");
            failure.get_or_insert(e);
            stop_all.send_replace(true);
        }
    }
    tracing::info!("in-flight requests finished; stopping background work and closing the stores");
    duties.stopping();
    let _ = stop_evaluator.send(true);
    if let Some((_, thread)) = evaluator {
        // The cycle in progress finishes first (its results reach the WAL).
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
    let _ = stop_background.send(true);
    for task in background {
        if let Err(e) = task.await {
            tracing::warn!(error = %e, "telemetry background task ended with an error");
        }
    }
    // The webhook sender finishes its in-flight attempts (each bounded by
    // the request timeout) and records them before the store closes.
    let _ = webhook_tasks.await;
    // A sweep in progress stops at its next deletion.
    let _ = artifact_gc_task.await;
    if let Some(task) = anchor_task {
        let _ = task.await;
    }
    // Leaving the cluster releases the duties only now that nothing of
    // this daemon writes for them any more.
    let _ = stop_cluster.send(true);
    let _ = cluster_task.await;
    (opened.close)().await;
    match failure {
        Some(e) => Err(e),
        None => {
            tracing::info!("stopped");
            Ok(())
        }
    }
}

/// Applies `[models.<name>]` policies from a TOML file, audited as the
/// system actor; unchanged policies are left alone, and models that do not
/// exist yet are skipped with a warning (the file is re-applied at the next
/// start).
/// Opens the artifact store and removes uploads a crash left in flight.
async fn open_artifacts(
    settings: &Settings,
) -> anyhow::Result<modelwatch_artifacts::ArtifactStore> {
    let dir = &settings.artifacts_dir;
    let store =
        modelwatch_artifacts::ArtifactStore::open_local(dir, settings.max_artifact_file_bytes)
            .with_context(|| {
                format!(
                    "cannot open the artifact store in {}: check that the directory is writable (--artifacts-url)",
                    dir.display()
                )
            })?;
    let swept = store.sweep_staging().await.with_context(|| {
        format!(
            "cannot clean the artifact store's staging folder in {}",
            dir.display()
        )
    })?;
    if swept > 0 {
        tracing::info!(
            swept,
            "removed artifact uploads left unfinished by a previous run"
        );
    }
    // Files a garbage-collection sweep had moved aside when the daemon
    // stopped go back before anything is served.
    store.recover_quarantine().await.with_context(|| {
        format!(
            "cannot put back the files in the artifact store's gc/quarantine folder in {}",
            dir.display()
        )
    })?;
    tracing::info!(dir = %dir.display(), "artifact store open");
    Ok(store)
}

async fn apply_policy_file(
    registry: &dyn RegistryStore,
    path: &std::path::Path,
) -> anyhow::Result<()> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct PolicyFile {
        #[serde(default)]
        models: std::collections::BTreeMap<String, modelwatch_registry::MonitoringPolicy>,
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the policy file {}", path.display()))?;
    let file: PolicyFile = toml::from_str(&text).with_context(|| {
        format!(
            "the policy file {} is not valid (expected [models.<name>] tables with policy fields)",
            path.display()
        )
    })?;
    let system = Actor::new("modelwatch", Role::Admin);
    for (model, policy) in file.models {
        policy
            .validate()
            .with_context(|| format!("policy of model {model:?} in {}", path.display()))?;
        match registry.get_policy(&model).await {
            Ok(existing) if existing.policy == policy => continue,
            _ => {}
        }
        match registry.set_policy(&system, &model, policy).await {
            Ok(_) => {
                tracing::info!(model = %model, file = %path.display(), "monitoring policy applied")
            }
            Err(modelwatch_registry::Error::NotFound { .. }) => tracing::warn!(
                model = %model,
                "the policy file names a model that does not exist yet; register it, then restart to apply its policy"
            ),
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("policy of model {model:?} in {}", path.display()));
            }
        }
    }
    Ok(())
}

/// Logs a listener's address; warns when it is plain text off loopback.
fn announce(addr: std::net::SocketAddr, listener: &str, scheme: &str, tls: Option<&ServerTls>) {
    if tls.is_none() {
        warn_if_plain_off_loopback(addr, listener);
    }
    tracing::info!(
        listener,
        client_certificates = tls.is_some_and(|t| t.asks_client_certificates()),
        "listening on {scheme}://{addr}"
    );
}

/// Warns when a listener without TLS is reachable from other machines:
/// tokens and telemetry would cross the network in clear.
fn warn_if_plain_off_loopback(addr: std::net::SocketAddr, listener: &str) {
    if !addr.ip().is_loopback() {
        tracing::warn!(
            listener,
            %addr,
            "this listener speaks plain text on a non-loopback address: tokens and data cross the network in clear; give --tls-cert and --tls-key (or put a TLS-terminating proxy in front of it)"
        );
    }
}

async fn bind(addr: std::net::SocketAddr, flag: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!(
            "cannot listen on {addr} ({flag}; is another modelwatch running? `off` disables the OTLP and PostgreSQL listeners)"
        )
    })
}

/// Creates the first admin token when none is active: the given one, or a
/// fresh one printed once on stdout.
async fn ensure_admin_token(
    registry: &dyn RegistryStore,
    bootstrap: Option<&str>,
) -> anyhow::Result<()> {
    if registry.active_admin_tokens().await? > 0 {
        if bootstrap.is_some() {
            tracing::info!("an admin token exists already; --bootstrap-token is ignored");
        }
        return Ok(());
    }
    let system = Actor::new("modelwatch", Role::Admin);
    let (secret, printed) = match bootstrap {
        Some(secret) => (secret.to_string(), false),
        None => (tokens::generate_secret(), true),
    };
    // A revoked bootstrap token keeps its name; pick a fresh one.
    let existing = registry.list_tokens().await?;
    let mut name = BOOTSTRAP_TOKEN_NAME.to_string();
    let mut n = 1;
    while existing.iter().any(|t| t.name == name) {
        n += 1;
        name = format!("{BOOTSTRAP_TOKEN_NAME}-{n}");
    }
    registry
        .create_token(
            &system,
            &name,
            Role::Admin,
            &tokens::hash_secret(&secret),
            None,
        )
        .await
        .context("cannot store the first admin token")?;
    if printed {
        println!("modelwatch: created admin token {name:?}; it is shown only this once:\n{secret}");
    } else {
        tracing::info!(token = %name, "installed the bootstrap admin token");
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT received; finishing in-flight requests"),
        _ = terminate => tracing::info!("SIGTERM received; finishing in-flight requests"),
    }
}
