//! Helpers the crate's unit tests share to read batches back.

use arrow_array::cast::AsArray;
use arrow_array::{Array, MapArray, RecordBatch};

/// Row `row` of the `Map<Utf8, Utf8>` column `column`, as owned pairs.
pub(crate) fn map_row(b: &RecordBatch, column: &str, row: usize) -> Vec<(String, String)> {
    let m: &MapArray = b.column_by_name(column).unwrap().as_map();
    let e = m.value(row);
    let k = e.column(0).as_string::<i32>();
    let v = e.column(1).as_string::<i32>();
    (0..e.len())
        .map(|i| (k.value(i).to_string(), v.value(i).to_string()))
        .collect()
}
