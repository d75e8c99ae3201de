//! Helpers the crate's unit tests share to read batches back.

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, MapArray, RecordBatch};

/// Column `name` of `b`, which must be there.
pub(crate) fn column<'a>(b: &'a RecordBatch, name: &str) -> &'a ArrayRef {
    b.column_by_name(name).unwrap()
}

/// Row `row` of the `Map<Utf8, Utf8>` column `column`, as owned pairs.
pub(crate) fn map_row(b: &RecordBatch, column: &str, row: usize) -> Vec<(String, String)> {
    let m: &MapArray = self::column(b, column).as_map();
    let e = m.value(row);
    let k = e.column(0).as_string::<i32>();
    let v = e.column(1).as_string::<i32>();
    (0..e.len())
        .map(|i| (k.value(i).to_string(), v.value(i).to_string()))
        .collect()
}

/// The promoted label columns of `samples` rows ([`crate::PROMOTED_LABELS`]),
/// row by row; and that each agrees with its entry in `labels`.
pub(crate) fn promoted_labels(b: &RecordBatch) -> Vec<[Option<String>; 4]> {
    (0..b.num_rows())
        .map(|row| {
            let labels = map_row(b, "labels", row);
            crate::PROMOTED_LABELS.map(|key| {
                let c = column(b, key).as_string::<i32>();
                let got = c.is_valid(row).then(|| c.value(row).to_string());
                let want = labels
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.clone());
                assert_eq!(got, want, "row {row}: column `{key}` and labels['{key}']");
                got
            })
        })
        .collect()
}
