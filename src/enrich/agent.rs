//! Person, proxy or bot: the event's `agent`.
//!
//! `proxy` is a machine fetching for a person (Gmail's and Yahoo's image
//! proxies, Apple Mail Privacy Protection): the open happened, but its
//! time, place and device are the proxy's. `bot` is a machine acting on its
//! own (link scanners such as Microsoft Safe Links, previewers, crawlers,
//! HTTP libraries).
//!
//! The rules are data: `agents/agents.toml` (built in; its header documents
//! the format and the sources of every rule) with the vendored `isbot`
//! pattern list for machines that name themselves, or `agent.rules_file`,
//! plus `agent.rules`, `agent.ua_rules` and `agent.ip_rules` from the
//! configuration in front. Evaluation, first decision wins:
//!
//! 1. configured and file rules by User-Agent (reason `ua`);
//! 2. the generic pattern set, unless a guard for a person's client matches
//!    (reason `ua`; a network rule that also matches names it);
//! 3. rules by source network or ASN (reason `ip`); the same network can be
//!    a proxy on an open and a scanner on a click (`click_kind`); broad
//!    networks (`needs_other_signal`) decide only with another signal;
//! 4. HEAD (`method`), a click too soon after sending (`timing`), a burst of
//!    distinct links from one source (`burst`, see [`super::burst`]).
//!
//! User-Agent matching runs once per distinct string (one pass of a
//! `RegexSet` and one of a combined `Regex`) and is cached by
//! [`super::ua::UaCache`].

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use ipnet::IpNet;
use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use serde::Deserialize;

use crate::config::{AgentConfig, AgentRule, RuleKind};
use crate::event::{Agent, AgentKind, EventType};

/// The built-in rules and the generic pattern list they name.
const BUILTIN_RULES: &str = include_str!("../../agents/agents.toml");
const BUILTIN_PATTERNS: &str = include_str!("../../agents/vendor/isbot/patterns-rust.txt");
/// Where `[generic].patterns` of the built-in file points.
const BUILTIN_PATTERNS_PATH: &str = "vendor/isbot/patterns-rust.txt";

/// Compiled regexes may be this large (the generic set is ~200 patterns).
const REGEX_SIZE_LIMIT: usize = 64 << 20;

/// Rules by User-Agent remembered per UA: the first applicable one wins,
/// and no real UA matches more than a couple.
const UA_MATCHES: usize = 4;

/// What a User-Agent alone says; computed once per distinct UA (cached).
/// `Copy`: a cache hit copies it, no reference count shared between threads.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct UaVerdict {
    /// Rules whose `ua` matched, in evaluation order (the first `n`).
    rules: [u16; UA_MATCHES],
    n: u8,
    /// The generic pattern set matched (and no guard did).
    pub generic: bool,
}

impl UaVerdict {
    pub fn is_empty(&self) -> bool {
        self.n == 0 && !self.generic
    }

    /// Rules whose `ua` matched, in evaluation order.
    pub fn rules(&self) -> &[u16] {
        &self.rules[..self.n as usize]
    }
}

