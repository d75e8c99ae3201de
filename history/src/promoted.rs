//! Promoted keys: a text column that holds one key's entry of a map column
//! (`le` of `labels`), so queries reach the hottest labels without a map
//! lookup and Parquet keeps statistics and a page index for them.
//!
//! Writers fill the column themselves (it is part of the table schema).
//! What this module does is keep the history readable across the change
//! (and across the one other change a declaration may make: a nullable
//! column added, which rows stored before it read back as null):
//! rows stored before a key was promoted (WAL records, Parquet files) lack
//! the column, and every path that reads them fills it from the map as it
//! was then — WAL replay and compaction through [`TableDef::upgrade_rows`],
//! queries through [`PromotedKeysAdapterFactory`], which rewrites a
//! reference to the missing column into the map lookup it stands for (so
//! a filter on it prunes nothing in such a file rather than everything).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::physical_expr::ScalarFunctionExpr;
use datafusion::physical_expr::expressions::{Column, lit};
use datafusion::physical_expr_adapter::{
    DefaultPhysicalExprAdapterFactory, PhysicalExprAdapter, PhysicalExprAdapterFactory,
};
use datafusion::physical_plan::PhysicalExpr;

use crate::error::{Error, Result};
use crate::series::{SeriesBatch, TableRows};
use crate::table::TableDef;

/// One promoted key: the column named `key` holds `map[key]` (null when the
/// map has no such entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromotedKey {
    /// The map column (`Map<Utf8, Utf8>`).
    pub map: String,
    /// The key, and the name of its column (nullable `Utf8`).
    pub key: String,
}

/// `map[key]` for every row of a `Map<Utf8, Utf8>` array; null where the
/// map has no entry for `key` (or the map is null). The error says what
/// the column is instead.
pub(crate) fn extract(map: &dyn Array, key: &str) -> std::result::Result<ArrayRef, String> {
    let not_text_map =
        || format!("`{key}` is promoted from a column that is not a map of text to text");
    let map = map.as_map_opt().ok_or_else(not_text_map)?;
    let (Some(keys), Some(values)) = (
        map.keys().as_string_opt::<i32>(),
        map.values().as_string_opt::<i32>(),
    ) else {
        return Err(not_text_map());
    };
    let offsets = map.value_offsets();
    let mut out = StringBuilder::with_capacity(map.len(), map.len() * 4);
    for row in 0..map.len() {
        let found = (!map.is_null(row))
            .then(|| {
                (offsets[row] as usize..offsets[row + 1] as usize)
                    .find(|&e| keys.is_valid(e) && keys.value(e) == key)
            })
            .flatten()
            .filter(|&e| values.is_valid(e));
        out.append_option(found.map(|e| values.value(e)));
    }
    Ok(Arc::new(out.finish()))
}

impl TableDef {
    /// Rows stored under an earlier declaration of the table (a WAL record,
    /// a Parquet file) in today's shape: a promoted key's column they lack
    /// is filled from its map, any other nullable column they lack (one
    /// added to the declaration since) with nulls. Rows that already have
    /// today's shape are returned as they are; anything else (a column
    /// renamed, dropped, retyped, or a non-nullable one added) is left for
    /// the schema check to refuse.
    pub(crate) fn upgrade_rows(&self, rows: TableRows) -> Result<TableRows> {
        Ok(match rows {
            TableRows::Rows(batch) => TableRows::Rows(self.fill_missing(batch, &self.schema)?),
            TableRows::Series(batch) => match self.series_layout() {
                Some(layout) => {
                    let series =
                        self.fill_missing(batch.series().clone(), &layout.series_schema)?;
                    let points =
                        self.fill_missing(batch.points().clone(), &layout.points_schema)?;
                    TableRows::Series(SeriesBatch::new(series, points))
                }
                None => TableRows::Series(batch),
            },
        })
    }

