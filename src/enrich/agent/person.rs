//! Recognising a person's software, so that the generic machine patterns
//! judge only strings that are not.
//!
//! A User-Agent is a person's when
//!
//! 1. it parses as a browser on a platform (woothee: a browser family with
//!    a known OS, category pc, smartphone, mobile phone or appliance), or
//!    as an app on a phone's own HTTP stack (`Dalvik/…` on Android,
//!    `CFNetwork/… Darwin/…` on Apple systems); and
//! 2. it does not name a machine: none of uap-core's generic bot matchers
//!    (`…bot/1.0`, `…spider`, `…crawler`) matches, and the isbot word
//!    patterns find nothing in what is left once the person's software is
//!    taken out: the product tokens uap-core knows and the device model in
//!    the platform comment (`Android 14; Radar Deluxe`, `IEMobile/9.0; HTC;
//!    Radar 4G`), where a phone's name is no evidence of anything.
//!
//! So `… Chrome/120 Safari/537.36 SWIMGBot` or `(compatible; MSIE 9.0;
//! Windows NT 6.1; Multiviewbot` still read as machines, while a phone
//! called Discovery, Sogou's browser or WeChat's in-app browser do not.
//! Named rules (`agents/agents.toml`, `agent.rules`) and the request's own
//! signals (network, HEAD, timing, bursts) still decide before and after.
//!
//! Data: `agents/vendor/uap-core/` (Apache-2.0), generated from uap-core's
//! `regexes.yaml` by `scripts/agents_uap.py`.

use std::collections::HashSet;

use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};

/// Compiled regexes may be this large (the generic set is ~200 patterns).
pub(super) const REGEX_SIZE_LIMIT: usize = 64 << 20;

const FAMILIES: &str = include_str!("../../../agents/vendor/uap-core/families.txt");
const BOT_MATCHERS: &str = include_str!("../../../agents/vendor/uap-core/bot-matchers.txt");

/// The tokens of the User-Agent grammar itself, which every browser of the
/// last twenty years sends and uap-core does not list as a family
/// (<https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/User-Agent>).
const GRAMMAR: [&str; 4] = ["mozilla", "gecko", "khtml", "like"];

/// woothee's categories of a person's device.
const PERSON_CATEGORIES: [&str; 4] = ["pc", "smartphone", "mobilephone", "appliance"];

/// Platform-comment items after which come a device's vendor and model.
const MODEL_AFTER: [&str; 7] = [
    "android",
    "iemobile",
    "windows phone",
    "cpu iphone os",
    "cpu os",
    "tizen",
    "kaios",
];

/// What recognises a person's software (compiled once per rule load).
pub(crate) struct Person {
    parser: woothee::parser::Parser,
    /// Product names of people's software, lower-cased.
    families: HashSet<Box<str>>,
    /// uap-core's generic bot matchers.
    bots: RegexSet,
    /// The generic list's word patterns (those not anchored to the whole
    /// string: a browser string is never just a name and a version).
    words: Option<Regex>,
}

fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// Vendored pattern data that does not compile: which list, and why.
#[derive(Debug, thiserror::Error)]
#[error("{0}: {1}")]
pub(crate) struct DataError(&'static str, regex::Error);

impl Person {
    /// `generic` is the generic pattern list (Rust syntax, one a line).
    pub(crate) fn new(generic: Option<&str>) -> Result<Person, DataError> {
        let bots = RegexSetBuilder::new(lines(BOT_MATCHERS))
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| DataError("uap-core bot matchers", e))?;
        let words = match generic {
            Some(text) => {
                let joined = lines(text)
                    .filter(|p| !p.starts_with('^') && !p.ends_with('$'))
                    .map(|p| format!("(?:{p})"))
                    .collect::<Vec<_>>()
                    .join("|");
                Some(
                    RegexBuilder::new(&joined)
                        .case_insensitive(true)
                        .size_limit(REGEX_SIZE_LIMIT)
                        .build()
                        .map_err(|e| DataError("generic word patterns", e))?,
                )
            }
            None => None,
        };
        Ok(Person {
            parser: woothee::parser::Parser::new(),
            families: lines(FAMILIES).chain(GRAMMAR).map(Box::from).collect(),
            bots,
            words,
        })
    }

    /// Whether `ua` is a person's browser, in-app browser or mail client.
    pub(crate) fn recognises(&self, ua: &str) -> bool {
        self.platform(ua)
            && !self.bots.is_match(ua)
            && !self
                .words
                .as_ref()
                .is_some_and(|w| w.is_match(&self.residue(ua)))
    }

    fn known(&self, token: &str) -> bool {
        let name = token
            .split('/')
            .next()
            .unwrap_or("")
            .trim_matches(|c: char| c == ';' || c == ',');
        name.is_empty()
            || name
                .bytes()
                .all(|b| b.is_ascii_digit() || b"._+-".contains(&b))
            || self.families.contains(name.to_ascii_lowercase().as_str())
    }

    /// A browser on a platform, or an app on a phone's own HTTP stack.
    fn platform(&self, ua: &str) -> bool {
        if let Some(r) = self.parser.parse(ua) {
            if PERSON_CATEGORIES.contains(&r.category) && r.name != "UNKNOWN" && r.os != "UNKNOWN" {
                return true;
            }
        }
        (ua.contains("Dalvik/") && ua.contains("Android"))
            || (ua.contains("CFNetwork/") && ua.contains("Darwin/"))
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
        for t in top.split_whitespace().filter(|t| !self.known(t)) {
            out.push_str(t);
            out.push(' ');
        }
        for (i, c) in comments.iter().enumerate() {
            let items: Vec<&str> = c.split(';').map(str::trim).collect();
            let cut = if i == 0 {
                items.iter().rposition(|it| {
                    let it = it.to_ascii_lowercase();
                    MODEL_AFTER.iter().any(|m| it.starts_with(m))
                })
            } else {
                None
            };
            out.push('(');
            for it in match cut {
                Some(k) => &items[..=k],
                None => &items[..],
            } {
                out.push_str(it);
                out.push_str("; ");
            }
            out.push_str(") ");
        }
        out
    }
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
        ] {
            assert!(!p.recognises(ua), "{ua}");
        }
    }
}
