//! Expiry: a password is refused the moment it expires, even when cached,
//! and the sweep records one `password-expired` event for it.

mod common;

use common::gate::{Extra, Gate};
use common::{Http, Recorder, all};
use davgate::accounts::NewPassword;
use davgate::store::EventQuery;
use davgate::store::model::{EventKind, unix_now};
use std::time::Duration;

async fn expired_events(gate: &Gate) -> usize {
    let query = EventQuery {
        user: Some("alice".into()),
        kinds: vec![EventKind::PasswordExpired],
        limit: 10,
        ..Default::default()
    };
    gate.app.accounts.events(&query).await.unwrap().len()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_password_is_refused_at_once_and_its_expiry_recorded_once() {
    let backend = Recorder::start().await;
    let sections = "[expiry]\nsweep_interval = \"200ms\"\n";
    let gate = Gate::start_with(&backend.url(), Extra { sections, ..Extra::default() }).await;
    let http = Http::h1();
    gate.password("alice", all()).await;
    let expires = unix_now() + 2;
    let new = NewPassword { name: "short-lived".into(), scope: all(), expires: Some(expires) };
    let created = gate.app.accounts.create_password("alice", new, "test").await.unwrap();
    let pw = created.password.expose().clone();
    assert_eq!(http.get(&gate.url("/alice/x"), "alice", &pw).await.status, 200, "cached now");
    assert_eq!(expired_events(&gate).await, 0);

    while unix_now() < expires {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(http.get(&gate.url("/alice/x"), "alice", &pw).await.status, 401, "refused at the moment of expiry");

    for _ in 0..100 {
        if expired_events(&gate).await > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(expired_events(&gate).await, 1, "one event, however many sweeps ran");
    let query = EventQuery { user: Some("alice".into()), limit: 10, ..Default::default() };
    let event =
        gate.app.accounts.events(&query).await.unwrap().into_iter().find(|e| e.kind == EventKind::PasswordExpired);
    let event = event.unwrap();
    assert_eq!(
        (event.password_id.as_deref(), event.at, event.actor.as_str()),
        (Some(&created.view.id[..]), expires, "expiry")
    );
    let listed = gate.app.accounts.list_passwords("alice").await.unwrap();
    let status_of = |id: &str| listed.iter().find(|p| p.id == id).unwrap().status;
    assert_eq!(status_of(&created.view.id), "expired");
    assert_eq!(listed.iter().filter(|p| p.status == "active").count(), 1, "the other password is untouched");
    assert!(gate.app.metrics.encode().contains("davgate_passwords_expired_total 1"));
    gate.stop().await;
}
