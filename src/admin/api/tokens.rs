//! `/admin-tokens`: bearer tokens for the TCP admin listener. Only local
//! callers (socket, CLI) reach these; the token is shown once.

use super::{ApiError, ApiResult, ErrorBody, to_json};
use crate::accounts::Accounts;
use crate::admin::tokens::{self, TokenView};
use crate::secret::Secret;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// Who or what uses the token, e.g. "monitoring".
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub view: TokenView,
    /// The bearer token. It is in this response only and never again.
    #[schema(value_type = String)]
    pub token: Secret<String>,
}

#[utoipa::path(get, path = "/api/v1/admin-tokens", tag = "admin-tokens",
    responses((status = 200, body = Vec<TokenView>), (status = 403, body = ErrorBody)))]
pub async fn list(accounts: &Accounts) -> ApiResult {
    Ok((StatusCode::OK, to_json(&tokens::list(accounts.store().as_ref()).await?)))
}

#[utoipa::path(post, path = "/api/v1/admin-tokens", tag = "admin-tokens", request_body = NewToken,
    responses((status = 201, body = CreatedToken), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create(accounts: &Accounts, body: NewToken) -> ApiResult {
    let (view, token) = tokens::create(accounts.store().as_ref(), &body.name).await.map_err(|e| match e {
        tokens::TokenError::Invalid(why) => ApiError::bad_request("invalid", why),
        tokens::TokenError::Store(e) => e.into(),
    })?;
    Ok((StatusCode::CREATED, to_json(&CreatedToken { view, token })))
}

#[utoipa::path(delete, path = "/api/v1/admin-tokens/{id}", tag = "admin-tokens", params(("id" = String, Path)),
    responses((status = 200, body = TokenView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke(accounts: &Accounts, id: &str) -> ApiResult {
    match tokens::revoke(accounts.store().as_ref(), id).await? {
        Some(view) => Ok((StatusCode::OK, to_json(&view))),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "unknown_token", format!("no admin token with id {id:?}"))),
    }
}
