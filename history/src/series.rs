//! Series form: a table's rows with the columns that identify a series
//! (metric, labels, model, …) stored once per series instead of once per
//! row.
//!
//! A table declares its series columns ([`TableDef::with_series_columns`]);
//! a writer may then hand it a [`SeriesBatch`]: one `series` batch (those
//! columns, one row per series) and one `points` batch (a `UInt32` index
//! into `series`, then every other column). The WAL record and the buffer
//! keep that form, so a series' labels are encoded, checksummed and held in
//! memory once per write, not once per sample. Rows become whole again
//! ([`TableRows::materialize`]) only where a reader needs them: a scan of
//! the buffer (only the projected columns) and persistence, which sorts
//! series first and samples by integer keys ([`crate::persist`]).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, UInt32Type};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};

use crate::error::{Error, Result};
use crate::table::TableDef;

/// Name of the first column of a points batch in the WAL: the row of its
/// series in the series batch. Writers may name it as they like.
pub const SERIES_INDEX_COLUMN: &str = "series_index";

/// Rows of one table in series form. Build it with [`SeriesBatch::new`];
/// [`crate::HistoryStore::write`] checks it against the table.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesBatch {
    series: RecordBatch,
    points: RecordBatch,
}

impl SeriesBatch {
    /// `series`: the table's series columns in table order, one row per
    /// series. `points`: a non-null `UInt32` column of indices into
    /// `series`, then the table's other columns in table order.
    pub fn new(series: RecordBatch, points: RecordBatch) -> Self {
        Self { series, points }
    }

    /// The series batch.
    pub fn series(&self) -> &RecordBatch {
        &self.series
    }

    /// The points batch (first column: the series index).
    pub fn points(&self) -> &RecordBatch {
        &self.points
    }

    /// Rows (points).
    pub fn num_rows(&self) -> usize {
        self.points.num_rows()
    }

    /// The series index column.
    pub(crate) fn index(&self) -> &UInt32Array {
        self.points.column(0).as_primitive::<UInt32Type>()
    }
}

/// A table's rows as a writer hands them over and as the buffer keeps them.
#[derive(Debug, Clone, PartialEq)]
pub enum TableRows {
    /// Whole rows with the table's schema.
    Rows(RecordBatch),
    /// Series form (only for tables with series columns).
    Series(SeriesBatch),
}

impl From<RecordBatch> for TableRows {
    fn from(b: RecordBatch) -> Self {
        TableRows::Rows(b)
    }
}

impl From<SeriesBatch> for TableRows {
    fn from(b: SeriesBatch) -> Self {
        TableRows::Series(b)
    }
}

impl TableRows {
    /// Rows (points for the series form).
    pub fn num_rows(&self) -> usize {
        match self {
            TableRows::Rows(b) => b.num_rows(),
            TableRows::Series(s) => s.num_rows(),
        }
    }

    /// Bytes held in memory, counted against the buffer bound.
    pub fn memory_size(&self) -> usize {
        match self {
            TableRows::Rows(b) => b.get_array_memory_size(),
            TableRows::Series(s) => {
                s.series.get_array_memory_size() + s.points.get_array_memory_size()
            }
        }
    }

    /// Bytes these rows take once made whole ([`Self::materialize`]): the
    /// series form's labels are copied once per point then. An estimate
    /// (the series' average size), for the memory bound.
    pub(crate) fn whole_size(&self) -> usize {
        match self {
            TableRows::Rows(b) => b.get_array_memory_size(),
            TableRows::Series(s) => {
                let per_series = s.series.get_array_memory_size() / s.series.num_rows().max(1);
                s.points.get_array_memory_size() + per_series * s.num_rows()
            }
        }
    }

    /// Column `name` of `def`, when it is not a series column (e.g. `ts`).
    pub(crate) fn point_column(&self, def: &TableDef, name: &str) -> Option<ArrayRef> {
        match self {
            TableRows::Rows(b) => b.column_by_name(name).cloned(),
            TableRows::Series(s) => {
                let layout = def.series_layout()?;
                let i = layout.points_schema.index_of(name).ok()?;
                Some(s.points.column(i).clone())
            }
        }
    }

    /// The same rows in series form (whole rows become one series each:
    /// no columns are copied). Only for tables with series columns.
    pub(crate) fn to_series(&self, def: &TableDef) -> Result<SeriesBatch> {
        let layout = def.series_layout().ok_or_else(|| Error::InvalidBatch {
            table: def.name.clone(),
            detail: "the table declares no series columns".into(),
        })?;
        match self {
            TableRows::Series(s) => Ok(s.clone()),
            TableRows::Rows(b) => {
                let n = b.num_rows();
                let mut series = Vec::new();
                let mut points: Vec<ArrayRef> =
                    vec![Arc::new(UInt32Array::from_iter_values(0..n as u32))];
                for (c, source) in layout.sources.iter().enumerate() {
                    match source {
                        Source::Series(_) => series.push(b.column(c).clone()),
                        Source::Point(_) => points.push(b.column(c).clone()),
                    }
                }
                let rows = |n| RecordBatchOptions::new().with_row_count(Some(n));
                Ok(SeriesBatch {
                    series: RecordBatch::try_new_with_options(
                        layout.series_schema.clone(),
                        series,
                        &rows(n),
                    )?,
                    points: RecordBatch::try_new_with_options(
                        layout.points_schema.clone(),
                        points,
                        &rows(n),
                    )?,
                })
            }
        }
    }

