//! Printing replies: tables for people, raw JSON for scripts (`--json`).

use comfy_table::{ContentArrangement, Table, presets::UTF8_BORDERS_ONLY};
use serde_json::Value;

/// One table column: a header and a JSON pointer into each item.
pub type Column = (&'static str, &'static str);

fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| cell(Some(i)))
            .collect::<Vec<_>>()
            .join(", "),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| format!("{k}={}", cell(Some(v))))
            .collect::<Vec<_>>()
            .join(", "),
        Some(other) => other.to_string(),
    }
}

fn table() -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Dynamic);
    t
}

/// A list of records, one row each.
pub fn rows(items: &[Value], columns: &[Column]) -> String {
    let mut t = table();
    t.set_header(columns.iter().map(|(h, _)| *h));
    for item in items {
        t.add_row(columns.iter().map(|(_, ptr)| cell(item.pointer(ptr))));
    }
    t.to_string()
}

/// A JSON array's items as rows (no rows when it is not an array).
pub fn list(value: &Value, columns: &[Column]) -> String {
    rows(
        value.as_array().map(Vec::as_slice).unwrap_or_default(),
        columns,
    )
}

/// What a command did, for people: `--json` prints nothing where the
/// daemon answered nothing.
pub fn done(json: bool, message: impl std::fmt::Display) {
    if !json {
        println!("{message}");
    }
}

/// Rows whose columns are only known at run time (SQL results).
pub fn dynamic_rows(columns: &[String], items: &[Value]) -> String {
    let mut t = table();
    t.set_header(columns.iter().map(String::as_str));
    for item in items {
        t.add_row(columns.iter().map(|c| cell(item.get(c))));
    }
    t.to_string()
}

/// One record, one field per row.
pub fn record(item: &Value, columns: &[Column]) -> String {
    let mut t = table();
    for (h, ptr) in columns {
        t.add_row(vec![h.to_string(), cell(item.pointer(ptr))]);
    }
    t.to_string()
}

pub fn print(json: bool, value: &Value, render: impl FnOnce(&Value) -> String) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        );
    } else {
        println!("{}", render(value));
    }
}

/// A page: the items as rows, and how to get the next page.
pub fn page(value: &Value, columns: &[Column]) -> String {
    let items = value["items"].as_array().cloned().unwrap_or_default();
    let mut out = rows(&items, columns);
    if let Some(next) = value["next_cursor"].as_str() {
        out.push_str(&format!("\nmore: pass --cursor {next}"));
    }
    out
}

pub const MODEL_COLUMNS: &[Column] = &[
    ("name", "/name"),
    ("owner", "/owner"),
    ("latest", "/latest_version"),
    ("aliases", "/aliases"),
    ("tags", "/tags"),
    ("updated", "/updated_at"),
];
pub const VERSION_COLUMNS: &[Column] = &[
    ("version", "/version"),
    ("status", "/status"),
    ("aliases", "/aliases"),
    ("run", "/run_id"),
    ("source", "/source_uri"),
    ("created by", "/created_by"),
    ("created", "/created_at"),
];
pub const VERSION_DETAIL: &[Column] = &[
    ("model", "/model"),
    ("version", "/version"),
    ("status", "/status"),
    ("aliases", "/aliases"),
    ("description", "/description"),
    ("source uri", "/source_uri"),
    ("artifact digest", "/artifact_digest"),
    ("run id", "/run_id"),
    ("features", "/features"),
    ("reference uri", "/reference_uri"),
    ("flavors", "/metadata/flavors"),
    ("signature", "/metadata/signature"),
    ("environment", "/metadata/environment"),
    ("model card", "/metadata/model_card"),
    ("training data", "/lineage/training_data"),
    ("code commit", "/lineage/code_commit"),
    ("parent version", "/lineage/parent_version"),
    ("parameters", "/lineage/parameters"),
    ("metrics", "/lineage/metrics"),
    ("tags", "/tags"),
    ("health", "/health"),
    ("created by", "/created_by"),
    ("created", "/created_at"),
];
pub const ALIAS_COLUMNS: &[Column] = &[
    ("alias", "/alias"),
    ("version", "/version"),
    ("moved by", "/updated_by"),
    ("moved", "/updated_at"),
];
pub const MOVE_COLUMNS: &[Column] = &[
    ("kind", "/kind"),
    ("from", "/from_version"),
    ("to", "/to_version"),
    ("by", "/actor"),
    ("reason", "/reason"),
    ("at", "/at"),
];
pub const AUDIT_COLUMNS: &[Column] = &[
    ("seq", "/seq"),
    ("at", "/at"),
    ("actor", "/actor"),
    ("action", "/action"),
    ("target", "/target"),
];
pub const RECOMMENDATION_COLUMNS: &[Column] = &[
    ("id", "/id"),
    ("model", "/model"),
    ("version", "/version"),
    ("kind", "/kind"),
    ("severity", "/severity"),
    ("status", "/status"),
    ("reason", "/reason"),
];
pub const TOKEN_COLUMNS: &[Column] = &[
    ("name", "/name"),
    ("role", "/role"),
    ("created by", "/created_by"),
    ("created", "/created_at"),
    ("expires", "/expires_at"),
    ("revoked", "/revoked_at"),
];
