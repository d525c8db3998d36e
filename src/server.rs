//! Listeners, connection limits and graceful shutdown.
//!
//! [`run`] takes already-bound listeners and a shutdown future, so tests bind
//! `127.0.0.1:0` and stop the server when they choose. On shutdown, readiness
//! turns 503 first, then the public listener closes, in-flight requests get
//! `server.shutdown_grace_ms` to finish, the sink flushes every accepted
//! event, and only then does the admin listener close.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_io_timeout::TimeoutStream;

use crate::admin;
use crate::app::{App, Phase};

/// Connections the admin listener serves at once; scrapers and probes only.
const ADMIN_MAX_CONNECTIONS: usize = 64;
/// How long the sink may take to flush at shutdown.
const SINK_FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

/// hyper's connection builder with the configured limits.
fn builder(app: &App) -> auto::Builder<TokioExecutor> {
    let s = &app.cfg.server;
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(s.header_read_timeout_ms))
        .max_buf_size(s.max_header_bytes)
        .max_headers(s.max_headers)
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .max_header_list_size(s.max_header_bytes as u32);
    b
}

/// Serves `public` and `admin` until `shutdown` resolves, then drains.
pub async fn run(
    app: Arc<App>,
    public: TcpListener,
    admin: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let (stop_admin_tx, stop_admin_rx) = watch::channel(false);
    let admin_task = {
        let app = app.clone();
        let b = auto::Builder::new(TokioExecutor::new());
        tokio::spawn(accept_loop(
            admin,
            b,
            ADMIN_MAX_CONNECTIONS,
            Duration::from_millis(app.cfg.server.idle_timeout_ms),
            stop_admin_rx,
            move |req: Request<Incoming>, _peer| {
                let app = app.clone();
                async move { admin::handle(&app, req) }
            },
        ))
    };

    let (stop_tx, stop_rx) = watch::channel(false);
    let public_task = {
        let app2 = app.clone();
        tokio::spawn(accept_loop(
            public,
            builder(&app),
            app.cfg.server.max_connections,
            Duration::from_millis(app.cfg.server.idle_timeout_ms),
            stop_rx,
            move |req: Request<Incoming>, peer| {
                let app = app2.clone();
                async move { app.handle(req, peer).await }
            },
        ))
    };

    app.set_phase(Phase::Ready);
    tracing::info!("ready");
    shutdown.await;

    tracing::info!("shutdown signal: draining");
    app.set_phase(Phase::Draining);
    let _ = stop_tx.send(true);
    let graceful = public_task.await?;
    let grace = Duration::from_millis(app.cfg.server.shutdown_grace_ms);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_ms = grace.as_millis() as u64,
            "grace period over with requests still in flight"
        );
    }

    let sink = app.sink.clone();
    tokio::task::spawn_blocking(move || sink.shutdown(SINK_FLUSH_TIMEOUT)).await?;
    tracing::info!("sink flushed");

    let _ = stop_admin_tx.send(true);
    let admin_graceful = admin_task.await?;
    let _ = tokio::time::timeout(Duration::from_secs(1), admin_graceful.shutdown()).await;
    Ok(())
}

/// Accepts connections until `stop` turns true, at most `max_conns` at a
/// time, and returns the watcher of those still open so the caller can
/// drain them.
async fn accept_loop<H, F>(
    listener: TcpListener,
    builder: auto::Builder<TokioExecutor>,
    max_conns: usize,
    idle_timeout: Duration,
    mut stop: watch::Receiver<bool>,
    handler: H,
) -> GracefulShutdown
where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = hyper::Response<crate::app::Body>> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let limit = Arc::new(Semaphore::new(max_conns));
    let mut backoff = Duration::from_millis(5);
    loop {
        // Wait for a free slot before accepting: excess clients wait in the
        // kernel's backlog instead of costing us memory.
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => p.expect("semaphore never closes"),
            _ = stop.changed() => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    // Out of fds and the like: back off and go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        backoff = Duration::from_millis(5);
        let _ = stream.set_nodelay(true);
        // hyper's header timeout only runs once a request has begun; this
        // one also closes connections that never send one, or sit idle
        // between keep-alive requests.
        let mut stream = TimeoutStream::new(stream);
        stream.set_read_timeout(Some(idle_timeout));
        let h = handler.clone();
        let svc = service_fn(move |req| {
            let fut = h(req, peer);
            async move { Ok::<_, Infallible>(fut.await) }
        });
        let conn = builder
            .serve_connection(TokioIo::new(Box::pin(stream)), svc)
            .into_owned();
        let watched = graceful.watch(conn);
        tokio::spawn(async move {
            // Connection errors (resets, timeouts, garbage) are the client's.
            let _ = watched.await;
            drop(permit);
        });
    }
    drop(listener);
    graceful
}
