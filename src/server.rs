//! Listeners, serving threads, connection limits and graceful shutdown.
//!
//! The public address is served the way nginx serves it: one thread per
//! core (`server.worker_threads`), each with its own single-threaded tokio
//! runtime and its own listening socket on the same address
//! (`SO_REUSEPORT`), so the kernel spreads connections over the threads and
//! a request never crosses threads: no work-stealing wake-ups, no locks
//! between them. The admin listener, signals and the GeoIP watcher run on
//! the caller's runtime.
//!
//! [`run`] takes already-bound listeners ([`bind_public`]) and a shutdown
//! future, so tests bind `127.0.0.1:0` and stop the server when they choose.
//! On shutdown, readiness turns 503 first, then the public listeners close,
//! in-flight requests get `server.shutdown_grace` to finish, the sink
//! flushes every accepted event, and only then does the admin listener close.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch, Semaphore};

use crate::admin;
use crate::app::App;
use crate::config::ServerConfig;
use crate::health::Phase;
use crate::limits::{Gate, PerAddress};
use crate::watchdog::{self, Timeouts};

/// Connections the admin listener serves at once: scrapers and probes need
/// a few, and the headroom keeps a pile of idle ones from starving the
/// kubelet's probes (which would restart the pod).
const ADMIN_MAX_CONNECTIONS: usize = 512;
/// Admin connections one address may hold: a scraper or the kubelet needs
/// a handful; one client must not take the probes' slots (a quarter of
/// them at most, each for at most [`ADMIN_FIRST_BYTE`] when silent). Room
/// is left for a prober that shares an address with idle clients.
const ADMIN_MAX_PER_ADDRESS: usize = ADMIN_MAX_CONNECTIONS / 4;
/// Scrapers and probes ask and go: an admin connection without a request
/// for this long is closed.
const ADMIN_IDLE: Duration = Duration::from_secs(5);
/// Probes send their request at once: an admin connection silent this
/// long after the accept is closed.
const ADMIN_FIRST_BYTE: Duration = Duration::from_secs(1);
/// Concurrent HTTP/2 streams per connection. A pixel page needs a few; a
/// client holding many open (bodies that never come) only costs memory.
const MAX_STREAMS: u32 = 32;

/// hyper's connection builder with the configured limits.
fn builder(app: &App) -> auto::Builder<TokioExecutor> {
    let s = app.server_config();
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        // The watchdog enforces it, at one timer per connection; hyper's
        // arms one per request head.
        .header_read_timeout(None)
        .max_buf_size(s.max_header_bytes)
        .max_headers(s.max_headers)
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS)
        .max_header_list_size(s.max_header_bytes as u32);
    b
}

/// Threads that serve the public listener: `server.worker_threads`, or one
/// per core when it is 0.
pub fn worker_count(cfg: &ServerConfig) -> usize {
    match cfg.worker_threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

/// Binds `addr` once per serving thread, each socket with `SO_REUSEPORT`
/// so the kernel balances new connections over them. With port 0 the first
/// socket picks the port and the others join it.
///
/// A busy fixed port is refused even when its holder also set
/// `SO_REUSEPORT` (a second trackedge, say): a plain socket is bound first,
/// so two servers never split one port's traffic by accident.
pub fn bind_public(addr: SocketAddr, threads: usize) -> io::Result<Vec<std::net::TcpListener>> {
    if addr.port() != 0 {
        drop(std::net::TcpListener::bind(addr)?);
    }
    let first = reuseport_listener(addr)?;
    let addr = first.local_addr()?;
    let mut all = vec![first];
    for _ in 1..threads.max(1) {
        all.push(reuseport_listener(addr)?);
    }
    Ok(all)
}

fn reuseport_listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Serves `public` (one thread per listener, see [`bind_public`]) and
/// `admin` until `shutdown` resolves, then drains.
pub async fn run(
    app: Arc<App>,
    public: Vec<std::net::TcpListener>,
    admin: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    run_with_tls(app, public, Vec::new(), admin, shutdown).await
}

/// As [`run`], with `tls` (`server.tls_listen`, bound like `public`, one
/// per serving thread) served over TLS by [`App::tls`] on the same threads,
/// with the same routes, limits and drain.
pub async fn run_with_tls(
    app: Arc<App>,
    public: Vec<std::net::TcpListener>,
    tls: Vec<std::net::TcpListener>,
    admin: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    if !tls.is_empty() && app.tls().is_none() {
        anyhow::bail!("a TLS listener was given, but no TLS state (App::set_tls)");
    }
    let mut tls = tls.into_iter();
    let sampler = {
        let app = app.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                app.recorder().sample();
            }
        })
    };
    let (stop_admin_tx, stop_admin_rx) = watch::channel(false);
    let admin_task = {
        let app = app.clone();
        let b = auto::Builder::new(TokioExecutor::new());
        tokio::spawn(accept_loop(
            admin,
            b,
            Gate::new(
                Arc::new(Semaphore::new(ADMIN_MAX_CONNECTIONS)),
                Arc::new(PerAddress::new(ADMIN_MAX_PER_ADDRESS, vec![])),
            ),
            Timeouts {
                idle: ADMIN_IDLE.min(app.server_config().idle_timeout),
                head: ADMIN_FIRST_BYTE.min(app.server_config().header_read_timeout),
            },
            stop_admin_rx,
            {
                let throttle = Arc::new(admin::Throttle::default());
                move |req: Request<Incoming>, peer: SocketAddr| {
                    let (app, throttle) = (app.clone(), throttle.clone());
                    async move {
                        let r = admin::handle(&app, req, peer);
                        if r.status() == http::StatusCode::UNAUTHORIZED {
                            tokio::time::sleep(throttle.refused(peer.ip())).await;
                        }
                        r
                    }
                }
            },
        ))
    };

    let (stop_tx, stop_rx) = watch::channel(false);
    // One cap over all threads: server.max_connections is per process.
    let s = app.server_config();
    let limit = Arc::new(Semaphore::new(s.max_connections));
    let per_address = Arc::new(PerAddress::new(
        s.max_connections_per_address,
        s.trusted_proxies.clone(),
    ));
    let mut workers = Vec::with_capacity(public.len());
    let mut failed = None;
    for (i, listener) in public.into_iter().enumerate() {
        let tls = tls.next();
        let gate = Gate::new(limit.clone(), per_address.clone());
        match spawn_worker(i, listener, tls, app.clone(), gate, stop_rx.clone()) {
            Ok(done) => workers.push(done),
            Err(e) => {
                failed = Some(e.context(format!("cannot start serving thread {i}")));
                break;
            }
        }
    }

    if failed.is_none() {
        app.lifecycle().set(Phase::Ready);
        tracing::info!("ready");
        shutdown.await;
        tracing::info!("shutdown signal: draining");
    }
    // On a failed start too: the threads already serving may have accepted
    // events, which the sink must flush.
    app.lifecycle().set(Phase::Draining);
    let _ = stop_tx.send(true);
    for done in workers {
        // An error means the thread ended without reporting: nothing left to wait for.
        let _ = done.await;
    }

    let sink = app.sink().clone();
    let flush = app.server_config().flush_timeout;
    tokio::task::spawn_blocking(move || sink.shutdown(flush)).await?;
    tracing::info!("sink flushed");

    let _ = stop_admin_tx.send(true);
    let admin_graceful = admin_task.await?;
    let _ = tokio::time::timeout(Duration::from_secs(1), admin_graceful.shutdown()).await;
    sampler.abort();
    failed.map_or(Ok(()), Err)
}

