//! Where each configuration value comes from, and errors told in the
//! user's terms.
//!
//! Three layers, each over the one before: the embedded defaults, the file
//! (`--config PATH`, or `config/trackedge.toml` in the working directory
//! when present) and `TRACKEDGE_<SECTION>__<KEY>` environment variables.
//! figment merges them; this module keeps what it needs to say, for any
//! key, which layer set it: the file's path as the user gave it and the
//! line the key is written on, or the variable's name and value. Errors
//! from figment are rewritten with that, and `check-config` annotates each
//! overridden value with it. Reads files and the environment only.

use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Toml};
use figment::Figment;

use super::{Config, ConfigError, DEFAULT_PATH, EMBEDDED_DEFAULT, ENV_PREFIX};

/// One configuration-shaped environment variable.
#[derive(Debug, Clone)]
struct EnvVar {
    name: String,
    value: String,
    /// The key it sets, lower case: `["server", "listen"]`.
    path: Vec<String>,
}

/// The layers of one load, kept to tell where a value came from.
#[derive(Debug, Default)]
pub struct Sources {
    /// The file as the user named it (never made absolute or relative) and
    /// its text.
    file: Option<(PathBuf, String)>,
    /// Its parsed table, to tell which keys it sets.
    table: toml::Table,
    /// `TRACKEDGE_<SECTION>__<KEY>` variables.
    env: Vec<EnvVar>,
    /// Variables that start with `TRACKEDGE_` without that shape.
    ignored: Vec<String>,
    /// Extra TOML layers (tests and tools), merged after the file.
    layers: Vec<String>,
    /// Whether the environment is a layer (not for [`Sources::layers`]).
    use_env: bool,
}

/// Which layer a value came from.
#[derive(Debug, PartialEq, Eq)]
pub enum Origin {
    Default,
    /// The file, with the line when the key could be found in its text.
    File(PathBuf, Option<usize>),
    Env {
        name: String,
        value: String,
    },
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Default => f.write_str("the built-in defaults"),
            Origin::File(p, Some(line)) => write!(f, "{} line {line}", p.display()),
            Origin::File(p, None) => write!(f, "{}", p.display()),
            Origin::Env { name, value } => write!(f, "environment variable {name}={value:?}"),
        }
    }
}

impl Sources {
    /// Reads the file and the environment. `path` None means the default
    /// path, which may be absent; a path the user named must be a file.
    pub fn read(path: Option<&Path>) -> Result<Sources, ConfigError> {
        let file = match path {
            Some(p) if !p.exists() => return Err(ConfigError::Missing(p.to_path_buf())),
            Some(p) if !p.is_file() => return Err(ConfigError::NotAFile(p.to_path_buf())),
            Some(p) => Some(p.to_path_buf()),
            None if Path::new(DEFAULT_PATH).is_file() => Some(PathBuf::from(DEFAULT_PATH)),
            None => None,
        };
        let mut s = Sources {
            use_env: true,
            ..Sources::default()
        };
        if let Some(p) = file {
            let text = std::fs::read_to_string(&p).map_err(|e| {
                ConfigError::Parse(format!("config file {}: cannot read: {e}", p.display()))
            })?;
            s.table = text.parse::<toml::Table>().map_err(|e| {
                ConfigError::Parse(format!(
                    "config file {}: not valid TOML: {}",
                    p.display(),
                    e.to_string().trim_end()
                ))
            })?;
            s.file = Some((p, text));
        }
        for (name, value) in std::env::vars_os() {
            let (Some(name), Some(value)) = (name.to_str(), value.to_str()) else {
                continue;
            };
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            if rest.contains("__") {
                let path: Vec<String> =
                    rest.to_lowercase().split("__").map(str::to_owned).collect();
                let value = if is_secret(&path) {
                    "<redacted>".to_owned()
                } else {
                    value.to_owned()
                };
                s.env.push(EnvVar {
                    name: name.to_owned(),
                    value,
                    path,
                });
            } else {
                s.ignored.push(name.to_owned());
            }
        }
        s.env.sort_by(|a, b| a.name.cmp(&b.name));
        s.ignored.sort();
        Ok(s)
    }

    /// Sources of TOML texts only, merged in order over the defaults.
    pub fn layers(layers: &[&str]) -> Sources {
        Sources {
            layers: layers.iter().map(|l| l.to_string()).collect(),
            ..Sources::default()
        }
    }

