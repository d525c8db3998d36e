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
//!    or the string is a person's software ([`person`]); a bot that
//!    device-detector names (`agents/vendor/device-detector/bots.txt`)
//!    counts here whatever else the string says (reason `ua`; a network
//!    rule that also matches names it);
//! 3. rules by source network or ASN (reason `ip`); the same network can be
//!    a proxy on an open and a scanner on a click (`click_kind`); broad
//!    networks (`needs_other_signal`) decide only with another signal;
//! 4. HEAD (`method`), a click too soon after sending (`timing`), a burst of
//!    distinct links from one source (`burst`, see [`super::burst`]).
//!
//! User-Agent matching runs once per distinct string (one pass of a
//! `RegexSet` and one of a combined `Regex`) and is cached by
//! [`super::ua::UaCache`].

mod config;
mod matcher;
mod person;
mod rules;

use std::net::IpAddr;
use std::sync::Arc;

pub use config::{AgentConfig, AgentRule, IpRule, UaRule};
pub use rules::{compile_count, Rules, RulesError};

use crate::event::{Agent, AgentKind, EventType};
use rules::Rule;

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
    /// The generic pattern set matched (or a product token names an HTTP
    /// library, [`person`]), no guard did, and the string is not recognised
    /// as a person's software.
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
        // The generic set judges only what is not a person's software; the
        // person check runs only when it would change the answer.
        // A bot device-detector names is one whatever else the string says.
        let mut v = UaVerdict {
            generic: r.person.listed(ua)
                || ((r
                    .generic
                    .as_ref()
                    .is_some_and(|g| g.any.is_match(ua) && !g.unless.is_match(ua))
                    || r.person.names_library(ua))
                    && !r.person.recognises(ua)),
            ..UaVerdict::default()
        };
        for owner in r.ua.matches(ua).map(|i| r.ua_owner[i]) {
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
    use crate::enrich::agent::compile_count;

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
    fn a_named_bot_in_a_browser_string_is_a_machine() {
        let c = classifier();
        let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
        assert!(c.ua_verdict(chrome).is_empty());
        // Synthetic monitors load pages in a real browser and append their
        // token (device-detector's bots.yml, category Site Monitor).
        for token in ["Catchpoint", "PTST/SpeedCurve/230120.120134", "Site24x7"] {
            let ua = format!("{chrome} {token}");
            assert!(c.ua_verdict(&ua).generic, "{ua}");
        }
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
    fn a_bad_rule_is_named_when_the_rules_are_built() {
        let bad = |toml: &str| {
            let cfg = Config::from_toml(toml).expect("validation does not compile rules");
            Classifier::try_new(&cfg.agent).err().unwrap().to_string()
        };
        let err = bad("[agent]\nrules = [{ name = \"x\", kind = \"bot\", ua = ['(unclosed'] }]\n");
        assert!(err.contains("agent.rules[0]"), "{err}");
        let err = bad("[agent]\nrules_file = \"/no/rules.toml\"\n");
        assert!(err.contains("agent.rules_file"), "{err}");
    }

    #[test]
    fn loading_the_config_compiles_no_rules_and_a_classifier_compiles_them_once() {
        // Other tests compile rules on other threads: count the difference
        // as at least one and, for this thread's two steps, compare floors.
        let before = compile_count();
        let cfg = Config::from_toml("").unwrap();
        let _ = cfg.clone();
        let c = Classifier::try_new(&cfg.agent).unwrap();
        assert!(compile_count() > before);
        drop(c);
    }
}
