//! [`AlertNotices`] on the SQL backends: the re-check + act + record + audit
//! transaction of [`crate::alert_notices`].

use async_trait::async_trait;
use sqlx::Row;

use super::aliases::rollback_alias_in;
use super::dialect::{DbRow, Store, lock_key};
use super::recommendations::{raise_recommendation_in, transition_recommendation_in};
use super::records::*;
use super::tx::Tx;
use crate::alert_notices::*;
use crate::audit::format_time;
use crate::error::{Error, Result};
use crate::roles::AlertNotices;
use crate::types::{Actor, Page, PageRequest, RecommendationKind, Transition};
use crate::validate;

fn record_from_row(row: &DbRow) -> Result<AlertRecord> {
    Ok(AlertRecord {
        id: row.try_get("id")?,
        fingerprint: row.try_get("fingerprint")?,
        starts_at: parse_time(&row.try_get::<String, _>("starts_at")?)?,
        status: row.try_get("status")?,
        alert_name: row.try_get("alert_name")?,
        model: row.try_get("model")?,
        version: row.try_get("version")?,
        outcome: row
            .try_get::<&str, _>("outcome")?
            .parse()
            .map_err(|_| Error::Corrupt("unknown alert outcome".into()))?,
        detail: row.try_get("detail")?,
        alert: parse_json("alert", &row.try_get::<String, _>("alert")?)?,
        received_by: row.try_get("received_by")?,
        received_at: parse_time(&row.try_get::<String, _>("received_at")?)?,
    })
}

/// Performs the action inside the transaction; a state the action cannot
/// apply to becomes a `refused` outcome naming why.
async fn act(
    tx: &mut Tx<'_>,
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
            match raise_recommendation_in(tx, &model, version, &recommendation).await {
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
            let current = match load_alias(&mut *tx.conn, &model, &alias).await {
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
            // The rollback the evaluator recommended (if any) is done by
            // this move; its rows are locked before the move's audit entry
            // takes the chain head (rows first, then the head).
            let open: Vec<i64> = sqlx::query_scalar(concat!(
                "SELECT r.id FROM recommendations r JOIN models m ON m.id = r.model_id
                 WHERE m.name = $1 AND r.version = $2 AND r.kind = $3 AND r.status = 'open'",
                row_lock!("FOR UPDATE OF r")
            ))
            .bind(&model)
            .bind(version)
            .bind(RecommendationKind::Rollback.as_str())
            .fetch_all(&mut *tx.conn)
            .await?;
            let moved = match rollback_alias_in(tx, &model, &alias, &reason).await {
                Ok(moved) => moved,
                Err(Error::Conflict(why)) => {
                    return Ok((AlertOutcome::Refused, format!("{why}; nothing moved")));
                }
                Err(e) => return Err(e),
            };
            let note = format!(
                "applied by Alertmanager alert {} (fingerprint {})",
                notice.alert_name, notice.fingerprint
            );
            for id in &open {
                transition_recommendation_in(tx, *id, Transition::Apply, &note).await?;
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

#[async_trait]
impl AlertNotices for Store {
    async fn record_alert(
        &self,
        actor: &Actor,
        notice: AlertNotice,
        action: AlertAction,
    ) -> Result<AlertHandled> {
        // A repeated alert state writes no audit entry: it is answered
        // with the earlier record.
        self.audited(actor, (notice, action), |mut tx, (notice, action)| {
            Box::pin(async move {
                let starts_at = format_time(notice.starts_at);
                // One alert state is handled by one change at a time (on any
                // daemon): a repeat waits, then finds the first one's record.
                lock_key(
                    &mut *tx.conn,
                    &format!("alert/{}/{starts_at}/{}", notice.fingerprint, notice.status),
                )
                .await?;
                let earlier = sqlx::query(
                    "SELECT * FROM alert_notifications
                     WHERE fingerprint = $1 AND starts_at = $2 AND status = $3",
                )
                .bind(&notice.fingerprint)
                .bind(&starts_at)
                .bind(&notice.status)
                .fetch_optional(&mut *tx.conn)
                .await?;
                if let Some(row) = earlier {
                    return Ok(AlertHandled {
                        record: record_from_row(&row)?,
                        duplicate: true,
                    });
                }
                let (outcome, detail) = act(&mut tx, &notice, action).await?;
                let row = sqlx::query(
                    "INSERT INTO alert_notifications (fingerprint, starts_at, status, alert_name,
                         model, version, outcome, detail, alert, received_by, received_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING *",
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
                .bind(&tx.actor.name)
                .bind(&tx.now)
                .fetch_one(&mut *tx.conn)
                .await?;
                let record = record_from_row(&row)?;
                tx.audit(
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

    async fn list_alert_notifications(&self, page: &PageRequest) -> Result<Page<AlertRecord>> {
        self.read(async {
            let after = decode_cursor(&page.cursor)?;
            let mut conn = self.reader().await?;
            let rows =
                sqlx::query("SELECT * FROM alert_notifications WHERE id > $1 ORDER BY id LIMIT $2")
                    .bind(after)
                    .bind(i64::from(page.limit) + 1)
                    .fetch_all(&mut *conn)
                    .await?;
            let records = rows
                .iter()
                .map(|r| record_from_row(r).map(|rec| (rec.id, rec)))
                .collect::<Result<Vec<_>>>()?;
            Ok(paginate(records, page.limit))
        })
        .await
    }
}
