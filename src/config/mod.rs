//! Configuration: the serde structs, their layering and their validation.
//!
//! The embedded `config/trackedge.toml` is the single source of every default:
//! it is the base layer, a user's file is merged over it, and
//! `TRACKEDGE_<SECTION>__<KEY>` environment variables over that. Every struct
//! denies unknown fields so a typo stops start-up with the key's name instead
//! of being ignored. This module reads files and the environment only; it
//! never binds sockets or opens sinks.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

/// The documented default configuration, compiled in.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../config/trackedge.toml");
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

mod checks;
mod sections;
mod sources;

pub use sections::*;
pub use sources::{Origin, Sources};

/// Largest secret file read: a secret is tens of bytes; anything bigger is
/// the wrong file.
const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// Reads a secret file: a regular file only (a FIFO or device would hang
/// start-up or never end), at most [`MAX_SECRET_FILE_BYTES`].
fn read_secret(path: &Path) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind, Read};
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(Error::new(ErrorKind::InvalidInput, "not a regular file"));
    }
    if meta.len() > MAX_SECRET_FILE_BYTES {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!("{} bytes; a secret file holds one secret", meta.len()),
        ));
    }
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_SECRET_FILE_BYTES)
        .read_to_string(&mut text)?;
    Ok(text)
}

/// A configuration that cannot be used, with the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0}: not found")]
    Missing(PathBuf),
    #[error("config file {0}: not a regular file (--config names the TOML file itself)")]
    NotAFile(PathBuf),
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
        Self::load_with_sources(path).map(|(cfg, _)| cfg)
    }

    /// As [`Config::load`], with the layers it read, which tell where each
    /// value came from. Warns about the environment (variables that look
    /// like configuration but are not, variables that beat the file).
    pub fn load_with_sources(path: Option<&Path>) -> Result<(Config, Sources), ConfigError> {
        let sources = Sources::read(path)?;
        for w in sources.warnings() {
            tracing::warn!("{w}");
        }
        let cfg = sources.load()?;
        Ok((cfg, sources))
    }

    /// Embedded defaults with `overrides` (TOML text) merged over them; no
    /// file and no environment. For tests and tools.
    pub fn from_toml(overrides: &str) -> Result<Config, ConfigError> {
        Self::from_layers(&[overrides])
    }

    /// Embedded defaults with each TOML text merged over them in order.
    pub fn from_layers(layers: &[&str]) -> Result<Config, ConfigError> {
        Sources::layers(layers).load()
    }

    /// The older `*_ms` integer keys win over the durations they replace
    /// (a deployed config that sets one means it), with a warning.
    fn apply_deprecated_ms(&mut self) {
        let take = |section: &str, key: &str, ms: &mut Option<u64>, d: &mut Duration| {
            if let Some(v) = ms.take() {
                tracing::warn!(
                    key = format!("{section}.{key}_ms"),
                    instead = format!(
                        "{section}.{key} = \"{}\"",
                        humantime::format_duration(Duration::from_millis(v))
                    ),
                    "deprecated configuration key: write the duration instead"
                );
                *d = Duration::from_millis(v);
            }
        };
        let s = &mut self.server;
        take(
            "server",
            "header_read_timeout",
            &mut s.header_read_timeout_ms,
            &mut s.header_read_timeout,
        );
        take(
            "server",
            "idle_timeout",
            &mut s.idle_timeout_ms,
            &mut s.idle_timeout,
        );
        take(
            "server",
            "shutdown_grace",
            &mut s.shutdown_grace_ms,
            &mut s.shutdown_grace,
        );
        take(
            "server",
            "flush_timeout",
            &mut s.flush_timeout_ms,
            &mut s.flush_timeout,
        );
        let k = &mut self.kafka;
        take(
            "kafka",
            "spool_fsync",
            &mut k.spool_fsync_ms,
            &mut k.spool_fsync,
        );
        take(
            "kafka",
            "message_timeout",
            &mut k.message_timeout_ms,
            &mut k.message_timeout,
        );
        let a = &mut self.agent;
        take(
            "agent",
            "burst_window",
            &mut a.burst_window_ms,
            &mut a.burst_window,
        );
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
            let text = read_secret(path).map_err(|e| {
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
    fn durations_are_written_as_durations_and_old_ms_keys_still_read() {
        let cfg = Config::from_toml(
            "[server]\nheader_read_timeout = \"250ms\"\nidle_timeout = \"2m\"\n[kafka]\nmessage_timeout = \"30s\"\n",
        )
        .unwrap();
        assert_eq!(cfg.server.header_read_timeout, Duration::from_millis(250));
        assert_eq!(cfg.server.idle_timeout, Duration::from_secs(120));
        assert_eq!(cfg.kafka.message_timeout, Duration::from_secs(30));
        // A deployed config with the old integer keys keeps working.
        let old = Config::from_toml(
            "[server]\nshutdown_grace_ms = 1500\n[agent]\nburst_window_ms = 900\n",
        )
        .unwrap();
        assert_eq!(old.server.shutdown_grace, Duration::from_millis(1500));
        assert_eq!(old.agent.burst_window, Duration::from_millis(900));
        assert_eq!(
            old.server.shutdown_grace_ms, None,
            "applied, then forgotten"
        );
        // Written as a duration when printed.
        assert!(old
            .to_redacted_toml()
            .contains("shutdown_grace = \"1s 500ms\""));
        let err = Config::from_toml("[server]\nidle_timeout = \"soon\"\n").unwrap_err();
        assert!(err.to_string().contains("idle_timeout"), "{err}");
        let err = Config::from_toml("[server]\nidle_timeout = \"0s\"\n").unwrap_err();
        assert!(err.to_string().contains("server.idle_timeout"), "{err}");
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
