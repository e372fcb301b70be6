//! Forwarding: identity header, hop-by-hop rules, `X-Forwarded-*`,
//! `Expect: 100-continue`, upstream failures, TLS both ways.

mod common;

use bytes::Bytes;
use common::gate::Extra;
use common::{Gate, Http, Recorder, all, raw, raw_status};
use http::Request;
use http_body_util::Full;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Every spelling a client might use to pick an identity.
const FORGERIES: &[&str] = &[
    "X-Remote-User",
    "x-remote-user",
    "X_Remote_User",
    "x_remote_user",
    "X-REMOTE-USER",
    "X-Remote_User",
    "Remote-User",
    "Remote_User",
    "X-Forwarded-User",
    "X-Auth-Request-User",
    "X-Authenticated-User",
];

fn forged_request(url: &str, auth: &str) -> Request<Full<Bytes>> {
    let mut b = Request::builder().uri(url).header("authorization", auth);
    for name in FORGERIES {
        b = b.header(*name, "mallory");
    }
    b.body(Full::new(Bytes::new())).unwrap()
}

fn assert_only_verified_identity(seen: &common::recorder::Seen) {
    assert_eq!(seen.headers.get_all("x-remote-user").iter().collect::<Vec<_>>(), vec!["alice"]);
    for (name, value) in &seen.headers {
        assert_ne!(value, "mallory", "{name} reached the backend");
        assert!(!name.as_str().contains('_'), "{name} reached the backend");
    }
    assert!(!seen.headers.contains_key("authorization"));
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_identity_headers_never_reach_the_backend_over_h1_and_h2() {
    let backend = Recorder::start().await;
    let gate = Gate::start(&backend.url()).await;
    let pw = gate.password("alice", all()).await;
    let auth = common::client::basic("alice", &pw);
    for http in [Http::h1(), Http::h2()] {
        let r = http.send(forged_request(&gate.url("/alice/x"), &auth)).await;
        assert_eq!(r.status, 200);
    }
    let seen = backend.seen();
    assert_eq!(seen.len(), 2);
    seen.iter().for_each(assert_only_verified_identity);
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarding_headers_are_set_and_hop_by_hop_headers_removed_both_ways() {
    let backend = Recorder::start().await;
    let gate = Gate::start(&backend.url()).await;
    let pw = gate.password("alice", all()).await;
    let http = Http::h1();
    let r = http
        .call(
            "PROPFIND",
            &gate.url("/alice/?q=1"),
            Some(("alice", &pw)),
            &[
                ("connection", "x-client-hop"),
                ("x-client-hop", "1"),
                ("x-forwarded-for", "6.6.6.6"),
                ("x-forwarded-host", "evil.example"),
                ("depth", "1"),
                ("host", "dav.example:8443"),
            ],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["x-backend"], "recorder");
    assert!(!r.headers.contains_key("x-backend-hop"), "hop-by-hop from the backend removed");
    let seen = &backend.seen()[0];
    assert_eq!(seen.method, "PROPFIND");
    assert_eq!(seen.path, "/alice/");
    assert!(!seen.headers.contains_key("x-client-hop"));
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1", "a client's X-Forwarded-For is not trusted");
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    assert_eq!(seen.headers["x-forwarded-host"], "dav.example:8443");
    assert_eq!(seen.headers["host"], "dav.example:8443", "Host is kept so Destination headers stay valid");
    assert_eq!(seen.headers["depth"], "1");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_upstream_host_can_replace_the_clients() {
    let backend = Recorder::start().await;
    let gate = Gate::start_with(&backend.url(), Extra { upstream: "preserve_host = false", ..Extra::default() }).await;
    let pw = gate.password("alice", all()).await;
    let r = Http::h1().call("GET", &gate.url("/a"), Some(("alice", &pw)), &[("host", "other-vhost.example")]).await;
    assert_eq!(r.status, 200);
    let seen = &backend.seen()[0];
    assert_eq!(seen.headers["host"], backend.addr.to_string());
    assert_eq!(seen.headers["x-forwarded-host"], "other-vhost.example");
}

#[tokio::test(flavor = "multi_thread")]
async fn trusted_proxy_supplies_client_address_and_proto() {
    let backend = Recorder::start().await;
    let extra = Extra { server: "trusted_proxies = [\"127.0.0.1/32\"]", ..Extra::default() };
    let gate = Gate::start_with(&backend.url(), extra).await;
    let pw = gate.password("alice", all()).await;
    let r = Http::h1()
        .call(
            "GET",
            &gate.url("/a"),
            Some(("alice", &pw)),
            &[("x-forwarded-for", "198.51.100.7, 127.0.0.1"), ("x-forwarded-proto", "https")],
        )
        .await;
    assert_eq!(r.status, 200);
    let seen = &backend.seen()[0];
    assert_eq!(seen.headers["x-forwarded-for"], "198.51.100.7");
    assert_eq!(seen.headers["x-forwarded-proto"], "https");
}

#[tokio::test(flavor = "multi_thread")]
async fn expect_continue_upload_is_refused_unread_without_credentials_and_works_with_them() {
    let backend = Recorder::start().await;
    let gate = Gate::start(&backend.url()).await;
    let pw = gate.password("alice", all()).await;
    // Unauthenticated: the 401 comes without any body having been sent.
    let head = "PUT /alice/big.ics HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\nExpect: 100-continue\r\n";
    let response = raw(gate.addr, format!("{head}Connection: close\r\n\r\n").as_bytes()).await;
    assert_eq!(raw_status(&response), 401, "{response}");
    assert_eq!(backend.count(), 0);

    let mut tcp = tokio::net::TcpStream::connect(gate.addr).await.unwrap();
    let auth = common::client::basic("alice", &pw);
    let head = format!(
        "PUT /alice/e.ics HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 256];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), tcp.read(&mut buf)).await.unwrap().unwrap();
    let interim = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(interim.starts_with("HTTP/1.1 100 Continue"), "{interim}");
    tcp.write_all(b"hello").await.unwrap();
    let mut rest = Vec::new();
    tcp.read_to_end(&mut rest).await.unwrap();
    let rest = String::from_utf8_lossy(&rest);
    let all_text = format!("{interim}{rest}");
    assert!(all_text.contains("HTTP/1.1 200 OK"), "{all_text}");
    let seen = backend.seen();
    assert_eq!(seen[0].body.as_ref(), b"hello");
    assert!(!seen[0].headers.contains_key("expect"));
}

/// A PROPFIND body, as the caldav library sends after its unauthenticated
/// first try.
const PROPFIND_BODY: &[u8] =
    b"<?xml version=\"1.0\"?><propfind xmlns=\"DAV:\"><prop><current-user-principal/></prop></propfind>";

/// Writes `head`, then `body` 50 ms later: urllib3 (under niquests and the
/// caldav library) sends a request's head and body in two writes.
async fn head_then_body(gate: &Gate, head: &str, body: &[u8]) -> tokio::net::TcpStream {
    let mut tcp = tokio::net::TcpStream::connect(gate.addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    tcp.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    if !body.is_empty() {
        tcp.write_all(body).await.unwrap();
    }
    tcp
}

fn says_close(head: &str) -> bool {
    head.lines().any(|l| l.to_ascii_lowercase().replace(' ', "") == "connection:close")
}

/// Whether the server closes `tcp` (within 10 s) rather than leaving it open.
async fn closes(tcp: &mut tokio::net::TcpStream) -> bool {
    let mut rest = Vec::new();
    matches!(tokio::time::timeout(std::time::Duration::from_secs(10), tcp.read_to_end(&mut rest)).await, Ok(Ok(0)))
}

/// davgate answers 401 or 403 itself, before the client has sent the body.
/// hyper would then close the connection after the answer without saying
/// so, and a client sending its next request on it would lose that request
/// ("Remote end closed connection without response", the caldav library's
/// auth negotiation). The small body is read first; the connection stays
/// usable. So it does after a forwarded request whose body came late.
#[tokio::test(flavor = "multi_thread")]
async fn a_request_refused_before_its_body_arrived_leaves_the_connection_usable() {
    let backend = Recorder::start().await;
    let gate = Gate::start(&backend.url()).await;
    let pw = gate.password("alice", all()).await;
    let reader = gate.password("alice", davgate::gateway::scope::Scope { read_only: true, ..all() }).await;
    let length = PROPFIND_BODY.len();
    let requests = [
        (format!("PROPFIND /alice/ HTTP/1.1\r\nHost: x\r\nDepth: 0\r\nContent-Length: {length}\r\n\r\n"), 401),
        (
            format!(
                "PUT /alice/e.ics HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Length: {length}\r\n\r\n",
                common::client::basic("alice", &reader)
            ),
            403,
        ),
        // Forwarded: the backend reads the whole body, so no reason to close.
        (
            format!(
                "PUT /alice/e.ics HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Length: {length}\r\n\r\n",
                common::client::basic("alice", &pw)
            ),
            200,
        ),
    ];
    let next =
        format!("GET /alice/ HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n\r\n", common::client::basic("alice", &pw));
    for (head, status) in requests {
        let mut tcp = head_then_body(&gate, &head, PROPFIND_BODY).await;
        let (answer, _) = common::client::read_response(&mut tcp).await.expect("no answer");
        assert_eq!(raw_status(&answer), status, "{answer}");
        assert!(!says_close(&answer), "{answer}");
        const CLOSED: &str = "the connection was closed after an answer that did not say so";
        tcp.write_all(next.as_bytes()).await.expect(CLOSED);
        let (answer, _) = common::client::read_response(&mut tcp).await.expect(CLOSED);
        assert_eq!(raw_status(&answer), 200, "{answer}");
    }
    assert_eq!(backend.count(), 4, "the PUT and the GETs were forwarded, nothing else");
    let put = backend.seen().into_iter().find(|seen| seen.method == "PUT").unwrap();
    assert_eq!(put.body.as_ref(), PROPFIND_BODY);
}

/// A body davgate will not wait for: one behind `Expect: 100-continue`
/// (never asked for), one longer than it drains, one that does not come.
/// The answer says `Connection: close`, and the connection is closed.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_request_whose_body_is_not_read_is_answered_with_connection_close() {
    let backend = Recorder::start().await;
    let gate = Gate::start(&backend.url()).await;
    let requests = [
        ("PUT /alice/big.ics HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\nExpect: 100-continue\r\n\r\n", &b""[..]),
        ("PUT /alice/big.ics HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n", &[b'x'; 4096][..]),
        ("PROPFIND /alice/ HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n", &b""[..]),
        ("PUT /alice/e.ics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", &b"5\r\nhello\r\n"[..]),
    ];
    for (head, body) in requests {
        let mut tcp = head_then_body(&gate, head, body).await;
        let (answer, _) = common::client::read_response(&mut tcp).await.expect("no answer");
        assert_eq!(raw_status(&answer), 401, "{head}: {answer}");
        assert!(says_close(&answer), "{head}: {answer}");
        assert!(closes(&mut tcp).await, "{head}: the connection stayed open");
    }
    assert_eq!(backend.count(), 0);
}

/// A backend that answers `403` from the head alone and closes without
/// reading the body (Radicale refuses a PUT this way): the client's body
/// is not all read when the answer goes out, so the answer either says
/// `Connection: close` or the connection takes the next request.
#[tokio::test(flavor = "multi_thread")]
async fn a_backend_answer_before_the_body_arrived_does_not_strand_the_next_request() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && matches!(tcp.read(&mut byte).await, Ok(1)) {
                    head.push(byte[0]);
                }
                if head.starts_with(b"PUT") {
                    let _ = tcp
                        .write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .await;
                } else {
                    let _ = tcp.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok").await;
                }
            });
        }
    });
    let gate = Gate::start(&format!("http://{backend}")).await;
    let pw = gate.password("alice", all()).await;
    let auth = common::client::basic("alice", &pw);
    for length in [4096, 256 * 1024] {
        let head = format!(
            "PUT /alice/e.ics HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Length: {length}\r\n\r\n"
        );
        let mut tcp = head_then_body(&gate, &head, &vec![b'x'; length]).await;
        let (answer, _) = common::client::read_response(&mut tcp).await.expect("no answer");
        assert_eq!(raw_status(&answer), 403, "{answer}");
        if says_close(&answer) {
            assert!(closes(&mut tcp).await, "{length}: the connection stayed open");
        } else {
            const CLOSED: &str = "the connection was closed after an answer that did not say so";
            let next = format!("GET /alice/ HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n");
            tcp.write_all(next.as_bytes()).await.expect(CLOSED);
            let (answer, _) = common::client::read_response(&mut tcp).await.expect(CLOSED);
            assert_eq!(raw_status(&answer), 200, "{length}: {answer}");
        }
    }
}

