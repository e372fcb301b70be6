//! Routing and the helpers every page handler shares.

mod flow;
mod passwords;
mod security;
mod signin;

use super::forms::Form;
use super::pages::{Chrome, Message};
use super::session::{self, Session, SessionRef, Stage};
use super::{Ctx, LOGIN_FLOW_PREFIX, Web};
use crate::config::WebAuth;
use crate::error::{Body, full};
use crate::gateway::Peer;
use askama::Template;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;

const STYLE: &str = include_str!("../../../assets/web/style.css");
const COPY_JS: &str = include_str!("../../../assets/web/copy.js");

/// The signed-in user of a request, with what the handlers need from the
/// session (copied out: the lock is never held across an await).
pub struct Signed {
    pub id: String,
    pub user: String,
    pub csrf: String,
    pub session: SessionRef,
    pub signed_in_at: u64,
}

pub async fn route(web: &Web, req: Request<Incoming>, ctx: Ctx, peer: Peer) -> Response<Body> {
    let path = req.uri().path().to_string();
    if web.config.login_flow
        && let Some(rest) = path.strip_prefix(LOGIN_FLOW_PREFIX)
    {
        match (req.method(), rest) {
            (&Method::POST, "") => return flow::start(web, &ctx),
            (&Method::POST, "/poll") => return flow::poll(web, req).await,
            _ => {}
        }
        // The browser half needs a signed-in user, like the page.
    }
    let rest = match path.strip_prefix(&web.config.path) {
        Some(rest) => rest.to_string(),
        None if path.starts_with(LOGIN_FLOW_PREFIX) => String::new(),
        None => return redirect(&web.config.path),
    };
    match (req.method(), rest.as_str()) {
        (&Method::GET, "static/style.css") => return asset(STYLE, "text/css; charset=utf-8"),
        (&Method::GET, "static/copy.js") => return asset(COPY_JS, "text/javascript; charset=utf-8"),
        _ => {}
    }
    if (req.method(), rest.as_str()) == (&Method::POST, "logout") {
        return signin::logout(web, req, &ctx).await;
    }
    let (signed, set_cookie) = match web.config.auth {
        WebAuth::Local => match (req.method(), rest.as_str()) {
            (&Method::GET, "login") => return signin::form(web, &req, &ctx),
            (&Method::POST, "login") => return signin::submit(web, req, &ctx).await,
            (&Method::POST, "login/code") => return signin::second_factor(web, req, &ctx).await,
            _ => match signed_in(&ctx) {
                Some(s) => (s, None),
                None => return to_sign_in(web, &req),
            },
        },
        WebAuth::TrustedHeader => {
            if !web.is_trusted(peer.addr.ip()) {
                // The SSO front is the only way in: anyone else could
                // claim any user with the header.
                return super::plain(StatusCode::FORBIDDEN, "sign in through the single sign-on front\n");
            }
            match signin::from_header(web, &req, &ctx).await {
                Ok(pair) => pair,
                Err(res) => return res,
            }
        }
    };
    if !still_valid(web, &signed).await {
        web.state.sessions.end(&signed.id);
        return match web.config.auth {
            WebAuth::Local => to_sign_in(web, &req),
            WebAuth::TrustedHeader => super::plain(StatusCode::FORBIDDEN, "this account is disabled\n"),
        };
    }
    // A shown-once password never outlives the page that showed it (the
    // profile download is the one exception, for a few minutes).
    if !rest.starts_with("created") && !path.starts_with(LOGIN_FLOW_PREFIX) {
        lock(&signed.session).reveal = None;
    }
    let mut res = dispatch(web, req, &ctx, &signed, &rest, &path).await;
    if let Some(cookie) = set_cookie {
        add_cookie(&mut res, &cookie);
    }
    res
}

async fn dispatch(web: &Web, req: Request<Incoming>, ctx: &Ctx, s: &Signed, rest: &str, path: &str) -> Response<Body> {
    let method = req.method().clone();
    if let Some(token) = path.strip_prefix(&format!("{LOGIN_FLOW_PREFIX}/flow/")) {
        let token = token.to_string();
        return match method {
            Method::GET => flow::page(web, ctx, s, &token).await,
            Method::POST => match checked_form(req, s).await {
                Ok(form) => flow::grant(web, ctx, s, &token, form).await,
                Err(res) => res,
            },
            _ => not_allowed("GET, POST"),
        };
    }
    if method == Method::GET {
        return match rest {
            "" => passwords::list(web, ctx, s, req.uri()).await,
            "login" => redirect(&web.config.path),
            "new" => passwords::new_form(web, ctx, s).await,
            "created" => passwords::created(web, ctx, s).await,
            "history" => passwords::history(web, s, req.uri()).await,
            "security" => security::page(web, s, None).await,
            "revoke-all" => passwords::confirm_revoke_all(web, s),
            _ => match rest.strip_prefix("passwords/").map(|r| r.split_once('/').unwrap_or((r, ""))) {
                Some((id, "")) => passwords::rename_form(web, s, id).await,
                Some((id, "revoke")) => passwords::confirm_revoke(web, s, id).await,
                _ => match rest.strip_prefix("created/profile/") {
                    Some(token) => passwords::profile(web, ctx, s, token).await,
                    None => not_found(web, Some(s)),
                },
            },
        };
    }
    if method != Method::POST {
        return not_allowed("GET, POST");
    }
    let form = match checked_form(req, s).await {
        Ok(form) => form,
        Err(res) => return res,
    };
    match rest {
        "new" => passwords::create(web, ctx, s, form).await,
        "app-access" => passwords::app_access(web, s, form).await,
        "revoke-all" => passwords::revoke_all(web, s).await,
        "security/password" => security::change_password(web, ctx, s, form).await,
        "security/totp/start" => security::totp_start(web, s).await,
        "security/totp/confirm" => security::totp_confirm(web, s, form).await,
        "security/totp/disable" => security::totp_disable(web, ctx, s, form).await,
        _ => match rest.strip_prefix("passwords/").and_then(|r| r.split_once('/')) {
            Some((id, "rename")) => passwords::rename(web, s, id, form).await,
            Some((id, "revoke")) => passwords::revoke(web, s, id).await,
            _ => not_found(web, Some(s)),
        },
    }
}

