//! Persistence behind one narrow async trait.
//!
//! Every write a caller is told succeeded is durable first (a crash loses
//! nothing acknowledged). The trait holds records only; rules such as the
//! active-password limit live in [`crate::accounts`], so every store gets
//! them for free. `sled` is the embedded default; `postgres` is shared by
//! several instances, which learn of each other's account changes through
//! [`Store::follow_changes`].

pub mod copy;
pub mod model;
pub mod postgres;
pub mod sled;

use crate::config::StoreConfig;
use crate::password::AppPasswordId;
use model::{Activity, AdminToken, AppPassword, Event, EventKind, Login, User};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("already exists")]
    Conflict,
    #[error("the store at {path} is in use by another process")]
    Locked { path: String },
    #[error("store I/O failed: {0}")]
    Io(String),
    #[error("a stored record is corrupt: {0}")]
    Corrupt(String),
    /// The database cannot be reached (down, failing over, pool exhausted).
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Which events to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// One account's history, or every account's when `None`.
    pub user: Option<String>,
    /// Only these kinds; every kind when empty.
    pub kinds: Vec<EventKind>,
    /// Only events at or after this time (Unix seconds).
    pub since: Option<u64>,
    /// Only events before this time (Unix seconds).
    pub until: Option<u64>,
    pub offset: usize,
    pub limit: usize,
}

impl EventQuery {
    /// Whether `event` passes the kind and time filters (not the user one).
    pub fn matches(&self, event: &Event) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&event.kind))
            && self.since.is_none_or(|s| event.at >= s)
            && self.until.is_none_or(|u| event.at < u)
    }
}

/// An account change that cached credentials must not outlive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Disabled, removed, app access off, or every password revoked.
    User(String),
    /// Revoked, expired or otherwise changed.
    Password(AppPasswordId),
}

/// What a shared store reports to each instance's verify cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedEvent {
    Changed(Change),
    /// The feed is down: changes may go unseen until [`FeedEvent::Resumed`].
    Down,
    /// The feed is (again) live; anything may have changed while it was not.
    Resumed,
}

/// Opens the store `config` names (applying PostgreSQL migrations).
pub async fn open(config: &StoreConfig) -> StoreResult<Arc<dyn Store>> {
    match (&config.path, &config.url) {
        (Some(path), None) => Ok(Arc::new(sled::SledStore::open(path, config.cache_mib)?)),
        (None, Some(_)) => Ok(Arc::new(postgres::PgStore::open(config).await?)),
        _ => Err(StoreError::Io("set either store.path or store.url".into())),
    }
}

#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    // Account writes take the events they cause and write both in one
    // transaction: a write is never recorded without its event, nor an
    // event without its write, whatever fails in between.

    /// Inserts a new user; `Conflict` (nothing written) when the name is taken.
    async fn insert_user(&self, user: &User, events: &[Event]) -> StoreResult<()>;
    /// Replaces an existing user record.
    async fn update_user(&self, user: &User, events: &[Event]) -> StoreResult<()>;
    async fn get_user(&self, name: &str) -> StoreResult<Option<User>>;
    async fn list_users(&self) -> StoreResult<Vec<User>>;
    /// Removes a user with its passwords, activity and events.
    async fn remove_user(&self, name: &str) -> StoreResult<bool>;

    /// Inserts a new password; `Conflict` (nothing written) when the id is taken.
    async fn insert_password(&self, password: &AppPassword, events: &[Event]) -> StoreResult<()>;
    /// Replaces existing password records, all or none.
    async fn update_passwords(&self, passwords: &[AppPassword], events: &[Event]) -> StoreResult<()>;
    async fn get_password(&self, id: &str) -> StoreResult<Option<AppPassword>>;
    async fn list_passwords(&self, user: &str) -> StoreResult<Vec<AppPassword>>;
    /// Every password of every user (admin listings).
    async fn list_all_passwords(&self) -> StoreResult<Vec<AppPassword>>;
    /// Passwords expired at `now`, not revoked, whose `expired` event is not
    /// recorded yet (the expiry sweep: it must not hold every record).
    async fn list_newly_expired(&self, now: u64) -> StoreResult<Vec<AppPassword>>;

    /// Writes a batch of last-activity records, with the `new-client`
    /// events they caused, in one durable write; for each password the
    /// latest time wins. Nothing is written for a password removed meanwhile.
    async fn record_activity(&self, batch: &[(AppPasswordId, Activity)], events: &[Event]) -> StoreResult<()>;
    async fn get_activity(&self, ids: &[AppPasswordId]) -> StoreResult<Vec<Option<Activity>>>;

    async fn append_event(&self, event: &Event) -> StoreResult<()>;
    /// Replaces `password` (now marked expiry-recorded) and appends its
    /// `expired` event in one atomic write: never one without the other.
    /// Nothing is written when the stored password is gone or its expiry is
    /// already recorded (several instances sweep the same store).
    async fn record_expiry(&self, password: &AppPassword, event: &Event) -> StoreResult<()>;
    /// Newest first, filtered and paged as `query` says.
    async fn list_events(&self, query: &EventQuery) -> StoreResult<Vec<Event>>;

    /// A user's sign-in secrets, if any were set.
    async fn get_login(&self, user: &str) -> StoreResult<Option<Login>>;
    /// Replaces a user's sign-in secrets (removed with the user).
    async fn put_login(&self, login: &Login, events: &[Event]) -> StoreResult<()>;

    /// Inserts a new admin token; `Conflict` when the id is taken.
    async fn insert_admin_token(&self, token: &AdminToken) -> StoreResult<()>;
    async fn list_admin_tokens(&self) -> StoreResult<Vec<AdminToken>>;
    async fn remove_admin_token(&self, id: &str) -> StoreResult<bool>;

    /// Cheap round trip proving the store answers (`/readyz`).
    async fn ping(&self) -> StoreResult<()>;

    /// Durable writes since open: the request path must never add to it.
    fn write_count(&self) -> u64;

    /// Account changes written by any process sharing this store, for the
    /// verify cache; `None` when only this process writes (sled). The feed
    /// checks its own health at least every `heartbeat`.
    fn follow_changes(&self, heartbeat: Duration) -> Option<tokio::sync::mpsc::Receiver<FeedEvent>> {
        let _ = heartbeat;
        None
    }
}
