//! Finds every query a dashboard runs: panel targets (rows' nested panels
//! too), annotations and template variable queries. It reads the Grafana
//! JSON model only; it must not judge the queries (the daemon's tests do).

use serde_json::Value;

use crate::{DASHBOARDS, Error, File, Result, parse};

/// The query language, decided by the datasource the query runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    PromQl,
    Sql,
}

/// One query of one dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The dashboard's file path (`grafana/modelwatch-fleet.json`).
    pub dashboard: &'static str,
    /// Where in the dashboard: `panel 7 "Title" target B`,
    /// `annotation "Alias moves"`, `variable model`.
    pub location: String,
    pub language: Language,
    /// As written in the dashboard: Grafana's macros and `$variables` are
    /// not expanded (see [`crate::expand_sql`]).
    pub text: String,
}

/// Every query of every embedded dashboard.
pub fn queries() -> Result<Vec<Query>> {
    let mut out = Vec::new();
    for file in DASHBOARDS {
        out.extend(queries_of(file)?);
    }
    Ok(out)
}

/// Every query of one dashboard.
pub fn queries_of(file: &File) -> Result<Vec<Query>> {
    let d = parse(file)?;
    let mut found = Found {
        dashboard: file.path,
        out: Vec::new(),
    };
    for v in list(&d["templating"]["list"]) {
        if v["type"] != "query" {
            continue;
        }
        let text = match &v["query"] {
            Value::Object(q) => q.get("query").cloned().unwrap_or(Value::Null),
            other => other.clone(),
        };
        let location = format!("variable {}", str_of(&v["name"]));
        found.add(location, &v["datasource"], &Value::Null, &text)?;
    }
    for a in list(&d["annotations"]["list"]) {
        if a["builtIn"].as_u64() == Some(1) {
            continue;
        }
        let location = format!("annotation \"{}\"", str_of(&a["name"]));
        // Grafana keeps an annotation's query either on the annotation
        // itself (older Prometheus annotations) or in its `target`.
        let target = if a["target"].is_object() {
            &a["target"]
        } else {
            a
        };
        found.query_of(location, &a["datasource"], target)?;
    }
    found.panels(list(&d["panels"]))?;
    Ok(found.out)
}

struct Found {
    dashboard: &'static str,
    out: Vec<Query>,
}

impl Found {
    fn panels<'a>(&mut self, panels: impl Iterator<Item = &'a Value>) -> Result<()> {
        for p in panels {
            for t in list(&p["targets"]) {
                let location = format!(
                    "panel {} \"{}\" target {}",
                    p["id"],
                    str_of(&p["title"]),
                    str_of(&t["refId"])
                );
                let datasource = if t["datasource"].is_object() {
                    &t["datasource"]
                } else {
                    &p["datasource"]
                };
                self.query_of(location, datasource, t)?;
            }
            // A collapsed row keeps its panels inside it.
            self.panels(list(&p["panels"]))?;
        }
        Ok(())
    }

    /// The query of a target: `expr` (Prometheus) or `rawSql` (PostgreSQL).
    fn query_of(&mut self, location: String, datasource: &Value, target: &Value) -> Result<()> {
        let text = if target["expr"].is_string() {
            &target["expr"]
        } else {
            &target["rawSql"]
        };
        self.add(location, datasource, target, text)
    }

    fn add(
        &mut self,
        location: String,
        datasource: &Value,
        target: &Value,
        text: &Value,
    ) -> Result<()> {
        let language = match datasource["type"].as_str() {
            Some("prometheus") => Language::PromQl,
            Some("grafana-postgresql-datasource" | "postgres") => Language::Sql,
            other => {
                return Err(self.error(format!(
                    "{location}: datasource type {other:?} is neither prometheus nor grafana-postgresql-datasource"
                )));
            }
        };
        // A query under the other language's key would be sent to the wrong
        // datasource by Grafana; refuse rather than check the wrong thing.
        let misplaced = match language {
            Language::PromQl => target.get("rawSql"),
            Language::Sql => target.get("expr"),
        };
        if misplaced.is_some() {
            return Err(self.error(format!(
                "{location}: the query field does not match its datasource ({language:?})"
            )));
        }
        let Some(text) = text.as_str().filter(|t| !t.trim().is_empty()) else {
            return Err(self.error(format!("{location}: no query")));
        };
        self.out.push(Query {
            dashboard: self.dashboard,
            location,
            language,
            text: text.to_string(),
        });
        Ok(())
    }

    fn error(&self, message: String) -> Error {
        Error::Query {
            file: self.dashboard.to_string(),
            message,
        }
    }
}

