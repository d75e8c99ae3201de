//! The `Tracking` role.

use async_trait::async_trait;

use crate::error::Result;
use crate::tracking::{
    Experiment, LoggedModel, LoggedModelUpdate, MetricPoint, NewExperiment, NewLoggedModel, NewRun,
    Run, RunLog, RunUpdate,
};
use crate::types::*;

/// The tracking store: experiments and runs (see [`crate::tracking`]).
#[async_trait]
pub trait Tracking: Send + Sync {
    async fn create_experiment(&self, actor: &Actor, new: NewExperiment) -> Result<Experiment>;

    async fn get_experiment(&self, id: i64) -> Result<Experiment>;

    async fn get_experiment_by_name(&self, name: &str) -> Result<Experiment>;

    async fn create_run(&self, actor: &Actor, new: NewRun) -> Result<Run>;

    async fn get_run(&self, id: &str) -> Result<Run>;

    async fn update_run(&self, actor: &Actor, id: &str, update: RunUpdate) -> Result<Run>;

    /// Logs metrics, parameters (write-once) and tags to a run, audited as
    /// one `run.log` entry.
    async fn log_run(&self, actor: &Actor, id: &str, log: RunLog) -> Result<()>;

    /// Every point of one metric of a run, by step, then time, then order
    /// of logging.
    async fn metric_history(&self, run: &str, key: &str) -> Result<Vec<MetricPoint>>;

    /// Audited as `logged_model.create`.
    async fn create_logged_model(&self, actor: &Actor, new: NewLoggedModel) -> Result<LoggedModel>;

    async fn get_logged_model(&self, id: &str) -> Result<LoggedModel>;

    /// Logged models of these experiments (all when empty), optionally of
    /// one name, newest first, at most `limit`.
    async fn list_logged_models(
        &self,
        experiment_ids: &[i64],
        name: Option<&str>,
        limit: u32,
    ) -> Result<Vec<LoggedModel>>;

    /// Audited as `logged_model.update`.
    async fn update_logged_model(
        &self,
        actor: &Actor,
        id: &str,
        update: LoggedModelUpdate,
    ) -> Result<LoggedModel>;
}
