//! The filter compiler's predicates ([`crate::filter`]) in SQLite's dialect.

use sqlx::{QueryBuilder, Sqlite};

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

fn push_operand(q: &mut QueryBuilder<Sqlite>, operand: &Operand, scope: &Scope) {
    match operand {
        Operand::Column(c) => {
            q.push(scope.column(*c));
        }
        Operand::Tag(key) => {
            // The path is bound, so it is pushed wherever it appears.
            q.push("json_extract(")
                .push(scope.tags)
                .push(", ")
                .push_bind(format!("$.\"{key}\""))
                .push(")");
        }
    }
}

fn push_value(q: &mut QueryBuilder<Sqlite>, v: &Value) {
    match v {
        Value::Text(s) => q.push_bind(s.clone()),
        Value::Int(n) => q.push_bind(*n),
    };
}

fn push_list(q: &mut QueryBuilder<Sqlite>, values: &[Value]) {
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            q.push(", ");
        }
        push_value(q, v);
    }
    q.push(")");
}

/// Turns a LIKE pattern into a GLOB pattern: SQLite's `LIKE` ignores ASCII
/// case, while a case-sensitive `LIKE` (MLflow's) does not.
fn like_to_glob(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    for c in pattern.chars() {
        match c {
            '%' => out.push('*'),
            '_' => out.push('?'),
            '*' | '?' | '[' => {
                out.push('[');
                out.push(c);
                out.push(']');
            }
            c => out.push(c),
        }
    }
    out
}

/// Appends ` AND <predicate>` for each predicate.
pub(super) fn push_where(q: &mut QueryBuilder<Sqlite>, predicates: &[Predicate], scope: &Scope) {
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
                q.push(" != ");
                push_value(q, v);
            }
            Test::Like(pattern) => {
                q.push(" GLOB ").push_bind(like_to_glob(pattern));
            }
            Test::ILike(pattern) => {
                q.push(" LIKE ").push_bind(pattern.clone());
            }
            Test::Prefix(prefix) => {
                let escaped = prefix
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_");
                q.push(" LIKE ")
                    .push_bind(format!("{escaped}%"))
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
pub(super) fn push_order(q: &mut QueryBuilder<Sqlite>, order: &[Order], scope: &Scope) {
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

    use crate::sqlite::search::VERSIONS;

    #[test]
    fn predicates_render_with_bound_values_only() {
        let p = search(
            &[
                Condition {
                    field: Field::Tag("k".into()),
                    op: Op::Ne,
                    values: vec!["x'; DROP TABLE models; --".into()],
                },
                Condition {
                    field: Field::Version,
                    op: Op::In,
                    values: vec!["1".into(), "2".into()],
                },
                Condition {
                    field: Field::Name,
                    op: Op::Like,
                    values: vec!["fr_ud%".into()],
                },
            ],
            Record::Version,
        )
        .unwrap();
        let mut q = QueryBuilder::<Sqlite>::new("SELECT 1 WHERE 1");
        push_where(&mut q, &p, &VERSIONS);
        assert_eq!(
            q.sql(),
            "SELECT 1 WHERE 1 AND (json_extract(v.tags, ?) IS NULL OR json_extract(v.tags, ?) != ?) \
             AND v.version IN (?, ?) AND m.name GLOB ?"
        );
        assert_eq!(like_to_glob("a%b_c*[d"), "a*b?c[*][[]d");
    }
}
