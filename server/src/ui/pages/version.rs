//! `/ui/models/{model}/versions/{version}`: lineage, tags, features,
//! the model card, signature, environment and files
//! ([`super::version_metadata`]), recommendations with their evidence, and the health pictures: drift per
//! feature over time (with the policy's threshold), the latest evaluation
//! ranked by effect size, reference vs current distribution of a feature,
//! and latency and error rate around each alias move with the canary
//! verdict. The pictures come from SQL over the history tables, through
//! the same engine and limits as `POST /api/v1/sql`.

use std::collections::BTreeMap;

use axum::extract::State;
use maud::{Markup, html};

use modelwatch_registry::{
    AliasMove, FeatureKind, PageRequest, Recommendation, RecommendationFilter, RecommendationKind,
    RecommendationStatus, Role, Version,
};

use crate::artifacts::VersionFiles;
use crate::http::AppState;
use crate::ui::charts::{self, Marker, Series, Threshold, number};
use crate::ui::layout::{self, Nav, model_href, version_href};
use crate::ui::pages::models::tags;
use crate::ui::pages::version_metadata;
use crate::ui::query::{self, Table, literal};
use crate::ui::session::Viewer;
use crate::ui::{UiPath, UiQuery, UiResult, done_notice};

/// Most features drawn over time (the highest-ranked in the latest
/// evaluation); the others are in the table.
const CHARTED_FEATURES: usize = 8;
/// Most points per drift chart (evenly thinned, the newest always kept).
const POINTS_PER_CHART: usize = 120;
/// Bins of a numeric distribution.
const BINS: usize = 20;
/// Categories of a categorical distribution (the most frequent).
const CATEGORIES: usize = 15;
/// Alias moves shown with their latency and error rate.
const MOVES_SHOWN: usize = 5;
/// Longest parent chain followed.
const CHAIN: usize = 20;

pub async fn show(
    State(s): State<AppState>,
    viewer: Viewer,
    UiPath((model, version)): UiPath<(String, i64)>,
    UiQuery(q): UiQuery,
) -> UiResult<Markup> {
    viewer.caller.require(Role::Reader)?;
    let v = s.registry.get_version(&model, version).await?;
    let chain = parent_chain(&s, &v).await?;
    let recommendations = s
        .registry
        .list_recommendations(
            &RecommendationFilter {
                model: Some(model.clone()),
                version: Some(version),
                ..RecommendationFilter::default()
            },
            &PageRequest::new(Some(200), None)?,
        )
        .await?
        .items;
    let drift = drift_history(&s, &model, version).await?;
    let latest = latest_evaluation(&drift);
    let feature = q
        .get("feature")
        .filter(|f| v.features.contains_key(*f))
        .map(str::to_string)
        .or_else(|| latest.first().map(|r| r.feature.clone()))
        .or_else(|| v.features.keys().next().cloned());
    let distribution = match &feature {
        Some(f) => Some(distribution(&s, &v, f, latest.first()).await?),
        None => None,
    };
    let files = VersionFiles::load(s.registry.as_ref(), &s.artifacts, &model, version).await?;
    let moves = alias_moves(&s, &model, version).await?;
    let mut traffic = Vec::new();
    for m in moves.iter().take(MOVES_SHOWN) {
        traffic.push(move_traffic(&s, &model, m, &recommendations).await?);
    }
    Ok(layout::page(
        &format!("{model} v{version}"),
        Some(&viewer),
        Nav::Models,
        html! {
            nav.crumbs { a href="/ui/models" { "Models" } " / " a href=(model_href(&model)) { (model) } " / v" (version) }
            h1 #version-title { (model) " v" (version) " " (layout::health_badge(v.tags.get("modelwatch.health").map(String::as_str))) }
            (layout::notice(done_notice(q.get("done"))))
            @if !v.description.is_empty() { p.description { (v.description) } }
            (summary(&v))
            h2 #drift { "Drift over time" }
            (drift_charts(&drift, &latest))
            h2 { "Latest evaluation" }
            (latest_table(&latest))
            h2 { "Distribution" }
            (distribution_section(&v, feature.as_deref(), distribution.as_ref()))
            h2 { "Recommendations" }
            (recommendation_list(&viewer, &recommendations, &version_href(&model, version)))
            h2 { "Latency and errors around alias moves" }
            @if traffic.is_empty() { p.empty { "No alias has moved to or from this version." } }
            @for t in &traffic { (t) }
            h2 { "Model card" }
            (version_metadata::model_card(&v.metadata))
            h2 { "Format and signature" }
            (version_metadata::format_and_signature(&v.metadata))
            h2 { "Environment" }
            (version_metadata::environment(&v.metadata))
            h2 #artifacts { "Files" }
            (version_metadata::files(&files))
            h2 { "Lineage" }
            (lineage(&v, &chain))
            h2 { "Tags" }
            (tags(&v.tags))
            h2 { "Features" }
            (features(&v))
        },
    ))
}

