//! Batch uploads of inferences and reference data: NDJSON, CSV, Parquet and
//! Arrow IPC stream bodies → rows of the `inferences` schema.
//!
//! No I/O here. The daemon streams the body in byte chunks into an
//! [`UploadDecoder`] (NDJSON, CSV, Arrow IPC stream: incremental, bounded
//! memory — one partial line or one IPC message at a time) and gets back
//! `inferences`-schema record batches of at most [`UploadConfig::batch_rows`]
//! rows. Parquet needs random access, so the daemon reads the file itself
//! and hands each decoded batch to [`RowMapper::map`], the same mapping the
//! other formats use.
//!
//! ## Row shape
//! - `ts` (optional): RFC 3339 text (a time without offset is UTC), epoch
//!   **seconds** as a number (fractions allowed), or an Arrow timestamp of
//!   any unit; missing or null → the upload's `now`.
//! - `inference_id` (optional): text (numbers are rendered as text).
//! - `prediction`, `label` (optional): a number fills `prediction_value` /
//!   `label_value` and its text `prediction` / `label`; text or a boolean
//!   fills only the text column.
//! - every other column is a **feature**: numbers → `features_num`, text
//!   and booleans → `features_str`. Null or empty values are left out of
//!   the row's map.
//!
//! ## Known features
//! With [`UploadConfig::known`] non-empty, every feature column must be
//! declared there, numeric features take numbers (or text that parses as
//! a number, as CSV carries them) and categorical ones text or booleans.
//! With nothing declared, kinds are inferred: from the Arrow type, the
//! first non-null JSON value of a key, or, for CSV, the first batch of rows
//! (numeric when every non-empty value there parses as a number); later
//! rows must agree. [`RowMapper::features`] returns what was seen.
//!
//! Errors name the row (1 = the first data row, the CSV header is not a
//! row) and the column, and are [`Error::Upload`] (400) or
//! [`Error::UploadFormat`] (400, structure: bad JSON, CSV, IPC framing).

use std::sync::Arc;

use arrow_array::builder::{Float64Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampMicrosecondType};
use arrow_array::{Array, ArrayRef, MapArray, RecordBatch, StringArray, new_null_array};
use arrow_buffer::{Buffer, OffsetBuffer};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

use crate::schema::{InferenceColumns, inferences_schema, ts_builder};
use crate::{Error, Result};

/// `source` value of uploaded rows.
pub const SOURCE_UPLOAD: &str = "upload";
/// Attribute key holding the upload id on every uploaded row
/// (`attributes['upload_id']` in SQL).
pub const UPLOAD_ID_ATTRIBUTE: &str = "upload_id";
/// Columns with a fixed meaning; every other column is a feature.
pub const RESERVED_COLUMNS: &[&str] = &["ts", "inference_id", "prediction", "label"];
/// Default rows per output batch.
pub const DEFAULT_BATCH_ROWS: usize = 8192;
/// Default longest NDJSON line / CSV header.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1 << 20;

/// The body formats accepted, by `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BatchFormat {
    /// `application/x-ndjson`: one JSON object per line.
    Ndjson,
    /// `text/csv`: a header row, then one row per inference.
    Csv,
    /// `application/vnd.apache.parquet`.
    Parquet,
    /// `application/vnd.apache.arrow.stream`: Arrow IPC stream format.
    ArrowStream,
}

impl BatchFormat {
    /// Every format, in documentation order.
    pub const ALL: [BatchFormat; 4] = [
        BatchFormat::Ndjson,
        BatchFormat::Csv,
        BatchFormat::Parquet,
        BatchFormat::ArrowStream,
    ];

    /// The media type to send.
    pub fn content_type(self) -> &'static str {
        match self {
            BatchFormat::Ndjson => "application/x-ndjson",
            BatchFormat::Csv => "text/csv",
            BatchFormat::Parquet => "application/vnd.apache.parquet",
            BatchFormat::ArrowStream => "application/vnd.apache.arrow.stream",
        }
    }

    /// Short name (`ndjson`, `csv`, `parquet`, `arrow`), as the CLI's
    /// `--format` takes it.
    pub fn name(self) -> &'static str {
        match self {
            BatchFormat::Ndjson => "ndjson",
            BatchFormat::Csv => "csv",
            BatchFormat::Parquet => "parquet",
            BatchFormat::ArrowStream => "arrow",
        }
    }

    /// From a `Content-Type` header (parameters ignored); 415 otherwise.
    pub fn from_content_type(ct: Option<&str>) -> Result<Self> {
        let media = ct
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "application/x-ndjson" | "application/jsonl" | "application/jsonlines" => {
                Ok(BatchFormat::Ndjson)
            }
            "text/csv" => Ok(BatchFormat::Csv),
            "application/vnd.apache.parquet" | "application/x-parquet" => Ok(BatchFormat::Parquet),
            "application/vnd.apache.arrow.stream" => Ok(BatchFormat::ArrowStream),
            _ => Err(Error::UnsupportedMediaType(format!(
                "content type {:?} is not an upload format; send one of {}",
                ct.unwrap_or(""),
                Self::ALL.map(Self::content_type).join(", ")
            ))),
        }
    }

    /// From a file extension (`ndjson`, `jsonl`, `csv`, `parquet`, `arrow`,
    /// `arrows`), case-insensitive.
    pub fn from_extension(ext: &str) -> Option<Self> {
        match ext.to_ascii_lowercase().as_str() {
            "ndjson" | "jsonl" => Some(BatchFormat::Ndjson),
            "csv" => Some(BatchFormat::Csv),
            "parquet" => Some(BatchFormat::Parquet),
            "arrow" | "arrows" => Some(BatchFormat::ArrowStream),
            _ => None,
        }
    }

    /// From the short name (see [`Self::name`]).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }
}

