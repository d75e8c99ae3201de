//! MLflow's search filter and `order_by` grammar, parsed into the
//! registry's backend-neutral [`Condition`]s and [`OrderBy`]s.
//!
//! Grammar (MLflow's, AND only): `cond (AND cond)*` where `cond` is
//! `field op value`; fields are `name`, `tags.<key>` / `tag.<key>` (a
//! dotted key in backticks or double quotes: `` tag.`a.b` ``), and for
//! versions `run_id`, `version_number`, `source_path`; operators `=`, `!=`,
//! `LIKE`, `ILIKE`, `IN (…)`, `NOT IN (…)`; values are quoted strings (or
//! integers for `version_number`). It must never panic on any input: every
//! failure is a message saying what was wrong where.

use modelwatch_registry::{Condition, Field, Op, OrderBy, OrderKey};

/// Longest accepted filter, in bytes.
pub const MAX_FILTER_BYTES: usize = 8 * 1024;
const MAX_CONDITIONS: usize = 32;
const MAX_IN_VALUES: usize = 1000;

/// What is being searched: the fields allowed differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    Models,
    Versions,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// A bare or backtick-quoted identifier (possibly dotted).
    Ident(String),
    /// A quoted string literal.
    Str(String),
    Number(String),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
}

fn tokenize(input: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = input.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Token::LParen);
                i += 1;
            }
            ')' => {
                out.push(Token::RParen);
                i += 1;
            }
            ',' => {
                out.push(Token::Comma);
                i += 1;
            }
            '=' => {
                out.push(Token::Op("="));
                i += 1;
            }
            '!' if chars.get(i + 1) == Some(&'=') => {
                out.push(Token::Op("!="));
                i += 2;
            }
            '\'' | '"' | '`' => {
                let close = c;
                let start = i + 1;
                let end = chars[start..]
                    .iter()
                    .position(|&x| x == close)
                    .map(|p| start + p)
                    .ok_or_else(|| {
                        format!("unterminated {close} quote starting at character {}", i + 1)
                    })?;
                let text: String = chars[start..end].iter().collect();
                if close == '`' {
                    // A backticked key continues a dotted identifier (`tag.` + `a.b`).
                    match out.last_mut() {
                        Some(Token::Ident(prefix)) if prefix.ends_with('.') => {
                            prefix.push_str(&text)
                        }
                        _ => out.push(Token::Ident(text)),
                    }
                } else {
                    match out.last_mut() {
                        // `tags."key"`: a double-quoted key after `tags.`.
                        Some(Token::Ident(prefix)) if prefix.ends_with('.') => {
                            prefix.push_str(&text)
                        }
                        _ => out.push(Token::Str(text)),
                    }
                }
                i = end + 1;
            }
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) =>
            {
                let start = i;
                i += 1;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
                out.push(Token::Number(chars[start..i].iter().collect()));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '_' | '.' | '-'))
                {
                    i += 1;
                }
                out.push(Token::Ident(chars[start..i].iter().collect()));
            }
            other => {
                return Err(format!(
                    "unexpected character {other:?} at position {}",
                    i + 1
                ));
            }
        }
    }
    Ok(out)
}

fn field(name: &str, entity: Entity) -> Result<Field, String> {
    let lower = name.to_ascii_lowercase();
    for prefix in ["tags.", "tag."] {
        if lower.starts_with(prefix) {
            let key = &name[prefix.len()..];
            if key.is_empty() {
                return Err(format!("{name:?} names no tag key"));
            }
            return Ok(Field::Tag(key.to_string()));
        }
    }
    match (lower.as_str(), entity) {
        ("name", _) => Ok(Field::Name),
        ("run_id", Entity::Versions) => Ok(Field::RunId),
        ("version_number", Entity::Versions) => Ok(Field::Version),
        ("source_path", Entity::Versions) => Ok(Field::Source),
        (_, Entity::Models) => Err(format!(
            "unknown field {name:?}; registered models can be filtered by name and tags.<key>"
        )),
        (_, Entity::Versions) => Err(format!(
            "unknown field {name:?}; model versions can be filtered by name, run_id, version_number, source_path and tags.<key>"
        )),
    }
}

fn is_kw(t: Option<&Token>, kw: &str) -> bool {
    matches!(t, Some(Token::Ident(s)) if s.eq_ignore_ascii_case(kw))
}

