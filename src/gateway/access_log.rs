//! One access-log line per gateway request (target `davgate::access`),
//! written when the response body has been sent, or dropped, so `bytes` and
//! `duration_ms` cover the whole transfer, as nginx's access log does.
//!
//! The line names the user and the password's public id, never the
//! password, never a header value, and only the path of the request target
//! (a query string could carry anything).

use super::Seen;
use crate::config::LogFormat;
use crate::error::{Body, BoxError};
use crate::metrics::Outcome;
use bytes::Bytes;
use http::{Method, Request, Response};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use serde::Serialize;
use std::fmt::Write;
use std::net::IpAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};

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
        let duration_ms = self.start.elapsed().as_secs_f64() * 1000.0;
        match crate::log_writer::direct_format() {
            Some(format) => {
                let line = self.line(format, bytes, complete, duration_ms);
                crate::log_writer::write_access(|out| out.extend_from_slice(line.as_bytes()));
            }
            None => self.trace(bytes, complete, duration_ms),
        }
    }

    /// The backend's status is the response status when it answered.
    fn upstream_status(&self) -> Option<u16> {
        (self.outcome == Outcome::Ok).then_some(self.status)
    }

    /// The line as an event, for tracing's formatter.
    fn trace(&self, bytes: u64, complete: bool, duration_ms: f64) {
        let seen = &self.seen;
        tracing::info!(
            target: "davgate::access",
            method = %self.method,
            // A `&str` field is escaped (Unicode line separators included).
            path = self.path.as_str(),
            status = self.status,
            user = seen.user.as_deref().unwrap_or("-"),
            password_id = seen.password_id.as_deref().unwrap_or("-"),
            ip = %Dash(seen.client_ip),
            bytes,
            duration_ms,
            // A string in both forms ("200" or "-"), as in JSON lines.
            upstream_status = self.upstream_status().map(|s| s.to_string()).as_deref().unwrap_or("-"),
            outcome = self.outcome.as_str(),
            complete,
        );
    }

    /// The same line as tracing's compact or JSON formatter writes it from
    /// [`Self::trace`] (tested below; davgate enters no spans, which
    /// tracing's lines would name), without its per-field visitor and
    /// styling.
    fn line(&self, format: LogFormat, bytes: u64, complete: bool, duration_ms: f64) -> String {
        let timestamp = timestamp();
        let seen = &self.seen;
        let fields = AccessFields {
            timestamp: &timestamp,
            level: "INFO",
            method: self.method.as_str(),
            path: self.path.as_str(),
            status: self.status,
            user: seen.user.as_deref().unwrap_or("-"),
            password_id: seen.password_id.as_deref().unwrap_or("-"),
            ip: Dash(seen.client_ip),
            bytes,
            duration_ms,
            upstream_status: Dash(self.upstream_status()),
            outcome: self.outcome.as_str(),
            complete,
            target: "davgate::access",
        };
        let mut line = match format {
            // Only strings, numbers and `Display` values that cannot fail.
            LogFormat::Json => serde_json::to_string(&fields).unwrap_or_default(),
            LogFormat::Compact => {
                let mut line = String::with_capacity(320);
                let _ = write!(
                    line,
                    "{}  INFO davgate::access: method={} path={:?} status={} user={:?} password_id={:?} ip={} \
                     bytes={} duration_ms={:?} upstream_status=\"{}\" outcome={:?} complete={}",
                    fields.timestamp,
                    fields.method,
                    fields.path,
                    fields.status,
                    fields.user,
                    fields.password_id,
                    fields.ip,
                    fields.bytes,
                    fields.duration_ms,
                    fields.upstream_status,
                    fields.outcome,
                    fields.complete
                );
                line
            }
        };
        line.push('\n');
        line
    }
}

/// Now, as tracing's formatter writes it (2026-12-08T04:24:08.504871Z).
/// humantime writes the same from 1970 to 9999 and is several times
/// faster; outside those years (where it would panic or fail) tracing's
/// own formatter does it.
fn timestamp() -> String {
    let now = std::time::SystemTime::now();
    // 253402300800: 10000-01-01T00:00:00Z.
    let in_range = now
        .duration_since(std::time::UNIX_EPOCH)
        .is_ok_and(|since| since < std::time::Duration::from_secs(253_402_300_800));
    if in_range {
        return humantime::format_rfc3339_micros(now).to_string();
    }
    let mut timestamp = String::with_capacity(32);
    let _ = SystemTime.format_time(&mut Writer::new(&mut timestamp));
    timestamp
}

