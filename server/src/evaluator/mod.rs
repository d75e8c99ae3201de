//! The evaluator's server side: the loop itself (rules and scheduling) is
//! `modelwatch-evaluator`; here are the parts that need the history store
//! and DataFusion:
//! - [`data`]: [`DataFusionReader`], the evaluator's `TelemetryReader`
//!   (feature profiles, span latencies and errors, gauges, histogram
//!   latencies, counter increases, recent `drift_results`);
//! - [`results`]: the `drift_results` table (schema, rows, [`HistoryResults`]
//!   the evaluator's `ResultsSink`, the newest evaluation for gates).
//!
//! `/metrics` (`crate::metrics::EvaluatorMetricsEvents`) and outbound webhooks
//! (`crate::webhooks::Webhooks`) implement its `EvaluationEvents`.

pub mod data;
pub mod results;

use std::sync::Arc;

use modelwatch_history::HistoryStore;
use modelwatch_types::Clock;

pub use data::DataFusionReader;
pub use modelwatch_evaluator::{
    CycleReport, EVALUATOR_ACTOR, EvalError, EvaluationEvents, Evaluator, EvaluatorHandle,
    HEALTH_TAG, RECOMMENDATION_TAG, RecommendationAction, VersionOutcome,
};
pub use results::HistoryResults;

/// The evaluator over this daemon's history store, reporting to `/metrics`;
/// add listeners with [`Evaluator::with_events`] and
/// `modelwatch_evaluator::Fanout`.
pub fn evaluator(
    registry: Arc<dyn modelwatch_evaluator::EvaluatorRegistry>,
    history: HistoryStore,
    clock: Arc<dyn Clock>,
) -> Evaluator {
    Evaluator::new(
        registry,
        Arc::new(DataFusionReader::new(history.clone())),
        Arc::new(HistoryResults::new(history)),
        clock,
    )
    .with_events(Arc::new(crate::metrics::EvaluatorMetricsEvents))
}

/// Starts the evaluator on its own thread (see `modelwatch_evaluator::spawn`),
/// as the background duty `evaluator`.
/// Its scheduled cycles run while this daemon holds the evaluator's lease
/// (`fence`); its writes go through a store fenced by it.
pub fn spawn(
    evaluator: Arc<Evaluator>,
    stop: tokio::sync::watch::Receiver<bool>,
    duties: &crate::duties::Duties,
    fence: Arc<modelwatch_registry::DutyFence>,
) -> std::io::Result<(EvaluatorHandle, std::thread::JoinHandle<()>)> {
    let guard = duties.guard(crate::duties::names::EVALUATOR);
    modelwatch_evaluator::spawn(evaluator, stop, guard, move || fence.held().is_some())
}
