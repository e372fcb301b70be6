//! The Nextcloud Login Flow v2 endpoints: start, the browser page where
//! the signed-in user names and scopes the password, and the poll.

use super::passwords::{Draft, create_error, form_page, parse_draft};
use super::{Signed, html, lock, message};
use crate::error::{Body, full};
use crate::web::client_label::client_label;
use crate::web::forms::{Errors, Form};
use crate::web::login_flow::Grant;
use crate::web::pages::Message;
use crate::web::{Ctx, LOGIN_FLOW_PREFIX, Web};
use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut res = Response::new(full(value.to_string()));
    *res.status_mut() = status;
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

/// `POST /index.php/login/v2`: a client starts a flow.
pub fn start(web: &Web, ctx: &Ctx) -> Response<Body> {
    let (login, poll) = web.state.flows.start(&client_label(&ctx.user_agent), ctx.client_ip);
    let body = serde_json::json!({
        "poll": { "token": poll, "endpoint": format!("{}{LOGIN_FLOW_PREFIX}/poll", ctx.server_url) },
        "login": format!("{}{LOGIN_FLOW_PREFIX}/flow/{login}", ctx.server_url),
    });
    json(StatusCode::OK, &body)
}

/// `POST /index.php/login/v2/poll` with `token=…`: 404 until the user
/// granted access, then the credentials, once.
pub async fn poll(web: &Web, req: Request<Incoming>) -> Response<Body> {
    let form = match Form::read(req.into_body()).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    match web.state.flows.poll(form.get("token")) {
        Some(grant) => json(
            StatusCode::OK,
            &serde_json::json!({
                "server": grant.server,
                "loginName": grant.login_name,
                "appPassword": grant.app_password.expose(),
            }),
        ),
        // Nextcloud answers an empty array while the flow is pending.
        None => json(StatusCode::NOT_FOUND, &serde_json::json!([])),
    }
}

fn expired(web: &Web, s: &Signed) -> Response<Body> {
    let text = "This sign-in link has expired or was already used. Start again from your app.";
    message(web, Some(s), StatusCode::NOT_FOUND, "Link expired", text)
}

fn heading(client: &str, from: std::net::IpAddr) -> (String, Option<String>) {
    (
        format!("Connect {client}"),
        Some(format!(
            "An app calling itself {client}, from {from}, asks for an app password. Choose what it may reach; it \
             receives the password directly. If you are not setting up a device or app right now, stop: someone \
             may be trying to trick you into giving them access."
        )),
    )
}

pub async fn page(web: &Web, _ctx: &Ctx, s: &Signed, token: &str) -> Response<Body> {
    let Some(flow) = web.state.flows.by_login_token(token) else { return expired(web, s) };
    let Ok((client, from)) = flow.lock().map(|f| (f.client.clone(), f.from)) else { return expired(web, s) };
    let (heading, intro) = heading(&client, from);
    let draft = Draft { name: client.chars().take(64).collect(), untick: true, ..Draft::default() };
    let action = format!("{LOGIN_FLOW_PREFIX}/flow/{token}");
    form_page(web, s, draft, Errors::default(), heading, intro, action).await
}

pub async fn grant(web: &Web, ctx: &Ctx, s: &Signed, token: &str, form: Form) -> Response<Body> {
    let Some(flow) = web.state.flows.by_login_token(token) else { return expired(web, s) };
    let Ok((client, from)) = flow.lock().map(|f| (f.client.clone(), f.from)) else { return expired(web, s) };
    let (heading, intro) = heading(&client, from);
    let action = format!("{LOGIN_FLOW_PREFIX}/flow/{token}");
    let draft = Draft::from_form(&form);
    let new = match parse_draft(web, s, &draft).await {
        Ok(new) => new,
        Err(errors) => return form_page(web, s, draft, errors, heading, intro, action).await,
    };
    let created = match web.accounts.create_password(&s.user, new, "user").await {
        Ok(c) => c,
        Err(e) => match create_error(e) {
            Ok(errors) => return form_page(web, s, draft, errors, heading, intro, action).await,
            Err(e) => {
                tracing::warn!(error = %e, "login flow: store error");
                let text = "The account store is unavailable.";
                return message(web, Some(s), StatusCode::SERVICE_UNAVAILABLE, "Try again later", text);
            }
        },
    };
    let grant = Grant { server: ctx.server_url.clone(), login_name: s.user.clone(), app_password: created.password };
    if !web.state.flows.grant(token, grant) {
        // The flow expired while the form was open: the password must not
        // linger unused.
        let _ = web.accounts.revoke(&s.user, &created.view.id, "user").await;
        return expired(web, s);
    }
    lock(&s.session).reveal = None;
    let text = format!(
        "{client} now has its own app password, “{}”. Go back to it: it finishes setting up by itself.",
        created.view.name
    );
    let page = Message {
        chrome: super::chrome(web, Some(s), "passwords"),
        heading: "Access granted",
        text: &text,
        link: Some((web.config.path.clone(), "See your app passwords")),
    };
    html(StatusCode::OK, &page)
}
