//! Grafana's PostgreSQL datasource rewrites a panel's SQL before sending it:
//! template variables first (`$model`, `${model}`, `[[model]]`, and the
//! globals `$__interval`, `$__interval_ms`), then its macros. This module
//! does the same, so tests can run a dashboard's SQL exactly as Grafana
//! would send it. It is a test aid for our own dashboards, not a complete
//! reimplementation: an unknown macro or variable is an error, never passed
//! through.

use std::collections::BTreeMap;

use crate::{Error, Result};

/// What Grafana knows when it expands a query: the dashboard's time range
/// (RFC 3339, as Grafana formats it), the panel's interval, the variables'
/// current values.
#[derive(Debug, Clone)]
pub struct SqlContext {
    pub from: String,
    pub to: String,
    pub interval_seconds: u64,
    pub variables: BTreeMap<String, String>,
}

/// `sql` as Grafana's PostgreSQL datasource sends it.
///
/// Macros: `$__timeFilter(col)` → `col BETWEEN 'from' AND 'to'`,
/// `$__timeFrom()` / `$__timeTo()` → `'from'` / `'to'`,
/// `$__timeGroup(col, interval)` → `floor(extract(epoch from col)/N)*N`,
/// `$__timeGroupAlias(col, interval)` → the same `AS "time"`,
/// `$__time(col)` → `col AS "time"`.
pub fn expand_sql(sql: &str, ctx: &SqlContext) -> Result<String> {
    expand_macros(&substitute_variables(sql, ctx)?, ctx)
}

fn substitute_variables(sql: &str, ctx: &SqlContext) -> Result<String> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(i) = rest.find(['$', '[']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let (name, len) = if let Some(inner) = tail.strip_prefix("${") {
            let end = inner
                .find('}')
                .ok_or_else(|| Error::Macro(format!("unclosed ${{ in {sql:?}")))?;
            (&inner[..end], end + 3)
        } else if let Some(inner) = tail.strip_prefix("[[") {
            match inner.find("]]") {
                Some(end) => (&inner[..end], end + 4),
                None => ("", 1),
            }
        } else if let Some(inner) = tail.strip_prefix('$') {
            let end = inner.find(|c| !is_name(c)).unwrap_or(inner.len());
            (&inner[..end], end + 1)
        } else {
            ("", 1)
        };
        match name {
            "" => out.push_str(&tail[..len]),
            "__interval_ms" => out.push_str(&(ctx.interval_seconds * 1000).to_string()),
            "__interval" => out.push_str(&format!("{}s", ctx.interval_seconds)),
            // Macros are expanded in the second pass.
            n if n.starts_with("__") => out.push_str(&tail[..len]),
            n => match ctx.variables.get(n) {
                Some(value) => out.push_str(value),
                None => {
                    return Err(Error::Macro(format!("no value for template variable ${n}")));
                }
            },
        }
        rest = &tail[len..];
    }
    out.push_str(rest);
    Ok(out)
}

