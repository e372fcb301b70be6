//! Credential verification: the verify cache in front of store + argon2.
//!
//! A cache hit costs one keyed BLAKE3 hash and a map lookup: no argon2, no
//! store read. A miss parses the password's public id, loads that one
//! record, checks user, state and expiry, then runs exactly one argon2id
//! verification on a bounded blocking pool, however many passwords the
//! user has. The cache key is a keyed hash of `user \0 password` with a
//! per-process random key, so the cache never holds a password.
//!
//! Revocation, expiry and account changes must take effect on the very next
//! request: [`VerifyCache::invalidate_user`] and
//! [`VerifyCache::invalidate_password`] drop entries at once, and an epoch
//! check keeps a verification that raced with them from re-inserting.

use super::scope::Scope;
use super::thread_cache::{self, CacheKey};
use super::throttle::{Throttle, Verdict};
use crate::metrics::Metrics;
use crate::password::{self, AppPasswordId};
use crate::secret::Secret;
use crate::store::Store;
use crate::store::model::{AppPassword, UserState, unix_now};
use moka::Expiry;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// What a verified credential grants, as cached.
#[derive(Debug, Clone)]
pub struct Grant {
    pub password_id: AppPasswordId,
    pub user: String,
    pub scope: Scope,
    pub expires: Option<u64>,
    /// When the store was read for it (bounds its age while the change feed
    /// of a shared store is down).
    pub verified_at: Instant,
}

/// Why verification failed. The client sees the same `401` for all of them;
/// the distinction is for the auth log only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("not a davgate password")]
    Malformed,
    #[error("unknown password id")]
    UnknownId,
    #[error("password belongs to another user")]
    WrongUser,
    #[error("password revoked")]
    Revoked,
    #[error("password expired")]
    Expired,
    #[error("user unknown or disabled")]
    UserDisabled,
    #[error("app access is off for this user")]
    AppAccessOff,
    #[error("wrong password")]
    WrongSecret,
    #[error("store unavailable")]
    StoreUnavailable,
    #[error("too many failed attempts")]
    Throttled(Duration),
    #[error("hashing queue full")]
    Busy,
}

impl VerifyError {
    /// Whether this is a failed attempt the throttle counts.
    fn is_failed_attempt(&self) -> bool {
        !matches!(self, Self::StoreUnavailable | Self::Throttled(_) | Self::Busy)
    }
}

/// Per-entry lifetime: the configured TTL, cut short by the password's expiry.
struct GrantExpiry {
    ttl: Duration,
}

impl Expiry<CacheKey, Arc<Grant>> for GrantExpiry {
    fn expire_after_create(&self, _: &CacheKey, grant: &Arc<Grant>, _: Instant) -> Option<Duration> {
        let until_expiry = grant.expires.map(|e| Duration::from_secs(e.saturating_sub(unix_now())));
        Some(until_expiry.map_or(self.ttl, |d| d.min(self.ttl)))
    }
}

/// What a cached grant is worth now.
#[derive(PartialEq, Eq)]
enum State {
    /// The password expired since: the entry goes.
    Expired,
    /// Its record must be read again (see [`Cached::Stale`]).
    Stale,
    Fresh,
}

/// A cache hit: usable as is, or older than the bound set while a shared
/// store's change feed is down, so its record must be read again.
enum Cached {
    Fresh(Arc<Grant>),
    Stale(Arc<Grant>),
}

static NEXT_CACHE_ID: AtomicU64 = AtomicU64::new(1);

/// Verified credentials, keyed by a keyed hash of the credential.
pub struct VerifyCache {
    cache: moka::future::Cache<CacheKey, Arc<Grant>>,
    key: [u8; 32],
    /// Bumped by every invalidation, before and after it (see
    /// [`thread_cache`]); a verification that started before a bump must
    /// not cache its result.
    epoch: AtomicU64,
    /// Tells this cache's thread copies from another's (tests run several).
    id: u64,
    ttl: Duration,
    /// Orders "check epoch + insert" against "bump + invalidate".
    insert_lock: tokio::sync::Mutex<()>,
    /// The oldest a hit may be, in ms; `u64::MAX` for no bound beyond the
    /// TTL. Set while a shared store's change feed is down.
    max_age_ms: AtomicU64,
    /// Hits verified before this many ms after `born` are stale (changes
    /// to them may have gone unseen).
    stale_before_ms: AtomicU64,
    born: Instant,
}

