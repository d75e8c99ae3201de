//! Logging and, when configured, the daemon's own traces.
//!
//! Logs go to stderr (human or JSON lines) through `tracing-subscriber`,
//! filtered by `--log`. With `--otlp-traces-endpoint URL` a second layer
//! (`tracing-opentelemetry`) turns the `tracing` spans of modelwatch's own
//! crates (targets `modelwatch*`, level INFO and above: request spans, gRPC
//! exports, uploads, background work) into OpenTelemetry spans, which a
//! batch processor on its own thread exports over OTLP/HTTP protobuf with
//! resource `service.name=modelwatch`, `service.version=<crate version>`.
//! Headers (e.g. `authorization`) come from the OpenTelemetry environment
//! variables `OTEL_EXPORTER_OTLP_TRACES_HEADERS` / `OTEL_EXPORTER_OTLP_HEADERS`,
//! and extra resource attributes from `OTEL_RESOURCE_ATTRIBUTES`.
//!
//! This module must not let the exporter trace itself: only modelwatch's
//! targets reach the OpenTelemetry layer, never those of reqwest, hyper or
//! the OpenTelemetry crates, so an export never produces spans to export.
//! It must not block the async reactor: shutting the provider down (which
//! flushes what is queued) runs on a blocking thread.

use anyhow::Context;
use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use modelwatch_server::config::LogFormat;

/// The `service.name` of the daemon's own spans.
pub const SERVICE_NAME: &str = "modelwatch";

/// Keeps the trace exporter alive; [`Guard::shutdown`] flushes it.
#[derive(Debug, Default)]
#[must_use = "call shutdown() at exit so queued spans are exported"]
pub struct Guard {
    provider: Option<SdkTracerProvider>,
}

impl Guard {
    /// Exports the spans still queued and stops the exporter (bounded by
    /// the exporter's timeout). Nothing to do when tracing is off.
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        let result = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        match result {
            Ok(Ok(())) => tracing::debug!("own traces flushed"),
            Ok(Err(e)) => tracing::warn!(error = %e, "flushing the daemon's own traces failed"),
            Err(e) => tracing::warn!(error = %e, "flushing the daemon's own traces panicked"),
        }
    }
}

/// Installs the global subscriber: the stderr log and, with an endpoint,
/// the OTLP trace export. Fails only when the exporter cannot be built.
pub fn init(
    format: LogFormat,
    filter: &str,
    traces_endpoint: Option<&str>,
) -> anyhow::Result<Guard> {
    let env_filter = EnvFilter::try_new(filter).unwrap_or_else(|e| {
        eprintln!("warning: invalid log filter {filter:?} ({e}); using \"info\"");
        EnvFilter::new("info")
    });
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let fmt = match format {
        LogFormat::Human => fmt.boxed(),
        LogFormat::Json => fmt.json().flatten_event(true).boxed(),
    };
    let provider = traces_endpoint.map(tracer_provider).transpose()?;
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("modelwatch"))
            .with_filter(own_targets())
    });
    tracing_subscriber::registry()
        .with(fmt.with_filter(env_filter))
        .with(otel)
        .init();
    if let Some(url) = traces_endpoint {
        tracing::info!(endpoint = %url, "exporting the daemon's own traces over OTLP/HTTP");
    }
    Ok(Guard { provider })
}

/// modelwatch's own crates (`modelwatch`, `modelwatch_history`, …) at INFO
/// and above; everything else (HTTP clients, the exporter) stays out.
fn own_targets() -> Targets {
    Targets::new()
        .with_target("modelwatch", LevelFilter::INFO)
        .with_default(LevelFilter::OFF)
}

fn tracer_provider(endpoint: &str) -> anyhow::Result<SdkTracerProvider> {
    let exporter = SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(endpoint)
        .build()
        .with_context(|| format!("cannot set up the OTLP trace exporter for {endpoint}"))?;
    let resource = Resource::builder()
        .with_service_name(SERVICE_NAME)
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_modelwatch_targets_are_exported() {
        let t = own_targets();
        let enabled = |target: &str, level| t.would_enable(target, &level);
        assert!(enabled("modelwatch::http", tracing::Level::INFO));
        assert!(enabled("modelwatch_history::store", tracing::Level::WARN));
        assert!(!enabled("modelwatch::http", tracing::Level::DEBUG));
        assert!(!enabled("reqwest::connect", tracing::Level::INFO));
        assert!(!enabled("opentelemetry_sdk", tracing::Level::ERROR));
        assert!(!enabled("hyper_util::client", tracing::Level::INFO));
    }
}
