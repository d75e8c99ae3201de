//! The filter compiler's predicates ([`crate::filter`]) as SQL, every value
//! bound. What differs between the backends comes from `dialect`: how a
//! tag is read from the JSON text column, a case-sensitive `LIKE` (SQLite's
//! `LIKE` ignores ASCII case, so it uses `GLOB`), and the case-insensitive
//! `LIKE` (PostgreSQL's `ILIKE`). A native name prefix is case-insensitive,
//! as it has always been.

use sqlx::QueryBuilder;

use super::dialect::{Db, push_case_sensitive_like, push_tag};

use crate::filter::{Column, Operand, Order, OrderColumn, Predicate, Test, Value};

/// The SQL expressions that stand for the compiler's columns in one query
/// (they depend on the table aliases of that query); `None` where the
/// column does not exist (the compiler never produces it then).
pub(super) struct Scope {
    pub name: &'static str,
    pub owner: Option<&'static str>,
    /// The JSON tag column of the record searched.
    pub tags: &'static str,
    pub run_id: Option<&'static str>,
    pub version: Option<&'static str>,
    pub source: Option<&'static str>,
    pub status: Option<&'static str>,
    pub created_at: &'static str,
    pub updated_at: &'static str,
    /// The record id, the last sort key.
    pub id: &'static str,
}

impl Scope {
    fn column(&self, c: Column) -> &'static str {
        let col = match c {
            Column::ModelName => Some(self.name),
            Column::Owner => self.owner,
            Column::RunId => self.run_id,
            Column::Version => self.version,
            Column::Source => self.source,
            Column::Status => self.status,
        };
        // The compiler rejects fields the record lacks before this point.
        col.unwrap_or("NULL")
    }
}

fn push_operand(q: &mut QueryBuilder<Db>, operand: &Operand, scope: &Scope) {
    match operand {
        Operand::Column(c) => {
            q.push(scope.column(*c));
        }
        // The key is bound, so it is pushed wherever it appears.
        Operand::Tag(key) => push_tag(q, scope.tags, key),
    }
}

fn push_value(q: &mut QueryBuilder<Db>, v: &Value) {
    match v {
        Value::Text(s) => q.push_bind(s.clone()),
        Value::Int(n) => q.push_bind(*n),
    };
}

fn push_list(q: &mut QueryBuilder<Db>, values: &[Value]) {
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            q.push(", ");
        }
        push_value(q, v);
    }
    q.push(")");
}

/// Escapes `LIKE`'s wildcards and its escape character in a literal prefix.
fn escape_like(prefix: &str) -> String {
    prefix
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// Appends ` AND <predicate>` for each predicate.
pub(super) fn push_where(q: &mut QueryBuilder<Db>, predicates: &[Predicate], scope: &Scope) {
    for p in predicates {
        q.push(" AND ");
        // A missing value (absent tag, no run id) is "different", as users
        // of `tag.x != 'true'` expect untagged records to match.
        let negative = matches!(p.test, Test::Ne(_) | Test::NotIn(_));
        if negative {
            q.push("(");
            push_operand(q, &p.operand, scope);
            q.push(" IS NULL OR ");
        }
        push_operand(q, &p.operand, scope);
        match &p.test {
            Test::Eq(v) => {
                q.push(" = ");
                push_value(q, v);
            }
            Test::Ne(v) => {
                q.push(" <> ");
                push_value(q, v);
            }
            Test::Like(pattern) => push_case_sensitive_like(q, pattern),
            Test::ILike(pattern) => {
                q.push(concat!(" ", ilike!(), " "))
                    .push_bind(pattern.clone());
            }
            Test::Prefix(prefix) => {
                q.push(concat!(" ", ilike!(), " "))
                    .push_bind(format!("{}%", escape_like(prefix)))
                    .push(" ESCAPE '\\'");
            }
            Test::In(values) => {
                q.push(" IN (");
                push_list(q, values);
            }
            Test::NotIn(values) => {
                q.push(" NOT IN (");
                push_list(q, values);
            }
        }
        if negative {
            q.push(")");
        }
    }
}

/// Appends ` ORDER BY <keys>, <id>`.
pub(super) fn push_order(q: &mut QueryBuilder<Db>, order: &[Order], scope: &Scope) {
    q.push(" ORDER BY ");
    for o in order {
        let col = match o.column {
            OrderColumn::ModelName => scope.name,
            OrderColumn::Version => scope.version.unwrap_or(scope.id),
            OrderColumn::CreatedAt => scope.created_at,
            OrderColumn::UpdatedAt => scope.updated_at,
        };
        q.push(col)
            .push(if o.descending { " DESC, " } else { " ASC, " });
    }
    q.push(scope.id);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::{Record, search};
    use crate::search::{Condition, Field, Op};

    use super::super::dialect::RENDERED_PREDICATES;
    use super::super::search::VERSIONS;

    #[test]
    fn predicates_render_with_bound_values_only() {
        let p = search(
            &[
                Condition::new(
                    Field::Tag("k".into()),
                    Op::Ne,
                    &["x'; DROP TABLE models; --"],
                ),
                Condition::new(Field::Version, Op::In, &["1", "2"]),
                Condition::new(Field::Name, Op::Like, &["fr_ud%"]),
            ],
            Record::Version,
        )
        .unwrap();
        let mut q = QueryBuilder::<Db>::new("SELECT 1 WHERE TRUE");
        push_where(&mut q, &p, &VERSIONS);
        assert_eq!(q.sql(), RENDERED_PREDICATES);
        assert_eq!(escape_like("a%b_c\\"), "a\\%b\\_c\\\\");
    }
}
