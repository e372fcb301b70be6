//! Last activity: recorded in memory, no store write on the request path,
//! one batch per flush and one at shutdown.

mod common;

use common::{Gate, Http, Recorder, all};

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_requests_cause_no_store_write_and_one_batch_per_flush() {
    let backend = Recorder::start().await;
    let gate = Gate::start(&backend.url()).await;
    let a = gate.password("alice", all()).await;
    let b = gate.password("alice", all()).await;
    let http = Http::h1();
    let before = gate.app.store.write_count();
    for i in 0..1000 {
        let pw = if i % 2 == 0 { &a } else { &b };
        let r = http.call("GET", &gate.url("/alice/"), Some(("alice", pw)), &[("user-agent", "DAVx5/4.4.3-ose")]).await;
        assert_eq!(r.status, 200);
    }
    assert_eq!(gate.app.store.write_count(), before, "the request path never writes to the store");
    // Listings are live before any flush.
    let listed = gate.app.accounts.list_passwords("alice").await.unwrap();
    assert!(
        listed
            .iter()
            .all(|p| p.last_activity.as_ref().is_some_and(|a| a.user_agent.as_deref() == Some("DAVx5/4.4.3-ose")))
    );
    let flushed = gate.app.activity.flush(gate.app.store.as_ref()).await.unwrap();
    assert_eq!(flushed, 2);
    assert_eq!(gate.app.store.write_count(), before + 1, "one batch for both passwords");
    let stored = gate.app.store.get_activity(&[a[..5].to_string(), b[..5].to_string()]).await.unwrap();
    assert!(stored.iter().all(|s| s.as_ref().is_some_and(|s| s.ip.to_string() == "127.0.0.1")));
}

#[tokio::test(flavor = "multi_thread")]
async fn activity_is_flushed_at_shutdown() {
    let backend = Recorder::start().await;
    let gate = Gate::start(&backend.url()).await;
    let pw = gate.password("alice", all()).await;
    assert_eq!(Http::h1().get(&gate.url("/alice/"), "alice", &pw).await.status, 200);
    let store = gate.app.store.clone();
    assert_eq!(store.get_activity(&[pw[..5].to_string()]).await.unwrap(), vec![None]);
    gate.stop().await;
    let stored = store.get_activity(&[pw[..5].to_string()]).await.unwrap();
    assert!(stored[0].is_some(), "shutdown flushes pending activity");
}
