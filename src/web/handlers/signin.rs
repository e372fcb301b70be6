//! Signing in and out: local (login password, then an optional TOTP or
//! recovery code) or from an SSO front's trusted header.

use super::{Signed, chrome, html, lock, redirect, safe_next, session_cookie};
use crate::error::Body;
use crate::gateway::throttle::Verdict;
use crate::logins::PasswordCheck;
use crate::secret::Secret;
use crate::web::client_label::client_label;
use crate::web::forms::{Form, query_param};
use crate::web::pages::{SecondFactor, SignIn};
use crate::web::session::{self, PRE_COOKIE, Stage, random_token};
use crate::web::{Ctx, Web};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use std::time::Duration;

const PRE_COOKIE_AGE: Duration = Duration::from_secs(3600);

pub fn form(web: &Web, req: &Request<Incoming>, ctx: &Ctx) -> Response<Body> {
    if super::signed_in(ctx).is_some() {
        return redirect(&web.config.path);
    }
    let next = query_param(req.uri(), "next").filter(|n| safe_next(web, n)).unwrap_or_default();
    // Double-submit token: the form must echo the cookie, which another
    // site can neither read nor set (SameSite=Strict, HttpOnly).
    let token = session::cookie(req.headers(), PRE_COOKIE).map(String::from).unwrap_or_else(random_token);
    let page = SignIn { chrome: chrome(web, None, ""), pre_token: &token, next: &next, user: "", error: None };
    let mut res = html(StatusCode::OK, &page);
    super::add_cookie(&mut res, &session::set_cookie(PRE_COOKIE, &token, ctx.secure, Some(PRE_COOKIE_AGE)));
    res
}

fn refused(web: &Web, ctx: &Ctx, status: StatusCode, user: &str, next: &str, error: &str) -> Response<Body> {
    let token = random_token();
    let page = SignIn { chrome: chrome(web, None, ""), pre_token: &token, next, user, error: Some(error) };
    let mut res = html(status, &page);
    super::add_cookie(&mut res, &session::set_cookie(PRE_COOKIE, &token, ctx.secure, Some(PRE_COOKIE_AGE)));
    res
}

fn too_many(retry_after: Duration) -> String {
    let minutes = retry_after.as_secs().div_ceil(60).max(1);
    format!("Too many failed attempts. Try again in {minutes} minute{}.", if minutes == 1 { "" } else { "s" })
}

/// Why a guarded check did not say yes or no.
pub enum Blocked {
    Throttled(Duration),
    Unavailable,
}

/// Runs one secret check (`check` returns whether it matched) under the
/// throttle: one at a time per user, the throttle's delay first, the
/// failure counted before the next attempt may start.
pub async fn guarded<F>(web: &Web, ctx: &Ctx, user: &str, check: F) -> Result<bool, Blocked>
where
    F: std::future::Future<Output = Result<bool, crate::accounts::AccountError>>,
{
    let lock = web.state.attempts.get_with_by_ref(user, Default::default);
    let _one_at_a_time = lock.lock().await;
    match web.state.throttle.check(ctx.client_ip, user) {
        Verdict::Refuse(retry_after) => return Err(Blocked::Throttled(retry_after)),
        Verdict::Proceed(delay) => tokio::time::sleep(delay).await,
    }
    match check.await {
        Ok(true) => Ok(true),
        Ok(false) => {
            web.state.throttle.record_failure(ctx.client_ip, user);
            Ok(false)
        }
        Err(e) => {
            tracing::warn!(error = %e, "sign-in check failed");
            Err(Blocked::Unavailable)
        }
    }
}

fn unavailable() -> Response<Body> {
    crate::web::plain(StatusCode::SERVICE_UNAVAILABLE, "busy or the account store is unavailable: try again\n")
}

