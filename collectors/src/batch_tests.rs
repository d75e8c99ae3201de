//! Decoder tests: every format, chunk boundaries, schema errors, truncated,
//! garbage and oversized input.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampMicrosecondType};
use arrow_array::{
    Array, BooleanArray, Float64Array, Int64Array, MapArray, RecordBatch, StringArray,
    TimestampMillisecondArray,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};

use super::*;
use crate::test_support::column;

const NOW: i64 = 1_764_230_400_000_000; // 2025-11-27T08:00:00Z

fn cfg(known: &[(&str, FeatureKind)]) -> UploadConfig {
    let mut c = UploadConfig::new(
        "fraud",
        "3",
        "up-1",
        NOW,
        known.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
    );
    c.batch_rows = 4;
    c
}

fn declared() -> UploadConfig {
    cfg(&[
        ("amount", FeatureKind::Numeric),
        ("country", FeatureKind::Categorical),
    ])
}

/// Decode `body` pushed in chunks of `chunk` bytes.
fn decode(
    format: BatchFormat,
    cfg: UploadConfig,
    body: &[u8],
    chunk: usize,
) -> Result<Vec<RecordBatch>> {
    let mut d = UploadDecoder::new(format, cfg)?;
    let mut out = Vec::new();
    for c in body.chunks(chunk.max(1)) {
        out.extend(d.push(c)?);
    }
    out.extend(d.finish()?);
    Ok(out)
}

fn concat(batches: &[RecordBatch]) -> RecordBatch {
    arrow_select::concat::concat_batches(&batches[0].schema(), batches).unwrap()
}

fn num(b: &RecordBatch, row: usize, key: &str) -> Option<f64> {
    let m: &MapArray = column(b, "features_num").as_map();
    let e = m.value(row);
    let keys = e.column(0).as_string::<i32>();
    let vals = e.column(1).as_primitive::<Float64Type>();
    (0..keys.len())
        .find(|&i| keys.value(i) == key)
        .map(|i| vals.value(i))
}

fn text(b: &RecordBatch, row: usize, key: &str) -> Option<String> {
    let m: &MapArray = column(b, "features_str").as_map();
    let e = m.value(row);
    let keys = e.column(0).as_string::<i32>();
    let vals = e.column(1).as_string::<i32>();
    (0..keys.len())
        .find(|&i| keys.value(i) == key)
        .map(|i| vals.value(i).to_string())
}

fn col_str(b: &RecordBatch, name: &str, row: usize) -> Option<String> {
    let a = column(b, name).as_string::<i32>();
    a.is_valid(row).then(|| a.value(row).to_string())
}

fn ts(b: &RecordBatch, row: usize) -> i64 {
    column(b, "ts")
        .as_primitive::<TimestampMicrosecondType>()
        .value(row)
}

fn upload_err(r: Result<Vec<RecordBatch>>) -> (u64, String, String) {
    match r {
        Err(Error::Upload {
            row,
            column,
            reason,
        }) => (row, column, reason),
        other => panic!("expected an upload error, got {other:?}"),
    }
}

const NDJSON: &str = r#"{"ts": "2025-11-27T08:00:01Z", "inference_id": "a", "amount": 12.5, "country": "de", "prediction": 0.9, "label": 1}
{"ts": 1764230402, "amount": 3, "country": "fr", "prediction": "fraud"}

{"amount": null, "country": "us"}
{"amount": "7.25", "label": true}
{"amount": 1}
"#;

