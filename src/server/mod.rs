//! The listener: accepts TCP (optionally TLS), serves HTTP/1.1 and HTTP/2
//! with hyper-util's auto builder, limits connections, and drains in-flight
//! requests on shutdown.

pub mod idle;
pub mod tls;

use crate::config::ServerConfig;
use crate::gateway::{Gateway, Peer};
use crate::metrics::Metrics;
use arc_swap::ArcSwap;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use idle::IdleTimeout;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

/// HTTP/2 streams one client may have open at once.
const MAX_CONCURRENT_STREAMS: u32 = 128;

fn builder(config: &ServerConfig) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1().timer(TokioTimer::new()).header_read_timeout(config.header_read_timeout).keep_alive(true);
    // No h2 keep-alive pings: they would count as traffic and keep an idle
    // connection alive forever; `IdleTimeout` closes quiet connections.
    b.http2().timer(TokioTimer::new()).max_concurrent_streams(MAX_CONCURRENT_STREAMS);
    b
}

/// The gateway and TLS acceptor currently in force; a config reload swaps
/// them, and each request (each handshake) uses whichever is current, so
/// open connections survive a reload.
pub struct Live {
    pub gateway: ArcSwap<Gateway>,
    pub tls: Option<ArcSwap<tokio_rustls::TlsAcceptor>>,
}

/// Serves the gateway on `listener` until `shutdown` turns true, then waits
/// up to `shutdown_grace` for in-flight requests.
pub async fn serve(
    listener: TcpListener,
    live: Arc<Live>,
    config: ServerConfig,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let tls = live.tls.is_some();
    let builder = Arc::new(builder(&config));
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(config.max_connections));
    loop {
        let (tcp, addr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            refuse(tcp, tls);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let io = IdleTimeout::new(tcp, config.idle_timeout);
        let peer = Peer { addr, tls };
        let live = live.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let handshake_timeout = config.header_read_timeout;
        let metrics = metrics.clone();
        metrics.connections.inc();
        tokio::spawn(async move {
            match live.tls.as_ref().map(|t| t.load_full()) {
                None => serve_io(watcher, &builder, io, live, peer).await,
                Some(acceptor) => match tokio::time::timeout(handshake_timeout, acceptor.accept(io)).await {
                    Ok(Ok(stream)) => serve_io(watcher, &builder, stream, live, peer).await,
                    Ok(Err(e)) => tracing::debug!(error = %e, %addr, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%addr, "TLS handshake timed out"),
                },
            }
            metrics.connections.dec();
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(config.shutdown_grace) => {
            tracing::warn!("shutdown grace period over; closing remaining connections");
        }
    }
    Ok(())
}

/// Answers a connection over `server.max_connections` with a plain `503`
/// (or, on TLS, just closes it) instead of leaving it hanging.
fn refuse(mut tcp: tokio::net::TcpStream, tls: bool) {
    tracing::debug!("connection refused: server.max_connections reached");
    tokio::spawn(async move {
        if !tls {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), tcp.write_all(TOO_MANY_CONNECTIONS)).await;
        }
        let _ = tcp.shutdown().await;
    });
}

const TOO_MANY_CONNECTIONS: &[u8] = concat!(
    "HTTP/1.1 503 Service Unavailable\r\n",
    "Content-Type: text/plain; charset=utf-8\r\n",
    "Retry-After: 1\r\nConnection: close\r\nContent-Length: 32\r\n\r\n",
    "too many connections; try again\n",
)
.as_bytes();

async fn serve_io<I>(watcher: Watcher, builder: &auto::Builder<TokioExecutor>, io: I, live: Arc<Live>, peer: Peer)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let gateway = live.gateway.load_full();
        async move { Ok::<_, std::convert::Infallible>(gateway.handle(req, peer).await) }
    });
    let conn = builder.serve_connection(TokioIo::new(io), service).into_owned();
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(error = %e, addr = %peer.addr, "connection ended with an error");
    }
}
