//! [`Cluster`] on the SQL backends: member heartbeats, duty leases, and the
//! fence check every transaction of a fenced store runs first.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::dialect::{BACKEND_NAME, DbConn, DbRow, Store};
use super::records::*;
use crate::audit::format_time;
use crate::cluster::{Announcement, DutyFence};
use crate::error::{Error, Result};
use crate::roles::Cluster;
use crate::rules::lease::{LeaseDecision, LeaseRow, decide};
use crate::types::*;

/// Refuses the transaction unless `fence` (if any) still holds its duty's
/// lease with the token it got. The lease row stays share-locked until the
/// transaction ends, so a takeover (which locks it for update) waits for
/// this write to commit, and a write never commits after a takeover.
pub(super) async fn check_fence(conn: &mut DbConn, fence: Option<&DutyFence>) -> Result<()> {
    let Some(fence) = fence else {
        return Ok(());
    };
    let Some(mine) = fence.held() else {
        return Err(Error::Fenced(format!(
            "this daemon does not hold the {} duty; nothing was written",
            fence.duty()
        )));
    };
    let current: Option<(String, i64)> = sqlx::query_as(concat!(
        "SELECT holder, token FROM duty_leases WHERE duty = $1",
        row_lock!("FOR SHARE")
    ))
    .bind(fence.duty())
    .fetch_optional(&mut *conn)
    .await?;
    match current {
        Some((holder, token)) if holder == mine.holder && token == mine.token => Ok(()),
        Some((holder, token)) => Err(Error::Fenced(format!(
            "the {} duty was taken over by {holder} (fencing token {token}, this daemon had {}); \
             nothing was written",
            fence.duty(),
            mine.token
        ))),
        None => Err(Error::Fenced(format!(
            "the {} duty has no lease; nothing was written",
            fence.duty()
        ))),
    }
}

fn lease_from_row(row: &DbRow) -> Result<DutyLease> {
    Ok(DutyLease {
        duty: row.try_get("duty")?,
        holder: row.try_get("holder")?,
        fencing_token: row.try_get("token")?,
        acquired_at: parse_time(&row.try_get::<String, _>("acquired_at")?)?,
        expires_at: parse_time(&row.try_get::<String, _>("expires_at")?)?,
    })
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

#[async_trait]
impl Cluster for Store {
    async fn heartbeat(&self, member: &Announcement) -> Result<()> {
        let member = member.clone();
        let now = self.now();
        self.transaction(move |conn| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO cluster_members (id, address, version, started_at, last_seen)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (id) DO UPDATE SET last_seen = excluded.last_seen,
                         address = excluded.address",
                )
                .bind(&member.id)
                .bind(&member.address)
                .bind(&member.version)
                .bind(format_time(member.started_at))
                .bind(&now)
                .execute(&mut *conn)
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn leave_cluster(&self, member_id: &str) -> Result<()> {
        let id = member_id.to_string();
        let now = self.now();
        self.transaction(move |conn| {
            Box::pin(async move {
                // Expired, not deleted: the token stays, so the next holder
                // takes the duty with a greater one.
                sqlx::query("UPDATE duty_leases SET expires_at = $1 WHERE holder = $2")
                    .bind(&now)
                    .bind(&id)
                    .execute(&mut *conn)
                    .await?;
                sqlx::query("DELETE FROM cluster_members WHERE id = $1")
                    .bind(&id)
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            })
        })
        .await
    }

    async fn claim_duty(
        &self,
        duty: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<DutyLease>> {
        let (duty, holder) = (duty.to_string(), holder.to_string());
        let now = self.clock.now();
        let expires = now + chrono_duration(ttl);
        self.transaction(move |conn| {
            Box::pin(async move {
                let current = sqlx::query(concat!(
                    "SELECT * FROM duty_leases WHERE duty = $1",
                    row_lock!("FOR UPDATE")
                ))
                .bind(&duty)
                .fetch_optional(&mut *conn)
                .await?
                .map(|row| lease_from_row(&row))
                .transpose()?;
                let row = current.as_ref().map(|l| LeaseRow {
                    holder: l.holder.clone(),
                    token: l.fencing_token,
                    expires_at: l.expires_at,
                });
                let (token, acquired_at) = match decide(row.as_ref(), &holder, now) {
                    LeaseDecision::HeldElsewhere => return Ok(None),
                    LeaseDecision::Renew { token } => (
                        token,
                        current.map_or(now, |l| l.acquired_at),
                    ),
                    LeaseDecision::TakeOver { token } => (token, now),
                };
                // The row read is locked, so its token is still the one
                // decided on. Two daemons claiming a duty never held both
                // insert: the loser's insert waits for the winner's commit
                // and then updates nothing (no lease has token 0).
                let written = sqlx::query(
                    "INSERT INTO duty_leases (duty, holder, token, acquired_at, expires_at)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (duty) DO UPDATE SET holder = excluded.holder,
                         token = excluded.token, acquired_at = excluded.acquired_at,
                         expires_at = excluded.expires_at
                     WHERE duty_leases.token = $6",
                )
                .bind(&duty)
                .bind(&holder)
                .bind(token)
                .bind(format_time(acquired_at))
                .bind(format_time(expires))
                .bind(row.as_ref().map_or(0, |r| r.token))
                .execute(&mut *conn)
                .await?
                .rows_affected();
                if written == 0 {
                    return Ok(None);
                }
                Ok(Some(DutyLease {
                    duty,
                    holder,
                    fencing_token: token,
                    acquired_at,
                    expires_at: expires,
                }))
            })
        })
        .await
    }

    async fn cluster_view(&self, this_daemon: &str, since: DateTime<Utc>) -> Result<ClusterView> {
        self.read(async {
            let mut conn = self.reader().await?;
            let duties = sqlx::query("SELECT * FROM duty_leases ORDER BY duty")
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(lease_from_row)
                .collect::<Result<Vec<_>>>()?;
            let now = self.clock.now();
            let rows = sqlx::query(
                "SELECT * FROM cluster_members WHERE last_seen >= $1 ORDER BY started_at, id",
            )
            .bind(format_time(since))
            .fetch_all(&mut *conn)
            .await?;
            let members = rows
                .iter()
                .map(|row| {
                    let id: String = row.try_get("id")?;
                    let held = duties
                        .iter()
                        .filter(|l| l.holder == id && l.expires_at > now)
                        .map(|l| l.duty.clone())
                        .collect();
                    Ok(ClusterMember {
                        address: row.try_get("address")?,
                        version: row.try_get("version")?,
                        started_at: parse_time(&row.try_get::<String, _>("started_at")?)?,
                        last_seen: parse_time(&row.try_get::<String, _>("last_seen")?)?,
                        duties: held,
                        id,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(ClusterView {
                backend: BACKEND_NAME.to_string(),
                this_daemon: this_daemon.to_string(),
                members,
                duties,
            })
        })
        .await
    }
}