impl VerifyCache {
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        let cache = moka::future::Cache::builder()
            .max_capacity(capacity)
            .expire_after(GrantExpiry { ttl })
            .support_invalidation_closures()
            .build();
        Self {
            cache,
            key: rand::random(),
            epoch: AtomicU64::new(0),
            id: NEXT_CACHE_ID.fetch_add(1, Ordering::Relaxed),
            ttl,
            insert_lock: tokio::sync::Mutex::new(()),
            max_age_ms: AtomicU64::new(u64::MAX),
            stale_before_ms: AtomicU64::new(0),
            born: Instant::now(),
        }
    }

    fn key_for(&self, user: &str, password: &str) -> CacheKey {
        let mut h = blake3::Hasher::new_keyed(&self.key);
        h.update(user.as_bytes());
        h.update(&[0]);
        h.update(password.as_bytes());
        *h.finalize().as_bytes()
    }

    async fn get(&self, key: &CacheKey) -> Option<Cached> {
        // Read before the lookup: what is copied is tagged with it.
        let epoch = self.epoch.load(Ordering::SeqCst);
        if let Some(grant) = thread_cache::get(self.id, epoch, key) {
            // moka drops entries past the TTL; a copy checks it itself.
            if grant.verified_at.elapsed() < self.ttl && self.state(&grant) == State::Fresh {
                return Some(Cached::Fresh(grant));
            }
            // Only fresh grants are served from a copy: moka has the grant
            // a reconfirmation (on any thread) left, or nothing.
            thread_cache::forget(key);
        }
        let grant = self.cache.get(key).await?;
        match self.state(&grant) {
            State::Expired => {
                self.forget(key).await;
                None
            }
            State::Stale => Some(Cached::Stale(grant)),
            State::Fresh => {
                thread_cache::put(self.id, epoch, key, &grant);
                Some(Cached::Fresh(grant))
            }
        }
    }

    fn state(&self, grant: &Grant) -> State {
        if grant.expires.is_some_and(|e| e <= unix_now()) {
            return State::Expired;
        }
        let max_age = self.max_age_ms.load(Ordering::Relaxed);
        let verified_ms =
            u64::try_from(grant.verified_at.saturating_duration_since(self.born).as_millis()).unwrap_or(u64::MAX);
        if (max_age != u64::MAX && grant.verified_at.elapsed() > Duration::from_millis(max_age))
            || verified_ms < self.stale_before_ms.load(Ordering::Relaxed)
        {
            return State::Stale;
        }
        State::Fresh
    }

    async fn insert_unless_invalidated(&self, key: CacheKey, grant: Arc<Grant>, epoch_seen: u64) {
        let _guard = self.insert_lock.lock().await;
        if self.epoch.load(Ordering::SeqCst) == epoch_seen {
            self.cache.insert(key, grant).await;
        }
    }

    /// Drops one entry, and this thread's copy of it.
    async fn forget(&self, key: &CacheKey) {
        thread_cache::forget(key);
        self.cache.invalidate(key).await;
    }

    async fn invalidate_where(&self, predicate: impl Fn(&Grant) -> bool + Send + Sync + 'static) {
        let _guard = self.insert_lock.lock().await;
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.cache
            .invalidate_entries_if(move |_, g| predicate(g))
            .expect("invalidation closures are enabled at build time");
        // Again: a lookup that read the first bump may have found an entry
        // just before moka learned of the predicate, and copied it.
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// Drops every cached credential of `user` (disable, app access off, revoke-all).
    pub async fn invalidate_user(&self, user: &str) {
        let user = user.to_string();
        self.invalidate_where(move |g| g.user == user).await;
    }

    /// Drops every cached credential of one password (revoke, rename of scope).
    pub async fn invalidate_password(&self, id: &str) {
        let id = id.to_string();
        self.invalidate_where(move |g| g.password_id == id).await;
    }

    /// Everything cached so far has its record read again before its next
    /// use (changes may have gone unseen); no argon2 is repeated, so a
    /// whole fleet coming back from a database outage stays cheap.
    pub fn mark_all_stale(&self) {
        // +1: a grant verified in this very millisecond counts as before.
        let now = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1;
        self.stale_before_ms.fetch_max(now, Ordering::SeqCst);
    }

    /// While `Some`, hits older than this are verified again.
    pub fn bound_age(&self, max_age: Option<Duration>) {
        let ms = max_age.map_or(u64::MAX, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX - 1));
        self.max_age_ms.store(ms, Ordering::Relaxed);
    }

    /// Moka has no background thread: housekeeping runs from here, periodically.
    pub async fn run_pending_tasks(&self) {
        self.cache.run_pending_tasks().await;
    }

    pub fn entry_count(&self) -> u64 {
        self.cache.entry_count()
    }
}

