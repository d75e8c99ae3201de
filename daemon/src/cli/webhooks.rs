//! `modelwatch webhook create|list|show|delete|deliveries|test`.

use std::process::ExitCode;

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Client, ClientError, enc};
use super::output::{Column, page, print, record, rows};
use super::{Connection, PageArgs, query_string};

#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Subscribe a URL to events; prints the signing secret once.
    Create {
        name: String,
        /// Where events are POSTed (http://). Positional, because `--url`
        /// is the daemon's address.
        #[arg(value_name = "RECEIVER_URL")]
        receiver: String,
        /// Event type (repeatable or comma-separated): version.created,
        /// alias.moved, recommendation.raised, recommendation.applied,
        /// recommendation.dismissed, recommendation.superseded,
        /// drift.detected, or '*' for all.
        #[arg(long = "event", required = true, value_delimiter = ',')]
        events: Vec<String>,
        /// Only events about this model.
        #[arg(long)]
        model: Option<String>,
        /// Signing secret (generated when absent).
        #[arg(long, env = "MODELWATCH_WEBHOOK_SECRET", hide_env_values = true)]
        secret: Option<String>,
    },
    /// List subscriptions (secrets are never shown).
    List,
    /// Show one subscription.
    Show { name: String },
    /// Delete a subscription and its deliveries.
    Delete { name: String },
    /// A subscription's deliveries and their outcomes.
    Deliveries {
        name: String,
        /// pending, delivered or failed.
        #[arg(long)]
        status: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Queue a `ping` event for one subscription.
    Test { name: String },
}

const WEBHOOK_COLUMNS: &[Column] = &[
    ("name", "/name"),
    ("url", "/url"),
    ("events", "/events"),
    ("model", "/model"),
    ("active", "/active"),
    ("created by", "/created_by"),
    ("created", "/created_at"),
];

const DELIVERY_COLUMNS: &[Column] = &[
    ("id", "/id"),
    ("event", "/event_type"),
    ("event id", "/event_id"),
    ("status", "/status"),
    ("attempts", "/attempts"),
    ("last code", "/last_status_code"),
    ("last error", "/last_error"),
    ("next attempt", "/next_attempt_at"),
    ("delivered", "/delivered_at"),
];

fn path(name: &str) -> String {
    format!("/api/v1/webhooks/{}", enc(name))
}

pub async fn run(command: WebhookCommand, conn: &Connection) -> Result<ExitCode, ClientError> {
    let c = Client::new(&conn.url, conn.token.clone());
    match command {
        WebhookCommand::Create {
            name,
            receiver,
            events,
            model,
            secret,
        } => {
            let body = json!({
                "name": name, "url": receiver, "events": events, "model": model, "secret": secret,
            });
            let v = c
                .call(Method::POST, "/api/v1/webhooks", Some(&body))
                .await?;
            print(conn.json, &v, |v: &Value| {
                format!(
                    "{}\nsigning secret (shown only this once; verify X-Modelwatch-Signature with it):\n{}",
                    record(v, WEBHOOK_COLUMNS),
                    v["secret"].as_str().unwrap_or("")
                )
            });
        }
        WebhookCommand::List => {
            let v = c.get("/api/v1/webhooks").await?;
            print(conn.json, &v, |v| {
                rows(
                    v.as_array().map(Vec::as_slice).unwrap_or_default(),
                    WEBHOOK_COLUMNS,
                )
            });
        }
        WebhookCommand::Show { name } => {
            let v = c.get(&path(&name)).await?;
            print(conn.json, &v, |v| record(v, WEBHOOK_COLUMNS));
        }
        WebhookCommand::Delete { name } => {
            c.call(Method::DELETE, &path(&name), None).await?;
            if !conn.json {
                println!("deleted webhook {name}");
            }
        }
        WebhookCommand::Deliveries {
            name,
            status,
            page: p,
        } => {
            let mut q = Vec::new();
            p.query(&mut q);
            q.extend(status.map(|s| ("status".to_string(), s)));
            let v = c
                .get(&format!("{}/deliveries{}", path(&name), query_string(&q)))
                .await?;
            print(conn.json, &v, |v| page(v, DELIVERY_COLUMNS));
        }
        WebhookCommand::Test { name } => {
            let v = c
                .call(Method::POST, &format!("{}/test", path(&name)), None)
                .await?;
            print(conn.json, &v, |v| {
                format!(
                    "queued ping event {} for webhook {name}; see `modelwatch webhook deliveries {name}`",
                    v["event_id"].as_str().unwrap_or("")
                )
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}
