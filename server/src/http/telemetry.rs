//! Telemetry routes: Prometheus remote write in, SQL out.

use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use datafusion::arrow::array::RecordBatch;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use modelwatch_collectors::remote_write as collectors;
use modelwatch_registry::Role;

use super::AppState;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::ApiBytes;
use crate::auth::Caller;
use crate::sql::{DEFAULT_ROW_LIMIT, MAX_ROW_LIMIT, QueryResult};

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Prometheus remote write 1.0 (snappy-compressed protobuf
/// `prometheus.WriteRequest`) or 2.0 (`io.prometheus.write.v2.Request`,
/// chosen by the `proto` parameter of `Content-Type`).
#[utoipa::path(post, path = "/api/v1/write", tag = "telemetry",
    request_body(content = Vec<u8>, content_type = "application/x-protobuf",
        description = "snappy block-compressed prometheus.WriteRequest (remote write 1.0) or io.prometheus.write.v2.Request (2.0)"),
    responses(
        (status = 204, description = "stored and fsynced; X-Prometheus-Remote-Write-Samples-Written, -Histograms-Written and -Exemplars-Written count what was stored"),
        (status = 400, body = ErrorBody, description = "bad snappy, protobuf or series; not retried"),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody, description = "neither remote write 1.0 nor 2.0"),
        (status = 503, body = ErrorBody, description = "overloaded; retry after Retry-After seconds")),
    security(("bearer" = [])))]
pub async fn remote_write(
    State(s): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> ApiResult<Response> {
    caller.require(Role::Ingest)?;
    let summary = s
        .telemetry
        .remote_write(
            header_str(&headers, "content-type"),
            header_str(&headers, "content-encoding"),
            header_str(&headers, "x-prometheus-remote-write-version"),
            &body,
        )
        .await?;
    tracing::debug!(
        series = summary.series,
        samples = summary.samples,
        without_model = summary.samples_without_model,
        "remote write stored"
    );
    // Remote write 2.0 senders read these to tell a partial write from a
    // full one; 1.0 senders ignore them.
    Ok((
        StatusCode::NO_CONTENT,
        [
            (
                collectors::HEADER_SAMPLES_WRITTEN,
                summary.samples.to_string(),
            ),
            (
                collectors::HEADER_HISTOGRAMS_WRITTEN,
                summary.histograms.to_string(),
            ),
            (
                collectors::HEADER_EXEMPLARS_WRITTEN,
                summary.exemplars_written.to_string(),
            ),
        ],
    )
        .into_response())
}

/// A SQL request; a `text/plain` body is taken as the SQL itself.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlRequest {
    pub sql: String,
    /// Most rows to return (default 10000, at most 1000000).
    pub limit: Option<usize>,
    /// Seconds before the query is cancelled (default and maximum:
    /// `--sql-timeout-seconds`, 30 unless configured).
    pub timeout_seconds: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Column {
    pub name: String,
    /// Arrow data type.
    pub r#type: String,
}

/// JSON result of a query.
#[derive(Debug, Serialize, ToSchema)]
pub struct SqlResponse {
    pub columns: Vec<Column>,
    /// One object per row, keyed by column name.
    #[schema(value_type = Vec<Object>)]
    pub rows: Vec<serde_json::Value>,
    pub row_count: usize,
    /// More rows existed than `limit`.
    pub truncated: bool,
    pub elapsed_ms: f64,
}

const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

enum Format {
    Json,
    Csv,
    Arrow,
}

fn format(headers: &HeaderMap) -> ApiResult<Format> {
    let accept = header_str(headers, "accept").unwrap_or("application/json");
    for part in accept.split(',') {
        let media = part.split(';').next().unwrap_or("").trim();
        match media {
            "application/json" | "*/*" | "application/*" | "" => return Ok(Format::Json),
            "text/csv" => return Ok(Format::Csv),
            ARROW_STREAM => return Ok(Format::Arrow),
            _ => {}
        }
    }
    Err(ApiError::new(
        StatusCode::NOT_ACCEPTABLE,
        "not_acceptable",
        format!("cannot answer in {accept:?}; accept application/json, text/csv or {ARROW_STREAM}"),
    ))
}

fn parse_request(headers: &HeaderMap, body: &Bytes) -> ApiResult<SqlRequest> {
    let ct = header_str(headers, "content-type").unwrap_or("");
    if ct.starts_with("text/plain") {
        let sql = std::str::from_utf8(body)
            .map_err(|_| ApiError::bad_request("the SQL is not valid UTF-8"))?;
        return Ok(SqlRequest {
            sql: sql.to_string(),
            limit: None,
            timeout_seconds: None,
        });
    }
    if !ct.starts_with("application/json") {
        return Err(ApiError::unsupported_media_type(
            "send {\"sql\": \"…\"} as application/json, or the SQL itself as text/plain",
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::malformed_json(format!("invalid JSON body: {e}")))
}

/// Runs a read-only SQL query over telemetry and registry tables.
#[utoipa::path(post, path = "/api/v1/sql", tag = "telemetry",
    request_body(content = SqlRequest, description = "or the SQL itself as text/plain"),
    responses(
        (status = 200, body = SqlResponse, description = "JSON by default; text/csv or Arrow IPC stream by Accept"),
        (status = 400, body = ErrorBody, description = "invalid or not read-only"),
        (status = 406, body = ErrorBody), (status = 504, body = ErrorBody, description = "timed out")),
    security(("bearer" = [])))]
pub async fn run_sql(
    State(s): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> ApiResult<Response> {
    caller.require(Role::Reader)?;
    let format = format(&headers)?;
    let req = parse_request(&headers, &body)?;
    let limit = req.limit.unwrap_or(DEFAULT_ROW_LIMIT);
    if limit == 0 || limit > MAX_ROW_LIMIT {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_ROW_LIMIT}"
        )));
    }
    let max_timeout = s.sql.limits.timeout;
    let timeout = match req.timeout_seconds {
        None => max_timeout,
        Some(t) if t >= 1 && t <= max_timeout.as_secs() => std::time::Duration::from_secs(t),
        Some(_) => {
            return Err(ApiError::bad_request(format!(
                "timeout_seconds must be between 1 and {} (--sql-timeout-seconds)",
                max_timeout.as_secs()
            )));
        }
    };
    let started = Instant::now();
    let result = s.sql.query(req.sql, limit, timeout).await?;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
    crate::metrics::metrics()
        .sql_query_duration
        .observe(elapsed_ms / 1e3);
    tracing::debug!(
        rows = result
            .batches
            .iter()
            .map(RecordBatch::num_rows)
            .sum::<usize>(),
        elapsed_ms,
        "sql"
    );
    match format {
        Format::Json => json_response(result, elapsed_ms),
        Format::Csv => encoded(result, "text/csv", |r, out| {
            let mut w = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(out);
            for b in &r.batches {
                w.write(b)?;
            }
            Ok(())
        }),
        Format::Arrow => encoded(result, ARROW_STREAM, |r, out| {
            let mut w = datafusion::arrow::ipc::writer::StreamWriter::try_new(out, &r.schema)?;
            for b in &r.batches {
                w.write(b)?;
            }
            w.finish()
        }),
    }
}

