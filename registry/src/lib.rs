//! # modelwatch-registry
//!
//! The model registry: models, versions with their lineage, tags, aliases
//! with the full history of their moves, recommendations and their
//! lifecycle, API tokens, outbound webhook subscriptions with their delivery
//! queue, promotion gate policies (Rego text, evaluated by the daemon), and the hash-chained audit log that records every change in the
//! same transaction as the change itself.
//!
//! The daemon talks to it through the [`RegistryStore`] trait; SQLite
//! ([`SqliteStore`]) is the embedded default and PostgreSQL fills the same
//! trait later. Validation ([`validate`]), the audit chain ([`audit`]) and
//! rollback resolution ([`alias`]) are backend-independent.
//!
//! It must not know about HTTP, telemetry or statistics: it stores records
//! and enforces their invariants (unique, gapless version numbers; one open
//! recommendation per kind per version; an unbroken audit chain).
//!
//! ## On-disk format
//! - `registry.sqlite` in the data directory, schema managed by versioned
//!   sqlx migrations in `registry/migrations/` (`0001_registry.sql`,
//!   `0002_version_features.sql`, `0003_monitoring_policies.sql`,
//!   `0004_webhooks.sql`, `0005_gate_policies.sql`,
//!   `0006_mlflow_stages_tracking.sql`: version stages, experiments, runs
//!   and run metrics; `0007_alert_notifications.sql`). Timestamps are
//!   RFC 3339 UTC text with microseconds.
//! - Audit chain format version 1, described in [`audit`].
//! - Token secrets are never stored, only `sha256(secret)` in hex
//!   ([`tokens::hash_secret`]). Webhook signing secrets are stored as given
//!   (they sign every payload) and never leave the store except to the
//!   sender ([`webhooks`]).

pub mod alert_notices;
pub mod alias;
pub mod audit;
mod error;
pub mod gate;
pub mod policy;
pub mod protection;
pub mod search;
mod sqlite;
mod store;
pub mod tokens;
pub mod tracking;
mod types;
pub mod validate;
pub mod webhooks;
mod writer;

pub use alert_notices::{AlertAction, AlertHandled, AlertNotice, AlertOutcome, AlertRecord};
pub use error::{Error, Result};
pub use gate::{GateApproval, GatePolicyRecord};
pub use policy::{MonitoringPolicy, Period, PolicyRecord};
pub use protection::{AliasProtection, DEFAULT_PROTECTED_ALIASES};
pub use search::{Condition, Field, Op, OrderBy, OrderKey, Search, SearchPage};
pub use sqlite::SqliteStore;
pub use store::RegistryStore;
pub use tracking::{
    DEFAULT_EXPERIMENT_ID, Experiment, MetricPoint, NewExperiment, NewRun, Run, RunLog, RunStatus,
    RunUpdate,
};
pub use types::*;
pub use writer::RegistryStats;

pub use modelwatch_types::{Clock, SystemClock};

#[cfg(test)]
mod store_tests;

#[cfg(test)]
mod search_tests;
