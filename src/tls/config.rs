//! The `[tls]` section and the `server.tls_listen` key (contract §9).
//!
//! Every struct has defaults of its own, so the section may be absent from
//! a configuration (and from the embedded default) and `crate::config`
//! needs one line: `pub tls: TlsConfig` with `#[serde(default)]`.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::TlsError;

/// `server.tls_listen`: the TLS listener's address; empty (`""`): no TLS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TlsListen(pub Option<SocketAddr>);

impl<'de> Deserialize<'de> for TlsListen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let s = s.trim();
        if s.is_empty() {
            return Ok(TlsListen(None));
        }
        s.parse().map(|a| TlsListen(Some(a))).map_err(|_| {
            serde::de::Error::custom(format!(
                "{s:?} is not an address such as \"0.0.0.0:443\" (empty: no TLS listener)"
            ))
        })
    }
}

impl Serialize for TlsListen {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(a) => s.collect_str(&a),
            None => s.serialize_str(""),
        }
    }
}

/// A duration written as `"10s"`, `"250ms"`, `"1h"`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl fmt::Debug for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(s.trim())
            .map(HumanDuration)
            .map_err(|e| serde::de::Error::custom(format!("{s:?}: {e} (write e.g. \"10s\")")))
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(self.0))
    }
}

/// The `[tls]` section.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Certificate/key PEM pairs, chosen by SNI against each certificate's
    /// names; the first answers clients that send no SNI. Reloaded on SIGHUP.
    pub certificates: Vec<CertificateFiles>,
    /// Time a client has to send its ClientHello, and again to finish the
    /// handshake, so half-open handshakes cannot hold connection slots.
    pub handshake_timeout: HumanDuration,
    /// Certificates obtained automatically from an ACME CA.
    pub acme: AcmeConfig,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            certificates: Vec::new(),
            handshake_timeout: HumanDuration(default_handshake_timeout()),
            acme: AcmeConfig::default(),
        }
    }
}

/// Ten seconds: a phone on a poor network completes a handshake well within
/// it, and a slowloris client holds a slot no longer than a slow head would.
const fn default_handshake_timeout() -> Duration {
    Duration::from_secs(10)
}

/// One entry of `tls.certificates`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateFiles {
    /// PEM file: the certificate first, then its intermediates.
    pub cert_file: PathBuf,
    /// PEM file with the certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// Names the certificate must cover; loading fails naming any that it
    /// does not, so a wrong file is caught at start-up or reload rather
    /// than by browsers. Empty: whatever the certificate names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
}

/// Which ACME challenge answers an authorization (the other is used when
/// the CA does not offer the preferred one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum Challenge {
    /// Answered on the TLS listener (needs it on port 443).
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
    /// Answered on the plain listener (needs it on port 80).
    #[serde(rename = "http-01")]
    Http01,
}

/// The `[tls.acme]` section.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AcmeConfig {
    /// The CA's ACME directory URL (Let's Encrypt:
    /// `https://acme-v02.api.letsencrypt.org/directory`); empty: no ACME.
    pub directory_url: String,
    /// Account contact, `mailto:ops@example.com`; the CA writes there about
    /// expiring certificates and policy changes. Empty: none.
    pub contact: String,
    /// PEM file of an extra CA to trust for the ACME server's own HTTPS (a
    /// private or test CA); the system's roots are trusted too. Empty: none.
    pub ca_file: String,
    /// Names obtained at start and kept renewed, one certificate each.
    pub domains: Vec<String>,
    /// Patterns (`t.shop.example`, `*.track.example`: one label) of names
    /// that get a certificate at their first handshake. Only names a
    /// customer pointed at the fleet belong here: every match costs an
    /// order at the CA.
    pub on_demand: Vec<String>,
    /// Most on-demand certificates ordered in any hour, so a flood of new
    /// names cannot exhaust the CA's rate limits for the whole fleet.
    pub max_new_per_hour: u32,
    /// How long a handshake for an on-demand name waits for its first
    /// certificate; beyond, the handshake fails and the order goes on.
    pub on_demand_wait: HumanDuration,
    /// The challenge answered first.
    pub challenge: Challenge,
    /// Account key and certificates, reused across restarts. One node's
    /// own: two nodes must not share it while both run ACME.
    pub cache_dir: PathBuf,
}

impl Default for AcmeConfig {
    fn default() -> Self {
        AcmeConfig {
            directory_url: String::new(),
            contact: String::new(),
            ca_file: String::new(),
            domains: Vec::new(),
            on_demand: Vec::new(),
            max_new_per_hour: default_max_new_per_hour(),
            on_demand_wait: HumanDuration(default_on_demand_wait()),
            challenge: Challenge::TlsAlpn01,
            cache_dir: PathBuf::from("data/acme"),
        }
    }
}

/// Let's Encrypt allows 300 new orders per account every 3 hours; 20 an
/// hour per node leaves room for a fleet and for renewals.
const fn default_max_new_per_hour() -> u32 {
    20
}

/// Let's Encrypt usually issues in a few seconds; a browser waits longer
/// for a handshake than this.
const fn default_on_demand_wait() -> Duration {
    Duration::from_secs(15)
}

impl AcmeConfig {
    pub fn enabled(&self) -> bool {
        !self.directory_url.is_empty()
    }

    /// Whether `name` matches one of `tls.acme.on_demand`.
    pub fn on_demand_allows(&self, name: &str) -> bool {
        self.on_demand.iter().any(|p| name_matches(p, name))
    }
}

