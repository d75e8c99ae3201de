//! Charts as inline SVG, computed on the server: no script, nothing to
//! download, readable without JavaScript and by a test through the DOM.
//!
//! Every plotted point carries its data (`data-x`, `data-y`, `data-series`)
//! so what a chart shows can be checked against the SQL it came from, and
//! every chart is followed by its figures as a table for screen readers.
//! Colours come from CSS classes (`s0`…`s5`), never inline styles, so the
//! page's Content-Security-Policy can forbid inline styles.

use maud::{Markup, html};

/// Plot area inside the SVG's `viewBox` (left margin for the y labels,
/// bottom margin for the x labels).
const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 28.0;

/// One line of a time chart: `(unix milliseconds, value)` in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(i64, f64)>,
}

/// A vertical marker on a time chart (an alias move, say).
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    pub at_ms: i64,
    pub label: String,
}

/// A horizontal reference line (a policy's threshold).
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    pub value: f64,
    pub label: String,
}

/// Maps data to plot coordinates; degenerate ranges are widened so a
/// single point or a flat line still has a visible scale.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Scale {
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
}

impl Scale {
    fn fit(xs: impl Iterator<Item = f64>, ys: impl Iterator<Item = f64>) -> Option<Scale> {
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for x in xs.filter(|x| x.is_finite()) {
            x0 = x0.min(x);
            x1 = x1.max(x);
        }
        for y in ys.filter(|y| y.is_finite()) {
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        if x0 > x1 || y0 > y1 {
            return None;
        }
        if x1 - x0 < 1.0 {
            x0 -= 30_000.0;
            x1 += 30_000.0;
        }
        // Values are non-negative statistics, shares and latencies: start
        // the axis at zero so heights compare honestly.
        y0 = y0.min(0.0);
        if y1 - y0 < 1e-12 {
            y1 = y0 + 1.0;
        } else {
            y1 += (y1 - y0) * 0.05;
        }
        Some(Scale { x0, x1, y0, y1 })
    }

    fn x(&self, x: f64) -> f64 {
        LEFT + (x - self.x0) / (self.x1 - self.x0) * (WIDTH - LEFT - RIGHT)
    }

    fn y(&self, y: f64) -> f64 {
        HEIGHT - BOTTOM - (y - self.y0) / (self.y1 - self.y0) * (HEIGHT - TOP - BOTTOM)
    }
}

/// A short, stable text form of a number for labels and data attributes.
pub fn number(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if (1e-3..1e6).contains(&a) {
        let s = format!("{v:.4}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        s.to_string()
    } else {
        format!("{v:.3e}")
    }
}

/// UTC time of unix milliseconds, to the second.
pub fn time_label(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// A time chart: one polyline per series (a dot per point), an optional
/// threshold line and vertical markers. `id` names the chart in the DOM.
pub fn time_chart(
    id: &str,
    title: &str,
    y_label: &str,
    series: &[Series],
    threshold: Option<&Threshold>,
    markers: &[Marker],
) -> Markup {
    let xs = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0 as f64))
        .chain(markers.iter().map(|m| m.at_ms as f64));
    let ys = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .chain(threshold.map(|t| t.value));
    let Some(scale) = Scale::fit(xs, ys) else {
        return html! {
            figure.chart id=(id) data-empty="true" {
                figcaption { (title) }
                p.empty { "No data for this chart yet." }
            }
        };
    };
    html! {
        figure.chart id=(id) {
            figcaption { (title) }
            svg viewBox={"0 0 " (WIDTH) " " (HEIGHT)} role="img" aria-label=(title) {
                (axes(&scale, y_label, true))
                @if let Some(t) = threshold {
                    @let y = scale.y(t.value);
                    line.threshold x1=(LEFT) x2=(WIDTH - RIGHT) y1=(y) y2=(y) data-threshold=(number(t.value)) {}
                    text.threshold-label x=(WIDTH - RIGHT - 4.0) y=(y - 4.0) text-anchor="end" { (t.label) }
                }
                @for m in markers {
                    @let x = scale.x(m.at_ms as f64);
                    line.marker x1=(x) x2=(x) y1=(TOP) y2=(HEIGHT - BOTTOM) data-x=(m.at_ms) {}
                    text.marker-label x=(x + 3.0) y=(TOP + 10.0) { (m.label) }
                }
                @for (i, s) in series.iter().enumerate() {
                    @let class = format!("series s{}", i % 6);
                    g class=(class) data-series=(s.name) {
                        polyline points=(polyline(&scale, &s.points)) {}
                        @for (x, y) in &s.points {
                            @if y.is_finite() {
                                circle cx=(scale.x(*x as f64)) cy=(scale.y(*y)) r="2.5"
                                    data-x=(x) data-y=(number(*y)) data-series=(s.name) {
                                    title { (s.name) " " (time_label(*x)) ": " (number(*y)) }
                                }
                            }
                        }
                    }
                }
            }
            (legend(series.iter().map(|s| s.name.as_str())))
            details {
                summary { "Figures" }
                table {
                    thead { tr { th { "series" } th { "time (UTC)" } th { (y_label) } } }
                    tbody {
                        @for s in series {
                            @for (x, y) in &s.points {
                                tr { td { (s.name) } td { (time_label(*x)) } td.num { (number(*y)) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn polyline(scale: &Scale, points: &[(i64, f64)]) -> String {
    let mut out = String::with_capacity(points.len() * 14);
    for (x, y) in points.iter().filter(|p| p.1.is_finite()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&format!("{:.1},{:.1}", scale.x(*x as f64), scale.y(*y)));
    }
    out
}

/// Axis lines, the y range's ends and middle, and for time charts the
/// first and last time.
fn axes(scale: &Scale, y_label: &str, time: bool) -> Markup {
    let mid = (scale.y0 + scale.y1) / 2.0;
    html! {
        g.axes {
            line x1=(LEFT) x2=(LEFT) y1=(TOP) y2=(HEIGHT - BOTTOM) {}
            line x1=(LEFT) x2=(WIDTH - RIGHT) y1=(HEIGHT - BOTTOM) y2=(HEIGHT - BOTTOM) {}
            @for v in [scale.y0, mid, scale.y1] {
                text x=(LEFT - 4.0) y=(scale.y(v) + 4.0) text-anchor="end" { (number(v)) }
            }
            text x="12" y=(TOP + (HEIGHT - TOP - BOTTOM) / 2.0) transform={"rotate(-90 12 " (TOP + (HEIGHT - TOP - BOTTOM) / 2.0) ")"} text-anchor="middle" { (y_label) }
            @if time {
                text x=(LEFT) y=(HEIGHT - 8.0) { (time_label(scale.x0 as i64)) }
                text x=(WIDTH - RIGHT) y=(HEIGHT - 8.0) text-anchor="end" { (time_label(scale.x1 as i64)) }
            }
        }
    }
}

fn legend<'a>(names: impl Iterator<Item = &'a str>) -> Markup {
    html! {
        ul.legend {
            @for (i, name) in names.enumerate() {
                li { span class=(format!("swatch s{}", i % 6)) {} (name) }
            }
        }
    }
}

/// Grouped bars: for each category one bar per group (`reference`,
/// `current`), heights as given (shares, so groups of different sizes
/// compare).
pub fn bar_chart(
    id: &str,
    title: &str,
    y_label: &str,
    categories: &[String],
    groups: &[(&str, Vec<f64>)],
) -> Markup {
    let ys = groups.iter().flat_map(|g| g.1.iter().copied());
    let Some(scale) = Scale::fit(
        [0.0, categories.len().max(1) as f64].into_iter(),
        ys.chain([0.0]),
    ) else {
        return html! { figure.chart id=(id) data-empty="true" { figcaption { (title) } p.empty { "No data." } } };
    };
    let slot = (WIDTH - LEFT - RIGHT) / categories.len().max(1) as f64;
    let bar = slot * 0.8 / groups.len().max(1) as f64;
    html! {
        figure.chart id=(id) {
            figcaption { (title) }
            svg viewBox={"0 0 " (WIDTH) " " (HEIGHT)} role="img" aria-label=(title) {
                (axes(&scale, y_label, false))
                @for (c, category) in categories.iter().enumerate() {
                    @for (g, (group, values)) in groups.iter().enumerate() {
                        @let v = values.get(c).copied().unwrap_or(0.0);
                        @let x = LEFT + slot * c as f64 + slot * 0.1 + bar * g as f64;
                        @let y = scale.y(v);
                        rect class=(format!("bar s{}", g % 6)) x=(x) y=(y) width=(bar) height=((HEIGHT - BOTTOM - y).max(0.0))
                            data-category=(category) data-series=(group) data-y=(number(v)) {
                            title { (group) " " (category) ": " (number(v)) }
                        }
                    }
                    @if categories.len() <= 12 {
                        text x=(LEFT + slot * (c as f64 + 0.5)) y=(HEIGHT - 12.0) text-anchor="middle" { (category) }
                    }
                }
            }
            (legend(groups.iter().map(|g| g.0)))
            details {
                summary { "Figures" }
                table {
                    thead { tr { th { "bin" } @for (group, _) in groups { th { (group) } } } }
                    tbody {
                        @for (c, category) in categories.iter().enumerate() {
                            tr { td { (category) } @for (_, values) in groups { td.num { (number(values.get(c).copied().unwrap_or(0.0))) } } }
                        }
                    }
                }
            }
        }
    }
}

/// A lineage chain drawn as boxes joined by arrows, oldest first; each
/// box links to its version page.
pub fn chain(id: &str, items: &[(String, String)]) -> Markup {
    let box_w = 120.0;
    let gap = 36.0;
    let width = (items.len() as f64 * (box_w + gap)).max(box_w + gap);
    html! {
        figure.chart id=(id) {
            figcaption { "Parent chain (oldest first)" }
            svg viewBox={"0 0 " (width) " 48"} role="img" aria-label="parent chain" {
                @for (i, (label, href)) in items.iter().enumerate() {
                    @let x = i as f64 * (box_w + gap) + 2.0;
                    a href=(href) {
                        rect.node x=(x) y="6" width=(box_w) height="34" rx="4" data-version=(label) {}
                        text x=(x + box_w / 2.0) y="28" text-anchor="middle" { (label) }
                    }
                    @if i + 1 < items.len() {
                        line.edge x1=(x + box_w) x2=(x + box_w + gap - 4.0) y1="23" y2="23" {}
                        polygon.edge points={(x + box_w + gap - 4.0) ",18 " (x + box_w + gap) ",23 " (x + box_w + gap - 4.0) ",28"} {}
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_points() -> Vec<Series> {
        vec![Series {
            name: "amount".into(),
            points: vec![(1_000, 0.1), (61_000, 0.4)],
        }]
    }

    #[test]
    fn points_carry_their_data_and_sit_inside_the_plot() {
        let svg = time_chart("c", "KS", "statistic", &two_points(), None, &[]).into_string();
        assert!(svg.contains(r#"data-x="1000" data-y="0.1""#), "{svg}");
        assert!(svg.contains(r#"data-x="61000" data-y="0.4""#), "{svg}");
        let scale = Scale::fit([1_000.0, 61_000.0].into_iter(), [0.1, 0.4].into_iter()).unwrap();
        assert_eq!(scale.x(1_000.0), LEFT);
        assert_eq!(scale.x(61_000.0), WIDTH - RIGHT);
        // Zero is the bottom of the plot; the largest value is below the top.
        assert_eq!(scale.y(0.0), HEIGHT - BOTTOM);
        assert!(scale.y(0.4) > TOP);
    }

    #[test]
    fn a_threshold_above_every_point_is_still_inside_the_scale() {
        let t = Threshold {
            value: 2.0,
            label: "threshold 2".into(),
        };
        let svg = time_chart("c", "x", "y", &two_points(), Some(&t), &[]).into_string();
        assert!(svg.contains(r#"data-threshold="2""#), "{svg}");
        let scale = Scale::fit([1_000.0].into_iter(), [0.1, 0.4, 2.0].into_iter()).unwrap();
        assert!(scale.y(2.0) >= TOP);
    }

    #[test]
    fn names_are_escaped_in_every_place_they_appear() {
        let hostile = "<script>x</script>";
        let series = vec![Series {
            name: hostile.into(),
            points: vec![(0, 1.0)],
        }];
        let markers = [Marker {
            at_ms: 0,
            label: hostile.into(),
        }];
        let svg = time_chart("c", hostile, hostile, &series, None, &markers).into_string();
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;"));
        let bars = bar_chart(
            "b",
            hostile,
            "share",
            &[hostile.into()],
            &[(hostile, vec![1.0])],
        )
        .into_string();
        assert!(!bars.contains("<script>"), "{bars}");
    }

    #[test]
    fn empty_and_non_finite_data_say_so_instead_of_drawing_nothing() {
        let svg = time_chart("c", "t", "y", &[], None, &[]).into_string();
        assert!(svg.contains(r#"data-empty="true""#));
        let nan = vec![Series {
            name: "a".into(),
            points: vec![(0, f64::NAN)],
        }];
        let svg = time_chart("c", "t", "y", &nan, None, &[]).into_string();
        assert!(svg.contains(r#"data-empty="true""#), "{svg}");
    }

    #[test]
    fn bars_are_as_tall_as_their_share() {
        let svg = bar_chart(
            "b",
            "t",
            "share",
            &["a".into(), "b".into()],
            &[("reference", vec![0.5, 0.5]), ("current", vec![0.9, 0.1])],
        )
        .into_string();
        for (series, category, y) in [("reference", "a", "0.5"), ("current", "b", "0.1")] {
            let needle =
                format!(r#"data-category="{category}" data-series="{series}" data-y="{y}""#);
            assert!(svg.contains(&needle), "{needle} in {svg}");
        }
    }

    #[test]
    fn numbers_are_short_and_stable() {
        assert_eq!(number(0.0), "0");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(12.0), "12");
        assert_eq!(number(1.0e-7), "1.000e-7");
        assert_eq!(number(0.123456), "0.1235");
    }
}
