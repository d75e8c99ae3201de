//! SQL functions that could allocate without bound, guarded.
//!
//! DataFusion's memory pool tracks operators (sorts, aggregations, joins)
//! but not what a scalar function allocates for its result:
//! `repeat('x', 500000000)` allocated half a gigabyte per row before any
//! limit could see it. The functions that *generate* data from a small
//! input — `repeat`, `lpad`, `rpad`, `array_repeat`, `array_resize`,
//! `range` and `generate_series` — are wrapped: before the real function
//! runs, the wrapper computes from the arguments how many bytes the batch's
//! results would take and refuses more than [`MAX_FUNCTION_RESULT_BYTES`]. Every
//! other function's output is bounded by its inputs.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::compute::kernels::length::length;
use datafusion::arrow::datatypes::{DataType, FieldRef, Int64Type, IntervalUnit, TimeUnit};
use datafusion::common::{Result, exec_err};
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature,
};
use datafusion::prelude::SessionContext;

/// Most bytes one call of a generating function may produce for one batch
/// of rows (the results of all its rows together).
pub const MAX_FUNCTION_RESULT_BYTES: u64 = 64 << 20;

/// How a generating function's result size follows from its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Size {
    /// `repeat(text, n)`: length of the text times `n`.
    Repeat,
    /// `lpad/rpad(text, n [, fill])`: `n` characters (up to 4 bytes each).
    Pad,
    /// `array_repeat(x, n)`, `array_resize(a, n [, x])`: `n` elements.
    Count,
    /// `range/generate_series([start,] stop [, step])`: (stop − start) / step elements.
    Series,
}

const GUARDED: &[(&str, Size)] = &[
    ("repeat", Size::Repeat),
    ("lpad", Size::Pad),
    ("rpad", Size::Pad),
    ("array_repeat", Size::Count),
    ("array_resize", Size::Count),
    ("range", Size::Series),
    ("generate_series", Size::Series),
];

/// Bytes counted per element of a generated list (a value and its offset
/// or validity share; nested values count as one element).
const ELEMENT_BYTES: u64 = 16;

/// Replaces the generating functions of `ctx` with guarded ones.
pub fn register(ctx: &SessionContext) {
    for (name, size) in GUARDED {
        if let Ok(inner) = ctx.udf(name) {
            ctx.register_udf(ScalarUDF::new_from_impl(Guarded { inner, size: *size }));
        }
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Guarded {
    inner: Arc<ScalarUDF>,
    size: Size,
}

impl Guarded {
    fn check(&self, args: &ScalarFunctionArgs) -> Result<()> {
        let rows = args.number_rows.max(1);
        let bytes = match requested_bytes(self.size, &args.args, rows) {
            Ok(b) => b,
            // Arguments the estimate cannot read: the function itself
            // reports what is wrong with them.
            Err(_) => return Ok(()),
        };
        if bytes > u128::from(MAX_FUNCTION_RESULT_BYTES) {
            return exec_err!(
                "{}() would produce {bytes} bytes for {rows} row(s); the limit is {} bytes per \
                 batch of rows: ask for shorter values or fewer rows",
                self.inner.name(),
                MAX_FUNCTION_RESULT_BYTES
            );
        }
        Ok(())
    }
}

impl ScalarUDFImpl for Guarded {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }
    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        self.inner.inner().schema_name(args)
    }
    fn signature(&self) -> &Signature {
        self.inner.signature()
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.inner().return_type(arg_types)
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.inner().return_field_from_args(args)
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.inner().coerce_types(arg_types)
    }
    fn short_circuits(&self) -> bool {
        self.inner.inner().short_circuits()
    }
    fn documentation(&self) -> Option<&Documentation> {
        self.inner.inner().documentation()
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        self.check(&args)?;
        self.inner.invoke_with_args(args)
    }
}

/// The result bytes a call would produce, from its arguments.
fn requested_bytes(size: Size, args: &[ColumnarValue], rows: usize) -> Result<u128> {
    let counts = |i: usize| -> Result<Vec<Option<i64>>> {
        match args.get(i) {
            Some(a) => int_values(a, rows),
            None => Ok(vec![None; rows]),
        }
    };
    let total = |per_row: &mut dyn FnMut(usize) -> u128| (0..rows).map(per_row).sum::<u128>();
    let positive = |v: Option<i64>| v.map_or(0, |n| n.max(0) as u128);
    Ok(match size {
        Size::Repeat => {
            let text = args.first().map(|a| a.to_array(rows)).transpose()?;
            let lengths = match text {
                Some(t) => int_values(&ColumnarValue::Array(length(&t)?), rows)?,
                None => vec![None; rows],
            };
            let n = counts(1)?;
            total(&mut |i| positive(lengths[i]) * positive(n[i]))
        }
        Size::Pad => {
            let n = counts(1)?;
            total(&mut |i| positive(n[i]) * 4)
        }
        Size::Count => {
            let n = counts(1)?;
            total(&mut |i| positive(n[i]) * u128::from(ELEMENT_BYTES))
        }
        Size::Series => {
            let (start, stop, step) = match args.len() {
                1 => (vec![Some(0); rows], series_values(&args[0], rows)?, None),
                2 => (
                    series_values(&args[0], rows)?,
                    series_values(&args[1], rows)?,
                    None,
                ),
                _ => (
                    series_values(&args[0], rows)?,
                    series_values(&args[1], rows)?,
                    Some(step_values(&args[2], rows)?),
                ),
            };
            total(&mut |i| {
                let (Some(a), Some(b)) = (start[i], stop[i]) else {
                    return 0;
                };
                let step = step
                    .as_ref()
                    .and_then(|s| s[i])
                    .map_or(1, |s| s.unsigned_abs().max(1));
                (i128::from(b) - i128::from(a)).unsigned_abs() / u128::from(step)
                    * u128::from(ELEMENT_BYTES)
            })
        }
    })
}