/// An access line's fields, in the order tracing writes them.
#[derive(Serialize)]
struct AccessFields<'a> {
    timestamp: &'a str,
    level: &'static str,
    method: &'a str,
    path: &'a str,
    status: u16,
    user: &'a str,
    password_id: &'a str,
    #[serde(serialize_with = "as_text")]
    ip: Dash<IpAddr>,
    bytes: u64,
    duration_ms: f64,
    #[serde(serialize_with = "as_text")]
    upstream_status: Dash<u16>,
    outcome: &'a str,
    complete: bool,
    target: &'static str,
}

fn as_text<T: std::fmt::Display, S: serde::Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

/// A value, or `-` without one.
struct Dash<T>(Option<T>);

impl<T: std::fmt::Display> std::fmt::Display for Dash<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(v) => v.fmt(f),
            None => f.write_str("-"),
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// What tracing's formatter writes, kept for the test.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
        type Writer = Captured;

        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    /// The line tracing writes, with the subscriber `davgate serve` uses.
    fn traced(finished: &Finished, format: LogFormat, bytes: u64, complete: bool, duration_ms: f64) -> String {
        let captured = Captured::default();
        let filter = tracing_subscriber::EnvFilter::new("info");
        let subscriber = crate::log_writer::subscriber(format, false, filter, captured.clone());
        tracing::subscriber::with_default(subscriber, || finished.trace(bytes, complete, duration_ms));
        String::from_utf8(captured.0.lock().unwrap().clone()).unwrap()
    }

    /// Splits off the timestamp, after checking it is RFC 3339 in UTC
    /// with microseconds, e.g. 2026-12-08T04:24:08.504871Z.
    fn timestamp(line: &str) -> (String, String) {
        let (start, len) = match line.strip_prefix("{\"timestamp\":\"") {
            Some(_) => ("{\"timestamp\":\"".len(), 27),
            None => (0, 27),
        };
        let stamp = &line[start..start + len];
        let shape: String = stamp.chars().map(|c| if c.is_ascii_digit() { '0' } else { c }).collect();
        assert_eq!(shape, "0000-00-00T00:00:00.000000Z", "{line}");
        (stamp.to_string(), format!("{}{}", &line[..start], &line[start + len..]))
    }

    #[test]
    fn direct_lines_are_the_lines_tracing_writes() {
        let answered = Seen {
            logged: true,
            client_ip: Some([192, 0, 2, 10].into()),
            user: Some("al\"ice\x1b[31m\t\u{85}".into()),
            password_id: Some("x7kq2".into()),
        };
        let v6 = Seen { client_ip: Some("2001:db8::1".parse().unwrap()), ..Seen::default() };
        let cases = [
            (
                Method::from_bytes(b"PROPFIND").unwrap(),
                "/alice/a\u{2028}b\"c\\",
                207,
                Outcome::Ok,
                answered,
                1363,
                true,
                35.29,
            ),
            (Method::GET, "/", 401, Outcome::Unauthenticated, Seen::default(), 0, false, 1.0),
            (Method::PUT, "/x", 502, Outcome::UpstreamError, v6, 24, true, 5e-5),
        ];
        for (method, path, status, outcome, seen, bytes, complete, duration_ms) in cases {
            let finished = Finished { method, path: path.into(), start: Instant::now(), status, outcome, seen };
            for format in [LogFormat::Compact, LogFormat::Json] {
                let direct = finished.line(format, bytes, complete, duration_ms);
                let traced = traced(&finished, format, bytes, complete, duration_ms);
                let ((direct_at, direct_rest), (traced_at, traced_rest)) = (timestamp(&direct), timestamp(&traced));
                assert_eq!(direct_rest, traced_rest, "{format:?}");
                assert!(traced_at >= direct_at, "{direct_at} {traced_at}");
                assert!(direct.ends_with('\n') && direct.matches('\n').count() == 1, "{direct}");
                if format == LogFormat::Json {
                    let value: serde_json::Value = serde_json::from_str(&direct).unwrap();
                    assert_eq!(value["duration_ms"].as_f64(), Some(duration_ms));
                }
            }
        }
    }
}