fn summary(v: &Version) -> Markup {
    html! {
        dl.summary {
            dt { "status" } dd { (v.status) }
            dt { "stage" } dd { (v.stage) }
            dt { "aliases" } dd { @for a in &v.aliases { span.alias { (a) } " " } }
            dt { "created" } dd { (v.created_by) ", " (layout::time(&v.created_at)) }
            @if let Some(uri) = &v.source_uri { dt { "source" } dd { code { (uri) } } }
            @if let Some(d) = &v.artifact_digest { dt { "artifact digest" } dd { code { (d) } } }
            @if let Some(r) = &v.reference_uri { dt { "reference data" } dd { code { (r) } } }
        }
    }
}

/// The version's ancestors through `lineage.parent_version`, oldest first,
/// ending with the version itself.
async fn parent_chain(s: &AppState, v: &Version) -> UiResult<Vec<i64>> {
    let mut chain = vec![v.version];
    let mut next = v.lineage.parent_version;
    while let Some(parent) = next {
        if chain.len() >= CHAIN || chain.contains(&parent) {
            break;
        }
        chain.push(parent);
        next = match s.registry.get_version(&v.model, parent).await {
            Ok(p) => p.lineage.parent_version,
            Err(modelwatch_registry::Error::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        };
    }
    chain.reverse();
    Ok(chain)
}

fn lineage(v: &Version, chain: &[i64]) -> Markup {
    let l = &v.lineage;
    let items: Vec<(String, String)> = chain
        .iter()
        .map(|n| (format!("v{n}"), version_href(&v.model, *n)))
        .collect();
    html! {
        dl.summary #lineage {
            dt { "code commit" } dd { (l.code_commit.as_deref().unwrap_or("—")) }
            dt { "run" } dd { (v.run_id.as_deref().unwrap_or("—")) }
            dt { "training data" }
            dd {
                @if l.training_data.is_empty() { "—" }
                ul { @for d in &l.training_data {
                    li { code { (d.uri) } @if let Some(digest) = &d.digest { " " code.digest { (digest) } } }
                } }
            }
        }
        @if chain.len() > 1 { (charts::chain("parent-chain", &items)) }
        div.two {
            table #parameters {
                caption { "Parameters" }
                @if l.parameters.is_empty() { tr { td.empty { "none recorded" } } }
                @for (k, p) in &l.parameters { tr { th { (k) } td { (p) } } }
            }
            table #metrics {
                caption { "Metrics" }
                @if l.metrics.is_empty() { tr { td.empty { "none recorded" } } }
                @for (k, m) in &l.metrics { tr { th { (k) } td.num { (number(*m)) } } }
            }
        }
    }
}

fn features(v: &Version) -> Markup {
    html! {
        @if v.features.is_empty() { p.empty { "No declared features." } }
        ul.tags #features {
            @for (name, kind) in &v.features {
                li.tag { a href={(version_href(&v.model, v.version)) "?feature=" (layout::seg(name)) "#distribution"} { (name) } " " span.k { (kind) } }
            }
        }
    }
}

/// Open recommendations first, then the rest, newest first within each.
pub fn recommendation_list(viewer: &Viewer, recs: &[Recommendation], back: &str) -> Markup {
    let mut ordered: Vec<&Recommendation> = recs.iter().collect();
    ordered.sort_by_key(|r| {
        (
            r.status != RecommendationStatus::Open,
            std::cmp::Reverse(r.created_at),
        )
    });
    html! {
        @if ordered.is_empty() { p.empty { "No recommendations." } }
        @for r in ordered { (recommendation(viewer, r, back)) }
    }
}

