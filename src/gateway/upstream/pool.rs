//! Idle keep-alive connections to the backend, owned by one worker's gateway.
//!
//! Every worker thread has a gateway of its own, so a pool is used by one
//! thread only: a checkout is a short uncontended lock and a pop, where
//! hyper-util's shared client also keyed the pool by host and spawned a
//! task per request to wait for the connection to become idle again
//! (BENCHMARKS.md, "What was changed").
//!
//! A connection goes back to the pool only once its response body has been
//! read to the end and hyper says it can take the next request; one the
//! backend closed, or whose response was abandoned half-way, is dropped,
//! which closes it. No connection idle for `upstream.pool_idle_timeout` is
//! used, and a reaper closes it within half that time again.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// A backend connection that can wait in the pool.
pub trait Reusable: Send + 'static {
    /// Whether it can take the next request now (checked at checkout).
    fn usable(&mut self) -> bool;
}

/// The sending half of an HTTP/1.1 connection whose task, spawned on the
/// worker's runtime, owns the socket; requests carry bodies of type `B`
/// (the client's body; tests use an empty one).
impl<B: Send + 'static> Reusable for SendRequest<B> {
    fn usable(&mut self) -> bool {
        self.is_ready()
    }
}

/// A raw socket of the HTTP/1 relay, idle between two exchanges. The backend
/// may have closed it since: anything but "no data yet" rules it out (a
/// read of 0 is its close, data before a request is a broken exchange).
impl Reusable for tokio::net::TcpStream {
    fn usable(&mut self) -> bool {
        matches!(self.try_read(&mut [0u8; 1]), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }
}

/// Idle hyper client connections.
pub type Senders<B> = Pool<SendRequest<B>>;

/// Idle connections of type `C`.
pub struct Pool<C> {
    /// Oldest at the front; checkouts take the newest (the least likely to
    /// have been closed by the backend's own idle timeout).
    idle: Mutex<VecDeque<Idle<C>>>,
    max_idle: usize,
    idle_timeout: Duration,
    reaper_started: AtomicBool,
}

struct Idle<C> {
    connection: C,
    since: Instant,
}

impl<C: Reusable> Pool<C> {
    pub fn new(max_idle: usize, idle_timeout: Duration) -> Arc<Self> {
        Arc::new(Self { idle: Mutex::default(), max_idle, idle_timeout, reaper_started: AtomicBool::new(false) })
    }

    /// The most recently used idle connection that is still open and fresh.
    pub fn checkout(&self) -> Option<C> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(mut entry) = idle.pop_back() {
            if entry.since.elapsed() >= self.idle_timeout {
                // Everything older is stale too.
                idle.clear();
                return None;
            }
            if entry.connection.usable() {
                return Some(entry.connection);
            }
        }
        None
    }

    /// Takes back a connection ready for its next request.
    pub fn keep(self: &Arc<Self>, connection: C) {
        {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            if self.max_idle == 0 {
                return;
            }
            if idle.len() >= self.max_idle {
                // The oldest is the likeliest to be closed by the backend.
                idle.pop_front();
            }
            idle.push_back(Idle { connection, since: Instant::now() });
        }
        if !self.reaper_started.swap(true, Ordering::Relaxed) {
            self.start_reaper();
        }
    }

    /// Closes connections idle for longer than the timeout even when no
    /// request comes to check them out; ends with the pool (a reload).
    fn start_reaper(self: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let pool: Weak<Self> = Arc::downgrade(self);
        let period = (self.idle_timeout / 2).max(Duration::from_millis(50));
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(pool) = pool.upgrade() else { return };
                let mut idle = pool.idle.lock().unwrap_or_else(|e| e.into_inner());
                while idle.front().is_some_and(|entry| entry.since.elapsed() >= pool.idle_timeout) {
                    idle.pop_front();
                }
            }
        });
    }

    #[cfg(test)]
    fn idle_count(&self) -> usize {
        self.idle.lock().unwrap().len()
    }
}

impl<B: Send + 'static> Pool<SendRequest<B>> {
    /// Takes back a connection whose response is complete. If hyper has not
    /// yet marked it ready for the next request, a small task waits for
    /// that (or for the connection to close).
    fn check_in(self: &Arc<Self>, mut sender: SendRequest<B>) {
        if sender.is_ready() {
            self.keep(sender);
        } else if !sender.is_closed()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let pool = Arc::downgrade(self);
            runtime.spawn(async move {
                if sender.ready().await.is_ok()
                    && let Some(pool) = pool.upgrade()
                {
                    pool.keep(sender);
                }
            });
        }
    }
}

/// A response body from the backend that hands its connection back to the
/// pool once it has been read to the end.
pub struct PooledBody<B: Send + 'static> {
    body: Incoming,
    connection: Option<(SendRequest<B>, Arc<Senders<B>>)>,
}

