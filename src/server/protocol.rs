//! Picks HTTP/1.1 or HTTP/2 for a new connection and serves it with the
//! relay and hyper.
//!
//! A client speaks HTTP/2 either after TLS ALPN or with prior knowledge
//! (h2c); both start with the HTTP/2 connection preface. hyper-util's auto
//! builder finds it by reading exactly 24 bytes first, which costs every
//! HTTP/1 connection an extra `recvfrom`, a small allocation and a move of
//! its multi-KiB connection future. Here the first read takes whatever the
//! client sent (usually the whole request), and hyper gets those bytes back
//! through [`Rewind`] before it reads the socket itself.

use crate::gateway::relay::{self, Relayed};
use crate::gateway::{Gateway, Peer};
use bytes::{Buf, Bytes, BytesMut};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::HttpService;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::Watcher;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::sync::watch;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What the first read of a connection asks for: enough for the head of a
/// typical DAV request, so hyper rarely has to read again before parsing,
/// and small, since it is allocated before the first byte arrives.
const FIRST_READ: usize = 2048;

/// HTTP/2 streams one client may have open at once.
const MAX_CONCURRENT_STREAMS: u32 = 128;

pub struct Protocols {
    h1: http1::Builder,
    h2: http2::Builder<TokioExecutor>,
    /// hyper's HTTP/1 header-read timeout starts only once hyper reads;
    /// this one bounds the wait for the first bytes (a client dribbling
    /// the preface byte by byte included).
    first_bytes_timeout: Duration,
}

impl Protocols {
    pub fn new(header_read_timeout: Duration) -> Self {
        let mut h1 = http1::Builder::new();
        h1.timer(TokioTimer::new()).header_read_timeout(header_read_timeout).keep_alive(true);
        let mut h2 = http2::Builder::new(TokioExecutor::new());
        // No h2 keep-alive pings: they would count as traffic and keep an idle
        // connection alive forever; `IdleTimeout` closes quiet connections.
        h2.timer(TokioTimer::new()).max_concurrent_streams(MAX_CONCURRENT_STREAMS);
        Self { h1, h2, first_bytes_timeout: header_read_timeout }
    }

