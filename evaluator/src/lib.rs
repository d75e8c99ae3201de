//! # modelwatch-evaluator
//!
//! The loop that closes modelwatch's circle: from telemetry back into the
//! registry. Every cycle, for each model whose monitoring policy is due (by
//! the injected clock), it takes the version the policy's alias points at,
//! measures drift of its current window against its reference, stores the
//! per-feature results, raises / refreshes / supersedes `retrain`
//! recommendations, judges a fresh deployment against the version it
//! replaced (and rolls it back when the policy allows it), and mirrors
//! health into version tags.
//!
//! It is two halves:
//! - [`decision`]: the **pure decision core**. Given the policy, the
//!   previous state and the measured statistics it returns what to do as
//!   values ([`Action`], [`Outcome`], [`Verdict`], [`Health`]). It must not
//!   do I/O, be async or read a clock; every rule has table-driven tests.
//! - [`scheduler`]: the [`Evaluator`], which reads through narrow traits
//!   ([`TelemetryReader`], `EvaluatorRegistry` (registry roles),
//!   `modelwatch_types::Clock`), calls the decision core and carries its
//!   actions out (registry writes, [`ResultsSink`], [`EvaluationEvents`]),
//!   plus the thread that runs it ([`spawn`]) and the handle that asks for
//!   a cycle now ([`EvaluatorHandle`]).
//!
//! It must not depend on the server, the history store, DataFusion, the
//! collectors or Prometheus: the server implements the traits (DataFusion
//! reads, the `drift_results` table, `/metrics` and webhooks). It must not
//! compute statistics itself (the drift crate does) nor parse requests or
//! shape HTTP replies (handlers do).
//!
//! In its own tests, and for other crates' tests with the `testing`
//! feature, it also has the `testing` module: fixtures (registry seeding,
//! an in-memory history, recorded events) that the scheduler's tests and
//! the server's evaluator scenarios share.
//!
//! It keeps no files. State that matters across a restart lives elsewhere:
//! consecutive-drift counts are re-read from the results table
//! ([`TelemetryReader::recent_dataset_drift`]), and a deployment that has a
//! rollback recommendation is never judged again (its evidence's
//! `alias_move_at`).

pub mod anomalies;
pub mod decision;
pub mod fairness;
pub mod multivariate;
pub mod performance;
pub mod ports;
pub mod report;
pub mod scheduler;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use anomalies::{AnomalyOutcome, AnomalyRow};
pub use decision::{
    Action, Change, EVALUATOR_ACTOR, FeatureInputs, HEALTH_TAG, Health, Outcome, QualityBreach,
    QualityRow, RECOMMENDATION_TAG, Verdict,
};
pub use fairness::{AttributeFairness, FairnessReport};
pub use performance::{OutcomeRows, PerformanceReport};
pub use ports::{
    AnomalyKey, DriftResults, EXACT_VALUES_LIMIT, EvaluationEvents, EvaluationKey,
    EvaluatorRegistry, Fanout, FeatureSet, FeatureValues, NoEvents, PROFILE_VALUES_BUDGET, Profile,
    ROW_VALUES_BUDGET, ResultsSink, RollbackDone, RowColumns, TelemetryReader, Traffic, Window,
    exact_values_limit,
};
pub use report::{
    CycleReport, FairnessOutcome, PerformanceOutcome, RecommendationAction, VersionOutcome,
};
pub use scheduler::{EVALUATOR_NICE, Evaluator, EvaluatorHandle, spawn};

/// A reader's or sink's own error, kept as the source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why an evaluation (or a request for one) failed.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The telemetry reader failed.
    #[error("history query failed: {0}")]
    Telemetry(#[source] BoxError),
    #[error(transparent)]
    Registry(#[from] modelwatch_registry::Error),
    /// The results sink failed.
    #[error("could not store drift results: {0}")]
    Results(#[source] BoxError),
    /// The stored policy (or a value derived from it) is unusable.
    #[error("invalid monitoring policy: {0}")]
    Policy(String),
    #[error("the evaluator is not running (the daemon is shutting down)")]
    Stopped,
    #[error(
        "the evaluation panicked: {0}; this is a modelwatch bug, the daemon's log has the details"
    )]
    Panicked(String),
}

impl EvalError {
    /// A telemetry reader's error.
    pub fn telemetry(e: impl Into<BoxError>) -> Self {
        EvalError::Telemetry(e.into())
    }
    /// A results sink's error.
    pub fn results(e: impl Into<BoxError>) -> Self {
        EvalError::Results(e.into())
    }
}

pub type Result<T, E = EvalError> = std::result::Result<T, E>;