    /// Warnings about the environment: variables that look like
    /// configuration but are not, and variables that beat the file.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let (mut misspelt, mut other) = (Vec::new(), Vec::new());
        for name in &self.ignored {
            match likely_meant(name) {
                Some(meant) => misspelt.push(format!(
                    "{name} is not configuration and is ignored: did you mean {meant}? \
                     (TRACKEDGE_<SECTION>__<KEY>, two underscores between section and key)"
                )),
                None => other.push(name.as_str()),
            }
        }
        out.extend(misspelt);
        if !other.is_empty() {
            out.push(format!(
                "ignored, not of the shape TRACKEDGE_<SECTION>__<KEY>: {}",
                other.join(", ")
            ));
        }
        for v in &self.env {
            if let Some(line) = self.file_has(&v.path) {
                let (p, _) = self.file.as_ref().expect("file_has found it in the file");
                let line = line.map(|l| format!(" line {l}")).unwrap_or_default();
                out.push(format!(
                    "{}={:?} overrides {} set in {}{line}: the environment wins over the file",
                    v.name,
                    v.value,
                    v.path.join("."),
                    p.display()
                ));
            }
        }
        out
    }

    /// Layers everything and deserializes; errors name the key as the
    /// user wrote it and where.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Toml::string(EMBEDDED_DEFAULT));
        if let Some((_, text)) = &self.file {
            fig = fig.merge(Toml::string(text));
        }
        for l in &self.layers {
            fig = fig.merge(Toml::string(l));
        }
        if self.use_env {
            fig = fig.merge(
                Env::prefixed(ENV_PREFIX)
                    .filter(|k| k.as_str().contains("__"))
                    .split("__"),
            );
        }
        let mut cfg: Config = fig.extract().map_err(|e| {
            let msgs: Vec<String> = e.into_iter().map(|e| self.explain(&e)).collect();
            ConfigError::Parse(msgs.join("; "))
        })?;
        cfg.apply_deprecated_ms();
        cfg.read_secret_files().map_err(|e| self.locate(e))?;
        cfg.validate().map_err(|e| self.locate(e))?;
        Ok(cfg)
    }

    /// Where `path` (`["server", "listen"]`, array indices included) was
    /// set: the environment beats the file, which beats the defaults.
    pub fn origin(&self, path: &[String]) -> Origin {
        for len in (1..=path.len()).rev() {
            if let Some(v) = self.env.iter().find(|v| v.path == path[..len]) {
                return Origin::Env {
                    name: v.name.clone(),
                    value: v.value.clone(),
                };
            }
        }
        match (self.file_has(path), &self.file) {
            (Some(line), Some((p, _))) => Origin::File(p.clone(), line),
            _ => Origin::Default,
        }
    }

    /// Whether the file sets `path` (or the array or table that holds
    /// it), and on which line.
    fn file_has(&self, path: &[String]) -> Option<Option<usize>> {
        let (_, text) = self.file.as_ref()?;
        let mut at: Option<&toml::Value> = None;
        let mut depth = 0;
        for seg in path {
            let next = match at {
                None => self.table.get(seg),
                Some(toml::Value::Table(t)) => t.get(seg),
                Some(toml::Value::Array(a)) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
                Some(_) => None,
            };
            match next {
                Some(v) => {
                    at = Some(v);
                    depth += 1;
                }
                None => break,
            }
        }
        // A key in a section the file has only as a header is not set there.
        if depth < path.len().min(2) {
            return None;
        }
        Some(line_of(text, &path[..depth.min(2)]))
    }

    /// Adds where a refused key was set to a validation error.
    fn locate(&self, e: ConfigError) -> ConfigError {
        match e {
            ConfigError::Invalid { key, msg } => {
                let origin = self.origin(&key_path(&key));
                let msg = match origin {
                    Origin::Default => msg,
                    o => format!("{msg} (set in {o})"),
                };
                ConfigError::Invalid { key, msg }
            }
            e => e,
        }
    }

    /// One figment error in our words.
    fn explain(&self, e: &figment::Error) -> String {
        use figment::error::Kind;
        // figment's path ends with the unknown field's own name.
        let mut path: Vec<String> = e.path.clone();
        if let Kind::UnknownField(name, _) = &e.kind {
            if path.last() != Some(name) {
                path.push(name.clone());
            }
        }
        let parent = &path[..path.len().saturating_sub(1)];
        let key = show_key(&path);
        let origin = self.origin(&path);
        let value = match &origin {
            Origin::File(..) if !is_secret(&path) => {
                self.file_value(&path).map(|v| format!(" = {v}"))
            }
            _ => None,
        }
        .unwrap_or_default();
        let what = match &e.kind {
            Kind::UnknownField(name, expected) if parent.is_empty() => format!(
                "unknown section [{name}]{}",
                suggest(name, expected).map_or_else(
                    || format!("; the sections are {}", list(expected)),
                    |s| format!("; did you mean [{s}]?")
                )
            ),
            Kind::UnknownField(name, expected) => format!(
                "unknown key `{key}`{}",
                suggest(name, expected).map_or_else(
                    || format!(
                        "; the keys of [{}] are {}",
                        show_key(parent),
                        list(expected)
                    ),
                    |s| format!("; did you mean `{s}`?")
                )
            ),
            Kind::UnknownVariant(got, expected) => format!(
                "`{key}`{value}: {got:?} is not one of {}{}",
                list(expected),
                suggest(got, expected)
                    .map_or_else(String::new, |s| format!("; did you mean {s:?}?"))
            ),
            Kind::MissingField(f) => format!("`{key}.{f}` is missing"),
            Kind::InvalidType(actual, expected) => format!(
                "`{key}`{value}: expected {expected}, found {}",
                unquote(&actual.to_string())
            ),
            Kind::Message(m) if m.contains("socket address") => format!(
                "`{key}`{value}: {m}: expected host:port, e.g. 127.0.0.1:8080 or [::1]:8080"
            ),
            other => format!("`{key}`{value}: {}", unquote(&other.to_string())),
        };
        match origin {
            Origin::Default => what,
            o => format!("{o}: {what}"),
        }
    }

    /// The value the file gives `path`, as TOML.
    fn file_value(&self, path: &[String]) -> Option<String> {
        let mut at = self.table.get(path.first()?)?;
        for seg in &path[1..] {
            at = match at {
                toml::Value::Table(t) => t.get(seg)?,
                toml::Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        let shown = at.to_string();
        (shown.len() <= 200).then_some(shown)
    }

    /// `rendered` (the effective config as TOML) with a trailing comment on
    /// each value the file or the environment set, saying which.
    pub fn annotate(&self, rendered: &str) -> String {
        let mut out = String::with_capacity(rendered.len() * 2);
        out.push_str("# Layers, each over the one before: built-in defaults");
        if let Some((p, _)) = &self.file {
            out.push_str(&format!(", {}", p.display()));
        }
        out.push_str(", environment (TRACKEDGE_<SECTION>__<KEY>).\n");
        out.push_str("# Values not marked are the built-in defaults.\n\n");
        let mut section: Vec<String> = Vec::new();
        for line in rendered.lines() {
            let t = line.trim();
            let path = if let Some(h) = t.strip_prefix('[') {
                section = h
                    .trim_matches(|c| c == '[' || c == ']')
                    .split('.')
                    .map(|s| s.trim().trim_matches('"').to_owned())
                    .collect();
                // A table of its own (kafka.librdkafka, signing.keys) is
                // annotated at its header.
                (section.len() > 1).then(|| section.clone())
            } else if let Some((k, _)) = t.split_once(" = ") {
                let mut p = section.clone();
                p.push(k.trim().trim_matches('"').to_owned());
                (!section.is_empty()).then_some(p)
            } else {
                None
            };
            out.push_str(line);
            match path.map(|p| self.origin(&p)) {
                Some(Origin::Env { name, .. }) => out.push_str(&format!("  # from {name}")),
                Some(Origin::File(p, line)) => {
                    out.push_str(&format!("  # from {}", p.display()));
                    if let Some(l) = line {
                        out.push_str(&format!(" line {l}"));
                    }
                }
                _ => {}
            }
            out.push('\n');
        }
        out
    }
}

/// The line (1-based) where `path` (a section, or a section and a key) is
/// written in TOML `text`: the key's line within its `[section]`, or the
/// section's header.
fn line_of(text: &str, path: &[String]) -> Option<usize> {
    let (section, key) = match path {
        [s] => (s.as_str(), None),
        [s, k, ..] => (s.as_str(), Some(k.as_str())),
        [] => return None,
    };
    let mut current = String::new();
    let mut header = None;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') {
            current = t
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .trim_matches('"')
                .to_owned();
            // A table of its own: `[kafka.librdkafka]`, `[[signing.keys]]`.
            if let Some(k) = key {
                if current == format!("{section}.{k}") {
                    return Some(i + 1);
                }
            }
            if key.is_none() && current.starts_with(&format!("{section}.")) {
                return Some(i + 1);
            }
            if current == section && header.is_none() {
                if key.is_none() {
                    return Some(i + 1);
                }
                header = Some(i + 1);
            }
            continue;
        }
        let Some((k, _)) = t.split_once('=') else {
            continue;
        };
        let k = k.trim().trim_matches('"');
        let full = if current.is_empty() {
            k.to_owned()
        } else {
            format!("{current}.{k}")
        };
        let want = match key {
            Some(key) => format!("{section}.{key}"),
            None => section.to_owned(),
        };
        if full == want || (key.is_none() && full.starts_with(&format!("{section}."))) {
            return Some(i + 1);
        }
    }
    header.filter(|_| key.is_none())
}

