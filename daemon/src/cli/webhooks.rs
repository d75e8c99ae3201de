//! `modelwatch webhook create|list|show|delete|deliveries|test`.

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::Value;

use modelwatch_client::{DeliveryQuery, NewWebhook};

use super::output::{Column, done, list, page, print, record};
use super::{CliError, Connection, PageArgs, client, document};

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

pub async fn run(command: WebhookCommand, conn: &Connection) -> Result<ExitCode, CliError> {
    let c = client(conn)?;
    match command {
        WebhookCommand::Create {
            name,
            receiver,
            events,
            model,
            secret,
        } => {
            let new = NewWebhook {
                name,
                url: receiver,
                events,
                model,
                secret,
            };
            let created = c.webhooks().create(&new).await?;
            print(conn.json, &document(&created), |v: &Value| {
                format!(
                    "{}\nsigning secret (shown only this once; verify X-Modelwatch-Signature with it):\n{}",
                    record(v, WEBHOOK_COLUMNS),
                    created.secret
                )
            });
        }
        WebhookCommand::List => {
            let listed = c.webhooks().list().await?;
            print(conn.json, &document(&listed), |v| list(v, WEBHOOK_COLUMNS));
        }
        WebhookCommand::Show { name } => {
            let found = c.webhooks().get(&name).await?;
            print(conn.json, &document(&found), |v| record(v, WEBHOOK_COLUMNS));
        }
        WebhookCommand::Delete { name } => {
            c.webhooks().delete(&name).await?;
            done(conn.json, format_args!("deleted webhook {name}"));
        }
        WebhookCommand::Deliveries {
            name,
            status,
            page: p,
        } => {
            let query = DeliveryQuery {
                page: p.query(),
                status,
            };
            let listed = c.webhooks().deliveries(&name, &query).await?;
            print(conn.json, &document(&listed), |v| page(v, DELIVERY_COLUMNS));
        }
        WebhookCommand::Test { name } => {
            let queued = c.webhooks().test(&name).await?;
            print(conn.json, &document(&queued), |_| {
                format!(
                    "queued ping event {} for webhook {name}; see `modelwatch webhook deliveries {name}`",
                    queued.event_id
                )
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}
