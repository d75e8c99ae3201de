//! `/ui/models/{model}`: the versions, the aliases with their whole move
//! history, promotion through the gate (shown before anything moves),
//! rollback with a reason, the monitoring policy (edited in place, errors
//! inline) and the gate policy.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use modelwatch_registry::{
    Alias, GatePolicyRecord, MonitoringPolicy, PageRequest, PolicyRecord, Role, Version,
    VersionFilter,
};

use crate::gate;
use crate::http::AppState;
use crate::http::gates::{PromoteRequest, promote_version};
use crate::ui::layout::{self, Nav, model_href, version_href};
use crate::ui::pages::models::tags;
use crate::ui::session::{Form, Viewer};
use crate::ui::{UiError, UiPath, UiQuery, UiResult, done_notice, see_other};

/// Versions per page.
const PAGE: u32 = 50;

/// What the page shows besides the registry's records.
#[derive(Default)]
struct Extras {
    notice: Option<&'static str>,
    /// A policy that did not validate, with why (shown in the editor).
    rejected_policy: Option<(String, String)>,
}

/// `None` when the registry has none (404), the record otherwise.
fn optional<T>(r: modelwatch_registry::Result<T>) -> UiResult<Option<T>> {
    match r {
        Ok(t) => Ok(Some(t)),
        Err(modelwatch_registry::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub async fn show(
    State(s): State<AppState>,
    viewer: Viewer,
    UiPath(model): UiPath<String>,
    UiQuery(q): UiQuery,
) -> UiResult<Markup> {
    let extras = Extras {
        notice: done_notice(q.get("done")),
        ..Extras::default()
    };
    render(&s, &viewer, &model, q.get("cursor"), extras).await
}

async fn render(
    s: &AppState,
    viewer: &Viewer,
    name: &str,
    cursor: Option<&str>,
    extras: Extras,
) -> UiResult<Markup> {
    viewer.caller.require(Role::Reader)?;
    let model = s.registry.get_model(name).await?;
    let versions = s
        .registry
        .list_versions(
            name,
            &VersionFilter::default(),
            &PageRequest::new(Some(PAGE), cursor.map(str::to_string))?,
        )
        .await?;
    let aliases = s.registry.list_aliases(name).await?;
    let policy = optional(s.registry.get_policy(name).await)?;
    let gate_policy = optional(s.registry.get_gate_policy(name).await)?;
    Ok(layout::page(
        name,
        Some(viewer),
        Nav::Models,
        html! {
            nav.crumbs { a href="/ui/models" { "Models" } " / " span { (name) } }
            h1 #model-name { (name) }
            (layout::notice(extras.notice))
            @if !model.description.is_empty() { p.description { (model.description) } }
            p { "Owner: " (if model.owner.is_empty() { "—" } else { &model.owner }) }
            (tags(&model.tags))
            h2 { "Versions" }
            (versions_table(name, &versions.items))
            (layout::pager(&model_href(name), &[], versions.next_cursor.as_deref()))
            @if viewer.can(Role::Editor) && !versions.items.is_empty() {
                (promote_form(viewer, name, &versions.items))
            }
            h2 { "Aliases" }
            @if aliases.is_empty() { p.empty { "No aliases yet." } }
            @for alias in &aliases { (alias_timeline(viewer, name, alias)) }
            h2 { "Monitoring policy" }
            (policy_section(viewer, name, policy.as_ref(), extras.rejected_policy.as_ref()))
            h2 { "Gate policy" }
            (gate_section(gate_policy.as_ref()))
        },
    ))
}

fn versions_table(model: &str, versions: &[Version]) -> Markup {
    html! {
        @if versions.is_empty() {
            p.empty { "No versions yet." }
        } @else {
            table #versions {
                thead { tr {
                    th { "version" } th { "health" } th { "metrics" } th { "stage" }
                    th { "status" } th { "aliases" } th { "created by" } th { "created at" }
                } }
                tbody {
                    @for v in versions {
                        tr data-version=(v.version) {
                            td.num { a href=(version_href(model, v.version)) { "v" (v.version) } }
                            td { (layout::health_badge(v.tags.get("modelwatch.health").map(String::as_str))) }
                            td {
                                @for (k, m) in &v.lineage.metrics {
                                    span.metric { (k) "=" (crate::ui::charts::number(*m)) } " "
                                }
                            }
                            td { (v.stage) }
                            td { (v.status) }
                            td { @for a in &v.aliases { span.alias { (a) } " " } }
                            td { (v.created_by) }
                            td { (layout::time(&v.created_at)) }
                        }
                    }
                }
            }
        }
    }
}

fn promote_form(viewer: &Viewer, model: &str, versions: &[Version]) -> Markup {
    html! {
        form.inline #promote method="post" action={(model_href(model)) "/promote/check"} {
            (layout::csrf(viewer))
            h3 { "Promote a version" }
            label { "Version " select name="version" {
                @for v in versions { option value=(v.version) { "v" (v.version) } }
            } }
            label { "to alias " input type="text" name="alias" value="production" required pattern="[A-Za-z0-9_.-]+"; }
            label { "Reason " input type="text" name="reason"; }
            button type="submit" { "Check the gate" }
            p.hint { "The gate policy is evaluated first; nothing moves until you confirm an allowed promotion." }
        }
    }
}

fn alias_timeline(viewer: &Viewer, model: &str, alias: &Alias) -> Markup {
    html! {
        section.alias-history data-alias=(alias.alias) {
            h3 { (alias.alias) " → " a href=(version_href(model, alias.version)) { "v" (alias.version) } }
            ol.timeline {
                @for m in &alias.history {
                    li data-kind=(m.kind) {
                        (layout::time(&m.at)) " "
                        strong { (m.kind) } " "
                        (m.from_version.map(|v| format!("v{v}")).unwrap_or_else(|| "—".into()))
                        " → "
                        (m.to_version.map(|v| format!("v{v}")).unwrap_or_else(|| "—".into()))
                        " by " span.actor { (m.actor) }
                        @if !m.reason.is_empty() { ": " q.reason { (m.reason) } }
                    }
                }
            }
            @if viewer.can(Role::Approver) {
                form.inline.rollback method="post" action={(model_href(model)) "/aliases/" (layout::seg(&alias.alias)) "/rollback"} {
                    (layout::csrf(viewer))
                    label { "Reason " input type="text" name="reason" required minlength="3"; }
                    button.danger type="submit" { "Roll back " (alias.alias) }
                }
            }
        }
    }
}

fn policy_section(
    viewer: &Viewer,
    model: &str,
    policy: Option<&PolicyRecord>,
    rejected: Option<&(String, String)>,
) -> Markup {
    let current = policy
        .map(|p| serde_json::to_string_pretty(&p.policy).unwrap_or_default())
        .unwrap_or_default();
    html! {
        @match policy {
            Some(p) => p { "Set by " (p.updated_by) " at " (layout::time(&p.updated_at)) "." },
            None => p.empty { "No monitoring policy: the evaluator does not watch this model." },
        }
        @if viewer.can(Role::Editor) {
            form.policy method="post" action={(model_href(model)) "/policy"} {
                (layout::csrf(viewer))
                (layout::inline_error(rejected.map(|r| r.1.as_str())))
                label for="policy" { "Policy (JSON, as " code { "PUT /api/v1/models/{model}/policy" } " takes it)" }
                textarea #policy name="policy" rows="14" spellcheck="false" {
                    (rejected.map(|r| r.0.as_str()).unwrap_or(&current))
                }
                button type="submit" { "Save policy" }
            }
        } @else if policy.is_some() {
            pre.json #policy-view { (current) }
        }
    }
}

