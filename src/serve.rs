//! One way in: [`serve`] runs trackedge on a configuration and listeners
//! that are already bound, until a shutdown future resolves. `trackedge
//! serve` calls it, and so does every test ([`spawn`] gives them a
//! [`Running`] handle), so the start-up path that runs in production is the
//! one the tests exercise: the pre-serve checks, the sink, the app, the
//! reloader, the listeners, and the drain.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::app::{App, Clock};
use crate::config::{Config, ServerConfig};
use crate::error::Error;
use crate::reload::Triggers;

/// The public listener (one socket per serving thread), the TLS one when
/// `server.tls_listen` is set (likewise), and the admin one.
pub struct Listeners {
    public: Vec<std::net::TcpListener>,
    tls: Vec<std::net::TcpListener>,
    admin: std::net::TcpListener,
}

impl Listeners {
    /// Binds `server.listen` once per serving thread (see
    /// [`crate::server::bind_public`]) and `server.admin_listen`.
    pub fn bind(s: &ServerConfig) -> Result<Listeners, Error> {
        let public = crate::server::bind_public(s.listen, crate::server::worker_count(s)).map_err(
            |source| Error::Bind {
                key: "server.listen",
                addr: s.listen,
                source,
            },
        )?;
        let tls = match s.tls_listen.0 {
            Some(addr) => crate::server::bind_public(addr, crate::server::worker_count(s))
                .map_err(|source| Error::Bind {
                    key: "server.tls_listen",
                    addr,
                    source,
                })?,
            None => Vec::new(),
        };
        let admin = std::net::TcpListener::bind(s.admin_listen)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|source| Error::Bind {
                key: "server.admin_listen",
                addr: s.admin_listen,
                source,
            })?;
        Ok(Listeners { public, tls, admin })
    }

    /// Where the TLS listener is bound, when there is one.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls.first().and_then(|l| l.local_addr().ok())
    }

    /// Where the public listener is bound (its port when port 0 was asked).
    pub fn public_addr(&self) -> SocketAddr {
        self.public[0]
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Where the admin listener is bound.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
            .local_addr()
            .expect("a bound listener has an address")
    }
}

/// How to run, beyond the configuration.
pub struct Options {
    /// The file the configuration came from; a reload reads it again
    /// (None: the default path, when present).
    pub config_path: Option<PathBuf>,
    /// The time source for expiry checks and event timestamps.
    pub clock: Clock,
    /// Reload on `SIGHUP`. Off in tests, which ask through [`Running`]
    /// instead: a signal reaches the whole test process.
    pub sighup: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            config_path: None,
            clock: Arc::new(crate::now_ms),
            sighup: true,
        }
    }
}

/// Runs the server until `shutdown` resolves, then drains: every accepted
/// event is delivered or accounted for before this returns.
pub async fn serve(
    cfg: Config,
    opts: Options,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    serve_with(cfg, opts, listeners, None, None, shutdown).await
}

async fn serve_with(
    cfg: Config,
    opts: Options,
    listeners: Listeners,
    requests: Option<mpsc::UnboundedReceiver<crate::reload::Request>>,
    started: Option<oneshot::Sender<Arc<App>>>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    // First: a SIGHUP during start-up (spool recovery can take a while) is
    // kept for the reloader.
    let triggers = Triggers::new(opts.sighup, requests)?;
    cfg.check_serve()?;
    crate::metrics::install();
    warn_about(&cfg);
    // TLS before the sink: a bad certificate stops start-up with nothing
    // to flush.
    let tls = if listeners.tls.is_empty() {
        None
    } else {
        crate::tls::check(cfg.server.tls_listen, &cfg.tls)?;
        Some(crate::tls::Tls::start(
            &cfg.tls,
            tokio::runtime::Handle::current(),
        )?)
    };
    let sink = crate::sink::from_config(&cfg).map_err(Error::Sink)?;
    tracing::info!(
        listener = "public",
        addr = %listeners.public_addr(),
        threads = listeners.public.len(),
        "listener bound"
    );
    if let Some(addr) = listeners.tls_addr() {
        tracing::info!(listener = "tls", addr = %addr, threads = listeners.tls.len(), "listener bound");
    }
    tracing::info!(listener = "admin", addr = %listeners.admin_addr(), "listener bound");
    tracing::info!(sink = ?cfg.sink.kind, version = crate::VERSION, node = %crate::node_name(), "trackedge starting");
    let app = match App::with_clock(cfg, sink.clone(), opts.clock) {
        Ok(app) => Arc::new(app),
        Err(e) => {
            tokio::task::spawn_blocking(move || sink.shutdown(Duration::from_secs(5)))
                .await
                .ok();
            return Err(e);
        }
    };
    if let Some(t) = tls {
        app.set_tls(t);
    }
    if let Some(tx) = started {
        let _ = tx.send(app.clone());
    }
    crate::reload::spawn(app.clone(), opts.config_path, triggers);
    let admin = tokio::net::TcpListener::from_std(listeners.admin).map_err(|source| Error::Os {
        what: "the admin listener",
        source,
    })?;
    crate::server::run_with_tls(app, listeners.public, listeners.tls, admin, shutdown)
        .await
        .map_err(Error::Serving)?;
    tracing::info!("stopped");
    Ok(())
}