/// The backend cannot be reached. A body hyper has not read (a chunked
/// one) was never sent on, so the client's connection is closed, and the
/// answer says so. A small body with a length was read whole by the relay
/// before it sent the request: that connection stays usable.
#[tokio::test(flavor = "multi_thread")]
async fn a_forward_that_failed_with_a_body_unsent_says_connection_close() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let gate = Gate::start(&format!("http://{dead}")).await;
    let pw = gate.password("alice", all()).await;
    let head = |framing: &str| {
        format!(
            "PUT /alice/e.ics HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n{framing}\r\n\r\n",
            common::client::basic("alice", &pw)
        )
    };
    let chunked = [format!("{:x}\r\n", PROPFIND_BODY.len()).as_bytes(), PROPFIND_BODY, b"\r\n0\r\n\r\n"].concat();
    let mut tcp = head_then_body(&gate, &head("Transfer-Encoding: chunked"), &chunked).await;
    let (answer, _) = common::client::read_response(&mut tcp).await.expect("no answer");
    assert_eq!(raw_status(&answer), 502, "{answer}");
    assert!(says_close(&answer), "{answer}");
    assert!(closes(&mut tcp).await, "the connection stayed open");

    let with_length = head(&format!("Content-Length: {}", PROPFIND_BODY.len()));
    let mut tcp = head_then_body(&gate, &with_length, PROPFIND_BODY).await;
    for _ in 0..2 {
        let (answer, _) = common::client::read_response(&mut tcp).await.expect("no answer");
        assert_eq!(raw_status(&answer), 502, "{answer}");
        assert!(!says_close(&answer), "{answer}");
        tcp.write_all(&[with_length.as_bytes(), PROPFIND_BODY].concat()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_upstream_gives_504_with_a_reason() {
    let backend = Recorder::start().await;
    let gate = Gate::start_with(&backend.url(), Extra { upstream: "timeout = \"1s\"", ..Extra::default() }).await;
    let pw = gate.password("alice", all()).await;
    let r = Http::h1().get(&gate.url("/slow/x"), "alice", &pw).await;
    assert_eq!(r.status, 504);
    assert_eq!(r.text(), "the backend did not answer in time\n");
}

fn self_signed() -> (String, String) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    (cert.cert.pem(), cert.key_pair.serialize_pem())
}

fn server_tls(cert_pem: &str, key_pem: &str) -> Arc<rustls::ServerConfig> {
    use rustls_pki_types::pem::PemObject;
    let certs = vec![rustls_pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap()];
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let mut c = rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(certs, key).unwrap();
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(c)
}

#[tokio::test(flavor = "multi_thread")]
async fn https_upstream_with_a_custom_ca_file() {
    davgate::server::tls::install_crypto_provider();
    let (cert, key) = self_signed();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &cert).unwrap();
    // A TLS terminator in front of a recording backend.
    let backend = Recorder::start().await;
    let tls_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tls_port = tls_listener.local_addr().unwrap().port();
    let acceptor = tokio_rustls::TlsAcceptor::from(server_tls(&cert, &key));
    let backend_addr = backend.addr;
    tokio::spawn(async move {
        loop {
            let (tcp, _) = tls_listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let mut plain = tokio::net::TcpStream::connect(backend_addr).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                }
            });
        }
    });
    let ca_line = format!("ca_file = \"{}\"", ca.display());
    let extra = Extra { upstream: &ca_line, ..Extra::default() };
    let gate = Gate::start_with(&format!("https://localhost:{tls_port}"), extra).await;
    let pw = gate.password("alice", all()).await;
    let r = Http::h1().get(&gate.url("/alice/tls"), "alice", &pw).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(backend.seen()[0].path, "/alice/tls");

    // Without the CA file the same backend is not trusted.
    let untrusting = Gate::start(&format!("https://localhost:{tls_port}")).await;
    let pw = untrusting.password("alice", all()).await;
    assert_eq!(Http::h1().get(&untrusting.url("/alice/tls"), "alice", &pw).await.status, 502);
}

