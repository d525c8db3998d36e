//! Recognising a person's software, so that the generic machine patterns
//! judge only strings that are not.
//!
//! A User-Agent is a person's when
//!
//! 1. it parses as a browser on a platform (woothee: a browser family with
//!    a known OS, category pc, smartphone, mobile phone or appliance), or
//!    is a phone's or tablet's name alone (`iPhone15Pro`), or it starts
//!    with a known browser or mail client and a plausible version
//!    (`w3m/0.52`, `Microsoft Pocket Internet Explorer/4.0`; a several-word
//!    name alone, `Maemo Browser`, needs none), or UC Browser's
//!    `dv(…);pr(UCBrowser/…)` names one, or a `Mozilla/` string carries one
//!    or ends with a known app's name, or it carries a device standard's
//!    token ([`DEVICE_TOKENS`]); an app's own HTTP stack (`Dalvik/…`,
//!    `CFNetwork/…`) is not enough, and something unknown in front of
//!    `Mozilla/` (`Anonymous, Mozilla/5.0 …`) rules it out; and
//! 2. it does not name a machine: none of uap-core's generic bot matchers
//!    (`…bot/1.0`, `…spider`, `…crawler`) matches, and the isbot word
//!    patterns find nothing in what is left once the person's software is
//!    taken out: the product names uap-core and device-detector know, their
//!    versions, and the device model in
//!    the platform comment (`Android 14; Radar Deluxe`, `IEMobile/9.0; HTC;
//!    Radar 4G`, `SAMSUNG; SAMSUNG-GT-S8500/…`), where a phone's name is no
//!    evidence of anything; a browser's short name joined to its full one
//!    (`SogouMSE,SogouMobileBrowser/5.6`) and its home page's address are
//!    its own too.
//!
//! So `… Chrome/120 Safari/537.36 SWIMGBot` or `(compatible; MSIE 9.0;
//! Windows NT 6.1; Multiviewbot` still read as machines, while a phone
//! called Discovery, Sogou's browser or WeChat's in-app browser do not.
//! Named rules (`agents/agents.toml`, `agent.rules`) and the request's own
//! signals (network, HEAD, timing, bursts) still decide before and after.
//!
//! Data: `agents/vendor/uap-core/` (Apache-2.0), generated from uap-core's
//! `regexes.yaml` by `scripts/agents_uap.py`; `agents/vendor/device-detector/`
//! (LGPL-3.0, vendored as data), generated from device-detector's client
//! lists by `scripts/agents_dd.py`.

use std::collections::HashSet;

use super::matcher::Matcher;

/// Compiled regexes may be this large (the generic set is ~200 patterns).
pub(super) const REGEX_SIZE_LIMIT: usize = 64 << 20;
/// The lazy DFA cache of each of the four large pattern sets (one per
/// process, [`Matcher`]): regex's default (2 MiB) was too small for these
/// alternations, so a new User-Agent cleared it again and again and fell
/// back to the slow engines (84 µs a cold classification in the bench);
/// at 6 MiB it is 8 µs (16 MiB: 5 µs). Bounded, and only filled by the
/// User-Agents the UA cache has not seen.
pub(super) const DFA_CACHE_LIMIT: usize = 6 << 20;

const FAMILIES: &str = include_str!("../../../agents/vendor/uap-core/families.txt");
const BOT_MATCHERS: &str = include_str!("../../../agents/vendor/uap-core/bot-matchers.txt");
const DD_BROWSERS: &str = include_str!("../../../agents/vendor/device-detector/browsers.txt");
const DD_APPS: &str = include_str!("../../../agents/vendor/device-detector/apps.txt");
const DD_LIBRARIES: &str = include_str!("../../../agents/vendor/device-detector/libraries.txt");
const DD_BOTS: &str = include_str!("../../../agents/vendor/device-detector/bots.txt");
/// The named-bot regex's lazy DFA cache: at [`DFA_CACHE_LIMIT`] it filled
/// to the limit under the load corpus (peak RSS +8-9 MiB when each of two
/// serving threads had its own).
const LISTED_DFA_CACHE_LIMIT: usize = 2 << 20;

