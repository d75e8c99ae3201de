//! `modelwatch bench mlflow`: throughput and latency of the MLflow REST
//! calls a deployment pipeline makes most, over loopback HTTP, against any
//! server that speaks MLflow's REST API — modelwatch's
//! `/api/2.0/mlflow/` or `mlflow server` itself — so both are measured by
//! the same generator in one run (`scripts/bench-mlflow.sh`).
//!
//! Calls, one phase each: `model-versions/create`, `registered-models/alias`
//! set (POST) and lookup (GET), `model-versions/search` by run id, and
//! `model-versions/set-tag`. It must not use anything beyond MLflow's own
//! protocol, or the comparison would not be like for like.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use reqwest::Method;
use serde_json::{Value, json};

use modelwatch_client::Client;

use crate::bench::{PhaseResult, phase, print_results};
use crate::error::Result;
use crate::report;

#[derive(Debug, Args)]
pub struct MlflowBenchArgs {
    /// Concurrent requests in flight.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds per phase.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Name of the server in the report (e.g. `modelwatch`, `mlflow`).
    #[arg(long, default_value = "server")]
    label: String,
}

/// Versions the alias and tag phases spread over.
const SPREAD: usize = 100;
/// Distinct run ids among created versions (the search phase's keys).
const RUNS: usize = 1000;

fn query(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// One call of a phase: method, path under `/api/2.0/mlflow`, JSON body.
type Call = (Method, String, Option<Value>);

/// The phases, in order; each builds its `i`-th request for the model.
type MakeCall = fn(&str, usize) -> Call;

const CALLS: [(&str, MakeCall); 5] = [
    ("model-versions/create", |m, i| {
        let body = json!({
            "name": m,
            "source": format!("s3://bench/{m}/{i}"),
            "run_id": format!("run{}", i % RUNS),
        });
        (Method::POST, "/model-versions/create".into(), Some(body))
    }),
    ("alias set", |m, i| {
        let body = json!({
            "name": m,
            "alias": format!("a{}", i % 10),
            "version": (1 + i % SPREAD).to_string(),
        });
        (Method::POST, "/registered-models/alias".into(), Some(body))
    }),
    ("alias get", |m, i| {
        let q = query(&[("name", m), ("alias", &format!("a{}", i % 10))]);
        (Method::GET, format!("/registered-models/alias?{q}"), None)
    }),
    ("model-versions/search", |m, i| {
        let filter = format!("name = '{m}' AND run_id = 'run{}'", i % RUNS);
        let q = query(&[("filter", &filter), ("max_results", "10")]);
        (Method::GET, format!("/model-versions/search?{q}"), None)
    }),
    ("model-versions/set-tag", |m, i| {
        let body = json!({
            "name": m,
            "version": (1 + i % SPREAD).to_string(),
            "key": format!("k{}", i % 10),
            "value": i.to_string(),
        });
        (Method::POST, "/model-versions/set-tag".into(), Some(body))
    }),
];

/// `modelwatch bench mlflow`.
pub async fn run(client: &Client, json: bool, args: MlflowBenchArgs) -> Result<ExitCode> {
    let client = Arc::new(client.clone());
    let model = format!("bench-{}", chrono::Utc::now().format("%Y%m%d%H%M%S%f"));
    client
        .mlflow()
        .call(
            Method::POST,
            "/registered-models/create",
            Some(&json!({ "name": model })),
        )
        .await?;
    // Versions for the alias and tag phases exist before they start, so
    // every phase measures the same work whatever the server's speed.
    for i in 0..SPREAD {
        let (method, path, body) = (CALLS[0].1)(&model, i);
        client.mlflow().call(method, &path, body.as_ref()).await?;
    }
    let duration = Duration::from_secs(args.seconds);
    let c = args.concurrency;
    eprintln!(
        "benchmarking MLflow REST at {} ({}) with {c} concurrent requests, {}s per phase (model {model})",
        client.base_url(),
        args.label,
        args.seconds
    );

    let mut results: Vec<PhaseResult> = Vec::new();
    for (name, request) in CALLS {
        let (cl, m) = (client.clone(), model.clone());
        results.push(
            phase(name, c, duration, move |i| {
                let cl = cl.clone();
                let (method, path, body) = request(&m, i);
                async move {
                    cl.mlflow()
                        .call(method, &path, body.as_ref())
                        .await
                        .map(drop)
                }
            })
            .await,
        );
    }

    if json {
        println!(
            "{}",
            json!({ "label": args.label, "url": client.base_url(), "concurrency": c, "phases": results })
        );
    } else {
        print_results(&results);
    }
    Ok(report::exit_code(results.iter().map(|r| r.errors).sum()))
}
