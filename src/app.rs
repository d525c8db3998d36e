//! The shared state every request reads, and the request's way through it:
//! route ([`crate::router`]), answer ([`crate::routes`]), which records
//! through the [`Recorder`] it is handed.
//!
//! State that a reload may swap (keys, agent rules, GeoIP, privacy, the
//! click fallback) lives in one [`Live`] behind an `ArcSwap`: a request
//! loads it once and sees one consistent version.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Request, Response, StatusCode};

use crate::config::{Config, ServerConfig};
use crate::enrich::geo::GeoIp;
use crate::enrich::RequestFacts;
use crate::error::Error;
use crate::health::Lifecycle;
use crate::live::Live;
use crate::metrics::{Status, HTTP_DURATIONS, HTTP_REQUEST_COUNTS};
use crate::record::Recorder;
use crate::router::{self, Route};
use crate::routes::{self, Body, Ctx, Responses};
use crate::sink::Sink;
use crate::stats::Stats;

/// A clock in milliseconds since the epoch, injectable for tests.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Everything a request handler needs, shared by all connections.
pub struct App {
    /// Listener limits; fixed for the life of the process.
    server: ServerConfig,
    /// The configuration the process started with: what a reload cannot
    /// change is compared with it.
    started: Config,
    /// Keys, rules, geo and privacy settings; swapped whole on reload.
    live: ArcSwap<Live>,
    /// Enriches, counts and sinks the events routes make.
    recorder: Recorder,
    /// Lifecycle phase, read by readiness probes.
    lifecycle: Lifecycle,
    /// The time source for expiry checks and event timestamps.
    clock: Clock,
    /// Headers of every pixel and page answer, built once.
    responses: Responses,
    /// HTTPS state when `server.tls_listen` serves (set once at start-up):
    /// the TLS listener's acceptor, HTTP-01 answers, reload, readiness.
    tls: std::sync::OnceLock<Arc<crate::tls::Tls>>,
}

impl App {
    /// Builds the state; fails (naming the key) when a GeoIP database is
    /// missing or invalid.
    pub fn new(cfg: Config, sink: Arc<dyn Sink>) -> Result<App, Error> {
        Self::with_clock(cfg, sink, Arc::new(crate::now_ms))
    }

    /// As [`App::new`], with the time read from `clock`.
    pub fn with_clock(cfg: Config, sink: Arc<dyn Sink>, clock: Clock) -> Result<App, Error> {
        let geo = Arc::new(GeoIp::open(&cfg.geoip)?);
        Ok(App {
            server: cfg.server.clone(),
            started: cfg.clone(),
            recorder: Recorder::new(sink, Stats::new(&cfg.stats)),
            live: ArcSwap::from_pointee(Live::new(cfg, geo)?),
            lifecycle: Lifecycle::default(),
            clock,
            responses: Responses::default(),
            tls: std::sync::OnceLock::new(),
        })
    }

    /// The listener settings the process started with.
    pub fn server_config(&self) -> &ServerConfig {
        &self.server
    }

    /// The configuration the process started with.
    pub fn started_config(&self) -> &Config {
        &self.started
    }

    /// The reloadable state as of now.
    pub fn live(&self) -> arc_swap::Guard<Arc<Live>> {
        self.live.load()
    }

    /// Swaps in new reloadable state; requests in flight finish on the old.
    pub fn swap_live(&self, live: Live) {
        self.live.store(Arc::new(live));
    }

    /// Hands the HTTPS state to the listeners, reload and readiness; only
    /// the first call counts.
    pub fn set_tls(&self, tls: Arc<crate::tls::Tls>) {
        let _ = self.tls.set(tls);
    }

    pub fn tls(&self) -> Option<&Arc<crate::tls::Tls>> {
        self.tls.get()
    }

    pub fn sink(&self) -> &Arc<dyn Sink> {
        self.recorder.sink()
    }

    pub fn stats(&self) -> &Stats {
        self.recorder.stats()
    }

    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    pub fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    pub fn responses(&self) -> &Responses {
        &self.responses
    }

    /// Answers one public request from `peer`.
    pub async fn handle<B>(&self, req: Request<B>, peer: SocketAddr) -> Response<Body>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let start = Instant::now();
        let (route, resp) = self.dispatch(req, peer).await;
        let (r, status) = (route.label_index(), Status::of(resp.status()));
        HTTP_REQUEST_COUNTS.add(r * Status::COUNT + status as usize, 1);
        HTTP_DURATIONS.record(r, start.elapsed());
        resp
    }

    async fn dispatch<B>(&self, req: Request<B>, peer: SocketAddr) -> (Route, Response<Body>)
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (parts, body) = req.into_parts();
        let target_len = parts.uri.path_and_query().map_or(0, |pq| pq.as_str().len());
        if target_len > self.server.max_uri_bytes {
            let r = self
                .responses
                .page(StatusCode::URI_TOO_LONG, routes::Page::UriTooLong);
            return (Route::NotFound, r);
        }
        // RFC 9112 §3.2: an HTTP/1.1 request without exactly one Host is
        // refused, not recorded (two could disagree on which site it is).
        if parts.version == http::Version::HTTP_11
            && parts.headers.get_all(http::header::HOST).iter().count() != 1
        {
            let r = self
                .responses
                .page(StatusCode::BAD_REQUEST, routes::Page::BadRequest);
            return (Route::NotFound, r);
        }
        let m = router::route(&parts.method, parts.uri.path());
        if let Err(allow) = m.allowed {
            return (m.route, routes::method_not_allowed(allow));
        }
        let live = self.live.load();
        let ctx = Ctx {
            live: &live,
            recorder: &self.recorder,
            responses: &self.responses,
            server: &self.server,
            req: RequestFacts {
                parts: &parts,
                peer,
                now_ms: (self.clock)(),
            },
        };
        let resp = match m.route {
            Route::Open => routes::pixel::open(&ctx, m.token),
            Route::Click => routes::click::click(&ctx, m.token),
            Route::Unsubscribe => routes::unsubscribe::unsubscribe(&ctx, m.token, body).await,
            Route::Beacon => routes::beacon::beacon(&ctx, body).await,
            Route::OptOut => routes::pages::optout(&ctx),
            Route::OptIn => routes::pages::optin(&ctx),
            Route::Robots => routes::pages::robots(),
            // ACME HTTP-01 answers live under a path no route has; only
            // a 404 pays for the lookup.
            Route::NotFound => self
                .tls
                .get()
                .and_then(|t| t.http01_answer(parts.uri.path()))
                .map_or_else(|| self.responses.not_found(), routes::acme_http01),
        };
        (m.route, resp)
    }
}
