//! HTTPS test helpers: a test CA, a server with `server.tls_listen`, real
//! TLS clients (tokio-rustls, curl), and a real ACME server (pebble).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use trackedge::app::App;
use trackedge::config::Config;
use trackedge::tls::Tls;

use super::{KEY_ID, SECRET};

/// Whether a tool the test needs is here. Under `CI=true` a missing one
/// fails the test, naming the package; elsewhere the test is skipped,
/// saying so.
pub fn have(tool: &str, package: &str) -> bool {
    super::have_tool(
        tool,
        &format!(
            "{tool} not found: install the Debian package `{package}` (apt-get install {package})"
        ),
    )
}

/// A certificate authority made for the test.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    pub fn new() -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "trackedge test CA");
        TestCa {
            issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A leaf for `names` (DNS names or IP addresses): (chain PEM, key PEM).
    pub fn leaf(&self, names: &[&str]) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// Writes a leaf for `names` as `{stem}.crt` / `{stem}.key` in `dir`.
    pub fn write_leaf(&self, dir: &Path, stem: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let (c, k) = self.leaf(names);
        let (cp, kp) = (
            dir.join(format!("{stem}.crt")),
            dir.join(format!("{stem}.key")),
        );
        std::fs::write(&cp, c).unwrap();
        std::fs::write(&kp, k).unwrap();
        (cp, kp)
    }
}

/// A TOML array of `tls.certificates` entries.
pub fn certificates_toml(pairs: &[(PathBuf, PathBuf)]) -> String {
    let entries: Vec<String> = pairs
        .iter()
        .map(|(c, k)| format!("{{ cert_file = {:?}, key_file = {:?} }}", c, k))
        .collect();
    format!("[{}]", entries.join(", "))
}

/// A trackedge with a plain and a TLS listener, configured from a file
/// (so SIGHUP's reload path can re-read it).
pub struct TlsServer {
    pub public: SocketAddr,
    pub https: SocketAddr,
    pub admin: SocketAddr,
    pub app: Arc<App>,
    pub config_path: PathBuf,
    pub events_path: PathBuf,
    pub keys: trackedge::token::Keyring,
    running: trackedge::serve::Running,
}

impl TlsServer {
    /// Starts a server whose config file (in `dir`) is the test key, a
    /// file sink, and `extra` (TOML: `[tls]` and the like).
    pub async fn start(dir: &Path, extra: &str) -> Result<TlsServer, String> {
        Self::start_on(dir, extra, 0, 0).await
    }

    /// As [`TlsServer::start`], with the plain and TLS listeners on the
    /// loopback ports given (0: any).
    pub async fn start_on(
        dir: &Path,
        extra: &str,
        plain_port: u16,
        tls_port: u16,
    ) -> Result<TlsServer, String> {
        let events_path = dir.join("events.ndjson");
        let config_path = dir.join("trackedge.toml");
        std::fs::write(
            &config_path,
            format!(
                "[server]\nlisten = \"127.0.0.1:{plain_port}\"\nadmin_listen = \"127.0.0.1:0\"\n\
                 tls_listen = \"127.0.0.1:{tls_port}\"\nworker_threads = 2\n\
                 [signing]\nkeys = [{{ id = \"{KEY_ID}\", secret = \"{SECRET}\" }}]\n\
                 [sink]\nkind = \"file\"\nfile_path = {:?}\n{extra}",
                events_path.to_str().unwrap()
            ),
        )
        .unwrap();
        let cfg = Config::load(Some(&config_path)).map_err(|e| e.to_string())?;
        let keys = trackedge::token::Keyring::new(&cfg.effective_keys());
        // The one way in, as `trackedge serve` starts.
        let listeners =
            trackedge::serve::Listeners::bind(&cfg.server).map_err(|e| e.to_string())?;
        let opts = trackedge::serve::Options {
            config_path: Some(config_path.clone()),
            sighup: false,
            ..Default::default()
        };
        let running = trackedge::serve::spawn(cfg, opts, listeners);
        let Some(app) = running.app().await else {
            return Err(running
                .stop()
                .await
                .err()
                .map_or("start-up failed".into(), |e| e.to_string()));
        };
        Ok(TlsServer {
            public: running.public,
            https: running.tls.expect("tls_listen is set"),
            admin: running.admin,
            app,
            config_path,
            events_path,
            keys,
            running,
        })
    }

    pub fn tls(&self) -> &Arc<Tls> {
        self.app.tls().unwrap()
    }

