//! Line charts as inline SVG with labelled axes: no script, no external
//! asset, nothing a strict CSP refuses (presentation attributes only).

use std::fmt::Write;

/// One line of a chart.
pub struct Line<'a> {
    pub label: &'a str,
    pub colour: &'a str,
    /// Drawn dashed: a part of another line (people's share, say).
    pub dashed: bool,
    pub values: Vec<u64>,
}

/// What the axes say.
pub struct Axes<'a> {
    /// Read by screen readers: what the chart shows.
    pub title: &'a str,
    /// Under the x axis, e.g. "minutes ago".
    pub x_title: &'a str,
    /// Beside the y axis, e.g. "per minute".
    pub y_title: &'a str,
    /// Labels under the x axis at even spacing, first at the left edge.
    pub x_labels: &'a [&'a str],
}

// A narrow drawing, so its text stays legible when a phone shrinks it;
// shown at most [`MAX_WIDTH`] pixels wide on a large screen.
const W: f64 = 520.0;
const H: f64 = 250.0;
const MAX_WIDTH: u32 = 640;
const LEFT: f64 = 66.0;
const RIGHT: f64 = 14.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 50.0;

/// The smallest 1, 2 or 5 times a power of ten at or above `v` (at least 1).
fn nice(v: u64) -> u64 {
    let mut p = 1u64;
    loop {
        for m in [1, 2, 5] {
            if m * p >= v.max(1) {
                return m * p;
            }
        }
        p = p.saturating_mul(10);
    }
}

/// The chart, then a legend naming each line with `legend_value` of it.
pub fn render(axes: &Axes<'_>, lines: &[Line<'_>], legend: impl Fn(&Line<'_>) -> String) -> String {
    let points = lines.iter().map(|l| l.values.len()).max().unwrap_or(0);
    let peak = lines
        .iter()
        .flat_map(|l| l.values.iter())
        .copied()
        .max()
        .unwrap_or(0);
    let top = nice(peak);
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let y_of = |v: u64| TOP + ph - v as f64 / top as f64 * ph;
    let x_of = |i: usize| LEFT + pw * i as f64 / (points.max(2) - 1) as f64;
    let mut svg = format!(
        "<figure><svg width=\"{MAX_WIDTH}\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\">\
         <rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{pw}\" height=\"{ph}\" fill=\"#fafafa\" stroke=\"#d4d4d8\"/>",
        crate::routes::html::escape(axes.title)
    );
    // y axis: 0, half and the top, with grid lines.
    for v in [0, top / 2, top] {
        let y = y_of(v);
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#e4e4e7\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"17\" text-anchor=\"end\" fill=\"#3f3f46\">{v}</text>",
            LEFT + pw,
            LEFT - 6.0,
            y + 5.0
        );
    }
    let _ = write!(
        svg,
        "<text transform=\"translate(16 {:.1}) rotate(-90)\" font-size=\"17\" text-anchor=\"middle\" fill=\"#3f3f46\">{}</text>",
        TOP + ph / 2.0,
        crate::routes::html::escape(axes.y_title)
    );
    // x axis labels, evenly spread, and the axis title.
    let n = axes.x_labels.len();
    for (i, label) in axes.x_labels.iter().enumerate() {
        let x = LEFT + pw * i as f64 / (n.max(2) - 1) as f64;
        let anchor = match i {
            0 => "start",
            i if i + 1 == n => "end",
            _ => "middle",
        };
        let _ = write!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#71717a\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"17\" text-anchor=\"{anchor}\" fill=\"#3f3f46\">{}</text>",
            TOP + ph,
            TOP + ph + 4.0,
            TOP + ph + 21.0,
            crate::routes::html::escape(label)
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"17\" text-anchor=\"middle\" fill=\"#3f3f46\">{}</text>",
        LEFT + pw / 2.0,
        H - 6.0,
        crate::routes::html::escape(axes.x_title)
    );
    for l in lines {
        let pts: Vec<String> = l
            .values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x_of(i + points - l.values.len()), y_of(*v)))
            .collect();
        if pts.len() > 1 {
            let dash = if l.dashed {
                " stroke-dasharray=\"5 3\""
            } else {
                ""
            };
            let _ = write!(
                svg,
                "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2.5\"{dash} points=\"{}\"/>",
                l.colour,
                pts.join(" ")
            );
        }
    }
    svg.push_str("</svg><figcaption class=\"legend\">");
    for l in lines {
        let dash = if l.dashed {
            " stroke-dasharray=\"4 2\""
        } else {
            ""
        };
        let _ = write!(
            svg,
            "<span><svg width=\"18\" height=\"10\" aria-hidden=\"true\"><line x1=\"0\" y1=\"5\" x2=\"18\" y2=\"5\" stroke=\"{}\" stroke-width=\"3\"{dash}/></svg> {}</span>",
            l.colour,
            legend(l)
        );
    }
    svg.push_str("</figcaption></figure>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_are_labelled_and_scaled_to_a_round_top() {
        assert_eq!(
            (nice(0), nice(1), nice(3), nice(7), nice(12), nice(500)),
            (1, 1, 5, 10, 20, 500)
        );
        let svg = render(
            &Axes {
                title: "opens",
                x_title: "minutes ago",
                y_title: "per minute",
                x_labels: &["-60", "-30", "now"],
            },
            &[Line {
                label: "opens",
                colour: "#000",
                dashed: false,
                values: vec![1, 7, 3],
            }],
            |l| l.label.to_owned(),
        );
        for want in [
            ">minutes ago<",
            ">per minute<",
            ">-60<",
            ">now<",
            ">10<",
            ">0<",
            "<polyline",
        ] {
            assert!(svg.contains(want), "{want}: {svg}");
        }
    }
}
