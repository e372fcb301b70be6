//! `davgate store copy`: everything from one store into another, empty one.
//!
//! Goes through the [`Store`] trait, so it works in both directions. The
//! destination must be empty (nothing is ever merged or overwritten), and
//! every kind of record is counted back from the destination afterwards.

use super::model::Event;
use super::{EventQuery, Store, StoreError, StoreResult};
use crate::password::AppPasswordId;
use serde::Serialize;

/// Records copied, per kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub users: usize,
    pub logins: usize,
    pub passwords: usize,
    pub activity: usize,
    pub events: usize,
    pub admin_tokens: usize,
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "users: {}, login records: {}, app passwords: {}, activity records: {}, events: {}, admin tokens: {}",
            self.users, self.logins, self.passwords, self.activity, self.events, self.admin_tokens
        )
    }
}

/// Activity records written per batch.
const ACTIVITY_BATCH: usize = 1000;

/// What `store` holds, counted through the trait.
pub async fn count(store: &dyn Store) -> StoreResult<Counts> {
    let users = store.list_users().await?;
    let mut logins = 0;
    for user in &users {
        logins += usize::from(store.get_login(&user.name).await?.is_some());
    }
    let ids: Vec<AppPasswordId> = store.list_all_passwords().await?.into_iter().map(|p| p.id).collect();
    Ok(Counts {
        users: users.len(),
        logins,
        passwords: ids.len(),
        activity: store.get_activity(&ids).await?.iter().flatten().count(),
        events: all_events(store).await?.len(),
        admin_tokens: store.list_admin_tokens().await?.len(),
    })
}

/// Every event, oldest first.
async fn all_events(store: &dyn Store) -> StoreResult<Vec<Event>> {
    let mut events = store.list_events(&EventQuery { limit: usize::MAX, ..Default::default() }).await?;
    events.reverse();
    Ok(events)
}

/// Copies everything from `from` into the empty `to`; returns the counts,
/// checked against what `to` holds afterwards.
pub async fn copy(from: &dyn Store, to: &dyn Store) -> StoreResult<Counts> {
    let present = count(to).await?;
    if present != Counts::default() {
        return Err(StoreError::Io(format!("the destination is not empty ({present}); copy only into an empty store")));
    }
    let users = from.list_users().await?;
    for user in &users {
        to.insert_user(user, &[]).await?;
        if let Some(login) = from.get_login(&user.name).await? {
            to.put_login(&login, &[]).await?;
        }
    }
    let passwords = from.list_all_passwords().await?;
    for password in &passwords {
        to.insert_password(password, &[]).await?;
    }
    let ids: Vec<AppPasswordId> = passwords.iter().map(|p| p.id.clone()).collect();
    for chunk in ids.chunks(ACTIVITY_BATCH) {
        let found = from.get_activity(chunk).await?;
        let batch: Vec<_> = chunk.iter().cloned().zip(found).filter_map(|(id, a)| Some((id, a?))).collect();
        to.record_activity(&batch, &[]).await?;
    }
    // Oldest first, so both stores list them in the same order.
    for event in all_events(from).await? {
        to.append_event(&event).await?;
    }
    for token in from.list_admin_tokens().await? {
        to.insert_admin_token(&token).await?;
    }
    let (expected, copied) = (count(from).await?, count(to).await?);
    if expected != copied {
        return Err(StoreError::Io(format!(
            "copy incomplete: the source holds {expected} but the destination {copied}"
        )));
    }
    Ok(copied)
}
