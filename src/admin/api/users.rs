//! `/users` and `/users/{user}`: list (paged, filtered), create, get,
//! disable/enable, app access, remove.

use super::{ApiResult, ErrorBody, Paging, to_json};
use crate::accounts::Accounts;
use crate::store::model::{User, UserState};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UserQuery {
    #[serde(default)]
    #[param(minimum = 0)]
    offset: usize,
    #[serde(default = "super::default_limit")]
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: usize,
    /// Only users whose name contains this text.
    q: Option<String>,
    state: Option<UserState>,
    app_access: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserPage {
    pub users: Vec<User>,
    /// Users matching the filter, on every page.
    pub total: usize,
    pub offset: usize,
    pub limit: usize,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// The identity sent to the backend: no `:`, `/`, `\\`, spaces or
    /// control characters.
    #[schema(example = "alice", min_length = 1, max_length = 128, pattern = r"^[^:/\\\s\u0000-\u001f\u007f-\u009f]+$")]
    pub name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    /// `disabled` refuses every app password of the user.
    pub state: Option<UserState>,
    /// Off refuses every app password without deleting them.
    pub app_access: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Removed {
    pub removed: String,
}

#[utoipa::path(get, path = "/api/v1/users", tag = "users", params(UserQuery),
    responses((status = 200, body = UserPage), (status = 400, body = ErrorBody)))]
pub async fn list(accounts: &Accounts, query: UserQuery) -> ApiResult {
    let paging = Paging { offset: query.offset, limit: query.limit }.checked()?;
    let matching: Vec<User> = accounts
        .list_users()
        .await?
        .into_iter()
        .filter(|u| query.q.as_deref().is_none_or(|q| u.name.contains(q)))
        .filter(|u| query.state.is_none_or(|s| u.state == s))
        .filter(|u| query.app_access.is_none_or(|a| u.app_access == a))
        .collect();
    let (users, total) = paging.page(matching);
    Ok((StatusCode::OK, to_json(&UserPage { users, total, offset: paging.offset, limit: paging.limit })))
}

#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = NewUser,
    responses((status = 201, body = User), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(accounts: &Accounts, body: NewUser, actor: &str) -> ApiResult {
    Ok((StatusCode::CREATED, to_json(&accounts.add_user(&body.name, actor).await?)))
}

#[utoipa::path(get, path = "/api/v1/users/{user}", tag = "users", params(("user" = String, Path)),
    responses((status = 200, body = User), (status = 404, body = ErrorBody)))]
pub async fn get(accounts: &Accounts, user: &str) -> ApiResult {
    Ok((StatusCode::OK, to_json(&accounts.user(user).await?)))
}

#[utoipa::path(patch, path = "/api/v1/users/{user}", tag = "users", params(("user" = String, Path)),
    request_body = UserPatch,
    responses((status = 200, body = User), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update(accounts: &Accounts, user: &str, patch: UserPatch, actor: &str) -> ApiResult {
    let mut current = accounts.user(user).await?;
    if let Some(state) = patch.state {
        current = accounts.set_user_state(user, state, actor).await?;
    }
    if let Some(on) = patch.app_access {
        current = accounts.set_app_access(user, on, actor).await?;
    }
    Ok((StatusCode::OK, to_json(&current)))
}

#[utoipa::path(delete, path = "/api/v1/users/{user}", tag = "users", params(("user" = String, Path)),
    responses((status = 200, body = Removed), (status = 404, body = ErrorBody)))]
pub async fn remove(accounts: &Accounts, user: &str) -> ApiResult {
    accounts.remove_user(user).await?;
    Ok((StatusCode::OK, to_json(&Removed { removed: user.to_string() })))
}
