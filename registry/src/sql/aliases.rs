//! [`Aliases`] on the SQL backends: moves, rollbacks (the deployment stack of
//! [`crate::rules::alias`]) and gated promotions.
//!
//! A move is conditional on the alias still pointing where the change
//! read it: two daemons rolling back one alias at once give one move and
//! one [`Error::Conflict`], never two moves.

use async_trait::async_trait;

use super::dialect::{Store, lock_key};
use super::gates::load_gate_policy;
use super::records::*;
use super::tx::Tx;
use crate::error::{Error, Result};
use crate::gate::GateApproval;
use crate::roles::Aliases;
use crate::rules::alias as rules;
use crate::types::*;
use crate::validate;

/// Points an alias at an existing version inside a transaction (a `set`
/// move); `gate` is the promotion gate's decision when the move is a
/// promotion, kept in the audit entry. Reading the alias back is the
/// caller's choice (its history grows with every move).
async fn set_alias_tx(
    tx: &mut Tx<'_>,
    model: &str,
    alias: &str,
    version: i64,
    reason: &str,
    gate: Option<&GateApproval>,
) -> Result<()> {
    let id = model_id(&mut *tx.conn, model).await?;
    if !version_exists(&mut *tx.conn, id, version).await? {
        return Err(Error::not_found(format!(
            "version {version} of model {model:?}"
        )));
    }
    // A set is last-writer-wins: concurrent sets of one alias (from any
    // daemon) take turns here, so each reads where the previous one left
    // it and none is refused. (Rollbacks do not take this lock: of two
    // concurrent rollbacks one moves and the other is a conflict.)
    lock_key(&mut *tx.conn, &format!("alias/{id}/{alias}")).await?;
    let from: Option<i64> =
        sqlx::query_scalar("SELECT version FROM aliases WHERE model_id = $1 AND name = $2")
            .bind(id)
            .bind(alias)
            .fetch_optional(&mut *tx.conn)
            .await?;
    let to = Move {
        model_id: id,
        from,
        to: version,
        kind: MoveKind::Set,
    };
    move_alias(tx, model, alias, to, reason, gate).await
}

/// Where a move puts an alias.
struct Move {
    model_id: i64,
    /// Where the change read the alias pointing (`None`: no such alias).
    from: Option<i64>,
    to: i64,
    kind: MoveKind,
}