/// Starts serving thread `i` on `listener`: a single-threaded runtime that
/// accepts until `stop`, then gives open connections the grace period. The
/// receiver resolves when the thread is done.
fn spawn_worker(
    i: usize,
    listener: std::net::TcpListener,
    tls: Option<std::net::TcpListener>,
    app: Arc<App>,
    gate: Gate,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<oneshot::Receiver<()>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (done_tx, done_rx) = oneshot::channel();
    std::thread::Builder::new()
        .name(format!("trackedge-http-{i}"))
        .spawn(move || {
            rt.block_on(async move {
                let listener = TcpListener::from_std(listener).expect("a runtime is running");
                let s = app.server_config();
                let grace = s.shutdown_grace;
                let handler = {
                    let app = app.clone();
                    move |req: Request<Incoming>, peer| {
                        let app = app.clone();
                        async move { app.handle(req, peer).await }
                    }
                };
                let plain = accept_loop(
                    listener,
                    builder(&app),
                    gate.clone(),
                    Timeouts::of(s),
                    stop.clone(),
                    handler.clone(),
                );
                let (graceful, tls_graceful) = match (tls, app.tls()) {
                    (Some(l), Some(state)) => {
                        let l = TcpListener::from_std(l).expect("a runtime is running");
                        let limits = Timeouts::of(s);
                        let secure = crate::tls::serve::accept_loop(
                            l,
                            state.acceptor().clone(),
                            builder(&app),
                            gate,
                            limits,
                            stop,
                            handler,
                        );
                        let (a, b) = tokio::join!(plain, secure);
                        (a, Some(b))
                    }
                    _ => (plain.await, None),
                };
                let drain = async {
                    let tls_drain = async {
                        if let Some(g) = tls_graceful {
                            g.shutdown().await;
                        }
                    };
                    tokio::join!(graceful.shutdown(), tls_drain);
                };
                if tokio::time::timeout(grace, drain).await.is_err() {
                    tracing::warn!(
                        grace_ms = grace.as_millis() as u64,
                        "grace period over with requests still in flight"
                    );
                }
            });
            let _ = done_tx.send(());
        })?;
    Ok(done_rx)
}

impl Timeouts {
    fn of(s: &ServerConfig) -> Timeouts {
        Timeouts {
            idle: s.idle_timeout,
            head: s.header_read_timeout,
        }
    }
}

/// Accepts connections until `stop` turns true, within `gate`'s limits,
/// and returns the watcher of those still open so the caller can drain them.
async fn accept_loop<H, F>(
    listener: TcpListener,
    builder: auto::Builder<TokioExecutor>,
    gate: Gate,
    timeouts: Timeouts,
    mut stop: watch::Receiver<bool>,
    handler: H,
) -> GracefulShutdown
where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = hyper::Response<crate::routes::Body>> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    while let Some(crate::limits::Admitted { stream, peer, held }) =
        gate.admit(&listener, &mut stop).await
    {
        let conn = watchdog::serve(
            stream,
            &builder,
            graceful.watcher(),
            peer,
            timeouts,
            handler.clone(),
        );
        tokio::spawn(async move {
            conn.await;
            drop(held);
        });
    }
    drop(listener);
    graceful
}
