//! [`Audit`] on the SQL backends: reading the chain and verifying it with
//! [`crate::rules::audit::verify`].

use async_trait::async_trait;
use sqlx::{QueryBuilder, Row};

use super::dialect::{Db, Store};
use super::records::*;
use crate::audit;
use crate::error::Result;
use crate::audit::AuditEvent;
use crate::roles::Audit;
use crate::types::*;

#[async_trait]
impl Audit for Store {
    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> Result<Page<AuditEntry>> {
        self.read(async {
            let after = decode_cursor(&page.cursor)?;
            let mut q = QueryBuilder::<Db>::new("SELECT * FROM audit_log WHERE seq > ");
            q.push_bind(after);
            if let Some(actor) = &filter.actor {
                q.push(" AND actor = ").push_bind(actor.clone());
            }
            if let Some(action) = &filter.action {
                q.push(" AND action = ").push_bind(action.clone());
            }
            if let Some(prefix) = &filter.target_prefix {
                // substr counts characters on both backends.
                q.push(" AND substr(target, 1, ")
                    .push_bind(i32::try_from(prefix.chars().count()).unwrap_or(i32::MAX))
                    .push(") = ")
                    .push_bind(prefix.clone());
            }
            q.push(" ORDER BY seq LIMIT ")
                .push_bind(i64::from(page.limit) + 1);
            let mut conn = self.reader().await?;
            let rows = q.build().fetch_all(&mut *conn).await?;
            let entries = rows
                .iter()
                .map(|r| audit_from_row(r).map(|e| (e.seq, e)))
                .collect::<Result<Vec<_>>>()?;
            Ok(paginate(entries, page.limit))
        })
        .await
    }

    async fn verify_audit(&self) -> Result<AuditVerification> {
        self.read(async {
            let mut conn = self.reader().await?;
            let rows = sqlx::query("SELECT * FROM audit_log ORDER BY seq")
                .fetch_all(&mut *conn)
                .await?;
            let mut entries = Vec::with_capacity(rows.len());
            for row in &rows {
                match audit_from_row(row) {
                    Ok(e) => entries.push(e),
                    Err(e) => {
                        // An entry edited into unparseable JSON or time is broken too.
                        let seq: i64 = row.get("seq");
                        let mut v = audit::verify(entries);
                        if v.ok {
                            v = AuditVerification {
                                entries_checked: v.entries_checked,
                                ok: false,
                                first_broken_seq: Some(seq),
                                problem: Some(e.to_string()),
                                head_hash: None,
                                tokens_checked: 0,
            anchors: None,
                            };
                        }
                        return Ok(v);
                    }
                }
            }
            // The token check needs only the token entries; the chain is
            // handed over whole, not copied.
            let token_entries: Vec<AuditEntry> = entries
                .iter()
                .filter(|e| e.action.starts_with("token."))
                .cloned()
                .collect();
            let mut v = audit::verify(entries);
            if !v.ok {
                return Ok(v);
            }
            let rows = sqlx::query("SELECT * FROM tokens ORDER BY id")
                .fetch_all(&mut *conn)
                .await?;
            let tokens = rows
                .iter()
                .map(|row| {
                    Ok(audit::StoredToken {
                        info: token_from_row(row)?,
                        secret_hash: row.get("secret_hash"),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            match audit::tokens_match_chain(&token_entries, &tokens) {
                Ok(checked) => v.tokens_checked = checked,
                Err((seq, problem)) => {
                    v.ok = false;
                    v.first_broken_seq = seq;
                    v.problem = Some(problem);
                    v.head_hash = None;
                }
            }
            Ok(v)
        })
        .await
    }

    async fn audit_head(&self) -> Result<Option<(i64, String)>> {
        self.read(async {
            let mut conn = self.reader().await?;
            Ok(
                sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                    .fetch_optional(&mut *conn)
                    .await?,
            )
        })
        .await
    }

    async fn audit_hash(&self, seq: i64) -> Result<Option<String>> {
        self.read(async {
            let mut conn = self.reader().await?;
            Ok(sqlx::query_scalar("SELECT hash FROM audit_log WHERE seq = $1")
                .bind(seq)
                .fetch_optional(&mut *conn)
                .await?)
        })
        .await
    }

    async fn record_audit(&self, actor: &Actor, event: &AuditEvent) -> Result<()> {
        let args = (event.action(), event.target(), event.after());
        self.audited(actor, args, |mut tx, (action, target, after)| {
            Box::pin(async move { tx.audit(action, &target, None, Some(after)).await })
        })
        .await
    }
}
