//! [`Recommendations`] on the SQL backends; the lifecycle is
//! [`crate::rules::recommendation`].

use async_trait::async_trait;
use sqlx::QueryBuilder;

use super::dialect::{Db, Store};
use super::records::*;
use super::tx::Tx;
use crate::error::Result;
use crate::roles::Recommendations;
use crate::rules::recommendation::{self as rules, Effect, Raise};
use crate::types::*;
use crate::validate;

/// Raises a validated recommendation, or refreshes the open one of the same
/// kind on the version, inside the caller's transaction.
pub(super) async fn raise_recommendation_in(
    tx: &mut Tx<'_>,
    model: &str,
    version: i64,
    new: &NewRecommendation,
) -> Result<Recommendation> {
    // The version row stays locked until commit: two raises of one kind
    // on one version take turns, and the second refreshes the first.
    let id = lock_version(&mut *tx.conn, model, version).await?;
    let open: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM recommendations WHERE model_id = $1 AND version = $2 AND kind = $3 AND status = 'open'",
    )
    .bind(id)
    .bind(version)
    .bind(new.kind.as_str())
    .fetch_optional(&mut *tx.conn)
    .await?;
    let raise = Raise::decide(open);
    let (rec_id, before) = match raise {
        Raise::Refresh(rec_id) => {
            let before = load_recommendation(&mut *tx.conn, rec_id).await?;
            sqlx::query("UPDATE recommendations SET severity = $1, reason = $2, evidence = $3, updated_at = $4 WHERE id = $5")
                .bind(new.severity.as_str())
                .bind(&new.reason)
                .bind(new.evidence.to_string())
                .bind(&tx.now)
                .bind(rec_id)
                .execute(&mut *tx.conn)
                .await?;
            (rec_id, Some(to_value(&before)))
        }
        Raise::New => {
            let rec_id: i64 = sqlx::query_scalar(
                "INSERT INTO recommendations (model_id, version, kind, severity, reason, evidence, status,
                     raised_by, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, 'open', $7, $8, $9) RETURNING id",
            )
            .bind(id)
            .bind(version)
            .bind(new.kind.as_str())
            .bind(new.severity.as_str())
            .bind(&new.reason)
            .bind(new.evidence.to_string())
            .bind(&tx.actor.name)
            .bind(&tx.now)
            .bind(&tx.now)
            .fetch_one(&mut *tx.conn)
            .await?;
            (rec_id, None)
        }
    };
    let rec = load_recommendation(&mut *tx.conn, rec_id).await?;
    tx.audit(
        raise.audit_action(),
        &rules::target(rec_id),
        before,
        Some(to_value(&rec)),
    )
    .await?;
    Ok(rec)
}

/// Moves an open recommendation through `transition`, inside the caller's
/// transaction.
pub(super) async fn transition_recommendation_in(
    tx: &mut Tx<'_>,
    id: i64,
    transition: Transition,
    note: &str,
) -> Result<Recommendation> {
    // Locked first: of two concurrent transitions the second sees the
    // first's outcome and is refused by the lifecycle.
    sqlx::query(concat!(
        "SELECT id FROM recommendations WHERE id = $1",
        row_lock!("FOR UPDATE")
    ))
    .bind(id)
    .execute(&mut *tx.conn)
    .await?;
    let before = load_recommendation(&mut *tx.conn, id).await?;
    match rules::transition(id, before.status, transition)? {
        Effect::Acknowledge => {
            sqlx::query("UPDATE recommendations SET acknowledged_by = $1, acknowledged_at = $2, updated_at = $3 WHERE id = $4")
                .bind(&tx.actor.name)
                .bind(&tx.now)
                .bind(&tx.now)
                .bind(id)
                .execute(&mut *tx.conn)
                .await?;
        }
        Effect::Resolve(status) => {
            sqlx::query(
                "UPDATE recommendations SET status = $1, resolved_by = $2, resolved_at = $3, resolution_note = $4,
                     updated_at = $5 WHERE id = $6",
            )
            .bind(status.as_str())
            .bind(&tx.actor.name)
            .bind(&tx.now)
            .bind(note)
            .bind(&tx.now)
            .bind(id)
            .execute(&mut *tx.conn)
            .await?;
        }
    }
    let after = load_recommendation(&mut *tx.conn, id).await?;
    tx.audit(
        &rules::transition_action(transition),
        &rules::target(id),
        Some(to_value(&before)),
        Some(to_value(&after)),
    )
    .await?;
    Ok(after)
}

#[async_trait]
impl Recommendations for Store {
    async fn raise_recommendation(
        &self,
        actor: &Actor,
        model: &str,
        version: i64,
        new: NewRecommendation,
    ) -> Result<Recommendation> {
        validate::new_recommendation(&new)?;
        let args = (model.to_string(), new);
        self.audited(actor, args, move |mut tx, (model, new)| {
            Box::pin(async move { raise_recommendation_in(&mut tx, &model, version, &new).await })
        })
        .await
    }

    async fn get_recommendation(&self, id: i64) -> Result<Recommendation> {
        self.read(async {
            let mut conn = self.reader().await?;
            load_recommendation(&mut conn, id).await
        })
        .await
    }

    async fn list_recommendations(
        &self,
        filter: &RecommendationFilter,
        page: &PageRequest,
    ) -> Result<Page<Recommendation>> {
        self.read(async {
            let after = decode_cursor(&page.cursor)?;
            let mut q = QueryBuilder::<Db>::new(RECOMMENDATION_SELECT);
            q.push(" WHERE r.id > ").push_bind(after);
            if let Some(model) = &filter.model {
                q.push(" AND m.name = ").push_bind(model.clone());
            }
            if let Some(version) = filter.version {
                q.push(" AND r.version = ").push_bind(version);
            }
            if let Some(kind) = filter.kind {
                q.push(" AND r.kind = ").push_bind(kind.as_str());
            }
            if let Some(status) = filter.status {
                q.push(" AND r.status = ").push_bind(status.as_str());
            }
            q.push(" ORDER BY r.id LIMIT ")
                .push_bind(i64::from(page.limit) + 1);
            let mut conn = self.reader().await?;
            let rows = q.build().fetch_all(&mut *conn).await?;
            let recs = rows
                .iter()
                .map(|r| recommendation_from_row(r).map(|rec| (rec.id, rec)))
                .collect::<Result<Vec<_>>>()?;
            Ok(paginate(recs, page.limit))
        })
        .await
    }

    async fn transition_recommendation(
        &self,
        actor: &Actor,
        id: i64,
        transition: Transition,
        note: &str,
    ) -> Result<Recommendation> {
        self.audited(actor, note.to_string(), move |mut tx, note| {
            Box::pin(
                async move { transition_recommendation_in(&mut tx, id, transition, &note).await },
            )
        })
        .await
    }
}