/// A gate whose listener speaks TLS with a new self-signed certificate
/// (returned, PEM); its files live in the gate's own temp dir.
async fn tls_gate(upstream: &str) -> (Gate, String) {
    davgate::server::tls::install_crypto_provider();
    let (cert, key) = self_signed();
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("cert.pem"), &cert).unwrap();
    std::fs::write(files.path().join("key.pem"), &key).unwrap();
    let server_extra = format!(
        "[server.tls]\ncert = \"{}\"\nkey = \"{}\"",
        files.path().join("cert.pem").display(),
        files.path().join("key.pem").display()
    );
    let gate = Gate::start_with(upstream, Extra { server: &server_extra, ..Extra::default() }).await;
    // The files are read at start-up; the acceptor holds what it needs.
    drop(files);
    (gate, cert)
}

/// A client config that trusts only `cert` (PEM).
fn trusting(cert: &str) -> rustls::ClientConfig {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls_pki_types::CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()).unwrap();
    rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth()
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_listener_speaks_h2_and_http11_by_alpn() {
    let backend = Recorder::start().await;
    let (gate, cert) = tls_gate(&backend.url()).await;
    let pw = gate.password("alice", all()).await;

    let tls = trusting(&cert);
    for h2 in [true, false] {
        // ALPN offers only the protocol under test.
        let https = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls.clone()).https_only();
        let https = if h2 { https.enable_http2().build() } else { https.enable_http1().build() };
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(h2)
            .build::<_, Full<Bytes>>(https);
        let req = Request::builder()
            .uri(format!("https://localhost:{}/alice/h", gate.addr.port()))
            .header("authorization", common::client::basic("alice", &pw))
            .header("x_remote_user", "mallory")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let res = client.request(req).await.unwrap();
        assert_eq!(res.status(), 200);
        let expected = if h2 { http::Version::HTTP_2 } else { http::Version::HTTP_11 };
        assert_eq!(res.version(), expected);
    }
    let seen = backend.seen();
    assert_eq!(seen.len(), 2);
    for s in &seen {
        assert_eq!(s.headers["x-forwarded-proto"], "https");
        assert_only_verified_identity(s);
    }
}

