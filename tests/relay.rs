//! The HTTP/1 relay: which requests it takes, what the backend and the
//! client get from it, and how it hands the rest to hyper.

mod common;

use common::client::{basic, read_response};
use common::gate::Extra;
use common::scripted::{Received, Reply, Scripted};
use common::{Gate, all};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

struct Setup {
    gate: Gate,
    backend: Scripted,
    auth: String,
}

async fn setup(script: impl Fn(&Received) -> Reply + Send + Sync + 'static) -> Setup {
    setup_with(Extra::default(), script).await
}

async fn setup_with(extra: Extra<'_>, script: impl Fn(&Received) -> Reply + Send + Sync + 'static) -> Setup {
    let backend = Scripted::start(script).await;
    let gate = Gate::start_with(&backend.url(), extra).await;
    let password = gate.password("alice", all()).await;
    Setup { gate, backend, auth: basic("alice", &password) }
}

impl Setup {
    fn relayed(&self) -> u64 {
        self.gate.app.metrics.relayed_requests.get()
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.gate.addr).await.unwrap()
    }

    /// A request head with our credentials and `extra` header lines.
    fn head(&self, method: &str, path: &str, extra: &str) -> String {
        format!("{method} {path} HTTP/1.1\r\nHost: dav.example\r\nAuthorization: {}\r\n{extra}\r\n", self.auth)
    }
}

