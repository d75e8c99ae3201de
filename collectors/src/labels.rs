//! Delayed labels: ground truth that arrives after its inference, into
//! rows of [`delayed_labels_schema`].
//!
//! Two ways in, one shape out:
//! - a labels upload (`POST …/versions/{version}/labels`) is decoded by the
//!   ordinary upload decoders ([`crate::batch`]) into `inferences`-shaped
//!   rows, and [`labels_from_upload`] checks that each row is a label and
//!   nothing else (an `inference_id`, a `label`, optionally `ts`) before
//!   projecting it;
//! - an OTLP log record with a model, an inference id and a label but no
//!   feature and no prediction is a label-only record
//!   ([`crate::otlp::decode_logs`] fills a [`LabelColumns`]).

use std::sync::Arc;

use arrow_array::builder::{Float64Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch};

use crate::schema::{StrMapBuilder, delayed_labels_schema, inferences_schema, str_map_builder};
use crate::{Error, Result};

/// The columns a labels upload may have; every other column is refused.
pub const LABEL_UPLOAD_COLUMNS: [&str; 3] = ["inference_id", "label", "ts"];

fn row_err(row: u64, column: &str, reason: impl Into<String>) -> Error {
    Error::Upload {
        row,
        column: column.to_string(),
        reason: reason.into(),
    }
}

/// Checks the `inferences`-shaped rows of a labels upload and projects them
/// to `delayed_labels` rows. `first_row` is the upload's row number of the
/// batch's first row (1 = the upload's first data row), for the errors.
pub fn labels_from_upload(batch: &RecordBatch, first_row: u64) -> Result<RecordBatch> {
    debug_assert_eq!(batch.schema(), inferences_schema());
    // The decoders build this schema, so a missing column is a bug here
    // (an Arrow error, answered 500), never the sender's.
    let column =
        |name: &str| -> Result<&ArrayRef> { Ok(batch.column(batch.schema_ref().index_of(name)?)) };
    let not_a_label_column = |row: u64, name: &str| {
        row_err(
            row,
            name,
            format!(
                "a labels upload takes only the columns {}; send features and predictions with the inferences upload",
                LABEL_UPLOAD_COLUMNS.join(", ")
            ),
        )
    };
    for name in ["features_num", "features_str"] {
        let features = column(name)?.as_map();
        if let Some(i) = (0..features.len()).find(|&i| features.value_length(i) > 0) {
            let first = features.value(i);
            let key = first.column(0).as_string::<i32>().value(0).to_string();
            return Err(not_a_label_column(first_row + i as u64, &key));
        }
    }
    let prediction = column("prediction")?;
    if let Some(i) = (0..prediction.len()).find(|&i| prediction.is_valid(i)) {
        return Err(not_a_label_column(first_row + i as u64, "prediction"));
    }
    for (name, what) in [
        ("inference_id", "the id of the inference it labels"),
        ("label", "the label"),
    ] {
        let values = column(name)?;
        if let Some(i) = (0..values.len()).find(|&i| values.is_null(i)) {
            return Err(row_err(
                first_row + i as u64,
                name,
                format!("missing; every row of a labels upload needs {what}"),
            ));
        }
    }
    let columns = [
        "ts",
        "model",
        "version",
        "inference_id",
        "label",
        "label_value",
        "attributes",
        "source",
    ]
    .into_iter()
    .map(|name| column(name).cloned())
    .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(delayed_labels_schema(), columns)?)
}

/// `delayed_labels` rows under construction (OTLP label-only records).
pub(crate) struct LabelColumns {
    pub ts: TimestampMicrosecondBuilder,
    pub model: StringBuilder,
    pub version: StringBuilder,
    pub inference_id: StringBuilder,
    pub label: StringBuilder,
    pub label_value: Float64Builder,
    pub attributes: StrMapBuilder,
    pub source: StringBuilder,
}

impl LabelColumns {
    pub fn new() -> Self {
        Self {
            ts: crate::schema::ts_builder(0),
            model: StringBuilder::new(),
            version: StringBuilder::new(),
            inference_id: StringBuilder::new(),
            label: StringBuilder::new(),
            label_value: Float64Builder::new(),
            attributes: str_map_builder(),
            source: StringBuilder::new(),
        }
    }

    pub fn len(&self) -> usize {
        arrow_array::builder::ArrayBuilder::len(&self.source)
    }

