//! The embedded store: sled 0.34, one directory, one owning process.
//!
//! sled takes an exclusive lock on its directory, so while `davgate serve`
//! runs the CLI talks to it over the admin socket. Every write is followed
//! by `flush_async` before it returns: acknowledged means on disk.
//!
//! Layout (values are JSON):
//! - `users`:     name → User
//! - `passwords`: id → AppPassword
//! - `by_user`:   user \0 id → ()
//! - `activity`:  id → Activity (apart from `passwords`, so an activity
//!   flush can never overwrite a revocation)
//! - `events`:    user \0 big-endian sequence → Event
//! - `event_log`: big-endian sequence → user \0 sequence (the `events` key),
//!   so every account's history can be listed newest first
//! - `admin_tokens`: id → AdminToken

use super::model::{Activity, AdminToken, AppPassword, Event, Login, User};
use super::{EventQuery, Store, StoreError, StoreResult};
use crate::password::AppPasswordId;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::{Transactional, Tree};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

pub struct SledStore {
    db: sled::Db,
    users: Tree,
    passwords: Tree,
    by_user: Tree,
    activity: Tree,
    events: Tree,
    event_log: Tree,
    admin_tokens: Tree,
    logins: Tree,
    /// `expires (u64 BE) ++ id` of every password the expiry sweep may
    /// still have to record (an expiry, not revoked, not recorded), so the
    /// sweep reads only those instead of every record.
    expiring: Tree,
    writes: AtomicU64,
}

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(e.to_string())
}

/// Reads `key` on the blocking pool. A leaf outside sled's small cache
/// (`store.cache_mib`) comes from disk, and a read waits while a
/// transaction holds sled's global write lock during a flush; on a serving
/// thread either would stall every connection of that thread. Used for
/// the reads of a cold verification, where the hop is nothing next to the
/// argon2 run.
async fn read_off_loop(tree: &Tree, key: &str) -> StoreResult<Option<sled::IVec>> {
    let tree = tree.clone();
    let key = key.as_bytes().to_vec();
    tokio::task::spawn_blocking(move || tree.get(key)).await.map_err(io)?.map_err(io)
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("model types always serialise")
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn user_key(user: &str, suffix: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(user.len() + 1 + suffix.len());
    k.extend_from_slice(user.as_bytes());
    k.push(0);
    k.extend_from_slice(suffix);
    k
}

/// The `expiring` key of a stored password, if the sweep may need it.
fn expiring_key(p: &AppPassword) -> Option<Vec<u8>> {
    let expires = p.expires.filter(|_| p.revoked.is_none() && !p.expiry_recorded)?;
    Some([&expires.to_be_bytes()[..], p.id.as_bytes()].concat())
}

/// Keeps `expiring` in step when a password record goes from `old` to
/// `new` (either may be absent).
fn reindex_expiry(
    expiring: &sled::transaction::TransactionalTree,
    old: Option<&AppPassword>,
    new: Option<&AppPassword>,
) -> sled::transaction::ConflictableTransactionResult<(), StoreError> {
    let (old, new) = (old.and_then(expiring_key), new.and_then(expiring_key));
    if old != new {
        if let Some(k) = old {
            expiring.remove(k)?;
        }
        if let Some(k) = new {
            expiring.insert(k, &[] as &[u8])?;
        }
    }
    Ok(())
}

/// Marks, in the default tree, that `expiring` has been built.
const EXPIRING_BUILT: &[u8] = b"index:expiring";

fn user_prefix(user: &str) -> Vec<u8> {
    user_key(user, &[])
}

struct KeyedEvent {
    seq: [u8; 8],
    key: Vec<u8>,
    value: Vec<u8>,
}

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

/// Writes `events` inside a transaction over `events` and `event_log`.
fn put_events(
    events: &sled::transaction::TransactionalTree,
    event_log: &sled::transaction::TransactionalTree,
    keyed: &[KeyedEvent],
) -> TxResult<()> {
    for e in keyed {
        events.insert(e.key.as_slice(), e.value.as_slice())?;
        event_log.insert(&e.seq, e.key.as_slice())?;
    }
    Ok(())
}

fn from_tx(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => io(e),
    }
}

