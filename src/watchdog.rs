//! Per-connection timeouts at one timer per connection instead of one per
//! request.
//!
//! hyper's own header timeout allocates and arms a timer for every request
//! head, and a read timeout on the socket re-arms one for every read: under
//! load the two cost throughput (figures in `loadtest/RESULTS.md`). Here the socket only notes when bytes come and go ([`Watched`]),
//! and one sleeping task per connection ([`watch`]) compares those notes
//! with the limits, waking at the earliest moment one could be exceeded.
//!
//! - Idle: no request for `idle` between requests. A client that connects
//!   and never asks is cut at `head`, not `idle`: a head counts as begun
//!   at the accept, so a silent socket costs its sender a reconnect every
//!   few seconds instead of holding a slot for a minute. Bytes alone do not count:
//!   an HTTP/2 client that only pings (or holds streams whose bodies never
//!   come, which the body deadline answers) would otherwise keep a
//!   connection and its memory forever.
//! - Slow head: a request head that started arriving more than `head` ago
//!   and has not been answered (slowloris). A head starts with the first
//!   bytes received after the last answer was written; it ends when its
//!   request reaches the handler or its answer is written. On HTTP/2 the
//!   same holds for frames: a ping or settings frame ends with the server's
//!   acknowledgement, so only bytes left unanswered past the limit, with no
//!   request reaching the handler, close a connection (tested with a
//!   client that pings every 100 ms against a 300 ms limit).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::Watcher;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::frames::FrameGuard;

/// What a connection's socket has seen, in milliseconds since the accept
/// plus one, so that 0 means "never" / "no head in progress".
#[derive(Debug)]
pub struct Activity {
    start: Instant,
    last_request: AtomicU64,
    head_since: AtomicU64,
}

impl Activity {
    pub fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last_request: AtomicU64::new(1),
            // The first head is due from the accept on.
            head_since: AtomicU64::new(1),
        }
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64 + 1
    }

    fn received(&self) {
        // Only the connection's own task touches these: relaxed is enough.
        if self.head_since.load(Ordering::Relaxed) == 0 {
            self.head_since.store(self.now(), Ordering::Relaxed);
        }
    }

    /// A request reached the handler: its head is complete and the
    /// connection is in use.
    pub fn request(&self) {
        self.last_request.store(self.now(), Ordering::Relaxed);
        self.head_done();
    }

    /// A request head is complete (its request reached the handler) or
    /// answered.
    pub fn head_done(&self) {
        self.head_since.store(0, Ordering::Relaxed);
    }
}

impl Default for Activity {
    fn default() -> Self {
        Activity::new()
    }
}

/// Resolves once the connection has been idle longer than `idle`, or a
/// request head has taken longer than `head`; the caller then drops the
/// connection, which closes it.
pub async fn watch(activity: &Activity, idle: Duration, head: Duration) {
    let (idle, head) = (idle.as_millis() as u64, head.as_millis() as u64);
    loop {
        let now = activity.now();
        let idle_at = activity.last_request.load(Ordering::Relaxed) + idle;
        let since = activity.head_since.load(Ordering::Relaxed);
        if now >= idle_at || (since != 0 && now >= since + head) {
            return;
        }
        // With no head in progress, one may start at any moment: look again
        // within `head`, so a slow one is caught on time.
        let head_at = if since != 0 { since + head } else { now + head };
        let wake = idle_at.min(head_at);
        tokio::time::sleep(Duration::from_millis(wake.saturating_sub(now).max(1))).await;
    }
}

/// A stream that tells its [`Activity`] when bytes arrive and leave.
pub struct Watched<S> {
    io: S,
    activity: Arc<Activity>,
    /// Closes an HTTP/2 connection that floods SETTINGS frames.
    frames: FrameGuard,
}

impl<S> Watched<S> {
    pub fn new(io: S, activity: Arc<Activity>) -> Watched<S> {
        Watched {
            io,
            activity,
            frames: FrameGuard::default(),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.received();
            if this.frames.feed(&buf.filled()[before..]).is_err() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "HTTP/2 SETTINGS flood",
                )));
            }
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.head_done();
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.head_done();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// What the watchdog enforces on a connection: `idle` with no request
/// (`server.idle_timeout`), `head` for a request head from its first byte
/// (`server.header_read_timeout`).
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub idle: Duration,
    pub head: Duration,
}

/// Serves one accepted connection (plain or TLS) with `builder` and
/// `handler`, watched: closed when idle past `idle` or when a request head
/// takes longer than `head`, and drained by `watcher` at shutdown. The
/// returned future ends with the connection.
pub fn serve<S, H, F>(
    io: S,
    builder: &auto::Builder<TokioExecutor>,
    watcher: Watcher,
    peer: SocketAddr,
    timeouts: Timeouts,
    handler: H,
) -> impl Future<Output = ()> + Send + 'static
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<Incoming>, SocketAddr) -> F + Send + Sync + 'static,
    F: Future<Output = hyper::Response<crate::routes::Body>> + Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let seen = activity.clone();
    let svc = service_fn(move |req| {
        seen.request();
        let fut = handler(req, peer);
        async move { Ok::<_, Infallible>(fut.await) }
    });
    let conn = builder
        .serve_connection(TokioIo::new(Watched::new(io, activity.clone())), svc)
        .into_owned();
    let conn = watcher.watch(conn);
    async move {
        tokio::select! {
            // Connection errors (resets, garbage) are the client's.
            _ = conn => {}
            // Idle or too slow: dropping the connection closes it.
            _ = watch(&activity, timeouts.idle, timeouts.head) => {}
        }
    }
}
