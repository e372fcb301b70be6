//! A corpus of bad input, sent as raw bytes (a real client would normalise
//! it): malformed credentials, traversal and encoding tricks, `Host` tricks,
//! forged identity headers, request-smuggling shapes. Every case asserts its
//! status and what, if anything, reached the recording backend. Families
//! collect every failing case before asserting, so one run shows them all.
//!
//! An empty-bodied `400`/`431` is hyper refusing the bytes before davgate
//! sees a request; davgate's own refusals carry a one-line reason.

mod common;

use bytes::Bytes;
use common::recorder::Seen;
use common::{Gate, Http, Recorder, services};
use http::{HeaderName, Request};
use http_body_util::Full;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CHALLENGE: &str = "Basic realm=\"davgate\", charset=\"UTF-8\"";
const CHUNKED_ABC: &str = "3\r\nabc\r\n0\r\n\r\n";

/// One response parsed off the wire.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Sends raw bytes and parses every response on the connection. A write
/// error is ignored (hyper may answer `431` and close before reading it all);
/// no answer within 10 s is a hang and fails the test.
async fn send(addr: SocketAddr, request: &[u8]) -> Vec<Reply> {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = tcp.write_all(request).await;
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "no answer within 10 s to {:?}", String::from_utf8_lossy(&request[..request.len().min(200)]));
    let text = String::from_utf8_lossy(&out).into_owned();
    let mut rest = text.as_str();
    let mut replies = Vec::new();
    while let Some((head, after)) = rest.split_once("\r\n\r\n") {
        let mut lines = head.lines();
        let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let len = headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok());
        let len = len.unwrap_or(after.len()).min(after.len());
        replies.push(Reply { status, headers, body: after[..len].to_string() });
        rest = &after[len..];
    }
    replies
}

