//! The html report's charts as inline SVG: columns, lines and horizontal bars, drawn on a fixed
//! 600-unit-wide canvas the page scales to its width (a phone's too: nothing scrolls sideways). Written by hand: plotting crates lay text
//! out with a font backend (system fonts or an embedded TTF), which these few shapes do not need.

use std::fmt::Write;

use jiff::Timestamp;

pub(super) const GREEN: &str = "#2e7d32";
pub(super) const AMBER: &str = "#e08e0b";
pub(super) const RED: &str = "#c62828";
pub(super) const BLUE: &str = "#1565c0";
pub(super) const LIGHT_BLUE: &str = "#90caf9";
pub(super) const GREY: &str = "#cfd6de";
pub(super) const DARK: &str = "#263238";
pub(super) const PURPLE: &str = "#6a4fb3";
pub(super) const BROWN: &str = "#8d6e63";

const W: f64 = 600.0;
const LEFT: f64 = 62.0;
const RIGHT: f64 = 14.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 34.0;
const MUTED: &str = "#5f6b76";
/// The widest a character of the 13-unit font may be (digits and most letters are narrower): how
/// much room a label needs, so that no two labels meet.
const CHAR_W: f64 = 7.8;
/// The least room between two labels on an axis.
const LABEL_GAP: f64 = 10.0;

fn label_width(text: &str) -> f64 {
    text.chars().count() as f64 * CHAR_W
}

/// The extent `[left, right]` of a label drawn at `x` with `anchor`.
fn extent(x: f64, width: f64, anchor: &str) -> (f64, f64) {
    match anchor {
        "start" => (x, x + width),
        "end" => (x - width, x),
        _ => (x - width / 2.0, x + width / 2.0),
    }
}

/// Whether labels (left to right) keep `LABEL_GAP` apart.
fn apart(extents: &[(f64, f64)]) -> bool {
    extents.windows(2).all(|w| w[1].0 - w[0].1 >= LABEL_GAP)
}

/// Text for html and SVG: the one escaping function of every html mailwave writes.
pub(super) use crate::text::html as esc;

/// A round top for an axis that reaches `max`, and the step of its grid lines (1, 2, 2.5 or 5
/// times a power of ten, about five steps).
fn nice(max: f64) -> (f64, f64) {
    if !(max.is_finite() && max > 0.0) {
        return (1.0, 0.25);
    }
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    ((max / step).ceil() * step, step)
}

/// An SVG under construction: its height, the top of its value axis, and the shapes so far.
struct Canvas {
    h: f64,
    top: f64,
    out: String,
}

impl Canvas {
    fn new(id: &str, title: &str, h: f64) -> Canvas {
        let mut out = String::new();
        let _ = write!(
            out,
            r#"<svg id="{id}" viewBox="0 0 {W} {h}" role="img" font-family="system-ui, sans-serif" font-size="13"><title>{}</title>"#,
            esc(title)
        );
        Canvas { h, top: 1.0, out }
    }

    fn plot_h(&self) -> f64 {
        self.h - TOP - BOTTOM
    }

    fn y(&self, v: f64) -> f64 {
        TOP + self.plot_h() * (1.0 - (v / self.top).clamp(0.0, 1.0))
    }

    /// The value axis up to `max`, with grid lines.
    fn axis(&mut self, max: f64, fmt: &dyn Fn(f64) -> String) {
        let (top, step) = nice(max);
        self.top = top;
        let mut v = 0.0;
        while v <= top + step / 2.0 {
            let y = self.y(v);
            let _ = write!(
                self.out,
                r#"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="{}" stroke-width="1"/><text x="{}" y="{:.1}" text-anchor="end" fill="{MUTED}">{}</text>"#,
                W - RIGHT,
                if v == 0.0 { MUTED } else { "#e3e7eb" },
                LEFT - 6.0,
                y + 4.0,
                esc(&fmt(v))
            );
            v += step;
        }
    }

