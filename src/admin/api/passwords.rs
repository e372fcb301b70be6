//! App passwords: a user's list, create (the secret is in this one
//! response only), get, rename, revoke, revoke all; and the listing across
//! every user with status and expiry filters.

use super::{ApiError, ApiResult, ErrorBody, Paging, to_json};
use crate::accounts::{Accounts, NewPassword, PasswordFilter, PasswordView, parse_expiry};
use crate::gateway::scope::Scope;
use crate::secret::Secret;
use crate::store::model::unix_now;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPasswordBody {
    /// What the password is for, e.g. "Phone (DAVx5)"; at most 64 characters.
    #[schema(example = "Phone (DAVx5)")]
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
    #[serde(default)]
    pub scope: Scope,
    /// A duration from now (`"90d"`) or a date (`"2027-01-31"`); the
    /// policy's default lifetime when absent.
    #[schema(example = "90d")]
    pub expires: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedPassword {
    #[serde(flatten)]
    pub view: PasswordView,
    /// The app password. It is in this response only and never again.
    #[schema(value_type = String, example = "abcde-fghjk-mnpqr-stuvw-xyz23")]
    pub password: Secret<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rename {
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RevokedCount {
    /// Passwords that were not revoked before.
    pub revoked: usize,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StatusFilter {
    Active,
    Revoked,
    Expired,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PasswordQuery {
    #[serde(default)]
    #[param(minimum = 0)]
    offset: usize,
    #[serde(default = "super::default_limit")]
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: usize,
    /// Only this user's passwords.
    user: Option<String>,
    status: Option<StatusFilter>,
    /// Only active passwords expiring within this duration: `7d`, `12h`, or seconds.
    #[param(example = "7d")]
    expiring_within: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PasswordPage {
    pub passwords: Vec<PasswordView>,
    pub total: usize,
    pub offset: usize,
    pub limit: usize,
}

/// `7d`, `12h`, `3600s` or plain seconds.
fn parse_within(text: &str) -> Result<u64, ApiError> {
    text.parse::<u64>().or_else(|_| humantime::parse_duration(text).map(|d| d.as_secs())).map_err(|_| {
        ApiError::bad_request("bad_query", format!("expiring_within: {text:?} is not a duration like \"7d\""))
    })
}

#[utoipa::path(get, path = "/api/v1/users/{user}/passwords", tag = "passwords", params(("user" = String, Path)),
    responses((status = 200, body = Vec<PasswordView>), (status = 404, body = ErrorBody)))]
pub async fn list(accounts: &Accounts, user: &str) -> ApiResult {
    Ok((StatusCode::OK, to_json(&accounts.list_passwords(user).await?)))
}

#[utoipa::path(post, path = "/api/v1/users/{user}/passwords", tag = "passwords", params(("user" = String, Path)),
    request_body = NewPasswordBody,
    responses((status = 201, body = CreatedPassword), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(accounts: &Accounts, user: &str, body: NewPasswordBody, actor: &str) -> ApiResult {
    let expires = body.expires.as_deref().map(|e| parse_expiry(e, unix_now())).transpose()?;
    let new = NewPassword { name: body.name, scope: body.scope, expires };
    let created = accounts.create_password(user, new, actor).await?;
    let body = CreatedPassword { view: created.view, password: created.password };
    Ok((StatusCode::CREATED, to_json(&body)))
}

#[utoipa::path(get, path = "/api/v1/users/{user}/passwords/{id}", tag = "passwords",
    params(("user" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = PasswordView), (status = 404, body = ErrorBody)))]
pub async fn get(accounts: &Accounts, user: &str, id: &str) -> ApiResult {
    Ok((StatusCode::OK, to_json(&accounts.password(user, id).await?)))
}

#[utoipa::path(patch, path = "/api/v1/users/{user}/passwords/{id}", tag = "passwords",
    params(("user" = String, Path), ("id" = String, Path)), request_body = Rename,
    responses((status = 200, body = PasswordView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn rename(accounts: &Accounts, user: &str, id: &str, body: Rename, actor: &str) -> ApiResult {
    accounts.rename_password(user, id, &body.name, actor).await?;
    get(accounts, user, id).await
}

#[utoipa::path(delete, path = "/api/v1/users/{user}/passwords/{id}", tag = "passwords",
    params(("user" = String, Path), ("id" = String, Path)),
    responses((status = 200, description = "Revoked (also when it already was)", body = PasswordView),
        (status = 404, body = ErrorBody)))]
pub async fn revoke(accounts: &Accounts, user: &str, id: &str, actor: &str) -> ApiResult {
    accounts.revoke(user, id, actor).await?;
    get(accounts, user, id).await
}

#[utoipa::path(post, path = "/api/v1/users/{user}/passwords/revoke-all", tag = "passwords",
    params(("user" = String, Path)),
    responses((status = 200, body = RevokedCount), (status = 404, body = ErrorBody)))]
pub async fn revoke_all(accounts: &Accounts, user: &str, actor: &str) -> ApiResult {
    let revoked = accounts.revoke_all(user, actor).await?;
    Ok((StatusCode::OK, to_json(&RevokedCount { revoked })))
}

#[utoipa::path(get, path = "/api/v1/passwords", tag = "passwords", params(PasswordQuery),
    responses((status = 200, body = PasswordPage), (status = 400, body = ErrorBody)))]
pub async fn list_all(accounts: &Accounts, query: PasswordQuery) -> ApiResult {
    let paging = Paging { offset: query.offset, limit: query.limit }.checked()?;
    let filter = PasswordFilter {
        user: query.user,
        status: query.status.map(|s| match s {
            StatusFilter::Active => "active".to_string(),
            StatusFilter::Revoked => "revoked".to_string(),
            StatusFilter::Expired => "expired".to_string(),
        }),
        expiring_within: query.expiring_within.as_deref().map(parse_within).transpose()?,
    };
    let (passwords, total) = paging.page(accounts.list_all_passwords(&filter).await?);
    Ok((StatusCode::OK, to_json(&PasswordPage { passwords, total, offset: paging.offset, limit: paging.limit })))
}
