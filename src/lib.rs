//! trackedge: a tracking-pixel and click-redirect edge server.
//!
//! Email clients load open pixels, recipients follow tracked links and
//! one-click unsubscribe, and each request is answered from memory while a
//! lean event describing it goes to a sink off the request path. The product
//! contract (URLs, token format, event schema, metrics, config keys, CLI) is
//! `SPEC.md`; this crate is its implementation.
//!
//! # Layout
//!
//! - [`config`]: the TOML/env configuration, its embedded defaults and checks.
//! - [`cli`]: the `trackedge` subcommands (`serve`, `sign`, `verify`, ...).
//! - [`server`]: listeners, connection limits, graceful shutdown.
//! - [`app`]: the shared state and the public routes (pixel, click, unsubscribe).
//! - [`admin`]: `/metrics`, `/livez`, `/readyz`, `/stats`.
//! - [`stats`]: live per-campaign counters.
//! - [`token`]: signed token minting and verification.
//! - [`event`]: the event struct and its JSON encoding.
//! - [`enrich`]: facts derived from the request: client IP, User-Agent, agent kind.
//! - [`sink`]: where events go (file, stdout), behind one trait.
//! - [`metrics`]: metric names, descriptions and the Prometheus recorder.
// One reviewed exception: memory-mapping the GeoIP databases (enrich::geo).
#![deny(unsafe_code)]

pub mod admin;
pub mod app;
pub mod cli;
pub mod config;
pub mod enrich;
pub mod event;
pub mod metrics;
pub mod server;
pub mod sink;
pub mod stats;
pub mod token;
pub mod watchdog;

/// The crate version, reported in `trackedge_build_info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Milliseconds since the Unix epoch by the system clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
