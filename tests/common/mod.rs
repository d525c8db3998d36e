//! Shared helpers for end-to-end tests: a real server on port 0, a real
//! HTTP client, raw sockets for malformed requests, and token minting.
#![allow(dead_code)]

pub mod kafka;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use trackedge::config::Config;
use trackedge::token::{Claims, Keyring, TokenType};

/// A test whose real dependency (a browser, a tmpfs, a broker) is missing:
/// under CI (`CI=true`) that is a failure naming what to install; on a
/// developer's machine the test skips, saying so.
pub fn skip(why: &str) {
    if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0") {
        panic!("a real dependency of this test is missing under CI: {why}");
    }
    println!("skipped: {why}");
}

/// Whether `tool` runs (`tool --version`); when not, [`skip`] with `install`.
pub fn have_tool(tool: impl AsRef<std::ffi::OsStr>, install: &str) -> bool {
    let found = std::process::Command::new(tool)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok();
    if !found {
        skip(install);
    }
    found
}

/// The contract's test secret and key id (its §2 test vectors).
pub const SECRET: &str = "test-secret-0123456789abcdef-0123456789";
pub const KEY_ID: &str = "test";

/// A trackedge running in this process on loopback port 0.
pub struct TestServer {
    pub public: SocketAddr,
    pub admin: SocketAddr,
    pub events_path: PathBuf,
    pub keys: Keyring,
    running: trackedge::serve::Running,
    _dir: tempfile::TempDir,
}

impl TestServer {
    /// Starts a server with the test key, a file sink in a temp dir, and
    /// `extra` TOML merged over that.
    pub async fn start(extra: &str) -> TestServer {
        Self::start_with_clock(extra, Arc::new(trackedge::now_ms)).await
    }

    /// As [`TestServer::start`], with the server's time read from `clock`.
    pub async fn start_with_clock(extra: &str, clock: trackedge::app::Clock) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let events_path = dir.path().join("events.ndjson");
        let base = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\
             [signing]\nkeys = [{{ id = \"{KEY_ID}\", secret = \"{SECRET}\" }}]\n\
             [sink]\nkind = \"file\"\nfile_path = {:?}\n",
            events_path.to_str().unwrap()
        );
        let cfg = Config::from_layers(&[&base, extra]).expect("test config is valid");
        let keys = Keyring::new(&cfg.effective_keys());
        let listeners = trackedge::serve::Listeners::bind(&cfg.server).expect("binds port 0");
        let opts = trackedge::serve::Options {
            clock,
            sighup: false,
            ..Default::default()
        };
        let running = trackedge::serve::spawn(cfg, opts, listeners);
        TestServer {
            public: running.public,
            admin: running.admin,
            events_path,
            keys,
            running,
            _dir: dir,
        }
    }

    /// Reloads the configuration as SIGHUP does; whether it took.
    pub async fn reload(&self) -> bool {
        self.running.reload().await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.public, path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    /// Mints a token with the server's signing key.
    pub fn mint(&self, claims: &mut Claims) -> String {
        self.keys.sign(claims)
    }

    /// The public URL carrying `token` on the route of type `t`.
    pub fn route_url(&self, t: TokenType, token: &str) -> String {
        trackedge::router::token_url(&self.url(""), t, token)
    }

    /// Mints `claims` and returns the URL of its route.
    pub fn tracked(&self, claims: &mut Claims) -> String {
        let token = self.mint(claims);
        self.route_url(claims.t, &token)
    }

    /// Stops the server (graceful shutdown, sink flushed) and returns every
    /// event it wrote, parsed.
    pub async fn stop(self) -> Vec<Value> {
        tokio::time::timeout(Duration::from_secs(60), self.running.stop())
            .await
            .expect("server stops within a minute")
            .expect("the server ran and drained");
        read_events(&self.events_path)
    }
}

/// Every line of an NDJSON file, parsed; no file means no events.
pub fn read_events(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad event line {l:?}: {e}")))
        .collect()
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    trackedge::now_ms() / 1000
}

/// The `[sink]` and `[kafka]` config of a Kafka-sink server on `brokers`,
/// spooling to `spool`, with `extra` TOML after.
pub fn kafka_toml(brokers: &str, topic: &str, spool: &std::path::Path, extra: &str) -> String {
    format!(
        "[sink]\nkind = \"kafka\"\n[kafka]\nbrokers = \"{brokers}\"\ntopic = \"{topic}\"\nspool_dir = {:?}\nspool_fsync_ms = 50\n{extra}",
        spool.to_str().unwrap()
    )
}

/// The environment of a binary on the Kafka sink (`Proc::spawn`).
pub fn kafka_env<'a>(bootstrap: &'a str, spool: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("TRACKEDGE_SINK__KIND", "kafka"),
        ("TRACKEDGE_KAFKA__BROKERS", bootstrap),
        ("TRACKEDGE_KAFKA__SPOOL_DIR", spool),
        ("TRACKEDGE_KAFKA__SPOOL_FSYNC_MS", "50"),
    ]
}

