//! The public routes (contract §1), one file each, and the answers they share.
//!
//! Every answer is built from bytes and headers prepared at start-up; the
//! only work per request is verifying the token and building the event,
//! which [`Ctx::record`] hands to the [`Recorder`] without waiting. Routes
//! see only what their [`Ctx`] hands them, never the app that called them. Nothing here logs per
//! request or touches the disk or the network.

pub mod beacon;
pub mod click;
pub mod html;
pub mod pages;
pub mod pixel;
pub mod unsubscribe;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body_util::Full;

use crate::config::ServerConfig;
use crate::enrich::{RequestFacts, Visitor};
use crate::event::Event;
use crate::live::Live;
use crate::record::Recorder;
use crate::token::{Claims, TokenType};

/// Longest URL kept in an event's text fields (`url`, `referer`), in
/// characters: what browsers and the token's `u` allow.
pub const MAX_URL: usize = 2048;

/// The body type of every response.
pub type Body = Full<Bytes>;

/// The 43-byte transparent 1x1 GIF89a.
pub const GIF: &[u8; 43] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff\x21\xf9\x04\x01\x00\x00\x00\x00\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00\x3b";

/// What a route handler sees of a request: the request, and what it needs
/// to answer and record it.
pub struct Ctx<'a> {
    /// The reloadable state, as of this request.
    pub live: &'a Live,
    /// Where the route's event goes.
    pub recorder: &'a Recorder,
    /// Prepared answers.
    pub responses: &'a Responses,
    /// Listener limits (body size, deadlines).
    pub server: &'a ServerConfig,
    pub req: RequestFacts<'a>,
}

impl Ctx<'_> {
    /// Enriches `ev` and hands it on; the visitor cookie to set, if any.
    pub fn record(&self, ev: Event, visitor: Visitor) -> Option<HeaderValue> {
        self.recorder.record(self.live, ev, &self.req, visitor)
    }

    pub fn method(&self) -> &'static str {
        method_str(&self.req.parts.method)
    }
}

/// The fixed pages for people.
#[derive(Debug, Clone, Copy)]
pub enum Page {
    NotFound,
    OptedOut,
    OptedIn,
    TooLarge,
    TooSlow,
    UriTooLong,
    BadRequest,
}

/// Headers and pages prepared once and cloned into every answer of their kind.
pub struct Responses {
    gif: HeaderMap,
    html: HeaderMap,
    pages: [Bytes; 7],
}

impl Default for Responses {
    fn default() -> Self {
        let page = |title: &str, text: &[&str]| Bytes::from(html::simple(title, text));
        let mut html_headers = headers(&[
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ]);
        html_headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_str(&html::csp()).expect("the CSP is ASCII"),
        );
        Responses {
            html: html_headers,
            pages: [
                page(
                    "Link not valid",
                    &[
                        "This link is not valid or has expired. If you copied it from an email, \
                       check that the whole link was copied; otherwise, nothing more is needed: \
                       you can close this page.",
                    ],
                ),
                page(
                    "You are opted out",
                    &[
                        "Visits from this browser, and the opens and clicks of emails read in it, \
                         are no longer recorded with its address or a visitor id.",
                        "<a href=\"/optin\">Opt back in</a>",
                    ],
                ),
                page(
                    "You are opted back in",
                    &[
                        "Your choice is saved in this browser.",
                        "<a href=\"/optout\">Opt out</a>",
                    ],
                ),
                page(
                    "Request too large",
                    &["The request body is larger than this server accepts."],
                ),
                page(
                    "Request too slow",
                    &["The request body did not arrive in time. Please try again."],
                ),
                page(
                    "Link too long",
                    &["This address is longer than this server accepts."],
                ),
                page("Bad request", &["This request could not be understood."]),
            ],
            gif: headers(&[
                (header::CONTENT_TYPE, "image/gif"),
                (header::CONTENT_LENGTH, "43"),
                (
                    header::CACHE_CONTROL,
                    "no-store, no-cache, must-revalidate, max-age=0, private",
                ),
                (header::PRAGMA, "no-cache"),
                (header::EXPIRES, "0"),
                // Pages that require CORP (COEP: require-corp) can embed it.
                (
                    header::HeaderName::from_static("cross-origin-resource-policy"),
                    "cross-origin",
                ),
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

    /// A fixed page for people.
    pub fn page(&self, status: StatusCode, page: Page) -> Response<Body> {
        self.html(status, self.pages[page as usize].clone())
    }

    /// A page for people built for this request ([`html::page`]).
    pub fn html(&self, status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
        let mut r = Response::new(Full::new(body.into()));
        *r.status_mut() = status;
        *r.headers_mut() = self.html.clone();
        r
    }

    pub fn not_found(&self) -> Response<Body> {
        self.page(StatusCode::NOT_FOUND, Page::NotFound)
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

/// The answer to an ACME HTTP-01 validation request (RFC 8555 §8.3): the
/// key authorization is the whole body.
pub fn acme_http01(key_authorization: String) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(key_authorization)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A 405 naming the methods the route answers; never cached.
pub fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    let h = r.headers_mut();
    h.insert(header::ALLOW, HeaderValue::from_static(allow));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Reads a request body of at most `server.max_body_bytes`, within
/// `server.header_read_timeout`: a body that never comes must not hold
/// the stream (on HTTP/2, a slot of the connection) forever. Refusals are
/// the answers to send.
pub async fn read_body<B>(ctx: &Ctx<'_>, body: B) -> Result<Bytes, Response<Body>>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use http_body_util::{BodyExt, Limited};
    let pages = ctx.responses;
    let server = ctx.server;
    let limit = server.max_body_bytes;
    let declared = ctx
        .req
        .parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(pages.page(StatusCode::PAYLOAD_TOO_LARGE, Page::TooLarge));
    }
    let deadline = server.header_read_timeout;
    match tokio::time::timeout(deadline, Limited::new(body, limit).collect()).await {
        Ok(Ok(c)) => Ok(c.to_bytes()),
        // Over the limit is 413; anything else (a malformed chunked
        // encoding, a body cut short) is the client's garbage: 400.
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err(pages.page(StatusCode::PAYLOAD_TOO_LARGE, Page::TooLarge))
        }
        Ok(Err(_)) => Err(pages.page(StatusCode::BAD_REQUEST, Page::BadRequest)),
        Err(_) => Err(pages.page(StatusCode::REQUEST_TIMEOUT, Page::TooSlow)),
    }
}

impl Ctx<'_> {
    /// The claims of `token` on the route of type `kind`, or None, the
    /// refusal counted in `trackedge_invalid_tokens_total`.
    pub fn verify(&self, token: &str, kind: TokenType) -> Option<Claims> {
        match self.live.keys.verify(token, kind, self.req.now_ms / 1000) {
            Ok(c) => Some(c),
            Err(e) => {
                crate::metrics::invalid_token(kind, e.reason());
                None
            }
        }
    }

    /// A header as text for an event: control characters dropped, at most
    /// `max` characters; None when absent or empty.
    pub fn header_text(&self, name: header::HeaderName, max: usize) -> Option<String> {
        self.req
            .parts
            .headers
            .get(name)
            .map(|v| clean(&String::from_utf8_lossy(v.as_bytes()), max))
            .filter(|v| !v.is_empty())
    }
}

/// A value as given, without control characters, at most `max`
/// characters. No HTML or entity decoding: consumers escape on output.
pub fn clean(v: &str, max: usize) -> String {
    v.chars().filter(|c| !c.is_control()).take(max).collect()
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