fn expand_macros(sql: &str, ctx: &SqlContext) -> Result<String> {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(i) = rest.find("$__") {
        out.push_str(&rest[..i]);
        let tail = &rest[i + 3..];
        let name_end = tail
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(tail.len());
        let name = &tail[..name_end];
        let Some(args_text) = tail[name_end..].strip_prefix('(') else {
            return Err(Error::Macro(format!("$__{name} is not a macro call")));
        };
        let close = matching_paren(args_text)
            .ok_or_else(|| Error::Macro(format!("$__{name}( is not closed")))?;
        let args = split_args(&args_text[..close]);
        let arg = |n: usize| {
            args.get(n)
                .copied()
                .filter(|a| !a.is_empty())
                .ok_or_else(|| Error::Macro(format!("$__{name} needs argument {}", n + 1)))
        };
        let group = |col: &str, interval: &str| -> Result<String> {
            let n = interval_seconds(interval)?;
            Ok(format!("floor(extract(epoch from {col})/{n})*{n}"))
        };
        let expanded = match name {
            "timeFilter" => format!("{} BETWEEN '{}' AND '{}'", arg(0)?, ctx.from, ctx.to),
            "timeFrom" => format!("'{}'", ctx.from),
            "timeTo" => format!("'{}'", ctx.to),
            "time" => format!("{} AS \"time\"", arg(0)?),
            "timeGroup" => group(arg(0)?, arg(1)?)?,
            "timeGroupAlias" => format!("{} AS \"time\"", group(arg(0)?, arg(1)?)?),
            other => return Err(Error::Macro(format!("unknown macro $__{other}"))),
        };
        out.push_str(&expanded);
        rest = &args_text[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Index of the `)` closing an argument list that starts just after `(`.
fn matching_paren(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => return Some(i),
            ')' => depth -= 1,
            _ => {}
        }
    }
    None
}

fn split_args(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                out.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(s[start..].trim());
    out
}

/// Grafana's interval syntax (`10s`, `1m`, `'5m'`, `1h`, `1d`, `500ms`),
/// in whole seconds (at least 1, as Grafana rounds sub-second groups up).
fn interval_seconds(text: &str) -> Result<u64> {
    let t = text.trim().trim_matches('\'');
    let bad = || Error::Macro(format!("{text:?} is not an interval such as 30s, 5m or 1h"));
    let digits = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let n: u64 = t[..digits].parse().map_err(|_| bad())?;
    let seconds = match &t[digits..] {
        "ms" => n.div_ceil(1000),
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        "w" => n * 604_800,
        _ => return Err(bad()),
    };
    Ok(seconds.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> SqlContext {
        SqlContext {
            from: "2026-11-27T10:00:00Z".into(),
            to: "2026-11-27T12:00:00Z".into(),
            interval_seconds: 60,
            variables: [("model", "fraud"), ("version", "3")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn expands_like_grafana() {
        let cases = [
            (
                "SELECT $__timeGroup(ts, $__interval) AS time, count(*) / ($__interval_ms / 1000.0) FROM spans WHERE model = '$model' AND version = '${version}' AND $__timeFilter(ts) GROUP BY 1",
                "SELECT floor(extract(epoch from ts)/60)*60 AS time, count(*) / (60000 / 1000.0) FROM spans WHERE model = 'fraud' AND version = '3' AND ts BETWEEN '2026-11-27T10:00:00Z' AND '2026-11-27T12:00:00Z' GROUP BY 1",
            ),
            (
                "SELECT $__timeGroupAlias(ts, '5m'), [[model]] WHERE ts > $__timeFrom() AND ts < $__timeTo()",
                "SELECT floor(extract(epoch from ts)/300)*300 AS \"time\", fraud WHERE ts > '2026-11-27T10:00:00Z' AND ts < '2026-11-27T12:00:00Z'",
            ),
            (
                "SELECT $__time(coalesce(a, b)), x[1] FROM t",
                "SELECT coalesce(a, b) AS \"time\", x[1] FROM t",
            ),
        ];
        for (sql, want) in cases {
            assert_eq!(expand_sql(sql, &ctx()).unwrap(), want);
        }
    }

    #[test]
    fn refuses_what_it_cannot_expand() {
        for (sql, want) in [
            ("SELECT '$alias'", "no value for template variable $alias"),
            (
                "SELECT $__unixEpochFilter(ts)",
                "unknown macro $__unixEpochFilter",
            ),
            (
                "SELECT $__timeGroup(ts, soon)",
                "\"soon\" is not an interval",
            ),
            ("SELECT $__timeFilter(ts", "$__timeFilter( is not closed"),
            ("SELECT $__timeFilter()", "$__timeFilter needs argument 1"),
        ] {
            let err = expand_sql(sql, &ctx()).unwrap_err().to_string();
            assert!(err.contains(want), "{sql}: {err}");
        }
    }

    #[test]
    fn intervals() {
        for (text, want) in [
            ("500ms", 1),
            ("30s", 30),
            ("'5m'", 300),
            ("2h", 7200),
            ("1d", 86_400),
        ] {
            assert_eq!(interval_seconds(text).unwrap(), want, "{text}");
        }
    }
}
