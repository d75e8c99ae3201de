//! Reading a remote write 1.0 `prometheus.WriteRequest` (field numbers as
//! in [`super::proto`]) into [`Parsed`], borrowing every string.

use super::convert::{Parsed, RawHistogram, RawSample, RawSeries, Span};
use super::wire::{RECURSION_LIMIT, Reader, WireResult, zigzag64};

/// Read a whole `WriteRequest`.
pub(super) fn parse(raw: &[u8]) -> WireResult<Parsed<'_>> {
    let mut p = Parsed::default();
    let mut r = Reader::new(raw);
    let depth = RECURSION_LIMIT;
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        match field {
            1 => {
                let m = r.message(wt, depth)?;
                series(m, depth - 1, &mut p)?;
            }
            3 => {
                let m = r.message(wt, depth)?;
                metadata(m, depth - 1)?;
                p.metadata_ignored += 1;
            }
            _ => r.skip(wt, field, depth)?,
        }
    }
    Ok(p)
}

/// `TimeSeries`: labels 1, samples 2, exemplars 3, histograms 4.
fn series<'a>(mut r: Reader<'a>, depth: u32, p: &mut Parsed<'a>) -> WireResult<()> {
    let mut s = RawSeries::starting_at(p);
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        match field {
            1 => {
                let m = r.message(wt, depth)?;
                p.labels.push(label(m, depth - 1)?);
            }
            2 => {
                let m = r.message(wt, depth)?;
                p.samples.push(sample(m, depth - 1)?);
            }
            3 => {
                let m = r.message(wt, depth)?;
                exemplar(m, depth - 1)?;
                s.exemplars += 1;
            }
            4 => {
                let m = r.message(wt, depth)?;
                p.histograms.push(histogram(m, depth - 1, false)?);
            }
            _ => r.skip(wt, field, depth)?,
        }
    }
    s.end_at(p);
    p.series.push(s);
    Ok(())
}

/// `Label`: name 1, value 2.
fn label<'a>(mut r: Reader<'a>, depth: u32) -> WireResult<(&'a str, &'a str)> {
    let (mut name, mut value) = ("", "");
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        match field {
            1 => name = r.string(wt)?,
            2 => value = r.string(wt)?,
            _ => r.skip(wt, field, depth)?,
        }
    }
    Ok((name, value))
}

/// `Sample` (same in 1.0 and 2.0): value 1, timestamp 2.
pub(super) fn sample(mut r: Reader<'_>, depth: u32) -> WireResult<RawSample> {
    let mut s = RawSample {
        value: 0.0,
        timestamp_ms: 0,
    };
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        match field {
            1 => s.value = r.double(wt)?,
            2 => s.timestamp_ms = r.int64(wt)?,
            _ => r.skip(wt, field, depth)?,
        }
    }
    Ok(s)
}

/// `Exemplar`: labels 1, value 2, timestamp 3 (read to be checked, then
/// dropped).
fn exemplar(mut r: Reader<'_>, depth: u32) -> WireResult<()> {
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        match field {
            1 => {
                let m = r.message(wt, depth)?;
                label(m, depth - 1)?;
            }
            2 => {
                r.double(wt)?;
            }
            3 => {
                r.int64(wt)?;
            }
            _ => r.skip(wt, field, depth)?,
        }
    }
    Ok(())
}

/// `MetricMetadata`: type 1, metric_family_name 2, help 4, unit 5 (read to be
/// checked, then ignored).
fn metadata(mut r: Reader<'_>, depth: u32) -> WireResult<()> {
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        match field {
            1 => {
                r.int32(wt)?;
            }
            2 | 4 | 5 => {
                r.string(wt)?;
            }
            _ => r.skip(wt, field, depth)?,
        }
    }
    Ok(())
}

/// `Histogram` (1.0 and 2.0 share fields 1-15; 2.0 adds `custom_values` 16,
/// which 1.0's message here does not declare, so it is skipped there).
pub(super) fn histogram(
    mut r: Reader<'_>,
    depth: u32,
    custom_values: bool,
) -> WireResult<RawHistogram> {
    let mut h = RawHistogram::default();
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        match field {
            1 => h.count = r.uint64(wt)? as f64,
            2 => h.count = r.double(wt)?,
            3 => h.sum = r.double(wt)?,
            4 => h.schema = r.sint32(wt)?,
            5 => h.zero_threshold = r.double(wt)?,
            6 => h.zero_count = r.uint64(wt)? as f64,
            7 => h.zero_count = r.double(wt)?,
            8 => {
                let m = r.message(wt, depth)?;
                h.negative_spans.push(span(m, depth - 1)?);
            }
            9 => r.repeated_varint(wt, |v| h.negative_deltas.push(zigzag64(v)))?,
            10 => r.repeated_double(wt, |v| h.negative_counts.push(v))?,
            11 => {
                let m = r.message(wt, depth)?;
                h.positive_spans.push(span(m, depth - 1)?);
            }
            12 => r.repeated_varint(wt, |v| h.positive_deltas.push(zigzag64(v)))?,
            13 => r.repeated_double(wt, |v| h.positive_counts.push(v))?,
            14 => h.reset_hint = r.int32(wt)?,
            15 => h.timestamp_ms = r.int64(wt)?,
            16 if custom_values => r.repeated_double(wt, |_| ())?,
            _ => r.skip(wt, field, depth)?,
        }
    }
    Ok(h)
}

/// `BucketSpan`: offset 1 (sint32), length 2.
fn span(mut r: Reader<'_>, depth: u32) -> WireResult<Span> {
    let mut s = Span::default();
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        match field {
            1 => s.offset = r.sint32(wt)?,
            2 => s.length = r.uint32(wt)?,
            _ => r.skip(wt, field, depth)?,
        }
    }
    Ok(s)
}
