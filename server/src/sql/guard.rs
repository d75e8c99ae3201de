//! What a SQL text may be before anything plans it: a size bound and a
//! nesting bound, checked on the parsed statement.
//!
//! DataFusion's planner, optimizer and even `Expr::clone` recurse once per
//! nesting level, and a few kilobytes of `1+1+…+1` (which the parser builds
//! without recursing) used to overflow a worker's stack and abort the
//! process. Nesting here counts what makes those passes recurse:
//! expressions inside expressions, queries inside queries, the relations a
//! `SELECT` joins (planned as a left-deep tree) and chained set operations
//! (`UNION` …). A statement deeper than [`MAX_SQL_DEPTH`] is refused before
//! planning; what remains runs on the SQL engine's threads, whose stacks
//! are sized for it ([`super::engine::SQL_THREAD_STACK_BYTES`]).
//!
//! Pure: no I/O, no DataFusion context.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{Expr, Query, Select, SetExpr, Statement, Visit, Visitor};

/// Longest SQL text accepted, in bytes (HTTP and PostgreSQL alike).
pub const MAX_SQL_BYTES: usize = 1 << 20;

/// Deepest nesting accepted (see the module docs for what counts). Real
/// queries stay far below it (Grafana's nest a dozen levels); a chain of
/// 1,000 `OR`ed conditions is still accepted.
pub const MAX_SQL_DEPTH: usize = 1_000;

/// Why a SQL text was refused before planning.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    #[error(
        "the SQL text is {bytes} bytes; the limit is {MAX_SQL_BYTES}: send a shorter query \
         (e.g. a JOIN with a table instead of a huge IN list)"
    )]
    TooLong { bytes: usize },
    #[error(
        "the query nests more than {MAX_SQL_DEPTH} levels deep ({what}); split long chains of \
         operators, joins or UNIONs into smaller queries, or use IN (…) instead of chained ORs"
    )]
    TooDeep { what: &'static str },
}

/// Refuses a text longer than [`MAX_SQL_BYTES`]; call before parsing.
pub fn check_length(sql: &str) -> Result<(), GuardError> {
    if sql.len() > MAX_SQL_BYTES {
        return Err(GuardError::TooLong { bytes: sql.len() });
    }
    Ok(())
}

/// Refuses a parsed statement nested deeper than [`MAX_SQL_DEPTH`]. The
/// walk itself stops at the limit, so it never recurses deeper than that.
pub fn check_depth(statement: &Statement) -> Result<(), GuardError> {
    let mut depth = Depth {
        current: 0,
        limit: MAX_SQL_DEPTH,
    };
    match statement.visit(&mut depth) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(what) => Err(GuardError::TooDeep { what }),
    }
}

struct Depth {
    current: usize,
    limit: usize,
}

impl Depth {
    fn enter(&mut self, extra: usize, what: &'static str) -> ControlFlow<&'static str> {
        self.current += 1;
        if self.current.saturating_add(extra) > self.limit {
            ControlFlow::Break(what)
        } else {
            ControlFlow::Continue(())
        }
    }

    fn leave(&mut self) -> ControlFlow<&'static str> {
        self.current -= 1;
        ControlFlow::Continue(())
    }
}

impl Visitor for Depth {
    type Break = &'static str;

    fn pre_visit_expr(&mut self, _: &Expr) -> ControlFlow<Self::Break> {
        self.enter(0, "nested expressions")
    }

