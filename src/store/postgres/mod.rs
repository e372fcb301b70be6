//! The shared store: PostgreSQL, for several instances behind a balancer.
//!
//! PostgreSQL is the one truth; instances keep nothing of each other's but
//! caches, dropped on the notifications of [`changes`]. Every operation is
//! bounded by `store.timeout`, so a dead database costs a request at most
//! that; multi-statement writes are one transaction, so a failure leaves
//! nothing half-written. Records are the model types as JSON, as in sled.

pub mod changes;
mod connect;
pub mod migrate;

pub use connect::{PASSWORD_ENV, parse_url};

use super::model::{Activity, AdminToken, AppPassword, Event, Login, User};
use super::{Change, EventQuery, FeedEvent, Store, StoreError, StoreResult};
use crate::config::StoreConfig;
use crate::password::AppPasswordId;
use deadpool_postgres::{GenericClient, Pool};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio_postgres::error::SqlState;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The [`Store`] on PostgreSQL: a connection pool plus what the change
/// feed needs to open a connection of its own.
pub struct PgStore {
    pool: Pool,
    /// For the change feed's own connection.
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    timeout: Duration,
    writes: AtomicU64,
}

/// Maps a driver error: a unique key taken is a conflict; a server going
/// away, failing over or answering read-only (a demoted primary) is
/// unavailable, as is no answer at all; anything else is a failed statement.
pub(crate) fn db_error(e: tokio_postgres::Error) -> StoreError {
    let Some(db) = e.as_db_error() else {
        return StoreError::Unavailable(format!("database: {e}"));
    };
    let code = db.code();
    if *code == SqlState::UNIQUE_VIOLATION {
        return StoreError::Conflict;
    }
    let failing_over = code.code().starts_with("08")
        || code.code().starts_with("57P")
        || [SqlState::READ_ONLY_SQL_TRANSACTION, SqlState::T_R_SERIALIZATION_FAILURE, SqlState::T_R_DEADLOCK_DETECTED]
            .contains(code);
    match failing_over {
        true => StoreError::Unavailable(format!("database: {}", db.message())),
        false => StoreError::Io(format!("database: {}", db.message())),
    }
}

fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => db_error(e),
        other => StoreError::Unavailable(format!("database: {other}")),
    }
}

fn json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("model types always serialise")
}

