//! The HTTP/1 relay: plain requests to a plain-HTTP backend, without hyper.
//!
//! hyper on both sides (server and client), with a `HeaderMap` built,
//! rewritten and serialized for every request, was ~40 % of the work of a
//! cached keep-alive request and kept davgate's CPU per request above
//! nginx's (BENCHMARKS.md, item 16). The relay reads a request head with
//! `httparse`, runs the same checks as the hyper path ([`Gateway::authorize`],
//! the same header rules), writes the backend's head straight from the
//! client's bytes, and passes the response back the same way, body bytes
//! untouched. A connection starts here; the first request the relay does
//! not take (see [`request`] for which it takes) and every later one on
//! that connection go to hyper with the bytes read so far.

mod chunked;
mod request;
mod response;
mod write;

use super::access_log::{self, AccessRecord};
use super::unread_body::DRAIN_TIME;
use super::upstream::{failed, timed_out};
use super::{Gateway, Peer, Seen, scope};
use crate::error::GatewayError;
use crate::metrics::Outcome;
use bytes::{Buf, BytesMut};
use response::Framing;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// Spare room each read of a client has at least.
const READ_SIZE: usize = 4096;

/// Spare room each read of a backend has at least: enough for the head
/// and body of a typical DAV answer (a PROPFIND multistatus of a small
/// collection), so that it comes in one read and goes out in one write.
const BACKEND_READ_SIZE: usize = 16 * 1024;

/// The read size for a larger body that streams: large reads keep the
/// syscalls per MiB few.
const STREAM_READ_SIZE: usize = 64 * 1024;

/// A buffer larger than this is let go once its exchange is over, so an
/// idle connection holds little memory.
const KEEP_CAPACITY: usize = 20 * 1024;

/// What became of a connection.
pub enum Relayed<I> {
    /// Closed (or to be closed): the client is done, or so is the server.
    Done,
    /// For hyper, with the bytes read and not yet used.
    Handoff(I, BytesMut),
}

/// Serves requests on `io` until one is for hyper, the client is done, or
/// `shutdown` turns true. `bytes` holds what was read already;
/// `gateway` gives the gateway in force (a reload swaps it).
pub async fn serve<I>(
    mut io: I,
    mut bytes: BytesMut,
    gateway: impl Fn() -> Arc<Gateway>,
    peer: Peer,
    shutdown: &mut watch::Receiver<bool>,
    header_read_timeout: Duration,
) -> io::Result<Relayed<I>>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let mut buffers = Buffers::default();
    // The wait for a request head, the next one on a kept connection
    // included, is bounded by `header_read_timeout` (as hyper bounds it).
    // One timer for the connection, moved only when it fires before the
    // current deadline: setting a timer per request is a cost of its own.
    let mut deadline = Instant::now() + header_read_timeout;
    let timer = tokio::time::sleep_until(deadline.into());
    tokio::pin!(timer);
    loop {
        let (head, gateway) = loop {
            // The gateway in force when the head is in: a reload reaches
            // the next request on an open connection.
            let gateway = gateway();
            match request::read(&bytes, &gateway, peer, &mut buffers.backend_head) {
                request::Parsed::Relay(head) => break (head, gateway),
                request::Parsed::Partial if bytes.len() < request::MAX_HEAD => {}
                request::Parsed::Partial | request::Parsed::Other => return Ok(Relayed::Handoff(io, bytes)),
            }
            let waiting_for_a_request = bytes.is_empty();
            let read = loop {
                tokio::select! {
                    biased;
                    read = read_some(&mut io, &mut bytes) => break read?,
                    // A head that has begun is answered, shutdown or not.
                    _ = shutdown.wait_for(|stop| *stop), if waiting_for_a_request => return Ok(Relayed::Done),
                    () = &mut timer => {
                        if Instant::now() >= deadline {
                            return Ok(Relayed::Done);
                        }
                        timer.as_mut().reset(deadline.into());
                    }
                }
            };
            if read == 0 {
                // A partial head at the end is hyper's to answer.
                return Ok(if waiting_for_a_request { Relayed::Done } else { Relayed::Handoff(io, bytes) });
            }
        };
        let close = head.close || *shutdown.borrow();
        let exchange = Exchange {
            gateway: &gateway,
            io: &mut io,
            bytes: &mut bytes,
            buffers: &mut buffers,
            close,
            record: None,
            seen: Seen::default(),
            sent: Sent::default(),
        };
        // Boxed, as hyper boxes each request's service future: the checks'
        // state is several KiB, and every connection's task would be
        // sized (and moved) for it while it waits for a request.
        if !Box::pin(exchange.run(head)).await? {
            let _ = io.shutdown().await;
            return Ok(Relayed::Done);
        }
        buffers.trim();
        if bytes.is_empty() {
            // Nothing pipelined: the connection waits, maybe for minutes.
            // Its backend read buffer goes: allocating it again costs far
            // less than a request, and an idle connection holds 7.9 KiB
            // instead of 12.1 (BENCHMARKS.md, item 17).
            buffers.from_backend = BytesMut::new();
            if bytes.capacity() > KEEP_CAPACITY {
                bytes = BytesMut::new();
            }
        }
        deadline = Instant::now() + header_read_timeout;
    }
}