/// `{line}` plus header lines (no CRLF), `Connection: close` and the blank line.
fn request(line: &str, headers: &[&str]) -> Vec<u8> {
    let mut text = format!("{line}\r\n");
    for h in headers {
        text.push_str(&format!("{h}\r\n"));
    }
    text.push_str("Connection: close\r\n\r\n");
    text.into_bytes()
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A recording backend, davgate in front, alice's `caldav` password
/// (`/calendars/alice/` and discovery paths) and its `Authorization` value.
async fn setup() -> (Recorder, Gate, String, String) {
    let backend = Recorder::start().await;
    let gate = Gate::start(&backend.url()).await;
    let pw = gate.password("alice", services(&["caldav"])).await;
    let auth = common::client::basic("alice", &pw);
    (backend, gate, pw, auth)
}

/// What the backend must see of an authenticated request: the verified
/// identity exactly once, nothing a client chose, no credentials.
fn identity_problem(seen: &Seen) -> Option<String> {
    let ids: Vec<_> = seen.headers.get_all("x-remote-user").iter().collect();
    let forged = seen.headers.iter().find(|(n, v)| *v == "mallory" || n.as_str().contains('_'));
    if ids != ["alice"] || forged.is_some() || seen.headers.contains_key("authorization") {
        return Some(format!("backend saw {:?}", seen.headers));
    }
    None
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_authorization_is_one_identical_401_and_never_forwarded() {
    let (backend, gate, secret, good) = setup().await;
    let token = b64(format!("alice:{secret}").as_bytes());
    let bad = |s: &[u8]| format!("Authorization: Basic {}", b64(s));
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("no scheme", vec![format!("Authorization: {token}")]),
        ("scheme only", vec!["Authorization: Basic".into()]),
        ("Bearer", vec![format!("Authorization: Bearer {token}")]),
        ("Digest", vec![r#"Authorization: Digest username="alice", realm="davgate", nonce="n", uri="/""#.into()]),
        ("bad base64", vec!["Authorization: Basic !!!not*base64".into()]),
        ("no colon", vec![bad(format!("alice{secret}").as_bytes())]),
        ("empty user", vec![bad(format!(":{secret}").as_bytes())]),
        ("non-UTF-8 after decoding", vec![bad(&[b"alice:".as_slice(), &[0xff, 0xfe]].concat())]),
        // hyper's head limit is max_buf_size (8 KiB + 400 KiB): 64 KiB passes
        // it, and davgate's own 1 KiB cap on the value answers the 401.
        ("64 KiB value", vec![format!("Authorization: Basic {}", "A".repeat(64 * 1024 - 6))]),
        // Repeated: which one a backend or log would read is ambiguous.
        ("valid + invalid", vec![format!("Authorization: {good}"), "Authorization: Basic !!!".into()]),
        ("invalid + valid", vec!["Authorization: Basic !!!".into(), format!("Authorization: {good}")]),
        ("valid twice", vec![format!("Authorization: {good}"), format!("Authorization: {good}")]),
    ];
    let mut failures = Vec::new();
    for (name, auth) in &cases {
        let mut headers = vec!["Host: dav.example"];
        headers.extend(auth.iter().map(String::as_str));
        let replies = send(gate.addr, &request("GET /calendars/alice/x HTTP/1.1", &headers)).await;
        let ok = matches!(&replies[..], [r] if r.status == 401
            && r.header("www-authenticate") == Some(CHALLENGE)
            && r.body == "authentication required\n");
        if !ok {
            failures.push(format!("{name}: {replies:?}"));
        }
    }
    // Past hyper's ~408 KiB head limit hyper answers 431 itself, with no body
    // and no challenge: davgate never sees a request. (The limit is checked
    // only while the head is incomplete, so sizes just above it may parse.)
    let huge = format!("Authorization: Basic {}", "A".repeat(600 * 1024));
    let replies = send(gate.addr, &request("GET /calendars/alice/x HTTP/1.1", &["Host: dav.example", &huge])).await;
    if !matches!(&replies[..], [r] if r.status == 431 && r.body.is_empty() && r.header("www-authenticate").is_none()) {
        failures.push(format!("600 KiB value: {replies:?}"));
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(backend.count(), 0, "{:?}", backend.seen());
    // Control: the same password, sent once and well-formed, gets through.
    let control = request("GET /calendars/alice/x HTTP/1.1", &["Host: d", &format!("Authorization: {good}")]);
    assert_eq!(send(gate.addr, &control).await[0].status, 200);
    assert_eq!(backend.count(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn traversal_encoding_and_host_tricks_never_reach_the_backend_outside_the_scope() {
    let (backend, gate, _, good) = setup().await;
    let auth = format!("Authorization: {good}");
    // (request line, status, the exact path the backend sees if forwarded)
    let targets: &[(&str, u16, Option<&str>)] = &[
        // 400: dot segments, raw or percent-encoded, are refused, never resolved.
        ("GET /calendars/alice/../../files/alice/x HTTP/1.1", 400, None),
        ("GET /calendars/alice/%2e%2e/%2E%2E/files/alice/x HTTP/1.1", 400, None),
        // 200: double encoding decodes once to a literal "%2e%2e" name, which
        // stays inside /calendars/alice/; it is forwarded byte for byte.
        (
            "GET /calendars/alice/%252e%252e/%252e%252e/files/alice/x HTTP/1.1",
            200,
            Some("/calendars/alice/%252e%252e/%252e%252e/files/alice/x"),
        ),
        // 400: an encoded separator could be decoded by the backend before routing.
        ("GET /calendars/alice%2f..%2f..%2ffiles/alice/x HTTP/1.1", 400, None),
        // 400 from davgate (not hyper): httparse and http::Uri let a raw `\` through.
        ("GET /calendars/alice/..\\..\\files/alice/x HTTP/1.1", 400, None),
        ("GET /calendars/alice/..%5c..%5cfiles/alice/x HTTP/1.1", 400, None),
        // 403: empty segments are not collapsed, so these match no pattern.
        ("GET /calendars//alice/ HTTP/1.1", 403, None),
        ("GET //calendars/alice/ HTTP/1.1", 403, None),
        // 403: "//host/..." in origin-form is a path, not an authority.
        ("GET //evil.example/calendars/alice/ HTTP/1.1", 403, None),
        // 200: an empty segment below the prefix stays inside it however the
        // backend collapses it.
        ("GET /calendars/alice//x HTTP/1.1", 200, Some("/calendars/alice//x")),
        // 400: NUL, and overlong UTF-8 for "." (invalid UTF-8).
        ("GET /calendars/alice/%00/x HTTP/1.1", 400, None),
        ("GET /calendars/alice/%c0%ae%c0%ae/x HTTP/1.1", 400, None),
        // 400: Tomcat, Jetty and Spring strip ";params" from a segment before
        // resolving dots, so "..;" is ".." to them (/calendars/files/). The
        // design refuses what a backend could resolve differently.
        ("GET /calendars/alice/..;/files/ HTTP/1.1", 400, None),
        ("GET /calendars/alice/..;/..;/files/alice/ HTTP/1.1", 400, None),
        ("GET /calendars/alice/%2e%2e;x=1/..;/files/alice/ HTTP/1.1", 400, None),
        // 403: "alice;x=1" is not "alice"; refusing is the safe reading.
        ("GET /calendars/alice;x=1/ HTTP/1.1", 403, None),
        // Absolute-form is judged on its path; the backend gets origin-form.
        ("GET http://evil.example/files/alice/x HTTP/1.1", 403, None),
        ("GET http://evil.example/calendars/alice/x HTTP/1.1", 200, Some("/calendars/alice/x")),
        ("GET http://evil.example/calendars/alice/../../files/alice/x HTTP/1.1", 400, None),
        // 400: asterisk- and authority-form have no path to check.
        ("OPTIONS * HTTP/1.1", 400, None),
        ("CONNECT evil.example:443 HTTP/1.1", 400, None),
    ];
    let mut failures = Vec::new();
    for &(line, status, forwarded) in targets {
        let before = backend.count();
        let replies = send(gate.addr, &request(line, &["Host: dav.example", &auth])).await;
        let seen: Vec<String> = backend.seen()[before..].iter().map(|s| s.path.clone()).collect();
        let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
        if statuses != [status] || seen != forwarded.into_iter().collect::<Vec<_>>() {
            failures.push(format!("{line}: got {statuses:?}, backend saw {seen:?}"));
        }
    }
    // RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request with no
    // Host, more than one, or an invalid one (Host = uri-host [":" port]).
    // The target is in scope: only the Host is wrong.
    let hosts: &[&[&str]] = &[
        &[],
        &["Host: dav.example", "Host: evil.example"],
        &["Host: dav.example/files/alice"],
        &["Host: alice@evil.example"],
    ];
    for host in hosts {
        let before = backend.count();
        let headers: Vec<&str> = host.iter().copied().chain([auth.as_str()]).collect();
        let replies = send(gate.addr, &request("GET /calendars/alice/x HTTP/1.1", &headers)).await;
        let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
        if statuses != [400] || backend.count() != before {
            failures.push(format!("{host:?}: got {statuses:?}, backend saw {:?}", &backend.seen()[before..]));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Every client spelling of an identity header, each sent as `mallory`.
const FORGERIES: &[&str] =
    &["X-Remote-User", "x_remote_user", "X_REMOTE_USER", "Remote-User", "X-Forwarded-User", "X-Auth-Request-User"];

#[tokio::test(flavor = "multi_thread")]
async fn forged_identity_headers_leave_exactly_one_verified_identity_over_h1_and_h2() {
    let (backend, gate, _, good) = setup().await;
    let auth = format!("Authorization: {good}");
    let forged: Vec<String> = FORGERIES.iter().map(|n| format!("{n}: mallory")).collect();
    let mut h1: Vec<Vec<String>> = forged.iter().map(|f| vec![f.clone()]).collect();
    h1.push(forged.clone());
    let mut failures = Vec::new();
    for lines in &h1 {
        let before = backend.count();
        let mut headers = vec!["Host: dav.example", auth.as_str()];
        headers.extend(lines.iter().map(String::as_str));
        let replies = send(gate.addr, &request("GET /calendars/alice/x HTTP/1.1", &headers)).await;
        let seen = &backend.seen()[before..];
        let problem = match seen {
            [s] => identity_problem(s),
            _ => Some(format!("backend saw {} requests", seen.len())),
        };
        if replies.len() != 1 || replies[0].status != 200 || problem.is_some() {
            failures.push(format!("h1 {lines:?}: {replies:?} {problem:?}"));
        }
    }
    // Bare LF line endings: httparse accepts them, and the forgery is still stripped.
    let lf = format!("GET /calendars/alice/x HTTP/1.1\nHost: d\n{auth}\nX-Remote-User: mallory\nConnection: close\n\n");
    let replies = send(gate.addr, lf.as_bytes()).await;
    if replies.len() != 1 || replies[0].status != 200 || identity_problem(backend.seen().last().unwrap()).is_some() {
        failures.push(format!("bare LF: {replies:?}"));
    }
    // obs-fold (RFC 9112 §5.2): httparse rejects a line starting with SP or
    // HTAB in a request, so hyper answers 400 before davgate sees anything.
    let before = backend.count();
    for fold in ["X-Remote-User: alice\r\n mallory", "X-Remote-User:\r\n\tmallory", "x_remote_user: a\r\n mallory"] {
        let replies = send(gate.addr, &request("GET /calendars/alice/x HTTP/1.1", &["Host: d", &auth, fold])).await;
        if !matches!(&replies[..], [r] if r.status == 400 && r.body.is_empty()) || backend.count() != before {
            failures.push(format!("obs-fold {fold:?}: {replies:?}"));
        }
    }
    // HTTP/2: names arrive lowercased; each spelling alone, all of them, and a duplicate.
    let mut h2: Vec<Vec<&str>> = FORGERIES.iter().map(|n| vec![*n]).collect();
    h2.push(FORGERIES.to_vec());
    h2.push(vec!["x-remote-user", "x-remote-user"]);
    let client = Http::h2();
    for names in &h2 {
        let before = backend.count();
        let mut b = Request::builder().uri(gate.url("/calendars/alice/x")).header("authorization", &good);
        for name in names {
            b = b.header(HeaderName::from_bytes(name.as_bytes()).unwrap(), "mallory");
        }
        let reply = client.send(b.body(Full::new(Bytes::new())).unwrap()).await;
        let seen = &backend.seen()[before..];
        let problem = match seen {
            [s] => identity_problem(s),
            _ => Some(format!("backend saw {} requests", seen.len())),
        };
        if reply.status != 200 || reply.version != http::Version::HTTP_2 || problem.is_some() {
            failures.push(format!("h2 {names:?}: {} {problem:?}", reply.status));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn request_smuggling_shapes_are_refused_or_forwarded_as_exactly_one_request() {
    let (backend, gate, _, good) = setup().await;
    let head = format!("POST /calendars/alice/x HTTP/1.1\r\nHost: dav.example\r\nAuthorization: {good}\r\n");
    // Follow-up requests that a front end framing by the other header would
    // see as part of the body: each must be parsed and judged on its own.
    let anon = "GET /files/alice/smuggled HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n";
    let out_of_scope = format!("GET /files/alice/smuggled HTTP/1.1\r\nHost: d\r\nAuthorization: {good}\r\n\r\n");
    let in_scope = format!("GET /calendars/alice/smuggled HTTP/1.1\r\nHost: d\r\nAuthorization: {good}\r\n\r\n");
    // (name, framing headers and body, statuses on the connection, whether
    // the backend sees the POST with body "abc")
    let cases: Vec<(&str, String, &[u16], bool)> = vec![
        // 200: hyper frames by Transfer-Encoding alone, drops Content-Length,
        // and closes the connection after answering (RFC 9112 §6.1): even an
        // authenticated, in-scope follow-up is never read.
        (
            "CL + TE",
            format!("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n{CHUNKED_ABC}{in_scope}"),
            &[200],
            true,
        ),
        (
            "TE + CL",
            format!("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n{CHUNKED_ABC}{in_scope}"),
            &[200],
            true,
        ),
        // 400 (hyper): conflicting lengths, or a list, cannot be framed safely.
        ("two Content-Lengths", format!("Content-Length: 3\r\nContent-Length: 48\r\n\r\nabc{anon}"), &[400], false),
        ("Content-Length list", format!("Content-Length: 3, 48\r\n\r\nabc{anon}"), &[400], false),
        // 400 (hyper): chunked must be the final coding (RFC 9112 §6.3).
        (
            "TE chunked, identity",
            format!("Transfer-Encoding: chunked, identity\r\n\r\n{CHUNKED_ABC}{anon}"),
            &[400],
            false,
        ),
        // 200 then 401: hyper reads "identity, chunked" as chunked; the
        // backend gets a freshly framed chunked body, and the follow-up
        // without credentials is refused on its own.
        (
            "TE identity, chunked",
            format!("Transfer-Encoding: identity, chunked\r\n\r\n{CHUNKED_ABC}{anon}"),
            &[200, 401],
            true,
        ),
        // 400 (hyper): whitespace before the colon (RFC 9112 §5.1).
        (
            "TE with space before colon",
            format!("Transfer-Encoding : chunked\r\n\r\n{CHUNKED_ABC}{anon}"),
            &[400],
            false,
        ),
        // 400 (hyper): obs-fold, here hiding "chunked" from a CL-framing front end.
        (
            "obs-fold TE",
            format!("Content-Length: 3\r\nTransfer-Encoding: identity\r\n chunked\r\n\r\nabc{anon}"),
            &[400],
            false,
        ),
        ("obs-fold", format!("X-Note: a\r\n b\r\nContent-Length: 3\r\n\r\nabc{anon}"), &[400], false),
        // 400 (hyper): Transfer-Encoding does not exist in HTTP/1.0.
        ("HTTP/1.0 TE", format!("Transfer-Encoding: chunked\r\n\r\n{CHUNKED_ABC}"), &[400], false),
        // Chunked body, then a pipelined request: judged on its own.
        ("chunked + anonymous", format!("Transfer-Encoding: chunked\r\n\r\n{CHUNKED_ABC}{anon}"), &[200, 401], true),
        (
            "chunked + out of scope",
            format!("Transfer-Encoding: chunked\r\n\r\n{CHUNKED_ABC}{out_of_scope}{anon}"),
            &[200, 403, 401],
            true,
        ),
    ];
    let mut failures = Vec::new();
    for (name, rest, statuses, forwarded) in &cases {
        let before = backend.count();
        let head = if name.starts_with("HTTP/1.0") { head.replace("HTTP/1.1", "HTTP/1.0") } else { head.clone() };
        let replies = send(gate.addr, format!("{head}{rest}").as_bytes()).await;
        let got: Vec<u16> = replies.iter().map(|r| r.status).collect();
        let seen = &backend.seen()[before..];
        let hyper_refused = !forwarded && replies.iter().all(|r| r.body.is_empty());
        let ok = match seen {
            [] => !forwarded && hyper_refused,
            [s] => *forwarded && s.method == "POST" && s.body == "abc" && identity_problem(s).is_none(),
            _ => false,
        };
        if got != *statuses || !ok {
            failures.push(format!("{name}: got {got:?}, backend saw {seen:?}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