    fn label(&mut self, x: f64, text: &str, anchor: &str) {
        let _ = write!(
            self.out,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="{anchor}" fill="{MUTED}">{}</text>"#,
            self.h - BOTTOM + 16.0,
            esc(text)
        );
    }

    fn finish(mut self) -> String {
        self.out.push_str("</svg>");
        self.out
    }
}

/// One layer of a column chart (or one marker), a value per category.
pub(super) struct Layer<'a> {
    pub name: &'a str,
    pub color: &'a str,
    pub values: Vec<f64>,
}

/// Stacked columns, one per category, with an optional marker per category (a capacity) and an
/// optional level across them all (a target).
pub(super) fn columns(
    id: &str,
    title: &str,
    categories: &[String],
    stacks: &[Layer],
    marker: Option<&Layer>,
    level: Option<(f64, &str)>,
    fmt: &dyn Fn(f64) -> String,
) -> String {
    let mut c = Canvas::new(id, title, 260.0);
    let n = categories.len().max(1);
    let max = (0..n)
        .map(|i| {
            let stacked: f64 = stacks.iter().filter_map(|s| s.values.get(i)).sum();
            let mark = marker.and_then(|m| m.values.get(i)).copied().unwrap_or(0.0);
            stacked.max(mark)
        })
        .fold(level.map_or(0.0, |l| l.0), f64::max);
    c.axis(max, fmt);
    let slot = (W - LEFT - RIGHT) / n as f64;
    let bar = (slot * 0.78).max(0.6);
    // Every `every`th category is labelled: the fewest skipped that keep the widest label clear of
    // its neighbours.
    let widest = categories
        .iter()
        .map(|c| label_width(c))
        .fold(0.0, f64::max);
    let every = (1..=n)
        .find(|k| slot * *k as f64 >= widest + LABEL_GAP)
        .unwrap_or(n);
    for (i, cat) in categories.iter().enumerate() {
        let x = LEFT + slot * i as f64 + (slot - bar) / 2.0;
        let mut base = 0.0;
        let mut tip = esc(cat);
        for s in stacks {
            let v = s.values.get(i).copied().unwrap_or(0.0);
            let _ = write!(tip, "&#10;{}: {}", esc(s.name), esc(&fmt(v)));
            if v <= 0.0 {
                continue;
            }
            let (y0, y1) = (c.y(base), c.y(base + v));
            let _ = write!(
                c.out,
                r#"<rect x="{x:.2}" y="{y1:.2}" width="{bar:.2}" height="{:.2}" fill="{}"/>"#,
                (y0 - y1).max(0.5),
                s.color
            );
            base += v;
        }
        if let Some(m) = marker {
            let v = m.values.get(i).copied().unwrap_or(0.0);
            let _ = write!(tip, "&#10;{}: {}", esc(m.name), esc(&fmt(v)));
            let y = c.y(v);
            let _ = write!(
                c.out,
                r#"<line x1="{:.2}" x2="{:.2}" y1="{y:.2}" y2="{y:.2}" stroke="{}" stroke-width="2"/>"#,
                x - slot * 0.1,
                x + bar + slot * 0.1,
                m.color
            );
        }
        // A transparent column over the slot carries the tooltip.
        let _ = write!(
            c.out,
            r#"<rect x="{:.2}" y="{TOP}" width="{slot:.2}" height="{:.2}" fill="transparent"><title>{tip}</title></rect>"#,
            LEFT + slot * i as f64,
            c.plot_h()
        );
        if i % every == 0 {
            c.label(LEFT + slot * (i as f64 + 0.5), cat, "middle");
        }
    }
    if let Some((v, name)) = level {
        let y = c.y(v);
        let _ = write!(
            c.out,
            r#"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="{RED}" stroke-width="1.5" stroke-dasharray="6 4"/><text x="{}" y="{:.1}" text-anchor="end" fill="{RED}" stroke="white" stroke-width="3" paint-order="stroke">{}</text>"#,
            W - RIGHT,
            W - RIGHT,
            y - 4.0,
            esc(name)
        );
    }
    c.finish()
}

