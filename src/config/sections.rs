//! The configuration's sections: one serde struct per TOML table, every
//! field documented, unknown keys refused.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

pub use crate::enrich::agent::{AgentConfig, AgentRule, IpRule, UaRule};

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
    pub tls: crate::tls::config::TlsConfig,
    pub pages: PagesConfig,
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
    /// Connections one client address may hold at once, so one client
    /// cannot take every slot; `trusted_proxies` are exempt.
    pub max_connections_per_address: usize,
    /// Time allowed for a request head, against slowloris clients.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Deprecated: `header_read_timeout` in milliseconds, still read (with a warning).
    #[serde(default, skip_serializing)]
    pub header_read_timeout_ms: Option<u64>,
    /// Time a connection may stay silent before it is closed.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Deprecated: `idle_timeout` in milliseconds, still read (with a warning).
    #[serde(default, skip_serializing)]
    pub idle_timeout_ms: Option<u64>,
    /// Largest request head; hyper answers 431 beyond it.
    pub max_header_bytes: usize,
    /// Most header fields; hyper answers 431 beyond it.
    pub max_headers: usize,
    /// Longest request target; 414 beyond it.
    pub max_uri_bytes: usize,
    /// Largest request body (one-click unsubscribe); 413 beyond it.
    pub max_body_bytes: usize,
    /// How long in-flight requests may run after a shutdown signal.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Deprecated: `shutdown_grace` in milliseconds, still read (with a warning).
    #[serde(default, skip_serializing)]
    pub shutdown_grace_ms: Option<u64>,
    /// How long the sink may then take to deliver or spool what it holds.
    /// With `shutdown_grace_ms` it must fit the orchestrator's grace period
    /// (Kubernetes: 30 s by default).
    #[serde(with = "humantime_serde")]
    pub flush_timeout: Duration,
    /// Deprecated: `flush_timeout` in milliseconds, still read (with a warning).
    #[serde(default, skip_serializing)]
    pub flush_timeout_ms: Option<u64>,
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

/// A string that never prints: `Debug` and `Serialize` show `<redacted>`
/// (an empty one serializes as `""`, so `check-config` shows that none is
/// set).
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
        s.serialize_str(if self.0.is_empty() { "" } else { "<redacted>" })
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
    #[serde(with = "humantime_serde")]
    pub spool_fsync: Duration,
    /// Deprecated: `spool_fsync` in milliseconds, still read (with a warning).
    #[serde(default, skip_serializing)]
    pub spool_fsync_ms: Option<u64>,
    /// Events waiting for the spool's writer thread.
    pub spool_queue_capacity: usize,
    /// How long librdkafka tries a record before it goes to the spool.
    #[serde(with = "humantime_serde")]
    pub message_timeout: Duration,
    /// Deprecated: `message_timeout` in milliseconds, still read (with a warning).
    #[serde(default, skip_serializing)]
    pub message_timeout_ms: Option<u64>,
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

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PagesConfig {
    /// What the unsubscribe page calls the list ("the Acme newsletter");
    /// a token's attribute `list` wins. Empty: the page names no list,
    /// since a campaign id is internal and means nothing to a recipient.
    pub list_name: String,
}
