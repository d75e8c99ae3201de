//! [`Tracking`] on the SQL backends: experiments, runs and run metrics, and the
//! lineage a version takes from its run.

use std::collections::BTreeMap;

use async_trait::async_trait;
use sqlx::Row;

use super::dialect::{DbConn, DbRow, Store};
use super::records::*;
use crate::error::{Error, Result};
use crate::roles::Tracking;
use crate::rules::lineage::merge_run;
use crate::tracking::*;
use crate::types::{Actor, Lineage, Tags};
use crate::validate;

fn experiment_from_row(row: &DbRow) -> Result<Experiment> {
    Ok(Experiment {
        id: row.get("id"),
        name: row.get("name"),
        artifact_location: row.get("artifact_location"),
        lifecycle_stage: row.get("lifecycle_stage"),
        tags: parse_json("experiments.tags", row.get("tags"))?,
        created_by: row.get("created_by"),
        created_at: parse_time(row.get("created_at"))?,
        updated_at: parse_time(row.get("updated_at"))?,
    })
}

async fn load_experiment(conn: &mut DbConn, id: i64) -> Result<Experiment> {
    let row = sqlx::query("SELECT * FROM experiments WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| Error::not_found(format!("experiment {id}")))?;
    experiment_from_row(&row)
}

/// The latest point of each metric key of a run (highest step, then time,
/// then the latest logged).
async fn latest_metrics(conn: &mut DbConn, run: &str) -> Result<Vec<MetricPoint>> {
    let rows = sqlx::query(
        "SELECT key, value, timestamp, step FROM run_metrics m WHERE run_id = $1 AND id = (
             SELECT id FROM run_metrics WHERE run_id = $1 AND key = m.key
             ORDER BY step DESC, timestamp DESC, id DESC LIMIT 1)
         ORDER BY key",
    )
    .bind(run)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(|r| MetricPoint {
            key: r.get("key"),
            value: r.get("value"),
            timestamp: r.get("timestamp"),
            step: r.get("step"),
        })
        .collect())
}

