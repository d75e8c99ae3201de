//! `modelwatch gate` (a gate decision, for CI pipelines: exit 0 allowed,
//! 1 denied), `modelwatch gate-policy set|get|delete` (a model's Rego
//! policy) and `modelwatch promote` (an alias move that the gate must
//! allow). Client side only: the daemon compiles, stores and evaluates.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::Value;

use modelwatch_client::PromoteRequest;

use super::{CliError, Connection, client, document};

/// Which version a gate or promotion is about.
#[derive(Debug, Args)]
pub struct Target {
    #[arg(long)]
    pub model: String,
    #[arg(long)]
    pub version: i64,
}

#[derive(Debug, Subcommand)]
pub enum GatePolicyCommand {
    /// Upload a model's policy from a Rego file (`-` reads stdin); refused,
    /// with the compiler's line and column, if it does not compile.
    Set {
        #[arg(long)]
        model: String,
        /// The `.rego` file.
        file: PathBuf,
    },
    /// Print a model's policy (the Rego text; `--json` for the record with
    /// its sha256).
    Get {
        #[arg(long)]
        model: String,
    },
    /// Remove a model's policy: promotions are no longer checked.
    Delete {
        #[arg(long)]
        model: String,
    },
}

fn read_policy(file: &PathBuf) -> Result<String, CliError> {
    let mut text = String::new();
    let read = if file.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(file).map(|t| text = t)
    };
    read.map_err(|e| CliError::Usage(format!("cannot read {}: {e}", file.display())))?;
    Ok(text)
}

pub async fn gate_policy(
    command: GatePolicyCommand,
    conn: &Connection,
) -> Result<ExitCode, CliError> {
    let c = client(conn)?;
    match command {
        GatePolicyCommand::Set { model, file } => {
            let rego = read_policy(&file)?;
            let stored = c.gate_policies().set(&model, &rego).await?;
            if conn.json {
                super::output::print(true, &document(&stored), |_| String::new());
            } else {
                println!(
                    "gate policy of model {model:?} set (sha256 {})",
                    stored.sha256
                );
            }
        }
        GatePolicyCommand::Get { model } => {
            let stored = c.gate_policies().get(&model).await?;
            super::output::print(conn.json, &document(&stored), |_| {
                stored.rego.trim_end().to_string()
            });
        }
        GatePolicyCommand::Delete { model } => {
            c.gate_policies().delete(&model).await?;
            super::output::done(
                conn.json,
                format_args!(
                    "model {model:?} has no gate policy any more: promotions are not checked"
                ),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A gate report for people: the verdict, then the reasons and warnings.
pub fn report_text(report: &Value) -> String {
    let allowed = report["allowed"].as_bool().unwrap_or(false);
    let mut out = format!(
        "{} model {} version {}{}",
        if allowed { "ALLOWED" } else { "DENIED" },
        report["model"].as_str().unwrap_or_default(),
        report["version"],
        match report["alias"].as_str() {
            Some(a) => format!(" for alias {a}"),
            None => String::new(),
        },
    );
    out.push_str(&match report["policy_sha256"].as_str() {
        Some(sha) => format!("\npolicy sha256 {sha}"),
        None => "\nno gate policy".to_string(),
    });
    for (title, key) in [("reasons", "reasons"), ("warnings", "warnings")] {
        let items = report[key].as_array().cloned().unwrap_or_default();
        if !items.is_empty() {
            out.push_str(&format!("\n{title}:"));
            for item in items {
                out.push_str(&format!("\n  - {}", item.as_str().unwrap_or_default()));
            }
        }
    }
    out
}

/// `modelwatch gate`: exit 0 when allowed, 1 when denied.
pub async fn gate(
    target: Target,
    alias: Option<String>,
    conn: &Connection,
) -> Result<ExitCode, CliError> {
    let report = client(conn)?
        .versions(&target.model)
        .gate(target.version, alias.as_deref())
        .await?;
    super::output::print(conn.json, &document(&report), report_text);
    Ok(if report.allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `modelwatch promote`: the daemon evaluates the gate and moves the alias
/// only when it allows; a denial is an API refusal (exit 1) whose message
/// lists the reasons.
pub async fn promote(
    target: Target,
    alias: String,
    reason: String,
    conn: &Connection,
) -> Result<ExitCode, CliError> {
    let request = PromoteRequest {
        alias: alias.clone(),
        reason,
    };
    let promotion = client(conn)?
        .versions(&target.model)
        .promote(target.version, &request)
        .await?;
    super::output::print(conn.json, &document(&promotion), |v| {
        format!(
            "alias {alias} of model {} now points at version {}\n{}",
            target.model,
            promotion.alias.version,
            report_text(&v["gate"])
        )
    });
    Ok(ExitCode::SUCCESS)
}