pub use modelwatch_types::FeatureKind;

/// Feature name → kind (the registry's declaration, the same map).
pub type KnownFeatures = modelwatch_types::Features;

/// What every row of one upload shares.
#[derive(Debug, Clone)]
pub struct UploadConfig {
    /// `model` column.
    pub model: String,
    /// `version` column (the registry's version number as text).
    pub version: String,
    /// Put into `attributes['upload_id']` of every row.
    pub upload_id: String,
    /// `ts` of rows without one, µs since the epoch.
    pub now_us: i64,
    /// Declared features; empty = infer.
    pub known: KnownFeatures,
    /// Most rows per output batch.
    pub batch_rows: usize,
    /// Longest NDJSON line / CSV header line accepted.
    pub max_line_bytes: usize,
}

impl UploadConfig {
    /// Defaults for the sizes.
    pub fn new(
        model: impl Into<String>,
        version: impl Into<String>,
        upload_id: impl Into<String>,
        now_us: i64,
        known: KnownFeatures,
    ) -> Self {
        Self {
            model: model.into(),
            version: version.into(),
            upload_id: upload_id.into(),
            now_us,
            known,
            batch_rows: DEFAULT_BATCH_ROWS,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
        }
    }
}

fn row_err(row: u64, column: &str, reason: impl Into<String>) -> Error {
    Error::Upload {
        row,
        column: column.to_string(),
        reason: reason.into(),
    }
}

fn kind_mismatch(row: u64, column: &str, expected: FeatureKind, got: &str) -> Error {
    let hint = match expected {
        FeatureKind::Numeric => "send a number",
        FeatureKind::Categorical => "send text (quote it)",
    };
    row_err(
        row,
        column,
        format!(
            "feature is {} but the value is {got}; {hint}, or change the version's declared features",
            expected.as_str()
        ),
    )
}

/// Rows of the `inferences` schema under construction.
struct Rows {
    ts: TimestampMicrosecondBuilder,
    inference: InferenceColumns,
    len: usize,
}

impl Rows {
    fn new(cap: usize) -> Self {
        Self {
            ts: ts_builder(cap),
            inference: InferenceColumns::with_capacity(cap),
            len: 0,
        }
    }

    fn end_row(&mut self) -> Result<()> {
        self.inference.features_num.append(true)?;
        self.inference.features_str.append(true)?;
        self.len += 1;
        Ok(())
    }

    fn finish(&mut self, cfg: &UploadConfig) -> Result<RecordBatch> {
        let n = std::mem::replace(&mut self.len, 0);
        let repeat = |s: &str| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(std::iter::repeat_n(s, n)))
        };
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(self.ts.finish()),
            repeat(&cfg.model),
            repeat(&cfg.version),
        ];
        cols.extend(self.inference.finish());
        cols.extend([
            upload_attributes(&cfg.upload_id, n)?,
            new_null_array(&DataType::Utf8, n),
            new_null_array(&DataType::Utf8, n),
            repeat(SOURCE_UPLOAD),
        ]);
        Ok(RecordBatch::try_new(inferences_schema(), cols)?)
    }
}

/// `{upload_id: id}` on each of `n` rows, built directly (one key per row).
fn upload_attributes(upload_id: &str, n: usize) -> Result<ArrayRef> {
    let DataType::Map(entries_field, sorted) = crate::schema::map_type(DataType::Utf8) else {
        unreachable!("map_type returns a map");
    };
    let DataType::Struct(fields) = entries_field.data_type().clone() else {
        unreachable!("map entries are a struct");
    };
    let keys: ArrayRef = Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
        UPLOAD_ID_ATTRIBUTE,
        n,
    )));
    let values: ArrayRef = Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
        upload_id, n,
    )));
    let entries = arrow_array::StructArray::try_new(fields, vec![keys, values], None)?;
    let offsets = OffsetBuffer::new(Buffer::from_iter(0..=n as i32).into());
    Ok(Arc::new(MapArray::try_new(
        entries_field,
        offsets,
        entries,
        None,
        sorted,
    )?))
}

fn format_number(v: f64) -> String {
    v.to_string()
}

fn parse_ts_text(row: u64, s: &str) -> Result<i64> {
    if let Ok(secs) = s.trim().parse::<f64>() {
        return epoch_seconds(row, secs);
    }
    arrow_cast::parse::string_to_timestamp_nanos(s.trim())
        .map(|ns| ns.div_euclid(1000))
        .map_err(|_| {
            row_err(
                row,
                "ts",
                format!("{s:?} is not an RFC 3339 time (2026-11-27T08:00:00Z) nor epoch seconds"),
            )
        })
}

