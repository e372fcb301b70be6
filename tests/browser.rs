//! The page in a real browser (Debian's headless Chromium): sign in with
//! TOTP, create a CalDAV-only password, read it off the page, use it
//! against a real Radicale, revoke it on the page, and see the next DAV
//! request refused. Screenshots at phone and desktop width go to
//! `target/browser-artifacts/`.

#[path = "common/browser.rs"]
mod browser;
mod common;

use browser::Browser;
use common::backends::Radicale;
use common::{Gate, Http, gate::Extra};
use davgate::logins::Logins;
use davgate::secret::Secret;
use davgate::store::model::unix_now;
use fantoccini::Locator;
use http::StatusCode;

const RADICALE_SERVICES: &str =
    "[services]\ncaldav = [\"/{user}/\"]\ncarddav = [\"/{user}/\"]\nfiles = [\"/files/{user}/\"]\n";
const LOGIN: &str = "correct horse battery";

async fn find(b: &Browser, css: &str) -> fantoccini::elements::Element {
    // A click that submits a form returns before the next page is there.
    match b.client.wait().at_most(std::time::Duration::from_secs(10)).for_element(Locator::Css(css)).await {
        Ok(e) => e,
        Err(e) => {
            panic!("{css}: {e}\non {}:\n{}", b.client.current_url().await.unwrap(), b.client.source().await.unwrap())
        }
    }
}

/// Waits for the browser to arrive at `path`.
async fn arrive(b: &Browser, path: &str) {
    for _ in 0..100 {
        if b.client.current_url().await.unwrap().path() == path {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("never reached {path}; at {}:\n{}", b.client.current_url().await.unwrap(), b.client.source().await.unwrap());
}

async fn fill(b: &Browser, css: &str, text: &str) {
    let field = find(b, css).await;
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

async fn click(b: &Browser, css: &str) {
    find(b, css).await.click().await.unwrap();
}

async fn text(b: &Browser, css: &str) -> String {
    find(b, css).await.text().await.unwrap()
}

async fn propfind(gate: &Gate, password: &str) -> StatusCode {
    let davx5 = "DAVx5/4.4.3.2-ose (2024/09/10; dav4jvm; okhttp/4.12.0) Android/14";
    let headers = [("depth", "1"), ("user-agent", davx5)];
    Http::h1().call("PROPFIND", &gate.url("/alice/"), Some(("alice", password)), &headers).await.status
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_in_with_totp_create_use_and_revoke_in_a_real_browser() {
    let radicale = Radicale::start();
    let gate = Gate::start_with(&radicale.url, Extra { sections: RADICALE_SERVICES, ..Extra::default() }).await;
    gate.app.accounts.add_user("alice", "test").await.unwrap();
    gate.app.web.logins.set_password("alice", &Secret::new(LOGIN.into()), "test").await.unwrap();
    // A calendar to offer on the create form, made through davgate.
    let setup = gate.password("alice", common::all()).await;
    let made = Http::h1().call("MKCALENDAR", &gate.url("/alice/work/"), Some(("alice", &setup)), &[]).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text());

    let b = Browser::start().await;
    b.client.goto(&gate.url("/account/")).await.unwrap();
    arrive(&b, "/account/login").await;
    fill(&b, "#user", "alice").await;
    fill(&b, "#password", LOGIN).await;
    click(&b, "#signin").await;
    arrive(&b, "/account/").await;

    // Enrol TOTP: the phone's code from the step before (still accepted),
    // so the sign-in below gets a step of its own and no replay.
    b.client.goto(&gate.url("/account/security")).await.unwrap();
    click(&b, "#totp-start").await;
    find(&b, "#totp-confirm").await;
    let secret = text(&b, "#totp-secret").await;
    fill(&b, "#code", &Logins::code_at(&secret, unix_now() - 30).unwrap()).await;
    click(&b, "#totp-confirm").await;
    find(&b, "#recovery-codes").await;
    assert_eq!(b.client.find_all(Locator::Css("#recovery-codes li")).await.unwrap().len(), 10);

    click(&b, "button.link").await; // sign out
    arrive(&b, "/account/login").await;
    fill(&b, "#user", "alice").await;
    fill(&b, "#password", LOGIN).await;
    click(&b, "#signin").await;
    fill(&b, "#code", &Logins::code_at(&secret, unix_now()).unwrap()).await;
    click(&b, "#verify").await;
    arrive(&b, "/account/").await; // signed in with TOTP

    click(&b, "#new-password").await;
    arrive(&b, "/account/new").await;
    let form = b.client.source().await.unwrap();
    assert!(form.contains("value=\"/alice/work/\""), "the backend's calendar is offered:\n{form}");
    fill(&b, "#name", "Phone calendar").await;
    for other in ["#service-carddav", "#service-files"] {
        click(&b, other).await; // untick: CalDAV only
    }
    click(&b, "#create").await;
    arrive(&b, "/account/created").await;
    let password = text(&b, "#app-password").await;
    assert_eq!(password.len(), 29, "{password}");
    assert!(!b.client.current_url().await.unwrap().as_str().contains(&password), "never in a URL");
    for (w, h, name) in [(360, 800, "created-phone"), (1280, 900, "created-desktop")] {
        b.resize(w, h).await;
        b.screenshot(name).await;
    }

    assert_eq!(propfind(&gate, &password).await, StatusCode::MULTI_STATUS);

    b.client.goto(&gate.url("/account/")).await.unwrap();
    let list = b.client.source().await.unwrap();
    assert!(list.contains("Phone calendar") && list.contains("caldav"));
    assert!(list.contains("DAVx5 4.4 on Android"), "the client, as a person names it");
    assert!(!list.contains(&password), "shown once");
    for (w, h, name) in [(360, 800, "list-phone"), (1280, 900, "list-desktop")] {
        b.resize(w, h).await;
        b.screenshot(name).await;
    }
    click(&b, &format!("#revoke-{}", &password[..5])).await;
    click(&b, "#confirm").await;
    arrive(&b, "/account/").await;
    assert!(b.client.source().await.unwrap().contains("was revoked"));
    assert_eq!(propfind(&gate, &password).await, StatusCode::UNAUTHORIZED, "refused right after the revoke");
    b.close().await;
}
