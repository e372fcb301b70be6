//! Account operations shared by the CLI, the admin API and (later) the web
//! page: users, app passwords, revocation, with the policy rules.
//!
//! Every change is written durably before it is acknowledged, and every
//! change that takes access away drops the affected verify-cache entries
//! before returning, so the very next request is refused.

use crate::activity::ActivityRecorder;
use crate::config::PolicyConfig;
use crate::gateway::scope::{Scope, ScopeRules};
use crate::gateway::verify::VerifyCache;
use crate::password;
use crate::secret::Secret;
use crate::store::model::{Activity, AppPassword, Event, EventKind, Revocation, User, UserState, unix_now};
use crate::store::{EventQuery, Store, StoreError};
use arc_swap::ArcSwap;
use serde::Serialize;
use std::sync::Arc;

/// Longest app password name, in characters.
pub const MAX_NAME_CHARS: usize = 64;
/// Longest user name, in characters.
pub const MAX_USER_CHARS: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("unknown user {0:?}")]
    UnknownUser(String),
    #[error("user {0:?} already exists")]
    UserExists(String),
    #[error("user {0:?} has no app password with id {1:?}")]
    UnknownPassword(String, String),
    #[error("{0}")]
    Invalid(String),
    #[error("user {user:?} already has {max} active app passwords (policy.max_active_passwords); revoke one first")]
    TooMany { user: String, max: usize },
    #[error("too many sign-in checks at once; try again in a moment")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AccountError {
    /// A stable machine-readable code for the JSON API.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownUser(_) => "unknown_user",
            Self::UserExists(_) => "user_exists",
            Self::UnknownPassword(..) => "unknown_password",
            Self::Invalid(_) => "invalid",
            Self::TooMany { .. } => "too_many_passwords",
            Self::Busy => "busy",
            Self::Store(StoreError::Locked { .. }) => "store_locked",
            Self::Store(StoreError::Unavailable(_)) => "store_unavailable",
            Self::Store(_) => "store_error",
        }
    }
}

pub type AccountResult<T> = Result<T, AccountError>;

/// What a caller asks for when creating a password.
#[derive(Debug, Clone, Default)]
pub struct NewPassword {
    pub name: String,
    pub scope: Scope,
    /// Absolute expiry (Unix seconds); `None` applies the policy default.
    pub expires: Option<u64>,
}

/// A password as listed: the record (hash not shown) and its last activity.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PasswordView {
    pub id: String,
    pub user: String,
    pub name: String,
    pub scope: Scope,
    pub created: u64,
    pub expires: Option<u64>,
    /// `active`, `revoked` or `expired`.
    #[schema(value_type = String, example = "active")]
    pub status: &'static str,
    pub revoked: Option<Revocation>,
    pub last_activity: Option<Activity>,
}

impl PasswordView {
    fn new(p: AppPassword, last_activity: Option<Activity>, now: u64) -> Self {
        Self {
            status: p.status(now),
            id: p.id,
            user: p.user,
            name: p.name,
            scope: p.scope,
            created: p.created,
            expires: p.expires,
            revoked: p.revoked,
            last_activity,
        }
    }
}

/// A freshly created password: the only time the secret is ever available.
#[derive(Debug)]
pub struct CreatedPassword {
    pub view: PasswordView,
    pub password: Secret<String>,
}

pub struct Accounts {
    store: Arc<dyn Store>,
    cache: Arc<VerifyCache>,
    activity: Arc<ActivityRecorder>,
    /// Swapped whole by a config reload.
    rules: ArcSwap<ScopeRules>,
    policy: ArcSwap<PolicyConfig>,
    hash_params: argon2::Params,
    /// Serialises read-check-write sequences (the active-password limit).
    writes: tokio::sync::Mutex<()>,
}

pub fn validate_user_name(name: &str) -> AccountResult<()> {
    if name.is_empty() || name.chars().count() > MAX_USER_CHARS {
        return Err(AccountError::Invalid(format!("a user name is 1 to {MAX_USER_CHARS} characters")));
    }
    // ':' cannot be sent in Basic credentials (RFC 7617 §2); '/' would make
    // `{user}` in a path pattern span segments.
    if name.chars().any(|c| c.is_control() || matches!(c, ':' | '/' | '\\' | '\u{feff}') || c.is_whitespace()) {
        return Err(AccountError::Invalid(
            "a user name must not contain ':', '/', '\\', spaces or control characters".into(),
        ));
    }
    Ok(())
}