/// One line of a time chart: points in time order.
pub(super) struct Line<'a> {
    pub name: &'a str,
    pub color: &'a str,
    pub points: Vec<(Timestamp, f64)>,
    pub dashed: bool,
    /// Shade the area under it.
    pub area: bool,
}

/// Lines over time from `from` to `to`, with a "now" mark when it falls inside.
pub(super) fn lines(
    id: &str,
    title: &str,
    series: &[Line],
    (from, to): (Timestamp, Timestamp),
    now: Option<Timestamp>,
    x_label: &dyn Fn(Timestamp) -> String,
    fmt: &dyn Fn(f64) -> String,
) -> String {
    let mut c = Canvas::new(id, title, 260.0);
    let max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    c.axis(max, fmt);
    let span = (to.as_second() - from.as_second()).max(1) as f64;
    let plot_w = W - LEFT - RIGHT;
    let x = |t: Timestamp| {
        LEFT + plot_w * ((t.as_second() - from.as_second()) as f64 / span).clamp(0.0, 1.0)
    };
    for (at, text, anchor) in time_ticks(from, span, &x, x_label) {
        c.label(at, &text, anchor);
    }
    for s in series {
        if s.points.is_empty() {
            continue;
        }
        let pts: Vec<String> = s
            .points
            .iter()
            .map(|&(t, v)| format!("{:.1},{:.1}", x(t), c.y(v)))
            .collect();
        if s.area {
            let base = c.y(0.0);
            let _ = write!(
                c.out,
                r#"<polygon points="{:.1},{base:.1} {} {:.1},{base:.1}" fill="{}" fill-opacity="0.18"/>"#,
                x(s.points[0].0),
                pts.join(" "),
                x(s.points[s.points.len() - 1].0),
                s.color
            );
        }
        let _ = write!(
            c.out,
            r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2.2"{}><title>{}</title></polyline>"#,
            pts.join(" "),
            s.color,
            if s.dashed {
                r#" stroke-dasharray="7 4""#
            } else {
                ""
            },
            esc(s.name)
        );
    }
    if let Some(now) = now.filter(|n| *n >= from && *n <= to) {
        let nx = x(now);
        // The word goes on the side of the line with room for it, inside the chart.
        let (tx, anchor) = if nx + 3.0 + label_width("now") <= W - RIGHT {
            (nx + 3.0, "start")
        } else {
            (nx - 3.0, "end")
        };
        let _ = write!(
            c.out,
            r#"<line x1="{nx:.1}" x2="{nx:.1}" y1="{TOP}" y2="{:.1}" stroke="{BLUE}" stroke-dasharray="3 3"/><text x="{tx:.1}" y="{}" text-anchor="{anchor}" fill="{BLUE}">now</text>"#,
            c.h - BOTTOM,
            TOP + 10.0
        );
    }
    c.finish()
}