/// One recommendation: what, why in words, the evidence in numbers, and
/// (for editors, while open) acknowledge / dismiss with a note.
pub fn recommendation(viewer: &Viewer, r: &Recommendation, back: &str) -> Markup {
    html! {
        article.recommendation data-id=(r.id) data-status=(r.status) data-kind=(r.kind) {
            h3 {
                span class={"badge " (severity_class(r))} { (r.severity) } " "
                (r.kind) " · " a href=(version_href(&r.model, r.version)) { (r.model) " v" (r.version) }
                " · " span.status { (r.status) }
            }
            p.reason { (r.reason) }
            p.meta {
                "raised by " (r.raised_by) " at " (layout::time(&r.created_at))
                @if let Some(by) = &r.acknowledged_by { "; acknowledged by " span.acknowledged-by { (by) } }
                @if let Some(by) = &r.resolved_by { "; " (r.status) " by " (by) }
                @if let Some(note) = &r.resolution_note { @if !note.is_empty() { ": " q { (note) } } }
            }
            details { summary { "Evidence" } (layout::json_block(&r.evidence)) }
            @if r.status == RecommendationStatus::Open && viewer.can(Role::Editor) {
                form.inline method="post" action={"/ui/recommendations/" (r.id) "/acknowledge"} {
                    (layout::csrf(viewer))
                    input type="hidden" name="back" value=(back);
                    label { "Note " input type="text" name="note"; }
                    button type="submit" name="transition" value="acknowledge" { "Acknowledge" }
                    button.danger type="submit" formaction={"/ui/recommendations/" (r.id) "/dismiss"} { "Dismiss" }
                }
            }
        }
    }
}

fn severity_class(r: &Recommendation) -> &'static str {
    match r.severity {
        modelwatch_registry::Severity::Critical => "bad",
        modelwatch_registry::Severity::Warning => "warn",
        modelwatch_registry::Severity::Info => "muted",
    }
}

/// One `drift_results` row as the page uses it.
#[derive(Debug, Clone)]
struct DriftRow {
    ts_ms: i64,
    evaluation_id: String,
    feature: String,
    method: String,
    statistic: Option<f64>,
    p_value: Option<f64>,
    threshold: f64,
    decision: String,
    n_reference: Option<f64>,
    n_current: Option<f64>,
    window: (String, String),
}

impl DriftRow {
    /// What the threshold was compared with: the (adjusted) p-value of a
    /// test, the statistic of a distance.
    fn compared(&self) -> Option<f64> {
        self.p_value.or(self.statistic)
    }

    fn compared_name(&self) -> &'static str {
        if self.p_value.is_some() {
            "p-value"
        } else {
            "statistic"
        }
    }
}

/// The version's drift results of the last 30 days, oldest first.
async fn drift_history(s: &AppState, model: &str, version: i64) -> UiResult<Vec<DriftRow>> {
    let sql = format!(
        "SELECT CAST(date_part('epoch', ts) * 1000 AS BIGINT) AS ts_ms, evaluation_id, feature, method, \
         statistic, coalesce(adjusted_p_value, p_value) AS p_value, threshold, decision, n_reference, n_current, \
         to_char(window_start, '%Y-%m-%dT%H:%M:%S%.6fZ') AS window_start, to_char(window_end, '%Y-%m-%dT%H:%M:%S%.6fZ') AS window_end \
         FROM {table} WHERE model = {model} AND version = {version} AND ts > now() - INTERVAL '30 days' \
         ORDER BY ts, feature",
        table = modelwatch_types::tables::DRIFT_RESULTS,
        model = literal(model),
        version = literal(&version.to_string()),
    );
    let t = query::run(s, sql, 200_000).await?;
    Ok((0..t.rows.len())
        .filter_map(|i| {
            Some(DriftRow {
                ts_ms: t.number(i, "ts_ms")? as i64,
                evaluation_id: t.text(i, "evaluation_id")?.to_string(),
                feature: t.text(i, "feature")?.to_string(),
                method: t.text(i, "method")?.to_string(),
                statistic: t.number(i, "statistic"),
                p_value: t.number(i, "p_value"),
                threshold: t.number(i, "threshold")?,
                decision: t.text(i, "decision")?.to_string(),
                n_reference: t.number(i, "n_reference"),
                n_current: t.number(i, "n_current"),
                window: (
                    t.text(i, "window_start")?.to_string(),
                    t.text(i, "window_end")?.to_string(),
                ),
            })
        })
        .collect())
}