impl SledStore {
    /// Opens (or creates) the store; `Locked` when another process has it.
    pub fn open(path: &Path, cache_mib: u64) -> StoreResult<Self> {
        let db =
            // No background flusher: every acknowledged write is flushed
            // explicitly, and an idle store should not fsync twice a second.
            sled::Config::new().path(path).cache_capacity(cache_mib * 1024 * 1024).flush_every_ms(None).open().map_err(|e| match e {
                sled::Error::Io(ref err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                    StoreError::Locked { path: path.display().to_string() }
                }
                other => io(other),
            })?;
        let tree = |name: &str| db.open_tree(name).map_err(io);
        let store = Self {
            users: tree("users")?,
            passwords: tree("passwords")?,
            by_user: tree("by_user")?,
            activity: tree("activity")?,
            events: tree("events")?,
            event_log: tree("event_log")?,
            admin_tokens: tree("admin_tokens")?,
            logins: tree("logins")?,
            expiring: tree("expiring")?,
            db,
            writes: AtomicU64::new(0),
        };
        store.index_event_log()?;
        store.index_expiring()?;
        Ok(store)
    }

    /// Stores written before `expiring` existed get it built once.
    fn index_expiring(&self) -> StoreResult<()> {
        if self.db.contains_key(EXPIRING_BUILT).map_err(io)? {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for entry in self.passwords.iter() {
            let (id, value) = entry.map_err(io)?;
            match decode::<AppPassword>(&value) {
                Ok(p) => {
                    if let Some(key) = expiring_key(&p) {
                        batch.insert(key, &[] as &[u8]);
                    }
                }
                // One damaged record must not keep the store shut; reading
                // it fails later where it is used, naming the problem.
                Err(_) => {
                    tracing::warn!(id = %String::from_utf8_lossy(&id), "expiry index: skipped an unreadable password record")
                }
            }
        }
        self.expiring.apply_batch(batch).map_err(io)?;
        self.db.insert(EXPIRING_BUILT, &[] as &[u8]).map_err(io)?;
        self.db.flush().map_err(io)?;
        Ok(())
    }

    /// Stores written before `event_log` existed get it built once.
    fn index_event_log(&self) -> StoreResult<()> {
        if !self.event_log.is_empty() || self.events.is_empty() {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for key in self.events.iter().keys() {
            let key = key.map_err(io)?;
            batch.insert(sled::IVec::from(&key[key.len() - 8..]), key);
        }
        self.event_log.apply_batch(batch).map_err(io)?;
        self.db.flush().map_err(io)?;
        Ok(())
    }

    /// Events newest first from `keys` (keys of `events`), filtered and paged.
    fn page_events(
        &self,
        keys: impl Iterator<Item = sled::Result<sled::IVec>>,
        query: &EventQuery,
    ) -> StoreResult<Vec<Event>> {
        let mut out = Vec::new();
        let mut skipped = 0;
        if query.limit == 0 {
            return Ok(out);
        }
        for key in keys {
            let Some(value) = self.events.get(key.map_err(io)?).map_err(io)? else { continue };
            let event: Event = decode(&value)?;
            if !query.matches(&event) {
                continue;
            }
            if skipped < query.offset {
                skipped += 1;
                continue;
            }
            out.push(event);
            if out.len() >= query.limit {
                break;
            }
        }
        Ok(out)
    }

    /// Each event with its `event_log` sequence and its `events` key, ready
    /// to be written inside a transaction.
    fn keyed(&self, events: &[Event]) -> StoreResult<Vec<KeyedEvent>> {
        events
            .iter()
            .map(|event| {
                let seq = self.db.generate_id().map_err(io)?.to_be_bytes();
                Ok(KeyedEvent { seq, key: user_key(&event.user, &seq), value: encode(event) })
            })
            .collect()
    }

    /// Makes the preceding writes durable, then counts one acknowledged write.
    async fn durable(&self) -> StoreResult<()> {
        self.db.flush_async().await.map_err(io)?;
        self.writes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn scan<T: DeserializeOwned>(tree: &Tree, prefix: &[u8]) -> StoreResult<Vec<T>> {
        tree.scan_prefix(prefix).values().map(|v| decode(&v.map_err(io)?)).collect()
    }
}

#[async_trait::async_trait]
impl Store for SledStore {
    async fn insert_user(&self, user: &User, events: &[Event]) -> StoreResult<()> {
        let (value, keyed) = (encode(user), self.keyed(events)?);
        (&self.users, &self.events, &self.event_log)
            .transaction(|(users, events, event_log)| {
                if users.get(user.name.as_bytes())?.is_some() {
                    return Err(ConflictableTransactionError::Abort(StoreError::Conflict));
                }
                users.insert(user.name.as_bytes(), value.as_slice())?;
                put_events(events, event_log, &keyed)
            })
            .map_err(from_tx)?;
        self.durable().await
    }

    async fn update_user(&self, user: &User, events: &[Event]) -> StoreResult<()> {
        let (value, keyed) = (encode(user), self.keyed(events)?);
        (&self.users, &self.events, &self.event_log)
            .transaction(|(users, events, event_log)| {
                users.insert(user.name.as_bytes(), value.as_slice())?;
                put_events(events, event_log, &keyed)
            })
            .map_err(from_tx)?;
        self.durable().await
    }

    /// On the blocking pool, like [`Self::get_password`]: a verification
    /// reads the user right after the password.
    async fn get_user(&self, name: &str) -> StoreResult<Option<User>> {
        read_off_loop(&self.users, name).await?.map(|v| decode(&v)).transpose()
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        Self::scan(&self.users, b"")
    }

    async fn remove_user(&self, name: &str) -> StoreResult<bool> {
        let prefix = user_prefix(name);
        let ids: Vec<sled::IVec> = self
            .by_user
            .scan_prefix(&prefix)
            .keys()
            .map(|k| k.map(|k| sled::IVec::from(&k[prefix.len()..])).map_err(io))
            .collect::<StoreResult<_>>()?;
        let event_keys: Vec<sled::IVec> =
            self.events.scan_prefix(&prefix).keys().collect::<Result<_, _>>().map_err(io)?;
        let trees = (
            &self.users,
            &self.passwords,
            &self.by_user,
            &self.activity,
            &self.events,
            &self.event_log,
            &self.logins,
            &self.expiring,
        );
        let existed = trees
            .transaction(|(users, passwords, by_user, activity, events, event_log, logins, expiring)| {
                for id in &ids {
                    if let Some(old) = passwords.remove(id)? {
                        reindex_expiry(expiring, decode(&old).ok().as_ref(), None)?;
                    }
                    activity.remove(id)?;
                    by_user.remove(user_key(name, id))?;
                }
                for k in &event_keys {
                    events.remove(k)?;
                    event_log.remove(&k[k.len() - 8..])?;
                }
                logins.remove(name.as_bytes())?;
                Ok::<_, ConflictableTransactionError<StoreError>>(users.remove(name.as_bytes())?.is_some())
            })
            .map_err(from_tx)?;
        self.durable().await?;
        Ok(existed)
    }

    async fn insert_password(&self, password: &AppPassword, events: &[Event]) -> StoreResult<()> {
        let (value, keyed) = (encode(password), self.keyed(events)?);
        (&self.passwords, &self.by_user, &self.events, &self.event_log, &self.expiring)
            .transaction(|(passwords, by_user, events, event_log, expiring)| {
                if passwords.get(password.id.as_bytes())?.is_some() {
                    return Err(ConflictableTransactionError::Abort(StoreError::Conflict));
                }
                passwords.insert(password.id.as_bytes(), value.as_slice())?;
                reindex_expiry(expiring, None, Some(password))?;
                by_user.insert(user_key(&password.user, password.id.as_bytes()), &[] as &[u8])?;
                put_events(events, event_log, &keyed)
            })
            .map_err(from_tx)?;
        self.durable().await
    }

    async fn update_passwords(&self, list: &[AppPassword], events: &[Event]) -> StoreResult<()> {
        let encoded: Vec<(&str, Vec<u8>)> = list.iter().map(|p| (p.id.as_str(), encode(p))).collect();
        let keyed = self.keyed(events)?;
        (&self.passwords, &self.events, &self.event_log, &self.expiring)
            .transaction(|(passwords, events, event_log, expiring)| {
                // Only records that exist (an update never creates one),
                // and never undoing a revocation.
                for ((id, value), p) in encoded.iter().zip(list) {
                    let Some(stored) = passwords.get(id.as_bytes())? else { continue };
                    let stored = decode::<AppPassword>(&stored).ok();
                    if p.revoked.is_some() || stored.as_ref().is_some_and(|s| s.revoked.is_none()) {
                        passwords.insert(id.as_bytes(), value.as_slice())?;
                        reindex_expiry(expiring, stored.as_ref(), Some(p))?;
                    }
                }
                put_events(events, event_log, &keyed)
            })
            .map_err(from_tx)?;
        self.durable().await
    }

    /// On the blocking pool: a verification reads the record on a
    /// verify-cache miss, from a serving thread (see [`read_off_loop`]).
    async fn get_password(&self, id: &str) -> StoreResult<Option<AppPassword>> {
        read_off_loop(&self.passwords, id).await?.map(|v| decode(&v)).transpose()
    }

    async fn list_passwords(&self, user: &str) -> StoreResult<Vec<AppPassword>> {
        let prefix = user_prefix(user);
        let mut out = Vec::new();
        for key in self.by_user.scan_prefix(&prefix).keys() {
            let key = key.map_err(io)?;
            if let Some(v) = self.passwords.get(&key[prefix.len()..]).map_err(io)? {
                out.push(decode(&v)?);
            }
        }
        out.sort_by(|a: &AppPassword, b| a.created.cmp(&b.created).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }

    async fn list_all_passwords(&self) -> StoreResult<Vec<AppPassword>> {
        Self::scan(&self.passwords, b"")
    }

    async fn list_newly_expired(&self, now: u64) -> StoreResult<Vec<AppPassword>> {
        let (mut out, mut seen) = (Vec::new(), std::collections::HashSet::new());
        let due = self.expiring.range(..now.saturating_add(1).to_be_bytes().to_vec());
        for key in due.keys() {
            let key = key.map_err(io)?;
            let Some(value) = self.passwords.get(&key[8..]).map_err(io)? else { continue };
            let p: AppPassword = decode(&value)?;
            // A stale entry (its record was unreadable when it changed) may
            // name the same password twice.
            if p.revoked.is_none() && p.is_expired(now) && !p.expiry_recorded && seen.insert(p.id.clone()) {
                out.push(p);
            }
        }
        Ok(out)
    }

    async fn record_activity(&self, batch: &[(AppPasswordId, Activity)], new_events: &[Event]) -> StoreResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let keyed = self.keyed(new_events)?;
        // One transaction with `passwords`, so a password removed meanwhile
        // never gets orphan activity or events.
        (&self.passwords, &self.activity, &self.events, &self.event_log)
            .transaction(|(passwords, activity, events, event_log)| {
                for (event, keyed) in new_events.iter().zip(&keyed) {
                    let id = event.password_id.as_deref().unwrap_or_default();
                    if passwords.get(id.as_bytes())?.is_some() {
                        put_events(events, event_log, std::slice::from_ref(keyed))?;
                    }
                }
                for (id, new) in batch {
                    if passwords.get(id.as_bytes())?.is_none() {
                        continue;
                    }
                    let newer = match activity.get(id.as_bytes())? {
                        Some(old) => decode::<Activity>(&old).map(|old| old.at <= new.at).unwrap_or(true),
                        None => true,
                    };
                    if newer {
                        activity.insert(id.as_bytes(), encode(new))?;
                    }
                }
                TxResult::Ok(())
            })
            .map_err(from_tx)?;
        self.durable().await
    }

    async fn get_activity(&self, ids: &[AppPasswordId]) -> StoreResult<Vec<Option<Activity>>> {
        ids.iter().map(|id| self.activity.get(id.as_bytes()).map_err(io)?.map(|v| decode(&v)).transpose()).collect()
    }

    async fn append_event(&self, event: &Event) -> StoreResult<()> {
        let keyed = self.keyed(std::slice::from_ref(event))?;
        (&self.events, &self.event_log)
            .transaction(|(events, event_log)| put_events(events, event_log, &keyed))
            .map_err(from_tx)?;
        self.durable().await
    }

    async fn record_expiry(&self, password: &AppPassword, event: &Event) -> StoreResult<()> {
        let (record, keyed) = (encode(password), self.keyed(std::slice::from_ref(event))?);
        (&self.passwords, &self.events, &self.event_log, &self.expiring)
            .transaction(|(passwords, events, event_log, expiring)| {
                // A password removed meanwhile stays removed; an expiry
                // recorded meanwhile is not recorded twice.
                // A revocation made meanwhile is kept.
                let Some(stored) = passwords.get(password.id.as_bytes())? else { return Ok(()) };
                let stored = decode::<AppPassword>(&stored).ok();
                if stored.as_ref().is_some_and(|p| p.expiry_recorded || p.revoked.is_some()) {
                    return Ok(());
                }
                passwords.insert(password.id.as_bytes(), record.as_slice())?;
                reindex_expiry(expiring, stored.as_ref(), Some(password))?;
                put_events(events, event_log, &keyed)
            })
            .map_err(from_tx)?;
        self.durable().await
    }

    async fn list_events(&self, query: &EventQuery) -> StoreResult<Vec<Event>> {
        match &query.user {
            Some(user) => self.page_events(self.events.scan_prefix(user_prefix(user)).keys().rev(), query),
            None => self.page_events(self.event_log.iter().values().rev(), query),
        }
    }

    async fn get_login(&self, user: &str) -> StoreResult<Option<Login>> {
        self.logins.get(user.as_bytes()).map_err(io)?.map(|v| decode(&v)).transpose()
    }

    async fn put_login(&self, login: &Login, events: &[Event]) -> StoreResult<()> {
        let (value, keyed) = (encode(login), self.keyed(events)?);
        (&self.logins, &self.events, &self.event_log)
            .transaction(|(logins, events, event_log)| {
                logins.insert(login.user.as_bytes(), value.as_slice())?;
                put_events(events, event_log, &keyed)
            })
            .map_err(from_tx)?;
        self.durable().await
    }

    async fn insert_admin_token(&self, token: &AdminToken) -> StoreResult<()> {
        let swapped = self
            .admin_tokens
            .compare_and_swap(token.id.as_bytes(), None as Option<&[u8]>, Some(encode(token)))
            .map_err(io)?;
        if swapped.is_err() {
            return Err(StoreError::Conflict);
        }
        self.durable().await
    }

    async fn list_admin_tokens(&self) -> StoreResult<Vec<AdminToken>> {
        Self::scan(&self.admin_tokens, b"")
    }

    async fn remove_admin_token(&self, id: &str) -> StoreResult<bool> {
        let existed = self.admin_tokens.remove(id.as_bytes()).map_err(io)?.is_some();
        self.durable().await?;
        Ok(existed)
    }

    async fn ping(&self) -> StoreResult<()> {
        self.users.first().map(|_| ()).map_err(io)
    }

    fn write_count(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::model::EventKind;

    fn event(user: &str, at: u64) -> Event {
        Event {
            at,
            user: user.into(),
            kind: EventKind::UserCreated,
            password_id: None,
            actor: "t".into(),
            detail: None,
        }
    }

    fn everyone(limit: usize) -> EventQuery {
        EventQuery { limit, ..Default::default() }
    }

    #[tokio::test]
    async fn global_events_follow_removals_and_are_indexed_for_old_stores() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        {
            let store = SledStore::open(&path, 8).unwrap();
            for (user, at) in [("alice", 1), ("bob", 2), ("alice", 3)] {
                store.append_event(&event(user, at)).await.unwrap();
            }
            let times: Vec<u64> = store.list_events(&everyone(10)).await.unwrap().iter().map(|e| e.at).collect();
            assert_eq!(times, [3, 2, 1], "newest first across users");
            // A store written before the global index existed.
            store.event_log.clear().unwrap();
            store.db.flush().unwrap();
        }
        let store = SledStore::open(&path, 8).unwrap();
        assert_eq!(store.list_events(&everyone(10)).await.unwrap().len(), 3, "the index is rebuilt at open");
        store
            .insert_user(
                &User {
                    name: "alice".into(),
                    state: super::super::model::UserState::Active,
                    app_access: true,
                    created: 0,
                },
                &[],
            )
            .await
            .unwrap();
        assert!(store.remove_user("alice").await.unwrap());
        let left: Vec<String> = store.list_events(&everyone(10)).await.unwrap().into_iter().map(|e| e.user).collect();
        assert_eq!(left, ["bob"], "a removed user's history leaves the global listing too");
        assert_eq!(store.event_log.len(), 1);
    }

    fn indexed(store: &SledStore) -> Vec<String> {
        let keys = store.expiring.iter().keys().map(|k| k.unwrap());
        keys.map(|k| format!("{}:{}", u64::from_be_bytes(k[..8].try_into().unwrap()), String::from_utf8_lossy(&k[8..])))
            .collect()
    }

    #[tokio::test]
    async fn the_expiry_index_holds_only_what_the_sweep_may_record_and_is_built_for_old_stores() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let alice =
            User { name: "alice".into(), state: super::super::model::UserState::Active, app_access: true, created: 0 };
        {
            let store = SledStore::open(&path, 8).unwrap();
            store.insert_user(&alice, &[]).await.unwrap();
            for p in [
                AppPassword::for_test("never", None),
                AppPassword::for_test("soon1", Some(50)),
                AppPassword::for_test("later", Some(900)),
            ] {
                store.insert_password(&p, &[]).await.unwrap();
            }
            assert_eq!(indexed(&store), ["50:soon1", "900:later"], "no entry without an expiry");
            // A store written before the index existed, with a damaged record.
            store.passwords.insert("dmged", &b"not a record"[..]).unwrap();
            store.expiring.clear().unwrap();
            store.db.remove(EXPIRING_BUILT).unwrap();
            store.db.flush().unwrap();
        }
        let store = SledStore::open(&path, 8).unwrap();
        assert_eq!(indexed(&store), ["50:soon1", "900:later"], "built at open, the damaged record skipped");
        store.passwords.remove("dmged").unwrap();
        let due: Vec<String> = store.list_newly_expired(100).await.unwrap().into_iter().map(|p| p.id).collect();
        assert_eq!(due, ["soon1"]);

        // Recorded, revoked, re-dated or removed: the index follows.
        let recorded = AppPassword { expiry_recorded: true, ..AppPassword::for_test("soon1", Some(50)) };
        store.record_expiry(&recorded, &event("alice", 50)).await.unwrap();
        let redated = AppPassword::for_test("later", Some(700));
        store.update_passwords(std::slice::from_ref(&redated), &[]).await.unwrap();
        assert_eq!(indexed(&store), ["700:later"]);
        let revoked = AppPassword {
            revoked: Some(super::super::model::Revocation { at: 2, by: "t".into(), reason: None }),
            ..redated
        };
        store.update_passwords(&[revoked], &[]).await.unwrap();
        assert_eq!(indexed(&store), Vec::<String>::new());
        store.insert_password(&AppPassword::for_test("third", Some(60)), &[]).await.unwrap();
        assert!(store.remove_user("alice").await.unwrap());
        assert_eq!(indexed(&store), Vec::<String>::new(), "removed with its user");
        assert!(store.list_newly_expired(u64::MAX).await.unwrap().is_empty());
    }
}
