//! The admin API over TCP: bearer tokens, paging and filters, errors that
//! name the problem, metrics and health.

mod common;

use bytes::Bytes;
use common::client::Reply;
use common::gate::{Extra, Gate};
use common::{Http, Recorder, all, services};
use http::{Request, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};

async fn api(http: &Http, method: &str, url: &str, token: Option<&str>, body: Option<Value>) -> Reply {
    let mut b = Request::builder().method(method).uri(url);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    let body = body.map(|v| Bytes::from(v.to_string())).unwrap_or_default();
    http.send(b.header("content-type", "application/json").body(Full::new(body)).unwrap()).await
}

fn json_of(reply: &Reply) -> Value {
    serde_json::from_slice(&reply.body).unwrap_or_else(|e| panic!("{e}: {}", reply.text()))
}

#[tokio::test]
async fn the_tcp_api_needs_a_live_bearer_token_and_cannot_manage_tokens() {
    let backend = Recorder::start().await;
    let gate = Gate::start_with_admin(&backend.url(), Extra::default()).await;
    let http = Http::h1();
    let users = gate.admin_url("/api/v1/users");

    let none = api(&http, "GET", &users, None, None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.headers["www-authenticate"], "Bearer realm=\"davgate-admin\"");
    assert_eq!(json_of(&none)["error"], "unauthorized");
    for bad in ["nonsense", "dgt_abcdefghij_wrong", ""] {
        assert_eq!(api(&http, "GET", &users, Some(bad), None).await.status, StatusCode::UNAUTHORIZED, "{bad}");
    }

    let token = gate.admin_token("monitoring").await;
    let ok = api(&http, "GET", &users, Some(&token), None).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    let lower = http.call("GET", &users, None, &[("authorization", &format!("bearer {token}"))]).await;
    assert_eq!(lower.status, StatusCode::OK, "the scheme is case-insensitive");
    let created = api(&http, "POST", &users, Some(&token), Some(json!({"name": "alice"}))).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let events = json_of(&api(&http, "GET", &gate.admin_url("/api/v1/users/alice/events"), Some(&token), None).await);
    let id = token.split('_').nth(1).unwrap();
    assert_eq!(events["events"][0]["actor"], format!("token:{id}"), "the history names the token, not the secret");

    let tokens_url = gate.admin_url("/api/v1/admin-tokens");
    let minted = api(&http, "POST", &tokens_url, Some(&token), Some(json!({"name": "x"}))).await;
    assert_eq!(minted.status, StatusCode::FORBIDDEN, "a token cannot mint tokens");
    assert_eq!(api(&http, "GET", &gate.admin_url("/api/v1/admin-tokens"), Some(&token), None).await.status, 403);

    davgate::admin::tokens::revoke(gate.app.store.as_ref(), id).await.unwrap().unwrap();
    assert_eq!(api(&http, "GET", &users, Some(&token), None).await.status, StatusCode::UNAUTHORIZED);
    // Health and metrics need no token, so probes and scrapers work.
    assert_eq!(api(&http, "GET", &gate.admin_url("/healthz"), None, None).await.status, StatusCode::OK);
    assert_eq!(api(&http, "GET", &gate.admin_url("/metrics"), None, None).await.status, StatusCode::OK);
    gate.stop().await;
}

#[tokio::test]
async fn users_are_paged_and_filtered() {
    let backend = Recorder::start().await;
    let gate = Gate::start_with_admin(&backend.url(), Extra::default()).await;
    let (http, token) = (Http::h1(), gate.admin_token("t").await);
    for name in ["ann", "bob", "carl", "dana", "anton"] {
        gate.app.accounts.add_user(name, "test").await.unwrap();
    }
    gate.app.accounts.set_user_state("bob", davgate::store::model::UserState::Disabled, "test").await.unwrap();
    gate.app.accounts.set_app_access("dana", false, "test").await.unwrap();
    let get = |q: &str| {
        let url = gate.admin_url(&format!("/api/v1/users{q}"));
        let (http, token) = (&http, &token);
        async move { json_of(&api(http, "GET", &url, Some(token), None).await) }
    };
    let names = |page: &Value| -> Vec<String> {
        page["users"].as_array().unwrap().iter().map(|u| u["name"].as_str().unwrap().to_string()).collect()
    };

    let first = get("?limit=2").await;
    assert_eq!((names(&first), first["total"].clone()), (vec!["ann".into(), "anton".into()], json!(5)));
    assert_eq!(names(&get("?limit=2&offset=2").await), ["bob", "carl"]);
    assert_eq!(names(&get("?limit=2&offset=4").await), ["dana"]);
    assert_eq!(names(&get("?q=an").await), ["ann", "anton", "dana"]);
    assert_eq!(names(&get("?state=disabled").await), ["bob"]);
    assert_eq!(names(&get("?app_access=false").await), ["dana"]);
    assert_eq!(get("?q=an&state=active").await["total"], 3);
    gate.stop().await;
}