    /// `batch` with `target`'s columns when every column it lacks is a
    /// promoted key whose map it has, or nullable; otherwise unchanged.
    fn fill_missing(&self, batch: RecordBatch, target: &SchemaRef) -> Result<RecordBatch> {
        enum Column<'a> {
            Own(&'a ArrayRef),
            FromMap { key: &'a str, map: &'a ArrayRef },
            Null(&'a DataType),
        }
        if batch.num_columns() >= target.fields().len() {
            return Ok(batch);
        }
        // Each target column: the batch's own, the map it is promoted
        // from, or nulls (None when none of these: not a shape this fills).
        let sources: Option<Vec<Column<'_>>> = target
            .fields()
            .iter()
            .map(|f| match batch.column_by_name(f.name()) {
                Some(c) => Some(Column::Own(c)),
                None => self
                    .promoted_keys()
                    .iter()
                    .find(|p| &p.key == f.name())
                    .and_then(|p| batch.column_by_name(&p.map))
                    .map(|map| Column::FromMap { key: f.name(), map })
                    .or_else(|| f.is_nullable().then(|| Column::Null(f.data_type()))),
            })
            .collect();
        let Some(sources) = sources else {
            return Ok(batch);
        };
        let own = sources
            .iter()
            .filter(|c| matches!(c, Column::Own(_)))
            .count();
        if own != batch.num_columns() {
            return Ok(batch);
        }
        let columns = sources
            .into_iter()
            .map(|c| match c {
                Column::Own(c) => Ok(c.clone()),
                Column::FromMap { key, map } => {
                    extract(map.as_ref(), key).map_err(|detail| Error::InvalidBatch {
                        table: self.name.clone(),
                        detail,
                    })
                }
                Column::Null(data_type) => {
                    Ok(arrow::array::new_null_array(data_type, batch.num_rows()))
                }
            })
            .collect::<Result<Vec<_>>>()?;
        RecordBatch::try_new(target.clone(), columns).map_err(|e| Error::InvalidBatch {
            table: self.name.clone(),
            detail: e.to_string(),
        })
    }
}

/// Rewrites, per Parquet file, references to promoted columns the file
/// lacks into lookups in the map it has (`le` → `get_field(labels, 'le')`),
/// for projections and pruning predicates alike; everything else goes to
/// DataFusion's default adapter (casts, columns missing altogether).
#[derive(Debug)]
pub(crate) struct PromotedKeysAdapterFactory {
    promoted: Vec<PromotedKey>,
}

impl PromotedKeysAdapterFactory {
    pub(crate) fn new(promoted: Vec<PromotedKey>) -> Self {
        Self { promoted }
    }
}

impl PhysicalExprAdapterFactory for PromotedKeysAdapterFactory {
    fn create(
        &self,
        logical_file_schema: SchemaRef,
        physical_file_schema: SchemaRef,
    ) -> DfResult<Arc<dyn PhysicalExprAdapter>> {
        let lacking = self
            .promoted
            .iter()
            .filter(|p| {
                physical_file_schema.index_of(&p.key).is_err()
                    && physical_file_schema.index_of(&p.map).is_ok()
                    && logical_file_schema.index_of(&p.map).is_ok()
            })
            .cloned()
            .collect();
        Ok(Arc::new(PromotedKeysAdapter {
            lacking,
            logical_file_schema: logical_file_schema.clone(),
            inner: DefaultPhysicalExprAdapterFactory
                .create(logical_file_schema, physical_file_schema)?,
        }))
    }
}

#[derive(Debug)]
struct PromotedKeysAdapter {
    /// Promoted keys this file has no column for, but has the map of.
    lacking: Vec<PromotedKey>,
    logical_file_schema: SchemaRef,
    inner: Arc<dyn PhysicalExprAdapter>,
}

impl PhysicalExprAdapter for PromotedKeysAdapter {
    fn rewrite(&self, expr: Arc<dyn PhysicalExpr>) -> DfResult<Arc<dyn PhysicalExpr>> {
        let expr = if self.lacking.is_empty() {
            expr
        } else {
            expr.transform(|e| {
                let Some(column) = e.downcast_ref::<Column>() else {
                    return Ok(Transformed::no(e));
                };
                let Some(p) = self.lacking.iter().find(|p| p.key == column.name()) else {
                    return Ok(Transformed::no(e));
                };
                Ok(Transformed::yes(map_lookup(
                    &self.logical_file_schema,
                    &p.map,
                    &p.key,
                )?))
            })
            .data()?
        };
        self.inner.rewrite(expr)
    }
}

/// `get_field(map, key)`: the physical form of SQL's `map['key']`.
fn map_lookup(schema: &Schema, map: &str, key: &str) -> DfResult<Arc<dyn PhysicalExpr>> {
    let column: Arc<dyn PhysicalExpr> = Arc::new(Column::new(map, schema.index_of(map)?));
    let key = lit(ScalarValue::Utf8(Some(key.to_string())));
    let f = ScalarFunctionExpr::try_new(
        datafusion::functions::core::get_field(),
        vec![column, key],
        schema,
        Arc::new(ConfigOptions::default()),
    )?;
    debug_assert_eq!(f.return_type(), &DataType::Utf8);
    Ok(Arc::new(f))
}
