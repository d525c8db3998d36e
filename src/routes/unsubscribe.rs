//! `GET|POST /u/{token}`: unsubscribe, RFC 8058 one-click included.
//!
//! A GET never unsubscribes anyone: link scanners and previewers fetch every
//! link of a mail (RFC 8058 §1). It sends the recipient to the sender's own
//! page when the token names one (`u`), else shows a page whose one button
//! POSTs back here. A POST records the unsubscribe: `one_click: true` for
//! the `List-Unsubscribe=One-Click` body mail providers send, `false` for
//! the button's form.

use bytes::Bytes;
use http::header::HeaderValue;
use http::{Method, Response, StatusCode};

use super::html::{escape, page};
use super::{event_from_claims, read_body, redirect, Body, Ctx};
use crate::enrich::Visitor;
use crate::event::EventType;
use crate::token::{Claims, TokenType};

/// The body RFC 8058 one-click unsubscribe POSTs carry.
const ONE_CLICK_BODY: &str = "List-Unsubscribe=One-Click";

pub async fn unsubscribe<B>(ctx: &Ctx<'_>, token: &str, body: B) -> Response<Body>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let post = ctx.req.parts.method == Method::POST;
    let form = if post {
        match read_body(ctx, body).await {
            Ok(b) => Some(b),
            Err(refused) => return refused,
        }
    } else {
        None
    };
    let Some(claims) = ctx.verify(token, TokenType::Unsubscribe) else {
        return ctx.responses.not_found();
    };
    let Some(form) = form else {
        // A GET: the sender's page, or ours with the button.
        if let Some(loc) = claims
            .u
            .as_deref()
            .and_then(|u| HeaderValue::from_str(u).ok())
        {
            return redirect(loc);
        }
        let list = list_name(&claims, &ctx.live.cfg.pages.list_name);
        return ctx.responses.html(StatusCode::OK, confirm_page(list));
    };
    let one_click = is_one_click(&form);
    let done = done_page(list_name(&claims, &ctx.live.cfg.pages.list_name));
    let mut ev = event_from_claims(EventType::Unsubscribe, claims, ctx);
    ev.one_click = Some(one_click);
    ctx.record(ev, Visitor::KeepOnly);
    ctx.responses.html(StatusCode::OK, done)
}

/// The name of the list the recipient leaves: the token's attribute
/// `list`, else `pages.list_name`, else none. Never the campaign id: it is
/// internal ("2024-q3-winback-b") and means nothing to a recipient.
fn list_name<'a>(c: &'a Claims, configured: &'a str) -> Option<&'a str> {
    c.a.as_ref()
        .and_then(|a| a.get("list"))
        .map(String::as_str)
        .filter(|l| !l.trim().is_empty())
        .or(Some(configured).filter(|l| !l.trim().is_empty()))
}

/// What the recipient unsubscribes from, escaped.
fn subject(list: Option<&str>) -> String {
    match list {
        Some(l) => format!("<strong>{}</strong>", escape(l)),
        None => "these emails".to_owned(),
    }
}

/// The page with the one button, posting back to this URL.
fn confirm_page(list: Option<&str>) -> String {
    page(
        "Unsubscribe",
        &format!(
            "<h1>Unsubscribe?</h1>\
<p>Stop receiving {}.</p>\
<form method=\"post\"><input type=\"hidden\" name=\"unsubscribe\" value=\"yes\">\
<button type=\"submit\">Unsubscribe</button></form>\
<p class=\"note\">Nothing changes until you press the button. If you did not mean to \
unsubscribe, you can close this page.</p>",
            subject(list)
        ),
    )
}

/// The confirmation after the POST.
fn done_page(list: Option<&str>) -> String {
    page(
        "Unsubscribed",
        &format!(
            "<h1 role=\"status\">You are unsubscribed</h1>\
<p>You will no longer receive {}.</p>\
<p class=\"note\">It can take a little while to reach every mailing. You can close this page.</p>",
            subject(list)
        ),
    )
}

/// Whether a POST body is RFC 8058's one-click request, form-encoded
/// (`List-Unsubscribe=One-Click`) or as a multipart form field.
fn is_one_click(body: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(body) else {
        return false;
    };
    if text.split('&').any(|pair| pair.trim() == ONE_CLICK_BODY) {
        return true;
    }
    text.contains("name=\"List-Unsubscribe\"") && text.contains("One-Click")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_click_bodies() {
        assert!(is_one_click(b"List-Unsubscribe=One-Click"));
        assert!(is_one_click(b"List-Unsubscribe=One-Click\r\n"));
        assert!(is_one_click(b"a=b&List-Unsubscribe=One-Click"));
        assert!(is_one_click(
            b"--x\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--x--\r\n"
        ));
        assert!(!is_one_click(b""));
        assert!(!is_one_click(b"List-Unsubscribe=Nope"));
    }

    #[test]
    fn pages_name_the_list_never_the_campaign() {
        let mut c = Claims::new(TokenType::Unsubscribe, "2024-q3-winback-b");
        // Nothing configured: no list named, and not the campaign id.
        let p = confirm_page(list_name(&c, ""));
        assert!(p.contains("Stop receiving these emails."), "{p}");
        assert!(!p.contains("winback"), "{p}");
        assert!(p.contains("<form method=\"post\">"));
        // The configured name, escaped.
        let p = done_page(list_name(&c, "<b>Acme</b> & co news"));
        assert!(p.contains("&lt;b&gt;Acme&lt;/b&gt; &amp; co news"), "{p}");
        assert!(!p.contains("<b>Acme"));
        // The token's attribute wins.
        c.a = Some([("list".to_owned(), "Acme Deals".to_owned())].into());
        assert_eq!(list_name(&c, "Acme news"), Some("Acme Deals"));
        assert!(confirm_page(list_name(&c, "Acme news")).contains("<strong>Acme Deals</strong>"));
    }
}