/// One argument as 64-bit integers, one per row.
fn int_values(arg: &ColumnarValue, rows: usize) -> Result<Vec<Option<i64>>> {
    let array = arg.to_array(rows)?;
    let ints = cast(&array, &DataType::Int64)?;
    let ints = ints.as_primitive::<Int64Type>();
    Ok((0..rows.min(ints.len()))
        .map(|i| ints.is_valid(i).then(|| ints.value(i)))
        .collect())
}

/// Nanoseconds of a day.
const DAY_NANOS: i64 = 86_400_000_000_000;

/// A series bound as an integer: itself, or nanoseconds for dates and
/// timestamps.
fn series_values(arg: &ColumnarValue, rows: usize) -> Result<Vec<Option<i64>>> {
    let array: ArrayRef = arg.to_array(rows)?;
    match array.data_type() {
        DataType::Date32 | DataType::Date64 => {
            let days = cast(&array, &DataType::Date32)?;
            let days = cast(&days, &DataType::Int32)?;
            Ok(int_values(&ColumnarValue::Array(days), rows)?
                .into_iter()
                .map(|d| d.map(|d| d.saturating_mul(DAY_NANOS)))
                .collect())
        }
        DataType::Timestamp(..) => {
            let nanos = cast(&array, &DataType::Timestamp(TimeUnit::Nanosecond, None))?;
            int_values(&ColumnarValue::Array(nanos), rows)
        }
        _ => int_values(&ColumnarValue::Array(array), rows),
    }
}

/// A series step as an integer: itself, or nanoseconds for intervals (a
/// month counted as 28 days, the shortest, so the estimate never falls short).
fn step_values(arg: &ColumnarValue, rows: usize) -> Result<Vec<Option<i64>>> {
    let array: ArrayRef = arg.to_array(rows)?;
    if let DataType::Interval(_) = array.data_type() {
        let mdn = cast(&array, &DataType::Interval(IntervalUnit::MonthDayNano))?;
        let mdn = mdn.as_primitive::<datafusion::arrow::datatypes::IntervalMonthDayNanoType>();
        return Ok((0..rows.min(mdn.len()))
            .map(|i| {
                mdn.is_valid(i).then(|| {
                    let v = mdn.value(i);
                    i64::from(v.months)
                        .saturating_mul(28 * DAY_NANOS)
                        .saturating_add(i64::from(v.days).saturating_mul(DAY_NANOS))
                        .saturating_add(v.nanoseconds)
                })
            })
            .collect());
    }
    int_values(&ColumnarValue::Array(array), rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(sql: &str) -> Result<Vec<datafusion::arrow::array::RecordBatch>> {
        let ctx = SessionContext::new();
        register(&ctx);
        ctx.sql(sql).await?.collect().await
    }

    #[tokio::test]
    async fn generating_functions_work_within_the_limit() {
        for sql in [
            "SELECT repeat('ab', 3)",
            "SELECT lpad('x', 5, '-'), rpad('x', 5)",
            "SELECT array_repeat(1, 4), array_resize(make_array(1, 2), 4, 0)",
            "SELECT range(10), generate_series(1, 10, 2)",
            "SELECT generate_series(DATE '2026-01-01', DATE '2026-02-01', INTERVAL '1 day')",
            "SELECT repeat(x, 2) FROM (VALUES ('a'), ('bc')) t(x)",
        ] {
            run(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        let out = run("SELECT repeat('ab', 3) AS r").await.unwrap();
        let r = out[0]
            .column(0)
            .as_string_view_opt()
            .map(|a| a.value(0).to_owned());
        let r = r.or_else(|| {
            out[0]
                .column(0)
                .as_string_opt::<i32>()
                .map(|a| a.value(0).to_owned())
        });
        assert_eq!(r.as_deref(), Some("ababab"));
    }

    #[tokio::test]
    async fn generating_functions_refuse_huge_results() {
        for sql in [
            "SELECT length(repeat('x', 500000000))",
            "SELECT repeat(CAST(value AS VARCHAR), 20000) FROM range(100000)",
            "SELECT lpad('x', 100000000)",
            "SELECT array_repeat(1, 100000000)",
            "SELECT array_resize(make_array(1), 100000000)",
            "SELECT range(100000000)",
            "SELECT generate_series(0, 1000000000, 2)",
            "SELECT generate_series(TIMESTAMP '2000-01-01', TIMESTAMP '2030-01-01', INTERVAL '1 second')",
        ] {
            let e = run(sql).await.expect_err(sql).to_string();
            assert!(e.contains("the limit is"), "{sql}: {e}");
        }
    }
}
