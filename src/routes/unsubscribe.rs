//! `GET|POST /u/{token}`: unsubscribe, RFC 8058 one-click included.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode};
use http_body_util::{BodyExt, Limited};

use super::{event_from_claims, invalid_token, redirect, Body, Ctx};
use crate::enrich::Visitor;
use crate::event::EventType;
use crate::token::TokenType;

/// The body RFC 8058 one-click unsubscribe POSTs carry.
const ONE_CLICK_BODY: &str = "List-Unsubscribe=One-Click";

const UNSUBSCRIBED_PAGE: &str = "<!doctype html><meta charset=utf-8><title>Unsubscribed</title><p>You have been unsubscribed.</p>\n";

pub async fn unsubscribe<B>(ctx: &Ctx<'_>, token: &str, body: B) -> Response<Body>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let one_click = ctx.req.parts.method == Method::POST;
    if one_click {
        if let Err(resp) = read_one_click(ctx, body).await {
            return resp;
        }
    }
    let claims = match ctx
        .live
        .keys
        .verify(token, TokenType::Unsubscribe, ctx.req.now_ms / 1000)
    {
        Ok(c) => c,
        Err(e) => {
            invalid_token("unsubscribe", &e);
            return ctx.app.responses().not_found();
        }
    };
    let target = if one_click {
        None
    } else {
        claims
            .u
            .as_deref()
            .and_then(|u| HeaderValue::from_str(u).ok())
    };
    let mut ev = event_from_claims(EventType::Unsubscribe, claims, ctx);
    ev.one_click = one_click.then_some(true);
    ctx.record(ev, Visitor::KeepOnly);
    match target {
        Some(loc) => redirect(loc),
        None => ctx.app.responses().page(StatusCode::OK, UNSUBSCRIBED_PAGE),
    }
}

/// Reads an RFC 8058 one-click body, refusing anything else.
async fn read_one_click<B>(ctx: &Ctx<'_>, body: B) -> Result<(), Response<Body>>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let pages = ctx.app.responses();
    let too_large = || {
        pages.page(
            StatusCode::PAYLOAD_TOO_LARGE,
            "<p>Request body too large.</p>\n",
        )
    };
    let limit = ctx.app.server_config().max_body_bytes;
    if declared_length(ctx.req.parts).is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => return Err(too_large()),
    };
    if is_one_click(&bytes) {
        Ok(())
    } else {
        Err(pages.page(
            StatusCode::BAD_REQUEST,
            "<p>A one-click unsubscribe POST carries List-Unsubscribe=One-Click.</p>\n",
        ))
    }
}

fn declared_length(parts: &Parts) -> Option<u64> {
    parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
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
}
