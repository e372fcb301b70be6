//! A broken backend: down, dying mid-stream, resetting connections, slow.
//! Clients get a plain 502/504 (or, once a response has begun, a cut
//! connection), nothing leaks, and davgate recovers by itself.

mod common;

use common::{Gate, Http, Recorder, all};
use http_body_util::BodyExt;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A backend that answers each connection with `script` and then closes it.
async fn scripted_backend(script: &'static [u8]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else { continue };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = tcp.read(&mut buf).await;
                let _ = tcp.write_all(script).await;
                // Dropping closes the connection, mid-message if the script says so.
            });
        }
    });
    format!("http://{addr}")
}

/// Held by every test here for its whole run: the leak test measures this
/// process's memory, and another test's argon2 run (19 MiB) in its window
/// read as a leak when the machine was busy.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// This process's resident memory (davgate runs in it).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current().metrics().num_alive_tasks()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backend_that_closes_connections_gives_502_and_leaks_no_tasks_or_memory() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let upstream = scripted_backend(b"").await;
    let gate = Gate::start(&upstream).await;
    let pw = gate.password("alice", all()).await;
    let http = Http::h1();
    let r = http.get(&gate.url("/alice/"), "alice", &pw).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.text(), "the backend connection failed\n");
    // Warm up allocator and pools, then measure over many more failures.
    for _ in 0..200 {
        assert_eq!(http.get(&gate.url("/alice/"), "alice", &pw).await.status, 502);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (tasks_before, rss_before) = (alive_tasks(), rss_kib());
    for _ in 0..1000 {
        assert_eq!(http.get(&gate.url("/alice/"), "alice", &pw).await.status, 502);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (tasks_after, rss_after) = (alive_tasks(), rss_kib());
    assert!(
        tasks_after <= tasks_before + 5,
        "tasks grew from {tasks_before} to {tasks_after} over 1000 failed requests"
    );
    let growth = rss_after.saturating_sub(rss_before);
    assert!(growth < 4 * 1024, "memory grew by {growth} KiB over 1000 failed requests");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backend_dying_mid_response_cuts_the_client_off_instead_of_faking_success() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let upstream = scripted_backend(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\npartial body").await;
    let gate = Gate::start(&upstream).await;
    let pw = gate.password("alice", all()).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let req = http::Request::get(gate.url("/alice/big"))
        .header("authorization", common::client::basic("alice", &pw))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let res = client.request(req).await.unwrap();
    assert_eq!(res.status(), 200, "the status was already on its way");
    let body = res.into_body().collect().await;
    assert!(body.is_err(), "a truncated body must not look complete");
}

#[tokio::test(flavor = "multi_thread")]
async fn davgate_recovers_when_a_dead_backend_comes_back() {
    let _serial = ONE_AT_A_TIME.lock().await;
    // Down at start: nothing listens on the port.
    let port = common::backends::free_port();
    let gate = Gate::start(&format!("http://127.0.0.1:{port}")).await;
    let pw = gate.password("alice", all()).await;
    let http = Http::h1();
    let r = http.get(&gate.url("/alice/"), "alice", &pw).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.text(), "the backend is unreachable\n");
    // Up: requests flow.
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let backend = Recorder::serve(listener);
    assert_eq!(http.get(&gate.url("/alice/"), "alice", &pw).await.status, 200);
    assert_eq!(backend.count(), 1);
}
