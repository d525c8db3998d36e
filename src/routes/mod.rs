//! The public routes (contract §1), one file each, and the answers they share.
//!
//! Every answer is built from bytes and headers prepared at start-up; the
//! only work per request is verifying the token and building the event,
//! which [`Ctx::record`] hands on without waiting. Nothing here logs per
//! request or touches the disk or the network.

pub mod beacon;
pub mod click;
pub mod pages;
pub mod pixel;
pub mod unsubscribe;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body_util::Full;

use crate::app::{App, Live};
use crate::enrich::{RequestFacts, Visitor};
use crate::event::Event;
use crate::token::{Claims, TokenError};

/// The body type of every response.
pub type Body = Full<Bytes>;

/// The 43-byte transparent 1x1 GIF89a.
pub const GIF: &[u8; 43] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff\x21\xf9\x04\x01\x00\x00\x00\x00\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00\x3b";

const NOT_FOUND_PAGE: &str = "<!doctype html><meta charset=utf-8><title>Not found</title><p>This link is not valid or has expired.</p>\n";

/// What a route handler sees of a request.
pub struct Ctx<'a> {
    pub app: &'a App,
    /// The reloadable state, as of this request.
    pub live: &'a Live,
    pub req: RequestFacts<'a>,
}

impl Ctx<'_> {
    /// Enriches `ev` and hands it on; the visitor cookie to set, if any.
    pub fn record(&self, ev: Event, visitor: Visitor) -> Option<HeaderValue> {
        self.app.record(self.live, ev, &self.req, visitor)
    }

    pub fn method(&self) -> &'static str {
        method_str(&self.req.parts.method)
    }
}

/// Headers prepared once and cloned into every answer of their kind.
pub struct Responses {
    gif: HeaderMap,
    html: HeaderMap,
}

impl Default for Responses {
    fn default() -> Self {
        Responses {
            gif: headers(&[
                (header::CONTENT_TYPE, "image/gif"),
                (header::CONTENT_LENGTH, "43"),
                (
                    header::CACHE_CONTROL,
                    "no-store, no-cache, must-revalidate, max-age=0, private",
                ),
                (header::PRAGMA, "no-cache"),
                (header::EXPIRES, "0"),
            ]),
            html: headers(&[
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (header::CONTENT_SECURITY_POLICY, "default-src 'none'"),
                (header::REFERRER_POLICY, "no-referrer"),
            ]),
        }
    }
}

impl Responses {
    /// The pixel.
    pub fn gif(&self) -> Response<Body> {
        let mut r = Response::new(Full::new(Bytes::from_static(GIF)));
        *r.headers_mut() = self.gif.clone();
        r
    }

    /// A page for people.
    pub fn page(&self, status: StatusCode, html: &'static str) -> Response<Body> {
        let mut r = Response::new(Full::new(Bytes::from_static(html.as_bytes())));
        *r.status_mut() = status;
        *r.headers_mut() = self.html.clone();
        r
    }

    pub fn not_found(&self) -> Response<Body> {
        self.page(StatusCode::NOT_FOUND, NOT_FOUND_PAGE)
    }
}

fn headers(pairs: &[(header::HeaderName, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(pairs.len());
    for (k, v) in pairs {
        h.insert(k.clone(), HeaderValue::from_static(v));
    }
    h
}

/// The event's `method`.
pub fn method_str(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        _ => "OTHER",
    }
}

/// A 302 to `location`, uncached.
pub fn redirect(location: HeaderValue) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::FOUND;
    let h = r.headers_mut();
    h.insert(header::LOCATION, location);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // The tracked URL carries the token: keep it out of the destination's logs.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

/// A 405 naming the methods the route answers.
pub fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

/// Counts a token that did not verify on `route`.
pub fn invalid_token(route: &'static str, e: &TokenError) {
    crate::metrics::invalid_token(route, e.reason());
}

/// The event of a verified token: its fields, nothing from the request yet.
pub fn event_from_claims(kind: crate::event::EventType, claims: Claims, ctx: &Ctx<'_>) -> Event {
    let mut ev = Event::new(kind, ctx.req.now_ms, ctx.method());
    ev.campaign = Some(claims.c);
    ev.recipient = claims.r;
    ev.message = claims.m;
    ev.link = claims.l;
    if kind != crate::event::EventType::Open {
        ev.url = claims.u;
    }
    ev.sent_at_ms = claims.s.map(|s| s.saturating_mul(1000));
    ev.attrs = claims.a;
    ev
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gif_is_a_43_byte_gif89a() {
        assert_eq!(GIF.len(), 43);
        assert!(GIF.starts_with(b"GIF89a"));
        assert_eq!(GIF[42], 0x3b);
    }
}
