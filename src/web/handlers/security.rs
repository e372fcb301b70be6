//! Login password change and the TOTP second factor (local sign-in only).

use super::signin::{Blocked, guarded};
use super::{Signed, chrome, html, lock, message};
use crate::accounts::AccountError;
use crate::config::WebAuth;
use crate::error::Body;
use crate::logins::PasswordCheck;
use crate::secret::Secret;
use crate::web::forms::{Errors, Form};
use crate::web::pages::{Recovery, Security, TotpSetup};
use crate::web::{Ctx, Web, qr};
use http::{Response, StatusCode};

pub async fn page(web: &Web, s: &Signed, notice: Option<String>) -> Response<Body> {
    render(web, s, notice, Errors::default()).await
}

async fn render(web: &Web, s: &Signed, notice: Option<String>, errors: Errors) -> Response<Body> {
    let totp = match web.state.logins.has_totp(&s.user).await {
        Ok(t) => t,
        Err(e) => return trouble(web, s, &e),
    };
    let status = if errors.is_empty() { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    let page = Security {
        chrome: chrome(web, Some(s), "security"),
        notice,
        local: web.config.auth == WebAuth::Local,
        totp,
        revokes: web.accounts.policy().revoke_on_password_change,
        errors,
    };
    html(status, &page)
}

fn trouble(web: &Web, s: &Signed, e: &AccountError) -> Response<Body> {
    tracing::warn!(error = %e, "security page: store error");
    message(web, Some(s), StatusCode::SERVICE_UNAVAILABLE, "Try again later", "The account store is unavailable.")
}

fn local_only(web: &Web, s: &Signed) -> Option<Response<Body>> {
    (web.config.auth != WebAuth::Local).then(|| {
        let text = "Your password and second factor are managed by your single sign-on.";
        message(web, Some(s), StatusCode::NOT_FOUND, "Not here", text)
    })
}

/// Whether `presented` is the user's login password; a wrong one counts
/// against the sign-in throttle like any other, and a throttled user gets
/// an error rather than a check.
async fn proves_password(web: &Web, ctx: &Ctx, s: &Signed, presented: &str) -> Result<bool, Response<Body>> {
    let presented = Secret::new(presented.to_string());
    let check = async {
        let outcome = web.state.logins.check_password(&s.user, &presented).await?;
        Ok(outcome != PasswordCheck::Refused)
    };
    match guarded(web, ctx, &s.user, check).await {
        Ok(ok) => Ok(ok),
        Err(Blocked::Throttled(_)) => {
            let text = "Too many wrong passwords. Wait a while, then try again.";
            Err(message(web, Some(s), StatusCode::TOO_MANY_REQUESTS, "Too many attempts", text))
        }
        Err(Blocked::Unavailable) => {
            Err(message(web, Some(s), StatusCode::SERVICE_UNAVAILABLE, "Try again later", "Busy; try again."))
        }
    }
}

pub async fn change_password(web: &Web, ctx: &Ctx, s: &Signed, form: Form) -> Response<Body> {
    if let Some(res) = local_only(web, s) {
        return res;
    }
    let mut errors = Errors::default();
    match proves_password(web, ctx, s, form.raw("current")).await {
        Ok(true) => {}
        Ok(false) => errors.add("current", "That is not your current password."),
        Err(res) => return res,
    }
    let new = form.raw("new");
    let chars = new.chars().count();
    if !(crate::logins::MIN_LOGIN_CHARS..=crate::logins::MAX_LOGIN_CHARS).contains(&chars) {
        errors.add("new", "Use 10 to 256 characters.");
    } else if new == form.raw("current") {
        errors.add("new", "Choose a password different from the current one.");
    }
    if new != form.raw("repeat") {
        errors.add("repeat", "The two new passwords differ.");
    }
    if !errors.is_empty() {
        return render(web, s, None, errors).await;
    }
    match web.state.logins.set_password(&s.user, &Secret::new(new.to_string()), "user").await {
        Ok(revoked) => {
            // Other sessions may be someone else's: they end with the old
            // password; this one carries on.
            lock(&s.session).signed_in_at = crate::store::model::unix_now();
            web.state.sessions.end_user(&s.user, Some(&s.id));
            let notice = if revoked > 0 {
                format!("Password changed. As your policy asks, {revoked} app passwords were revoked.")
            } else {
                "Password changed. You were signed out everywhere else.".into()
            };
            page(web, s, Some(notice)).await
        }
        Err(AccountError::Invalid(why)) => {
            let mut errors = Errors::default();
            errors.add("new", why);
            render(web, s, None, errors).await
        }
        Err(e) => trouble(web, s, &e),
    }
}

pub async fn totp_start(web: &Web, s: &Signed) -> Response<Body> {
    if let Some(res) = local_only(web, s) {
        return res;
    }
    // Replacing a second factor takes the password (turning it off first):
    // a borrowed session alone must not be able to.
    match web.state.logins.has_totp(&s.user).await {
        Ok(false) => {}
        Ok(true) => return page(web, s, Some("Two-step verification is already on; turn it off first.".into())).await,
        Err(e) => return trouble(web, s, &e),
    }
    let offer = web.state.logins.offer_totp(&s.user);
    let page = TotpSetup {
        chrome: chrome(web, Some(s), "security"),
        qr_svg: qr::svg(offer.url.expose(), "QR code for your authenticator app"),
        secret: offer.secret.expose(),
        error: None,
    };
    let res = html(StatusCode::OK, &page);
    lock(&s.session).totp_offer = Some(offer.secret);
    res
}

pub async fn totp_confirm(web: &Web, s: &Signed, form: Form) -> Response<Body> {
    if let Some(res) = local_only(web, s) {
        return res;
    }
    let Some(secret) = lock(&s.session).totp_offer.clone() else {
        return page(web, s, Some("Setup was interrupted; start again.".into())).await;
    };
    match web.state.logins.enable_totp(&s.user, &secret, form.get("code")).await {
        Ok(codes) => {
            lock(&s.session).totp_offer = None;
            // Sessions signed in without the new factor end.
            web.state.sessions.end_user(&s.user, Some(&s.id));
            let page = Recovery {
                chrome: chrome(web, Some(s), "security"),
                codes: codes.iter().map(|c| c.expose().as_str()).collect(),
            };
            html(StatusCode::OK, &page)
        }
        Err(AccountError::Invalid(why)) => {
            let url = web.state.logins.otpauth_url(&s.user, &secret);
            let page = TotpSetup {
                chrome: chrome(web, Some(s), "security"),
                qr_svg: qr::svg(url.expose(), "QR code for your authenticator app"),
                secret: secret.expose(),
                error: Some(why),
            };
            html(StatusCode::BAD_REQUEST, &page)
        }
        Err(e) => trouble(web, s, &e),
    }
}

pub async fn totp_disable(web: &Web, ctx: &Ctx, s: &Signed, form: Form) -> Response<Body> {
    if let Some(res) = local_only(web, s) {
        return res;
    }
    match proves_password(web, ctx, s, form.raw("current")).await {
        Ok(true) => {}
        Ok(false) => {
            let mut errors = Errors::default();
            errors.add("disable", "That is not your password.");
            return render(web, s, None, errors).await;
        }
        Err(res) => return res,
    }
    match web.state.logins.disable_totp(&s.user, "user").await {
        Ok(_) => page(web, s, Some("Two-step verification is off.".into())).await,
        Err(e) => trouble(web, s, &e),
    }
}
