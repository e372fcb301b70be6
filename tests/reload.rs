//! Config reload: a new config applies to the next request on open
//! connections and to new TLS handshakes; a bad one changes nothing.

mod common;

use bytes::Bytes;
use common::binary::Setup;
use common::gate::{Extra, Gate, config_text};
use common::{Http, Recorder};
use davgate::config::Config;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn self_signed() -> (String, String) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    (cert.cert.pem(), cert.key_pair.serialize_pem())
}

/// A TLS client that trusts only `cert_pem`.
fn connector(cert_pem: &str) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap()).unwrap();
    let mut tls = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(tls))
}

type Conn = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// One kept-alive HTTP/1.1 connection over TLS, or the handshake error.
async fn connect(port: u16, cert_pem: &str) -> Result<Conn, std::io::Error> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector(cert_pem).connect(name, tcp).await?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
    tokio::spawn(conn);
    Ok(sender)
}

/// The `WWW-Authenticate` of an unauthenticated request on `conn`.
async fn challenge(conn: &mut Conn) -> String {
    let req = Request::get("/x").header("host", "localhost").body(Full::new(Bytes::new())).unwrap();
    let res = conn.send_request(req).await.expect("the connection is still open");
    let value = res.headers()["www-authenticate"].to_str().unwrap().to_string();
    res.into_body().collect().await.unwrap();
    value
}

