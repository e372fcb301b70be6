//! The password list, create (shown once), rename, revoke, revoke all,
//! app access and history.

use super::{Signed, chrome, html, lock, message, redirect};
use crate::accounts::{AccountError, NewPassword, PasswordView};
use crate::error::{Body, full};
use crate::gateway::scope::Scope;
use crate::store::EventQuery;
use crate::store::model::{Event, EventKind, unix_now};
use crate::web::client_label::client_label;
use crate::web::forms::{Errors, Form, query_param};
use crate::web::pages::{
    self, Choice, CollectionChoice, Confirm, Created, ExpiryChoice, History, HistoryEntry, List, PasswordRow, Rename,
};
use crate::web::session::{Reveal, random_token};
use crate::web::{Ctx, Web, mobileconfig, qr};
use http::{HeaderValue, Response, StatusCode, Uri, header};
use std::time::{Duration, Instant};

/// How long the setup-profile link of a just-created password works.
const PROFILE_WINDOW: Duration = Duration::from_secs(600);
const HISTORY_PAGE: usize = 25;
const DAY: u64 = 86_400;

fn store_trouble(web: &Web, s: &Signed, e: &AccountError) -> Response<Body> {
    tracing::warn!(error = %e, "account page: store error");
    message(web, Some(s), StatusCode::SERVICE_UNAVAILABLE, "Try again later", "The account store is unavailable.")
}

fn row(p: PasswordView, now: u64) -> PasswordRow {
    let last = p.last_activity.as_ref();
    PasswordRow {
        services: if p.scope.is_all_paths() { vec!["everything".into()] } else { p.scope.services.clone() },
        read_only: p.scope.read_only,
        collections: p.scope.collections.clone(),
        networks: p.scope.networks.iter().map(|n| n.to_string()).collect(),
        created: pages::date(p.created),
        created_iso: pages::iso(p.created),
        expires: p.expires.map(pages::date).unwrap_or_else(|| "never".into()),
        active: p.status == "active",
        status: p.status,
        last_used: last.map(|a| pages::ago(a.at, now)).unwrap_or_else(|| "never".into()),
        client: last.map(|a| client_label(a.user_agent.as_deref().unwrap_or(""))),
        ip: last.map(|a| a.ip.to_string()),
        id: p.id,
        name: p.name,
    }
}

pub async fn list(web: &Web, _ctx: &Ctx, s: &Signed, uri: &Uri) -> Response<Body> {
    let (account, passwords) = match (web.accounts.user(&s.user).await, web.accounts.list_passwords(&s.user).await) {
        (Ok(a), Ok(p)) => (a, p),
        (Err(e), _) | (_, Err(e)) => return store_trouble(web, s, &e),
    };
    let now = unix_now();
    let mut rows: Vec<PasswordRow> = passwords.into_iter().map(|p| row(p, now)).collect();
    rows.sort_by(|a, b| b.active.cmp(&a.active).then_with(|| b.created_iso.cmp(&a.created_iso)));
    // Fixed texts only: the query never reflects into the page.
    let notice = match query_param(uri, "done").as_deref() {
        Some("revoked") => Some("The app password was revoked. That app can no longer sign in."),
        Some("revoked-all") => Some("Every app password was revoked."),
        Some("renamed") => Some("Renamed."),
        Some("access-on") => Some("App access is on."),
        Some("access-off") => Some("App access is off: every app password is refused."),
        _ => None,
    };
    let page = List {
        chrome: chrome(web, Some(s), "passwords"),
        notice: notice.map(String::from),
        app_access: account.app_access,
        active_count: rows.iter().filter(|r| r.active).count(),
        rows,
    };
    html(StatusCode::OK, &page)
}

/// What the create form holds, for showing it again with errors.
#[derive(Default)]
pub struct Draft {
    pub name: String,
    pub services: Vec<String>,
    pub collections: Vec<String>,
    pub read_only: bool,
    pub expiry: String,
    pub expiry_date: String,
    pub networks: String,
    /// Start with no service ticked.
    pub untick: bool,
}

impl Draft {
    pub fn from_form(form: &Form) -> Draft {
        Draft {
            name: form.get("name").to_string(),
            services: form.all("service").into_iter().map(String::from).collect(),
            collections: form.all("collection").into_iter().map(String::from).collect(),
            read_only: form.has("read_only"),
            expiry: form.get("expiry").to_string(),
            expiry_date: form.get("expiry_date").to_string(),
            networks: form.get("networks").to_string(),
            untick: false,
        }
    }
}

