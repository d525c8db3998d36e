//! `GET|HEAD|POST /p.gif?e=&page=&ref=&c=&src=`: the unsigned web beacon
//! for pages, ads, conversions and affiliate entry points. POST is what
//! `navigator.sendBeacon` sends: the event comes from the query, as for a
//! GET; the body is ignored (drained up to `server.max_body_bytes` within
//! the head deadline, so the connection can be reused, never refused), and
//! the answer is 204.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body_util::Full;

use super::{clean, read_body, Body, Ctx, MAX_URL};
use crate::enrich::Visitor;
use crate::event::{Event, EventType};

/// Longest beacon parameters kept, in characters.
const MAX_NAME: usize = 64;
const MAX_ID: usize = 128;

pub async fn beacon<B>(ctx: &Ctx<'_>, body: B) -> Response<Body>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let parts = ctx.req.parts;
    let post = parts.method == Method::POST;
    if post {
        // The content is ignored, but a body that is not HTTP (a malformed
        // chunked encoding) makes the request garbage: refused, no event.
        // An oversized or slow one only costs the connection.
        if let Err(refused) = read_body(ctx, body).await {
            if refused.status() == StatusCode::BAD_REQUEST {
                return refused;
            }
        }
    }
    let mut ev = Event::new(EventType::Beacon, ctx.req.now_ms, ctx.method());
    let query = parts.uri.query().unwrap_or("");
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "e" => ev.name = Some(clean(&v, MAX_NAME)),
            "page" => ev.url = Some(clean(&v, MAX_URL)),
            "ref" => ev.referer = Some(clean(&v, MAX_URL)),
            "c" => ev.campaign = Some(clean(&v, MAX_ID)),
            "src" => ev.src = Some(clean(&v, MAX_ID)),
            _ => {}
        }
    }
    ev.name = ev
        .name
        .filter(|n| !n.is_empty())
        .or_else(|| Some("pageview".to_owned()));
    if ev.url.as_deref().is_none_or(str::is_empty) {
        ev.url = ctx.header_text(header::REFERER, MAX_URL);
    }
    for f in [&mut ev.url, &mut ev.referer, &mut ev.campaign, &mut ev.src] {
        if f.as_deref() == Some("") {
            *f = None;
        }
    }
    let cookie = ctx.record(ev, Visitor::Assign);
    let mut r = if post {
        no_content()
    } else {
        ctx.responses.gif()
    };
    if let Some(c) = cookie {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r
}

fn no_content() -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::NO_CONTENT;
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
