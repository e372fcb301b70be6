//! The self-service page over HTTP: sign-in (local, TOTP, trusted header),
//! sessions, CSRF, the shown-once password, policy limits, revocation that
//! reaches the gateway, and the Nextcloud Login Flow v2 from the client's side.

mod common;

use common::web::{WebClient, element_text, input_value};
use common::{Gate, Recorder, gate::Extra};
use davgate::secret::Secret;
use http::StatusCode;

const LOGIN: &str = "correct horse battery";

async fn gate_with_user(recorder: &Recorder, sections: &str) -> Gate {
    let gate = Gate::start_with(&recorder.url(), Extra { sections, ..Extra::default() }).await;
    gate.app.accounts.add_user("alice", "test").await.unwrap();
    gate.app.web.logins.set_password("alice", &Secret::new(LOGIN.into()), "test").await.unwrap();
    gate
}

async fn dav_status(gate: &Gate, user: &str, password: &str, path: &str) -> StatusCode {
    common::Http::h1().get(&gate.url(path), user, password).await.status
}

#[tokio::test]
async fn sign_in_create_show_once_and_revoke_reaches_the_gateway() {
    let recorder = Recorder::start().await;
    let gate = gate_with_user(&recorder, "").await;
    let mut web = WebClient::new(&gate.url(""));

    // Not signed in: every page leads to the sign-in form.
    let r = web.get("/account/new").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.headers["location"], "/account/login?next=%2Faccount%2Fnew");

    // Wrong password: refused, no session.
    let r = web.submit("/account/login", "/account/login", &[("user", "alice"), ("password", "nope")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.text().contains("Wrong user name or password"));
    assert!(!web.cookies.contains_key("davgate_session"));
    // Unknown user: the same answer.
    let r = web.submit("/account/login", "/account/login", &[("user", "mallory"), ("password", LOGIN)]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    web.sign_in("alice", LOGIN).await;
    let cookie = web.get("/account/login").await;
    assert_eq!(cookie.status, StatusCode::SEE_OTHER, "signed in: the form sends you on");

    let secret = web.create_password(&[("name", "Phone"), ("service", "caldav"), ("expiry", "never")]).await;
    assert_eq!(secret.len(), 29, "{secret}");
    // Shown once: not on reload, not on the list.
    let again = web.get("/account/created").await;
    assert_eq!(again.status, StatusCode::GONE);
    assert!(!again.text().contains(&secret));
    let list = web.get("/account/").await;
    assert!(list.text().contains("Phone") && !list.text().contains(&secret));

    assert_eq!(dav_status(&gate, "alice", &secret, "/calendars/alice/x.ics").await, StatusCode::OK);
    assert_eq!(dav_status(&gate, "alice", &secret, "/addressbooks/alice/").await, StatusCode::FORBIDDEN, "caldav only");

    // Last activity is live on the list; the first use is in the history.
    let list = web.get("/account/").await.text();
    assert!(list.contains("just now"), "{list}");
    gate.app.activity.flush(gate.app.store.as_ref()).await.unwrap();
    let history = web.get("/account/history").await.text();
    assert!(history.contains("“Phone” used by a new client"), "{history}");

    // Revoke on the page: the very next DAV request is refused.
    let id = &secret[..5];
    let r =
        web.submit(&format!("/account/passwords/{id}/revoke"), &format!("/account/passwords/{id}/revoke"), &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(dav_status(&gate, "alice", &secret, "/calendars/alice/x.ics").await, StatusCode::UNAUTHORIZED);
    let list = web.get("/account/?done=revoked").await.text();
    assert!(list.contains("revoked"));

    // Sign out ends the session server-side.
    let session = web.cookies["davgate_session"].clone();
    let r = web.submit("/account/", "/account/logout", &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    web.cookies.insert("davgate_session".into(), session);
    assert_eq!(web.get("/account/").await.status, StatusCode::SEE_OTHER, "the old cookie is dead");
}

#[tokio::test]
async fn forms_without_the_csrf_token_are_refused() {
    let recorder = Recorder::start().await;
    let gate = gate_with_user(&recorder, "").await;
    let mut web = WebClient::new(&gate.url(""));
    // The sign-in form itself: no token, or a token not matching the cookie.
    let r = web.post("/account/login", &[("user", "alice"), ("password", LOGIN)]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    web.get("/account/login").await;
    let r = web.post("/account/login", &[("csrf", "forged"), ("user", "alice"), ("password", LOGIN)]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    web.sign_in("alice", LOGIN).await;
    for (action, fields) in [
        ("/account/new", vec![("name", "X"), ("service", "caldav"), ("expiry", "never")]),
        ("/account/revoke-all", vec![]),
        ("/account/app-access", vec![("access", "off")]),
        ("/account/logout", vec![]),
    ] {
        let mut forged = fields.clone();
        forged.push(("csrf", "not-the-token"));
        assert_eq!(web.post(action, &forged).await.status, StatusCode::FORBIDDEN, "{action}");
        assert_eq!(web.post(action, &fields).await.status, StatusCode::FORBIDDEN, "{action} without a token");
    }
    let user = gate.app.accounts.user("alice").await.unwrap();
    assert!(user.app_access, "nothing changed");
    assert!(gate.app.accounts.list_passwords("alice").await.unwrap().is_empty());
}

#[tokio::test]
async fn pages_carry_strict_headers_and_cookies() {
    let recorder = Recorder::start().await;
    let gate = gate_with_user(&recorder, "").await;
    let mut web = WebClient::new(&gate.url(""));
    let r = web.get("/account/login").await;
    let csp = r.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline") && csp.contains("frame-ancestors 'none'")
    );
    assert_eq!(r.headers["x-frame-options"], "DENY");
    assert_eq!(r.headers["referrer-policy"], "no-referrer");
    assert_eq!(r.headers["cache-control"], "no-store");
    let html = r.text();
    assert!(!html.contains("<script>") && !html.contains("style="), "no inline script or style");

    // Plain HTTP on loopback: the cookie cannot be Secure, but is HttpOnly and SameSite=Strict.
    let r = web.submit("/account/login", "/account/login", &[("user", "alice"), ("password", LOGIN)]).await;
    let set = r.headers["set-cookie"].to_str().unwrap();
    assert!(
        set.starts_with("davgate_session=") && set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(!set.contains("Secure"));
    let created = web.create_password(&[("name", "A"), ("service", "caldav"), ("expiry", "30")]).await;
    assert!(!created.is_empty());
    let list = web.get("/account/").await;
    assert_eq!(list.headers["cache-control"], "no-store");
    // Another site's page cannot frame or script it; a page with a secret is never cached.
    let mut again = WebClient::new(&gate.url(""));
    again.sign_in("alice", LOGIN).await;
    let r =
        again.submit("/account/new", "/account/new", &[("name", "B"), ("service", "caldav"), ("expiry", "30")]).await;
    assert_eq!(r.headers["location"], "/account/created", "the password never goes in a URL");
    let shown = again.get("/account/created").await;
    assert_eq!(shown.headers["cache-control"], "no-store");
    assert_eq!(shown.headers["x-frame-options"], "DENY");
    let html = shown.text();
    let secret = element_text(&html, "app-password").unwrap();
    assert!(html.contains("<svg"), "the DAVx5 QR code");

    // The Apple profile downloads once, with the password in it.
    let at = html.find("/account/created/profile/").expect("a profile link");
    let link = &html[at..at + html[at..].find('"').unwrap()];
    let profile = again.get(link).await;
    assert_eq!(profile.status, StatusCode::OK);
    assert_eq!(profile.headers["content-type"], "application/x-apple-aspen-config");
    assert!(profile.headers["content-disposition"].to_str().unwrap().starts_with("attachment; filename=\"davgate-"));
    let plist = profile.text();
    assert!(plist.contains("com.apple.caldav.account") && !plist.contains("com.apple.carddav.account"));
    assert!(plist.contains(&secret) && plist.contains("<string>alice</string>"));
    assert_eq!(again.get(link).await.status, StatusCode::GONE, "once");
}

#[tokio::test]
async fn a_trusted_proxy_makes_cookies_secure() {
    let recorder = Recorder::start().await;
    let gate = gate_with_user(&recorder, "").await;
    // Through a TLS terminator on loopback (trusted): Secure cookies.
    let gate2 =
        Gate::start_with(&recorder.url(), Extra { server: "trusted_proxies = [\"127.0.0.1/32\"]", ..Extra::default() })
            .await;
    drop(gate);
    let mut web = WebClient::new(&gate2.url(""));
    web.headers.push(("x-forwarded-proto".into(), "https".into()));
    let r = web.get("/account/login").await;
    let set = r.headers["set-cookie"].to_str().unwrap();
    assert!(set.contains("; Secure") && set.contains("HttpOnly") && set.contains("SameSite=Strict"), "{set}");
}

#[tokio::test]
async fn totp_enrolment_sign_in_replay_and_recovery_codes() {
    let recorder = Recorder::start().await;
    let gate = gate_with_user(&recorder, "").await;
    let mut web = WebClient::new(&gate.url(""));
    web.sign_in("alice", LOGIN).await;

    let setup = web.submit("/account/security", "/account/security/totp/start", &[]).await;
    assert_eq!(setup.status, StatusCode::OK);
    let html = setup.text();
    assert!(html.contains("<svg"), "a QR code");
    let secret = element_text(&html, "totp-secret").unwrap();
    let csrf = input_value(&html, "csrf").unwrap();
    let r = web.post("/account/security/totp/confirm", &[("csrf", &csrf), ("code", "000000")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "a wrong confirmation code");
    let code = davgate::logins::Logins::code_at(&secret, davgate::store::model::unix_now()).unwrap();
    let r = web.post("/account/security/totp/confirm", &[("csrf", &csrf), ("code", &code)]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let page = r.text();
    let codes: Vec<String> = page.split("<li><code>").skip(1).map(|s| s[..s.find('<').unwrap()].to_string()).collect();
    assert_eq!(codes.len(), 10);
    assert!(gate.app.web.logins.has_totp("alice").await.unwrap());
    let again = web.submit("/account/security", "/account/security/totp/start", &[]).await.text();
    assert!(again.contains("already on") && !again.contains("totp-secret"), "no silent re-enrolment");

    // Password alone no longer signs in.
    let mut fresh = WebClient::new(&gate.url(""));
    let r = fresh.submit("/account/login", "/account/login", &[("user", "alice"), ("password", LOGIN)]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().contains("Two-step verification"));
    assert_eq!(fresh.get("/account/").await.status, StatusCode::SEE_OTHER, "half signed in is not signed in");
    let csrf = input_value(&r.text(), "csrf").unwrap();
    let r = fresh.post("/account/login/code", &[("csrf", &csrf), ("code", "123456")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // The code used for enrolment cannot be replayed.
    let r = fresh.post("/account/login/code", &[("csrf", &csrf), ("code", &code)]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "a code is accepted once");
    // A recovery code works, once.
    let r = fresh.post("/account/login/code", &[("csrf", &csrf), ("code", &codes[0].to_uppercase())]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    assert_eq!(fresh.get("/account/").await.status, StatusCode::OK);

    let mut third = WebClient::new(&gate.url(""));
    let r = third.submit("/account/login", "/account/login", &[("user", "alice"), ("password", LOGIN)]).await;
    let csrf = input_value(&r.text(), "csrf").unwrap();
    let r = third.post("/account/login/code", &[("csrf", &csrf), ("code", &codes[0])]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "a recovery code is used up");

    let history = fresh.get("/account/history").await.text();
    assert!(history.contains("Two-step verification turned on") && history.contains("Failed sign-in"));
}

#[tokio::test]
async fn failed_sign_ins_are_throttled_per_user() {
    let recorder = Recorder::start().await;
    let throttle =
        "[throttle]\nmax_failures = 3\nbase_delay = \"1ms\"\nmax_delay = \"1ms\"\ntarpit = \"1ms\"\nwindow = \"10m\"\n";
    let gate = gate_with_user(&recorder, throttle).await;
    let mut web = WebClient::new(&gate.url(""));
    for _ in 0..3 {
        let r = web.submit("/account/login", "/account/login", &[("user", "alice"), ("password", "wrong")]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }
    let r = web.submit("/account/login", "/account/login", &[("user", "alice"), ("password", LOGIN)]).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "even the right password waits");
    assert!(r.text().contains("Too many failed attempts"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_guesses_gets_no_more_checks_than_the_throttle_allows() {
    let recorder = Recorder::start().await;
    let throttle =
        "[throttle]\nmax_failures = 3\nbase_delay = \"1ms\"\nmax_delay = \"1ms\"\ntarpit = \"1ms\"\nwindow = \"10m\"\n";
    let gate = gate_with_user(&recorder, throttle).await;
    let mut template = WebClient::new(&gate.url(""));
    let html = template.get("/account/login").await.text();
    let csrf = input_value(&html, "csrf").unwrap();
    let cookies = template.cookies.clone();
    let guesses = (0..20).map(|i| {
        let (base, csrf, cookies) = (gate.url(""), csrf.clone(), cookies.clone());
        tokio::spawn(async move {
            let mut web = WebClient::new(&base);
            web.cookies = cookies;
            let guess = format!("guess number {i}");
            web.post("/account/login", &[("csrf", &csrf), ("user", "alice"), ("password", &guess)]).await.status
        })
    });
    let mut checked = 0;
    for g in guesses.collect::<Vec<_>>() {
        match g.await.unwrap() {
            StatusCode::FORBIDDEN => checked += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(checked, 3, "only max_failures guesses were checked; the rest waited for nothing");

    // The current-password check on the security page counts too.
    let gate = gate_with_user(&recorder, throttle).await;
    let mut web = WebClient::new(&gate.url(""));
    web.sign_in("alice", LOGIN).await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let fields = [("current", "not my password"), ("new", "0123456789ab"), ("repeat", "0123456789ab")];
        statuses.push(web.submit("/account/security", "/account/security/password", &fields).await.status);
    }
    assert_eq!(statuses[..3], [StatusCode::BAD_REQUEST; 3]);
    assert_eq!(statuses[3], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
}

#[tokio::test]
async fn sessions_expire_when_idle() {
    let recorder = Recorder::start().await;
    let gate = gate_with_user(&recorder, "[web]\nsession_idle = \"1s\"\nsession_max = \"1h\"\n").await;
    let mut web = WebClient::new(&gate.url(""));
    web.sign_in("alice", LOGIN).await;
    assert_eq!(web.get("/account/").await.status, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(web.get("/account/").await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn sessions_end_when_an_admin_resets_the_password_or_disables_the_user() {
    let recorder = Recorder::start().await;
    let gate = gate_with_user(&recorder, "").await;
    let mut web = WebClient::new(&gate.url(""));
    web.sign_in("alice", LOGIN).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await; // a later second than the sign-in
    gate.app.web.logins.set_password("alice", &Secret::new("a brand new one".into()), "cli").await.unwrap();
    assert_eq!(web.get("/account/").await.status, StatusCode::SEE_OTHER, "signed out by the reset");

    web.sign_in("alice", "a brand new one").await;
    assert_eq!(web.get("/account/").await.status, StatusCode::OK);
    gate.app.accounts.set_user_state("alice", davgate::store::model::UserState::Disabled, "cli").await.unwrap();
    assert_eq!(web.get("/account/new").await.status, StatusCode::SEE_OTHER, "a disabled user is signed out");
    let r = web.submit("/account/login", "/account/login", &[("user", "alice"), ("password", "a brand new one")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "and cannot sign in");
}

#[tokio::test]
async fn policy_limits_show_next_to_the_field() {
    let recorder = Recorder::start().await;
    let policy = "[policy]\nmax_active_passwords = 1\nmax_lifetime = \"90d\"\n";
    let gate = gate_with_user(&recorder, policy).await;
    let mut web = WebClient::new(&gate.url(""));
    web.sign_in("alice", LOGIN).await;
    let form = web.get("/account/new").await.text();
    assert!(!form.contains("value=\"never\""), "no 'never' under a maximum lifetime");
    assert!(!form.contains("value=\"365\""));

    let r = web.submit("/account/new", "/account/new", &[("name", ""), ("service", "caldav"), ("expiry", "30")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("id=\"name-error\""));
    let r = web
        .submit(
            "/account/new",
            "/account/new",
            &[("name", "A"), ("service", "caldav"), ("expiry", "date"), ("expiry_date", "2999-01-01")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("id=\"expiry-error\""), "{}", r.text());
    let r = web
        .submit(
            "/account/new",
            "/account/new",
            &[("name", "A"), ("networks", "not-a-net"), ("service", "caldav"), ("expiry", "30")],
        )
        .await;
    assert!(r.text().contains("id=\"networks-error\""));
    let long = "x".repeat(65);
    let r =
        web.submit("/account/new", "/account/new", &[("name", &long), ("service", "caldav"), ("expiry", "30")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    let r = web
        .submit(
            "/account/new",
            "/account/new",
            &[("name", "Bob's"), ("collection", "/calendars/bob/"), ("expiry", "30")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "a collection the backend did not list for alice");
    assert!(r.text().contains("id=\"service-error\""));
    assert!(gate.app.accounts.list_passwords("alice").await.unwrap().is_empty());

    web.create_password(&[("name", "One"), ("service", "caldav"), ("expiry", "90")]).await;
    let r =
        web.submit("/account/new", "/account/new", &[("name", "Two"), ("service", "caldav"), ("expiry", "30")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("already have 1 active app passwords"));
}

#[tokio::test]
async fn app_access_switch_and_password_change_policy() {
    let recorder = Recorder::start().await;
    let gate = gate_with_user(&recorder, "[policy]\nrevoke_on_password_change = true\n").await;
    let mut web = WebClient::new(&gate.url(""));
    web.sign_in("alice", LOGIN).await;
    let secret = web.create_password(&[("name", "Laptop"), ("service", "caldav"), ("expiry", "never")]).await;
    let path = "/calendars/alice/a.ics";
    assert_eq!(dav_status(&gate, "alice", &secret, path).await, StatusCode::OK);

    web.submit("/account/", "/account/app-access", &[("access", "off")]).await;
    assert_eq!(dav_status(&gate, "alice", &secret, path).await, StatusCode::UNAUTHORIZED);
    web.submit("/account/", "/account/app-access", &[("access", "on")]).await;
    assert_eq!(dav_status(&gate, "alice", &secret, path).await, StatusCode::OK);

    let mut other = WebClient::new(&gate.url(""));
    other.sign_in("alice", LOGIN).await;
    let new = "battery staple horse";
    let r = web
        .submit(
            "/account/security",
            "/account/security/password",
            &[("current", "wrong"), ("new", new), ("repeat", new)],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("id=\"current-error\""));
    let r = web
        .submit("/account/security", "/account/security/password", &[("current", LOGIN), ("new", new), ("repeat", new)])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().contains("1 app passwords were revoked"), "{}", r.text());
    assert_eq!(dav_status(&gate, "alice", &secret, path).await, StatusCode::UNAUTHORIZED);
    assert_eq!(other.get("/account/").await.status, StatusCode::SEE_OTHER, "other sessions end");
    assert_eq!(web.get("/account/").await.status, StatusCode::OK, "this one stays");

    let history = web.get("/account/history").await.text();
    for line in [
        "App access turned off",
        "App access turned on",
        "Login password changed",
        "Revoked every app password",
        "Created “Laptop”",
        "Signed in",
    ] {
        assert!(history.contains(line), "{line} in\n{history}");
    }
}

#[tokio::test]
async fn trusted_header_only_from_trusted_proxies() {
    let recorder = Recorder::start().await;
    let sso = "[web]\nauth = \"trusted-header\"\nauto_create_users = true\n";
    // 127.0.0.1 is the trusted SSO front.
    let trusted = Gate::start_with(
        &recorder.url(),
        Extra { server: "trusted_proxies = [\"127.0.0.1/32\"]", sections: sso, ..Extra::default() },
    )
    .await;
    let mut web = WebClient::new(&trusted.url(""));
    web.headers.push(("remote-user".into(), "bob".into()));
    let r = web.get("/account/").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(trusted.app.accounts.user("bob").await.is_ok(), "created on first sign-in");
    let secret = web.create_password(&[("name", "Tablet"), ("service", "carddav"), ("expiry", "never")]).await;
    assert_eq!(dav_status(&trusted, "bob", &secret, "/addressbooks/bob/").await, StatusCode::OK);
    // The header switches user: the old session does not carry over.
    web.headers = vec![("remote-user".into(), "carol".into())];
    let list = web.get("/account/").await.text();
    assert!(list.contains("carol") && !list.contains("Tablet"));
    let mut none = WebClient::new(&trusted.url(""));
    assert_eq!(none.get("/account/").await.status, StatusCode::FORBIDDEN, "no header, no user");
    // Paths a front may not guard are not the page: the header means nothing there.
    for path in ["/index.php/login/v2/other", "/account/../account/", "/account/%2e%2e/", "/x/../account/"] {
        let r = web.get(path).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}: the gateway asks for an app password");
    }
    let r = web.submit("/account/", "/account/logout", &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "sign-out works with SSO too");

    // Here the trusted proxy is elsewhere: the header from 127.0.0.1 is refused.
    let untrusted = Gate::start_with(
        &recorder.url(),
        Extra { server: "trusted_proxies = [\"10.9.9.9/32\"]", sections: sso, ..Extra::default() },
    )
    .await;
    let mut forger = WebClient::new(&untrusted.url(""));
    forger.headers.push(("remote-user".into(), "bob".into()));
    let r = forger.get("/account/").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(untrusted.app.accounts.user("bob").await.is_err(), "nobody was created");
}

#[tokio::test]
async fn nextcloud_login_flow_v2_from_the_clients_side() {
    let recorder = Recorder::start().await;
    let gate = gate_with_user(&recorder, "").await;
    let http = common::Http::h1();
    let start = http
        .call(
            "POST",
            &gate.url("/index.php/login/v2"),
            None,
            &[("user-agent", "DAVx5/4.4.3.2-ose (2024/09/10; dav4jvm; okhttp/4.12.0) Android/14")],
        )
        .await;
    assert_eq!(start.status, StatusCode::OK);
    let flow: serde_json::Value = serde_json::from_slice(&start.body).unwrap();
    let login_url = flow["login"].as_str().unwrap().to_string();
    let endpoint = flow["poll"]["endpoint"].as_str().unwrap().to_string();
    let token = flow["poll"]["token"].as_str().unwrap().to_string();
    assert_eq!(endpoint, gate.url("/index.php/login/v2/poll"));

    let poll = || async {
        let body = form_urlencoded::Serializer::new(String::new()).append_pair("token", &token).finish();
        let req = http::Request::post(&endpoint)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .unwrap();
        common::Http::h1().send(req).await
    };
    assert_eq!(poll().await.status, StatusCode::NOT_FOUND, "pending");

    // The browser: sign-in first, then back to the flow page.
    let mut web = WebClient::new(&gate.url(""));
    let r = web.get(&login_url).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let to_login = r.headers["location"].to_str().unwrap().to_string();
    let html = web.get(&to_login).await.text();
    let next = input_value(&html, "next").unwrap();
    assert!(login_url.ends_with(&next), "{next}");
    let csrf = input_value(&html, "csrf").unwrap();
    let r =
        web.post("/account/login", &[("csrf", &csrf), ("user", "alice"), ("password", LOGIN), ("next", &next)]).await;
    assert_eq!(r.headers["location"].to_str().unwrap(), next);
    let page = web.get(&next).await.text();
    assert!(page.contains("Connect DAVx5 4.4 on Android"), "{page}");
    assert!(page.contains("from 127.0.0.1") && page.contains("trick you"), "a warning against phishing");
    let service_boxes: Vec<&str> = page.split("name=\"service\"").skip(1).map(|t| &t[..t.find('>').unwrap()]).collect();
    assert_eq!(service_boxes.len(), 3);
    assert!(service_boxes.iter().all(|b| !b.contains("checked")), "nothing is granted by one click");
    let r = web
        .submit(&next, &next, &[("name", "DAVx5"), ("service", "caldav"), ("service", "carddav"), ("expiry", "never")])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.text().contains("Access granted"));

    let granted = poll().await;
    assert_eq!(granted.status, StatusCode::OK);
    let creds: serde_json::Value = serde_json::from_slice(&granted.body).unwrap();
    assert_eq!(creds["server"], gate.url(""));
    assert_eq!(creds["loginName"], "alice");
    let app_password = creds["appPassword"].as_str().unwrap();
    assert_eq!(dav_status(&gate, "alice", app_password, "/calendars/alice/").await, StatusCode::OK);
    assert_eq!(poll().await.status, StatusCode::NOT_FOUND, "the poll token is single use");
    assert_eq!(web.get(&next).await.status, StatusCode::NOT_FOUND, "the browser link is single use");
    assert!(!r.text().contains(app_password), "the browser never sees the password");
}
