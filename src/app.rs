//! The shared application state and the public routes (SPEC §1).
//!
//! Every answer is built from bytes and headers prepared at start-up; the
//! only work per request is verifying the token and building the event,
//! which is handed to the sink without waiting. Nothing here logs per
//! request or touches the disk or the network.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use metrics::{counter, histogram, Counter, Histogram};

use crate::config::{Config, OnOptOut};
use crate::enrich::agent::{Classifier, Facts};
use crate::enrich::geo::GeoIp;
use crate::enrich::privacy::{CookieWriter, Signals};
use crate::enrich::{ip, ua::UaCache};
use crate::event::{AgentKind, Event, EventType, Privacy};
use crate::metrics::{
    status_index, Handles, EVENTS, EVENTS_SUPPRESSED, HTTP_DURATION, HTTP_REQUESTS, INVALID_TOKENS,
    STATUS_LABELS,
};
use crate::sink::Sink;
use crate::stats::{Hit, Stats};
use crate::token::{Claims, Keyring, TokenError, TokenType};

/// The body type of every response.
pub type Body = Full<Bytes>;

/// The 43-byte transparent 1x1 GIF89a.
pub const GIF: &[u8; 43] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff\x21\xf9\x04\x01\x00\x00\x00\x00\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00\x3b";

/// The body RFC 8058 one-click unsubscribe POSTs carry.
const ONE_CLICK_BODY: &str = "List-Unsubscribe=One-Click";

const NOT_FOUND_PAGE: &str = "<!doctype html><meta charset=utf-8><title>Not found</title><p>This link is not valid or has expired.</p>\n";
const UNSUBSCRIBED_PAGE: &str = "<!doctype html><meta charset=utf-8><title>Unsubscribed</title><p>You have been unsubscribed.</p>\n";
const ROBOTS_TXT: &str = "User-agent: *\nDisallow: /\n";
const OPTOUT_PAGE: &str = "<!doctype html><meta charset=utf-8><title>Opted out</title><p>You are opted out: this browser's visits and email opens and clicks are no longer recorded with its address or a visitor id.</p><p><a href=\"/optin\">Opt back in</a></p>\n";
const OPTIN_PAGE: &str = "<!doctype html><meta charset=utf-8><title>Opted in</title><p>You are opted back in.</p><p><a href=\"/optout\">Opt out</a></p>\n";

/// Longest beacon parameters kept, in characters.
const MAX_BEACON_NAME: usize = 64;
const MAX_BEACON_URL: usize = 2048;
const MAX_BEACON_ID: usize = 128;

/// Where the server is in its life; `/readyz` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    Starting = 0,
    Ready = 1,
    Draining = 2,
}

/// A clock in milliseconds since the epoch, injectable for tests.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Everything a request handler needs, shared by all connections.
pub struct App {
    /// The effective configuration.
    pub cfg: Config,
    /// Verifies tokens; built once with keyed HMAC states.
    keys: Keyring,
    /// Receives every event; never waited on.
    pub sink: Arc<dyn Sink>,
    /// Parses and classifies User-Agent headers, cached.
    ua: UaCache,
    /// Person, proxy or bot.
    classifier: Arc<Classifier>,
    /// City and ASN lookups.
    pub geo: Arc<GeoIp>,
    /// Set-Cookie values for the visitor and opt-out cookies.
    cookies: CookieWriter,
    /// Live per-campaign counts.
    pub stats: Stats,
    /// Lifecycle phase, read by readiness probes.
    phase: AtomicU8,
    /// The time source for expiry checks and event timestamps.
    clock: Clock,
    /// Headers of every pixel answer, built once and cloned.
    gif_headers: HeaderMap,
    /// Headers of HTML pages.
    html_headers: HeaderMap,
    /// Where invalid click links go, when configured.
    fallback: Option<HeaderValue>,
    /// The metric series every request touches.
    meters: Meters,
}

/// Kept handles of the per-request series (see [`Handles`]).
#[derive(Default)]
struct Meters {
    /// By route, then status.
    requests: Handles<Counter, { Route::COUNT * STATUS_LABELS.len() }>,
    durations: Handles<Histogram, { Route::COUNT }>,
    /// By event type, then agent kind.
    events: Handles<Counter, { EventType::COUNT * AgentKind::COUNT }>,
}