impl TlsConfig {
    /// Checks what the types cannot: names and patterns well formed, URLs
    /// parse, on-demand only with a directory. Files are read by
    /// [`super::certs::CertSet::load`].
    pub fn check(&self) -> Result<(), TlsError> {
        let bad = |key, why: String| Err(TlsError::Config { key, why });
        if self.handshake_timeout.0.is_zero() {
            return bad("tls.handshake_timeout", "must be more than 0".into());
        }
        for c in &self.certificates {
            for n in &c.names {
                if !valid_name(n, true) {
                    return bad("tls.certificates.names", format!("{n:?} is not a DNS name"));
                }
            }
        }
        let a = &self.acme;
        if !a.enabled() {
            if !a.domains.is_empty() || !a.on_demand.is_empty() {
                return bad(
                    "tls.acme.directory_url",
                    "tls.acme.domains or tls.acme.on_demand are set, but no ACME directory: \
                     set the CA's directory URL"
                        .into(),
                );
            }
            return Ok(());
        }
        match url::Url::parse(&a.directory_url) {
            Ok(u) if u.scheme() == "https" => {}
            _ => {
                return bad(
                    "tls.acme.directory_url",
                    format!("{:?} is not an https:// URL", a.directory_url),
                )
            }
        }
        if !a.contact.is_empty() && !a.contact.starts_with("mailto:") {
            return bad(
                "tls.acme.contact",
                format!("{:?} must be a mailto: URL", a.contact),
            );
        }
        for d in &a.domains {
            if !valid_name(d, false) {
                return bad(
                    "tls.acme.domains",
                    format!("{d:?} is not a DNS name (no wildcards: ACME needs DNS-01 for those)"),
                );
            }
        }
        for p in &a.on_demand {
            if !valid_name(p, true) {
                return bad(
                    "tls.acme.on_demand",
                    format!("{p:?} is not a name or a one-label pattern like \"*.track.example\""),
                );
            }
        }
        if a.on_demand_wait.0.is_zero() {
            return bad("tls.acme.on_demand_wait", "must be more than 0".into());
        }
        Ok(())
    }
}

/// A DNS name of letters, digits and hyphens, at least two labels, lower
/// case; with `wildcard`, `*.` may lead it.
pub fn valid_name(name: &str, wildcard: bool) -> bool {
    let rest = match name.strip_prefix("*.") {
        Some(rest) if wildcard => rest,
        Some(_) => return false,
        None => name,
    };
    rest.len() <= 253
        && rest.contains('.')
        && rest.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// Whether the certificate name or on-demand pattern `pattern` matches the
/// (lower-case) host `name`: equal, or `*.rest` with `name` one label
/// more than `rest` (RFC 6125 §6.4.3: the wildcard stands for one label).
pub fn name_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(rest) => name
            .split_once('.')
            .is_some_and(|(label, tail)| !label.is_empty() && tail.eq_ignore_ascii_case(rest)),
        None => pattern.eq_ignore_ascii_case(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> Result<TlsConfig, toml::de::Error> {
        toml::from_str(toml_text)
    }

    #[test]
    fn defaults_and_durations() {
        let c = parse("").unwrap();
        assert_eq!(c, TlsConfig::default());
        let c = parse("handshake_timeout = \"250ms\"\n[acme]\non_demand_wait = \"1m\"").unwrap();
        assert_eq!(c.handshake_timeout.0, Duration::from_millis(250));
        assert_eq!(c.acme.on_demand_wait.0, Duration::from_secs(60));
        assert!(parse("handshake_timeout = \"soon\"").is_err());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = parse("[acme]\ndomain = [\"a.example\"]").unwrap_err();
        assert!(e.to_string().contains("domain"), "{e}");
        let e = parse("[[certificates]]\ncert_file = \"a\"\nkey_file = \"b\"\nkey = \"c\"")
            .unwrap_err();
        assert!(e.to_string().contains("key"), "{e}");
    }

    #[test]
    fn listen_may_be_empty() {
        #[derive(Deserialize)]
        struct S {
            l: TlsListen,
        }
        let s: S = toml::from_str("l = \"\"").unwrap();
        assert_eq!(s.l.0, None);
        let s: S = toml::from_str("l = \"127.0.0.1:8443\"").unwrap();
        assert_eq!(s.l.0, Some("127.0.0.1:8443".parse().unwrap()));
        assert!(toml::from_str::<S>("l = \"443\"").is_err());
    }

    #[test]
    fn checks_name_the_key() {
        let mut c = TlsConfig::default();
        c.acme.domains = vec!["t.example.com".into()];
        let e = c.check().unwrap_err().to_string();
        assert!(e.contains("tls.acme.directory_url"), "{e}");
        c.acme.directory_url = "https://acme.example/dir".into();
        c.check().unwrap();
        c.acme.domains = vec!["*.example.com".into()];
        assert!(c
            .check()
            .unwrap_err()
            .to_string()
            .contains("tls.acme.domains"));
        c.acme.domains.clear();
        c.acme.on_demand = vec!["*.track.example".into(), "T.Shop.example".into()];
        let e = c.check().unwrap_err().to_string();
        assert!(
            e.contains("tls.acme.on_demand") && e.contains("T.Shop"),
            "{e}"
        );
        c.acme.on_demand.pop();
        c.acme.contact = "ops@example.com".into();
        assert!(c.check().unwrap_err().to_string().contains("mailto"));
    }

    #[test]
    fn names() {
        assert!(valid_name("t.shop.example", false));
        assert!(valid_name("*.track.example", true));
        assert!(!valid_name("*.track.example", false));
        assert!(!valid_name("localhost", false));
        assert!(!valid_name("a..example", false));
        assert!(!valid_name("-a.example", false));
        assert!(!valid_name("a.*.example", true));
    }
}