/// argon2 verifications on the blocking pool, at most `permits` at once and
/// at most `max_queue` waiting, so a flood of cold requests can take neither
/// every core nor unbounded memory (each run allocates ~19 MiB): beyond
/// that a cold request is turned away at once instead of piling up.
pub struct HashPool {
    permits: Semaphore,
    /// Verifications running or waiting.
    admitted: AtomicUsize,
    capacity: usize,
    verifications: AtomicU64,
    metrics: Arc<Metrics>,
}

/// Releases a place in the pool however the verification ends.
struct Admission<'a>(&'a AtomicUsize);

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl HashPool {
    pub fn new(max_concurrent: usize, max_queue: usize, metrics: Arc<Metrics>) -> Self {
        let n = if max_concurrent == 0 {
            (std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2) / 2).max(1)
        } else {
            max_concurrent
        };
        Self {
            permits: Semaphore::new(n),
            admitted: AtomicUsize::new(0),
            capacity: n + max_queue,
            verifications: AtomicU64::new(0),
            metrics,
        }
    }

    /// Verifies, or `Busy` when the pool and its queue are full.
    pub async fn verify(&self, canonical: Secret<String>, phc: Secret<String>) -> Result<bool, VerifyError> {
        if self.admitted.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.admitted.fetch_sub(1, Ordering::AcqRel);
            return Err(VerifyError::Busy);
        }
        let _admission = Admission(&self.admitted);
        let start = Instant::now();
        let _permit = self.permits.acquire().await.expect("the semaphore is never closed");
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let ok = tokio::task::spawn_blocking(move || password::verify(&canonical, &phc)).await.unwrap_or(false);
        self.metrics.argon2_duration.observe(start.elapsed().as_secs_f64());
        Ok(ok)
    }

    /// argon2 verifications run since start (a metric, and what tests count).
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }
}

type Outcome = Result<Arc<Grant>, VerifyError>;
type SharedCheck = Arc<tokio::sync::OnceCell<Outcome>>;

/// Cold checks in progress, by cache key. A client that opens several
/// connections at once with a new password (DAVx5, iOS, rclone) costs one
/// argon2 verification, not one per connection. A check is only joined
/// within one invalidation epoch, so a request arriving after a revocation
/// never shares a result computed before it.
#[derive(Default)]
struct InFlight {
    checks: std::sync::Mutex<HashMap<CacheKey, (u64, SharedCheck)>>,
}

impl InFlight {
    fn join(&self, key: CacheKey, epoch: u64) -> Joined<'_> {
        let mut checks = self.checks.lock().unwrap_or_else(|e| e.into_inner());
        let check = match checks.get(&key) {
            Some((started_in, check)) if *started_in == epoch => check.clone(),
            _ => {
                let check = SharedCheck::default();
                checks.insert(key, (epoch, check.clone()));
                check
            }
        };
        Joined { in_flight: self, key, check }
    }
}

