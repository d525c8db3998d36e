//! The errors that end start-up or fail a reload, and the one mapping from
//! each to an exit code (contract §7: 64 bad usage or config, 1 runtime).

use std::net::SocketAddr;

use crate::config::ConfigError;
use crate::enrich::agent::RulesError;
use crate::enrich::geo::GeoError;

/// Exit code for bad usage or a bad configuration (BSD `EX_USAGE`).
pub const EXIT_USAGE: u8 = 64;
/// Exit code for a runtime failure.
pub const EXIT_FAILURE: u8 = 1;

/// Why the server could not start, or a reload was refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("bad configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("bad configuration: {0}")]
    Rules(#[from] RulesError),
    #[error("bad configuration: {0}")]
    Geo(#[from] GeoError),
    #[error("bad configuration: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// A listener address that cannot be bound (in use, not local).
    #[error("{key} {addr}: {source}")]
    Bind {
        key: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The sink could not start (a spool that cannot be written, say).
    #[error("cannot start the sink: {0:#}")]
    Sink(anyhow::Error),
    /// The process could not get what it runs on (a runtime, a thread, a
    /// signal handler).
    #[error("cannot start {what}: {source}")]
    Os {
        what: &'static str,
        source: std::io::Error,
    },
    /// Serving failed after start (a serving thread that could not start).
    #[error("{0:#}")]
    Serving(anyhow::Error),
}

impl Error {
    /// The process exit code this error ends `trackedge` with.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) | Error::Rules(_) | Error::Geo(_) | Error::Tls(_) => EXIT_USAGE,
            Error::Bind { .. } | Error::Sink(_) | Error::Os { .. } | Error::Serving(_) => {
                EXIT_FAILURE
            }
        }
    }
}