/// A connection's buffers, kept from one request to the next.
#[derive(Default)]
struct Buffers {
    /// The request as the backend gets it: head and body.
    backend_head: Vec<u8>,
    /// The response head as the client gets it.
    client_head: Vec<u8>,
    /// What was read from the backend.
    from_backend: BytesMut,
}

impl Buffers {
    /// Lets go of buffers a large exchange grew.
    fn trim(&mut self) {
        for vec in [&mut self.backend_head, &mut self.client_head] {
            if vec.capacity() > KEEP_CAPACITY {
                *vec = Vec::new();
            }
        }
        if self.from_backend.capacity() > KEEP_CAPACITY {
            self.from_backend = BytesMut::new();
        }
    }
}

/// One request and its response.
struct Exchange<'a, I> {
    gateway: &'a Gateway,
    io: &'a mut I,
    /// What was read from the client; the request's head is at the front.
    bytes: &'a mut BytesMut,
    buffers: &'a mut Buffers,
    /// The connection closes after this exchange.
    close: bool,
    /// The access line, written when the exchange is dropped: when it is
    /// over, and also when it is cut off (a shutdown's grace period ends),
    /// as hyper's path writes it when a response body is dropped.
    record: Option<AccessRecord>,
    seen: Seen,
    sent: Sent,
}

/// What went back to the client, for the access log.
struct Sent {
    status: u16,
    outcome: Outcome,
    /// Body bytes written (without chunked framing).
    bytes: u64,
    /// The whole body was written.
    complete: bool,
}

impl Default for Sent {
    /// What a line says when the client left before any answer: while
    /// its request body was still coming (nginx logs a 400 there too).
    fn default() -> Self {
        Self { status: 400, outcome: Outcome::BadRequest, bytes: 0, complete: false }
    }
}