pub async fn submit(web: &Web, req: Request<Incoming>, ctx: &Ctx) -> Response<Body> {
    let cookie = session::cookie(req.headers(), PRE_COOKIE).map(String::from);
    let form = match Form::read(req.into_body()).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    let next = Some(form.get("next")).filter(|n| safe_next(web, n)).unwrap_or_default().to_string();
    let user = form.get("user").to_string();
    if cookie.is_none_or(|c| !Secret::new(c).ct_eq(form.get("csrf"))) {
        let why = "The sign-in form expired. Please try again.";
        return refused(web, ctx, StatusCode::FORBIDDEN, &user, &next, why);
    }
    if user.is_empty() || form.raw("password").is_empty() {
        return refused(web, ctx, StatusCode::BAD_REQUEST, &user, &next, "Enter your user name and password.");
    }
    if user.chars().count() > crate::accounts::MAX_USER_CHARS {
        return refused(web, ctx, StatusCode::FORBIDDEN, "", &next, "Wrong user name or password.");
    }
    let presented = Secret::new(form.raw("password").to_string());
    let mut outcome = PasswordCheck::Refused;
    let check = async {
        outcome = web.state.logins.check_password(&user, &presented).await?;
        Ok(outcome != PasswordCheck::Refused)
    };
    match guarded(web, ctx, &user, check).await {
        Ok(_) => {}
        Err(Blocked::Throttled(retry_after)) => {
            return refused(web, ctx, StatusCode::TOO_MANY_REQUESTS, &user, &next, &too_many(retry_after));
        }
        Err(Blocked::Unavailable) => return unavailable(),
    }
    let stage = match outcome {
        PasswordCheck::Refused => {
            note_sign_in(web, ctx, &user, false, "wrong password").await;
            return refused(web, ctx, StatusCode::FORBIDDEN, &user, &next, "Wrong user name or password.");
        }
        PasswordCheck::Accepted => Stage::SignedIn,
        PasswordCheck::NeedsSecondFactor => Stage::SecondFactor,
    };
    let id = web.state.sessions.start(&user, stage);
    let mut res = if stage == Stage::SignedIn {
        note_sign_in(web, ctx, &user, true, "password").await;
        redirect(if next.is_empty() { &web.config.path } else { &next })
    } else {
        let csrf = web.state.sessions.get(&id).map(|s| lock(&s).csrf.clone()).unwrap_or_default();
        let mut c = chrome(web, None, "");
        c.csrf = csrf;
        html(StatusCode::OK, &SecondFactor { chrome: c, next: &next, error: None })
    };
    super::add_cookie(&mut res, &session_cookie(ctx, &id));
    super::add_cookie(&mut res, &session::set_cookie(PRE_COOKIE, "", ctx.secure, Some(Duration::ZERO)));
    res
}

pub async fn second_factor(web: &Web, req: Request<Incoming>, ctx: &Ctx) -> Response<Body> {
    let Some((id, session)) = ctx.session.clone() else { return redirect(&format!("{}login", web.config.path)) };
    let (user, csrf, stage) = {
        let s = lock(&session);
        (s.user.clone(), s.csrf.clone(), s.stage)
    };
    if stage != Stage::SecondFactor {
        return redirect(&web.config.path);
    }
    let form = match Form::read(req.into_body()).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    let next = Some(form.get("next")).filter(|n| safe_next(web, n)).unwrap_or_default().to_string();
    let again = |status, error: &str| {
        let mut c = chrome(web, None, "");
        c.csrf = csrf.clone();
        html(status, &SecondFactor { chrome: c, next: &next, error: Some(error) })
    };
    if !Secret::new(csrf.clone()).ct_eq(form.get("csrf")) {
        return again(StatusCode::FORBIDDEN, "The form expired. Please enter the code again.");
    }
    match guarded(web, ctx, &user, web.state.logins.check_second_factor(&user, form.get("code"))).await {
        Ok(true) => {}
        Ok(false) => {
            note_sign_in(web, ctx, &user, false, "wrong code").await;
            return again(StatusCode::FORBIDDEN, "That code is not right. Codes change every 30 seconds.");
        }
        Err(Blocked::Throttled(retry_after)) => return again(StatusCode::TOO_MANY_REQUESTS, &too_many(retry_after)),
        Err(Blocked::Unavailable) => return unavailable(),
    }
    // A new session id once fully signed in: a fixated id is worthless.
    web.state.sessions.end(&id);
    let new_id = web.state.sessions.start(&user, Stage::SignedIn);
    note_sign_in(web, ctx, &user, true, "password and code").await;
    let mut res = redirect(if next.is_empty() { &web.config.path } else { &next });
    super::add_cookie(&mut res, &session_cookie(ctx, &new_id));
    res
}

