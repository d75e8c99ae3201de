//! The `modelwatch` command line: `serve`, and client subcommands that talk
//! to a running daemon over its REST API (`MODELWATCH_URL`,
//! `MODELWATCH_TOKEN`). A few administrative commands also work offline on a
//! data directory (`--data-dir`), for when no token is at hand.

mod alerts;
mod artifacts;
mod audit;
mod backup;
mod bench;
mod bench_sql;
mod dashboards;
mod error;
mod gates;
mod migrate;
mod monitoring;
mod output;
mod upload;
mod webhooks;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use serde_json::{Value, json};

use modelwatch_client::{
    Client, DataRef, Features, Lineage, MetadataUpdate, ModelQuery, ModelUpdate, NewModel,
    NewVersion, PageQuery, RecommendationQuery, SqlRequest, VersionQuery, VersionUpdate,
};
use modelwatch_registry::prelude::*;
use modelwatch_registry::{Actor, Role, SqliteStore, tokens};
use modelwatch_server::config::ServeArgs;
use modelwatch_tools::demo;

pub use error::CliError;
use output::*;

#[derive(Debug, Parser)]
#[command(
    name = "modelwatch",
    version,
    about = "Model registry with the observability loop built in"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// How client subcommands reach the daemon.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// Base URL of the daemon.
    #[arg(
        long,
        env = "MODELWATCH_URL",
        default_value = "http://127.0.0.1:9400",
        global = true
    )]
    pub url: String,
    /// API token (`Authorization: Bearer`).
    #[arg(long, env = "MODELWATCH_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// PEM CA certificate(s) to trust, besides the system's, when --url
    /// is https:// (a daemon with a private CA's certificate)
    #[arg(long, env = "MODELWATCH_CA_FILE", value_name = "FILE", global = true)]
    pub ca_file: Option<std::path::PathBuf>,
    /// Print raw JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