fn epoch_seconds(row: u64, secs: f64) -> Result<i64> {
    let us = secs * 1e6;
    if !us.is_finite() || us.abs() > 9.2e18 {
        return Err(row_err(
            row,
            "ts",
            format!("{secs} is not a usable epoch time in seconds"),
        ));
    }
    Ok(us.floor() as i64)
}

/// A feature column of one input batch, already cast to its storage type.
enum FeatureCol {
    Num(ArrayRef),
    Str(ArrayRef),
}

/// An input schema and its feature columns (index, name, kind) by name.
type Plan = (SchemaRef, Vec<(usize, String, FeatureKind)>);

/// Maps record batches of any (supported) input schema to `inferences`
/// rows, checking them against the known features.
pub struct RowMapper {
    cfg: UploadConfig,
    /// Kinds seen (declared ones, or inferred ones when none are declared).
    seen: KnownFeatures,
    /// Rows mapped so far (the next row is `rows + 1`).
    rows: u64,
    /// Cached per-schema plan: (input schema, sorted feature columns).
    plan: Option<Plan>,
    /// Input columns are untyped text (CSV).
    text_input: bool,
}

impl RowMapper {
    /// A mapper for one upload.
    pub fn new(cfg: UploadConfig) -> Self {
        Self {
            cfg,
            seen: KnownFeatures::new(),
            rows: 0,
            plan: None,
            text_input: false,
        }
    }

    /// The upload's settings.
    pub fn config(&self) -> &UploadConfig {
        &self.cfg
    }

    /// Rows mapped so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The feature columns seen so far with their kinds (declared or
    /// inferred).
    pub fn features(&self) -> &KnownFeatures {
        &self.seen
    }