/// The rows of the newest evaluation, largest effect (statistic) first.
fn latest_evaluation(rows: &[DriftRow]) -> Vec<DriftRow> {
    let Some(last) = rows.last() else {
        return vec![];
    };
    let mut latest: Vec<DriftRow> = rows
        .iter()
        .filter(|r| r.evaluation_id == last.evaluation_id)
        .cloned()
        .collect();
    latest.sort_by(|a, b| {
        b.statistic
            .unwrap_or(f64::NEG_INFINITY)
            .total_cmp(&a.statistic.unwrap_or(f64::NEG_INFINITY))
            .then_with(|| a.feature.cmp(&b.feature))
    });
    latest
}

/// At most `n` of `points`, evenly spaced, always keeping the newest.
fn thin(points: Vec<(i64, f64)>, n: usize) -> Vec<(i64, f64)> {
    if points.len() <= n || n < 2 {
        return points;
    }
    let step = (points.len() - 1) as f64 / (n - 1) as f64;
    (0..n)
        .map(|i| points[((i as f64 * step).round() as usize).min(points.len() - 1)])
        .collect()
}

fn drift_charts(rows: &[DriftRow], latest: &[DriftRow]) -> Markup {
    let mut by_feature: BTreeMap<&str, Vec<&DriftRow>> = BTreeMap::new();
    for r in rows {
        by_feature.entry(&r.feature).or_default().push(r);
    }
    html! {
        @if rows.is_empty() {
            p.empty #no-drift { "No drift results in the last 30 days: set a monitoring policy on an alias of this version, or run " code { "modelwatch evaluate" } "." }
        }
        div.charts {
            @for top in latest.iter().take(CHARTED_FEATURES) {
                @if let Some(history) = by_feature.get(top.feature.as_str()) {
                    @let newest = history.last().copied().unwrap_or(top);
                    @let points = thin(history.iter().filter_map(|r| Some((r.ts_ms, r.compared()?))).collect(), POINTS_PER_CHART);
                    @let title = format!("{} — {} ({}), drift when {}", top.feature, newest.method, newest.compared_name(),
                        if newest.p_value.is_some() { "below the threshold" } else { "at or above the threshold" });
                    (charts::time_chart(
                        &format!("drift-{}", layout::seg(&top.feature)),
                        &title,
                        newest.compared_name(),
                        &[Series { name: top.feature.clone(), points }],
                        Some(&Threshold { value: newest.threshold, label: format!("threshold {}", number(newest.threshold)) }),
                        &[],
                    ))
                }
            }
        }
    }
}

fn latest_table(latest: &[DriftRow]) -> Markup {
    html! {
        @if let Some(first) = latest.first() {
            p { "Evaluation " code { (first.evaluation_id) } " at " (charts::time_label(first.ts_ms)) " UTC, window " (first.window.0) " – " (first.window.1) "." }
            table #latest-evaluation {
                thead { tr {
                    th { "feature" } th { "method" } th { "statistic" } th { "p-value" }
                    th { "threshold" } th { "decision" } th { "reference n" } th { "current n" }
                } }
                tbody {
                    @for r in latest {
                        tr data-feature=(r.feature) data-decision=(r.decision) {
                            td { (r.feature) } td { (r.method) }
                            td.num { (r.statistic.map(number).unwrap_or_default()) }
                            td.num { (r.p_value.map(number).unwrap_or_default()) }
                            td.num { (number(r.threshold)) }
                            td { span class={"badge " (if r.decision == "drift" { "bad" } else { "muted" })} { (r.decision) } }
                            td.num { (r.n_reference.map(number).unwrap_or_default()) }
                            td.num { (r.n_current.map(number).unwrap_or_default()) }
                        }
                    }
                }
            }
        } @else {
            p.empty { "Not evaluated yet." }
        }
    }
}

/// Reference vs current shares of a feature's values.
struct Distribution {
    bins: Vec<String>,
    reference: Vec<f64>,
    current: Vec<f64>,
    counts: (f64, f64),
    window: Option<(String, String)>,
}

