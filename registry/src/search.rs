//! Searches across models and versions with a small, backend-neutral
//! condition language (a conjunction of field/operator/value conditions),
//! plus the registry changes MLflow clients make that the native API had no
//! call for: renaming a model and moving a version between stages.
//!
//! The daemon parses MLflow's filter grammar into [`Condition`]s; here they
//! become SQL with bound values only (no input is ever spliced into a
//! statement). It must not know MLflow's wire format.

use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

use crate::error::{Error, Result};
use crate::sqlite::{
    SqliteStore, append_audit, load_model, load_version, model_from_row, model_id, model_target,
    unique_as_exists, version_target, versions_from_rows,
};
use crate::types::{Actor, Model, Stage, Version};
use crate::validate;

/// What a condition looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// The model's name.
    Name,
    /// A tag of the record searched (model tags for models, version tags
    /// for versions).
    Tag(String),
    RunId,
    /// The version number.
    Version,
    /// The version's source URI.
    Source,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    /// A missing value (e.g. an absent tag) counts as different.
    Ne,
    /// SQL `LIKE` pattern (`%`, `_`), case-sensitive.
    Like,
    /// SQL `LIKE` pattern, case-insensitive.
    ILike,
    In,
    /// A missing value counts as not in the list.
    NotIn,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub field: Field,
    pub op: Op,
    /// One value, or the list of `IN` / `NOT IN`. Version numbers are given
    /// as decimal text.
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderKey {
    Name,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderBy {
    pub key: OrderKey,
    pub descending: bool,
}

/// One search: every condition must hold; results ordered by `order_by`
/// (then by record id), `limit` of them from `offset`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Search {
    pub conditions: Vec<Condition>,
    pub order_by: Vec<OrderBy>,
    pub offset: u64,
    pub limit: u32,
}

/// A page of search results; `next_offset` is set when more may follow.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchPage<T> {
    pub items: Vec<T>,
    pub next_offset: Option<u64>,
}

/// Turns a LIKE pattern into a GLOB pattern: SQLite's `LIKE` ignores ASCII
/// case, while MLflow's `LIKE` does not.
fn like_to_glob(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    for c in pattern.chars() {
        match c {
            '%' => out.push('*'),
            '_' => out.push('?'),
            '*' | '?' | '[' => {
                out.push('[');
                out.push(c);
                out.push(']');
            }
            c => out.push(c),
        }
    }
    out
}

/// Which SQL expressions the fields stand for in one search.
struct Columns {
    /// The JSON tag column of the record searched.
    tags: &'static str,
    /// `None` when the field does not apply to the record searched.
    version: Option<&'static str>,
}

/// The left-hand side of a condition: a column, or a tag's JSON value
/// (whose path is bound, so it is pushed wherever it appears).
enum Lhs<'a> {
    Column(String),
    Tag { column: &'a str, path: String },
}

impl Lhs<'_> {
    fn push(&self, q: &mut QueryBuilder<Sqlite>) {
        match self {
            Lhs::Column(c) => {
                q.push(c.as_str());
            }
            Lhs::Tag { column, path } => {
                q.push("json_extract(")
                    .push(*column)
                    .push(", ")
                    .push_bind(path.clone())
                    .push(")");
            }
        }
    }
}

fn push_conditions(
    q: &mut QueryBuilder<Sqlite>,
    conditions: &[Condition],
    cols: &Columns,
) -> Result<()> {
    for c in conditions {
        let lhs = match &c.field {
            Field::Name => Lhs::Column("m.name".into()),
            Field::Tag(key) => {
                validate::tag_key(key)?;
                Lhs::Tag {
                    column: cols.tags,
                    path: format!("$.\"{key}\""),
                }
            }
            Field::RunId | Field::Version | Field::Source => {
                let Some(v) = cols.version else {
                    return Err(Error::invalid(
                        "filter",
                        "models can be searched by name and tags only",
                    ));
                };
                Lhs::Column(match c.field {
                    Field::RunId => format!("{v}.run_id"),
                    Field::Version => format!("{v}.version"),
                    _ => format!("{v}.source_uri"),
                })
            }
        };
        q.push(" AND ");
        // A missing value (absent tag, no run id) is "different", as users
        // of `tag.x != 'true'` expect untagged records to match.
        let negative = matches!(c.op, Op::Ne | Op::NotIn);
        if negative {
            q.push("(");
            lhs.push(q);
            q.push(" IS NULL OR ");
        }
        lhs.push(q);
        push_operator(q, c)?;
        if negative {
            q.push(")");
        }
    }
    Ok(())
}

