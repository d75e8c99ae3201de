//! Result types every PostgreSQL client reads: timestamps with time zone
//! (UTC), `int8`, `float8`, `text`, `bool`, arrays of those; maps and
//! structs (`labels`, `attributes`) as JSON text, the very text
//! `POST /api/v1/sql` shows.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, StringBuilder};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use datafusion::arrow::json::writer::{EncoderOptions, make_encoder};

use crate::sql::SqlError;

/// A column type every PostgreSQL client reads: timestamps with time zone
/// (UTC), `int8`, `float8`, `text`, `bool`, arrays of those; nested values
/// as JSON text. Columns `pg_catalog` marks with PostgreSQL-specific types
/// (`oid`, `"char"`) keep them, `psql`'s catalogue queries rely on them.
fn wire_type(field: &Field) -> DataType {
    if !field.metadata().is_empty() {
        return field.data_type().clone();
    }
    wire_data_type(field.data_type())
}

fn wire_data_type(t: &DataType) -> DataType {
    match t {
        DataType::Timestamp(unit, tz) => {
            DataType::Timestamp(*unit, Some(tz.clone().unwrap_or_else(|| "UTC".into())))
        }
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => DataType::Int64,
        DataType::Float16 | DataType::Float32 => DataType::Float64,
        DataType::LargeUtf8 | DataType::Utf8View => DataType::Utf8,
        DataType::Dictionary(_, value) => wire_data_type(value),
        DataType::List(item) | DataType::LargeList(item) | DataType::FixedSizeList(item, _) => {
            match wire_data_type(item.data_type()) {
                inner @ (DataType::Int64
                | DataType::Float64
                | DataType::Utf8
                | DataType::Boolean
                | DataType::Timestamp(..)) => {
                    DataType::List(Arc::new(Field::new_list_field(inner, true)))
                }
                _ => DataType::Utf8,
            }
        }
        DataType::Map(..) | DataType::Struct(_) | DataType::Union(..) => DataType::Utf8,
        other => other.clone(),
    }
}

/// The schema a result is sent with (see [`wire_type`]).
pub fn wire_schema(schema: &Schema) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| {
                Field::new(f.name(), wire_type(f), f.is_nullable())
                    .with_metadata(f.metadata().clone())
            })
            .collect::<Vec<_>>(),
    ))
}

/// Converts a result batch to `schema` (from [`wire_schema`]).
pub(super) fn wire_batch(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, SqlError> {
    let strict = CastOptions {
        safe: false,
        ..CastOptions::default()
    };
    let columns = batch
        .columns()
        .iter()
        .zip(batch.schema().fields())
        .zip(schema.fields())
        .map(|((column, from), to)| {
            if column.data_type() == to.data_type() {
                Ok(column.clone())
            } else if to.data_type() == &DataType::Utf8 && is_nested(from.data_type()) {
                json_text(from, column)
            } else {
                cast_with_options(column, to.data_type(), &strict)
                    .map_err(|e| SqlError::from(datafusion::error::DataFusionError::from(e)))
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| SqlError::Internal(format!("re-typing a result batch: {e}")))
}

fn is_nested(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Map(..)
            | DataType::Struct(_)
            | DataType::Union(..)
            | DataType::List(_)
            | DataType::LargeList(_)
            | DataType::FixedSizeList(..)
    )
}

/// Nested values as JSON text, the way `POST /api/v1/sql` writes them.
fn json_text(field: &FieldRef, column: &ArrayRef) -> Result<ArrayRef, SqlError> {
    let options = EncoderOptions::default();
    let mut encoder = make_encoder(field, column.as_ref(), &options)
        .map_err(|e| SqlError::Internal(format!("JSON encoder for {}: {e}", field.name())))?;
    let mut out = StringBuilder::with_capacity(column.len(), column.len() * 32);
    let mut buf = Vec::new();
    for i in 0..column.len() {
        if column.is_null(i) {
            out.append_null();
            continue;
        }
        buf.clear();
        encoder.encode(i, &mut buf);
        out.append_value(String::from_utf8_lossy(&buf));
    }
    Ok(Arc::new(out.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int32Array, MapBuilder, StringArray};
    use datafusion::arrow::datatypes::TimeUnit;
    use datafusion_postgres::arrow_pg::datatypes::into_pg_type;
    use datafusion_postgres::pgwire::api::Type;

    #[test]
    fn wire_types_are_the_standard_ones() {
        let map = DataType::Map(
            Arc::new(Field::new(
                "entries",
                DataType::Struct(
                    vec![
                        Field::new("keys", DataType::Utf8, false),
                        Field::new("values", DataType::Utf8, true),
                    ]
                    .into(),
                ),
                false,
            )),
            false,
        );
        for (from, to) in [
            (
                DataType::Timestamp(TimeUnit::Nanosecond, None),
                DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            ),
            (DataType::Int32, DataType::Int64),
            (DataType::UInt64, DataType::Int64),
            (DataType::Float32, DataType::Float64),
            (DataType::Utf8View, DataType::Utf8),
            (map, DataType::Utf8),
            (
                DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true))),
                DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true))),
            ),
        ] {
            assert_eq!(wire_data_type(&from), to, "{from}");
        }
        let pg = |t: DataType| into_pg_type(&wire_data_type(&t)).unwrap();
        assert_eq!(pg(DataType::Int32), Type::INT8);
        assert_eq!(pg(DataType::Float32), Type::FLOAT8);
        assert_eq!(
            pg(DataType::Timestamp(
                TimeUnit::Microsecond,
                Some("UTC".into())
            )),
            Type::TIMESTAMPTZ
        );
        assert_eq!(pg(DataType::Utf8View), Type::TEXT);
        assert_eq!(pg(DataType::Boolean), Type::BOOL);
    }

    #[test]
    fn maps_become_json_text_and_ints_widen() {
        let mut labels = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
        labels.keys().append_value("instance");
        labels.values().append_value("a:1");
        labels.append(true).unwrap();
        labels.append(false).unwrap();
        let labels = Arc::new(labels.finish()) as ArrayRef;
        let schema = Arc::new(Schema::new(vec![
            Field::new("labels", labels.data_type().clone(), true),
            Field::new("n", DataType::Int32, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![labels, Arc::new(Int32Array::from(vec![Some(7), None]))],
        )
        .unwrap();
        let wire = wire_schema(&schema);
        let out = wire_batch(&batch, &wire).unwrap();
        let text = out
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(text.value(0), r#"{"instance":"a:1"}"#);
        assert!(text.is_null(1));
        assert_eq!(out.column(1).data_type(), &DataType::Int64);
    }
}
