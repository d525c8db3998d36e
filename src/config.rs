//! Configuration: the serde structs, their layering and their validation.
//!
//! The embedded `config/trackedge.toml` is the single source of every default:
//! it is the base layer, a user's file is merged over it, and
//! `TRACKEDGE_<SECTION>__<KEY>` environment variables over that. Every struct
//! denies unknown fields so a typo stops start-up with the key's name instead
//! of being ignored. This module reads files and the environment only; it
//! never binds sockets or opens sinks.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// The documented default configuration, compiled in.
pub const EMBEDDED_DEFAULT: &str = include_str!("../config/trackedge.toml");
/// Where `--config` points when it is not given; absent means defaults only.
pub const DEFAULT_PATH: &str = "config/trackedge.toml";
/// Prefix of environment overrides; `__` separates section and key.
pub const ENV_PREFIX: &str = "TRACKEDGE_";
/// Signs tokens when no key is configured. Public on purpose: it is only
/// good for trying trackedge out, and start-up warns loudly when it is used.
pub const DEV_KEY_ID: &str = "dev";
pub const DEV_KEY_SECRET: &str = "trackedge-development-key-not-for-production";
/// Shortest secret accepted: 256 bits of a random key's worth of bytes.
pub const MIN_SECRET_BYTES: usize = 32;

