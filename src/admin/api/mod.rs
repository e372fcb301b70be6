//! The admin JSON API (`/api/v1`), as one function from request to response.
//!
//! The same handler serves the admin Unix socket, the TCP admin listener
//! (after its bearer-token check) and, in-process, the CLI when no server
//! runs, so every surface shares one code path. Errors are
//! `{"error": "<code>", "message": "<one line>"}` with a matching status.
//! The operations live in one file per resource, each documented for the
//! OpenAPI document ([`super::openapi`]).

pub mod events;
pub mod logins;
pub mod passwords;
pub mod system;
pub mod tokens;
pub mod users;

use crate::accounts::{AccountError, Accounts};
use crate::logins::Logins;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

/// Request bodies are small JSON documents.
const MAX_BODY: usize = 64 * 1024;
/// Items per page when no `limit` is given, and the most one page holds.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

pub type ApiResponse = Response<Full<Bytes>>;
type ApiResult = Result<(StatusCode, Value), ApiError>;

/// Who is calling, and what that caller may do.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Recorded in the history as who acted: `cli`, `admin-socket`, `token:<id>`.
    pub actor: String,
    /// Admin tokens are managed only locally (socket, CLI): a token cannot
    /// mint or revoke tokens.
    pub may_manage_tokens: bool,
}

impl Caller {
    pub fn local(actor: &str) -> Self {
        Self { actor: actor.to_string(), may_manage_tokens: true }
    }
}

/// The body of every error response.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// A stable code such as `unknown_user` or `bad_json`.
    pub error: String,
    /// One line for a person.
    pub message: String,
}

pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// The `Allow` header of a `405`.
    allow: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), allow: None }
    }

    fn method_not_allowed(allow: &'static str) -> Self {
        let message = format!("this endpoint answers {allow}");
        Self { allow: Some(allow), ..Self::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", message) }
    }

    fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        let status = match &e {
            AccountError::UnknownUser(_) | AccountError::UnknownPassword(..) => StatusCode::NOT_FOUND,
            AccountError::UserExists(_) | AccountError::TooMany { .. } => StatusCode::CONFLICT,
            AccountError::Invalid(_) => StatusCode::BAD_REQUEST,
            AccountError::Store(_) | AccountError::Busy => StatusCode::SERVICE_UNAVAILABLE,
        };
        Self::new(status, e.code(), e.to_string())
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        AccountError::Store(e).into()
    }
}

/// Builds a JSON response; `pub` so the admin listeners answer alike.
pub fn json_response(status: StatusCode, value: &Value) -> ApiResponse {
    let mut res = Response::new(Full::new(Bytes::from(value.to_string())));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

pub fn error_response(e: &ApiError) -> ApiResponse {
    let mut res = json_response(e.status, &json!({"error": e.code, "message": e.message}));
    if let Some(allow) = e.allow {
        res.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
    }
    res
}

/// Paging of every listing. Each query struct carries `offset` and `limit`
/// itself: `serde(flatten)` would break number parsing in query strings.
#[derive(Debug, Clone, Copy)]
pub struct Paging {
    pub offset: usize,
    pub limit: usize,
}

fn default_limit() -> usize {
    DEFAULT_LIMIT
}

impl Paging {
    fn checked(self) -> Result<Self, ApiError> {
        if self.limit == 0 || self.limit > MAX_LIMIT {
            return Err(ApiError::bad_request("bad_query", format!("limit: must be 1 to {MAX_LIMIT}")));
        }
        Ok(self)
    }

    /// One page of `items`, and the total.
    fn page<T>(self, items: Vec<T>) -> (Vec<T>, usize) {
        let total = items.len();
        (items.into_iter().skip(self.offset).take(self.limit).collect(), total)
    }
}

async fn parse_body<T: DeserializeOwned, B>(body: B) -> Result<T, ApiError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<crate::error::BoxError>,
{
    let bytes = Limited::new(body, MAX_BODY).collect().await.map_err(|e| {
        let e: crate::error::BoxError = e;
        if e.is::<http_body_util::LengthLimitError>() {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", format!("the body is over {MAX_BODY} bytes"))
        } else {
            ApiError::bad_request("bad_body", one_line(&format!("cannot read the body: {e}")))
        }
    })?;
    let bytes = bytes.to_bytes();
    let de = &mut serde_json::Deserializer::from_slice(&bytes);
    serde_path_to_error::deserialize(de).map_err(|e| ApiError::bad_request("bad_json", located(&e)))
}

/// `field: problem`, on one line (a value quoted in a message may hold
/// control characters).
fn located<E: std::fmt::Display>(e: &serde_path_to_error::Error<E>) -> String {
    let field = e.path().to_string();
    let message = if field == "." { e.inner().to_string() } else { format!("{field}: {}", e.inner()) };
    one_line(&message)
}

fn one_line(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// Parses the query string; an unknown or bad parameter is `400` naming it.
fn parse_query<T: DeserializeOwned>(query: Option<&str>) -> Result<T, ApiError> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.unwrap_or("").as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| ApiError::bad_request("bad_query", located(&e)))
}

fn decode_segment(segment: &str) -> Result<String, ApiError> {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| ApiError::bad_request("bad_path", "path segment is not UTF-8"))
}

