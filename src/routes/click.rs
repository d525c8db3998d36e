//! `GET|HEAD /c/{token}`: the tracked link. A 302 to exactly the
//! destination the token carries; anything else is a 404 page or the
//! configured fallback, never a redirect to a URL no valid token carries.

use http::header::{self, HeaderValue};
use http::Response;

use super::{event_from_claims, redirect, Body, Ctx, MAX_URL};
use crate::enrich::Visitor;
use crate::event::EventType;
use crate::token::TokenType;

pub fn click(ctx: &Ctx<'_>, token: &str) -> Response<Body> {
    let Some(claims) = ctx.verify(token, TokenType::Click) else {
        return match &ctx.live.fallback {
            Some(loc) => redirect(loc.clone()),
            None => ctx.responses.not_found(),
        };
    };
    // verify() guarantees a click has a checked `u`, which is printable
    // ASCII and so a valid header value.
    let Some(location) = claims
        .u
        .as_deref()
        .and_then(|u| HeaderValue::from_str(u).ok())
    else {
        return ctx.responses.not_found();
    };
    let mut ev = event_from_claims(EventType::Click, claims, ctx);
    // How the person got here: the page or mail client the link was in.
    ev.referer = ctx.header_text(header::REFERER, MAX_URL);
    let cookie = ctx.record(ev, Visitor::Assign);
    let mut r = redirect(location);
    if let Some(c) = cookie {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r
}
