//! The rule set, compiled: `agents/agents.toml` (or `agent.rules_file`)
//! with the configured rules in front, the generic pattern list, and the
//! source-network table. Compiled exactly once per configuration load (a
//! start or a SIGHUP): [`compile_count`] lets a test prove it.

use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ipnet::IpNet;
use regex::{Regex, RegexSet, RegexSetBuilder};

use super::matcher::Matcher;
use serde::Deserialize;

use super::config::{AgentConfig, AgentRule};
use super::person::{alternation, lines, Person, DFA_CACHE_LIMIT, REGEX_SIZE_LIMIT};
use crate::event::{AgentKind, EventType};

/// The built-in rules and the generic pattern list they name.
const BUILTIN_RULES: &str = include_str!("../../../agents/agents.toml");
const BUILTIN_PATTERNS: &str = include_str!("../../../agents/vendor/isbot/patterns-rust.txt");
/// Where `[generic].patterns` of the built-in file points.
const BUILTIN_PATTERNS_PATH: &str = "vendor/isbot/patterns-rust.txt";

/// Rule sets compiled by this process, for tests that count compiles.
static COMPILES: AtomicUsize = AtomicUsize::new(0);

/// How many rule sets this process has compiled ([`Rules::load`] calls that
/// got as far as compiling). A start compiles one, a SIGHUP one more.
pub fn compile_count() -> usize {
    COMPILES.load(Ordering::Relaxed)
}

/// Source networks and ASNs to rule indices, for a lookup per request that
/// looks at a few candidates instead of every network of every rule.
#[derive(Default)]
pub(super) struct NetTable {
    /// IPv4 networks by first octet: (network, mask, rule).
    v4: Vec<Vec<(u32, u32, u16)>>,
    v6: Vec<(u128, u128, u16)>,
    /// (ASN, rule), sorted.
    asns: Vec<(u32, u16)>,
}

impl NetTable {
    fn build(rules: &[Rule]) -> NetTable {
        let mut t = NetTable {
            v4: vec![Vec::new(); 256],
            ..NetTable::default()
        };
        for (i, r) in rules.iter().enumerate() {
            let i = i as u16;
            for n in &r.networks {
                match n {
                    IpNet::V4(n) => {
                        let (net, mask) = (u32::from(n.network()), u32::from(n.netmask()));
                        let first = (net >> 24) as usize;
                        let last = ((net | !mask) >> 24) as usize;
                        for b in &mut t.v4[first..=last] {
                            b.push((net, mask, i));
                        }
                    }
                    IpNet::V6(n) => {
                        t.v6.push((u128::from(n.network()), u128::from(n.netmask()), i))
                    }
                }
            }
            for &a in &r.asns {
                t.asns.push((a, i));
            }
        }
        t.asns.sort_unstable();
        t
    }

    /// Rules whose networks or ASNs hold the client, in rule order.
    pub(super) fn matches(&self, ip: IpAddr, asn: Option<u32>, out: &mut Vec<u16>) {
        match ip {
            IpAddr::V4(v4) => {
                let a = u32::from(v4);
                out.extend(
                    self.v4[(a >> 24) as usize]
                        .iter()
                        .filter(|(net, mask, _)| a & mask == *net)
                        .map(|(_, _, i)| *i),
                );
            }
            IpAddr::V6(v6) => {
                let a = u128::from(v6);
                out.extend(
                    self.v6
                        .iter()
                        .filter(|(net, mask, _)| a & mask == *net)
                        .map(|(_, _, i)| *i),
                );
            }
        }
        if let Some(asn) = asn {
            let from = self.asns.partition_point(|(a, _)| *a < asn);
            out.extend(
                self.asns[from..]
                    .iter()
                    .take_while(|(a, _)| *a == asn)
                    .map(|(_, i)| *i),
            );
        }
        if out.len() > 1 {
            out.sort_unstable();
            out.dedup();
        }
    }
}

