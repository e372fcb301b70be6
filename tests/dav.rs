//! Real DAV servers and real clients through davgate: Radicale with the
//! python `caldav` library and a CardDAV flow, WsgiDAV with litmus.

mod common;

use common::backends::{self, Radicale, WsgiDav};
use common::gate::Extra;
use common::{Gate, Http, all, services};

/// Radicale keeps calendars and address books in one tree per user.
const RADICALE_SERVICES: &str =
    "[services]\ncaldav = [\"/{user}/\"]\ncarddav = [\"/{user}/\"]\nfiles = [\"/files/{user}/\"]\n";

#[tokio::test(flavor = "multi_thread")]
async fn caldav_scoped_password_runs_the_python_caldav_flow_and_stays_in_scope() {
    let radicale = Radicale::start();
    let gate = Gate::start_with(&radicale.url, Extra { sections: RADICALE_SERVICES, ..Extra::default() }).await;
    let pw = gate.password("alice", services(&["caldav"])).await;
    let out = backends::run_client("caldav_flow.py", vec![gate.url("/"), "alice".into(), pw.clone()]).await;
    backends::assert_client_ok(&out, &radicale.log());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("well-known"), "discovery went through /.well-known/caldav:\n{stdout}");

    // The same password cannot leave its tree.
    let http = Http::h1();
    let auth = Some(("alice", pw.as_str()));
    assert_eq!(http.call("PROPFIND", &gate.url("/files/alice/"), auth, &[]).await.status, 403);
    assert_eq!(http.call("PROPFIND", &gate.url("/bob/"), auth, &[]).await.status, 403);
    assert_eq!(http.call("GET", &gate.url("/alice/%2e%2e/bob/"), auth, &[]).await.status, 400);
    let dest = gate.url("/files/alice/stolen.ics");
    assert_eq!(http.call("MOVE", &gate.url("/alice/x.ics"), auth, &[("destination", &dest)]).await.status, 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn caldav_flow_with_an_unscoped_password_and_wrong_password_fails() {
    let radicale = Radicale::start();
    let gate = Gate::start(&radicale.url).await;
    let pw = gate.password("alice", all()).await;
    let out = backends::run_client("caldav_flow.py", vec![gate.url("/"), "alice".into(), pw.clone()]).await;
    backends::assert_client_ok(&out, &radicale.log());
    let wrong = format!("{}-22222-22222-22222-22222", &pw[..5]);
    let out = backends::run_client("caldav_flow.py", vec![gate.url("/"), "alice".into(), wrong]).await;
    assert!(!out.status.success(), "a wrong password must not sync");
}

#[tokio::test(flavor = "multi_thread")]
async fn carddav_contact_put_and_report_through_davgate() {
    let radicale = Radicale::start();
    let gate = Gate::start_with(&radicale.url, Extra { sections: RADICALE_SERVICES, ..Extra::default() }).await;
    let pw = gate.password("alice", services(&["carddav"])).await;
    let out =
        backends::run_client("carddav_flow.py", vec![gate.url("/"), "alice".into(), pw, gate.url("/alice/contacts/")])
            .await;
    backends::assert_client_ok(&out, &radicale.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn read_only_password_can_read_but_not_write_real_radicale() {
    let radicale = Radicale::start();
    let gate = Gate::start(&radicale.url).await;
    let writer = gate.password("alice", all()).await;
    let reader = gate.password("alice", davgate::gateway::scope::Scope { read_only: true, ..all() }).await;
    let http = Http::h1();
    let mkcal = "<?xml version=\"1.0\"?><C:mkcalendar xmlns:C=\"urn:ietf:params:xml:ns:caldav\"/>";
    let req = http::Request::builder()
        .method("MKCALENDAR")
        .uri(gate.url("/alice/ro/"))
        .header("authorization", common::client::basic("alice", &writer))
        .body(http_body_util::Full::new(bytes::Bytes::from(mkcal)))
        .unwrap();
    assert_eq!(http.send(req).await.status, 201);
    let ics = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\nUID:ro-1\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260102T100000Z\r\nSUMMARY:x\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    let put = |pw: &str| {
        http::Request::builder()
            .method("PUT")
            .uri(gate.url("/alice/ro/e.ics"))
            .header("authorization", common::client::basic("alice", pw))
            .header("content-type", "text/calendar")
            .body(http_body_util::Full::new(bytes::Bytes::from(ics)))
            .unwrap()
    };
    assert_eq!(http.send(put(&reader)).await.status, 403);
    assert_eq!(http.send(put(&writer)).await.status, 201);
    let r = http.call("GET", &gate.url("/alice/ro/e.ics"), Some(("alice", &reader)), &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.version, http::Version::HTTP_11, "Radicale's HTTP/1.0 must not end the client's keep-alive");
    assert!(r.headers.get("connection").is_none_or(|c| c != "close"));
    assert!(r.text().contains("UID:ro-1"));
    assert_eq!(http.call("DELETE", &gate.url("/alice/ro/e.ics"), Some(("alice", &reader)), &[]).await.status, 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn litmus_passes_as_many_tests_through_davgate_as_directly() {
    let direct = tokio::task::spawn_blocking(|| {
        let baseline = WsgiDav::start_with_basic_user("litmus", "direct-secret");
        backends::litmus(&format!("{}/", baseline.url), "litmus", "direct-secret")
    })
    .await
    .unwrap();
    assert_eq!(direct.failed, 0, "{}", direct.output);

    let wsgidav = WsgiDav::start();
    let gate = Gate::start(&wsgidav.url).await;
    let pw = gate.password("litmus", all()).await;
    let url = gate.url("/");
    let through = tokio::task::spawn_blocking(move || backends::litmus(&url, "litmus", &pw)).await.unwrap();
    assert_eq!(
        (through.passed, through.failed, through.aborted),
        (direct.passed, 0, 0),
        "direct {:?}\nthrough davgate {:?}\n{}\nbackend log:\n{}",
        direct.suites,
        through.suites,
        through.output,
        wsgidav.log()
    );
    println!("litmus: {} passed directly, {} through davgate", direct.passed, through.passed);
}

async fn send(
    gate: &Gate,
    method: &str,
    path: &str,
    pw: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> common::client::Reply {
    let mut b = http::Request::builder()
        .method(method)
        .uri(gate.url(path))
        .header("authorization", common::client::basic("alice", pw));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    Http::h1().send(b.body(http_body_util::Full::new(bytes::Bytes::from(body.to_string()))).unwrap()).await
}

const MKCALENDAR: &str = "<?xml version=\"1.0\"?><C:mkcalendar xmlns:C=\"urn:ietf:params:xml:ns:caldav\"/>";

fn event(uid: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260102T100000Z\r\nSUMMARY:x\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn radicale_cannot_be_steered_out_of_a_collection_scope() {
    let radicale = Radicale::start();
    let gate = Gate::start(&radicale.url).await;
    let writer = gate.password("alice", all()).await;
    let scope = davgate::gateway::scope::Scope { collections: vec!["/alice/work/".into()], ..all() };
    let work_only = gate.password("alice", scope).await;
    for cal in ["/alice/work/", "/alice/home/"] {
        assert_eq!(send(&gate, "MKCALENDAR", cal, &writer, &[], MKCALENDAR).await.status, 201);
    }
    let ics = [("content-type", "text/calendar")];

    // Radicale strips a client's X-Script-Name from the path once it sees
    // X-Forwarded-For: davgate must never let it through.
    let r = send(
        &gate,
        "PUT",
        "/alice/work/alice/home/evil.ics",
        &work_only,
        &[("x-script-name", "/alice/work"), ics[0]],
        &event("evil"),
    )
    .await;
    assert_ne!(r.status, 201, "{}", r.text());
    assert_eq!(send(&gate, "GET", "/alice/home/evil.ics", &writer, &[], "").await.status, 404);

    // A Destination that decodes into another URL is refused.
    assert_eq!(send(&gate, "PUT", "/alice/work/w1.ics", &work_only, &ics, &event("w1")).await.status, 201);
    let host = gate.addr.to_string();
    let trick = format!("http://{host}%2Falice%2Fhome%2Fw1.ics%23@{host}/alice/work/x.ics");
    let r = send(&gate, "MOVE", "/alice/work/w1.ics", &work_only, &[("destination", &trick)], "").await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(send(&gate, "GET", "/alice/home/w1.ics", &writer, &[], "").await.status, 404);
    assert_eq!(send(&gate, "GET", "/alice/work/w1.ics", &writer, &[], "").await.status, 200);

    // An honest MOVE inside the collection works.
    let dest = gate.url("/alice/work/w2.ics");
    assert_eq!(send(&gate, "MOVE", "/alice/work/w1.ics", &work_only, &[("destination", &dest)], "").await.status, 201);
    assert_eq!(send(&gate, "GET", "/alice/home/", &work_only, &[], "").await.status, 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn discovery_on_wsgidav_cannot_list_the_whole_tree() {
    let wsgidav = WsgiDav::start();
    std::fs::create_dir_all(wsgidav.root().join("files/alice")).unwrap();
    std::fs::write(wsgidav.root().join("files/alice/secret-tax.pdf"), "x").unwrap();
    let gate = Gate::start(&wsgidav.url).await;
    let scope = davgate::gateway::scope::Scope { collections: vec!["/alice/cal/".into()], read_only: true, ..all() };
    let pw = gate.password("alice", scope).await;
    let r = send(&gate, "PROPFIND", "/", &pw, &[], "").await;
    assert_eq!(r.status, 403, "a PROPFIND without Depth is Depth: infinity");
    let r = send(&gate, "PROPFIND", "/", &pw, &[("depth", "1")], "").await;
    assert_eq!(r.status, 207);
    assert!(!r.text().contains("secret-tax"), "{}", r.text());
}
