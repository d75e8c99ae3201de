//! `modelwatch policy …` (a model's monitoring policy) and `modelwatch
//! evaluate` (run the evaluator now). Client side only: the daemon
//! validates, stores and evaluates.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use serde_json::{Value, json};

use modelwatch_client::MonitoringPolicy;

use super::output::{Column, done, print, record, rows};
use super::{CliError, Connection, client, document};

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Every model's policy.
    List,
    /// One model's policy.
    Get { model: String },
    /// Create or replace a model's policy from a file and/or flags (flags
    /// override the file; unset fields take their defaults).
    Set {
        model: String,
        /// Policy as JSON (`.json`) or TOML (any other extension).
        #[arg(long)]
        file: Option<PathBuf>,
        /// Alias to watch (default production).
        #[arg(long)]
        alias: Option<String>,
        /// Evaluation interval, e.g. 1m.
        #[arg(long)]
        interval: Option<String>,
        /// Current window length, e.g. 1h.
        #[arg(long)]
        current_window: Option<String>,
        /// Consecutive drifted evaluations before a retrain recommendation.
        #[arg(long)]
        persistence: Option<u32>,
        /// Judge deployments on span latency and errors, and roll back
        /// automatically on a failing verdict (needs role approver).
        #[arg(long)]
        auto_rollback: bool,
        /// Let Alertmanager notifications with modelwatch_action="rollback"
        /// roll the alias back (needs role approver).
        #[arg(long)]
        rollback_on_alert: bool,
    },
    /// Stop watching a model.
    Delete { model: String },
}

const POLICY_COLUMNS: &[Column] = &[
    ("model", "/model"),
    ("alias", "/policy/alias"),
    ("interval", "/policy/interval"),
    ("window", "/policy/current_window"),
    ("reference", "/policy/reference"),
    ("persistence", "/policy/persistence"),
    ("rollback", "/policy/rollback"),
    ("updated by", "/updated_by"),
    ("updated at", "/updated_at"),
];

fn read_policy_file(path: &PathBuf) -> Result<Value, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display())))?;
    let is_json = path.extension().is_some_and(|e| e == "json");
    let parsed: Result<Value, String> = if is_json {
        serde_json::from_str(&text).map_err(|e| e.to_string())
    } else {
        toml::from_str::<toml::Value>(&text)
            .map_err(|e| e.to_string())
            .and_then(|v| serde_json::to_value(v).map_err(|e| e.to_string()))
    };
    parsed.map_err(|e| CliError::Usage(format!("{} is not a valid policy: {e}", path.display())))
}

pub async fn policy(command: PolicyCommand, conn: &Connection) -> Result<ExitCode, CliError> {
    let c = client(conn)?;
    match command {
        PolicyCommand::List => {
            let listed = c.policies().list().await?;
            print(conn.json, &document(&listed), |v| {
                rows(
                    v.as_array().map(Vec::as_slice).unwrap_or(&[]),
                    POLICY_COLUMNS,
                )
            });
        }
        PolicyCommand::Get { model } => {
            let found = c.policies().get(&model).await?;
            print(conn.json, &document(&found), |v| {
                serde_json::to_string_pretty(v).unwrap_or_default()
            });
        }
        PolicyCommand::Set {
            model,
            file,
            alias,
            interval,
            current_window,
            persistence,
            auto_rollback,
            rollback_on_alert,
        } => {
            let mut body = match &file {
                Some(path) => read_policy_file(path)?,
                None => json!({}),
            };
            let Some(obj) = body.as_object_mut() else {
                return Err(CliError::Usage("a policy must be an object".into()));
            };
            obj.extend(alias.map(|v| ("alias".to_string(), json!(v))));
            obj.extend(interval.map(|v| ("interval".to_string(), json!(v))));
            obj.extend(current_window.map(|v| ("current_window".to_string(), json!(v))));
            obj.extend(persistence.map(|v| ("persistence".to_string(), json!(v))));
            if auto_rollback {
                let rollback = obj.entry("rollback").or_insert_with(
                    || json!({"latency": {"source": "spans"}, "errors": {"source": "spans"}}),
                );
                rollback["automatic"] = json!(true);
            }
            if rollback_on_alert {
                obj.insert("rollback_on_alert".into(), json!(true));
            }
            // Fields the file and flags leave out take the policy's
            // defaults, as the daemon would give them.
            let policy: MonitoringPolicy = serde_json::from_value(body)
                .map_err(|e| CliError::InvalidArgument(format!("invalid policy: {e}")))?;
            let stored = c.policies().set(&model, &policy).await?;
            print(conn.json, &document(&stored), |v| record(v, POLICY_COLUMNS));
        }
        PolicyCommand::Delete { model } => {
            c.policies().delete(&model).await?;
            done(
                conn.json,
                format_args!("model {model:?} is no longer watched"),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

const OUTCOME_COLUMNS: &[Column] = &[
    ("model", "/model"),
    ("alias", "/alias"),
    ("version", "/version"),
    ("status", "/status"),
    ("drifted share", "/drifted_share"),
    ("drifted features", "/drifted_features"),
    ("consecutive", "/consecutive_drifted"),
    ("multivariate drifted", "/multivariate/drift/drifted"),
    ("rollback", "/rollback_verdict"),
    ("recommendations", "/recommendations"),
    ("labelled rows", "/performance/labelled_rows"),
    ("delayed labels", "/performance/delayed_labels"),
    ("estimated by", "/performance/estimate/method"),
    ("message", "/message"),
];

/// `modelwatch evaluate [--model M]`.
pub async fn evaluate(model: Option<String>, conn: &Connection) -> Result<ExitCode, CliError> {
    let report = client(conn)?.evaluate(model.as_deref()).await?;
    print(conn.json, &document(&report), |v| {
        format!(
            "{}\nevaluated in {:.0} ms",
            rows(
                v["versions"].as_array().map(Vec::as_slice).unwrap_or(&[]),
                OUTCOME_COLUMNS
            ),
            v["duration_ms"].as_f64().unwrap_or_default()
        )
    });
    Ok(ExitCode::SUCCESS)
}