/// Source networks and ASNs to rule indices, for a lookup per request that
/// looks at a few candidates instead of every network of every rule.
#[derive(Default)]
struct NetTable {
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
    fn matches(&self, ip: IpAddr, asn: Option<u32>, out: &mut Vec<u16>) {
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

/// The request facts classification looks at.
pub struct Facts<'a> {
    pub route: EventType,
    pub method: &'a http::Method,
    /// The full client address, before anonymization.
    pub ip: IpAddr,
    /// The client's ASN, when the ASN database knows it.
    pub asn: Option<u32>,
    pub ua: Option<&'a UaVerdict>,
    /// The token's send time, unix seconds.
    pub sent_at: Option<i64>,
    pub now_secs: i64,
    /// This click is part of a burst of distinct links from one source.
    pub burst: bool,
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
    kind: RuleKind,
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

/// A rule set that cannot be used, with the config key at fault.
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

fn route_bit(r: EventType) -> u8 {
    1 << (r as u8)
}

fn kind_of(k: RuleKind) -> AgentKind {
    match k {
        RuleKind::Human => AgentKind::Human,
        RuleKind::Proxy => AgentKind::Proxy,
        RuleKind::Bot => AgentKind::Bot,
    }
}

/// One compiled rule.
#[derive(Debug)]
struct Rule {
    name: Arc<str>,
    kind: AgentKind,
    click_kind: AgentKind,
    routes: u8,
    networks: Vec<IpNet>,
    asns: Vec<u32>,
    needs_other_signal: bool,
}

impl Rule {
    fn applies(&self, route: EventType) -> bool {
        self.routes & route_bit(route) != 0
    }

    fn kind_on(&self, route: EventType) -> AgentKind {
        if route == EventType::Click {
            self.click_kind
        } else {
            self.kind
        }
    }
}

/// The generic pattern set for machines that name themselves.
struct Generic {
    kind: AgentKind,
    any: Regex,
    unless: RegexSet,
}

/// The compiled rules.
pub struct Rules {
    rules: Vec<Rule>,
    nets: NetTable,
    /// Every rule's `ua` patterns; `ua_owner[i]` is pattern i's rule.
    ua: RegexSet,
    ua_owner: Vec<u16>,
    generic: Option<Generic>,
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
                kind: kind_of(d.kind),
                click_kind: kind_of(d.click_kind.unwrap_or(d.kind)),
                routes: if routes == 0 { ALL_ROUTES } else { routes },
                networks: d.networks.clone(),
                asns: d.asns.clone(),
                needs_other_signal: d.needs_other_signal,
            });
        }
        let ua = RegexSetBuilder::new(&ua_patterns)
            .case_insensitive(true)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| err(file_key.as_str(), format!("ua patterns: {e}")))?;
        let generic = match (file.generic, patterns) {
            (Some(g), Some(text)) => {
                let list: Vec<&str> = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .collect();
                let joined = list
                    .iter()
                    .map(|p| format!("(?:{p})"))
                    .collect::<Vec<_>>()
                    .join("|");
                // The lazy DFA's cache keeps regex's default bound (a few
                // MiB a thread): under thousands of distinct UAs a larger
                // one grows to its limit and the process with it.
                let any = RegexBuilder::new(&joined)
                    .case_insensitive(true)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| err(file_key.as_str(), format!("generic patterns: {e}")))?;
                let unless = RegexSetBuilder::new(&g.unless)
                    .case_insensitive(true)
                    .build()
                    .map_err(|e| err(file_key.as_str(), format!("generic unless: {e}")))?;
                Some(Generic {
                    kind: kind_of(g.kind),
                    any,
                    unless,
                })
            }
            _ => None,
        };
        Ok(Rules {
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

/// The rules and the thresholds, built from the configuration.
pub struct Classifier {
    rules: Rules,
    min_click_secs: i64,
}

impl Classifier {
    /// Builds the configured rules; an error names the key at fault.
    pub fn try_new(cfg: &AgentConfig) -> Result<Classifier, RulesError> {
        Ok(Classifier {
            rules: Rules::load(cfg)?,
            min_click_secs: cfg.min_click_secs,
        })
    }

    /// [`Classifier::try_new`] for rules known to be good (tests, benches).
    pub fn new(cfg: &AgentConfig) -> Classifier {
        Self::try_new(cfg).unwrap_or_else(|e| panic!("{}: {}", e.key, e.msg))
    }

    /// What the User-Agent alone says.
    pub fn ua_verdict(&self, ua: &str) -> UaVerdict {
        let r = &self.rules;
        let mut v = UaVerdict {
            generic: r
                .generic
                .as_ref()
                .is_some_and(|g| g.any.is_match(ua) && !g.unless.is_match(ua)),
            ..UaVerdict::default()
        };
        for owner in r.ua.matches(ua).into_iter().map(|i| r.ua_owner[i]) {
            let n = v.n as usize;
            if n < UA_MATCHES && (n == 0 || v.rules[n - 1] != owner) {
                v.rules[n] = owner;
                v.n += 1;
            }
        }
        v
    }

    /// Classifies one request.
    pub fn classify(&self, f: &Facts<'_>) -> Agent {
        let rules = &self.rules.rules;
        let route = f.route;
        let ua = f.ua.copied().unwrap_or_default();
        // 1. A rule by User-Agent.
        if let Some(rule) = ua
            .rules()
            .iter()
            .map(|&i| &rules[i as usize])
            .find(|r| r.applies(route))
        {
            return agent(rule.kind_on(route), Some(rule.name.clone()), Reason::Ua);
        }
        let mut found = Vec::new();
        self.rules
            .nets
            .matches(f.ip.to_canonical(), f.asn, &mut found);
        let net: Vec<&Rule> = found
            .iter()
            .map(|&i| &rules[i as usize])
            .filter(|r| r.applies(route))
            .collect();
        // 2. The generic set; a network rule that also matches names it.
        if ua.generic {
            let kind = self
                .rules
                .generic
                .as_ref()
                .map_or(AgentKind::Bot, |g| g.kind);
            return agent(kind, net.first().map(|r| r.name.clone()), Reason::Ua);
        }
        let head = *f.method == http::Method::HEAD;
        let too_soon = route == EventType::Click
            && f.sent_at.is_some_and(|s| {
                // `s` comes from the token: checked, it cannot overflow.
                f.now_secs
                    .checked_sub(s)
                    .is_some_and(|d| (0..self.min_click_secs).contains(&d))
            });
        let other = if head {
            Some(Reason::Method)
        } else if too_soon {
            Some(Reason::Timing)
        } else if f.burst {
            Some(Reason::Burst)
        } else {
            None
        };
        // 3. A rule by network.
        for r in &net {
            match (r.needs_other_signal, other) {
                (false, _) => return agent(r.kind_on(route), Some(r.name.clone()), Reason::Ip),
                (true, Some(why)) => return agent(AgentKind::Bot, Some(r.name.clone()), why),
                (true, None) => {}
            }
        }
        // 4. The request's own signals.
        match other {
            Some(why) => agent(AgentKind::Bot, None, why),
            None => Agent {
                kind: AgentKind::Human,
                name: None,
                reason: None,
            },
        }
    }
}

/// Why a request was read as a machine: the event's `agent.reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Ua,
    Ip,
    Method,
    Timing,
    Burst,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Ua => "ua",
            Reason::Ip => "ip",
            Reason::Method => "method",
            Reason::Timing => "timing",
            Reason::Burst => "burst",
        }
    }
}

