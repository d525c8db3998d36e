//! A flood of 1,000,000 distinct campaign ids leaves memory bounded. In its
//! own test binary so the process's resident size is this test's alone.

use std::time::Instant;

use trackedge::config::Config;
use trackedge::event::{AgentKind, EventType};
use trackedge::stats::{Hit, Stats};

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn a_million_campaigns_leave_memory_bounded() {
    let cfg = Config::from_toml("").unwrap();
    let stats = Stats::new(&cfg.stats);
    let before = rss_kib();
    let start = Instant::now();
    for i in 0..1_000_000u32 {
        let campaign = format!("flood-{i}");
        let recipient = format!("r-{i}");
        // The last campaigns carry recipients, so every campaign kept at the
        // end holds both full unique-recipient estimators: the worst case.
        // (Earlier ones do not, only to keep this debug-build test quick:
        // filling 16 KiB of registers per campaign a million times is slow
        // unoptimized, and those campaigns are evicted anyway.)
        let with_recipient = i >= 1_000_000 - 2 * cfg.stats.max_campaigns as u32;
        for kind in [EventType::Open, EventType::Click] {
            stats.record(&Hit {
                kind,
                campaign: &campaign,
                recipient: with_recipient.then_some(recipient.as_str()),
                link: Some("hero"),
                country: Some("US"),
                agent_kind: AgentKind::Human,
                agent_name: Some("gmail_image_proxy"),
                now_ms: i as i64,
            });
        }
    }
    let after = rss_kib();
    let grew_mib = (after.saturating_sub(before)) as f64 / 1024.0;
    println!(
        "1,000,000 campaigns (open + click each) in {:.1?}: {} kept (cap {}), RSS {} -> {} KiB (+{grew_mib:.1} MiB)",
        start.elapsed(),
        stats.len(),
        cfg.stats.max_campaigns,
        before,
        after
    );
    assert!(stats.len() <= cfg.stats.max_campaigns);
    assert!(
        stats.campaign("flood-999999").is_some(),
        "recent campaigns are kept"
    );
    // 1,000 campaigns with both estimators and a link each: about 17 MiB.
    assert!(grew_mib < 48.0, "memory grew {grew_mib:.1} MiB");
}
