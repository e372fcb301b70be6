//! The listener: timeouts, graceful shutdown, upstream pooling.

mod common;

use bytes::Bytes;
use common::binary::Setup;
use common::gate::Extra;
use common::{Gate, Http, Recorder, all};
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let backend = Recorder::start().await;
    let gate =
        Gate::start_with(&backend.url(), Extra { server: "header_read_timeout = \"1s\"", ..Extra::default() }).await;
    let mut tcp = tokio::net::TcpStream::connect(gate.addr).await.unwrap();
    tcp.write_all(b"GET /alice/ HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "the connection stayed open");
    assert!(started.elapsed() >= Duration::from_millis(900), "closed before the timeout: {:?}", started.elapsed());
    assert_eq!(backend.count(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_does_not_wait_for_connections_that_sent_nothing() {
    let backend = Recorder::start().await;
    let server = "shutdown_grace = \"30s\"\nidle_timeout = \"60s\"";
    let gate = Gate::start_with(&backend.url(), Extra { server, ..Extra::default() }).await;
    let pw = gate.password("alice", all()).await;
    // One connection that never sends a byte, one idle after a request.
    let _silent = tokio::net::TcpStream::connect(gate.addr).await.unwrap();
    let mut idle = tokio::net::TcpStream::connect(gate.addr).await.unwrap();
    let auth = common::client::basic("alice", &pw);
    idle.write_all(format!("GET /alice/ HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = [0u8; 12];
    idle.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    // Both connections are being served (not still in the accept queue).
    let deadline = Instant::now() + Duration::from_secs(5);
    while gate.app.metrics.connections.get() < 2 {
        assert!(Instant::now() < deadline, "the silent connection was never accepted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), gate.stop()).await.expect("shutdown waited for quiet connections");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_sends_nothing_or_dribbles_the_http2_preface_is_disconnected() {
    let backend = Recorder::start().await;
    let server = "header_read_timeout = \"1s\"\nidle_timeout = \"60s\"";
    let gate = Gate::start_with(&backend.url(), Extra { server, ..Extra::default() }).await;
    let silent = tokio::net::TcpStream::connect(gate.addr).await.unwrap();
    let mut dribbling = tokio::net::TcpStream::connect(gate.addr).await.unwrap();
    let started = Instant::now();
    let dribble = async move {
        // Each byte is activity for the idle timeout; only the header-read
        // timeout ends this.
        for byte in b"PRI * HTTP/2.0\r\n\r\nSM\r" {
            if dribbling.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        dribbling
    };
    for mut tcp in [silent, dribble.await] {
        let mut buf = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut buf)).await;
        assert!(closed.is_ok(), "the connection stayed open");
    }
    assert!(started.elapsed() >= Duration::from_millis(900), "closed before the timeout: {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_http2_connection_is_closed_after_the_idle_timeout() {
    let backend = Recorder::start().await;
    let gate = Gate::start_with(&backend.url(), Extra { server: "idle_timeout = \"1s\"", ..Extra::default() }).await;
    let pw = gate.password("alice", all()).await;
    let tcp = tokio::net::TcpStream::connect(gate.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)).await.unwrap();
    let conn = tokio::spawn(conn);
    let req = http::Request::get(gate.url("/alice/"))
        .header("authorization", common::client::basic("alice", &pw))
        .body(Empty::<Bytes>::new())
        .unwrap();
    assert_eq!(sender.send_request(req).await.unwrap().status(), 200);
    let started = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(10), conn).await;
    assert!(ended.is_ok(), "the idle connection stayed open");
    assert!(started.elapsed() >= Duration::from_millis(900), "{:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_connections_are_pooled() {
    let backend = Recorder::start().await;
    let gate = Gate::start(&backend.url()).await;
    let pw = gate.password("alice", all()).await;
    let http = Http::h1();
    for _ in 0..50 {
        assert_eq!(http.get(&gate.url("/alice/"), "alice", &pw).await.status, 200);
    }
    let opened = backend.connections.load(std::sync::atomic::Ordering::SeqCst);
    assert!(opened <= 2, "50 sequential requests opened {opened} upstream connections");
}

/// A keep-alive backend that closes each connection shortly after its
/// answer (its own idle timeout, shorter than ours): the closed connection
/// is noticed in the pool and never used, so no request fails.
async fn backend_closing_idle_connections(accepted: Arc<AtomicUsize>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else { continue };
            accepted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = tcp.read(&mut buf).await;
                let _ = tcp.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pooled_connection_the_backend_closed_is_not_reused() {
    let accepted = Arc::new(AtomicUsize::new(0));
    let upstream = backend_closing_idle_connections(accepted.clone()).await;
    let gate = Gate::start(&upstream).await;
    let pw = gate.password("alice", all()).await;
    let http = Http::h1();
    for _ in 0..10 {
        let r = http.get(&gate.url("/alice/"), "alice", &pw).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "ok");
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 10, "each request needed a new backend connection");
}

/// A backend that answers the first request on a connection, then reads the
/// next one and closes without answering; counts the requests it received.
async fn backend_dropping_the_second_request(received: Arc<AtomicUsize>, accepted: Arc<AtomicUsize>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            accepted.fetch_add(1, Ordering::SeqCst);
            let received = received.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                let mut answered = false;
                while let Ok(n @ 1..) = tcp.read(&mut buf).await {
                    seen.extend_from_slice(&buf[..n]);
                    let heads = seen.windows(11).filter(|w| w == b" HTTP/1.1\r\n").count();
                    if heads >= 1 && !answered {
                        received.fetch_add(1, Ordering::SeqCst);
                        answered = true;
                        tcp.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await.unwrap();
                    }
                    if heads >= 2 {
                        received.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_the_backend_received_is_never_sent_twice() {
    let (received, accepted) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let upstream = backend_dropping_the_second_request(received.clone(), accepted.clone()).await;
    let gate = Gate::start(&upstream).await;
    let pw = gate.password("alice", all()).await;
    let http = Http::h1();
    assert_eq!(http.get(&gate.url("/alice/"), "alice", &pw).await.status, 200);
    // Sent on the pooled connection, received, and never answered.
    let put = http::Request::put(gate.url("/alice/x.ics"))
        .header("authorization", common::client::basic("alice", &pw))
        .body(http_body_util::Full::new(Bytes::from_static(b"BEGIN:VCALENDAR")))
        .unwrap();
    let r = http.send(put).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.text(), "the backend connection failed\n");
    assert_eq!(received.load(Ordering::SeqCst), 2, "the PUT was not repeated");
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "no second connection was opened for it");
}

/// Names of the threads of process `pid`.
fn thread_names(pid: u32) -> Vec<String> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    tasks.map(|t| std::fs::read_to_string(t.unwrap().path().join("comm")).unwrap().trim().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_worker_is_a_serving_thread_of_its_own() {
    let backend = Recorder::start().await;
    let setup = Setup::new(&backend.url());
    let text = std::fs::read_to_string(&setup.config).unwrap();
    std::fs::write(&setup.config, text.replace("[upstream]", "workers = 3\n[upstream]")).unwrap();
    let (_, pw) = setup.user_with_password("alice");
    let server = setup.serve();
    // Many connections at once, whichever worker takes each: all served.
    let requests = (0..24).map(|_| {
        let (url, pw) = (server.url("/alice/"), pw.clone());
        tokio::spawn(async move { Http::h1().get(&url, "alice", &pw).await.status })
    });
    for request in requests.collect::<Vec<_>>() {
        assert_eq!(request.await.unwrap(), 200);
    }
    let mut workers: Vec<String> =
        thread_names(server.pid()).into_iter().filter(|name| name.starts_with("davgate-w")).collect();
    workers.sort();
    assert_eq!(workers, ["davgate-w0", "davgate-w1", "davgate-w2"]);
    server.terminate();
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_in_flight_requests_finish_and_refuses_new_connections() {
    let backend = Recorder::start().await;
    let setup = Setup::new(&backend.url());
    let (_, pw) = setup.user_with_password("alice");
    let server = setup.serve();
    let url = server.url("/slow/in-flight");
    let in_flight = tokio::spawn(async move { Http::h1().get(&url, "alice", &pw).await });
    // Wait until the backend holds the request, then ask davgate to stop.
    while backend.count() == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.sigterm();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", server.port)).await.is_err(), "no new connections");
    let reply = in_flight.await.unwrap();
    assert_eq!(reply.status, 200, "the in-flight request finished");
    let log = server.terminate();
    assert!(log.contains("shutting down"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn backend_failures_are_logged_with_a_plain_reason() {
    let port = common::backends::free_port();
    let setup = Setup::new(&format!("http://127.0.0.1:{port}"));
    let (_, pw) = setup.user_with_password("alice");
    let server = setup.serve();
    let reply = Http::h1().get(&server.url("/alice/"), "alice", &pw).await;
    assert_eq!(reply.status, 502);
    assert_eq!(reply.text(), "the backend is unreachable\n");
    let log = server.terminate();
    assert!(log.contains("backend unreachable"), "{log}");
    assert!(!log.contains(&pw), "no password in the log");
}

/// Open files this process may have (soft limit), from /proc.
fn open_file_limit() -> usize {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    line.split_whitespace().nth(3).and_then(|n| n.parse().ok()).unwrap_or(1024)
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_over_the_limit_get_a_clear_503() {
    let backend = Recorder::start().await;
    // The limit is one count across every worker thread.
    let server = "max_connections = 20\nworkers = 4";
    let gate = Gate::start_with(&backend.url(), Extra { server, ..Extra::default() }).await;
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(tokio::net::TcpStream::connect(gate.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let reply = common::raw(gate.addr, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert!(reply.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{reply}");
    assert!(reply.ends_with("too many connections; try again\n"), "{reply}");
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pw = gate.password("alice", all()).await;
    assert_eq!(Http::h1().get(&gate.url("/"), "alice", &pw).await.status, 200, "slots come back");
}

#[tokio::test(flavor = "multi_thread")]
async fn thousands_of_idle_and_slow_connections_do_not_stop_valid_requests() {
    let backend = Recorder::start().await;
    let gate = Gate::start(&backend.url()).await;
    let pw = gate.password("alice", all()).await;
    let http = Http::h1();
    assert_eq!(http.get(&gate.url("/"), "alice", &pw).await.status, 200);
    // Both ends of every connection live in this process.
    let count = 3000.min(open_file_limit().saturating_sub(300) / 2);
    let mut held = Vec::with_capacity(count);
    for i in 0..count {
        let mut tcp = tokio::net::TcpStream::connect(gate.addr).await.unwrap();
        if i % 2 == 0 {
            // Slowloris: headers begun, never finished.
            tcp.write_all(b"GET /alice/ HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
        }
        held.push(tcp);
    }
    let started = Instant::now();
    for _ in 0..20 {
        assert_eq!(Http::h1().get(&gate.url("/alice/"), "alice", &pw).await.status, 200);
    }
    println!("{count} idle/slow connections held; 20 valid requests in {:?}", started.elapsed());
    assert_eq!(backend.count(), 21, "no slow request reached the backend");
}

#[tokio::test(flavor = "multi_thread")]
async fn http2_clients_are_limited_to_128_concurrent_streams() {
    let backend = Recorder::start().await;
    let gate = Gate::start(&backend.url()).await;
    let pw = gate.password("alice", all()).await;
    let tcp = tokio::net::TcpStream::connect(gate.addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    // One exchange makes sure the server's SETTINGS have arrived.
    let req = http::Request::get(gate.url("/alice/"))
        .header("authorization", common::client::basic("alice", &pw))
        .body(())
        .unwrap();
    let (response, _) = client.send_request(req, true).unwrap();
    assert_eq!(response.await.unwrap().status(), 200);
    assert_eq!(client.current_max_send_streams(), 128);
}
