//! SIGKILL at varying points during a stream of acknowledged changes and
//! activity flushes: after a restart every acknowledged creation and
//! revocation is there, the store opens cleanly, and no revoked password
//! works again.

mod common;

use common::binary::Setup;
use common::{Http, Recorder};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ROUNDS: usize = 5;
/// Activity is flushed this often, so kills also land during flushes.
const FAST_FLUSH: &str = "[activity]\nflush_interval = \"50ms\"\n";

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_changes_survive_kill_9() {
    let backend = Recorder::start().await;
    let sections = format!("[policy]\nmax_active_passwords = 1000\n{FAST_FLUSH}");
    let setup = Arc::new(Setup::with_sections(&backend.url(), &sections));
    setup.ok(&["user", "add", "alice"]);
    let created: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let revoked: Arc<Mutex<Vec<String>>> = Arc::default();
    // A revocation cut off by the kill may or may not have landed.
    let attempted: Arc<Mutex<Vec<String>>> = Arc::default();
    for round in 0..ROUNDS {
        let server = setup.serve();
        // Create and revoke through the admin socket until the kill lands;
        // only what the CLI reported as done counts as acknowledged.
        let stop = Arc::new(AtomicBool::new(false));
        let worker = {
            let (setup, created, revoked, stop) = (setup.clone(), created.clone(), revoked.clone(), stop.clone());
            let attempted = attempted.clone();
            std::thread::spawn(move || {
                for i in 0.. {
                    // After the kill the CLI would fall back to the store itself.
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let out = setup.run(&["password", "create", "alice", "--name", &format!("r{round}-{i}"), "--json"]);
                    if !out.status.success() {
                        break;
                    }
                    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
                    let id = v["id"].as_str().unwrap().to_string();
                    created.lock().unwrap().push((id.clone(), v["password"].as_str().unwrap().to_string()));
                    if i % 2 == 0 {
                        attempted.lock().unwrap().push(id.clone());
                        if !setup.run(&["password", "revoke", "alice", &id]).status.success() {
                            break;
                        }
                        revoked.lock().unwrap().push(id);
                    }
                }
            })
        };
        // Traffic with the acknowledged passwords keeps activity flushing.
        let traffic = {
            let (created, stop, url) = (created.clone(), stop.clone(), server.url("/alice/"));
            tokio::spawn(async move {
                let http = Http::h1();
                while !stop.load(Ordering::SeqCst) {
                    let latest = created.lock().unwrap().last().cloned();
                    if let Some((_, pw)) = latest {
                        let req = http::Request::get(&url)
                            .header("authorization", common::client::basic("alice", &pw))
                            .body(http_body_util::Full::new(bytes::Bytes::new()))
                            .unwrap();
                        let _ = http.try_send(req).await;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        };
        // Kill times spread over rounds: 300, 530, 760, ... ms.
        tokio::time::sleep(Duration::from_millis(300 + 230 * round as u64)).await;
        stop.store(true, Ordering::SeqCst);
        server.kill9();
        worker.join().unwrap();
        traffic.abort();
    }
    let created = created.lock().unwrap().clone();
    let revoked = revoked.lock().unwrap().clone();
    let attempted = attempted.lock().unwrap().clone();
    let unsure = |id: &String| attempted.contains(id) && !revoked.contains(id);
    assert!(created.len() >= 6, "the test made too few changes to mean anything: {}", created.len());

    // Offline: the store opens cleanly and holds everything acknowledged.
    let listed: Value = serde_json::from_str(&setup.ok(&["password", "list", "alice", "--json"])).unwrap();
    let status = |id: &str| {
        listed.as_array().unwrap().iter().find(|p| p["id"] == id).map(|p| p["status"].as_str().unwrap().to_string())
    };
    for (id, _) in &created {
        let expected = if revoked.contains(id) { "revoked" } else { "active" };
        let found = status(id);
        // A creation acknowledged with its revocation cut off stays active; anything acknowledged is there.
        assert!(found.is_some(), "acknowledged password {id} lost");
        if revoked.contains(id) {
            assert_eq!(found.as_deref(), Some(expected), "acknowledged revocation of {id} lost");
        }
    }

    let with_activity = listed.as_array().unwrap().iter().filter(|p| !p["last_activity"].is_null()).count();
    assert!(with_activity > 0, "activity flushes landed between the kills");

    // Online again: revoked passwords stay dead, the others work.
    let server = setup.serve();
    let http = Http::h1();
    for (id, pw) in &created {
        let status = http.get(&server.url("/alice/"), "alice", pw).await.status;
        let want = if revoked.contains(id) { 401 } else { 200 };
        if !unsure(id) {
            assert_eq!(status, want, "password {id}");
        }
    }
    println!(
        "{} creations and {} revocations acknowledged over {ROUNDS} kills: all present",
        created.len(),
        revoked.len()
    );
}
