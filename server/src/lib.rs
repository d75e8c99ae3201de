//! # modelwatch-server
//!
//! The running daemon: configuration ([`config`]), the HTTP API with its thin handlers ([`http`]), authentication
//! ([`auth`]), rate-limited log lines ([`logging`]), the
//! `serve` wiring ([`startup`]), telemetry ingest wiring
//! ([`telemetry`]), batch uploads ([`upload`]), read-only SQL over history
//! and registry ([`sql`]) and the same SQL over the PostgreSQL wire
//! ([`pgwire`]), the evaluator ([`evaluator`]), promotion gates in Rego
//! ([`gate`]), the Alertmanager receiver ([`alerts`]) and outbound webhooks
//! ([`webhooks`]), and a version's files over the artifact store
//! ([`artifacts`]) with their garbage collection ([`artifact_gc`]).
//!
//! It must not hold domain logic: registry rules live in
//! `modelwatch-registry`, storage in `modelwatch-history`, decoding in
//! `modelwatch-collectors`, statistics in `modelwatch-drift`. Handlers
//! authorize, extract, call those crates and shape the reply; errors become
//! HTTP responses in exactly one place ([`http::error`]).

//!
//! It must not depend on the command line, the load generators or the demo
//! (`modelwatch`, `modelwatch-tools`): no OTLP exporter, no tonic client
//! channel, no progress bars. Those crates depend on this one, never the
//! reverse.

pub mod alerts;
pub mod artifact_gc;
pub mod artifacts;
pub mod audit_anchor;
pub mod auth;
pub mod backup;
pub mod cluster;
pub mod config;
pub mod duties;
pub mod evaluator;
pub mod gate;
pub mod grpc;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod oidc;
pub mod pgwire;
pub mod sql;
pub mod startup;
pub mod telemetry;
pub mod tls;
pub mod ui;
pub mod upload;
pub mod webhooks;
