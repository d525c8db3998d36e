//! Person, proxy or bot: the event's `agent`.
//!
//! `proxy` is a machine fetching for a person (Gmail's and Yahoo's image
//! proxies, Apple Mail Privacy Protection): the open happened, but its
//! time, place and device are the proxy's. `bot` is a machine acting on its
//! own (link scanners such as Microsoft Safe Links, previewers, crawlers,
//! HTTP libraries). The evidence, strongest first: the User-Agent, the
//! source network, the method (HEAD), and the seconds between sending and
//! clicking. Patterns and ranges are data: the built-in lists below, plus
//! `agent.ua_rules` and `agent.ip_rules` from the configuration.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use crate::config::{AgentConfig, RuleKind};
use crate::event::{Agent, AgentKind, EventType};

/// What a User-Agent alone says; computed once per distinct UA (cached).
#[derive(Debug, Clone, PartialEq)]
pub struct UaVerdict {
    pub kind: AgentKind,
    pub name: Option<Arc<str>>,
}

/// Built-in User-Agent substrings (lower case), kind and name.
const UA_RULES: &[(&str, AgentKind, Option<&str>)] = &[
    // Image proxies that fetch for a person.
    (
        "googleimageproxy",
        AgentKind::Proxy,
        Some("gmail_image_proxy"),
    ),
    ("ggpht.com", AgentKind::Proxy, Some("gmail_image_proxy")),
    ("yahoomailproxy", AgentKind::Proxy, Some("yahoo_mail_proxy")),
    // Link scanners and security gateways.
    ("barracuda", AgentKind::Bot, Some("barracuda")),
    (
        "microsoft office existence discovery",
        AgentKind::Bot,
        Some("ms_office_discovery"),
    ),
    ("mimecast", AgentKind::Bot, Some("mimecast")),
    ("proofpoint", AgentKind::Bot, Some("proofpoint")),
    ("symantec", AgentKind::Bot, Some("symantec")),
    // Link previewers.
    ("bingpreview", AgentKind::Bot, Some("bing_preview")),
    (
        "facebookexternalhit",
        AgentKind::Bot,
        Some("facebook_preview"),
    ),
    ("slackbot", AgentKind::Bot, Some("slack_preview")),
    ("slack-imgproxy", AgentKind::Bot, Some("slack_preview")),
    ("twitterbot", AgentKind::Bot, Some("twitter_preview")),
    ("linkedinbot", AgentKind::Bot, Some("linkedin_preview")),
    ("discordbot", AgentKind::Bot, Some("discord_preview")),
    ("telegrambot", AgentKind::Bot, Some("telegram_preview")),
    ("whatsapp", AgentKind::Bot, Some("whatsapp_preview")),
    ("skypeuripreview", AgentKind::Bot, Some("skype_preview")),
    // Crawlers.
    ("googlebot", AgentKind::Bot, Some("googlebot")),
    ("adsbot-google", AgentKind::Bot, Some("google_adsbot")),
    ("bingbot", AgentKind::Bot, Some("bingbot")),
    ("applebot", AgentKind::Bot, Some("applebot")),
    ("duckduckbot", AgentKind::Bot, Some("duckduckbot")),
    ("yandexbot", AgentKind::Bot, Some("yandexbot")),
    ("baiduspider", AgentKind::Bot, Some("baiduspider")),
    // Headless browsers and HTTP libraries: no person reads through these.
    ("headlesschrome", AgentKind::Bot, Some("headless_chrome")),
    ("phantomjs", AgentKind::Bot, Some("phantomjs")),
    ("python-requests", AgentKind::Bot, Some("python_requests")),
    ("python-urllib", AgentKind::Bot, Some("python_urllib")),
    ("go-http-client", AgentKind::Bot, Some("go_http_client")),
    ("curl/", AgentKind::Bot, Some("curl")),
    ("wget/", AgentKind::Bot, Some("wget")),
    ("okhttp", AgentKind::Bot, Some("okhttp")),
    (
        "apache-httpclient",
        AgentKind::Bot,
        Some("apache_httpclient"),
    ),
    ("libwww-perl", AgentKind::Bot, Some("libwww_perl")),
    ("scrapy", AgentKind::Bot, Some("scrapy")),
    // Generic markers, last: a crawler that names itself.
    ("bot/", AgentKind::Bot, None),
    ("bot;", AgentKind::Bot, None),
    ("crawler", AgentKind::Bot, None),
    ("spider", AgentKind::Bot, None),
];

