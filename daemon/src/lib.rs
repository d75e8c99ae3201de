//! # modelwatch (daemon)
//!
//! The binary's library half: configuration ([`config`]), the command line
//! ([`cli`]), the HTTP API with its thin handlers ([`http`]), authentication
//! ([`auth`]), logging and the daemon's own traces ([`logging`]), the
//! `serve` wiring ([`server`]), telemetry ingest wiring
//! ([`telemetry`]), batch uploads ([`upload`]), read-only SQL over history
//! and registry ([`sql`]) and the same SQL over the PostgreSQL wire
//! ([`pgwire`]), the evaluator ([`evaluator`]), promotion gates in Rego
//! ([`gate`]), the Alertmanager receiver ([`alerts`]) and outbound webhooks
//! ([`webhooks`]).
//!
//! It must not hold domain logic: registry rules live in
//! `modelwatch-registry`, storage in `modelwatch-history`, decoding in
//! `modelwatch-collectors`, statistics in `modelwatch-drift`. Handlers
//! authorize, extract, call those crates and shape the reply; errors become
//! HTTP responses in exactly one place ([`http::error`]).

pub mod alerts;
pub mod auth;
pub mod cli;
pub mod config;
pub mod duties;
pub mod evaluator;
pub mod gate;
pub mod grpc;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod pgwire;
pub mod server;
pub mod sql;
pub mod telemetry;
pub mod upload;
pub mod webhooks;
