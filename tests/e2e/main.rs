//! End-to-end tests against the real `modelwatch` binary: it is started on
//! an ephemeral port with a temporary data directory and driven over HTTP
//! and through its own CLI. Build the binary first (`cargo build --bins`;
//! `.ci/run` does).

mod access;
mod alerts;
mod artifact_gc;
mod artifacts;
mod audit_anchors;
mod backup;
mod cluster;
mod dashboards;
mod demo;
mod docs;
mod estimation;
mod fairness;
mod gates;
mod hardening;
mod labels;
mod layout;
mod mlflow;
mod monitoring;
mod oidc;
mod otlp;
mod own_traces;
mod pgwire;
mod prometheus;
mod registry;
mod serve;
mod support;
mod telemetry;
mod tls;
mod ui;
mod upload;
mod webhooks;
