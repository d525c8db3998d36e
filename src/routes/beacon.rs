//! `GET|HEAD /p.gif?e=&page=&ref=&c=&src=`: the unsigned web beacon for
//! pages, ads, conversions and affiliate entry points.

use http::header;
use http::Response;

use super::{Body, Ctx};
use crate::enrich::Visitor;
use crate::event::{Event, EventType};

/// Longest beacon parameters kept, in characters.
const MAX_NAME: usize = 64;
const MAX_URL: usize = 2048;
const MAX_ID: usize = 128;

pub fn beacon(ctx: &Ctx<'_>) -> Response<Body> {
    let parts = ctx.req.parts;
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
        ev.url = parts
            .headers
            .get(header::REFERER)
            .map(|r| clean(&String::from_utf8_lossy(r.as_bytes()), MAX_URL));
    }
    for f in [&mut ev.url, &mut ev.referer, &mut ev.campaign, &mut ev.src] {
        if f.as_deref() == Some("") {
            *f = None;
        }
    }
    let cookie = ctx.record(ev, Visitor::Assign);
    let mut r = ctx.app.responses().gif();
    if let Some(c) = cookie {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r
}

/// A parameter as given, without control characters, at most `max`
/// characters. No HTML or entity decoding: consumers escape on output.
pub fn clean(v: &str, max: usize) -> String {
    v.chars().filter(|c| !c.is_control()).take(max).collect()
}
