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
//!   migrations in `registry/migrations/` (applied by the SQL toolkit) (`0001_registry.sql`,
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
mod error;
mod filter;
pub mod gate;
pub mod policy;
pub mod protection;
pub mod roles;
pub mod rules;
pub mod search;
mod sqlite;
pub mod tokens;
pub mod tracking;
mod types;
pub mod validate;
pub mod webhooks;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

/// The backend-free rules under their historical paths.
pub use rules::{alias, audit};

/// Every role trait, imported anonymously: `use modelwatch_registry::prelude::*`
/// makes role methods callable on a concrete store (`SqliteStore`) without
/// bringing the trait names into scope (no clash with, e.g., a caller's own
/// `Webhooks` type). Code holding `dyn RegistryStore` does not need it.
pub mod prelude {
    pub use crate::roles::{
        AlertNotices as _, Aliases as _, Audit as _, Gates as _, Models as _, Outbox as _,
        Policies as _, Recommendations as _, RegistryStore, Searches as _, Tokens as _,
        Tracking as _, Versions as _, Views as _, Webhooks as _,
    };
}

pub use alert_notices::{AlertAction, AlertHandled, AlertNotice, AlertOutcome, AlertRecord};
pub use error::{Error, Result};
pub use gate::{GateApproval, GatePolicyRecord};
pub use policy::{MonitoringPolicy, Period, PolicyRecord};
pub use protection::{AliasProtection, DEFAULT_PROTECTED_ALIASES};
pub use roles::{
    AlertNotices, Aliases, Audit, Gates, Models, Outbox, Policies, Recommendations, RegistryStats,
    RegistryStore, Searches, Tokens, Tracking, Versions, Views, Webhooks,
};
pub use search::{Condition, Field, Op, OrderBy, OrderKey, Search, SearchPage};
pub use sqlite::SqliteStore;
pub use tracking::{
    DEFAULT_EXPERIMENT_ID, Experiment, MetricPoint, NewExperiment, NewRun, Run, RunLog, RunStatus,
    RunUpdate,
};
pub use types::*;

pub use modelwatch_types::{Clock, SystemClock};
