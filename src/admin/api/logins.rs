//! `/users/{user}/login-password` and `/users/{user}/totp`: what an admin
//! needs for the self-service page's local sign-in.

use super::{ApiResult, ErrorBody, to_json};
use crate::logins::Logins;
use crate::secret::Secret;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginPassword {
    /// The new login password for the self-service page (never an app password).
    #[schema(value_type = String, min_length = 10, max_length = 256, example = "correct horse battery")]
    pub password: Secret<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginPasswordSet {
    /// App passwords revoked with it (`policy.revoke_on_password_change`).
    pub revoked: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TotpReset {
    /// Whether a second factor was enrolled and is now removed.
    pub removed: bool,
}

#[utoipa::path(put, path = "/api/v1/users/{user}/login-password", tag = "users", params(("user" = String, Path)),
    request_body = LoginPassword,
    responses((status = 200, body = LoginPasswordSet), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn set_password(logins: &Logins, user: &str, body: LoginPassword, actor: &str) -> ApiResult {
    let revoked = logins.set_password(user, &body.password, actor).await?;
    Ok((StatusCode::OK, to_json(&LoginPasswordSet { revoked })))
}

#[utoipa::path(delete, path = "/api/v1/users/{user}/totp", tag = "users", params(("user" = String, Path)),
    responses((status = 200, body = TotpReset), (status = 404, body = ErrorBody)))]
pub async fn reset_totp(logins: &Logins, user: &str, actor: &str) -> ApiResult {
    let removed = logins.disable_totp(user, actor).await?;
    Ok((StatusCode::OK, to_json(&TotpReset { removed })))
}
