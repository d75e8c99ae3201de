//! # modelwatch-client
//!
//! The native HTTP API (`/api/v1`) as Rust: its request and response types
//! ([`types`]) and a typed [`Client`] with one method per route, grouped by
//! resource (`client.models().create(&NewModel { .. })`,
//! `client.versions("fraud").get(2)`, `client.aliases("fraud").set(..)`).
//! The command line, `modelwatch demo`, the load generators and the
//! end-to-end tests all talk to the daemon through it, so the routes are
//! spelled in one place ([`routes`]) and every path segment is
//! percent-encoded there, once.
//!
//! The types mirror what the server serializes today: a reply decoded and
//! serialized again has the same fields and values. They are this crate's
//! own (it must not depend on `modelwatch-registry` or `modelwatch-server`;
//! only the shared vocabulary comes from `modelwatch-types`).
//!
//! It must not hold any server logic, decide anything for a user, or print:
//! it sends, decodes and reports failures as [`Error`] values. Protocols
//! that are not the native API (MLflow REST, OTLP, remote write bodies) are
//! out of scope beyond [`Client::mlflow`]'s raw JSON passthrough and the
//! route constants load generators need.

mod error;
mod resources;
pub mod routes;
pub mod tls;
mod transport;
pub mod types;

pub use error::{Error, Result, root_cause};
pub use resources::{
    Alerts, Aliases, Audit, GatePolicies, Mlflow, Models, Policies, Recommendations, Tokens,
    Versions, Webhooks,
};
pub use transport::Client;
pub use types::*;

/// The shared vocabulary the API's JSON uses, re-exported so callers need
/// no second import.
pub use modelwatch_types::{
    Correction, DriftMethod, ErrorSource, FeatureKind, FeaturePolicy, Features, LatencySource,
    MonitoringPolicy, MoveKind, Period, RecommendationKind, RecommendationStatus, ReferenceSource,
    Role, RollbackPolicy, Severity, Stage, Tags, VersionStatus,
};
