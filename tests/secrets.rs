//! No secret reaches a log: a full run at trace level, then every password,
//! its Basic header and its stored hash are searched for in the log.

mod common;

use base64::Engine;
use common::binary::Setup;
use common::{Http, Recorder};
use davgate::store::Store;

#[tokio::test(flavor = "multi_thread")]
async fn a_full_run_logs_no_password_header_or_hash() {
    let backend = Recorder::start().await;
    let setup = Setup::new(&backend.url());
    let server = setup.serve_with_log("trace");
    let mut secrets = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (id, pw) = setup.user_with_password("alice");
        ids.push(id);
        secrets.push(pw);
    }
    let http = Http::h1();
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
    setup.ok(&["password", "revoke-all", "alice"]);
    let log = server.terminate();
    assert!(log.contains("davgate::auth"), "the run did log at trace level:\n{log}");

    let store = davgate::store::sled::SledStore::open(&setup.dir.path().join("store"), 8).unwrap();
    let hashes: Vec<String> =
        store.list_passwords("alice").await.unwrap().into_iter().map(|p| p.hash.expose().clone()).collect();
    assert_eq!(hashes.len(), 3);
    for secret in &secrets {
        let header = base64::engine::general_purpose::STANDARD.encode(format!("alice:{secret}"));
        for needle in [secret.as_str(), &secret.to_uppercase(), &secret[6..], &header] {
            assert!(!log.contains(needle), "a password or its header reached the log");
        }
    }
    for hash in &hashes {
        let digest = hash.rsplit('$').next().unwrap();
        assert!(!log.contains(digest), "a stored hash reached the log");
    }
}
