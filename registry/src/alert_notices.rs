//! Alertmanager notifications received, and what was done about each.
//!
//! The daemon decides what an alert asks for (the `modelwatch-alerts`
//! crate) and hands it here as an [`AlertAction`]; [`record_alert`] then, in
//! one transaction: recognises an alert state already handled (Alertmanager
//! repeats notifications) and does nothing more; re-checks what the
//! decision could not see atomically (the alias still points at the alert's
//! version, the version exists); acts (rolls the alias back and applies the
//! version's open rollback recommendations, or raises a recommendation);
//! and records the outcome with an audit entry `alert.<outcome>`, target
//! `alert/<fingerprint>`. A refusal is an outcome, not an error: it is
//! recorded and audited like the others.
//!
//! [`record_alert`]: crate::RegistryStore::record_alert

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};
use utoipa::ToSchema;

use crate::audit::format_time;
use crate::error::{Error, Result};
use crate::sqlite::{
    SqliteStore, append_audit, decode_cursor, load_alias, paginate, parse_json, parse_time,
    raise_recommendation_in, rollback_alias_in, to_value, transition_recommendation_in,
};
use crate::types::{Actor, NewRecommendation, Page, PageRequest, RecommendationKind, Transition};
use crate::validate;

/// One alert state as received (an alert's firing and its resolution are
/// two states; a repeat of either is recognised by
/// `(fingerprint, starts_at, status)`).
#[derive(Debug, Clone, PartialEq)]
pub struct AlertNotice {
    pub fingerprint: String,
    pub starts_at: DateTime<Utc>,
    /// `firing` or `resolved`.
    pub status: String,
    pub alert_name: String,
    pub model: Option<String>,
    pub version: Option<i64>,
    /// The alert as received (labels, annotations, generator URL, ends_at).
    pub alert: Value,
}

/// What the alert asks for, as decided from its labels and the policy.
#[derive(Debug, Clone, PartialEq)]
pub enum AlertAction {
    /// Roll `alias` back, provided it still points at `version`.
    Rollback {
        model: String,
        alias: String,
        version: i64,
        reason: String,
    },
    /// Raise (or refresh) a recommendation on the version.
    Recommend {
        model: String,
        version: i64,
        recommendation: NewRecommendation,
    },
    /// Nothing to do: record the outcome (`refused`, `ignored` or
    /// `resolved`) and why.
    Record {
        outcome: AlertOutcome,
        detail: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertOutcome {
    RolledBack,
    Recommended,
    Refused,
    Ignored,
    Resolved,
}

impl AlertOutcome {
    pub const ALL: [AlertOutcome; 5] = [
        AlertOutcome::RolledBack,
        AlertOutcome::Recommended,
        AlertOutcome::Refused,
        AlertOutcome::Ignored,
        AlertOutcome::Resolved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertOutcome::RolledBack => "rolled_back",
            AlertOutcome::Recommended => "recommended",
            AlertOutcome::Refused => "refused",
            AlertOutcome::Ignored => "ignored",
            AlertOutcome::Resolved => "resolved",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| Error::Corrupt(format!("unknown alert outcome {s:?}")))
    }
}

/// A handled alert state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AlertRecord {
    pub id: i64,
    pub fingerprint: String,
    pub starts_at: DateTime<Utc>,
    pub status: String,
    pub alert_name: String,
    pub model: Option<String>,
    pub version: Option<i64>,
    pub outcome: AlertOutcome,
    /// What was done, or why nothing was.
    pub detail: String,
    #[schema(value_type = Object)]
    pub alert: Value,
    pub received_by: String,
    pub received_at: DateTime<Utc>,
}

/// The result of [`crate::RegistryStore::record_alert`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AlertHandled {
    #[serde(flatten)]
    pub record: AlertRecord,
    /// The state had been handled before: this is the earlier record and
    /// nothing was done again.
    pub duplicate: bool,
}

fn record_from_row(row: &SqliteRow) -> Result<AlertRecord> {
    Ok(AlertRecord {
        id: row.try_get("id")?,
        fingerprint: row.try_get("fingerprint")?,
        starts_at: parse_time(&row.try_get::<String, _>("starts_at")?)?,
        status: row.try_get("status")?,
        alert_name: row.try_get("alert_name")?,
        model: row.try_get("model")?,
        version: row.try_get("version")?,
        outcome: AlertOutcome::parse(&row.try_get::<String, _>("outcome")?)?,
        detail: row.try_get("detail")?,
        alert: parse_json("alert", &row.try_get::<String, _>("alert")?)?,
        received_by: row.try_get("received_by")?,
        received_at: parse_time(&row.try_get::<String, _>("received_at")?)?,
    })
}

