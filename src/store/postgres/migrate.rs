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

/// Applies the migrations the database lacks; returns the versions applied.
pub async fn run(client: &mut tokio_postgres::Client) -> StoreResult<Vec<i32>> {
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
    let row =
        tx.query_one("SELECT coalesce(max(version), 0) FROM davgate_schema", &[]).await.map_err(super::db_error)?;
    let current: i32 = row.get(0);
    if current > latest() {
        return Err(StoreError::Io(format!(
            "the database schema is at version {current}, newer than this davgate knows ({}): upgrade davgate",
            latest()
        )));
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