/// A session ends when its user is disabled or removed, or when the login
/// password changed after it signed in (an admin reset, another session).
async fn still_valid(web: &Web, s: &Signed) -> bool {
    let active = matches!(web.accounts.user(&s.user).await, Ok(u) if u.state == crate::store::model::UserState::Active);
    let changed = web.state.logins.changed_at(&s.user).await.unwrap_or(u64::MAX);
    active && changed <= s.signed_in_at
}

fn signed_in(ctx: &Ctx) -> Option<Signed> {
    let (id, session) = ctx.session.as_ref()?;
    let s = lock(session);
    (s.stage == Stage::SignedIn).then(|| Signed {
        id: id.clone(),
        user: s.user.clone(),
        csrf: s.csrf.clone(),
        session: session.clone(),
        signed_in_at: s.signed_in_at,
    })
}

/// Reads a POST form and checks its CSRF token against the session's.
async fn checked_form(req: Request<Incoming>, s: &Signed) -> Result<Form, Response<Body>> {
    let form = Form::read(req.into_body()).await?;
    if !crate::secret::Secret::new(s.csrf.clone()).ct_eq(form.get("csrf")) {
        return Err(super::plain(
            StatusCode::FORBIDDEN,
            "this form has expired or came from another site: go back, reload the page and try again\n",
        ));
    }
    Ok(form)
}

pub fn lock(session: &SessionRef) -> std::sync::MutexGuard<'_, Session> {
    // A poisoned session only means a panic elsewhere; its data is plain.
    session.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn chrome(web: &Web, s: Option<&Signed>, current: &'static str) -> Chrome {
    Chrome {
        base: web.config.path.clone(),
        user: s.map(|s| s.user.clone()).unwrap_or_default(),
        csrf: s.map(|s| s.csrf.clone()).unwrap_or_default(),
        current,
    }
}

pub fn html(status: StatusCode, page: &impl Template) -> Response<Body> {
    match page.render() {
        Ok(body) => {
            let mut res = Response::new(full(body));
            *res.status_mut() = status;
            res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
            res
        }
        Err(e) => {
            tracing::error!(error = %e, "page template failed");
            super::plain(StatusCode::INTERNAL_SERVER_ERROR, "the page could not be rendered\n")
        }
    }
}

pub fn message(web: &Web, s: Option<&Signed>, status: StatusCode, heading: &str, text: &str) -> Response<Body> {
    let link = Some((web.config.path.clone(), "Back to your passwords"));
    html(status, &Message { chrome: chrome(web, s, ""), heading, text, link })
}

fn not_found(web: &Web, s: Option<&Signed>) -> Response<Body> {
    message(web, s, StatusCode::NOT_FOUND, "Not found", "There is no such page here.")
}

fn not_allowed(allow: &'static str) -> Response<Body> {
    let mut res = super::plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here\n");
    res.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
    res
}

/// `303 See Other`: after a POST, the browser GETs the next page, so a
/// reload never repeats the action.
pub fn redirect(location: &str) -> Response<Body> {
    let mut res = Response::new(full(""));
    *res.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

pub fn add_cookie(res: &mut Response<Body>, cookie: &str) {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
}

fn asset(text: &'static str, content_type: &'static str) -> Response<Body> {
    let mut res = Response::new(full(text));
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    res
}

/// Sends a visitor without a session to the sign-in page, remembering
/// where they were going.
fn to_sign_in(web: &Web, req: &Request<Incoming>) -> Response<Body> {
    let next = req.uri().path();
    let mut target = format!("{}login", web.config.path);
    if safe_next(web, next) && next != web.config.path {
        target.push_str("?next=");
        target.extend(form_urlencoded::byte_serialize(next.as_bytes()));
    }
    redirect(&target)
}

/// Where a sign-in may send the browser: our own pages only, never a
/// URL of someone else's choosing.
pub fn safe_next(web: &Web, next: &str) -> bool {
    (next.starts_with(&web.config.path) || next.starts_with(&format!("{LOGIN_FLOW_PREFIX}/flow/")))
        && super::is_plain_path(next)
}

/// The session cookie for a new session.
pub fn session_cookie(ctx: &Ctx, id: &str) -> String {
    session::set_cookie(session::COOKIE, id, ctx.secure, None)
}