impl<B: Send + 'static> PooledBody<B> {
    pub fn new(body: Incoming, sender: SendRequest<B>, pool: Arc<Senders<B>>) -> Self {
        Self { body, connection: Some((sender, pool)) }
    }

    fn release(&mut self) {
        if let Some((sender, pool)) = self.connection.take() {
            pool.check_in(sender);
        }
    }
}

impl<B: Send + 'static> Body for PooledBody<B> {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.release();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl<B: Send + 'static> Drop for PooledBody<B> {
    /// hyper's server stops polling a body of known length once it has all of
    /// it, so the end is also seen here; an unfinished body is not reusable.
    fn drop(&mut self) {
        if self.body.is_end_stream() {
            self.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Empty};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A backend answering every request on a connection with `response`.
    async fn backend(response: &'static [u8]) -> std::net::SocketAddr {
        numbered_backend(move |_| response.to_vec()).await
    }

    /// A backend answering every request on its `n`th connection (from 1)
    /// with `answer(n)`.
    async fn numbered_backend(answer: impl Fn(u8) -> Vec<u8> + Send + Sync + 'static) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let answer = Arc::new(answer);
        tokio::spawn(async move {
            for number in 1.. {
                let Ok((mut tcp, _)) = listener.accept().await else { return };
                let response = answer(number);
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while matches!(tcp.read(&mut buf).await, Ok(n) if n > 0) {
                        if tcp.write_all(&response).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    type Sender = SendRequest<Empty<Bytes>>;

    async fn connect(addr: std::net::SocketAddr) -> Sender {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await.unwrap();
        tokio::spawn(conn);
        sender
    }

    async fn get(sender: &mut Sender) -> Incoming {
        let req = http::Request::get("/").header("host", "backend").body(Empty::new()).unwrap();
        sender.send_request(req).await.unwrap().into_body()
    }

    /// A GET on a new connection, whose body hands the connection to `pool`.
    async fn pooled_get(addr: std::net::SocketAddr, pool: &Arc<Pool<Sender>>) -> PooledBody<Empty<Bytes>> {
        let mut sender = connect(addr).await;
        let body = get(&mut sender).await;
        PooledBody::new(body, sender, pool.clone())
    }

    #[tokio::test]
    async fn a_connection_returns_to_the_pool_when_its_body_is_read_to_the_end() {
        let addr = backend(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello").await;
        let pool = Pool::new(8, Duration::from_secs(60));
        let body = pooled_get(addr, &pool).await;
        assert_eq!(pool.idle_count(), 0, "in use until the body is read");
        assert_eq!(body.collect().await.unwrap().to_bytes(), "hello");
        tokio::task::yield_now().await;
        let mut reused = pool.checkout().expect("back in the pool");
        assert_eq!(get(&mut reused).await.collect().await.unwrap().to_bytes(), "hello");
    }

    #[tokio::test]
    async fn an_abandoned_body_closes_its_connection() {
        let addr = backend(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhel").await;
        let pool = Pool::new(8, Duration::from_secs(60));
        drop(pooled_get(addr, &pool).await);
        tokio::task::yield_now().await;
        assert!(pool.checkout().is_none());
    }

    #[tokio::test]
    async fn stale_and_surplus_connections_are_not_kept() {
        let addr = backend(b"HTTP/1.1 204 No Content\r\n\r\n").await;
        let pool = Pool::new(2, Duration::from_millis(200));
        for _ in 0..3 {
            drop(pooled_get(addr, &pool).await);
        }
        tokio::task::yield_now().await;
        assert_eq!(pool.idle_count(), 2, "max_idle caps the pool");
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(pool.idle_count(), 0, "the reaper closed connections idle past the timeout");
    }

    #[tokio::test]
    async fn a_connection_the_backend_closed_while_idle_is_not_checked_out() {
        let addr = backend(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await;
        let pool = Pool::new(8, Duration::from_secs(60));
        let mut sender = connect(addr).await;
        assert_eq!(get(&mut sender).await.collect().await.unwrap().to_bytes(), "ok");
        tokio::time::sleep(Duration::from_millis(50)).await;
        // Pooled as if it had been ready when its response ended.
        pool.keep(sender);
        assert_eq!(pool.idle_count(), 1);
        assert!(pool.checkout().is_none());
        assert_eq!(pool.idle_count(), 0);
    }

    #[tokio::test]
    async fn a_full_pool_keeps_the_newest_connection() {
        // Each connection answers with its number, so we can tell them apart.
        let addr =
            numbered_backend(|n| [b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\n".as_slice(), &[b'0' + n]].concat())
                .await;
        let pool = Pool::new(1, Duration::from_secs(60));
        for _ in 0..2 {
            pooled_get(addr, &pool).await.collect().await.unwrap();
        }
        tokio::task::yield_now().await;
        assert_eq!(pool.idle_count(), 1);
        let mut kept = pool.checkout().unwrap();
        assert_eq!(get(&mut kept).await.collect().await.unwrap().to_bytes(), "2");
    }
}
