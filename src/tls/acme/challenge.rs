//! Answers to pending ACME challenges, written by an order and read by
//! the listeners: HTTP-01 (RFC 8555 §8.3) on the plain listener, TLS-ALPN-01
//! (RFC 8737) on the TLS listener.
//!
//! Both maps are tiny and written only while an order runs; a mutex held
//! for a lookup, never across an await, is the simplest correct thing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use crate::tls::certs::provider;
use crate::tls::TlsError;

/// The ALPN protocol of TLS-ALPN-01 validation connections.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";
/// Where HTTP-01 answers are asked for.
pub const HTTP01_PREFIX: &str = "/.well-known/acme-challenge/";

/// Pending challenge answers.
#[derive(Default)]
pub struct Challenges {
    /// HTTP-01: token → key authorization.
    http: Mutex<HashMap<String, String>>,
    /// TLS-ALPN-01: name → the self-signed validation certificate.
    alpn: Mutex<HashMap<String, Arc<CertifiedKey>>>,
}

impl Challenges {
    /// Publishes an HTTP-01 answer.
    pub fn put_http01(&self, token: &str, key_authorization: &str) {
        lock(&self.http).insert(token.to_owned(), key_authorization.to_owned());
    }

    /// Publishes a TLS-ALPN-01 answer for `name`: a certificate for it
    /// carrying the SHA-256 `digest` of the key authorization in the
    /// critical acmeIdentifier extension.
    pub fn put_tls_alpn01(&self, name: &str, digest: &[u8]) -> Result<(), TlsError> {
        let cert = alpn_certificate(name, digest)?;
        lock(&self.alpn).insert(name.to_owned(), Arc::new(cert));
        Ok(())
    }

    /// Withdraws both answers of an authorization once it is settled.
    pub fn remove(&self, name: &str, token: &str) {
        lock(&self.http).remove(token);
        lock(&self.alpn).remove(name);
    }

    /// The body answering `GET {path}`, when `path` is
    /// `/.well-known/acme-challenge/{token}` with a pending token.
    pub fn http01_answer(&self, path: &str) -> Option<String> {
        let token = path.strip_prefix(HTTP01_PREFIX)?;
        lock(&self.http).get(token).cloned()
    }

    /// The TLS configuration answering a TLS-ALPN-01 validation for `name`.
    pub fn tls_alpn01_config(&self, name: &str) -> Option<Arc<ServerConfig>> {
        let cert = lock(&self.alpn).get(name)?.clone();
        let mut cfg = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .expect("ring supports TLS 1.2 and 1.3")
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Fixed(cert)));
        cfg.alpn_protocols = vec![ACME_TLS_ALPN.to_vec()];
        Some(Arc::new(cfg))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere cannot leave a map half-written: inserts are whole.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Makes the RFC 8737 §3 validation certificate.
fn alpn_certificate(name: &str, digest: &[u8]) -> Result<CertifiedKey, TlsError> {
    let err = |e: rcgen::Error| TlsError::Acme(format!("TLS-ALPN-01 certificate for {name}: {e}"));
    if digest.len() != 32 {
        return Err(TlsError::Acme(format!(
            "TLS-ALPN-01 for {name}: a SHA-256 digest is 32 bytes, not {}",
            digest.len()
        )));
    }
    let key = rcgen::KeyPair::generate().map_err(err)?;
    let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).map_err(err)?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let cert = params.self_signed(&key).map_err(err)?;
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signing = provider()
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| TlsError::Acme(format!("TLS-ALPN-01 key for {name}: {e}")))?;
    // Not `CertifiedKey::from_der`: its key check parses the certificate
    // with webpki, which refuses the critical acmeIdentifier extension.
    Ok(CertifiedKey::new(
        vec![CertificateDer::from(cert.der().to_vec())],
        signing,
    ))
}

/// Always the one certificate.
#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http01_answers_only_pending_tokens() {
        let c = Challenges::default();
        c.put_http01("tok", "tok.thumb");
        assert_eq!(
            c.http01_answer("/.well-known/acme-challenge/tok")
                .as_deref(),
            Some("tok.thumb")
        );
        assert_eq!(c.http01_answer("/.well-known/acme-challenge/other"), None);
        assert_eq!(c.http01_answer("/tok"), None);
        c.remove("a.example", "tok");
        assert_eq!(c.http01_answer("/.well-known/acme-challenge/tok"), None);
    }

    #[test]
    fn tls_alpn01_certificate_carries_the_digest() {
        let c = Challenges::default();
        assert!(c.tls_alpn01_config("a.example").is_none());
        let digest = [7u8; 32];
        c.put_tls_alpn01("a.example", &digest).unwrap();
        let cfg = c.tls_alpn01_config("a.example").unwrap();
        assert_eq!(cfg.alpn_protocols, vec![ACME_TLS_ALPN.to_vec()]);
        let cert = lock(&c.alpn).get("a.example").unwrap().cert[0].clone();
        let (_, x) = x509_parser::parse_x509_certificate(&cert).unwrap();
        let ext = x
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .expect("acmeIdentifier extension");
        assert!(ext.critical);
        // An OCTET STRING (tag 4, length 32) of the digest.
        assert_eq!(&ext.value[..2], &[4, 32]);
        assert_eq!(&ext.value[2..], &digest);
        assert!(c.put_tls_alpn01("a.example", &[1, 2]).is_err());
    }
}