/// The expiry choices the policy allows, with the default picked.
fn expiry_choices(web: &Web, picked: &str) -> Vec<ExpiryChoice> {
    let policy = web.accounts.policy();
    let max_days = policy.max_lifetime.map(|d| d.as_secs() / DAY);
    let default = policy.default_lifetime.map(|d| (d.as_secs() / DAY).to_string());
    let mut values: Vec<(&'static str, String)> = Vec::new();
    if max_days.is_none() {
        values.push(("never", "Never".into()));
    }
    for (value, days) in [("30", 30), ("90", 90), ("365", 365)] {
        if max_days.is_none_or(|m| days <= m) {
            values.push((value, format!("In {days} days")));
        }
    }
    values.push(("date", "On a date".into()));
    let picked = if values.iter().any(|(v, _)| *v == picked) {
        picked.to_string()
    } else {
        default.filter(|d| values.iter().any(|(v, _)| v == d)).unwrap_or_else(|| values[0].0.to_string())
    };
    values.into_iter().map(|(value, label)| ExpiryChoice { value, label, checked: value == picked }).collect()
}

/// The create form (also the Login Flow's grant form).
pub async fn form_page(
    web: &Web,
    s: &Signed,
    draft: Draft,
    errors: Errors,
    heading: String,
    intro: Option<String>,
    action: String,
) -> Response<Body> {
    // A new form starts with every service ticked; the login flow's starts
    // with none, so a tricked user grants nothing by one click.
    let fresh = draft.services.is_empty() && errors.is_empty() && !draft.untick;
    let services = web
        .accounts
        .service_names()
        .into_iter()
        .map(|name| Choice {
            label: match name.as_str() {
                "caldav" => "Calendars and tasks (CalDAV)".into(),
                "carddav" => "Contacts (CardDAV)".into(),
                "files" => "Files (WebDAV)".into(),
                other => other.to_string(),
            },
            checked: fresh || draft.services.contains(&name),
            name,
        })
        .collect();
    let collections = web
        .collections
        .list(&s.user)
        .await
        .into_iter()
        .map(|c| CollectionChoice {
            checked: draft.collections.contains(&c.path),
            label: c.name,
            kind: c.kind,
            path: c.path,
        })
        .collect();
    let status = if errors.is_empty() { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    let page = pages::NewPassword {
        chrome: chrome(web, Some(s), "passwords"),
        heading,
        intro,
        action,
        submit: "Create password",
        errors,
        name: draft.name,
        services,
        collections,
        read_only: draft.read_only,
        expiry_options: expiry_choices(web, &draft.expiry),
        expiry_date: draft.expiry_date,
        networks: draft.networks,
    };
    html(status, &page)
}

pub async fn new_form(web: &Web, _ctx: &Ctx, s: &Signed) -> Response<Body> {
    let action = format!("{}new", web.config.path);
    form_page(web, s, Draft::default(), Errors::default(), "New app password".into(), None, action).await
}

/// Checks a create form; every problem is named next to its field.
/// Collections must be ones the backend listed for this user: a path
/// typed into the form could name someone else's.
pub async fn parse_draft(web: &Web, s: &Signed, draft: &Draft) -> Result<NewPassword, Errors> {
    let mut errors = Errors::default();
    if !draft.collections.is_empty() {
        let listed: Vec<String> = web.collections.list(&s.user).await.into_iter().map(|c| c.path).collect();
        if draft.collections.iter().any(|c| !listed.contains(c)) {
            errors.add("service", "Choose calendars and address books from the list.");
        }
    }
    let name = draft.name.trim();
    if name.is_empty() {
        errors.add("name", "Give it a name, e.g. the device or app it is for.");
    } else if name.chars().count() > crate::accounts::MAX_NAME_CHARS {
        errors.add("name", "A name is at most 64 characters.");
    }
    let known = web.accounts.service_names();
    if draft.services.is_empty() && draft.collections.is_empty() {
        errors.add("service", "Choose at least one thing it may reach.");
    }
    if let Some(bad) = draft.services.iter().find(|s| !known.contains(s)) {
        errors.add("service", format!("There is no service called {bad:?}."));
    }
    let mut networks = Vec::new();
    for line in draft.networks.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let parsed = line.parse::<ipnet::IpNet>().or_else(|_| line.parse::<std::net::IpAddr>().map(Into::into));
        match parsed {
            Ok(n) => networks.push(n),
            Err(_) => errors.add("networks", format!("{line:?} is not an address or network like 192.0.2.0/24.")),
        }
    }
    let now = unix_now();
    let expires = match draft.expiry.as_str() {
        "never" | "" => None,
        "30" | "90" | "365" => draft.expiry.parse::<u64>().ok().map(|d| now + d * DAY),
        "date" => match crate::accounts::parse_date(&draft.expiry_date) {
            Some(at) if at > now => Some(at),
            Some(_) => {
                errors.add("expiry", "That date is in the past.");
                None
            }
            None => {
                errors.add("expiry", "Pick a date, or another choice.");
                None
            }
        },
        _ => {
            errors.add("expiry", "Pick one of the choices.");
            None
        }
    };
    if let (Some(e), Some(max)) = (expires, web.accounts.policy().max_lifetime)
        && e > now + max.as_secs()
    {
        errors.add("expiry", format!("At most {} from today.", humantime::format_duration(max)));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    // Chosen collections narrow the password to them alone.
    let (services, collections) = if draft.collections.is_empty() {
        (draft.services.clone(), Vec::new())
    } else {
        (Vec::new(), draft.collections.clone())
    };
    let scope = Scope { services, collections, read_only: draft.read_only, networks };
    Ok(NewPassword { name: name.to_string(), scope, expires })
}

/// Turns an account error on create into a message next to a field.
pub fn create_error(e: AccountError) -> Result<Errors, AccountError> {
    let mut errors = Errors::default();
    match e {
        AccountError::TooMany { max, .. } => errors
            .add("form", format!("You already have {max} active app passwords. Revoke one you no longer use first.")),
        AccountError::Invalid(why) if why.contains("expiry") => errors.add("expiry", why),
        AccountError::Invalid(why) if why.contains("collection") => errors.add("service", why),
        AccountError::Invalid(why) => errors.add("name", why),
        other => return Err(other),
    }
    Ok(errors)
}

pub async fn create(web: &Web, _ctx: &Ctx, s: &Signed, form: Form) -> Response<Body> {
    let draft = Draft::from_form(&form);
    let action = format!("{}new", web.config.path);
    let heading = "New app password".to_string();
    let new = match parse_draft(web, s, &draft).await {
        Ok(new) => new,
        Err(errors) => return form_page(web, s, draft, errors, heading, None, action).await,
    };
    let created = match web.accounts.create_password(&s.user, new, "user").await {
        Ok(c) => c,
        Err(e) => match create_error(e) {
            Ok(errors) => return form_page(web, s, draft, errors, heading, None, action).await,
            Err(e) => return store_trouble(web, s, &e),
        },
    };
    lock(&s.session).reveal = Some(Reveal {
        password_id: created.view.id.clone(),
        secret: created.password,
        profile_token: None,
        created: Instant::now(),
    });
    // The secret is shown by a GET that works once: a reload or the back
    // button finds it gone, and never re-submits the form.
    redirect(&format!("{}created", web.config.path))
}

/// What the setup profile would configure, from the password's scope.
fn profile_kinds(web: &Web, scope: &Scope) -> (bool, bool) {
    if scope.is_all_paths() {
        let names = web.accounts.service_names();
        return (names.iter().any(|n| n == "caldav"), names.iter().any(|n| n == "carddav"));
    }
    let caldav = scope.services.iter().any(|s| s == "caldav");
    let carddav = scope.services.iter().any(|s| s == "carddav");
    if scope.collections.is_empty() { (caldav, carddav) } else { (true, true) }
}

pub async fn created(web: &Web, ctx: &Ctx, s: &Signed) -> Response<Body> {
    let (id, secret, token) = {
        let mut session = lock(&s.session);
        let Some(reveal) = session.reveal.as_mut().filter(|r| r.profile_token.is_none()) else {
            drop(session);
            return message(
                web,
                Some(s),
                StatusCode::GONE,
                "Shown once",
                "An app password is shown only once, right after it is created. If you did not copy it, revoke it and create a new one.",
            );
        };
        let token = random_token();
        reveal.profile_token = Some(token.clone());
        (reveal.password_id.clone(), reveal.secret.clone(), token)
    };
    let (name, scope) = match web.accounts.password(&s.user, &id).await {
        Ok(v) => (v.name, v.scope),
        _ => (id.clone(), Scope::default()),
    };
    let (caldav, carddav) = profile_kinds(web, &scope);
    let profile_services = match (caldav, carddav) {
        (true, true) => "calendars and contacts",
        (true, false) => "calendars",
        (false, true) => "contacts",
        (false, false) => "",
    };
    let profile_url = (caldav || carddav).then(|| format!("{}created/profile/{token}", web.config.path));
    let page = Created {
        chrome: chrome(web, Some(s), "passwords"),
        name: &name,
        password: secret.expose(),
        server_url: &ctx.server_url,
        user: &s.user,
        profile_url,
        profile_services,
        qr_svg: qr::svg(&davx5_link(&ctx.server_url, &s.user, secret.expose()), "QR code for DAVx5"),
    };
    html(StatusCode::OK, &page)
}

/// A DAVx5 login link: `davx5://` (HTTPS) or `caldav://` (plain HTTP) with
/// the credentials as user info. It only ever lives in the QR code.
pub fn davx5_link(server_url: &str, user: &str, password: &str) -> String {
    let enc = |s: &str| percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string();
    let (scheme, host) = match server_url.split_once("://") {
        Some(("http", host)) => ("caldav", host),
        Some((_, host)) => ("davx5", host),
        None => ("davx5", server_url),
    };
    format!("{scheme}://{}:{}@{host}/", enc(user), enc(password))
}

/// The Apple setup profile of the password just shown, once.
pub async fn profile(web: &Web, ctx: &Ctx, s: &Signed, token: &str) -> Response<Body> {
    let reveal = {
        let mut session = lock(&s.session);
        let fresh = session.reveal.as_ref().is_some_and(|r| {
            r.profile_token.as_deref().is_some_and(|t| crate::secret::Secret::new(t.to_string()).ct_eq(token))
                && r.created.elapsed() < PROFILE_WINDOW
        });
        if fresh { session.reveal.take() } else { None }
    };
    let Some(reveal) = reveal else {
        let text = "This download works once, for a few minutes after the password is created.";
        return message(web, Some(s), StatusCode::GONE, "Link expired", text);
    };
    let (name, scope) = match web.accounts.password(&s.user, &reveal.password_id).await {
        Ok(v) => (v.name, v.scope),
        _ => (reveal.password_id.clone(), Scope::default()),
    };
    let (caldav, carddav) = profile_kinds(web, &scope);
    let url: Uri = ctx.server_url.parse().unwrap_or_default();
    let tls = url.scheme_str() == Some("https");
    let body = mobileconfig::Profile {
        host: url.host().unwrap_or("localhost"),
        port: url.port_u16().unwrap_or(if tls { 443 } else { 80 }),
        tls,
        user: &s.user,
        password: reveal.secret.expose(),
        principal_path: None,
        caldav,
        carddav,
        label: &name,
    }
    .render();
    let mut res = Response::new(full(body));
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mobileconfig::CONTENT_TYPE));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{}\"", mobileconfig::file_name(&name))) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    res
}