fn validate_password_name(name: &str) -> AccountResult<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(AccountError::Invalid("an app password needs a name".into()));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(AccountError::Invalid(format!(
            "the name has {} characters; at most {MAX_NAME_CHARS} are allowed",
            name.chars().count()
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(AccountError::Invalid("the name must not contain control characters".into()));
    }
    Ok(name.to_string())
}

/// Parses an expiry as a duration from now (`90d`, `12h`) or a date or time
/// (`2027-01-31`, `2027-01-31T12:00:00Z`), into Unix seconds.
pub fn parse_expiry(text: &str, now: u64) -> AccountResult<u64> {
    let text = text.trim();
    if let Ok(d) = humantime::parse_duration(text) {
        return Ok(now.saturating_add(d.as_secs()));
    }
    parse_date(text).ok_or_else(|| {
        AccountError::Invalid(format!(
            "expiry {text:?} is neither a duration like \"90d\" nor a date like \"2027-01-31\""
        ))
    })
}

/// A date (`2027-01-31`, midnight UTC) or time (`2027-01-31T12:00:00Z`) as Unix seconds.
pub fn parse_date(text: &str) -> Option<u64> {
    let text = text.trim();
    let as_time = if text.len() == 10 { format!("{text}T00:00:00Z") } else { text.to_string() };
    let at = humantime::parse_rfc3339_weak(&as_time).ok()?;
    Some(at.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0))
}

impl Accounts {
    pub fn new(
        store: Arc<dyn Store>,
        cache: Arc<VerifyCache>,
        activity: Arc<ActivityRecorder>,
        rules: ScopeRules,
        policy: PolicyConfig,
        hash_params: argon2::Params,
    ) -> Self {
        Self {
            store,
            cache,
            activity,
            rules: ArcSwap::from_pointee(rules),
            policy: ArcSwap::from_pointee(policy),
            hash_params,
            writes: tokio::sync::Mutex::new(()),
        }
    }

    /// Applies reloaded services and policy to every later operation.
    pub fn reconfigure(&self, rules: ScopeRules, policy: PolicyConfig) {
        self.rules.store(Arc::new(rules));
        self.policy.store(Arc::new(policy));
    }