    /// Serves `io` until the client is done, the connection fails, or a
    /// graceful shutdown (through `watcher`) has drained it. A connection
    /// still waiting for its first bytes ends at once when `shutdown` turns
    /// true, or after the header-read timeout.
    ///
    /// HTTP/1 requests go to the relay first ([`relay`]); hyper serves
    /// the connection from the first one the relay leaves to it.
    pub async fn serve<I, S, B>(
        &self,
        mut io: I,
        service: S,
        gateway: impl Fn() -> Arc<Gateway>,
        peer: Peer,
        watcher: Watcher,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: HttpService<Incoming, ResBody = B> + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (version, first) = tokio::select! {
            // Bytes already there win over shutdown: a request that reached
            // us is answered (hyper then closes the connection).
            biased;
            sniffed = tokio::time::timeout(self.first_bytes_timeout, sniff(&mut io)) => match sniffed {
                Ok(sniffed) => sniffed?,
                Err(_) => return Ok(()),
            },
            _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
        };
        match version {
            Version::Http1 => {
                // `watcher` is held while the relay serves: a graceful
                // shutdown waits for it too.
                let relayed = relay::serve(io, first, gateway, peer, &mut shutdown, self.first_bytes_timeout).await?;
                let Relayed::Handoff(io, rest) = relayed else { return Ok(()) };
                let io = TokioIo::new(Rewind { prefix: rest.freeze(), inner: io });
                watcher.watch(self.h1.serve_connection(io, service)).await?
            }
            // Boxed: an HTTP/2 connection's state is twice an HTTP/1 one's,
            // and every HTTP/1 connection's task would be sized (and moved)
            // for it. HTTP/2 connections are long-lived; one allocation is
            // nothing to them.
            Version::Http2 => {
                let io = TokioIo::new(Rewind { prefix: first.freeze(), inner: io });
                Box::pin(watcher.watch(self.h2.serve_connection(io, service))).await?
            }
        }
        Ok(())
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Version {
    Http1,
    Http2,
}

/// Reads until the bytes so far either are the HTTP/2 preface or can no
/// longer become it; returns the version and every byte read.
async fn sniff<I: AsyncRead + Unpin>(io: &mut I) -> io::Result<(Version, BytesMut)> {
    let mut buf = BytesMut::with_capacity(FIRST_READ);
    loop {
        let read = io.read_buf(&mut buf).await?;
        let seen = buf.len().min(H2_PREFACE.len());
        if buf[..seen] != H2_PREFACE[..seen] {
            return Ok((Version::Http1, buf));
        }
        if seen == H2_PREFACE.len() {
            return Ok((Version::Http2, buf));
        }
        if read == 0 {
            // Closed early: hyper's HTTP/1 side sees the same end of stream
            // and closes quietly (or answers 400 to a partial head).
            return Ok((Version::Http1, buf));
        }
    }
}

/// `inner` with `prefix` put back in front of what it will read.
struct Rewind<I> {
    prefix: Bytes,
    inner: I,
}

impl<I: AsyncRead + Unpin> AsyncRead for Rewind<I> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.prefix.is_empty() {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        }
        let n = self.prefix.len().min(buf.remaining());
        buf.put_slice(&self.prefix[..n]);
        self.prefix.advance(n);
        if self.prefix.is_empty() {
            // Free the first read's buffer now rather than with the connection.
            self.prefix = Bytes::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Rewind<I> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// Returns one of `chunks` per read (an empty one is end of stream);
    /// reading past the last one fails the test.
    struct Chunks(std::collections::VecDeque<Vec<u8>>);

    impl AsyncRead for Chunks {
        fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
            let chunk = self.0.pop_front().expect("read past the last chunk");
            buf.put_slice(&chunk);
            Poll::Ready(Ok(()))
        }
    }

    async fn sniff_chunks(chunks: &[&[u8]]) -> (Version, Vec<u8>) {
        let mut reader = Chunks(chunks.iter().map(|c| c.to_vec()).collect());
        let (version, bytes) = sniff(&mut reader).await.unwrap();
        (version, bytes.to_vec())
    }

    #[tokio::test]
    async fn an_http1_request_is_read_once() {
        let request: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(sniff_chunks(&[request]).await, (Version::Http1, request.to_vec()));
    }

    #[tokio::test]
    async fn a_preface_split_over_reads_is_http2_with_every_byte_kept() {
        let (version, bytes) = sniff_chunks(&[&H2_PREFACE[..3], &H2_PREFACE[3..20], &H2_PREFACE[20..], b"\0\0"]).await;
        assert_eq!(version, Version::Http2);
        assert_eq!(bytes, H2_PREFACE);
    }

    #[tokio::test]
    async fn a_head_that_starts_like_the_preface_is_http1() {
        let (version, bytes) = sniff_chunks(&[b"PRI", b" / HTTP/1.1\r\n"]).await;
        assert_eq!(version, Version::Http1);
        assert_eq!(bytes, b"PRI / HTTP/1.1\r\n");
    }

    #[tokio::test]
    async fn an_early_close_is_left_to_http1() {
        assert_eq!(sniff_chunks(&[b"PRI * HT", b""]).await, (Version::Http1, b"PRI * HT".to_vec()));
        assert_eq!(sniff_chunks(&[b""]).await, (Version::Http1, Vec::new()));
    }

    #[tokio::test]
    async fn rewind_returns_the_prefix_then_the_rest_in_small_reads() {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(b" world").await.unwrap();
        drop(client);
        let mut rewind = Rewind { prefix: Bytes::from_static(b"hello"), inner: server };
        let mut small = [0u8; 3];
        let n = rewind.read(&mut small).await.unwrap();
        assert_eq!(&small[..n], b"hel");
        let mut rest = Vec::new();
        rewind.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"lo world");
    }
}