fn value(t: Option<&Token>, field: &Field) -> Result<String, String> {
    match (t, field) {
        (Some(Token::Str(s)), _) => Ok(s.clone()),
        (Some(Token::Number(n)), Field::Version) => Ok(n.clone()),
        (Some(Token::Number(n)), _) => Err(format!(
            "value {n} must be quoted ('{n}'); only version_number takes a bare number"
        )),
        (Some(other), _) => Err(format!("expected a quoted value, found {other:?}")),
        (None, _) => Err("the filter ends where a value was expected".into()),
    }
}

/// Parses an MLflow filter (empty or blank: no condition).
pub fn parse_filter(input: &str, entity: Entity) -> Result<Vec<Condition>, String> {
    if input.len() > MAX_FILTER_BYTES {
        return Err(format!(
            "the filter is {} bytes; the limit is {MAX_FILTER_BYTES}",
            input.len()
        ));
    }
    let tokens = tokenize(input)?;
    let mut conditions = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if !conditions.is_empty() {
            if !is_kw(tokens.get(i), "and") {
                return Err(format!(
                    "expected AND between conditions, found {:?} (only AND is supported)",
                    tokens[i]
                ));
            }
            i += 1;
        }
        let name = match tokens.get(i) {
            Some(Token::Ident(n)) => n.clone(),
            Some(other) => return Err(format!("expected a field name, found {other:?}")),
            None => return Err("the filter ends after AND".into()),
        };
        let field = field(&name, entity)?;
        i += 1;
        let op = match tokens.get(i) {
            Some(Token::Op("=")) => Op::Eq,
            Some(Token::Op("!=")) => Op::Ne,
            t if is_kw(t, "like") => Op::Like,
            t if is_kw(t, "ilike") => Op::ILike,
            t if is_kw(t, "in") => Op::In,
            t if is_kw(t, "not") && is_kw(tokens.get(i + 1), "in") => {
                i += 1;
                Op::NotIn
            }
            Some(other) => {
                return Err(format!(
                    "unsupported comparison {other:?} after {name}; use =, !=, LIKE, ILIKE, IN or NOT IN"
                ));
            }
            None => return Err(format!("the filter ends after {name}")),
        };
        i += 1;
        let values = if matches!(op, Op::In | Op::NotIn) {
            if tokens.get(i) != Some(&Token::LParen) {
                return Err("IN takes a parenthesised list: IN ('a', 'b')".into());
            }
            i += 1;
            let mut values = Vec::new();
            loop {
                values.push(value(tokens.get(i), &field)?);
                if values.len() > MAX_IN_VALUES {
                    return Err(format!("an IN list holds at most {MAX_IN_VALUES} values"));
                }
                i += 1;
                match tokens.get(i) {
                    Some(Token::Comma) => i += 1,
                    Some(Token::RParen) => break,
                    _ => return Err("an IN list must be closed with ')'".into()),
                }
            }
            values
        } else {
            vec![value(tokens.get(i), &field)?]
        };
        if field == Field::Version {
            for v in &values {
                v.parse::<i64>()
                    .map_err(|_| format!("version_number must be an integer, got {v:?}"))?;
            }
            if matches!(op, Op::Like | Op::ILike) {
                return Err("version_number supports =, !=, IN and NOT IN".into());
            }
        }
        i += 1;
        conditions.push(Condition { field, op, values });
        if conditions.len() > MAX_CONDITIONS {
            return Err(format!("at most {MAX_CONDITIONS} conditions per filter"));
        }
    }
    Ok(conditions)
}

