//! `GET /optout`, `GET /optin` and `GET /robots.txt`: no events, only
//! cookies and text.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;

use super::{Body, Ctx};

const ROBOTS_TXT: &str = "User-agent: *\nDisallow: /\n";
const OPTOUT_PAGE: &str = "<!doctype html><meta charset=utf-8><title>Opted out</title><p>You are opted out: this browser's visits and email opens and clicks are no longer recorded with its address or a visitor id.</p><p><a href=\"/optin\">Opt back in</a></p>\n";
const OPTIN_PAGE: &str = "<!doctype html><meta charset=utf-8><title>Opted in</title><p>You are opted back in.</p><p><a href=\"/optout\">Opt out</a></p>\n";

/// Sets the opt-out cookie and forgets the visitor id.
pub fn optout(ctx: &Ctx<'_>) -> Response<Body> {
    let c = ctx.live.enricher.cookies();
    with_cookies(ctx, OPTOUT_PAGE, &[c.optout(), c.clear_visitor()])
}

/// Clears the opt-out cookie.
pub fn optin(ctx: &Ctx<'_>) -> Response<Body> {
    with_cookies(ctx, OPTIN_PAGE, &[ctx.live.enricher.cookies().optin()])
}

fn with_cookies(ctx: &Ctx<'_>, page: &'static str, cookies: &[String]) -> Response<Body> {
    let mut r = ctx.app.responses().page(StatusCode::OK, page);
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    r
}

/// Keeps crawlers off tracked links.
pub fn robots() -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from_static(ROBOTS_TXT.as_bytes())));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
