//! A window's features row by row, the input of the statistics that look
//! at whole rows rather than one feature at a time: multivariate drift
//! ([`crate::multivariate`]) and direct loss estimation ([`crate::dle`]).
//!
//! Columns are stored one after another (column-major), each with one
//! entry per row; a missing value is `None`. The matrix is plain data: it
//! is filled by the caller (the evaluator's row reader) and validated here.

use crate::error::{Result, invalid};

/// One numeric column: a feature's name and its value in each row.
#[derive(Debug, Clone, PartialEq)]
pub struct NumericColumn {
    pub name: String,
    pub values: Vec<Option<f64>>,
}

/// One categorical column: a feature's name and its category in each row.
#[derive(Debug, Clone, PartialEq)]
pub struct CategoricalColumn {
    pub name: String,
    pub values: Vec<Option<String>>,
}

/// The same rows' numeric and categorical columns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeatureMatrix {
    pub rows: usize,
    pub numeric: Vec<NumericColumn>,
    pub categorical: Vec<CategoricalColumn>,
}

impl FeatureMatrix {
    /// An empty matrix of `rows` rows, to add columns to.
    pub fn new(rows: usize) -> Self {
        FeatureMatrix {
            rows,
            ..FeatureMatrix::default()
        }
    }

    /// Adds a numeric column (one value per row).
    pub fn with_numeric(mut self, name: impl Into<String>, values: Vec<Option<f64>>) -> Self {
        self.numeric.push(NumericColumn {
            name: name.into(),
            values,
        });
        self
    }

    /// Adds a categorical column (one value per row).
    pub fn with_categorical(
        mut self,
        name: impl Into<String>,
        values: Vec<Option<String>>,
    ) -> Self {
        self.categorical.push(CategoricalColumn {
            name: name.into(),
            values,
        });
        self
    }

    /// Columns in the matrix.
    pub fn columns(&self) -> usize {
        self.numeric.len() + self.categorical.len()
    }

    /// Checks every column has one entry per row and every present number
    /// is finite.
    pub fn validate(&self) -> Result<()> {
        let lengths = self
            .numeric
            .iter()
            .map(|c| (&c.name, c.values.len()))
            .chain(self.categorical.iter().map(|c| (&c.name, c.values.len())));
        for (name, len) in lengths {
            if len != self.rows {
                return Err(invalid(
                    "features",
                    format!("column {name} has {len} values for {} rows", self.rows),
                ));
            }
        }
        if let Some(c) = self
            .numeric
            .iter()
            .find(|c| c.values.iter().flatten().any(|v| !v.is_finite()))
        {
            return Err(invalid(
                "features",
                format!("column {} has a NaN or infinite value", c.name),
            ));
        }
        Ok(())
    }

    /// The matrix of the rows at `rows` (indices into this one), in that
    /// order.
    pub fn select(&self, rows: &[usize]) -> FeatureMatrix {
        FeatureMatrix {
            rows: rows.len(),
            numeric: self
                .numeric
                .iter()
                .map(|c| NumericColumn {
                    name: c.name.clone(),
                    values: rows.iter().map(|&i| c.values[i]).collect(),
                })
                .collect(),
            categorical: self
                .categorical
                .iter()
                .map(|c| CategoricalColumn {
                    name: c.name.clone(),
                    values: rows.iter().map(|&i| c.values[i].clone()).collect(),
                })
                .collect(),
        }
    }

    /// The numeric column named `name`.
    pub fn numeric_column(&self, name: &str) -> Option<&NumericColumn> {
        self.numeric.iter().find(|c| c.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_must_match_the_row_count_and_be_finite() {
        let ok = FeatureMatrix::new(2)
            .with_numeric("a", vec![Some(1.0), None])
            .with_categorical("b", vec![Some("x".into()), None]);
        assert!(ok.validate().is_ok());
        assert_eq!(ok.columns(), 2);
        let short = FeatureMatrix::new(3).with_numeric("a", vec![Some(1.0)]);
        assert!(
            short
                .validate()
                .unwrap_err()
                .to_string()
                .contains("column a has 1 values")
        );
        let nan = FeatureMatrix::new(1).with_numeric("a", vec![Some(f64::NAN)]);
        assert!(nan.validate().is_err());
        let picked = ok.select(&[1, 1, 0]);
        assert_eq!(picked.rows, 3);
        assert_eq!(picked.numeric[0].values, [None, None, Some(1.0)]);
        assert_eq!(picked.categorical[0].values[2].as_deref(), Some("x"));
    }
}
