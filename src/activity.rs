//! Last activity per app password, kept in memory and written in batches.
//!
//! The request path only updates a map entry; it never writes to the store.
//! A background task writes everything recorded since the last flush in one
//! store batch every `activity.flush_interval`, and once more at shutdown.
//! Listings merge the in-memory records so "last activity" is live.

use crate::password::AppPasswordId;
use crate::store::model::{Activity, Event, EventKind, unix_now};
use crate::store::{Store, StoreResult};
use crate::web::client_label::client_label;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// User-Agents longer than this are cut: the value is for people to read.
const MAX_USER_AGENT: usize = 200;

/// Records written per store transaction when flushing.
const FLUSH_CHUNK: usize = 512;

#[derive(Default)]
pub struct ActivityRecorder {
    /// Records not yet flushed.
    pending: Mutex<HashMap<AppPasswordId, Activity>>,
    /// The latest record per password since start, for live listings.
    latest: Mutex<HashMap<AppPasswordId, Activity>>,
}

impl ActivityRecorder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Notes one authenticated request; called on the hot path.
    pub fn record(&self, id: &str, ip: IpAddr, user_agent: Option<&str>) {
        let at = unix_now();
        let ua = user_agent.map(|ua| truncate(ua, MAX_USER_AGENT));
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        match pending.get_mut(id) {
            // Same second, same client: nothing new to say.
            Some(a) if a.at == at && a.ip == ip && a.user_agent.as_deref() == ua => {}
            _ => {
                pending.insert(id.to_string(), Activity { at, ip, user_agent: ua.map(String::from) });
            }
        }
    }

    /// The in-memory record for `id`, if any request was seen since start.
    pub fn latest(&self, id: &str) -> Option<Activity> {
        if let Some(a) = self.pending.lock().unwrap_or_else(|e| e.into_inner()).get(id) {
            return Some(a.clone());
        }
        self.latest.lock().unwrap_or_else(|e| e.into_inner()).get(id).cloned()
    }

    /// Drops what is known of removed passwords, so a re-drawn id never
    /// shows someone else's last activity.
    pub fn forget(&self, ids: &[AppPasswordId]) {
        for map in [&self.pending, &self.latest] {
            let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
            for id in ids {
                map.remove(id);
            }
        }
    }

    /// Writes everything pending, in transactions of at most `FLUSH_CHUNK`
    /// records. On failure the unwritten records go back so the next flush
    /// retries them.
    pub async fn flush(&self, store: &dyn Store) -> StoreResult<usize> {
        let mut batch: Vec<(AppPasswordId, Activity)> = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.drain().collect()
        };
        let mut written = 0;
        // In chunks: one store transaction over thousands of records took
        // sled's memory up by ~150 MiB for 10k first-time records.
        while !batch.is_empty() {
            let rest = batch.split_off(batch.len().min(FLUSH_CHUNK));
            if let Err(e) = self.write_chunk(store, &batch).await {
                batch.extend(rest);
                self.put_back(batch);
                return Err(e);
            }
            written += batch.len();
            self.latest.lock().unwrap_or_else(|e| e.into_inner()).extend(batch);
            batch = rest;
        }
        Ok(written)
    }

    async fn write_chunk(&self, store: &dyn Store, chunk: &[(AppPasswordId, Activity)]) -> StoreResult<()> {
        let events = new_clients(store, chunk).await?;
        store.record_activity(chunk, &events).await
    }

    /// Returns an unwritten batch, so the next flush retries it; newer
    /// records taken meanwhile win.
    fn put_back(&self, batch: Vec<(AppPasswordId, Activity)>) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for (id, a) in batch {
            pending.entry(id).or_insert(a);
        }
    }

    /// Merges a stored record with the in-memory one: the latest wins.
    pub fn merge(&self, id: &str, stored: Option<Activity>) -> Option<Activity> {
        match (stored, self.latest(id)) {
            (Some(s), Some(m)) => Some(if m.at >= s.at { m } else { s }),
            (s, m) => s.or(m),
        }
    }
}