async fn load_run(conn: &mut DbConn, id: &str) -> Result<Run> {
    let row = sqlx::query("SELECT * FROM runs WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| Error::not_found(format!("run {id:?}")))?;
    let metrics = latest_metrics(conn, id).await?;
    Ok(Run {
        id: row.get("id"),
        experiment_id: row.get("experiment_id"),
        name: row.get("name"),
        status: RunStatus::parse(row.get("status"))
            .map_err(|_| Error::Corrupt("unknown run status".into()))?,
        start_time: row.get("start_time"),
        end_time: row.get("end_time"),
        lifecycle_stage: row.get("lifecycle_stage"),
        params: parse_json("runs.params", row.get("params"))?,
        tags: parse_json("runs.tags", row.get("tags"))?,
        metrics,
        created_by: row.get("created_by"),
        created_at: parse_time(row.get("created_at"))?,
        updated_at: parse_time(row.get("updated_at"))?,
    })
}

async fn load_logged_model(conn: &mut DbConn, id: &str) -> Result<LoggedModel> {
    let row = sqlx::query("SELECT * FROM logged_models WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| Error::not_found(format!("logged model {id:?}")))?;
    Ok(LoggedModel {
        id: row.get("id"),
        experiment_id: row.get("experiment_id"),
        name: row.get("name"),
        source_run_id: row.get("source_run_id"),
        model_type: row.get("model_type"),
        status: LoggedModelStatus::parse(row.get("status"))
            .map_err(|_| Error::Corrupt("unknown logged model status".into()))?,
        params: parse_json("logged_models.params", row.get("params"))?,
        tags: parse_json("logged_models.tags", row.get("tags"))?,
        created_by: row.get("created_by"),
        created_at: parse_time(row.get("created_at"))?,
        updated_at: parse_time(row.get("updated_at"))?,
    })
}

/// Adds `new` to `params`, refusing to change a parameter already set.
fn add_params(
    what: &str,
    params: &mut BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> Result<()> {
    for (k, v) in new {
        match params.get(k) {
            // Parameters are write-once, as in MLflow: a run (or a logged
            // model) has one configuration.
            Some(old) if old != v => {
                return Err(Error::invalid(
                    "params",
                    format!(
                        "parameter {k:?} of {what} is already {old:?}; parameters cannot be changed (log {v:?} under another key)"
                    ),
                ));
            }
            _ => {
                params.insert(k.clone(), v.clone());
            }
        }
    }
    Ok(())
}

/// Fills a new version's lineage from the run it names, when that run is
/// in this registry ([`merge_run`]). A run id this registry does not know
/// is kept as is (it may name a run in another tracking server).
pub(super) async fn lineage_from_run(
    conn: &mut DbConn,
    run_id: &str,
    lineage: &mut Lineage,
) -> Result<()> {
    let params: Option<String> = sqlx::query_scalar("SELECT params FROM runs WHERE id = $1")
        .bind(run_id)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(params) = params else {
        return Ok(());
    };
    let params: BTreeMap<String, String> = parse_json("runs.params", &params)?;
    let latest = latest_metrics(conn, run_id).await?;
    merge_run(params, latest, lineage);
    Ok(())
}

#[async_trait]
impl Tracking for Store {
    async fn create_experiment(&self, actor: &Actor, new: NewExperiment) -> Result<Experiment> {
        validate_new_experiment(&new)?;
        self.audited(actor, new, |mut tx, new| {
            Box::pin(async move {
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO experiments (name, artifact_location, tags, created_by, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                )
                .bind(&new.name)
                .bind(new.artifact_location.as_deref().unwrap_or(""))
                .bind(to_json(&new.tags))
                .bind(&tx.actor.name)
                .bind(&tx.now)
                .bind(&tx.now)
                .fetch_one(&mut *tx.conn)
                .await
                .map_err(|e| unique_as_exists(e, || format!("experiment {:?}", new.name)))?;
                let experiment = load_experiment(&mut *tx.conn, id).await?;
                tx.audit(
                    "experiment.create",
                    &experiment_target(id),
                    None,
                    Some(to_value(&experiment)),
                )
                .await?;
                Ok(experiment)
            })
        })
        .await
    }

    async fn get_experiment(&self, id: i64) -> Result<Experiment> {
        self.read(async {
            let mut conn = self.reader().await?;
            load_experiment(&mut conn, id).await
        })
        .await
    }

    async fn get_experiment_by_name(&self, name: &str) -> Result<Experiment> {
        self.read(async {
            let mut conn = self.reader().await?;
            let row = sqlx::query("SELECT * FROM experiments WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut *conn)
                .await?
                .ok_or_else(|| Error::not_found(format!("experiment {name:?}")))?;
            experiment_from_row(&row)
        })
        .await
    }

    async fn create_run(&self, actor: &Actor, new: NewRun) -> Result<Run> {
        validate::tags(&new.tags)?;
        self.audited(actor, new, |mut tx, new| {
            Box::pin(async move {
                load_experiment(&mut *tx.conn, new.experiment_id).await?;
                let id = new_run_id();
                sqlx::query(
                    "INSERT INTO runs (id, experiment_id, name, status, start_time, tags, created_by, created_at, updated_at)
                     VALUES ($1, $2, $3, 'RUNNING', $4, $5, $6, $7, $8)",
                )
                .bind(&id)
                .bind(new.experiment_id)
                .bind(&new.name)
                .bind(new.start_time)
                .bind(to_json(&new.tags))
                .bind(&tx.actor.name)
                .bind(&tx.now)
                .bind(&tx.now)
                .execute(&mut *tx.conn)
                .await?;
                let run = load_run(&mut *tx.conn, &id).await?;
                tx.audit("run.create", &run_target(&id), None, Some(to_value(&run)))
                    .await?;
                Ok(run)
            })
        })
        .await
    }

    async fn get_run(&self, id: &str) -> Result<Run> {
        self.read(async {
            let mut conn = self.reader().await?;
            load_run(&mut conn, id).await
        })
        .await
    }

    async fn update_run(&self, actor: &Actor, id: &str, update: RunUpdate) -> Result<Run> {
        let args = (id.to_string(), update);
        self.audited(actor, args, |mut tx, (id, update)| {
            Box::pin(async move {
                sqlx::query(concat!("SELECT id FROM runs WHERE id = $1", row_lock!("FOR UPDATE")))
                    .bind(&id)
                    .execute(&mut *tx.conn)
                    .await?;
                let before = load_run(&mut *tx.conn, &id).await?;
                sqlx::query(
                    "UPDATE runs SET status = $1, end_time = $2, name = $3, updated_at = $4 WHERE id = $5",
                )
                .bind(update.status.unwrap_or(before.status).as_str())
                .bind(update.end_time.or(before.end_time))
                .bind(update.name.as_deref().unwrap_or(&before.name))
                .bind(&tx.now)
                .bind(&id)
                .execute(&mut *tx.conn)
                .await?;
                let after = load_run(&mut *tx.conn, &id).await?;
                tx.audit(
                    "run.update",
                    &run_target(&id),
                    Some(serde_json::json!({
                        "status": before.status, "end_time": before.end_time, "name": before.name
                    })),
                    Some(serde_json::json!({
                        "status": after.status, "end_time": after.end_time, "name": after.name
                    })),
                )
                .await?;
                Ok(after)
            })
        })
        .await
    }

    async fn log_run(&self, actor: &Actor, id: &str, log: RunLog) -> Result<()> {
        validate_log(&log)?;
        let args = (id.to_string(), log);
        self.audited(actor, args, |mut tx, (id, log)| {
            Box::pin(async move {
                let row: Option<(String, String, String)> =
                    sqlx::query_as(
                        concat!("SELECT params, tags, lifecycle_stage FROM runs WHERE id = $1", row_lock!("FOR UPDATE")),
                    )
                        .bind(&id)
                        .fetch_optional(&mut *tx.conn)
                        .await?;
                let (params, tags, stage) =
                    row.ok_or_else(|| Error::not_found(format!("run {id:?}")))?;
                if stage != "active" {
                    return Err(Error::invalid(
                        "run_id",
                        format!("run {id:?} is {stage}; restore it before logging to it"),
                    ));
                }
                let mut params: BTreeMap<String, String> = parse_json("runs.params", &params)?;
                let mut tags: Tags = parse_json("runs.tags", &tags)?;
                add_params(&format!("run {id:?}"), &mut params, &log.params)?;
                tags.extend(log.tags.iter().map(|(k, v)| (k.clone(), v.clone())));
                validate::tags(&tags)?;
                sqlx::query("UPDATE runs SET params = $1, tags = $2, updated_at = $3 WHERE id = $4")
                    .bind(to_json(&params))
                    .bind(to_json(&tags))
                    .bind(&tx.now)
                    .bind(&id)
                    .execute(&mut *tx.conn)
                    .await?;
                for m in &log.metrics {
                    sqlx::query(
                        "INSERT INTO run_metrics (run_id, key, value, timestamp, step) VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(&id)
                    .bind(&m.key)
                    .bind(m.value)
                    .bind(m.timestamp)
                    .bind(m.step)
                    .execute(&mut *tx.conn)
                    .await?;
                }
                tx.audit("run.log", &run_target(&id), None, Some(to_value(&log)))
                    .await?;
                Ok(())
            })
        })
        .await
    }

    async fn metric_history(&self, run: &str, key: &str) -> Result<Vec<MetricPoint>> {
        self.read(async {
            let mut conn = self.reader().await?;
            load_run(&mut conn, run).await?;
            let rows = sqlx::query(
                "SELECT key, value, timestamp, step FROM run_metrics WHERE run_id = $1 AND key = $2
                 ORDER BY step, timestamp, id",
            )
            .bind(run)
            .bind(key)
            .fetch_all(&mut *conn)
            .await?;
            Ok(rows
                .iter()
                .map(|r| MetricPoint {
                    key: r.get("key"),
                    value: r.get("value"),
                    timestamp: r.get("timestamp"),
                    step: r.get("step"),
                })
                .collect())
        })
        .await
    }

    async fn create_logged_model(&self, actor: &Actor, new: NewLoggedModel) -> Result<LoggedModel> {
        validate::tags(&new.tags)?;
        validate_params(&new.params)?;
        if new.name.len() > 256 || new.model_type.len() > 256 {
            return Err(Error::invalid(
                "name",
                "a logged model's name and model_type are at most 256 characters",
            ));
        }
        self.audited(actor, new, |mut tx, new| {
            Box::pin(async move {
                load_experiment(&mut *tx.conn, new.experiment_id).await?;
                if let Some(run) = &new.source_run_id {
                    load_run(&mut *tx.conn, run).await?;
                }
                let id = new_logged_model_id();
                let name = if new.name.is_empty() {
                    format!("model-{}", &id[2..10])
                } else {
                    new.name.clone()
                };
                sqlx::query(
                    "INSERT INTO logged_models (id, experiment_id, name, source_run_id, model_type, status, params, tags, created_by, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, 'PENDING', $6, $7, $8, $9, $10)",
                )
                .bind(&id)
                .bind(new.experiment_id)
                .bind(&name)
                .bind(&new.source_run_id)
                .bind(&new.model_type)
                .bind(to_json(&new.params))
                .bind(to_json(&new.tags))
                .bind(&tx.actor.name)
                .bind(&tx.now)
                .bind(&tx.now)
                .execute(&mut *tx.conn)
                .await?;
                let model = load_logged_model(&mut *tx.conn, &id).await?;
                tx.audit(
                    "logged_model.create",
                    &logged_model_target(&id),
                    None,
                    Some(to_value(&model)),
                )
                .await?;
                Ok(model)
            })
        })
        .await
    }

    async fn get_logged_model(&self, id: &str) -> Result<LoggedModel> {
        self.read(async {
            let mut conn = self.reader().await?;
            load_logged_model(&mut conn, id).await
        })
        .await
    }

    async fn list_logged_models(
        &self,
        experiment_ids: &[i64],
        name: Option<&str>,
        limit: u32,
    ) -> Result<Vec<LoggedModel>> {
        self.read(async {
            let mut conn = self.reader().await?;
            let mut q =
                sqlx::QueryBuilder::<super::dialect::Db>::new("SELECT id FROM logged_models WHERE 1 = 1");
            if !experiment_ids.is_empty() {
                q.push(" AND experiment_id IN (");
                let mut ids = q.separated(", ");
                for id in experiment_ids {
                    ids.push_bind(*id);
                }
                q.push(")");
            }
            if let Some(name) = name {
                q.push(" AND name = ").push_bind(name.to_string());
            }
            q.push(" ORDER BY created_at DESC, id DESC LIMIT ")
                .push_bind(i64::from(limit));
            let ids: Vec<String> = q.build_query_scalar().fetch_all(&mut *conn).await?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                out.push(load_logged_model(&mut conn, &id).await?);
            }
            Ok(out)
        })
        .await
    }

    async fn update_logged_model(
        &self,
        actor: &Actor,
        id: &str,
        update: LoggedModelUpdate,
    ) -> Result<LoggedModel> {
        validate::tags(&update.set_tags)?;
        validate_params(&update.params)?;
        let args = (id.to_string(), update);
        self.audited(actor, args, |mut tx, (id, update)| {
            Box::pin(async move {
                sqlx::query(concat!(
                    "SELECT id FROM logged_models WHERE id = $1",
                    row_lock!("FOR UPDATE")
                ))
                .bind(&id)
                .execute(&mut *tx.conn)
                .await?;
                let before = load_logged_model(&mut *tx.conn, &id).await?;
                let mut params = before.params.clone();
                add_params(&format!("logged model {id:?}"), &mut params, &update.params)?;
                let mut tags = before.tags.clone();
                tags.extend(update.set_tags.iter().map(|(k, v)| (k.clone(), v.clone())));
                for k in &update.delete_tags {
                    tags.remove(k);
                }
                validate::tags(&tags)?;
                let status = update.status.unwrap_or(before.status);
                sqlx::query(
                    "UPDATE logged_models SET status = $1, params = $2, tags = $3, updated_at = $4 WHERE id = $5",
                )
                .bind(status.as_str())
                .bind(to_json(&params))
                .bind(to_json(&tags))
                .bind(&tx.now)
                .bind(&id)
                .execute(&mut *tx.conn)
                .await?;
                let after = load_logged_model(&mut *tx.conn, &id).await?;
                tx.audit(
                    "logged_model.update",
                    &logged_model_target(&id),
                    Some(to_value(&before)),
                    Some(to_value(&after)),
                )
                .await?;
                Ok(after)
            })
        })
        .await
    }
}