/// Moves an alias inside a transaction and records the move and the audit
/// entry; `gate` is the promotion gate's decision when the move is a
/// promotion.
async fn move_alias(
    tx: &mut Tx<'_>,
    model: &str,
    alias: &str,
    m: Move,
    reason: &str,
    gate: Option<&GateApproval>,
) -> Result<()> {
    let before = m.from;
    // Under READ COMMITTED, a concurrent move of this alias makes the
    // statement wait for that change and then match no row.
    let moved = match before {
        Some(from) => sqlx::query(
            "UPDATE aliases SET version = $3, updated_by = $4, updated_at = $5
             WHERE model_id = $1 AND name = $2 AND version = $6",
        )
        .bind(m.model_id)
        .bind(alias)
        .bind(m.to)
        .bind(&tx.actor.name)
        .bind(&tx.now)
        .bind(from),
        None => sqlx::query(
            "INSERT INTO aliases (model_id, name, version, updated_by, updated_at)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (model_id, name) DO NOTHING",
        )
        .bind(m.model_id)
        .bind(alias)
        .bind(m.to)
        .bind(&tx.actor.name)
        .bind(&tx.now),
    }
    .execute(&mut *tx.conn)
    .await?
    .rows_affected();
    if moved == 0 {
        return Err(Error::Conflict(format!(
            "alias {alias:?} of model {model:?} was moved by another change meanwhile; \
             nothing was moved, look at it again and retry"
        )));
    }
    sqlx::query(
        "INSERT INTO alias_moves (model_id, alias, from_version, to_version, kind, actor, reason, at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(m.model_id)
    .bind(alias)
    .bind(before)
    .bind(m.to)
    .bind(m.kind.as_str())
    .bind(&tx.actor.name)
    .bind(reason)
    .bind(&tx.now)
    .execute(&mut *tx.conn)
    .await?;
    let (before, after) = rules::move_audit(before, m.to, reason, gate);
    tx.audit(
        rules::move_action(m.kind),
        &rules::target(model, alias),
        before,
        Some(after),
    )
    .await
}

/// Moves `alias` back to the version it served before (see
/// [`crate::rules::alias::rollback_target`]), inside the caller's
/// transaction.
pub(super) async fn rollback_alias_in(
    tx: &mut Tx<'_>,
    model: &str,
    alias: &str,
    reason: &str,
) -> Result<Alias> {
    let current = load_alias(&mut *tx.conn, model, alias).await?;
    let id = model_id(&mut *tx.conn, model).await?;
    let moves = alias_moves(&mut *tx.conn, id, alias).await?;
    let existing: Vec<i64> = sqlx::query_scalar("SELECT version FROM versions WHERE model_id = $1")
        .bind(id)
        .fetch_all(&mut *tx.conn)
        .await?;
    let target = rules::rollback_target(&moves, |v| existing.contains(&v)).ok_or_else(|| {
            Error::Conflict(format!(
                "alias {alias:?} of model {model:?} has no earlier version to roll back to (it points at version {} and nothing served before it)",
                current.version
            ))
        })?;
    if !version_exists(&mut *tx.conn, id, target).await? {
        return Err(Error::Conflict(format!(
            "version {target} of model {model:?} was deleted meanwhile; nothing was moved"
        )));
    }
    let to = Move {
        model_id: id,
        from: Some(current.version),
        to: target,
        kind: MoveKind::Rollback,
    };
    move_alias(tx, model, alias, to, reason, None).await?;
    load_alias(&mut *tx.conn, model, alias).await
}

impl Store {
    /// Sets an alias; with `read_back`, returns it with its move history
    /// (read inside the write transaction, which costs a read of every
    /// earlier move: callers that do not need it skip it).
    async fn set_alias_inner(
        &self,
        actor: &Actor,
        model: &str,
        alias: &str,
        version: i64,
        reason: &str,
        read_back: bool,
    ) -> Result<Option<Alias>> {
        validate::alias_name(alias)?;
        validate::version_number(version)?;
        validate::reason(reason)?;
        self.protection.check(actor, alias, "moving the alias")?;
        let args = (model.to_string(), alias.to_string(), reason.to_string());
        self.audited(actor, args, move |mut tx, (model, alias, reason)| {
            Box::pin(async move {
                set_alias_tx(&mut tx, &model, &alias, version, &reason, None).await?;
                if read_back {
                    Ok(Some(load_alias(&mut *tx.conn, &model, &alias).await?))
                } else {
                    Ok(None)
                }
            })
        })
        .await
    }
}

#[async_trait]
impl Aliases for Store {
    async fn get_alias(&self, model: &str, alias: &str) -> Result<Alias> {
        self.read(async {
            let mut conn = self.reader().await?;
            load_alias(&mut conn, model, alias).await
        })
        .await
    }

    async fn list_aliases(&self, model: &str) -> Result<Vec<Alias>> {
        self.read(async {
            let mut conn = self.reader().await?;
            let id = model_id(&mut conn, model).await?;
            let names = model_alias_names(&mut conn, id).await?;
            let mut out = Vec::with_capacity(names.len());
            for name in names {
                out.push(load_alias(&mut conn, model, &name).await?);
            }
            Ok(out)
        })
        .await
    }

    async fn set_alias(
        &self,
        actor: &Actor,
        model: &str,
        alias: &str,
        version: i64,
        reason: &str,
    ) -> Result<Alias> {
        self.set_alias_inner(actor, model, alias, version, reason, true)
            .await?
            .ok_or_else(|| Error::Corrupt("alias vanished after being set".into()))
    }

    async fn set_alias_target(
        &self,
        actor: &Actor,
        model: &str,
        alias: &str,
        version: i64,
        reason: &str,
    ) -> Result<()> {
        self.set_alias_inner(actor, model, alias, version, reason, false)
            .await
            .map(drop)
    }

    async fn delete_alias(
        &self,
        actor: &Actor,
        model: &str,
        alias: &str,
        reason: &str,
    ) -> Result<()> {
        validate::reason(reason)?;
        self.protection.check(actor, alias, "deleting the alias")?;
        let args = (model.to_string(), alias.to_string(), reason.to_string());
        self.audited(actor, args, |mut tx, (model, alias, reason)| {
            Box::pin(async move {
                let before = load_alias(&mut *tx.conn, &model, &alias).await?;
                let id = model_id(&mut *tx.conn, &model).await?;
                let deleted = sqlx::query(
                    "DELETE FROM aliases WHERE model_id = $1 AND name = $2 AND version = $3",
                )
                .bind(id)
                .bind(&alias)
                .bind(before.version)
                .execute(&mut *tx.conn)
                .await?;
                if deleted.rows_affected() == 0 {
                    return Err(Error::Conflict(format!(
                        "alias {alias:?} of model {model:?} was moved by another change meanwhile; nothing was deleted"
                    )));
                }
                sqlx::query(
                    "INSERT INTO alias_moves (model_id, alias, from_version, to_version, kind, actor, reason, at)
                     VALUES ($1, $2, $3, NULL, 'delete', $4, $5, $6)",
                )
                .bind(id)
                .bind(&alias)
                .bind(before.version)
                .bind(&tx.actor.name)
                .bind(&reason)
                .bind(&tx.now)
                .execute(&mut *tx.conn)
                .await?;
                tx.audit(
                    "alias.delete",
                    &rules::target(&model, &alias),
                    Some(serde_json::json!({ "version": before.version })),
                    None,
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn rollback_alias(
        &self,
        actor: &Actor,
        model: &str,
        alias: &str,
        reason: &str,
    ) -> Result<Alias> {
        validate::reason(reason)?;
        if !actor.role.allows(Role::Approver) {
            return Err(Error::Forbidden(format!(
                "rolling back alias {alias:?} needs role approver or higher; token {:?} has role {}",
                actor.name, actor.role
            )));
        }
        let args = (model.to_string(), alias.to_string(), reason.to_string());
        self.audited(actor, args, |mut tx, (model, alias, reason)| {
            Box::pin(async move { rollback_alias_in(&mut tx, &model, &alias, &reason).await })
        })
        .await
    }

    async fn promote_alias(
        &self,
        actor: &Actor,
        model: &str,
        alias: &str,
        version: i64,
        reason: &str,
        gate: &GateApproval,
    ) -> Result<Alias> {
        validate::alias_name(alias)?;
        validate::version_number(version)?;
        validate::reason(reason)?;
        self.protection
            .check(actor, alias, "promoting to the alias")?;
        let args = (
            model.to_string(),
            alias.to_string(),
            reason.to_string(),
            gate.clone(),
        );
        self.audited(actor, args, move |mut tx, (model, alias, reason, gate)| {
            Box::pin(async move {
                // The gate was evaluated before this transaction: if the
                // policy changed since, its decision no longer holds.
                let current = load_gate_policy(&mut *tx.conn, &model)
                    .await?
                    .map(|p| p.sha256);
                if current != gate.policy_sha256 {
                    model_id(&mut *tx.conn, &model).await?;
                    return Err(Error::Conflict(format!(
                        "the gate policy of model {model:?} changed while the gate was being \
                         evaluated; nothing was moved, run the promotion again"
                    )));
                }
                set_alias_tx(&mut tx, &model, &alias, version, &reason, Some(&gate)).await?;
                load_alias(&mut *tx.conn, &model, &alias).await
            })
        })
        .await
    }

    /// The version an alias points at, in one read (no alias history).
    async fn get_version_by_alias(&self, model: &str, alias: &str) -> Result<Version> {
        self.read(async {
        let mut conn = self.reader().await?;
        let id = model_id(&mut conn, model).await?;
        let row = sqlx::query(
            "SELECT v.* FROM aliases a JOIN versions v ON v.model_id = a.model_id AND v.version = a.version
             WHERE a.model_id = $1 AND a.name = $2",
        )
        .bind(id)
        .bind(alias)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| Error::not_found(format!("alias {alias:?} of model {model:?}")))?;
        let mut v = versions_from_rows(&mut conn, model, id, std::slice::from_ref(&row)).await?;
        v.pop()
            .ok_or_else(|| Error::Corrupt("version row vanished".into()))
    }).await
    }
}
