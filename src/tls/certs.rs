//! Certificates as served: a PEM chain and its key, checked to belong
//! together, with the names and validity read from the leaf; and the set
//! of them that SNI is looked up in.
//!
//! Nothing here is async or touches the network; loading reads files only.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

pub use super::config::name_matches;
use super::config::CertificateFiles;
use super::TlsError;

/// The crypto provider of every config: ring, which builds without cmake.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// One certificate ready to serve.
#[derive(Debug)]
pub struct Loaded {
    /// Chain and signing key, as rustls serves them.
    pub key: Arc<CertifiedKey>,
    /// DNS names of the leaf's subjectAltName, lower case (`*.` kept).
    pub names: Vec<String>,
    /// Validity, in seconds since the Unix epoch.
    pub not_before: i64,
    pub not_after: i64,
    /// Where it came from, for messages: a file or an ACME cache entry.
    pub origin: PathBuf,
}

impl Loaded {
    /// Reads and checks one `tls.certificates` entry.
    pub fn from_files(f: &CertificateFiles) -> Result<Loaded, TlsError> {
        let read = |what, path: &Path| {
            std::fs::read(path).map_err(|source| TlsError::Read {
                what,
                path: path.to_owned(),
                source,
            })
        };
        let chain = read("certificate file", &f.cert_file)?;
        let key = read("key file", &f.key_file)?;
        let loaded = Loaded::from_pem(&chain, &key, &f.cert_file, &f.key_file)?;
        loaded.require_names(&f.names)?;
        Ok(loaded)
    }

    /// Parses a PEM chain (leaf first) and its PEM key; `cert_path` and
    /// `key_path` only name them in errors.
    pub fn from_pem(
        chain_pem: &[u8],
        key_pem: &[u8],
        cert_path: &Path,
        key_path: &Path,
    ) -> Result<Loaded, TlsError> {
        let pem_err = |path: &Path, why: String| TlsError::Pem {
            path: path.to_owned(),
            why,
        };
        let chain = CertificateDer::pem_slice_iter(chain_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem_err(cert_path, format!("not a PEM certificate file: {e}")))?;
        let Some(leaf) = chain.first() else {
            return Err(pem_err(
                cert_path,
                "holds no CERTIFICATE block; give the PEM certificate (then its intermediates)"
                    .into(),
            ));
        };
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| {
            pem_err(
                key_path,
                format!("holds no PEM private key ({e}); give the certificate's key in PEM"),
            )
        })?;
        let (names, not_before, not_after) = leaf_facts(leaf)
            .map_err(|why| pem_err(cert_path, format!("cannot parse the certificate: {why}")))?;
        let signing = provider()
            .key_provider
            .load_private_key(key)
            .map_err(|e| pem_err(key_path, format!("unusable private key: {e}")))?;
        let key = CertifiedKey::new(chain, signing);
        match key.keys_match() {
            Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
            Err(e) => {
                return Err(TlsError::KeyMismatch {
                    cert: cert_path.to_owned(),
                    key: key_path.to_owned(),
                    why: e.to_string(),
                })
            }
        }
        Ok(Loaded {
            key: Arc::new(key),
            names,
            not_before,
            not_after,
            origin: cert_path.to_owned(),
        })
    }

    /// Fails naming every one of `names` the certificate does not cover.
    pub fn require_names(&self, names: &[String]) -> Result<(), TlsError> {
        let missing: Vec<String> = names.iter().filter(|n| !self.covers(n)).cloned().collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(TlsError::MissingNames {
            path: self.origin.clone(),
            missing,
            names: self.names.clone(),
        })
    }

    /// Whether this certificate is valid for `name` (a wildcard for one label).
    pub fn covers(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        self.names.iter().any(|n| name_matches(n, &name))
    }

    /// Whether it expired or expires within `seconds` of `now` (Unix seconds).
    pub fn expires_within(&self, now: i64, seconds: i64) -> bool {
        self.not_after - now <= seconds
    }
}

/// Names (subjectAltName DNS entries, or the CN when there are none) and
/// validity of a DER certificate.
fn leaf_facts(
    der: &CertificateDer<'_>,
) -> Result<(Vec<String>, i64, i64), x509_parser::nom::Err<x509_parser::error::X509Error>> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der)?;
    let mut names: Vec<String> = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|g| match g {
                GeneralName::DNSName(n) => Some(n.to_ascii_lowercase()),
                _ => None,
            })
            .collect(),
        Ok(None) => Vec::new(),
        Err(e) => return Err(x509_parser::nom::Err::Failure(e)),
    };
    if names.is_empty() {
        // Browsers ignore the CN; it is kept for clients without SNI only.
        names.extend(
            cert.subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok())
                .map(str::to_ascii_lowercase),
        );
    }
    let v = cert.validity();
    Ok((names, v.not_before.timestamp(), v.not_after.timestamp()))
}