/// The current window's filter: the latest evaluation's window, or the
/// last day when the version was never evaluated.
fn current_window(latest: Option<&DriftRow>) -> (String, Option<(String, String)>) {
    match latest {
        Some(r) => (
            format!(
                "ts >= {} AND ts < {}",
                literal(&r.window.0),
                literal(&r.window.1)
            ),
            Some(r.window.clone()),
        ),
        None => ("ts > now() - INTERVAL '1 day'".into(), None),
    }
}

async fn distribution(
    s: &AppState,
    v: &Version,
    feature: &str,
    latest: Option<&DriftRow>,
) -> UiResult<Distribution> {
    let (window, shown) = current_window(latest);
    let who = format!(
        "model = {} AND version = {}",
        literal(&v.model),
        literal(&v.version.to_string())
    );
    let reference = modelwatch_types::tables::REFERENCE;
    let inferences = modelwatch_types::tables::INFERENCES;
    let numeric = v.features.get(feature) != Some(&FeatureKind::Categorical);
    let f = literal(feature);
    let sides = if numeric {
        format!(
            "SELECT 'reference' AS side, features_num[{f}] AS x FROM {reference} WHERE {who} AND features_num[{f}] IS NOT NULL \
             UNION ALL SELECT 'current' AS side, features_num[{f}] AS x FROM {inferences} WHERE {who} AND {window} AND features_num[{f}] IS NOT NULL"
        )
    } else {
        format!(
            "SELECT 'reference' AS side, features_str[{f}] AS x FROM {reference} WHERE {who} AND features_str[{f}] IS NOT NULL \
             UNION ALL SELECT 'current' AS side, features_str[{f}] AS x FROM {inferences} WHERE {who} AND {window} AND features_str[{f}] IS NOT NULL"
        )
    };
    let t: Table = if numeric {
        let bounds = query::run(
            s,
            format!("SELECT min(x) AS lo, max(x) AS hi FROM ({sides}) AS v WHERE NOT isnan(x)"),
            1,
        )
        .await?;
        let (Some(lo), Some(hi)) = (bounds.number(0, "lo"), bounds.number(0, "hi")) else {
            return Ok(Distribution {
                bins: vec![],
                reference: vec![],
                current: vec![],
                counts: (0.0, 0.0),
                window: shown,
            });
        };
        let width = if hi > lo {
            (hi - lo) / BINS as f64
        } else {
            1.0
        };
        let t = query::run(
            s,
            format!(
                "SELECT side, least(CAST(floor((x - {lo:e}) / {width:e}) AS BIGINT), {last}) AS bin, count(*) AS n \
                 FROM ({sides}) AS v WHERE NOT isnan(x) GROUP BY side, bin ORDER BY bin",
                last = BINS - 1
            ),
            10_000,
        )
        .await?;
        let labels = (0..BINS).map(|b| number(lo + width * b as f64)).collect();
        return Ok(shares(labels, &t, |bin| bin.parse::<usize>().ok(), shown));
    } else {
        query::run(
            s,
            format!("SELECT side, x AS bin, count(*) AS n FROM ({sides}) AS v GROUP BY side, x ORDER BY n DESC"),
            10_000,
        )
        .await?
    };
    // The most frequent categories over both sides.
    let mut totals: BTreeMap<String, f64> = BTreeMap::new();
    for i in 0..t.rows.len() {
        if let (Some(bin), Some(n)) = (t.text(i, "bin"), t.number(i, "n")) {
            *totals.entry(bin.to_string()).or_default() += n;
        }
    }
    let mut top: Vec<(String, f64)> = totals.into_iter().collect();
    top.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    top.truncate(CATEGORIES);
    let labels: Vec<String> = top.into_iter().map(|(k, _)| k).collect();
    let index = labels.clone();
    Ok(shares(
        labels,
        &t,
        move |bin| index.iter().position(|l| l == bin),
        shown,
    ))
}

