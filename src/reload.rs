//! Configuration reload (contract §6): on `SIGHUP` (or a test's request
//! through [`crate::serve::Running::reload`]) the same sources are read
//! again and the reloadable state (signing keys, agent rules, GeoIP
//! databases, privacy and cookie settings, `click.fallback_url`) is swapped
//! in whole; requests in flight finish on the state they started with. A
//! configuration that fails to load keeps the running one. Listener, sink
//! and stats settings are built once: a change to them is logged as
//! needing a restart.
//!
//! Between reloads the GeoIP files are watched, so a database updated in
//! place (by `geoipupdate`, say) is picked up without a signal.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use metrics::counter;
use tokio::sync::{mpsc, oneshot};

use crate::app::App;
use crate::config::Config;
use crate::enrich::geo::{GeoIp, RELOAD_POLL};
use crate::error::Error;
use crate::live::Live;
use crate::metrics::CONFIG_RELOADS;

/// Re-reads the configuration from `path` and the environment and swaps
/// it in; the running configuration stays on any error.
pub fn reload(app: &App, path: Option<&Path>) -> Result<(), Error> {
    let result = try_reload(app, path);
    let label = if result.is_ok() { "ok" } else { "error" };
    counter!(CONFIG_RELOADS, "result" => label).increment(1);
    match &result {
        Ok(()) => tracing::info!("configuration reloaded"),
        Err(e) => {
            tracing::error!(error = %e, "configuration reload failed; keeping the running configuration")
        }
    }
    result
}

fn try_reload(app: &App, path: Option<&Path>) -> Result<(), Error> {
    let next = Config::load(path)?;
    // The listener a reload cannot move is the one that runs.
    let mut serving = next.clone();
    serving.server.listen = app.server_config().listen;
    serving.check_serve()?;
    let live = app.live();
    let geo = if next.geoip == live.cfg.geoip {
        let geo = live.enricher.geo().clone();
        geo.try_reload(true)?;
        geo
    } else {
        Arc::new(GeoIp::open(&next.geoip)?)
    };
    for section in app.started_config().needs_restart(&next) {
        tracing::warn!(
            section,
            "settings changed that a reload cannot apply; restart to use them"
        );
    }
    if next.uses_dev_key() {
        tracing::warn!("signing.keys is empty: the public development key signs");
    }
    let tls = next.tls.clone();
    let swapped = Live::new(next, geo)?;
    // Certificates last: a bad file fails the reload with nothing swapped.
    if let Some(t) = app.tls() {
        t.reload(&tls)?;
    }
    app.swap_live(swapped);
    Ok(())
}

/// A reload asked for by a caller in this process; the answer says whether
/// it took.
pub type Request = oneshot::Sender<bool>;

/// What asks for reloads: `SIGHUP` (caught from the moment this is made, so
/// a SIGHUP during start-up is kept for the reloader instead of ending the
/// process) and, for tests, requests over a channel.
pub struct Triggers {
    #[cfg(unix)]
    hup: Option<tokio::signal::unix::Signal>,
    requests: Option<mpsc::UnboundedReceiver<Request>>,
}

/// Why the reloader woke.
enum Wake {
    Signal,
    Asked(Request),
    Poll,
}

impl Triggers {
    /// Catches `SIGHUP` (when `sighup`) and takes requests from `requests`.
    pub fn new(
        sighup: bool,
        requests: Option<mpsc::UnboundedReceiver<Request>>,
    ) -> Result<Triggers, Error> {
        #[cfg(unix)]
        let hup = if sighup {
            Some(
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).map_err(
                    |source| Error::Os {
                        what: "the SIGHUP handler",
                        source,
                    },
                )?,
            )
        } else {
            None
        };
        #[cfg(not(unix))]
        let _ = sighup;
        Ok(Triggers {
            #[cfg(unix)]
            hup,
            requests,
        })
    }

    async fn next(&mut self) -> Wake {
        #[cfg(unix)]
        let hup = async {
            match &mut self.hup {
                Some(h) => {
                    h.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let hup = std::future::pending::<()>();
        let asked = async {
            match &mut self.requests {
                Some(r) => match r.recv().await {
                    Some(reply) => reply,
                    None => std::future::pending().await,
                },
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = hup => Wake::Signal,
            reply = asked => Wake::Asked(reply),
            _ = tokio::time::sleep(RELOAD_POLL) => Wake::Poll,
        }
    }
}

/// Reloads on every trigger and re-reads changed GeoIP files every few
/// seconds, until the runtime ends.
pub fn spawn(app: Arc<App>, path: Option<PathBuf>, mut triggers: Triggers) {
    tokio::spawn(async move {
        loop {
            let wake = triggers.next().await;
            let (app, path) = (app.clone(), path.clone());
            // Reading files and building rules is blocking work.
            let _ = tokio::task::spawn_blocking(move || match wake {
                Wake::Signal => {
                    let _ = reload(&app, path.as_deref());
                }
                Wake::Asked(reply) => {
                    let _ = reply.send(reload(&app, path.as_deref()).is_ok());
                }
                Wake::Poll => {
                    app.live().enricher.geo().reload(false);
                }
            })
            .await;
        }
    });
}
