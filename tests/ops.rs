//! The ops package: the real `/metrics` output passes `promtool check
//! metrics`, the alert rules pass `promtool check rules`, and the Grafana
//! dashboard parses and queries only metrics trackedge exports.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;
use trackedge::token::TokenType;

fn promtool(args: &[&str], stdin: Option<&[u8]>) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool, from Debian's prometheus package (.ci/run installs it)");
    if let Some(input) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[tokio::test(flavor = "multi_thread")]
async fn promtool_accepts_the_metrics() {
    let srv = TestServer::start("").await;
    let mut c = claims(TokenType::Open, "lint");
    c.r = Some("r".into());
    get(&srv.tracked(&mut c)).await;
    get(&srv.url("/o/bad.gif")).await;
    get(&srv.url("/c/bad")).await;
    get(&srv.url("/nope")).await;
    let body = get(&srv.admin_url("/metrics")).await.body;
    let text = String::from_utf8_lossy(&body);
    for name in [
        "trackedge_http_requests_total",
        "trackedge_events_total",
        "trackedge_invalid_tokens_total",
    ] {
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "no help text for {name}"
        );
    }
    let (ok, report) = promtool(&["check", "metrics"], Some(&body));
    assert!(ok, "promtool: {report}");
    assert!(report.trim().is_empty(), "promtool lint: {report}");
    srv.stop().await;
}

#[test]
fn promtool_accepts_the_alert_rules() {
    let rules = repo("deploy/prometheus/alerts.yml");
    let (ok, report) = promtool(&["check", "rules", rules.to_str().unwrap()], None);
    assert!(ok, "promtool: {report}");
}

/// Every `trackedge_*` name the code can export (histograms add suffixes).
fn exported() -> BTreeSet<String> {
    let src = std::fs::read_to_string(repo("src/metrics.rs")).unwrap();
    let mut names = BTreeSet::new();
    for part in src.split('"').skip(1).step_by(2) {
        if part.starts_with("trackedge_") {
            names.insert(part.to_owned());
            if part.ends_with("_seconds") {
                for s in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{part}{s}"));
                }
            }
        }
    }
    names
}

#[test]
fn the_dashboard_queries_only_exported_metrics() {
    let text = std::fs::read_to_string(repo("deploy/grafana/trackedge-dashboard.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).expect("dashboard JSON parses");
    let exported = exported();
    let mut queried = BTreeSet::new();
    for panel in dash["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            for (i, _) in expr.match_indices("trackedge_") {
                let name: String = expr[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                queried.insert(name);
            }
        }
    }
    assert!(queried.len() >= 10, "{queried:?}");
    let unknown: Vec<_> = queried.difference(&exported).collect();
    assert!(
        unknown.is_empty(),
        "the dashboard queries metrics trackedge does not export: {unknown:?}"
    );
    // The alert rules, too.
    let rules = std::fs::read_to_string(repo("deploy/prometheus/alerts.yml")).unwrap();
    for (i, _) in rules.match_indices("trackedge_") {
        let name: String = rules[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        assert!(
            exported.contains(&name),
            "alert rules use unknown metric {name}"
        );
    }
}