#[test]
fn ndjson_rows_map_to_inferences_at_any_chunk_size() {
    for chunk in [1, 3, 17, 1 << 20] {
        let batches = decode(BatchFormat::Ndjson, declared(), NDJSON.as_bytes(), chunk).unwrap();
        assert_eq!(
            batches.iter().map(|b| b.num_rows()).collect::<Vec<_>>(),
            [4, 1]
        );
        let b = concat(&batches);
        assert_eq!(b.schema(), crate::inferences_schema());
        assert_eq!(ts(&b, 0), NOW + 1_000_000);
        assert_eq!(ts(&b, 1), NOW + 2_000_000);
        assert_eq!(ts(&b, 2), NOW, "missing ts is the upload's now");
        assert_eq!(num(&b, 0, "amount"), Some(12.5));
        assert_eq!(num(&b, 1, "amount"), Some(3.0));
        assert_eq!(num(&b, 2, "amount"), None, "null is left out");
        assert_eq!(num(&b, 3, "amount"), Some(7.25), "numeric text parses");
        assert_eq!(text(&b, 0, "country").as_deref(), Some("de"));
        assert_eq!(col_str(&b, "inference_id", 0).as_deref(), Some("a"));
        assert_eq!(col_str(&b, "prediction", 0).as_deref(), Some("0.9"));
        assert_eq!(col_str(&b, "prediction", 1).as_deref(), Some("fraud"));
        let pv = column(&b, "prediction_value").as_primitive::<Float64Type>();
        assert_eq!(pv.value(0), 0.9);
        assert!(pv.is_null(1));
        assert_eq!(col_str(&b, "label", 0).as_deref(), Some("1"));
        assert_eq!(col_str(&b, "label", 3).as_deref(), Some("true"));
        assert_eq!(col_str(&b, "model", 4).as_deref(), Some("fraud"));
        assert_eq!(col_str(&b, "version", 4).as_deref(), Some("3"));
        assert_eq!(col_str(&b, "source", 4).as_deref(), Some(SOURCE_UPLOAD));
        let attrs: &MapArray = column(&b, "attributes").as_map();
        let e = attrs.value(2);
        assert_eq!(e.column(0).as_string::<i32>().value(0), UPLOAD_ID_ATTRIBUTE);
        assert_eq!(e.column(1).as_string::<i32>().value(0), "up-1");
    }
}

/// Each body, pushed in chunks of `chunk` bytes, is refused as an upload
/// error at (`row`, `column`) with `reason` in its message (a `None` row is
/// not checked, nor is an empty reason).
fn assert_refused(format: BatchFormat, chunk: usize, cases: &[(&str, Option<u64>, &str, &str)]) {
    for &(body, row, column, reason) in cases {
        let (at, col, why) = upload_err(decode(format, declared(), body.as_bytes(), chunk));
        assert_eq!((row.unwrap_or(at), col.as_str()), (at, column), "{body:?}");
        assert!(why.contains(reason), "{body:?}: {why}");
    }
}

#[test]
fn ndjson_schema_errors_name_column_and_row() {
    assert_refused(
        BatchFormat::Ndjson,
        5,
        &[
            (
                "{\"amount\": 1}\n{\"amount\": 2, \"colour\": \"red\"}\n",
                Some(2),
                "colour",
                "unknown column",
            ),
            (
                "{\"amount\": 1}\n{\"amount\": 1}\n{\"amount\": \"lots\"}\n",
                Some(3),
                "amount",
                "numeric",
            ),
            ("{\"country\": 49}\n", Some(1), "country", ""),
            ("{\"ts\": \"yesterday\"}\n", Some(1), "ts", ""),
        ],
    );
}

/// The feature kinds an upload without declared features infers from
/// `body`.
fn inferred(format: BatchFormat, body: &str) -> KnownFeatures {
    let mut d = UploadDecoder::new(format, cfg(&[])).unwrap();
    d.push(body.as_bytes()).unwrap();
    d.finish().unwrap();
    d.mapper().features().clone()
}

#[test]
fn ndjson_without_declared_features_infers_and_enforces_kinds() {
    let f = inferred(
        BatchFormat::Ndjson,
        "{\"a\": 1, \"b\": \"x\"}\n{\"a\": 2, \"b\": true}\n",
    );
    assert_eq!(f["a"], FeatureKind::Numeric);
    assert_eq!(f["b"], FeatureKind::Categorical);

    let body = "{\"a\": 1}\n{\"a\": \"x\"}\n";
    let (row, column, _) = upload_err(decode(BatchFormat::Ndjson, cfg(&[]), body.as_bytes(), 64));
    assert_eq!((row, column.as_str()), (2, "a"));
}