/// Which public route a request took: the `route` metric label. `NotFound`
/// stays last: `COUNT` counts through it.
#[derive(Debug, Clone, Copy)]
enum Route {
    Open,
    Click,
    Unsubscribe,
    Beacon,
    OptOut,
    Robots,
    NotFound,
}

impl Route {
    const COUNT: usize = Route::NotFound as usize + 1;

    fn label(self) -> &'static str {
        match self {
            Route::Open => "open",
            Route::Click => "click",
            Route::Unsubscribe => "unsubscribe",
            Route::Beacon => "beacon",
            Route::OptOut => "optout",
            Route::Robots => "robots",
            Route::NotFound => "not_found",
        }
    }
}

fn headers(pairs: &[(header::HeaderName, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(pairs.len());
    for (k, v) in pairs {
        h.insert(k.clone(), HeaderValue::from_static(v));
    }
    h
}

fn method_str(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        _ => "OTHER",
    }
}

impl App {
    /// Builds the state; fails (naming the key) when a GeoIP database is
    /// missing or invalid.
    pub fn new(cfg: Config, sink: Arc<dyn Sink>) -> Result<App, String> {
        Self::with_clock(cfg, sink, Arc::new(crate::now_ms))
    }

    pub fn with_clock(cfg: Config, sink: Arc<dyn Sink>, clock: Clock) -> Result<App, String> {
        let geo = Arc::new(GeoIp::open(&cfg.geoip)?);
        let classifier = Arc::new(Classifier::new(&cfg.agent));
        let ua = UaCache::new(classifier.clone(), cfg.agent.ua_cache_entries);
        let cookies = CookieWriter::new(&cfg.cookie);
        let keys = Keyring::new(&cfg.effective_keys());
        let gif_headers = headers(&[
            (header::CONTENT_TYPE, "image/gif"),
            (header::CONTENT_LENGTH, "43"),
            (
                header::CACHE_CONTROL,
                "no-store, no-cache, must-revalidate, max-age=0, private",
            ),
            (header::PRAGMA, "no-cache"),
            (header::EXPIRES, "0"),
        ]);
        let html_headers = headers(&[
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CONTENT_SECURITY_POLICY, "default-src 'none'"),
            (header::REFERRER_POLICY, "no-referrer"),
        ]);
        let fallback = Some(cfg.click.fallback_url.as_str())
            .filter(|u| !u.is_empty())
            .map(|u| HeaderValue::from_str(u).expect("validated at config load"));
        let stats = Stats::new(&cfg.stats);
        Ok(App {
            stats,
            cfg,
            keys,
            sink,
            ua,
            classifier,
            geo,
            cookies,
            phase: AtomicU8::new(Phase::Starting as u8),
            clock,
            gif_headers,
            html_headers,
            fallback,
            meters: Meters::default(),
        })
    }

    /// Distinct User-Agents cached.
    pub fn ua_cache_len(&self) -> usize {
        self.ua.len()
    }

    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Relaxed) {
            1 => Phase::Ready,
            2 => Phase::Draining,
            _ => Phase::Starting,
        }
    }

    pub fn set_phase(&self, p: Phase) {
        self.phase.store(p as u8, Ordering::Relaxed);
        metrics::gauge!(crate::metrics::READY).set(if p == Phase::Ready { 1.0 } else { 0.0 });
    }

    /// Answers one public request from `peer`.
    pub async fn handle<B>(&self, req: Request<B>, peer: SocketAddr) -> Response<Body>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let start = Instant::now();
        let (route, resp) = self.route(req, peer).await;
        let status = status_index(resp.status().as_u16());
        let m = &self.meters;
        m.requests
            .get(
                route as usize * STATUS_LABELS.len() + status,
                || counter!(HTTP_REQUESTS, "route" => route.label(), "status" => STATUS_LABELS[status]),
            )
            .increment(1);
        m.durations
            .get(
                route as usize,
                || histogram!(HTTP_DURATION, "route" => route.label()),
            )
            .record(start.elapsed().as_secs_f64());
        resp
    }

    async fn route<B>(&self, req: Request<B>, peer: SocketAddr) -> (Route, Response<Body>)
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (parts, body) = req.into_parts();
        let target_len = parts.uri.path_and_query().map_or(0, |pq| pq.as_str().len());
        if target_len > self.cfg.server.max_uri_bytes {
            return (
                Route::NotFound,
                self.page(StatusCode::URI_TOO_LONG, "<p>Request URI too long.</p>\n"),
            );
        }
        let path = parts.uri.path();
        let now_ms = (self.clock)();
        if let Some(rest) = path.strip_prefix("/o/") {
            let Some(token) = rest.strip_suffix(".gif") else {
                return (Route::NotFound, self.not_found());
            };
            if !matches!(parts.method, Method::GET | Method::HEAD) {
                return (Route::Open, method_not_allowed("GET, HEAD"));
            }
            return (Route::Open, self.open(token, &parts, peer, now_ms));
        }
        if let Some(token) = path.strip_prefix("/c/") {
            if !matches!(parts.method, Method::GET | Method::HEAD) {
                return (Route::Click, method_not_allowed("GET, HEAD"));
            }
            return (Route::Click, self.click(token, &parts, peer, now_ms));
        }
        if let Some(token) = path.strip_prefix("/u/") {
            let resp = match parts.method {
                Method::GET => self.unsubscribe(token, &parts, peer, now_ms, false),
                Method::POST => match self.read_one_click(&parts, body).await {
                    Ok(()) => self.unsubscribe(token, &parts, peer, now_ms, true),
                    Err(resp) => resp,
                },
                _ => method_not_allowed("GET, POST"),
            };
            return (Route::Unsubscribe, resp);
        }
        if path == "/p.gif" {
            if !matches!(parts.method, Method::GET | Method::HEAD) {
                return (Route::Beacon, method_not_allowed("GET, HEAD"));
            }
            return (Route::Beacon, self.beacon(&parts, peer, now_ms));
        }
        if path == "/optout" || path == "/optin" {
            if !matches!(parts.method, Method::GET | Method::HEAD) {
                return (Route::OptOut, method_not_allowed("GET, HEAD"));
            }
            let (page, cookies) = if path == "/optout" {
                (
                    OPTOUT_PAGE,
                    [self.cookies.optout(), self.cookies.clear_visitor()],
                )
            } else {
                (OPTIN_PAGE, [self.cookies.optin(), String::new()])
            };
            let mut r = self.page(StatusCode::OK, page);
            for c in cookies.iter().filter(|c| !c.is_empty()) {
                if let Ok(v) = HeaderValue::from_str(c) {
                    r.headers_mut().append(header::SET_COOKIE, v);
                }
            }
            return (Route::OptOut, r);
        }
        if path == "/robots.txt" {
            if !matches!(parts.method, Method::GET | Method::HEAD) {
                return (Route::Robots, method_not_allowed("GET, HEAD"));
            }
            let mut r = Response::new(Full::new(Bytes::from_static(ROBOTS_TXT.as_bytes())));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            return (Route::Robots, r);
        }
        (Route::NotFound, self.not_found())
    }

    fn open(&self, token: &str, parts: &Parts, peer: SocketAddr, now_ms: i64) -> Response<Body> {
        match self.keys.verify(token, TokenType::Open, now_ms / 1000) {
            Ok(claims) => {
                let sent = claims.s;
                let ev = event_from_claims(EventType::Open, claims, parts, now_ms, None);
                self.record(ev, parts, peer, now_ms, sent, false);
            }
            // An email must never show a broken image: the GIF either way.
            Err(e) => invalid_token("open", &e),
        }
        self.gif()
    }

    fn click(&self, token: &str, parts: &Parts, peer: SocketAddr, now_ms: i64) -> Response<Body> {
        match self.keys.verify(token, TokenType::Click, now_ms / 1000) {
            Ok(claims) => {
                // verify() guarantees a click has a checked `u`, which is
                // printable ASCII and so a valid header value.
                let location = claims
                    .u
                    .as_deref()
                    .and_then(|u| HeaderValue::from_str(u).ok());
                match location {
                    Some(loc) => {
                        let sent = claims.s;
                        let ev = event_from_claims(EventType::Click, claims, parts, now_ms, None);
                        let cookie = self.record(ev, parts, peer, now_ms, sent, true);
                        let mut r = redirect(loc);
                        if let Some(c) = cookie {
                            r.headers_mut().append(header::SET_COOKIE, c);
                        }
                        r
                    }
                    None => self.not_found(),
                }
            }
            Err(e) => {
                invalid_token("click", &e);
                match &self.fallback {
                    Some(loc) => redirect(loc.clone()),
                    None => self.not_found(),
                }
            }
        }
    }

    fn unsubscribe(
        &self,
        token: &str,
        parts: &Parts,
        peer: SocketAddr,
        now_ms: i64,
        one_click: bool,
    ) -> Response<Body> {
        let claims = match self
            .keys
            .verify(token, TokenType::Unsubscribe, now_ms / 1000)
        {
            Ok(c) => c,
            Err(e) => {
                invalid_token("unsubscribe", &e);
                return self.not_found();
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
        let sent = claims.s;
        let ev = event_from_claims(
            EventType::Unsubscribe,
            claims,
            parts,
            now_ms,
            one_click.then_some(true),
        );
        self.record(ev, parts, peer, now_ms, sent, false);
        match target {
            Some(loc) => redirect(loc),
            None => self.page(StatusCode::OK, UNSUBSCRIBED_PAGE),
        }
    }

    /// Reads an RFC 8058 one-click body, refusing anything else.
    async fn read_one_click<B>(&self, parts: &Parts, body: B) -> Result<(), Response<Body>>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let limit = self.cfg.server.max_body_bytes;
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(self.page(
                StatusCode::PAYLOAD_TOO_LARGE,
                "<p>Request body too large.</p>\n",
            ));
        }
        let bytes = match Limited::new(body, limit).collect().await {
            Ok(c) => c.to_bytes(),
            Err(_) => {
                return Err(self.page(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "<p>Request body too large.</p>\n",
                ))
            }
        };
        if is_one_click(&bytes) {
            Ok(())
        } else {
            Err(self.page(
                StatusCode::BAD_REQUEST,
                "<p>A one-click unsubscribe POST carries List-Unsubscribe=One-Click.</p>\n",
            ))
        }
    }

    /// The web beacon: an unsigned event from a page, ad or conversion.
    fn beacon(&self, parts: &Parts, peer: SocketAddr, now_ms: i64) -> Response<Body> {
        let mut ev = Event::new(EventType::Beacon, now_ms, method_str(&parts.method));
        let query = parts.uri.query().unwrap_or("");
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            match &*k {
                "e" => ev.name = Some(clean(&v, MAX_BEACON_NAME)),
                "page" => ev.url = Some(clean(&v, MAX_BEACON_URL)),
                "ref" => ev.referer = Some(clean(&v, MAX_BEACON_URL)),
                "c" => ev.campaign = Some(clean(&v, MAX_BEACON_ID)),
                "src" => ev.src = Some(clean(&v, MAX_BEACON_ID)),
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
                .map(|r| clean(&String::from_utf8_lossy(r.as_bytes()), MAX_BEACON_URL));
        }
        for f in [&mut ev.url, &mut ev.referer, &mut ev.campaign, &mut ev.src] {
            if f.as_deref() == Some("") {
                *f = None;
            }
        }
        let cookie = self.record(ev, parts, peer, now_ms, None, true);
        let mut r = self.gif();
        if let Some(c) = cookie {
            r.headers_mut().append(header::SET_COOKIE, c);
        }
        r
    }

    /// Enriches an event (client address, geo, User-Agent, agent, privacy)
    /// and hands it to the sink. Returns the visitor cookie to set, if a
    /// new visitor was seen on a route that sets one.
    fn record(
        &self,
        mut ev: Event,
        parts: &Parts,
        peer: SocketAddr,
        now_ms: i64,
        sent_at: Option<i64>,
        sets_visitor: bool,
    ) -> Option<HeaderValue> {
        let signals = Signals::read(&parts.headers, &self.cfg.cookie);
        let restricted = signals.restricts(&self.cfg.privacy);
        if restricted && self.cfg.privacy.on_opt_out == OnOptOut::Drop {
            counter!(EVENTS_SUPPRESSED, "reason" => "opt_out").increment(1);
            return None;
        }
        let client = ip::client_ip(peer.ip(), &parts.headers, &self.cfg.server.trusted_proxies);
        let ua = parts
            .headers
            .get(header::USER_AGENT)
            .map(|raw| self.ua.get(&String::from_utf8_lossy(raw.as_bytes())));
        let agent = self.classifier.classify(&Facts {
            route: ev.kind,
            method: &parts.method,
            ip: client,
            ua: ua.as_ref().and_then(|u| u.verdict.as_ref()),
            sent_at,
            now_secs: now_ms / 1000,
        });
        // Geo on the full address; only then is the address cut down.
        ev.geo = self.geo.lookup(client).map(|mut g| {
            if restricted {
                g.city = None;
                g.latitude = None;
                g.longitude = None;
            }
            g
        });
        let mut set_cookie = None;
        if !restricted {
            ev.ip = Some(ip::anonymize(client, self.cfg.privacy.ip_anonymization));
            ev.visitor = signals.visitor.clone();
            if ev.visitor.is_none() && sets_visitor {
                let id = uuid::Uuid::now_v7().to_string();
                set_cookie = HeaderValue::from_str(&self.cookies.visitor(&id)).ok();
                ev.visitor = Some(id);
            }
        }
        if let Some(campaign) = ev.campaign.as_deref() {
            self.stats.record(&Hit {
                kind: ev.kind,
                campaign,
                recipient: ev.recipient.as_deref(),
                link: ev.link.as_deref(),
                country: ev.geo.as_ref().and_then(|g| g.country.as_deref()),
                agent_kind: agent.kind,
                agent_name: agent.name.as_deref(),
                now_ms,
            });
        }
        ev.ua = ua.map(|u| u.ua);
        ev.privacy = Some(Privacy {
            dnt: signals.dnt,
            gpc: signals.gpc,
            opted_out: signals.opted_out,
        });
        let (kind, agent_kind) = (ev.kind, agent.kind);
        self.meters
            .events
            .get(
                kind as usize * AgentKind::COUNT + agent_kind as usize,
                || counter!(EVENTS, "type" => kind.as_str(), "agent_kind" => agent_kind.as_str()),
            )
            .increment(1);
        ev.agent = Some(agent);
        self.sink.submit(ev);
        set_cookie
    }

    fn gif(&self) -> Response<Body> {
        let mut r = Response::new(Full::new(Bytes::from_static(GIF)));
        *r.headers_mut() = self.gif_headers.clone();
        r
    }

    fn page(&self, status: StatusCode, html: &'static str) -> Response<Body> {
        let mut r = Response::new(Full::new(Bytes::from_static(html.as_bytes())));
        *r.status_mut() = status;
        *r.headers_mut() = self.html_headers.clone();
        r
    }

    fn not_found(&self) -> Response<Body> {
        self.page(StatusCode::NOT_FOUND, NOT_FOUND_PAGE)
    }
}