impl<I> Drop for Exchange<'_, I> {
    fn drop(&mut self) {
        if let Some(record) = self.record.take() {
            let Sent { status, outcome, bytes, complete } = self.sent;
            record.write(status, outcome, std::mem::take(&mut self.seen), bytes, complete);
        }
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> Exchange<'_, I> {
    /// Answers the request (its access line follows when `self` is
    /// dropped); `Ok(false)` when the connection must close.
    async fn run(mut self, head: request::Head) -> io::Result<bool> {
        let gateway = self.gateway;
        gateway.metrics.relayed_requests.inc();
        let logged = gateway.access_log && access_log::enabled();
        self.record = logged.then(|| AccessRecord::new(head.method.clone(), head.path(self.bytes), Instant::now()));
        self.seen = Seen { logged, client_ip: Some(head.client_ip), ..Seen::default() };
        let admitted = self.admit(&head).await;
        let whole = head.len + head.body_len;
        let grant = match admitted {
            Ok(grant) => grant,
            Err(e) => {
                // The body is small (the relay takes no larger one): read and
                // dropped if it comes in time, so the connection stays usable.
                let drained = tokio::time::timeout(DRAIN_TIME, fill(self.io, self.bytes, whole)).await;
                if matches!(drained, Ok(Ok(()))) {
                    self.bytes.advance(whole);
                } else {
                    self.close = true;
                }
                gateway.metrics.request(e.outcome(), &head.method);
                return self.refuse(&e, &head).await;
            }
        };
        if let Err(e) = fill(self.io, self.bytes, whole).await {
            // The client left (or failed) while its body was coming.
            gateway.metrics.request(Outcome::BadRequest, &head.method);
            return Err(e);
        }
        let out = &mut self.buffers.backend_head;
        if let Err(e) = request::finish(out, &head, &self.bytes[..], gateway, &grant.user) {
            self.bytes.advance(whole);
            gateway.metrics.request(e.outcome(), &head.method);
            return self.refuse(&e, &head).await;
        }
        out.extend_from_slice(&self.bytes[head.len..whole]);
        self.bytes.advance(whole);
        self.forward(&head).await
    }

    async fn admit(&mut self, head: &request::Head) -> Result<Arc<super::verify::Grant>, GatewayError> {
        let bytes: &[u8] = self.bytes;
        let target = scope::Target {
            method: &head.method,
            path: head.path(bytes),
            destination: head.destination.as_ref(),
            depth: head.depth.as_ref(),
            client_ip: head.client_ip,
        };
        let user_agent = head.user_agent(bytes);
        self.gateway.authorize(head.credentials.as_ref(), head.client_ip, Ok(target), user_agent, &mut self.seen).await
    }

    /// Sends davgate's own answer `e`.
    async fn refuse(&mut self, e: &GatewayError, head: &request::Head) -> io::Result<bool> {
        let (answer, body_len) =
            error_response(e, &self.gateway.challenge, head.method == http::Method::HEAD, self.close);
        self.sent = Sent { status: e.status().as_u16(), outcome: e.outcome(), bytes: body_len as u64, complete: false };
        self.io.write_all(&answer).await?;
        self.io.flush().await?;
        self.sent.complete = true;
        Ok(!self.close)
    }

    /// Sends the prepared request to the backend and its response to the client.
    async fn forward(&mut self, head: &request::Head) -> io::Result<bool> {
        let gateway = self.gateway;
        let upstream = &gateway.upstream;
        let sent = Instant::now();
        let answered = tokio::time::timeout(upstream.timeout(), self.send(head)).await;
        gateway.metrics.upstream_duration.observe(sent.elapsed().as_secs_f64());
        let answered = answered.unwrap_or_else(|_| Err(timed_out(upstream.timeout())));
        let (backend, response) = match answered {
            Ok(answer) => answer,
            Err(e) => {
                gateway.metrics.request(e.outcome(), &head.method);
                return self.refuse(&e, head).await;
            }
        };
        gateway.metrics.request(Outcome::Ok, &head.method);
        self.sent = Sent { status: response.status, outcome: Outcome::Ok, bytes: 0, complete: false };
        self.respond(backend, response).await
    }

    /// Writes the request on a pooled connection, or a new one, and reads
    /// the response head. A pooled connection that ends without a byte of
    /// answer (the backend closed it as we sent) is tried once more on a
    /// new connection when the request only reads (nginx resends idempotent
    /// ones); a request that may write is never sent twice.
    async fn send(&mut self, head: &request::Head) -> Result<(TcpStream, response::Head), GatewayError> {
        let upstream = &self.gateway.upstream;
        let mut pooled = upstream.checkout_raw();
        loop {
            let reused = pooled.is_some();
            let mut backend = match pooled.take() {
                Some(tcp) => tcp,
                None => upstream.connect_raw().await?,
            };
            match self.round_trip(&mut backend, head).await {
                Ok(response) => return Ok((backend, response)),
                Err(Failure::NoAnswer | Failure::Refused) if reused && scope::is_read_method(&head.method) => continue,
                Err(Failure::Refused) => return Err(failed(&"the backend reset the connection without answering")),
                Err(Failure::NoAnswer) => return Err(failed(&"the backend closed the connection without answering")),
                Err(Failure::Io(e)) => return Err(failed(&e)),
                Err(Failure::Invalid(why)) => return Err(failed(&why)),
            }
        }
    }

    async fn round_trip(&mut self, backend: &mut TcpStream, head: &request::Head) -> Result<response::Head, Failure> {
        let buffers = &mut *self.buffers;
        buffers.from_backend.clear();
        // Before any byte of answer, a reset or broken pipe is a kept
        // connection the backend had closed, not a failed exchange.
        let unanswered = |e: io::Error| match e.kind() {
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionAborted => {
                Failure::Refused
            }
            _ => Failure::Io(e),
        };
        backend.write_all(&buffers.backend_head).await.map_err(unanswered)?;
        let mut answered = false;
        loop {
            buffers.from_backend.reserve(BACKEND_READ_SIZE);
            let read = backend.read_buf(&mut buffers.from_backend).await;
            let read = if answered { read.map_err(Failure::Io) } else { read.map_err(unanswered) };
            if read? == 0 {
                return Err(if answered || !buffers.from_backend.is_empty() {
                    Failure::Io(io::ErrorKind::UnexpectedEof.into())
                } else {
                    Failure::NoAnswer
                });
            }
            answered = true;
            loop {
                let was_head = head.method == http::Method::HEAD;
                match response::read(&buffers.from_backend, was_head, self.close, &mut buffers.client_head) {
                    Ok(response::Parsed::Final(response)) => return Ok(response),
                    Ok(response::Parsed::Interim(len)) => buffers.from_backend.advance(len),
                    Ok(response::Parsed::Partial) => break,
                    Err(why) => return Err(Failure::Invalid(why)),
                }
            }
        }
    }

    /// Writes the response head and streams the body to the client, then
    /// pools the backend connection if it can carry another request.
    async fn respond(&mut self, mut backend: TcpStream, response: response::Head) -> io::Result<bool> {
        let Buffers { client_head, from_backend, .. } = &mut *self.buffers;
        from_backend.advance(response.len);
        let mut framing = response.framing;
        // Body bytes already read, as far as they belong to this response.
        let mut first = body_part(&mut framing, from_backend)?;
        if first.ended && first.len < from_backend.len() {
            // More than the response: the backend is out of step.
            first.reusable = false;
        }
        let rechunk = matches!(framing, Framing::Rechunked);
        if rechunk {
            chunk(client_head, &from_backend[..first.len]);
            self.io.write_all(client_head).await?;
        } else {
            write::head_and_body(self.io, client_head, &from_backend[..first.len]).await?;
        }
        count(&mut self.sent, &framing, first.len);
        let mut part = first;
        while !part.ended {
            from_backend.clear();
            // Small rests of a body fit the buffer there is; a large
            // body gets large reads.
            let rest_is_small = matches!(framing, Framing::Length(left) if left <= BACKEND_READ_SIZE as u64);
            from_backend.reserve(if rest_is_small { BACKEND_READ_SIZE } else { STREAM_READ_SIZE });
            // A backend that goes quiet mid-body gets the time it had for
            // the head; the client's side is bounded by its idle timeout.
            let quiet = self.gateway.upstream.timeout();
            let read = tokio::time::timeout(quiet, backend.read_buf(from_backend)).await;
            let read = read.map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the backend went quiet"))?;
            if read? == 0 {
                match framing {
                    Framing::UntilClose => break,
                    Framing::Rechunked => {
                        // The backend's close ends the body: the last chunk.
                        self.io.write_all(b"0\r\n\r\n").await?;
                        break;
                    }
                    _ => return Err(io::ErrorKind::UnexpectedEof.into()),
                }
            }
            part = body_part(&mut framing, from_backend)?;
            if rechunk {
                client_head.clear();
                chunk(client_head, &from_backend[..part.len]);
                self.io.write_all(client_head).await?;
            } else {
                self.io.write_all(&from_backend[..part.len]).await?;
            }
            count(&mut self.sent, &framing, part.len);
            if part.ended && part.len < from_backend.len() {
                part.reusable = false;
            }
        }
        // The backend is done: its connection can serve another request
        // while a slow client takes the rest.
        if response.reusable && part.reusable {
            self.gateway.upstream.keep_raw(backend);
        }
        // A TLS stream may hold the last records (when the socket was
        // full) until flushed; the client waits for them, not for us.
        self.io.flush().await?;
        self.sent.complete = true;
        Ok(!response.close)
    }
}