pub(crate) fn to_json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("API types always serialise")
}

/// The resources under `/api/v1`.
enum Resource<'a> {
    Health,
    Policy,
    Users,
    User(&'a str),
    UserPasswords(&'a str),
    UserPassword(&'a str, &'a str),
    UserRevokeAll(&'a str),
    UserEvents(&'a str),
    UserLoginPassword(&'a str),
    UserTotp(&'a str),
    Passwords,
    Events,
    Tokens,
    Token(&'a str),
}

impl<'a> Resource<'a> {
    fn of(segments: &[&'a str]) -> Option<Self> {
        Some(match segments {
            ["health"] => Self::Health,
            ["policy"] => Self::Policy,
            ["users"] => Self::Users,
            ["users", u] => Self::User(u),
            ["users", u, "passwords"] => Self::UserPasswords(u),
            ["users", u, "passwords", "revoke-all"] => Self::UserRevokeAll(u),
            ["users", u, "passwords", id] => Self::UserPassword(u, id),
            ["users", u, "events"] => Self::UserEvents(u),
            ["users", u, "login-password"] => Self::UserLoginPassword(u),
            ["users", u, "totp"] => Self::UserTotp(u),
            ["passwords"] => Self::Passwords,
            ["events"] => Self::Events,
            ["admin-tokens"] => Self::Tokens,
            ["admin-tokens", id] => Self::Token(id),
            _ => return None,
        })
    }

    /// The methods a resource answers, for `405` and `Allow`.
    fn allowed(&self) -> &'static str {
        match self {
            Self::Health | Self::Policy | Self::UserEvents(_) | Self::Passwords | Self::Events => "GET",
            Self::Users | Self::UserPasswords(_) | Self::Tokens => "GET, POST",
            Self::User(_) | Self::UserPassword(..) => "GET, PATCH, DELETE",
            Self::UserRevokeAll(_) => "POST",
            Self::Token(_) | Self::UserTotp(_) => "DELETE",
            Self::UserLoginPassword(_) => "PUT",
        }
    }
}

/// Handles one API request.
pub async fn handle<B>(accounts: &Accounts, logins: &Logins, req: Request<B>, caller: &Caller) -> ApiResponse
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<crate::error::BoxError>,
{
    match route(accounts, logins, req, caller).await {
        Ok((status, value)) => json_response(status, &value),
        Err(e) => error_response(&e),
    }
}

async fn route<B>(accounts: &Accounts, logins: &Logins, req: Request<B>, caller: &Caller) -> ApiResult
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<crate::error::BoxError>,
{
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no such endpoint: {path}"));
    let rest = path.strip_prefix("/api/v1/").ok_or_else(not_found)?;
    let segments: Vec<String> = rest.trim_end_matches('/').split('/').map(decode_segment).collect::<Result<_, _>>()?;
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let resource = Resource::of(&segs).ok_or_else(not_found)?;
    let query = parts.uri.query();
    let actor = caller.actor.as_str();
    use Method as M;
    use Resource as R;
    match (&resource, &parts.method) {
        (R::Health, &M::GET) => system::health(),
        (R::Policy, &M::GET) => system::policy(accounts),
        (R::Users, &M::GET) => users::list(accounts, parse_query(query)?).await,
        (R::Users, &M::POST) => users::create(accounts, parse_body(body).await?, actor).await,
        (R::User(u), &M::GET) => users::get(accounts, u).await,
        (R::User(u), &M::PATCH) => users::update(accounts, u, parse_body(body).await?, actor).await,
        (R::User(u), &M::DELETE) => users::remove(accounts, u).await,
        (R::UserPasswords(u), &M::GET) => passwords::list(accounts, u).await,
        (R::UserPasswords(u), &M::POST) => passwords::create(accounts, u, parse_body(body).await?, actor).await,
        (R::UserPassword(u, id), &M::GET) => passwords::get(accounts, u, id).await,
        (R::UserPassword(u, id), &M::PATCH) => passwords::rename(accounts, u, id, parse_body(body).await?, actor).await,
        (R::UserPassword(u, id), &M::DELETE) => passwords::revoke(accounts, u, id, actor).await,
        (R::UserRevokeAll(u), &M::POST) => passwords::revoke_all(accounts, u, actor).await,
        (R::UserLoginPassword(u), &M::PUT) => logins::set_password(logins, u, parse_body(body).await?, actor).await,
        (R::UserTotp(u), &M::DELETE) => logins::reset_totp(logins, u, actor).await,
        (R::UserEvents(u), &M::GET) => events::list_for_user(accounts, u, parse_query(query)?).await,
        (R::Passwords, &M::GET) => passwords::list_all(accounts, parse_query(query)?).await,
        (R::Events, &M::GET) => events::list(accounts, parse_query(query)?).await,
        (R::Tokens | R::Token(_), _) if !caller.may_manage_tokens => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "admin tokens are managed on the admin socket (davgate admin-token ...), not with a token",
        )),
        (R::Tokens, &M::GET) => tokens::list(accounts).await,
        (R::Tokens, &M::POST) => tokens::create(accounts, parse_body(body).await?).await,
        (R::Token(id), &M::DELETE) => tokens::revoke(accounts, id).await,
        _ => Err(ApiError::method_not_allowed(resource.allowed())),
    }
}
