//! # modelwatch-tools
//!
//! What the `modelwatch` binary offers beside the daemon and the registry
//! commands, and what the daemon itself never needs: `modelwatch demo` (a
//! child `modelwatch serve`, a scripted story and a simulated fleet sending
//! OTLP through the OpenTelemetry SDK and exporter) and the load generators
//! behind `modelwatch bench …` (registry, remote write, OTLP over HTTP and
//! gRPC, uploads, evaluator, MLflow REST). The clap argument types live
//! here next to the code that reads them; the binary wires them into its
//! command tree and calls in.
//!
//! It talks to a daemon only over the network, through
//! `modelwatch-client` (or raw HTTP/gRPC where a load generator must send
//! pre-encoded bodies at full speed). It must not depend on
//! `modelwatch-server` or `modelwatch-registry`: the OTLP exporter, tonic's
//! client channel and the benchmarks' encoders stay out of the server's
//! dependency tree. Wire encodings come from `modelwatch-collectors`, so
//! what is sent is exactly what the daemon decodes. `bench sql` runs the
//! server's SQL engine in process and so stays in the binary.

pub mod bench;
pub mod bench_evaluate;
pub mod bench_mlflow;
pub mod bench_otlp;
pub mod bench_remote_write;
pub mod bench_ui;
pub mod bench_upload;
pub mod demo;
mod demo_fleet;
mod error;
pub mod report;

pub use error::{Error, Result};