/// Counts per side and bin turned into shares of each side's total.
fn shares(
    bins: Vec<String>,
    t: &Table,
    position: impl Fn(&str) -> Option<usize>,
    window: Option<(String, String)>,
) -> Distribution {
    let mut reference = vec![0.0; bins.len()];
    let mut current = vec![0.0; bins.len()];
    let (mut n_ref, mut n_cur) = (0.0, 0.0);
    for i in 0..t.rows.len() {
        let (Some(side), Some(bin), Some(n)) =
            (t.text(i, "side"), t.text(i, "bin"), t.number(i, "n"))
        else {
            continue;
        };
        let total = if side == "reference" {
            &mut n_ref
        } else {
            &mut n_cur
        };
        *total += n;
        if let Some(p) = position(bin) {
            let target = if side == "reference" {
                &mut reference
            } else {
                &mut current
            };
            target[p] += n;
        }
    }
    for (values, total) in [(&mut reference, n_ref), (&mut current, n_cur)] {
        if total > 0.0 {
            values.iter_mut().for_each(|v| *v /= total);
        }
    }
    Distribution {
        bins,
        reference,
        current,
        counts: (n_ref, n_cur),
        window,
    }
}

fn distribution_section(v: &Version, feature: Option<&str>, d: Option<&Distribution>) -> Markup {
    html! {
        section #distribution {
            form.inline method="get" action=(version_href(&v.model, v.version)) {
                label { "Feature " select name="feature" {
                    @for name in v.features.keys() {
                        option value=(name) selected[Some(name.as_str()) == feature] { (name) }
                    }
                } }
                button type="submit" { "Show" }
            }
            @match (feature, d) {
                (Some(f), Some(d)) => {
                    p {
                        "Reference: " (number(d.counts.0)) " values; current: " (number(d.counts.1)) " values"
                        @match &d.window { Some((a, b)) => { " (the latest evaluation's window, " (a) " – " (b) ")." }, None => { " (the last day)." } }
                    }
                    (charts::bar_chart("distribution-chart", &format!("{f}: share of values, reference vs current"), "share", &d.bins,
                        &[("reference", d.reference.clone()), ("current", d.current.clone())]))
                }
                _ => p.empty { "No features to show." },
            }
        }
    }
}

/// Every move of an alias of the model to or from this version, newest first.
async fn alias_moves(
    s: &AppState,
    model: &str,
    version: i64,
) -> UiResult<Vec<(String, AliasMove)>> {
    let mut moves: Vec<(String, AliasMove)> = s
        .registry
        .list_aliases(model)
        .await?
        .into_iter()
        .flat_map(|a| {
            let name = a.alias.clone();
            a.history.into_iter().map(move |m| (name.clone(), m))
        })
        .filter(|(_, m)| m.to_version == Some(version) || m.from_version == Some(version))
        .collect();
    moves.sort_by_key(|m| std::cmp::Reverse(m.1.at));
    Ok(moves)
}

