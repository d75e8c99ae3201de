//! The daemon's own traces (`--otlp-traces-endpoint`): one modelwatch
//! exports its request spans over OTLP/HTTP to a second modelwatch acting as
//! the trace receiver, and the spans are read back there with SQL.
//!
//! modelwatch keeps only spans attributed to a model, and it does not
//! pretend to be one: its spans carry `service.name=modelwatch` and
//! `service.version`, nothing else. So the receiver is told to attribute by
//! those (`--otlp-model-attribute service.name --otlp-version-attribute
//! service.version`), which is how a modelwatch would be used to keep another
//! one's traces; a trace backend (Jaeger, Tempo, a Collector) needs nothing.

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn request_spans_reach_an_otlp_receiver_and_are_flushed_on_sigterm() {
    let receiver = Daemon::start_with(Start {
        args: [
            "--otlp-model-attribute",
            "service.name",
            "--otlp-version-attribute",
            "service.version",
        ]
        .map(String::from)
        .to_vec(),
        ..Default::default()
    });
    let ingest = receiver.http().token("traces-in", "ingest").await;
    let endpoint = format!(
        "{}/v1/traces",
        receiver.otlp_http_url.clone().expect("OTLP/HTTP listener")
    );
    let sender = Daemon::start_with(Start {
        args: vec!["--otlp-traces-endpoint".into(), endpoint.clone()],
        // The exporter's headers come from the standard OpenTelemetry variable.
        env: vec![(
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS".into(),
            format!("authorization=Bearer%20{ingest}"),
        )],
        ..Default::default()
    });
    let (status, body) = sender
        .http()
        .post("/api/v1/models", json!({ "name": "traced-model" }))
        .await;
    assert_eq!(status, 201, "{body}");

    // The batch exporter holds the span; a graceful stop must flush it.
    let (exit, log) = sender.terminate();
    assert!(exit.success(), "{log}");
    assert!(
        log.contains("exporting the daemon's own traces"),
        "the start is logged with the endpoint: {log}"
    );

    let rows = sql(
        &receiver.http(),
        "SELECT model, version, name, attributes['method'] AS method, \
         attributes['path'] AS path, duration_ms FROM spans \
         WHERE model = 'modelwatch' AND name = 'request' ORDER BY ts",
    )
    .await["rows"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let create = rows
        .iter()
        .find(|r| r["path"] == "/api/v1/models" && r["method"] == "POST")
        .unwrap_or_else(|| panic!("no request span of the sender in {rows:?}"));
    assert_eq!(create["version"], env!("CARGO_PKG_VERSION"), "{create}");
    assert!(
        create["duration_ms"].as_f64().unwrap_or(-1.0) >= 0.0,
        "{create}"
    );
}

#[tokio::test]
async fn traces_endpoint_must_be_an_http_or_https_url() {
    let out = std::process::Command::new(binary())
        .args([
            "serve",
            "--data-dir",
            "/nonexistent/never-created",
            "--otlp-traces-endpoint",
            "grpc://collector:4317",
        ])
        .output()
        .expect("run modelwatch");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("must start with http:// or https://"),
        "{}",
        stderr(&out)
    );
}