/// One request's part in a shared check; the check is forgotten once a
/// request that took part is done with it (later ones hit the cache).
struct Joined<'a> {
    in_flight: &'a InFlight,
    key: CacheKey,
    check: SharedCheck,
}

impl Drop for Joined<'_> {
    fn drop(&mut self) {
        let mut checks = self.in_flight.checks.lock().unwrap_or_else(|e| e.into_inner());
        if checks.get(&self.key).is_some_and(|(_, check)| Arc::ptr_eq(check, &self.check)) {
            checks.remove(&self.key);
        }
    }
}

pub struct Verifier {
    store: Arc<dyn Store>,
    cache: Arc<VerifyCache>,
    in_flight: InFlight,
    pool: HashPool,
    throttle: Throttle,
    /// Verified against when there is no real hash to check (unknown id,
    /// wrong user, revoked, ...), so every refusal of a well-formed
    /// password costs the same time as a wrong secret.
    decoy: Secret<String>,
    metrics: Arc<Metrics>,
}

impl Verifier {
    pub fn new(
        store: Arc<dyn Store>,
        cache: Arc<VerifyCache>,
        pool: HashPool,
        throttle: Throttle,
        params: &argon2::Params,
        metrics: Arc<Metrics>,
    ) -> Self {
        let decoy = password::hash(&password::generate(), params);
        Self { store, cache, in_flight: InFlight::default(), pool, throttle, decoy, metrics }
    }

    pub fn throttle(&self) -> &Throttle {
        &self.throttle
    }

    pub fn pool(&self) -> &HashPool {
        &self.pool
    }

    /// Checks a Basic credential from `ip`. A cache hit returns at once; a
    /// cold attempt passes the throttle, then costs exactly one argon2
    /// verification (of the real hash, or of the decoy on any other refusal
    /// of a well-formed password), shared by concurrent attempts with the
    /// same credential.
    pub async fn verify(&self, user: &str, presented: &str, ip: IpAddr) -> Result<Arc<Grant>, VerifyError> {
        let key = self.cache.key_for(user, presented);
        match self.cache.get(&key).await {
            Some(Cached::Fresh(grant)) => {
                self.metrics.verify_cache_hits.inc();
                return Ok(grant);
            }
            Some(Cached::Stale(grant)) => {
                self.metrics.verify_cache_misses.inc();
                return self.reconfirm(key, &grant).await;
            }
            None => {}
        }
        self.metrics.verify_cache_misses.inc();
        match self.throttle.check(ip, user) {
            Verdict::Refuse(retry_after) => {
                tokio::time::sleep(self.throttle.tarpit()).await;
                return Err(VerifyError::Throttled(retry_after));
            }
            Verdict::Proceed(delay) if !delay.is_zero() => tokio::time::sleep(delay).await,
            Verdict::Proceed(_) => {}
        }
        let epoch = self.cache.epoch.load(Ordering::SeqCst);
        let joined = self.in_flight.join(key, epoch);
        let result = joined
            .check
            .get_or_init(|| async {
                // A check that finished just before this one joined has cached its grant.
                if let Some(Cached::Fresh(grant)) = self.cache.get(&key).await {
                    return Ok(grant);
                }
                let result = self.verify_cold(user, presented).await;
                if let Ok(grant) = &result {
                    self.cache.insert_unless_invalidated(key, grant.clone(), epoch).await;
                }
                result
            })
            .await
            .clone();
        drop(joined);
        // Every refused request counts, shared check or not.
        if let Err(e) = &result
            && e.is_failed_attempt()
        {
            self.throttle.record_failure(ip, user);
        }
        result
    }