    fn post_visit_expr(&mut self, _: &Expr) -> ControlFlow<Self::Break> {
        self.leave()
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<Self::Break> {
        // Measured before the walk descends into the chain, which the
        // visitor would follow level by level.
        self.enter(set_operation_depth(&query.body), "chained set operations")
    }

    fn post_visit_query(&mut self, _: &Query) -> ControlFlow<Self::Break> {
        self.leave()
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<Self::Break> {
        let relations: usize = select.from.iter().map(|t| 1 + t.joins.len()).sum();
        self.enter(relations, "joined relations")
    }

    fn post_visit_select(&mut self, _: &Select) -> ControlFlow<Self::Break> {
        self.leave()
    }
}

/// Length of the longest chain of set operations under `body`, without
/// recursion (the chain may be far longer than the limit).
fn set_operation_depth(body: &SetExpr) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(body, 0usize)];
    while let Some((node, depth)) = stack.pop() {
        deepest = deepest.max(depth);
        if let SetExpr::SetOperation { left, right, .. } = node {
            stack.push((left, depth + 1));
            stack.push((right, depth + 1));
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::{GenericDialect, PostgreSqlDialect};
    use datafusion::sql::sqlparser::parser::Parser;

    fn parse(sql: &str) -> Statement {
        Parser::parse_sql(&GenericDialect {}, sql)
            .unwrap()
            .remove(0)
    }

    fn chain(op: &str, n: usize) -> String {
        vec!["1"; n].join(op)
    }

    #[test]
    fn ordinary_queries_pass() {
        for sql in [
            "SELECT 1",
            "SELECT model, avg(value) FROM samples WHERE ts > now() - interval '1 hour' GROUP BY model",
            "SELECT * FROM (SELECT * FROM (SELECT 1 AS a) x) y WHERE a IN (1, 2, 3)",
            "SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3",
        ] {
            assert_eq!(check_depth(&parse(sql)), Ok(()), "{sql}");
        }
        let in_list = format!(
            "SELECT * FROM samples WHERE model IN ({})",
            vec!["'m'"; 50_000].join(",")
        );
        assert_eq!(check_depth(&parse(&in_list)), Ok(()));
    }

    #[test]
    fn chains_up_to_the_limit_pass_and_beyond_it_are_refused() {
        // `SELECT <chain>`: the statement and the select item add two levels.
        let at_limit = format!("SELECT {}", chain("+", MAX_SQL_DEPTH - 2));
        assert_eq!(check_depth(&parse(&at_limit)), Ok(()));
        let over = format!("SELECT {}", chain("+", MAX_SQL_DEPTH));
        assert!(matches!(
            check_depth(&parse(&over)),
            Err(GuardError::TooDeep {
                what: "nested expressions"
            })
        ));
        let or_chain = format!(
            "SELECT 1 WHERE {}",
            vec!["1 = 1"; MAX_SQL_DEPTH + 1].join(" OR ")
        );
        assert!(check_depth(&parse(&or_chain)).is_err());
    }

    #[test]
    fn set_operations_and_joins_count() {
        let unions = vec!["SELECT 1"; MAX_SQL_DEPTH + 5].join(" UNION ALL ");
        assert_eq!(
            check_depth(&parse(&unions)),
            Err(GuardError::TooDeep {
                what: "chained set operations"
            })
        );
        let joins = format!(
            "SELECT 1 FROM samples s0 {}",
            (1..=MAX_SQL_DEPTH + 5)
                .map(|i| format!("JOIN samples s{i} ON true"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        assert_eq!(
            check_depth(&parse(&joins)),
            Err(GuardError::TooDeep {
                what: "joined relations"
            })
        );
        let commas = format!(
            "SELECT 1 FROM {}",
            (0..MAX_SQL_DEPTH + 5)
                .map(|i| format!("samples s{i}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        assert!(check_depth(&parse(&commas)).is_err());
    }

    #[test]
    fn length_is_checked_before_parsing() {
        assert_eq!(check_length("SELECT 1"), Ok(()));
        let long = "x".repeat(MAX_SQL_BYTES + 1);
        assert_eq!(
            check_length(&long),
            Err(GuardError::TooLong {
                bytes: MAX_SQL_BYTES + 1
            })
        );
    }

    /// The worst case a text within the length limit can build, parsed,
    /// measured and dropped on a thread with the SQL engine's stack: it
    /// must be refused, not crash.
    #[test]
    fn the_deepest_text_within_the_length_limit_is_refused_without_crashing() {
        let worst = [
            format!("SELECT {}", chain("+", MAX_SQL_BYTES / 2 - 8)),
            vec!["SELECT 1"; MAX_SQL_BYTES / 20].join(" UNION "),
            format!("SELECT 1 FROM {}", vec!["t"; MAX_SQL_BYTES / 3].join(",")),
        ];
        for sql in worst {
            assert!(check_length(&sql).is_ok());
            let refused = std::thread::Builder::new()
                .stack_size(super::super::engine::SQL_THREAD_STACK_BYTES)
                .spawn(move || {
                    for dialect in [
                        &GenericDialect {} as &dyn datafusion::sql::sqlparser::dialect::Dialect,
                        &PostgreSqlDialect {},
                    ] {
                        let statement = Parser::parse_sql(dialect, &sql).unwrap().remove(0);
                        assert!(check_depth(&statement).is_err());
                    }
                })
                .unwrap()
                .join();
            assert!(refused.is_ok());
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// A chain of `n` binary operations is refused exactly when it is
        /// deeper than the limit, whatever the operator.
        #[test]
        fn chains_are_refused_exactly_past_the_limit(
            n in 1usize..2 * MAX_SQL_DEPTH,
            op in proptest::sample::select(vec!["+", "*", " OR ", " AND ", " || ", "-", " = "]),
        ) {
            let sql = format!("SELECT {}", chain(op, n));
            let Ok(mut parsed) = Parser::parse_sql(&GenericDialect {}, &sql) else {
                return Ok(());
            };
            let refused = check_depth(&parsed.remove(0)).is_err();
            // The statement and its select item are two levels; a chain of
            // n terms nests n - 1 operations over one more level of leaves:
            // n + 2 levels.
            proptest::prop_assert_eq!(refused, n + 2 > MAX_SQL_DEPTH, "n = {}", n);
        }

        /// Whatever the text, parsing and checking it never panics (and never
        /// overflows the stack: a crash would fail the test run).
        #[test]
        fn any_text_is_parsed_and_checked_without_crashing(
            pieces in proptest::collection::vec(
                proptest::sample::select(vec![
                    "(", ")", "1", "+", "-", "NOT ", "SELECT ", " FROM t", " UNION ", ",",
                    " WHERE ", " OR ", "CASE WHEN 1 THEN ", " END", "a.b", "'x'", " JOIN u ON ",
                ]),
                0..400,
            ),
            repeat in 1usize..50,
        ) {
            let text = pieces.concat().repeat(repeat);
            let _ = check_length(&text);
            if let Ok(statements) = Parser::parse_sql(&GenericDialect {}, &text) {
                for s in &statements {
                    let _ = check_depth(s);
                }
            }
        }
    }
}
