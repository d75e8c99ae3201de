//! SQL the pages run for their charts and the console, through the same
//! engine, limits and read-only checks as `POST /api/v1/sql`.

use datafusion::arrow::array::Array;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::http::AppState;
use crate::sql::SqlError;

/// A result as text cells (`None` for SQL NULL).
#[derive(Debug, Default)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
    /// More rows matched than were read.
    pub truncated: bool,
}

impl Table {
    /// The column's index by name.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// A cell as text.
    pub fn text(&self, row: usize, column: &str) -> Option<&str> {
        let c = self.column(column)?;
        self.rows.get(row)?.get(c)?.as_deref()
    }

    /// A cell as a number (NULL and text are `None`).
    pub fn number(&self, row: usize, column: &str) -> Option<f64> {
        self.text(row, column)?.parse().ok()
    }
}

/// Runs `sql` with at most `limit` rows and the engine's timeout.
pub async fn run(s: &AppState, sql: String, limit: usize) -> Result<Table, SqlError> {
    let result = s.sql.query(sql, limit, s.sql.limits.timeout).await?;
    let columns = result
        .schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let options = FormatOptions::default().with_display_error(true);
    let mut rows = Vec::new();
    for batch in &result.batches {
        let formatters: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<_, _>>()
            .map_err(|e| SqlError::from(datafusion::error::DataFusionError::from(e)))?;
        for r in 0..batch.num_rows() {
            rows.push(
                batch
                    .columns()
                    .iter()
                    .zip(&formatters)
                    .map(|(c, f)| (!c.is_null(r)).then(|| f.value(r).to_string()))
                    .collect(),
            );
        }
    }
    Ok(Table {
        columns,
        rows,
        truncated: result.truncated,
    })
}

/// A SQL string literal.
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn literals_double_their_quotes() {
        assert_eq!(super::literal("o'brien"), "'o''brien'");
        assert_eq!(super::literal("x"), "'x'");
    }
}