/// Performs the action inside the transaction; a state the action cannot
/// apply to becomes a `refused` outcome naming why.
async fn act(
    tx: &mut SqliteConnection,
    now: &str,
    actor: &Actor,
    notice: &AlertNotice,
    action: AlertAction,
) -> Result<(AlertOutcome, String)> {
    match action {
        AlertAction::Record { outcome, detail } => Ok((outcome, detail)),
        AlertAction::Recommend {
            model,
            version,
            recommendation,
        } => {
            if let Err(e) = validate::new_recommendation(&recommendation) {
                return Ok((AlertOutcome::Refused, e.to_string()));
            }
            match raise_recommendation_in(tx, now, actor, &model, version, &recommendation).await {
                Ok(rec) => Ok((
                    AlertOutcome::Recommended,
                    format!(
                        "{} recommendation {} raised on version {version} of model {model:?}",
                        rec.kind, rec.id
                    ),
                )),
                Err(Error::NotFound { what }) => Ok((
                    AlertOutcome::Refused,
                    format!("{what} not found; nothing recommended"),
                )),
                Err(e) => Err(e),
            }
        }
        AlertAction::Rollback {
            model,
            alias,
            version,
            reason,
        } => {
            let current = match load_alias(tx, &model, &alias).await {
                Ok(a) => a,
                Err(Error::NotFound { what }) => {
                    return Ok((
                        AlertOutcome::Refused,
                        format!("{what} not found; nothing moved"),
                    ));
                }
                Err(e) => return Err(e),
            };
            if current.version != version {
                return Ok((
                    AlertOutcome::Refused,
                    format!(
                        "alias {alias:?} of model {model:?} points at version {} now, not at the \
                         alert's version {version}; nothing moved",
                        current.version
                    ),
                ));
            }
            let moved = match rollback_alias_in(tx, now, actor, &model, &alias, &reason).await {
                Ok(moved) => moved,
                Err(Error::Conflict(why)) => {
                    return Ok((AlertOutcome::Refused, format!("{why}; nothing moved")));
                }
                Err(e) => return Err(e),
            };
            // The rollback the evaluator recommended (if any) is now done.
            let open: Vec<i64> = sqlx::query_scalar(
                "SELECT r.id FROM recommendations r JOIN models m ON m.id = r.model_id
                 WHERE m.name = ? AND r.version = ? AND r.kind = ? AND r.status = 'open'",
            )
            .bind(&model)
            .bind(version)
            .bind(RecommendationKind::Rollback.as_str())
            .fetch_all(&mut *tx)
            .await?;
            let note = format!(
                "applied by Alertmanager alert {} (fingerprint {})",
                notice.alert_name, notice.fingerprint
            );
            for id in &open {
                transition_recommendation_in(tx, now, actor, *id, Transition::Apply, &note).await?;
            }
            let applied = match open.as_slice() {
                [] => String::new(),
                ids => format!(
                    "; applied rollback recommendation {}",
                    ids.iter()
                        .map(i64::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            Ok((
                AlertOutcome::RolledBack,
                format!(
                    "alias {alias:?} of model {model:?} moved back from version {version} to version {}{applied}",
                    moved.version
                ),
            ))
        }
    }
}

impl SqliteStore {
    pub(crate) async fn alert_record(
        &self,
        actor: &Actor,
        notice: AlertNotice,
        action: AlertAction,
    ) -> Result<AlertHandled> {
        let now = self.now();
        let actor = actor.clone();
        self.writer
            .run(move |tx| {
                Box::pin(async move {
                    let starts_at = format_time(notice.starts_at);
                    let earlier = sqlx::query(
                        "SELECT * FROM alert_notifications
                         WHERE fingerprint = ? AND starts_at = ? AND status = ?",
                    )
                    .bind(&notice.fingerprint)
                    .bind(&starts_at)
                    .bind(&notice.status)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if let Some(row) = earlier {
                        return Ok(AlertHandled {
                            record: record_from_row(&row)?,
                            duplicate: true,
                        });
                    }
                    let (outcome, detail) = act(&mut *tx, &now, &actor, &notice, action).await?;
                    let row = sqlx::query(
                        "INSERT INTO alert_notifications (fingerprint, starts_at, status, alert_name,
                             model, version, outcome, detail, alert, received_by, received_at)
                         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
                    )
                    .bind(&notice.fingerprint)
                    .bind(&starts_at)
                    .bind(&notice.status)
                    .bind(&notice.alert_name)
                    .bind(&notice.model)
                    .bind(notice.version)
                    .bind(outcome.as_str())
                    .bind(&detail)
                    .bind(notice.alert.to_string())
                    .bind(&actor.name)
                    .bind(&now)
                    .fetch_one(&mut *tx)
                    .await?;
                    let record = record_from_row(&row)?;
                    append_audit(
                        &mut *tx,
                        &now,
                        &actor,
                        &format!("alert.{}", outcome.as_str()),
                        &format!("alert/{}", notice.fingerprint),
                        None,
                        Some(to_value(&record)),
                    )
                    .await?;
                    Ok(AlertHandled {
                        record,
                        duplicate: false,
                    })
                })
            })
            .await
    }

    pub(crate) async fn alert_list(&self, page: &PageRequest) -> Result<Page<AlertRecord>> {
        let after = decode_cursor(&page.cursor)?;
        let mut conn = self.read.acquire().await?;
        let rows =
            sqlx::query("SELECT * FROM alert_notifications WHERE id > ? ORDER BY id LIMIT ?")
                .bind(after)
                .bind(i64::from(page.limit) + 1)
                .fetch_all(&mut *conn)
                .await?;
        let records = rows
            .iter()
            .map(|r| record_from_row(r).map(|rec| (rec.id, rec)))
            .collect::<Result<Vec<_>>>()?;
        Ok(paginate(records, page.limit))
    }
}