/// Adds `len` body bytes just written to what the access log counts:
/// chunk data without its framing.
fn count(sent: &mut Sent, framing: &Framing, len: usize) {
    sent.bytes = match framing {
        Framing::Chunked(chunked) => chunked.data_len(),
        _ => sent.bytes + len as u64,
    };
}

/// How much of `read` (the next bytes after the head) is body, by `framing`.
struct BodyPart {
    len: usize,
    /// The body ends within these bytes.
    ended: bool,
    /// Nothing seen so far rules out reusing the backend connection.
    reusable: bool,
}

fn body_part(framing: &mut Framing, read: &[u8]) -> io::Result<BodyPart> {
    let part = |len, ended| BodyPart { len, ended, reusable: true };
    Ok(match framing {
        Framing::Empty => part(0, true),
        Framing::Length(left) => {
            let len = usize::try_from(*left).unwrap_or(usize::MAX).min(read.len());
            *left -= len as u64;
            part(len, *left == 0)
        }
        Framing::Chunked(chunked) => match chunked.advance(read) {
            Ok(Some(end)) => part(end, true),
            Ok(None) => part(read.len(), false),
            Err(_) => {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "malformed chunked body from the backend"));
            }
        },
        Framing::UntilClose | Framing::Rechunked => part(read.len(), false),
    })
}

