//! The admin listener's page for people (contract §4, `/`): this node's
//! campaign table and its events per second by type over the last minutes,
//! as an inline SVG chart. Rendered on the server and refreshed by the
//! browser every few seconds: no script, no external assets, a strict CSP.
//!
//! The rates come from the recorder's own per-type totals, sampled once a
//! second off the request path ([`crate::record::Rates`]); the metrics text
//! is rendered only when `/metrics` is scraped.

use std::fmt::Write;

use crate::event::EventType;
use crate::record::HISTORY;
use crate::routes::html::{escape, page_with};
use crate::stats::Stats;

/// Event types in the chart, with their colours.
const SERIES: [(EventType, &str); 4] = [
    (EventType::Open, "#1d4ed8"),
    (EventType::Click, "#b91c1c"),
    (EventType::Unsubscribe, "#6d28d9"),
    (EventType::Beacon, "#047857"),
];

/// The page.
pub fn render(stats: &Stats, rates: &[[u64; 4]], refresh_secs: u32) -> String {
    let mut body = String::with_capacity(8192);
    let campaigns = stats.totals();
    let _ = write!(
        body,
        "<h1>trackedge on {}</h1><p class=\"note\">This node's counts since it started \
         ({} campaigns); the fleet's are downstream, in ClickHouse. Refreshes every {refresh_secs} s.</p>",
        escape(&crate::node_name()),
        campaigns.len()
    );
    body.push_str(&chart(rates));
    body.push_str(
        "<table><caption>Campaigns</caption><thead><tr><th scope=\"col\">campaign</th>\
         <th scope=\"col\">opens</th><th scope=\"col\">clicks</th><th scope=\"col\">unsubscribes</th>\
         </tr></thead><tbody>",
    );
    for (name, t) in &campaigns {
        let _ = write!(
            body,
            "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(name),
            t.opens,
            t.clicks,
            t.unsubscribes
        );
    }
    if campaigns.is_empty() {
        body.push_str("<tr><td colspan=\"4\">No campaign yet.</td></tr>");
    }
    body.push_str("</tbody></table>");
    page_with(
        "trackedge",
        &body,
        &format!("<meta http-equiv=\"refresh\" content=\"{refresh_secs}\">"),
        STYLE,
    )
}

/// The page's style beyond the shared one; its CSP is `html::csp_for(STYLE)`.
pub const STYLE: &str =
    "main{max-width:56rem;margin-top:2rem}table{border-collapse:collapse;width:100%;\
margin-top:1rem}th,td{text-align:right;padding:.35rem .6rem;border-bottom:1px solid #ddd}\
th[scope=row],thead th:first-child{text-align:left}caption{text-align:left;font-weight:600;\
padding:.5rem 0}figure{margin:1rem 0}svg{max-width:100%;height:auto}.legend span{margin-right:1rem;\
font-size:.9rem}";

/// Events per second by type as an SVG line chart, with a legend.
fn chart(rates: &[[u64; 4]]) -> String {
    const W: f64 = 600.0;
    const H: f64 = 160.0;
    let peak = rates.iter().flatten().copied().max().unwrap_or(0).max(1) as f64;
    let now: [u64; 4] = rates.last().copied().unwrap_or_default();
    let mut svg = format!(
        "<figure><figcaption>Events per second, last {} s (peak {peak})</figcaption>\
         <svg viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"events per second by type\">\
         <rect width=\"{W}\" height=\"{H}\" fill=\"#fafafa\" stroke=\"#ddd\"/>",
        rates.len()
    );
    let step = W / (HISTORY as f64);
    for (i, (_, colour)) in SERIES.iter().enumerate() {
        let points: Vec<String> = rates
            .iter()
            .enumerate()
            .map(|(x, r)| {
                let x = W - (rates.len() - 1 - x) as f64 * step;
                let y = H - r[i] as f64 / peak * (H - 10.0) - 5.0;
                format!("{x:.1},{y:.1}")
            })
            .collect();
        if points.len() > 1 {
            let _ = write!(
                svg,
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
                points.join(" ")
            );
        }
    }
    svg.push_str("</svg><div class=\"legend\">");
    for (i, (ty, colour)) in SERIES.iter().enumerate() {
        let _ = write!(
            svg,
            "<span><svg width=\"12\" height=\"12\" aria-hidden=\"true\"><rect width=\"12\" height=\"12\" fill=\"{colour}\"/></svg> {} <b id=\"rate-{}\">{}</b>/s</span>",
            ty.as_str(),
            ty.as_str(),
            now[i]
        );
    }
    svg.push_str("</div></figure>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_differences_of_samples() {
        let r = crate::record::Rates::default();
        r.sample([0, 0, 0, 0]);
        r.sample([5, 1, 0, 0]);
        r.sample([15, 1, 0, 2]);
        assert_eq!(r.per_second(), vec![[5, 1, 0, 0], [10, 0, 0, 2]]);
        let svg = chart(&r.per_second());
        assert!(svg.contains("<polyline") && svg.contains("id=\"rate-open\">10<"));
    }
}
