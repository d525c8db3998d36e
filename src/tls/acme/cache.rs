//! `tls.acme.cache_dir` on disk: the account's credentials, per directory
//! URL, and each name's certificate and key, so a restart reuses them
//! instead of ordering again (CAs rate-limit new orders).
//!
//! ```text
//! cache_dir/account-<hash of directory URL>.json   (0600)
//! cache_dir/certs/<name>.crt.pem                   chain, leaf first
//! cache_dir/certs/<name>.key.pem                   (0600)
//! ```
//!
//! Every file is written to a temporary name and renamed, so a crash never
//! leaves half a key.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::tls::certs::Loaded;
use crate::tls::TlsError;

pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// Creates the directory when missing.
    pub fn open(dir: &Path) -> Result<Cache, TlsError> {
        let certs = dir.join("certs");
        std::fs::create_dir_all(&certs).map_err(|source| TlsError::Write {
            path: certs.clone(),
            source,
        })?;
        Ok(Cache {
            dir: dir.to_owned(),
        })
    }

    fn account_path(&self, directory_url: &str) -> PathBuf {
        let h = Sha256::digest(directory_url.as_bytes());
        let hex: String = h[..8].iter().map(|b| format!("{b:02x}")).collect();
        self.dir.join(format!("account-{hex}.json"))
    }

    /// The stored credentials (JSON) of the account at `directory_url`.
    pub fn account(&self, directory_url: &str) -> Option<String> {
        std::fs::read_to_string(self.account_path(directory_url)).ok()
    }

    pub fn store_account(&self, directory_url: &str, json: &str) -> Result<(), TlsError> {
        write_atomic(&self.account_path(directory_url), json.as_bytes(), true)
    }

    fn cert_paths(&self, name: &str) -> (PathBuf, PathBuf) {
        let d = self.dir.join("certs");
        (
            d.join(format!("{name}.crt.pem")),
            d.join(format!("{name}.key.pem")),
        )
    }

    /// The cached certificate of `name`, when present and whole.
    pub fn cert(&self, name: &str) -> Result<Option<Loaded>, TlsError> {
        let (c, k) = self.cert_paths(name);
        let (Ok(chain), Ok(key)) = (std::fs::read(&c), std::fs::read(&k)) else {
            return Ok(None);
        };
        Loaded::from_pem(&chain, &key, &c, &k).map(Some)
    }

    /// Names with a certificate in the cache.
    pub fn names(&self) -> Vec<String> {
        let Ok(rd) = std::fs::read_dir(self.dir.join("certs")) else {
            return Vec::new();
        };
        let mut v: Vec<String> = rd
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let f = e.file_name().into_string().ok()?;
                f.strip_suffix(".crt.pem").map(str::to_owned)
            })
            .collect();
        v.sort();
        v
    }

    /// Stores `name`'s certificate and key (key first, so a certificate
    /// on disk always has its key).
    pub fn store_cert(&self, name: &str, chain_pem: &str, key_pem: &str) -> Result<(), TlsError> {
        let (c, k) = self.cert_paths(name);
        write_atomic(&k, key_pem.as_bytes(), true)?;
        write_atomic(&c, chain_pem.as_bytes(), false)
    }
}

fn write_atomic(path: &Path, data: &[u8], secret: bool) -> Result<(), TlsError> {
    let err = |source| TlsError::Write {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut f = opts.open(&tmp).map_err(err)?;
    f.write_all(data).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        assert_eq!(cache.account("https://a/dir"), None);
        cache.store_account("https://a/dir", "{}").unwrap();
        assert_eq!(cache.account("https://a/dir").as_deref(), Some("{}"));
        assert_eq!(cache.account("https://b/dir"), None);

        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["a.example".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        assert!(cache.cert("a.example").unwrap().is_none());
        cache
            .store_cert("a.example", &cert.pem(), &key.serialize_pem())
            .unwrap();
        assert_eq!(cache.names(), ["a.example"]);
        let l = cache.cert("a.example").unwrap().unwrap();
        assert_eq!(l.names, ["a.example"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let m = std::fs::metadata(dir.path().join("certs/a.example.key.pem")).unwrap();
            assert_eq!(m.permissions().mode() & 0o777, 0o600);
        }
    }
}