#[test]
fn ndjson_truncated_garbage_and_oversized_lines_are_refused() {
    let truncated = &NDJSON.as_bytes()[..40];
    let err = decode(BatchFormat::Ndjson, declared(), truncated, 7).unwrap_err();
    assert!(matches!(err, Error::UploadFormat(_)), "{err}");
    assert!(err.to_string().contains("row 1"), "{err}");

    let err = decode(BatchFormat::Ndjson, declared(), b"\x00\xff\xfegarbage\n", 3).unwrap_err();
    assert_eq!(err.class(), crate::ErrorClass::BadRequest);

    let err = decode(BatchFormat::Ndjson, declared(), b"[1, 2]\n", 3).unwrap_err();
    assert!(err.to_string().contains("not a JSON object"), "{err}");

    let mut c = declared();
    c.max_line_bytes = 64;
    let long = format!("{{\"country\": \"{}\"}}\n", "x".repeat(100));
    let err = decode(BatchFormat::Ndjson, c.clone(), long.as_bytes(), 8).unwrap_err();
    assert!(err.to_string().contains("longer than 64 bytes"), "{err}");
    // Also without a newline at all (never-ending line).
    let err = decode(BatchFormat::Ndjson, c, &long.as_bytes()[..90], 8).unwrap_err();
    assert!(err.to_string().contains("longer than 64 bytes"), "{err}");

    let err = decode(BatchFormat::Ndjson, declared(), b"\n\n", 8).unwrap_err();
    assert!(err.to_string().contains("no rows"), "{err}");
}

const CSV: &str = "ts,amount,country,prediction,inference_id\r\n\
2025-11-27T08:00:01Z,12.5,de,0.9,a\r\n\
1764230402,3,\"f,r\",fraud,b\r\n\
,,us,,\r\n\
,7.25,,1,d\r\n\
,1,,,e";

#[test]
fn csv_rows_map_to_inferences_at_any_chunk_size() {
    for chunk in [1, 2, 13, 1 << 20] {
        let batches = decode(BatchFormat::Csv, declared(), CSV.as_bytes(), chunk).unwrap();
        let b = concat(&batches);
        assert_eq!(b.num_rows(), 5, "chunk {chunk}");
        assert_eq!(ts(&b, 0), NOW + 1_000_000);
        assert_eq!(ts(&b, 1), NOW + 2_000_000);
        assert_eq!(ts(&b, 2), NOW);
        assert_eq!(num(&b, 0, "amount"), Some(12.5));
        assert_eq!(num(&b, 2, "amount"), None, "empty is left out");
        assert_eq!(num(&b, 4, "amount"), Some(1.0), "last row without newline");
        assert_eq!(text(&b, 1, "country").as_deref(), Some("f,r"));
        assert_eq!(text(&b, 3, "country"), None);
        assert_eq!(col_str(&b, "prediction", 0).as_deref(), Some("0.9"));
        let pv = column(&b, "prediction_value").as_primitive::<Float64Type>();
        assert_eq!(pv.value(0), 0.9, "numeric CSV text fills the value");
        assert!(pv.is_null(1), "\"fraud\" is not a number");
        assert_eq!(col_str(&b, "inference_id", 4).as_deref(), Some("e"));
    }
}

#[test]
fn csv_schema_errors_name_column_and_row() {
    assert_refused(
        BatchFormat::Csv,
        4,
        &[
            (
                "amount,colour\n1,red\n",
                Some(1),
                "colour",
                "unknown column",
            ),
            // Row 6 is in the second batch (batch_rows = 4).
            ("amount\n1\n2\n3\n4\n5\nabc\n", Some(6), "amount", "\"abc\""),
            ("amount,amount\n1,2\n", None, "amount", "twice"),
        ],
    );
}

