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
//! Dependencies run downhill, in this order: a module uses only those
//! below it (a test checks there is no circle).
//!
//! - [`cli`]: the `trackedge` subcommands; `serve` binds and calls
//!   [`serve`], the one way in that tests call too.
//! - [`serve`]: start-up (pre-serve checks, sink, app, reloader) and the
//!   [`serve::Running`] handle tests get; [`reload`]: `SIGHUP`.
//! - [`server`]: listeners, serving threads, graceful shutdown;
//!   [`limits`]: connections per client address; [`watchdog`]: each
//!   connection's idle and head deadlines.
//! - [`admin`]: `/metrics`, `/livez`, `/readyz`, `/stats`, and the page at `/`
//!   ([`dashboard`]); [`health`]: the lifecycle phase and readiness.
//! - [`app`]: the state requests share; routes a request and counts it.
//! - [`routes`]: one file per public route (pixel, click, unsubscribe,
//!   beacon, pages); each is handed a `Ctx` and records through it.
//! - [`record`]: enrich, count and sink an event ([`record::Recorder`]);
//!   [`live`]: the state a reload swaps (keys, enricher, fallback).
//! - [`router`]: the public URL layout, written once: routing, and the URLs
//!   `sign` prints and `verify` reads.
//! - [`enrich`]: facts derived from the request: client IP, geo,
//!   User-Agent, agent kind, privacy.
//! - [`stats`]: live per-campaign counters.
//! - [`sink`]: where events go, behind one trait: a file or stdout
//!   ([`sink::writer`]), or Kafka with a disk spool ([`sink::kafka`]), both
//!   fed through a bounded queue ([`sink::queue`]).
//! - [`token`]: signed token minting and verification; [`event`]: the event
//!   and its JSON encoding.
//! - [`config`]: the TOML/env configuration, its embedded defaults and
//!   checks; [`metrics`]: metric names and label vocabularies;
//!   [`error`]: start-up errors and their exit codes.
//! - [`tls`]: HTTPS on `server.tls_listen`: certificates by SNI, the
//!   handshake, ACME (`docs/https.md`).
// Reviewed exceptions, each marked `allow(unsafe_code)`: memory-mapping the
// GeoIP databases (enrich::geo), librdkafka's produce call below rdkafka's
// safe API (sink::kafka::producer), the sink threads' scheduling policy
// (sink::in_background).
#![deny(unsafe_code)]

pub mod admin;
pub mod app;
pub mod cli;
pub mod config;
pub mod dashboard;
pub mod enrich;
pub mod error;
pub mod event;
pub mod frames;
pub mod health;
pub mod limits;
pub mod live;
pub mod metrics;
pub mod record;
pub mod reload;
pub mod router;
pub mod routes;
pub mod serve;
pub mod server;
pub mod sink;
pub mod stats;
pub mod tally;
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