fn gate_section(gate: Option<&GatePolicyRecord>) -> Markup {
    html! {
        @match gate {
            Some(g) => {
                p { "sha256 " code { (g.sha256) } ", set by " (g.updated_by) " at " (layout::time(&g.updated_at)) "." }
                pre.rego #gate-policy { (g.rego) }
            }
            None => p.empty { "No gate policy: every promotion is allowed (with a warning)." },
        }
    }
}

pub async fn set_policy(
    State(s): State<AppState>,
    viewer: Viewer,
    UiPath(model): UiPath<String>,
    body: Bytes,
) -> UiResult<Response> {
    let form = viewer.form(&body)?;
    let text = form.get("policy").unwrap_or_default().to_string();
    let rejected = |message: String| Extras {
        rejected_policy: Some((text.clone(), message)),
        ..Extras::default()
    };
    let outcome = match serde_json::from_str::<MonitoringPolicy>(&text) {
        Ok(policy) => crate::http::monitoring::store_policy(&s, &viewer.caller, &model, policy)
            .await
            .map(|_| ())
            .map_err(|e| (e.status, e.message)),
        Err(e) => Err((
            StatusCode::BAD_REQUEST,
            format!("the policy is not valid JSON for a monitoring policy: {e}"),
        )),
    };
    match outcome {
        Ok(()) => Ok(see_other(&model_href(&model), "policy_saved")),
        // Validation failures are shown beside the text that caused them.
        Err((status, message)) if status == StatusCode::BAD_REQUEST => Ok((
            status,
            render(&s, &viewer, &model, None, rejected(message)).await?,
        )
            .into_response()),
        Err((status, message)) => Err(UiError::new(status, message)),
    }
}