/// A claims payload for route `t` in campaign `c`.
pub fn claims(t: TokenType, c: &str) -> Claims {
    Claims::new(t, c)
}

/// An answer as a client sees it.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

/// A real HTTP/1.1 client with keep-alive.
pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

pub async fn send(method: Method, url: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut b = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b
        .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
        .unwrap();
    let resp = client().request(req).await.expect("request answered");
    let (parts, body) = resp.into_parts();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

pub async fn get(url: &str) -> Answer {
    send(Method::GET, url, &[], "").await
}

pub async fn get_with(url: &str, headers: &[(&str, &str)]) -> Answer {
    send(Method::GET, url, headers, "").await
}

/// Writes raw bytes to `addr` and returns what comes back until the server
/// closes or goes quiet.
pub async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    // The server may answer and close before reading it all: ignore write errors.
    let _ = s.write_all(request).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// The status code of a raw HTTP response.
pub fn raw_status(resp: &str) -> u16 {
    resp.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {resp:?}"))
}

/// The value of a counter or gauge line in Prometheus text, 0 when absent.
pub fn metric(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// The trackedge binary as a child process.
pub struct Proc {
    pub child: std::process::Child,
    pub public: String,
    pub admin: String,
}

impl Proc {
    /// Runs `trackedge serve` in `dir` with JSON logs, both listeners on
    /// loopback port 0, the test signing key, and `env` on top.
    pub fn spawn(dir: &std::path::Path, env: &[(&str, &str)]) -> Proc {
        let keys = format!("[{{id=\"{KEY_ID}\",secret=\"{SECRET}\"}}]");
        let mut all = vec![("TRACKEDGE_SIGNING__KEYS", keys.as_str())];
        all.extend_from_slice(env);
        Self::serve(dir, &[], &all)
    }

    /// Runs `trackedge serve --config config` in `dir`, listeners on
    /// loopback port 0, signing keys from the file, and `env` on top.
    pub fn spawn_with_config(
        dir: &std::path::Path,
        config: &std::path::Path,
        env: &[(&str, &str)],
    ) -> Proc {
        Self::serve(dir, &["--config", config.to_str().unwrap()], env)
    }

    fn serve(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Proc {
        let mut c = bare_command(dir);
        c.args(["serve", "--log-format", "json"]).args(args);
        c.env("TRACKEDGE_SERVER__LISTEN", "127.0.0.1:0")
            .env("TRACKEDGE_SERVER__ADMIN_LISTEN", "127.0.0.1:0");
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let (public, admin) = bound_addrs(child.stderr.take().unwrap());
        Proc {
            child,
            public,
            admin,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.public, path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    /// The current `/metrics` text.
    pub async fn metrics(&self) -> String {
        String::from_utf8_lossy(&get(&self.admin_url("/metrics")).await.body).into_owned()
    }

    /// Sends a signal; the process goes on (or not) on its own.
    pub fn kill(&self, sig: &str) {
        let ok = std::process::Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Sends a signal and waits for the exit code.
    pub fn signal(mut self, sig: &str) -> Option<i32> {
        let ok = std::process::Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        self.child.wait().unwrap().code()
    }
}

/// The trackedge binary run in `dir` (where no config file is found) with no
/// inherited TRACKEDGE_ variables.
pub fn bare_command(dir: &std::path::Path) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_trackedge"));
    c.current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("TRACKEDGE_") {
            c.env_remove(k);
        }
    }
    c
}

/// Reads the JSON log lines of a starting server until both listeners are bound.
pub fn bound_addrs(stderr: std::process::ChildStderr) -> (String, String) {
    use std::io::{BufRead, BufReader};
    let mut public = None;
    let mut admin = None;
    let mut lines = BufReader::new(stderr).lines();
    while public.is_none() || admin.is_none() {
        let line = lines.next().expect("server exited before binding").unwrap();
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if v["message"] == "listener bound" {
            let addr = v["addr"].as_str().unwrap().to_owned();
            match v["listener"].as_str() {
                Some("public") => public = Some(addr),
                Some("admin") => admin = Some(addr),
                _ => {}
            }
        }
    }
    // Keep draining so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (public.unwrap(), admin.unwrap())
}

/// The sum of every sample of a counter family, whatever its labels.
pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.starts_with(name) && matches!(l.as_bytes().get(name.len()), Some(b' ' | b'{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
