//! What the types of [`super::Config`] cannot say: ranges, relations
//! between keys, and formats, each refusal naming its key.

use std::time::Duration;

use super::*;

impl Config {
    /// Checks what types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let s = &self.server;
        if s.max_connections == 0 {
            return Err(invalid("server.max_connections", "must be at least 1"));
        }
        if s.max_connections_per_address == 0 {
            return Err(invalid(
                "server.max_connections_per_address",
                "must be at least 1",
            ));
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
        for (key, d) in [
            ("server.header_read_timeout", s.header_read_timeout),
            ("server.idle_timeout", s.idle_timeout),
        ] {
            if d < Duration::from_millis(1) {
                return Err(invalid(key, "must be at least 1ms"));
            }
        }
        let token = &s.admin_token.0;
        if !token.is_empty() && token.len() < MIN_SECRET_BYTES {
            return Err(invalid(
                "server.admin_token",
                format!(
                    "must be at least {MIN_SECRET_BYTES} bytes: a short token can be guessed (make one with `trackedge gen-key`)"
                ),
            ));
        }
        if s.listen == s.admin_listen && s.listen.port() != 0 {
            return Err(invalid(
                "server.admin_listen",
                format!(
                    "is {} like server.listen: give the admin listener its own port",
                    s.listen
                ),
            ));
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
        if k.spool_fsync < Duration::from_millis(1) || k.spool_fsync > Duration::from_secs(10) {
            return Err(invalid("kafka.spool_fsync", "must be 1ms-10s"));
        }
        if k.spool_queue_capacity == 0 {
            return Err(invalid("kafka.spool_queue_capacity", "must be at least 1"));
        }
        if k.message_timeout < Duration::from_millis(100) {
            return Err(invalid("kafka.message_timeout", "must be at least 100ms"));
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
}