// Parsed once per process; `serve`'s many flags make its variant large and
// boxing it would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon.
    Serve(ServeArgs),
    /// Start a daemon on a temporary data directory with a simulated fleet
    /// (drift, a bad deployment) and print what modelwatch does about it.
    Demo(demo::DemoArgs),
    /// Copy the embedded SQLite registry of a data directory into an empty
    /// PostgreSQL database, audit chain verified on arrival (offline).
    Migrate(migrate::MigrateArgs),
    /// Back up a data directory (registry, history, artifacts) while its
    /// daemon runs, into a content-addressed, incremental backup directory
    /// (offline: reads the files).
    Backup(backup::BackupArgs),
    /// Restore a backup into a new data directory, every checksum and the
    /// audit chain verified (offline).
    Restore(backup::RestoreArgs),
    /// Grafana dashboards and provisioning files (offline, no daemon needed).
    Dashboards {
        #[command(subcommand)]
        command: dashboards::DashboardsCommand,
    },
    /// Registered models.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
        #[command(flatten)]
        conn: Connection,
    },
    /// Versions of a model.
    Versions {
        #[command(subcommand)]
        command: VersionsCommand,
        #[command(flatten)]
        conn: Connection,
    },
    /// Tags on models and versions.
    Tags {
        #[command(subcommand)]
        command: TagsCommand,
        #[command(flatten)]
        conn: Connection,
    },
    /// Aliases such as `production`: set, inspect, roll back.
    Aliases {
        #[command(subcommand)]
        command: AliasesCommand,
        #[command(flatten)]
        conn: Connection,
    },
    /// Retrain / rollback / promote recommendations.
    Recommendations {
        #[command(subcommand)]
        command: RecommendationsCommand,
        #[command(flatten)]
        conn: Connection,
    },
    /// Monitoring policies: what the evaluator watches per model.
    Policy {
        #[command(subcommand)]
        command: monitoring::PolicyCommand,
        #[command(flatten)]
        conn: Connection,
    },
    /// Run the evaluator now (every watched model, or one) and show what it did.
    Evaluate {
        /// Only this model.
        #[arg(long)]
        model: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// The hash-chained audit log.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
        #[command(flatten)]
        conn: Connection,
    },
    /// API tokens and their roles.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
        #[command(flatten)]
        conn: Connection,
    },
    /// Run a read-only SQL query over telemetry and registry tables.
    Sql {
        /// The query, e.g. "SELECT model, version, avg(value) FROM samples GROUP BY 1, 2".
        query: String,
        /// Most rows to return.
        #[arg(long)]
        limit: Option<usize>,
        /// Print CSV instead of a table.
        #[arg(long, conflicts_with = "json")]
        csv: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// Upload inferences or reference data for a version from a file
    /// (NDJSON, CSV, Parquet, Arrow IPC stream; optionally .gz).
    Upload {
        #[command(subcommand)]
        command: upload::UploadCommand,
        #[command(flatten)]
        conn: Connection,
    },
    /// A version's files: push a model directory, pull it back, list it.
    Artifacts {
        #[command(subcommand)]
        command: artifacts::ArtifactsCommand,
        #[command(flatten)]
        conn: Connection,
    },
    /// Outbound webhooks: subscriptions, deliveries, test events.
    Webhook {
        #[command(subcommand)]
        command: webhooks::WebhookCommand,
        #[command(flatten)]
        conn: Connection,
    },
    /// Prometheus alert rules and the Alertmanager receiver's record.
    Alerts {
        #[command(subcommand)]
        command: alerts::AlertsCommand,
        #[command(flatten)]
        conn: Connection,
    },
    /// Evaluate a version's promotion gate (the model's Rego policy) and
    /// print the report; exit 0 when allowed, 1 when denied (for CI).
    Gate {
        #[command(flatten)]
        target: gates::Target,
        /// The alias the version would take (the policy's `input.alias`).
        #[arg(long)]
        alias: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// A model's promotion gate policy (Rego): set, get, delete.
    GatePolicy {
        #[command(subcommand)]
        command: gates::GatePolicyCommand,
        #[command(flatten)]
        conn: Connection,
    },
    /// Move an alias to a version if the gate allows it; refuses with the
    /// gate's reasons (exit 1) otherwise.
    Promote {
        #[command(flatten)]
        target: gates::Target,
        #[arg(long)]
        alias: String,
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Load generators that measure a running daemon (see BENCHMARKS.md).
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
        #[command(flatten)]
        conn: Connection,
    },
}

#[derive(Debug, Args)]
pub struct PageArgs {
    /// Items per page (1-1000).
    #[arg(long)]
    limit: Option<u32>,
    /// Continue a listing from a previous page's cursor.
    #[arg(long)]
    cursor: Option<String>,
}

impl PageArgs {
    fn query(&self) -> PageQuery {
        PageQuery {
            limit: self.limit,
            cursor: self.cursor.clone(),
        }
    }
}

fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// List models.
    List {
        #[command(flatten)]
        page: PageArgs,
        /// Only names starting with this.
        #[arg(long)]
        name_prefix: Option<String>,
        #[arg(long)]
        owner: Option<String>,
        /// Only models with this tag value (KEY=VALUE, repeatable).
        #[arg(long = "tag", value_parser = key_value)]
        tags: Vec<(String, String)>,
    },
    /// Show one model.
    Get { name: String },
    /// Register a model.
    Create {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        #[arg(long, default_value = "")]
        owner: String,
        /// KEY=VALUE, repeatable.
        #[arg(long = "tag", value_parser = key_value)]
        tags: Vec<(String, String)>,
    },
    /// Change description or owner.
    Update {
        name: String,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        owner: Option<String>,
    },
    /// Delete a model with all its versions, aliases and recommendations.
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
pub enum VersionsCommand {
    /// List versions of a model.
    List {
        model: String,
        #[command(flatten)]
        page: PageArgs,
        /// ready or archived.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        run_id: Option<String>,
        /// KEY=VALUE, repeatable.
        #[arg(long = "tag", value_parser = key_value)]
        tags: Vec<(String, String)>,
    },
    /// Show one version with its lineage, health and open recommendations.
    Get { model: String, version: i64 },
    /// Register a new version (numbered 1, 2, … per model).
    Create {
        model: String,
        #[arg(long, default_value = "")]
        description: String,
        /// Where the artifact lives.
        #[arg(long)]
        source_uri: Option<String>,
        /// sha256:<64 hex> of the artifact.
        #[arg(long)]
        artifact_digest: Option<String>,
        #[arg(long)]
        run_id: Option<String>,
        /// Training data as URI or URI@sha256:<hex> (repeatable).
        #[arg(long = "training-data")]
        training_data: Vec<String>,
        #[arg(long)]
        code_commit: Option<String>,
        #[arg(long)]
        parent_version: Option<i64>,
        /// Hyperparameter KEY=VALUE (repeatable).
        #[arg(long = "param", value_parser = key_value)]
        params: Vec<(String, String)>,
        /// Evaluation metric KEY=NUMBER (repeatable).
        #[arg(long = "metric", value_parser = key_value)]
        metrics: Vec<(String, String)>,
        /// KEY=VALUE, repeatable.
        #[arg(long = "tag", value_parser = key_value)]
        tags: Vec<(String, String)>,
        /// Declared feature NAME=numeric|categorical (repeatable); uploads
        /// are checked against them.
        #[arg(long = "feature", value_parser = key_value)]
        features: Vec<(String, String)>,
        /// Reference data to load with the version: a Parquet file the
        /// daemon can read (path or file:// URI).
        #[arg(long)]
        reference_uri: Option<String>,
        /// Metadata (flavors, signature, input_example, environment,
        /// model_card) from a JSON or YAML file; a signature declares the
        /// features when no --feature is given.
        #[arg(long, value_name = "FILE")]
        metadata: Option<std::path::PathBuf>,
    },
    /// Change description, status (ready, archived) or metadata.
    Update {
        model: String,
        version: i64,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        status: Option<String>,
        /// Metadata sections to replace, from a JSON or YAML file
        /// (flavors, signature, input example and environment only while
        /// the version's files are not sealed).
        #[arg(long, value_name = "FILE")]
        metadata: Option<std::path::PathBuf>,
        /// The model card (intended_use, limitations, evaluation_data,
        /// ethical_considerations) from a JSON or YAML file.
        #[arg(long, value_name = "FILE", conflicts_with = "metadata")]
        model_card: Option<std::path::PathBuf>,
    },
    /// Delete a version (refused while an alias points at it).
    Delete { model: String, version: i64 },
}

#[derive(Debug, Subcommand)]
pub enum TagsCommand {
    /// Set a tag on a model, or on a version with --version.
    Set {
        model: String,
        key: String,
        value: String,
        #[arg(long)]
        version: Option<i64>,
    },
    /// Remove a tag.
    Delete {
        model: String,
        key: String,
        #[arg(long)]
        version: Option<i64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AliasesCommand {
    /// List a model's aliases.
    List { model: String },
    /// Show an alias and every move it made.
    Get { model: String, alias: String },
    /// Point an alias at a version.
    Set {
        model: String,
        alias: String,
        version: i64,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Remove an alias.
    Delete {
        model: String,
        alias: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Move an alias back to the version it served before.
    Rollback {
        model: String,
        alias: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RecommendationsCommand {
    /// List recommendations.
    List {
        #[command(flatten)]
        page: PageArgs,
        #[arg(long)]
        model: Option<String>,
        #[arg(long)]
        version: Option<i64>,
        /// retrain, rollback or promote.
        #[arg(long)]
        kind: Option<String>,
        /// open, applied, dismissed or superseded.
        #[arg(long)]
        status: Option<String>,
    },
    /// Show one recommendation with its evidence.
    Get { id: i64 },
    /// Mark as seen; it stays open.
    Acknowledge {
        id: i64,
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Close without acting.
    Dismiss {
        id: i64,
        #[arg(long, default_value = "")]
        note: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; its secret is printed once.
    Create {
        #[arg(long)]
        name: String,
        /// reader, ingest, editor, approver or admin.
        #[arg(long)]
        role: Role,
        /// The token stops working after this long: a number with s, m,
        /// h or d (`90d`, `12h`); without it, it works until revoked.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        expires_in: Option<std::time::Duration>,
        /// Write directly into this data directory instead of asking the
        /// daemon (recovery when no admin token is at hand).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token by name.
    Revoke { name: String },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The OpenTelemetry exporters build their HTTPS clients from the
    // process's rustls provider.
    modelwatch_client::tls::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve(args) => {
            let settings = match args.resolve() {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let logging = match crate::logging::init(
                settings.log_format,
                &settings.log,
                settings.otlp_traces_endpoint.as_deref(),
            ) {
                Ok(guard) => guard,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    return ExitCode::from(2);
                }
            };
            let code = match modelwatch_server::startup::serve(settings).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            };
            // After every listener drained: the last request spans are queued.
            logging.shutdown().await;
            code
        }
        Command::Demo(args) => run_demo(args).await,
        Command::Dashboards { command } => dashboards::run(command),
        Command::Migrate(args) => exit_code(migrate::run(args).await),
        Command::Backup(args) => exit_code(backup::run_backup(args).await),
        Command::Restore(args) => exit_code(backup::run_restore(args).await),
        command => exit_code(client_command(command).await),
    }
}

/// The exit code of a command's outcome; an error is printed first.
fn exit_code(outcome: Result<ExitCode, CliError>) -> ExitCode {
    outcome.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        ExitCode::from(e.exit_code())
    })
}

/// `modelwatch demo`: its daemon logs to a file, the demo's own log (the
/// fleet's exporter, the child's shutdown) is quiet on stderr.
async fn run_demo(args: demo::DemoArgs) -> ExitCode {
    let _logging = crate::logging::init(modelwatch_server::config::LogFormat::Human, "warn", None);
    match demo::run(args, tokens::generate_secret()).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Errors of commands that work on a data directory directly.
fn offline_error(e: impl std::fmt::Display) -> CliError {
    CliError::Local(e.to_string())
}

async fn open_offline(dir: &std::path::Path) -> Result<SqliteStore, CliError> {
    let path = dir.join("registry.sqlite");
    if !path.exists() {
        return Err(offline_error(format!(
            "{} does not exist; pass the daemon's --data-dir",
            path.display()
        )));
    }
    SqliteStore::open(&path).await.map_err(offline_error)
}

async fn client_command(command: Command) -> Result<ExitCode, CliError> {
    match command {
        Command::Serve(_)
        | Command::Demo(_)
        | Command::Dashboards { .. }
        | Command::Migrate(_)
        | Command::Backup(_)
        | Command::Restore(_) => {
            unreachable!("handled by run")
        }
        Command::Models { command, conn } => models(command, &conn).await,
        Command::Versions { command, conn } => versions(command, &conn).await,
        Command::Tags { command, conn } => tags(command, &conn).await,
        Command::Aliases { command, conn } => aliases(command, &conn).await,
        Command::Recommendations { command, conn } => recommendations(command, &conn).await,
        Command::Policy { command, conn } => monitoring::policy(command, &conn).await,
        Command::Evaluate { model, conn } => monitoring::evaluate(model, &conn).await,
        Command::Audit { command, conn } => audit::audit(command, &conn).await,
        Command::Token { command, conn } => token(command, &conn).await,
        Command::Sql {
            query,
            limit,
            csv,
            conn,
        } => sql(&query, limit, csv, &conn).await,
        Command::Upload { command, conn } => upload::run(command, &conn).await,
        Command::Artifacts { command, conn } => artifacts::run(command, &conn).await,
        Command::Bench { command, conn } => bench::run(command, &conn).await,
        Command::Webhook { command, conn } => webhooks::run(command, &conn).await,
        Command::Alerts { command, conn } => alerts::run(command, &conn).await,
        Command::Gate {
            target,
            alias,
            conn,
        } => gates::gate(target, alias, &conn).await,
        Command::GatePolicy { command, conn } => gates::gate_policy(command, &conn).await,
        Command::Promote {
            target,
            alias,
            reason,
            conn,
        } => gates::promote(target, alias, reason, &conn).await,
    }
}

fn client(conn: &Connection) -> Result<Client, CliError> {
    match &conn.ca_file {
        None => Ok(Client::new(&conn.url, conn.token.clone())),
        Some(ca) => Client::with_ca_file(&conn.url, conn.token.clone(), ca)
            .map_err(|e| CliError::Usage(e.to_string())),
    }
}

/// A reply as the JSON document the tables read and `--json` prints: the
/// typed value serialized again has the fields the daemon sent.
fn document(reply: &impl Serialize) -> Value {
    serde_json::to_value(reply).unwrap_or(Value::Null)
}

/// Parses a flag's text into the API's value, refusing it the way the
/// daemon would (exit 1) rather than as a usage error.
fn api_value<T>(text: &str) -> Result<T, CliError>
where
    T: std::str::FromStr<Err = modelwatch_types::InvalidValue>,
{
    text.parse()
        .map_err(|e: modelwatch_types::InvalidValue| CliError::InvalidArgument(e.message))
}

/// A request document from a JSON or YAML file (YAML reads JSON too),
/// refused with the file's name and the parser's position when it is not
/// the expected shape.
fn read_document<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<T, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display())))?;
    serde_yaml_ng::from_str(&text)
        .map_err(|e| CliError::InvalidArgument(format!("{}: {e}", path.display())))
}

fn optional_api_value<T>(text: Option<String>) -> Result<Option<T>, CliError>
where
    T: std::str::FromStr<Err = modelwatch_types::InvalidValue>,
{
    text.as_deref().map(api_value).transpose()
}

async fn models(command: ModelsCommand, conn: &Connection) -> Result<ExitCode, CliError> {
    let c = client(conn)?;
    match command {
        ModelsCommand::List {
            page,
            name_prefix,
            owner,
            tags,
        } => {
            let query = ModelQuery {
                page: page.query(),
                name_prefix,
                owner,
                tags,
            };
            let listed = c.models().list(&query).await?;
            print(conn.json, &document(&listed), |v| {
                output::page(v, MODEL_COLUMNS)
            });
        }
        ModelsCommand::Get { name } => {
            let model = c.models().get(&name).await?;
            print(conn.json, &document(&model), |v| record(v, MODEL_COLUMNS));
        }
        ModelsCommand::Create {
            name,
            description,
            owner,
            tags,
        } => {
            let new = NewModel {
                name,
                description,
                owner,
                tags: tags.into_iter().collect(),
            };
            let model = c.models().create(&new).await?;
            print(conn.json, &document(&model), |v| record(v, MODEL_COLUMNS));
        }
        ModelsCommand::Update {
            name,
            description,
            owner,
        } => {
            let update = ModelUpdate { description, owner };
            let model = c.models().update(&name, &update).await?;
            print(conn.json, &document(&model), |v| record(v, MODEL_COLUMNS));
        }
        ModelsCommand::Delete { name } => {
            c.models().delete(&name).await?;
            done(conn.json, format_args!("deleted model {name}"));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `URI` or `URI@sha256:<hex>`.
fn training_data(spec: &str) -> DataRef {
    match spec.rsplit_once('@') {
        Some((uri, digest)) if digest.starts_with("sha256:") => DataRef {
            uri: uri.to_string(),
            digest: Some(digest.to_string()),
        },
        _ => DataRef {
            uri: spec.to_string(),
            digest: None,
        },
    }
}

async fn versions(command: VersionsCommand, conn: &Connection) -> Result<ExitCode, CliError> {
    let c = client(conn)?;
    match command {
        VersionsCommand::List {
            model,
            page,
            status,
            run_id,
            tags,
        } => {
            let query = VersionQuery {
                page: page.query(),
                status: optional_api_value(status)?,
                run_id,
                tags,
            };
            let listed = c.versions(&model).list(&query).await?;
            print(conn.json, &document(&listed), |v| {
                output::page(v, VERSION_COLUMNS)
            });
        }
        VersionsCommand::Get { model, version } => {
            let found = c.versions(&model).get(version).await?;
            print(conn.json, &document(&found), |v| record(v, VERSION_DETAIL));
        }
        VersionsCommand::Create {
            model,
            description,
            source_uri,
            artifact_digest,
            run_id,
            training_data: data,
            code_commit,
            parent_version,
            params,
            metrics,
            tags,
            features,
            reference_uri,
            metadata,
        } => {
            let mut metric_values = BTreeMap::new();
            for (k, v) in metrics {
                let n: f64 = v.parse().map_err(|_| {
                    CliError::InvalidArgument(format!(
                        "--metric {k}={v}: the value must be a number"
                    ))
                })?;
                metric_values.insert(k, n);
            }
            let mut declared = Features::new();
            for (name, kind) in features {
                declared.insert(name, api_value(&kind)?);
            }
            let new = NewVersion {
                description,
                source_uri,
                artifact_digest,
                run_id,
                lineage: Lineage {
                    training_data: data.iter().map(|d| training_data(d)).collect(),
                    code_commit,
                    parent_version,
                    parameters: params.into_iter().collect(),
                    metrics: metric_values,
                },
                tags: tags.into_iter().collect(),
                features: declared,
                reference_uri,
                metadata: metadata
                    .map(|f| read_document(&f))
                    .transpose()?
                    .unwrap_or_default(),
            };
            let created = c.versions(&model).create(&new).await?;
            print(conn.json, &document(&created), |v| {
                record(v, VERSION_DETAIL)
            });
        }
        VersionsCommand::Update {
            model,
            version,
            description,
            status,
            metadata,
            model_card,
        } => {
            let metadata = match (metadata, model_card) {
                (Some(file), _) => Some(read_document(&file)?),
                (None, Some(file)) => Some(MetadataUpdate {
                    model_card: Some(read_document(&file)?),
                    ..Default::default()
                }),
                (None, None) => None,
            };
            let update = VersionUpdate {
                description,
                status: optional_api_value(status)?,
                features: None,
                metadata,
            };
            let updated = c.versions(&model).update(version, &update).await?;
            print(conn.json, &document(&updated), |v| {
                record(v, VERSION_DETAIL)
            });
        }
        VersionsCommand::Delete { model, version } => {
            c.versions(&model).delete(version).await?;
            done(
                conn.json,
                format_args!("deleted version {version} of {model}"),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn tags(command: TagsCommand, conn: &Connection) -> Result<ExitCode, CliError> {
    let c = client(conn)?;
    let tags = match command {
        TagsCommand::Set {
            model,
            key,
            value,
            version: Some(v),
        } => c.versions(&model).set_tag(v, &key, &value).await?,
        TagsCommand::Set {
            model,
            key,
            value,
            version: None,
        } => c.models().set_tag(&model, &key, &value).await?,
        TagsCommand::Delete {
            model,
            key,
            version: Some(v),
        } => c.versions(&model).delete_tag(v, &key).await?,
        TagsCommand::Delete {
            model,
            key,
            version: None,
        } => c.models().delete_tag(&model, &key).await?,
    };
    print(conn.json, &document(&tags), |_| {
        let rows: Vec<Value> = tags
            .iter()
            .map(|(k, v)| json!({ "key": k, "value": v }))
            .collect();
        output::rows(&rows, &[("key", "/key"), ("value", "/value")])
    });
    Ok(ExitCode::SUCCESS)
}

fn alias_detail(v: &Value) -> String {
    let history = v["history"].as_array().cloned().unwrap_or_default();
    format!(
        "{}\n{}",
        record(v, ALIAS_COLUMNS),
        rows(&history, MOVE_COLUMNS)
    )
}

async fn aliases(command: AliasesCommand, conn: &Connection) -> Result<ExitCode, CliError> {
    let c = client(conn)?;
    match command {
        AliasesCommand::List { model } => {
            let listed = c.aliases(&model).list().await?;
            print(conn.json, &document(&listed), |v| list(v, ALIAS_COLUMNS));
        }
        AliasesCommand::Get { model, alias } => {
            let found = c.aliases(&model).get(&alias).await?;
            print(conn.json, &document(&found), alias_detail);
        }
        AliasesCommand::Set {
            model,
            alias,
            version,
            reason,
        } => {
            let moved = c.aliases(&model).set(&alias, version, &reason).await?;
            print(conn.json, &document(&moved), alias_detail);
        }
        AliasesCommand::Delete {
            model,
            alias,
            reason,
        } => {
            c.aliases(&model).delete(&alias, &reason).await?;
            done(conn.json, format_args!("deleted alias {alias} of {model}"));
        }
        AliasesCommand::Rollback {
            model,
            alias,
            reason,
        } => {
            let moved = c.aliases(&model).rollback(&alias, &reason).await?;
            print(conn.json, &document(&moved), |v| {
                format!(
                    "{alias} of {model} rolled back to version {}\n{}",
                    moved.version,
                    alias_detail(v)
                )
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn recommendations(
    command: RecommendationsCommand,
    conn: &Connection,
) -> Result<ExitCode, CliError> {
    let c = client(conn)?;
    let detail = |v: &Value| {
        let mut cols = RECOMMENDATION_COLUMNS.to_vec();
        cols.extend_from_slice(&[
            ("evidence", "/evidence"),
            ("resolved by", "/resolved_by"),
            ("note", "/resolution_note"),
        ]);
        record(v, &cols)
    };
    match command {
        RecommendationsCommand::List {
            page,
            model,
            version,
            kind,
            status,
        } => {
            let query = RecommendationQuery {
                page: page.query(),
                model,
                version,
                kind: optional_api_value(kind)?,
                status: optional_api_value(status)?,
            };
            let listed = c.recommendations().list(&query).await?;
            print(conn.json, &document(&listed), |v| {
                output::page(v, RECOMMENDATION_COLUMNS)
            });
        }
        RecommendationsCommand::Get { id } => {
            let found = c.recommendations().get(id).await?;
            print(conn.json, &document(&found), detail);
        }
        RecommendationsCommand::Acknowledge { id, note } => {
            let acknowledged = c.recommendations().acknowledge(id, &note).await?;
            print(conn.json, &document(&acknowledged), detail);
        }
        RecommendationsCommand::Dismiss { id, note } => {
            let dismissed = c.recommendations().dismiss(id, &note).await?;
            print(conn.json, &document(&dismissed), detail);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `--expires-in` as the time it ends.
fn expiry(
    expires_in: Option<std::time::Duration>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, CliError> {
    expires_in
        .map(|d| {
            chrono::Duration::from_std(d)
                .ok()
                .and_then(|d| chrono::Utc::now().checked_add_signed(d))
                .ok_or_else(|| CliError::InvalidArgument(format!("--expires-in {d:?} is too long")))
        })
        .transpose()
}

/// `90d`, `12h`, `30m`, `45s` (or bare seconds).
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number.parse().map_err(|_| {
        format!("{text:?} is not a duration: use a number with s, m, h or d, e.g. 90d")
    })?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?}: use s, m, h or d"
            ));
        }
    };
    if n == 0 {
        return Err("a token cannot expire at once: give a duration above 0".into());
    }
    n.checked_mul(seconds)
        .map(std::time::Duration::from_secs)
        .ok_or_else(|| format!("{text:?} is too long"))
}

async fn token(command: TokenCommand, conn: &Connection) -> Result<ExitCode, CliError> {
    let c = client(conn)?;
    match command {
        TokenCommand::Create {
            name,
            role,
            expires_in,
            data_dir: Some(dir),
        } => {
            let store = open_offline(&dir).await?;
            let secret = tokens::generate_secret();
            let actor = Actor::new("local-admin", Role::Admin);
            let info = store
                .create_token(
                    &actor,
                    &name,
                    role,
                    &tokens::hash_secret(&secret),
                    expiry(expires_in)?,
                )
                .await
                .map_err(offline_error)?;
            store.close().await;
            let mut v = serde_json::to_value(info).map_err(offline_error)?;
            v["token"] = json!(secret);
            print_created_token(conn.json, &v);
        }
        TokenCommand::Create {
            name,
            role,
            expires_in,
            data_dir: None,
        } => {
            let created = c.tokens().create(&name, role, expiry(expires_in)?).await?;
            print_created_token(conn.json, &document(&created));
        }
        TokenCommand::List => {
            let listed = c.tokens().list().await?;
            print(conn.json, &document(&listed), |v| list(v, TOKEN_COLUMNS));
        }
        TokenCommand::Revoke { name } => {
            let revoked = c.tokens().revoke(&name).await?;
            print(conn.json, &document(&revoked), |_| {
                format!("revoked token {}", revoked.name)
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_created_token(json: bool, v: &Value) {
    print(json, v, |v| {
        format!(
            "created token {} with role {}; the secret is shown only this once:\n{}",
            v["name"].as_str().unwrap_or(""),
            v["role"].as_str().unwrap_or(""),
            v["token"].as_str().unwrap_or("")
        )
    });
}

async fn sql(
    query: &str,
    limit: Option<usize>,
    csv: bool,
    conn: &Connection,
) -> Result<ExitCode, CliError> {
    let c = client(conn)?;
    let request = SqlRequest {
        sql: query.to_string(),
        limit,
        timeout_seconds: None,
    };
    if csv {
        let text = c.sql_text(&request, "text/csv").await?;
        print!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    let result = c.sql(&request).await?;
    print(conn.json, &document(&result), |_| {
        let names: Vec<String> = result.columns.iter().map(|c| c.name.clone()).collect();
        let mut out = output::dynamic_rows(&names, &result.rows);
        let count = result.row_count;
        out.push_str(&format!(
            "\n{count} row{}",
            if count == 1 { "" } else { "s" }
        ));
        if result.truncated {
            out.push_str(" (truncated: raise --limit)");
        }
        out
    });
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_demo_knows_the_bootstrap_token_name() {
        // The demo tells its own setup from the daemon's actors by this name.
        assert_eq!(
            modelwatch_tools::demo::ADMIN,
            modelwatch_server::startup::BOOTSTRAP_TOKEN_NAME
        );
    }
}