pub(crate) fn list(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array().into_iter().flatten()
}

pub(crate) fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leak(json: Value) -> File {
        File {
            path: "test.json",
            contents: Box::leak(json.to_string().into_boxed_str()),
        }
    }

    #[test]
    fn finds_targets_in_rows_annotations_and_variables() {
        let prom = serde_json::json!({"type": "prometheus", "uid": "${prometheus}"});
        let pg = serde_json::json!({"type": "grafana-postgresql-datasource", "uid": "${postgres}"});
        let file = leak(serde_json::json!({
            "templating": {"list": [
                {"name": "prometheus", "type": "datasource", "query": "prometheus"},
                {"name": "instance", "type": "query", "datasource": prom,
                 "query": {"query": "label_values(up, instance)", "refId": "X"}},
                {"name": "model", "type": "query", "datasource": pg, "query": "SELECT model FROM models"},
            ]},
            "annotations": {"list": [
                {"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}},
                {"name": "Moves", "datasource": pg, "target": {"rawSql": "SELECT 1"}},
                {"name": "Old", "datasource": prom, "expr": "changes(up[5m])"},
            ]},
            "panels": [
                {"id": 1, "type": "row", "title": "R", "collapsed": true, "panels": [
                    {"id": 2, "title": "In row", "datasource": prom,
                     "targets": [{"refId": "A", "expr": "rate(x_total[5m])"}]}
                ]},
                {"id": 3, "title": "Mixed", "datasource": {"type": "datasource", "uid": "-- Mixed --"},
                 "targets": [{"refId": "A", "datasource": pg, "rawSql": "SELECT 2"}]},
            ],
        }));
        let got: Vec<(String, Language, String)> = queries_of(&file)
            .unwrap()
            .into_iter()
            .map(|q| (q.location, q.language, q.text))
            .collect();
        let want = vec![
            (
                "variable instance".to_string(),
                Language::PromQl,
                "label_values(up, instance)".to_string(),
            ),
            (
                "variable model".into(),
                Language::Sql,
                "SELECT model FROM models".into(),
            ),
            (
                "annotation \"Moves\"".into(),
                Language::Sql,
                "SELECT 1".into(),
            ),
            (
                "annotation \"Old\"".into(),
                Language::PromQl,
                "changes(up[5m])".into(),
            ),
            (
                "panel 2 \"In row\" target A".into(),
                Language::PromQl,
                "rate(x_total[5m])".into(),
            ),
            (
                "panel 3 \"Mixed\" target A".into(),
                Language::Sql,
                "SELECT 2".into(),
            ),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn refuses_a_query_on_the_wrong_datasource_or_an_empty_one() {
        let prom = serde_json::json!({"type": "prometheus", "uid": "${prometheus}"});
        for target in [
            serde_json::json!({"refId": "A", "rawSql": "SELECT 1"}),
            serde_json::json!({"refId": "A", "expr": "  "}),
        ] {
            let file = leak(serde_json::json!({
                "panels": [{"id": 1, "title": "T", "datasource": prom, "targets": [target]}]
            }));
            let err = queries_of(&file).unwrap_err().to_string();
            assert!(err.contains("panel 1 \"T\" target A"), "{err}");
        }
        let file = leak(serde_json::json!({
            "panels": [{"id": 1, "title": "T", "datasource": {"type": "loki", "uid": "${loki}"},
                        "targets": [{"refId": "A", "expr": "{job=\"x\"}"}]}]
        }));
        assert!(
            queries_of(&file)
                .unwrap_err()
                .to_string()
                .contains("\"loki\"")
        );
    }
}
