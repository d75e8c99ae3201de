//! A dashboard's invariants, checked on its JSON model: what a reviewer of
//! a Grafana dashboard would otherwise have to catch by eye. It reports
//! problems; it must not change the dashboard.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::queries::{list, str_of};

/// The datasource template variables and the plugin each must select.
const DATASOURCE_VARIABLES: &[(&str, &str)] = &[
    ("prometheus", "prometheus"),
    ("postgres", "grafana-postgresql-datasource"),
];

/// Grafana's own pseudo-datasources, which have fixed uids everywhere.
const BUILTIN_UIDS: &[&str] = &["-- Grafana --", "-- Mixed --", "-- Dashboard --"];

/// Every problem found in a dashboard, one sentence each; empty when the
/// dashboard is fine.
///
/// - every panel except rows has a non-empty `description` (Grafana shows it
///   on the panel's ⓘ; rows cannot show one);
/// - panel ids are unique (rows' nested panels included);
/// - no datasource is named by a fixed uid or by name: each is
///   `{"type": …, "uid": "${variable}"}` so the dashboard works with any
///   datasource of that type;
/// - `prometheus` / `postgres` variables select the right plugin;
/// - every `$variable`, `${variable}` or `[[variable]]` used is defined
///   (Grafana's own `$__…` variables aside).
pub fn lint(dashboard: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let variables: BTreeMap<&str, &Value> = list(&dashboard["templating"]["list"])
        .map(|v| (str_of(&v["name"]), v))
        .collect();
    for (name, plugin) in DATASOURCE_VARIABLES {
        if let Some(v) = variables.get(name)
            && (v["type"] != "datasource" || v["query"] != *plugin)
        {
            problems.push(format!(
                "variable {name} must be {{\"type\": \"datasource\", \"query\": \"{plugin}\"}}"
            ));
        }
    }
    let mut ids = BTreeSet::new();
    panels(list(&dashboard["panels"]), &mut ids, &mut problems);
    datasources(dashboard, "", &mut problems);
    let mut used = BTreeSet::new();
    strings(dashboard, &mut |s| used.extend(variable_references(s)));
    for name in used {
        if !variables.contains_key(name.as_str()) {
            problems.push(format!("${name} is used but not defined as a variable"));
        }
    }
    problems
}

fn panels<'a>(
    ps: impl Iterator<Item = &'a Value>,
    ids: &mut BTreeSet<u64>,
    problems: &mut Vec<String>,
) {
    for p in ps {
        let title = str_of(&p["title"]);
        match p["id"].as_u64() {
            Some(id) if !ids.insert(id) => {
                problems.push(format!("panel id {id} (\"{title}\") is not unique"))
            }
            Some(_) => {}
            None => problems.push(format!("panel \"{title}\" has no numeric id")),
        }
        if p["type"] != "row" && str_of(&p["description"]).trim().is_empty() {
            problems.push(format!("panel \"{title}\" has no description"));
        }
        panels(list(&p["panels"]), ids, problems);
    }
}

/// Every `datasource` reference anywhere in the model.
fn datasources(v: &Value, path: &str, problems: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (key, child) in map {
                let here = format!("{path}/{key}");
                if key == "datasource" {
                    match child {
                        Value::Object(ds) => {
                            let uid = ds.get("uid").and_then(Value::as_str).unwrap_or("");
                            let templated = uid.starts_with("${") && uid.ends_with('}');
                            if !templated && !BUILTIN_UIDS.contains(&uid) {
                                problems.push(format!(
                                    "{here}: datasource uid {uid:?} is hard-coded; use a datasource variable (\"${{prometheus}}\", \"${{postgres}}\")"
                                ));
                            }
                        }
                        Value::String(name) => problems.push(format!(
                            "{here}: datasource named {name:?}; use {{\"type\": …, \"uid\": \"${{variable}}\"}}"
                        )),
                        _ => {}
                    }
                }
                datasources(child, &here, problems);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                datasources(child, &format!("{path}/{i}"), problems);
            }
        }
        _ => {}
    }
}

fn strings(v: &Value, f: &mut impl FnMut(&str)) {
    match v {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter().for_each(|c| strings(c, f)),
        Value::Object(map) => map.values().for_each(|c| strings(c, f)),
        _ => {}
    }
}

/// Names of the template variables a string refers to, in Grafana's three
/// syntaxes; `$__…` (Grafana's global variables and macros) are skipped.
pub(crate) fn variable_references(s: &str) -> Vec<String> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find(['$', '[']) {
        let after = &rest[i + 1..];
        let name: &str = if rest[i..].starts_with("${") {
            let inner = &after[1..];
            let end = inner.find(['}', ':', '.']).unwrap_or(inner.len());
            &inner[..end]
        } else if rest[i..].starts_with("[[") {
            let inner = &after[1..];
            let end = inner.find([']', ':']).unwrap_or(0);
            &inner[..end]
        } else if rest[i..].starts_with('$') {
            let end = after.find(|c| !is_name(c)).unwrap_or(after.len());
            &after[..end]
        } else {
            ""
        };
        // `$1` is a regex group (label_replace, regexp_replace), not a variable.
        let starts_like_a_name = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_');
        if starts_like_a_name && !name.starts_with("__") && name.chars().all(is_name) {
            out.push(name.to_string());
        }
        rest = after;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn good() -> Value {
        json!({
            "templating": {"list": [
                {"name": "prometheus", "type": "datasource", "query": "prometheus"},
                {"name": "model", "type": "custom", "query": "a,b"},
            ]},
            "panels": [
                {"id": 1, "type": "row", "title": "Row"},
                {"id": 2, "type": "timeseries", "title": "T", "description": "d",
                 "datasource": {"type": "prometheus", "uid": "${prometheus}"},
                 "targets": [{"refId": "A", "expr": "up{model=\"$model\"}[$__rate_interval]"}]},
            ],
        })
    }

    #[test]
    fn a_good_dashboard_has_no_problems() {
        assert_eq!(lint(&good()), Vec::<String>::new());
    }

    #[test]
    fn finds_each_kind_of_problem() {
        type Break = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(Break, &str)> = vec![
            (
                Box::new(|d| d["panels"][1]["description"] = json!(" ")),
                "panel \"T\" has no description",
            ),
            (
                Box::new(|d| d["panels"][1]["id"] = json!(1)),
                "panel id 1 (\"T\") is not unique",
            ),
            (
                Box::new(|d| d["panels"][1]["datasource"]["uid"] = json!("P1809F7CD0C75ACF3")),
                "/panels/1/datasource: datasource uid \"P1809F7CD0C75ACF3\" is hard-coded",
            ),
            (
                Box::new(|d| d["panels"][1]["targets"][0]["datasource"] = json!("Prometheus")),
                "datasource named \"Prometheus\"",
            ),
            (
                Box::new(|d| d["templating"]["list"][0]["query"] = json!("loki")),
                "variable prometheus must be",
            ),
            (
                Box::new(|d| d["panels"][1]["title"] = json!("v${version}")),
                "$version is used but not defined",
            ),
        ];
        for (break_it, want) in cases {
            let mut d = good();
            break_it(&mut d);
            let problems = lint(&d);
            assert!(
                problems.iter().any(|p| p.contains(want)),
                "{want}: {problems:#?}"
            );
        }
    }

    #[test]
    fn variable_references_in_every_syntax() {
        assert_eq!(
            variable_references(
                "a $model b ${version} c ${prometheus:queryparam} [[alias]] $__interval ${__value.raw} $1 x[0]"
            ),
            vec!["model", "version", "prometheus", "alias"]
        );
    }
}