    /// The kind of `name` for `row`: declared, previously inferred, or
    /// inferred now from `natural` (the value's own kind).
    fn kind_for(
        &mut self,
        row: u64,
        name: &str,
        natural: Option<FeatureKind>,
    ) -> Result<FeatureKind> {
        if let Some(k) = self.seen.get(name) {
            return Ok(*k);
        }
        if !self.cfg.known.is_empty() {
            let Some(k) = self.cfg.known.get(name) else {
                return Err(row_err(
                    row,
                    name,
                    format!(
                        "unknown column: it is not one of the version's declared features ({}) nor a reserved column ({}); drop it or declare it",
                        truncate_list(self.cfg.known.keys().map(String::as_str)),
                        RESERVED_COLUMNS.join(", ")
                    ),
                ));
            };
            self.seen.insert(name.to_string(), *k);
            return Ok(*k);
        }
        let Some(k) = natural else {
            return Err(row_err(row, name, "cannot tell the feature's kind"));
        };
        if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
            return Err(row_err(
                row,
                name,
                "a feature name must be 1-256 bytes without control characters",
            ));
        }
        self.seen.insert(name.to_string(), k);
        Ok(k)
    }

    /// Map one Arrow batch (from CSV, Arrow IPC or Parquet). Large batches
    /// come back in pieces of at most `batch_rows` rows.
    pub fn map(&mut self, batch: &RecordBatch) -> Result<Vec<RecordBatch>> {
        self.map_inner(batch, false)
    }

    /// `text_kinds`: the columns are all text (CSV) and a column's kind is
    /// inferred from its values when nothing is declared.
    fn map_inner(&mut self, batch: &RecordBatch, text_kinds: bool) -> Result<Vec<RecordBatch>> {
        let first_row = self.rows + 1;
        self.text_input = text_kinds;
        let schema = batch.schema();
        let plan_ok = self
            .plan
            .as_ref()
            .is_some_and(|(s, _)| Arc::ptr_eq(s, &schema) || s == &schema);
        if !plan_ok {
            let mut feats = Vec::new();
            let mut names = std::collections::HashSet::new();
            for (i, f) in schema.fields().iter().enumerate() {
                let name = f.name().as_str();
                if !names.insert(name) {
                    return Err(row_err(first_row, name, "the column appears twice"));
                }
                if RESERVED_COLUMNS.contains(&name) {
                    continue;
                }
                let natural = if text_kinds {
                    Some(infer_text_kind(batch.column(i)))
                } else {
                    natural_kind(f.data_type())
                };
                if natural.is_none() {
                    return Err(row_err(
                        first_row,
                        name,
                        format!(
                            "type {} is not a feature type; use numbers, text or booleans",
                            f.data_type()
                        ),
                    ));
                }
                let kind = self.kind_for(first_row, name, natural)?;
                feats.push((i, name.to_string(), kind));
            }
            feats.sort_by(|a, b| a.1.cmp(&b.1));
            self.plan = Some((schema.clone(), feats));
        }
        let mut out = Vec::new();
        let step = self.cfg.batch_rows.max(1);
        let mut offset = 0;
        while offset < batch.num_rows() {
            let len = step.min(batch.num_rows() - offset);
            out.push(self.map_slice(&batch.slice(offset, len))?);
            offset += len;
        }
        Ok(out)
    }

    fn map_slice(&mut self, batch: &RecordBatch) -> Result<RecordBatch> {
        let base = self.rows + 1;
        let n = batch.num_rows();
        let feats = self.plan.as_ref().map(|p| p.1.clone()).unwrap_or_default();
        let schema = batch.schema();
        let col = |name: &str| schema.index_of(name).ok().map(|i| batch.column(i).clone());
        let mut rows = Rows::new(n);
        // ts
        match col("ts") {
            None => {
                for _ in 0..n {
                    rows.ts.append_value(self.cfg.now_us);
                }
            }
            Some(a) => {
                let ts = ts_column(&a, base)?;
                for i in 0..n {
                    rows.ts.append_value(if ts.is_null(i) {
                        self.cfg.now_us
                    } else {
                        ts.value(i)
                    });
                }
            }
        }
        // inference_id
        match col("inference_id") {
            None => rows.inference.inference_id.append_nulls(n),
            Some(a) => {
                let s = to_text(&a, base, "inference_id")?;
                let s = s.as_string::<i32>();
                for i in 0..n {
                    rows.inference
                        .inference_id
                        .append_option(s.is_valid(i).then(|| s.value(i)));
                }
            }
        }
        let inf = &mut rows.inference;
        for (name, text, value) in [
            ("prediction", &mut inf.prediction, &mut inf.prediction_value),
            ("label", &mut inf.label, &mut inf.label_value),
        ] {
            target_columns(col(name), base, name, text, value, n, self.text_input)?;
        }
        // Features, cast once per column.
        let mut cols = Vec::with_capacity(feats.len());
        for (idx, name, kind) in &feats {
            let a = batch.column(*idx);
            cols.push(match kind {
                FeatureKind::Numeric => FeatureCol::Num(to_f64(a, base, name)?),
                FeatureKind::Categorical => {
                    if is_numeric_type(a.data_type()) {
                        let first = (0..a.len()).find(|&i| a.is_valid(i)).unwrap_or(0);
                        return Err(kind_mismatch(
                            base + first as u64,
                            name,
                            FeatureKind::Categorical,
                            "a number",
                        ));
                    }
                    FeatureCol::Str(to_text(a, base, name)?)
                }
            });
        }
        for i in 0..n {
            for ((_, name, _), c) in feats.iter().zip(&cols) {
                match c {
                    FeatureCol::Num(a) => {
                        if a.is_valid(i) {
                            rows.inference.features_num.keys().append_value(name);
                            rows.inference
                                .features_num
                                .values()
                                .append_value(a.as_primitive::<Float64Type>().value(i));
                        }
                    }
                    FeatureCol::Str(a) => {
                        if a.is_valid(i) {
                            let v = a.as_string::<i32>().value(i);
                            rows.inference.features_str.keys().append_value(name);
                            rows.inference.features_str.values().append_value(v);
                        }
                    }
                }
            }
            rows.end_row()?;
        }
        self.rows += n as u64;
        rows.finish(&self.cfg)
    }
}

fn truncate_list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.collect();
    if names.len() > 20 {
        format!("{}, … ({} in all)", names[..20].join(", "), names.len())
    } else {
        names.join(", ")
    }
}

fn is_numeric_type(t: &DataType) -> bool {
    t.is_numeric()
}

fn natural_kind(t: &DataType) -> Option<FeatureKind> {
    match t {
        t if t.is_numeric() => Some(FeatureKind::Numeric),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Boolean => {
            Some(FeatureKind::Categorical)
        }
        DataType::Dictionary(_, v) => natural_kind(v),
        // A column with no values at all (e.g. an all-null JSON key).
        DataType::Null => Some(FeatureKind::Categorical),
        _ => None,
    }
}

/// CSV without declared features: numeric when every non-empty value of
/// the (first) batch parses as a number and there is at least one.
fn infer_text_kind(a: &ArrayRef) -> FeatureKind {
    let s = a.as_string::<i32>();
    let mut any = false;
    for i in 0..s.len() {
        if s.is_valid(i) {
            let v = s.value(i);
            if v.is_empty() {
                continue;
            }
            if v.trim().parse::<f64>().is_err() {
                return FeatureKind::Categorical;
            }
            any = true;
        }
    }
    if any {
        FeatureKind::Numeric
    } else {
        FeatureKind::Categorical
    }
}

/// A cast of input data: a failure is the input's fault (400).
fn cast(a: &ArrayRef, to: &DataType) -> Result<ArrayRef> {
    arrow_cast::cast(a, to).map_err(|e| {
        Error::UploadFormat(format!(
            "cannot convert a {} column to {to}: {e}",
            a.data_type()
        ))
    })
}

