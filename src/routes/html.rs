//! Pages for people: the opt-out and unsubscribe pages and the error pages.
//! Small, readable on a phone, accessible (language, contrast, labels), no
//! external assets, and everything taken from a request or a token escaped.
//! The one inline style is allowed by its hash in a strict CSP.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256};

/// The style of every page: system fonts, one readable column, contrast
/// above WCAG AA, a large tap target.
const STYLE: &str =
    "body{margin:0;font:17px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;\
color:#1a1a1a;background:#f4f4f5}main{max-width:32rem;margin:12vh auto 0;padding:2rem 1.5rem;\
background:#fff;border-radius:12px;box-shadow:0 1px 4px rgba(0,0,0,.08)}h1{font-size:1.4rem;\
margin:0 0 .75rem}p{margin:.75rem 0}.note{color:#4a4a4a;font-size:.9rem}button{font:inherit;\
font-weight:600;color:#fff;background:#1d4ed8;border:0;border-radius:8px;padding:.8rem 1.4rem;\
min-height:44px;cursor:pointer}button:focus-visible,a:focus-visible{outline:3px solid #f59e0b;\
outline-offset:2px}a{color:#1d4ed8}";

/// The Content-Security-Policy of every page: nothing loads, the style
/// runs by hash, forms post only back here.
pub fn csp() -> String {
    csp_for("")
}

/// The CSP of a page built by [`page_with`] with `extra_style`.
pub fn csp_for(extra_style: &str) -> String {
    let mut h = Sha256::new();
    h.update(STYLE.as_bytes());
    h.update(extra_style.as_bytes());
    let hash = STANDARD.encode(h.finalize());
    format!(
        "default-src 'none'; style-src 'sha256-{hash}'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )
}

/// A whole page: `title` is text (escaped here), `body` trusted HTML.
pub fn page(title: &str, body: &str) -> String {
    page_with(title, body, "", "")
}

/// A page with more in its head (trusted HTML) and more style (allowed by
/// [`csp_for`] with the same `extra_style`).
pub fn page_with(title: &str, body: &str, head: &str, extra_style: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<meta name=\"robots\" content=\"noindex\">{head}<title>{}</title><style>{STYLE}{extra_style}</style></head>\
<body><main>{body}</main></body></html>\n",
        escape(title)
    )
}

/// Text made safe for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A page with a heading and paragraphs of trusted HTML.
pub fn simple(title: &str, paragraphs: &[&str]) -> String {
    let mut body = format!("<h1>{}</h1>", escape(title));
    for p in paragraphs {
        body.push_str("<p>");
        body.push_str(p);
        body.push_str("</p>");
    }
    page(title, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape_and_carry_a_viewport() {
        let p = page("<script>", "<p>x</p>");
        assert!(p.contains("<title>&lt;script&gt;</title>"));
        assert!(p.contains("name=\"viewport\""));
        assert!(p.contains("lang=\"en\""));
        assert_eq!(escape("a\"b'<&>"), "a&quot;b&#39;&lt;&amp;&gt;");
    }

    #[test]
    fn the_csp_allows_exactly_the_style() {
        let csp = csp();
        assert!(csp.starts_with("default-src 'none'; style-src 'sha256-"));
        assert!(!csp.contains("unsafe-inline"));
    }
}
