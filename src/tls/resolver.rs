//! The certificates being served, and rustls' way to them.
//!
//! Two sets, each swapped whole and read without a lock: the operator's
//! files (`tls.certificates`, replaced on SIGHUP) and ACME's (one
//! certificate per name, replaced as they are obtained or renewed). A
//! handshake loads both once.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::certs::{CertSet, Loaded};
use crate::metrics::TLS_CERT_EXPIRY;

/// The live certificates; rustls asks it for each handshake's certificate.
pub struct Certificates {
    /// `tls.certificates`, as last loaded without error.
    files: ArcSwap<CertSet>,
    /// Certificates ACME obtained, by the name they were ordered for.
    acme: ArcSwap<HashMap<String, Arc<Loaded>>>,
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificates")
            .field("files", &self.files.load().iter().count())
            .field("acme", &self.acme.load().len())
            .finish()
    }
}

impl Certificates {
    pub fn new(files: CertSet) -> Certificates {
        let c = Certificates {
            files: ArcSwap::from_pointee(files),
            acme: ArcSwap::default(),
        };
        c.publish_expiry();
        c
    }

    /// Replaces the operator's certificates; the next handshake sees them.
    pub fn swap_files(&self, files: CertSet) {
        self.files.store(Arc::new(files));
        self.publish_expiry();
    }

    /// Adds or replaces ACME's certificate for `name`.
    pub fn insert_acme(&self, name: &str, cert: Arc<Loaded>) {
        self.acme.rcu(|m| {
            let mut m = HashMap::clone(m);
            m.insert(name.to_owned(), cert.clone());
            m
        });
        self.publish_expiry();
    }

    /// ACME's certificate for exactly `name`.
    pub fn acme_cert(&self, name: &str) -> Option<Arc<Loaded>> {
        self.acme.load().get(name).cloned()
    }

    /// Names ACME holds a certificate for.
    pub fn acme_names(&self) -> Vec<String> {
        self.acme.load().keys().cloned().collect()
    }

    /// The certificate a client asking for `sni` gets: an operator's
    /// certificate naming it exactly, then ACME's for it, then an
    /// operator's wildcard; without SNI, the first operator certificate
    /// (or any of ACME's, when there are no files).
    pub fn lookup(&self, sni: Option<&str>) -> Option<Arc<Loaded>> {
        let files = self.files.load();
        let acme = self.acme.load();
        match sni {
            Some(name) => {
                let name = name.to_ascii_lowercase();
                files
                    .exact(&name)
                    .or_else(|| acme.get(&name))
                    .or_else(|| files.wildcard(&name))
                    .cloned()
            }
            None => files.first().or_else(|| acme.values().next()).cloned(),
        }
    }

    /// Whether a certificate would answer `sni`.
    pub fn has(&self, sni: &str) -> bool {
        self.lookup(Some(sni)).is_some()
    }

    /// Every certificate served, files first.
    pub fn all(&self) -> Vec<Arc<Loaded>> {
        let mut v: Vec<_> = self.files.load().iter().cloned().collect();
        v.extend(self.acme.load().values().cloned());
        v
    }

    /// The soonest expiry of any certificate served (Unix seconds).
    pub fn soonest_expiry(&self) -> Option<i64> {
        self.all().iter().map(|c| c.not_after).min()
    }

    fn publish_expiry(&self) {
        if let Some(t) = self.soonest_expiry() {
            metrics::gauge!(TLS_CERT_EXPIRY).set(t as f64);
        }
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.lookup(hello.server_name()).map(|c| c.key.clone())
    }
}
