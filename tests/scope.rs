//! Scope enforcement end to end: nothing out of scope, and no traversal
//! trick, ever reaches the backend.

mod common;

use common::{Gate, Http, Recorder, all, raw, raw_status, services};
use davgate::gateway::scope::Scope;

async fn raw_get(gate: &Gate, user: &str, pw: &str, target: &str) -> u16 {
    let auth = common::client::basic(user, pw);
    let req = format!("GET {target} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n");
    raw_status(&raw(gate.addr, req.as_bytes()).await)
}

#[tokio::test(flavor = "multi_thread")]
async fn traversal_and_encoding_tricks_are_refused_and_never_forwarded() {
    let backend = Recorder::start().await;
    let gate = Gate::start(&backend.url()).await;
    let caldav = gate.password("alice", services(&["caldav"])).await;
    let everything = gate.password("alice", all()).await;
    let tricks = [
        "/calendars/alice/../../files/alice/secret",
        "/calendars/alice/%2e%2e/%2e%2e/files/alice/secret",
        "/calendars/alice/%2E%2E/bob/",
        "/calendars/alice%2f..%2f..%2ffiles/alice/",
        "/calendars/alice/..%5c..%5cfiles",
        "/calendars/alice/..\\..\\files",
        "/calendars/alice/%00/x",
        "/calendars/alice/./x",
        "/calendars/alice/%c0%ae%c0%ae/x",
        "/calendars/alice/%zz",
    ];
    for target in tricks {
        for pw in [&caldav, &everything] {
            let status = raw_get(&gate, "alice", pw, target).await;
            assert_eq!(status, 400, "{target}");
        }
    }
    assert_eq!(backend.count(), 0, "{:?}", backend.seen());
}

#[tokio::test(flavor = "multi_thread")]
async fn service_scope_allows_its_tree_and_discovery_and_nothing_else() {
    let backend = Recorder::start().await;
    let gate = Gate::start(&backend.url()).await;
    let pw = gate.password("alice", services(&["caldav"])).await;
    let http = Http::h1();
    let auth = Some(("alice", pw.as_str()));
    for (method, path, status) in [
        ("PROPFIND", "/.well-known/caldav", 200),
        ("PROPFIND", "/", 200),
        ("PROPFIND", "/principals/alice/", 200),
        ("REPORT", "/calendars/alice/work/", 200),
        ("PUT", "/calendars/alice/work/e.ics", 200),
        ("DELETE", "/calendars/alice/work/e.ics", 200),
        ("GET", "/files/alice/secret.txt", 403),
        ("PUT", "/addressbooks/alice/book/c.vcf", 403),
        ("PROPPATCH", "/principals/alice/", 403),
        ("GET", "/calendars/bob/", 403),
        ("GET", "/index.html", 403),
    ] {
        let r = http.call(method, &gate.url(path), auth, &[("depth", "1")]).await;
        assert_eq!(r.status, status, "{method} {path}: {}", r.text());
        if status == 403 {
            assert_eq!(r.text(), "this path is outside the app password's scope\n");
        }
    }
    // Discovery is for finding collections, not for listing the server.
    let r = http.call("PROPFIND", &gate.url("/"), auth, &[]).await;
    assert_eq!(
        (r.status.as_u16(), r.text().as_str()),
        (403, "discovery paths allow PROPFIND with Depth 0 or 1 only\n")
    );
    assert_eq!(http.call("PROPFIND", &gate.url("/"), auth, &[("depth", "infinity")]).await.status, 403);
    let forwarded: Vec<String> = backend.seen().iter().map(|s| s.path.clone()).collect();
    assert!(forwarded.iter().all(|p| !p.starts_with("/files") && !p.starts_with("/addressbooks")), "{forwarded:?}");
    assert_eq!(forwarded.len(), 6);
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_and_move_destinations_are_checked() {
    let backend = Recorder::start().await;
    let gate = Gate::start(&backend.url()).await;
    let pw = gate.password("alice", services(&["caldav"])).await;
    let http = Http::h1();
    let auth = Some(("alice", pw.as_str()));
    let src = gate.url("/calendars/alice/work/e.ics");
    let inside = gate.url("/calendars/alice/home/e.ics");
    let outside = gate.url("/files/alice/e.ics");
    let sneaky = gate.url("/calendars/alice/%2e%2e/%2e%2e/files/alice/e.ics");
    assert_eq!(http.call("MOVE", &src, auth, &[("destination", &inside)]).await.status, 200);
    assert_eq!(http.call("COPY", &src, auth, &[("destination", &outside)]).await.status, 403);
    assert_eq!(http.call("MOVE", &src, auth, &[("destination", "/files/alice/e.ics")]).await.status, 403);
    assert_eq!(http.call("MOVE", &src, auth, &[("destination", &sneaky)]).await.status, 400);
    assert_eq!(http.call("MOVE", &src, auth, &[]).await.status, 400);
    assert_eq!(backend.count(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn read_only_password_cannot_write() {
    let backend = Recorder::start().await;
    let gate = Gate::start(&backend.url()).await;
    let pw = gate.password("alice", Scope { read_only: true, ..Scope::default() }).await;
    let http = Http::h1();
    let auth = Some(("alice", pw.as_str()));
    for m in ["GET", "HEAD", "OPTIONS", "PROPFIND", "REPORT"] {
        assert_eq!(http.call(m, &gate.url("/alice/cal/"), auth, &[]).await.status, 200, "{m}");
    }
    for m in ["PUT", "DELETE", "MKCOL", "MKCALENDAR", "PROPPATCH", "POST", "LOCK"] {
        let r = http.call(m, &gate.url("/alice/cal/x"), auth, &[]).await;
        assert_eq!(r.status, 403, "{m}");
        assert_eq!(r.text(), "this app password is read-only\n");
    }
    let dest = gate.url("/alice/cal/y");
    assert_eq!(http.call("COPY", &gate.url("/alice/cal/x"), auth, &[("destination", &dest)]).await.status, 403);
    assert_eq!(backend.count(), 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn collection_scope_limits_a_password_to_one_calendar() {
    let backend = Recorder::start().await;
    let gate = Gate::start(&backend.url()).await;
    let scope = Scope { collections: vec!["/calendars/alice/work/".into()], ..Scope::default() };
    let pw = gate.password("alice", scope).await;
    let http = Http::h1();
    let auth = Some(("alice", pw.as_str()));
    assert_eq!(http.call("PUT", &gate.url("/calendars/alice/work/e.ics"), auth, &[]).await.status, 200);
    assert_eq!(http.call("PUT", &gate.url("/calendars/alice/home/e.ics"), auth, &[]).await.status, 403);
    assert_eq!(http.call("PROPFIND", &gate.url("/calendars/alice/"), auth, &[]).await.status, 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn source_networks_refuse_other_clients() {
    let backend = Recorder::start().await;
    let gate = Gate::start(&backend.url()).await;
    let elsewhere = gate.password("alice", Scope { networks: vec!["192.0.2.0/24".parse().unwrap()], ..all() }).await;
    let loopback = gate.password("alice", Scope { networks: vec!["127.0.0.0/8".parse().unwrap()], ..all() }).await;
    let http = Http::h1();
    let r = http.get(&gate.url("/alice/"), "alice", &elsewhere).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.text(), "this app password is not allowed from your network\n");
    assert_eq!(http.get(&gate.url("/alice/"), "alice", &loopback).await.status, 200);
    assert_eq!(backend.count(), 1);
}
