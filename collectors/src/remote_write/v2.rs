//! Reading a remote write 2.0 `io.prometheus.write.v2.Request` (field
//! numbers as in [`super::proto::v2`]) into [`Parsed`]: symbol references
//! resolved to strings borrowed from the buffer.

use super::convert::{Parsed, RawSeries};
use super::v1::{histogram, sample};
use super::wire::{RECURSION_LIMIT, Reader, WireError, WireResult};
use crate::schema::kind;

/// `Metadata.MetricType` values that map to a `samples.kind`.
const METRIC_TYPE_COUNTER: i32 = 1;
const METRIC_TYPE_GAUGE: i32 = 2;
const METRIC_TYPE_GAUGEHISTOGRAM: i32 = 4;

/// Read a whole `Request`: symbols first (they may come after the series
/// they serve), then every series.
pub(super) fn parse(raw: &[u8]) -> WireResult<Parsed<'_>> {
    let mut r = Reader::new(raw);
    let depth = RECURSION_LIMIT;
    let mut symbols: Vec<&str> = Vec::new();
    let mut series: Vec<Reader<'_>> = Vec::new();
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        match field {
            1..=3 => {
                return Err(r.error(format!(
                    "field {field} is reserved in io.prometheus.write.v2.Request \
                     (a remote write 1.0 prometheus.WriteRequest sent with the 2.0 content type?)"
                )));
            }
            4 => symbols.push(r.string(wt)?),
            5 => series.push(r.message(wt, depth)?),
            _ => r.skip(wt, field, depth)?,
        }
    }
    if let Some(first) = symbols.first()
        && !first.is_empty()
    {
        return Err(WireError::rule(format!(
            "symbols[0] is {first:?}; it must be the empty string"
        )));
    }
    let mut p = Parsed {
        series: Vec::with_capacity(series.len()),
        ..Default::default()
    };
    let mut refs = Vec::new();
    for m in series {
        time_series(m, depth - 1, &symbols, &mut refs, &mut p)?;
    }
    Ok(p)
}

/// `symbols[r]`; reference 0 is the empty string even in an empty table.
fn symbol<'a>(symbols: &[&'a str], r: u32) -> Option<&'a str> {
    match symbols.get(r as usize) {
        Some(s) => Some(s),
        None if r == 0 => Some(""),
        None => None,
    }
}

fn out_of_range(what: &str, r: u32, symbols: &[&str]) -> String {
    format!("{what} = {r} is out of range ({} symbols)", symbols.len())
}

/// Metadata of a series, merged over repeated occurrences as protobuf does.
#[derive(Default)]
struct Metadata {
    metric_type: i32,
    help_ref: u32,
    unit_ref: u32,
}

/// `TimeSeries`: labels_refs 1, samples 2, histograms 3, exemplars 4,
/// metadata 5, created_timestamp 6.
fn time_series<'a>(
    mut r: Reader<'a>,
    depth: u32,
    symbols: &[&'a str],
    refs: &mut Vec<u32>,
    p: &mut Parsed<'a>,
) -> WireResult<()> {
    let mut s = RawSeries::starting_at(p);
    let mut md = Metadata::default();
    let mut exemplar_problem = None;
    refs.clear();
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        match field {
            1 => r.repeated_varint(wt, |v| refs.push(v as u32))?,
            2 => {
                let m = r.message(wt, depth)?;
                p.samples.push(sample(m, depth - 1)?);
            }
            3 => {
                let m = r.message(wt, depth)?;
                p.histograms.push(histogram(m, depth - 1, true)?);
            }
            4 => {
                let m = r.message(wt, depth)?;
                let problem = exemplar(m, depth - 1, symbols)?;
                if exemplar_problem.is_none() {
                    exemplar_problem = problem.map(|e| format!("exemplar {}: {e}", s.exemplars));
                }
                s.exemplars += 1;
            }
            5 => {
                let m = r.message(wt, depth)?;
                metadata(m, depth - 1, &mut md)?;
            }
            6 => s.created_ms = r.int64(wt)?,
            _ => r.skip(wt, field, depth)?,
        }
    }
    s.invalid = resolve_labels(refs, symbols, p)
        .err()
        .or_else(|| {
            (symbol(symbols, md.help_ref).is_none())
                .then(|| out_of_range("metadata.help_ref", md.help_ref, symbols))
        })
        .or_else(|| {
            (symbol(symbols, md.unit_ref).is_none())
                .then(|| out_of_range("metadata.unit_ref", md.unit_ref, symbols))
        })
        .or(exemplar_problem);
    s.unit = symbol(symbols, md.unit_ref).filter(|u| !u.is_empty());
    s.kind = match md.metric_type {
        METRIC_TYPE_COUNTER => kind::COUNTER,
        METRIC_TYPE_GAUGE => kind::GAUGE,
        _ => kind::UNTYPED,
    };
    s.gauge_histogram = md.metric_type == METRIC_TYPE_GAUGEHISTOGRAM;
    s.end_at(p);
    p.series.push(s);
    Ok(())
}

/// Push the (name, value) pairs `refs` names.
fn resolve_labels<'a>(refs: &[u32], symbols: &[&'a str], p: &mut Parsed<'a>) -> Result<(), String> {
    check_refs("labels_refs", refs, symbols)?;
    p.labels.extend(refs.chunks_exact(2).map(|pair| {
        (
            symbol(symbols, pair[0]).unwrap_or_default(),
            symbol(symbols, pair[1]).unwrap_or_default(),
        )
    }));
    Ok(())
}

/// `refs` has an even length and every entry is in `symbols`.
fn check_refs(what: &str, refs: &[u32], symbols: &[&str]) -> Result<(), String> {
    if !refs.len().is_multiple_of(2) {
        return Err(format!(
            "{what} has an odd length {} (name, value pairs expected)",
            refs.len()
        ));
    }
    match refs.iter().position(|&r| symbol(symbols, r).is_none()) {
        Some(i) => Err(out_of_range(&format!("{what}[{i}]"), refs[i], symbols)),
        None => Ok(()),
    }
}

/// `Exemplar`: labels_refs 1, value 2, timestamp 3 (checked, then dropped).
/// Returns what is wrong with its references, if anything.
fn exemplar(mut r: Reader<'_>, depth: u32, symbols: &[&str]) -> WireResult<Option<String>> {
    let mut refs = Vec::new();
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        match field {
            1 => r.repeated_varint(wt, |v| refs.push(v as u32))?,
            2 => {
                r.double(wt)?;
            }
            3 => {
                r.int64(wt)?;
            }
            _ => r.skip(wt, field, depth)?,
        }
    }
    Ok(check_refs("labels_refs", &refs, symbols).err())
}

/// `Metadata`: type 1, help_ref 3, unit_ref 4.
fn metadata(mut r: Reader<'_>, depth: u32, md: &mut Metadata) -> WireResult<()> {
    while !r.is_empty() {
        let (field, wt) = r.key()?;
        match field {
            1 => md.metric_type = r.int32(wt)?,
            3 => md.help_ref = r.uint32(wt)?,
            4 => md.unit_ref = r.uint32(wt)?,
            _ => r.skip(wt, field, depth)?,
        }
    }
    Ok(())
}
