//! What the admin listeners answer: `/healthz`, `/readyz`, `/metrics`, and
//! the JSON API under `/api/v1`. On the Unix socket the file mode is the
//! access control; on TCP the API needs a bearer token (health and metrics
//! do not, so probes and scrapers work: keep the TCP listener private).

use super::api::{self, ApiError, ApiResponse, Caller, json_response};
use super::tokens;
use crate::App;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use serde_json::json;
use std::time::Duration;

/// How long `/readyz` waits for the backend to accept a connection.
const UPSTREAM_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Which listener a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Socket,
    Tcp,
}

fn text(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> ApiResponse {
    let mut res = Response::new(Full::new(body.into()));
    *res.status_mut() = status;
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

pub async fn handle<B>(app: &App, req: Request<B>, listener: Listener) -> ApiResponse
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<crate::error::BoxError>,
{
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "text/plain; charset=utf-8", "ok\n"),
        "/readyz" => readiness(app).await,
        "/metrics" => {
            app.metrics.store_writes.set(i64::try_from(app.store.write_count()).unwrap_or(i64::MAX));
            text(StatusCode::OK, "application/openmetrics-text; version=1.0.0; charset=utf-8", app.metrics.encode())
        }
        _ => {
            let caller = match listener {
                Listener::Socket => Caller::local("admin-socket"),
                Listener::Tcp => match bearer_caller(app, &req).await {
                    Ok(caller) => caller,
                    Err(e) => {
                        let mut res = api::error_response(&e);
                        if e.status == StatusCode::UNAUTHORIZED {
                            res.headers_mut().insert(
                                header::WWW_AUTHENTICATE,
                                HeaderValue::from_static("Bearer realm=\"davgate-admin\""),
                            );
                        }
                        return res;
                    }
                },
            };
            api::handle(&app.accounts, &app.web.logins, req, &caller).await
        }
    }
}

async fn bearer_caller<B>(app: &App, req: &Request<B>) -> Result<Caller, ApiError> {
    let unauthorized =
        || ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "send Authorization: Bearer <admin token>");
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        // The scheme is case-insensitive (RFC 9110 §11.1).
        .and_then(|v| v.split_once(' ').filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer")))
        .map(|(_, token)| token)
        .ok_or_else(unauthorized)?;
    match tokens::verify(app.store.as_ref(), presented.trim()).await {
        Ok(Some(token)) => Ok(Caller { actor: format!("token:{}", token.id), may_manage_tokens: false }),
        Ok(None) => {
            tracing::info!(target: "davgate::admin", "admin API request with an unknown or revoked token");
            Err(unauthorized())
        }
        Err(e) => {
            app.metrics.store_errors.inc();
            Err(e.into())
        }
    }
}

/// `200` when the store answers and the backend accepts a connection.
async fn readiness(app: &App) -> ApiResponse {
    let store = match app.store.ping().await {
        Ok(()) => "ok".to_string(),
        Err(e) => {
            app.metrics.store_errors.inc();
            format!("error: {e}")
        }
    };
    let upstream = match probe_upstream(&app.config().upstream.url).await {
        Ok(()) => "ok".to_string(),
        Err(e) => format!("error: {e}"),
    };
    let ready = store == "ok" && upstream == "ok";
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    json_response(status, &json!({"ready": ready, "store": store, "upstream": upstream}))
}

async fn probe_upstream(url: &http::Uri) -> Result<(), String> {
    let host = url.host().ok_or("upstream.url has no host")?.trim_start_matches('[').trim_end_matches(']');
    let port = url.port_u16().unwrap_or(if url.scheme_str() == Some("https") { 443 } else { 80 });
    match tokio::time::timeout(UPSTREAM_PROBE_TIMEOUT, tokio::net::TcpStream::connect((host, port))).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("cannot connect to {host}:{port}: {e}")),
        Err(_) => Err(format!("no answer from {host}:{port} within {}s", UPSTREAM_PROBE_TIMEOUT.as_secs())),
    }
}