    pub fn finish(&mut self) -> Result<RecordBatch> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.ts.finish()),
            Arc::new(self.model.finish()),
            Arc::new(self.version.finish()),
            Arc::new(self.inference_id.finish()),
            Arc::new(self.label.finish()),
            Arc::new(self.label_value.finish()),
            Arc::new(self.attributes.finish()),
            Arc::new(self.source.finish()),
        ];
        Ok(RecordBatch::try_new(delayed_labels_schema(), columns)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{BatchFormat, UploadConfig, UploadDecoder};

    fn decode(body: &str, format: BatchFormat) -> Result<Vec<RecordBatch>> {
        let cfg = UploadConfig::new(
            "fraud",
            "3",
            "u1",
            1_700_000_000_000_000,
            Default::default(),
        );
        let mut dec = UploadDecoder::new(format, cfg)?;
        let mut out = dec.push(body.as_bytes())?;
        out.extend(dec.finish()?);
        let mut first_row = 1;
        out.iter()
            .map(|b| {
                let labels = labels_from_upload(b, first_row);
                first_row += b.num_rows() as u64;
                labels
            })
            .collect()
    }

    fn texts(b: &RecordBatch, name: &str) -> Vec<Option<String>> {
        b.column_by_name(name)
            .unwrap()
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_string))
            .collect()
    }

    #[test]
    fn label_rows_become_delayed_labels() {
        let out = decode(
            "inference_id,label,ts\na1,fraud,2026-12-01T00:00:00Z\n7,1,\n",
            BatchFormat::Csv,
        )
        .unwrap();
        let b = &out[0];
        assert_eq!(b.schema(), delayed_labels_schema());
        assert_eq!(
            texts(b, "inference_id"),
            [Some("a1".into()), Some("7".into())]
        );
        assert_eq!(texts(b, "label"), [Some("fraud".into()), Some("1".into())]);
        assert_eq!(texts(b, "model"), vec![Some("fraud".to_string()); 2]);
        assert_eq!(texts(b, "version"), vec![Some("3".to_string()); 2]);
        let values = b.column_by_name("label_value").unwrap();
        let values = values.as_primitive::<arrow_array::types::Float64Type>();
        assert_eq!(values.iter().collect::<Vec<_>>(), [None, Some(1.0)]);
        let ts = b.column_by_name("ts").unwrap();
        let ts = ts.as_primitive::<arrow_array::types::TimestampMicrosecondType>();
        assert_eq!(ts.value(0), 1_796_083_200_000_000);
        assert_eq!(
            ts.value(1),
            1_700_000_000_000_000,
            "no ts: the receipt time"
        );
    }

    #[test]
    fn a_feature_or_prediction_column_is_refused_by_name() {
        let err = decode(
            "{\"inference_id\":\"a\",\"label\":1}\n{\"inference_id\":\"b\",\"label\":0,\"amount\":3}\n",
            BatchFormat::Ndjson,
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, Error::Upload { row: 2, ref column, .. } if column == "amount"),
            "{msg}"
        );
        assert!(msg.contains("inference_id, label, ts"), "{msg}");
        let err = decode("inference_id,label,prediction\na,1,0\n", BatchFormat::Csv).unwrap_err();
        assert!(matches!(err, Error::Upload { row: 1, ref column, .. } if column == "prediction"));
    }

    #[test]
    fn a_row_without_id_or_label_is_refused_by_row() {
        let err = decode("inference_id,label\na,1\n,0\n", BatchFormat::Csv).unwrap_err();
        assert!(
            matches!(err, Error::Upload { row: 2, ref column, .. } if column == "inference_id"),
            "{err}"
        );
        let err = decode(
            "{\"inference_id\":\"a\",\"label\":1}\n{\"inference_id\":\"b\"}\n",
            BatchFormat::Ndjson,
        )
        .unwrap_err();
        assert!(
            matches!(err, Error::Upload { row: 2, ref column, .. } if column == "label"),
            "{err}"
        );
    }

    #[test]
    fn garbage_and_truncated_bodies_are_refused() {
        assert!(decode("{\"inference_id\":\"a\",\"lab", BatchFormat::Ndjson).is_err());
        assert!(decode("\u{0}\u{1}garbage\n", BatchFormat::Ndjson).is_err());
    }
}