/// Built-in source networks, kind and name.
const IP_RULES: &[(&str, AgentKind, &str)] = &[
    // Gmail's image proxy (googleusercontent / ggpht fetchers).
    ("66.102.0.0/20", AgentKind::Proxy, "gmail_image_proxy"),
    ("66.249.80.0/20", AgentKind::Proxy, "gmail_image_proxy"),
    ("64.233.160.0/19", AgentKind::Proxy, "gmail_image_proxy"),
    ("74.125.0.0/16", AgentKind::Proxy, "gmail_image_proxy"),
    // Yahoo Mail's image proxy.
    ("98.136.0.0/14", AgentKind::Proxy, "yahoo_mail_proxy"),
    ("66.196.64.0/18", AgentKind::Proxy, "yahoo_mail_proxy"),
    ("74.6.0.0/16", AgentKind::Proxy, "yahoo_mail_proxy"),
    // Apple Mail Privacy Protection prefetches from Apple's own network.
    ("17.0.0.0/8", AgentKind::Proxy, "apple_mpp"),
    // Microsoft Exchange Online Protection (Safe Links, attachment scanning).
    ("40.92.0.0/15", AgentKind::Bot, "ms_safe_links"),
    ("40.107.0.0/16", AgentKind::Bot, "ms_safe_links"),
    ("52.100.0.0/14", AgentKind::Bot, "ms_safe_links"),
    ("104.47.0.0/17", AgentKind::Bot, "ms_safe_links"),
];

fn kind_of(k: RuleKind) -> AgentKind {
    match k {
        RuleKind::Human => AgentKind::Human,
        RuleKind::Proxy => AgentKind::Proxy,
        RuleKind::Bot => AgentKind::Bot,
    }
}

/// The request facts classification looks at.
pub struct Facts<'a> {
    pub route: EventType,
    pub method: &'a http::Method,
    /// The full client address, before anonymization.
    pub ip: IpAddr,
    pub ua: Option<&'a UaVerdict>,
    /// The token's send time, unix seconds.
    pub sent_at: Option<i64>,
    pub now_secs: i64,
}

/// The rules, built once from the built-in lists and the configuration.
pub struct Classifier {
    /// Configured rules first, so they can override built-in ones.
    ua_rules: Vec<(String, AgentKind, Option<Arc<str>>)>,
    ip_rules: Vec<(IpNet, AgentKind, Arc<str>)>,
    min_click_secs: i64,
}

impl Classifier {
    pub fn new(cfg: &AgentConfig) -> Classifier {
        let mut ua_rules: Vec<_> = cfg
            .ua_rules
            .iter()
            .map(|r| {
                (
                    r.pattern.to_lowercase(),
                    kind_of(r.kind),
                    r.name.as_deref().map(Arc::from),
                )
            })
            .collect();
        ua_rules.extend(
            UA_RULES
                .iter()
                .map(|(p, k, n)| (p.to_string(), *k, n.map(Arc::from))),
        );
        let mut ip_rules: Vec<_> = cfg
            .ip_rules
            .iter()
            .map(|r| (r.cidr, kind_of(r.kind), Arc::from(r.name.as_str())))
            .collect();
        ip_rules.extend(
            IP_RULES
                .iter()
                .map(|(c, k, n)| (c.parse().expect("built-in CIDRs parse"), *k, Arc::from(*n))),
        );
        Classifier {
            ua_rules,
            ip_rules,
            min_click_secs: cfg.min_click_secs,
        }
    }

    /// What the User-Agent alone says, if anything.
    pub fn ua_verdict(&self, ua: &str) -> Option<UaVerdict> {
        let lower = ua.to_ascii_lowercase();
        self.ua_rules
            .iter()
            .find(|(p, _, _)| lower.contains(p.as_str()))
            .map(|(_, kind, name)| UaVerdict {
                kind: *kind,
                name: name.clone(),
            })
    }

    /// Classifies one request.
    pub fn classify(&self, f: &Facts<'_>) -> Agent {
        if let Some(v) = f.ua {
            return Agent {
                kind: v.kind,
                name: v.name.clone(),
                reason: Some("ua"),
            };
        }
        let ip = f.ip.to_canonical();
        if let Some((_, kind, name)) = self.ip_rules.iter().find(|(n, _, _)| n.contains(&ip)) {
            return Agent {
                kind: *kind,
                name: Some(name.clone()),
                reason: Some("ip"),
            };
        }
        if f.method == http::Method::HEAD {
            return bot("method");
        }
        if f.route == EventType::Click {
            if let Some(s) = f.sent_at {
                // A scanner follows a link seconds after delivery; a person
                // first has to open the message and read it.
                // `s` comes from the token: checked, it cannot overflow.
                let since = f.now_secs.checked_sub(s);
                if since.is_some_and(|d| (0..self.min_click_secs).contains(&d)) {
                    return bot("timing");
                }
            }
        }
        Agent {
            kind: AgentKind::Human,
            name: None,
            reason: None,
        }
    }
}

fn bot(reason: &'static str) -> Agent {
    Agent {
        kind: AgentKind::Bot,
        name: None,
        reason: Some(reason),
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
            ua,
            sent_at: None,
            now_secs: 1_000_000,
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
            assert_eq!(c.ua_verdict(ua), None, "{ua}");
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
        let v = c.ua_verdict("Mozilla/5.0 acmescanner/2").unwrap();
        assert_eq!((v.kind, v.name.as_deref()), (AgentKind::Bot, Some("acme")));
        let get = http::Method::GET;
        let a = c.classify(&facts(EventType::Open, &get, "203.0.113.9", None));
        assert_eq!(
            (a.kind, a.name.as_deref(), a.reason),
            (AgentKind::Proxy, Some("corp_proxy"), Some("ip"))
        );
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
}
