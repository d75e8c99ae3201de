//! Table definitions, declared by the owners of the data.

use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::error::{Error, Result};
use arrow::record_batch::RecordBatch;

use crate::promoted::PromotedKey;
use crate::series::{SeriesLayout, TableRows};

/// Name of the mandatory time column.
pub const TIME_COLUMN: &str = "ts";

/// The time zone of the time column.
pub const TIME_ZONE: &str = "UTC";

/// The Arrow type of the time column: `Timestamp(Microsecond, Some("UTC"))`.
pub fn time_data_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(TIME_ZONE.into()))
}

/// A non-nullable `ts` field of the right type, for building schemas.
pub fn time_field() -> Field {
    Field::new(TIME_COLUMN, time_data_type(), false)
}

/// The declaration of one append-only table.
///
/// The schema is presented to SQL exactly as declared (use `Utf8` for text:
/// Parquet reads are mapped back to the declared types, never to `Utf8View`).
#[derive(Debug, Clone)]
pub struct TableDef {
    /// Table name, as registered in SQL. `[a-z0-9_]+`.
    pub name: String,
    /// The Arrow schema. Must contain a non-nullable [`TIME_COLUMN`] of
    /// [`time_data_type`].
    pub schema: SchemaRef,
    /// Columns Parquet files are sorted by, in order (e.g. `model, version,
    /// metric, ts`). Every name must be a column of the schema. A `Map`
    /// column (e.g. a series' `labels`) sorts by a hash of its entries: rows
    /// with equal maps end up together, in no meaningful order between
    /// maps, so the columns after it are sorted only within one map value
    /// (`metric, labels, ts` keeps each series' rows together in time
    /// order, which is what makes their values compress).
    pub sort_key: Vec<String>,
    /// Text columns whose distinct values (or min/max when there are many)
    /// are kept per file in the manifest, so queries filtering on them with
    /// `=` or `IN` skip files (e.g. `model`, `version`).
    pub index_columns: Vec<String>,
    /// Persisted files whose newest row is older than this are deleted.
    /// `None` keeps data forever.
    pub retention: Option<Duration>,
    /// Columns that identify a series (e.g. `metric, labels, model`): with
    /// them declared, writers may hand over rows in series form
    /// ([`crate::SeriesBatch`]). Set with [`TableDef::with_series_columns`].
    series_columns: Vec<String>,
    series: Option<Arc<SeriesLayout>>,
    /// Columns that hold one key of a map column ([`PromotedKey`]). Set
    /// with [`TableDef::with_promoted_keys`].
    promoted: Vec<PromotedKey>,
}

impl TableDef {
    /// A definition with the given schema, sorted by `ts` only, no index
    /// columns and no retention.
    pub fn new(name: impl Into<String>, schema: SchemaRef) -> Self {
        Self {
            name: name.into(),
            schema,
            sort_key: vec![TIME_COLUMN.to_string()],
            index_columns: Vec::new(),
            retention: None,
            series_columns: Vec::new(),
            series: None,
            promoted: Vec::new(),
        }
    }

    /// Declare columns that each hold one key's entry of the map column
    /// `map` (`le` holds `labels['le']`, null when absent): nullable `Utf8`
    /// columns named after their keys, already in the schema, filled by
    /// writers. Rows stored before a key was declared here (WAL records,
    /// Parquet files) read back with the column filled from their map.
    /// With series columns, a promoted key must be one exactly when its
    /// map is.
    pub fn with_promoted_keys(
        mut self,
        map: impl Into<String>,
        keys: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        let map = map.into();
        self.promoted.extend(keys.into_iter().map(|k| PromotedKey {
            map: map.clone(),
            key: k.into(),
        }));
        self
    }

    /// The declared promoted keys.
    pub fn promoted_keys(&self) -> &[PromotedKey] {
        &self.promoted
    }

