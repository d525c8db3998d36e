//! The admin listener's pages for people (contract §4): `/`, this node's
//! campaigns with people's figures apart from machines' and its events
//! per second; and `/campaigns/{name}`, one campaign's figures, its opens
//! and clicks per minute over the last hour, its top links and the
//! machines that fetched its mail. Rendered on the server and refreshed by
//! the browser every few seconds: no script, no external assets, a strict
//! CSP.
//!
//! Figures come from [`Stats`] (the same as `/stats/campaigns/{name}`), the
//! rates from the recorder's per-type totals sampled once a second off the
//! request path ([`crate::record::Rates`]).

use std::fmt::Write;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::event::EventType;
use crate::record::HISTORY;
use crate::routes::html::{escape, page_with};
use crate::stats::{CampaignReport, KindReport, Stats, MINUTES};

mod chart;

use chart::{Axes, Line};

/// Event types in the events-per-second chart, with their colours.
const SERIES: [(EventType, &str); 4] = [
    (EventType::Open, "#1d4ed8"),
    (EventType::Click, "#b91c1c"),
    (EventType::Unsubscribe, "#6d28d9"),
    (EventType::Beacon, "#047857"),
];

/// Links listed on a campaign's page.
const TOP_LINKS: usize = 10;

/// What stays as it is in a campaign name in a URL path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The page's style beyond the shared one; its CSP is `html::csp_for(STYLE)`.
pub const STYLE: &str =
    "main{max-width:64rem;margin:1rem auto;padding:1.25rem}table{border-collapse:collapse;\
width:100%;font-variant-numeric:tabular-nums}th,td{text-align:right;padding:.35rem .55rem;\
border-bottom:1px solid #e4e4e7;white-space:nowrap}th[scope=row],thead th:first-child,\
.left{text-align:left}thead th{font-size:.85rem;color:#3f3f46;font-weight:600}\
caption{text-align:left;font-weight:600;padding:.5rem 0}.scroll{overflow-x:auto;margin:1rem 0}\
figure{margin:1rem 0}svg{max-width:100%;height:auto}.legend{font-size:.9rem}\
.legend span{margin-right:1rem;white-space:nowrap}h2{font-size:1.1rem;margin:1.5rem 0 .25rem}\
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(9rem,1fr));gap:.6rem;margin:1rem 0}\
.card{background:#f4f4f5;border-radius:8px;padding:.6rem .8rem}.card b{display:block;font-size:1.5rem}\
.card span{font-size:.85rem;color:#3f3f46}th.group{text-align:center;border-bottom:2px solid #d4d4d8}";

/// Click-to-open rate on people's unique figures, as text.
fn ctor(r: &CampaignReport) -> String {
    match r.opens.unique_human {
        0 => "–".to_owned(),
        o => format!("{:.1}%", r.clicks.unique_human as f64 * 100.0 / o as f64),
    }
}

fn machine(k: &KindReport) -> u64 {
    k.proxy + k.bot
}

/// The head both pages share: refreshing itself.
fn head(refresh_secs: u32) -> String {
    format!("<meta http-equiv=\"refresh\" content=\"{refresh_secs}\">")
}

/// The page at `/`.
pub fn render(stats: &Stats, rates: &[[u64; 4]], refresh_secs: u32) -> String {
    let mut body = String::with_capacity(16384);
    let names = stats.totals();
    let _ = write!(
        body,
        "<h1>trackedge on {}</h1><p class=\"note\">This node's counts since it started \
         ({} campaigns); the fleet's are downstream, in ClickHouse. People's figures leave out \
         image proxies and scanners, which open and click mail on their own. \
         Refreshes every {refresh_secs} s.</p>",
        escape(&crate::node_name()),
        names.len()
    );
    body.push_str(
        "<div class=\"scroll\"><table><caption>Campaigns</caption><thead>\
         <tr><th rowspan=\"2\" scope=\"col\">campaign</th>\
         <th colspan=\"3\" scope=\"colgroup\" class=\"group\">people</th>\
         <th colspan=\"4\" scope=\"colgroup\" class=\"group\">everyone</th>\
         <th colspan=\"2\" scope=\"colgroup\" class=\"group\">machines</th>\
         <th rowspan=\"2\" scope=\"col\">unsub&shy;scribes</th></tr>\
         <tr><th scope=\"col\">unique opens</th><th scope=\"col\">unique clicks</th>\
         <th scope=\"col\">click-to-open</th><th scope=\"col\">opens</th><th scope=\"col\">unique</th>\
         <th scope=\"col\">clicks</th><th scope=\"col\">unique</th><th scope=\"col\">opens</th>\
         <th scope=\"col\">clicks</th></tr></thead><tbody>",
    );
    let mut shown = 0;
    for name in names.keys() {
        // Evicted between the two reads: left out of this refresh.
        let Some(r) = stats.campaign(name) else {
            continue;
        };
        shown += 1;
        let _ = write!(
            body,
            "<tr data-campaign=\"{e}\"><th scope=\"row\"><a href=\"campaigns/{href}\">{e}</a></th>\
             <td data-k=\"opens.unique_human\">{}</td><td data-k=\"clicks.unique_human\">{}</td>\
             <td data-k=\"ctor\">{}</td><td data-k=\"opens.total\">{}</td>\
             <td data-k=\"opens.unique\">{}</td><td data-k=\"clicks.total\">{}</td>\
             <td data-k=\"clicks.unique\">{}</td><td data-k=\"opens.machine\">{}</td>\
             <td data-k=\"clicks.machine\">{}</td><td data-k=\"unsubscribes\">{}</td></tr>",
            r.opens.unique_human,
            r.clicks.unique_human,
            ctor(&r),
            r.opens.total,
            r.opens.unique,
            r.clicks.total,
            r.clicks.unique,
            machine(&r.opens),
            machine(&r.clicks),
            r.unsubscribes,
            e = escape(name),
            href = utf8_percent_encode(name, SEGMENT),
        );
    }
    if shown == 0 {
        body.push_str("<tr><td colspan=\"11\" class=\"left\">No campaign yet.</td></tr>");
    }
    body.push_str("</tbody></table></div><h2>Events per second</h2>");
    body.push_str(&rates_chart(rates));
    page_with("trackedge", &body, &head(refresh_secs), STYLE)
}

