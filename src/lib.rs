//! trackedge: a tracking-pixel and click-redirect edge server.
//!
//! Email clients load open pixels, recipients follow tracked links and
//! one-click unsubscribe, and each request is answered from memory while a
//! lean event describing it goes to a sink off the request path. The product
//! contract (URLs, token format, event schema, metrics, config keys, CLI) is
//! `docs/contract.md`; this crate is its implementation.
//!
//! # Layout
//!
//! A request flows down this list: a listener accepts it, the router picks
//! a route, the route verifies its token and builds an event, the enricher
//! adds what the request tells, the stats count it and a sink takes it.
//!
//! - [`cli`]: the `trackedge` subcommands (`serve`, `sign`, `verify`, ...).
//! - [`config`]: the TOML/env configuration, its embedded defaults and checks;
//!   [`reload`]: swapping in a changed configuration on `SIGHUP`.
//! - [`server`]: listeners, serving threads, connection limits, graceful
//!   shutdown; [`watchdog`]: each connection's idle and head deadlines.
//! - [`health`]: the lifecycle phase and what readiness makes of it.
//! - [`admin`]: `/metrics`, `/livez`, `/readyz`, `/stats`, and the page at `/`
//!   ([`dashboard`]).
//! - [`app`]: the state requests share, and a request's way through it.
//! - [`router`]: the public URL layout, written once: routing, and the URLs
//!   `sign` prints and `verify` reads.
//! - [`routes`]: one file per public route (pixel, click, unsubscribe,
//!   beacon, pages) and the answers they share.
//! - [`token`]: signed token minting and verification.
//! - [`enrich`]: facts derived from the request: client IP, geo,
//!   User-Agent, agent kind, privacy.
//! - [`event`]: the event struct and its JSON encoding.
//! - [`stats`]: live per-campaign counters.
//! - [`sink`]: where events go, behind one trait: a file or stdout
//!   ([`sink::writer`]), or Kafka with a disk spool ([`sink::kafka`]), both
//!   fed through a bounded queue ([`sink::queue`]).
//! - [`metrics`]: metric names, fixed label sets, the Prometheus recorder.
//! - [`tls`]: HTTPS on `server.tls_listen`: certificates by SNI, the
//!   handshake, ACME (`docs/https.md`).
// One reviewed exception: memory-mapping the GeoIP databases (enrich::geo).
#![deny(unsafe_code)]

pub mod admin;
pub mod app;
pub mod cli;
pub mod config;
pub mod dashboard;
pub mod enrich;
pub mod event;
pub mod health;
pub mod metrics;
pub mod reload;
pub mod router;
pub mod routes;
pub mod server;
pub mod sink;
pub mod stats;
pub mod tls;
pub mod token;
pub mod watchdog;

/// The crate version, reported in `trackedge_build_info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// This node's name (the host name; a pod's name on Kubernetes), so
/// brokers and logs can tell the nodes of a fleet apart.
pub fn node_name() -> String {
    let name = gethostname::gethostname().to_string_lossy().into_owned();
    if name.is_empty() {
        "unknown".into()
    } else {
        name
    }
}

/// Milliseconds since the Unix epoch by the system clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