/// Text values of a column (empty strings → null).
fn to_text(a: &ArrayRef, base: u64, column: &str) -> Result<ArrayRef> {
    let t = a.data_type();
    let text = match t {
        DataType::Utf8 => a.clone(),
        DataType::LargeUtf8 | DataType::Utf8View | DataType::Boolean | DataType::Null => {
            cast(a, &DataType::Utf8)?
        }
        DataType::Dictionary(_, v) if natural_kind(v).is_some() => cast(a, &DataType::Utf8)?,
        t if t.is_numeric() => cast(a, &DataType::Utf8)?,
        other => {
            return Err(row_err(
                base,
                column,
                format!("type {other} cannot be read as text"),
            ));
        }
    };
    let s = text.as_string::<i32>();
    if s.iter().any(|v| v == Some("")) {
        let cleaned: StringArray = s.iter().map(|v| v.filter(|x| !x.is_empty())).collect();
        return Ok(Arc::new(cleaned));
    }
    Ok(text)
}

/// Numeric values of a column; text must parse as a number (first failure
/// named by row).
fn to_f64(a: &ArrayRef, base: u64, column: &str) -> Result<ArrayRef> {
    let t = a.data_type();
    if t.is_numeric() {
        return cast(a, &DataType::Float64);
    }
    match t {
        DataType::Null => cast(a, &DataType::Float64),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(..) => {
            let text = to_text(a, base, column)?;
            let s = text.as_string::<i32>();
            let mut b = Float64Builder::with_capacity(s.len());
            for i in 0..s.len() {
                if s.is_null(i) {
                    b.append_null();
                    continue;
                }
                let v = s.value(i);
                match v.trim().parse::<f64>() {
                    Ok(x) => b.append_value(x),
                    Err(_) => {
                        return Err(kind_mismatch(
                            base + i as u64,
                            column,
                            FeatureKind::Numeric,
                            &format!("{:?}", truncate(v)),
                        ));
                    }
                }
            }
            Ok(Arc::new(b.finish()))
        }
        DataType::Boolean => {
            let first = (0..a.len()).find(|&i| a.is_valid(i)).unwrap_or(0);
            Err(kind_mismatch(
                base + first as u64,
                column,
                FeatureKind::Numeric,
                "a boolean",
            ))
        }
        other => Err(row_err(
            base,
            column,
            format!("type {other} is not numeric"),
        )),
    }
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// `ts` column as µs since the epoch (nulls kept).
fn ts_column(
    a: &ArrayRef,
    base: u64,
) -> Result<arrow_array::PrimitiveArray<TimestampMicrosecondType>> {
    let us_type = DataType::Timestamp(TimeUnit::Microsecond, None);
    let out = match a.data_type() {
        DataType::Timestamp(_, _) => {
            let c = cast(a, &us_type)?;
            c.as_primitive::<TimestampMicrosecondType>().clone()
        }
        t if t.is_numeric() => {
            let f = cast(a, &DataType::Float64)?;
            let f = f.as_primitive::<Float64Type>();
            let mut b = TimestampMicrosecondBuilder::with_capacity(f.len());
            for i in 0..f.len() {
                if f.is_null(i) {
                    b.append_null();
                } else {
                    b.append_value(epoch_seconds(base + i as u64, f.value(i))?);
                }
            }
            b.finish()
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(..) => {
            let text = to_text(a, base, "ts")?;
            let s = text.as_string::<i32>();
            let mut b = TimestampMicrosecondBuilder::with_capacity(s.len());
            for i in 0..s.len() {
                if s.is_null(i) {
                    b.append_null();
                } else {
                    b.append_value(parse_ts_text(base + i as u64, s.value(i))?);
                }
            }
            b.finish()
        }
        DataType::Null => {
            let mut b = TimestampMicrosecondBuilder::with_capacity(a.len());
            b.append_nulls(a.len());
            b.finish()
        }
        other => {
            return Err(row_err(
                base,
                "ts",
                format!(
                    "type {other} is not a time; use RFC 3339 text, epoch seconds or a timestamp"
                ),
            ));
        }
    };
    Ok(out)
}

/// `prediction`/`label`: the text and, for numbers, the value. With
/// `text_input` (CSV, where nothing is typed) text that parses as a number
/// fills the value too.
fn target_columns(
    a: Option<ArrayRef>,
    base: u64,
    column: &str,
    text: &mut StringBuilder,
    value: &mut Float64Builder,
    n: usize,
    text_input: bool,
) -> Result<()> {
    let Some(a) = a else {
        text.append_nulls(n);
        value.append_nulls(n);
        return Ok(());
    };
    if a.data_type().is_numeric() {
        let f = cast(&a, &DataType::Float64)?;
        let f = f.as_primitive::<Float64Type>();
        for i in 0..n {
            if f.is_null(i) {
                text.append_null();
                value.append_null();
            } else {
                text.append_value(format_number(f.value(i)));
                value.append_value(f.value(i));
            }
        }
    } else {
        let s = to_text(&a, base, column)?;
        let s = s.as_string::<i32>();
        for i in 0..n {
            let v = s.is_valid(i).then(|| s.value(i));
            text.append_option(v);
            value.append_option(
                v.filter(|_| text_input)
                    .and_then(|v| v.trim().parse::<f64>().ok()),
            );
        }
    }
    Ok(())
}

/// An incremental decoder for one streamed body.
pub enum UploadDecoder {
    /// NDJSON.
    Ndjson(Box<NdjsonDecoder>),
    /// CSV.
    Csv(Box<CsvDecoder>),
    /// Arrow IPC stream.
    Arrow(Box<ArrowDecoder>),
}

impl UploadDecoder {
    /// A decoder for a streamed format; Parquet is not one (the daemon
    /// spills it to a file and calls [`RowMapper::map`]).
    pub fn new(format: BatchFormat, cfg: UploadConfig) -> Result<Self> {
        Ok(match format {
            BatchFormat::Ndjson => UploadDecoder::Ndjson(Box::new(NdjsonDecoder::new(cfg))),
            BatchFormat::Csv => UploadDecoder::Csv(Box::new(CsvDecoder::new(cfg))),
            BatchFormat::ArrowStream => UploadDecoder::Arrow(Box::new(ArrowDecoder::new(cfg))),
            BatchFormat::Parquet => {
                return Err(Error::UploadFormat(
                    "Parquet is not decoded incrementally; read the file and use RowMapper".into(),
                ));
            }
        })
    }

    /// Feed the next chunk of the body; returns the batches completed.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<RecordBatch>> {
        match self {
            UploadDecoder::Ndjson(d) => d.push(chunk),
            UploadDecoder::Csv(d) => d.push(chunk),
            UploadDecoder::Arrow(d) => d.push(chunk),
        }
    }

    /// The body ended: the last batches, or an error if it ended mid-row /
    /// mid-message or held no rows.
    pub fn finish(&mut self) -> Result<Vec<RecordBatch>> {
        let out = match self {
            UploadDecoder::Ndjson(d) => d.finish()?,
            UploadDecoder::Csv(d) => d.finish()?,
            UploadDecoder::Arrow(d) => d.finish()?,
        };
        if self.mapper().rows() == 0 {
            return Err(Error::UploadFormat(
                "the body holds no rows; send at least one".into(),
            ));
        }
        Ok(out)
    }

    /// The mapper (rows so far, features seen).
    pub fn mapper(&self) -> &RowMapper {
        match self {
            UploadDecoder::Ndjson(d) => &d.mapper,
            UploadDecoder::Csv(d) => &d.mapper,
            UploadDecoder::Arrow(d) => &d.mapper,
        }
    }
}

/// NDJSON: one JSON object per line; blank lines are skipped.
pub struct NdjsonDecoder {
    mapper: RowMapper,
    pending: Vec<u8>,
    rows: Rows,
    line: u64,
}

impl NdjsonDecoder {
    fn new(cfg: UploadConfig) -> Self {
        let cap = cfg.batch_rows;
        Self {
            mapper: RowMapper::new(cfg),
            pending: Vec::new(),
            rows: Rows::new(cap),
            line: 0,
        }
    }

    fn push(&mut self, mut chunk: &[u8]) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        while let Some(pos) = chunk.iter().position(|&b| b == b'\n') {
            let (head, rest) = chunk.split_at(pos);
            chunk = &rest[1..];
            if self.pending.is_empty() {
                self.line(head, &mut out)?;
            } else {
                let mut line = std::mem::take(&mut self.pending);
                line.extend_from_slice(head);
                self.check_len(line.len())?;
                self.line(&line, &mut out)?;
                line.clear();
                self.pending = line;
            }
        }
        self.pending.extend_from_slice(chunk);
        self.check_len(self.pending.len())?;
        Ok(out)
    }

    fn check_len(&self, len: usize) -> Result<()> {
        let max = self.mapper.cfg.max_line_bytes;
        if len > max {
            return Err(Error::UploadFormat(format!(
                "line {} is longer than {max} bytes; send one object per line",
                self.line + 1
            )));
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            self.line(&line, &mut out)?;
        }
        if self.rows.len > 0 {
            out.push(self.rows.finish(&self.mapper.cfg)?);
        }
        Ok(out)
    }

    fn line(&mut self, line: &[u8], out: &mut Vec<RecordBatch>) -> Result<()> {
        self.line += 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let row = self.mapper.rows + 1;
        let obj: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(line)
            .map_err(|e| {
                Error::UploadFormat(format!(
                    "row {row} (line {}) is not a JSON object: {e}",
                    self.line
                ))
            })?;
        self.row(row, obj)?;
        self.mapper.rows += 1;
        if self.rows.len >= self.mapper.cfg.batch_rows {
            out.push(self.rows.finish(&self.mapper.cfg)?);
        }
        Ok(())
    }

    fn row(&mut self, row: u64, obj: serde_json::Map<String, serde_json::Value>) -> Result<()> {
        use serde_json::Value as J;
        let mut ts = None;
        let mut id = None;
        let mut pred = (None, None);
        let mut label = (None, None);
        let mut nums: Vec<(String, f64)> = Vec::new();
        let mut strs: Vec<(String, String)> = Vec::new();
        for (k, v) in obj {
            match k.as_str() {
                "ts" => {
                    ts = match v {
                        J::Null => None,
                        J::Number(n) => Some(epoch_seconds(row, n.as_f64().unwrap_or(f64::NAN))?),
                        J::String(s) => Some(parse_ts_text(row, &s)?),
                        _ => {
                            return Err(row_err(
                                row,
                                "ts",
                                "must be RFC 3339 text or epoch seconds",
                            ));
                        }
                    }
                }
                "inference_id" => {
                    id = match v {
                        J::Null => None,
                        J::String(s) => Some(s),
                        J::Number(n) => Some(n.to_string()),
                        _ => return Err(row_err(row, "inference_id", "must be text or a number")),
                    }
                }
                "prediction" | "label" => {
                    let t = match v {
                        J::Null => (None, None),
                        J::Number(n) => (Some(n.to_string()), Some(n.as_f64().unwrap_or(f64::NAN))),
                        J::String(s) => (Some(s), None),
                        J::Bool(b) => (Some(b.to_string()), None),
                        _ => {
                            return Err(row_err(row, &k, "must be a number, text or a boolean"));
                        }
                    };
                    if k == "prediction" {
                        pred = t;
                    } else {
                        label = t;
                    }
                }
                _ => {
                    let natural = match &v {
                        J::Null => {
                            // Still check that the column is known.
                            if !self.mapper.cfg.known.is_empty() {
                                self.mapper.kind_for(row, &k, None)?;
                            }
                            continue;
                        }
                        J::Number(_) => FeatureKind::Numeric,
                        J::String(_) | J::Bool(_) => FeatureKind::Categorical,
                        J::Array(_) | J::Object(_) => {
                            return Err(row_err(
                                row,
                                &k,
                                "a feature must be a number, text or a boolean, not an array or object",
                            ));
                        }
                    };
                    let kind = self.mapper.kind_for(row, &k, Some(natural))?;
                    match (kind, v) {
                        (FeatureKind::Numeric, J::Number(n)) => {
                            nums.push((k, n.as_f64().unwrap_or(f64::NAN)))
                        }
                        (FeatureKind::Numeric, J::String(s)) => match s.trim().parse::<f64>() {
                            Ok(x) => nums.push((k, x)),
                            Err(_) => {
                                return Err(kind_mismatch(
                                    row,
                                    &k,
                                    FeatureKind::Numeric,
                                    &format!("{:?}", truncate(&s)),
                                ));
                            }
                        },
                        (FeatureKind::Numeric, _) => {
                            return Err(kind_mismatch(row, &k, kind, "a boolean"));
                        }
                        (FeatureKind::Categorical, J::String(s)) => {
                            if !s.is_empty() {
                                strs.push((k, s))
                            }
                        }
                        (FeatureKind::Categorical, J::Bool(b)) => strs.push((k, b.to_string())),
                        (FeatureKind::Categorical, _) => {
                            return Err(kind_mismatch(row, &k, kind, "a number"));
                        }
                    }
                }
            }
        }
        let r = &mut self.rows;
        r.ts.append_value(ts.unwrap_or(self.mapper.cfg.now_us));
        r.inference.inference_id.append_option(id);
        r.inference.prediction.append_option(pred.0);
        r.inference.prediction_value.append_option(pred.1);
        r.inference.label.append_option(label.0);
        r.inference.label_value.append_option(label.1);
        nums.sort_by(|a, b| a.0.cmp(&b.0));
        strs.sort_by(|a, b| a.0.cmp(&b.0));
        for (k, v) in &nums {
            r.inference.features_num.keys().append_value(k);
            r.inference.features_num.values().append_value(*v);
        }
        for (k, v) in &strs {
            r.inference.features_str.keys().append_value(k);
            r.inference.features_str.values().append_value(v);
        }
        r.end_row()
    }
}

