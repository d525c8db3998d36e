//! `GET|HEAD /o/{token}.gif`: the open pixel. Always the GIF: an email must
//! never show a broken image, whatever the token.

use http::Response;

use super::{event_from_claims, invalid_token, Body, Ctx};
use crate::enrich::Visitor;
use crate::event::EventType;
use crate::token::TokenType;

pub fn open(ctx: &Ctx<'_>, token: &str) -> Response<Body> {
    match ctx
        .live
        .keys
        .verify(token, TokenType::Open, ctx.req.now_ms / 1000)
    {
        Ok(claims) => {
            let ev = event_from_claims(EventType::Open, claims, ctx);
            // Mail clients keep no cookies: no visitor id is handed out.
            ctx.record(ev, Visitor::KeepOnly);
        }
        Err(e) => invalid_token("open", &e),
    }
    ctx.app.responses().gif()
}
