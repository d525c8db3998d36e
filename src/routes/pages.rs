//! `GET /optout`, `GET /optin` and `GET /robots.txt`: no events, only
//! cookies and text.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;

use super::{Body, Ctx, Page};

const ROBOTS_TXT: &str = "User-agent: *\nDisallow: /\n";

/// Sets the opt-out cookie and forgets the visitor id.
pub fn optout(ctx: &Ctx<'_>) -> Response<Body> {
    let c = ctx.live.enricher.cookies();
    with_cookies(ctx, Page::OptedOut, &[c.optout(), c.clear_visitor()])
}

/// Clears the opt-out cookie.
pub fn optin(ctx: &Ctx<'_>) -> Response<Body> {
    with_cookies(ctx, Page::OptedIn, &[ctx.live.enricher.cookies().optin()])
}

fn with_cookies(ctx: &Ctx<'_>, page: Page, cookies: &[String]) -> Response<Body> {
    let mut r = ctx.responses.page(StatusCode::OK, page);
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
