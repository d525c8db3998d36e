//! The `trackedge` command line (contract §7).
//!
//! Exit codes: 0 ok, 64 bad usage or config, 1 runtime failure (an invalid
//! token given to `verify` included).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use clap::{Parser, Subcommand, ValueEnum};

use crate::config::Config;
use crate::error::Error;
use crate::router;
use crate::serve::{Listeners, Options};
use crate::token::{check_destination, Claims, Keyring, TokenType, MAX_ATTRS};

pub use crate::error::{EXIT_FAILURE, EXIT_USAGE};

mod manual;

/// Where the configuration comes from, said once for `--help` and the manual.
const CONFIG_HELP: &str = "Configuration: --config PATH names a TOML file; without it, \
./config/trackedge.toml is read from the working directory when it exists, else the \
built-in defaults apply. TRACKEDGE_<SECTION>__<KEY> environment variables override \
either (e.g. TRACKEDGE_SERVER__LISTEN=127.0.0.1:8081). `trackedge check-config` shows \
the result and where each value came from.";

#[derive(Debug, Parser)]
#[command(
    name = "trackedge",
    version,
    about = "Tracking-pixel and click-redirect edge server",
    after_help = CONFIG_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The options of the subcommands that read the configuration.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// Config file (TOML). Default: ./config/trackedge.toml in the working
    /// directory when it exists, else the built-in defaults.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SignKind {
    Open,
    Click,
    Unsubscribe,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    #[command(after_help = CONFIG_HELP)]
    Serve {
        #[command(flatten)]
        common: Common,
    },
    /// Mint a signed URL on server.public_url.
    #[command(after_help = CONFIG_HELP)]
    Sign {
        kind: SignKind,
        /// Campaign id (1-128 characters).
        #[arg(long)]
        campaign: String,
        /// Recipient id: an opaque id, not an email address.
        #[arg(long)]
        recipient: Option<String>,
        /// Message id.
        #[arg(long)]
        message: Option<String>,
        /// Link id.
        #[arg(long)]
        link: Option<String>,
        /// Destination: required for click, optional for unsubscribe.
        #[arg(long)]
        url: Option<String>,
        /// Lifetime, e.g. 30d, 12h; none means the link never expires.
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<String>,
        /// Send time in unix seconds (default: now); feeds machine-click detection.
        #[arg(long, value_name = "UNIX_SECONDS")]
        sent_at: Option<i64>,
        /// Sender attribute copied to events, as key=value; repeatable.
        #[arg(long = "attr", value_name = "KEY=VALUE")]
        attrs: Vec<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Decode a URL or token and tell whether it verifies.
    #[command(after_help = CONFIG_HELP)]
    Verify {
        #[arg(value_name = "URL_OR_TOKEN")]
        input: String,
        #[command(flatten)]
        common: Common,
    },
    /// Print the effective configuration, secrets redacted, and where each
    /// value came from.
    #[command(after_help = CONFIG_HELP)]
    CheckConfig {
        #[command(flatten)]
        common: Common,
    },
    /// Print a fresh random signing secret.
    GenKey,
    /// Print a shell completion script, e.g. `trackedge completions bash >
    /// /etc/bash_completion.d/trackedge`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `trackedge man | man -l -`.
    Man,
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    // These need no configuration: gen-key makes the secret a
    // configuration lacks, the others describe the command line.
    let common = match cli.command {
        Command::GenKey => return finish(gen_key()),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "trackedge", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            return finish(
                manual::render(cmd, &mut std::io::stdout())
                    .map_err(|e| Failure::Runtime(format!("cannot write the manual: {e}"))),
            );
        }
        Command::Serve { ref common }
        | Command::Sign { ref common, .. }
        | Command::Verify { ref common, .. }
        | Command::CheckConfig { ref common } => common.clone(),
    };
    init_logging(common.log_format);
    let (cfg, sources) = match Config::load_with_sources(common.config.as_deref()) {
        Ok(c) => c,
        Err(e) => return finish(Err(Error::from(e).into())),
    };
    let result = match cli.command {
        Command::Serve { .. } => serve(cfg, common.config),
        Command::Sign {
            kind,
            campaign,
            recipient,
            message,
            link,
            url,
            expires_in,
            sent_at,
            attrs,
            ..
        } => {
            let req = SignRequest {
                kind,
                campaign,
                recipient,
                message,
                link,
                url,
                expires_in,
                sent_at,
                attrs,
            };
            sign(&cfg, req).map(|u| println!("{u}"))
        }
        Command::Verify { input, .. } => verify(&cfg, &input),
        Command::CheckConfig { .. } => check_config(&cfg, &sources),
        Command::GenKey | Command::Completions { .. } | Command::Man => {
            unreachable!("answered above")
        }
    };
    finish(result)
}

