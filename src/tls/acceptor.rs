//! The TLS handshake of one connection.
//!
//! rustls asks its certificate resolver synchronously, but an on-demand
//! name's certificate must first be ordered over the network. So the
//! ClientHello is read first ([`tokio_rustls::LazyConfigAcceptor`]), and
//! only then, with the name known, is the configuration chosen:
//!
//! 1. ALPN `acme-tls/1`: a CA validating TLS-ALPN-01; answered with the
//!    challenge certificate, and the connection ends there.
//! 2. A name no certificate covers that `tls.acme.on_demand` allows: the
//!    handshake waits (up to `tls.acme.on_demand_wait`) for the order.
//! 3. The serving configuration: TLS 1.2/1.3, ALPN h2 and http/1.1, the
//!    certificate picked by SNI ([`Certificates`]).
//!
//! Each step that waits on the client is bounded by `tls.handshake_timeout`.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use rustls::server::Acceptor;
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_rustls::server::TlsStream;
use tokio_rustls::LazyConfigAcceptor;

use super::acme::challenge::ACME_TLS_ALPN;
use super::acme::Acme;
use super::certs::provider;
use super::resolver::Certificates;
use crate::metrics::TLS_HANDSHAKES;

/// Why a handshake did not give a stream to serve.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("the client did not complete the handshake in time")]
    Timeout,
    #[error("no certificate for {0:?}")]
    NoCertificate(Option<String>),
    #[error("handshake failed: {0}")]
    Io(#[from] io::Error),
}

impl HandshakeError {
    /// The `result` label of `trackedge_tls_handshakes_total`.
    fn label(&self) -> &'static str {
        match self {
            HandshakeError::Timeout => "timeout",
            HandshakeError::NoCertificate(_) => "no_certificate",
            HandshakeError::Io(_) => "error",
        }
    }
}

/// The serving TLS configuration over `certs`: TLS 1.3 and 1.2 with the
/// ring provider, ALPN h2 then http/1.1.
pub fn server_config(certs: Arc<Certificates>) -> Arc<ServerConfig> {
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("ring supports TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_cert_resolver(certs);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(cfg)
}

/// Accepts TLS connections for the TLS listener.
pub struct TlsAcceptor {
    config: Arc<ServerConfig>,
    certs: Arc<Certificates>,
    acme: Option<Arc<Acme>>,
    timeout: Duration,
}

impl TlsAcceptor {
    /// `timeout` bounds reading the ClientHello and, again, finishing the
    /// handshake (`tls.handshake_timeout`).
    pub fn new(
        certs: Arc<Certificates>,
        acme: Option<Arc<Acme>>,
        timeout: Duration,
    ) -> TlsAcceptor {
        TlsAcceptor {
            config: server_config(certs.clone()),
            certs,
            acme,
            timeout,
        }
    }

    /// The serving configuration, for callers that run their own
    /// `tokio_rustls::TlsAcceptor` (no on-demand names, no TLS-ALPN-01).
    pub fn server_config(&self) -> &Arc<ServerConfig> {
        &self.config
    }

    /// Runs the handshake on `io`. `Ok(None)`: the connection answered an
    /// ACME challenge and is done. Counts every outcome in
    /// `trackedge_tls_handshakes_total`.
    pub async fn accept<IO>(&self, io: IO) -> Result<Option<TlsStream<IO>>, HandshakeError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let r = self.handshake(io).await;
        let label = match &r {
            Ok(Some(_)) => "ok",
            Ok(None) => "acme_challenge",
            Err(e) => e.label(),
        };
        metrics::counter!(TLS_HANDSHAKES, "result" => label).increment(1);
        r
    }

    async fn handshake<IO>(&self, io: IO) -> Result<Option<TlsStream<IO>>, HandshakeError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let start = tokio::time::timeout(
            self.timeout,
            LazyConfigAcceptor::new(Acceptor::default(), io),
        )
        .await
        .map_err(|_| HandshakeError::Timeout)??;
        let hello = start.client_hello();
        let sni = hello.server_name().map(str::to_ascii_lowercase);
        let wants_acme = hello
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN));

        if wants_acme {
            let cfg = self
                .acme
                .as_ref()
                .zip(sni.as_deref())
                .and_then(|(acme, name)| acme.challenges().tls_alpn01_config(name));
            let Some(cfg) = cfg else {
                return Err(HandshakeError::NoCertificate(sni));
            };
            let mut s = tokio::time::timeout(self.timeout, start.into_stream(cfg))
                .await
                .map_err(|_| HandshakeError::Timeout)??;
            // The validator only looks at the certificate (RFC 8737 §3).
            let _ = tokio::time::timeout(self.timeout, s.shutdown()).await;
            return Ok(None);
        }

        if let (Some(name), Some(acme)) = (sni.as_deref(), &self.acme) {
            if !self.certs.has(name) {
                let wait = acme.config().on_demand_wait.0;
                let _ = tokio::time::timeout(wait, acme.on_demand(name)).await;
            }
        }
        if self.certs.lookup(sni.as_deref()).is_none() {
            // Let rustls refuse it with an alert, but count it apart.
            let _ =
                tokio::time::timeout(self.timeout, start.into_stream(self.config.clone())).await;
            return Err(HandshakeError::NoCertificate(sni));
        }
        let s = tokio::time::timeout(self.timeout, start.into_stream(self.config.clone()))
            .await
            .map_err(|_| HandshakeError::Timeout)??;
        Ok(Some(s))
    }
}
