//! The data model: users, app passwords, activity and account events.
//!
//! Times are Unix seconds (UTC). Records are serialised as JSON by the
//! stores; the PHC hash is a `Secret` so a `Debug` of a record cannot leak it.

use crate::gateway::scope::Scope;
use crate::password::AppPasswordId;
use crate::secret::Secret;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use utoipa::ToSchema;

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UserState {
    Active,
    Disabled,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct User {
    /// The identity sent upstream.
    pub name: String,
    pub state: UserState,
    /// Off refuses every app password of the user without deleting them.
    pub app_access: bool,
    pub created: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Revocation {
    pub at: u64,
    /// Who revoked: `admin`, `user`, `cli`, ...
    pub by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppPassword {
    pub id: AppPasswordId,
    pub user: String,
    pub name: String,
    pub hash: Secret<String>,
    pub scope: Scope,
    pub created: u64,
    #[serde(default)]
    pub expires: Option<u64>,
    #[serde(default)]
    pub revoked: Option<Revocation>,
    /// Set once the expiry sweep has recorded this password's `expired`
    /// event, so the event is written once.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub expiry_recorded: bool,
}

#[cfg(test)]
impl AppPassword {
    /// A plain record of alice's for unit tests (a cheap, valid hash).
    pub(crate) fn for_test(id: &str, expires: Option<u64>) -> Self {
        Self {
            id: id.into(),
            user: "alice".into(),
            name: id.into(),
            hash: crate::secret::Secret::new("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into()),
            scope: Default::default(),
            created: 1,
            expires,
            revoked: None,
            expiry_recorded: false,
        }
    }
}

impl AppPassword {
    pub fn is_expired(&self, now: u64) -> bool {
        self.expires.is_some_and(|e| e <= now)
    }

    /// Neither revoked nor expired.
    pub fn is_active(&self, now: u64) -> bool {
        self.revoked.is_none() && !self.is_expired(now)
    }

    pub fn status(&self, now: u64) -> &'static str {
        if self.revoked.is_some() {
            "revoked"
        } else if self.is_expired(now) {
            "expired"
        } else {
            "active"
        }
    }
}

/// The last authenticated request made with a password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Activity {
    pub at: u64,
    #[schema(value_type = String, example = "192.0.2.10")]
    pub ip: IpAddr,
    #[serde(default)]
    pub user_agent: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    UserCreated,
    UserDisabled,
    UserEnabled,
    AppAccessOn,
    AppAccessOff,
    PasswordCreated,
    PasswordRenamed,
    PasswordRevoked,
    PasswordsRevokedAll,
    PasswordExpired,
    /// First request from a client not seen before with that password.
    NewClient,
    SignedIn,
    SignInFailed,
    LoginPasswordChanged,
    TotpEnabled,
    TotpDisabled,
}

impl EventKind {
    pub const ALL: [EventKind; 16] = [
        Self::UserCreated,
        Self::UserDisabled,
        Self::UserEnabled,
        Self::AppAccessOn,
        Self::AppAccessOff,
        Self::PasswordCreated,
        Self::PasswordRenamed,
        Self::PasswordRevoked,
        Self::PasswordsRevokedAll,
        Self::PasswordExpired,
        Self::NewClient,
        Self::SignedIn,
        Self::SignInFailed,
        Self::LoginPasswordChanged,
        Self::TotpEnabled,
        Self::TotpDisabled,
    ];
}

/// A user's sign-in secrets for the self-service page, kept apart from
/// [`User`] so no listing or API response can carry them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Login {
    pub user: String,
    /// argon2id PHC of the login password; `None` until one is set.
    #[serde(default)]
    pub password_hash: Option<Secret<String>>,
    /// The confirmed TOTP second factor, if enrolled.
    #[serde(default)]
    pub totp: Option<Totp>,
    /// When the login password last changed.
    #[serde(default)]
    pub changed: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totp {
    /// The shared secret, base32 (RFC 4648, no padding).
    pub secret: Secret<String>,
    /// BLAKE3 hex of each unused recovery code (random, high entropy).
    pub recovery: Vec<Secret<String>>,
    /// The last accepted time step: a code is never accepted twice.
    #[serde(default)]
    pub last_step: u64,
}

/// A bearer token for the admin API over TCP. Only a hash is kept; the
/// token itself is shown once, when it is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminToken {
    /// Public part of the token, used to find the record.
    pub id: String,
    pub name: String,
    /// BLAKE3 of the whole token, hex. Tokens carry 256 random bits, so a
    /// fast hash is enough: there is nothing to brute-force.
    pub hash: Secret<String>,
    pub created: u64,
}

/// One entry of an account's append-only history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    pub at: u64,
    pub user: String,
    pub kind: EventKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub password_id: Option<AppPasswordId>,
    /// Who did it: `cli`, `admin-socket`, `token:<id>` (TCP admin API),
    /// `expiry` (the sweep).
    pub actor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}
