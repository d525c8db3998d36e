//! The agent section of the configuration (`[agent]`): its rules and
//! thresholds. The types live here, beside the code that compiles them, so
//! `config` imports them and this module imports nothing of `config`.

use std::path::PathBuf;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::event::AgentKind;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UaRule {
    /// Case-insensitive substring of the User-Agent.
    pub pattern: String,
    pub kind: AgentKind,
    /// The `agent.name` of a match.
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IpRule {
    /// Source network.
    pub cidr: IpNet,
    pub kind: AgentKind,
    /// The `agent.name` of a match.
    pub name: String,
}

/// One agent rule, as in `agents/agents.toml` (its header documents each
/// field) or in `agent.rules`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AgentRule {
    /// The event's `agent.name`; a configured rule replaces a built-in one
    /// of the same name.
    pub name: String,
    /// The verdict on opens, unsubscribes and beacons.
    pub kind: AgentKind,
    /// The verdict on clicks; `kind` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub click_kind: Option<AgentKind>,
    /// Routes it applies to (open, click, unsubscribe, beacon); all when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<String>,
    /// User-Agent regexes (Rust syntax, case-insensitive).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ua: Vec<String>,
    /// Source networks (the full client address).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<IpNet>,
    /// Source ASNs (needs `geoip.asn_db`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub asns: Vec<u32>,
    /// A network match alone is not proof: it decides only with another
    /// machine signal (HEAD, timing, a burst, a generic UA match).
    #[serde(default)]
    pub needs_other_signal: bool,
    /// How the networks are known: published, observed, registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
    /// Where each fact comes from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl AgentRule {
    /// A rule with a name and a verdict and nothing that matches yet.
    pub fn new(name: String, kind: AgentKind) -> AgentRule {
        AgentRule {
            name,
            kind,
            click_kind: None,
            routes: vec![],
            ua: vec![],
            networks: vec![],
            asns: vec![],
            needs_other_signal: false,
            evidence: None,
            source: vec![],
            note: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// A click sooner than this after the token's send time is a scanner.
    pub min_click_secs: i64,
    /// A rules file replacing the built-in `agents/agents.toml`; empty: built in.
    pub rules_file: PathBuf,
    /// Rules added in front of the file's; one named like a file rule replaces it.
    pub rules: Vec<AgentRule>,
    /// Distinct links of one message one source may fetch within
    /// `burst_window` before it is a scanner (`reason: "burst"`).
    pub burst_links: usize,
    /// The window of a burst.
    #[serde(with = "humantime_serde")]
    pub burst_window: std::time::Duration,
    /// Deprecated: `burst_window` in milliseconds, still read (with a warning).
    #[serde(default, skip_serializing)]
    pub burst_window_ms: Option<u64>,
    /// Messages and sources a burst is watched for at once (bounded memory).
    pub burst_entries: usize,
    /// Extra User-Agent rules, checked before the built-in ones.
    pub ua_rules: Vec<UaRule>,
    /// Extra source-network rules, checked before the built-in ones.
    pub ip_rules: Vec<IpRule>,
    /// Distinct User-Agents kept parsed in memory.
    pub ua_cache_entries: usize,
}