/// CSV with a header row; every column is read as text, then mapped.
pub struct CsvDecoder {
    mapper: RowMapper,
    header: Option<Vec<u8>>,
    decoder: Option<arrow_csv::reader::Decoder>,
}

impl CsvDecoder {
    fn new(cfg: UploadConfig) -> Self {
        Self {
            mapper: RowMapper::new(cfg),
            header: Some(Vec::new()),
            decoder: None,
        }
    }

    fn push(&mut self, chunk: &[u8]) -> Result<Vec<RecordBatch>> {
        let mut chunk = chunk;
        if let Some(h) = &mut self.header {
            match chunk.iter().position(|&b| b == b'\n') {
                None => {
                    h.extend_from_slice(chunk);
                    if h.len() > self.mapper.cfg.max_line_bytes {
                        return Err(Error::UploadFormat(format!(
                            "the CSV header is longer than {} bytes",
                            self.mapper.cfg.max_line_bytes
                        )));
                    }
                    return Ok(Vec::new());
                }
                Some(pos) => {
                    h.extend_from_slice(&chunk[..pos]);
                    chunk = &chunk[pos + 1..];
                    let header = self.header.take().unwrap_or_default();
                    self.start(&header)?;
                }
            }
        }
        self.decode(chunk, false)
    }

