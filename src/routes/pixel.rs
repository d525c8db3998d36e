//! `GET|HEAD /o/{token}.gif`: the open pixel. Always the GIF: an email must
//! never show a broken image, whatever the token.

use http::Response;

use super::{event_from_claims, Body, Ctx};
use crate::enrich::Visitor;
use crate::event::EventType;
use crate::token::TokenType;

pub fn open(ctx: &Ctx<'_>, token: &str) -> Response<Body> {
    if let Some(claims) = ctx.verify(token, TokenType::Open) {
        let ev = event_from_claims(EventType::Open, claims, ctx);
        // Mail clients keep no cookies: no visitor id is handed out.
        ctx.record(ev, Visitor::KeepOnly);
    }
    ctx.responses.gif()
}