fn finish(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("trackedge: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// How a command failed, which picks the exit code.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The server could not start, or the configuration is bad.
    #[error(transparent)]
    Start(#[from] Error),
    /// The command line asks for something that cannot be done.
    #[error("{0}")]
    Usage(String),
    /// The command ran and failed (a token that does not verify, say).
    #[error("{0}")]
    Runtime(String),
}

impl Failure {
    /// The one mapping from a failure to the process exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Start(e) => e.exit_code(),
            Failure::Usage(_) => EXIT_USAGE,
            Failure::Runtime(_) => EXIT_FAILURE,
        }
    }
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::prelude::*;
    let filter: Targets = std::env::var("RUST_LOG")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    use std::io::IsTerminal;
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Human => registry.with(fmt).init(),
        LogFormat::Json => registry.with(fmt.json().flatten_event(true)).init(),
    }
}

fn gen_key() -> Result<(), Failure> {
    let mut key = [0u8; 32];
    match getrandom::fill(&mut key) {
        Ok(()) => {
            println!("{}", URL_SAFE_NO_PAD.encode(key));
            Ok(())
        }
        Err(e) => Err(Failure::Runtime(format!("no randomness available: {e}"))),
    }
}

/// Checks what `serve` would, short of binding: the configuration loaded
/// (secret files read), the development key's listener, the GeoIP
/// databases, the Kafka client settings. Prints the effective config.
fn check_config(cfg: &Config, sources: &crate::config::Sources) -> Result<(), Failure> {
    cfg.check_serve().map_err(Error::from)?;
    crate::enrich::geo::GeoIp::open(&cfg.geoip).map_err(Error::from)?;
    // Validation does not compile the agent rules (that happens once per
    // load, in the app); check-config builds them to report a bad one.
    crate::enrich::agent::Classifier::try_new(&cfg.agent).map_err(Error::from)?;
    if cfg.sink.kind == crate::config::SinkKind::Kafka {
        crate::sink::kafka::client_config(&cfg.kafka)
            .create::<rdkafka::producer::BaseProducer>()
            .map_err(|e| {
                Failure::Usage(format!(
                    "bad configuration: kafka client settings (kafka.librdkafka): {e}"
                ))
            })?;
    }
    if cfg.uses_dev_key() {
        eprintln!("warning: signing.keys is empty; the public development key is in use");
    }
    let certs = crate::tls::check(cfg.server.tls_listen, &cfg.tls)
        .map_err(|e| Failure::Usage(format!("bad configuration: {e}")))?;
    for line in certs {
        eprintln!("certificate {line}");
    }
    print!("{}", sources.annotate(&cfg.to_redacted_toml()));
    Ok(())
}

fn serve(cfg: Config, config_path: Option<PathBuf>) -> Result<(), Failure> {
    // Refused before anything is bound.
    cfg.check_serve().map_err(Error::from)?;
    // Requests are served on threads of their own (server::run); this
    // runtime has the admin listener, signals and the GeoIP watcher.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Os {
            what: "the runtime",
            source,
        })?;
    rt.block_on(async move {
        let listeners = Listeners::bind(&cfg.server)?;
        let opts = Options {
            config_path,
            ..Options::default()
        };
        crate::serve::serve(cfg, opts, listeners, shutdown_signal()).await
    })?;
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// What `trackedge sign` was asked for.
pub struct SignRequest {
    pub kind: SignKind,
    pub campaign: String,
    pub recipient: Option<String>,
    pub message: Option<String>,
    pub link: Option<String>,
    pub url: Option<String>,
    pub expires_in: Option<String>,
    pub sent_at: Option<i64>,
    pub attrs: Vec<String>,
}