/// Certificates indexed for SNI: exact names, then wildcard suffixes; the
/// first loaded answers clients without SNI.
#[derive(Debug, Default)]
pub struct CertSet {
    certs: Vec<Arc<Loaded>>,
    exact: HashMap<String, usize>,
    /// `*.track.example` is found under `track.example`.
    wildcard: HashMap<String, usize>,
}

impl CertSet {
    /// Loads every entry; the first error (naming its file) fails the lot.
    pub fn load(files: &[CertificateFiles]) -> Result<CertSet, TlsError> {
        let certs = files
            .iter()
            .map(Loaded::from_files)
            .collect::<Result<Vec<_>, _>>()?;
        let now = crate::now_ms() / 1000;
        for c in &certs {
            if c.expires_within(now, 0) {
                tracing::warn!(cert = %c.origin.display(), "certificate has expired; browsers will refuse it");
            }
        }
        Ok(CertSet::new(certs.into_iter().map(Arc::new).collect()))
    }

    /// Indexes `certs`; for a name two certificates share, the earlier wins.
    pub fn new(certs: Vec<Arc<Loaded>>) -> CertSet {
        let mut set = CertSet {
            certs,
            ..CertSet::default()
        };
        for (i, c) in set.certs.iter().enumerate() {
            for n in &c.names {
                let (map, key) = match n.strip_prefix("*.") {
                    Some(rest) => (&mut set.wildcard, rest),
                    None => (&mut set.exact, n.as_str()),
                };
                map.entry(key.to_owned()).or_insert(i);
            }
        }
        set
    }

    /// The certificate for an exact name.
    pub fn exact(&self, name: &str) -> Option<&Arc<Loaded>> {
        self.exact.get(name).map(|&i| &self.certs[i])
    }

    /// The certificate whose wildcard covers `name`.
    pub fn wildcard(&self, name: &str) -> Option<&Arc<Loaded>> {
        let (_, parent) = name.split_once('.')?;
        self.wildcard.get(parent).map(|&i| &self.certs[i])
    }

    /// The first certificate: for clients that send no SNI.
    pub fn first(&self) -> Option<&Arc<Loaded>> {
        self.certs.first()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Loaded>> {
        self.certs.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_cover_one_label() {
        assert!(name_matches("*.track.example", "a.track.example"));
        assert!(name_matches("*.track.example", "A.Track.example"));
        assert!(!name_matches("*.track.example", "track.example"));
        assert!(!name_matches("*.track.example", "a.b.track.example"));
        assert!(!name_matches("*.track.example", ".track.example"));
        assert!(name_matches("t.shop.example", "t.shop.example"));
        assert!(!name_matches("t.shop.example", "x.t.shop.example"));
    }

    fn pair(names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn load(cert: &str, key: &str) -> Result<Loaded, TlsError> {
        Loaded::from_pem(
            cert.as_bytes(),
            key.as_bytes(),
            Path::new("c.pem"),
            Path::new("k.pem"),
        )
    }

    #[test]
    fn reads_names_and_checks_the_key() {
        let (c, k) = pair(&["a.example", "*.w.example"]);
        let l = load(&c, &k).unwrap();
        assert_eq!(l.names, ["a.example", "*.w.example"]);
        assert!(l.not_after > l.not_before);
        assert!(l.covers("x.w.example") && !l.covers("b.example"));
        let (_, other_key) = pair(&["a.example"]);
        let e = load(&c, &other_key).unwrap_err();
        assert!(matches!(e, TlsError::KeyMismatch { .. }), "{e}");
        assert!(e.to_string().contains("k.pem"), "{e}");
        let e = load(&k, &k).unwrap_err();
        assert!(e.to_string().contains("no CERTIFICATE"), "{e}");
        let e = load(&c, &c).unwrap_err();
        assert!(e.to_string().contains("private key"), "{e}");
        let e = l
            .require_names(&["a.example".into(), "b.example".into()])
            .unwrap_err();
        assert!(e.to_string().contains("\"b.example\""), "{e}");
    }

    #[test]
    fn set_lookup() {
        let (c1, k1) = pair(&["a.example"]);
        let (c2, k2) = pair(&["*.w.example", "a.example"]);
        let set = CertSet::new(vec![
            Arc::new(load(&c1, &k1).unwrap()),
            Arc::new(load(&c2, &k2).unwrap()),
        ]);
        let first = set.first().unwrap();
        assert!(Arc::ptr_eq(set.exact("a.example").unwrap(), first));
        assert!(!Arc::ptr_eq(set.wildcard("x.w.example").unwrap(), first));
        assert!(set.wildcard("w.example").is_none());
        assert!(set.exact("b.example").is_none());
    }
}