    /// Declare the columns that identify a series: writers may then store
    /// each series' values of them once per write ([`crate::SeriesBatch`]).
    /// They should be the sort key's columns before `ts`, so persistence
    /// sorts series, not rows. `ts` cannot be one.
    pub fn with_series_columns(
        mut self,
        cols: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.series_columns = cols.into_iter().map(Into::into).collect();
        self.series = (!self.series_columns.is_empty())
            .then(|| Arc::new(SeriesLayout::new(&self.schema, &self.series_columns)));
        self
    }

    /// The declared series columns (empty: rows only).
    pub fn series_columns(&self) -> &[String] {
        &self.series_columns
    }

    pub(crate) fn series_layout(&self) -> Option<&SeriesLayout> {
        self.series.as_deref()
    }

    /// Set the sort key.
    pub fn with_sort_key(mut self, cols: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.sort_key = cols.into_iter().map(Into::into).collect();
        self
    }

    /// Set the index columns (text columns summarised in the manifest).
    pub fn with_index_columns(mut self, cols: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.index_columns = cols.into_iter().map(Into::into).collect();
        self
    }

    /// Set the retention.
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = Some(retention);
        self
    }

    pub(crate) fn ts_index(&self) -> usize {
        self.schema.index_of(TIME_COLUMN).unwrap_or(0)
    }

    /// Check the definition; called by `HistoryStore::open`.
    pub fn validate(&self) -> Result<()> {
        let bad = |detail: String| Error::InvalidTableDef {
            table: self.name.clone(),
            detail,
        };
        if self.name.is_empty()
            || self.name.len() > 128
            || !self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(bad(
                "the name must be 1 to 128 characters of a-z, 0-9 and _".into(),
            ));
        }
        let ts = self
            .schema
            .field_with_name(TIME_COLUMN)
            .map_err(|_| bad(format!("the schema has no `{TIME_COLUMN}` column")))?;
        if ts.data_type() != &time_data_type() {
            return Err(bad(format!(
                "`{TIME_COLUMN}` is {} but must be {}",
                ts.data_type(),
                time_data_type()
            )));
        }
        if ts.is_nullable() {
            return Err(bad(format!("`{TIME_COLUMN}` must not be nullable")));
        }
        for c in &self.sort_key {
            let f = self
                .schema
                .field_with_name(c)
                .map_err(|_| bad(format!("sort key column `{c}` is not in the schema")))?;
            if !f.data_type().is_primitive()
                && !matches!(
                    f.data_type(),
                    DataType::Utf8
                        | DataType::LargeUtf8
                        | DataType::Utf8View
                        | DataType::Boolean
                        | DataType::Dictionary(_, _)
                        | DataType::Map(_, _)
                )
            {
                return Err(bad(format!(
                    "sort key column `{c}` has type {} which cannot be sorted",
                    f.data_type()
                )));
            }
        }
        for c in &self.series_columns {
            if c == TIME_COLUMN {
                return Err(bad(format!("`{TIME_COLUMN}` cannot be a series column")));
            }
            if self.schema.field_with_name(c).is_err() {
                return Err(bad(format!("series column `{c}` is not in the schema")));
            }
        }
        if let Some(layout) = &self.series
            && layout.sources.len() != self.schema.fields().len()
        {
            return Err(bad(
                "the schema changed after with_series_columns: declare the series columns last"
                    .into(),
            ));
        }
        for p in &self.promoted {
            let map = self.schema.field_with_name(&p.map).map_err(|_| {
                bad(format!(
                    "the map column `{}` of promoted key `{}` is not in the schema",
                    p.map, p.key
                ))
            })?;
            let text_map = match map.data_type() {
                DataType::Map(entries, _) => match entries.data_type() {
                    DataType::Struct(kv) => {
                        kv.len() == 2 && kv.iter().all(|f| f.data_type() == &DataType::Utf8)
                    }
                    _ => false,
                },
                _ => false,
            };
            if !text_map {
                return Err(bad(format!(
                    "the promoted key `{}` is taken from `{}`, which is {} but must map Utf8 to Utf8",
                    p.key,
                    p.map,
                    map.data_type()
                )));
            }
            let column = self.schema.field_with_name(&p.key).map_err(|_| {
                bad(format!(
                    "the promoted key `{}` has no column: add a nullable Utf8 column `{}`",
                    p.key, p.key
                ))
            })?;
            if column.data_type() != &DataType::Utf8 || !column.is_nullable() {
                return Err(bad(format!(
                    "the promoted key column `{}` must be nullable Utf8",
                    p.key
                )));
            }
            if !self.series_columns.is_empty()
                && self.series_columns.contains(&p.key) != self.series_columns.contains(&p.map)
            {
                return Err(bad(format!(
                    "the promoted key `{}` must be a series column exactly when its map `{}` is",
                    p.key, p.map
                )));
            }
        }
        for c in &self.index_columns {
            let f = self
                .schema
                .field_with_name(c)
                .map_err(|_| bad(format!("index column `{c}` is not in the schema")))?;
            if !matches!(
                f.data_type(),
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            ) {
                return Err(bad(format!(
                    "index column `{c}` has type {} but must be text",
                    f.data_type()
                )));
            }
        }
        Ok(())
    }

    /// Check a writer's (or a WAL record's) rows against the table and give
    /// them the declared schema: whole rows by [`Self::check_schema`],
    /// series-form rows by the table's series layout (refused when it
    /// declares no series columns).
    pub(crate) fn check_rows(&self, rows: TableRows) -> Result<TableRows> {
        match rows {
            TableRows::Rows(batch) => {
                self.check_schema(batch.schema_ref())?;
                let batch = RecordBatch::try_new(self.schema.clone(), batch.columns().to_vec())
                    .map_err(|e| Error::InvalidBatch {
                        table: self.name.clone(),
                        detail: e.to_string(),
                    })?;
                Ok(TableRows::Rows(batch))
            }
            TableRows::Series(batch) => {
                let layout = self.series_layout().ok_or_else(|| Error::InvalidBatch {
                    table: self.name.clone(),
                    detail: "rows in series form, but the table declares no series columns \
                             (TableDef::with_series_columns)"
                        .into(),
                })?;
                Ok(TableRows::Series(layout.check(self, batch)?))
            }
        }
    }

    /// Check that `schema` (a batch's) matches the declared schema: same
    /// names, types and order. Metadata and nullability are ignored.
    pub(crate) fn check_schema(&self, schema: &Schema) -> Result<()> {
        check_fields(&self.name, &self.schema, schema, 0)
    }
}

/// Check that `got` has `want`'s columns: same count, types and order, and
/// the same names from column `unnamed` on.
pub(crate) fn check_fields(table: &str, want: &Schema, got: &Schema, unnamed: usize) -> Result<()> {
    let mismatch = |detail: String| Error::SchemaMismatch {
        table: table.to_string(),
        detail,
    };
    let (want, got) = (want.fields(), got.fields());
    if want.len() != got.len() {
        return Err(mismatch(format!(
            "expected {} columns, got {}",
            want.len(),
            got.len()
        )));
    }
    for (i, (w, g)) in want.iter().zip(got.iter()).enumerate() {
        if i >= unnamed && w.name() != g.name() {
            return Err(mismatch(format!(
                "expected column `{}`, got `{}`",
                w.name(),
                g.name()
            )));
        }
        if w.data_type() != g.data_type() {
            return Err(mismatch(format!(
                "column `{}` is {} but must be {}",
                w.name(),
                g.data_type(),
                w.data_type()
            )));
        }
    }
    Ok(())
}

/// Build a schema from fields, for convenience.
pub fn schema(fields: Vec<Field>) -> SchemaRef {
    Arc::new(Schema::new(fields))
}
