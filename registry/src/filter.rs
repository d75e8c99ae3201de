//! One filter compiler for every listing: the native filters
//! ([`ModelFilter`], [`VersionFilter`]) and the MLflow search conditions
//! ([`Condition`]) become the same backend-neutral [`Predicate`]s, and the
//! search orderings the same [`Order`]s. Here live the semantics (which
//! field a condition reads, that a missing value counts as different for
//! `!=` and `NOT IN`, that version numbers are integers, which fields a
//! record has, the validation of tag keys); a backend only renders the
//! predicates in its SQL dialect (`sqlite/filter.rs` today: `?`
//! placeholders, `json_extract`, `GLOB`; a PostgreSQL renderer would bind
//! `$n` and use `->>`, `LIKE` and `ILIKE`). No input is ever spliced into
//! a statement: values and tag paths are bound.

use crate::error::{Error, Result};
use crate::search::{Condition, Field, Op, OrderBy, OrderKey};
use crate::types::{ModelFilter, VersionFilter};
use crate::validate;

/// The record a search or listing returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Record {
    Model,
    Version,
}

/// A plain column of the record searched (for versions, `ModelName` is
/// the name of the version's model).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Column {
    ModelName,
    Owner,
    RunId,
    Version,
    Source,
    Status,
}

/// What a predicate reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Operand {
    Column(Column),
    /// A tag of the record searched, by its (validated) key; absent tags
    /// read as SQL `NULL`.
    Tag(String),
}

/// A bound value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Text(String),
    Int(i64),
}

/// What a predicate checks of its operand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Test {
    Eq(Value),
    /// Different, or missing.
    Ne(Value),
    /// SQL `LIKE` pattern (`%`, `_`), case-sensitive.
    Like(String),
    /// SQL `LIKE` pattern, case-insensitive.
    ILike(String),
    /// Starts with this literal text. On SQLite this is `LIKE` with the
    /// wildcards escaped, so it ignores ASCII case (the native API's
    /// behaviour since it existed).
    Prefix(String),
    In(Vec<Value>),
    /// Not in the list, or missing.
    NotIn(Vec<Value>),
}

/// One condition; a filter is the conjunction of its predicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Predicate {
    pub operand: Operand,
    pub test: Test,
}

impl Predicate {
    fn new(operand: Operand, test: Test) -> Self {
        Self { operand, test }
    }
}

/// A sort key of a search (the backend adds the record id as the last,
/// tie-breaking key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OrderColumn {
    ModelName,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Order {
    pub column: OrderColumn,
    pub descending: bool,
}

fn tag(key: &str) -> Result<Operand> {
    validate::tag_key(key)?;
    Ok(Operand::Tag(key.to_string()))
}

/// The native model listing's filter.
pub(crate) fn model_filter(filter: &ModelFilter) -> Result<Vec<Predicate>> {
    let mut out = Vec::new();
    if let Some(prefix) = &filter.name_prefix {
        out.push(Predicate::new(
            Operand::Column(Column::ModelName),
            Test::Prefix(prefix.clone()),
        ));
    }
    if let Some(owner) = &filter.owner {
        out.push(Predicate::new(
            Operand::Column(Column::Owner),
            Test::Eq(Value::Text(owner.clone())),
        ));
    }
    for (k, v) in &filter.tags {
        out.push(Predicate::new(tag(k)?, Test::Eq(Value::Text(v.clone()))));
    }
    Ok(out)
}

/// The native version listing's filter (within one model).
pub(crate) fn version_filter(filter: &VersionFilter) -> Result<Vec<Predicate>> {
    let mut out = Vec::new();
    if let Some(status) = filter.status {
        out.push(Predicate::new(
            Operand::Column(Column::Status),
            Test::Eq(Value::Text(status.as_str().to_string())),
        ));
    }
    if let Some(run) = &filter.run_id {
        out.push(Predicate::new(
            Operand::Column(Column::RunId),
            Test::Eq(Value::Text(run.clone())),
        ));
    }
    for (k, v) in &filter.tags {
        out.push(Predicate::new(tag(k)?, Test::Eq(Value::Text(v.clone()))));
    }
    Ok(out)
}

/// A search's conditions over `record`.
pub(crate) fn search(conditions: &[Condition], record: Record) -> Result<Vec<Predicate>> {
    conditions.iter().map(|c| condition(c, record)).collect()
}

