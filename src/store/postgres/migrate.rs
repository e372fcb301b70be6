//! Schema migrations, shipped in the binary and applied in order.
//!
//! Each runs in one transaction with its version row, under an advisory
//! lock, so instances starting together apply each migration exactly once
//! and a failed one leaves nothing behind.

use crate::store::{StoreError, StoreResult};

/// `(version, SQL)`, oldest first. Never edit a released one: add another.
const MIGRATIONS: &[(i32, &str)] = &[(1, include_str!("migrations/0001_initial.sql"))];

/// Any constant unique to davgate: the key of the migration lock.
const LOCK_KEY: i64 = 0x0064_6176_6761_7465; // "davgate" in ASCII

/// The schema version this binary expects.
pub fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

/// The database's schema version; 0 before the first migration.
async fn current(client: &impl tokio_postgres::GenericClient) -> StoreResult<i32> {
    // Two queries: a query naming a missing table fails at parse time.
    let exists =
        client.query_one("SELECT to_regclass('davgate_schema') IS NOT NULL", &[]).await.map_err(super::db_error)?;
    if !exists.get::<_, bool>(0) {
        return Ok(0);
    }
    let row =
        client.query_one("SELECT coalesce(max(version), 0) FROM davgate_schema", &[]).await.map_err(super::db_error)?;
    Ok(row.get(0))
}

fn too_new(current: i32) -> StoreError {
    StoreError::Io(format!(
        "the database schema is at version {current}, newer than this davgate knows ({}): upgrade davgate",
        latest()
    ))
}

/// Applies the migrations the database lacks; returns the versions applied.
/// A current schema is only read: no lock, no DDL, no CREATE privilege.
pub async fn run(client: &mut tokio_postgres::Client) -> StoreResult<Vec<i32>> {
    match current(&*client).await? {
        version if version == latest() => return Ok(Vec::new()),
        version if version > latest() => return Err(too_new(version)),
        _ => {}
    }
    let tx = client.transaction().await.map_err(super::db_error)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY]).await.map_err(super::db_error)?;
    // "relation already exists, skipping" is no news worth a log line.
    tx.batch_execute("SET LOCAL client_min_messages = warning").await.map_err(super::db_error)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS davgate_schema (
            version    integer PRIMARY KEY,
            applied_at timestamptz NOT NULL DEFAULT now()
        )",
    )
    .await
    .map_err(super::db_error)?;
    // Read again under the lock: another instance may have migrated.
    let current = current(&tx).await?;
    if current > latest() {
        return Err(too_new(current));
    }
    let mut applied = Vec::new();
    for (version, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        tx.batch_execute(sql)
            .await
            .map_err(|e| StoreError::Io(format!("schema migration {version}: {}", super::db_error(e))))?;
        tx.execute("INSERT INTO davgate_schema (version) VALUES ($1)", &[version]).await.map_err(super::db_error)?;
        applied.push(*version);
    }
    tx.commit().await.map_err(super::db_error)?;
    Ok(applied)
}