/// An answer over TLS reaches a client that reads late, whole, on a
/// connection kept open for the next request. What the connection does
/// not take yet waits inside rustls (up to 64 KiB of records) until the
/// stream is flushed; a relay that never flushed left the end of such an
/// answer there until the connection timed out. The connection here is
/// an in-memory pipe of a known 64 KiB, so an answer of 96 KiB fills it
/// and leaves the rest with rustls.
#[tokio::test(flavor = "multi_thread")]
async fn an_answer_over_tls_reaches_a_client_that_reads_late_whole_on_a_kept_connection() {
    let backend = Recorder::start().await;
    let (gate, cert) = tls_gate(&backend.url()).await;
    let pw = gate.password("alice", all()).await;

    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let acceptor = gate.app.live.tls.as_ref().unwrap().load_full();
    let gateway = gate.app.live.gateways[0].load_full();
    let (_stop, mut shutdown) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(async move {
        let tls = acceptor.accept(server_io).await.unwrap();
        let peer = davgate::gateway::Peer { addr: ([127, 0, 0, 1], 9).into(), tls: true };
        let served = davgate::gateway::relay::serve(
            tls,
            bytes::BytesMut::new(),
            move || gateway.clone(),
            peer,
            &mut shutdown,
            std::time::Duration::from_secs(30),
        );
        matches!(served.await, Ok(davgate::gateway::relay::Relayed::Done))
    });

    let connector = tokio_rustls::TlsConnector::from(Arc::new(trusting(&cert)));
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, client_io).await.unwrap();
    let total = 96 * 1024;
    let auth = common::client::basic("alice", &pw);
    let request = format!("GET /download?bytes={total} HTTP/1.1\r\nHost: localhost\r\nAuthorization: {auth}\r\n\r\n");
    tls.write_all(request.as_bytes()).await.unwrap();
    // Not read yet: davgate writes until the pipe is full.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut got = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while !got.ends_with(b"\r\n0\r\n\r\n") {
            let n = tls.read(&mut buf).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            got.extend_from_slice(&buf[..n]);
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
    assert!(matches!(read, Ok(Ok(()))), "{read:?} after {} bytes of more than {total}", got.len());
    assert!(got.starts_with(b"HTTP/1.1 200 ") && got.len() > total, "{}", got.len());
    assert_eq!(gate.app.metrics.relayed_requests.get(), 1, "the relay answered");
    tls.shutdown().await.unwrap();
    assert!(server.await.unwrap(), "the relay ends when the client does");
}
