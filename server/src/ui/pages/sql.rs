//! `/ui/sql`: the SQL console (role `reader`), read-only with the API's
//! timeout, a result table, CSV download, and the documentation's
//! queries as one-click starts.
//!
//! Queries are GET requests (`?q=…`): reading changes nothing, and a query
//! is a link that can be shared.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use modelwatch_registry::Role;

use crate::http::AppState;
use crate::ui::layout::{self, Nav};
use crate::ui::query;
use crate::ui::session::Viewer;
use crate::ui::{UiError, UiQuery, UiResult};

/// Rows shown in the page (the CSV download takes up to the API's default).
const PAGE_ROWS: usize = 1_000;
/// Rows in a CSV download.
const CSV_ROWS: usize = 100_000;

/// One-click starts: the queries of `docs/sql.md` and the monitoring docs.
pub const EXAMPLES: [(&str, &str); 6] = [
    (
        "Metrics per version, last hour",
        "SELECT model, version, metric, avg(value) AS avg FROM samples WHERE ts > now() - INTERVAL '1 hour' GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
    ),
    ("Every alias move", "SELECT * FROM alias_moves"),
    (
        "Samples per instance",
        "SELECT labels['instance'] AS instance, count(*) FROM samples GROUP BY 1",
    ),
    (
        "Latest drift results",
        "SELECT ts, model, version, feature, method, statistic, p_value, threshold, decision FROM drift_results ORDER BY ts DESC LIMIT 50",
    ),
    (
        "Open recommendations",
        "SELECT model, version, kind, severity, reason FROM recommendations WHERE status = 'open'",
    ),
    (
        "Inferences per version, last day",
        "SELECT model, version, count(*) AS inferences FROM inferences WHERE ts > now() - INTERVAL '1 day' GROUP BY 1, 2 ORDER BY 1, 2",
    ),
];

fn sql_of(q: &crate::ui::session::Form) -> UiResult<String> {
    let sql = q.text("q");
    if sql.is_empty() {
        return Err(UiError::bad_request("write a query first"));
    }
    Ok(sql)
}

pub async fn console(
    State(s): State<AppState>,
    viewer: Viewer,
    UiQuery(q): UiQuery,
) -> UiResult<Markup> {
    viewer.caller.require(Role::Reader)?;
    let sql = q.text("q");
    let (result, error) = if sql.is_empty() {
        (None, None)
    } else {
        match query::run(&s, sql.clone(), PAGE_ROWS).await {
            Ok(t) => (Some(t), None),
            // A query the person can fix is shown beside the editor.
            Err(e) => {
                let api = crate::http::error::ApiError::from(e);
                if api.status.is_server_error() {
                    return Err(api.into());
                }
                (None, Some(api.message))
            }
        }
    };
    let csv_href = format!(
        "/ui/sql/csv?{}",
        form_urlencoded::Serializer::new(String::new())
            .append_pair("q", &sql)
            .finish()
    );
    Ok(layout::page(
        "SQL",
        Some(&viewer),
        Nav::Sql,
        html! {
            h1 { "SQL" }
            p.hint { "Read-only queries over the telemetry and the registry, with the same limits as " code { "POST /api/v1/sql" } " (timeout " (s.sql.limits.timeout.as_secs()) " s); the page shows the first " (PAGE_ROWS) " rows." }
            form.sql method="get" action="/ui/sql" {
                label for="sql" { "Query" }
                textarea #sql name="q" rows="6" spellcheck="false" required { (sql) }
                button type="submit" #run-sql { "Run" }
            }
            details #examples open[sql.is_empty()] {
                summary { "Examples" }
                ul {
                    @for (title, example) in EXAMPLES {
                        li { a href={"/ui/sql?" (form_urlencoded::Serializer::new(String::new()).append_pair("q", example).finish())} { (title) } }
                    }
                }
            }
            (layout::inline_error(error.as_deref()))
            @if let Some(t) = &result {
                p #result-summary {
                    (t.rows.len()) " rows"
                    @if t.truncated { " (more matched; download CSV for up to " (CSV_ROWS) ")" }
                    " · " a #download-csv href=(csv_href) download="result.csv" { "Download CSV" }
                }
                div.scroll {
                    table #result {
                        thead { tr { @for c in &t.columns { th { (c) } } } }
                        tbody {
                            @for row in &t.rows {
                                tr { @for cell in row {
                                    @match cell { Some(v) => td { (v) }, None => td.null { "NULL" } }
                                } }
                            }
                        }
                    }
                }
            }
        },
    ))
}

pub async fn csv(
    State(s): State<AppState>,
    viewer: Viewer,
    UiQuery(q): UiQuery,
) -> UiResult<Response> {
    viewer.caller.require(Role::Reader)?;
    let sql = sql_of(&q)?;
    let result = s.sql.query(sql, CSV_ROWS, s.sql.limits.timeout).await?;
    let mut out = Vec::new();
    {
        let mut w = datafusion::arrow::csv::WriterBuilder::new()
            .with_header(true)
            .build(&mut out);
        for b in &result.batches {
            w.write(b).map_err(|e| {
                UiError::bad_request(format!("the result cannot be written as CSV: {e}"))
            })?;
        }
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"result.csv\"",
            ),
        ],
        out,
    )
        .into_response())
}
