"""Sends metrics, logs and a span to modelwatch with the official Python
OpenTelemetry SDK and its OTLP/HTTP (protobuf) exporters.

Usage: otlp_export.py OTLP_HTTP_BASE_URL TOKEN

Run by the Rust end-to-end test `otlp::python_exporter_over_http_...`, which
then reads the rows back with SQL. Exits non-zero if any export failed.
"""

import sys
import time

from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import LogRecordExportResult, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExportResult, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry._logs import SeverityNumber
from opentelemetry.trace import Status, StatusCode

failures = []


def checked(exporter_class, success):
    """The exporter, remembering every export that did not succeed."""

    class Checked(exporter_class):
        def export(self, *args, **kwargs):
            result = super().export(*args, **kwargs)
            if result != success:
                failures.append(f"{exporter_class.__name__}: {result}")
            return result

    return Checked


def main(base, token):
    headers = {"Authorization": f"Bearer {token}"}
    resource = Resource.create(
        {"service.name": "churn-api", "model.name": "churn", "model.version": "py-7"}
    )

    metric_exporter = checked(OTLPMetricExporter, MetricExportResult.SUCCESS)(
        endpoint=f"{base}/v1/metrics", headers=headers
    )
    # A long interval: the one export happens at shutdown (cumulative
    # temporality would otherwise export the same points twice).
    reader = PeriodicExportingMetricReader(metric_exporter, export_interval_millis=3_600_000)
    meters = MeterProvider(
        resource=resource,
        metric_readers=[reader],
        views=[
            View(
                instrument_name="score_latency",
                aggregation=ExplicitBucketHistogramAggregation(boundaries=[0.1, 1.0]),
            )
        ],
    )
    meter = meters.get_meter("modelwatch-e2e")
    predictions = meter.create_counter("predictions")
    for _ in range(3):
        predictions.add(1, {"route": "/score"})
    latency = meter.create_histogram("score_latency", unit="s")
    latency.record(0.05)
    latency.record(0.3)
    meters.shutdown()

    log_exporter = checked(OTLPLogExporter, LogRecordExportResult.SUCCESS)(
        endpoint=f"{base}/v1/logs", headers=headers
    )
    loggers = LoggerProvider(resource=Resource.create({"service.name": "churn-api"}))
    loggers.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
    logger = loggers.get_logger("modelwatch-e2e")
    now = time.time_ns()
    logger.emit(
        timestamp=now,
        severity_number=SeverityNumber.INFO,
        body="scored",
        attributes={
            "model.name": "churn",
            "model.version": "py-7",
            "inference.id": "py-1",
            "feature.tenure": 14,
            "feature.plan": "pro",
            "prediction": "stay",
        },
    )
    logger.emit(timestamp=now, severity_number=SeverityNumber.INFO, body="python says hello")
    loggers.shutdown()

    span_exporter = checked(OTLPSpanExporter, SpanExportResult.SUCCESS)(
        endpoint=f"{base}/v1/traces", headers=headers
    )
    tracers = TracerProvider(resource=resource)
    tracers.add_span_processor(SimpleSpanProcessor(span_exporter))
    with tracers.get_tracer("modelwatch-e2e").start_as_current_span("score") as span:
        span.set_status(Status(StatusCode.OK))
    tracers.shutdown()

    if failures:
        print("exports failed: " + "; ".join(failures), file=sys.stderr)
        return 1
    print("exported metrics, logs and a span")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
