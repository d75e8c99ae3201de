//! [`Searches`] on the SQL backends: searches across models and versions, and the
//! latest version per stage.

use async_trait::async_trait;
use sqlx::{QueryBuilder, Row};

use super::dialect::{Db, DbRow, Store};
use super::filter::{Scope, push_order, push_where};
use super::records::*;
use crate::error::Result;
use crate::filter::{self, Record};
use crate::roles::Searches;
use crate::search::{Search, SearchPage};
use crate::types::{Model, Stage, Version};

/// `models m`.
const MODELS: Scope = Scope {
    name: "m.name",
    owner: Some("m.owner"),
    tags: "m.tags",
    run_id: None,
    version: None,
    source: None,
    status: None,
    created_at: "m.created_at",
    updated_at: "m.updated_at",
    id: "m.id",
};

/// `versions v JOIN models m`.
pub(super) const VERSIONS: Scope = Scope {
    name: "m.name",
    owner: None,
    tags: "v.tags",
    run_id: Some("v.run_id"),
    version: Some("v.version"),
    source: Some("v.source_uri"),
    status: Some("v.status"),
    created_at: "v.created_at",
    updated_at: "v.updated_at",
    id: "v.id",
};

fn limit_offset(q: &mut QueryBuilder<Db>, search: &Search) {
    q.push(" LIMIT ")
        .push_bind(i64::from(search.limit) + 1)
        .push(" OFFSET ")
        .push_bind(search.offset as i64);
}

fn page_of<T>(mut items: Vec<T>, search: &Search) -> SearchPage<T> {
    let more = items.len() > search.limit as usize;
    items.truncate(search.limit as usize);
    SearchPage {
        next_offset: more.then(|| search.offset + search.limit as u64),
        items,
    }
}

#[async_trait]
impl Searches for Store {
    async fn search_models(&self, search: &Search) -> Result<SearchPage<Model>> {
        self.read(async {
            let predicates = filter::search(&search.conditions, Record::Model)?;
            let order = filter::order(&search.order_by, Record::Model)?;
            let mut q = QueryBuilder::<Db>::new("SELECT m.* FROM models m WHERE TRUE");
            push_where(&mut q, &predicates, &MODELS);
            push_order(&mut q, &order, &MODELS);
            limit_offset(&mut q, search);
            let mut conn = self.reader().await?;
            let rows = q.build().fetch_all(&mut *conn).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(model_from_row(&mut conn, row).await?);
            }
            Ok(page_of(out, search))
        })
        .await
    }

    async fn search_versions(&self, search: &Search) -> Result<SearchPage<Version>> {
        self.read(async {
        let predicates = filter::search(&search.conditions, Record::Version)?;
        let order = filter::order(&search.order_by, Record::Version)?;
        let mut q = QueryBuilder::<Db>::new(
            "SELECT v.*, m.name AS model_name FROM versions v JOIN models m ON m.id = v.model_id WHERE TRUE",
        );
        push_where(&mut q, &predicates, &VERSIONS);
        push_order(&mut q, &order, &VERSIONS);
        limit_offset(&mut q, search);
        let mut conn = self.reader().await?;
        let rows = q.build().fetch_all(&mut *conn).await?;
        // Rows of one model are built together (aliases and open
        // recommendations are read once per model), keeping the order.
        let mut out: Vec<Option<Version>> = vec![None; rows.len()];
        let mut by_model: Vec<(i64, String, Vec<usize>, Vec<DbRow>)> = Vec::new();
        for (i, row) in rows.into_iter().enumerate() {
            let id: i64 = row.get("model_id");
            match by_model.iter_mut().find(|g| g.0 == id) {
                Some(g) => {
                    g.2.push(i);
                    g.3.push(row);
                }
                None => by_model.push((id, row.get("model_name"), vec![i], vec![row])),
            }
        }
        for (id, name, idx, group) in by_model {
            for (v, i) in versions_from_rows(&mut conn, &name, id, &group)
                .await?
                .into_iter()
                .zip(idx)
            {
                out[i] = Some(v);
            }
        }
        Ok(page_of(out.into_iter().flatten().collect(), search))
    }).await
    }

    /// The highest-numbered version in each of `stages` (every stage when
    /// empty), ordered by stage.
    async fn latest_versions(&self, model: &str, stages: &[Stage]) -> Result<Vec<Version>> {
        self.read(async {
            let mut conn = self.reader().await?;
            let id = model_id(&mut conn, model).await?;
            let rows = sqlx::query(
                "SELECT v.* FROM versions v WHERE v.model_id = $1 AND v.version = (
                 SELECT max(version) FROM versions w WHERE w.model_id = $1 AND w.stage = v.stage)
             ORDER BY v.version",
            )
            .bind(id)
            .fetch_all(&mut *conn)
            .await?;
            let mut versions = versions_from_rows(&mut conn, model, id, &rows).await?;
            if !stages.is_empty() {
                versions.retain(|v| stages.contains(&v.stage));
            }
            Ok(versions)
        })
        .await
    }
}