/// Whether the value at `path` may hold a credential, and so is never
/// shown: signing keys, the admin token, librdkafka passwords and keys.
fn is_secret(path: &[String]) -> bool {
    path.iter().any(|seg| {
        [
            "keys",
            "admin_token",
            "secret",
            "password",
            "token",
            "key.pem",
        ]
        .iter()
        .any(|w| seg.contains(w))
    })
}

/// `signing.keys[0].secret` as a path: `["signing", "keys", "0", "secret"]`.
fn key_path(key: &str) -> Vec<String> {
    key.replace('[', ".")
        .replace(']', "")
        .split('.')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A path as users write keys: `signing.keys[0].secret`.
fn show_key(path: &[String]) -> String {
    let mut s = String::new();
    for seg in path {
        if seg.parse::<usize>().is_ok() {
            s.push_str(&format!("[{seg}]"));
        } else {
            if !s.is_empty() {
                s.push('.');
            }
            s.push_str(seg);
        }
    }
    s
}

/// The valid name nearest `got`, when it is near enough to be a typo.
/// Deprecated `*_ms` keys are suggested only for a name that has the suffix.
fn suggest(got: &str, valid: &[&str]) -> Option<String> {
    valid
        .iter()
        .filter(|v| !v.ends_with("_ms") || got.ends_with("_ms"))
        .map(|v| (strsim::normalized_damerau_levenshtein(got, v), *v))
        .filter(|(score, _)| *score >= 0.7)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, v)| v.to_owned())
}