    /// The services passwords may be scoped to.
    pub fn service_names(&self) -> Vec<String> {
        self.rules.load().service_names().map(String::from).collect()
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn policy(&self) -> Arc<PolicyConfig> {
        self.policy.load_full()
    }

    /// The event a write causes, written in the same store transaction.
    fn event(user: &str, kind: EventKind, password_id: Option<&str>, actor: &str) -> [Event; 1] {
        [Event {
            at: unix_now(),
            user: user.to_string(),
            kind,
            password_id: password_id.map(String::from),
            actor: actor.to_string(),
            detail: None,
        }]
    }

    pub async fn user(&self, name: &str) -> AccountResult<User> {
        self.store.get_user(name).await?.ok_or_else(|| AccountError::UnknownUser(name.to_string()))
    }

    pub async fn add_user(&self, name: &str, actor: &str) -> AccountResult<User> {
        validate_user_name(name)?;
        let user = User { name: name.to_string(), state: UserState::Active, app_access: true, created: unix_now() };
        match self.store.insert_user(&user, &Self::event(name, EventKind::UserCreated, None, actor)).await {
            Err(StoreError::Conflict) => Err(AccountError::UserExists(name.to_string())),
            other => Ok(other.map(|()| user)?),
        }
    }

    pub async fn list_users(&self) -> AccountResult<Vec<User>> {
        Ok(self.store.list_users().await?)
    }

    pub async fn set_user_state(&self, name: &str, state: UserState, actor: &str) -> AccountResult<User> {
        let _w = self.writes.lock().await;
        let mut user = self.user(name).await?;
        user.state = state;
        let kind = if state == UserState::Active { EventKind::UserEnabled } else { EventKind::UserDisabled };
        self.store.update_user(&user, &Self::event(name, kind, None, actor)).await?;
        self.cache.invalidate_user(name).await;
        Ok(user)
    }

    pub async fn set_app_access(&self, name: &str, on: bool, actor: &str) -> AccountResult<User> {
        let _w = self.writes.lock().await;
        let mut user = self.user(name).await?;
        user.app_access = on;
        let kind = if on { EventKind::AppAccessOn } else { EventKind::AppAccessOff };
        self.store.update_user(&user, &Self::event(name, kind, None, actor)).await?;
        self.cache.invalidate_user(name).await;
        Ok(user)
    }

    pub async fn remove_user(&self, name: &str) -> AccountResult<()> {
        let _w = self.writes.lock().await;
        let ids: Vec<String> = self.store.list_passwords(name).await?.into_iter().map(|p| p.id).collect();
        if !self.store.remove_user(name).await? {
            return Err(AccountError::UnknownUser(name.to_string()));
        }
        self.cache.invalidate_user(name).await;
        self.activity.forget(&ids);
        Ok(())
    }

    fn check_scope(&self, scope: &Scope) -> AccountResult<()> {
        let rules = self.rules.load();
        for s in &scope.services {
            if !rules.has_service(s) {
                let known: Vec<&str> = rules.service_names().collect();
                return Err(AccountError::Invalid(format!(
                    "unknown service {s:?}; the config defines: all, {}",
                    known.join(", ")
                )));
            }
        }
        for c in &scope.collections {
            if crate::gateway::scope::check_pattern(c).is_err() || c.contains("{user}") {
                return Err(AccountError::Invalid(format!(
                    "collection {c:?} must be an absolute path without dot segments, e.g. /calendars/alice/work/"
                )));
            }
        }
        Ok(())
    }

    fn resolve_expiry(&self, asked: Option<u64>, now: u64) -> AccountResult<Option<u64>> {
        let policy = self.policy.load();
        let expires = asked.or_else(|| policy.default_lifetime.map(|d| now + d.as_secs()));
        if let Some(e) = expires {
            if e <= now {
                return Err(AccountError::Invalid("the expiry is in the past".into()));
            }
            if let Some(max) = policy.max_lifetime
                && e > now + max.as_secs()
            {
                return Err(AccountError::Invalid(format!(
                    "the expiry is beyond the policy's maximum lifetime of {}",
                    humantime::format_duration(max)
                )));
            }
        } else if let Some(max) = policy.max_lifetime {
            return Ok(Some(now + max.as_secs()));
        }
        Ok(expires)
    }

    pub async fn create_password(&self, user: &str, new: NewPassword, actor: &str) -> AccountResult<CreatedPassword> {
        let name = validate_password_name(&new.name)?;
        self.check_scope(&new.scope)?;
        let now = unix_now();
        let expires = self.resolve_expiry(new.expires, now)?;
        let _w = self.writes.lock().await;
        let account = self.user(user).await?;
        let active = self.store.list_passwords(user).await?.iter().filter(|p| p.is_active(now)).count();
        let max = self.policy.load().max_active_passwords;
        if active >= max {
            return Err(AccountError::TooMany { user: account.name, max });
        }
        loop {
            let secret = password::generate();
            let params = self.hash_params.clone();
            let (secret, hash) = tokio::task::spawn_blocking(move || {
                let hash = password::hash(&secret, &params);
                (secret, hash)
            })
            .await
            .map_err(|e| AccountError::Store(StoreError::Io(e.to_string())))?;
            let record = AppPassword {
                id: password::id_of(&secret),
                user: user.to_string(),
                name: name.clone(),
                hash,
                scope: new.scope.clone(),
                created: now,
                expires,
                revoked: None,
                expiry_recorded: false,
            };
            let created = Self::event(user, EventKind::PasswordCreated, Some(&record.id), actor);
            match self.store.insert_password(&record, &created).await {
                // The public id is ~25 bits: collisions happen; draw again.
                Err(StoreError::Conflict) => continue,
                other => other?,
            }
            return Ok(CreatedPassword { view: PasswordView::new(record, None, now), password: secret });
        }
    }

    pub async fn list_passwords(&self, user: &str) -> AccountResult<Vec<PasswordView>> {
        self.user(user).await?;
        let passwords = self.store.list_passwords(user).await?;
        let ids: Vec<String> = passwords.iter().map(|p| p.id.clone()).collect();
        let stored = self.store.get_activity(&ids).await?;
        let now = unix_now();
        Ok(passwords
            .into_iter()
            .zip(stored)
            .map(|(p, a)| {
                let last = self.activity.merge(&p.id, a);
                PasswordView::new(p, last, now)
            })
            .collect())
    }

    async fn owned_password(&self, user: &str, id: &str) -> AccountResult<AppPassword> {
        match self.store.get_password(id).await? {
            Some(p) if p.user == user => Ok(p),
            _ => {
                self.user(user).await?;
                Err(AccountError::UnknownPassword(user.to_string(), id.to_string()))
            }
        }
    }

    /// One password of `user`, as listed.
    pub async fn password(&self, user: &str, id: &str) -> AccountResult<PasswordView> {
        let p = self.owned_password(user, id).await?;
        let stored = self.store.get_activity(std::slice::from_ref(&p.id)).await?.pop().flatten();
        let last = self.activity.merge(&p.id, stored);
        Ok(PasswordView::new(p, last, unix_now()))
    }

    pub async fn rename_password(&self, user: &str, id: &str, name: &str, actor: &str) -> AccountResult<()> {
        let name = validate_password_name(name)?;
        let _w = self.writes.lock().await;
        let mut p = self.owned_password(user, id).await?;
        p.name = name;
        let renamed = Self::event(user, EventKind::PasswordRenamed, Some(id), actor);
        Ok(self.store.update_passwords(std::slice::from_ref(&p), &renamed).await?)
    }

    /// Revokes one password; revoking a revoked password is a no-op success.
    pub async fn revoke(&self, user: &str, id: &str, actor: &str) -> AccountResult<()> {
        let _w = self.writes.lock().await;
        let mut p = self.owned_password(user, id).await?;
        if p.revoked.is_none() {
            p.revoked = Some(Revocation { at: unix_now(), by: actor.to_string(), reason: None });
            let revoked = Self::event(user, EventKind::PasswordRevoked, Some(id), actor);
            self.store.update_passwords(std::slice::from_ref(&p), &revoked).await?;
            self.cache.invalidate_password(id).await;
        }
        Ok(())
    }

    /// Revokes every password of the user; returns how many were active.
    pub async fn revoke_all(&self, user: &str, actor: &str) -> AccountResult<usize> {
        let _w = self.writes.lock().await;
        self.user(user).await?;
        let now = unix_now();
        let mut changed: Vec<AppPassword> =
            self.store.list_passwords(user).await?.into_iter().filter(|p| p.revoked.is_none()).collect();
        for p in &mut changed {
            p.revoked = Some(Revocation { at: now, by: actor.to_string(), reason: Some("revoke-all".into()) });
        }
        self.store.update_passwords(&changed, &Self::event(user, EventKind::PasswordsRevokedAll, None, actor)).await?;
        self.cache.invalidate_user(user).await;
        Ok(changed.len())
    }

    /// One account's history (404 for an unknown user) or everyone's.
    pub async fn events(&self, query: &EventQuery) -> AccountResult<Vec<Event>> {
        if let Some(user) = &query.user {
            self.user(user).await?;
        }
        Ok(self.store.list_events(query).await?)
    }

    /// Every user's passwords that pass `filter`, oldest first.
    pub async fn list_all_passwords(&self, filter: &PasswordFilter) -> AccountResult<Vec<PasswordView>> {
        let now = unix_now();
        let passwords: Vec<AppPassword> =
            self.store.list_all_passwords().await?.into_iter().filter(|p| filter.matches(p, now)).collect();
        let ids: Vec<String> = passwords.iter().map(|p| p.id.clone()).collect();
        let stored = self.store.get_activity(&ids).await?;
        let mut views: Vec<PasswordView> = passwords
            .into_iter()
            .zip(stored)
            .map(|(p, a)| {
                let last = self.activity.merge(&p.id, a);
                PasswordView::new(p, last, now)
            })
            .collect();
        views.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.id.cmp(&b.id)));
        Ok(views)
    }

    /// Records an `expired` event for each password whose expiry has passed
    /// since the last sweep. Refusal does not wait for this: the verifier
    /// checks expiry on every request. Returns how many were recorded.
    pub async fn sweep_expired(&self, now: u64) -> AccountResult<usize> {
        let mut recorded = 0;
        for candidate in self.store.list_newly_expired(now).await? {
            // One password at a time under the write lock, re-read so a
            // change made since the listing is neither lost nor doubled,
            // and admin writes never wait for a whole sweep.
            let _w = self.writes.lock().await;
            let Some(mut p) = self.store.get_password(&candidate.id).await? else { continue };
            if p.revoked.is_some() || !p.is_expired(now) || p.expiry_recorded {
                continue;
            }
            let event = Event {
                at: p.expires.unwrap_or(now),
                user: p.user.clone(),
                kind: EventKind::PasswordExpired,
                password_id: Some(p.id.clone()),
                actor: "expiry".into(),
                detail: None,
            };
            p.expiry_recorded = true;
            self.store.record_expiry(&p, &event).await?;
            self.cache.invalidate_password(&p.id).await;
            recorded += 1;
        }
        Ok(recorded)
    }
}

/// Which passwords an admin listing across users shows.
#[derive(Debug, Clone, Default)]
pub struct PasswordFilter {
    pub user: Option<String>,
    /// `active`, `revoked` or `expired`.
    pub status: Option<String>,
    /// Only active passwords that expire within this many seconds.
    pub expiring_within: Option<u64>,
}

impl PasswordFilter {
    fn matches(&self, p: &AppPassword, now: u64) -> bool {
        self.user.as_ref().is_none_or(|u| &p.user == u)
            && self.status.as_ref().is_none_or(|s| p.status(now) == s)
            && self
                .expiring_within
                .is_none_or(|w| p.is_active(now) && p.expires.is_some_and(|e| e <= now.saturating_add(w)))
    }
}