async fn own(web: &Web, s: &Signed, id: &str) -> Result<PasswordView, Response<Body>> {
    match web.accounts.password(&s.user, id).await {
        Ok(p) => Ok(p),
        Err(AccountError::UnknownPassword(..)) => {
            Err(message(web, Some(s), StatusCode::NOT_FOUND, "Not found", "You have no app password with that id."))
        }
        Err(e) => Err(store_trouble(web, s, &e)),
    }
}

pub async fn rename_form(web: &Web, s: &Signed, id: &str) -> Response<Body> {
    match own(web, s, id).await {
        Ok(p) => {
            let page = Rename {
                chrome: chrome(web, Some(s), "passwords"),
                id: &p.id,
                current: &p.name,
                name: &p.name,
                error: None,
            };
            html(StatusCode::OK, &page)
        }
        Err(res) => res,
    }
}

pub async fn rename(web: &Web, s: &Signed, id: &str, form: Form) -> Response<Body> {
    let p = match own(web, s, id).await {
        Ok(p) => p,
        Err(res) => return res,
    };
    match web.accounts.rename_password(&s.user, id, form.get("name"), "user").await {
        Ok(()) => redirect(&format!("{}?done=renamed", web.config.path)),
        Err(AccountError::Invalid(why)) => {
            let page = Rename {
                chrome: chrome(web, Some(s), "passwords"),
                id: &p.id,
                current: &p.name,
                name: form.get("name"),
                error: Some(why),
            };
            html(StatusCode::BAD_REQUEST, &page)
        }
        Err(e) => store_trouble(web, s, &e),
    }
}