fn condition(c: &Condition, record: Record) -> Result<Predicate> {
    let operand = match &c.field {
        Field::Name => Operand::Column(Column::ModelName),
        Field::Tag(key) => tag(key)?,
        Field::RunId | Field::Version | Field::Source => {
            if record == Record::Model {
                return Err(Error::invalid(
                    "filter",
                    "models can be searched by name and tags only",
                ));
            }
            Operand::Column(match c.field {
                Field::RunId => Column::RunId,
                Field::Version => Column::Version,
                _ => Column::Source,
            })
        }
    };
    let numeric = c.field == Field::Version;
    let first = c
        .values
        .first()
        .ok_or_else(|| Error::invalid("filter", "a comparison needs a value"))?;
    let value = |v: &String| -> Result<Value> {
        if numeric {
            v.parse().map(Value::Int).map_err(|_| {
                Error::invalid(
                    "filter",
                    format!("version_number must be an integer, got {v:?}"),
                )
            })
        } else {
            Ok(Value::Text(v.clone()))
        }
    };
    let test = match c.op {
        Op::Eq => Test::Eq(value(first)?),
        Op::Ne => Test::Ne(value(first)?),
        Op::Like | Op::ILike if numeric => {
            return Err(Error::invalid(
                "filter",
                "version_number supports =, !=, IN and NOT IN, not LIKE",
            ));
        }
        Op::Like => Test::Like(first.clone()),
        Op::ILike => Test::ILike(first.clone()),
        Op::In => Test::In(c.values.iter().map(value).collect::<Result<_>>()?),
        Op::NotIn => Test::NotIn(c.values.iter().map(value).collect::<Result<_>>()?),
    };
    Ok(Predicate::new(operand, test))
}

/// A search's ordering over `record`.
pub(crate) fn order(order: &[OrderBy], record: Record) -> Result<Vec<Order>> {
    order
        .iter()
        .map(|o| {
            let column = match (o.key, record) {
                (OrderKey::Name, _) => OrderColumn::ModelName,
                (OrderKey::Version, Record::Version) => OrderColumn::Version,
                (OrderKey::CreatedAt, _) => OrderColumn::CreatedAt,
                (OrderKey::UpdatedAt, _) => OrderColumn::UpdatedAt,
                (OrderKey::Version, Record::Model) => {
                    return Err(Error::invalid(
                        "order_by",
                        "models cannot be ordered by version_number",
                    ));
                }
            };
            Ok(Order {
                column,
                descending: o.descending,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Value {
        Value::Text(s.into())
    }

    #[test]
    fn native_filters_and_searches_compile_to_the_same_predicates() {
        let native = version_filter(&VersionFilter {
            run_id: Some("r1".into()),
            tags: [("k".to_string(), "v".to_string())].into(),
            ..Default::default()
        })
        .unwrap();
        let searched = search(
            &[
                Condition::new(Field::RunId, Op::Eq, &["r1"]),
                Condition::new(Field::Tag("k".into()), Op::Eq, &["v"]),
            ],
            Record::Version,
        )
        .unwrap();
        assert_eq!(native, searched);
        let models = model_filter(&ModelFilter {
            name_prefix: Some("fr%".into()),
            owner: Some("risk".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            models,
            [
                Predicate::new(
                    Operand::Column(Column::ModelName),
                    Test::Prefix("fr%".into())
                ),
                Predicate::new(Operand::Column(Column::Owner), Test::Eq(text("risk"))),
            ]
        );
    }

    #[test]
    fn version_numbers_are_integers_and_cannot_be_liked() {
        let p = search(
            &[Condition::new(Field::Version, Op::NotIn, &["1", "3"])],
            Record::Version,
        )
        .unwrap();
        assert_eq!(p[0].test, Test::NotIn(vec![Value::Int(1), Value::Int(3)]));
        for bad in [
            Condition::new(Field::Version, Op::Eq, &["one"]),
            Condition::new(Field::Version, Op::Like, &["1%"]),
            Condition::new(Field::Name, Op::Eq, &[]),
            Condition::new(Field::Tag("bad key!".into()), Op::Eq, &["x"]),
        ] {
            assert!(
                matches!(
                    search(std::slice::from_ref(&bad), Record::Version),
                    Err(Error::InvalidArgument { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn models_have_names_and_tags_only() {
        for field in [Field::RunId, Field::Version, Field::Source] {
            let Err(Error::InvalidArgument { message, .. }) =
                search(&[Condition::new(field, Op::Eq, &["1"])], Record::Model)
            else {
                panic!()
            };
            assert!(message.contains("name and tags only"));
        }
        let by = |key| OrderBy {
            key,
            descending: true,
        };
        assert!(order(&[by(OrderKey::Version)], Record::Model).is_err());
        assert_eq!(
            order(&[by(OrderKey::Version)], Record::Version).unwrap(),
            [Order {
                column: OrderColumn::Version,
                descending: true
            }]
        );
    }
}
