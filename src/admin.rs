//! The admin listener (contract §4): metrics, health probes, the stats
//! and the page for people ([`crate::dashboard`]).
//!
//! Kept off the public listener so probes and scrapes never compete with
//! tracking traffic and are never exposed to the internet by default.

use std::net::SocketAddr;

use base64::Engine;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;

use crate::app::App;
use crate::health;
use crate::metrics::{ADMIN_AUTH_FAILURES, SINK_QUEUE, STATS_CAMPAIGNS, UA_CACHE_ENTRIES};
use crate::routes::Body;

fn text(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Whether the request may read `/stats`: it carries the configured admin
/// token; or, with no token configured, it comes from loopback. Campaign
/// counts are business data: on a pod address (where probes need the admin
/// listener) the whole cluster could otherwise read them.
fn authorized<B>(app: &App, req: &Request<B>, peer: SocketAddr) -> bool {
    let want = app.server_config().admin_token.0.as_bytes();
    if want.is_empty() {
        return peer.ip().to_canonical().is_loopback();
    }
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    // Bearer for tools; Basic (any user, the token as password) so a
    // browser can open the page: it asks once and remembers. The scheme is
    // case-insensitive (RFC 9110 §11.1).
    let (scheme, credentials) = match auth.iter().position(|&c| c == b' ') {
        Some(i) => (&auth[..i], auth[i + 1..].trim_ascii()),
        None => (auth, &b""[..]),
    };
    let basic = scheme
        .eq_ignore_ascii_case(b"basic")
        .then(|| {
            base64::engine::general_purpose::STANDARD
                .decode(credentials)
                .ok()
        })
        .flatten()
        .and_then(|d| {
            let i = d.iter().position(|&c| c == b':')?;
            Some(d[i + 1..].to_vec())
        });
    let got = match &basic {
        Some(p) => &p[..],
        None if scheme.eq_ignore_ascii_case(b"bearer") => credentials,
        None => b"",
    };
    // Constant time in the token's content.
    let ok = bool::from(subtle::ConstantTimeEq::ct_eq(got, want));
    if !ok {
        metrics::counter!(ADMIN_AUTH_FAILURES).increment(1);
    }
    ok
}

/// Slows down a client address after repeated refused admin requests, so a
/// token cannot be guessed at network speed: from the fourth failure on,
/// each refusal is answered only after a delay that doubles up to
/// [`Throttle::MAX_DELAY`]; the address's attempts queue behind one another
/// whatever the number of its connections.
#[derive(Default)]
pub struct Throttle {
    /// Failures and the time the next answer may go, by client address.
    by_addr:
        std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, (u32, std::time::Instant)>>,
}

impl Throttle {
    pub const MAX_DELAY: std::time::Duration = std::time::Duration::from_secs(2);
    /// Addresses remembered; beyond, the table starts over (bounded memory).
    const MAX_ADDRS: usize = 4096;
    /// Failures answered at once before delays begin.
    const FREE: u32 = 3;

    /// How long to hold a refusal to `ip`.
    pub fn refused(&self, ip: std::net::IpAddr) -> std::time::Duration {
        use std::time::{Duration, Instant};
        let now = Instant::now();
        let mut m = self.by_addr.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= Self::MAX_ADDRS && !m.contains_key(&ip) {
            m.clear();
        }
        let e = m.entry(ip).or_insert((0, now));
        e.0 = e.0.saturating_add(1);
        if e.0 <= Self::FREE {
            return Duration::ZERO;
        }
        let step = Duration::from_millis(50)
            .saturating_mul(1 << (e.0 - Self::FREE).min(6))
            .min(Self::MAX_DELAY);
        let at = e.1.max(now) + step;
        e.1 = at;
        at - now
    }
}

/// A page for people, under the dashboard's CSP.
fn html(status: StatusCode, page: String) -> Response<Body> {
    let mut r = text(status, "text/html; charset=utf-8", page);
    let csp = crate::routes::html::csp_for(crate::dashboard::STYLE);
    if let Ok(v) = HeaderValue::from_str(&csp) {
        r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    r.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

fn json(status: StatusCode, v: &impl serde::Serialize) -> Response<Body> {
    let body = serde_json::to_vec(v).unwrap_or_default();
    text(status, "application/json", body)
}

/// `/stats` and `/stats/campaigns/{campaign}`.
fn stats<B>(app: &App, req: &Request<B>, path: &str, peer: SocketAddr) -> Response<Body> {
    if !authorized(app, req, peer) {
        let msg = if app.server_config().admin_token.0.is_empty() {
            "set server.admin_token to read stats from beyond loopback\n"
        } else {
            "a bearer token is required\n"
        };
        let mut r = text(StatusCode::UNAUTHORIZED, "text/plain; charset=utf-8", msg);
        let challenge = if path == "/" || path.starts_with("/campaigns/") {
            "Basic realm=\"trackedge\", charset=\"UTF-8\""
        } else {
            "Bearer realm=\"trackedge\""
        };
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
        return r;
    }
    if path == "/" {
        let page = crate::dashboard::render(app.stats(), &app.recorder().rates().per_second(), 5);
        return html(StatusCode::OK, page);
    }
    if let Some(name) = path.strip_prefix("/campaigns/") {
        let name = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
        return match crate::dashboard::render_campaign(app.stats(), &name, crate::now_ms(), 5) {
            Some(page) => html(StatusCode::OK, page),
            None => html(
                StatusCode::NOT_FOUND,
                crate::routes::html::page_with(
                    "Unknown campaign",
                    "<h1>Unknown campaign</h1><p>This node has not counted that campaign \
                     (yet, or any more).</p><p><a href=\"../\">All campaigns</a></p>",
                    "",
                    crate::dashboard::STYLE,
                ),
            ),
        };
    }
    if path == "/stats" {
        return json(
            StatusCode::OK,
            &serde_json::json!({ "campaigns": app.stats().totals() }),
        );
    }
    let name = path.strip_prefix("/stats/campaigns/").unwrap_or_default();
    let name = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
    match app.stats().campaign(&name) {
        Some(report) => json(StatusCode::OK, &report),
        None => json(
            StatusCode::NOT_FOUND,
            &serde_json::json!({ "error": "unknown campaign" }),
        ),
    }
}

/// Answers one admin request.
pub fn handle<B>(app: &App, req: Request<B>, peer: SocketAddr) -> Response<Body> {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        let mut r = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "method not allowed\n",
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match req.uri().path() {
        "/metrics" => {
            metrics::gauge!(SINK_QUEUE).set(app.sink().pending() as f64);
            health::sink_note(app.sink().as_ref());
            metrics::gauge!(STATS_CAMPAIGNS).set(app.stats().len() as f64);
            metrics::gauge!(UA_CACHE_ENTRIES).set(app.live().enricher.ua_cache_len() as f64);
            let body = crate::metrics::render();
            text(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                body,
            )
        }
        "/livez" => text(StatusCode::OK, "text/plain; charset=utf-8", "ok\n"),
        "/readyz" | "/healthz" => {
            use health::Readiness;
            let ready = health::readiness(app.lifecycle().phase(), app.sink().as_ref());
            // TLS trouble (an ACME CA away) degrades too, never unreadies.
            let ready = match (ready, app.tls().and_then(|t| t.note())) {
                (Readiness::Ready, Some(b)) => Readiness::Degraded(b),
                (Readiness::Degraded(a), Some(b)) => Readiness::Degraded(format!("{a}; {b}")),
                (r, _) => r,
            };
            match ready {
                Readiness::Ready => text(StatusCode::OK, "text/plain; charset=utf-8", "ready\n"),
                Readiness::Degraded(why) => text(
                    StatusCode::OK,
                    "text/plain; charset=utf-8",
                    format!("ready, degraded: {why}\n"),
                ),
                Readiness::Unready(why) => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain; charset=utf-8",
                    format!("not ready: {why}\n"),
                ),
            }
        }
        p if p == "/"
            || p == "/stats"
            || p.starts_with("/stats/campaigns/")
            || p.starts_with("/campaigns/") =>
        {
            stats(app, &req, p, peer)
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found\n",
        ),
    }
}