    fn start(&mut self, header: &[u8]) -> Result<()> {
        let header = header.strip_suffix(b"\r").unwrap_or(header);
        if header.is_empty() {
            return Err(Error::UploadFormat(
                "the CSV body must start with a header row naming the columns".into(),
            ));
        }
        let text = std::str::from_utf8(header)
            .map_err(|_| Error::UploadFormat("the CSV header is not UTF-8".into()))?;
        let (schema, _) = arrow_csv::reader::Format::default()
            .with_header(true)
            .infer_schema(std::io::Cursor::new(text.as_bytes()), Some(0))
            .map_err(|e| Error::UploadFormat(format!("invalid CSV header: {e}")))?;
        let mut fields = Vec::new();
        for f in schema.fields() {
            let name = f.name();
            if name.is_empty() || name.chars().any(char::is_control) {
                return Err(Error::UploadFormat(format!(
                    "CSV header column {name:?} is empty or has control characters"
                )));
            }
            fields.push(Field::new(name, DataType::Utf8, true));
        }
        let schema = Arc::new(Schema::new(Fields::from(fields)));
        self.decoder = Some(
            arrow_csv::ReaderBuilder::new(schema)
                .with_header(false)
                .with_batch_size(self.mapper.cfg.batch_rows)
                .build_decoder(),
        );
        Ok(())
    }