/// Mints the full URL for `req` on `server.public_url`.
pub fn sign(cfg: &Config, req: SignRequest) -> Result<String, Failure> {
    let now = crate::now_ms() / 1000;
    let t = match req.kind {
        SignKind::Open => TokenType::Open,
        SignKind::Click => TokenType::Click,
        SignKind::Unsubscribe => TokenType::Unsubscribe,
    };
    let mut claims = Claims::new(t, req.campaign);
    claims.r = req.recipient;
    claims.m = req.message;
    claims.l = req.link;
    if matches!(req.kind, SignKind::Click) && req.url.is_none() {
        return Err(Failure::Usage(
            "sign click needs --url, the address the link leads to \
             (e.g. --url https://shop.example.com/sale)"
                .into(),
        ));
    }
    if let Some(u) = &req.url {
        check_destination(u).map_err(|why| Failure::Usage(format!("--url {u:?}: {why}")))?;
    }
    claims.u = req.url;
    claims.s = Some(req.sent_at.unwrap_or(now));
    if let Some(d) = req.expires_in {
        let d = humantime::parse_duration(&d)
            .map_err(|e| Failure::Usage(format!("--expires-in {d:?}: {e} (try 30d or 12h)")))?;
        claims.x = Some(
            i64::try_from(d.as_secs())
                .ok()
                .and_then(|s| now.checked_add(s))
                .ok_or_else(|| Failure::Usage("--expires-in: too far in the future".into()))?,
        );
    }
    if !req.attrs.is_empty() {
        let mut a = BTreeMap::new();
        for kv in &req.attrs {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| Failure::Usage(format!("--attr {kv:?}: expected key=value")))?;
            a.insert(k.to_owned(), v.to_owned());
        }
        if a.len() > MAX_ATTRS {
            return Err(Failure::Usage(format!("at most {MAX_ATTRS} --attr")));
        }
        claims.a = Some(a);
    }
    let ring = Keyring::new(&cfg.effective_keys());
    let token = ring.sign(&mut claims);
    // Refuse to print a link the server would reject.
    ring.verify(&token, t, now)
        .map_err(|e| Failure::Usage(e.to_string()))?;
    Ok(router::token_url(cfg.server.public_url.as_str(), t, &token))
}

fn verify(cfg: &Config, input: &str) -> Result<(), Failure> {
    let (token, route) = router::token_in(input);
    let claims = Keyring::decode_unverified(token).map_err(|e| Failure::Runtime(e.to_string()))?;
    println!(
        "{}",
        serde_json::to_string_pretty(&claims).expect("claims serialize")
    );
    let expected = route.unwrap_or(claims.t);
    let ring = Keyring::new(&cfg.effective_keys());
    match ring.verify(token, expected, crate::now_ms() / 1000) {
        Ok(c) => {
            println!("valid: signed with key {:?}", c.k);
            Ok(())
        }
        Err(e) => {
            println!("invalid: {e} ({})", e.reason().label());
            Err(Failure::Runtime("token does not verify".into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_extraction() {
        assert_eq!(
            router::token_in("http://h:8080/o/abc.def.gif"),
            ("abc.def", Some(TokenType::Open))
        );
        assert_eq!(
            router::token_in("https://h/c/abc.def?x=1"),
            ("abc.def", Some(TokenType::Click))
        );
        assert_eq!(
            router::token_in("https://h/u/abc.def"),
            ("abc.def", Some(TokenType::Unsubscribe))
        );
        assert_eq!(router::token_in("abc.def"), ("abc.def", None));
    }

    /// A click request for campaign c1 with `url`.
    fn click(url: Option<&str>) -> SignRequest {
        SignRequest {
            kind: SignKind::Click,
            campaign: "c1".into(),
            recipient: None,
            message: None,
            link: None,
            url: url.map(str::to_owned),
            expires_in: None,
            sent_at: None,
            attrs: vec![],
        }
    }

    #[test]
    fn signed_urls_verify() {
        let cfg = Config::from_toml("").unwrap();
        let url = sign(
            &cfg,
            SignRequest {
                recipient: Some("r1".into()),
                link: Some("hero".into()),
                expires_in: Some("30d".into()),
                attrs: vec!["variant=B".into()],
                ..click(Some("https://example.com/x"))
            },
        )
        .unwrap();
        assert!(url.starts_with("http://localhost:8080/c/"), "{url}");
        assert!(verify(&cfg, &url).is_ok());
        let bad = click(Some("javascript:alert(1)"));
        assert!(matches!(sign(&cfg, bad), Err(Failure::Usage(_))));
        let bad = click(None);
        assert!(matches!(sign(&cfg, bad), Err(Failure::Usage(_))));
    }
}
