//! How the CLI reaches the API: over the admin socket when a server runs,
//! or by calling the handler in-process on a store it opens itself.

use crate::accounts::Accounts;
use crate::logins::Logins;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub enum AdminClient {
    Socket(PathBuf),
    InProcess(Arc<Accounts>, Arc<Logins>),
}

/// An API error as the CLI shows it.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiFailure {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
}

impl AdminClient {
    /// Whether a server answers on `path`.
    pub async fn socket_is_live(path: &Path) -> bool {
        tokio::net::UnixStream::connect(path).await.is_ok()
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value, ApiFailure> {
        let bytes = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let req = Request::builder()
            .method(method)
            .uri(format!("/api/v1{path}"))
            .header(http::header::HOST, "localhost")
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(bytes))
            .expect("valid request parts");
        let (status, body) = match self {
            AdminClient::InProcess(accounts, logins) => {
                let res = super::api::handle(accounts, logins, req, &super::api::Caller::local("cli")).await;
                let status = res.status();
                (status, res.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default())
            }
            AdminClient::Socket(socket) => send_over_socket(socket, req).await?,
        };
        let value: Value = serde_json::from_slice(&body).map_err(|e| failure(status, "bad_response", e))?;
        if status.is_success() {
            Ok(value)
        } else {
            Err(ApiFailure {
                status,
                code: value["error"].as_str().unwrap_or("error").to_string(),
                message: value["message"].as_str().unwrap_or("the server refused the request").to_string(),
            })
        }
    }
}

fn failure(status: StatusCode, code: &str, e: impl std::fmt::Display) -> ApiFailure {
    ApiFailure { status, code: code.to_string(), message: e.to_string() }
}

async fn send_over_socket(socket: &Path, req: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), ApiFailure> {
    let unavailable = |e: &dyn std::fmt::Display| {
        failure(StatusCode::SERVICE_UNAVAILABLE, "socket", format!("admin socket {}: {e}", socket.display()))
    };
    let stream = tokio::net::UnixStream::connect(socket).await.map_err(|e| unavailable(&e))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| unavailable(&e))?;
    tokio::spawn(conn);
    let res = sender.send_request(req).await.map_err(|e| unavailable(&e))?;
    let status = res.status();
    let body = res.into_body().collect().await.map_err(|e| unavailable(&e))?.to_bytes();
    Ok((status, body))
}
