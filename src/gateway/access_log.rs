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
use std::io::{self, Write};
use std::net::IpAddr;
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
        match crate::log_writer::direct_format() {
            Some(format) => crate::log_writer::write_access(|out| self.format(out, format, bytes, complete)),
            None => self.trace(bytes, complete),
        }
    }

    /// The backend's status is the response status when it answered.
    fn upstream_status(&self) -> Option<u16> {
        (self.outcome == Outcome::Ok).then_some(self.status)
    }

    /// The line as an event, for tracing's formatter.
    fn trace(&self, bytes: u64, complete: bool) {
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
            duration_ms = self.start.elapsed().as_secs_f64() * 1000.0,
            // A string in both forms ("200" or "-"), as in JSON lines.
            upstream_status = self.upstream_status().map(|s| s.to_string()).as_deref().unwrap_or("-"),
            outcome = self.outcome.as_str(),
            complete,
        );
    }

    /// The same line as tracing's compact or JSON formatter writes it
    /// (tested below), without its per-field visitor and styling.
    fn format(&self, out: &mut Vec<u8>, format: LogFormat, bytes: u64, complete: bool) {
        let seen = &self.seen;
        let line = Line {
            timestamp: humantime::format_rfc3339_micros(std::time::SystemTime::now()),
            level: "INFO",
            method: self.method.as_str(),
            path: self.path.as_str(),
            status: self.status,
            user: seen.user.as_deref().unwrap_or("-"),
            password_id: seen.password_id.as_deref().unwrap_or("-"),
            ip: Dash(seen.client_ip),
            bytes,
            duration_ms: self.start.elapsed().as_secs_f64() * 1000.0,
            upstream_status: Dash(self.upstream_status()),
            outcome: self.outcome.as_str(),
            complete,
            target: "davgate::access",
        };
        // Writing to a Vec cannot fail.
        let _ = match format {
            LogFormat::Json => serde_json::to_writer(&mut *out, &line).map_err(io::Error::from),
            LogFormat::Compact => write!(
                out,
                "{}  INFO davgate::access: method={} path={:?} status={} user={:?} password_id={:?} ip={} \
                 bytes={} duration_ms={:?} upstream_status=\"{}\" outcome={:?} complete={}",
                line.timestamp,
                line.method,
                line.path,
                line.status,
                line.user,
                line.password_id,
                line.ip,
                line.bytes,
                line.duration_ms,
                line.upstream_status,
                line.outcome,
                line.complete
            ),
        };
        out.push(b'\n');
    }
}

/// An access line's fields, in the order tracing writes them.
#[derive(Serialize)]
struct Line<'a> {
    #[serde(serialize_with = "as_text")]
    timestamp: humantime::Rfc3339Timestamp,
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

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
        type Writer = Captured;

        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    fn traced(finished: &Finished, format: LogFormat) -> String {
        let captured = Captured::default();
        let builder = tracing_subscriber::fmt().with_writer(captured.clone()).with_ansi(false);
        match format {
            // As `cli::init_logging` sets them up.
            LogFormat::Json => tracing::subscriber::with_default(
                builder.json().flatten_event(true).with_current_span(false).finish(),
                || finished.trace(1363, true),
            ),
            LogFormat::Compact => {
                tracing::subscriber::with_default(builder.compact().finish(), || finished.trace(1363, true))
            }
        }
        String::from_utf8(captured.0.lock().unwrap().clone()).unwrap()
    }

    /// The line without what differs from one call to the next.
    fn timeless(line: &str) -> String {
        let mut out = line.to_string();
        for (key, end) in [("timestamp\":\"", '"'), ("duration_ms=", ' '), ("duration_ms\":", ',')] {
            if let Some(start) = out.find(key).map(|i| i + key.len()) {
                let stop = start + out[start..].find(end).unwrap();
                out.replace_range(start..stop, "T");
            }
        }
        // The compact line starts with its timestamp.
        match out.split_once("  INFO ") {
            Some((_, rest)) if !out.starts_with('{') => format!("T  INFO {rest}"),
            _ => out,
        }
    }

    #[test]
    fn direct_lines_are_the_lines_tracing_writes() {
        let answered = Seen {
            logged: true,
            client_ip: Some([192, 0, 2, 10].into()),
            user: Some("al\"ice".into()),
            password_id: Some("x7kq2".into()),
        };
        let cases = [
            (Method::from_bytes(b"PROPFIND").unwrap(), "/alice/a\u{2028}b\"c\\", 207, Outcome::Ok, answered),
            (Method::GET, "/", 401, Outcome::Unauthenticated, Seen::default()),
        ];
        for (method, path, status, outcome, seen) in cases {
            let start = Instant::now();
            let finished = Finished { method, path: path.into(), start, status, outcome, seen };
            for format in [LogFormat::Compact, LogFormat::Json] {
                let mut direct = Vec::new();
                finished.format(&mut direct, format, 1363, true);
                let direct = String::from_utf8(direct).unwrap();
                let traced = traced(&finished, format);
                assert_eq!(timeless(&direct), timeless(&traced), "{format:?}");
                assert!(direct.ends_with('\n') && direct.matches('\n').count() == 1, "{direct}");
                if format == LogFormat::Json {
                    let value: serde_json::Value = serde_json::from_str(&direct).unwrap();
                    assert!(value["duration_ms"].as_f64().unwrap() >= 0.0);
                    let timestamp = value["timestamp"].as_str().unwrap();
                    assert!(humantime::parse_rfc3339(timestamp).is_ok(), "{timestamp}");
                }
            }
        }
    }
}
