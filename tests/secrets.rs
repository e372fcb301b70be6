//! No secret reaches a log: a full run at trace level, in both log formats,
//! then every password, its Basic header, its stored hash and every admin
//! token are searched for in the log.

mod common;

use base64::Engine;
use common::binary::Setup;
use common::web::{WebClient, element_text, input_value};
use common::{Http, Recorder};
use davgate::store::Store;

/// Signs in on the page (a wrong try, then right), creates a password,
/// enrols TOTP and signs in with a code and a recovery code. Returns every
/// secret that went by: login password, session cookies, TOTP secret, codes.
async fn use_the_page(setup: &Setup, server: &common::binary::Server) -> Vec<String> {
    let login = "correct horse battery staple";
    let set = setup.run_with_stdin(&["user", "set-password", "alice"], &format!("{login}\n"));
    assert!(set.status.success());
    let mut web = WebClient::new(&server.url(""));
    let wrong =
        web.submit("/account/login", "/account/login", &[("user", "alice"), ("password", "not it at all")]).await;
    assert_eq!(wrong.status, 403);
    web.sign_in("alice", login).await;
    let mut secrets = vec![login.to_string(), "not it at all".into(), web.cookies["davgate_session"].clone()];
    secrets.push(web.create_password(&[("name", "Page"), ("service", "caldav"), ("expiry", "never")]).await);
    let setup_page = web.submit("/account/security", "/account/security/totp/start", &[]).await.text();
    let totp = element_text(&setup_page, "totp-secret").unwrap();
    let csrf = input_value(&setup_page, "csrf").unwrap();
    let code = davgate::logins::Logins::code_at(&totp, davgate::store::model::unix_now() - 30).unwrap();
    let done = web.post("/account/security/totp/confirm", &[("csrf", &csrf), ("code", &code)]).await.text();
    let recovery: Vec<String> =
        done.split("<li><code>").skip(1).map(|s| s[..s.find('<').unwrap()].to_string()).collect();
    let mut again = WebClient::new(&server.url(""));
    let step = again.submit("/account/login", "/account/login", &[("user", "alice"), ("password", login)]).await;
    let csrf = input_value(&step.text(), "csrf").unwrap();
    let r = again.post("/account/login/code", &[("csrf", &csrf), ("code", &recovery[0])]).await;
    assert_eq!(r.status, 303);
    secrets.push(again.cookies["davgate_session"].clone());
    secrets.push(totp);
    secrets.push(csrf);
    secrets.extend(recovery);
    secrets
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_run_logs_no_password_header_hash_or_token() {
    for format in ["compact", "json"] {
        full_run(format).await;
    }
}

async fn full_run(format: &str) {
    let backend = Recorder::start().await;
    let admin_port = common::backends::free_port();
    let sections = format!("[log]\nformat = \"{format}\"\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n");
    let setup = Setup::with_sections(&backend.url(), &sections);
    let server = setup.serve_with_log("trace");
    let created: serde_json::Value =
        serde_json::from_str(&setup.ok(&["admin-token", "create", "--name", "ci", "--json"])).unwrap();
    let token = created["token"].as_str().unwrap().to_string();
    let admin = format!("http://127.0.0.1:{admin_port}/api/v1/users");
    let mut secrets = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (id, pw) = setup.user_with_password("alice");
        ids.push(id);
        secrets.push(pw);
    }
    let http = Http::h1();
    let bearer = format!("Bearer {token}");
    assert_eq!(http.call("GET", &admin, None, &[("authorization", &bearer)]).await.status, 200);
    let wrong_token = format!("Bearer {}x", &token[..token.len() - 1]);
    assert_eq!(http.call("GET", &admin, None, &[("authorization", &wrong_token)]).await.status, 401);
    for pw in secrets.clone() {
        assert_eq!(http.get(&server.url("/alice/x"), "alice", &pw).await.status, 200);
        // The same password in a typed variant, and a near miss.
        assert_eq!(http.get(&server.url("/alice/x"), "alice", &pw.to_uppercase()).await.status, 200);
        let near_miss = format!("{}-{}", &pw[..23], "zzzzz");
        assert_eq!(http.get(&server.url("/alice/x"), "alice", &near_miss).await.status, 401);
        secrets.push(near_miss);
    }
    setup.ok(&["password", "revoke", "alice", &ids[0]]);
    assert_eq!(http.get(&server.url("/alice/x"), "alice", &secrets[0]).await.status, 401);
    let page_secrets = use_the_page(&setup, &server).await;
    setup.ok(&["password", "revoke-all", "alice"]);
    let log = server.terminate();
    for needle in &page_secrets {
        assert!(!log.contains(needle.as_str()), "a login password, session, TOTP secret or code reached the log");
    }
    assert!(log.contains("davgate::auth"), "the run did log at trace level:\n{log}");

    let store = davgate::store::sled::SledStore::open(&setup.dir.path().join("store"), 8).unwrap();
    let hashes: Vec<String> =
        store.list_passwords("alice").await.unwrap().into_iter().map(|p| p.hash.expose().clone()).collect();
    assert_eq!(hashes.len(), 4, "three from the CLI, one from the page");
    for secret in &secrets {
        let header = base64::engine::general_purpose::STANDARD.encode(format!("alice:{secret}"));
        for needle in [secret.as_str(), &secret.to_uppercase(), &secret[6..], &header] {
            assert!(!log.contains(needle), "a password or its header reached the log");
        }
    }
    for needle in [&token, &token[token.len() - 20..], &wrong_token[7..]] {
        assert!(!log.contains(needle), "an admin token reached the log");
    }
    if format == "json" {
        assert!(log.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()), "every line is JSON");
    }
    for hash in &hashes {
        let digest = hash.rsplit('$').next().unwrap();
        assert!(!log.contains(digest), "a stored hash reached the log");
    }
}