    /// Reads a stale hit's record again (no argon2: the secret was
    /// verified). A refusal drops the entry; an unreachable store keeps it
    /// unused until the store answers.
    async fn reconfirm(&self, key: CacheKey, grant: &Grant) -> Result<Arc<Grant>, VerifyError> {
        let epoch = self.cache.epoch.load(Ordering::SeqCst);
        let verified_at = Instant::now();
        match self.check_record(&grant.user, &grant.password_id).await {
            Ok(record) => {
                let fresh =
                    Arc::new(Grant { scope: record.scope, expires: record.expires, verified_at, ..grant.clone() });
                self.cache.insert_unless_invalidated(key, fresh.clone(), epoch).await;
                Ok(fresh)
            }
            Err(VerifyError::StoreUnavailable) => Err(VerifyError::StoreUnavailable),
            Err(refusal) => {
                self.cache.forget(&key).await;
                Err(refusal)
            }
        }
    }

    async fn verify_cold(&self, user: &str, presented: &str) -> Result<Arc<Grant>, VerifyError> {
        let canonical = password::parse(presented).ok_or(VerifyError::Malformed)?;
        let verified_at = Instant::now();
        let record = match self.check_record(user, &password::id_of(&canonical)).await {
            Ok(record) => record,
            Err(VerifyError::StoreUnavailable) => return Err(VerifyError::StoreUnavailable),
            Err(refusal) => {
                self.pool.verify(canonical, self.decoy.clone()).await?;
                return Err(refusal);
            }
        };
        if !self.pool.verify(canonical, record.hash.clone()).await? {
            return Err(VerifyError::WrongSecret);
        }
        Ok(Arc::new(Grant {
            password_id: record.id,
            user: record.user,
            scope: record.scope,
            expires: record.expires,
            verified_at,
        }))
    }

    fn store_failed(&self) -> VerifyError {
        self.metrics.store_errors.inc();
        VerifyError::StoreUnavailable
    }

    /// Loads the one record `id` names and checks everything but the secret.
    async fn check_record(&self, user: &str, id: &str) -> Result<AppPassword, VerifyError> {
        let record = self.store.get_password(id).await.map_err(|_| self.store_failed())?;
        let record = record.ok_or(VerifyError::UnknownId)?;
        if record.user != user {
            return Err(VerifyError::WrongUser);
        }
        if record.revoked.is_some() {
            return Err(VerifyError::Revoked);
        }
        if record.is_expired(unix_now()) {
            return Err(VerifyError::Expired);
        }
        match self.store.get_user(user).await.map_err(|_| self.store_failed())? {
            Some(u) if u.state == UserState::Active && u.app_access => Ok(record),
            Some(u) if u.state == UserState::Active => Err(VerifyError::AppAccessOff),
            _ => Err(VerifyError::UserDisabled),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_is_shared_within_an_epoch_and_forgotten_when_its_requests_are_done() {
        let in_flight = InFlight::default();
        let first = in_flight.join([1; 32], 0);
        let same = in_flight.join([1; 32], 0);
        assert!(Arc::ptr_eq(&first.check, &same.check));
        let other_credential = in_flight.join([2; 32], 0);
        assert!(!Arc::ptr_eq(&first.check, &other_credential.check));
        // After an invalidation (a revocation), a new request starts afresh.
        let after_revocation = in_flight.join([1; 32], 1);
        assert!(!Arc::ptr_eq(&first.check, &after_revocation.check));
        drop((first, same, other_credential, after_revocation));
        assert!(in_flight.checks.lock().unwrap().is_empty());
    }

    fn grant(id: &str, user: &str) -> Arc<Grant> {
        Arc::new(Grant {
            password_id: id.into(),
            user: user.into(),
            scope: Scope::default(),
            expires: None,
            verified_at: Instant::now(),
        })
    }

    async fn fresh(cache: &VerifyCache, key: &CacheKey) -> bool {
        matches!(cache.get(key).await, Some(Cached::Fresh(_)))
    }

    fn copied(cache: &VerifyCache, key: &CacheKey) -> bool {
        thread_cache::get(cache.id, cache.epoch.load(Ordering::SeqCst), key).is_some()
    }

    /// Another thread (the admin API, a change feed) revokes while this
    /// one holds a copy.
    #[tokio::test]
    async fn an_invalidation_on_another_thread_reaches_this_threads_copy() {
        let cache = Arc::new(VerifyCache::new(100, Duration::from_secs(600)));
        let key = [6; 32];
        cache.insert_unless_invalidated(key, grant("p7", "alice"), 0).await;
        assert!(fresh(&cache, &key).await && copied(&cache, &key));
        let other = cache.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            runtime.block_on(other.invalidate_password("p7"));
        })
        .join()
        .unwrap();
        assert!(!fresh(&cache, &key).await);
    }

