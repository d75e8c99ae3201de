//! The tracking store: experiments and runs with their parameters, metrics
//! and tags — the minimum MLflow clients need so that a version's `run_id`
//! names a real run whose parameters and metrics become the version's
//! lineage ([`lineage_from_run`], applied by `create_version`).
//!
//! Every change (experiment creation, run creation, update, each logged
//! batch) is audited like any registry change, with the token's name as
//! actor. It must not grow into a full experiment tracker: no artifacts, no
//! datasets, no search over runs.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use crate::error::{Error, Result};
use crate::sqlite::{
    SqliteStore, append_audit, parse_json, parse_time, to_json, to_value, unique_as_exists,
};
use crate::types::{Actor, Lineage, Tags};
use crate::validate;

/// The experiment every MLflow server has; runs without one land here.
pub const DEFAULT_EXPERIMENT_ID: i64 = 0;

const MAX_BATCH: usize = 1000;
const MAX_PARAM_VALUE: usize = 6000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    pub id: i64,
    pub name: String,
    pub artifact_location: String,
    /// `active` or `deleted`.
    pub lifecycle_stage: String,
    pub tags: Tags,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NewExperiment {
    pub name: String,
    pub artifact_location: Option<String>,
    pub tags: Tags,
}

/// MLflow's run states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RunStatus {
    Running,
    Scheduled,
    Finished,
    Failed,
    Killed,
}

impl RunStatus {
    pub const ALL: [RunStatus; 5] = [
        RunStatus::Running,
        RunStatus::Scheduled,
        RunStatus::Finished,
        RunStatus::Failed,
        RunStatus::Killed,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "RUNNING",
            RunStatus::Scheduled => "SCHEDULED",
            RunStatus::Finished => "FINISHED",
            RunStatus::Failed => "FAILED",
            RunStatus::Killed => "KILLED",
        }
    }
    pub fn parse(s: &str) -> Result<Self> {
        RunStatus::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                Error::invalid(
                    "status",
                    format!(
                        "unknown run status {s:?}; expected RUNNING, SCHEDULED, FINISHED, FAILED or KILLED"
                    ),
                )
            })
    }
}

/// One metric observation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricPoint {
    pub key: String,
    pub value: f64,
    /// Epoch milliseconds.
    pub timestamp: i64,
    pub step: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// 32 lowercase hex characters.
    pub id: String,
    pub experiment_id: i64,
    pub name: String,
    pub status: RunStatus,
    /// Epoch milliseconds.
    pub start_time: Option<i64>,
    pub end_time: Option<i64>,
    pub lifecycle_stage: String,
    pub params: BTreeMap<String, String>,
    pub tags: Tags,
    /// The latest point of each metric key (highest step, then time).
    pub metrics: Vec<MetricPoint>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NewRun {
    pub experiment_id: i64,
    pub name: String,
    pub start_time: Option<i64>,
    pub tags: Tags,
}

/// Fields left `None` are not changed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunUpdate {
    pub status: Option<RunStatus>,
    pub end_time: Option<i64>,
    pub name: Option<String>,
}

/// What one `log-batch` (or `log-metric`, `log-parameter`, `set-tag`) adds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunLog {
    pub metrics: Vec<MetricPoint>,
    pub params: BTreeMap<String, String>,
    pub tags: Tags,
}

fn experiment_target(id: i64) -> String {
    format!("experiment/{id}")
}

fn run_target(id: &str) -> String {
    format!("run/{id}")
}

fn validate_log(log: &RunLog) -> Result<()> {
    let n = log.metrics.len() + log.params.len() + log.tags.len();
    if n > MAX_BATCH {
        return Err(Error::invalid(
            "batch",
            format!("{n} items in one batch; the limit is {MAX_BATCH}: split the batch"),
        ));
    }
    for m in &log.metrics {
        validate::tag_key(&m.key).map_err(|_| {
            Error::invalid("metrics", format!("{:?} is not a valid metric key", m.key))
        })?;
        if !m.value.is_finite() {
            return Err(Error::invalid(
                "metrics",
                format!(
                    "metric {:?} is {}; only finite values are stored",
                    m.key, m.value
                ),
            ));
        }
    }
    for (k, v) in &log.params {
        validate::tag_key(k)
            .map_err(|_| Error::invalid("params", format!("{k:?} is not a valid parameter key")))?;
        if v.len() > MAX_PARAM_VALUE {
            return Err(Error::invalid(
                "params",
                format!("value of parameter {k:?} is longer than {MAX_PARAM_VALUE} bytes"),
            ));
        }
    }
    validate::tags(&log.tags)
}