#[test]
fn csv_without_declared_features_infers_kinds_from_the_first_batch() {
    let f = inferred(BatchFormat::Csv, "a,b,c\n1,x,\n2.5,y,\n");
    assert_eq!(f["a"], FeatureKind::Numeric);
    assert_eq!(f["b"], FeatureKind::Categorical);
    assert_eq!(f["c"], FeatureKind::Categorical, "no values: categorical");
}

#[test]
fn csv_truncated_garbage_and_headerless_bodies_are_refused() {
    // Cut in the middle of row 2: fewer fields than the header.
    let cut = "amount,country\n1,de\n2";
    let err = decode(BatchFormat::Csv, declared(), cut.as_bytes(), 3).unwrap_err();
    assert!(matches!(err, Error::UploadFormat(_)), "{err}");

    let err = decode(
        BatchFormat::Csv,
        declared(),
        b"\xff\xfe\x00\x01\n\x02\x03\n",
        3,
    )
    .unwrap_err();
    assert_eq!(err.class(), crate::ErrorClass::BadRequest, "{err}");

    let err = decode(BatchFormat::Csv, declared(), b"", 3).unwrap_err();
    assert!(err.to_string().contains("no rows"), "{err}");
    let err = decode(BatchFormat::Csv, declared(), b"amount,country\n", 3).unwrap_err();
    assert!(err.to_string().contains("no rows"), "{err}");

    let mut c = declared();
    c.max_line_bytes = 16;
    let err = decode(
        BatchFormat::Csv,
        c,
        "amount,country,amount2,amount3\n1,2\n".as_bytes(),
        4,
    )
    .unwrap_err();
    assert!(err.to_string().contains("longer than 16 bytes"), "{err}");
}

fn ipc(batches: &[RecordBatch]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = arrow_ipc::writer::StreamWriter::try_new(&mut out, &batches[0].schema()).unwrap();
    for b in batches {
        w.write(b).unwrap();
    }
    w.finish().unwrap();
    drop(w);
    out
}

fn typed_batch() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, Some("+02:00".into())),
            true,
        ),
        Field::new("amount", DataType::Int64, true),
        Field::new("country", DataType::Utf8, true),
        Field::new("prediction", DataType::Boolean, true),
        Field::new("label", DataType::Float64, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(
                TimestampMillisecondArray::from(vec![Some(1_764_230_401_000), None, None])
                    .with_timezone("+02:00"),
            ),
            Arc::new(Int64Array::from(vec![Some(5), None, Some(-2)])),
            Arc::new(StringArray::from(vec![Some("de"), Some("fr"), None])),
            Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])),
            Arc::new(Float64Array::from(vec![Some(1.0), None, Some(0.5)])),
        ],
    )
    .unwrap()
}

#[test]
fn arrow_stream_maps_typed_columns_at_any_chunk_size() {
    let body = ipc(&[typed_batch(), typed_batch()]);
    for chunk in [1, 7, 100, 1 << 20] {
        let batches = decode(BatchFormat::ArrowStream, declared(), &body, chunk).unwrap();
        let b = concat(&batches);
        assert_eq!(b.num_rows(), 6);
        assert_eq!(ts(&b, 0), NOW + 1_000_000, "timezone-aware instant kept");
        assert_eq!(ts(&b, 1), NOW);
        assert_eq!(num(&b, 0, "amount"), Some(5.0));
        assert_eq!(num(&b, 1, "amount"), None);
        assert_eq!(num(&b, 5, "amount"), Some(-2.0));
        assert_eq!(text(&b, 1, "country").as_deref(), Some("fr"));
        assert_eq!(col_str(&b, "prediction", 0).as_deref(), Some("true"));
        assert_eq!(col_str(&b, "label", 2).as_deref(), Some("0.5"));
        let lv = column(&b, "label_value").as_primitive::<Float64Type>();
        assert_eq!(lv.value(2), 0.5);
    }
}