#[tokio::test]
async fn events_are_listed_per_user_and_globally_filtered_by_kind_and_time() {
    let backend = Recorder::start().await;
    let gate = Gate::start_with_admin(&backend.url(), Extra::default()).await;
    let (http, token) = (Http::h1(), gate.admin_token("t").await);
    let pw = gate.password("alice", all()).await;
    gate.password("bob", all()).await;
    gate.app.accounts.revoke("alice", &pw[..5], "test").await.unwrap();
    let get = |path: String| {
        let url = gate.admin_url(&path);
        let (http, token) = (&http, &token);
        async move {
            let reply = api(http, "GET", &url, Some(token), None).await;
            (reply.status, json_of(&reply))
        }
    };
    let kinds = |page: &Value| -> Vec<String> {
        page["events"].as_array().unwrap().iter().map(|e| format!("{} {}", e["user"], e["kind"])).collect()
    };

    let (_, alice) = get("/api/v1/users/alice/events".into()).await;
    assert_eq!(
        kinds(&alice),
        [r#""alice" "password-revoked""#, r#""alice" "password-created""#, r#""alice" "user-created""#]
    );
    let (_, global) = get("/api/v1/events".into()).await;
    assert_eq!(global["events"].as_array().unwrap().len(), 5, "{global}");
    assert_eq!(global["events"][0]["kind"], "password-revoked", "newest first");
    let (_, created) = get("/api/v1/events?kind=password-created,user-created&limit=3".into()).await;
    assert_eq!(created["events"].as_array().unwrap().len(), 3);
    assert_eq!(created["next_offset"], 3);
    let (_, rest) = get("/api/v1/events?kind=password-created,user-created&limit=3&offset=3".into()).await;
    assert_eq!(rest["events"].as_array().unwrap().len(), 1);
    assert!(rest.get("next_offset").is_none(), "the last page has no next_offset");
    let (_, bob) = get("/api/v1/events?user=bob".into()).await;
    assert!(bob["events"].as_array().unwrap().iter().all(|e| e["user"] == "bob"));
    let future = davgate::store::model::unix_now() + 3600;
    let (_, none) = get(format!("/api/v1/events?since={future}")).await;
    assert_eq!(none["events"], json!([]));
    let (_, all_before) = get(format!("/api/v1/events?until={future}")).await;
    assert_eq!(all_before["events"].as_array().unwrap().len(), 5);

    let (status, bad) = get("/api/v1/events?kind=password-exploded".into()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(bad["message"].as_str().unwrap().starts_with("kind: unknown \"password-exploded\""), "{bad}");
    let (status, _) = get("/api/v1/users/nobody/events".into()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    gate.stop().await;
}

#[tokio::test]
async fn bad_requests_get_a_status_and_a_message_naming_the_problem() {
    let backend = Recorder::start().await;
    let gate = Gate::start_with_admin(&backend.url(), Extra::default()).await;
    let (http, token) = (Http::h1(), gate.admin_token("t").await);
    gate.app.accounts.add_user("alice", "test").await.unwrap();
    let call = |method: &'static str, path: &'static str, body: Option<Value>| {
        let url = gate.admin_url(path);
        let (http, token) = (&http, &token);
        async move { api(http, method, &url, Some(token), body).await }
    };
    let cases: Vec<(Reply, u16, &str, &str)> = vec![
        (
            call("POST", "/api/v1/users", Some(json!({"name": "x", "admin": true}))).await,
            400,
            "bad_json",
            "unknown field `admin`",
        ),
        (
            call("POST", "/api/v1/users", Some(json!({"nam": "x"}))).await,
            400,
            "bad_json",
            "nam: unknown field `nam`, expected `name`",
        ),
        (call("POST", "/api/v1/users", Some(json!({}))).await, 400, "bad_json", "missing field `name`"),
        (call("POST", "/api/v1/users", None).await, 400, "bad_json", "EOF while parsing"),
        (
            call("PATCH", "/api/v1/users/alice", Some(json!({"state": "sleeping"}))).await,
            400,
            "bad_json",
            "state: unknown variant",
        ),
        (
            call("POST", "/api/v1/users/alice/passwords", Some(json!({"name": "p", "scope": {"servics": []}}))).await,
            400,
            "bad_json",
            "scope.servics: unknown field `servics`",
        ),
        (call("GET", "/api/v1/users?limit=0", None).await, 400, "bad_query", "limit: must be 1 to 1000"),
        (call("GET", "/api/v1/users?limit=lots", None).await, 400, "bad_query", "limit: invalid digit"),
        (call("GET", "/api/v1/users?colour=red", None).await, 400, "bad_query", "unknown field `colour`"),
        (call("GET", "/api/v1/passwords?expiring_within=soon", None).await, 400, "bad_query", "expiring_within:"),
        (call("GET", "/api/v1/users/bob", None).await, 404, "unknown_user", "unknown user \"bob\""),
        (call("GET", "/api/v1/nothing", None).await, 404, "not_found", "no such endpoint"),
        (call("PUT", "/api/v1/users", None).await, 405, "method_not_allowed", "GET, POST"),
        (call("POST", "/api/v1/users", Some(json!({"name": "alice"}))).await, 409, "user_exists", "already exists"),
        (call("GET", "/api/v1/users?state=a%0Ab", None).await, 400, "bad_query", "unknown variant `a b`"),
        (
            call("POST", "/api/v1/users", Some(json!({"name": "x".repeat(70_000)}))).await,
            413,
            "body_too_large",
            "over 65536 bytes",
        ),
    ];
    for (reply, status, code, message) in cases {
        let body = json_of(&reply);
        assert_eq!((reply.status.as_u16(), body["error"].as_str().unwrap()), (status, code), "{body}");
        assert!(body["message"].as_str().unwrap().contains(message), "{message:?} not in {body}");
        assert!(!body["message"].as_str().unwrap().contains('\n'), "one line: {body}");
        assert_eq!(reply.headers["content-type"], "application/json");
    }
    let put = call("PUT", "/api/v1/users", None).await;
    assert_eq!(put.headers["allow"], "GET, POST");
    let huge = call("GET", "/api/v1/events?offset=18446744073709551615", None).await;
    assert_eq!((huge.status, json_of(&huge)), (StatusCode::OK, json!({"events": []})), "an offset past the end");
    gate.stop().await;
}

#[tokio::test]
async fn admins_list_passwords_across_users_by_status_and_expiry() {
    let backend = Recorder::start().await;
    let gate = Gate::start_with_admin(&backend.url(), Extra::default()).await;
    let (http, token) = (Http::h1(), gate.admin_token("t").await);
    let accounts = &gate.app.accounts;
    let now = davgate::store::model::unix_now();
    for (user, name, days) in [("alice", "soon", Some(3)), ("bob", "later", Some(30)), ("bob", "never", None)] {
        let _ = accounts.add_user(user, "test").await;
        let new = davgate::accounts::NewPassword {
            name: name.into(),
            scope: services(&["caldav"]),
            expires: days.map(|d| now + d * 86400),
        };
        accounts.create_password(user, new, "test").await.unwrap();
    }
    let revoked = gate.password("carol", all()).await;
    accounts.revoke("carol", &revoked[..5], "test").await.unwrap();
    let names = |q: &'static str| {
        let url = gate.admin_url(&format!("/api/v1/passwords{q}"));
        let (http, token) = (&http, &token);
        async move {
            let page = json_of(&api(http, "GET", &url, Some(token), None).await);
            let mut n: Vec<String> =
                page["passwords"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_string()).collect();
            n.sort();
            n
        }
    };
    assert_eq!(names("").await, ["later", "never", "soon", "test client"]);
    assert_eq!(names("?expiring_within=7d").await, ["soon"]);
    assert_eq!(names("?expiring_within=31d").await, ["later", "soon"]);
    assert_eq!(names("?status=revoked").await, ["test client"]);
    assert_eq!(names("?user=bob").await, ["later", "never"]);
    let page = json_of(&api(&http, "GET", &gate.admin_url("/api/v1/passwords"), Some(&token), None).await);
    assert!(!page.to_string().contains("argon2"), "no hash in a listing");
    gate.stop().await;
}

#[tokio::test]
async fn policy_is_readable() {
    let backend = Recorder::start().await;
    let sections = "[policy]\nmax_active_passwords = 7\nmax_lifetime = \"365d\"\nrevoke_on_password_change = true\n";
    let gate = Gate::start_with_admin(&backend.url(), Extra { sections, ..Extra::default() }).await;
    let token = gate.admin_token("t").await;
    let policy = json_of(&api(&Http::h1(), "GET", &gate.admin_url("/api/v1/policy"), Some(&token), None).await);
    assert_eq!(
        policy,
        json!({
            "max_active_passwords": 7,
            "max_lifetime_secs": 365 * 86400,
            "services": ["caldav", "carddav", "files"],
            "revoke_on_password_change": true,
        })
    );
    gate.stop().await;
}

#[tokio::test]
async fn readyz_reports_the_store_and_the_backend() {
    let backend = Recorder::start().await;
    let gate = Gate::start_with_admin(&backend.url(), Extra::default()).await;
    let http = Http::h1();
    let ready = api(&http, "GET", &gate.admin_url("/readyz"), None, None).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(json_of(&ready), json!({"ready": true, "store": "ok", "upstream": "ok"}));
    gate.stop().await;

    let dead = format!("http://127.0.0.1:{}", common::backends::free_port());
    let gate = Gate::start_with_admin(&dead, Extra::default()).await;
    let not_ready = api(&http, "GET", &gate.admin_url("/readyz"), None, None).await;
    assert_eq!(not_ready.status, StatusCode::SERVICE_UNAVAILABLE);
    let body = json_of(&not_ready);
    assert_eq!((body["ready"].clone(), body["store"].clone()), (json!(false), json!("ok")));
    assert!(body["upstream"].as_str().unwrap().starts_with("error: cannot connect"), "{body}");
    assert_eq!(api(&http, "GET", &gate.admin_url("/healthz"), None, None).await.status, StatusCode::OK);
    gate.stop().await;
}

/// The value of one sample line of the OpenMetrics text.
fn sample(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("{name} not in\n{metrics}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn metrics_count_requests_by_outcome_and_the_verify_cache() {
    let backend = Recorder::start().await;
    let gate = Gate::start_with_admin(&backend.url(), Extra::default()).await;
    let http = Http::h1();
    let pw = gate.password("alice", all()).await;
    let caldav_only = gate.password("alice", services(&["caldav"])).await;
    let wrong_secret = format!("{}zzzzz", &pw[..pw.len() - 5]);
    assert_eq!(http.get(&gate.url("/alice/a"), "alice", &pw).await.status, 200);
    assert_eq!(http.get(&gate.url("/alice/b"), "alice", &pw).await.status, 200);
    assert_eq!(http.call("PROPFIND", &gate.url("/files/alice/"), Some(("alice", &caldav_only)), &[]).await.status, 403);
    assert_eq!(http.get(&gate.url("/alice/c"), "alice", &wrong_secret).await.status, 401);
    assert_eq!(http.call("GET", &gate.url("/alice/d"), None, &[]).await.status, 401);

    let metrics = api(&http, "GET", &gate.admin_url("/metrics"), None, None).await;
    assert_eq!(metrics.headers["content-type"], "application/openmetrics-text; version=1.0.0; charset=utf-8");
    let m = metrics.text();
    assert_eq!(sample(&m, r#"davgate_requests_total{outcome="ok",method="GET"}"#), 2.0);
    assert_eq!(sample(&m, r#"davgate_requests_total{outcome="forbidden_scope",method="PROPFIND"}"#), 1.0);
    assert_eq!(sample(&m, r#"davgate_requests_total{outcome="unauthenticated",method="GET"}"#), 2.0);
    assert_eq!(sample(&m, r#"davgate_requests_total{outcome="upstream_error",method="GET"}"#), 0.0);
    assert_eq!(sample(&m, "davgate_verify_cache_hits_total"), 1.0);
    assert_eq!(sample(&m, "davgate_verify_cache_misses_total"), 3.0, "first use, the scoped password, the wrong one");
    assert_eq!(sample(&m, "davgate_argon2_verification_seconds_count"), 3.0);
    assert_eq!(sample(&m, "davgate_upstream_response_seconds_count"), 2.0);
    assert!(sample(&m, "davgate_connections_active") >= 1.0, "the client's kept-alive connection");
    assert_eq!(sample(&m, "davgate_store_errors_total"), 0.0);
    let writes = gate.app.store.write_count() as f64;
    assert_eq!(sample(&m, "davgate_store_writes"), writes, "account changes only, no request wrote");
    assert!(m.contains("davgate_activity_flush_seconds_count"));
    gate.stop().await;

    let dead = format!("http://127.0.0.1:{}", common::backends::free_port());
    let gate = Gate::start_with_admin(&dead, Extra::default()).await;
    let pw = gate.password("alice", all()).await;
    assert_eq!(http.get(&gate.url("/alice/a"), "alice", &pw).await.status, 502);
    let m = api(&http, "GET", &gate.admin_url("/metrics"), None, None).await.text();
    assert_eq!(sample(&m, r#"davgate_requests_total{outcome="upstream_error",method="GET"}"#), 1.0);
    gate.stop().await;
}
