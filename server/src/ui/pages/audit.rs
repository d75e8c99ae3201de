//! `/ui/audit`: the audit log with filters, and the chain's verification.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::State;
use maud::{Markup, html};

use modelwatch_registry::{AuditFilter, AuditVerification, PageRequest, Role};

use crate::http::AppState;
use crate::ui::layout::{self, Nav};
use crate::ui::session::Viewer;
use crate::ui::{UiQuery, UiResult};

const PAGE: u32 = 100;

/// How long a verification of the whole chain is shown before a page view
/// runs it again: it reads every entry (hundreds of milliseconds at tens
/// of thousands), too much for each view of a page people reload.
const VERIFY_EVERY: Duration = Duration::from_secs(60);

static VERIFIED: Mutex<Option<(Instant, AuditVerification)>> = Mutex::new(None);

/// The chain's verification, recomputed when older than [`VERIFY_EVERY`]
/// or when asked (`?verify=now`).
async fn verification(s: &AppState, now: bool) -> UiResult<(AuditVerification, Instant)> {
    let cached = VERIFIED.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if let Some((at, v)) = cached.filter(|(at, _)| !now && at.elapsed() < VERIFY_EVERY) {
        return Ok((v, at));
    }
    let v = crate::http::registry::verification(s).await?;
    let at = Instant::now();
    *VERIFIED.lock().unwrap_or_else(|e| e.into_inner()) = Some((at, v.clone()));
    Ok((v, at))
}

pub async fn list(
    State(s): State<AppState>,
    viewer: Viewer,
    UiQuery(q): UiQuery,
) -> UiResult<Markup> {
    viewer.caller.require(Role::Reader)?;
    let (actor, action, target) = (q.text("actor"), q.text("action"), q.text("target"));
    let filter = AuditFilter {
        actor: (!actor.is_empty()).then(|| actor.clone()),
        action: (!action.is_empty()).then(|| action.clone()),
        target_prefix: (!target.is_empty()).then(|| target.clone()),
    };
    let (verification, verified_at) = verification(&s, q.get("verify") == Some("now")).await?;
    let page = crate::http::registry::audit_page(
        &s,
        &viewer.caller,
        &filter,
        &PageRequest::new(Some(PAGE), q.get("cursor").map(str::to_string))?,
    )
    .await?;
    let query = [
        ("actor", actor.clone()),
        ("action", action.clone()),
        ("target", target.clone()),
    ];
    Ok(layout::page(
        "Audit log",
        Some(&viewer),
        Nav::Audit,
        html! {
            h1 { "Audit log" }
            p.hint {
                "The chain was verified " (verified_at.elapsed().as_secs()) " s ago (it is verified again after "
                (VERIFY_EVERY.as_secs()) " s). " a #verify-now href="/ui/audit?verify=now" { "Verify now" }
            }
            @if verification.ok {
                p.allowed #chain-status data-ok="true" {
                    "The chain verifies: " (verification.entries_checked) " entries, head "
                    code { (verification.head_hash.as_deref().unwrap_or("—")) } "."
                }
            } @else {
                p.denied #chain-status data-ok="false" {
                    "The chain is broken at entry " (verification.first_broken_seq.map(|s| s.to_string()).unwrap_or_default())
                    ": " (verification.problem.as_deref().unwrap_or("unknown problem"))
                }
            }
            @if let Some(anchors) = &verification.anchors {
                @if anchors.ok {
                    p.allowed #anchor-status data-ok="true" {
                        "The signed anchors match: the newest covers entry "
                        (anchors.newest_anchored_seq.map(|s| s.to_string()).unwrap_or_else(|| "—".into()))
                        @if let Some(at) = anchors.newest_anchored_at { " (signed " (at.to_rfc3339()) ")" }
                        "; " (anchors.unanchored_entries) " newer entries are not anchored yet."
                    }
                } @else {
                    p.denied #anchor-status data-ok="false" {
                        "The signed anchors do not match: " (anchors.problem.as_deref().unwrap_or("unknown problem"))
                    }
                }
            }
            form.search method="get" action="/ui/audit" {
                label { "Actor " input type="text" name="actor" value=(actor); }
                label { "Action " input type="text" name="action" value=(action) placeholder="alias.rollback"; }
                label { "Target starts with " input type="text" name="target" value=(target) placeholder="model/fraud"; }
                button type="submit" { "Filter" }
            }
            table #audit {
                thead { tr { th { "seq" } th { "at" } th { "actor" } th { "action" } th { "target" } th { "change" } } }
                tbody {
                    @for e in &page.items {
                        tr data-seq=(e.seq) data-action=(e.action) {
                            td.num { (e.seq) }
                            td { (layout::time(&e.at)) }
                            td.actor { (e.actor) }
                            td { (e.action) }
                            td { (e.target) }
                            td {
                                details {
                                    summary { "before / after" }
                                    @if let Some(b) = &e.before { (layout::json_block(b)) }
                                    @if let Some(a) = &e.after { (layout::json_block(a)) }
                                }
                            }
                        }
                    }
                }
            }
            (layout::pager("/ui/audit", &query, page.next_cursor.as_deref()))
        },
    ))
}