/// What device-detector puts before each of its bot patterns: a pattern
/// matches at the start or after a character that cannot continue a name.
const DD_PREFIX: &str = r"(?:^|[^A-Z0-9\-_]|[^A-Z0-9\-]_|sprd-|MZ-)";

/// The tokens of the User-Agent grammar itself, which every browser of the
/// last twenty years sends and uap-core does not list as a family
/// (<https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/User-Agent>).
const GRAMMAR: [&str; 4] = ["mozilla", "gecko", "khtml", "like"];

/// woothee's categories of a person's device.
const PERSON_CATEGORIES: [&str; 4] = ["pc", "smartphone", "mobilephone", "appliance"];

/// Platform-comment items after which come a device's vendor and model, and
/// how many items those are (`Android 14; Pixel 8 Build/…`, `IEMobile/9.0;
/// HTC; Radar 4G`); a locale or `U` in between is skipped.
const MODEL_AFTER: [(&str, usize); 5] = [
    ("android", 1),
    ("iemobile", 2),
    ("windows phone", 2),
    ("tizen", 1),
    ("kaios", 1),
];

/// Tokens of standards that only a device's own browser sends: Java ME
/// phones (MIDP, JSR 118; CLDC, JSR 139), MediaTek MAUI feature phones' WAP
/// browser, TVs (HbbTV, ETSI TS 102 796; CE-HTML, CEA-2014; Philips/TP
/// Vision NETTV). Such a string is a person's device unless it names a bot
/// (uap-core's matchers); the isbot word list, written for desktop and
/// crawler strings, misreads their device descriptors (`Java/ASVM`,
/// `ce-html/1.0;`, `HTTP PGDL`). Sources: device-detector's
/// regexes/device/televisions.yml and mobiles.yml, uap-core's regexes.yaml.
const DEVICE_TOKENS: [&str; 6] = [
    "profile/midp-",
    "configuration/cldc-",
    "wap browser/maui",
    "hbbtv/",
    "ce-html/",
    "nettv/",
];

/// What recognises a person's software (compiled once per rule load).
pub(crate) struct Person {
    parser: woothee::parser::Parser,
    /// Product names of people's software, normalised ([`norm`]).
    families: HashSet<Box<str>>,
    /// Browsers and mail clients that may lead a string ([`norm`]).
    leading: HashSet<Box<str>>,
    /// device-detector's browsers, mail clients and mobile apps ([`norm`]).
    apps: HashSet<Box<str>>,
    /// HTTP libraries, SDKs and tools ([`norm`]): a machine's product.
    libraries: HashSet<Box<str>>,
    /// uap-core's generic bot matchers.
    bots: Matcher,
    /// device-detector's named bots but its crawlers and search bots (site
    /// monitors, security checkers, service and AI agents): products, not
    /// words.
    listed: Matcher,
    /// The generic list's word patterns (those not anchored to the whole
    /// string: a browser string is never just a name and a version).
    words: Option<Matcher>,
}

/// The patterns as one regex that matches where any of them does.
pub(super) fn alternation<'a>(patterns: impl Iterator<Item = &'a str>) -> String {
    patterns
        .map(|p| format!("(?:{p})"))
        .collect::<Vec<_>>()
        .join("|")
}