/// The version, alias and reason of a promotion form.
fn promotion(form: &Form) -> UiResult<(i64, PromoteRequest)> {
    let version = form
        .text("version")
        .parse()
        .map_err(|_| UiError::bad_request("choose a version to promote"))?;
    let alias = form.text("alias");
    if alias.is_empty() {
        return Err(UiError::bad_request(
            "name the alias to move, e.g. production",
        ));
    }
    Ok((
        version,
        PromoteRequest {
            alias,
            reason: form.text("reason"),
        },
    ))
}

/// Evaluates the gate and shows its decision with a confirm button when
/// it allows: nothing moves here.
pub async fn check_promotion(
    State(s): State<AppState>,
    viewer: Viewer,
    UiPath(model): UiPath<String>,
    body: Bytes,
) -> UiResult<Markup> {
    let form = viewer.form(&body)?;
    let actor = viewer.caller.require(Role::Editor)?;
    let (version, request) = promotion(&form)?;
    let report = gate::evaluate_for(
        &s.registry,
        &s.telemetry.store,
        actor,
        &model,
        version,
        Some(&request.alias),
        chrono::Utc::now(),
    )
    .await?;
    Ok(layout::page(
        "Promotion",
        Some(&viewer),
        Nav::Models,
        html! {
            nav.crumbs { a href="/ui/models" { "Models" } " / " a href=(model_href(&model)) { (model) } " / promote" }
            h1 { "Promote v" (version) " of " (model) " to " (request.alias) }
            @if report.allowed {
                p.allowed #gate-decision data-allowed="true" { "The gate allows this promotion." }
            } @else {
                p.denied #gate-decision data-allowed="false" { "The gate denies this promotion. Nothing was moved." }
                ul #gate-reasons { @for r in &report.reasons { li { (r) } } }
            }
            @if !report.warnings.is_empty() {
                h2 { "Warnings" }
                ul #gate-warnings { @for w in &report.warnings { li { (w) } } }
            }
            p { "Policy: " @match &report.policy_sha256 { Some(sha) => code { (sha) }, None => "none" } }
            details { summary { "What the policy saw (input)" } (layout::json_block(&report.input)) }
            @if report.allowed {
                form method="post" action={(model_href(&model)) "/promote"} {
                    (layout::csrf(&viewer))
                    input type="hidden" name="version" value=(version);
                    input type="hidden" name="alias" value=(request.alias);
                    input type="hidden" name="reason" value=(request.reason);
                    button #confirm-promotion type="submit" { "Move " (request.alias) " to v" (version) }
                }
            }
            p { a href=(model_href(&model)) { "Back to " (model) } }
        },
    ))
}

/// Moves the alias if the gate (evaluated again) allows it.
pub async fn promote(
    State(s): State<AppState>,
    viewer: Viewer,
    UiPath(model): UiPath<String>,
    body: Bytes,
) -> UiResult<Response> {
    let form = viewer.form(&body)?;
    let (version, request) = promotion(&form)?;
    promote_version(&s, &viewer.caller, &model, version, &request).await?;
    Ok(see_other(&model_href(&model), "promoted"))
}

pub async fn rollback(
    State(s): State<AppState>,
    viewer: Viewer,
    UiPath((model, alias)): UiPath<(String, String)>,
    body: Bytes,
) -> UiResult<Response> {
    let form = viewer.form(&body)?;
    let reason = form.text("reason");
    if reason.is_empty() {
        return Err(UiError::bad_request(
            "a rollback needs a reason: it is kept in the alias history and the audit log",
        ));
    }
    crate::http::registry::rollback(&s, &viewer.caller, &model, &alias, &reason).await?;
    Ok(see_other(&model_href(&model), "rolled_back"))
}
