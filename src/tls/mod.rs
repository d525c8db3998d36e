//! HTTPS at the edge (contract §9): certificates chosen by SNI, the TLS
//! handshake, and certificates obtained and renewed over ACME (RFC 8555).
//!
//! This module owns everything TLS and knows nothing of routes, events or
//! sinks: the server hands it accepted TCP streams and gets back TLS
//! streams (or nothing, when a connection only answered an ACME challenge),
//! and the plain listener asks it for HTTP-01 answers. It never binds a
//! socket itself.
//!
//! # Layout
//!
//! - [`config`]: the `server.tls_listen` type and the `[tls]` section.
//! - [`certs`]: PEM certificate/key pairs loaded and checked (key matches,
//!   names, expiry) and the set they form, looked up by SNI.
//! - [`resolver`]: [`Certificates`], the live set (files swapped on reload,
//!   plus ACME's) behind rustls' `ResolvesServerCert`.
//! - [`acceptor`]: [`TlsAcceptor`]: reads the ClientHello first, answers
//!   TLS-ALPN-01, waits (bounded) for an on-demand certificate, then
//!   finishes the handshake with ALPN h2 and http/1.1.
//! - [`serve`]: the accept loop for the TLS listener, beside the plain one.
//! - [`acme`]: the ACME client: account and certificates cached on disk,
//!   listed names obtained at start and renewed, on-demand names at their
//!   first handshake, challenge answers ([`acme::challenge`]).
//!
//! # Wiring (what the server does)
//!
//! ```text
//! let tls = Tls::start(&cfg.tls, tokio::runtime::Handle::current())?; // start-up
//! app.set_tls(tls.clone());                      // HTTP-01 answers, /readyz, reload
//! let stream = tls.acceptor().accept(tcp).await; // per TLS connection
//! tls.reload(&next.tls)?;                        // on SIGHUP
//! ```

pub mod acceptor;
pub mod acme;
pub mod certs;
pub mod config;
pub mod resolver;
pub mod serve;

use std::path::PathBuf;
use std::sync::Arc;

pub use acceptor::TlsAcceptor;
pub use config::TlsConfig;
pub use resolver::Certificates;

/// What can go wrong with certificates, keys and ACME; every message says
/// which file or name and what to do.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {source}; check the path and its permissions")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {why}")]
    Pem { path: PathBuf, why: String },
    #[error("{key} does not belong to the certificate {cert}: {why}; give the key the certificate was issued for")]
    KeyMismatch {
        cert: PathBuf,
        key: PathBuf,
        why: String,
    },
    #[error("{path}: the certificate does not cover {missing:?} (it names {names:?}); use a certificate issued for those names")]
    MissingNames {
        path: PathBuf,
        missing: Vec<String>,
        names: Vec<String>,
    },
    #[error("invalid {key}: {why}")]
    Config { key: &'static str, why: String },
    #[error("ACME: {0}")]
    Acme(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Checks the TLS settings as `serve` would, short of ACME's network:
/// every certificate file opened and checked, and a TLS listener has
/// something to serve. Returns one line per certificate (file, names,
/// expiry) for `check-config`.
pub fn check(listen: config::TlsListen, cfg: &TlsConfig) -> Result<Vec<String>, TlsError> {
    cfg.check()?;
    let set = certs::CertSet::load(&cfg.certificates)?;
    if listen.0.is_some() && set.is_empty() && !cfg.acme.enabled() {
        return Err(TlsError::Config {
            key: "server.tls_listen",
            why:
                "a TLS listener needs certificates: set tls.certificates or tls.acme.directory_url"
                    .into(),
        });
    }
    let now = crate::now_ms() / 1000;
    Ok(set
        .iter()
        .map(|c| {
            let when =
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(c.not_after.max(0) as u64);
            format!(
                "{}: names {:?}, expires {} ({} days)",
                c.origin.display(),
                c.names,
                humantime::format_rfc3339_seconds(when),
                (c.not_after - now).div_euclid(86_400)
            )
        })
        .collect())
}

/// Everything TLS a server needs, built once at start-up: the live
/// certificates, the acceptor, and the ACME client when configured.
pub struct Tls {
    certs: Arc<Certificates>,
    acceptor: Arc<TlsAcceptor>,
    acme: Option<Arc<acme::Acme>>,
}

impl Tls {
    /// Loads `cfg.certificates` (failing on any bad file) and, with a
    /// directory URL, starts the ACME client on `rt`: cached certificates
    /// are served at once, missing or due ones are ordered in the
    /// background. Needs no network to return.
    pub fn start(cfg: &TlsConfig, rt: tokio::runtime::Handle) -> Result<Arc<Tls>, TlsError> {
        cfg.check()?;
        let set = certs::CertSet::load(&cfg.certificates)?;
        let certs = Arc::new(Certificates::new(set));
        let acme = if cfg.acme.enabled() {
            Some(acme::Acme::start(cfg.acme.clone(), certs.clone(), rt)?)
        } else {
            None
        };
        let acceptor = Arc::new(TlsAcceptor::new(
            certs.clone(),
            acme.clone(),
            cfg.handshake_timeout.0,
        ));
        Ok(Arc::new(Tls {
            certs,
            acceptor,
            acme,
        }))
    }

    pub fn certificates(&self) -> &Arc<Certificates> {
        &self.certs
    }

    pub fn acceptor(&self) -> &Arc<TlsAcceptor> {
        &self.acceptor
    }

    pub fn acme(&self) -> Option<&Arc<acme::Acme>> {
        self.acme.as_ref()
    }

    /// Re-reads `cfg.certificates` and swaps them in, and applies the
    /// on-demand rule; on any error the running set stays. Other ACME
    /// settings need a restart (logged).
    pub fn reload(&self, cfg: &TlsConfig) -> Result<(), TlsError> {
        cfg.check()?;
        let set = certs::CertSet::load(&cfg.certificates)?;
        self.certs.swap_files(set);
        if let Some(acme) = &self.acme {
            if acme.reload(&cfg.acme) {
                tracing::warn!(
                    "tls.acme settings other than on_demand and max_new_per_hour changed: restart to apply them"
                );
            }
        }
        Ok(())
    }

    /// The body of an HTTP-01 challenge answer for a request path
    /// `/.well-known/acme-challenge/{token}`, when one is pending.
    pub fn http01_answer(&self, path: &str) -> Option<String> {
        self.acme.as_ref()?.challenges().http01_answer(path)
    }

    /// What is wrong, for `/readyz`'s body (`ready, degraded: ...`): an
    /// ACME server that cannot be reached, an order that keeps failing.
    pub fn note(&self) -> Option<String> {
        self.acme.as_ref()?.note()
    }
}