pub(super) fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// Vendored pattern data that does not compile: which list, and why.
#[derive(Debug, thiserror::Error)]
#[error("{0}: {1}")]
pub(crate) struct DataError(&'static str, Box<regex_automata::meta::BuildError>);

impl Person {
    /// `generic` is the generic pattern list (Rust syntax, one a line).
    pub(crate) fn new(generic: Option<&str>) -> Result<Person, DataError> {
        // One alternation, not a set: only whether any matches is asked,
        // and a leftmost search can stop at the first.
        let bots = Matcher::one(
            &alternation(lines(BOT_MATCHERS)),
            false,
            REGEX_SIZE_LIMIT,
            DFA_CACHE_LIMIT,
        )
        .map_err(|e| DataError("uap-core bot matchers", e))?;
        let alternatives = lines(DD_BOTS).collect::<Vec<_>>().join("|");
        let listed = Matcher::one(
            &format!("{DD_PREFIX}(?:{alternatives})"),
            true,
            REGEX_SIZE_LIMIT,
            LISTED_DFA_CACHE_LIMIT,
        )
        .map_err(|e| DataError("device-detector bots", e))?;
        let words = match generic {
            Some(text) => {
                let joined =
                    alternation(lines(text).filter(|p| !p.starts_with('^') && !p.ends_with('$')));
                Some(
                    Matcher::one(&joined, true, REGEX_SIZE_LIMIT, DFA_CACHE_LIMIT)
                        .map_err(|e| DataError("generic word patterns", e))?,
                )
            }
            None => None,
        };
        Ok(Person {
            parser: woothee::parser::Parser::new(),
            families: lines(FAMILIES)
                .chain(lines(DD_BROWSERS))
                .chain(lines(DD_APPS))
                .chain(GRAMMAR)
                .map(|n| norm(n).into_boxed_str())
                .collect(),
            leading: lines(DD_BROWSERS).map(Box::from).collect(),
            apps: lines(DD_BROWSERS)
                .chain(lines(DD_APPS))
                .map(Box::from)
                .collect(),
            libraries: lines(DD_LIBRARIES).map(Box::from).collect(),
            bots,
            listed,
            words,
        })
    }

    /// Whether `ua` is a person's browser, in-app browser or mail client.
    pub(crate) fn recognises(&self, ua: &str) -> bool {
        let lower = ua.to_ascii_lowercase();
        let device = DEVICE_TOKENS.iter().any(|t| lower.contains(t));
        if (!device && !self.platform(ua)) || self.names_library(ua) {
            return false;
        }
        let residue = self.residue(ua);
        !self.bots.is_match(&residue)
            && (device || !self.words.as_ref().is_some_and(|w| w.is_match(&residue)))
    }

    /// `ua` names one of device-detector's bots (`Catchpoint`, WebPageTest's
    /// `PTST/`, `Site24x7`): that product's, a machine's, even in a browser's
    /// string, as device-detector reads it.
    pub(crate) fn listed(&self, ua: &str) -> bool {
        self.listed.is_match(ua)
    }

    /// A product token of `ua` names an HTTP library, SDK or tool
    /// (device-detector's list: `containerd/1.5`, `Dart/2.16`, `jsdom/15`).
    pub(crate) fn names_library(&self, ua: &str) -> bool {
        ua.split_whitespace().any(|t| {
            t.split_once('/')
                .is_some_and(|(n, _)| self.libraries.contains(norm(n).as_str()))
        })
    }

    /// Every name of a product token is a known product's: `name/version`,
    /// `SogouMSE,SogouMobileBrowser/5.6` (one product's names, [`Person::alias`]).
    fn known(&self, token: &str) -> bool {
        let name = token.split('/').next().unwrap_or("");
        name.split(',').all(|part| self.alias(part, name))
    }

    /// `part` of the comma-joined product names `group` is a known product's,
    /// or shares its vendor's stem (five letters or more) with a known one
    /// there and names no bot: a browser that gives its short and its full
    /// name (`SogouMSE,SogouMobileBrowser/3.8`, device-detector's regexes/
    /// client/browsers.yml reads the second).
    fn alias(&self, part: &str, group: &str) -> bool {
        let n = norm(part);
        self.named(&n)
            || group.split(',').any(|other| {
                let o = norm(other);
                o != n
                    && self.named(&o)
                    && n.bytes().zip(o.bytes()).take_while(|(a, b)| a == b).count() >= 5
                    && !self.bots.is_match(&format!("{part}/1.0"))
            })
    }

    /// A normalised name is a known product's, or a number, or a known
    /// product with its version run into it (`SogouSearch Android1.0`,
    /// device-detector's `SogouSearch Android[\d.]+`).
    fn named(&self, n: &str) -> bool {
        n.bytes().all(|b| b.is_ascii_digit())
            || self.families.contains(n)
            || self
                .families
                .contains(n.trim_end_matches(|c: char| c.is_ascii_digit()))
    }

    /// A browser on a platform, or a browser or mail client that names
    /// itself first with a plausible version (`w3m/0.52`, `Midori 0.1.10`).
    /// A string with something unknown in front of `Mozilla/` is neither:
    /// a person's browser starts with its own product.
    fn platform(&self, ua: &str) -> bool {
        if let Some(at) = ua.find("Mozilla/").filter(|&at| at > 0) {
            if !ua[..at].split_whitespace().all(|t| self.known(t)) {
                return false;
            }
        }
        if let Some(r) = self.parser.parse(ua) {
            if PERSON_CATEGORIES.contains(&r.category) && r.os != "UNKNOWN" {
                // A browser on a platform; or a device's name with no product
                // token at all (`iPhoneXS`, as some iOS apps send it): no
                // script names itself that way.
                if r.name != "UNKNOWN" || (r.category != "pc" && !ua.contains(['/', '.'])) {
                    return true;
                }
            }
        }
        // UC Browser's own format, `dv(iPh10,3);pr(UCBrowser/11.3);ov(15_4_1);…`
        // (device-detector's regexes/oss.yml reads `dv(iPh…ov(…);` as iOS):
        // the product is the one in `pr(…)`.
        if let Some(pr) = ua.strip_prefix("dv(").and_then(|r| r.split(";pr(").nth(1)) {
            return self.leads(pr.split(')').next().unwrap_or(""));
        }
        // A browser string woothee does not know: a known browser's product
        // token after `Mozilla/` (`Gecko/2009 GoogleEarth/v5.0`), or a known
        // app's name alone at its end (`… en-us; dream) DoggCatcher`,
        // device-detector's regexes/client/mobile_apps.yml matches the bare name).
        let mozilla = ua.starts_with("Mozilla/");
        self.leads(ua)
            || (mozilla
                && ua
                    .split_whitespace()
                    .skip(1)
                    .any(|t| t.split_once('/').is_some_and(|(n, v)| self.browser(n, v))))
            || (mozilla
                && ua.rsplit_once(") ").is_some_and(|(_, last)| {
                    !last.contains(['/', ' ', '(']) && self.apps.contains(norm(last).as_str())
                }))
    }

    /// `ua` starts with a known browser or mail client and a version that
    /// is not all zeros.
    fn leads(&self, ua: &str) -> bool {
        let end = ua.find(['(', ';', ',', '[']).unwrap_or(ua.len());
        let head = &ua[..end];
        let (name, version) = match head.split_once('/') {
            Some((n, v)) => (n, v),
            None => match head.rfind(' ') {
                Some(i) => (&head[..i], &head[i + 1..]),
                None => (head, ""),
            },
        };
        let (name, version) = match (name, version) {
            // `DDG-Android-3.1.1`
            (n, "") => n.rsplit_once('-').unwrap_or((n, "")),
            nv => nv,
        };
        self.browser(name, version.split_whitespace().next().unwrap_or(""))
            // A string that is nothing but a browser's several-word name
            // (`Maemo Browser`, device-detector's `Maemo Browser(?: (\d+[.\d]+))?`:
            // the version is optional); a one-word name alone (`Chrome`) is
            // what scripts send, device-detector's bot fixtures among them.
            || (end == ua.len()
                && !head.contains('/')
                && head.split_whitespace().count() >= 2
                && self.leading.contains(norm(head).as_str()))
    }

    /// `name` is a known browser's or mail client's, maybe with its maker's
    /// or other known words around it (`Microsoft Pocket Internet Explorer`,
    /// `Dorado WAP-Browser`: device-detector's names are `Pocket Internet
    /// Explorer` and `Dorado`).
    fn leader(&self, name: &str) -> bool {
        let words: Vec<&str> = name.split_whitespace().collect();
        words.len() <= 6
            && (0..words.len()).any(|i| {
                (i + 1..=words.len()).any(|j| {
                    self.leading.contains(norm(&words[i..j].concat()).as_str())
                        && words[..i]
                            .iter()
                            .chain(&words[j..])
                            .all(|w| self.named(&norm(w)))
                })
            })
    }

    /// A known browser or mail client with a version that is not all zeros.
    fn browser(&self, name: &str, version: &str) -> bool {
        let version = version.trim_start_matches(['v', 'V']);
        version.starts_with(|c: char| c.is_ascii_digit())
            && version.bytes().any(|b| (b'1'..=b'9').contains(&b))
            && self.leader(name)
    }

    /// `url` is the home page of a browser the string names (`QtWeb Internet
    /// Browser/1.7 http://www.QtWeb.net`): a part of its address is a known
    /// browser's name and another product token starts with it. A crawler's
    /// address (`+http://…/bot.html`) names no browser; where it does, its
    /// own token still counts.
    fn home_page(&self, url: &str, tokens: &[&str]) -> bool {
        (url.contains("://") || url.starts_with("www."))
            && url
                .split(|c: char| !c.is_ascii_alphanumeric())
                .map(norm)
                .filter(|p| p.len() >= 4 && self.leading.contains(p.as_str()))
                .any(|p| {
                    tokens
                        .iter()
                        .any(|t| *t != url && norm(t).starts_with(p.as_str()))
                })
    }

    /// What is left of `ua` once the person's software is taken out: top-level
    /// product tokens uap-core does not know, and the comments, the platform
    /// comment without its device model.
    fn residue(&self, ua: &str) -> String {
        let mut top = String::new();
        let mut comments: Vec<String> = Vec::new();
        let mut depth = 0usize;
        for ch in ua.chars() {
            match ch {
                '(' | '[' => {
                    depth += 1;
                    if depth == 1 {
                        comments.push(String::new());
                        top.push(' ');
                        continue;
                    }
                }
                ')' | ']' if depth > 0 => {
                    depth -= 1;
                    if depth == 0 {
                        continue;
                    }
                }
                _ => {}
            }
            match comments.last_mut() {
                Some(c) if depth > 0 => c.push(ch),
                _ => top.push(ch),
            }
        }
        let mut out = String::new();
        // A product's version is no evidence: only unknown names count. A
        // product may be several words (`Google Earth Pro/7.3`).
        let tokens: Vec<&str> = top.split_whitespace().collect();
        let mut i = 0;
        while i < tokens.len() {
            let span = (2..=4.min(tokens.len() - i)).rev().find(|&n| {
                tokens[i..i + n - 1].iter().all(|t| !t.contains('/'))
                    && self.known(&tokens[i..i + n].join(" "))
            });
            if let Some(n) = span {
                i += n;
                continue;
            }
            let t = tokens[i];
            i += 1;
            if self.home_page(t, &tokens) {
                continue;
            }
            // An unknown name keeps its version's first digit, which some
            // patterns need (isbot's `ptst[ /][0-9]`); the rest of a version
            // (`/1.0;`) is no evidence.
            let (group, version) = t.split_once('/').unwrap_or((t, ""));
            for part in group.split(',') {
                if !self.alias(part, group) {
                    out.push_str(part);
                    if t.contains('/') {
                        out.push('/');
                        out.extend(version.chars().next().filter(char::is_ascii_digit));
                    }
                    out.push(' ');
                }
            }
        }
        for (i, c) in comments.iter().enumerate() {
            let items: Vec<&str> = c.split(';').map(str::trim).collect();
            // The device model in the platform comment is no evidence.
            let mut model = 0..0;
            if i == 0 {
                if let Some((k, n)) = items.iter().enumerate().rev().find_map(|(k, it)| {
                    let it = it.to_ascii_lowercase();
                    MODEL_AFTER
                        .iter()
                        .find(|(m, _)| it.starts_with(m))
                        .map(|&(_, n)| (k, n))
                }) {
                    let mut from = k + 1;
                    while items.get(from).is_some_and(|it| locale(it)) {
                        from += 1;
                    }
                    model = from..from + n;
                }
            }
            let mut kept = items
                .iter()
                .enumerate()
                .filter(|&(k, it)| {
                    // A vendor's model after the vendor is a model too.
                    let vendors = i == 0 && k > 0 && vendor_model(items[k - 1], it);
                    !(it.is_empty() || vendors || model.contains(&k) || self.known(name_of(it)))
                })
                .peekable();
            if kept.peek().is_none() {
                continue;
            }
            out.push('(');
            for (_, it) in kept {
                out.push_str(it);
                out.push_str("; ");
            }
            out.push_str(") ");
        }
        out
    }
}

/// The product name of a comment item: `QQDownload 691` and `chromeframe/19`
/// name `QQDownload` and `chromeframe`.
fn name_of(item: &str) -> &str {
    let item = item.split('/').next().unwrap_or(item);
    match item.find(|c: char| c.is_ascii_digit()) {
        Some(i) if i > 0 && item[..i].ends_with(' ') => item[..i].trim_end(),
        _ => item,
    }
}

/// `SAMSUNG; SAMSUNG-GT-S7230/1.0`: a platform comment's vendor item, then
/// the device model that vendor names after itself, as Samsung's Bada and
/// LG's feature phones write it (device-detector's regexes/device/mobiles.yml,
/// `SAMSUNG[\-;/]`, `LG-`); a model's name is no evidence.
fn vendor_model(vendor: &str, item: &str) -> bool {
    vendor.len() >= 2
        && item.len() > vendor.len() + 1
        && item.is_char_boundary(vendor.len())
        && item[..vendor.len()].eq_ignore_ascii_case(vendor)
        && item[vendor.len()..].starts_with('-')
}

/// `U`, `en-us`, `zh_CN`, `fr`: a platform comment's locale items.
fn locale(item: &str) -> bool {
    let b = item.as_bytes();
    item == "U"
        || (2..=6).contains(&b.len())
            && b.iter()
                .all(|&c| c.is_ascii_alphabetic() || c == b'-' || c == b'_')
            && (b.len() == 2 || b.contains(&b'-') || b.contains(&b'_'))
}

/// A product name compared: ASCII letters and digits, lower-cased, `%20`
/// dropped (`Google%20Earth%20Pro` is `googleearthpro`).
fn norm(name: &str) -> String {
    name.replace("%20", "")
        .bytes()
        .filter(u8::is_ascii_alphanumeric)
        .map(|b| char::from(b.to_ascii_lowercase()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person() -> Person {
        Person::new(Some(include_str!(
            "../../../agents/vendor/isbot/patterns-rust.txt"
        )))
        .unwrap()
    }

    #[test]
    fn phones_named_like_machines_are_people() {
        let p = person();
        for ua in [
            "Mozilla/5.0 (Linux; Android 13; Discovery SE) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/127.0.0.0 Mobile Safari/537.36",
            "Mozilla/5.0 (compatible; MSIE 9.0; Windows Phone OS 7.5; Trident/5.0; IEMobile/9.0; HTC; Radar 4G)",
        ] {
            assert!(p.recognises(ua), "{ua}");
        }
    }

    #[test]
    fn a_browser_string_that_names_a_machine_is_not_a_person() {
        let p = person();
        for ua in [
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/41.0.2228.0 Safari/537.36 (compatible; ExampleBot/3.0; +http://example.com/bot)",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_10_5) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/45.0.2454.101 Safari/537.36 ExampleScanner",
            "curl/8.5.0",
            // A one-word browser name alone is what scripts send.
            "Chrome",
            // A vendor's alias must not hide a bot's name.
            "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36 Sogoubot,SogouMobileBrowser/6.0",
            // A version keeps the digit a pattern needs (WebPageTest's agent).
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 PTST/240101.120000",
            // A package name is no device's name.
            "Android.ExampleSync",
        ] {
            assert!(!p.recognises(ua), "{ua}");
        }
    }

    #[test]
    fn browsers_that_name_themselves_in_their_own_ways_are_people() {
        let p = person();
        for ua in [
            // device-detector's names inside a longer one, or with no version.
            "Microsoft Pocket Internet Explorer/4.0",
            "Dorado WAP-Browser/2.1",
            "Maemo Browser",
            // UC Browser's key-value format.
            "dv(iPh12,1);pr(UCBrowser/13.0.1.1);ov(16_0);ss(390x844);nt(2);",
            // A short and a full name joined by a comma.
            "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36 SogouMSE,SogouMobileBrowser/6.0",
            // The vendor's model after the vendor, the OS with its version.
            "Mozilla/5.0 (SAMSUNG; SAMSUNG-GT-S8500/S8500XXJF8; U; Bada/1.0; en-us) AppleWebKit/533.1 (KHTML, like Gecko) Dolfin/2.0 Mobile WVGA SMM-MMS/1.2.0",
            // The browser's home page.
            "Mozilla/5.0 (Windows NT 6.1) AppleWebKit/533.3 (KHTML, like Gecko) QtWeb Internet Browser/3.8 http://www.qtweb.net",
            // A known app's name alone at the end.
            "Mozilla/5.0 (Linux; U; Android 2.2; en-us; Desire) DoggCatcher",
            // A device's name alone.
            "iPhone15Pro",
        ] {
            assert!(p.recognises(ua), "{ua}");
        }
    }
}