pub async fn logout(web: &Web, req: Request<Incoming>, ctx: &Ctx) -> Response<Body> {
    if let Some(s) = super::signed_in(ctx) {
        if let Err(res) = super::checked_form(req, &s).await {
            return res;
        }
        web.state.sessions.end(&s.id);
    }
    let mut res = redirect(&format!("{}login", web.config.path));
    super::add_cookie(&mut res, &session::set_cookie(session::COOKIE, "", ctx.secure, Some(Duration::ZERO)));
    res
}

/// The user an SSO front vouches for (the caller checked the peer is a
/// trusted proxy). Reuses the session while it belongs to that user.
pub async fn from_header(
    web: &Web,
    req: &Request<Incoming>,
    ctx: &Ctx,
) -> Result<(Signed, Option<String>), Response<Body>> {
    let user = req
        .headers()
        .get(web.config.user_header.as_str())
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| crate::web::plain(StatusCode::FORBIDDEN, "the single sign-on front sent no user\n"))?
        .to_string();
    if let Some(s) = super::signed_in(ctx).filter(|s| s.user == user) {
        return Ok((s, None));
    }
    if let Some((id, _)) = &ctx.session {
        web.state.sessions.end(id);
    }
    match web.accounts.user(&user).await {
        Ok(account) if account.state == crate::store::model::UserState::Active => {}
        Ok(_) => return Err(crate::web::plain(StatusCode::FORBIDDEN, "this account is disabled\n")),
        Err(crate::accounts::AccountError::UnknownUser(_)) if web.config.auto_create_users => {
            if let Err(e) = web.accounts.add_user(&user, "sso").await {
                tracing::warn!(error = %e, "cannot create the user on first sign-in");
                return Err(crate::web::plain(StatusCode::BAD_REQUEST, "this user name cannot be used here\n"));
            }
        }
        Err(crate::accounts::AccountError::UnknownUser(_)) => {
            return Err(crate::web::plain(
                StatusCode::FORBIDDEN,
                "your account is not set up for app passwords yet: ask your administrator\n",
            ));
        }
        Err(e) => {
            tracing::warn!(error = %e, "sign-in check failed");
            return Err(crate::web::plain(StatusCode::SERVICE_UNAVAILABLE, "the account store is unavailable\n"));
        }
    }
    let id = web.state.sessions.start(&user, Stage::SignedIn);
    let session = web
        .state
        .sessions
        .get(&id)
        .ok_or_else(|| crate::web::plain(StatusCode::SERVICE_UNAVAILABLE, "too many sessions\n"))?;
    note_sign_in(web, ctx, &user, true, "single sign-on").await;
    let (csrf, signed_in_at) = {
        let s = lock(&session);
        (s.csrf.clone(), s.signed_in_at)
    };
    Ok((Signed { id: id.clone(), user, csrf, session, signed_in_at }, Some(session_cookie(ctx, &id))))
}

/// A sign-in (or failure) in the account's history; unknown users have none.
async fn note_sign_in(web: &Web, ctx: &Ctx, user: &str, ok: bool, how: &str) {
    if web.accounts.user(user).await.is_err() {
        return;
    }
    let detail = format!("{how}, from {} ({})", ctx.client_ip, client_label(&ctx.user_agent));
    if let Err(e) = web.state.logins.record_sign_in(user, ok, detail).await {
        tracing::warn!(error = %e, "cannot record the sign-in");
    }
}