/// A rules file (`agents/agents.toml`'s format).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[allow(dead_code)]
    version: u32,
    generic: Option<GenericDef>,
    #[serde(default)]
    rule: Vec<AgentRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GenericDef {
    kind: AgentKind,
    /// A pattern list, relative to the rules file.
    patterns: String,
    #[serde(default)]
    unless: Vec<String>,
    #[serde(default)]
    #[allow(dead_code)]
    source: Vec<String>,
    #[serde(default)]
    #[allow(dead_code)]
    license: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    version: Option<String>,
}

/// A rule set that cannot be used, with the config key at fault; the
/// caller maps it (start-up: a usage error; SIGHUP: a failed reload).
#[derive(Debug, thiserror::Error)]
#[error("config key `{key}`: {msg}")]
pub struct RulesError {
    pub key: String,
    pub msg: String,
}

fn err(key: impl Into<String>, msg: impl Into<String>) -> RulesError {
    RulesError {
        key: key.into(),
        msg: msg.into(),
    }
}

/// Route bits of a rule.
const ALL_ROUTES: u8 = 0b1111;

pub(super) fn route_bit(r: EventType) -> u8 {
    1 << (r as u8)
}

/// One compiled rule.
#[derive(Debug)]
pub(super) struct Rule {
    pub(super) name: Arc<str>,
    kind: AgentKind,
    click_kind: AgentKind,
    routes: u8,
    networks: Vec<IpNet>,
    asns: Vec<u32>,
    pub(super) needs_other_signal: bool,
}

impl Rule {
    pub(super) fn applies(&self, route: EventType) -> bool {
        self.routes & route_bit(route) != 0
    }

    pub(super) fn kind_on(&self, route: EventType) -> AgentKind {
        if route == EventType::Click {
            self.click_kind
        } else {
            self.kind
        }
    }
}

/// The generic pattern set for machines that name themselves.
pub(super) struct Generic {
    pub(super) kind: AgentKind,
    pub(super) any: Matcher,
    pub(super) unless: RegexSet,
}

/// The compiled rules.
pub struct Rules {
    pub(super) rules: Vec<Rule>,
    pub(super) nets: NetTable,
    /// Every rule's `ua` patterns; `ua_owner[i]` is pattern i's rule.
    pub(super) ua: Matcher,
    pub(super) ua_owner: Vec<u16>,
    pub(super) generic: Option<Generic>,
    /// Recognises a person's software, before the generic set may judge.
    pub(super) person: Person,
}