    /// Whole rows of the projected columns of `def` (all when `None`), in
    /// projection order. Series columns are gathered per point with `take`.
    pub(crate) fn materialize(
        &self,
        def: &TableDef,
        projection: Option<&[usize]>,
    ) -> Result<RecordBatch> {
        let all: Vec<usize>;
        let projection = match projection {
            Some(p) => p,
            None => {
                all = (0..def.schema.fields().len()).collect();
                &all
            }
        };
        let schema = Arc::new(def.schema.project(projection)?);
        match self {
            TableRows::Rows(b) => Ok(b.project(projection)?),
            TableRows::Series(s) => {
                let layout = def.series_layout().ok_or_else(|| Error::InvalidBatch {
                    table: def.name.clone(),
                    detail: "series-form rows for a table without series columns".into(),
                })?;
                let columns = projection
                    .iter()
                    .map(|&c| layout.column(c, &s.series, &s.points, s.index()))
                    .collect::<Result<Vec<_>>>()?;
                let options = RecordBatchOptions::new().with_row_count(Some(s.num_rows()));
                Ok(RecordBatch::try_new_with_options(
                    schema, columns, &options,
                )?)
            }
        }
    }
}

/// Where each column of a series table lives in the series form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// Column `i` of the series batch.
    Series(usize),
    /// Column `i` of the points batch (0 is the series index).
    Point(usize),
}

/// The series form of a table: derived from its schema and series columns.
#[derive(Debug, Clone)]
pub(crate) struct SeriesLayout {
    pub series_schema: SchemaRef,
    /// The series index, then the other columns in table order.
    pub points_schema: SchemaRef,
    /// Per table column.
    pub sources: Vec<Source>,
}

impl SeriesLayout {
    pub(crate) fn new(schema: &Schema, series_columns: &[String]) -> Self {
        let mut series = Vec::new();
        let mut points = vec![Field::new(SERIES_INDEX_COLUMN, DataType::UInt32, false)];
        let mut sources = Vec::with_capacity(schema.fields().len());
        for f in schema.fields() {
            if series_columns.iter().any(|c| c == f.name()) {
                sources.push(Source::Series(series.len()));
                series.push(f.as_ref().clone());
            } else {
                sources.push(Source::Point(points.len()));
                points.push(f.as_ref().clone());
            }
        }
        Self {
            series_schema: Arc::new(Schema::new(series)),
            points_schema: Arc::new(Schema::new(points)),
            sources,
        }
    }

    /// Table column `c`, whole (one value per point).
    fn column(
        &self,
        c: usize,
        series: &RecordBatch,
        points: &RecordBatch,
        index: &UInt32Array,
    ) -> Result<ArrayRef> {
        Ok(match self.sources[c] {
            Source::Series(i) => take(series.column(i).as_ref(), index, None)?,
            Source::Point(i) => points.column(i).clone(),
        })
    }

    /// Check a writer's batches against the table and give them the
    /// declared schemas (the series index may be named as the writer
    /// likes). Every index must point at a series.
    pub(crate) fn check(&self, def: &TableDef, batch: SeriesBatch) -> Result<SeriesBatch> {
        let invalid = |detail: String| Error::InvalidBatch {
            table: def.name.clone(),
            detail,
        };
        let SeriesBatch { series, points } = batch;
        crate::table::check_fields(&def.name, &self.series_schema, series.schema_ref(), 0)
            .map_err(|e| invalid(format!("series batch: {e}")))?;
        crate::table::check_fields(&def.name, &self.points_schema, points.schema_ref(), 1)
            .map_err(|e| invalid(format!("points batch: {e}")))?;
        let index = points.column(0);
        if index.data_type() != &DataType::UInt32 || index.null_count() > 0 {
            return Err(invalid(
                "the first column of the points batch must be a non-null UInt32 series index"
                    .into(),
            ));
        }
        let n = series.num_rows();
        if let Some(max) = arrow::compute::max(index.as_primitive::<UInt32Type>())
            && max as usize >= n
        {
            return Err(invalid(format!(
                "series index {max} is out of range: the series batch has {n} rows"
            )));
        }
        let series = RecordBatch::try_new_with_options(
            self.series_schema.clone(),
            series.columns().to_vec(),
            &RecordBatchOptions::new().with_row_count(Some(n)),
        )?;
        let points = RecordBatch::try_new_with_options(
            self.points_schema.clone(),
            points.columns().to_vec(),
            &RecordBatchOptions::new().with_row_count(Some(points.num_rows())),
        )?;
        Ok(SeriesBatch { series, points })
    }
}
