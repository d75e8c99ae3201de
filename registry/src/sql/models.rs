//! [`Models`] on the SQL backends.

use async_trait::async_trait;
use sqlx::{QueryBuilder, Row};

use super::dialect::{Db, Store};
use super::filter::{Scope, push_where};
use super::records::*;
use crate::error::Result;
use crate::filter;
use crate::roles::Models;
use crate::types::*;
use crate::validate;

/// Columns of the `models` table, unaliased (native listing).
const MODELS: Scope = Scope {
    name: "name",
    owner: Some("owner"),
    tags: "tags",
    run_id: None,
    version: None,
    source: None,
    status: None,
    created_at: "created_at",
    updated_at: "updated_at",
    id: "id",
};

#[async_trait]
impl Models for Store {
    async fn create_model(&self, actor: &Actor, new: NewModel) -> Result<Model> {
        validate::new_model(&new)?;
        self.audited(actor, new, |mut tx, new| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO models (name, description, owner, tags, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&new.name)
                .bind(&new.description)
                .bind(&new.owner)
                .bind(to_json(&new.tags))
                .bind(&tx.now)
                .bind(&tx.now)
                .execute(&mut *tx.conn)
                .await
                .map_err(|e| unique_as_exists(e, || format!("model {:?}", new.name)))?;
                let model = load_model(&mut *tx.conn, &new.name).await?;
                tx.audit(
                    "model.create",
                    &model_target(&new.name),
                    None,
                    Some(to_value(&model)),
                )
                .await?;
                Ok(model)
            })
        })
        .await
    }

    async fn get_model(&self, name: &str) -> Result<Model> {
        self.read(async {
            let mut conn = self.reader().await?;
            load_model(&mut conn, name).await
        })
        .await
    }

    async fn list_models(&self, filter: &ModelFilter, page: &PageRequest) -> Result<Page<Model>> {
        self.read(async {
            let after = decode_cursor(&page.cursor)?;
            let predicates = filter::model_filter(filter)?;
            let mut q = QueryBuilder::<Db>::new("SELECT * FROM models WHERE id > ");
            q.push_bind(after);
            push_where(&mut q, &predicates, &MODELS);
            q.push(" ORDER BY id LIMIT ")
                .push_bind(i64::from(page.limit) + 1);
            let mut conn = self.reader().await?;
            let rows = q.build().fetch_all(&mut *conn).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push((
                    row.get::<i64, _>("id"),
                    model_from_row(&mut conn, row).await?,
                ));
            }
            Ok(paginate(out, page.limit))
        })
        .await
    }

    async fn update_model(&self, actor: &Actor, name: &str, update: ModelUpdate) -> Result<Model> {
        let args = (name.to_string(), update);
        self.audited(actor, args, |mut tx, (name, update)| {
            Box::pin(async move {
                let before = load_model_locked(&mut *tx.conn, &name).await?;
                let description = update
                    .description
                    .unwrap_or_else(|| before.description.clone());
                let owner = update.owner.unwrap_or_else(|| before.owner.clone());
                validate::new_model(&NewModel {
                    name: name.clone(),
                    description: description.clone(),
                    owner: owner.clone(),
                    tags: before.tags.clone(),
                })?;
                sqlx::query(
                    "UPDATE models SET description = $1, owner = $2, updated_at = $3 WHERE name = $4",
                )
                .bind(&description)
                .bind(&owner)
                .bind(&tx.now)
                .bind(&name)
                .execute(&mut *tx.conn)
                .await?;
                let after = load_model(&mut *tx.conn, &name).await?;
                tx.audit(
                    "model.update",
                    &model_target(&name),
                    Some(to_value(&before)),
                    Some(to_value(&after)),
                )
                .await?;
                Ok(after)
            })
        })
        .await
    }

    async fn delete_model(&self, actor: &Actor, name: &str) -> Result<()> {
        self.audited(actor, name.to_string(), |mut tx, name| {
            Box::pin(async move {
                let id = lock_model(&mut *tx.conn, &name).await?;
                let before = load_model(&mut *tx.conn, &name).await?;
                let aliases = model_alias_names(&mut *tx.conn, id).await?;
                tx.protection
                    .check_all(&tx.actor, aliases, "deleting the model")?;
                sqlx::query("DELETE FROM models WHERE name = $1")
                    .bind(&name)
                    .execute(&mut *tx.conn)
                    .await?;
                tx.audit(
                    "model.delete",
                    &model_target(&name),
                    Some(to_value(&before)),
                    None,
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn rename_model(&self, actor: &Actor, name: &str, new_name: &str) -> Result<Model> {
        validate::model_name(new_name)?;
        let args = (name.to_string(), new_name.to_string());
        self.audited(actor, args, |mut tx, (name, new_name)| {
            Box::pin(async move {
                let id = lock_model(&mut *tx.conn, &name).await?;
                let aliases = model_alias_names(&mut *tx.conn, id).await?;
                tx.protection.check_all(
                    &tx.actor,
                    aliases,
                    "renaming the model (its aliases move to the new name)",
                )?;
                // Versions, aliases, policies and recommendations refer
                // to the model by id, so they follow the new name.
                sqlx::query("UPDATE models SET name = $1, updated_at = $2 WHERE name = $3")
                    .bind(&new_name)
                    .bind(&tx.now)
                    .bind(&name)
                    .execute(&mut *tx.conn)
                    .await
                    .map_err(|e| unique_as_exists(e, || format!("model {new_name:?}")))?;
                let after = load_model(&mut *tx.conn, &new_name).await?;
                tx.audit(
                    "model.rename",
                    &model_target(&name),
                    Some(serde_json::json!({ "name": name })),
                    Some(serde_json::json!({ "name": new_name })),
                )
                .await?;
                Ok(after)
            })
        })
        .await
    }
}