/// The whole configuration, one struct per TOML section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub signing: SigningConfig,
    pub sink: SinkConfig,
    pub kafka: KafkaConfig,
    pub geoip: GeoIpConfig,
    pub privacy: PrivacyConfig,
    pub cookie: CookieConfig,
    pub agent: AgentConfig,
    pub stats: StatsConfig,
    pub click: ClickConfig,
    /// HTTPS: certificates and ACME (contract §9); see `crate::tls::config`.
    #[serde(default)]
    pub tls: crate::tls::TlsConfig,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Public listener for pixels, redirects and unsubscribes.
    pub listen: SocketAddr,
    /// Public TLS listener (same routes as `listen`); empty: no TLS.
    #[serde(default)]
    pub tls_listen: crate::tls::config::TlsListen,
    /// Admin listener for metrics and probes; private by default.
    pub admin_listen: SocketAddr,
    /// Base of the URLs that `trackedge sign` mints.
    pub public_url: url::Url,
    /// Load balancers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Connections served at once, so a flood cannot exhaust memory or fds.
    pub max_connections: usize,
    /// Time allowed for a request head, against slowloris clients.
    pub header_read_timeout_ms: u64,
    /// Time a connection may stay silent before it is closed.
    pub idle_timeout_ms: u64,
    /// Largest request head; hyper answers 431 beyond it.
    pub max_header_bytes: usize,
    /// Most header fields; hyper answers 431 beyond it.
    pub max_headers: usize,
    /// Longest request target; 414 beyond it.
    pub max_uri_bytes: usize,
    /// Largest request body (one-click unsubscribe); 413 beyond it.
    pub max_body_bytes: usize,
    /// How long in-flight requests may run after a shutdown signal.
    pub shutdown_grace_ms: u64,
    /// How long the sink may then take to deliver or spool what it holds.
    /// With `shutdown_grace_ms` it must fit the orchestrator's grace period
    /// (Kubernetes: 30 s by default).
    pub flush_timeout_ms: u64,
    /// Bearer token `/stats` requires; empty: none.
    pub admin_token: Secret,
    /// Threads serving the public listener, each with its own runtime and
    /// `SO_REUSEPORT` socket; 0: one per core.
    pub worker_threads: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SigningConfig {
    /// The first key signs; all verify (rotation).
    pub keys: Vec<SigningKey>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SigningKey {
    /// Carried in the token's `k` so verification picks the right secret.
    pub id: String,
    /// HMAC-SHA256 secret; redacted wherever the config is printed. Filled
    /// from `secret_file` at load when that is given instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Secret>,
    /// A file holding the secret (a mounted Kubernetes Secret, say); one
    /// trailing newline is ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
    /// Verifies but never signs: how a new key reaches every node of a
    /// fleet before any node signs with it.
    #[serde(default)]
    pub verify_only: bool,
}

/// librdkafka settings with credential values (`sasl.password`,
/// `ssl.key.password`, `...secret`, `ssl.key.pem`) shown as `<redacted>`.
fn redact_credentials<S: serde::Serializer>(
    m: &std::collections::BTreeMap<String, String>,
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut out = s.serialize_map(Some(m.len()))?;
    for (k, v) in m {
        let secret = ["password", "secret", "key.pem", "token"]
            .iter()
            .any(|w| k.contains(w));
        out.serialize_entry(k, if secret { "<redacted>" } else { v.as_str() })?;
    }
    out.end()
}

/// A string that never prints: `Debug` and `Serialize` show `<redacted>`.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    File,
    Kafka,
    Stdout,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// Which sink receives events.
    pub kind: SinkKind,
    /// NDJSON file of the `file` sink.
    pub file_path: PathBuf,
    /// Bound of the queue between the request path and the sink thread.
    pub queue_capacity: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma-separated.
    pub brokers: String,
    /// Topic for every event.
    pub topic: String,
    /// Disk spool for events Kafka cannot take yet.
    pub spool_dir: PathBuf,
    /// Most bytes the spool may hold; beyond, the newest events are dropped.
    pub spool_max_bytes: u64,
    /// Size at which a spool segment is closed and a new one begun.
    pub spool_segment_bytes: u64,
    /// Most time between a spooled event and its fsync.
    pub spool_fsync_ms: u64,
    /// Events waiting for the spool's writer thread.
    pub spool_queue_capacity: usize,
    /// How long librdkafka tries a record before it goes to the spool.
    pub message_timeout_ms: u64,
    /// Create the topic at start-up when it is missing.
    pub create_topic: bool,
    /// Partitions of a topic trackedge creates.
    pub partitions: i32,
    /// Replication factor of a topic trackedge creates.
    pub replication_factor: i32,
    /// librdkafka settings passed through as given, over trackedge's own.
    /// Values of keys that hold credentials print redacted.
    #[serde(serialize_with = "redact_credentials")]
    pub librdkafka: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GeoIpConfig {
    /// City database path; empty disables city/country lookups.
    pub city_db: String,
    /// ASN database path; empty disables network lookups.
    pub asn_db: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IpAnonymization {
    None,
    Truncate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnOptOut {
    Anonymize,
    Drop,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacyConfig {
    /// How much of the client address leaves the process.
    pub ip_anonymization: IpAnonymization,
    /// Treat `DNT: 1` as an opt-out for this request.
    pub honor_dnt: bool,
    /// Treat `Sec-GPC: 1` as an opt-out for this request.
    pub honor_gpc: bool,
    /// Whether opted-out requests give an anonymous event or none.
    pub on_opt_out: OnOptOut,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SameSite {
    Lax,
    Strict,
    None,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CookieConfig {
    /// Name of the first-party visitor cookie.
    pub name: String,
    /// Name of the opt-out cookie set by `/optout`.
    pub optout_name: String,
    /// Lifetime of the visitor cookie, in days.
    pub lifetime_days: u64,
    /// Cookie domain; empty: the host that answered.
    pub domain: String,
    /// Send only over HTTPS.
    pub secure: bool,
    /// Hidden from page scripts.
    pub http_only: bool,
    /// SameSite attribute.
    pub same_site: SameSite,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleKind {
    Human,
    Proxy,
    Bot,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UaRule {
    /// Case-insensitive substring of the User-Agent.
    pub pattern: String,
    pub kind: RuleKind,
    /// The `agent.name` of a match.
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IpRule {
    /// Source network.
    pub cidr: IpNet,
    pub kind: RuleKind,
    /// The `agent.name` of a match.
    pub name: String,
}

/// One agent rule, as in `agents/agents.toml` (its header documents each
/// field) or in `agent.rules`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AgentRule {
    /// The event's `agent.name`; a configured rule replaces a built-in one
    /// of the same name.
    pub name: String,
    /// The verdict on opens, unsubscribes and beacons.
    pub kind: RuleKind,
    /// The verdict on clicks; `kind` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub click_kind: Option<RuleKind>,
    /// Routes it applies to (open, click, unsubscribe, beacon); all when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<String>,
    /// User-Agent regexes (Rust syntax, case-insensitive).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ua: Vec<String>,
    /// Source networks (the full client address).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<IpNet>,
    /// Source ASNs (needs `geoip.asn_db`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub asns: Vec<u32>,
    /// A network match alone is not proof: it decides only with another
    /// machine signal (HEAD, timing, a burst, a generic UA match).
    #[serde(default)]
    pub needs_other_signal: bool,
    /// How the networks are known: published, observed, registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
    /// Where each fact comes from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl AgentRule {
    /// A rule with a name and a verdict and nothing that matches yet.
    pub fn new(name: String, kind: RuleKind) -> AgentRule {
        AgentRule {
            name,
            kind,
            click_kind: None,
            routes: vec![],
            ua: vec![],
            networks: vec![],
            asns: vec![],
            needs_other_signal: false,
            evidence: None,
            source: vec![],
            note: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// A click sooner than this after the token's send time is a scanner.
    pub min_click_secs: i64,
    /// A rules file replacing the built-in `agents/agents.toml`; empty: built in.
    pub rules_file: PathBuf,
    /// Rules added in front of the file's; one named like a file rule replaces it.
    pub rules: Vec<AgentRule>,
    /// Distinct links of one message one source may fetch within
    /// `burst_window_ms` before it is a scanner (`reason: "burst"`).
    pub burst_links: usize,
    /// The window of a burst.
    pub burst_window_ms: u64,
    /// Messages and sources a burst is watched for at once (bounded memory).
    pub burst_entries: usize,
    /// Extra User-Agent rules, checked before the built-in ones.
    pub ua_rules: Vec<UaRule>,
    /// Extra source-network rules, checked before the built-in ones.
    pub ip_rules: Vec<IpRule>,
    /// Distinct User-Agents kept parsed in memory.
    pub ua_cache_entries: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StatsConfig {
    /// Most campaigns counted at once; beyond, the least recently active goes.
    pub max_campaigns: usize,
    /// Most links counted per campaign; further links are refused.
    pub max_links: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClickConfig {
    /// Redirect target for invalid click links; empty gives a 404 page.
    pub fallback_url: String,
}

/// Environment overrides: only `TRACKEDGE_<SECTION>__<KEY>` variables.
/// Others that merely start with the prefix, such as the
/// `TRACKEDGE_SERVICE_HOST` and `TRACKEDGE_PORT` Kubernetes injects for a
/// Service named `trackedge`, are not configuration and are ignored.
fn env_overrides() -> Env {
    for (k, _) in std::env::vars_os() {
        if let Some(k) = k.to_str() {
            if k.starts_with(ENV_PREFIX) && !k.contains("__") {
                tracing::debug!(variable = k, "ignored: not TRACKEDGE_<SECTION>__<KEY>");
            }
        }
    }
    Env::prefixed(ENV_PREFIX)
        .filter(|k| k.as_str().contains("__"))
        .split("__")
}

/// A configuration that cannot be used, with the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0}: not found")]
    Missing(PathBuf),
    #[error("{0}")]
    Parse(String),
    #[error("config key `{key}`: {msg}")]
    Invalid { key: String, msg: String },
}

fn invalid(key: impl Into<String>, msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        msg: msg.into(),
    }
}

impl Config {
    /// Loads embedded defaults, then the file, then the environment.
    ///
    /// `path` None means the default path, which may be absent; a path the
    /// user named must exist.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Toml::string(EMBEDDED_DEFAULT));
        match path {
            Some(p) if !p.exists() => return Err(ConfigError::Missing(p.to_path_buf())),
            Some(p) => fig = fig.merge(Toml::file(p)),
            None if Path::new(DEFAULT_PATH).exists() => fig = fig.merge(Toml::file(DEFAULT_PATH)),
            None => {}
        }
        fig = fig.merge(env_overrides());
        Self::extract(fig)
    }

    /// Embedded defaults with `overrides` (TOML text) merged over them; no
    /// file and no environment. For tests and tools.
    pub fn from_toml(overrides: &str) -> Result<Config, ConfigError> {
        Self::from_layers(&[overrides])
    }

    /// Embedded defaults with each TOML text merged over them in order.
    pub fn from_layers(layers: &[&str]) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Toml::string(EMBEDDED_DEFAULT));
        for l in layers {
            fig = fig.merge(Toml::string(l));
        }
        Self::extract(fig)
    }

    fn extract(fig: Figment) -> Result<Config, ConfigError> {
        let mut cfg: Config = fig.extract().map_err(|e| {
            // figment names the key path ("server.listen") in each error.
            let msgs: Vec<String> = e.into_iter().map(|e| e.to_string()).collect();
            ConfigError::Parse(msgs.join("; "))
        })?;
        cfg.read_secret_files()?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads each key's `secret_file` into its `secret`.
    fn read_secret_files(&mut self) -> Result<(), ConfigError> {
        for (i, k) in self.signing.keys.iter_mut().enumerate() {
            let Some(path) = &k.secret_file else { continue };
            if k.secret.is_some() {
                return Err(invalid(
                    format!("signing.keys[{i}]"),
                    format!("key {:?} has both secret and secret_file; give one", k.id),
                ));
            }
            let text = std::fs::read_to_string(path).map_err(|e| {
                invalid(
                    format!("signing.keys[{i}].secret_file"),
                    format!("key {:?}: cannot read {}: {e}", k.id, path.display()),
                )
            })?;
            let secret = text
                .strip_suffix('\n')
                .map(|t| t.strip_suffix('\r').unwrap_or(t))
                .unwrap_or(&text);
            k.secret = Some(Secret(secret.to_owned()));
        }
        Ok(())
    }

    /// Refuses what `serve` must not run with, beyond what [`Config::validate`]
    /// checks: the public development key on a listener others can reach.
    pub fn check_serve(&self) -> Result<(), ConfigError> {
        if self.uses_dev_key() && !self.server.listen.ip().is_loopback() {
            return Err(invalid(
                "signing.keys",
                format!(
                    "empty, so the public development key would sign links on {} where anyone \
                     could mint redirects off this domain; configure a key (make one with \
                     `trackedge gen-key`) or listen on loopback",
                    self.server.listen
                ),
            ));
        }
        Ok(())
    }

    /// Checks what types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let s = &self.server;
        if s.max_connections == 0 {
            return Err(invalid("server.max_connections", "must be at least 1"));
        }
        if s.max_header_bytes < 8192 {
            return Err(invalid("server.max_header_bytes", "must be at least 8192"));
        }
        if s.max_headers == 0 {
            return Err(invalid("server.max_headers", "must be at least 1"));
        }
        if s.max_uri_bytes < 64 {
            return Err(invalid("server.max_uri_bytes", "must be at least 64"));
        }
        if s.header_read_timeout_ms == 0 {
            return Err(invalid(
                "server.header_read_timeout_ms",
                "must be at least 1",
            ));
        }
        if s.idle_timeout_ms == 0 {
            return Err(invalid("server.idle_timeout_ms", "must be at least 1"));
        }
        if !matches!(s.public_url.scheme(), "http" | "https") || s.public_url.host().is_none() {
            return Err(invalid(
                "server.public_url",
                "must be an absolute http(s) URL with a host",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, k) in self.signing.keys.iter().enumerate() {
            if k.id.is_empty() {
                return Err(invalid(
                    format!("signing.keys[{i}].id"),
                    "must not be empty",
                ));
            }
            if !seen.insert(k.id.as_str()) {
                return Err(invalid(
                    format!("signing.keys[{i}].id"),
                    format!("duplicate key id {:?}", k.id),
                ));
            }
            let field = if k.secret_file.is_some() {
                "secret_file"
            } else {
                "secret"
            };
            match &k.secret {
                None => {
                    return Err(invalid(
                        format!("signing.keys[{i}]"),
                        format!("key {:?} needs a secret or a secret_file", k.id),
                    ))
                }
                Some(s) if s.0.len() < MIN_SECRET_BYTES => {
                    return Err(invalid(
                        format!("signing.keys[{i}].{field}"),
                        format!("key {:?}: the secret must be at least {MIN_SECRET_BYTES} bytes (make one with `trackedge gen-key`)", k.id),
                    ))
                }
                Some(_) => {}
            }
        }
        if !self.signing.keys.is_empty() && self.signing.keys.iter().all(|k| k.verify_only) {
            return Err(invalid(
                "signing.keys",
                "every key is verify_only: one must sign",
            ));
        }
        if self.sink.kind == SinkKind::File && self.sink.file_path.as_os_str().is_empty() {
            return Err(invalid(
                "sink.file_path",
                "must not be empty for the file sink",
            ));
        }
        if self.sink.queue_capacity == 0 {
            return Err(invalid("sink.queue_capacity", "must be at least 1"));
        }
        let k = &self.kafka;
        if k.topic.is_empty() {
            return Err(invalid("kafka.topic", "must not be empty"));
        }
        if k.brokers.trim().is_empty() {
            return Err(invalid("kafka.brokers", "must not be empty"));
        }
        if k.spool_segment_bytes < 4096 {
            return Err(invalid(
                "kafka.spool_segment_bytes",
                "must be at least 4096",
            ));
        }
        if k.spool_max_bytes < k.spool_segment_bytes {
            return Err(invalid(
                "kafka.spool_max_bytes",
                "must be at least kafka.spool_segment_bytes",
            ));
        }
        if k.spool_fsync_ms == 0 || k.spool_fsync_ms > 10_000 {
            return Err(invalid("kafka.spool_fsync_ms", "must be 1-10000"));
        }
        if k.spool_queue_capacity == 0 {
            return Err(invalid("kafka.spool_queue_capacity", "must be at least 1"));
        }
        if k.message_timeout_ms < 100 {
            return Err(invalid("kafka.message_timeout_ms", "must be at least 100"));
        }
        if k.partitions < 1 {
            return Err(invalid("kafka.partitions", "must be at least 1"));
        }
        if k.replication_factor < 1 {
            return Err(invalid("kafka.replication_factor", "must be at least 1"));
        }
        let c = &self.cookie;
        let token_ok = |v: &str| {
            !v.is_empty()
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        };
        if !token_ok(&c.name) {
            return Err(invalid(
                "cookie.name",
                "must be letters, digits, '-', '_' or '.'",
            ));
        }
        if !token_ok(&c.optout_name) || c.optout_name == c.name {
            return Err(invalid(
                "cookie.optout_name",
                "must be letters, digits, '-', '_' or '.', and differ from cookie.name",
            ));
        }
        if !c.domain.is_empty()
            && !c
                .domain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b))
        {
            return Err(invalid("cookie.domain", "must be a host name"));
        }
        if c.same_site == SameSite::None && !c.secure {
            return Err(invalid(
                "cookie.same_site",
                "\"none\" needs cookie.secure = true (browsers refuse it otherwise)",
            ));
        }
        if self.agent.min_click_secs < 0 {
            return Err(invalid("agent.min_click_secs", "must not be negative"));
        }
        if !(2..=8).contains(&self.agent.burst_links) {
            return Err(invalid("agent.burst_links", "must be 2-8"));
        }
        if let Err(e) = crate::enrich::agent::Rules::load(&self.agent) {
            return Err(invalid(e.key, e.msg));
        }
        for (i, r) in self.agent.ua_rules.iter().enumerate() {
            if r.pattern.trim().is_empty() {
                return Err(invalid(
                    format!("agent.ua_rules[{i}].pattern"),
                    "must not be empty",
                ));
            }
        }
        if !self.click.fallback_url.is_empty() {
            if let Err(why) = crate::token::check_destination(&self.click.fallback_url) {
                return Err(invalid("click.fallback_url", why));
            }
        }
        Ok(())
    }

    /// Whether no key is configured and the development key is in use.
    pub fn uses_dev_key(&self) -> bool {
        self.signing.keys.is_empty()
    }

    /// The configured keys, the signing key (the first not verify-only)
    /// first; or the development key when there are none.
    pub fn effective_keys(&self) -> Vec<(String, Vec<u8>)> {
        if self.signing.keys.is_empty() {
            return vec![(DEV_KEY_ID.to_owned(), DEV_KEY_SECRET.as_bytes().to_vec())];
        }
        let pair = |k: &SigningKey| {
            let secret = k.secret.as_ref().expect("secrets are read at load");
            (k.id.clone(), secret.0.as_bytes().to_vec())
        };
        let keys = &self.signing.keys;
        let signer = keys.iter().position(|k| !k.verify_only).unwrap_or(0);
        std::iter::once(&keys[signer])
            .chain(
                keys.iter()
                    .enumerate()
                    .filter(|(i, _)| *i != signer)
                    .map(|(_, k)| k),
            )
            .map(pair)
            .collect()
    }

    /// What changed between `self` (running) and `next` that a reload cannot
    /// apply: the listeners and the sink are built once.
    pub fn needs_restart(&self, next: &Config) -> Vec<&'static str> {
        fn differ<T: Serialize>(a: &T, b: &T) -> bool {
            toml::to_string(a).ok() != toml::to_string(b).ok()
        }
        let mut changed = Vec::new();
        // trusted_proxies reloads (the enricher is rebuilt); the admin
        // token is compared by value, not by its redacted form.
        let mut server = next.server.clone();
        server.trusted_proxies = self.server.trusted_proxies.clone();
        if differ(&self.server, &server) || self.server.admin_token.0 != next.server.admin_token.0 {
            changed.push("server");
        }
        if differ(&self.sink, &next.sink) {
            changed.push("sink");
        }
        if differ(&self.kafka, &next.kafka) {
            changed.push("kafka");
        }
        if differ(&self.stats, &next.stats) {
            changed.push("stats");
        }
        changed
    }

    /// The effective configuration as TOML, secrets redacted.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_complete_and_valid() {
        let cfg = Config::from_toml("").unwrap();
        assert_eq!(cfg.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(cfg.server.admin_listen.to_string(), "127.0.0.1:9464");
        assert_eq!(cfg.sink.kind, SinkKind::File);
        assert_eq!(cfg.kafka.topic, "trackedge.events");
        assert_eq!(cfg.privacy.ip_anonymization, IpAnonymization::Truncate);
        assert!(cfg.uses_dev_key());
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::from_toml("[server]\nlisten_port = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("listen_port"), "{err}");
    }

    #[test]
    fn bad_value_is_named() {
        let err = Config::from_toml("[server]\nlisten = \"nope\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("server.listen"), "{err}");
        let err = Config::from_toml("[sink]\nkind = \"s3\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("sink.kind"), "{err}");
    }

    #[test]
    fn short_secret_is_refused() {
        let err = Config::from_toml("[signing]\nkeys = [{ id = \"a\", secret = \"short\" }]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("signing.keys[0].secret"), "{err}");
    }

    #[test]
    fn secrets_are_redacted() {
        let cfg = Config::from_toml(
            "[signing]\nkeys = [{ id = \"a\", secret = \"0123456789abcdef0123456789abcdef-x\" }]\n",
        )
        .unwrap();
        let shown = cfg.to_redacted_toml();
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
        assert!(shown.contains("<redacted>"));
        assert!(!format!("{cfg:?}").contains("0123456789abcdef"));
    }

    #[test]
    fn unsafe_fallback_is_refused() {
        let err =
            Config::from_toml("[click]\nfallback_url = \"javascript:alert(1)\"\n").unwrap_err();
        assert!(err.to_string().contains("click.fallback_url"));
    }

    fn key(id: &str, extra: &str) -> String {
        format!("{{ id = \"{id}\", {extra} }}")
    }

    #[test]
    fn the_first_signing_key_signs_and_verify_only_keys_only_verify() {
        let secret = |c: char| format!("secret = \"{}\"", c.to_string().repeat(40));
        let cfg = Config::from_toml(&format!(
            "[signing]\nkeys = [{}, {}, {}]\n",
            key("new", &format!("{}, verify_only = true", secret('n'))),
            key("cur", &secret('c')),
            key("old", &secret('o')),
        ))
        .unwrap();
        let ids: Vec<_> = cfg.effective_keys().into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, ["cur", "new", "old"]);
        let err = Config::from_toml(&format!(
            "[signing]\nkeys = [{}]\n",
            key("a", &format!("{}, verify_only = true", secret('a')))
        ))
        .unwrap_err();
        assert!(err.to_string().contains("verify_only"), "{err}");
    }

    #[test]
    fn secret_files_are_read_without_their_newline_and_named_when_bad() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("k1");
        std::fs::write(&good, format!("{}\n", "s".repeat(40))).unwrap();
        let cfg = Config::from_toml(&format!(
            "[signing]\nkeys = [{}]\n",
            key("k1", &format!("secret_file = {:?}", good.to_str().unwrap()))
        ))
        .unwrap();
        assert_eq!(cfg.effective_keys()[0].1, "s".repeat(40).into_bytes());
        let short = dir.path().join("short");
        std::fs::write(&short, "tiny\n").unwrap();
        for (path, want) in [
            (dir.path().join("missing"), "cannot read"),
            (short, "at least 32 bytes"),
        ] {
            let err = Config::from_toml(&format!(
                "[signing]\nkeys = [{}]\n",
                key("k9", &format!("secret_file = {:?}", path.to_str().unwrap()))
            ))
            .unwrap_err()
            .to_string();
            assert!(err.contains("signing.keys[0].secret_file"), "{err}");
            assert!(err.contains("\"k9\"") && err.contains(want), "{err}");
        }
    }

    #[test]
    fn the_development_key_serves_on_loopback_only() {
        assert!(Config::from_toml("").unwrap().check_serve().is_ok());
        let err = Config::from_toml("[server]\nlisten = \"0.0.0.0:8080\"\n")
            .unwrap()
            .check_serve()
            .unwrap_err();
        assert!(err.to_string().contains("signing.keys"), "{err}");
    }
}
