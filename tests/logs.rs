//! The access log: one line per gateway request, with what an operator
//! needs and never a secret; JSON lines with `[log] format = "json"`.

mod common;

use common::binary::Setup;
use common::{Http, Recorder};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread")]
async fn every_request_gets_one_json_access_line_naming_user_password_id_and_status() {
    let backend = Recorder::start().await;
    let setup = Setup::with_sections(&backend.url(), "[log]\nformat = \"json\"\n");
    let (id, password) = setup.user_with_password("alice");
    let server = setup.serve_with_log("info");
    let http = Http::h1();
    let ok = http
        .call("PUT", &server.url("/files/alice/a.txt?secret=1"), Some(("alice", &password)), &[("user-agent", "t")])
        .await;
    assert_eq!(ok.status, 200);
    assert_eq!(http.get(&server.url("/alice/x"), "alice", "wrong").await.status, 401);
    assert_eq!(http.call("GET", &server.url("/alice/x"), None, &[]).await.status, 401);
    let download = http.get(&server.url("/download?bytes=1000"), "alice", &password).await;
    assert_eq!(download.body.len(), 1000);
    // A password typed into the user field, and a path with a line separator.
    let typo = "abcde-fghjk-mnpqr-stuvw-xyz23";
    assert_eq!(http.get(&server.url("/alice/y"), typo, "x").await.status, 401);
    let raw_path = "GET /alice/a\u{2028}b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    assert!(common::raw(([127, 0, 0, 1], server.port).into(), raw_path.as_bytes()).await.starts_with("HTTP/1.1 401"));
    // HEAD refusals: HTTP/1.1 on the relay, HTTP/1.0 on hyper.
    for head in ["HEAD /alice/h11 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "HEAD /alice/h10 HTTP/1.0\r\n\r\n"]
    {
        let answer = common::raw(([127, 0, 0, 1], server.port).into(), head.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.") && answer[8..].starts_with(" 401 "), "{answer}");
    }
    // A client that leaves before its whole body is in.
    let mut cut = tokio::net::TcpStream::connect(("127.0.0.1", server.port)).await.unwrap();
    let auth = common::client::basic("alice", &password);
    let head = format!("PUT /alice/cut HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Length: 10\r\n\r\nabc");
    tokio::io::AsyncWriteExt::write_all(&mut cut, head.as_bytes()).await.unwrap();
    tokio::io::AsyncWriteExt::shutdown(&mut cut).await.unwrap();
    let _ = tokio::io::AsyncReadExt::read_to_end(&mut cut, &mut Vec::new()).await;
    // The plain requests were the relay's; the one with a raw separator
    // in its path and the HTTP/1.0 one hyper's: both write the same lines.
    let metrics = b"GET /metrics HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n";
    let metrics = common::client::raw_unix(&setup.socket(), metrics).await;
    assert!(metrics.lines().any(|l| l == "davgate_relayed_requests_total 7"), "{metrics}");
    let log = server.terminate();
    assert!(!log.contains(typo) && !log.contains(&typo.to_uppercase()), "a password in the user field is never logged");
    assert!(log.contains("<redacted: looks like a password>"));
    assert_eq!(log.lines().filter(|l| l.contains("/alice/a\u{2028}b")).count(), 1, "still one JSON line");

    let lines: Vec<Value> =
        log.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    let access: Vec<&Value> = lines.iter().filter(|l| l["target"] == "davgate::access").collect();
    assert_eq!(access.len(), 9, "one line per request:\n{log}");
    let put = access.iter().find(|l| l["method"] == "PUT").unwrap();
    assert_eq!(put["path"], "/files/alice/a.txt", "the path without its query");
    assert_eq!(put["status"], 200);
    assert_eq!(put["upstream_status"], "200");
    assert_eq!(put["user"], "alice");
    assert_eq!(put["password_id"], id.as_str());
    assert_eq!(put["ip"], "127.0.0.1");
    assert_eq!(put["outcome"], "ok");
    assert!(put["duration_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(put["bytes"], "PUT /files/alice/a.txt 0\n".len(), "a body framed by Content-Length");
    let refused: Vec<&&Value> = access.iter().filter(|l| l["status"] == 401).collect();
    assert_eq!(refused.len(), 6);
    assert!(refused.iter().all(|l| l["upstream_status"] == "-" && l["password_id"] == "-"));
    assert!(refused.iter().all(|l| l["outcome"] == "unauthenticated" && l["complete"] == true), "{refused:?}");
    for l in &refused {
        let body = if l["method"] == "HEAD" { 0 } else { "authentication required\n".len() };
        assert_eq!(l["bytes"], body, "{l}");
    }
    let cut = access.iter().find(|l| l["path"] == "/alice/cut").unwrap();
    assert_eq!(
        (&cut["status"], &cut["outcome"], &cut["complete"]),
        (&400.into(), &"bad_request".into(), &false.into())
    );
    assert_eq!(cut["user"], "alice");
    let get = access.iter().find(|l| l["path"] == "/download").unwrap();
    assert_eq!(get["bytes"], 1000, "bytes counts the body sent");
    assert_eq!(get["complete"], true);
    assert!(!log.contains(&password) && !log.contains("secret=1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_access_log_can_be_switched_off() {
    let backend = Recorder::start().await;
    // By the config, or by the filter (davgate writes access lines itself).
    for (sections, filter) in [("[log]\naccess = false\n", "info"), ("", "info,davgate::access=off")] {
        let setup = Setup::with_sections(&backend.url(), sections);
        let (_, password) = setup.user_with_password("alice");
        let server = setup.serve_with_log(filter);
        assert_eq!(Http::h1().get(&server.url("/alice/x"), "alice", &password).await.status, 200);
        let log = server.terminate();
        assert!(log.contains("davgate ready") && !log.contains("davgate::access"), "{filter}: {log}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn compact_access_lines_escape_line_separators_in_paths() {
    let backend = Recorder::start().await;
    let setup = Setup::new(&backend.url());
    let server = setup.serve_with_log("info");
    let request = "GET /alice/a\u{2028}FAKE\u{85}b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    assert!(common::raw(([127, 0, 0, 1], server.port).into(), request.as_bytes()).await.starts_with("HTTP/1.1 401"));
    let log = server.terminate();
    assert!(log.contains("davgate::access"), "{log}");
    assert!(!log.contains('\u{2028}') && !log.contains('\u{85}'), "escaped:\n{log}");
}

/// The relay's lines when the backend fails: with no answer (a 502 of
/// davgate's own) and in the middle of a body (the backend's status, the
/// bytes that got through, not complete).
#[tokio::test(flavor = "multi_thread")]
async fn a_failing_backend_is_logged_as_it_failed() {
    use common::scripted::{Received, Reply, Scripted};
    let backend = Scripted::start(|r: &Received| {
        if r.head.starts_with("GET /cut ") {
            Reply::SendAndClose(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789".to_vec())
        } else {
            Reply::Close
        }
    })
    .await;
    let setup = Setup::with_sections(&backend.url(), "[log]\nformat = \"json\"\n");
    let (id, password) = setup.user_with_password("alice");
    let server = setup.serve_with_log("info");
    let auth = common::client::basic("alice", &password);
    for path in ["/cut", "/gone"] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n");
        common::raw(([127, 0, 0, 1], server.port).into(), request.as_bytes()).await;
    }
    let log = server.terminate();
    let lines: Vec<Value> = log.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let line = |path: &str| lines.iter().find(|l| l["target"] == "davgate::access" && l["path"] == path).cloned();
    let cut = line("/cut").unwrap_or_else(|| panic!("{log}"));
    assert_eq!((&cut["status"], &cut["upstream_status"], &cut["outcome"]), (&200.into(), &"200".into(), &"ok".into()));
    assert_eq!(
        (&cut["bytes"], &cut["complete"], &cut["password_id"]),
        (&10.into(), &false.into(), &id.as_str().into())
    );
    let gone = line("/gone").unwrap_or_else(|| panic!("{log}"));
    assert_eq!((&gone["status"], &gone["upstream_status"]), (&502.into(), &"-".into()));
    assert_eq!((&gone["outcome"], &gone["complete"]), (&"upstream_error".into(), &true.into()));
}

/// A request outside its password's scope, refused by the relay: the
/// line names the password (it was verified) and the 403.
#[tokio::test(flavor = "multi_thread")]
async fn a_refusal_for_scope_names_the_password() {
    let backend = Recorder::start().await;
    let setup = Setup::with_sections(&backend.url(), "[log]\nformat = \"json\"\n");
    let _ = setup.run(&["user", "add", "alice"]);
    let out = setup.ok(&["password", "create", "alice", "--name", "reader", "--read-only", "--json"]);
    let created: Value = serde_json::from_str(&out).unwrap();
    let (id, password) = (created["id"].as_str().unwrap(), created["password"].as_str().unwrap());
    let server = setup.serve_with_log("info");
    let auth = common::client::basic("alice", password);
    let put = format!(
        "PUT /alice/a.ics HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"
    );
    let answer = common::raw(([127, 0, 0, 1], server.port).into(), put.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    let log = server.terminate();
    let lines: Vec<Value> = log.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let line = lines.iter().find(|l| l["target"] == "davgate::access").unwrap_or_else(|| panic!("{log}"));
    assert_eq!(
        (&line["status"], &line["outcome"], &line["upstream_status"]),
        (&403.into(), &"forbidden_scope".into(), &"-".into())
    );
    assert_eq!((&line["user"], &line["password_id"], &line["complete"]), (&"alice".into(), &id.into(), &true.into()));
    assert!(backend.seen.lock().unwrap().is_empty(), "the PUT never reached the backend");
}

/// Polls `file` until `done` holds for its text, for at most `within`.
fn wait_for_text(file: &std::path::Path, within: std::time::Duration, done: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + within;
    loop {
        let text = std::fs::read_to_string(file).unwrap();
        if done(&text) || std::time::Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Access lines wait in a batch per thread (`[log] access_flush`, as
/// nginx's `buffer=`/`flush=`): out before any other line, so the log
/// keeps its order, when the batch is full, and at shutdown.
#[tokio::test(flavor = "multi_thread")]
async fn access_lines_wait_in_a_batch_that_goes_out_before_other_lines_and_at_shutdown() {
    let backend = Recorder::start().await;
    let setup = Setup::with_sections(&backend.url(), "[log]\naccess_flush = \"60s\"\n");
    let (_, password) = setup.user_with_password("alice");
    let server = setup.serve_with_log("info");
    let http = Http::h1();
    assert_eq!(http.get(&server.url("/alice/first"), "alice", &password).await.status, 200);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(!std::fs::read_to_string(&server.log).unwrap().contains("/alice/first"), "the line waits");

    // A refused credential is logged (`davgate::auth`) after the waiting line.
    assert_eq!(http.get(&server.url("/alice/second"), "alice", "wrong").await.status, 401);
    let log = wait_for_text(&server.log, std::time::Duration::from_secs(10), |l| l.contains("auth failure"));
    let (first, refused) = (log.find("/alice/first"), log.find("auth failure"));
    assert!(first.is_some() && first < refused, "the access line first:\n{log}");
    assert!(!log.contains("/alice/second"), "the 401's own line waits");

    // A full batch (32 KiB, ~150 lines of ~215 bytes) is written without
    // waiting. 250 lines stay below two batches whatever their length.
    let raw = format!(
        "GET /alice/many HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n\r\n",
        common::client::basic("alice", &password)
    );
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", server.port)).await.unwrap();
    for _ in 0..250 {
        tokio::io::AsyncWriteExt::write_all(&mut conn, raw.as_bytes()).await.unwrap();
        let answer = read_answer(&mut conn).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    let written =
        wait_for_text(&server.log, std::time::Duration::from_secs(10), |l| l.matches("/alice/many").count() >= 100);
    let many = written.matches("/alice/many").count();
    let others: Vec<&str> = written.lines().filter(|l| !l.contains("/alice/many")).collect();
    assert!((100..250).contains(&many), "a whole batch out, the rest waiting: {many} of 250; {others:#?}");

    let log = server.terminate();
    assert_eq!(log.matches("/alice/many").count(), 250, "the rest at shutdown");
    let (second, stopped) = (log.find("/alice/second"), log.find("stopped"));
    assert!(second.is_some() && second < stopped, "before the last line:\n{log}");
}

/// One answer on a kept connection: the head and its Content-Length body.
async fn read_answer(conn: &mut tokio::net::TcpStream) -> String {
    let mut answer = Vec::new();
    let mut buf = [0; 4096];
    loop {
        if let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .unwrap_or(0);
            if answer.len() >= end + 4 + len {
                return String::from_utf8_lossy(&answer).into_owned();
            }
        }
        let n = tokio::io::AsyncReadExt::read(conn, &mut buf).await.unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buf[..n]);
    }
}

/// With no other line to write them first (`warn` for everything else),
/// waiting lines still reach the log when the server stops.
#[tokio::test(flavor = "multi_thread")]
async fn waiting_access_lines_are_written_at_shutdown_with_nothing_else_logged() {
    let backend = Recorder::start().await;
    let setup = Setup::with_sections(&backend.url(), "[log]\naccess_flush = \"60s\"\n");
    let (_, password) = setup.user_with_password("alice");
    let server = setup.serve_with_log("warn,davgate::access=info");
    let http = Http::h1();
    for i in 0..3 {
        assert_eq!(http.get(&server.url(&format!("/alice/last{i}")), "alice", &password).await.status, 200);
    }
    assert!(!std::fs::read_to_string(&server.log).unwrap().contains("/alice/last"), "the lines wait");
    let log = server.terminate();
    assert_eq!(log.matches("/alice/last").count(), 3, "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn waiting_access_lines_go_out_every_flush_interval_or_at_once_with_zero() {
    let backend = Recorder::start().await;
    for flush in ["2s", "0s"] {
        let setup = Setup::with_sections(&backend.url(), &format!("[log]\naccess_flush = \"{flush}\"\n"));
        let (_, password) = setup.user_with_password("alice");
        let server = setup.serve_with_log("info");
        assert_eq!(Http::h1().get(&server.url("/alice/tick"), "alice", &password).await.status, 200);
        let soon = wait_for_text(&server.log, std::time::Duration::from_millis(300), |l| l.contains("/alice/tick"));
        // The flusher starts with the first line and first writes 2 s later.
        assert_eq!(soon.contains("/alice/tick"), flush == "0s", "access_flush = {flush}, after 0.3 s:\n{soon}");
        let log = wait_for_text(&server.log, std::time::Duration::from_secs(6), |l| l.contains("/alice/tick"));
        assert!(log.contains("/alice/tick"), "access_flush = {flush}: no line within 6 s:\n{log}");
        let threads = std::fs::read_dir(format!("/proc/{}/task", server.pid())).unwrap();
        let names: Vec<String> = threads
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .map(|n| n.trim().to_string())
            .collect();
        assert_eq!(names.iter().any(|n| n == "davgate-log"), flush != "0s", "a flusher only for batches: {names:?}");
    }
}