/// A `new-client` event for each password whose client (as a person would
/// name it) differs from the one stored: its first use, or a new app.
async fn new_clients(store: &dyn Store, batch: &[(AppPasswordId, Activity)]) -> StoreResult<Vec<Event>> {
    let ids: Vec<AppPasswordId> = batch.iter().map(|(id, _)| id.clone()).collect();
    let stored = store.get_activity(&ids).await?;
    let mut events = Vec::new();
    for ((id, new), old) in batch.iter().zip(stored) {
        let label = client_label(new.user_agent.as_deref().unwrap_or(""));
        if old.is_some_and(|o| client_label(o.user_agent.as_deref().unwrap_or("")) == label) {
            continue;
        }
        let Some(password) = store.get_password(id).await? else { continue };
        events.push(Event {
            at: new.at,
            user: password.user,
            kind: EventKind::NewClient,
            password_id: Some(id.clone()),
            actor: "user".into(),
            detail: Some(format!("{label}, from {}", new.ip)),
        });
    }
    Ok(events)
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Flushes every `interval` until `shutdown` fires, then once more.
pub async fn run_flusher(
    recorder: Arc<ActivityRecorder>,
    store: Arc<dyn Store>,
    interval: std::time::Duration,
    metrics: Arc<crate::metrics::Metrics>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(interval);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => break,
        }
        let start = std::time::Instant::now();
        match recorder.flush(store.as_ref()).await {
            Ok(0) => {}
            Ok(_) => metrics.activity_flush_duration.observe(start.elapsed().as_secs_f64()),
            Err(e) => {
                metrics.store_errors.inc();
                tracing::warn!(error = %e, "activity flush failed; will retry");
            }
        }
    }
    if let Err(e) = recorder.flush(store.as_ref()).await {
        tracing::error!(error = %e, "final activity flush failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agent_is_cut_on_a_char_boundary() {
        let ua = "é".repeat(150);
        let cut = truncate(&ua, MAX_USER_AGENT);
        assert!(cut.len() <= MAX_USER_AGENT && cut.chars().all(|c| c == 'é'));
    }

    #[test]
    fn latest_record_wins_when_merging() {
        let r = ActivityRecorder::new();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        r.record("abcde", ip, Some("DAVx5/4.4"));
        let old = Activity { at: 1, ip, user_agent: None };
        assert_eq!(r.merge("abcde", Some(old.clone())).unwrap().user_agent.as_deref(), Some("DAVx5/4.4"));
        assert_eq!(r.merge("zzzzz", Some(old.clone())), Some(old));
    }

    #[tokio::test]
    async fn a_large_flush_is_written_in_chunks_and_nothing_is_lost() {
        use crate::store::model::{AppPassword, User, UserState};
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::sled::SledStore::open(&dir.path().join("s"), 8).unwrap();
        let user = User { name: "alice".into(), state: UserState::Active, app_access: true, created: 0 };
        store.insert_user(&user, &[]).await.unwrap();
        let n = 2 * FLUSH_CHUNK + 7;
        let ids: Vec<AppPasswordId> = (0..n).map(|i| format!("p{i:04}")).collect();
        for id in &ids {
            let p = AppPassword::for_test(id, None);
            store.insert_password(&p, &[]).await.unwrap();
        }
        let r = ActivityRecorder::new();
        for id in &ids {
            r.record(id, "192.0.2.1".parse().unwrap(), Some("DAVx5/4.4"));
        }
        let before = store.write_count();
        assert_eq!(r.flush(&store).await.unwrap(), n);
        assert_eq!(store.write_count() - before, 3, "three chunks, one write each");
        let stored = store.get_activity(&ids).await.unwrap();
        assert!(stored.iter().all(|a| a.as_ref().is_some_and(|a| a.user_agent.as_deref() == Some("DAVx5/4.4"))));
        let events = store.list_events(&crate::store::EventQuery { limit: 10_000, ..Default::default() }).await;
        assert_eq!(events.unwrap().len(), n, "one new-client event per password");
        assert_eq!(r.flush(&store).await.unwrap(), 0, "nothing left pending");
    }

    #[test]
    fn forgotten_passwords_keep_no_activity() {
        let r = ActivityRecorder::new();
        r.record("abcde", "127.0.0.1".parse().unwrap(), None);
        r.forget(&["abcde".to_string()]);
        assert_eq!(r.latest("abcde"), None);
    }
}