impl Rules {
    /// Compiles the configured rules: `agent.rules_file` (or the built-in
    /// file) with `agent.rules`, `agent.ua_rules` and `agent.ip_rules` in
    /// front. Errors name the key at fault.
    pub fn load(cfg: &AgentConfig) -> Result<Rules, RulesError> {
        let (file, patterns) = if cfg.rules_file.as_os_str().is_empty() {
            let f: RulesFile = toml::from_str(BUILTIN_RULES)
                .map_err(|e| err("agent.rules_file", format!("built-in rules: {e}")))?;
            let p = match &f.generic {
                Some(g) if g.patterns == BUILTIN_PATTERNS_PATH => Some(BUILTIN_PATTERNS.to_owned()),
                Some(_) => return Err(err("agent.rules_file", "built-in generic path")),
                None => None,
            };
            (f, p)
        } else {
            read_file(&cfg.rules_file)?
        };
        let mut defs: Vec<(String, AgentRule)> = Vec::new();
        for (i, r) in cfg.ua_rules.iter().enumerate() {
            let name = r.name.clone().unwrap_or_default();
            defs.push((
                format!("agent.ua_rules[{i}]"),
                AgentRule {
                    ua: vec![regex::escape(&r.pattern)],
                    ..AgentRule::new(name, r.kind)
                },
            ));
        }
        for (i, r) in cfg.ip_rules.iter().enumerate() {
            defs.push((
                format!("agent.ip_rules[{i}]"),
                AgentRule {
                    networks: vec![r.cidr],
                    ..AgentRule::new(r.name.clone(), r.kind)
                },
            ));
        }
        for (i, r) in cfg.rules.iter().enumerate() {
            defs.push((format!("agent.rules[{i}]"), r.clone()));
        }
        let configured: Vec<&str> = cfg.rules.iter().map(|r| r.name.as_str()).collect();
        let file_key = if cfg.rules_file.as_os_str().is_empty() {
            "agents/agents.toml (built in)".to_owned()
        } else {
            "agent.rules_file".to_owned()
        };
        for (i, r) in file.rule.into_iter().enumerate() {
            if !configured.contains(&r.name.as_str()) {
                defs.push((format!("{file_key} rule {i} ({})", r.name), r));
            }
        }
        let mut rules = Vec::with_capacity(defs.len());
        let mut ua_patterns = Vec::new();
        let mut ua_owner = Vec::new();
        for (key, d) in &defs {
            if d.ua.is_empty() && d.networks.is_empty() && d.asns.is_empty() {
                return Err(err(key.as_str(), "a rule needs ua, networks or asns"));
            }
            let mut routes = 0;
            for r in &d.routes {
                routes |= match r.as_str() {
                    "open" => route_bit(EventType::Open),
                    "click" => route_bit(EventType::Click),
                    "unsubscribe" => route_bit(EventType::Unsubscribe),
                    "beacon" => route_bit(EventType::Beacon),
                    other => return Err(err(key.as_str(), format!("unknown route {other:?}"))),
                };
            }
            for p in &d.ua {
                if let Err(e) = Regex::new(p) {
                    return Err(err(key.as_str(), format!("ua pattern {p:?}: {e}")));
                }
                ua_patterns.push(p.clone());
                ua_owner.push(rules.len() as u16);
            }
            rules.push(Rule {
                name: Arc::from(d.name.as_str()),
                kind: d.kind,
                click_kind: d.click_kind.unwrap_or(d.kind),
                routes: if routes == 0 { ALL_ROUTES } else { routes },
                networks: d.networks.clone(),
                asns: d.asns.clone(),
                needs_other_signal: d.needs_other_signal,
            });
        }
        let ua = Matcher::set(&ua_patterns, true, REGEX_SIZE_LIMIT, DFA_CACHE_LIMIT)
            .map_err(|e| err(file_key.as_str(), format!("ua patterns: {e}")))?;
        let person = Person::new(file.generic.as_ref().and(patterns.as_deref()))
            .map_err(|e| err(file_key.as_str(), e.to_string()))?;
        let generic = match (file.generic, patterns) {
            (Some(g), Some(text)) => {
                let joined = alternation(lines(&text));
                let any = Matcher::one(&joined, true, REGEX_SIZE_LIMIT, DFA_CACHE_LIMIT)
                    .map_err(|e| err(file_key.as_str(), format!("generic patterns: {e}")))?;
                let unless = RegexSetBuilder::new(&g.unless)
                    .case_insensitive(true)
                    .build()
                    .map_err(|e| err(file_key.as_str(), format!("generic unless: {e}")))?;
                Some(Generic {
                    kind: g.kind,
                    any,
                    unless,
                })
            }
            _ => None,
        };
        COMPILES.fetch_add(1, Ordering::Relaxed);
        Ok(Rules {
            person,
            nets: NetTable::build(&rules),
            rules,
            ua,
            ua_owner,
            generic,
        })
    }

    /// Rules in evaluation order.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

fn read_file(path: &Path) -> Result<(RulesFile, Option<String>), RulesError> {
    let key = "agent.rules_file";
    let text = std::fs::read_to_string(path)
        .map_err(|e| err(key, format!("cannot read {}: {e}", path.display())))?;
    let f: RulesFile =
        toml::from_str(&text).map_err(|e| err(key, format!("{}: {e}", path.display())))?;
    let patterns = match &f.generic {
        Some(g) => {
            let p = path.parent().unwrap_or(Path::new(".")).join(&g.patterns);
            Some(
                std::fs::read_to_string(&p)
                    .map_err(|e| err(key, format!("generic patterns {}: {e}", p.display())))?,
            )
        }
        None => None,
    };
    Ok((f, patterns))
}