/// The operator and its bound value(s), after the left-hand expression.
fn push_operator(q: &mut QueryBuilder<Sqlite>, c: &Condition) -> Result<()> {
    let numeric = c.field == Field::Version;
    let first = c
        .values
        .first()
        .ok_or_else(|| Error::invalid("filter", "a comparison needs a value"))?;
    let bind = |q: &mut QueryBuilder<Sqlite>, v: &String| -> Result<()> {
        if numeric {
            let n: i64 = v.parse().map_err(|_| {
                Error::invalid(
                    "filter",
                    format!("version_number must be an integer, got {v:?}"),
                )
            })?;
            q.push_bind(n);
        } else {
            q.push_bind(v.clone());
        }
        Ok(())
    };
    match c.op {
        Op::Eq => {
            q.push(" = ");
            bind(q, first)?;
        }
        Op::Ne => {
            q.push(" != ");
            bind(q, first)?;
        }
        Op::Like | Op::ILike if numeric => {
            return Err(Error::invalid(
                "filter",
                "version_number supports =, !=, IN and NOT IN, not LIKE",
            ));
        }
        Op::Like => {
            q.push(" GLOB ").push_bind(like_to_glob(first));
        }
        Op::ILike => {
            q.push(" LIKE ").push_bind(first.clone());
        }
        Op::In | Op::NotIn => {
            q.push(if c.op == Op::In { " IN (" } else { " NOT IN (" });
            for (i, v) in c.values.iter().enumerate() {
                if i > 0 {
                    q.push(", ");
                }
                bind(q, v)?;
            }
            q.push(")");
        }
    }
    Ok(())
}

fn push_order(q: &mut QueryBuilder<Sqlite>, order: &[OrderBy], versions: bool) -> Result<()> {
    q.push(" ORDER BY ");
    for o in order {
        let col = match (o.key, versions) {
            (OrderKey::Name, _) => "m.name",
            (OrderKey::Version, true) => "v.version",
            (OrderKey::CreatedAt, true) => "v.created_at",
            (OrderKey::UpdatedAt, true) => "v.updated_at",
            (OrderKey::CreatedAt, false) => "m.created_at",
            (OrderKey::UpdatedAt, false) => "m.updated_at",
            (OrderKey::Version, false) => {
                return Err(Error::invalid(
                    "order_by",
                    "models cannot be ordered by version_number",
                ));
            }
        };
        q.push(col)
            .push(if o.descending { " DESC, " } else { " ASC, " });
    }
    q.push(if versions { "v.id" } else { "m.id" });
    Ok(())
}

