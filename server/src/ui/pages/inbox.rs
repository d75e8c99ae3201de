//! `/ui/recommendations`: the inbox across models, filtered by kind and
//! status, with acknowledge / dismiss and a note.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};

use modelwatch_registry::{
    PageRequest, RecommendationFilter, RecommendationKind, RecommendationStatus, Role, Transition,
};

use crate::http::AppState;
use crate::ui::layout::{self, Nav};
use crate::ui::pages::version::recommendation;
use crate::ui::session::{Form, Viewer};
use crate::ui::{UiError, UiPath, UiQuery, UiResult, done_notice, see_other};

const PAGE: u32 = 50;

pub async fn list(
    State(s): State<AppState>,
    viewer: Viewer,
    UiQuery(q): UiQuery,
) -> UiResult<Markup> {
    viewer.caller.require(Role::Reader)?;
    let kind = q.text("kind");
    // The inbox shows what needs attention unless asked otherwise.
    let status = q.get("status").map(str::trim).unwrap_or("open").to_string();
    let filter = RecommendationFilter {
        kind: (!kind.is_empty())
            .then(|| kind.parse::<RecommendationKind>())
            .transpose()
            .map_err(|e| UiError::bad_request(e.to_string()))?,
        status: (!status.is_empty())
            .then(|| status.parse::<RecommendationStatus>())
            .transpose()
            .map_err(|e| UiError::bad_request(e.to_string()))?,
        ..RecommendationFilter::default()
    };
    let page = s
        .registry
        .list_recommendations(
            &filter,
            &PageRequest::new(Some(PAGE), q.get("cursor").map(str::to_string))?,
        )
        .await?;
    let query = [("kind", kind.clone()), ("status", status.clone())];
    Ok(layout::page(
        "Recommendations",
        Some(&viewer),
        Nav::Recommendations,
        html! {
            h1 { "Recommendations" }
            (layout::notice(done_notice(q.get("done"))))
            form.search method="get" action="/ui/recommendations" {
                label { "Kind " select name="kind" {
                    option value="" selected[kind.is_empty()] { "any" }
                    @for k in RecommendationKind::ALL { option value=(k) selected[kind == k.as_str()] { (k) } }
                } }
                label { "Status " select name="status" {
                    option value="" selected[status.is_empty()] { "any" }
                    @for st in RecommendationStatus::ALL { option value=(st) selected[status == st.as_str()] { (st) } }
                } }
                button type="submit" { "Filter" }
            }
            @if page.items.is_empty() { p.empty #no-recommendations { "Nothing here." } }
            h2.count { (page.items.len()) @if page.next_cursor.is_some() { "+" } " shown" }
            div #recommendations {
                @for r in &page.items { (recommendation(&viewer, r, "/ui/recommendations")) }
            }
            (layout::pager("/ui/recommendations", &query, page.next_cursor.as_deref()))
        },
    ))
}

/// Where to return after an action: a UI page, the inbox otherwise.
fn back(form: &Form) -> String {
    let b = form.text("back");
    if b.starts_with("/ui/") && !b.starts_with("//") && !b.contains('\\') && !b.contains('?') {
        b
    } else {
        "/ui/recommendations".into()
    }
}

pub async fn transition(
    State(s): State<AppState>,
    viewer: Viewer,
    UiPath((id, transition)): UiPath<(i64, String)>,
    body: Bytes,
) -> UiResult<Response> {
    let form = viewer.form(&body)?;
    let (t, done) = match transition.as_str() {
        "acknowledge" => (Transition::Acknowledge, "acknowledged"),
        "dismiss" => (Transition::Dismiss, "dismissed"),
        other => {
            return Err(UiError::not_found(format!(
                "no action {other:?} on a recommendation here; acknowledge or dismiss"
            )));
        }
    };
    crate::http::registry::transition_recommendation(&s, &viewer.caller, id, t, &form.text("note"))
        .await?;
    Ok(see_other(&back(&form), done))
}