fn from_json<T: DeserializeOwned>(value: Value) -> StoreResult<T> {
    serde_json::from_value(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Unix seconds as PostgreSQL's `bigint`.
fn secs(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

/// The serialised name of an event kind (`password-revoked`), as stored.
fn kind_name(kind: super::model::EventKind) -> String {
    json(&kind).as_str().unwrap_or_default().to_string()
}

/// A revocation is never undone: an update read before a revocation made
/// by another instance (a rename, say) is dropped rather than written over it.
const UPDATE_PASSWORD: &str = "UPDATE passwords
     SET created = $2, expires = $3, revoked = $4, expiry_recorded = $5, record = $6
     WHERE id = $1 AND (NOT revoked OR $4)";

async fn notify(client: &impl GenericClient, change: &Change) -> StoreResult<()> {
    client
        .execute("SELECT pg_notify($1, $2)", &[&changes::CHANNEL, &changes::payload(change)])
        .await
        .map_err(db_error)?;
    Ok(())
}

async fn insert_event(client: &impl GenericClient, event: &Event) -> StoreResult<()> {
    client
        .execute(
            "INSERT INTO events (user_name, at, kind, record) VALUES ($1, $2, $3, $4)",
            &[&event.user, &secs(event.at), &kind_name(event.kind), &json(event)],
        )
        .await
        .map_err(db_error)?;
    Ok(())
}

impl PgStore {
    /// Connects and applies pending migrations.
    pub async fn open(store: &StoreConfig) -> StoreResult<Self> {
        let this = Self::without_migrating(store)?;
        this.migrate().await?;
        Ok(this)
    }

    /// Without touching the schema; connections are made when first needed.
    pub fn without_migrating(store: &StoreConfig) -> StoreResult<Self> {
        let config = connect::pg_config(store)?;
        let tls = connect::tls(store)?;
        let pool = connect::pool(store, config.clone(), tls.clone())?;
        Ok(Self { pool, config, tls, timeout: store.timeout, writes: AtomicU64::new(0) })
    }

    /// Applies pending migrations; returns the versions applied.
    pub async fn migrate(&self) -> StoreResult<Vec<i32>> {
        self.timed(async {
            let mut client = self.pool.get().await.map_err(pool_error)?;
            migrate::run(&mut client).await
        })
        .await
    }

    /// Bounds `op` by `store.timeout`: a database that stopped answering
    /// fails the operation instead of holding it.
    async fn timed<T>(&self, op: impl Future<Output = StoreResult<T>>) -> StoreResult<T> {
        tokio::time::timeout(self.timeout, op).await.unwrap_or_else(|_| {
            Err(StoreError::Unavailable(format!(
                "database: no answer within {}",
                humantime::format_duration(self.timeout)
            )))
        })
    }

    async fn client(&self) -> StoreResult<deadpool_postgres::Object> {
        self.pool.get().await.map_err(pool_error)
    }

    fn acknowledged(&self) {
        self.writes.fetch_add(1, Ordering::Relaxed);
    }

    /// One row's `record` column, decoded.
    async fn one<T: DeserializeOwned>(&self, sql: &str, key: &str) -> StoreResult<Option<T>> {
        self.timed(async {
            let row = self.client().await?.query_opt(sql, &[&key]).await.map_err(db_error)?;
            row.map(|r| from_json(r.get(0))).transpose()
        })
        .await
    }

    /// Every row's `record` column (the first), decoded.
    async fn all<T: DeserializeOwned>(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> StoreResult<Vec<T>> {
        self.timed(async {
            let rows = self.client().await?.query(sql, params).await.map_err(db_error)?;
            rows.into_iter().map(|r| from_json(r.get(0))).collect()
        })
        .await
    }

    /// One acknowledged write: `statements` in order, then `events` and
    /// the notifications for `changes`, all in one transaction. Returns the
    /// rows each statement affected.
    async fn transaction(
        &self,
        statements: &[Statement<'_>],
        events: &[Event],
        changes: &[Change],
    ) -> StoreResult<Vec<u64>> {
        let affected = self
            .timed(async {
                let mut client = self.client().await?;
                let tx = client.transaction().await.map_err(db_error)?;
                let mut affected = Vec::with_capacity(statements.len());
                for (sql, params) in statements {
                    affected.push(tx.execute(*sql, params).await.map_err(db_error)?);
                }
                for event in events {
                    insert_event(&tx, event).await?;
                }
                for change in changes {
                    notify(&tx, change).await?;
                }
                tx.commit().await.map_err(db_error)?;
                Ok(affected)
            })
            .await?;
        self.acknowledged();
        Ok(affected)
    }
}

type Param<'a> = &'a (dyn tokio_postgres::types::ToSql + Sync);
type Statement<'a> = (&'static str, &'a [Param<'a>]);

#[async_trait::async_trait]
impl Store for PgStore {
    async fn insert_user(&self, user: &User, events: &[Event]) -> StoreResult<()> {
        let record = json(user);
        let insert: Statement = ("INSERT INTO users (name, record) VALUES ($1, $2)", &[&user.name, &record]);
        self.transaction(&[insert], events, &[]).await.map(drop)
    }

    async fn update_user(&self, user: &User, events: &[Event]) -> StoreResult<()> {
        let record = json(user);
        // Never an upsert: a user removed meanwhile stays removed.
        let update: Statement = ("UPDATE users SET record = $2 WHERE name = $1", &[&user.name, &record]);
        self.transaction(&[update], events, &[Change::User(user.name.clone())]).await.map(drop)
    }

    async fn get_user(&self, name: &str) -> StoreResult<Option<User>> {
        self.one("SELECT record FROM users WHERE name = $1", name).await
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        self.all(r#"SELECT record FROM users ORDER BY name COLLATE "C""#, &[]).await
    }

    async fn remove_user(&self, name: &str) -> StoreResult<bool> {
        // Passwords take their activity and login records with them
        // (ON DELETE CASCADE); events have no key to hang on.
        let statements: [Statement; 2] =
            [("DELETE FROM events WHERE user_name = $1", &[&name]), ("DELETE FROM users WHERE name = $1", &[&name])];
        let affected = self.transaction(&statements, &[], &[Change::User(name.to_string())]).await?;
        Ok(affected[1] > 0)
    }

    async fn insert_password(&self, p: &AppPassword, events: &[Event]) -> StoreResult<()> {
        let (created, expires, revoked, record) = (secs(p.created), p.expires.map(secs), p.revoked.is_some(), json(p));
        let insert: Statement = (
            "INSERT INTO passwords (id, user_name, created, expires, revoked, expiry_recorded, record)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[&p.id, &p.user, &created, &expires, &revoked, &p.expiry_recorded, &record],
        );
        self.transaction(&[insert], events, &[]).await.map(drop)
    }

    async fn update_passwords(&self, list: &[AppPassword], events: &[Event]) -> StoreResult<()> {
        let values: Vec<_> =
            list.iter().map(|p| (secs(p.created), p.expires.map(secs), p.revoked.is_some(), json(p))).collect();
        let params: Vec<[Param; 6]> = list
            .iter()
            .zip(&values)
            .map(|(p, (created, expires, revoked, record))| {
                [&p.id as Param, created, expires, revoked, &p.expiry_recorded, record]
            })
            .collect();
        let statements: Vec<Statement> = params.iter().map(|p| (UPDATE_PASSWORD, &p[..])).collect();
        let changes: Vec<Change> = list.iter().map(|p| Change::Password(p.id.clone())).collect();
        self.transaction(&statements, events, &changes).await.map(drop)
    }

    async fn get_password(&self, id: &str) -> StoreResult<Option<AppPassword>> {
        self.one("SELECT record FROM passwords WHERE id = $1", id).await
    }

    async fn list_passwords(&self, user: &str) -> StoreResult<Vec<AppPassword>> {
        self.all(r#"SELECT record FROM passwords WHERE user_name = $1 ORDER BY created, id COLLATE "C""#, &[&user])
            .await
    }

    async fn list_all_passwords(&self) -> StoreResult<Vec<AppPassword>> {
        self.all(r#"SELECT record FROM passwords ORDER BY id COLLATE "C""#, &[]).await
    }

    async fn list_newly_expired(&self, now: u64) -> StoreResult<Vec<AppPassword>> {
        self.all(
            r#"SELECT record FROM passwords
               WHERE expires IS NOT NULL AND expires <= $1 AND NOT revoked AND NOT expiry_recorded
               ORDER BY id COLLATE "C""#,
            &[&secs(now)],
        )
        .await
    }

    async fn record_activity(&self, batch: &[(AppPasswordId, Activity)], new_events: &[Event]) -> StoreResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        // One row per password, the latest (ON CONFLICT may touch a row once).
        let mut latest: HashMap<&str, &Activity> = HashMap::new();
        for (id, activity) in batch {
            let slot = latest.entry(id.as_str()).or_insert(activity);
            if slot.at < activity.at {
                *slot = activity;
            }
        }
        // In id order, so instances flushing at once lock rows in the same
        // order and never deadlock.
        let mut rows: Vec<(&str, &Activity)> = latest.into_iter().collect();
        rows.sort_unstable_by_key(|(id, _)| *id);
        let ids: Vec<&str> = rows.iter().map(|(id, _)| *id).collect();
        let ats: Vec<i64> = rows.iter().map(|(_, a)| secs(a.at)).collect();
        let records: Vec<Value> = rows.iter().map(|(_, a)| json(*a)).collect();
        self.timed(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(db_error)?;
            // Latest time wins, whichever instance flushes last; nothing
            // for a password removed meanwhile (the foreign key backs this).
            tx.execute(
                "INSERT INTO activity (password_id, at, record)
                 SELECT b.id, b.at, b.record FROM unnest($1::text[], $2::bigint[], $3::jsonb[]) AS b (id, at, record)
                 WHERE EXISTS (SELECT 1 FROM passwords p WHERE p.id = b.id)
                 ON CONFLICT (password_id) DO UPDATE SET at = excluded.at, record = excluded.record
                 WHERE activity.at <= excluded.at",
                &[&ids, &ats, &records],
            )
            .await
            .map_err(db_error)?;
            for event in new_events {
                let id = event.password_id.clone().unwrap_or_default();
                tx.execute(
                    "INSERT INTO events (user_name, at, kind, record)
                     SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM passwords WHERE id = $5)",
                    &[&event.user, &secs(event.at), &kind_name(event.kind), &json(event), &id],
                )
                .await
                .map_err(db_error)?;
            }
            tx.commit().await.map_err(db_error)
        })
        .await?;
        self.acknowledged();
        Ok(())
    }

    async fn get_activity(&self, ids: &[AppPasswordId]) -> StoreResult<Vec<Option<Activity>>> {
        let rows = self
            .timed(async {
                let client = self.client().await?;
                client
                    .query("SELECT password_id, record FROM activity WHERE password_id = ANY($1)", &[&ids])
                    .await
                    .map_err(db_error)
            })
            .await?;
        let mut found: HashMap<String, Activity> = HashMap::with_capacity(rows.len());
        for row in rows {
            found.insert(row.get(0), from_json(row.get(1))?);
        }
        Ok(ids.iter().map(|id| found.get(id).cloned()).collect())
    }

    async fn append_event(&self, event: &Event) -> StoreResult<()> {
        self.transaction(&[], std::slice::from_ref(event), &[]).await.map(drop)
    }

    async fn record_expiry(&self, p: &AppPassword, event: &Event) -> StoreResult<()> {
        self.timed(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(db_error)?;
            // Only the first instance to sweep a password records it, and
            // never over a revocation made meanwhile.
            let updated = tx
                .execute(
                    "UPDATE passwords SET expires = $2, revoked = $3, expiry_recorded = true, record = $4
                     WHERE id = $1 AND NOT expiry_recorded AND NOT revoked",
                    &[&p.id, &p.expires.map(secs), &p.revoked.is_some(), &json(p)],
                )
                .await
                .map_err(db_error)?;
            if updated > 0 {
                insert_event(&tx, event).await?;
                notify(&tx, &Change::Password(p.id.clone())).await?;
            }
            tx.commit().await.map_err(db_error)
        })
        .await?;
        self.acknowledged();
        Ok(())
    }

    async fn list_events(&self, query: &EventQuery) -> StoreResult<Vec<Event>> {
        let kinds: Vec<String> = query.kinds.iter().map(|k| kind_name(*k)).collect();
        let offset = i64::try_from(query.offset).unwrap_or(i64::MAX);
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        self.all(
            "SELECT record FROM events
             WHERE ($1::text IS NULL OR user_name = $1)
               AND (cardinality($2::text[]) = 0 OR kind = ANY($2))
               AND ($3::bigint IS NULL OR at >= $3)
               AND ($4::bigint IS NULL OR at < $4)
             ORDER BY seq DESC OFFSET $5 LIMIT $6",
            &[&query.user, &kinds, &query.since.map(secs), &query.until.map(secs), &offset, &limit],
        )
        .await
    }

    async fn get_login(&self, user: &str) -> StoreResult<Option<Login>> {
        self.one("SELECT record FROM logins WHERE user_name = $1", user).await
    }

    async fn put_login(&self, login: &Login, events: &[Event]) -> StoreResult<()> {
        let record = json(login);
        let upsert: Statement = (
            "INSERT INTO logins (user_name, record) VALUES ($1, $2)
             ON CONFLICT (user_name) DO UPDATE SET record = excluded.record",
            &[&login.user, &record],
        );
        self.transaction(&[upsert], events, &[]).await.map(drop)
    }

    async fn insert_admin_token(&self, token: &AdminToken) -> StoreResult<()> {
        let record = json(token);
        let insert: Statement = ("INSERT INTO admin_tokens (id, record) VALUES ($1, $2)", &[&token.id, &record]);
        self.transaction(&[insert], &[], &[]).await.map(drop)
    }

    async fn list_admin_tokens(&self) -> StoreResult<Vec<AdminToken>> {
        self.all(r#"SELECT record FROM admin_tokens ORDER BY id COLLATE "C""#, &[]).await
    }

    async fn remove_admin_token(&self, id: &str) -> StoreResult<bool> {
        let delete: Statement = ("DELETE FROM admin_tokens WHERE id = $1", &[&id]);
        Ok(self.transaction(&[delete], &[], &[]).await?[0] > 0)
    }

    async fn ping(&self) -> StoreResult<()> {
        self.timed(async { self.client().await?.simple_query("SELECT 1").await.map(drop).map_err(db_error) }).await
    }

    fn write_count(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    fn follow_changes(&self, heartbeat: Duration) -> Option<tokio::sync::mpsc::Receiver<FeedEvent>> {
        Some(changes::follow(self.config.clone(), self.tls.clone(), heartbeat))
    }
}
