//! Configuration reload (contract §6): on `SIGHUP` the same sources are read
//! again and the reloadable state (signing keys, agent rules, GeoIP
//! databases, privacy and cookie settings, `click.fallback_url`) is swapped
//! in whole; requests in flight finish on the state they started with. A
//! configuration that fails to load keeps the running one. Listener, sink
//! and stats settings are built once: a change to them is logged as
//! needing a restart.
//!
//! Between reloads the GeoIP files are watched, so a database updated in
//! place (by `geoipupdate`, say) is picked up without a signal.

use std::path::PathBuf;
use std::sync::Arc;

use metrics::counter;

use crate::app::{App, Live};
use crate::config::Config;
use crate::enrich::geo::{GeoIp, RELOAD_POLL};
use crate::metrics::CONFIG_RELOADS;

/// Re-reads the configuration from `path` and the environment and swaps
/// it in; the running configuration stays on any error.
pub fn reload(app: &App, path: Option<&std::path::Path>) -> Result<(), String> {
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

fn try_reload(app: &App, path: Option<&std::path::Path>) -> Result<(), String> {
    let next = Config::load(path).map_err(|e| e.to_string())?;
    // The listener a reload cannot move is the one that runs.
    let mut serving = next.clone();
    serving.server.listen = app.server_config().listen;
    serving.check_serve().map_err(|e| e.to_string())?;
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
        t.reload(&tls).map_err(|e| e.to_string())?;
    }
    app.swap_live(swapped);
    Ok(())
}

/// Reloads on every `SIGHUP` and re-reads changed GeoIP files every few
/// seconds, until the runtime ends. Installed before the server starts, so
/// a `SIGHUP` never ends the process.
pub fn spawn(app: Arc<App>, path: Option<PathBuf>, hup: Hangups) {
    #[cfg(unix)]
    let mut hup = hup.0;
    #[cfg(not(unix))]
    let _ = hup;
    tokio::spawn(async move {
        loop {
            #[cfg(unix)]
            let signalled = tokio::select! {
                _ = hup.recv() => true,
                _ = tokio::time::sleep(RELOAD_POLL) => false,
            };
            #[cfg(not(unix))]
            let signalled = {
                tokio::time::sleep(RELOAD_POLL).await;
                false
            };
            let (app, path) = (app.clone(), path.clone());
            // Reading files and building rules is blocking work.
            let _ = tokio::task::spawn_blocking(move || {
                if signalled {
                    let _ = reload(&app, path.as_deref());
                } else {
                    app.live().enricher.geo().reload(false);
                }
            })
            .await;
        }
    });
}

/// SIGHUPs, caught from the moment this is made: `serve` makes it first,
/// so a SIGHUP during start-up (spool recovery can take a while) is kept
/// for the reloader instead of ending the process.
pub struct Hangups(#[cfg(unix)] tokio::signal::unix::Signal);

impl Hangups {
    pub fn catch() -> std::io::Result<Hangups> {
        #[cfg(unix)]
        return Ok(Hangups(tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::hangup(),
        )?));
        #[cfg(not(unix))]
        Ok(Hangups())
    }
}
