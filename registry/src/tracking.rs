//! The tracking store: experiments and runs with their parameters, metrics
//! and tags — the minimum MLflow clients need so that a version's `run_id`
//! names a real run whose parameters and metrics become the version's
//! lineage ([`crate::rules::lineage::merge_run`], applied by
//! `create_version`).
//!
//! MLflow 3 logs a model as a **logged model** (an id, the run that made
//! it, its files uploaded under it) before registering a version from it;
//! [`LoggedModel`] is that record. The files themselves live in the
//! artifact store (`modelwatch-artifacts`), never here.
//!
//! Every change (experiment creation, run creation, update, each logged
//! batch, each logged model change) is audited like any registry change,
//! with the token's name as actor. It must not grow into a full experiment
//! tracker: no datasets, no search over runs.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::types::Tags;
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

/// MLflow's logged-model states: files are uploaded while `PENDING`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum LoggedModelStatus {
    Pending,
    Ready,
    Failed,
}

impl LoggedModelStatus {
    pub const ALL: [LoggedModelStatus; 3] = [
        LoggedModelStatus::Pending,
        LoggedModelStatus::Ready,
        LoggedModelStatus::Failed,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            LoggedModelStatus::Pending => "PENDING",
            LoggedModelStatus::Ready => "READY",
            LoggedModelStatus::Failed => "FAILED",
        }
    }
    pub fn parse(s: &str) -> Result<Self> {
        LoggedModelStatus::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                Error::invalid(
                    "status",
                    format!("unknown logged model status {s:?}; expected PENDING, READY or FAILED"),
                )
            })
    }
}

/// A model logged by MLflow 3 (`mlflow.<flavor>.log_model`): its files are
/// uploaded under it, then a version is registered from `models:/<id>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedModel {
    /// `m-` and 32 lowercase hex characters, MLflow's shape.
    pub id: String,
    pub experiment_id: i64,
    pub name: String,
    pub source_run_id: Option<String>,
    pub model_type: String,
    pub status: LoggedModelStatus,
    pub params: BTreeMap<String, String>,
    pub tags: Tags,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NewLoggedModel {
    pub experiment_id: i64,
    /// Empty: a generated name, as MLflow does.
    pub name: String,
    pub source_run_id: Option<String>,
    pub model_type: String,
    pub params: BTreeMap<String, String>,
    pub tags: Tags,
}

/// A change to a logged model; empty fields change nothing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoggedModelUpdate {
    pub status: Option<LoggedModelStatus>,
    pub set_tags: Tags,
    pub delete_tags: Vec<String>,
    /// Added; an existing parameter cannot change (as for runs).
    pub params: BTreeMap<String, String>,
}

pub(crate) fn logged_model_target(id: &str) -> String {
    format!("logged-model/{id}")
}

/// A fresh logged-model id: `m-` and 128 random bits in hex.
pub(crate) fn new_logged_model_id() -> String {
    format!("m-{}", hex::encode(rand::random::<[u8; 16]>()))
}

pub(crate) fn experiment_target(id: i64) -> String {
    format!("experiment/{id}")
}

pub(crate) fn run_target(id: &str) -> String {
    format!("run/{id}")
}

pub(crate) fn validate_log(log: &RunLog) -> Result<()> {
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

/// Parameters of a run or logged model: valid keys, bounded values.
pub(crate) fn validate_params(params: &BTreeMap<String, String>) -> Result<()> {
    validate_log(&RunLog {
        params: params.clone(),
        ..Default::default()
    })
}

/// A fresh run id: 128 random bits as 32 hex characters, MLflow's shape.
pub(crate) fn new_run_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// An experiment name is 1-256 characters and not blank; tags as usual.
pub(crate) fn validate_new_experiment(new: &NewExperiment) -> Result<()> {
    if new.name.trim().is_empty() || new.name.len() > 256 {
        return Err(Error::invalid(
            "name",
            "an experiment name is 1-256 characters and not blank",
        ));
    }
    validate::tags(&new.tags)
}
