//! The admin JSON API (`/api/v1`), as one function from request to response.
//!
//! The same handler serves the admin Unix socket and, in-process, the CLI
//! when no server runs, so both surfaces share one code path. Errors are
//! `{"error": "<code>", "message": "<one line>"}` with a matching status.

use crate::accounts::{AccountError, Accounts, NewPassword, parse_expiry};
use crate::gateway::scope::Scope;
use crate::store::model::{UserState, unix_now};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// Request bodies are small JSON documents.
const MAX_BODY: usize = 64 * 1024;
/// Events returned when no `limit` is given.
const DEFAULT_EVENT_LIMIT: usize = 100;

pub type ApiResponse = Response<Full<Bytes>>;

struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        let status = match &e {
            AccountError::UnknownUser(_) | AccountError::UnknownPassword(..) => StatusCode::NOT_FOUND,
            AccountError::UserExists(_) | AccountError::TooMany { .. } => StatusCode::CONFLICT,
            AccountError::Invalid(_) => StatusCode::BAD_REQUEST,
            AccountError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        Self::new(status, e.code(), e.to_string())
    }
}

fn json_response(status: StatusCode, value: &Value) -> ApiResponse {
    let mut res = Response::new(Full::new(Bytes::from(value.to_string())));
    *res.status_mut() = status;
    res.headers_mut().insert(header::CONTENT_TYPE, "application/json".parse().expect("static"));
    res.headers_mut().insert(header::CACHE_CONTROL, "no-store".parse().expect("static"));
    res
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUserBody {
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserPatch {
    state: Option<UserState>,
    app_access: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPasswordBody {
    name: String,
    #[serde(default)]
    scope: Scope,
    /// A duration from now (`"90d"`) or a date (`"2027-01-31"`).
    expires: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RenameBody {
    name: String,
}

async fn parse_body<T: DeserializeOwned, B>(body: B) -> Result<T, ApiError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<crate::error::BoxError>,
{
    let bytes = Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_body", format!("cannot read the body: {e}")))?
        .to_bytes();
    let de = &mut serde_json::Deserializer::from_slice(&bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let message = if field == "." { e.inner().to_string() } else { format!("{field}: {}", e.inner()) };
        ApiError::new(StatusCode::BAD_REQUEST, "bad_json", message)
    })
}

fn decode_segment(segment: &str) -> Result<String, ApiError> {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "bad_path", "path segment is not UTF-8"))
}

fn query_limit(req_query: Option<&str>) -> usize {
    req_query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter_map(|kv| kv.strip_prefix("limit="))
        .find_map(|v| v.parse().ok())
        .unwrap_or(DEFAULT_EVENT_LIMIT)
}

/// Handles one API request. `actor` names who acts in the history.
pub async fn handle<B>(accounts: &Accounts, req: Request<B>, actor: &str) -> ApiResponse
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<crate::error::BoxError>,
{
    match route(accounts, req, actor).await {
        Ok((status, value)) => json_response(status, &value),
        Err(e) => json_response(e.status, &json!({"error": e.code, "message": e.message})),
    }
}

async fn route<B>(accounts: &Accounts, req: Request<B>, actor: &str) -> Result<(StatusCode, Value), ApiError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<crate::error::BoxError>,
{
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let Some(rest) = path.strip_prefix("/api/v1/") else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no such endpoint: {path}")));
    };
    let segments: Vec<String> = rest.trim_end_matches('/').split('/').map(decode_segment).collect::<Result<_, _>>()?;
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let ok = |v: Value| Ok((StatusCode::OK, v));
    match (&parts.method, segs.as_slice()) {
        (&Method::GET, ["health"]) => ok(json!({"status": "ok", "time": unix_now()})),
        (&Method::GET, ["users"]) => ok(to_json(&accounts.list_users().await?)),
        (&Method::POST, ["users"]) => {
            let body: NewUserBody = parse_body(body).await?;
            Ok((StatusCode::CREATED, to_json(&accounts.add_user(&body.name, actor).await?)))
        }
        (&Method::GET, ["users", user]) => ok(to_json(&accounts.user(user).await?)),
        (&Method::PATCH, ["users", user]) => {
            let patch: UserPatch = parse_body(body).await?;
            let mut current = accounts.user(user).await?;
            if let Some(state) = patch.state {
                current = accounts.set_user_state(user, state, actor).await?;
            }
            if let Some(on) = patch.app_access {
                current = accounts.set_app_access(user, on, actor).await?;
            }
            ok(to_json(&current))
        }
        (&Method::DELETE, ["users", user]) => {
            accounts.remove_user(user).await?;
            Ok((StatusCode::OK, json!({"removed": user})))
        }
        (&Method::GET, ["users", user, "passwords"]) => ok(to_json(&accounts.list_passwords(user).await?)),
        (&Method::POST, ["users", user, "passwords"]) => {
            let body: NewPasswordBody = parse_body(body).await?;
            let expires = body.expires.as_deref().map(|e| parse_expiry(e, unix_now())).transpose()?;
            let created = accounts
                .create_password(user, NewPassword { name: body.name, scope: body.scope, expires }, actor)
                .await?;
            let mut value = to_json(&created.view);
            value["password"] = Value::String(created.password.expose().clone());
            Ok((StatusCode::CREATED, value))
        }
        (&Method::POST, ["users", user, "passwords", "revoke-all"]) => {
            let n = accounts.revoke_all(user, actor).await?;
            ok(json!({"revoked": n}))
        }
        (&Method::PATCH, ["users", user, "passwords", id]) => {
            let body: RenameBody = parse_body(body).await?;
            accounts.rename_password(user, id, &body.name, actor).await?;
            ok(json!({"id": id, "name": body.name}))
        }
        (&Method::DELETE, ["users", user, "passwords", id]) => {
            accounts.revoke(user, id, actor).await?;
            ok(json!({"id": id, "status": "revoked"}))
        }
        (&Method::GET, ["users", user, "events"]) => {
            ok(to_json(&accounts.events(user, query_limit(parts.uri.query())).await?))
        }
        _ => {
            Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no such endpoint: {} {path}", parts.method)))
        }
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("model types always serialise")
}