/// The page at `/campaigns/{name}`; None for a campaign not counted.
pub fn render_campaign(
    stats: &Stats,
    name: &str,
    now_ms: i64,
    refresh_secs: u32,
) -> Option<String> {
    let r = stats.campaign(name)?;
    let minutes = stats.activity(name, now_ms)?;
    let e = escape(name);
    let mut body = String::with_capacity(16384);
    let _ = write!(
        body,
        "<p><a href=\"../\">← all campaigns</a></p><h1>{e}</h1>\
         <p class=\"note\">This node's counts since it started. People's figures leave out image \
         proxies (which fetch images for a person, or for nobody) and scanners (which follow \
         every link). Refreshes every {refresh_secs} s.</p><div class=\"cards\">"
    );
    for (k, v, what) in [
        (
            "opens.unique_human",
            r.opens.unique_human.to_string(),
            "people who opened",
        ),
        (
            "clicks.unique_human",
            r.clicks.unique_human.to_string(),
            "people who clicked",
        ),
        ("ctor", ctor(&r), "click-to-open rate (people)"),
        ("unsubscribes", r.unsubscribes.to_string(), "unsubscribes"),
    ] {
        let _ = write!(
            body,
            "<div class=\"card\"><b data-k=\"{k}\">{v}</b><span>{what}</span></div>"
        );
    }
    body.push_str("</div>");
    body.push_str(&format!(
        "<h2>Opens and clicks per minute, last {MINUTES} minutes</h2>"
    ));
    let col = |f: fn(&crate::stats::Minute) -> u64| minutes.iter().map(f).collect::<Vec<_>>();
    body.push_str(&chart::render(
        &Axes {
            title: "opens and clicks per minute over the last hour",
            x_title: "minutes ago",
            y_title: "per minute",
            x_labels: &["60", "45", "30", "15", "now"],
        },
        &[
            Line {
                label: "opens",
                colour: "#1d4ed8",
                dashed: false,
                values: col(|m| m.opens),
            },
            Line {
                label: "of which people",
                colour: "#1d4ed8",
                dashed: true,
                values: col(|m| m.opens_human),
            },
            Line {
                label: "clicks",
                colour: "#b91c1c",
                dashed: false,
                values: col(|m| m.clicks),
            },
            Line {
                label: "of which people",
                colour: "#b91c1c",
                dashed: true,
                values: col(|m| m.clicks_human),
            },
        ],
        |l| format!("{} <b>{}</b>", l.label, l.values.iter().sum::<u64>()),
    ));
    body.push_str(
        "<h2>Opens and clicks, by who made them</h2><div class=\"scroll\"><table>\
         <thead><tr><th scope=\"col\"></th><th scope=\"col\">all</th><th scope=\"col\">unique recipients</th>\
         <th scope=\"col\">people</th><th scope=\"col\">people, unique</th>\
         <th scope=\"col\">image proxies</th><th scope=\"col\">scanners, bots</th></tr></thead><tbody>",
    );
    for (what, k) in [("opens", &r.opens), ("clicks", &r.clicks)] {
        let _ = write!(
            body,
            "<tr><th scope=\"row\">{what}</th><td data-k=\"{what}.total\">{}</td>\
             <td data-k=\"{what}.unique\">{}</td><td data-k=\"{what}.human\">{}</td>\
             <td data-k=\"{what}.unique_human\">{}</td><td data-k=\"{what}.proxy\">{}</td>\
             <td data-k=\"{what}.bot\">{}</td></tr>",
            k.total, k.unique, k.human, k.unique_human, k.proxy, k.bot
        );
    }
    let u = &r.unsubscribes_by_agent;
    let _ = write!(
        body,
        "<tr><th scope=\"row\">unsubscribes</th><td data-k=\"unsubscribes\">{}</td><td></td>\
         <td data-k=\"unsubscribes.human\">{}</td><td></td><td data-k=\"unsubscribes.proxy\">{}</td>\
         <td data-k=\"unsubscribes.bot\">{}</td></tr></tbody></table></div>",
        r.unsubscribes, u.human, u.proxy, u.bot
    );
    let mut links: Vec<_> = r.links.iter().collect();
    links.sort_by(|a, b| b.1.total.cmp(&a.1.total).then(a.0.cmp(b.0)));
    let _ = write!(
        body,
        "<h2>Top links ({} of {})</h2><div class=\"scroll\"><table><thead><tr>\
         <th scope=\"col\">link</th><th scope=\"col\">clicks</th><th scope=\"col\">unique</th>\
         </tr></thead><tbody>",
        links.len().min(TOP_LINKS),
        links.len()
    );
    for (link, l) in links.iter().take(TOP_LINKS) {
        let _ = write!(
            body,
            "<tr data-link=\"{e}\"><th scope=\"row\">{e}</th><td data-k=\"total\">{}</td><td data-k=\"unique\">{}</td></tr>",
            l.total,
            l.unique,
            e = escape(link)
        );
    }
    if links.is_empty() {
        body.push_str(
            "<tr><td colspan=\"3\" class=\"left\">No click with a link id yet.</td></tr>",
        );
    }
    body.push_str("</tbody></table></div>");
    for (caption, map) in [("Machines seen", &r.agents), ("Countries", &r.countries)] {
        let mut rows: Vec<_> = map.iter().collect();
        rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        if rows.is_empty() {
            continue;
        }
        let _ = write!(
            body,
            "<h2>{caption}</h2><div class=\"scroll\"><table><tbody>"
        );
        for (k, n) in rows.iter().take(TOP_LINKS) {
            let _ = write!(
                body,
                "<tr><th scope=\"row\">{}</th><td>{n}</td></tr>",
                escape(k)
            );
        }
        body.push_str("</tbody></table></div>");
    }
    Some(page_with(
        &format!("{name} · trackedge"),
        &body,
        &head(refresh_secs),
        STYLE,
    ))
}