    /// After a change feed outage every grant is stale once; the grant a
    /// reconfirmation leaves in moka must replace the copy, or every
    /// request would read the store again.
    #[tokio::test]
    async fn a_reconfirmed_grant_replaces_the_stale_copy() {
        let cache = VerifyCache::new(100, Duration::from_secs(600));
        let key = [7; 32];
        cache.insert_unless_invalidated(key, grant("p8", "alice"), 0).await;
        assert!(fresh(&cache, &key).await && copied(&cache, &key));
        tokio::time::sleep(Duration::from_millis(2)).await;
        cache.mark_all_stale();
        assert!(matches!(cache.get(&key).await, Some(Cached::Stale(_))));
        assert!(!copied(&cache, &key), "a stale copy is dropped");
        // Past the millisecond that `mark_all_stale` covers.
        tokio::time::sleep(Duration::from_millis(3)).await;
        let reconfirmed = grant("p8", "alice");
        cache.insert_unless_invalidated(key, reconfirmed.clone(), cache.epoch.load(Ordering::SeqCst)).await;
        match cache.get(&key).await {
            Some(Cached::Fresh(g)) => assert!(Arc::ptr_eq(&g, &reconfirmed)),
            _ => panic!("the reconfirmed grant is fresh"),
        }
        assert!(copied(&cache, &key));
    }

    /// A hit is served from this thread's copy after the first lookup; an
    /// invalidation must still reach the very next one.
    #[tokio::test]
    async fn invalidations_reach_hits_served_from_the_thread_copy() {
        let cache = VerifyCache::new(100, Duration::from_secs(600));
        let (a, b, c) = ([1; 32], [2; 32], [3; 32]);
        for (key, id, user) in [(a, "p1", "alice"), (b, "p2", "alice"), (c, "p3", "bob")] {
            cache.insert_unless_invalidated(key, grant(id, user), 0).await;
        }
        for _ in 0..2 {
            assert!(fresh(&cache, &a).await && fresh(&cache, &b).await && fresh(&cache, &c).await);
        }
        assert!(copied(&cache, &a), "served from this thread's copy");
        cache.invalidate_password("p1").await;
        assert!(!fresh(&cache, &a).await, "revoked");
        assert!(fresh(&cache, &b).await && fresh(&cache, &c).await);
        cache.invalidate_user("alice").await;
        assert!(!fresh(&cache, &b).await, "user disabled");
        assert!(fresh(&cache, &c).await);
    }

    #[tokio::test]
    async fn a_copy_expires_with_the_ttl_and_the_password() {
        let cache = VerifyCache::new(100, Duration::from_millis(100));
        let key = [4; 32];
        cache.insert_unless_invalidated(key, grant("p4", "alice"), 0).await;
        assert!(fresh(&cache, &key).await);
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(!fresh(&cache, &key).await, "past the TTL");
        let expiring = Arc::new(Grant { expires: Some(unix_now() + 1), ..(*grant("p5", "alice")).clone() });
        let cache = VerifyCache::new(100, Duration::from_secs(600));
        cache.insert_unless_invalidated(key, expiring, 0).await;
        assert!(fresh(&cache, &key).await);
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert!(!fresh(&cache, &key).await, "the password expired");
    }
}