fn encoded(
    result: QueryResult,
    content_type: &'static str,
    write: impl FnOnce(&QueryResult, &mut Vec<u8>) -> Result<(), datafusion::arrow::error::ArrowError>,
) -> ApiResult<Response> {
    let mut out = Vec::new();
    write(&result, &mut out).map_err(|e| {
        ApiError::bad_request(format!(
            "the result cannot be encoded as {content_type}: {e}; select simpler columns"
        ))
    })?;
    let mut response = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, content_type)],
        Body::from(out),
    )
        .into_response();
    if result.truncated {
        response.headers_mut().insert(
            "x-modelwatch-truncated",
            header::HeaderValue::from_static("true"),
        );
    }
    Ok(response)
}

/// The [`SqlResponse`] JSON, written straight from the Arrow batches (rows
/// by Arrow's JSON writer): no intermediate JSON values, so a large result
/// costs about its encoded size once, not several times over.
fn json_response(result: QueryResult, elapsed_ms: f64) -> ApiResult<Response> {
    let columns: Vec<Column> = result
        .schema
        .fields()
        .iter()
        .map(|f| Column {
            name: f.name().clone(),
            r#type: f.data_type().to_string(),
        })
        .collect();
    // Rows are objects keyed by column name: two columns of one name would
    // leave one of them out.
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = columns.iter().find(|c| !seen.insert(c.name.as_str())) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            format!(
                "the result has more than one column named {:?}, which JSON rows cannot hold; give them distinct names with AS, or ask for text/csv or {ARROW_STREAM}",
                dup.name
            ),
        ));
    }
    let row_count: usize = result.batches.iter().map(RecordBatch::num_rows).sum();
    let truncated = result.truncated;
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"{\"columns\":");
    serde_json::to_writer(&mut out, &columns).map_err(ApiError::internal)?;
    out.extend_from_slice(b",\"rows\":");
    if row_count == 0 {
        out.extend_from_slice(b"[]");
    } else {
        let mut writer = datafusion::arrow::json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, datafusion::arrow::json::writer::JsonArray>(&mut out);
        let refs: Vec<&RecordBatch> = result.batches.iter().collect();
        writer
            .write_batches(&refs)
            .and_then(|()| writer.finish())
            .map_err(|e| {
                ApiError::bad_request(format!("the result cannot be encoded as JSON: {e}"))
            })?;
    }
    drop(result);
    out.extend_from_slice(
        format!(
            ",\"row_count\":{row_count},\"truncated\":{},\"elapsed_ms\":{}}}",
            truncated,
            serde_json::Number::from_f64(elapsed_ms).map_or("0".into(), |n| n.to_string())
        )
        .as_bytes(),
    );
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from(out),
    )
        .into_response())
}