/// Parses `order_by` entries such as `name ASC`, `version_number DESC`,
/// `last_updated_timestamp` (ascending when no direction is given).
pub fn parse_order_by(items: &[String], entity: Entity) -> Result<Vec<OrderBy>, String> {
    items
        .iter()
        .map(|item| {
            let mut words = item.split_whitespace();
            let key = words.next().ok_or("an empty order_by entry")?;
            let descending = match words.next().map(str::to_ascii_uppercase).as_deref() {
                None | Some("ASC") => false,
                Some("DESC") => true,
                Some(other) => {
                    return Err(format!("order direction {other:?} must be ASC or DESC"));
                }
            };
            if words.next().is_some() {
                return Err(format!("{item:?} is not `<column> [ASC|DESC]`"));
            }
            let key = match (key, entity) {
                ("name", _) => OrderKey::Name,
                ("version_number", Entity::Versions) => OrderKey::Version,
                ("creation_timestamp", _) => OrderKey::CreatedAt,
                ("last_updated_timestamp" | "timestamp", _) => OrderKey::UpdatedAt,
                (other, _) => {
                    return Err(format!(
                        "cannot order by {other:?}; use name, creation_timestamp, last_updated_timestamp{}",
                        if entity == Entity::Versions { " or version_number" } else { "" }
                    ));
                }
            };
            Ok(OrderBy { key, descending })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_the_client_sends() {
        assert_eq!(parse_filter("", Entity::Models).unwrap(), vec![]);
        assert_eq!(
            parse_filter(
                "name LIKE 'fr%' AND tag.`mlflow.prompt.is_prompt` != 'true'",
                Entity::Models
            )
            .unwrap(),
            vec![
                Condition::new(Field::Name, Op::Like, &["fr%"]),
                Condition::new(
                    Field::Tag("mlflow.prompt.is_prompt".into()),
                    Op::Ne,
                    &["true"]
                ),
            ]
        );
        assert_eq!(
            parse_filter(
                "name='m' and run_id IN ('a', \"b\") AND version_number NOT IN (1,2) \
                 AND source_path ILIKE 's3://%' AND tags.team = 'risk' AND tags.\"a.b\" = 'x'",
                Entity::Versions
            )
            .unwrap(),
            vec![
                Condition::new(Field::Name, Op::Eq, &["m"]),
                Condition::new(Field::RunId, Op::In, &["a", "b"]),
                Condition::new(Field::Version, Op::NotIn, &["1", "2"]),
                Condition::new(Field::Source, Op::ILike, &["s3://%"]),
                Condition::new(Field::Tag("team".into()), Op::Eq, &["risk"]),
                Condition::new(Field::Tag("a.b".into()), Op::Eq, &["x"]),
            ]
        );
        assert_eq!(
            parse_filter("version_number = 3", Entity::Versions).unwrap(),
            vec![Condition::new(Field::Version, Op::Eq, &["3"])]
        );
    }

    #[test]
    fn garbage_truncated_and_oversized_filters_are_errors() {
        let bad = [
            "name",
            "name =",
            "name = 'unterminated",
            "name = 'a' OR name = 'b'",
            "name = 'a' AND",
            "name > 'a'",
            "name = 3",
            "run_id = 'x'",
            "version_number = 'x'",
            "version_number LIKE '1%'",
            "name IN 'a'",
            "name IN ('a'",
            "name IN ('a' 'b')",
            "tags. = 'x'",
            "= 'x'",
            "name = 'a' name = 'b'",
            "\u{0}\u{1}",
            "name = `x",
            "(((",
            "名前 = 'x'",
        ];
        for f in bad {
            let entity = if f.starts_with("run_id") {
                Entity::Models
            } else {
                Entity::Versions
            };
            assert!(parse_filter(f, entity).is_err(), "{f:?} should not parse");
        }
        let huge = format!("name = '{}'", "x".repeat(MAX_FILTER_BYTES));
        assert!(
            parse_filter(&huge, Entity::Models)
                .unwrap_err()
                .contains("limit")
        );
        let many = vec!["name = 'a'"; MAX_CONDITIONS + 1].join(" AND ");
        assert!(parse_filter(&many, Entity::Models).is_err());
        // Every prefix of a valid filter either parses or is an error: never a panic.
        let valid = "name = 'a' AND tag.`x.y` NOT IN ('1', '2') AND version_number = 4";
        for (i, _) in valid.char_indices() {
            let _ = parse_filter(&valid[..i], Entity::Versions);
        }
    }

    #[test]
    fn order_by() {
        assert_eq!(
            parse_order_by(
                &[
                    "name ASC".into(),
                    "version_number desc".into(),
                    "timestamp".into()
                ],
                Entity::Versions
            )
            .unwrap(),
            vec![
                OrderBy {
                    key: OrderKey::Name,
                    descending: false
                },
                OrderBy {
                    key: OrderKey::Version,
                    descending: true
                },
                OrderBy {
                    key: OrderKey::UpdatedAt,
                    descending: false
                },
            ]
        );
        for bad in [
            "",
            "name SIDEWAYS",
            "name ASC extra",
            "version_number",
            "owner",
        ] {
            assert!(
                parse_order_by(&[bad.into()], Entity::Models).is_err(),
                "{bad:?}"
            );
        }
    }
}