    fn decode(&mut self, mut buf: &[u8], eof: bool) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        let Some(dec) = self.decoder.as_mut() else {
            return Ok(out);
        };
        let mapper = &mut self.mapper;
        let csv_err = |rows: u64, e: arrow_schema::ArrowError| {
            Error::UploadFormat(format!(
                "invalid CSV after row {rows} (rows counted from the first data row): {e}"
            ))
        };
        while !buf.is_empty() {
            let n = dec.decode(buf).map_err(|e| csv_err(mapper.rows, e))?;
            buf = &buf[n..];
            if dec.capacity() == 0
                && let Some(b) = dec.flush().map_err(|e| csv_err(mapper.rows, e))?
            {
                out.extend(mapper.map_inner(&b, true)?);
            }
        }
        if eof {
            // An empty decode tells the CSV reader the input ended (a last
            // record without a newline is complete).
            dec.decode(&[]).map_err(|e| csv_err(mapper.rows, e))?;
            if let Some(b) = dec.flush().map_err(|e| csv_err(mapper.rows, e))? {
                out.extend(mapper.map_inner(&b, true)?);
            }
        }
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<RecordBatch>> {
        if let Some(h) = self.header.take() {
            if h.is_empty() {
                return Err(Error::UploadFormat(
                    "the body holds no rows; send a CSV header and at least one row".into(),
                ));
            }
            self.start(&h)?;
        }
        self.decode(&[], true)
    }
}

/// The Arrow IPC stream's end-of-stream marker: a continuation token and a
/// zero message length.
const IPC_END_OF_STREAM: [u8; 8] = [0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0];

/// Arrow IPC stream format, one message at a time.
pub struct ArrowDecoder {
    mapper: RowMapper,
    decoder: arrow_ipc::reader::StreamDecoder,
    /// The last bytes received: a complete stream ends with
    /// [`IPC_END_OF_STREAM`], a cut one (at a message boundary, which the
    /// decoder alone cannot tell from a complete one) does not.
    tail: Vec<u8>,
}

impl ArrowDecoder {
    fn new(cfg: UploadConfig) -> Self {
        Self {
            mapper: RowMapper::new(cfg),
            decoder: arrow_ipc::reader::StreamDecoder::new(),
            tail: Vec::with_capacity(IPC_END_OF_STREAM.len()),
        }
    }

    fn push(&mut self, chunk: &[u8]) -> Result<Vec<RecordBatch>> {
        let keep = IPC_END_OF_STREAM.len();
        if chunk.len() >= keep {
            self.tail.clear();
            self.tail.extend_from_slice(&chunk[chunk.len() - keep..]);
        } else {
            self.tail.extend_from_slice(chunk);
            let excess = self.tail.len().saturating_sub(keep);
            self.tail.drain(..excess);
        }
        let mut buf = Buffer::from(chunk.to_vec());
        let mut out = Vec::new();
        while !buf.is_empty() {
            match self.decoder.decode(&mut buf) {
                Ok(Some(b)) => out.extend(self.mapper.map(&b)?),
                Ok(None) => {}
                Err(e) => {
                    return Err(Error::UploadFormat(format!(
                        "invalid Arrow IPC stream after row {}: {e}",
                        self.mapper.rows
                    )));
                }
            }
        }
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<RecordBatch>> {
        self.decoder.finish().map_err(|e| {
            Error::UploadFormat(format!(
                "the Arrow IPC stream ends early (after row {}): {e}",
                self.mapper.rows
            ))
        })?;
        if self.tail != IPC_END_OF_STREAM {
            return Err(Error::UploadFormat(format!(
                "the Arrow IPC stream ends without its end-of-stream marker (after row {}): the body was cut short; close the stream writer before sending",
                self.mapper.rows
            )));
        }
        Ok(Vec::new())
    }
}

#[cfg(test)]
#[path = "batch_tests.rs"]
mod tests;
