//! Authentication and the verify cache, end to end through a recording backend.

mod common;

use common::{Gate, Http, Recorder, all};
use davgate::accounts::NewPassword;
use davgate::store::model::{UserState, unix_now};

#[tokio::test(flavor = "multi_thread")]
async fn every_refusal_is_the_same_401_with_a_basic_challenge() {
    let backend = Recorder::start().await;
    let gate = Gate::start(&backend.url()).await;
    let good = gate.password("alice", all()).await;
    let revoked = gate.password("alice", all()).await;
    gate.app.accounts.revoke("alice", &revoked[..5], "test").await.unwrap();
    let wrong_secret = format!("{}-22222-22222-22222-22222", &good[..5]);
    let http = Http::h1();
    let url = gate.url("/alice/");
    let mut replies = vec![http.call("GET", &url, None, &[]).await];
    for (user, pass) in [
        ("alice", wrong_secret.as_str()),
        ("alice", "not-a-davgate-password"),
        ("alice", "zzzzz-22222-22222-22222-22222"),
        ("bob", good.as_str()),
        ("nobody", good.as_str()),
        ("alice", revoked.as_str()),
        ("alice", ""),
    ] {
        replies.push(http.get(&url, user, pass).await);
    }
    replies.push(http.call("GET", &url, None, &[("authorization", "Bearer abc")]).await);
    replies.push(http.call("GET", &url, None, &[("authorization", "Basic %%%")]).await);
    let without_date = |h: &http::HeaderMap| {
        let mut h = h.clone();
        h.remove("date");
        h
    };
    for r in &replies {
        assert_eq!(r.status, 401);
        assert_eq!(r.headers["www-authenticate"], "Basic realm=\"davgate\", charset=\"UTF-8\"");
        assert_eq!(r.body, replies[0].body);
        assert_eq!(without_date(&r.headers), without_date(&replies[0].headers), "same headers whatever the reason");
    }
    assert_eq!(backend.count(), 0, "no refused request reaches the backend");
    assert_eq!(http.get(&url, "alice", &good).await.status, 200);
    assert_eq!(backend.count(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_argon2_verification_per_cold_request_with_25_passwords_and_none_when_cached() {
    let backend = Recorder::start().await;
    let gate = Gate::start(&backend.url()).await;
    let mut passwords = Vec::new();
    for _ in 0..25 {
        passwords.push(gate.password("alice", all()).await);
    }
    let http = Http::h1();
    let url = gate.url("/alice/");
    for p in [&passwords[24], &passwords[0], &passwords[12]] {
        let before = gate.verifications();
        assert_eq!(http.get(&url, "alice", p).await.status, 200);
        assert_eq!(gate.verifications() - before, 1, "a cold request costs exactly one verification");
    }
    let before = gate.verifications();
    for _ in 0..50 {
        assert_eq!(http.get(&url, "alice", &passwords[24]).await.status, 200);
    }
    assert_eq!(gate.verifications(), before, "cached credentials cost no verification");
    let wrong = format!("{}-22222-22222-22222-22222", &passwords[3][..5]);
    let before = gate.verifications();
    assert_eq!(http.get(&url, "alice", &wrong).await.status, 401);
    assert_eq!(gate.verifications() - before, 1, "a wrong secret costs exactly one verification");
    // Timing is equalised: an unknown id costs the same one verification.
    let before = gate.verifications();
    assert_eq!(http.get(&url, "alice", "zzzzz-22222-22222-22222-22222").await.status, 401);
    assert_eq!(gate.verifications() - before, 1, "an unknown id is checked against the decoy");
    let before = gate.verifications();
    assert_eq!(http.get(&url, "alice", "not a davgate password").await.status, 401);
    assert_eq!(gate.verifications(), before, "what cannot be a password costs nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_first_requests_with_one_new_password_share_one_verification() {
    let backend = Recorder::start().await;
    let gate = Gate::start(&backend.url()).await;
    let pw = gate.password("alice", all()).await;
    let url = gate.url("/alice/");
    let before = gate.verifications();
    // Eight connections at once, as a sync client opening its pool.
    let requests = (0..8).map(|_| {
        let (url, pw) = (url.clone(), pw.clone());
        tokio::spawn(async move { Http::h1().get(&url, "alice", &pw).await.status })
    });
    for status in futures_util::future::join_all(requests).await {
        assert_eq!(status.unwrap(), 200);
    }
    assert_eq!(gate.verifications() - before, 1, "one argon2 verification for all eight");
    let wrong = format!("{}-22222-22222-22222-22222", &pw[..5]);
    let requests = (0..4).map(|_| {
        let (url, wrong) = (url.clone(), wrong.clone());
        tokio::spawn(async move { Http::h1().get(&url, "alice", &wrong).await.status })
    });
    for status in futures_util::future::join_all(requests).await {
        assert_eq!(status.unwrap(), 401, "a shared refusal refuses every request");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cached_credentials_do_not_read_the_store() {
    let backend = Recorder::start().await;
    let gate = Gate::start(&backend.url()).await;
    let pw = gate.password("alice", all()).await;
    let http = Http::h1();
    assert_eq!(http.get(&gate.url("/alice/"), "alice", &pw).await.status, 200);
    // Remove the record behind the cache's back: a cache hit must not notice.
    gate.app.store.remove_user("alice").await.unwrap();
    assert_eq!(http.get(&gate.url("/alice/"), "alice", &pw).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn revoked_password_is_refused_on_next_request_while_cached() {
    let backend = Recorder::start().await;
    let gate = Gate::start(&backend.url()).await;
    let pw = gate.password("alice", all()).await;
    let other = gate.password("alice", all()).await;
    let http = Http::h1();
    let url = gate.url("/alice/");
    for _ in 0..3 {
        assert_eq!(http.get(&url, "alice", &pw).await.status, 200);
    }
    assert_eq!(http.get(&url, "alice", &other).await.status, 200);
    gate.app.accounts.revoke("alice", &pw[..5], "test").await.unwrap();
    assert_eq!(http.get(&url, "alice", &pw).await.status, 401);
    assert_eq!(http.get(&url, "alice", &other).await.status, 200, "only the revoked password is affected");
    gate.app.accounts.revoke_all("alice", "test").await.unwrap();
    assert_eq!(http.get(&url, "alice", &other).await.status, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn disabling_the_user_or_app_access_takes_effect_on_next_request() {
    let backend = Recorder::start().await;
    let gate = Gate::start(&backend.url()).await;
    let pw = gate.password("alice", all()).await;
    let http = Http::h1();
    let url = gate.url("/alice/");
    let accounts = &gate.app.accounts;
    assert_eq!(http.get(&url, "alice", &pw).await.status, 200);
    accounts.set_user_state("alice", UserState::Disabled, "test").await.unwrap();
    assert_eq!(http.get(&url, "alice", &pw).await.status, 401);
    accounts.set_user_state("alice", UserState::Active, "test").await.unwrap();
    assert_eq!(http.get(&url, "alice", &pw).await.status, 200);
    accounts.set_app_access("alice", false, "test").await.unwrap();
    assert_eq!(http.get(&url, "alice", &pw).await.status, 401);
    accounts.set_app_access("alice", true, "test").await.unwrap();
    assert_eq!(http.get(&url, "alice", &pw).await.status, 200, "app access off keeps the passwords");
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_password_is_refused_even_when_cached() {
    let backend = Recorder::start().await;
    let gate = Gate::start(&backend.url()).await;
    gate.app.accounts.add_user("alice", "test").await.unwrap();
    let new = NewPassword { name: "short-lived".into(), scope: all(), expires: Some(unix_now() + 2) };
    let created = gate.app.accounts.create_password("alice", new, "test").await.unwrap();
    let pw = created.password.expose().clone();
    let http = Http::h1();
    let url = gate.url("/alice/");
    assert_eq!(http.get(&url, "alice", &pw).await.status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    assert_eq!(http.get(&url, "alice", &pw).await.status, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn typed_variants_of_a_password_are_accepted() {
    let backend = Recorder::start().await;
    let gate = Gate::start(&backend.url()).await;
    let pw = gate.password("alice", all()).await;
    let http = Http::h1();
    let url = gate.url("/alice/");
    assert_eq!(http.get(&url, "alice", &pw.to_uppercase()).await.status, 200);
    assert_eq!(http.get(&url, "alice", &pw.replace('-', "")).await.status, 200);
    assert_eq!(http.get(&url, "alice", &pw.replace('-', " ")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn utf8_user_names_work_and_reach_the_backend_as_utf8() {
    let backend = Recorder::start().await;
    let gate = Gate::start(&backend.url()).await;
    let pw = gate.password("jürgen", all()).await;
    let http = Http::h1();
    assert_eq!(http.get(&gate.url("/"), "jürgen", &pw).await.status, 200);
    let seen = backend.seen();
    assert_eq!(seen[0].headers["x-remote-user"].as_bytes(), "jürgen".as_bytes());
}

#[tokio::test(flavor = "multi_thread")]
async fn passwords_are_stored_only_as_argon2id_with_the_configured_cost() {
    let backend = Recorder::start().await;
    let gate = Gate::start(&backend.url()).await;
    let pw = gate.password("alice", all()).await;
    let record = gate.app.store.get_password(&pw[..5]).await.unwrap().unwrap();
    let phc = record.hash.expose();
    assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "OWASP default cost");
    assert!(!phc.contains(&pw));
    assert_eq!(format!("{record:?}").matches("***").count(), 1, "Debug of a record hides the hash");
    assert!(!format!("{record:?}").contains(phc.as_str()));

    let cheap = common::gate::Extra { sections: "[hash]\nmemory_kib = 8192\niterations = 3\n", ..Default::default() };
    let gate = Gate::start_with(&backend.url(), cheap).await;
    let pw = gate.password("alice", all()).await;
    let record = gate.app.store.get_password(&pw[..5]).await.unwrap().unwrap();
    assert!(record.hash.expose().starts_with("$argon2id$v=19$m=8192,t=3,p=1$"));
    assert_eq!(Http::h1().get(&gate.url("/"), "alice", &pw).await.status, 200);
}