/// Latency and error rate of the model's spans an hour either side of a
/// move, per version, with the move marked and the canary verdict.
async fn move_traffic(
    s: &AppState,
    model: &str,
    (alias, m): &(String, AliasMove),
    recommendations: &[Recommendation],
) -> UiResult<Markup> {
    let from = m.at - chrono::Duration::hours(1);
    let to = m.at + chrono::Duration::hours(1);
    let sql = format!(
        "SELECT CAST(date_part('epoch', date_bin(INTERVAL '5 minutes', ts)) * 1000 AS BIGINT) AS bucket_ms, version, \
         avg(duration_ms) AS latency_ms, avg(CASE WHEN status_code = 'error' THEN 1.0 ELSE 0.0 END) AS error_rate \
         FROM {spans} WHERE model = {model} AND ts >= {from} AND ts < {to} GROUP BY 1, 2 ORDER BY 1",
        spans = modelwatch_types::tables::SPANS,
        model = literal(model),
        from = literal(&from.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        to = literal(&to.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
    );
    let t = query::run(s, sql, 10_000).await?;
    let mut latency: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    let mut errors: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    for i in 0..t.rows.len() {
        let (Some(at), Some(v)) = (t.number(i, "bucket_ms"), t.text(i, "version")) else {
            continue;
        };
        let name = format!("v{v}");
        if let Some(l) = t.number(i, "latency_ms") {
            latency
                .entry(name.clone())
                .or_default()
                .push((at as i64, l));
        }
        if let Some(e) = t.number(i, "error_rate") {
            errors.entry(name).or_default().push((at as i64, e));
        }
    }
    let series = |map: BTreeMap<String, Vec<(i64, f64)>>| -> Vec<Series> {
        map.into_iter()
            .map(|(name, points)| Series { name, points })
            .collect()
    };
    let label = format!(
        "{alias}: {} {} → {}",
        m.kind,
        m.from_version
            .map(|v| format!("v{v}"))
            .unwrap_or_else(|| "—".into()),
        m.to_version
            .map(|v| format!("v{v}"))
            .unwrap_or_else(|| "—".into()),
    );
    let marker = [Marker {
        at_ms: m.at.timestamp_millis(),
        label: label.clone(),
    }];
    // A failing canary verdict leaves a rollback recommendation on the
    // deployed version after the move; a passing one leaves nothing.
    let failed = recommendations.iter().find(|r| {
        r.kind == RecommendationKind::Rollback
            && Some(r.version) == m.to_version
            && r.created_at >= m.at
    });
    let id = format!("move-{}-{}", layout::seg(alias), m.at.timestamp_millis());
    Ok(html! {
        section.move id=(id) data-kind=(m.kind) {
            h3 { (label) " at " (layout::time(&m.at)) " by " (m.actor) }
            @match failed {
                Some(r) => p.verdict.denied data-verdict="failed" { "Canary verdict: failed — " (r.reason) },
                None if m.kind == modelwatch_registry::MoveKind::Set => p.verdict data-verdict="no-failure" { "Canary verdict: no failure found (a failing verdict would have raised a rollback recommendation)." },
                None => p.verdict data-verdict="not-judged" { "Not a deployment: not judged." },
            }
            div.two {
                (charts::time_chart(&format!("{id}-latency"), "mean span latency", "ms", &series(latency), None, &marker))
                (charts::time_chart(&format!("{id}-errors"), "error rate", "share", &series(errors), None, &marker))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinning_keeps_the_ends_and_at_most_n_points() {
        let points: Vec<(i64, f64)> = (0..1000).map(|i| (i, i as f64)).collect();
        let thinned = thin(points, 120);
        assert_eq!(thinned.len(), 120);
        assert_eq!(thinned.first(), Some(&(0, 0.0)));
        assert_eq!(thinned.last(), Some(&(999, 999.0)));
        assert_eq!(thin(vec![(1, 1.0)], 120), vec![(1, 1.0)]);
    }

    fn row(evaluation: &str, feature: &str, statistic: Option<f64>) -> DriftRow {
        DriftRow {
            ts_ms: 0,
            evaluation_id: evaluation.into(),
            feature: feature.into(),
            method: "ks".into(),
            statistic,
            p_value: Some(0.5),
            threshold: 0.05,
            decision: "no_drift".into(),
            n_reference: None,
            n_current: None,
            window: ("a".into(), "b".into()),
        }
    }

    #[test]
    fn the_latest_evaluation_is_ranked_by_effect_size() {
        let rows = vec![
            row("e1", "a", Some(0.9)),
            row("e2", "a", Some(0.1)),
            row("e2", "b", Some(0.3)),
            row("e2", "c", None),
        ];
        let latest = latest_evaluation(&rows);
        let order: Vec<&str> = latest.iter().map(|r| r.feature.as_str()).collect();
        assert_eq!(order, ["b", "a", "c"]);
        // A p-value test is drawn by its p-value, a distance by its statistic.
        assert_eq!(latest[0].compared(), Some(0.5));
        let mut distance = row("e", "d", Some(0.2));
        distance.p_value = None;
        assert_eq!(
            (distance.compared(), distance.compared_name()),
            (Some(0.2), "statistic")
        );
    }

    #[test]
    fn shares_divide_each_side_by_its_own_total() {
        let t = Table {
            columns: vec!["side".into(), "bin".into(), "n".into()],
            rows: vec![
                vec![Some("reference".into()), Some("0".into()), Some("3".into())],
                vec![Some("reference".into()), Some("1".into()), Some("1".into())],
                vec![Some("current".into()), Some("1".into()), Some("2".into())],
            ],
            truncated: false,
        };
        let d = shares(vec!["x".into(), "y".into()], &t, |b| b.parse().ok(), None);
        assert_eq!(d.reference, vec![0.75, 0.25]);
        assert_eq!(d.current, vec![0.0, 1.0]);
        assert_eq!(d.counts, (4.0, 2.0));
    }
}
