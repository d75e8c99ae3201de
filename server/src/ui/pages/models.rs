//! `/ui/models`: every model, searchable by name, owner and tag, paged on
//! the server, each with its aliases, latest version, that version's
//! health and its open recommendations.

use axum::extract::State;
use futures::future::join_all;
use maud::{Markup, html};

use modelwatch_registry::{
    Model, ModelFilter, PageRequest, RecommendationFilter, RecommendationStatus, Role,
};

use crate::http::AppState;
use crate::ui::layout::{self, Nav, model_href, version_href};
use crate::ui::session::Viewer;
use crate::ui::{UiError, UiQuery, UiResult};

/// Models per page.
const PAGE: u32 = 50;
/// Open recommendations counted per model before showing "N+".
const OPEN_COUNTED: u32 = 100;

/// What a row shows beside the model's own fields.
struct Row {
    model: Model,
    health: Option<String>,
    open: usize,
}

async fn row(s: &AppState, model: Model) -> UiResult<Row> {
    let health = if model.latest_version > 0 {
        match s
            .registry
            .get_version(&model.name, model.latest_version)
            .await
        {
            Ok(v) => v.tags.get("modelwatch.health").cloned(),
            // Deleted meanwhile: no badge rather than no page.
            Err(modelwatch_registry::Error::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        }
    } else {
        None
    };
    let filter = RecommendationFilter {
        model: Some(model.name.clone()),
        status: Some(RecommendationStatus::Open),
        ..RecommendationFilter::default()
    };
    let open = s
        .registry
        .list_recommendations(&filter, &PageRequest::new(Some(OPEN_COUNTED), None)?)
        .await?
        .items
        .len();
    Ok(Row {
        model,
        health,
        open,
    })
}

pub async fn list(
    State(s): State<AppState>,
    viewer: Viewer,
    UiQuery(q): UiQuery,
) -> UiResult<Markup> {
    viewer.caller.require(Role::Reader)?;
    let name = q.text("q");
    let owner = q.text("owner");
    let tag = q.text("tag");
    let tag_filter = match tag.split_once('=') {
        Some((k, v)) => vec![(k.trim().to_string(), v.trim().to_string())],
        None if tag.is_empty() => vec![],
        None => {
            return Err(UiError::bad_request(
                "a tag filter is key=value, e.g. team=payments",
            ));
        }
    };
    let filter = ModelFilter {
        name_prefix: (!name.is_empty()).then(|| name.clone()),
        owner: (!owner.is_empty()).then(|| owner.clone()),
        tags: tag_filter,
    };
    let cursor = q.get("cursor").map(str::to_string);
    let page = s
        .registry
        .list_models(&filter, &PageRequest::new(Some(PAGE), cursor)?)
        .await?;
    let rows: Vec<Row> = join_all(page.items.into_iter().map(|m| row(&s, m)))
        .await
        .into_iter()
        .collect::<UiResult<_>>()?;
    let query = [
        ("q", name.clone()),
        ("owner", owner.clone()),
        ("tag", tag.clone()),
    ];
    Ok(layout::page(
        "Models",
        Some(&viewer),
        Nav::Models,
        html! {
            h1 { "Models" }
            form.search role="search" method="get" action="/ui/models" {
                label { "Name starts with " input type="search" name="q" value=(name); }
                label { "Owner " input type="text" name="owner" value=(owner); }
                label { "Tag " input type="text" name="tag" value=(tag) placeholder="key=value"; }
                button type="submit" { "Search" }
            }
            @if rows.is_empty() {
                p.empty #no-models { "No models match." }
            } @else {
                table #models {
                    thead { tr {
                        th { "model" } th { "owner" } th { "aliases" } th { "latest version" }
                        th { "health" } th { "open recommendations" } th { "tags" }
                    } }
                    tbody {
                        @for r in &rows {
                            tr data-model=(r.model.name) {
                                td { a.model-link href=(model_href(&r.model.name)) { (r.model.name) } }
                                td { (r.model.owner) }
                                td {
                                    @for (alias, version) in &r.model.aliases {
                                        a.alias href=(version_href(&r.model.name, *version)) { (alias) " → v" (version) } " "
                                    }
                                }
                                td.num {
                                    @if r.model.latest_version > 0 {
                                        a href=(version_href(&r.model.name, r.model.latest_version)) { "v" (r.model.latest_version) }
                                    } @else { "—" }
                                }
                                td { (layout::health_badge(r.health.as_deref())) }
                                td.num {
                                    @if r.open >= OPEN_COUNTED as usize { (OPEN_COUNTED) "+" } @else { (r.open) }
                                }
                                td { (tags(&r.model.tags)) }
                            }
                        }
                    }
                }
            }
            (layout::pager("/ui/models", &query, page.next_cursor.as_deref()))
        },
    ))
}

/// Tags as `key=value` chips.
pub fn tags(tags: &modelwatch_registry::Tags) -> Markup {
    html! {
        ul.tags {
            @for (k, v) in tags {
                li.tag { span.k { (k) } "=" span.v { (v) } }
            }
        }
    }
}