fn list(valid: &[&str]) -> String {
    valid
        .iter()
        .filter(|v| !v.ends_with("_ms"))
        .copied()
        .collect::<Vec<_>>()
        .join(", ")
}

/// figment's text without its backticks (ours go around the key only).
fn unquote(s: &str) -> String {
    s.replace('`', "")
}

/// For `TRACKEDGE_SERVER_LISTEN`: the configuration variable it was
/// probably meant to be, when its start names a section.
fn likely_meant(name: &str) -> Option<String> {
    let rest = name.strip_prefix(ENV_PREFIX)?.to_lowercase();
    let defaults: toml::Table = EMBEDDED_DEFAULT.parse().ok()?;
    defaults.iter().find_map(|(section, keys)| {
        let key = rest.strip_prefix(section.as_str())?.strip_prefix('_')?;
        let keys = keys.as_table()?;
        keys.contains_key(key).then(|| {
            format!(
                "{ENV_PREFIX}{}__{}",
                section.to_uppercase(),
                key.to_uppercase()
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Vec<String> {
        key_path(s)
    }

    #[test]
    fn lines_are_found_in_sections() {
        let text = "# c\n[server]\nlisten = \"x\"\nadmin_listn = 1\n\n[kafka.librdkafka]\n\"a.b\" = \"c\"\n";
        assert_eq!(line_of(text, &p("server.admin_listn")), Some(4));
        assert_eq!(line_of(text, &p("server")), Some(2));
        assert_eq!(line_of(text, &p("kafka.librdkafka")), Some(6));
        assert_eq!(line_of(text, &p("kafka")), Some(6));
        assert_eq!(line_of(text, &p("sink.kind")), None);
    }

    #[test]
    fn keys_show_as_written() {
        assert_eq!(
            show_key(&p("signing.keys[0].secret")),
            "signing.keys[0].secret"
        );
        assert_eq!(
            suggest("admin_listn", &["listen", "admin_listen", "admin_token"]).as_deref(),
            Some("admin_listen")
        );
        assert_eq!(suggest("zzz", &["listen"]), None);
        assert_eq!(
            likely_meant("TRACKEDGE_SERVER_LISTEN").as_deref(),
            Some("TRACKEDGE_SERVER__LISTEN")
        );
        assert_eq!(likely_meant("TRACKEDGE_SERVICE_HOST"), None);
        assert_eq!(likely_meant("TRACKEDGE_PORT"), None);
    }
}
