//! The TLS listener's accept loop: the plain listener's, with a handshake
//! before the connection is served.
//!
//! Kept apart from `crate::server`'s loop so the plain listener's hot path
//! is not touched. The same builder (limits, HTTP/1.1 and HTTP/2), the
//! same connection cap, the same watchdog and the same graceful drain
//! apply. The handshake runs in the connection's own task, bounded by
//! `tls.handshake_timeout` (and `tls.acme.on_demand_wait`), so a slow
//! client never holds up the accept loop; the watchdog then watches the
//! decrypted stream, so its head and idle limits mean what they mean on
//! the plain listener.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::TlsAcceptor;
use crate::watchdog::{self, Timeouts};

/// Accepts on `listener` until `stop` turns true, within `gate`'s limits;
/// each connection is handshaken by `acceptor` and then served by
/// `builder` with `handler`. Returns the watcher of connections still open
/// (handshakes in progress included) so the caller can drain them.
#[allow(clippy::too_many_arguments)]
pub async fn accept_loop<H, F>(
    listener: TcpListener,
    acceptor: Arc<TlsAcceptor>,
    builder: auto::Builder<TokioExecutor>,
    gate: crate::limits::Gate,
    limits: Timeouts,
    mut stop: watch::Receiver<bool>,
    handler: H,
) -> GracefulShutdown
where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = hyper::Response<crate::routes::Body>> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let builder = Arc::new(builder);
    while let Some(crate::limits::Admitted { stream, peer, held }) =
        gate.admit(&listener, &mut stop).await
    {
        let (acceptor, builder, h) = (acceptor.clone(), builder.clone(), handler.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _held = held;
            let tls = match acceptor.accept(stream).await {
                Ok(Some(tls)) => tls,
                // A challenge answered, or a failed handshake (counted).
                Ok(None) | Err(_) => return,
            };
            watchdog::serve(tls, &builder, watcher, peer, limits, h).await;
        });
    }
    drop(listener);
    graceful
}