#[test]
fn arrow_stream_big_batches_are_split() {
    let n = 10;
    let schema = Arc::new(Schema::new(vec![Field::new(
        "amount",
        DataType::Float64,
        false,
    )]));
    let b = RecordBatch::try_new(
        schema,
        vec![Arc::new(Float64Array::from_iter_values(
            (0..n).map(f64::from),
        ))],
    )
    .unwrap();
    let batches = decode(BatchFormat::ArrowStream, declared(), &ipc(&[b]), 1 << 20).unwrap();
    assert_eq!(
        batches.iter().map(|b| b.num_rows()).collect::<Vec<_>>(),
        [4, 4, 2]
    );
    assert_eq!(num(&batches[2], 1, "amount"), Some(9.0));
}

#[test]
fn arrow_stream_schema_errors_name_column_and_row() {
    let schema = Arc::new(Schema::new(vec![Field::new(
        "country",
        DataType::Int64,
        true,
    )]));
    let b = RecordBatch::try_new(
        schema,
        vec![Arc::new(Int64Array::from(vec![None, Some(3)]))],
    )
    .unwrap();
    let (row, column, reason) = upload_err(decode(
        BatchFormat::ArrowStream,
        declared(),
        &ipc(&[b]),
        1 << 20,
    ));
    assert_eq!((row, column.as_str()), (2, "country"), "{reason}");

    let schema = Arc::new(Schema::new(vec![Field::new(
        "amount",
        DataType::List(Arc::new(Field::new_list_field(DataType::Int64, true))),
        true,
    )]));
    let b = RecordBatch::new_empty(schema);
    let (_, column, reason) = upload_err(decode(
        BatchFormat::ArrowStream,
        cfg(&[]),
        &ipc(&[b]),
        1 << 20,
    ));
    assert_eq!(column, "amount");
    assert!(reason.contains("not a feature type"), "{reason}");
}

#[test]
fn arrow_stream_truncated_and_garbage_are_refused() {
    let body = ipc(&[typed_batch()]);
    for cut in [1, 8, body.len() / 2, body.len() - 9] {
        let err = decode(BatchFormat::ArrowStream, declared(), &body[..cut], 64).unwrap_err();
        assert!(matches!(err, Error::UploadFormat(_)), "cut {cut}: {err}");
    }
    // Cut exactly before the end-of-stream marker: every message is whole,
    // but the stream was not finished, so rows may be missing.
    for chunk in [1, 3, 64, body.len()] {
        let err = decode(
            BatchFormat::ArrowStream,
            declared(),
            &body[..body.len() - 8],
            chunk,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("end-of-stream marker"),
            "chunk {chunk}: {err}"
        );
    }
    assert!(decode(BatchFormat::ArrowStream, declared(), &body, 3).is_ok());
    let err = decode(
        BatchFormat::ArrowStream,
        declared(),
        b"PAR1 this is not arrow at all",
        4,
    )
    .unwrap_err();
    assert_eq!(err.class(), crate::ErrorClass::BadRequest, "{err}");
    // A stream with a schema but no rows.
    let empty = ipc(&[RecordBatch::new_empty(typed_batch().schema())]);
    let err = decode(BatchFormat::ArrowStream, declared(), &empty, 64).unwrap_err();
    assert!(err.to_string().contains("no rows"), "{err}");
}

#[test]
fn formats_from_content_type_and_extension() {
    for f in BatchFormat::ALL {
        assert_eq!(
            BatchFormat::from_content_type(Some(f.content_type())).unwrap(),
            f
        );
        assert_eq!(BatchFormat::from_name(f.name()), Some(f));
    }
    assert_eq!(
        BatchFormat::from_content_type(Some("text/csv; charset=utf-8")).unwrap(),
        BatchFormat::Csv
    );
    let err = BatchFormat::from_content_type(Some("application/json")).unwrap_err();
    assert_eq!(err.http_status(), 415);
    assert_eq!(
        BatchFormat::from_extension("JSONL"),
        Some(BatchFormat::Ndjson)
    );
    assert_eq!(
        BatchFormat::from_extension("arrows"),
        Some(BatchFormat::ArrowStream)
    );
    assert_eq!(BatchFormat::from_extension("txt"), None);
}
