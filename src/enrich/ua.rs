//! User-Agent parsing with woothee into the event's `ua` object.

use std::sync::Arc;

use crate::event::UserAgent;

/// Longest User-Agent kept; real ones are a few hundred bytes.
pub const MAX_UA_BYTES: usize = 512;

/// woothee marks what it cannot tell with this value; events omit it.
const UNKNOWN: &str = "UNKNOWN";

fn known(s: &str) -> Option<String> {
    (!s.is_empty() && s != UNKNOWN).then(|| s.to_owned())
}

/// Parses User-Agent strings.
pub struct UaParser {
    parser: woothee::parser::Parser,
}

impl Default for UaParser {
    fn default() -> Self {
        UaParser {
            parser: woothee::parser::Parser::new(),
        }
    }
}

impl UaParser {
    /// The `ua` object for a raw header value (already lossily decoded).
    pub fn parse(&self, raw: &str) -> Arc<UserAgent> {
        let raw = truncate(raw, MAX_UA_BYTES);
        let mut ua = UserAgent {
            raw: raw.to_owned(),
            name: None,
            version: None,
            os: None,
            os_version: None,
            category: None,
            vendor: None,
        };
        if let Some(r) = self.parser.parse(raw) {
            ua.name = known(r.name);
            ua.version = known(r.version);
            ua.os = known(r.os);
            ua.os_version = known(&r.os_version);
            ua.category = known(r.category);
            ua.vendor = known(r.vendor);
        }
        Arc::new(ua)
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chrome_on_windows() {
        let ua = UaParser::default().parse(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        );
        assert_eq!(ua.name.as_deref(), Some("Chrome"));
        assert_eq!(ua.version.as_deref(), Some("120.0.0.0"));
        assert_eq!(ua.os.as_deref(), Some("Windows 10"));
        assert_eq!(ua.category.as_deref(), Some("pc"));
        assert_eq!(ua.vendor.as_deref(), Some("Google"));
    }

    #[test]
    fn unknown_values_are_omitted() {
        let ua = UaParser::default().parse("curl-ish/0");
        assert_eq!(ua.raw, "curl-ish/0");
        assert!(ua.name.is_none());
    }

    #[test]
    fn long_values_are_cut_on_a_char_boundary() {
        let s = "é".repeat(400);
        assert!(truncate(&s, MAX_UA_BYTES).len() <= MAX_UA_BYTES);
    }
}
