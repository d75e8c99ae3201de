//! # modelwatch-registry
//!
//! The model registry: models, versions with their lineage, tags, aliases
//! with the full history of their moves, recommendations and their
//! lifecycle, API tokens, outbound webhook subscriptions with their delivery
//! queue, promotion gate policies (Rego text, evaluated by the daemon),
//! experiments and runs (MLflow tracking), and the hash-chained audit log
//! that records every change in the same transaction as the change itself.
//!
//! ## Layout
//! - **Roles** ([`roles`]): one small async trait per kind of record —
//!   [`Views`], [`Models`], [`Versions`], [`Aliases`], [`Recommendations`],
//!   [`Audit`], [`Tokens`], [`Policies`], [`Webhooks`], [`Outbox`],
//!   [`AlertNotices`], [`Tracking`], [`Gates`], [`Searches`]. A component
//!   takes the roles it needs; the daemon wires everything as
//!   `Arc<dyn RegistryStore>`, the supertrait of all roles (blanket impl).
//!   Role methods resolve on `dyn RegistryStore` without importing the
//!   roles; on a concrete [`SqliteStore`], `use
//!   modelwatch_registry::prelude::*`.
//! - **Rules** ([`rules`]): what every backend must decide the same way,
//!   as pure functions without SQL or async — the alias deployment stack
//!   ([`alias`]), the recommendation lifecycle, audit append and chain
//!   hashing ([`audit`]), the outbox mapping (audit entry → event →
//!   deliveries) and lineage from a tracking run. Validation
//!   ([`validate`]) and the records are
//!   backend-free too.
//! - **One filter compiler** (`filter.rs`, private): native listing
//!   filters and MLflow search conditions become the same predicates; a
//!   backend only renders them in its dialect.
//! - **Backends**: all SQL lives under `sqlite/` (and `postgres/` when it
//!   comes): [`SqliteStore`], its group-commit writer, one file per role,
//!   and the one `audited(...)` shape of a change (statements plus audit
//!   entry in one transaction on the writer). Nothing outside a backend
//!   touches the database library.
//! - **Anchors** ([`anchor`]): signed checkpoints of the audit chain head —
//!   their format, Ed25519 keys, the pure check of a chain against them,
//!   and the anchor files (written once, never overwritten).
//! - **Conformance** (`conformance`, with `cfg(test)` or the
//!   `conformance` feature): the registry's behaviour written once against
//!   the roles; `conformance_suite!` runs it on a backend. SQLite runs it
//!   in its tests; PostgreSQL runs it a second time.
//!
//! It must not know about HTTP, telemetry or statistics: it stores records
//! and enforces their invariants (unique, gapless version numbers; one open
//! recommendation per kind per version; an unbroken audit chain; protected
//! aliases checked inside the change's transaction). Nothing outside a
//! backend writes SQL, and no backend restates a rule: it calls [`rules`].
//!
//! ## On-disk format
//! - `registry.sqlite` in the data directory, schema managed by versioned
//!   migrations in `registry/migrations/`, applied at open
//!   (`0001_registry.sql`, `0002_version_features.sql`,
//!   `0003_monitoring_policies.sql`, `0004_webhooks.sql`,
//!   `0005_gate_policies.sql`, `0006_mlflow_stages_tracking.sql`: version
//!   stages, experiments, runs and run metrics;
//!   `0007_alert_notifications.sql`). Timestamps are RFC 3339 UTC text with
//!   microseconds.
//! - Audit chain format version 1, described in [`audit`].
//! - Token secrets are never stored, only `sha256(secret)` in hex
//!   ([`tokens::hash_secret`]). Webhook signing secrets are stored as given
//!   (they sign every payload) and never leave the store except to the
//!   sender ([`webhooks`]).