fn agent(kind: AgentKind, name: Option<Arc<str>>, reason: Reason) -> Agent {
    Agent {
        kind,
        name,
        reason: Some(reason.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn classifier() -> Classifier {
        Classifier::new(&Config::from_toml("").unwrap().agent)
    }

    fn facts<'a>(
        route: EventType,
        method: &'a http::Method,
        ip: &str,
        ua: Option<&'a UaVerdict>,
    ) -> Facts<'a> {
        Facts {
            route,
            method,
            ip: ip.parse().unwrap(),
            asn: None,
            ua,
            sent_at: None,
            now_secs: 1_000_000,
            burst: false,
        }
    }

    #[test]
    fn people_are_people() {
        let c = classifier();
        for ua in [
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
            "Mozilla/5.0 (Linux; Android 14; CUBOT KingKong 9) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36",
            "Microsoft Office/16.0 (Microsoft Outlook 16.0.12329; Pro), Mozilla/4.0 (compatible; ms-office; MSOffice 16)",
        ] {
            assert!(c.ua_verdict(ua).is_empty(), "{ua}");
        }
        let get = http::Method::GET;
        let a = c.classify(&facts(EventType::Click, &get, "198.51.100.1", None));
        assert_eq!(a.kind, AgentKind::Human);
    }

    #[test]
    fn configured_rules_come_first() {
        let cfg = Config::from_toml(
            "[agent]\nua_rules = [{ pattern = \"AcmeScanner\", kind = \"bot\", name = \"acme\" }]\n\
             ip_rules = [{ cidr = \"203.0.113.0/24\", kind = \"proxy\", name = \"corp_proxy\" }]\n",
        )
        .unwrap();
        let c = Classifier::new(&cfg.agent);
        let get = http::Method::GET;
        let v = c.ua_verdict("Mozilla/5.0 acmescanner/2");
        let a = c.classify(&facts(EventType::Open, &get, "198.51.100.1", Some(&v)));
        assert_eq!((a.kind, a.name.as_deref()), (AgentKind::Bot, Some("acme")));
        let a = c.classify(&facts(EventType::Open, &get, "203.0.113.9", None));
        assert_eq!(
            (a.kind, a.name.as_deref(), a.reason),
            (AgentKind::Proxy, Some("corp_proxy"), Some("ip"))
        );
    }

    #[test]
    fn a_configured_rule_replaces_a_built_in_one_by_name() {
        let cfg = Config::from_toml(
            "[agent]\nrules = [{ name = \"gmail_image_proxy\", kind = \"human\", ua = ['GoogleImageProxy'], source = [\"test\"] }]\n",
        )
        .unwrap();
        let c = Classifier::new(&cfg.agent);
        let get = http::Method::GET;
        let v = c.ua_verdict("Mozilla/5.0 (via ggpht.com GoogleImageProxy)");
        let a = c.classify(&facts(EventType::Open, &get, "198.51.100.1", Some(&v)));
        assert_eq!(
            (a.kind, a.name.as_deref()),
            (AgentKind::Human, Some("gmail_image_proxy"))
        );
    }

    #[test]
    fn the_same_network_is_a_proxy_on_opens_and_a_scanner_on_clicks() {
        let c = classifier();
        let get = http::Method::GET;
        let open = c.classify(&facts(EventType::Open, &get, "40.107.218.12", None));
        let click = c.classify(&facts(EventType::Click, &get, "40.107.218.12", None));
        assert_eq!((open.kind, open.reason), (AgentKind::Proxy, Some("ip")));
        assert_eq!((click.kind, click.reason), (AgentKind::Bot, Some("ip")));
        assert_eq!(click.name.as_deref(), Some("ms_safe_links"));
    }

    #[test]
    fn bursts_and_broad_networks_need_each_other() {
        let c = classifier();
        let get = http::Method::GET;
        let mut f = facts(EventType::Click, &get, "198.51.100.1", None);
        f.burst = true;
        let a = c.classify(&f);
        assert_eq!((a.kind, a.reason), (AgentKind::Bot, Some("burst")));
        // Azure alone is not proof: people browse from it too.
        let a = c.classify(&facts(EventType::Click, &get, "40.94.1.1", None));
        assert_eq!(a.kind, AgentKind::Human);
        let mut f = facts(EventType::Click, &get, "40.94.1.1", None);
        f.burst = true;
        let a = c.classify(&f);
        assert_eq!((a.kind, a.reason), (AgentKind::Bot, Some("burst")));
    }

    #[test]
    fn extreme_send_times_do_not_overflow() {
        let c = classifier();
        let get = http::Method::GET;
        for s in [i64::MIN, i64::MAX, -1] {
            let mut f = facts(EventType::Click, &get, "198.51.100.1", None);
            f.sent_at = Some(s);
            assert_eq!(c.classify(&f).kind, AgentKind::Human, "s = {s}");
        }
    }

    #[test]
    fn a_bad_rule_is_named() {
        let err = Config::from_toml(
            "[agent]\nrules = [{ name = \"x\", kind = \"bot\", ua = ['(unclosed'] }]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("agent.rules[0]"), "{err}");
        let err = Config::from_toml("[agent]\nrules_file = \"/no/rules.toml\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("agent.rules_file"), "{err}");
    }
}
