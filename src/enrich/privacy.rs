//! Privacy signals: Do Not Track, Global Privacy Control, the opt-out
//! cookie, and the first-party visitor cookie.

use http::header::{HeaderMap, COOKIE};

use crate::config::{CookieConfig, PrivacyConfig, SameSite};

/// Longest visitor id accepted from a cookie.
const MAX_VISITOR_CHARS: usize = 64;

/// What a request says about its sender's privacy wishes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signals {
    pub dnt: bool,
    pub gpc: bool,
    pub opted_out: bool,
    /// The visitor id from the visitor cookie, when well-formed.
    pub visitor: Option<String>,
}

impl Signals {
    /// Reads the headers and cookies of a request.
    pub fn read(headers: &HeaderMap, cookies: &CookieConfig) -> Signals {
        let flag = |name: &str| {
            headers
                .get(name)
                .is_some_and(|v| v.as_bytes().trim_ascii() == b"1")
        };
        let mut s = Signals {
            dnt: flag("dnt"),
            gpc: flag("sec-gpc"),
            ..Signals::default()
        };
        for line in headers.get_all(COOKIE) {
            let Ok(line) = line.to_str() else { continue };
            for pair in line.split(';') {
                let Some((k, v)) = pair.trim().split_once('=') else {
                    continue;
                };
                if k == cookies.optout_name && v == "1" {
                    s.opted_out = true;
                } else if k == cookies.name && valid_visitor(v) {
                    s.visitor = Some(v.to_owned());
                }
            }
        }
        s
    }

    /// Whether this request must be treated as opted out.
    pub fn restricts(&self, cfg: &PrivacyConfig) -> bool {
        self.opted_out || (cfg.honor_dnt && self.dnt) || (cfg.honor_gpc && self.gpc)
    }
}

fn valid_visitor(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= MAX_VISITOR_CHARS
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// `Set-Cookie` values, with the attributes fixed at start-up.
pub struct CookieWriter {
    visitor_name: String,
    optout_name: String,
    /// `; Path=/; Max-Age=...; Domain=...; Secure; HttpOnly; SameSite=...`
    visitor_attrs: String,
    optout_attrs: String,
    clear_attrs: String,
}

impl CookieWriter {
    pub fn new(c: &CookieConfig) -> CookieWriter {
        let mut common = String::from("; Path=/");
        if !c.domain.is_empty() {
            common.push_str("; Domain=");
            common.push_str(&c.domain);
        }
        if c.secure {
            common.push_str("; Secure");
        }
        if c.http_only {
            common.push_str("; HttpOnly");
        }
        common.push_str(match c.same_site {
            SameSite::Lax => "; SameSite=Lax",
            SameSite::Strict => "; SameSite=Strict",
            SameSite::None => "; SameSite=None",
        });
        let age = |days: u64| format!("; Max-Age={}", days * 86_400);
        CookieWriter {
            visitor_name: c.name.clone(),
            optout_name: c.optout_name.clone(),
            visitor_attrs: format!("{}{common}", age(c.lifetime_days)),
            // The opt-out outlives the visitor cookie: five years.
            optout_attrs: format!("{}{common}", age(5 * 365)),
            clear_attrs: format!("; Max-Age=0{common}"),
        }
    }

    /// Sets the visitor cookie to `id`.
    pub fn visitor(&self, id: &str) -> String {
        format!("{}={id}{}", self.visitor_name, self.visitor_attrs)
    }

    /// Removes the visitor cookie.
    pub fn clear_visitor(&self) -> String {
        format!("{}={}", self.visitor_name, self.clear_attrs)
    }

    /// Sets the opt-out cookie.
    pub fn optout(&self) -> String {
        format!("{}=1{}", self.optout_name, self.optout_attrs)
    }

    /// Removes the opt-out cookie.
    pub fn optin(&self) -> String {
        format!("{}={}", self.optout_name, self.clear_attrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use http::HeaderValue;

    #[test]
    fn signals() {
        let cfg = Config::from_toml("").unwrap();
        let mut h = HeaderMap::new();
        h.insert("dnt", HeaderValue::from_static("1"));
        h.append(
            COOKIE,
            HeaderValue::from_static("a=b; tev=0192-abc; trackedge_optout=1"),
        );
        let s = Signals::read(&h, &cfg.cookie);
        assert!(s.dnt && !s.gpc && s.opted_out);
        assert_eq!(s.visitor.as_deref(), Some("0192-abc"));
        assert!(s.restricts(&cfg.privacy));
        let mut h = HeaderMap::new();
        h.insert("dnt", HeaderValue::from_static("1"));
        h.append(COOKIE, HeaderValue::from_static("tev=<script>"));
        let s = Signals::read(&h, &cfg.cookie);
        assert_eq!(s.visitor, None);
        let no_dnt = Config::from_toml("[privacy]\nhonor_dnt = false\n").unwrap();
        assert!(!s.restricts(&no_dnt.privacy));
    }

    #[test]
    fn cookie_attributes() {
        let cfg = Config::from_toml("[cookie]\ndomain = \"t.example.com\"\n").unwrap();
        let w = CookieWriter::new(&cfg.cookie);
        assert_eq!(
            w.visitor("v1"),
            "tev=v1; Max-Age=31536000; Path=/; Domain=t.example.com; Secure; HttpOnly; SameSite=Lax"
        );
        assert!(w
            .optout()
            .starts_with("trackedge_optout=1; Max-Age=157680000"));
        assert!(w.optin().starts_with("trackedge_optout=; Max-Age=0"));
    }
}
