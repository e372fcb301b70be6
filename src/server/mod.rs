//! The listener: accepts TCP (optionally TLS), serves HTTP/1.1 and HTTP/2
//! with hyper (see [`protocol`]), limits connections, and drains in-flight
//! requests on shutdown.

pub mod idle;
pub mod listen;
mod protocol;
pub mod tls;

use crate::config::ServerConfig;
use crate::gateway::{Gateway, Peer};
use crate::metrics::Metrics;
use arc_swap::ArcSwap;
use hyper::service::service_fn;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use idle::IdleTimeout;
use protocol::Protocols;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

/// Blocking-pool threads per worker: store reads and argon2 runs.
const BLOCKING_THREADS_PER_WORKER: usize = 16;

/// The gateways and TLS acceptor currently in force; a config reload swaps
/// them, and each request (each handshake) uses whichever is current, so
/// open connections survive a reload.
pub struct Live {
    /// One gateway per worker thread: each has its own upstream pool, so a
    /// backend connection is only ever driven by the thread that uses it.
    pub gateways: Vec<ArcSwap<Gateway>>,
    pub tls: Option<ArcSwap<tokio_rustls::TlsAcceptor>>,
}

/// Serves the gateway on `sockets` until `shutdown` turns true, then waits
/// up to `shutdown_grace` for in-flight requests.
///
/// Thread per core: each worker thread runs its own single-threaded event
/// loop and accepts on its own socket (see [`listen::bind`]; with fewer
/// sockets than workers they share), so a request is parsed,
/// authenticated and proxied without waking another thread (cross-thread
/// wake-ups were the largest cost on the cached path; see BENCHMARKS.md).
///
/// A worker that fails (or panics) is logged at once and stops the others,
/// and `serve` returns its error: a half-working server is not left running.
pub async fn serve(
    sockets: listen::GatewaySockets,
    live: Arc<Live>,
    config: ServerConfig,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    // More sockets than workers would leave connections queued where no
    // one accepts them.
    anyhow::ensure!(
        !sockets.is_empty() && sockets.len() <= live.gateways.len(),
        "{} gateway sockets for {} workers",
        sockets.len(),
        live.gateways.len()
    );
    let sockets = sockets.0;
    let slots = Arc::new(Semaphore::new(config.max_connections));
    // Workers stop on this: the caller's shutdown or a failed worker.
    let (stop, stopping) = watch::channel(false);
    let (finished, mut results) = tokio::sync::mpsc::unbounded_channel();
    let mut first_error = None;
    let mut running = 0;
    for index in 0..live.gateways.len() {
        let started = sockets[index % sockets.len()].try_clone().and_then(|listener| {
            let worker = Worker {
                index,
                listener,
                live: live.clone(),
                config: config.clone(),
                metrics: metrics.clone(),
                slots: slots.clone(),
                shutdown: stopping.clone(),
            };
            let finished = finished.clone();
            std::thread::Builder::new().name(format!("davgate-w{index}")).spawn(move || {
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| worker.run()));
                let _ = finished.send((index, ran.unwrap_or_else(|_| Err(anyhow::anyhow!("the thread panicked")))));
            })
        });
        match started {
            Ok(_) => running += 1,
            Err(e) => {
                first_error = Some(anyhow::anyhow!("cannot start worker {index}: {e}"));
                let _ = stop.send(true);
                break;
            }
        }
    }
    drop(sockets);
    while running > 0 {
        tokio::select! {
            _ = shutdown.changed(), if !*stop.borrow() => {
                let _ = stop.send(true);
            }
            Some((index, result)) = results.recv() => {
                running -= 1;
                if let Err(e) = result {
                    tracing::error!(worker = index, error = %e, "a worker failed; stopping the others");
                    let _ = stop.send(true);
                    first_error.get_or_insert(e.context(format!("worker {index}")));
                }
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// One serving thread and what it shares with the others.
struct Worker {
    index: usize,
    listener: std::net::TcpListener,
    live: Arc<Live>,
    config: ServerConfig,
    metrics: Arc<Metrics>,
    /// `server.max_connections`, counted across all workers.
    slots: Arc<Semaphore>,
    shutdown: watch::Receiver<bool>,
}

impl Worker {
    fn run(self) -> anyhow::Result<()> {
        // Bounded: a flood of cold requests with distinct credentials puts a
        // store read per request on the blocking pool (argon2 runs are
        // bounded by the hash pool already); past this, they queue instead
        // of each starting a thread.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .max_blocking_threads(BLOCKING_THREADS_PER_WORKER)
            .build()?;
        runtime.block_on(self.accept_loop())
    }

    async fn accept_loop(mut self) -> anyhow::Result<()> {
        let listener = TcpListener::from_std(self.listener)?;
        let tls = self.live.tls.is_some();
        let protocols = Arc::new(Protocols::new(self.config.header_read_timeout));
        let graceful = GracefulShutdown::new();
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
                _ = self.shutdown.changed() => break,
            };
            let Ok(permit) = self.slots.clone().try_acquire_owned() else {
                refuse(tcp, tls);
                continue;
            };
            if !listen::NODELAY_INHERITED {
                let _ = tcp.set_nodelay(true);
            }
            let io = IdleTimeout::new(tcp, self.config.idle_timeout);
            let connection = Connection {
                protocols: protocols.clone(),
                watcher: graceful.watcher(),
                shutdown: self.shutdown.clone(),
                live: self.live.clone(),
                worker: self.index,
                peer: Peer { addr, tls },
                _slot: Slot::new(permit, self.metrics.clone()),
            };
            // Two task types, so a plain connection's task is not sized (and
            // moved around) for a TLS handshake it will never make.
            if tls {
                tokio::spawn(connection.serve_tls(io, self.config.header_read_timeout));
            } else {
                tokio::spawn(connection.serve(io));
            }
        }
        drop(listener);
        tokio::select! {
            _ = graceful.shutdown() => {}
            _ = tokio::time::sleep(self.config.shutdown_grace) => {
                tracing::warn!(worker = self.index, "shutdown grace period over; closing remaining connections");
            }
        }
        Ok(())
    }
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

/// A connection's place under `server.max_connections`, given back (and
/// the gauge lowered) however its task ends.
struct Slot {
    _permit: tokio::sync::OwnedSemaphorePermit,
    metrics: Arc<Metrics>,
}

impl Slot {
    fn new(permit: tokio::sync::OwnedSemaphorePermit, metrics: Arc<Metrics>) -> Self {
        metrics.connections.inc();
        Slot { _permit: permit, metrics }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.metrics.connections.dec();
    }
}

/// What serving one accepted connection needs.
struct Connection {
    protocols: Arc<Protocols>,
    watcher: Watcher,
    shutdown: watch::Receiver<bool>,
    live: Arc<Live>,
    worker: usize,
    peer: Peer,
    _slot: Slot,
}

impl Connection {
    async fn serve_tls<I>(self, io: I, handshake_timeout: std::time::Duration)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Some(acceptor) = self.live.tls.as_ref().map(|t| t.load_full()) else { return };
        let addr = self.peer.addr;
        let mut shutdown = self.shutdown.clone();
        let handshake = tokio::select! {
            biased;
            handshake = tokio::time::timeout(handshake_timeout, acceptor.accept(io)) => handshake,
            // No request has been sent yet: nothing to drain.
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        match handshake {
            // Boxed: the stream is large, and every layer of futures below
            // would otherwise hold a copy of it.
            Ok(Ok(stream)) => self.serve(Box::new(stream)).await,
            Ok(Err(e)) => tracing::debug!(error = %e, %addr, "TLS handshake failed"),
            Err(_) => tracing::debug!(%addr, "TLS handshake timed out"),
        }
    }

    async fn serve<I>(self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Connection { protocols, watcher, shutdown, live, worker, peer, _slot } = self;
        let relay_live = live.clone();
        let gateway = move || relay_live.gateways[worker].load_full();
        let service = service_fn(move |req| {
            let gateway = live.gateways[worker].load_full();
            async move { Ok::<_, std::convert::Infallible>(gateway.handle(req, peer).await) }
        });
        if let Err(e) = protocols.serve(io, service, gateway, peer, watcher, shutdown).await {
            tracing::debug!(error = %e, addr = %peer.addr, "connection ended with an error");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection's task is moved several times on its way into the
    /// runtime, so its size is paid on every accepted connection. It was
    /// 5.8 KiB (release) while plain connections carried a TLS handshake and
    /// an inline HTTP/2 state they never use.
    #[tokio::test]
    async fn a_plain_connection_task_stays_small() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (tcp, addr) = listener.accept().await.unwrap();
        let metrics = Arc::new(Metrics::new());
        let graceful = GracefulShutdown::new();
        let (_stop, shutdown) = watch::channel(false);
        let connection = Connection {
            protocols: Arc::new(Protocols::new(std::time::Duration::from_secs(1))),
            watcher: graceful.watcher(),
            shutdown,
            live: Arc::new(Live { gateways: Vec::new(), tls: None }),
            worker: 0,
            peer: Peer { addr, tls: false },
            _slot: Slot::new(Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap(), metrics),
        };
        let task = connection.serve(IdleTimeout::new(tcp, std::time::Duration::from_secs(1)));
        let size = std::mem::size_of_val(&task);
        eprintln!("plain connection task: {size} bytes");
        // ~1.8 KiB in a debug build (the relay boxes each exchange).
        assert!(size <= 2048, "{size} bytes");
        drop((task, client));
    }
}