/// The labels of a time axis: as many evenly spaced ticks (at most five) as fit without two labels
/// meeting, the first and last flush with the chart's ends.
fn time_ticks(
    from: Timestamp,
    span: f64,
    x: &dyn Fn(Timestamp) -> f64,
    x_label: &dyn Fn(Timestamp) -> String,
) -> Vec<(f64, String, &'static str)> {
    for n in (2..=5usize).rev() {
        let ticks: Vec<(f64, String, &'static str)> = (0..n)
            .map(|i| {
                let t = Timestamp::from_second(
                    from.as_second() + (span * i as f64 / (n - 1) as f64) as i64,
                )
                .unwrap_or(from);
                let anchor = match i {
                    0 => "start",
                    _ if i == n - 1 => "end",
                    _ => "middle",
                };
                (x(t), x_label(t), anchor)
            })
            .collect();
        let extents: Vec<(f64, f64)> = ticks
            .iter()
            .map(|(at, text, anchor)| extent(*at, label_width(text), anchor))
            .collect();
        if apart(&extents) {
            return ticks;
        }
    }
    // Not even the two ends fit: the start alone.
    let first = x_label(from);
    vec![(x(from), first, "start")]
}

/// Horizontal bars, a label above each: long labels (error types, stall causes) stay readable on
/// a phone.
pub(super) fn bars(
    id: &str,
    title: &str,
    rows: &[(String, f64, &str)],
    fmt: &dyn Fn(f64) -> String,
) -> String {
    const ROW: f64 = 38.0;
    let h = 8.0 + ROW * rows.len() as f64;
    let mut c = Canvas::new(id, title, h);
    let max = rows
        .iter()
        .map(|r| r.1)
        .fold(0.0, f64::max)
        .max(f64::MIN_POSITIVE);
    let room = W - 8.0 - 90.0;
    for (i, (label, v, color)) in rows.iter().enumerate() {
        let y = 6.0 + ROW * i as f64;
        let w = (room * v / max).max(1.0);
        let _ = write!(
            c.out,
            r#"<text x="8" y="{:.1}" fill="{DARK}">{}</text><rect x="8" y="{:.1}" width="{w:.1}" height="14" rx="2" fill="{color}"><title>{}: {}</title></rect><text x="{:.1}" y="{:.1}" fill="{DARK}">{}</text>"#,
            y + 11.0,
            esc(&crate::format::clip(label, 90)),
            y + 16.0,
            esc(label),
            esc(&fmt(*v)),
            8.0 + w + 6.0,
            y + 27.5,
            esc(&fmt(*v))
        );
    }
    c.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_end_on_round_numbers_above_the_data() {
        assert_eq!(nice(83_000.0), (100_000.0, 20_000.0));
        assert_eq!(nice(22_000.0), (25_000.0, 5_000.0));
        assert_eq!(nice(0.93), (1.0, 0.2));
        assert_eq!(nice(7.0), (8.0, 2.0));
        assert_eq!(nice(0.0), (1.0, 0.25));
        assert_eq!(nice(f64::NAN), (1.0, 0.25));
    }

    #[test]
    fn time_labels_never_meet_and_now_stays_inside() {
        let from: Timestamp = "2027-01-04T08:00:00Z".parse().unwrap();
        let to = from + jiff::SignedDuration::from_hours(12);
        let span = (to.as_second() - from.as_second()) as f64;
        let x = |t: Timestamp| {
            LEFT + (W - LEFT - RIGHT) * (t.as_second() - from.as_second()) as f64 / span
        };
        for label in ["4 Jan", "4 Jan 08:00", "Mon 4 Jan 2027 08:00 GMT"] {
            let ticks = time_ticks(from, span, &x, &|_| label.to_string());
            let extents: Vec<(f64, f64)> = ticks
                .iter()
                .map(|(at, text, anchor)| extent(*at, label_width(text), anchor))
                .collect();
            assert!(apart(&extents), "{label}: {ticks:?}");
            assert!(
                extents
                    .iter()
                    .all(|e| e.0 >= LEFT - 0.1 && e.1 <= W - RIGHT + 0.1)
            );
        }
        assert_eq!(time_ticks(from, span, &x, &|_| "4 Jan".into()).len(), 5);
        let svg = lines(
            "c",
            "t",
            &[],
            (from, to),
            Some(to),
            &|_| "4 Jan".into(),
            &|v| format!("{v}"),
        );
        assert!(
            svg.contains(r##"text-anchor="end" fill="#1565c0">now</text>"##),
            "{svg}"
        );
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc(r#"<b>"O'Neil" & co</b>"#),
            "&lt;b&gt;&quot;O&#39;Neil&quot; &amp; co&lt;/b&gt;"
        );
    }
}
