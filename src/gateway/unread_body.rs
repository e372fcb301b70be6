//! What becomes of a request body that davgate does not forward.
//!
//! When davgate answers a request itself (`401`, `403`, `400`), or its
//! forward fails, the client may not have sent all of the body yet. hyper
//! then reads once to drain it and otherwise closes the connection after
//! the answer, which it has already written without `Connection: close`. A
//! client that sends its next request on that connection races the close
//! and loses the request ("Remote end closed connection without response"):
//! the caldav library's auth negotiation, an unauthenticated `PROPFIND`
//! and then the same with credentials, did. So a small body that comes at
//! once is read and dropped before answering, as nginx discards one; any
//! other unread body gets `Connection: close` in the answer, and so does
//! a backend's answer that comes before the body was all read (Radicale
//! refuses a `PUT` from its head and closes). HTTP/2 is left alone: there
//! hyper resets only the stream.

use crate::error::Body;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, Version, header};
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

/// The most of a refused request's body that is read to keep its connection.
pub(crate) const DRAIN_LIMIT: u64 = 64 * 1024;

/// How long an answer waits for the rest of a small body.
pub(crate) const DRAIN_TIME: Duration = Duration::from_secs(1);

/// Whether `req` came over HTTP/1 with a body that is not all read yet.
pub fn unread<B: http_body::Body>(req: &Request<B>) -> bool {
    req.version() < Version::HTTP_2 && !req.body().is_end_stream()
}

/// Reads and drops the rest of `req`'s body when it is small and comes
/// within [`DRAIN_TIME`]; otherwise `res` closes the connection. A body
/// behind `Expect: 100-continue` is never asked for.
pub async fn settle(req: Request<Incoming>, res: &mut Response<Body>) {
    if !unread(&req) {
        return;
    }
    let awaits_continue = req.headers().contains_key(header::EXPECT);
    let body = req.into_body();
    let drained = !awaits_continue
        && body.size_hint().lower() <= DRAIN_LIMIT
        && tokio::time::timeout(DRAIN_TIME, drain(body)).await == Ok(true);
    if !drained {
        close(res.headers_mut());
    }
}

/// Has hyper close the connection after the response with `headers`, and
/// tells the client so.
pub fn close(headers: &mut HeaderMap) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
}

/// The client's body on its way to the backend, noting when it has been
/// read to its end.
pub struct ForwardedBody {
    body: Incoming,
    read_to_end: Option<Arc<AtomicBool>>,
}

impl ForwardedBody {
    /// With `watched`, the second value tells whether the body has been
    /// read to its end; without, nothing is allocated.
    pub fn new(body: Incoming, watched: bool) -> (Self, Option<Arc<AtomicBool>>) {
        let read_to_end = watched.then(|| Arc::new(AtomicBool::new(false)));
        (Self { body, read_to_end: read_to_end.clone() }, read_to_end)
    }
}

impl http_body::Body for ForwardedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        // A body of known length ends with its last byte: hyper's client
        // does not poll it again.
        if let Some(read_to_end) = &self.read_to_end
            && (matches!(polled, Poll::Ready(None)) || self.body.is_end_stream())
        {
            read_to_end.store(true, Ordering::Relaxed);
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

/// Reads `body` to its end; `false` past [`DRAIN_LIMIT`] bytes or on an error.
async fn drain<B: http_body::Body + Unpin>(mut body: B) -> bool {
    let mut read = 0;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { return false };
        if let Some(data) = frame.data_ref() {
            read += bytes::Buf::remaining(data) as u64;
            if read > DRAIN_LIMIT {
                return false;
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{Full, StreamBody};

    fn chunks(sizes: &[usize]) -> impl http_body::Body<Data = Bytes, Error = std::convert::Infallible> + Unpin {
        let frames: Vec<_> = sizes.iter().map(|n| Ok(http_body::Frame::data(Bytes::from(vec![b'x'; *n])))).collect();
        StreamBody::new(futures_util::stream::iter(frames))
    }

    #[tokio::test]
    async fn a_body_up_to_the_limit_is_drained_and_a_longer_one_is_not() {
        assert!(drain(chunks(&[])).await);
        assert!(drain(chunks(&[1000, 30_000, 34_536])).await, "exactly 64 KiB");
        assert!(!drain(chunks(&[1000, 30_000, 34_537])).await);
    }

    #[test]
    fn only_an_http1_body_not_yet_read_is_unread() {
        let with = |version, body: &'static str| {
            let mut req = Request::new(Full::new(Bytes::from_static(body.as_bytes())));
            *req.version_mut() = version;
            unread(&req)
        };
        assert!(with(Version::HTTP_11, "x"));
        assert!(with(Version::HTTP_10, "x"));
        assert!(!with(Version::HTTP_11, ""));
        assert!(!with(Version::HTTP_2, "x"));
    }
}
