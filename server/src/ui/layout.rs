//! The page shell every UI page shares: head, navigation, who is signed
//! in, notices, and small pieces (badges, times, JSON blocks, pagers).

use maud::{DOCTYPE, Markup, html};
use serde_json::Value;

use super::session::{CSRF_FIELD, Viewer};

/// The navigation entries, one per top-level page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Models,
    Recommendations,
    Audit,
    Sql,
    Daemon,
    None,
}

const NAV: [(Nav, &str, &str); 5] = [
    (Nav::Models, "/ui/models", "Models"),
    (
        Nav::Recommendations,
        "/ui/recommendations",
        "Recommendations",
    ),
    (Nav::Audit, "/ui/audit", "Audit log"),
    (Nav::Sql, "/ui/sql", "SQL"),
    (Nav::Daemon, "/ui/daemon", "Daemon"),
];

/// A whole page.
pub fn page(title: &str, viewer: Option<&Viewer>, active: Nav, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · modelwatch" }
                link rel="stylesheet" href=(super::STYLESHEET_PATH);
            }
            body {
                header.top {
                    a.brand href="/ui/models" { "modelwatch" }
                    @if let Some(v) = viewer {
                        nav aria-label="main" {
                            ul {
                                @for (nav, href, label) in NAV {
                                    li { a href=(href) aria-current=[(nav == active).then_some("page")] { (label) } }
                                }
                            }
                        }
                        div.who {
                            span #who { (v.name()) " · " (v.role()) }
                            form method="post" action="/ui/logout" {
                                (csrf(v))
                                button.link type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main #main { (body) }
            }
        }
    }
}

/// The hidden CSRF field of a form.
pub fn csrf(viewer: &Viewer) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(viewer.csrf()); }
}

/// A notice after an action (fixed text chosen by the handler).
pub fn notice(text: Option<&str>) -> Markup {
    html! {
        @if let Some(t) = text {
            p.notice role="status" { (t) }
        }
    }
}

/// An error shown beside the form that caused it.
pub fn inline_error(text: Option<&str>) -> Markup {
    html! {
        @if let Some(t) = text {
            p.error role="alert" { (t) }
        }
    }
}

/// A version's health as a coloured word.
pub fn health_badge(health: Option<&str>) -> Markup {
    let (class, text) = match health {
        Some("healthy") => ("badge ok", "healthy"),
        Some("drifting") => ("badge warn", "drifting"),
        Some("degraded") => ("badge bad", "degraded"),
        Some("insufficient_data") => ("badge muted", "insufficient data"),
        Some(other) => ("badge muted", other),
        None => ("badge muted", "not evaluated"),
    };
    html! { span class=(class) data-health=(health.unwrap_or("none")) { (text) } }
}

/// A UTC time, machine-readable in `datetime`.
pub fn time(at: &chrono::DateTime<chrono::Utc>) -> Markup {
    html! { time datetime=(at.to_rfc3339()) { (at.format("%Y-%m-%d %H:%M:%S UTC")) } }
}

/// A JSON value, indented.
pub fn json_block(value: &Value) -> Markup {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    html! { pre.json { (text) } }
}

/// A "next page" link carrying the current filters.
pub fn pager(base: &str, query: &[(&str, String)], next_cursor: Option<&str>) -> Markup {
    let Some(cursor) = next_cursor else {
        return html! {};
    };
    let mut pairs = form_urlencoded::Serializer::new(String::new());
    for (k, v) in query.iter().filter(|(_, v)| !v.is_empty()) {
        pairs.append_pair(k, v);
    }
    pairs.append_pair("cursor", cursor);
    let href = format!("{base}?{}", pairs.finish());
    html! { nav.pager aria-label="pages" { a rel="next" href=(href) { "Next page →" } } }
}

/// A path segment escaped for a URL (names may hold anything).
pub fn seg(text: &str) -> String {
    url_escape(text)
}

fn url_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `/ui/models/{model}`.
pub fn model_href(model: &str) -> String {
    format!("/ui/models/{}", seg(model))
}

/// `/ui/models/{model}/versions/{version}`.
pub fn version_href(model: &str, version: i64) -> String {
    format!("/ui/models/{}/versions/{version}", seg(model))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_escape_everything_but_unreserved_characters() {
        assert_eq!(seg("fraud-v2_x.y~"), "fraud-v2_x.y~");
        assert_eq!(seg("a/b c"), "a%2Fb%20c");
        assert_eq!(seg("<img>"), "%3Cimg%3E");
        assert_eq!(version_href("a b", 3), "/ui/models/a%20b/versions/3");
    }

    #[test]
    fn pager_keeps_filters_and_drops_empty_ones() {
        let html = pager(
            "/ui/models",
            &[("q", "fr&aud".into()), ("owner", String::new())],
            Some("c1"),
        )
        .into_string();
        assert!(
            html.contains("href=\"/ui/models?q=fr%26aud&amp;cursor=c1\""),
            "{html}"
        );
        assert!(pager("/x", &[], None).into_string().is_empty());
    }
}