fn limit_offset(q: &mut QueryBuilder<Sqlite>, search: &Search) {
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

async fn stage_versions(
    conn: &mut SqliteConnection,
    model_id: i64,
    stage: Stage,
) -> Result<Vec<i64>> {
    Ok(sqlx::query_scalar(
        "SELECT version FROM versions WHERE model_id = ? AND stage = ? ORDER BY version",
    )
    .bind(model_id)
    .bind(stage.as_str())
    .fetch_all(&mut *conn)
    .await?)
}

async fn set_stage(
    tx: &mut SqliteConnection,
    now: &str,
    actor: &Actor,
    model: &str,
    model_id: i64,
    version: i64,
    (from, to): (Stage, Stage),
) -> Result<()> {
    sqlx::query("UPDATE versions SET stage = ?, updated_at = ? WHERE model_id = ? AND version = ?")
        .bind(to.as_str())
        .bind(now)
        .bind(model_id)
        .bind(version)
        .execute(&mut *tx)
        .await?;
    append_audit(
        tx,
        now,
        actor,
        "version.stage",
        &version_target(model, version),
        Some(serde_json::json!({ "stage": from })),
        Some(serde_json::json!({ "stage": to })),
    )
    .await
}

impl SqliteStore {
    pub(crate) async fn search_models_impl(&self, search: &Search) -> Result<SearchPage<Model>> {
        let mut q = QueryBuilder::<Sqlite>::new("SELECT m.* FROM models m WHERE 1");
        push_conditions(
            &mut q,
            &search.conditions,
            &Columns {
                tags: "m.tags",
                version: None,
            },
        )?;
        push_order(&mut q, &search.order_by, false)?;
        limit_offset(&mut q, search);
        let mut conn = self.read.acquire().await?;
        let rows = q.build().fetch_all(&mut *conn).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(model_from_row(&mut conn, row).await?);
        }
        Ok(page_of(out, search))
    }

    pub(crate) async fn search_versions_impl(
        &self,
        search: &Search,
    ) -> Result<SearchPage<Version>> {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT v.*, m.name AS model_name FROM versions v JOIN models m ON m.id = v.model_id WHERE 1",
        );
        push_conditions(
            &mut q,
            &search.conditions,
            &Columns {
                tags: "v.tags",
                version: Some("v"),
            },
        )?;
        push_order(&mut q, &search.order_by, true)?;
        limit_offset(&mut q, search);
        let mut conn = self.read.acquire().await?;
        let rows = q.build().fetch_all(&mut *conn).await?;
        // Rows of one model are built together (aliases and open
        // recommendations are read once per model), keeping the order.
        let mut out: Vec<Option<Version>> = vec![None; rows.len()];
        let mut by_model: Vec<(i64, String, Vec<usize>, Vec<sqlx::sqlite::SqliteRow>)> = Vec::new();
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
    }

    /// The highest-numbered version in each of `stages` (every stage when
    /// empty), ordered by stage.
    pub(crate) async fn latest_versions_impl(
        &self,
        model: &str,
        stages: &[Stage],
    ) -> Result<Vec<Version>> {
        let mut conn = self.read.acquire().await?;
        let id = model_id(&mut conn, model).await?;
        let rows = sqlx::query(
            "SELECT v.* FROM versions v WHERE v.model_id = ?1 AND v.version = (
                 SELECT max(version) FROM versions w WHERE w.model_id = ?1 AND w.stage = v.stage)
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
    }

    /// The version an alias points at, in one read (no alias history).
    pub(crate) async fn version_by_alias_impl(&self, model: &str, alias: &str) -> Result<Version> {
        let mut conn = self.read.acquire().await?;
        let id = model_id(&mut conn, model).await?;
        let row = sqlx::query(
            "SELECT v.* FROM aliases a JOIN versions v ON v.model_id = a.model_id AND v.version = a.version
             WHERE a.model_id = ? AND a.name = ?",
        )
        .bind(id)
        .bind(alias)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| Error::not_found(format!("alias {alias:?} of model {model:?}")))?;
        let mut v = versions_from_rows(&mut conn, model, id, std::slice::from_ref(&row)).await?;
        v.pop()
            .ok_or_else(|| Error::Corrupt("version row vanished".into()))
    }

    pub(crate) async fn rename_model_impl(
        &self,
        actor: &Actor,
        name: &str,
        new_name: &str,
    ) -> Result<Model> {
        validate::model_name(new_name)?;
        let now = self.now();
        let owned = (
            actor.clone(),
            name.to_string(),
            new_name.to_string(),
            self.protection.clone(),
        );
        self.writer
            .run(move |tx| {
                Box::pin(async move {
                    let (actor, name, new_name, protection) =
                        (&owned.0, owned.1.as_str(), owned.2.as_str(), &owned.3);
                    load_model(&mut *tx, name).await?;
                    let id = model_id(&mut *tx, name).await?;
                    protection.check_all(
                        actor,
                        crate::sqlite::model_alias_names(&mut *tx, id).await?,
                        "renaming the model (its aliases move to the new name)",
                    )?;
                    // Versions, aliases, policies and recommendations refer
                    // to the model by id, so they follow the new name.
                    sqlx::query("UPDATE models SET name = ?, updated_at = ? WHERE name = ?")
                        .bind(new_name)
                        .bind(&now)
                        .bind(name)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| unique_as_exists(e, || format!("model {new_name:?}")))?;
                    let after = load_model(&mut *tx, new_name).await?;
                    append_audit(
                        &mut *tx,
                        &now,
                        actor,
                        "model.rename",
                        &model_target(name),
                        Some(serde_json::json!({ "name": name })),
                        Some(serde_json::json!({ "name": new_name })),
                    )
                    .await?;
                    Ok(after)
                })
            })
            .await
    }

    pub(crate) async fn transition_stage_impl(
        &self,
        actor: &Actor,
        model: &str,
        version: i64,
        stage: Stage,
        archive_existing: bool,
    ) -> Result<Version> {
        if archive_existing && !matches!(stage, Stage::Staging | Stage::Production) {
            return Err(Error::invalid(
                "archive_existing_versions",
                format!(
                    "archive_existing_versions applies only to the Staging and Production stages, not {stage}"
                ),
            ));
        }
        self.protection
            .check(actor, stage.as_str(), "moving a version into that stage")?;
        let now = self.now();
        let owned = (actor.clone(), model.to_string(), self.protection.clone());
        self.writer
            .run(move |tx| {
                Box::pin(async move {
                    let (actor, model, protection) = (&owned.0, owned.1.as_str(), &owned.2);
                    let before = load_version(&mut *tx, model, version).await?;
                    protection.check(
                        actor,
                        before.stage.as_str(),
                        "moving a version out of that stage",
                    )?;
                    let id = model_id(&mut *tx, model).await?;
                    if archive_existing {
                        for other in stage_versions(&mut *tx, id, stage).await? {
                            if other != version {
                                set_stage(
                                    &mut *tx,
                                    &now,
                                    actor,
                                    model,
                                    id,
                                    other,
                                    (stage, Stage::Archived),
                                )
                                .await?;
                            }
                        }
                    }
                    set_stage(
                        &mut *tx,
                        &now,
                        actor,
                        model,
                        id,
                        version,
                        (before.stage, stage),
                    )
                    .await?;
                    load_version(&mut *tx, model, version).await
                })
            })
            .await
    }
}
