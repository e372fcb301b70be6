//! One access-log line per gateway request (target `davgate::access`),
//! written when the response body has been sent, or dropped, so `bytes` and
//! `duration_ms` cover the whole transfer, as nginx's access log does.
//!
//! The line names the user and the password's public id, never the
//! password, never a header value, and only the path of the request target
//! (a query string could carry anything).

use super::Seen;
use crate::error::{Body, BoxError};
use crate::metrics::Outcome;
use bytes::Bytes;
use http::{Method, Request, Response};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

/// Whether access lines get written at all: `log.access` is on by default,
/// and with a filter that drops `davgate::access` (e.g. `warn`) a record
/// would be built on every request only to be thrown away.
pub fn enabled() -> bool {
    tracing::enabled!(target: "davgate::access", tracing::Level::INFO)
}

/// Longest path written to the log, in bytes.
const MAX_LOGGED_PATH: usize = 512;

/// A request being logged: what is known before the response.
pub struct AccessRecord {
    method: Method,
    path: String,
    start: Instant,
}

/// Everything the line needs once the body is done.
struct Finished {
    method: Method,
    path: String,
    start: Instant,
    status: u16,
    outcome: Outcome,
    seen: Seen,
}

impl AccessRecord {
    pub fn begin<B>(req: &Request<B>, start: Instant) -> Self {
        Self::new(req.method().clone(), req.uri().path(), start)
    }

    /// A record of a request read without hyper (the relay's); `path`
    /// without the query.
    pub fn new(method: Method, path: &str, start: Instant) -> Self {
        let mut end = path.len().min(MAX_LOGGED_PATH);
        while !path.is_char_boundary(end) {
            end -= 1;
        }
        Self { method, path: path[..end].to_string(), start }
    }

    /// Wraps the response body so the line is written when it ends.
    pub fn finish(self, res: Response<Body>, outcome: Outcome, seen: Seen) -> Response<Body> {
        let finished = Finished {
            method: self.method,
            path: self.path,
            start: self.start,
            status: res.status().as_u16(),
            outcome,
            seen,
        };
        res.map(|inner| LoggedBody { inner, bytes: 0, finished: Some(finished) }.boxed())
    }

    /// Writes the line of a response sent without hyper: `bytes` of its
    /// body went out, all of it when `complete`.
    pub fn write(self, status: u16, outcome: Outcome, seen: Seen, bytes: u64, complete: bool) {
        let Self { method, path, start } = self;
        Finished { method, path, start, status, outcome, seen }.write(bytes, complete);
    }
}

impl Finished {
    fn write(&self, bytes: u64, complete: bool) {
        // The backend's status is the response status when it answered.
        let upstream_status = (self.outcome == Outcome::Ok).then_some(self.status);
        let seen = &self.seen;
        tracing::info!(
            target: "davgate::access",
            method = %self.method,
            // A `&str` field is escaped (Unicode line separators included).
            path = self.path.as_str(),
            status = self.status,
            user = seen.user.as_deref().unwrap_or("-"),
            password_id = seen.password_id.as_deref().unwrap_or("-"),
            ip = %seen.client_ip.map(|ip| ip.to_string()).unwrap_or_else(|| "-".into()),
            bytes,
            duration_ms = self.start.elapsed().as_secs_f64() * 1000.0,
            upstream_status = upstream_status.map(|s| s.to_string()).as_deref().unwrap_or("-"),
            outcome = self.outcome.as_str(),
            complete,
        );
    }
}

struct LoggedBody {
    inner: Body,
    bytes: u64,
    finished: Option<Finished>,
}

impl LoggedBody {
    fn emit(&mut self, complete: bool) {
        if let Some(finished) = self.finished.take() {
            finished.write(self.bytes, complete);
        }
    }
}

impl http_body::Body for LoggedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes += data.len() as u64;
                }
            }
            Poll::Ready(None) => self.emit(true),
            Poll::Ready(Some(Err(_))) => self.emit(false),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    /// A body dropped before its end: the client went away, or hyper never
    /// polled it (HEAD, 304).
    fn drop(&mut self) {
        // The answer to a HEAD has no body to send: it is complete.
        let to_head = self.finished.as_ref().is_some_and(|f| f.method == Method::HEAD);
        let complete = to_head || http_body::Body::is_end_stream(&self.inner);
        self.emit(complete);
    }
}