/// Reads to the end of the connection (for a response that closes it).
async fn read_to_close(tcp: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), tcp.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_request_is_relayed_with_the_same_header_rules_as_hyper() {
    let s = setup(|_| {
        Reply::Send(
            b"HTTP/1.0 207 Multi-Status\r\nConnection: keep-alive, x-hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\n\
              Content-Length: 4\r\nETag: \"1\"\r\n\r\n<ok>"
                .to_vec(),
        )
    })
    .await;
    let forged = "X-Remote-User: mallory\r\nx_remote_user: mallory\r\nX-Forwarded-User: mallory\r\n\
                  X-Forwarded-For: 6.6.6.6\r\nX-Script-Name: /bob\r\nConnection: keep-alive\r\nKeep-Alive: 300\r\n\
                  TE: trailers\r\nDepth: 1\r\nUser-Agent: DAVx5/4.4\r\nContent-Length: 5\r\n";
    let mut tcp = s.connect().await;
    tcp.write_all(format!("{}hello", s.head("PROPFIND", "/alice/cal/?x=1", forged)).as_bytes()).await.unwrap();
    let (head, body) = read_response(&mut tcp).await.expect("a response");
    assert_eq!(s.relayed(), 1);

    assert!(head.starts_with("HTTP/1.1 207 Multi-Status\r\n"), "{head}");
    assert_eq!(body, b"<ok>");
    let lower = head.to_ascii_lowercase();
    for gone in ["x-hop", "keep-alive", "connection"] {
        assert!(!lower.contains(gone), "{gone} in {head}");
    }
    assert!(head.contains("ETag: \"1\""), "{head}");

    let seen = &s.backend.received()[0];
    assert_eq!(seen.request_line(), "PROPFIND /alice/cal/?x=1 HTTP/1.1");
    assert_eq!(seen.header("x-remote-user"), ["alice"]);
    assert!(!seen.head.contains("mallory") && !seen.head.contains('_'), "{}", seen.head);
    assert!(seen.header("authorization").is_empty());
    for gone in ["x-script-name", "connection", "keep-alive", "te"] {
        assert!(seen.header(gone).is_empty(), "{gone} reached the backend");
    }
    assert_eq!(seen.header("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(seen.header("x-forwarded-proto"), ["http"]);
    assert_eq!(seen.header("x-forwarded-host"), ["dav.example"]);
    assert_eq!(seen.header("host"), ["dav.example"]);
    assert_eq!(seen.header("depth"), ["1"]);
    assert_eq!(seen.header("user-agent"), ["DAVx5/4.4"]);
    assert_eq!(seen.body, b"hello");

    // The connection carries on through the relay.
    tcp.write_all(s.head("GET", "/alice/a", "").as_bytes()).await.unwrap();
    assert!(read_response(&mut tcp).await.is_some());
    assert_eq!(s.relayed(), 2);
}

/// Responses in every framing, one after the other on one client
/// connection: each must end exactly where the backend's ends.
#[tokio::test(flavor = "multi_thread")]
async fn every_response_framing_ends_where_the_backends_does() {
    let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                    5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
        .to_vec();
    let s = setup(move |r| match r.request_line().split(' ').nth(1).unwrap_or("") {
        "/chunked" => Reply::Pieces(chunked.clone(), 3),
        "/head" => Reply::Send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n".to_vec()),
        "/nocontent" => Reply::Send(b"HTTP/1.1 204 No Content\r\n\r\n".to_vec()),
        "/notmodified" => Reply::Send(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n".to_vec()),
        "/interim" => Reply::Send(
            b"HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nfin"
                .to_vec(),
        ),
        "/big" => Reply::Pieces(
            [b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n".as_slice(), &[b'b'; 100_000]].concat(),
            40_000,
        ),
        _ => Reply::Send(OK.to_vec()),
    })
    .await;
    let mut tcp = s.connect().await;

    tcp.write_all(s.head("GET", "/chunked", "").as_bytes()).await.unwrap();
    let want: &[u8] = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n";
    let got = read_until(&mut tcp, |got| head_end(got).is_some_and(|end| got.len() >= end + want.len())).await;
    let head_end = head_end(&got).unwrap();
    let head = String::from_utf8_lossy(&got[..head_end]).to_ascii_lowercase();
    assert!(head.contains("transfer-encoding: chunked") && !head.contains("content-length"), "{head}");
    assert_eq!(&got[head_end..], want, "the chunked body as sent, trailers included, and nothing more");

    tcp.write_all(s.head("HEAD", "/head", "").as_bytes()).await.unwrap();
    let (head, body) = read_head_only(&mut tcp).await;
    assert!(head.contains("Content-Length: 1000") && body.is_empty(), "{head}");

    for (path, status) in [("/nocontent", "204"), ("/notmodified", "304")] {
        tcp.write_all(s.head("GET", path, "").as_bytes()).await.unwrap();
        let (head, body) = read_head_only(&mut tcp).await;
        assert!(head.starts_with(&format!("HTTP/1.1 {status}")) && body.is_empty(), "{head}");
    }

    tcp.write_all(s.head("GET", "/interim", "").as_bytes()).await.unwrap();
    let (head, body) = read_response(&mut tcp).await.unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "interim responses are dropped: {head}");
    assert_eq!(body, b"fin");

    tcp.write_all(s.head("GET", "/big", "").as_bytes()).await.unwrap();
    let (_, body) = read_response(&mut tcp).await.unwrap();
    assert_eq!(body.len(), 100_000);

    tcp.write_all(s.head("GET", "/last", "").as_bytes()).await.unwrap();
    assert_eq!(read_response(&mut tcp).await.unwrap().1, b"ok");
    assert_eq!(s.relayed(), 7);
    let connections: std::collections::BTreeSet<usize> = s.backend.received().iter().map(|r| r.connection).collect();
    assert_eq!(connections.len(), 1, "one backend connection carried every exchange");
}

/// A head with no body however it is framed; anything after it would show
/// up as the start of the next read.
async fn read_head_only(tcp: &mut TcpStream) -> (String, Vec<u8>) {
    let got = read_until(tcp, |got| head_end(got).is_some()).await;
    let end = head_end(&got).unwrap();
    (String::from_utf8_lossy(&got[..end]).into_owned(), got[end..].to_vec())
}

/// Where the first head in `bytes` ends, if it is all there.
fn head_end(bytes: &[u8]) -> Option<usize> {
    bytes.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Reads until `done` says the bytes so far are enough; fails the test if
/// the connection ends first or nothing comes for 10 s.
async fn read_until(tcp: &mut TcpStream, done: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let mut got = Vec::new();
    while !done(&got) {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut chunk)).await.unwrap().unwrap();
        assert!(n > 0, "closed after {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&chunk[..n]);
    }
    got
}

/// A response without a length is read to the backend's close and sent on
/// chunked: the client's connection stays, and a body cut short would show.
/// One whose `Transfer-Encoding` does not end in chunked is passed on as it
/// is and ends with the connection.
#[tokio::test(flavor = "multi_thread")]
async fn a_response_read_to_the_close_is_sent_on_chunked() {
    let s = setup(|r| {
        if r.request_line().contains("/gzip") {
            Reply::SendAndClose(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzipped".to_vec())
        } else {
            Reply::SendAndClose(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end".to_vec())
        }
    })
    .await;
    let mut tcp = s.connect().await;
    tcp.write_all(s.head("GET", "/a", "").as_bytes()).await.unwrap();
    let want = "\r\n\r\nd\r\nuntil the end\r\n0\r\n\r\n";
    let got = read_until(&mut tcp, |got| got.ends_with(want.as_bytes())).await;
    let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 200 ok\r\n") && text.contains("transfer-encoding: chunked\r\n"), "{text}");
    assert!(!text.contains("connection: close"), "{text}");
    tcp.write_all(s.head("GET", "/gzip", "").as_bytes()).await.unwrap();
    let text = read_to_close(&mut tcp).await;
    assert!(text.contains("Transfer-Encoding: gzip\r\n") && text.ends_with("\r\n\r\nzipped"), "{text}");
    assert!(text.to_ascii_lowercase().contains("connection: close"), "{text}");
}

/// `Connection` may name other fields to drop, but never the ones that
/// frame the body the relay passes on as it is.
#[tokio::test(flavor = "multi_thread")]
async fn connection_cannot_drop_the_fields_that_frame_the_body() {
    let s = setup(|_| {
        Reply::Send(
            b"HTTP/1.1 200 OK\r\nConnection: content-length, x-hop\r\nX-Hop: 1\r\nContent-Length: 2\r\n\r\nok".to_vec(),
        )
    })
    .await;
    let mut tcp = s.connect().await;
    for _ in 0..2 {
        tcp.write_all(s.head("GET", "/a", "").as_bytes()).await.unwrap();
        let (head, body) = read_response(&mut tcp).await.expect("a framed response");
        assert!(head.contains("Content-Length: 2") && !head.contains("X-Hop"), "{head}");
        assert_eq!(body, b"ok");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pipelined_requests_are_answered_in_order() {
    let s = setup(|r| {
        let path = r.request_line().split(' ').nth(1).unwrap_or("").to_string();
        Reply::Send(format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{path}", path.len()).into_bytes())
    })
    .await;
    let mut tcp = s.connect().await;
    let three =
        [s.head("GET", "/one", ""), s.head("PUT", "/two", "Content-Length: 3\r\n"), s.head("GET", "/three", "")];
    tcp.write_all(format!("{}{}abc{}", three[0], three[1], three[2]).as_bytes()).await.unwrap();
    // The answers may come in one read: read them all, then split them.
    let want = ["/one", "/two", "/three"]
        .map(|path| format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{path}", path.len()))
        .concat();
    let got = read_until(&mut tcp, |got| got.len() >= want.len()).await;
    assert_eq!(String::from_utf8_lossy(&got), want);
    assert_eq!(s.relayed(), 3);
    assert_eq!(s.backend.received()[1].body, b"abc");
}

/// Requests a parser could read two ways, and the other unusual ones, go to
/// hyper as they came; hyper answers them as it always has, and the
/// connection stays hyper's.
#[tokio::test(flavor = "multi_thread")]
async fn requests_outside_the_relays_subset_go_to_hyper_unchanged() {
    let s = setup(|_| Reply::Send(OK.to_vec())).await;
    // (what, request, status, whether the connection stays open)
    let cases: Vec<(&str, String, u16, bool)> = vec![
        // hyper reads the body as chunked and closes after (RFC 9112 §6.1).
        (
            "Content-Length with Transfer-Encoding",
            s.head("POST", "/a", "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n") + "0\r\n\r\n",
            200,
            false,
        ),
        ("two Content-Lengths", s.head("PUT", "/a", "Content-Length: 1\r\nContent-Length: 2\r\n") + "ab", 400, false),
        ("a chunked body", s.head("PUT", "/a", "Transfer-Encoding: chunked\r\n") + "3\r\nabc\r\n0\r\n\r\n", 200, true),
        ("a body over 64 KiB", s.head("PUT", "/a", "Content-Length: 70000\r\n") + &"x".repeat(70_000), 200, true),
        ("HTTP/1.0", s.head("GET", "/a", "").replacen("HTTP/1.1", "HTTP/1.0", 1), 200, false),
        ("absolute form", s.head("GET", "http://dav.example/a", ""), 200, true),
        ("an odd target", s.head("GET", "/a{b}", ""), 200, true),
        ("two Hosts", s.head("GET", "/a", "Host: other.example\r\n"), 400, true),
        ("a Connection-named header", s.head("GET", "/a", "Connection: x-hop\r\nX-Hop: 1\r\n"), 200, true),
        ("an obs-fold", s.head("GET", "/a", "X-Folded: a\r\n b\r\n"), 400, false),
    ];
    for (what, request, status, keeps) in cases {
        let before = s.relayed();
        let mut tcp = s.connect().await;
        tcp.write_all(request.as_bytes()).await.unwrap();
        let answer = read_response(&mut tcp).await.unwrap_or_else(|| panic!("{what}: no answer"));
        assert_eq!(common::raw_status(&answer.0), status, "{what}: {}", answer.0);
        assert_eq!(s.relayed(), before, "{what} was relayed");
        if !keeps {
            let mut rest = [0u8; 64];
            let read = tokio::time::timeout(std::time::Duration::from_secs(10), tcp.read(&mut rest)).await;
            assert!(matches!(read, Ok(Ok(0))), "{what}: the connection stays open");
        } else {
            // Later requests on the connection stay with hyper.
            tcp.write_all(s.head("GET", "/next", "").as_bytes()).await.unwrap();
            assert_eq!(common::raw_status(&read_response(&mut tcp).await.unwrap().0), 200, "{what}");
            assert_eq!(s.relayed(), before, "{what}: the next request was relayed");
        }
    }
    let bodies: Vec<usize> = s.backend.received().iter().map(|r| r.body.len()).collect();
    assert!(bodies.contains(&3) && bodies.contains(&70_000), "{bodies:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_are_answered_by_the_relay_and_keep_the_connection() {
    let s = setup(|_| Reply::Send(OK.to_vec())).await;
    let mut tcp = s.connect().await;
    let wrong =
        "GET /a HTTP/1.1\r\nHost: dav.example\r\nAuthorization: Basic YWxpY2U6d3Jvbmc=\r\nContent-Length: 3\r\n\r\nabc";
    tcp.write_all(wrong.as_bytes()).await.unwrap();
    let (head, body) = read_response(&mut tcp).await.unwrap();
    assert!(head.starts_with("HTTP/1.1 401 Unauthorized\r\n"), "{head}");
    assert!(head.to_ascii_lowercase().contains("www-authenticate: basic realm="), "{head}");
    assert!(!head.to_ascii_lowercase().contains("connection: close"), "{head}");
    // As hyper dates its answers (RFC 9110 §6.6.1: a server with a clock must).
    let date = head.lines().find_map(|l| l.strip_prefix("date: ")).unwrap_or_else(|| panic!("no Date: {head}"));
    let dated = httpdate::parse_http_date(date).unwrap();
    assert!(std::time::SystemTime::now().duration_since(dated).unwrap().as_secs() < 60, "{date}");
    assert_eq!(body, b"authentication required\n");

    tcp.write_all(b"HEAD /a HTTP/1.1\r\nHost: dav.example\r\n\r\n").await.unwrap();
    let (head, body) = read_head_only(&mut tcp).await;
    assert!(head.starts_with("HTTP/1.1 401") && body.is_empty(), "no body to a HEAD: {head}");

    tcp.write_all(s.head("GET", "/a", "Connection: close\r\n").as_bytes()).await.unwrap();
    let text = read_to_close(&mut tcp).await;
    assert!(
        text.starts_with("HTTP/1.1 200 OK\r\n") && text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
    assert_eq!(s.relayed(), 3);
    assert_eq!(s.backend.received().len(), 1, "only the authenticated request reached the backend");
}

/// The backend closes a kept connection just as the next request goes out:
/// a GET is sent again on a new connection; a request that may write (a
/// PUT, a POST) never is.
#[tokio::test(flavor = "multi_thread")]
async fn a_kept_connection_closed_unanswered_is_retried_only_for_reads() {
    let s = setup(|r| match r.index {
        0 => Reply::Send(OK.to_vec()),
        // Reset or closed: either way the kept connection is gone.
        _ if r.connection % 2 == 0 => Reply::Reset,
        _ => Reply::Close,
    })
    .await;
    let mut tcp = s.connect().await;
    for (method, status) in [("GET", 200), ("PUT", 502), ("POST", 502)] {
        tcp.write_all(s.head("GET", "/warm", "").as_bytes()).await.unwrap();
        assert_eq!(common::raw_status(&read_response(&mut tcp).await.unwrap().0), 200);
        tcp.write_all(s.head(method, "/then", "Content-Length: 0\r\n").as_bytes()).await.unwrap();
        let (head, _) = read_response(&mut tcp).await.unwrap();
        assert_eq!(common::raw_status(&head), status, "{method}: {head}");
    }
    for method in ["PUT", "POST"] {
        let sent = s.backend.received().iter().filter(|r| r.request_line().starts_with(method)).count();
        assert_eq!(sent, 1, "the {method} reached the backend once");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_backend_response_is_a_502_with_a_reason() {
    let s = setup(|r| {
        if r.request_line().contains("/cl") {
            Reply::Send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok".to_vec())
        } else {
            Reply::Send(b"NOT HTTP\r\n\r\n".to_vec())
        }
    })
    .await;
    for path in ["/cl", "/garbage"] {
        let mut tcp = s.connect().await;
        tcp.write_all(s.head("GET", path, "").as_bytes()).await.unwrap();
        let (head, body) = read_response(&mut tcp).await.unwrap();
        assert_eq!(common::raw_status(&head), 502, "{path}: {head}");
        assert_eq!(body, b"the backend connection failed\n");
    }
}

/// A backend that stops mid-body gets `upstream.timeout` to go on; a client
/// that stops reading gets the idle timeout. Either way the connection ends
/// rather than holding its place (and the backend's socket) for good.
#[tokio::test(flavor = "multi_thread")]
async fn a_response_that_stalls_either_way_ends_its_connection() {
    let extra = Extra { server: "idle_timeout = \"1s\"", upstream: "timeout = \"1s\"", ..Extra::default() };
    let s = setup_with(extra, |r| {
        if r.request_line().contains("/stall") {
            Reply::Stall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc".to_vec())
        } else {
            let body = vec![b'x'; 64 << 20];
            Reply::Send(
                [format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes(), &body].concat(),
            )
        }
    })
    .await;
    let mut tcp = s.connect().await;
    tcp.write_all(s.head("GET", "/stall", "").as_bytes()).await.unwrap();
    let started = Instant::now();
    let text = read_to_close(&mut tcp).await;
    assert!(text.ends_with("\r\n\r\nabc"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(8), "closed after {:?}", started.elapsed());

    let mut idle = s.connect().await;
    idle.write_all(s.head("GET", "/huge", "").as_bytes()).await.unwrap();
    // Never read: davgate's writes wait, then the idle timeout ends them.
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.backend.received().len() < 2 {
        assert!(Instant::now() < deadline, "the request did not reach the backend");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(s.gate.app.metrics.connections.get(), 1);
    while s.gate.app.metrics.connections.get() > 0 {
        assert!(Instant::now() < deadline, "the connection is still open");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(idle);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_response_framed_both_ways_is_passed_on_and_its_connection_not_reused() {
    let s = setup(|r| {
        if r.connection == 0 {
            Reply::Send(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n2\r\nok\r\n0\r\n\r\n"
                    .to_vec(),
            )
        } else {
            Reply::Send(OK.to_vec())
        }
    })
    .await;
    let mut tcp = s.connect().await;
    for framed_both_ways in [true, false] {
        tcp.write_all(s.head("GET", "/a", "").as_bytes()).await.unwrap();
        let (head, _) = read_head_only(&mut tcp).await;
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        let length = head.to_ascii_lowercase().contains("content-length");
        assert_eq!(length, !framed_both_ways, "Transfer-Encoding wins over Content-Length: {head}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut rest = [0u8; 256];
        let _ = tokio::time::timeout(Duration::from_millis(200), tcp.read(&mut rest)).await;
    }
    let connections: Vec<usize> = s.backend.received().iter().map(|r| r.connection).collect();
    assert_eq!(connections, [0, 1], "the second request went on a new backend connection");
}