pub async fn confirm_revoke(web: &Web, s: &Signed, id: &str) -> Response<Body> {
    match own(web, s, id).await {
        Ok(p) => html(
            StatusCode::OK,
            &Confirm {
                chrome: chrome(web, Some(s), "passwords"),
                heading: format!("Revoke “{}”?", p.name),
                text: "The app using it stops syncing at once and must be given a new password. This cannot be undone.",
                action: format!("{}passwords/{}/revoke", web.config.path, p.id),
                button: "Revoke",
            },
        ),
        Err(res) => res,
    }
}

pub async fn revoke(web: &Web, s: &Signed, id: &str) -> Response<Body> {
    if let Err(res) = own(web, s, id).await {
        return res;
    }
    match web.accounts.revoke(&s.user, id, "user").await {
        Ok(()) => redirect(&format!("{}?done=revoked", web.config.path)),
        Err(e) => store_trouble(web, s, &e),
    }
}

pub fn confirm_revoke_all(web: &Web, s: &Signed) -> Response<Body> {
    html(
        StatusCode::OK,
        &Confirm {
            chrome: chrome(web, Some(s), "passwords"),
            heading: "Revoke every app password?".into(),
            text: "Every app and device stops syncing at once. Use this if a device was lost or you are unsure which one is compromised.",
            action: format!("{}revoke-all", web.config.path),
            button: "Revoke all",
        },
    )
}

