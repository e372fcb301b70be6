//! `/health` and `/policy`.

use super::{ApiResult, to_json};
use crate::accounts::Accounts;
use crate::store::model::unix_now;
use http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: String,
    /// The server's clock (Unix seconds).
    pub time: u64,
}

/// The deployment's rules for app passwords.
#[derive(Debug, Serialize, ToSchema)]
pub struct Policy {
    pub max_active_passwords: usize,
    /// Lifetime (seconds) given when none is asked for; absent: never expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_lifetime_secs: Option<u64>,
    /// Longest lifetime (seconds) a password may get; absent: unbounded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_lifetime_secs: Option<u64>,
    /// Services a password may be scoped to.
    pub services: Vec<String>,
    /// Changing the login password revokes every app password.
    pub revoke_on_password_change: bool,
}

#[utoipa::path(get, path = "/api/v1/health", tag = "system", responses((status = 200, body = Health)))]
pub fn health() -> ApiResult {
    Ok((StatusCode::OK, to_json(&Health { status: "ok".into(), time: unix_now() })))
}

#[utoipa::path(get, path = "/api/v1/policy", tag = "system", responses((status = 200, body = Policy)))]
pub fn policy(accounts: &Accounts) -> ApiResult {
    let p = accounts.policy();
    let policy = Policy {
        max_active_passwords: p.max_active_passwords,
        default_lifetime_secs: p.default_lifetime.map(|d| d.as_secs()),
        max_lifetime_secs: p.max_lifetime.map(|d| d.as_secs()),
        services: accounts.service_names(),
        revoke_on_password_change: p.revoke_on_password_change,
    };
    Ok((StatusCode::OK, to_json(&policy)))
}