    /// Stops it (drained, sink flushed) and returns the events written.
    pub async fn stop(self) -> Vec<Value> {
        tokio::time::timeout(Duration::from_secs(60), self.running.stop())
            .await
            .expect("server stops within a minute")
            .expect("the server ran and drained");
        super::read_events(&self.events_path)
    }
}

/// What a TLS client saw.
pub struct Handshake {
    /// The server's chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    pub alpn: Option<Vec<u8>>,
}

impl Handshake {
    /// The DNS names of the leaf.
    pub fn names(&self) -> Vec<String> {
        leaf_names(&self.chain[0])
    }
}

/// The subjectAltName DNS names of a DER certificate.
pub fn leaf_names(der: &CertificateDer<'_>) -> Vec<String> {
    let (_, c) = x509_parser::parse_x509_certificate(der).unwrap();
    c.subject_alternative_name()
        .unwrap()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|g| match g {
                    x509_parser::extensions::GeneralName::DNSName(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Roots from PEM text.
pub fn roots(pem: &str) -> rustls::RootCertStore {
    let mut r = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        r.add(c.unwrap()).unwrap();
    }
    r
}

/// A TLS handshake with `addr` asking for `sni` (an IP address sends no
/// SNI), verified against `trust` when given, offering `alpn`.
pub async fn handshake(
    addr: SocketAddr,
    sni: &str,
    trust: Option<&str>,
    alpn: &[&[u8]],
) -> std::io::Result<Handshake> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let mut cfg = match trust {
        Some(pem) => builder
            .with_root_certificates(roots(pem))
            .with_no_client_auth(),
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
            .with_no_client_auth(),
    };
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(sni.to_owned()).unwrap();
    let tls = tokio::time::timeout(
        Duration::from_secs(30),
        TlsConnector::from(Arc::new(cfg)).connect(name, tcp),
    )
    .await
    .map_err(|_| std::io::Error::other("handshake timed out"))??;
    let (_, conn) = tls.get_ref();
    Ok(Handshake {
        chain: conn
            .peer_certificates()
            .unwrap_or_default()
            .iter()
            .map(|c| c.clone().into_owned())
            .collect(),
        alpn: conn.alpn_protocol().map(|p| p.to_vec()),
    })
}

/// Accepts any server certificate: for looking at what is served, not
/// at whether it verifies.
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    // Not checked either: webpki would refuse the TLS-ALPN-01 certificate
    // (its critical acmeIdentifier extension), which is what we look at.
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// What curl printed: status, HTTP version, headers and body.
pub struct CurlOut {
    pub status: u16,
    pub http_version: String,
    pub headers: String,
    pub body: Vec<u8>,
}

/// `curl` over HTTPS to `https://{host}:{port}{path}` resolved to
/// `addr`, trusting `ca_file`, with `extra` arguments (`--http2`, ...).
pub fn curl(addr: SocketAddr, host: &str, path: &str, ca_file: &Path, extra: &[&str]) -> CurlOut {
    let dir = tempfile::tempdir().unwrap();
    let (h, b) = (dir.path().join("h"), dir.path().join("b"));
    let url = format!("https://{host}:{}{path}", addr.port());
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "--cacert"])
        .arg(ca_file)
        .arg("--resolve")
        .arg(format!("{host}:{}:{}", addr.port(), addr.ip()))
        .arg("-D")
        .arg(&h)
        .arg("-o")
        .arg(&b)
        .args(["-w", "%{http_code} %{http_version}"])
        .args(extra)
        .arg(&url)
        .output()
        .expect("curl runs");
    assert!(
        out.status.success(),
        "curl {url} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let w = String::from_utf8(out.stdout).unwrap();
    let (status, version) = w.split_once(' ').unwrap();
    CurlOut {
        status: status.parse().unwrap(),
        http_version: version.to_owned(),
        headers: std::fs::read_to_string(&h).unwrap(),
        body: std::fs::read(&b).unwrap(),
    }
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A pebble ACME server on free loopback ports, serving HTTPS with a
/// certificate of `ca`; killed (by its pid) when dropped.
pub struct Pebble {
    child: Child,
    pub directory_url: String,
    pub management: SocketAddr,
    pub ca_file: PathBuf,
}

impl Pebble {
    /// Starts pebble with challenges always valid (no DNS points the test
    /// names at loopback). `None` (skipped) when pebble is not installed.
    pub async fn start(dir: &Path, ca: &TestCa) -> Option<Pebble> {
        Self::start_with(dir, ca, None, None).await
    }

    /// With `validate` = (DNS server, HTTP-01 port, TLS-ALPN-01 port),
    /// pebble validates challenges for real: it resolves names with that
    /// DNS server and connects to those ports. Without, all are valid.
    /// `validity`: the lifetime of the certificates it issues, in seconds.
    pub async fn start_with(
        dir: &Path,
        ca: &TestCa,
        validate: Option<(SocketAddr, u16, u16)>,
        validity: Option<u64>,
    ) -> Option<Pebble> {
        if !have("pebble", "pebble") {
            return None;
        }
        let (http_port, tls_port) = validate.map_or((free_port(), free_port()), |v| (v.1, v.2));
        let (cert, key) = ca.leaf(&["127.0.0.1", "localhost"]);
        let (cp, kp, ca_file) = (
            dir.join("pebble.crt"),
            dir.join("pebble.key"),
            dir.join("pebble-https-ca.pem"),
        );
        std::fs::write(&cp, cert).unwrap();
        std::fs::write(&kp, key).unwrap();
        std::fs::write(&ca_file, ca.pem()).unwrap();
        let (port, mgmt) = (free_port(), free_port());
        let config = dir.join("pebble.json");
        let mut settings = serde_json::json!({"pebble": {
                "listenAddress": format!("127.0.0.1:{port}"),
                "managementListenAddress": format!("127.0.0.1:{mgmt}"),
                "certificate": cp, "privateKey": kp,
                "httpPort": http_port, "tlsPort": tls_port,
                "ocspResponderURL": "", "externalAccountBindingRequired": false
        }});
        if let Some(secs) = validity {
            settings["pebble"]["certificateValidityPeriod"] = secs.into();
        }
        std::fs::write(&config, settings.to_string()).unwrap();
        let log = std::fs::File::create(dir.join("pebble.log")).unwrap();
        let mut cmd = Command::new("pebble");
        cmd.arg("-config").arg(&config);
        match validate {
            Some((dns, _, _)) => cmd.arg("-dnsserver").arg(dns.to_string()),
            None => cmd.env("PEBBLE_VA_ALWAYS_VALID", "1"),
        };
        let child = cmd
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("pebble starts");
        let p = Pebble {
            child,
            directory_url: format!("https://127.0.0.1:{port}/dir"),
            management: format!("127.0.0.1:{mgmt}").parse().unwrap(),
            ca_file,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let up = TcpStream::connect(("127.0.0.1", port)).await.is_ok()
                && TcpStream::connect(p.management).await.is_ok();
            if up {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "pebble did not listen within 20 s; see {}",
                dir.join("pebble.log").display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Some(p)
    }

    /// The root that pebble's certificates chain to (it makes a new one
    /// at every start).
    pub async fn root_pem(&self) -> String {
        https_get(
            &format!("https://{}/roots/0", self.management),
            &std::fs::read_to_string(&self.ca_file).unwrap(),
        )
        .await
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GETs an HTTPS URL trusting `ca_pem`; the body as text.
pub async fn https_get(url: &str, ca_pem: &str) -> String {
    use http_body_util::{BodyExt, Empty};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots(ca_pem))
        .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(cfg)
        .https_only()
        .enable_http1()
        .build();
    let client: hyper_util::client::legacy::Client<_, Empty<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(https);
    let resp = client.get(url.parse().unwrap()).await.unwrap();
    assert!(resp.status().is_success(), "{url}: {}", resp.status());
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

/// Polls `f` until it is true or `secs` pass.
pub async fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    f()
}

/// pebble-challtestsrv as a DNS server only: every name resolves to
/// 127.0.0.1 (no AAAA), so pebble validates challenges against loopback.
pub struct FakeDns {
    child: Child,
    pub addr: SocketAddr,
}

impl FakeDns {
    pub async fn start(dir: &Path) -> Option<FakeDns> {
        if !have("pebble-challtestsrv", "pebble") {
            return None;
        }
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let log = std::fs::File::create(dir.join("challtestsrv.log")).unwrap();
        let child = Command::new("pebble-challtestsrv")
            .args([
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
                "-defaultIPv6",
                "",
            ])
            .arg("-dns01")
            .arg(addr.to_string())
            .arg("-management")
            .arg(format!("127.0.0.1:{}", free_port()))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("pebble-challtestsrv starts");
        let dns = FakeDns { child, addr };
        // It serves DNS over UDP and TCP; TCP tells when it is up.
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(addr).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "pebble-challtestsrv did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Some(dns)
    }
}

impl Drop for FakeDns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