pub async fn revoke_all(web: &Web, s: &Signed) -> Response<Body> {
    match web.accounts.revoke_all(&s.user, "user").await {
        Ok(_) => redirect(&format!("{}?done=revoked-all", web.config.path)),
        Err(e) => store_trouble(web, s, &e),
    }
}

pub async fn app_access(web: &Web, s: &Signed, form: Form) -> Response<Body> {
    let on = match form.get("access") {
        "on" => true,
        "off" => false,
        _ => return crate::web::plain(StatusCode::BAD_REQUEST, "access must be on or off\n"),
    };
    match web.accounts.set_app_access(&s.user, on, "user").await {
        Ok(_) => redirect(&format!("{}?done=access-{}", web.config.path, if on { "on" } else { "off" })),
        Err(e) => store_trouble(web, s, &e),
    }
}

fn describe(e: &Event, names: &std::collections::HashMap<String, String>) -> (String, String) {
    let pw = || {
        e.password_id
            .as_ref()
            .map(|id| names.get(id).map(|n| format!("“{n}”")).unwrap_or_else(|| format!("password {id}")))
            .unwrap_or_default()
    };
    let what = match e.kind {
        EventKind::UserCreated => "Account created".into(),
        EventKind::UserDisabled => "Account disabled by an administrator".into(),
        EventKind::UserEnabled => "Account enabled".into(),
        EventKind::AppAccessOn => "App access turned on".into(),
        EventKind::AppAccessOff => "App access turned off".into(),
        EventKind::PasswordCreated => format!("Created {}", pw()),
        EventKind::PasswordRenamed => format!("Renamed {}", pw()),
        EventKind::PasswordRevoked => format!("Revoked {}", pw()),
        EventKind::PasswordsRevokedAll => "Revoked every app password".into(),
        EventKind::PasswordExpired => format!("{} expired", pw()),
        EventKind::NewClient => format!("{} used by a new client", pw()),
        EventKind::SignedIn => "Signed in".into(),
        EventKind::SignInFailed => "Failed sign-in".into(),
        EventKind::LoginPasswordChanged => "Login password changed".into(),
        EventKind::TotpEnabled => "Two-step verification turned on".into(),
        EventKind::TotpDisabled => "Two-step verification turned off".into(),
    };
    let by = match e.actor.as_str() {
        "user" | "expiry" | "sso" => String::new(),
        _ => "by an administrator".into(),
    };
    let detail: Vec<String> =
        [e.detail.clone().unwrap_or_default(), by].into_iter().filter(|s| !s.is_empty()).collect();
    (what, detail.join("; "))
}

pub async fn history(web: &Web, s: &Signed, uri: &Uri) -> Response<Body> {
    let page_no: usize = query_param(uri, "page").and_then(|p| p.parse().ok()).unwrap_or(0).min(100_000);
    let query = EventQuery {
        user: Some(s.user.clone()),
        offset: page_no * HISTORY_PAGE,
        limit: HISTORY_PAGE + 1,
        ..EventQuery::default()
    };
    let (mut events, passwords) = match (web.accounts.events(&query).await, web.accounts.list_passwords(&s.user).await)
    {
        (Ok(e), Ok(p)) => (e, p),
        (Err(e), _) | (_, Err(e)) => return store_trouble(web, s, &e),
    };
    let names = passwords.into_iter().map(|p| (p.id, p.name)).collect();
    let more = events.len() > HISTORY_PAGE;
    events.truncate(HISTORY_PAGE);
    let entries = events
        .iter()
        .map(|e| {
            let (what, detail) = describe(e, &names);
            HistoryEntry { when: pages::date_time(e.at), iso: pages::iso(e.at), what, detail }
        })
        .collect();
    let page = History {
        chrome: chrome(web, Some(s), "history"),
        entries,
        newer: page_no.checked_sub(1),
        older: more.then_some(page_no + 1),
    };
    html(StatusCode::OK, &page)
}