/// A fresh run id: 128 random bits as 32 hex characters, MLflow's shape.
fn new_run_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

fn experiment_from_row(row: &SqliteRow) -> Result<Experiment> {
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

async fn load_experiment(conn: &mut SqliteConnection, id: i64) -> Result<Experiment> {
    let row = sqlx::query("SELECT * FROM experiments WHERE id = ?")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| Error::not_found(format!("experiment {id}")))?;
    experiment_from_row(&row)
}

/// The latest point of each metric key of a run.
async fn latest_metrics(conn: &mut SqliteConnection, run: &str) -> Result<Vec<MetricPoint>> {
    let rows = sqlx::query(
        "SELECT key, value, timestamp, step FROM run_metrics m WHERE run_id = ?1 AND id = (
             SELECT id FROM run_metrics WHERE run_id = ?1 AND key = m.key
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

async fn load_run(conn: &mut SqliteConnection, id: &str) -> Result<Run> {
    let row = sqlx::query("SELECT * FROM runs WHERE id = ?")
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

/// Fills a new version's lineage from the run it names, when that run is
/// in this registry: its parameters become `lineage.parameters` and the
/// latest value of each metric `lineage.metrics`. Values given explicitly
/// in the request win. A run id this registry does not know is kept as is
/// (it may name a run in another tracking server).
pub(crate) async fn lineage_from_run(
    conn: &mut SqliteConnection,
    run_id: &str,
    lineage: &mut Lineage,
) -> Result<()> {
    let params: Option<String> = sqlx::query_scalar("SELECT params FROM runs WHERE id = ?")
        .bind(run_id)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(params) = params else {
        return Ok(());
    };
    let params: BTreeMap<String, String> = parse_json("runs.params", &params)?;
    for (k, v) in params {
        lineage.parameters.entry(k).or_insert(v);
    }
    for m in latest_metrics(conn, run_id).await? {
        lineage.metrics.entry(m.key).or_insert(m.value);
    }
    Ok(())
}

impl SqliteStore {
    pub(crate) async fn experiment_create(
        &self,
        actor: &Actor,
        new: NewExperiment,
    ) -> Result<Experiment> {
        if new.name.trim().is_empty() || new.name.len() > 256 {
            return Err(Error::invalid(
                "name",
                "an experiment name is 1-256 characters and not blank",
            ));
        }
        validate::tags(&new.tags)?;
        let now = self.now();
        let actor = actor.clone();
        self.writer
            .run(move |tx| {
                Box::pin(async move {
                    let id: i64 = sqlx::query_scalar(
                        "INSERT INTO experiments (name, artifact_location, tags, created_by, created_at, updated_at)
                         VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                    )
                    .bind(&new.name)
                    .bind(new.artifact_location.as_deref().unwrap_or(""))
                    .bind(to_json(&new.tags))
                    .bind(&actor.name)
                    .bind(&now)
                    .bind(&now)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| unique_as_exists(e, || format!("experiment {:?}", new.name)))?;
                    let experiment = load_experiment(&mut *tx, id).await?;
                    append_audit(
                        &mut *tx,
                        &now,
                        &actor,
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

    pub(crate) async fn experiment_get(&self, id: i64) -> Result<Experiment> {
        let mut conn = self.read.acquire().await?;
        load_experiment(&mut conn, id).await
    }

    pub(crate) async fn experiment_by_name(&self, name: &str) -> Result<Experiment> {
        let mut conn = self.read.acquire().await?;
        let row = sqlx::query("SELECT * FROM experiments WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| Error::not_found(format!("experiment {name:?}")))?;
        experiment_from_row(&row)
    }

    pub(crate) async fn run_create(&self, actor: &Actor, new: NewRun) -> Result<Run> {
        validate::tags(&new.tags)?;
        let now = self.now();
        let actor = actor.clone();
        self.writer
            .run(move |tx| {
                Box::pin(async move {
                    load_experiment(&mut *tx, new.experiment_id).await?;
                    let id = new_run_id();
                    sqlx::query(
                        "INSERT INTO runs (id, experiment_id, name, status, start_time, tags, created_by, created_at, updated_at)
                         VALUES (?, ?, ?, 'RUNNING', ?, ?, ?, ?, ?)",
                    )
                    .bind(&id)
                    .bind(new.experiment_id)
                    .bind(&new.name)
                    .bind(new.start_time)
                    .bind(to_json(&new.tags))
                    .bind(&actor.name)
                    .bind(&now)
                    .bind(&now)
                    .execute(&mut *tx)
                    .await?;
                    let run = load_run(&mut *tx, &id).await?;
                    append_audit(
                        &mut *tx,
                        &now,
                        &actor,
                        "run.create",
                        &run_target(&id),
                        None,
                        Some(to_value(&run)),
                    )
                    .await?;
                    Ok(run)
                })
            })
            .await
    }

    pub(crate) async fn run_get(&self, id: &str) -> Result<Run> {
        let mut conn = self.read.acquire().await?;
        load_run(&mut conn, id).await
    }

    pub(crate) async fn run_update(
        &self,
        actor: &Actor,
        id: &str,
        update: RunUpdate,
    ) -> Result<Run> {
        let now = self.now();
        let owned = (actor.clone(), id.to_string());
        self.writer
            .run(move |tx| {
                Box::pin(async move {
                    let (actor, id) = (&owned.0, owned.1.as_str());
                    let before = load_run(&mut *tx, id).await?;
                    sqlx::query(
                        "UPDATE runs SET status = ?, end_time = ?, name = ?, updated_at = ? WHERE id = ?",
                    )
                    .bind(update.status.unwrap_or(before.status).as_str())
                    .bind(update.end_time.or(before.end_time))
                    .bind(update.name.as_deref().unwrap_or(&before.name))
                    .bind(&now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                    let after = load_run(&mut *tx, id).await?;
                    append_audit(
                        &mut *tx,
                        &now,
                        actor,
                        "run.update",
                        &run_target(id),
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

    pub(crate) async fn run_log(&self, actor: &Actor, id: &str, log: RunLog) -> Result<()> {
        validate_log(&log)?;
        let now = self.now();
        let owned = (actor.clone(), id.to_string());
        self.writer
            .run(move |tx| {
                Box::pin(async move {
                    let (actor, id) = (&owned.0, owned.1.as_str());
                    let row: Option<(String, String, String)> = sqlx::query_as(
                        "SELECT params, tags, lifecycle_stage FROM runs WHERE id = ?",
                    )
                    .bind(id)
                    .fetch_optional(&mut *tx)
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
                    for (k, v) in &log.params {
                        match params.get(k) {
                            // Parameters are write-once, as in MLflow: a run
                            // has one configuration.
                            Some(old) if old != v => {
                                return Err(Error::invalid(
                                    "params",
                                    format!(
                                        "parameter {k:?} of run {id:?} is already {old:?}; parameters cannot be changed (log {v:?} under another key)"
                                    ),
                                ));
                            }
                            _ => {
                                params.insert(k.clone(), v.clone());
                            }
                        }
                    }
                    tags.extend(log.tags.iter().map(|(k, v)| (k.clone(), v.clone())));
                    validate::tags(&tags)?;
                    sqlx::query("UPDATE runs SET params = ?, tags = ?, updated_at = ? WHERE id = ?")
                        .bind(to_json(&params))
                        .bind(to_json(&tags))
                        .bind(&now)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    for m in &log.metrics {
                        sqlx::query(
                            "INSERT INTO run_metrics (run_id, key, value, timestamp, step) VALUES (?, ?, ?, ?, ?)",
                        )
                        .bind(id)
                        .bind(&m.key)
                        .bind(m.value)
                        .bind(m.timestamp)
                        .bind(m.step)
                        .execute(&mut *tx)
                        .await?;
                    }
                    append_audit(
                        &mut *tx,
                        &now,
                        actor,
                        "run.log",
                        &run_target(id),
                        None,
                        Some(to_value(&log)),
                    )
                    .await?;
                    Ok(())
                })
            })
            .await
    }
}