/// A server started by [`spawn`] on the caller's runtime.
pub struct Running {
    /// The public listener's address.
    pub public: SocketAddr,
    /// The admin listener's address.
    pub admin: SocketAddr,
    /// The TLS listener's address, when `server.tls_listen` is set.
    pub tls: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    app: tokio::sync::Mutex<Started>,
    reloads: mpsc::UnboundedSender<crate::reload::Request>,
    task: tokio::task::JoinHandle<Result<(), Error>>,
}

/// Starts [`serve`] as a task of the current runtime: what tests call.
pub fn spawn(cfg: Config, opts: Options, listeners: Listeners) -> Running {
    let (public, admin) = (listeners.public_addr(), listeners.admin_addr());
    let tls = listeners.tls_addr();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (reload_tx, reload_rx) = mpsc::unbounded_channel();
    let (app_tx, app_rx) = oneshot::channel();
    let task = tokio::spawn(serve_with(
        cfg,
        opts,
        listeners,
        Some(reload_rx),
        Some(app_tx),
        async move {
            let _ = stop_rx.await;
        },
    ));
    Running {
        public,
        admin,
        tls,
        stop: Some(stop_tx),
        app: tokio::sync::Mutex::new(Started::Waiting(app_rx)),
        reloads: reload_tx,
        task,
    }
}

/// The app of a [`Running`] server, once start-up has built it.
enum Started {
    Waiting(oneshot::Receiver<Arc<App>>),
    Ready(Arc<App>),
    Failed,
}

impl Running {
    /// The running app (for tests that look inside), once started; None
    /// when start-up failed.
    pub async fn app(&self) -> Option<Arc<App>> {
        let mut s = self.app.lock().await;
        if let Started::Waiting(rx) = &mut *s {
            *s = match rx.await {
                Ok(app) => Started::Ready(app),
                Err(_) => Started::Failed,
            };
        }
        match &*s {
            Started::Ready(app) => Some(app.clone()),
            _ => None,
        }
    }

    /// Reloads the configuration as `SIGHUP` does; whether it took.
    pub async fn reload(&self) -> bool {
        let (tx, rx) = oneshot::channel();
        if self.reloads.send(tx).is_err() {
            return false;
        }
        rx.await.unwrap_or(false)
    }

    /// Whether the server has stopped (it failed to start, say).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Shuts down (drain, sink flushed) and returns how serving ended.
    pub async fn stop(mut self) -> Result<(), Error> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match (&mut self.task).await {
            Ok(r) => r,
            Err(e) => Err(Error::Serving(anyhow::anyhow!(
                "the server task failed: {e}"
            ))),
        }
    }
}

/// Start-up warnings for settings that work but will surprise.
fn warn_about(cfg: &Config) {
    if cfg.uses_dev_key() {
        tracing::warn!(
            "!!! signing.keys is empty: using the PUBLIC development key (loopback only). Anyone can mint valid links. \
             Set signing.keys (make a secret with `trackedge gen-key`) before real use. !!!"
        );
    }
    if cfg.cookie.secure
        && cfg.server.public_url.scheme() == "http"
        && !matches!(
            cfg.server.public_url.host_str(),
            Some("localhost" | "127.0.0.1" | "[::1]")
        )
    {
        tracing::warn!(
            public_url = %cfg.server.public_url,
            "cookie.secure is true but server.public_url is plain http: browsers drop secure cookies \
             off localhost, so visitor ids and opt-outs would silently not stick; serve https"
        );
    }
    let admin = cfg.server.admin_listen;
    if !admin.ip().is_loopback() {
        if cfg.server.admin_token.0.is_empty() {
            tracing::warn!(
                %admin,
                "the admin listener is reachable beyond loopback and server.admin_token is empty: \
                 /stats answers loopback clients only; probes and /metrics stay open"
            );
        } else {
            tracing::info!(%admin, "/stats requires server.admin_token; probes and /metrics stay open");
        }
    }
}