/// Events per second by type over the last minutes, with a legend of the
/// latest rates.
fn rates_chart(rates: &[[u64; 4]]) -> String {
    let now: [u64; 4] = rates.last().copied().unwrap_or_default();
    let lines: Vec<Line<'_>> = SERIES
        .iter()
        .enumerate()
        .map(|(i, (ty, colour))| Line {
            label: ty.as_str(),
            colour,
            dashed: false,
            values: rates.iter().map(|r| r[i]).collect(),
        })
        .collect();
    let minutes = HISTORY / 60;
    let labels: Vec<String> = (0..=minutes)
        .rev()
        .map(|m| {
            if m == 0 {
                "now".to_owned()
            } else {
                m.to_string()
            }
        })
        .collect();
    let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
    chart::render(
        &Axes {
            title: "events per second by type",
            x_title: "minutes ago",
            y_title: "per second",
            x_labels: &labels,
        },
        &lines,
        |l| {
            let i = SERIES
                .iter()
                .position(|(t, _)| t.as_str() == l.label)
                .unwrap_or(0);
            format!("{} <b id=\"rate-{}\">{}</b>/s", l.label, l.label, now[i])
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::AgentKind;
    use crate::stats::Hit;

    #[test]
    fn rates_are_differences_of_samples() {
        let r = crate::record::Rates::default();
        r.sample([0, 0, 0, 0]);
        r.sample([5, 1, 0, 0]);
        r.sample([15, 1, 0, 2]);
        assert_eq!(r.per_second(), vec![[5, 1, 0, 0], [10, 0, 0, 2]]);
        let svg = rates_chart(&r.per_second());
        assert!(svg.contains("<polyline") && svg.contains("id=\"rate-open\">10<"));
    }

    #[test]
    fn pages_link_campaigns_and_escape_names() {
        let stats = Stats::new(&crate::config::Config::from_toml("").unwrap().stats);
        for (kind, agent_kind) in [
            (EventType::Open, AgentKind::Human),
            (EventType::Open, AgentKind::Proxy),
            (EventType::Click, AgentKind::Human),
        ] {
            stats.record(&Hit {
                kind,
                campaign: "<a&b> c",
                recipient: Some("r1"),
                link: Some("hero"),
                country: None,
                agent_kind,
                agent_name: None,
                now_ms: 0,
            });
        }
        let page = render(&stats, &[], 5);
        assert!(
            page.contains("href=\"campaigns/%3Ca%26b%3E%20c\">&lt;a&amp;b&gt; c</a>"),
            "{page}"
        );
        assert!(page.contains("data-k=\"ctor\">100.0%<"), "{page}");
        assert!(page.contains("data-k=\"opens.machine\">1<"), "{page}");
        let one = render_campaign(&stats, "<a&b> c", 1_000, 5).unwrap();
        assert!(one.contains("<h1>&lt;a&amp;b&gt; c</h1>"));
        assert!(one.contains("data-link=\"hero\""));
        assert!(one.contains(">minutes ago<"));
        assert!(render_campaign(&stats, "nope", 0, 5).is_none());
    }
}