/// Appends body bytes to `out` as one chunk.
fn chunk(out: &mut Vec<u8>, data: &[u8]) {
    if !data.is_empty() {
        out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    }
}

/// Why an exchange with the backend gave no response head.
enum Failure {
    /// The connection ended before a byte of response.
    NoAnswer,
    /// It was reset (or the write found it closed) before a byte of response.
    Refused,
    Io(io::Error),
    Invalid(&'static str),
}

/// Reads once into `bytes`, with room for at least [`READ_SIZE`] bytes.
async fn read_some<R: AsyncRead + Unpin>(io: &mut R, bytes: &mut BytesMut) -> io::Result<usize> {
    bytes.reserve(READ_SIZE);
    io.read_buf(bytes).await
}

/// Reads until `bytes` holds at least `len` bytes.
async fn fill<R: AsyncRead + Unpin>(io: &mut R, bytes: &mut BytesMut, len: usize) -> io::Result<()> {
    while bytes.len() < len {
        if read_some(io, bytes).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(())
}

/// davgate's own answer `e` on the wire: the hyper path's response
/// (status, headers, one line of text), framed by length.
/// Returns the bytes and the length of the body in them.
fn error_response(e: &GatewayError, challenge: &http::HeaderValue, to_head: bool, close: bool) -> (Vec<u8>, usize) {
    let response = e.response(challenge);
    let body = e.body_text();
    let status = response.status();
    let mut out = Vec::with_capacity(256);
    let reason = status.canonical_reason().unwrap_or("");
    for part in ["HTTP/1.1 ", status.as_str(), " ", reason, "\r\n"] {
        out.extend_from_slice(part.as_bytes());
    }
    for (name, value) in response.headers() {
        for part in [name.as_str().as_bytes(), b": ", value.as_bytes(), b"\r\n"] {
            out.extend_from_slice(part);
        }
    }
    out.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    // hyper dates its answers too (RFC 9110 §6.6.1); refusals are few
    // enough that formatting the time for each costs nothing that counts.
    out.extend_from_slice(format!("date: {}\r\n", httpdate::fmt_http_date(std::time::SystemTime::now())).as_bytes());
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if to_head {
        return (out, 0);
    }
    out.extend_from_slice(body.as_bytes());
    (out, body.len())
}

/// Digits only, as RFC 9110 §8.6 has a `Content-Length` (no sign, no list).
fn digits(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_content_length_is_digits_only() {
        assert_eq!(digits(b"0"), Some(0));
        assert_eq!(digits(b"65536"), Some(65536));
        for bad in [&b""[..], b"+1", b"-1", b"1,1", b"1 ", b"0x10", b"99999999999999999999"] {
            assert_eq!(digits(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