/// Declares, inside a SQL backend's module, the files it shares with the
/// other SQL backend (`src/sql/`): the role implementations, the row
/// readers, the filter renderer and a change's `Tx`. Each is
/// compiled once per backend; its `super` is the backend, which supplies
/// `dialect` (types, SQL fragments, locks), `audited` and the store.
macro_rules! sql_backend_modules {
    () => {
        #[allow(clippy::duplicate_mod, reason = "compiled once per SQL backend")]
        #[path = "../sql/alert_notices.rs"]
        mod alert_notices;
        #[allow(clippy::duplicate_mod, reason = "compiled once per SQL backend")]
        #[path = "../sql/aliases.rs"]
        mod aliases;
        #[allow(clippy::duplicate_mod, reason = "compiled once per SQL backend")]
        #[path = "../sql/audit.rs"]
        mod audit;
        #[allow(clippy::duplicate_mod, reason = "compiled once per SQL backend")]
        #[path = "../sql/cluster.rs"]
        mod cluster;
        #[allow(clippy::duplicate_mod, reason = "compiled once per SQL backend")]
        #[path = "../sql/filter.rs"]
        mod filter;
        #[allow(clippy::duplicate_mod, reason = "compiled once per SQL backend")]
        #[path = "../sql/gates.rs"]
        mod gates;
        #[allow(clippy::duplicate_mod, reason = "compiled once per SQL backend")]
        #[path = "../sql/models.rs"]
        mod models;
        #[allow(clippy::duplicate_mod, reason = "compiled once per SQL backend")]
        #[path = "../sql/outbox.rs"]
        mod outbox;
        #[allow(clippy::duplicate_mod, reason = "compiled once per SQL backend")]
        #[path = "../sql/policies.rs"]
        mod policies;
        #[allow(clippy::duplicate_mod, reason = "compiled once per SQL backend")]
        #[path = "../sql/recommendations.rs"]
        mod recommendations;
        #[allow(clippy::duplicate_mod, reason = "compiled once per SQL backend")]
        #[path = "../sql/records.rs"]
        mod records;
        #[allow(clippy::duplicate_mod, reason = "compiled once per SQL backend")]
        #[path = "../sql/search.rs"]
        mod search;
        #[allow(clippy::duplicate_mod, reason = "compiled once per SQL backend")]
        #[path = "../sql/tokens.rs"]
        mod tokens;
        #[allow(clippy::duplicate_mod, reason = "compiled once per SQL backend")]
        #[path = "../sql/tracking.rs"]
        mod tracking;
        #[allow(clippy::duplicate_mod, reason = "compiled once per SQL backend")]
        #[path = "../sql/tx.rs"]
        mod tx;
        #[allow(clippy::duplicate_mod, reason = "compiled once per SQL backend")]
        #[path = "../sql/versions.rs"]
        mod versions;
        #[allow(clippy::duplicate_mod, reason = "compiled once per SQL backend")]
        #[path = "../sql/views.rs"]
        mod views;
        #[allow(clippy::duplicate_mod, reason = "compiled once per SQL backend")]
        #[path = "../sql/webhooks.rs"]
        mod webhooks;
    };
}
pub(crate) use sql_backend_modules;

pub mod alert_notices;
pub mod anchor;
pub mod cluster;
mod error;
mod filter;
pub mod gate;
pub mod policy;
mod postgres;
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
/// A throwaway PostgreSQL server for tests (declared here, filed beside the
/// conformance suite it serves).
#[cfg(any(test, feature = "conformance"))]
#[path = "conformance/postgres_server.rs"]
pub mod postgres_server;

/// The backend-free rules under their historical paths.
pub use rules::{alias, audit};

/// Every role trait, imported anonymously: `use modelwatch_registry::prelude::*`
/// makes role methods callable on a concrete store (`SqliteStore`) without
/// bringing the trait names into scope (no clash with, e.g., a caller's own
/// `Webhooks` type). Code holding `dyn RegistryStore` does not need it.
pub mod prelude {
    pub use crate::roles::{
        AlertNotices as _, Aliases as _, Audit as _, Cluster as _, Gates as _, Models as _,
        Outbox as _, Policies as _, Recommendations as _, RegistryStore, Searches as _,
        Tokens as _, Tracking as _, Versions as _, Views as _, Webhooks as _,
    };
}

pub use alert_notices::{AlertAction, AlertHandled, AlertNotice, AlertOutcome, AlertRecord};
pub use cluster::{Announcement, DutyFence, HeldLease};
pub use error::{Error, Result};
pub use gate::{GateApproval, GatePolicyRecord};
pub use policy::{MonitoringPolicy, Period, PolicyRecord};
pub use postgres::{ImportProgress, ImportReport, PgStore, PoolLimits};
pub use protection::{AliasProtection, DEFAULT_PROTECTED_ALIASES};
pub use roles::{
    AlertNotices, Aliases, Audit, Cluster, Gates, Models, Outbox, Policies, Recommendations,
    RegistryStats, RegistryStore, Searches, Tokens, Tracking, Versions, Views, Webhooks,
};
pub use search::{Condition, Field, Op, OrderBy, OrderKey, Search, SearchPage};
pub use sqlite::SqliteStore;
pub use tracking::{
    DEFAULT_EXPERIMENT_ID, Experiment, LoggedModel, LoggedModelStatus, LoggedModelUpdate,
    MetricPoint, NewExperiment, NewLoggedModel, NewRun, Run, RunLog, RunStatus, RunUpdate,
};
pub use types::*;

pub use modelwatch_types::{Clock, SystemClock};