/// The event of a verified token: its fields, nothing from the request yet.
fn event_from_claims(
    kind: EventType,
    claims: Claims,
    parts: &Parts,
    now_ms: i64,
    one_click: Option<bool>,
) -> Event {
    let mut ev = Event::new(kind, now_ms, method_str(&parts.method));
    ev.campaign = Some(claims.c);
    ev.recipient = claims.r;
    ev.message = claims.m;
    ev.link = claims.l;
    if kind != EventType::Open {
        ev.url = claims.u;
    }
    ev.sent_at_ms = claims.s.map(|s| s.saturating_mul(1000));
    ev.attrs = claims.a;
    ev.one_click = one_click;
    ev
}

/// A beacon parameter as given, without control characters, at most `max`
/// characters. No HTML or entity decoding: consumers escape on output.
fn clean(v: &str, max: usize) -> String {
    v.chars().filter(|c| !c.is_control()).take(max).collect()
}

fn invalid_token(route: &'static str, e: &TokenError) {
    counter!(INVALID_TOKENS, "route" => route, "reason" => e.reason()).increment(1);
}

fn redirect(location: HeaderValue) -> Response<Body> {
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

fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
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
    fn gif_is_a_43_byte_gif89a() {
        assert_eq!(GIF.len(), 43);
        assert!(GIF.starts_with(b"GIF89a"));
        assert_eq!(GIF[42], 0x3b);
    }

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
