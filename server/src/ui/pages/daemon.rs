//! `/ui/daemon`: this daemon's own figures — ingestion, WAL and
//! persistence, evaluator cycles, webhook deliveries, duties — read from
//! the same registry of metrics `/metrics` exports, and the alerts
//! Alertmanager sent.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::State;
use maud::{Markup, html};

use modelwatch_registry::{PageRequest, Role};

use crate::http::AppState;
use crate::ui::UiResult;
use crate::ui::charts::number;
use crate::ui::layout::{self, Nav};
use crate::ui::session::Viewer;

/// When the UI (so the daemon) started: rates are averaged since then.
pub static STARTED: OnceLock<Instant> = OnceLock::new();

/// The page's sections: a title and the metric families it shows.
const SECTIONS: [(&str, &[&str]); 5] = [
    (
        "Ingestion",
        &[
            "modelwatch_ingest_rows_total",
            "modelwatch_ingest_rejected_requests_total",
            "modelwatch_ingest_rows_without_model_total",
            "modelwatch_unmatched_labels_total",
        ],
    ),
    (
        "WAL and persistence",
        &[
            "modelwatch_wal_records_total",
            "modelwatch_wal_fsyncs_total",
            "modelwatch_wal_last_fsync_seconds",
            "modelwatch_wal_bytes",
            "modelwatch_wal_segments",
            "modelwatch_history_buffer_rows",
            "modelwatch_history_buffer_bytes",
            "modelwatch_history_persists_total",
            "modelwatch_history_persisted_files",
            "modelwatch_history_persisted_rows",
            "modelwatch_history_compactions_total",
            "modelwatch_history_overloaded_writes_total",
        ],
    ),
    (
        "Evaluator",
        &[
            "modelwatch_evaluations_total",
            "modelwatch_evaluation_cycle_duration_seconds_count",
            "modelwatch_evaluation_cycle_duration_seconds_sum",
            "modelwatch_recommendations_open",
        ],
    ),
    ("Webhooks", &["modelwatch_webhook_deliveries_total"]),
    (
        "Duties and alerts",
        &[
            "modelwatch_background_duty_up",
            "modelwatch_duty_lease_held",
            "modelwatch_alert_notifications_total",
        ],
    ),
];

/// `name → [(labels, value)]` from the text exposition format.
fn parse(text: &str) -> BTreeMap<&str, Vec<(&str, f64)>> {
    let mut out: BTreeMap<&str, Vec<(&str, f64)>> = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        out.entry(name).or_default().push((labels, value));
    }
    out
}

pub async fn show(State(s): State<AppState>, viewer: Viewer) -> UiResult<Markup> {
    viewer.caller.require(Role::Reader)?;
    s.duties.dead();
    let text = crate::metrics::metrics().render(&s.telemetry.store.stats(), &s.registry.stats());
    let families = parse(&text);
    let uptime = STARTED
        .get()
        .map(|t| t.elapsed().as_secs_f64())
        .unwrap_or(0.0);
    let alerts = s
        .registry
        .list_alert_notifications(&PageRequest::new(Some(20), None)?)
        .await?
        .items;
    let webhooks = s.registry.list_webhooks().await?;
    Ok(layout::page(
        "Daemon",
        Some(&viewer),
        Nav::Daemon,
        html! {
            h1 { "This daemon" }
            p { "Up " (number((uptime / 60.0).floor())) " minutes. Counters are totals since the start; the rate is their average over that time. "
                "Grafana's dashboards show the same figures over time." }
            @for (title, names) in SECTIONS {
                section.metrics {
                    h2 { (title) }
                    table {
                        thead { tr { th { "metric" } th { "labels" } th { "value" } th { "per second" } } }
                        tbody {
                            @for name in names.iter() {
                                @for (labels, value) in families.get(name).map(Vec::as_slice).unwrap_or_default() {
                                    tr data-metric=(name) {
                                        td { code { (name) } }
                                        td { code { (labels) } }
                                        td.num { (number(*value)) }
                                        td.num { @if name.ends_with("_total") && uptime > 0.0 { (number(value / uptime)) } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Webhooks" }
            @if webhooks.is_empty() { p.empty { "No webhooks." } }
            ul { @for w in &webhooks { li { (w.name) } } }
            h2 { "Alerts received" }
            @if alerts.is_empty() { p.empty #no-alerts { "No alert from Alertmanager yet." } }
            table #alerts {
                thead { tr { th { "received" } th { "alert" } th { "status" } th { "model" } th { "outcome" } th { "detail" } } }
                tbody {
                    @for a in &alerts {
                        tr {
                            td { (layout::time(&a.received_at)) }
                            td { (a.alert_name) }
                            td { (a.status) }
                            td { (a.model.as_deref().unwrap_or("—")) @if let Some(v) = a.version { " v" (v) } }
                            td { (a.outcome) }
                            td { (a.detail) }
                        }
                    }
                }
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn exposition_lines_are_grouped_by_family() {
        let text = "# HELP x y\nmodelwatch_a_total{k=\"v\"} 3\nmodelwatch_a_total{k=\"w\"} 4\nmodelwatch_b 1.5\n";
        let f = super::parse(text);
        assert_eq!(
            f["modelwatch_a_total"],
            vec![("k=\"v\"", 3.0), ("k=\"w\"", 4.0)]
        );
        assert_eq!(f["modelwatch_b"], vec![("", 1.5)]);
    }
}