fn write_pair(dir: &Path, (cert, key): &(String, String)) {
    std::fs::write(dir.join("cert.pem"), cert).unwrap();
    std::fs::write(dir.join("key.pem"), key).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_applies_to_open_connections_and_new_tls_handshakes() {
    davgate::server::tls::install_crypto_provider();
    let backend = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (self_signed(), self_signed());
    write_pair(dir.path(), &first);
    let tls = format!(
        "[server.tls]\ncert = \"{}\"\nkey = \"{}\"",
        dir.path().join("cert.pem").display(),
        dir.path().join("key.pem").display()
    );
    // Several workers: each has its own gateway, and a reload reaches all.
    let config_for = |realm: &str, listen_port: Option<u16>| {
        let server = format!("realm = \"{realm}\"\nworkers = 3\n{tls}");
        let mut text =
            config_text(&backend.url(), &dir.path().join("store"), Extra { server: &server, ..Extra::default() });
        if let Some(port) = listen_port {
            text = text.replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
        }
        Config::parse(&text, "test.toml").unwrap()
    };
    let gate = Gate::start_config(config_for("before", None), tempfile::tempdir().unwrap()).await;
    let port = gate.addr.port();
    assert_eq!(gate.app.live.gateways.len(), 3);
    let mut open = Vec::new();
    for _ in 0..9 {
        let mut conn = connect(port, &first.0).await.unwrap();
        assert_eq!(challenge(&mut conn).await, "Basic realm=\"before\", charset=\"UTF-8\"");
        open.push(conn);
    }

    write_pair(dir.path(), &second);
    let restart_only = gate.app.reload(config_for("after", Some(1))).unwrap();
    assert_eq!(restart_only, ["server.listen"], "a new listen address needs a restart and is named");
    assert_eq!(gate.app.config().server.listen.port(), 0, "the running config keeps the old address");
    for gateway in &gate.app.live.gateways {
        assert_eq!(gateway.load().challenge, "Basic realm=\"after\", charset=\"UTF-8\"", "every worker's gateway");
    }
    for conn in &mut open {
        assert_eq!(
            challenge(conn).await,
            "Basic realm=\"after\", charset=\"UTF-8\"",
            "the open connection survived and its next request uses the new config"
        );
    }
    assert!(connect(port, &first.0).await.is_err(), "new handshakes present the new certificate");
    let mut fresh = connect(port, &second.0).await.unwrap();
    assert_eq!(challenge(&mut fresh).await, "Basic realm=\"after\", charset=\"UTF-8\"");

    // A certificate that does not load is refused and nothing changes.
    std::fs::write(dir.path().join("cert.pem"), "not a certificate").unwrap();
    let refused = gate.app.reload(config_for("third", None)).unwrap_err().to_string();
    assert!(refused.starts_with("server.tls.cert:"), "{refused}");
    assert_eq!(challenge(&mut fresh).await, "Basic realm=\"after\", charset=\"UTF-8\"");
    assert!(connect(port, &second.0).await.is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_is_checked_with_the_keys_that_keep_their_old_value() {
    let backend = Recorder::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = |server: &str| {
        let text = config_text(&backend.url(), &dir.path().join("store"), Extra { server, ..Extra::default() });
        Config::parse(&text.replace("127.0.0.1:0", "0.0.0.0:0"), "test.toml")
    };
    let behind_proxy = config("trusted_proxies = [\"10.0.0.1/32\"]").unwrap();
    let gate = Gate::start_config(behind_proxy, tempfile::tempdir().unwrap()).await;
    // On its own the new file is fine (loopback, no proxy needed), but the
    // public listen address stays until a restart: plain HTTP in the open.
    let mut alone = config("").unwrap_err().problems.join("");
    assert!(alone.contains("server.listen: plain HTTP"), "{alone}");
    let mut new = config("trusted_proxies = [\"10.0.0.1/32\"]").unwrap();
    new.server.listen = "127.0.0.1:0".parse().unwrap();
    new.server.trusted_proxies.clear();
    let refused = gate.app.reload(new).unwrap_err().to_string();
    assert!(refused.contains("server.listen: plain HTTP"), "{refused}");
    assert_eq!(gate.app.config().server.trusted_proxies.len(), 1, "nothing changed");
    alone.clear();
}

fn wait_for_log(log: &Path, needle: &str, count: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.matches(needle).count() >= count {
            return text;
        }
        assert!(Instant::now() < deadline, "{needle:?} not logged {count} times:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sighup(pid: u32) {
    assert!(std::process::Command::new("kill").args(["-HUP", &pid.to_string()]).status().unwrap().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_rereads_the_file_and_a_bad_file_changes_nothing() {
    let backend = Recorder::start().await;
    let setup = Setup::with_sections(&backend.url(), "");
    let (_, password) = setup.user_with_password("alice");
    let server = setup.serve_with_log("info");
    let http = Http::h1();
    let url = server.url("/alice/x");
    let realm = async |http: &Http| {
        http.call("GET", &url, None, &[]).await.headers["www-authenticate"].to_str().unwrap().to_string()
    };
    assert!(realm(&http).await.contains("realm=\"davgate\""));
    let original = std::fs::read_to_string(&setup.config).unwrap();

    let renamed = original.replace("[server]\n", "[server]\nrealm = \"Calendars\"\n");
    std::fs::write(&setup.config, &renamed).unwrap();
    sighup(server.pid());
    wait_for_log(&server.log, "config reloaded", 1);
    assert!(realm(&http).await.contains("realm=\"Calendars\""));

    std::fs::write(&setup.config, renamed.replace("[store]\n", "[store]\npaht = 1\n")).unwrap();
    sighup(server.pid());
    let log = wait_for_log(&server.log, "config reload refused", 1);
    assert!(log.contains("store.paht: unknown field"), "the log names the bad key:\n{log}");
    assert!(realm(&http).await.contains("realm=\"Calendars\""), "the running config stays");
    assert_eq!(http.get(&server.url("/alice/x"), "alice", &password).await.status, 200);

    let moved = renamed.replace(&format!("127.0.0.1:{}", setup.port), "127.0.0.1:1");
    std::fs::write(&setup.config, moved).unwrap();
    sighup(server.pid());
    let log = wait_for_log(&server.log, "until a restart", 1);
    assert!(log.contains("server.listen"), "{log}");
    assert_eq!(http.get(&server.url("/alice/x"), "alice", &password).await.status, 200, "still on the old port");
    server.terminate();
}
