//! The test backends and client flows work on their own, without davgate:
//! if these fail, a failing gateway test says nothing about davgate.

#[path = "common/backends.rs"]
mod backends;

use std::io::{Read, Write};
use std::net::TcpStream;

use backends::{Radicale, WsgiDav, litmus, parse_litmus, run_python};

/// One HTTP/1.1 request with `Connection: close`; returns (status, body).
fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).expect("write request");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read response");
    let status = resp.split(' ').nth(1).and_then(|c| c.parse().ok()).expect("status line");
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

fn assert_flow(out: std::process::Output, log: &str) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "flow failed ({})\nstdout:\n{stdout}\nstderr:\n{}\nbackend log:\n{log}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn radicale_caldav_flow_direct() {
    let rad = Radicale::start();
    let out = run_python("caldav_flow.py", &[&rad.url, "alice", "unused", "--header", "X-Remote-User:alice"]);
    assert_flow(out, &rad.log());
}

#[test]
fn radicale_carddav_flow_direct() {
    let rad = Radicale::start();
    let args = [rad.url.as_str(), "alice", "unused", "/alice/contacts/", "--header", "X-Remote-User:alice"];
    assert_flow(run_python("carddav_flow.py", &args), &rad.log());
    // Second run finds the address book the first one created.
    assert_flow(run_python("carddav_flow.py", &args), &rad.log());
}

#[test]
fn radicale_needs_the_header() {
    let rad = Radicale::start();
    let propfind = |headers: &[(&str, &str)]| http(rad.port, "PROPFIND", "/alice/", headers, "").0;
    assert_eq!(propfind(&[("Depth", "0"), ("X-Remote-User", "alice")]), 207);
    assert_eq!(propfind(&[("Depth", "0")]), 403); // 403, never 401
    assert_eq!(propfind(&[("Depth", "0"), ("X-Remote-User", "bob")]), 403); // owner_only
}

#[test]
fn wsgidav_trusts_the_header() {
    let dav = WsgiDav::start();
    let alice = [("X-Remote-User", "alice")];
    assert_eq!(http(dav.port, "PUT", "/hello.txt", &alice, "hello").0, 201);
    assert_eq!(http(dav.port, "GET", "/hello.txt", &alice, ""), (200, "hello".to_string()));
    assert_eq!(std::fs::read_to_string(dav.root().join("hello.txt")).unwrap(), "hello");

    assert_eq!(http(dav.port, "GET", "/hello.txt", &[], "").0, 401);
    assert_eq!(http(dav.port, "PUT", "/other.txt", &[], "x").0, 401);
    assert!(!dav.root().join("other.txt").exists());
    // Basic for the placeholder simple_dc user must not get in either.
    let basic = [("Authorization", "Basic dW51c2VkLWRhdmdhdGUtdGVzdDo=")]; // unused-davgate-test:
    assert_eq!(http(dav.port, "GET", "/hello.txt", &basic, "").0, 401);
}

#[test]
fn wsgidav_basic_user() {
    let dav = WsgiDav::start_with_basic_user("litmus", "secret");
    let good = [("Authorization", "Basic bGl0bXVzOnNlY3JldA==")]; // litmus:secret
    assert_eq!(http(dav.port, "PUT", "/a.txt", &good, "a").0, 201);
    assert_eq!(http(dav.port, "GET", "/a.txt", &[], "").0, 401);
    // No trusted header in this mode.
    assert_eq!(http(dav.port, "GET", "/a.txt", &[("X-Remote-User", "litmus")], "").0, 401);
}

#[test]
fn litmus_baseline_against_wsgidav() {
    let dav = WsgiDav::start_with_basic_user("litmus", "secret");
    let r = litmus(&format!("{}/", dav.url), "litmus", "secret");
    println!("litmus baseline: {} passed, {} failed, {} aborted: {:?}", r.passed, r.failed, r.aborted, r.suites);
    assert!(r.failed == 0 && r.aborted == 0 && r.passed >= 104, "{}\nserver log:\n{}", r.output, dav.log());
    assert_eq!(r.suites.len(), 5, "{}", r.output);
}

#[test]
fn litmus_parser_counts_aborted_suites() {
    // Shape of litmus 0.13 output when `begin` fails hard, then a clean suite.
    let out = "-> running `basic':\n\
        \r 0. init.................. \r 0. init.................. pass\n\
        \r 1. begin................. \r 1. begin................. FAIL (Could not create new collection `/x/litmus/' for tests: 403 Forbidden\n\
        Server must allow `MKCOL /x/litmus/' for tests to proceed)\n\
        <- summary for `basic': of 2 tests run: 1 passed, 1 failed. 50.0%\n\
        -> running `http':\n\
        \r 0. init.................. \r 0. init.................. pass\n\
        \r 3. finish................ \r 3. finish................ pass\n\
        <- summary for `http': of 4 tests run: 4 passed, 0 failed. 100.0%\n\
        -> running `locks':\n\
        \r 0. init.................. \r 0. init..................";
    let r = parse_litmus(out.to_string());
    assert_eq!((r.passed, r.failed, r.aborted), (5, 1, 2), "{r:?}");
    assert_eq!(r.suites, vec![("basic".to_string(), 1, 1), ("http".to_string(), 4, 0)]);
}
